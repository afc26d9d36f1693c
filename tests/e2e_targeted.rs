//! Targeted passes end to end (issue 15): moto, a real git repository and the real
//! `ecsync run`, woken by signed GitHub pushes. A push that changes some services is
//! handled by a pass over those services alone (observed by name, no ListServices);
//! anything that needs the whole view (a deleted manifest, the prune view) is a full
//! pass; and a generated sequence of commits ends in the same ECS state whether the
//! daemon targets its passes or `ecsync apply` runs a full pass after each commit.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    Daemon, GitRepo, Moto, Network, ecsync_with, free_port, http_get, http_post, service_yaml,
    spawn_listening, status_json, wait_until,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "targeted-test-webhook-secret";
const WAIT: Duration = Duration::from_secs(60);

fn svc(name: &str, net: &Network, image: &str, count: i32) -> String {
    service_yaml(name, "alpha", net, image, "targeted", count)
}

/// `ecsync run` on `repo` with `--interval 1h`: after the first pass, only pushes
/// wake it.
struct Running {
    daemon: Daemon,
    addr: String,
    _dirs: tempfile::TempDir,
}

impl Running {
    fn start(moto: &Moto, repo: &GitRepo, extra: &[&str]) -> Running {
        let r = Running::spawn(moto, repo, extra);
        r.settle();
        r
    }

    /// [`Running::start`] without waiting for rollouts to finish.
    fn spawn(moto: &Moto, repo: &GitRepo, extra: &[&str]) -> Running {
        let dirs = tempfile::tempdir().expect("tempdir");
        let secret = dirs.path().join("webhook-secret");
        std::fs::write(&secret, SECRET).expect("write secret");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = ecsync_with(moto);
        cmd.args(["run", "--repo", &repo.url(), "--path", "services"])
            .args(["--ref", "main", "--interval", "1h", "--listen", &addr])
            .arg("--cache-dir")
            .arg(dirs.path().join("cache"))
            .arg("--webhook-secret-file")
            .arg(&secret)
            .args(extra);
        let daemon = spawn_listening(cmd, &addr);
        let r = Running {
            daemon,
            addr,
            _dirs: dirs,
        };
        assert!(
            wait_until(WAIT, || r.last_pass()["result"] == "ok"),
            "the first pass never finished ok:\n{}",
            r.context()
        );
        r
    }

    /// Wait until no service is rolling out (the progress requeue saw them
    /// finish), so that the next push targets exactly what it changed.
    fn settle(&self) {
        let settled = wait_until(WAIT, || {
            let s = self.status();
            s["services"]
                .as_array()
                .is_some_and(|l| l.iter().all(|v| v["state"] != "Progressing"))
        });
        assert!(settled, "services still progressing:\n{}", self.context());
    }

    fn status(&self) -> Value {
        status_json(&self.addr)
    }

    fn last_pass(&self) -> Value {
        self.status()["lastPass"].clone()
    }

    fn pass_id(&self) -> u64 {
        self.last_pass()["passId"].as_u64().unwrap_or(0)
    }

    /// Push `main`, then wait for a pass that ran on `revision` and started after the
    /// push; returns its `lastPass`.
    fn push_and_wait(&self, revision: &str) -> Value {
        let before = self.pass_id();
        let body = serde_json::json!({"ref": "refs/heads/main"}).to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(body.as_bytes());
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let (code, reply) = http_post(
            &self.addr,
            "/hooks/git",
            &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)],
            &body,
        );
        assert_eq!(code, 202, "{reply}");
        let done = wait_until(WAIT, || {
            let s = self.status();
            s["revision"] == revision && s["lastPass"]["passId"].as_u64().unwrap_or(0) > before
        });
        assert!(done, "no pass on {revision}:\n{}", self.context());
        self.last_pass()
    }

    /// `ecsync_aws_api_calls_total` for one ECS operation, all results.
    fn ecs_calls(&self, operation: &str) -> f64 {
        let (_, text) = http_get(&self.addr, "/metrics");
        let want = format!("operation=\"{operation}\"");
        text.lines()
            .filter(|l| l.starts_with("ecsync_aws_api_calls_total{") && l.contains(&want))
            .filter(|l| l.contains("service=\"ECS\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics").1
    }

    fn context(&self) -> String {
        let status = common::try_http_get(&self.addr, "/status")
            .map(|(_, b)| b)
            .unwrap_or_else(|e| format!("(no /status: {e})"));
        format!("--- /status\n{status}\n--- logs\n{}", self.daemon.logs())
    }
}

