use super::*;
use crate::core::manifest::load;
use crate::core::model::tag_list;
use crate::core::normalize::normalize_service;
use crate::core::state::{Mode, RolloutState, ServiceStatus};

const WEB: &str = r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata: {name: web}
spec:
  cluster: prod
  desiredCount: 2
  launchType: FARGATE
  taskDefinition:
    family: web
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    containerDefinitions:
      - name: web
        image: nginx:1.27
        portMappings: [{containerPort: 80}]
        environment: [{name: A, value: "1"}]
  networkConfiguration:
    awsvpcConfiguration: {subnets: [subnet-a], securityGroups: [sg-1]}
  loadBalancers: [{targetGroup: web-ecs, containerName: web, containerPort: 80}]
  tags: {team: platform}
"#;

const TG_ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-ecs/abc";
const TD_ARN: &str = "arn:aws:ecs:us-east-1:1:task-definition/web:3";

fn desired() -> DesiredService {
    let set = load([("m/web.yaml", WEB)]);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    (*set.services[0]).clone()
}

/// The live service as the observer would build it when everything matches.
fn live_in_sync(d: &DesiredService) -> LiveService {
    let mut spec = resolve_target_groups(&d.spec, &tgs()).unwrap();
    spec.task_definition = TaskDefinition::default();
    // What DescribeServices echoes back, before normalisation.
    spec.platform_version = None;
    spec.deployment_configuration = None;
    spec.enable_execute_command = Some(false);
    let mut all_tags = spec.tag_map();
    all_tags.insert(tags::MANAGED_BY.into(), "ecsync".into());
    all_tags.insert(tags::SOURCE.into(), "m/web.yaml".into());
    all_tags.insert(tags::REVISION.into(), "old".into());
    all_tags.insert(tags::MANAGED_TAGS.into(), "team".into());
    spec.tags = Some(tag_list(&all_tags));
    normalize_service(&mut spec);
    // platformVersion LATEST comes back from normalisation of a FARGATE service.
    LiveService {
        key: d.key.clone(),
        arn: "arn:svc".into(),
        status: ServiceStatus::Active,
        spec,
        task_definition_arn: TD_ARN.into(),
        task_definition: LiveTaskDefinition::Hash(d.task_definition_hash.clone()),
        tags: all_tags,
        rollout: Rollout::default(),
    }
}

fn tgs() -> BTreeMap<String, String> {
    BTreeMap::from([("web-ecs".to_string(), TG_ARN.to_string())])
}

fn observed(live: Option<LiveService>) -> Observed {
    let mut o = Observed {
        target_groups: tgs(),
        ..Default::default()
    };
    if let Some(l) = live {
        o.services.insert(l.key.clone(), l);
    }
    o
}

fn ctx(report_only: bool) -> PlanContext<'static> {
    let mode = if report_only {
        Mode::Report
    } else {
        Mode::Auto
    };
    PlanContext {
        controller_id: "ecsync",
        revision: "rev2",
        mode,
        prune: None,
    }
}

/// Auto mode at revision `r`, pruning as asked.
fn pruning(prune: Option<usize>) -> PlanContext<'static> {
    PlanContext {
        controller_id: "ecsync",
        revision: "r",
        mode: Mode::Auto,
        prune,
    }
}

#[test]
fn in_sync_service_plans_nothing() {
    let d = desired();
    let plan = plan_service(&d, &observed(Some(live_in_sync(&d))), &ctx(false));
    assert_eq!(plan.drift, vec![]);
    assert_eq!(plan.actions, vec![]);
    assert!(plan.in_sync());
}

#[test]
fn missing_service_is_registered_then_created() {
    let d = desired();
    let plan = plan_service(&d, &observed(None), &ctx(false));
    assert_eq!(
        plan.actions,
        vec![
            Action::RegisterTaskDefinition {
                family: "web".into()
            },
            Action::CreateService
        ]
    );
    assert!(!plan.exists);
}

