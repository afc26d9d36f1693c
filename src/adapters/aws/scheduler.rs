//! EventBridge Scheduler: the schedule group `ecsync-<controller-id>` and the
//! ECS schedules in it (DESIGN §3 `kind: ScheduledTask`).
//!
//! Schedules carry no tags; the group does, and ownership is the group's:
//! ecsync writes only into a group tagged `ecsync.io/managed-by=<id>`, so
//! every schedule in it is ecsync's. Reads: GetScheduleGroup,
//! ListTagsForResource, ListSchedules, then GetSchedule per schedule (the
//! list carries no target), and each target's task definition described
//! once per process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_scheduler::types as sch;
use tokio::task::JoinSet;
use tracing::info;

use super::ecs::observe::{TaskDefinitionCache, describe_task_definitions};
use super::{AwsError, Clients, call_error};
use crate::core::model::{
    API_VERSION, AwsVpcConfiguration, CapacityProviderStrategyItem, Metadata, NetworkConfiguration,
};
use crate::core::scheduled::{
    DesiredScheduledTask, Group, KIND_SCHEDULED_TASK, LiveSchedule, LiveTaskDefinition,
    ObservedSchedules, ScheduleState, ScheduledTaskManifest, ScheduledTaskSpec, normalize,
    parse_input, view_of,
};
use crate::core::tags;

/// Concurrent GetSchedule calls.
const READ_CONCURRENCY: usize = 8;

fn build_error(operation: &'static str, e: impl std::fmt::Display) -> AwsError {
    AwsError::Call {
        operation,
        code: None,
        message: e.to_string(),
    }
}

/// The group and every schedule in it.
pub async fn observe(
    clients: &Clients,
    group: &str,
    controller_id: &str,
    cache: &TaskDefinitionCache,
) -> Result<ObservedSchedules, AwsError> {
    let found = match clients
        .scheduler
        .get_schedule_group()
        .name(group)
        .send()
        .await
    {
        Ok(out) => out.arn().unwrap_or_default().to_string(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            return Ok(ObservedSchedules {
                group: Group::Missing,
                schedules: BTreeMap::new(),
            });
        }
        Err(e) => return Err(call_error("Scheduler:GetScheduleGroup", e)),
    };
    let group_tags: BTreeMap<String, String> = clients
        .scheduler
        .list_tags_for_resource()
        .resource_arn(&found)
        .send()
        .await
        .map_err(|e| call_error("Scheduler:ListTagsForResource", e))?
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    let state = if tags::is_managed_by(&group_tags, controller_id) {
        Group::Owned { arn: found }
    } else {
        Group::NotOwned { arn: found }
    };

    let mut names = Vec::new();
    let mut pages = clients
        .scheduler
        .list_schedules()
        .group_name(group)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("Scheduler:ListSchedules", e))?;
        names.extend(
            page.schedules()
                .iter()
                .filter_map(|s| s.name().map(str::to_string)),
        );
    }

    let reads = Arc::new(tokio::sync::Semaphore::new(READ_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for name in names {
        let client = clients.scheduler.clone();
        let reads = reads.clone();
        let group = group.to_string();
        tasks.spawn(async move {
            let _permit = reads.acquire_owned().await;
            client
                .get_schedule()
                .group_name(group)
                .name(&name)
                .send()
                .await
                .map(|out| (name, out))
        });
    }
    let mut got = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| AwsError::lost("reading a schedule", e))? {
            Ok(pair) => got.push(pair),
            // Deleted between the list and the read: not there.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) => {}
            Err(e) => return Err(call_error("Scheduler:GetSchedule", e)),
        }
    }
    let mut schedules: BTreeMap<String, LiveSchedule> = got
        .iter()
        .map(|(name, out)| (name.clone(), live_schedule(name, out)))
        .collect();

    let wanted: BTreeSet<String> = schedules
        .values()
        .filter_map(|s| s.task_definition_arn.clone())
        .filter(|arn| cache.content(arn).is_none())
        .collect();
    describe_task_definitions(clients, wanted, cache).await?;
    for s in schedules.values_mut() {
        if let Some((td, hash)) = s
            .task_definition_arn
            .as_deref()
            .and_then(|a| cache.content(a))
        {
            s.task_definition = LiveTaskDefinition::Described {
                hash,
                spec: Box::new((*td).clone()),
            };
        }
    }
    Ok(ObservedSchedules {
        group: state,
        schedules,
    })
}

