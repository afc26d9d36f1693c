//! Reading the manifests of a revision: everything the first time, then only
//! what changed.
//!
//! A push changes a few files of thousands. The source remembers what its last
//! fetch read, asks git which paths changed since (`diff-tree`) and reads only
//! those, so a fetch costs what the push changed, not what the repository
//! holds. Anything unusual (another path, a failed or very large diff, nothing
//! left under the path) falls back to listing the whole tree, which reuses
//! every blob it already has by id.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use super::tree::{Change, Selection, TreeEntry, parse_diff_tree, parse_ls_tree, select};
use super::{Blobs, GitSource, ManifestFile, SourceError};
use crate::core::manifest::overlay::KIND_OVERLAY;

/// More changed paths than this and one listing of everything is cheaper
/// than naming each on a command line.
const MAX_CHANGED_PATHS: usize = 200;

/// What the last fetch read.
pub(super) struct Last {
    revision: String,
    path: String,
    /// The selected manifests, sorted by path.
    files: Vec<Read>,
}

pub(super) struct Read {
    entry: TreeEntry,
    /// `entry.path`, checked to be UTF-8.
    pub path: String,
    pub contents: Arc<str>,
    /// It mentions `Overlay`: the whole tree must be listed for its resources.
    overlay: bool,
}

/// The manifests of one revision.
pub(super) struct Manifests {
    pub files: Vec<ManifestFile>,
    /// One of them may be an overlay.
    pub overlay: bool,
}

impl GitSource {
    /// The manifests under `path` at `revision`; `last` is what the previous
    /// fetch read, and becomes what this one did.
    pub(super) async fn read_manifests(
        &self,
        revision: &str,
        path: &str,
        last: &mut Option<Last>,
    ) -> Result<Manifests, SourceError> {
        let previous = last.take().filter(|l| l.path == path);
        let files = match previous {
            Some(l) if l.revision == revision => l.files,
            Some(l) => match self.changes(&l.revision, revision, path).await {
                Some(changes) => {
                    let files = self.apply(revision, l.files, &changes, path).await?;
                    // Only a listing can tell an emptied folder from a removed one.
                    if files.is_empty() {
                        self.read_all(revision, path, files).await?
                    } else {
                        files
                    }
                }
                None => self.read_all(revision, path, l.files).await?,
            },
            None => self.read_all(revision, path, Vec::new()).await?,
        };
        let manifests = Manifests {
            files: files
                .iter()
                .map(|r| ManifestFile {
                    path: r.path.clone(),
                    contents: r.contents.clone(),
                })
                .collect(),
            overlay: files.iter().any(|r| r.overlay),
        };
        *last = Some(Last {
            revision: revision.to_owned(),
            path: path.to_owned(),
            files,
        });
        Ok(manifests)
    }

    /// Every manifest under `path`, by one `ls-tree`; blobs `previous` holds
    /// are not read again.
    async fn read_all(
        &self,
        revision: &str,
        path: &str,
        previous: Vec<Read>,
    ) -> Result<Vec<Read>, SourceError> {
        let entries = self.ls_tree(revision, path).await?;
        let mut selected = match select(&entries, path) {
            Selection::Missing => {
                return Err(SourceError::PathNotFound {
                    repo: self.repo_display(),
                    path: path.to_owned(),
                    revision: revision.to_owned(),
                });
            }
            Selection::Files(files) => files,
        };
        selected.sort_by(|a, b| a.path.cmp(&b.path));
        self.check_limits(&selected)?;
        let mut had: Blobs = previous
            .into_iter()
            .map(|r| (r.entry.oid, r.contents))
            .collect();
        let missing: Vec<&TreeEntry> = selected
            .iter()
            .copied()
            .filter(|e| !had.contains_key(&e.oid))
            .collect();
        had.extend(self.read_contents(&missing).await?);
        selected
            .into_iter()
            .map(|e| self.read(e.clone(), &had))
            .collect()
    }