#[test]
fn desired_count_drift_updates_only_the_count() {
    let d = desired();
    let mut live = live_in_sync(&d);
    live.spec.desired_count = Some(5);
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    assert_eq!(plan.drift.len(), 1);
    assert_eq!(plan.drift[0].path, "desiredCount");
    assert_eq!(
        (plan.drift[0].desired.clone(), plan.drift[0].live.clone()),
        (2.into(), 5.into())
    );
    assert_eq!(
        plan.actions[0],
        Action::UpdateService {
            fields: [UpdateMember::DesiredCount].into()
        }
    );
    match &plan.actions[1] {
        Action::TagService { tags } => {
            assert_eq!(tags.get(tags::REVISION).map(String::as_str), Some("rev2"))
        }
        other => panic!("expected a revision tag, got {other:?}"),
    }
}

#[test]
fn omitted_desired_count_is_never_drift() {
    let text = WEB.replace("  desiredCount: 2\n", "");
    let d = load([("m/web.yaml", text.as_str())]).services[0].clone();
    let mut live = live_in_sync(&d);
    live.spec.desired_count = Some(17);
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    assert!(plan.in_sync(), "{:?}", plan.drift);
    assert!(plan.actions.is_empty());
}

#[test]
fn changed_image_diffs_by_container_name_and_registers_once() {
    let d = desired();
    let mut live = live_in_sync(&d);
    let mut td = d.spec.task_definition.clone();
    td.container_definitions[0].image = Some("nginx:1.26".into());
    live.task_definition_arn = "arn:aws:ecs:us-east-1:1:task-definition/web:4".into();
    live.task_definition = LiveTaskDefinition::Described {
        spec: Box::new(td),
        hash: "other".into(),
        unmanaged: Vec::new(),
        own_tags: None,
    };
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    let paths: Vec<&str> = plan.drift.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["taskDefinition.containerDefinitions[web].image"]
    );
    let registers = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::RegisterTaskDefinition { .. }))
        .count();
    assert_eq!(registers, 1);
    assert!(plan.actions.contains(&Action::UpdateService {
        fields: [UpdateMember::TaskDefinition].into()
    }));
}

/// A definition described (from the cache, or because the tag was another
/// build's hash) that matches is tagged once; once the tag says so, a pass
/// that describes it again changes nothing. Before, every pass tagged it.
#[test]
fn a_matching_described_definition_is_tagged_once_not_every_pass() {
    let d = desired();
    let mut live = live_in_sync(&d);
    live.task_definition_arn = "arn:aws:ecs:us-east-1:1:task-definition/web:4".into();
    live.task_definition = LiveTaskDefinition::Described {
        spec: Box::new(d.spec.task_definition.clone()),
        hash: d.task_definition_hash.clone(),
        unmanaged: Vec::new(),
        own_tags: None,
    };
    live.tags.insert(
        crate::core::tags::TASK_DEFINITION.into(),
        "web:4@another-build".into(),
    );
    let plan = plan_service(&d, &observed(Some(live.clone())), &ctx(false));
    let Some(Action::TagService { tags }) = plan.actions.last() else {
        panic!("{:?}", plan.actions);
    };
    let tag = tags[crate::core::tags::TASK_DEFINITION].clone();
    assert_eq!(tag, format!("web:4@{}", d.task_definition_hash));

    live.tags
        .insert(crate::core::tags::TASK_DEFINITION.into(), tag);
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
}

fn carrying_unmanaged(image: &str, hash: &str) -> (DesiredService, LiveService) {
    let d = desired();
    let mut live = live_in_sync(&d);
    let mut td = d.spec.task_definition.clone();
    td.container_definitions[0].image = Some(image.into());
    live.task_definition_arn = "arn:aws:ecs:us-east-1:1:task-definition/web:4".into();
    live.task_definition = LiveTaskDefinition::Described {
        spec: Box::new(td),
        hash: hash.into(),
        unmanaged: vec!["taskDefinition.containerDefinitions[web].linuxParameters".into()],
        own_tags: None,
    };
    (d, live)
}

#[test]
fn a_revision_that_would_drop_live_settings_is_not_registered() {
    let (d, live) = carrying_unmanaged("nginx:1.26", "other");
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    let error = plan.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("web:4") && error.contains("containerDefinitions[web].linuxParameters"),
        "{error}"
    );
    assert!(!plan.in_sync(), "the image drift is still shown");
}

