//! End to end: moving a service off a legacy EC2 fleet with weighted forward
//! actions behind health gates (issue 4), against a private moto per test.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig, RuleCondition,
    TargetDescription, TargetGroupTuple,
};
use common::{
    Daemon, GitRepo, MigrationStage, Moto, Network, ecsync_daemon, ecsync_text, free_port,
    http_get, migration_stage, wait_until_async, web_migrating,
};
use serde_json::Value;

const CLUSTER: &str = "prod";
const SERVICE: &str = "web";

struct Fleet {
    moto: Moto,
    repo: GitRepo,
    cache: tempfile::TempDir,
    lb_arn: String,
    listener_arn: String,
    legacy_tg: String,
    ecs_tg: String,
}

/// Three legacy instances behind an ALB whose listener forwards to their
/// target group, an empty ECS target group, an unmanaged rule on the same
/// listener, and a manifest that migrates `web` with `migration_yaml`.
async fn fleet(steps: &str, interval: &str, listener: Option<&str>) -> Fleet {
    let MigrationStage {
        moto,
        net,
        legacy_tg,
        ecs_tg,
    } = migration_stage().await;
    let instances = moto.run_instances(3, &[("app", "web")]).await;
    moto.register_instances(&legacy_tg, &instances).await;
    let (lb_arn, listener_arn) = moto
        .create_alb_with_listener("web-alb", &net.subnets, &net.security_group, &legacy_tg)
        .await;
    // A rule ecsync must not touch (nor its conditions or actions).
    moto.elbv2()
        .create_rule()
        .listener_arn(&listener_arn)
        .priority(10)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .values("/maintenance/*")
                .build(),
        )
        .actions(
            Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code("503")
                        .content_type("text/plain")
                        .message_body("down for maintenance")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("CreateRule");
    let listener = listener
        .map(str::to_string)
        .unwrap_or_else(|| listener_arn.clone());
    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &manifest(&net, &listener, steps, interval, "nginx:1.27"),
    );
    repo.commit("web with a migration");
    Fleet {
        moto,
        repo,
        cache: tempfile::tempdir().unwrap(),
        lb_arn,
        listener_arn,
        legacy_tg,
        ecs_tg,
    }
}

fn manifest(net: &Network, listener: &str, steps: &str, interval: &str, image: &str) -> String {
    format!(
        "{}    listener: {listener}
    from:
      targetGroup: web-ec2
      instances: {{tags: {{app: web}}}}
    steps: {steps}
    stepInterval: {interval}
",
        web_migrating(net, image)
    )
}

impl Fleet {
    fn run(&self, args: &[&str]) -> (i32, String) {
        ecsync_text(&self.moto, &self.repo, self.cache.path(), args)
    }

    fn daemon(&self, listen: &str) -> Daemon {
        ecsync_daemon(&self.moto, &self.repo, self.cache.path(), listen)
    }

    /// Stand in for ECS placing two healthy tasks in its target group.
    async fn ecs_tasks_healthy(&self) {
        self.moto
            .register_ip_targets(&self.ecs_tg, &["10.0.1.10", "10.0.2.10"])
            .await;
    }

    async fn ecs_tasks_gone(&self) {
        let targets = ["10.0.1.10", "10.0.2.10"]
            .iter()
            .map(|ip| TargetDescription::builder().id(*ip).port(80).build())
            .collect();
        self.moto
            .elbv2()
            .deregister_targets()
            .target_group_arn(&self.ecs_tg)
            .set_targets(Some(targets))
            .send()
            .await
            .expect("DeregisterTargets");
    }

    async fn default_actions(&self) -> Vec<Action> {
        let out = self
            .moto
            .elbv2()
            .describe_listeners()
            .listener_arns(&self.listener_arn)
            .send()
            .await
            .expect("DescribeListeners");
        out.listeners()[0].default_actions().to_vec()
    }

