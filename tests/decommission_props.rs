//! Property test of the decommission planner over many generated fleets: no instance
//! outside the rules of DESIGN §5 is ever deregistered, stopped or terminated.
//!
//! The oracle below restates the rules from the design, independently of the
//! planner's code: a wrong planner and a wrong oracle would have to agree to pass.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use ecsync::core::decommission::{
    ASG_TAG, CleanupGroup, CleanupInput, CleanupItem, CleanupStep, CleanupTemplate,
    DEFAULT_DEREGISTRATION_DELAY, DecommissionAction, FleetInput, GroupInput, GroupInstance,
    GroupPlan, GroupStep, InstanceInput, InstancePlan, InstanceState, LegacyTargetGroup,
    MigrationInput, PRUNE_GRACE, Protection, Registration, Step, TargetGroupInput, TargetState,
    plan_cleanup, plan_decommission, plan_groups,
};
use ecsync::core::decommission::{ForeignMigration, hold_for_other_shards};
use ecsync::core::model::ServiceKey;
use proptest::prelude::*;

const NOW: u64 = 10_000;
const TGS: [&str; 4] = ["legacy-a", "legacy-b", "ecs-managed", "foreign"];
const APPS: [&str; 3] = ["a", "b", "c"];
/// Auto Scaling groups: the last one no migration ever names.
const GROUPS: [&str; 3] = ["asg-a", "asg-b", "asg-z"];

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000 + secs)
}

fn arn(name: &str) -> String {
    format!("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/{name}/1")
}

fn svc(name: &str) -> ServiceKey {
    ServiceKey {
        cluster: "prod".into(),
        name: name.into(),
    }
}

fn clock_tag(phase: &str, at: u64) -> String {
    format!("{phase}@{}", humantime::format_rfc3339_seconds(t(at)))
}

fn migration() -> impl Strategy<Value = MigrationInput> {
    (
        0..APPS.len(),
        proptest::option::of(0..2usize),
        proptest::option::of((any::<bool>(), 0..3000u64)),
        proptest::option::of(0..NOW),
        any::<bool>(),
        0..TGS.len(),
        proptest::option::of(0..2usize),
    )
        .prop_map(
            |(app, tier, decom, completed, report_only, legacy, group)| {
                let mut selector = BTreeMap::from([("app".to_string(), APPS[app].to_string())]);
                if let Some(tier) = tier {
                    selector.insert("tier".into(), tier.to_string());
                }
                MigrationInput {
                    service: svc(APPS[app]),
                    selector,
                    auto_scaling_group: group.map(|g| GROUPS[g].to_string()),
                    legacy_target_group: Some(arn(TGS[legacy])),
                    decommission: decom.map(|(terminate, after)| {
                        (
                            if terminate {
                                DecommissionAction::Terminate
                            } else {
                                DecommissionAction::Stop
                            },
                            Duration::from_secs(after),
                        )
                    }),
                    completed_since: completed.map(t),
                    report_only,
                }
            },
        )
}

