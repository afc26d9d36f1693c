use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::*;
use crate::core::manifest::{ManifestSet, load};
use crate::core::state::{Mode, SyncState};

const WEB: &str = "apiVersion: ecsync.io/v1alpha1
kind: Service
metadata: {name: web}
spec:
  cluster: prod
  launchType: FARGATE
  taskDefinition:
    family: web
    cpu: '256'
    memory: '512'
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - {name: web, image: 'app:1'}
  networkConfiguration:
    awsvpcConfiguration: {subnets: [subnet-a], securityGroups: [sg-1]}
";

pub(crate) const NIGHTLY: &str = "apiVersion: ecsync.io/v1alpha1
kind: ScheduledTask
metadata:
  name: nightly-report
spec:
  cluster: prod
  schedule: cron(0 3 * * ? *)
  timezone: Asia/Tokyo
  state: ENABLED
  roleArn: arn:aws:iam::123456789012:role/ecsync-scheduler
  taskDefinitionFrom: {service: web}
  launchType: FARGATE
  networkConfiguration:
    awsvpcConfiguration: {subnets: [subnet-b, subnet-a], securityGroups: [sg-1]}
  overrides:
    containerOverrides:
      - name: web
        command: [bin/rails, reports:nightly]
  taskCount: 1
";

fn set_of(files: &[(&str, &str)]) -> ManifestSet {
    load(files.iter().copied())
}

fn errors(set: &ManifestSet) -> Vec<String> {
    set.errors.iter().map(ToString::to_string).collect()
}

#[test]
fn the_design_example_loads_beside_its_service() {
    let set = set_of(&[("web.yaml", WEB), ("nightly.yaml", NIGHTLY)]);
    assert_eq!(errors(&set), Vec::<String>::new());
    assert_eq!(set.services.len(), 1);
    let t = &set.scheduled[0];
    assert_eq!(t.name, "nightly-report");
    // The Service's definition, and so its content hash: one revision serves both.
    assert_eq!(t.task_definition_hash, set.services[0].task_definition_hash);
    let v = t.view();
    assert_eq!(v.timezone, "Asia/Tokyo");
    assert_eq!(v.state, ScheduleState::Enabled);
    let vpc = v
        .network_configuration
        .unwrap()
        .awsvpc_configuration
        .unwrap();
    assert_eq!(vpc.subnets, ["subnet-a", "subnet-b"]);
    assert_eq!(vpc.assign_public_ip.as_deref(), Some("DISABLED"));
}

#[test]
fn defaults_are_filled_in() {
    let text = NIGHTLY
        .replace("  timezone: Asia/Tokyo\n", "")
        .replace("  state: ENABLED\n", "")
        .replace("  taskCount: 1\n", "");
    let set = set_of(&[("web.yaml", WEB), ("nightly.yaml", &text)]);
    assert_eq!(errors(&set), Vec::<String>::new());
    let v = set.scheduled[0].view();
    assert_eq!(
        (v.timezone.as_str(), v.state, v.task_count),
        ("UTC", ScheduleState::Enabled, 1)
    );
}

