//! Cleaning up after a legacy fleet (`decommission.cleanup`, DESIGN §3 and
//! §5): the pure decision.
//!
//! Nothing happens until the fleet is gone: every selected instance stopped
//! or terminated, and the named group at 0 with no instance (or deleted).
//! Then, each pass, from live state only:
//!
//! 1. The legacy target group leaves the managed forward action (whenever a
//!    `cleanup` block is declared), once nothing is registered in it any more.
//! 2. `launchTemplate`: the group's launch template is deleted when no other
//!    group uses it. It goes before the group, because the group is the only
//!    place that names it: a restart after the group's deletion could no
//!    longer find it.
//! 3. `autoScalingGroup`: the empty group is deleted (without ForceDelete).
//! 4. `targetGroup`: the legacy target group is deleted once no listener or
//!    rule references it any more.
//!
//! Every deletion counts against the per-pass cap; anything tagged
//! `ecsync.io/protect=true` is skipped and reported; a report-only service
//! decides and never acts. Because each step is decided from what exists, a
//! restart at any point carries on where the last pass stopped.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{FleetInput, InstanceState, MigrationInput};
use crate::core::model::ServiceKey;

/// One thing `decommission.cleanup` may list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CleanupItem {
    LaunchTemplate,
    AutoScalingGroup,
    TargetGroup,
}

impl CleanupItem {
    pub const ALL: [CleanupItem; 3] = [
        Self::LaunchTemplate,
        Self::AutoScalingGroup,
        Self::TargetGroup,
    ];
    /// The manifest's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LaunchTemplate => "launchTemplate",
            Self::AutoScalingGroup => "autoScalingGroup",
            Self::TargetGroup => "targetGroup",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }
    /// Only meaningful with `migration.from.autoScalingGroup`.
    pub fn needs_group(self) -> bool {
        matches!(self, Self::LaunchTemplate | Self::AutoScalingGroup)
    }
}

/// The legacy target group as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyTargetGroup {
    pub arn: String,
    pub name: String,
    pub protected: bool,
    /// Listeners and rules whose actions still forward to it.
    pub references: usize,
    /// Targets registered in it, in any state (draining included).
    pub registered: usize,
}

/// The named Auto Scaling group as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupGroup {
    pub name: String,
    pub protected: bool,
    pub instances: usize,
    pub desired_capacity: i32,
    /// Being deleted already (by Auto Scaling, or by this pass's decommission).
    pub deleting: bool,
}

/// The group's launch template as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupTemplate {
    pub id: String,
    pub name: String,
    pub protected: bool,
    /// Other Auto Scaling groups that launch from it.
    pub other_users: Vec<String>,
}

/// One migration's cleanup, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupInput {
    pub service: ServiceKey,
    pub items: BTreeSet<CleanupItem>,
    /// `from.targetGroup` and `from.autoScalingGroup` as the manifest names
    /// them: what is announced before anything is observed.
    pub declared_target_group: String,
    pub declared_group: Option<String>,
    pub report_only: bool,
    /// What still runs; `None`: the fleet is gone.
    pub fleet_remaining: Option<String>,
    /// The managed forward action still sends to the legacy group; `None`:
    /// the listener could not be read (nothing is decided).
    pub in_forward: Option<bool>,
    /// `None`: it does not exist (any more).
    pub legacy: Option<LegacyTargetGroup>,
    pub group: Option<CleanupGroup>,
    pub template: Option<CleanupTemplate>,
}

impl CleanupInput {
    /// The group must wait for its launch template to be deleted first.
    pub fn template_first(&self) -> bool {
        self.items.contains(&CleanupItem::LaunchTemplate)
            && self
                .template
                .as_ref()
                .is_some_and(|t| !t.protected && t.other_users.is_empty())
    }
}

/// One mutating call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "step")]
pub enum CleanupStep {
    /// ModifyListener (or ModifyRule): the forward action without the legacy group.
    #[serde(rename_all = "camelCase")]
    LeaveForward { target_group_arn: String },
    /// DeleteLaunchTemplate.
    #[serde(rename_all = "camelCase")]
    DeleteLaunchTemplate { id: String, name: String },
    /// DeleteAutoScalingGroup, without ForceDelete.
    #[serde(rename_all = "camelCase")]
    DeleteGroup { name: String },
    /// DeleteTargetGroup.
    #[serde(rename_all = "camelCase")]
    DeleteTargetGroup { arn: String, name: String },
}

