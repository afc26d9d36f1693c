//! The Git source: fetches a repository into a local bare cache with the git
//! CLI and reads the manifests at one resolved commit, without a work tree.
//!
//! Cache layout: `cache_dir/<16 hex of sha256(url without password)>` is a bare
//! repository mirroring the remote's branches and tags under their own names,
//! plus `refs/ecsync/HEAD` (the remote's HEAD at the last default-ref fetch)
//! and `refs/ecsync/pinned/<sha>` (commits asked for by sha that no branch or
//! tag reaches, kept so gc does not drop them).

mod git;
mod local;
mod repo;
mod tree;

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::Mutex;

use git::{RunError, Runner, first_meaningful_line};
use repo::{RepoSpec, Transport, base64};
use tree::{Selection, parse_batch, parse_ls_tree, select};

pub use local::load_dir;

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
    pub contents: String,
}

/// What one fetch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Full 40-hex commit sha.
    pub revision: String,
    /// Every *.yaml / *.yml under the configured path, recursively, sorted by
    /// path. Hidden files and directories below the path are skipped.
    pub files: Vec<ManifestFile>,
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

/// What `git_ref` asks for, validated before it reaches a git argument.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WantedRef {
    RemoteHead,
    /// A full name such as `refs/heads/main`.
    Full(String),
    /// A branch, else a tag, else an (abbreviated) sha.
    Short(String),
}

impl WantedRef {
    fn parse(git_ref: Option<&str>) -> Result<Self, &'static str> {
        let Some(r) = git_ref
            .map(str::trim)
            .filter(|r| !r.is_empty() && *r != "HEAD")
        else {
            return Ok(WantedRef::RemoteHead);
        };
        // Keeps option injection (`-x`) and rev-parse syntax (`main~1`,
        // `a..b`, `x@{1}`) out: a ref names exactly one thing.
        if r.starts_with('-') || r.starts_with('/') || r.ends_with('/') || r.ends_with('.') {
            return Err("not a valid ref name");
        }
        if r.contains("..") || r.contains("@{") || r.contains("//") || r.ends_with(".lock") {
            return Err("not a valid ref name");
        }
        if r.chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
        {
            return Err("not a valid ref name");
        }
        if r.starts_with("refs/") {
            Ok(WantedRef::Full(r.to_owned()))
        } else {
            Ok(WantedRef::Short(r.to_owned()))
        }
    }

    fn display(&self) -> &str {
        match self {
            WantedRef::RemoteHead => "HEAD",
            WantedRef::Full(r) | WantedRef::Short(r) => r,
        }
    }
}

