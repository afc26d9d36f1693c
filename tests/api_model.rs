//! Walks the AWS model itself (botocore's ECS `service-2.json`, pinned in
//! scripts/test.sh and read from the installed package) and proves, member by
//! member, that every input member of RegisterTaskDefinition, CreateService
//! and UpdateService that the pinned aws-sdk-ecs knows is parsed from a
//! manifest, read back by the observer, compared by the diff and sent to AWS.
//! Members botocore knows and the SDK does not yet are printed as a note.
//!
//! The fixtures are generated from the model: one value that sets every member.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use aws_sdk_ecs::operation::create_service::CreateServiceInput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput;
use aws_sdk_ecs::types as ecs;
use aws_smithy_json::codec::{JsonCodec, JsonCodecSettings};
use aws_smithy_schema::codec::Codec;
use aws_smithy_schema::serde::{SerdeError, ShapeDeserializer};
use ecsync::adapters::aws::convert::{self, InputError, ServiceIdentity, api_json};
use ecsync::core::diff::{diff_values, lost_members, to_clean_value, to_comparable};
use ecsync::core::model::{
    CREATE_ONLY_MEMBERS, NOT_DESCRIBED_MEMBERS, SERVICE_SPEC_MEMBERS, ServiceSpec, TaskDefinition,
    UpdateMember,
};
use ecsync::core::normalize::{normalize_service, normalize_task_definition};
use ecsync::core::plan::{cleared, is_immutable};
use serde_json::{Map, Value, json};

const INSTALL: &str = "needs python3 with botocore: run scripts/test.sh, which installs the pinned version (or: pip install botocore==<BOTOCORE_VERSION in scripts/test.sh>)";

fn python(code: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", code])
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}; {INSTALL}"));
    assert!(
        out.status.success(),
        "python3 failed: {}; {INSTALL}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Model {
    shapes: Map<String, Value>,
}

impl Model {
    fn load() -> Model {
        let text = python(
            "import json, botocore.loaders as l; print(json.dumps(l.Loader().load_service_model('ecs', 'service-2')))",
        );
        let model: Value = serde_json::from_str(&text).expect("botocore's model is JSON");
        Model {
            shapes: model["shapes"].as_object().cloned().unwrap_or_default(),
        }
    }

    fn shape(&self, name: &str) -> &Value {
        &self.shapes[name]
    }

