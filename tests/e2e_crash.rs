//! Crash safety: SIGKILL the daemon at seeded random moments across a whole
//! apply + migration + decommission, restarting it each time. The end state
//! must equal an uninterrupted run's, nothing may act early, and no service may
//! get more than one extra task-definition revision.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use common::{Daemon, GitRepo, Moto, ecsync_with, service_yaml};

const STEP_INTERVAL: Duration = Duration::from_secs(2);
const AFTER: Duration = Duration::from_secs(2);

struct Scenario {
    moto: Moto,
    repo: GitRepo,
    cache: tempfile::TempDir,
    legacy_instances: Vec<String>,
    listener: String,
    ecs_tg: String,
}

async fn scenario() -> Scenario {
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    moto.create_cluster("prod").await;
    let net = moto.default_network().await;
    let legacy_tg = moto.create_target_group("web-ec2", "instance", 80).await;
    let ecs_tg = moto.create_target_group("web-ecs", "ip", 8080).await;
    // Stand-in for the tasks ECS would place: the ECS side is healthy.
    moto.register_ip_targets(&ecs_tg, &["172.31.0.10"]).await;
    let (_, listener) = moto
        .create_alb_with_listener("web", &net.subnets, &net.security_group, &legacy_tg)
        .await;
    let legacy_instances = moto.run_instances(3, &[("app", "web")]).await;
    moto.register_instances(&legacy_tg, &legacy_instances).await;
    // Two instances that no rule selects: they must never be touched.
    moto.run_instances(2, &[("app", "other")]).await;

    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &format!(
            "{}  loadBalancers: [{{targetGroup: web-ecs, containerName: app, containerPort: 8080}}]
  migration:
    listener: {{loadBalancer: web, port: 80}}
    from: {{targetGroup: web-ec2, instances: {{tags: {{app: web}}}}}}
    steps: [50, 100]
    stepInterval: {}s
    decommission: {{action: stop, after: {}s}}
",
            service_yaml("web", "prod", &net, "web:1", "x", 1),
            STEP_INTERVAL.as_secs(),
            AFTER.as_secs()
        ),
    );
    repo.write(
        "services/api.yaml",
        &service_yaml("api", "prod", &net, "api:1", "y", 2),
    );
    repo.commit("web migrates, api plain");
    Scenario {
        moto,
        repo,
        cache: tempfile::tempdir().unwrap(),
        legacy_instances,
        listener,
        ecs_tg,
    }
}

