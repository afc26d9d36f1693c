//! The dashboard's decommission tables beside the instances: Auto Scaling
//! groups (`decommissionGroups`), what `decommission.cleanup` removes
//! (`decommissionCleanup`) and what the fleets leave behind
//! (`decommissionLeftovers`). Each is shown only when it has rows, so a
//! controller without such fleets stays as it was.

use std::fmt::Write;
use std::time::SystemTime;

use super::html::{Esc, clip};
use super::time::{Clock, write_time};
use crate::runtime::status::StatusSnapshot;

/// Characters of an error or note shown in a table cell.
const CELL_TEXT: usize = 160;

fn note(b: &mut String, error: Option<&String>, text: &str) {
    if let Some(e) = error {
        let _ = write!(
            b,
            r#"<span class="fail">{}</span> "#,
            Esc(&clip(e, CELL_TEXT))
        );
    }
    let _ = write!(b, "{}", Esc(&clip(text, CELL_TEXT)));
}

pub fn groups(b: &mut String, s: &StatusSnapshot, now: SystemTime) {
    if s.decommission_groups.is_empty() {
        return;
    }
    b.push_str(
        r#"<h3>Auto Scaling groups</h3><div class="scroll"><table><thead><tr><th>Group</th><th>State</th><th>Action</th><th>Instances</th><th>Acts</th><th>Why</th></tr></thead><tbody>"#,
    );
    for g in &s.decommission_groups {
        let _ = write!(
            b,
            r#"<tr class="group" data-group="{name}"><td><code>{name}</code></td><td>{state}</td><td>{action}</td><td>{n}</td><td>"#,
            name = Esc(&g.auto_scaling_group),
            state = Esc(&g.state),
            action = Esc(g.action.as_deref().unwrap_or("")),
            n = g.instances,
        );
        if let Some(at) = &g.acts_at {
            write_time(b, at, now, Clock::Countdown);
        }
        b.push_str("</td><td>");
        let why = g
            .skipped
            .as_ref()
            .or(g.reason.as_ref())
            .unwrap_or(&g.message);
        note(b, g.last_error.as_ref(), why);
        b.push_str("</td></tr>");
    }
    b.push_str("</tbody></table></div>");
}

pub fn cleanup(b: &mut String, s: &StatusSnapshot) {
    if s.decommission_cleanup.is_empty() {
        return;
    }
    b.push_str(
        r#"<h3>Cleanup</h3><div class="scroll"><table><thead><tr><th>After</th><th>Item</th><th>Name</th><th>State</th><th>Note</th></tr></thead><tbody>"#,
    );
    for c in &s.decommission_cleanup {
        let service = format!("{}/{}", c.cluster, c.service);
        if c.items.is_empty() {
            let _ = write!(
                b,
                r#"<tr class="cleanup" data-service="{svc}"><td>{svc}</td><td></td><td></td><td></td><td>"#,
                svc = Esc(&service)
            );
            note(b, c.last_error.as_ref(), &c.message);
            b.push_str("</td></tr>");
        }
        for (i, item) in c.items.iter().enumerate() {
            let _ = write!(
                b,
                r#"<tr class="cleanup" data-service="{svc}" data-item="{item}"><td>{svc}</td><td>{item}</td><td><code>{name}</code></td><td>{state}</td><td>"#,
                svc = Esc(&service),
                item = Esc(&item.item),
                name = Esc(item.name.as_deref().unwrap_or("")),
                state = Esc(&item.state),
            );
            // The migration's own error once, on its first row.
            note(b, c.last_error.as_ref().filter(|_| i == 0), &item.message);
            b.push_str("</td></tr>");
        }
    }
    b.push_str("</tbody></table></div>");
}

pub fn leftovers(b: &mut String, s: &StatusSnapshot) {
    let l = &s.decommission_leftovers;
    if l.items.is_empty() && l.last_error.is_none() {
        return;
    }
    b.push_str(r#"<h3>Left behind (reported, never deleted)</h3>"#);
    if let Some(e) = &l.last_error {
        let _ = write!(
            b,
            r#"<p><span class="fail">{}</span></p>"#,
            Esc(&clip(e, CELL_TEXT))
        );
    }
    if l.items.is_empty() {
        return;
    }
    b.push_str(
        r#"<div class="scroll"><table><thead><tr><th>Of</th><th>Kind</th><th>Id</th><th>Name</th><th>State</th></tr></thead><tbody>"#,
    );
    for i in &l.items {
        let _ = write!(
            b,
            r#"<tr class="leftover" data-leftover="{id}"><td>{c}/{s}</td><td>{kind}</td><td><code>{id}</code></td><td>{name}</td><td>{state}"#,
            c = Esc(&i.cluster),
            s = Esc(&i.service),
            kind = Esc(&i.kind),
            id = Esc(&i.id),
            name = Esc(i.name.as_deref().unwrap_or("")),
            state = Esc(&i.state),
        );
        if let Some(m) = &i.message {
            let _ = write!(b, ": {}", Esc(&clip(m, CELL_TEXT)));
        }
        b.push_str("</td></tr>");
    }
    b.push_str("</tbody></table></div>");
}
