//! Renders the metrics after exercising every method and feeds them to `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};

use ecsync::core::state::SyncState;
use ecsync::runtime::metrics::Metrics;

fn exercise_everything(m: &Metrics) {
    m.observe_reconcile("ok", "full", 0.3);
    m.observe_reconcile("partial", "targeted", 12.0);
    m.set_services("Synced", 1);
    m.set_service_states(&[(SyncState::Synced, 2), (SyncState::Held, 1)]);
    m.set_service_drift("prod", "web", 3);
    m.set_service_drift("prod", "gone", 1);
    m.remove_service("prod", "gone");
    m.set_git_revision("0123456789abcdef");
    m.git_fetch("ok");
    m.git_fetch("error");
    m.aws_call("ECS", "DescribeServices", "ok");
    m.aws_call("EC2", "DescribeInstances", "throttled");
    m.aws_call("Elastic Load Balancing v2", "ModifyListener", "error");
    m.action("UpdateService", "ok");
    m.action("RegisterTaskDefinition", "error");
    m.set_migration_percent("prod", "web", 50);
    m.migration_gate_failure("prod", "web", "healthy-targets");
    m.decommission("stop");
    m.decommission("terminate");
    m.set_ec2_orphans("pending", 2);
    m.set_ec2_orphans("protected", 1);
    m.webhook("accepted");
    m.webhook("unauthorized");
}

/// Runs `promtool check metrics` on `text`; panics with promtool's findings when it rejects it.
fn promtool_check(text: &str, what: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool not found: install Debian's `prometheus` package (apt-get install prometheus)"
        ),
        Err(e) => panic!("could not run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics rejected the {what} output ({}):\nstdout: {}\nstderr: {}\n--- input ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

#[test]
fn promtool_accepts_the_default_exposition() {
    let m = Metrics::new();
    exercise_everything(&m);
    promtool_check(&m.encode().unwrap(), "Prometheus text");
}

#[test]
fn promtool_accepts_a_fresh_registry() {
    promtool_check(&Metrics::new().encode().unwrap(), "fresh");
}

#[test]
fn promtool_check_catches_a_bad_exposition() {
    // Guards the check itself: a lint-failing counter name must make `promtool_check` panic.
    let bad = "# HELP bad_counter x\n# TYPE bad_counter counter\nbad_counter 1\n";
    let payload = std::panic::catch_unwind(|| promtool_check(bad, "bad"))
        .expect_err("promtool accepted a counter without _total");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    // Must be promtool's verdict, not a missing promtool.
    assert!(msg.contains("rejected the bad output"), "{msg}");
    assert!(
        msg.contains("counter metrics should have \"_total\" suffix"),
        "{msg}"
    );
}
