//! Pre-deploy hooks (DESIGN §3 `hooks.preDeploy`): what one pass does about
//! them, decided from the recorded results, the hook tasks ECS lists under
//! `startedBy=ecsync/<service>`, and `now`. Nothing is remembered in process:
//! a restarted ecsync finds a running hook task and waits for it.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use crate::core::api::Problems;
use crate::core::manifest::FieldPath;
use crate::core::model::{DEFAULT_HOOK_TIMEOUT, PreDeployHook, ServiceSpec, TaskDefinition};
use crate::core::plan::Action;
use crate::core::tags::{HookRecord, HookResult};

/// `startedBy` of every hook task of `service` (DESIGN §3).
pub fn started_by(service: &str) -> String {
    format!("ecsync/{service}")
}

/// The revision hook results are recorded for: the content hash of the task
/// definition the service is to move to, together with the hooks themselves,
/// so that fixing a failed hook's command runs it again without a change to
/// the task definition, while the same manifest never reruns one.
pub fn revision(task_definition_hash: &str, hooks: &[PreDeployHook]) -> String {
    let mut h = Sha256::new();
    h.update(task_definition_hash.as_bytes());
    // The hooks' own JSON: serialising plain strings and lists cannot fail.
    h.update(serde_json::to_vec(hooks).unwrap_or_default());
    hex::encode(&h.finalize()[..8])
}

/// A plan that registers a task definition moves the service to a new
/// revision (creating it, updating it, or standing in for it while it is
/// replaced): that is what pre-deploy hooks run before.
pub fn gated(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::RegisterTaskDefinition { .. }))
}

/// What types cannot say about `spec.hooks` (DESIGN §3).
pub fn validate(spec: &ServiceSpec, path: &FieldPath, p: &mut Problems) {
    let Some(hooks) = &spec.hooks else { return };
    let list = path.key("hooks").key("preDeploy");
    let td = &spec.task_definition;
    let mut names = BTreeSet::new();
    for (i, h) in hooks.pre_deploy.iter().enumerate() {
        let hp = list.index(i);
        if !is_hook_name(&h.name) {
            p.push((
                hp.key("name"),
                "must be 1-64 letters, digits, hyphens or underscores".into(),
            ));
        } else if !names.insert(h.name.as_str()) {
            p.push((
                hp.key("name"),
                format!("hook {:?} is declared twice", h.name),
            ));
        }
        if h.command.is_empty() || h.command.iter().all(|c| c.trim().is_empty()) {
            p.push((hp.key("command"), "must not be empty".into()));
        }
        if let Some(t) = &h.timeout {
            match crate::core::manifest::validate::parse_duration(t) {
                Err(e) => p.push((hp.key("timeout"), e)),
                Ok(d) if d.is_zero() => p.push((hp.key("timeout"), "must be longer than 0".into())),
                Ok(_) => {}
            }
        }
        match &h.container_name {
            Some(c)
                if !td
                    .container_definitions
                    .iter()
                    .any(|d| d.name.as_deref() == Some(c.as_str())) =>
            {
                p.push((
                    hp.key("containerName"),
                    format!("no container named {c:?} in the task definition"),
                ))
            }
            None if container(h, td).is_none() && !td.container_definitions.is_empty() => p.push((
                hp.key("containerName"),
                "the task definition has no essential container to run the command in: name one"
                    .into(),
            )),
            _ => {}
        }
    }
}

/// Hook names go into tags (`<name>@<revision>:<result>`) and log lines.
fn is_hook_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// How far a service's hooks are for one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Every hook succeeded: the service may move to the revision.
    Done,
    /// This hook failed: nothing runs again until the revision changes.
    Failed(usize),
    /// This hook is the next to run (or to wait for).
    Next(usize),
}