/// Each broken manifest: the error's `file:line:col` and a word of its message.
#[test]
fn validation_table_with_locations() {
    let table: &[(&str, &str, &str)] = &[
        (
            "  schedule: cron(0 3 * * ? *)\n",
            "  schedule: cron(0 3 * * * *)\n",
            "nightly.yaml:7:13: spec.schedule: cron(0 3 * * * *): exactly one",
        ),
        (
            "  schedule: cron(0 3 * * ? *)\n",
            "  schedule: every night\n",
            "nightly.yaml:7:13: spec.schedule: \"every night\" is not a schedule expression",
        ),
        (
            "  state: ENABLED\n",
            "  state: PAUSED\n",
            "nightly.yaml:9:10: unknown variant",
        ),
        (
            "  roleArn: arn:aws:iam::123456789012:role/ecsync-scheduler\n",
            "  roleArn: ecsync-scheduler\n",
            "nightly.yaml:10:12: spec.roleArn: \"ecsync-scheduler\" is not an IAM role ARN",
        ),
        (
            "  taskDefinitionFrom: {service: web}\n",
            "  taskDefinitionFrom: {service: api}\n",
            "nightly.yaml:11:33: spec.taskDefinitionFrom.service: no Service manifest named \"api\"",
        ),
        (
            "  taskCount: 1\n",
            "  taskCount: 11\n",
            "nightly.yaml:19:14: spec.taskCount: must be from 1 to 10",
        ),
        (
            "  taskCount: 1\n",
            "  taskCount: 1\n  priority: 3\n",
            "nightly.yaml:20:3: unknown field `priority`",
        ),
        (
            "        command: [bin/rails, reports:nightly]\n",
            "        comand: [bin/rails, reports:nightly]\n",
            "nightly.yaml:18:9: unknown field `comand`",
        ),
        (
            "      - name: web\n",
            "      - name: worker\n",
            "nightly.yaml:17:15: spec.overrides.containerOverrides[0].name: no container named \"worker\"",
        ),
        (
            "  launchType: FARGATE\n",
            "  launchType: FARGATE\n  capacityProviderStrategy: [{capacityProvider: FARGATE_SPOT}]\n",
            "nightly.yaml:13:29: spec.capacityProviderStrategy: cannot be combined with launchType",
        ),
        (
            "  networkConfiguration:\n    awsvpcConfiguration: {subnets: [subnet-b, subnet-a], securityGroups: [sg-1]}\n",
            "",
            "nightly.yaml:6:3: spec.networkConfiguration: networkMode awsvpc needs",
        ),
        (
            "  taskDefinitionFrom: {service: web}\n",
            "",
            "nightly.yaml:6:3: spec: needs taskDefinition, or taskDefinitionFrom",
        ),
        (
            "  name: nightly-report\n",
            "  name: nightly report\n",
            "nightly.yaml:4:9: metadata.name: a schedule name is 1-64",
        ),
    ];
    for (from, to, want) in table {
        assert!(NIGHTLY.contains(from), "{from}");
        let text = NIGHTLY.replace(from, to);
        let set = set_of(&[("web.yaml", WEB), ("nightly.yaml", &text)]);
        let got = errors(&set);
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "{to:?}: want {want:?}, got {got:?}"
        );
        assert!(set.scheduled.is_empty());
        // A broken document holds its schedule; its service is untouched.
        assert_eq!(set.services.len(), 1);
        if !to.contains("nightly report") {
            assert!(set.held_scheduled.contains("nightly-report"), "{to:?}");
        }
        assert!(set.broken_files.contains("nightly.yaml"));
    }
}

#[test]
fn an_inline_definition_goes_through_the_service_checks() {
    let text = NIGHTLY.replace(
        "  taskDefinitionFrom: {service: web}\n",
        "  taskDefinition:\n    family: report\n    networkMode: awsvpc\n    requiresCompatibilities: [FARGATE]\n    containerDefinitions:\n      - {name: web, image: ''}\n",
    );
    let set = set_of(&[("nightly.yaml", &text)]);
    let got = errors(&set);
    assert!(
        got.iter().any(|e| e.starts_with(
            "nightly.yaml:12:5: spec.taskDefinition: FARGATE needs task-level cpu and memory"
        )),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|e| e
                .contains("spec.taskDefinition.containerDefinitions[0].image: must not be empty")),
        "{got:?}"
    );
}

#[test]
fn a_scheduled_task_alone_is_a_set() {
    let text = NIGHTLY.replace(
        "  taskDefinitionFrom: {service: web}\n",
        "  taskDefinition:\n    family: report\n    cpu: '256'\n    memory: '512'\n    networkMode: awsvpc\n    requiresCompatibilities: [FARGATE]\n    containerDefinitions:\n      - {name: web, image: 'app:1'}\n",
    );
    let set = set_of(&[("nightly.yaml", &text)]);
    assert_eq!(errors(&set), Vec::<String>::new());
    assert_eq!(set.scheduled[0].task_definition.family, "report");
}

