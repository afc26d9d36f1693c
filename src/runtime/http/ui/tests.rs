//! The pages as pure functions of a snapshot: what they show, what they hide,
//! and that nothing from a manifest, Git or AWS reaches them unescaped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::{dashboard, detail};
use crate::core::diff::FieldDiff;
use crate::core::state::SyncState;
use crate::runtime::status::{
    ActionRecord, CommitStatus, GateResult, InstanceStatus, MigrationStatus, PassKind, PassSummary,
    Role, ServiceStatus, StatusSnapshot,
};

/// 2023-11-14T22:13:20Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

const XSS: &str = "<script>alert(1)</script>";

fn service(name: &str, state: SyncState) -> ServiceStatus {
    ServiceStatus {
        cluster: "prod".into(),
        service: name.into(),
        source: Some("services/web.yaml".into()),
        state,
        drift: Vec::new(),
        ignored: Vec::new(),
        actions: Vec::new(),
        last_error: None,
        message: None,
        migration: None,
        hook: None,
        pending: Vec::new(),
        recent_actions: Vec::new(),
    }
}

fn snapshot() -> StatusSnapshot {
    let mut web = service("web", SyncState::Progressing);
    web.drift = vec![
        FieldDiff {
            path: "taskDefinition.containerDefinitions[web].environment[DATABASE_URL].value".into(),
            desired: json!("postgres://app:hunter2@db/prod"),
            live: json!("postgres://app:old-pass@db/prod"),
        },
        FieldDiff {
            path: "desiredCount".into(),
            desired: json!(3),
            live: json!(2),
        },
    ];
    web.migration = Some(MigrationStatus {
        step: Some(1),
        percent: 50,
        gates: vec![
            GateResult {
                name: "deployment".into(),
                passed: true,
                detail: "rollout COMPLETED".into(),
            },
            GateResult {
                name: "ecs-healthy".into(),
                passed: false,
                detail: format!("1/2 healthy {XSS}"),
            },
        ],
        rollbacks: 1,
        message: Some("holding step 2/3 (50%)".into()),
        steps: vec![10, 50, 100],
        next_step_at: Some("2023-11-14T22:15:20Z".into()),
    });
    web.pending = vec!["update_service: desiredCount".into()];
    web.recent_actions = vec![ActionRecord {
        at: "2023-11-14T22:12:20Z".into(),
        pass_id: 6,
        actions: vec!["advance_traffic".into()],
        result: "ok".into(),
        error: None,
    }];
    let mut api = service("api", SyncState::Error);
    api.last_error = Some(format!("AccessDenied: {XSS}"));
    StatusSnapshot {
        revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
        commit: Some(CommitStatus {
            subject: format!("bump web {XSS}"),
            time: "2023-11-14T21:13:20Z".into(),
        }),
        git_error: None,
        mode: "auto".into(),
        role: Role::Leader,
        lease_token: Some(4),
        last_pass: Some(PassSummary {
            pass_id: 7,
            started_at: "2023-11-14T22:13:10Z".into(),
            duration_ms: 1500,
            result: "partial".into(),
            kind: PassKind::Webhook,
            scope: crate::runtime::status::PassScope::Full,
            services: None,
            reason: None,
        }),
        services: vec![web, api],
        decommission: vec![InstanceStatus {
            instance_id: "i-0abc".into(),
            state: "pending".into(),
            reason: Some("migration of prod/web at 100% on ECS".into()),
            action: Some("stop".into()),
            acts_at: Some("2023-11-14T22:17:20Z".into()),
            skipped: None,
            done: vec!["tag".into(), "deregister".into()],
            message: "stop at 2023-11-14T22:17:20Z".into(),
            last_error: None,
        }],
        scheduled_tasks: Vec::new(),
        decommission_groups: Vec::new(),
        decommission_cleanup: Vec::new(),
        passes: vec![PassSummary {
            pass_id: 7,
            started_at: "2023-11-14T22:13:10Z".into(),
            duration_ms: 1500,
            result: "partial".into(),
            kind: PassKind::Webhook,
            scope: crate::runtime::status::PassScope::Full,
            services: None,
            reason: None,
        }],
    }
}

/// Every `src=` and `href=` value on the page.
fn urls(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = page;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap_or(rest.len());
            out.push(rest[..end].to_string());
        }
    }
    out
}

