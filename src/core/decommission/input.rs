//! What one decommission pass decides from: the fleet, as plain data.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::DecommissionAction;
use crate::core::model::ServiceKey;

/// A manifest's migration, as far as decommissioning cares.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationInput {
    pub service: ServiceKey,
    /// `from.instances.tags`; an empty selector matches nothing.
    pub selector: BTreeMap<String, String>,
    /// `from.autoScalingGroup`: the group that keeps the legacy fleet.
    pub auto_scaling_group: Option<String>,
    /// ARN of `from.targetGroup`, when it exists.
    pub legacy_target_group: Option<String>,
    /// `None`: the manifest has no `decommission` block, so its instances stay.
    pub decommission: Option<(DecommissionAction, Duration)>,
    /// From [`migration_completed_since`]; `None` while not complete.
    pub completed_since: Option<SystemTime>,
    /// The service is report-only (`ecsync.io/sync: report`): decide, never act.
    pub report_only: bool,
}

impl MigrationInput {
    pub(super) fn selects(&self, instance_tags: &BTreeMap<String, String>) -> bool {
        !self.selector.is_empty()
            && self
                .selector
                .iter()
                .all(|(k, v)| instance_tags.get(k) == Some(v))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroupInput {
    pub arn: String,
    pub name: String,
    /// Tagged `ecsync.io/managed-by=<controller-id>`.
    pub managed: bool,
    /// `deregistration_delay.timeout_seconds`; `None` if it could not be read.
    pub deregistration_delay: Option<Duration>,
}

/// A target's state as DescribeTargetHealth reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetState {
    Initial,
    Healthy,
    Unhealthy,
    UnhealthyDraining,
    Unused,
    Draining,
    Unavailable,
    Unknown,
}

impl TargetState {
    const ALL: [TargetState; 8] = [
        Self::Initial,
        Self::Healthy,
        Self::Unhealthy,
        Self::UnhealthyDraining,
        Self::Unused,
        Self::Draining,
        Self::Unavailable,
        Self::Unknown,
    ];
    /// ELBv2's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::UnhealthyDraining => "unhealthy.draining",
            Self::Unused => "unused",
            Self::Draining => "draining",
            Self::Unavailable => "unavailable",
            Self::Unknown => "unknown",
        }
    }
    /// Anything ELBv2 adds later reads as `Unknown`.
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .unwrap_or(Self::Unknown)
    }
    /// Deregistered and waiting out the group's deregistration delay.
    pub fn draining(self) -> bool {
        self == Self::Draining
    }
}

/// An EC2 instance's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

impl InstanceState {
    /// Every state in which an instance can still be touched.
    pub const LIVE: [InstanceState; 4] =
        [Self::Pending, Self::Running, Self::Stopping, Self::Stopped];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Running,
            Self::Stopping,
            Self::Stopped,
            Self::ShuttingDown,
            Self::Terminated,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One registration of an instance in a target group, as DescribeTargetHealth
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Registration {
    pub target_group_arn: String,
    pub port: Option<i32>,
    pub state: TargetState,
}

impl Registration {
    pub(super) fn draining(&self) -> bool {
        self.state.draining()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protection {
    pub termination: bool,
    pub stop: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceInput {
    pub id: String,
    pub state: InstanceState,
    pub tags: BTreeMap<String, String>,
    /// `None`: DescribeInstanceAttribute was not answered; treated as protected.
    pub protection: Option<Protection>,
    pub registrations: Vec<Registration>,
}

impl InstanceInput {
    pub(super) fn gone(&self) -> bool {
        matches!(
            self.state,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }
    pub(super) fn stopped(&self) -> bool {
        matches!(self.state, InstanceState::Stopped | InstanceState::Stopping)
    }
}

/// Everything one decommission pass decides from.
#[derive(Debug, Clone)]
pub struct FleetInput {
    pub controller_id: String,
    pub now: SystemTime,
    pub max_per_pass: usize,
    /// `--prune` is on.
    pub prune: bool,
    /// Services Git declares (held ones included: a broken file may declare them).
    pub declared: BTreeSet<ServiceKey>,
    pub held: BTreeSet<ServiceKey>,
    /// Some manifest failed to parse: whatever it declared is unknown.
    pub set_incomplete: bool,
    pub migrations: Vec<MigrationInput>,
    /// By ARN.
    pub target_groups: BTreeMap<String, TargetGroupInput>,
    pub instances: Vec<InstanceInput>,
    /// Auto Scaling groups named by migrations or carrying ecsync's clock.
    pub groups: Vec<super::GroupInput>,
}
