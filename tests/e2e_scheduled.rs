//! End to end: `kind: ScheduledTask` on EventBridge Scheduler (DESIGN §3),
//! against moto with a real git repository and the real binary.

mod common;

use std::collections::BTreeMap;

use aws_sdk_scheduler::types::{ScheduleState, Target};
use common::{GitRepo, Moto, Network, ecsync_with, run, service_yaml};

const GROUP: &str = "ecsync-ecsync";
const ROLE: &str = common::SCHEDULER_ROLE;

fn apply(moto: &Moto, repo: &GitRepo, cache: &tempfile::TempDir, extra: &[&str]) -> common::Run {
    common::ecsync_in(moto, repo, cache.path(), "apply", extra)
}

fn diff(moto: &Moto, repo: &GitRepo, cache: &tempfile::TempDir, extra: &[&str]) -> common::Run {
    common::ecsync_in(moto, repo, cache.path(), "diff", extra)
}

/// A nightly job that runs the `web` service's definition with another command.
fn nightly_from_web(net: &Network) -> String {
    format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: ScheduledTask
metadata:
  name: nightly-report
spec:
  cluster: prod
  schedule: cron(0 3 * * ? *)
  timezone: Asia/Tokyo
  roleArn: {ROLE}
  taskDefinitionFrom: {{service: web}}
  launchType: FARGATE
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [{s0}, {s1}]
      securityGroups: [{sg}]
  overrides:
    containerOverrides:
      - name: app
        command: [bin/rails, reports:nightly]
"#,
        s0 = net.subnets[0],
        s1 = net.subnets[1],
        sg = net.security_group,
    )
}

/// A job with its own definition, run as two tasks.
fn job(name: &str, net: &Network, schedule: &str) -> String {
    format!(
        "{}  taskCount: 2\n",
        common::scheduled_job_yaml(name, "prod", net, schedule)
    )
}

async fn schedule_names(moto: &Moto, group: &str) -> Vec<String> {
    let out = moto
        .scheduler()
        .list_schedules()
        .group_name(group)
        .send()
        .await
        .unwrap();
    let mut names: Vec<String> = out
        .schedules()
        .iter()
        .filter_map(|s| s.name().map(str::to_string))
        .collect();
    names.sort();
    names
}

async fn revisions(moto: &Moto, family: &str) -> usize {
    moto.ecs()
        .list_task_definitions()
        .family_prefix(family)
        .send()
        .await
        .unwrap()
        .task_definition_arns()
        .len()
}

