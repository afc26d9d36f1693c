//! End to end: two shards (`--shard-index/--shard-count`) as two real daemons
//! on one moto and one repository. Each creates, reports and prunes the
//! services of its own clusters only, and with leader election each shard
//! holds its own lease.
//!
//! Clusters and their shards of 2 (pinned in `core::shard`): prod and staging
//! are shard 0's, dev and batch shard 1's.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{
    Daemon, GitRepo, Moto, Network, ecsync_in, ecsync_with, free_port, http_get, service_yaml,
    spawn_listening, status_json, status_role, wait_until, wait_until_async,
};

const SHARD_0: [&str; 2] = ["prod", "staging"];
const SHARD_1: [&str; 2] = ["dev", "batch"];
const TABLE: &str = "ecsync-leases";

/// Two services per cluster: `<cluster>-a` and `<cluster>-b`.
async fn repository(moto: &Moto) -> (GitRepo, Network) {
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    for cluster in SHARD_0.iter().chain(&SHARD_1) {
        moto.create_cluster(cluster).await;
        for s in ["a", "b"] {
            let name = format!("{cluster}-{s}");
            repo.write(
                &format!("services/{cluster}/{name}.yaml"),
                &service_yaml(&name, cluster, &net, "app:1", "x", 1),
            );
        }
    }
    repo.commit("eight services in four clusters");
    (repo, net)
}

struct Replica {
    daemon: Daemon,
    addr: String,
    _cache: tempfile::TempDir,
}

impl Replica {
    /// `ecsync run --prune` as shard `index` of 2: shard 0 is told by flags,
    /// shard 1 by the environment, so both ways are exercised.
    fn start(moto: &Moto, repo: &GitRepo, index: u32, extra: &[&str]) -> Replica {
        let addr = format!("127.0.0.1:{}", free_port());
        let cache = tempfile::tempdir().unwrap();
        let mut cmd = ecsync_with(moto);
        cmd.args(["run", "--repo", &repo.url(), "--path", "services"])
            .args(["--interval", "1s", "--listen", &addr, "--prune"])
            .args(["--max-prune-per-pass", "5"])
            .arg("--cache-dir")
            .arg(cache.path())
            .args(extra);
        if index == 0 {
            cmd.args(["--shard-index", "0", "--shard-count", "2"]);
        } else {
            cmd.env("ECSYNC_SHARD_INDEX", index.to_string())
                .env("ECSYNC_SHARD_COUNT", "2");
        }
        let daemon = spawn_listening(cmd, &addr);
        Replica {
            daemon,
            addr,
            _cache: cache,
        }
    }

