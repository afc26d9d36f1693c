//! The declared shape of a service, as written in manifests (DESIGN §3).
//!
//! The API's part is generated from the AWS model (`core::api::ecs`): every
//! input member of `RegisterTaskDefinition` and `CreateService` under its own
//! name, so an ecspresso, console or `describe-*` JSON definition pastes in
//! unchanged. Every struct denies unknown fields: a typo must be an error with
//! a line and column, never a silently ignored setting.
//!
//! The same types describe the live side once the observer has read AWS
//! responses, which is what lets `normalize` and `diff` treat both sides alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::core::api::ecs::*;

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

crate::core::api::ecs::service_spec! {
    /// `CreateService` input, minus what ecsync derives itself (serviceName,
    /// the cluster and task definition ARNs, clientToken), plus ecsync's own
    /// members: the cluster by name, the task definition inline, `migration`.
    pub struct ServiceSpec {
        #[serde(rename = "cluster")]
        pub cluster: String,
        #[serde(rename = "taskDefinition", default)]
        pub task_definition: TaskDefinition,
        #[serde(rename = "migration", default, skip_serializing_if = "Option::is_none")]
        pub migration: Option<Migration>,
        /// Paths (as `ecsync diff` prints them) where the live value wins.
        #[serde(rename = "ignoreDifferences", default, skip_serializing_if = "Option::is_none")]
        pub ignore_differences: Option<Vec<String>>,
        /// One-off tasks run with a new revision before the service moves to it.
        #[serde(rename = "hooks", default, skip_serializing_if = "Option::is_none")]
        pub hooks: Option<Hooks>,
        /// Services this one is updated after (DESIGN §3).
        #[serde(rename = "dependsOn", default, skip_serializing_if = "Option::is_none")]
        pub depends_on: Option<Vec<Dependency>>,
    }
}

/// The members of a spec that ecsync adds to `CreateService`'s.
pub const ECSYNC_SPEC_MEMBERS: &[&str] = &[
    "cluster",
    "taskDefinition",
    "migration",
    "ignoreDifferences",
    "hooks",
    "dependsOn",
];

impl ServiceSpec {
    /// `schedulingStrategy: DAEMON`: one task per container instance, so ECS
    /// owns the count and refuses `desiredCount` on create, update and prune.
    pub fn is_daemon(&self) -> bool {
        self.scheduling_strategy.as_deref() == Some("DAEMON")
    }

    /// The pre-deploy hooks, in the order they run.
    pub fn pre_deploy_hooks(&self) -> &[PreDeployHook] {
        self.hooks.as_ref().map_or(&[], |h| h.pre_deploy.as_slice())
    }

    /// The parsed `ignoreDifferences` (validation has refused any that fail).
    pub fn ignored_paths(&self) -> Vec<crate::core::ignore::IgnorePath> {
        self.ignore_differences
            .iter()
            .flatten()
            .filter_map(|p| crate::core::ignore::IgnorePath::parse(p).ok())
            .collect()
    }

    /// The service's own tags, as a map (the API spells them as a list).
    pub fn tag_map(&self) -> BTreeMap<String, String> {
        tag_map(self.tags.as_deref().unwrap_or_default())
    }
}

/// `[{key, value}]` as a map; a tag without a key is no tag.
pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key.clone()?, t.value.clone().unwrap_or_default())))
        .collect()
}

/// A map of tags in the API's `[{key, value}]` spelling, in key order.
pub fn tag_list(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// Moving traffic off a legacy EC2 fleet (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Migration {
    pub listener: ListenerRef,
    pub from: MigrationSource,
    pub steps: Vec<u8>,
    pub step_interval: String,
    /// Gates beyond the built-in ones (deployment, target health, interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<MigrationGates>,
    pub decommission: Option<Decommission>,
}

/// `migration.gates` (DESIGN §3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationGates {
    /// CloudWatch alarm names: any in ALARM fails the gate.
    #[serde(default)]
    pub alarms: Vec<String>,
}

impl Migration {
    /// The CloudWatch alarms the migration's gate reads (none: no CloudWatch call).
    pub fn alarms(&self) -> &[String] {
        self.gates.as_ref().map_or(&[], |g| g.alarms.as_slice())
    }
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
    /// Loose instances of the legacy fleet, by tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<InstanceSelector>,
    /// The Auto Scaling group that keeps the legacy fleet (at least one of
    /// the two is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_scaling_group: Option<String>,
}

impl MigrationSource {
    /// `instances.tags`; empty when the fleet is only a group.
    pub fn selector(&self) -> BTreeMap<String, String> {
        self.instances
            .as_ref()
            .map(|i| i.tags.clone())
            .unwrap_or_default()
    }
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
    /// What is deleted once the fleet is gone (`autoScalingGroup`,
    /// `targetGroup`, `launchTemplate`); declaring it at all also takes the
    /// legacy target group out of the forward action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<Vec<String>>,
}

/// `spec.hooks` (DESIGN §3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hooks {
    #[serde(default)]
    pub pre_deploy: Vec<PreDeployHook>,
}

/// A one-off task (`RunTask`) with the new revision and a command override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreDeployHook {
    pub name: String,
    /// Default: the first essential container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    pub command: Vec<String>,
    /// Default [`DEFAULT_HOOK_TIMEOUT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

pub const DEFAULT_HOOK_TIMEOUT: &str = "15m";

/// `spec.dependsOn[]`: a service in the same cluster unless `cluster` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dependency {
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}
