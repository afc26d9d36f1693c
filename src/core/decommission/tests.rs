use std::collections::BTreeSet;

use super::*;
use crate::core::model::ServiceKey;

const LEGACY: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-ec2/1";
const ECS_TG: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-ecs/2";
const OTHER: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/other/3";

fn t(secs: u64) -> SystemTime {
    // A fixed, whole-second epoch so tag round trips are exact.
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000 + secs)
}

fn key(name: &str) -> ServiceKey {
    ServiceKey {
        cluster: "prod".into(),
        name: name.into(),
    }
}

fn migration(name: &str, app: &str, complete: bool) -> MigrationInput {
    MigrationInput {
        service: key(name),
        selector: BTreeMap::from([("app".to_string(), app.to_string())]),
        auto_scaling_group: None,
        legacy_target_group: Some(LEGACY.into()),
        decommission: Some((DecommissionAction::Stop, Duration::from_secs(600))),
        completed_since: complete.then(|| t(0)),
        report_only: false,
    }
}

fn instance(id: &str, tags_: &[(&str, &str)]) -> InstanceInput {
    InstanceInput {
        id: id.into(),
        state: InstanceState::Running,
        tags: tags_
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        protection: Some(Protection::default()),
        registrations: Vec::new(),
    }
}

fn registered(mut i: InstanceInput, tg: &str, state: &str) -> InstanceInput {
    i.registrations.push(Registration {
        target_group_arn: tg.into(),
        port: Some(80),
        state: TargetState::parse(state),
    });
    i
}

