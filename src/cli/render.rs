//! Human and JSON renderings of a pass, for the one-shot commands.

use std::fmt::Write;

use serde_json::{Value, json};

use ecsync::adapters::aws::interceptor::CallCounts;
use ecsync::core::manifest::ManifestSet;
use ecsync::core::scheduled::ScheduledAction;
use ecsync::core::state::SyncState;
use ecsync::runtime::reconciler::{PassReport, ServiceOutcome};
use ecsync::runtime::status::{migration_status, scheduled_task_status, service_status};

fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

fn marker(o: &ServiceOutcome) -> char {
    match o.state {
        SyncState::Synced => '=',
        SyncState::Error => '!',
        SyncState::Held => '#',
        _ if !o.plan.exists => '+',
        _ if !o.plan.in_sync() => '~',
        _ => '=',
    }
}

fn header(out: &mut String, o: &ServiceOutcome) {
    let _ = write!(out, "{} {}  {}", marker(o), o.plan.key, o.state.as_str());
    if let Some(src) = &o.plan.source {
        let _ = write!(out, "  ({src})");
    }
    out.push('\n');
}

fn details(out: &mut String, o: &ServiceOutcome) {
    if let Some(e) = &o.error {
        let _ = writeln!(out, "    error: {e}");
    }
    if let Some(h) = &o.plan.held {
        let _ = writeln!(out, "    held: {h}");
    }
    if let Some(w) = &o.plan.waiting {
        let _ = writeln!(out, "    waits: {w}; nothing is changed until then");
    }
    if let Some(m) = &o.plan.message {
        let _ = writeln!(out, "    {m}");
    }
    if !o.plan.exists && o.error.is_none() && o.plan.held.is_none() {
        let _ = writeln!(out, "    missing: the service will be created");
    } else {
        for d in &o.plan.drift {
            let _ = writeln!(out, "    {}", d.path);
            let _ = writeln!(out, "      git:  {}", d.desired);
            let _ = writeln!(out, "      live: {}", d.live);
        }
    }
    // Not drift, but not hidden either.
    for i in &o.plan.ignored {
        let _ = writeln!(
            out,
            "    ignored ({}): {} live {}",
            i.reason.as_str(),
            i.path,
            i.live
        );
    }
    if !o.plan.replace.is_empty() {
        let _ = writeln!(
            out,
            "    needs replacement: {} cannot change in place (replaced only with --prune)",
            o.plan.replace.join(", ")
        );
    }
    if o.plan.report_only && o.plan.is_mutating() {
        let _ = writeln!(out, "    report only: nothing will be changed");
    }
    hook(out, o);
}

/// Where the pre-deploy hooks stand between the service and its new revision.
fn hook(out: &mut String, o: &ServiceOutcome) {
    if let Some(h) = &o.hook {
        let _ = writeln!(out, "    {}", h.summary());
    }
}

/// The migration's state and the step a pass takes (or, read-only, would take).
fn migration(out: &mut String, o: &ServiceOutcome, verb: &str) {
    let Some(m) = &o.migration else { return };
    let st = migration_status(m);
    let step = st.step.map_or("none".to_string(), |i| (i + 1).to_string());
    let _ = writeln!(
        out,
        "    migration: {}% on ECS, step {step}, {} rollbacks",
        st.percent, st.rollbacks
    );
    for g in &st.gates {
        let mark = if g.passed { "ok" } else { "--" };
        let _ = writeln!(out, "      gate {mark} {}: {}", g.name, g.detail);
    }
    if let Some(next) = m.next_step() {
        let _ = writeln!(out, "    {verb}: {next}");
    } else if let Some(msg) = &st.message {
        let _ = writeln!(out, "      {msg}");
    }
}

fn manifest_errors(out: &mut String, set: &ManifestSet) {
    for e in &set.errors {
        let _ = writeln!(out, "! {e}");
    }
    for w in &set.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
}

/// One instance or Auto Scaling group of a fleet being decommissioned, as the
/// text output shows it.
struct FleetMember<'a> {
    head: String,
    action: Option<&'a str>,
    why: Option<String>,
    message: &'a str,
    done: &'a [&'a str],
    steps: Vec<&'a str>,
    error: Option<&'a str>,
}

