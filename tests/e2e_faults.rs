//! End to end under injected faults (issue 6): ecsync talks to moto through [`FaultProxy`], which
//! answers a seeded share of calls with throttling, 5xx, slow answers or dropped connections.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_ecs::error::ProvideErrorMetadata;
use common::{
    Daemon, Fault, FaultConfig, FaultProxy, GitRepo, Moto, Network, Run, ecsync_with, free_port,
    run, service_yaml, try_http_get, wait_until,
};

const SEED: u64 = 6;

/// `ECSYNC_FAULT_SEED` explores other fault sequences; the default is fixed so CI is repeatable.
fn seed() -> u64 {
    std::env::var("ECSYNC_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED)
}
/// The same seed for both motos gives the same subnet and security-group IDs.
const MOTO_SEED: u64 = 42;

/// `ecsync <args> --repo R --path services --cache-dir C`, through `proxy`.
fn ecsync_via(
    moto: &Moto,
    proxy: &FaultProxy,
    repo: &GitRepo,
    cache: &tempfile::TempDir,
    args: &[&str],
) -> Command {
    let mut cmd = ecsync_with(moto);
    cmd.env("AWS_ENDPOINT_URL", proxy.endpoint())
        .args(args)
        .args(["--repo", &repo.url(), "--path", "services", "--cache-dir"])
        .arg(cache.path());
    cmd
}

fn with_target_group(yaml: String, target_group: &str) -> String {
    yaml.replace(
        "  tags: {team: platform}\n",
        &format!(
            "  loadBalancers:\n    - {{targetGroup: {target_group}, containerName: app, containerPort: 8080}}\n  tags: {{team: platform}}\n"
        ),
    )
}

/// Ten services in two clusters, one behind a target group (so ELBv2 is called too).
fn write_fleet(repo: &GitRepo, net: &Network, image_tag: &str, count: i32) {
    for i in 0..10 {
        let cluster = if i < 6 { "alpha" } else { "beta" };
        let name = format!("svc-{i}");
        let mut yaml = service_yaml(
            &name,
            cluster,
            net,
            &format!("app-{i}:{image_tag}"),
            "x",
            count,
        );
        if i == 0 {
            yaml = with_target_group(yaml, "web-tg");
        }
        repo.write(&format!("services/{name}.yaml"), &yaml);
    }
}

async fn prepare(moto: &Moto) -> Network {
    moto.seed_random(MOTO_SEED);
    moto.create_cluster("alpha").await;
    moto.create_cluster("beta").await;
    moto.create_target_group("web-tg", "ip", 8080).await;
    moto.default_network().await
}

/// What a user would compare between two accounts: per service its desired count, launch type,
/// network, load balancers (by target-group name), tags (without the revision-bearing ones) and
/// the content of its task definition (without ARN, revision and timestamps).
async fn live_state(moto: &Moto) -> BTreeMap<String, String> {
    let ecs = moto.ecs();
    let mut state = BTreeMap::new();
    for cluster in ["alpha", "beta"] {
        let arns = ecs
            .list_services()
            .cluster(cluster)
            .send()
            .await
            .unwrap()
            .service_arns()
            .to_vec();
        for chunk in arns.chunks(10) {
            let out = ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .include(aws_sdk_ecs::types::ServiceField::Tags)
                .send()
                .await
                .unwrap();
            for s in out.services() {
                if s.status() != Some("ACTIVE") {
                    continue;
                }
                let mut tags: BTreeMap<String, String> = s
                    .tags()
                    .iter()
                    .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
                    .collect();
                tags.remove("ecsync.io/revision");
                if let Some(v) = tags.get_mut("ecsync.io/task-definition") {
                    // `<family>:<revision>@<hash>`: the revision number may differ between the
                    // accounts (a lost answer to RegisterTaskDefinition registers twice).
                    let (family_rev, hash) = v.split_once('@').unwrap();
                    let family = family_rev.rsplit_once(':').unwrap().0;
                    *v = format!("{family}@{hash}");
                }
                let lbs: Vec<String> = s
                    .load_balancers()
                    .iter()
                    .map(|lb| {
                        let tg = lb.target_group_arn().unwrap_or_default();
                        let name = tg.split('/').nth(1).unwrap_or(tg);
                        format!("{name}:{:?}:{:?}", lb.container_name(), lb.container_port())
                    })
                    .collect();
                let td = ecs
                    .describe_task_definition()
                    .task_definition(s.task_definition().unwrap())
                    .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
                    .send()
                    .await
                    .unwrap();
                let def = td.task_definition().unwrap();
                let mut td_tags: Vec<String> = td
                    .tags()
                    .iter()
                    .map(|t| format!("{}={}", t.key().unwrap(), t.value().unwrap()))
                    .collect();
                td_tags.sort();
                let line = format!(
                    "desired={} launch={:?} net={:?} lbs={lbs:?} tags={tags:?}\n  td family={:?} cpu={:?} memory={:?} mode={:?} compat={:?} tags={td_tags:?}\n  containers={:?}",
                    s.desired_count(),
                    s.launch_type(),
                    s.network_configuration(),
                    def.family(),
                    def.cpu(),
                    def.memory(),
                    def.network_mode(),
                    def.requires_compatibilities(),
                    def.container_definitions(),
                );
                state.insert(format!("{cluster}/{}", s.service_name().unwrap()), line);
            }
        }
    }
    state
}

/// Sums of the `awsCalls` block over several apply runs.
#[derive(Default, Debug)]
struct Calls {
    total: u64,
    throttled: u64,
}

impl Calls {
    fn add(&mut self, r: &Run) {
        let v = r.json();
        self.total += v["awsCalls"]["total"].as_u64().unwrap();
        self.throttled += v["awsCalls"]["throttled"].as_u64().unwrap();
    }
}

/// `ecsync apply` until a pass exits 0 (a failed service exits 1; the next pass retries it, as
/// the daemon or a user would). Returns the number of passes.
fn apply_until_converged(
    moto: &Moto,
    proxy: &FaultProxy,
    repo: &GitRepo,
    cache: &tempfile::TempDir,
    calls: &mut Calls,
    max_passes: usize,
) -> usize {
    let mut last = Vec::new();
    for pass in 1..=max_passes {
        let r = run(ecsync_via(
            moto,
            proxy,
            repo,
            cache,
            &["apply", "--output", "json"],
        ));
        assert!(r.code == 0 || r.code == 1, "{r}");
        calls.add(&r);
        if r.code == 0 {
            return pass;
        }
        last.push(format!("--- pass {pass}\n{r}"));
    }
    panic!(
        "not converged after {max_passes} passes ({}):\n{}",
        proxy.summary(),
        last.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_percent_faults_converge_to_the_fault_free_state_without_a_hot_loop() {
    let (clean, faulty) = (Moto::start(), Moto::start());
    let net = prepare(&clean).await;
    let net_b = prepare(&faulty).await;
    assert_eq!(net.subnets, net_b.subnets, "seeded motos differ");
    let repo = GitRepo::new();
    write_fleet(&repo, &net, "1", 1);
    repo.commit("ten services");

    // The same commits, once without faults (through a counting proxy), once with 20% faults.
    let counting = FaultProxy::start(clean.port(), FaultConfig::none());
    let faults = FaultProxy::start(faulty.port(), FaultConfig::mixed(0.2, seed()));
    let (cache_a, cache_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut clean_calls = Calls::default();
    let mut faulty_calls = Calls::default();
    let mut passes = Vec::new();
    for commit in 0..2 {
        if commit == 1 {
            // Half the images change and every desired count: updates, not creates.
            write_fleet(&repo, &net, "2", 2);
            repo.commit("new images and counts");
        }
        assert_eq!(
            apply_until_converged(&clean, &counting, &repo, &cache_a, &mut clean_calls, 1),
            1
        );
        passes.push(apply_until_converged(
            &faulty,
            &faults,
            &repo,
            &cache_b,
            &mut faulty_calls,
            4,
        ));
    }
    eprintln!(
        "passes per commit under 20% faults: {passes:?}; proxy: {}; fault-free: {} calls",
        faults.summary(),
        counting.requests()
    );
    assert_eq!(counting.injected_total(), 0);
    assert!(
        faults.injected_total() > 0,
        "no fault injected: {}",
        faults.summary()
    );

    // Same end state.
    let (a, b) = (live_state(&clean).await, live_state(&faulty).await);
    assert_eq!(a.len(), 10, "{a:#?}");
    for (key, want) in &a {
        assert_eq!(b.get(key), Some(want), "{key} differs");
    }
    assert_eq!(a.len(), b.len());
    // No hot retry loop: every attempt the proxy saw, faults included, within twice the
    // fault-free run's calls.
    let seen = faults.requests();
    faults.set_rate(0.0);
    let diff = run(ecsync_via(&faulty, &faults, &repo, &cache_b, &["diff"]));
    assert_eq!(diff.code, 0, "drift left after the faulty passes:\n{diff}");
    assert!(
        seen <= 2 * counting.requests(),
        "{seen} calls under faults vs {} without: {}",
        counting.requests(),
        faults.summary()
    );
    assert_eq!(clean_calls.total, counting.requests());
    // Every injected throttle was seen and reported as throttling by ecsync.
    assert_eq!(
        faulty_calls.throttled,
        faults.injected(Fault::Throttle),
        "{faulty_calls:?} vs {}",
        faults.summary()
    );
    assert!(faulty_calls.throttled > 0, "{}", faults.summary());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_speaks_each_protocols_throttling() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.port(), FaultConfig::only(Fault::Throttle, 1.0, SEED));
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let e = ecs.list_clusters().send().await.unwrap_err();
    assert_eq!(e.code(), Some("ThrottlingException"), "{e:?}");
    let e = ec2.describe_vpcs().send().await.unwrap_err();
    assert_eq!(e.code(), Some("RequestLimitExceeded"), "{e:?}");
    let e = elbv2.describe_load_balancers().send().await.unwrap_err();
    assert_eq!(e.code(), Some("Throttling"), "{e:?}");
    assert_eq!(proxy.injected(Fault::Throttle), 3);
    assert_eq!(proxy.forwarded(), 0);

    // With faults off the same clients reach moto.
    proxy.set_rate(0.0);
    ecs.list_clusters().send().await.unwrap();
    ec2.describe_vpcs().send().await.unwrap();
    assert_eq!(proxy.forwarded(), 2);
    assert_eq!(
        proxy.by_operation().get("DescribeVpcs"),
        Some(&2),
        "{:?}",
        proxy.by_operation()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_throttling_gives_up_after_the_retry_budget() {
    let moto = Moto::start();
    let net = prepare(&moto).await;
    let repo = GitRepo::new();
    write_fleet(&repo, &net, "1", 1);
    repo.commit("ten services");
    let proxy = FaultProxy::start(moto.port(), FaultConfig::only(Fault::Throttle, 1.0, SEED));
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let r = run(ecsync_via(
        &moto,
        &proxy,
        &repo,
        &cache,
        &["apply", "--output", "json"],
    ));
    assert_eq!(r.code, 1, "{r}");
    // The first call (DescribeClusters) is tried 5 times (standard retry mode), then the pass
    // ends: no call after a failed observation, no tight loop.
    assert_eq!(proxy.requests(), 5, "{}\n{r}", proxy.summary());
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_counts_throttled_calls_in_its_metrics() {
    let moto = Moto::start();
    let net = prepare(&moto).await;
    let repo = GitRepo::new();
    write_fleet(&repo, &net, "1", 1);
    repo.commit("ten services");
    let proxy = FaultProxy::start(moto.port(), FaultConfig::only(Fault::Throttle, 0.3, SEED));
    let cache = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut daemon = Daemon::spawn(ecsync_via(
        &moto,
        &proxy,
        &repo,
        &cache,
        &["run", "--listen", &listen, "--interval", "1s"],
    ));
    let throttled_line = |metrics: &str| {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("ecsync_aws_api_calls_total{") && l.contains("result=\"throttled\"")
            })
            .map(|l| {
                l.rsplit(' ')
                    .next()
                    .unwrap()
                    .parse::<f64>()
                    .unwrap_or_default()
            })
            .sum::<f64>()
    };
    let mut last = String::new();
    let seen = wait_until(Duration::from_secs(60), || {
        if let Ok((200, body)) = try_http_get(&listen, "/metrics") {
            last = body;
        }
        throttled_line(&last) > 0.0 && last.contains("ecsync_reconcile_total{result=\"ok\",")
    });
    assert!(
        seen,
        "no throttled calls in /metrics ({}):\n{last}\n{}",
        proxy.summary(),
        daemon.logs()
    );
    assert!(throttled_line(&last) as u64 <= proxy.injected(Fault::Throttle));
    daemon.signal("TERM");
    let status = daemon.wait_timeout(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        daemon.logs()
    );
}

/// Reads are bounded for the whole observation, not per cluster: with every answer slowed down,
/// a diff over four clusters of 21 services (12 DescribeServices batches, 4 ListServices) never
/// has more than 8 calls in flight (regression: it had 8 per cluster, 12 here, and one
/// unbounded ListServices per cluster).
#[tokio::test(flavor = "multi_thread")]
async fn observation_reads_at_most_eight_calls_at_once_across_clusters() {
    let moto = Moto::start();
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    for c in 0..4 {
        let cluster = format!("c{c}");
        moto.create_cluster(&cluster).await;
        for i in 0..21 {
            let name = format!("s{c}-{i:02}");
            repo.write(
                &format!("services/{name}.yaml"),
                &service_yaml(&name, &cluster, &net, "app:1", "x", 1),
            );
        }
    }
    repo.commit("84 services in 4 clusters");
    let mut config = FaultConfig::none();
    config.slow = Duration::from_millis(150);
    config.kinds = vec![Fault::Slow];
    let proxy = FaultProxy::start(moto.port(), config);
    let cache = tempfile::tempdir().unwrap();
    let r = run(ecsync_via(&moto, &proxy, &repo, &cache, &["apply"]));
    assert_eq!(r.code, 0, "{r}");

    proxy.reset_peak();
    proxy.set_rate(1.0);
    let r = run(ecsync_via(
        &moto,
        &proxy,
        &repo,
        &cache,
        &["diff", "--output", "json"],
    ));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        r.json()["awsCalls"]["byOperation"]["ECS:DescribeServices"],
        12
    );
    let peak = proxy.peak_in_flight();
    assert!(
        peak <= 8,
        "{peak} calls in flight at once; {}",
        proxy.summary()
    );
    assert!(peak >= 4, "the reads did not overlap at all ({peak})");
}

/// A third of the answers are lost after moto carried the call out (the worst case for
/// retries of non-idempotent calls such as CreateService): the next passes still converge,
/// with the task definitions registered twice at most once per lost answer.
#[tokio::test(flavor = "multi_thread")]
async fn lost_answers_converge_in_later_passes() {
    let moto = Moto::start();
    let net = prepare(&moto).await;
    let repo = GitRepo::new();
    write_fleet(&repo, &net, "1", 1);
    repo.commit("ten services");
    let proxy = FaultProxy::start(
        moto.port(),
        FaultConfig::only(Fault::LostAnswer, 0.3, seed()),
    );
    let cache = tempfile::tempdir().unwrap();
    let mut calls = Calls::default();
    let passes = apply_until_converged(&moto, &proxy, &repo, &cache, &mut calls, 6);
    eprintln!("lost answers: {passes} passes; {}", proxy.summary());
    proxy.set_rate(0.0);
    let diff = run(ecsync_via(&moto, &proxy, &repo, &cache, &["diff"]));
    assert_eq!(diff.code, 0, "drift left:\n{diff}");
    assert_eq!(live_state(&moto).await.len(), 10);
}

/// The soak's memo: a repeated read is answered from memory, and a write makes the next read go
/// to moto again, so it sees the write.
#[tokio::test(flavor = "multi_thread")]
async fn memoised_reads_never_outlive_a_write() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.port(), FaultConfig::none().memoise_reads());
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let names =
        |out: aws_sdk_ecs::operation::list_clusters::ListClustersOutput| out.cluster_arns().len();
    ecs.create_cluster().cluster_name("a").send().await.unwrap();
    let first = names(ecs.list_clusters().send().await.unwrap());
    let again = names(ecs.list_clusters().send().await.unwrap());
    assert_eq!((first, again), (1, 1));
    assert_eq!(proxy.memo_hits(), 1, "{}", proxy.summary());

    ecs.create_cluster().cluster_name("b").send().await.unwrap();
    let after_write = names(ecs.list_clusters().send().await.unwrap());
    assert_eq!(after_write, 2, "a read after a write saw the old answer");
    assert_eq!(proxy.memo_hits(), 1, "{}", proxy.summary());
    assert_eq!(proxy.forwarded(), 4, "{}", proxy.summary());
}