#[test]
fn an_in_sync_service_with_unmanaged_settings_says_so_and_is_described_again() {
    let d = desired();
    let (_, live) = carrying_unmanaged(
        d.spec.task_definition.container_definitions[0]
            .image
            .as_deref()
            .unwrap_or_default(),
        &d.task_definition_hash,
    );
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    assert!(plan.error.is_none(), "{:?}", plan.error);
    assert!(
        plan.message
            .as_deref()
            .is_some_and(|m| m.contains("linuxParameters")),
        "{:?}",
        plan.message
    );
    // No task-definition tag: the next pass must describe it again, not trust a hash.
    let tagged = plan.actions.iter().any(|a| {
        matches!(a, Action::TagService { tags } if tags.contains_key(crate::core::tags::TASK_DEFINITION))
    });
    assert!(!tagged, "{:?}", plan.actions);
}

#[test]
fn immutable_field_needs_replacement_and_changes_nothing() {
    let d = desired();
    let mut live = live_in_sync(&d);
    live.spec.launch_type = Some("EC2".into());
    live.spec.platform_version = None;
    live.spec.desired_count = Some(9);
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    assert_eq!(plan.replace, vec!["launchType".to_string()]);
    assert!(plan.actions.is_empty());
    assert!(!plan.in_sync());
}

#[test]
fn user_tags_are_set_and_stale_ones_removed_but_reserved_kept() {
    let d = desired();
    let mut live = live_in_sync(&d);
    live.spec.tags = Some(tag_list(&BTreeMap::from([(
        "old".to_string(),
        "x".to_string(),
    )])));
    live.tags.insert("old".into(), "x".into());
    live.tags.insert("cost-center".into(), "42".into());
    live.tags
        .insert(tags::MANAGED_TAGS.into(), "old team".into());
    live.tags.remove("team");
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    assert!(plan.actions.contains(&Action::UntagService {
        keys: vec!["old".into()]
    }));
    let ignored: Vec<&str> = plan.ignored.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        ignored,
        ["tags.cost-center"],
        "a foreign key is neither drift nor removed"
    );
    assert!(!plan.drift.iter().any(|f| f.path == "tags.cost-center"));
    let Some(Action::TagService { tags: set }) = plan.actions.last() else {
        panic!("{:?}", plan.actions)
    };
    assert_eq!(set.get("team").map(String::as_str), Some("platform"));
    assert!(
        !set.contains_key(tags::MANAGED_BY),
        "ownership tag already correct"
    );
}

#[test]
fn unknown_target_group_is_an_error_for_that_service_only() {
    let d = desired();
    let mut o = observed(None);
    o.target_groups.clear();
    let plan = plan_service(&d, &o, &ctx(false));
    assert_eq!(
        plan.error.as_deref(),
        Some("target group \"web-ecs\" not found")
    );
    assert!(plan.actions.is_empty());
}

#[test]
fn missing_cluster_is_an_error() {
    let d = desired();
    let mut o = observed(None);
    o.missing_clusters.insert("prod".into());
    let plan = plan_service(&d, &o, &ctx(false));
    assert!(
        plan.error
            .as_deref()
            .unwrap()
            .contains("cluster \"prod\" not found")
    );
}

#[test]
fn report_mode_still_plans_but_is_marked() {
    let d = desired();
    let plan = plan_service(&d, &observed(None), &ctx(true));
    assert!(plan.report_only);
    assert!(plan.is_mutating());
}

#[test]
fn adopting_an_unowned_service_tags_it_once() {
    let d = desired();
    let mut live = live_in_sync(&d);
    live.tags.remove(tags::MANAGED_BY);
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    assert!(plan.drift.is_empty(), "ownership is not drift");
    let Some(Action::TagService { tags: set }) = plan.actions.last() else {
        panic!()
    };
    assert_eq!(
        set.get(tags::MANAGED_BY).map(String::as_str),
        Some("ecsync")
    );
}

mod prune {
    use super::*;
    use crate::core::manifest::ManifestSet;

    fn orphan(name: &str, extra: &[(&str, &str)]) -> LiveService {
        let d = desired();
        let mut live = live_in_sync(&d);
        live.key.name = name.into();
        live.tags
            .insert(tags::SOURCE.into(), format!("m/{name}.yaml"));
        for (k, v) in extra {
            live.tags.insert(k.to_string(), v.to_string());
        }
        live
    }

