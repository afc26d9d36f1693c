//! AWS API calls of a no-drift `ecsync diff` over N services in one cluster,
//! against the lower bound ceil(N/100) ListServices + ceil(N/10) DescribeServices.
//!
//! Run: `cargo test --bench observe_calls -- --bench` (needs moto_server; ECSYNC_BENCH_N to change N).
//! Calls are counted by ecsync's own API interceptor and reported with `--output json`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{GitRepo, Moto, ecsync_with};

fn manifest(i: usize, net: &common::Network) -> String {
    format!(
        "apiVersion: ecsync.io/v1alpha1\nkind: Service\nmetadata: {{name: svc-{i:04}}}\nspec:\n  cluster: bench\n  desiredCount: 1\n  launchType: FARGATE\n  taskDefinition:\n    family: svc-{i:04}\n    cpu: \"256\"\n    memory: \"512\"\n    networkMode: awsvpc\n    containerDefinitions:\n      - {{name: app, image: \"app:{i}\", portMappings: [{{containerPort: 8080}}]}}\n  networkConfiguration:\n    awsvpcConfiguration: {{subnets: [{}], securityGroups: [{}]}}\n",
        net.subnets[0], net.security_group
    )
}

fn calls(
    moto: &Moto,
    repo: &GitRepo,
    cache: &std::path::Path,
    command: &str,
) -> (u64, u64, f64, String) {
    let mut cmd = ecsync_with(moto);
    cmd.args([
        command,
        "--repo",
        &repo.url(),
        "--output",
        "json",
        "--cache-dir",
    ])
    .arg(cache);
    let started = Instant::now();
    let out = cmd.output().expect("run ecsync");
    let secs = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "ecsync {command}: {e}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        v["awsCalls"]["total"].as_u64().unwrap_or(0),
        v["awsCalls"]["mutating"].as_u64().unwrap_or(0),
        secs,
        v["awsCalls"]["byOperation"].to_string(),
    )
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary
    // without it, and then a small N keeps the suite fast while still checking
    // that the bench works.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("ECSYNC_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 200 } else { 12 });
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let moto = Moto::start();
    let net = runtime.block_on(async {
        moto.create_cluster("bench").await;
        moto.default_network().await
    });
    let repo = GitRepo::new();
    for i in 0..n {
        repo.write(&format!("svc-{i:04}.yaml"), &manifest(i, &net));
    }
    repo.commit("bench services");
    let cache = tempfile::tempdir().expect("tempdir");

    let (apply_calls, apply_mutating, apply_secs, _) = calls(&moto, &repo, cache.path(), "apply");
    let (diff_calls, diff_mutating, diff_secs, diff_ops) =
        calls(&moto, &repo, cache.path(), "diff");
    let lower_bound = n.div_ceil(100) + n.div_ceil(10);
    println!("observe_calls: N = {n} services in 1 cluster");
    println!("| pass | AWS calls | mutating | lower bound | ratio | wall |");
    println!("|---|---|---|---|---|---|");
    let create_bound = 2 * n + n.div_ceil(100);
    println!(
        "| first apply (registers and creates all) | {apply_calls} | {apply_mutating} | {create_bound} | {:.2} | {apply_secs:.1}s |",
        apply_calls as f64 / create_bound as f64
    );
    println!(
        "| no-drift diff | {diff_calls} | {diff_mutating} | {lower_bound} | {:.2} | {diff_secs:.1}s |",
        diff_calls as f64 / lower_bound as f64
    );
    println!("no-drift diff calls by operation: {diff_ops}");
    assert_eq!(diff_mutating, 0, "a no-drift diff must not mutate");
    assert!(
        diff_calls as usize <= lower_bound + 1,
        "no-drift diff used {diff_calls} calls; the bound is {lower_bound} + 1 per cluster"
    );
}
