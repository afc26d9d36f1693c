//! A pass's report, as the facts the core's event rules read.

use std::time::SystemTime;

use crate::core::events::{
    CleanupFacts, GroupFacts, InstanceFacts, MigrationFacts, PassFacts, ServiceFacts,
};
use crate::core::state::Mode;
use crate::runtime::reconciler::PassReport;

pub fn pass_facts<'a>(
    report: &'a PassReport,
    controller_id: &'a str,
    mode: Mode,
    git_error: Option<&'a str>,
    now: SystemTime,
) -> PassFacts<'a> {
    PassFacts {
        controller_id,
        revision: &report.revision,
        mode,
        now,
        error: report.error.as_deref(),
        git_error,
        services: report
            .services
            .iter()
            .map(|o| ServiceFacts {
                key: &o.plan.key,
                state: o.state,
                exists: o.plan.exists,
                drift: &o.plan.drift,
                replace: &o.plan.replace,
                held: o.plan.held.is_some(),
                report_only: o.plan.report_only,
                error: o.error.as_deref(),
                done: &o.done,
                rollout: o.plan.rollout.as_ref(),
                migration: o.migration.as_ref().and_then(|m| {
                    m.decision.as_ref().map(|decision| MigrationFacts {
                        decision,
                        applied: m.applied,
                    })
                }),
                hook: o.hook.as_ref(),
            })
            .collect(),
        instances: report
            .decommission
            .instances
            .iter()
            .map(|i| InstanceFacts {
                plan: &i.plan,
                done: &i.done,
                error: i.error.as_deref(),
            })
            .collect(),
        cleanups: report
            .decommission
            .cleanup
            .iter()
            .map(|c| CleanupFacts {
                plan: &c.plan,
                done: &c.done,
            })
            .collect(),
        groups: report
            .decommission
            .groups
            .iter()
            .map(|g| GroupFacts {
                plan: &g.plan,
                done: &g.done,
            })
            .collect(),
    }
}