    fn members(&self, name: &str) -> Vec<(String, String)> {
        self.shape(name)["members"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v["shape"].as_str().unwrap_or_default().into()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A value of `name` that sets every member, at every depth.
    fn sample(&self, name: &str) -> Value {
        let s = self.shape(name);
        match s["type"].as_str().unwrap_or_default() {
            "structure" => Value::Object(
                self.members(name)
                    .into_iter()
                    .map(|(m, target)| (m, self.sample(&target)))
                    .collect(),
            ),
            "list" => json!([self.sample(s["member"]["shape"].as_str().unwrap_or_default())]),
            "map" => json!({"k1": self.sample(s["value"]["shape"].as_str().unwrap_or_default())}),
            "string" => match s["enum"].as_array() {
                Some(values) => values[0].clone(),
                None => {
                    let min = s["min"].as_u64().unwrap_or(1).max(1) as usize;
                    Value::String("x".repeat(min))
                }
            },
            "integer" | "long" => json!(s["min"].as_i64().unwrap_or(1).max(1)),
            "boolean" => json!(true),
            "double" | "float" => json!(1.5),
            other => panic!("{name}: no sample for a {other}"),
        }
    }

    /// Every scalar in `v` (a value of `name`) with a changed value, as
    /// (path, changed copy). Single-valued enums cannot change and are skipped.
    fn mutations(&self, name: &str, root: &Value) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        self.walk(name, root, String::new(), root, &mut out);
        out
    }

    fn walk(
        &self,
        name: &str,
        v: &Value,
        ptr: String,
        root: &Value,
        out: &mut Vec<(String, Value)>,
    ) {
        let s = self.shape(name);
        match s["type"].as_str().unwrap_or_default() {
            "structure" => {
                for (m, target) in self.members(name) {
                    if let Some(child) = v.get(&m) {
                        self.walk(&target, child, format!("{ptr}/{m}"), root, out);
                    }
                }
            }
            "list" => {
                for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                    let target = s["member"]["shape"].as_str().unwrap_or_default();
                    self.walk(target, item, format!("{ptr}/{i}"), root, out);
                }
            }
            "map" => {
                for (k, item) in v.as_object().into_iter().flatten() {
                    let target = s["value"]["shape"].as_str().unwrap_or_default();
                    self.walk(target, item, format!("{ptr}/{k}"), root, out);
                }
            }
            kind => {
                let changed = match (kind, s["enum"].as_array()) {
                    ("string", Some(values)) if values.len() > 1 => values[1].clone(),
                    ("string", Some(_)) => return,
                    ("string", None) => {
                        Value::String(format!("{}z", v.as_str().unwrap_or_default()))
                    }
                    ("boolean", _) => Value::Bool(!v.as_bool().unwrap_or_default()),
                    ("double" | "float", _) => json!(v.as_f64().unwrap_or_default() + 1.0),
                    _ => {
                        let n = v.as_i64().unwrap_or_default();
                        let max = s["max"].as_i64().unwrap_or(i64::MAX);
                        json!(if n < max { n + 1 } else { n - 1 })
                    }
                };
                let mut copy = root.clone();
                if let Some(slot) = copy.pointer_mut(&ptr) {
                    *slot = changed;
                    out.push((ptr, copy));
                }
            }
        }
    }
}

fn codec() -> JsonCodec {
    JsonCodec::new(JsonCodecSettings::builder().use_json_name(false).build())
}

/// `json` read by the SDK and written back: exactly what the SDK knows of it.
fn through_sdk<T: aws_smithy_schema::serde::SerializableStruct>(
    json: &Value,
    read: fn(&mut dyn ShapeDeserializer) -> Result<T, SerdeError>,
) -> (T, Value) {
    let bytes = serde_json::to_vec(json).expect("JSON");
    let codec = codec();
    let mut de = codec.create_deserializer(&bytes);
    let value = read(&mut de).expect("the SDK reads a value the model allows");
    let back = api_json("sdk", &value).expect("the SDK writes what it read");
    (value, back)
}

