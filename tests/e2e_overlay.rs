//! End to end: `kind: Overlay` (issue 17). An environment is built from a
//! base elsewhere in the repository, applied to moto as the result, named by
//! its overlay; `render` prints that result and `validate` checks it, and a
//! resource out of the repository or through a symlink is refused.

mod common;

use std::collections::BTreeMap;

use common::{GitRepo, Moto, ecsync_in, run, service_yaml};

const PROD: &str = r#"apiVersion: ecsync.io/v1alpha1
kind: Overlay
metadata:
  name: prod
spec:
  resources: [../../base]
  patches:
    - target: {kind: Service, name: web}
      patch:
        spec:
          desiredCount: 3
          taskDefinition:
            containerDefinitions:
              - name: app
                environment:
                  - {name: MODE, value: prod}
  images:
    - name: nginx
      newTag: "1.27"
"#;

async fn describe(moto: &Moto) -> (aws_sdk_ecs::types::Service, BTreeMap<String, String>) {
    let ecs = moto.ecs();
    let out = ecs
        .describe_services()
        .cluster("alpha")
        .services("web")
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .expect("describe services");
    let svc = out.services()[0].clone();
    let tags = svc
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect();
    (svc, tags)
}

async fn container(moto: &Moto, task_definition: &str) -> aws_sdk_ecs::types::ContainerDefinition {
    let td = moto
        .ecs()
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .expect("describe task definition");
    td.task_definition().unwrap().container_definitions()[0].clone()
}

/// A cluster, and a repository whose `base/web.yaml` lies outside --path
/// (services), with the prod overlay written by `overlay` (not committed).
async fn repository(moto: &Moto, overlay: &str) -> GitRepo {
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "base/web.yaml",
        &service_yaml("web", "alpha", &net, "nginx:1.25", "base", 1),
    );
    repo.write("services/prod/overlay.yaml", overlay);
    repo
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overlay_applies_its_patched_base_and_a_one_line_image_bump_rolls_out() {
    let moto = Moto::start();
    // The base is read only through the overlay.
    let repo = repository(&moto, PROD).await;
    repo.commit("web: base and prod");
    let cache = tempfile::tempdir().unwrap();

    let apply = ecsync_in(&moto, &repo, cache.path(), "apply", &[]);
    assert_eq!(apply.code, 0, "{apply}");
    let (svc, tags) = describe(&moto).await;
    assert_eq!(svc.desired_count(), 3, "the patch's count");
    assert_eq!(
        tags.get("ecsync.io/source").map(String::as_str),
        Some("services/prod/overlay.yaml"),
        "the overlay names the service's source"
    );
    let app = container(&moto, svc.task_definition().unwrap()).await;
    assert_eq!(app.image(), Some("nginx:1.27"), "the overlay's image tag");
    let env: BTreeMap<&str, &str> = app
        .environment()
        .iter()
        .filter_map(|e| Some((e.name()?, e.value()?)))
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([("LOG_LEVEL", "info"), ("MODE", "prod")])
    );

    // render prints what apply applied.
    let render = ecsync_in(&moto, &repo, cache.path(), "render", &[]);
    assert_eq!(render.code, 0, "{render}");
    assert!(
        render
            .stdout
            .contains("# Source: services/prod/overlay.yaml"),
        "{render}"
    );
    assert!(render.stdout.contains("desiredCount: 3"), "{render}");
    assert!(render.stdout.contains("image: nginx:1.27"), "{render}");
    assert!(!render.stdout.contains("nginx:1.25"), "{render}");

    // CI bumps the release by editing one line of the overlay.
    repo.write(
        "services/prod/overlay.yaml",
        &PROD.replace("\"1.27\"", "\"1.28\""),
    );
    repo.commit("prod: nginx 1.28");
    let apply = ecsync_in(&moto, &repo, cache.path(), "apply", &[]);
    assert_eq!(apply.code, 0, "{apply}");
    let (svc, _) = describe(&moto).await;
    let app = container(&moto, svc.task_definition().unwrap()).await;
    assert_eq!(app.image(), Some("nginx:1.28"));
}

#[tokio::test(flavor = "multi_thread")]
async fn resources_through_a_symlink_or_out_of_the_repository_are_refused() {
    let moto = Moto::start();
    let repo = repository(&moto, &PROD.replace("../../base", "../../shared")).await;
    std::os::unix::fs::symlink("base", repo.path().join("shared")).expect("symlink");
    repo.commit("prod through a symlink");
    let cache = tempfile::tempdir().unwrap();

    let apply = ecsync_in(&moto, &repo, cache.path(), "apply", &[]);
    assert_eq!(apply.code, 1, "{apply}");
    assert!(
        apply.stdout.contains("services/prod/overlay.yaml:6:"),
        "{apply}"
    );
    assert!(apply.stdout.contains("symbolic link shared"), "{apply}");
    let services = moto
        .ecs()
        .list_services()
        .cluster("alpha")
        .send()
        .await
        .unwrap();
    assert!(services.service_arns().is_empty(), "nothing applied");

    // validate on the checkout says the same.
    let mut validate = common::ecsync_with(&moto);
    validate.arg("validate").arg(repo.path().join("services"));
    let out = run(validate);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("symbolic link"), "{out}");

    let outside = PROD.replace("../../base", "../../../elsewhere");
    repo.write("services/prod/overlay.yaml", &outside);
    repo.commit("prod out of the repository");
    let apply = ecsync_in(&moto, &repo, cache.path(), "apply", &[]);
    assert_eq!(apply.code, 1, "{apply}");
    assert!(apply.stdout.contains("outside the repository"), "{apply}");
    let mut validate = common::ecsync_with(&moto);
    validate.arg("validate").arg(repo.path().join("services"));
    let out = run(validate);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("outside the repository"), "{out}");
}

#[test]
fn validate_points_into_the_base_for_what_the_base_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let net = common::Network {
        subnets: vec!["subnet-1".into(), "subnet-2".into()],
        security_group: "sg-1".into(),
        vpc_id: "vpc-1".into(),
    };
    let base = service_yaml("web", "alpha", &net, "nginx:1.25", "base", 1)
        .replace("networkMode: awsvpc", "networkMode: wormhole");
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::create_dir_all(dir.path().join("base")).unwrap();
    std::fs::create_dir_all(dir.path().join("services/prod")).unwrap();
    std::fs::write(dir.path().join("base/web.yaml"), base).unwrap();
    std::fs::write(dir.path().join("services/prod/overlay.yaml"), PROD).unwrap();
    let mut validate = common::ecsync();
    validate
        .current_dir(dir.path())
        .args(["validate", "services"]);
    let out = run(validate);
    assert_eq!(out.code, 1, "{out}");
    // networkMode is line 13 of the base, where the bad value was written.
    assert!(out.stdout.starts_with("base/web.yaml:13:"), "{out}");
    assert!(out.stdout.contains("wormhole"), "{out}");
}
