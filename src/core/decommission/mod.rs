//! Decommissioning orphaned EC2 instances (DESIGN §4, §5): the pure decision core.
//!
//! The shell (`aws::ec2`) observes instances, their target registrations and
//! attributes; this module decides, as plain data, what one pass does about each
//! of them; the shell carries the steps out. No I/O, no tokio, no AWS types and
//! no clock reads: `now` is passed in, so every rule is table-tested here.
//!
//! The rules, in the order they are applied to an instance:
//!
//! 1. Shutting-down and terminated instances are ignored.
//! 2. An instance is a *candidate* only if
//!    * every migration whose `from.instances` selector matches it has a
//!      `decommission` block and is complete ([`migration_completed_since`]), and
//!      at least one does; or
//!    * no selector matches it, it is tagged `ecsync.io/managed-by=<controller-id>`
//!      and `ecsync.io/service=<cluster>/<name>`, `--prune` is on, the manifest set
//!      is complete and non-empty, and that service is not declared (nor held).
//!
//!    Nothing else is ever a candidate.
//! 3. A candidate is skipped (no call at all) when it is tagged
//!    `ecsync.io/protect=true`, belongs to an Auto Scaling group, has termination
//!    or stop protection (or its protection could not be read), is registered in a
//!    target group ecsync does not manage, or its registrations cannot be recorded.
//! 4. Otherwise its clock lives in the `ecsync.io/decommission` tag:
//!    no tag → `pending@now`, and it is deregistered from every (managed) group;
//!    `pending@t` → waits for the drain (until no target of it is draining any
//!    more, whatever the group's deregistration delay says) and for `t + after`,
//!    then is stopped or terminated, at most `max_per_pass` per pass, oldest
//!    clock first;
//!    `stopped@t` → done (terminated if the manifest now says `terminate`).
//! 5. An instance carrying the tag that is no longer a candidate is released:
//!    re-registered where it was drained from (if it still runs) and untagged.
//!    A stopped one stays stopped: starting it is the user's call (README).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

mod candidacy;
mod cleanup;
mod group;
mod input;
mod leftovers;
mod output;
mod shard;

use candidacy::{Candidacy, candidacy, record_keys_on, release_blocked, skip_reason};
pub use cleanup::{
    CleanupGroup, CleanupInput, CleanupItem, CleanupPlan, CleanupStep, CleanupTemplate, ItemPlan,
    ItemState, LegacyTargetGroup, fleet_remaining, plan_cleanup,
};
pub use group::{
    GroupInput, GroupInstance, GroupPlan, GroupStep, SUSPENDED_PROCESSES, plan_groups,
};
pub use input::*;
pub use leftovers::{
    AddressState, AttachedVolume, InstanceUse, InterfaceUse, Leftover, LeftoverInput, LeftoverKind,
    RecordInput, RecordItem, ResourceState, Tagged, leftovers, plan_record,
};
pub use output::*;
pub use shard::{ForeignMigration, HeldByShard, HeldKind, held_fleet, hold_for_other_shards};

use crate::core::tags::{self, Clock, MAX_TAG_VALUE, Phase, decode_left, encode_left};

/// Grace period for instances whose owning service left Git (prune): no manifest
/// names an `after` for them any more, so a conservative fixed one applies.
pub const PRUNE_GRACE: Duration = Duration::from_secs(3600);
/// AWS's default `deregistration_delay.timeout_seconds`, used when a group's
/// attribute could not be read: waiting too long is safe, too short is not.
pub const DEFAULT_DEREGISTRATION_DELAY: Duration = Duration::from_secs(300);
/// The tag Auto Scaling puts on the instances of a group.
pub const ASG_TAG: &str = "aws:autoscaling:groupName";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecommissionError {
    #[error("decommission.action {0:?} must be stop or terminate")]
    Action(String),
    #[error("{field}: {message}")]
    Duration {
        field: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DecommissionAction {
    Stop,
    Terminate,
}

impl DecommissionAction {
    /// `action:` as the manifest spells it; absent means `stop` (the default).
    pub fn parse(s: Option<&str>) -> Result<Self, DecommissionError> {
        match s {
            None | Some("stop") => Ok(Self::Stop),
            Some("terminate") => Ok(Self::Terminate),
            Some(other) => Err(DecommissionError::Action(other.to_string())),
        }
    }
    /// Also the `action` label of `ecsync_ec2_decommission_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Terminate => "terminate",
        }
    }
}

