//! `apply --wait`: show the rollouts the pass started as they go, one live
//! line per service on a terminal and plain lines otherwise.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use ecsync::adapters::aws::Clients;
use ecsync::core::model::ServiceKey;
use ecsync::core::rollout::Verdict;
use ecsync::runtime::wait::{Progress, Settings, Target, follow};

/// ECS events shown for a rollout that did not complete.
const EVENTS_SHOWN: usize = 5;
const POLL: Duration = Duration::from_secs(3);

fn line(p: &Progress, elapsed: Duration) -> String {
    let rollout = ecsync::core::rollout::primary(&p.view.deployments)
        .and_then(|d| d.rollout_state)
        .map_or("-", |s| s.as_str());
    format!(
        "{}/{}: {} ({}/{} running, rollout {}, {}s)",
        p.key.cluster,
        p.key.name,
        p.verdict.as_str(),
        p.view.running,
        p.view.desired,
        rollout,
        elapsed.as_secs()
    )
}

/// Follow `targets` to the end; true when every rollout completed.
pub async fn wait(clients: &Clients, targets: &[Target], timeout: Duration) -> Result<bool> {
    if targets.is_empty() {
        eprintln!("wait: this pass started no rollout");
        return Ok(true);
    }
    let started = Instant::now();
    let live = std::io::stderr().is_terminal();
    let bars = MultiProgress::with_draw_target(if live {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bar: BTreeMap<ServiceKey, ProgressBar> = targets
        .iter()
        .map(|t| {
            let b = bars.add(ProgressBar::new_spinner().with_style(style.clone()));
            b.set_message(format!("{}/{}: waiting", t.key.cluster, t.key.name));
            b.enable_steady_tick(Duration::from_millis(120));
            (t.key.clone(), b)
        })
        .collect();
    // Plain output: a line only when something a reader cares about moved.
    let mut printed: BTreeMap<ServiceKey, (String, i32)> = BTreeMap::new();
    let settings = Settings {
        timeout,
        poll: POLL,
    };
    let last = follow(clients, targets, &settings, |progress| {
        for p in progress {
            let text = line(p, started.elapsed());
            if live {
                if let Some(b) = bar.get(&p.key) {
                    b.set_message(text);
                    if p.verdict.is_final() {
                        b.finish();
                    }
                }
            } else {
                let seen = (p.verdict.as_str().to_string(), p.view.running);
                if printed.get(&p.key) != Some(&seen) {
                    eprintln!("{text}");
                    printed.insert(p.key.clone(), seen);
                }
            }
        }
    })
    .await?;
    for b in bar.values() {
        b.finish();
    }
    let mut all_completed = true;
    for p in &last {
        if p.verdict.succeeded() {
            continue;
        }
        all_completed = false;
        let why = match &p.verdict {
            Verdict::InProgress => format!("timed out after {}s", timeout.as_secs()),
            Verdict::Failed(r) | Verdict::RolledBack(r) => format!("{}: {r}", p.verdict.as_str()),
            other => other.as_str().to_string(),
        };
        println!("{}/{}: {why}", p.key.cluster, p.key.name);
        for (_, message) in p.view.events.iter().take(EVENTS_SHOWN) {
            println!("  event: {message}");
        }
    }
    if all_completed {
        println!(
            "{} rollout(s) completed in {}s",
            last.len(),
            started.elapsed().as_secs()
        );
    }
    Ok(all_completed)
}
