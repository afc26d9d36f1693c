//! `ecsync run`: the long-running controller. Polls Git (and wakes on the push
//! webhook), runs one pass at a time, serves HTTP, and drains on SIGTERM.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use tokio::sync::{Notify, watch};
use tracing::{Instrument, error, info, info_span, warn};

use backon::BackoffBuilder;
use ecsync::controller::{PassReport, Reconciler};
use ecsync::http::{self, HttpState, WebhookConfig};
use ecsync::leader::{self, Elector, LeaseConfig};
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
/// SIGTERM must end the process well inside a pod's grace period: this bounds the
/// whole shutdown, from the signal to the exit.
const DRAIN_LIMIT: Duration = Duration::from_secs(8);
/// How long a running git fetch or pass may go on after SIGTERM before it is dropped.
/// Dropping it cancels in-flight AWS calls; every step is idempotent and the loop is
/// level-triggered, so the next start picks up where this one stopped.
const PASS_GRACE: Duration = Duration::from_secs(4);

/// `None` while running; the instant SIGTERM/SIGINT arrived once stopping.
type StopRx = watch::Receiver<Option<Instant>>;

/// Runs `work` to completion, unless a stop is requested and `PASS_GRACE` (counted from
/// the signal) passes first.
async fn unless_stopped<T>(stop: &StopRx, work: impl Future<Output = T>) -> Option<T> {
    let mut stop = stop.clone();
    let stopping = async move {
        let signalled = match stop.wait_for(Option::is_some).await {
            Ok(at) => at.unwrap_or_else(Instant::now),
            // No signal handler any more: nothing can ask us to stop.
            Err(_) => std::future::pending().await,
        };
        tokio::time::sleep_until((signalled + PASS_GRACE).into()).await;
    };
    tokio::select! {
        out = work => Some(out),
        () = stopping => None,
    }
}

