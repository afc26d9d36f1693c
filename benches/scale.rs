//! Scale (issue 6, scope 4): against moto on loopback,
//!
//! 1. a no-drift `ecsync diff` and `ecsync apply` over N services in 4 clusters: AWS calls
//!    against the lower bound (per cluster ceil(n/100) ListServices + ceil(n/10)
//!    DescribeServices), wall time, and ecsync's peak RSS (VmHWM) and peak anonymous RSS, polled
//!    from `/proc/<pid>/status`;
//!    With `--bench` also: the first apply and a no-drift diff through 20% injected faults
//!    (`tests/common/faultproxy.rs`), and 30 s of `ecsync run --interval 60s` on the fleet while
//!    moto keeps every rollout IN_PROGRESS (calls per minute of the daemon's 5 s progress requeue);
//! 2. M services whose image changed in one commit: `ecsync apply` against one `ecs deploy`
//!    per service (PyPI `ecs-deploy`, `--no-deregister --timeout -1`, i.e. no waiting), on the
//!    same moto.
//!
//! Run: `cargo test --bench scale -- --bench` (N = 1000, M = 100; `ECSYNC_BENCH_SCALE_N`,
//! `ECSYNC_BENCH_UPDATE_N` to change them; needs moto_server and `pip install ecs-deploy`).
//! Without `--bench` (that is, under `cargo test --all-targets`) it runs tiny sizes in seconds,
//! still asserting the bounds, and skips the `ecs-deploy` comparison with a note.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, FaultConfig, FaultProxy, GitRepo, Moto, Network, ecsync_with, free_port};

const CLUSTERS: usize = 4;
/// Calls per pass that do not grow with the number of services, per cluster (DescribeClusters
/// is one call for up to 100 clusters).
const CONSTANT_PER_CLUSTER: usize = 1;
/// On anonymous memory, not the whole RSS: most of a debug build's RSS is its own code (tens
/// of MiB of file-backed pages, the same at 12 services as at 1,000), which grows with every
/// feature and says nothing about how the fleet is held.
const ANON_LIMIT_KIB: u64 = 32 * 1024;

fn manifest(name: &str, cluster: &str, image: &str, net: &Network) -> String {
    format!(
        "apiVersion: ecsync.io/v1alpha1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  cluster: {cluster}\n  desiredCount: 1\n  launchType: FARGATE\n  taskDefinition:\n    family: {name}\n    cpu: \"256\"\n    memory: \"512\"\n    networkMode: awsvpc\n    containerDefinitions:\n      - {{name: app, image: \"{image}\", portMappings: [{{containerPort: 8080}}], environment: [{{name: SERVICE, value: {name}}}]}}\n  networkConfiguration:\n    awsvpcConfiguration: {{subnets: [{}], securityGroups: [{}]}}\n  tags: {{team: bench}}\n",
        net.subnets[0], net.security_group
    )
}

/// One measured run of a child process.
struct Measured {
    out: Output,
    secs: f64,
    peak_rss_kib: Option<u64>,
    /// Of it, anonymous memory (heap, stacks): what grows with the fleet.
    peak_anon_kib: Option<u64>,
}

impl Measured {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), exit {:?}:\n{}\n{}",
                self.out.status,
                String::from_utf8_lossy(&self.out.stdout),
                String::from_utf8_lossy(&self.out.stderr)
            )
        })
    }
}

/// Run `cmd` to completion, timing it and polling its memory peaks.
fn measure(cmd: Command) -> Measured {
    let mut cmd = cmd;
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let peaks = common::MemoryPeaks::start(child.id());
    let out = child.wait_with_output().expect("wait");
    let secs = started.elapsed().as_secs_f64();
    let known = |kib: u64| (kib > 0).then_some(kib);
    Measured {
        out,
        secs,
        peak_rss_kib: known(peaks.hwm_kib()),
        peak_anon_kib: known(peaks.anon_kib()),
    }
}

fn ecsync(moto: &Moto, repo: &GitRepo, cache: &Path, args: &[&str]) -> Command {
    let mut cmd = ecsync_with(moto);
    cmd.args(args)
        .args(["--repo", &repo.url(), "--output", "json", "--cache-dir"])
        .arg(cache);
    cmd
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// "VmHWM (anonymous peak)".
fn memory(m: &Measured) -> String {
    format!(
        "{} ({} anonymous)",
        mib(m.peak_rss_kib),
        mib(m.peak_anon_kib)
    )
}

struct Row {
    what: String,
    calls: String,
    bound: String,
    wall: String,
    rss: String,
}

fn print_table(rows: &[Row]) {
    println!("| pass | AWS calls | target | wall | peak RSS (anonymous) |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.what, r.calls, r.bound, r.wall, r.rss
        );
    }
}