fn fleet(
    now: SystemTime,
    migrations: Vec<MigrationInput>,
    instances: Vec<InstanceInput>,
) -> FleetInput {
    let tg = |arn: &str, name: &str, managed: bool| {
        (
            arn.to_string(),
            TargetGroupInput {
                arn: arn.into(),
                name: name.into(),
                managed,
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
        target_groups: BTreeMap::from([
            tg(LEGACY, "web-ec2", false),
            tg(ECS_TG, "web-ecs", true),
            tg(OTHER, "other", false),
        ]),
        instances,
        groups: Vec::new(),
    }
}

fn pending(since: SystemTime) -> String {
    Clock {
        phase: Phase::Pending,
        since,
    }
    .format()
}

fn only(plans: &[InstancePlan]) -> &InstancePlan {
    assert_eq!(plans.len(), 1, "{plans:#?}");
    &plans[0]
}

fn step_names(p: &InstancePlan) -> Vec<&'static str> {
    p.steps.iter().map(Step::name).collect()
}

#[test]
fn completion_needs_the_last_step_held_for_one_interval() {
    let steps = [10, 50, 100];
    let interval = Duration::from_secs(300);
    let tags_ = |step: &str, since: &str| {
        BTreeMap::from([
            (tags::MIGRATION_STEP.to_string(), step.to_string()),
            (tags::MIGRATION_STEP_SINCE.to_string(), since.to_string()),
        ])
    };
    let since = humantime::format_rfc3339_seconds(t(0)).to_string();
    assert_eq!(
        migration_completed_since(&steps, interval, &tags_("3", &since), t(300)),
        Some(t(300))
    );
    assert_eq!(
        migration_completed_since(&steps, interval, &tags_("3", &since), t(299)),
        None
    );
    assert_eq!(
        migration_completed_since(&steps, interval, &tags_("2", &since), t(9999)),
        None
    );
    assert_eq!(
        migration_completed_since(&steps, interval, &tags_("4", &since), t(9999)),
        None
    );
    assert_eq!(
        migration_completed_since(&steps, interval, &tags_("x", &since), t(9999)),
        None
    );
    assert_eq!(
        migration_completed_since(&steps, interval, &tags_("3", "soon"), t(9999)),
        None
    );
    assert_eq!(
        migration_completed_since(&steps, interval, &BTreeMap::new(), t(9999)),
        None
    );
    assert_eq!(
        migration_completed_since(&[], interval, &tags_("0", &since), t(9999)),
        None
    );
    // A last step that is not 100 never completes (validation forbids it anyway).
    assert_eq!(
        migration_completed_since(&[10, 50], interval, &tags_("2", &since), t(9999)),
        None
    );
}

#[test]
fn clock_tags_round_trip_and_reject_garbage() {
    for phase in [Phase::Pending, Phase::Stopped, Phase::Terminating] {
        let c = Clock {
            phase,
            since: t(42),
        };
        assert_eq!(Clock::parse(&c.format()), Some(c));
    }
    assert_eq!(pending(t(0)), "pending@2025-06-15T15:06:40.000Z");
    // Clocks written in whole seconds by earlier versions still read.
    assert_eq!(
        Clock::parse("pending@2025-06-15T15:06:40Z"),
        Some(Clock {
            phase: Phase::Pending,
            since: t(0)
        })
    );
    for bad in [
        "",
        "pending",
        "pending@",
        "done@2025-06-15T15:06:40Z",
        "pending@yesterday",
    ] {
        assert_eq!(Clock::parse(bad), None, "{bad}");
    }
}

#[test]
fn left_record_round_trips() {
    let set = BTreeSet::from([("web-ec2".to_string(), Some(80)), ("b".to_string(), None)]);
    assert_eq!(decode_left(&encode_left(&set)), set);
    assert_eq!(encode_left(&set), "b,web-ec2:80");
    assert!(decode_left("").is_empty());
}

#[test]
fn first_pass_tags_then_deregisters_and_never_acts() {
    let i = registered(instance("i-1", &[("app", "web")]), LEGACY, "healthy");
    let mut f = fleet(t(1000), vec![migration("web", "web", true)], vec![i]);
    f.migrations[0].decommission = Some((DecommissionAction::Stop, Duration::ZERO));
    let plans = plan_decommission(&f);
    let p = only(&plans);
    assert_eq!(step_names(p), ["tag", "deregister"]);
    assert_eq!(p.state, OrphanState::Draining);
    let Step::Tag { tags: written } = &p.steps[0] else {
        panic!()
    };
    assert_eq!(written[tags::DECOMMISSION], pending(t(1000)));
    assert_eq!(written[tags::DECOMMISSION_FOR], "prod/web");
    assert_eq!(written[tags::DECOMMISSION_LEFT], "web-ec2:80");
    assert_eq!(p.leaves, [LEGACY]);
    assert_eq!(p.drained_from, ["web-ec2"]);
    // Drain: 30 s delay from now, grace 0.
    assert_eq!(p.acts_at, Some(t(1030)));
}

#[test]
fn pending_waits_for_grace_then_stops_and_records() {
    let i = instance(
        "i-1",
        &[("app", "web"), (tags::DECOMMISSION, &pending(t(1000)))],
    );
    let plans = plan_decommission(&fleet(
        t(1599),
        vec![migration("web", "web", true)],
        vec![i.clone()],
    ));
    let p = only(&plans);
    assert_eq!(p.state, OrphanState::Pending);
    assert!(p.steps.is_empty());
    assert_eq!(p.acts_at, Some(t(1600)));

    let plans = plan_decommission(&fleet(
        t(1600),
        vec![migration("web", "web", true)],
        vec![i],
    ));
    let p = only(&plans);
    assert_eq!(p.state, OrphanState::Stopped);
    assert_eq!(step_names(p), ["stop", "tag"]);
    let Step::Tag { tags: written } = &p.steps[1] else {
        panic!()
    };
    assert_eq!(
        written[tags::DECOMMISSION],
        "stopped@2025-06-15T15:33:20.000Z"
    );
    assert_eq!(p.final_action(), Some(DecommissionAction::Stop));
}

#[test]
fn draining_targets_hold_the_action_until_the_target_is_gone() {
    let i = registered(
        instance(
            "i-1",
            &[("app", "web"), (tags::DECOMMISSION, &pending(t(1000)))],
        ),
        LEGACY,
        "draining",
    );
    let mut f = fleet(t(1020), vec![migration("web", "web", true)], vec![i]);
    f.migrations[0].decommission = Some((DecommissionAction::Stop, Duration::from_secs(10)));
    let p = plan_decommission(&f).remove(0);
    assert_eq!(p.state, OrphanState::Draining);
    assert!(
        p.steps.is_empty(),
        "a draining target is not deregistered twice"
    );
    assert_eq!(
        p.acts_at,
        Some(t(1030)),
        "the delay is the earliest estimate"
    );
    // Past the delay but still draining (connections still open, or the delay could
    // not be read and is longer): drained is what ELBv2 reports, not the clock.
    f.now = t(5000);
    let p = plan_decommission(&f).remove(0);
    assert_eq!(p.state, OrphanState::Draining);
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    // The target is gone from the group: drained.
    f.instances[0].registrations.clear();
    let p = plan_decommission(&f).remove(0);
    assert_eq!(step_names(&p), ["stop", "tag"]);
}

#[test]
fn another_controllers_decommission_is_left_alone() {
    // Tagged by controller "other": neither continued nor released by this one.
    let theirs = instance(
        "i-1",
        &[
            ("app", "web"),
            (tags::DECOMMISSION, &pending(t(0))),
            (tags::DECOMMISSION_BY, "other"),
        ],
    );
    let ours = instance("i-2", &[("app", "web")]);
    let plans = plan_decommission(&fleet(t(5000), vec![], vec![theirs, ours]));
    assert!(plans.is_empty(), "{plans:#?}");
    // What this controller tags, it signs.
    let mine = instance("i-3", &[("app", "web")]);
    let p = plan_decommission(&fleet(
        t(0),
        vec![migration("web", "web", true)],
        vec![mine],
    ))
    .remove(0);
    let Step::Tag { tags: written } = &p.steps[0] else {
        panic!("{:?}", p.steps)
    };
    assert_eq!(written[tags::DECOMMISSION_BY], "ecsync");
}

#[test]
fn re_registered_instances_are_deregistered_again_and_recorded() {
    let i = registered(
        instance(
            "i-1",
            &[("app", "web"), (tags::DECOMMISSION, &pending(t(0)))],
        ),
        ECS_TG,
        "healthy",
    );
    let p = plan_decommission(&fleet(
        t(5000),
        vec![migration("web", "web", true)],
        vec![i],
    ))
    .remove(0);
    assert_eq!(step_names(&p), ["tag", "deregister"]);
    assert_eq!(p.state, OrphanState::Draining);
    let Step::Tag { tags: written } = &p.steps[0] else {
        panic!()
    };
    assert_eq!(written[tags::DECOMMISSION_LEFT], "web-ecs:80");
    assert!(
        !written.contains_key(tags::DECOMMISSION),
        "the clock is kept"
    );
}

#[test]
fn skip_rules() {
    let due = pending(t(0));
    let base = |extra: &[(&str, &str)]| {
        let mut tags_ = vec![("app", "web"), (tags::DECOMMISSION, due.as_str())];
        tags_.extend_from_slice(extra);
        instance("i-1", &tags_)
    };
    let mut term = base(&[]);
    term.protection = Some(Protection {
        termination: true,
        stop: false,
    });
    let mut stop = base(&[]);
    stop.protection = Some(Protection {
        termination: false,
        stop: true,
    });
    let mut unknown = base(&[]);
    unknown.protection = None;
    let cases = vec![
        (base(&[(tags::PROTECT, "true")]), SkipReason::Protected),
        (
            base(&[(ASG_TAG, "web-asg")]),
            SkipReason::AutoScalingGroup {
                group: "web-asg".into(),
            },
        ),
        (term, SkipReason::TerminationProtection),
        (stop, SkipReason::StopProtection),
        (unknown, SkipReason::ProtectionUnknown),
        (
            registered(base(&[]), OTHER, "healthy"),
            SkipReason::UnmanagedTargetGroup {
                target_group: "other".into(),
            },
        ),
        (
            registered(base(&[]), "arn:unknown", "healthy"),
            SkipReason::UnmanagedTargetGroup {
                target_group: "arn:unknown".into(),
            },
        ),
    ];
    for (inst, reason) in cases {
        let plans = plan_decommission(&fleet(
            t(99_999),
            vec![migration("web", "web", true)],
            vec![inst],
        ));
        let p = only(&plans);
        assert_eq!(p.state, OrphanState::Skipped, "{reason:?}");
        assert_eq!(p.skipped.as_ref(), Some(&reason));
        assert!(p.steps.is_empty(), "{reason:?}: {p:#?}");
    }
}

#[test]
fn the_legacy_group_counts_as_managed_only_for_its_own_migration() {
    // Selected by "api", registered in web's legacy group: not api's to empty.
    let mut m = migration("api", "api", true);
    m.legacy_target_group = Some(ECS_TG.replace("web-ecs", "api-ec2"));
    let i = registered(instance("i-1", &[("app", "api")]), LEGACY, "healthy");
    let p = plan_decommission(&fleet(t(9999), vec![m], vec![i])).remove(0);
    assert_eq!(p.state, OrphanState::Skipped);
}

#[test]
fn only_candidates_get_plans() {
    let instances = vec![
        instance("i-untagged", &[]),
        instance("i-other-app", &[("app", "billing")]),
        instance("i-in-progress", &[("app", "api")]),
        instance("i-web", &[("app", "web")]),
        // Owned, but its service is declared, and prune is off anyway.
        instance(
            "i-owned",
            &[
                (tags::MANAGED_BY, "ecsync"),
                (tags::INSTANCE_SERVICE, "prod/web"),
            ],
        ),
    ];
    let plans = plan_decommission(&fleet(
        t(9999),
        vec![
            migration("web", "web", true),
            migration("api", "api", false),
        ],
        instances,
    ));
    let ids: Vec<&str> = plans.iter().map(|p| p.instance_id.as_str()).collect();
    assert_eq!(ids, ["i-web"]);
}

#[test]
fn an_instance_any_unfinished_migration_selects_is_not_a_candidate() {
    let i = instance("i-1", &[("app", "web"), ("tier", "front")]);
    let mut other = migration("front", "x", false);
    other.selector = BTreeMap::from([("tier".to_string(), "front".to_string())]);
    let plans = plan_decommission(&fleet(
        t(9999),
        vec![migration("web", "web", true), other],
        vec![i],
    ));
    assert!(plans.is_empty(), "{plans:#?}");
}

#[test]
fn no_decommission_block_means_never() {
    let mut m = migration("web", "web", true);
    m.decommission = None;
    let plans = plan_decommission(&fleet(
        t(9999),
        vec![m],
        vec![instance("i-1", &[("app", "web")])],
    ));
    assert!(plans.is_empty());
}

#[test]
fn empty_selector_matches_nothing() {
    let mut m = migration("web", "web", true);
    m.selector.clear();
    let plans = plan_decommission(&fleet(t(9999), vec![m], vec![instance("i-1", &[])]));
    assert!(plans.is_empty());
}

#[test]
fn cap_takes_the_oldest_clocks_first() {
    let instances: Vec<InstanceInput> = (0..4)
        .map(|n| {
            instance(
                &format!("i-{n}"),
                &[
                    ("app", "web"),
                    (tags::DECOMMISSION, &pending(t(100 - n * 10))),
                ],
            )
        })
        .collect();
    let mut f = fleet(t(9999), vec![migration("web", "web", true)], instances);
    f.max_per_pass = 2;
    let plans = plan_decommission(&f);
    let acting: Vec<&str> = plans
        .iter()
        .filter(|p| p.final_action().is_some())
        .map(|p| p.instance_id.as_str())
        .collect();
    assert_eq!(acting, ["i-2", "i-3"]);
    assert!(
        plans
            .iter()
            .filter(|p| p.final_action().is_none())
            .all(|p| p.state == OrphanState::Ready && p.steps.is_empty())
    );
    f.max_per_pass = 0;
    assert!(plan_decommission(&f).iter().all(|p| p.steps.is_empty()));
}

#[test]
fn report_only_services_decide_but_never_step_beyond_the_cap() {
    let mut m = migration("web", "web", true);
    m.report_only = true;
    let i = instance(
        "i-1",
        &[("app", "web"), (tags::DECOMMISSION, &pending(t(0)))],
    );
    let p = plan_decommission(&fleet(t(9999), vec![m], vec![i])).remove(0);
    assert!(p.report_only);
    assert_eq!(p.final_action(), None);
    assert!(p.message.contains("report only"));
}

#[test]
fn rollback_releases_registers_again_and_untags() {
    let i = instance(
        "i-1",
        &[
            ("app", "web"),
            (tags::DECOMMISSION, &pending(t(0))),
            (tags::DECOMMISSION_FOR, "prod/web"),
            (tags::DECOMMISSION_LEFT, "web-ec2:80"),
        ],
    );
    let p =
        plan_decommission(&fleet(t(10), vec![migration("web", "web", false)], vec![i])).remove(0);
    assert_eq!(p.state, OrphanState::Released);
    assert_eq!(
        p.steps,
        [
            Step::Register {
                target_group_arn: LEGACY.into(),
                port: Some(80)
            },
            Step::Untag {
                keys: vec![
                    tags::DECOMMISSION.into(),
                    tags::DECOMMISSION_FOR.into(),
                    tags::DECOMMISSION_LEFT.into()
                ]
            }
        ]
    );
}

#[test]
fn stopped_instances_that_stop_being_candidates_stay_stopped() {
    let mut i = instance(
        "i-1",
        &[
            ("app", "web"),
            (tags::DECOMMISSION, "stopped@2025-06-15T15:06:40Z"),
            (tags::DECOMMISSION_LEFT, "web-ec2:80"),
        ],
    );
    i.state = InstanceState::Stopped;
    let p =
        plan_decommission(&fleet(t(10), vec![migration("web", "web", false)], vec![i])).remove(0);
    assert_eq!(step_names(&p), ["untag"]);
}

#[test]
fn broken_manifests_hold_their_instances() {
    let i = instance(
        "i-1",
        &[
            (tags::DECOMMISSION, &pending(t(0))),
            (tags::DECOMMISSION_FOR, "prod/web"),
        ],
    );
    let mut f = fleet(t(10), vec![], vec![i.clone()]);
    f.held.insert(key("web"));
    f.set_incomplete = true;
    let p = plan_decommission(&f).remove(0);
    assert_eq!(p.state, OrphanState::Held);
    assert!(p.steps.is_empty());
    // Without the record of its service, any broken manifest holds it.
    let mut anon = i;
    anon.tags.remove(tags::DECOMMISSION_FOR);
    let mut f = fleet(t(10), vec![], vec![anon]);
    f.set_incomplete = true;
    assert!(plan_decommission(&f)[0].steps.is_empty());
}

#[test]
fn protected_tagged_instances_are_left_exactly_as_they_are() {
    let i = instance(
        "i-1",
        &[
            (tags::DECOMMISSION, &pending(t(0))),
            (tags::PROTECT, "true"),
        ],
    );
    let p = plan_decommission(&fleet(t(10), vec![], vec![i])).remove(0);
    assert_eq!(p.state, OrphanState::Skipped);
    assert!(p.steps.is_empty());
}

#[test]
fn stopped_is_done_unless_the_manifest_now_says_terminate() {
    let mut i = instance(
        "i-1",
        &[
            ("app", "web"),
            (tags::DECOMMISSION, "stopped@2025-06-15T15:06:40Z"),
        ],
    );
    i.state = InstanceState::Stopped;
    let f = fleet(
        t(9999),
        vec![migration("web", "web", true)],
        vec![i.clone()],
    );
    let p = plan_decommission(&f).remove(0);
    assert_eq!(p.state, OrphanState::Stopped);
    assert!(p.steps.is_empty());

    let mut f = fleet(t(9999), vec![migration("web", "web", true)], vec![i]);
    f.migrations[0].decommission = Some((DecommissionAction::Terminate, Duration::from_secs(600)));
    let p = plan_decommission(&f).remove(0);
    assert_eq!(step_names(&p), ["terminate", "tag"]);
}

#[test]
fn a_stop_not_yet_recorded_is_recorded_without_acting_again() {
    let mut i = instance(
        "i-1",
        &[("app", "web"), (tags::DECOMMISSION, &pending(t(0)))],
    );
    i.state = InstanceState::Stopped;
    let p = plan_decommission(&fleet(
        t(9999),
        vec![migration("web", "web", true)],
        vec![i],
    ))
    .remove(0);
    assert_eq!(step_names(&p), ["tag"]);
    assert_eq!(p.final_action(), None);
}

#[test]
fn prune_candidates_need_prune_a_complete_set_and_an_undeclared_service() {
    let owned = instance(
        "i-1",
        &[
            (tags::MANAGED_BY, "ecsync"),
            (tags::INSTANCE_SERVICE, "prod/gone"),
        ],
    );
    let mut f = fleet(
        t(0),
        vec![migration("web", "web", true)],
        vec![owned.clone()],
    );
    assert!(plan_decommission(&f).is_empty(), "prune is off");
    f.prune = true;
    let p = plan_decommission(&f).remove(0);
    assert_eq!(
        p.why,
        Some(Why::Prune {
            service: "prod/gone".into()
        })
    );
    assert_eq!(p.acts_at, Some(t(0) + PRUNE_GRACE));
    f.set_incomplete = true;
    assert!(
        plan_decommission(&f).is_empty(),
        "a broken set prunes nothing"
    );
    f.set_incomplete = false;
    f.declared.clear();
    assert!(
        plan_decommission(&f).is_empty(),
        "an empty set prunes nothing"
    );
    let mut theirs = owned;
    theirs
        .tags
        .insert(tags::MANAGED_BY.into(), "someone-else".into());
    let mut f = fleet(t(0), vec![migration("web", "web", true)], vec![theirs]);
    f.prune = true;
    assert!(
        plan_decommission(&f).is_empty(),
        "owned by another controller"
    );
}

#[test]
fn terminated_instances_are_ignored() {
    let mut i = instance(
        "i-1",
        &[("app", "web"), (tags::DECOMMISSION, &pending(t(0)))],
    );
    i.state = InstanceState::Terminated;
    assert!(
        plan_decommission(&fleet(
            t(9999),
            vec![migration("web", "web", true)],
            vec![i]
        ))
        .is_empty()
    );
}

#[test]
fn action_parsing() {
    assert_eq!(
        DecommissionAction::parse(None),
        Ok(DecommissionAction::Stop)
    );
    assert_eq!(
        DecommissionAction::parse(Some("terminate")),
        Ok(DecommissionAction::Terminate)
    );
    assert!(DecommissionAction::parse(Some("nuke")).is_err());
}
