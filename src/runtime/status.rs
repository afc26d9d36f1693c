//! The status model served at `GET /status` (DESIGN §6).
//!
//! The controller owns one [`SharedStatus`] and replaces fields in it as a pass progresses; the
//! HTTP server only reads it. The JSON shape is a contract for scripts, so every field is
//! serialised even when empty (`null` / `[]`) and field names are camelCase.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

mod history;
pub mod redact;
mod scheduled;

pub use history::{ACTION_HISTORY, PASS_HISTORY};
pub use scheduled::{ScheduledTaskStatus, scheduled_task_status};

use crate::adapters::git::CommitInfo;
use crate::core::diff::FieldDiff;
use crate::core::manifest::ManifestSet;
use crate::core::plan::{Action, ServicePlan};
use crate::core::state::{Mode, SyncState};
use crate::runtime::reconciler::cleanup::CleanupOutcome;
use crate::runtime::reconciler::decommission::InstanceOutcome;
use crate::runtime::reconciler::groups::GroupOutcome;
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
    /// The manifest's steps (ECS percent at each), for a progress bar.
    #[serde(default)]
    pub steps: Vec<u8>,
    /// RFC 3339: when the step interval lets the migration move on (the next
    /// step, or completion at 100%), if its gates pass by then.
    #[serde(default)]
    pub next_step_at: Option<String>,
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
    /// Its pre-deploy hooks, when the last pass was to move it to a new
    /// revision: the hook that ran or would run, and how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<crate::core::hooks::HookStatus>,
    /// What is still to do, as far as this pass can tell: planned actions it
    /// did not carry out (in report mode, all of them) and the migration's
    /// step it would take. The next pass plans afresh from what it observes.
    #[serde(default)]
    pub pending: Vec<String>,
    /// What the last passes did to the service or failed at, newest first
    /// (at most [`ACTION_HISTORY`]; this process's passes only).
    #[serde(default)]
    pub recent_actions: Vec<ActionRecord>,
}

/// One pass's changes to a service, or its failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    /// RFC 3339: when the pass started.
    pub at: String,
    pub pass_id: u64,
    pub actions: Vec<String>,
    /// `ok` or `error`.
    pub result: String,
    pub error: Option<String>,
}

/// What started a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassKind {
    /// The first pass of this process, or of its turn as leader.
    Start,
    /// The poll interval came round.
    #[default]
    Poll,
    /// A push webhook (or another wake-up) ended the wait.
    Webhook,
    /// Sooner than the poll: a rollout in progress, or a retry after an error.
    Requeue,
}

impl PassKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PassKind::Start => "start",
            PassKind::Poll => "poll",
            PassKind::Webhook => "webhook",
            PassKind::Requeue => "requeue",
        }
    }
}

/// The revision's commit, as people recognise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitStatus {
    pub subject: String,
    /// RFC 3339 committer time.
    pub time: String,
}