/// Every ACTIVE service of `cluster`: name → (first container's image, desiredCount).
async fn live(moto: &Moto, cluster: &str) -> BTreeMap<String, (String, i32)> {
    let ecs = moto.ecs();
    let arns = ecs
        .list_services()
        .cluster(cluster)
        .max_results(100)
        .send()
        .await
        .expect("ListServices")
        .service_arns()
        .to_vec();
    let mut out = BTreeMap::new();
    for chunk in arns.chunks(10) {
        let described = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await
            .expect("DescribeServices");
        for s in described.services() {
            if s.status() != Some("ACTIVE") {
                continue;
            }
            let td = ecs
                .describe_task_definition()
                .task_definition(s.task_definition().unwrap_or_default())
                .send()
                .await
                .expect("DescribeTaskDefinition");
            let image = td
                .task_definition()
                .and_then(|t| t.container_definitions().first())
                .and_then(|c| c.image())
                .unwrap_or_default()
                .to_string();
            out.insert(
                s.service_name().unwrap_or_default().to_string(),
                (image, s.desired_count()),
            );
        }
    }
    out
}

/// Rollouts complete in moto, so no service stays "in progress" between pushes.
fn moto() -> Moto {
    Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "1")])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_updates_one_service_through_a_targeted_pass_that_lists_nothing() {
    let moto = moto();
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    for name in ["web", "api", "worker"] {
        repo.write(
            &format!("services/{name}.yaml"),
            &svc(name, &net, &format!("{name}:1"), 1),
        );
    }
    repo.commit("three services");
    let d = Running::start(&moto, &repo, &[]);
    let first = &d.status()["passes"];
    let first = first.as_array().and_then(|p| p.last()).expect("a pass");
    assert_eq!(first["scope"], "full", "{}", d.context());
    let listed = d.ecs_calls("ListServices");
    assert!(listed >= 1.0, "the first, full pass lists the cluster");

    repo.write("services/web.yaml", &svc("web", &net, "web:2", 1));
    let rev = repo.commit("web: web:2");
    let pass = d.push_and_wait(&rev);
    assert_eq!(pass["scope"], "targeted", "{}", d.context());
    assert_eq!(pass["services"], 1, "{}", d.context());
    assert_eq!(pass["result"], "ok", "{}", d.context());
    assert_eq!(live(&moto, "alpha").await["web"].0, "web:2");
    assert_eq!(d.ecs_calls("ListServices"), listed, "{}", d.context());

    // The others are still shown, and still measured: the report was merged.
    let status = d.status();
    let shown: Vec<&str> = status["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["service"].as_str())
        .collect();
    assert_eq!(shown, ["api", "web", "worker"], "{status}");
    // Once web's rollout is seen to finish (by a targeted requeue of web alone),
    // the state counts still cover all three.
    d.settle();
    let metrics = d.metrics();
    for name in ["api", "web", "worker"] {
        assert!(
            metrics.contains(&format!(
                "ecsync_service_drift{{cluster=\"alpha\",service=\"{name}\"}}"
            )),
            "{name} lost its series:\n{metrics}"
        );
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ecsync_services{state=\"Synced\"} 3")),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l
            .starts_with("ecsync_reconcile_total{result=\"ok\",scope=\"targeted\"} ")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_manifest_is_pruned_by_a_full_pass_and_a_targeted_pass_never_prunes() {
    let moto = moto();
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    // `stray` is ecsync's (same controller id) but declared in another repository:
    // an owned orphan for the daemon below, which only a full pass may prune.
    let other = GitRepo::new();
    other.write("services/stray.yaml", &svc("stray", &net, "stray:1", 1));
    other.commit("stray");
    let cache = tempfile::tempdir().expect("tempdir");
    let r = common::ecsync_in(&moto, &other, cache.path(), "apply", &[]);
    assert_eq!(r.code, 0, "{r}");

    let repo = GitRepo::new();
    for name in ["web", "api", "worker"] {
        repo.write(
            &format!("services/{name}.yaml"),
            &svc(name, &net, &format!("{name}:1"), 1),
        );
    }
    repo.commit("three services");
    // The first pass is full: it prunes the stray.
    let d = Running::start(&moto, &repo, &["--prune", "--max-prune-per-pass", "10"]);
    let first = live(&moto, "alpha").await;
    assert!(
        !first.contains_key("stray"),
        "the first pass is full: {first:?}"
    );

    // A second stray, then a push that only edits `web`: targeted, and it never prunes.
    other.write("services/stray2.yaml", &svc("stray2", &net, "stray:1", 1));
    other.commit("stray2");
    let r = common::ecsync_in(&moto, &other, cache.path(), "apply", &[]);
    assert_eq!(r.code, 0, "{r}");
    repo.write("services/web.yaml", &svc("web", &net, "web:2", 1));
    let rev = repo.commit("web: web:2");
    let pass = d.push_and_wait(&rev);
    assert_eq!(pass["scope"], "targeted", "{}", d.context());
    let now = live(&moto, "alpha").await;
    assert_eq!(now["web"].0, "web:2");
    assert!(
        now.contains_key("stray2"),
        "a targeted pass pruned: {now:?}"
    );

    // Deleting a manifest needs the prune view: a full pass, which prunes both.
    repo.remove("services/worker.yaml");
    let rev = repo.commit("no worker");
    let pass = d.push_and_wait(&rev);
    assert_eq!(pass["scope"], "full", "{}", d.context());
    assert!(
        pass["reason"]
            .as_str()
            .is_some_and(|r| r.contains("worker")),
        "{pass}"
    );
    let now = live(&moto, "alpha").await;
    assert!(!now.contains_key("worker"), "{now:?}\n{}", d.context());
    assert!(!now.contains_key("stray2"), "{now:?}\n{}", d.context());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_to_an_overlay_base_reaches_the_service_through_a_targeted_pass() {
    let moto = moto();
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    let overlay = r#"apiVersion: ecsync.io/v1alpha1
kind: Overlay
metadata:
  name: prod
spec:
  resources: [../../base]
  patches:
    - target: {kind: Service, name: web}
      patch:
        spec:
          desiredCount: 0
"#;
    repo.write("base/web.yaml", &svc("web", &net, "web:1", 1));
    repo.write("services/prod/overlay.yaml", overlay);
    repo.write("services/api.yaml", &svc("api", &net, "api:1", 1));
    repo.commit("an overlay");
    let d = Running::start(&moto, &repo, &[]);
    assert_eq!(live(&moto, "alpha").await["web"], ("web:1".into(), 0));

    // Only the base changes, outside --path.
    repo.write("base/web.yaml", &svc("web", &net, "web:2", 1));
    let rev = repo.commit("base: web:2");
    let pass = d.push_and_wait(&rev);
    assert_eq!(pass["scope"], "targeted", "{}", d.context());
    assert_eq!(pass["services"], 1, "{}", d.context());
    assert_eq!(live(&moto, "alpha").await["web"], ("web:2".into(), 0));

    repo.write(
        "services/prod/overlay.yaml",
        &overlay.replace("desiredCount: 0", "desiredCount: 1"),
    );
    let rev = repo.commit("prod: 1 task");
    let pass = d.push_and_wait(&rev);
    assert_eq!(pass["scope"], "targeted", "{}", d.context());
    assert_eq!(live(&moto, "alpha").await["web"], ("web:2".into(), 1));
}

/// One generated step of the commit sequence.
#[derive(Debug)]
enum Step {
    Add(String, usize),
    Image(String, String),
    Count(String, i32),
    Delete(String),
    Move(String, usize),
}

/// `n` seeded steps over services `s0`..`s5` in files `f0`..`f3` (several documents
/// a file), starting from `initial`.
fn steps(seed: u64, n: usize, initial: &BTreeMap<String, Decl>) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut state = initial.clone();
    let mut out = Vec::new();
    while out.len() < n {
        let name = format!("s{}", rng.usize(..6));
        let step = match (state.contains_key(&name), rng.usize(..4)) {
            (false, _) => Step::Add(name, rng.usize(..4)),
            (true, 0) => Step::Image(name, format!("img:{}", rng.u32(..1000))),
            (true, 1) => Step::Count(name, rng.i32(1..4)),
            (true, 2) if state.len() > 1 => Step::Delete(name),
            (true, _) => Step::Move(name, rng.usize(..4)),
        };
        apply_step(&mut state, &step);
        out.push(step);
    }
    out
}

#[derive(Debug, Clone)]
struct Decl {
    file: usize,
    image: String,
    count: i32,
}

fn apply_step(state: &mut BTreeMap<String, Decl>, step: &Step) {
    match step {
        Step::Add(name, file) => {
            state.insert(
                name.clone(),
                Decl {
                    file: *file,
                    image: format!("{name}:1"),
                    count: 1,
                },
            );
        }
        Step::Image(name, image) => {
            if let Some(d) = state.get_mut(name) {
                d.image = image.clone();
            }
        }
        Step::Count(name, count) => {
            if let Some(d) = state.get_mut(name) {
                d.count = *count;
            }
        }
        Step::Delete(name) => {
            state.remove(name);
        }
        Step::Move(name, file) => {
            if let Some(d) = state.get_mut(name) {
                d.file = *file;
            }
        }
    }
}

/// Write `state` as files `services/f<i>.yaml`, removing those left empty.
fn write_state(repo: &GitRepo, net: &Network, state: &BTreeMap<String, Decl>) {
    for file in 0..4 {
        let docs: Vec<String> = state
            .iter()
            .filter(|(_, d)| d.file == file)
            .map(|(name, d)| svc(name, net, &d.image, d.count))
            .collect();
        let path = format!("services/f{file}.yaml");
        if docs.is_empty() {
            if repo.path().join(&path).exists() {
                repo.remove(&path);
            }
        } else {
            repo.write(&path, &docs.join("---\n"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generated_commit_sequence_ends_the_same_with_targeted_and_with_full_passes() {
    let seed = std::env::var("ECSYNC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let (targeted_moto, full_moto) = (moto(), moto());
    let mut nets = Vec::new();
    for m in [&targeted_moto, &full_moto] {
        m.create_cluster("alpha").await;
        nets.push(m.default_network().await);
    }
    let mut state: BTreeMap<String, Decl> = (0..3)
        .map(|i| {
            (
                format!("s{i}"),
                Decl {
                    file: i % 2,
                    image: format!("s{i}:1"),
                    count: 1,
                },
            )
        })
        .collect();
    let plan = steps(seed, 10, &state);
    let (targeted_repo, full_repo) = (GitRepo::new(), GitRepo::new());
    write_state(&targeted_repo, &nets[0], &state);
    targeted_repo.commit("start");
    write_state(&full_repo, &nets[1], &state);
    full_repo.commit("start");
    let cache = tempfile::tempdir().expect("tempdir");
    let full = |msg: &str| {
        let r = common::ecsync_in(&full_moto, &full_repo, cache.path(), "apply", &["--prune"]);
        assert_eq!(r.code, 0, "{msg}: {r}");
    };
    full("start");
    let d = Running::start(&targeted_moto, &targeted_repo, &["--prune"]);

    let mut scopes = Vec::new();
    for (i, step) in plan.iter().enumerate() {
        apply_step(&mut state, step);
        let msg = format!("seed {seed} step {i}: {step:?}");
        write_state(&targeted_repo, &nets[0], &state);
        let rev = targeted_repo.commit(&msg);
        let pass = d.push_and_wait(&rev);
        assert_eq!(pass["result"], "ok", "{msg}\n{}", d.context());
        scopes.push(pass["scope"].as_str().unwrap_or_default().to_string());
        write_state(&full_repo, &nets[1], &state);
        full_repo.commit(&msg);
        full(&msg);
    }
    assert!(
        scopes.iter().any(|s| s == "targeted"),
        "seed {seed}: no targeted pass in {plan:?}: {scopes:?}"
    );
    let (a, b) = (
        live(&targeted_moto, "alpha").await,
        live(&full_moto, "alpha").await,
    );
    assert_eq!(a, b, "seed {seed}: {plan:?}\nscopes {scopes:?}");
    let want: BTreeMap<String, (String, i32)> = state
        .iter()
        .map(|(n, d)| (n.clone(), (d.image.clone(), d.count)))
        .collect();
    assert_eq!(a, want, "seed {seed}: {plan:?}");
}

/// `web` migrating off `web-ec2` and the instances tagged `app=web`, stopping
/// them 2 s after the migration completes; `api` beside it.
fn migrating_web(net: &Network, listener: &str) -> String {
    format!(
        "{}  loadBalancers:
    - targetGroup: web-ecs
      containerName: app
      containerPort: 8080
  migration:
    listener: {listener}
    from:
      targetGroup: web-ec2
      instances: {{tags: {{app: web}}}}
    steps: [50, 100]
    stepInterval: 1s
    decommission:
      action: stop
      after: 2s
",
        service_yaml("web", "alpha", net, "web:1", "targeted", 1)
    )
}

/// What the migration phase leaves on a finished migration (as `e2e_decommission`
/// stands in for it): all traffic on the ECS group, a healthy target there, and the
/// service's step tags saying the last step was taken an hour ago.
async fn finish_migration(moto: &Moto, ecs_tg: &str, legacy_tg: &str, listener: &str) {
    use aws_sdk_ecs::types::Tag;
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
    };
    moto.register_ip_targets(ecs_tg, &["172.31.0.10"]).await;
    let tuple = |arn: &str, weight| {
        TargetGroupTuple::builder()
            .target_group_arn(arn)
            .weight(weight)
            .build()
    };
    moto.elbv2()
        .modify_listener()
        .listener_arn(listener)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .forward_config(
                    ForwardActionConfig::builder()
                        .target_groups(tuple(ecs_tg, 100))
                        .target_groups(tuple(legacy_tg, 0))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("ModifyListener");
    let ecs = moto.ecs();
    let arn = ecs
        .describe_services()
        .cluster("alpha")
        .services("web")
        .send()
        .await
        .expect("DescribeServices")
        .services()[0]
        .service_arn()
        .unwrap_or_default()
        .to_string();
    let since =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() - Duration::from_secs(3600));
    ecs.tag_resource()
        .resource_arn(arn)
        .tags(
            Tag::builder()
                .key("ecsync.io/migration-step")
                .value("2")
                .build(),
        )
        .tags(
            Tag::builder()
                .key("ecsync.io/migration-step-since")
                .value(since.to_string())
                .build(),
        )
        .send()
        .await
        .expect("TagResource");
}

/// Each instance's state and tags.
async fn fleet(
    moto: &Moto,
    ids: &[String],
) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let out = moto
        .ec2()
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .expect("DescribeInstances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            let state = i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
                .unwrap_or_default();
            let tags = i
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect();
            (
                i.instance_id().unwrap_or_default().to_string(),
                (state, tags),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_targeted_pass_never_decommissions_a_due_fleet_the_next_full_pass_does() {
    let moto = moto();
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let legacy_tg = moto.create_target_group("web-ec2", "instance", 80).await;
    let ecs_tg = moto.create_target_group("web-ecs", "ip", 8080).await;
    moto.elbv2()
        .modify_target_group_attributes()
        .target_group_arn(&legacy_tg)
        .attributes(
            aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                .key("deregistration_delay.timeout_seconds")
                .value("1")
                .build(),
        )
        .send()
        .await
        .expect("ModifyTargetGroupAttributes");
    let (_, listener) = moto
        .create_alb_with_listener("web-alb", &net.subnets, &net.security_group, &legacy_tg)
        .await;
    let ids = moto.run_instances(2, &[("app", "web")]).await;
    moto.register_instances(&legacy_tg, &ids).await;
    let repo = GitRepo::new();
    repo.write("services/web.yaml", &migrating_web(&net, &listener));
    repo.write("services/api.yaml", &svc("api", &net, "api:1", 1));
    repo.commit("web migrates, api beside it");
    let cache = tempfile::tempdir().expect("tempdir");
    let r = common::ecsync_in(&moto, &repo, cache.path(), "apply", &[]);
    assert_eq!(r.code, 0, "{r}");
    finish_migration(&moto, &ecs_tg, &legacy_tg, &listener).await;

    // The first (full) pass starts the fleet's clock: due 2 s later.
    let d = Running::start(&moto, &repo, &[]);
    let pending = wait_until(WAIT, || {
        d.status()["decommission"]
            .as_array()
            .is_some_and(|l| l.len() == 2)
    });
    assert!(pending, "{}", d.context());
    let due = wait_until(WAIT, || {
        d.status()["decommission"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| humantime::parse_rfc3339(i["actsAt"].as_str()?).ok())
            .all(|t| t < std::time::SystemTime::now())
    });
    assert!(due, "{}", d.context());

    // Due now; a push that changes api is targeted and leaves the fleet alone.
    let before = fleet(&moto, &ids).await;
    repo.write("services/api.yaml", &svc("api", &net, "api:2", 1));
    let rev = repo.commit("api: api:2");
    let pass = d.push_and_wait(&rev);
    assert_eq!(pass["scope"], "targeted", "{}", d.context());
    assert_eq!(live(&moto, "alpha").await["api"].0, "api:2");
    assert_eq!(fleet(&moto, &ids).await, before, "{}", d.context());
    assert_eq!(
        d.status()["decommission"].as_array().map(Vec::len),
        Some(2),
        "a targeted pass keeps what /status knew of the fleet"
    );

    // A push with no new revision, nothing rolling out, is a full pass: the
    // decommission goes on.
    let moved = wait_until(WAIT, || {
        d.settle();
        let pass = d.push_and_wait(&rev);
        assert_eq!(pass["scope"], "full", "{}", d.context());
        let now = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(fleet(&moto, &ids))
        });
        now != before
    });
    assert!(moved, "{}", d.context());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_progress_requeue_describes_only_the_services_in_progress() {
    // moto runs no task: a service that wants one stays in progress for good, one
    // that wants none is settled at once.
    let moto = Moto::start();
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    for i in 0..12 {
        let name = format!("busy-{i:02}");
        repo.write(
            &format!("services/{name}.yaml"),
            &svc(&name, &net, "app:1", 1),
        );
    }
    for i in 0..8 {
        let name = format!("idle-{i:02}");
        repo.write(
            &format!("services/{name}.yaml"),
            &svc(&name, &net, "app:1", 0),
        );
    }
    repo.commit("twelve busy, eight idle");
    let d = Running::spawn(&moto, &repo, &[]);

    // Each requeue (5 s, then 10 s, ... while nothing changes) looks at the twelve:
    // ceil(12/10) = 2 DescribeServices, and no ListServices.
    let requeue = |after: u64| {
        let done = wait_until(WAIT, || {
            let p = d.last_pass();
            p["passId"].as_u64().unwrap_or(0) > after && p["kind"] == "requeue"
        });
        assert!(done, "no requeue after pass {after}:\n{}", d.context());
        let p = d.last_pass();
        let counts = (d.ecs_calls("DescribeServices"), d.ecs_calls("ListServices"));
        (p, counts)
    };
    // The first requeue still looks at all twenty (all were created, so all were in
    // progress); it finds the idle ones settled.
    let (first, _) = requeue(1);
    assert_eq!(first["scope"], "targeted", "{}", d.context());
    assert_eq!(first["services"], 20, "{}", d.context());
    let (first, (described, listed)) = requeue(first["passId"].as_u64().unwrap_or(0));
    assert_eq!(first["services"], 12, "{}", d.context());
    let id = first["passId"].as_u64().unwrap_or(0);
    let (second, (described_after, listed_after)) = requeue(id);
    assert_eq!(
        second["passId"].as_u64(),
        Some(id + 1),
        "one pass at a time:\n{}",
        d.context()
    );
    assert_eq!(second["services"], 12, "{}", d.context());
    assert_eq!(described_after - described, 2.0, "{}", d.context());
    assert_eq!(listed_after, listed, "{}", d.context());
}
