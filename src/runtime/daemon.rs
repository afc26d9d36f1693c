//! `ecsync run`: the long-running controller. Polls Git (and wakes on the push
//! webhook), runs one pass at a time, serves HTTP, and drains on SIGTERM.
//! When to look again is decided by [`crate::core::schedule`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, watch};
use tracing::{Instrument, error, info, info_span, warn};

use crate::adapters::aws::interceptor::{ApiCallInterceptor, CallCounts, ReadOnly};
use crate::adapters::git::GitSource;
use crate::core::changes::{self, ChangeSet, Wake};
use crate::core::manifest::{ManifestSet, ParseCache};
use crate::core::model::ServiceKey;
use crate::core::schedule::{ProgressRequeue, ServiceBackoff, ServiceResult};
use crate::core::state::{Mode, SyncState};
use crate::runtime::http::{self, HttpState, WebhookConfig};
use crate::runtime::leader::{Elector, LeaseConfig, LeaseError};
use crate::runtime::metrics::Metrics;
use crate::runtime::notify::{Notifier, NotifyConfig, NotifyError};
use crate::runtime::reconciler::{PassReport, Reconciler};
use crate::runtime::status::{
    self, CommitStatus, PassKind, PassScope, PassSummary, Role, SharedStatus, StatusSnapshot,
};

