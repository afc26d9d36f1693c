//! What cleaning up after a legacy fleet needs from ELBv2: whether the legacy
//! target group is still used, and its deletion.

use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, ForwardActionConfig};

use crate::adapters::aws::{AwsError, Clients, call_error};

/// A target group as cleanup sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupUse {
    pub name: String,
    /// Listeners and rules whose actions forward to it.
    pub references: usize,
}

/// `Ok(None)`: it does not exist (any more). The references are counted in
/// the listeners and rules of the load balancers the group names, rather
/// than taken from that list alone, which can lag behind a listener change.
pub async fn usage(clients: &Clients, arn: &str) -> Result<Option<TargetGroupUse>, AwsError> {
    let out = match clients
        .elbv2
        .describe_target_groups()
        .target_group_arns(arn)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            let e = call_error("ELBv2:DescribeTargetGroups", e);
            return match e.code() {
                Some("TargetGroupNotFound") => Ok(None),
                _ => Err(e),
            };
        }
    };
    let Some(tg) = out.target_groups().first() else {
        return Ok(None);
    };
    let mut references = 0;
    for lb in tg.load_balancer_arns() {
        let mut listeners = Vec::new();
        let mut pages = clients
            .elbv2
            .describe_listeners()
            .load_balancer_arn(lb)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("ELBv2:DescribeListeners", e))?;
            listeners.extend(page.listeners().iter().cloned());
        }
        for l in listeners {
            if forwards_to(l.default_actions(), arn) {
                references += 1;
            }
            let Some(listener_arn) = l.listener_arn() else {
                continue;
            };
            let rules = clients
                .elbv2
                .describe_rules()
                .listener_arn(listener_arn)
                .send()
                .await
                .map_err(|e| call_error("ELBv2:DescribeRules", e))?;
            references += rules
                .rules()
                .iter()
                .filter(|r| r.is_default() != Some(true) && forwards_to(r.actions(), arn))
                .count();
        }
    }
    Ok(Some(TargetGroupUse {
        name: tg.target_group_name().unwrap_or(arn).to_string(),
        references,
    }))
}

/// AWS refuses (`ResourceInUse`) a group a listener or rule still uses: the
/// last guard against deleting one that serves traffic.
pub async fn delete_target_group(clients: &Clients, arn: &str) -> Result<(), AwsError> {
    clients
        .elbv2
        .delete_target_group()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| call_error("ELBv2:DeleteTargetGroup", e))?;
    Ok(())
}

/// Whether some forward action in `actions` sends to `arn`.
pub fn forwards_to(actions: &[Action], arn: &str) -> bool {
    actions.iter().any(|a| {
        a.r#type() == Some(&ActionTypeEnum::Forward)
            && (a.target_group_arn() == Some(arn)
                || a.forward_config().is_some_and(|f| {
                    f.target_groups()
                        .iter()
                        .any(|t| t.target_group_arn() == Some(arn))
                }))
    })
}

