//! Delivery: one HTTP POST per event and sink, bounded by a timeout, retried
//! with backoff while the failure may pass (no answer, 5xx, 408, 429).

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request as HttpRequest, StatusCode};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::sink::{Request, Sink};
use super::{Delivery, NotifyError};
use crate::core::events::Event;
use crate::runtime::metrics::Metrics;

pub(super) type Client = HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Receivers answer with a word or two; more is read no further.
const MAX_RESPONSE: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// hyper's text names the step that failed (connect, TLS), not the URL.
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered HTTP {0}")]
    Status(u16),
}

impl DeliveryError {
    fn retryable(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::Request(_) => true,
            Self::Status(s) => {
                let s = StatusCode::from_u16(*s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                s.is_server_error()
                    || s == StatusCode::TOO_MANY_REQUESTS
                    || s == StatusCode::REQUEST_TIMEOUT
            }
        }
    }
}

/// HTTP and HTTPS (the system's root certificates) over HTTP/1.1.
pub(super) fn client(timeout: Duration) -> Result<Client, NotifyError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = || {
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| NotifyError::Tls(e.to_string()))
    };
    let tls = match builder()?.with_native_roots() {
        Ok(b) => b.with_no_client_auth(),
        Err(e) => {
            // Plain-HTTP receivers (inside a cluster) still work; HTTPS ones
            // fail and are counted, instead of the daemon refusing to start.
            warn!(error = %e, "no root certificates: HTTPS notifications will fail");
            builder()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(timeout));
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https))
}

/// Empties one sink's queue, one event at a time, until the queue is closed.
pub(super) async fn worker(
    sink: Sink,
    client: Client,
    mut rx: mpsc::Receiver<Arc<Event>>,
    metrics: Arc<Metrics>,
    delivery: Delivery,
) {
    let label = sink.kind.as_str();
    let backoff = ExponentialBuilder::default()
        .with_min_delay(delivery.min_backoff)
        .with_max_delay(delivery.max_backoff)
        .with_max_times(delivery.retries)
        .with_jitter();
    while let Some(event) = rx.recv().await {
        let request = sink.request(&event);
        let result = (|| post(&client, &sink, &request, delivery.timeout))
            .retry(backoff)
            .when(DeliveryError::retryable)
            .notify(|e, after| {
                debug!(sink = %sink.name, event = %event.event, error = %e, retry_in = ?after, "notification failed; retrying");
            })
            .await;
        match result {
            Ok(()) => {
                metrics.notification(label, "sent");
                debug!(sink = %sink.name, event = %event.event, object = %event.object(), "notification sent");
            }
            Err(e) => {
                metrics.notification(label, "failed");
                warn!(sink = %sink.name, event = %event.event, object = %event.object(), error = %e, "notification not delivered");
            }
        }
    }
}

async fn post(
    client: &Client,
    sink: &Sink,
    request: &Request,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let mut builder = HttpRequest::builder()
        .method(Method::POST)
        .uri(sink.uri.clone());
    for (name, value) in &request.headers {
        builder = builder.header(*name, value.as_str());
    }
    let req = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| DeliveryError::Request(e.to_string()))?;
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| DeliveryError::Request(error_chain(&e)))?;
        let status = resp.status();
        // Read (a bounded part of) the answer so the connection can be reused.
        let _ = Limited::new(resp.into_body(), MAX_RESPONSE).collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(status.as_u16()))
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| DeliveryError::Timeout(timeout))?
}

/// The error and its causes ("client error (Connect): tcp connect error: ...").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
