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
//!    `pending@t` → waits for the drain (draining targets, up to the group's
//!    deregistration delay after `t`) and for `t + after`, then is stopped or
//!    terminated, at most `max_per_pass` per pass, oldest clock first;
//!    `stopped@t` → done (terminated if the manifest now says `terminate`).
//! 5. An instance carrying the tag that is no longer a candidate is released:
//!    re-registered where it was drained from (if it still runs) and untagged.
//!    A stopped one stays stopped: starting it is the user's call (README).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::model::ServiceKey;
use crate::tags;

/// Grace period for instances whose owning service left Git (prune): no manifest
/// names an `after` for them any more, so a conservative fixed one applies.
pub const PRUNE_GRACE: Duration = Duration::from_secs(3600);
/// AWS's default `deregistration_delay.timeout_seconds`, used when a group's
/// attribute could not be read: waiting too long is safe, too short is not.
pub const DEFAULT_DEREGISTRATION_DELAY: Duration = Duration::from_secs(300);
/// The tag Auto Scaling puts on the instances of a group.
pub const ASG_TAG: &str = "aws:autoscaling:groupName";
/// AWS caps tag values at 256 characters.
const MAX_TAG_VALUE: usize = 256;

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

/// The phase recorded in the `ecsync.io/decommission` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Pending,
    Stopped,
    Terminating,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Stopped => "stopped",
            Self::Terminating => "terminating",
        }
    }
}

/// `<phase>@<RFC 3339>`: the value of the `ecsync.io/decommission` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub phase: Phase,
    pub since: SystemTime,
}

