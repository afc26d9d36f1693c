//! One whole pass against `aws-smithy-mocks`: what moto cannot show, since its
//! UpdateService starts no deployment (DESIGN §10). A dependent service is
//! not touched while its dependency's deployment is under way, and is
//! updated in the pass that finds it COMPLETED.

use std::sync::Arc;

use aws_sdk_ecs::operation as op;
use aws_sdk_ecs::types as ecs;
use aws_smithy_mocks::{Rule, mock};

use super::*;
use crate::adapters::aws::tests::mocked;
use crate::core::manifest::load;

fn svc(name: &str, depends: &str) -> String {
    format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: {name}
spec:
  cluster: prod
  taskDefinition:
    family: {name}
    containerDefinitions:
      - name: app
        image: {name}:2
        memory: 256
{depends}"#
    )
}

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:ecs:us-east-1:1:{kind}/{name}")
}

/// `api` runs what Git declares (its hash tag says so) with its primary
/// deployment in `rollout`; `web` runs an older revision.
fn live(set: &ManifestSet, rollout: &'static str) -> Vec<Rule> {
    let hash_of = |name: &str| {
        set.services
            .iter()
            .find(|d| d.key.name == name)
            .map(|d| d.task_definition_hash.clone())
            .unwrap_or_default()
    };
    let api_tag = format!("api:1@{}", hash_of("api"));
    let clusters = mock!(aws_sdk_ecs::Client::describe_clusters).then_output(|| {
        op::describe_clusters::DescribeClustersOutput::builder()
            .clusters(
                ecs::Cluster::builder()
                    .cluster_name("prod")
                    .status("ACTIVE")
                    .build(),
            )
            .build()
    });
    let list = mock!(aws_sdk_ecs::Client::list_services).then_output(|| {
        op::list_services::ListServicesOutput::builder()
            .service_arns(arn("service", "prod/api"))
            .service_arns(arn("service", "prod/web"))
            .build()
    });
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(move || {
        let service = |name: &str, td_tag: &str, rollout: &str| {
            ecs::Service::builder()
                .service_name(name)
                .service_arn(arn("service", &format!("prod/{name}")))
                .status("ACTIVE")
                .task_definition(arn("task-definition", &format!("{name}:1")))
                .deployments(
                    ecs::Deployment::builder()
                        .status("PRIMARY")
                        .rollout_state(ecs::DeploymentRolloutState::from(rollout))
                        .build(),
                )
                .tags(
                    ecs::Tag::builder()
                        .key(crate::core::tags::MANAGED_BY)
                        .value("ecsync")
                        .build(),
                )
                .tags(
                    ecs::Tag::builder()
                        .key(crate::core::tags::TASK_DEFINITION)
                        .value(td_tag)
                        .build(),
                )
                .build()
        };
        op::describe_services::DescribeServicesOutput::builder()
            .services(service("api", &api_tag, rollout))
            .services(service("web", "web:1@older", "COMPLETED"))
            .build()
    });
    let web_td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
        op::describe_task_definition::DescribeTaskDefinitionOutput::builder()
            .task_definition(
                ecs::TaskDefinition::builder()
                    .task_definition_arn(arn("task-definition", "web:1"))
                    .family("web")
                    .container_definitions(
                        ecs::ContainerDefinition::builder()
                            .name("app")
                            .image("web:1")
                            .memory(256)
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    vec![clusters, list, describe, web_td]
}

async fn pass_with(rollout: &'static str) -> (PassReport, Rule, Rule) {
    let set = load([
        ("api.yaml", svc("api", "").as_str()),
        (
            "web.yaml",
            svc("web", "  dependsOn: [{service: api}]\n").as_str(),
        ),
    ]);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let register = mock!(aws_sdk_ecs::Client::register_task_definition).then_output(|| {
        op::register_task_definition::RegisterTaskDefinitionOutput::builder()
            .task_definition(
                ecs::TaskDefinition::builder()
                    .task_definition_arn(arn("task-definition", "web:2"))
                    .build(),
            )
            .build()
    });
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .then_output(|| op::update_service::UpdateServiceOutput::builder().build());
    let tag = mock!(aws_sdk_ecs::Client::tag_resource)
        .then_output(|| op::tag_resource::TagResourceOutput::builder().build());
    let observed = live(&set, rollout);
    let mut rules: Vec<&Rule> = observed.iter().collect();
    rules.extend([&register, &update, &tag]);
    let reconciler = Reconciler {
        clients: mocked(&rules),
        cache: Default::default(),
        metrics: Arc::new(Metrics::new()),
        controller_id: "ecsync".into(),
        mode: Mode::Auto,
        prune: None,
        max_decommission_per_pass: 1,
        shard: None,
    };
    let report = reconciler.pass("rev2", &set, &Default::default()).await;
    (report, register, update)
}

fn web(report: &PassReport) -> &ServiceOutcome {
    report
        .services
        .iter()
        .find(|o| o.plan.key.name == "web")
        .expect("web is reported")
}

#[tokio::test]
async fn a_dependent_is_updated_only_in_the_pass_that_finds_its_dependency_completed() {
    let (report, register, update) = pass_with("IN_PROGRESS").await;
    assert_eq!(report.error, None);
    let w = web(&report);
    assert_eq!(
        w.plan.waiting.as_deref(),
        Some("waiting for prod/api's deployment to complete"),
        "{w:?}"
    );
    assert!(w.done.is_empty());
    assert_eq!((register.num_calls(), update.num_calls()), (0, 0));

    let (report, register, update) = pass_with("COMPLETED").await;
    let w = web(&report);
    assert_eq!(w.plan.waiting, None, "{w:?}");
    assert_eq!(w.error, None, "{w:?}");
    assert_eq!((register.num_calls(), update.num_calls()), (1, 1));

    let (report, register, update) = pass_with("FAILED").await;
    let w = web(&report);
    assert_eq!(w.state, crate::core::state::SyncState::Held, "{w:?}");
    assert_eq!((register.num_calls(), update.num_calls()), (0, 0));
}
