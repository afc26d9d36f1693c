//! End to end: a legacy fleet kept by an Auto Scaling group
//! (`migration.from.autoScalingGroup`, issue 13) is suspended, detached,
//! scaled to zero and deleted after the migration completes, through
//! `kill -9` of the daemon, against a private moto per test.
//!
//! moto, checked: `UpdateAutoScalingGroup` to desired 0 terminates the
//! unprotected instances at once (AWS takes minutes), detaching a target group
//! deregisters its targets at once (AWS drains them), and
//! `DeleteAutoScalingGroup` deletes a group that still has instances (AWS
//! refuses without `ForceDelete`; see the mock test in `adapters::aws::autoscaling`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};
use common::{
    Daemon, GitRepo, MigrationStage, Moto, Network, ecsync_daemon, ecsync_text, free_port,
    migration_stage, wait_until_async, web_migrating,
};
use serde_json::Value;

const GROUP: &str = "web-asg";
const OTHER_GROUP: &str = "api-asg";

struct Fleet {
    moto: Moto,
    repo: GitRepo,
    cache: tempfile::TempDir,
    ecs_tg: String,
}

async fn launch_template(moto: &Moto, name: &str) {
    moto.ec2()
        .create_launch_template()
        .launch_template_name(name)
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
}

async fn group(moto: &Moto, net: &Network, name: &str, template: &str, target_group: &str) {
    moto.autoscaling()
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name(template)
                .build(),
        )
        .min_size(2)
        .max_size(4)
        .desired_capacity(2)
        .vpc_zone_identifier(net.subnets[0].clone())
        .target_group_arns(target_group)
        .send()
        .await
        .expect("CreateAutoScalingGroup");
}

/// `web-asg` (2 instances) behind `web-ec2` on an ALB, `api-asg` behind its own
/// group that no manifest names, and `web` migrating off `web-asg` in one step.
async fn fleet(action: &str) -> Fleet {
    fleet_with(action, None).await
}

/// With `cleanup` (the manifest's list), `api-asg` launches from its own
/// template, so `web-lt` is the fleet's alone.
async fn fleet_with(action: &str, cleanup: Option<&str>) -> Fleet {
    let MigrationStage {
        moto,
        net,
        legacy_tg,
        ecs_tg,
    } = migration_stage().await;
    let api_tg = moto.create_target_group("api-ec2", "instance", 80).await;
    launch_template(&moto, "web-lt").await;
    let other_template = match cleanup {
        Some(_) => {
            launch_template(&moto, "api-lt").await;
            "api-lt"
        }
        None => "web-lt",
    };
    group(&moto, &net, GROUP, "web-lt", &legacy_tg).await;
    group(&moto, &net, OTHER_GROUP, other_template, &api_tg).await;
    moto.create_alb_with_listener("web-alb", &net.subnets, &net.security_group, &legacy_tg)
        .await;
    let repo = GitRepo::new();
    let mut text = manifest(&net, action);
    if let Some(items) = cleanup {
        text.push_str(&format!("      cleanup: {items}\n"));
    }
    repo.write("services/web.yaml", &text);
    repo.commit("web migrates off web-asg");
    Fleet {
        moto,
        repo,
        cache: tempfile::tempdir().unwrap(),
        ecs_tg,
    }
}

fn manifest(net: &Network, action: &str) -> String {
    format!(
        "{}    listener: {{loadBalancer: web-alb, port: 80}}
    from:
      targetGroup: web-ec2
      autoScalingGroup: {GROUP}
    steps: [100]
    stepInterval: 1s
    decommission:
      action: {action}
      after: 2s
",
        web_migrating(net, "nginx:1.27")
    )
}

/// What the test reads of a group.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    min: i32,
    desired: i32,
    instances: usize,
    suspended: Vec<String>,
    target_groups: usize,
    tags: BTreeMap<String, String>,
}

impl Fleet {
    fn run(&self, args: &[&str]) -> (i32, String) {
        ecsync_text(&self.moto, &self.repo, self.cache.path(), args)
    }