impl Clock {
    pub fn parse(value: &str) -> Option<Clock> {
        let (phase, at) = value.split_once('@')?;
        let phase = match phase {
            "pending" => Phase::Pending,
            "stopped" => Phase::Stopped,
            "terminating" => Phase::Terminating,
            _ => return None,
        };
        let since = humantime::parse_rfc3339_weak(at).ok()?;
        Some(Clock { phase, since })
    }
    /// Whole seconds: the tag is read back with the same precision on every pass.
    pub fn format(&self) -> String {
        format!(
            "{}@{}",
            self.phase.as_str(),
            humantime::format_rfc3339_seconds(self.since)
        )
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
    let completed = crate::migration::completed_since_steps(steps, step_interval, service_tags)?;
    (completed <= now).then_some(completed)
}

/// A manifest's migration, as far as decommissioning cares.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationInput {
    pub service: ServiceKey,
    /// `from.instances.tags`; an empty selector matches nothing.
    pub selector: BTreeMap<String, String>,
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
    fn selects(&self, instance_tags: &BTreeMap<String, String>) -> bool {
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

/// One registration of an instance in a target group, as DescribeTargetHealth
/// reports it (`state` is `healthy`, `unused`, `draining`, ...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Registration {
    pub target_group_arn: String,
    pub port: Option<i32>,
    pub state: String,
}

impl Registration {
    fn draining(&self) -> bool {
        self.state == "draining"
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
    /// EC2 state name: `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
    pub tags: BTreeMap<String, String>,
    /// `None`: DescribeInstanceAttribute was not answered; treated as protected.
    pub protection: Option<Protection>,
    pub registrations: Vec<Registration>,
}

impl InstanceInput {
    fn gone(&self) -> bool {
        self.state == "shutting-down" || self.state == "terminated"
    }
    fn stopped(&self) -> bool {
        self.state == "stopped" || self.state == "stopping"
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
}

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

fn opt_rfc3339<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// `<target group name>:<port>` pairs, comma-separated, in the
/// [`tags::DECOMMISSION_LEFT`] tag: where to register the instance again if it
/// stops being a candidate. Names, not ARNs: five ARNs would not fit in a tag.
pub fn encode_left(entries: &BTreeSet<(String, Option<i32>)>) -> String {
    entries
        .iter()
        .map(|(name, port)| match port {
            Some(p) => format!("{name}:{p}"),
            None => name.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn decode_left(value: &str) -> BTreeSet<(String, Option<i32>)> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|e| match e.rsplit_once(':') {
            Some((name, port)) => match port.parse() {
                Ok(p) => (name.to_string(), Some(p)),
                Err(_) => (e.to_string(), None),
            },
            None => (e.to_string(), None),
        })
        .collect()
}

fn parse_service(value: &str) -> Option<ServiceKey> {
    let (cluster, name) = value.split_once('/')?;
    (!cluster.is_empty() && !name.is_empty()).then(|| ServiceKey {
        cluster: cluster.to_string(),
        name: name.to_string(),
    })
}

/// Candidacy, before any skip rule.
struct Candidate {
    why: Why,
    action: DecommissionAction,
    after: Duration,
    /// Target groups an instance of this candidate may be deregistered from.
    managed_legacy: BTreeSet<String>,
    report_only: bool,
}

enum Candidacy {
    Candidate(Candidate),
    /// Not a candidate; the text says why (for the status of tagged instances).
    Not(String),
}

fn candidacy(fleet: &FleetInput, inst: &InstanceInput) -> Candidacy {
    let selecting: Vec<&MigrationInput> = fleet
        .migrations
        .iter()
        .filter(|m| m.selects(&inst.tags))
        .collect();
    if !selecting.is_empty() {
        let mut chosen: Option<Candidate> = None;
        for m in &selecting {
            let Some((action, after)) = m.decommission else {
                return Candidacy::Not(format!(
                    "selected by the migration of {} which has no decommission block",
                    m.service
                ));
            };
            let Some(completed) = m.completed_since else {
                return Candidacy::Not(format!("the migration of {} is not complete", m.service));
            };
            // Several complete migrations select it: the most cautious settings win.
            match &mut chosen {
                None => {
                    chosen = Some(Candidate {
                        why: Why::Migration {
                            service: m.service.to_string(),
                            completed,
                        },
                        action,
                        after,
                        managed_legacy: m.legacy_target_group.iter().cloned().collect(),
                        report_only: m.report_only,
                    })
                }
                Some(c) => {
                    c.action = c.action.min(action);
                    c.after = c.after.max(after);
                    c.managed_legacy
                        .extend(m.legacy_target_group.iter().cloned());
                    c.report_only |= m.report_only;
                }
            }
        }
        return match chosen {
            Some(c) => Candidacy::Candidate(c),
            None => Candidacy::Not("no complete migration selects it".into()),
        };
    }
    let owned = inst.tags.get(tags::MANAGED_BY) == Some(&fleet.controller_id);
    let Some(service) = inst
        .tags
        .get(tags::INSTANCE_SERVICE)
        .and_then(|s| parse_service(s))
    else {
        return Candidacy::Not("no migration selects it".into());
    };
    if !owned {
        return Candidacy::Not("not owned by this controller".into());
    }
    if fleet.declared.contains(&service) || fleet.held.contains(&service) {
        return Candidacy::Not(format!("service {service} is declared in Git"));
    }
    // Same guard as service pruning: an empty or partly unreadable set is never an
    // instruction to remove anything.
    if !fleet.prune || fleet.declared.is_empty() || fleet.set_incomplete {
        return Candidacy::Not(format!(
            "service {service} left Git, but pruning is off or the manifest set is incomplete"
        ));
    }
    Candidacy::Candidate(Candidate {
        why: Why::Prune {
            service: service.to_string(),
        },
        action: DecommissionAction::Stop,
        after: PRUNE_GRACE,
        managed_legacy: BTreeSet::new(),
        report_only: false,
    })
}

fn skip_reason(
    fleet: &FleetInput,
    inst: &InstanceInput,
    managed: &dyn Fn(&str) -> bool,
) -> Option<SkipReason> {
    if inst.tags.get(tags::PROTECT).map(String::as_str) == Some("true") {
        return Some(SkipReason::Protected);
    }
    if let Some(group) = inst.tags.get(ASG_TAG) {
        return Some(SkipReason::AutoScalingGroup {
            group: group.clone(),
        });
    }
    match inst.protection {
        None => return Some(SkipReason::ProtectionUnknown),
        Some(p) if p.termination => return Some(SkipReason::TerminationProtection),
        Some(p) if p.stop => return Some(SkipReason::StopProtection),
        Some(_) => {}
    }
    if let Some(r) = inst
        .registrations
        .iter()
        .find(|r| !managed(&r.target_group_arn))
    {
        let target_group = fleet
            .target_groups
            .get(&r.target_group_arn)
            .map_or_else(|| r.target_group_arn.clone(), |t| t.name.clone());
        return Some(SkipReason::UnmanagedTargetGroup { target_group });
    }
    None
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
            c.managed_legacy.contains(arn)
                || fleet.target_groups.get(arn).is_some_and(|t| t.managed)
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
                let mut t = BTreeMap::from([
                    (
                        tags::DECOMMISSION.to_string(),
                        Clock {
                            phase: Phase::Pending,
                            since: now,
                        }
                        .format(),
                    ),
                    (tags::DECOMMISSION_FOR.to_string(), c.why.service().into()),
                ]);
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
        let drained_at = inst
            .registrations
            .iter()
            .map(|r| {
                let delay = fleet
                    .target_groups
                    .get(&r.target_group_arn)
                    .and_then(|t| t.deregistration_delay)
                    .unwrap_or(DEFAULT_DEREGISTRATION_DELAY);
                // A target deregistered on this pass drains from now on.
                let from = if r.draining() { pending_since } else { now };
                from.checked_add(delay).unwrap_or(from)
            })
            .max();
        let grace_over = pending_since.checked_add(c.after).unwrap_or(pending_since);
        let acts_at = drained_at.map_or(grace_over, |d| d.max(grace_over));
        plan.acts_at = Some(acts_at);
        // Drained once nothing is registered any more, or every remaining target
        // has been draining for its group's whole deregistration delay.
        let drained = active.is_empty() && drained_at.is_none_or(|d| now >= d);
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

/// A tagged instance that is no longer a candidate: give it back as it was.
fn release(
    fleet: &FleetInput,
    inst: &InstanceInput,
    clock: Option<Clock>,
    why_not: String,
    plan: &mut InstancePlan,
) {
    let service = inst
        .tags
        .get(tags::DECOMMISSION_FOR)
        .and_then(|s| parse_service(s));
    let held = match &service {
        Some(s) => fleet.held.contains(s),
        // Unknown owner: any broken manifest might be the one that decides.
        None => fleet.set_incomplete,
    };
    if inst.tags.get(tags::PROTECT).map(String::as_str) == Some("true") {
        plan.state = OrphanState::Skipped;
        plan.skipped = Some(SkipReason::Protected);
        plan.message = format!("{why_not}; protected, so its tags are left as they are");
        return;
    }
    if held {
        plan.state = OrphanState::Held;
        plan.message = format!("{why_not}; held while its manifest is broken");
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
        keys: [
            tags::DECOMMISSION,
            tags::DECOMMISSION_FOR,
            tags::DECOMMISSION_LEFT,
        ]
        .iter()
        .filter(|k| inst.tags.contains_key(**k))
        .map(|k| k.to_string())
        .collect(),
    });
    plan.message = message;
}

#[cfg(test)]
mod tests;
