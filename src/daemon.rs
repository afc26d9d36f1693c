//! `ecsync run`: the long-running controller. Polls Git (and wakes on the push
//! webhook), runs one pass at a time, serves HTTP, and drains on SIGTERM.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use tokio::sync::Notify;
use tracing::{Instrument, error, info, info_span, warn};

use backon::BackoffBuilder;
use ecsync::controller::{PassReport, Reconciler};
use ecsync::http::{self, HttpState, WebhookConfig};
use ecsync::manifest::ManifestSet;
use ecsync::metrics::Metrics;
use ecsync::model::ServiceKey;
use ecsync::status::{
    FieldDrift, InstanceStatus, PassSummary, ServiceStatus, SharedStatus, StatusSnapshot, SyncState,
};

use crate::cli::{Mode, RunArgs};
use crate::commands;

/// How soon to look again while a deployment is still rolling out.
const PROGRESS_REQUEUE: Duration = Duration::from_secs(5);
/// SIGTERM must end the process well inside a pod's grace period.
const DRAIN_LIMIT: Duration = Duration::from_secs(8);

pub async fn run(args: RunArgs) -> Result<u8> {
    let report_only = args.mode == Mode::Report;
    let metrics = Arc::new(Metrics::new());
    let status: SharedStatus = Arc::new(std::sync::RwLock::new(StatusSnapshot::new(
        if report_only { "report" } else { "auto" },
    )));
    let ready = Arc::new(AtomicBool::new(false));
    let trigger = Arc::new(Notify::new());
    let webhook = match &args.webhook_secret_file {
        Some(path) => {
            let secret = std::fs::read(path)
                .with_context(|| format!("reading webhook secret {}", path.display()))?;
            let secret = String::from_utf8_lossy(&secret).trim().as_bytes().to_vec();
            Some(Arc::new(WebhookConfig {
                secret,
                branch: args.source.git_ref.clone(),
            }))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving HTTP");
    let http_state = HttpState {
        metrics: metrics.clone(),
        status: status.clone(),
        ready: ready.clone(),
        webhook,
        trigger: trigger.clone(),
    };
    let shutdown = Arc::new(Notify::new());
    let http_shutdown = shutdown.clone();
    let server = tokio::spawn(http::serve(listener, http_state, async move {
        http_shutdown.notified().await;
    }));

    let source = commands::git_source(&args.source)?;
    let (clients, _counts) = commands::clients(&args.aws, metrics.clone(), report_only).await;
    let reconciler = Reconciler {
        clients,
        cache: Default::default(),
        metrics: metrics.clone(),
        controller_id: args.aws.controller_id.clone(),
        report_only,
        prune: args.prune.limit(),
        max_decommission_per_pass: args.prune.max_decommission_per_pass,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let signal_stop = stop.clone();
    let signal_trigger = trigger.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested: finishing the current step");
        signal_stop.store(true, Ordering::SeqCst);
        signal_trigger.notify_one();
    });

    let mut last_good: Option<(String, ManifestSet)> = None;
    let mut backoff = ServiceBackoff::default();
    let mut pass_id: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        pass_id += 1;
        let started = Instant::now();
        let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();

        let fetched = source.fetch().await;
        let git_error = match fetched {
            Ok(snapshot) => {
                metrics.git_fetch("ok");
                match commands::load_snapshot(&snapshot, args.source.path.as_deref()) {
                    Ok(set) => {
                        last_good = Some((snapshot.revision.clone(), set));
                        None
                    }
                    Err(e) => Some(format!("{e:#}")),
                }
            }
            Err(e) => {
                metrics.git_fetch("error");
                Some(e.to_string())
            }
        };
        if let Some(e) = &git_error {
            // Keep acting on the last good revision: a broken remote or an empty
            // commit must never look like "delete everything".
            warn!(error = %e, "git source failed; keeping the last good revision");
        }

        let mut requeue = jittered(args.interval);
        if let Some((revision, set)) = &last_good {
            metrics.set_git_revision(revision);
            let span = info_span!("reconcile", pass_id, revision = %revision);
            let backing_off = backoff.waiting(Instant::now());
            let pass = reconciler
                .pass(revision, set, false, &backing_off)
                .instrument(span);
            let report = match tokio::time::timeout(args.pass_timeout, pass).await {
                Ok(report) => report,
                Err(_) => PassReport {
                    revision: revision.clone(),
                    error: Some(format!("pass exceeded {:?}", args.pass_timeout)),
                    ..Default::default()
                },
            };
            let result = if report.error.is_some() {
                "error"
            } else if report.has_errors() || !set.errors.is_empty() {
                "partial"
            } else {
                "ok"
            };
            let elapsed = started.elapsed();
            metrics.observe_reconcile(result, elapsed.as_secs_f64());
            record_services(&metrics, &report);
            if report.error.is_none() {
                ready.store(true, Ordering::SeqCst);
            } else if let Some(e) = &report.error {
                error!(error = %e, "reconcile pass failed");
            }
            if report
                .services
                .iter()
                .any(|s| s.state == SyncState::Progressing)
            {
                requeue = requeue.min(PROGRESS_REQUEUE);
            }
            backoff.record(&report, &backing_off, Instant::now());
            if let Some(next) = backoff.next_retry(Instant::now()) {
                requeue = requeue.min(next);
            }
            info!(
                pass_id,
                result,
                elapsed_ms = elapsed.as_millis() as u64,
                "pass finished"
            );
            let snapshot = status_snapshot(
                &report,
                set,
                git_error.clone(),
                PassSummary {
                    pass_id,
                    started_at,
                    duration_ms: elapsed.as_millis() as u64,
                    result: result.to_string(),
                },
                report_only,
            );
            *status.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
        } else {
            let mut s = status.write().unwrap_or_else(|e| e.into_inner());
            s.git_error = git_error;
        }

        if stop.load(Ordering::SeqCst) {
            break;
        }
        // A webhook or a signal ends the wait early; passes never overlap
        // because the next one starts only from here.
        let _ = tokio::time::timeout(requeue, trigger.notified()).await;
    }

    shutdown.notify_waiters();
    let _ = tokio::time::timeout(DRAIN_LIMIT, server).await;
    info!("stopped");
    Ok(commands::EXIT_OK)
}

