//! Pre-deploy hooks end to end (issue 14): a real git repository, the real
//! `ecsync` binary and a private moto per test, started through
//! `tests/moto/ecs_tasks.py` (moto 5.2 sends a task's container `cpu` as a
//! number, which the SDK refuses, and lets every container exit 0; the
//! launcher fixes the first and lets a test choose an exit code). moto's
//! tasks reach STOPPED after four DescribeTasks; its state manager keeps them
//! RUNNING for the timeout and `kill -9` tests. A container that never
//! started is covered by the mock tests in `src/runtime/reconciler/hooks/tests.rs`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    Daemon, GitRepo, Moto, Network, Run, ecsync_in, ecsync_with, free_port, http_request,
    spawn_listening, status_json, wait_until, wait_until_async,
};
use serde_json::Value;

const HOOK: &str = "ecsync.io/hook";

/// A Fargate `web` in `prod` with a `migrate` hook. The container declares
/// `memory`: moto's RunTask fails without it.
fn web_yaml(net: &Network, image: &str, hook: Option<&str>) -> String {
    let hooks = hook
        .map(|timeout| {
            format!(
                "  hooks:
    preDeploy:
      - name: migrate
        command: [bin/rails, db:migrate]
        timeout: {timeout}
"
            )
        })
        .unwrap_or_default();
    format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: web
spec:
  cluster: prod
  desiredCount: 1
  launchType: FARGATE
  taskDefinition:
    family: web
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: web
        image: {image}
        memory: 512
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [{s0}]
      securityGroups: [{sg}]
{hooks}"#,
        s0 = net.subnets[0],
        sg = net.security_group,
    )
}

