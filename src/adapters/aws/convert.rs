//! Between the manifest model and the ECS SDK, through the SDK's own schema.
//!
//! A value crosses as the API's JSON: the manifest types are generated from
//! the AWS model under the API's member names, and the SDK reads and writes
//! that JSON with its schema codec, so every member both sides know crosses
//! without a line of per-field code. What would not cross is an error naming
//! it (sending) or a member reported as not kept (reading): never a silent
//! drop.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::operation::create_service::CreateServiceInput;
use aws_sdk_ecs::operation::create_service::builders::CreateServiceInputBuilder;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionInputBuilder;
use aws_sdk_ecs::operation::run_task::RunTaskInput;
use aws_sdk_ecs::operation::run_task::builders::RunTaskInputBuilder;
use aws_sdk_ecs::operation::update_service::UpdateServiceInput;
use aws_sdk_ecs::operation::update_service::builders::UpdateServiceInputBuilder;
use aws_sdk_ecs::types as ecs;
use aws_smithy_json::codec::{JsonCodec, JsonCodecSettings};
use aws_smithy_schema::codec::Codec;
use aws_smithy_schema::serde::{
    SerdeError, SerializableStruct, ShapeDeserializer, ShapeSerializer,
};
use serde_json::{Map, Value};

use crate::core::diff::{lost_members, to_clean_value};
use crate::core::model::{
    REGISTER_TASK_DEFINITION_MEMBERS, SERVICE_SPEC_MEMBERS, ServiceSpec, TaskDefinition,
    UpdateMember,
};
use crate::core::normalize::is_reserved_tag;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("encoding {shape} as API JSON: {message}")]
    Encode {
        shape: &'static str,
        message: String,
    },
    #[error("building {shape}: {message}")]
    Decode {
        shape: &'static str,
        message: String,
    },
    /// The SDK would not send these: sending anyway would drop settings.
    #[error("{shape}: the pinned aws-sdk-ecs cannot send {}", members.join(", "))]
    NotSent {
        shape: &'static str,
        members: Vec<String>,
    },
}

fn codec() -> JsonCodec {
    // awsJson: members by their model names, as the manifests spell them.
    JsonCodec::new(JsonCodecSettings::builder().use_json_name(false).build())
}

/// `value` as the API spells it (member names, absent members left out).
pub fn api_json(shape: &'static str, value: &dyn SerializableStruct) -> Result<Value, InputError> {
    let encode = |message: String| InputError::Encode { shape, message };
    let codec = codec();
    let mut ser = codec.create_serializer();
    ser.write_struct(value.schema(), value)
        .map_err(|e| encode(e.to_string()))?;
    serde_json::from_slice(&ser.finish()).map_err(|e| encode(e.to_string()))
}

type Reader<T> = fn(&mut dyn ShapeDeserializer) -> Result<T, SerdeError>;

fn decode<T>(shape: &'static str, json: &Value, read: Reader<T>) -> Result<T, InputError> {
    let bytes = serde_json::to_vec(json).map_err(|e| InputError::Encode {
        shape,
        message: e.to_string(),
    })?;
    let codec = codec();
    let mut de = codec.create_deserializer(&bytes);
    read(&mut de).map_err(|e| InputError::Decode {
        shape,
        message: e.to_string(),
    })
}

/// The input a builder makes (`built`) must put every member of `meant`
/// on the wire.
fn check_sent<I: SerializableStruct>(
    shape: &'static str,
    meant: &Value,
    built: Result<I, aws_sdk_ecs::error::BuildError>,
) -> Result<(), InputError> {
    let built = built.map_err(|e| InputError::Decode {
        shape,
        message: e.to_string(),
    })?;
    let wire = api_json(shape, &built)?;
    let members = lost_members("", meant, &wire);
    if members.is_empty() {
        Ok(())
    } else {
        Err(InputError::NotSent { shape, members })
    }
}

// The decoded inputs have no way back to a builder (and `send_with` wants
// one), so each member moves across by name; `check_sent` proves none was
// left behind, and tests/api_model.rs that every model member is here.