    fn metric(&self, name: &str, labels: &str) -> f64 {
        let (_, body) = http_get(&self.addr, "/metrics");
        body.lines()
            .find(|l| l.starts_with(&format!("{name}{{{labels}}} ")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }

    fn passes(&self) -> u64 {
        common::reconcile_passes(&self.addr)
    }

    /// The clusters of the services its `/status` lists.
    fn clusters(&self) -> BTreeSet<String> {
        status_json(&self.addr)["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["cluster"].as_str().map(String::from))
            .collect()
    }
}

async fn active_services(moto: &Moto, cluster: &str) -> BTreeSet<String> {
    let ecs = moto.ecs();
    let Ok(list) = ecs.list_services().cluster(cluster).send().await else {
        return BTreeSet::new();
    };
    let arns = list.service_arns().to_vec();
    if arns.is_empty() {
        return BTreeSet::new();
    }
    let Ok(out) = ecs
        .describe_services()
        .cluster(cluster)
        .set_services(Some(arns))
        .send()
        .await
    else {
        return BTreeSet::new();
    };
    out.services()
        .iter()
        .filter(|s| s.status() == Some("ACTIVE"))
        .filter_map(|s| s.service_name().map(String::from))
        .collect()
}

fn names(cluster: &str) -> BTreeSet<String> {
    ["a", "b"]
        .iter()
        .map(|s| format!("{cluster}-{s}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_shards_split_the_clusters_and_prune_only_their_own() {
    let moto = Moto::start();
    let (repo, _net) = repository(&moto).await;
    let zero = Replica::start(&moto, &repo, 0, &[]);
    let mut one = Replica::start(&moto, &repo, 1, &[]);
    let logs = |zero: &Replica, one: &Replica| {
        format!(
            "--- shard 0\n{}\n--- shard 1\n{}",
            zero.daemon.logs(),
            one.daemon.logs()
        )
    };

    let all_created = wait_until_async(Duration::from_secs(60), async || {
        for c in SHARD_0.iter().chain(&SHARD_1) {
            if active_services(&moto, c).await != names(c) {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        all_created,
        "not every service was created\n{}",
        logs(&zero, &one)
    );
    assert!(
        wait_until(Duration::from_secs(30), || zero.passes() >= 2
            && one.passes() >= 2),
        "no two passes each\n{}",
        logs(&zero, &one)
    );
    // Created exactly once: each shard created its own four, and no
    // CreateService was refused because the other had made it first.
    let created = "action=\"create_service\",result=\"ok\"";
    assert_eq!(
        zero.metric("ecsync_actions_total", created),
        4.0,
        "{}",
        logs(&zero, &one)
    );
    assert_eq!(
        one.metric("ecsync_actions_total", created),
        4.0,
        "{}",
        logs(&zero, &one)
    );
    let failed = "action=\"create_service\",result=\"error\"";
    assert_eq!(zero.metric("ecsync_actions_total", failed), 0.0);
    assert_eq!(one.metric("ecsync_actions_total", failed), 0.0);

    // Each shard's world is its clusters: /status, the per-service series,
    // and the shard it says it is.
    let own = |cs: [&str; 2]| cs.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(zero.clusters(), own(SHARD_0));
    assert_eq!(one.clusters(), own(SHARD_1));
    let status = status_json(&one.addr);
    assert_eq!(status["shard"], serde_json::json!({"index": 1, "count": 2}));
    assert_eq!(status["services"].as_array().map(Vec::len), Some(4));
    let (_, metrics) = http_get(&zero.addr, "/metrics");
    assert!(
        metrics.contains("ecsync_shard_info{index=\"0\",count=\"2\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("cluster=\"dev\""), "{metrics}");
    assert!(metrics.contains("cluster=\"prod\""), "{metrics}");

    // A deleted manifest in a cluster of shard 1 is pruned, by shard 1 only.
    repo.remove("services/dev/dev-b.yaml");
    repo.commit("drop dev-b");
    let pruned = wait_until_async(Duration::from_secs(60), async || {
        active_services(&moto, "dev").await == BTreeSet::from(["dev-a".to_string()])
    })
    .await;
    assert!(pruned, "dev-b was not pruned\n{}", logs(&zero, &one));
    let prune = "action=\"prune_service\",result=\"ok\"";
    assert!(
        wait_until(Duration::from_secs(20), || one
            .metric("ecsync_actions_total", prune)
            == 1.0),
        "{}",
        logs(&zero, &one)
    );
    assert_eq!(zero.metric("ecsync_actions_total", prune), 0.0);
    for c in SHARD_0 {
        assert_eq!(active_services(&moto, c).await, names(c));
    }

    // With shard 1 stopped, a service in its cluster that carries ecsync's
    // ownership tag but no manifest is left to it: shard 0, pruning and
    // listing every cluster, never touches it.
    one.daemon.signal("TERM");
    assert!(
        one.daemon.wait_timeout(Duration::from_secs(15)).is_some(),
        "shard 1 did not stop\n{}",
        one.daemon.logs()
    );
    let ecs = moto.ecs();
    ecs.create_service()
        .cluster("dev")
        .service_name("rogue")
        .task_definition("dev-a")
        .desired_count(1)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("ecsync.io/managed-by")
                .value("ecsync")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let before = zero.passes();
    assert!(
        wait_until(Duration::from_secs(30), || zero.passes() >= before + 3),
        "shard 0 stopped passing\n{}",
        zero.daemon.logs()
    );
    assert!(active_services(&moto, "dev").await.contains("rogue"));
    assert_eq!(zero.metric("ecsync_actions_total", prune), 0.0);
    assert!(
        !zero.daemon.logs().contains("rogue"),
        "{}",
        zero.daemon.logs()
    );

    // Its owner does prune it: the tag alone was enough to make it a candidate.
    let one = Replica::start(&moto, &repo, 1, &[]);
    let gone = wait_until_async(Duration::from_secs(60), async || {
        !active_services(&moto, "dev").await.contains("rogue")
    })
    .await;
    assert!(gone, "shard 1 did not prune rogue\n{}", one.daemon.logs());
}

async fn lease_holders(moto: &Moto) -> Vec<(String, String)> {
    let ddb = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let Ok(out) = ddb.scan().table_name(TABLE).send().await else {
        return Vec::new();
    };
    let mut items: Vec<(String, String)> = out
        .items()
        .iter()
        .filter_map(|i| {
            let key = i.get("lease")?.as_s().ok()?.clone();
            let holder = i.get("holder")?.as_s().ok()?.clone();
            Some((key, holder))
        })
        .collect();
    items.sort();
    items
}

#[tokio::test(flavor = "multi_thread")]
async fn each_shard_elects_its_own_leader() {
    let moto = Moto::start();
    moto.create_lease_table(TABLE).await;
    let (repo, _net) = repository(&moto).await;
    let lease = |holder: &str| {
        [
            "--leader-election-table".to_string(),
            TABLE.to_string(),
            "--lease-holder".to_string(),
            holder.to_string(),
            "--lease-duration".to_string(),
            "6s".to_string(),
            "--lease-renew-deadline".to_string(),
            "4s".to_string(),
            "--lease-retry-period".to_string(),
            "500ms".to_string(),
        ]
    };
    let args = |holder: &str| lease(holder);
    let a = args("zero-a");
    let a = Replica::start(
        &moto,
        &repo,
        0,
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    // moto does not serialise conditional writes (see e2e_leader): the second
    // replica of shard 0 starts once the first holds the lease.
    assert!(
        wait_until(Duration::from_secs(20), || status_role(&a.addr).as_deref()
            == Some("leader")),
        "{}",
        a.daemon.logs()
    );
    let b = args("zero-b");
    let b = Replica::start(
        &moto,
        &repo,
        0,
        &b.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let c = args("one-a");
    let c = Replica::start(
        &moto,
        &repo,
        1,
        &c.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let logs = || {
        format!(
            "--- zero-a\n{}\n--- zero-b\n{}\n--- one-a\n{}",
            a.daemon.logs(),
            b.daemon.logs(),
            c.daemon.logs()
        )
    };

    // Shard 1's only replica leads at once: it never contends with shard 0's.
    assert!(
        wait_until(Duration::from_secs(20), || status_role(&c.addr).as_deref()
            == Some("leader")),
        "{}",
        logs()
    );
    assert_eq!(
        status_role(&a.addr).as_deref(),
        Some("leader"),
        "{}",
        logs()
    );
    assert_eq!(
        status_role(&b.addr).as_deref(),
        Some("follower"),
        "{}",
        logs()
    );
    assert_eq!(
        lease_holders(&moto).await,
        [
            ("ecsync-0".to_string(), "zero-a".to_string()),
            ("ecsync-1".to_string(), "one-a".to_string())
        ]
    );
    let all_created = wait_until_async(Duration::from_secs(60), async || {
        for cl in SHARD_0.iter().chain(&SHARD_1) {
            if active_services(&moto, cl).await != names(cl) {
                return false;
            }
        }
        true
    })
    .await;
    assert!(all_created, "not every service was created\n{}", logs());
    assert_eq!(b.passes(), 0, "a follower never runs a pass");
}

fn cli(args: &[&str]) -> common::Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecsync"));
    cmd.args(args)
        .env_remove("ECSYNC_SHARD_INDEX")
        .env_remove("ECSYNC_SHARD_COUNT");
    common::run(cmd)
}

#[test]
fn the_shard_flags_are_checked_before_anything_starts() {
    let r = cli(&["run", "--repo", "/nonexistent", "--shard-index", "0"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("--shard-count"), "{r}");
    let r = cli(&["run", "--repo", "/nonexistent", "--shard-count", "2"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("--shard-index"), "{r}");
    let r = cli(&[
        "run",
        "--repo",
        "/nonexistent",
        "--shard-index",
        "2",
        "--shard-count",
        "2",
    ]);
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stderr
            .contains("--shard-index 2 is out of range: it must be below --shard-count 2"),
        "{r}"
    );
    let r = cli(&[
        "run",
        "--repo",
        "/nonexistent",
        "--shard-index",
        "0",
        "--shard-count",
        "0",
    ]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("--shard-count must be at least 1"), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_shows_one_shards_view() {
    let moto = Moto::start();
    let (repo, _net) = repository(&moto).await;
    let cache = tempfile::tempdir().unwrap();
    let r = ecsync_in(
        &moto,
        &repo,
        cache.path(),
        "diff",
        &[
            "--shard-index",
            "1",
            "--shard-count",
            "2",
            "--output",
            "json",
        ],
    );
    assert_eq!(r.code, 2, "{r}");
    let clusters: BTreeSet<String> = r.json()["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["cluster"].as_str().map(String::from))
        .collect();
    assert_eq!(
        clusters,
        SHARD_1
            .iter()
            .map(|c| c.to_string())
            .collect::<BTreeSet<_>>(),
        "{r}"
    );
}

/// A Fargate service in `cluster` migrating off the instances tagged
/// `app=legacy` (the listener is never looked at by the other shard).
fn migrating(name: &str, cluster: &str, net: &Network) -> String {
    format!(
        "{}  loadBalancers:
    - targetGroup: {name}-ecs
      containerName: app
      containerPort: 8080
  migration:
    listener: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/legacy/0123456789abcdef/0123456789abcdef
    from:
      targetGroup: legacy-ec2
      instances: {{tags: {{app: legacy}}}}
    steps: [50, 100]
    stepInterval: 1m
    decommission:
      action: stop
      after: 1h
",
        service_yaml(name, cluster, net, "app:1", "x", 1)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_another_shard_is_draining_is_held_not_released() {
    let moto = Moto::start();
    moto.create_cluster("prod").await;
    moto.create_cluster("dev").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "services/prod-a.yaml",
        &service_yaml("prod-a", "prod", &net, "app:1", "x", 1),
    );
    // Shard 1's service migrates off the legacy fleet, and shard 1 has
    // started the decommission clock on its instance.
    repo.write("services/dev-a.yaml", &migrating("dev-a", "dev", &net));
    repo.commit("a migration in shard 1");
    let clock = "pending@2026-01-01T00:00:00Z";
    let ids = moto
        .run_instances(1, &[("app", "legacy"), ("ecsync.io/decommission", clock)])
        .await;

    // Shard 0 sees the clock (it looks for every instance carrying one) but no
    // migration of its own explains it: without sharding that is a release.
    let cache = tempfile::tempdir().unwrap();
    let shard_0 = ["--shard-index", "0", "--shard-count", "2", "--prune"];
    let r = ecsync_in(
        &moto,
        &repo,
        cache.path(),
        "apply",
        &[&shard_0[..], &["--output", "json"]].concat(),
    );
    assert_eq!(r.code, 0, "{r}");
    let held = &r.json()["decommission"]["heldByShard"];
    assert_eq!(held[0]["kind"], "instance", "{r}");
    assert_eq!(held[0]["id"], ids[0].as_str(), "{r}");
    assert_eq!(held[0]["shard"], 1, "{r}");
    assert_eq!(held[0]["service"], "dev/dev-a", "{r}");
    assert!(
        r.json()["decommission"]["instances"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{r}"
    );
    let r = ecsync_in(&moto, &repo, cache.path(), "apply", &shard_0);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout
            .contains(&format!("~ instance {} held by shard 1", ids[0])),
        "{r}"
    );

    let out = moto
        .ec2()
        .describe_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let inst = &out.reservations()[0].instances()[0];
    let tag = inst
        .tags()
        .iter()
        .find(|t| t.key() == Some("ecsync.io/decommission"))
        .and_then(|t| t.value());
    assert_eq!(tag, Some(clock), "shard 0 must leave shard 1's clock alone");
    assert_eq!(
        inst.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("running")
    );
}

async fn schedule_names(moto: &Moto) -> Vec<String> {
    let Ok(out) = moto
        .scheduler()
        .list_schedules()
        .group_name("ecsync-ecsync")
        .send()
        .await
    else {
        return Vec::new();
    };
    let mut names: Vec<String> = out
        .schedules()
        .iter()
        .filter_map(|s| s.name().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_are_created_and_pruned_by_the_shard_of_their_cluster() {
    let moto = Moto::start();
    moto.create_cluster("prod").await;
    moto.create_cluster("dev").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    for (name, cluster) in [("prod-a", "prod"), ("dev-a", "dev")] {
        repo.write(
            &format!("services/{name}.yaml"),
            &service_yaml(name, cluster, &net, "app:1", "x", 1),
        );
    }
    repo.write(
        "services/prod-job.yaml",
        &common::scheduled_job_yaml("prod-job", "prod", &net, "rate(1 hour)"),
    );
    repo.write(
        "services/dev-job.yaml",
        &common::scheduled_job_yaml("dev-job", "dev", &net, "rate(1 hour)"),
    );
    repo.commit("a job per shard");
    let cache = tempfile::tempdir().unwrap();
    let apply = |index: &str| {
        let r = ecsync_in(
            &moto,
            &repo,
            cache.path(),
            "apply",
            &["--shard-index", index, "--shard-count", "2", "--prune"],
        );
        assert_eq!(r.code, 0, "{r}");
        r
    };

    apply("0");
    assert_eq!(schedule_names(&moto).await, ["prod-job"]);
    apply("1");
    assert_eq!(schedule_names(&moto).await, ["dev-job", "prod-job"]);

    // The schedule group is shared; a schedule of shard 1's cluster whose
    // manifest is gone is pruned by shard 1, never by shard 0.
    repo.remove("services/dev-job.yaml");
    repo.commit("drop dev-job");
    let r = apply("0");
    assert!(!r.stdout.contains("dev-job"), "{r}");
    assert_eq!(schedule_names(&moto).await, ["dev-job", "prod-job"]);
    apply("1");
    assert_eq!(schedule_names(&moto).await, ["prod-job"]);
}
