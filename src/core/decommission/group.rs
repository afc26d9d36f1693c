//! Decommissioning a legacy fleet kept by an Auto Scaling group
//! (`migration.from.autoScalingGroup`, DESIGN §3 and §5): the pure decision.
//!
//! Each pass decides the next step from what it observes, so a restart at any
//! point carries on from the group's live state and its tags:
//!
//! 1. The clock starts (`ecsync.io/decommission=pending@<now>` on the group,
//!    with the processes ecsync suspends and the target group it detaches
//!    recorded for a release), and `Launch`, `HealthCheck`,
//!    `ReplaceUnhealthy` and `AZRebalance` are suspended: nothing replaces an
//!    instance that drains or stops.
//! 2. The legacy target group is detached; the group waits until none of its
//!    instances is registered there any more, not even draining (the
//!    deregistration delay only estimates when), and until `after` has run.
//! 3. Minimum and desired capacity go to 0 (`stopped@<t>`), within the same
//!    per-pass cap as instances; Auto Scaling terminates the instances.
//! 4. With `terminate`, the empty group is deleted (`terminating@<t>`).
//!
//! Held and reported, with no call at all: a group tagged
//! `ecsync.io/protect=true`, one with an instance protected from scale-in, one
//! with a lifecycle hook on termination (it would hold every instance in
//! `Terminating:Wait`), or whose hooks could not be read, and one also serving
//! a target group or Classic Load Balancer the migration does not name.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde::Serialize;

use super::candidacy::{Candidate, from_migrations, record_keys_on, release_blocked};
use super::{
    DecommissionAction, FleetInput, MigrationInput, OrphanState, Registration, SkipReason, Why,
    another_controllers, drained_at, pending_clock_tags,
};
use crate::core::tags::{self, Clock, Phase, decode_left, encode_left};

/// The processes suspended before anything else, in this order: no launch, no
/// replacement of instances that drain or fail health checks, no rebalancing.
pub const SUSPENDED_PROCESSES: [&str; 4] =
    ["Launch", "HealthCheck", "ReplaceUnhealthy", "AZRebalance"];

/// An Auto Scaling group as the decision sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInput {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub min_size: i32,
    pub desired_capacity: i32,
    /// Suspended process names.
    pub suspended: BTreeSet<String>,
    /// Target group ARNs attached to the group.
    pub target_group_arns: BTreeSet<String>,
    /// Classic Load Balancers attached to the group.
    pub load_balancer_names: Vec<String>,
    pub instances: Vec<GroupInstance>,
    /// Names of lifecycle hooks on `autoscaling:EC2_INSTANCE_TERMINATING`;
    /// `None`: they could not be read (the group is held).
    pub terminating_hooks: Option<Vec<String>>,
    /// Registrations of the group's instances in the legacy target group.
    pub registrations: Vec<Registration>,
    /// `Status` is "Delete in progress".
    pub deleting: bool,
    /// `decommission.cleanup` deletes its launch template first: the group
    /// is the only place that names it (see `cleanup`).
    pub template_first: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInstance {
    pub id: String,
    pub protected_from_scale_in: bool,
}

/// One mutating Auto Scaling call, in the order the shell makes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "step")]
pub enum GroupStep {
    /// CreateOrUpdateTags (never propagated to instances).
    Tag {
        tags: BTreeMap<String, String>,
    },
    Untag {
        keys: Vec<String>,
    },
    Suspend {
        processes: Vec<String>,
    },
    Resume {
        processes: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    Detach {
        target_group_arn: String,
    },
    #[serde(rename_all = "camelCase")]
    Attach {
        target_group_arn: String,
    },
    /// UpdateAutoScalingGroup MinSize = DesiredCapacity = 0.
    ScaleToZero,
    /// DeleteAutoScalingGroup (without ForceDelete: only an empty group).
    Delete,
}

impl GroupStep {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tag { .. } => "tag",
            Self::Untag { .. } => "untag",
            Self::Suspend { .. } => "suspend",
            Self::Resume { .. } => "resume",
            Self::Detach { .. } => "detach",
            Self::Attach { .. } => "attach",
            Self::ScaleToZero => "scale_to_zero",
            Self::Delete => "delete",
        }
    }
    /// The step that switches the fleet off (counted by the per-pass cap).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::ScaleToZero | Self::Delete)
    }
}

