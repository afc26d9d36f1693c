//! Running the `ecsync` binary under test: one-shot commands and a daemon handle.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::moto::Moto;

/// A `Command` for the ecsync binary built by cargo for this test run, with no AWS settings.
pub fn ecsync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ecsync"))
}

/// [`ecsync`] pointed at `moto`: its [`Moto::env`] applied, and ambient AWS settings that could
/// leak in from the developer's shell (profile, session token, config files) removed.
pub fn ecsync_with(moto: &Moto) -> Command {
    let mut cmd = ecsync();
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_CONFIG_FILE", "/nonexistent/ecsync-tests/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/ecsync-tests/credentials",
        )
        .envs(moto.env());
    cmd
}

/// A benchmark's daemon command: [`ecsync_with`], or the same with the binary
/// `ECSYNC_BENCH_BIN` names (a release build: the harness itself need not be
/// one, and building the tests in release recompiles the whole SDK with the
/// dev-dependencies' features). Also says which build it is, for the report.
pub fn bench_daemon_command(moto: &Moto) -> (Command, String) {
    let with = ecsync_with(moto);
    let Some(bin) = std::env::var_os("ECSYNC_BENCH_BIN") else {
        return (with, bench_build());
    };
    let mut cmd = Command::new(&bin);
    for (k, v) in with.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    (cmd, bench_build())
}

/// Which binary [`bench_daemon_command`] runs, for a benchmark's report.
pub fn bench_build() -> String {
    match std::env::var_os("ECSYNC_BENCH_BIN") {
        Some(bin) => std::path::Path::new(&bin).display().to_string(),
        None => "the debug build".to_string(),
    }
}

/// A long-running child (typically `ecsync run`) with stdout and stderr captured to files.
/// Killed (SIGKILL) and reaped on drop if still running.
pub struct Daemon {
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    pub fn spawn(mut cmd: Command) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir for daemon logs");
        let stdout_path = dir.path().join("stdout.log");
        let stderr_path = dir.path().join("stderr.log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("create stdout log"))
            .stderr(File::create(&stderr_path).expect("create stderr log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Daemon {
            child,
            stdout_path,
            stderr_path,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// stdout then stderr, as captured so far.
    pub fn logs(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// Send a signal by name or number with the `kill` command, e.g. `signal("TERM")`,
    /// `signal("INT")`, `signal("KILL")`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Wait up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL and reap (what drop does); returns the exit status.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("wait for killed daemon")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Spawn `ecsync run` (with plain-text logs) and wait until it answers
/// `/healthz` on `addr`; panics with its logs if it exits or never listens.
pub fn spawn_listening(mut cmd: Command, addr: &str) -> Daemon {
    cmd.env_remove("ECSYNC_LOG")
        // Plain text in the captured logs (tracing-subscriber colours even a file).
        .env("NO_COLOR", "1");
    let mut daemon = Daemon::spawn(cmd);
    let up = super::wait_until(Duration::from_secs(20), || {
        super::try_http_get(addr, "/healthz").is_ok() || daemon.try_wait().is_some()
    });
    if let Some(status) = daemon.try_wait() {
        panic!("daemon exited early ({status}):\n{}", daemon.logs());
    }
    assert!(up, "daemon never listened on {addr}:\n{}", daemon.logs());
    daemon
}

/// `GET /status` as JSON; panics on anything else.
pub fn status_json(addr: &str) -> serde_json::Value {
    let (code, body) = super::http_get(addr, "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
}

/// The replica's leader-election role from `/status`, or `None` while it does not answer.
pub fn status_role(addr: &str) -> Option<String> {
    let (code, body) = super::try_http_get(addr, "/status").ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
    Some(v["role"].as_str()?.to_string())
}

/// Passes the daemon has finished, over every `ecsync_reconcile_total` series (any result,
/// any scope).
pub fn reconcile_passes(addr: &str) -> u64 {
    let (_, body) = super::http_get(addr, "/metrics");
    body.lines()
        .filter(|l| l.starts_with("ecsync_reconcile_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

impl Daemon {
    /// How many bytes of stderr are captured so far: an offset for [`Daemon::stderr_from`].
    pub fn stderr_len(&self) -> u64 {
        std::fs::metadata(&self.stderr_path).map_or(0, |m| m.len())
    }

    /// stderr from byte `offset` on. A bench polling the log of a daemon with thousands of
    /// services reads only what is new, so the poller does not compete with the daemon.
    pub fn stderr_from(&self, offset: u64) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.stderr_path)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }
}
