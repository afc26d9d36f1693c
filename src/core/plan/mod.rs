//! Pairs desired services with live ones and decides, as plain data, what one
//! pass should do about each. No I/O and no clock: the shell observes, this
//! decides, the applier carries it out.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

mod action;
mod live;
mod prune;

pub use action::*;
pub use live::*;
pub use prune::{REPLACEMENT_SUFFIX, replacement_key};

use crate::core::diff::{FieldDiff, diff_values, to_clean_value};
use crate::core::manifest::{DesiredService, ManifestSet};
use crate::core::model::{ServiceKey, ServiceSpec, TaskDefinition};
use crate::core::state::{Mode, Rollout, ServiceStatus};
use crate::core::tags;
use prune::{plan_orphans, plan_replacement, stable};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlan {
    pub key: ServiceKey,
    pub source: Option<String>,
    pub exists: bool,
    pub drift: Vec<FieldDiff>,
    pub actions: Vec<Action>,
    /// Immutable fields that differ: the service must be replaced (with --prune).
    pub replace: Vec<String>,
    pub report_only: bool,
    /// Why this service must not be touched (broken manifest, duplicate, error).
    pub held: Option<String>,
    pub error: Option<String>,
    /// Anything else an operator should read about this plan.
    pub message: Option<String>,
    pub rollout: Option<Rollout>,
}

impl ServicePlan {
    pub fn in_sync(&self) -> bool {
        self.drift.is_empty() && self.replace.is_empty() && self.error.is_none() && self.exists
    }
    pub fn is_mutating(&self) -> bool {
        !self.actions.is_empty()
    }
}

pub struct PlanContext<'a> {
    pub controller_id: &'a str,
    pub revision: &'a str,
    pub mode: Mode,
    /// `Some(max per pass)` when `--prune` is on.
    pub prune: Option<usize>,
}

/// Resolve target-group names to ARNs in a desired spec, as the live side has them.
pub fn resolve_target_groups(
    spec: &ServiceSpec,
    target_groups: &BTreeMap<String, String>,
) -> Result<ServiceSpec, String> {
    let mut spec = spec.clone();
    if let Some(lbs) = &mut spec.load_balancers {
        for lb in lbs.iter_mut() {
            if !lb.target_group.starts_with("arn:") {
                match target_groups.get(&lb.target_group) {
                    Some(arn) => lb.target_group = arn.clone(),
                    None => return Err(format!("target group {:?} not found", lb.target_group)),
                }
            }
        }
        lbs.sort();
    }
    Ok(spec)
}

/// The service-level fields that take part in a comparison.
fn comparable(spec: &ServiceSpec, include_desired_count: bool) -> serde_json::Value {
    let mut view = spec.clone();
    view.task_definition = TaskDefinition::default();
    view.migration = None;
    if !include_desired_count {
        view.desired_count = None;
    }
    let mut v = to_clean_value(&view);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("taskDefinition");
        // `cluster` is part of the key, and identical by construction.
        obj.remove("cluster");
    }
    v
}

/// Drift of one desired service against its live counterpart.
pub fn service_drift(
    desired_spec: &ServiceSpec,
    desired_hash: &str,
    live: &LiveService,
) -> Vec<FieldDiff> {
    let count_owned = desired_spec.desired_count.is_some();
    let mut drift = diff_values(
        "",
        &comparable(desired_spec, count_owned),
        &comparable(&live.spec, count_owned),
    );
    match &live.task_definition {
        LiveTaskDefinition::Hash(h) if h == desired_hash => {}
        LiveTaskDefinition::Described { hash, .. } if hash == desired_hash => {}
        LiveTaskDefinition::Described { spec, .. } => drift.extend(diff_values(
            "taskDefinition",
            &to_clean_value(&desired_spec.task_definition),
            &to_clean_value(spec.as_ref()),
        )),
        _ => drift.push(FieldDiff {
            path: "taskDefinition".into(),
            desired: serde_json::Value::String(format!(
                "{} (content {desired_hash})",
                desired_spec.task_definition.family
            )),
            live: serde_json::Value::String(live.task_definition_arn.clone()),
        }),
    }
    drift
}

