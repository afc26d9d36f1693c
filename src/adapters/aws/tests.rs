//! Shell tests with `aws-smithy-mocks`, for what an emulator cannot produce.

use aws_sdk_ecs::types as ecs;
use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, mock};

use super::ecs::observe::{Scope, TaskDefinitionCache, observe};
use super::{Clients, convert};
use crate::core::manifest::{load, task_definition_hash};
use crate::core::normalize::normalize_task_definition;

/// Clients of all three services whose calls are answered by `rules`.
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
    let mut got = convert::task_definition_from_sdk(&live);
    normalize_task_definition(&mut got);
    assert_eq!(&got, desired);
    assert_eq!(
        task_definition_hash(&got),
        set.services[0].task_definition_hash
    );
}
