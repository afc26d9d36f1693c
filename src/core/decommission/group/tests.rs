use std::time::Duration;

use super::*;
use crate::core::decommission::{DecommissionAction, FleetInput, MigrationInput, TargetState};
use crate::core::model::ServiceKey;

const LEGACY: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-ec2/1";
const OTHER: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/other/3";
const AFTER: Duration = Duration::from_secs(600);

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000 + secs)
}

fn migration(complete: bool, action: DecommissionAction) -> MigrationInput {
    MigrationInput {
        service: ServiceKey {
            cluster: "prod".into(),
            name: "web".into(),
        },
        selector: BTreeMap::new(),
        auto_scaling_group: Some("web-asg".into()),
        legacy_target_group: Some(LEGACY.into()),
        decommission: Some((action, AFTER)),
        completed_since: complete.then(|| t(0)),
        report_only: false,
    }
}

/// A live group of two running instances behind the legacy target group.
fn group() -> GroupInput {
    GroupInput {
        name: "web-asg".into(),
        tags: BTreeMap::new(),
        min_size: 2,
        desired_capacity: 2,
        suspended: BTreeSet::new(),
        target_group_arns: BTreeSet::from([LEGACY.to_string()]),
        load_balancer_names: Vec::new(),
        instances: ["i-1", "i-2"]
            .iter()
            .map(|id| GroupInstance {
                id: id.to_string(),
                protected_from_scale_in: false,
            })
            .collect(),
        terminating_hooks: Some(Vec::new()),
        registrations: ["i-1", "i-2"]
            .iter()
            .map(|_| Registration {
                target_group_arn: LEGACY.into(),
                port: Some(80),
                state: TargetState::Healthy,
            })
            .collect(),
        deleting: false,
        template_first: false,
    }
}

fn fleet(now: SystemTime, migrations: Vec<MigrationInput>, groups: Vec<GroupInput>) -> FleetInput {
    let tg = |arn: &str, name: &str| {
        (
            arn.to_string(),
            crate::core::decommission::TargetGroupInput {
                arn: arn.into(),
                name: name.into(),
                managed: false,
                deregistration_delay: Some(Duration::from_secs(30)),
            },
        )
    };
    FleetInput {
        controller_id: "ecsync".into(),
        now,
        max_per_pass: 1,
        prune: false,
        declared: migrations.iter().map(|m| m.service.clone()).collect(),
        held: BTreeSet::new(),
        set_incomplete: false,
        migrations,
        target_groups: BTreeMap::from([tg(LEGACY, "web-ec2"), tg(OTHER, "other")]),
        instances: Vec::new(),
        groups,
    }
}

fn clock(phase: Phase, since: SystemTime) -> String {
    Clock { phase, since }.format()
}

fn only(plans: &[GroupPlan]) -> &GroupPlan {
    assert_eq!(plans.len(), 1, "{plans:#?}");
    &plans[0]
}

fn names(p: &GroupPlan) -> Vec<&'static str> {
    p.steps.iter().map(GroupStep::name).collect()
}

/// The group as the next pass would observe it after `plan` ran, as AWS
/// (not moto) behaves: a detached group's targets drain first.
fn after(mut g: GroupInput, plan: &GroupPlan) -> GroupInput {
    for s in &plan.steps {
        match s {
            GroupStep::Tag { tags } => g.tags.extend(tags.clone()),
            GroupStep::Untag { keys } => keys.iter().for_each(|k| {
                g.tags.remove(k);
            }),
            GroupStep::Suspend { processes } => g.suspended.extend(processes.iter().cloned()),
            GroupStep::Resume { processes } => processes.iter().for_each(|p| {
                g.suspended.remove(p);
            }),
            GroupStep::Detach { target_group_arn } => {
                g.target_group_arns.remove(target_group_arn);
                for r in &mut g.registrations {
                    r.state = TargetState::Draining;
                }
            }
            GroupStep::Attach { target_group_arn } => {
                g.target_group_arns.insert(target_group_arn.clone());
            }
            GroupStep::ScaleToZero => {
                g.min_size = 0;
                g.desired_capacity = 0;
            }
            GroupStep::Delete => g.deleting = true,
        }
    }
    g
}

