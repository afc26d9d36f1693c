//! The cleanup part of the decommission phase (`decommission.cleanup`):
//! observes what a gone fleet leaves behind and carries out what
//! [`crate::core::decommission::plan_cleanup`] decides.
//!
//! Calls, only for a complete migration with a `cleanup` block whose fleet is
//! gone: the listener (DescribeListeners or DescribeRules), and for the legacy
//! target group DescribeTargetGroups, DescribeTags and DescribeTargetHealth;
//! with `autoScalingGroup` or `launchTemplate`, DescribeAutoScalingGroups for
//! the group; with `launchTemplate`, DescribeLaunchTemplates and one listing
//! of every group (who else launches from it). Nothing at all without a
//! `cleanup` block.

use std::collections::BTreeSet;

use aws_sdk_elasticloadbalancingv2::types::Action;
use serde::Serialize;
use tracing::{info, warn};

use crate::adapters::aws::elbv2::{self, Place, cleanup as tg};
use crate::adapters::aws::{AwsError, Clients, autoscaling, launch_template};
use crate::core::decommission::{
    CleanupGroup, CleanupInput, CleanupItem, CleanupPlan, CleanupStep, CleanupTemplate, FleetInput,
    LegacyTargetGroup, fleet_remaining,
};
use crate::core::manifest::ManifestSet;
use crate::core::tags;
use crate::runtime::metrics::Metrics;

/// One migration's cleanup plan and what became of it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupOutcome {
    #[serde(flatten)]
    pub plan: CleanupPlan,
    pub done: Vec<&'static str>,
    pub error: Option<String>,
}

/// What the observation found, with the listener actions a step rewrites.
pub struct Observed {
    pub input: CleanupInput,
    forward: Option<(Place, Vec<Action>)>,
    pub error: Option<String>,
}

/// Some manifest declares `decommission.cleanup`: only then is anything asked.
pub fn any_cleanup(set: &ManifestSet) -> bool {
    set.services.iter().any(|d| {
        d.spec
            .migration
            .as_ref()
            .and_then(|m| m.decommission.as_ref())
            .is_some_and(|dc| dc.cleanup.is_some())
    })
}

/// Every migration with a `cleanup` block, in the manifests' order.
pub async fn observe(clients: &Clients, set: &ManifestSet, fleet: &FleetInput) -> Vec<Observed> {
    let mut out = Vec::new();
    for d in &set.services {
        let Some(m) = d.spec.migration.as_ref() else {
            continue;
        };
        let Some(items) = m.decommission.as_ref().and_then(|dc| dc.cleanup.as_ref()) else {
            continue;
        };
        let Some(mi) = fleet.migrations.iter().find(|mi| mi.service == d.key) else {
            continue;
        };
        let mut input = CleanupInput {
            service: d.key.clone(),
            items: items.iter().filter_map(|i| CleanupItem::parse(i)).collect(),
            declared_target_group: m.from.target_group.clone(),
            declared_group: m.from.auto_scaling_group.clone(),
            report_only: mi.report_only,
            fleet_remaining: fleet_remaining(fleet, mi),
            in_forward: None,
            legacy: None,
            group: None,
            template: None,
        };
        if input.fleet_remaining.is_some() {
            // Nothing is asked while the fleet runs.
            out.push(Observed {
                input,
                forward: None,
                error: None,
            });
            continue;
        }
        let mut forward = None;
        let error = observe_one(
            clients,
            &m.listener,
            mi.legacy_target_group.as_deref(),
            mi.auto_scaling_group.as_deref(),
            &mut input,
            &mut forward,
        )
        .await
        .err()
        .map(|e| {
            warn!(cluster = %d.key.cluster, service = %d.key.name, error = %e, "cleanup: observation failed; nothing decided");
            // Nothing is decided from half an observation.
            input.in_forward = None;
            e.to_string()
        });
        out.push(Observed {
            input,
            forward,
            error,
        });
    }
    out
}

