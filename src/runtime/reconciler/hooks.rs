//! The pre-deploy hook phase (DESIGN §3 `hooks.preDeploy`): before a pass
//! moves a service to a new task-definition revision, its hooks run with that
//! revision, one after the other, each as a one-off task. A pass never sleeps
//! on a task: it starts it, or finds it still running, and leaves the service
//! where it is (`Progressing`, requeued); a later pass finds the task by
//! `startedBy` and reads how it ended. Results live in tags, so a restart
//! neither reruns a hook nor starts a second task for one still running.

use std::collections::BTreeMap;
use std::time::SystemTime;

use tracing::{info, warn};

use crate::adapters::aws::ecs::apply::register_task_definition;
use crate::adapters::aws::ecs::hooks::{self as aws, Run};
use crate::adapters::aws::{AwsError, Clients};
use crate::core::hooks::{
    self, Decision, Failure, HookPhase, HookStatus, HookTask, Input, Outcome, Progress,
};
use crate::core::manifest::DesiredService;
use crate::core::plan::{LiveService, ServicePlan};
use crate::core::tags::{self, HookRecord, HookResult};
use crate::runtime::metrics::Metrics;

/// The outcome of a plan this pass does not act on (read only, report only,
/// waiting, nothing to do), with what its hooks would do or are doing: read,
/// never acted on.
pub(super) async fn unapplied(
    r: &super::Reconciler,
    plan: ServicePlan,
    desired: Option<&DesiredService>,
    live: Option<&LiveService>,
) -> super::ServiceOutcome {
    let gate = match desired {
        Some(d) if plan.held.is_none() && plan.error.is_none() => {
            let c = Context {
                clients: &r.clients,
                metrics: &r.metrics,
                controller_id: &r.controller_id,
                desired: d,
                plan: &plan,
                live: live.map(|l| (l.arn.as_str(), &l.tags)),
                act: false,
                now: SystemTime::now(),
            };
            gate(&c).await
        }
        _ => Ok(Gate::default()),
    };
    let mut o = match gate {
        Ok(g) => {
            let mut o = super::ServiceOutcome::new(plan, None, Ok(()));
            o.hook = g.status;
            o
        }
        Err(e) => super::ServiceOutcome::new(plan, None, Err(e)),
    };
    o.settle();
    o
}

pub struct Context<'a> {
    pub clients: &'a Clients,
    pub metrics: &'a Metrics,
    pub controller_id: &'a str,
    pub desired: &'a DesiredService,
    pub plan: &'a ServicePlan,
    /// The live service's ARN and tags, when it exists.
    pub live: Option<(&'a str, &'a BTreeMap<String, String>)>,
    /// Start and stop tasks and record results; otherwise (dry run, report
    /// mode) only read, and say what would happen.
    pub act: bool,
    pub now: SystemTime,
}

/// Whether the service may move on this pass, and with what.
#[derive(Debug, Default)]
pub struct Gate {
    /// `None`: no hook stands between the service and its plan.
    pub status: Option<HookStatus>,
    pub proceed: bool,
    /// The revision the hooks ran with: the service moves to exactly it.
    pub task_definition_arn: Option<String>,
    /// This phase registered the revision (to run the first hook with it).
    pub registered: bool,
    /// The last hook's record, for a service created after its hooks.
    pub record: Option<String>,
}

impl Gate {
    fn open() -> Self {
        Gate {
            proceed: true,
            ..Default::default()
        }
    }
}

