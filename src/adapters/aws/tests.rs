//! Shell tests with `aws-smithy-mocks`, for what an emulator cannot produce.

use aws_sdk_ecs::types as ecs;
use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, mock};

use super::ecs::observe::{Scope, TaskDefinitionCache, observe};
use super::{Clients, convert};
use crate::core::manifest::{load, task_definition_hash};
use crate::core::normalize::normalize_task_definition;

/// Clients of every service whose calls are answered by `rules`.
pub(crate) fn mocked(rules: &[&aws_smithy_mocks::Rule]) -> Clients {
    use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
    let interceptor = || {
        rules.iter().fold(
            MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
            |i, r| i.with_rule(r),
        )
    };
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .build();
    Clients {
        ecs: aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::config::Builder::from(&sdk)
                .interceptor(interceptor())
                .build(),
        ),
        ec2: aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&sdk)
                .interceptor(interceptor())
                .build(),
        ),
        elbv2: aws_sdk_elasticloadbalancingv2::Client::from_conf(
            aws_sdk_elasticloadbalancingv2::config::Builder::from(&sdk)
                .interceptor(interceptor())
                .build(),
        ),
        autoscaling: aws_sdk_autoscaling::Client::from_conf(
            aws_sdk_autoscaling::config::Builder::from(&sdk)
                .interceptor(interceptor())
                .build(),
        ),
        cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(&sdk)
                .interceptor(interceptor())
                .build(),
        ),
        scheduler: aws_sdk_scheduler::Client::from_conf(
            aws_sdk_scheduler::config::Builder::from(&sdk)
                .interceptor(interceptor())
                .build(),
        ),
        eventbridge: aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&sdk)
                .interceptor(interceptor())
                .build(),
        ),
        read_only: Default::default(),
    }
}

const DENIED: &str =
    "User: arn:aws:iam::1:user/ci is not authorized to perform: ecs:DescribeClusters";

#[tokio::test]
async fn access_denied_is_a_clear_error_not_a_panic() {
    let denied = mock!(aws_sdk_ecs::Client::describe_clusters).then_error(|| {
        aws_sdk_ecs::operation::describe_clusters::DescribeClustersError::AccessDeniedException(
            ecs::error::AccessDeniedException::builder()
                .message(DENIED)
                .meta(
                    aws_sdk_ecs::error::ErrorMetadata::builder()
                        .code("AccessDeniedException")
                        .message(DENIED)
                        .build(),
                )
                .build(),
        )
    });
    let clients = mocked(&[&denied]);
    let set = load([("web.yaml", crate::core::manifest::tests::WEB)]);
    let scope = Scope {
        clusters: ["prod".to_string()].into(),
        all_clusters: false,
        desired: &set.services,
        shard: None,
    };
    let err = observe(&clients, &scope, &TaskDefinitionCache::default())
        .await
        .expect_err("access denied must fail the observation");
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let msg = err.to_string();
    assert!(
        msg.starts_with("ECS:DescribeClusters: AccessDeniedException"),
        "{msg}"
    );
    assert!(msg.contains("not authorized"), "{msg}");
}

