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

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub table: String,
    /// The lease's key: one leader per controller id.
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
            match self.lease.acquire(self.cfg.duration).await {
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
}