/// What one pass decides about one Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPlan {
    pub group: String,
    pub state: OrphanState,
    pub why: Option<Why>,
    pub action: Option<DecommissionAction>,
    /// When the scale-in (or the deletion) is due.
    #[serde(serialize_with = "super::output::opt_rfc3339")]
    pub acts_at: Option<SystemTime>,
    pub skipped: Option<SkipReason>,
    /// Instances still in the group.
    pub instances: usize,
    pub steps: Vec<GroupStep>,
    pub report_only: bool,
    pub message: String,
}

impl GroupPlan {
    pub fn final_step(&self) -> Option<&GroupStep> {
        self.steps.iter().find(|s| s.is_final())
    }
    /// This pass starts the group's decommission clock (see
    /// [`super::InstancePlan::starts_clock`]).
    pub fn starts_clock(&self) -> bool {
        self.steps.iter().any(|s| match s {
            GroupStep::Tag { tags } => tags.contains_key(tags::DECOMMISSION_FOR),
            _ => false,
        })
    }
}

fn candidacy(fleet: &FleetInput, g: &GroupInput) -> Result<Candidate, String> {
    let naming: Vec<&MigrationInput> = fleet
        .migrations
        .iter()
        .filter(|m| m.auto_scaling_group.as_deref() == Some(g.name.as_str()))
        .collect();
    from_migrations(&naming, "named", "no migration names it any more")
}

fn skip_reason(fleet: &FleetInput, g: &GroupInput, c: &Candidate) -> Option<SkipReason> {
    if tags::is_protected(&g.tags) {
        return Some(SkipReason::Protected);
    }
    if let Some(i) = g.instances.iter().find(|i| i.protected_from_scale_in) {
        return Some(SkipReason::ScaleInProtection {
            instance: i.id.clone(),
        });
    }
    match &g.terminating_hooks {
        None => return Some(SkipReason::LifecycleHooksUnknown),
        Some(hooks) if !hooks.is_empty() => {
            return Some(SkipReason::LifecycleHooks {
                hooks: hooks.join(", "),
            });
        }
        Some(_) => {}
    }
    if let Some(lb) = g.load_balancer_names.first() {
        return Some(SkipReason::ClassicLoadBalancer { name: lb.clone() });
    }
    if let Some(arn) = g.target_group_arns.iter().find(|a| !c.legacy.contains(*a)) {
        let target_group = fleet
            .target_groups
            .get(arn)
            .map_or_else(|| arn.clone(), |t| t.name.clone());
        return Some(SkipReason::UnmanagedTargetGroup { target_group });
    }
    None
}