#[test]
fn declared_twice_holds_both() {
    let set = set_of(&[("web.yaml", WEB), ("a.yaml", NIGHTLY), ("b.yaml", NIGHTLY)]);
    assert!(set.scheduled.is_empty());
    assert!(set.held_scheduled.contains("nightly-report"));
    assert!(
        errors(&set)[0].contains("declared twice"),
        "{:?}",
        errors(&set)
    );
}

#[test]
fn overlays_patch_scheduled_tasks() {
    let overlay = "apiVersion: ecsync.io/v1alpha1
kind: Overlay
metadata: {name: prod}
spec:
  resources: [../base]
  patches:
    - target: {kind: ScheduledTask, name: nightly-report}
      patch: {spec: {state: DISABLED, schedule: 'cron(0 4 * * ? *)'}}
";
    let set = set_of(&[
        ("base/web.yaml", WEB),
        ("base/nightly.yaml", NIGHTLY),
        ("prod/kustomization.yaml", overlay),
    ]);
    assert_eq!(errors(&set), Vec::<String>::new());
    let v = set.scheduled[0].view();
    assert_eq!(v.state, ScheduleState::Disabled);
    assert_eq!(v.schedule, "cron(0 4 * * ? *)");

    // A bad patch is located in the overlay that wrote it.
    let bad = overlay.replace("state: DISABLED", "state: OFF");
    let set = set_of(&[
        ("base/web.yaml", WEB),
        ("base/nightly.yaml", NIGHTLY),
        ("prod/kustomization.yaml", &bad),
    ]);
    let got = errors(&set);
    assert!(
        got.iter()
            .any(|e| e.starts_with("prod/kustomization.yaml:8:") && e.contains("spec.state")),
        "{got:?}"
    );
}

fn desired() -> DesiredScheduledTask {
    let set = set_of(&[("web.yaml", WEB), ("nightly.yaml", NIGHTLY)]);
    set.scheduled[0].clone()
}

fn live_of(d: &DesiredScheduledTask) -> LiveSchedule {
    LiveSchedule {
        name: d.name.clone(),
        view: d.view(),
        task_definition_arn: Some(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3".into(),
        ),
        task_definition: LiveTaskDefinition::Described {
            hash: d.task_definition_hash.clone(),
            spec: Box::new(d.task_definition.clone()),
        },
    }
}

#[test]
fn live_input_reads_back_as_the_manifest_wrote_it() {
    let d = desired();
    let input = serde_json::to_string(&d.spec.overrides).unwrap();
    assert_eq!(parse_input(&input), d.view().overrides);
    // Another order of the same environment is the same.
    let a = parse_input(
        r#"{"containerOverrides":[{"name":"w","environment":[{"name":"B","value":"2"},{"name":"A","value":"1"}]}]}"#,
    );
    let b = parse_input(
        r#"{"containerOverrides":[{"name":"w","environment":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}"#,
    );
    assert_eq!(a, b);
    // What is not a TaskOverride is kept, so it shows.
    assert_eq!(parse_input(r#"{"foo": 1}"#), Some(json!({"foo": 1})));
    assert_eq!(parse_input("{}"), None);
    assert_eq!(parse_input(""), None);
}

/// Golden: the structured drift of a hand-edited schedule.
#[test]
fn drift_is_field_level() {
    let d = desired();
    let mut live = live_of(&d);
    assert_eq!(drift(&d, &live), vec![]);
    live.view.schedule = "cron(0 5 * * ? *)".into();
    live.view.state = ScheduleState::Disabled;
    live.view.overrides = parse_input(
        r#"{"containerOverrides":[{"name":"web","command":["bin/rails","reports:weekly"]}]}"#,
    );
    let mut changed = d.task_definition.clone();
    changed.container_definitions[0].image = Some("app:0".into());
    live.task_definition = LiveTaskDefinition::Described {
        hash: "other".into(),
        spec: Box::new(changed),
    };
    let got: Vec<(String, serde_json::Value, serde_json::Value)> = drift(&d, &live)
        .into_iter()
        .map(|f| (f.path, f.desired, f.live))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "overrides.containerOverrides[web].command[1]".into(),
                json!("reports:nightly"),
                json!("reports:weekly")
            ),
            (
                "schedule".into(),
                json!("cron(0 3 * * ? *)"),
                json!("cron(0 5 * * ? *)")
            ),
            ("state".into(), json!("ENABLED"), json!("DISABLED")),
            (
                "taskDefinition.containerDefinitions[web].image".into(),
                json!("app:1"),
                json!("app:0")
            ),
        ]
    );
}