fn tag_list(tags: &BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
            .collect(),
    )
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `RegisterTaskDefinition` for `td`, with `tags` (its own and ecsync's).
// `inferenceAccelerators` is deprecated, but still in the model: a definition
// that has them keeps them.
#[allow(deprecated)]
pub fn register_task_definition(
    td: &TaskDefinition,
    tags: &BTreeMap<String, String>,
) -> Result<RegisterTaskDefinitionInputBuilder, InputError> {
    const SHAPE: &str = "RegisterTaskDefinitionInput";
    let mut json = object(to_clean_value(td));
    json.retain(|k, _| REGISTER_TASK_DEFINITION_MEMBERS.contains(&k.as_str()));
    let mut all_tags = crate::core::model::tag_map(td.tags.as_deref().unwrap_or_default());
    all_tags.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !all_tags.is_empty() {
        json.insert("tags".into(), tag_list(&all_tags));
    }
    let json = Value::Object(json);
    let i = decode(SHAPE, &json, RegisterTaskDefinitionInput::deserialize)?;
    let b = RegisterTaskDefinitionInput::builder()
        .set_family(i.family)
        .set_task_role_arn(i.task_role_arn)
        .set_execution_role_arn(i.execution_role_arn)
        .set_network_mode(i.network_mode)
        .set_container_definitions(i.container_definitions)
        .set_volumes(i.volumes)
        .set_placement_constraints(i.placement_constraints)
        .set_requires_compatibilities(i.requires_compatibilities)
        .set_cpu(i.cpu)
        .set_memory(i.memory)
        .set_tags(i.tags)
        .set_pid_mode(i.pid_mode)
        .set_ipc_mode(i.ipc_mode)
        .set_proxy_configuration(i.proxy_configuration)
        .set_inference_accelerators(i.inference_accelerators)
        .set_ephemeral_storage(i.ephemeral_storage)
        .set_runtime_platform(i.runtime_platform)
        .set_enable_fault_injection(i.enable_fault_injection);
    check_sent(SHAPE, &json, b.clone().build())?;
    Ok(b)
}

/// The API members of a spec (less ecsync's own), as JSON.
fn service_members(spec: &ServiceSpec) -> Map<String, Value> {
    let mut json = object(to_clean_value(spec));
    json.retain(|k, _| SERVICE_SPEC_MEMBERS.contains(&k.as_str()));
    json
}

/// What ecsync sets on a service besides its declared members.
pub struct ServiceIdentity<'a> {
    pub cluster: &'a str,
    pub name: &'a str,
    pub task_definition: &'a str,
}

/// `CreateService` for `spec`. `desired_count` replaces the declared one
/// (`None`: none is sent, as a DAEMON requires); `tags` are all of them.
pub fn create_service(
    spec: &ServiceSpec,
    id: &ServiceIdentity<'_>,
    desired_count: Option<i32>,
    tags: &BTreeMap<String, String>,
) -> Result<CreateServiceInputBuilder, InputError> {
    const SHAPE: &str = "CreateServiceInput";
    let mut json = service_members(spec);
    json.insert("cluster".into(), id.cluster.into());
    json.insert("serviceName".into(), id.name.into());
    json.insert("taskDefinition".into(), id.task_definition.into());
    match desired_count {
        Some(n) => json.insert("desiredCount".into(), n.into()),
        None => json.remove("desiredCount"),
    };
    json.insert("tags".into(), tag_list(tags));
    let json = Value::Object(json);
    let i = decode(SHAPE, &json, CreateServiceInput::deserialize)?;
    let b = CreateServiceInput::builder()
        .set_cluster(i.cluster)
        .set_service_name(i.service_name)
        .set_task_definition(i.task_definition)
        .set_availability_zone_rebalancing(i.availability_zone_rebalancing)
        .set_load_balancers(i.load_balancers)
        .set_service_registries(i.service_registries)
        .set_desired_count(i.desired_count)
        .set_client_token(i.client_token)
        .set_launch_type(i.launch_type)
        .set_capacity_provider_strategy(i.capacity_provider_strategy)
        .set_platform_version(i.platform_version)
        .set_role(i.role)
        .set_deployment_configuration(i.deployment_configuration)
        .set_placement_constraints(i.placement_constraints)
        .set_placement_strategy(i.placement_strategy)
        .set_network_configuration(i.network_configuration)
        .set_health_check_grace_period_seconds(i.health_check_grace_period_seconds)
        .set_scheduling_strategy(i.scheduling_strategy)
        .set_deployment_controller(i.deployment_controller)
        .set_tags(i.tags)
        .set_enable_ecs_managed_tags(i.enable_ecs_managed_tags)
        .set_propagate_tags(i.propagate_tags)
        .set_enable_execute_command(i.enable_execute_command)
        .set_service_connect_configuration(i.service_connect_configuration)
        .set_volume_configurations(i.volume_configurations)
        .set_vpc_lattice_configurations(i.vpc_lattice_configurations)
        .set_gateway_connectors(i.gateway_connectors)
        .set_monitoring(i.monitoring);
    check_sent(SHAPE, &json, b.clone().build())?;
    Ok(b)
}

