//! Delivery against local receivers on 127.0.0.1: what arrives, its signature,
//! retries, receivers that fail, hang or are not there, and Slack's shape.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::*;
use crate::core::diff::FieldDiff;
use crate::core::events::{EventKind, ServiceFacts};
use crate::core::model::ServiceKey;
use crate::core::plan::ActionKind;
use crate::core::state::SyncState;

const SECRET: &[u8] = b"notify-secret";
const REV: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    /// Never answers.
    Hang,
}

struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Replies in order; 200 once they run out.
    replies: Arc<Mutex<VecDeque<Reply>>>,
}

impl Receiver {
    /// Listens on a free loopback port; returns its URL.
    async fn start(replies: &[Reply]) -> (Receiver, String) {
        let r = Receiver {
            replies: Arc::new(Mutex::new(replies.iter().copied().collect())),
            ..Default::default()
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }
    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    r.got.lock().unwrap().push(Received {
        headers,
        body: body.to_vec(),
    });
    let reply = r.replies.lock().unwrap().pop_front();
    match reply {
        Some(Reply::Hang) => std::future::pending().await,
        Some(Reply::Status(s)) => StatusCode::from_u16(s).unwrap(),
        None => StatusCode::OK,
    }
}

fn fast() -> Delivery {
    Delivery {
        queue: 16,
        timeout: Duration::from_millis(500),
        retries: 2,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

fn notifier(cfg: NotifyConfig) -> (Notifier, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let n = Notifier::start(cfg, "ecsync", Mode::Auto, metrics.clone())
        .expect("valid config")
        .expect("a sink");
    (n, metrics)
}

fn webhook(url: &str, secret: Option<&[u8]>, delivery: Delivery) -> NotifyConfig {
    NotifyConfig {
        webhooks: vec![url.to_string()],
        secret: secret.map(<[u8]>::to_vec),
        delivery,
        ..Default::default()
    }
}

struct Drifted {
    key: ServiceKey,
    drift: Vec<FieldDiff>,
    done: Vec<ActionKind>,
}

/// A pass that found (and, in auto mode, corrected) drift on `prod/<name>`.
fn drifted(name: &str, live_image: &str) -> Drifted {
    Drifted {
        key: ServiceKey {
            cluster: "prod".into(),
            name: name.into(),
        },
        drift: vec![FieldDiff {
            path: "taskDefinition.containerDefinitions[web].image".into(),
            desired: json!("nginx:1.27"),
            live: json!(live_image),
        }],
        done: vec![
            ActionKind::RegisterTaskDefinition,
            ActionKind::UpdateService,
        ],
    }
}

fn facts(services: &[Drifted]) -> PassFacts<'_> {
    PassFacts {
        controller_id: "ecsync",
        revision: REV,
        mode: Mode::Auto,
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        error: None,
        git_error: None,
        services: services
            .iter()
            .map(|d| ServiceFacts {
                key: &d.key,
                state: SyncState::Progressing,
                exists: true,
                drift: &d.drift,
                replace: &[],
                held: false,
                report_only: false,
                error: None,
                done: &d.done,
                rollout: None,
                migration: None,
                hook: None,
            })
            .collect(),
        instances: Vec::new(),
        cleanups: Vec::new(),
        groups: Vec::new(),
    }
}

/// `ecsync_notifications_total{sink,result}` as exposed.
fn counted(m: &Metrics, sink: &str, result: &str) -> u64 {
    let text = m.encode().unwrap();
    let series = format!("ecsync_notifications_total{{sink=\"{sink}\",result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_webhook_receives_the_event_signed() {
    let (rx, url) = Receiver::start(&[]).await;
    let (mut n, metrics) = notifier(webhook(&url, Some(SECRET), fast()));
    let services = [drifted("web", "nginx:1.0")];
    assert_eq!(n.publish(&facts(&services)), 1);
    eventually("one delivery", || counted(&metrics, "webhook", "sent") == 1).await;
    let got = rx.take();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    let body = r.json();
    assert_eq!(body["event"], "drift.detected");
    assert_eq!(body["revision"], REV);
    assert_eq!(body["cluster"], "prod");
    assert_eq!(body["name"], "web");
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = [
        "event",
        "time",
        "controllerId",
        "revision",
        "kind",
        "cluster",
        "name",
        "state",
        "message",
        "details",
    ];
    want.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-ecsync-event"), Some("drift.detected"));

    // The receiver's side: the same check ecsync runs on GitHub's pushes.
    let sig = r.header(SIGNATURE_HEADER).expect("signed").to_string();
    let mut headers = HeaderMap::new();
    headers.insert("x-hub-signature-256", sig.parse().unwrap());
    assert!(crate::runtime::webhook::verify(&headers, &r.body, SECRET).is_ok());
    assert!(crate::runtime::webhook::verify(&headers, &r.body, b"another secret").is_err());
    let mut tampered = r.body.clone();
    tampered.push(b' ');
    assert!(crate::runtime::webhook::verify(&headers, &tampered, SECRET).is_err());
    assert_eq!(sign(SECRET, &r.body), Some(sig));
}

#[tokio::test]
async fn without_a_secret_nothing_is_signed() {
    let (rx, url) = Receiver::start(&[]).await;
    let (mut n, metrics) = notifier(webhook(&url, None, fast()));
    n.publish(&facts(&[drifted("web", "nginx:1.0")]));
    eventually("one delivery", || counted(&metrics, "webhook", "sent") == 1).await;
    assert_eq!(rx.take()[0].header(SIGNATURE_HEADER), None);
}

#[tokio::test]
async fn the_same_event_is_sent_once_a_new_one_again() {
    let (rx, url) = Receiver::start(&[]).await;
    let (mut n, metrics) = notifier(webhook(&url, None, fast()));
    let same = [drifted("web", "nginx:1.0")];
    for _ in 0..5 {
        n.publish(&facts(&same));
    }
    let other = [drifted("web", "nginx:0.9"), drifted("api", "api:0")];
    assert_eq!(n.publish(&facts(&other)), 2);
    eventually("three deliveries", || {
        counted(&metrics, "webhook", "sent") == 3
    })
    .await;
    // Nothing more trickles in.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let names: Vec<String> = rx
        .take()
        .iter()
        .map(|r| format!("{}", r.json()["name"]))
        .collect();
    assert_eq!(names, ["\"web\"", "\"api\"", "\"web\""].map(String::from));
}

#[tokio::test]
async fn failures_that_may_pass_are_retried_others_are_not() {
    let (rx, url) = Receiver::start(&[Reply::Status(503), Reply::Status(429)]).await;
    let (mut n, metrics) = notifier(webhook(&url, None, fast()));
    n.publish(&facts(&[drifted("web", "a")]));
    eventually("delivery after two retries", || {
        counted(&metrics, "webhook", "sent") == 1
    })
    .await;
    assert_eq!(rx.count(), 3);
    assert_eq!(counted(&metrics, "webhook", "failed"), 0);

    let (rx, url) = Receiver::start(&[Reply::Status(400)]).await;
    let (mut n, metrics) = notifier(webhook(&url, None, fast()));
    n.publish(&facts(&[drifted("web", "a")]));
    eventually("a permanent failure", || {
        counted(&metrics, "webhook", "failed") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.count(), 1, "a 400 was retried");

    // Always 500: the first attempt and `retries` more, then given up.
    let (rx, url) = Receiver::start(&[Reply::Status(500); 10]).await;
    let (mut n, metrics) = notifier(webhook(&url, None, fast()));
    n.publish(&facts(&[drifted("web", "a")]));
    eventually("given up", || counted(&metrics, "webhook", "failed") == 1).await;
    assert_eq!(rx.count(), 3);
}

#[tokio::test]
async fn a_hanging_receiver_never_holds_up_the_caller() {
    let (rx, url) = Receiver::start(&[Reply::Hang; 100]).await;
    let delivery = Delivery {
        queue: 2,
        timeout: Duration::from_millis(300),
        retries: 0,
        ..fast()
    };
    let (mut n, metrics) = notifier(webhook(&url, None, delivery));
    let passes: Vec<[Drifted; 1]> = (0..20)
        .map(|i| [drifted(&format!("svc-{i}"), "a")])
        .collect();
    let started = Instant::now();
    for p in &passes {
        assert_eq!(n.publish(&facts(p)), 1);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(100),
        "publishing took {took:?}"
    );
    // One in flight (taken off the queue), two queued, the rest dropped.
    eventually("the first attempt", || rx.count() >= 1).await;
    let dropped = counted(&metrics, "webhook", "dropped");
    assert!((17..=18).contains(&dropped), "dropped {dropped}");
    eventually("the held ones timed out", || {
        counted(&metrics, "webhook", "failed") + dropped == 20
    })
    .await;
    assert_eq!(counted(&metrics, "webhook", "sent"), 0);
}

#[tokio::test]
async fn a_receiver_that_is_down_is_counted_and_the_others_still_receive() {
    // A port that was free a moment ago: connections are refused.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let (rx, up) = Receiver::start(&[]).await;
    let cfg = NotifyConfig {
        webhooks: vec![down, up],
        ..webhook("http://unused", None, fast())
    };
    let (mut n, metrics) = notifier(cfg);
    n.publish(&facts(&[drifted("web", "a")]));
    eventually("one sent, one failed", || {
        counted(&metrics, "webhook", "sent") == 1 && counted(&metrics, "webhook", "failed") == 1
    })
    .await;
    assert_eq!(rx.count(), 1);
}

#[tokio::test]
async fn slack_gets_a_readable_message_and_no_signature() {
    let (rx, url) = Receiver::start(&[]).await;
    let cfg = NotifyConfig {
        slack: Some(SecretUrl::new(url)),
        secret: Some(SECRET.to_vec()),
        delivery: fast(),
        ..Default::default()
    };
    let (mut n, metrics) = notifier(cfg);
    n.publish(&facts(&[drifted("web", "nginx:1.0")]));
    eventually("one Slack delivery", || {
        counted(&metrics, "slack", "sent") == 1
    })
    .await;
    let got = rx.take();
    let r = &got[0];
    assert_eq!(r.header(SIGNATURE_HEADER), None);
    let m = r.json();
    assert_eq!(
        m["text"],
        ":large_yellow_circle: drift.detected prod/web: 1 drifted field: taskDefinition.containerDefinitions[web].image; corrected"
    );
    let a = &m["attachments"][0];
    assert_eq!(a["color"], "#dbab09");
    assert_eq!(a["blocks"][0]["type"], "section");
    assert_eq!(a["blocks"][0]["text"]["type"], "mrkdwn");
    assert!(
        a["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("*drift.detected* `prod/web`\n"),
        "{a}"
    );
    assert_eq!(a["blocks"][1]["type"], "context");
    assert_eq!(
        a["blocks"][1]["elements"][0]["text"],
        "Service *Progressing* · revision `0123456789ab` · controller `ecsync` · 2023-11-14T22:13:20Z"
    );
    assert!(!m.to_string().contains("nginx:1.0"), "{m}");
}

#[test]
fn slack_text_is_escaped_and_problems_are_red() {
    let key = ServiceKey {
        cluster: "prod".into(),
        name: "web".into(),
    };
    let error = "UpdateService: <html> & more";
    let services = [drifted("web", "a")];
    let mut f = facts(&services);
    f.services[0].key = &key;
    f.services[0].state = SyncState::Error;
    f.services[0].error = Some(error);
    f.services[0].drift = &[];
    let events = crate::core::events::Memory::default().observe(&f);
    let failed = events
        .iter()
        .find(|e| e.event == EventKind::SyncFailed)
        .expect("sync.failed");
    let m = slack::message(failed);
    assert_eq!(
        m["text"],
        ":red_circle: sync.failed prod/web: UpdateService: &lt;html&gt; &amp; more"
    );
    assert_eq!(m["attachments"][0]["color"], "#d93f0b");
}

#[tokio::test]
async fn bad_settings_are_refused_without_showing_the_url() {
    let cases = [
        (
            NotifyConfig {
                webhooks: vec!["ftp://example.com/x?token=hunter2".into()],
                ..Default::default()
            },
            "--notify-webhook-url #1: the URL must start with http:// or https://",
        ),
        (
            NotifyConfig {
                slack: Some(SecretUrl::new("hooks.slack.com/services/T/B/hunter2")),
                ..Default::default()
            },
            "--notify-slack-url-file: the URL must start with http:// or https://",
        ),
        (
            NotifyConfig {
                webhooks: vec!["http://example.com/".into()],
                secret: Some(Vec::new()),
                ..Default::default()
            },
            "notification secret: empty",
        ),
    ];
    for (cfg, want) in cases {
        let err = Notifier::start(cfg, "ecsync", Mode::Auto, Arc::new(Metrics::new()))
            .err()
            .expect("refused");
        assert_eq!(err.to_string(), want);
    }
    let url = SecretUrl::new("https://hooks.slack.com/services/T/B/hunter2");
    assert!(!format!("{url:?}").contains("hunter2"));
    let cfg = NotifyConfig {
        slack: Some(url),
        ..Default::default()
    };
    assert!(!format!("{cfg:?}").contains("hunter2"), "{cfg:?}");
}

#[tokio::test]
async fn no_sink_no_notifier() {
    let n = Notifier::start(
        NotifyConfig::default(),
        "ecsync",
        Mode::Auto,
        Arc::new(Metrics::new()),
    )
    .expect("fine");
    assert!(n.is_none());
}

#[tokio::test]
async fn drain_delivers_what_is_queued_within_its_limit() {
    let (rx, url) = Receiver::start(&[]).await;
    let (mut n, _metrics) = notifier(webhook(&url, None, fast()));
    let services: Vec<Drifted> = (0..5).map(|i| drifted(&format!("s{i}"), "a")).collect();
    n.publish(&facts(&services));
    n.drain(Duration::from_secs(5)).await;
    assert_eq!(rx.count(), 5);

    // A hanging receiver cannot hold the shutdown past the limit.
    let (_rx, url) = Receiver::start(&[Reply::Hang; 10]).await;
    let slow = Delivery {
        timeout: Duration::from_secs(60),
        ..fast()
    };
    let (mut n, _metrics) = notifier(webhook(&url, None, slow));
    n.publish(&facts(&services));
    let started = Instant::now();
    n.drain(Duration::from_millis(300)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_groups_scale_in_reaches_the_webhook_as_decommission_stopped() {
    use crate::core::decommission::{DecommissionAction, GroupPlan, GroupStep, OrphanState, Why};
    use crate::core::events::GroupFacts;
    let (rx, url) = Receiver::start(&[]).await;
    let (mut n, metrics) = notifier(webhook(&url, None, fast()));
    let plan = GroupPlan {
        group: "web-asg".into(),
        state: OrphanState::Stopped,
        why: Some(Why::Migration {
            service: "prod/web".into(),
            completed: SystemTime::UNIX_EPOCH,
        }),
        action: Some(DecommissionAction::Stop),
        acts_at: None,
        skipped: None,
        instances: 3,
        steps: vec![GroupStep::ScaleToZero],
        report_only: false,
        message: String::new(),
    };
    let mut f = facts(&[]);
    f.groups = vec![GroupFacts {
        plan: &plan,
        done: &["scale_to_zero"],
    }];
    assert_eq!(n.publish(&f), 1);
    eventually("one delivery", || counted(&metrics, "webhook", "sent") == 1).await;
    let body = rx.take()[0].json();
    assert_eq!(body["event"], "decommission.stopped");
    assert_eq!(body["kind"], "AutoScalingGroup");
    assert_eq!(body["name"], "web-asg");
    assert_eq!(body["cluster"], Value::Null);
    assert_eq!(body["state"], "stopped");
    assert_eq!(body["details"]["group"], "web-asg");
    assert_eq!(body["details"]["instances"], 3);
    assert_eq!(body["details"]["action"], "stop");
}
