//! End to end: sharing an account with other tools (issue 18). Tags are
//! owned per key, and `ignoreDifferences` paths keep their live values.

mod common;

use std::collections::BTreeMap;

use common::{GitRepo, Moto, ecsync_in, service_yaml};
use serde_json::Value;

async fn service(moto: &Moto, name: &str) -> aws_sdk_ecs::types::Service {
    let out = moto
        .ecs()
        .describe_services()
        .cluster("alpha")
        .services(name)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .expect("describe services");
    out.services()[0].clone()
}

async fn tags_of(moto: &Moto, name: &str) -> BTreeMap<String, String> {
    service(moto, name)
        .await
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

fn ignored(report: &Value) -> Vec<(String, String)> {
    report["services"][0]["ignored"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["path"].as_str().unwrap_or_default().to_string(),
                i["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_tag_survives_every_pass_and_a_declared_tag_removed_from_git_goes() {
    let moto = Moto::start();
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    let web = service_yaml("web", "alpha", &net, "nginx:1.27", "a", 2).replace(
        "tags: {team: platform}",
        "tags: {team: platform, owner: web-team}",
    );
    repo.write("services/web.yaml", &web);
    repo.commit("web");
    let cache = tempfile::tempdir().unwrap();
    let apply = ecsync_in(&moto, &repo, cache.path(), "apply", &[]);
    assert_eq!(apply.code, 0, "{apply}");
    let arn = service(&moto, "web")
        .await
        .service_arn()
        .unwrap_or_default()
        .to_string();

    // FinOps tags the service by hand.
    moto.ecs()
        .tag_resource()
        .resource_arn(&arn)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("cost-center")
                .value("42")
                .build(),
        )
        .send()
        .await
        .expect("tag");
    let diff = ecsync_in(&moto, &repo, cache.path(), "diff", &["--output", "json"]);
    assert_eq!(diff.code, 0, "a foreign tag is no drift:\n{diff}");
    assert_eq!(
        ignored(&diff.json()),
        [("tags.cost-center".to_string(), "foreignTag".to_string())],
        "{diff}"
    );
    let text = ecsync_in(&moto, &repo, cache.path(), "diff", &[]);
    assert!(
        text.stdout
            .contains("ignored (foreign tag): tags.cost-center"),
        "{text}"
    );

    // Self-heal: someone scales the service by hand; the pass puts it back.
    moto.ecs()
        .update_service()
        .cluster("alpha")
        .service("web")
        .desired_count(5)
        .send()
        .await
        .expect("scale");
    let heal = ecsync_in(&moto, &repo, cache.path(), "apply", &[]);
    assert_eq!(heal.code, 0, "{heal}");
    assert_eq!(service(&moto, "web").await.desired_count(), 2);
    assert_eq!(
        tags_of(&moto, "web")
            .await
            .get("cost-center")
            .map(String::as_str),
        Some("42")
    );

    // Prune protection is switched on: the pass tags; the foreign key stays.
    repo.write(
        "services/web.yaml",
        &web.replace(
            "  name: web\n",
            "  name: web\n  annotations: {ecsync.io/prune: disabled}\n",
        ),
    );
    repo.commit("protect web");
    let protect = ecsync_in(&moto, &repo, cache.path(), "apply", &[]);
    assert_eq!(protect.code, 0, "{protect}");
    let tags = tags_of(&moto, "web").await;
    assert_eq!(
        tags.get("ecsync.io/prune").map(String::as_str),
        Some("disabled")
    );
    assert_eq!(tags.get("cost-center").map(String::as_str), Some("42"));

    // A key Git no longer declares goes, because ecsync had put it there.
    repo.write(
        "services/web.yaml",
        &web.replace(
            "tags: {team: platform, owner: web-team}",
            "tags: {team: platform}",
        ),
    );
    repo.commit("drop the owner tag");
    let drop = ecsync_in(&moto, &repo, cache.path(), "apply", &[]);
    assert_eq!(drop.code, 0, "{drop}");
    let tags = tags_of(&moto, "web").await;
    assert!(!tags.contains_key("owner"), "{tags:?}");
    assert_eq!(tags.get("team").map(String::as_str), Some("platform"));
    assert_eq!(tags.get("cost-center").map(String::as_str), Some("42"));
    assert_eq!(
        tags.get("ecsync.io/managed-tags").map(String::as_str),
        Some("team")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_set_outside_git_under_an_ignored_path_survives_an_unrelated_revision() {
    let moto = Moto::start();
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    let web = service_yaml("web", "alpha", &net, "nginx:1.27", "a", 1).replace(
        "  tags: {team: platform}\n",
        "  tags: {team: platform}\n  ignoreDifferences:\n    - taskDefinition.containerDefinitions[app].image\n",
    );
    repo.write("services/web.yaml", &web);
    repo.commit("web");
    let cache = tempfile::tempdir().unwrap();
    let apply = ecsync_in(&moto, &repo, cache.path(), "apply", &[]);
    assert_eq!(apply.code, 0, "{apply}");

    // An image updater registers a revision with a new image and rolls it out.
    let ecs = moto.ecs();
    let current = service(&moto, "web")
        .await
        .task_definition()
        .unwrap_or_default()
        .to_string();
    let described = ecs
        .describe_task_definition()
        .task_definition(&current)
        .send()
        .await
        .expect("describe");
    let td = described.task_definition().expect("definition");
    let containers: Vec<aws_sdk_ecs::types::ContainerDefinition> = td
        .container_definitions()
        .iter()
        .cloned()
        .map(|mut c| {
            c.image = Some("nginx:hotfix".into());
            c
        })
        .collect();
    let hotfix = ecs
        .register_task_definition()
        .family("web")
        .set_network_mode(td.network_mode().cloned())
        .set_cpu(td.cpu().map(str::to_string))
        .set_memory(td.memory().map(str::to_string))
        .set_requires_compatibilities(Some(td.requires_compatibilities().to_vec()))
        .set_container_definitions(Some(containers))
        .send()
        .await
        .expect("register the hotfix");
    let hotfix_arn = hotfix
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap_or_default()
        .to_string();
    ecs.update_service()
        .cluster("alpha")
        .service("web")
        .task_definition(&hotfix_arn)
        .send()
        .await
        .expect("roll out the hotfix");

    let diff = ecsync_in(&moto, &repo, cache.path(), "diff", &["--output", "json"]);
    assert_eq!(diff.code, 0, "an ignored path is no drift:\n{diff}");
    assert!(
        ignored(&diff.json()).contains(&(
            "taskDefinition.containerDefinitions[app].image".to_string(),
            "ignoredPath".to_string()
        )),
        "{diff}"
    );

    // An unrelated change in Git registers a new revision: it keeps the hotfix.
    repo.write(
        "services/web.yaml",
        &web.replace("value: info", "value: debug"),
    );
    repo.commit("more logs");
    let apply = ecsync_in(&moto, &repo, cache.path(), "apply", &[]);
    assert_eq!(apply.code, 0, "{apply}");
    let now = service(&moto, "web")
        .await
        .task_definition()
        .unwrap_or_default()
        .to_string();
    assert_ne!(now, hotfix_arn, "a new revision: {apply}");
    let described = ecs
        .describe_task_definition()
        .task_definition(&now)
        .send()
        .await
        .expect("describe");
    let c = &described
        .task_definition()
        .expect("definition")
        .container_definitions()[0];
    assert_eq!(c.image(), Some("nginx:hotfix"), "the live image is kept");
    assert!(
        c.environment()
            .iter()
            .any(|e| e.name() == Some("LOG_LEVEL") && e.value() == Some("debug")),
        "the change from Git is in: {c:?}"
    );
}
