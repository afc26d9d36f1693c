//! What one pass found and did, per service and as a whole.

use std::collections::BTreeSet;

use super::decommission::DecommissionReport;
use super::migration::MigrationReport;
use crate::adapters::aws::AwsError;
use crate::adapters::aws::ecs::apply::Applied;
use crate::core::hooks::HookStatus;
use crate::core::migration::Kind;
use crate::core::model::ServiceKey;
use crate::core::plan::{ActionKind, ServicePlan};
use crate::core::state::{MigrationFacts, StateFacts, SyncState};

#[derive(Debug, Clone)]
pub struct ServiceOutcome {
    pub plan: ServicePlan,
    /// Derived by [`ServiceOutcome::settle`] from everything else here.
    pub state: SyncState,
    /// What this pass changed, in order: planned actions, then traffic.
    pub done: Vec<ActionKind>,
    pub error: Option<String>,
    /// The service's traffic migration this pass, when its manifest has one.
    pub migration: Option<MigrationReport>,
    /// The revision this pass registered for it, if it registered one.
    pub task_definition_arn: Option<String>,
    /// Its pre-deploy hooks, when the plan moves it to a new revision.
    pub hook: Option<HookStatus>,
}

impl ServiceOutcome {
    pub fn new(plan: ServicePlan, applied: Option<Applied>, result: Result<(), AwsError>) -> Self {
        let (done, task_definition_arn) = applied
            .map(|a| (a.done, a.task_definition_arn))
            .unwrap_or_default();
        let error = plan
            .error
            .clone()
            .or_else(|| result.err().map(|e| e.to_string()));
        let mut o = ServiceOutcome {
            plan,
            state: SyncState::Synced,
            done,
            error,
            migration: None,
            task_definition_arn,
            hook: None,
        };
        o.settle();
        o
    }

    /// Derive the state again after anything above changed.
    pub fn settle(&mut self) {
        let migration = self
            .migration
            .as_ref()
            .and_then(|m| m.decision.as_ref())
            .map(|d| MigrationFacts {
                degraded: d.degraded,
                complete: d.kind == Kind::Complete,
            });
        self.state = SyncState::derive(&StateFacts {
            held: self.plan.held.is_some(),
            error: self.error.is_some(),
            changed: !self.done.is_empty(),
            in_sync: self.plan.in_sync(),
            rollout: self.plan.rollout.as_ref(),
            migration,
            hook: self.hook.as_ref().map(|h| h.phase),
        });
    }

    /// Changed anything this pass, traffic included.
    pub fn changed(&self) -> bool {
        !self.done.is_empty() || self.migration.as_ref().is_some_and(|m| m.applied)
    }
}

#[derive(Debug, Default)]
pub struct PassReport {
    pub revision: String,
    pub services: Vec<ServiceOutcome>,
    /// Observation failed as a whole (e.g. credentials): nothing was planned.
    pub error: Option<String>,
    /// EC2 instances pending decommission and what this pass did about them.
    pub decommission: DecommissionReport,
    /// `kind: ScheduledTask`: the schedule group and each schedule.
    pub scheduled: super::scheduled::ScheduledReport,
    /// `Some`: a targeted pass that looked at these services only; every
    /// other service, the schedules and the fleets are as the last pass left
    /// them, so whoever reads this report merges it rather than replaces.
    pub targeted: Option<BTreeSet<ServiceKey>>,
    /// What a targeted pass could not decide alone: the next pass is full.
    pub follow_up: Option<String>,
}

impl PassReport {
    pub fn has_errors(&self) -> bool {
        self.error.is_some()
            || self.services.iter().any(|s| s.state == SyncState::Error)
            || self.decommission.has_errors()
            || self.scheduled.has_errors()
    }
    pub fn drifted(&self) -> impl Iterator<Item = &ServiceOutcome> {
        self.services
            .iter()
            .filter(|s| !s.plan.in_sync() && s.plan.held.is_none())
    }
}
