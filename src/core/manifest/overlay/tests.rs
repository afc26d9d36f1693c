use super::*;
use crate::core::manifest::{ManifestSet, load, load_tree, render_tree};

const BASE: &str = r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: web
spec:
  cluster: staging
  desiredCount: 1
  launchType: FARGATE
  taskDefinition:
    family: web
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: web
        image: 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/web:base
        portMappings: [{containerPort: 3000}]
        environment:
          - {name: RAILS_ENV, value: staging}
          - {name: RAILS_LOG_TO_STDOUT, value: "1"}
      - name: log-router
        image: public.ecr.aws/aws-observability/aws-for-fluent-bit:stable
  networkConfiguration:
    awsvpcConfiguration: {subnets: [subnet-a], securityGroups: [sg-1]}
"#;

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
          cluster: prod
          desiredCount: 6
          taskDefinition:
            cpu: "1024"
            containerDefinitions:
              - name: web
                portMappings: [{containerPort: 3000, name: http}]
                environment:
                  - {name: RAILS_ENV, value: production}
                  - {name: WEB_CONCURRENCY, value: "4"}
  images:
    - name: 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/web
      newTag: "2026-12-01.3"
"#;

fn set(files: &[(&str, &str)]) -> ManifestSet {
    load(files.iter().copied())
}

fn errors(set: &ManifestSet) -> Vec<String> {
    set.errors.iter().map(ToString::to_string).collect()
}

fn env(set: &ManifestSet) -> Vec<(String, String)> {
    set.services[0]
        .spec
        .task_definition
        .container_definitions
        .iter()
        .find(|c| c.name.as_deref() == Some("web"))
        .unwrap()
        .environment
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.clone().unwrap(), e.value.clone().unwrap()))
        .collect()
}

#[test]
fn an_overlay_patches_its_base_merging_named_lists_by_key() {
    let s = set(&[
        ("apps/base/web.yaml", BASE),
        ("apps/envs/prod/overlay.yaml", PROD),
    ]);
    assert_eq!(errors(&s), Vec::<String>::new());
    // The base is read through the overlay only: one service, in prod.
    assert_eq!(s.services.len(), 1);
    let web = &s.services[0];
    assert_eq!(web.key.cluster, "prod");
    assert_eq!(web.source, "apps/envs/prod/overlay.yaml");
    assert_eq!(web.spec.desired_count, Some(6));
    let td = &web.spec.task_definition;
    assert_eq!(td.cpu.as_deref(), Some("1024"));
    let containers = &td.container_definitions;
    assert_eq!(containers.len(), 2, "merged by name, not appended");
    let web_c = containers
        .iter()
        .find(|c| c.name.as_deref() == Some("web"))
        .unwrap();
    assert_eq!(
        web_c.image.as_deref(),
        Some("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/web:2026-12-01.3")
    );
    let ports = web_c.port_mappings.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    let mut vars = env(&s);
    vars.sort();
    assert_eq!(
        vars,
        [
            ("RAILS_ENV".to_string(), "production".to_string()),
            ("RAILS_LOG_TO_STDOUT".into(), "1".into()),
            ("WEB_CONCURRENCY".into(), "4".into()),
        ]
    );
    let sidecar = containers
        .iter()
        .find(|c| c.name.as_deref() == Some("log-router"))
        .unwrap();
    assert!(
        sidecar.image.as_deref().unwrap().ends_with(":stable"),
        "other images untouched"
    );
}

