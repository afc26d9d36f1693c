//! Every metric of DESIGN §7, registered once and encoded on scrape.
//!
//! Label values are always from fixed sets or manifest names (cluster, service, gate); callers
//! must never pass error text, which would make the series set unbounded.
//!
//! Counters are registered without `_total`: prometheus-client appends it, so the exposed names
//! are exactly the §7 names.

use std::collections::BTreeSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::adapters::aws::interceptor::{CallObserver, CallResult};
use crate::core::state::SyncState;

/// `Content-Type` of [`Metrics::encode`] output (Prometheus text format 0.0.4).
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// `Content-Type` of [`Metrics::encode_openmetrics`] output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Results of a reconcile pass.
pub const RECONCILE_RESULTS: [&str; 3] = ["ok", "error", "partial"];
/// How much a reconcile pass looked at (`PassScope`).
pub const RECONCILE_SCOPES: [&str; 2] = ["full", "targeted"];
/// Results of a git fetch.
pub const GIT_FETCH_RESULTS: [&str; 2] = ["ok", "error"];
/// Outcomes of `POST /hooks/git`.
pub const WEBHOOK_RESULTS: [&str; 6] = [
    "accepted",
    "ignored",
    "unauthorized",
    "too_large",
    "disabled",
    "bad_request",
];

/// How a pre-deploy hook run ended (`ecsync_hook_runs_total{result}`).
pub const HOOK_RESULTS: [&str; 3] = ["succeeded", "failed", "timed_out"];

