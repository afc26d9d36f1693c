//! Parses of unchanged documents, kept from one revision to the next.
//!
//! A push usually changes one file in thousands, and parsing, validating and
//! normalising every document again costs seconds at 5,000 services in a
//! debug build. A document's result depends on nothing but its file's path,
//! its first line and its text, so it is looked up by the first two and kept
//! while the text is the same. Only what the last load used is kept: memory
//! stays one revision.

use std::collections::HashMap;

use super::{DesiredService, DocFailure, Document, ManifestError, parse_document};

type Key = (String, u64);
/// The document's text, the service it declares (or why not), its warnings.
type Parsed = (
    String,
    Result<Option<DesiredService>, DocFailure>,
    Vec<ManifestError>,
);

#[derive(Default)]
pub struct ParseCache {
    /// What the previous load parsed.
    previous: HashMap<Key, Parsed>,
    /// What this load has used so far.
    current: HashMap<Key, Parsed>,
}

impl ParseCache {
    /// The service a document declares (and its warnings), parsed once per text.
    pub(super) fn parse(
        &mut self,
        path: &str,
        doc: &Document,
        warnings: &mut Vec<ManifestError>,
    ) -> Result<Option<DesiredService>, DocFailure> {
        let key: Key = (path.to_string(), doc.first_line);
        let parsed = match self.previous.remove(&key) {
            Some(parsed) if parsed.0 == doc.text => parsed,
            _ => {
                let mut own = Vec::new();
                let result = parse_document(path, doc, &mut own);
                (doc.text.clone(), result, own)
            }
        };
        warnings.extend(parsed.2.iter().cloned());
        let result = parsed.1.clone();
        self.current.insert(key, parsed);
        result
    }

    /// A load is over: what it did not use is dropped.
    pub(super) fn finish(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }

    pub fn len(&self) -> usize {
        self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.previous.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{load_tree, load_tree_cached, overlay::Tree};
    use super::ParseCache;

    fn svc(name: &str, image: &str) -> String {
        super::super::tests::WEB
            .replace("name: web", &format!("name: {name}"))
            .replace("family: web", &format!("family: {name}"))
            .replace("public.ecr.aws/nginx/nginx:1.27", image)
    }

    #[test]
    fn a_cached_load_is_the_load_and_keeps_only_the_last_revision() {
        let tree = Tree::default();
        let mut cache = ParseCache::default();
        let revisions = [
            vec![("a.yaml", svc("a", "x:1")), ("b.yaml", svc("b", "x:1"))],
            vec![("a.yaml", svc("a", "x:2")), ("b.yaml", svc("b", "x:1"))],
            // b moves below a, in a.yaml: same text, another file and line.
            vec![(
                "a.yaml",
                format!("{}---\n{}", svc("a", "x:2"), svc("b", "x:1")),
            )],
            vec![(
                "a.yaml",
                svc("a", "x:2").replace("desiredCount", "desiredCountt"),
            )],
        ];
        for files in &revisions {
            let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
            let cached = load_tree_cached(files.iter().copied(), &tree, &mut cache);
            let fresh = load_tree(files.iter().copied(), &tree);
            assert_eq!(cached.services, fresh.services);
            assert_eq!(cached.errors, fresh.errors);
            assert_eq!(cached.warnings, fresh.warnings);
            assert_eq!(cached.held, fresh.held);
            let documents: usize = files.iter().map(|(_, t)| t.matches("kind:").count()).sum();
            assert_eq!(cache.len(), documents);
        }
    }
}
