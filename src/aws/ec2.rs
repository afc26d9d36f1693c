//! The EC2 decommission shell: observes what [`crate::decommission`] decides from
//! (instances, their target registrations, protection attributes), and carries
//! out its steps (deregister, register, tag, untag, stop, terminate).
//!
//! Calls per pass, only when some manifest has a `migration` or `--prune` is on:
//! DescribeInstances once per complete migration's selector, once for instances
//! carrying the decommission tag and (with `--prune`) once for owned instances;
//! when any instance was found, DescribeTargetGroups (paginated), one
//! DescribeTargetHealth per instance-type group, DescribeTags and
//! DescribeTargetGroupAttributes for the groups those instances are in, and two
//! DescribeInstanceAttribute per unprotected instance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::{Filter, InstanceAttributeName, Tag};
use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetTypeEnum};
use serde::Serialize;
use tracing::{info, warn};

use super::{AwsError, Clients, call_error};
use crate::decommission::{
    DecommissionAction, FleetInput, InstanceInput, InstancePlan, MigrationInput, OrphanState,
    Protection, Registration, Step, TargetGroupInput, migration_completed_since, plan_decommission,
};
use crate::manifest::ManifestSet;
use crate::manifest::validate::parse_duration;
use crate::metrics::Metrics;
use crate::model::ServiceKey;
use crate::plan::Observed;
use crate::tags;

const DESCRIBE_TAGS_BATCH: usize = 20;
/// Instance states worth looking at: terminated ones can no longer be touched.
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// How this pass may decommission.
#[derive(Debug, Clone)]
pub struct DecommissionSettings {
    pub controller_id: String,
    pub max_per_pass: usize,
    pub prune: bool,
    /// False in report mode and with `--dry-run`: decide and report, call nothing mutating.
    pub act: bool,
    /// Services whose migration phase decided "complete" in this very pass: at
    /// 100% with every gate passing. The step tags alone are not enough — a
    /// migration that is failing its ECS gates at 100% must release its fleet
    /// (so it can roll back onto it), not switch it off.
    pub migrations_complete: BTreeSet<ServiceKey>,
    /// Services whose migration could not be decided this pass: their
    /// instances are held as they are.
    pub migrations_unknown: BTreeSet<ServiceKey>,
}

/// One instance's plan and what became of it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceOutcome {
    #[serde(flatten)]
    pub plan: InstancePlan,
    /// Steps carried out, by name.
    pub done: Vec<&'static str>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecommissionReport {
    pub instances: Vec<InstanceOutcome>,
    /// Observation failed: nothing was decided.
    pub error: Option<String>,
}

impl DecommissionReport {
    pub fn has_errors(&self) -> bool {
        self.error.is_some() || self.instances.iter().any(|i| i.error.is_some())
    }
}

/// The decommission phase of one pass.
pub async fn decommission_pass(
    clients: &Clients,
    set: &ManifestSet,
    observed: &Observed,
    settings: &DecommissionSettings,
    metrics: &Arc<Metrics>,
    now: SystemTime,
) -> DecommissionReport {
    let has_migrations = set.services.iter().any(|d| d.spec.migration.is_some());
    if !has_migrations && !settings.prune {
        // Nothing can be a candidate, and no call is spent finding that out.
        return DecommissionReport::default();
    }
    let mut report = DecommissionReport::default();
    let fleet = match observe_fleet(clients, set, observed, settings, now).await {
        Ok(f) => f,
        Err(e) => {
            warn!(error = %e, "decommission: observation failed; nothing decided");
            report.error = Some(e.to_string());
            return report;
        }
    };
    let plans = plan_decommission(&fleet);
    let mut counts: BTreeMap<OrphanState, i64> = OrphanState::ALL.iter().map(|s| (*s, 0)).collect();
    for plan in plans {
        *counts.entry(plan.state).or_default() += 1;
        if let Some(reason) = &plan.skipped {
            warn!(instance = %plan.instance_id, why = ?plan.why.as_ref().map(ToString::to_string), %reason, "decommission skipped");
        }
        let mut outcome = InstanceOutcome {
            plan,
            done: Vec::new(),
            error: None,
        };
        if settings.act && !outcome.plan.report_only {
            execute(clients, &fleet, &mut outcome, metrics).await;
        }
        report.instances.push(outcome);
    }
    for (state, n) in counts {
        metrics.set_ec2_orphans(state.as_str(), n);
    }
    report
}