#[test]
fn a_group_goes_through_suspend_detach_drain_scale_in_and_delete() {
    let m = || vec![migration(true, DecommissionAction::Terminate)];
    // Pass 1: clock, suspend, detach, in that order; nothing switched off.
    let g = group();
    let plans = plan_groups(&fleet(t(100), m(), vec![g.clone()]), 1);
    let p = only(&plans);
    assert_eq!(names(p), vec!["tag", "suspend", "detach"]);
    assert_eq!(p.state, OrphanState::Draining);
    let GroupStep::Tag { tags: first } = &p.steps[0] else {
        panic!()
    };
    assert_eq!(first[tags::DECOMMISSION], clock(Phase::Pending, t(100)));
    assert_eq!(
        first[tags::DECOMMISSION_SUSPENDED],
        "Launch,HealthCheck,ReplaceUnhealthy,AZRebalance"
    );
    assert_eq!(first[tags::DECOMMISSION_LEFT], "web-ec2");
    assert_eq!(
        p.steps[1],
        GroupStep::Suspend {
            processes: SUSPENDED_PROCESSES.map(String::from).to_vec()
        }
    );
    // Pass 2: still draining (the deregistration delay is no proof).
    let g = after(g, p);
    let plans = plan_groups(&fleet(t(200), m(), vec![g.clone()]), 1);
    assert_eq!(only(&plans).state, OrphanState::Draining);
    assert!(only(&plans).steps.is_empty(), "{:?}", only(&plans).steps);
    // Drained, but `after` (600 s from 100) has not run out.
    let mut g = g;
    g.registrations.clear();
    let plans = plan_groups(&fleet(t(650), m(), vec![g.clone()]), 1);
    assert_eq!(only(&plans).state, OrphanState::Pending);
    assert_eq!(only(&plans).acts_at, Some(t(700)));
    // Due: min = desired = 0, then recorded.
    let plans = plan_groups(&fleet(t(700), m(), vec![g.clone()]), 1);
    let p = only(&plans);
    assert_eq!(names(p), vec!["scale_to_zero", "tag"]);
    assert_eq!(p.state, OrphanState::Stopped);
    // Instances still terminating: wait, never delete a group with instances.
    let g = after(g, p);
    let plans = plan_groups(&fleet(t(710), m(), vec![g.clone()]), 1);
    assert!(only(&plans).steps.is_empty());
    assert!(
        only(&plans)
            .message
            .contains("2 instance(s) still terminating")
    );
    assert_eq!(only(&plans).acts_at, Some(t(700)), "when it was scaled in");
    // Empty: deleted.
    let mut g = g;
    g.instances.clear();
    let plans = plan_groups(&fleet(t(720), m(), vec![g.clone()]), 1);
    assert_eq!(names(only(&plans)), vec!["delete"]);
    assert_eq!(only(&plans).state, OrphanState::Terminating);
    // With `stop`, an empty group at 0 is finished.
    let stop = vec![migration(true, DecommissionAction::Stop)];
    let plans = plan_groups(&fleet(t(720), stop, vec![g]), 1);
    assert!(only(&plans).steps.is_empty());
    assert_eq!(only(&plans).state, OrphanState::Stopped);
}

#[test]
fn a_restart_after_any_step_decides_the_same_next_step() {
    // Walk the whole sequence, and at every point decide again from the
    // observed state alone (as a restarted process would): the same plan.
    let m = || vec![migration(true, DecommissionAction::Terminate)];
    let mut g = group();
    let mut now = 100;
    for _ in 0..8 {
        let plans = plan_groups(&fleet(t(now), m(), vec![g.clone()]), 1);
        let again = plan_groups(&fleet(t(now), m(), vec![g.clone()]), 1);
        assert_eq!(plans, again);
        let Some(p) = plans.first() else { break };
        g = after(g, p);
        if g.registrations
            .iter()
            .all(|r| r.state == TargetState::Draining)
        {
            g.registrations.clear();
        }
        if g.min_size == 0 {
            g.instances.clear();
        }
        now += 400;
    }
    assert!(g.deleting, "{g:#?}");
}