/// Hooks run in order and each only after the one before succeeded, so the
/// latest record says how far they got; records of other revisions, or of
/// hooks no longer declared, say nothing.
pub fn progress(hooks: &[PreDeployHook], revision: &str, records: &[HookRecord]) -> Progress {
    let index = |r: &HookRecord| hooks.iter().position(|h| h.name == r.name);
    let mine = records.iter().filter(|r| r.revision == revision);
    let mut next = 0;
    for r in mine {
        let Some(i) = index(r) else { continue };
        match r.result {
            HookResult::Failed => return Progress::Failed(i),
            HookResult::Succeeded => next = next.max(i + 1),
        }
    }
    if next >= hooks.len() {
        Progress::Done
    } else {
        Progress::Next(next)
    }
}

/// One task found by `startedBy`, as far as the decision needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookTask {
    pub arn: String,
    /// `(hook, revision)` from the task's `ecsync.io/hook-task` tag.
    pub hook: Option<(String, String)>,
    /// `lastStatus` is `STOPPED`.
    pub stopped: bool,
    /// ecsync's start clock (tag), else the task's `createdAt`.
    pub started_at: Option<SystemTime>,
    pub stopped_reason: Option<String>,
    pub containers: Vec<ContainerExit>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerExit {
    pub name: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

/// Why a hook failed: the container, its exit code and the reason ECS gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub container: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.container, self.exit_code) {
            (Some(c), Some(code)) => write!(f, "container {c} exited {code}: {}", self.reason),
            (Some(c), None) => write!(f, "container {c} has no exit code: {}", self.reason),
            _ => f.write_str(&self.reason),
        }
    }
}

/// How a hook task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    Failed(Failure),
    /// Still running past its timeout: it is stopped and counts as failed.
    TimedOut(Duration),
}

/// What this pass does about the service's hooks.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Proceed,
    /// Start hook `index` (no task of it for this revision exists).
    Run {
        index: usize,
    },
    /// Hook `index` runs in `task`: look again on a later pass.
    Wait {
        index: usize,
        task: String,
    },
    /// Hook `index` ended in `task`: record it (then decide again).
    Finished {
        index: usize,
        task: String,
        outcome: Outcome,
    },
    /// Hook `index` failed earlier for this revision.
    Failed {
        index: usize,
    },
}

pub struct Input<'a> {
    pub hooks: &'a [PreDeployHook],
    /// The content hash of the task definition the service is to move to.
    pub revision: &'a str,
    pub records: &'a [HookRecord],
    pub tasks: &'a [HookTask],
    /// The definition's essential containers: success is each exiting 0.
    pub essential: &'a BTreeSet<String>,
    pub now: SystemTime,
}

pub fn timeout(hook: &PreDeployHook) -> Duration {
    let text = hook.timeout.as_deref().unwrap_or(DEFAULT_HOOK_TIMEOUT);
    // Validation refused any other spelling.
    crate::core::manifest::validate::parse_duration(text).unwrap_or(Duration::from_secs(15 * 60))
}

pub fn decide(i: &Input) -> Decision {
    let index = match progress(i.hooks, i.revision, i.records) {
        Progress::Done => return Decision::Proceed,
        Progress::Failed(index) => return Decision::Failed { index },
        Progress::Next(index) => index,
    };
    let hook = &i.hooks[index];
    let mine = |t: &&HookTask| {
        t.hook
            .as_ref()
            .is_some_and(|(n, r)| *n == hook.name && r == i.revision)
    };
    if let Some(t) = i.tasks.iter().filter(mine).find(|t| !t.stopped) {
        let limit = timeout(hook);
        let ran = t
            .started_at
            .and_then(|s| i.now.duration_since(s).ok())
            .unwrap_or_default();
        if ran > limit {
            return Decision::Finished {
                index,
                task: t.arn.clone(),
                outcome: Outcome::TimedOut(limit),
            };
        }
        return Decision::Wait {
            index,
            task: t.arn.clone(),
        };
    }
    // Several stopped runs only when a record was lost: the latest tells.
    match i
        .tasks
        .iter()
        .filter(mine)
        .filter(|t| t.stopped)
        .max_by_key(|t| t.started_at)
    {
        Some(t) => Decision::Finished {
            index,
            task: t.arn.clone(),
            outcome: evaluate(t, i.essential),
        },
        None => Decision::Run { index },
    }
}

