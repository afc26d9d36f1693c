use std::collections::BTreeSet;

use super::*;
use crate::core::manifest::load;
use crate::core::plan::UpdateMember;
use crate::core::state::{Rollout, RolloutState};

fn svc(name: &str, cluster: &str, depends: &str) -> String {
    format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: {name}
spec:
  cluster: {cluster}
  taskDefinition:
    family: {name}
    containerDefinitions:
      - name: app
        image: app:1
        memory: 256
{depends}"#
    )
}

fn errors(set: &ManifestSet) -> Vec<String> {
    set.errors.iter().map(ToString::to_string).collect()
}

#[test]
fn an_unknown_service_is_an_error_where_it_is_named() {
    let web = svc("web", "prod", "  dependsOn:\n    - service: api\n");
    let set = load([("web.yaml", web.as_str())]);
    assert_eq!(
        errors(&set),
        ["web.yaml:14:16: spec.dependsOn[0].service: no service prod/api is declared"]
    );
    assert!(set.services.is_empty());
    assert!(set.held.iter().any(|k| k.name == "web"));
    assert!(set.broken_files.contains("web.yaml"));
}

#[test]
fn another_cluster_is_named_and_found() {
    let web = svc(
        "web",
        "prod",
        "  dependsOn:\n    - {service: api, cluster: shared}\n",
    );
    let api = svc("api", "shared", "");
    let set = load([("web.yaml", web.as_str()), ("api.yaml", api.as_str())]);
    assert_eq!(errors(&set), Vec::<String>::new());
    assert_eq!(
        dependencies(set.services.iter().find(|d| d.key.name == "web").unwrap()),
        [ServiceKey {
            cluster: "shared".into(),
            name: "api".into()
        }]
    );
}

#[test]
fn a_cycle_is_an_error_on_each_of_its_services() {
    let a = svc("a", "prod", "  dependsOn: [{service: b}]\n");
    let b = svc("b", "prod", "  dependsOn: [{service: c}]\n");
    let c = svc("c", "prod", "  dependsOn: [{service: a}]\n");
    let d = svc("d", "prod", "  dependsOn: [{service: a}]\n");
    let set = load([
        ("a.yaml", a.as_str()),
        ("b.yaml", b.as_str()),
        ("c.yaml", c.as_str()),
        ("d.yaml", d.as_str()),
    ]);
    let e = errors(&set);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e.contains(&"a.yaml:13:25: spec.dependsOn[0].service: a dependency cycle: prod/a -> prod/b -> prod/c -> prod/a".to_string()),
        "{e:?}"
    );
    // d depends on the cycle without being part of it: it is held by its plan, not in error.
    let held: BTreeSet<&str> = set.held.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(held, BTreeSet::from(["a", "b", "c"]));
    assert_eq!(set.services.len(), 1);
    let me = svc("me", "prod", "  dependsOn: [{service: me}]\n");
    let set = load([("me.yaml", me.as_str())]);
    assert!(
        errors(&set)[0].contains("a dependency cycle: prod/me -> prod/me"),
        "{:?}",
        errors(&set)
    );
}

/// `web` depends on `api`; `worker` on `web`; `solo` on nothing.
fn fleet() -> ManifestSet {
    let api = svc("api", "prod", "");
    let web = svc("web", "prod", "  dependsOn: [{service: api}]\n");
    let worker = svc("worker", "prod", "  dependsOn: [{service: web}]\n");
    let solo = svc("solo", "prod", "");
    let set = load([
        ("api.yaml", api.as_str()),
        ("web.yaml", web.as_str()),
        ("worker.yaml", worker.as_str()),
        ("solo.yaml", solo.as_str()),
    ]);
    assert_eq!(errors(&set), Vec::<String>::new());
    set
}

fn key(name: &str) -> ServiceKey {
    ServiceKey {
        cluster: "prod".into(),
        name: name.into(),
    }
}

fn rollout(state: RolloutState) -> Rollout {
    Rollout {
        rollout_state: Some(state),
        rollout_reason: (state == RolloutState::Failed)
            .then(|| "ECS deployment circuit breaker: tasks failed to start".into()),
        deployments: 1,
        desired: 1,
        running: 1,
        pending: 0,
    }
}

