//! The migration shell (DESIGN §3 `migration`, issue 4): observes the
//! listener (or rule) and both target groups' health, asks
//! [`crate::migration::decide`] what to do, and carries it out — the weights
//! first, then the step tags on the ECS service, so a crash between the two
//! is recognised by the next pass (the listener already shows the next step).
//!
//! Only ecsync's forward action is changed. Listener default actions and rule
//! actions are replaced as a whole list by the ELBv2 API, so every other
//! action is re-sent exactly as described; rule conditions, the listener's
//! port, protocol and certificates are never sent, so they stay as they are.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple, TargetHealthStateEnum,
};
use serde::Serialize;
use tracing::{info, warn};

use super::{AwsError, Clients, call_error, convert};
use crate::controller::ServiceOutcome;
use crate::diff::FieldDiff;
use crate::manifest::DesiredService;
use crate::metrics::Metrics;
use crate::migration::{self, Decision, Facts, GATE_STEP_INTERVAL, Kind};
use crate::model::{ListenerRef, ListenerRule, Migration, ServiceKey};
use crate::plan::Observed;
use crate::status::{GateResult, MigrationStatus, SyncState};

/// The path under which hand-edited weights show as drift.
pub const DRIFT_PATH: &str = "migration.listener.weights";

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{0}")]
    NotFound(String),
    /// The listener's action is not a forward to the two target groups:
    /// someone else manages it, so ecsync leaves it alone.
    #[error("{0}")]
    Unmanaged(String),
    #[error("spec.migration.stepInterval: {0}")]
    Interval(String),
}

/// Where the managed forward action lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A listener's default actions (ModifyListener).
    Listener(String),
    /// A listener rule's actions (ModifyRule).
    Rule(String),
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

    pub fn status(&self) -> MigrationStatus {
        let Some(d) = &self.decision else {
            return MigrationStatus {
                step: None,
                percent: self.live_percent.unwrap_or(0),
                gates: Vec::new(),
                rollbacks: 0,
                message: self.error.clone(),
            };
        };
        let recorded_stage = if self.applied || !d.changes_anything() {
            d.stage
        } else {
            // Read-only: the recorded step is still the one observed.
            d.stage_before
        };
        MigrationStatus {
            step: recorded_stage.checked_sub(1),
            percent: self.percent().unwrap_or(0),
            gates: d
                .gates
                .iter()
                .map(|g| GateResult {
                    name: g.name.to_string(),
                    passed: g.passed(),
                    detail: g.detail.clone(),
                })
                .collect(),
            rollbacks: d.rollbacks,
            message: Some(match (&self.error, self.applied || !d.changes_anything()) {
                (Some(e), _) => format!("{}; failed: {e}", d.reason),
                (None, true) => d.reason.clone(),
                (None, false) => format!("would {}", d.reason),
            }),
        }
    }
}

/// Everything the migration phase needs from the pass.
pub struct Phase<'a> {
    pub clients: &'a Clients,
    pub metrics: &'a Metrics,
    pub observed: &'a Observed,
    pub desired: &'a BTreeMap<&'a ServiceKey, &'a DesiredService>,
    /// `--dry-run` or `--mode report`: decide and show, change nothing.
    pub read_only: bool,
    pub now: SystemTime,
}

