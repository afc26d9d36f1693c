use super::*;

fn key() -> ServiceKey {
    ServiceKey {
        cluster: "prod".into(),
        name: "web".into(),
    }
}

/// A fleet that is gone, with everything still there and the legacy group
/// still in the forward action.
fn input(items: &[CleanupItem]) -> CleanupInput {
    CleanupInput {
        service: key(),
        items: items.iter().copied().collect(),
        declared_target_group: "web-ec2".into(),
        declared_group: Some("web-asg".into()),
        report_only: false,
        fleet_remaining: None,
        in_forward: Some(true),
        legacy: Some(LegacyTargetGroup {
            arn: "arn:tg/web-ec2".into(),
            name: "web-ec2".into(),
            protected: false,
            references: 1,
            registered: 0,
        }),
        group: Some(CleanupGroup {
            name: "web-asg".into(),
            protected: false,
            instances: 0,
            desired_capacity: 0,
            deleting: false,
        }),
        template: Some(CleanupTemplate {
            id: "lt-1".into(),
            name: "web-lt".into(),
            protected: false,
            other_users: Vec::new(),
        }),
    }
}

const ALL: [CleanupItem; 3] = CleanupItem::ALL;

/// What AWS looks like after the steps ran (a listener change leaves the
/// load balancer's reference behind only if another listener still has it).
fn apply(mut c: CleanupInput, steps: &[CleanupStep]) -> CleanupInput {
    for s in steps {
        match s {
            CleanupStep::LeaveForward { .. } => {
                c.in_forward = Some(false);
                if let Some(t) = c.legacy.as_mut() {
                    t.references = 0;
                }
            }
            CleanupStep::DeleteLaunchTemplate { .. } => c.template = None,
            CleanupStep::DeleteGroup { .. } => c.group = None,
            CleanupStep::DeleteTargetGroup { .. } => c.legacy = None,
        }
    }
    c
}

fn names(p: &CleanupPlan) -> Vec<&'static str> {
    p.steps.iter().map(CleanupStep::name).collect()
}

#[test]
fn nothing_happens_while_the_fleet_remains() {
    let mut c = input(&ALL);
    c.fleet_remaining = Some("web-asg has 2 instance(s)".into());
    let p = &plan_cleanup(&[c], 10)[0];
    assert!(p.steps.is_empty());
    assert!(!p.left_forward);
    assert_eq!(p.items.len(), 3);
    assert!(p.items.iter().all(|i| i.state == ItemState::Waiting));
    assert!(
        p.message.contains("web-asg has 2 instance(s)"),
        "{}",
        p.message
    );
}

#[test]
fn an_unreadable_listener_decides_nothing() {
    let mut c = input(&ALL);
    c.in_forward = None;
    let p = &plan_cleanup(&[c], 10)[0];
    assert!(p.steps.is_empty());
}

#[test]
fn registered_targets_keep_the_legacy_group_in_the_forward_action() {
    let mut c = input(&ALL);
    if let Some(t) = c.legacy.as_mut() {
        t.registered = 1;
    }
    let p = &plan_cleanup(&[c], 10)[0];
    assert!(p.steps.is_empty(), "{p:?}");
}

#[test]
fn an_empty_cleanup_only_leaves_the_forward_action() {
    let p = &plan_cleanup(&[input(&[])], 10)[0];
    assert_eq!(names(p), ["leave_forward"]);
    assert!(p.items.is_empty());
}

#[test]
fn the_whole_cleanup_in_order_one_deletion_per_pass() {
    let mut c = input(&ALL);
    let mut seen = Vec::new();
    for _ in 0..10 {
        let p = plan_cleanup(std::slice::from_ref(&c), 1).remove(0);
        if p.steps.is_empty() {
            break;
        }
        assert!(p.steps.iter().filter(|s| s.item().is_some()).count() <= 1);
        seen.extend(names(&p));
        c = apply(c, &p.steps);
    }
    assert_eq!(
        seen,
        [
            "leave_forward",
            "delete_launch_template",
            "delete_group",
            "delete_target_group"
        ]
    );
    let last = &plan_cleanup(&[c], 1)[0];
    assert!(last.items.iter().all(|i| i.state == ItemState::Done));
    assert_eq!(last.message, "cleaned up");
}

