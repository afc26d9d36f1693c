//! Reading manifests: YAML text → validated, normalised desired services.
//!
//! Errors are collected, never fatal to the whole set: a broken document holds
//! only the services it declared (DESIGN §5), so every error also says which
//! service it concerned when that can still be made out.

mod cache;
mod locate;
pub mod overlay;
mod scheduled;
pub mod validate;

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use cache::ParseCache;
pub use locate::{FieldPath, Seg};

use crate::core::model::{Manifest, ServiceKey, ServiceSpec, TaskDefinition};
use crate::core::normalize;
use crate::core::state::Mode;

/// One error in one manifest file, rendered as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Per-service sync policy from `metadata.annotations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// `ecsync.io/sync: report` makes this one service report-only.
    pub sync: Mode,
    pub prune_disabled: bool,
}

pub const ANNOTATION_SYNC: &str = "ecsync.io/sync";
pub const ANNOTATION_PRUNE: &str = "ecsync.io/prune";

/// A service as Git declares it, normalised and ready to diff.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredService {
    pub key: ServiceKey,
    /// The manifest file it came from, relative to the repository root.
    pub source: String,
    pub policy: Policy,
    /// The normalised spec; `desired_count: None` means "not ours to set".
    pub spec: ServiceSpec,
    /// Short hash of the normalised task definition; equal hashes, equal content.
    pub task_definition_hash: String,
    /// The first load balancer's target group as declared (normalising sorts
    /// them): the one a migration shifts traffic to.
    pub migration_target_group: Option<String>,
    /// Where each `spec.dependsOn[i]` was written (file, line, column): the
    /// checks across manifests (unknown services, cycles) point there.
    pub depends_on_at: Vec<(String, u64, u64)>,
}

/// Everything read from one set of files.
#[derive(Debug, Clone, Default)]
pub struct ManifestSet {
    /// Shared, not copied, between the sets of successive revisions that
    /// declare a service the same way (see [`ParseCache`]).
    pub services: Vec<Arc<DesiredService>>,
    pub errors: Vec<ManifestError>,
    /// Loaded, but worth a look: response-only members that were dropped.
    pub warnings: Vec<ManifestError>,
    /// Services named by a document that failed, or declared twice: never touch.
    pub held: BTreeSet<ServiceKey>,
    /// Files with at least one error: live services whose source tag names one of
    /// these are held as well, since a broken file may have declared them.
    pub broken_files: BTreeSet<String>,
    /// `kind: ScheduledTask` manifests (DESIGN §3), beside the services.
    pub scheduled: Vec<crate::core::scheduled::DesiredScheduledTask>,
    /// Schedule names declared by a document that failed, or twice.
    pub held_scheduled: BTreeSet<String>,
}

impl ManifestSet {
    pub fn is_held(&self, key: &ServiceKey, live_source: Option<&str>) -> bool {
        self.held.contains(key) || live_source.is_some_and(|s| self.broken_files.contains(s))
    }
}

/// Hash of the canonical JSON of a normalised task definition (16 hex digits).
pub fn task_definition_hash(td: &TaskDefinition) -> String {
    let mut canonical = crate::core::diff::to_comparable(td);
    // Sorted, so that every build hashes the same text: where a dependency
    // turns on serde_json's `preserve_order`, keys keep insertion order, and
    // two builds of one source would tag the same definition differently.
    canonical.sort_all_objects();
    let canonical = canonical.to_string();
    let digest = Sha256::digest(canonical.as_bytes());
    hex::encode(&digest[..8])
}

/// Parse and validate a set of files (path, contents); overlays among them
/// build on the others.
pub fn load<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> ManifestSet {
    let files: Vec<(&str, &str)> = files.into_iter().collect();
    let tree = if files.iter().any(|(_, t)| t.contains(overlay::KIND_OVERLAY)) {
        overlay::tree_of(files.iter().copied())
    } else {
        overlay::Tree::default()
    };
    load_tree(files, &tree)
}

/// What one document of a selected file amounts to, before it is checked.
enum Unit {
    /// Written by hand: parsed from its own text.
    Text { file: String, doc: Document },
    /// Built by an overlay in `file`.
    Built { file: String, built: overlay::Built },
    /// A Service document of a file the last load read with the same text.
    Parsed {
        /// Shared with the cache: thousands of these are made per load.
        file: Arc<str>,
        first_line: u64,
        parsed: cache::Parsed,
    },
}