/// When the migration described by `steps`/`step_interval` became complete, if it is
/// complete at `now`.
///
/// The contract read here is the migration state ecsync keeps in the ECS service's
/// tags (DESIGN §4), as the migration module writes it: `ecsync.io/migration-step=<n>`
/// counts the steps taken (`n == steps.len()`: the last step, 100%, is applied) and
/// `ecsync.io/migration-step-since=<RFC 3339>` is when. The migration is complete
/// once that last step has held for at least one `stepInterval` (DESIGN §5); the
/// returned time is `since + step_interval`. Anything missing, out of range or
/// unreadable means "not complete": the safe answer.
pub fn migration_completed_since(
    steps: &[u8],
    step_interval: Duration,
    service_tags: &BTreeMap<String, String>,
    now: SystemTime,
) -> Option<SystemTime> {
    // The migration module owns the meaning of its tags; reading them any other
    // way here could take a migration at 50% for a finished one.
    let completed =
        crate::core::migration::completed_since_steps(steps, step_interval, service_tags)?;
    (completed <= now).then_some(completed)
}

/// Decide the pass. Plans come back sorted by instance ID; instances that are
/// neither candidates nor tagged by ecsync produce no plan at all.
pub fn plan_decommission(fleet: &FleetInput) -> Vec<InstancePlan> {
    let now = fleet.now;
    let mut plans = Vec::new();
    // Due instances wait here for the cap: (clock, index into plans, action).
    let mut ready: Vec<(SystemTime, usize, DecommissionAction)> = Vec::new();

    let mut instances: Vec<&InstanceInput> = fleet.instances.iter().collect();
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    instances.dedup_by(|a, b| a.id == b.id);

    for inst in instances {
        if inst.gone() {
            continue;
        }
        if another_controllers(&inst.tags, &fleet.controller_id) {
            continue;
        }
        let clock_tag = inst.tags.get(tags::DECOMMISSION);
        let clock = clock_tag.and_then(|v| Clock::parse(v));
        let mut plan = InstancePlan {
            instance_id: inst.id.clone(),
            state: OrphanState::Pending,
            why: None,
            action: None,
            acts_at: None,
            skipped: None,
            leaves: Vec::new(),
            drained_from: Vec::new(),
            steps: Vec::new(),
            report_only: false,
            message: String::new(),
        };

        // The group a migration names decides for its instances (group.rs).
        if inst
            .tags
            .get(ASG_TAG)
            .is_some_and(|g| fleet.groups.iter().any(|fg| fg.name == *g))
            && clock_tag.is_none()
        {
            continue;
        }
        let c = match candidacy(fleet, inst) {
            Candidacy::Candidate(c) => c,
            Candidacy::Not(why_not) => {
                if clock_tag.is_none() {
                    continue;
                }
                release(fleet, inst, clock, why_not, &mut plan);
                plans.push(plan);
                continue;
            }
        };
        plan.why = Some(c.why.clone());
        plan.action = Some(c.action);
        plan.report_only = c.report_only;
        let managed = |arn: &str| {
            c.legacy.contains(arn) || fleet.target_groups.get(arn).is_some_and(|t| t.managed)
        };

        // Skip rules come first: a protected instance gets no call at all, not even
        // ecsync's own bookkeeping tags.
        if let Some(reason) = skip_reason(fleet, inst, &managed) {
            plan.state = OrphanState::Skipped;
            plan.message = format!("skipped: {reason}");
            plan.acts_at = clock.map(|k| k.since.checked_add(c.after).unwrap_or(k.since));
            plan.skipped = Some(reason);
            plans.push(plan);
            continue;
        }

        // Finished: nothing more to do.
        if let Some(clk) = clock
            && ((clk.phase == Phase::Stopped
                && inst.stopped()
                && c.action == DecommissionAction::Stop)
                || (clk.phase == Phase::Pending
                    && inst.stopped()
                    && c.action == DecommissionAction::Stop))
        {
            plan.state = OrphanState::Stopped;
            plan.acts_at = Some(clk.since);
            if clk.phase == Phase::Pending {
                // Stopped, but the pass that stopped it did not get to record it.
                plan.steps.push(Step::Tag {
                    tags: BTreeMap::from([(
                        tags::DECOMMISSION.to_string(),
                        Clock {
                            phase: Phase::Stopped,
                            since: now,
                        }
                        .format(),
                    )]),
                });
                plan.message = "stopped; recording it".into();
            } else {
                plan.message = "stopped".into();
            }
            plans.push(plan);
            continue;
        }

        // Registrations to leave now, and what the record of them becomes.
        let active: Vec<&Registration> = inst
            .registrations
            .iter()
            .filter(|r| !r.draining())
            .collect();
        let recorded = inst
            .tags
            .get(tags::DECOMMISSION_LEFT)
            .map(|v| decode_left(v))
            .unwrap_or_default();
        let mut left = recorded.clone();
        for r in &active {
            if let Some(tg) = fleet.target_groups.get(&r.target_group_arn) {
                left.insert((tg.name.clone(), r.port));
            }
        }
        let encoded_left = encode_left(&left);
        plan.drained_from = left.iter().map(|(name, _)| name.clone()).collect();
        if encoded_left.len() > MAX_TAG_VALUE {
            plan.state = OrphanState::Skipped;
            plan.skipped = Some(SkipReason::TooManyRegistrations);
            plan.message = format!("skipped: {}", SkipReason::TooManyRegistrations);
            plans.push(plan);
            continue;
        }

        let pending_since = match clock {
            Some(k) if k.phase == Phase::Pending => k.since,
            Some(k) => {
                // stopped@t but running again, or terminating@t but still here, or
                // stopped@t and the manifest now says terminate: act (capped).
                let action = if k.phase == Phase::Stopped && !inst.stopped() {
                    DecommissionAction::Stop
                } else {
                    c.action
                };
                plan.state = OrphanState::Ready;
                plan.acts_at = Some(k.since);
                ready.push((k.since, plans.len(), action));
                plans.push(plan);
                continue;
            }
            None => {
                // The clock starts now; the first tag goes on before any deregistration
                // so that a crash in between still leaves the record of where it was.
                let mut t = pending_clock_tags(now, c.why.service(), &fleet.controller_id);
                if !left.is_empty() {
                    t.insert(tags::DECOMMISSION_LEFT.to_string(), encoded_left.clone());
                }
                plan.steps.push(Step::Tag { tags: t });
                now
            }
        };
        if clock.is_some() && left != recorded {
            plan.steps.push(Step::Tag {
                tags: BTreeMap::from([(tags::DECOMMISSION_LEFT.to_string(), encoded_left)]),
            });
        }
        for r in &active {
            plan.leaves.push(r.target_group_arn.clone());
            plan.steps.push(Step::Deregister {
                target_group_arn: r.target_group_arn.clone(),
                port: r.port,
            });
        }
        let drained_at = drained_at(fleet, &inst.registrations, pending_since);
        let grace_over = pending_since.checked_add(c.after).unwrap_or(pending_since);
        let acts_at = drained_at.map_or(grace_over, |d| d.max(grace_over));
        plan.acts_at = Some(acts_at);
        // Drained by the evidence: no registration left at all, not even a draining
        // one. The deregistration delay only estimates when (an unreadable one is
        // guessed, and the real one may be up to an hour).
        let drained = active.is_empty() && !inst.registrations.iter().any(|r| r.draining());
        if !drained {
            plan.state = OrphanState::Draining;
            plan.message = format!(
                "draining from {} target group(s); acts at {}",
                inst.registrations.len(),
                humantime::format_rfc3339_seconds(acts_at)
            );
        } else if now < grace_over || clock.is_none() {
            plan.state = OrphanState::Pending;
            plan.message = format!(
                "{} at {}",
                c.action.as_str(),
                humantime::format_rfc3339_seconds(acts_at)
            );
        } else {
            plan.state = OrphanState::Ready;
            ready.push((pending_since, plans.len(), c.action));
        }
        plans.push(plan);
    }

    // Oldest clocks first, so a long queue drains in the order it formed.
    ready.sort_by(|a, b| (a.0, &plans[a.1].instance_id).cmp(&(b.0, &plans[b.1].instance_id)));
    let mut budget = fleet.max_per_pass;
    for (_, i, action) in ready {
        let plan = &mut plans[i];
        if plan.report_only {
            plan.message = format!("would {} now (report only)", action.as_str());
            continue;
        }
        if budget == 0 {
            plan.message = format!(
                "due; waiting for --max-decommission-per-pass ({})",
                fleet.max_per_pass
            );
            continue;
        }
        budget -= 1;
        let (step, phase) = match action {
            DecommissionAction::Stop => (Step::Stop, Phase::Stopped),
            DecommissionAction::Terminate => (Step::Terminate, Phase::Terminating),
        };
        // Act first, then record: a crash in between is seen next pass as an
        // instance already stopped (recorded then) or gone.
        plan.steps.push(step);
        plan.steps.push(Step::Tag {
            tags: BTreeMap::from([(
                tags::DECOMMISSION.to_string(),
                Clock { phase, since: now }.format(),
            )]),
        });
        plan.state = match phase {
            Phase::Terminating => OrphanState::Terminating,
            _ => OrphanState::Stopped,
        };
        plan.message = format!("{} now", action.as_str());
    }
    plans
}

