//! Auto Scaling: the groups that keep legacy fleets, and the calls that
//! switch one off (suspend, detach, scale to zero, delete) or give it back.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_autoscaling::types::{Filter, Tag};

use super::{AwsError, Clients, call_error};
use crate::core::decommission::GroupInstance;

/// DescribeAutoScalingGroups takes at most 100 names (and answers 100 a page).
const NAMES_PER_CALL: usize = 100;
/// The lifecycle transition whose hooks hold instances in `Terminating:Wait`.
const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";

/// A group as described, before its hooks and registrations are known.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub min_size: i32,
    pub desired_capacity: i32,
    pub suspended: BTreeSet<String>,
    pub target_group_arns: BTreeSet<String>,
    pub load_balancer_names: Vec<String>,
    pub instances: Vec<GroupInstance>,
    /// The launch template it launches from (ID or name), if any.
    pub launch_template: Option<String>,
    pub deleting: bool,
}

/// The named groups that exist (a name that does not is simply absent).
pub async fn groups_named(
    clients: &Clients,
    names: &BTreeSet<String>,
) -> Result<Vec<Group>, AwsError> {
    let names: Vec<String> = names.iter().cloned().collect();
    let mut out = Vec::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        let req = clients
            .autoscaling
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names(Some(chunk.to_vec()));
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("AutoScaling:DescribeAutoScalingGroups", e))?;
            out.extend(page.auto_scaling_groups().iter().filter_map(group));
        }
    }
    Ok(out)
}

/// Groups carrying the tag key (ecsync's decommission clock).
pub async fn groups_tagged(clients: &Clients, key: &str) -> Result<Vec<Group>, AwsError> {
    let mut pages = clients
        .autoscaling
        .describe_auto_scaling_groups()
        .filters(Filter::builder().name("tag-key").values(key).build())
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("AutoScaling:DescribeAutoScalingGroups", e))?;
        out.extend(page.auto_scaling_groups().iter().filter_map(group));
    }
    Ok(out)
}

/// Every group but `except` that launches from the template `id` or `name`
/// (all groups are listed: a template names none of its users).
pub async fn template_users(
    clients: &Clients,
    id: &str,
    name: &str,
    except: &str,
) -> Result<Vec<String>, AwsError> {
    let mut pages = clients
        .autoscaling
        .describe_auto_scaling_groups()
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("AutoScaling:DescribeAutoScalingGroups", e))?;
        out.extend(
            page.auto_scaling_groups()
                .iter()
                .filter_map(group)
                .filter(|g| g.name != except)
                .filter(|g| {
                    g.launch_template
                        .as_deref()
                        .is_some_and(|t| t == id || t == name)
                })
                .map(|g| g.name),
        );
    }
    Ok(out)
}

fn group(g: &aws_sdk_autoscaling::types::AutoScalingGroup) -> Option<Group> {
    let launch_template = g
        .launch_template()
        .or_else(|| {
            g.mixed_instances_policy()
                .and_then(|m| m.launch_template())
                .and_then(|l| l.launch_template_specification())
        })
        .and_then(|t| t.launch_template_id().or(t.launch_template_name()))
        .map(str::to_string);
    Some(Group {
        name: g.auto_scaling_group_name()?.to_string(),
        tags: g
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
            .collect(),
        // Absent sizes read as "not zero": a group is never taken for empty by default.
        min_size: g.min_size().unwrap_or(i32::MAX),
        desired_capacity: g.desired_capacity().unwrap_or(i32::MAX),
        suspended: g
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name().map(str::to_string))
            .collect(),
        target_group_arns: g.target_group_arns().iter().cloned().collect(),
        load_balancer_names: g.load_balancer_names().to_vec(),
        instances: g
            .instances()
            .iter()
            .filter_map(|i| {
                Some(GroupInstance {
                    id: i.instance_id()?.to_string(),
                    // Unknown reads as protected: the group is then held.
                    protected_from_scale_in: i.protected_from_scale_in().unwrap_or(true),
                })
            })
            .collect(),
        launch_template,
        deleting: g.status().is_some_and(|s| s.starts_with("Delete")),
    })
}