#[test]
fn a_crash_between_scale_in_and_its_record_is_recorded_not_redone() {
    let mut g = group();
    g.tags
        .insert(tags::DECOMMISSION.into(), clock(Phase::Pending, t(0)));
    g.suspended = SUSPENDED_PROCESSES.map(String::from).into();
    g.target_group_arns.clear();
    g.registrations.clear();
    g.min_size = 0;
    g.desired_capacity = 0;
    let plans = plan_groups(
        &fleet(
            t(900),
            vec![migration(true, DecommissionAction::Stop)],
            vec![g],
        ),
        0,
    );
    let p = only(&plans);
    assert_eq!(names(p), vec!["tag"], "even with no budget left");
    assert_eq!(p.state, OrphanState::Stopped);
}

#[test]
fn scaled_up_again_by_hand_is_scaled_in_again_and_resumed_processes_suspended() {
    let mut g = group();
    g.tags
        .insert(tags::DECOMMISSION.into(), clock(Phase::Stopped, t(0)));
    g.suspended = BTreeSet::from(["Launch".to_string()]);
    g.target_group_arns.clear();
    g.registrations.clear();
    g.desired_capacity = 1;
    let plans = plan_groups(
        &fleet(
            t(900),
            vec![migration(true, DecommissionAction::Stop)],
            vec![g],
        ),
        1,
    );
    assert_eq!(names(only(&plans)), vec!["suspend", "scale_to_zero", "tag"]);
}

#[test]
fn held_groups_get_no_call_at_all() {
    let m = || vec![migration(true, DecommissionAction::Terminate)];
    let cases: Vec<(GroupInput, &str)> = vec![
        {
            let mut g = group();
            g.tags.insert(tags::PROTECT.into(), "true".into());
            (g, "tagged ecsync.io/protect=true")
        },
        {
            let mut g = group();
            g.instances[1].protected_from_scale_in = true;
            (g, "instance i-2 is protected from scale-in")
        },
        {
            let mut g = group();
            g.terminating_hooks = Some(vec!["drain-logs".into()]);
            (
                g,
                "lifecycle hooks on termination would hold its instances: drain-logs",
            )
        },
        {
            let mut g = group();
            g.terminating_hooks = None;
            (g, "could not read its lifecycle hooks")
        },
        {
            let mut g = group();
            g.load_balancer_names.push("classic".into());
            (g, "also serves Classic Load Balancer classic")
        },
        {
            let mut g = group();
            g.target_group_arns.insert(OTHER.into());
            (g, "target group other")
        },
    ];
    for (g, want) in cases {
        let plans = plan_groups(&fleet(t(5000), m(), vec![g]), 1);
        let p = only(&plans);
        assert_eq!(p.state, OrphanState::Skipped, "{want}");
        assert!(p.steps.is_empty(), "{want}: {:?}", p.steps);
        let reason = p
            .skipped
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(reason.contains(want), "{reason:?} lacks {want:?}");
    }
}

#[test]
fn nothing_happens_before_completion_or_without_a_decommission_block() {
    let plans = plan_groups(
        &fleet(
            t(5000),
            vec![migration(false, DecommissionAction::Terminate)],
            vec![group()],
        ),
        1,
    );
    assert!(plans.is_empty(), "{plans:#?}");
    let mut m = migration(true, DecommissionAction::Stop);
    m.decommission = None;
    assert!(plan_groups(&fleet(t(5000), vec![m], vec![group()]), 1).is_empty());
    // A group no migration names is never looked at, complete or not.
    let mut other = group();
    other.name = "api-asg".into();
    assert!(
        plan_groups(
            &fleet(
                t(5000),
                vec![migration(true, DecommissionAction::Stop)],
                vec![other]
            ),
            1
        )
        .is_empty()
    );
}

#[test]
fn the_cap_and_report_only_hold_the_scale_in() {
    let mut g = group();
    g.tags
        .insert(tags::DECOMMISSION.into(), clock(Phase::Pending, t(0)));
    g.suspended = SUSPENDED_PROCESSES.map(String::from).into();
    g.target_group_arns.clear();
    g.registrations.clear();
    let m = || vec![migration(true, DecommissionAction::Stop)];
    let plans = plan_groups(&fleet(t(900), m(), vec![g.clone()]), 0);
    assert!(only(&plans).steps.is_empty());
    assert!(only(&plans).message.contains("--max-decommission-per-pass"));
    let mut ro = m();
    ro[0].report_only = true;
    let plans = plan_groups(&fleet(t(900), ro, vec![g]), 1);
    assert!(only(&plans).steps.is_empty());
    assert!(only(&plans).message.contains("would scale to 0"));
}

