use super::*;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::BodyExt;
use sha2::Sha256;
use tower::ServiceExt;

use crate::core::state::{Mode, SyncState};
use crate::runtime::status::{Role, ServiceStatus, StatusSnapshot};

const SECRET: &[u8] = b"hook-secret";

fn state(webhook: Option<WebhookConfig>) -> HttpState {
    HttpState {
        metrics: Arc::new(Metrics::new()),
        status: crate::runtime::status::shared(StatusSnapshot::new(Mode::Auto, Role::Standalone)),
        ready: Arc::new(AtomicBool::new(false)),
        webhook: webhook.map(Arc::new),
        trigger: Arc::new(tokio::sync::Notify::new()),
    }
}

fn hooked(branch: Option<&str>) -> HttpState {
    state(Some(WebhookConfig {
        secret: SECRET.to_vec(),
        branch: branch.map(str::to_owned),
        default_branch: Default::default(),
    }))
}

async fn call(state: &HttpState, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn github(event: &str, body: &'static [u8], signature: &str) -> Request<Body> {
    Request::post("/hooks/git")
        .header("X-GitHub-Event", event)
        .header("X-Hub-Signature-256", signature)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

/// Whether the trigger was notified; `notify_one` stores a permit when nobody waits yet.
async fn triggered(state: &HttpState) -> bool {
    tokio::time::timeout(Duration::from_millis(100), state.trigger.notified())
        .await
        .is_ok()
}

fn webhook_count(state: &HttpState, result: &str) -> u64 {
    let text = state.metrics.encode().unwrap();
    let needle = format!("ecsync_webhook_requests_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map(|v| v.parse().unwrap())
        .unwrap_or_else(|| panic!("no {result} series:\n{text}"))
}

const PUSH_MAIN: &[u8] = br#"{"ref":"refs/heads/main","after":"abc"}"#;
const PUSH_DEV: &[u8] = br#"{"ref":"refs/heads/dev","after":"abc"}"#;

#[tokio::test]
async fn healthz() {
    let (code, _, body) = call(&state(None), get("/healthz")).await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn readyz_follows_the_flag() {
    let s = state(None);
    assert_eq!(
        call(&s, get("/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    s.ready.store(true, Ordering::Release);
    assert_eq!(call(&s, get("/readyz")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn status_serves_the_current_snapshot() {
    let s = state(None);
    {
        let mut snap = s.status.write().unwrap();
        snap.revision = Some("abc123".into());
        snap.services.push(ServiceStatus {
            cluster: "prod".into(),
            service: "web".into(),
            source: None,
            state: SyncState::Held,
            drift: vec![],
            ignored: Vec::new(),
            actions: vec![],
            last_error: Some("manifest web.yaml:3:1: unknown field".into()),
            message: None,
            migration: None,
            hook: None,
            pending: Vec::new(),
            recent_actions: Vec::new(),
        });
    }
    let (code, headers, body) = call(&s, get("/status")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["revision"], "abc123");
    assert_eq!(v["mode"], "auto");
    assert_eq!(v["role"], "standalone", "no leader election, so no leader");
    assert_eq!(v["lastPass"], serde_json::Value::Null);
    assert_eq!(v["services"][0]["state"], "Held");
    assert_eq!(
        v["services"][0]["lastError"],
        "manifest web.yaml:3:1: unknown field"
    );
    let back: StatusSnapshot = serde_json::from_str(&body).unwrap();
    assert_eq!(back, *s.status.read().unwrap());
}

#[tokio::test]
async fn metrics_default_to_prometheus_text() {
    let s = state(None);
    s.metrics.git_fetch("ok");
    let (code, headers, body) = call(&s, get("/metrics")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], PROMETHEUS_TEXT_CONTENT_TYPE);
    assert!(
        body.contains("ecsync_git_fetch_total{result=\"ok\"} 1\n"),
        "{body}"
    );
    assert!(!body.contains("# EOF"));
}

#[tokio::test]
async fn metrics_negotiate_openmetrics() {
    let s = state(None);
    // What Prometheus 2.x sends.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let req = Request::get("/metrics")
        .header(header::ACCEPT, accept)
        .body(Body::empty())
        .unwrap();
    let (code, headers, body) = call(&s, req).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
}

#[tokio::test]
async fn webhook_disabled_is_404() {
    let s = state(None);
    let (code, _, _) = call(&s, github("push", PUSH_MAIN, &sign(PUSH_MAIN))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(webhook_count(&s, "disabled"), 1);
    assert!(!triggered(&s).await);
}

#[tokio::test]
async fn valid_github_push_triggers_a_pass() {
    let s = hooked(Some("main"));
    let (code, _, body) = call(&s, github("push", PUSH_MAIN, &sign(PUSH_MAIN))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(webhook_count(&s, "accepted"), 1);
    assert!(triggered(&s).await);
}

#[tokio::test]
async fn bad_signature_is_401_and_triggers_nothing() {
    let s = hooked(None);
    let wrong = sign(PUSH_DEV); // a valid signature of a different body
    for req in [
        github("push", PUSH_MAIN, &wrong),
        github("push", PUSH_MAIN, "sha256=00"),
        Request::post("/hooks/git")
            .body(Body::from(PUSH_MAIN))
            .unwrap(),
    ] {
        let (code, _, body) = call(&s, req).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert!(!body.contains("hook-secret"));
    }
    assert_eq!(webhook_count(&s, "unauthorized"), 3);
    assert_eq!(webhook_count(&s, "accepted"), 0);
    assert!(!triggered(&s).await);
}

#[tokio::test]
async fn ping_is_200_ignored() {
    let s = hooked(Some("main"));
    let body: &'static [u8] = br#"{"zen":"Keep it simple.","hook_id":1}"#;
    let (code, _, _) = call(&s, github("ping", body, &sign(body))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(webhook_count(&s, "ignored"), 1);
    assert!(!triggered(&s).await);
}

#[tokio::test]
async fn push_to_another_branch_is_ignored() {
    let s = hooked(Some("main"));
    let (code, _, body) = call(&s, github("push", PUSH_DEV, &sign(PUSH_DEV))).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert!(body.contains("not for the watched branch"), "{body}");
    assert_eq!(webhook_count(&s, "ignored"), 1);
    assert_eq!(webhook_count(&s, "accepted"), 0);
    assert!(!triggered(&s).await);
}

#[tokio::test]
async fn other_github_event_is_ignored() {
    let s = hooked(None);
    let (code, _, _) = call(&s, github("issues", PUSH_MAIN, &sign(PUSH_MAIN))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(webhook_count(&s, "ignored"), 1);
    assert!(!triggered(&s).await);
}

#[tokio::test]
async fn gitlab_and_bearer_pushes_trigger() {
    let s = hooked(Some("main"));
    let gitlab = Request::post("/hooks/git")
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", "hook-secret")
        .body(Body::from(PUSH_MAIN))
        .unwrap();
    assert_eq!(call(&s, gitlab).await.0, StatusCode::ACCEPTED);
    assert!(triggered(&s).await);
    // A generic sender with no body: the ref is unknown, so a pass runs.
    let bearer = Request::post("/hooks/git")
        .header(header::AUTHORIZATION, "Bearer hook-secret")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&s, bearer).await.0, StatusCode::ACCEPTED);
    assert!(triggered(&s).await);
    assert_eq!(webhook_count(&s, "accepted"), 2);
}

#[tokio::test]
async fn body_over_1_mib_is_413() {
    let s = hooked(None);
    let big = vec![b' '; WEBHOOK_BODY_LIMIT + 1];
    let sig = {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(&big);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let req = Request::post("/hooks/git")
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", sig)
        .body(Body::from(big))
        .unwrap();
    assert_eq!(call(&s, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(webhook_count(&s, "too_large"), 1);
    assert!(!triggered(&s).await);

    // Exactly at the limit is fine.
    let at_limit = vec![b' '; WEBHOOK_BODY_LIMIT];
    let req = Request::post("/hooks/git")
        .header(header::AUTHORIZATION, "Bearer hook-secret")
        .body(Body::from(at_limit))
        .unwrap();
    assert_eq!(call(&s, req).await.0, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn wrong_method_is_405() {
    let s = hooked(None);
    assert_eq!(
        call(&s, get("/hooks/git")).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert!(!triggered(&s).await);
}

#[test]
fn branch_matching() {
    let cfg = |b: Option<&str>| WebhookConfig {
        secret: SECRET.to_vec(),
        branch: b.map(str::to_owned),
        default_branch: Default::default(),
    };
    let main = cfg(Some("main"));
    assert!(main.wants(Some("refs/heads/main")));
    assert!(main.wants(Some("refs/tags/main")));
    assert!(main.wants(Some("main")));
    assert!(main.wants(None));
    assert!(!main.wants(Some("refs/heads/main2")));
    assert!(!main.wants(Some("refs/heads/feature/main")));
    assert!(!main.wants(Some("refs/heads/dev")));
    assert!(cfg(None).wants(Some("refs/heads/anything")));
}

#[test]
fn debug_never_shows_the_secret() {
    let s = hooked(Some("main"));
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("hook-secret"), "{dbg}");
    assert!(dbg.contains("<redacted>"));
}

#[tokio::test]
async fn serve_answers_and_shuts_down() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state(None), async {
        let _ = stop_rx.await;
    }));
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    sock.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    sock.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("ok"), "{resp}");
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stopped")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn dashboard_and_detail_pages_are_html_with_a_strict_csp() {
    let s = state(None);
    {
        let mut snap = s.status.write().unwrap();
        snap.services.push(ServiceStatus {
            cluster: "prod".into(),
            service: "web".into(),
            source: None,
            state: SyncState::Synced,
            drift: vec![],
            ignored: Vec::new(),
            actions: vec![],
            last_error: None,
            message: None,
            migration: None,
            hook: None,
            pending: Vec::new(),
            recent_actions: Vec::new(),
        });
    }
    for (path, code) in [
        ("/", StatusCode::OK),
        ("/ui/services/prod/web", StatusCode::OK),
        ("/ui/services/prod/nope", StatusCode::NOT_FOUND),
        ("/ui/instances/i-0abc", StatusCode::NOT_FOUND),
    ] {
        let (got, headers, body) = call(&s, get(path)).await;
        assert_eq!(got, code, "{path}");
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/html; charset=utf-8",
            "{path}"
        );
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none';"), "{path}: {csp}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(body.starts_with("<!DOCTYPE html>"), "{path}");
    }
    let (_, _, body) = call(&s, get("/")).await;
    assert!(body.contains(r#"href="/ui/services/prod/web""#), "{body}");
}
