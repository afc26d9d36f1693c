//! End to end: `ecsync run` against moto sends its events (DESIGN §11) to local receivers, a
//! signed generic webhook and a Slack incoming webhook, once each; a receiver that never answers
//! does not slow the passes down (issue 16, notifications).

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use common::{
    Daemon, GitRepo, Moto, Network, ecsync_with, free_port, http_get, spawn_listening,
    try_http_get, wait_until,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "notify-e2e-secret";
/// The part of a Slack webhook URL that is its credential.
const SLACK_TOKEN: &str = "XXSLACKTOKEN42";
/// An environment value: it must never appear in a notification.
const ENV_SECRET: &str = "TOPSECRET-42";

// ---------------------------------------------------------------- receivers

#[derive(Clone)]
struct Got {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// An HTTP receiver on a free loopback port that answers 200 and keeps what it got.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    async fn start(path: &str) -> (Receiver, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route(path, axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a receiver");
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// `(event, name, revision)` of every webhook body received.
    fn events(&self) -> Vec<(String, String, String)> {
        self.all()
            .iter()
            .map(|g| {
                let v = g.json();
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                (s("event"), s("name"), s("revision"))
            })
            .collect()
    }

    fn find(&self, event: &str, revision: &str) -> Option<Value> {
        self.all()
            .iter()
            .map(Got::json)
            .find(|v| v["event"] == event && v["revision"] == revision)
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> &'static str {
    r.got.lock().unwrap().push(Got {
        headers,
        body: body.to_vec(),
    });
    "ok"
}

/// Accepts connections, reads the request and never answers. Returns its URL and how many
/// connections it took.
fn hanging_receiver() -> (String, Arc<Mutex<usize>>) {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let taken = Arc::new(Mutex::new(0));
    let count = taken.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            *count.lock().unwrap() += 1;
            let mut s = stream;
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            // Kept open and silent until the test ends.
            held.push(s);
        }
    });
    (url, taken)
}

// ---------------------------------------------------------------- the daemon

fn service_yaml(net: &Network, image: &str, mode: &str) -> String {
    common::service_yaml("web", "alpha", net, image, mode, 2)
}

struct Running {
    daemon: Daemon,
    addr: String,
    dirs: tempfile::TempDir,
}

impl Running {
    fn start(moto: &Moto, repo: &GitRepo, extra: &[&str]) -> Running {
        let dirs = tempfile::tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = ecsync_with(moto);
        cmd.args(["run", "--repo", &repo.url(), "--path", "services", "--ref"])
            .arg("main")
            .args(["--listen", &addr])
            .arg("--cache-dir")
            .arg(dirs.path().join("cache"))
            .args(extra);
        let daemon = spawn_listening(cmd, &addr);
        Running { daemon, addr, dirs }
    }

