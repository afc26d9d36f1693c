//! The states ecsync reasons about, as enums: the run mode, a service's sync
//! state (and the one place it is derived), and the lifecycle and rollout
//! states ECS reports.

use serde::{Deserialize, Serialize};

use crate::core::hooks::HookPhase;

/// `--mode` and the `ecsync.io/sync` annotation: correct drift, or only report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Correct drift.
    #[default]
    Auto,
    /// Detect and report drift; make no mutating AWS call.
    Report,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Report => "report",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mode {0:?} must be auto or report")]
pub struct UnknownMode(pub String);

impl std::str::FromStr for Mode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Mode::Auto),
            "report" => Ok(Mode::Report),
            other => Err(UnknownMode(other.to_string())),
        }
    }
}

/// The sync state of one service. Serialised exactly as the variant name, which is also the
/// value of the `state` label of `ecsync_services`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SyncState {
    Synced,
    OutOfSync,
    Progressing,
    Degraded,
    Error,
    Held,
}

impl SyncState {
    /// Every state, in a stable order, so metrics can publish a zero for states nobody is in.
    pub const ALL: [SyncState; 6] = [
        SyncState::Synced,
        SyncState::OutOfSync,
        SyncState::Progressing,
        SyncState::Degraded,
        SyncState::Error,
        SyncState::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "Synced",
            SyncState::OutOfSync => "OutOfSync",
            SyncState::Progressing => "Progressing",
            SyncState::Degraded => "Degraded",
            SyncState::Error => "Error",
            SyncState::Held => "Held",
        }
    }

    /// The one derivation of a service's state from what its pass found and did.
    pub fn derive(f: &StateFacts) -> SyncState {
        if f.held {
            return SyncState::Held;
        }
        if f.error {
            return SyncState::Error;
        }
        if f.migration.is_some_and(|m| m.degraded) || f.hook.is_some_and(|h| h.failed()) {
            return SyncState::Degraded;
        }
        let own = if f.changed || f.hook == Some(HookPhase::Running) {
            // A running hook is waited for by requeueing, like a rollout.
            SyncState::Progressing
        } else if !f.in_sync {
            SyncState::OutOfSync
        } else if f.rollout.is_some_and(|r| r.failed()) {
            SyncState::Degraded
        } else if f.rollout.is_some_and(|r| r.in_progress()) {
            SyncState::Progressing
        } else {
            SyncState::Synced
        };
        let Some(m) = f.migration else {
            return own;
        };
        match own {
            // Hand-edited weights are drift: the migration added it to the plan.
            SyncState::Synced | SyncState::Progressing if !f.in_sync => SyncState::OutOfSync,
            // Traffic still moving: keep the daemon looking often.
            SyncState::Synced if !m.complete => SyncState::Progressing,
            s => s,
        }
    }
}

impl std::fmt::Display for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`SyncState::derive`] decides from.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateFacts<'a> {
    /// The service must not be touched (its manifest is broken, or it is protected).
    pub held: bool,
    /// Planning, applying or the migration failed, or the service is backing off.
    pub error: bool,
    /// This pass changed the service (its own steps, not traffic).
    pub changed: bool,
    /// The plan found no drift (the migration's weight drift included).
    pub in_sync: bool,
    pub rollout: Option<&'a Rollout>,
    /// The service's migration this pass, when it has one and it was decided.
    pub migration: Option<MigrationFacts>,
    /// Where its pre-deploy hooks are, when the pass moves it to a new revision.
    pub hook: Option<HookPhase>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct MigrationFacts {
    pub degraded: bool,
    /// At 100% and held there for a step interval.
    pub complete: bool,
}

/// A service's lifecycle as DescribeServices reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceStatus {
    Active,
    /// Being deleted.
    Draining,
    Inactive,
}

impl ServiceStatus {
    /// ECS's word for it; anything unknown is taken as `Active`, the state in
    /// which ecsync compares and never deletes.
    pub fn parse(s: &str) -> Self {
        match s {
            "DRAINING" => Self::Draining,
            "INACTIVE" => Self::Inactive,
            _ => Self::Active,
        }
    }
}

/// The primary deployment's `rolloutState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

impl RolloutState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "IN_PROGRESS" => Some(Self::InProgress),
            "COMPLETED" => Some(Self::Completed),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
}

/// The primary deployment as DescribeServices reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    pub rollout_state: Option<RolloutState>,
    pub rollout_reason: Option<String>,
    pub deployments: usize,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
}