/// Names of the group's lifecycle hooks on instance termination.
pub async fn terminating_hooks(clients: &Clients, group: &str) -> Result<Vec<String>, AwsError> {
    let out = clients
        .autoscaling
        .describe_lifecycle_hooks()
        .auto_scaling_group_name(group)
        .send()
        .await
        .map_err(|e| call_error("AutoScaling:DescribeLifecycleHooks", e))?;
    Ok(out
        .lifecycle_hooks()
        .iter()
        .filter(|h| h.lifecycle_transition() == Some(TERMINATING))
        .filter_map(|h| h.lifecycle_hook_name().map(str::to_string))
        .collect())
}

/// Tags on the group itself: never propagated to the instances it launches.
pub async fn tag(
    clients: &Clients,
    group: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| {
            Tag::builder()
                .resource_id(group)
                .resource_type("auto-scaling-group")
                .key(k)
                .value(v)
                .propagate_at_launch(false)
                .build()
        })
        .collect();
    clients
        .autoscaling
        .create_or_update_tags()
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| call_error("AutoScaling:CreateOrUpdateTags", e))?;
    Ok(())
}

pub async fn untag(clients: &Clients, group: &str, keys: &[String]) -> Result<(), AwsError> {
    if keys.is_empty() {
        return Ok(());
    }
    let tags: Vec<Tag> = keys
        .iter()
        .map(|k| {
            Tag::builder()
                .resource_id(group)
                .resource_type("auto-scaling-group")
                .key(k)
                .build()
        })
        .collect();
    clients
        .autoscaling
        .delete_tags()
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| call_error("AutoScaling:DeleteTags", e))?;
    Ok(())
}

pub async fn suspend(clients: &Clients, group: &str, processes: &[String]) -> Result<(), AwsError> {
    clients
        .autoscaling
        .suspend_processes()
        .auto_scaling_group_name(group)
        .set_scaling_processes(Some(processes.to_vec()))
        .send()
        .await
        .map_err(|e| call_error("AutoScaling:SuspendProcesses", e))?;
    Ok(())
}

pub async fn resume(clients: &Clients, group: &str, processes: &[String]) -> Result<(), AwsError> {
    clients
        .autoscaling
        .resume_processes()
        .auto_scaling_group_name(group)
        .set_scaling_processes(Some(processes.to_vec()))
        .send()
        .await
        .map_err(|e| call_error("AutoScaling:ResumeProcesses", e))?;
    Ok(())
}

pub async fn detach(
    clients: &Clients,
    group: &str,
    target_group_arn: &str,
) -> Result<(), AwsError> {
    clients
        .autoscaling
        .detach_load_balancer_target_groups()
        .auto_scaling_group_name(group)
        .target_group_arns(target_group_arn)
        .send()
        .await
        .map_err(|e| call_error("AutoScaling:DetachLoadBalancerTargetGroups", e))?;
    Ok(())
}

pub async fn attach(
    clients: &Clients,
    group: &str,
    target_group_arn: &str,
) -> Result<(), AwsError> {
    clients
        .autoscaling
        .attach_load_balancer_target_groups()
        .auto_scaling_group_name(group)
        .target_group_arns(target_group_arn)
        .send()
        .await
        .map_err(|e| call_error("AutoScaling:AttachLoadBalancerTargetGroups", e))?;
    Ok(())
}

/// Minimum and desired capacity to 0; Auto Scaling terminates the instances.
pub async fn scale_to_zero(clients: &Clients, group: &str) -> Result<(), AwsError> {
    clients
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(group)
        .min_size(0)
        .desired_capacity(0)
        .send()
        .await
        .map_err(|e| call_error("AutoScaling:UpdateAutoScalingGroup", e))?;
    Ok(())
}

