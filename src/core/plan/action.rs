//! The steps a plan is made of.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// Fields that `UpdateService` can change in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UpdateField {
    TaskDefinition,
    DesiredCount,
    CapacityProviderStrategy,
    PlatformVersion,
    NetworkConfiguration,
    LoadBalancers,
    DeploymentConfiguration,
    HealthCheckGracePeriodSeconds,
    EnableExecuteCommand,
    EnableEcsManagedTags,
    PropagateTags,
    PlacementConstraints,
    PlacementStrategy,
}

/// Top-level service fields that only a new service can change.
pub const IMMUTABLE_FIELDS: [&str; 2] = ["launchType", "schedulingStrategy"];

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// Register the desired task definition; later steps use its ARN.
    RegisterTaskDefinition {
        family: String,
    },
    CreateService,
    UpdateService {
        fields: BTreeSet<UpdateField>,
    },
    /// Set these tags (user tags and ecsync's own bookkeeping).
    TagService {
        tags: BTreeMap<String, String>,
    },
    UntagService {
        keys: Vec<String>,
    },
    /// Scale to zero, then delete: the manifest is gone and pruning is on, or
    /// the service is being replaced.
    PruneService,
    /// Create the stand-in that serves while the service is replaced.
    CreateReplacement {
        name: String,
        /// `None` for a DAEMON service: ECS owns its count.
        desired_count: Option<i32>,
    },
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Self::RegisterTaskDefinition { .. } => ActionKind::RegisterTaskDefinition,
            Self::CreateService => ActionKind::CreateService,
            Self::UpdateService { .. } => ActionKind::UpdateService,
            Self::TagService { .. } => ActionKind::TagService,
            Self::UntagService { .. } => ActionKind::UntagService,
            Self::PruneService => ActionKind::PruneService,
            Self::CreateReplacement { .. } => ActionKind::CreateReplacement,
        }
    }
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// Every kind of change a pass makes to a service: its planned actions and
/// the migration's traffic steps. Also the `action` label of
/// `ecsync_actions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    RegisterTaskDefinition,
    CreateService,
    UpdateService,
    TagService,
    UntagService,
    PruneService,
    CreateReplacement,
    AdvanceTraffic,
    RollbackTraffic,
    CorrectTraffic,
    HoldTraffic,
    RecordMigrationStep,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RegisterTaskDefinition => "register_task_definition",
            Self::CreateService => "create_service",
            Self::UpdateService => "update_service",
            Self::TagService => "tag_service",
            Self::UntagService => "untag_service",
            Self::PruneService => "prune_service",
            Self::CreateReplacement => "create_replacement",
            Self::AdvanceTraffic => "advance_traffic",
            Self::RollbackTraffic => "rollback_traffic",
            Self::CorrectTraffic => "correct_traffic",
            Self::HoldTraffic => "hold_traffic",
            Self::RecordMigrationStep => "record_migration_step",
        }
    }
    /// Starts a deployment of the service.
    pub fn deploys(self) -> bool {
        matches!(self, Self::CreateService | Self::UpdateService)
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