impl From<&CommitInfo> for CommitStatus {
    fn from(c: &CommitInfo) -> Self {
        CommitStatus {
            subject: c.subject.clone(),
            time: humantime::format_rfc3339_seconds(c.time).to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PassSummary {
    pub pass_id: u64,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    pub result: String,
    #[serde(default)]
    pub kind: PassKind,
    /// Whether the pass looked at everything or at some services only.
    #[serde(default)]
    pub scope: PassScope,
    /// A targeted pass: how many services it looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<usize>,
    /// A full pass: why it was not targeted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How much one pass looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassScope {
    /// Every declared service, orphans, schedules and fleets.
    #[default]
    Full,
    /// The services a push changed, and those rolling out or due for a retry.
    Targeted,
}

impl PassScope {
    pub fn as_str(self) -> &'static str {
        match self {
            PassScope::Full => "full",
            PassScope::Targeted => "targeted",
        }
    }
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

/// An Auto Scaling group in the decommission queue and when its next step acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    pub auto_scaling_group: String,
    /// `pending|draining|ready|stopped|terminating|skipped|released|held`.
    pub state: String,
    pub reason: Option<String>,
    pub action: Option<String>,
    /// RFC 3339: when the scale-in (or deletion) is due.
    pub acts_at: Option<String>,
    /// Why it is held (protection, scale-in protection, lifecycle hooks).
    pub skipped: Option<String>,
    pub instances: usize,
    pub done: Vec<String>,
    pub message: String,
    pub last_error: Option<String>,
}

/// One migration's `decommission.cleanup`: what it removes, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupStatus {
    pub cluster: String,
    pub service: String,
    /// The legacy target group has left the forward action.
    #[serde(default)]
    pub left_forward: bool,
    #[serde(default)]
    pub items: Vec<CleanupItemStatus>,
    /// Steps carried out in the last pass.
    #[serde(default)]
    pub done: Vec<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupItemStatus {
    /// `autoScalingGroup|targetGroup|launchTemplate`.
    pub item: String,
    pub name: Option<String>,
    /// `waiting|due|deleting|done|skipped`.
    pub state: String,
    /// Why, or what it waits for (the fleet, an earlier item, the cap).
    pub message: String,
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
    /// Subject and time of `revision`, when git could tell them.
    #[serde(default)]
    pub commit: Option<CommitStatus>,
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
    /// `kind: ScheduledTask`: each schedule in the group `ecsync-<controller-id>`.
    #[serde(default)]
    pub scheduled_tasks: Vec<ScheduledTaskStatus>,
    /// Auto Scaling groups ecsync is decommissioning or holds.
    #[serde(default)]
    pub decommission_groups: Vec<GroupStatus>,
    /// `decommission.cleanup` of each migration that declares it.
    #[serde(default)]
    pub decommission_cleanup: Vec<CleanupStatus>,
    /// The last passes, newest first (at most [`PASS_HISTORY`]).
    #[serde(default)]
    pub passes: Vec<PassSummary>,
}

impl StatusSnapshot {
    /// The snapshot before the first pass: nothing known yet.
    pub fn new(mode: Mode, role: Role) -> Self {
        StatusSnapshot {
            revision: None,
            commit: None,
            git_error: None,
            mode: mode.as_str().to_owned(),
            role,
            lease_token: None,
            last_pass: None,
            services: Vec::new(),
            decommission: Vec::new(),
            scheduled_tasks: Vec::new(),
            decommission_groups: Vec::new(),
            decommission_cleanup: Vec::new(),
            passes: Vec::new(),
        }
    }
}

impl StatusSnapshot {
    /// After a targeted pass: every service it did not look at, and the
    /// schedules and fleets it never looks at, stay as `previous` showed them.
    pub fn keep_untargeted(&mut self, previous: &StatusSnapshot) {
        let seen: std::collections::BTreeSet<(&str, &str)> = self
            .services
            .iter()
            .map(|s| (s.cluster.as_str(), s.service.as_str()))
            .collect();
        let kept: Vec<ServiceStatus> = previous
            .services
            .iter()
            .filter(|s| !seen.contains(&(s.cluster.as_str(), s.service.as_str())))
            .cloned()
            .collect();
        self.services.extend(kept);
        self.services
            .sort_by(|a, b| (&a.cluster, &a.service).cmp(&(&b.cluster, &b.service)));
        self.decommission = previous.decommission.clone();
        self.scheduled_tasks = previous.scheduled_tasks.clone();
        self.decommission_groups = previous.decommission_groups.clone();
        self.decommission_cleanup = previous.decommission_cleanup.clone();
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
    snapshot.services = report
        .services
        .iter()
        .map(|o| {
            let mut st = service_status(o, report.error.as_deref());
            let done = done_names(o);
            st.recent_actions = history::record(&last_pass, done, st.last_error.as_deref())
                .into_iter()
                .collect();
            if let Some(m) = &mut st.migration {
                m.steps = migration_steps(set, &o.plan);
            }
            st
        })
        .collect();
    snapshot.passes = vec![last_pass.clone()];
    snapshot.last_pass = Some(last_pass);
    snapshot.decommission = report
        .decommission
        .instances
        .iter()
        .map(|i| instance_status(i, report.decommission.error.as_deref()))
        .collect();
    snapshot.scheduled_tasks = report
        .scheduled
        .tasks
        .iter()
        .map(|t| scheduled_task_status(t, set, report.scheduled.error.as_deref()))
        .collect();
    snapshot.decommission_groups = report
        .decommission
        .groups
        .iter()
        .map(|g| group_status(g, report.decommission.error.as_deref()))
        .collect();
    snapshot.decommission_cleanup = report
        .decommission
        .cleanup
        .iter()
        .map(cleanup_status)
        .collect();
    snapshot
}

/// One migration's cleanup.
pub fn cleanup_status(c: &CleanupOutcome) -> CleanupStatus {
    CleanupStatus {
        cluster: c.plan.service.cluster.clone(),
        service: c.plan.service.name.clone(),
        left_forward: c.plan.left_forward,
        items: c
            .plan
            .items
            .iter()
            .map(|i| CleanupItemStatus {
                item: i.item.as_str().to_string(),
                name: i.name.clone(),
                state: i.state.as_str().to_string(),
                message: i.message.clone(),
            })
            .collect(),
        done: c.done.iter().map(|s| s.to_string()).collect(),
        message: c.plan.message.clone(),
        last_error: c.error.clone(),
    }
}

/// One Auto Scaling group in the decommission queue.
pub fn group_status(g: &GroupOutcome, phase_error: Option<&str>) -> GroupStatus {
    GroupStatus {
        auto_scaling_group: g.plan.group.clone(),
        state: g.plan.state.as_str().to_string(),
        reason: g.plan.why.as_ref().map(ToString::to_string),
        action: g.plan.action.map(|a| a.as_str().to_string()),
        acts_at: g
            .plan
            .acts_at
            .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        skipped: g.plan.skipped.as_ref().map(ToString::to_string),
        instances: g.plan.instances,
        done: g.done.iter().map(|s| s.to_string()).collect(),
        message: g.plan.message.clone(),
        last_error: g.error.clone().or_else(|| phase_error.map(str::to_string)),
    }
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
            .or_else(|| o.plan.waiting.clone())
            .or_else(|| o.plan.message.clone())
            .or_else(|| {
                (!o.plan.replace.is_empty())
                    .then(|| format!("needs replacement: {}", o.plan.replace.join(", ")))
            })
            .or_else(|| {
                o.hook
                    .as_ref()
                    .filter(|h| h.phase != crate::core::hooks::HookPhase::Succeeded)
                    .map(|h| h.summary())
            }),
        migration: o.migration.as_ref().map(migration_status),
        hook: o.hook.clone(),
        pending: pending(o),
        recent_actions: Vec::new(),
    }
}

/// What this pass changed, traffic included, by name.
fn done_names(o: &ServiceOutcome) -> Vec<String> {
    o.done.iter().map(|a| a.as_str().to_string()).collect()
}

/// [`ServiceStatus::pending`].
fn pending(o: &ServiceOutcome) -> Vec<String> {
    let mut out: Vec<String> = o
        .plan
        .actions
        .iter()
        .filter(|a| !o.done.contains(&a.kind()))
        .map(describe_action)
        .collect();
    if let Some(step) = o
        .migration
        .as_ref()
        .filter(|m| !m.applied)
        .and_then(|m| m.next_step())
    {
        out.push(step);
    }
    out
}

/// An action with what it touches: names and keys only, never values (a tag
/// value or an environment value is not for a status page).
pub fn describe_action(a: &Action) -> String {
    let what: Vec<String> = match a {
        Action::RegisterTaskDefinition { family } => vec![family.clone()],
        Action::UpdateService { fields } => {
            fields.iter().map(|f| f.api_name().to_string()).collect()
        }
        Action::TagService { tags } => tags.keys().cloned().collect(),
        Action::UntagService { keys } => keys.clone(),
        Action::CreateReplacement { name, .. } => vec![name.clone()],
        Action::CreateService | Action::PruneService => Vec::new(),
    };
    if what.is_empty() {
        a.name().to_string()
    } else {
        format!("{}: {}", a.name(), what.join(", "))
    }
}

/// The steps of the migration the manifest declares for `plan`'s service.
fn migration_steps(set: &ManifestSet, plan: &ServicePlan) -> Vec<u8> {
    set.services
        .iter()
        .find(|d| d.key == plan.key)
        .and_then(|d| d.spec.migration.as_ref())
        .map(|m| m.steps.clone())
        .unwrap_or_default()
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
            steps: Vec::new(),
            next_step_at: None,
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
        steps: Vec::new(),
        // Read-only, a step it would take has no clock yet.
        next_step_at: d
            .next_step_at
            .filter(|_| carried_out)
            .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> StatusSnapshot {
        StatusSnapshot {
            revision: Some("0123abc".into()),
            commit: Some(CommitStatus {
                subject: "web: nginx 1.27".into(),
                time: "2025-01-02T03:00:00Z".into(),
            }),
            git_error: None,
            mode: "auto".into(),
            role: Role::Leader,
            lease_token: Some(3),
            last_pass: Some(PassSummary {
                pass_id: 7,
                started_at: "2025-01-02T03:04:05Z".into(),
                duration_ms: 1500,
                result: "ok".into(),
                kind: PassKind::Webhook,
                scope: PassScope::Full,
                services: None,
                reason: None,
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
                    steps: vec![10, 50, 100],
                    next_step_at: Some("2025-01-02T03:05:05Z".into()),
                }),
                hook: None,
                pending: vec!["update_service: desiredCount".into()],
                recent_actions: vec![ActionRecord {
                    at: "2025-01-02T03:04:05Z".into(),
                    pass_id: 7,
                    actions: vec!["update_service".into()],
                    result: "ok".into(),
                    error: None,
                }],
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
            scheduled_tasks: Vec::new(),
            decommission_groups: Vec::new(),
            decommission_cleanup: vec![CleanupStatus {
                cluster: "prod".into(),
                service: "web".into(),
                left_forward: true,
                items: vec![CleanupItemStatus {
                    item: "targetGroup".into(),
                    name: Some("web-ec2".into()),
                    state: "waiting".into(),
                    message: "still referenced by a listener or rule of 1 load balancer(s)".into(),
                }],
                done: vec!["leave_forward".into()],
                message: "targetGroup: still referenced".into(),
                last_error: None,
            }],
            passes: Vec::new(),
        }
    }

    #[test]
    fn json_shape_is_camel_case_with_all_fields() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            v,
            json!({
                "revision": "0123abc",
                "commit": {"subject": "web: nginx 1.27", "time": "2025-01-02T03:00:00Z"},
                "gitError": null,
                "mode": "auto",
                "role": "leader",
                "leaseToken": 3,
                "lastPass": {"passId": 7, "startedAt": "2025-01-02T03:04:05Z", "durationMs": 1500, "result": "ok", "kind": "webhook", "scope": "full"},
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
                        "message": null,
                        "steps": [10, 50, 100],
                        "nextStepAt": "2025-01-02T03:05:05Z"
                    },
                    "pending": ["update_service: desiredCount"],
                    "recentActions": [{
                        "at": "2025-01-02T03:04:05Z", "passId": 7,
                        "actions": ["update_service"], "result": "ok", "error": null
                    }]
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
                }],
                "scheduledTasks": [],
                "decommissionGroups": [],
                "decommissionCleanup": [{
                    "cluster": "prod",
                    "service": "web",
                    "leftForward": true,
                    "items": [{
                        "item": "targetGroup",
                        "name": "web-ec2",
                        "state": "waiting",
                        "message": "still referenced by a listener or rule of 1 load balancer(s)"
                    }],
                    "done": ["leave_forward"],
                    "message": "targetGroup: still referenced",
                    "lastError": null
                }],
                "passes": []
            })
        );
    }

    #[test]
    fn json_from_before_the_dashboard_still_reads() {
        // Scripts may have stored older /status output; every new field has a default.
        let mut v = serde_json::to_value(sample()).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("commit");
        o.remove("passes");
        o.remove("scheduledTasks");
        o.remove("decommissionGroups");
        o.remove("decommissionCleanup");
        o["lastPass"].as_object_mut().unwrap().remove("kind");
        let svc = o["services"][0].as_object_mut().unwrap();
        svc.remove("pending");
        svc.remove("recentActions");
        let m = svc["migration"].as_object_mut().unwrap();
        m.remove("steps");
        m.remove("nextStepAt");
        let back: StatusSnapshot = serde_json::from_value(v).unwrap();
        assert_eq!(back.last_pass.unwrap().kind, PassKind::Poll);
        assert!(back.services[0].recent_actions.is_empty());
    }

    fn pass(id: u64) -> PassSummary {
        PassSummary {
            pass_id: id,
            started_at: format!("2025-01-02T03:04:{id:02}Z"),
            duration_ms: 10,
            result: "ok".into(),
            kind: PassKind::Poll,
            scope: PassScope::Full,
            services: None,
            reason: None,
        }
    }

    fn record(id: u64, actions: &[&str], error: Option<&str>) -> ActionRecord {
        history::record(
            &pass(id),
            actions.iter().map(|a| a.to_string()).collect(),
            error,
        )
        .unwrap()
    }

    /// A snapshot as `snapshot()` leaves it for pass `id`: that pass, and the
    /// service's record for it.
    fn after_pass(id: u64, rec: Option<ActionRecord>) -> StatusSnapshot {
        let mut s = sample();
        s.passes = vec![pass(id)];
        s.services[0].recent_actions = rec.into_iter().collect();
        s
    }

    #[test]
    fn a_targeted_pass_replaces_its_services_and_keeps_the_others() {
        let mut before = sample();
        let mut api = before.services[0].clone();
        api.service = "api".into();
        api.message = Some("before".into());
        before.services.insert(0, api);
        let mut web = before.services[1].clone();
        web.message = Some("after".into());
        let mut after = sample();
        after.services = vec![web];
        after.decommission.clear();
        after.keep_untargeted(&before);
        let shown: Vec<(&str, Option<&str>)> = after
            .services
            .iter()
            .map(|s| (s.service.as_str(), s.message.as_deref()))
            .collect();
        assert_eq!(shown, [("api", Some("before")), ("web", Some("after"))]);
        assert_eq!(after.decommission, before.decommission);
    }

    #[test]
    fn histories_are_newest_first_and_bounded() {
        let mut current = after_pass(1, Some(record(1, &["create_service"], None)));
        for id in 2..=40 {
            let mut next = after_pass(id, Some(record(id, &["update_service"], None)));
            next.keep_history(&current);
            current = next;
        }
        let ids: Vec<u64> = current.passes.iter().map(|p| p.pass_id).collect();
        assert_eq!(ids, (21..=40).rev().collect::<Vec<_>>());
        let recent = &current.services[0].recent_actions;
        assert_eq!(recent.len(), ACTION_HISTORY);
        assert_eq!(recent[0].pass_id, 40);
        assert_eq!(recent[ACTION_HISTORY - 1].pass_id, 31);
        // A service that was not there before starts with this pass alone.
        let mut fresh = after_pass(41, None);
        fresh.services[0].service = "other".into();
        fresh.keep_history(&current);
        assert!(fresh.services[0].recent_actions.is_empty());
        assert_eq!(fresh.passes.len(), PASS_HISTORY);
    }

    #[test]
    fn a_pass_that_changes_nothing_adds_no_record_and_a_repeated_failure_one() {
        assert_eq!(history::record(&pass(1), Vec::new(), None), None);
        let first = after_pass(1, Some(record(1, &[], Some("throttled"))));
        let mut again = after_pass(2, Some(record(2, &[], Some("throttled"))));
        again.keep_history(&first);
        let recent = &again.services[0].recent_actions;
        assert_eq!(recent.len(), 1);
        assert_eq!((recent[0].pass_id, recent[0].result.as_str()), (1, "error"));
        let mut other = after_pass(3, Some(record(3, &[], Some("denied"))));
        other.keep_history(&again);
        assert_eq!(other.services[0].recent_actions.len(), 2);
    }

    #[test]
    fn actions_are_described_by_what_they_touch_never_by_values() {
        use std::collections::{BTreeMap, BTreeSet};
        let tag = Action::TagService {
            tags: BTreeMap::from([("team".to_string(), "s3cr3t-value".to_string())]),
        };
        assert_eq!(describe_action(&tag), "tag_service: team");
        let update = Action::UpdateService {
            fields: BTreeSet::from([
                crate::core::plan::UpdateMember::DesiredCount,
                crate::core::plan::UpdateMember::TaskDefinition,
            ]),
        };
        assert_eq!(
            describe_action(&update),
            "update_service: desiredCount, taskDefinition"
        );
        assert_eq!(describe_action(&Action::CreateService), "create_service");
    }

    #[test]
    fn round_trips() {
        let s = sample();
        let back: StatusSnapshot =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
