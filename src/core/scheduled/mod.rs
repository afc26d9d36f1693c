//! `kind: ScheduledTask`: a cron job as an EventBridge Scheduler schedule
//! with an ECS target, in the group `ecsync-<controller-id>` (DESIGN §3).
//!
//! Pure, like the rest of `core`: the shapes, the normalised view both sides
//! are compared in, the structured drift and the plan. The shell observes
//! the group (`adapters::aws::scheduler`) and carries the plan out
//! (`runtime::reconciler::scheduled`).

pub mod expression;
mod plan;
mod shape;

pub use plan::*;
pub use shape::*;

use serde::Serialize;
use serde_json::Value;

use crate::core::diff::{FieldDiff, diff_values, to_comparable};
use crate::core::model::{CapacityProviderStrategyItem, NetworkConfiguration, TaskDefinition};
use crate::core::state::Mode;

/// The group that holds every schedule of one controller.
pub fn group_name(controller_id: &str) -> String {
    format!("ecsync-{controller_id}")
}

pub const DEFAULT_TIMEZONE: &str = "UTC";

/// A scheduled task as Git declares it, normalised and ready to diff.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredScheduledTask {
    /// The schedule's name: unique in the group.
    pub name: String,
    /// The manifest file it came from, relative to the repository root.
    pub source: String,
    /// `ecsync.io/sync: report` on this one manifest.
    pub sync: Mode,
    /// With `taskDefinition` resolved (from the Service it names, if so):
    /// `task_definition_from` is kept only to say where it came from.
    pub spec: ScheduledTaskSpec,
    /// The normalised task definition the schedule runs.
    pub task_definition: TaskDefinition,
    /// Same hash as a Service's: equal hashes, equal content, one revision.
    pub task_definition_hash: String,
}

impl DesiredScheduledTask {
    /// The view compared against the live schedule.
    pub fn view(&self) -> ScheduleView {
        view_of(&self.spec)
    }
}

/// The comparable view of a normalised spec (its overrides as the `Input`
/// JSON they are sent as).
pub fn view_of(s: &ScheduledTaskSpec) -> ScheduleView {
    ScheduleView {
        cluster: s.cluster.clone(),
        schedule: s.schedule.clone(),
        timezone: s
            .timezone
            .clone()
            .unwrap_or_else(|| DEFAULT_TIMEZONE.into()),
        state: s.state.unwrap_or_default(),
        role_arn: s.role_arn.clone(),
        launch_type: s.launch_type.clone(),
        capacity_provider_strategy: s.capacity_provider_strategy.clone(),
        network_configuration: s.network_configuration.clone(),
        overrides: s.overrides.as_ref().map(overrides_value),
        task_count: s.task_count.unwrap_or(1),
    }
}

/// What a schedule says, less its task definition, in the manifest's names:
/// the one shape drift is computed in, built alike from both sides.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    /// The cluster's name (the target names it by ARN).
    pub cluster: String,
    pub schedule: String,
    pub timezone: String,
    pub state: ScheduleState,
    pub role_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_provider_strategy: Option<Vec<CapacityProviderStrategyItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<NetworkConfiguration>,
    /// The target's `Input`, parsed: a `TaskOverride` when it is one, else
    /// whatever JSON (or string) someone put there, so it shows as drift.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overrides: Option<Value>,
    pub task_count: i32,
}

/// Normalise a spec in place: both sides of a comparison go through this.
pub fn normalize(spec: &mut ScheduledTaskSpec) {
    if let Some(td) = &mut spec.task_definition {
        crate::core::normalize::normalize_task_definition(td);
    }
    if let Some(vpc) = spec
        .network_configuration
        .as_mut()
        .and_then(|n| n.awsvpc_configuration.as_mut())
    {
        crate::core::normalize::normalize_awsvpc(vpc);
    }
    // Weight and base default to 0: written or not, the same strategy.
    for item in spec.capacity_provider_strategy.iter_mut().flatten() {
        item.weight = item.weight.filter(|w| *w != 0);
        item.base = item.base.filter(|b| *b != 0);
    }
    if spec
        .capacity_provider_strategy
        .as_ref()
        .is_some_and(Vec::is_empty)
    {
        spec.capacity_provider_strategy = None;
    }
    if let Some(o) = &mut spec.overrides {
        normalize_overrides(o);
        if *o == TaskOverride::default() {
            spec.overrides = None;
        }
    }
    if spec.timezone.is_none() {
        spec.timezone = Some(DEFAULT_TIMEZONE.into());
    }
    spec.state.get_or_insert_default();
    spec.task_count.get_or_insert(1);
}