fn observed(live: Vec<LiveSchedule>) -> ObservedSchedules {
    ObservedSchedules {
        group: Group::Owned {
            arn: "arn:aws:scheduler:us-east-1:123456789012:schedule-group/ecsync-ecsync".into(),
        },
        schedules: live.into_iter().map(|l| (l.name.clone(), l)).collect(),
    }
}

struct Ctx {
    known: BTreeMap<String, String>,
    missing: BTreeSet<String>,
    held: BTreeSet<String>,
}

impl Ctx {
    fn new() -> Self {
        Ctx {
            known: BTreeMap::new(),
            missing: BTreeSet::new(),
            held: BTreeSet::new(),
        }
    }
    fn ctx(&self, prune: Option<usize>, blocked: Option<&'static str>) -> ScheduledContext<'_> {
        ScheduledContext {
            controller_id: "ecsync",
            mode: Mode::Auto,
            prune,
            known_revisions: &self.known,
            missing_clusters: &self.missing,
            held: &self.held,
            prune_blocked: blocked,
        }
    }
}

fn actions(p: &ScheduledPlan) -> Vec<&'static str> {
    p.actions.iter().map(ScheduledAction::as_str).collect()
}

#[test]
fn plan_creates_the_group_and_registers_only_unknown_content() {
    let d = desired();
    let c = Ctx::new();
    let missing = ObservedSchedules {
        group: Group::Missing,
        schedules: BTreeMap::new(),
    };
    let plan = plan_schedules(std::slice::from_ref(&d), &missing, &c.ctx(None, None));
    assert!(plan.create_group);
    assert_eq!(plan.group, "ecsync-ecsync");
    assert_eq!(
        actions(&plan.tasks[0]),
        ["register_task_definition", "create_schedule"]
    );
    // The service already runs this content: no second revision.
    let mut c = Ctx::new();
    c.known
        .insert(d.task_definition_hash.clone(), "arn:td/web:7".into());
    let plan = plan_schedules(std::slice::from_ref(&d), &missing, &c.ctx(None, None));
    assert_eq!(actions(&plan.tasks[0]), ["create_schedule"]);
    assert_eq!(
        plan.tasks[0].task_definition_arn.as_deref(),
        Some("arn:td/web:7")
    );
}

#[test]
fn plan_updates_drift_and_leaves_a_synced_schedule_alone() {
    let d = desired();
    let c = Ctx::new();
    let live = live_of(&d);
    let plan = plan_schedules(
        std::slice::from_ref(&d),
        &observed(vec![live.clone()]),
        &c.ctx(None, None),
    );
    assert!(!plan.create_group);
    assert!(plan.tasks[0].in_sync());
    assert!(plan.tasks[0].actions.is_empty());
    assert_eq!(plan.tasks[0].state(false, false), SyncState::Synced);

    let mut drifted = live;
    drifted.view.timezone = "UTC".into();
    let plan = plan_schedules(
        std::slice::from_ref(&d),
        &observed(vec![drifted.clone()]),
        &c.ctx(None, None),
    );
    let p = &plan.tasks[0];
    assert_eq!(
        p.actions,
        vec![ScheduledAction::UpdateSchedule {
            fields: BTreeSet::from(["timezone".to_string()])
        }]
    );
    // The live revision is kept: only the schedule changed.
    assert_eq!(p.task_definition_arn, drifted.task_definition_arn);
    assert_eq!(p.state(false, false), SyncState::OutOfSync);
    assert_eq!(p.state(true, false), SyncState::Synced);

    let c = Ctx::new();
    let mut report = c.ctx(None, None);
    report.mode = Mode::Report;
    let plan = plan_schedules(std::slice::from_ref(&d), &observed(vec![drifted]), &report);
    assert!(plan.tasks[0].report_only);
    assert!(!plan.tasks[0].runnable());
}