    fn plans(live: Vec<LiveService>, set: &ManifestSet, prune: Option<usize>) -> Vec<ServicePlan> {
        let mut o = observed(None);
        for l in live {
            o.services.insert(l.key.clone(), l);
        }
        plan_all(set, &o, &pruning(prune))
    }

    fn summary(plans: &[ServicePlan]) -> Vec<String> {
        plans
            .iter()
            .map(|p| {
                let acts: Vec<&str> = p.actions.iter().map(Action::name).collect();
                format!("{} {:?} held={}", p.key.name, acts, p.held.is_some())
            })
            .collect()
    }

    #[test]
    fn orphans_are_drift_and_pruned_up_to_the_cap() {
        let set = load([("m/web.yaml", WEB)]);
        let live = vec![
            live_in_sync(&set.services[0]),
            orphan("a", &[]),
            orphan("b", &[]),
            orphan("c", &[(tags::PROTECT, "true")]),
            orphan("d", &[(tags::PRUNE, "disabled")]),
            orphan("e", &[(tags::MANAGED_BY, "someone-else")]),
        ];
        assert_eq!(
            summary(&plans(live.clone(), &set, Some(1))),
            vec![
                "a [\"prune_service\"] held=false",
                "b [] held=false",
                "c [] held=true",
                "d [] held=true",
                "web [] held=false",
            ]
        );
        let without = plans(live, &set, None);
        let b = without.iter().find(|p| p.key.name == "b").unwrap();
        assert!(!b.in_sync() && b.actions.is_empty());
        assert!(b.message.as_deref().unwrap().contains("--prune"));
    }

    #[test]
    fn a_broken_file_holds_the_services_it_may_declare() {
        let set = load([("m/web.yaml", WEB), ("m/a.yaml", "not: [valid")]);
        let live = vec![live_in_sync(&set.services[0]), orphan("a", &[])];
        assert_eq!(
            summary(&plans(live, &set, Some(5))),
            vec!["a [] held=true", "web [] held=false"]
        );
    }

    #[test]
    fn nothing_is_pruned_while_any_manifest_is_broken() {
        // `a` moved from m/a.yaml (deleted) into m/moved.yaml, which does not parse:
        // its source tag names no broken file, yet it may still be declared.
        let set = load([("m/web.yaml", WEB), ("m/moved.yaml", "not: [valid")]);
        let live = vec![live_in_sync(&set.services[0]), orphan("a", &[])];
        let out = plans(live, &set, Some(5));
        assert_eq!(summary(&out), vec!["a [] held=true", "web [] held=false"]);
        let a = out.iter().find(|p| p.key.name == "a").unwrap();
        assert!(
            a.held
                .as_deref()
                .unwrap_or_default()
                .contains("manifest has errors")
        );
    }

    #[test]
    fn prune_disabled_annotation_is_recorded_as_a_tag() {
        let text = WEB.replace(
            "metadata: {name: web}",
            "metadata: {name: web, annotations: {ecsync.io/prune: disabled}}",
        );
        let set = load([("m/web.yaml", text.as_str())]);
        let live = live_in_sync(&set.services[0]);
        let plan = plan_service(&set.services[0], &observed(Some(live)), &ctx(false));
        let Some(Action::TagService { tags: t }) = plan.actions.last() else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(t.get(tags::PRUNE).map(String::as_str), Some("disabled"));
    }
}

mod replacement {
    use super::*;

    fn stable_rollout() -> Rollout {
        Rollout {
            rollout_state: Some(RolloutState::Completed),
            deployments: 1,
            desired: 2,
            running: 2,
            ..Default::default()
        }
    }

    /// The desired service now wants EC2; the live one runs FARGATE.
    fn setup() -> (ManifestSet, LiveService) {
        let text = WEB.replace("launchType: FARGATE", "launchType: EC2");
        let set = load([("m/web.yaml", text.as_str())]);
        let d = desired();
        let mut live = live_in_sync(&d);
        live.rollout = stable_rollout();
        (set, live)
    }

