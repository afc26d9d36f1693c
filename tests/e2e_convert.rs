//! End to end: a small ecspresso project (tests/fixtures/ecspresso, in
//! ecspresso's documented format) converted, applied to moto, and every
//! setting of its JSON found on the live service; the same project with
//! Jsonnet definitions (tests/fixtures/ecspresso-jsonnet) the same way.

mod common;

use std::path::PathBuf;

use common::{GitRepo, Moto, Run, ecsync_with, run};

/// The `ecspresso.yml` of a project under tests/fixtures.
fn project(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join("ecspresso.yml")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ecspresso_project_converts_applies_and_keeps_every_setting() {
    converts_applies_and_keeps_every_setting(project("ecspresso")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jsonnet_ecspresso_project_is_evaluated_and_keeps_every_setting() {
    let written = converts_applies_and_keeps_every_setting(project("ecspresso-jsonnet")).await;
    // Jsonnet is evaluated, not rendered as a Go template.
    assert!(written.contains("Hello {{ name }}"), "{written}");
}

/// Converts `project` (the shop service, either fixture), applies it to moto
/// and checks every setting on the live service; the manifest written.
async fn converts_applies_and_keeps_every_setting(project: PathBuf) -> String {
    let moto = Moto::start();
    moto.create_cluster("shop-cluster").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    let out = repo.path().join("services");

    let mut convert = ecsync_with(&moto);
    convert
        .arg("convert")
        .arg("--ecspresso")
        .arg(&project)
        .arg("--out")
        .arg(&out)
        .env("ECS_CLUSTER", "shop-cluster")
        .env("SECURITY_GROUP", &net.security_group)
        .env("SUBNET_A", &net.subnets[0])
        .env("SUBNET_B", &net.subnets[1])
        .env("IMAGE_TAG", "v42")
        .env_remove("ENV_NAME");
    let c = run(convert);
    assert_eq!(c.code, 0, "{c}");
    assert!(
        c.stderr.contains("platformFamily"),
        "describe-only members are named: {c}"
    );
    repo.commit("converted from ecspresso");

    let mut apply = ecsync_with(&moto);
    apply
        .args([
            "apply",
            "--repo",
            &repo.url(),
            "--path",
            "services",
            "--cache-dir",
        ])
        .arg(repo.path().join(".cache"));
    let a = run(apply);
    assert_eq!(a.code, 0, "{a}");

    let ecs = moto.ecs();
    let described = ecs
        .describe_services()
        .cluster("shop-cluster")
        .services("shop")
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .expect("describe services");
    let svc = &described.services()[0];
    assert_eq!(svc.desired_count(), 2);
    assert_eq!(svc.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    assert_eq!(svc.propagate_tags().map(|p| p.as_str()), Some("SERVICE"));
    // moto's CreateService drops deploymentConfiguration, enableExecuteCommand
    // and enableECSManagedTags (it answers its defaults): that they are in the
    // manifest is checked here, that they are sent by tests/api_model.rs.
    let written = std::fs::read_to_string(out.join("shop.yaml")).expect("shop.yaml");
    for setting in [
        "enableExecuteCommand: true",
        "enableECSManagedTags: true",
        "minimumHealthyPercent: 50",
        "rollback: true",
    ] {
        assert!(written.contains(setting), "{setting}:\n{written}");
    }
    let vpc = svc
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .expect("awsvpc");
    let mut subnets = vpc.subnets().to_vec();
    subnets.sort();
    let mut want = net.subnets[..2].to_vec();
    want.sort();
    assert_eq!(subnets, want);
    assert_eq!(
        vpc.security_groups(),
        std::slice::from_ref(&net.security_group)
    );
    assert!(
        svc.tags()
            .iter()
            .any(|t| t.key() == Some("env") && t.value() == Some("staging")),
        "{:?}",
        svc.tags()
    );

    let td = ecs
        .describe_task_definition()
        .task_definition(svc.task_definition().unwrap_or_default())
        .send()
        .await
        .expect("describe task definition");
    let td = td.task_definition().expect("definition");
    assert_eq!((td.cpu(), td.memory()), (Some("512"), Some("1024")));
    assert_eq!(
        td.execution_role_arn(),
        Some("arn:aws:iam::123456789012:role/ecsTaskExecutionRole")
    );
    let platform = td.runtime_platform().expect("runtime platform");
    assert_eq!(
        platform.cpu_architecture().map(|a| a.as_str()),
        Some("ARM64")
    );
    let app = &td.container_definitions()[0];
    assert_eq!(
        app.image(),
        Some("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/shop:v42")
    );
    assert!(
        app.environment()
            .iter()
            .any(|e| e.name() == Some("RAILS_ENV"))
    );
    assert_eq!(app.secrets()[0].name(), "DATABASE_URL");
    assert_eq!(
        app.log_configuration().map(|l| l.log_driver().as_str()),
        Some("awslogs")
    );
    assert_eq!(
        app.linux_parameters()
            .and_then(|l| l.init_process_enabled()),
        Some(true)
    );
    assert_eq!(app.port_mappings()[0].container_port(), Some(3000));
    written
}

#[test]
fn an_unset_variable_is_an_error_at_its_position_and_nothing_is_written() {
    let c = convert_without_image_tag(project("ecspresso"));
    assert!(
        c.stderr.contains("ecs-task-def.json:5:") && c.stderr.contains("must_env: IMAGE_TAG"),
        "{c}"
    );
}

#[test]
fn an_unset_must_env_in_jsonnet_is_an_error_at_its_call_and_nothing_is_written() {
    let c = convert_without_image_tag(project("ecspresso-jsonnet"));
    // Line 8 of ecs-task-def.jsonnet, at the call's argument list.
    assert!(
        c.stderr.contains(
            "ecs-task-def.jsonnet:8:107: must_env: environment variable IMAGE_TAG is not set"
        ),
        "{c}"
    );
}

/// Converts `project` with every variable but IMAGE_TAG set: exit 1 and
/// nothing written, checked here; what it printed for the caller to check.
fn convert_without_image_tag(project: PathBuf) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut convert = std::process::Command::new(env!("CARGO_BIN_EXE_ecsync"));
    convert
        .arg("convert")
        .arg("--ecspresso")
        .arg(project)
        .arg("--out")
        .arg(dir.path())
        .env("ECS_CLUSTER", "c")
        .env("SECURITY_GROUP", "sg-1")
        .env("SUBNET_A", "subnet-a")
        .env("SUBNET_B", "subnet-b")
        .env_remove("IMAGE_TAG");
    let c = run(convert);
    assert_eq!(c.code, 1, "{c}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    c
}
