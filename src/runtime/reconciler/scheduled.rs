//! The scheduled-task phase of a pass (DESIGN §3 `kind: ScheduledTask`):
//! after the services, so a revision a Service registered this pass is
//! known and reused; then observe the group, plan (`core::scheduled`), apply.
//!
//! Nothing here runs, not even a read, when no manifest declares a
//! ScheduledTask and `--prune` is off: the fleet's observation cost does not
//! grow for those who do not use it.

use std::collections::BTreeMap;

use tracing::{Instrument, info_span, warn};

use super::ServiceOutcome;
use crate::adapters::aws::ecs::apply::register_task_definition;
use crate::adapters::aws::ecs::observe::TaskDefinitionCache;
use crate::adapters::aws::scheduler::{self, ScheduleWrite};
use crate::adapters::aws::{AwsError, Clients};
use crate::core::manifest::ManifestSet;
use crate::core::plan::{LiveTaskDefinition as ServiceTaskDefinition, Observed};
use crate::core::scheduled::{
    DesiredScheduledTask, Group, LiveTaskDefinition, ScheduledAction, ScheduledContext,
    ScheduledPlan, group_name, plan_schedules,
};
use crate::core::shard::Shard;
use crate::core::state::{Mode, SyncState};
use crate::runtime::metrics::Metrics;

/// One scheduled task: what the pass found, decided and did.
#[derive(Debug, Clone)]
pub struct ScheduledOutcome {
    pub plan: ScheduledPlan,
    pub state: SyncState,
    /// The actions carried out, in order.
    pub done: Vec<ScheduledAction>,
    pub error: Option<String>,
    /// The revision the schedule now runs, when this pass set it.
    pub task_definition_arn: Option<String>,
}

impl ScheduledOutcome {
    fn new(plan: ScheduledPlan, done: Vec<ScheduledAction>, error: Option<String>) -> Self {
        let applied = !plan.actions.is_empty() && done.len() == plan.actions.len();
        let error = plan.error.clone().or(error);
        ScheduledOutcome {
            state: plan.state(applied, error.is_some()),
            task_definition_arn: plan.task_definition_arn.clone(),
            plan,
            done,
            error,
        }
    }
}

/// The phase's part of a pass report.
#[derive(Debug, Clone, Default)]
pub struct ScheduledReport {
    /// The group's name; empty when the phase did not run.
    pub group: String,
    pub tasks: Vec<ScheduledOutcome>,
    /// Observing the group failed: nothing was planned.
    pub error: Option<String>,
    pub group_created: bool,
    /// The group must be created (shown by `diff` and `--dry-run`).
    pub create_group: bool,
}

impl ScheduledReport {
    pub fn has_errors(&self) -> bool {
        self.error.is_some() || self.tasks.iter().any(|t| t.state == SyncState::Error)
    }
    pub fn drifted(&self) -> impl Iterator<Item = &ScheduledOutcome> {
        self.tasks
            .iter()
            .filter(|t| !t.plan.in_sync() && t.plan.held.is_none())
    }
}

pub struct Phase<'a> {
    pub clients: &'a Clients,
    pub metrics: &'a Metrics,
    pub cache: &'a TaskDefinitionCache,
    pub controller_id: &'a str,
    pub mode: Mode,
    pub prune: Option<usize>,
    pub set: &'a ManifestSet,
    pub observed: &'a Observed,
    pub services: &'a [ServiceOutcome],
    /// With sharding: `set` holds this shard's schedules only, and the live
    /// schedules other shards own are left out before anything is planned
    /// (never updated, reported or pruned here). `whole` is the set before it
    /// was scoped: where each declared schedule now belongs.
    pub shard: Option<Shard>,
    pub whole: &'a ManifestSet,
}

pub fn needed(set: &ManifestSet, prune: Option<usize>) -> bool {
    !set.scheduled.is_empty() || !set.held_scheduled.is_empty() || prune.is_some()
}

pub async fn phase(p: &Phase<'_>) -> ScheduledReport {
    if !needed(p.set, p.prune) {
        return ScheduledReport::default();
    }
    let group = group_name(p.controller_id);
    run(p, &group)
        .instrument(info_span!("scheduled", group = %group))
        .await
}

