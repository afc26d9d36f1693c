//! The migration phase (DESIGN §3 `migration`): observes the listener (or
//! rule) and both target groups' health through the ELBv2 adapter, asks
//! [`crate::core::migration::decide`] what to do, and carries it out — the
//! weights first, then the step tags on the ECS service, so a crash between
//! the two is recognised by the next pass (the listener already shows the
//! next step). Only ecsync's forward action is changed (see
//! [`elbv2::with_weights`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use aws_sdk_elasticloadbalancingv2::types::Action;
use serde::Serialize;
use tracing::{info, warn};

use super::outcome::ServiceOutcome;
use crate::adapters::aws::elbv2::{self, ListenerError, Place};
use crate::adapters::aws::{AwsError, Clients, call_error, cloudwatch, convert};
use crate::core::diff::FieldDiff;
use crate::core::manifest::DesiredService;
use crate::core::migration::{self, AlarmReadings, Decision, Facts, Kind};
use crate::core::model::{Migration, ServiceKey};
use crate::core::plan::{LiveService, Observed};
use crate::runtime::metrics::Metrics;

/// The path under which hand-edited weights show as drift.
pub const DRIFT_PATH: &str = "migration.listener.weights";

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Listener(#[from] ListenerError),
    #[error("{0}")]
    NotFound(String),
    /// The listener's action is not a forward to the two target groups:
    /// someone else manages it, so ecsync leaves it alone.
    #[error("{0}")]
    Unmanaged(String),
    #[error("spec.migration.stepInterval: {0}")]
    Interval(String),
}

/// What one pass found and did about a service's migration.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationReport {
    /// `None` when observation failed before a decision could be made.
    pub decision: Option<Decision>,
    /// ECS percent on the listener as observed at the start of the pass.
    pub live_percent: Option<u8>,
    /// The decision's changes were made (false in report mode and dry runs).
    pub applied: bool,
    pub error: Option<String>,
}

impl MigrationReport {
    /// ECS percent on the listener after this pass.
    pub fn percent(&self) -> Option<u8> {
        match &self.decision {
            Some(d) if self.applied || d.set_percent.is_none() => Some(d.percent),
            _ => self.live_percent,
        }
    }

    /// The change this pass made or (read-only) would make, for plan output.
    pub fn next_step(&self) -> Option<String> {
        let d = self.decision.as_ref().filter(|d| d.changes_anything())?;
        let what = match d.kind {
            Kind::Advance => "advance",
            Kind::Rollback => "roll back",
            Kind::Correct => "correct weights",
            Kind::Adopt => "record step",
            Kind::Hold | Kind::Complete => "record",
        };
        Some(format!("{what} to {}% on ECS: {}", d.percent, d.reason))
    }
}

/// Everything the migration phase needs from the pass.
pub struct Phase<'a> {
    pub clients: &'a Clients,
    pub metrics: &'a Metrics,
    pub observed: &'a Observed,
    pub desired: &'a BTreeMap<&'a ServiceKey, &'a DesiredService>,
    pub now: SystemTime,
}

/// Run the migration of every desired service that declares one, after the
/// service's own changes, and fold the result into its outcome.
pub async fn phase(p: &Phase<'_>, outcomes: &mut [ServiceOutcome]) {
    let alarms = read_alarms(p, outcomes).await;
    for o in outcomes.iter_mut() {
        let Some(d) = p.desired.get(&o.plan.key) else {
            continue;
        };
        let Some(m) = &d.spec.migration else {
            continue;
        };
        if !moves_traffic(o) {
            continue;
        }
        let Some(live) = p
            .observed
            .services
            .get(&o.plan.key)
            .filter(|l| l.is_active())
        else {
            // Created this pass: the migration starts once it is observed.
            continue;
        };
        // Read-only (report mode, dry run, a fenced replica): decide and show, change nothing.
        let read_only = p.clients.read_only.is_on() || o.plan.report_only;
        let deploying = o.done.iter().any(|a| a.deploys());
        let report = service(p, d, m, live, deploying, read_only, &alarms).await;
        fold(p.metrics, o, report);
    }
}

