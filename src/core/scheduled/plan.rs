//! What one pass should do about the schedules: plain data, decided from
//! the desired set and what is live now (level-triggered).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{DesiredScheduledTask, LiveSchedule, drift};
use crate::core::diff::FieldDiff;
use crate::core::state::{Mode, StateFacts, SyncState};

/// The schedule group as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    Missing,
    /// Tagged `ecsync.io/managed-by=<this controller>`; its ARN.
    Owned {
        arn: String,
    },
    /// Exists under ecsync's name, but another controller's or nobody's:
    /// never written to, never pruned from.
    NotOwned {
        arn: String,
    },
}

/// Everything observed about the schedules.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedSchedules {
    pub group: Group,
    pub schedules: BTreeMap<String, LiveSchedule>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum ScheduledAction {
    /// The definition's content exists in no revision known this pass.
    RegisterTaskDefinition {
        family: String,
    },
    CreateSchedule,
    /// The top-level fields that differ (UpdateSchedule replaces the whole
    /// schedule; these say why).
    UpdateSchedule {
        fields: BTreeSet<String>,
    },
    /// No manifest declares it any more, and `--prune` is on.
    DeleteSchedule,
}

impl ScheduledAction {
    /// The `action` label of `ecsync_actions_total`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RegisterTaskDefinition { .. } => "register_task_definition",
            Self::CreateSchedule => "create_schedule",
            Self::UpdateSchedule { .. } => "update_schedule",
            Self::DeleteSchedule => "delete_schedule",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledPlan {
    pub name: String,
    /// From the manifest, or the live target for one Git no longer declares.
    pub cluster: Option<String>,
    pub source: Option<String>,
    pub exists: bool,
    pub drift: Vec<FieldDiff>,
    pub actions: Vec<ScheduledAction>,
    pub report_only: bool,
    pub held: Option<String>,
    pub error: Option<String>,
    pub message: Option<String>,
    /// A revision with the desired content that already exists: the
    /// schedule points at it and nothing is registered.
    pub task_definition_arn: Option<String>,
}

impl ScheduledPlan {
    fn new(name: &str) -> Self {
        ScheduledPlan {
            name: name.to_string(),
            cluster: None,
            source: None,
            exists: false,
            drift: Vec::new(),
            actions: Vec::new(),
            report_only: false,
            held: None,
            error: None,
            message: None,
            task_definition_arn: None,
        }
    }

    pub fn in_sync(&self) -> bool {
        self.drift.is_empty() && self.error.is_none() && self.exists
    }

    pub fn runnable(&self) -> bool {
        !self.report_only && self.held.is_none() && self.error.is_none() && !self.actions.is_empty()
    }

    /// The one state derivation, from what this pass found and did: a
    /// schedule's change takes effect at once, so applied means in sync.
    pub fn state(&self, applied: bool, error: bool) -> SyncState {
        SyncState::derive(&StateFacts {
            held: self.held.is_some(),
            error: error || self.error.is_some(),
            changed: false,
            in_sync: applied || self.in_sync(),
            rollout: None,
            migration: None,
            hook: None,
        })
    }
}

/// What one pass should do about the group and each schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulesPlan {
    pub group: String,
    /// The group must be created (and tagged) before any schedule.
    pub create_group: bool,
    pub tasks: Vec<ScheduledPlan>,
}

pub struct ScheduledContext<'a> {
    pub controller_id: &'a str,
    pub mode: Mode,
    /// `Some(max per pass)` with `--prune`.
    pub prune: Option<usize>,
    /// Content hash → ARN of a revision with that content, known this pass
    /// (live services' and schedules' definitions, and those just registered).
    pub known_revisions: &'a BTreeMap<String, String>,
    /// Clusters that do not exist.
    pub missing_clusters: &'a BTreeSet<String>,
    /// Names declared by manifests that failed: never pruned.
    pub held: &'a BTreeSet<String>,
    /// Any manifest failed, or the set declares nothing: never prune.
    pub prune_blocked: Option<&'a str>,
}