async fn execute(
    clients: &Clients,
    fleet: &FleetInput,
    outcome: &mut InstanceOutcome,
    metrics: &Metrics,
) {
    let id = outcome.plan.instance_id.clone();
    let why = outcome
        .plan
        .why
        .as_ref()
        .map_or_else(|| "no longer a candidate".to_string(), ToString::to_string);
    let group_name = |arn: &str| {
        fleet
            .target_groups
            .get(arn)
            .map_or_else(|| arn.to_string(), |t| t.name.clone())
    };
    for step in outcome.plan.steps.clone() {
        let result = run_step(clients, &id, &step).await;
        match &result {
            Ok(()) => {
                outcome.done.push(step.name());
                match &step {
                    Step::Stop | Step::Terminate => {
                        let action = match step {
                            Step::Stop => DecommissionAction::Stop,
                            _ => DecommissionAction::Terminate,
                        };
                        metrics.decommission(action.as_str());
                        info!(instance = %id, action = action.as_str(), why = %why, left_target_groups = ?outcome.plan.drained_from, "decommissioned instance");
                    }
                    Step::Deregister {
                        target_group_arn, ..
                    } => {
                        info!(instance = %id, target_group = %group_name(target_group_arn), why = %why, "deregistered instance for decommission");
                    }
                    Step::Register {
                        target_group_arn, ..
                    } => {
                        info!(instance = %id, target_group = %group_name(target_group_arn), reason = %outcome.plan.message, "registered instance again: no longer a decommission candidate");
                    }
                    Step::Tag { tags } => {
                        info!(instance = %id, ?tags, why = %why, "tagged instance")
                    }
                    Step::Untag { keys } => {
                        info!(instance = %id, ?keys, reason = %outcome.plan.message, "untagged instance")
                    }
                }
            }
            Err(e) => {
                warn!(instance = %id, step = step.name(), error = %e, "decommission step failed");
                metrics.action(&format!("decommission_{}", step.name()), "error");
                outcome.error = Some(e.to_string());
                // Later steps assume this one happened (a stop is recorded only after it).
                return;
            }
        }
    }
}

async fn run_step(clients: &Clients, id: &str, step: &Step) -> Result<(), AwsError> {
    match step {
        Step::Deregister {
            target_group_arn,
            port,
        } => {
            clients
                .elbv2
                .deregister_targets()
                .target_group_arn(target_group_arn)
                .targets(TargetDescription::builder().id(id).set_port(*port).build())
                .send()
                .await
                .map_err(|e| call_error("ELBv2:DeregisterTargets", e))?;
        }
        Step::Register {
            target_group_arn,
            port,
        } => {
            clients
                .elbv2
                .register_targets()
                .target_group_arn(target_group_arn)
                .targets(TargetDescription::builder().id(id).set_port(*port).build())
                .send()
                .await
                .map_err(|e| call_error("ELBv2:RegisterTargets", e))?;
        }
        Step::Tag { tags } => {
            let tags: Vec<Tag> = tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            clients
                .ec2
                .create_tags()
                .resources(id)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| call_error("EC2:CreateTags", e))?;
        }
        Step::Untag { keys } => {
            let tags: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
            clients
                .ec2
                .delete_tags()
                .resources(id)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| call_error("EC2:DeleteTags", e))?;
        }
        Step::Stop => {
            clients
                .ec2
                .stop_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(|e| call_error("EC2:StopInstances", e))?;
        }
        Step::Terminate => {
            clients
                .ec2
                .terminate_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(|e| call_error("EC2:TerminateInstances", e))?;
        }
    }
    Ok(())
}