/// Run the migration of every desired service that declares one, after the
/// service's own changes, and fold the result into its outcome.
pub async fn phase(p: &Phase<'_>, outcomes: &mut [ServiceOutcome]) {
    for o in outcomes.iter_mut() {
        let Some(d) = p.desired.get(&o.plan.key) else {
            continue;
        };
        let Some(m) = &d.spec.migration else {
            continue;
        };
        // A held service is not touched at all; a planning error (e.g. the
        // ECS target group does not exist) already says what is wrong.
        if o.plan.held.is_some() || o.plan.error.is_some() {
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
        let read_only = p.read_only || o.plan.report_only;
        let deploying = o
            .done
            .iter()
            .any(|a| *a == "create_service" || *a == "update_service");
        let report = service(p, d, m, live, deploying, read_only).await;
        fold(p.metrics, o, report);
    }
}

fn fold(metrics: &Metrics, o: &mut ServiceOutcome, report: MigrationReport) {
    let key = o.plan.key.clone();
    if let Some(d) = &report.decision {
        if let Some(pct) = report.percent() {
            metrics.set_migration_percent(&key.cluster, &key.name, i64::from(pct));
        }
        for g in &d.gates {
            if !g.passed() && g.name != GATE_STEP_INTERVAL {
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
            metrics.action(d.kind.action(), "ok");
        } else if report.error.is_some() && d.changes_anything() {
            metrics.action(d.kind.action(), "error");
        }
    }
    if let Some(e) = &report.error {
        o.error.get_or_insert_with(|| format!("migration: {e}"));
    }
    let degraded = report.decision.as_ref().is_some_and(|d| d.degraded);
    let done = report
        .decision
        .as_ref()
        .is_some_and(|d| d.kind == Kind::Complete);
    o.state = match o.state {
        SyncState::Held => SyncState::Held,
        _ if o.error.is_some() => SyncState::Error,
        _ if degraded => SyncState::Degraded,
        SyncState::Synced | SyncState::Progressing if !o.plan.in_sync() => SyncState::OutOfSync,
        // Traffic still moving: keep the daemon looking often.
        SyncState::Synced if !done => SyncState::Progressing,
        s => s,
    };
    o.migration = Some(report);
}

async fn service(
    p: &Phase<'_>,
    d: &DesiredService,
    m: &Migration,
    live: &crate::plan::LiveService,
    deploying: bool,
    read_only: bool,
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
    live: &crate::plan::LiveService,
    o: &ObservedMigration,
    decision: &Decision,
    evidence: &[String],
) -> Result<(), MigrateError> {
    if let Some(pct) = decision.set_percent {
        let actions = with_weights(&o.actions, o.index, &o.ecs_tg, &o.legacy_tg, pct);
        modify(clients, &o.place, actions).await?;
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
        .spec
        .load_balancers
        .as_ref()
        .and_then(|l| l.first())
        .map(|lb| lb.target_group.clone())
        .ok_or_else(|| MigrateError::NotFound("the service has no loadBalancers".into()))?;
    let ecs_tg = resolve_target_group(p.clients, &ecs_name, &p.observed.target_groups).await?;
    let legacy_tg =
        resolve_target_group(p.clients, &m.from.target_group, &p.observed.target_groups).await?;
    let (place, actions) = locate(p.clients, &m.listener).await?;
    let (index, percent) =
        managed_forward(&actions, &ecs_tg, &legacy_tg).map_err(MigrateError::Unmanaged)?;
    let ecs_health = target_health(p.clients, &ecs_tg).await?;
    let legacy_health = target_health(p.clients, &legacy_tg).await?;
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

async fn resolve_target_group(
    clients: &Clients,
    name: &str,
    known: &BTreeMap<String, String>,
) -> Result<String, MigrateError> {
    if name.starts_with("arn:") {
        return Ok(name.to_string());
    }
    if let Some(arn) = known.get(name) {
        return Ok(arn.clone());
    }
    let out = clients
        .elbv2
        .describe_target_groups()
        .names(name)
        .send()
        .await
        .map_err(|e| call_error("ELBv2:DescribeTargetGroups", e))
        .map_err(|e| match e.code() {
            Some("TargetGroupNotFound") => {
                MigrateError::NotFound(format!("target group {name:?} not found"))
            }
            _ => e.into(),
        })?;
    out.target_groups()
        .first()
        .and_then(|t| t.target_group_arn())
        .map(str::to_string)
        .ok_or_else(|| MigrateError::NotFound(format!("target group {name:?} not found")))
}

/// (healthy, registered) targets of a target group.
async fn target_health(clients: &Clients, arn: &str) -> Result<(u32, u32), MigrateError> {
    let out = clients
        .elbv2
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| call_error("ELBv2:DescribeTargetHealth", e))?;
    let all = out.target_health_descriptions();
    let healthy = all
        .iter()
        .filter(|t| {
            t.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy)
        })
        .count();
    Ok((
        u32::try_from(healthy).unwrap_or(u32::MAX),
        u32::try_from(all.len()).unwrap_or(u32::MAX),
    ))
}

async fn locate(clients: &Clients, r: &ListenerRef) -> Result<(Place, Vec<Action>), MigrateError> {
    match r {
        ListenerRef::Arn(arn) if arn.contains(":listener-rule/") => rule_by_arn(clients, arn).await,
        ListenerRef::Arn(arn) => {
            let out = clients
                .elbv2
                .describe_listeners()
                .listener_arns(arn)
                .send()
                .await
                .map_err(|e| call_error("ELBv2:DescribeListeners", e))?;
            let l = out
                .listeners()
                .first()
                .ok_or_else(|| MigrateError::NotFound(format!("listener {arn} not found")))?;
            Ok((Place::Listener(arn.clone()), l.default_actions().to_vec()))
        }
        ListenerRef::Port {
            load_balancer,
            port,
            rule,
        } => {
            let (listener_arn, defaults) = listener_on_port(clients, load_balancer, *port).await?;
            match rule {
                None => Ok((Place::Listener(listener_arn), defaults)),
                Some(ListenerRule { arn: Some(arn), .. }) => rule_by_arn(clients, arn).await,
                Some(ListenerRule {
                    priority: Some(priority),
                    ..
                }) => rule_by_priority(clients, &listener_arn, *priority).await,
                Some(_) => Err(MigrateError::NotFound(
                    "spec.migration.listener.rule needs a priority or an arn".into(),
                )),
            }
        }
    }
}

async fn listener_on_port(
    clients: &Clients,
    load_balancer: &str,
    port: i32,
) -> Result<(String, Vec<Action>), MigrateError> {
    let lb_arn = if load_balancer.starts_with("arn:") {
        load_balancer.to_string()
    } else {
        let out = clients
            .elbv2
            .describe_load_balancers()
            .names(load_balancer)
            .send()
            .await
            .map_err(|e| call_error("ELBv2:DescribeLoadBalancers", e))?;
        out.load_balancers()
            .first()
            .and_then(|lb| lb.load_balancer_arn())
            .map(str::to_string)
            .ok_or_else(|| {
                MigrateError::NotFound(format!("load balancer {load_balancer:?} not found"))
            })?
    };
    let mut marker = None;
    loop {
        let out = clients
            .elbv2
            .describe_listeners()
            .load_balancer_arn(&lb_arn)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| call_error("ELBv2:DescribeListeners", e))?;
        if let Some(l) = out.listeners().iter().find(|l| l.port() == Some(port))
            && let Some(arn) = l.listener_arn()
        {
            return Ok((arn.to_string(), l.default_actions().to_vec()));
        }
        marker = out.next_marker().map(str::to_string);
        if marker.is_none() {
            return Err(MigrateError::NotFound(format!(
                "load balancer {load_balancer:?} has no listener on port {port}"
            )));
        }
    }
}

async fn rule_by_arn(clients: &Clients, arn: &str) -> Result<(Place, Vec<Action>), MigrateError> {
    let out = clients
        .elbv2
        .describe_rules()
        .rule_arns(arn)
        .send()
        .await
        .map_err(|e| call_error("ELBv2:DescribeRules", e))?;
    let rule = out
        .rules()
        .first()
        .ok_or_else(|| MigrateError::NotFound(format!("listener rule {arn} not found")))?;
    Ok((Place::Rule(arn.to_string()), rule.actions().to_vec()))
}

async fn rule_by_priority(
    clients: &Clients,
    listener_arn: &str,
    priority: i32,
) -> Result<(Place, Vec<Action>), MigrateError> {
    let want = priority.to_string();
    let mut marker = None;
    loop {
        let out = clients
            .elbv2
            .describe_rules()
            .listener_arn(listener_arn)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| call_error("ELBv2:DescribeRules", e))?;
        if let Some(r) = out
            .rules()
            .iter()
            .find(|r| r.priority() == Some(want.as_str()))
            && let Some(arn) = r.rule_arn()
        {
            return Ok((Place::Rule(arn.to_string()), r.actions().to_vec()));
        }
        marker = out.next_marker().map(str::to_string);
        if marker.is_none() {
            return Err(MigrateError::NotFound(format!(
                "listener {listener_arn} has no rule with priority {priority}"
            )));
        }
    }
}

