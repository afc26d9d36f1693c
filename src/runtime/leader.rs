//! Leader election for two or more replicas, on a DynamoDB lease.
//!
//! One item per controller id: `{lease, holder, expiresAtMs, token}`. A replica
//! takes the lease with a conditional write that succeeds only when the lease
//! is free or expired, and renews it with a write conditioned on still being
//! the holder. Each takeover increments `token` (the fencing token, logged and
//! shown in `/status`).
//!
//! Timing, as in Kubernetes' leader election: the leader renews every
//! `retry_period`; if it has not renewed for `renew_deadline` it stops acting —
//! its API clients turn read-only at once, even mid-pass — and since
//! `renew_deadline < duration`, it has stopped before any other replica can
//! take the expired lease. Replicas' clocks are assumed to agree to well within
//! `duration - renew_deadline`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::adapters::aws::interceptor::ReadOnly;
use crate::adapters::lease::Lease;
pub use crate::adapters::lease::{LeaseError, default_holder};
use crate::core::shard::Shard;

/// The lease item's key: one per controller id, and one per shard with
/// sharding (`<controller-id>-<index>`), so that the replicas of one shard
/// elect a leader among themselves and different shards never contend.
/// Unsharded it stays `<controller-id>`: an existing deployment keeps its lease.
pub fn lease_name(controller_id: &str, shard: Option<Shard>) -> String {
    match shard {
        Some(s) => format!("{controller_id}-{}", s.index),
        None => controller_id.to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub table: String,
    /// The lease's key, from [`lease_name`]: one leader per controller id and shard.
    pub name: String,
    /// This replica's identity.
    pub holder: String,
    pub duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// What this replica currently is.
#[derive(Debug, Default)]
pub struct Leadership {
    leading: AtomicBool,
    token: AtomicU64,
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }
    pub fn token(&self) -> u64 {
        self.token.load(Ordering::SeqCst)
    }
}

pub struct Elector {
    lease: Lease,
    cfg: LeaseConfig,
    state: Arc<Leadership>,
    /// The switch the AWS clients' interceptor reads.
    read_only: ReadOnly,
    /// Report mode stays read-only even while leading.
    always_read_only: bool,
}

impl Elector {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        cfg: LeaseConfig,
        read_only: ReadOnly,
        always_read_only: bool,
    ) -> Result<Self, LeaseError> {
        if cfg.renew_deadline >= cfg.duration || cfg.retry_period >= cfg.renew_deadline {
            return Err(LeaseError::Timings);
        }
        read_only.set(true);
        Ok(Elector {
            lease: Lease {
                client,
                table: cfg.table.clone(),
                name: cfg.name.clone(),
                holder: cfg.holder.clone(),
            },
            cfg,
            state: Arc::new(Leadership::default()),
            read_only,
            always_read_only,
        })
    }

    pub fn leadership(&self) -> Arc<Leadership> {
        self.state.clone()
    }

    fn set_leading(&self, leading: bool, token: u64) {
        // Fence first: clients go read-only before anything else notices.
        self.read_only.set(!leading || self.always_read_only);
        self.state.token.store(token, Ordering::SeqCst);
        self.state.leading.store(leading, Ordering::SeqCst);
    }

    /// Run until `stop`; on return this replica has given up leadership.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut last_renewed: Option<Instant> = None;
        loop {
            let attempt_started = Instant::now();
            // Every renew is bounded by the renew deadline (as client-go's): a call that
            // hangs must not keep this replica writable past it while another takes over.
            let deadline = last_renewed
                .filter(|_| self.state.is_leader())
                .map_or(attempt_started + self.cfg.renew_deadline, |t| {
                    t + self.cfg.renew_deadline
                });
            let acquired =
                tokio::time::timeout_at(deadline.into(), self.lease.acquire(self.cfg.duration))
                    .await
                    .unwrap_or(Err(LeaseError::Timeout));
            match acquired {
                Ok(Some(token)) => {
                    if !self.state.is_leader() {
                        info!(holder = %self.cfg.holder, token, "acquired the leader lease");
                    }
                    last_renewed = Some(attempt_started);
                    self.set_leading(true, token);
                }
                Ok(None) => {
                    if self.state.is_leader() {
                        warn!(holder = %self.cfg.holder, "lost the leader lease to another replica");
                    }
                    last_renewed = None;
                    self.set_leading(false, 0);
                }
                Err(e) => {
                    warn!(error = %e, "leader lease call failed");
                    let expired =
                        last_renewed.is_none_or(|t| t.elapsed() >= self.cfg.renew_deadline);
                    if self.state.is_leader() && expired {
                        warn!(holder = %self.cfg.holder, "renew deadline passed: stepping down");
                        self.set_leading(false, 0);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.retry_period) => {}
                _ = &mut stop => break,
            }
        }
        self.release().await;
    }

    /// Hand the lease over at shutdown, so a successor need not wait it out.
    async fn release(&self) {
        let was_leader = self.state.is_leader();
        self.set_leading(false, 0);
        if !was_leader {
            return;
        }
        match self.lease.release().await {
            Err(e) => warn!(error = %e, "could not release the leader lease; it will expire"),
            Ok(()) => info!(holder = %self.cfg.holder, "released the leader lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_must_leave_room_for_fencing() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let cfg = |d, r, p| LeaseConfig {
            table: "t".into(),
            name: "n".into(),
            holder: "h".into(),
            duration: Duration::from_secs(d),
            renew_deadline: Duration::from_secs(r),
            retry_period: Duration::from_secs(p),
        };
        let switch = ReadOnly::new(false);
        assert!(Elector::new(client.clone(), cfg(15, 15, 2), switch.clone(), false).is_err());
        assert!(Elector::new(client.clone(), cfg(15, 10, 10), switch.clone(), false).is_err());
        let e = Elector::new(client, cfg(15, 10, 2), switch.clone(), false).unwrap();
        assert!(switch.is_on(), "a new replica starts read-only");
        assert!(!e.leadership().is_leader());
    }
    #[test]
    fn each_shard_has_its_own_lease_and_unsharded_keeps_the_old_one() {
        assert_eq!(lease_name("ecsync", None), "ecsync");
        let shard = |i| Shard::new(i, 2).ok();
        assert_eq!(lease_name("ecsync", shard(0)), "ecsync-0");
        assert_eq!(lease_name("ecsync", shard(1)), "ecsync-1");
    }
}

#[cfg(test)]
mod renew_deadline {
    use std::sync::atomic::AtomicUsize;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// DynamoDB that grants the lease once, then never answers again: a hung renew.
    async fn grants_once_then_hangs() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let answered = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let answered = answered.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() < end + 4 + len {
                            continue;
                        }
                        buf.drain(..end + 4 + len);
                        if answered.fetch_add(1, Ordering::SeqCst) > 0 {
                            // Hung: never answer, never close.
                            std::future::pending::<()>().await;
                        }
                        let body = r#"{"Attributes":{"token":{"N":"1"}}}"#;
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if sock.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        endpoint
    }

    #[tokio::test]
    async fn a_hung_renew_steps_down_at_the_renew_deadline() {
        let endpoint = grants_once_then_hangs().await;
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKID", "SECRET", None, None, "test",
            ))
            .endpoint_url(endpoint)
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(conf);
        let cfg = LeaseConfig {
            table: "t".into(),
            name: "n".into(),
            holder: "h".into(),
            duration: Duration::from_millis(1500),
            renew_deadline: Duration::from_millis(600),
            retry_period: Duration::from_millis(100),
        };
        let switch = ReadOnly::new(false);
        let elector = Elector::new(client, cfg, switch.clone(), false).expect("timings");
        let leadership = elector.leadership();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(elector.run(async move {
            let _ = stop_rx.await;
        }));
        let started = Instant::now();
        while !leadership.is_leader() && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(leadership.is_leader(), "the first renew grants the lease");
        assert!(!switch.is_on(), "a leader may write");
        let leading_since = Instant::now();
        while leadership.is_leader() && leading_since.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let held = leading_since.elapsed();
        assert!(!leadership.is_leader(), "a hung renew never stepped down");
        assert!(switch.is_on(), "stepping down fences the clients");
        assert!(
            held < Duration::from_millis(1500),
            "still leading {held:?} after the last renew: past the lease itself"
        );
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
}
