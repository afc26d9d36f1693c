//! The Auto Scaling part of the decommission phase: observes the groups that
//! migrations name (and those carrying ecsync's clock), and carries out what
//! [`crate::core::decommission::plan_groups`] decides.
//!
//! Calls, only when some manifest has `migration.from.autoScalingGroup`:
//! DescribeAutoScalingGroups for the groups named by complete migrations and
//! once for groups carrying the clock tag; per candidate group not protected,
//! one DescribeLifecycleHooks; per legacy target group of a candidate, one
//! DescribeTargetHealth and one DescribeTargetGroupAttributes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tracing::{info, warn};

use crate::adapters::aws::autoscaling::{self, Group};
use crate::adapters::aws::{AwsError, Clients, elbv2};
use crate::core::decommission::{
    FleetInput, GroupInput, GroupPlan, GroupStep, MigrationInput, Registration, TargetGroupInput,
};
use crate::core::manifest::ManifestSet;
use crate::core::tags;
use crate::runtime::metrics::Metrics;

/// One group's plan and what became of it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupOutcome {
    #[serde(flatten)]
    pub plan: GroupPlan,
    pub done: Vec<&'static str>,
    pub error: Option<String>,
}

/// Some manifest names an Auto Scaling group: only then is Auto Scaling asked anything.
pub fn any_group(set: &ManifestSet) -> bool {
    set.services.iter().any(|d| {
        d.spec
            .migration
            .as_ref()
            .is_some_and(|m| m.from.auto_scaling_group.is_some())
    })
}

