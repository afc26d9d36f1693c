//! Running the git CLI: a fixed, non-interactive environment, a timeout that
//! kills the whole process tree, and stderr scrubbed of secrets.

use std::ffi::{OsStr, OsString};
use std::io;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::repo::strip_userinfo;

/// Variables that would redirect git to another repository or change what it
/// reads; inherited from a parent git (hooks, CI) they would silently win.
const SCRUBBED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_REPLACE_REF_BASE",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
];

#[derive(Debug)]
pub(crate) enum RunError {
    NotFound,
    Io(io::Error),
    Timeout,
    /// `stderr` is already scrubbed.
    Failed {
        stderr: String,
    },
}

#[derive(Clone)]
pub(crate) struct Runner {
    pub program: OsString,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// Strings that must never leave this module in an error.
    pub secrets: Vec<String>,
}

impl Runner {
    pub async fn run(&self, args: &[&OsStr], stdin: Option<Vec<u8>>) -> Result<Vec<u8>, RunError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GCM_INTERACTIVE", "never")
            .env("LC_ALL", "C")
            .env("GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .env("GIT_LITERAL_PATHSPECS", "1")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so a timeout also kills the transport
            // helpers (git-remote-https, ssh) that git leaves behind.
            .process_group(0);
        for name in SCRUBBED_ENV {
            cmd.env_remove(name);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => RunError::NotFound,
            _ => RunError::Io(e),
        })?;
        let mut group = GroupKiller(child.id());
        let mut input = child.stdin.take();

        let work = async {
            // Written concurrently with reading stdout: cat-file answers while
            // it reads, and both pipes would fill up otherwise.
            let feed = async {
                if let (Some(pipe), Some(data)) = (input.as_mut(), stdin.as_deref()) {
                    // A broken pipe means git exited early; its status says why.
                    let _ = pipe.write_all(data).await;
                }
                drop(input.take());
            };
            let (_, out) = tokio::join!(feed, child.wait_with_output());
            out
        };
        let output = match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(out)) => {
                group.disarm();
                out
            }
            Ok(Err(e)) => return Err(RunError::Io(e)),
            Err(_) => {
                // Still unreaped here, so the group id cannot have been reused.
                group.kill();
                return Err(RunError::Timeout);
            }
        };
        if output.status.success() {
            Ok(output.stdout)
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(RunError::Failed {
                stderr: self.scrub(&stderr),
            })
        }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = strip_userinfo(text);
        for secret in &self.secrets {
            if !secret.is_empty() {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }
}

struct GroupKiller(Option<u32>);

impl GroupKiller {
    fn disarm(&mut self) {
        self.0 = None;
    }

    fn kill(&mut self) {
        if let Some(pid) = self.0.take().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) takes plain integers and touches no memory; the
            // group leader is our unreaped child, so the id is still ours.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupKiller {
    /// Covers the caller dropping `fetch()` mid-command (shutdown, an outer
    /// timeout): `kill_on_drop` alone would reach only git itself.
    fn drop(&mut self) {
        self.kill();
    }
}

/// The line of git's stderr a user should see: the first `fatal:`/`error:`
/// line, else the first line that is not a hint.
pub(crate) fn first_meaningful_line(stderr: &str) -> String {
    let lines = || stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    let pick = lines()
        .find(|l| l.starts_with("fatal:") || l.starts_with("error:"))
        .or_else(|| lines().find(|l| !l.starts_with("hint:") && !l.starts_with("warning:")))
        .unwrap_or("git gave no error message");
    let pick = pick
        .strip_prefix("fatal:")
        .or_else(|| pick.strip_prefix("error:"))
        .unwrap_or(pick);
    pick.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(program: &str) -> Runner {
        Runner {
            program: program.into(),
            env: Vec::new(),
            timeout: Duration::from_secs(10),
            secrets: vec!["hunter2".to_owned()],
        }
    }

    #[tokio::test]
    async fn missing_binary_is_reported_as_not_found() {
        let r = runner("ecsync-test-no-such-git-binary");
        let err = r.run(&[OsStr::new("--version")], None).await;
        assert!(matches!(err, Err(RunError::NotFound)), "{err:?}");
    }

    #[tokio::test]
    async fn stderr_is_scrubbed() {
        let r = runner("git");
        let err = r
            .run(
                &[
                    OsStr::new("ls-remote"),
                    OsStr::new("/nonexistent/hunter2/https://u:pw@h/"),
                ],
                None,
            )
            .await;
        match err {
            Err(RunError::Failed { stderr }) => {
                assert!(!stderr.contains("hunter2"), "{stderr}");
                assert!(!stderr.contains("pw@"), "{stderr}");
                assert!(stderr.contains("<redacted>"), "{stderr}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn large_stdin_and_stdout_do_not_deadlock() {
        // cat-file echoes each unknown name back: more than a pipe buffer in
        // both directions at once.
        let r = runner("git");
        let mut input = Vec::new();
        for i in 0..20_000 {
            input.extend_from_slice(format!("no-such-object-{i}\n").as_bytes());
        }
        let dir = tempfile::tempdir().unwrap();
        let git_dir = dir.path().join("r.git");
        r.run(
            &[
                OsStr::new("init"),
                OsStr::new("--bare"),
                OsStr::new("-q"),
                git_dir.as_os_str(),
            ],
            None,
        )
        .await
        .unwrap();
        let out = r
            .run(
                &[
                    OsStr::new("--git-dir"),
                    git_dir.as_os_str(),
                    OsStr::new("cat-file"),
                    OsStr::new("--batch-check"),
                ],
                Some(input),
            )
            .await
            .unwrap();
        assert_eq!(
            out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count(),
            20_000
        );
    }

    #[test]
    fn first_line_prefers_fatal() {
        let s = "hint: foo\nremote: counting\nfatal: '/x' does not appear to be a git repository\nfatal: Could not read from remote repository.\n";
        assert_eq!(
            first_meaningful_line(s),
            "'/x' does not appear to be a git repository"
        );
        assert_eq!(
            first_meaningful_line("\n  something odd\n"),
            "something odd"
        );
        assert_eq!(first_meaningful_line(""), "git gave no error message");
    }
}