/// Every alarm the migrations that move traffic this pass gate on, in one
/// DescribeAlarms (per 100 names) for all of them; no call at all when none
/// declares alarms. A failed read is carried into each gate (it holds).
async fn read_alarms(p: &Phase<'_>, outcomes: &[ServiceOutcome]) -> AlarmReadings {
    let names: BTreeSet<String> = outcomes
        .iter()
        .filter(|o| moves_traffic(o))
        .filter_map(|o| p.desired.get(&o.plan.key)?.spec.migration.as_ref())
        .flat_map(|m| m.alarms().iter().cloned())
        .collect();
    if names.is_empty() {
        return AlarmReadings::default();
    }
    match cloudwatch::alarm_states(p.clients, &names).await {
        Ok(r) => {
            let declared: Vec<String> = names.into_iter().collect();
            let missing = r.missing(&declared);
            if !missing.is_empty() {
                warn!(alarms = ?missing, "migration: gate alarms that do not exist in CloudWatch; their migrations hold");
            }
            r
        }
        Err(e) => {
            warn!(error = %e, "migration: CloudWatch alarms could not be read; migrations that gate on them hold");
            AlarmReadings {
                error: Some(e.to_string()),
                ..AlarmReadings::default()
            }
        }
    }
}

/// Traffic moves only for a service whose own pass went well: not one that
/// is held, whose plan failed (e.g. its ECS target group does not exist),
/// whose apply failed this pass, or that is backing off after a failure.
fn moves_traffic(o: &ServiceOutcome) -> bool {
    o.plan.held.is_none() && o.plan.error.is_none() && o.error.is_none()
}

fn fold(metrics: &Metrics, o: &mut ServiceOutcome, report: MigrationReport) {
    let key = o.plan.key.clone();
    if let Some(d) = &report.decision {
        if let Some(pct) = report.percent() {
            metrics.set_migration_percent(&key.cluster, &key.name, i64::from(pct));
        }
        for g in &d.gates {
            // Failed, not merely waiting (the step interval, a deployment under way).
            if g.state == migration::GateState::Fail {
                metrics.migration_gate_failure(&key.cluster, &key.name, g.name);
            }
        }
        if d.changes_anything() && !report.applied && report.error.is_none() {
            // Read-only: hand-edited weights are drift, like any other field.
            if d.kind == Kind::Correct {
                o.plan.drift.push(FieldDiff {
                    path: DRIFT_PATH.into(),
                    desired: serde_json::json!(d.percent),
                    live: serde_json::json!(report.live_percent),
                });
            }
        }
        if report.applied {
            o.done.push(d.kind.action());
            metrics.action(d.kind.action().as_str(), "ok");
        } else if report.error.is_some() && d.changes_anything() {
            metrics.action(d.kind.action().as_str(), "error");
        }
    }
    if let Some(e) = &report.error {
        o.error.get_or_insert_with(|| format!("migration: {e}"));
    }
    o.migration = Some(report);
    o.settle();
}

async fn service(
    p: &Phase<'_>,
    d: &DesiredService,
    m: &Migration,
    live: &LiveService,
    deploying: bool,
    read_only: bool,
    alarms: &AlarmReadings,
) -> MigrationReport {
    let mut report = MigrationReport {
        decision: None,
        live_percent: None,
        applied: false,
        error: None,
    };
    let observed = match observe(p, d, m).await {
        Ok(o) => o,
        Err(e) => {
            warn!(cluster = %d.key.cluster, service = %d.key.name, error = %e,
                  "migration: observation failed; traffic left as it is");
            report.error = Some(e.to_string());
            return report;
        }
    };
    report.live_percent = Some(observed.percent);
    let fingerprint = migration::fingerprint(m, &d.task_definition_hash);
    let decision = migration::decide(&Facts {
        migration: m,
        step_interval: observed.step_interval,
        tags: &live.tags,
        fingerprint: &fingerprint,
        percent: observed.percent,
        rollout: &live.rollout,
        deploying,
        ecs_healthy: observed.ecs_health.0,
        legacy_healthy: observed.legacy_health.0,
        legacy_registered: observed.legacy_health.1,
        alarms,
        now: p.now,
    });
    let evidence: Vec<String> = decision
        .gates
        .iter()
        .map(|g| format!("{}={:?} ({})", g.name, g.state, g.detail))
        .collect();
    if read_only || !decision.changes_anything() {
        if decision.changes_anything() {
            info!(cluster = %d.key.cluster, service = %d.key.name, kind = ?decision.kind,
                  reason = %decision.reason, "migration: read-only, would change traffic");
        }
        report.decision = Some(decision);
        return report;
    }
    let result = carry_out(p.clients, d, live, &observed, &decision, &evidence).await;
    report.applied = result.is_ok();
    report.error = result.err().map(|e| e.to_string());
    report.decision = Some(decision);
    report
}

