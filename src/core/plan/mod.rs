//! Pairs desired services with live ones and decides, as plain data, what one
//! pass should do about each. No I/O and no clock: the shell observes, this
//! decides, the applier carries it out.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

mod action;
mod live;
mod ownership;
mod prune;

pub use action::*;
pub use live::*;
pub use ownership::{IgnoreReason, Ignored, TagPlan, plan_tags};
pub use prune::{REPLACEMENT_SUFFIX, replacement_key};

use crate::core::diff::{FieldDiff, diff_values, to_clean_value, to_comparable};
use crate::core::ignore::IgnorePath;
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
    /// What it waits for before it may change (a dependency rolling out):
    /// nothing is applied this pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    pub error: Option<String>,
    /// Anything else an operator should read about this plan.
    pub message: Option<String>,
    pub rollout: Option<Rollout>,
    /// Live differences that are not drift: foreign tags, ignored paths.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<Ignored>,
    /// What to register and update with when ignored paths keep live values.
    #[serde(skip)]
    pub effective: Option<Box<Effective>>,
}

/// The desired spec with the live values at its `ignoreDifferences` paths:
/// what a register or update sends, so those values survive it.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub spec: ServiceSpec,
    pub task_definition_hash: String,
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
            if let Some(tg) = &lb.target_group_arn
                && !tg.starts_with("arn:")
            {
                match target_groups.get(tg) {
                    Some(arn) => lb.target_group_arn = Some(arn.clone()),
                    None => return Err(format!("target group {tg:?} not found")),
                }
            }
        }
    }
    crate::core::normalize::normalize_load_balancers(&mut spec.load_balancers);
    Ok(spec)
}

/// The service-level fields that take part in a comparison.
fn comparable(spec: &ServiceSpec, include_desired_count: bool) -> serde_json::Value {
    let mut view = spec.clone();
    view.task_definition = TaskDefinition::default();
    view.migration = None;
    view.ignore_differences = None;
    view.hooks = None;
    view.depends_on = None;
    if !include_desired_count {
        view.desired_count = None;
    }
    let mut v = to_comparable(&view);
    if spec
        .deployment_configuration
        .as_ref()
        .and_then(|d| d.strategy.as_deref())
        .is_some_and(|s| s != "ROLLING")
    {
        target_group_pairs_as_sets(&mut v);
    }
    if let Some(obj) = v.as_object_mut() {
        obj.remove("taskDefinition");
        // `cluster` is part of the key, and identical by construction.
        obj.remove("cluster");
        // Tags are owned per key: `plan_tags`.
        obj.remove("tags");
    }
    v
}

/// Under BLUE_GREEN, LINEAR and CANARY, ECS itself moves production between
/// a load balancer's target group and its alternate, swapping the two in the
/// service after each deployment: which of the pair is which is ECS's, so
/// the pair compares as a set and ecsync never swaps it back.
fn target_group_pairs_as_sets(v: &mut serde_json::Value) {
    let Some(lbs) = v.get_mut("loadBalancers").and_then(|l| l.as_array_mut()) else {
        return;
    };
    for lb in lbs.iter_mut() {
        let primary = lb.get("targetGroupArn").cloned();
        let alternate = lb
            .pointer("/advancedConfiguration/alternateTargetGroupArn")
            .cloned();
        if let (Some(p), Some(a)) = (primary, alternate)
            && p.as_str() > a.as_str()
        {
            lb["targetGroupArn"] = a;
            lb["advancedConfiguration"]["alternateTargetGroupArn"] = p;
        }
    }
    lbs.sort_by_key(|lb| lb.to_string());
}

/// Members where a manifest that says nothing leaves the choice to ECS (it
/// picks per account and service age): unset, the live value is not drift.
const ECS_CHOOSES: &[&str] = &["availabilityZoneRebalancing"];