/// `UpdateService` changing `members` to what `spec` declares. A member the
/// spec leaves out is sent as `cleared` says (the value that unsets it).
pub fn update_service(
    spec: &ServiceSpec,
    id: &ServiceIdentity<'_>,
    members: &BTreeSet<UpdateMember>,
    cleared: impl Fn(UpdateMember) -> Option<Value>,
) -> Result<UpdateServiceInputBuilder, InputError> {
    const SHAPE: &str = "UpdateServiceInput";
    let declared = service_members(spec);
    let mut json = Map::new();
    json.insert("cluster".into(), id.cluster.into());
    json.insert("service".into(), id.name.into());
    for m in members {
        let value = match m {
            UpdateMember::TaskDefinition => Some(Value::from(id.task_definition)),
            m => declared.get(m.api_name()).cloned().or_else(|| cleared(*m)),
        };
        if let Some(v) = value {
            json.insert(m.api_name().into(), v);
        }
    }
    let json = Value::Object(json);
    let i = decode(SHAPE, &json, UpdateServiceInput::deserialize)?;
    let b = UpdateServiceInput::builder()
        .set_cluster(i.cluster)
        .set_service(i.service)
        .set_desired_count(i.desired_count)
        .set_task_definition(i.task_definition)
        .set_capacity_provider_strategy(i.capacity_provider_strategy)
        .set_deployment_configuration(i.deployment_configuration)
        .set_availability_zone_rebalancing(i.availability_zone_rebalancing)
        .set_network_configuration(i.network_configuration)
        .set_placement_constraints(i.placement_constraints)
        .set_placement_strategy(i.placement_strategy)
        .set_platform_version(i.platform_version)
        .set_force_new_deployment(i.force_new_deployment)
        .set_health_check_grace_period_seconds(i.health_check_grace_period_seconds)
        .set_deployment_controller(i.deployment_controller)
        .set_enable_execute_command(i.enable_execute_command)
        .set_enable_ecs_managed_tags(i.enable_ecs_managed_tags)
        .set_load_balancers(i.load_balancers)
        .set_propagate_tags(i.propagate_tags)
        .set_service_registries(i.service_registries)
        .set_service_connect_configuration(i.service_connect_configuration)
        .set_volume_configurations(i.volume_configurations)
        .set_vpc_lattice_configurations(i.vpc_lattice_configurations)
        .set_gateway_connectors(i.gateway_connectors)
        .set_monitoring(i.monitoring);
    check_sent(SHAPE, &json, b.clone().build())?;
    Ok(b)
}

/// The service members a one-off task of it runs with: where and how its
/// tasks are placed and reached. `propagateTags` is not among them: a
/// standalone task has no service to take tags from.
const RUN_TASK_MEMBERS: &[&str] = &[
    "launchType",
    "capacityProviderStrategy",
    "platformVersion",
    "networkConfiguration",
    "placementConstraints",
    "placementStrategy",
    "enableECSManagedTags",
    "enableExecuteCommand",
];

/// What a pre-deploy hook task is, besides the service's own settings.
pub struct OneOffTask<'a> {
    pub cluster: &'a str,
    pub task_definition: &'a str,
    pub container: &'a str,
    pub command: &'a [String],
    pub started_by: &'a str,
    /// Makes a retried `RunTask` (a response lost on the way) start one task.
    pub client_token: &'a str,
    pub tags: &'a BTreeMap<String, String>,
}