/// A plan for an existing service: updating it to a new revision, or in sync.
fn plan(name: &str, updates: bool, state: RolloutState) -> ServicePlan {
    let actions = if updates {
        vec![
            Action::RegisterTaskDefinition {
                family: name.into(),
            },
            Action::UpdateService {
                fields: [UpdateMember::TaskDefinition].into(),
            },
        ]
    } else {
        Vec::new()
    };
    ServicePlan {
        key: key(name),
        source: Some(format!("{name}.yaml")),
        exists: true,
        drift: Vec::new(),
        actions,
        replace: Vec::new(),
        report_only: false,
        held: None,
        waiting: None,
        error: None,
        message: None,
        rollout: Some(rollout(state)),
        ignored: Vec::new(),
        effective: None,
    }
}

fn gated(mut plans: Vec<ServicePlan>) -> BTreeMap<String, (Option<String>, Option<String>)> {
    gate(&mut plans, &fleet());
    plans
        .into_iter()
        .map(|p| (p.key.name.clone(), (p.waiting, p.held)))
        .collect()
}

use RolloutState::{Completed, Failed, InProgress};

#[test]
fn in_a_revision_that_changes_both_the_dependent_waits_for_the_rollout_to_complete() {
    // Pass 1: both change. api is updated; web (and, through it, worker) waits.
    let g = gated(vec![
        plan("api", true, Completed),
        plan("web", true, Completed),
        plan("worker", true, Completed),
        plan("solo", true, Completed),
    ]);
    assert_eq!(g["api"], (None, None), "a dependency is never slowed");
    assert_eq!(
        g["solo"],
        (None, None),
        "nor is a service without dependencies"
    );
    assert_eq!(
        g["web"],
        (
            Some("waiting for prod/api to be updated first".into()),
            None
        )
    );
    assert_eq!(
        g["worker"],
        (
            Some("waiting for prod/web to be updated first".into()),
            None
        )
    );
    // Pass 2: api is in sync but its deployment is under way.
    let g = gated(vec![
        plan("api", false, InProgress),
        plan("web", true, Completed),
    ]);
    assert_eq!(
        g["web"],
        (
            Some("waiting for prod/api's deployment to complete".into()),
            None
        )
    );
    // Pass 3: COMPLETED: web goes.
    let g = gated(vec![
        plan("api", false, Completed),
        plan("web", true, Completed),
    ]);
    assert_eq!(g["web"], (None, None));
}

#[test]
fn a_failed_dependency_holds_its_dependents_with_the_reason() {
    let g = gated(vec![
        plan("api", false, Failed),
        plan("web", true, Completed),
    ]);
    assert_eq!(
        g["web"].1.as_deref(),
        Some(
            "dependency prod/api's deployment failed: ECS deployment circuit breaker: tasks failed to start"
        )
    );
    let mut broken = plan("api", true, Completed);
    broken.error = Some("target group \"api-ecs\" not found".into());
    let g = gated(vec![broken, plan("web", true, Completed)]);
    assert_eq!(
        g["web"].1.as_deref(),
        Some("dependency prod/api failed: target group \"api-ecs\" not found")
    );
    let mut held = plan("api", false, Completed);
    held.held = Some("its manifest has errors".into());
    let g = gated(vec![held, plan("web", true, Completed)]);
    assert_eq!(
        g["web"].1.as_deref(),
        Some("dependency prod/api is held: its manifest has errors")
    );
}

#[test]
fn only_a_deploying_change_waits_and_a_new_dependency_is_waited_for() {
    // web only changes its tags: nothing to wait for.
    let mut tags_only = plan("web", false, Completed);
    tags_only.actions = vec![Action::TagService {
        tags: Default::default(),
    }];
    let g = gated(vec![plan("api", true, Completed), tags_only]);
    assert_eq!(g["web"], (None, None));
    // Created together: web waits for api to exist and complete.
    let mut new_api = plan("api", false, Completed);
    new_api.actions = vec![
        Action::RegisterTaskDefinition {
            family: "api".into(),
        },
        Action::CreateService,
    ];
    new_api.exists = false;
    new_api.rollout = None;
    let mut new_web = plan("web", false, Completed);
    new_web.actions = vec![Action::CreateService];
    let g = gated(vec![new_api, new_web]);
    assert_eq!(
        g["web"].0.as_deref(),
        Some("waiting for prod/api to be updated first")
    );
}