    fn stand_in(original: &LiveService, rollout: Rollout) -> LiveService {
        let mut next = original.clone();
        next.key = replacement_key(&original.key);
        next.tags
            .insert(tags::REPLACEMENT_OF.into(), original.key.name.clone());
        next.rollout = rollout;
        next
    }

    fn run(set: &ManifestSet, live: Vec<LiveService>) -> Vec<String> {
        let mut o = observed(None);
        for l in live {
            o.services.insert(l.key.clone(), l);
        }
        plan_all(set, &o, &pruning(Some(1)))
            .iter()
            .map(|p| {
                let acts: Vec<&str> = p.actions.iter().map(Action::name).collect();
                format!("{}: {}", p.key.name, acts.join(","))
            })
            .collect()
    }

    #[test]
    fn without_prune_it_is_only_reported() {
        let (set, live) = setup();
        let plan = plan_service(&set.services[0], &observed(Some(live)), &ctx(false));
        assert_eq!(plan.replace, vec!["launchType".to_string()]);
        assert!(plan.actions.is_empty());
        assert!(plan.message.as_deref().unwrap().contains("--prune"));
    }

    #[test]
    fn each_step_follows_from_what_is_live() {
        let (set, old) = setup();
        // 1. Nothing else yet: start the stand-in.
        assert_eq!(
            run(&set, vec![old.clone()]),
            ["web: register_task_definition,create_replacement"]
        );
        // 2. Stand-in still rolling out: wait.
        let rolling = Rollout {
            rollout_state: Some(RolloutState::InProgress),
            ..stable_rollout()
        };
        assert_eq!(
            run(&set, vec![old.clone(), stand_in(&old, rolling)]),
            ["web: ", "web-ecsync-next: "]
        );
        // 3. Stand-in stable: delete the old service.
        let next = stand_in(&old, stable_rollout());
        assert_eq!(
            run(&set, vec![old.clone(), next.clone()]),
            ["web: prune_service", "web-ecsync-next: "]
        );
        // 4. Old one gone: create it anew under its own name.
        assert_eq!(
            run(&set, vec![next.clone()]),
            [
                "web: register_task_definition,create_service",
                "web-ecsync-next: "
            ]
        );
        // 5. New one up but not stable: keep the stand-in.
        let mut new = old.clone();
        new.spec.launch_type = Some("EC2".into());
        new.spec.platform_version = None;
        new.rollout = Rollout {
            rollout_state: Some(RolloutState::InProgress),
            ..stable_rollout()
        };
        assert_eq!(
            run(&set, vec![new.clone(), next.clone()]),
            ["web: ", "web-ecsync-next: "]
        );
        // 6. New one stable: remove the stand-in.
        new.rollout = stable_rollout();
        assert_eq!(
            run(&set, vec![new, next]),
            ["web: ", "web-ecsync-next: prune_service"]
        );
    }
}

/// The blue/green fixture as live after ECS's own deployment: the target
/// group and its alternate swapped (`strategy` overridden to `strategy`).
fn blue_green_swapped(strategy: &str) -> (DesiredService, LiveService) {
    let text = include_str!("../../../tests/fixtures/shapes/blue-green-hooks.yaml")
        .replace("strategy: BLUE_GREEN", &format!("strategy: {strategy}"));
    let set = load([("m/web.yaml", text.as_str())]);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let d = (*set.services[0]).clone();
    let mut live = live_in_sync(&d);
    live.spec.deployment_configuration = d.spec.deployment_configuration.clone();
    let lb = &mut live.spec.load_balancers.as_mut().expect("load balancers")[0];
    let primary = lb.target_group_arn.take().expect("target group");
    let adv = lb.advanced_configuration.as_mut().expect("advanced");
    let alternate = adv.alternate_target_group_arn.replace(primary);
    lb.target_group_arn = alternate;
    (d, live)
}

#[test]
fn under_a_native_strategy_ecs_swapping_the_target_groups_is_not_drift() {
    let (d, live) = blue_green_swapped("BLUE_GREEN");
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    assert!(plan.drift.is_empty(), "{:?}", plan.drift);
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::UpdateService { .. })),
        "{:?}",
        plan.actions
    );
}