/// Instances and groups are decided by the same steps, so they read the same:
/// what and why, then what was done (or would be) and any error.
fn fleet_member_lines(out: &mut String, m: FleetMember<'_>, acted: bool) {
    let _ = write!(out, "~ {}", m.head);
    if let Some(a) = m.action {
        let _ = write!(out, " ({a})");
    }
    let _ = writeln!(out);
    if let Some(why) = &m.why {
        let _ = writeln!(out, "    because: {why}");
    }
    if !m.message.is_empty() {
        let _ = writeln!(out, "    {}", m.message);
    }
    if acted && !m.done.is_empty() {
        let _ = writeln!(out, "    did: {}", m.done.join(", "));
    } else if !m.steps.is_empty() {
        let _ = writeln!(out, "    would: {}", m.steps.join(", "));
    }
    if let Some(e) = m.error {
        let _ = writeln!(out, "    error: {e}");
    }
}

/// EC2 instances pending decommission, skipped or released, and when each acts.
fn decommission_lines(out: &mut String, report: &PassReport, acted: bool) {
    let d = &report.decommission;
    if let Some(e) = &d.error {
        let _ = writeln!(out, "! decommission: {e}");
    }
    for i in &d.instances {
        let p = &i.plan;
        fleet_member_lines(
            out,
            FleetMember {
                head: format!("instance {} {}", p.instance_id, p.state.as_str()),
                action: p.action.map(|a| a.as_str()),
                why: p.why.as_ref().map(|w| w.to_string()),
                message: &p.message,
                done: &i.done,
                steps: p.steps.iter().map(|s| s.name()).collect(),
                error: i.error.as_deref(),
            },
            acted,
        );
    }
    for g in &d.groups {
        let p = &g.plan;
        fleet_member_lines(
            out,
            FleetMember {
                head: format!("auto scaling group {} {}", p.group, p.state.as_str()),
                action: p.action.map(|a| a.as_str()),
                why: p.why.as_ref().map(|w| w.to_string()),
                message: &p.message,
                done: &g.done,
                steps: p.steps.iter().map(|s| s.name()).collect(),
                error: g.error.as_deref(),
            },
            acted,
        );
    }
    for c in &d.cleanup {
        let p = &c.plan;
        let _ = writeln!(out, "~ cleanup after {} ({})", p.service, p.message);
        for i in &p.items {
            let name = i.name.as_deref().unwrap_or("-");
            let _ = writeln!(
                out,
                "    {} {name}: {} ({})",
                i.item.as_str(),
                i.state.as_str(),
                i.message
            );
        }
        if acted && !c.done.is_empty() {
            let _ = writeln!(out, "    did: {}", c.done.join(", "));
        } else if !p.steps.is_empty() {
            let names: Vec<&str> = p.steps.iter().map(|s| s.name()).collect();
            let _ = writeln!(out, "    would: {}", names.join(", "));
        }
        if let Some(e) = &c.error {
            let _ = writeln!(out, "    error: {e}");
        }
    }
    for h in &d.held_by_shard {
        let _ = writeln!(
            out,
            "~ {} {} held by shard {}\n    {}",
            h.kind.as_str(),
            h.id,
            h.shard,
            h.reason
        );
    }
    leftover_lines(out, &d.leftovers, acted);
}

/// What fleets leave behind: reported, never deleted.
fn leftover_lines(
    out: &mut String,
    l: &ecsync::runtime::reconciler::leftovers::LeftoversReport,
    acted: bool,
) {
    for f in &l.found {
        let _ = writeln!(
            out,
            "~ leftover {} (not deleted)",
            ecsync::runtime::reconciler::leftovers::describe(f)
        );
    }
    for r in &l.recorded {
        let verb = if acted && r.tagged {
            "recorded"
        } else {
            "would record"
        };
        for i in &r.items {
            match &i.skipped {
                None => {
                    let _ = writeln!(
                        out,
                        "~ {verb} {} {} as a leftover of {}",
                        i.kind.as_str(),
                        i.id,
                        r.service
                    );
                }
                Some(why) => {
                    let _ = writeln!(
                        out,
                        "~ not a leftover of {}: {} {} ({why})",
                        r.service,
                        i.kind.as_str(),
                        i.id
                    );
                }
            }
        }
        if let Some(e) = &r.error {
            let _ = writeln!(out, "! leftovers of {}: {e}", r.service);
        }
    }
    if let Some(e) = &l.error {
        let _ = writeln!(out, "! leftovers: {e}");
    }
}

