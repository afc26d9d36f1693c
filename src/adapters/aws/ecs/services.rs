//! The one reader of ECS services, used by observation and by import:
//! ListServices 100 a page, DescribeServices 10 a call with tags, every call
//! holding a permit of the caller's read bound.

use std::sync::Arc;

use aws_sdk_ecs::types as ecs;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::adapters::aws::{AwsError, Clients, call_error};

/// DescribeServices takes at most 10 services.
pub const DESCRIBE_SERVICES_BATCH: usize = 10;
const LIST_SERVICES_PAGE: i32 = 100;

/// Every service ARN in `cluster`.
pub async fn list(
    clients: &Clients,
    cluster: &str,
    reads: &Semaphore,
) -> Result<Vec<String>, AwsError> {
    let mut arns = Vec::new();
    let mut pages = clients
        .ecs
        .list_services()
        .cluster(cluster)
        .max_results(LIST_SERVICES_PAGE)
        .into_paginator()
        .send();
    loop {
        let page = {
            let _permit = reads.acquire().await;
            pages.next().await
        };
        let Some(page) = page else { break };
        let page = page.map_err(|e| call_error("ECS:ListServices", e))?;
        arns.extend(page.service_arns().iter().cloned());
    }
    Ok(arns)
}

/// What DescribeServices answered for a list of names or ARNs.
#[derive(Debug, Default)]
pub struct Described {
    /// In the order asked for.
    pub services: Vec<ecs::Service>,
    /// Names ECS could not find, in the order asked for.
    pub failures: Vec<ecs::Failure>,
}

/// Describe `services` of `cluster`, tags included, 10 a call and the calls
/// side by side under `reads`.
pub async fn describe(
    clients: &Clients,
    cluster: &str,
    services: &[String],
    reads: &Arc<Semaphore>,
) -> Result<Described, AwsError> {
    let mut tasks = JoinSet::new();
    for (i, chunk) in services.chunks(DESCRIBE_SERVICES_BATCH).enumerate() {
        let (ecs, cluster, chunk) = (clients.ecs.clone(), cluster.to_string(), chunk.to_vec());
        let reads = reads.clone();
        tasks.spawn(async move {
            let _permit = reads.acquire_owned().await;
            let out = ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk))
                .include(ecs::ServiceField::Tags)
                .send()
                .await
                .map_err(|e| call_error("ECS:DescribeServices", e))?;
            Ok::<_, AwsError>((i, out))
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        answers.push(joined.map_err(|e| AwsError::lost("DescribeServices", e))??);
    }
    answers.sort_by_key(|(i, _)| *i);
    let mut described = Described::default();
    for (_, out) in answers {
        described.services.extend(out.services().iter().cloned());
        described.failures.extend(out.failures().iter().cloned());
    }
    Ok(described)
}
