//! What one decommission pass decides about each instance.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::DecommissionAction;
use crate::core::tags;

/// Why an instance is a candidate: the evidence logged with every action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Why {
    /// Selected by the `from.instances` of a migration complete since `completed`.
    #[serde(rename_all = "camelCase")]
    Migration {
        service: String,
        #[serde(serialize_with = "rfc3339")]
        completed: SystemTime,
    },
    /// Owned by this controller; its service left Git (`--prune`).
    Prune { service: String },
}

impl Why {
    pub fn service(&self) -> &str {
        match self {
            Why::Migration { service, .. } | Why::Prune { service } => service,
        }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Migration { service, completed } => write!(
                f,
                "migration of {service} at 100% on ECS since {}",
                humantime::format_rfc3339_seconds(*completed)
            ),
            Why::Prune { service } => write!(f, "service {service} left Git (prune)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum SkipReason {
    /// `ecsync.io/protect=true`.
    Protected,
    /// In an Auto Scaling group: stopping it singly would fight the group.
    #[serde(rename_all = "camelCase")]
    AutoScalingGroup {
        group: String,
    },
    TerminationProtection,
    StopProtection,
    /// DescribeInstanceAttribute did not answer: protection is unknown.
    ProtectionUnknown,
    /// Registered in a target group ecsync does not manage.
    #[serde(rename_all = "camelCase")]
    UnmanagedTargetGroup {
        target_group: String,
    },
    /// Too many registrations to record in one tag (256 characters).
    TooManyRegistrations,
    /// An instance of the group is protected from scale-in.
    #[serde(rename_all = "camelCase")]
    ScaleInProtection {
        instance: String,
    },
    /// Lifecycle hooks on termination would hold the instances.
    #[serde(rename_all = "camelCase")]
    LifecycleHooks {
        hooks: String,
    },
    /// DescribeLifecycleHooks did not answer.
    LifecycleHooksUnknown,
    /// The group also serves a Classic Load Balancer.
    #[serde(rename_all = "camelCase")]
    ClassicLoadBalancer {
        name: String,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Protected => write!(f, "tagged {}=true", tags::PROTECT),
            Self::AutoScalingGroup { group } => write!(
                f,
                "in Auto Scaling group {group}: scale the group down instead"
            ),
            Self::TerminationProtection => f.write_str("termination protection is on"),
            Self::StopProtection => f.write_str("stop protection is on"),
            Self::ProtectionUnknown => f.write_str("could not read its protection attributes"),
            Self::UnmanagedTargetGroup { target_group } => write!(
                f,
                "still registered in target group {target_group}, which ecsync does not manage"
            ),
            Self::TooManyRegistrations => {
                f.write_str("registered in too many target groups to record them in a tag")
            }
            Self::ScaleInProtection { instance } => {
                write!(f, "instance {instance} is protected from scale-in")
            }
            Self::LifecycleHooks { hooks } => write!(
                f,
                "lifecycle hooks on termination would hold its instances: {hooks}"
            ),
            Self::LifecycleHooksUnknown => f.write_str("could not read its lifecycle hooks"),
            Self::ClassicLoadBalancer { name } => {
                write!(f, "also serves Classic Load Balancer {name}")
            }
        }
    }
}

/// Where an instance stands; also the `state` label of `ecsync_ec2_orphans`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OrphanState {
    /// Clock running: waiting out the `after` grace period.
    Pending,
    /// Deregistered (or being deregistered); waiting for the targets to drain.
    Draining,
    /// Grace period over; acted on this pass, or waiting for the per-pass cap.
    Ready,
    Stopped,
    Terminating,
    /// A candidate that must not be touched; see `skipped`.
    Skipped,
    /// No longer a candidate: re-registered and untagged.
    Released,
    /// Tagged by ecsync, but the manifest that would decide is broken: left as is.
    Held,
}

impl OrphanState {
    pub const ALL: [OrphanState; 8] = [
        Self::Pending,
        Self::Draining,
        Self::Ready,
        Self::Stopped,
        Self::Terminating,
        Self::Skipped,
        Self::Released,
        Self::Held,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Draining => "draining",
            Self::Ready => "ready",
            Self::Stopped => "stopped",
            Self::Terminating => "terminating",
            Self::Skipped => "skipped",
            Self::Released => "released",
            Self::Held => "held",
        }
    }
}

/// One mutating call, in the order the shell must make them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "step")]
pub enum Step {
    #[serde(rename_all = "camelCase")]
    Deregister {
        target_group_arn: String,
        port: Option<i32>,
    },
    #[serde(rename_all = "camelCase")]
    Register {
        target_group_arn: String,
        port: Option<i32>,
    },
    Tag {
        tags: BTreeMap<String, String>,
    },
    Untag {
        keys: Vec<String>,
    },
    Stop,
    Terminate,
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Deregister { .. } => "deregister",
            Self::Register { .. } => "register",
            Self::Tag { .. } => "tag",
            Self::Untag { .. } => "untag",
            Self::Stop => "stop",
            Self::Terminate => "terminate",
        }
    }
}

/// What one pass decides about one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstancePlan {
    pub instance_id: String,
    pub state: OrphanState,
    pub why: Option<Why>,
    pub action: Option<DecommissionAction>,
    /// When the stop/terminate is due (RFC 3339 in JSON).
    #[serde(serialize_with = "opt_rfc3339")]
    pub acts_at: Option<SystemTime>,
    pub skipped: Option<SkipReason>,
    /// Target group ARNs it is deregistered from by this plan.
    pub leaves: Vec<String>,
    /// Names of every target group it was drained from (the recorded ones
    /// included): the evidence logged with the stop or terminate.
    pub drained_from: Vec<String>,
    pub steps: Vec<Step>,
    /// Decided but never carried out: the service is report-only.
    pub report_only: bool,
    pub message: String,
}

impl InstancePlan {
    pub fn is_mutating(&self) -> bool {
        !self.steps.is_empty()
    }
    /// This pass starts the instance's decommission clock: the moment to
    /// record what it leaves behind (`leftovers`).
    pub fn starts_clock(&self) -> bool {
        self.steps.iter().any(|s| match s {
            Step::Tag { tags } => tags.contains_key(crate::core::tags::DECOMMISSION_FOR),
            _ => false,
        })
    }
    /// The stop or terminate this plan makes, if any.
    pub fn final_action(&self) -> Option<DecommissionAction> {
        self.steps.iter().find_map(|s| match s {
            Step::Stop => Some(DecommissionAction::Stop),
            Step::Terminate => Some(DecommissionAction::Terminate),
            _ => None,
        })
    }
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_seconds(*t))
}

pub(super) fn opt_rfc3339<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}
