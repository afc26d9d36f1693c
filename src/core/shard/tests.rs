use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::core::manifest::load;

/// Pinned: every replica of every ecsync version must agree on these, or two
/// shards would act on one cluster (or none would). Computed independently:
/// `int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % n`.
#[test]
fn the_assignment_is_pinned() {
    let golden: [(&str, [u32; 5]); 12] = [
        ("", [0, 1, 0, 1, 4]),
        ("default", [1, 1, 1, 4, 13]),
        ("prod", [0, 1, 2, 5, 14]),
        ("staging", [0, 1, 0, 0, 4]),
        ("dev", [1, 1, 3, 4, 15]),
        ("batch", [1, 0, 1, 5, 5]),
        ("c0", [1, 0, 3, 6, 11]),
        ("c1", [1, 2, 3, 3, 11]),
        ("c4", [0, 1, 2, 2, 2]),
        ("c7", [0, 0, 2, 4, 10]),
        ("prod-ap-northeast-1", [1, 1, 3, 1, 11]),
        ("日本", [1, 0, 3, 2, 11]),
    ];
    for (cluster, expected) in golden {
        let got: Vec<u32> = [2, 3, 4, 7, 16]
            .into_iter()
            .map(|n| shard_of(cluster, n))
            .collect();
        assert_eq!(got, expected, "cluster {cluster:?}");
    }
}

#[test]
fn one_shard_owns_everything() {
    let all = Shard::new(0, 1).unwrap();
    for c in ["", "prod", "dev", "日本"] {
        assert!(all.owns(c));
        assert_eq!(all.other_owner(c), None);
    }
}

#[test]
fn index_and_count_are_checked() {
    assert_eq!(Shard::new(0, 0), Err(ShardError::ZeroCount));
    assert_eq!(
        Shard::new(2, 2),
        Err(ShardError::IndexOutOfRange { index: 2, count: 2 })
    );
    assert_eq!(
        Shard::new(2, 2).unwrap_err().to_string(),
        "--shard-index 2 is out of range: it must be below --shard-count 2"
    );
    assert!(Shard::new(1, 2).is_ok());
}

proptest! {
    /// Exactly one shard of N owns any cluster name.
    #[test]
    fn exactly_one_owner(cluster in ".{0,40}", count in 1u32..64) {
        let owners = (0..count)
            .filter(|&i| Shard::new(i, count).unwrap().owns(&cluster))
            .count();
        prop_assert_eq!(owners, 1);
        prop_assert!(shard_of(&cluster, count) < count);
    }
}

fn service(name: &str, cluster: &str) -> String {
    format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: {name}
spec:
  cluster: {cluster}
  taskDefinition:
    family: {name}
    containerDefinitions:
      - name: app
        image: app:1
        memory: 256
"#
    )
}

fn scheduled(name: &str, cluster: &str) -> String {
    format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: ScheduledTask
metadata:
  name: {name}
spec:
  cluster: {cluster}
  schedule: rate(1 hour)
  roleArn: arn:aws:iam::123456789012:role/scheduler
  taskDefinition:
    family: {name}
    containerDefinitions:
      - name: app
        image: app:1
        memory: 256
"#
    )
}

#[test]
fn a_shard_scopes_services_held_services_and_schedules_by_cluster() {
    // prod and staging are shard 0 of 2; dev and batch are shard 1.
    let files = [
        ("web.yaml".to_string(), service("web", "prod")),
        ("api.yaml".to_string(), service("api", "dev")),
        ("jobs.yaml".to_string(), service("jobs", "batch")),
        ("report.yaml".to_string(), scheduled("report", "staging")),
        ("sweep.yaml".to_string(), scheduled("sweep", "dev")),
        // Broken: its file is held, and prune must stay blocked everywhere.
        (
            "broken.yaml".to_string(),
            service("old", "dev").replace("memory: 256", "memory: [oops]"),
        ),
    ];
    let set = load(files.iter().map(|(p, c)| (p.as_str(), c.as_str())));
    assert_eq!(set.services.len(), 3);
    assert!(!set.errors.is_empty());

    let zero = Shard::new(0, 2).unwrap().scope(&set);
    let names =
        |s: &ManifestSet| -> Vec<String> { s.services.iter().map(|d| d.key.to_string()).collect() };
    assert_eq!(names(&zero), ["prod/web"]);
    assert_eq!(zero.scheduled.len(), 1);
    assert_eq!(zero.scheduled[0].name, "report");
    assert!(zero.held.is_empty());
    assert_eq!(zero.errors, set.errors);
    assert_eq!(zero.broken_files, set.broken_files);

    let one = Shard::new(1, 2).unwrap().scope(&set);
    let mut n = names(&one);
    n.sort();
    assert_eq!(n, ["batch/jobs", "dev/api"]);
    assert_eq!(one.scheduled.len(), 1);
    assert_eq!(one.scheduled[0].name, "sweep");
    assert_eq!(one.held, set.held);
}

#[test]
fn a_schedule_belongs_to_the_shard_of_its_declared_cluster_then_its_live_one() {
    let zero = Shard::new(0, 2).unwrap();
    let one = Shard::new(1, 2).unwrap();
    // Declared in dev (shard 1), still running in prod (shard 0): shard 1
    // moves it; shard 0 neither updates nor prunes it.
    let declared = BTreeMap::from([("moved", "dev")]);
    assert!(one.owns_schedule("moved", "prod", &declared));
    assert!(!zero.owns_schedule("moved", "prod", &declared));
    // Undeclared: the shard of the cluster it runs in decides (prunes it).
    assert!(zero.owns_schedule("gone", "prod", &declared));
    assert!(!one.owns_schedule("gone", "prod", &declared));
}

#[test]
fn a_dependency_in_another_shard_is_warned_about_where_it_is_written() {
    // web (prod, shard 0) depends on api (dev, shard 1) and on db (staging, shard 0).
    let web = service("web", "prod")
        + "  dependsOn:\n    - service: api\n      cluster: dev\n    - service: db\n      cluster: staging\n";
    let (api, db) = (service("api", "dev"), service("db", "staging"));
    let set = load([
        ("web.yaml", web.as_str()),
        ("api.yaml", api.as_str()),
        ("db.yaml", db.as_str()),
    ]);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let zero = Shard::new(0, 2).unwrap();
    let warnings: Vec<String> = zero
        .dependency_warnings(&set)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        warnings,
        [
            "web.yaml:14:16: spec.dependsOn[0].service: dev/api is in a cluster shard 1 owns; \
          shard 0 cannot see it roll out, so prod/web is held"
        ]
    );
    // Shard 1 owns api, which depends on nothing.
    assert!(
        Shard::new(1, 2)
            .unwrap()
            .dependency_warnings(&set)
            .is_empty()
    );
}