pub async fn run(args: RunArgs) -> Result<u8> {
    let report_only = args.mode == Mode::Report;
    let metrics = Arc::new(Metrics::new());
    let status: SharedStatus = Arc::new(std::sync::RwLock::new(StatusSnapshot::new(
        if report_only { "report" } else { "auto" },
    )));
    if args.leader.leader_election_table.is_some() {
        // Nobody leads until the lease says so.
        status.write().unwrap_or_else(|e| e.into_inner()).role = "follower".into();
    }
    let ready = Arc::new(AtomicBool::new(false));
    let trigger = Arc::new(Notify::new());
    let webhook = match &args.webhook_secret_file {
        Some(path) => {
            let secret = std::fs::read(path)
                .with_context(|| format!("reading webhook secret {}", path.display()))?;
            let secret = String::from_utf8_lossy(&secret).trim().as_bytes().to_vec();
            if secret.is_empty() {
                // Every delivery would get 401: fail where the operator looks first.
                anyhow::bail!("webhook secret file {} is empty", path.display());
            }
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
    let sdk = ecsync::aws::load_config(args.aws.endpoint_url.as_deref()).await;
    let read_only = Arc::new(AtomicBool::new(report_only));
    let (clients, _counts) =
        commands::clients_with_switch(&sdk, metrics.clone(), read_only.clone());
    let reconciler = Reconciler {
        clients,
        cache: Default::default(),
        metrics: metrics.clone(),
        controller_id: args.aws.controller_id.clone(),
        report_only,
        prune: args.prune.limit(),
        max_decommission_per_pass: args.prune.max_decommission_per_pass,
    };

    let (stop_tx, stop) = watch::channel(None::<Instant>);
    let signal_trigger = trigger.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!(
            grace_ms = PASS_GRACE.as_millis() as u64,
            "shutdown requested: finishing the current pass within the grace period"
        );
        let _ = stop_tx.send(Some(Instant::now()));
        signal_trigger.notify_one();
        // Keep the sender, so receivers never see a closed channel.
        std::future::pending::<()>().await;
    });
    let stopping = || stop.borrow().is_some();

    let (leadership, elector) = match &args.leader.leader_election_table {
        Some(table) => {
            // The lease client is not behind the read-only switch: a follower
            // must be able to write the lease in order to take over.
            let counts = Arc::new(ecsync::interceptor::CallCounts::default());
            let interceptor =
                ecsync::interceptor::ApiCallInterceptor::new(metrics.clone(), counts, false);
            let ddb = aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk)
                    .interceptor(interceptor)
                    .build(),
            );
            let cfg = LeaseConfig {
                table: table.clone(),
                name: args.aws.controller_id.clone(),
                holder: args
                    .leader
                    .lease_holder
                    .clone()
                    .unwrap_or_else(leader::default_holder),
                duration: args.leader.lease_duration,
                renew_deadline: args.leader.lease_renew_deadline,
                retry_period: args.leader.lease_retry_period,
            };
            info!(holder = %cfg.holder, table = %cfg.table, "leader election on");
            let elector = Elector::new(ddb, cfg, read_only.clone(), report_only)?;
            let leadership = elector.leadership();
            (
                Some(leadership),
                Some(tokio::spawn(elector.run({
                    let mut stop = stop.clone();
                    async move {
                        let _ = stop.wait_for(Option::is_some).await;
                    }
                }))),
            )
        }
        None => (None, None),
    };

    let mut last_good: Option<(String, ManifestSet)> = None;
    let mut backoff = ServiceBackoff::default();
    let mut progress_streak: u32 = 0;
    let mut reported_drift: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut exposed: BTreeSet<(String, String)> = BTreeSet::new();
    let mut pass_id: u64 = 0;
    while !stopping() {
        if leadership.as_ref().is_some_and(|l| !l.is_leader()) {
            // Followers serve HTTP and wait; only the lease holder reads Git
            // and acts. Checked again every retry period to take over fast.
            ready.store(true, Ordering::SeqCst);
            status.write().unwrap_or_else(|e| e.into_inner()).role = "follower".into();
            let _ = unless_stopped(&stop, tokio::time::sleep(args.leader.lease_retry_period)).await;
            continue;
        }
        pass_id += 1;
        let started = Instant::now();
        let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();

        let Some(fetched) = unless_stopped(&stop, source.fetch()).await else {
            warn!("shutdown: abandoned the git fetch");
            break;
        };
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
            let pass = tokio::time::timeout(args.pass_timeout, pass);
            let Some(report) = unless_stopped(&stop, pass).await else {
                warn!(
                    pass_id,
                    "shutdown: abandoned the pass after the grace period; the next start resumes it"
                );
                break;
            };
            let report = match report {
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
            record_services(&metrics, &report, &mut exposed);
            log_unapplied_drift(&report, &mut reported_drift);
            if report.error.is_none() {
                ready.store(true, Ordering::SeqCst);
            } else if let Some(e) = &report.error {
                error!(error = %e, "reconcile pass failed");
            }
            let progressing = report
                .services
                .iter()
                .any(|s| s.state == SyncState::Progressing);
            let changed = report
                .services
                .iter()
                .any(|s| !s.done.is_empty() || s.migration.as_ref().is_some_and(|m| m.applied));
            let (streak, wait) = progress_requeue(progressing, changed, progress_streak);
            progress_streak = streak;
            if let Some(wait) = wait {
                requeue = requeue.min(wait);
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
            let mut current = status.write().unwrap_or_else(|e| e.into_inner());
            let mut snapshot = snapshot;
            if let Some(error) = &report.error {
                // Nothing was observed: keep the last known services, marked
                // with why they could not be checked this time.
                snapshot.services = std::mem::take(&mut current.services);
                for service in &mut snapshot.services {
                    service.last_error = Some(error.clone());
                }
            }
            *current = snapshot;
        } else {
            let mut s = status.write().unwrap_or_else(|e| e.into_inner());
            s.git_error = git_error;
        }

        if stopping() {
            break;
        }
        // A webhook or a signal ends the wait early; passes never overlap
        // because the next one starts only from here.
        let _ = tokio::time::timeout(requeue, trigger.notified()).await;
    }

    if let Some(elector) = elector {
        // It sees the stop signal too and releases the lease on its way out.
        let _ = tokio::time::timeout(Duration::from_secs(3), elector).await;
    }
    shutdown.notify_waiters();
    let since_signal = stop.borrow().map(|t| t.elapsed()).unwrap_or_default();
    let left = DRAIN_LIMIT
        .saturating_sub(since_signal)
        .max(Duration::from_millis(500));
    let _ = tokio::time::timeout(left, server).await;
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

/// How soon to look again while something is rolling out: 5 s after a pass
/// that changed something, doubling while a stuck rollout changes nothing —
/// every look re-reads the account and spends the shared ECS read quota.
/// Returns the new streak and the wait (None: nothing is progressing).
fn progress_requeue(progressing: bool, changed: bool, streak: u32) -> (u32, Option<Duration>) {
    if !progressing {
        return (0, None);
    }
    let streak = if changed { 0 } else { streak.saturating_add(1) };
    (
        streak,
        Some(PROGRESS_REQUEUE.saturating_mul(1 << streak.min(6))),
    )
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

/// Drift that this pass found and did not correct (report mode, `ecsync.io/sync: report`)
/// is logged when it first appears or changes, naming the service and the drifted fields.
/// Values are left out: they may be secret environment values.
fn log_unapplied_drift(
    report: &PassReport,
    reported: &mut BTreeMap<(String, String), Vec<String>>,
) {
    let mut now = BTreeMap::new();
    for o in &report.services {
        if o.state != SyncState::OutOfSync || o.plan.drift.is_empty() {
            continue;
        }
        let key = (o.plan.key.cluster.clone(), o.plan.key.name.clone());
        let fields: Vec<String> = o.plan.drift.iter().map(|d| d.path.clone()).collect();
        if reported.get(&key) != Some(&fields) {
            warn!(
                cluster = %key.0,
                service = %key.1,
                drift = ?fields,
                report_only = o.plan.report_only,
                "service is out of sync; not corrected"
            );
        }
        now.insert(key, fields);
    }
    *reported = now;
}

/// Per-service gauges for this pass's services; the series of services no longer declared
/// are dropped (`exposed` remembers which exist), unless the pass failed as a whole and so
/// says nothing about which services exist.
fn record_services(
    metrics: &Metrics,
    report: &PassReport,
    exposed: &mut BTreeSet<(String, String)>,
) {
    if report.error.is_none() {
        let now: BTreeSet<(String, String)> = report
            .services
            .iter()
            .map(|o| (o.plan.key.cluster.clone(), o.plan.key.name.clone()))
            .collect();
        for (cluster, service) in exposed.difference(&now) {
            metrics.remove_service(cluster, service);
        }
        *exposed = now;
    }
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
            // Report-only services show what auto mode would do.
            actions: if o.done.is_empty() && o.plan.report_only {
                o.plan
                    .actions
                    .iter()
                    .map(|a| a.name().to_string())
                    .collect()
            } else {
                o.done.iter().map(|s| s.to_string()).collect()
            },
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
            migration: o.migration.as_ref().map(|m| m.status()),
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
            migration: None,
        }
    }

    #[test]
    fn a_stuck_rollout_is_looked_at_less_and_less_often() {
        assert_eq!(progress_requeue(false, false, 3), (0, None));
        let (s, w) = progress_requeue(true, true, 4);
        assert_eq!((s, w), (0, Some(Duration::from_secs(5))));
        let mut streak = 0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let (s, w) = progress_requeue(true, false, streak);
            streak = s;
            waits.push(w.unwrap().as_secs());
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 320, 320]);
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
