//! The status model served at `GET /status` (DESIGN §6).
//!
//! The controller owns one [`SharedStatus`] and replaces fields in it as a pass progresses; the
//! HTTP server only reads it. The JSON shape is a contract for scripts, so every field is
//! serialised even when empty (`null` / `[]`) and field names are camelCase.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// The sync state of one service. Serialised exactly as the variant name, which is also the
/// value of the `state` label of `ecsync_services`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SyncState {
    Synced,
    OutOfSync,
    Progressing,
    Degraded,
    Error,
    Held,
}

impl SyncState {
    /// Every state, in a stable order, so metrics can publish a zero for states nobody is in.
    pub const ALL: [SyncState; 6] = [
        SyncState::Synced,
        SyncState::OutOfSync,
        SyncState::Progressing,
        SyncState::Degraded,
        SyncState::Error,
        SyncState::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "Synced",
            SyncState::OutOfSync => "OutOfSync",
            SyncState::Progressing => "Progressing",
            SyncState::Degraded => "Degraded",
            SyncState::Error => "Error",
            SyncState::Held => "Held",
        }
    }
}

impl std::fmt::Display for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One drifted field, in the API input shape (`path` like `taskDefinition.cpu`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDrift {
    pub path: String,
    pub desired: serde_json::Value,
    pub live: serde_json::Value,
}

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
    pub drift: Vec<FieldDrift>,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusSnapshot {
    pub revision: Option<String>,
    pub git_error: Option<String>,
    pub mode: String,
    pub role: String,
    pub last_pass: Option<PassSummary>,
    pub services: Vec<ServiceStatus>,
    /// EC2 instances ecsync is decommissioning or has decided to leave alone.
    #[serde(default)]
    pub decommission: Vec<InstanceStatus>,
}

impl StatusSnapshot {
    /// The snapshot before the first pass: nothing known yet.
    pub fn new(mode: impl Into<String>) -> Self {
        StatusSnapshot {
            revision: None,
            git_error: None,
            mode: mode.into(),
            role: "leader".to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> StatusSnapshot {
        StatusSnapshot {
            revision: Some("0123abc".into()),
            git_error: None,
            mode: "auto".into(),
            role: "leader".into(),
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
                drift: vec![FieldDrift {
                    path: "desiredCount".into(),
                    desired: json!(3),
                    live: json!(2),
                }],
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

    #[test]
    fn states_serialise_as_their_names() {
        for state in SyncState::ALL {
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                json!(state.as_str()),
                "{state:?}"
            );
        }
        let names: Vec<_> = SyncState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "Synced",
                "OutOfSync",
                "Progressing",
                "Degraded",
                "Error",
                "Held"
            ]
        );
    }
}