/// Per-service retry schedule: a service whose step failed is retried with
/// jittered exponential backoff (5 s doubling to 5 min) while the others go on.
#[derive(Default)]
struct ServiceBackoff {
    failing: HashMap<ServiceKey, Failing>,
}

struct Failing {
    delays: backon::ExponentialBackoff,
    retry_at: Instant,
    reason: String,
}

impl ServiceBackoff {
    fn waiting(&self, now: Instant) -> BTreeMap<ServiceKey, String> {
        self.failing
            .iter()
            .filter(|(_, f)| f.retry_at > now)
            .map(|(k, f)| (k.clone(), f.reason.clone()))
            .collect()
    }

    fn record(
        &mut self,
        report: &PassReport,
        skipped: &BTreeMap<ServiceKey, String>,
        now: Instant,
    ) {
        for o in &report.services {
            let key = &o.plan.key;
            if skipped.contains_key(key) {
                continue;
            }
            let Some(error) = o.error.as_ref().filter(|_| o.state == SyncState::Error) else {
                self.failing.remove(key);
                continue;
            };
            let entry = self.failing.entry(key.clone()).or_insert_with(|| Failing {
                delays: backon::ExponentialBuilder::default()
                    .with_min_delay(Duration::from_secs(5))
                    .with_max_delay(Duration::from_secs(300))
                    .with_jitter()
                    .without_max_times()
                    .build(),
                retry_at: now,
                reason: String::new(),
            });
            let delay = entry.delays.next().unwrap_or(Duration::from_secs(300));
            entry.retry_at = now + delay;
            entry.reason = format!("backing off for {}s after: {error}", delay.as_secs());
        }
    }

    fn next_retry(&self, now: Instant) -> Option<Duration> {
        self.failing
            .values()
            .map(|f| f.retry_at.saturating_duration_since(now))
            .min()
    }
}

