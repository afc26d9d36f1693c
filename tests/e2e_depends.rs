//! `dependsOn` end to end (issue 14): a real git repository, the real
//! `ecsync` binary and a private moto per test. moto's UpdateService starts
//! no new deployment (DESIGN §10), so "waits until COMPLETED" is covered by
//! the pure tests in `src/core/dependencies/tests.rs`; here: the order of
//! creation, a dependent held by a dependency that failed (in planning, and
//! in its pre-deploy hook), and the validation errors.

mod common;

use std::time::Duration;

use common::{GitRepo, Moto, Network, Run, ecsync_in, ecsync_with, http_request, run, wait_until};
use serde_json::Value;

/// A Fargate service in `prod`; `extra` is appended to its spec.
fn svc(name: &str, net: &Network, image: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: {name}
spec:
  cluster: prod
  desiredCount: 1
  launchType: FARGATE
  taskDefinition:
    family: {name}
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: app
        image: {image}
        memory: 512
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [{s0}]
      securityGroups: [{sg}]
{extra}"#,
        s0 = net.subnets[0],
        sg = net.security_group,
    )
}

const AFTER_API: &str = "  dependsOn:\n    - service: api\n";

async fn setup() -> (Moto, GitRepo, Network) {
    // Deployments read COMPLETED: a created dependency is done rolling out.
    // Tasks as ECS reports them: the dependency's pre-deploy hook is read.
    let moto = Moto::start_with_ecs_tasks(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    moto.create_cluster("prod").await;
    let net = moto.default_network().await;
    (moto, GitRepo::new(), net)
}

fn apply(moto: &Moto, repo: &GitRepo, cache: &tempfile::TempDir) -> Run {
    let r = ecsync_in(moto, repo, cache.path(), "apply", &["--output", "json"]);
    assert_eq!(r.code, 0, "{r}");
    r
}

fn service_of(r: &Run, name: &str) -> Value {
    r.json()["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["service"] == name).cloned())
        .unwrap_or_else(|| panic!("no {name} in {r}"))
}

async fn exists(moto: &Moto, name: &str) -> bool {
    moto.ecs()
        .describe_services()
        .cluster("prod")
        .services(name)
        .send()
        .await
        .expect("DescribeServices")
        .services()
        .iter()
        .any(|s| s.status() == Some("ACTIVE"))
}

async fn image_of(moto: &Moto, name: &str) -> String {
    let out = moto
        .ecs()
        .describe_services()
        .cluster("prod")
        .services(name)
        .send()
        .await
        .expect("DescribeServices");
    let td = out.services()[0].task_definition().unwrap().to_string();
    let out = moto
        .ecs()
        .describe_task_definition()
        .task_definition(td)
        .send()
        .await
        .expect("DescribeTaskDefinition");
    out.task_definition().unwrap().container_definitions()[0]
        .image()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependent_is_created_after_its_dependency_and_the_wait_is_announced() {
    let (moto, repo, net) = setup().await;
    repo.write("services/api.yaml", &svc("api", &net, "api:1", ""));
    repo.write("services/web.yaml", &svc("web", &net, "web:1", AFTER_API));
    repo.write("services/solo.yaml", &svc("solo", &net, "solo:1", ""));
    repo.commit("three services, web after api");
    let cache = tempfile::tempdir().unwrap();

    let dry = ecsync_in(&moto, &repo, cache.path(), "apply", &["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry}");
    assert!(
        dry.stdout
            .contains("waits: waiting for prod/api to be updated first"),
        "{dry}"
    );

    let first = apply(&moto, &repo, &cache);
    assert!(exists(&moto, "api").await);
    assert!(
        exists(&moto, "solo").await,
        "a service without dependencies is not slowed"
    );
    assert!(
        !exists(&moto, "web").await,
        "created before its dependency was"
    );
    let web = service_of(&first, "web");
    assert_eq!(
        web["waiting"], "waiting for prod/api to be updated first",
        "{web}"
    );
    assert_eq!(web["done"], Value::Array(vec![]), "{web}");

    apply(&moto, &repo, &cache);
    assert!(exists(&moto, "web").await, "created once api is done");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependent_of_a_failed_dependency_is_held_with_the_reason() {
    let (moto, repo, net) = setup().await;
    // api names a target group that does not exist: its plan fails.
    let lb = "  loadBalancers:\n    - {targetGroup: api-missing, containerName: app, containerPort: 8080}\n";
    let api = svc("api", &net, "api:1", lb).replace(
        "        memory: 512\n",
        "        memory: 512\n        portMappings: [{containerPort: 8080}]\n",
    );
    repo.write("services/api.yaml", &api);
    repo.write("services/web.yaml", &svc("web", &net, "web:1", AFTER_API));
    repo.commit("api is broken");
    let cache = tempfile::tempdir().unwrap();
    let r = ecsync_in(&moto, &repo, cache.path(), "apply", &["--output", "json"]);
    let web = service_of(&r, "web");
    assert_eq!(web["state"], "Held", "{web}");
    assert!(
        web["held"].as_str().is_some_and(
            |h| h.starts_with("dependency prod/api failed: ") && h.contains("api-missing")
        ),
        "{web}"
    );
    assert!(!exists(&moto, "web").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_whose_hook_fails_holds_its_dependent_on_the_old_revision() {
    let (moto, repo, net) = setup().await;
    repo.write("services/api.yaml", &svc("api", &net, "api:1", ""));
    repo.write("services/web.yaml", &svc("web", &net, "web:1", AFTER_API));
    repo.commit("v1");
    let cache = tempfile::tempdir().unwrap();
    apply(&moto, &repo, &cache);
    apply(&moto, &repo, &cache);
    assert!(exists(&moto, "web").await);

    // moto's tasks then stay RUNNING: api's migration times out.
    let body = br#"{"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000000}}"#;
    let resp = http_request(
        &moto.addr(),
        "POST",
        "/moto-api/state-manager/set-transition",
        &[("Content-Type", "application/json")],
        body,
    )
    .expect("set-transition");
    assert_eq!(resp.status, 201, "{}", resp.body);
    let hook =
        "  hooks:\n    preDeploy:\n      - {name: migrate, command: [migrate], timeout: 1s}\n";
    repo.write("services/api.yaml", &svc("api", &net, "api:2", hook));
    repo.write("services/web.yaml", &svc("web", &net, "web:2", AFTER_API));
    repo.commit("v2 of both");

    let first = apply(&moto, &repo, &cache);
    assert_eq!(
        service_of(&first, "api")["hook"]["phase"],
        "running",
        "{first}"
    );
    assert!(service_of(&first, "web")["waiting"].is_string(), "{first}");

    let mut web = Value::Null;
    let held = wait_until(Duration::from_secs(30), || {
        web = service_of(&apply(&moto, &repo, &cache), "web");
        web["state"] == "Held"
    });
    assert!(held, "{web}");
    assert!(
        web["held"].as_str().is_some_and(
            |h| h.starts_with("dependency prod/api is Degraded: pre-deploy hook migrate")
        ),
        "{web}"
    );
    assert_eq!(image_of(&moto, "api").await, "api:1");
    assert_eq!(
        image_of(&moto, "web").await,
        "web:1",
        "the dependent stays too"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_services_and_cycles_are_validation_errors_with_their_place() {
    let (moto, repo, net) = setup().await;
    repo.write("services/web.yaml", &svc("web", &net, "web:1", AFTER_API));
    repo.write(
        "services/a.yaml",
        &format!(
            "{}---\n{}",
            svc("a", &net, "a:1", "  dependsOn: [{service: b}]\n"),
            svc("b", &net, "b:1", "  dependsOn: [{service: a}]\n")
        ),
    );
    repo.commit("broken");
    let mut cmd = ecsync_with(&moto);
    cmd.current_dir(repo.path()).args(["validate", "services"]);
    let v = run(cmd);
    assert_eq!(v.code, 1, "{v}");
    let lines: Vec<&str> = v.stdout.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("services/web.yaml:24:")
            && l.ends_with("spec.dependsOn[0].service: no service prod/api is declared")),
        "{v}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("services/a.yaml:23:")
            && l.contains("a dependency cycle: prod/a -> prod/b -> prod/a")),
        "{v}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("services/a.yaml:47:")
            && l.contains("a dependency cycle: prod/b -> prod/a -> prod/b")),
        "{v}"
    );
}
