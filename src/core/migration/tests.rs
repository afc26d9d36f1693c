use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::core::model::{InstanceSelector, ListenerRef, Migration, MigrationSource};
use crate::core::state::RolloutState;

const FP: &str = "fp1";
const MIN: Duration = Duration::from_secs(60);

fn migration() -> Migration {
    Migration {
        listener: ListenerRef::Arn("arn:aws:elasticloadbalancing:l".into()),
        from: MigrationSource {
            target_group: "web-ec2".into(),
            instances: Some(InstanceSelector {
                tags: BTreeMap::from([("app".into(), "web".into())]),
            }),
            auto_scaling_group: None,
        },
        steps: vec![10, 50, 100],
        step_interval: "1m".into(),
        gates: None,
        decommission: None,
    }
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn stable() -> Rollout {
    Rollout {
        rollout_state: Some(RolloutState::Completed),
        rollout_reason: None,
        deployments: 1,
        desired: 2,
        running: 2,
        pending: 0,
    }
}

/// Tags recording `stage` since `since` (seconds after `t(0)`).
fn at(stage: usize, since: Option<u64>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::from([(tags::MIGRATION_STEP.to_string(), stage.to_string())]);
    if let Some(s) = since {
        m.insert(tags::MIGRATION_STEP_SINCE.into(), tags::format_time(t(s)));
    }
    m
}

struct Case {
    tags: BTreeMap<String, String>,
    percent: u8,
    rollout: Rollout,
    deploying: bool,
    ecs_healthy: u32,
    legacy_healthy: u32,
    /// Declared alarms and what CloudWatch said about them.
    alarms: Vec<String>,
    readings: AlarmReadings,
    now: u64,
}

impl Case {
    fn new(tags: BTreeMap<String, String>, percent: u8) -> Case {
        Case {
            tags,
            percent,
            rollout: stable(),
            deploying: false,
            ecs_healthy: 2,
            legacy_healthy: 3,
            alarms: Vec::new(),
            readings: AlarmReadings::default(),
            now: 1000,
        }
    }
    fn decide(&self) -> Decision {
        let mut m = migration();
        if !self.alarms.is_empty() {
            m.gates = Some(crate::core::model::MigrationGates {
                alarms: self.alarms.clone(),
            });
        }
        decide(&Facts {
            migration: &m,
            step_interval: MIN,
            tags: &self.tags,
            fingerprint: FP,
            percent: self.percent,
            rollout: &self.rollout,
            deploying: self.deploying,
            ecs_healthy: self.ecs_healthy,
            legacy_healthy: self.legacy_healthy,
            legacy_registered: 3,
            alarms: &self.readings,
            now: t(self.now),
        })
    }
}

fn gate<'a>(d: &'a Decision, name: &str) -> &'a Gate {
    d.gates.iter().find(|g| g.name == name).expect("gate")
}

#[test]
fn first_step_is_taken_as_soon_as_ecs_is_ready() {
    let d = Case::new(BTreeMap::new(), 0).decide();
    assert_eq!(d.kind, Kind::Advance, "{}", d.reason);
    assert_eq!((d.stage, d.set_percent, d.percent), (1, Some(10), 10));
    assert_eq!(
        d.tags.get(tags::MIGRATION_STEP).map(String::as_str),
        Some("1")
    );
    assert_eq!(
        d.tags.get(tags::MIGRATION_STEP_SINCE),
        Some(&tags::format_time(t(1000)))
    );
    assert_eq!(d.step_index(), Some(0));
    assert!(d.gates.iter().all(Gate::passed), "{:?}", d.gates);
}

#[test]
fn each_step_is_held_for_the_interval_then_advances_by_one() {
    // (stage, percent, seconds since the step's clock, expected kind, next stage)
    let table = [
        (1, 10, 30, Kind::Hold, 1),
        (1, 10, 60, Kind::Advance, 2),
        (2, 50, 59, Kind::Hold, 2),
        (2, 50, 61, Kind::Advance, 3),
        (3, 100, 10, Kind::Hold, 3),
        (3, 100, 60, Kind::Complete, 3),
    ];
    for (stage, pct, held, kind, next) in table {
        let mut c = Case::new(at(stage, Some(0)), pct);
        c.now = held;
        let d = c.decide();
        assert_eq!(
            (d.kind, d.stage),
            (kind, next),
            "stage {stage} held {held}s: {}",
            d.reason
        );
        if kind == Kind::Advance {
            // Never a skipped step: exactly the next one.
            assert_eq!(
                d.set_percent,
                Some(stage_percent(&[10, 50, 100], stage + 1))
            );
        } else {
            assert_eq!(d.set_percent, None);
            assert!(d.tags.is_empty());
        }
    }
}

