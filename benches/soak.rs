//! `ecsync run` for many passes in a row (issue 12, "soak"): N services in 4 clusters, the
//! poll interval compressed, faults injected by the proxy between ecsync and moto. It samples
//! the daemon's RSS and its AWS calls as the passes go by: the RSS must stay flat and the calls
//! per pass within the bound of a no-drift pass (plus the retries the faults cause).
//!
//! Run: `cargo build --release --bin ecsync` then
//! `ECSYNC_BENCH_BIN=$CARGO_TARGET_DIR/release/ecsync cargo test --bench soak -- --bench`
//! (1,000 services, 2,000 passes, 5% faults, against the build that is deployed; without
//! ECSYNC_BENCH_BIN the daemon is the debug build, whose passes cost several times the CPU).
//! ECSYNC_BENCH_N, ECSYNC_BENCH_PASSES and ECSYNC_BENCH_FAULTS change the figures. Without `--bench` (as under `cargo test --all-targets`) it runs 8 services for 6
//! passes and only checks that it works.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Daemon, FaultConfig, FaultProxy, GitRepo, Moto, free_port, try_http_get};

const CLUSTERS: usize = 4;

fn pass_id(addr: &str) -> u64 {
    try_http_get(addr, "/status")
        .ok()
        .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| v["lastPass"]["passId"].as_u64())
        .unwrap_or(0)
}

/// Every attempt the daemon counted, from its own `ecsync_aws_api_calls_total`.
fn aws_calls(addr: &str) -> u64 {
    let Ok((_, text)) = try_http_get(addr, "/metrics") else {
        return 0;
    };
    text.lines()
        .filter(|l| l.starts_with("ecsync_aws_api_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let env_or =
        |name: &str, real: f64, smoke: f64| common::bench_param(name, benching, real, smoke);
    let n = env_or("ECSYNC_BENCH_N", 1000.0, 8.0) as usize;
    let passes = env_or("ECSYNC_BENCH_PASSES", 2000.0, 6.0) as u64;
    let fault_rate = env_or("ECSYNC_BENCH_FAULTS", 0.05, 0.05);

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // Rollouts complete, so passes come from the (compressed) interval, not the 5 s requeue.
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let net = runtime.block_on(async {
        for c in 0..CLUSTERS {
            moto.create_cluster(&format!("soak-{c}")).await;
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
            &format!("soak-{c}/{name}.yaml"),
            &common::service_yaml(&name, &format!("soak-{c}"), &net, "app:1", "x", 1),
        );
    }
    repo.commit("soak services");
    // A no-drift pass: DescribeClusters once, ListServices per cluster (moto answers in one
    // page), DescribeServices per 10 services.
    let lower_bound = 1
        + CLUSTERS as u64
        + per_cluster
            .iter()
            .map(|c| c.div_ceil(10) as u64)
            .sum::<u64>();

    // Reads seen since the last write are answered from the proxy's memory: moto spends about
    // 2.4 ms serialising each described service, which would make this a soak of moto.
    let proxy = FaultProxy::start(
        moto.port(),
        FaultConfig::mixed(fault_rate, 12).memoise_reads(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let (mut cmd, build) = common::bench_daemon_command(&moto);
    cmd.env("AWS_ENDPOINT_URL", proxy.endpoint())
        .args([
            "run",
            "--repo",
            &repo.url(),
            "--interval",
            "200ms",
            "--listen",
            &addr,
        ])
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("NO_COLOR", "1");
    let mut daemon = Daemon::spawn(cmd);
    let pid = daemon.pid();

    // The first passes create everything; the soak starts once a pass changes nothing.
    let started = Instant::now();
    let steady = common::wait_until(Duration::from_secs(900), || {
        if daemon.try_wait().is_some() {
            panic!("daemon exited:\n{}", daemon.logs());
        }
        try_http_get(&addr, "/status")
            .ok()
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
            .is_some_and(|v| {
                let services = v["services"].as_array().cloned().unwrap_or_default();
                services.len() == n && services.iter().all(|s| s["state"] == "Synced")
            })
    });
    assert!(steady, "the fleet never settled:\n{}", daemon.logs());
    let (first_pass, first_calls) = (pass_id(&addr), aws_calls(&addr));

    // (passes done, RSS KiB, calls so far) every few seconds.
    let mut samples: Vec<(u64, u64, u64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(if benching { 4 * 3600 } else { 120 });
    loop {
        assert!(
            daemon.try_wait().is_none(),
            "the daemon died during the soak:\n{}",
            daemon.logs()
        );
        let done = pass_id(&addr).saturating_sub(first_pass);
        let sample = (
            done,
            common::vm_kib(pid, "VmRSS"),
            aws_calls(&addr) - first_calls,
        );
        samples.push(sample);
        if benching {
            // A long run: show where it is, so a stalled one is seen early.
            eprintln!(
                "soak: {:>5} s, {done:>5}/{passes} passes, RSS {} KiB, {:.1} calls/pass",
                started.elapsed().as_secs(),
                sample.1,
                sample.2 as f64 / done.max(1) as f64
            );
        }
        if done >= passes || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(if benching { 10 } else { 1 }));
    }
    let soak = started.elapsed();
    daemon.signal("TERM");
    let exit = daemon.wait_timeout(Duration::from_secs(10));

    let &(done, rss_end, calls) = samples.last().expect("a sample");
    let rss_at = |share: f64| {
        samples
            .iter()
            .find(|(p, _, _)| *p as f64 >= done as f64 * share)
            .map_or(0, |s| s.1)
    };
    let rss_early = rss_at(0.1).max(1);
    let rss_max = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let per_pass = calls as f64 / done.max(1) as f64;
    println!(
        "soak: {n} services in {CLUSTERS} clusters, {done} passes after settling, {:.0}% faults at the proxy ({} injected), --interval 200ms, ecsync from {build}, moto (reads since the last write answered by the proxy: {})",
        fault_rate * 100.0,
        proxy.injected_total(),
        proxy.memo_hits()
    );
    println!("| what | figure |");
    println!("|---|---|");
    println!("| wall, settling included | {:.0} s |", soak.as_secs_f64());
    println!(
        "| RSS at 10% / 50% / end of the passes | {} / {} / {} KiB |",
        rss_early,
        rss_at(0.5),
        rss_end
    );
    println!(
        "| RSS end vs 10% (flat = 1.0) | {:.2} |",
        rss_end as f64 / rss_early as f64
    );
    println!("| RSS max | {rss_max} KiB |");
    println!(
        "| AWS calls per pass (mean, attempts incl. retries) vs no-drift lower bound | {per_pass:.1} vs {lower_bound} = {:.2}x |",
        per_pass / lower_bound as f64
    );

    assert!(done >= passes, "only {done} of {passes} passes ran");
    assert!(
        rss_end as f64 <= rss_early as f64 * 1.25,
        "RSS grew from {rss_early} to {rss_end} KiB"
    );
    assert!(
        per_pass <= lower_bound as f64 * 1.5,
        "{per_pass:.1} calls per pass, bound {lower_bound} (x1.5 for retries)"
    );
    assert!(
        exit.is_some_and(|s| s.success()),
        "daemon did not exit 0 on SIGTERM: {exit:?}"
    );
}
