//! `kind: ScheduledTask` documents: typed, checked and resolved once every
//! Service of the set is known (`taskDefinitionFrom` names one).
//!
//! Errors carry `file:line:col` exactly as for a Service, in the base or
//! overlay that wrote the value; a document that fails holds only the
//! schedule it declared.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use super::validate::{is_ecs_name, validate as validate_service};
use super::{
    ANNOTATION_SYNC, DesiredService, Document, FieldPath, Locator, ManifestError, ManifestSet, Seg,
    Unit, locate, options, overlay, plain_message, task_definition_hash,
};
use crate::core::api::Problems;
use crate::core::model::{API_VERSION, KIND_SERVICE, Manifest, ServiceSpec, TaskDefinition};
use crate::core::scheduled::{
    DesiredScheduledTask, KIND_SCHEDULED_TASK, ScheduledTaskManifest, expression, normalize,
};
use crate::core::state::Mode;

/// A unit that declares a ScheduledTask.
pub(super) enum Scheduled<'u> {
    Text {
        file: &'u String,
        doc: &'u Document,
    },
    Built {
        file: &'u String,
        built: &'u overlay::Built,
    },
}

/// The unit as a ScheduledTask, if it declares one (the substring test spares
/// every other document a second parse). Kept parses are Services only.
pub(super) fn scheduled(unit: &Unit) -> Option<Scheduled<'_>> {
    match unit {
        Unit::Text { file, doc }
            if doc.text.contains(KIND_SCHEDULED_TASK)
                && super::kind_of(doc).as_deref() == Some(KIND_SCHEDULED_TASK) =>
        {
            Some(Scheduled::Text { file, doc })
        }
        Unit::Built { file, built }
            if built.value.get("kind").and_then(|k| k.as_str()) == Some(KIND_SCHEDULED_TASK) =>
        {
            Some(Scheduled::Built { file, built })
        }
        _ => None,
    }
}

/// Type, check and resolve every ScheduledTask unit into `set`.
pub(super) fn load(units: &[Scheduled], sources: &[overlay::SourceDoc], set: &mut ManifestSet) {
    let mut first_seen: BTreeMap<String, String> = BTreeMap::new();
    for unit in units {
        let (file, first_line) = match unit {
            Scheduled::Text { file, doc } => (*file, doc.first_line),
            Scheduled::Built { file, .. } => (*file, 1),
        };
        match load_one(unit, sources, set) {
            Ok(task) => {
                if let Some(other) = first_seen.get(&task.name) {
                    set.errors.push(ManifestError {
                        file: file.clone(),
                        line: first_line,
                        column: 1,
                        message: format!(
                            "scheduled task {} is declared twice: here and in {other}",
                            task.name
                        ),
                    });
                    set.broken_files.insert(file.clone());
                    set.held_scheduled.insert(task.name);
                } else {
                    first_seen.insert(task.name.clone(), file.clone());
                    set.scheduled.push(task);
                }
            }
            Err((name, errors)) => {
                set.broken_files.insert(file.clone());
                if let Some(name) = name {
                    set.held_scheduled.insert(name);
                }
                set.errors.extend(errors);
            }
        }
    }
    set.scheduled
        .retain(|t| !set.held_scheduled.contains(&t.name));
}

type Failure = (Option<String>, Vec<ManifestError>);

fn load_one(
    unit: &Scheduled,
    sources: &[overlay::SourceDoc],
    set: &ManifestSet,
) -> Result<DesiredScheduledTask, Failure> {
    match *unit {
        Scheduled::Text { file, doc } => {
            let locate_in_doc = |field: &FieldPath| {
                let (line, column) =
                    locate::locate(&doc.text, field).unwrap_or((doc.first_line, 1));
                (file.clone(), line + doc.first_line - 1, column)
            };
            let manifest = typed_text(file, doc)?;
            finish(file, manifest, &locate_in_doc, set)
        }
        Scheduled::Built { file, built } => {
            let locate_in_sources = |field: &FieldPath| match built.origins.lookup(&field.0) {
                Some((source, at)) => {
                    let s = &sources[source];
                    let (line, column) = s.locate(&at);
                    (s.file.clone(), line, column)
                }
                None => (file.clone(), 1, 1),
            };
            let manifest = typed_value(&built.value, &locate_in_sources)?;
            finish(file, manifest, &locate_in_sources, set)
        }
    }
}

