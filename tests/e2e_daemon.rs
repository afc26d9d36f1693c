//! End to end: the `ecsync run` daemon against a private moto per test, driven through
//! git commits, the push webhook, hand changes in AWS and signals (issue 3's "done when" list,
//! except prune).

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Daemon, GitRepo, Moto, Network, ecsync_with, free_port, http_get, http_post, spawn_listening,
    status_json, try_http_get, wait_until, wait_until_async,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "daemon-test-webhook-secret";

// ---------------------------------------------------------------- manifests and git

/// The shared fixture, without the environment variables this file does not use.
fn service_yaml(name: &str, cluster: &str, net: &Network, image: &str, count: i32) -> String {
    common::service_yaml(name, cluster, net, image, "daemon", count)
}

/// Cluster `alpha` with services `web` (nginx:1.27, 2 tasks) and `api` (api:1, 1 task).
async fn fleet(moto: &Moto) -> (GitRepo, Network) {
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "alpha", &net, "nginx:1.27", 2),
    );
    repo.write(
        "services/api.yaml",
        &service_yaml("api", "alpha", &net, "api:1", 1),
    );
    repo.commit("two services");
    (repo, net)
}

// ---------------------------------------------------------------- the daemon

/// A running `ecsync run` with its own cache and webhook secret.
struct Running {
    daemon: Daemon,
    addr: String,
    _dirs: tempfile::TempDir,
}

impl Running {
    /// Start `ecsync run --repo REPO --path services --ref main` plus `extra`, and wait until
    /// its HTTP listener answers.
    fn start(moto: &Moto, repo_url: &str, extra: &[&str]) -> Running {
        Running::start_with(ecsync_with(moto), repo_url, extra)
    }

    fn start_with(cmd: Command, repo_url: &str, extra: &[&str]) -> Running {
        Running::start_at(cmd, repo_url, Some("main"), extra)
    }

    /// `git_ref: None` leaves `--ref` out: the daemon follows the remote's HEAD.
    fn start_at(
        mut cmd: Command,
        repo_url: &str,
        git_ref: Option<&str>,
        extra: &[&str],
    ) -> Running {
        let dirs = tempfile::tempdir().expect("tempdir");
        let secret = dirs.path().join("webhook-secret");
        // A trailing newline, as `echo secret > file` writes it.
        std::fs::write(&secret, format!("{SECRET}\n")).expect("write secret");
        let addr = format!("127.0.0.1:{}", free_port());
        cmd.args(["run", "--repo", repo_url, "--path", "services"])
            .args(git_ref.map(|r| ["--ref", r]).into_iter().flatten())
            .args(["--listen", &addr])
            .arg("--cache-dir")
            .arg(dirs.path().join("cache"))
            .arg("--webhook-secret-file")
            .arg(&secret)
            .args(extra);
        let daemon = spawn_listening(cmd, &addr);
        Running {
            daemon,
            addr,
            _dirs: dirs,
        }
    }

    fn status(&self) -> Value {
        status_json(&self.addr)
    }

    fn pass_id(&self) -> u64 {
        self.status()["lastPass"]["passId"].as_u64().unwrap_or(0)
    }

    fn metrics(&self) -> String {
        let (code, body) = http_get(&self.addr, "/metrics");
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Wait for a pass that started after `after` (a pass id) to finish.
    fn wait_pass_after(&self, after: u64, timeout: Duration) -> bool {
        wait_until(timeout, || self.pass_id() > after)
    }

    fn logs(&self) -> String {
        self.daemon.logs()
    }

    /// Status and logs, for failure messages.
    fn context(&self) -> String {
        let status = try_http_get(&self.addr, "/status")
            .map(|(_, b)| b)
            .unwrap_or_else(|e| format!("(no /status: {e})"));
        format!(
            "--- /status\n{status}\n--- daemon logs\n{}",
            self.daemon.logs()
        )
    }

    /// A GitHub push event for `git_ref`, signed with `secret`. Returns (status, body).
    fn github_push(&self, git_ref: &str, secret: &str) -> (u16, String) {
        let body = push_body(git_ref);
        let signature = github_signature(secret.as_bytes(), body.as_bytes());
        http_post(
            &self.addr,
            "/hooks/git",
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &signature),
            ],
            body,
        )
    }
}

fn push_body(git_ref: &str) -> String {
    serde_json::json!({
        "ref": git_ref,
        "before": "0000000000000000000000000000000000000000",
        "after": "1111111111111111111111111111111111111111",
        "repository": {"full_name": "acme/deploy"},
    })
    .to_string()
}

fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