#[test]
fn a_dependency_that_will_not_change_holds_rather_than_waits_forever() {
    let set = {
        let api = svc("api", "prod", "").replace(
            "metadata:\n  name: api\n",
            "metadata:\n  name: api\n  annotations: {ecsync.io/sync: report}\n",
        );
        let web = svc("web", "prod", "  dependsOn: [{service: api}]\n");
        load([("api.yaml", api.as_str()), ("web.yaml", web.as_str())])
    };
    let mut api = plan("api", true, Completed);
    api.report_only = true;
    let mut plans = vec![api, plan("web", true, Completed)];
    gate(&mut plans, &set);
    assert!(
        plans[1]
            .held
            .as_deref()
            .is_some_and(|h| h.contains("report-only")),
        "{:?}",
        plans[1]
    );
    // A report-mode pass (every plan report-only): the dependent shows the wait.
    let mut api = plan("api", true, Completed);
    api.report_only = true;
    let mut web = plan("web", true, Completed);
    web.report_only = true;
    let mut plans = vec![api, web];
    gate(&mut plans, &fleet());
    assert!(plans[1].waiting.is_some(), "{:?}", plans[1]);
}

#[test]
fn a_dependency_that_ends_the_pass_failed_holds_the_waiting() {
    let deps = [key("api")];
    let state = |s: SyncState, why: Option<&str>| {
        let why = why.map(str::to_string);
        move |_: &ServiceKey| Some((s, why.clone()))
    };
    assert_eq!(
        failed_dependency(
            &deps,
            state(
                SyncState::Degraded,
                Some("pre-deploy hook migrate failed (exit code 1)")
            )
        ),
        Some(
            "dependency prod/api is Degraded: pre-deploy hook migrate failed (exit code 1)".into()
        )
    );
    assert_eq!(
        failed_dependency(&deps, state(SyncState::Progressing, None)),
        None
    );
    assert_eq!(failed_dependency(&deps, |_| None), None);
}

/// The whole planning path (pair, diff, plan, gate) over what an observer
/// would see: `web` runs an older revision than Git declares, `api` runs
/// exactly what Git declares with its deployment in `state`.
fn planned(api_rollout: RolloutState) -> Vec<ServicePlan> {
    use crate::core::plan::{LiveService, LiveTaskDefinition, Observed, PlanContext, plan_all};
    use crate::core::state::{Mode, ServiceStatus};
    let api = svc("api", "prod", "");
    let web = svc("web", "prod", "  dependsOn: [{service: api}]\n");
    let set = load([("api.yaml", api.as_str()), ("web.yaml", web.as_str())]);
    assert_eq!(errors(&set), Vec::<String>::new());
    let live = |d: &DesiredService, hash: &str, state: RolloutState| {
        let mut spec = d.spec.clone();
        spec.task_definition = Default::default();
        LiveService {
            key: d.key.clone(),
            arn: format!("arn:aws:ecs:us-east-1:1:service/prod/{}", d.key.name),
            status: ServiceStatus::Active,
            spec,
            task_definition_arn: format!(
                "arn:aws:ecs:us-east-1:1:task-definition/{}:1",
                d.key.name
            ),
            task_definition: LiveTaskDefinition::Hash(hash.to_string()),
            tags: [
                (
                    crate::core::tags::MANAGED_BY.to_string(),
                    "ecsync".to_string(),
                ),
                (crate::core::tags::SOURCE.to_string(), d.source.clone()),
            ]
            .into(),
            rollout: rollout(state),
        }
    };
    let mut observed = Observed::default();
    for d in &set.services {
        let l = if d.key.name == "api" {
            live(d, &d.task_definition_hash, api_rollout)
        } else {
            live(d, "older", Completed)
        };
        observed.services.insert(d.key.clone(), l);
    }
    let ctx = PlanContext {
        controller_id: "ecsync",
        revision: "rev2",
        mode: Mode::Auto,
        prune: None,
    };
    plan_all(&set, &observed, &ctx)
}

#[test]
fn planning_holds_the_dependent_until_the_dependency_reads_completed() {
    let of = |plans: &[ServicePlan], name: &str| {
        plans.iter().find(|p| p.key.name == name).cloned().unwrap()
    };
    let plans = planned(InProgress);
    let api = of(&plans, "api");
    assert!(api.drift.is_empty(), "{api:?}");
    let web = of(&plans, "web");
    assert!(deploys(&web), "{web:?}");
    assert_eq!(
        web.waiting.as_deref(),
        Some("waiting for prod/api's deployment to complete")
    );
    let plans = planned(Completed);
    let web = of(&plans, "web");
    assert_eq!((&web.waiting, &web.held), (&None, &None));
    assert!(deploys(&web));
    let plans = planned(Failed);
    assert!(
        of(&plans, "web")
            .held
            .is_some_and(|h| h.starts_with("dependency prod/api's deployment failed")),
        "{plans:?}"
    );
}
