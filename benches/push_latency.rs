//! `ecsync run` against moto: push-to-first-mutating-call latency over a series of pushes
//! (each a commit changing one service's image plus a signed GitHub webhook), and the
//! daemon's peak RSS (VmHWM) with N managed services.
//!
//! Run: `cargo test --bench push_latency -- --bench` (needs moto_server; N = 200 services,
//! 20 pushes; ECSYNC_BENCH_N and ECSYNC_BENCH_PUSHES change them). Without `--bench` (as under
//! `cargo test --all-targets`) it runs 6 services and 3 pushes and only checks that it works.
//!
//! Latency is measured from just before the webhook POST to the timestamp of the daemon's own
//! "registered task definition" log line for that service (`--log-format json`): that line is
//! written right after the first mutating call of the push returns, with microsecond
//! timestamps from the same clock, so it measures exactly "first mutating call" and adds no
//! polling of moto (which would both quantise the result and load the emulator being
//! measured). Moto is still checked afterwards: every push must show up as the service's
//! new image.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{Daemon, GitRepo, Moto, Network, ecsync_with, free_port, http_post, try_http_get};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SECRET: &str = "bench-webhook-secret";

fn manifest(i: usize, image: &str, net: &Network) -> String {
    format!(
        "apiVersion: ecsync.io/v1alpha1\nkind: Service\nmetadata: {{name: svc-{i:04}}}\nspec:\n  cluster: bench\n  desiredCount: 1\n  launchType: FARGATE\n  taskDefinition:\n    family: svc-{i:04}\n    cpu: \"256\"\n    memory: \"512\"\n    networkMode: awsvpc\n    requiresCompatibilities: [FARGATE]\n    containerDefinitions:\n      - {{name: app, image: \"{image}\", portMappings: [{{containerPort: 8080}}]}}\n  networkConfiguration:\n    awsvpcConfiguration: {{subnets: [{}], securityGroups: [{}]}}\n",
        net.subnets[0], net.security_group
    )
}