#[test]
fn a_restart_after_any_prefix_of_the_steps_ends_the_same() {
    // Every step taken alone, as if the process died right after it: the
    // next pass, from what exists, carries on to the same end state.
    let mut c = input(&ALL);
    let mut states = vec![c.clone()];
    for _ in 0..10 {
        let p = plan_cleanup(std::slice::from_ref(&c), 1).remove(0);
        for s in &p.steps {
            c = apply(c, std::slice::from_ref(s));
            states.push(c.clone());
        }
        if p.steps.is_empty() {
            break;
        }
    }
    for mut s in states {
        for _ in 0..10 {
            let p = plan_cleanup(std::slice::from_ref(&s), 1).remove(0);
            s = apply(s, &p.steps);
        }
        assert_eq!(s.in_forward, Some(false));
        assert!(s.legacy.is_none() && s.group.is_none() && s.template.is_none());
    }
}

#[test]
fn the_cap_is_shared_across_migrations_and_zero_deletes_nothing() {
    let p = plan_cleanup(&[input(&ALL)], 0).remove(0);
    assert_eq!(names(&p), ["leave_forward"]);
    assert_eq!(p.items[0].state, ItemState::Due);
    assert!(p.items[0].message.contains("--max-decommission-per-pass"));

    let mut a = apply(
        input(&ALL),
        &[CleanupStep::LeaveForward {
            target_group_arn: "x".into(),
        }],
    );
    a.template = None;
    let mut b = a.clone();
    b.service.name = "api".into();
    let plans = plan_cleanup(&[a, b], 1);
    let deletions: usize = plans
        .iter()
        .map(|p| p.steps.iter().filter(|s| s.item().is_some()).count())
        .sum();
    assert_eq!(deletions, 1);
}

#[test]
fn protected_and_shared_things_are_kept_and_reported() {
    let mut c = apply(
        input(&ALL),
        &[CleanupStep::LeaveForward {
            target_group_arn: "x".into(),
        }],
    );
    if let Some(t) = c.template.as_mut() {
        t.other_users = vec!["api-asg".into()];
    }
    if let Some(g) = c.group.as_mut() {
        g.protected = true;
    }
    if let Some(t) = c.legacy.as_mut() {
        t.protected = true;
    }
    let p = &plan_cleanup(std::slice::from_ref(&c), 10)[0];
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(
        p.items.iter().all(|i| i.state == ItemState::Skipped),
        "{p:?}"
    );
    assert!(p.items[0].message.contains("api-asg"));
    // A template another group uses does not hold the group's deletion.
    assert!(!c.template_first());
}

#[test]
fn a_target_group_another_listener_uses_is_not_deleted() {
    let mut c = apply(
        input(&[CleanupItem::TargetGroup]),
        &[CleanupStep::LeaveForward {
            target_group_arn: "x".into(),
        }],
    );
    if let Some(t) = c.legacy.as_mut() {
        t.references = 1;
    }
    let p = &plan_cleanup(&[c], 10)[0];
    assert!(p.steps.is_empty());
    assert_eq!(p.items[0].state, ItemState::Waiting);
}

#[test]
fn report_only_decides_and_makes_no_call() {
    let mut c = input(&ALL);
    c.report_only = true;
    let p = &plan_cleanup(&[c], 10)[0];
    assert!(p.steps.is_empty());
    assert!(!p.left_forward);
    assert!(p.items.iter().any(|i| i.message.contains("report only")));
}

#[test]
fn items_parse_as_the_manifest_spells_them() {
    for i in CleanupItem::ALL {
        assert_eq!(CleanupItem::parse(i.as_str()), Some(i));
    }
    assert_eq!(CleanupItem::parse("securityGroup"), None);
    assert!(!CleanupItem::TargetGroup.needs_group());
}
