//! `kind: Overlay`: one environment built from a shared base, as a
//! kustomization is. Resources are read, patched with JSON merge patches
//! (RFC 7386, lists of named things merged by their key as Kustomize's
//! strategic merge does) and their images set; the result is checked as if it
//! had been written by hand.
//!
//! Every value remembers where it came from, so an error in the result points
//! at the line in the base or in the overlay that wrote it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Document, FieldPath, ManifestError, Seg, locate, options, plain_message};

pub const KIND_OVERLAY: &str = "Overlay";

/// How deep overlays may build on overlays: a guard, not a design limit.
const MAX_DEPTH: usize = 16;

/// What a resource path names, as the source of the files saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The manifest files it names (a file, or every manifest in a folder).
    Files(Vec<String>),
    Missing,
    /// The named path, or a folder on the way to it, is a symbolic link.
    Symlink(String),
    /// It leads out of the repository.
    Outside,
}

/// The files read for one load, and what each overlay's resources resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub files: BTreeMap<String, String>,
    /// Keyed by (the overlay's file, the resource as written).
    pub resolved: BTreeMap<(String, String), Resolved>,
}

/// `dir/../x` → `x`: a path relative to the repository, or `None` when it
/// climbs out of it. `from` is the file the path is relative to.
pub fn join(from: &str, relative: &str) -> Option<String> {
    let mut parts: Vec<&str> = if relative.starts_with('/') {
        // Absolute paths are not the repository's.
        return None;
    } else {
        from.split('/').collect()
    };
    parts.pop();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// The resources every overlay in `text` names, as written.
pub fn references(text: &str) -> Vec<String> {
    #[derive(Deserialize)]
    struct Loose {
        kind: Option<String>,
        spec: Option<LooseSpec>,
    }
    #[derive(Deserialize)]
    struct LooseSpec {
        resources: Option<Vec<String>>,
    }
    super::split_documents(text)
        .into_iter()
        .filter_map(|d| serde_saphyr::from_str_with_options::<Loose>(&d.text, options()).ok())
        .filter(|l| l.kind.as_deref() == Some(KIND_OVERLAY))
        .flat_map(|l| l.spec.and_then(|s| s.resources).unwrap_or_default())
        .collect()
}

/// A resource listing for sources that know every path up front (a Git tree,
/// or files held in memory): resolves a path lexically.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Manifest files, by path.
    pub manifests: BTreeSet<String>,
    pub symlinks: BTreeSet<String>,
}

impl Listing {
    pub fn resolve(&self, from: &str, relative: &str) -> Resolved {
        let Some(path) = join(from, relative) else {
            return Resolved::Outside;
        };
        let mut prefix = String::new();
        for part in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.symlinks.contains(&prefix) {
                return Resolved::Symlink(prefix);
            }
        }
        if self.manifests.contains(&path) {
            return Resolved::Files(vec![path]);
        }
        let folder = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let files: Vec<String> = self
            .manifests
            .range(folder.clone()..)
            .take_while(|p| p.starts_with(&folder))
            .filter(|p| !p[folder.len()..].split('/').any(|c| c.starts_with('.')))
            .cloned()
            .collect();
        if files.is_empty() {
            Resolved::Missing
        } else {
            Resolved::Files(files)
        }
    }
}

/// Resolve every overlay's resources among files already in memory.
pub fn tree_of<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tree {
    let files: BTreeMap<String, String> = files
        .into_iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    let listing = Listing {
        manifests: files.keys().cloned().collect(),
        ..Default::default()
    };
    let mut resolved = BTreeMap::new();
    for (path, text) in &files {
        for r in references(text) {
            let found = listing.resolve(path, &r);
            resolved.insert((path.clone(), r), found);
        }
    }
    Tree { files, resolved }
}

/// Where a part of a built document was written.
#[derive(Debug, Clone)]
pub(super) struct SourceDoc {
    pub file: String,
    pub doc: Document,
}

impl SourceDoc {
    pub(super) fn locate(&self, path: &FieldPath) -> (u64, u64) {
        let (line, column) = locate::locate(&self.doc.text, path).unwrap_or((1, 1));
        (line + self.doc.first_line - 1, column)
    }
}

