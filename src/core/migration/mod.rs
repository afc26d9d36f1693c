//! Moving a service's traffic off a legacy EC2 fleet (DESIGN §3 `migration`,
//! §4 state in tags, §5 safety): the pure decision.
//!
//! The shell observes the listener's weights, the service's tags, its rollout
//! and both target groups' health, passes them in with `now`, and carries out
//! the one [`Decision`] this module returns. Nothing here remembers anything:
//! progress lives in the service's tags, so a restart at any point decides the
//! same thing from the same facts.
//!
//! Stages: stage 0 is "before the first step" (ECS carries 0%); stage `k`
//! (1-based) means `steps[k-1]` percent on ECS. The `ecsync.io/migration-step`
//! tag holds the stage number, so a service that never started has no tag and
//! reads as stage 0.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};

mod alarms;
pub mod forward;
mod gates;

pub use alarms::{AlarmReadings, AlarmState};
use gates::{gates, summary};

use crate::core::model::Migration;
use crate::core::plan::ActionKind;
use crate::core::state::Rollout;
use crate::core::tags;

/// Rollbacks (each step moved back counts) after which the migration stops
/// advancing until the manifest changes (DESIGN §5). Rollbacks themselves are
/// never limited: moving traffic back to the side that works is always safe.
pub const MAX_ROLLBACKS: u32 = 3;

pub const GATE_DEPLOYMENT: &str = "deployment";
pub const GATE_ECS_HEALTHY: &str = "ecs-healthy";
pub const GATE_LEGACY_HEALTHY: &str = "legacy-healthy";
pub const GATE_STEP_INTERVAL: &str = "step-interval";
/// `migration.gates.alarms`: CloudWatch alarms (only when declared).
pub const GATE_ALARMS: &str = "alarms";

/// How a gate stands. `Fail` is a reason to move traffic back; `Wait` only
/// stops traffic from moving forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GateState {
    Pass,
    Wait,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gate {
    pub name: &'static str,
    pub state: GateState,
    pub detail: String,
}

impl Gate {
    pub fn passed(&self) -> bool {
        self.state == GateState::Pass
    }
}

/// Everything the decision depends on, observed live this pass.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub migration: &'a Migration,
    pub step_interval: Duration,
    /// The ECS service's tags as observed.
    pub tags: &'a BTreeMap<String, String>,
    /// [`fingerprint`] of the desired migration and task definition.
    pub fingerprint: &'a str,
    /// Percent of traffic the managed forward action sends to ECS now.
    pub percent: u8,
    pub rollout: &'a Rollout,
    /// This pass started a deployment (create or update), so `rollout` is stale.
    pub deploying: bool,
    pub ecs_healthy: u32,
    pub legacy_healthy: u32,
    pub legacy_registered: u32,
    /// CloudWatch alarm states read this pass (for every migration at once).
    pub alarms: &'a AlarmReadings,
    pub now: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// Nothing to change this pass.
    Hold,
    /// Move to the next step.
    Advance,
    /// An ECS gate failed: move to the previous step.
    Rollback,
    /// The listener's weights were changed outside ecsync: put them back.
    Correct,
    /// The listener already shows the next step (a pass stopped between the
    /// weight change and the tag write): record it, its clock starting now.
    Adopt,
    /// 100% on ECS, held for a step interval.
    Complete,
}