#[test]
fn complete_reports_when_and_the_helper_agrees() {
    let mut c = Case::new(at(3, Some(0)), 100);
    c.now = 500;
    let d = c.decide();
    assert_eq!(d.kind, Kind::Complete);
    assert_eq!(d.complete_since, Some(t(60)));
    assert_eq!(completed_since(&migration(), MIN, &c.tags), Some(t(60)));
    assert_eq!(completed_since(&migration(), MIN, &at(2, Some(0))), None);
    assert_eq!(completed_since(&migration(), MIN, &at(3, None)), None);
}

#[test]
fn next_step_at_counts_from_the_clock_the_decision_leaves() {
    // Held at a step: its recorded clock plus the interval.
    let mut c = Case::new(at(1, Some(100)), 10);
    c.now = 130;
    let d = c.decide();
    assert_eq!(d.kind, Kind::Hold, "{}", d.reason);
    assert_eq!(d.next_step_at, Some(t(160)));
    // A step taken now starts a new clock.
    c.now = 170;
    let d = c.decide();
    assert_eq!(d.kind, Kind::Advance, "{}", d.reason);
    assert_eq!(d.next_step_at, Some(t(230)));
    // Before the first step nothing holds it back; once complete nothing follows.
    assert_eq!(
        Case::new(BTreeMap::new(), 0).decide().next_step_at,
        Some(t(1060))
    );
    let mut done = Case::new(at(3, Some(0)), 100);
    done.now = 500;
    assert_eq!(done.decide().next_step_at, None);
    let mut blocked = Case::new(BTreeMap::new(), 0);
    blocked.ecs_healthy = 0;
    assert_eq!(blocked.decide().next_step_at, None);
}

#[test]
fn restart_at_each_step_continues_from_the_recorded_step() {
    // A fresh process sees only tags and weights: for every step the decision
    // is the same one the old process would have made, and never a jump.
    for stage in 0..=3usize {
        let pct = stage_percent(&[10, 50, 100], stage);
        let since = (stage > 0).then_some(0);
        let mut c = Case::new(at(stage, since), pct);
        c.now = 10;
        let early = c.decide();
        c.now = 100;
        let late = c.decide();
        if stage == 0 {
            assert_eq!(early.kind, Kind::Advance);
            assert_eq!(early.stage, 1);
        } else {
            assert_eq!(early.kind, Kind::Hold, "stage {stage}: {}", early.reason);
        }
        match stage {
            3 => assert_eq!(late.kind, Kind::Complete),
            _ => {
                assert_eq!(late.kind, Kind::Advance);
                assert_eq!(late.stage, stage + 1, "never skip a step");
            }
        }
    }
}

#[test]
fn weights_of_the_next_step_without_its_tag_are_adopted_not_redone() {
    // The weights were written, the process died before the tags.
    let d = Case::new(at(1, Some(0)), 50).decide();
    assert_eq!(d.kind, Kind::Adopt, "{}", d.reason);
    assert_eq!((d.stage, d.set_percent), (2, None));
    assert_eq!(
        d.tags.get(tags::MIGRATION_STEP).map(String::as_str),
        Some("2")
    );
    assert_eq!(
        d.tags.get(tags::MIGRATION_STEP_SINCE),
        Some(&tags::format_time(t(1000)))
    );
    // Also before the first tag was ever written.
    let d = Case::new(BTreeMap::new(), 10).decide();
    assert_eq!((d.kind, d.stage), (Kind::Adopt, 1));
}