/// A schedule read back into the manifest's shape, normalised as a
/// manifest is. Whatever the target, it is described as far as it can be,
/// so a hand-made change shows as drift rather than vanishing.
fn live_schedule(
    name: &str,
    out: &aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput,
) -> LiveSchedule {
    let spec = spec_from_sdk(out);
    let target = out.target();
    let params = target.and_then(|t| t.ecs_parameters());
    let mut view = view_of(&spec);
    view.overrides = target.and_then(|t| t.input()).and_then(parse_input);
    LiveSchedule {
        name: name.to_string(),
        view,
        task_definition_arn: params.map(|e| e.task_definition_arn().to_string()),
        task_definition: LiveTaskDefinition::Unknown,
    }
}

/// The manifest spec a live schedule amounts to (overrides aside: they are
/// the target's `Input`), normalised.
pub fn spec_from_sdk(
    out: &aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput,
) -> ScheduledTaskSpec {
    let target = out.target();
    let params = target.and_then(|t| t.ecs_parameters());
    let target_arn = target.map(|t| t.arn()).unwrap_or_default();
    let mut spec = ScheduledTaskSpec {
        cluster: cluster_name(target_arn).unwrap_or(target_arn).to_string(),
        schedule: out.schedule_expression().unwrap_or_default().to_string(),
        timezone: out.schedule_expression_timezone().map(str::to_string),
        state: out.state().and_then(|s| ScheduleState::parse(s.as_str())),
        role_arn: target.map(|t| t.role_arn()).unwrap_or_default().to_string(),
        task_definition: None,
        task_definition_from: None,
        launch_type: params
            .and_then(|e| e.launch_type())
            .map(|l| l.as_str().to_string()),
        capacity_provider_strategy: params
            .map(|e| {
                e.capacity_provider_strategy()
                    .iter()
                    .map(|c| CapacityProviderStrategyItem {
                        capacity_provider: c.capacity_provider().to_string(),
                        weight: Some(c.weight()),
                        base: Some(c.base()),
                    })
                    .collect()
            })
            .filter(|v: &Vec<_>| !v.is_empty()),
        network_configuration: params
            .and_then(|e| e.network_configuration())
            .and_then(|n| n.awsvpc_configuration())
            .map(|v| NetworkConfiguration {
                awsvpc_configuration: Some(AwsVpcConfiguration {
                    subnets: v.subnets().to_vec(),
                    security_groups: Some(v.security_groups().to_vec()).filter(|g| !g.is_empty()),
                    assign_public_ip: v.assign_public_ip().map(|a| a.as_str().to_string()),
                }),
            }),
        overrides: None,
        task_count: params.and_then(|e| e.task_count()),
    };
    normalize(&mut spec);
    spec
}

/// `arn:aws:ecs:REGION:ACCOUNT:cluster/NAME` → `NAME`.
fn cluster_name(arn: &str) -> Option<&str> {
    let (head, name) = arn.split_once(":cluster/")?;
    head.contains(":ecs:").then_some(name)
}

/// The ARN of cluster `name` in the group's account and region: both live
/// where ecsync's clients point.
pub fn cluster_arn(group_arn: &str, name: &str) -> Option<String> {
    let parts: Vec<&str> = group_arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "scheduler", region, account, _] => Some(format!(
            "arn:{partition}:ecs:{region}:{account}:cluster/{name}"
        )),
        _ => None,
    }
}

/// Create the group, tagged as this controller's. Returns its ARN.
pub async fn create_group(
    clients: &Clients,
    group: &str,
    controller_id: &str,
) -> Result<String, AwsError> {
    let tag = sch::Tag::builder()
        .key(tags::MANAGED_BY)
        .value(controller_id)
        .build()
        .map_err(|e| build_error("Scheduler:CreateScheduleGroup", e))?;
    let out = clients
        .scheduler
        .create_schedule_group()
        .name(group)
        .tags(tag)
        .send()
        .await
        .map_err(|e| call_error("Scheduler:CreateScheduleGroup", e))?;
    let arn = out.schedule_group_arn().to_string();
    info!(group, %arn, "created schedule group: the first ScheduledTask needs it");
    Ok(arn)
}

/// What a create or update sends.
pub struct ScheduleWrite<'a> {
    pub group: &'a str,
    pub group_arn: &'a str,
    pub desired: &'a DesiredScheduledTask,
    pub task_definition_arn: &'a str,
    /// Why (the drift's field paths), for the log.
    pub why: &'a [String],
}

