//! `/ui/...`: one page per object, with what the dashboard only counts.

use std::fmt::Write;
use std::time::SystemTime;

use super::html::Esc;
use super::parts::{migration, result_badge, state_badge, value};
use super::time::{Clock, write_time};
use crate::runtime::status::redact::{redact_diff, redact_ignored};
use crate::runtime::status::{InstanceStatus, ServiceStatus, StatusSnapshot};

/// The page of one service, `None` when the last pass did not report it.
pub fn service(s: &StatusSnapshot, cluster: &str, name: &str, now: SystemTime) -> Option<String> {
    let svc = s
        .services
        .iter()
        .find(|x| x.cluster == cluster && x.service == name)?;
    let title = format!("{cluster}/{name}");
    let mut b = String::new();
    let _ = write!(b, "<h1>{} ", Esc(&title));
    state_badge(&mut b, svc.state);
    b.push_str(r#"</h1><section id="facts"><dl class="facts">"#);
    fact(&mut b, "Cluster", cluster);
    fact(
        &mut b,
        "Manifest",
        svc.source.as_deref().unwrap_or("(none)"),
    );
    if let Some(m) = &svc.message {
        fact(&mut b, "Note", m);
    }
    if let Some(e) = &svc.last_error {
        let _ = write!(
            b,
            r#"<dt>Last error</dt><dd class="fail" id="last-error">{}</dd>"#,
            Esc(e)
        );
    }
    b.push_str("</dl></section>");
    drift(&mut b, svc);
    plan(&mut b, s, svc);
    if let Some(m) = &svc.migration {
        b.push_str(r#"<section id="migration"><h2>Migration</h2>"#);
        migration(&mut b, m, now);
        b.push_str("</section>");
    }
    recent(&mut b, svc, now);
    Some(super::page::render(&title, now, &b))
}

fn fact(b: &mut String, name: &str, text: &str) {
    let _ = write!(b, "<dt>{name}</dt><dd>{}</dd>", Esc(text));
}

/// Git against live, field by field, values redacted.
fn drift(b: &mut String, svc: &ServiceStatus) {
    let _ = write!(
        b,
        r#"<section id="drift"><h2>Drift ({})</h2>"#,
        svc.drift.len()
    );
    if svc.drift.is_empty() {
        b.push_str(r#"<p class="muted">Live matches Git.</p>"#);
    } else {
        b.push_str(r#"<div class="scroll"><table><thead><tr><th>Field</th><th>Git</th><th>Live</th></tr></thead><tbody>"#);
        for d in svc.drift.iter().map(redact_diff) {
            let _ = write!(
                b,
                r#"<tr class="drift"><td><code>{}</code></td><td>"#,
                Esc(&d.path)
            );
            value(b, &d.desired);
            b.push_str("</td><td>");
            value(b, &d.live);
            b.push_str("</td></tr>");
        }
        b.push_str("</tbody></table></div>");
    }
    if !svc.ignored.is_empty() {
        b.push_str(r#"<h3>Different, but not drift</h3><div class="scroll"><table><thead><tr><th>Field</th><th>Why</th><th>Git</th><th>Live</th></tr></thead><tbody>"#);
        for i in svc.ignored.iter().map(redact_ignored) {
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>",
                Esc(&i.path),
                i.reason.as_str()
            );
            value(b, &i.desired);
            b.push_str("</td><td>");
            value(b, &i.live);
            b.push_str("</td></tr>");
        }
        b.push_str("</tbody></table></div>");
    }
    b.push_str("</section>");
}

fn plan(b: &mut String, s: &StatusSnapshot, svc: &ServiceStatus) {
    b.push_str(r#"<section id="plan"><h2>Plan</h2>"#);
    if svc.pending.is_empty() {
        b.push_str(r#"<p class="muted">Nothing left to do as of the last pass.</p>"#);
    } else {
        let lead = if s.mode == "report" {
            "Report mode: what a pass would do, and will not."
        } else {
            "What the last pass planned and did not carry out (report-only, failed or still to come); the next pass plans again from what it observes."
        };
        let _ = write!(b, "<p>{lead}</p><ul>");
        for p in &svc.pending {
            let _ = write!(b, r#"<li class="pending">{}</li>"#, Esc(p));
        }
        b.push_str("</ul>");
    }
    if !svc.actions.is_empty() {
        b.push_str("<p>The last pass: ");
        let names: Vec<String> = svc
            .actions
            .iter()
            .map(|a| format!("<code>{}</code>", Esc(a)))
            .collect();
        let _ = write!(b, "{}.</p>", names.join(", "));
    }
    b.push_str("</section>");
}

fn recent(b: &mut String, svc: &ServiceStatus, now: SystemTime) {
    b.push_str(r#"<section id="recent"><h2>Recent actions</h2>"#);
    if svc.recent_actions.is_empty() {
        b.push_str(r#"<p class="muted">None since this controller started.</p></section>"#);
        return;
    }
    b.push_str(r#"<div class="scroll"><table><thead><tr><th>When</th><th>Pass</th><th>Actions</th><th>Result</th></tr></thead><tbody>"#);
    for r in &svc.recent_actions {
        b.push_str(r#"<tr class="action"><td>"#);
        write_time(b, &r.at, now, Clock::Ticking);
        let names: Vec<String> = r.actions.iter().map(|a| Esc(a).to_string()).collect();
        let _ = write!(
            b,
            "</td><td>#{}</td><td>{}</td><td>",
            r.pass_id,
            names.join(", ")
        );
        result_badge(b, &r.result);
        if let Some(e) = &r.error {
            let _ = write!(b, r#" <span class="fail">{}</span>"#, Esc(e));
        }
        b.push_str("</td></tr>");
    }
    b.push_str("</tbody></table></div></section>");
}

/// The page of one EC2 instance in the decommission queue.
pub fn instance(s: &StatusSnapshot, id: &str, now: SystemTime) -> Option<String> {
    let i: &InstanceStatus = s.decommission.iter().find(|i| i.instance_id == id)?;
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<h1>Instance <code>{}</code></h1><section id="facts"><dl class="facts">"#,
        Esc(id)
    );
    fact(&mut b, "State", &i.state);
    fact(&mut b, "Action", i.action.as_deref().unwrap_or("(none)"));
    b.push_str("<dt>Acts</dt><dd>");
    match &i.acts_at {
        Some(at) => {
            write_time(&mut b, at, now, Clock::Countdown);
            let _ = write!(b, " ({})", Esc(at));
        }
        None => b.push_str(r#"<span class="muted">not scheduled</span>"#),
    }
    b.push_str("</dd>");
    if let Some(r) = &i.reason {
        fact(&mut b, "Why", r);
    }
    if let Some(sk) = &i.skipped {
        fact(&mut b, "Left alone", sk);
    }
    fact(&mut b, "Status", &i.message);
    if !i.done.is_empty() {
        fact(&mut b, "Done in the last pass", &i.done.join(", "));
    }
    if let Some(e) = &i.last_error {
        let _ = write!(b, r#"<dt>Last error</dt><dd class="fail">{}</dd>"#, Esc(e));
    }
    b.push_str("</dl></section>");
    Some(super::page::render(&format!("instance {id}"), now, &b))
}

/// The 404 page: the object is not (or no longer) in the last pass.
pub fn not_found(what: &str, now: SystemTime) -> String {
    let body = format!(
        r#"<h1>Not found</h1><p>{} is not in the last pass's status. <a href="/">Back to the dashboard</a>.</p>"#,
        Esc(what)
    );
    super::page::render("not found", now, &body)
}