async fn carry_out(
    clients: &Clients,
    d: &DesiredService,
    live: &LiveService,
    o: &ObservedMigration,
    decision: &Decision,
    evidence: &[String],
) -> Result<(), MigrateError> {
    if let Some(pct) = decision.set_percent {
        if o.legacy_tg.is_empty() {
            return Err(MigrateError::Unmanaged(
                "the legacy target group was cleaned up: traffic stays on ECS".into(),
            ));
        }
        let actions = elbv2::with_weights(&o.actions, o.index, &o.ecs_tg, &o.legacy_tg, pct);
        elbv2::modify(clients, &o.place, actions).await?;
        info!(cluster = %d.key.cluster, service = %d.key.name, kind = ?decision.kind,
              from_percent = o.percent, to_percent = pct, stage = decision.stage,
              gates = ?evidence, reason = %decision.reason,
              "migration: changed listener weights");
    }
    if !decision.tags.is_empty() {
        clients
            .ecs
            .tag_resource()
            .resource_arn(&live.arn)
            .set_tags(Some(convert::sdk_tags(&decision.tags)))
            .send()
            .await
            .map_err(|e| call_error("ECS:TagResource", e))?;
        info!(cluster = %d.key.cluster, service = %d.key.name, stage = decision.stage,
              tags = ?decision.tags, "migration: recorded step");
    }
    Ok(())
}

/// What the shell observed for one migration.
struct ObservedMigration {
    place: Place,
    actions: Vec<Action>,
    /// Index of the managed forward action in `actions`.
    index: usize,
    percent: u8,
    ecs_tg: String,
    legacy_tg: String,
    /// (healthy, registered)
    ecs_health: (u32, u32),
    legacy_health: (u32, u32),
    step_interval: Duration,
}

async fn observe(
    p: &Phase<'_>,
    d: &DesiredService,
    m: &Migration,
) -> Result<ObservedMigration, MigrateError> {
    let step_interval = humantime::parse_duration(m.step_interval.trim())
        .map_err(|e| MigrateError::Interval(e.to_string()))?;
    let ecs_name = d
        .migration_target_group
        .clone()
        .ok_or_else(|| MigrateError::NotFound("the service has no loadBalancers".into()))?;
    let ecs_tg = resolved(&ecs_name, &p.observed.target_groups)?;
    // `decommission.cleanup` deletes the legacy group once the fleet is gone:
    // then the forward action sends to the ECS group alone, which reads as 100%.
    let cleans_up = m
        .decommission
        .as_ref()
        .is_some_and(|dc| dc.cleanup.is_some());
    let legacy_tg = match resolved(&m.from.target_group, &p.observed.target_groups) {
        Err(MigrateError::NotFound(_)) if cleans_up => String::new(),
        other => other?,
    };
    let (place, actions) = elbv2::locate(p.clients, &m.listener).await?;
    let (index, percent) =
        elbv2::managed_forward(&actions, &ecs_tg, &legacy_tg).map_err(MigrateError::Unmanaged)?;
    let ecs_health = elbv2::target_health(p.clients, &ecs_tg).await?;
    let legacy_health = if legacy_tg.is_empty() {
        (0, 0)
    } else {
        elbv2::target_health(p.clients, &legacy_tg).await?
    };
    Ok(ObservedMigration {
        place,
        actions,
        index,
        percent,
        ecs_tg,
        legacy_tg,
        ecs_health,
        legacy_health,
        step_interval,
    })
}