/// A manifest's migration with the decommission settings parsed; `None` fields
/// mean "never decommission" (unparseable settings fail closed).
fn migrations(
    set: &ManifestSet,
    observed: &Observed,
    settings: &DecommissionSettings,
    now: SystemTime,
) -> Vec<MigrationInput> {
    set.services
        .iter()
        .filter_map(|d| {
            let m = d.spec.migration.as_ref()?;
            let live_tags = observed
                .services
                .get(&d.key)
                .filter(|l| l.is_active())
                .map(|l| &l.tags);
            let completed_since = match (live_tags, parse_duration(&m.step_interval)) {
                (Some(t), Ok(interval)) if settings.migrations_complete.contains(&d.key) => {
                    migration_completed_since(&m.steps, interval, t, now)
                }
                _ => None,
            };
            let decommission = m.decommission.as_ref().and_then(|dc| {
                let action = DecommissionAction::parse(dc.action.as_deref()).ok()?;
                let after = parse_duration(&dc.after).ok()?;
                Some((action, after))
            });
            Some(MigrationInput {
                service: d.key.clone(),
                selector: m.from.instances.tags.clone(),
                // Resolved to an ARN once target groups are known.
                legacy_target_group: Some(m.from.target_group.clone()),
                decommission,
                completed_since,
                report_only: d.policy.report_only,
            })
        })
        .collect()
}

async fn observe_fleet(
    clients: &Clients,
    set: &ManifestSet,
    observed: &Observed,
    settings: &DecommissionSettings,
    now: SystemTime,
) -> Result<FleetInput, AwsError> {
    let mut migrations = migrations(set, observed, settings, now);

    // Only instances that can be candidates, or that carry ecsync's clock, are looked at.
    let mut queries: Vec<Vec<Filter>> = Vec::new();
    for m in &migrations {
        if m.completed_since.is_some() && m.decommission.is_some() && !m.selector.is_empty() {
            queries.push(
                m.selector
                    .iter()
                    .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
                    .collect(),
            );
        }
    }
    queries.push(vec![
        Filter::builder()
            .name("tag-key")
            .values(tags::DECOMMISSION)
            .build(),
    ]);
    if settings.prune {
        queries.push(vec![
            Filter::builder()
                .name(format!("tag:{}", tags::MANAGED_BY))
                .values(&settings.controller_id)
                .build(),
        ]);
    }
    let mut instances: BTreeMap<String, InstanceInput> = BTreeMap::new();
    for filters in queries {
        for inst in describe_instances(clients, filters).await? {
            instances.entry(inst.id.clone()).or_insert(inst);
        }
    }

    let mut target_groups = BTreeMap::new();
    if !instances.is_empty() {
        let groups = describe_instance_target_groups(clients).await?;
        let mut used: BTreeSet<String> = BTreeSet::new();
        for (arn, _) in &groups {
            let health = clients
                .elbv2
                .describe_target_health()
                .target_group_arn(arn)
                .send()
                .await
                .map_err(|e| call_error("ELBv2:DescribeTargetHealth", e))?;
            for d in health.target_health_descriptions() {
                let Some(target) = d.target() else { continue };
                let Some(inst) = target.id().and_then(|id| instances.get_mut(id)) else {
                    continue;
                };
                used.insert(arn.clone());
                inst.registrations.push(Registration {
                    target_group_arn: arn.clone(),
                    port: target.port(),
                    state: d
                        .target_health()
                        .and_then(|h| h.state())
                        .map_or_else(|| "unknown".to_string(), |s| s.as_str().to_string()),
                });
            }
        }
        // Restoring registrations needs the groups named in the record tags too.
        let recorded: BTreeSet<String> = instances
            .values()
            .filter_map(|i| i.tags.get(tags::DECOMMISSION_LEFT))
            .flat_map(|v| crate::decommission::decode_left(v))
            .map(|(name, _)| name)
            .collect();
        let managed = managed_groups(clients, &used, &settings.controller_id).await?;
        for (arn, name) in &groups {
            if !used.contains(arn) && !recorded.contains(name) {
                continue;
            }
            let delay = if used.contains(arn) {
                deregistration_delay(clients, arn).await
            } else {
                None
            };
            target_groups.insert(
                arn.clone(),
                TargetGroupInput {
                    arn: arn.clone(),
                    name: name.clone(),
                    managed: managed.contains(arn),
                    deregistration_delay: delay,
                },
            );
        }
        // The legacy group of a migration is named in the manifest by name or ARN.
        let by_name: BTreeMap<&str, &str> = groups
            .iter()
            .map(|(a, n)| (n.as_str(), a.as_str()))
            .collect();
        for m in &mut migrations {
            m.legacy_target_group = m.legacy_target_group.take().and_then(|tg| {
                if tg.starts_with("arn:") {
                    Some(tg)
                } else {
                    by_name.get(tg.as_str()).map(|a| a.to_string())
                }
            });
        }
        for inst in instances.values_mut() {
            inst.protection = if inst.tags.get(tags::PROTECT).map(String::as_str) == Some("true") {
                // Never touched anyway: no need to ask.
                Some(Protection::default())
            } else {
                protection(clients, &inst.id).await
            };
        }
    }

    let declared: BTreeSet<ServiceKey> = set
        .services
        .iter()
        .map(|d| d.key.clone())
        .chain(set.held.iter().cloned())
        .collect();
    Ok(FleetInput {
        controller_id: settings.controller_id.clone(),
        now,
        max_per_pass: settings.max_per_pass,
        prune: settings.prune,
        declared,
        // A service whose manifest is broken has unknown intent: its instances
        // are held, not released. (A failed observation never gets this far.)
        held: set
            .held
            .iter()
            .chain(&settings.migrations_unknown)
            .cloned()
            .collect(),
        set_incomplete: !set.errors.is_empty() || !set.broken_files.is_empty(),
        migrations,
        target_groups,
        instances: instances.into_values().collect(),
    })
}