fn status(addr: &str) -> serde_json::Value {
    try_http_get(addr, "/status")
        .ok()
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The first pass is over and has created all `n` services without error.
fn created(addr: &str, n: usize) -> bool {
    let s = status(addr);
    let services = s["services"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    s["lastPass"]["result"] == "ok"
        && services.len() == n
        && services
            .iter()
            .all(|v| v["state"] == "Synced" || v["state"] == "Progressing")
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The timestamp of the first JSON log line with this message (and, if given, for this
/// service) at or after `since`.
fn logged_at(
    logs: &str,
    message: &str,
    service: Option<&str>,
    since: SystemTime,
) -> Option<SystemTime> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["fields"]["message"] == message && service.is_none_or(|s| v["fields"]["service"] == s)
        })
        .filter_map(|v| humantime::parse_rfc3339(v["timestamp"].as_str()?).ok())
        .find(|t| *t >= since)
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let env_or =
        |name: &str, real: usize, smoke: usize| common::bench_param(name, benching, real, smoke);
    let n = env_or("ECSYNC_BENCH_N", 200, 6);
    let pushes = env_or("ECSYNC_BENCH_PUSHES", 20, 3);

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // Rollouts complete in moto, so a pushed service goes back to Synced and no 5 s
    // "still progressing" requeue runs into the next push.
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let net = runtime.block_on(async {
        moto.create_cluster("bench").await;
        moto.default_network().await
    });
    let repo = GitRepo::new();
    for i in 0..n {
        repo.write(
            &format!("services/svc-{i:04}.yaml"),
            &manifest(i, "app:0", &net),
        );
    }
    repo.commit("bench services");

    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).expect("write secret");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = ecsync_with(&moto);
    cmd.args(["--log-format", "json", "run", "--repo", &repo.url()])
        .args(["--path", "services", "--ref", "main", "--interval", "1h"])
        .args(["--listen", &addr])
        .arg("--webhook-secret-file")
        .arg(&secret_file)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("NO_COLOR", "1")
        // The source's debug line "git source fetched" splits the latency in two.
        .env("ECSYNC_LOG", "info,ecsync::adapters::git=debug");
    let started = Instant::now();
    let mut daemon = Daemon::spawn(cmd);
    let pid = daemon.pid();

    // The first pass registers and creates all N. Its 5 s "progressing" requeue does not
    // matter: a push's trigger ends that wait at once.
    let first = wait_for(Duration::from_secs(300), || {
        if daemon.try_wait().is_some() {
            panic!("daemon exited:\n{}", daemon.logs());
        }
        created(&addr, n).then_some(())
    });
    assert!(
        first.is_some(),
        "the first pass did not create all services:\n{}\n{}",
        status(&addr),
        daemon.logs()
    );
    let converge = started.elapsed();
    let hwm_after_create = vm_kib(pid, "VmHWM");

    let mut latencies = Vec::new();
    let mut to_update = Vec::new();
    let mut to_accept = Vec::new();
    let mut to_fetch = Vec::new();
    for k in 0..pushes {
        let i = (k * 7) % n;
        let name = format!("svc-{i:04}");
        let image = format!("app:push-{k}");
        // No pass is running now: the previous push's pass has finished, and the 5 s
        // "progressing" requeue it scheduled is reset by this push's trigger.
        let pass_before = status(&addr)["lastPass"]["passId"].as_u64().unwrap_or(0);
        repo.write(&format!("services/{name}.yaml"), &manifest(i, &image, &net));
        repo.commit(&format!("{name}: {image}"));

        let body = serde_json::json!({"ref": "refs/heads/main"}).to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(body.as_bytes());
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let t0 = SystemTime::now();
        let (code, reply) = http_post(
            &addr,
            "/hooks/git",
            &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)],
            &body,
        );
        assert_eq!(code, 202, "{reply}");

        let registered = wait_for(Duration::from_secs(30), || {
            logged_at(
                &daemon.logs(),
                "registered task definition",
                Some(&name),
                t0,
            )
        })
        .unwrap_or_else(|| panic!("push {k} never registered:\n{}", daemon.logs()));
        let updated = wait_for(Duration::from_secs(30), || {
            logged_at(&daemon.logs(), "updated service", Some(&name), t0)
        })
        .unwrap_or_else(|| panic!("push {k} never updated the service:\n{}", daemon.logs()));
        let finished = wait_for(Duration::from_secs(30), || {
            let id = status(&addr)["lastPass"]["passId"].as_u64().unwrap_or(0);
            (id > pass_before).then_some(())
        });
        assert!(finished.is_some(), "the pass for push {k} never finished");
        let ms = |t: SystemTime| t.duration_since(t0).unwrap_or_default().as_secs_f64() * 1e3;
        latencies.push(ms(registered));
        to_update.push(ms(updated));
        let logs = daemon.logs();
        let accepted = logged_at(&logs, "webhook push accepted, starting a pass", None, t0);
        let fetched = logged_at(&logs, "git source fetched", None, t0);
        to_accept.push(accepted.map(ms).unwrap_or(f64::NAN));
        to_fetch.push(fetched.map(ms).unwrap_or(f64::NAN));

        // Sanity: moto really runs the new image.
        let live = runtime.block_on(async {
            let ecs = moto.ecs();
            let svc = ecs
                .describe_services()
                .cluster("bench")
                .services(&name)
                .send()
                .await
                .expect("DescribeServices");
            let td = svc.services()[0]
                .task_definition()
                .unwrap_or_default()
                .to_string();
            let td = ecs
                .describe_task_definition()
                .task_definition(td)
                .send()
                .await
                .expect("DescribeTaskDefinition");
            td.task_definition()
                .and_then(|t| t.container_definitions().first())
                .and_then(|c| c.image())
                .unwrap_or_default()
                .to_string()
        });
        assert_eq!(live, image, "moto does not show push {k}");
    }
    let hwm = vm_kib(pid, "VmHWM");
    let rss = vm_kib(pid, "VmRSS");
    daemon.signal("TERM");
    let exit = daemon.wait_timeout(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|s| s.success()),
        "daemon did not exit 0 on SIGTERM: {exit:?}"
    );

    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let mut sorted_upd = to_update.clone();
    sorted_upd.sort_by(f64::total_cmp);
    to_accept.sort_by(f64::total_cmp);
    to_fetch.sort_by(f64::total_cmp);
    let row = |what: &str, s: &[f64]| {
        println!(
            "| {what} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
            percentile(s, 0.5),
            percentile(s, 0.9),
            s[s.len() - 1],
            s[0]
        )
    };
    println!(
        "push_latency: {n} services in 1 cluster, {pushes} pushes (moto, debug build, --interval 1h)"
    );
    println!("| push (webhook POST) to | median | p90 | max | min |");
    println!("|---|---|---|---|---|");
    row("webhook accepted (logged by the handler)", &to_accept);
    row("git fetched (manifests read)", &to_fetch);
    row(
        "first mutating call (RegisterTaskDefinition logged)",
        &sorted,
    );
    row("service updated (UpdateService logged)", &sorted_upd);
    println!();
    println!("| daemon memory | KiB |");
    println!("|---|---|");
    println!("| VmHWM after creating {n} services | {hwm_after_create} |");
    println!("| VmHWM at the end | {hwm} |");
    println!("| VmRSS at the end | {rss} |");
    println!("daemon start to all {n} services created (first pass): {converge:.1?}");
    let median = percentile(&sorted, 0.5);
    println!(
        "target: median under 1000 ms -> {}",
        if median < 1000.0 { "met" } else { "MISSED" }
    );

    assert!(hwm > 0, "could not read VmHWM of {pid}");
    assert!(
        sorted.iter().all(|ms| *ms < 10_000.0),
        "a push took over 10 s: {sorted:?}"
    );
}