/// The documents of the selected files, overlays built; what overlays read is
/// not loaded on its own. Overlay failures are errors, and hold the files
/// they reached.
struct Expanded<'t> {
    units: Vec<Unit>,
    errors: Vec<ManifestError>,
    broken_files: BTreeSet<String>,
    builder: overlay::Builder<'t>,
}

fn expand<'a, 't>(
    selected: impl IntoIterator<Item = (&'a str, &'a str)>,
    tree: &'t overlay::Tree,
    mut cache: Option<&mut ParseCache>,
) -> Expanded<'t> {
    let selected: Vec<(&str, &str)> = selected.into_iter().collect();
    let mut builder = overlay::Builder::new(tree);
    // Without a tree no overlay reaches anything, so nothing is skipped for
    // being reached: spare every file the scan.
    let overlays: Vec<&str> = if tree.files.is_empty() {
        Vec::new()
    } else {
        selected
            .iter()
            .filter(|(_, t)| t.contains(overlay::KIND_OVERLAY))
            .map(|(p, _)| *p)
            .collect()
    };
    let roots = builder.roots(&overlays);
    let mut out = Expanded {
        units: Vec::new(),
        errors: Vec::new(),
        broken_files: BTreeSet::new(),
        builder,
    };
    let mut failed = false;
    for (path, text) in selected {
        if out.builder.reached.contains(path) && !roots.contains(path) {
            continue;
        }
        if let Some(units) = cache.as_mut().and_then(|c| c.kept(path, text)) {
            out.units.extend(units);
            continue;
        }
        if let Some(cache) = cache.as_mut()
            && !text.contains(overlay::KIND_OVERLAY)
        {
            cache.start(path, text);
        }
        for doc in split_documents(text) {
            // The substring test spares every plain document a second parse.
            if !doc.text.contains(overlay::KIND_OVERLAY)
                || kind_of(&doc).as_deref() != Some(overlay::KIND_OVERLAY)
            {
                out.units.push(Unit::Text {
                    file: path.to_string(),
                    doc,
                });
                continue;
            }
            match out.builder.build(path, &doc, &mut Vec::new()) {
                Ok(built) => out.units.extend(built.into_iter().map(|built| Unit::Built {
                    file: path.to_string(),
                    built,
                })),
                Err(errors) => {
                    failed = true;
                    out.broken_files.insert(path.to_string());
                    out.errors.extend(errors);
                }
            }
        }
    }
    if failed {
        // A base an overlay could not be built from may have declared
        // services that live under its own name: hold them too.
        out.broken_files.extend(out.builder.reached.iter().cloned());
    }
    out
}

/// Like [`load`], for files whose overlays' resources were resolved by the
/// source that read them.
pub fn load_tree<'a>(
    selected: impl IntoIterator<Item = (&'a str, &'a str)>,
    tree: &overlay::Tree,
) -> ManifestSet {
    load_tree_cached(selected, tree, &mut ParseCache::default())
}