/// The tags that start a decommission clock, written before anything else so that a crash
/// right after still leaves the record: the phase and its time, the service it is for, and the
/// controller that owns it.
pub(crate) fn pending_clock_tags(
    now: SystemTime,
    service: &str,
    controller_id: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            tags::DECOMMISSION.to_string(),
            Clock {
                phase: Phase::Pending,
                since: now,
            }
            .format(),
        ),
        (tags::DECOMMISSION_FOR.to_string(), service.to_string()),
        (tags::DECOMMISSION_BY.to_string(), controller_id.to_string()),
    ])
}

/// When the last of `registrations` will have drained, by the target groups'
/// deregistration delays (an unreadable one is AWS's default): an estimate,
/// shown as when a step acts. A registration still active is deregistered on
/// this pass, so it drains from now; a draining one began at `pending_since`.
pub(crate) fn drained_at(
    fleet: &FleetInput,
    registrations: &[Registration],
    pending_since: SystemTime,
) -> Option<SystemTime> {
    registrations
        .iter()
        .map(|r| {
            let delay = fleet
                .target_groups
                .get(&r.target_group_arn)
                .and_then(|t| t.deregistration_delay)
                .unwrap_or(DEFAULT_DEREGISTRATION_DELAY);
            let from = if r.draining() {
                pending_since
            } else {
                fleet.now
            };
            from.checked_add(delay).unwrap_or(from)
        })
        .max()
}

