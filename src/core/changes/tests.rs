use super::*;
use crate::core::manifest::load_tree;
use crate::core::manifest::overlay::tree_of;

/// A minimal valid service; `extra` is appended under `spec:`.
fn svc(name: &str, image: &str, count: u32, extra: &str) -> String {
    format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: {name}
spec:
  cluster: c
  desiredCount: {count}
  launchType: FARGATE
  taskDefinition:
    family: {name}
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: app
        image: {image}
        portMappings: [{{containerPort: 80}}]
  networkConfiguration:
    awsvpcConfiguration: {{subnets: [subnet-a], securityGroups: [sg-1]}}
{extra}"#
    )
}

const MIGRATION: &str = r#"  loadBalancers:
    - {targetGroup: web-ecs, containerName: app, containerPort: 80}
  migration:
    listener: arn:aws:elasticloadbalancing:us-east-1:1:listener/app/a/1/2
    from:
      targetGroup: web-ec2
      instances: {tags: {app: web}}
    steps: [10, 100]
    stepInterval: 5m
"#;

/// As the daemon loads a revision: the files under `services/` (or all, when none
/// is), with the whole tree for overlays to build on.
fn set(files: &[(&str, &str)]) -> ManifestSet {
    let tree = tree_of(files.iter().copied());
    let selected = files.iter().copied().filter(|(p, _)| {
        p.starts_with("services/") || !files.iter().any(|(p, _)| p.starts_with("services/"))
    });
    load_tree(selected, &tree)
}

fn keys(names: &[&str]) -> BTreeSet<ServiceKey> {
    names
        .iter()
        .map(|n| ServiceKey {
            cluster: "c".into(),
            name: (*n).into(),
        })
        .collect()
}

fn key(name: &str) -> ServiceKey {
    keys(&[name]).into_iter().next().expect("one key")
}

fn targeted(names: &[&str]) -> ChangeSet {
    ChangeSet::Targeted {
        services: keys(names),
    }
}

fn full(reason: FullReason) -> ChangeSet {
    ChangeSet::Full { reason }
}

