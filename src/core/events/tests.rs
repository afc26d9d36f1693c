use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::*;
use crate::core::decommission::{OrphanState, Why};
use crate::core::migration::{Gate, GateState, Kind};
use crate::core::model::{InstanceSelector, ListenerRef, Migration, MigrationSource};
use crate::core::state::RolloutState;

const REV: &str = "0123456789abcdef0123456789abcdef01234567";
const REV2: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn key(name: &str) -> ServiceKey {
    ServiceKey {
        cluster: "prod".into(),
        name: name.into(),
    }
}

fn image_drift(live: &str) -> Vec<FieldDiff> {
    vec![FieldDiff {
        path: "taskDefinition.containerDefinitions[web].image".into(),
        desired: json!("nginx:1.27"),
        live: json!(live),
    }]
}

/// Everything a service can show, owned, so a table can describe it.
#[derive(Clone)]
struct Svc {
    key: ServiceKey,
    state: SyncState,
    exists: bool,
    drift: Vec<FieldDiff>,
    replace: Vec<String>,
    held: bool,
    report_only: bool,
    error: Option<String>,
    done: Vec<ActionKind>,
    rollout: Option<Rollout>,
    migration: Option<(Decision, bool)>,
    hook: Option<crate::core::hooks::HookStatus>,
}

fn svc(name: &str, state: SyncState) -> Svc {
    Svc {
        key: key(name),
        state,
        exists: true,
        drift: Vec::new(),
        replace: Vec::new(),
        held: false,
        report_only: false,
        error: None,
        done: Vec::new(),
        rollout: None,
        migration: None,
        hook: None,
    }
}

impl Svc {
    fn facts(&self) -> ServiceFacts<'_> {
        ServiceFacts {
            key: &self.key,
            state: self.state,
            exists: self.exists,
            drift: &self.drift,
            replace: &self.replace,
            held: self.held,
            report_only: self.report_only,
            error: self.error.as_deref(),
            done: &self.done,
            rollout: self.rollout.as_ref(),
            migration: self.migration.as_ref().map(|(d, applied)| MigrationFacts {
                decision: d,
                applied: *applied,
            }),
            hook: self.hook.as_ref(),
        }
    }
    fn drifted(mut self, live: &str) -> Self {
        self.drift = image_drift(live);
        self
    }
    fn corrected(mut self) -> Self {
        self.done = vec![
            ActionKind::RegisterTaskDefinition,
            ActionKind::UpdateService,
            ActionKind::TagService,
        ];
        self
    }
}

#[derive(Clone)]
struct Inst {
    plan: InstancePlan,
    done: Vec<&'static str>,
    error: Option<String>,
}

fn inst(id: &str, done: &[&'static str]) -> Inst {
    Inst {
        plan: InstancePlan {
            instance_id: id.into(),
            state: OrphanState::Stopped,
            why: Some(Why::Prune {
                service: "prod/legacy".into(),
            }),
            action: None,
            acts_at: None,
            skipped: None,
            leaves: Vec::new(),
            drained_from: vec!["legacy-tg".into()],
            steps: Vec::new(),
            report_only: false,
            message: String::new(),
        },
        done: done.to_vec(),
        error: None,
    }
}

struct Pass {
    revision: &'static str,
    mode: Mode,
    error: Option<&'static str>,
    git_error: Option<&'static str>,
    services: Vec<Svc>,
    instances: Vec<Inst>,
}

fn pass(services: Vec<Svc>) -> Pass {
    Pass {
        revision: REV,
        mode: Mode::Auto,
        error: None,
        git_error: None,
        services,
        instances: Vec::new(),
    }
}

impl Pass {
    fn facts(&self, now: SystemTime) -> PassFacts<'_> {
        PassFacts {
            controller_id: "ecsync",
            revision: self.revision,
            mode: self.mode,
            now,
            error: self.error,
            git_error: self.git_error,
            services: self.services.iter().map(Svc::facts).collect(),
            instances: self
                .instances
                .iter()
                .map(|i| InstanceFacts {
                    plan: &i.plan,
                    done: &i.done,
                    error: i.error.as_deref(),
                })
                .collect(),
            cleanups: Vec::new(),
        }
    }
}