fn assert_self_contained(page: &str) {
    for url in urls(page) {
        assert!(
            url.starts_with('/') && !url.starts_with("//")
                || url.starts_with('?')
                || url.starts_with("data:"),
            "page links outside: {url}"
        );
    }
    assert_eq!(
        page.matches("<script").count(),
        1,
        "only the page's own script"
    );
}

#[test]
fn dashboard_shows_revision_services_migration_queue_and_passes() {
    let page = dashboard::render(&snapshot(), now());
    assert!(
        page.contains(r#"title="0123456789abcdef0123456789abcdef01234567">0123456789ab</code>"#)
    );
    assert!(
        page.contains(r#"title="2023-11-14T21:13:20Z">1h 0m ago</time>"#),
        "commit time"
    );
    assert!(page.contains("<dt>Mode</dt><dd>auto</dd>"));
    // A long subject is cut, whole in its title.
    let mut long = snapshot();
    long.commit.as_mut().unwrap().subject = "x".repeat(300);
    let long = dashboard::render(&long, now());
    assert!(long.contains(&format!(
        r#"title="{x}">{y}…</span>"#,
        x = "x".repeat(300),
        y = "x".repeat(100)
    )));
    assert!(page.contains("leader, lease token 4"));
    // Each service, linked, with its coloured state and drift count.
    assert!(page.contains(r#"<a href="/ui/services/prod/web">prod/web</a>"#));
    assert!(page.contains(r#"class="state s-Progressing" data-state="Progressing""#));
    assert!(page.contains(r#"<td data-drift="2">2 fields</td>"#));
    assert!(page.contains(r#"class="state s-Error""#));
    assert!(page.contains("1 Progressing, 1 Error"));
    // The queue's countdown.
    assert!(page.contains(
        r#"<time datetime="2023-11-14T22:17:20Z" title="2023-11-14T22:17:20Z" data-live="countdown">in 4m 0s</time>"#
    ));
    assert!(page.contains(r#"href="/ui/instances/i-0abc""#));
    // The passes.
    assert!(page.contains("<td>#7</td>"));
    assert!(page.contains("<td>webhook</td><td>1.5 s</td>"));
    assert!(page.contains(r#"class="state r-partial""#));
    assert_self_contained(&page);
}

#[test]
fn the_migration_bar_shows_percent_steps_gates_and_the_next_step() {
    let page = dashboard::render(&snapshot(), now());
    assert!(page.contains(r#"role="progressbar" aria-label="traffic on ECS" aria-valuemin="0" aria-valuemax="100" aria-valuenow="50""#));
    assert!(page.contains(r#"<span class="fill" style="width:50%"></span>"#));
    for tick in [10, 50, 100] {
        assert!(page.contains(&format!(r#"<span class="tick" style="left:{tick}%">"#)));
    }
    assert!(page.contains(r#"<li class="done">10%"#));
    assert!(page.contains(r#"<li class="done current">50%"#));
    assert!(page.contains(r#"<li class="">100%"#));
    assert!(page.contains("<strong>50% on ECS</strong>, step 2 of 3"));
    assert!(page.contains("1 rollbacks"));
    assert!(page.contains(r#"<span class="pass">✓ passed</span> <strong>deployment</strong>"#));
    assert!(
        page.contains(r#"<span class="fail">✗ not passed</span> <strong>ecs-healthy</strong>"#)
    );
    assert!(page.contains(r#"Next step (if the gates pass): <time datetime="2023-11-14T22:15:20Z" title="2023-11-14T22:15:20Z" data-live="countdown">in 2m 0s</time>."#));
    // Once the interval is over the step is due, whenever the page is read.
    let later = now() + Duration::from_secs(600);
    let page = dashboard::render(&snapshot(), later);
    assert!(page.contains(r#"data-live="countdown">due</time>."#));
}

#[test]
fn migration_ends_read_complete_or_waiting_for_gates() {
    let mut s = snapshot();
    let m = s.services[0].migration.as_mut().unwrap();
    m.step = Some(2);
    m.percent = 100;
    m.next_step_at = None;
    assert!(dashboard::render(&s, now()).contains(r#"<p class="next">Complete.</p>"#));
    let m = s.services[0].migration.as_mut().unwrap();
    m.step = None;
    m.percent = 0;
    let page = dashboard::render(&s, now());
    assert!(page.contains("Next step as soon as the gates pass."));
    assert!(page.contains("before the first step"));
}

#[test]
fn everything_from_manifests_git_and_aws_is_escaped() {
    let mut s = snapshot();
    s.git_error = Some(format!("fetch failed: {XSS}"));
    s.services[1].cluster = "<c>".into();
    s.decommission[0].instance_id = "i-\"><x>".into();
    let page = dashboard::render(&s, now());
    assert!(!page.contains(XSS), "raw markup reached the page");
    assert!(page.contains("bump web &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("AccessDenied: &lt;script&gt;"));
    assert!(page.contains(r#"id="git-error""#));
    assert!(page.contains(r#"<a href="/ui/services/%3Cc%3E/api">&lt;c&gt;/api</a>"#));
    assert!(page.contains(r#"href="/ui/instances/i-%22%3E%3Cx%3E""#));
    assert_self_contained(&page);
    let detail = detail::service(&s, "prod", "web", now()).unwrap();
    assert!(!detail.contains(XSS));
    assert_self_contained(&detail);
}

#[test]
fn service_page_shows_drift_git_against_live_with_secrets_hidden() {
    let page = detail::service(&snapshot(), "prod", "web", now()).unwrap();
    assert!(page.contains(
        "<code>taskDefinition.containerDefinitions[web].environment[DATABASE_URL].value</code>"
    ));
    for secret in ["hunter2", "old-pass", "postgres://"] {
        assert!(!page.contains(secret), "{secret} shown");
    }
    assert_eq!(page.matches("data-secret>secret, not shown").count(), 2);
    assert!(page.contains("<td><code>3</code></td><td><code>2</code></td>"));
    assert_self_contained(&page);
}

#[test]
fn service_page_shows_plan_migration_and_recent_actions() {
    let page = detail::service(&snapshot(), "prod", "web", now()).unwrap();
    assert!(page.contains(r#"<li class="pending">update_service: desiredCount</li>"#));
    assert!(page.contains(r#"id="migration""#));
    assert!(page.contains(r#"aria-valuenow="50""#));
    assert!(page.contains("<td>#6</td><td>advance_traffic</td>"));
    assert!(page.contains(r#"data-live="tick">1m 0s ago</time>"#));
    // Report mode says it will not act.
    let mut s = snapshot();
    s.mode = "report".into();
    let page = detail::service(&s, "prod", "web", now()).unwrap();
    assert!(page.contains("Report mode: what a pass would do, and will not."));
}

#[test]
fn unknown_objects_have_no_page() {
    let s = snapshot();
    assert!(detail::service(&s, "prod", "nope", now()).is_none());
    assert!(detail::service(&s, "staging", "web", now()).is_none());
    assert!(detail::instance(&s, "i-none", now()).is_none());
    let nf = detail::not_found(&format!("Service {XSS}"), now());
    assert!(!nf.contains(XSS));
}

#[test]
fn instance_page_counts_down_to_its_action() {
    let page = detail::instance(&snapshot(), "i-0abc", now()).unwrap();
    assert!(page.contains(r#"data-live="countdown">in 4m 0s</time> (2023-11-14T22:17:20Z)"#));
    assert!(page.contains("<dt>Action</dt><dd>stop</dd>"));
    assert!(page.contains("<dt>Done in the last pass</dt><dd>tag, deregister</dd>"));
}

#[test]
fn before_the_first_pass_and_as_a_follower_the_page_says_so() {
    let s = StatusSnapshot::new(crate::core::state::Mode::Report, Role::Follower);
    let page = dashboard::render(&s, now());
    assert!(page.contains("follower (the leader acts; this replica only serves)"));
    assert!(page.contains("(drift is reported, nothing is changed)"));
    assert!(page.contains("None reported yet."));
    assert!(page.contains("No EC2 instance is queued."));
    assert_self_contained(&page);
}

#[test]
fn pages_are_for_phones_and_dark_mode_too() {
    let page = dashboard::render(&snapshot(), now());
    assert!(
        page.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)
    );
    assert!(page.contains("@media (prefers-color-scheme:dark)"));
    assert!(page.contains(r#"<body data-now="1700000000000">"#));
}

#[test]
fn without_script_the_page_says_to_reload() {
    let page = dashboard::render(&snapshot(), now());
    assert!(page.contains(r#"<span id="refresh">Reload the page for newer passes.</span>"#));
    assert!(page.contains("location.reload(); }, 10 * 1000);"));
}