#[test]
fn weights_moved_back_outside_ecsync_are_recorded_never_pushed_forward() {
    // (recorded stage, live percent) → (stage recorded now, weights to set)
    for (stage, live, to, set) in [
        (2, 10, 1, None),
        (3, 0, 0, None),
        (2, 0, 0, None),
        (3, 30, 1, Some(10)),
    ] {
        let d = Case::new(at(stage, Some(0)), live).decide();
        assert_eq!(
            d.kind,
            Kind::Rollback,
            "stage {stage} live {live}: {}",
            d.reason
        );
        assert_eq!((d.stage, d.set_percent), (to, set), "{}", d.reason);
        assert!(d.set_percent.is_none_or(|p| p <= live), "never forward");
        assert_eq!(d.rollbacks, 1, "counted");
        assert!(d.degraded);
        assert_eq!(
            d.tags.get(tags::MIGRATION_STEP).map(String::as_str),
            Some(to.to_string().as_str())
        );
        assert!(
            d.reason.contains("moved back outside ecsync"),
            "{}",
            d.reason
        );
    }
}

#[test]
fn hand_edited_weights_are_corrected_to_the_recorded_step() {
    for (stage, live) in [(1, 30), (1, 100), (0, 50), (2, 60)] {
        let d = Case::new(at(stage, Some(0)), live).decide();
        assert_eq!(
            d.kind,
            Kind::Correct,
            "stage {stage} live {live}: {}",
            d.reason
        );
        let want = stage_percent(&[10, 50, 100], stage);
        assert_eq!(d.set_percent, Some(want));
        assert_eq!(d.stage, stage);
        assert!(d.tags.is_empty(), "a correction is not a new step");
        assert!(d.reason.contains("changed outside ecsync"));
    }
}

#[test]
fn a_failed_ecs_gate_rolls_back_one_step_and_counts() {
    let mut c = Case::new(at(2, Some(0)), 50);
    c.ecs_healthy = 1;
    let d = c.decide();
    assert_eq!(d.kind, Kind::Rollback);
    assert_eq!((d.stage, d.set_percent, d.rollbacks), (1, Some(10), 1));
    assert!(d.degraded);
    assert_eq!(
        d.tags.get(tags::MIGRATION_ROLLBACKS).map(String::as_str),
        Some("1@fp1")
    );
    assert_eq!(
        d.tags.get(tags::MIGRATION_STEP).map(String::as_str),
        Some("1")
    );
    assert!(d.reason.contains("ecs-healthy"), "{}", d.reason);
    assert!(!gate(&d, GATE_ECS_HEALTHY).passed());

    // From the first step back to 0%.
    let mut c = Case::new(at(1, Some(0)), 10);
    c.rollout.rollout_state = Some(RolloutState::Failed);
    c.rollout.rollout_reason = Some("circuit breaker".into());
    let d = c.decide();
    assert_eq!(
        (d.kind, d.stage, d.set_percent),
        (Kind::Rollback, 0, Some(0))
    );
    assert!(d.reason.contains("circuit breaker"), "{}", d.reason);
}

#[test]
fn a_rollback_whose_tags_were_lost_is_recorded_without_moving_again() {
    let mut c = Case::new(at(2, Some(0)), 10);
    c.ecs_healthy = 0;
    let d = c.decide();
    assert_eq!((d.kind, d.stage, d.set_percent), (Kind::Rollback, 1, None));
    assert_eq!(
        d.tags.get(tags::MIGRATION_STEP).map(String::as_str),
        Some("1")
    );
}

#[test]
fn waiting_gates_hold_without_rolling_back() {
    let mut deploying = Case::new(at(1, Some(0)), 10);
    deploying.deploying = true;
    let mut in_progress = Case::new(at(1, Some(0)), 10);
    in_progress.rollout.rollout_state = Some(RolloutState::InProgress);
    let mut legacy_down = Case::new(at(1, Some(0)), 10);
    legacy_down.legacy_healthy = 0;
    let mut no_state = Case::new(at(1, Some(0)), 10);
    no_state.rollout.rollout_state = None;
    no_state.rollout.running = 1;
    for (name, c, gate_name) in [
        ("deploying", deploying, GATE_DEPLOYMENT),
        ("in progress", in_progress, GATE_DEPLOYMENT),
        ("legacy down", legacy_down, GATE_LEGACY_HEALTHY),
        ("running < desired", no_state, GATE_DEPLOYMENT),
    ] {
        let d = c.decide();
        assert_eq!(d.kind, Kind::Hold, "{name}: {}", d.reason);
        assert!(!d.changes_anything(), "{name}");
        assert_eq!(gate(&d, gate_name).state, GateState::Wait, "{name}");
        assert!(d.reason.contains(gate_name), "{name}: {}", d.reason);
        assert!(!d.degraded, "{name}");
    }
}

