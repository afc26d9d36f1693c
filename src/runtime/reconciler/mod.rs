//! One reconcile pass: observe, plan, apply, report. Shared by `ecsync apply`
//! (one pass) and `ecsync run` (a pass per trigger).

pub mod cleanup;
pub mod decommission;
mod dependencies;
pub mod groups;
pub mod hooks;
pub mod leftovers;
pub mod migration;
mod outcome;
pub mod scheduled;
mod targeted;

pub use outcome::{PassReport, ServiceOutcome};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::task::JoinSet;
use tracing::{Instrument, info_span, warn};

use crate::adapters::aws::Clients;
use crate::adapters::aws::ecs::apply::{Applied, ApplyContext, Live, apply_service, prune_service};
use crate::adapters::aws::ecs::observe::{Scope, TaskDefinitionCache, observe, observe_named};
use crate::core::manifest::{DesiredService, ManifestSet};
use crate::core::model::ServiceKey;
use crate::core::plan::{ActionKind, PlanContext, plan_all};
use crate::core::shard::Shard;
use crate::core::state::Mode;
use crate::runtime::metrics::Metrics;
use decommission::{DecommissionSettings, decommission_pass};

/// Services updated at once: bounded so a large commit does not burst past
/// ECS's mutating-call rate limits.
const APPLY_CONCURRENCY: usize = 4;

pub struct Reconciler {
    /// Their read-only switch (dry run, report mode, fencing) is the one
    /// thing that says whether this pass may change anything.
    pub clients: Clients,
    pub cache: TaskDefinitionCache,
    pub metrics: Arc<Metrics>,
    pub controller_id: String,
    /// `--mode`: what the pass reports itself as.
    pub mode: Mode,
    /// `Some(max per pass)` with `--prune`.
    pub prune: Option<usize>,
    /// `--max-decommission-per-pass`: EC2 instances stopped or terminated per pass.
    pub max_decommission_per_pass: usize,
    /// `--shard-index/--shard-count`: only clusters this shard owns are part
    /// of the pass (`None`: every cluster).
    pub shard: Option<Shard>,
}

impl Reconciler {
    /// Observe and plan every service in `set`; apply the plans unless the
    /// clients are read-only. Services in `backing_off` are observed and
    /// reported but not acted on: a failing service must not hold the others
    /// back, nor be hammered.
    pub async fn pass(
        &self,
        revision: &str,
        set: &ManifestSet,
        backing_off: &BTreeMap<ServiceKey, String>,
    ) -> PassReport {
        self.pass_in(revision, set, backing_off, false).await
    }