#[test]
fn overlays_build_on_overlays_and_null_or_delete_removes() {
    let eu = r#"apiVersion: ecsync.io/v1alpha1
kind: Overlay
metadata: {name: prod-eu}
spec:
  resources: [../prod/overlay.yaml]
  patches:
    - patch:
        spec:
          cluster: prod-eu
          desiredCount: null
          taskDefinition:
            containerDefinitions:
              - name: web
                environment:
                  - {name: RAILS_LOG_TO_STDOUT, $patch: delete}
              - {name: log-router, $patch: delete}
  images:
    - {name: 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/web, digest: "sha256:abc"}
"#;
    let s = set(&[
        ("apps/base/web.yaml", BASE),
        ("apps/envs/prod/overlay.yaml", PROD),
        ("apps/envs/prod-eu/overlay.yaml", eu),
    ]);
    assert_eq!(errors(&s), Vec::<String>::new());
    // prod is reached by prod-eu, so only prod-eu's result is loaded.
    assert_eq!(s.services.len(), 1, "{:?}", s.services);
    let web = &s.services[0];
    assert_eq!(web.key.cluster, "prod-eu");
    assert_eq!(web.source, "apps/envs/prod-eu/overlay.yaml");
    assert_eq!(
        web.spec.desired_count, None,
        "null removes what the base set"
    );
    let containers = &web.spec.task_definition.container_definitions;
    assert_eq!(containers.len(), 1);
    assert_eq!(
        containers[0].image.as_deref(),
        Some("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/web@sha256:abc")
    );
    let names: Vec<String> = env(&s).into_iter().map(|(n, _)| n).collect();
    assert!(
        !names.contains(&"RAILS_LOG_TO_STDOUT".to_string()),
        "{names:?}"
    );
}

#[test]
fn errors_point_at_the_file_that_wrote_the_value() {
    // A bad value from the overlay's patch: the overlay's line.
    let bad_patch = PROD.replace("desiredCount: 6", "desiredCount: -6");
    let s = set(&[
        ("apps/base/web.yaml", BASE),
        ("apps/envs/prod/overlay.yaml", &bad_patch),
    ]);
    let e = errors(&s);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("apps/envs/prod/overlay.yaml:12:"), "{e:?}");
    assert!(e[0].contains("desiredCount"), "{e:?}");
    assert!(s.services.is_empty());
    assert!(s.broken_files.contains("apps/envs/prod/overlay.yaml"));

    // A bad value the overlay did not touch: the base's line.
    let bad_base = BASE.replace("memory: \"512\"", "memory: \"lots\"");
    let s = set(&[
        ("apps/base/web.yaml", &bad_base),
        ("apps/envs/prod/overlay.yaml", PROD),
    ]);
    let e = errors(&s);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("apps/base/web.yaml:12:"), "{e:?}");

    // A value the overlay removed: the overlay's line.
    let removed = PROD.replace("desiredCount: 6", "networkConfiguration: null");
    let s = set(&[
        ("apps/base/web.yaml", BASE),
        ("apps/envs/prod/overlay.yaml", &removed),
    ]);
    let e = errors(&s);
    assert!(e[0].starts_with("apps/envs/prod/overlay.yaml:12:"), "{e:?}");

    // A field the API does not have, added by the patch: typed errors too.
    let unknown = PROD.replace("desiredCount: 6", "desiredCont: 6");
    let s = set(&[
        ("apps/base/web.yaml", BASE),
        ("apps/envs/prod/overlay.yaml", &unknown),
    ]);
    let e = errors(&s);
    assert!(e[0].starts_with("apps/envs/prod/overlay.yaml:12:"), "{e:?}");
    assert!(e[0].contains("desiredCont"), "{e:?}");

    // An element the keyed merge appended: its own line in the patch.
    let appended = PROD.replace(
        "{name: WEB_CONCURRENCY, value: \"4\"}",
        "{name: WEB_CONCURRENCY, valu: \"4\"}",
    );
    let s = set(&[
        ("apps/base/web.yaml", BASE),
        ("apps/envs/prod/overlay.yaml", &appended),
    ]);
    let e = errors(&s);
    assert!(e[0].starts_with("apps/envs/prod/overlay.yaml:20:"), "{e:?}");
}