fn is_hex_sha(s: &str, min: usize) -> bool {
    (min..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// "", ".", "./a/b/", "/a//b" → "", "", "a/b", "a/b".
fn normalize_path(path: Option<&str>) -> Result<String, &'static str> {
    let mut parts = Vec::new();
    for part in path.unwrap_or("").trim().split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("must not contain '..'"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

pub struct GitSource {
    cfg: GitConfig,
    spec: RepoSpec,
    runner: Runner,
    repo_dir: PathBuf,
    /// One fetch at a time per source: git locks refs, and two fetches into
    /// one cache would fail each other and trigger a needless re-clone.
    lock: Mutex<()>,
}

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
            lock: Mutex::new(()),
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

        let _guard = self.lock.lock().await;
        match self.attempt(&wanted, &path).await {
            // Only local git failures: the remote was reachable, so the cache
            // is the suspect. Wipe it and clone once from scratch.
            Err(e @ SourceError::Git { .. }) => {
                tracing::warn!(repo = %self.spec.display, cache = %self.repo_dir.display(), error = %e,
                    "git cache looks broken; re-cloning");
                self.remove_cache().await?;
                self.attempt(&wanted, &path).await
            }
            other => other,
        }
    }

    async fn attempt(&self, wanted: &WantedRef, path: &str) -> Result<Snapshot, SourceError> {
        self.ensure_cache().await?;
        self.fetch_refs(wanted).await?;
        let revision = self.resolve(wanted).await?;
        let files = self.read_files(&revision, path).await?;
        tracing::debug!(repo = %self.spec.display, %revision, files = files.len(), "git source fetched");
        Ok(Snapshot { revision, files })
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

    async fn read_files(
        &self,
        revision: &str,
        path: &str,
    ) -> Result<Vec<ManifestFile>, SourceError> {
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
        let entries = parse_ls_tree(&listing).map_err(|detail| SourceError::Git {
            repo: self.repo_display(),
            command: "ls-tree",
            detail,
        })?;
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

        let mut files = Vec::with_capacity(selected.len());
        for entry in selected {
            let path = String::from_utf8_lossy(&entry.path).into_owned();
            let blob = oids
                .binary_search(&entry.oid.as_str())
                .ok()
                .and_then(|i| blobs.get(i))
                .ok_or_else(|| SourceError::Git {
                    repo: self.repo_display(),
                    command: "cat-file",
                    detail: format!("no contents for {path}"),
                })?;
            if std::str::from_utf8(&entry.path).is_err() {
                return Err(SourceError::NotUtf8 {
                    repo: Some(self.repo_display()),
                    path,
                });
            }
            let contents = std::str::from_utf8(blob).map_err(|_| SourceError::NotUtf8 {
                repo: Some(self.repo_display()),
                path: path.clone(),
            })?;
            files.push(ManifestFile {
                path,
                contents: contents.to_owned(),
            });
        }
        Ok(files)
    }

    /// Checked on ls-tree's sizes, before any contents are read.
    fn check_limits(&self, selected: &[&tree::TreeEntry]) -> Result<(), SourceError> {
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

/// Credentials travel in the environment, never in arguments: any local user
/// can read another process's command line.
fn git_env(cfg: &GitConfig, spec: &RepoSpec) -> Vec<(String, String)> {
    let mut config: Vec<(String, String)> = Vec::new();
    if spec.transport == Transport::Http {
        let basic = match (&cfg.token, &spec.url_credentials) {
            (Some(token), _) if !token.is_empty() => Some(format!("x-access-token:{token}")),
            (_, Some((user, password))) => Some(format!("{user}:{password}")),
            _ => None,
        };
        if let (Some(basic), Some(origin)) = (basic, &spec.http_origin) {
            // Scoped to this server, so a redirect elsewhere does not carry it.
            config.push((
                format!("http.{origin}.extraHeader"),
                format!("Authorization: Basic {}", base64(basic.as_bytes())),
            ));
        }
    }

    let mut env = Vec::new();
    if !config.is_empty() {
        // Appended after any GIT_CONFIG_* the operator set, not replacing them.
        let base: usize = std::env::var("GIT_CONFIG_COUNT")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let count = base + config.len();
        for (i, (key, value)) in config.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{}", base + i), key));
            env.push((format!("GIT_CONFIG_VALUE_{}", base + i), value));
        }
        env.push(("GIT_CONFIG_COUNT".to_owned(), count.to_string()));
    }
    if let Some(key) = &cfg.ssh_key_file {
        let key = shell_quote(&key.to_string_lossy());
        env.push((
            "GIT_SSH_COMMAND".to_owned(),
            format!(
                "ssh -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o BatchMode=yes"
            ),
        ));
    }
    env
}

fn secrets(cfg: &GitConfig, spec: &RepoSpec) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(token) = cfg.token.as_ref().filter(|t| !t.is_empty()) {
        out.push(token.clone());
        out.push(base64(format!("x-access-token:{token}").as_bytes()));
    }
    if let Some((user, password)) = &spec.url_credentials {
        out.push(password.clone());
        out.push(base64(format!("{user}:{password}").as_bytes()));
    }
    out
}

/// GIT_SSH_COMMAND goes through `sh -c`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(repo: &str) -> GitConfig {
        GitConfig {
            repo: repo.to_owned(),
            git_ref: None,
            path: None,
            cache_dir: PathBuf::from("/tmp/unused"),
            token: None,
            ssh_key_file: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn wanted_ref_parsing() {
        assert_eq!(WantedRef::parse(None), Ok(WantedRef::RemoteHead));
        assert_eq!(WantedRef::parse(Some(" ")), Ok(WantedRef::RemoteHead));
        assert_eq!(WantedRef::parse(Some("HEAD")), Ok(WantedRef::RemoteHead));
        assert_eq!(
            WantedRef::parse(Some("release/1.2")),
            Ok(WantedRef::Short("release/1.2".to_owned()))
        );
        assert_eq!(
            WantedRef::parse(Some("refs/tags/v1")),
            Ok(WantedRef::Full("refs/tags/v1".to_owned()))
        );
        for bad in [
            "-oops", "main~1", "a..b", "x@{1}", "a b", "a:b", "x^{tree}", "a/", "x.lock",
        ] {
            assert!(WantedRef::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_normalization() {
        assert_eq!(normalize_path(None).as_deref(), Ok(""));
        assert_eq!(normalize_path(Some(".")).as_deref(), Ok(""));
        assert_eq!(normalize_path(Some("./a/b/")).as_deref(), Ok("a/b"));
        assert_eq!(normalize_path(Some("/a//./b")).as_deref(), Ok("a/b"));
        assert!(normalize_path(Some("a/../../etc")).is_err());
    }

    #[test]
    fn token_goes_to_a_scoped_header_and_the_scrub_list() {
        let mut c = cfg("https://git.example.com/org/repo.git");
        c.token = Some("tok123".to_owned());
        let spec = RepoSpec::parse(&c.repo);
        let env = git_env(&c, &spec);
        let header = base64(b"x-access-token:tok123");
        assert!(env.iter().any(|(k, v)| k.starts_with("GIT_CONFIG_VALUE_")
            && *v == format!("Authorization: Basic {header}")));
        assert!(env.iter().any(|(k, v)| k.starts_with("GIT_CONFIG_KEY_")
            && v == "http.https://git.example.com/.extraHeader"));
        assert!(env.iter().all(|(_, v)| !v.contains("tok123")));
        let s = secrets(&c, &spec);
        assert!(s.contains(&"tok123".to_owned()) && s.contains(&header));
    }

    #[test]
    fn no_token_header_for_ssh_and_key_is_quoted() {
        let mut c = cfg("git@github.com:org/repo.git");
        c.token = Some("tok".to_owned());
        c.ssh_key_file = Some(PathBuf::from("/keys/it's key"));
        let env = git_env(&c, &RepoSpec::parse(&c.repo));
        assert!(env.iter().all(|(k, _)| !k.starts_with("GIT_CONFIG")));
        let ssh = env
            .iter()
            .find(|(k, _)| k == "GIT_SSH_COMMAND")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            ssh,
            Some(
                r"ssh -i '/keys/it'\''s key' -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o BatchMode=yes"
            )
        );
    }

    #[test]
    fn debug_output_hides_the_token() {
        let mut c = cfg("https://u:pw@h/r.git");
        c.token = Some("tok123".to_owned());
        let s = format!("{:?}", GitSource::new(c));
        assert!(!s.contains("tok123") && !s.contains("pw"), "{s}");
    }

    #[test]
    fn error_messages_name_repo_and_file() {
        let e = SourceError::FileTooLarge {
            repo: Some("https://h/r.git".to_owned()),
            path: "m/web.yaml".to_owned(),
            size: 2,
            limit: 1,
        };
        assert_eq!(
            e.to_string(),
            "https://h/r.git: m/web.yaml: file is 2 bytes, over the limit of 1 bytes"
        );
        let e = SourceError::NotUtf8 {
            repo: None,
            path: "m/x.yml".to_owned(),
        };
        assert_eq!(e.to_string(), "m/x.yml: not valid UTF-8");
    }
}