/// Decide every group's pass. `budget` is what the per-pass cap leaves after
/// the instances. Plans come back sorted by group name; groups that are
/// neither named by a migration nor tagged by ecsync produce none.
pub fn plan_groups(fleet: &FleetInput, budget: usize) -> Vec<GroupPlan> {
    let now = fleet.now;
    let mut plans = Vec::new();
    let mut ready: Vec<(SystemTime, usize, GroupStep)> = Vec::new();
    let mut groups: Vec<&GroupInput> = fleet.groups.iter().collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    groups.dedup_by(|a, b| a.name == b.name);

    for g in groups {
        if another_controllers(&g.tags, &fleet.controller_id) {
            continue;
        }
        let clock_tag = g.tags.get(tags::DECOMMISSION);
        let clock = clock_tag.and_then(|v| Clock::parse(v));
        let mut plan = GroupPlan {
            group: g.name.clone(),
            state: OrphanState::Pending,
            why: None,
            action: None,
            acts_at: None,
            skipped: None,
            instances: g.instances.len(),
            steps: Vec::new(),
            report_only: false,
            message: String::new(),
        };
        let c = match candidacy(fleet, g) {
            Ok(c) => c,
            Err(why_not) => {
                if clock_tag.is_some() {
                    release(fleet, g, clock, why_not, &mut plan);
                    plans.push(plan);
                }
                continue;
            }
        };
        plan.why = Some(c.why.clone());
        plan.action = Some(c.action);
        plan.report_only = c.report_only;
        if let Some(reason) = skip_reason(fleet, g, &c) {
            plan.state = OrphanState::Skipped;
            plan.message = format!("held: {reason}");
            plan.acts_at = clock.map(|k| k.since.checked_add(c.after).unwrap_or(k.since));
            plan.skipped = Some(reason);
            plans.push(plan);
            continue;
        }
        if g.deleting {
            plan.state = OrphanState::Terminating;
            plan.message = "being deleted by Auto Scaling".into();
            plans.push(plan);
            continue;
        }

        let pending_since = match clock {
            Some(k) => k.since,
            None => {
                let mut t = pending_clock_tags(now, c.why.service(), &fleet.controller_id);
                // What a release puts back: only what ecsync itself changes.
                let suspending: Vec<&str> = SUSPENDED_PROCESSES
                    .iter()
                    .copied()
                    .filter(|p| !g.suspended.contains(*p))
                    .collect();
                if !suspending.is_empty() {
                    t.insert(tags::DECOMMISSION_SUSPENDED.into(), suspending.join(","));
                }
                let left: BTreeSet<(String, Option<i32>)> = g
                    .target_group_arns
                    .iter()
                    .filter_map(|arn| fleet.target_groups.get(arn))
                    .map(|tg| (tg.name.clone(), None))
                    .collect();
                if !left.is_empty() {
                    t.insert(tags::DECOMMISSION_LEFT.into(), encode_left(&left));
                }
                plan.steps.push(GroupStep::Tag { tags: t });
                now
            }
        };
        // Level-triggered: whatever someone resumed is suspended again.
        let missing: Vec<String> = SUSPENDED_PROCESSES
            .iter()
            .filter(|p| !g.suspended.contains(**p))
            .map(|p| p.to_string())
            .collect();
        if !missing.is_empty() {
            plan.steps.push(GroupStep::Suspend { processes: missing });
        }
        let detaching: Vec<String> = g.target_group_arns.iter().cloned().collect();
        for arn in &detaching {
            plan.steps.push(GroupStep::Detach {
                target_group_arn: arn.clone(),
            });
        }

        let drained_at = drained_at(fleet, &g.registrations, pending_since);
        // Once scaled in, `after` has been served: the clock is then when it was.
        let grace_over = match clock {
            Some(k) if k.phase != Phase::Pending => k.since,
            _ => pending_since.checked_add(c.after).unwrap_or(pending_since),
        };
        let acts_at = drained_at.map_or(grace_over, |d| d.max(grace_over));
        plan.acts_at = Some(acts_at);
        let scaled = g.min_size == 0 && g.desired_capacity == 0;
        let phase = clock.map(|k| k.phase);

        if !detaching.is_empty() || !g.registrations.is_empty() {
            plan.state = OrphanState::Draining;
            plan.message = format!(
                "draining {} instance(s) from the legacy target group; scales in at {}",
                g.registrations.len(),
                humantime::format_rfc3339_seconds(acts_at)
            );
        } else if (now < grace_over || clock.is_none()) && !scaled {
            plan.state = OrphanState::Pending;
            plan.message = format!(
                "scale to 0 at {}",
                humantime::format_rfc3339_seconds(acts_at)
            );
        } else if !scaled {
            // Due (or scaled up again by someone after ecsync scaled it in).
            plan.state = OrphanState::Ready;
            ready.push((pending_since, plans.len(), GroupStep::ScaleToZero));
        } else if phase != Some(Phase::Stopped) && phase != Some(Phase::Terminating) {
            // At 0 already (by hand, or a pass that stopped before its tag).
            plan.state = OrphanState::Stopped;
            plan.steps.push(phase_tag(Phase::Stopped, now));
            plan.message = "at 0 instances desired; recording it".into();
        } else if !g.instances.is_empty() {
            plan.state = OrphanState::Stopped;
            plan.message = format!(
                "scaled to 0; {} instance(s) still terminating",
                g.instances.len()
            );
        } else if c.action == DecommissionAction::Terminate && g.template_first {
            plan.state = OrphanState::Stopped;
            plan.message = "empty; deleted once its launch template is cleaned up".into();
        } else if c.action == DecommissionAction::Terminate {
            plan.state = OrphanState::Ready;
            ready.push((pending_since, plans.len(), GroupStep::Delete));
        } else {
            plan.state = OrphanState::Stopped;
            plan.message = "scaled to 0".into();
        }
        plans.push(plan);
    }

    ready.sort_by(|a, b| (a.0, &plans[a.1].group).cmp(&(b.0, &plans[b.1].group)));
    let mut budget = budget;
    for (_, i, step) in ready {
        let plan = &mut plans[i];
        let what = match step {
            GroupStep::Delete => "delete the empty group",
            _ => "scale to 0",
        };
        if plan.report_only {
            plan.message = format!("would {what} now (report only)");
            continue;
        }
        if budget == 0 {
            plan.message = format!("due to {what}; waiting for --max-decommission-per-pass");
            continue;
        }
        budget -= 1;
        // Act first, then record: a crash in between is seen next pass as a
        // group already at 0 (recorded then) or gone.
        let (phase, state) = match step {
            GroupStep::Delete => (Phase::Terminating, OrphanState::Terminating),
            _ => (Phase::Stopped, OrphanState::Stopped),
        };
        let deleting = step == GroupStep::Delete;
        plan.steps.push(step);
        if !deleting {
            plan.steps.push(phase_tag(phase, now));
        }
        plan.state = state;
        plan.message = format!("{what} now");
    }
    plans
}

