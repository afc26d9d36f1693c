//! The one HTTP listener (DESIGN §6): metrics, health, status and the Git webhook.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE};
use crate::status::SharedStatus;
use crate::webhook::{self, PushEvent};

/// Largest webhook body accepted; GitHub caps payloads at 25 MB, but a push event that matters
/// here is a few kilobytes and anything bigger is not worth buffering.
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

pub struct WebhookConfig {
    pub secret: Vec<u8>,
    /// Accept pushes for `refs/heads/<branch>` or `refs/tags/<branch>` (or the full ref itself);
    /// `None` accepts any ref.
    pub branch: Option<String>,
}

impl WebhookConfig {
    /// Whether a push of `git_ref` concerns the watched branch. A push whose ref is unknown
    /// (generic sender, form-encoded body) is accepted: a needless pass costs little, a missed
    /// one delays a deploy until the next poll.
    pub fn wants(&self, git_ref: Option<&str>) -> bool {
        match (&self.branch, git_ref) {
            (None, _) | (_, None) => true,
            (Some(b), Some(r)) => {
                r == b
                    || r.strip_prefix("refs/heads/") == Some(b.as_str())
                    || r.strip_prefix("refs/tags/") == Some(b.as_str())
            }
        }
    }
}

// Hand-written so the secret can never reach a log through `{:?}`.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secret", &"<redacted>")
            .field("branch", &self.branch)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub status: SharedStatus,
    /// Set by the controller after the first full observation.
    pub ready: Arc<AtomicBool>,
    pub webhook: Option<Arc<WebhookConfig>>,
    /// Notified by an accepted push; the scheduler starts a pass at once.
    pub trigger: Arc<tokio::sync::Notify>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route(
            "/hooks/git",
            post(git_hook).layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)),
        )
        .with_state(state)
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Prometheus text 0.0.4 unless the scraper asks for OpenMetrics (Prometheus itself does).
async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (encoded, content_type) = if wants_openmetrics {
        (state.metrics.encode_openmetrics(), OPENMETRICS_CONTENT_TYPE)
    } else {
        (state.metrics.encode(), PROMETHEUS_TEXT_CONTENT_TYPE)
    };
    match encoded {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn status(State(state): State<HttpState>) -> Response {
    // Serialised under the read lock (no await in between) instead of cloning the snapshot.
    let body = {
        let snapshot = state.status.read().unwrap_or_else(|e| e.into_inner());
        serde_json::to_vec(&*snapshot)
    };
    match body {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "serialising status failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "serialising status failed\n",
            )
                .into_response()
        }
    }
}

/// A webhook answer: the status code, the `ecsync_webhook_requests_total` result, and a short
/// JSON body for whoever reads the delivery log on the Git host.
fn hook_reply(
    state: &HttpState,
    code: StatusCode,
    result: &'static str,
    message: &str,
) -> Response {
    state.metrics.webhook(result);
    let body = serde_json::json!({ "result": result, "message": message });
    (code, axum::Json(body)).into_response()
}

async fn git_hook(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(config) = state.webhook.clone() else {
        return hook_reply(
            &state,
            StatusCode::NOT_FOUND,
            "disabled",
            "webhook not configured",
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            tracing::warn!(limit = WEBHOOK_BODY_LIMIT, "webhook body too large");
            return hook_reply(
                &state,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "body larger than 1 MiB",
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "webhook body unreadable");
            return hook_reply(
                &state,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "unreadable body",
            );
        }
    };
    let auth = match webhook::verify(&headers, &body, &config.secret) {
        Ok(auth) => auth,
        Err(e) => {
            // `WebhookError` carries neither the secret nor request data.
            tracing::warn!(reason = %e, "webhook rejected");
            return hook_reply(
                &state,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unauthorized",
            );
        }
    };
    match webhook::push_ref(&headers, &body) {
        PushEvent::Ping => hook_reply(&state, StatusCode::OK, "ignored", "pong"),
        PushEvent::Other(event) => {
            tracing::info!(?auth, event = %event, "webhook event ignored");
            hook_reply(&state, StatusCode::OK, "ignored", "not a push event")
        }
        PushEvent::Push { git_ref } if !config.wants(git_ref.as_deref()) => {
            tracing::info!(?auth, git_ref = ?git_ref, watched = ?config.branch, "webhook push for another ref ignored");
            hook_reply(
                &state,
                StatusCode::ACCEPTED,
                "ignored",
                "push is not for the watched branch",
            )
        }
        PushEvent::Push { git_ref } => {
            tracing::info!(?auth, git_ref = ?git_ref, "webhook push accepted, starting a pass");
            state.trigger.notify_one();
            hook_reply(
                &state,
                StatusCode::ACCEPTED,
                "accepted",
                "reconcile pass triggered",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use hmac::{Hmac, KeyInit, Mac};
    use http_body_util::BodyExt;
    use sha2::Sha256;
    use tower::ServiceExt;

    use crate::status::{ServiceStatus, StatusSnapshot, SyncState};

    const SECRET: &[u8] = b"hook-secret";

    fn state(webhook: Option<WebhookConfig>) -> HttpState {
        HttpState {
            metrics: Arc::new(Metrics::new()),
            status: crate::status::shared(StatusSnapshot::new("auto")),
            ready: Arc::new(AtomicBool::new(false)),
            webhook: webhook.map(Arc::new),
            trigger: Arc::new(tokio::sync::Notify::new()),
        }
    }

    fn hooked(branch: Option<&str>) -> HttpState {
        state(Some(WebhookConfig {
            secret: SECRET.to_vec(),
            branch: branch.map(str::to_owned),
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
                actions: vec![],
                last_error: Some("manifest web.yaml:3:1: unknown field".into()),
                message: None,
                migration: None,
            });
        }
        let (code, headers, body) = call(&s, get("/status")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["revision"], "abc123");
        assert_eq!(v["mode"], "auto");
        assert_eq!(v["role"], "leader");
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
}
