//! The hook phase against `aws-smithy-mocks`: the exit-code paths moto cannot
//! produce (every moto container exits 0), and what each path writes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_ecs::operation as op;
use aws_sdk_ecs::types as ecs;
use aws_smithy_mocks::{Rule, mock};

use super::*;
use crate::adapters::aws::tests::mocked;
use crate::core::manifest::load;
use crate::core::plan::{Action, UpdateMember};

const WEB: &str = r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: web
spec:
  cluster: prod
  launchType: FARGATE
  taskDefinition:
    family: web
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: web
        image: rails:2
      - name: log-router
        image: fluent-bit:1
        essential: false
  networkConfiguration:
    awsvpcConfiguration: {subnets: [subnet-a], securityGroups: [sg-1]}
  hooks:
    preDeploy:
      - name: migrate
        command: [bin/rails, db:migrate]
"#;

const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:1:service/prod/web";
const TD_ARN: &str = "arn:aws:ecs:us-east-1:1:task-definition/web:2";
const TASK_ARN: &str = "arn:aws:ecs:us-east-1:1:task/prod/abc";

fn desired() -> DesiredService {
    let set = load([("web.yaml", WEB)]);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    (*set.services[0]).clone()
}

fn hook_revision(d: &DesiredService) -> String {
    hooks::revision(&d.task_definition_hash, d.spec.pre_deploy_hooks())
}

/// The service exists and is to move to a new revision.
fn moving(d: &DesiredService) -> ServicePlan {
    ServicePlan {
        key: d.key.clone(),
        source: Some(d.source.clone()),
        exists: true,
        drift: vec![],
        actions: vec![
            Action::RegisterTaskDefinition {
                family: "web".into(),
            },
            Action::UpdateService {
                fields: [UpdateMember::TaskDefinition].into(),
            },
        ],
        replace: vec![],
        report_only: false,
        held: None,
        waiting: None,
        error: None,
        message: None,
        rollout: None,
        ignored: Vec::new(),
        effective: None,
    }
}

fn registered(d: &DesiredService) -> Rule {
    let hash = d.task_definition_hash.clone();
    mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(move || {
        op::describe_task_definition::DescribeTaskDefinitionOutput::builder()
            .task_definition(
                ecs::TaskDefinition::builder()
                    .task_definition_arn(TD_ARN)
                    .build(),
            )
            .tags(
                ecs::Tag::builder()
                    .key(tags::SPEC_HASH)
                    .value(&hash)
                    .build(),
            )
            .build()
    })
}

fn listed() -> Rule {
    mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| r.started_by() == Some("ecsync/web"))
        .then_output(|| {
            op::list_tasks::ListTasksOutput::builder()
                .task_arns(TASK_ARN)
                .build()
        })
}

const T0: Duration = Duration::from_secs(1_750_000_000);

/// The hook's task as DescribeTasks answers: `containers` as (name, exit code, reason).
fn described(
    d: &DesiredService,
    last_status: &'static str,
    stopped_reason: Option<&'static str>,
    containers: Vec<(&'static str, Option<i32>, Option<&'static str>)>,
) -> Rule {
    let rev = hook_revision(d);
    mock!(aws_sdk_ecs::Client::describe_tasks).then_output(move || {
        let mut t = ecs::Task::builder()
            .task_arn(TASK_ARN)
            .started_by("ecsync/web")
            .last_status(last_status)
            .set_stopped_reason(stopped_reason.map(str::to_string))
            .tags(
                ecs::Tag::builder()
                    .key(tags::HOOK_TASK)
                    .value(tags::hook_task_value("migrate", &rev))
                    .build(),
            )
            .tags(
                ecs::Tag::builder()
                    .key(tags::HOOK_STARTED)
                    .value(tags::format_time(SystemTime::UNIX_EPOCH + T0))
                    .build(),
            );
        for (name, exit, reason) in &containers {
            t = t.containers(
                ecs::Container::builder()
                    .name(*name)
                    .set_exit_code(*exit)
                    .set_reason(reason.map(str::to_string))
                    .build(),
            );
        }
        op::describe_tasks::DescribeTasksOutput::builder()
            .tasks(t.build())
            .build()
    })
}

fn tagged() -> Rule {
    mock!(aws_sdk_ecs::Client::tag_resource)
        .then_output(|| op::tag_resource::TagResourceOutput::builder().build())
}