fn note_unknown_to_sdk(what: &str, lost: &[String]) {
    if !lost.is_empty() {
        eprintln!(
            "note: botocore knows these {what} members that the pinned aws-sdk-ecs does not yet (refused, never dropped, until the SDK is upgraded): {}",
            lost.join(", ")
        );
    }
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn the_generated_types_match_the_installed_model() {
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/gen-ecs-model.py"
        ))
        .arg("--check")
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}; {INSTALL}"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_task_definition_member_is_parsed_sent_observed_and_diffed() {
    let model = Model::load();
    let full = model.sample("RegisterTaskDefinitionRequest");

    // Parse: every member of the model is accepted and kept.
    let parsed: TaskDefinition =
        serde_json::from_value(full.clone()).expect("a definition setting every member parses");
    let not_parsed = lost_members("", &full, &to_clean_value(&parsed));
    assert!(not_parsed.is_empty(), "not parsed: {not_parsed:?}");

    // What the pinned SDK knows of it; the rest is a note, and refused.
    let (_, known) = through_sdk(&full, RegisterTaskDefinitionInput::deserialize);
    let unknown = lost_members("", &full, &known);
    note_unknown_to_sdk("RegisterTaskDefinition", &unknown);
    match convert::register_task_definition(&parsed, &BTreeMap::new()) {
        Ok(_) => assert!(unknown.is_empty()),
        Err(InputError::NotSent { members, .. }) => assert_eq!(
            members.iter().collect::<BTreeSet<_>>(),
            unknown.iter().collect::<BTreeSet<_>>(),
            "refused members other than those the SDK lacks"
        ),
        Err(e) => panic!("{e}"),
    }

    // Send: every member the SDK knows reaches the wire.
    let td: TaskDefinition = serde_json::from_value(known.clone()).expect("parses");
    let input = convert::register_task_definition(&td, &BTreeMap::new())
        .expect("sendable")
        .build()
        .expect("builds");
    let wire = api_json("RegisterTaskDefinitionInput", &input).expect("encodes");
    let not_sent = lost_members("", &known, &wire);
    assert!(not_sent.is_empty(), "not sent: {not_sent:?}");

    // Observe: a live definition with every member reads back whole.
    let mut described = object(&known);
    let tags = described.remove("tags");
    let (live, _) = through_sdk(&Value::Object(described), ecs::TaskDefinition::deserialize);
    let live_tags: Vec<ecs::Tag> = tags
        .iter()
        .flat_map(|t| t.as_array().cloned().unwrap_or_default())
        .map(|t| {
            ecs::Tag::builder()
                .key(t["key"].as_str().unwrap_or_default())
                .value(t["value"].as_str().unwrap_or_default())
                .build()
        })
        .collect();
    let (observed, unmanaged) = convert::read_task_definition(&live, &live_tags);
    assert!(unmanaged.is_empty(), "not kept on observe: {unmanaged:?}");
    let not_observed = lost_members("", &known, &to_clean_value(&observed));
    assert!(not_observed.is_empty(), "not observed: {not_observed:?}");

    // Diff: a change to any member is drift.
    let normalized = |v: &Value| {
        let mut td: TaskDefinition = serde_json::from_value(v.clone()).expect("parses");
        normalize_task_definition(&mut td);
        to_comparable(&td)
    };
    let base = normalized(&known);
    let mut unseen = Vec::new();
    let mutations = model.mutations("RegisterTaskDefinitionRequest", &known);
    assert!(mutations.len() > 100, "only {} leaves", mutations.len());
    for (path, changed) in mutations {
        if diff_values("taskDefinition", &base, &normalized(&changed)).is_empty() {
            unseen.push(path);
        }
    }
    assert!(
        unseen.is_empty(),
        "changes the diff does not see: {unseen:?}"
    );
}

/// A service spec from API members (and ecsync's own around them).
fn service_spec(members: &Value) -> ServiceSpec {
    let mut json = object(members);
    json.insert("cluster".into(), "c".into());
    serde_json::from_value(Value::Object(json)).expect("a service setting every member parses")
}

fn id() -> ServiceIdentity<'static> {
    ServiceIdentity {
        cluster: "c",
        name: "web",
        task_definition: "arn:aws:ecs:us-east-1:1:task-definition/web:1",
    }
}