async fn modify(clients: &Clients, place: &Place, actions: Vec<Action>) -> Result<(), AwsError> {
    match place {
        Place::Listener(arn) => {
            clients
                .elbv2
                .modify_listener()
                .listener_arn(arn)
                .set_default_actions(Some(actions))
                .send()
                .await
                .map_err(|e| call_error("ELBv2:ModifyListener", e))?;
        }
        Place::Rule(arn) => {
            clients
                .elbv2
                .modify_rule()
                .rule_arn(arn)
                .set_actions(Some(actions))
                .send()
                .await
                .map_err(|e| call_error("ELBv2:ModifyRule", e))?;
        }
    }
    Ok(())
}

/// Target groups (with weights; `None` = unweighted) a forward action sends to.
fn forward_targets(a: &Action) -> Vec<(&str, Option<i32>)> {
    match a.forward_config().map(|f| f.target_groups()) {
        Some(groups) if !groups.is_empty() => groups
            .iter()
            .filter_map(|t| Some((t.target_group_arn()?, t.weight())))
            .collect(),
        _ => a
            .target_group_arn()
            .map(|arn| (arn, None))
            .into_iter()
            .collect(),
    }
}

/// The forward action ecsync manages — the one that sends only to the ECS and
/// legacy target groups — and the ECS share of its traffic, in percent.
pub fn managed_forward(actions: &[Action], ecs: &str, legacy: &str) -> Result<(usize, u8), String> {
    let (index, targets) = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.r#type() == Some(&ActionTypeEnum::Forward))
        .map(|(i, a)| (i, forward_targets(a)))
        .find(|(_, t)| t.iter().any(|(arn, _)| *arn == ecs || *arn == legacy))
        .ok_or_else(|| {
            "no forward action to the legacy or ECS target group: nothing to migrate".to_string()
        })?;
    if let Some((other, _)) = targets
        .iter()
        .find(|(arn, _)| *arn != ecs && *arn != legacy)
    {
        return Err(format!(
            "the forward action also sends to {other}: not managed by ecsync, left alone"
        ));
    }
    // A single unweighted group takes all traffic; in a list, AWS's default is 1.
    let weight = |want: &str| -> i64 {
        targets
            .iter()
            .filter(|(arn, _)| *arn == want)
            .map(|(_, w)| i64::from(w.unwrap_or(1)).max(0))
            .sum()
    };
    let (e, l) = (weight(ecs), weight(legacy));
    if e + l == 0 {
        return Err("the forward action's weights are all zero".into());
    }
    let pct = (e * 100 + (e + l) / 2) / (e + l);
    Ok((index, u8::try_from(pct).unwrap_or(100)))
}

