//! `ecsync run` against moto at fleet scale (issue 15): for each fleet size, the daemon's first
//! pass over a fleet that is already in place (a full no-drift pass: AWS calls against the
//! bound, wall time), push-to-first-mutating-call latency over a series of pushes (each a commit
//! changing one service's image plus a signed GitHub webhook), the AWS calls of each progress
//! requeue check while one rollout is in progress, and the daemon's peak RSS (VmHWM). One run
//! prints every figure next to its target.
//!
//! Run: `cargo test --bench push_latency -- --bench` (needs moto_server). Fleets:
//! `ECSYNC_BENCH_N` (push fleets, comma-separated, one cluster each; default `1000,5000`),
//! `ECSYNC_BENCH_WIDE_N` (a fleet spread over `ECSYNC_BENCH_WIDE_CLUSTERS` = 10 clusters that
//! gets the full pass and RSS only; default 10000, 0 skips it), `ECSYNC_BENCH_PUSHES` (20 per
//! push fleet), `ECSYNC_BENCH_REQUEUES` (3 requeue checks per push fleet). Without `--bench` (as
//! under `cargo test --all-targets`) it runs fleets of 6 and 12 services (and 20 in 10
//! clusters), 3 pushes and 1 requeue check, and checks the bounds that hold at any size.
//!
//! Setup: each fleet is created by one `ecsync apply` straight against moto (what the daemon's
//! first pass would do, without making the daemon's first measured pass a creation), then the
//! daemon starts and adopts it. The daemon talks to moto through the fault proxy with 0% faults
//! and `memoise_reads()`: a read it has seen since the last write is answered from memory, since
//! moto spends ~2.4 ms serialising each described service (12 s per 5,000-service pass), which
//! would make this a benchmark of moto. Any write clears that memory, so a pass after a push
//! still reads moto afresh for everything it observes.
//!
//! Latency is measured from just before the webhook POST to the timestamp of the daemon's own
//! "registered task definition" log line for that service (`--log-format json`): that line is
//! written right after the first mutating call of the push returns, with microsecond
//! timestamps from the same clock, so it measures exactly "first mutating call" and adds no
//! polling of moto (which would both quantise the result and load the emulator being
//! measured). Moto is still checked afterwards: every push must show up as the service's
//! new image.
//!
//! AWS calls are the daemon's own counts (`ecsync_aws_api_calls_total` on `/metrics`, retries
//! included), read between passes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use common::{
    Daemon, FaultConfig, FaultProxy, GitRepo, Moto, Network, ecsync_with, free_port, http_post,
    try_http_get,
};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SECRET: &str = "bench-webhook-secret";
const MIB: u64 = 1024;
/// The service whose rollout never completes: desiredCount 2 where moto runs 1 task.
const ROLLING: &str = "rolling";

fn manifest(name: &str, cluster: &str, image: &str, count: u32, net: &Network) -> String {
    format!(
        "apiVersion: ecsync.io/v1alpha1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  cluster: {cluster}\n  desiredCount: {count}\n  launchType: FARGATE\n  taskDefinition:\n    family: {name}\n    cpu: \"256\"\n    memory: \"512\"\n    networkMode: awsvpc\n    requiresCompatibilities: [FARGATE]\n    containerDefinitions:\n      - {{name: app, image: \"{image}\", portMappings: [{{containerPort: 8080}}]}}\n  networkConfiguration:\n    awsvpcConfiguration: {{subnets: [{}], securityGroups: [{}]}}\n",
        net.subnets[0], net.security_group
    )
}