/// Event names of one pass through a fresh memory.
fn names(p: &Pass) -> Vec<String> {
    let mut m = Memory::default();
    m.observe(&p.facts(t0()))
        .iter()
        .map(|e| format!("{} {}", e.event, e.object()))
        .collect()
}

/// A real decision (so fields added to it later need no change here), then
/// made into the one a test needs.
fn decision(kind: Kind, stage: usize, percent: u8) -> Decision {
    let m = Migration {
        listener: ListenerRef::Arn("arn:aws:elasticloadbalancing:l".into()),
        from: MigrationSource {
            target_group: "web-ec2".into(),
            instances: Some(InstanceSelector {
                tags: BTreeMap::new(),
            }),
            auto_scaling_group: None,
        },
        steps: vec![10, 50, 100],
        step_interval: "1m".into(),
        gates: None,
        decommission: None,
    };
    let rollout = Rollout::default();
    let tags = BTreeMap::new();
    let mut d = crate::core::migration::decide(&crate::core::migration::Facts {
        migration: &m,
        step_interval: Duration::from_secs(60),
        tags: &tags,
        fingerprint: "f",
        percent: 0,
        rollout: &rollout,
        deploying: false,
        ecs_healthy: 2,
        legacy_healthy: 2,
        legacy_registered: 2,
        alarms: &Default::default(),
        now: t0(),
    });
    d.kind = kind;
    d.stage_before = stage.saturating_sub(1);
    d.stage = stage;
    d.percent = percent;
    d.gates = Vec::new();
    d.rollbacks = 0;
    d.degraded = false;
    d.complete_since = None;
    d.reason = "gates pass".into();
    d
}