// ---------------------------------------------------------------- metrics text

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.trim().parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let mut parsed = Vec::new();
            let mut rest = labels;
            while let Some((key, after)) = rest.split_once("=\"") {
                // Label values here come from fixed sets and manifest names: no escapes.
                let (val, after) = after.split_once('"')?;
                parsed.push((key.trim_start_matches(',').to_string(), val.to_string()));
                rest = after;
            }
            Some(Sample {
                name: name.to_string(),
                labels: parsed,
                value,
            })
        })
        .collect()
}

fn label<'a>(s: &'a Sample, key: &str) -> Option<&'a str> {
    s.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The value of the series `name{labels}` (labels a subset match), if exposed.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| label(s, k) == Some(*v)))
        .map(|s| s.value)
}

/// `SERVICE:Operation` of every mutating AWS call counted in `ecsync_aws_api_calls_total`.
fn mutating_calls(text: &str) -> Vec<String> {
    samples(text)
        .into_iter()
        .filter(|s| s.name == "ecsync_aws_api_calls_total" && s.value > 0.0)
        .filter_map(|s| {
            let op = label(&s, "operation")?.to_string();
            let read_only = ["Describe", "List", "Get"]
                .iter()
                .any(|p| op.starts_with(p));
            let service = label(&s, "service")?;
            (!read_only).then(|| format!("{service}:{op} = {}", s.value))
        })
        .collect()
}

fn mutating_total(text: &str) -> f64 {
    samples(text)
        .into_iter()
        .filter(|s| s.name == "ecsync_aws_api_calls_total")
        .filter(|s| {
            let op = label(s, "operation").unwrap_or_default();
            !["Describe", "List", "Get"]
                .iter()
                .any(|p| op.starts_with(p))
        })
        .map(|s| s.value)
        .sum()
}

// ---------------------------------------------------------------- moto state

/// (task definition ARN, desiredCount) of a service, if it exists.
async fn live_service(moto: &Moto, cluster: &str, service: &str) -> Option<(String, i32)> {
    let out = moto
        .ecs()
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .ok()?;
    let s = out
        .services()
        .iter()
        .find(|s| s.status() == Some("ACTIVE"))?;
    Some((s.task_definition()?.to_string(), s.desired_count()))
}

/// The first container's image of the service's current task definition.
async fn live_image(moto: &Moto, cluster: &str, service: &str) -> Option<String> {
    let (td, _) = live_service(moto, cluster, service).await?;
    let out = moto
        .ecs()
        .describe_task_definition()
        .task_definition(td)
        .send()
        .await
        .ok()?;
    out.task_definition()?
        .container_definitions()
        .first()?
        .image()
        .map(str::to_string)
}

async fn service_count(moto: &Moto, cluster: &str) -> usize {
    let mut n = 0;
    let mut token = None;
    loop {
        let out = moto
            .ecs()
            .list_services()
            .cluster(cluster)
            .set_next_token(token)
            .max_results(100)
            .send()
            .await
            .expect("ListServices");
        n += out.service_arns().len();
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return n;
        }
    }
}

// ---------------------------------------------------------------- tests

