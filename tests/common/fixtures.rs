//! Manifests and one-shot runs of the binary, shared by the end-to-end tests.

use std::process::Command;

use super::git::GitRepo;
use super::moto::{Moto, Network};
use super::process::ecsync_with;

/// The outcome of one `ecsync` command.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn run(mut cmd: Command) -> Run {
    let out = cmd.output().expect("run ecsync");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A Fargate service manifest in the default VPC, with one container `app`.
pub fn service_yaml(
    name: &str,
    cluster: &str,
    net: &Network,
    image: &str,
    env_value: &str,
    count: i32,
) -> String {
    format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: {name}
spec:
  cluster: {cluster}
  desiredCount: {count}
  launchType: FARGATE
  taskDefinition:
    family: {name}
    cpu: 0.25 vCPU
    memory: 0.5 GB
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: app
        image: {image}
        portMappings: [{{containerPort: 8080}}]
        environment:
          - {{name: MODE, value: "{env_value}"}}
          - {{name: LOG_LEVEL, value: info}}
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [{s0}, {s1}]
      securityGroups: [{sg}]
  tags: {{team: platform}}
"#,
        s0 = net.subnets[0],
        s1 = net.subnets[1],
        sg = net.security_group,
    )
}

/// `ecsync <command> --repo <repo> --path services --cache-dir <cache> <extra>`
/// against `moto`.
pub fn ecsync_in(
    moto: &Moto,
    repo: &GitRepo,
    cache: &std::path::Path,
    command: &str,
    extra: &[&str],
) -> Run {
    let mut cmd = ecsync_with(moto);
    cmd.args([
        command,
        "--repo",
        &repo.url(),
        "--path",
        "services",
        "--cache-dir",
    ])
    .arg(cache)
    .args(extra);
    run(cmd)
}