#[test]
fn each_source_gives_its_event() {
    let failed_rollout = Rollout {
        rollout_state: Some(RolloutState::Failed),
        rollout_reason: Some("circuit breaker".into()),
        desired: 2,
        ..Default::default()
    };
    let mut failing = svc("api", SyncState::Error);
    failing.error = Some("UpdateService: AccessDenied".into());
    let mut degraded = svc("web", SyncState::Degraded);
    degraded.rollout = Some(failed_rollout);
    let mut missing = svc("new", SyncState::Progressing);
    missing.exists = false;
    missing.done = vec![
        ActionKind::RegisterTaskDefinition,
        ActionKind::CreateService,
    ];
    let mut pruned = svc("old", SyncState::Progressing);
    pruned.done = vec![ActionKind::PruneService];
    let mut held = svc("broken", SyncState::Held).drifted("nginx:1.0");
    held.held = true;
    let mut stepped = svc("mig", SyncState::Progressing);
    stepped.migration = Some((decision(Kind::Advance, 2, 50), true));
    let mut unapplied = svc("mig-report", SyncState::OutOfSync);
    unapplied.migration = Some((decision(Kind::Advance, 2, 50), false));
    let mut back = svc("mig-back", SyncState::Degraded);
    let mut d = decision(Kind::Rollback, 1, 10);
    d.rollbacks = 1;
    d.degraded = true;
    d.reason = "ecs-healthy failed".into();
    d.gates = vec![Gate {
        name: "ecs-healthy",
        state: GateState::Fail,
        detail: "0 of 2 healthy".into(),
    }];
    back.migration = Some((d, true));
    let mut done = svc("mig-done", SyncState::Synced);
    let mut d = decision(Kind::Complete, 4, 100);
    d.complete_since = Some(t0());
    done.migration = Some((d, false));

    let cases: Vec<(&str, Pass, Vec<&str>)> = vec![
        (
            "a quiet pass",
            pass(vec![svc("web", SyncState::Synced)]),
            vec![],
        ),
        (
            "drift in auto mode, corrected",
            pass(vec![
                svc("web", SyncState::Progressing).drifted("x").corrected(),
            ]),
            vec!["drift.detected prod/web"],
        ),
        (
            "drift in report mode",
            Pass {
                mode: Mode::Report,
                ..pass(vec![svc("web", SyncState::OutOfSync).drifted("x")])
            },
            vec!["drift.detected prod/web"],
        ),
        (
            "a failing service",
            pass(vec![failing]),
            vec!["sync.failed prod/api"],
        ),
        (
            "a failed rollout",
            pass(vec![degraded]),
            vec!["service.degraded prod/web"],
        ),
        (
            "a missing service is drift",
            pass(vec![missing]),
            vec!["drift.detected prod/new"],
        ),
        (
            "a pruned service",
            pass(vec![pruned]),
            vec!["prune.deleted prod/old"],
        ),
        ("a held service says nothing", pass(vec![held]), vec![]),
        (
            "a migration step",
            pass(vec![stepped]),
            vec!["migration.step prod/mig"],
        ),
        (
            "a step not taken (read-only)",
            pass(vec![unapplied]),
            vec![],
        ),
        (
            "a rollback, degraded",
            pass(vec![back]),
            vec![
                "service.degraded prod/mig-back",
                "migration.rollback prod/mig-back",
            ],
        ),
        (
            "a complete migration",
            pass(vec![done]),
            vec!["migration.completed prod/mig-done"],
        ),
        (
            "the pass failed",
            Pass {
                error: Some("no credentials"),
                ..pass(vec![])
            },
            vec!["sync.failed ecsync"],
        ),
        (
            "git failed, last good revision reconciled",
            Pass {
                git_error: Some("fetch: connection refused"),
                ..pass(vec![svc("web", SyncState::Synced)])
            },
            vec!["sync.failed ecsync"],
        ),
        (
            "instances stopped and terminated",
            Pass {
                instances: vec![
                    inst("i-1", &["deregister", "tag", "stop"]),
                    inst("i-2", &["terminate"]),
                    inst("i-3", &["deregister"]),
                ],
                ..pass(vec![])
            },
            vec!["decommission.stopped i-1", "decommission.terminated i-2"],
        ),
        (
            "a stop that failed is no event",
            Pass {
                instances: vec![Inst {
                    error: Some("StopInstances: throttled".into()),
                    ..inst("i-1", &["deregister"])
                }],
                ..pass(vec![])
            },
            vec![],
        ),
    ];
    for (name, p, want) in cases {
        assert_eq!(names(&p), want, "{name}");
    }
}

#[test]
fn payload_has_exactly_the_contract_fields() {
    let p = pass(vec![
        svc("web", SyncState::Progressing)
            .drifted("nginx:1.0")
            .corrected(),
    ]);
    let events = Memory::default().observe(&p.facts(t0()));
    let v = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(
        v,
        json!({
            "event": "drift.detected",
            "time": "2023-11-14T22:13:20Z",
            "controllerId": "ecsync",
            "revision": REV,
            "kind": "Service",
            "cluster": "prod",
            "name": "web",
            "state": "Progressing",
            "message": "prod/web: 1 drifted field: taskDefinition.containerDefinitions[web].image; corrected",
            "details": {
                "fields": ["taskDefinition.containerDefinitions[web].image"],
                "replace": [],
                "missing": false,
                "corrected": true
            }
        })
    );
    // Live values may be secret environment values: never in the payload.
    assert!(!v.to_string().contains("nginx:1.0"), "{v}");
}

#[test]
fn every_event_name_is_distinct_and_dotted() {
    let names: std::collections::BTreeSet<_> = EventKind::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(names.len(), 12);
    assert!(names.iter().all(|n| n.split('.').count() == 2), "{names:?}");
    assert!(names.contains("cleanup.deleted") && names.contains("hook.failed"));
    for kind in [
        ObjectKind::Service,
        ObjectKind::Instance,
        ObjectKind::TaskDefinition,
        ObjectKind::Hook,
        ObjectKind::Controller,
    ] {
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
    }
}