/// Scheduled tasks: the group, then each schedule's drift and what the pass
/// did, or (`acted` false) would do.
fn scheduled_lines(out: &mut String, report: &PassReport, acted: bool) {
    let r = &report.scheduled;
    if let Some(e) = &r.error {
        let _ = writeln!(out, "! schedule group {}: {e}", r.group);
    }
    if r.create_group && !r.group_created {
        let _ = writeln!(
            out,
            "+ schedule group {}: {}",
            r.group,
            if acted {
                "not created"
            } else {
                "would be created"
            }
        );
    } else if r.group_created {
        let _ = writeln!(out, "+ schedule group {}: created", r.group);
    }
    for t in &r.tasks {
        let p = &t.plan;
        let mark = match t.state {
            SyncState::Error => '!',
            SyncState::Held => '#',
            SyncState::Synced if acted && !t.done.is_empty() => '=',
            _ if !p.exists => '+',
            _ if p.actions.contains(&ScheduledAction::DeleteSchedule) => '-',
            _ if !p.in_sync() => '~',
            _ => '=',
        };
        let _ = write!(out, "{mark} schedule {}  {}", p.name, t.state.as_str());
        if let Some(src) = &p.source {
            let _ = write!(out, "  ({src})");
        }
        out.push('\n');
        if let Some(e) = &t.error {
            let _ = writeln!(out, "    error: {e}");
        }
        if let Some(h) = &p.held {
            let _ = writeln!(out, "    held: {h}");
        }
        if let Some(m) = &p.message {
            let _ = writeln!(out, "    {m}");
        }
        if acted && !t.done.is_empty() {
            let done: Vec<&str> = t.done.iter().map(ScheduledAction::as_str).collect();
            let _ = writeln!(out, "    did: {}", done.join(", "));
            continue;
        }
        if !p.exists && t.error.is_none() && p.held.is_none() {
            let _ = writeln!(out, "    missing: the schedule will be created");
        } else {
            for d in p.drift.iter().filter(|d| !d.path.is_empty()) {
                let _ = writeln!(out, "    {}", d.path);
                let _ = writeln!(out, "      git:  {}", d.desired);
                let _ = writeln!(out, "      live: {}", d.live);
            }
        }
        if !p.actions.is_empty() && p.held.is_none() && t.error.is_none() {
            let names: Vec<&str> = p.actions.iter().map(ScheduledAction::as_str).collect();
            let verb = if p.report_only && !acted {
                "report only, would"
            } else {
                "would"
            };
            let _ = writeln!(out, "    {verb}: {}", names.join(", "));
        }
    }
}

pub fn diff_text(set: &ManifestSet, report: &PassReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "revision {}", short(&report.revision));
    manifest_errors(&mut out, set);
    if let Some(e) = &report.error {
        let _ = writeln!(out, "! {e}");
    }
    for o in &report.services {
        header(&mut out, o);
        details(&mut out, o);
        if !o.plan.actions.is_empty() && o.plan.held.is_none() {
            let names: Vec<&str> = o.plan.actions.iter().map(|a| a.name()).collect();
            let _ = writeln!(out, "    plan: {}", names.join(", "));
        }
        migration(&mut out, o, "next migration step");
    }
    scheduled_lines(&mut out, report, false);
    decommission_lines(&mut out, report, false);
    let drifted = report.drifted().count();
    let _ = writeln!(
        out,
        "{} services, {} in sync, {} drifted",
        report.services.len(),
        report.services.len() - drifted,
        drifted
    );
    out
}

