//! One reconcile pass: observe, plan, apply, report. Shared by `ecsync apply`
//! (one pass) and `ecsync run` (a pass per trigger).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::task::JoinSet;
use tracing::{Instrument, info_span, warn};

use crate::aws::apply::{Applied, ApplyContext, apply_service, prune_service};
use crate::aws::ec2::{DecommissionReport, DecommissionSettings, decommission_pass};
use crate::aws::observe::{Scope, TaskDefinitionCache, observe};
use crate::aws::{AwsError, Clients};
use crate::manifest::{DesiredService, ManifestSet};
use crate::metrics::Metrics;
use crate::model::ServiceKey;
use crate::plan::{PlanContext, ServicePlan, plan_all};
use crate::status::SyncState;

/// Services updated at once: bounded so a large commit does not burst past
/// ECS's mutating-call rate limits.
const APPLY_CONCURRENCY: usize = 4;

pub struct Reconciler {
    pub clients: Clients,
    pub cache: TaskDefinitionCache,
    pub metrics: Arc<Metrics>,
    pub controller_id: String,
    /// `--mode report`: detect and report, change nothing.
    pub report_only: bool,
    /// `Some(max per pass)` with `--prune`.
    pub prune: Option<usize>,
    /// `--max-decommission-per-pass`: EC2 instances stopped or terminated per pass.
    pub max_decommission_per_pass: usize,
}

#[derive(Debug, Clone)]
pub struct ServiceOutcome {
    pub plan: ServicePlan,
    pub state: SyncState,
    pub done: Vec<&'static str>,
    pub error: Option<String>,
    /// The service's traffic migration this pass, when its manifest has one.
    pub migration: Option<crate::aws::migrate::MigrationReport>,
}

#[derive(Debug, Default)]
pub struct PassReport {
    pub revision: String,
    pub services: Vec<ServiceOutcome>,
    /// Observation failed as a whole (e.g. credentials): nothing was planned.
    pub error: Option<String>,
    /// EC2 instances pending decommission and what this pass did about them.
    pub decommission: DecommissionReport,
}

impl PassReport {
    pub fn has_errors(&self) -> bool {
        self.error.is_some()
            || self.services.iter().any(|s| s.state == SyncState::Error)
            || self.decommission.has_errors()
    }
    pub fn drifted(&self) -> impl Iterator<Item = &ServiceOutcome> {
        self.services
            .iter()
            .filter(|s| !s.plan.in_sync() && s.plan.held.is_none())
    }
}

