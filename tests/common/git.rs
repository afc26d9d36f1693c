//! A real git repository in a temporary directory, driven through the `git` command.

use std::path::Path;
use std::process::Command;

/// A git repository (`git init -b main`, local user.name/email, no signing) in a tempdir that
/// is deleted on drop. Paths given to [`GitRepo::write`] and [`GitRepo::remove`] are relative
/// to the work tree.
pub struct GitRepo {
    dir: tempfile::TempDir,
}

impl GitRepo {
    pub fn new() -> GitRepo {
        let dir = tempfile::tempdir().expect("tempdir for git repo");
        let repo = GitRepo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "ecsync tests"]);
        repo.git(&["config", "user.email", "tests@ecsync.invalid"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo.git(&["config", "tag.gpgsign", "false"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The repository's location as `--repo` takes it: the plain path.
    pub fn url(&self) -> String {
        self.path().display().to_string()
    }

    /// The same location as a `file://` URL.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.url())
    }

    /// Run `git ARGS` in the repository; panics with git's output if it fails. Returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .unwrap_or_else(|e| panic!("run git {args:?}: {e} (is git installed?)"));
        assert!(
            out.status.success(),
            "git {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Write a file (creating parent directories); not staged until [`GitRepo::commit`].
    pub fn write(&self, path: &str, contents: &str) {
        let full = self.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(&full, contents).unwrap_or_else(|e| panic!("write {}: {e}", full.display()));
    }

    /// Delete a file from the work tree; the deletion is committed by [`GitRepo::commit`].
    pub fn remove(&self, path: &str) {
        let full = self.path().join(path);
        std::fs::remove_file(&full).unwrap_or_else(|e| panic!("remove {}: {e}", full.display()));
    }

    /// Stage everything (`git add -A`) and commit; returns the new commit's 40-hex sha.
    /// Allows an empty commit, so a test can always move the branch.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    /// The sha of HEAD.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// `git checkout -b NAME`
    pub fn checkout_new_branch(&self, name: &str) {
        self.git(&["checkout", "-q", "-b", name]);
    }

    /// `git checkout NAME` (branch, tag or sha)
    pub fn checkout(&self, name: &str) {
        self.git(&["checkout", "-q", name]);
    }

    /// `git tag NAME` at HEAD
    pub fn tag(&self, name: &str) {
        self.git(&["tag", name]);
    }
}

impl Default for GitRepo {
    fn default() -> Self {
        GitRepo::new()
    }
}
