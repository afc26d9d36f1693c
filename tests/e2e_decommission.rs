//! End to end against moto: decommissioning the EC2 fleet a migration left behind
//! (issue 5; DESIGN §4 and §5).
//!
//! A migration's progress is what the migration phase leaves in the ECS service's
//! tags (`ecsync.io/migration-step`, `ecsync.io/migration-step-since`), so the tests
//! set those tags directly to stand for a complete, in-progress or rolled-back one.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::AttributeBooleanValue;
use aws_sdk_ecs::types::Tag as EcsTag;
use aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute;
use common::{
    Daemon, GitRepo, Moto, Network, ecsync_with, free_port, run, service_yaml, try_http_get,
    wait_until,
};

const DECOMMISSION: &str = "ecsync.io/decommission";
/// The grace period in the manifests below. Long enough that a second `ecsync apply`
/// started right after the first one finishes inside it even on a loaded CI machine
/// (at 2 s, one run under load saw the second apply act after the clock ran out).
const AFTER: Duration = Duration::from_secs(6);

fn apply(moto: &Moto, repo: &GitRepo, cache: &tempfile::TempDir, extra: &[&str]) -> common::Run {
    common::ecsync_in(moto, repo, cache.path(), "apply", extra)
}

/// A Fargate service behind `<name>-ecs`, migrating off `<name>-ec2` and the
/// instances tagged `app=<name>`.
fn migrating_service(name: &str, net: &Network, listener: &str) -> String {
    format!(
        "{}  loadBalancers:
    - targetGroup: {name}-ecs
      containerName: app
      containerPort: 8080
  migration:
    listener: {listener}
    from:
      targetGroup: {name}-ec2
      instances: {{tags: {{app: {name}}}}}
    steps: [50, 100]
    stepInterval: 1s
    decommission:
      action: stop
      after: {}s
",
        service_yaml(name, "prod", net, "app:1", "x", 1),
        AFTER.as_secs()
    )
}

struct Setup {
    repo: GitRepo,
    cache: tempfile::TempDir,
    legacy: BTreeMap<String, String>,
}

/// Cluster, target groups, listeners and the manifests of `names`, applied once.
async fn setup(moto: &Moto, names: &[&str]) -> Setup {
    moto.create_cluster("prod").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    let mut legacy = BTreeMap::new();
    for name in names {
        let ec2_tg = moto
            .create_target_group(&format!("{name}-ec2"), "instance", 80)
            .await;
        moto.create_target_group(&format!("{name}-ecs"), "ip", 8080)
            .await;
        // Legacy deregistration delay: short, so nothing here waits on it.
        moto.elbv2()
            .modify_target_group_attributes()
            .target_group_arn(&ec2_tg)
            .attributes(
                TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value("1")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let (_, listener) = moto
            .create_alb_with_listener(
                &format!("{name}-alb"),
                &net.subnets,
                &net.security_group,
                &ec2_tg,
            )
            .await;
        repo.write(
            &format!("services/{name}.yaml"),
            &migrating_service(name, &net, &listener),
        );
        legacy.insert(name.to_string(), ec2_tg);
    }
    repo.commit("migrating services");
    let cache = tempfile::tempdir().unwrap();
    let r = apply(moto, &repo, &cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    Setup {
        repo,
        cache,
        legacy,
    }
}

/// All of `<service>-alb`'s traffic to the ECS group, as a finished migration
/// leaves its listener.
async fn set_listener_to_ecs(moto: &Moto, service: &str, ecs_tg: &str) {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
    };
    let elbv2 = moto.elbv2();
    let lb = elbv2
        .describe_load_balancers()
        .names(format!("{service}-alb"))
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let listeners = elbv2
        .describe_listeners()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .unwrap();
    let listener = &listeners.listeners()[0];
    let legacy = listener.default_actions()[0]
        .target_group_arn()
        .map(str::to_string)
        .or_else(|| {
            listener.default_actions()[0]
                .forward_config()?
                .target_groups()
                .iter()
                .find(|t| t.target_group_arn() != Some(ecs_tg))?
                .target_group_arn()
                .map(str::to_string)
        })
        .unwrap();
    let tuple = |arn: &str, weight| {
        TargetGroupTuple::builder()
            .target_group_arn(arn)
            .weight(weight)
            .build()
    };
    elbv2
        .modify_listener()
        .listener_arn(listener.listener_arn().unwrap())
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .forward_config(
                    ForwardActionConfig::builder()
                        .target_groups(tuple(ecs_tg, 100))
                        .target_groups(tuple(&legacy, 0))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// moto whose ECS deployments complete, so the migration's deployment gate can pass.
fn moto_with_running_services() -> Moto {
    Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "1")])
}

