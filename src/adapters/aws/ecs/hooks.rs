//! Pre-deploy hook tasks (DESIGN §3 `hooks.preDeploy`): find the ones a
//! service started (by `startedBy`), start one, stop one past its timeout,
//! find the revision they run with, and record their results in tags.
//! What to do is decided in `core::hooks`; this only reads and calls.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use aws_sdk_ecs::types as ecs;
use tracing::info;

use crate::adapters::aws::convert::{self, OneOffTask};
use crate::adapters::aws::{AwsError, Clients, call_error};
use crate::core::hooks::{ContainerExit, HookTask};
use crate::core::model::{ServiceKey, ServiceSpec};
use crate::core::tags::{self, HookRecord};

/// DescribeTasks takes at most 100 tasks per call.
const DESCRIBE_TASKS_MAX: usize = 100;

/// A registered revision with the content the service is to move to.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub arn: String,
    /// Its [`tags::HOOK`] record, and the failure reason beside it.
    pub record: Option<HookRecord>,
    pub reason: Option<String>,
}

/// The family's latest ACTIVE revision, if it has the content `hash` (ecsync
/// tags each revision it registers with its content hash). The hooks run with
/// it and the service then moves to that very revision, so waiting on a hook
/// over many passes registers nothing new.
pub async fn registered_revision(
    clients: &Clients,
    family: &str,
    hash: &str,
) -> Result<Option<Registered>, AwsError> {
    let out = match clients
        .ecs
        .describe_task_definition()
        .task_definition(family)
        .include(ecs::TaskDefinitionField::Tags)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            let e = call_error("ECS:DescribeTaskDefinition", e);
            // A family never registered: ECS answers ClientException.
            let unknown = e.code() == Some("ClientException");
            return if unknown { Ok(None) } else { Err(e) };
        }
    };
    let found = convert::tags_from_sdk(out.tags());
    let arn = out
        .task_definition()
        .and_then(|td| td.task_definition_arn())
        .unwrap_or_default();
    if arn.is_empty() || found.get(tags::SPEC_HASH).map(String::as_str) != Some(hash) {
        return Ok(None);
    }
    Ok(Some(Registered {
        arn: arn.to_string(),
        record: HookRecord::from_tags(&found),
        reason: found.get(tags::HOOK_REASON).cloned(),
    }))
}

/// Every task `started_by` started in `cluster`, running or stopped (ECS
/// keeps a stopped task listed for about an hour; the result tag outlives it).
pub async fn hook_tasks(
    clients: &Clients,
    cluster: &str,
    started_by: &str,
) -> Result<Vec<HookTask>, AwsError> {
    let mut arns = BTreeSet::new();
    for status in [ecs::DesiredStatus::Running, ecs::DesiredStatus::Stopped] {
        let mut pages = clients
            .ecs
            .list_tasks()
            .cluster(cluster)
            .started_by(started_by)
            .desired_status(status)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("ECS:ListTasks", e))?;
            arns.extend(page.task_arns().iter().cloned());
        }
    }
    let arns: Vec<String> = arns.into_iter().collect();
    let mut found = Vec::new();
    for chunk in arns.chunks(DESCRIBE_TASKS_MAX) {
        let out = clients
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .include(ecs::TaskField::Tags)
            .send()
            .await
            .map_err(|e| call_error("ECS:DescribeTasks", e))?;
        // A task that is listed and cannot be described is one ecsync cannot
        // rule out: starting another could run the hook twice.
        if let Some(f) = out
            .failures()
            .iter()
            .find(|f| f.reason() != Some("MISSING"))
        {
            return Err(AwsError::Incomplete(format!(
                "DescribeTasks in {cluster}: {} {}",
                f.arn().unwrap_or_default(),
                f.reason().unwrap_or("failed")
            )));
        }
        found.extend(
            out.tasks()
                .iter()
                .filter(|t| t.started_by() == Some(started_by))
                .map(hook_task),
        );
    }
    Ok(found)
}

fn hook_task(t: &ecs::Task) -> HookTask {
    let tags = convert::tags_from_sdk(t.tags());
    let started_at = tags
        .get(tags::HOOK_STARTED)
        .and_then(|v| tags::parse_time(v))
        .or_else(|| t.created_at().and_then(|d| SystemTime::try_from(*d).ok()));
    HookTask {
        arn: t.task_arn().unwrap_or_default().to_string(),
        hook: tags
            .get(tags::HOOK_TASK)
            .and_then(|v| tags::parse_hook_task(v)),
        stopped: t.last_status() == Some("STOPPED"),
        started_at,
        stopped_reason: t.stopped_reason().map(str::to_string),
        containers: t
            .containers()
            .iter()
            .map(|c| ContainerExit {
                name: c.name().unwrap_or_default().to_string(),
                exit_code: c.exit_code(),
                reason: c.reason().map(str::to_string),
            })
            .collect(),
    }
}