/// `actions` with only the managed forward action changed to send `percent`
/// to ECS and the rest to the legacy group; its stickiness, order and every
/// other action are kept exactly.
pub fn with_weights(
    actions: &[Action],
    index: usize,
    ecs: &str,
    legacy: &str,
    percent: u8,
) -> Vec<Action> {
    let mut out = actions.to_vec();
    if let Some(a) = out.get_mut(index) {
        let stickiness = a
            .forward_config()
            .and_then(|f| f.target_group_stickiness_config())
            .cloned();
        let pct = i32::from(percent.min(100));
        a.forward_config = Some(
            ForwardActionConfig::builder()
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(ecs)
                        .weight(pct)
                        .build(),
                )
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(legacy)
                        .weight(100 - pct)
                        .build(),
                )
                .set_target_group_stickiness_config(stickiness)
                .build(),
        );
        // With several groups the top-level TargetGroupArn must not be set.
        a.target_group_arn = None;
    }
    for a in &mut out {
        // Describe calls never return an OIDC client secret, and re-sending
        // the action without one is refused unless it says to keep the
        // existing secret: say so, so that action stays exactly as it was.
        if let Some(oidc) = a.authenticate_oidc_config.as_mut()
            && oidc.client_secret.is_none()
        {
            oidc.use_existing_client_secret = Some(true);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{
        FixedResponseActionConfig, TargetGroupStickinessConfig,
    };

    const ECS: &str = "arn:tg/ecs";
    const LEGACY: &str = "arn:tg/legacy";

    fn forward_single(tg: &str) -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(tg)
            .order(2)
            .build()
    }

    fn weighted(e: i32, l: i32) -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(ECS)
                            .weight(e)
                            .build(),
                    )
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(LEGACY)
                            .weight(l)
                            .build(),
                    )
                    .target_group_stickiness_config(
                        TargetGroupStickinessConfig::builder()
                            .enabled(true)
                            .duration_seconds(300)
                            .build(),
                    )
                    .build(),
            )
            .order(2)
            .build()
    }

    fn auth_like() -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("503")
                    .build(),
            )
            .order(1)
            .build()
    }

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
            reason: "because".into(),
        }
    }

    fn outcome(state: SyncState) -> ServiceOutcome {
        ServiceOutcome {
            plan: crate::plan::ServicePlan {
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
                held: None,
                error: None,
                message: None,
                rollout: None,
            },
            state,
            done: Vec::new(),
            error: None,
            migration: None,
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
        let st = o.migration.as_ref().unwrap().status();
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
        assert_eq!(o.done, vec!["rollback_traffic"]);
        let st = o.migration.as_ref().unwrap().status();
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

    #[test]
    fn reads_the_ecs_share_from_the_forward_action() {
        assert_eq!(
            managed_forward(&[forward_single(LEGACY)], ECS, LEGACY),
            Ok((0, 0))
        );
        assert_eq!(
            managed_forward(&[forward_single(ECS)], ECS, LEGACY),
            Ok((0, 100))
        );
        assert_eq!(
            managed_forward(&[auth_like(), weighted(10, 90)], ECS, LEGACY),
            Ok((1, 10))
        );
        assert_eq!(managed_forward(&[weighted(1, 1)], ECS, LEGACY), Ok((0, 50)));
        assert_eq!(
            managed_forward(&[weighted(0, 100)], ECS, LEGACY),
            Ok((0, 0))
        );
    }

    #[test]
    fn refuses_actions_it_does_not_manage() {
        assert!(managed_forward(&[forward_single("arn:tg/other")], ECS, LEGACY).is_err());
        assert!(managed_forward(&[auth_like()], ECS, LEGACY).is_err());
        let mut mixed = weighted(10, 90);
        if let Some(f) = mixed.forward_config.as_mut() {
            f.target_groups.get_or_insert_with(Vec::new).push(
                TargetGroupTuple::builder()
                    .target_group_arn("arn:tg/x")
                    .weight(5)
                    .build(),
            );
        }
        let err = managed_forward(&[mixed], ECS, LEGACY).unwrap_err();
        assert!(err.contains("arn:tg/x"), "{err}");
        assert!(managed_forward(&[weighted(0, 0)], ECS, LEGACY).is_err());
    }

    #[test]
    fn changes_only_the_managed_action_and_keeps_its_stickiness() {
        let before = vec![auth_like(), weighted(10, 90)];
        let after = with_weights(&before, 1, ECS, LEGACY, 50);
        assert_eq!(after[0], before[0], "other actions untouched");
        assert_eq!(after[1].order(), Some(2));
        let f = after[1].forward_config().unwrap();
        assert_eq!(
            f.target_group_stickiness_config(),
            before[1]
                .forward_config()
                .unwrap()
                .target_group_stickiness_config()
        );
        let weights: Vec<_> = f
            .target_groups()
            .iter()
            .map(|t| (t.target_group_arn().unwrap(), t.weight().unwrap()))
            .collect();
        assert_eq!(weights, vec![(ECS, 50), (LEGACY, 50)]);
        assert_eq!(managed_forward(&after, ECS, LEGACY), Ok((1, 50)));

        let oidc = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .authenticate_oidc_config(
                aws_sdk_elasticloadbalancingv2::types::AuthenticateOidcActionConfig::builder()
                    .issuer("https://idp")
                    .client_id("web")
                    .build(),
            )
            .order(1)
            .build();
        let kept = with_weights(&[oidc, forward_single(LEGACY)], 1, ECS, LEGACY, 10);
        let cfg = kept[0].authenticate_oidc_config().unwrap();
        assert_eq!(cfg.use_existing_client_secret(), Some(true));
        assert_eq!(
            (cfg.issuer(), cfg.client_id()),
            (Some("https://idp"), Some("web"))
        );

        let single = with_weights(&[forward_single(LEGACY)], 0, ECS, LEGACY, 10);
        assert_eq!(single[0].target_group_arn(), None);
        assert_eq!(managed_forward(&single, ECS, LEGACY), Ok((0, 10)));
    }
}