fn status(addr: &str) -> serde_json::Value {
    try_http_get(addr, "/status")
        .ok()
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn scope(addr: &str) -> String {
    status(addr)["lastPass"]["scope"]
        .as_str()
        .unwrap_or("n/a")
        .to_string()
}

fn pass_id(addr: &str) -> u64 {
    status(addr)["lastPass"]["passId"].as_u64().unwrap_or(0)
}

/// The daemon's own AWS call attempts so far, by operation (`ecsync_aws_api_calls_total`).
fn aws_calls(addr: &str) -> BTreeMap<String, u64> {
    let mut by_op = BTreeMap::new();
    let Ok((_, text)) = try_http_get(addr, "/metrics") else {
        return by_op;
    };
    for line in text
        .lines()
        .filter(|l| l.starts_with("ecsync_aws_api_calls_total{"))
    {
        let op = line
            .split("operation=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("?");
        let n = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        *by_op.entry(op.to_string()).or_default() += n as u64;
    }
    by_op
}

fn calls_between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Calls {
    let by_op: BTreeMap<String, u64> = after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    Calls { by_op }
}

struct Calls {
    by_op: BTreeMap<String, u64>,
}

impl Calls {
    fn total(&self) -> u64 {
        self.by_op.values().sum()
    }

    fn mutating(&self) -> u64 {
        self.by_op
            .iter()
            .filter(|(op, _)| {
                !["Describe", "List", "Get"]
                    .iter()
                    .any(|p| op.starts_with(p))
            })
            .map(|(_, n)| n)
            .sum()
    }
}

/// The first pass is over and found all `n` services in sync.
fn adopted(addr: &str, n: usize) -> bool {
    let s = status(addr);
    let services = s["services"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    s["lastPass"]["result"] == "ok"
        && services.len() == n
        && services.iter().all(|v| v["state"] == "Synced")
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
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / MIB as f64)
}

/// A fleet to measure: `services` spread round-robin over `clusters`.
struct Fleet {
    services: usize,
    clusters: usize,
    pushes: usize,
    requeues: usize,
}

impl Fleet {
    fn cluster(&self, i: usize) -> String {
        format!("bench-{}", i % self.clusters)
    }

    fn per_cluster(&self) -> Vec<usize> {
        (0..self.clusters)
            .map(|c| {
                (0..self.services)
                    .filter(|i| i % self.clusters == c)
                    .count()
            })
            .collect()
    }

    /// The calls of a no-drift pass as moto pages: DescribeClusters once per 100 clusters,
    /// ListServices once per cluster (moto ignores maxResults and answers in one page; real ECS
    /// pages at 100, one more call per 100 services), DescribeServices once per 10 services.
    fn bound(&self) -> u64 {
        (self.clusters.div_ceil(100)
            + self.clusters
            + self
                .per_cluster()
                .iter()
                .map(|k| k.div_ceil(10))
                .sum::<usize>()) as u64
    }

    fn label(&self) -> String {
        format!(
            "{} services / {} cluster{}",
            self.services,
            self.clusters,
            if self.clusters == 1 { "" } else { "s" }
        )
    }
}

/// What one fleet measured.
struct Measured {
    setup: Duration,
    full_pass: Calls,
    full_pass_ms: u64,
    hwm_after_full_pass: u64,
    /// Per push: to "webhook accepted", "git source fetched", first mutating call, UpdateService.
    to_accept: Vec<f64>,
    to_fetch: Vec<f64>,
    to_first_mutation: Vec<f64>,
    to_update: Vec<f64>,
    /// Per push, where the time to the first mutating call went (see [`PHASES`]).
    phases: Vec<[f64; PHASES.len()]>,
    /// `lastPass.scope` of the push passes and of the requeue checks, counted (`full`,
    /// `targeted`; "n/a" on a daemon that does not report one).
    push_scopes: BTreeMap<String, usize>,
    requeue_scopes: BTreeMap<String, usize>,
    /// Calls of each requeue check, and of all of them by operation.
    requeue_checks: Vec<u64>,
    requeue_calls: Option<Calls>,
    hwm: u64,
    rss: u64,
    /// Of `rss`, what is heap and stacks rather than the binary's mapped pages.
    rss_anon: u64,
    /// The highest anonymous RSS seen: the daemon's own memory, whatever the build.
    anon_hwm: u64,
}

fn signed_push() -> (String, String) {
    let body = serde_json::json!({"ref": "refs/heads/main"}).to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    (body, sig)
}

fn post_push(addr: &str) -> SystemTime {
    let (body, sig) = signed_push();
    let t0 = SystemTime::now();
    let (code, reply) = http_post(
        addr,
        "/hooks/git",
        &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)],
        &body,
    );
    assert_eq!(code, 202, "{reply}");
    t0
}

fn live_image(runtime: &tokio::runtime::Runtime, moto: &Moto, cluster: &str, name: &str) -> String {
    runtime.block_on(async {
        let ecs = moto.ecs();
        let svc = ecs
            .describe_services()
            .cluster(cluster)
            .services(name)
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
    })
}