#[test]
fn a_lasting_condition_is_sent_once_per_revision() {
    let mut m = Memory::default();
    let report = |rev| Pass {
        revision: rev,
        mode: Mode::Report,
        ..pass(vec![svc("web", SyncState::OutOfSync).drifted("nginx:1.0")])
    };
    let mut sent = Vec::new();
    for (i, rev) in [REV, REV, REV, REV2, REV2].iter().enumerate() {
        let now = t0() + Duration::from_secs(60 * i as u64);
        sent.extend(m.observe(&report(rev).facts(now)));
    }
    let revs: Vec<&str> = sent.iter().map(|e| e.revision.as_str()).collect();
    assert_eq!(revs, [REV, REV2]);
}

#[test]
fn a_new_hand_edit_on_the_same_revision_is_news_the_same_one_is_not() {
    let mut m = Memory::default();
    let edit = |live: &str| {
        pass(vec![
            svc("web", SyncState::Progressing).drifted(live).corrected(),
        ])
    };
    let quiet = pass(vec![svc("web", SyncState::Synced)]);
    let mut sent = Vec::new();
    for p in [
        &edit("evil:1"),
        &quiet,
        &edit("evil:2"),
        &quiet,
        &edit("evil:2"),
    ] {
        sent.extend(m.observe(&p.facts(t0())));
    }
    let got: Vec<String> = sent.iter().map(|e| e.event.to_string()).collect();
    assert_eq!(
        got,
        [
            "drift.detected",
            "service.synced",
            "drift.detected",
            "service.synced"
        ]
    );
}

#[test]
fn synced_follows_a_change_once_it_has_rolled_out() {
    let mut m = Memory::default();
    let rollout = |state| Rollout {
        rollout_state: Some(state),
        desired: 2,
        running: 2,
        ..Default::default()
    };
    let mut moving = svc("web", SyncState::Progressing);
    moving.rollout = Some(rollout(RolloutState::InProgress));
    let mut live = svc("web", SyncState::Synced);
    live.rollout = Some(rollout(RolloutState::Completed));
    let steps = [
        pass(vec![
            svc("web", SyncState::Progressing).drifted("a").corrected(),
        ]),
        pass(vec![moving.clone()]),
        pass(vec![moving]),
        pass(vec![live.clone()]),
        pass(vec![live]),
    ];
    let got: Vec<Vec<String>> = steps
        .iter()
        .map(|p| {
            m.observe(&p.facts(t0()))
                .iter()
                .map(|e| e.event.to_string())
                .collect()
        })
        .collect();
    let want: [&[&str]; 5] = [&["drift.detected"], &[], &[], &["service.synced"], &[]];
    assert_eq!(got, want);
}

#[test]
fn no_synced_without_a_change_nor_after_a_failure() {
    let mut m = Memory::default();
    // Report mode: drift seen, nothing changed, then fixed by hand.
    let seen = Pass {
        mode: Mode::Report,
        ..pass(vec![svc("web", SyncState::OutOfSync).drifted("a")])
    };
    m.observe(&seen.facts(t0()));
    let after = m.observe(&pass(vec![svc("web", SyncState::Synced)]).facts(t0()));
    assert!(after.is_empty(), "{after:?}");

    // A change that degraded: the degraded event, and no synced when it later settles.
    let mut m = Memory::default();
    m.observe(
        &pass(vec![
            svc("api", SyncState::Progressing).drifted("a").corrected(),
        ])
        .facts(t0()),
    );
    let degraded = m.observe(&pass(vec![svc("api", SyncState::Degraded)]).facts(t0()));
    assert_eq!(degraded.len(), 1);
    assert_eq!(degraded[0].event, EventKind::ServiceDegraded);
    let later = m.observe(&pass(vec![svc("api", SyncState::Synced)]).facts(t0()));
    assert!(later.is_empty(), "{later:?}");
}

