//! Notifications (DESIGN §11): which events a pass gives rise to, as plain data.
//!
//! The daemon hands in what one pass found and did ([`PassFacts`], with `now`);
//! [`Memory::observe`] answers with the events not sent before. Delivery (HTTP,
//! queues, retries) is the runtime's business; nothing here does I/O or reads a
//! clock.
//!
//! "Sent before" is decided by a [`DedupeKey`]: the event, the object and the
//! revision it is about. For conditions that last (drift, a failure, a degraded
//! rollout) the revision is the Git revision, so a condition that persists over
//! many passes is announced once per commit. Events that can happen several times
//! within one commit name what tells them apart: a drift its content (a second,
//! different hand edit is news), a migration step its stage, a completion its time.

mod detect;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::core::decommission::{CleanupPlan, InstancePlan};
use crate::core::diff::FieldDiff;
use crate::core::migration::Decision;
use crate::core::model::ServiceKey;
use crate::core::plan::ActionKind;
use crate::core::state::{Mode, Rollout, SyncState};

/// How many dedupe keys are remembered; the oldest are forgotten first. At a
/// handful of events per service and commit this spans many commits of a large
/// fleet, and a forgotten key costs at most one repeated message.
pub const DEDUPE_CAPACITY: usize = 4096;

/// The events of DESIGN §11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    SyncFailed,
    ServiceDegraded,
    /// A change ecsync made finished rolling out.
    ServiceSynced,
    /// A pass found drift; in auto mode it was then corrected.
    DriftDetected,
    MigrationStep,
    MigrationRollback,
    MigrationCompleted,
    DecommissionStopped,
    DecommissionTerminated,
    CleanupDeleted,
    PruneDeleted,
    HookFailed,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        Self::SyncFailed,
        Self::ServiceDegraded,
        Self::ServiceSynced,
        Self::DriftDetected,
        Self::MigrationStep,
        Self::MigrationRollback,
        Self::MigrationCompleted,
        Self::DecommissionStopped,
        Self::DecommissionTerminated,
        Self::CleanupDeleted,
        Self::PruneDeleted,
        Self::HookFailed,
    ];

    /// The `event` field of the JSON payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SyncFailed => "sync.failed",
            Self::ServiceDegraded => "service.degraded",
            Self::ServiceSynced => "service.synced",
            Self::DriftDetected => "drift.detected",
            Self::MigrationStep => "migration.step",
            Self::MigrationRollback => "migration.rollback",
            Self::MigrationCompleted => "migration.completed",
            Self::DecommissionStopped => "decommission.stopped",
            Self::DecommissionTerminated => "decommission.terminated",
            Self::CleanupDeleted => "cleanup.deleted",
            Self::PruneDeleted => "prune.deleted",
            Self::HookFailed => "hook.failed",
        }
    }

    /// Something went wrong (as opposed to news): sinks may colour it so.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            Self::SyncFailed | Self::ServiceDegraded | Self::MigrationRollback | Self::HookFailed
        )
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What an event is about: the `kind` field of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ObjectKind {
    Service,
    /// An EC2 instance of a migrated fleet.
    Instance,
    TaskDefinition,
    Hook,
    /// The controller itself: a pass or a Git fetch that failed as a whole.
    Controller,
    /// What `decommission.cleanup` deleted.
    TargetGroup,
    AutoScalingGroup,
    LaunchTemplate,
}

impl ObjectKind {
    /// The `kind` field of the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "Service",
            Self::Instance => "Instance",
            Self::TaskDefinition => "TaskDefinition",
            Self::Hook => "Hook",
            Self::Controller => "Controller",
            Self::TargetGroup => "TargetGroup",
            Self::AutoScalingGroup => "AutoScalingGroup",
            Self::LaunchTemplate => "LaunchTemplate",
        }
    }
}

/// Equal keys are the same event: it is sent once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DedupeKey {
    pub event: EventKind,
    pub kind: ObjectKind,
    pub cluster: Option<String>,
    pub name: String,
    /// The revision the event is about (see the module documentation).
    pub revision: String,
}

/// One notification, serialised exactly as the JSON payload of DESIGN §11.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event: EventKind,
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    pub controller_id: String,
    /// The Git revision the pass worked from.
    pub revision: String,
    pub kind: ObjectKind,
    /// `None` for what belongs to no cluster (instances, the controller).
    pub cluster: Option<String>,
    pub name: String,
    /// The object's state after the pass (a service's sync state, an instance's
    /// decommission state).
    pub state: String,
    pub message: String,
    /// Never values from a task definition: those may be secrets.
    pub details: Map<String, Value>,
    #[serde(skip)]
    pub key: DedupeKey,
}

