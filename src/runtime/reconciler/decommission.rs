//! The decommission phase: gathers what [`crate::core::decommission`] decides
//! from (instances, their target registrations, protection attributes) through
//! the EC2 and ELBv2 adapters, and carries out its steps (deregister, register,
//! tag, untag, stop, terminate).
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
use std::time::SystemTime;

use serde::Serialize;
use tracing::{info, warn};

use super::cleanup::{self, CleanupOutcome};
use super::groups::{self, GroupOutcome};
use super::leftovers::{self, LeftoversReport};
use crate::adapters::aws::ec2::{self, Selector};
use crate::adapters::aws::elbv2;
use crate::adapters::aws::{AwsError, Clients};
use crate::core::decommission::{
    DecommissionAction, FleetInput, ForeignMigration, HeldByShard, InstanceInput, InstancePlan,
    MigrationInput, OrphanState, Protection, Registration, Step, TargetGroupInput, held_fleet,
    hold_for_other_shards, migration_completed_since, plan_cleanup, plan_decommission, plan_groups,
};
use crate::core::manifest::ManifestSet;
use crate::core::manifest::validate::parse_duration;
use crate::core::model::ServiceKey;
use crate::core::plan::Observed;
use crate::core::shard::Shard;
use crate::core::state::Mode;
use crate::core::tags;
use crate::runtime::metrics::Metrics;

/// How this pass may decommission.
#[derive(Debug, Clone)]
pub struct DecommissionSettings {
    pub controller_id: String,
    pub max_per_pass: usize,
    pub prune: bool,
    /// Services whose migration phase decided "complete" in this very pass: at
    /// 100% with every gate passing. The step tags alone are not enough — a
    /// migration that is failing its ECS gates at 100% must release its fleet
    /// (so it can roll back onto it), not switch it off.
    pub migrations_complete: BTreeSet<ServiceKey>,
    /// Services whose migration could not be decided this pass: their
    /// instances are held as they are.
    pub migrations_unknown: BTreeSet<ServiceKey>,
    /// With sharding: this replica's shard, and the migrations of services in
    /// other shards' clusters, whose fleets it must leave alone.
    pub shard: Option<Shard>,
    pub foreign: Vec<ForeignMigration>,
}

/// The migrations of `whole` (the manifest set before it was scoped to this
/// shard) declared for services in clusters another shard owns.
pub fn foreign_migrations(shard: Option<Shard>, whole: &ManifestSet) -> Vec<ForeignMigration> {
    let Some(shard) = shard else {
        return Vec::new();
    };
    whole
        .services
        .iter()
        .filter_map(|d| {
            let m = d.spec.migration.as_ref()?;
            Some(ForeignMigration {
                service: d.key.clone(),
                shard: shard.other_owner(&d.key.cluster)?,
                selector: m.from.selector(),
                auto_scaling_group: m.from.auto_scaling_group.clone(),
            })
        })
        .collect()
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
    /// Auto Scaling groups (`migration.from.autoScalingGroup`).
    pub groups: Vec<GroupOutcome>,
    /// What `decommission.cleanup` removes once a fleet is gone.
    pub cleanup: Vec<CleanupOutcome>,
    /// Instances and groups another shard decides about (sharding only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_by_shard: Vec<HeldByShard>,
    /// What the fleets leave behind that nothing deletes.
    pub leftovers: LeftoversReport,
    /// Observation failed: nothing was decided.
    pub error: Option<String>,
}