async fn run(p: &Phase<'_>, group: &str) -> ScheduledReport {
    let mut report = ScheduledReport {
        group: group.to_string(),
        ..Default::default()
    };
    let observed = match scheduler::observe(p.clients, group, p.controller_id, p.cache).await {
        Ok(mut o) => {
            if let Some(shard) = p.shard {
                let declared: BTreeMap<&str, &str> = p
                    .whole
                    .scheduled
                    .iter()
                    .map(|t| (t.name.as_str(), t.spec.cluster.as_str()))
                    .collect();
                o.schedules
                    .retain(|name, live| shard.owns_schedule(name, &live.view.cluster, &declared));
            }
            o
        }
        Err(e) => {
            warn!(error = %e, "observing the schedule group failed");
            report.error = Some(e.to_string());
            return report;
        }
    };
    let known = known_revisions(p, &observed.schedules);
    let prune_blocked = if !p.set.errors.is_empty() || !p.set.broken_files.is_empty() {
        Some("a manifest has errors (one may declare it)")
    } else if p.set.services.is_empty() && p.set.scheduled.is_empty() {
        Some("the manifest set is empty")
    } else {
        None
    };
    let ctx = ScheduledContext {
        controller_id: p.controller_id,
        mode: p.mode,
        prune: p.prune,
        known_revisions: &known,
        missing_clusters: &p.observed.missing_clusters,
        held: &p.set.held_scheduled,
        prune_blocked,
    };
    let plan = plan_schedules(&p.set.scheduled, &observed, &ctx);
    report.create_group = plan.create_group;
    let desired: BTreeMap<&str, &DesiredScheduledTask> = p
        .set
        .scheduled
        .iter()
        .map(|d| (d.name.as_str(), d))
        .collect();
    // Read once: a fence that closes mid-pass is enforced call by call.
    let read_only = p.clients.read_only.is_on();
    let any_runnable = plan.tasks.iter().any(ScheduledPlan::runnable);
    let mut group_arn = match &observed.group {
        Group::Owned { arn } => Some(arn.clone()),
        _ => None,
    };
    let mut group_error = None;
    if plan.create_group && any_runnable && !read_only {
        match scheduler::create_group(p.clients, group, p.controller_id).await {
            Ok(arn) => {
                p.metrics.action("create_schedule_group", "ok");
                report.group_created = true;
                group_arn = Some(arn);
            }
            Err(e) => {
                p.metrics.action("create_schedule_group", "error");
                warn!(error = %e, "creating the schedule group failed");
                group_error = Some(e.to_string());
            }
        }
    }
    for task in plan.tasks {
        if read_only || !task.runnable() {
            report
                .tasks
                .push(ScheduledOutcome::new(task, Vec::new(), None));
            continue;
        }
        let (Some(arn), None) = (&group_arn, &group_error) else {
            let why = group_error
                .clone()
                .unwrap_or_else(|| format!("schedule group {group} not found"));
            report
                .tasks
                .push(ScheduledOutcome::new(task, Vec::new(), Some(why)));
            continue;
        };
        let d = desired.get(task.name.as_str()).copied();
        let span = info_span!("schedule", schedule = %task.name);
        let outcome = apply(p, group, arn, d, task).instrument(span).await;
        report.tasks.push(outcome);
    }
    report
}

/// Carry one plan out, action by action; the first failure stops it.
async fn apply(
    p: &Phase<'_>,
    group: &str,
    group_arn: &str,
    d: Option<&DesiredScheduledTask>,
    mut plan: ScheduledPlan,
) -> ScheduledOutcome {
    let mut done = Vec::new();
    let mut td_arn = plan.task_definition_arn.clone();
    let why: Vec<String> = plan.drift.iter().map(|f| f.path.clone()).collect();
    let mut error = None;
    for action in &plan.actions {
        let result: Result<(), AwsError> = match (action, d) {
            (ScheduledAction::RegisterTaskDefinition { family }, Some(d)) => {
                register_task_definition(
                    p.clients,
                    &d.task_definition,
                    &d.task_definition_hash,
                    p.controller_id,
                )
                .await
                .map(|arn| {
                    tracing::info!(schedule = %d.name, %family, task_definition = %arn,
                                   hash = %d.task_definition_hash, "registered task definition");
                    td_arn = Some(arn);
                })
            }
            (ScheduledAction::CreateSchedule | ScheduledAction::UpdateSchedule { .. }, Some(d)) => {
                let w = ScheduleWrite {
                    group,
                    group_arn,
                    desired: d,
                    task_definition_arn: td_arn.as_deref().unwrap_or_default(),
                    why: &why,
                };
                if matches!(action, ScheduledAction::CreateSchedule) {
                    scheduler::create_schedule(p.clients, &w).await
                } else {
                    scheduler::update_schedule(p.clients, &w).await
                }
            }
            (ScheduledAction::DeleteSchedule, None) => {
                scheduler::delete_schedule(p.clients, group, &plan.name).await
            }
            // A plan pairs desired-side actions with a manifest and a delete
            // with none; anything else is a bug, said rather than done.
            _ => Err(AwsError::Incomplete(format!(
                "{} planned for {} without its manifest",
                action.as_str(),
                plan.name
            ))),
        };
        match result {
            Ok(()) => {
                p.metrics.action(action.as_str(), "ok");
                done.push(action.clone());
            }
            Err(e) => {
                p.metrics.action(action.as_str(), "error");
                warn!(error = %e, "apply failed");
                error = Some(e.to_string());
                break;
            }
        }
    }
    plan.task_definition_arn = td_arn;
    ScheduledOutcome::new(plan, done, error)
}

/// Content hash → a revision with that content: the live services', the
/// live schedules', and what the services phase registered this pass.
fn known_revisions(
    p: &Phase<'_>,
    schedules: &BTreeMap<String, crate::core::scheduled::LiveSchedule>,
) -> BTreeMap<String, String> {
    let mut known = BTreeMap::new();
    for live in p.observed.services.values().filter(|l| l.is_active()) {
        let hash = match &live.task_definition {
            ServiceTaskDefinition::Hash(h) => Some(h),
            ServiceTaskDefinition::Described {
                hash, unmanaged, ..
            } if unmanaged.is_empty() => Some(hash),
            _ => None,
        };
        if let Some(h) = hash {
            known.insert(h.clone(), live.task_definition_arn.clone());
        }
    }
    for s in schedules.values() {
        if let (LiveTaskDefinition::Described { hash, .. }, Some(arn)) =
            (&s.task_definition, &s.task_definition_arn)
        {
            known.insert(hash.clone(), arn.clone());
        }
    }
    let hashes: BTreeMap<_, _> = p
        .set
        .services
        .iter()
        .map(|d| (&d.key, d.task_definition_hash.clone()))
        .collect();
    for o in p.services {
        if let Some(arn) = &o.task_definition_arn {
            let hash = o
                .plan
                .effective
                .as_ref()
                .map(|e| e.task_definition_hash.clone())
                .or_else(|| hashes.get(&o.plan.key).cloned());
            if let Some(h) = hash {
                known.insert(h, arn.clone());
            }
        }
    }
    known
}
