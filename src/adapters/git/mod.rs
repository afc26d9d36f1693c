//! The Git source: fetches a repository into a local bare cache with the git
//! CLI and reads the manifests at one resolved commit, without a work tree.
//!
//! Cache layout: `cache_dir/<16 hex of sha256(url without password)>` is a bare
//! repository mirroring the remote's branches and tags under their own names,
//! plus `refs/ecsync/HEAD` (the remote's HEAD at the last default-ref fetch)
//! and `refs/ecsync/pinned/<sha>` (commits asked for by sha that no branch or
//! tag reaches, kept so gc does not drop them).

mod auth;
mod local;
mod manifests;
mod refs;
mod repo;
mod runner;
mod tree;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use auth::{git_env, secrets};
use refs::{WantedRef, is_hex_sha, normalize_path};
use repo::RepoSpec;
use runner::{RunError, Runner, first_meaningful_line};
use tree::{TreeEntry, parse_batch, parse_ls_tree};

use crate::core::manifest::overlay;

pub use local::{load_dir, load_dir_tree};

/// Largest manifest file accepted.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Most manifest files accepted in one snapshot.
pub const MAX_MANIFEST_FILES: usize = 10_000;
/// Largest sum of manifest sizes accepted in one snapshot. Without it the two
/// limits above still allow 10 GiB, which one 1 MiB blob listed 10,000 times
/// in a tiny repository would cost in memory.
pub const MAX_MANIFEST_TOTAL_BYTES: u64 = 64 << 20;

/// Where the remote's HEAD is fetched to when no ref is configured.
const REMOTE_HEAD_REF: &str = "refs/ecsync/HEAD";

/// One manifest file read from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Relative to the repository root, '/'-separated, e.g. "manifests/web.yaml".
    pub path: String,
    /// Shared with the source's memory of the blob (see [`GitSource::fetch`]).
    pub contents: Arc<str>,
}

/// What one fetch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Full 40-hex commit sha.
    pub revision: String,
    /// Every *.yaml / *.yml under the configured path, recursively, sorted by
    /// path. Hidden files and directories below the path are skipped.
    pub files: Vec<ManifestFile>,
    /// What overlays among `files` reach, anywhere in the repository.
    pub tree: crate::core::manifest::overlay::Tree,
    /// The commit's subject and time, for people (`None` if git could not say).
    pub commit: Option<CommitInfo>,
}

/// What a person recognises a revision by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The first line of the commit message.
    pub subject: String,
    /// The committer time.
    pub time: std::time::SystemTime,
}

impl CommitInfo {
    /// `git log --format=%ct%x00%s` output: seconds since the epoch, NUL, subject.
    fn parse(out: &str) -> Option<CommitInfo> {
        let (secs, subject) = out.trim_end_matches('\n').split_once('\0')?;
        let secs: u64 = secs.trim().parse().ok()?;
        Some(CommitInfo {
            subject: subject.to_owned(),
            time: std::time::UNIX_EPOCH + Duration::from_secs(secs),
        })
    }
}

#[derive(Clone)]
pub struct GitConfig {
    /// Local path (absolute or relative), file://, https://, ssh:// or
    /// scp-style git@host:org/repo.
    pub repo: String,
    /// Branch, tag, full ref name or commit sha (full or abbreviated); None =
    /// the remote's HEAD.
    pub git_ref: Option<String>,
    /// Folder inside the repo; None or "" or "." = the root.
    pub path: Option<String>,
    /// Where cached clones live.
    pub cache_dir: PathBuf,
    /// http(s) token, sent as a Basic auth header.
    pub token: Option<String>,
    pub ssh_key_file: Option<PathBuf>,
    /// Per git command.
    pub timeout: Duration,
}