/// The ECS target; build errors are labelled with the operation `op` that
/// would have sent it.
fn target(w: &ScheduleWrite<'_>, op: &'static str) -> Result<sch::Target, AwsError> {
    let s = &w.desired.spec;
    let cluster = cluster_arn(w.group_arn, &s.cluster).ok_or_else(|| {
        build_error(
            op,
            format!("cannot read account and region from {}", w.group_arn),
        )
    })?;
    let mut params = sch::EcsParameters::builder()
        .task_definition_arn(w.task_definition_arn)
        .task_count(s.task_count.unwrap_or(1));
    if let Some(lt) = &s.launch_type {
        params = params.launch_type(sch::LaunchType::from(lt.as_str()));
    }
    for item in s.capacity_provider_strategy.iter().flatten() {
        params = params.capacity_provider_strategy(
            sch::CapacityProviderStrategyItem::builder()
                .capacity_provider(&item.capacity_provider)
                .weight(item.weight.unwrap_or(0))
                .base(item.base.unwrap_or(0))
                .build()
                .map_err(|e| build_error(op, e))?,
        );
    }
    if let Some(vpc) = s
        .network_configuration
        .as_ref()
        .and_then(|n| n.awsvpc_configuration.as_ref())
    {
        let mut v = sch::AwsVpcConfiguration::builder()
            .set_subnets(Some(vpc.subnets.clone()))
            .set_security_groups(vpc.security_groups.clone());
        if let Some(ip) = &vpc.assign_public_ip {
            v = v.assign_public_ip(sch::AssignPublicIp::from(ip.as_str()));
        }
        params = params.network_configuration(
            sch::NetworkConfiguration::builder()
                .awsvpc_configuration(v.build().map_err(|e| build_error(op, e))?)
                .build(),
        );
    }
    let mut t = sch::Target::builder()
        .arn(cluster)
        .role_arn(&s.role_arn)
        .ecs_parameters(params.build().map_err(|e| build_error(op, e))?);
    if let Some(o) = &s.overrides {
        t = t.input(crate::core::scheduled::overrides_value(o).to_string());
    }
    t.build().map_err(|e| build_error(op, e))
}

fn state(w: &ScheduleWrite<'_>) -> sch::ScheduleState {
    sch::ScheduleState::from(w.desired.spec.state.unwrap_or_default().as_str())
}

fn timezone(w: &ScheduleWrite<'_>) -> String {
    w.desired
        .spec
        .timezone
        .clone()
        .unwrap_or_else(|| crate::core::scheduled::DEFAULT_TIMEZONE.into())
}

pub async fn create_schedule(clients: &Clients, w: &ScheduleWrite<'_>) -> Result<(), AwsError> {
    let window = sch::FlexibleTimeWindow::builder()
        .mode(sch::FlexibleTimeWindowMode::Off)
        .build()
        .map_err(|e| build_error("Scheduler:CreateSchedule", e))?;
    clients
        .scheduler
        .create_schedule()
        .name(&w.desired.name)
        .group_name(w.group)
        .schedule_expression(&w.desired.spec.schedule)
        .schedule_expression_timezone(timezone(w))
        .state(state(w))
        .flexible_time_window(window)
        .target(target(w, "Scheduler:CreateSchedule")?)
        .send()
        .await
        .map_err(|e| call_error("Scheduler:CreateSchedule", e))?;
    info!(schedule = %w.desired.name, group = w.group, expression = %w.desired.spec.schedule,
          task_definition = w.task_definition_arn, "created schedule: declared in Git, not live");
    Ok(())
}

