//! The declared shape of a `kind: ScheduledTask` (DESIGN §3 "Other kinds").
//!
//! The ECS parts keep the ECS API's own shapes (a `RegisterTaskDefinition`
//! input, `NetworkConfiguration`, `CapacityProviderStrategyItem`, a
//! `RunTask` `TaskOverride`), so what works in a Service manifest pastes in.
//! Every struct denies unknown fields: a typo is an error with a location.

use serde::{Deserialize, Serialize};

use crate::core::model::{
    CapacityProviderStrategyItem, EnvironmentFile, EphemeralStorage, KeyValuePair, Metadata,
    NetworkConfiguration, ResourceRequirement, TaskDefinition,
};

pub const KIND_SCHEDULED_TASK: &str = "ScheduledTask";

/// The schedule's `State`, as EventBridge Scheduler spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ScheduleState {
    #[default]
    Enabled,
    Disabled,
}

impl ScheduleState {
    pub const ALL: [ScheduleState; 2] = [ScheduleState::Enabled, ScheduleState::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::Disabled => "DISABLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduledTaskManifest {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ScheduledTaskSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduledTaskSpec {
    /// The cluster by name, as for a Service.
    pub cluster: String,
    /// An EventBridge Scheduler expression: `cron(...)`, `rate(...)` or `at(...)`.
    pub schedule: String,
    /// IANA time zone of the expression; default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ScheduleState>,
    /// The role EventBridge Scheduler assumes to run the task.
    pub role_arn: String,
    /// `RegisterTaskDefinition` input, as for a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<TaskDefinition>,
    /// Instead of `taskDefinition`: the definition a Service manifest declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_from: Option<TaskDefinitionFrom>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::core::api::de::enum_or_absent"
    )]
    pub launch_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_provider_strategy: Option<Vec<CapacityProviderStrategyItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<NetworkConfiguration>,
    /// `RunTask`'s `overrides`; sent as the target's `Input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<TaskOverride>,
    /// Tasks per run, 1 to 10; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_count: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinitionFrom {
    /// A Service manifest of the same set, by `metadata.name`.
    pub service: String,
}

/// ECS `TaskOverride` (the `RunTask` member), less what is not for one task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_overrides: Option<Vec<ContainerOverride>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::core::api::de::opt_string"
    )]
    pub cpu: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::core::api::de::opt_string"
    )]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
}

/// ECS `ContainerOverride`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerOverride {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Vec<KeyValuePair>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_files: Option<Vec<EnvironmentFile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_requirements: Option<Vec<ResourceRequirement>>,
}
