//! Real-world shapes (tests/fixtures/shapes, written from the ECS API
//! reference): each loads without a word, normalises to a fixed point, reads
//! back from its own YAML unchanged, and builds the SDK inputs whole.

use std::collections::BTreeMap;

use ecsync::adapters::aws::convert::{self, ServiceIdentity};
use ecsync::core::diff::to_clean_value;
use ecsync::core::manifest::{self, ManifestSet};
use ecsync::core::normalize::normalize_service;
use ecsync::core::plan::resolve_target_groups;

const SHAPES: &[&str] = &[
    "firelens-datadog",
    "efs",
    "appmesh-proxy",
    "service-connect",
    "gpu",
    "blue-green-hooks",
    "ec2-bridge-placement",
];

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/shapes/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn load(name: &str, text: &str) -> ManifestSet {
    manifest::load([(name, text)])
}

#[test]
fn every_shape_loads_normalises_and_round_trips() {
    for name in SHAPES {
        let text = fixture(name);
        let set = load(name, &text);
        let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert!(set.warnings.is_empty(), "{name}: {:?}", set.warnings);
        let d = &set.services[0];

        let mut again = d.spec.clone();
        normalize_service(&mut again);
        assert_eq!(again, d.spec, "{name}: normalising is not idempotent");

        // What `render` and `import` write reads back as the same service.
        let doc = serde_json::json!({
            "apiVersion": "ecsync.io/v1alpha1",
            "kind": "Service",
            "metadata": {"name": d.key.name},
            "spec": to_clean_value(&d.spec),
        });
        let yaml = serde_saphyr::to_string(&doc).expect("yaml");
        let back = load(name, &yaml);
        assert!(back.errors.is_empty(), "{name}: {:?}\n{yaml}", back.errors);
        assert_eq!(back.services[0].spec, d.spec, "{name}\n{yaml}");
        assert_eq!(
            back.services[0].task_definition_hash, d.task_definition_hash,
            "{name}"
        );
    }
}

#[test]
fn every_shape_builds_its_sdk_inputs_whole() {
    let target_groups = BTreeMap::from([(
        "legacy-web-ecs".to_string(),
        "arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:targetgroup/legacy-web-ecs/0123456789abcdef".to_string(),
    )]);
    for name in SHAPES {
        let set = load(name, &fixture(name));
        let d = &set.services[0];
        let spec = resolve_target_groups(&d.spec, &target_groups).expect("resolves");
        convert::register_task_definition(&spec.task_definition, &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let id = ServiceIdentity {
            cluster: &d.key.cluster,
            name: &d.key.name,
            task_definition: "arn:aws:ecs:ap-northeast-1:123456789012:task-definition/x:1",
        };
        convert::create_service(&spec, &id, spec.desired_count, &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_migration_under_a_native_traffic_shifting_strategy_is_refused_with_the_reason() {
    let text = fixture("blue-green-hooks").replace(
        "  taskDefinition:\n",
        "  migration:\n    listener: arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:listener/app/store/0123456789abcdef/0123456789abcdef\n    from: {targetGroup: store-ec2, instances: {tags: {app: store}}}\n    steps: [50, 100]\n    stepInterval: 5m\n  taskDefinition:\n",
    );
    let set = load("bg.yaml", &text);
    let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("bg.yaml:")
            && errors[0].contains("spec.migration")
            && errors[0].contains("BLUE_GREEN")
            && errors[0].contains("fight"),
        "{errors:?}"
    );
}

#[test]
fn a_value_the_model_rejects_fails_at_its_position_naming_what_it_allows() {
    let text = fixture("gpu").replace("type: GPU", "type: TPU");
    let set = load("gpu.yaml", &text);
    let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    let line = text
        .lines()
        .position(|l| l.contains("type: TPU"))
        .expect("the typo")
        + 1;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("gpu.yaml:{line}:"))
            && errors[0].contains("\"TPU\" is not one of GPU, InferenceAccelerator"),
        "{errors:?}"
    );
}