/// Issue 3: a signed push reaches moto within 2 s (and only the webhook can explain it, as
/// the poll interval is an hour); a forged signature gets 401 and changes nothing; a push
/// for another branch is ignored.
/// Issue 12 (2): without `--ref` the daemon follows the remote HEAD's branch, and a push
/// for any other branch starts nothing.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_ref_only_pushes_for_the_default_branch_start_a_pass() {
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (repo, net) = fleet(&moto).await;
    let d = Running::start_at(ecsync_with(&moto), &repo.url(), None, &["--interval", "1h"]);
    let quiet = wait_until(Duration::from_secs(30), || {
        let s = d.status();
        let services = s["services"].as_array().cloned().unwrap_or_default();
        services.len() == 2 && services.iter().all(|v| v["state"] == "Synced")
    });
    assert!(quiet, "services never Synced\n{}", d.context());
    let first = d.pass_id();

    repo.checkout_new_branch("feature");
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "alpha", &net, "nginx:9.99-feature", 2),
    );
    repo.commit("feature: not for production");
    repo.checkout("main");
    let (code, body) = d.github_push("refs/heads/feature", SECRET);
    assert_eq!(code, 202, "{body}");
    assert!(body.contains("ignored"), "{body}\n{}", d.context());
    assert!(
        !d.wait_pass_after(first, Duration::from_secs(2)),
        "a push for another branch started a pass\n{}",
        d.context()
    );

    let (code, body) = d.github_push("refs/heads/main", SECRET);
    assert_eq!(code, 202, "{body}");
    assert!(body.contains("accepted"), "{body}");
    assert!(
        d.wait_pass_after(first, Duration::from_secs(10)),
        "a push for the default branch started no pass\n{}",
        d.context()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_webhook_deploys_within_two_seconds_forged_and_other_branch_do_nothing() {
    // Rollouts complete, so after creating the services the daemon's 5 s "progressing"
    // requeue finds them Synced and goes quiet for the hour-long interval: from then on
    // only the webhook can start a pass.
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (repo, net) = fleet(&moto).await;
    let d = Running::start(&moto, &repo.url(), &["--interval", "1h"]);
    let quiet = wait_until(Duration::from_secs(30), || {
        let s = d.status();
        let services = s["services"].as_array().cloned().unwrap_or_default();
        services.len() == 2 && services.iter().all(|v| v["state"] == "Synced")
    });
    assert!(quiet, "services never Synced\n{}", d.context());
    assert_eq!(
        live_image(&moto, "alpha", "web").await.as_deref(),
        Some("nginx:1.27")
    );
    let first = d.pass_id();
    let initial = repo.head();

    // Commit on main, but announce it with a forged signature.
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "alpha", &net, "nginx:1.28", 2),
    );
    let wanted = repo.commit("web: nginx 1.28");
    let (code, body) = d.github_push("refs/heads/main", "not-the-secret");
    assert_eq!(code, 401, "{body}");
    let (code, body) = http_post(
        &d.addr,
        "/hooks/git",
        &[("X-GitHub-Event", "push"), ("Authorization", "Bearer nope")],
        push_body("refs/heads/main"),
    );
    assert_eq!(code, 401, "{body}");

    // A push on another branch, correctly signed, is ignored.
    repo.checkout_new_branch("feature");
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "alpha", &net, "nginx:9.99-feature", 2),
    );
    repo.commit("feature: not for production");
    repo.checkout("main");
    let (code, body) = d.github_push("refs/heads/feature", SECRET);
    assert_eq!(code, 202, "{body}");
    assert!(body.contains("ignored"), "{body}");

    // Neither started a pass nor touched moto (the poll interval is an hour away).
    assert!(
        !d.wait_pass_after(first, Duration::from_secs(2)),
        "a forged or foreign push started a pass\n{}",
        d.context()
    );
    assert_eq!(
        live_image(&moto, "alpha", "web").await.as_deref(),
        Some("nginx:1.27")
    );
    assert_eq!(d.status()["revision"], initial.as_str(), "{}", d.context());

    // The real push: from just before the POST to moto showing the new image.
    let sent = Instant::now();
    let (code, body) = d.github_push("refs/heads/main", SECRET);
    assert_eq!(code, 202, "{body}");
    assert!(body.contains("accepted"), "{body}");
    let deployed = wait_until_async(Duration::from_secs(2), async || {
        live_image(&moto, "alpha", "web").await.as_deref() == Some("nginx:1.28")
    })
    .await;
    let latency = sent.elapsed();
    assert!(
        deployed,
        "a signed push did not reach moto within 2 s\n{}",
        d.context()
    );
    eprintln!("push to moto: {latency:?}");
    assert!(
        d.wait_pass_after(first, Duration::from_secs(5)),
        "{}",
        d.context()
    );
    assert_eq!(d.status()["revision"], wanted.as_str(), "{}", d.context());

    let m = d.metrics();
    let hooks = |r| metric(&m, "ecsync_webhook_requests_total", &[("result", r)]);
    assert_eq!(hooks("unauthorized"), Some(2.0), "{m}");
    assert_eq!(hooks("ignored"), Some(1.0), "{m}");
    assert_eq!(hooks("accepted"), Some(1.0), "{m}");
    let logs = d.logs();
    assert!(logs.contains("webhook rejected"), "{logs}");
    assert!(!logs.contains(SECRET), "the secret leaked into the logs");
}

