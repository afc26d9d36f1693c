//! Adoption: write manifests for services that already run, so that they diff
//! clean against the account they came from.

use std::collections::BTreeMap;

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::services;
use crate::adapters::aws::{AwsError, Clients, call_error, convert};
use crate::core::model::{API_VERSION, KIND_SERVICE, Manifest, Metadata, TaskDefinition};
use crate::core::normalize;
use crate::core::state::ServiceStatus;

/// Reads at once while importing: the same bound as a pass.
const READ_CONCURRENCY: usize = 8;

/// One live service as a manifest.
#[derive(Debug, Clone)]
pub struct Imported {
    pub manifest: Manifest,
    /// What its task definition sets that the manifest could not take (paths
    /// as `ecsync diff` prints them): ecsync will refuse a new revision.
    pub unmanaged: Vec<String>,
}

/// Manifests for every service in `cluster` (or just `only`), by service name.
pub async fn import(
    clients: &Clients,
    cluster: &str,
    only: Option<&str>,
) -> Result<Vec<Imported>, AwsError> {
    let reads = Arc::new(Semaphore::new(READ_CONCURRENCY));
    let names: Vec<String> = match only {
        Some(s) => vec![s.to_string()],
        None => services::list(clients, cluster, &reads).await?,
    };
    let described = services::describe(clients, cluster, &names, &reads).await?;
    if let Some(f) = described.failures.first() {
        return Err(AwsError::Call {
            operation: "ECS:DescribeServices",
            code: f.reason().map(str::to_string),
            message: format!(
                "{}: {}",
                f.arn().unwrap_or_default(),
                f.reason().unwrap_or("not found")
            ),
        });
    }
    let services: Vec<_> = described
        .services
        .into_iter()
        .filter(|s| ServiceStatus::parse(s.status().unwrap_or_default()) != ServiceStatus::Inactive)
        .collect();

    let mut definitions: BTreeMap<String, (TaskDefinition, Vec<String>)> = BTreeMap::new();
    let mut imported = Vec::new();
    for s in &services {
        let td_arn = s.task_definition().unwrap_or_default().to_string();
        if !definitions.contains_key(&td_arn) {
            let out = clients
                .ecs
                .describe_task_definition()
                .task_definition(&td_arn)
                .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
                .send()
                .await
                .map_err(|e| call_error("ECS:DescribeTaskDefinition", e))?;
            // A manifest without its definition would be no adoption at all.
            let td = out
                .task_definition()
                .map(|td| convert::read_task_definition(td, out.tags()))
                .ok_or_else(|| {
                    AwsError::Incomplete(format!(
                        "DescribeTaskDefinition answered {td_arn} without a definition"
                    ))
                })?;
            definitions.insert(td_arn.clone(), td);
        }
        let (td, unmanaged) = definitions.get(&td_arn).cloned().unwrap_or_default();
        let mut spec = convert::service_spec_from_sdk(s, cluster)?;
        spec.task_definition = td;
        for lb in spec.load_balancers.iter_mut().flatten() {
            lb.target_group_arn = lb.target_group_arn.as_deref().map(target_group_name);
        }
        normalize::normalize_service(&mut spec);
        imported.push(Imported {
            manifest: Manifest {
                api_version: API_VERSION.into(),
                kind: KIND_SERVICE.into(),
                metadata: Metadata {
                    name: s.service_name().unwrap_or_default().to_string(),
                    ..Default::default()
                },
                spec,
            },
            unmanaged,
        });
    }
    Ok(imported)
}

/// `arn:…:targetgroup/<name>/<id>` → `<name>`; names read better in Git and
/// survive a target group being recreated.
fn target_group_name(arn: &str) -> String {
    arn.split("targetgroup/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .filter(|n| !n.is_empty())
        .unwrap_or(arn)
        .to_string()
}

/// One manifest as YAML, without the fields that are unset.
pub fn to_yaml(m: &Manifest) -> Result<String, serde_saphyr::SerializeError> {
    let mut v = crate::core::diff::to_clean_value(m);
    // A target group by name reads as ecsync's `targetGroup`, not as an ARN.
    if let Some(lbs) = v
        .pointer_mut("/spec/loadBalancers")
        .and_then(|l| l.as_array_mut())
    {
        for lb in lbs.iter_mut().filter_map(|lb| lb.as_object_mut()) {
            if lb
                .get("targetGroupArn")
                .and_then(|t| t.as_str())
                .is_some_and(|t| !t.starts_with("arn:"))
                && let Some(name) = lb.remove("targetGroupArn")
            {
                lb.insert("targetGroup".into(), name);
            }
        }
    }
    serde_saphyr::to_string(&v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn target_group_name_from_arn() {
        let arn = "arn:aws:elasticloadbalancing:us-east-1:123:targetgroup/web-ecs/6d0ecf831eec9f09";
        assert_eq!(super::target_group_name(arn), "web-ecs");
        assert_eq!(super::target_group_name("plain"), "plain");
    }
}