/// A task definition as DescribeTaskDefinition returns it, every default filled
/// in by ECS, must normalise to exactly what the manifest declared.
#[test]
fn live_description_as_aws_returns_it_diffs_clean() {
    let set = load([("web.yaml", crate::core::manifest::tests::WEB)]);
    let desired = &set.services[0].spec.task_definition;
    let container = ecs::ContainerDefinition::builder()
        .name("web")
        .image("public.ecr.aws/nginx/nginx:1.27")
        .cpu(0)
        .essential(true)
        .port_mappings(
            ecs::PortMapping::builder()
                .container_port(80)
                .host_port(80)
                .protocol(ecs::TransportProtocol::Tcp)
                .build(),
        )
        .environment(
            ecs::KeyValuePair::builder()
                .name("RAILS_ENV")
                .value("production")
                .build(),
        )
        .set_mount_points(Some(vec![]))
        .set_volumes_from(Some(vec![]))
        .set_system_controls(Some(vec![]))
        .build();
    let live = ecs::TaskDefinition::builder()
        .task_definition_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/web:7")
        .family("web")
        .revision(7)
        .status(ecs::TaskDefinitionStatus::Active)
        .network_mode(ecs::NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .requires_compatibilities(ecs::Compatibility::Fargate)
        .compatibilities(ecs::Compatibility::Ec2)
        .compatibilities(ecs::Compatibility::Fargate)
        .container_definitions(container)
        .set_volumes(Some(vec![]))
        .set_placement_constraints(Some(vec![]))
        .build();
    let (mut got, unmanaged) = convert::read_task_definition(&live, &[]);
    assert!(unmanaged.is_empty(), "{unmanaged:?}");
    normalize_task_definition(&mut got);
    assert_eq!(&got, desired);
    assert_eq!(
        task_definition_hash(&got),
        set.services[0].task_definition_hash
    );
}

/// Everything that comes back as AWS fills it in is expressible: no false
/// "would drop" for an ordinary definition.
#[test]
fn an_ordinary_live_description_carries_nothing_unmanaged() {
    let set = load([("web.yaml", crate::core::manifest::tests::WEB)]);
    let td = &set.services[0].spec.task_definition;
    let live = ecs::TaskDefinition::builder()
        .family("web")
        .network_mode(ecs::NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .requires_compatibilities(ecs::Compatibility::Fargate)
        .container_definitions(
            ecs::ContainerDefinition::builder()
                .name("web")
                .image("public.ecr.aws/nginx/nginx:1.27")
                .cpu(0)
                .essential(true)
                .set_mount_points(Some(vec![]))
                .set_system_controls(Some(vec![]))
                .build(),
        )
        .build();
    let (model, unmanaged) = convert::read_task_definition(&live, &[]);
    assert!(unmanaged.is_empty(), "{unmanaged:?}");
    assert_eq!(model.family, td.family);
}

const DAEMON: &str = r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata: {name: agent}
spec:
  cluster: prod
  launchType: EC2
  schedulingStrategy: DAEMON
  taskDefinition:
    family: agent
    containerDefinitions:
      - {name: agent, image: "datadog/agent:7", memory: 256}
"#;

/// What real ECS answers when a DAEMON service is given a count (moto accepts it).
fn daemon_count_refused() -> aws_sdk_ecs::types::error::InvalidParameterException {
    const REFUSAL: &str =
        "The daemon scheduling strategy does not support a desired count for services.";
    ecs::error::InvalidParameterException::builder()
        .message(REFUSAL)
        .meta(
            aws_sdk_ecs::error::ErrorMetadata::builder()
                .code("InvalidParameterException")
                .message(REFUSAL)
                .build(),
        )
        .build()
}

#[tokio::test]
async fn a_daemon_is_created_without_a_count() {
    use crate::adapters::aws::ecs::apply::{Applied, ApplyContext, apply_service};
    use crate::core::plan::{Action, ActionKind, ServicePlan};
    let set = load([("agent.yaml", DAEMON)]);
    let d = &set.services[0];
    assert_eq!(
        d.spec
            .deployment_configuration
            .as_ref()
            .map(|dc| (dc.maximum_percent, dc.minimum_healthy_percent)),
        Some((Some(100), Some(0))),
        "ECS's DAEMON defaults"
    );
    let register = mock!(aws_sdk_ecs::Client::register_task_definition).then_output(|| {
        aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput::builder()
            .task_definition(
                ecs::TaskDefinition::builder()
                    .task_definition_arn("arn:aws:ecs:us-east-1:1:task-definition/agent:1")
                    .build(),
            )
            .build()
    });
    let uncounted = mock!(aws_sdk_ecs::Client::create_service)
        .match_requests(|r| r.desired_count().is_none())
        .then_output(|| {
            aws_sdk_ecs::operation::create_service::CreateServiceOutput::builder()
                .service(ecs::Service::builder().service_arn("arn:svc/agent").build())
                .build()
        });
    let counted = mock!(aws_sdk_ecs::Client::create_service).then_error(|| {
        aws_sdk_ecs::operation::create_service::CreateServiceError::InvalidParameterException(
            daemon_count_refused(),
        )
    });
    let tag = mock!(aws_sdk_ecs::Client::tag_resource)
        .then_output(|| aws_sdk_ecs::operation::tag_resource::TagResourceOutput::builder().build());
    let clients = mocked(&[&register, &uncounted, &counted, &tag]);
    let plan = ServicePlan {
        key: d.key.clone(),
        source: Some(d.source.clone()),
        exists: false,
        drift: vec![],
        actions: vec![
            Action::RegisterTaskDefinition {
                family: "agent".into(),
            },
            Action::CreateService,
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
    };
    let ctx = ApplyContext {
        controller_id: "ecsync",
        revision: "r1",
        target_groups: &Default::default(),
        hook_record: None,
    };
    let mut applied = Applied::default();
    apply_service(&clients, d, &plan, None, &ctx, &mut applied)
        .await
        .expect("created without a desiredCount");
    assert_eq!(
        applied.done,
        [
            ActionKind::RegisterTaskDefinition,
            ActionKind::CreateService
        ]
    );
    assert_eq!(uncounted.num_calls(), 1);
    assert_eq!(counted.num_calls(), 0);
}

#[tokio::test]
async fn a_daemon_is_pruned_without_scaling_to_zero() {
    use crate::adapters::aws::ecs::apply::{Applied, prune_service};
    use crate::core::model::ServiceKey;
    use crate::core::plan::ServicePlan;
    let scale = mock!(aws_sdk_ecs::Client::update_service).then_error(|| {
        aws_sdk_ecs::operation::update_service::UpdateServiceError::InvalidParameterException(
            daemon_count_refused(),
        )
    });
    let delete = mock!(aws_sdk_ecs::Client::delete_service).then_output(|| {
        aws_sdk_ecs::operation::delete_service::DeleteServiceOutput::builder().build()
    });
    let clients = mocked(&[&scale, &delete]);
    let plan = ServicePlan {
        key: ServiceKey {
            cluster: "prod".into(),
            name: "agent".into(),
        },
        source: None,
        exists: true,
        drift: vec![],
        actions: vec![],
        replace: vec![],
        report_only: false,
        held: None,
        waiting: None,
        error: None,
        message: None,
        rollout: None,
        ignored: Vec::new(),
        effective: None,
    };
    prune_service(&clients, &plan, true, &mut Applied::default())
        .await
        .expect("a daemon is deleted as it is");
    assert_eq!((scale.num_calls(), delete.num_calls()), (0, 1));
    // A replica is scaled down first, which this ECS refuses here.
    let err = prune_service(&clients, &plan, false, &mut Applied::default())
        .await
        .expect_err("replicas are scaled to 0 first");
    assert_eq!(err.code(), Some("InvalidParameterException"));
}

/// ECS answers a listed service with a failure: the observation says it could
/// not see everything instead of going on as if the service did not exist.
#[tokio::test]
async fn a_service_ecs_would_not_describe_fails_the_observation() {
    let observe_with = |reason: &'static str| {
        let clusters = mock!(aws_sdk_ecs::Client::describe_clusters).then_output(|| {
            aws_sdk_ecs::operation::describe_clusters::DescribeClustersOutput::builder()
                .clusters(
                    ecs::Cluster::builder()
                        .cluster_name("prod")
                        .status("ACTIVE")
                        .build(),
                )
                .build()
        });
        let list = mock!(aws_sdk_ecs::Client::list_services).then_output(|| {
            aws_sdk_ecs::operation::list_services::ListServicesOutput::builder()
                .service_arns("arn:aws:ecs:us-east-1:1:service/prod/web")
                .service_arns("arn:aws:ecs:us-east-1:1:service/prod/api")
                .build()
        });
        let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(move || {
            aws_sdk_ecs::operation::describe_services::DescribeServicesOutput::builder()
                .services(
                    ecs::Service::builder()
                        .service_name("web")
                        .service_arn("arn:aws:ecs:us-east-1:1:service/prod/web")
                        .status("ACTIVE")
                        .build(),
                )
                .failures(
                    ecs::Failure::builder()
                        .arn("arn:aws:ecs:us-east-1:1:service/prod/api")
                        .reason(reason)
                        .build(),
                )
                .build()
        });
        async move {
            let clients = mocked(&[&clusters, &list, &describe]);
            let scope = Scope {
                clusters: ["prod".to_string()].into(),
                all_clusters: false,
                desired: &[],
                shard: None,
            };
            observe(&clients, &scope, &TaskDefinitionCache::default()).await
        }
    };
    let seen = observe_with("MISSING")
        .await
        .expect("a service deleted since the listing is simply gone");
    assert_eq!(seen.services.len(), 1);
    let err = observe_with("ACCESS_DENIED")
        .await
        .expect_err("a service that could not be seen fails the observation");
    let msg = err.to_string();
    assert!(
        msg.starts_with("incomplete observation:")
            && msg.contains("prod/api")
            && msg.contains("ACCESS_DENIED"),
        "{msg}"
    );
}