/// ±10% so that many replicas or controllers do not poll in lockstep.
fn jittered(interval: Duration) -> Duration {
    let factor = 0.9 + fastrand::f64() * 0.2;
    interval.mul_f64(factor)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn record_services(metrics: &Metrics, report: &PassReport) {
    let mut counts = SyncState::ALL.map(|s| (s, 0i64));
    for o in &report.services {
        if let Some(c) = counts.iter_mut().find(|(s, _)| *s == o.state) {
            c.1 += 1;
        }
        metrics.set_service_drift(
            &o.plan.key.cluster,
            &o.plan.key.name,
            o.plan.drift.len() as i64,
        );
    }
    metrics.set_service_states(&counts);
}

fn status_snapshot(
    report: &PassReport,
    set: &ManifestSet,
    git_error: Option<String>,
    last_pass: PassSummary,
    report_only: bool,
) -> StatusSnapshot {
    let mut snapshot = StatusSnapshot::new(if report_only { "report" } else { "auto" });
    snapshot.revision = Some(report.revision.clone());
    snapshot.git_error = git_error.or_else(|| {
        (!set.errors.is_empty()).then(|| {
            set.errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    });
    snapshot.last_pass = Some(last_pass);
    snapshot.services = report
        .services
        .iter()
        .map(|o| ServiceStatus {
            cluster: o.plan.key.cluster.clone(),
            service: o.plan.key.name.clone(),
            source: o.plan.source.clone(),
            state: o.state,
            drift: o
                .plan
                .drift
                .iter()
                .map(|d| FieldDrift {
                    path: d.path.clone(),
                    desired: d.desired.clone(),
                    live: d.live.clone(),
                })
                .collect(),
            actions: o.done.iter().map(|s| s.to_string()).collect(),
            last_error: o.error.clone().or_else(|| report.error.clone()),
            message: o
                .plan
                .held
                .clone()
                .or_else(|| o.plan.message.clone())
                .or_else(|| {
                    (!o.plan.replace.is_empty())
                        .then(|| format!("needs replacement: {}", o.plan.replace.join(", ")))
                }),
            migration: None,
        })
        .collect();
    snapshot.decommission = report
        .decommission
        .instances
        .iter()
        .map(|i| InstanceStatus {
            instance_id: i.plan.instance_id.clone(),
            state: i.plan.state.as_str().to_string(),
            reason: i.plan.why.as_ref().map(ToString::to_string),
            action: i.plan.action.map(|a| a.as_str().to_string()),
            acts_at: i
                .plan
                .acts_at
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            skipped: i.plan.skipped.as_ref().map(ToString::to_string),
            done: i.done.iter().map(|s| s.to_string()).collect(),
            message: i.plan.message.clone(),
            last_error: i
                .error
                .clone()
                .or_else(|| report.decommission.error.clone()),
        })
        .collect();
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecsync::controller::ServiceOutcome;
    use ecsync::plan::ServicePlan;

    fn outcome(name: &str, error: Option<&str>) -> ServiceOutcome {
        ServiceOutcome {
            plan: ServicePlan {
                key: ServiceKey {
                    cluster: "c".into(),
                    name: name.into(),
                },
                source: None,
                exists: true,
                drift: vec![],
                actions: vec![],
                replace: vec![],
                report_only: false,
                held: None,
                error: None,
                message: None,
                rollout: None,
            },
            state: if error.is_some() {
                SyncState::Error
            } else {
                SyncState::Synced
            },
            done: vec![],
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn failing_services_back_off_and_recover() {
        let mut b = ServiceBackoff::default();
        let now = Instant::now();
        let report = PassReport {
            revision: "r".into(),
            services: vec![outcome("bad", Some("AccessDenied")), outcome("good", None)],
            ..Default::default()
        };
        b.record(&report, &BTreeMap::new(), now);
        let waiting = b.waiting(now);
        assert_eq!(waiting.len(), 1);
        let (key, reason) = waiting.iter().next().unwrap();
        assert_eq!(key.name, "bad");
        assert!(reason.contains("AccessDenied"), "{reason}");
        let first = b.next_retry(now).unwrap();
        assert!(
            first >= Duration::from_secs(5) && first <= Duration::from_secs(10),
            "{first:?}"
        );
        // Once the wait is over it is tried again; a second failure waits longer.
        let later = now + first;
        assert!(b.waiting(later).is_empty());
        b.record(&report, &BTreeMap::new(), later);
        assert!(b.next_retry(later).unwrap() >= Duration::from_secs(10));
        // Success clears it.
        let ok = PassReport {
            services: vec![outcome("bad", None)],
            ..report
        };
        b.record(&ok, &BTreeMap::new(), later);
        assert!(b.next_retry(later).is_none());
    }
}