impl CleanupStep {
    pub fn name(&self) -> &'static str {
        match self {
            Self::LeaveForward { .. } => "leave_forward",
            Self::DeleteLaunchTemplate { .. } => "delete_launch_template",
            Self::DeleteGroup { .. } => "delete_group",
            Self::DeleteTargetGroup { .. } => "delete_target_group",
        }
    }
    /// The item it deletes (the listener change deletes nothing).
    pub fn item(&self) -> Option<CleanupItem> {
        match self {
            Self::LeaveForward { .. } => None,
            Self::DeleteLaunchTemplate { .. } => Some(CleanupItem::LaunchTemplate),
            Self::DeleteGroup { .. } => Some(CleanupItem::AutoScalingGroup),
            Self::DeleteTargetGroup { .. } => Some(CleanupItem::TargetGroup),
        }
    }
}

/// Where one item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ItemState {
    /// Waiting for the fleet, an earlier item, or a reference to go.
    Waiting,
    /// Due, but the per-pass cap or report-only mode holds it this pass.
    Due,
    /// Deleted this pass.
    Deleting,
    /// Gone.
    Done,
    /// Tagged `ecsync.io/protect=true` or still in use: never deleted.
    Skipped,
}

impl ItemState {
    /// As `/status` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Due => "due",
            Self::Deleting => "deleting",
            Self::Done => "done",
            Self::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemPlan {
    pub item: CleanupItem,
    /// The object's name, when known.
    pub name: Option<String>,
    pub state: ItemState,
    pub message: String,
}

/// What one pass decides about one migration's cleanup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupPlan {
    pub service: ServiceKey,
    /// The legacy group has left the forward action.
    pub left_forward: bool,
    pub items: Vec<ItemPlan>,
    pub steps: Vec<CleanupStep>,
    pub report_only: bool,
    pub message: String,
}

/// What of `m`'s fleet this pass's observation still finds; `None`: it is
/// gone (every selected instance stopped or terminated, and the named group
/// at 0 with no instance, or deleted).
pub fn fleet_remaining(fleet: &FleetInput, m: &MigrationInput) -> Option<String> {
    if m.completed_since.is_none() || m.decommission.is_none() {
        return Some("the migration is not complete".into());
    }
    if let Some(i) = fleet
        .instances
        .iter()
        .find(|i| m.selects(&i.tags) && !i.gone() && i.state != InstanceState::Stopped)
    {
        return Some(format!("instance {} is {}", i.id, i.state.as_str()));
    }
    let name = m.auto_scaling_group.as_deref()?;
    let g = fleet.groups.iter().find(|g| g.name == name)?;
    if !g.instances.is_empty() || g.desired_capacity != 0 || g.min_size != 0 {
        return Some(format!(
            "{name} has {} instance(s), {} desired",
            g.instances.len(),
            g.desired_capacity
        ));
    }
    None
}

/// Decide every migration's cleanup; `budget` is what the per-pass cap
/// leaves after instances and groups. Deletions are granted in the inputs'
/// order, each item in the order of [`CleanupItem::ALL`].
pub fn plan_cleanup(inputs: &[CleanupInput], budget: usize) -> Vec<CleanupPlan> {
    let mut budget = budget;
    inputs.iter().map(|c| plan_one(c, &mut budget)).collect()
}

