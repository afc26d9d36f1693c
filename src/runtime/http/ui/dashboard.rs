//! `GET /`: the whole controller on one page.

use std::fmt::Write;
use std::time::SystemTime;

use super::html::{Esc, clip, instance_href, service_href, short_sha};
use super::parts::{migration, result_badge, state_badge, step_label, traffic_bar};
use super::time::{Clock, duration_ms, write_time};
use crate::core::state::SyncState;
use crate::runtime::status::{Role, StatusSnapshot};

/// Characters of an error shown in a table cell; the detail page has all.
const CELL_TEXT: usize = 160;
/// Characters of a commit subject shown; the title attribute has all.
const SUBJECT_TEXT: usize = 100;

pub fn render(s: &StatusSnapshot, now: SystemTime) -> String {
    let mut b = String::new();
    overview(&mut b, s, now);
    services(&mut b, s);
    super::scheduled::section(&mut b, s);
    migrations(&mut b, s, now);
    decommission(&mut b, s, now);
    passes(&mut b, s, now);
    super::page::render("ecsync", now, &b)
}

fn overview(b: &mut String, s: &StatusSnapshot, now: SystemTime) {
    b.push_str(r#"<h1>ecsync</h1><section id="overview"><dl class="facts">"#);
    b.push_str("<dt>Revision</dt><dd>");
    match &s.revision {
        Some(rev) => {
            let _ = write!(
                b,
                r#"<code class="revision" title="{full}">{short}</code>"#,
                full = Esc(rev),
                short = Esc(short_sha(rev))
            );
            if let Some(c) = &s.commit {
                let _ = write!(
                    b,
                    r#" <span class="subject" title="{full}">{short}</span> ("#,
                    full = Esc(&c.subject),
                    short = Esc(&clip(&c.subject, SUBJECT_TEXT)),
                );
                write_time(b, &c.time, now, Clock::Fixed);
                b.push(')');
            }
        }
        None => b.push_str(r#"<span class="muted">none yet</span>"#),
    }
    b.push_str("</dd>");
    let _ = write!(
        b,
        "<dt>Mode</dt><dd>{}{}</dd>",
        Esc(&s.mode),
        if s.mode == "report" {
            " (drift is reported, nothing is changed)"
        } else {
            ""
        }
    );
    let role = match s.role {
        Role::Standalone => "standalone",
        Role::Leader => "leader",
        Role::Follower => "follower (the leader acts; this replica only serves)",
    };
    let _ = write!(b, "<dt>Role</dt><dd>{role}");
    if let Some(token) = s.lease_token {
        let _ = write!(b, ", lease token {token}");
    }
    if let Some(shard) = s.shard {
        // Services of other shards' clusters are on their replicas' pages.
        let _ = write!(
            b,
            ", shard {} of {} (this shard's clusters only)",
            shard.index, shard.count
        );
    }
    b.push_str("</dd><dt>Last pass</dt><dd>");
    match &s.last_pass {
        Some(p) => {
            let _ = write!(b, "#{} ", p.pass_id);
            write_time(b, &p.started_at, now, Clock::Ticking);
            let _ = write!(b, ", {} ", duration_ms(p.duration_ms));
            result_badge(b, &p.result);
        }
        None => b.push_str(r#"<span class="muted">none yet</span>"#),
    }
    b.push_str("</dd></dl>");
    if let Some(e) = &s.git_error {
        let _ = write!(
            b,
            r#"<p class="alert" id="git-error"><strong>Git:</strong> {} — reconciling the last good revision.</p>"#,
            Esc(e)
        );
    }
    b.push_str("</section>");
}

fn services(b: &mut String, s: &StatusSnapshot) {
    let _ = write!(
        b,
        r#"<section id="services"><h2>Services ({})</h2>"#,
        s.services.len()
    );
    if s.services.is_empty() {
        b.push_str(r#"<p class="muted">None reported yet.</p></section>"#);
        return;
    }
    let counts: Vec<String> = SyncState::ALL
        .iter()
        .filter_map(|st| {
            let n = s.services.iter().filter(|x| x.state == *st).count();
            (n > 0).then(|| format!("{n} {}", st.as_str()))
        })
        .collect();
    let _ = write!(b, "<p>{}</p>", counts.join(", "));
    b.push_str(
        r#"<div class="scroll"><table><thead><tr><th>Service</th><th>State</th><th>Drift</th><th>Migration</th><th>Last error or note</th></tr></thead><tbody>"#,
    );
    for svc in &s.services {
        let name = format!("{}/{}", svc.cluster, svc.service);
        let _ = write!(
            b,
            r#"<tr class="service" data-service="{n}"><td><a href="{href}">{n}</a></td><td>"#,
            n = Esc(&name),
            href = Esc(&service_href(&svc.cluster, &svc.service)),
        );
        state_badge(b, svc.state);
        let drift = svc.drift.len();
        let _ = write!(
            b,
            r#"</td><td data-drift="{drift}">{}</td><td>"#,
            match drift {
                0 => "none".to_string(),
                1 => "1 field".to_string(),
                n => format!("{n} fields"),
            }
        );
        if let Some(m) = &svc.migration {
            traffic_bar(b, m);
            let _ = write!(b, "{}%, {}", m.percent, step_label(m));
        }
        b.push_str("</td><td>");
        if let Some(e) = &svc.last_error {
            let _ = write!(
                b,
                r#"<span class="fail">{}</span>"#,
                Esc(&clip(e, CELL_TEXT))
            );
        } else if let Some(m) = &svc.message {
            let _ = write!(b, "{}", Esc(&clip(m, CELL_TEXT)));
        }
        b.push_str("</td></tr>");
    }
    b.push_str("</tbody></table></div></section>");
}

fn migrations(b: &mut String, s: &StatusSnapshot, now: SystemTime) {
    let migrating: Vec<_> = s
        .services
        .iter()
        .filter_map(|svc| svc.migration.as_ref().map(|m| (svc, m)))
        .collect();
    if migrating.is_empty() {
        return;
    }
    b.push_str(r#"<section id="migrations"><h2>Migrations</h2>"#);
    for (svc, m) in migrating {
        let _ = write!(
            b,
            r#"<div class="card"><h3><a href="{href}">{c}/{n}</a></h3>"#,
            href = Esc(&service_href(&svc.cluster, &svc.service)),
            c = Esc(&svc.cluster),
            n = Esc(&svc.service),
        );
        migration(b, m, now);
        b.push_str("</div>");
    }
    b.push_str("</section>");
}

fn decommission(b: &mut String, s: &StatusSnapshot, now: SystemTime) {
    b.push_str(r#"<section id="decommission"><h2>Decommission queue</h2>"#);
    if s.decommission.is_empty() {
        b.push_str(r#"<p class="muted">No EC2 instance is queued.</p>"#);
    } else {
        instances(b, s, now);
    }
    super::fleet::groups(b, s, now);
    super::fleet::cleanup(b, s);
    super::fleet::leftovers(b, s);
    b.push_str("</section>");
}

fn instances(b: &mut String, s: &StatusSnapshot, now: SystemTime) {
    b.push_str(
        r#"<div class="scroll"><table><thead><tr><th>Instance</th><th>State</th><th>Action</th><th>Acts</th><th>Why</th></tr></thead><tbody>"#,
    );
    for i in &s.decommission {
        let _ = write!(
            b,
            r#"<tr class="instance" data-instance="{id}"><td><a href="{href}"><code>{id}</code></a></td><td>{state}</td><td>{action}</td><td>"#,
            id = Esc(&i.instance_id),
            href = Esc(&instance_href(&i.instance_id)),
            state = Esc(&i.state),
            action = Esc(i.action.as_deref().unwrap_or("")),
        );
        if let Some(at) = &i.acts_at {
            write_time(b, at, now, Clock::Countdown);
        }
        b.push_str("</td><td>");
        if let Some(e) = &i.last_error {
            let _ = write!(
                b,
                r#"<span class="fail">{}</span> "#,
                Esc(&clip(e, CELL_TEXT))
            );
        }
        let why = i
            .skipped
            .as_ref()
            .or(i.reason.as_ref())
            .unwrap_or(&i.message);
        let _ = write!(b, "{}</td></tr>", Esc(&clip(why, CELL_TEXT)));
    }
    b.push_str("</tbody></table></div>");
}

fn passes(b: &mut String, s: &StatusSnapshot, now: SystemTime) {
    b.push_str(r#"<section id="passes"><h2>Last passes</h2>"#);
    if s.passes.is_empty() {
        b.push_str(r#"<p class="muted">None yet.</p></section>"#);
        return;
    }
    b.push_str(
        r#"<div class="scroll"><table><thead><tr><th>Pass</th><th>Started</th><th>Kind</th><th>Duration</th><th>Result</th></tr></thead><tbody>"#,
    );
    for p in &s.passes {
        let _ = write!(b, r#"<tr class="pass-row"><td>#{}</td><td>"#, p.pass_id);
        write_time(b, &p.started_at, now, Clock::Ticking);
        let _ = write!(
            b,
            "</td><td>{}</td><td>{}</td><td>",
            p.kind.as_str(),
            duration_ms(p.duration_ms)
        );
        result_badge(b, &p.result);
        b.push_str("</td></tr>");
    }
    b.push_str("</tbody></table></div></section>");
}