/// Another controller's decommission: not ours to continue nor to release.
pub(crate) fn another_controllers(on: &BTreeMap<String, String>, controller_id: &str) -> bool {
    on.get(tags::DECOMMISSION_BY)
        .is_some_and(|by| by != controller_id)
}

/// A tagged instance that is no longer a candidate: give it back as it was.
fn release(
    fleet: &FleetInput,
    inst: &InstanceInput,
    clock: Option<Clock>,
    why_not: String,
    plan: &mut InstancePlan,
) {
    if let Some((state, skipped, message)) = release_blocked(fleet, &inst.tags, &why_not) {
        plan.state = state;
        plan.skipped = skipped;
        plan.message = message;
        return;
    }
    plan.state = OrphanState::Released;
    let mut message = format!("no longer a candidate ({why_not}): untagged");
    if !inst.stopped() && clock.is_none_or(|k| k.phase == Phase::Pending) {
        let by_name: BTreeMap<&str, &TargetGroupInput> = fleet
            .target_groups
            .values()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let left = inst
            .tags
            .get(tags::DECOMMISSION_LEFT)
            .map(|v| decode_left(v))
            .unwrap_or_default();
        for (name, port) in left {
            let Some(tg) = by_name.get(name.as_str()) else {
                continue;
            };
            let already = inst
                .registrations
                .iter()
                .any(|r| r.target_group_arn == tg.arn && !r.draining());
            if !already {
                plan.steps.push(Step::Register {
                    target_group_arn: tg.arn.clone(),
                    port,
                });
            }
        }
        if !plan.steps.is_empty() {
            message.push_str(" and registered again where it was");
        }
    } else if inst.stopped() {
        message.push_str("; it stays stopped until someone starts it");
    }
    plan.steps.push(Step::Untag {
        keys: record_keys_on(&inst.tags, &[]),
    });
    plan.message = message;
}

#[cfg(test)]
mod tests;
