//! `apply --wait`: follow the rollouts one pass started until each ends.
//! Only the services the pass changed are described, 10 a call per cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::adapters::aws::ecs::rollouts::{self, RolloutView};
use crate::adapters::aws::{AwsError, Clients};
use crate::core::model::ServiceKey;
use crate::core::plan::ActionKind;
use crate::core::rollout::{Followed, Verdict, verdict};
use crate::runtime::reconciler::PassReport;

/// A service whose rollout is followed, and the revision it should end on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub key: ServiceKey,
    pub expected: Option<String>,
}

/// The services a pass started a deployment of (created, updated or
/// replaced); a tag change or a deletion starts none.
pub fn targets(report: &PassReport) -> Vec<Target> {
    report
        .services
        .iter()
        .filter(|o| {
            o.done
                .iter()
                .any(|a| a.deploys() || *a == ActionKind::CreateReplacement)
        })
        .map(|o| Target {
            key: o.plan.key.clone(),
            expected: o.task_definition_arn.clone(),
        })
        .collect()
}

/// Where one followed service stands.
#[derive(Debug, Clone)]
pub struct Progress {
    pub key: ServiceKey,
    pub verdict: Verdict,
    pub view: RolloutView,
}

pub struct Settings {
    pub timeout: Duration,
    pub poll: Duration,
}

/// Poll until every target has a final verdict or `timeout` passes; `report`
/// is called after each round with every target's progress. The last
/// round's progress is returned; anything still in progress timed out.
pub async fn follow(
    clients: &Clients,
    targets: &[Target],
    settings: &Settings,
    mut report: impl FnMut(&[Progress]),
) -> Result<Vec<Progress>, AwsError> {
    let deadline = Instant::now() + settings.timeout;
    let mut by_cluster: BTreeMap<&str, Vec<&Target>> = BTreeMap::new();
    for t in targets {
        by_cluster.entry(&t.key.cluster).or_default().push(t);
    }
    let mut last: BTreeMap<ServiceKey, Progress> = BTreeMap::new();
    loop {
        for (cluster, wanted) in &by_cluster {
            let open: Vec<&&Target> = wanted
                .iter()
                .filter(|t| last.get(&t.key).is_none_or(|p| !p.verdict.is_final()))
                .collect();
            if open.is_empty() {
                continue;
            }
            let names: Vec<String> = open.iter().map(|t| t.key.name.clone()).collect();
            let mut views = rollouts::describe(clients, cluster, &names).await?;
            for t in open {
                let view = views.remove(&t.key.name).unwrap_or_default();
                let verdict = verdict(&Followed {
                    deployments: view.deployments.clone(),
                    expected: t.expected.clone(),
                });
                last.insert(
                    t.key.clone(),
                    Progress {
                        key: t.key.clone(),
                        verdict,
                        view,
                    },
                );
            }
        }
        let now: Vec<Progress> = last.values().cloned().collect();
        report(&now);
        if now.iter().all(|p| p.verdict.is_final()) || Instant::now() >= deadline {
            return Ok(now);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(settings.poll.min(left)).await;
    }
}

#[cfg(test)]
mod tests;
