//! Notifications (DESIGN §11): the events of each pass, delivered to generic
//! JSON webhooks and to Slack without ever holding a pass up.
//!
//! Which events a pass gives rise to, and which were sent before, is decided in
//! [`crate::core::events`]. Here each sink gets a bounded queue filled with
//! `try_send` (a full queue drops the event and counts it) and a task of its own
//! that delivers with a timeout per request and retries with backoff, so a slow
//! receiver delays only its own queue.

mod deliver;
mod facts;
mod sink;
pub mod slack;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::core::events::{Event, Memory, PassFacts};
use crate::core::state::Mode;
use crate::runtime::metrics::Metrics;
use crate::runtime::reconciler::PassReport;

pub use deliver::DeliveryError;
pub use facts::pass_facts;
pub use sink::{SIGNATURE_HEADER, SinkKind, sign};

/// `sink` label values of `ecsync_notifications_total`.
pub const SINKS: [&str; 2] = [SinkKind::Webhook.as_str(), SinkKind::Slack.as_str()];
/// `result` label values of `ecsync_notifications_total`: delivered, given up
/// on after the retries, or dropped because the sink's queue was full.
pub const RESULTS: [&str; 3] = ["sent", "failed", "dropped"];

/// A URL that is itself a credential (Slack's incoming webhooks): it is never
/// printed, not even by `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }
    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretUrl(<redacted>)")
    }
}

/// How deliveries are paced.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Events waiting per sink before new ones are dropped.
    pub queue: usize,
    /// Upper bound on one request, connecting included.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Delivery {
    /// Worst case per event: 5 attempts of 10 s plus about 15 s of backoff, so
    /// a receiver that hangs holds its queue for about a minute per event.
    fn default() -> Self {
        Delivery {
            queue: 256,
            timeout: Duration::from_secs(10),
            retries: 4,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// `--notify-*`: where events go.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// `--notify-webhook-url`, each a generic JSON webhook.
    pub webhooks: Vec<String>,
    /// Read from `--notify-slack-url-file`.
    pub slack: Option<SecretUrl>,
    /// Read from `--notify-secret-file`: webhook bodies are signed with it.
    pub secret: Option<Vec<u8>>,
    pub delivery: Delivery,
}

impl NotifyConfig {
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.slack.is_none()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The URL itself is left out: it may carry a token.
    #[error("{which}: {reason}")]
    Url { which: String, reason: String },
    #[error("notification secret: {0}")]
    Secret(&'static str),
    #[error("TLS for notifications: {0}")]
    Tls(String),
}

/// One sink's queue and the task that empties it.
struct Queue {
    name: String,
    kind: SinkKind,
    tx: mpsc::Sender<Arc<Event>>,
    worker: JoinHandle<()>,
}

/// Owned by the daemon loop: turns each pass into events and queues them.
pub struct Notifier {
    memory: Memory,
    queues: Vec<Queue>,
    metrics: Arc<Metrics>,
    controller_id: String,
    mode: Mode,
}

impl Notifier {
    /// Starts one delivery task per sink. `Ok(None)` when no sink is configured.
    pub fn start(
        cfg: NotifyConfig,
        controller_id: &str,
        mode: Mode,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Notifier>, NotifyError> {
        if cfg.is_empty() {
            if cfg.secret.is_some() {
                warn!("--notify-secret-file is set but no --notify-webhook-url: nothing to sign");
            }
            return Ok(None);
        }
        let sinks = sink::Sink::all(&cfg)?;
        let client = deliver::client(cfg.delivery.timeout)?;
        let mut queues = Vec::new();
        for sink in sinks {
            let (tx, rx) = mpsc::channel(cfg.delivery.queue.max(1));
            let name = sink.name.clone();
            let kind = sink.kind;
            info!(sink = %name, "notifications on");
            let worker = tokio::spawn(deliver::worker(
                sink,
                client.clone(),
                rx,
                metrics.clone(),
                cfg.delivery.clone(),
            ));
            queues.push(Queue {
                name,
                kind,
                tx,
                worker,
            });
        }
        Ok(Some(Notifier {
            memory: Memory::default(),
            queues,
            metrics,
            controller_id: controller_id.to_string(),
            mode,
        }))
    }

    /// Queues the events of a finished pass; returns at once, whatever the
    /// receivers do. Returns how many events were new.
    pub fn after_pass(
        &mut self,
        report: &PassReport,
        git_error: Option<&str>,
        now: SystemTime,
    ) -> usize {
        let controller_id = self.controller_id.clone();
        let facts = pass_facts(report, &controller_id, self.mode, git_error, now);
        if report.targeted.is_some() {
            let events = self.memory.observe_partial(&facts);
            return self.send(events);
        }
        self.publish(&facts)
    }

    /// [`Notifier::after_pass`] from facts already gathered.
    pub fn publish(&mut self, facts: &PassFacts) -> usize {
        let events = self.memory.observe(facts);
        self.send(events)
    }

    fn send(&mut self, events: Vec<crate::core::events::Event>) -> usize {
        for event in &events {
            debug!(event = %event.event, object = %event.object(), "notification");
            let event = Arc::new(event.clone());
            for q in &self.queues {
                match q.tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.metrics.notification(q.kind.as_str(), "dropped");
                        warn!(sink = %q.name, event = %event.event, "notification queue full; event dropped");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        self.metrics.notification(q.kind.as_str(), "dropped");
                    }
                }
            }
        }
        events.len()
    }

    /// On shutdown: lets the queues empty for at most `limit`, then gives up on
    /// what is left (a restart may repeat an event, never lose a pass).
    pub async fn drain(self, limit: Duration) {
        let mut workers = Vec::new();
        for q in self.queues {
            drop(q.tx);
            workers.push((q.name, q.worker));
        }
        let deadline = tokio::time::Instant::now() + limit;
        for (name, mut worker) in workers {
            if tokio::time::timeout_at(deadline, &mut worker)
                .await
                .is_err()
            {
                warn!(sink = %name, "shutdown: notifications still queued were not delivered");
                worker.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests;