#[test]
fn resources_must_stay_in_the_repository_exist_and_not_loop() {
    let with = |resources: &str| PROD.replace("[../../base]", resources);
    let outside = with("[../../../../etc]");
    let s = set(&[
        ("apps/base/web.yaml", BASE),
        ("apps/envs/prod/overlay.yaml", &outside),
    ]);
    let e = errors(&s);
    assert!(e[0].starts_with("apps/envs/prod/overlay.yaml:6:"), "{e:?}");
    assert!(e[0].contains("outside the repository"), "{e:?}");

    let missing = with("[../../bsae]");
    let s = set(&[
        ("apps/base/web.yaml", BASE),
        ("apps/envs/prod/overlay.yaml", &missing),
    ]);
    assert!(errors(&s)[0].contains("no manifest file or folder there"));

    let a = with("[../b/overlay.yaml]");
    let b = with("[../a/overlay.yaml]");
    let s = set(&[
        ("apps/envs/a/overlay.yaml", &a),
        ("apps/envs/b/overlay.yaml", &b),
    ]);
    let e = errors(&s);
    assert!(
        !e.is_empty() && e.iter().all(|e| e.contains("cycle")),
        "{e:?}"
    );
    assert!(s.services.is_empty());

    let own = with("[.]");
    let s = set(&[("apps/envs/prod/overlay.yaml", &own)]);
    assert!(errors(&s)[0].contains("cycle"), "{:?}", errors(&s));
}

#[test]
fn a_symlink_on_the_way_is_refused() {
    let listing = Listing {
        manifests: ["apps/base/web.yaml".to_string()].into(),
        symlinks: ["apps/shared".to_string()].into(),
    };
    let from = "apps/envs/prod/overlay.yaml";
    assert_eq!(
        listing.resolve(from, "../../shared/web.yaml"),
        Resolved::Symlink("apps/shared".into())
    );
    assert_eq!(
        listing.resolve(from, "../../base"),
        Resolved::Files(vec!["apps/base/web.yaml".into()])
    );
    assert_eq!(listing.resolve(from, "/etc"), Resolved::Outside);
    let tree = Tree {
        files: [(from.to_string(), PROD.replace("../../base", "../../shared"))].into(),
        resolved: [(
            (from.to_string(), "../../shared".to_string()),
            Resolved::Symlink("apps/shared".into()),
        )]
        .into(),
    };
    let text = tree.files[from].clone();
    let s = load_tree([(from, text.as_str())], &tree);
    assert!(
        errors(&s)[0].contains("symbolic link apps/shared"),
        "{:?}",
        errors(&s)
    );
}

#[test]
fn a_patch_that_matches_nothing_is_an_error() {
    let typo = PROD.replace("name: web}", "name: wbe}");
    let s = set(&[
        ("apps/base/web.yaml", BASE),
        ("apps/envs/prod/overlay.yaml", &typo),
    ]);
    let e = errors(&s);
    assert!(e[0].starts_with("apps/envs/prod/overlay.yaml:8:"), "{e:?}");
    assert!(e[0].contains("matches no manifest"), "{e:?}");
}

#[test]
fn render_shows_the_final_values() {
    let files = [
        ("apps/base/web.yaml", BASE),
        ("apps/envs/prod/overlay.yaml", PROD),
    ];
    let tree = tree_of(files);
    let (rendered, errors) = render_tree(files, &tree);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(rendered.len(), 1);
    assert_eq!(rendered[0].source, "apps/envs/prod/overlay.yaml");
    assert_eq!(rendered[0].value["spec"]["cluster"], "prod");
    assert_eq!(rendered[0].value["spec"]["desiredCount"], 6);
}

#[test]
fn image_references_split_at_tag_and_digest() {
    for (image, want) in [
        ("nginx", ("nginx", None, None)),
        ("nginx:1.27", ("nginx", Some("1.27"), None)),
        ("localhost:5000/web", ("localhost:5000/web", None, None)),
        (
            "localhost:5000/web:v2",
            ("localhost:5000/web", Some("v2"), None),
        ),
        ("web@sha256:ab", ("web", None, Some("sha256:ab"))),
        ("web:v1@sha256:ab", ("web", Some("v1"), Some("sha256:ab"))),
    ] {
        assert_eq!(split_image(image), want, "{image}");
    }
}

#[test]
fn joins_stay_inside_the_repository() {
    assert_eq!(join("a/b/o.yaml", "../c"), Some("a/c".into()));
    assert_eq!(join("a/b/o.yaml", "./x.yaml"), Some("a/b/x.yaml".into()));
    assert_eq!(join("o.yaml", "base"), Some("base".into()));
    assert_eq!(join("a/o.yaml", "../.."), None);
    assert_eq!(join("a/o.yaml", "/abs"), None);
}