/// `actions` with `arn` taken out of every forward action that sends to it
/// and to something else; a forward action left with nothing is kept as it
/// was (traffic must keep a destination), and with nothing changed the
/// actions come back exactly as given.
pub fn without(actions: &[Action], arn: &str) -> Vec<Action> {
    let mut out = actions.to_vec();
    let mut changed = false;
    for a in &mut out {
        if a.r#type() != Some(&ActionTypeEnum::Forward) {
            continue;
        }
        let Some(f) = a.forward_config() else {
            continue;
        };
        let kept: Vec<_> = f
            .target_groups()
            .iter()
            .filter(|t| t.target_group_arn() != Some(arn))
            .cloned()
            .collect();
        if kept.is_empty() || kept.len() == f.target_groups().len() {
            continue;
        }
        a.forward_config = Some(
            ForwardActionConfig::builder()
                .set_target_groups(Some(kept))
                .set_target_group_stickiness_config(f.target_group_stickiness_config().cloned())
                .build(),
        );
        a.target_group_arn = None;
        changed = true;
    }
    if changed {
        super::listener::keep_oidc_secrets(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use aws_sdk_elasticloadbalancingv2::error::ErrorMetadata;
    use aws_sdk_elasticloadbalancingv2::operation::delete_target_group::DeleteTargetGroupError;
    use aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersOutput;
    use aws_sdk_elasticloadbalancingv2::operation::describe_rules::DescribeRulesOutput;
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::{
        DescribeTargetGroupsError, DescribeTargetGroupsOutput,
    };
    use aws_sdk_elasticloadbalancingv2::types::error::{
        ResourceInUseException, TargetGroupNotFoundException,
    };
    use aws_sdk_elasticloadbalancingv2::types::{Listener, Rule, TargetGroup, TargetGroupTuple};
    use aws_smithy_mocks::mock;

    use super::*;
    use crate::adapters::aws::tests::mocked;

    const LEGACY: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-ec2/1";

    /// AWS refuses to delete a group a listener or rule still uses (moto does
    /// too, but only this shows the error as the shell reports it).
    #[tokio::test]
    async fn a_target_group_still_in_use_is_refused_and_reported() {
        let refused = mock!(aws_sdk_elasticloadbalancingv2::Client::delete_target_group)
            .then_error(|| {
                DeleteTargetGroupError::ResourceInUseException(
                    ResourceInUseException::builder()
                        .message("Target group is currently in use by a listener or a rule")
                        .meta(ErrorMetadata::builder().code("ResourceInUse").build())
                        .build(),
                )
            });
        let e = delete_target_group(&mocked(&[&refused]), LEGACY)
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Some("ResourceInUse"));
        assert!(e.to_string().contains("ELBv2:DeleteTargetGroup"), "{e}");
    }

    #[tokio::test]
    async fn a_deleted_target_group_reads_as_gone() {
        let missing = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_groups)
            .then_error(|| {
                DescribeTargetGroupsError::TargetGroupNotFoundException(
                    TargetGroupNotFoundException::builder()
                        .meta(ErrorMetadata::builder().code("TargetGroupNotFound").build())
                        .build(),
                )
            });
        assert_eq!(usage(&mocked(&[&missing]), LEGACY).await.ok(), Some(None));
    }

    /// The load balancer list of a target group can still name a load
    /// balancer whose listeners no longer use it: the listeners and rules decide.
    #[tokio::test]
    async fn references_are_counted_in_listeners_and_rules_not_the_group_list() {
        let tg = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_groups).then_output(
            || {
                DescribeTargetGroupsOutput::builder()
                    .target_groups(
                        TargetGroup::builder()
                            .target_group_arn(LEGACY)
                            .target_group_name("web-ec2")
                            .load_balancer_arns("arn:lb/web")
                            .build(),
                    )
                    .build()
            },
        );
        let listeners = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_listeners)
            .then_output(|| {
                DescribeListenersOutput::builder()
                    .listeners(
                        Listener::builder()
                            .listener_arn("arn:listener/web")
                            .default_actions(weighted(&[("ecs", 1)]))
                            .build(),
                    )
                    .build()
            });
        let rules =
            mock!(aws_sdk_elasticloadbalancingv2::Client::describe_rules).then_output(|| {
                DescribeRulesOutput::builder()
                    .rules(
                        Rule::builder()
                            .is_default(true)
                            .actions(weighted(&[("ecs", 1)]))
                            .build(),
                    )
                    .build()
            });
        let clients = mocked(&[&tg, &listeners, &rules]);
        let u = usage(&clients, LEGACY)
            .await
            .expect("usage")
            .expect("exists");
        assert_eq!((u.name.as_str(), u.references), ("web-ec2", 0));

        let in_rule =
            mock!(aws_sdk_elasticloadbalancingv2::Client::describe_rules).then_output(|| {
                DescribeRulesOutput::builder()
                    .rules(
                        Rule::builder()
                            .is_default(false)
                            .actions(weighted(&[(LEGACY, 1)]))
                            .build(),
                    )
                    .build()
            });
        let clients = mocked(&[&tg, &listeners, &in_rule]);
        let u = usage(&clients, LEGACY)
            .await
            .expect("usage")
            .expect("exists");
        assert_eq!(u.references, 1);
    }

    fn weighted(groups: &[(&str, i32)]) -> Action {
        let mut f = ForwardActionConfig::builder();
        for (arn, w) in groups {
            f = f.target_groups(
                TargetGroupTuple::builder()
                    .target_group_arn(*arn)
                    .weight(*w)
                    .build(),
            );
        }
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(f.build())
            .build()
    }

    #[test]
    fn the_legacy_group_leaves_and_the_ecs_group_stays() {
        let actions = [weighted(&[("ecs", 100), ("legacy", 0)])];
        assert!(forwards_to(&actions, "legacy"));
        let out = without(&actions, "legacy");
        assert!(!forwards_to(&out, "legacy"));
        assert!(forwards_to(&out, "ecs"));
    }

    #[test]
    fn a_forward_to_the_legacy_group_alone_is_kept() {
        let actions = [weighted(&[("legacy", 1)])];
        assert_eq!(without(&actions, "legacy"), actions.to_vec());
    }
}
