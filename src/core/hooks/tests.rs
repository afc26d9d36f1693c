use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::*;
use crate::core::tags::{HookRecord, HookResult};

fn hook(name: &str) -> PreDeployHook {
    PreDeployHook {
        name: name.into(),
        container_name: None,
        command: vec!["bin/rails".into(), "db:migrate".into()],
        timeout: Some("10m".into()),
    }
}

fn record(name: &str, revision: &str, result: HookResult) -> HookRecord {
    HookRecord {
        name: name.into(),
        revision: revision.into(),
        result,
    }
}

const T0: Duration = Duration::from_secs(1_750_000_000);

fn task(name: &str, revision: &str, stopped: bool, exit: Option<i32>) -> HookTask {
    HookTask {
        arn: format!("arn:task/{name}"),
        hook: Some((name.into(), revision.into())),
        stopped,
        started_at: Some(SystemTime::UNIX_EPOCH + T0),
        stopped_reason: Some("Essential container in task exited".into()),
        containers: vec![ContainerExit {
            name: "web".into(),
            exit_code: exit,
            reason: None,
        }],
    }
}

fn essential() -> BTreeSet<String> {
    BTreeSet::from(["web".to_string()])
}

fn decide_at(
    hooks: &[PreDeployHook],
    records: &[HookRecord],
    tasks: &[HookTask],
    after: Duration,
) -> Decision {
    decide(&Input {
        hooks,
        revision: "rev1",
        records,
        tasks,
        essential: &essential(),
        now: SystemTime::UNIX_EPOCH + T0 + after,
    })
}

#[test]
fn progress_follows_the_latest_record_of_this_revision_only() {
    let hooks = [hook("migrate"), hook("seed")];
    assert_eq!(progress(&hooks, "rev1", &[]), Progress::Next(0));
    let ok = record("migrate", "rev1", HookResult::Succeeded);
    assert_eq!(
        progress(&hooks, "rev1", std::slice::from_ref(&ok)),
        Progress::Next(1)
    );
    let all = record("seed", "rev1", HookResult::Succeeded);
    assert_eq!(progress(&hooks, "rev1", &[ok.clone(), all]), Progress::Done);
    let failed = record("seed", "rev1", HookResult::Failed);
    assert_eq!(progress(&hooks, "rev1", &[ok, failed]), Progress::Failed(1));
    // Another revision, or a hook no longer declared, says nothing.
    let old = record("seed", "rev0", HookResult::Failed);
    let gone = record("backfill", "rev1", HookResult::Succeeded);
    assert_eq!(progress(&hooks, "rev1", &[old, gone]), Progress::Next(0));
}

#[test]
fn a_running_task_is_waited_for_never_started_twice() {
    let hooks = [hook("migrate")];
    assert_eq!(
        decide_at(&hooks, &[], &[], Duration::ZERO),
        Decision::Run { index: 0 }
    );
    let running = task("migrate", "rev1", false, None);
    assert_eq!(
        decide_at(
            &hooks,
            &[],
            std::slice::from_ref(&running),
            Duration::from_secs(60)
        ),
        Decision::Wait {
            index: 0,
            task: running.arn.clone()
        }
    );
    // A task of another revision is not this run.
    let other = task("migrate", "rev0", false, None);
    assert_eq!(
        decide_at(&hooks, &[], &[other], Duration::from_secs(60)),
        Decision::Run { index: 0 }
    );
    // Past the timeout it is stopped and counts as failed.
    assert_eq!(
        decide_at(
            &hooks,
            &[],
            std::slice::from_ref(&running),
            Duration::from_secs(601)
        ),
        Decision::Finished {
            index: 0,
            task: running.arn,
            outcome: Outcome::TimedOut(Duration::from_secs(600)),
        }
    );
}

#[test]
fn exit_codes_decide_success() {
    let hooks = [hook("migrate")];
    let finished = |t: HookTask| match decide_at(&hooks, &[], &[t], Duration::from_secs(5)) {
        Decision::Finished { outcome, .. } => outcome,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        finished(task("migrate", "rev1", true, Some(0))),
        Outcome::Succeeded
    );
    let Outcome::Failed(f) = finished(task("migrate", "rev1", true, Some(3))) else {
        panic!()
    };
    assert_eq!(
        (f.container.as_deref(), f.exit_code),
        (Some("web"), Some(3))
    );
    assert_eq!(
        f.to_string(),
        "container web exited 3: Essential container in task exited"
    );
    let Outcome::Failed(f) = finished(task("migrate", "rev1", true, None)) else {
        panic!()
    };
    assert_eq!(f.exit_code, None);
    // A non-essential sidecar may exit as it likes.
    let mut t = task("migrate", "rev1", true, Some(0));
    t.containers.push(ContainerExit {
        name: "log-router".into(),
        exit_code: Some(1),
        reason: None,
    });
    assert_eq!(finished(t), Outcome::Succeeded);
    // An essential container the task does not report never ran to the end.
    let mut t = task("migrate", "rev1", true, Some(0));
    t.containers.clear();
    assert!(matches!(finished(t), Outcome::Failed(_)));
}

#[test]
fn a_recorded_failure_is_never_rerun_and_success_moves_on() {
    let hooks = [hook("migrate")];
    let failed = [record("migrate", "rev1", HookResult::Failed)];
    assert_eq!(
        decide_at(&hooks, &failed, &[], Duration::ZERO),
        Decision::Failed { index: 0 }
    );
    let ok = [record("migrate", "rev1", HookResult::Succeeded)];
    assert_eq!(
        decide_at(&hooks, &ok, &[], Duration::ZERO),
        Decision::Proceed
    );
}