fn measure(runtime: &tokio::runtime::Runtime, fleet: &Fleet) -> Measured {
    let n = fleet.services;
    // Rollouts complete in moto (1 running task meets desiredCount 1), so a pushed service goes
    // back to Synced and no 5 s "still progressing" requeue runs into the next push.
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let net = runtime.block_on(async {
        for c in 0..fleet.clusters {
            moto.create_cluster(&format!("bench-{c}")).await;
        }
        moto.default_network().await
    });
    let name = |i: usize| format!("svc-{i:05}");
    let path = |i: usize| format!("services/{}/{}.yaml", fleet.cluster(i), name(i));
    let repo = GitRepo::new();
    for i in 0..n {
        repo.write(
            &path(i),
            &manifest(&name(i), &fleet.cluster(i), "app:0", 1, &net),
        );
    }
    repo.commit("bench services");

    let dir = tempfile::tempdir().expect("tempdir");
    let setup_started = Instant::now();
    let seed = ecsync_with(&moto)
        .args(["apply", "--repo", &repo.url(), "--path", "services"])
        .args(["--output", "json", "--cache-dir"])
        .arg(dir.path().join("seed-cache"))
        .output()
        .expect("run ecsync apply");
    assert!(
        seed.status.success(),
        "seeding apply failed:\n{}",
        String::from_utf8_lossy(&seed.stderr)
    );
    let setup = setup_started.elapsed();

    let proxy = FaultProxy::start(moto.port(), FaultConfig::none().memoise_reads());
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).expect("write secret");
    let addr = format!("127.0.0.1:{}", free_port());
    let (mut cmd, _) = common::bench_daemon_command(&moto);
    cmd.env("AWS_ENDPOINT_URL", proxy.endpoint())
        .args(["--log-format", "json", "run", "--repo", &repo.url()])
        .args(["--path", "services", "--ref", "main", "--interval", "1h"])
        .args(["--listen", &addr])
        .arg("--webhook-secret-file")
        .arg(&secret_file)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("NO_COLOR", "1")
        // The source's debug line "git source fetched" splits the latency in two.
        .env("ECSYNC_LOG", "info,ecsync::adapters::git=debug");
    let mut daemon = Daemon::spawn(cmd);
    let pid = daemon.pid();
    let peaks = common::MemoryPeaks::start(pid);

    let first = wait_for(Duration::from_secs(900), || {
        if daemon.try_wait().is_some() {
            panic!("daemon exited:\n{}", daemon.logs());
        }
        adopted(&addr, n).then_some(())
    });
    assert!(
        first.is_some(),
        "the first pass did not find all {n} services in sync:\n{}\n{}",
        status(&addr),
        daemon.stderr_from(daemon.stderr_len().saturating_sub(20_000))
    );
    let full_pass = calls_between(&BTreeMap::new(), &aws_calls(&addr));
    let full_pass_ms = status(&addr)["lastPass"]["durationMs"]
        .as_u64()
        .unwrap_or(0);
    let hwm_after_full_pass = common::vm_kib(pid, "VmHWM");

    let mut m = Measured {
        setup,
        full_pass,
        full_pass_ms,
        hwm_after_full_pass,
        to_accept: Vec::new(),
        to_fetch: Vec::new(),
        to_first_mutation: Vec::new(),
        to_update: Vec::new(),
        phases: Vec::new(),
        push_scopes: BTreeMap::new(),
        requeue_scopes: BTreeMap::new(),
        requeue_checks: Vec::new(),
        requeue_calls: None,
        hwm: 0,
        rss: 0,
        rss_anon: 0,
        anon_hwm: 0,
    };
    for k in 0..fleet.pushes {
        let i = (k * 7919) % n;
        let (svc, cluster) = (name(i), fleet.cluster(i));
        let image = format!("app:push-{k}");
        // No pass is running now: the previous push's pass has finished.
        let pass_before = pass_id(&addr);
        let log_from = daemon.stderr_len();
        repo.write(&path(i), &manifest(&svc, &cluster, &image, 1, &net));
        repo.commit(&format!("{svc}: {image}"));
        let t0 = post_push(&addr);
        let logs = || daemon.stderr_from(log_from);

        let registered = wait_for(Duration::from_secs(120), || {
            logged_at(&logs(), "registered task definition", Some(&svc), t0)
        })
        .unwrap_or_else(|| panic!("push {k} never registered:\n{}", logs()));
        let updated = wait_for(Duration::from_secs(120), || {
            logged_at(&logs(), "updated service", Some(&svc), t0)
        })
        .unwrap_or_else(|| panic!("push {k} never updated the service:\n{}", logs()));
        let finished = wait_for(Duration::from_secs(120), || {
            (pass_id(&addr) > pass_before).then_some(())
        });
        assert!(finished.is_some(), "the pass for push {k} never finished");
        *m.push_scopes.entry(scope(&addr)).or_default() += 1;
        let ms = |t: SystemTime| t.duration_since(t0).unwrap_or_default().as_secs_f64() * 1e3;
        m.to_first_mutation.push(ms(registered));
        m.to_update.push(ms(updated));
        let logs = logs();
        let accepted = logged_at(&logs, "webhook push accepted, starting a pass", None, t0);
        let fetched = logged_at(&logs, "git source fetched", None, t0);
        m.to_accept.push(accepted.map(ms).unwrap_or(f64::NAN));
        m.to_fetch.push(fetched.map(ms).unwrap_or(f64::NAN));
        if let Some(fetched) = fetched {
            m.phases
                .push(phases(t0, fetched, registered, &proxy.exchanges_since(t0)));
        }
        assert_eq!(
            live_image(runtime, &moto, &cluster, &svc),
            image,
            "moto does not show push {k}"
        );
    }

    if fleet.requeues > 0 {
        requeue_checks(&mut m, &daemon, &addr, &repo, &net, fleet.requeues);
    }

    m.hwm = common::vm_kib(pid, "VmHWM");
    m.rss = common::vm_kib(pid, "VmRSS");
    m.rss_anon = common::vm_kib(pid, "RssAnon");
    m.anon_hwm = peaks.anon_kib();
    assert!(m.hwm > 0, "could not read VmHWM of {pid}");
    daemon.signal("TERM");
    let exit = daemon.wait_timeout(Duration::from_secs(30));
    assert!(
        exit.is_some_and(|s| s.success()),
        "daemon did not exit 0 on SIGTERM: {exit:?}"
    );
    m
}

