//! The declared shape of a service, as written in manifests (DESIGN §3).
//!
//! Field names follow the ECS API's JSON input shapes (`RegisterTaskDefinition`,
//! `CreateService`), so an ecspresso or console JSON definition converts to YAML
//! without renaming. Every struct denies unknown fields: a typo must be an error
//! with a line and column, never a silently ignored setting.
//!
//! The same types describe the live side once the observer has translated AWS
//! responses, which is what lets `normalize` and `diff` treat both sides alike.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};

pub const API_VERSION: &str = "ecsync.io/v1alpha1";
pub const KIND_SERVICE: &str = "Service";

/// A (cluster, service name) pair: the identity of an ECS service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceKey {
    pub cluster: String,
    pub name: String,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.cluster, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `CreateService` input, minus the fields ecsync derives itself (serviceName,
/// cluster ARN, task definition ARN) plus `migration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    pub cluster: String,
    pub desired_count: Option<i32>,
    #[serde(default, deserialize_with = "empty_is_absent")]
    pub launch_type: Option<String>,
    pub capacity_provider_strategy: Option<Vec<CapacityProviderStrategyItem>>,
    pub platform_version: Option<String>,
    pub task_definition: TaskDefinition,
    pub network_configuration: Option<NetworkConfiguration>,
    pub load_balancers: Option<Vec<LoadBalancer>>,
    pub deployment_configuration: Option<DeploymentConfiguration>,
    pub health_check_grace_period_seconds: Option<i32>,
    #[serde(default, deserialize_with = "empty_is_absent")]
    pub scheduling_strategy: Option<String>,
    pub enable_execute_command: Option<bool>,
    #[serde(rename = "enableECSManagedTags")]
    pub enable_ecs_managed_tags: Option<bool>,
    #[serde(default, deserialize_with = "empty_is_absent")]
    pub propagate_tags: Option<String>,
    pub placement_constraints: Option<Vec<PlacementConstraint>>,
    pub placement_strategy: Option<Vec<PlacementStrategy>>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "tags_list_or_map"
    )]
    pub tags: BTreeMap<String, String>,
    pub migration: Option<Migration>,
}

