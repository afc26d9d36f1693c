//! The steps a plan is made of.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use crate::core::model::UpdateMember;

/// Top-level members only a new service can change: those `CreateService`
/// takes and `UpdateService` does not, by the model (tags have TagResource).
pub fn is_immutable(member: &str) -> bool {
    member != "tags" && crate::core::model::CREATE_ONLY_MEMBERS.contains(&member)
}

/// What `UpdateService` is sent for a member the manifest no longer sets, so
/// that ECS unsets it too: `None` where the API has no way to unset it.
pub fn cleared(member: UpdateMember) -> Option<serde_json::Value> {
    use UpdateMember as M;
    use serde_json::json;
    Some(match member {
        M::CapacityProviderStrategy
        | M::PlacementConstraints
        | M::PlacementStrategy
        | M::LoadBalancers
        | M::ServiceRegistries
        | M::VolumeConfigurations
        | M::VpcLatticeConfigurations => json!([]),
        M::HealthCheckGracePeriodSeconds => json!(0),
        M::EnableExecuteCommand | M::EnableEcsManagedTags => json!(false),
        M::PropagateTags => json!("NONE"),
        M::ServiceConnectConfiguration => json!({"enabled": false}),
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// Register the desired task definition; later steps use its ARN.
    RegisterTaskDefinition {
        family: String,
    },
    CreateService,
    UpdateService {
        fields: BTreeSet<UpdateMember>,
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
