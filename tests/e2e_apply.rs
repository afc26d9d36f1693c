//! End to end: manifests in a real git repository, the real `ecsync` binary,
//! and a private moto per test (issue 2's "done when" list).

mod common;

use std::process::Command;

use common::{GitRepo, Moto, Network, Run, ecsync_with, run, service_yaml};
use serde_json::Value;

fn ecsync_cmd(moto: &Moto, repo: &GitRepo, cache: &tempfile::TempDir, args: &[&str]) -> Command {
    let mut cmd = ecsync_with(moto);
    cmd.args(args)
        .args(["--repo", &repo.url(), "--path", "services"])
        .arg("--cache-dir")
        .arg(cache.path());
    cmd
}

fn json_of(r: &Run) -> Value {
    r.json()
}

/// Three services in two clusters, committed.
async fn fleet(moto: &Moto) -> (GitRepo, Network) {
    moto.create_cluster("alpha").await;
    moto.create_cluster("beta").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "alpha", &net, "nginx:1.27", "a", 2),
    );
    repo.write(
        "services/more.yaml",
        &format!(
            "{}---\n{}",
            service_yaml("api", "alpha", &net, "api:1", "b", 1),
            service_yaml("worker", "beta", &net, "worker:1", "c", 3)
        ),
    );
    repo.write("services/README.md", "not a manifest");
    repo.commit("three services");
    (repo, net)
}