fn instance(n: usize) -> impl Strategy<Value = InstanceInput> {
    let state = prop_oneof![
        4 => Just("running"),
        2 => Just("stopped"),
        1 => Just("pending"),
        1 => Just("stopping"),
        1 => Just("shutting-down"),
        1 => Just("terminated"),
    ];
    let clock = prop_oneof![
        3 => Just(None),
        2 => (0..NOW + 100).prop_map(|at| Some(clock_tag("pending", at))),
        1 => (0..NOW).prop_map(|at| Some(clock_tag("stopped", at))),
        1 => (0..NOW).prop_map(|at| Some(clock_tag("terminating", at))),
        1 => Just(Some("garbage".to_string())),
    ];
    let registration = (
        0..TGS.len(),
        prop_oneof![Just("healthy"), Just("draining"), Just("unused")],
    );
    (
        state,
        proptest::option::of(0..APPS.len() + 1),
        proptest::option::of(0..2usize),
        clock,
        proptest::collection::vec(any::<bool>(), 6),
        proptest::option::of((any::<bool>(), any::<bool>())),
        proptest::collection::vec(registration, 0..3),
        proptest::option::of(0..4usize),
    )
        .prop_map(
            move |(state, app, tier, clock, flags, protection, regs, service)| {
                let mut tags = BTreeMap::new();
                if let Some(app) = app {
                    // APPS.len() is an app no migration selects.
                    tags.insert("app".into(), APPS.get(app).unwrap_or(&"z").to_string());
                }
                if let Some(tier) = tier {
                    tags.insert("tier".into(), tier.to_string());
                }
                if let Some(c) = clock {
                    tags.insert("ecsync.io/decommission".into(), c);
                }
                if flags[0] {
                    tags.insert("ecsync.io/protect".into(), "true".into());
                }
                if flags[1] {
                    tags.insert(ASG_TAG.into(), "asg".into());
                }
                if flags[2] {
                    tags.insert(
                        "ecsync.io/managed-by".into(),
                        if flags[3] { "ecsync" } else { "other" }.into(),
                    );
                }
                if let Some(s) = service {
                    tags.insert(
                        "ecsync.io/service".into(),
                        format!("prod/{}", ["a", "gone", "b", "x"][s]),
                    );
                }
                if flags[4] {
                    tags.insert(
                        "ecsync.io/decommission-left".into(),
                        "legacy-a:80,foreign:80".into(),
                    );
                }
                if flags[5] {
                    tags.insert("ecsync.io/decommission-for".into(), "prod/a".into());
                }
                let mut seen = BTreeSet::new();
                InstanceInput {
                    id: format!("i-{n:02}"),
                    state: InstanceState::parse(state).expect("an EC2 state"),
                    tags,
                    protection: protection
                        .map(|(termination, stop)| Protection { termination, stop }),
                    registrations: regs
                        .into_iter()
                        .filter(|(tg, _)| seen.insert(*tg))
                        .map(|(tg, st)| Registration {
                            target_group_arn: arn(TGS[tg]),
                            port: Some(80),
                            state: TargetState::parse(st),
                        })
                        .collect(),
                }
            },
        )
}

fn group(n: usize) -> impl Strategy<Value = GroupInput> {
    let clock = prop_oneof![
        3 => Just(None),
        2 => (0..NOW + 100).prop_map(|at| Some(clock_tag("pending", at))),
        1 => (0..NOW).prop_map(|at| Some(clock_tag("stopped", at))),
        1 => Just(Some("garbage".to_string())),
    ];
    (
        clock,
        proptest::collection::vec(any::<bool>(), 6),
        (0..3i32, 0..3i32),
        proptest::collection::vec(any::<bool>(), 0..3),
        proptest::collection::btree_set(0..TGS.len(), 0..3),
        prop_oneof![3 => Just(Some(Vec::new())), 1 => Just(Some(vec!["hook".to_string()])), 1 => Just(None)],
        proptest::collection::vec((0..TGS.len(), any::<bool>()), 0..3),
        proptest::collection::btree_set(prop_oneof![Just("Launch"), Just("AZRebalance")], 0..2),
    )
        .prop_map(
            move |(clock, flags, (min, desired), instances, tgs, hooks, regs, suspended)| {
                let mut tags = BTreeMap::new();
                if let Some(c) = clock {
                    tags.insert("ecsync.io/decommission".to_string(), c);
                }
                if flags[0] {
                    tags.insert("ecsync.io/protect".into(), "true".into());
                }
                if flags[1] {
                    tags.insert(
                        "ecsync.io/decommission-by".into(),
                        if flags[2] { "ecsync" } else { "other" }.into(),
                    );
                }
                if flags[3] {
                    tags.insert(
                        "ecsync.io/decommission-left".into(),
                        "legacy-a,foreign".into(),
                    );
                    tags.insert(
                        "ecsync.io/decommission-suspended".into(),
                        "Launch,HealthCheck".into(),
                    );
                }
                GroupInput {
                    name: GROUPS[n].to_string(),
                    tags,
                    min_size: min,
                    desired_capacity: desired,
                    suspended: suspended.into_iter().map(String::from).collect(),
                    target_group_arns: tgs.into_iter().map(|i| arn(TGS[i])).collect(),
                    load_balancer_names: if flags[4] { vec!["classic".into()] } else { Vec::new() },
                    instances: instances
                        .iter()
                        .enumerate()
                        .map(|(i, protected)| GroupInstance {
                            id: format!("i-{n}{i}"),
                            protected_from_scale_in: *protected,
                        })
                        .collect(),
                    terminating_hooks: hooks,
                    registrations: regs
                        .into_iter()
                        .map(|(tg, draining)| Registration {
                            target_group_arn: arn(TGS[tg]),
                            port: Some(80),
                            state: if draining {
                                TargetState::Draining
                            } else {
                                TargetState::Healthy
                            },
                        })
                        .collect(),
                    deleting: flags[5],
                    template_first: false,
                }
            },
        )
}