fn normalize_overrides(o: &mut TaskOverride) {
    if let Some(cs) = &mut o.container_overrides {
        cs.sort_by(|a, b| a.name.cmp(&b.name));
        for c in cs.iter_mut() {
            // Environment is a set in ECS: order is not meaning.
            if let Some(env) = &mut c.environment {
                env.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
    }
    if o.container_overrides.as_ref().is_some_and(Vec::is_empty) {
        o.container_overrides = None;
    }
}

/// The target `Input` for these overrides: the JSON `RunTask` takes.
pub fn overrides_value(o: &TaskOverride) -> Value {
    to_comparable(o)
}

/// A live `Input` read back: a `TaskOverride` normalised as the manifest's
/// is, or the raw text's JSON when it is not one.
pub fn parse_input(input: &str) -> Option<Value> {
    if input.trim().is_empty() {
        return None;
    }
    match serde_json::from_str::<TaskOverride>(input) {
        Ok(mut o) => {
            normalize_overrides(&mut o);
            (o != TaskOverride::default()).then(|| overrides_value(&o))
        }
        Err(_) => {
            Some(serde_json::from_str(input).unwrap_or_else(|_| Value::String(input.to_string())))
        }
    }
}

/// The task definition a live schedule runs, as far as it is known.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveTaskDefinition {
    /// Described (once per ARN per process): normalised content and its hash.
    Described {
        hash: String,
        spec: Box<TaskDefinition>,
    },
    /// Could not be described (deleted, or not a task definition).
    Unknown,
}

/// One schedule in the group, as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSchedule {
    pub name: String,
    pub view: ScheduleView,
    /// `None`: the target is not an ECS task (someone put another target in
    /// ecsync's group).
    pub task_definition_arn: Option<String>,
    pub task_definition: LiveTaskDefinition,
}

/// Field-level drift of a desired scheduled task against its live schedule.
pub fn drift(d: &DesiredScheduledTask, live: &LiveSchedule) -> Vec<FieldDiff> {
    let mut out = diff_values("", &to_comparable(&d.view()), &to_comparable(&live.view));
    match &live.task_definition {
        LiveTaskDefinition::Described { hash, .. } if *hash == d.task_definition_hash => {}
        LiveTaskDefinition::Described { spec, .. } => {
            let mut live_td = to_comparable(spec.as_ref());
            // Tags of a definition are not the schedule's: ecsync's own
            // bookkeeping is there, and declared ones are compared below.
            if d.task_definition.tags.is_none()
                && let Some(o) = live_td.as_object_mut()
            {
                o.remove("tags");
            }
            let found = diff_values(
                "taskDefinition",
                &to_comparable(&d.task_definition),
                &live_td,
            );
            if found.is_empty() {
                // Equal where it shows, different where it hashes: say so
                // rather than register nothing forever.
                out.push(td_changed(d, live));
            } else {
                out.extend(found);
            }
        }
        LiveTaskDefinition::Unknown => out.push(td_changed(d, live)),
    }
    out
}

fn td_changed(d: &DesiredScheduledTask, live: &LiveSchedule) -> FieldDiff {
    FieldDiff {
        path: "taskDefinition".into(),
        desired: Value::String(format!(
            "{} (content {})",
            d.task_definition.family, d.task_definition_hash
        )),
        live: live
            .task_definition_arn
            .clone()
            .map_or(Value::Null, Value::String),
    }
}

#[cfg(test)]
mod tests;