    fn daemon(&self, listen: &str) -> Daemon {
        ecsync_daemon(&self.moto, &self.repo, self.cache.path(), listen)
    }

    async fn ecs_tasks_healthy(&self) {
        self.moto
            .register_ip_targets(&self.ecs_tg, &["10.0.1.10", "10.0.2.10"])
            .await;
    }

    /// `None` once the group is gone.
    async fn group(&self, name: &str) -> Option<Seen> {
        let out = self
            .moto
            .autoscaling()
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .expect("DescribeAutoScalingGroups");
        let g = out.auto_scaling_groups().first()?;
        let mut suspended: Vec<String> = g
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name().map(str::to_string))
            .collect();
        suspended.sort();
        Some(Seen {
            min: g.min_size().unwrap_or(-1),
            desired: g.desired_capacity().unwrap_or(-1),
            instances: g.instances().len(),
            suspended,
            target_groups: g.target_group_arns().len(),
            tags: g
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect(),
        })
    }
}

fn groups_of(addr: &str) -> Option<Vec<Value>> {
    let (code, body) = common::try_http_get(addr, "/status").ok()?;
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["decommissionGroups"].as_array().cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_is_suspended_detached_scaled_in_and_deleted_through_kill_9() {
    let f = fleet("terminate").await;
    let untouched = f.group(GROUP).await.expect("web-asg");
    assert_eq!((untouched.desired, untouched.instances), (2, 2));
    let other_before = f.group(OTHER_GROUP).await.expect("api-asg");

    // The migration cannot complete while ECS has no healthy target: the
    // group is not touched at all, however many passes run.
    for _ in 0..2 {
        let (code, out) = f.run(&["apply"]);
        assert_eq!(code, 0, "{out}");
    }
    assert_eq!(f.group(GROUP).await, Some(untouched.clone()));

    f.ecs_tasks_healthy().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut d = f.daemon(&addr);
    let mut logs = String::new();

    // Step 1 and 2: clock, suspended processes, detached.
    let started = wait_until_async(Duration::from_secs(60), async || {
        f.group(GROUP)
            .await
            .is_some_and(|g| g.tags.contains_key("ecsync.io/decommission"))
    })
    .await;
    assert!(started, "{:?}\n{}", f.group(GROUP).await, d.logs());
    d.kill();
    logs.push_str(&d.logs());
    d = f.daemon(&addr);
    let detached = wait_until_async(Duration::from_secs(30), async || {
        f.group(GROUP).await.is_some_and(|g| {
            g.target_groups == 0
                && g.suspended == ["AZRebalance", "HealthCheck", "Launch", "ReplaceUnhealthy"]
        })
    })
    .await;
    assert!(detached, "{:?}\n{}", f.group(GROUP).await, d.logs());

    // Step 3: min = desired = 0. kill -9 as soon as it shows.
    let scaled = wait_until_async(Duration::from_secs(30), async || {
        f.group(GROUP).await.is_none_or(|g| g.desired == 0)
    })
    .await;
    assert!(scaled, "{:?}\n{}", f.group(GROUP).await, d.logs());
    d.kill();
    logs.push_str(&d.logs());
    if let Some(g) = f.group(GROUP).await {
        assert_eq!(g.min, 0, "{g:?}");
    }

    // Step 4: a restarted daemon deletes the empty group, and /status says so.
    d = f.daemon(&addr);
    let gone = wait_until_async(Duration::from_secs(30), async || {
        f.group(GROUP).await.is_none()
    })
    .await;
    assert!(gone, "{:?}\n{}", f.group(GROUP).await, d.logs());
    let reported =
        wait_until_async(Duration::from_secs(15), async || groups_of(&addr).is_some()).await;
    assert!(reported, "no /status\n{}", d.logs());
    d.kill();
    logs.push_str(&d.logs());

    // No step ran twice. The state checks above show each one happened; its log line may be
    // missing when the SIGKILL landed after AWS took the call and before the line was written
    // (seen under load for the suspension, right after the clock tag the test waits for).
    for line in [
        "suspended Auto Scaling processes for decommission",
        "detached Auto Scaling group from the legacy target group",
        "scaled Auto Scaling group to 0 (min and desired)",
        "deleted the empty Auto Scaling group",
    ] {
        assert!(logs.matches(line).count() <= 1, "{line}:\n{logs}");
    }
    // The last daemon is stopped only after /status reported the group gone.
    assert_eq!(
        logs.matches("deleted the empty Auto Scaling group").count(),
        1,
        "{logs}"
    );
    assert!(
        logs.contains("migration of prod/web at 100% on ECS"),
        "{logs}"
    );

    // The group no manifest names is exactly as it was.
    assert_eq!(f.group(OTHER_GROUP).await, Some(other_before));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_with_scale_in_protection_is_held_and_reported() {
    let f = fleet("stop").await;
    f.ecs_tasks_healthy().await;
    let ids: Vec<String> = f
        .moto
        .autoscaling()
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(GROUP)
        .send()
        .await
        .expect("DescribeAutoScalingGroups")
        .auto_scaling_groups()[0]
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    f.moto
        .autoscaling()
        .set_instance_protection()
        .auto_scaling_group_name(GROUP)
        .instance_ids(&ids[0])
        .protected_from_scale_in(true)
        .send()
        .await
        .expect("SetInstanceProtection");
    let before = f.group(GROUP).await.expect("web-asg");
    // Create, move to 100%, complete (1s), then the decommission would start.
    let mut last = String::new();
    let held = wait_until_async(Duration::from_secs(40), async || {
        let (code, out) = f.run(&["apply"]);
        assert_eq!(code, 0, "{out}");
        last = out;
        last.contains(&format!("instance {} is protected from scale-in", ids[0]))
    })
    .await;
    assert!(held, "{last}");
    assert!(
        last.contains(&format!("~ auto scaling group {GROUP} skipped")),
        "{last}"
    );
    assert_eq!(
        f.group(GROUP).await,
        Some(before),
        "a held group was touched"
    );
    // A dry run names the group too, and makes no call.
    let (code, out) = f.run(&["apply", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("protected from scale-in"), "{out}");
}

impl Fleet {
    /// The listener's default actions forward to the legacy group.
    async fn listener_forwards_to_legacy(&self) -> bool {
        let lb = self
            .moto
            .elbv2()
            .describe_load_balancers()
            .names("web-alb")
            .send()
            .await
            .expect("DescribeLoadBalancers");
        let lb_arn = lb.load_balancers()[0]
            .load_balancer_arn()
            .unwrap_or_default();
        let out = self
            .moto
            .elbv2()
            .describe_listeners()
            .load_balancer_arn(lb_arn)
            .send()
            .await
            .expect("DescribeListeners");
        let legacy = self.target_group("web-ec2").await;
        out.listeners()[0].default_actions().iter().any(|a| {
            a.forward_config().is_some_and(|f| {
                f.target_groups()
                    .iter()
                    .any(|t| t.target_group_arn() == legacy.as_deref())
            })
        })
    }

    /// The ECS group alone, as the listener's forward action.
    async fn listener_groups(&self) -> Vec<String> {
        let lb = self
            .moto
            .elbv2()
            .describe_load_balancers()
            .names("web-alb")
            .send()
            .await
            .expect("DescribeLoadBalancers");
        let lb_arn = lb.load_balancers()[0]
            .load_balancer_arn()
            .unwrap_or_default();
        let out = self
            .moto
            .elbv2()
            .describe_listeners()
            .load_balancer_arn(lb_arn)
            .send()
            .await
            .expect("DescribeListeners");
        out.listeners()[0]
            .default_actions()
            .iter()
            .filter_map(|a| a.forward_config())
            .flat_map(|f| f.target_groups())
            .filter_map(|t| t.target_group_arn().map(str::to_string))
            .collect()
    }

    /// `None` once it is gone.
    async fn target_group(&self, name: &str) -> Option<String> {
        let out = self
            .moto
            .elbv2()
            .describe_target_groups()
            .names(name)
            .send()
            .await
            .ok()?;
        out.target_groups()
            .first()?
            .target_group_arn()
            .map(str::to_string)
    }

    async fn template_exists(&self, name: &str) -> bool {
        self.moto
            .ec2()
            .describe_launch_templates()
            .launch_template_names(name)
            .send()
            .await
            .is_ok_and(|o| !o.launch_templates().is_empty())
    }
}

fn cleanup_of(addr: &str) -> Option<Value> {
    let (code, body) = common::try_http_get(addr, "/status").ok()?;
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["decommissionCleanup"].as_array()?.first().cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_leaves_the_listener_to_ecs_and_deletes_template_group_and_target_group_through_kill_9()
 {
    let f = fleet_with(
        "stop",
        Some("[autoScalingGroup, targetGroup, launchTemplate]"),
    )
    .await;
    let other_before = f.group(OTHER_GROUP).await.expect("api-asg");
    let ecs_tg = f.ecs_tg.clone();

    // Announced before anything happens, and nothing happens while the fleet runs.
    let (code, out) = f.run(&["apply", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("~ cleanup after prod/web"), "{out}");
    assert!(
        out.contains("launchTemplate web-lt: waiting") || out.contains("launchTemplate -: waiting"),
        "{out}"
    );
    assert!(f.template_exists("web-lt").await);

    f.ecs_tasks_healthy().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut d = f.daemon(&addr);
    let mut logs = String::new();

    // The first cleanup step: the legacy group leaves the forward action.
    // kill -9 as soon as it shows.
    let left = wait_until_async(Duration::from_secs(90), async || {
        f.group(GROUP).await.is_some_and(|g| g.instances == 0)
            && !f.listener_forwards_to_legacy().await
    })
    .await;
    assert!(left, "{:?}\n{}", f.group(GROUP).await, d.logs());
    d.kill();
    logs.push_str(&d.logs());

    // Dry run and report mode, with deletions due: shown, and nothing changes.
    let before = (
        f.group(GROUP).await,
        f.target_group("web-ec2").await,
        f.template_exists("web-lt").await,
    );
    for args in [
        &["apply", "--dry-run"][..],
        &["apply", "--mode", "report"][..],
    ] {
        let (code, out) = f.run(args);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("would: delete_"), "{args:?}: {out}");
    }
    let after = (
        f.group(GROUP).await,
        f.target_group("web-ec2").await,
        f.template_exists("web-lt").await,
    );
    assert_eq!(before, after);

    // A restarted daemon carries on from what exists.
    d = f.daemon(&addr);
    let done = wait_until_async(Duration::from_secs(60), async || {
        f.group(GROUP).await.is_none()
            && f.target_group("web-ec2").await.is_none()
            && !f.template_exists("web-lt").await
    })
    .await;
    assert!(done, "{:?}\n{}", f.group(GROUP).await, d.logs());
    let reported = wait_until_async(Duration::from_secs(15), async || {
        cleanup_of(&addr).is_some_and(|c| c["message"] == "cleaned up")
    })
    .await;
    assert!(reported, "{:?}\n{}", cleanup_of(&addr), d.logs());
    d.kill();
    logs.push_str(&d.logs());

    assert_eq!(f.listener_groups().await, [ecs_tg]);
    // The migration reads the ECS group alone as complete, legacy group or not.
    assert!(!logs.contains("migration: observation failed"), "{logs}");
    for line in [
        "cleanup: deleted the fleet's launch template",
        "cleanup: deleted the empty Auto Scaling group",
        "cleanup: deleted the legacy target group",
    ] {
        assert_eq!(logs.matches(line).count(), 1, "{line}:\n{logs}");
    }
    assert!(
        logs.matches("cleanup: the legacy target group left the forward action")
            .count()
            <= 1,
        "{logs}"
    );

    // What no manifest names is exactly as it was.
    assert_eq!(f.group(OTHER_GROUP).await, Some(other_before));
    assert!(f.template_exists("api-lt").await);
    assert!(f.target_group("api-ec2").await.is_some());
}