/// Issue 3: a hand change to a managed service is corrected within one interval.
#[tokio::test(flavor = "multi_thread")]
async fn auto_mode_corrects_a_hand_change_within_one_interval() {
    let moto = Moto::start();
    let (repo, _net) = fleet(&moto).await;
    let d = Running::start(&moto, &repo.url(), &["--interval", "2s"]);
    assert!(
        wait_until_async(Duration::from_secs(20), async || {
            live_service(&moto, "alpha", "web")
                .await
                .is_some_and(|(_, n)| n == 2)
        })
        .await,
        "{}",
        d.context()
    );

    moto.ecs()
        .update_service()
        .cluster("alpha")
        .service("web")
        .desired_count(7)
        .send()
        .await
        .expect("UpdateService by hand");
    let changed = Instant::now();
    // One interval is 2 s ± 10%; allow the pass itself on top.
    let corrected = wait_until_async(Duration::from_secs(4), async || {
        live_service(&moto, "alpha", "web")
            .await
            .is_some_and(|(_, n)| n == 2)
    })
    .await;
    assert!(
        corrected,
        "desiredCount 7 was not corrected back to 2 within one interval\n{}",
        d.context()
    );
    eprintln!("hand change corrected after {:?}", changed.elapsed());
    // moto changes before the daemon logs the call it answered.
    let logged = wait_until(Duration::from_secs(5), || {
        d.logs()
            .lines()
            .any(|l| l.contains("updated service") && l.contains("desiredCount"))
    });
    assert!(
        logged,
        "the correction must be logged with its reason:\n{}",
        d.logs()
    );
}

/// Issue 3: in report mode a hand change is only reported (status, metric, log line), with
/// zero mutating calls.
#[tokio::test(flavor = "multi_thread")]
async fn report_mode_reports_a_hand_change_and_never_mutates() {
    let moto = Moto::start();
    let (repo, _net) = fleet(&moto).await;
    // Create the services once, as an earlier auto-mode controller would have.
    let cache = tempfile::tempdir().unwrap();
    let out = ecsync_with(&moto)
        .args(["apply", "--repo", &repo.url(), "--path", "services"])
        .arg("--cache-dir")
        .arg(cache.path())
        .output()
        .expect("run ecsync apply");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let web_before = live_service(&moto, "alpha", "web").await.expect("web");
    let api_before = live_service(&moto, "alpha", "api").await.expect("api");

    moto.ecs()
        .update_service()
        .cluster("alpha")
        .service("web")
        .desired_count(7)
        .send()
        .await
        .expect("UpdateService by hand");

    let d = Running::start(
        &moto,
        &repo.url(),
        &["--interval", "1s", "--mode", "report"],
    );
    // Several passes, so "never corrects" is more than "had no time to".
    assert!(
        d.wait_pass_after(2, Duration::from_secs(15)),
        "{}",
        d.context()
    );

    let status = d.status();
    assert_eq!(status["mode"], "report", "{status}");
    let web = status["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["service"] == "web")
        .unwrap_or_else(|| panic!("web missing from /status: {status}"))
        .clone();
    assert_eq!(web["state"], "OutOfSync", "{status}");
    let drift = web["drift"].as_array().expect("drift");
    assert!(
        drift
            .iter()
            .any(|f| f["path"] == "desiredCount" && f["desired"] == 2 && f["live"] == 7),
        "{status}"
    );
    // What auto mode would do, as documented for `actions` in src/runtime/status.rs.
    assert!(
        web["actions"]
            .as_array()
            .is_some_and(|a| a.contains(&"update_service".into())),
        "{status}"
    );
    let api = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "api")
        .expect("api in /status");
    // moto never finishes a rollout without MOTO_ECS_SERVICE_RUNNING: api may be Progressing,
    // but it must not look drifted.
    assert_ne!(api["state"], "OutOfSync", "{status}");
    assert_eq!(api["drift"], serde_json::json!([]), "{status}");

    let m = d.metrics();
    let web_drift = metric(
        &m,
        "ecsync_service_drift",
        &[("cluster", "alpha"), ("service", "web")],
    );
    assert!(web_drift.is_some_and(|v| v > 0.0), "{m}");
    assert_eq!(
        metric(&m, "ecsync_services", &[("state", "OutOfSync")]),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        mutating_calls(&m),
        Vec::<String>::new(),
        "report mode made mutating calls:\n{m}"
    );
    assert!(
        metric(
            &m,
            "ecsync_aws_api_calls_total",
            &[("operation", "DescribeServices")]
        )
        .is_some_and(|v| v > 0.0),
        "the interceptor must have counted reads at least:\n{m}"
    );

    let logs = d.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("web") && l.contains("desiredCount")),
        "no log line names the drifted service and field:\n{logs}"
    );
    for mutation in [
        "registered task definition",
        "created service",
        "updated service",
        "tagged service",
    ] {
        assert!(
            !logs.contains(mutation),
            "report mode logged {mutation:?}:\n{logs}"
        );
    }

    // moto agrees: nothing changed.
    assert_eq!(
        live_service(&moto, "alpha", "web").await,
        Some((web_before.0.clone(), 7))
    );
    assert_eq!(live_service(&moto, "alpha", "api").await, Some(api_before));
}