fn untagged() -> Rule {
    mock!(aws_sdk_ecs::Client::untag_resource)
        .then_output(|| op::untag_resource::UntagResourceOutput::builder().build())
}

fn stopped() -> Rule {
    mock!(aws_sdk_ecs::Client::stop_task)
        .match_requests(|r| r.task() == Some(TASK_ARN))
        .then_output(|| op::stop_task::StopTaskOutput::builder().build())
}

/// Answers only the `RunTask` a hook must send: the new revision, the
/// service's launch type and network, the command on the first essential
/// container, `startedBy`, and the tags that find it again.
fn started() -> Rule {
    mock!(aws_sdk_ecs::Client::run_task)
        .match_requests(|r| {
            let o = r
                .overrides()
                .map(|o| o.container_overrides().to_vec())
                .unwrap_or_default();
            let keys: Vec<&str> = r.tags().iter().filter_map(|t| t.key()).collect();
            r.task_definition() == Some(TD_ARN)
                && r.started_by() == Some("ecsync/web")
                && r.launch_type() == Some(&ecs::LaunchType::Fargate)
                && r.count() == Some(1)
                && r.client_token().is_some_and(|t| t.len() <= 64)
                && r.network_configuration()
                    .and_then(|n| n.awsvpc_configuration())
                    .is_some_and(|v| v.subnets() == ["subnet-a"])
                && o.len() == 1
                && o[0].name() == Some("web")
                && o[0].command() == ["bin/rails", "db:migrate"]
                && keys.contains(&tags::HOOK_TASK)
                && keys.contains(&tags::HOOK_STARTED)
        })
        .then_output(|| {
            op::run_task::RunTaskOutput::builder()
                .tasks(
                    ecs::Task::builder()
                        .task_arn("arn:aws:ecs:us-east-1:1:task/prod/new")
                        .build(),
                )
                .build()
        })
}

async fn run_gate(rules: &[&Rule], after: Duration, act: bool) -> (Gate, Metrics) {
    let d = desired();
    let plan = moving(&d);
    let metrics = Metrics::new();
    let live_tags = BTreeMap::new();
    let clients = mocked(rules);
    let c = Context {
        clients: &clients,
        metrics: &metrics,
        controller_id: "ecsync",
        desired: &d,
        plan: &plan,
        live: Some((SERVICE_ARN, &live_tags)),
        act,
        now: SystemTime::UNIX_EPOCH + T0 + after,
    };
    let gate = gate(&c).await.expect("the phase runs");
    (gate, metrics)
}

fn hook_runs(m: &Metrics, result: &str) -> bool {
    let text = m.encode().unwrap();
    text.lines()
        .any(|l| l == format!("ecsync_hook_runs_total{{result=\"{result}\"}} 1"))
}

#[tokio::test]
async fn a_non_zero_exit_keeps_the_service_and_records_the_code_and_reason() {
    let d = desired();
    let (reg, list, tag, untag, run) = (registered(&d), listed(), tagged(), untagged(), started());
    let desc = described(
        &d,
        "STOPPED",
        Some("Essential container in task exited"),
        // The sidecar's exit does not count; the essential one's does.
        vec![("web", Some(3), None), ("log-router", Some(0), None)],
    );
    let (gate, metrics) = run_gate(
        &[&reg, &list, &desc, &tag, &untag, &run],
        Duration::from_secs(60),
        true,
    )
    .await;
    assert!(!gate.proceed);
    let s = gate.status.expect("a hook status");
    assert_eq!(s.phase, HookPhase::Failed);
    assert_eq!(s.exit_code, Some(3));
    assert_eq!(
        s.reason.as_deref(),
        Some("container web exited 3: Essential container in task exited")
    );
    // On the service and on the revision it ran with; never run again.
    assert_eq!(tag.num_calls(), 2);
    assert_eq!(untag.num_calls(), 0);
    assert_eq!(run.num_calls(), 0);
    assert!(hook_runs(&metrics, "failed"));
}

