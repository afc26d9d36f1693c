//! The rules: one pass's facts to candidate events, before deduplication.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{
    CleanupFacts, DedupeKey, Event, EventKind, GroupFacts, InstanceFacts, ObjectKind, PassFacts,
    ServiceFacts,
};
use crate::core::hooks::HookStatus;
use crate::core::migration::{GateState, Kind};
use crate::core::model::ServiceKey;
use crate::core::plan::ActionKind;
use crate::core::state::{Mode, SyncState};

/// Field paths named in a message; all of them are in `details.fields`.
const SHOWN_FIELDS: usize = 5;

pub(super) fn detect(pass: &PassFacts, rolling: &BTreeMap<ServiceKey, String>) -> Vec<Event> {
    let mut out = Vec::new();
    controller(pass, &mut out);
    let mut services: Vec<&ServiceFacts> = pass.services.iter().collect();
    services.sort_by(|a, b| a.key.cmp(b.key));
    for s in services {
        service(pass, s, rolling, &mut out);
    }
    for i in &pass.instances {
        instance(pass, i, &mut out);
    }
    for g in &pass.groups {
        group(pass, g, &mut out);
    }
    for c in &pass.cleanups {
        cleanup(pass, c, &mut out);
    }
    out
}

/// The rollouts still to be watched after this pass: those it started, and
/// those that are still under way. A failure or a degraded rollout ends the
/// watch (its own event tells); a service gone from the report is forgotten.
pub(super) fn still_rolling(
    pass: &PassFacts,
    rolling: &BTreeMap<ServiceKey, String>,
) -> BTreeMap<ServiceKey, String> {
    if pass.error.is_some() {
        // Nothing was observed: nothing is known to have changed.
        return rolling.clone();
    }
    let mut next = BTreeMap::new();
    for s in &pass.services {
        if started_change(s) {
            next.insert(s.key.clone(), drift_revision(pass, s));
        } else if let Some(rev) = rolling.get(s.key)
            && matches!(s.state, SyncState::Progressing | SyncState::OutOfSync)
        {
            next.insert(s.key.clone(), rev.clone());
        }
    }
    next
}

fn controller(pass: &PassFacts, out: &mut Vec<Event>) {
    let failures = [("aws", pass.error), ("git", pass.git_error)];
    for (source, error) in failures {
        let Some(error) = error else { continue };
        let message = match source {
            "git" => format!(
                "git: {error}; still reconciling revision {}",
                short(pass.revision)
            ),
            _ => format!("pass failed: {error}"),
        };
        let mut details = Map::new();
        details.insert("source".into(), json!(source));
        details.insert("error".into(), json!(error));
        out.push(Event {
            event: EventKind::SyncFailed,
            time: pass.now,
            controller_id: pass.controller_id.to_string(),
            revision: pass.revision.to_string(),
            kind: ObjectKind::Controller,
            cluster: None,
            name: pass.controller_id.to_string(),
            state: SyncState::Error.as_str().to_string(),
            message,
            details,
            key: DedupeKey {
                event: EventKind::SyncFailed,
                kind: ObjectKind::Controller,
                cluster: None,
                name: pass.controller_id.to_string(),
                revision: format!("{}:{source}", pass.revision),
            },
        });
    }
}

fn service(
    pass: &PassFacts,
    s: &ServiceFacts,
    rolling: &BTreeMap<ServiceKey, String>,
    out: &mut Vec<Event>,
) {
    if s.held {
        // A broken manifest: ecsync says nothing about what it cannot read.
        return;
    }
    let push = |out: &mut Vec<Event>, event, revision: String, message, details| {
        out.push(service_event(pass, s, event, revision, message, details));
    };
    if has_drift(s) {
        let (message, details) = drift(pass, s);
        push(
            out,
            EventKind::DriftDetected,
            drift_revision(pass, s),
            message,
            details,
        );
    }
    if s.state == SyncState::Error
        && let Some(error) = s.error
    {
        let mut details = Map::new();
        details.insert("error".into(), json!(error));
        details.insert("actions".into(), actions(s.done));
        push(
            out,
            EventKind::SyncFailed,
            pass.revision.to_string(),
            format!("{}: {error}", s.key),
            details,
        );
    }
    if let Some(h) = s.hook.filter(|h| h.phase.failed()) {
        hook_failed(pass, s, h, out);
    }
    if s.state == SyncState::Degraded {
        let (message, details) = degraded(s);
        push(
            out,
            EventKind::ServiceDegraded,
            pass.revision.to_string(),
            message,
            details,
        );
    }
    if s.state == SyncState::Synced
        && !started_change(s)
        && let Some(rev) = rolling.get(s.key)
    {
        let mut details = Map::new();
        if let Some(r) = s.rollout {
            details.insert("running".into(), json!(r.running));
            details.insert("desired".into(), json!(r.desired));
        }
        push(
            out,
            EventKind::ServiceSynced,
            rev.clone(),
            format!(
                "{}: the change rolled out; in sync with {}",
                s.key,
                short(pass.revision)
            ),
            details,
        );
    }
    if s.error.is_none() && s.done.contains(&ActionKind::PruneService) {
        let mut details = Map::new();
        details.insert("actions".into(), actions(s.done));
        push(
            out,
            EventKind::PruneDeleted,
            pass.revision.to_string(),
            format!("{}: deleted; its manifest is gone from Git", s.key),
            details,
        );
    }
    migration(pass, s, out);
}