/// Stand in for the migration phase: record `step` steps taken (the migration
/// module's encoding: `steps.len()` = the last step, 100%) an hour ago. The
/// migration phase runs on every pass and re-checks its gates, so a finished
/// migration also gets what it would have had live: a healthy target in the
/// ECS group (moto places no tasks). An unfinished one gets none, and stays
/// unfinished.
async fn set_migration_step(moto: &Moto, service: &str, step: usize) {
    if step == 2 {
        let groups = moto
            .elbv2()
            .describe_target_groups()
            .names(format!("{service}-ecs"))
            .send()
            .await
            .unwrap();
        let arn = groups.target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_string();
        moto.register_ip_targets(&arn, &["172.31.0.10"]).await;
        set_listener_to_ecs(moto, service, &arn).await;
    }
    let ecs = moto.ecs();
    let arn = ecs
        .describe_services()
        .cluster("prod")
        .services(service)
        .send()
        .await
        .unwrap()
        .services()[0]
        .service_arn()
        .unwrap()
        .to_string();
    let since = humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(3600));
    ecs.tag_resource()
        .resource_arn(arn)
        .tags(
            EcsTag::builder()
                .key("ecsync.io/migration-step")
                .value(step.to_string())
                .build(),
        )
        .tags(
            EcsTag::builder()
                .key("ecsync.io/migration-step-since")
                .value(since.to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct InstanceView {
    state: String,
    tags: BTreeMap<String, String>,
}

async fn instances(moto: &Moto, ids: &[String]) -> BTreeMap<String, InstanceView> {
    let out = moto
        .ec2()
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            (
                i.instance_id().unwrap().to_string(),
                InstanceView {
                    state: i.state().unwrap().name().unwrap().as_str().to_string(),
                    tags: i
                        .tags()
                        .iter()
                        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
                        .collect(),
                },
            )
        })
        .collect()
}

async fn registered(moto: &Moto, target_group: &str) -> BTreeSet<String> {
    moto.elbv2()
        .describe_target_health()
        .target_group_arn(target_group)
        .send()
        .await
        .unwrap()
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target().and_then(|t| t.id()).map(str::to_string))
        .collect()
}