async fn describe_instances(
    clients: &Clients,
    filters: Vec<Filter>,
) -> Result<Vec<InstanceInput>, AwsError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = clients
            .ec2
            .describe_instances()
            .set_filters(Some(filters.clone()))
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
                    .build(),
            )
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| call_error("EC2:DescribeInstances", e))?;
        for r in page.reservations() {
            for i in r.instances() {
                let Some(id) = i.instance_id() else { continue };
                out.push(InstanceInput {
                    id: id.to_string(),
                    state: i
                        .state()
                        .and_then(|s| s.name())
                        .map_or_else(|| "unknown".to_string(), |n| n.as_str().to_string()),
                    tags: i
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                        .collect(),
                    protection: None,
                    registrations: Vec::new(),
                });
            }
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

/// Every `instance`-type target group: (ARN, name).
async fn describe_instance_target_groups(
    clients: &Clients,
) -> Result<Vec<(String, String)>, AwsError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = clients
            .elbv2
            .describe_target_groups()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| call_error("ELBv2:DescribeTargetGroups", e))?;
        for tg in page.target_groups() {
            if tg.target_type() != Some(&TargetTypeEnum::Instance) {
                continue;
            }
            if let (Some(arn), Some(name)) = (tg.target_group_arn(), tg.target_group_name()) {
                out.push((arn.to_string(), name.to_string()));
            }
        }
        match page.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => return Ok(out),
        }
    }
}

/// Which of `arns` are tagged `ecsync.io/managed-by=<controller-id>`.
async fn managed_groups(
    clients: &Clients,
    arns: &BTreeSet<String>,
    controller_id: &str,
) -> Result<BTreeSet<String>, AwsError> {
    let arns: Vec<String> = arns.iter().cloned().collect();
    let mut managed = BTreeSet::new();
    for chunk in arns.chunks(DESCRIBE_TAGS_BATCH) {
        let out = clients
            .elbv2
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| call_error("ELBv2:DescribeTags", e))?;
        for d in out.tag_descriptions() {
            let ours = d
                .tags()
                .iter()
                .any(|t| t.key() == Some(tags::MANAGED_BY) && t.value() == Some(controller_id));
            if let (true, Some(arn)) = (ours, d.resource_arn()) {
                managed.insert(arn.to_string());
            }
        }
    }
    Ok(managed)
}

