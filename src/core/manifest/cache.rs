//! Parses of unchanged files, kept from one revision to the next.
//!
//! A push usually changes one file in thousands, and splitting, parsing,
//! validating and normalising every document again costs seconds at 5,000
//! services in a debug build. A plain file's documents depend on nothing but
//! its path and its text (overlays, which read other files, are never kept),
//! so a file whose text is the one the last load saw gives back what it gave
//! then, without being split or parsed: the cost of a load grows with what
//! changed, not with the repository. The services are shared (`Arc`) with the
//! sets built from them, so keeping them costs no second copy. Only what the
//! last load used is kept: memory stays one revision.

use std::collections::HashMap;
use std::sync::Arc;

use super::{DesiredService, DocFailure, Document, ManifestError, Unit, parse_document};

/// What one Service document gave: the service (or why not), its warnings.
pub(super) type Parsed = (
    Result<Option<Arc<DesiredService>>, DocFailure>,
    Vec<ManifestError>,
);

/// One document of a kept file, in file order.
#[derive(Clone)]
enum Kept {
    Service {
        first_line: u64,
        parsed: Parsed,
    },
    /// Schedules are checked against the services on every load
    /// (`taskDefinitionFrom`), so only their text is kept.
    Scheduled(Document),
}

struct File {
    path: Arc<str>,
    text: Arc<str>,
    docs: Vec<Kept>,
    /// Filled by this load: its documents are appended as they are parsed.
    fresh: bool,
    /// Read by this load: kept for the next.
    used: bool,
}

#[derive(Default)]
pub struct ParseCache {
    /// By path: what the previous load read, and what this one has so far.
    files: HashMap<String, File>,
}

impl ParseCache {
    /// The units of a file as the last load left them, if its text is
    /// unchanged (only plain files, with no overlay in them, are kept).
    pub(super) fn kept(&mut self, path: &str, text: &str) -> Option<Vec<Unit>> {
        match self.files.get_mut(path) {
            Some(file) if !file.used && *file.text == *text => {
                file.used = true;
                file.fresh = false;
                let units = file
                    .docs
                    .iter()
                    .map(|kept| match kept {
                        Kept::Service { first_line, parsed } => Unit::Parsed {
                            file: file.path.clone(),
                            first_line: *first_line,
                            parsed: parsed.clone(),
                        },
                        Kept::Scheduled(doc) => Unit::Text {
                            file: path.to_string(),
                            doc: doc.clone(),
                        },
                    })
                    .collect();
                Some(units)
            }
            _ => None,
        }
    }

    /// A plain file about to be split and parsed: what that gives is kept
    /// for the next load.
    pub(super) fn start(&mut self, path: &str, text: &str) {
        self.files.insert(
            path.to_string(),
            File {
                path: path.into(),
                text: text.into(),
                docs: Vec::new(),
                fresh: true,
                used: true,
            },
        );
    }

    /// Parses a Service document of a file read afresh, keeping the result
    /// if the file is one [`ParseCache::reuse`] was asked about.
    pub(super) fn parse(&mut self, path: &str, doc: &Document) -> Parsed {
        let mut warnings = Vec::new();
        let result = parse_document(path, doc, &mut warnings).map(|s| s.map(Arc::new));
        let parsed = (result, warnings);
        if let Some(file) = self.files.get_mut(path).filter(|f| f.fresh) {
            file.docs.push(Kept::Service {
                first_line: doc.first_line,
                parsed: parsed.clone(),
            });
        }
        parsed
    }

    /// A ScheduledTask document of a file read afresh.
    pub(super) fn scheduled(&mut self, path: &str, doc: &Document) {
        if let Some(file) = self.files.get_mut(path).filter(|f| f.fresh) {
            file.docs.push(Kept::Scheduled(doc.clone()));
        }
    }

    /// A load is over: what it did not use is dropped.
    pub(super) fn finish(&mut self) {
        self.files.retain(|_, f| f.used);
        for file in self.files.values_mut() {
            file.used = false;
            file.fresh = false;
        }
    }

    /// Files kept for the next load.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{load_tree, load_tree_cached, overlay::Tree};
    use super::ParseCache;

    fn svc(name: &str, image: &str) -> String {
        super::super::tests::WEB
            .replacen("name: web", &format!("name: {name}"), 1)
            .replace("family: web", &format!("family: {name}"))
            .replace("public.ecr.aws/nginx/nginx:1.27", image)
    }

    fn job(name: &str, from: &str) -> String {
        format!(
            "apiVersion: ecsync.io/v1alpha1\nkind: ScheduledTask\nmetadata: {{name: {name}}}\nspec:\n  cluster: prod\n  schedule: rate(1 hour)\n  roleArn: arn:aws:iam::123456789012:role/scheduler\n  taskDefinitionFrom: {{service: {from}}}\n  launchType: FARGATE\n  networkConfiguration:\n    awsvpcConfiguration: {{subnets: [subnet-a], securityGroups: [sg-1]}}\n"
        )
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
            // A schedule kept unchanged while the service it reads changes.
            vec![("a.yaml", svc("a", "x:3")), ("j.yaml", job("nightly", "a"))],
            vec![("a.yaml", svc("a", "x:4")), ("j.yaml", job("nightly", "a"))],
            // The same service declared twice, the second time in a kept file.
            vec![
                ("a.yaml", svc("a", "x:4")),
                ("b.yaml", svc("a", "x:4")),
                ("j.yaml", job("nightly", "a")),
            ],
            vec![("b.yaml", svc("a", "x:4")), ("j.yaml", job("nightly", "a"))],
        ];
        // Services, schedules and errors each revision declares.
        let expected = [
            (2, 0, 0),
            (2, 0, 0),
            (2, 0, 0),
            (0, 0, 1),
            (1, 1, 0),
            (1, 1, 0),
            // The schedule reads a held service: an error too.
            (0, 0, 2),
            (1, 1, 0),
        ];
        for (files, expected) in revisions.iter().zip(expected) {
            let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
            let cached = load_tree_cached(files.iter().copied(), &tree, &mut cache);
            let fresh = load_tree(files.iter().copied(), &tree);
            assert_eq!(cached.services, fresh.services);
            assert_eq!(cached.errors, fresh.errors);
            assert_eq!(cached.warnings, fresh.warnings);
            assert_eq!(cached.held, fresh.held);
            assert_eq!(cached.broken_files, fresh.broken_files);
            assert_eq!(cached.scheduled, fresh.scheduled);
            assert_eq!(cached.held_scheduled, fresh.held_scheduled);
            assert_eq!(cache.len(), files.len());
            let got = (
                cached.services.len(),
                cached.scheduled.len(),
                cached.errors.len(),
            );
            assert_eq!(got, expected, "{:?}", cached.errors);
        }
    }

    #[test]
    fn an_unchanged_file_gives_back_the_same_service_not_a_copy() {
        let tree = Tree::default();
        let mut cache = ParseCache::default();
        let first = [("a.yaml", svc("a", "x:1")), ("b.yaml", svc("b", "x:1"))];
        let second = [("a.yaml", svc("a", "x:2")), ("b.yaml", svc("b", "x:1"))];
        let load = |files: &[(&str, String)], cache: &mut ParseCache| {
            load_tree_cached(files.iter().map(|(p, t)| (*p, t.as_str())), &tree, cache)
        };
        let before = load(&first, &mut cache);
        let after = load(&second, &mut cache);
        assert!(!Arc::ptr_eq(&before.services[0], &after.services[0]));
        assert!(Arc::ptr_eq(&before.services[1], &after.services[1]));
    }
}