#[test]
fn the_hook_container_defaults_to_the_first_essential_one() {
    let td: TaskDefinition = serde_json::from_value(serde_json::json!({
        "family": "web",
        "containerDefinitions": [
            {"name": "init", "image": "busybox", "essential": false},
            {"name": "web", "image": "web:1"}
        ]
    }))
    .unwrap();
    assert_eq!(container(&hook("migrate"), &td), Some("web"));
    assert_eq!(essential_containers(&td), essential());
    let mut h = hook("migrate");
    h.container_name = Some("init".into());
    assert_eq!(container(&h, &td), Some("init"));
}

const RAILS: &str = r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: web
spec:
  cluster: prod
  launchType: FARGATE
  taskDefinition:
    family: web
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: web
        image: rails:1
  networkConfiguration:
    awsvpcConfiguration: {subnets: [subnet-a], securityGroups: [sg-1]}
  hooks:
    preDeploy:
"#;

fn errors_of(hooks: &str) -> Vec<String> {
    let text = format!("{RAILS}{hooks}");
    crate::core::manifest::load([("web.yaml", text.as_str())])
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn hooks_are_validated_with_their_line_and_column() {
    let ok = "      - {name: migrate, command: [bin/rails, db:migrate], timeout: 10m}\n";
    assert_eq!(errors_of(ok), Vec::<String>::new());
    let set = crate::core::manifest::load([("web.yaml", format!("{RAILS}{ok}").as_str())]);
    assert_eq!(set.services[0].spec.pre_deploy_hooks()[0].name, "migrate");

    let twice = "      - {name: migrate, command: [a]}\n      - {name: migrate, command: [b]}\n";
    let e = errors_of(twice);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("web.yaml:22:"), "{e:?}");
    assert!(e[0].contains("declared twice"), "{e:?}");

    let e = errors_of("      - {name: migrate, command: []}\n");
    assert!(
        e.len() == 1 && e[0].contains("command") && e[0].contains("must not be empty"),
        "{e:?}"
    );
    let e = errors_of("      - {name: migrate, command: [a], timeout: soon}\n");
    assert!(e.len() == 1 && e[0].contains("not a duration"), "{e:?}");
    let e = errors_of("      - {name: migrate, command: [a], timeout: 0s}\n");
    assert!(e.len() == 1 && e[0].contains("longer than 0"), "{e:?}");
    let e = errors_of("      - {name: migrate, command: [a], containerName: worker}\n");
    assert!(
        e.len() == 1 && e[0].contains("no container named \"worker\""),
        "{e:?}"
    );
    let e = errors_of("      - {name: \"db migrate\", command: [a]}\n");
    assert!(e.len() == 1 && e[0].contains("letters, digits"), "{e:?}");
    let e = errors_of("      - {name: migrate, command: [a], cmd: [b]}\n");
    assert!(e.len() == 1 && e[0].contains("cmd"), "{e:?}");
}

#[test]
fn the_hook_revision_follows_the_definition_and_the_hooks() {
    let hooks = [hook("migrate")];
    let r = revision("abc", &hooks);
    assert_eq!(r, revision("abc", &hooks), "stable");
    assert_eq!(r.len(), 16);
    assert_ne!(
        r,
        revision("abd", &hooks),
        "a new definition runs them again"
    );
    let mut fixed = hook("migrate");
    fixed.command = vec!["bin/rails".into(), "db:migrate:with_data".into()];
    assert_ne!(r, revision("abc", &[fixed]), "so does a fixed hook");
}

#[test]
fn only_a_plan_that_moves_to_a_new_revision_waits_for_hooks() {
    use crate::core::plan::Action;
    use std::collections::BTreeMap;
    let register = Action::RegisterTaskDefinition {
        family: "web".into(),
    };
    assert!(gated(&[register.clone(), Action::CreateService]));
    assert!(gated(&[register]));
    let tags = Action::TagService {
        tags: BTreeMap::new(),
    };
    assert!(!gated(&[tags]));
    assert!(!gated(&[]));
}

#[test]
fn a_task_without_a_clock_is_waited_for_and_a_later_success_moves_on() {
    let hooks = [hook("migrate"), hook("seed")];
    let mut t = task("migrate", "rev1", false, None);
    t.started_at = None;
    // No start clock: never timed out on a guess.
    assert!(matches!(
        decide_at(
            &hooks,
            &[],
            std::slice::from_ref(&t),
            Duration::from_secs(86_400)
        ),
        Decision::Wait { index: 0, .. }
    ));
    // The first succeeded: the second runs next, not the first again.
    let ok = [record("migrate", "rev1", HookResult::Succeeded)];
    let done = task("migrate", "rev1", true, Some(0));
    assert_eq!(
        decide_at(&hooks, &ok, &[done], Duration::ZERO),
        Decision::Run { index: 1 }
    );
}

#[test]
fn statuses_say_what_happens_next() {
    let pending = HookStatus::new("migrate", HookPhase::Pending, "r");
    assert!(
        pending.summary().contains("runs first"),
        "{}",
        pending.summary()
    );
    let mut failed = HookStatus::new("migrate", HookPhase::Failed, "r");
    failed.exit_code = Some(2);
    failed.reason = Some("container web exited 2: boom".into());
    let s = failed.summary();
    assert!(
        s.contains("exit code 2") && s.contains("stays on its current revision"),
        "{s}"
    );
    let v = serde_json::to_value(&failed).unwrap();
    assert_eq!(v["phase"], "failed");
    assert_eq!(v["exitCode"], 2);
}