fn fleet() -> impl Strategy<Value = FleetInput> {
    (
        proptest::collection::vec(migration(), 0..4),
        (0..12usize).prop_flat_map(|n| (0..n).map(instance).collect::<Vec<_>>()),
        proptest::collection::vec((any::<bool>(), proptest::option::of(0..600u64)), TGS.len()),
        0..4usize,
        any::<bool>(),
        any::<bool>(),
        proptest::collection::btree_set(prop_oneof![Just("a"), Just("b"), Just("gone")], 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(migrations, instances, groups, cap, prune, incomplete, held, declare_more)| {
                let mut declared: BTreeSet<ServiceKey> =
                    migrations.iter().map(|m| m.service.clone()).collect();
                if declare_more {
                    declared.insert(svc("x"));
                }
                let held: BTreeSet<ServiceKey> = held.into_iter().map(svc).collect();
                declared.extend(held.iter().cloned());
                FleetInput {
                    controller_id: "ecsync".into(),
                    now: t(NOW),
                    max_per_pass: cap,
                    prune,
                    declared,
                    held,
                    set_incomplete: incomplete,
                    migrations,
                    target_groups: TGS
                        .iter()
                        .zip(groups)
                        .map(|(name, (managed, delay))| {
                            (
                                arn(name),
                                TargetGroupInput {
                                    arn: arn(name),
                                    name: name.to_string(),
                                    managed,
                                    deregistration_delay: delay.map(Duration::from_secs),
                                },
                            )
                        })
                        .collect(),
                    instances,
                    groups: Vec::new(),
                }
            },
        )
}

/// A fleet with Auto Scaling groups in the mix.
fn fleet_with_groups() -> impl Strategy<Value = FleetInput> {
    (
        fleet(),
        proptest::collection::vec(any::<bool>(), GROUPS.len()),
    )
        .prop_flat_map(|(f, present)| {
            let groups: Vec<_> = present
                .iter()
                .enumerate()
                .filter(|(_, p)| **p)
                .map(|(i, _)| group(i))
                .collect();
            (Just(f), groups).prop_map(|(mut f, groups)| {
                f.groups = groups;
                f
            })
        })
}

/// DESIGN §5 for a group: every migration naming it is complete, has a
/// decommission block and is not report-only; and at least one names it.
fn group_eligible(f: &FleetInput, g: &GroupInput) -> Option<(Duration, bool, BTreeSet<String>)> {
    let naming: Vec<&MigrationInput> = f
        .migrations
        .iter()
        .filter(|m| m.auto_scaling_group.as_deref() == Some(g.name.as_str()))
        .collect();
    if naming.is_empty() {
        return None;
    }
    let mut after = Duration::ZERO;
    let mut terminate = true;
    let mut legacy = BTreeSet::new();
    for m in naming {
        m.completed_since.filter(|c| *c <= f.now)?;
        let (action, a) = m.decommission?;
        if m.report_only {
            return None;
        }
        after = after.max(a);
        terminate &= action == DecommissionAction::Terminate;
        legacy.extend(m.legacy_target_group.iter().cloned());
    }
    Some((after, terminate, legacy))
}

fn group_destructive(p: &GroupPlan) -> bool {
    p.steps.iter().any(|s| {
        matches!(
            s,
            GroupStep::Tag { .. }
                | GroupStep::Suspend { .. }
                | GroupStep::Detach { .. }
                | GroupStep::ScaleToZero
                | GroupStep::Delete
        )
    })
}

/// DESIGN §5, restated: the migrations that may decommission `inst`, or `None`
/// when it may not be (before protection and registration rules).
struct Eligible {
    after: Duration,
    terminate_allowed: bool,
    managed_groups: BTreeSet<String>,
}

fn eligible(f: &FleetInput, inst: &InstanceInput) -> Option<Eligible> {
    let selecting: Vec<&MigrationInput> = f
        .migrations
        .iter()
        .filter(|m| {
            !m.selector.is_empty() && m.selector.iter().all(|(k, v)| inst.tags.get(k) == Some(v))
        })
        .collect();
    let managed_by_tag: BTreeSet<String> = f
        .target_groups
        .values()
        .filter(|g| g.managed)
        .map(|g| g.arn.clone())
        .collect();
    if selecting.is_empty() {
        let service = inst.tags.get("ecsync.io/service")?;
        let (cluster, name) = service.split_once('/')?;
        let key = ServiceKey {
            cluster: cluster.into(),
            name: name.into(),
        };
        let owned = inst.tags.get("ecsync.io/managed-by").map(String::as_str) == Some("ecsync");
        let ok = owned
            && f.prune
            && !f.set_incomplete
            && !f.declared.is_empty()
            && !f.declared.contains(&key)
            && !f.held.contains(&key);
        return ok.then_some(Eligible {
            after: PRUNE_GRACE,
            terminate_allowed: false,
            managed_groups: managed_by_tag,
        });
    }
    let mut e = Eligible {
        after: Duration::ZERO,
        terminate_allowed: true,
        managed_groups: managed_by_tag,
    };
    for m in selecting {
        m.completed_since.filter(|c| *c <= f.now)?;
        let (action, after) = m.decommission?;
        if m.report_only {
            // Nothing of a report-only service's is ever carried out.
            return None;
        }
        e.after = e.after.max(after);
        e.terminate_allowed &= action == DecommissionAction::Terminate;
        e.managed_groups
            .extend(m.legacy_target_group.iter().cloned());
    }
    Some(e)
}

fn destructive(p: &InstancePlan) -> bool {
    p.steps.iter().any(|s| {
        matches!(
            s,
            Step::Deregister { .. } | Step::Stop | Step::Terminate | Step::Tag { .. }
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nothing_outside_the_rules_is_ever_touched(f in fleet()) {
        let plans = plan_decommission(&f);
        let by_id: BTreeMap<&str, &InstanceInput> =
            f.instances.iter().map(|i| (i.id.as_str(), i)).collect();
        let mut acted = 0;
        for p in plans.iter().filter(|p| !p.report_only) {
            let inst = by_id[p.instance_id.as_str()];
            prop_assert!(inst.state.as_str() != "terminated" && inst.state.as_str() != "shutting-down", "{p:?}");
            let protected = inst.tags.get("ecsync.io/protect").map(String::as_str) == Some("true");
            if protected {
                prop_assert!(p.steps.is_empty(), "protected instance touched: {p:?}");
            }
            if !destructive(p) {
                // Release: only what ecsync tagged, only back where it recorded.
                for s in &p.steps {
                    match s {
                        Step::Register { target_group_arn, .. } => {
                            let left = inst.tags.get("ecsync.io/decommission-left").cloned().unwrap_or_default();
                            let name = f.target_groups[target_group_arn].name.clone();
                            prop_assert!(left.split(',').any(|e| e.starts_with(&format!("{name}:"))), "{p:?}");
                        }
                        Step::Untag { keys } => {
                            prop_assert!(keys.iter().all(|k| k.starts_with("ecsync.io/decommission")), "{p:?}");
                        }
                        _ => {}
                    }
                    prop_assert!(inst.tags.contains_key("ecsync.io/decommission"), "{p:?}");
                }
                continue;
            }
            let e = eligible(&f, inst);
            prop_assert!(e.is_some(), "not eligible under §5 but touched: {p:?}\n{inst:?}");
            let e = e.unwrap();
            prop_assert!(!protected && !inst.tags.contains_key(ASG_TAG), "{p:?}");
            prop_assert!(
                inst.protection.is_some_and(|pr| !pr.termination && !pr.stop),
                "protection on or unknown: {p:?}"
            );
            for r in &inst.registrations {
                prop_assert!(e.managed_groups.contains(&r.target_group_arn), "in an unmanaged group: {p:?}");
            }
            for s in &p.steps {
                if let Step::Deregister { target_group_arn, .. } = s {
                    prop_assert!(e.managed_groups.contains(target_group_arn), "{p:?}");
                    prop_assert!(inst.registrations.iter().any(|r| &r.target_group_arn == target_group_arn), "{p:?}");
                }
            }
            if let Some(action) = p.final_action() {
                acted += 1;
                prop_assert!(action == DecommissionAction::Stop || e.terminate_allowed, "{p:?}");
                let clock = inst.tags.get("ecsync.io/decommission").and_then(|c| {
                    let (phase, at) = c.split_once('@')?;
                    Some((phase.to_string(), humantime::parse_rfc3339(at).ok()?))
                });
                prop_assert!(clock.is_some(), "acted in the pass that started the clock: {p:?}");
                let (phase, since) = clock.unwrap();
                if phase == "pending" {
                    prop_assert!(since + e.after <= f.now, "before the grace period: {p:?}");
                    for r in &inst.registrations {
                        prop_assert!(r.state.as_str() == "draining", "still registered: {p:?}");
                        let delay = f.target_groups[&r.target_group_arn]
                            .deregistration_delay
                            .unwrap_or(DEFAULT_DEREGISTRATION_DELAY);
                        prop_assert!(since + delay <= f.now, "not drained: {p:?}");
                    }
                }
            }
        }
        prop_assert!(acted <= f.max_per_pass, "{acted} > cap {}", f.max_per_pass);
        // Plans name each instance at most once.
        let ids: BTreeSet<&str> = plans.iter().map(|p| p.instance_id.as_str()).collect();
        prop_assert_eq!(ids.len(), plans.len());
    }

    #[test]
    fn no_group_outside_the_rules_is_ever_touched(f in fleet_with_groups()) {
        let instances = plan_decommission(&f);
        let used = instances.iter().filter(|p| p.final_action().is_some()).count();
        let plans = plan_groups(&f, f.max_per_pass.saturating_sub(used));
        let by_name: BTreeMap<&str, &GroupInput> =
            f.groups.iter().map(|g| (g.name.as_str(), g)).collect();
        // Instances of a group a migration names are never touched one by one.
        for p in &instances {
            let inst = f.instances.iter().find(|i| i.id == p.instance_id).unwrap();
            if let Some(g) = inst.tags.get(ASG_TAG) && by_name.contains_key(g.as_str()) {
                prop_assert!(p.final_action().is_none(), "{p:?}");
            }
        }
        let mut acted = used;
        for p in plans.iter().filter(|p| !p.report_only) {
            let g = by_name[p.group.as_str()];
            prop_assert!(g.tags.get("ecsync.io/decommission-by").is_none_or(|b| b == "ecsync"), "{p:?}");
            let protected = g.tags.get("ecsync.io/protect").map(String::as_str) == Some("true");
            if protected {
                prop_assert!(p.steps.is_empty(), "protected group touched: {p:?}");
            }
            if !group_destructive(p) {
                // Release: only what ecsync recorded, only on groups it tagged.
                for s in &p.steps {
                    prop_assert!(g.tags.contains_key("ecsync.io/decommission"), "{p:?}");
                    match s {
                        GroupStep::Resume { processes } => {
                            let rec = g.tags.get("ecsync.io/decommission-suspended").cloned().unwrap_or_default();
                            prop_assert!(processes.iter().all(|x| rec.split(',').any(|r| r == x)), "{p:?}");
                        }
                        GroupStep::Attach { target_group_arn } => {
                            let rec = g.tags.get("ecsync.io/decommission-left").cloned().unwrap_or_default();
                            let name = &f.target_groups[target_group_arn].name;
                            prop_assert!(rec.split(',').any(|r| r == name), "{p:?}");
                        }
                        GroupStep::Untag { keys } => {
                            prop_assert!(keys.iter().all(|k| k.starts_with("ecsync.io/decommission")), "{p:?}");
                        }
                        _ => prop_assert!(false, "{p:?}"),
                    }
                }
                continue;
            }
            let e = group_eligible(&f, g);
            prop_assert!(e.is_some(), "not eligible under §5 but touched: {p:?}\n{g:?}");
            let (after, terminate, legacy) = e.unwrap();
            prop_assert!(!protected, "{p:?}");
            prop_assert!(g.instances.iter().all(|i| !i.protected_from_scale_in), "scale-in protection: {p:?}");
            prop_assert!(g.terminating_hooks.as_ref().is_some_and(Vec::is_empty), "hooks: {p:?}");
            prop_assert!(g.load_balancer_names.is_empty(), "{p:?}");
            prop_assert!(!g.deleting, "{p:?}");
            for arn in &g.target_group_arns {
                prop_assert!(legacy.contains(arn), "serves a group the migration does not name: {p:?}");
            }
            for s in &p.steps {
                match s {
                    GroupStep::ScaleToZero | GroupStep::Delete => {
                        acted += 1;
                        let clock = g.tags.get("ecsync.io/decommission").and_then(|c| {
                            let (_, at) = c.split_once('@')?;
                            humantime::parse_rfc3339(at).ok()
                        });
                        prop_assert!(clock.is_some(), "acted in the pass that started the clock: {p:?}");
                        prop_assert!(clock.unwrap() + after <= f.now, "before the grace period: {p:?}");
                        prop_assert!(g.registrations.is_empty() && g.target_group_arns.is_empty(), "not drained: {p:?}");
                        if *s == GroupStep::Delete {
                            prop_assert!(terminate, "{p:?}");
                            prop_assert!(g.instances.is_empty() && g.min_size == 0 && g.desired_capacity == 0, "{p:?}");
                        }
                    }
                    GroupStep::Tag { tags } => {
                        prop_assert!(tags.keys().all(|k| k.starts_with("ecsync.io/decommission")), "{p:?}");
                    }
                    _ => {}
                }
            }
        }
        prop_assert!(acted <= f.max_per_pass, "{acted} > cap {}", f.max_per_pass);
        prop_assert_eq!(plan_groups(&f, f.max_per_pass), plan_groups(&f, f.max_per_pass));
    }

    /// The planner is a function of its input: the same fleet, the same decisions.
    #[test]
    fn planning_is_deterministic(f in fleet()) {
        prop_assert_eq!(plan_decommission(&f), plan_decommission(&f));
    }

    /// Cleanup (DESIGN §3, §5): only what the migration names is ever
    /// deleted (its legacy target group, its group, that group's template),
    /// never while the fleet runs, never something protected, in use or still
    /// referenced, never in report-only mode, and never beyond the cap.
    #[test]
    fn cleanup_deletes_nothing_outside_the_rules(
        items in proptest::collection::btree_set(
            prop_oneof![
                Just(CleanupItem::TargetGroup),
                Just(CleanupItem::AutoScalingGroup),
                Just(CleanupItem::LaunchTemplate),
            ],
            0..=3,
        ),
        running in any::<bool>(),
        report_only in any::<bool>(),
        in_forward in prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
        legacy in proptest::option::of((any::<bool>(), 0usize..3, 0usize..3)),
        group in proptest::option::of((any::<bool>(), 0usize..3, 0i32..3, any::<bool>())),
        template in proptest::option::of((any::<bool>(), any::<bool>())),
        budget in 0usize..4,
    ) {
        let input = CleanupInput {
            service: svc("a"),
            items,
            declared_target_group: "legacy-a".into(),
            declared_group: Some("asg-a".into()),
            report_only,
            fleet_remaining: running.then(|| "2 instance(s)".to_string()),
            in_forward,
            legacy: legacy.map(|(protected, references, registered)| LegacyTargetGroup {
                arn: arn("legacy-a"),
                name: "legacy-a".into(),
                protected,
                references,
                registered,
            }),
            group: group.map(|(protected, instances, desired_capacity, deleting)| CleanupGroup {
                name: "asg-a".into(),
                protected,
                instances,
                desired_capacity,
                deleting,
            }),
            template: template.map(|(protected, shared)| CleanupTemplate {
                id: "lt-1".into(),
                name: "web-lt".into(),
                protected,
                other_users: if shared { vec!["asg-z".into()] } else { Vec::new() },
            }),
        };
        let plan = plan_cleanup(std::slice::from_ref(&input), budget).remove(0);
        let deletions = plan.steps.iter().filter(|s| s.item().is_some()).count();
        prop_assert!(deletions <= budget, "{plan:?}");
        if running || report_only || input.in_forward.is_none() {
            prop_assert!(plan.steps.is_empty(), "{plan:?}");
        }
        for step in &plan.steps {
            if let Some(item) = step.item() {
                prop_assert!(input.items.contains(&item), "{item:?} not listed: {plan:?}");
            }
            match step {
                CleanupStep::LeaveForward { target_group_arn } => {
                    let l = input.legacy.as_ref().expect("a legacy group");
                    prop_assert_eq!(target_group_arn, &l.arn);
                    prop_assert_eq!(l.registered, 0);
                    prop_assert_eq!(input.in_forward, Some(true));
                }
                CleanupStep::DeleteTargetGroup { arn: a, .. } => {
                    let l = input.legacy.as_ref().expect("a legacy group");
                    prop_assert_eq!(a, &l.arn);
                    prop_assert!(!l.protected && l.references == 0 && l.registered == 0, "{plan:?}");
                    prop_assert_eq!(input.in_forward, Some(false));
                }
                CleanupStep::DeleteGroup { name } => {
                    let g = input.group.as_ref().expect("a group");
                    prop_assert_eq!(name, &g.name);
                    prop_assert!(!g.protected && !g.deleting && g.instances == 0 && g.desired_capacity == 0, "{plan:?}");
                    // Never before its template, when cleanup deletes that.
                    prop_assert!(!input.template_first(), "{plan:?}");
                }
                CleanupStep::DeleteLaunchTemplate { id, .. } => {
                    let t = input.template.as_ref().expect("a template");
                    prop_assert_eq!(id, &t.id);
                    prop_assert!(!t.protected && t.other_users.is_empty(), "{plan:?}");
                }
            }
        }
    }

    /// Sharding: split a fleet's migrations between this shard and another.
    /// Whatever a migration of the other shard selects or names (an instance
    /// by its tags or its group, an Auto Scaling group) gets no step at all
    /// here, not even a release; everything else is planned as before.
    #[test]
    fn another_shards_fleet_is_never_touched(
        f in fleet_with_groups(),
        theirs in proptest::collection::vec(any::<bool>(), 4),
    ) {
        let mut mine = f.clone();
        mine.migrations.clear();
        let mut foreign = Vec::new();
        for (i, m) in f.migrations.iter().enumerate() {
            if theirs[i % theirs.len()] {
                foreign.push(ForeignMigration {
                    service: ServiceKey { cluster: "dev".into(), name: m.service.name.clone() },
                    shard: 1,
                    selector: m.selector.clone(),
                    auto_scaling_group: m.auto_scaling_group.clone(),
                });
            } else {
                mine.migrations.push(m.clone());
            }
        }
        let before: BTreeSet<String> = mine.instances.iter().map(|i| i.id.clone()).collect();
        let held = hold_for_other_shards(&mut mine, &foreign, &|c: &str| (c == "dev").then_some(1));
        let after: BTreeSet<String> = mine.instances.iter().map(|i| i.id.clone()).collect();
        let held_ids: BTreeSet<String> = held.iter().map(|h| h.id.clone()).collect();
        for i in &after {
            prop_assert!(!held_ids.contains(i), "{i} is both held and planned");
        }
        let selects = |fm: &ForeignMigration, tags: &BTreeMap<String, String>| {
            (!fm.selector.is_empty() && fm.selector.iter().all(|(k, v)| tags.get(k) == Some(v)))
                || tags.get(ASG_TAG).is_some_and(|g| fm.auto_scaling_group.as_ref() == Some(g))
        };
        let theirs_by_tags: BTreeSet<String> = f
            .instances
            .iter()
            .filter(|i| !matches!(i.state, InstanceState::ShuttingDown | InstanceState::Terminated))
            .filter(|i| foreign.iter().any(|fm| selects(fm, &i.tags)))
            .map(|i| i.id.clone())
            .collect();
        prop_assert!(theirs_by_tags.is_subset(&held_ids), "{theirs_by_tags:?} not all held: {held:?}");
        prop_assert!(before.difference(&after).all(|i| held_ids.contains(i)));
        for p in plan_decommission(&mine) {
            prop_assert!(!theirs_by_tags.contains(&p.instance_id), "{p:?}");
        }
        let their_groups: BTreeSet<&str> = foreign
            .iter()
            .filter_map(|fm| fm.auto_scaling_group.as_deref())
            .collect();
        for p in plan_groups(&mine, mine.max_per_pass) {
            prop_assert!(!their_groups.contains(p.group.as_str()), "{p:?}");
        }
    }
}