/// For each path in a built document, the source document and the path in it
/// that last wrote it; the longest recorded prefix of a path answers for it.
/// A source document (its index) and a path in it.
type Origin = (usize, Vec<Seg>);

#[derive(Debug, Clone, Default)]
pub(super) struct Origins(BTreeMap<Vec<Seg>, Origin>);

impl Origins {
    fn rooted(source: usize) -> Self {
        Origins(BTreeMap::from([(Vec::new(), (source, Vec::new()))]))
    }

    fn record(&mut self, at: &[Seg], source: usize, path: Vec<Seg>) {
        self.forget(at);
        self.0.insert(at.to_vec(), (source, path));
    }

    /// Drop what was recorded at and below `at`.
    fn forget(&mut self, at: &[Seg]) {
        let below: Vec<Vec<Seg>> = self
            .0
            .range(at.to_vec()..)
            .take_while(|(k, _)| k.starts_with(at))
            .map(|(k, _)| k.clone())
            .collect();
        for k in below {
            self.0.remove(&k);
        }
    }

    /// A list element left: what was recorded for the ones after it moves up.
    fn shift_after(&mut self, list: &[Seg], removed: usize) {
        let moved: Vec<(Vec<Seg>, Origin)> = self
            .0
            .range(list.to_vec()..)
            .take_while(|(k, _)| k.starts_with(list))
            .filter(|(k, _)| matches!(k.get(list.len()), Some(Seg::Index(i)) if *i > removed))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in moved {
            self.0.remove(&k);
            let mut k = k;
            if let Some(Seg::Index(i)) = k.get_mut(list.len()) {
                *i -= 1;
            }
            self.0.insert(k, v);
        }
    }

    pub(super) fn lookup(&self, path: &[Seg]) -> Option<(usize, FieldPath)> {
        (0..=path.len()).rev().find_map(|n| {
            self.0.get(&path[..n]).map(|(source, at)| {
                let mut full = at.clone();
                full.extend_from_slice(&path[n..]);
                (*source, FieldPath(full))
            })
        })
    }
}