pub fn apply_text(
    set: &ManifestSet,
    report: &PassReport,
    counts: &CallCounts,
    dry_run: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "revision {}{}",
        short(&report.revision),
        if dry_run {
            " (dry run: nothing is changed)"
        } else {
            ""
        }
    );
    manifest_errors(&mut out, set);
    if let Some(e) = &report.error {
        let _ = writeln!(out, "! {e}");
    }
    for o in &report.services {
        header(&mut out, o);
        if o.done.is_empty() {
            details(&mut out, o);
            if dry_run && !o.plan.actions.is_empty() && o.plan.held.is_none() {
                let names: Vec<&str> = o.plan.actions.iter().map(|a| a.name()).collect();
                let _ = writeln!(out, "    would: {}", names.join(", "));
            }
            migration(&mut out, o, if dry_run { "would" } else { "migration" });
        } else {
            let done: Vec<&str> = o.done.iter().map(|a| a.as_str()).collect();
            let _ = writeln!(out, "    did: {}", done.join(", "));
            if let Some(e) = &o.error {
                let _ = writeln!(out, "    error: {e}");
            }
            hook(&mut out, o);
            migration(&mut out, o, "migration");
        }
    }
    scheduled_lines(&mut out, report, !dry_run);
    decommission_lines(&mut out, report, !dry_run);
    let changed = report
        .services
        .iter()
        .filter(|o| !o.done.is_empty())
        .count();
    let errors = report
        .services
        .iter()
        .filter(|o| o.state == SyncState::Error)
        .count();
    let _ = writeln!(
        out,
        "{} services, {} changed, {} errors; {} AWS calls ({} mutating)",
        report.services.len(),
        changed,
        errors + set.errors.len(),
        counts.total(),
        counts.mutating()
    );
    out
}

pub fn report_json(set: &ManifestSet, report: &PassReport, counts: Option<&CallCounts>) -> Value {
    let services: Vec<Value> = report
        .services
        .iter()
        .map(|o| {
            // The fields `/status` shows come from its own mapping.
            let st = service_status(o, None);
            json!({
                "cluster": st.cluster,
                "service": st.service,
                "source": st.source,
                "state": st.state,
                "exists": o.plan.exists,
                "inSync": o.plan.in_sync(),
                "drift": o.plan.drift,
                "ignored": o.plan.ignored,
                "plan": o.plan.actions,
                "done": o.done,
                "replace": o.plan.replace,
                "reportOnly": o.plan.report_only,
                "held": o.plan.held,
                "waiting": o.plan.waiting,
                "message": o.plan.message,
                "error": o.error,
                "hook": st.hook,
                "migration": o.migration.as_ref().map(|m| json!({
                    "status": st.migration,
                    "next": m.next_step(),
                    "applied": m.applied,
                    "decision": m.decision,
                    "error": m.error,
                })),
            })
        })
        .collect();
    let mut v = json!({
        "revision": report.revision,
        "error": report.error,
        "manifestErrors": set.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "services": services,
        "decommission": report.decommission,
        "scheduledTasks": report.scheduled.tasks.iter().map(|t| {
            let st = scheduled_task_status(t, set, report.scheduled.error.as_deref());
            json!({
                "name": st.name,
                "cluster": st.cluster,
                "source": st.source,
                "state": st.state,
                "exists": t.plan.exists,
                "inSync": t.plan.in_sync(),
                "drift": t.plan.drift,
                "plan": t.plan.actions,
                "done": t.done,
                "reportOnly": t.plan.report_only,
                "held": t.plan.held,
                "message": t.plan.message,
                "error": st.last_error,
            })
        }).collect::<Vec<_>>(),
        "scheduleGroup": (!report.scheduled.group.is_empty()).then(|| json!({
            "name": report.scheduled.group,
            "create": report.scheduled.create_group,
            "created": report.scheduled.group_created,
            "error": report.scheduled.error,
        })),
    });
    if let Some(c) = counts {
        v["awsCalls"] = json!({
            "total": c.total(),
            "mutating": c.mutating(),
            "throttled": c.throttled(),
            "byOperation": c.by_operation(),
        });
    }
    v
}