/// UpdateSchedule replaces the whole schedule: what ecsync does not manage
/// (flexible window, description, dates, retry policy, dead-letter queue,
/// KMS key, action after completion) is read back and sent unchanged.
pub async fn update_schedule(clients: &Clients, w: &ScheduleWrite<'_>) -> Result<(), AwsError> {
    let live = clients
        .scheduler
        .get_schedule()
        .group_name(w.group)
        .name(&w.desired.name)
        .send()
        .await
        .map_err(|e| call_error("Scheduler:GetSchedule", e))?;
    let window = match live.flexible_time_window() {
        Some(w) => w.clone(),
        None => sch::FlexibleTimeWindow::builder()
            .mode(sch::FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| build_error("Scheduler:UpdateSchedule", e))?,
    };
    let mut target = target(w, "Scheduler:UpdateSchedule")?;
    if let Some(old) = live.target() {
        target.retry_policy = old.retry_policy().cloned();
        target.dead_letter_config = old.dead_letter_config().cloned();
    }
    clients
        .scheduler
        .update_schedule()
        .name(&w.desired.name)
        .group_name(w.group)
        .schedule_expression(&w.desired.spec.schedule)
        .schedule_expression_timezone(timezone(w))
        .state(state(w))
        .flexible_time_window(window)
        .set_description(live.description().map(str::to_string))
        .set_start_date(live.start_date().cloned())
        .set_end_date(live.end_date().cloned())
        .set_kms_key_arn(live.kms_key_arn().map(str::to_string))
        .set_action_after_completion(live.action_after_completion().cloned())
        .target(target)
        .send()
        .await
        .map_err(|e| call_error("Scheduler:UpdateSchedule", e))?;
    info!(schedule = %w.desired.name, group = w.group, drift = ?w.why,
          task_definition = w.task_definition_arn, "updated schedule to match Git");
    Ok(())
}

pub async fn delete_schedule(clients: &Clients, group: &str, name: &str) -> Result<(), AwsError> {
    match clients
        .scheduler
        .delete_schedule()
        .group_name(group)
        .name(name)
        .send()
        .await
    {
        Ok(_) => {}
        // Already gone: the end state is reached.
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) => {}
        Err(e) => return Err(call_error("Scheduler:DeleteSchedule", e)),
    }
    info!(
        schedule = name,
        group, "deleted schedule: no manifest declares it (--prune)"
    );
    Ok(())
}

/// One live schedule as a manifest (`ecsync import`).
#[derive(Debug, Clone)]
pub struct ImportedSchedule {
    pub manifest: ScheduledTaskManifest,
    /// What its task definition sets that a manifest cannot take.
    pub unmanaged: Vec<String>,
}

/// Manifests for the schedules of the group that run tasks in `cluster`,
/// each with its task definition inline.
pub async fn import(
    clients: &Clients,
    group: &str,
    cluster: &str,
) -> Result<Vec<ImportedSchedule>, AwsError> {
    let observed = observe(clients, group, "", &TaskDefinitionCache::default()).await?;
    let mut imported = Vec::new();
    for (name, live) in observed.schedules {
        let Some(td_arn) = live
            .task_definition_arn
            .filter(|_| live.view.cluster == cluster)
        else {
            continue;
        };
        let (td, unmanaged) = describe_for_import(clients, &td_arn).await?;
        let v = live.view;
        let spec = ScheduledTaskSpec {
            cluster: v.cluster,
            schedule: v.schedule,
            timezone: Some(v.timezone),
            state: Some(v.state),
            role_arn: v.role_arn,
            task_definition: Some(td),
            task_definition_from: None,
            launch_type: v.launch_type,
            capacity_provider_strategy: v.capacity_provider_strategy,
            network_configuration: v.network_configuration,
            overrides: v.overrides.and_then(|o| serde_json::from_value(o).ok()),
            task_count: Some(v.task_count),
        };
        imported.push(ImportedSchedule {
            manifest: ScheduledTaskManifest {
                api_version: API_VERSION.into(),
                kind: KIND_SCHEDULED_TASK.into(),
                metadata: Metadata {
                    name,
                    ..Default::default()
                },
                spec,
            },
            unmanaged,
        });
    }
    Ok(imported)
}

/// A task definition as a manifest takes it (normalised), and what it sets
/// that a manifest cannot express yet.
pub async fn describe_for_import(
    clients: &Clients,
    arn: &str,
) -> Result<(crate::core::model::TaskDefinition, Vec<String>), AwsError> {
    let out = clients
        .ecs
        .describe_task_definition()
        .task_definition(arn)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| call_error("ECS:DescribeTaskDefinition", e))?;
    let (mut td, unmanaged) = out
        .task_definition()
        .map(|td| super::convert::read_task_definition(td, out.tags()))
        .ok_or_else(|| {
            AwsError::Incomplete(format!(
                "DescribeTaskDefinition answered {arn} without a definition"
            ))
        })?;
    crate::core::normalize::normalize_task_definition(&mut td);
    Ok((td, unmanaged))
}

/// One imported schedule as YAML, without the fields that are unset.
pub fn to_yaml(m: &ScheduledTaskManifest) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(&crate::core::diff::to_clean_value(m))
}

#[cfg(test)]
mod tests;