impl Kind {
    /// What carrying the decision out counts as.
    pub fn action(self) -> ActionKind {
        match self {
            Kind::Hold | Kind::Complete => ActionKind::HoldTraffic,
            Kind::Advance => ActionKind::AdvanceTraffic,
            Kind::Rollback => ActionKind::RollbackTraffic,
            Kind::Correct => ActionKind::CorrectTraffic,
            Kind::Adopt => ActionKind::RecordMigrationStep,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub kind: Kind,
    /// The stage recorded in the tags when the pass began.
    pub stage_before: usize,
    /// The stage after this pass (0 = before the first step).
    pub stage: usize,
    /// Percent on ECS after this pass.
    pub percent: u8,
    /// The listener's weights must change to this ECS percent first.
    pub set_percent: Option<u8>,
    /// Tags to write on the ECS service after the weights (empty: none).
    pub tags: BTreeMap<String, String>,
    pub gates: Vec<Gate>,
    pub rollbacks: u32,
    pub degraded: bool,
    /// When the migration counts as complete (100% held one interval).
    #[serde(skip)]
    pub complete_since: Option<SystemTime>,
    /// When the step-interval gate opens for the stage this decision leaves
    /// (the next step, or completion at 100%): what an operator waits for.
    /// `None` once complete, and before the first step (nothing to wait for).
    #[serde(skip)]
    pub next_step_at: Option<SystemTime>,
    pub reason: String,
}

impl Decision {
    pub fn changes_anything(&self) -> bool {
        self.set_percent.is_some() || !self.tags.is_empty()
    }
    /// `Index into steps` as `/status` reports it.
    pub fn step_index(&self) -> Option<usize> {
        self.stage.checked_sub(1)
    }
}

/// Short hash of the migration spec and the task definition: a change to
/// either (e.g. a fixed image) resets the rollback count and resumes.
pub fn fingerprint(m: &Migration, task_definition_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(m).unwrap_or_default());
    h.update(b"\0");
    h.update(task_definition_hash.as_bytes());
    h.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// ECS percent at `stage`.
pub fn stage_percent(steps: &[u8], stage: usize) -> u8 {
    match stage {
        0 => 0,
        k => steps.get(k - 1).copied().unwrap_or(100),
    }
}

/// The recorded stage (clamped to the steps there are) and its clock.
pub fn recorded(steps: &[u8], tags: &BTreeMap<String, String>) -> (usize, Option<SystemTime>) {
    let stage = tags::migration_step(tags).unwrap_or(0).min(steps.len());
    (stage, tags::migration_step_since(tags))
}

/// When the migration recorded in `tags` completed: at 100% and held for one
/// `step_interval` since that step's clock. `None` while it is not at 100%.
/// Decommissioning (issue 5) compares this with its own `now`.
pub fn completed_since(
    migration: &Migration,
    step_interval: Duration,
    tags: &BTreeMap<String, String>,
) -> Option<SystemTime> {
    completed_since_steps(&migration.steps, step_interval, tags)
}

/// [`completed_since`] from the steps alone; the one reading of the step tags
/// that decommissioning relies on.
pub fn completed_since_steps(
    steps: &[u8],
    step_interval: Duration,
    tags: &BTreeMap<String, String>,
) -> Option<SystemTime> {
    // Strict, unlike `recorded`: a step count beyond the last step is a tag
    // someone wrote by hand, and it must not switch anything off.
    let exact = tags::migration_step(tags)?;
    let since = tags::migration_step_since(tags);
    (exact == steps.len() && steps.last() == Some(&100))
        .then_some(since?)
        .map(|s| s + step_interval)
}

fn describe_stage(steps: &[u8], stage: usize) -> String {
    match stage {
        0 => "0% (before the first step)".to_string(),
        k => format!("step {k}/{} ({}%)", steps.len(), stage_percent(steps, k)),
    }
}

/// Make `d` a rollback to stage `to`: the weights there (unless already), its
/// step recorded with the clock starting now, and one more rollback counted.
fn roll_back(d: &mut Decision, f: &Facts, to: usize, rollbacks: u32) {
    let pct = stage_percent(&f.migration.steps, to);
    d.kind = Kind::Rollback;
    d.stage = to;
    d.percent = pct;
    d.set_percent = (f.percent != pct).then_some(pct);
    d.rollbacks = rollbacks.saturating_add(1);
    d.tags = tags::migration_step_tags(to, f.now);
    d.tags.insert(
        tags::MIGRATION_ROLLBACKS.to_string(),
        tags::migration_rollbacks_value(d.rollbacks, f.fingerprint),
    );
    d.degraded = true;
}

/// The alarm gate has not passed: completion (and with it decommissioning)
/// waits, though other waiting gates never held a migration at 100%.
fn alarms_holding(gates: &[Gate]) -> bool {
    gates
        .iter()
        .any(|g| g.name == GATE_ALARMS && g.state != GateState::Pass)
}

/// The one thing this pass should do about the migration.
pub fn decide(f: &Facts) -> Decision {
    let mut d = decide_step(f);
    d.next_step_at = next_step_at(&d, f);
    let missing = f.alarms.missing(f.migration.alarms());
    if !missing.is_empty() {
        // A gate that cannot be evaluated is a broken manifest, not a pass.
        d.degraded = true;
        if !d.reason.contains("configuration error") {
            d.reason = format!(
                "{}; configuration error: no CloudWatch alarm named {}",
                d.reason,
                missing.join(", ")
            );
        }
    }
    d
}

/// [`Decision::next_step_at`]: from the clock this decision writes, else the
/// recorded one.
fn next_step_at(d: &Decision, f: &Facts) -> Option<SystemTime> {
    if d.kind == Kind::Complete {
        return None;
    }
    let since = if d.tags.contains_key(tags::MIGRATION_STEP_SINCE) {
        Some(f.now)
    } else {
        recorded(&f.migration.steps, f.tags).1
    };
    since.map(|s| s + f.step_interval)
}

fn decide_step(f: &Facts) -> Decision {
    let steps = &f.migration.steps;
    let last = steps.len();
    let (stage, since) = recorded(steps, f.tags);
    let rollbacks = tags::migration_rollbacks(f.tags, f.fingerprint);
    let expected = stage_percent(steps, stage);
    let gates = gates(f, stage, since);
    let ecs_failing = gates.iter().any(|g| g.state == GateState::Fail);
    let mut d = Decision {
        kind: Kind::Hold,
        stage_before: stage,
        stage,
        percent: f.percent,
        set_percent: None,
        tags: BTreeMap::new(),
        gates,
        rollbacks,
        degraded: false,
        complete_since: None,
        next_step_at: None,
        reason: String::new(),
    };

    // An ECS gate failed while ECS carries traffic: one step back, whatever
    // the listener shows (that also finishes a rollback whose tag write was
    // lost). Never limited by the rollback count: this is the safe direction —
    // unless the legacy side has nothing healthy left to take the traffic
    // (e.g. it was decommissioned after completion): then moving traffic
    // there would only make things worse, so it holds, degraded.
    if ecs_failing && stage > 0 && f.legacy_healthy == 0 {
        d.degraded = true;
        d.reason = format!(
            "holding {}: the ECS side is failing but the legacy target group has no healthy targets to roll back to: {}",
            describe_stage(steps, stage),
            summary(&d.gates, |g| g.state == GateState::Fail)
        );
        return d;
    }
    if ecs_failing && stage > 0 {
        let to = stage - 1;
        roll_back(&mut d, f, to, rollbacks);
        d.reason = format!(
            "rolling back from {} to {}: {}",
            describe_stage(steps, stage),
            describe_stage(steps, to),
            summary(&d.gates, |g| g.state == GateState::Fail)
        );
        return d;
    }

    if f.percent != expected {
        if stage < last && f.percent == stage_percent(steps, stage + 1) {
            d.kind = Kind::Adopt;
            d.stage = stage + 1;
            d.tags = tags::migration_step_tags(stage + 1, f.now);
            d.reason = format!(
                "the listener already sends {}% to ECS, the next step: recording {} with its clock starting now",
                f.percent,
                describe_stage(steps, stage + 1)
            );
        } else if f.percent > expected {
            // More on ECS than recorded: back to the recorded step, the safer side.
            d.kind = Kind::Correct;
            d.percent = expected;
            d.set_percent = Some(expected);
            d.reason = format!(
                "listener weights send {}% to ECS but the recorded state is {}: changed outside ecsync",
                f.percent,
                describe_stage(steps, stage)
            );
        } else {
            // Less on ECS than recorded: an operator's emergency shift back, or a
            // rollback whose tag write was lost. Never forward again from here:
            // record the step the listener is at (or the nearest below it), as a
            // rollback, its clock starting now.
            let to = (0..stage)
                .rev()
                .find(|k| stage_percent(steps, *k) <= f.percent)
                .unwrap_or(0);
            roll_back(&mut d, f, to, rollbacks);
            d.reason = format!(
                "listener weights send {}% to ECS, less than the recorded {}: moved back outside ecsync (or a rollback whose record was lost); recording {}, not moving forward",
                f.percent,
                describe_stage(steps, stage),
                describe_stage(steps, to)
            );
            return d;
        }
        d.degraded = ecs_failing && rollbacks > 0;
        return d;
    }

    let waiting = |gates: &[Gate]| {
        summary(gates, |g| {
            g.state != GateState::Pass && g.name != GATE_STEP_INTERVAL
        })
    };
    if stage == last {
        match since {
            None => {
                d.kind = Kind::Adopt;
                d.tags = tags::migration_step_tags(stage, f.now);
                d.reason = "at 100% without a recorded clock: it starts now".into();
            }
            Some(_) if alarms_holding(&d.gates) => {
                d.reason = format!("holding 100%: {}", waiting(&d.gates));
            }
            Some(s) if f.now >= s + f.step_interval => {
                d.kind = Kind::Complete;
                d.complete_since = Some(s + f.step_interval);
                d.reason = format!(
                    "complete: 100% on ECS since {}, held until {}",
                    tags::format_time(s),
                    tags::format_time(s + f.step_interval)
                );
            }
            Some(s) => {
                d.reason = format!(
                    "holding 100% until {}",
                    tags::format_time(s + f.step_interval)
                );
            }
        }
        return d;
    }

    let blocked = d
        .gates
        .iter()
        .any(|g| g.state != GateState::Pass && g.name != GATE_STEP_INTERVAL);
    if blocked {
        d.degraded = rollbacks > 0 && ecs_failing;
        d.reason = format!(
            "holding {}: {}",
            describe_stage(steps, stage),
            waiting(&d.gates)
        );
        return d;
    }
    if rollbacks >= MAX_ROLLBACKS {
        d.degraded = true;
        d.reason = format!(
            "holding {}: rolled back {rollbacks} times; change the manifest to resume",
            describe_stage(steps, stage)
        );
        return d;
    }
    match since {
        // Stage 0 that was never left: nothing to hold, ECS is ready.
        None if stage == 0 => {}
        None => {
            d.kind = Kind::Adopt;
            d.tags = tags::migration_step_tags(stage, f.now);
            d.reason = format!(
                "{} has no recorded clock: it starts now",
                describe_stage(steps, stage)
            );
            return d;
        }
        Some(s) if f.now < s + f.step_interval => {
            d.reason = format!(
                "holding {} until {}",
                describe_stage(steps, stage),
                tags::format_time(s + f.step_interval)
            );
            return d;
        }
        Some(_) => {}
    }
    let to = stage + 1;
    let pct = stage_percent(steps, to);
    d.kind = Kind::Advance;
    d.stage = to;
    d.percent = pct;
    d.set_percent = Some(pct);
    d.tags = tags::migration_step_tags(to, f.now);
    d.reason = format!(
        "advancing from {} to {}: {}",
        describe_stage(steps, stage),
        describe_stage(steps, to),
        summary(&d.gates, |_| true)
    );
    d
}

#[cfg(test)]
mod tests;