impl DecommissionReport {
    pub fn has_errors(&self) -> bool {
        self.error.is_some()
            || self.instances.iter().any(|i| i.error.is_some())
            || self.groups.iter().any(|g| g.error.is_some())
            || self.cleanup.iter().any(|c| c.error.is_some())
            || self.leftovers.has_errors()
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
    let mut fleet = match observe_fleet(clients, set, observed, settings, now).await {
        Ok(f) => f,
        Err(e) => {
            warn!(error = %e, "decommission: observation failed; nothing decided");
            report.error = Some(e.to_string());
            return report;
        }
    };
    if let Some(shard) = settings.shard {
        report.held_by_shard = hold_for_other_shards(&mut fleet, &settings.foreign, &|c: &str| {
            shard.other_owner(c)
        });
        for h in &report.held_by_shard {
            info!(kind = h.kind.as_str(), id = %h.id, shard = h.shard, service = %h.service, reason = %h.reason, "decommission: held by another shard");
        }
    }
    let mut cleanups = if cleanup::any_cleanup(set) {
        cleanup::observe(clients, set, &fleet).await
    } else {
        Vec::new()
    };
    // A fleet this shard shares with another is not gone while that one holds part of it.
    for c in &mut cleanups {
        if let Some(why) = held_fleet(&report.held_by_shard, &c.input.service) {
            c.input.fleet_remaining = Some(why);
        }
    }
    // A group whose launch template cleanup deletes waits for it: the group
    // is the only place that names the template.
    for c in &cleanups {
        if let Some(g) = &c.input.group
            && c.input.template_first()
        {
            for fg in fleet.groups.iter_mut().filter(|fg| fg.name == g.name) {
                fg.template_first = true;
            }
        }
    }
    let plans = plan_decommission(&fleet);
    // One cap for the whole fleet: what the instances used, the groups cannot.
    let acting = plans.iter().filter(|p| p.final_action().is_some()).count();
    let group_plans = plan_groups(&fleet, settings.max_per_pass.saturating_sub(acting));
    let acting = acting
        + group_plans
            .iter()
            .filter(|p| p.final_step().is_some())
            .count();
    for c in &mut cleanups {
        // A group the decommission deletes this pass is not deleted twice.
        if let Some(g) = c.input.group.as_mut()
            && group_plans.iter().any(|p| {
                p.group == g.name
                    && p.steps
                        .contains(&crate::core::decommission::GroupStep::Delete)
            })
        {
            g.deleting = true;
        }
    }
    let inputs: Vec<_> = cleanups.iter().map(|c| c.input.clone()).collect();
    let cleanup_plans = plan_cleanup(&inputs, settings.max_per_pass.saturating_sub(acting));
    // What a fleet leaves behind is recorded before its clock starts: once
    // its instances are gone, AWS no longer says which volume was whose.
    let starting = leftovers::starting(&fleet, &plans, &group_plans, clients.read_only.is_on());
    let mut recorded = Vec::new();
    for s in &starting {
        recorded.push(leftovers::record(clients, s).await);
    }
    let unrecorded = leftovers::failed(&recorded);
    let waits_for_record = |starts: bool, why: Option<&crate::core::decommission::Why>| {
        starts && why.is_some_and(|w| unrecorded.contains(w.service()))
    };
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
        if waits_for_record(outcome.plan.starts_clock(), outcome.plan.why.as_ref()) {
            outcome.error = Some(UNRECORDED.into());
        // Read-only (report mode, dry run, a fenced replica): decide and report only.
        } else if !clients.read_only.is_on() && !outcome.plan.report_only {
            execute(clients, &fleet, &mut outcome, metrics).await;
        }
        report.instances.push(outcome);
    }
    for plan in group_plans {
        *counts.entry(plan.state).or_default() += 1;
        if let Some(reason) = &plan.skipped {
            warn!(group = %plan.group, why = ?plan.why.as_ref().map(ToString::to_string), %reason, "decommission of Auto Scaling group held");
        }
        let mut outcome = GroupOutcome {
            plan,
            done: Vec::new(),
            error: None,
        };
        if waits_for_record(outcome.plan.starts_clock(), outcome.plan.why.as_ref()) {
            outcome.error = Some(UNRECORDED.into());
        } else if !clients.read_only.is_on() && !outcome.plan.report_only {
            groups::execute(clients, &fleet, &mut outcome, metrics).await;
        }
        report.groups.push(outcome);
    }
    for (observed, plan) in cleanups.iter().zip(cleanup_plans) {
        let mut outcome = CleanupOutcome {
            plan,
            done: Vec::new(),
            error: observed.error.clone(),
        };
        if !clients.read_only.is_on() && !outcome.plan.report_only && observed.error.is_none() {
            cleanup::execute(clients, observed, &mut outcome, metrics).await;
        }
        report.cleanup.push(outcome);
    }
    for (state, n) in counts {
        metrics.set_ec2_orphans(state.as_str(), n);
    }
    report.leftovers.recorded = recorded;
    let services = leftovers::decommissioning(&fleet);
    if !services.is_empty() {
        match leftovers::report(clients, services).await {
            Ok(found) => report.leftovers.found = found,
            Err(e) => {
                warn!(error = %e, "leftovers: reading the recorded resources failed");
                report.leftovers.error = Some(e.to_string());
            }
        }
    }
    report
}