#[tokio::test]
async fn a_container_that_never_started_is_a_failure_with_ecs_reason() {
    let d = desired();
    let (reg, list, tag, run) = (registered(&d), listed(), tagged(), started());
    let desc = described(
        &d,
        "STOPPED",
        Some("Task failed to start"),
        vec![(
            "web",
            None,
            Some("CannotPullContainerError: pull image manifest has been retried 5 time(s)"),
        )],
    );
    let (gate, metrics) = run_gate(
        &[&reg, &list, &desc, &tag, &run],
        Duration::from_secs(60),
        true,
    )
    .await;
    let s = gate.status.expect("a hook status");
    assert!(!gate.proceed);
    assert_eq!((s.phase, s.exit_code), (HookPhase::Failed, None));
    assert!(
        s.reason
            .as_deref()
            .is_some_and(|r| r.contains("CannotPullContainerError")),
        "{s:?}"
    );
    assert_eq!(run.num_calls(), 0);
    assert!(hook_runs(&metrics, "failed"));
}

#[tokio::test]
async fn a_hook_past_its_timeout_is_stopped_and_fails() {
    let d = desired();
    let (reg, list, tag, stop, run) = (registered(&d), listed(), tagged(), stopped(), started());
    let desc = described(&d, "RUNNING", None, vec![("web", None, None)]);
    // Default timeout 15m: at 14m it is waited for, at 16m stopped.
    let (gate, _) = run_gate(
        &[&reg, &list, &desc, &tag, &stop, &run],
        Duration::from_secs(14 * 60),
        true,
    )
    .await;
    assert_eq!(gate.status.map(|s| s.phase), Some(HookPhase::Running));
    assert_eq!(
        (stop.num_calls(), tag.num_calls(), run.num_calls()),
        (0, 0, 0)
    );

    let (gate, metrics) = run_gate(
        &[&reg, &list, &desc, &tag, &stop, &run],
        Duration::from_secs(16 * 60),
        true,
    )
    .await;
    let s = gate.status.expect("a hook status");
    assert!(!gate.proceed);
    assert_eq!(s.phase, HookPhase::TimedOut);
    assert!(
        s.reason.as_deref().is_some_and(|r| r.contains("15m")),
        "{s:?}"
    );
    assert_eq!(stop.num_calls(), 1);
    assert_eq!(tag.num_calls(), 2);
    assert_eq!(run.num_calls(), 0);
    assert!(hook_runs(&metrics, "timed_out"));
}

#[tokio::test]
async fn success_moves_the_service_to_the_revision_the_hook_ran_with() {
    let d = desired();
    let (reg, list, tag, untag, run) = (registered(&d), listed(), tagged(), untagged(), started());
    let desc = described(&d, "STOPPED", None, vec![("web", Some(0), None)]);
    let (gate, metrics) = run_gate(
        &[&reg, &list, &desc, &tag, &untag, &run],
        Duration::from_secs(60),
        true,
    )
    .await;
    assert!(gate.proceed);
    assert_eq!(gate.task_definition_arn.as_deref(), Some(TD_ARN));
    assert_eq!(
        gate.record,
        Some(format!("migrate@{}:succeeded", hook_revision(&d)))
    );
    assert_eq!(tag.num_calls(), 2);
    assert_eq!(run.num_calls(), 0);
    assert!(hook_runs(&metrics, "succeeded"));
}

#[tokio::test]
async fn read_only_reads_and_says_what_would_run_without_starting_it() {
    let d = desired();
    let empty = mock!(aws_sdk_ecs::Client::list_tasks)
        .then_output(|| op::list_tasks::ListTasksOutput::builder().build());
    let reg = registered(&d);
    let (tag, run, stop) = (tagged(), started(), stopped());
    let (gate, _) = run_gate(&[&reg, &empty, &tag, &run, &stop], Duration::ZERO, false).await;
    assert!(!gate.proceed);
    assert_eq!(gate.status.map(|s| s.phase), Some(HookPhase::Pending));
    assert_eq!(
        (run.num_calls(), tag.num_calls(), stop.num_calls()),
        (0, 0, 0)
    );

    // Acting, the same pass starts exactly one task, with the registered revision.
    let (gate, _) = run_gate(&[&reg, &empty, &tag, &run, &stop], Duration::ZERO, true).await;
    let s = gate.status.expect("a hook status");
    assert_eq!(s.phase, HookPhase::Running);
    assert_eq!(
        s.task_arn.as_deref(),
        Some("arn:aws:ecs:us-east-1:1:task/prod/new")
    );
    assert_eq!(run.num_calls(), 1);
    assert!(
        !gate.registered,
        "the revision with this content was registered already"
    );
}