/// `None` when unreadable: the planner then waits AWS's default delay.
async fn deregistration_delay(clients: &Clients, arn: &str) -> Option<Duration> {
    let out = clients
        .elbv2
        .describe_target_group_attributes()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| warn!(target_group = %arn, error = %call_error("ELBv2:DescribeTargetGroupAttributes", e), "reading the deregistration delay"))
        .ok()?;
    out.attributes()
        .iter()
        .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
        .and_then(|a| a.value())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// `None` when either attribute cannot be read: the planner then skips the instance.
async fn protection(clients: &Clients, id: &str) -> Option<Protection> {
    let read = |attr: InstanceAttributeName| async move {
        clients
            .ec2
            .describe_instance_attribute()
            .instance_id(id)
            .attribute(attr)
            .send()
            .await
            .map_err(|e| {
                warn!(instance = %id, error = %call_error("EC2:DescribeInstanceAttribute", e), "reading protection")
            })
            .ok()
    };
    // An answer without the value is as good as no answer: fail closed.
    let termination = read(InstanceAttributeName::DisableApiTermination)
        .await?
        .disable_api_termination()
        .and_then(|v| v.value())?;
    let stop = read(InstanceAttributeName::DisableApiStop)
        .await?
        .disable_api_stop()
        .and_then(|v| v.value())?;
    Some(Protection { termination, stop })
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::describe_instance_attribute::{
        DescribeInstanceAttributeError, DescribeInstanceAttributeOutput,
    };
    use aws_sdk_ec2::types::AttributeBooleanValue;
    use aws_smithy_mocks::mock;

    use super::*;

    use crate::aws::tests::mocked as mocked_ec2;

    fn answer(attr: InstanceAttributeName, value: Option<bool>) -> aws_smithy_mocks::Rule {
        let is_attr = attr.clone();
        mock!(aws_sdk_ec2::Client::describe_instance_attribute)
            .match_requests(move |r| r.attribute() == Some(&is_attr))
            .then_output(move || {
                let v = value.map(|v| AttributeBooleanValue::builder().value(v).build());
                match attr {
                    InstanceAttributeName::DisableApiTermination => {
                        DescribeInstanceAttributeOutput::builder()
                            .set_disable_api_termination(v)
                            .build()
                    }
                    _ => DescribeInstanceAttributeOutput::builder()
                        .set_disable_api_stop(v)
                        .build(),
                }
            })
    }

    #[tokio::test]
    async fn protection_is_read_from_both_attributes() {
        let term = answer(InstanceAttributeName::DisableApiTermination, Some(false));
        let stop = answer(InstanceAttributeName::DisableApiStop, Some(true));
        let clients = mocked_ec2(&[&term, &stop]);
        assert_eq!(
            protection(&clients, "i-1").await,
            Some(Protection {
                termination: false,
                stop: true
            })
        );
    }

    #[tokio::test]
    async fn protection_fails_closed() {
        // Denied: unknown, so the planner skips the instance.
        let denied = mock!(aws_sdk_ec2::Client::describe_instance_attribute)
            .then_error(|| DescribeInstanceAttributeError::unhandled("UnauthorizedOperation"));
        assert_eq!(protection(&mocked_ec2(&[&denied]), "i-1").await, None);
        // An answer without the value is no answer either.
        let term = answer(InstanceAttributeName::DisableApiTermination, None);
        let stop = answer(InstanceAttributeName::DisableApiStop, Some(false));
        assert_eq!(protection(&mocked_ec2(&[&term, &stop]), "i-1").await, None);
    }
}