fn phase_tag(phase: Phase, now: SystemTime) -> GroupStep {
    GroupStep::Tag {
        tags: BTreeMap::from([(
            tags::DECOMMISSION.to_string(),
            Clock { phase, since: now }.format(),
        )]),
    }
}

/// A tagged group that is no longer a candidate: resume what ecsync
/// suspended, attach what it detached, untag. Its capacity is left as it is:
/// scaling a fleet back up is the operator's call (as starting an instance).
fn release(
    fleet: &FleetInput,
    g: &GroupInput,
    clock: Option<Clock>,
    why_not: String,
    plan: &mut GroupPlan,
) {
    if let Some((state, skipped, message)) = release_blocked(fleet, &g.tags, &why_not) {
        plan.state = state;
        plan.skipped = skipped;
        plan.message = message;
        return;
    }
    plan.state = OrphanState::Released;
    let resume: Vec<String> = g
        .tags
        .get(tags::DECOMMISSION_SUSPENDED)
        .map(|v| {
            v.split(',')
                .filter(|p| SUSPENDED_PROCESSES.contains(p) && g.suspended.contains(*p))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !resume.is_empty() {
        plan.steps.push(GroupStep::Resume { processes: resume });
    }
    let by_name: BTreeMap<&str, &str> = fleet
        .target_groups
        .values()
        .map(|t| (t.name.as_str(), t.arn.as_str()))
        .collect();
    let left = g
        .tags
        .get(tags::DECOMMISSION_LEFT)
        .map(|v| decode_left(v))
        .unwrap_or_default();
    for (name, _) in left {
        if let Some(arn) = by_name.get(name.as_str())
            && !g.target_group_arns.contains(*arn)
        {
            plan.steps.push(GroupStep::Attach {
                target_group_arn: arn.to_string(),
            });
        }
    }
    plan.steps.push(GroupStep::Untag {
        keys: record_keys_on(&g.tags, &[tags::DECOMMISSION_SUSPENDED]),
    });
    let scaled = clock.is_some_and(|k| k.phase != Phase::Pending);
    plan.message = if scaled {
        format!(
            "no longer a candidate ({why_not}): processes resumed and untagged; its capacity stays at 0 until someone raises it"
        )
    } else {
        format!("no longer a candidate ({why_not}): processes resumed, attached again, untagged")
    };
}

#[cfg(test)]
mod tests;