    fn status(&self) -> Value {
        let (code, body) = http_get(&self.addr, "/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("/status is JSON")
    }

    fn pass_id(&self) -> u64 {
        self.status()["lastPass"]["passId"].as_u64().unwrap_or(0)
    }

    fn metric(&self, sink: &str, result: &str) -> f64 {
        let (_, text) = http_get(&self.addr, "/metrics");
        let series = format!("ecsync_notifications_total{{sink=\"{sink}\",result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    fn context(&self) -> String {
        let status = try_http_get(&self.addr, "/status")
            .map(|(_, b)| b)
            .unwrap_or_else(|e| format!("(no /status: {e})"));
        format!("--- /status\n{status}\n--- logs\n{}", self.daemon.logs())
    }
}

/// A file in `dir` holding `contents` followed by a newline, as `echo x > file` writes it.
fn file_with(dir: &std::path::Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{contents}\n")).expect("write");
    path.to_string_lossy().into_owned()
}

fn signature_ok(g: &Got) -> bool {
    let Some(sig) = g
        .headers
        .get("x-ecsync-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|v| hex::decode(v).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&g.body);
    mac.verify_slice(&sig).is_ok()
}

// ---------------------------------------------------------------- tests

/// A new service, a push and a hand edit, each seen as drift and then as a finished rollout, on
/// a signed webhook and on Slack, every event once.
#[tokio::test(flavor = "multi_thread")]
async fn drift_and_rollouts_reach_a_signed_webhook_and_slack_once_each() {
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &service_yaml(&net, "nginx:1.27", "daemon"),
    );
    repo.commit("web");
    let first = repo.head();

    let (hook, hook_url) = Receiver::start("/hook").await;
    let (slack, slack_base) = Receiver::start(&format!("/services/T0/B0/{SLACK_TOKEN}")).await;
    let files = tempfile::tempdir().unwrap();
    let slack_file = file_with(files.path(), "slack-url", &slack_base);
    let secret_file = file_with(files.path(), "secret", SECRET);
    let d = Running::start(
        &moto,
        &repo,
        &[
            "--interval",
            "2s",
            "--notify-webhook-url",
            &hook_url,
            "--notify-slack-url-file",
            &slack_file,
            "--notify-secret-file",
            &secret_file,
        ],
    );

    // Created (a missing service is drift), then rolled out.
    let synced = |rev: &str| hook.find("service.synced", rev).is_some();
    assert!(
        wait_until(Duration::from_secs(40), || synced(&first)),
        "no service.synced for {first}: got {:?}\n{}",
        hook.events(),
        d.context()
    );
    let created = hook.find("drift.detected", &first).expect("drift.detected");
    assert_eq!(created["details"]["missing"], true, "{created}");
    assert_eq!(created["kind"], "Service");
    assert_eq!(created["cluster"], "alpha");
    assert_eq!(created["controllerId"], "ecsync");

    // A push: the image and an environment value change.
    repo.write(
        "services/web.yaml",
        &service_yaml(&net, "nginx:1.28", ENV_SECRET),
    );
    repo.commit("web: nginx 1.28");
    let second = repo.head();
    assert!(
        wait_until(Duration::from_secs(40), || synced(&second)),
        "no service.synced for {second}: got {:?}\n{}",
        hook.events(),
        d.context()
    );
    let pushed = hook
        .find("drift.detected", &second)
        .expect("drift.detected");
    let fields: Vec<&str> = pushed["details"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        fields.iter().any(|f| f.ends_with(".image")) && fields.iter().any(|f| f.contains("MODE")),
        "{pushed}"
    );
    assert_eq!(pushed["details"]["corrected"], true, "{pushed}");

    // A hand edit on the same revision is new drift, corrected in auto mode.
    moto.ecs()
        .update_service()
        .cluster("alpha")
        .service("web")
        .desired_count(5)
        .send()
        .await
        .expect("UpdateService by hand");
    let hand_edit = || {
        hook.all().iter().map(Got::json).any(|v| {
            v["event"] == "drift.detected"
                && v["revision"] == second.as_str()
                && v["details"]["fields"] == serde_json::json!(["desiredCount"])
        })
    };
    assert!(
        wait_until(Duration::from_secs(20), hand_edit),
        "the hand edit was not notified: {:?}\n{}",
        hook.events(),
        d.context()
    );

    // Each of the three drifts was corrected and rolled out; some quiet passes later nothing
    // was sent twice.
    let syncs = || {
        hook.events()
            .iter()
            .filter(|e| e.0 == "service.synced")
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(20), || syncs() == 3),
        "{:?}\n{}",
        hook.events(),
        d.context()
    );
    let settled = d.pass_id();
    assert!(
        wait_until(Duration::from_secs(20), || d.pass_id() >= settled + 3),
        "{}",
        d.context()
    );
    let events = hook.events();
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(syncs(), 3, "{events:?}");
    let drifts: BTreeSet<String> = hook
        .all()
        .iter()
        .map(Got::json)
        .filter(|v| v["event"] == "drift.detected")
        .map(|v| format!("{} {}", v["revision"], v["details"]["fields"]))
        .collect();
    assert_eq!(drifts.len(), 3, "{events:?}");

    // Every body signed; no value from the task definition in any of them.
    for g in hook.all() {
        assert!(signature_ok(&g), "bad signature on {}", g.json());
        let body = String::from_utf8_lossy(&g.body);
        assert!(!body.contains(ENV_SECRET), "{body}");
    }

    // Slack got the same events, as messages, unsigned.
    assert!(
        wait_until(Duration::from_secs(10), || slack.all().len()
            == events.len()),
        "slack got {} messages, the webhook {}",
        slack.all().len(),
        events.len()
    );
    for g in slack.all() {
        let m = g.json();
        let text = m["text"].as_str().expect("text");
        assert!(
            ["drift.detected alpha/web", "service.synced alpha/web"]
                .iter()
                .any(|e| text.contains(e)),
            "{m}"
        );
        assert_eq!(m["attachments"][0]["blocks"][0]["type"], "section", "{m}");
        assert!(g.headers.get("x-ecsync-signature-256").is_none());
        assert!(!m.to_string().contains(ENV_SECRET), "{m}");
    }

    assert_eq!(d.metric("webhook", "sent"), events.len() as f64);
    assert_eq!(d.metric("slack", "sent"), slack.all().len() as f64);
    assert_eq!(d.metric("webhook", "dropped"), 0.0);
    // The Slack URL stays out of the logs.
    assert!(
        !d.daemon.logs().contains(SLACK_TOKEN),
        "{}",
        d.daemon.logs()
    );
    drop(d.dirs);
}

/// Report mode: drift that lasts is notified once, however many passes see it; a receiver that
/// takes the connection and never answers costs the passes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_receiver_does_not_slow_the_passes_and_lasting_drift_is_sent_once() {
    let moto = Moto::start();
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &service_yaml(&net, "nginx:1.27", "daemon"),
    );
    repo.commit("web");

    let (hanging, taken) = hanging_receiver();
    let (hook, hook_url) = Receiver::start("/hook").await;
    let d = Running::start(
        &moto,
        &repo,
        &[
            "--mode",
            "report",
            "--interval",
            "1s",
            "--notify-webhook-url",
            &format!("{hanging},{hook_url}"),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(20), || *taken.lock().unwrap() >= 1),
        "the hanging receiver was never called\n{}",
        d.context()
    );
    // The hanging receiver holds its request (up to 10 s per attempt); passes go on every ~1 s.
    let from = d.pass_id();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    let passes = d.pass_id() - from;
    let took = started.elapsed();
    eprintln!("{passes} passes in {took:?} while a receiver hung");
    assert!(
        passes >= 5,
        "only {passes} passes in {took:?} while a receiver hung\n{}",
        d.context()
    );
    let last = d.status()["lastPass"]["durationMs"].as_u64().unwrap_or(0);
    assert!(last < 2_000, "a pass took {last} ms\n{}", d.context());

    // Report mode: the missing service is drift on every pass, announced once.
    let events = hook.events();
    assert_eq!(
        events,
        [("drift.detected".to_string(), "web".to_string(), repo.head())],
        "\n{}",
        d.context()
    );
    let v = hook.all()[0].json();
    assert_eq!(v["details"]["corrected"], false, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("report mode"),
        "{v}"
    );
    assert!(
        hook.all()[0]
            .headers
            .get("x-ecsync-signature-256")
            .is_none(),
        "no secret, no signature"
    );
    assert_eq!(d.metric("webhook", "sent"), 1.0);
}