/// Issue 3: the remote going away leaves services untouched and `/status` showing the git
/// error; when it comes back the next pass succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn remote_outage_touches_nothing_and_recovers() {
    let moto = Moto::start();
    let (repo, net) = fleet(&moto).await;
    let d = Running::start(&moto, &repo.url(), &["--interval", "1s"]);
    assert!(
        wait_until(Duration::from_secs(20), || d.pass_id() >= 1),
        "{}",
        d.context()
    );
    assert!(
        wait_until_async(Duration::from_secs(10), async || {
            live_service(&moto, "alpha", "web").await.is_some()
        })
        .await,
        "{}",
        d.context()
    );
    let web_before = live_service(&moto, "alpha", "web").await.unwrap();
    let api_before = live_service(&moto, "alpha", "api").await.unwrap();
    // Let the tag step and any follow-up settle: one quiet pass with no mutating call.
    let settled = wait_until(Duration::from_secs(10), || {
        let before = mutating_total(&d.metrics());
        let id = d.pass_id();
        d.wait_pass_after(id, Duration::from_secs(5)) && mutating_total(&d.metrics()) == before
    });
    assert!(settled, "never settled\n{}", d.context());
    let mutating_before = mutating_total(&d.metrics());

    // The remote disappears.
    let original = repo.path().to_path_buf();
    let moved = original.with_extension("away");
    std::fs::rename(&original, &moved).expect("move the repository away");
    let restore = Restore {
        from: moved.clone(),
        to: original.clone(),
    };

    let errored = wait_until(Duration::from_secs(10), || {
        d.status()["gitError"].as_str().is_some()
    });
    assert!(
        errored,
        "no gitError while the remote is gone\n{}",
        d.context()
    );
    let status = d.status();
    let git_error = status["gitError"].as_str().unwrap();
    assert!(
        git_error.contains(original.to_str().unwrap()),
        "the error should name the repository: {git_error}"
    );
    // Two more passes during the outage.
    let id = d.pass_id();
    assert!(
        d.wait_pass_after(id + 1, Duration::from_secs(10)),
        "{}",
        d.context()
    );
    assert!(d.status()["gitError"].as_str().is_some(), "{}", d.context());
    let m = d.metrics();
    assert!(
        metric(&m, "ecsync_git_fetch_total", &[("result", "error")]).is_some_and(|v| v >= 2.0),
        "{m}"
    );
    assert_eq!(mutating_total(&m), mutating_before, "{m}");
    assert_eq!(
        live_service(&moto, "alpha", "web").await,
        Some(web_before.clone())
    );
    assert_eq!(
        live_service(&moto, "alpha", "api").await,
        Some(api_before.clone())
    );
    assert_eq!(service_count(&moto, "alpha").await, 2);

    // It comes back, with a new commit.
    drop(restore);
    repo.write(
        "services/api.yaml",
        &service_yaml("api", "alpha", &net, "api:2", 1),
    );
    let head = repo.commit("api 2");
    let recovered = wait_until_async(Duration::from_secs(10), async || {
        live_image(&moto, "alpha", "api").await.as_deref() == Some("api:2")
    })
    .await;
    assert!(recovered, "the new commit was not applied\n{}", d.context());
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s = d.status();
            s["gitError"].is_null() && s["revision"] == head.as_str()
        }),
        "gitError not cleared\n{}",
        d.context()
    );
    assert_eq!(
        live_service(&moto, "alpha", "web").await,
        Some(web_before),
        "web was not part of the change"
    );
}

/// A service removed from git (prune off) is an orphan ecsync still owns: `/status` shows it
/// out of sync with the hint to prune, its drift series says so, and AWS keeps it untouched.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_dropped_from_git_is_reported_as_an_orphan() {
    let moto = Moto::start();
    let (repo, _net) = fleet(&moto).await;
    let d = Running::start(&moto, &repo.url(), &["--interval", "1h"]);
    assert!(
        wait_until(Duration::from_secs(20), || d.pass_id() >= 1),
        "{}",
        d.context()
    );
    let drift_series = |text: &str, service: &str| {
        metric(
            text,
            "ecsync_service_drift",
            &[("cluster", "alpha"), ("service", service)],
        )
    };
    let m = d.metrics();
    assert!(drift_series(&m, "api").is_some(), "{m}");
    let api_before = live_service(&moto, "alpha", "api")
        .await
        .expect("api created");

    repo.remove("services/api.yaml");
    repo.commit("api is no longer managed here");
    let before = d.pass_id();
    let (code, body) = d.github_push("refs/heads/main", SECRET);
    assert_eq!(code, 202, "{body}");
    assert!(
        d.wait_pass_after(before, Duration::from_secs(10)),
        "{}",
        d.context()
    );

    let status = d.status();
    let listed: Vec<&str> = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["service"].as_str())
        .collect();
    assert_eq!(listed, ["api", "web"], "{status}");
    let api = &status["services"][0];
    assert_eq!(api["state"], "OutOfSync", "{status}");
    assert!(
        api["message"]
            .as_str()
            .unwrap_or_default()
            .contains("--prune"),
        "{status}"
    );
    let m = d.metrics();
    assert_eq!(drift_series(&m, "web"), Some(0.0), "{m}");
    assert_eq!(drift_series(&m, "api"), Some(1.0), "{m}");
    assert_eq!(
        live_service(&moto, "alpha", "api").await,
        Some(api_before),
        "without --prune the service stays as it was"
    );
}