#[test]
fn plan_prunes_only_with_prune_within_the_cap_and_never_when_blocked() {
    let d = desired();
    let mut a = live_of(&d);
    a.name = "a-old".into();
    let mut b = live_of(&d);
    b.name = "b-old".into();
    let obs = observed(vec![a, b, live_of(&d)]);
    let c = Ctx::new();
    let by_name =
        |plan: &SchedulesPlan, n: &str| plan.tasks.iter().find(|p| p.name == n).cloned().unwrap();

    let plan = plan_schedules(std::slice::from_ref(&d), &obs, &c.ctx(None, None));
    let p = by_name(&plan, "a-old");
    assert!(p.actions.is_empty() && !p.drift.is_empty());
    assert!(p.message.unwrap().contains("--prune"));

    let plan = plan_schedules(std::slice::from_ref(&d), &obs, &c.ctx(Some(1), None));
    assert_eq!(actions(&by_name(&plan, "a-old")), ["delete_schedule"]);
    let deferred = by_name(&plan, "b-old");
    assert!(deferred.actions.is_empty());
    assert!(deferred.message.unwrap().contains("--max-prune-per-pass"));
    assert!(by_name(&plan, "nightly-report").actions.is_empty());

    let plan = plan_schedules(
        std::slice::from_ref(&d),
        &obs,
        &c.ctx(Some(5), Some("a manifest has errors")),
    );
    let held = by_name(&plan, "a-old");
    assert!(held.actions.is_empty());
    assert!(held.held.unwrap().contains("a manifest has errors"));

    // A schedule whose manifest failed to parse is held, not pruned.
    let mut c = Ctx::new();
    c.held.insert("a-old".into());
    let plan = plan_schedules(std::slice::from_ref(&d), &obs, &c.ctx(Some(5), None));
    let held = by_name(&plan, "a-old");
    assert!(held.actions.is_empty() && held.held.is_some());
    assert_eq!(actions(&by_name(&plan, "b-old")), ["delete_schedule"]);
}

#[test]
fn a_group_ecsync_does_not_own_is_never_written() {
    let d = desired();
    let c = Ctx::new();
    let mut obs = observed(vec![]);
    obs.group = Group::NotOwned {
        arn: "arn:aws:scheduler:us-east-1:123456789012:schedule-group/ecsync-ecsync".into(),
    };
    let mut stray = live_of(&d);
    stray.name = "theirs".into();
    obs.schedules.insert("theirs".into(), stray);
    let plan = plan_schedules(std::slice::from_ref(&d), &obs, &c.ctx(Some(5), None));
    assert!(!plan.create_group);
    assert_eq!(plan.tasks.len(), 1);
    assert!(plan.tasks[0].actions.is_empty());
    assert!(plan.tasks[0].error.as_ref().unwrap().contains("not tagged"));
}

#[test]
fn a_missing_cluster_is_an_error() {
    let d = desired();
    let mut c = Ctx::new();
    c.missing.insert("prod".into());
    let plan = plan_schedules(
        std::slice::from_ref(&d),
        &observed(vec![]),
        &c.ctx(None, None),
    );
    assert!(plan.tasks[0].actions.is_empty());
    assert_eq!(plan.tasks[0].state(false, false), SyncState::Error);
}
