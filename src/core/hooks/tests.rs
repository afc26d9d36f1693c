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
