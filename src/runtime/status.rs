//! The status model served at `GET /status` (DESIGN §6).
//!
//! The controller owns one [`SharedStatus`] and replaces fields in it as a pass progresses; the
//! HTTP server only reads it. The JSON shape is a contract for scripts, so every field is
//! serialised even when empty (`null` / `[]`) and field names are camelCase.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::core::diff::FieldDiff;
use crate::core::manifest::ManifestSet;
use crate::core::state::{Mode, SyncState};
use crate::runtime::reconciler::decommission::InstanceOutcome;
use crate::runtime::reconciler::migration::MigrationReport;
use crate::runtime::reconciler::{PassReport, ServiceOutcome};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// Index into `migration.steps`; `None` before the first step was taken.
    pub step: Option<usize>,
    /// Percent of traffic on the ECS target group.
    pub percent: u8,
    pub gates: Vec<GateResult>,
    pub rollbacks: u32,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub cluster: String,
    pub service: String,
    /// The manifest file the service came from, when it came from one.
    pub source: Option<String>,
    pub state: SyncState,
    pub drift: Vec<FieldDiff>,
    /// Live differences that are not drift (foreign tags, ignored paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<crate::core::plan::Ignored>,
    /// The plan steps applied (or, in report mode, that would be applied) in the last pass.
    pub actions: Vec<String>,
    pub last_error: Option<String>,
    pub message: Option<String>,
    pub migration: Option<MigrationStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PassSummary {
    pub pass_id: u64,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    pub result: String,
}

/// An EC2 instance pending decommission (or skipped, or released) and when it will act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    pub instance_id: String,
    /// `pending|draining|ready|stopped|terminating|skipped|released|held`.
    pub state: String,
    /// The evidence: which migration (and since when) or which pruned service.
    pub reason: Option<String>,
    /// `stop` or `terminate`.
    pub action: Option<String>,
    /// RFC 3339: when the stop or terminate is due.
    pub acts_at: Option<String>,
    /// Why a candidate is left alone (protection, Auto Scaling, unmanaged group).
    pub skipped: Option<String>,
    /// Steps carried out in the last pass.
    pub done: Vec<String>,
    pub message: String,
    pub last_error: Option<String>,
}

/// This replica's part: alone, or the leader or a follower under leader election.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// No leader election: the only replica.
    Standalone,
    Leader,
    Follower,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusSnapshot {
    pub revision: Option<String>,
    pub git_error: Option<String>,
    pub mode: String,
    pub role: Role,
    /// The fencing token of the lease this replica leads with (leader election only).
    #[serde(default)]
    pub lease_token: Option<u64>,
    pub last_pass: Option<PassSummary>,
    pub services: Vec<ServiceStatus>,
    /// EC2 instances ecsync is decommissioning or has decided to leave alone.
    #[serde(default)]
    pub decommission: Vec<InstanceStatus>,
}

impl StatusSnapshot {
    /// The snapshot before the first pass: nothing known yet.
    pub fn new(mode: Mode, role: Role) -> Self {
        StatusSnapshot {
            revision: None,
            git_error: None,
            mode: mode.as_str().to_owned(),
            role,
            lease_token: None,
            last_pass: None,
            services: Vec::new(),
            decommission: Vec::new(),
        }
    }
}

/// Written by the controller, read by the HTTP server. A std lock (not tokio) because no guard
/// is ever held across an `.await`.
pub type SharedStatus = Arc<RwLock<StatusSnapshot>>;

pub fn shared(snapshot: StatusSnapshot) -> SharedStatus {
    Arc::new(RwLock::new(snapshot))
}

/// The snapshot a pass leaves: its revision, each service and instance, and
/// the manifest errors (or `git_error`) that an operator must see.
pub fn snapshot(
    report: &PassReport,
    set: &ManifestSet,
    git_error: Option<String>,
    last_pass: PassSummary,
    mode: Mode,
    (role, lease_token): (Role, Option<u64>),
) -> StatusSnapshot {
    let mut snapshot = StatusSnapshot::new(mode, role);
    snapshot.lease_token = lease_token;
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
        .map(|o| service_status(o, report.error.as_deref()))
        .collect();
    snapshot.decommission = report
        .decommission
        .instances
        .iter()
        .map(|i| instance_status(i, report.decommission.error.as_deref()))
        .collect();
    snapshot
}