/// The groups the decision needs, with their hooks and legacy registrations;
/// the legacy target groups they use are added to `target_groups`.
pub async fn observe_groups(
    clients: &Clients,
    migrations: &[MigrationInput],
    known_target_groups: &BTreeMap<String, String>,
    target_groups: &mut BTreeMap<String, TargetGroupInput>,
) -> Result<Vec<GroupInput>, AwsError> {
    let candidates: BTreeSet<String> = migrations
        .iter()
        .filter(|m| m.completed_since.is_some() && m.decommission.is_some())
        .filter_map(|m| m.auto_scaling_group.clone())
        .collect();
    let mut found: BTreeMap<String, Group> = BTreeMap::new();
    if !candidates.is_empty() {
        for g in autoscaling::groups_named(clients, &candidates).await? {
            found.insert(g.name.clone(), g);
        }
    }
    for g in autoscaling::groups_tagged(clients, tags::DECOMMISSION).await? {
        found.entry(g.name.clone()).or_insert(g);
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }

    let names: BTreeMap<&str, &str> = known_target_groups
        .iter()
        .map(|(name, arn)| (arn.as_str(), name.as_str()))
        .collect();
    // Every target group a found group uses or recorded, by ARN, for names
    // (the record tag) and for the drain.
    let mut legacy: BTreeSet<String> = migrations
        .iter()
        .filter(|m| {
            m.auto_scaling_group
                .as_ref()
                .is_some_and(|g| found.contains_key(g))
        })
        .filter_map(|m| m.legacy_target_group.clone())
        .collect();
    legacy.extend(
        found
            .values()
            .flat_map(|g| g.target_group_arns.iter().cloned()),
    );
    let mut health: BTreeMap<String, Vec<elbv2::Target>> = BTreeMap::new();
    for arn in &legacy {
        let name = match names.get(arn.as_str()) {
            Some(n) => n.to_string(),
            None => arn.rsplit('/').nth(1).unwrap_or(arn).to_string(),
        };
        if !target_groups.contains_key(arn) {
            let delay = elbv2::deregistration_delay(clients, arn)
                .await
                .unwrap_or_else(|e| {
                    warn!(target_group = %arn, error = %e, "reading the deregistration delay");
                    None
                });
            target_groups.insert(
                arn.clone(),
                TargetGroupInput {
                    arn: arn.clone(),
                    name,
                    managed: false,
                    deregistration_delay: delay,
                },
            );
        }
        health.insert(arn.clone(), elbv2::targets(clients, arn).await?);
    }
    // Recorded target groups by name, for a release that attaches them again.
    let recorded: BTreeSet<String> = found
        .values()
        .filter_map(|g| g.tags.get(tags::DECOMMISSION_LEFT))
        .flat_map(|v| tags::decode_left(v))
        .map(|(name, _)| name)
        .collect();
    for name in recorded {
        if let Some(arn) = known_target_groups.get(&name) {
            target_groups
                .entry(arn.clone())
                .or_insert_with(|| TargetGroupInput {
                    arn: arn.clone(),
                    name: name.clone(),
                    managed: false,
                    deregistration_delay: None,
                });
        }
    }

    let mut out = Vec::new();
    for g in found.into_values() {
        let ids: BTreeSet<&str> = g.instances.iter().map(|i| i.id.as_str()).collect();
        let registrations = migrations
            .iter()
            .filter(|m| m.auto_scaling_group.as_deref() == Some(g.name.as_str()))
            .filter_map(|m| m.legacy_target_group.clone())
            .chain(g.target_group_arns.iter().cloned())
            .collect::<BTreeSet<String>>()
            .into_iter()
            .flat_map(|arn| {
                health
                    .get(&arn)
                    .into_iter()
                    .flatten()
                    .filter(|t| ids.contains(t.id.as_str()))
                    .map(move |t| Registration {
                        target_group_arn: arn.clone(),
                        port: t.port,
                        state: t.state,
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        // Protected groups get no call at all; the others' hooks decide.
        let terminating_hooks = if tags::is_protected(&g.tags) {
            Some(Vec::new())
        } else {
            autoscaling::terminating_hooks(clients, &g.name)
                .await
                .map_err(|e| warn!(group = %g.name, error = %e, "reading lifecycle hooks"))
                .ok()
        };
        out.push(GroupInput {
            name: g.name,
            tags: g.tags,
            min_size: g.min_size,
            desired_capacity: g.desired_capacity,
            suspended: g.suspended,
            target_group_arns: g.target_group_arns,
            load_balancer_names: g.load_balancer_names,
            instances: g.instances,
            terminating_hooks,
            registrations,
            deleting: g.deleting,
            template_first: false,
        });
    }
    Ok(out)
}

/// Carry out one group's steps in order; the first failure stops the rest
/// (later steps assume the earlier ones happened).
pub async fn execute(
    clients: &Clients,
    fleet: &FleetInput,
    outcome: &mut GroupOutcome,
    metrics: &Metrics,
) {
    let name = outcome.plan.group.clone();
    let why = outcome
        .plan
        .why
        .as_ref()
        .map_or_else(|| "no longer a candidate".to_string(), ToString::to_string);
    let tg_name = |arn: &str| {
        fleet
            .target_groups
            .get(arn)
            .map_or_else(|| arn.to_string(), |t| t.name.clone())
    };
    for step in outcome.plan.steps.clone() {
        let result = run_step(clients, &name, &step).await;
        if let Err(e) = result {
            warn!(group = %name, step = step.name(), error = %e, "Auto Scaling decommission step failed");
            metrics.action(&format!("decommission_group_{}", step.name()), "error");
            outcome.error = Some(e.to_string());
            return;
        }
        outcome.done.push(step.name());
        match &step {
            GroupStep::Tag { tags } => {
                info!(group = %name, ?tags, why = %why, "tagged Auto Scaling group")
            }
            GroupStep::Untag { keys } => {
                info!(group = %name, ?keys, reason = %outcome.plan.message, "untagged Auto Scaling group")
            }
            GroupStep::Suspend { processes } => {
                info!(group = %name, ?processes, why = %why, "suspended Auto Scaling processes for decommission")
            }
            GroupStep::Resume { processes } => {
                info!(group = %name, ?processes, reason = %outcome.plan.message, "resumed Auto Scaling processes: no longer a decommission candidate")
            }
            GroupStep::Detach { target_group_arn } => {
                info!(group = %name, target_group = %tg_name(target_group_arn), why = %why, "detached Auto Scaling group from the legacy target group")
            }
            GroupStep::Attach { target_group_arn } => {
                info!(group = %name, target_group = %tg_name(target_group_arn), reason = %outcome.plan.message, "attached Auto Scaling group again: no longer a decommission candidate")
            }
            GroupStep::ScaleToZero => {
                metrics.decommission("scale_to_zero");
                info!(group = %name, instances = outcome.plan.instances, why = %why, "scaled Auto Scaling group to 0 (min and desired)");
            }
            GroupStep::Delete => {
                metrics.decommission("delete_group");
                info!(group = %name, why = %why, "deleted the empty Auto Scaling group");
            }
        }
    }
}

async fn run_step(clients: &Clients, group: &str, step: &GroupStep) -> Result<(), AwsError> {
    match step {
        GroupStep::Tag { tags } => autoscaling::tag(clients, group, tags).await,
        GroupStep::Untag { keys } => autoscaling::untag(clients, group, keys).await,
        GroupStep::Suspend { processes } => autoscaling::suspend(clients, group, processes).await,
        GroupStep::Resume { processes } => autoscaling::resume(clients, group, processes).await,
        GroupStep::Detach { target_group_arn } => {
            autoscaling::detach(clients, group, target_group_arn).await
        }
        GroupStep::Attach { target_group_arn } => {
            autoscaling::attach(clients, group, target_group_arn).await
        }
        GroupStep::ScaleToZero => autoscaling::scale_to_zero(clients, group).await,
        GroupStep::Delete => autoscaling::delete(clients, group).await,
    }
}