async fn observe_one(
    clients: &Clients,
    listener: &crate::core::model::ListenerRef,
    legacy_arn: Option<&str>,
    group_name: Option<&str>,
    input: &mut CleanupInput,
    forward: &mut Option<(Place, Vec<Action>)>,
) -> Result<(), AwsError> {
    // A legacy group named by a name that no longer resolves is gone.
    input.in_forward = Some(false);
    if let Some(arn) = legacy_arn
        && let Some(usage) = tg::usage(clients, arn).await?
    {
        let (place, actions) = elbv2::locate(clients, listener)
            .await
            .map_err(|e| AwsError::Incomplete(format!("the listener: {e}")))?;
        let in_forward = tg::forwards_to(&actions, arn);
        if in_forward && tg::without(&actions, arn) == actions {
            // Taking it out would leave traffic nowhere: a hand edit, or a
            // migration that is not ecsync's. Nothing is decided.
            return Err(AwsError::Incomplete(format!(
                "the forward action sends to {arn} alone: left as it is"
            )));
        }
        input.in_forward = Some(in_forward);
        *forward = Some((place, actions));
        let protected = elbv2::tagged(
            clients,
            &BTreeSet::from([arn.to_string()]),
            tags::PROTECT,
            "true",
        )
        .await?;
        input.legacy = Some(LegacyTargetGroup {
            arn: arn.to_string(),
            name: usage.name,
            protected: !protected.is_empty(),
            references: usage.references,
            registered: elbv2::targets(clients, arn).await?.len(),
        });
    }
    let wants_group = input.items.iter().any(|i| i.needs_group());
    let Some(name) = group_name.filter(|_| wants_group) else {
        return Ok(());
    };
    let Some(g) = autoscaling::groups_named(clients, &BTreeSet::from([name.to_string()]))
        .await?
        .into_iter()
        .find(|g| g.name == name)
    else {
        return Ok(());
    };
    if input.items.contains(&CleanupItem::LaunchTemplate)
        && let Some(lt) = &g.launch_template
        && let Some(t) = launch_template::find(clients, lt).await?
    {
        let other_users = autoscaling::template_users(clients, &t.id, &t.name, name).await?;
        input.template = Some(CleanupTemplate {
            protected: tags::is_protected(&t.tags),
            id: t.id,
            name: t.name,
            other_users,
        });
    }
    input.group = Some(CleanupGroup {
        name: g.name,
        protected: tags::is_protected(&g.tags),
        instances: g.instances.len(),
        desired_capacity: g.desired_capacity,
        deleting: g.deleting,
    });
    Ok(())
}

/// Carry out one plan's steps in order; the first failure stops the rest.
pub async fn execute(
    clients: &Clients,
    observed: &Observed,
    outcome: &mut CleanupOutcome,
    metrics: &Metrics,
) {
    let key = outcome.plan.service.clone();
    for step in outcome.plan.steps.clone() {
        let result = match &step {
            CleanupStep::LeaveForward { target_group_arn } => match &observed.forward {
                Some((place, actions)) => {
                    elbv2::modify(clients, place, tg::without(actions, target_group_arn)).await
                }
                None => Err(AwsError::Incomplete("the listener was not read".into())),
            },
            CleanupStep::DeleteLaunchTemplate { id, .. } => {
                launch_template::delete(clients, id).await
            }
            CleanupStep::DeleteGroup { name } => autoscaling::delete(clients, name).await,
            CleanupStep::DeleteTargetGroup { arn, .. } => {
                tg::delete_target_group(clients, arn).await
            }
        };
        if let Err(e) = result {
            warn!(cluster = %key.cluster, service = %key.name, step = step.name(), error = %e, "cleanup step failed");
            metrics.action(&format!("cleanup_{}", step.name()), "error");
            outcome.error = Some(e.to_string());
            return;
        }
        outcome.done.push(step.name());
        metrics.decommission(&format!("cleanup_{}", step.name()));
        let why = "the migration is complete and its fleet is gone";
        match &step {
            CleanupStep::LeaveForward { target_group_arn } => {
                info!(cluster = %key.cluster, service = %key.name, target_group = %target_group_arn, why,
                      "cleanup: the legacy target group left the forward action; the listener forwards to the ECS group alone")
            }
            CleanupStep::DeleteLaunchTemplate { id, name } => {
                info!(cluster = %key.cluster, service = %key.name, launch_template = %name, id = %id, why,
                      "cleanup: deleted the fleet's launch template (no other group uses it)")
            }
            CleanupStep::DeleteGroup { name } => {
                info!(cluster = %key.cluster, service = %key.name, group = %name, why,
                      "cleanup: deleted the empty Auto Scaling group")
            }
            CleanupStep::DeleteTargetGroup { name, .. } => {
                info!(cluster = %key.cluster, service = %key.name, target_group = %name, why,
                      "cleanup: deleted the legacy target group (no listener or rule references it)")
            }
        }
    }
}
