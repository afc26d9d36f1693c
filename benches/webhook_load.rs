//! `ecsync run` under a storm of webhook deliveries (issue 12, "HTTP load"): signed pushes
//! from many senders at once, with forged signatures, oversize bodies and pushes for another
//! branch mixed in. Every request must be answered, the daemon must stay up, the valid pushes
//! must coalesce into few passes, and `/status` must stay fast.
//!
//! Run: `cargo test --bench webhook_load -- --bench` (needs moto_server; 2,000 requests from
//! 32 senders against 20 services; ECSYNC_BENCH_REQUESTS, ECSYNC_BENCH_SENDERS and
//! ECSYNC_BENCH_N change them). Without `--bench` (as under `cargo test --all-targets`) it
//! sends 120 requests from 4 senders and only checks that it works.
//!
//! `/status` latency is reported as a ratio against its own idle median, measured in the same
//! run just before the storm.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, GitRepo, Moto, ecsync_with, free_port, try_http_get, try_http_post};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SECRET: &str = "bench-webhook-secret";

fn status(addr: &str) -> serde_json::Value {
    try_http_get(addr, "/status")
        .ok()
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn pass_id(addr: &str) -> u64 {
    status(addr)["lastPass"]["passId"].as_u64().unwrap_or(0)
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The kinds of delivery, in the proportions a noisy or hostile sender produces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Delivery {
    Valid,
    Forged,
    Oversize,
    OtherBranch,
}

impl Delivery {
    fn nth(i: usize) -> Delivery {
        match i % 20 {
            0..=13 => Delivery::Valid,
            14..=16 => Delivery::Forged,
            17 | 18 => Delivery::Oversize,
            _ => Delivery::OtherBranch,
        }
    }
    fn expected(self) -> u16 {
        match self {
            Delivery::Valid | Delivery::OtherBranch => 202,
            Delivery::Forged => 401,
            Delivery::Oversize => 413,
        }
    }
}

fn send(addr: &str, d: Delivery, big: &[u8]) -> std::io::Result<u16> {
    let push = |r: &str| serde_json::json!({ "ref": r }).to_string().into_bytes();
    let (body, sig) = match d {
        Delivery::Valid => {
            let b = push("refs/heads/main");
            let s = sign(&b);
            (b, s)
        }
        Delivery::Forged => (push("refs/heads/main"), sign(b"something else")),
        Delivery::Oversize => (big.to_vec(), sign(big)),
        Delivery::OtherBranch => {
            let b = push("refs/heads/feature");
            let s = sign(&b);
            (b, s)
        }
    };
    let headers = [
        ("X-GitHub-Event", "push"),
        ("X-Hub-Signature-256", sig.as_str()),
    ];
    try_http_post(addr, "/hooks/git", &headers, body).map(|(code, _)| code)
}

/// A delivery and its answer (an error: no HTTP answer at all).
type Outcome = (Delivery, Result<u16, String>);

fn median_ms(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(0.0)
}

fn time_status(addr: &str) -> f64 {
    let t = Instant::now();
    let _ = try_http_get(addr, "/status");
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let env_or =
        |name: &str, real: usize, smoke: usize| common::bench_param(name, benching, real, smoke);
    let requests = env_or("ECSYNC_BENCH_REQUESTS", 2000, 120);
    let senders = env_or("ECSYNC_BENCH_SENDERS", 32, 4);
    let n = env_or("ECSYNC_BENCH_N", 20, 3);

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let net = runtime.block_on(async {
        moto.create_cluster("alpha").await;
        moto.default_network().await
    });
    let repo = GitRepo::new();
    for i in 0..n {
        repo.write(
            &format!("services/svc-{i:03}.yaml"),
            &common::service_yaml(&format!("svc-{i:03}"), "alpha", &net, "app:1", "x", 1),
        );
    }
    repo.commit("bench services");

    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).expect("write secret");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = ecsync_with(&moto);
    cmd.args([
        "run",
        "--repo",
        &repo.url(),
        "--path",
        "services",
        "--ref",
        "main",
    ])
    .args(["--interval", "1h", "--listen", &addr])
    .arg("--webhook-secret-file")
    .arg(&secret_file)
    .arg("--cache-dir")
    .arg(dir.path().join("cache"))
    .env("NO_COLOR", "1");
    let mut daemon = Daemon::spawn(cmd);
    let settled = common::wait_until(Duration::from_secs(120), || {
        if daemon.try_wait().is_some() {
            panic!("daemon exited:\n{}", daemon.logs());
        }
        let s = status(&addr);
        let services = s["services"].as_array().cloned().unwrap_or_default();
        services.len() == n && services.iter().all(|v| v["state"] == "Synced")
    });
    assert!(settled, "services never Synced:\n{}", daemon.logs());

    // The baseline, idle, in this run.
    let mut idle: Vec<f64> = (0..50).map(|_| time_status(&addr)).collect();
    let idle_median = median_ms(&mut idle);
    let passes_before = pass_id(&addr);

    let big = Arc::new(vec![b'x'; 2 * 1024 * 1024]);
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let started = Instant::now();
    let workers: Vec<_> = (0..senders)
        .map(|_| {
            let (addr, big, next, outcomes) =
                (addr.clone(), big.clone(), next.clone(), outcomes.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= requests {
                        return;
                    }
                    let d = Delivery::nth(i);
                    let r = send(&addr, d, &big).map_err(|e| e.to_string());
                    outcomes.lock().expect("outcomes").push((d, r));
                }
            })
        })
        .collect();
    // /status while the storm runs.
    let mut loaded = Vec::new();
    while workers.iter().any(|w| !w.is_finished()) {
        loaded.push(time_status(&addr));
        std::thread::sleep(Duration::from_millis(20));
    }
    for w in workers {
        w.join().expect("sender");
    }
    let storm = started.elapsed();
    let loaded_median = median_ms(&mut loaded);

    assert!(
        daemon.try_wait().is_none(),
        "the daemon died under load:\n{}",
        daemon.logs()
    );
    // The pushes coalesced into passes; wait for the last one to finish.
    let quiet = common::wait_until(Duration::from_secs(60), || {
        let a = pass_id(&addr);
        std::thread::sleep(Duration::from_millis(500));
        a == pass_id(&addr)
    });
    assert!(quiet, "passes never stopped after the storm");
    let passes = pass_id(&addr) - passes_before;

    let outcomes = outcomes.lock().expect("outcomes");
    let unanswered: Vec<_> = outcomes.iter().filter(|(_, r)| r.is_err()).collect();
    let wrong: Vec<_> = outcomes
        .iter()
        .filter(|(d, r)| r.as_ref().is_ok_and(|c| *c != d.expected()))
        .collect();
    let valid = outcomes
        .iter()
        .filter(|(d, _)| *d == Delivery::Valid)
        .count();

    daemon.signal("TERM");
    let exit = daemon.wait_timeout(Duration::from_secs(10));

    println!(
        "webhook_load: {requests} deliveries from {senders} senders ({valid} valid, the rest forged, 2 MiB or for another branch), {n} services (moto, debug build)"
    );
    println!("| what | figure |");
    println!("|---|---|");
    println!(
        "| storm duration | {:.2} s ({:.0} requests/s) |",
        storm.as_secs_f64(),
        requests as f64 / storm.as_secs_f64()
    );
    println!("| unanswered requests | {} |", unanswered.len());
    println!(
        "| answers other than 202 / 401 / 413 as expected | {} |",
        wrong.len()
    );
    println!("| passes started by {valid} valid pushes | {passes} |");
    println!(
        "| /status median under load vs idle (same run) | {loaded_median:.1} ms vs {idle_median:.1} ms = {:.1}x |",
        loaded_median / idle_median.max(0.001)
    );

    assert!(unanswered.is_empty(), "unanswered: {unanswered:?}");
    assert!(wrong.is_empty(), "unexpected answers: {wrong:?}");
    assert!(passes >= 1, "no valid push started a pass");
    assert!(
        passes as usize <= valid / 4 + 2,
        "{passes} passes for {valid} pushes: they did not coalesce"
    );
    assert!(
        exit.is_some_and(|s| s.success()),
        "daemon did not exit 0 on SIGTERM: {exit:?}"
    );
}