/// An empty webhook secret would make every delivery fail with 401 (or, worse, accept an
/// empty bearer token): `ecsync run` refuses to start with one.
#[test]
fn an_empty_webhook_secret_is_a_startup_error() {
    let repo = GitRepo::new();
    repo.write("services/README.md", "-");
    repo.commit("x");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, " \n").unwrap();
    let mut cmd = common::ecsync();
    cmd.args(["run", "--repo", &repo.url(), "--interval", "1h"])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--webhook-secret-file")
        .arg(&secret)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        // Nothing listens there: no AWS call can leave the machine.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("NO_COLOR", "1");
    let mut d = Daemon::spawn(cmd);
    let exit = d.wait_timeout(Duration::from_secs(10));
    let logs = d.logs();
    let exit = exit.unwrap_or_else(|| panic!("still running with an empty secret:\n{logs}"));
    assert_eq!(exit.code(), Some(1), "{logs}");
    assert!(
        logs.contains("webhook secret") && logs.contains("empty"),
        "{logs}"
    );
}

/// Moves a directory back on drop, so a failing assertion does not leave it behind.
struct Restore {
    from: PathBuf,
    to: PathBuf,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if self.from.exists() {
            let _ = std::fs::rename(&self.from, &self.to);
        }
    }
}

use ecsync::runtime::metrics::DESIGN_METRIC_NAMES as DESIGN_METRICS;

fn promtool_check(text: &str) -> Result<(), String> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool not found: install Debian's `prometheus` package \
             (apt-get install prometheus) or put Prometheus' promtool on PATH"
        ),
        Err(e) => panic!("could not run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    if out.status.success() && out.stdout.is_empty() && out.stderr.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Issue 3: `/metrics` passes `promtool check metrics` after a pass and carries §7's names.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_and_carry_every_design_name() {
    let moto = Moto::start();
    let (repo, net) = fleet(&moto).await;
    // A third service migrating off a legacy fleet, so the migration and EC2
    // families have samples too.
    let legacy = moto.create_target_group("shop-ec2", "instance", 80).await;
    moto.create_target_group("shop-ecs", "ip", 8080).await;
    moto.create_alb_with_listener("shop", &net.subnets, &net.security_group, &legacy)
        .await;
    let fleet_ids = moto.run_instances(2, &[("app", "shop")]).await;
    moto.register_instances(&legacy, &fleet_ids).await;
    repo.write(
        "services/shop.yaml",
        &format!(
            "{}  loadBalancers: [{{targetGroup: shop-ecs, containerName: app, containerPort: 8080}}]
  migration:
    listener: {{loadBalancer: shop, port: 80}}
    from: {{targetGroup: shop-ec2, instances: {{tags: {{app: shop}}}}}}
    steps: [50, 100]
    stepInterval: 1h
    decommission: {{action: stop, after: 1h}}
",
            service_yaml("shop", "alpha", &net, "shop:1", 1)
        ),
    );
    repo.commit("a migrating service");
    let d = Running::start(&moto, &repo.url(), &["--interval", "1h"]);
    assert!(
        wait_until(Duration::from_secs(20), || d.pass_id() >= 1),
        "{}",
        d.context()
    );
    // One webhook, so the webhook counter has traffic too; and a second pass.
    let (code, body) = d.github_push("refs/heads/main", SECRET);
    assert_eq!(code, 202, "{body}");
    assert!(
        d.wait_pass_after(1, Duration::from_secs(10)),
        "{}",
        d.context()
    );

    let text = d.metrics();
    if let Err(e) = promtool_check(&text) {
        panic!("{e}\n--- /metrics\n{text}");
    }
    // The guard can fail: a counter without `_total` is rejected.
    assert!(promtool_check("# TYPE broken counter\nbroken 1\n").is_err());

    let sampled: BTreeSet<String> = samples(&text)
        .into_iter()
        .map(|s| {
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = s.name.strip_suffix(suffix)
                    && text.contains(&format!("# TYPE {base} histogram"))
                {
                    return base.to_string();
                }
            }
            s.name
        })
        .collect();
    let missing: Vec<&str> = DESIGN_METRICS
        .iter()
        .copied()
        .filter(|name| !sampled.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "no samples after a pass for {missing:?}:\n{text}"
    );
    for name in DESIGN_METRICS {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} has samples but no TYPE line:\n{text}"
        );
    }

    let head = repo.head();
    assert_eq!(
        metric(&text, "ecsync_git_revision_info", &[("revision", &head)]),
        Some(1.0),
        "{text}"
    );
    // Two passes at least (a 5 s "progressing" requeue may have added one).
    assert!(
        ["full", "targeted"]
            .iter()
            .filter_map(|scope| metric(
                &text,
                "ecsync_reconcile_total",
                &[("result", "ok"), ("scope", scope)]
            ))
            .sum::<f64>()
            >= 2.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "ecsync_actions_total",
            &[("action", "create_service"), ("result", "ok")]
        )
        .is_some_and(|v| v >= 2.0),
        "{text}"
    );
    let total: f64 = [
        "Synced",
        "OutOfSync",
        "Progressing",
        "Degraded",
        "Error",
        "Held",
    ]
    .iter()
    .map(|state| metric(&text, "ecsync_services", &[("state", state)]).unwrap_or_default())
    .sum();
    assert_eq!(total, 3.0, "every service in exactly one state:\n{text}");
}