fn loose_name(value: Option<serde_json::Value>) -> Option<String> {
    value?
        .pointer("/metadata/name")?
        .as_str()
        .map(str::to_string)
}

fn typed_text(file: &str, doc: &Document) -> Result<ScheduledTaskManifest, Failure> {
    serde_saphyr::from_str_with_options(&doc.text, options()).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() + doc.first_line - 1, l.column()))
            .unwrap_or((doc.first_line, 1));
        let loose = serde_saphyr::from_str_with_options(&doc.text, options()).ok();
        (
            loose_name(loose),
            vec![ManifestError {
                file: file.to_string(),
                line,
                column,
                message: plain_message(&e),
            }],
        )
    })
}

fn typed_value<T: DeserializeOwned>(
    value: &serde_json::Value,
    locate_in: &Locator<'_>,
) -> Result<T, Failure> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = FieldPath(
            e.path()
                .iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                    _ => None,
                })
                .collect(),
        );
        let (file, line, column) = locate_in(&field);
        (
            loose_name(Some(value.clone())),
            vec![ManifestError {
                file,
                line,
                column,
                message: format!("{field}: {}", e.inner()),
            }],
        )
    })
}

fn finish(
    path: &str,
    mut manifest: ScheduledTaskManifest,
    locate_in: &Locator<'_>,
    set: &ManifestSet,
) -> Result<DesiredScheduledTask, Failure> {
    if let Some(td) = manifest.spec.task_definition.take() {
        manifest.spec.task_definition = Some(td.unwrapped());
    }
    let (td, mut problems) = resolve_task_definition(&manifest, set);
    problems.extend(validate(&manifest, td.as_ref()));
    let name = manifest.metadata.name.clone();
    if !problems.is_empty() {
        let errors = problems
            .into_iter()
            .map(|(field, message)| {
                let (file, line, column) = locate_in(&field);
                ManifestError {
                    file,
                    line,
                    column,
                    message: format!("{field}: {message}"),
                }
            })
            .collect();
        return Err((Some(name), errors));
    }
    // No problems means a definition was found.
    let Some(mut task_definition) = td else {
        return Err((Some(name), Vec::new()));
    };
    crate::core::normalize::normalize_task_definition(&mut task_definition);
    let mut spec = manifest.spec;
    spec.task_definition = Some(task_definition.clone());
    normalize(&mut spec);
    let sync = if manifest
        .metadata
        .annotations
        .get(ANNOTATION_SYNC)
        .map(String::as_str)
        == Some("report")
    {
        Mode::Report
    } else {
        Mode::Auto
    };
    Ok(DesiredScheduledTask {
        name,
        source: path.to_string(),
        sync,
        task_definition_hash: task_definition_hash(&task_definition),
        spec,
        task_definition,
    })
}

/// The definition the schedule runs: its own, or the named Service's.
fn resolve_task_definition(
    m: &ScheduledTaskManifest,
    set: &ManifestSet,
) -> (Option<TaskDefinition>, Problems) {
    let spec = FieldPath::default().key("spec");
    let s = &m.spec;
    match (&s.task_definition, &s.task_definition_from) {
        (Some(_), Some(_)) => (
            None,
            vec![(
                spec.key("taskDefinitionFrom"),
                "cannot be combined with taskDefinition: give one or the other".into(),
            )],
        ),
        (None, None) => (
            None,
            vec![(
                spec.clone(),
                "needs taskDefinition, or taskDefinitionFrom: {service: NAME}".into(),
            )],
        ),
        (Some(td), None) => (Some(td.clone()), Vec::new()),
        (None, Some(from)) => {
            let at = spec.key("taskDefinitionFrom").key("service");
            let named: Vec<&DesiredService> = set
                .services
                .iter()
                .filter(|d| d.key.name == from.service)
                .map(|d| &**d)
                .collect();
            let found = named
                .iter()
                .find(|d| d.key.cluster == s.cluster)
                .or(if named.len() == 1 {
                    named.first()
                } else {
                    None
                });
            match found {
                Some(d) => (Some(d.spec.task_definition.clone()), Vec::new()),
                None if named.len() > 1 => (
                    None,
                    vec![(
                        at,
                        format!(
                            "services named {:?} are declared in several clusters, none of them {:?}",
                            from.service, s.cluster
                        ),
                    )],
                ),
                None if set.held.iter().any(|k| k.name == from.service) => (
                    None,
                    vec![(
                        at,
                        format!("the Service manifest {:?} has errors", from.service),
                    )],
                ),
                None => (
                    None,
                    vec![(
                        at,
                        format!("no Service manifest named {:?} in this set", from.service),
                    )],
                ),
            }
        }
    }
}