fn update_field(top: &str) -> Option<UpdateField> {
    Some(match top {
        "taskDefinition" => UpdateField::TaskDefinition,
        "desiredCount" => UpdateField::DesiredCount,
        "capacityProviderStrategy" => UpdateField::CapacityProviderStrategy,
        "platformVersion" => UpdateField::PlatformVersion,
        "networkConfiguration" => UpdateField::NetworkConfiguration,
        "loadBalancers" => UpdateField::LoadBalancers,
        "deploymentConfiguration" => UpdateField::DeploymentConfiguration,
        "healthCheckGracePeriodSeconds" => UpdateField::HealthCheckGracePeriodSeconds,
        "enableExecuteCommand" => UpdateField::EnableExecuteCommand,
        "enableECSManagedTags" => UpdateField::EnableEcsManagedTags,
        "propagateTags" => UpdateField::PropagateTags,
        "placementConstraints" => UpdateField::PlacementConstraints,
        "placementStrategy" => UpdateField::PlacementStrategy,
        _ => return None,
    })
}

fn top_field(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

/// Plan one desired service against what was observed.
pub fn plan_service(d: &DesiredService, observed: &Observed, ctx: &PlanContext) -> ServicePlan {
    let mut plan = plan_desired(d, observed, ctx);
    let live = observed.services.get(&d.key).filter(|l| l.is_active());
    if let Some(LiveTaskDefinition::Described { unmanaged, .. }) = live.map(|l| &l.task_definition)
        && !unmanaged.is_empty()
    {
        keep_unmanaged(&mut plan, &live_arn(live), unmanaged);
    }
    plan
}

fn live_arn(live: Option<&LiveService>) -> String {
    live.map(|l| l.task_definition_arn.clone())
        .unwrap_or_default()
}

/// The live definition sets members that manifests cannot express yet: a
/// new revision registered from the manifest would silently drop them, so
/// none is registered (the service is an error until they can be kept), and
/// an in-sync service says what it carries outside ecsync's model.
fn keep_unmanaged(plan: &mut ServicePlan, arn: &str, unmanaged: &[String]) {
    let what = unmanaged.join(", ");
    let registers = plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::RegisterTaskDefinition { .. }));
    if registers {
        plan.actions.clear();
        plan.error = Some(format!(
            "not registering a new revision: the live task definition {} sets {what}, which manifests cannot express yet and the new revision would drop",
            tags::family_revision(arn)
        ));
    } else {
        plan.message.get_or_insert_with(|| {
            format!(
                "the live task definition {} also sets {what}, which manifests cannot express yet; a new revision will be refused",
                tags::family_revision(arn)
            )
        });
    }
}