/// Reconcile passes range from a sub-second no-op to minutes of waiting on rollouts.
const RECONCILE_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    result: String,
    scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ServiceLabels {
    cluster: String,
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct GateLabels {
    cluster: String,
    service: String,
    gate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabel {
    revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsCallLabels {
    service: String,
    operation: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    sink: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecommissionLabel {
    action: String,
}

#[derive(Debug, thiserror::Error)]
#[error("encoding metrics failed")]
pub struct EncodeError(#[from] std::fmt::Error);

fn result(r: &str) -> ResultLabel {
    ResultLabel {
        result: r.to_owned(),
    }
}

fn svc(cluster: &str, service: &str) -> ServiceLabels {
    ServiceLabels {
        cluster: cluster.to_owned(),
        service: service.to_owned(),
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconcile_duration: HistogramFamily<ReconcileLabels>,
    reconcile_total: Family<ReconcileLabels, Counter>,
    services: Family<StateLabel, Gauge>,
    scheduled_tasks: Family<StateLabel, Gauge>,
    service_drift: Family<ServiceLabels, Gauge>,
    git_revision: Family<RevisionLabel, Gauge>,
    /// The label set currently exposed by `git_revision`, so the previous one can be removed.
    current_revision: Mutex<Option<String>>,
    git_fetch: Family<ResultLabel, Counter>,
    aws_calls: Family<AwsCallLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    migration_percent: Family<ServiceLabels, Gauge>,
    gate_failures: Family<GateLabels, Counter>,
    /// Gate label sets seen per service; `Family` cannot be filtered, and a deleted service must
    /// take its gate series with it.
    gate_series: Mutex<BTreeSet<GateLabels>>,
    decommission: Family<DecommissionLabel, Counter>,
    ec2_orphans: Family<StateLabel, Gauge>,
    webhook: Family<ResultLabel, Counter>,
    notifications: Family<NotificationLabels, Counter>,
    hook_runs: Family<ResultLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();

        let reconcile_duration: HistogramFamily<ReconcileLabels> =
            Family::new_with_constructor(|| Histogram::new(RECONCILE_BUCKETS));
        registry.register_with_unit(
            "ecsync_reconcile_duration",
            "Duration of a reconcile pass, by result and scope",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let reconcile_total = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "ecsync_reconcile",
            "Reconcile passes, by result and scope",
            reconcile_total.clone(),
        );
        let services = Family::<StateLabel, Gauge>::default();
        registry.register(
            "ecsync_services",
            "Managed services, by sync state",
            services.clone(),
        );
        let scheduled_tasks = Family::<StateLabel, Gauge>::default();
        registry.register(
            "ecsync_scheduled_tasks",
            "Scheduled tasks (EventBridge Scheduler schedules), by sync state",
            scheduled_tasks.clone(),
        );
        let service_drift = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "ecsync_service_drift",
            "Number of drifted fields per service",
            service_drift.clone(),
        );
        let git_revision = Family::<RevisionLabel, Gauge>::default();
        registry.register(
            "ecsync_git_revision_info",
            "The Git revision of the manifests last read (value is always 1)",
            git_revision.clone(),
        );
        let git_fetch = Family::<ResultLabel, Counter>::default();
        registry.register(
            "ecsync_git_fetch",
            "Git fetches, by result",
            git_fetch.clone(),
        );
        let aws_calls = Family::<AwsCallLabels, Counter>::default();
        registry.register(
            "ecsync_aws_api_calls",
            "AWS API call attempts (retries included), by service, operation and result",
            aws_calls.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "ecsync_actions",
            "Plan actions executed, by action and result",
            actions.clone(),
        );
        let migration_percent = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "ecsync_migration_traffic_percent",
            "Percent of traffic on the ECS target group of a migrating service",
            migration_percent.clone(),
        );
        let gate_failures = Family::<GateLabels, Counter>::default();
        registry.register(
            "ecsync_migration_gate_failures",
            "Migration health gate failures, by service and gate",
            gate_failures.clone(),
        );
        let decommission = Family::<DecommissionLabel, Counter>::default();
        registry.register(
            "ecsync_ec2_decommission",
            "EC2 decommission actions taken, by action",
            decommission.clone(),
        );
        let ec2_orphans = Family::<StateLabel, Gauge>::default();
        registry.register(
            "ecsync_ec2_orphans",
            "EC2 instances of migrated fleets awaiting or skipped for decommission, by state",
            ec2_orphans.clone(),
        );
        let webhook = Family::<ResultLabel, Counter>::default();
        registry.register(
            "ecsync_webhook_requests",
            "Requests to POST /hooks/git, by result",
            webhook.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "ecsync_notifications",
            "Notifications, by sink and result (sent, failed after retries, dropped from a full queue)",
            notifications.clone(),
        );
        let hook_runs = Family::<ResultLabel, Counter>::default();
        registry.register(
            "ecsync_hook_runs",
            "Pre-deploy hook runs that ended, by result",
            hook_runs.clone(),
        );

        // Series of known label values exist from the start, so `rate()` and absent-alerts work
        // before the first event of each kind. Families whose label values are open (services,
        // operations, orphan states) appear with their first sample: prometheus-client does not
        // announce a family that has no series.
        for r in RECONCILE_RESULTS {
            for scope in RECONCILE_SCOPES {
                let labels = ReconcileLabels {
                    result: r.to_owned(),
                    scope: scope.to_owned(),
                };
                let _ = reconcile_total.get_or_create_owned(&labels);
                let _ = reconcile_duration.get_or_create_owned(&labels);
            }
        }
        for state in SyncState::ALL {
            let _ = services.get_or_create_owned(&StateLabel {
                state: state.as_str().to_owned(),
            });
            let _ = scheduled_tasks.get_or_create_owned(&StateLabel {
                state: state.as_str().to_owned(),
            });
        }
        for r in GIT_FETCH_RESULTS {
            let _ = git_fetch.get_or_create_owned(&result(r));
        }
        for r in WEBHOOK_RESULTS {
            let _ = webhook.get_or_create_owned(&result(r));
        }
        for r in HOOK_RESULTS {
            let _ = hook_runs.get_or_create_owned(&result(r));
        }
        for sink in crate::runtime::notify::SINKS {
            for r in crate::runtime::notify::RESULTS {
                let _ = notifications.get_or_create_owned(&NotificationLabels {
                    sink: sink.to_owned(),
                    result: r.to_owned(),
                });
            }
        }
        // The two decommission actions are a fixed set: a zero is a true count.
        for action in ["stop", "terminate"] {
            let _ = decommission.get_or_create_owned(&DecommissionLabel {
                action: action.to_owned(),
            });
        }

        Metrics {
            registry,
            reconcile_duration,
            reconcile_total,
            services,
            scheduled_tasks,
            service_drift,
            git_revision,
            current_revision: Mutex::new(None),
            git_fetch,
            aws_calls,
            actions,
            migration_percent,
            gate_failures,
            gate_series: Mutex::new(BTreeSet::new()),
            decommission,
            ec2_orphans,
            webhook,
            notifications,
            hook_runs,
        }
    }

    /// The Prometheus text format 0.0.4 (serve with [`PROMETHEUS_TEXT_CONTENT_TYPE`]).
    ///
    /// This is the default exposition because it is what DESIGN §6 promises and what
    /// `promtool check metrics` parses: promtool reads OpenMetrics counters (`# TYPE x counter`
    /// with samples `x_total`) as two mismatched families and rejects them.
    pub fn encode(&self) -> Result<String, EncodeError> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The OpenMetrics 1.0 exposition (serve with [`OPENMETRICS_CONTENT_TYPE`]), for scrapers
    /// that ask for it; same series as [`Metrics::encode`].
    pub fn encode_openmetrics(&self) -> Result<String, EncodeError> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// One finished reconcile pass; `result` is one of [`RECONCILE_RESULTS`],
    /// `scope` one of [`RECONCILE_SCOPES`].
    pub fn observe_reconcile(&self, result: &str, scope: &str, seconds: f64) {
        let label = ReconcileLabels {
            result: result.to_owned(),
            scope: scope.to_owned(),
        };
        self.reconcile_duration
            .get_or_create(&label)
            .observe(seconds);
        self.reconcile_total.get_or_create(&label).inc();
    }

    pub fn set_services(&self, state: &str, n: i64) {
        self.services
            .get_or_create(&StateLabel {
                state: state.to_owned(),
            })
            .set(n);
    }

    /// Sets all six states; a state missing from `counts` is set to zero, so a state nobody is
    /// in any more does not keep its old count.
    pub fn set_service_states(&self, counts: &[(SyncState, i64)]) {
        for state in SyncState::ALL {
            let n = counts
                .iter()
                .filter(|(s, _)| *s == state)
                .map(|(_, n)| *n)
                .sum();
            self.set_services(state.as_str(), n);
        }
    }

    /// Every state of `ecsync_scheduled_tasks`; one missing from `counts` is zero.
    pub fn set_scheduled_task_states(&self, counts: &[(SyncState, i64)]) {
        for state in SyncState::ALL {
            let n = counts
                .iter()
                .filter(|(s, _)| *s == state)
                .map(|(_, n)| *n)
                .sum();
            self.scheduled_tasks
                .get_or_create(&StateLabel {
                    state: state.as_str().to_owned(),
                })
                .set(n);
        }
    }

    pub fn set_service_drift(&self, cluster: &str, service: &str, fields: i64) {
        self.service_drift
            .get_or_create(&svc(cluster, service))
            .set(fields);
    }

    /// Drops every per-service series of a service that no longer exists.
    pub fn remove_service(&self, cluster: &str, service: &str) {
        let labels = svc(cluster, service);
        self.service_drift.remove(&labels);
        self.migration_percent.remove(&labels);
        let mut gates = self.gate_series.lock().unwrap_or_else(|e| e.into_inner());
        gates.retain(|g| {
            let keep = !(g.cluster == cluster && g.service == service);
            if !keep {
                self.gate_failures.remove(g);
            }
            keep
        });
    }

    /// Exposes `rev` as the only `ecsync_git_revision_info` series.
    pub fn set_git_revision(&self, rev: &str) {
        let mut current = self
            .current_revision
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(old) = current.as_deref()
            && old != rev
        {
            self.git_revision.remove(&RevisionLabel {
                revision: old.to_owned(),
            });
        }
        self.git_revision
            .get_or_create(&RevisionLabel {
                revision: rev.to_owned(),
            })
            .set(1);
        *current = Some(rev.to_owned());
    }

    pub fn git_fetch(&self, result_: &str) {
        self.git_fetch.get_or_create(&result(result_)).inc();
    }

    /// One AWS API attempt; `result` is `ok`, `throttled` or `error`.
    pub fn aws_call(&self, service: &str, operation: &str, result_: &str) {
        self.aws_calls
            .get_or_create(&AwsCallLabels {
                service: service.to_owned(),
                operation: operation.to_owned(),
                result: result_.to_owned(),
            })
            .inc();
    }

    pub fn action(&self, action: &str, result_: &str) {
        self.actions
            .get_or_create(&ActionLabels {
                action: action.to_owned(),
                result: result_.to_owned(),
            })
            .inc();
    }

    pub fn set_migration_percent(&self, cluster: &str, service: &str, pct: i64) {
        self.migration_percent
            .get_or_create(&svc(cluster, service))
            .set(pct);
    }

    pub fn migration_gate_failure(&self, cluster: &str, service: &str, gate: &str) {
        let labels = GateLabels {
            cluster: cluster.to_owned(),
            service: service.to_owned(),
            gate: gate.to_owned(),
        };
        self.gate_failures.get_or_create(&labels).inc();
        self.gate_series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(labels);
    }

    pub fn decommission(&self, action: &str) {
        self.decommission
            .get_or_create(&DecommissionLabel {
                action: action.to_owned(),
            })
            .inc();
    }

    pub fn set_ec2_orphans(&self, state: &str, n: i64) {
        self.ec2_orphans
            .get_or_create(&StateLabel {
                state: state.to_owned(),
            })
            .set(n);
    }

    /// One request to `POST /hooks/git`; `result` is one of [`WEBHOOK_RESULTS`].
    pub fn webhook(&self, result_: &str) {
        self.webhook.get_or_create(&result(result_)).inc();
    }

    /// One pre-deploy hook run that ended; `result` is one of [`HOOK_RESULTS`].
    pub fn hook_run(&self, result_: &str) {
        self.hook_runs.get_or_create(&result(result_)).inc();
    }

    /// One notification; `sink` and `result` from [`crate::runtime::notify::SINKS`] and
    /// [`crate::runtime::notify::RESULTS`].
    pub fn notification(&self, sink: &str, result_: &str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                sink: sink.to_owned(),
                result: result_.to_owned(),
            })
            .inc();
    }
}

/// DESIGN §7: the metric names users and dashboards rely on (a contract).
impl CallObserver for Metrics {
    fn observe(&self, service: &str, operation: &str, result: CallResult) {
        self.aws_call(service, operation, result.as_str());
    }
}

pub const DESIGN_METRIC_NAMES: [&str; 15] = [
    "ecsync_reconcile_duration_seconds",
    "ecsync_reconcile_total",
    "ecsync_services",
    "ecsync_service_drift",
    "ecsync_git_revision_info",
    "ecsync_git_fetch_total",
    "ecsync_aws_api_calls_total",
    "ecsync_actions_total",
    "ecsync_migration_traffic_percent",
    "ecsync_ec2_decommission_total",
    "ecsync_ec2_orphans",
    "ecsync_webhook_requests_total",
    "ecsync_notifications_total",
    "ecsync_hook_runs_total",
    "ecsync_scheduled_tasks",
];

/// Families exposed beyond §7.
pub const EXTRA_NAMES: [&str; 1] = ["ecsync_migration_gate_failures_total"];

#[cfg(test)]
mod tests;