/// Value checks; `td` is the resolved definition, if any.
fn validate(m: &ScheduledTaskManifest, td: Option<&TaskDefinition>) -> Problems {
    let mut p = Problems::new();
    let root = FieldPath::default();
    if m.api_version != API_VERSION {
        p.push((
            root.key("apiVersion"),
            format!("must be {API_VERSION}, not {:?}", m.api_version),
        ));
    }
    let meta = root.key("metadata");
    let name = &m.metadata.name;
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        p.push((
            meta.key("name"),
            "a schedule name is 1-64 letters, digits, hyphens, underscores or dots".into(),
        ));
    }
    for (key, value) in &m.metadata.annotations {
        if key == ANNOTATION_SYNC {
            if value != "auto" && value != "report" {
                p.push((
                    meta.key("annotations").key(key),
                    format!("must be one of auto, report, not {value:?}"),
                ));
            }
        } else if key.starts_with("ecsync.io/") {
            p.push((
                meta.key("annotations").key(key),
                "has no meaning on a ScheduledTask".into(),
            ));
        }
    }
    let spec = root.key("spec");
    let s = &m.spec;
    if !is_ecs_name(&s.cluster) {
        p.push((
            spec.key("cluster"),
            "must be 1-255 letters, digits, hyphens or underscores".into(),
        ));
    }
    if let Err(e) = expression::check(s.schedule.trim()) {
        p.push((spec.key("schedule"), e));
    } else if s.schedule.trim() != s.schedule {
        p.push((
            spec.key("schedule"),
            "has spaces around the expression".into(),
        ));
    }
    if let Some(tz) = &s.timezone
        && (tz.is_empty() || tz.len() > 50 || tz.contains(char::is_whitespace))
    {
        p.push((
            spec.key("timezone"),
            format!("{tz:?} is not a time zone name like UTC or Asia/Tokyo"),
        ));
    }
    if !is_role_arn(&s.role_arn) {
        p.push((
            spec.key("roleArn"),
            format!(
                "{:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)",
                s.role_arn
            ),
        ));
    }
    if s.task_count.is_some_and(|n| !(1..=10).contains(&n)) {
        p.push((spec.key("taskCount"), "must be from 1 to 10".into()));
    }
    let Some(td) = td else { return p };
    // The task definition, launch type, capacity and network go through the
    // very checks a Service's do: the same members under the same paths.
    let as_service = Manifest {
        api_version: API_VERSION.into(),
        kind: KIND_SERVICE.into(),
        metadata: Default::default(),
        spec: ServiceSpec {
            cluster: s.cluster.clone(),
            task_definition: td.clone(),
            launch_type: s.launch_type.clone(),
            capacity_provider_strategy: s.capacity_provider_strategy.clone(),
            network_configuration: s.network_configuration.clone(),
            ..Default::default()
        },
    };
    let shared = [
        "launchType",
        "capacityProviderStrategy",
        "networkConfiguration",
    ];
    let inline = s.task_definition.is_some();
    for (field, message) in validate_service(&as_service) {
        match field.0.get(1) {
            Some(Seg::Key(k)) if shared.contains(&k.as_str()) => p.push((field, message)),
            // A Service's definition was checked in its own manifest.
            Some(Seg::Key(k)) if k == "taskDefinition" => {
                if inline {
                    p.push((field, message));
                } else {
                    p.push((
                        spec.key("taskDefinitionFrom"),
                        format!("the Service's definition does not fit this schedule: {field}: {message}"),
                    ));
                }
            }
            _ => {}
        }
    }
    let containers: Vec<&str> = td
        .container_definitions
        .iter()
        .filter_map(|c| c.name.as_deref())
        .collect();
    for (i, c) in m
        .spec
        .overrides
        .iter()
        .flat_map(|o| o.container_overrides.iter().flatten())
        .enumerate()
    {
        if !containers.contains(&c.name.as_str()) {
            p.push((
                spec.key("overrides")
                    .key("containerOverrides")
                    .index(i)
                    .key("name"),
                format!("no container named {:?} in the task definition", c.name),
            ));
        }
    }
    p
}

fn is_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    matches!(parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if !partition.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|r| !r.is_empty()))
}
