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

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use tracing::{info, warn};

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

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "lease timings: renew deadline must be shorter than the lease duration, and the retry period shorter than the renew deadline"
    )]
    Timings,
    #[error("DynamoDB {operation}: {message}")]
    Call {
        operation: &'static str,
        message: String,
    },
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
    client: aws_sdk_dynamodb::Client,
    cfg: LeaseConfig,
    state: Arc<Leadership>,
    /// The switch the AWS clients' interceptor reads: true = refuse mutations.
    read_only: Arc<AtomicBool>,
    /// Report mode stays read-only even while leading.
    always_read_only: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

impl Elector {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        cfg: LeaseConfig,
        read_only: Arc<AtomicBool>,
        always_read_only: bool,
    ) -> Result<Self, LeaseError> {
        if cfg.renew_deadline >= cfg.duration || cfg.retry_period >= cfg.renew_deadline {
            return Err(LeaseError::Timings);
        }
        read_only.store(true, Ordering::SeqCst);
        Ok(Elector {
            client,
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
        self.read_only
            .store(!leading || self.always_read_only, Ordering::SeqCst);
        self.state.token.store(token, Ordering::SeqCst);
        self.state.leading.store(leading, Ordering::SeqCst);
    }

    /// Renew (when holding) or take over (when free or expired). Ok(Some(token))
    /// when this replica holds the lease afterwards.
    async fn try_acquire(&self) -> Result<Option<u64>, LeaseError> {
        let now = now_ms();
        let expires = now + self.cfg.duration.as_millis() as i64;
        let key = HashMap::from([("lease".to_string(), s(&self.cfg.name))]);
        let renewed = self
            .client
            .update_item()
            .table_name(&self.cfg.table)
            .set_key(Some(key.clone()))
            .update_expression("SET expiresAtMs = :exp")
            .condition_expression("holder = :me")
            .expression_attribute_values(":exp", n(expires))
            .expression_attribute_values(":me", s(&self.cfg.holder))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match renewed {
            Ok(out) => return Ok(Some(token_of(out.attributes()))),
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => return Err(call("UpdateItem", e)),
        }
        let taken = self
            .client
            .update_item()
            .table_name(&self.cfg.table)
            .set_key(Some(key))
            .update_expression(
                "SET holder = :me, expiresAtMs = :exp, #token = if_not_exists(#token, :zero) + :one",
            )
            .condition_expression("attribute_not_exists(holder) OR expiresAtMs < :now")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":me", s(&self.cfg.holder))
            .expression_attribute_values(":exp", n(expires))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match taken {
            Ok(out) => Ok(Some(token_of(out.attributes()))),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(call("UpdateItem", e)),
        }
    }

    /// Run until `stop`; on return this replica has given up leadership.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut last_renewed: Option<Instant> = None;
        loop {
            let attempt_started = Instant::now();
            match self.try_acquire().await {
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
        let key = HashMap::from([("lease".to_string(), s(&self.cfg.name))]);
        let released = self
            .client
            .update_item()
            .table_name(&self.cfg.table)
            .set_key(Some(key))
            .update_expression("SET expiresAtMs = :zero")
            .condition_expression("holder = :me")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":me", s(&self.cfg.holder))
            .send()
            .await;
        if let Err(e) = released {
            warn!(error = %call("UpdateItem", e), "could not release the leader lease; it will expire");
        } else {
            info!(holder = %self.cfg.holder, "released the leader lease");
        }
    }
}

fn token_of(attrs: Option<&HashMap<String, AttributeValue>>) -> u64 {
    attrs
        .and_then(|a| a.get("token"))
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn is_condition_failure<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        R,
    >,
) -> bool {
    e.as_service_error()
        .is_some_and(|se| se.is_conditional_check_failed_exception())
}

fn call<E, R>(operation: &'static str, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> LeaseError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    LeaseError::Call {
        operation,
        message: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
    }
}

/// A holder id unique to this process: host name, pid and a random suffix.
pub fn default_holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ecsync".into());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
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
        let switch = Arc::new(AtomicBool::new(false));
        assert!(Elector::new(client.clone(), cfg(15, 15, 2), switch.clone(), false).is_err());
        assert!(Elector::new(client.clone(), cfg(15, 10, 10), switch.clone(), false).is_err());
        let e = Elector::new(client, cfg(15, 10, 2), switch.clone(), false).unwrap();
        assert!(
            switch.load(Ordering::SeqCst),
            "a new replica starts read-only"
        );
        assert!(!e.leadership().is_leader());
    }
}