/// Why a fleet's clock did not start this pass.
const UNRECORDED: &str =
    "what the fleet leaves behind could not be recorded; its decommission starts once it is";

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
        } => elbv2::deregister(clients, target_group_arn, id, *port).await,
        Step::Register {
            target_group_arn,
            port,
        } => elbv2::register(clients, target_group_arn, id, *port).await,
        Step::Tag { tags } => ec2::tag(clients, id, tags).await,
        Step::Untag { keys } => ec2::untag(clients, id, keys).await,
        Step::Stop => ec2::stop(clients, id).await,
        Step::Terminate => ec2::terminate(clients, id).await,
    }
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
                selector: m.from.selector(),
                auto_scaling_group: m.from.auto_scaling_group.clone(),
                // Resolved to an ARN once target groups are known.
                legacy_target_group: Some(m.from.target_group.clone()),
                decommission,
                completed_since,
                report_only: d.policy.sync == Mode::Report,
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
    let mut selectors: Vec<Selector> = migrations
        .iter()
        .filter(|m| m.completed_since.is_some() && m.decommission.is_some())
        .filter(|m| !m.selector.is_empty())
        .map(|m| Selector::Tags(m.selector.clone()))
        .collect();
    selectors.push(Selector::TagKey(tags::DECOMMISSION.into()));
    if settings.prune {
        selectors.push(Selector::Tags(BTreeMap::from([(
            tags::MANAGED_BY.to_string(),
            settings.controller_id.clone(),
        )])));
    }
    let mut instances: BTreeMap<String, InstanceInput> = BTreeMap::new();
    for selector in &selectors {
        for i in ec2::instances(clients, selector).await? {
            instances.entry(i.id.clone()).or_insert(InstanceInput {
                id: i.id,
                state: i.state,
                tags: i.tags,
                protection: None,
                registrations: Vec::new(),
            });
        }
    }

    // The legacy group of a migration is named in the manifest by name or ARN;
    // the observation resolved every name the manifests use.
    for m in &mut migrations {
        m.legacy_target_group = m
            .legacy_target_group
            .take()
            .and_then(|tg| resolved(&tg, &observed.target_groups));
    }
    let mut target_groups = BTreeMap::new();
    if !instances.is_empty() {
        let groups = elbv2::instance_target_groups(clients).await?;
        let mut used: BTreeSet<String> = BTreeSet::new();
        for (arn, _) in &groups {
            for target in elbv2::targets(clients, arn).await? {
                let Some(inst) = instances.get_mut(&target.id) else {
                    continue;
                };
                used.insert(arn.clone());
                inst.registrations.push(Registration {
                    target_group_arn: arn.clone(),
                    port: target.port,
                    state: target.state,
                });
            }
        }
        // Restoring registrations needs the groups named in the record tags too.
        let recorded: BTreeSet<String> = instances
            .values()
            .filter_map(|i| i.tags.get(tags::DECOMMISSION_LEFT))
            .flat_map(|v| tags::decode_left(v))
            .map(|(name, _)| name)
            .collect();
        let managed =
            elbv2::tagged(clients, &used, tags::MANAGED_BY, &settings.controller_id).await?;
        for (arn, name) in &groups {
            if !used.contains(arn) && !recorded.contains(name) {
                continue;
            }
            let delay = if used.contains(arn) {
                // Unreadable: the planner then waits AWS's default delay.
                elbv2::deregistration_delay(clients, arn)
                    .await
                    .unwrap_or_else(|e| {
                        warn!(target_group = %arn, error = %e, "reading the deregistration delay");
                        None
                    })
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
        for inst in instances.values_mut() {
            inst.protection = if tags::is_protected(&inst.tags) {
                // Never touched anyway: no need to ask.
                Some(Protection::default())
            } else {
                // Unreadable: `None`, and the planner skips the instance.
                ec2::protection(clients, &inst.id)
                    .await
                    .unwrap_or_else(|e| {
                        warn!(instance = %inst.id, error = %e, "reading protection");
                        None
                    })
            };
        }
    }

    let groups = if groups::any_group(set) {
        groups::observe_groups(
            clients,
            &migrations,
            &observed.target_groups,
            &mut target_groups,
        )
        .await?
    } else {
        Vec::new()
    };

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
        groups,
    })
}

/// A target group named by name or ARN, as an ARN, if it exists.
fn resolved(name_or_arn: &str, known: &BTreeMap<String, String>) -> Option<String> {
    if name_or_arn.starts_with("arn:") {
        Some(name_or_arn.to_string())
    } else {
        known.get(name_or_arn).cloned()
    }
}