fn plan_desired(d: &DesiredService, observed: &Observed, ctx: &PlanContext) -> ServicePlan {
    let live = observed.services.get(&d.key).filter(|l| l.is_active());
    let mut plan = ServicePlan {
        key: d.key.clone(),
        source: Some(d.source.clone()),
        exists: live.is_some(),
        drift: Vec::new(),
        actions: Vec::new(),
        replace: Vec::new(),
        report_only: ctx.mode == Mode::Report || d.policy.sync == Mode::Report,
        held: None,
        error: None,
        message: None,
        rollout: live.map(|l| l.rollout.clone()),
    };
    if observed.missing_clusters.contains(&d.key.cluster) {
        plan.error = Some(format!("cluster {:?} not found", d.key.cluster));
        return plan;
    }
    let desired_spec = match resolve_target_groups(&d.spec, &observed.target_groups) {
        Ok(s) => s,
        Err(e) => {
            plan.error = Some(e);
            return plan;
        }
    };
    let Some(live) = live else {
        if observed
            .services
            .get(&d.key)
            .is_some_and(|l| l.status == ServiceStatus::Draining)
        {
            // ECS refuses a new service while one of the same name drains.
            plan.message = Some("waiting for the previous service of this name to drain".into());
            return plan;
        }
        plan.drift.push(FieldDiff {
            path: String::new(),
            desired: serde_json::Value::String("service exists".into()),
            live: serde_json::Value::Null,
        });
        plan.actions.push(Action::RegisterTaskDefinition {
            family: d.spec.task_definition.family.clone(),
        });
        plan.actions.push(Action::CreateService);
        return plan;
    };

    plan.drift = service_drift(&desired_spec, &d.task_definition_hash, live);
    let mut fields = BTreeSet::new();
    let mut tag_drift = false;
    for diff in &plan.drift {
        let top = top_field(&diff.path);
        if IMMUTABLE_FIELDS.contains(&top) {
            if !plan.replace.iter().any(|f| f == top) {
                plan.replace.push(top.to_string());
            }
        } else if top == "tags" {
            tag_drift = true;
        } else if let Some(f) = update_field(top) {
            fields.insert(f);
        }
    }
    if !plan.replace.is_empty() {
        // Updating part of a service that must be replaced would leave it half
        // converged; it waits for the replacement instead.
        plan_replacement(d, live, observed, ctx, &mut plan);
        return plan;
    }
    if fields.contains(&UpdateField::TaskDefinition) {
        plan.actions.push(Action::RegisterTaskDefinition {
            family: d.spec.task_definition.family.clone(),
        });
    }
    if !fields.is_empty() {
        plan.actions.push(Action::UpdateService { fields });
    }

    let mut set = BTreeMap::new();
    if tag_drift {
        for (k, v) in &desired_spec.tags {
            if live.tags.get(k) != Some(v) {
                set.insert(k.clone(), v.clone());
            }
        }
        let stale: Vec<String> = live
            .tags
            .keys()
            .filter(|k| {
                !crate::core::normalize::is_reserved_tag(k) && !desired_spec.tags.contains_key(*k)
            })
            .cloned()
            .collect();
        if !stale.is_empty() {
            plan.actions.push(Action::UntagService { keys: stale });
        }
    }
    // Ownership and provenance: written once on adoption or when they move,
    // never on a pass that changes nothing else.
    if live.managed_by() != Some(ctx.controller_id) {
        set.insert(tags::MANAGED_BY.into(), ctx.controller_id.into());
    }
    if live.source() != Some(d.source.as_str()) {
        set.insert(tags::SOURCE.into(), d.source.clone());
    }
    let prune_tag = live.tags.get(tags::PRUNE).map(String::as_str);
    if d.policy.prune_disabled && prune_tag != Some("disabled") {
        set.insert(tags::PRUNE.into(), "disabled".into());
    } else if !d.policy.prune_disabled && prune_tag.is_some() {
        plan.actions.push(Action::UntagService {
            keys: vec![tags::PRUNE.into()],
        });
    }
    // A described definition that matches lets later passes skip describing it
    // (unless it carries what the model cannot express: that must be seen again).
    if let LiveTaskDefinition::Described {
        hash, unmanaged, ..
    } = &live.task_definition
        && hash == &d.task_definition_hash
        && unmanaged.is_empty()
        && let Some(v) = tags::task_definition_tag(&live.task_definition_arn, hash)
    {
        set.insert(tags::TASK_DEFINITION.into(), v);
    }
    if !set.is_empty() || !plan.actions.is_empty() {
        set.insert(tags::REVISION.into(), ctx.revision.to_string());
        plan.actions.push(Action::TagService { tags: set });
    }
    plan
}

/// Plan every desired service, every held one (which does nothing) and every
/// live service this controller owns that Git no longer declares.
pub fn plan_all(set: &ManifestSet, observed: &Observed, ctx: &PlanContext) -> Vec<ServicePlan> {
    let mut plans: Vec<ServicePlan> = set
        .services
        .iter()
        .map(|d| plan_service(d, observed, ctx))
        .collect();
    let done_replacing: BTreeSet<ServiceKey> = plans
        .iter()
        .filter(|p| p.exists && p.replace.is_empty() && p.error.is_none())
        .filter(|p| observed.services.get(&p.key).is_some_and(stable))
        .map(|p| replacement_key(&p.key))
        .collect();
    for key in &set.held {
        let mut plan = ServicePlan::empty(key.clone(), observed.services.get(key));
        plan.held = Some("its manifest has errors".into());
        plans.push(plan);
    }
    plans.extend(plan_orphans(set, observed, ctx, &done_replacing));
    plans.sort_by(|a, b| a.key.cmp(&b.key));
    plans
}

impl ServicePlan {
    fn empty(key: ServiceKey, live: Option<&LiveService>) -> Self {
        let live = live.filter(|l| l.is_active());
        ServicePlan {
            key,
            source: live.and_then(|l| l.source().map(str::to_string)),
            exists: live.is_some(),
            drift: Vec::new(),
            actions: Vec::new(),
            replace: Vec::new(),
            report_only: true,
            held: None,
            error: None,
            message: None,
            rollout: live.map(|l| l.rollout.clone()),
        }
    }
}

#[cfg(test)]
mod tests;