#[test]
fn rollout_without_state_passes_when_all_tasks_run() {
    let mut c = Case::new(at(1, Some(0)), 10);
    c.rollout.rollout_state = None;
    assert_eq!(c.decide().kind, Kind::Advance);
}

#[test]
fn legacy_health_does_not_matter_at_full_traffic() {
    let mut c = Case::new(at(3, Some(0)), 100);
    c.legacy_healthy = 0;
    let d = c.decide();
    assert_eq!(d.kind, Kind::Complete);
    assert!(gate(&d, GATE_LEGACY_HEALTHY).passed());
}

#[test]
fn an_empty_ecs_target_group_never_gets_the_first_step() {
    let mut c = Case::new(BTreeMap::new(), 0);
    c.ecs_healthy = 0;
    let d = c.decide();
    assert_eq!(d.kind, Kind::Hold);
    assert!(!d.changes_anything());
    assert!(d.reason.contains("0 healthy targets"), "{}", d.reason);
    assert!(!d.degraded, "waiting for a new service is not degradation");
    // Zero desired tasks can never be healthy enough.
    let mut c = Case::new(BTreeMap::new(), 0);
    c.rollout.desired = 0;
    c.rollout.running = 0;
    c.ecs_healthy = 0;
    assert_eq!(c.decide().kind, Kind::Hold);
}

#[test]
fn after_a_rollback_the_step_is_held_again_then_resumes() {
    let mut tags = at(1, Some(0));
    tags.insert(tags::MIGRATION_ROLLBACKS.into(), "1@fp1".into());
    let mut c = Case::new(tags, 10);
    c.now = 30;
    let d = c.decide();
    assert_eq!(d.kind, Kind::Hold);
    assert_eq!(d.rollbacks, 1);
    c.now = 61;
    let d = c.decide();
    assert_eq!((d.kind, d.stage), (Kind::Advance, 2));
    assert_eq!(d.rollbacks, 1, "advancing keeps the count");
    assert!(!d.tags.contains_key(tags::MIGRATION_ROLLBACKS));
}

#[test]
fn too_many_rollbacks_hold_until_the_manifest_changes() {
    let mut tags = at(1, Some(0));
    tags.insert(
        tags::MIGRATION_ROLLBACKS.into(),
        format!("{MAX_ROLLBACKS}@fp1"),
    );
    let d = Case::new(tags.clone(), 10).decide();
    assert_eq!(d.kind, Kind::Hold);
    assert!(d.degraded);
    assert!(d.reason.contains("change the manifest"), "{}", d.reason);

    // Still rolls back when ECS fails: safety is not rationed.
    let mut c = Case::new(tags.clone(), 10);
    c.ecs_healthy = 0;
    assert_eq!(c.decide().kind, Kind::Rollback);

    // Another fingerprint (a new image, a new spec) starts a fresh count.
    tags.insert(
        tags::MIGRATION_ROLLBACKS.into(),
        format!("{MAX_ROLLBACKS}@old"),
    );
    let d = Case::new(tags, 10).decide();
    assert_eq!((d.kind, d.rollbacks), (Kind::Advance, 0));
}

#[test]
fn a_step_without_a_clock_starts_its_clock() {
    let d = Case::new(at(2, None), 50).decide();
    assert_eq!(d.kind, Kind::Adopt);
    assert_eq!(d.set_percent, None);
    assert_eq!(
        d.tags.get(tags::MIGRATION_STEP_SINCE),
        Some(&tags::format_time(t(1000)))
    );
    let d = Case::new(at(3, None), 100).decide();
    assert_eq!(d.kind, Kind::Adopt);
}

#[test]
fn garbage_tags_read_as_not_started_and_large_steps_clamp() {
    let tags = BTreeMap::from([
        (tags::MIGRATION_STEP.to_string(), "x".to_string()),
        (
            tags::MIGRATION_STEP_SINCE.to_string(),
            "yesterday".to_string(),
        ),
    ]);
    assert_eq!(recorded(&[10, 100], &tags), (0, None));
    assert_eq!(recorded(&[10, 100], &at(7, None)).0, 2);
    assert_eq!(tags::migration_rollbacks(&BTreeMap::new(), FP), 0);
}

