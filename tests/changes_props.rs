//! Property: the change set never misses a change. For generated pairs of manifest
//! repositories (services moved between files, edited, added, removed, given
//! migrations, dependencies and overlays), every service whose built
//! `DesiredService` differs between the two sets is in the targeted set, or the
//! answer is a full pass; and a targeted answer never hides a removed service.

use std::collections::{BTreeMap, BTreeSet};

use ecsync::core::changes::{ChangeSet, changes};
use ecsync::core::manifest::overlay::tree_of;
use ecsync::core::manifest::{DesiredService, ManifestSet, load_tree};
use ecsync::core::model::ServiceKey;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Decl {
    file: usize,
    image: u8,
    count: u8,
    migration: Option<u8>,
    depends_on: Option<usize>,
    /// Declared in `base/` and reached through an overlay patching its count.
    overlaid: Option<u8>,
}

fn decl() -> impl Strategy<Value = Decl> {
    (
        0..3usize,
        0..3u8,
        1..3u8,
        prop::option::weighted(0.2, 0..2u8),
        prop::option::weighted(0.15, 0..5usize),
        prop::option::weighted(0.2, 1..3u8),
    )
        .prop_map(
            |(file, image, count, migration, depends_on, overlaid)| Decl {
                file,
                image,
                count,
                migration,
                depends_on,
                overlaid,
            },
        )
}

/// Up to five services `s0`..`s4`, each present or not.
fn repo() -> impl Strategy<Value = BTreeMap<usize, Decl>> {
    prop::collection::btree_map(0..5usize, decl(), 1..5)
}

fn service(i: usize, d: &Decl) -> String {
    let mut text = format!(
        "apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: s{i}
spec:
  cluster: c
  desiredCount: {count}
  launchType: FARGATE
  taskDefinition:
    family: s{i}
    cpu: \"256\"
    memory: \"512\"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: app
        image: app:{image}
        portMappings: [{{containerPort: 80}}]
  networkConfiguration:
    awsvpcConfiguration: {{subnets: [subnet-a], securityGroups: [sg-1]}}
",
        count = d.count,
        image = d.image
    );
    if let Some(m) = d.migration {
        text.push_str(&format!(
            "  loadBalancers:
    - {{targetGroup: s{i}-ecs, containerName: app, containerPort: 80}}
  migration:
    listener: arn:aws:elasticloadbalancing:us-east-1:1:listener/app/a/1/{i}
    from:
      targetGroup: s{i}-ec2
      instances: {{tags: {{app: s{i}}}}}
    steps: [{}, 100]
    stepInterval: 5m
",
            10 + m * 10
        ));
    }
    if let Some(dep) = d.depends_on.filter(|dep| *dep != i) {
        text.push_str(&format!("  dependsOn: [{{service: s{dep}}}]\n"));
    }
    text
}

fn files(repo: &BTreeMap<usize, Decl>) -> Vec<(String, String)> {
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, d) in repo {
        match d.overlaid {
            Some(count) => {
                files
                    .entry(format!("base/s{i}/s{i}.yaml"))
                    .or_default()
                    .push(service(*i, d));
                let overlay = format!(
                    "apiVersion: ecsync.io/v1alpha1
kind: Overlay
metadata:
  name: o{i}
spec:
  resources: [../../base/s{i}]
  patches:
    - target: {{kind: Service, name: s{i}}}
      patch:
        spec:
          desiredCount: {}
",
                    count + 2
                );
                files
                    .entry(format!("services/o{i}/overlay.yaml"))
                    .or_default()
                    .push(overlay);
            }
            None => files
                .entry(format!("services/f{}.yaml", d.file))
                .or_default()
                .push(service(*i, d)),
        }
    }
    files
        .into_iter()
        .map(|(path, docs)| (path, docs.join("---\n")))
        .collect()
}

/// As the daemon loads a revision: the files under `services/`, with the whole
/// tree for the overlays to build on.
fn built(repo: &BTreeMap<usize, Decl>) -> ManifestSet {
    let files = files(repo);
    let all = || files.iter().map(|(p, t)| (p.as_str(), t.as_str()));
    let tree = tree_of(all());
    load_tree(all().filter(|(p, _)| p.starts_with("services/")), &tree)
}

fn by_key(set: &ManifestSet) -> BTreeMap<&ServiceKey, &DesiredService> {
    set.services.iter().map(|d| (&d.key, &**d)).collect()
}

/// `old` and a neighbour of it: most services kept or edited in one field, a few
/// added or removed, so that both answers (targeted and full) come up often.
fn pair() -> impl Strategy<Value = (BTreeMap<usize, Decl>, BTreeMap<usize, Decl>)> {
    (repo(), prop::collection::vec((0..12u8, decl()), 5)).prop_map(|(old, edits)| {
        let mut new = old.clone();
        for (i, (what, fresh)) in edits.into_iter().enumerate() {
            let several = new.len() > 1;
            match (new.get_mut(&i), what) {
                (None, 0..=2) => {
                    new.insert(i, fresh);
                }
                (None, _) => {}
                (Some(_), 0) if several => {
                    new.remove(&i);
                }
                (Some(d), 1) => d.image = fresh.image,
                (Some(d), 2) => d.count = fresh.count,
                (Some(d), 3) => d.file = fresh.file,
                (Some(d), 4) => d.migration = fresh.migration,
                (Some(d), 5) => d.depends_on = fresh.depends_on,
                (Some(d), 6) => d.overlaid = fresh.overlaid,
                (Some(_), _) => {}
            }
        }
        (old, new)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_changed_service_is_targeted_or_the_pass_is_full((old, new) in pair()) {
        let (a, b) = (built(&old), built(&new));
        let (before, after) = (by_key(&a), by_key(&b));
        let keys: BTreeSet<&ServiceKey> = before.keys().chain(after.keys()).copied().collect();
        let differ: BTreeSet<ServiceKey> = keys
            .into_iter()
            .filter(|k| before.get(k) != after.get(k))
            .cloned()
            .collect();
        match changes(&a, &b) {
            ChangeSet::Full { .. } => {}
            ChangeSet::Targeted { services } => {
                prop_assert!(
                    differ.is_subset(&services),
                    "missed {:?}", differ.difference(&services).collect::<Vec<_>>()
                );
                // Nothing targeted that did not change, and nothing removed.
                prop_assert_eq!(&services, &differ);
                prop_assert!(before.keys().all(|k| after.contains_key(k)));
                prop_assert_eq!(&a.errors, &b.errors);
            }
        }
    }

    #[test]
    fn the_same_repository_changes_nothing(repo in repo()) {
        let set = built(&repo);
        prop_assert_eq!(
            changes(&set, &set),
            ChangeSet::Targeted { services: BTreeSet::new() }
        );
    }
}

/// The property above says nothing if every answer is "full": the generator must
/// give targeted answers with changed services often.
#[test]
fn the_generated_pairs_often_call_for_a_targeted_pass() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = pair();
    let mut targeted = 0;
    for _ in 0..200 {
        let (old, new) = strategy
            .new_tree(&mut runner)
            .expect("a generated pair")
            .current();
        if matches!(
            changes(&built(&old), &built(&new)),
            ChangeSet::Targeted { services } if !services.is_empty()
        ) {
            targeted += 1;
        }
    }
    assert!(targeted >= 40, "{targeted} of 200 targeted");
}