impl ServiceSpec {
    /// `schedulingStrategy: DAEMON`: one task per container instance, so ECS
    /// owns the count and refuses `desiredCount` on create, update and prune.
    pub fn is_daemon(&self) -> bool {
        self.scheduling_strategy.as_deref() == Some("DAEMON")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapacityProviderStrategyItem {
    pub capacity_provider: String,
    pub weight: Option<i32>,
    pub base: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkConfiguration {
    pub awsvpc_configuration: Option<AwsVpcConfiguration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsVpcConfiguration {
    pub subnets: Vec<String>,
    pub security_groups: Option<Vec<String>>,
    #[serde(default, deserialize_with = "empty_is_absent")]
    pub assign_public_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    /// A target group name or ARN; the observer resolves names to ARNs.
    #[serde(alias = "targetGroupArn")]
    pub target_group: String,
    pub container_name: String,
    pub container_port: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentConfiguration {
    pub maximum_percent: Option<i32>,
    pub minimum_healthy_percent: Option<i32>,
    pub deployment_circuit_breaker: Option<DeploymentCircuitBreaker>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentCircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementConstraint {
    #[serde(rename = "type")]
    pub kind: String,
    pub expression: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementStrategy {
    #[serde(rename = "type")]
    pub kind: String,
    pub field: Option<String>,
}

/// `RegisterTaskDefinition` input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinition {
    /// Required; `default` only so that a describe answer's wrapper
    /// (`{taskDefinition: {...}}`) parses, and validation names it missing.
    #[serde(default)]
    pub family: String,
    pub task_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    #[serde(default, deserialize_with = "empty_is_absent")]
    pub network_mode: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub cpu: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub memory: Option<String>,
    pub requires_compatibilities: Option<Vec<String>>,
    #[serde(default)]
    pub container_definitions: Vec<ContainerDefinition>,
    pub volumes: Option<Vec<Volume>>,
    pub runtime_platform: Option<RuntimePlatform>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    #[serde(default, deserialize_with = "empty_is_absent")]
    pub pid_mode: Option<String>,
    #[serde(default, deserialize_with = "empty_is_absent")]
    pub ipc_mode: Option<String>,
    /// Response-only members of a DescribeTaskDefinition answer: accepted so
    /// a pasted definition loads, never sent, reported as warnings.
    #[serde(default, skip_serializing)]
    pub task_definition_arn: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub revision: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub status: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub requires_attributes: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub compatibilities: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub registered_at: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub registered_by: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub deregistered_at: Option<IgnoredAny>,
    /// The whole describe answer, `{taskDefinition: {...}}`: unwrapped on load.
    #[serde(default, skip_serializing, rename = "taskDefinition")]
    pub wrapped: Option<Box<TaskDefinition>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    pub cpu: Option<i32>,
    pub memory: Option<i32>,
    pub memory_reservation: Option<i32>,
    pub essential: Option<bool>,
    pub port_mappings: Option<Vec<PortMapping>>,
    pub environment: Option<Vec<KeyValuePair>>,
    pub secrets: Option<Vec<Secret>>,
    pub command: Option<Vec<String>>,
    pub entry_point: Option<Vec<String>>,
    pub working_directory: Option<String>,
    pub user: Option<String>,
    pub log_configuration: Option<LogConfiguration>,
    pub health_check: Option<HealthCheck>,
    pub depends_on: Option<Vec<ContainerDependency>>,
    pub mount_points: Option<Vec<MountPoint>>,
    pub volumes_from: Option<Vec<VolumeFrom>>,
    pub ulimits: Option<Vec<Ulimit>>,
    pub readonly_root_filesystem: Option<bool>,
    pub privileged: Option<bool>,
    pub start_timeout: Option<i32>,
    pub stop_timeout: Option<i32>,
    pub docker_labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    pub container_port: i32,
    pub host_port: Option<i32>,
    #[serde(default, deserialize_with = "empty_is_absent")]
    pub protocol: Option<String>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "empty_is_absent")]
    pub app_protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValuePair {
    pub name: String,
    #[serde(default, deserialize_with = "string_or_number")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    pub name: String,
    pub value_from: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfiguration {
    pub log_driver: String,
    pub options: Option<BTreeMap<String, String>>,
    pub secret_options: Option<Vec<Secret>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    pub command: Vec<String>,
    pub interval: Option<i32>,
    pub timeout: Option<i32>,
    pub retries: Option<i32>,
    pub start_period: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDependency {
    pub container_name: String,
    pub condition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeFrom {
    pub source_container: String,
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ulimit {
    pub name: String,
    pub soft_limit: i32,
    pub hard_limit: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    pub host: Option<HostVolume>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostVolume {
    pub source_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimePlatform {
    pub cpu_architecture: Option<String>,
    pub operating_system_family: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EphemeralStorage {
    #[serde(rename = "sizeInGiB")]
    pub size_in_gib: i32,
}

/// Moving traffic off a legacy EC2 fleet (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Migration {
    pub listener: ListenerRef,
    pub from: MigrationSource,
    pub steps: Vec<u8>,
    pub step_interval: String,
    pub decommission: Option<Decommission>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ListenerRef {
    Arn(String),
    Port {
        #[serde(rename = "loadBalancer")]
        load_balancer: String,
        port: i32,
        #[serde(default)]
        rule: Option<ListenerRule>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerRule {
    pub priority: Option<i32>,
    pub arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationSource {
    pub target_group: String,
    pub instances: InstanceSelector,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceSelector {
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decommission {
    pub action: Option<String>,
    pub after: String,
}

impl TaskDefinition {
    /// Names (as the API spells them) of the response-only members that were
    /// given, which a register never sends.
    pub fn response_only_members(&self) -> Vec<&'static str> {
        [
            ("taskDefinitionArn", self.task_definition_arn.is_some()),
            ("revision", self.revision.is_some()),
            ("status", self.status.is_some()),
            ("requiresAttributes", self.requires_attributes.is_some()),
            ("compatibilities", self.compatibilities.is_some()),
            ("registeredAt", self.registered_at.is_some()),
            ("registeredBy", self.registered_by.is_some()),
            ("deregisteredAt", self.deregistered_at.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    /// A describe answer pasted whole (`{taskDefinition: {...}}`) is the
    /// definition inside it; the response-only members are forgotten.
    pub fn unwrapped(mut self) -> TaskDefinition {
        let inner = match self.wrapped.take() {
            Some(inner) => *inner,
            None => self,
        };
        TaskDefinition {
            task_definition_arn: None,
            revision: None,
            status: None,
            requires_attributes: None,
            compatibilities: None,
            registered_at: None,
            registered_by: None,
            deregistered_at: None,
            wrapped: None,
            ..inner
        }
    }
}

/// `""` in an optional enum means absent, as the API treats it (console and
/// describe output carry such empty strings); `null` is absent anyway.
fn empty_is_absent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// `tags` as the API writes them, `[{key, value}]`, or as a map `{k: v}`.
fn tags_list_or_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Tag {
        key: String,
        #[serde(default)]
        value: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        Map(BTreeMap<String, String>),
        List(Vec<Tag>),
    }
    Ok(match Option::<Tags>::deserialize(d)? {
        None => BTreeMap::new(),
        Some(Tags::Map(m)) => m,
        Some(Tags::List(l)) => l
            .into_iter()
            .map(|t| (t.key, t.value.unwrap_or_default()))
            .collect(),
    })
}

/// ECS takes `cpu: "256"` but people write `cpu: 256`; both mean the same.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    Ok(Option::<Scalar>::deserialize(d)?.map(|s| match s {
        Scalar::S(s) => s,
        Scalar::I(i) => i.to_string(),
        Scalar::F(f) => f.to_string(),
        Scalar::B(b) => b.to_string(),
    }))
}
