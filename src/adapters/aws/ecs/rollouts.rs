//! Reads the deployments and events of named services, for following the
//! rollouts an apply started (`apply --wait`).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_ecs::types as ecs;
use tokio::sync::Semaphore;

use super::services;
use crate::adapters::aws::{AwsError, Clients};
use crate::core::rollout::{Deployment, DeploymentStatus};
use crate::core::state::RolloutState;

/// At most this many calls at once while following.
const READ_CONCURRENCY: usize = 4;

/// One described service: its deployments, counts and recent events.
#[derive(Debug, Clone, Default)]
pub struct RolloutView {
    pub deployments: Vec<Deployment>,
    pub desired: i32,
    pub running: i32,
    /// Newest first, as ECS lists them: (seconds since the epoch, message).
    pub events: Vec<(i64, String)>,
}

/// The named services of `cluster` (DescribeServices, 10 a call); a name
/// ECS does not know is absent from the answer.
pub async fn describe(
    clients: &Clients,
    cluster: &str,
    names: &[String],
) -> Result<BTreeMap<String, RolloutView>, AwsError> {
    let reads = Arc::new(Semaphore::new(READ_CONCURRENCY));
    let described = services::describe(clients, cluster, names, &reads).await?;
    Ok(described
        .services
        .iter()
        .filter(|s| s.status() != Some("INACTIVE"))
        .filter_map(|s| Some((s.service_name()?.to_string(), view(s))))
        .collect())
}

fn view(s: &ecs::Service) -> RolloutView {
    RolloutView {
        deployments: s
            .deployments()
            .iter()
            .map(|d| Deployment {
                status: d.status().and_then(DeploymentStatus::parse),
                task_definition: d.task_definition().unwrap_or_default().to_string(),
                rollout_state: d
                    .rollout_state()
                    .and_then(|r| RolloutState::parse(r.as_str())),
                reason: d.rollout_state_reason().map(str::to_string),
                desired: d.desired_count(),
                running: d.running_count(),
            })
            .collect(),
        desired: s.desired_count(),
        running: s.running_count(),
        events: s
            .events()
            .iter()
            .filter_map(|e| Some((e.created_at()?.secs(), e.message()?.to_string())))
            .collect(),
    }
}
