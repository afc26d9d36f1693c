//! Replacing a service whose immutable fields changed, and pruning the
//! services (and stand-ins) that Git no longer declares.

use std::collections::BTreeSet;

use super::{Action, LiveService, Observed, PlanContext, ServicePlan};
use crate::core::diff::FieldDiff;
use crate::core::manifest::{DesiredService, ManifestSet};
use crate::core::model::ServiceKey;
use crate::core::state::Mode;
use crate::core::tags;

/// The stand-in that serves while a service is replaced under its own name.
pub const REPLACEMENT_SUFFIX: &str = "-ecsync-next";

pub fn replacement_key(key: &ServiceKey) -> ServiceKey {
    ServiceKey {
        cluster: key.cluster.clone(),
        name: format!("{}{REPLACEMENT_SUFFIX}", key.name),
    }
}

pub(super) fn stable(live: &LiveService) -> bool {
    !live.rollout.in_progress()
        && !live.rollout.failed()
        && live.rollout.running >= live.rollout.desired
}

/// ECS has no in-place change for immutable fields and no two services of one
/// name, so a replacement never leaves the service without tasks:
/// 1. create `<name>-ecsync-next` with the new spec, wait until it is stable;
/// 2. delete the old `<name>` (traffic stays on the stand-in), wait until gone;
/// 3. create `<name>` anew (the ordinary create path), wait until stable;
/// 4. delete the stand-in (`plan_orphans`).
///
/// Every step is decided from what is live, so a restart resumes where it was.
pub(super) fn plan_replacement(
    d: &DesiredService,
    live: &LiveService,
    observed: &Observed,
    ctx: &PlanContext,
    plan: &mut ServicePlan,
) {
    if ctx.prune.is_none() {
        plan.message = Some(format!(
            "{} cannot change in place: run with --prune to replace the service",
            plan.replace.join(", ")
        ));
        return;
    }
    let next_key = replacement_key(&d.key);
    if next_key.name.len() > 255 {
        plan.error = Some("service name too long to replace (needs room for -ecsync-next)".into());
        return;
    }
    match observed.services.get(&next_key).filter(|n| n.is_active()) {
        Some(next) if next.managed_by() != Some(ctx.controller_id) => {
            plan.error = Some(format!(
                "cannot replace: {} exists and is not managed by {}",
                next_key.name, ctx.controller_id
            ));
        }
        None => {
            plan.message = Some(format!(
                "replacing: starting {} with the new spec",
                next_key.name
            ));
            plan.actions.push(Action::RegisterTaskDefinition {
                family: d.spec.task_definition.family.clone(),
            });
            plan.actions.push(Action::CreateReplacement {
                name: next_key.name,
                desired_count: (!d.spec.is_daemon())
                    .then(|| d.spec.desired_count.unwrap_or(live.rollout.desired)),
            });
        }
        Some(next) if !stable(next) => {
            plan.message = Some(format!(
                "replacing: waiting for {} to become stable",
                next_key.name
            ));
        }
        Some(_) => {
            plan.message = Some(format!(
                "replacing: {} is stable; deleting the old service",
                next_key.name
            ));
            plan.actions.push(Action::PruneService);
        }
    }
}

/// Services this controller owns whose manifest is gone. Each is drift; with
/// `--prune` the first `max` unprotected ones are deleted, the rest wait.
pub(super) fn plan_orphans(
    set: &ManifestSet,
    observed: &Observed,
    ctx: &PlanContext,
    done_replacing: &BTreeSet<ServiceKey>,
) -> Vec<ServicePlan> {
    let declared: BTreeSet<&ServiceKey> = set.services.iter().map(|d| &d.key).collect();
    let mut budget = ctx.prune.unwrap_or(0);
    let mut plans = Vec::new();
    for live in observed.services.values() {
        if !live.is_active()
            || declared.contains(&live.key)
            || set.held.contains(&live.key)
            || live.managed_by() != Some(ctx.controller_id)
        {
            continue;
        }
        let mut plan = ServicePlan::empty(live.key.clone(), Some(live));
        if set.is_held(&live.key, live.source()) {
            plan.held = Some(format!(
                "its manifest file {} has errors",
                live.source().unwrap_or("?")
            ));
            plans.push(plan);
            continue;
        }
        plan.drift.push(FieldDiff {
            path: String::new(),
            desired: serde_json::Value::Null,
            live: serde_json::Value::String("service exists".into()),
        });
        plan.report_only = ctx.mode == Mode::Report;
        if let Some(original) = live.tags.get(tags::REPLACEMENT_OF) {
            // A stand-in goes only once the service it stands in for is back
            // and stable; it is not counted against the prune cap.
            if done_replacing.contains(&live.key) && ctx.prune.is_some() {
                plan.message = Some(format!(
                    "replacement of {original} finished: removing the stand-in"
                ));
                plan.actions.push(Action::PruneService);
            } else {
                plan.drift.clear();
                plan.message = Some(format!("serving while {original} is replaced"));
            }
        } else if ctx.prune.is_none() {
            plan.message = Some("no longer in Git; run with --prune to delete it".into());
        } else if !set.errors.is_empty() || !set.broken_files.is_empty() {
            // Its manifest may have moved into the file that does not parse
            // (DESIGN §5): as Flux and Argo CD, never prune on a failed build.
            plan.held = Some(
                "no longer in Git, but not pruned while any manifest has errors (one may declare it)"
                    .into(),
            );
        } else if live.protected() {
            plan.held = Some(format!("no longer in Git, but {}=true", tags::PROTECT));
        } else if live.tags.get(tags::PRUNE).map(String::as_str) == Some("disabled") {
            plan.held = Some("no longer in Git, but pruning is disabled for it".into());
        } else if budget == 0 {
            plan.message = Some("no longer in Git; prune deferred by --max-prune-per-pass".into());
        } else {
            budget -= 1;
            plan.message = Some("no longer in Git: pruning".into());
            plan.actions.push(Action::PruneService);
        }
        plans.push(plan);
    }
    plans
}