/// One hook run, as `RunTask` gets it.
pub struct Run<'a> {
    pub key: &'a ServiceKey,
    pub spec: &'a ServiceSpec,
    pub task_definition: &'a str,
    pub hook: &'a str,
    /// [`crate::core::hooks::revision`].
    pub revision: &'a str,
    pub container: &'a str,
    pub command: &'a [String],
    pub controller_id: &'a str,
    pub now: SystemTime,
}

/// Start the hook's task; returns its ARN.
pub async fn run_task(clients: &Clients, r: &Run<'_>) -> Result<String, AwsError> {
    let started_by = crate::core::hooks::started_by(&r.key.name);
    let task_tags = BTreeMap::from([
        (tags::MANAGED_BY.to_string(), r.controller_id.to_string()),
        (
            tags::HOOK_TASK.to_string(),
            tags::hook_task_value(r.hook, r.revision),
        ),
        (tags::HOOK_STARTED.to_string(), tags::format_time(r.now)),
    ]);
    let token = client_token(r.key, r.hook, r.revision);
    let input = OneOffTask {
        cluster: &r.key.cluster,
        task_definition: r.task_definition,
        container: r.container,
        command: r.command,
        started_by: &started_by,
        client_token: &token,
        tags: &task_tags,
    };
    let out = convert::run_task(r.spec, &input)?
        .send_with(&clients.ecs)
        .await
        .map_err(|e| call_error("ECS:RunTask", e))?;
    if let Some(f) = out.failures().first() {
        // No capacity, a missing subnet: nothing started, so nothing to
        // record; the pass fails and is retried with backoff.
        return Err(AwsError::Call {
            operation: "ECS:RunTask",
            code: f.reason().map(str::to_string),
            message: format!(
                "{} {}",
                f.reason().unwrap_or("failed"),
                f.detail().unwrap_or_default()
            ),
        });
    }
    let arn = out
        .tasks()
        .first()
        .and_then(|t| t.task_arn())
        .ok_or_else(|| AwsError::Incomplete("RunTask answered without a task".into()))?
        .to_string();
    info!(cluster = %r.key.cluster, service = %r.key.name, hook = %r.hook, task = %arn,
          task_definition = %r.task_definition, container = %r.container,
          "started pre-deploy hook task: the service moves to this revision only once it succeeds");
    Ok(arn)
}

/// ECS keeps a `RunTask` client token for a while: the same hook of the same
/// revision for the same service is one run (at most 64 characters).
fn client_token(key: &ServiceKey, hook: &str, revision: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{key}/{hook}@{revision}").as_bytes());
    hex::encode(&digest[..16])
}

/// Stop a hook task that ran past its timeout.
pub async fn stop_task(
    clients: &Clients,
    key: &ServiceKey,
    task: &str,
    reason: &str,
) -> Result<(), AwsError> {
    clients
        .ecs
        .stop_task()
        .cluster(&key.cluster)
        .task(task)
        .reason(reason)
        .send()
        .await
        .map_err(|e| call_error("ECS:StopTask", e))?;
    info!(cluster = %key.cluster, service = %key.name, %task, %reason, "stopped pre-deploy hook task");
    Ok(())
}

/// Write a hook's result on each of `arns` (the service, when it exists,
/// and the revision the hook ran with); a success clears an earlier reason.
pub async fn record(
    clients: &Clients,
    key: &ServiceKey,
    arns: &[&str],
    record: &HookRecord,
    reason: Option<&str>,
) -> Result<(), AwsError> {
    let mut set = BTreeMap::from([(tags::HOOK.to_string(), record.format())]);
    if let Some(r) = reason {
        set.insert(tags::HOOK_REASON.to_string(), tags::tag_text(r));
    }
    for arn in arns {
        clients
            .ecs
            .tag_resource()
            .resource_arn(*arn)
            .set_tags(Some(convert::sdk_tags(&set)))
            .send()
            .await
            .map_err(|e| call_error("ECS:TagResource", e))?;
        if reason.is_none() {
            clients
                .ecs
                .untag_resource()
                .resource_arn(*arn)
                .tag_keys(tags::HOOK_REASON)
                .send()
                .await
                .map_err(|e| call_error("ECS:UntagResource", e))?;
        }
    }
    info!(cluster = %key.cluster, service = %key.name, hook = %record.name,
          result = record.result.as_str(), revision = %record.revision, reason = ?reason,
          on = ?arns, "recorded pre-deploy hook result");
    Ok(())
}
