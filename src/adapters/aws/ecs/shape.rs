//! The API's own JSON of an SDK value, through the SDK's schema: every member
//! the pinned `aws-sdk-ecs` knows, spelled as on the wire. This is what tells
//! a member that the manifest model cannot express yet from one it can, so
//! that nothing a live definition has is ever dropped silently.

use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput;
use aws_sdk_ecs::types as ecs;
use aws_smithy_json::codec::{JsonCodec, JsonCodecSettings};
use aws_smithy_schema::codec::Codec;
use aws_smithy_schema::serde::{SerializableStruct, ShapeSerializer};
use serde_json::{Map, Value};

use super::super::convert;
use crate::core::diff::lost_members;
use crate::core::model::TaskDefinition;

#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("encoding {shape} as API JSON: {message}")]
    Encode {
        shape: &'static str,
        message: String,
    },
}

/// `value` as the API spells it in awsJson (member names, no `jsonName`).
pub fn api_json(shape: &'static str, value: &dyn SerializableStruct) -> Result<Value, ShapeError> {
    let codec = JsonCodec::new(JsonCodecSettings::builder().use_json_name(false).build());
    let mut ser = codec.create_serializer();
    ser.write_struct(value.schema(), value)
        .map_err(|e| ShapeError::Encode {
            shape,
            message: e.to_string(),
        })?;
    serde_json::from_slice(&ser.finish()).map_err(|e| ShapeError::Encode {
        shape,
        message: e.to_string(),
    })
}

/// The members of `RegisterTaskDefinition` input, by the SDK's schema.
fn register_members() -> Vec<&'static str> {
    RegisterTaskDefinitionInput::SCHEMA
        .members()
        .iter()
        .filter_map(|m| m.member_name())
        .collect()
}

/// Paths (as `ecsync diff` prints them, under `taskDefinition`) of what the
/// live definition sets and a revision registered from `model` would not:
/// the members the manifest model cannot express yet.
pub fn unmanaged_members(
    live: &ecs::TaskDefinition,
    model: &TaskDefinition,
) -> Result<Vec<String>, ShapeError> {
    let members = register_members();
    let live = match api_json("TaskDefinition", live)? {
        // Response-only members (ARN, revision, status, ...) are no input.
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| members.contains(&k.as_str()))
                .collect::<Map<_, _>>(),
        ),
        other => other,
    };
    let input = convert::register_task_definition_input(model).map_err(|e| ShapeError::Encode {
        shape: "RegisterTaskDefinitionInput",
        message: e.to_string(),
    })?;
    let kept = api_json("RegisterTaskDefinitionInput", &input)?;
    Ok(lost_members("taskDefinition", &live, &kept))
}

/// A described task definition in the manifest model, with what the model
/// could not keep of it. When that cannot be worked out, it says so as the
/// one thing not kept: better refuse a new revision than drop a setting.
pub fn read_task_definition(live: &ecs::TaskDefinition) -> (TaskDefinition, Vec<String>) {
    let model = convert::task_definition_from_sdk(live);
    let unmanaged = unmanaged_members(live, &model)
        .unwrap_or_else(|e| vec![format!("taskDefinition (not checked: {e})")]);
    (model, unmanaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str) -> ecs::ContainerDefinition {
        ecs::ContainerDefinition::builder()
            .name(name)
            .image("nginx:1.27")
            .essential(true)
            .port_mappings(
                ecs::PortMapping::builder()
                    .container_port(80)
                    .host_port(80)
                    .protocol(ecs::TransportProtocol::Tcp)
                    .build(),
            )
            .environment(ecs::KeyValuePair::builder().name("A").value("1").build())
            .build()
    }

    fn definition(c: ecs::ContainerDefinition) -> ecs::TaskDefinition {
        ecs::TaskDefinition::builder()
            .family("web")
            .task_definition_arn("arn:aws:ecs:us-east-1:1:task-definition/web:7")
            .revision(7)
            .status(ecs::TaskDefinitionStatus::Active)
            .network_mode(ecs::NetworkMode::Awsvpc)
            .cpu("256")
            .memory("512")
            .requires_compatibilities(ecs::Compatibility::Fargate)
            .compatibilities(ecs::Compatibility::Fargate)
            .container_definitions(c)
            .build()
    }

    #[test]
    fn a_definition_the_model_expresses_loses_nothing() {
        let live = definition(container("web"));
        let model = convert::task_definition_from_sdk(&live);
        assert_eq!(
            unmanaged_members(&live, &model).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn members_the_model_lacks_are_named() {
        let mut c = container("web");
        c.linux_parameters = Some(
            ecs::LinuxParameters::builder()
                .init_process_enabled(true)
                .build(),
        );
        c.extra_hosts = Some(vec![
            ecs::HostEntry::builder()
                .hostname("db")
                .ip_address("10.0.0.5")
                .build()
                .unwrap(),
        ]);
        let mut live = definition(c);
        live.proxy_configuration = Some(
            ecs::ProxyConfiguration::builder()
                .container_name("envoy")
                .build()
                .unwrap(),
        );
        let model = convert::task_definition_from_sdk(&live);
        assert_eq!(
            unmanaged_members(&live, &model).unwrap(),
            [
                "taskDefinition.containerDefinitions[web].extraHosts",
                "taskDefinition.containerDefinitions[web].linuxParameters",
                "taskDefinition.proxyConfiguration",
            ]
        );
    }
}