#[test]
fn fingerprint_follows_the_spec_and_the_task_definition() {
    let m = migration();
    let a = fingerprint(&m, "td1");
    assert_eq!(a, fingerprint(&m, "td1"));
    assert_ne!(a, fingerprint(&m, "td2"));
    let mut m2 = m.clone();
    m2.steps = vec![25, 100];
    assert_ne!(a, fingerprint(&m2, "td1"));
    assert_eq!(a.len(), 12);
}

#[test]
fn degraded_is_reported_while_a_rolled_back_service_keeps_failing_at_zero() {
    let mut tags = at(0, Some(0));
    tags.insert(tags::MIGRATION_ROLLBACKS.into(), "2@fp1".into());
    let mut c = Case::new(tags, 0);
    c.ecs_healthy = 0;
    let d = c.decide();
    assert_eq!(d.kind, Kind::Hold);
    assert!(d.degraded);
    // After a rollback to 0% the clock holds 0% again before the first step.
    let mut tags = at(0, Some(0));
    tags.insert(tags::MIGRATION_ROLLBACKS.into(), "1@fp1".into());
    let mut c = Case::new(tags, 0);
    c.now = 30;
    assert_eq!(c.decide().kind, Kind::Hold);
    c.now = 60;
    assert_eq!(c.decide().kind, Kind::Advance);
}

#[test]
fn no_rollback_onto_a_legacy_side_with_nothing_healthy() {
    let mut c = Case::new(at(3, Some(0)), 100);
    c.ecs_healthy = 0;
    c.legacy_healthy = 0;
    let d = c.decide();
    assert_eq!(d.kind, Kind::Hold, "{}", d.reason);
    assert!(!d.changes_anything());
    assert!(d.degraded);
    assert!(
        d.reason.contains("no healthy targets to roll back to"),
        "{}",
        d.reason
    );
}

#[test]
fn the_step_clock_keeps_milliseconds() {
    let since = t(0) + Duration::from_millis(999);
    let tags = BTreeMap::from([
        (tags::MIGRATION_STEP.to_string(), "1".to_string()),
        (
            tags::MIGRATION_STEP_SINCE.to_string(),
            tags::format_time(since),
        ),
    ]);
    assert_eq!(recorded(&[10, 100], &tags), (1, Some(since)));
    // One millisecond short of the interval still holds.
    let mut c = Case::new(tags, 10);
    c.now = 60;
    assert_eq!(c.decide().kind, Kind::Hold);
}

/// A case at `stage` (clock at 0, now 1000: the interval has passed) whose
/// one declared alarm `web-5xx` reads `state` (`None`: it does not exist).
fn with_alarm(stage: usize, state: Option<AlarmState>) -> Case {
    let mut c = Case::new(at(stage, Some(0)), stage_percent(&[10, 50, 100], stage));
    c.alarms = vec!["web-5xx".into()];
    if let Some(s) = state {
        c.readings.states.insert("web-5xx".into(), s);
    }
    c
}

#[test]
fn the_alarm_gate_decides_like_an_ecs_gate() {
    use AlarmState::*;
    // (stage, alarm state, expected kind, stage after, gate, degraded)
    let table = [
        (0, Some(Ok), Kind::Advance, 1, GateState::Pass, false),
        (1, Some(Ok), Kind::Advance, 2, GateState::Pass, false),
        (3, Some(Ok), Kind::Complete, 3, GateState::Pass, false),
        // ALARM: nothing to roll back before the first step, so it holds.
        (0, Some(Alarm), Kind::Hold, 0, GateState::Fail, false),
        (1, Some(Alarm), Kind::Rollback, 0, GateState::Fail, true),
        (2, Some(Alarm), Kind::Rollback, 1, GateState::Fail, true),
        (3, Some(Alarm), Kind::Rollback, 2, GateState::Fail, true),
        // INSUFFICIENT_DATA holds, never rolls back, and never completes.
        (
            0,
            Some(InsufficientData),
            Kind::Hold,
            0,
            GateState::Wait,
            false,
        ),
        (
            2,
            Some(InsufficientData),
            Kind::Hold,
            2,
            GateState::Wait,
            false,
        ),
        (
            3,
            Some(InsufficientData),
            Kind::Hold,
            3,
            GateState::Wait,
            false,
        ),
        // A missing alarm is a configuration error: held, degraded, never OK.
        (0, None, Kind::Hold, 0, GateState::Wait, true),
        (2, None, Kind::Hold, 2, GateState::Wait, true),
        (3, None, Kind::Hold, 3, GateState::Wait, true),
    ];
    for (stage, state, kind, after, gate_state, degraded) in table {
        let d = with_alarm(stage, state).decide();
        let label = format!("stage {stage}, alarm {state:?}: {}", d.reason);
        assert_eq!((d.kind, d.stage), (kind, after), "{label}");
        assert_eq!(gate(&d, GATE_ALARMS).state, gate_state, "{label}");
        assert_eq!(d.degraded, degraded, "{label}");
        if kind == Kind::Rollback {
            assert_eq!(d.rollbacks, 1, "{label}");
            assert_eq!(d.set_percent, Some(stage_percent(&[10, 50, 100], after)));
        }
    }
}

