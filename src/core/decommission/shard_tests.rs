use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::*;
use crate::core::decommission::{
    DecommissionAction, GroupInput, InstanceInput, InstanceState, OrphanState, Protection,
    plan_decommission, plan_groups,
};
use crate::core::tags::{Clock, Phase};

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000 + secs)
}

fn key(cluster: &str, name: &str) -> ServiceKey {
    ServiceKey {
        cluster: cluster.into(),
        name: name.into(),
    }
}

/// prod is this shard's (0); dev is shard 1's.
fn other_owner(cluster: &str) -> Option<u32> {
    (cluster == "dev").then_some(1)
}

fn own(app: &str, group: Option<&str>) -> MigrationInput {
    MigrationInput {
        service: key("prod", "web"),
        selector: BTreeMap::from([("app".to_string(), app.to_string())]),
        auto_scaling_group: group.map(String::from),
        legacy_target_group: None,
        decommission: Some((DecommissionAction::Stop, Duration::from_secs(60))),
        completed_since: Some(t(0)),
        report_only: false,
    }
}

fn foreign(app: &str, group: Option<&str>) -> ForeignMigration {
    ForeignMigration {
        service: key("dev", "api"),
        shard: 1,
        selector: BTreeMap::from([("app".to_string(), app.to_string())]),
        auto_scaling_group: group.map(String::from),
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

fn group(name: &str) -> GroupInput {
    GroupInput {
        name: name.into(),
        tags: BTreeMap::new(),
        min_size: 1,
        desired_capacity: 1,
        suspended: BTreeSet::new(),
        target_group_arns: BTreeSet::new(),
        load_balancer_names: Vec::new(),
        instances: Vec::new(),
        terminating_hooks: Some(Vec::new()),
        registrations: Vec::new(),
        deleting: false,
        template_first: false,
    }
}

fn fleet(migrations: Vec<MigrationInput>, instances: Vec<InstanceInput>) -> FleetInput {
    FleetInput {
        controller_id: "ecsync".into(),
        now: t(3600),
        max_per_pass: 10,
        prune: true,
        declared: BTreeSet::from([key("prod", "web")]),
        held: BTreeSet::new(),
        set_incomplete: false,
        migrations,
        target_groups: BTreeMap::new(),
        instances,
        groups: Vec::new(),
    }
}

fn pending() -> String {
    Clock {
        phase: Phase::Pending,
        since: t(0),
    }
    .format()
}

#[test]
fn an_instance_another_shard_is_draining_is_held_not_released() {
    let clocked = instance("i-1", &[("app", "api"), (tags::DECOMMISSION, &pending())]);
    // Without the rule, this shard sees a clock that no migration of its own
    // explains, and gives the instance back while shard 1 drains it.
    let unsharded = fleet(vec![own("web", None)], vec![clocked.clone()]);
    let plans = plan_decommission(&unsharded);
    assert_eq!(plans.len(), 1);
    assert!(
        plans[0].steps.iter().any(|s| s.name() == "untag"),
        "{plans:?}"
    );

    let mut f = fleet(vec![own("web", None)], vec![clocked]);
    let held = hold_for_other_shards(&mut f, &[foreign("api", None)], &other_owner);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].kind, HeldKind::Instance);
    assert_eq!(held[0].id, "i-1");
    assert_eq!(held[0].shard, 1);
    assert_eq!(held[0].service, "dev/api");
    assert!(held[0].selected_here.is_empty());
    assert!(held[0].reason.contains("shard 1"), "{}", held[0].reason);
    assert!(plan_decommission(&f).is_empty());
}

#[test]
fn an_instance_both_shards_select_is_held_and_holds_this_shards_cleanup() {
    let shared = instance("i-2", &[("app", "shared")]);
    let mut f = fleet(vec![own("shared", None)], vec![shared.clone()]);
    // This shard's migration is complete: alone, it would start the clock.
    assert_eq!(plan_decommission(&f).len(), 1);
    let held = hold_for_other_shards(&mut f, &[foreign("shared", None)], &other_owner);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].selected_here, BTreeSet::from([key("prod", "web")]));
    assert!(plan_decommission(&f).is_empty());
    assert_eq!(
        held_fleet(&held, &key("prod", "web")).as_deref(),
        Some("instance i-2 is held by shard 1")
    );
    assert_eq!(held_fleet(&held, &key("prod", "other")), None);
}

#[test]
fn only_this_shards_fleet_is_left_to_the_usual_rules() {
    let mine = instance("i-3", &[("app", "web")]);
    let gone = InstanceInput {
        state: InstanceState::Terminated,
        ..instance("i-4", &[("app", "api")])
    };
    let mut f = fleet(vec![own("web", None)], vec![mine, gone]);
    let held = hold_for_other_shards(&mut f, &[foreign("api", None)], &other_owner);
    assert!(held.is_empty(), "{held:?}");
    assert_eq!(f.instances.len(), 2);
    let plans = plan_decommission(&f);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].instance_id, "i-3");
    assert_eq!(plans[0].state, OrphanState::Pending);
}

#[test]
fn an_instance_of_another_shards_service_is_that_shards_to_prune() {
    let owned = |id: &str, service: &str| {
        instance(
            id,
            &[
                (tags::MANAGED_BY, "ecsync"),
                (tags::INSTANCE_SERVICE, service),
            ],
        )
    };
    let mut f = fleet(
        Vec::new(),
        vec![owned("i-5", "dev/gone"), owned("i-6", "prod/gone")],
    );
    let held = hold_for_other_shards(&mut f, &[], &other_owner);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].id, "i-5");
    assert_eq!(held[0].service, "dev/gone");
    assert!(
        held[0].reason.contains("its prune decides"),
        "{}",
        held[0].reason
    );
    let plans = plan_decommission(&f);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].instance_id, "i-6");
}

#[test]
fn a_group_another_shard_names_is_held_with_its_instances() {
    let member = instance("i-7", &[(ASG_TAG, "legacy-asg")]);
    let mut f = fleet(vec![own("none", Some("legacy-asg"))], vec![member]);
    f.groups.push(group("legacy-asg"));
    f.groups.push(group("mine-asg"));
    assert!(
        plan_groups(&f, 10)
            .iter()
            .any(|p| p.group == "legacy-asg" && !p.steps.is_empty())
    );
    let held = hold_for_other_shards(
        &mut f,
        &[foreign("nothing", Some("legacy-asg"))],
        &other_owner,
    );
    let ids: Vec<(HeldKind, &str)> = held.iter().map(|h| (h.kind, h.id.as_str())).collect();
    assert_eq!(
        ids,
        [
            (HeldKind::Instance, "i-7"),
            (HeldKind::AutoScalingGroup, "legacy-asg")
        ]
    );
    let g = &held[1];
    assert_eq!(g.selected_here, BTreeSet::from([key("prod", "web")]));
    assert_eq!(
        held_fleet(&held, &key("prod", "web")).as_deref(),
        Some("Auto Scaling group legacy-asg is held by shard 1")
    );
    let names: Vec<&str> = f.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["mine-asg"]);
    assert!(plan_groups(&f, 10).iter().all(|p| p.group != "legacy-asg"));
}
