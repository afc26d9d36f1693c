//! Pieces the dashboard and the detail pages share.

use std::fmt::Write;
use std::time::SystemTime;

use serde_json::Value;

use super::html::Esc;
use super::time::{Clock, write_time};
use crate::core::state::SyncState;
use crate::runtime::status::MigrationStatus;
use crate::runtime::status::redact::SECRET;

/// A state as a coloured label; the colour repeats the word, never replaces it.
pub fn state_badge(out: &mut String, state: SyncState) {
    let s = state.as_str();
    let _ = write!(
        out,
        r#"<span class="state s-{s}" data-state="{s}">{s}</span>"#
    );
}

/// A pass result (`ok`, `partial`, `error`) or an action's.
pub fn result_badge(out: &mut String, result: &str) {
    let _ = write!(
        out,
        r#"<span class="state r-{r}">{r}</span>"#,
        r = Esc(result)
    );
}

/// One side of a drifted field, already redacted: absent, secret, a scalar,
/// or pretty JSON for a list or an object.
pub fn value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str(r#"<span class="absent">(absent)</span>"#),
        Value::String(s) if s == SECRET => {
            out.push_str(r#"<span class="secret" data-secret>secret, not shown</span>"#)
        }
        Value::String(s) => {
            let _ = write!(out, "<code>{}</code>", Esc(s));
        }
        Value::Bool(_) | Value::Number(_) => {
            let _ = write!(out, "<code>{v}</code>");
        }
        Value::Array(_) | Value::Object(_) => {
            let text = serde_json::to_string_pretty(v).unwrap_or_default();
            let _ = write!(out, "<pre><code>{}</code></pre>", Esc(&text));
        }
    }
}

/// The traffic bar alone: ECS percent filled, a tick at each step.
pub fn traffic_bar(out: &mut String, m: &MigrationStatus) {
    let pct = m.percent.min(100);
    let _ = write!(
        out,
        r#"<div class="bar" role="progressbar" aria-label="traffic on ECS" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{pct}"><span class="fill" style="width:{pct}%"></span>"#
    );
    for step in &m.steps {
        let _ = write!(
            out,
            r#"<span class="tick" style="left:{}%"></span>"#,
            step.min(&100)
        );
    }
    out.push_str("</div>");
}

/// `step 2 of 3` (or `before the first step`), for the label beside a bar.
pub fn step_label(m: &MigrationStatus) -> String {
    match (m.step, m.steps.len()) {
        (None, _) => "before the first step".to_string(),
        (Some(i), 0) => format!("step {}", i + 1),
        (Some(i), n) => format!("step {} of {n}", i + 1),
    }
}

/// At the last step: what comes next is completion, not a step.
fn at_last_step(m: &MigrationStatus) -> bool {
    !m.steps.is_empty() && m.step == Some(m.steps.len() - 1)
}

/// The whole migration: bar, steps, gates, rollbacks, and when it can move on.
pub fn migration(out: &mut String, m: &MigrationStatus, now: SystemTime) {
    out.push_str(r#"<div class="migration">"#);
    traffic_bar(out, m);
    let _ = write!(
        out,
        "<p><strong>{}% on ECS</strong>, {}",
        m.percent,
        step_label(m)
    );
    if m.rollbacks > 0 {
        let _ = write!(
            out,
            r#", <span class="fail">{} rollbacks</span>"#,
            m.rollbacks
        );
    }
    out.push_str(".</p>");
    if !m.steps.is_empty() {
        out.push_str(r#"<ol class="steps" aria-label="steps">"#);
        for (i, pct) in m.steps.iter().enumerate() {
            let (class, mark) = match m.step {
                Some(s) if i < s => ("done", " (done)"),
                Some(s) if i == s => ("done current", " (current)"),
                _ => ("", ""),
            };
            let _ = write!(
                out,
                r#"<li class="{class}">{pct}%<span class="wide">{mark}</span></li>"#
            );
        }
        out.push_str("</ol>");
    }
    if !m.gates.is_empty() {
        out.push_str(r#"<ul class="gates">"#);
        for g in &m.gates {
            let (class, word) = if g.passed {
                ("pass", "✓ passed")
            } else {
                ("fail", "✗ not passed")
            };
            let _ = write!(
                out,
                r#"<li class="gate" data-gate="{name}"><span class="{class}">{word}</span> <strong>{name}</strong>: {detail}</li>"#,
                name = Esc(&g.name),
                detail = Esc(&g.detail),
            );
        }
        out.push_str("</ul>");
    }
    out.push_str(r#"<p class="next">"#);
    match (at_last_step(m), &m.next_step_at) {
        (true, None) => out.push_str("Complete."),
        (last, Some(at)) => {
            out.push_str(if last {
                "Completes (if the gates pass): "
            } else {
                "Next step (if the gates pass): "
            });
            write_time(out, at, now, Clock::Countdown);
            out.push('.');
        }
        (false, None) => out.push_str("Next step as soon as the gates pass."),
    }
    out.push_str("</p>");
    if let Some(msg) = &m.message {
        let _ = write!(out, r#"<p class="muted">{}</p>"#, Esc(msg));
    }
    out.push_str("</div>");
}