fn migration(pass: &PassFacts, s: &ServiceFacts, out: &mut Vec<Event>) {
    let Some(m) = &s.migration else { return };
    let d = m.decision;
    let mut details = Map::new();
    details.insert("stage".into(), json!(d.stage));
    details.insert("stageBefore".into(), json!(d.stage_before));
    details.insert("percent".into(), json!(d.percent));
    details.insert("rollbacks".into(), json!(d.rollbacks));
    details.insert("reason".into(), json!(d.reason));
    let step = format!(
        "{}:stage {}:rollbacks {}",
        pass.revision, d.stage, d.rollbacks
    );
    let (event, revision, message) = match d.kind {
        Kind::Advance | Kind::Adopt if m.applied => (
            EventKind::MigrationStep,
            step,
            format!(
                "{}: {}% of traffic on ECS (stage {})",
                s.key, d.percent, d.stage
            ),
        ),
        Kind::Rollback if m.applied => {
            let failed: Vec<Value> = d
                .gates
                .iter()
                .filter(|g| g.state == GateState::Fail)
                .map(|g| json!({"name": g.name, "detail": g.detail}))
                .collect();
            details.insert("failedGates".into(), Value::Array(failed));
            (
                EventKind::MigrationRollback,
                step,
                format!(
                    "{}: traffic moved back to {}% on ECS: {}",
                    s.key, d.percent, d.reason
                ),
            )
        }
        Kind::Complete => {
            // Decided again every pass once complete; the moment it completed
            // is what makes it one event, whatever the commits since.
            let since = d
                .complete_since
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_default();
            details.insert("completeSince".into(), json!(since));
            (
                EventKind::MigrationCompleted,
                format!("complete since {since}"),
                format!("{}: migration complete, 100% of traffic on ECS", s.key),
            )
        }
        _ => return,
    };
    out.push(service_event(pass, s, event, revision, message, details));
}

fn instance(pass: &PassFacts, i: &InstanceFacts, out: &mut Vec<Event>) {
    if i.error.is_some() {
        return;
    }
    for (step, event, verb) in [
        ("stop", EventKind::DecommissionStopped, "stopped"),
        ("terminate", EventKind::DecommissionTerminated, "terminated"),
    ] {
        if !i.done.contains(&step) {
            continue;
        }
        let plan = i.plan;
        let mut details = why_details(plan.why.as_ref());
        details.insert("drainedFrom".into(), json!(plan.drained_from));
        out.push(object_event(
            pass,
            (event, ObjectKind::Instance),
            (None, plan.instance_id.clone()),
            plan.state.as_str(),
            format!(
                "{} {verb}{}",
                plan.instance_id,
                why_suffix(plan.why.as_ref())
            ),
            details,
        ));
    }
}

/// `service` and `why` of a decommission's evidence, for `details`.
fn why_details(why: Option<&crate::core::decommission::Why>) -> Map<String, Value> {
    let mut details = Map::new();
    if let Some(why) = why {
        details.insert("service".into(), json!(why.service()));
        details.insert("why".into(), json!(why.to_string()));
    }
    details
}

/// `: <why>` for a message, or nothing.
fn why_suffix(why: Option<&crate::core::decommission::Why>) -> String {
    why.map(|w| format!(": {w}")).unwrap_or_default()
}

/// An event about an object other than a service: an instance, a group, or
/// what cleanup deleted; deduplicated by event, kind, cluster, name and revision.
fn object_event(
    pass: &PassFacts,
    (event, kind): (EventKind, ObjectKind),
    (cluster, name): (Option<String>, String),
    state: &str,
    message: String,
    details: Map<String, Value>,
) -> Event {
    Event {
        event,
        time: pass.now,
        controller_id: pass.controller_id.to_string(),
        revision: pass.revision.to_string(),
        kind,
        cluster: cluster.clone(),
        name: name.clone(),
        state: state.to_string(),
        message,
        details,
        key: DedupeKey {
            event,
            kind,
            cluster,
            name,
            revision: pass.revision.to_string(),
        },
    }
}