fn daemon(s: &Scenario) -> Daemon {
    let mut cmd = ecsync_with(&s.moto);
    cmd.args(["run", "--repo", &s.repo.url(), "--path", "services"])
        .args(["--interval", "1s", "--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(s.cache.path());
    Daemon::spawn(cmd)
}

#[derive(Debug, PartialEq)]
struct EndState {
    ecs_weight: Option<i32>,
    instances: BTreeMap<String, String>,
    desired: BTreeMap<String, i32>,
    images: BTreeMap<String, String>,
}

async fn end_state(s: &Scenario) -> EndState {
    let elbv2 = s.moto.elbv2();
    let listeners = elbv2
        .describe_listeners()
        .listener_arns(&s.listener)
        .send()
        .await
        .unwrap();
    let action = &listeners.listeners()[0].default_actions()[0];
    let ecs_weight = action.forward_config().and_then(|fc| {
        fc.target_groups()
            .iter()
            .find(|t| t.target_group_arn() == Some(s.ecs_tg.as_str()))
            .and_then(|t| t.weight())
    });
    let ec2 = s.moto.ec2();
    let out = ec2.describe_instances().send().await.unwrap();
    let mut instances = BTreeMap::new();
    for r in out.reservations() {
        for i in r.instances() {
            let app = i
                .tags()
                .iter()
                .find(|t| t.key() == Some("app"))
                .and_then(|t| t.value())
                .unwrap_or_default();
            let state = i
                .state()
                .and_then(|st| st.name())
                .map(|n| n.as_str())
                .unwrap_or_default();
            instances.insert(
                format!("{app}/{}", i.instance_id().unwrap()),
                state.to_string(),
            );
        }
    }
    let ecs = s.moto.ecs();
    let svcs = ecs
        .describe_services()
        .cluster("prod")
        .services("web")
        .services("api")
        .send()
        .await
        .unwrap();
    let mut desired = BTreeMap::new();
    let mut images = BTreeMap::new();
    for svc in svcs.services() {
        let name = svc.service_name().unwrap().to_string();
        desired.insert(name.clone(), svc.desired_count());
        let td = ecs
            .describe_task_definition()
            .task_definition(svc.task_definition().unwrap())
            .send()
            .await
            .unwrap();
        let image = td.task_definition().unwrap().container_definitions()[0]
            .image()
            .unwrap()
            .to_string();
        images.insert(name, image);
    }
    EndState {
        ecs_weight,
        instances,
        desired,
        images,
    }
}

fn expected(s: &Scenario) -> EndState {
    let mut instances = BTreeMap::new();
    for id in &s.legacy_instances {
        instances.insert(format!("web/{id}"), "stopped".to_string());
    }
    EndState {
        ecs_weight: Some(100),
        instances,
        desired: BTreeMap::from([("api".into(), 2), ("web".into(), 1)]),
        images: BTreeMap::from([
            ("api".into(), "api:1".into()),
            ("web".into(), "web:1".into()),
        ]),
    }
}

/// The `app=web` instances' state and the `app=other` ones'.
fn split(state: &EndState) -> (BTreeMap<&String, &String>, BTreeMap<&String, &String>) {
    let web = state
        .instances
        .iter()
        .filter(|(k, _)| k.starts_with("web/"))
        .collect();
    let other = state
        .instances
        .iter()
        .filter(|(k, _)| k.starts_with("other/"))
        .collect();
    (web, other)
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

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_converges_to_the_uninterrupted_end_state() {
    let seed: u64 = std::env::var("ECSYNC_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    let mut rng = fastrand::Rng::with_seed(seed);
    let s = scenario().await;
    let started = SystemTime::now();

    // Kill it again and again, at random moments, for as long as the whole
    // scenario takes uninterrupted (steps + grace) and then some.
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut d = daemon(&s);
        std::thread::sleep(Duration::from_millis(rng.u64(150..1800)));
        d.kill();
        kills += 1;
        // Nothing selected may stop before the migration could have finished
        // and the grace period run out: two steps held, then `after`.
        let state = end_state(&s).await;
        let (web, other) = split(&state);
        if web.values().any(|st| *st == "stopped") {
            let earliest = STEP_INTERVAL * 2 + AFTER;
            assert!(
                started.elapsed().unwrap() >= earliest,
                "an instance stopped {:?} after the start, before {earliest:?} (seed {seed})",
                started.elapsed().unwrap()
            );
        }
        assert!(
            other.values().all(|st| *st == "running"),
            "an unselected instance was touched (seed {seed}): {other:?}"
        );
    }

    // Then let it finish undisturbed.
    let mut d = daemon(&s);
    let want = expected(&s);
    let finish = Instant::now() + Duration::from_secs(60);
    let mut last = end_state(&s).await;
    while Instant::now() < finish {
        last = end_state(&s).await;
        let (web, _) = split(&last);
        let done = last.ecs_weight == want.ecs_weight
            && web.values().all(|st| *st == "stopped")
            && last.desired == want.desired;
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let logs = d.logs();
    d.kill();
    let (web, other) = split(&last);
    assert_eq!(
        last.ecs_weight, want.ecs_weight,
        "after {kills} kills (seed {seed})\n{logs}"
    );
    assert!(
        web.values().all(|st| *st == "stopped"),
        "{last:?} (seed {seed})\n{logs}"
    );
    assert!(other.values().all(|st| *st == "running"), "{last:?}");
    assert_eq!(last.desired, want.desired);
    assert_eq!(last.images, want.images);
    for family in ["web", "api"] {
        let n = revisions(&s.moto, family).await;
        assert!(
            n <= 2,
            "{family}: {n} task definition revisions after {kills} kills (seed {seed})"
        );
    }
}
