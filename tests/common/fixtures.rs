//! Manifests and one-shot runs of the binary, shared by the end-to-end tests.

use std::process::Command;

use super::git::GitRepo;
use super::moto::{Moto, Network};
use super::process::{Daemon, ecsync_with};

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

/// The role the scheduled-task fixtures name (moto does not check it).
pub const SCHEDULER_ROLE: &str = "arn:aws:iam::123456789012:role/ecsync-scheduler";

/// A Fargate ScheduledTask manifest with its own task definition (container `job`, which
/// echoes its name), in the default VPC.
pub fn scheduled_job_yaml(name: &str, cluster: &str, net: &Network, schedule: &str) -> String {
    format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: ScheduledTask
metadata:
  name: {name}
spec:
  cluster: {cluster}
  schedule: {schedule}
  roleArn: {SCHEDULER_ROLE}
  launchType: FARGATE
  taskDefinition:
    family: {name}
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: job
        image: busybox:1.36
        command: [echo, {name}]
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [{s0}]
      securityGroups: [{sg}]
"#,
        s0 = net.subnets[0],
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

/// `ecsync <args> --repo <repo> --path services --cache-dir <cache>` against `moto`: its exit
/// code, and its stdout and stderr in one text for assertions and their messages.
pub fn ecsync_text(
    moto: &Moto,
    repo: &GitRepo,
    cache: &std::path::Path,
    args: &[&str],
) -> (i32, String) {
    let mut cmd = ecsync_with(moto);
    cmd.args(args)
        .args(["--repo", &repo.url(), "--path", "services"])
        .arg("--cache-dir")
        .arg(cache);
    let out = cmd.output().expect("run ecsync");
    let text = format!(
        "{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `ecsync run` on `repo` every second, serving `listen`, logging at info.
pub fn ecsync_daemon(moto: &Moto, repo: &GitRepo, cache: &std::path::Path, listen: &str) -> Daemon {
    let mut cmd = ecsync_with(moto);
    cmd.args(["run", "--interval", "1s", "--listen", listen])
        .args(["--repo", &repo.url(), "--path", "services"])
        .arg("--cache-dir")
        .arg(cache)
        .env("RUST_LOG", "info");
    Daemon::spawn(cmd)
}

/// Where the migration tests start: a moto whose ECS services reach two running tasks, the
/// cluster `prod`, the default network, and the target groups `web-ec2` (instances: the
/// legacy fleet's) and `web-ecs` (IP: the ECS service's).
pub struct MigrationStage {
    pub moto: Moto,
    pub net: Network,
    pub legacy_tg: String,
    pub ecs_tg: String,
}

pub async fn migration_stage() -> MigrationStage {
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    moto.create_cluster("prod").await;
    let net = moto.default_network().await;
    let legacy_tg = moto.create_target_group("web-ec2", "instance", 80).await;
    let ecs_tg = moto.create_target_group("web-ecs", "ip", 8080).await;
    MigrationStage {
        moto,
        net,
        legacy_tg,
        ecs_tg,
    }
}

/// `web` in `prod` as the migration tests declare it (Fargate, two tasks of `image` behind
/// `web-ecs` on port 8080), up to and including `migration:`; the caller appends the
/// migration's fields, indented by four spaces.
pub fn web_migrating(net: &Network, image: &str) -> String {
    format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: web
spec:
  cluster: prod
  desiredCount: 2
  launchType: FARGATE
  taskDefinition:
    family: web
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: app
        image: {image}
        portMappings: [{{containerPort: 8080}}]
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [{s0}, {s1}]
      securityGroups: [{sg}]
  loadBalancers:
    - {{targetGroup: web-ecs, containerName: app, containerPort: 8080}}
  migration:
"#,
        s0 = net.subnets[0],
        s1 = net.subnets[1],
        sg = net.security_group,
    )
}