    /// `files` (the manifests at the last revision) brought to `revision` by
    /// `changes`.
    async fn apply(
        &self,
        revision: &str,
        mut files: Vec<Read>,
        changes: &[Change],
        path: &str,
    ) -> Result<Vec<Read>, SourceError> {
        let now: Vec<&[u8]> = changes
            .iter()
            .filter(|c| c.now.is_some())
            .map(|c| c.path.as_slice())
            .collect();
        let listed = self.ls_tree_paths(revision, &now).await?;
        let added: Vec<&TreeEntry> = match select(&listed, path) {
            Selection::Files(files) => files,
            Selection::Missing => Vec::new(),
        };
        self.check_limits(&added)?;
        let contents = self.read_contents(&added).await?;
        for change in changes {
            if let Ok(i) = files.binary_search_by(|r| r.entry.path.cmp(&change.path)) {
                files.remove(i);
            }
        }
        // Every changed path was removed above, so each lands in a gap.
        for entry in added {
            let read = self.read(entry.clone(), &contents)?;
            let at = files
                .binary_search_by(|r| r.entry.path.cmp(&entry.path))
                .unwrap_or_else(|gap| gap);
            files.insert(at, read);
        }
        self.check_limits(&files.iter().map(|r| &r.entry).collect::<Vec<_>>())?;
        Ok(files)
    }

    /// The paths that differ between two commits, if git can say and they
    /// are few enough to name.
    async fn changes(&self, from: &str, to: &str, path: &str) -> Option<Vec<Change>> {
        let mut args: Vec<&OsStr> = self.git_dir_args().to_vec();
        args.extend(["diff-tree", "-r", "-z", "--no-renames", from, to].map(OsStr::new));
        if !path.is_empty() {
            args.extend(["--", path].map(OsStr::new));
        }
        // A failure here (the old commit pruned after a force-push) only
        // costs the shortcut.
        let out = match self.runner.run(&args, None).await {
            Ok(out) => out,
            Err(e) => {
                tracing::debug!(repo = %self.spec.display, error = ?e, "diff-tree failed; listing the whole tree");
                return None;
            }
        };
        match parse_diff_tree(&out) {
            Ok(changes) if changes.len() <= MAX_CHANGED_PATHS => Some(changes),
            Ok(_) => None,
            Err(detail) => {
                tracing::debug!(repo = %self.spec.display, %detail, "diff-tree output not understood; listing the whole tree");
                None
            }
        }
    }

    /// `ls-tree` of the named paths only, with sizes.
    async fn ls_tree_paths(
        &self,
        revision: &str,
        paths: &[&[u8]],
    ) -> Result<Vec<TreeEntry>, SourceError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        // Pathspecs are literal: the runner sets GIT_LITERAL_PATHSPECS.
        let mut args: Vec<&OsStr> = self.git_dir_args().to_vec();
        args.extend(["ls-tree", "-z", "-l", "--full-tree", revision, "--"].map(OsStr::new));
        args.extend(paths.iter().map(|p| OsStr::from_bytes(p)));
        let out = self
            .runner
            .run(&args, None)
            .await
            .map_err(|e| self.local_error("ls-tree", e))?;
        let mut entries = parse_ls_tree(&out).map_err(|detail| SourceError::Git {
            repo: self.repo_display(),
            command: "ls-tree",
            detail,
        })?;
        // A pathspec also matches below a directory of that name.
        entries.retain(|e| paths.contains(&e.path.as_slice()));
        Ok(entries)
    }

    pub(super) fn read(&self, entry: TreeEntry, contents: &Blobs) -> Result<Read, SourceError> {
        let path = String::from_utf8(entry.path.clone()).map_err(|e| SourceError::NotUtf8 {
            repo: Some(self.repo_display()),
            path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })?;
        let contents = contents
            .get(&entry.oid)
            .cloned()
            .ok_or_else(|| SourceError::Git {
                repo: self.repo_display(),
                command: "cat-file",
                detail: format!("no contents for {path}"),
            })?;
        Ok(Read {
            overlay: contents.contains(KIND_OVERLAY),
            entry,
            path,
            contents,
        })
    }
}