#[test]
fn what_changed_decides_the_scope() {
    let a1 = svc("a", "nginx:1", 1, "");
    let a2 = svc("a", "nginx:2", 1, "");
    let a_count = svc("a", "nginx:1", 3, "");
    let b1 = svc("b", "nginx:1", 1, "");
    let a_mig = svc("a", "nginx:1", 1, MIGRATION);
    let a_mig2 = svc("a", "nginx:2", 1, MIGRATION);
    let a_mig_steps = svc(
        "a",
        "nginx:1",
        1,
        &MIGRATION.replace("[10, 100]", "[50, 100]"),
    );
    let a_dep = svc("a", "nginx:1", 1, "  dependsOn: [{service: b}]\n");
    let a_dep2 = svc("a", "nginx:2", 1, "  dependsOn: [{service: b}]\n");
    let b2 = svc("b", "nginx:2", 1, "");
    let broken = a1.replace("  desiredCount", "  desiredCountt");
    let both = format!("{a1}---\n{b1}");
    let both_a2 = format!("{a2}---\n{b1}");
    let y = svc("y", "nginx:1", 1, "");
    let y_a = format!("{y}---\n{a1}");
    let (d1, d2) = (svc("d", "x:1", 1, ""), svc("d", "x:2", 1, ""));
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<(&'a str, &'a str)>,
        ChangeSet,
    );
    let cases: Vec<Case> = vec![
        (
            "nothing",
            vec![("a.yaml", &a1)],
            vec![("a.yaml", &a1)],
            targeted(&[]),
        ),
        (
            "an image",
            vec![("a.yaml", &a1)],
            vec![("a.yaml", &a2)],
            targeted(&["a"]),
        ),
        (
            "a count",
            vec![("a.yaml", &a1), ("b.yaml", &b1)],
            vec![("a.yaml", &a_count), ("b.yaml", &b1)],
            targeted(&["a"]),
        ),
        (
            "an added service is created",
            vec![("a.yaml", &a1)],
            vec![("a.yaml", &a1), ("b.yaml", &b1)],
            targeted(&["b"]),
        ),
        (
            "a removed service needs the prune view",
            vec![("a.yaml", &a1), ("b.yaml", &b1)],
            vec![("a.yaml", &a1)],
            full(FullReason::ServiceRemoved(key("b"))),
        ),
        (
            "a document moved to a new file, the old one gone",
            vec![("a.yaml", &a1)],
            vec![("z.yaml", &a1)],
            full(FullReason::FileRemoved("a.yaml".into())),
        ),
        (
            "a document moved between files that stay: its source tag",
            vec![("x.yaml", &both), ("y.yaml", &y)],
            vec![("x.yaml", &b1), ("y.yaml", &y_a)],
            targeted(&["a"]),
        ),
        (
            "an edit in a file of several documents",
            vec![("x.yaml", &both)],
            vec![("x.yaml", &both_a2)],
            targeted(&["a"]),
        ),
        (
            "a migration added",
            vec![("a.yaml", &a1)],
            vec![("a.yaml", &a_mig)],
            full(FullReason::Migration(key("a"))),
        ),
        (
            "a migration removed",
            vec![("a.yaml", &a_mig)],
            vec![("a.yaml", &a1)],
            full(FullReason::Migration(key("a"))),
        ),
        (
            "a migration changed",
            vec![("a.yaml", &a_mig)],
            vec![("a.yaml", &a_mig_steps)],
            full(FullReason::Migration(key("a"))),
        ),
        (
            "a migrating service's image, migration unchanged",
            vec![("a.yaml", &a_mig)],
            vec![("a.yaml", &a_mig2)],
            targeted(&["a"]),
        ),
        (
            "a dependent changed",
            vec![("a.yaml", &a_dep), ("b.yaml", &b1)],
            vec![("a.yaml", &a_dep2), ("b.yaml", &b1)],
            full(FullReason::Dependency(key("a"))),
        ),
        (
            "a dependency changed",
            vec![("a.yaml", &a_dep), ("b.yaml", &b1)],
            vec![("a.yaml", &a_dep), ("b.yaml", &b2)],
            full(FullReason::Dependency(key("b"))),
        ),
        (
            "a dependency dropped",
            vec![("a.yaml", &a_dep), ("b.yaml", &b1)],
            vec![("a.yaml", &a1), ("b.yaml", &b1)],
            full(FullReason::Dependency(key("a"))),
        ),
        (
            "a service unrelated to a dependency",
            vec![("a.yaml", &a_dep), ("b.yaml", &b1), ("d.yaml", &d1)],
            vec![("a.yaml", &a_dep), ("b.yaml", &b1), ("d.yaml", &d2)],
            targeted(&["d"]),
        ),
        (
            "a manifest broke",
            vec![("a.yaml", &a1)],
            vec![("a.yaml", &broken)],
            full(FullReason::ManifestErrors),
        ),
        (
            "a manifest was fixed",
            vec![("a.yaml", &broken), ("b.yaml", &b1)],
            vec![("a.yaml", &a1), ("b.yaml", &b1)],
            full(FullReason::ManifestErrors),
        ),
    ];
    for (name, old, new, want) in cases {
        let (old, new) = (set(&old), set(&new));
        if !name.contains("manifest") {
            assert!(
                old.errors.is_empty() && new.errors.is_empty(),
                "{name}: {:?} {:?}",
                old.errors,
                new.errors
            );
        }
        assert_eq!(changes(&old, &new), want, "{name}");
    }
}

#[test]
fn a_change_through_an_overlay_reaches_the_service() {
    let overlay = r#"apiVersion: ecsync.io/v1alpha1
kind: Overlay
metadata:
  name: prod
spec:
  resources: [../../base]
  patches:
    - target: {kind: Service, name: a}
      patch:
        spec:
          desiredCount: 3
"#;
    let base = |image| svc("a", image, 1, "");
    let old = set(&[
        ("base/a.yaml", &base("nginx:1")),
        ("services/prod/overlay.yaml", overlay),
    ]);
    // Only the base file changes; the service is built from the overlay.
    let new = set(&[
        ("base/a.yaml", &base("nginx:2")),
        ("services/prod/overlay.yaml", overlay),
    ]);
    assert!(old.errors.is_empty(), "{:?}", old.errors);
    assert_eq!(changes(&old, &new), targeted(&["a"]));
    let patched = set(&[
        ("base/a.yaml", &base("nginx:1")),
        (
            "services/prod/overlay.yaml",
            &overlay.replace("desiredCount: 3", "desiredCount: 4"),
        ),
    ]);
    assert_eq!(changes(&old, &patched), targeted(&["a"]));
}

