//! The follower against DescribeServices answers moto cannot give: a new
//! deployment replacing an old one, and the circuit breaker rolling back.

use std::time::Duration;

use aws_sdk_ecs::types as ecs;
use aws_smithy_mocks::mock;

use super::*;
use crate::adapters::aws::tests::mocked;

const NEW: &str = "arn:aws:ecs:us-east-1:1:task-definition/web:8";
const OLD: &str = "arn:aws:ecs:us-east-1:1:task-definition/web:7";

fn deployment(
    status: &str,
    td: &str,
    state: ecs::DeploymentRolloutState,
    reason: &str,
) -> ecs::Deployment {
    ecs::Deployment::builder()
        .status(status)
        .task_definition(td)
        .rollout_state(state)
        .rollout_state_reason(reason)
        .desired_count(2)
        .running_count(1)
        .build()
}

fn service(
    deployments: Vec<ecs::Deployment>,
    events: &[&str],
) -> aws_sdk_ecs::operation::describe_services::DescribeServicesOutput {
    let mut svc = ecs::Service::builder()
        .service_name("web")
        .status("ACTIVE")
        .desired_count(2)
        .running_count(1)
        .set_deployments(Some(deployments));
    for (i, e) in events.iter().enumerate() {
        svc = svc.events(
            ecs::ServiceEvent::builder()
                .created_at(aws_smithy_types::DateTime::from_secs(1_000 + i as i64))
                .message(*e)
                .build(),
        );
    }
    aws_sdk_ecs::operation::describe_services::DescribeServicesOutput::builder()
        .services(svc.build())
        .build()
}

fn target() -> Vec<Target> {
    vec![Target {
        key: ServiceKey {
            cluster: "prod".into(),
            name: "web".into(),
        },
        expected: Some(NEW.into()),
    }]
}

const FAST: Settings = Settings {
    timeout: Duration::from_secs(5),
    poll: Duration::from_millis(10),
};

#[tokio::test]
async fn a_circuit_breaker_rollback_ends_the_wait_as_rolled_back_with_its_reason() {
    use ecs::DeploymentRolloutState::{Completed, Failed, InProgress};
    let rule = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| {
            service(
                vec![
                    deployment("PRIMARY", NEW, InProgress, "in progress"),
                    deployment("ACTIVE", OLD, Completed, "done"),
                ],
                &[],
            )
        })
        .output(|| {
            service(
                vec![
                    deployment("PRIMARY", OLD, InProgress, "rolling back"),
                    deployment(
                        "ACTIVE",
                        NEW,
                        Failed,
                        "tasks failed to start: circuit breaker",
                    ),
                ],
                &["(service web) deployment failed: tasks failed to start."],
            )
        })
        .build();
    let clients = mocked(&[&rule]);
    let mut rounds = Vec::new();
    let last = follow(&clients, &target(), &FAST, |p| {
        rounds.push(p[0].verdict.clone())
    })
    .await
    .expect("follow");
    assert_eq!(
        rounds,
        [
            Verdict::InProgress,
            Verdict::RolledBack("tasks failed to start: circuit breaker".into())
        ]
    );
    assert_eq!(
        last[0].view.events[0].1,
        "(service web) deployment failed: tasks failed to start."
    );
    assert_eq!(rule.num_calls(), 2, "no call after the verdict");
}

#[tokio::test]
async fn a_rollout_that_never_ends_times_out_in_progress() {
    let rule = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| {
            service(
                vec![deployment(
                    "PRIMARY",
                    NEW,
                    ecs::DeploymentRolloutState::InProgress,
                    "",
                )],
                &[],
            )
        })
        .repeatedly()
        .build();
    let clients = mocked(&[&rule]);
    let settings = Settings {
        timeout: Duration::from_millis(200),
        poll: Duration::from_millis(20),
    };
    let last = follow(&clients, &target(), &settings, |_| {})
        .await
        .expect("follow");
    assert_eq!(last[0].verdict, Verdict::InProgress);
    assert!(rule.num_calls() >= 3, "kept polling until the deadline");
}