pub fn plan_schedules(
    desired: &[DesiredScheduledTask],
    observed: &ObservedSchedules,
    ctx: &ScheduledContext,
) -> SchedulesPlan {
    let group = super::group_name(ctx.controller_id);
    let not_owned = match &observed.group {
        Group::NotOwned { arn } => Some(format!(
            "the schedule group {arn} exists but is not tagged {}={}: ecsync leaves it alone",
            crate::core::tags::MANAGED_BY,
            ctx.controller_id
        )),
        _ => None,
    };
    let mut tasks: Vec<ScheduledPlan> = desired
        .iter()
        .map(|d| {
            let mut p = plan_one(d, observed.schedules.get(&d.name), ctx);
            if let Some(e) = &not_owned {
                p.actions.clear();
                p.error = Some(e.clone());
            }
            p
        })
        .collect();
    let create_group = observed.group == Group::Missing && !desired.is_empty();
    for name in ctx.held {
        let mut p = ScheduledPlan::new(name);
        p.exists = observed.schedules.contains_key(name);
        p.report_only = true;
        p.held = Some("its manifest has errors".into());
        tasks.push(p);
    }
    if not_owned.is_none() {
        tasks.extend(plan_orphans(desired, observed, ctx));
    }
    tasks.sort_by(|a, b| a.name.cmp(&b.name));
    SchedulesPlan {
        group,
        create_group,
        tasks,
    }
}

fn plan_one(
    d: &DesiredScheduledTask,
    live: Option<&LiveSchedule>,
    ctx: &ScheduledContext,
) -> ScheduledPlan {
    let mut p = ScheduledPlan::new(&d.name);
    p.cluster = Some(d.spec.cluster.clone());
    p.source = Some(d.source.clone());
    p.exists = live.is_some();
    p.report_only = ctx.mode == Mode::Report || d.sync == Mode::Report;
    if ctx.missing_clusters.contains(&d.spec.cluster) {
        p.error = Some(format!("cluster {:?} not found", d.spec.cluster));
        return p;
    }
    let known = ctx.known_revisions.get(&d.task_definition_hash);
    let register = |p: &mut ScheduledPlan| match known {
        Some(arn) => p.task_definition_arn = Some(arn.clone()),
        None => p.actions.push(ScheduledAction::RegisterTaskDefinition {
            family: d.task_definition.family.clone(),
        }),
    };
    let Some(live) = live else {
        p.drift.push(FieldDiff {
            path: String::new(),
            desired: "schedule exists".into(),
            live: serde_json::Value::Null,
        });
        register(&mut p);
        p.actions.push(ScheduledAction::CreateSchedule);
        return p;
    };
    p.drift = drift(d, live);
    if p.drift.is_empty() {
        return p;
    }
    let fields: BTreeSet<String> = p
        .drift
        .iter()
        .map(|f| {
            f.path
                .split(['.', '['])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    if fields.contains("taskDefinition") {
        register(&mut p);
    } else {
        p.task_definition_arn = live.task_definition_arn.clone();
    }
    if live.task_definition_arn.is_none() {
        p.message = Some("the live schedule's target is not an ECS task: it is replaced".into());
    }
    p.actions.push(ScheduledAction::UpdateSchedule { fields });
    p
}

/// Schedules in the group that no manifest declares: drift; with `--prune`
/// the first `max` are deleted, the rest wait for later passes.
fn plan_orphans(
    desired: &[DesiredScheduledTask],
    observed: &ObservedSchedules,
    ctx: &ScheduledContext,
) -> Vec<ScheduledPlan> {
    let declared: BTreeSet<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    let mut budget = ctx.prune.unwrap_or(0);
    let mut plans = Vec::new();
    for (name, live) in &observed.schedules {
        if declared.contains(name.as_str()) || ctx.held.contains(name) {
            continue;
        }
        let mut p = ScheduledPlan::new(name);
        p.exists = true;
        p.cluster = Some(live.view.cluster.clone()).filter(|c| !c.is_empty());
        p.report_only = ctx.mode == Mode::Report;
        p.drift.push(FieldDiff {
            path: String::new(),
            desired: serde_json::Value::Null,
            live: "schedule exists".into(),
        });
        if ctx.prune.is_none() {
            p.message = Some("no longer in Git; run with --prune to delete it".into());
        } else if let Some(why) = ctx.prune_blocked {
            p.held = Some(format!("no longer in Git, but not pruned: {why}"));
        } else if budget == 0 {
            p.message = Some("no longer in Git; prune deferred by --max-prune-per-pass".into());
        } else {
            budget -= 1;
            p.message = Some("no longer in Git: pruning".into());
            p.actions.push(ScheduledAction::DeleteSchedule);
        }
        plans.push(p);
    }
    plans
}
