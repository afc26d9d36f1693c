//! Helpers shared by ecsync's end-to-end tests.
//!
//! Every test binary does `mod common;` and uses what it needs:
//!
//! * [`Moto`]: a private `moto_server` (the local AWS emulator, DESIGN §10) per test, on a free
//!   loopback port, killed when dropped; SDK clients and seeding helpers for the test side.
//! * [`GitRepo`]: a real git repository in a temporary directory.
//! * [`ecsync`], [`ecsync_with`] and [`Daemon`]: run the binary under test, once or as a daemon.
//! * [`http_get`], [`http_post`], [`free_port`]: a tiny HTTP/1.1 client over `TcpStream`.
//! * [`FaultProxy`]: a fault-injecting proxy between ecsync and moto (throttling, 5xx, slow
//!   answers, dropped connections), with counts of what it did.
//! * [`wait_until`], [`wait_until_async`]: polling with a deadline.
//!
//! Not every binary uses every helper, hence the blanket `dead_code` allowance.
#![allow(dead_code, unused_imports)]

mod faultproxy;
mod fixtures;
mod git;
mod http;
mod memory;
mod moto;
mod process;

use std::time::{Duration, Instant};

/// A bench's size: `$name` if set, else `real` when run with `--bench`, else the smoke-test
/// `smoke` (as under `cargo test --all-targets`).
pub fn bench_param<T: std::str::FromStr>(name: &str, benching: bool, real: T, smoke: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { real } else { smoke })
}

pub use faultproxy::{Exchange, Fault, FaultConfig, FaultProxy};
pub use fixtures::{
    MigrationStage, Run, SCHEDULER_ROLE, ecsync_daemon, ecsync_in, ecsync_text, migration_stage,
    run, scheduled_job_yaml, service_yaml, web_migrating,
};
pub use git::GitRepo;
pub use http::{
    HttpResponse, free_port, http_get, http_post, http_request, try_http_get, try_http_post,
};
pub use memory::{MemoryPeaks, vm_kib};
pub use moto::{Moto, Network};
pub use process::{
    Daemon, bench_build, bench_daemon_command, ecsync, ecsync_with, reconcile_passes,
    spawn_listening, status_json, status_role,
};

/// Poll `condition` every 100 ms until it returns true or `timeout` has passed. Returns whether
/// the condition became true; use it as `assert!(wait_until(..), "what did not happen")`.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Async variant of [`wait_until`]: polls every 200 ms without blocking the runtime.
pub async fn wait_until_async(timeout: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