/// An Auto Scaling group's scale-in is its `decommission.stopped` (Auto
/// Scaling then terminates its instances), its deletion its
/// `decommission.terminated`: the meanings its `ecsync.io/decommission` tag
/// gives `stopped` and `terminating`. A step is told once done, even when a
/// later step of the pass failed: the group changed all the same.
fn group(pass: &PassFacts, g: &GroupFacts, out: &mut Vec<Event>) {
    let plan = g.plan;
    for (step, event, message) in [
        (
            "scale_to_zero",
            EventKind::DecommissionStopped,
            format!(
                "Auto Scaling group {} scaled to 0 ({} instance(s))",
                plan.group, plan.instances
            ),
        ),
        (
            "delete",
            EventKind::DecommissionTerminated,
            format!("Auto Scaling group {} deleted", plan.group),
        ),
    ] {
        if !g.done.contains(&step) {
            continue;
        }
        let mut details = why_details(plan.why.as_ref());
        details.insert("group".into(), json!(plan.group));
        details.insert("instances".into(), json!(plan.instances));
        if let Some(a) = plan.action {
            details.insert("action".into(), json!(a.as_str()));
        }
        out.push(object_event(
            pass,
            (event, ObjectKind::AutoScalingGroup),
            (None, plan.group.clone()),
            plan.state.as_str(),
            format!("{message}{}", why_suffix(plan.why.as_ref())),
            details,
        ));
    }
}

/// `cleanup.deleted`, once per object deleted (the listener change deletes nothing).
fn cleanup(pass: &PassFacts, c: &CleanupFacts, out: &mut Vec<Event>) {
    use crate::core::decommission::CleanupStep;
    for step in &c.plan.steps {
        if !c.done.contains(&step.name()) {
            continue;
        }
        let (kind, name) = match step {
            CleanupStep::LeaveForward { .. } => continue,
            CleanupStep::DeleteLaunchTemplate { name, .. } => {
                (ObjectKind::LaunchTemplate, name.clone())
            }
            CleanupStep::DeleteGroup { name } => (ObjectKind::AutoScalingGroup, name.clone()),
            CleanupStep::DeleteTargetGroup { name, .. } => (ObjectKind::TargetGroup, name.clone()),
        };
        let mut details = Map::new();
        details.insert("service".into(), json!(c.plan.service.to_string()));
        out.push(object_event(
            pass,
            (EventKind::CleanupDeleted, kind),
            (Some(c.plan.service.cluster.clone()), name.clone()),
            "deleted",
            format!(
                "{} {name} deleted: the migration of {} is complete and its fleet is gone",
                kind.as_str(),
                c.plan.service
            ),
            details,
        ));
    }
}

fn service_event(
    pass: &PassFacts,
    s: &ServiceFacts,
    event: EventKind,
    revision: String,
    message: String,
    details: Map<String, Value>,
) -> Event {
    Event {
        event,
        time: pass.now,
        controller_id: pass.controller_id.to_string(),
        revision: pass.revision.to_string(),
        kind: ObjectKind::Service,
        cluster: Some(s.key.cluster.clone()),
        name: s.key.name.clone(),
        state: s.state.as_str().to_string(),
        message,
        details,
        key: DedupeKey {
            event,
            kind: ObjectKind::Service,
            cluster: Some(s.key.cluster.clone()),
            name: s.key.name.clone(),
            revision,
        },
    }
}

/// Git and ECS disagree: fields differ, an immutable field needs a
/// replacement, or the service is missing.
fn has_drift(s: &ServiceFacts) -> bool {
    !s.drift.is_empty() || !s.replace.is_empty() || (!s.exists && s.error.is_none())
}

/// This pass acted on the service's drift (not only on its traffic, and not
/// by deleting it): a rollout to watch until it is live.
fn started_change(s: &ServiceFacts) -> bool {
    s.error.is_none()
        && has_drift(s)
        && s.done.iter().any(|a| {
            matches!(
                a,
                ActionKind::RegisterTaskDefinition
                    | ActionKind::CreateService
                    | ActionKind::UpdateService
                    | ActionKind::TagService
                    | ActionKind::UntagService
                    | ActionKind::CreateReplacement
            )
        })
}

