//! ELBv2: target groups (the one name → ARN resolver), target health and
//! registrations; in [`listener`], the listener or rule that holds a
//! migration's forward action.

pub mod cleanup;
mod listener;

pub use listener::{ListenerError, Place, locate, managed_forward, modify, with_weights};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::{
    TargetDescription, TargetHealthStateEnum, TargetTypeEnum,
};

use super::{AwsError, Clients, call_error};
use crate::core::decommission::TargetState;

/// DescribeTargetGroups takes at most 20 names, DescribeTags 20 ARNs.
const NAMES_PER_CALL: usize = 20;

/// Target group names → ARNs, for every name that exists. ARNs are passed
/// through; a name that does not exist is simply absent (callers report it).
/// Batched: one call per 20 names, unless a batch holds an unknown name.
pub async fn resolve_target_groups(
    clients: &Clients,
    names: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>, AwsError> {
    let names: Vec<String> = names
        .iter()
        .filter(|n| !n.starts_with("arn:"))
        .cloned()
        .collect();
    let mut found = BTreeMap::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        match target_groups_named(clients, chunk).await {
            Ok(groups) => found.extend(groups),
            // One unknown name fails the whole batch; find the good ones singly.
            Err(e) if e.code() == Some("TargetGroupNotFound") => {
                for name in chunk {
                    match target_groups_named(clients, std::slice::from_ref(name)).await {
                        Ok(groups) => found.extend(groups),
                        Err(e) if e.code() == Some("TargetGroupNotFound") => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

async fn target_groups_named(
    clients: &Clients,
    names: &[String],
) -> Result<Vec<(String, String)>, AwsError> {
    let out = clients
        .elbv2
        .describe_target_groups()
        .set_names(Some(names.to_vec()))
        .send()
        .await
        .map_err(|e| call_error("ELBv2:DescribeTargetGroups", e))?;
    Ok(out
        .target_groups()
        .iter()
        .filter_map(|tg| {
            Some((
                tg.target_group_name()?.to_string(),
                tg.target_group_arn()?.to_string(),
            ))
        })
        .collect())
}

/// Every `instance`-type target group: (ARN, name).
pub async fn instance_target_groups(clients: &Clients) -> Result<Vec<(String, String)>, AwsError> {
    let mut out = Vec::new();
    let mut pages = clients
        .elbv2
        .describe_target_groups()
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("ELBv2:DescribeTargetGroups", e))?;
        for tg in page.target_groups() {
            if tg.target_type() != Some(&TargetTypeEnum::Instance) {
                continue;
            }
            if let (Some(arn), Some(name)) = (tg.target_group_arn(), tg.target_group_name()) {
                out.push((arn.to_string(), name.to_string()));
            }
        }
    }
    Ok(out)
}

/// One registered target of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    pub port: Option<i32>,
    pub state: TargetState,
}

/// Every target registered in a group, with its health.
pub async fn targets(clients: &Clients, arn: &str) -> Result<Vec<Target>, AwsError> {
    let out = clients
        .elbv2
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| call_error("ELBv2:DescribeTargetHealth", e))?;
    Ok(out
        .target_health_descriptions()
        .iter()
        .filter_map(|d| {
            let t = d.target()?;
            Some(Target {
                id: t.id()?.to_string(),
                port: t.port(),
                state: target_state(d.target_health().and_then(|h| h.state())),
            })
        })
        .collect())
}

fn target_state(s: Option<&TargetHealthStateEnum>) -> TargetState {
    match s {
        Some(TargetHealthStateEnum::Healthy) => TargetState::Healthy,
        Some(TargetHealthStateEnum::Draining) => TargetState::Draining,
        Some(TargetHealthStateEnum::Initial) => TargetState::Initial,
        Some(TargetHealthStateEnum::Unhealthy) => TargetState::Unhealthy,
        Some(TargetHealthStateEnum::UnhealthyDraining) => TargetState::UnhealthyDraining,
        Some(TargetHealthStateEnum::Unused) => TargetState::Unused,
        Some(TargetHealthStateEnum::Unavailable) => TargetState::Unavailable,
        _ => TargetState::Unknown,
    }
}

/// (healthy, registered) targets of a target group.
pub async fn target_health(clients: &Clients, arn: &str) -> Result<(u32, u32), AwsError> {
    let all = targets(clients, arn).await?;
    let healthy = all
        .iter()
        .filter(|t| t.state == TargetState::Healthy)
        .count();
    Ok((
        u32::try_from(healthy).unwrap_or(u32::MAX),
        u32::try_from(all.len()).unwrap_or(u32::MAX),
    ))
}

/// Which of `arns` are tagged `<key>=<value>`.
pub async fn tagged(
    clients: &Clients,
    arns: &BTreeSet<String>,
    key: &str,
    value: &str,
) -> Result<BTreeSet<String>, AwsError> {
    let arns: Vec<String> = arns.iter().cloned().collect();
    let mut matching = BTreeSet::new();
    for chunk in arns.chunks(NAMES_PER_CALL) {
        let out = clients
            .elbv2
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| call_error("ELBv2:DescribeTags", e))?;
        for d in out.tag_descriptions() {
            let has = d
                .tags()
                .iter()
                .any(|t| t.key() == Some(key) && t.value() == Some(value));
            if let (true, Some(arn)) = (has, d.resource_arn()) {
                matching.insert(arn.to_string());
            }
        }
    }
    Ok(matching)
}

/// A group's `deregistration_delay.timeout_seconds`; `Ok(None)` when the
/// attribute is absent or unreadable as a number.
pub async fn deregistration_delay(
    clients: &Clients,
    arn: &str,
) -> Result<Option<Duration>, AwsError> {
    let out = clients
        .elbv2
        .describe_target_group_attributes()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| call_error("ELBv2:DescribeTargetGroupAttributes", e))?;
    Ok(out
        .attributes()
        .iter()
        .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
        .and_then(|a| a.value())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs))
}

pub async fn register(
    clients: &Clients,
    target_group_arn: &str,
    id: &str,
    port: Option<i32>,
) -> Result<(), AwsError> {
    clients
        .elbv2
        .register_targets()
        .target_group_arn(target_group_arn)
        .targets(TargetDescription::builder().id(id).set_port(port).build())
        .send()
        .await
        .map_err(|e| call_error("ELBv2:RegisterTargets", e))?;
    Ok(())
}

pub async fn deregister(
    clients: &Clients,
    target_group_arn: &str,
    id: &str,
    port: Option<i32>,
) -> Result<(), AwsError> {
    clients
        .elbv2
        .deregister_targets()
        .target_group_arn(target_group_arn)
        .targets(TargetDescription::builder().id(id).set_port(port).build())
        .send()
        .await
        .map_err(|e| call_error("ELBv2:DeregisterTargets", e))?;
    Ok(())
}
