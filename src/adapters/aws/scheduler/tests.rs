//! Shell tests with `aws-smithy-mocks`: what moto does not produce.

use aws_sdk_scheduler::operation as op;
use aws_sdk_scheduler::types as sch;
use aws_smithy_mocks::mock;

use super::{ScheduleWrite, observe, update_schedule};
use crate::adapters::aws::ecs::observe::TaskDefinitionCache;
use crate::adapters::aws::tests::mocked;
use crate::core::scheduled::Group;

const GROUP_ARN: &str = "arn:aws:scheduler:us-east-1:123456789012:schedule-group/ecsync-ecsync";

fn not_found(what: &str) -> sch::error::ResourceNotFoundException {
    sch::error::ResourceNotFoundException::builder()
        .message(format!("{what} does not exist."))
        .meta(
            aws_sdk_scheduler::error::ErrorMetadata::builder()
                .code("ResourceNotFoundException")
                .build(),
        )
        .build()
        .unwrap()
}

/// A schedule deleted between ListSchedules and its GetSchedule (by hand,
/// or another pass) is simply not there: the observation does not fail.
#[tokio::test]
async fn a_schedule_gone_between_list_and_get_is_not_there() {
    let group = mock!(aws_sdk_scheduler::Client::get_schedule_group).then_output(|| {
        op::get_schedule_group::GetScheduleGroupOutput::builder()
            .arn(GROUP_ARN)
            .build()
    });
    let tags = mock!(aws_sdk_scheduler::Client::list_tags_for_resource).then_output(|| {
        op::list_tags_for_resource::ListTagsForResourceOutput::builder()
            .tags(
                sch::Tag::builder()
                    .key("ecsync.io/managed-by")
                    .value("ecsync")
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let list = mock!(aws_sdk_scheduler::Client::list_schedules).then_output(|| {
        let summary = |n: &str| sch::ScheduleSummary::builder().name(n).build();
        op::list_schedules::ListSchedulesOutput::builder()
            .schedules(summary("gone"))
            .schedules(summary("kept"))
            .build()
            .unwrap()
    });
    let gone = mock!(aws_sdk_scheduler::Client::get_schedule)
        .match_requests(|r| r.name() == Some("gone"))
        .then_error(|| {
            op::get_schedule::GetScheduleError::ResourceNotFoundException(not_found("gone"))
        });
    let kept = mock!(aws_sdk_scheduler::Client::get_schedule)
        .match_requests(|r| r.name() == Some("kept"))
        .then_output(|| {
            op::get_schedule::GetScheduleOutput::builder()
                .name("kept")
                .schedule_expression("rate(1 hour)")
                .state(sch::ScheduleState::Enabled)
                .build()
        });
    let clients = mocked(&[&group, &tags, &list, &gone, &kept]);
    let observed = observe(
        &clients,
        "ecsync-ecsync",
        "ecsync",
        &TaskDefinitionCache::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        observed.group,
        Group::Owned {
            arn: GROUP_ARN.into()
        }
    );
    assert_eq!(observed.schedules.keys().collect::<Vec<_>>(), ["kept"]);
    // Not an ECS target: seen, so it shows as drift, never mistaken for one.
    assert_eq!(observed.schedules["kept"].task_definition_arn, None);
}

/// UpdateSchedule replaces the whole schedule: what ecsync does not manage
/// must be read back and sent again, or a heal would silently drop it.
#[tokio::test]
async fn an_update_keeps_what_ecsync_does_not_manage() {
    let live = mock!(aws_sdk_scheduler::Client::get_schedule).then_output(|| {
        op::get_schedule::GetScheduleOutput::builder()
            .name("nightly")
            .description("set by hand")
            .flexible_time_window(
                sch::FlexibleTimeWindow::builder()
                    .mode(sch::FlexibleTimeWindowMode::Flexible)
                    .maximum_window_in_minutes(15)
                    .build()
                    .unwrap(),
            )
            .target(
                sch::Target::builder()
                    .arn("arn:aws:ecs:us-east-1:123456789012:cluster/prod")
                    .role_arn("arn:aws:iam::123456789012:role/old")
                    .retry_policy(
                        sch::RetryPolicy::builder()
                            .maximum_retry_attempts(3)
                            .build(),
                    )
                    .dead_letter_config(
                        sch::DeadLetterConfig::builder()
                            .arn("arn:aws:sqs:us-east-1:123456789012:dlq")
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let update = mock!(aws_sdk_scheduler::Client::update_schedule)
        .match_requests(|r| {
            let t = r.target();
            r.description() == Some("set by hand")
                && r.flexible_time_window().and_then(|w| w.maximum_window_in_minutes()) == Some(15)
                && t.and_then(|t| t.retry_policy()).and_then(|p| p.maximum_retry_attempts()) == Some(3)
                && t.and_then(|t| t.dead_letter_config()).and_then(|d| d.arn())
                    == Some("arn:aws:sqs:us-east-1:123456789012:dlq")
                // ...and what the manifest says replaces the rest.
                && t.map(|t| t.role_arn()) == Some("arn:aws:iam::123456789012:role/ecsync-scheduler")
                && t.map(|t| t.arn()) == Some("arn:aws:ecs:us-east-1:123456789012:cluster/prod")
                && r.schedule_expression() == Some("cron(0 3 * * ? *)")
        })
        .then_output(|| {
            op::update_schedule::UpdateScheduleOutput::builder()
                .schedule_arn("arn:aws:scheduler:us-east-1:123456789012:schedule/ecsync-ecsync/nightly")
                .build()
                .unwrap()
        });
    let clients = mocked(&[&live, &update]);
    let set = crate::core::manifest::load([("nightly.yaml", NIGHTLY)]);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let w = ScheduleWrite {
        group: "ecsync-ecsync",
        group_arn: GROUP_ARN,
        desired: &set.scheduled[0],
        task_definition_arn: "arn:aws:ecs:us-east-1:123456789012:task-definition/nightly:1",
        why: &["roleArn".to_string()],
    };
    // A request that does not match the rule has no answer: this fails.
    update_schedule(&clients, &w).await.unwrap();
}

const NIGHTLY: &str = "apiVersion: ecsync.io/v1alpha1
kind: ScheduledTask
metadata: {name: nightly}
spec:
  cluster: prod
  schedule: cron(0 3 * * ? *)
  roleArn: arn:aws:iam::123456789012:role/ecsync-scheduler
  launchType: EC2
  taskDefinition:
    family: nightly
    containerDefinitions:
      - {name: job, image: 'busybox:1.36', memory: 128}
";