#[test]
fn a_targeted_pass_keeps_the_rollouts_of_the_services_it_did_not_look_at() {
    let mut m = Memory::default();
    m.observe(
        &pass(vec![
            svc("web", SyncState::Progressing).drifted("a").corrected(),
        ])
        .facts(t0()),
    );
    // Only `api` looked at: nothing about `web`, and `web` is still watched.
    let e = m.observe_partial(&pass(vec![svc("api", SyncState::Synced)]).facts(t0()));
    assert!(e.is_empty(), "{e:?}");
    let e = m.observe(&pass(vec![svc("web", SyncState::Synced)]).facts(t0()));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].event, EventKind::ServiceSynced);
    // The same partial pass through `observe` would have forgotten it.
    let mut m = Memory::default();
    m.observe(
        &pass(vec![
            svc("web", SyncState::Progressing).drifted("a").corrected(),
        ])
        .facts(t0()),
    );
    m.observe(&pass(vec![svc("api", SyncState::Synced)]).facts(t0()));
    let e = m.observe(&pass(vec![svc("web", SyncState::Synced)]).facts(t0()));
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn a_failed_pass_keeps_the_rollouts_it_could_not_see() {
    let mut m = Memory::default();
    m.observe(
        &pass(vec![
            svc("web", SyncState::Progressing).drifted("a").corrected(),
        ])
        .facts(t0()),
    );
    let failed = Pass {
        error: Some("throttled"),
        ..pass(vec![])
    };
    m.observe(&failed.facts(t0()));
    let e = m.observe(&pass(vec![svc("web", SyncState::Synced)]).facts(t0()));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].event, EventKind::ServiceSynced);
}

#[test]
fn migration_steps_are_each_an_event_and_completion_is_one() {
    let mut m = Memory::default();
    let at = |kind, stage, pct, rollbacks: u32, rev| {
        let mut s = svc("mig", SyncState::Progressing);
        let mut d = decision(kind, stage, pct);
        d.rollbacks = rollbacks;
        d.complete_since = Some(t0());
        s.migration = Some((d, true));
        Pass {
            revision: rev,
            ..pass(vec![s])
        }
    };
    let passes = [
        at(Kind::Advance, 1, 10, 0, REV),
        at(Kind::Hold, 1, 10, 0, REV),
        at(Kind::Advance, 2, 50, 0, REV),
        at(Kind::Rollback, 1, 10, 1, REV),
        at(Kind::Advance, 2, 50, 1, REV),
        at(Kind::Advance, 3, 100, 1, REV),
        at(Kind::Complete, 3, 100, 1, REV),
        at(Kind::Complete, 3, 100, 1, REV),
        // An unrelated commit later: still the same completion.
        at(Kind::Complete, 3, 100, 1, REV2),
    ];
    let got: Vec<String> = passes
        .iter()
        .flat_map(|p| m.observe(&p.facts(t0())))
        .map(|e| format!("{} {}", e.event, e.details["percent"]))
        .collect();
    assert_eq!(
        got,
        [
            "migration.step 10",
            "migration.step 50",
            "migration.rollback 10",
            "migration.step 50",
            "migration.step 100",
            "migration.completed 100",
        ]
    );
}

#[test]
fn memory_is_bounded_and_forgets_the_oldest_first() {
    let mut m = Memory::new(3);
    let failing = |name: &str| {
        let mut s = svc(name, SyncState::Error);
        s.error = Some("boom".into());
        pass(vec![s])
    };
    for name in ["a", "b", "c", "d"] {
        assert_eq!(m.observe(&failing(name).facts(t0())).len(), 1, "{name}");
    }
    assert_eq!(m.remembered(), 3);
    // `d` is remembered; `a` was forgotten to make room and is sent again.
    assert!(m.observe(&failing("d").facts(t0())).is_empty());
    assert_eq!(m.observe(&failing("a").facts(t0())).len(), 1);
}

