//! Property tests of the pure core: normalisation is idempotent, a value never
//! differs from itself, and no input makes the manifest parser panic.

use std::collections::BTreeMap;

use ecsync::core::diff::{diff_values, to_clean_value};
use ecsync::core::ignore::IgnorePath;
use ecsync::core::manifest;
use ecsync::core::model::{
    AwsVpcConfiguration, ContainerDefinition, HealthCheck, KeyValuePair, NetworkConfiguration,
    PortMapping, Secret, ServiceSpec, TaskDefinition, tag_list,
};
use ecsync::core::normalize::normalize_service;
use ecsync::core::plan::plan_tags;
use ecsync::core::tags::encode_managed_tags;
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}"
}

fn container() -> impl Strategy<Value = ContainerDefinition> {
    (
        name(),
        "[a-z]{1,6}:[0-9]{1,2}",
        proptest::option::of(0..2048i32),
        proptest::option::of(any::<bool>()),
        proptest::collection::vec(
            (
                1..65535i32,
                proptest::option::of(0..65535i32),
                proptest::option::of(prop_oneof![
                    Just("tcp".to_string()),
                    Just("udp".to_string())
                ]),
            ),
            0..3,
        ),
        proptest::collection::btree_map(name(), proptest::option::of("[ -~]{0,8}"), 0..4),
        proptest::collection::btree_map(name(), "arn:[a-z]{1,5}", 0..2),
        proptest::option::of((
            proptest::collection::vec("[a-z]{1,4}", 1..3),
            proptest::option::of(1..60i32),
        )),
    )
        .prop_map(|(name, image, cpu, essential, ports, env, secrets, hc)| {
            ContainerDefinition {
                name: Some(name),
                image: Some(image),
                cpu,
                essential,
                port_mappings: Some(
                    ports
                        .into_iter()
                        .map(|(container_port, host_port, protocol)| PortMapping {
                            container_port: Some(container_port),
                            host_port,
                            protocol,
                            ..Default::default()
                        })
                        .collect(),
                ),
                environment: Some(
                    env.into_iter()
                        .map(|(name, value)| KeyValuePair {
                            name: Some(name),
                            value,
                        })
                        .rev()
                        .collect(),
                ),
                secrets: Some(
                    secrets
                        .into_iter()
                        .map(|(name, value_from)| Secret { name, value_from })
                        .collect(),
                ),
                health_check: hc.map(|(command, interval)| HealthCheck {
                    command,
                    interval,
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
}

fn service() -> impl Strategy<Value = ServiceSpec> {
    (
        proptest::collection::vec(container(), 1..4),
        prop_oneof![
            Just(None),
            Just(Some("awsvpc".to_string())),
            Just(Some("bridge".to_string()))
        ],
        prop_oneof![
            Just(None),
            Just(Some("256".to_string())),
            Just(Some("0.5 vCPU".to_string()))
        ],
        proptest::option::of(0..10i32),
        proptest::collection::vec("subnet-[0-9a-f]{4}", 1..4),
        proptest::collection::btree_map(name(), name(), 0..3),
        prop_oneof![
            Just(None),
            Just(Some("FARGATE".to_string())),
            Just(Some("EC2".to_string()))
        ],
    )
        .prop_map(
            |(containers, network_mode, cpu, desired_count, subnets, tags, launch_type)| {
                ServiceSpec {
                    cluster: "c".into(),
                    desired_count,
                    launch_type,
                    task_definition: TaskDefinition {
                        family: "f".into(),
                        network_mode,
                        cpu,
                        container_definitions: containers,
                        ..Default::default()
                    },
                    network_configuration: Some(NetworkConfiguration {
                        awsvpc_configuration: Some(AwsVpcConfiguration {
                            subnets,
                            security_groups: Some(vec!["sg-2".into(), "sg-1".into()]),
                            assign_public_ip: None,
                        }),
                    }),
                    tags: Some(tag_list(&tags.into_iter().collect::<BTreeMap<_, _>>())),
                    ..Default::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn normalise_is_idempotent(spec in service()) {
        let mut once = spec;
        normalize_service(&mut once);
        let mut twice = once.clone();
        normalize_service(&mut twice);
        prop_assert_eq!(&once, &twice);
    }

    #[test]
    fn a_value_never_differs_from_itself(spec in service()) {
        let mut spec = spec;
        normalize_service(&mut spec);
        let v = to_clean_value(&spec);
        prop_assert!(diff_values("", &v, &v).is_empty());
    }

    #[test]
    fn foreign_tags_and_ignored_paths_are_never_drift(
        spec in service(),
        foreign in proptest::collection::btree_map("[a-z]{1,6}", "[a-z0-9]{0,6}", 0..4),
        count in 0..50i32,
        image in "[a-z]{1,8}:[0-9]",
    ) {
        let mut spec = spec;
        normalize_service(&mut spec);
        let desired_tags = spec.tag_map();
        let mut live_tags = desired_tags.clone();
        for (k, v) in &foreign {
            live_tags.entry(format!("x-{k}")).or_insert_with(|| v.clone());
        }
        live_tags.extend(encode_managed_tags(&desired_tags.keys().cloned().collect()));
        let plan = plan_tags(&desired_tags, &live_tags);
        prop_assert!(plan.drift.is_empty(), "{:?}", plan.drift);
        prop_assert!(plan.set.is_empty() && plan.remove.is_empty());
        prop_assert_eq!(plan.foreign.len(), foreign.len());

        let mut live = spec.clone();
        live.desired_count = Some(count);
        for c in &mut live.task_definition.container_definitions {
            c.image = Some(image.clone());
        }
        let paths = [
            IgnorePath::parse("desiredCount").expect("a path"),
            IgnorePath::parse("taskDefinition.containerDefinitions[*].image").expect("a path"),
        ];
        let (d, l) = (to_clean_value(&spec), to_clean_value(&live));
        prop_assert!(diff_values("", &d, &l).iter().all(|f| paths.iter().any(|p| p.covers(&f.path))));
        let mut kept = d.clone();
        for p in &paths {
            p.keep_live(&mut kept, &l);
        }
        prop_assert!(diff_values("", &kept, &l).is_empty());
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in "[ -~\n\t]{0,400}") {
        let _ = manifest::load([("x.yaml", text.as_str())]);
    }

    #[test]
    fn parser_never_panics_on_yamlish_text(
        parts in proptest::collection::vec(prop_oneof![
            Just("apiVersion: ecsync.io/v1alpha1\n"), Just("kind: Service\n"), Just("metadata:\n"),
            Just("  name: web\n"), Just("spec:\n"), Just("  cluster: c\n"), Just("---\n"),
            Just("  - a\n"), Just("    [\n"), Just("&a [*a]\n"), Just("  taskDefinition: {}\n"),
            Just("'\n"), Just("{{{{\n"), Just("key: !!binary xx\n"), Just("... \n"),
        ], 0..30)
    ) {
        let text: String = parts.concat();
        let _ = manifest::load([("x.yaml", text.as_str())]);
    }
}

/// A billion-laughs alias bomb and deep nesting end in an error, quickly.
#[test]
fn hostile_documents_are_bounded() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("l{}", i - 1)
        };
        bomb.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let started = std::time::Instant::now();
    let set = manifest::load([("bomb.yaml", bomb.as_str())]);
    assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
    let deep = format!("{}1{}", "- ".repeat(5000), "");
    let set = manifest::load([("deep.yaml", deep.as_str())]);
    assert_eq!(set.errors.len(), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
