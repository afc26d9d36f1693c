//! `/status` for scheduled tasks: one mapping from a pass's outcome, shared
//! by `/status`, the dashboard and the CLI's JSON.

use serde::{Deserialize, Serialize};

use crate::core::diff::FieldDiff;
use crate::core::manifest::ManifestSet;
use crate::core::scheduled::ScheduleState;
use crate::core::state::SyncState;
use crate::runtime::reconciler::scheduled::ScheduledOutcome;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledTaskStatus {
    /// The schedule's name, in the group `ecsync-<controller-id>`.
    pub name: String,
    pub cluster: Option<String>,
    pub source: Option<String>,
    pub state: SyncState,
    /// The expression and the schedule's own state, as Git declares them.
    pub schedule: Option<String>,
    pub schedule_state: Option<ScheduleState>,
    pub drift: Vec<FieldDiff>,
    /// The actions applied (or, when nothing may change, that would be).
    pub actions: Vec<String>,
    pub last_error: Option<String>,
    pub message: Option<String>,
    /// The revision the schedule was pointed at by the last pass, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_arn: Option<String>,
}

/// One scheduled task as `/status` shows it; `phase_error` is the phase's
/// own failure (the group could not be read).
pub fn scheduled_task_status(
    o: &ScheduledOutcome,
    set: &ManifestSet,
    phase_error: Option<&str>,
) -> ScheduledTaskStatus {
    let desired = set.scheduled.iter().find(|d| d.name == o.plan.name);
    let actions = if o.done.is_empty() {
        &o.plan.actions
    } else {
        &o.done
    };
    ScheduledTaskStatus {
        name: o.plan.name.clone(),
        cluster: o.plan.cluster.clone(),
        source: o.plan.source.clone(),
        state: o.state,
        schedule: desired.map(|d| d.spec.schedule.clone()),
        schedule_state: desired.map(|d| d.spec.state.unwrap_or_default()),
        drift: o.plan.drift.clone(),
        actions: actions.iter().map(|a| a.as_str().to_string()).collect(),
        last_error: o.error.clone().or_else(|| phase_error.map(str::to_string)),
        message: o.plan.held.clone().or_else(|| o.plan.message.clone()),
        task_definition_arn: o.task_definition_arn.clone(),
    }
}
