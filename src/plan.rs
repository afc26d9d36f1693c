//! Pairs desired services with live ones and decides, as plain data, what one
//! pass should do about each. No I/O and no clock: the shell observes, this
//! decides, the applier carries it out.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::diff::{FieldDiff, diff_values, to_clean_value};
use crate::manifest::{DesiredService, ManifestSet};
use crate::model::{ServiceKey, ServiceSpec, TaskDefinition};
use crate::tags;

/// What the observer knows about the task definition a live service runs.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveTaskDefinition {
    /// Registered by ecsync: its content hash is recorded in the service's tags,
    /// so it need not be described again.
    Hash(String),
    /// Described from AWS and normalised.
    Described {
        spec: Box<TaskDefinition>,
        hash: String,
    },
    /// Neither: it must be described before it can be compared.
    Unknown,
}

impl LiveTaskDefinition {
    pub fn hash(&self) -> Option<&str> {
        match self {
            Self::Hash(h) | Self::Described { hash: h, .. } => Some(h),
            Self::Unknown => None,
        }
    }
}

/// The primary deployment as DescribeServices reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    pub rollout_state: Option<String>,
    pub rollout_reason: Option<String>,
    pub deployments: usize,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
}

impl Rollout {
    pub fn failed(&self) -> bool {
        self.rollout_state.as_deref() == Some("FAILED")
    }
    pub fn in_progress(&self) -> bool {
        match self.rollout_state.as_deref() {
            Some("COMPLETED") => self.deployments > 1,
            Some("IN_PROGRESS") => true,
            Some(_) => false,
            // Older deployments carry no rollout state: count tasks instead.
            None => self.deployments > 1 || self.running < self.desired,
        }
    }
}

/// A live ECS service, translated into the manifest's shape and normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveService {
    pub key: ServiceKey,
    pub arn: String,
    pub status: String,
    /// `task_definition` is left default: the definition is in `task_definition`.
    pub spec: ServiceSpec,
    pub task_definition_arn: String,
    pub task_definition: LiveTaskDefinition,
    pub tags: BTreeMap<String, String>,
    pub rollout: Rollout,
}

impl LiveService {
    /// ACTIVE, or still coming up; DRAINING means already being deleted.
    pub fn is_active(&self) -> bool {
        self.status != "INACTIVE" && self.status != "DRAINING"
    }
    pub fn protected(&self) -> bool {
        self.tags.get(tags::PROTECT).map(String::as_str) == Some("true")
    }
    pub fn managed_by(&self) -> Option<&str> {
        self.tags.get(tags::MANAGED_BY).map(String::as_str)
    }
    pub fn source(&self) -> Option<&str> {
        self.tags.get(tags::SOURCE).map(String::as_str)
    }
}

/// Fields that `UpdateService` can change in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UpdateField {
    TaskDefinition,
    DesiredCount,
    CapacityProviderStrategy,
    PlatformVersion,
    NetworkConfiguration,
    LoadBalancers,
    DeploymentConfiguration,
    HealthCheckGracePeriodSeconds,
    EnableExecuteCommand,
    EnableEcsManagedTags,
    PropagateTags,
    PlacementConstraints,
    PlacementStrategy,
}

/// Top-level service fields that only a new service can change.
pub const IMMUTABLE_FIELDS: [&str; 2] = ["launchType", "schedulingStrategy"];

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// Register the desired task definition; later steps use its ARN.
    RegisterTaskDefinition {
        family: String,
    },
    CreateService,
    UpdateService {
        fields: BTreeSet<UpdateField>,
    },
    /// Set these tags (user tags and ecsync's own bookkeeping).
    TagService {
        tags: BTreeMap<String, String>,
    },
    UntagService {
        keys: Vec<String>,
    },
    /// Scale to zero, then delete: the manifest is gone and pruning is on, or
    /// the service is being replaced.
    PruneService,
    /// Create the stand-in that serves while the service is replaced.
    CreateReplacement {
        name: String,
        desired_count: i32,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Self::RegisterTaskDefinition { .. } => "register_task_definition",
            Self::CreateService => "create_service",
            Self::UpdateService { .. } => "update_service",
            Self::TagService { .. } => "tag_service",
            Self::UntagService { .. } => "untag_service",
            Self::PruneService => "prune_service",
            Self::CreateReplacement { .. } => "create_replacement",
        }
    }
}

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

/// The result of pairing the desired set with what the observer saw.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub services: BTreeMap<ServiceKey, LiveService>,
    /// Clusters the observer could not find.
    pub missing_clusters: BTreeSet<String>,
    /// Target group name → ARN for every name the manifests use that exists.
    pub target_groups: BTreeMap<String, String>,
}

pub struct PlanContext<'a> {
    pub controller_id: &'a str,
    pub revision: &'a str,
    pub report_only: bool,
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

/// The stand-in that serves while a service is replaced under its own name.
pub const REPLACEMENT_SUFFIX: &str = "-ecsync-next";

pub fn replacement_key(key: &ServiceKey) -> ServiceKey {
    ServiceKey {
        cluster: key.cluster.clone(),
        name: format!("{}{REPLACEMENT_SUFFIX}", key.name),
    }
}

fn stable(live: &LiveService) -> bool {
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
fn plan_replacement(
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
                desired_count: d.spec.desired_count.unwrap_or(live.rollout.desired),
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

/// Plan one desired service against what was observed.
pub fn plan_service(d: &DesiredService, observed: &Observed, ctx: &PlanContext) -> ServicePlan {
    let live = observed.services.get(&d.key).filter(|l| l.is_active());
    let mut plan = ServicePlan {
        key: d.key.clone(),
        source: Some(d.source.clone()),
        exists: live.is_some(),
        drift: Vec::new(),
        actions: Vec::new(),
        replace: Vec::new(),
        report_only: ctx.report_only || d.policy.report_only,
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
            .is_some_and(|l| l.status == "DRAINING")
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
                !crate::normalize::is_reserved_tag(k) && !desired_spec.tags.contains_key(*k)
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
    // A described definition that matches lets later passes skip describing it.
    if let LiveTaskDefinition::Described { hash, .. } = &live.task_definition
        && hash == &d.task_definition_hash
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

/// Services this controller owns whose manifest is gone. Each is drift; with
/// `--prune` the first `max` unprotected ones are deleted, the rest wait.
fn plan_orphans(
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
        plan.report_only = ctx.report_only;
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

#[cfg(test)]
mod tests;