impl std::fmt::Debug for GitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitConfig")
            .field("repo", &RepoSpec::parse(&self.repo).display)
            .field("git_ref", &self.git_ref)
            .field("path", &self.path)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ssh_key_file", &self.ssh_key_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("git not found on PATH: install git")]
    GitNotFound,
    #[error("{repo}: repository cannot be reached: {detail}")]
    Unreachable { repo: String, detail: String },
    #[error("{repo}: {}", describe_missing_ref(git_ref))]
    RefNotFound { repo: String, git_ref: String },
    #[error("{repo}: invalid ref {git_ref:?}: {reason}")]
    InvalidRef {
        repo: String,
        git_ref: String,
        reason: &'static str,
    },
    #[error("{repo}: invalid path {path:?}: {reason}")]
    InvalidPath {
        repo: String,
        path: String,
        reason: &'static str,
    },
    #[error("{repo}: path {path:?} does not exist at revision {revision}")]
    PathNotFound {
        repo: String,
        path: String,
        revision: String,
    },
    #[error(
        "{}{path}: file is {size} bytes, over the limit of {limit} bytes",
        in_repo(repo)
    )]
    FileTooLarge {
        repo: Option<String>,
        path: String,
        size: u64,
        limit: u64,
    },
    #[error("{}{count} manifest files, over the limit of {limit}", in_repo(repo))]
    TooManyFiles {
        repo: Option<String>,
        count: usize,
        limit: usize,
    },
    #[error("{}manifest files total more than {limit} bytes", in_repo(repo))]
    TotalTooLarge { repo: Option<String>, limit: u64 },
    #[error("{}{path}: not valid UTF-8", in_repo(repo))]
    NotUtf8 { repo: Option<String>, path: String },
    #[error("{path}: not a manifest file (expected .yaml or .yml)")]
    NotManifest { path: String },
    #[error("{repo}: git {command} timed out after {timeout:?}")]
    Timeout {
        repo: String,
        command: &'static str,
        timeout: Duration,
    },
    /// A local git failure (cache, disk); the remote answered.
    #[error("{repo}: git {command} failed: {detail}")]
    Git {
        repo: String,
        command: &'static str,
        detail: String,
    },
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

fn in_repo(repo: &Option<String>) -> String {
    repo.as_ref().map(|r| format!("{r}: ")).unwrap_or_default()
}

fn describe_missing_ref(git_ref: &str) -> String {
    if git_ref == "HEAD" {
        "the remote has no HEAD commit (is the repository empty?)".to_owned()
    } else {
        format!("ref {git_ref:?} not found (no such branch, tag or commit)")
    }
}

pub struct GitSource {
    cfg: GitConfig,
    spec: RepoSpec,
    runner: Runner,
    repo_dir: PathBuf,
    /// One fetch at a time per source: git locks refs, and two fetches into
    /// one cache would fail each other and trigger a needless re-clone. It
    /// guards what the last fetch read, too.
    lock: Mutex<Option<manifests::Last>>,
}

/// File contents by blob id.
type Blobs = HashMap<String, Arc<str>>;

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSource")
            .field("cfg", &self.cfg)
            .field("repo_dir", &self.repo_dir)
            .finish_non_exhaustive()
    }
}

impl GitSource {
    pub fn new(cfg: GitConfig) -> Self {
        let spec = RepoSpec::parse(&cfg.repo);
        let repo_dir = cfg.cache_dir.join(spec.cache_key());
        let runner = Runner {
            program: OsString::from("git"),
            env: git_env(&cfg, &spec),
            timeout: cfg.timeout,
            secrets: secrets(&cfg, &spec),
        };
        GitSource {
            cfg,
            spec,
            runner,
            repo_dir,
            lock: Mutex::new(None),
        }
    }

    /// The repo URL with any userinfo/password removed, for logs.
    pub fn repo_display(&self) -> String {
        self.spec.display.clone()
    }