impl Event {
    /// `cluster/name`, or the name alone.
    pub fn object(&self) -> String {
        match &self.cluster {
            Some(c) => format!("{c}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_seconds(*t))
}

/// What one pass found and did, as far as notifications care.
#[derive(Debug, Clone)]
pub struct PassFacts<'a> {
    pub controller_id: &'a str,
    pub revision: &'a str,
    pub mode: Mode,
    pub now: SystemTime,
    /// The pass failed as a whole (nothing was observed).
    pub error: Option<&'a str>,
    /// Git could not be read; the pass ran on the last good revision.
    pub git_error: Option<&'a str>,
    pub services: Vec<ServiceFacts<'a>>,
    pub instances: Vec<InstanceFacts<'a>>,
    /// `decommission.cleanup` plans and what they did.
    pub cleanups: Vec<CleanupFacts<'a>>,
}

#[derive(Debug, Clone)]
pub struct ServiceFacts<'a> {
    pub key: &'a ServiceKey,
    pub state: SyncState,
    /// The service exists in ECS.
    pub exists: bool,
    pub drift: &'a [FieldDiff],
    /// Immutable fields that differ.
    pub replace: &'a [String],
    pub held: bool,
    /// `ecsync.io/sync: report`.
    pub report_only: bool,
    pub error: Option<&'a str>,
    /// What the pass changed, in order.
    pub done: &'a [ActionKind],
    pub rollout: Option<&'a Rollout>,
    pub migration: Option<MigrationFacts<'a>>,
    /// Its pre-deploy hooks, when the pass was to move it to a new revision.
    pub hook: Option<&'a crate::core::hooks::HookStatus>,
}

#[derive(Debug, Clone, Copy)]
pub struct MigrationFacts<'a> {
    pub decision: &'a Decision,
    /// The decision's changes were made.
    pub applied: bool,
}

#[derive(Debug, Clone)]
pub struct CleanupFacts<'a> {
    pub plan: &'a CleanupPlan,
    /// Steps carried out, by name (`delete_target_group`, ...).
    pub done: &'a [&'static str],
}

#[derive(Debug, Clone)]
pub struct InstanceFacts<'a> {
    pub plan: &'a InstancePlan,
    /// Steps carried out, by name (`stop`, `terminate`, ...).
    pub done: &'a [&'static str],
    pub error: Option<&'a str>,
}

/// What the notifier remembers between passes: what was sent, and which
/// services are rolling out a change ecsync made (for `service.synced`).
#[derive(Debug)]
pub struct Memory {
    sent: Sent,
    /// Service → the revision of the change it is rolling out.
    rolling: BTreeMap<ServiceKey, String>,
}

impl Default for Memory {
    fn default() -> Self {
        Self::new(DEDUPE_CAPACITY)
    }
}

impl Memory {
    pub fn new(capacity: usize) -> Self {
        Memory {
            sent: Sent::new(capacity),
            rolling: BTreeMap::new(),
        }
    }

    /// The events of this pass that were not sent before, in a stable order
    /// (the controller, then services by key, then instances); they count as
    /// sent from now on.
    pub fn observe(&mut self, pass: &PassFacts) -> Vec<Event> {
        let events = detect::detect(pass, &self.rolling);
        self.rolling = detect::still_rolling(pass, &self.rolling);
        events
            .into_iter()
            .filter(|e| self.sent.insert(e.key.clone()))
            .collect()
    }

    /// [`Memory::observe`] for a targeted pass, which looked at some services
    /// only: the rollouts of the others are still watched.
    pub fn observe_partial(&mut self, pass: &PassFacts) -> Vec<Event> {
        let seen: BTreeSet<&ServiceKey> = pass.services.iter().map(|s| s.key).collect();
        let unseen: Vec<(ServiceKey, String)> = self
            .rolling
            .iter()
            .filter(|(k, _)| !seen.contains(k))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        let events = self.observe(pass);
        self.rolling.extend(unseen);
        events
    }

    /// Dedupe keys currently remembered.
    pub fn remembered(&self) -> usize {
        self.sent.order.len()
    }
}

/// A set with a bounded size that forgets its oldest members.
#[derive(Debug)]
struct Sent {
    capacity: usize,
    keys: HashSet<DedupeKey>,
    order: VecDeque<DedupeKey>,
}

impl Sent {
    fn new(capacity: usize) -> Self {
        Sent {
            capacity: capacity.max(1),
            keys: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// `true` if `key` is new (and now remembered).
    fn insert(&mut self, key: DedupeKey) -> bool {
        if self.keys.contains(&key) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.keys.remove(&oldest);
        }
        self.keys.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

#[cfg(test)]
mod tests;