/// A target group named by name or ARN, as the observation resolved it.
fn resolved(name: &str, known: &BTreeMap<String, String>) -> Result<String, MigrateError> {
    if name.starts_with("arn:") {
        return Ok(name.to_string());
    }
    known
        .get(name)
        .cloned()
        .ok_or_else(|| MigrateError::NotFound(format!("target group {name:?} not found")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::ActionKind;
    use crate::core::state::SyncState;
    use crate::runtime::status::migration_status;

    fn decision(kind: Kind, stage_before: usize, stage: usize, percent: u8) -> Decision {
        Decision {
            kind,
            stage_before,
            stage,
            percent,
            set_percent: matches!(kind, Kind::Advance | Kind::Rollback | Kind::Correct)
                .then_some(percent),
            tags: BTreeMap::new(),
            gates: vec![migration::Gate {
                name: migration::GATE_ECS_HEALTHY,
                state: migration::GateState::Fail,
                detail: "0 healthy".into(),
            }],
            rollbacks: u32::from(kind == Kind::Rollback),
            degraded: kind == Kind::Rollback,
            complete_since: None,
            next_step_at: None,
            reason: "because".into(),
        }
    }

    fn outcome(state: SyncState) -> ServiceOutcome {
        let held = (state == SyncState::Held).then(|| "its manifest has errors".to_string());
        ServiceOutcome {
            plan: crate::core::plan::ServicePlan {
                key: ServiceKey {
                    cluster: "prod".into(),
                    name: "web".into(),
                },
                source: None,
                exists: true,
                drift: Vec::new(),
                actions: Vec::new(),
                replace: Vec::new(),
                report_only: false,
                held,
                waiting: None,
                error: None,
                message: None,
                rollout: None,
                ignored: Vec::new(),
                effective: None,
            },
            state,
            done: Vec::new(),
            error: None,
            migration: None,
            task_definition_arn: None,
            hook: None,
        }
    }

    fn report(d: Decision, live: u8, applied: bool, error: Option<&str>) -> MigrationReport {
        MigrationReport {
            decision: Some(d),
            live_percent: Some(live),
            applied,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn failed_or_backing_off_services_move_no_traffic() {
        assert!(moves_traffic(&outcome(SyncState::Synced)));
        assert!(!moves_traffic(&outcome(SyncState::Held)));
        let mut failed = outcome(SyncState::Synced);
        failed.error = Some("ECS:UpdateService: ServerException".into());
        assert!(!moves_traffic(&failed), "the apply failed this pass");
        let mut backing_off = outcome(SyncState::Synced);
        backing_off.error = Some("backing off for 5s after: AccessDenied".into());
        backing_off.settle();
        assert!(!moves_traffic(&backing_off));
        let mut planning = outcome(SyncState::Synced);
        planning.plan.error = Some("target group \"web-ecs\" not found".into());
        assert!(!moves_traffic(&planning));
    }

    #[test]
    fn read_only_correction_is_drift_and_says_would() {
        let m = Metrics::new();
        let mut o = outcome(SyncState::Synced);
        fold(
            &m,
            &mut o,
            report(decision(Kind::Correct, 1, 1, 10), 70, false, None),
        );
        assert_eq!(o.state, SyncState::OutOfSync);
        assert_eq!(o.plan.drift.len(), 1);
        assert_eq!(o.plan.drift[0].path, DRIFT_PATH);
        assert_eq!(o.plan.drift[0].live, serde_json::json!(70));
        assert!(o.done.is_empty());
        let st = migration_status(o.migration.as_ref().unwrap());
        assert_eq!((st.step, st.percent), (Some(0), 70));
        assert_eq!(st.message.as_deref(), Some("would because"));
        assert!(!st.gates[0].passed);
    }

    #[test]
    fn applied_rollback_is_degraded_and_counted_as_done() {
        let m = Metrics::new();
        let mut o = outcome(SyncState::Synced);
        fold(
            &m,
            &mut o,
            report(decision(Kind::Rollback, 2, 1, 10), 50, true, None),
        );
        assert_eq!(o.state, SyncState::Degraded);
        assert_eq!(o.done, vec![ActionKind::RollbackTraffic]);
        let st = migration_status(o.migration.as_ref().unwrap());
        assert_eq!((st.step, st.percent, st.rollbacks), (Some(0), 10, 1));
        let text = m.encode().unwrap();
        assert!(
            text.contains(r#"ecsync_migration_traffic_percent{cluster="prod",service="web"} 10"#),
            "{text}"
        );
    }

    #[test]
    fn failures_holds_and_completion_map_to_states() {
        let m = Metrics::new();
        let mut o = outcome(SyncState::Synced);
        fold(
            &m,
            &mut o,
            report(
                decision(Kind::Advance, 1, 2, 50),
                10,
                false,
                Some("ModifyListener: denied"),
            ),
        );
        assert_eq!(o.state, SyncState::Error);
        assert_eq!(
            o.error.as_deref(),
            Some("migration: ModifyListener: denied")
        );
        assert_eq!(o.migration.as_ref().unwrap().percent(), Some(10));

        let mut o = outcome(SyncState::Synced);
        fold(
            &m,
            &mut o,
            report(decision(Kind::Hold, 1, 1, 10), 10, false, None),
        );
        assert_eq!(
            o.state,
            SyncState::Progressing,
            "a migration under way is progress"
        );

        let mut o = outcome(SyncState::Synced);
        fold(
            &m,
            &mut o,
            report(decision(Kind::Complete, 3, 3, 100), 100, false, None),
        );
        assert_eq!(o.state, SyncState::Synced);

        let mut o = outcome(SyncState::Held);
        fold(
            &m,
            &mut o,
            report(decision(Kind::Rollback, 2, 1, 10), 50, true, None),
        );
        assert_eq!(o.state, SyncState::Held);
    }
}