#[test]
fn messages_read_well() {
    let mut many = svc("web", SyncState::OutOfSync);
    many.drift = (0..7)
        .map(|i| FieldDiff {
            path: format!("f{i}"),
            desired: json!(1),
            live: json!(2),
        })
        .collect();
    many.replace = vec!["launchType".into()];
    let p = Pass {
        mode: Mode::Report,
        ..pass(vec![many])
    };
    let e = Memory::default().observe(&p.facts(t0()));
    assert_eq!(
        e[0].message,
        "prod/web: 7 drifted fields: f0, f1, f2, f3, f4 and 2 more; needs replacement: launchType; not corrected (report mode)"
    );
    let mut missing = svc("new", SyncState::OutOfSync);
    missing.exists = false;
    missing.report_only = true;
    let e = Memory::default().observe(&pass(vec![missing]).facts(t0()));
    assert_eq!(
        e[0].message,
        "prod/new: missing from ECS; not corrected (ecsync.io/sync: report)"
    );
    let git = Pass {
        git_error: Some("fetch failed"),
        ..pass(vec![])
    };
    let e = Memory::default().observe(&git.facts(t0()));
    assert_eq!(
        e[0].message,
        "git: fetch failed; still reconciling revision 0123456789ab"
    );
    assert_eq!(e[0].details["source"], "git");
}

#[test]
fn a_failed_hook_is_announced_once_per_run_with_its_exit_code() {
    use crate::core::hooks::{HookPhase, HookStatus};
    let failed = |rev: &'static str| {
        let mut s = svc("web", SyncState::Degraded).drifted("nginx:1.0");
        let mut h = HookStatus::new("migrate", HookPhase::Failed, "hookrev1");
        h.exit_code = Some(3);
        h.reason = Some("container web exited 3: Essential container in task exited".into());
        s.hook = Some(h);
        Pass {
            revision: rev,
            ..pass(vec![s])
        }
    };
    let mut m = Memory::default();
    let first = m.observe(&failed(REV).facts(t0()));
    let hook: Vec<&Event> = first
        .iter()
        .filter(|e| e.event == EventKind::HookFailed)
        .collect();
    assert_eq!(hook.len(), 1, "{first:?}");
    let v = serde_json::to_value(hook[0]).unwrap();
    assert_eq!(v["kind"], "Hook");
    assert_eq!(v["name"], "web/migrate");
    assert_eq!(v["state"], "failed");
    assert_eq!(v["details"]["exitCode"], 3);
    assert!(v["message"].as_str().unwrap().contains("exited 3"), "{v}");
    // The degraded service says why, too.
    let degraded = first
        .iter()
        .find(|e| e.event == EventKind::ServiceDegraded)
        .unwrap();
    assert!(
        degraded.message.contains("pre-deploy hook migrate failed"),
        "{}",
        degraded.message
    );
    // The same run, found failed again on a later commit: not news.
    let again = m.observe(&failed(REV2).facts(t0()));
    assert!(
        again.iter().all(|e| e.event != EventKind::HookFailed),
        "{again:?}"
    );
}

#[test]
fn each_cleanup_deletion_is_one_cleanup_deleted_and_the_listener_change_none() {
    use crate::core::decommission::{CleanupPlan, CleanupStep};
    let plan = CleanupPlan {
        service: key("web"),
        left_forward: true,
        items: Vec::new(),
        steps: vec![
            CleanupStep::LeaveForward {
                target_group_arn: "arn:tg/web-ec2".into(),
            },
            CleanupStep::DeleteLaunchTemplate {
                id: "lt-1".into(),
                name: "web-lt".into(),
            },
            CleanupStep::DeleteGroup {
                name: "web-asg".into(),
            },
        ],
        report_only: false,
        message: String::new(),
    };
    // The group's deletion failed: only what was done is announced.
    let done = ["leave_forward", "delete_launch_template"];
    let p = pass(Vec::new());
    let mut facts = p.facts(t0());
    facts.cleanups = vec![CleanupFacts {
        plan: &plan,
        done: &done,
    }];
    let mut m = Memory::default();
    let events = m.observe(&facts);
    let got: Vec<(String, &str, &str)> = events
        .iter()
        .map(|e| (e.event.to_string(), e.kind.as_str(), e.name.as_str()))
        .collect();
    assert_eq!(
        got,
        [("cleanup.deleted".to_string(), "LaunchTemplate", "web-lt")]
    );
    assert!(
        events[0].message.contains("prod/web"),
        "{}",
        events[0].message
    );
    // Sent once: the same deletion seen again is not news.
    assert!(m.observe(&facts).is_empty());
}