/// Never with ForceDelete: AWS then refuses a group that still has
/// instances, which is the last guard against deleting a live fleet.
pub async fn delete(clients: &Clients, group: &str) -> Result<(), AwsError> {
    clients
        .autoscaling
        .delete_auto_scaling_group()
        .auto_scaling_group_name(group)
        .force_delete(false)
        .send()
        .await
        .map_err(|e| call_error("AutoScaling:DeleteAutoScalingGroup", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_sdk_autoscaling::operation::delete_auto_scaling_group::{
        DeleteAutoScalingGroupError, DeleteAutoScalingGroupOutput,
    };
    use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
    use aws_sdk_autoscaling::operation::describe_lifecycle_hooks::DescribeLifecycleHooksOutput;
    use aws_sdk_autoscaling::types::{AutoScalingGroup, Instance, LifecycleHook};
    use aws_smithy_mocks::mock;

    use super::*;
    use crate::adapters::aws::tests::mocked;

    #[tokio::test]
    async fn only_termination_hooks_count() {
        let hooks =
            mock!(aws_sdk_autoscaling::Client::describe_lifecycle_hooks).then_output(|| {
                DescribeLifecycleHooksOutput::builder()
                    .lifecycle_hooks(
                        LifecycleHook::builder()
                            .lifecycle_hook_name("warm-cache")
                            .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
                            .build(),
                    )
                    .lifecycle_hooks(
                        LifecycleHook::builder()
                            .lifecycle_hook_name("ship-logs")
                            .lifecycle_transition(TERMINATING)
                            .heartbeat_timeout(7200)
                            .build(),
                    )
                    .build()
            });
        let names = terminating_hooks(&mocked(&[&hooks]), "web-asg")
            .await
            .unwrap();
        assert_eq!(names, vec!["ship-logs".to_string()]);
    }

    #[tokio::test]
    async fn an_instance_whose_protection_is_not_reported_reads_as_protected() {
        let out =
            mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups).then_output(|| {
                DescribeAutoScalingGroupsOutput::builder()
                    .auto_scaling_groups(
                        AutoScalingGroup::builder()
                            .auto_scaling_group_name("web-asg")
                            .min_size(2)
                            .desired_capacity(2)
                            .instances(
                                Instance::builder()
                                    .instance_id("i-1")
                                    .protected_from_scale_in(false)
                                    .build(),
                            )
                            .instances(Instance::builder().instance_id("i-2").build())
                            .status("Delete in progress")
                            .build(),
                    )
                    .build()
            });
        let names = BTreeSet::from(["web-asg".to_string()]);
        let groups = groups_named(&mocked(&[&out]), &names).await.unwrap();
        let g = &groups[0];
        assert_eq!(
            g.instances
                .iter()
                .map(|i| i.protected_from_scale_in)
                .collect::<Vec<_>>(),
            vec![false, true]
        );
        assert!(g.deleting);
    }

    #[tokio::test]
    async fn a_group_with_instances_is_never_force_deleted() {
        // moto deletes a group that still has instances (terminating them);
        // AWS refuses unless ForceDelete is set, and ecsync never sets it.
        let refused = mock!(aws_sdk_autoscaling::Client::delete_auto_scaling_group)
            .match_requests(|r| r.force_delete() == Some(false))
            .then_error(|| {
                DeleteAutoScalingGroupError::ResourceInUseFault(
                    aws_sdk_autoscaling::types::error::ResourceInUseFault::builder()
                        .message("You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.")
                        .meta(
                            aws_sdk_autoscaling::error::ErrorMetadata::builder()
                                .code("ResourceInUse")
                                .build(),
                        )
                        .build(),
                )
            });
        let forced = mock!(aws_sdk_autoscaling::Client::delete_auto_scaling_group)
            .then_output(|| DeleteAutoScalingGroupOutput::builder().build());
        let clients = mocked(&[&refused, &forced]);
        let err = delete(&clients, "web-asg").await.unwrap_err();
        assert_eq!(err.code(), Some("ResourceInUse"));
        assert!(
            err.to_string()
                .contains("AutoScaling:DeleteAutoScalingGroup")
        );
        assert_eq!(forced.num_calls(), 0);
    }
}