#[test]
fn a_group_no_longer_a_candidate_is_given_back() {
    let mut g = group();
    g.tags
        .insert(tags::DECOMMISSION.into(), clock(Phase::Pending, t(0)));
    g.tags
        .insert(tags::DECOMMISSION_FOR.into(), "prod/web".into());
    g.tags.insert(tags::DECOMMISSION_BY.into(), "ecsync".into());
    g.tags.insert(
        tags::DECOMMISSION_SUSPENDED.into(),
        "Launch,HealthCheck".into(),
    );
    g.tags
        .insert(tags::DECOMMISSION_LEFT.into(), "web-ec2".into());
    // AZRebalance was suspended before ecsync came: it stays suspended.
    g.suspended = ["Launch", "HealthCheck", "AZRebalance"]
        .map(String::from)
        .into();
    g.target_group_arns.clear();
    // The migration rolled back: not complete any more.
    let plans = plan_groups(
        &fleet(
            t(900),
            vec![migration(false, DecommissionAction::Stop)],
            vec![g.clone()],
        ),
        1,
    );
    let p = only(&plans);
    assert_eq!(p.state, OrphanState::Released);
    assert_eq!(
        p.steps,
        vec![
            GroupStep::Resume {
                processes: vec!["Launch".into(), "HealthCheck".into()]
            },
            GroupStep::Attach {
                target_group_arn: LEGACY.into()
            },
            GroupStep::Untag {
                keys: [
                    tags::DECOMMISSION,
                    tags::DECOMMISSION_FOR,
                    tags::DECOMMISSION_LEFT,
                    tags::DECOMMISSION_BY,
                    tags::DECOMMISSION_SUSPENDED
                ]
                .map(String::from)
                .to_vec()
            },
        ]
    );
    // Another controller's group is not ours to give back.
    let mut theirs = g;
    theirs
        .tags
        .insert(tags::DECOMMISSION_BY.into(), "other".into());
    assert!(plan_groups(&fleet(t(900), vec![], vec![theirs]), 1).is_empty());
}

#[test]
fn an_empty_group_waits_for_its_launch_template_cleanup_before_deletion() {
    let mut g = group();
    g.min_size = 0;
    g.desired_capacity = 0;
    g.instances.clear();
    g.registrations.clear();
    g.target_group_arns.clear();
    g.suspended = SUSPENDED_PROCESSES.iter().map(|p| p.to_string()).collect();
    g.tags
        .insert(tags::DECOMMISSION.into(), clock(Phase::Stopped, t(700)));
    g.tags.insert(tags::DECOMMISSION_BY.into(), "ecsync".into());
    g.template_first = true;
    let m = migration(true, DecommissionAction::Terminate);
    let plans = plan_groups(&fleet(t(800), vec![m.clone()], vec![g.clone()]), 1);
    let p = only(&plans);
    assert!(p.steps.is_empty(), "{p:#?}");
    assert!(p.message.contains("launch template"), "{}", p.message);
    // Once the template is gone, the group goes.
    g.template_first = false;
    let plans = plan_groups(&fleet(t(800), vec![m], vec![g]), 1);
    assert_eq!(names(only(&plans)), ["delete"]);
}

#[test]
fn the_fleet_is_gone_once_the_group_is_empty_or_deleted() {
    use crate::core::decommission::fleet_remaining;
    let m = migration(true, DecommissionAction::Stop);
    let live = fleet(t(800), vec![m.clone()], vec![group()]);
    assert!(fleet_remaining(&live, &m).is_some_and(|w| w.contains("web-asg has 2")));
    let mut g = group();
    g.min_size = 0;
    g.desired_capacity = 0;
    g.instances.clear();
    assert_eq!(
        fleet_remaining(&fleet(t(800), vec![m.clone()], vec![g]), &m),
        None
    );
    assert_eq!(
        fleet_remaining(&fleet(t(800), vec![m.clone()], vec![]), &m),
        None
    );
    let incomplete = migration(false, DecommissionAction::Stop);
    assert!(
        fleet_remaining(
            &fleet(t(800), vec![incomplete.clone()], vec![]),
            &incomplete
        )
        .is_some()
    );
}