#[test]
fn every_service_member_is_parsed_sent_observed_and_diffed() {
    let model = Model::load();
    let mut full = object(&model.sample("CreateServiceRequest"));
    full.retain(|k, _| SERVICE_SPEC_MEMBERS.contains(&k.as_str()));
    let full = Value::Object(full);

    let parsed = service_spec(&full);
    let mut kept = object(&to_clean_value(&parsed));
    kept.remove("cluster");
    kept.remove("taskDefinition");
    let not_parsed = lost_members("", &full, &Value::Object(kept));
    assert!(not_parsed.is_empty(), "not parsed: {not_parsed:?}");

    let mut with_id = object(&full);
    with_id.insert("cluster".into(), "c".into());
    with_id.insert("serviceName".into(), "web".into());
    with_id.insert("taskDefinition".into(), id().task_definition.into());
    let with_id = Value::Object(with_id);
    let (_, known_with_id) = through_sdk(&with_id, CreateServiceInput::deserialize);
    let unknown = lost_members("", &with_id, &known_with_id);
    note_unknown_to_sdk("CreateService", &unknown);
    let mut known = object(&known_with_id);
    for k in ["cluster", "serviceName", "taskDefinition"] {
        known.remove(k);
    }
    let known = Value::Object(known);
    let spec = service_spec(&known);

    // Send on create: every member the SDK knows reaches the wire.
    let tags = ecsync::core::model::tag_map(spec.tags.as_deref().unwrap_or_default());
    let input = convert::create_service(&spec, &id(), spec.desired_count, &tags)
        .expect("sendable")
        .build()
        .expect("builds");
    let wire = api_json("CreateServiceInput", &input).expect("encodes");
    let not_sent = lost_members("", &known_with_id, &wire);
    assert!(not_sent.is_empty(), "not sent on create: {not_sent:?}");

    // Send on update: each member UpdateService takes, alone; the others
    // are the replacement path's (or TagResource's).
    let mut not_updated = Vec::new();
    for member in SERVICE_SPEC_MEMBERS {
        let Some(value) = known.get(*member) else {
            continue;
        };
        match UpdateMember::from_api_name(member) {
            Some(m) => {
                let input = convert::update_service(&spec, &id(), &BTreeSet::from([m]), cleared)
                    .expect("sendable")
                    .build()
                    .expect("builds");
                let wire = api_json("UpdateServiceInput", &input).expect("encodes");
                let lost = lost_members("", &json!({ *member: value }), &wire);
                not_updated.extend(lost);
            }
            None => assert!(
                *member == "tags" || is_immutable(member),
                "{member}: neither updated nor replaced"
            ),
        }
    }
    assert!(
        not_updated.is_empty(),
        "not sent on update: {not_updated:?}"
    );
    for member in CREATE_ONLY_MEMBERS {
        assert!(*member == "tags" || is_immutable(member));
    }

    // Observe: a described service carrying every member reads back whole,
    // from wherever DescribeServices reports it.
    let service_members: BTreeSet<String> = model
        .members("Service")
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    let deployment_members: BTreeSet<String> = model
        .members("Deployment")
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    let mut described = Map::new();
    let mut primary = Map::from_iter([("status".to_string(), json!("PRIMARY"))]);
    let mut comparable_members = object(&known);
    for (member, value) in object(&known) {
        if member == "role" {
            described.insert("roleArn".into(), value);
        } else if service_members.contains(&member) {
            described.insert(member, value);
        } else if deployment_members.contains(&member) {
            primary.insert(member, value);
        } else {
            assert!(
                NOT_DESCRIBED_MEMBERS.contains(&member.as_str()),
                "{member}: described nowhere, and not listed as such"
            );
            comparable_members.remove(&member);
        }
    }
    described.insert("deployments".into(), json!([primary]));
    let (live, _) = through_sdk(&Value::Object(described), ecs::Service::deserialize);
    let observed = convert::service_spec_from_sdk(&live, "c").expect("reads");
    let not_observed = lost_members(
        "",
        &Value::Object(comparable_members),
        &to_clean_value(&observed),
    );
    assert!(not_observed.is_empty(), "not observed: {not_observed:?}");

    // Diff: a change to any member that is described is drift.
    let normalized = |v: &Value| {
        let mut spec = service_spec(v);
        normalize_service(&mut spec);
        to_comparable(&spec)
    };
    let base = normalized(&known);
    let mut unseen = Vec::new();
    for (path, changed) in model.mutations("CreateServiceRequest", &known) {
        let top = path.split('/').nth(1).unwrap_or_default();
        if NOT_DESCRIBED_MEMBERS.contains(&top) {
            continue;
        }
        if diff_values("", &base, &normalized(&changed)).is_empty() {
            unseen.push(path);
        }
    }
    assert!(
        unseen.is_empty(),
        "changes the diff does not see: {unseen:?}"
    );
}