/// A TCP forwarder that holds every chunk the client sends for `delay` before passing it on:
/// makes each AWS call slow, so a pass over many services takes long on any machine.
fn slow_proxy(target: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr").to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || pump(client, server, Some(delay)));
            std::thread::spawn(move || pump(s2, c2, None));
        }
    });
    addr
}

fn pump(mut from: TcpStream, mut to: TcpStream, delay: Option<Duration>) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(d) = delay {
                    std::thread::sleep(d);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Issue 3: SIGTERM during a pass exits 0 within 10 s.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_long_pass_exits_zero_within_ten_seconds() {
    const SERVICES: usize = 160;
    let moto = Moto::start();
    moto.create_cluster("big").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    for i in 0..SERVICES {
        repo.write(
            &format!("services/svc-{i:03}.yaml"),
            &service_yaml(&format!("svc-{i:03}"), "big", &net, "app:1", 1),
        );
    }
    repo.commit("many services");

    // 150 ms per AWS call, 4 services at a time, 2-3 calls per new service: the first pass
    // takes well over 10 s, so only a daemon that stops mid-pass can pass this test.
    let proxy = slow_proxy(moto.addr(), Duration::from_millis(150));
    let mut cmd = ecsync_with(&moto);
    cmd.env("AWS_ENDPOINT_URL", format!("http://{proxy}"));
    let mut d = Running::start_with(cmd, &repo.url(), &["--interval", "1h"]);

    let mid_pass = wait_until(Duration::from_secs(30), || {
        d.logs().matches("created service").count() >= 4
    });
    assert!(mid_pass, "the pass never got going\n{}", d.context());
    assert!(
        !d.logs().contains("pass finished"),
        "the pass was not long enough to signal it mid-way\n{}",
        d.context()
    );
    let signalled = Instant::now();
    d.daemon.signal("TERM");
    let exit = d.daemon.wait_timeout(Duration::from_secs(20));
    let took = signalled.elapsed();
    let logs = d.logs();
    let exit = exit.unwrap_or_else(|| panic!("still running 20 s after SIGTERM\n{logs}"));
    assert_eq!(exit.code(), Some(0), "{logs}");
    assert!(
        took < Duration::from_secs(10),
        "exit took {took:?} after SIGTERM\n{logs}"
    );
    eprintln!("SIGTERM to exit: {took:?}");
    let created = service_count(&moto, "big").await;
    assert!(
        created < SERVICES,
        "all {created} services were created: the pass was not interrupted"
    );
}

/// A push that arrives while a pass is running is not lost: another pass follows at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_push_during_a_pass_starts_another_pass_right_after() {
    const SERVICES: usize = 30;
    let moto = Moto::start();
    moto.create_cluster("big").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    let name = |i: usize| format!("svc-{i:03}");
    for i in 0..SERVICES {
        repo.write(
            &format!("services/{}.yaml", name(i)),
            &service_yaml(&name(i), "big", &net, "app:1", 1),
        );
    }
    repo.commit("many services");
    let proxy = slow_proxy(moto.addr(), Duration::from_millis(100));
    let mut cmd = ecsync_with(&moto);
    cmd.env("AWS_ENDPOINT_URL", format!("http://{proxy}"));
    let d = Running::start_with(cmd, &repo.url(), &["--interval", "1h"]);
    assert!(
        wait_until(Duration::from_secs(30), || d
            .logs()
            .contains("created service")),
        "{}",
        d.context()
    );

    let last = name(SERVICES - 1);
    repo.write(
        &format!("services/{last}.yaml"),
        &service_yaml(&last, "big", &net, "app:2", 1),
    );
    let head = repo.commit("last service: app 2");
    let (code, body) = d.github_push("refs/heads/main", SECRET);
    assert_eq!(code, 202, "{body}");
    assert!(
        !d.logs().contains("pass finished"),
        "the push did not land during the first pass\n{}",
        d.context()
    );
    let applied = wait_until_async(Duration::from_secs(30), async || {
        live_image(&moto, "big", &last).await.as_deref() == Some("app:2")
    })
    .await;
    assert!(
        applied,
        "the push made during a pass was lost\n{}",
        d.context()
    );
    // The status is written when the pass ends, a moment after moto shows the change.
    assert!(
        wait_until(Duration::from_secs(10), || d.status()["revision"]
            == head.as_str()),
        "{}",
        d.context()
    );
}

