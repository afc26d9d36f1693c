//! The dashboard's scheduled tasks (`kind: ScheduledTask`): one row each,
//! with the expression, the schedule's own state, drift and the last error.

use std::fmt::Write;

use super::html::{Esc, clip};
use super::parts::state_badge;
use crate::runtime::status::StatusSnapshot;

/// Characters of an error shown in a table cell.
const CELL_TEXT: usize = 160;

/// Shown only when there are schedules: a controller without any stays as it was.
pub fn section(b: &mut String, s: &StatusSnapshot) {
    if s.scheduled_tasks.is_empty() {
        return;
    }
    let _ = write!(
        b,
        r#"<section id="scheduled-tasks"><h2>Scheduled tasks ({})</h2>"#,
        s.scheduled_tasks.len()
    );
    b.push_str(
        r#"<div class="scroll"><table><thead><tr><th>Schedule</th><th>Cluster</th><th>Expression</th><th>State</th><th>Drift</th><th>Last error or note</th></tr></thead><tbody>"#,
    );
    for t in &s.scheduled_tasks {
        let _ = write!(
            b,
            r#"<tr class="scheduled-task" data-schedule="{n}"><td>{n}</td><td>{c}</td><td><code>{e}</code>{enabled}</td><td>"#,
            n = Esc(&t.name),
            c = Esc(t.cluster.as_deref().unwrap_or("")),
            e = Esc(t.schedule.as_deref().unwrap_or("")),
            enabled = match t.schedule_state {
                Some(crate::core::scheduled::ScheduleState::Disabled) => " (disabled)",
                _ => "",
            },
        );
        state_badge(b, t.state);
        let drift = t.drift.len();
        let _ = write!(
            b,
            r#"</td><td data-drift="{drift}">{}</td><td>"#,
            match drift {
                0 => "none".to_string(),
                1 => "1 field".to_string(),
                n => format!("{n} fields"),
            }
        );
        if let Some(e) = &t.last_error {
            let _ = write!(
                b,
                r#"<span class="fail">{}</span>"#,
                Esc(&clip(e, CELL_TEXT))
            );
        } else if let Some(m) = &t.message {
            let _ = write!(b, "{}", Esc(&clip(m, CELL_TEXT)));
        }
        b.push_str("</td></tr>");
    }
    b.push_str("</tbody></table></div></section>");
}

#[cfg(test)]
mod tests {
    use crate::core::scheduled::ScheduleState;
    use crate::core::state::{Mode, SyncState};
    use crate::runtime::status::{Role, ScheduledTaskStatus, StatusSnapshot};

    #[test]
    fn each_schedule_is_a_row_with_its_state_and_escaped_text() {
        let mut s = StatusSnapshot::new(Mode::Auto, Role::Standalone);
        let mut b = String::new();
        super::section(&mut b, &s);
        assert_eq!(b, "", "no schedules, no section");

        s.scheduled_tasks.push(ScheduledTaskStatus {
            name: "nightly-report".into(),
            cluster: Some("prod".into()),
            source: Some("jobs/nightly.yaml".into()),
            state: SyncState::OutOfSync,
            schedule: Some("cron(0 3 * * ? *)".into()),
            schedule_state: Some(ScheduleState::Disabled),
            drift: Vec::new(),
            actions: vec!["update_schedule".into()],
            last_error: None,
            message: Some("<b>not</b> markup".into()),
            task_definition_arn: None,
        });
        super::section(&mut b, &s);
        assert!(
            b.contains(r#"<section id="scheduled-tasks"><h2>Scheduled tasks (1)</h2>"#),
            "{b}"
        );
        assert!(b.contains(r#"data-schedule="nightly-report""#), "{b}");
        assert!(b.contains(r#"data-state="OutOfSync""#), "{b}");
        assert!(
            b.contains("<code>cron(0 3 * * ? *)</code> (disabled)"),
            "{b}"
        );
        assert!(b.contains("&lt;b&gt;not&lt;/b&gt; markup"), "{b}");
    }
}