fn plan_one(c: &CleanupInput, budget: &mut usize) -> CleanupPlan {
    let mut plan = CleanupPlan {
        service: c.service.clone(),
        left_forward: c.in_forward == Some(false),
        items: Vec::new(),
        steps: Vec::new(),
        report_only: c.report_only,
        message: String::new(),
    };
    let names = |item: CleanupItem| match item {
        CleanupItem::LaunchTemplate => c.template.as_ref().map(|t| t.name.clone()),
        CleanupItem::AutoScalingGroup => c
            .group
            .as_ref()
            .map(|g| g.name.clone())
            .or_else(|| c.declared_group.clone()),
        CleanupItem::TargetGroup => Some(
            c.legacy
                .as_ref()
                .map_or_else(|| c.declared_target_group.clone(), |t| t.name.clone()),
        ),
    };
    let waiting_all = |plan: &mut CleanupPlan, why: &str| {
        for item in CleanupItem::ALL.into_iter().filter(|i| c.items.contains(i)) {
            plan.items.push(ItemPlan {
                item,
                name: names(item),
                state: ItemState::Waiting,
                message: why.to_string(),
            });
        }
        plan.message = why.to_string();
    };
    if let Some(what) = &c.fleet_remaining {
        let why = format!("once the fleet is gone ({what})");
        waiting_all(&mut plan, &why);
        return plan;
    }
    let Some(in_forward) = c.in_forward else {
        waiting_all(&mut plan, "the listener could not be read: nothing decided");
        return plan;
    };
    if in_forward {
        match &c.legacy {
            Some(tg) if tg.registered > 0 => {
                let why = format!(
                    "{} target(s) still registered in {}: it stays in the forward action",
                    tg.registered, tg.name
                );
                waiting_all(&mut plan, &why);
                return plan;
            }
            Some(tg) => {
                plan.steps.push(CleanupStep::LeaveForward {
                    target_group_arn: tg.arn.clone(),
                });
                plan.left_forward = true;
            }
            // Only an ARN can name a group that no longer exists; nothing to do.
            None => {}
        }
    }
    // Deleted this pass, in order: what a later item waits for.
    let mut template_pending = false;
    for item in CleanupItem::ALL.into_iter().filter(|i| c.items.contains(i)) {
        let (state, message, step) = match item {
            CleanupItem::LaunchTemplate => match &c.template {
                None => (ItemState::Done, "gone".to_string(), None),
                Some(t) if t.protected => (
                    ItemState::Skipped,
                    "tagged ecsync.io/protect=true: kept".to_string(),
                    None,
                ),
                Some(t) if !t.other_users.is_empty() => (
                    ItemState::Skipped,
                    format!("still used by {}: kept", t.other_users.join(", ")),
                    None,
                ),
                Some(t) => {
                    template_pending = true;
                    (
                        ItemState::Due,
                        "no other group uses it".to_string(),
                        Some(CleanupStep::DeleteLaunchTemplate {
                            id: t.id.clone(),
                            name: t.name.clone(),
                        }),
                    )
                }
            },
            CleanupItem::AutoScalingGroup => match &c.group {
                None => (ItemState::Done, "gone".to_string(), None),
                Some(g) if g.protected => (
                    ItemState::Skipped,
                    "tagged ecsync.io/protect=true: kept".to_string(),
                    None,
                ),
                Some(g) if g.deleting => (
                    ItemState::Deleting,
                    "being deleted by Auto Scaling".to_string(),
                    None,
                ),
                Some(g) if g.instances > 0 || g.desired_capacity > 0 => (
                    ItemState::Waiting,
                    format!("still has {} instance(s)", g.instances),
                    None,
                ),
                Some(_) if template_pending => (
                    ItemState::Waiting,
                    "after its launch template".to_string(),
                    None,
                ),
                Some(g) => (
                    ItemState::Due,
                    "empty".to_string(),
                    Some(CleanupStep::DeleteGroup {
                        name: g.name.clone(),
                    }),
                ),
            },
            CleanupItem::TargetGroup => match &c.legacy {
                None => (ItemState::Done, "gone".to_string(), None),
                Some(t) if t.protected => (
                    ItemState::Skipped,
                    "tagged ecsync.io/protect=true: kept".to_string(),
                    None,
                ),
                Some(_) if in_forward => (
                    ItemState::Waiting,
                    "after it leaves the forward action".to_string(),
                    None,
                ),
                Some(t) if t.references > 0 => (
                    ItemState::Waiting,
                    format!(
                        "still referenced by {} listener(s) or rule(s)",
                        t.references
                    ),
                    None,
                ),
                Some(t) if t.registered > 0 => (
                    ItemState::Waiting,
                    format!("{} target(s) still registered", t.registered),
                    None,
                ),
                Some(t) => (
                    ItemState::Due,
                    "no listener or rule references it".to_string(),
                    Some(CleanupStep::DeleteTargetGroup {
                        arn: t.arn.clone(),
                        name: t.name.clone(),
                    }),
                ),
            },
        };
        let mut item_plan = ItemPlan {
            item,
            name: names(item),
            state,
            message,
        };
        if let Some(step) = step {
            if c.report_only {
                item_plan.message =
                    format!("would delete now ({}; report only)", item_plan.message);
            } else if *budget == 0 {
                item_plan.message = format!(
                    "due ({}); waiting for --max-decommission-per-pass",
                    item_plan.message
                );
            } else {
                *budget -= 1;
                item_plan.state = ItemState::Deleting;
                item_plan.message = format!("deleting now: {}", item_plan.message);
                plan.steps.push(step);
            }
        }
        plan.items.push(item_plan);
    }
    if c.report_only {
        // Decided and shown, never made: not even the listener change.
        plan.steps.clear();
        plan.left_forward = !in_forward;
    }
    plan.message = match plan.items.iter().find(|i| i.state != ItemState::Done) {
        None if plan.left_forward => "cleaned up".to_string(),
        None => "the legacy target group leaves the forward action".to_string(),
        Some(i) => format!("{}: {}", i.item.as_str(), i.message),
    };
    plan
}

#[cfg(test)]
mod tests;