    /// Fetch incrementally and read the manifests at the resolved revision.
    pub async fn fetch(&self) -> Result<Snapshot, SourceError> {
        let wanted = WantedRef::parse(self.cfg.git_ref.as_deref()).map_err(|reason| {
            SourceError::InvalidRef {
                repo: self.repo_display(),
                git_ref: self.cfg.git_ref.clone().unwrap_or_default(),
                reason,
            }
        })?;
        let path = normalize_path(self.cfg.path.as_deref()).map_err(|reason| {
            SourceError::InvalidPath {
                repo: self.repo_display(),
                path: self.cfg.path.clone().unwrap_or_default(),
                reason,
            }
        })?;

        let mut last = self.lock.lock().await;
        match self.attempt(&wanted, &path, &mut last).await {
            // Only local git failures: the remote was reachable, so the cache
            // is the suspect. Wipe it and clone once from scratch.
            Err(e @ SourceError::Git { .. }) => {
                tracing::warn!(repo = %self.spec.display, cache = %self.repo_dir.display(), error = %e,
                    "git cache looks broken; re-cloning");
                self.remove_cache().await?;
                self.attempt(&wanted, &path, &mut last).await
            }
            other => other,
        }
    }

    async fn attempt(
        &self,
        wanted: &WantedRef,
        path: &str,
        last: &mut Option<manifests::Last>,
    ) -> Result<Snapshot, SourceError> {
        self.ensure_cache().await?;
        self.fetch_refs(wanted).await?;
        let revision = self.resolve(wanted).await?;
        let manifests = self.read_manifests(&revision, path, last).await?;
        let files = manifests.files;
        let tree = if manifests.overlay {
            self.read_overlay_resources(&revision, &files).await?
        } else {
            overlay::Tree::default()
        };
        let commit = self.commit_info(&revision).await;
        tracing::debug!(repo = %self.spec.display, %revision, files = files.len(), "git source fetched");
        Ok(Snapshot {
            revision,
            files,
            tree,
            commit,
        })
    }

    /// Subject and time of `revision`, for the dashboard. Never fails the
    /// fetch: the manifests are what matters, this is only a label.
    async fn commit_info(&self, revision: &str) -> Option<CommitInfo> {
        let mut args: Vec<&OsStr> = self.git_dir_args().to_vec();
        args.extend(["log", "-1", "--format=%ct%x00%s", revision, "--"].map(OsStr::new));
        match self.runner.run(&args, None).await {
            Ok(out) => CommitInfo::parse(&String::from_utf8_lossy(&out)),
            Err(e) => {
                tracing::debug!(repo = %self.spec.display, error = ?e, "reading the commit subject failed");
                None
            }
        }
    }

    async fn ensure_cache(&self) -> Result<(), SourceError> {
        if tokio::fs::metadata(self.repo_dir.join("HEAD"))
            .await
            .is_ok_and(|m| m.is_file())
        {
            return Ok(());
        }
        if tokio::fs::try_exists(&self.repo_dir).await.unwrap_or(false) {
            // A half-created directory from an interrupted first run.
            self.remove_cache().await?;
        }
        tokio::fs::create_dir_all(&self.cfg.cache_dir)
            .await
            .map_err(|error| SourceError::Io {
                path: self.cfg.cache_dir.clone(),
                error,
            })?;
        let args = [
            OsStr::new("init"),
            OsStr::new("--bare"),
            OsStr::new("--quiet"),
            self.repo_dir.as_os_str(),
        ];
        self.runner
            .run(&args, None)
            .await
            .map_err(|e| self.local_error("init", e))?;
        Ok(())
    }

    async fn remove_cache(&self) -> Result<(), SourceError> {
        match tokio::fs::remove_dir_all(&self.repo_dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(SourceError::Io {
                path: self.repo_dir.clone(),
                error,
            }),
        }
    }

    fn git_dir_args(&self) -> [&OsStr; 2] {
        [OsStr::new("--git-dir"), self.repo_dir.as_os_str()]
    }