/// A moto with [`CLUSTERS`] clusters and a repository declaring `n` services spread over them;
/// returns the services per cluster too.
fn fleet(
    runtime: &tokio::runtime::Runtime,
    n: usize,
) -> (Moto, GitRepo, [usize; CLUSTERS], tempfile::TempDir) {
    let moto = Moto::start();
    let net = runtime.block_on(async {
        for c in 0..CLUSTERS {
            moto.create_cluster(&format!("scale-{c}")).await;
        }
        moto.default_network().await
    });
    let repo = GitRepo::new();
    let mut per_cluster = [0usize; CLUSTERS];
    for i in 0..n {
        let c = i % CLUSTERS;
        per_cluster[c] += 1;
        let name = format!("svc-{i:04}");
        repo.write(
            &format!("scale-{c}/{name}.yaml"),
            &manifest(&name, &format!("scale-{c}"), &format!("app:{i}"), &net),
        );
    }
    repo.commit("scale services");
    (
        moto,
        repo,
        per_cluster,
        tempfile::tempdir().expect("tempdir"),
    )
}

/// Part 1: no-drift passes over `n` services in [`CLUSTERS`] clusters.
fn no_drift(
    runtime: &tokio::runtime::Runtime,
    n: usize,
    benching: bool,
    rows: &mut Vec<Row>,
) -> u64 {
    let (moto, repo, per_cluster, cache) = fleet(runtime, n);

    let create = measure(ecsync(&moto, &repo, cache.path(), &["apply"]));
    let v = create.json();
    assert!(create.out.status.success(), "first apply failed: {v}");
    rows.push(Row {
        what: format!("first apply, creates {n} services in {CLUSTERS} clusters"),
        calls: v["awsCalls"]["total"].to_string(),
        bound: format!("{}", 2 * n + CLUSTERS),
        wall: format!("{:.1} s", create.secs),
        rss: memory(&create),
    });

    let first_calls = v["awsCalls"]["total"].as_u64().unwrap();
    let lower_bound: usize = per_cluster
        .iter()
        .map(|&k| k.div_ceil(100) + k.div_ceil(10))
        .sum();
    let allowed = (lower_bound as f64 * 1.1).floor() as usize + CONSTANT_PER_CLUSTER * CLUSTERS;
    for command in ["diff", "apply"] {
        let m = measure(ecsync(&moto, &repo, cache.path(), &[command]));
        let v = m.json();
        assert_eq!(
            m.out.status.code(),
            Some(0),
            "no-drift {command} did not report in sync: {v}"
        );
        let total = v["awsCalls"]["total"].as_u64().unwrap() as usize;
        let mutating = v["awsCalls"]["mutating"].as_u64().unwrap();
        println!(
            "no-drift {command}: calls by operation {}",
            v["awsCalls"]["byOperation"]
        );
        rows.push(Row {
            what: format!("no-drift {command}, {n} services in {CLUSTERS} clusters"),
            calls: total.to_string(),
            bound: format!(
                "lower bound {lower_bound}; ≤ {allowed} (+10% + {CONSTANT_PER_CLUSTER}/cluster)"
            ),
            wall: format!("{:.1} s", m.secs),
            rss: memory(&m),
        });
        assert_eq!(mutating, 0, "a no-drift {command} must not mutate");
        assert!(
            total <= allowed,
            "no-drift {command}: {total} calls, allowed {allowed} (lower bound {lower_bound})"
        );
        if let Some(kib) = m.peak_anon_kib {
            assert!(
                kib < ANON_LIMIT_KIB,
                "no-drift {command} peaked at {} of anonymous memory (limit {})",
                mib(Some(kib)),
                mib(Some(ANON_LIMIT_KIB))
            );
        }
    }
    println!(
        "note: moto ignores ListServices maxResults and returns every ARN in one page, so ListServices counts one call per cluster here; real ECS pages at 100 (ceil(n/100) per cluster, as in the bound)"
    );
    if benching {
        daemon_steady_state(&moto, &repo, n, rows);
    }
    first_calls
}