#[test]
fn a_missing_alarm_is_reported_as_a_configuration_error() {
    let d = with_alarm(2, None).decide();
    let g = gate(&d, GATE_ALARMS);
    assert!(
        g.detail
            .contains("configuration error: no CloudWatch alarm named web-5xx"),
        "{}",
        g.detail
    );
    assert!(d.reason.contains("configuration error"), "{}", d.reason);
    assert!(!g.passed());
}

#[test]
fn alarm_rollbacks_count_toward_the_bound() {
    let mut c = with_alarm(2, Some(AlarmState::Alarm));
    c.tags.insert(
        tags::MIGRATION_ROLLBACKS.into(),
        tags::migration_rollbacks_value(MAX_ROLLBACKS - 1, FP),
    );
    let d = c.decide();
    assert_eq!(d.kind, Kind::Rollback);
    assert_eq!(d.rollbacks, MAX_ROLLBACKS);
    // Once OK again, the bound holds the migration where it is.
    let mut ok = with_alarm(1, Some(AlarmState::Ok));
    ok.tags.insert(
        tags::MIGRATION_ROLLBACKS.into(),
        tags::migration_rollbacks_value(MAX_ROLLBACKS, FP),
    );
    let d = ok.decide();
    assert_eq!(d.kind, Kind::Hold, "{}", d.reason);
    assert!(d.degraded);
}

#[test]
fn one_alarm_in_alarm_among_several_fails_and_names_it() {
    let mut c = with_alarm(1, Some(AlarmState::Ok));
    c.alarms = vec!["a".into(), "b".into(), "web-5xx".into()];
    c.readings.states.insert("a".into(), AlarmState::Ok);
    c.readings
        .states
        .insert("b".into(), AlarmState::InsufficientData);
    c.readings
        .states
        .insert("web-5xx".into(), AlarmState::Alarm);
    let d = c.decide();
    assert_eq!(d.kind, Kind::Rollback);
    let g = gate(&d, GATE_ALARMS);
    assert_eq!(
        g.detail, "in ALARM: web-5xx; INSUFFICIENT_DATA: b",
        "{}",
        g.detail
    );
}

#[test]
fn unreadable_alarms_hold_and_no_alarms_add_no_gate() {
    let mut c = with_alarm(1, None);
    c.readings.error = Some("CloudWatch:DescribeAlarms: AccessDenied".into());
    let d = c.decide();
    assert_eq!(d.kind, Kind::Hold, "{}", d.reason);
    assert!(!d.degraded, "an outage is not a configuration error");
    assert_eq!(gate(&d, GATE_ALARMS).state, GateState::Wait);
    // Without alarms declared there is no alarms gate at all.
    let d = Case::new(at(1, Some(0)), 10).decide();
    assert!(d.gates.iter().all(|g| g.name != GATE_ALARMS));
    // An unknown state from a future CloudWatch holds.
    let mut c = with_alarm(1, None);
    c.readings.unreadable.push("web-5xx".into());
    let d = c.decide();
    assert_eq!((d.kind, d.degraded), (Kind::Hold, false), "{}", d.reason);
    assert_eq!(AlarmState::parse("SOMETHING_NEW"), None);
    for s in [
        AlarmState::Ok,
        AlarmState::Alarm,
        AlarmState::InsufficientData,
    ] {
        assert_eq!(AlarmState::parse(s.as_str()), Some(s));
    }
}