/// [`load_tree`], reusing the parses of documents `cache` saw in the last load.
pub fn load_tree_cached<'a>(
    selected: impl IntoIterator<Item = (&'a str, &'a str)>,
    tree: &overlay::Tree,
    cache: &mut ParseCache,
) -> ManifestSet {
    let expanded = expand(selected, tree, Some(&mut *cache));
    let mut set = ManifestSet {
        errors: expanded.errors,
        broken_files: expanded.broken_files,
        ..Default::default()
    };
    let sources = &expanded.builder.sources;
    let mut scheduled_units = Vec::new();
    // What each Service document gave, in file order: (file, line, result).
    let mut declared = Vec::with_capacity(expanded.units.len());
    for unit in &expanded.units {
        // Checked once every Service is known: `taskDefinitionFrom` names one.
        if let Some(task) = scheduled::scheduled(unit) {
            if let scheduled::Scheduled::Text { file, doc } = task {
                cache.scheduled(file, doc);
            }
            scheduled_units.push(task);
            continue;
        }
        let (path, first_line, parsed) = match unit {
            Unit::Text { file, doc } => {
                let (parsed, warnings) = cache.parse(file, doc);
                set.warnings.extend(warnings);
                (file.as_str(), doc.first_line, parsed)
            }
            Unit::Parsed {
                file,
                first_line,
                parsed: (parsed, warnings),
            } => {
                set.warnings.extend(warnings.iter().cloned());
                (&**file, *first_line, parsed.clone())
            }
            Unit::Built { file, built } => (
                file.as_str(),
                1,
                parse_built(file, built, sources, &mut set.warnings).map(|s| s.map(Arc::new)),
            ),
        };
        declared.push((path, first_line, parsed));
    }
    // Keys and files are borrowed from `declared`: at thousands of services,
    // copying each into an ordered map costs more than the rest of a load
    // that reuses its parses.
    let mut first_seen: HashMap<&ServiceKey, &str> = HashMap::with_capacity(declared.len());
    let mut duplicates: BTreeSet<ServiceKey> = BTreeSet::new();
    set.services.reserve(declared.len());
    for (path, first_line, parsed) in &declared {
        match parsed {
            Ok(None) => {}
            Ok(Some(svc)) => match first_seen.entry(&svc.key) {
                Entry::Occupied(other) => {
                    set.errors.push(ManifestError {
                        file: path.to_string(),
                        line: *first_line,
                        column: 1,
                        message: format!(
                            "service {} is declared twice: here and in {}",
                            svc.key,
                            other.get()
                        ),
                    });
                    set.broken_files.insert(path.to_string());
                    duplicates.insert(svc.key.clone());
                }
                Entry::Vacant(first) => {
                    first.insert(path);
                    set.services.push(svc.clone());
                }
            },
            Err(failure) => {
                set.broken_files.insert(path.to_string());
                if let Some(key) = &failure.key {
                    set.held.insert(key.clone());
                }
                set.errors.extend(failure.errors.iter().cloned());
            }
        }
    }
    set.held.extend(duplicates);
    if !set.held.is_empty() {
        set.services.retain(|s| !set.held.contains(&s.key));
    }
    // Before the dependency check, which may hold services a schedule takes its
    // definition from.
    scheduled::load(&scheduled_units, sources, &mut set);
    crate::core::dependencies::check(&mut set);
    cache.finish();
    set
}

/// One manifest as `ecsync render` prints it: the file it comes from (the
/// overlay, for a built one) and its final value.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub source: String,
    pub value: serde_json::Value,
}

/// The final manifests of the selected files (what [`load_tree`] checks),
/// or the errors that kept them from being built.
pub fn render_tree<'a>(
    selected: impl IntoIterator<Item = (&'a str, &'a str)>,
    tree: &overlay::Tree,
) -> (Vec<Rendered>, Vec<ManifestError>) {
    let expanded = expand(selected, tree, None);
    let mut errors = expanded.errors;
    let mut rendered = Vec::new();
    for unit in expanded.units {
        match unit {
            Unit::Built { file, built } => rendered.push(Rendered {
                source: file,
                value: built.value,
            }),
            // Only a load with a cache reuses parses; this one has none.
            Unit::Parsed { .. } => {}
            Unit::Text { file, doc } => {
                match serde_saphyr::from_str_with_options(&doc.text, options()) {
                    Ok(value) => rendered.push(Rendered {
                        source: file,
                        value,
                    }),
                    Err(e) => {
                        let (line, column) = e
                            .location()
                            .map(|l| (l.line() + doc.first_line - 1, l.column()))
                            .unwrap_or((doc.first_line, 1));
                        errors.push(ManifestError {
                            file,
                            line,
                            column,
                            message: plain_message(&e),
                        });
                    }
                }
            }
        }
    }
    (rendered, errors)
}

/// The `kind` a document declares, if it can be read.
fn kind_of(doc: &Document) -> Option<String> {
    #[derive(Deserialize)]
    struct Kind {
        kind: Option<String>,
    }
    serde_saphyr::from_str_with_options::<Kind>(&doc.text, options())
        .ok()?
        .kind
}

#[derive(Debug, Clone)]
struct Document {
    text: String,
    /// 1-based line of the document's first line in the file.
    first_line: u64,
}