/// Part 1c: `ecsync run --interval 60s` on the same fleet for 30 s, counted by a proxy. moto
/// (without `MOTO_ECS_SERVICE_RUNNING`) leaves every rollout IN_PROGRESS, the situation of one
/// stuck deployment: the daemon then requeues every 5 s and observes the whole account again.
fn daemon_steady_state(moto: &Moto, repo: &GitRepo, n: usize, rows: &mut Vec<Row>) {
    let proxy = FaultProxy::start(moto.port(), FaultConfig::none());
    let cache = tempfile::tempdir().expect("tempdir");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = ecsync_with(moto);
    cmd.env("AWS_ENDPOINT_URL", proxy.endpoint())
        .args([
            "run",
            "--repo",
            &repo.url(),
            "--interval",
            "60s",
            "--listen",
            &listen,
        ])
        .arg("--cache-dir")
        .arg(cache.path());
    let window = Duration::from_secs(30);
    let daemon = Daemon::spawn(cmd);
    std::thread::sleep(window);
    let calls = proxy.requests();
    let passes = proxy
        .by_operation()
        .get("DescribeClusters")
        .copied()
        .unwrap_or(0);
    drop(daemon);
    rows.push(Row {
        what: format!("daemon, --interval 60s, rollouts in progress, {n} services: 30 s"),
        calls: format!("{calls} ({passes} passes, {:.0}/min)", calls as f64 * 2.0),
        bound: "1 pass per interval would be ≤ 1 pass".into(),
        wall: format!("{}s", window.as_secs()),
        rss: String::new(),
    });
}