    async fn fetch_refs(&self, wanted: &WantedRef) -> Result<(), SourceError> {
        let mut args: Vec<&OsStr> = self.git_dir_args().to_vec();
        args.extend(
            [
                "fetch",
                "--quiet",
                "--prune",
                "--force",
                "--no-tags",
                "--no-recurse-submodules",
                &self.spec.fetch_url,
                // Forced, so a force-pushed branch is followed.
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ]
            .map(OsStr::new),
        );
        // Fetching HEAD in the same command (rather than asking ls-remote
        // first) reads the default branch and its commit in one consistent
        // round trip, and works for every transport.
        let head_spec = format!("+HEAD:{REMOTE_HEAD_REF}");
        if *wanted == WantedRef::RemoteHead {
            args.push(OsStr::new(&head_spec));
        }
        match self.runner.run(&args, None).await {
            Ok(_) => Ok(()),
            Err(RunError::Failed { stderr })
                if stderr.contains("couldn't find remote ref HEAD") =>
            {
                Err(SourceError::RefNotFound {
                    repo: self.repo_display(),
                    git_ref: "HEAD".to_owned(),
                })
            }
            Err(RunError::Failed { stderr }) => Err(self.classify_fetch_failure(&stderr).await),
            Err(e) => Err(self.local_error("fetch", e)),
        }
    }

    /// The branch the remote's HEAD points at (`main` for `refs/heads/main`),
    /// by `git ls-remote --symref`; `Ok(None)` when HEAD is detached or absent.
    pub async fn default_branch(&self) -> Result<Option<String>, SourceError> {
        let args = ["ls-remote", "--symref", &self.spec.fetch_url, "HEAD"].map(OsStr::new);
        let out = self
            .runner
            .run(&args, None)
            .await
            .map_err(|e| self.local_error("ls-remote", e))?;
        Ok(symref_branch(&String::from_utf8_lossy(&out)))
    }

    /// Tells "the remote is unreachable" from "our cache is broken" by asking
    /// the remote directly, without touching the cache: matching git's
    /// messages would break with every new transport error text.
    async fn classify_fetch_failure(&self, fetch_stderr: &str) -> SourceError {
        let args = ["ls-remote", "--quiet", &self.spec.fetch_url, "HEAD"].map(OsStr::new);
        match self.runner.run(&args, None).await {
            Ok(_) => SourceError::Git {
                repo: self.repo_display(),
                command: "fetch",
                detail: first_meaningful_line(fetch_stderr),
            },
            Err(RunError::Failed { .. }) => SourceError::Unreachable {
                repo: self.repo_display(),
                detail: first_meaningful_line(fetch_stderr),
            },
            Err(e) => self.local_error("ls-remote", e),
        }
    }

    async fn resolve(&self, wanted: &WantedRef) -> Result<String, SourceError> {
        let candidates = match wanted {
            WantedRef::RemoteHead => vec![REMOTE_HEAD_REF.to_owned()],
            WantedRef::Full(r) => vec![r.clone()],
            WantedRef::Short(r) => {
                let mut c = vec![format!("refs/heads/{r}"), format!("refs/tags/{r}")];
                if is_hex_sha(r, 4) {
                    c.push(r.clone());
                }
                c
            }
        };
        for candidate in &candidates {
            if let Some(sha) = self.rev_parse_commit(candidate).await? {
                return Ok(sha);
            }
        }
        // A commit on no branch or tag (a deleted branch, a pull request) can
        // still be fetched by its full sha where the server allows it.
        if let WantedRef::Short(r) = wanted
            && r.len() == 40
            && is_hex_sha(r, 40)
            && self.fetch_pinned(r).await
            && let Some(sha) = self.rev_parse_commit(r).await?
        {
            return Ok(sha);
        }
        Err(SourceError::RefNotFound {
            repo: self.repo_display(),
            git_ref: wanted.display().to_owned(),
        })
    }

    async fn rev_parse_commit(&self, name: &str) -> Result<Option<String>, SourceError> {
        let spec = format!("{name}^{{commit}}");
        let mut args: Vec<&OsStr> = self.git_dir_args().to_vec();
        args.extend(["rev-parse", "--verify", "--quiet", &spec].map(OsStr::new));
        match self.runner.run(&args, None).await {
            Ok(out) => {
                let sha = String::from_utf8_lossy(&out).trim().to_owned();
                if is_hex_sha(&sha, 40) {
                    Ok(Some(sha))
                } else {
                    Err(SourceError::Git {
                        repo: self.repo_display(),
                        command: "rev-parse",
                        detail: format!("unexpected output {sha:?}"),
                    })
                }
            }
            Err(RunError::Failed { .. }) => Ok(None),
            Err(e) => Err(self.local_error("rev-parse", e)),
        }
    }