/// One more service whose rollout never completes is pushed; once the daemon has created it,
/// every pass is a progress requeue check (the poll interval is 1 h) until `checks` of them
/// have run. Their calls are read from `/metrics` between passes: a requeue waits at least 5 s
/// after the pass before it, so nothing is in flight when the counters are read.
fn requeue_checks(
    m: &mut Measured,
    daemon: &Daemon,
    addr: &str,
    repo: &GitRepo,
    net: &Network,
    checks: usize,
) {
    let pass_before = pass_id(addr);
    repo.write(
        &format!("services/bench-0/{ROLLING}.yaml"),
        &manifest(ROLLING, "bench-0", "app:0", 2, net),
    );
    repo.commit("a service whose rollout stays in progress");
    post_push(addr);
    let created = wait_for(Duration::from_secs(120), || {
        let s = status(addr);
        (s["lastPass"]["passId"].as_u64().unwrap_or(0) > pass_before
            && s["services"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["service"] == ROLLING && v["state"] == "Progressing"))
        .then_some(())
    });
    assert!(
        created.is_some(),
        "{ROLLING} was not created or is not Progressing: {}\n{}",
        status(addr),
        daemon.stderr_from(daemon.stderr_len().saturating_sub(20_000))
    );
    let start = aws_calls(addr);
    let mut last = start.clone();
    let mut seen = pass_id(addr);
    // The requeue doubles its wait while nothing changes: 5 s, 10 s, 20 s, ...
    let timeout = Duration::from_secs(5 * (1 << checks.min(6)) + 120);
    while m.requeue_checks.len() < checks {
        let next = wait_for(timeout, || {
            let s = status(addr);
            let id = s["lastPass"]["passId"].as_u64().unwrap_or(0);
            (id > seen).then(|| (id, s["lastPass"]["kind"].clone()))
        });
        let (id, kind) = next.unwrap_or_else(|| {
            panic!(
                "no requeue check within {timeout:?}:\n{}",
                daemon.stderr_from(daemon.stderr_len().saturating_sub(20_000))
            )
        });
        assert_eq!(id, seen + 1, "a pass went by unseen");
        assert_eq!(kind, "requeue", "pass {id} is not a progress requeue");
        let now = aws_calls(addr);
        *m.requeue_scopes.entry(scope(addr)).or_default() += 1;
        m.requeue_checks.push(calls_between(&last, &now).total());
        (last, seen) = (now, id);
    }
    m.requeue_calls = Some(calls_between(&start, &last));
}

/// Where the time from the webhook POST to the first mutating call goes, from the daemon's log
/// (git fetched, task definition registered) and the proxy's timeline of the pass's calls.
const PHASES: [&str; 5] = [
    "git fetch",
    "manifests read and parsed, pass set up (to the first AWS call)",
    "observe (first AWS call to the last DescribeServices answered)",
    "plan and apply up to RegisterTaskDefinition sent",
    "RegisterTaskDefinition answered and logged",
];