#[test]
fn under_rolling_a_swapped_target_group_is_drift_and_is_put_back() {
    let (d, live) = blue_green_swapped("ROLLING");
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    assert!(
        plan.drift
            .iter()
            .any(|f| f.path.starts_with("loadBalancers")),
        "{:?}",
        plan.drift
    );
    assert!(plan.actions.contains(&Action::UpdateService {
        fields: [UpdateMember::LoadBalancers].into()
    }));
}

#[test]
fn an_ignored_path_is_never_drift_and_keeps_its_live_value_through_a_new_revision() {
    let text = WEB.replace(
        "  tags: {team: platform}\n",
        "  tags: {team: platform}\n  ignoreDifferences:\n    - taskDefinition.containerDefinitions[web].image\n",
    );
    let set = load([("m/web.yaml", text.as_str())]);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let d = set.services[0].clone();
    let mut live = live_in_sync(&d);
    let mut td = d.spec.task_definition.clone();
    td.container_definitions[0].image = Some("web:from-the-image-updater".into());
    live.task_definition_arn = "arn:aws:ecs:us-east-1:1:task-definition/web:9".into();
    live.task_definition = LiveTaskDefinition::Described {
        spec: Box::new(td.clone()),
        hash: "updater".into(),
        unmanaged: Vec::new(),
        own_tags: None,
    };
    let plan = plan_service(&d, &observed(Some(live.clone())), &ctx(false));
    assert!(plan.drift.is_empty(), "{:?}", plan.drift);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.ignored.len(), 1, "{:?}", plan.ignored);
    assert_eq!(plan.ignored[0].reason, IgnoreReason::IgnoredPath);

    // An unrelated change registers a new revision: with the live image.
    let mut d2 = (*d).clone();
    d2.spec.task_definition.container_definitions[0].environment =
        Some(vec![crate::core::model::KeyValuePair {
            name: Some("NEW".into()),
            value: Some("1".into()),
        }]);
    let plan = plan_service(&d2, &observed(Some(live)), &ctx(false));
    let drift: Vec<&str> = plan.drift.iter().map(|f| f.path.as_str()).collect();
    assert!(drift.iter().all(|p| p.contains("environment")), "{drift:?}");
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::RegisterTaskDefinition { .. }))
    );
    let effective = plan.effective.as_ref().expect("an effective spec");
    let c = &effective.spec.task_definition.container_definitions[0];
    assert_eq!(c.image.as_deref(), Some("web:from-the-image-updater"));
    assert!(
        c.environment
            .as_ref()
            .is_some_and(|e| e.iter().any(|kv| kv.name.as_deref() == Some("NEW")))
    );
}

#[test]
fn definition_tags_are_owned_per_key_as_recorded() {
    let text = WEB.replace(
        "    family: web\n",
        "    family: web\n    tags: [{key: team, value: a}]\n",
    );
    let set = load([("m/web.yaml", text.as_str())]);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let d = set.services[0].clone();
    let mut live = live_in_sync(&d);
    let mut td = d.spec.task_definition.clone();
    td.tags = Some(tag_list(&BTreeMap::from([
        ("team".to_string(), "a".to_string()),
        ("owner".to_string(), "x".to_string()),
        ("backup".to_string(), "daily".to_string()),
    ])));
    let described = |own: Option<&[&str]>| LiveTaskDefinition::Described {
        spec: Box::new(td.clone()),
        hash: "other".into(),
        unmanaged: Vec::new(),
        own_tags: own.map(|keys| keys.iter().map(|k| k.to_string()).collect()),
    };
    // `owner` was ecsync's and left Git: drift, and a new revision without it.
    live.task_definition = described(Some(&["owner", "team"]));
    let plan = plan_service(&d, &observed(Some(live.clone())), &ctx(false));
    let drift: Vec<&str> = plan.drift.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(drift, ["taskDefinition.tags[owner]"], "backup is foreign");
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::RegisterTaskDefinition { .. }))
    );
    // Without a record nothing but the declared keys is ecsync's.
    live.task_definition = described(None);
    let plan = plan_service(&d, &observed(Some(live)), &ctx(false));
    assert!(plan.drift.is_empty(), "{:?}", plan.drift);
}