async fn task_definition_revisions(moto: &Moto, family: &str) -> usize {
    moto.ecs()
        .list_task_definitions()
        .family_prefix(family)
        .send()
        .await
        .expect("list task definitions")
        .task_definition_arns()
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_then_converges_then_diff_is_clean() {
    let moto = Moto::start();
    let (repo, _net) = fleet(&moto).await;
    let cache = tempfile::tempdir().unwrap();

    let first = run(ecsync_cmd(
        &moto,
        &repo,
        &cache,
        &["apply", "--output", "json"],
    ));
    assert_eq!(first.code, 0, "{first}");
    let report = json_of(&first);
    assert_eq!(report["revision"], repo.head().as_str());
    let done: Vec<String> = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}/{}:{}",
                s["cluster"].as_str().unwrap(),
                s["service"].as_str().unwrap(),
                s["done"]
            )
        })
        .collect();
    assert_eq!(
        done,
        vec![
            r#"alpha/api:["register_task_definition","create_service"]"#,
            r#"alpha/web:["register_task_definition","create_service"]"#,
            r#"beta/worker:["register_task_definition","create_service"]"#,
        ]
    );

    let described = moto
        .ecs()
        .describe_services()
        .cluster("alpha")
        .services("web")
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let web = &described.services()[0];
    assert_eq!(web.desired_count(), 2);
    let tags: std::collections::BTreeMap<_, _> = web
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert_eq!(
        tags.get("ecsync.io/managed-by").map(String::as_str),
        Some("ecsync")
    );
    assert_eq!(tags.get("ecsync.io/revision"), Some(&repo.head()));
    assert_eq!(
        tags.get("ecsync.io/source").map(String::as_str),
        Some("services/web.yaml")
    );
    assert_eq!(tags.get("team").map(String::as_str), Some("platform"));

    let second = run(ecsync_cmd(
        &moto,
        &repo,
        &cache,
        &["apply", "--output", "json"],
    ));
    assert_eq!(second.code, 0, "{second}");
    let report = json_of(&second);
    assert_eq!(
        report["awsCalls"]["mutating"], 0,
        "second apply must not mutate:\n{second}"
    );
    // Lower bound: DescribeClusters, one ListServices page and one DescribeServices
    // batch per cluster; task definitions are known from tags, not described.
    assert_eq!(report["awsCalls"]["total"], 5, "{second}");

    let diff = run(ecsync_cmd(&moto, &repo, &cache, &["diff"]));
    assert_eq!(diff.code, 0, "{diff}");
    assert!(
        diff.stdout.contains("3 services, 3 in sync, 0 drifted"),
        "{diff}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hand_changes_show_as_drift_and_apply_reverts_them() {
    let moto = Moto::start();
    let (repo, _net) = fleet(&moto).await;
    let cache = tempfile::tempdir().unwrap();
    let first = run(ecsync_cmd(&moto, &repo, &cache, &["apply"]));
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(task_definition_revisions(&moto, "web").await, 1);

    // Behind ecsync's back: a new revision with another image and variable, and a new count.
    let ecs = moto.ecs();
    let live = ecs
        .describe_task_definition()
        .task_definition("web")
        .send()
        .await
        .unwrap();
    let td = live.task_definition().unwrap();
    let mut container = td.container_definitions()[0].clone();
    container.image = Some("nginx:1.26-hotfix".into());
    container.environment = Some(vec![
        aws_sdk_ecs::types::KeyValuePair::builder()
            .name("MODE")
            .value("z")
            .build(),
        aws_sdk_ecs::types::KeyValuePair::builder()
            .name("LOG_LEVEL")
            .value("info")
            .build(),
    ]);
    let registered = ecs
        .register_task_definition()
        .family("web")
        .cpu("256")
        .memory("512")
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .container_definitions(container)
        .send()
        .await
        .unwrap();
    let hand_arn = registered
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string();
    ecs.update_service()
        .cluster("alpha")
        .service("web")
        .task_definition(&hand_arn)
        .desired_count(5)
        .send()
        .await
        .unwrap();

    let diff = run(ecsync_cmd(
        &moto,
        &repo,
        &cache,
        &["diff", "--output", "json"],
    ));
    assert_eq!(diff.code, 2, "{diff}");
    let report = json_of(&diff);
    let web = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "web")
        .unwrap();
    let drift: Vec<(String, Value, Value)> = web["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_string(),
                d["desired"].clone(),
                d["live"].clone(),
            )
        })
        .collect();
    assert_eq!(
        drift,
        vec![
            ("desiredCount".into(), 2.into(), 5.into()),
            (
                "taskDefinition.containerDefinitions[app].environment[MODE].value".into(),
                "a".into(),
                "z".into()
            ),
            (
                "taskDefinition.containerDefinitions[app].image".into(),
                "nginx:1.27".into(),
                "nginx:1.26-hotfix".into()
            ),
        ]
    );
    let text = run(ecsync_cmd(&moto, &repo, &cache, &["diff"]));
    assert_eq!(text.code, 2, "{text}");
    assert!(
        text.stdout
            .contains("taskDefinition.containerDefinitions[app].image"),
        "{text}"
    );
    assert!(text.stdout.contains("git:  \"nginx:1.27\""), "{text}");

    let fix = run(ecsync_cmd(
        &moto,
        &repo,
        &cache,
        &["apply", "--output", "json"],
    ));
    assert_eq!(fix.code, 0, "{fix}");
    // One hand-made revision plus at most one new one from ecsync.
    assert_eq!(task_definition_revisions(&moto, "web").await, 3);
    let after = run(ecsync_cmd(&moto, &repo, &cache, &["diff"]));
    assert_eq!(after.code, 0, "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_and_report_mode_make_no_mutating_call() {
    let moto = Moto::start();
    let (repo, _net) = fleet(&moto).await;
    let cache = tempfile::tempdir().unwrap();
    for args in [["apply", "--dry-run"], ["apply", "--mode=report"]] {
        let mut cmd = ecsync_cmd(&moto, &repo, &cache, &args);
        cmd.args(["--output", "json"]);
        let r = run(cmd);
        assert_eq!(r.code, 0, "{r}");
        assert_eq!(json_of(&r)["awsCalls"]["mutating"], 0, "{r}");
    }
    let listed = moto
        .ecs()
        .list_services()
        .cluster("alpha")
        .send()
        .await
        .unwrap();
    assert!(
        listed.service_arns().is_empty(),
        "nothing may have been created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_manifest_holds_only_its_services() {
    let moto = Moto::start();
    let (repo, _net) = fleet(&moto).await;
    repo.write(
        "services/broken.yaml",
        "apiVersion: ecsync.io/v1alpha1\nkind: Service\nmetadata:\n  name: bad\n  colour: blue\n",
    );
    repo.commit("a broken manifest");
    let cache = tempfile::tempdir().unwrap();

    let mut validate = ecsync_with(&moto);
    validate.arg("validate").arg(repo.path().join("services"));
    let v = run(validate);
    assert_eq!(v.code, 1, "{v}");
    assert!(
        v.stdout.contains("broken.yaml:5:3: unknown field `colour`"),
        "{v}"
    );

    let apply = run(ecsync_cmd(&moto, &repo, &cache, &["apply"]));
    assert_eq!(apply.code, 1, "{apply}");
    assert!(apply.stdout.contains("services/broken.yaml:5:3"), "{apply}");
    let alpha = moto
        .ecs()
        .list_services()
        .cluster("alpha")
        .send()
        .await
        .unwrap();
    let beta = moto
        .ecs()
        .list_services()
        .cluster("beta")
        .send()
        .await
        .unwrap();
    assert_eq!(
        alpha.service_arns().len() + beta.service_arns().len(),
        3,
        "{apply}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn import_writes_manifests_that_validate_and_diff_clean() {
    let moto = Moto::start();
    moto.create_cluster("legacy").await;
    let net = moto.default_network().await;
    let ecs = moto.ecs();
    let tg = moto.create_target_group("shop-ecs", "ip", 80).await;
    // Created by hand, the way an account looks before ecsync.
    ecs.register_task_definition()
        .family("shop")
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .cpu("512")
        .memory("1024")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("shop")
                .image("shop:7")
                .port_mappings(
                    aws_sdk_ecs::types::PortMapping::builder()
                        .container_port(80)
                        .build(),
                )
                .environment(
                    aws_sdk_ecs::types::KeyValuePair::builder()
                        .name("X")
                        .value("1")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster("legacy")
        .service_name("shop")
        .task_definition("shop")
        .desired_count(2)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                        .set_subnets(Some(net.subnets.clone()))
                        .security_groups(&net.security_group)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .load_balancers(
            aws_sdk_ecs::types::LoadBalancer::builder()
                .target_group_arn(&tg)
                .container_name("shop")
                .container_port(80)
                .build(),
        )
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("team")
                .value("retail")
                .build(),
        )
        .send()
        .await
        .unwrap();

    let repo = GitRepo::new();
    let out_dir = repo.path().join("services");
    let mut import = ecsync_with(&moto);
    import
        .args(["import", "--cluster", "legacy", "--out"])
        .arg(&out_dir);
    let i = run(import);
    assert_eq!(i.code, 0, "{i}");
    let yaml = std::fs::read_to_string(out_dir.join("shop.yaml")).expect("shop.yaml written");
    assert!(yaml.contains("targetGroup: shop-ecs"), "{yaml}");

    let mut validate = ecsync_with(&moto);
    validate.arg("validate").arg(&out_dir);
    let v = run(validate);
    assert_eq!(v.code, 0, "{v}\n{yaml}");

    repo.commit("imported");
    let cache = tempfile::tempdir().unwrap();
    let diff = run(ecsync_cmd(&moto, &repo, &cache, &["diff"]));
    assert_eq!(
        diff.code, 0,
        "imported manifests must diff clean:\n{diff}\n{yaml}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_fails_clearly() {
    let moto = Moto::start();
    let (repo, net) = fleet(&moto).await;
    let cache = tempfile::tempdir().unwrap();

    let mut bad_ref = ecsync_cmd(&moto, &repo, &cache, &["diff"]);
    bad_ref.args(["--ref", "no-such-branch"]);
    let r = run(bad_ref);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("no-such-branch"), "{r}");

    let mut unreachable = ecsync_with(&moto);
    unreachable
        .args(["diff", "--repo", "/nonexistent/repo.git", "--cache-dir"])
        .arg(cache.path());
    let r = run(unreachable);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("/nonexistent/repo.git"), "{r}");

    // A missing cluster and a missing target group are per-service errors.
    let mut yaml = service_yaml("ghost", "nowhere", &net, "x:1", "a", 1);
    yaml.push_str("");
    repo.write("services/ghost.yaml", &yaml);
    let lb = service_yaml("lb", "alpha", &net, "x:1", "a", 1).replace(
        "  tags: {team: platform}\n",
        "  tags: {team: platform}\n  loadBalancers: [{targetGroup: nope, containerName: app, containerPort: 8080}]\n",
    );
    repo.write("services/lb.yaml", &lb);
    repo.commit("errors");
    let r = run(ecsync_cmd(&moto, &repo, &cache, &["apply"]));
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("cluster \"nowhere\" not found"), "{r}");
    assert!(r.stdout.contains("target group \"nope\" not found"), "{r}");
    let alpha = moto
        .ecs()
        .list_services()
        .cluster("alpha")
        .send()
        .await
        .unwrap();
    assert_eq!(
        alpha.service_arns().len(),
        2,
        "the valid services still converge:\n{r}"
    );

    let mut empty = GitRepo::new();
    empty.write("services/.keep", "");
    empty.commit("nothing");
    let r = run(ecsync_cmd(&moto, &empty, &cache, &["apply"]));
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("no manifests found"), "{r}");
    let _ = &mut empty;
}