    /// ECS percent of the forward action's weights (0 when it forwards only
    /// to the legacy group).
    async fn percent_of(actions: &[Action], ecs_tg: &str) -> u8 {
        let fwd = actions
            .iter()
            .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
            .expect("a forward action");
        let groups = fwd
            .forward_config()
            .map(|f| f.target_groups().to_vec())
            .unwrap_or_default();
        if groups.len() < 2 {
            return if fwd.target_group_arn() == Some(ecs_tg)
                || groups.first().and_then(|g| g.target_group_arn()) == Some(ecs_tg)
            {
                100
            } else {
                0
            };
        }
        let w = |arn: &str| -> i32 {
            groups
                .iter()
                .filter(|g| g.target_group_arn() == Some(arn))
                .map(|g| g.weight().unwrap_or(1))
                .sum()
        };
        let (e, total) = (
            w(ecs_tg),
            groups.iter().map(|g| g.weight().unwrap_or(1)).sum::<i32>(),
        );
        (e * 100 / total.max(1)) as u8
    }

    async fn percent(&self) -> u8 {
        Self::percent_of(&self.default_actions().await, &self.ecs_tg).await
    }

    async fn set_weights_by_hand(&self, ecs: i32, legacy: i32) {
        self.moto
            .elbv2()
            .modify_listener()
            .listener_arn(&self.listener_arn)
            .default_actions(weighted(&self.ecs_tg, ecs, &self.legacy_tg, legacy))
            .send()
            .await
            .expect("ModifyListener by hand");
    }

    /// Every rule on the listener except the default one, as described.
    async fn other_rules(&self) -> String {
        let out = self
            .moto
            .elbv2()
            .describe_rules()
            .listener_arn(&self.listener_arn)
            .send()
            .await
            .expect("DescribeRules");
        let rules: Vec<_> = out
            .rules()
            .iter()
            .filter(|r| r.is_default() != Some(true))
            .collect();
        format!("{rules:?}")
    }

    async fn listener_shape(&self) -> String {
        let out = self
            .moto
            .elbv2()
            .describe_listeners()
            .load_balancer_arn(&self.lb_arn)
            .send()
            .await
            .expect("DescribeListeners");
        let l = &out.listeners()[0];
        format!("{:?} {:?} {:?}", l.port(), l.protocol(), l.certificates())
    }