#[test]
fn a_service_a_schedule_runs_asks_for_a_full_pass() {
    let task = r#"apiVersion: ecsync.io/v1alpha1
kind: ScheduledTask
metadata:
  name: nightly
spec:
  cluster: c
  schedule: cron(0 3 * * ? *)
  roleArn: arn:aws:iam::123456789012:role/scheduler
  taskDefinitionFrom: {service: a}
  launchType: FARGATE
  networkConfiguration:
    awsvpcConfiguration: {subnets: [subnet-a], securityGroups: [sg-1]}
"#;
    let old = set(&[("a.yaml", &svc("a", "nginx:1", 1, "")), ("t.yaml", task)]);
    let new = set(&[("a.yaml", &svc("a", "nginx:2", 1, "")), ("t.yaml", task)]);
    assert!(old.errors.is_empty(), "{:?}", old.errors);
    assert_eq!(old.scheduled.len(), 1);
    assert_eq!(changes(&old, &new), full(FullReason::ScheduledTasks));
}

#[test]
fn a_wake_up_targets_what_changed_and_what_is_pending_unless_a_full_pass_is_due() {
    let v1 = set(&[
        ("a.yaml", &svc("a", "nginx:1", 1, "")),
        ("b.yaml", &svc("b", "nginx:1", 1, "")),
    ]);
    let v2 = set(&[
        ("a.yaml", &svc("a", "nginx:2", 1, "")),
        ("b.yaml", &svc("b", "nginx:1", 1, "")),
    ]);
    let v3 = set(&[("a.yaml", &svc("a", "nginx:2", 1, ""))]);
    let none = BTreeSet::new();
    let b = keys(&["b"]);
    let gone = keys(&["gone"]);
    let wake = |applied: Option<(&'static str, &ManifestSet)>,
                revision: &'static str,
                set: &ManifestSet,
                full_due: bool,
                follow_up: Option<&'static str>,
                pending: &BTreeSet<ServiceKey>| {
        decide(&Wake {
            applied,
            revision,
            set,
            full_due,
            follow_up,
            pending,
        })
    };
    let cases = [
        (
            "first pass",
            wake(None, "r2", &v2, false, None, &none),
            full(FullReason::FirstPass),
        ),
        (
            "the interval",
            wake(Some(("r1", &v1)), "r2", &v2, true, None, &none),
            full(FullReason::Interval),
        ),
        (
            "a follow-up",
            wake(Some(("r1", &v1)), "r2", &v2, false, Some("x"), &none),
            full(FullReason::FollowUp("x".into())),
        ),
        (
            "a push",
            wake(Some(("r1", &v1)), "r2", &v2, false, None, &none),
            targeted(&["a"]),
        ),
        (
            "a push while b rolls out",
            wake(Some(("r1", &v1)), "r2", &v2, false, None, &b),
            targeted(&["a", "b"]),
        ),
        (
            "the progress requeue",
            wake(Some(("r2", &v2)), "r2", &v2, false, None, &b),
            targeted(&["b"]),
        ),
        (
            "pending, but no longer declared",
            wake(Some(("r2", &v2)), "r2", &v2, false, None, &gone),
            full(FullReason::NothingTargeted),
        ),
        (
            "a wake-up with nothing to do",
            wake(Some(("r2", &v2)), "r2", &v2, false, None, &none),
            full(FullReason::NothingTargeted),
        ),
        (
            "a push that changes no service",
            wake(Some(("r2", &v2)), "r3", &v2, false, None, &none),
            targeted(&[]),
        ),
        (
            "a push that removes one",
            wake(Some(("r2", &v2)), "r3", &v3, false, None, &none),
            full(FullReason::ServiceRemoved(key("b"))),
        ),
    ];
    for (name, got, want) in cases {
        assert_eq!(got, want, "{name}");
    }
    // A pending service that takes part in dependsOn needs the other side's plan.
    let dep = set(&[
        (
            "a.yaml",
            &svc("a", "nginx:1", 1, "  dependsOn: [{service: b}]\n"),
        ),
        ("b.yaml", &svc("b", "nginx:1", 1, "")),
    ]);
    assert_eq!(
        wake(Some(("r1", &dep)), "r1", &dep, false, None, &b),
        full(FullReason::Dependency(key("b")))
    );
}