/// One document an overlay produced: its value and where each part came from.
#[derive(Debug, Clone)]
pub(super) struct Built {
    pub value: Value,
    pub origins: Origins,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OverlayDoc {
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[allow(dead_code)]
    metadata: OverlayMetadata,
    spec: OverlaySpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverlayMetadata {
    #[allow(dead_code)]
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverlaySpec {
    resources: Vec<String>,
    #[serde(default)]
    patches: Vec<Patch>,
    #[serde(default)]
    images: Vec<Image>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    #[serde(default)]
    target: Option<Target>,
    patch: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    kind: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Image {
    name: String,
    new_name: Option<String>,
    #[serde(default, deserialize_with = "crate::core::api::de::opt_string")]
    new_tag: Option<String>,
    digest: Option<String>,
}

/// Builds overlays; owns the table of source documents origins point into.
#[derive(Default)]
pub(super) struct Builder<'t> {
    tree: Option<&'t Tree>,
    pub sources: Vec<SourceDoc>,
    /// Every file an overlay read, at any depth: not loaded on its own.
    pub reached: BTreeSet<String>,
    /// Errors inside resources, collected while a nested build runs.
    pending_errors: Errors,
}

type Errors = Vec<ManifestError>;

impl<'t> Builder<'t> {
    pub(super) fn new(tree: &'t Tree) -> Self {
        Builder {
            tree: Some(tree),
            ..Default::default()
        }
    }

    fn source(&mut self, file: &str, doc: &Document) -> usize {
        self.sources.push(SourceDoc {
            file: file.to_string(),
            doc: doc.clone(),
        });
        self.sources.len() - 1
    }

    fn error_at(&self, source: usize, path: &FieldPath, message: String) -> ManifestError {
        let s = &self.sources[source];
        let (line, column) = s.locate(path);
        ManifestError {
            file: s.file.clone(),
            line,
            column,
            message,
        }
    }

    /// Which of the overlays in `files` are built as they stand: those no
    /// other overlay reaches. Everything any of them reaches goes in
    /// `reached`, and is not loaded on its own.
    pub(super) fn roots(&mut self, files: &[&str]) -> BTreeSet<String> {
        let reach: BTreeMap<&str, BTreeSet<String>> =
            files.iter().map(|f| (*f, self.reach(f))).collect();
        let by_other = |f: &str| reach.iter().any(|(g, r)| *g != f && r.contains(f));
        let mut roots: BTreeSet<String> = files
            .iter()
            .filter(|f| !by_other(f))
            .map(|f| f.to_string())
            .collect();
        let covered: BTreeSet<String> = roots
            .iter()
            .flat_map(|r| reach[r.as_str()].iter().cloned())
            .collect();
        // Overlays only a cycle reaches: built, so the cycle is reported.
        let orphans: Vec<String> = files
            .iter()
            .filter(|f| !roots.contains(**f) && !covered.contains(**f))
            .map(|f| f.to_string())
            .collect();
        roots.extend(orphans);
        self.reached = reach.into_values().flatten().collect();
        roots
    }

    fn reach(&self, file: &str) -> BTreeSet<String> {
        let mut reached = BTreeSet::new();
        let Some(tree) = self.tree else {
            return reached;
        };
        let mut pending = vec![file.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(file) = pending.pop() {
            if !seen.insert(file.clone()) {
                continue;
            }
            let Some(text) = tree.files.get(&file) else {
                continue;
            };
            for r in references(text) {
                if let Some(Resolved::Files(found)) = tree.resolved.get(&(file.clone(), r)) {
                    for f in found {
                        reached.insert(f.clone());
                        pending.push(f.clone());
                    }
                }
            }
        }
        reached
    }

    /// The documents the overlay in `doc` of `file` amounts to.
    pub(super) fn build(
        &mut self,
        file: &str,
        doc: &Document,
        stack: &mut Vec<String>,
    ) -> Result<Vec<Built>, Errors> {
        let own = self.source(file, doc);
        let overlay: OverlayDoc = match serde_saphyr::from_str_with_options(&doc.text, options()) {
            Ok(o) => o,
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line() + doc.first_line - 1, l.column()))
                    .unwrap_or((doc.first_line, 1));
                return Err(vec![ManifestError {
                    file: file.to_string(),
                    line,
                    column,
                    message: plain_message(&e),
                }]);
            }
        };
        let spec_path = FieldPath::default().key("spec");
        if overlay.api_version != crate::core::model::API_VERSION {
            return Err(vec![self.error_at(
                own,
                &FieldPath::default().key("apiVersion"),
                format!(
                    "apiVersion: must be {}, not {:?}",
                    crate::core::model::API_VERSION,
                    overlay.api_version
                ),
            )]);
        }
        if stack.len() >= MAX_DEPTH {
            return Err(vec![self.error_at(
                own,
                &spec_path.key("resources"),
                format!("overlays build on each other more than {MAX_DEPTH} deep"),
            )]);
        }
        stack.push(file.to_string());
        let mut docs = Vec::new();
        let mut errors = Vec::new();
        for (i, resource) in overlay.spec.resources.iter().enumerate() {
            let at = spec_path.key("resources").index(i);
            match self.resource(file, resource, stack) {
                Ok(mut found) => docs.append(&mut found),
                Err(Some(message)) => errors.push(self.error_at(own, &at, message)),
                Err(None) => {}
            }
            // Errors inside a resource were recorded by the nested build.
            errors.append(&mut self.pending_errors);
        }
        stack.pop();
        if !errors.is_empty() {
            return Err(errors);
        }
        for (i, patch) in overlay.spec.patches.iter().enumerate() {
            let at = spec_path.key("patches").index(i).key("patch");
            if !patch.patch.is_object() {
                errors.push(self.error_at(own, &at, "a patch is a mapping".into()));
                continue;
            }
            let mut matched = false;
            for built in &mut docs {
                if !targets(patch.target.as_ref(), &built.value) {
                    continue;
                }
                matched = true;
                let mut merge = Merge {
                    origins: &mut built.origins,
                    source: own,
                };
                merge.apply(
                    &mut built.value,
                    &patch.patch,
                    &mut Vec::new(),
                    &mut at.0.clone(),
                );
            }
            if !matched {
                errors.push(self.error_at(
                    own,
                    &spec_path.key("patches").index(i).key("target"),
                    "the target matches no manifest of the resources".into(),
                ));
            }
        }
        for (i, image) in overlay.spec.images.iter().enumerate() {
            let at = spec_path.key("images").index(i);
            if image.new_tag.is_some() && image.digest.is_some() {
                errors.push(self.error_at(own, &at, "set newTag or digest, not both".into()));
                continue;
            }
            for built in &mut docs {
                set_image(built, image, own, &at);
            }
        }
        if errors.is_empty() {
            Ok(docs)
        } else {
            Err(errors)
        }
    }

    /// The documents one resource holds. `Err(Some)` is an error at the
    /// resource entry; `Err(None)` means errors were left in `pending_errors`.
    fn resource(
        &mut self,
        file: &str,
        resource: &str,
        stack: &mut Vec<String>,
    ) -> Result<Vec<Built>, Option<String>> {
        let tree = self
            .tree
            .ok_or_else(|| Some("resources are not read here".to_string()))?;
        let found = match tree.resolved.get(&(file.to_string(), resource.to_string())) {
            Some(Resolved::Files(found)) => found,
            Some(Resolved::Missing) | None => {
                return Err(Some(format!(
                    "{resource}: no manifest file or folder there"
                )));
            }
            Some(Resolved::Symlink(link)) => {
                return Err(Some(format!(
                    "{resource}: reached through the symbolic link {link}, which ecsync does not follow"
                )));
            }
            Some(Resolved::Outside) => {
                return Err(Some(format!("{resource}: outside the repository")));
            }
        };
        let mut docs = Vec::new();
        let mut failed = false;
        for path in found {
            if let Some(start) = stack.iter().position(|f| f == path) {
                let mut cycle = stack[start..].to_vec();
                cycle.push(path.clone());
                return Err(Some(format!(
                    "overlays form a cycle: {}",
                    cycle.join(" → ")
                )));
            }
            let Some(text) = tree.files.get(path) else {
                return Err(Some(format!("{path}: not read")));
            };
            for doc in super::split_documents(text) {
                if super::kind_of(&doc).as_deref() == Some(KIND_OVERLAY) {
                    match self.build(path, &doc, stack) {
                        Ok(mut built) => docs.append(&mut built),
                        Err(mut errors) => {
                            self.pending_errors.append(&mut errors);
                            failed = true;
                        }
                    }
                    continue;
                }
                let source = self.source(path, &doc);
                match serde_saphyr::from_str_with_options::<Value>(&doc.text, options()) {
                    Ok(value) => docs.push(Built {
                        value,
                        origins: Origins::rooted(source),
                    }),
                    Err(e) => {
                        let (line, column) = e
                            .location()
                            .map(|l| (l.line() + doc.first_line - 1, l.column()))
                            .unwrap_or((doc.first_line, 1));
                        self.pending_errors.push(ManifestError {
                            file: path.clone(),
                            line,
                            column,
                            message: plain_message(&e),
                        });
                        failed = true;
                    }
                }
            }
        }
        if failed { Err(None) } else { Ok(docs) }
    }
}

fn targets(target: Option<&Target>, doc: &Value) -> bool {
    let Some(t) = target else { return true };
    let kind_ok = t
        .kind
        .as_deref()
        .is_none_or(|k| doc.get("kind").and_then(Value::as_str) == Some(k));
    let name_ok = t
        .name
        .as_deref()
        .is_none_or(|n| doc.pointer("/metadata/name").and_then(Value::as_str) == Some(n));
    kind_ok && name_ok
}

/// Lists whose elements are merged by a key rather than replaced, and the key.
fn list_key(member: &str) -> Option<&'static str> {
    match member {
        "containerDefinitions" | "environment" | "secrets" | "volumes" => Some("name"),
        "portMappings" => Some("containerPort"),
        _ => None,
    }
}