/// SIGTERM while a git fetch hangs (a remote that accepts and never answers) exits 0 within
/// 10 s, and leaves no git process behind holding the connection.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_hanging_git_fetch_exits_zero_and_leaves_no_git_behind() {
    let moto = Moto::start();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let remote = format!("http://{}/acme/deploy.git", listener.local_addr().unwrap());
    let (accepted_tx, accepted_rx) = std::sync::mpsc::channel::<TcpStream>();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            // Hold it open and say nothing.
            if accepted_tx.send(conn).is_err() {
                break;
            }
        }
    });
    let mut d = Running::start(&moto, &remote, &["--interval", "1h"]);
    let mut conn = accepted_rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("git never connected\n{}", d.context()));
    assert!(d.daemon.try_wait().is_none(), "{}", d.context());

    let signalled = Instant::now();
    d.daemon.signal("TERM");
    let exit = d.daemon.wait_timeout(Duration::from_secs(20));
    let took = signalled.elapsed();
    let logs = d.logs();
    let exit = exit.unwrap_or_else(|| panic!("still running 20 s after SIGTERM\n{logs}"));
    assert_eq!(exit.code(), Some(0), "{logs}");
    assert!(took < Duration::from_secs(10), "took {took:?}\n{logs}");

    // Whoever held the connection (git-remote-http) is gone: it reads as closed.
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let closed = conn.read_to_end(&mut buf);
    assert!(
        closed.is_ok(),
        "the git connection is still open after ecsync exited: {closed:?}"
    );
}

/// Issue 3: `/readyz` is 503 until the first full pass, then 200; `/healthz` is 200 throughout.
#[tokio::test(flavor = "multi_thread")]
async fn readyz_turns_ready_after_the_first_pass_healthz_always_ok() {
    let moto = Moto::start();
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    // A repository that declares nothing yet: no pass can run, which is not "ready".
    let repo = GitRepo::new();
    repo.write("services/README.md", "manifests go here");
    repo.commit("empty");
    let d = Running::start(&moto, &repo.url(), &["--interval", "1h"]);

    assert!(
        wait_until(Duration::from_secs(10), || d.status()["gitError"]
            .as_str()
            .is_some()),
        "{}",
        d.context()
    );
    assert_eq!(
        http_get(&d.addr, "/readyz").0,
        503,
        "ready without a pass\n{}",
        d.context()
    );
    assert_eq!(http_get(&d.addr, "/healthz").0, 200);
    assert!(d.status()["lastPass"].is_null(), "{}", d.context());

    repo.write(
        "services/web.yaml",
        &service_yaml("web", "alpha", &net, "nginx:1.27", 1),
    );
    repo.commit("web");
    let (code, body) = d.github_push("refs/heads/main", SECRET);
    assert_eq!(code, 202, "{body}");
    assert!(
        wait_until(Duration::from_secs(10), || http_get(&d.addr, "/readyz").0
            == 200),
        "never ready\n{}",
        d.context()
    );
    assert_eq!(d.status()["lastPass"]["result"], "ok", "{}", d.context());
    assert_eq!(http_get(&d.addr, "/healthz").0, 200);
    assert!(live_service(&moto, "alpha", "web").await.is_some());
}