    async fn service_tags(&self) -> BTreeMap<String, String> {
        let out = self
            .moto
            .ecs()
            .describe_services()
            .cluster(CLUSTER)
            .services(SERVICE)
            .include(aws_sdk_ecs::types::ServiceField::Tags)
            .send()
            .await
            .expect("DescribeServices");
        out.services()
            .first()
            .map(|s| {
                s.tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn weighted(ecs: &str, e: i32, legacy: &str, l: i32) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(
            ForwardActionConfig::builder()
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(ecs)
                        .weight(e)
                        .build(),
                )
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(legacy)
                        .weight(l)
                        .build(),
                )
                .build(),
        )
        .build()
}

fn status_of(addr: &str) -> Option<Value> {
    let (code, body) = common::try_http_get(addr, "/status").ok()?;
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["services"]
        .as_array()?
        .iter()
        .find(|s| s["service"] == SERVICE)
        .cloned()
}

/// The distinct ECS percents the listener showed, in order, with when each
/// was first seen.
#[derive(Default)]
struct Watch {
    seen: Vec<(u8, Instant)>,
}

impl Watch {
    async fn poll(&mut self, f: &Fleet) -> u8 {
        let p = f.percent().await;
        if self.seen.last().map(|(q, _)| *q) != Some(p) {
            self.seen.push((p, Instant::now()));
        }
        p
    }
    async fn until(&mut self, f: &Fleet, want: u8, timeout: Duration, d: &Daemon) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.poll(f).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "listener never reached {want}% (seen {:?})\n--- daemon\n{}",
            self.percents(),
            d.logs()
        );
    }
    fn percents(&self) -> Vec<u8> {
        self.seen.iter().map(|(p, _)| *p).collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_moves_step_by_step_behind_gates_and_survives_kill_9() {
    let interval = Duration::from_secs(3);
    let f = fleet("[10, 50, 100]", "3s", None).await;
    let rules_before = f.other_rules().await;
    let shape_before = f.listener_shape().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut watch = Watch::default();
    let mut d = f.daemon(&addr);

    // The ECS target group is empty: the first step is never taken, and
    // /status says which gate holds it.
    let held = wait_until_async(Duration::from_secs(30), async || {
        status_of(&addr).is_some_and(|s| {
            s["migration"]["gates"].as_array().is_some_and(|g| {
                g.iter()
                    .any(|g| g["name"] == "ecs-healthy" && g["passed"] == false)
            })
        })
    })
    .await;
    assert!(held, "no gate in /status\n{}", d.logs());
    let s = status_of(&addr).unwrap();
    assert!(
        s["migration"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ecs-healthy"),
        "{s}"
    );
    assert_eq!(s["migration"]["percent"], 0, "{s}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        watch.poll(&f).await,
        0,
        "moved while ECS had no healthy targets"
    );

    // ECS becomes healthy: 10%. Then kill -9 and restart at every step.
    f.ecs_tasks_healthy().await;
    let mut logs = String::new();
    for want in [10u8, 50, 100] {
        watch.until(&f, want, Duration::from_secs(30), &d).await;
        d.kill();
        logs.push_str(&d.logs());
        d = f.daemon(&addr);
    }
    let complete = wait_until_async(Duration::from_secs(30), async || {
        status_of(&addr).is_some_and(|s| {
            s["migration"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("complete"))
        })
    })
    .await;
    assert!(
        complete,
        "never complete: {:?}\n{}",
        status_of(&addr),
        d.logs()
    );
    watch.poll(&f).await;

    // In order, none skipped, none repeated from the start.
    assert_eq!(watch.percents(), vec![0, 10, 50, 100]);
    for pair in watch.seen.windows(2).skip(1) {
        let held = pair[1].1 - pair[0].1;
        // Polling adds up to ~100 ms of error on each side.
        assert!(
            held + Duration::from_millis(300) >= interval,
            "{}% held only {held:?}",
            pair[0].0
        );
    }
    let tags = f.service_tags().await;
    assert_eq!(
        tags.get("ecsync.io/migration-step").map(String::as_str),
        Some("3")
    );
    assert!(
        tags.contains_key("ecsync.io/migration-step-since"),
        "{tags:?}"
    );

    let (_, metrics) = http_get(&addr, "/metrics");
    assert!(
        metrics.contains(r#"ecsync_migration_traffic_percent{cluster="prod",service="web"} 100"#),
        "{metrics}"
    );
    logs.push_str(&d.logs());
    assert_eq!(
        logs.matches("changed listener weights").count(),
        3,
        "one logged weight change per step:\n{logs}"
    );

    // Nothing ecsync does not manage changed.
    assert_eq!(f.other_rules().await, rules_before);
    assert_eq!(f.listener_shape().await, shape_before);
    let actions = f.default_actions().await;
    assert_eq!(actions.len(), 1, "{actions:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_ecs_side_rolls_traffic_back_and_status_says_why() {
    let f = fleet("[10, 50, 100]", "60s", None).await;
    f.ecs_tasks_healthy().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut watch = Watch::default();
    let d = f.daemon(&addr);
    watch.until(&f, 10, Duration::from_secs(30), &d).await;

    f.ecs_tasks_gone().await;
    watch.until(&f, 0, Duration::from_secs(30), &d).await;
    let degraded = wait_until_async(Duration::from_secs(15), async || {
        status_of(&addr).is_some_and(|s| s["state"] == "Degraded")
    })
    .await;
    let s = status_of(&addr).unwrap_or_default();
    assert!(degraded, "{s}\n{}", d.logs());
    assert_eq!(s["migration"]["rollbacks"], 1, "{s}");
    let msg = s["migration"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("ecs-healthy"), "{s}");
    let (_, metrics) = http_get(&addr, "/metrics");
    assert!(
        metrics.contains(r#"ecsync_migration_traffic_percent{cluster="prod",service="web"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("gate=\"ecs-healthy\"") && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(
        f.service_tags()
            .await
            .get("ecsync.io/migration-rollbacks")
            .is_some_and(|v| v.starts_with("1@")),
        "{:?}",
        f.service_tags().await
    );
    assert_eq!(
        watch.percents(),
        vec![0, 10, 0],
        "never past the first step"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hand_edited_weights_are_reported_then_corrected() {
    let f = fleet("[10, 50, 100]", "60s", None).await;
    f.ecs_tasks_healthy().await;

    // Pass 1 creates the service; a dry run then shows the first step.
    let (code, out) = f.run(&["apply"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = f.run(&["apply", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("would: advance to 10% on ECS"), "{out}");
    assert_eq!(f.percent().await, 0, "a dry run changed the listener");

    let (code, out) = f.run(&["apply"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("advance_traffic"), "{out}");
    assert_eq!(f.percent().await, 10);
    let tags = f.service_tags().await;
    assert_eq!(
        tags.get("ecsync.io/migration-step").map(String::as_str),
        Some("1")
    );

    f.set_weights_by_hand(70, 30).await;
    let (code, out) = f.run(&["diff"]);
    assert_eq!(code, 2, "hand-edited weights are drift:\n{out}");
    assert!(out.contains("migration.listener.weights"), "{out}");
    assert!(out.contains("correct weights to 10% on ECS"), "{out}");
    let (code, out) = f.run(&["apply", "--mode", "report"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.percent().await, 70, "report mode changed the listener");

    let (code, out) = f.run(&["apply"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("correct_traffic"), "{out}");
    assert_eq!(f.percent().await, 10);
    assert_eq!(
        f.service_tags().await,
        tags,
        "a correction records no new step"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_rule_by_priority_is_migrated_and_nothing_else() {
    let moto_rule_priority = 5;
    // The listener is named by load balancer and port; the rule by priority.
    let f = fleet(
        "[50, 100]",
        "60s",
        Some(&format!(
            "{{loadBalancer: web-alb, port: 80, rule: {{priority: {moto_rule_priority}}}}}"
        )),
    )
    .await;
    let rule = f
        .moto
        .elbv2()
        .create_rule()
        .listener_arn(&f.listener_arn)
        .priority(moto_rule_priority)
        .conditions(
            RuleCondition::builder()
                .field("host-header")
                .values("web.example.com")
                .build(),
        )
        .actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&f.legacy_tg)
                .build(),
        )
        .send()
        .await
        .expect("CreateRule");
    let rule_arn = rule.rules()[0].rule_arn().unwrap().to_string();
    f.ecs_tasks_healthy().await;
    let defaults_before = format!("{:?}", f.default_actions().await);
    let rules = || async {
        let out = f
            .moto
            .elbv2()
            .describe_rules()
            .listener_arn(&f.listener_arn)
            .send()
            .await
            .unwrap();
        out.rules().to_vec()
    };
    let others_before: Vec<String> = rules()
        .await
        .iter()
        .filter(|r| r.rule_arn() != Some(rule_arn.as_str()) && r.is_default() != Some(true))
        .map(|r| format!("{r:?}"))
        .collect();
    let conditions_before = rules()
        .await
        .iter()
        .find(|r| r.rule_arn() == Some(rule_arn.as_str()))
        .map(|r| format!("{:?}", r.conditions()))
        .unwrap();

    for _ in 0..2 {
        let (code, out) = f.run(&["apply"]);
        assert_eq!(code, 0, "{out}");
    }
    let after = rules().await;
    let ours = after
        .iter()
        .find(|r| r.rule_arn() == Some(rule_arn.as_str()))
        .unwrap();
    assert_eq!(Fleet::percent_of(ours.actions(), &f.ecs_tg).await, 50);
    assert_eq!(format!("{:?}", ours.conditions()), conditions_before);
    assert_eq!(format!("{:?}", f.default_actions().await), defaults_before);
    let others_after: Vec<String> = after
        .iter()
        .filter(|r| r.rule_arn() != Some(rule_arn.as_str()) && r.is_default() != Some(true))
        .map(|r| format!("{r:?}"))
        .collect();
    assert_eq!(others_after, others_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_the_migration_after_completion_leaves_the_listener_alone() {
    let f = fleet("[50, 100]", "1s", None).await;
    f.ecs_tasks_healthy().await;
    let mut seen = Vec::new();
    // Create, 50%, 100%, complete: one apply per second is enough.
    for _ in 0..6 {
        let (code, out) = f.run(&["apply"]);
        assert_eq!(code, 0, "{out}");
        seen.push(f.percent().await);
        if out.contains("complete: 100% on ECS") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    seen.dedup();
    assert_eq!(seen, vec![0, 50, 100]);
    let (code, out) = f.run(&["apply", "--output", "json"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("complete: 100% on ECS"), "{out}");
    let actions = format!("{:?}", f.default_actions().await);

    // The manifest drops `migration`: the ECS target group keeps its traffic.
    let net = f.moto.default_network().await;
    let without = manifest(&net, &f.listener_arn, "[50, 100]", "1s", "nginx:1.27");
    let without = &without[..without.find("  migration:").unwrap()];
    f.repo.write("services/web.yaml", without);
    f.repo.commit("migration done");
    let (code, out) = f.run(&["apply", "--output", "json"]);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(out.split("\n--- stderr").next().unwrap()).unwrap();
    assert_eq!(report["services"][0]["migration"], Value::Null, "{out}");
    assert_eq!(format!("{:?}", f.default_actions().await), actions);
    assert_eq!(f.percent().await, 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_bounded_rollbacks_it_holds_until_the_manifest_changes() {
    let f = fleet("[10, 50, 100]", "1s", None).await;
    let apply = |want: &'static str| {
        let (code, out) = f.run(&["apply"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(want), "expected {want:?}:\n{out}");
        out
    };
    apply("create_service");
    // Three times: ECS healthy → first step; ECS gone → back to 0%.
    for _ in 0..3 {
        f.ecs_tasks_healthy().await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        apply("advance_traffic");
        assert_eq!(f.percent().await, 10);
        f.ecs_tasks_gone().await;
        apply("rollback_traffic");
        assert_eq!(f.percent().await, 0);
    }
    f.ecs_tasks_healthy().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = apply("Degraded");
    assert!(out.contains("change the manifest to resume"), "{out}");
    assert_eq!(f.percent().await, 0, "moved past the rollback limit");

    // A fixed image is a new manifest: the count starts over and it resumes
    // once the new deployment is stable.
    let net = f.moto.default_network().await;
    f.repo.write(
        "services/web.yaml",
        &manifest(&net, &f.listener_arn, "[10, 50, 100]", "1s", "nginx:1.28"),
    );
    f.repo.commit("fixed image");
    apply("update_service");
    assert_eq!(f.percent().await, 0, "no step while the deployment starts");
    apply("advance_traffic");
    assert_eq!(f.percent().await, 10);
}

/// Gate the manifest's migration on `alarms` (CloudWatch alarm names).
fn with_alarms(f: &Fleet, alarms: &[&str]) {
    let path = f.repo.path().join("services/web.yaml");
    let text = std::fs::read_to_string(&path).expect("manifest");
    let gated = text.replace(
        "    stepInterval:",
        &format!(
            "    gates: {{alarms: [{}]}}\n    stepInterval:",
            alarms.join(", ")
        ),
    );
    assert_ne!(gated, text, "no stepInterval line to put the gate beside");
    f.repo.write("services/web.yaml", &gated);
    f.repo.commit("gate the migration on alarms");
}

/// A metric alarm (moto starts it OK).
async fn put_alarm(f: &Fleet, name: &str) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
    f.moto
        .cloudwatch()
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
}

async fn set_alarm(f: &Fleet, name: &str, state: aws_sdk_cloudwatch::types::StateValue) {
    f.moto
        .cloudwatch()
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("set by the test")
        .send()
        .await
        .expect("SetAlarmState");
}

#[tokio::test(flavor = "multi_thread")]
async fn alarm_gate_holds_rolls_back_and_names_a_missing_alarm() {
    use aws_sdk_cloudwatch::types::StateValue;
    let f = fleet("[10, 50, 100]", "1s", None).await;
    with_alarms(&f, &["web-5xx", "web-latency"]);
    put_alarm(&f, "web-5xx").await;
    f.ecs_tasks_healthy().await;
    let apply = |args: &[&str], want: &str| {
        let (code, out) = f.run(args);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(want), "expected {want:?}:\n{out}");
        out
    };
    apply(&["apply"], "create_service");

    // web-latency does not exist: a configuration error, held and shown.
    let missing = "configuration error: no CloudWatch alarm named web-latency";
    apply(&["apply", "--dry-run"], missing);
    let (code, out) = f.run(&["diff"]);
    assert!(out.contains(missing), "diff ({code}):\n{out}");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut d = f.daemon(&addr);
    let shown = wait_until_async(Duration::from_secs(30), async || {
        status_of(&addr).is_some_and(|s| {
            s["state"] == "Degraded"
                && s["migration"]["gates"].as_array().is_some_and(|g| {
                    g.iter().any(|g| {
                        g["name"] == "alarms"
                            && g["passed"] == false
                            && g["detail"].as_str().is_some_and(|t| t.contains(missing))
                    })
                })
        })
    })
    .await;
    assert!(shown, "{:?}\n{}", status_of(&addr), d.logs());
    d.kill();
    assert_eq!(f.percent().await, 0, "moved with an alarm missing");

    // INSUFFICIENT_DATA holds without being an error.
    put_alarm(&f, "web-latency").await;
    set_alarm(&f, "web-latency", StateValue::InsufficientData).await;
    let out = apply(&["apply"], "INSUFFICIENT_DATA: web-latency");
    assert!(!out.contains("advance_traffic"), "{out}");
    assert_eq!(f.percent().await, 0);

    // Both OK: the first step.
    set_alarm(&f, "web-latency", StateValue::Ok).await;
    apply(&["apply"], "advance_traffic");
    assert_eq!(f.percent().await, 10);

    // ALARM (HTTP 500s that target health never sees): rolled back, counted.
    set_alarm(&f, "web-5xx", StateValue::Alarm).await;
    apply(&["apply", "--dry-run"], "in ALARM: web-5xx");
    assert_eq!(f.percent().await, 10, "a dry run moved traffic");
    apply(&["apply"], "rollback_traffic");
    assert_eq!(f.percent().await, 0);
    let tags = f.service_tags().await;
    assert!(
        tags.get("ecsync.io/migration-rollbacks")
            .is_some_and(|v| v.starts_with("1@")),
        "{tags:?}"
    );
    // Still in ALARM: no step forward from 0%.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = apply(&["apply"], "in ALARM: web-5xx");
    assert!(!out.contains("advance_traffic"), "{out}");
    assert_eq!(f.percent().await, 0);

    // OK again: it resumes after the step interval.
    set_alarm(&f, "web-5xx", StateValue::Ok).await;
    apply(&["apply"], "advance_traffic");
    assert_eq!(f.percent().await, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_cloudwatch_call_without_alarm_gates() {
    let f = fleet("[10, 50, 100]", "60s", None).await;
    f.ecs_tasks_healthy().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut watch = Watch::default();
    let d = f.daemon(&addr);
    watch.until(&f, 10, Duration::from_secs(30), &d).await;
    let (_, metrics) = http_get(&addr, "/metrics");
    assert!(metrics.contains("DescribeTargetHealth"), "{metrics}");
    assert!(!metrics.contains("DescribeAlarms"), "{metrics}");
    assert!(!metrics.to_lowercase().contains("autoscaling"), "{metrics}");
}
