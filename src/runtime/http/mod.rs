//! The one HTTP listener (DESIGN §6): the dashboard, metrics, health, status and the Git webhook.

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

use crate::runtime::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE};
use crate::runtime::status::SharedStatus;
use crate::runtime::webhook::{self, PushEvent};

mod ui;

/// Largest webhook body accepted; GitHub caps payloads at 25 MB, but a push event that matters
/// here is a few kilobytes and anything bigger is not worth buffering.
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

pub struct WebhookConfig {
    pub secret: Vec<u8>,
    /// Accept pushes for `refs/heads/<branch>` or `refs/tags/<branch>` (or the full ref itself):
    /// `--ref` when given, else the remote's default branch once it is known (until then, any
    /// ref is accepted: a needless pass costs little).
    pub branch: Option<String>,
    /// The remote HEAD's branch, resolved by the daemon when `--ref` is omitted.
    pub default_branch: std::sync::OnceLock<String>,
}

impl WebhookConfig {
    /// Whether a push of `git_ref` concerns the watched branch. A push whose ref is unknown
    /// (generic sender, form-encoded body) is accepted: a needless pass costs little, a missed
    /// one delays a deploy until the next poll.
    pub fn wants(&self, git_ref: Option<&str>) -> bool {
        let watched = self.branch.as_ref().or(self.default_branch.get());
        match (watched, git_ref) {
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
            .field("default_branch", &self.default_branch.get())
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
        .route("/", get(ui::dashboard))
        .route("/ui/services/{cluster}/{name}", get(ui::service))
        .route("/ui/instances/{id}", get(ui::instance))
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
mod tests;