/// The Git revision and what the drift is: the same drift seen again is the
/// same event, a new one (another hand edit) is news. Only a hash of the
/// values is kept, and it is never sent.
fn drift_revision(pass: &PassFacts, s: &ServiceFacts) -> String {
    let mut h = Sha256::new();
    for d in s.drift {
        h.update(d.path.as_bytes());
        h.update([0]);
        h.update(d.desired.to_string().as_bytes());
        h.update([0]);
        h.update(d.live.to_string().as_bytes());
        h.update([1]);
    }
    for r in s.replace {
        h.update(r.as_bytes());
        h.update([2]);
    }
    h.update([u8::from(s.exists)]);
    let digest = hex::encode(h.finalize());
    format!("{}:{}", pass.revision, &digest[..16])
}

fn drift(pass: &PassFacts, s: &ServiceFacts) -> (String, Map<String, Value>) {
    let fields: Vec<&str> = s.drift.iter().map(|d| d.path.as_str()).collect();
    let corrected = started_change(s);
    let outcome = if corrected {
        "corrected".to_string()
    } else if pass.mode == Mode::Report {
        "not corrected (report mode)".to_string()
    } else if s.report_only {
        "not corrected (ecsync.io/sync: report)".to_string()
    } else if let Some(e) = s.error {
        format!("not corrected: {e}")
    } else {
        "not corrected".to_string()
    };
    let what = if !s.exists {
        "missing from ECS".to_string()
    } else {
        let mut what = match fields.len() {
            0 => String::new(),
            n => {
                let shown = fields[..n.min(SHOWN_FIELDS)].join(", ");
                let more = n.saturating_sub(SHOWN_FIELDS);
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("{n} drifted field{}: {shown}{more}", plural(n))
            }
        };
        if !s.replace.is_empty() {
            if !what.is_empty() {
                what.push_str("; ");
            }
            what.push_str(&format!("needs replacement: {}", s.replace.join(", ")));
        }
        what
    };
    let mut details = Map::new();
    details.insert("fields".into(), json!(fields));
    details.insert("replace".into(), json!(s.replace));
    details.insert("missing".into(), json!(!s.exists));
    details.insert("corrected".into(), json!(corrected));
    (format!("{}: {what}; {outcome}", s.key), details)
}

/// A pre-deploy hook failed or timed out: once per hook run (its hook
/// revision), however many passes and commits find it failed.
fn hook_failed(pass: &PassFacts, s: &ServiceFacts, h: &HookStatus, out: &mut Vec<Event>) {
    let mut details = Map::new();
    details.insert("hook".into(), json!(h.name));
    details.insert("phase".into(), json!(h.phase.as_str()));
    details.insert("hookRevision".into(), json!(h.revision));
    details.insert("exitCode".into(), json!(h.exit_code));
    details.insert("reason".into(), json!(h.reason));
    details.insert("taskArn".into(), json!(h.task_arn));
    let name = format!("{}/{}", s.key.name, h.name);
    out.push(Event {
        event: EventKind::HookFailed,
        time: pass.now,
        controller_id: pass.controller_id.to_string(),
        revision: pass.revision.to_string(),
        kind: ObjectKind::Hook,
        cluster: Some(s.key.cluster.clone()),
        name: name.clone(),
        state: h.phase.as_str().to_string(),
        message: format!("{}: {}", s.key, h.summary()),
        details,
        key: DedupeKey {
            event: EventKind::HookFailed,
            kind: ObjectKind::Hook,
            cluster: Some(s.key.cluster.clone()),
            name,
            revision: h.revision.clone(),
        },
    });
}

fn degraded(s: &ServiceFacts) -> (String, Map<String, Value>) {
    let mut details = Map::new();
    let mut why = Vec::new();
    if let Some(h) = s.hook.filter(|h| h.phase.failed()) {
        why.push(h.summary());
    }
    if let Some(r) = s.rollout {
        details.insert(
            "rolloutState".into(),
            json!(r.rollout_state.map(|s| s.as_str())),
        );
        details.insert("rolloutReason".into(), json!(r.rollout_reason));
        details.insert("running".into(), json!(r.running));
        details.insert("desired".into(), json!(r.desired));
        if r.failed() {
            why.push(match &r.rollout_reason {
                Some(reason) => format!("rollout failed: {reason}"),
                None => "rollout failed".to_string(),
            });
        }
    }
    if let Some(m) = &s.migration
        && m.decision.degraded
    {
        why.push(format!("migration: {}", m.decision.reason));
    }
    let why = if why.is_empty() {
        "degraded".to_string()
    } else {
        why.join("; ")
    };
    (format!("{}: {why}", s.key), details)
}

fn actions(done: &[ActionKind]) -> Value {
    Value::Array(done.iter().map(|a| json!(a.as_str())).collect())
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