pub async fn gate(c: &Context<'_>) -> Result<Gate, AwsError> {
    let spec = match &c.plan.effective {
        Some(e) => (&e.spec, e.task_definition_hash.as_str()),
        None => (&c.desired.spec, c.desired.task_definition_hash.as_str()),
    };
    let (spec, hash) = spec;
    let declared = spec.pre_deploy_hooks();
    if declared.is_empty() || !hooks::gated(&c.plan.actions) {
        return Ok(Gate::open());
    }
    let key = &c.desired.key;
    let revision = hooks::revision(hash, declared);
    let td = &spec.task_definition;
    let registered = aws::registered_revision(c.clients, &td.family, hash).await?;

    // The record on the service, and the one on the revision (a service that
    // does not exist yet has only that one).
    let mut records: Vec<(HookRecord, Option<String>)> = Vec::new();
    if let Some((_, t)) = c.live
        && let Some(r) = HookRecord::from_tags(t)
    {
        records.push((r, t.get(tags::HOOK_REASON).cloned()));
    }
    if let Some(r) = &registered
        && let Some(rec) = &r.record
    {
        records.push((rec.clone(), r.reason.clone()));
    }
    let essential = hooks::essential_containers(td);
    let mut gate = Gate::default();
    let mut tasks: Option<Vec<HookTask>> = None;
    loop {
        let plain: Vec<HookRecord> = records.iter().map(|(r, _)| r.clone()).collect();
        if matches!(
            hooks::progress(declared, &revision, &plain),
            Progress::Next(_)
        ) && tasks.is_none()
        {
            let started_by = hooks::started_by(&key.name);
            tasks = Some(aws::hook_tasks(c.clients, &key.cluster, &started_by).await?);
        }
        let decision = hooks::decide(&Input {
            hooks: declared,
            revision: &revision,
            records: &plain,
            tasks: tasks.as_deref().unwrap_or_default(),
            essential: &essential,
            now: c.now,
        });
        let status = |index: usize, phase| HookStatus::new(&declared[index].name, phase, &revision);
        match decision {
            Decision::Proceed => {
                let last = declared.len() - 1;
                gate.status = Some(status(last, HookPhase::Succeeded));
                gate.proceed = true;
                gate.task_definition_arn = registered.map(|r| r.arn);
                gate.record = plain
                    .iter()
                    .rev()
                    .find(|r| r.revision == revision)
                    .map(HookRecord::format);
                return Ok(gate);
            }
            Decision::Failed { index } => {
                let mut s = status(index, HookPhase::Failed);
                s.reason = records
                    .iter()
                    .find(|(r, _)| {
                        r.revision == revision
                            && r.name == declared[index].name
                            && r.result == HookResult::Failed
                    })
                    .and_then(|(_, reason)| reason.clone());
                gate.status = Some(s);
                return Ok(gate);
            }
            Decision::Wait { index, task } => {
                let mut s = status(index, HookPhase::Running);
                s.task_arn = Some(task);
                gate.status = Some(s);
                return Ok(gate);
            }
            Decision::Run { index } => {
                let hook = &declared[index];
                if !c.act {
                    gate.status = Some(status(index, HookPhase::Pending));
                    return Ok(gate);
                }
                let arn = match &registered {
                    Some(r) => r.arn.clone(),
                    None => {
                        let arn =
                            register_task_definition(c.clients, td, hash, c.controller_id).await?;
                        info!(cluster = %key.cluster, service = %key.name, family = %td.family,
                              task_definition = %arn, %hash,
                              "registered task definition for the pre-deploy hooks to run with");
                        gate.registered = true;
                        arn
                    }
                };
                // Validation made sure the hook has a container to run in.
                let container = hooks::container(hook, td).ok_or_else(|| AwsError::Call {
                    operation: "ECS:RunTask",
                    code: None,
                    message: format!("hook {}: no container to run the command in", hook.name),
                })?;
                let task = aws::run_task(
                    c.clients,
                    &Run {
                        key,
                        spec,
                        task_definition: &arn,
                        hook: &hook.name,
                        revision: &revision,
                        container,
                        command: &hook.command,
                        controller_id: c.controller_id,
                        now: c.now,
                    },
                )
                .await?;
                let mut s = status(index, HookPhase::Running);
                s.task_arn = Some(task);
                gate.status = Some(s);
                return Ok(gate);
            }
            Decision::Finished {
                index,
                task,
                outcome,
            } => {
                let hook = &declared[index];
                let (phase, failure, label) = match outcome {
                    Outcome::Succeeded => (HookPhase::Succeeded, None, "succeeded"),
                    Outcome::Failed(f) => (HookPhase::Failed, Some(f), "failed"),
                    Outcome::TimedOut(limit) => (
                        HookPhase::TimedOut,
                        Some(Failure {
                            container: None,
                            exit_code: None,
                            reason: format!(
                                "still running after its timeout of {}: stopped",
                                humantime::format_duration(limit)
                            ),
                        }),
                        "timed_out",
                    ),
                };
                let record = HookRecord {
                    name: hook.name.clone(),
                    revision: revision.clone(),
                    result: if failure.is_some() {
                        HookResult::Failed
                    } else {
                        HookResult::Succeeded
                    },
                };
                let reason = failure.as_ref().map(Failure::to_string);
                if c.act {
                    if phase == HookPhase::TimedOut {
                        let why = format!("ecsync: pre-deploy hook {} timed out", hook.name);
                        aws::stop_task(c.clients, key, &task, &why).await?;
                    }
                    let on: Vec<&str> = c
                        .live
                        .map(|(arn, _)| arn)
                        .into_iter()
                        .chain(registered.as_ref().map(|r| r.arn.as_str()))
                        .collect();
                    aws::record(c.clients, key, &on, &record, reason.as_deref()).await?;
                    c.metrics.hook_run(label);
                    match &failure {
                        Some(f) => warn!(cluster = %key.cluster, service = %key.name,
                            hook = %hook.name, task = %task, container = ?f.container,
                            exit_code = ?f.exit_code, reason = %f.reason,
                            "pre-deploy hook failed: the service stays on its current revision"),
                        None => info!(cluster = %key.cluster, service = %key.name,
                            hook = %hook.name, task = %task, "pre-deploy hook succeeded"),
                    }
                }
                if let Some(f) = failure {
                    let mut s = status(index, phase);
                    s.exit_code = f.exit_code;
                    s.reason = Some(f.to_string());
                    s.task_arn = Some(task);
                    gate.status = Some(s);
                    return Ok(gate);
                }
                records.push((record, None));
            }
        }
    }
}

#[cfg(test)]
mod tests;