    /// The pass itself; `targeted`: `set` holds only the services to look at
    /// ([`Reconciler::pass_targeted`]), observed by name, and nothing beyond
    /// them is pruned, decommissioned or scheduled.
    async fn pass_in(
        &self,
        revision: &str,
        set: &ManifestSet,
        backing_off: &BTreeMap<ServiceKey, String>,
        targeted: bool,
    ) -> PassReport {
        let mut report = PassReport {
            revision: revision.to_string(),
            ..Default::default()
        };
        // Other shards' services and schedules are not part of this pass at
        // all; the whole set is kept for what they hold (decommission, schedules).
        let whole = set;
        let scoped = self.shard.map(|s| s.scope(whole));
        let set = scoped.as_ref().unwrap_or(whole);
        let clusters: BTreeSet<String> = set
            .services
            .iter()
            .map(|d| d.key.cluster.clone())
            .chain(set.held.iter().map(|k| k.cluster.clone()))
            // So a scheduled task's missing cluster is known, not guessed.
            .chain(set.scheduled.iter().map(|t| t.spec.cluster.clone()))
            .collect();
        let scope = Scope {
            clusters,
            // Pruning must also see clusters whose last manifest was removed.
            all_clusters: self.prune.is_some() && !targeted,
            desired: &set.services,
            shard: self.shard,
        };
        let observed = if targeted {
            observe_named(&self.clients, &scope, &self.cache).await
        } else {
            observe(&self.clients, &scope, &self.cache).await
        };
        let observed = match observed {
            Ok(o) => o,
            Err(e) => {
                report.error = Some(e.to_string());
                return report;
            }
        };
        let ctx = PlanContext {
            controller_id: &self.controller_id,
            revision,
            mode: self.mode,
            // A targeted pass never deletes: it has not seen what else exists.
            prune: if targeted { None } else { self.prune },
        };
        let plans = plan_all(set, &observed, &ctx);
        if targeted && self.prune.is_some() {
            report.follow_up = targeted::needs_replacing(&plans);
        }
        let desired: BTreeMap<&ServiceKey, &DesiredService> =
            set.services.iter().map(|d| (&d.key, &**d)).collect();

        let semaphore = Arc::new(tokio::sync::Semaphore::new(APPLY_CONCURRENCY));
        let target_groups = Arc::new(observed.target_groups.clone());
        let mut tasks = JoinSet::new();
        // Read once: a fence that closes mid-pass is enforced call by call.
        let read_only = self.clients.read_only.is_on();
        for plan in plans {
            let runnable = !read_only
                && !plan.report_only
                && plan.held.is_none()
                && plan.waiting.is_none()
                && plan.error.is_none()
                && plan.is_mutating();
            if !runnable {
                let live = observed.services.get(&plan.key).filter(|l| l.is_active());
                let d = desired.get(&plan.key).copied();
                report
                    .services
                    .push(hooks::unapplied(self, plan, d, live).await);
                continue;
            }
            if let Some(reason) = backing_off.get(&plan.key) {
                let mut o = ServiceOutcome::new(plan, None, Ok(()));
                o.error = Some(reason.clone());
                o.settle();
                report.services.push(o);
                continue;
            }
            // None for a service that is being pruned: Git no longer declares it.
            let d = desired.get(&plan.key).map(|d| (*d).clone());
            let live_service = observed.services.get(&plan.key).filter(|l| l.is_active());
            let live = live_service.map(|l| (l.arn.clone(), l.spec.is_daemon()));
            let live_tags = live_service.map(|l| l.tags.clone());
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
                    let mut applied = Applied::default();
                    // Pre-deploy hooks first: until they succeed, the
                    // service stays where it is.
                    let gate = match &d {
                        Some(d) => {
                            let c = hooks::Context {
                                clients: &clients,
                                metrics: &metrics,
                                controller_id: &controller_id,
                                desired: d,
                                plan: &plan,
                                live: live
                                    .as_ref()
                                    .zip(live_tags.as_ref())
                                    .map(|((arn, _), t)| (arn.as_str(), t)),
                                act: true,
                                now: std::time::SystemTime::now(),
                            };
                            hooks::gate(&c).await
                        }
                        None => Ok(hooks::Gate {
                            proceed: true,
                            ..Default::default()
                        }),
                    };
                    let gate = match gate {
                        Ok(g) => g,
                        Err(e) => {
                            warn!(error = %e, "pre-deploy hooks failed");
                            return ServiceOutcome::new(plan, Some(applied), Err(e));
                        }
                    };
                    if !gate.proceed {
                        if gate.registered {
                            applied.done.push(ActionKind::RegisterTaskDefinition);
                            metrics.action(ActionKind::RegisterTaskDefinition.as_str(), "ok");
                        }
                        let mut o = ServiceOutcome::new(plan, Some(applied), Ok(()));
                        o.hook = gate.status;
                        o.settle();
                        return o;
                    }
                    applied.task_definition_arn = gate.task_definition_arn.clone();
                    let ctx = ApplyContext {
                        controller_id: &controller_id,
                        revision: &revision,
                        target_groups: &target_groups,
                        hook_record: gate.record.as_deref(),
                    };
                    let live = live.as_ref().map(|(arn, daemon)| Live {
                        arn,
                        daemon: *daemon,
                    });
                    let result = match &d {
                        Some(d) => {
                            apply_service(&clients, d, &plan, live, &ctx, &mut applied).await
                        }
                        None => {
                            let daemon = live.is_some_and(|l| l.daemon);
                            prune_service(&clients, &plan, daemon, &mut applied).await
                        }
                    };
                    for action in &applied.done {
                        metrics.action(action.as_str(), "ok");
                    }
                    if let Err(e) = &result {
                        if let Some(next) = plan.actions.get(applied.done.len()) {
                            metrics.action(next.name(), "error");
                        }
                        warn!(error = %e, "apply failed");
                    }
                    let mut o = ServiceOutcome::new(plan, Some(applied), result);
                    o.hook = gate.status;
                    o.settle();
                    o
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
        dependencies::hold_dependents_of_failures(&mut report.services, &desired);
        // Traffic moves only after the service's own changes, from target
        // health observed now (DESIGN §3 `migration`; decided in crate::core::migration).
        let phase = migration::Phase {
            clients: &self.clients,
            metrics: &self.metrics,
            observed: &observed,
            desired: &desired,
            now: std::time::SystemTime::now(),
        };
        migration::phase(&phase, &mut report.services).await;
        report.services.sort_by(|a, b| a.plan.key.cmp(&b.plan.key));
        if targeted {
            return report;
        }

        // Schedules after the services: a revision registered above is reused.
        let phase = scheduled::Phase {
            clients: &self.clients,
            metrics: &self.metrics,
            cache: &self.cache,
            controller_id: &self.controller_id,
            mode: self.mode,
            prune: self.prune,
            set,
            observed: &observed,
            services: &report.services,
            shard: self.shard,
            whole,
        };
        report.scheduled = scheduled::phase(&phase).await;

        // Decommission runs after the services phase, on the same observation: a
        // migration counts as complete only from the service tags seen this pass.
        let verdict = |o: &ServiceOutcome| {
            o.migration.as_ref().map(|m| {
                m.decision
                    .as_ref()
                    .map(|d| d.kind == crate::core::migration::Kind::Complete)
            })
        };
        let settings = DecommissionSettings {
            controller_id: self.controller_id.clone(),
            max_per_pass: self.max_decommission_per_pass,
            prune: self.prune.is_some(),
            migrations_complete: report
                .services
                .iter()
                .filter(|o| verdict(o) == Some(Some(true)))
                .map(|o| o.plan.key.clone())
                .collect(),
            // Undecided, or not looked at because the service failed this pass:
            // its fleet is held as it is, neither released nor moved on.
            migrations_unknown: report
                .services
                .iter()
                .filter(|o| {
                    let declared = desired
                        .get(&o.plan.key)
                        .is_some_and(|d| d.spec.migration.is_some());
                    verdict(o) == Some(None)
                        || (declared && o.migration.is_none() && o.error.is_some())
                })
                .map(|o| o.plan.key.clone())
                .collect(),
            shard: self.shard,
            foreign: decommission::foreign_migrations(self.shard, whole),
        };
        let now = std::time::SystemTime::now();
        report.decommission =
            decommission_pass(&self.clients, set, &observed, &settings, &self.metrics, now)
                .instrument(info_span!("decommission"))
                .await;
        report
    }
}

#[cfg(test)]
mod tests;