fn scheduler_calls(r: &common::Run) -> Vec<String> {
    r.json()["awsCalls"]["byOperation"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.to_lowercase().starts_with("scheduler"))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_task_is_created_healed_and_reported() {
    let moto = Moto::start();
    let cluster_arn = moto.create_cluster("prod").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "prod", &net, "app:1", "x", 1),
    );
    repo.write("services/nightly.yaml", &nightly_from_web(&net));
    repo.commit("web and its nightly job");
    let cache = tempfile::tempdir().unwrap();

    // Before anything exists, a dry run announces the group and the schedule.
    let r = apply(&moto, &repo, &cache, &["--dry-run"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout
            .contains("+ schedule group ecsync-ecsync: would be created"),
        "{r}"
    );
    assert!(r.stdout.contains("+ schedule nightly-report"), "{r}");
    assert!(
        r.stdout
            .contains("would: register_task_definition, create_schedule"),
        "{r}"
    );
    assert!(schedule_names(&moto, GROUP).await.is_empty());

    let r = apply(&moto, &repo, &cache, &["--output", "json"]);
    assert_eq!(r.code, 0, "{r}");
    let sched = moto.scheduler();
    let group = sched.get_schedule_group().name(GROUP).send().await.unwrap();
    let tags = sched
        .list_tags_for_resource()
        .resource_arn(group.arn().unwrap())
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<&str, &str> = tags.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags.get("ecsync.io/managed-by"), Some(&"ecsync"));

    let s = sched
        .get_schedule()
        .group_name(GROUP)
        .name("nightly-report")
        .send()
        .await
        .unwrap();
    assert_eq!(s.schedule_expression(), Some("cron(0 3 * * ? *)"));
    assert_eq!(s.schedule_expression_timezone(), Some("Asia/Tokyo"));
    assert_eq!(s.state(), Some(&ScheduleState::Enabled));
    let target: &Target = s.target().unwrap();
    assert_eq!(target.arn(), cluster_arn);
    assert_eq!(target.role_arn(), ROLE);
    let input: serde_json::Value = serde_json::from_str(target.input().unwrap()).unwrap();
    assert_eq!(
        input,
        serde_json::json!({"containerOverrides": [{"name": "app", "command": ["bin/rails", "reports:nightly"]}]})
    );
    let ecs = target.ecs_parameters().unwrap();
    assert_eq!(ecs.task_count(), Some(1));
    assert_eq!(ecs.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    let vpc = ecs
        .network_configuration()
        .unwrap()
        .awsvpc_configuration()
        .unwrap();
    let mut subnets = vpc.subnets().to_vec();
    subnets.sort();
    let mut want = net.subnets.clone();
    want.sort();
    assert_eq!(subnets, want);
    // The service's revision, not a second registration of the same content.
    let web = moto
        .ecs()
        .describe_services()
        .cluster("prod")
        .services("web")
        .send()
        .await
        .unwrap();
    assert_eq!(
        Some(ecs.task_definition_arn()),
        web.services()[0].task_definition()
    );
    assert_eq!(revisions(&moto, "web").await, 1);
    let status = &r.json()["scheduledTasks"][0];
    assert_eq!(status["name"], "nightly-report", "{r}");
    assert_eq!(status["state"], "Synced", "{r}");

    // Converged: the next pass changes nothing and the diff is clean.
    let r = apply(&moto, &repo, &cache, &["--output", "json"]);
    assert_eq!(r.json()["awsCalls"]["mutating"], 0, "{r}");
    let r = diff(&moto, &repo, &cache, &[]);
    assert_eq!(r.code, 0, "{r}");

    // Drift by hand: someone pauses the job and moves it.
    sched
        .update_schedule()
        .group_name(GROUP)
        .name("nightly-report")
        .schedule_expression("cron(0 5 * * ? *)")
        .schedule_expression_timezone("Asia/Tokyo")
        .state(ScheduleState::Disabled)
        .set_flexible_time_window(s.flexible_time_window().cloned())
        .target(target.clone())
        .send()
        .await
        .unwrap();
    let r = diff(&moto, &repo, &cache, &[]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stdout.contains("~ schedule nightly-report  OutOfSync"),
        "{r}"
    );
    assert!(
        r.stdout.contains(
            "    schedule\n      git:  \"cron(0 3 * * ? *)\"\n      live: \"cron(0 5 * * ? *)\""
        ),
        "{r}"
    );
    assert!(
        r.stdout
            .contains("    state\n      git:  \"ENABLED\"\n      live: \"DISABLED\""),
        "{r}"
    );

    // Report mode reports and changes nothing.
    let r = apply(
        &moto,
        &repo,
        &cache,
        &["--mode", "report", "--output", "json"],
    );
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.json()["awsCalls"]["mutating"], 0, "{r}");
    assert_eq!(r.json()["scheduledTasks"][0]["state"], "OutOfSync", "{r}");
    let still = sched
        .get_schedule()
        .group_name(GROUP)
        .name("nightly-report")
        .send()
        .await
        .unwrap();
    assert_eq!(still.state(), Some(&ScheduleState::Disabled));

    // Auto mode heals it, and keeps the same revision.
    let r = apply(&moto, &repo, &cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("did: update_schedule"), "{r}");
    let healed = sched
        .get_schedule()
        .group_name(GROUP)
        .name("nightly-report")
        .send()
        .await
        .unwrap();
    assert_eq!(healed.state(), Some(&ScheduleState::Enabled));
    assert_eq!(healed.schedule_expression(), Some("cron(0 3 * * ? *)"));
    assert_eq!(revisions(&moto, "web").await, 1);

    // A new image in the service moves the job to the service's new revision.
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "prod", &net, "app:2", "x", 1),
    );
    repo.commit("app:2");
    let r = apply(&moto, &repo, &cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(revisions(&moto, "web").await, 2, "{r}");
    let moved = sched
        .get_schedule()
        .group_name(GROUP)
        .name("nightly-report")
        .send()
        .await
        .unwrap();
    let td = moved
        .target()
        .unwrap()
        .ecs_parameters()
        .unwrap()
        .task_definition_arn();
    assert!(td.ends_with("task-definition/web:2"), "{td}\n{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_scheduler_call_without_scheduled_tasks_or_prune() {
    let moto = Moto::start();
    moto.create_cluster("prod").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "prod", &net, "app:1", "x", 1),
    );
    repo.commit("web");
    let cache = tempfile::tempdir().unwrap();
    let r = apply(&moto, &repo, &cache, &["--output", "json"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(scheduler_calls(&r), Vec::<String>::new(), "{r}");
    // With --prune the group is looked at (a schedule may have lost its manifest).
    let r = apply(&moto, &repo, &cache, &["--prune", "--output", "json"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!scheduler_calls(&r).is_empty(), "{r}");
    assert_eq!(r.json()["awsCalls"]["mutating"], 0, "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_deletes_only_with_prune_and_never_on_a_broken_set() {
    let moto = Moto::start();
    moto.create_cluster("prod").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write("services/a.yaml", &job("a", &net, "rate(1 hour)"));
    repo.write("services/b.yaml", &job("b", &net, "rate(5 minutes)"));
    repo.commit("two jobs");
    let cache = tempfile::tempdir().unwrap();
    let r = apply(&moto, &repo, &cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(schedule_names(&moto, GROUP).await, ["a", "b"]);
    // A schedule in another group is never ecsync's.
    let b = moto
        .scheduler()
        .get_schedule()
        .group_name(GROUP)
        .name("b")
        .send()
        .await
        .unwrap();
    moto.scheduler()
        .create_schedule()
        .name("hand-made")
        .schedule_expression("rate(1 day)")
        .set_flexible_time_window(b.flexible_time_window().cloned())
        .set_target(b.target().cloned())
        .send()
        .await
        .unwrap();

    repo.remove("services/b.yaml");
    repo.commit("drop b");
    // Without --prune: drift, reported, left alone.
    let r = apply(&moto, &repo, &cache, &["--output", "json"]);
    assert_eq!(r.code, 0, "{r}");
    let tasks = r.json()["scheduledTasks"].clone();
    let b = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "b")
        .cloned()
        .unwrap();
    assert_eq!(b["inSync"], false, "{r}");
    assert!(b["message"].as_str().unwrap().contains("--prune"), "{r}");
    assert_eq!(schedule_names(&moto, GROUP).await, ["a", "b"]);
    let r = diff(&moto, &repo, &cache, &[]);
    assert_eq!(r.code, 2, "{r}");

    // With --prune, but a manifest does not parse: nothing is deleted.
    repo.write("services/broken.yaml", "kind: ScheduledTask\nmetadata: [\n");
    repo.commit("broken");
    let r = apply(&moto, &repo, &cache, &["--prune"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("not pruned"), "{r}");
    assert_eq!(schedule_names(&moto, GROUP).await, ["a", "b"]);

    repo.remove("services/broken.yaml");
    repo.commit("fixed");
    let r = apply(&moto, &repo, &cache, &["--prune"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("did: delete_schedule"), "{r}");
    assert_eq!(schedule_names(&moto, GROUP).await, ["a"]);
    assert_eq!(schedule_names(&moto, "default").await, ["hand-made"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn imported_schedules_diff_clean() {
    let moto = Moto::start();
    moto.create_cluster("prod").await;
    moto.create_cluster("other").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "prod", &net, "app:1", "x", 1),
    );
    repo.write("services/nightly.yaml", &nightly_from_web(&net));
    repo.write(
        "services/elsewhere.yaml",
        &job("elsewhere", &net, "rate(1 day)").replace("cluster: prod", "cluster: other"),
    );
    repo.commit("web, nightly, a job in another cluster");
    let cache = tempfile::tempdir().unwrap();
    let r = apply(&moto, &repo, &cache, &[]);
    assert_eq!(r.code, 0, "{r}");

    let out = tempfile::tempdir().unwrap();
    let mut cmd = ecsync_with(&moto);
    cmd.args(["import", "--cluster", "prod", "--out"])
        .arg(out.path());
    let r = run(cmd);
    assert_eq!(r.code, 0, "{r}");
    let mut files: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // Only the schedules that run in `prod`.
    assert_eq!(files, ["nightly-report.scheduled.yaml", "web.yaml"], "{r}");
    let nightly =
        std::fs::read_to_string(out.path().join("nightly-report.scheduled.yaml")).unwrap();
    assert!(nightly.contains("kind: ScheduledTask"), "{nightly}");
    assert!(nightly.contains("taskDefinition:"), "{nightly}");

    // The imported manifests, as the whole of a new repository, diff clean.
    let adopted = GitRepo::new();
    for f in &files {
        adopted.write(
            &format!("services/{f}"),
            &std::fs::read_to_string(out.path().join(f)).unwrap(),
        );
    }
    adopted.commit("imported");
    let cache = tempfile::tempdir().unwrap();
    let r = diff(&moto, &adopted, &cache, &[]);
    let drifted: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("~ schedule") || l.starts_with("+ schedule"))
        .collect();
    // `elsewhere` lost its manifest in this repository: only that one shows.
    assert_eq!(drifted, ["~ schedule elsewhere  OutOfSync"], "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn import_reports_ecs_rules_with_their_conversion_and_never_touches_them() {
    let moto = Moto::start();
    let cluster_arn = moto.create_cluster("prod").await;
    let td = moto
        .ecs()
        .register_task_definition()
        .family("legacy-report")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("job")
                .image("busybox:1.36")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string();
    let events = moto.eventbridge();
    events
        .put_rule()
        .name("legacy-nightly")
        .schedule_expression("cron(0 3 * * ? *)")
        .send()
        .await
        .unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("ecs")
        .arn(&cluster_arn)
        .role_arn("arn:aws:iam::123456789012:role/events-ecs")
        .input(r#"{"containerOverrides":[{"name":"job","command":["report"]}]}"#)
        .ecs_parameters(
            aws_sdk_eventbridge::types::EcsParameters::builder()
                .task_definition_arn(&td)
                .task_count(1)
                .launch_type(aws_sdk_eventbridge::types::LaunchType::Ec2)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    events
        .put_targets()
        .rule("legacy-nightly")
        .targets(target)
        .send()
        .await
        .unwrap();
    // A rule for another cluster is not this import's.
    events
        .put_rule()
        .name("elsewhere")
        .schedule_expression("rate(1 day)")
        .send()
        .await
        .unwrap();

    let mut cmd = ecsync_with(&moto);
    cmd.args(["import", "--cluster", "prod"]);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{r}");
    let notes: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("note: EventBridge rule"))
        .collect();
    assert_eq!(notes.len(), 1, "{r}");
    assert!(
        notes[0].starts_with("note: EventBridge rule legacy-nightly runs tasks in cluster prod")
    );
    // The conversion is one line, and a manifest ecsync accepts as it is.
    let one_line = &notes[0][notes[0].find(": {").unwrap() + 2..];
    let m: serde_json::Value = serde_json::from_str(one_line).unwrap();
    assert_eq!(m["kind"], "ScheduledTask");
    assert_eq!(m["spec"]["schedule"], "cron(0 3 * * ? *)");
    assert_eq!(m["spec"]["taskDefinition"]["family"], "legacy-report");
    assert_eq!(
        m["spec"]["overrides"]["containerOverrides"][0]["command"][0],
        "report"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("legacy.yaml"), one_line).unwrap();
    let mut cmd = common::ecsync();
    cmd.arg("validate").arg(dir.path());
    let v = run(cmd);
    assert_eq!(v.code, 0, "{v}");

    // The rule and its target are as they were.
    let targets = events
        .list_targets_by_rule()
        .rule("legacy-nightly")
        .send()
        .await
        .unwrap();
    assert_eq!(targets.targets().len(), 1);
    assert_eq!(targets.targets()[0].arn(), cluster_arn);
    assert!(schedule_names(&moto, "default").await.is_empty());
}

/// The daemon shows scheduled tasks in `/status`, on the dashboard and in
/// `ecsync_scheduled_tasks{state}`, from the same pass.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_reports_scheduled_tasks_in_status_dashboard_and_metrics() {
    let moto = Moto::start();
    moto.create_cluster("prod").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write("services/a.yaml", &job("a", &net, "rate(1 hour)"));
    repo.commit("one job");
    let cache = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut cmd = ecsync_with(&moto);
    cmd.args([
        "run",
        "--repo",
        &repo.url(),
        "--path",
        "services",
        "--listen",
        &addr,
    ])
    .args(["--interval", "1s", "--cache-dir"])
    .arg(cache.path());
    let mut daemon = common::spawn_listening(cmd, &addr);
    let synced = common::wait_until(std::time::Duration::from_secs(30), || {
        let Ok((200, body)) = common::try_http_get(&addr, "/status") else {
            return false;
        };
        serde_json::from_str::<serde_json::Value>(&body)
            .is_ok_and(|v| v["scheduledTasks"][0]["state"] == "Synced")
    });
    let status = common::status_json(&addr);
    let (_, metrics) = common::http_get(&addr, "/metrics");
    let (_, page) = common::http_get(&addr, "/");
    daemon.signal("TERM");
    let _ = daemon.wait_timeout(std::time::Duration::from_secs(20));
    assert!(synced, "{status}\n{}", daemon.logs());
    let t = &status["scheduledTasks"][0];
    assert_eq!(t["name"], "a");
    assert_eq!(t["cluster"], "prod");
    assert_eq!(t["source"], "services/a.yaml");
    assert_eq!(t["schedule"], "rate(1 hour)");
    assert_eq!(t["scheduleState"], "ENABLED");
    assert!(
        metrics.contains("ecsync_scheduled_tasks{state=\"Synced\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ecsync_scheduled_tasks{state=\"Error\"} 0\n"),
        "{metrics}"
    );
    assert!(page.contains(r#"data-schedule="a""#), "{page}");
}