/// Kustomize's directive for removing a keyed element: `$patch: delete`.
const PATCH_DIRECTIVE: &str = "$patch";

struct Merge<'o> {
    origins: &'o mut Origins,
    source: usize,
}

impl Merge<'_> {
    /// RFC 7386 merge of `patch` into `target`; `at` is the path in the
    /// built document, `from` the patch's path in the overlay.
    fn apply(&mut self, target: &mut Value, patch: &Value, at: &mut Vec<Seg>, from: &mut Vec<Seg>) {
        let Value::Object(changes) = patch else {
            *target = patch.clone();
            self.origins.record(at, self.source, from.clone());
            return;
        };
        if !target.is_object() {
            *target = Value::Object(Map::new());
            self.origins.record(at, self.source, from.clone());
        }
        let Value::Object(fields) = target else {
            return;
        };
        for (key, change) in changes {
            at.push(Seg::Key(key.clone()));
            from.push(Seg::Key(key.clone()));
            match (change, list_key(key), fields.get_mut(key)) {
                (Value::Null, _, _) => {
                    fields.remove(key);
                    // What is missing now was removed here.
                    self.origins.record(at, self.source, from.clone());
                }
                (Value::Array(items), Some(natural), Some(Value::Array(current))) => {
                    self.merge_list(current, items, natural, at, from);
                }
                (_, _, Some(current)) => self.apply(current, change, at, from),
                (_, _, None) => {
                    let mut fresh = Value::Null;
                    self.apply(&mut fresh, &without_nulls(change), at, from);
                    fields.insert(key.clone(), fresh);
                }
            }
            at.pop();
            from.pop();
        }
    }

    fn merge_list(
        &mut self,
        current: &mut Vec<Value>,
        items: &[Value],
        natural: &str,
        at: &mut Vec<Seg>,
        from: &mut Vec<Seg>,
    ) {
        for (j, item) in items.iter().enumerate() {
            from.push(Seg::Index(j));
            let key = item.get(natural);
            let found = key.and_then(|k| current.iter().position(|c| c.get(natural) == Some(k)));
            let delete = item.get(PATCH_DIRECTIVE).and_then(Value::as_str) == Some("delete");
            match (found, delete) {
                (Some(i), true) => {
                    current.remove(i);
                    at.push(Seg::Index(i));
                    self.origins.forget(at);
                    at.pop();
                    self.origins.shift_after(at, i);
                }
                (None, true) => {}
                (Some(i), false) => {
                    at.push(Seg::Index(i));
                    self.apply(&mut current[i], item, at, from);
                    at.pop();
                }
                (None, false) => {
                    at.push(Seg::Index(current.len()));
                    self.origins.record(at, self.source, from.clone());
                    at.pop();
                    current.push(without_nulls(item));
                }
            }
            from.pop();
        }
    }
}