    /// Kept under a ref so that gc does not drop it before the next fetch.
    async fn fetch_pinned(&self, sha: &str) -> bool {
        let refspec = format!("+{sha}:refs/ecsync/pinned/{sha}");
        let mut args: Vec<&OsStr> = self.git_dir_args().to_vec();
        args.extend(
            [
                "fetch",
                "--quiet",
                "--no-tags",
                &self.spec.fetch_url,
                &refspec,
            ]
            .map(OsStr::new),
        );
        match self.runner.run(&args, None).await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(repo = %self.spec.display, error = ?e, "fetching a commit by sha failed");
                false
            }
        }
    }

    async fn ls_tree(&self, revision: &str, path: &str) -> Result<Vec<TreeEntry>, SourceError> {
        let mut args: Vec<&OsStr> = self.git_dir_args().to_vec();
        args.extend(["ls-tree", "-r", "-z", "-l", "--full-tree", revision].map(OsStr::new));
        if !path.is_empty() {
            args.extend(["--", path].map(OsStr::new));
        }
        let listing = self
            .runner
            .run(&args, None)
            .await
            .map_err(|e| self.local_error("ls-tree", e))?;
        parse_ls_tree(&listing).map_err(|detail| SourceError::Git {
            repo: self.repo_display(),
            command: "ls-tree",
            detail,
        })
    }

    /// The files overlays among `files` name as resources, read in rounds
    /// (an overlay may build on another), and what each resource resolved to.
    /// Nothing is listed unless an overlay is there.
    async fn read_overlay_resources(
        &self,
        revision: &str,
        files: &[ManifestFile],
    ) -> Result<overlay::Tree, SourceError> {
        let mut tree = overlay::Tree::default();
        let entries = self.ls_tree(revision, "").await?;
        let listing = tree::listing(&entries);
        let by_path: BTreeMap<String, &TreeEntry> = entries
            .iter()
            .map(|e| (String::from_utf8_lossy(&e.path).into_owned(), e))
            .collect();
        tree.files = files
            .iter()
            .map(|f| (f.path.clone(), f.contents.to_string()))
            .collect();
        let mut pending: Vec<String> = tree.files.keys().cloned().collect();
        while !pending.is_empty() {
            let mut wanted: BTreeSet<String> = BTreeSet::new();
            for file in std::mem::take(&mut pending) {
                for r in overlay::references(&tree.files[&file]) {
                    let key = (file.clone(), r);
                    if tree.resolved.contains_key(&key) {
                        continue;
                    }
                    let found = listing.resolve(&key.0, &key.1);
                    if let overlay::Resolved::Files(paths) = &found {
                        wanted.extend(
                            paths
                                .iter()
                                .filter(|p| !tree.files.contains_key(*p))
                                .cloned(),
                        );
                    }
                    tree.resolved.insert(key, found);
                }
            }
            let new: Vec<&TreeEntry> = wanted
                .iter()
                .filter_map(|p| by_path.get(p).copied())
                .collect();
            if tree.files.len() + new.len() > MAX_MANIFEST_FILES {
                return Err(SourceError::TooManyFiles {
                    repo: Some(self.repo_display()),
                    count: tree.files.len() + new.len(),
                    limit: MAX_MANIFEST_FILES,
                });
            }
            self.check_limits(&new)?;
            for file in self.read_blobs(&new).await? {
                pending.push(file.path.clone());
                tree.files.insert(file.path, file.contents.to_string());
            }
        }
        Ok(tree)
    }

    async fn read_blobs(&self, selected: &[&TreeEntry]) -> Result<Vec<ManifestFile>, SourceError> {
        let blobs = self.read_contents(selected).await?;
        selected
            .iter()
            .map(|e| {
                let read = self.read((*e).clone(), &blobs)?;
                Ok(ManifestFile {
                    path: read.path,
                    contents: read.contents,
                })
            })
            .collect()
    }

    /// The contents of `selected`'s blobs, which must be UTF-8, by blob id.
    async fn read_contents(&self, selected: &[&TreeEntry]) -> Result<Blobs, SourceError> {
        if selected.is_empty() {
            return Ok(Blobs::new());
        }
        let mut oids: Vec<&str> = selected.iter().map(|e| e.oid.as_str()).collect();
        oids.sort_unstable();
        // Identical files share one blob: ask for it once.
        oids.dedup();
        let mut request = String::with_capacity(oids.len() * 41);
        for oid in &oids {
            request.push_str(oid);
            request.push('\n');
        }
        let mut args: Vec<&OsStr> = self.git_dir_args().to_vec();
        args.extend(["cat-file", "--batch"].map(OsStr::new));
        let out = self
            .runner
            .run(&args, Some(request.into_bytes()))
            .await
            .map_err(|e| self.local_error("cat-file", e))?;
        let blobs = parse_batch(&out, &oids).map_err(|detail| SourceError::Git {
            repo: self.repo_display(),
            command: "cat-file",
            detail,
        })?;

        let mut contents = Blobs::with_capacity(oids.len());
        for entry in selected {
            if contents.contains_key(&entry.oid) {
                continue;
            }
            let path = || String::from_utf8_lossy(&entry.path).into_owned();
            let blob = oids
                .binary_search(&entry.oid.as_str())
                .ok()
                .and_then(|i| blobs.get(i))
                .ok_or_else(|| SourceError::Git {
                    repo: self.repo_display(),
                    command: "cat-file",
                    detail: format!("no contents for {}", path()),
                })?;
            let text = std::str::from_utf8(blob).map_err(|_| SourceError::NotUtf8 {
                repo: Some(self.repo_display()),
                path: path(),
            })?;
            contents.insert(entry.oid.clone(), Arc::from(text));
        }
        Ok(contents)
    }

    /// Checked on ls-tree's sizes, before any contents are read.
    fn check_limits(&self, selected: &[&TreeEntry]) -> Result<(), SourceError> {
        if selected.len() > MAX_MANIFEST_FILES {
            return Err(SourceError::TooManyFiles {
                repo: Some(self.repo_display()),
                count: selected.len(),
                limit: MAX_MANIFEST_FILES,
            });
        }
        let mut total: u64 = 0;
        for entry in selected {
            let size = entry.size.unwrap_or(u64::MAX);
            if size > MAX_MANIFEST_BYTES {
                return Err(SourceError::FileTooLarge {
                    repo: Some(self.repo_display()),
                    path: String::from_utf8_lossy(&entry.path).into_owned(),
                    size,
                    limit: MAX_MANIFEST_BYTES,
                });
            }
            total = total.saturating_add(size);
        }
        if total > MAX_MANIFEST_TOTAL_BYTES {
            return Err(SourceError::TotalTooLarge {
                repo: Some(self.repo_display()),
                limit: MAX_MANIFEST_TOTAL_BYTES,
            });
        }
        Ok(())
    }

    fn local_error(&self, command: &'static str, e: RunError) -> SourceError {
        match e {
            RunError::NotFound => SourceError::GitNotFound,
            RunError::Timeout => SourceError::Timeout {
                repo: self.repo_display(),
                command,
                timeout: self.cfg.timeout,
            },
            RunError::Io(error) => SourceError::Git {
                repo: self.repo_display(),
                command,
                detail: self.runner.scrub(&error.to_string()),
            },
            RunError::Failed { stderr } => SourceError::Git {
                repo: self.repo_display(),
                command,
                detail: first_meaningful_line(&stderr),
            },
        }
    }
}

/// `ref: refs/heads/main<TAB>HEAD` → `main`.
fn symref_branch(ls_remote: &str) -> Option<String> {
    ls_remote.lines().find_map(|l| {
        let (target, name) = l.strip_prefix("ref: ")?.split_once('\t')?;
        (name.trim() == "HEAD")
            .then(|| target.strip_prefix("refs/heads/"))
            .flatten()
            .map(str::to_owned)
    })
}

#[cfg(test)]
mod tests;