/// Success is every essential container exiting 0; a non-essential one may
/// exit as it likes. An essential container without an exit code never ran
/// to the end (image pull, resources): that is a failure too.
pub fn evaluate(task: &HookTask, essential: &BTreeSet<String>) -> Outcome {
    let task_reason = || {
        task.stopped_reason
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "no reason given".into())
    };
    for name in essential {
        let Some(c) = task.containers.iter().find(|c| &c.name == name) else {
            return Outcome::Failed(Failure {
                container: Some(name.clone()),
                exit_code: None,
                reason: task_reason(),
            });
        };
        if c.exit_code != Some(0) {
            return Outcome::Failed(Failure {
                container: Some(name.clone()),
                exit_code: c.exit_code,
                reason: c
                    .reason
                    .clone()
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(task_reason),
            });
        }
    }
    Outcome::Succeeded
}

/// The containers whose exit decides success (ECS's default is essential).
pub fn essential_containers(td: &TaskDefinition) -> BTreeSet<String> {
    td.container_definitions
        .iter()
        .filter(|c| is_essential(c))
        .filter_map(|c| c.name.clone())
        .collect()
}

/// The container a hook's command runs in: its `containerName`, or the first
/// essential container.
pub fn container<'a>(hook: &'a PreDeployHook, td: &'a TaskDefinition) -> Option<&'a str> {
    if let Some(name) = hook.container_name.as_deref() {
        return Some(name);
    }
    td.container_definitions
        .iter()
        .find(|c| is_essential(c))
        .and_then(|c| c.name.as_deref())
}

/// ECS's default: a container is essential unless it says otherwise.
fn is_essential(c: &crate::core::model::ContainerDefinition) -> bool {
    c.essential.unwrap_or(true)
}

/// A hook's state as `/status`, `diff` and the logs show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HookPhase {
    /// Would run before the service moves (what `diff` and `--dry-run` say).
    Pending,
    /// Its task runs; the pass requeues.
    Running,
    Succeeded,
    Failed,
    TimedOut,
}

impl HookPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timedOut",
        }
    }
    /// The service stays where it is until the manifest changes.
    pub fn failed(self) -> bool {
        matches!(self, Self::Failed | Self::TimedOut)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookStatus {
    pub name: String,
    pub phase: HookPhase,
    /// [`revision`]: the task definition's content and the hooks it ran for.
    pub revision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
}

impl HookStatus {
    pub fn new(name: &str, phase: HookPhase, revision: &str) -> Self {
        HookStatus {
            name: name.to_string(),
            phase,
            revision: revision.to_string(),
            exit_code: None,
            reason: None,
            task_arn: None,
        }
    }
    pub fn summary(&self) -> String {
        if self.phase == HookPhase::Pending {
            return format!(
                "pre-deploy hook {} runs first, with the new revision; the service moves only once it succeeds",
                self.name
            );
        }
        let mut s = format!("pre-deploy hook {} {}", self.name, self.phase.as_str());
        if let Some(t) = self
            .task_arn
            .as_deref()
            .filter(|_| self.phase == HookPhase::Running)
        {
            s.push_str(&format!(" (task {t})"));
        }
        if let Some(code) = self.exit_code {
            s.push_str(&format!(" (exit code {code})"));
        }
        if let Some(r) = &self.reason {
            s.push_str(": ");
            s.push_str(r);
        }
        if self.phase.failed() {
            s.push_str(
                "; the service stays on its current revision until the task definition or the hook changes",
            );
        }
        s
    }
}

#[cfg(test)]
mod tests;