/// `RunTask` of one task with the service's placement and network settings
/// and a command override on one container (DESIGN §3 `hooks.preDeploy`).
pub fn run_task(spec: &ServiceSpec, t: &OneOffTask<'_>) -> Result<RunTaskInputBuilder, InputError> {
    const SHAPE: &str = "RunTaskInput";
    let mut json = service_members(spec);
    json.retain(|k, _| RUN_TASK_MEMBERS.contains(&k.as_str()));
    json.insert("cluster".into(), t.cluster.into());
    json.insert("taskDefinition".into(), t.task_definition.into());
    json.insert("count".into(), 1.into());
    json.insert("startedBy".into(), t.started_by.into());
    json.insert("clientToken".into(), t.client_token.into());
    json.insert(
        "overrides".into(),
        serde_json::json!({"containerOverrides": [{"name": t.container, "command": t.command}]}),
    );
    json.insert("tags".into(), tag_list(t.tags));
    let json = Value::Object(json);
    let i = decode(SHAPE, &json, RunTaskInput::deserialize)?;
    let b = RunTaskInput::builder()
        .set_cluster(i.cluster)
        .set_task_definition(i.task_definition)
        .set_count(i.count)
        .set_started_by(i.started_by)
        .set_client_token(i.client_token)
        .set_overrides(i.overrides)
        .set_tags(i.tags)
        .set_launch_type(i.launch_type)
        .set_capacity_provider_strategy(i.capacity_provider_strategy)
        .set_platform_version(i.platform_version)
        .set_network_configuration(i.network_configuration)
        .set_placement_constraints(i.placement_constraints)
        .set_placement_strategy(i.placement_strategy)
        .set_enable_ecs_managed_tags(i.enable_ecs_managed_tags)
        .set_enable_execute_command(i.enable_execute_command);
    check_sent(SHAPE, &json, b.clone().build())?;
    Ok(b)
}

pub fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<ecs::Tag> {
    tags.iter()
        .map(|(k, v)| ecs::Tag::builder().key(k).value(v).build())
        .collect()
}

pub fn tags_from_sdk(tags: &[ecs::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

// ---- live → model -------------------------------------------------------

/// A described task definition in the manifest model, with the paths (as
/// `ecsync diff` prints them) of what the model could not keep. When it
/// cannot be read at all, that is the one thing not kept: better refuse a
/// new revision than drop a setting.
pub fn read_task_definition(
    live: &ecs::TaskDefinition,
    tags: &[ecs::Tag],
) -> (TaskDefinition, Vec<String>) {
    let family = live.family().unwrap_or_default().to_string();
    let unreadable = |why: String| {
        let td = TaskDefinition {
            family: family.clone(),
            ..Default::default()
        };
        (td, vec![format!("taskDefinition (not readable: {why})")])
    };
    let mut json = match api_json("TaskDefinition", live) {
        Ok(v) => object(v),
        Err(e) => return unreadable(e.to_string()),
    };
    // Response-only members (ARN, revision, status, ...) are no input.
    json.retain(|k, _| REGISTER_TASK_DEFINITION_MEMBERS.contains(&k.as_str()));
    let user_tags: BTreeMap<String, String> = tags_from_sdk(tags)
        .into_iter()
        .filter(|(k, _)| !is_reserved_tag(k))
        .collect();
    if !user_tags.is_empty() {
        json.insert("tags".into(), tag_list(&user_tags));
    }
    let json = Value::Object(json);
    match serde_json::from_value::<TaskDefinition>(json.clone()) {
        Ok(td) => {
            let unmanaged = lost_members("taskDefinition", &json, &to_clean_value(&td));
            (td, unmanaged)
        }
        Err(e) => unreadable(e.to_string()),
    }
}

/// The service-level part of a live service (`task_definition` stays
/// default), every `CreateService` member the describe answer carries: most
/// at the top, `role` as `roleArn`, and what only deployments report
/// (Service Connect, volumes, VPC Lattice) from the primary one.
pub fn service_spec_from_sdk(s: &ecs::Service, cluster: &str) -> Result<ServiceSpec, InputError> {
    const SHAPE: &str = "Service";
    let mut described = object(api_json(SHAPE, s)?);
    let primary = s
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .map(|d| api_json("Deployment", d))
        .transpose()?
        .map(object)
        .unwrap_or_default();
    let mut json = Map::new();
    for member in SERVICE_SPEC_MEMBERS {
        let value = match *member {
            "role" => described.remove("roleArn"),
            m => described.remove(m).or_else(|| primary.get(m).cloned()),
        };
        if let Some(v) = value {
            json.insert((*member).to_string(), v);
        }
    }
    json.insert("cluster".into(), cluster.into());
    serde_json::from_value(Value::Object(json)).map_err(|e| InputError::Decode {
        shape: SHAPE,
        message: e.to_string(),
    })
}