/// Everything `ecsync run` is told.
pub struct DaemonConfig {
    pub mode: Mode,
    /// Poll interval (jittered by ±10%).
    pub interval: Duration,
    pub listen: String,
    /// `None`: the push webhook is off.
    pub webhook: Option<WebhookConfig>,
    /// Upper bound on one pass.
    pub pass_timeout: Duration,
    pub controller_id: String,
    /// `Some(max per pass)` with `--prune`.
    pub prune: Option<usize>,
    pub max_decommission_per_pass: usize,
    /// `--path`, for messages.
    pub path: Option<String>,
    /// `Some` with leader election on.
    pub leader: Option<LeaseConfig>,
    /// `--notify-*`; empty: no notifications.
    pub notify: NotifyConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

/// SIGTERM must end the process well inside a pod's grace period: this bounds the
/// whole shutdown, from the signal to the exit.
const DRAIN_LIMIT: Duration = Duration::from_secs(8);
/// How long a running git fetch or pass may go on after SIGTERM before it is dropped.
/// Dropping it cancels in-flight AWS calls; every step is idempotent and the loop is
/// level-triggered, so the next start picks up where this one stopped.
const PASS_GRACE: Duration = Duration::from_secs(4);
/// How long the last pass's notifications may take to go out on shutdown.
const NOTIFY_DRAIN: Duration = Duration::from_secs(2);

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

pub async fn run(
    cfg: DaemonConfig,
    source: GitSource,
    sdk: aws_config::SdkConfig,
) -> Result<(), DaemonError> {
    let metrics = Arc::new(Metrics::new());
    // Under leader election nobody leads until the lease says so.
    let initial_role = if cfg.leader.is_some() {
        Role::Follower
    } else {
        Role::Standalone
    };
    let status: SharedStatus = status::shared(StatusSnapshot::new(cfg.mode, initial_role));
    let ready = Arc::new(AtomicBool::new(false));
    let trigger = Arc::new(Notify::new());
    let webhook = cfg.webhook.map(Arc::new);
    let hook_state = webhook.clone();
    // Before binding: a bad notification setting stops the start-up here.
    let mut notifier = Notifier::start(cfg.notify, &cfg.controller_id, cfg.mode, metrics.clone())?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: cfg.listen.clone(),
            source,
        })?;
    info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving HTTP");
    let http_state = HttpState {
        metrics: metrics.clone(),
        status: status.clone(),
        ready: ready.clone(),
        webhook: hook_state,
        trigger: trigger.clone(),
    };
    let shutdown = Arc::new(Notify::new());
    let http_shutdown = shutdown.clone();
    let server = tokio::spawn(http::serve(listener, http_state, async move {
        http_shutdown.notified().await;
    }));

    let read_only = ReadOnly::new(cfg.mode == Mode::Report);
    let (clients, _counts) = super::clients(&sdk, metrics.clone(), read_only.clone());
    let reconciler = Reconciler {
        clients,
        cache: Default::default(),
        metrics: metrics.clone(),
        controller_id: cfg.controller_id.clone(),
        mode: cfg.mode,
        prune: cfg.prune,
        max_decommission_per_pass: cfg.max_decommission_per_pass,
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

    let retry_period = cfg.leader.as_ref().map(|l| l.retry_period);
    let (leadership, elector) = match cfg.leader {
        Some(lease) => {
            // The lease client is not behind the read-only switch: a follower
            // must be able to write the lease in order to take over.
            let interceptor = ApiCallInterceptor::new(
                metrics.clone(),
                Arc::new(CallCounts::default()),
                ReadOnly::new(false),
            );
            let ddb = aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk)
                    .interceptor(interceptor)
                    .build(),
            );
            info!(holder = %lease.holder, table = %lease.table, "leader election on");
            let elector = Elector::new(ddb, lease, read_only.clone(), cfg.mode == Mode::Report)?;
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

    let mut last_good: Option<(String, Arc<ManifestSet>)> = None;
    // For the dashboard: the last good revision's commit, and why a pass ran.
    let mut last_commit: Option<CommitStatus> = None;
    let mut kind = PassKind::Start;
    let mut backoff = ServiceBackoff::default();
    let mut progress = ProgressRequeue::default();
    // The schedule's clock: monotonic time since the daemon started.
    let epoch = Instant::now();
    let mut reported_drift: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut exposed: BTreeSet<(String, String)> = BTreeSet::new();
    let mut pass_id: u64 = 0;
    // The revision the last completed pass ran on, and its set: a new
    // revision is compared with it to target the next pass.
    let mut applied: Option<(String, Arc<ManifestSet>)> = None;
    // What the passes know of every service, merged across targeted passes.
    let mut known = Known::default();
    let mut follow_up: Option<String> = None;
    // `--interval` after the last full pass, however many targeted ones ran since.
    let mut full_due_at = Instant::now();
    let mut parses = ParseCache::default();
    while !stopping() {
        if leadership.as_ref().is_some_and(|l| !l.is_leader()) {
            // Followers serve HTTP and wait; only the lease holder reads Git
            // and acts. Checked again every retry period to take over fast.
            ready.store(true, Ordering::SeqCst);
            status.write().unwrap_or_else(|e| e.into_inner()).role = Role::Follower;
            kind = PassKind::Start;
            // Another replica may have acted meanwhile: lead again from a full pass.
            applied = None;
            let wait = retry_period.unwrap_or(Duration::from_secs(1));
            let _ = unless_stopped(&stop, tokio::time::sleep(wait)).await;
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
                if let Some(hook) = webhook.as_ref().filter(|h| h.branch.is_none()) {
                    watch_default_branch(hook, &source).await;
                }
                match super::desired::load_snapshot_cached(
                    &snapshot,
                    cfg.path.as_deref(),
                    &mut parses,
                ) {
                    Ok(set) => {
                        let new = last_good
                            .as_ref()
                            .is_none_or(|(r, _)| *r != snapshot.revision);
                        if new {
                            for w in &set.warnings {
                                warn!(revision = %snapshot.revision, "manifest: {w}");
                            }
                        }
                        last_good = Some((snapshot.revision.clone(), Arc::new(set)));
                        last_commit = snapshot.commit.as_ref().map(CommitStatus::from);
                        None
                    }
                    Err(e) => Some(e.to_string()),
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

        let mut requeue: Duration;
        if let Some((revision, set)) = &last_good {
            metrics.set_git_revision(revision);
            let now = epoch.elapsed();
            let pending: BTreeSet<ServiceKey> = known
                .in_progress
                .iter()
                .chain(backoff.due(now))
                .cloned()
                .collect();
            let decided = changes::decide(&Wake {
                applied: applied.as_ref().map(|(r, s)| (r.as_str(), &**s)),
                revision,
                set,
                full_due: matches!(kind, PassKind::Start | PassKind::Poll)
                    || Instant::now() >= full_due_at,
                follow_up: follow_up.as_deref(),
                pending: &pending,
            });
            let (scope, full_reason) = match &decided {
                ChangeSet::Targeted { .. } => (PassScope::Targeted, None),
                ChangeSet::Full { reason } => (PassScope::Full, Some(reason.to_string())),
            };
            let span = info_span!(
                "reconcile",
                pass_id,
                revision = %revision,
                scope = scope.as_str()
            );
            let backing_off = backoff.waiting(now);
            let pass = async {
                match &decided {
                    ChangeSet::Targeted { services } => {
                        reconciler
                            .pass_targeted(revision, set, &backing_off, services)
                            .await
                    }
                    ChangeSet::Full { .. } => reconciler.pass(revision, set, &backing_off).await,
                }
            }
            .instrument(span);
            let pass = tokio::time::timeout(cfg.pass_timeout, pass);
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
                    error: Some(format!("pass exceeded {:?}", cfg.pass_timeout)),
                    targeted: match &decided {
                        ChangeSet::Targeted { services } => Some(services.clone()),
                        ChangeSet::Full { .. } => None,
                    },
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
            metrics.observe_reconcile(result, scope.as_str(), elapsed.as_secs_f64());
            known.fold(&report);
            record_services(&metrics, &report, &mut exposed, &known);
            log_unapplied_drift(&report, &mut reported_drift);
            // Only queues: delivery happens on the notifier's own tasks.
            if let Some(n) = notifier.as_mut() {
                n.after_pass(&report, git_error.as_deref(), SystemTime::now());
            }
            if report.error.is_none() {
                ready.store(true, Ordering::SeqCst);
            } else if let Some(e) = &report.error {
                error!(error = %e, "reconcile pass failed");
            }
            if report.error.is_none() {
                if applied.as_ref().is_none_or(|(r, _)| r != revision) {
                    applied = Some((revision.clone(), set.clone()));
                }
                follow_up = report.follow_up.clone();
                if let Some(why) = &follow_up {
                    info!(pass_id, reason = %why, "a full pass follows this targeted pass");
                }
            }
            if scope == PassScope::Full {
                full_due_at = Instant::now() + jittered(cfg.interval);
            }
            let until_full = full_due_at.saturating_duration_since(Instant::now());
            requeue = until_full;
            if follow_up.is_some() {
                requeue = Duration::ZERO;
            }
            // Every service known to be rolling out, not only those this pass saw.
            let progressing = !known.in_progress.is_empty();
            let changed = report.services.iter().any(|s| s.changed());
            if let Some(wait) = progress.after_pass(progressing, changed) {
                requeue = requeue.min(wait);
            }
            // Those skipped while backing off keep their schedule.
            let results = report
                .services
                .iter()
                .filter(|o| !backing_off.contains_key(&o.plan.key))
                .map(|o| ServiceResult {
                    key: &o.plan.key,
                    error: o.error.as_deref().filter(|_| o.state == SyncState::Error),
                });
            let now = epoch.elapsed();
            backoff.record(results, now);
            if let Some(next) = backoff.next_retry(now) {
                requeue = requeue.min(next);
            }
            info!(
                pass_id,
                result,
                scope = scope.as_str(),
                services = report.services.len(),
                reason = full_reason.as_deref().unwrap_or(""),
                elapsed_ms = elapsed.as_millis() as u64,
                "pass finished"
            );
            let snapshot = status::snapshot(
                &report,
                set,
                git_error.clone(),
                PassSummary {
                    pass_id,
                    started_at,
                    duration_ms: elapsed.as_millis() as u64,
                    result: result.to_string(),
                    kind,
                    scope,
                    services: report.targeted.as_ref().map(BTreeSet::len),
                    reason: full_reason,
                },
                cfg.mode,
                match &leadership {
                    Some(l) => (Role::Leader, Some(l.token())),
                    None => (Role::Standalone, None),
                },
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
            snapshot.commit = last_commit.clone();
            snapshot.keep_history(&current);
            if report.targeted.is_some() {
                snapshot.keep_untargeted(&current);
            }
            *current = snapshot;
        } else {
            let mut s = status.write().unwrap_or_else(|e| e.into_inner());
            s.git_error = git_error;
            full_due_at = Instant::now() + jittered(cfg.interval);
            requeue = full_due_at.saturating_duration_since(Instant::now());
        }

        if stopping() {
            break;
        }
        // A webhook or a signal ends the wait early; passes never overlap
        // because the next one starts only from here.
        let until_full = full_due_at.saturating_duration_since(Instant::now());
        kind = match tokio::time::timeout(requeue, trigger.notified()).await {
            Ok(()) => PassKind::Webhook,
            Err(_) if requeue < until_full => PassKind::Requeue,
            Err(_) => PassKind::Poll,
        };
    }

    if let Some(elector) = elector {
        // It sees the stop signal too and releases the lease on its way out.
        let _ = tokio::time::timeout(Duration::from_secs(3), elector).await;
    }
    if let Some(n) = notifier {
        let since_signal = stop.borrow().map(|t| t.elapsed()).unwrap_or_default();
        let left = DRAIN_LIMIT.saturating_sub(since_signal + Duration::from_secs(1));
        n.drain(NOTIFY_DRAIN.min(left)).await;
    }
    shutdown.notify_waiters();
    let since_signal = stop.borrow().map(|t| t.elapsed()).unwrap_or_default();
    let left = DRAIN_LIMIT
        .saturating_sub(since_signal)
        .max(Duration::from_millis(500));
    let _ = tokio::time::timeout(left, server).await;
    info!("stopped");
    Ok(())
}

/// Without `--ref`, pushes count only for the remote HEAD's branch: learn it
/// once (asked again after each fetch until known).
async fn watch_default_branch(hook: &WebhookConfig, source: &GitSource) {
    if hook.default_branch.get().is_some() {
        return;
    }
    match source.default_branch().await {
        Ok(Some(branch)) => {
            info!(%branch, "webhook: watching the remote's default branch");
            let _ = hook.default_branch.set(branch);
        }
        Ok(None) => warn!("webhook: the remote HEAD names no branch; every push starts a pass"),
        Err(e) => warn!(error = %e, "webhook: could not read the remote's default branch"),
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
    match &report.targeted {
        None => *reported = now,
        // The services it did not look at drift (or not) as before.
        Some(looked) => {
            if report.error.is_none() {
                reported.retain(|(cluster, name), _| {
                    !looked.contains(&ServiceKey {
                        cluster: cluster.clone(),
                        name: name.clone(),
                    })
                });
                reported.extend(now);
            }
        }
    }
}

/// What the passes know of every service, merged across passes: a targeted
/// report covers its services only, and says nothing about the others.
#[derive(Default)]
struct Known {
    states: BTreeMap<ServiceKey, SyncState>,
    /// Services rolling out: the progress requeue looks at these.
    in_progress: BTreeSet<ServiceKey>,
}

impl Known {
    fn fold(&mut self, report: &PassReport) {
        if report.error.is_some() {
            return;
        }
        if report.targeted.is_none() {
            self.states.clear();
        }
        for o in &report.services {
            self.states.insert(o.plan.key.clone(), o.state);
        }
        self.in_progress = self
            .states
            .iter()
            .filter(|(_, s)| **s == SyncState::Progressing)
            .map(|(k, _)| k.clone())
            .collect();
    }
}

/// Per-service gauges for this pass's services; the series of services no longer declared
/// are dropped (`exposed` remembers which exist), unless the pass failed as a whole and so
/// says nothing about which services exist, or was targeted and so saw only some of them.
/// The state counts are of every service `known`.
fn record_services(
    metrics: &Metrics,
    report: &PassReport,
    exposed: &mut BTreeSet<(String, String)>,
    known: &Known,
) {
    if report.error.is_none() {
        let now: BTreeSet<(String, String)> = report
            .services
            .iter()
            .map(|o| (o.plan.key.cluster.clone(), o.plan.key.name.clone()))
            .collect();
        if report.targeted.is_some() {
            exposed.extend(now);
        } else {
            for (cluster, service) in exposed.difference(&now) {
                metrics.remove_service(cluster, service);
            }
            *exposed = now;
        }
    }
    let states: Vec<SyncState> = match (&report.error, &report.targeted) {
        (None, _) => known.states.values().copied().collect(),
        (Some(_), None) => report.services.iter().map(|o| o.state).collect(),
        // A targeted pass that failed: the counts stay as they were.
        (Some(_), Some(_)) => return,
    };
    let mut counts = SyncState::ALL.map(|s| (s, 0i64));
    for state in states {
        if let Some(c) = counts.iter_mut().find(|(s, _)| *s == state) {
            c.1 += 1;
        }
    }
    for o in &report.services {
        metrics.set_service_drift(
            &o.plan.key.cluster,
            &o.plan.key.name,
            o.plan.drift.len() as i64,
        );
    }
    metrics.set_service_states(&counts);
    // A pass that did not look at schedules leaves their counts as they were.
    if report.scheduled.error.is_none() && report.targeted.is_none() {
        let mut counts = SyncState::ALL.map(|s| (s, 0i64));
        for t in &report.scheduled.tasks {
            if let Some(c) = counts.iter_mut().find(|(s, _)| *s == t.state) {
                c.1 += 1;
            }
        }
        metrics.set_scheduled_task_states(&counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diff::FieldDiff;
    use crate::core::plan::ServicePlan;
    use crate::runtime::reconciler::ServiceOutcome;

    fn key(name: &str) -> ServiceKey {
        ServiceKey {
            cluster: "c".into(),
            name: name.into(),
        }
    }

    /// A service that ends the pass `state`: out of sync on `image` (report only),
    /// rolling out, or in sync.
    fn outcome(name: &str, state: SyncState) -> ServiceOutcome {
        let drift = match state {
            SyncState::OutOfSync => vec![FieldDiff {
                path: "image".into(),
                desired: "a".into(),
                live: "b".into(),
            }],
            _ => Vec::new(),
        };
        let plan = ServicePlan {
            key: key(name),
            source: None,
            exists: true,
            drift,
            actions: Vec::new(),
            replace: Vec::new(),
            report_only: true,
            held: None,
            waiting: None,
            error: None,
            message: None,
            rollout: None,
            ignored: Vec::new(),
            effective: None,
        };
        let mut o = ServiceOutcome::new(plan, None, Ok(()));
        o.state = state;
        o
    }

    fn report(services: Vec<ServiceOutcome>, targeted: bool) -> PassReport {
        PassReport {
            targeted: targeted.then(|| services.iter().map(|o| o.plan.key.clone()).collect()),
            services,
            ..Default::default()
        }
    }

    #[test]
    fn a_targeted_report_updates_only_its_services() {
        let mut known = Known::default();
        let mut drift = BTreeMap::new();
        let full = report(
            vec![
                outcome("a", SyncState::Progressing),
                outcome("b", SyncState::OutOfSync),
                outcome("c", SyncState::Synced),
            ],
            false,
        );
        known.fold(&full);
        log_unapplied_drift(&full, &mut drift);
        assert_eq!(known.in_progress, [key("a")].into());
        assert_eq!(drift.len(), 1);

        // Only c looked at: a is still rolling out, b still drifted (and not logged again).
        let targeted = report(vec![outcome("c", SyncState::OutOfSync)], true);
        known.fold(&targeted);
        log_unapplied_drift(&targeted, &mut drift);
        assert_eq!(known.in_progress, [key("a")].into());
        assert_eq!(known.states.len(), 3);
        assert_eq!(known.states[&key("c")], SyncState::OutOfSync);
        let drifted: Vec<&str> = drift.keys().map(|(_, n)| n.as_str()).collect();
        assert_eq!(drifted, ["b", "c"]);

        // A targeted look at a and b that finds them settled.
        let targeted = report(
            vec![
                outcome("a", SyncState::Synced),
                outcome("b", SyncState::Synced),
            ],
            true,
        );
        known.fold(&targeted);
        log_unapplied_drift(&targeted, &mut drift);
        assert!(known.in_progress.is_empty());
        let drifted: Vec<&str> = drift.keys().map(|(_, n)| n.as_str()).collect();
        assert_eq!(drifted, ["c"]);

        // A full report replaces everything; a failed one changes nothing.
        let full = report(vec![outcome("a", SyncState::Synced)], false);
        known.fold(&full);
        log_unapplied_drift(&full, &mut drift);
        assert_eq!(known.states.len(), 1);
        assert!(drift.is_empty());
        let failed = PassReport {
            error: Some("throttled".into()),
            targeted: Some([key("a")].into()),
            ..Default::default()
        };
        known.fold(&failed);
        log_unapplied_drift(&failed, &mut drift);
        assert_eq!(known.states.len(), 1);
    }

    #[test]
    fn a_targeted_report_keeps_the_series_of_the_others() {
        let metrics = Metrics::new();
        let mut exposed = BTreeSet::new();
        let mut known = Known::default();
        let full = report(
            vec![
                outcome("a", SyncState::Synced),
                outcome("b", SyncState::Synced),
            ],
            false,
        );
        known.fold(&full);
        record_services(&metrics, &full, &mut exposed, &known);
        let targeted = report(vec![outcome("a", SyncState::Progressing)], true);
        known.fold(&targeted);
        record_services(&metrics, &targeted, &mut exposed, &known);
        let text = metrics.encode().unwrap_or_default();
        assert!(
            text.contains("ecsync_service_drift{cluster=\"c\",service=\"b\"}"),
            "{text}"
        );
        assert!(
            text.contains("ecsync_services{state=\"Synced\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ecsync_services{state=\"Progressing\"} 1"),
            "{text}"
        );
        // A full report without b drops its series.
        let full = report(vec![outcome("a", SyncState::Synced)], false);
        known.fold(&full);
        record_services(&metrics, &full, &mut exposed, &known);
        let text = metrics.encode().unwrap_or_default();
        assert!(!text.contains("service=\"b\""), "{text}");
    }
}