fn phases(
    t0: SystemTime,
    fetched: SystemTime,
    registered: SystemTime,
    exchanges: &[common::Exchange],
) -> [f64; PHASES.len()] {
    let ms =
        |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default().as_secs_f64() * 1e3;
    let register = exchanges
        .iter()
        .find(|e| e.operation == "RegisterTaskDefinition")
        .map_or(registered, |e| e.arrived);
    let first_call = exchanges.first().map_or(register, |e| e.arrived);
    let observed = exchanges
        .iter()
        .filter(|e| e.operation == "DescribeServices" && e.arrived < register)
        .map(|e| e.answered)
        .max()
        .unwrap_or(first_call);
    [
        ms(t0, fetched),
        ms(fetched, first_call),
        ms(first_call, observed),
        ms(observed, register),
        ms(register, registered),
    ]
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let param = |name: &str, real: &str, smoke: &str| {
        common::bench_param::<String>(name, benching, real.into(), smoke.into())
    };
    let sizes: Vec<usize> = param("ECSYNC_BENCH_N", "1000,5000", "6,12")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let pushes = common::bench_param("ECSYNC_BENCH_PUSHES", benching, 20, 3);
    let requeues = common::bench_param("ECSYNC_BENCH_REQUEUES", benching, 3, 1);
    let wide_n = common::bench_param("ECSYNC_BENCH_WIDE_N", benching, 10_000, 20);
    let wide_clusters = common::bench_param("ECSYNC_BENCH_WIDE_CLUSTERS", benching, 10, 10);
    let mut fleets: Vec<Fleet> = sizes
        .iter()
        .map(|&services| Fleet {
            services,
            clusters: 1,
            pushes,
            requeues,
        })
        .collect();
    if wide_n > 0 {
        fleets.push(Fleet {
            services: wide_n,
            clusters: wide_clusters,
            pushes: 0,
            requeues: 0,
        });
    }

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut results = Vec::new();
    for fleet in &fleets {
        let started = Instant::now();
        let m = measure(&runtime, fleet);
        eprintln!(
            "push_latency: {} measured in {:.0?}",
            fleet.label(),
            started.elapsed()
        );
        results.push(m);
    }

    println!(
        "push_latency: the daemon is {}, moto on loopback behind the memoising proxy (0% faults; reads since the last write answered from memory), --interval 1h, {pushes} pushes and {requeues} requeue checks per push fleet",
        common::bench_build()
    );
    println!(
        "| fleet | setup (one `ecsync apply` creating it) | daemon's first pass (no drift): AWS calls / bound | its wall | push → first mutating call: median | p90 | requeue check: AWS calls | daemon VmHWM after the first pass / at the end |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (fleet, m) in fleets.iter().zip(&results) {
        let lat = sorted(m.to_first_mutation.clone());
        let (median, p90) = if lat.is_empty() {
            ("–".to_string(), "–".to_string())
        } else {
            (
                format!("{:.0} ms", percentile(&lat, 0.5)),
                format!("{:.0} ms", percentile(&lat, 0.9)),
            )
        };
        let requeue = if m.requeue_checks.is_empty() {
            "–".to_string()
        } else {
            format!("{:?}", m.requeue_checks)
        };
        println!(
            "| {} | {:.1} s | {} / {} ({:.2}x) | {:.1} s | {median} | {p90} | {requeue} | {} / {} |",
            fleet.label(),
            m.setup.as_secs_f64(),
            m.full_pass.total(),
            fleet.bound(),
            m.full_pass.total() as f64 / fleet.bound() as f64,
            m.full_pass_ms as f64 / 1e3,
            mib(m.hwm_after_full_pass),
            mib(m.hwm),
        );
    }
    println!();
    for (fleet, m) in fleets.iter().zip(&results) {
        println!(
            "{}: first pass calls by operation {:?}",
            fleet.label(),
            m.full_pass.by_op
        );
        if let Some(calls) = &m.requeue_calls {
            println!(
                "{}: {} requeue checks (pass scopes {:?}), calls by operation {:?}",
                fleet.label(),
                m.requeue_checks.len(),
                m.requeue_scopes,
                calls.by_op
            );
        }
        if !m.to_first_mutation.is_empty() {
            println!(
                "{}: push → webhook accepted {:.0} ms, → git fetched {:.0} ms, → first mutating call {:.0} ms, → UpdateService {:.0} ms (medians)",
                fleet.label(),
                percentile(&sorted(m.to_accept.clone()), 0.5),
                percentile(&sorted(m.to_fetch.clone()), 0.5),
                percentile(&sorted(m.to_first_mutation.clone()), 0.5),
                percentile(&sorted(m.to_update.clone()), 0.5),
            );
        }
        if !m.push_scopes.is_empty() {
            println!("{}: push pass scopes {:?}", fleet.label(), m.push_scopes);
        }
        if !m.phases.is_empty() {
            let parts: Vec<String> = PHASES
                .iter()
                .enumerate()
                .map(|(k, what)| {
                    let v = sorted(m.phases.iter().map(|p| p[k]).collect());
                    format!("{what} {:.0} ms", percentile(&v, 0.5))
                })
                .collect();
            println!(
                "{}: push → first mutating call, medians by phase: {}",
                fleet.label(),
                parts.join("; ")
            );
        }
        println!(
            "{}: daemon peak anonymous RSS (heap, stacks) {}; VmRSS at the end {}, of which anonymous {} and file-backed (the binary's pages) {}",
            fleet.label(),
            mib(m.anon_hwm),
            mib(m.rss),
            mib(m.rss_anon),
            mib(m.rss.saturating_sub(m.rss_anon)),
        );
    }

    println!();
    println!("targets (issue 15):");
    let push_fleets: Vec<(&Fleet, f64)> = fleets
        .iter()
        .zip(&results)
        .filter(|(_, m)| !m.to_first_mutation.is_empty())
        .map(|(f, m)| (f, percentile(&sorted(m.to_first_mutation.clone()), 0.5)))
        .collect();
    for (fleet, median) in &push_fleets {
        println!(
            "  push → first mutating call median < 250 ms at {}: {median:.0} ms -> {}",
            fleet.label(),
            met(*median < 250.0)
        );
    }
    if let (Some((small, a)), Some((large, b))) = (push_fleets.first(), push_fleets.last())
        && large.services > small.services
    {
        println!(
            "  median ratio {} / {} services ≤ 1.3: {:.2} -> {}",
            large.services,
            small.services,
            b / a,
            met(b / a <= 1.3)
        );
    }
    for (fleet, m) in fleets.iter().zip(&results) {
        if let Some(worst) = m.requeue_checks.iter().max() {
            println!(
                "  progress requeue ≤ 5 calls per check at {}: at most {worst} -> {}",
                fleet.label(),
                met(*worst <= 5)
            );
        }
    }
    for (fleet, m) in fleets.iter().zip(&results) {
        let ratio = m.full_pass.total() as f64 / fleet.bound() as f64;
        println!(
            "  full no-drift pass within 10% of the bound at {}: {} / {} = {ratio:.3} -> {}",
            fleet.label(),
            m.full_pass.total(),
            fleet.bound(),
            met(ratio <= 1.1)
        );
        let limit = if fleet.services <= 1000 { 64 } else { 256 };
        if fleet.services >= 1000 {
            println!(
                "  peak RSS < {limit} MiB at {}: {} -> {}",
                fleet.label(),
                mib(m.hwm),
                met(m.hwm < limit * MIB)
            );
        }
    }

    // Bounds that hold at any size, smoke test included; the targets above are printed, since
    // on a busy machine a latency figure is a measurement, not a pass/fail.
    for (fleet, m) in fleets.iter().zip(&results) {
        assert_eq!(
            m.full_pass.mutating(),
            0,
            "the first pass over {} mutated: {:?}",
            fleet.label(),
            m.full_pass.by_op
        );
        assert!(
            m.full_pass.total() as f64 <= fleet.bound() as f64 * 1.1,
            "the first pass over {} made {} calls, bound {}",
            fleet.label(),
            m.full_pass.total(),
            fleet.bound()
        );
        // A requeue check never costs more than a full pass over the fleet.
        for calls in &m.requeue_checks {
            assert!(
                *calls as f64 <= (fleet.bound() + 1) as f64 * 1.1,
                "a requeue check over {} made {calls} calls",
                fleet.label()
            );
        }
        assert!(
            m.to_first_mutation.iter().all(|ms| *ms < 60_000.0),
            "a push took over 60 s at {}: {:?}",
            fleet.label(),
            m.to_first_mutation
        );
    }
}