impl Rollout {
    pub fn failed(&self) -> bool {
        self.rollout_state == Some(RolloutState::Failed)
    }
    pub fn in_progress(&self) -> bool {
        match self.rollout_state {
            Some(RolloutState::Completed) => self.deployments > 1,
            Some(RolloutState::InProgress) => true,
            Some(RolloutState::Failed) => false,
            // Older deployments carry no rollout state: count tasks instead.
            None => self.deployments > 1 || self.running < self.desired,
        }
    }
    /// Done rolling out: COMPLETED, or (without a rollout state) every task running.
    pub fn completed(&self) -> bool {
        match self.rollout_state {
            Some(s) => s == RolloutState::Completed,
            None => self.running >= self.desired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> StateFacts<'static> {
        StateFacts {
            in_sync: true,
            ..Default::default()
        }
    }

    #[test]
    fn states_serialise_as_their_names() {
        for state in SyncState::ALL {
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                json!(state.as_str()),
                "{state:?}"
            );
        }
        let names: Vec<_> = SyncState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "Synced",
                "OutOfSync",
                "Progressing",
                "Degraded",
                "Error",
                "Held"
            ]
        );
    }

    #[test]
    fn held_and_errors_win_over_everything() {
        let degraded = Some(MigrationFacts {
            degraded: true,
            complete: false,
        });
        let f = StateFacts {
            held: true,
            error: true,
            migration: degraded,
            ..facts()
        };
        assert_eq!(SyncState::derive(&f), SyncState::Held);
        let f = StateFacts {
            error: true,
            migration: degraded,
            ..facts()
        };
        assert_eq!(SyncState::derive(&f), SyncState::Error);
        let hook = |phase| StateFacts {
            in_sync: false,
            hook: Some(phase),
            ..facts()
        };
        assert_eq!(
            SyncState::derive(&hook(HookPhase::Failed)),
            SyncState::Degraded
        );
        assert_eq!(
            SyncState::derive(&hook(HookPhase::TimedOut)),
            SyncState::Degraded
        );
        assert_eq!(
            SyncState::derive(&hook(HookPhase::Running)),
            SyncState::Progressing
        );
        assert_eq!(
            SyncState::derive(&hook(HookPhase::Pending)),
            SyncState::OutOfSync
        );
        let f = StateFacts {
            migration: degraded,
            changed: true,
            ..facts()
        };
        assert_eq!(SyncState::derive(&f), SyncState::Degraded);
    }

    #[test]
    fn rollouts_and_drift() {
        let failed = Rollout {
            rollout_state: Some(RolloutState::Failed),
            ..Default::default()
        };
        let moving = Rollout {
            rollout_state: Some(RolloutState::InProgress),
            ..Default::default()
        };
        let state = |f: StateFacts| SyncState::derive(&f);
        assert_eq!(state(facts()), SyncState::Synced);
        let drifted = StateFacts {
            in_sync: false,
            ..facts()
        };
        assert_eq!(state(drifted), SyncState::OutOfSync);
        let changed = StateFacts {
            in_sync: false,
            changed: true,
            ..facts()
        };
        assert_eq!(state(changed), SyncState::Progressing);
        let f = StateFacts {
            rollout: Some(&failed),
            ..facts()
        };
        assert_eq!(state(f), SyncState::Degraded);
        let f = StateFacts {
            rollout: Some(&moving),
            ..facts()
        };
        assert_eq!(state(f), SyncState::Progressing);
    }

    #[test]
    fn a_migration_under_way_is_progress_and_its_drift_is_out_of_sync() {
        let moving = Some(MigrationFacts::default());
        let done = Some(MigrationFacts {
            degraded: false,
            complete: true,
        });
        let state = |f: StateFacts| SyncState::derive(&f);
        let f = StateFacts {
            migration: moving,
            ..facts()
        };
        assert_eq!(state(f), SyncState::Progressing);
        let f = StateFacts {
            migration: done,
            ..facts()
        };
        assert_eq!(state(f), SyncState::Synced);
        // Read-only weight correction: drift.
        let f = StateFacts {
            migration: moving,
            in_sync: false,
            ..facts()
        };
        assert_eq!(state(f), SyncState::OutOfSync);
        // Changes applied this pass to a migrating service with drift.
        let f = StateFacts {
            migration: moving,
            in_sync: false,
            changed: true,
            ..facts()
        };
        assert_eq!(state(f), SyncState::OutOfSync);
    }

    #[test]
    fn rollout_states_parse_from_ecs_words() {
        for s in [
            RolloutState::InProgress,
            RolloutState::Completed,
            RolloutState::Failed,
        ] {
            assert_eq!(RolloutState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert_eq!(RolloutState::parse("SOMETHING_NEW"), None);
        assert_eq!(ServiceStatus::parse("DRAINING"), ServiceStatus::Draining);
        assert_eq!(ServiceStatus::parse("INACTIVE"), ServiceStatus::Inactive);
        assert_eq!(ServiceStatus::parse("ACTIVE"), ServiceStatus::Active);
        assert_eq!("report".parse::<Mode>(), Ok(Mode::Report));
        assert!("nope".parse::<Mode>().is_err());
    }
}