/// Split a multi-document stream at `---` markers, keeping line offsets so that
/// errors in the third document still carry the file's line numbers. A marker
/// at column 0 always ends a document in YAML, even inside a block scalar.
fn split_documents(text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut first_line = 1;
    for (i, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        let is_end = line == "..." || line.starts_with("... ");
        if is_marker || is_end {
            docs.push(Document {
                text: std::mem::take(&mut current),
                first_line,
            });
            first_line = i as u64 + 2;
            if is_marker && line.len() > 3 {
                // `--- {inline: doc}`: keep the content, padded to its column.
                current.push_str(&" ".repeat(4));
                current.push_str(&line[4..]);
                current.push('\n');
                first_line = i as u64 + 1;
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push(Document {
        text: current,
        first_line,
    });
    docs.retain(|d| !is_blank_document(&d.text));
    docs
}

fn is_blank_document(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t.starts_with('%')
    })
}

#[derive(Clone)]
struct DocFailure {
    key: Option<ServiceKey>,
    errors: Vec<ManifestError>,
}

/// Only what is needed to know which service a broken document meant.
#[derive(Deserialize)]
struct LooseManifest {
    metadata: Option<LooseMetadata>,
    spec: Option<LooseSpec>,
}
#[derive(Deserialize)]
struct LooseMetadata {
    name: Option<String>,
}
#[derive(Deserialize)]
struct LooseSpec {
    cluster: Option<String>,
}

fn options() -> serde_saphyr::Options {
    // Bounds for hostile input: deep nesting and alias bombs fail fast.
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 64,
            max_aliases: 100,
            max_anchors: 100,
            max_events: 200_000,
        },
    }
}

fn parse_document(
    path: &str,
    doc: &Document,
    warnings: &mut Vec<ManifestError>,
) -> Result<Option<DesiredService>, DocFailure> {
    let offset = doc.first_line - 1;
    let loose_key = || {
        serde_saphyr::from_str_with_options::<LooseManifest>(&doc.text, options())
            .ok()
            .and_then(|m| {
                Some(ServiceKey {
                    cluster: m.spec?.cluster?,
                    name: m.metadata?.name?,
                })
            })
    };
    let manifest: Manifest = match serde_saphyr::from_str_with_options(&doc.text, options()) {
        Ok(m) => m,
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line() + offset, l.column()))
                .unwrap_or((doc.first_line, 1));
            return Err(DocFailure {
                key: loose_key(),
                errors: vec![ManifestError {
                    file: path.to_string(),
                    line,
                    column,
                    message: plain_message(&e),
                }],
            });
        }
    };
    let locate_in_doc = |field: &FieldPath| {
        let (line, column) = locate::locate(&doc.text, field).unwrap_or((doc.first_line, 1));
        (path.to_string(), line + offset, column)
    };
    finish(path, manifest, &locate_in_doc, warnings).map(Some)
}

/// Where a field of a manifest was written: file, line, column.
type Locator<'l> = dyn Fn(&FieldPath) -> (String, u64, u64) + 'l;

/// A document an overlay built: typed from its value, each error placed in
/// the base or overlay that wrote the value it concerns.
fn parse_built(
    path: &str,
    built: &overlay::Built,
    sources: &[overlay::SourceDoc],
    warnings: &mut Vec<ManifestError>,
) -> Result<Option<DesiredService>, DocFailure> {
    let locate_in_sources = |field: &FieldPath| match built.origins.lookup(&field.0) {
        Some((source, at)) => {
            let s = &sources[source];
            let (line, column) = s.locate(&at);
            (s.file.clone(), line, column)
        }
        None => (path.to_string(), 1, 1),
    };
    let manifest: Manifest = match serde_path_to_error::deserialize(&built.value) {
        Ok(m) => m,
        Err(e) => {
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
            let (file, line, column) = locate_in_sources(&field);
            let key = (|| {
                Some(ServiceKey {
                    cluster: built.value.pointer("/spec/cluster")?.as_str()?.to_string(),
                    name: built.value.pointer("/metadata/name")?.as_str()?.to_string(),
                })
            })();
            return Err(DocFailure {
                key,
                errors: vec![ManifestError {
                    file,
                    line,
                    column,
                    message: format!("{field}: {}", e.inner()),
                }],
            });
        }
    };
    finish(path, manifest, &locate_in_sources, warnings).map(Some)
}