impl Reconciler {
    /// Observe and plan every service in `set`; apply the plans unless `dry_run`.
    /// Services in `backing_off` are observed and reported but not acted on:
    /// a failing service must not hold the others back, nor be hammered.
    pub async fn pass(
        &self,
        revision: &str,
        set: &ManifestSet,
        dry_run: bool,
        backing_off: &BTreeMap<ServiceKey, String>,
    ) -> PassReport {
        let mut report = PassReport {
            revision: revision.to_string(),
            ..Default::default()
        };
        let clusters: BTreeSet<String> = set
            .services
            .iter()
            .map(|d| d.key.cluster.clone())
            .chain(set.held.iter().map(|k| k.cluster.clone()))
            .collect();
        let scope = Scope {
            clusters,
            // Pruning must also see clusters whose last manifest was removed.
            all_clusters: self.prune.is_some(),
            desired: &set.services,
        };
        let observed = match observe(&self.clients, &scope, &self.cache).await {
            Ok(o) => o,
            Err(e) => {
                report.error = Some(e.to_string());
                return report;
            }
        };
        let ctx = PlanContext {
            controller_id: &self.controller_id,
            revision,
            report_only: self.report_only,
            prune: self.prune,
        };
        let plans = plan_all(set, &observed, &ctx);
        let desired: BTreeMap<&ServiceKey, &DesiredService> =
            set.services.iter().map(|d| (&d.key, d)).collect();

        let semaphore = Arc::new(tokio::sync::Semaphore::new(APPLY_CONCURRENCY));
        let target_groups = Arc::new(observed.target_groups.clone());
        let mut tasks = JoinSet::new();
        for plan in plans {
            let runnable = !dry_run
                && !plan.report_only
                && plan.held.is_none()
                && plan.error.is_none()
                && plan.is_mutating();
            if !runnable {
                report.services.push(outcome(plan, None, Ok(())));
                continue;
            }
            if let Some(reason) = backing_off.get(&plan.key) {
                let mut o = outcome(plan, None, Ok(()));
                o.state = SyncState::Error;
                o.error = Some(reason.clone());
                report.services.push(o);
                continue;
            }
            // None for a service that is being pruned: Git no longer declares it.
            let d = desired.get(&plan.key).map(|d| (*d).clone());
            let live_arn = observed
                .services
                .get(&plan.key)
                .filter(|l| l.is_active())
                .map(|l| l.arn.clone());
            let clients = self.clients.clone();
            let metrics = self.metrics.clone();
            let semaphore = semaphore.clone();
            let target_groups = target_groups.clone();
            let controller_id = self.controller_id.clone();
            let revision = revision.to_string();
            let span = info_span!("service", cluster = %plan.key.cluster, service = %plan.key.name);
            tasks.spawn(
                async move {
                    let _permit = semaphore.acquire_owned().await;
                    let ctx = ApplyContext {
                        controller_id: &controller_id,
                        revision: &revision,
                        target_groups: &target_groups,
                    };
                    let mut applied = Applied::default();
                    let result = match &d {
                        Some(d) => {
                            let arn = live_arn.as_deref();
                            apply_service(&clients, d, &plan, arn, &ctx, &mut applied).await
                        }
                        None => prune_service(&clients, &plan, &mut applied).await,
                    };
                    for action in &applied.done {
                        metrics.action(action, "ok");
                    }
                    if let Err(e) = &result {
                        if let Some(next) = plan.actions.get(applied.done.len()) {
                            metrics.action(next.name(), "error");
                        }
                        warn!(error = %e, "apply failed");
                    }
                    outcome(plan, Some(applied), result)
                }
                .instrument(span),
            );
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(o) => report.services.push(o),
                Err(e) => report.error = Some(format!("internal: apply task failed: {e}")),
            }
        }
        // Traffic moves only after the service's own changes, from target
        // health observed now (DESIGN §3 `migration`; decided in crate::migration).
        let phase = crate::aws::migrate::Phase {
            clients: &self.clients,
            metrics: &self.metrics,
            observed: &observed,
            desired: &desired,
            read_only: dry_run || self.report_only,
            now: std::time::SystemTime::now(),
        };
        crate::aws::migrate::phase(&phase, &mut report.services).await;
        report.services.sort_by(|a, b| a.plan.key.cmp(&b.plan.key));

        // Decommission runs after the services phase, on the same observation: a
        // migration counts as complete only from the service tags seen this pass.
        let verdict = |o: &ServiceOutcome| {
            o.migration.as_ref().map(|m| {
                m.decision
                    .as_ref()
                    .map(|d| d.kind == crate::migration::Kind::Complete)
            })
        };
        let settings = DecommissionSettings {
            controller_id: self.controller_id.clone(),
            max_per_pass: self.max_decommission_per_pass,
            prune: self.prune.is_some(),
            act: !dry_run && !self.report_only,
            migrations_complete: report
                .services
                .iter()
                .filter(|o| verdict(o) == Some(Some(true)))
                .map(|o| o.plan.key.clone())
                .collect(),
            migrations_unknown: report
                .services
                .iter()
                .filter(|o| verdict(o) == Some(None))
                .map(|o| o.plan.key.clone())
                .collect(),
        };
        let now = std::time::SystemTime::now();
        report.decommission =
            decommission_pass(&self.clients, set, &observed, &settings, &self.metrics, now)
                .instrument(info_span!("decommission"))
                .await;
        report
    }
}

fn outcome(
    plan: ServicePlan,
    applied: Option<Applied>,
    result: Result<(), AwsError>,
) -> ServiceOutcome {
    let done = applied.map(|a| a.done).unwrap_or_default();
    let error = plan
        .error
        .clone()
        .or_else(|| result.err().map(|e| e.to_string()));
    let state = if plan.held.is_some() {
        SyncState::Held
    } else if error.is_some() {
        SyncState::Error
    } else if !done.is_empty() {
        SyncState::Progressing
    } else if !plan.in_sync() {
        SyncState::OutOfSync
    } else if plan.rollout.as_ref().is_some_and(|r| r.failed()) {
        SyncState::Degraded
    } else if plan.rollout.as_ref().is_some_and(|r| r.in_progress()) {
        SyncState::Progressing
    } else {
        SyncState::Synced
    };
    ServiceOutcome {
        plan,
        state,
        done,
        error,
        migration: None,
    }
}
