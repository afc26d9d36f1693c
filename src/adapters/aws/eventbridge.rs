//! EventBridge *rules* whose targets run ECS tasks: the older way to
//! schedule them. ecsync never changes a rule; `import` reports each one
//! with the `kind: ScheduledTask` it would become (DESIGN §3, issue 14).
//! Reads only: ListRules and ListTargetsByRule on the default event bus.

use super::{AwsError, Clients, call_error};
use crate::core::model::{
    API_VERSION, AwsVpcConfiguration, CapacityProviderStrategyItem, Metadata, NetworkConfiguration,
};
use crate::core::scheduled::{
    KIND_SCHEDULED_TASK, ScheduleState, ScheduledTaskManifest, ScheduledTaskSpec, normalize,
};

/// One rule target that runs tasks in the cluster, as a ScheduledTask (its
/// task definition still by ARN: the caller describes it).
#[derive(Debug, Clone)]
pub struct RuleTask {
    pub rule: String,
    pub task_definition_arn: String,
    pub manifest: ScheduledTaskManifest,
}

/// Scheduled rules with an ECS target in `cluster` (by name).
pub async fn ecs_rule_tasks(clients: &Clients, cluster: &str) -> Result<Vec<RuleTask>, AwsError> {
    let mut rules = Vec::new();
    let mut token = None;
    loop {
        let page = clients
            .eventbridge
            .list_rules()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| call_error("EventBridge:ListRules", e))?;
        // Only schedules: a rule on an event pattern has no expression to carry over.
        rules.extend(page.rules().iter().filter_map(|r| {
            Some((
                r.name()?.to_string(),
                r.schedule_expression()?.to_string(),
                r.state().map(|s| s.as_str().to_string()),
            ))
        }));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let mut out = Vec::new();
    for (rule, schedule, state) in rules {
        let mut token = None;
        loop {
            let page = clients
                .eventbridge
                .list_targets_by_rule()
                .rule(&rule)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| call_error("EventBridge:ListTargetsByRule", e))?;
            for t in page.targets() {
                let Some(params) = t.ecs_parameters() else {
                    continue;
                };
                let in_cluster = t
                    .arn()
                    .split_once(":cluster/")
                    .is_some_and(|(head, name)| head.contains(":ecs:") && name == cluster);
                if !in_cluster {
                    continue;
                }
                let mut spec = ScheduledTaskSpec {
                    cluster: cluster.to_string(),
                    schedule: schedule.clone(),
                    timezone: None,
                    state: Some(if state.as_deref() == Some("DISABLED") {
                        ScheduleState::Disabled
                    } else {
                        ScheduleState::Enabled
                    }),
                    role_arn: t.role_arn().unwrap_or_default().to_string(),
                    task_definition: None,
                    task_definition_from: None,
                    launch_type: params.launch_type().map(|l| l.as_str().to_string()),
                    capacity_provider_strategy: Some(
                        params
                            .capacity_provider_strategy()
                            .iter()
                            .map(|c| CapacityProviderStrategyItem {
                                capacity_provider: c.capacity_provider().to_string(),
                                weight: Some(c.weight()),
                                base: Some(c.base()),
                            })
                            .collect(),
                    ),
                    network_configuration: params
                        .network_configuration()
                        .and_then(|n| n.awsvpc_configuration())
                        .map(|v| NetworkConfiguration {
                            awsvpc_configuration: Some(AwsVpcConfiguration {
                                subnets: v.subnets().to_vec(),
                                security_groups: Some(v.security_groups().to_vec())
                                    .filter(|g| !g.is_empty()),
                                assign_public_ip: v
                                    .assign_public_ip()
                                    .map(|a| a.as_str().to_string()),
                            }),
                        }),
                    overrides: t.input().and_then(|i| serde_json::from_str(i).ok()),
                    task_count: params.task_count(),
                };
                normalize(&mut spec);
                out.push(RuleTask {
                    rule: rule.clone(),
                    task_definition_arn: params.task_definition_arn().to_string(),
                    manifest: ScheduledTaskManifest {
                        api_version: API_VERSION.into(),
                        kind: KIND_SCHEDULED_TASK.into(),
                        metadata: Metadata {
                            name: rule.clone(),
                            ..Default::default()
                        },
                        spec,
                    },
                });
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}