/// Part 1b: the same first apply and no-drift diff through a proxy that answers 20% of the calls
/// with throttling, 5xx, slow answers, dropped connections or lost answers (`tests/common/
/// faultproxy.rs`). Passes are repeated until one exits 0, as the daemon would.
fn under_faults(
    runtime: &tokio::runtime::Runtime,
    n: usize,
    clean_calls: u64,
    rows: &mut Vec<Row>,
) {
    let (moto, repo, _, cache) = fleet(runtime, n);
    let proxy = FaultProxy::start(moto.port(), FaultConfig::mixed(0.2, 6));
    let via_proxy = |args: &[&str]| {
        let mut cmd = ecsync(&moto, &repo, cache.path(), args);
        cmd.env("AWS_ENDPOINT_URL", proxy.endpoint());
        cmd
    };
    let started = Instant::now();
    let mut passes = 0;
    let mut throttled = 0;
    loop {
        passes += 1;
        let m = measure(via_proxy(&["apply"]));
        let v = m.json();
        throttled += v["awsCalls"]["throttled"].as_u64().unwrap();
        if m.out.status.success() {
            break;
        }
        let errors: Vec<String> = v["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some(format!("{}: {}", s["service"], s["error"].as_str()?)))
            .chain(v["error"].as_str().map(str::to_string))
            .collect();
        println!(
            "under faults, pass {passes} failed for {} services: {errors:?}",
            errors.len()
        );
        assert!(
            passes < 5,
            "not converged after 5 passes: {}",
            proxy.summary()
        );
    }
    let seen = proxy.requests();
    rows.push(Row {
        what: format!("first apply of {n} services under 20% faults ({passes} passes)"),
        calls: format!("{seen} seen by the proxy ({throttled} throttled)"),
        bound: format!("≤ {} (2 × fault-free {clean_calls})", 2 * clean_calls),
        wall: format!("{:.1} s", started.elapsed().as_secs_f64()),
        rss: String::new(),
    });
    println!("under faults, first apply: {}", proxy.summary());
    assert!(
        seen <= 2 * clean_calls,
        "{seen} calls under faults vs {clean_calls} without"
    );
    let before = proxy.requests();
    let m = measure(via_proxy(&["diff"]));
    let diff_seen = proxy.requests() - before;
    rows.push(Row {
        what: format!("no-drift diff of {n} services under 20% faults"),
        calls: format!("{diff_seen} seen by the proxy"),
        bound: format!("exit {:?}", m.out.status.code()),
        wall: format!("{:.1} s", m.secs),
        rss: memory(&m),
    });
    assert!(
        m.out.status.code() == Some(0),
        "no-drift diff under faults: {}",
        String::from_utf8_lossy(&m.out.stderr)
    );
}

/// The image of every service's live task definition in `cluster`, by service name.
async fn live_images(moto: &Moto, cluster: &str) -> std::collections::BTreeMap<String, String> {
    let ecs = moto.ecs();
    let mut images = std::collections::BTreeMap::new();
    let mut arns = Vec::new();
    let mut pages = ecs.list_services().cluster(cluster).into_paginator().send();
    while let Some(page) = pages.next().await {
        arns.extend(page.expect("ListServices").service_arns().to_vec());
    }
    for chunk in arns.chunks(10) {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await
            .expect("DescribeServices");
        for s in out.services() {
            let td = ecs
                .describe_task_definition()
                .task_definition(s.task_definition().unwrap())
                .send()
                .await
                .expect("DescribeTaskDefinition");
            let image = td.task_definition().unwrap().container_definitions()[0]
                .image()
                .unwrap()
                .to_string();
            images.insert(s.service_name().unwrap().to_string(), image);
        }
    }
    images
}

fn ecs_deploy_available() -> bool {
    Command::new("ecs")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Part 2: `m` services get a new image in one commit.
fn image_update(
    runtime: &tokio::runtime::Runtime,
    m: usize,
    benching: bool,
    rows: &mut Vec<Row>,
) -> Option<f64> {
    let moto = Moto::start();
    let cluster = "deploys";
    let net = runtime.block_on(async {
        moto.create_cluster(cluster).await;
        moto.default_network().await
    });
    let repo = GitRepo::new();
    let write = |tag: &str| {
        for i in 0..m {
            let name = format!("svc-{i:03}");
            repo.write(
                &format!("{name}.yaml"),
                &manifest(&name, cluster, &format!("app-{i}:{tag}"), &net),
            );
        }
    };
    write("1");
    repo.commit("services at 1");
    let cache = tempfile::tempdir().expect("tempdir");
    let first = measure(ecsync(&moto, &repo, cache.path(), &["apply"]));
    assert!(first.out.status.success(), "{}", first.json());

    write("2");
    repo.commit("every image to 2");
    let upd = measure(ecsync(&moto, &repo, cache.path(), &["apply"]));
    let v = upd.json();
    assert!(upd.out.status.success(), "update apply failed: {v}");
    let images = runtime.block_on(live_images(&moto, cluster));
    assert_eq!(images.len(), m);
    for (i, (name, image)) in images.iter().enumerate() {
        assert_eq!(image, &format!("app-{i}:2"), "{name} not updated by ecsync");
    }
    rows.push(Row {
        what: format!("image change on {m} services, one `ecsync apply`"),
        calls: v["awsCalls"]["total"].to_string(),
        bound: format!(
            "{} (describe old definition, register, update, tag: 4 per service; + 3 to observe)",
            4 * m + 3
        ),
        wall: format!("{:.2} s", upd.secs),
        rss: memory(&upd),
    });

    println!(
        "image change: calls by operation {}",
        v["awsCalls"]["byOperation"]
    );
    if !benching {
        println!(
            "note: the `ecs deploy` comparison runs only with --bench (CI mode skips it; it needs `pip install ecs-deploy`)"
        );
        return None;
    }
    assert!(
        ecs_deploy_available(),
        "`ecs` not found: pip install ecs-deploy (needed for the comparison with --bench)"
    );
    let started = Instant::now();
    for i in 0..m {
        let mut cmd = Command::new("ecs");
        cmd.args(["deploy", cluster, &format!("svc-{i:03}"), "--image", "app"])
            .arg(format!("app-{i}:3"))
            .args([
                "--no-deregister",
                "--timeout",
                "-1",
                "--region",
                "us-east-1",
            ])
            .envs(moto.env());
        let out = cmd.output().expect("run ecs deploy");
        assert!(
            out.status.success(),
            "ecs deploy svc-{i:03} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let images = runtime.block_on(live_images(&moto, cluster));
    for (i, (name, image)) in images.iter().enumerate() {
        assert_eq!(
            image,
            &format!("app-{i}:3"),
            "{name} not updated by ecs deploy"
        );
    }
    rows.push(Row {
        what: format!("same change, one `ecs deploy` per service ({m} runs)"),
        calls: "n/a".into(),
        bound: String::new(),
        wall: format!("{secs:.2} s"),
        rss: String::new(),
    });
    Some(secs / upd.secs)
}

fn main() {
    // `cargo test --bench scale -- --bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it, and then tiny sizes keep the suite fast while checking the bounds.
    let benching = std::env::args().any(|a| a == "--bench");
    let size = |var: &str, bench: usize, ci: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if benching { bench } else { ci })
    };
    let n = size("ECSYNC_BENCH_SCALE_N", 1000, 12);
    let m = size("ECSYNC_BENCH_UPDATE_N", 100, 4);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut rows = Vec::new();
    let clean_calls = no_drift(&runtime, n, benching, &mut rows);
    if benching {
        under_faults(&runtime, n, clean_calls, &mut rows);
    } else {
        println!(
            "note: the 20%-faults rows run only with --bench (tests/e2e_faults.rs covers faults in CI)"
        );
    }
    let ratio = image_update(&runtime, m, benching, &mut rows);
    println!(
        "scale: N = {n} services in {CLUSTERS} clusters, M = {m} image updates; moto on loopback; peak RSS (VmHWM) and anonymous RSS polled every 5 ms from /proc/<pid>/status; debug build"
    );
    print_table(&rows);
    if let Some(ratio) = ratio {
        println!("ecsync apply is {ratio:.1}x faster than one `ecs deploy` per service");
        assert!(
            ratio >= 10.0,
            "ecsync only {ratio:.1}x faster than ecs deploy per service"
        );
    }
}