async fn setup(image: &str, hook: Option<&str>) -> (Moto, GitRepo, Network) {
    // Deployments read COMPLETED, so a converged service is Synced.
    let moto = Moto::start_with_ecs_tasks(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    moto.create_cluster("prod").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write("services/web.yaml", &web_yaml(&net, image, hook));
    repo.commit("web");
    (moto, repo, net)
}

/// Keep every task where it is: moto's state manager then advances an ECS
/// task only on StopTask (or after a million DescribeTasks).
fn hold_tasks(moto: &Moto) {
    let body = br#"{"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000000}}"#;
    let resp = http_request(
        &moto.addr(),
        "POST",
        "/moto-api/state-manager/set-transition",
        &[("Content-Type", "application/json")],
        body,
    )
    .expect("POST set-transition");
    assert_eq!(resp.status, 201, "{}", resp.body);
}

/// The hook tasks ecsync started for `web` (ListTasks without a desired
/// status: moto then lists every task, running or stopped).
async fn hook_tasks(moto: &Moto) -> Vec<String> {
    moto.ecs()
        .list_tasks()
        .cluster("prod")
        .started_by("ecsync/web")
        .send()
        .await
        .expect("ListTasks")
        .task_arns()
        .to_vec()
}

/// The live `web`: its task definition and tags, if it exists.
async fn service(moto: &Moto) -> Option<(String, BTreeMap<String, String>)> {
    let out = moto
        .ecs()
        .describe_services()
        .cluster("prod")
        .services("web")
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .expect("DescribeServices");
    let s = out
        .services()
        .iter()
        .find(|s| s.status() == Some("ACTIVE"))?;
    let tags = s
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect();
    Some((s.task_definition()?.to_string(), tags))
}

async fn revisions(moto: &Moto) -> usize {
    moto.ecs()
        .list_task_definitions()
        .family_prefix("web")
        .send()
        .await
        .expect("ListTaskDefinitions")
        .task_definition_arns()
        .len()
}

fn apply(moto: &Moto, repo: &GitRepo, cache: &tempfile::TempDir, extra: &[&str]) -> Run {
    let mut args = vec!["--output", "json"];
    args.extend_from_slice(extra);
    let r = ecsync_in(moto, repo, cache.path(), "apply", &args);
    assert_eq!(r.code, 0, "{r}");
    r
}

fn web(r: &Run) -> Value {
    r.json()["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["service"] == "web").cloned())
        .unwrap_or_else(|| panic!("no web in {r}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_moves_to_a_revision_only_after_its_hook_ran_with_it() {
    let (moto, repo, net) = setup("rails:1", Some("10m")).await;
    let cache = tempfile::tempdir().unwrap();

    // Announced, and nothing started.
    let dry = ecsync_in(&moto, &repo, cache.path(), "apply", &["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry}");
    assert!(
        dry.stdout
            .contains("pre-deploy hook migrate runs first, with the new revision"),
        "{dry}"
    );
    assert!(hook_tasks(&moto).await.is_empty());
    assert_eq!(revisions(&moto).await, 0, "a dry run registers nothing");

    // First pass: the revision is registered and the hook started with it;
    // the service is not created yet.
    let first = web(&apply(&moto, &repo, &cache, &[]));
    assert_eq!(first["state"], "Progressing", "{first}");
    assert_eq!(first["hook"]["phase"], "running", "{first}");
    let tasks = hook_tasks(&moto).await;
    assert_eq!(tasks.len(), 1);
    assert!(
        service(&moto).await.is_none(),
        "created before its hook ran"
    );
    let described = moto
        .ecs()
        .describe_tasks()
        .cluster("prod")
        .tasks(&tasks[0])
        .include(aws_sdk_ecs::types::TaskField::Tags)
        .send()
        .await
        .expect("DescribeTasks");
    let task = &described.tasks()[0];
    let overrides = task.overrides().expect("overrides").container_overrides();
    assert_eq!(overrides[0].name(), Some("web"));
    assert_eq!(overrides[0].command(), ["bin/rails", "db:migrate"]);
    assert_eq!(
        task.launch_type(),
        Some(&aws_sdk_ecs::types::LaunchType::Fargate)
    );
    let ran_with = task.task_definition_arn().unwrap().to_string();

    // Later passes wait for it (by requeue, here by running apply again).
    let mut created = None;
    for _ in 0..8 {
        apply(&moto, &repo, &cache, &[]);
        if let Some(s) = service(&moto).await {
            created = Some(s);
            break;
        }
    }
    let (td, tags) = created.expect("the service is created once its hook succeeded");
    assert_eq!(
        td, ran_with,
        "the service runs the revision its hook ran with"
    );
    assert_eq!(revisions(&moto).await, 1, "waiting registered nothing more");
    assert!(
        tags.get(HOOK)
            .is_some_and(|v| v.starts_with("migrate@") && v.ends_with(":succeeded")),
        "{tags:?}"
    );
    assert_eq!(hook_tasks(&moto).await.len(), 1, "the hook ran once");

    // In sync: the hook is not run again.
    let again = web(&apply(&moto, &repo, &cache, &[]));
    assert_eq!(again["state"], "Synced", "{again}");
    assert_eq!(hook_tasks(&moto).await.len(), 1);

    // A new image: the hook runs with the new revision before the service moves.
    repo.write("services/web.yaml", &web_yaml(&net, "rails:2", Some("10m")));
    repo.commit("rails 2");
    let diff = ecsync_in(&moto, &repo, cache.path(), "diff", &[]);
    assert!(
        diff.stdout.contains("pre-deploy hook migrate runs first"),
        "{diff}"
    );
    let moving = web(&apply(&moto, &repo, &cache, &[]));
    assert_eq!(moving["hook"]["phase"], "running", "{moving}");
    assert_eq!(hook_tasks(&moto).await.len(), 2);
    assert_eq!(
        service(&moto).await.unwrap().0,
        td,
        "still on the old revision"
    );
    let mut moved = false;
    for _ in 0..8 {
        apply(&moto, &repo, &cache, &[]);
        if service(&moto).await.is_some_and(|(now, _)| now != td) {
            moved = true;
            break;
        }
    }
    assert!(moved, "the service moves once the hook succeeded");
    assert_eq!(revisions(&moto).await, 2);
    assert_eq!(hook_tasks(&moto).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_past_its_timeout_is_stopped_and_holds_the_service_until_the_hook_changes() {
    let (moto, repo, net) = setup("rails:1", None).await;
    let cache = tempfile::tempdir().unwrap();
    apply(&moto, &repo, &cache, &[]);
    let (old, _) = service(&moto).await.expect("created without hooks");

    hold_tasks(&moto);
    repo.write("services/web.yaml", &web_yaml(&net, "rails:2", Some("1s")));
    repo.commit("rails 2 with a migration that hangs");
    let started = web(&apply(&moto, &repo, &cache, &[]));
    assert_eq!(started["hook"]["phase"], "running", "{started}");

    let mut last = Value::Null;
    let timed_out = wait_until(Duration::from_secs(30), || {
        last = web(&apply(&moto, &repo, &cache, &[]));
        last["hook"]["phase"] == "timedOut"
    });
    assert!(timed_out, "{last}");
    assert_eq!(last["state"], "Degraded", "{last}");
    assert!(
        last["hook"]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("still running after its timeout of 1s")),
        "{last}"
    );
    let tasks = hook_tasks(&moto).await;
    assert_eq!(tasks.len(), 1);
    let stopped = moto
        .ecs()
        .describe_tasks()
        .cluster("prod")
        .tasks(&tasks[0])
        .send()
        .await
        .expect("DescribeTasks");
    assert_eq!(stopped.tasks()[0].last_status(), Some("STOPPED"));
    let (td, tags) = service(&moto).await.unwrap();
    assert_eq!(td, old, "the service stays on its old revision");
    assert!(
        tags.get(HOOK).is_some_and(|v| v.ends_with(":failed")),
        "{tags:?}"
    );
    assert!(tags.contains_key("ecsync.io/hook-reason"), "{tags:?}");

    // Not run again for the same manifest, on this pass or the next.
    let still = web(&apply(&moto, &repo, &cache, &[]));
    assert_eq!(still["state"], "Degraded", "{still}");
    assert_eq!(still["hook"]["phase"], "failed", "{still}");
    assert_eq!(hook_tasks(&moto).await.len(), 1);
    let diff = ecsync_in(&moto, &repo, cache.path(), "diff", &[]);
    assert!(
        diff.stdout.contains("pre-deploy hook migrate failed")
            && diff.stdout.contains("stays on its current revision"),
        "{diff}"
    );

    // A fixed hook is a new manifest: it runs again.
    repo.write("services/web.yaml", &web_yaml(&net, "rails:2", Some("5m")));
    repo.commit("give the migration time");
    let rerun = web(&apply(&moto, &repo, &cache, &[]));
    assert_eq!(rerun["hook"]["phase"], "running", "{rerun}");
    assert_eq!(hook_tasks(&moto).await.len(), 2);
}

struct Running {
    daemon: Daemon,
    addr: String,
}

fn start_daemon(moto: &Moto, repo: &GitRepo, cache: &tempfile::TempDir) -> Running {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = ecsync_with(moto);
    cmd.args(["run", "--repo", &repo.url(), "--path", "services"])
        .args(["--listen", &addr, "--interval", "1s"])
        .arg("--cache-dir")
        .arg(cache.path());
    Running {
        daemon: spawn_listening(cmd, &addr),
        addr,
    }
}

impl Running {
    fn web(&self) -> Value {
        let status = status_json(&self.addr);
        status["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["service"] == "web").cloned())
            .unwrap_or(Value::Null)
    }
    fn pass_id(&self) -> u64 {
        status_json(&self.addr)["lastPass"]["passId"]
            .as_u64()
            .unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_running_across_kill_9_is_waited_for_never_started_twice() {
    let (moto, repo, _net) = setup("rails:1", Some("10m")).await;
    hold_tasks(&moto);
    let cache = tempfile::tempdir().unwrap();

    let mut first = start_daemon(&moto, &repo, &cache);
    assert!(
        wait_until(Duration::from_secs(30), || first.web()["hook"]["phase"]
            == "running"),
        "{}",
        first.daemon.logs()
    );
    let tasks = hook_tasks(&moto).await;
    assert_eq!(tasks.len(), 1);
    first.daemon.signal("KILL");
    assert!(first.daemon.wait_timeout(Duration::from_secs(10)).is_some());

    // The restarted daemon finds the task by startedBy and waits for it.
    let second = start_daemon(&moto, &repo, &cache);
    assert!(
        wait_until(Duration::from_secs(30), || second.pass_id() >= 2),
        "{}",
        second.daemon.logs()
    );
    let waiting = second.web();
    assert_eq!(waiting["hook"]["phase"], "running", "{waiting}");
    assert_eq!(waiting["hook"]["taskArn"], tasks[0].as_str(), "{waiting}");
    assert_eq!(hook_tasks(&moto).await, tasks, "no second task");
    assert!(service(&moto).await.is_none());

    // The migration ends (moto's containers exit 0): the run completes.
    moto.ecs()
        .stop_task()
        .cluster("prod")
        .task(&tasks[0])
        .reason("migration finished")
        .send()
        .await
        .expect("StopTask");
    let created = wait_until_async(Duration::from_secs(30), async || {
        service(&moto).await.is_some()
    })
    .await;
    assert!(created, "{}", second.daemon.logs());
    let (_, tags) = service(&moto).await.unwrap();
    assert!(
        tags.get(HOOK).is_some_and(|v| v.ends_with(":succeeded")),
        "{tags:?}"
    );
    assert_eq!(hook_tasks(&moto).await, tasks, "still the one task");
    let metrics = common::http_get(&second.addr, "/metrics").1;
    assert!(
        metrics.contains("ecsync_hook_runs_total{result=\"succeeded\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_that_exits_non_zero_degrades_the_service_with_its_exit_code() {
    let (moto, repo, net) = setup("rails:1", None).await;
    let cache = tempfile::tempdir().unwrap();
    apply(&moto, &repo, &cache, &[]);
    let (old, _) = service(&moto).await.expect("created without hooks");

    // The launcher makes the container exit 3 (moto's would exit 0).
    let failing = web_yaml(&net, "rails:2", Some("10m")).replace(
        "[bin/rails, db:migrate]",
        "[bin/rails, db:migrate, ECSYNC_TEST_EXIT=3]",
    );
    repo.write("services/web.yaml", &failing);
    repo.commit("a migration that fails");
    let mut last = Value::Null;
    for _ in 0..8 {
        last = web(&apply(&moto, &repo, &cache, &[]));
        if last["hook"]["phase"] == "failed" {
            break;
        }
    }
    assert_eq!(last["hook"]["phase"], "failed", "{last}");
    assert_eq!(last["state"], "Degraded", "{last}");
    assert_eq!(last["hook"]["exitCode"], 3, "{last}");
    assert_eq!(
        last["hook"]["reason"], "container web exited 3: exited 3 (test)",
        "{last}"
    );
    assert_eq!(
        service(&moto).await.unwrap().0,
        old,
        "still on the old revision"
    );
    // The same manifest again: not rerun.
    apply(&moto, &repo, &cache, &[]);
    assert_eq!(hook_tasks(&moto).await.len(), 1);
}