/// Flags, environment, and what the error must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Settings that cannot work stop `ecsync run` at start-up, saying which flag, without
/// printing the URL (it may carry a token); the environment variable takes a comma list.
#[test]
fn bad_notification_settings_stop_the_start_without_showing_the_url() {
    let repo = GitRepo::new();
    repo.write("services/README.md", "nothing yet\n");
    repo.commit("empty");
    let files = tempfile::tempdir().unwrap();
    let empty = file_with(files.path(), "empty", "   ");
    let schemeless = file_with(
        files.path(),
        "slack",
        "hooks.slack.com/services/T/B/hunter2",
    );
    let cases: [Case; 4] = [
        (&["--notify-slack-url-file", &empty], &[], "is empty"),
        (
            &["--notify-slack-url-file", &schemeless],
            &[],
            "--notify-slack-url-file: the URL must start with http:// or https://",
        ),
        (
            &["--notify-webhook-url", "ftp://example.com/x?token=hunter2"],
            &[],
            "--notify-webhook-url #1: the URL must start with http:// or https://",
        ),
        (
            &[],
            &[(
                "ECSYNC_NOTIFY_WEBHOOK_URL",
                "http://127.0.0.1:9/ok,gopher://x/hunter2",
            )],
            "--notify-webhook-url #2: the URL must start with http:// or https://",
        ),
    ];
    for (args, env, want) in cases {
        let mut cmd = common::ecsync();
        cmd.args(["run", "--repo", &repo.url(), "--path", "services"])
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--cache-dir")
            .arg(files.path().join("cache"))
            .args(args)
            .envs(env.iter().copied())
            .env("AWS_REGION", "us-east-1")
            .env("NO_COLOR", "1");
        let mut d = Daemon::spawn(cmd);
        let status = d.wait_timeout(Duration::from_secs(20));
        let logs = d.logs();
        let Some(status) = status else {
            panic!("{args:?} {env:?}: still running\n{logs}");
        };
        assert!(!status.success(), "{args:?} {env:?}: {status}\n{logs}");
        assert!(
            logs.contains(want),
            "{args:?} {env:?}: want {want:?} in\n{logs}"
        );
        assert!(
            !logs.contains("hunter2"),
            "{args:?}: the URL leaked\n{logs}"
        );
    }
}
