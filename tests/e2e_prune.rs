//! End to end: pruning services whose manifests left Git (DESIGN §5).

mod common;

use std::process::Command;

use common::{GitRepo, Moto, Network, ecsync_with, run, service_yaml};

fn apply(moto: &Moto, repo: &GitRepo, cache: &tempfile::TempDir, extra: &[&str]) -> common::Run {
    common::ecsync_in(moto, repo, cache.path(), "apply", extra)
}

async fn active_services(moto: &Moto, cluster: &str) -> Vec<String> {
    let ecs = moto.ecs();
    let arns = ecs
        .list_services()
        .cluster(cluster)
        .send()
        .await
        .unwrap()
        .service_arns()
        .to_vec();
    if arns.is_empty() {
        return Vec::new();
    }
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .set_services(Some(arns))
        .send()
        .await
        .unwrap();
    let mut names: Vec<String> = out
        .services()
        .iter()
        .filter(|s| s.status() == Some("ACTIVE"))
        .map(|s| s.service_name().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn three_services(moto: &Moto) -> (GitRepo, Network) {
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    for name in ["a", "b", "c"] {
        repo.write(
            &format!("services/{name}.yaml"),
            &service_yaml(name, "alpha", &net, "app:1", "x", 1),
        );
    }
    repo.commit("three services");
    (repo, net)
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_manifest_prunes_exactly_that_service() {
    let moto = Moto::start();
    let (repo, _) = three_services(&moto).await;
    let cache = tempfile::tempdir().unwrap();
    let r = apply(&moto, &repo, &cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    // An unmanaged service in the same cluster must survive everything below.
    let ecs = moto.ecs();
    ecs.create_service()
        .cluster("alpha")
        .service_name("hand-made")
        .task_definition("a")
        .desired_count(1)
        .send()
        .await
        .unwrap();

    repo.remove("services/b.yaml");
    repo.commit("drop b");

    // Without --prune the orphan is reported as drift and left alone.
    let r = apply(&moto, &repo, &cache, &["--output", "json"]);
    assert_eq!(r.code, 0, "{r}");
    let b = r.json()["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "b")
        .cloned()
        .unwrap();
    assert_eq!(b["inSync"], false, "{r}");
    assert_eq!(
        active_services(&moto, "alpha").await,
        ["a", "b", "c", "hand-made"]
    );

    let r = apply(&moto, &repo, &cache, &["--prune"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("did: prune_service"), "{r}");
    assert_eq!(
        active_services(&moto, "alpha").await,
        ["a", "c", "hand-made"]
    );

    // Nothing left to prune: a further pass changes nothing.
    let r = apply(&moto, &repo, &cache, &["--prune", "--output", "json"]);
    assert_eq!(r.json()["awsCalls"]["mutating"], 0, "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_set_annotation_and_cap_hold() {
    let moto = Moto::start();
    let (repo, net) = three_services(&moto).await;
    // `c` asks never to be pruned.
    repo.write(
        "services/c.yaml",
        &service_yaml("c", "alpha", &net, "app:1", "x", 1).replace(
            "  name: c\n",
            "  name: c\n  annotations: {ecsync.io/prune: disabled}\n",
        ),
    );
    repo.commit("protect c");
    let cache = tempfile::tempdir().unwrap();
    let r = apply(&moto, &repo, &cache, &[]);
    assert_eq!(r.code, 0, "{r}");

    // A commit that declares nothing is an error, not an instruction.
    for name in ["a", "b", "c"] {
        repo.remove(&format!("services/{name}.yaml"));
    }
    repo.write("services/.keep", "");
    repo.commit("everything gone");
    let r = apply(
        &moto,
        &repo,
        &cache,
        &["--prune", "--max-prune-per-pass", "10"],
    );
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("no manifests found"), "{r}");
    assert_eq!(active_services(&moto, "alpha").await, ["a", "b", "c"]);

    // Only `other` remains declared: a and b are pruned one per pass, c never.
    repo.write(
        "services/other.yaml",
        &service_yaml("other", "alpha", &net, "app:1", "x", 1),
    );
    repo.commit("one service");
    let r = apply(&moto, &repo, &cache, &["--prune"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        active_services(&moto, "alpha").await.len(),
        3,
        "cap of 1:\n{r}"
    );
    let r = apply(&moto, &repo, &cache, &["--prune"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(active_services(&moto, "alpha").await, ["c", "other"], "{r}");
    let r = apply(&moto, &repo, &cache, &["--prune"]);
    assert_eq!(active_services(&moto, "alpha").await, ["c", "other"], "{r}");
    assert!(r.stdout.contains("pruning is disabled"), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_manifest_is_never_pruned() {
    let moto = Moto::start();
    let (repo, _) = three_services(&moto).await;
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(apply(&moto, &repo, &cache, &[]).code, 0);
    repo.write(
        "services/b.yaml",
        "apiVersion: ecsync.io/v1alpha1\nkind: [broken\n",
    );
    repo.commit("break b");
    let r = apply(
        &moto,
        &repo,
        &cache,
        &["--prune", "--max-prune-per-pass", "5"],
    );
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("services/b.yaml:2"), "{r}");
    assert_eq!(active_services(&moto, "alpha").await, ["a", "b", "c"]);
}

/// An immutable field (launchType) changes: with --prune the service is
/// replaced under its own name, and at no point is nothing serving.
#[tokio::test(flavor = "multi_thread")]
async fn immutable_change_replaces_the_service_without_a_gap() {
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    let ec2 = service_yaml("web", "alpha", &net, "app:1", "x", 1)
        .replace("launchType: FARGATE", "launchType: EC2")
        .replace(
            "requiresCompatibilities: [FARGATE]",
            "requiresCompatibilities: [EC2]",
        );
    repo.write("services/web.yaml", &ec2);
    repo.commit("web on EC2");
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(apply(&moto, &repo, &cache, &[]).code, 0);

    repo.write(
        "services/web.yaml",
        &service_yaml("web", "alpha", &net, "app:1", "x", 1),
    );
    repo.commit("web on Fargate");
    let r = apply(&moto, &repo, &cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("run with --prune to replace"), "{r}");

    let mut steps = Vec::new();
    for _ in 0..8 {
        let r = apply(&moto, &repo, &cache, &["--prune", "--output", "json"]);
        assert_eq!(r.code, 0, "{r}");
        let done: Vec<String> = r.json()["services"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                let name = s["service"].as_str().unwrap().to_string();
                s["done"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |d| format!("{name}:{}", d.as_str().unwrap()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let active = active_services(&moto, "alpha").await;
        assert!(!active.is_empty(), "nothing serving after {done:?}");
        if done.is_empty() {
            break;
        }
        steps.push(done.join(" "));
    }
    assert_eq!(
        steps,
        [
            "web:register_task_definition web:create_replacement",
            "web:prune_service",
            "web:register_task_definition web:create_service",
            "web-ecsync-next:prune_service",
        ]
    );
    assert_eq!(active_services(&moto, "alpha").await, ["web"]);
    let live = moto
        .ecs()
        .describe_services()
        .cluster("alpha")
        .services("web")
        .send()
        .await
        .unwrap();
    assert_eq!(
        live.services()[0].launch_type().map(|l| l.as_str()),
        Some("FARGATE")
    );
    let diff = {
        let mut cmd: Command = ecsync_with(&moto);
        cmd.args([
            "diff",
            "--repo",
            &repo.url(),
            "--path",
            "services",
            "--cache-dir",
        ])
        .arg(cache.path());
        run(cmd)
    };
    assert_eq!(diff.code, 0, "{diff}");
}

/// A DAEMON service: ECS owns its count. moto accepts a count for it where
/// real ECS refuses one (the shell tests cover that refusal); here the whole
/// path runs: create, in sync at once, and pruned.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_service_is_created_in_sync_and_pruned() {
    let moto = Moto::start();
    moto.create_cluster("edge").await;
    let repo = GitRepo::new();
    let daemon = r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata: {name: agent}
spec:
  cluster: edge
  launchType: EC2
  schedulingStrategy: DAEMON
  taskDefinition:
    family: agent
    containerDefinitions:
      - {name: agent, image: "datadog/agent:7", memory: 256}
"#;
    repo.write("services/agent.yaml", daemon);
    repo.write(
        "services/keep.yaml",
        &service_yaml("keep", "edge", &moto.default_network().await, "k:1", "a", 1),
    );
    repo.commit("a daemon");
    let cache = tempfile::tempdir().unwrap();
    let r = apply(&moto, &repo, &cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    let live = moto
        .ecs()
        .describe_services()
        .cluster("edge")
        .services("agent")
        .send()
        .await
        .unwrap();
    let svc = &live.services()[0];
    assert_eq!(
        svc.scheduling_strategy().map(|s| s.as_str()),
        Some("DAEMON")
    );
    let diff = common::ecsync_in(&moto, &repo, cache.path(), "diff", &[]);
    assert_eq!(
        diff.code, 0,
        "a daemon is in sync right after apply:\n{diff}"
    );

    std::fs::remove_file(repo.path().join("services/agent.yaml")).unwrap();
    repo.commit("daemon gone");
    let r = apply(&moto, &repo, &cache, &["--prune"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(active_services(&moto, "edge").await, ["keep"], "{r}");
}

/// Issue 12 (1), as a user met it: a manifest moves into a new file that does not
/// parse. Its service must not be pruned, though no manifest file names it any more.
#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_moved_into_a_broken_file_is_not_pruned() {
    let moto = Moto::start();
    moto.create_cluster("prod").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "prod", &net, "w:1", "a", 1),
    );
    repo.write(
        "services/jobs.yaml",
        &service_yaml("jobs", "prod", &net, "j:1", "b", 1),
    );
    repo.commit("two services");
    let cache = tempfile::tempdir().unwrap();
    let r = apply(&moto, &repo, &cache, &["--prune"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(active_services(&moto, "prod").await, ["jobs", "web"]);

    std::fs::remove_file(repo.path().join("services/jobs.yaml")).unwrap();
    let broken = service_yaml("jobs", "prod", &net, "j:2", "b", 1).replace("spec:\n", "spec: [\n");
    repo.write("services/jobs-moved.yaml", &broken);
    repo.commit("move jobs (and break it)");
    let r = apply(&moto, &repo, &cache, &["--prune"]);
    assert_eq!(r.code, 1, "the broken file is an error:\n{r}");
    assert!(r.stdout.contains("jobs-moved.yaml"), "{r}");
    assert_eq!(
        active_services(&moto, "prod").await,
        ["jobs", "web"],
        "nothing pruned while a manifest is broken:\n{r}"
    );
}