/// One service as `/status` shows it; `pass_error` is the whole pass's error.
pub fn service_status(o: &ServiceOutcome, pass_error: Option<&str>) -> ServiceStatus {
    ServiceStatus {
        cluster: o.plan.key.cluster.clone(),
        service: o.plan.key.name.clone(),
        source: o.plan.source.clone(),
        state: o.state,
        drift: o.plan.drift.clone(),
        ignored: o.plan.ignored.clone(),
        // Report-only services show what auto mode would do.
        actions: if o.done.is_empty() && o.plan.report_only {
            o.plan
                .actions
                .iter()
                .map(|a| a.name().to_string())
                .collect()
        } else {
            o.done.iter().map(|a| a.as_str().to_string()).collect()
        },
        last_error: o.error.clone().or_else(|| pass_error.map(str::to_string)),
        message: o
            .plan
            .held
            .clone()
            .or_else(|| o.plan.message.clone())
            .or_else(|| {
                (!o.plan.replace.is_empty())
                    .then(|| format!("needs replacement: {}", o.plan.replace.join(", ")))
            }),
        migration: o.migration.as_ref().map(migration_status),
    }
}

/// One instance in the decommission queue; `phase_error` is the phase's own.
pub fn instance_status(i: &InstanceOutcome, phase_error: Option<&str>) -> InstanceStatus {
    InstanceStatus {
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
        last_error: i.error.clone().or_else(|| phase_error.map(str::to_string)),
    }
}

/// A migration's progress as `/status` shows it.
pub fn migration_status(m: &MigrationReport) -> MigrationStatus {
    let Some(d) = &m.decision else {
        return MigrationStatus {
            step: None,
            percent: m.live_percent.unwrap_or(0),
            gates: Vec::new(),
            rollbacks: 0,
            message: m.error.clone(),
        };
    };
    let carried_out = m.applied || !d.changes_anything();
    MigrationStatus {
        // Read-only: the recorded step is still the one observed.
        step: if carried_out { d.stage } else { d.stage_before }.checked_sub(1),
        percent: m.percent().unwrap_or(0),
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
        message: Some(match (&m.error, carried_out) {
            (Some(e), _) => format!("{}; failed: {e}", d.reason),
            (None, true) => d.reason.clone(),
            (None, false) => format!("would {}", d.reason),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> StatusSnapshot {
        StatusSnapshot {
            revision: Some("0123abc".into()),
            git_error: None,
            mode: "auto".into(),
            role: Role::Leader,
            lease_token: Some(3),
            last_pass: Some(PassSummary {
                pass_id: 7,
                started_at: "2025-01-02T03:04:05Z".into(),
                duration_ms: 1500,
                result: "ok".into(),
            }),
            services: vec![ServiceStatus {
                cluster: "prod".into(),
                service: "web".into(),
                source: Some("services/web.yaml".into()),
                state: SyncState::OutOfSync,
                drift: vec![FieldDiff {
                    path: "desiredCount".into(),
                    desired: json!(3),
                    live: json!(2),
                }],
                ignored: Vec::new(),
                actions: vec!["UpdateService".into()],
                last_error: None,
                message: None,
                migration: Some(MigrationStatus {
                    step: Some(1),
                    percent: 50,
                    gates: vec![GateResult {
                        name: "healthy-targets".into(),
                        passed: true,
                        detail: "2/2 healthy".into(),
                    }],
                    rollbacks: 0,
                    message: None,
                }),
            }],
            decommission: vec![InstanceStatus {
                instance_id: "i-0123".into(),
                state: "pending".into(),
                reason: Some(
                    "migration of prod/web at 100% on ECS since 2025-01-02T03:00:00Z".into(),
                ),
                action: Some("stop".into()),
                acts_at: Some("2025-01-02T04:00:00Z".into()),
                skipped: None,
                done: vec!["tag".into(), "deregister".into()],
                message: "stop at 2025-01-02T04:00:00Z".into(),
                last_error: None,
            }],
        }
    }

    #[test]
    fn json_shape_is_camel_case_with_all_fields() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            v,
            json!({
                "revision": "0123abc",
                "gitError": null,
                "mode": "auto",
                "role": "leader",
                "leaseToken": 3,
                "lastPass": {"passId": 7, "startedAt": "2025-01-02T03:04:05Z", "durationMs": 1500, "result": "ok"},
                "services": [{
                    "cluster": "prod",
                    "service": "web",
                    "source": "services/web.yaml",
                    "state": "OutOfSync",
                    "drift": [{"path": "desiredCount", "desired": 3, "live": 2}],
                    "actions": ["UpdateService"],
                    "lastError": null,
                    "message": null,
                    "migration": {
                        "step": 1,
                        "percent": 50,
                        "gates": [{"name": "healthy-targets", "passed": true, "detail": "2/2 healthy"}],
                        "rollbacks": 0,
                        "message": null
                    }
                }],
                "decommission": [{
                    "instanceId": "i-0123",
                    "state": "pending",
                    "reason": "migration of prod/web at 100% on ECS since 2025-01-02T03:00:00Z",
                    "action": "stop",
                    "actsAt": "2025-01-02T04:00:00Z",
                    "skipped": null,
                    "done": ["tag", "deregister"],
                    "message": "stop at 2025-01-02T04:00:00Z",
                    "lastError": null
                }]
            })
        );
    }

    #[test]
    fn round_trips() {
        let s = sample();
        let back: StatusSnapshot =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