fn without_unowned(desired: &mut serde_json::Value, live: &mut serde_json::Value) {
    if let (Some(d), Some(l)) = (desired.as_object_mut(), live.as_object_mut()) {
        for member in ECS_CHOOSES {
            if !d.contains_key(*member) {
                l.remove(*member);
            }
        }
        // What no describe answer carries cannot drift as far as anyone can see.
        for member in crate::core::model::NOT_DESCRIBED_MEMBERS {
            d.remove(*member);
            l.remove(*member);
        }
        // `role` may be given by name; ECS answers with the ARN.
        if let (Some(want), Some(have)) = (
            d.get("role").and_then(|r| r.as_str()),
            l.get("role").and_then(|r| r.as_str()),
        ) && !want.starts_with("arn:")
            && have.rsplit('/').next() == Some(want)
        {
            l.insert("role".into(), want.into());
        }
    }
}

/// Drift of one desired service against its live counterpart.
pub fn service_drift(
    desired_spec: &ServiceSpec,
    desired_hash: &str,
    live: &LiveService,
) -> Vec<FieldDiff> {
    let count_owned = desired_spec.desired_count.is_some();
    let mut desired = comparable(desired_spec, count_owned);
    let mut live_view = comparable(&live.spec, count_owned);
    without_unowned(&mut desired, &mut live_view);
    let mut drift = diff_values("", &desired, &live_view);
    match &live.task_definition {
        LiveTaskDefinition::Hash(h) if h == desired_hash => {}
        LiveTaskDefinition::Described { hash, .. } if hash == desired_hash => {}
        LiveTaskDefinition::Described { spec, own_tags, .. } => {
            let desired = to_comparable(&desired_spec.task_definition);
            let mut live = to_comparable(spec.as_ref());
            // A definition's tags are the manifest's by key: the keys it declares
            // and those ecsync recorded putting there are compared; any other
            // (another tool's, or the service's tags that earlier versions
            // copied there) is not drift. A new revision carries exactly the
            // declared ones.
            let declared: BTreeSet<&str> = desired_spec
                .task_definition
                .tags
                .iter()
                .flatten()
                .filter_map(|t| t.key.as_deref())
                .chain(own_tags.iter().flatten().map(String::as_str))
                .collect();
            if let Some(l) = live.as_object_mut() {
                if let Some(tags) = l.get_mut("tags").and_then(|t| t.as_array_mut()) {
                    tags.retain(|t| t["key"].as_str().is_some_and(|k| declared.contains(k)));
                }
                if l.get("tags")
                    .is_some_and(|t| t.as_array().is_some_and(Vec::is_empty))
                {
                    l.remove("tags");
                }
            }
            drift.extend(diff_values("taskDefinition", &desired, &live));
        }
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
        waiting: None,
        error: None,
        message: None,
        rollout: live.map(|l| l.rollout.clone()),
        ignored: Vec::new(),
        effective: None,
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
    let mut user_tags = plan_tags(&desired_spec.tag_map(), &live.tags);
    plan.drift.append(&mut user_tags.drift);
    plan.ignored.append(&mut user_tags.foreign);
    let paths = d.spec.ignored_paths();
    if !paths.is_empty() {
        let (ignored, kept): (Vec<FieldDiff>, Vec<FieldDiff>) = std::mem::take(&mut plan.drift)
            .into_iter()
            .partition(|f| paths.iter().any(|p| p.covers(&f.path)));
        plan.drift = kept;
        for f in &ignored {
            if let Some(key) = f.path.strip_prefix("tags.") {
                user_tags.set.remove(key);
                user_tags.remove.retain(|k| k != key);
            }
        }
        plan.ignored.extend(ignored.into_iter().map(|f| Ignored {
            path: f.path,
            reason: IgnoreReason::IgnoredPath,
            desired: f.desired,
            live: f.live,
        }));
        plan.effective = effective(&desired_spec, live, &paths).map(Box::new);
    }
    let mut fields = BTreeSet::new();
    let mut unsupported = Vec::new();
    for diff in &plan.drift {
        let top = top_field(&diff.path);
        if is_immutable(top) {
            if !plan.replace.iter().any(|f| f == top) {
                plan.replace.push(top.to_string());
            }
        } else if top == "tags" {
            // TagResource / UntagResource, below.
        } else if let Some(f) = UpdateMember::from_api_name(top) {
            fields.insert(f);
        } else {
            unsupported.push(top.to_string());
        }
    }
    if !plan.replace.is_empty() {
        // Updating part of a service that must be replaced would leave it half
        // converged; it waits for the replacement instead.
        plan_replacement(d, live, observed, ctx, &mut plan);
        return plan;
    }
    // What the API can neither update nor recreate (none today): said, not hidden.
    if !unsupported.is_empty() {
        unsupported.dedup();
        plan.message = Some(format!(
            "{} differ and no API call changes them in place",
            unsupported.join(", ")
        ));
    }
    // A member ECS cannot unset stays as it is: said, and not sent as drift.
    let stuck: Vec<&str> = fields
        .iter()
        .filter(|f| {
            **f != UpdateMember::TaskDefinition
                && cleared(**f).is_none()
                && !comparable(&desired_spec, true)
                    .as_object()
                    .is_some_and(|o| o.contains_key(f.api_name()))
        })
        .map(|f| f.api_name())
        .collect();
    if !stuck.is_empty() {
        plan.message = Some(format!(
            "{} set live and not in the manifest: ECS cannot unset it in place; declare it, or replace the service",
            stuck.join(", ")
        ));
    }
    fields.retain(|f| !stuck.contains(&f.api_name()));
    if fields.contains(&UpdateMember::TaskDefinition) {
        plan.actions.push(Action::RegisterTaskDefinition {
            family: d.spec.task_definition.family.clone(),
        });
    }
    if !fields.is_empty() {
        plan.actions.push(Action::UpdateService { fields });
    }

    let mut set = std::mem::take(&mut user_tags.set);
    if !user_tags.remove.is_empty() {
        plan.actions.push(Action::UntagService {
            keys: std::mem::take(&mut user_tags.remove),
        });
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
    // Only when the tag says otherwise: a definition described from the cache
    // must not be tagged again on every pass.
    if let LiveTaskDefinition::Described {
        hash, unmanaged, ..
    } = &live.task_definition
        && hash == &d.task_definition_hash
        && unmanaged.is_empty()
        && let Some(v) = tags::task_definition_tag(&live.task_definition_arn, hash)
        && live.tags.get(tags::TASK_DEFINITION) != Some(&v)
    {
        set.insert(tags::TASK_DEFINITION.into(), v);
    }
    if !set.is_empty() || !plan.actions.is_empty() {
        set.insert(tags::REVISION.into(), ctx.revision.to_string());
        plan.actions.push(Action::TagService { tags: set });
    }
    plan
}

/// The desired spec with the live values at `paths`. The live definition
/// takes part only when it was described; otherwise its paths keep the
/// desired values (never an empty definition).
fn effective(desired: &ServiceSpec, live: &LiveService, paths: &[IgnorePath]) -> Option<Effective> {
    let mut d = to_clean_value(desired);
    let mut l = to_clean_value(&live.spec);
    let live_td = match &live.task_definition {
        LiveTaskDefinition::Described { spec, .. } => to_clean_value(spec.as_ref()),
        _ => d.get("taskDefinition").cloned().unwrap_or_default(),
    };
    let live_tags: BTreeMap<String, String> = live
        .tags
        .iter()
        .filter(|(k, _)| !crate::core::normalize::is_reserved_tag(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(obj) = l.as_object_mut() {
        obj.insert("taskDefinition".into(), live_td);
        obj.insert(
            "tags".into(),
            serde_json::to_value(crate::core::model::tag_list(&live_tags)).unwrap_or_default(),
        );
    }
    for p in paths {
        p.keep_live(&mut d, &l);
    }
    let spec: ServiceSpec = serde_json::from_value(d).ok()?;
    let task_definition_hash = crate::core::manifest::task_definition_hash(&spec.task_definition);
    Some(Effective {
        spec,
        task_definition_hash,
    })
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
    crate::core::dependencies::gate(&mut plans, set);
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
            waiting: None,
            error: None,
            message: None,
            rollout: live.map(|l| l.rollout.clone()),
            ignored: Vec::new(),
            effective: None,
        }
    }
}

#[cfg(test)]
mod tests;
