//! Events as Slack incoming-webhook messages: a one-line `text` (what
//! notifications and old clients show) and one coloured attachment with the
//! message and its context as blocks.

use serde_json::{Value, json};

use crate::core::events::{Event, EventKind};

const RED: &str = "#d93f0b";
const AMBER: &str = "#dbab09";
const GREEN: &str = "#2eb886";
const GREY: &str = "#8a8a8a";

pub fn message(e: &Event) -> Value {
    let object = escape(&e.object());
    let text = format!(
        "{} {} {object}: {}",
        icon(e.event),
        e.event,
        escape(strip_object(e))
    );
    let time = humantime::format_rfc3339_seconds(e.time);
    let revision = e.revision.get(..12).unwrap_or(&e.revision);
    json!({
        "text": text,
        "attachments": [{
            "color": colour(e.event),
            "fallback": text,
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": format!("*{}* `{object}`\n{}", e.event, escape(&e.message)),
                    }
                },
                {
                    "type": "context",
                    "elements": [{
                        "type": "mrkdwn",
                        "text": format!(
                            "{} *{}* · revision `{}` · controller `{}` · {time}",
                            e.kind.as_str(),
                            escape(&e.state),
                            escape(revision),
                            escape(&e.controller_id),
                        ),
                    }]
                }
            ]
        }]
    })
}

/// The message without its leading `object: `, which the line already names.
fn strip_object(e: &Event) -> &str {
    let prefix = format!("{}: ", e.object());
    e.message.strip_prefix(&prefix).unwrap_or(&e.message)
}

fn colour(event: EventKind) -> &'static str {
    match event {
        e if e.is_problem() => RED,
        EventKind::DriftDetected => AMBER,
        EventKind::ServiceSynced | EventKind::MigrationCompleted => GREEN,
        _ => GREY,
    }
}

fn icon(event: EventKind) -> &'static str {
    match event {
        e if e.is_problem() => ":red_circle:",
        EventKind::DriftDetected => ":large_yellow_circle:",
        EventKind::ServiceSynced | EventKind::MigrationCompleted => ":large_green_circle:",
        _ => ":white_circle:",
    }
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup: an error text must not
/// turn into a link or swallow the rest of the line.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