/// A value added by a patch carries no deletions (RFC 7386).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `repo[:tag][@digest]` → (repo, tag, digest); a colon before the last
/// slash is a registry port, not a tag.
fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(c) => (&rest[..slash + c], Some(&rest[slash + c + 1..]), digest),
        None => (rest, None, digest),
    }
}

fn set_image(built: &mut Built, image: &Image, source: usize, from: &FieldPath) {
    let Some(containers) = built
        .value
        .pointer_mut("/spec/taskDefinition/containerDefinitions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for (k, container) in containers.iter_mut().enumerate() {
        let Some(current) = container.get("image").and_then(Value::as_str) else {
            continue;
        };
        let (repo, tag, digest) = split_image(current);
        if repo != image.name {
            continue;
        }
        let repo = image.new_name.as_deref().unwrap_or(repo);
        let next = match (&image.digest, &image.new_tag, digest, tag) {
            (Some(d), _, _, _) => format!("{repo}@{d}"),
            (None, Some(t), _, _) => format!("{repo}:{t}"),
            (None, None, Some(d), _) => format!("{repo}@{d}"),
            (None, None, None, Some(t)) => format!("{repo}:{t}"),
            (None, None, None, None) => repo.to_string(),
        };
        container["image"] = Value::String(next);
        let at: Vec<Seg> = ["spec", "taskDefinition", "containerDefinitions"]
            .iter()
            .map(|k| Seg::Key(k.to_string()))
            .chain([Seg::Index(k), Seg::Key("image".into())])
            .collect();
        built.origins.record(&at, source, from.0.clone());
    }
}

#[cfg(test)]
mod tests;