/// The checks every manifest goes through once typed, however it was written.
fn finish(
    path: &str,
    mut manifest: Manifest,
    locate_in_doc: &Locator<'_>,
    warnings: &mut Vec<ManifestError>,
) -> Result<DesiredService, DocFailure> {
    // A describe answer pasted in: what only AWS writes is dropped, and said.
    let td_path = FieldPath::default().key("spec").key("taskDefinition");
    let td = &manifest.spec.task_definition;
    let given = td
        .response_only_members()
        .into_iter()
        .map(|m| td_path.key(m))
        .chain(td.wrapped.iter().flat_map(|inner| {
            let inner_path = td_path.key("taskDefinition");
            inner
                .response_only_members()
                .into_iter()
                .map(move |m| inner_path.key(m))
        }));
    for field in given {
        let (file, line, column) = locate_in_doc(&field);
        warnings.push(ManifestError {
            file,
            line,
            column,
            message: format!("{field}: describe output, not RegisterTaskDefinition input: ignored"),
        });
    }
    // Sent, but no describe answer carries them: say that drift there is unseen.
    let spec_json = crate::core::diff::to_clean_value(&manifest.spec);
    for member in crate::core::model::NOT_DESCRIBED_MEMBERS {
        if spec_json.get(*member).is_some() {
            let field = FieldPath::default().key("spec").key(member);
            let (file, line, column) = locate_in_doc(&field);
            warnings.push(ManifestError {
                file,
                line,
                column,
                message: format!(
                    "{field}: sent on create and update, but DescribeServices does not report it, so drift there goes unseen"
                ),
            });
        }
    }
    manifest.spec.task_definition = std::mem::take(&mut manifest.spec.task_definition).unwrapped();
    let mut problems = validate::validate(&manifest);
    if crate::core::tags::tag_len(path) > crate::core::tags::MAX_TAG_VALUE {
        problems.push((
            FieldPath::default().key("metadata").key("name"),
            format!(
                "the file path is {} characters long: the ecsync.io/source tag holds at most {}",
                crate::core::tags::tag_len(path),
                crate::core::tags::MAX_TAG_VALUE
            ),
        ));
    }
    if !problems.is_empty() {
        let errors = problems
            .into_iter()
            .map(|(field, message)| {
                let (file, line, column) = locate_in_doc(&field);
                ManifestError {
                    file,
                    line,
                    column,
                    message: format!("{field}: {message}"),
                }
            })
            .collect();
        return Err(DocFailure {
            key: Some(ServiceKey {
                cluster: manifest.spec.cluster.clone(),
                name: manifest.metadata.name.clone(),
            }),
            errors,
        });
    }
    let depends_on_at = (0..manifest.spec.depends_on.as_ref().map_or(0, Vec::len))
        .map(|i| {
            locate_in_doc(
                &FieldPath::default()
                    .key("spec")
                    .key("dependsOn")
                    .index(i)
                    .key("service"),
            )
        })
        .collect();
    let mut desired = into_desired(path, manifest);
    desired.depends_on_at = depends_on_at;
    Ok(desired)
}

/// serde-saphyr's Display adds a source snippet; we print `file:line:col:` ourselves.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let rendered = e.without_snippet().to_string();
    let first = rendered.lines().next().unwrap_or("invalid YAML").trim();
    // Drop a trailing " at line X column Y" that would repeat our prefix.
    match first.find(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

fn into_desired(path: &str, manifest: Manifest) -> DesiredService {
    let annotations = &manifest.metadata.annotations;
    let policy = Policy {
        sync: if annotations.get(ANNOTATION_SYNC).map(String::as_str) == Some("report") {
            Mode::Report
        } else {
            Mode::Auto
        },
        prune_disabled: annotations.get(ANNOTATION_PRUNE).map(String::as_str) == Some("disabled"),
    };
    let mut spec = manifest.spec;
    let migration_target_group = spec
        .load_balancers
        .as_ref()
        .and_then(|l| l.first())
        .and_then(|lb| lb.target_group_arn.clone());
    normalize::normalize_service(&mut spec);
    let task_definition_hash = task_definition_hash(&spec.task_definition);
    DesiredService {
        key: ServiceKey {
            cluster: spec.cluster.clone(),
            name: manifest.metadata.name,
        },
        source: path.to_string(),
        policy,
        spec,
        task_definition_hash,
        migration_target_group,
        depends_on_at: Vec::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