/// The definition as `DescribeTaskDefinition` gives it, in the API's JSON,
/// less what every revision has of its own.
async fn described_definition(moto: &Moto, arn: &str) -> serde_json::Value {
    let out = moto
        .ecs()
        .describe_task_definition()
        .task_definition(arn)
        .send()
        .await
        .expect("describe task definition");
    let td = out.task_definition().expect("a definition");
    let mut json = ecsync::adapters::aws::convert::api_json("TaskDefinition", td).expect("json");
    let obj = json.as_object_mut().expect("an object");
    for own in [
        "taskDefinitionArn",
        "revision",
        "registeredAt",
        "registeredBy",
        "status",
        "deregisteredAt",
    ] {
        obj.remove(own);
    }
    json
}

#[tokio::test(flavor = "multi_thread")]
async fn adoption_keeps_every_setting_of_a_live_definition_across_an_image_bump() {
    use aws_sdk_ecs::types::{
        ContainerCondition, ContainerDefinition, ContainerDependency, DockerVolumeConfiguration,
        EfsTransitEncryption, EfsVolumeConfiguration, EnvironmentFile, EnvironmentFileType,
        FirelensConfiguration, FirelensConfigurationType, HostEntry, KernelCapabilities,
        LinuxParameters, LogConfiguration, LogDriver, MountPoint, RepositoryCredentials, Scope,
        SystemControl, Ulimit, UlimitName, Volume,
    };
    let moto = Moto::start();
    moto.create_cluster("legacy").await;
    let net = moto.default_network().await;
    let router = ContainerDefinition::builder()
        .name("log-router")
        .image("public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0")
        .essential(true)
        .memory(64)
        .firelens_configuration(
            FirelensConfiguration::builder()
                .r#type(FirelensConfigurationType::Fluentbit)
                .options("enable-ecs-log-metadata", "false")
                .build()
                .expect("firelens"),
        )
        .build();
    let edge = ContainerDefinition::builder()
        .name("edge")
        .image("edge:1")
        .memory(256)
        .repository_credentials(
            RepositoryCredentials::builder()
                .credentials_parameter("arn:aws:secretsmanager:us-east-1:123456789012:secret:hub")
                .build()
                .expect("credentials"),
        )
        .linux_parameters(
            LinuxParameters::builder()
                .init_process_enabled(true)
                .capabilities(KernelCapabilities::builder().add("SYS_PTRACE").build())
                .build(),
        )
        .extra_hosts(
            HostEntry::builder()
                .hostname("db")
                .ip_address("10.0.0.5")
                .build()
                .expect("host entry"),
        )
        .system_controls(
            SystemControl::builder()
                .namespace("net.core.somaxconn")
                .value("1024")
                .build(),
        )
        .dns_search_domains("internal.example")
        .environment_files(
            EnvironmentFile::builder()
                .value("arn:aws:s3:::config/edge.env")
                .r#type(EnvironmentFileType::S3)
                .build()
                .expect("env file"),
        )
        .ulimits(
            Ulimit::builder()
                .name(UlimitName::Nofile)
                .soft_limit(65536)
                .hard_limit(65536)
                .build()
                .expect("ulimit"),
        )
        .depends_on(
            ContainerDependency::builder()
                .container_name("log-router")
                .condition(ContainerCondition::Start)
                .build()
                .expect("depends on"),
        )
        .mount_points(
            MountPoint::builder()
                .source_volume("shared")
                .container_path("/srv/shared")
                .build(),
        )
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awsfirelens)
                .options("Name", "datadog")
                .build()
                .expect("log configuration"),
        )
        .build();
    let ecs = moto.ecs();
    ecs.register_task_definition()
        .family("edge")
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .cpu("512")
        .memory("1024")
        .container_definitions(router)
        .container_definitions(edge)
        .volumes(
            Volume::builder()
                .name("shared")
                .efs_volume_configuration(
                    EfsVolumeConfiguration::builder()
                        .file_system_id("fs-12345678")
                        .transit_encryption(EfsTransitEncryption::Enabled)
                        .build()
                        .expect("efs"),
                )
                .build(),
        )
        .volumes(
            Volume::builder()
                .name("scratch")
                .docker_volume_configuration(
                    DockerVolumeConfiguration::builder()
                        .scope(Scope::Task)
                        .driver("local")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("register");
    ecs.create_service()
        .cluster("legacy")
        .service_name("edge")
        .task_definition("edge")
        .desired_count(2)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                        .set_subnets(Some(net.subnets.clone()))
                        .security_groups(&net.security_group)
                        .assign_public_ip(aws_sdk_ecs::types::AssignPublicIp::Disabled)
                        .build()
                        .expect("awsvpc"),
                )
                .build(),
        )
        .deployment_configuration(
            aws_sdk_ecs::types::DeploymentConfiguration::builder()
                .maximum_percent(150)
                .minimum_healthy_percent(50)
                .deployment_circuit_breaker(
                    aws_sdk_ecs::types::DeploymentCircuitBreaker::builder()
                        .enable(true)
                        .rollback(true)
                        .build(),
                )
                .build(),
        )
        .enable_execute_command(true)
        .propagate_tags(aws_sdk_ecs::types::PropagateTags::Service)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("team")
                .value("edge")
                .build(),
        )
        .send()
        .await
        .expect("create service");
    let before = described_definition(&moto, "edge:1").await;
    let service_before = described_service(&moto, "edge").await;

    let repo = GitRepo::new();
    let out_dir = repo.path().join("services");
    let mut import = ecsync_with(&moto);
    import
        .args(["import", "--cluster", "legacy", "--out"])
        .arg(&out_dir);
    let i = run(import);
    assert_eq!(i.code, 0, "{i}");
    assert!(
        !i.stderr.contains("warning"),
        "everything is expressible: {i}"
    );
    let mut validate = ecsync_with(&moto);
    validate.arg("validate").arg(&out_dir);
    let v = run(validate);
    assert_eq!(v.code, 0, "{v}");
    repo.commit("imported");
    let cache = tempfile::tempdir().unwrap();
    let diff = run(ecsync_cmd(&moto, &repo, &cache, &["diff"]));
    assert_eq!(diff.code, 0, "imported manifests diff clean:\n{diff}");

    // An image bump in Git, as CI would make it.
    let path = out_dir.join("edge.yaml");
    let yaml = std::fs::read_to_string(&path).expect("imported manifest");
    std::fs::write(&path, yaml.replace("edge:1", "edge:2")).expect("bump");
    repo.commit("bump image");
    let apply = run(ecsync_cmd(&moto, &repo, &cache, &["apply"]));
    assert_eq!(apply.code, 0, "{apply}");
    assert_eq!(task_definition_revisions(&moto, "edge").await, 2, "{apply}");

    let mut after = described_definition(&moto, "edge:2").await;
    let image = after
        .pointer_mut("/containerDefinitions")
        .and_then(|c| c.as_array_mut())
        .and_then(|c| c.iter_mut().find(|c| c["name"] == "edge"))
        .map(|c| std::mem::replace(&mut c["image"], "edge:1".into()));
    assert_eq!(image, Some("edge:2".into()), "{after}");
    assert_eq!(
        ecsync::core::diff::diff_values("", &before, &after),
        Vec::new(),
        "the new revision differs from the old in more than the image"
    );
    let mut service_after = described_service(&moto, "edge").await;
    let arn = service_after["taskDefinition"].take();
    assert!(
        arn.as_str()
            .is_some_and(|a| a.ends_with("task-definition/edge:2")),
        "{arn}"
    );
    service_after["taskDefinition"] = service_before["taskDefinition"].clone();
    assert_eq!(
        ecsync::core::diff::diff_values("", &service_before, &service_after),
        Vec::new(),
        "the service's settings changed with the update"
    );
}

/// A service's `CreateService` members as `DescribeServices` gives them
/// (tags but ecsync's own), and its task definition.
async fn described_service(moto: &Moto, name: &str) -> serde_json::Value {
    let out = moto
        .ecs()
        .describe_services()
        .cluster("legacy")
        .services(name)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .expect("describe services");
    let svc = &out.services()[0];
    let mut json = ecsync::adapters::aws::convert::api_json("Service", svc).expect("json");
    let obj = json.as_object_mut().expect("an object");
    obj.retain(|k, _| {
        k == "taskDefinition" || ecsync::core::model::SERVICE_SPEC_MEMBERS.contains(&k.as_str())
    });
    if let Some(tags) = obj.get_mut("tags").and_then(|t| t.as_array_mut()) {
        tags.retain(|t| {
            !t["key"]
                .as_str()
                .is_some_and(ecsync::core::normalize::is_reserved_tag)
        });
    }
    json
}