fn stopped(view: &BTreeMap<String, InstanceView>) -> BTreeSet<String> {
    view.iter()
        .filter(|(_, v)| v.state == "stopped")
        .map(|(id, _)| id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mixed_fleet_ends_with_exactly_the_eligible_instances_stopped_one_per_pass() {
    let moto = moto_with_running_services();
    let s = setup(&moto, &["web", "api"]).await;
    let other_tg = moto.create_target_group("other", "instance", 80).await;
    let web_tg = s.legacy["web"].clone();
    let api_tg = s.legacy["api"].clone();

    let eligible = moto.run_instances(4, &[("app", "web")]).await;
    let in_progress = moto.run_instances(2, &[("app", "api")]).await;
    let untagged = moto.run_instances(2, &[]).await;
    let protected = moto
        .run_instances(1, &[("app", "web"), ("ecsync.io/protect", "true")])
        .await;
    let termination_protected = moto.run_instances(1, &[("app", "web")]).await;
    let in_unmanaged_group = moto.run_instances(1, &[("app", "web")]).await;
    let lookalike = moto.run_instances(1, &[("app", "web-canary")]).await;
    moto.ec2()
        .modify_instance_attribute()
        .instance_id(&termination_protected[0])
        .disable_api_termination(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .unwrap();
    let mut in_web: Vec<String> = eligible.clone();
    in_web.extend(protected.iter().cloned());
    in_web.extend(termination_protected.iter().cloned());
    in_web.extend(in_unmanaged_group.iter().cloned());
    // An untagged instance in the legacy group is not the migration's to remove.
    in_web.push(untagged[0].clone());
    moto.register_instances(&web_tg, &in_web).await;
    moto.register_instances(&api_tg, &in_progress).await;
    moto.register_instances(&other_tg, &in_unmanaged_group)
        .await;

    let all: Vec<String> = [
        &eligible,
        &in_progress,
        &untagged,
        &protected,
        &termination_protected,
        &in_unmanaged_group,
        &lookalike,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    assert_eq!(all.len(), 12);
    let before = instances(&moto, &all).await;

    set_migration_step(&moto, "web", 2).await; // 100%, for an hour: complete
    set_migration_step(&moto, "api", 1).await; // 50%: in progress

    // Dry run and report mode decide, show, and change nothing.
    let r = apply(&moto, &s.repo, &s.cache, &["--dry-run", "--output", "json"]);
    assert_eq!(r.code, 0, "{r}");
    let j = r.json();
    assert_eq!(j["awsCalls"]["mutating"], 0, "{r}");
    let listed: BTreeMap<String, String> = j["decommission"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["instanceId"].as_str().unwrap().to_string(),
                i["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for id in &eligible {
        assert_eq!(listed.get(id).map(String::as_str), Some("draining"), "{r}");
    }
    for id in protected
        .iter()
        .chain(&termination_protected)
        .chain(&in_unmanaged_group)
    {
        assert_eq!(
            listed.get(id).map(String::as_str),
            Some("skipped"),
            "{id}: {r}"
        );
    }
    assert_eq!(listed.len(), 7, "nothing else is even considered: {r}");
    let r = apply(&moto, &s.repo, &s.cache, &["--mode", "report"]);
    assert_eq!(r.code, 0, "{r}");
    let mut diff = ecsync_with(&moto);
    diff.args([
        "diff",
        "--repo",
        &s.repo.url(),
        "--path",
        "services",
        "--cache-dir",
    ])
    .arg(s.cache.path());
    let d = run(diff);
    assert_ne!(d.code, 1, "{d}");
    assert!(
        d.stdout
            .contains(&format!("~ instance {} draining (stop)", eligible[0])),
        "{d}"
    );
    assert!(d.stdout.contains("termination protection is on"), "{d}");
    assert_eq!(
        instances(&moto, &all).await,
        before,
        "read-only passes changed instances"
    );
    assert_eq!(registered(&moto, &web_tg).await.len(), in_web.len());

    // Pass 1: the eligible ones are tagged pending and leave the legacy group.
    let r = apply(&moto, &s.repo, &s.cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    let after_first = instances(&moto, &all).await;
    for id in &eligible {
        let v = &after_first[id];
        assert_eq!(v.state, "running");
        assert!(v.tags[DECOMMISSION].starts_with("pending@"), "{v:?}");
        assert_eq!(v.tags["ecsync.io/decommission-for"], "prod/web");
    }
    let remaining = registered(&moto, &web_tg).await;
    let expected: BTreeSet<String> = in_web
        .iter()
        .filter(|i| !eligible.contains(i))
        .cloned()
        .collect();
    assert_eq!(remaining, expected);
    assert_eq!(registered(&moto, &api_tg).await.len(), 2);
    assert_eq!(registered(&moto, &other_tg).await.len(), 1);

    // A new process before the grace period ends: nothing acts, the clock is kept.
    let r = apply(&moto, &s.repo, &s.cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    let again = instances(&moto, &all).await;
    assert!(stopped(&again).is_empty(), "acted before the grace period");
    for id in &eligible {
        assert_eq!(
            again[id].tags[DECOMMISSION],
            after_first[id].tags[DECOMMISSION]
        );
    }

    // After the grace period: one stop per pass.
    std::thread::sleep(AFTER + Duration::from_secs(1));
    for pass in 1..=eligible.len() {
        let r = apply(&moto, &s.repo, &s.cache, &["--output", "json"]);
        assert_eq!(r.code, 0, "{r}");
        let now = instances(&moto, &all).await;
        let down = stopped(&now);
        assert_eq!(down.len(), pass, "pass {pass}: {down:?}\n{r}");
        assert!(down.iter().all(|id| eligible.contains(id)), "{down:?}");
        for id in &down {
            assert!(
                now[id].tags[DECOMMISSION].starts_with("stopped@"),
                "{:?}",
                now[id]
            );
        }
    }
    // Converged: another pass makes no mutating call at all.
    let r = apply(&moto, &s.repo, &s.cache, &["--output", "json"]);
    assert_eq!(r.json()["awsCalls"]["mutating"], 0, "{r}");

    let end = instances(&moto, &all).await;
    assert_eq!(stopped(&end), eligible.iter().cloned().collect());
    for id in all.iter().filter(|i| !eligible.contains(i)) {
        assert_eq!(end[id], before[id], "{id} was touched");
    }
    assert_eq!(registered(&moto, &web_tg).await, expected);
    assert_eq!(registered(&moto, &api_tg).await.len(), 2);
    assert_eq!(registered(&moto, &other_tg).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_back_before_the_grace_period_ends_leaves_every_instance_running_untagged_and_registered()
 {
    let moto = moto_with_running_services();
    let s = setup(&moto, &["web"]).await;
    let web_tg = s.legacy["web"].clone();
    let fleet = moto.run_instances(3, &[("app", "web")]).await;
    moto.register_instances(&web_tg, &fleet).await;
    let before = instances(&moto, &fleet).await;

    set_migration_step(&moto, "web", 2).await;
    let r = apply(&moto, &s.repo, &s.cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert!(registered(&moto, &web_tg).await.is_empty());
    assert!(
        instances(&moto, &fleet)
            .await
            .values()
            .all(|v| v.tags.contains_key(DECOMMISSION))
    );

    // The ECS side turns unhealthy at 100%: the migration is no longer
    // complete, so the fleet is handed back at once (registered again and
    // untagged), and the migration can roll back onto it.
    let ecs_tg = moto
        .elbv2()
        .describe_target_groups()
        .names("web-ecs")
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    moto.elbv2()
        .deregister_targets()
        .target_group_arn(&ecs_tg)
        .targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id("172.31.0.10")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let r = apply(&moto, &s.repo, &s.cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(instances(&moto, &fleet).await, before, "{r}");
    assert_eq!(
        registered(&moto, &web_tg).await,
        fleet.iter().cloned().collect()
    );

    // Long after the grace period, with traffic rolled back: nothing is ever
    // switched off.
    std::thread::sleep(AFTER + Duration::from_secs(1));
    for _ in 0..4 {
        let r = apply(&moto, &s.repo, &s.cache, &[]);
        assert_eq!(r.code, 0, "{r}");
    }
    assert_eq!(instances(&moto, &fleet).await, before);
    assert_eq!(
        registered(&moto, &web_tg).await,
        fleet.iter().cloned().collect()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_lists_pending_instances_and_when_they_act_and_restarts_keep_the_clock() {
    let moto = moto_with_running_services();
    let s = setup(&moto, &["web"]).await;
    let fleet = moto.run_instances(2, &[("app", "web")]).await;
    moto.register_instances(&s.legacy["web"], &fleet).await;
    set_migration_step(&moto, "web", 2).await;

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = |extra: &[&str]| {
        let mut cmd = ecsync_with(&moto);
        cmd.args([
            "run",
            "--repo",
            &s.repo.url(),
            "--path",
            "services",
            "--interval",
            "1s",
            "--listen",
            &addr,
            "--cache-dir",
        ])
        .arg(s.cache.path())
        .args(extra);
        Daemon::spawn(cmd)
    };
    let status = || -> Option<serde_json::Value> {
        let (code, body) = try_http_get(&addr, "/status").ok()?;
        (code == 200).then(|| serde_json::from_str(&body).ok())?
    };
    let listed = |v: &serde_json::Value| v["decommission"].as_array().map_or(0, Vec::len);

    // Report mode: /status shows both, with the time each will act, and nothing changes.
    let d = daemon(&["--mode", "report"]);
    assert!(
        wait_until(Duration::from_secs(30), || status()
            .is_some_and(|v| listed(&v) == 2)),
        "{}",
        d.logs()
    );
    let v = status().unwrap();
    for i in v["decommission"].as_array().unwrap() {
        assert!(
            i["actsAt"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
        assert_eq!(i["action"], "stop");
        assert!(
            i["reason"]
                .as_str()
                .unwrap()
                .contains("migration of prod/web"),
            "{v}"
        );
    }
    drop(d);
    assert!(
        instances(&moto, &fleet)
            .await
            .values()
            .all(|v| !v.tags.contains_key(DECOMMISSION))
    );

    // Auto mode with a cap of 0: the clocks start, nothing is stopped; kill -9.
    let mut d = daemon(&["--max-decommission-per-pass", "0"]);
    assert!(wait_until_tagged(&moto, &fleet).await, "{}", d.logs());
    let clocks: BTreeMap<String, String> = instances(&moto, &fleet)
        .await
        .into_iter()
        .map(|(id, v)| (id, v.tags[DECOMMISSION].clone()))
        .collect();
    d.kill();

    // Restarted (still capped) a second later: two full passes keep the exact clocks.
    std::thread::sleep(Duration::from_secs(1));
    let mut d = daemon(&["--max-decommission-per-pass", "0"]);
    assert!(
        wait_until(Duration::from_secs(30), || status()
            .is_some_and(|v| v["lastPass"]["passId"].as_u64() >= Some(2))),
        "{}",
        d.logs()
    );
    for (id, v) in instances(&moto, &fleet).await {
        assert_eq!(
            v.tags[DECOMMISSION], clocks[&id],
            "the clock moved on restart"
        );
        assert_eq!(v.state, "running");
    }
    d.kill();

    // Uncapped after the grace period: both stop, one per pass, timed from the
    // original clocks.
    std::thread::sleep(AFTER);
    let d = daemon(&[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if stopped(&instances(&moto, &fleet).await).len() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", d.logs());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let at = |tag: &str| humantime::parse_rfc3339(tag.split_once('@').unwrap().1).unwrap();
    for (id, v) in instances(&moto, &fleet).await {
        let stopped_at = at(&v.tags[DECOMMISSION]);
        assert!(
            stopped_at >= at(&clocks[&id]) + AFTER,
            "{id}: {v:?} vs {}",
            clocks[&id]
        );
    }
    let logs = d.logs();
    let evidence: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("decommissioned instance"))
        .collect();
    assert_eq!(evidence.len(), 2, "{logs}");
    for line in evidence {
        // Which migration, since when, which groups it left.
        assert!(
            line.contains("migration of prod/web at 100% on ECS since"),
            "{line}"
        );
        assert!(line.contains("web-ec2"), "{line}");
    }
    assert!(
        wait_until(Duration::from_secs(10), || status().is_some_and(|v| {
            v["decommission"]
                .as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|i| i["state"] == "stopped"))
        })),
        "{}",
        d.logs()
    );
    let (code, metrics) = try_http_get(&addr, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("ecsync_ec2_decommission_total{action=\"stop\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ecsync_ec2_orphans{state=\"stopped\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ecsync_ec2_orphans{state=\"pending\"} 0"),
        "{metrics}"
    );
}

async fn wait_until_tagged(moto: &Moto, ids: &[String]) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if instances(moto, ids).await.values().all(|v| {
            v.tags
                .get(DECOMMISSION)
                .is_some_and(|c| c.starts_with("pending@"))
        }) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn owned_instances_of_a_service_gone_from_git_start_their_clock_only_with_prune() {
    let moto = moto_with_running_services();
    let s = setup(&moto, &["web"]).await;
    let owned_tg = moto.create_target_group("gone-ec2", "instance", 80).await;
    moto.elbv2()
        .add_tags()
        .resource_arns(&owned_tg)
        .tags(
            aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                .key("ecsync.io/managed-by")
                .value("ecsync")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ours = moto
        .run_instances(
            1,
            &[
                ("ecsync.io/managed-by", "ecsync"),
                ("ecsync.io/service", "prod/gone"),
            ],
        )
        .await;
    let theirs = moto
        .run_instances(
            1,
            &[
                ("ecsync.io/managed-by", "another-controller"),
                ("ecsync.io/service", "prod/gone"),
            ],
        )
        .await;
    let still_declared = moto
        .run_instances(
            1,
            &[
                ("ecsync.io/managed-by", "ecsync"),
                ("ecsync.io/service", "prod/web"),
            ],
        )
        .await;
    moto.register_instances(&owned_tg, &ours).await;
    let all: Vec<String> = [&ours, &theirs, &still_declared]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let before = instances(&moto, &all).await;

    let r = apply(&moto, &s.repo, &s.cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        instances(&moto, &all).await,
        before,
        "without --prune nothing is a candidate"
    );

    let r = apply(&moto, &s.repo, &s.cache, &["--prune", "--output", "json"]);
    assert_eq!(r.code, 0, "{r}");
    let after = instances(&moto, &all).await;
    let clock = &after[&ours[0]].tags[DECOMMISSION];
    assert!(clock.starts_with("pending@"), "{after:?}");
    assert_eq!(
        after[&ours[0]].tags["ecsync.io/decommission-for"],
        "prod/gone"
    );
    assert!(registered(&moto, &owned_tg).await.is_empty());
    assert_eq!(
        after[&ours[0]].state, "running",
        "the prune grace period is an hour"
    );
    for id in theirs.iter().chain(&still_declared) {
        assert_eq!(after[id], before[id], "{id} was touched");
    }
    let listed = &r.json()["decommission"]["instances"];
    assert_eq!(listed.as_array().unwrap().len(), 1, "{r}");
    assert_eq!(listed[0]["why"]["kind"], "prune", "{r}");
}

/// A few randomly generated fleets through moto (the property test drives the pure
/// planner over thousands): at the end exactly the instances DESIGN §5 allows are
/// stopped, and every other instance is as it was, tags and registrations included.
#[tokio::test(flavor = "multi_thread")]
async fn generated_fleets_through_moto_stop_exactly_what_the_rules_allow() {
    let mut total_eligible = 0;
    for seed in [7u64, 1234, 99_991] {
        let mut rng = fastrand::Rng::with_seed(seed);
        let moto = moto_with_running_services();
        let s = setup(&moto, &["web", "api"]).await;
        let other_tg = moto.create_target_group("other", "instance", 80).await;
        let web_tg = s.legacy["web"].clone();
        set_migration_step(&moto, "web", 2).await; // complete
        set_migration_step(&moto, "api", 1).await; // in progress

        let n = rng.usize(6..=12);
        let mut expected_stopped = BTreeSet::new();
        let mut all = Vec::new();
        let mut in_web = Vec::new();
        let mut in_other = Vec::new();
        let ec2 = moto.ec2();
        for _ in 0..n {
            let app = ["web", "web", "api", "web-canary", ""][rng.usize(..5)];
            let protect = rng.u8(..10) == 0;
            let mut tags: Vec<(&str, &str)> = Vec::new();
            if !app.is_empty() {
                tags.push(("app", app));
            }
            if protect {
                tags.push(("ecsync.io/protect", "true"));
            }
            let id = moto.run_instances(1, &tags).await.remove(0);
            let termination = rng.u8(..8) == 0;
            let stop = rng.u8(..8) == 0;
            if termination {
                ec2.modify_instance_attribute()
                    .instance_id(&id)
                    .disable_api_termination(AttributeBooleanValue::builder().value(true).build())
                    .send()
                    .await
                    .unwrap();
            }
            if stop {
                ec2.modify_instance_attribute()
                    .instance_id(&id)
                    .disable_api_stop(AttributeBooleanValue::builder().value(true).build())
                    .send()
                    .await
                    .unwrap();
            }
            if rng.u8(..10) < 7 {
                in_web.push(id.clone());
            }
            let foreign = rng.u8(..7) == 0;
            if foreign {
                in_other.push(id.clone());
            }
            // DESIGN §5, restated for this fleet.
            if app == "web" && !protect && !termination && !stop && !foreign {
                expected_stopped.insert(id.clone());
            }
            all.push(id);
        }
        if !in_web.is_empty() {
            moto.register_instances(&web_tg, &in_web).await;
        }
        if !in_other.is_empty() {
            moto.register_instances(&other_tg, &in_other).await;
        }
        eprintln!(
            "seed {seed}: {n} instances, {} eligible, {} in web-ec2, {} in other",
            expected_stopped.len(),
            in_web.len(),
            in_other.len()
        );
        total_eligible += expected_stopped.len();
        let before = instances(&moto, &all).await;
        let web_before = registered(&moto, &web_tg).await;
        let other_before = registered(&moto, &other_tg).await;

        let r = apply(&moto, &s.repo, &s.cache, &[]);
        assert_eq!(r.code, 0, "seed {seed}: {r}");
        std::thread::sleep(AFTER + Duration::from_secs(1));
        // One stop per pass: as many passes as instances may stop, and one more.
        for _ in 0..=expected_stopped.len() {
            let r = apply(&moto, &s.repo, &s.cache, &[]);
            assert_eq!(r.code, 0, "seed {seed}: {r}");
        }

        let end = instances(&moto, &all).await;
        assert_eq!(stopped(&end), expected_stopped, "seed {seed}");
        for id in all.iter().filter(|i| !expected_stopped.contains(*i)) {
            assert_eq!(end[id], before[id], "seed {seed}: {id} was touched");
        }
        let web_expected: BTreeSet<String> =
            web_before.difference(&expected_stopped).cloned().collect();
        assert_eq!(
            registered(&moto, &web_tg).await,
            web_expected,
            "seed {seed}"
        );
        assert_eq!(
            registered(&moto, &other_tg).await,
            other_before,
            "seed {seed}"
        );
    }
    assert!(total_eligible > 0, "the seeds must exercise a stop");
}

/// The leftovers of a fleet selected by tag (issue 13): recorded when the clocks start,
/// reported only once nothing uses them. A stopped fleet still holds its volumes, address
/// and group; only its AMI is a leftover until someone terminates an instance.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_fleet_records_what_it_uses_and_reports_only_what_nothing_uses() {
    use aws_sdk_ec2::types::{
        BlockDeviceMapping, DomainType, EbsBlockDevice, Filter, ResourceType,
    };
    let moto = moto_with_running_services();
    let s = setup(&moto, &["web"]).await;
    let ec2 = moto.ec2();
    let net = moto.default_network().await;
    let fleet_sg = ec2
        .create_security_group()
        .group_name("web-fleet")
        .description("web-fleet")
        .vpc_id(&net.vpc_id)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let builder = moto.run_instances(1, &[("role", "image-builder")]).await;
    let image = ec2
        .create_image()
        .instance_id(&builder[0])
        .name("web-2024")
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_string();
    let fleet: Vec<String> = ec2
        .run_instances()
        .image_id(&image)
        .min_count(2)
        .max_count(2)
        .subnet_id(&net.subnets[0])
        .security_group_ids(&fleet_sg)
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/sdf")
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_size(1)
                        .delete_on_termination(false)
                        .build(),
                )
                .build(),
        )
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("app")
                        .value("web")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect();
    let address = ec2
        .allocate_address()
        .domain(DomainType::Vpc)
        .send()
        .await
        .unwrap()
        .allocation_id()
        .unwrap()
        .to_string();
    ec2.associate_address()
        .allocation_id(&address)
        .instance_id(&fleet[0])
        .send()
        .await
        .unwrap();
    let volume_of = async |id: &str| {
        ec2.describe_volumes()
            .filters(
                Filter::builder()
                    .name("attachment.instance-id")
                    .values(id)
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .volumes()[0]
            .volume_id()
            .unwrap()
            .to_string()
    };
    let volumes = [volume_of(&fleet[0]).await, volume_of(&fleet[1]).await];
    moto.register_instances(&s.legacy["web"], &fleet).await;
    set_migration_step(&moto, "web", 2).await;

    let leftover_lines = |out: &str| -> BTreeSet<String> {
        out.lines()
            .filter(|l| l.starts_with("~ leftover "))
            .map(str::to_string)
            .collect()
    };
    let line = |kind: &str, id: &str, name: Option<&str>| {
        let name = name.map_or(String::new(), |n| format!(" ({n})"));
        format!("~ leftover {kind} {id}{name} of prod/web (not deleted)")
    };

    // Both clocks start (and the record is taken); after the grace period, one stop per pass.
    let r = apply(&moto, &s.repo, &s.cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("~ recorded image"), "{r}");
    std::thread::sleep(AFTER + Duration::from_secs(1));
    let mut last = None;
    for _ in 0..fleet.len() {
        let r = apply(&moto, &s.repo, &s.cache, &[]);
        assert_eq!(r.code, 0, "{r}");
        last = Some(r);
    }
    let r = last.unwrap();
    assert_eq!(stopped(&instances(&moto, &fleet).await).len(), 2, "{r}");
    // Recorded: every volume a stopped instance keeps, the address, the group, the AMI.
    let by_tag = || {
        Filter::builder()
            .name("tag:ecsync.io/leftover-of")
            .values("prod/web")
            .build()
    };
    let tagged_volumes: BTreeSet<String> = ec2
        .describe_volumes()
        .filters(by_tag())
        .send()
        .await
        .unwrap()
        .volumes()
        .iter()
        .filter_map(|v| v.volume_id().map(str::to_string))
        .collect();
    assert_eq!(tagged_volumes, volumes.iter().cloned().collect());
    let tagged_addresses = ec2
        .describe_addresses()
        .filters(by_tag())
        .send()
        .await
        .unwrap()
        .addresses()
        .len();
    assert_eq!(tagged_addresses, 1);
    // Still in use by the stopped fleet: only the AMI is left behind.
    assert_eq!(
        leftover_lines(&r.stdout),
        BTreeSet::from([line("image", &image, Some("web-2024"))]),
        "{r}"
    );

    // Someone terminates the instance with the address: its data volume and the
    // address are left behind; the group is still used by the other instance.
    ec2.terminate_instances()
        .instance_ids(&fleet[0])
        .send()
        .await
        .unwrap();
    let r = apply(&moto, &s.repo, &s.cache, &[]);
    assert_eq!(r.code, 0, "{r}");
    let public_ip = ec2
        .describe_addresses()
        .allocation_ids(&address)
        .send()
        .await
        .unwrap()
        .addresses()[0]
        .public_ip()
        .unwrap()
        .to_string();
    assert_eq!(
        leftover_lines(&r.stdout),
        BTreeSet::from([
            line("image", &image, Some("web-2024")),
            line("volume", &volumes[0], None),
            line("elasticIp", &address, Some(&public_ip)),
        ]),
        "{r}"
    );
    // The group is recorded, but the other instance still uses it; nothing was deleted.
    let tagged_groups = ec2
        .describe_security_groups()
        .filters(by_tag())
        .send()
        .await
        .unwrap()
        .security_groups()
        .len();
    assert_eq!(tagged_groups, 1);
    assert!(!r.stdout.contains(&fleet_sg), "{r}");
    assert_eq!(
        ec2.describe_volumes()
            .set_volume_ids(Some(volumes.to_vec()))
            .send()
            .await
            .unwrap()
            .volumes()
            .len(),
        2
    );
}
