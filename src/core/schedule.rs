//! When the daemon looks again: the per-service retry backoff and the
//! progress requeue, as plain values over an injected `now` (the daemon reads
//! the clock; this decides). Modelled on kube-runtime's scheduler: every
//! decision is a pure function of what happened and when.
//!
//! Time here is a [`Tick`]: monotonic time since the daemon started, so tests
//! drive it with plain durations.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use backon::BackoffBuilder;

use crate::core::model::ServiceKey;

/// Monotonic time since the daemon started.
pub type Tick = Duration;

/// How soon to look again after a pass that changed something while a
/// deployment is still rolling out.
pub const PROGRESS_REQUEUE: Duration = Duration::from_secs(5);
/// A stuck rollout is looked at at most this much less often (2^6 × 5 s).
const PROGRESS_MAX_DOUBLINGS: u32 = 6;
/// First and largest retry delay of a failing service.
pub const RETRY_MIN: Duration = Duration::from_secs(5);
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// Per-service retry schedule: a service whose step failed is retried with
/// jittered exponential backoff (5 s doubling to 5 min) while the others go on.
#[derive(Default)]
pub struct ServiceBackoff {
    failing: HashMap<ServiceKey, Failing>,
}

struct Failing {
    delays: backon::ExponentialBackoff,
    retry_at: Tick,
    reason: String,
}

/// What one pass found about one service, as far as retries care.
pub struct ServiceResult<'a> {
    pub key: &'a ServiceKey,
    /// The error of a service that ended the pass in `Error`; `None` otherwise.
    pub error: Option<&'a str>,
}

impl ServiceBackoff {
    /// Services still waiting for their retry at `now`, with why.
    pub fn waiting(&self, now: Tick) -> BTreeMap<ServiceKey, String> {
        self.failing
            .iter()
            .filter(|(_, f)| f.retry_at > now)
            .map(|(k, f)| (k.clone(), f.reason.clone()))
            .collect()
    }

    /// Fold in a pass's results: a failure schedules (or pushes back) the
    /// next retry, a success clears the service.
    pub fn record<'a>(&mut self, results: impl IntoIterator<Item = ServiceResult<'a>>, now: Tick) {
        for r in results {
            let Some(error) = r.error else {
                self.failing.remove(r.key);
                continue;
            };
            let entry = self
                .failing
                .entry(r.key.clone())
                .or_insert_with(|| Failing {
                    delays: backon::ExponentialBuilder::default()
                        .with_min_delay(RETRY_MIN)
                        .with_max_delay(RETRY_MAX)
                        .with_jitter()
                        .without_max_times()
                        .build(),
                    retry_at: now,
                    reason: String::new(),
                });
            let delay = entry.delays.next().unwrap_or(RETRY_MAX);
            entry.retry_at = now + delay;
            entry.reason = format!("backing off for {}s after: {error}", delay.as_secs());
        }
    }

    /// Services whose retry is due at `now`: a targeted pass looks at them.
    pub fn due(&self, now: Tick) -> impl Iterator<Item = &ServiceKey> {
        self.failing
            .iter()
            .filter(move |(_, f)| f.retry_at <= now)
            .map(|(k, _)| k)
    }

    /// How long until the earliest retry is due.
    pub fn next_retry(&self, now: Tick) -> Option<Duration> {
        self.failing
            .values()
            .map(|f| f.retry_at.saturating_sub(now))
            .min()
    }
}

/// How soon to look again while something is rolling out: 5 s after a pass
/// that changed something, doubling while a stuck rollout changes nothing —
/// every look re-reads the account and spends the shared ECS read quota.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProgressRequeue {
    /// Passes in a row that found something progressing and changed nothing.
    streak: u32,
}

impl ProgressRequeue {
    /// The wait after a pass; `None` when nothing is progressing.
    pub fn after_pass(&mut self, progressing: bool, changed: bool) -> Option<Duration> {
        if !progressing {
            self.streak = 0;
            return None;
        }
        self.streak = if changed {
            0
        } else {
            self.streak.saturating_add(1)
        };
        Some(PROGRESS_REQUEUE.saturating_mul(1 << self.streak.min(PROGRESS_MAX_DOUBLINGS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ServiceKey {
        ServiceKey {
            cluster: "c".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_stuck_rollout_is_looked_at_less_and_less_often() {
        let mut r = ProgressRequeue { streak: 3 };
        assert_eq!(r.after_pass(false, false), None);
        assert_eq!(r, ProgressRequeue::default());
        let mut r = ProgressRequeue { streak: 4 };
        assert_eq!(r.after_pass(true, true), Some(Duration::from_secs(5)));
        let mut r = ProgressRequeue::default();
        let waits: Vec<u64> = (0..8)
            .map(|_| r.after_pass(true, false).map_or(0, |w| w.as_secs()))
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 320, 320]);
    }

    #[test]
    fn failing_services_back_off_and_recover() {
        let mut b = ServiceBackoff::default();
        let origin = Duration::from_secs(1000);
        let (bad, good) = (key("bad"), key("good"));
        let failed = || {
            [
                ServiceResult {
                    key: &bad,
                    error: Some("AccessDenied"),
                },
                ServiceResult {
                    key: &good,
                    error: None,
                },
            ]
        };
        b.record(failed(), origin);
        let waiting = b.waiting(origin);
        assert_eq!(waiting.len(), 1);
        let (k, reason) = waiting.iter().next().expect("one service waits");
        assert_eq!(k.name, "bad");
        assert!(reason.contains("AccessDenied"), "{reason}");
        let first = b.next_retry(origin).expect("a retry is due");
        assert!(
            first >= Duration::from_secs(5) && first <= Duration::from_secs(10),
            "{first:?}"
        );
        // Once the wait is over it is tried again; a second failure waits longer.
        let later = origin + first;
        assert!(b.waiting(later).is_empty());
        b.record(failed(), later);
        assert!(
            b.next_retry(later)
                .is_some_and(|d| d >= Duration::from_secs(10))
        );
        // Success clears it.
        b.record(
            [ServiceResult {
                key: &bad,
                error: None,
            }],
            later,
        );
        assert!(b.next_retry(later).is_none());
    }

    #[test]
    fn retries_never_wait_longer_than_the_cap() {
        let mut b = ServiceBackoff::default();
        let mut now = Duration::ZERO;
        let bad = key("bad");
        for _ in 0..20 {
            b.record(
                [ServiceResult {
                    key: &bad,
                    error: Some("x"),
                }],
                now,
            );
            let wait = b.next_retry(now).expect("scheduled");
            assert!(wait <= RETRY_MAX * 2, "{wait:?}");
            now += wait;
        }
    }
}
