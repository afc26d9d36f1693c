//! The listener or rule that holds a migration's forward action, and the
//! rewrite of that one action.
//!
//! Listener default actions and rule actions are replaced as a whole list by
//! the API, so [`with_weights`] re-sends every other action exactly as it was
//! described; rule conditions, the listener's port, protocol and certificates
//! are never sent, so they stay as they are.

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
};

use crate::adapters::aws::{AwsError, Clients, call_error};
use crate::core::migration::forward::{self, ForwardView};
use crate::core::model::{ListenerRef, ListenerRule};

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{0}")]
    NotFound(String),
}

/// Where the managed forward action lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A listener's default actions (ModifyListener).
    Listener(String),
    /// A listener rule's actions (ModifyRule).
    Rule(String),
}

/// The listener or rule a migration names, and its actions as described.
pub async fn locate(
    clients: &Clients,
    r: &ListenerRef,
) -> Result<(Place, Vec<Action>), ListenerError> {
    match r {
        ListenerRef::Arn(arn) if arn.contains(":listener-rule/") => rule_by_arn(clients, arn).await,
        ListenerRef::Arn(arn) => {
            let out = clients
                .elbv2
                .describe_listeners()
                .listener_arns(arn)
                .send()
                .await
                .map_err(|e| call_error("ELBv2:DescribeListeners", e))?;
            let l = out
                .listeners()
                .first()
                .ok_or_else(|| ListenerError::NotFound(format!("listener {arn} not found")))?;
            Ok((Place::Listener(arn.clone()), l.default_actions().to_vec()))
        }
        ListenerRef::Port {
            load_balancer,
            port,
            rule,
        } => {
            let (listener_arn, defaults) = listener_on_port(clients, load_balancer, *port).await?;
            match rule {
                None => Ok((Place::Listener(listener_arn), defaults)),
                Some(ListenerRule { arn: Some(arn), .. }) => rule_by_arn(clients, arn).await,
                Some(ListenerRule {
                    priority: Some(priority),
                    ..
                }) => rule_by_priority(clients, &listener_arn, *priority).await,
                Some(_) => Err(ListenerError::NotFound(
                    "spec.migration.listener.rule needs a priority or an arn".into(),
                )),
            }
        }
    }
}

async fn listener_on_port(
    clients: &Clients,
    load_balancer: &str,
    port: i32,
) -> Result<(String, Vec<Action>), ListenerError> {
    let lb_arn = if load_balancer.starts_with("arn:") {
        load_balancer.to_string()
    } else {
        let out = clients
            .elbv2
            .describe_load_balancers()
            .names(load_balancer)
            .send()
            .await
            .map_err(|e| call_error("ELBv2:DescribeLoadBalancers", e))?;
        out.load_balancers()
            .first()
            .and_then(|lb| lb.load_balancer_arn())
            .map(str::to_string)
            .ok_or_else(|| {
                ListenerError::NotFound(format!("load balancer {load_balancer:?} not found"))
            })?
    };
    let mut pages = clients
        .elbv2
        .describe_listeners()
        .load_balancer_arn(&lb_arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("ELBv2:DescribeListeners", e))?;
        if let Some(l) = page.listeners().iter().find(|l| l.port() == Some(port))
            && let Some(arn) = l.listener_arn()
        {
            return Ok((arn.to_string(), l.default_actions().to_vec()));
        }
    }
    Err(ListenerError::NotFound(format!(
        "load balancer {load_balancer:?} has no listener on port {port}"
    )))
}

async fn rule_by_arn(clients: &Clients, arn: &str) -> Result<(Place, Vec<Action>), ListenerError> {
    let out = clients
        .elbv2
        .describe_rules()
        .rule_arns(arn)
        .send()
        .await
        .map_err(|e| call_error("ELBv2:DescribeRules", e))?;
    let rule = out
        .rules()
        .first()
        .ok_or_else(|| ListenerError::NotFound(format!("listener rule {arn} not found")))?;
    Ok((Place::Rule(arn.to_string()), rule.actions().to_vec()))
}

async fn rule_by_priority(
    clients: &Clients,
    listener_arn: &str,
    priority: i32,
) -> Result<(Place, Vec<Action>), ListenerError> {
    let want = priority.to_string();
    let mut pages = clients
        .elbv2
        .describe_rules()
        .listener_arn(listener_arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("ELBv2:DescribeRules", e))?;
        if let Some(r) = page
            .rules()
            .iter()
            .find(|r| r.priority() == Some(want.as_str()))
            && let Some(arn) = r.rule_arn()
        {
            return Ok((Place::Rule(arn.to_string()), r.actions().to_vec()));
        }
    }
    Err(ListenerError::NotFound(format!(
        "listener {listener_arn} has no rule with priority {priority}"
    )))
}

/// Replace the actions at `place`.
pub async fn modify(
    clients: &Clients,
    place: &Place,
    actions: Vec<Action>,
) -> Result<(), AwsError> {
    match place {
        Place::Listener(arn) => {
            clients
                .elbv2
                .modify_listener()
                .listener_arn(arn)
                .set_default_actions(Some(actions))
                .send()
                .await
                .map_err(|e| call_error("ELBv2:ModifyListener", e))?;
        }
        Place::Rule(arn) => {
            clients
                .elbv2
                .modify_rule()
                .rule_arn(arn)
                .set_actions(Some(actions))
                .send()
                .await
                .map_err(|e| call_error("ELBv2:ModifyRule", e))?;
        }
    }
    Ok(())
}

/// An action as the core's forward arithmetic sees it.
fn view(a: &Action) -> ForwardView<'_> {
    if a.r#type() != Some(&ActionTypeEnum::Forward) {
        return ForwardView::Other;
    }
    let targets = match a.forward_config().map(|f| f.target_groups()) {
        Some(groups) if !groups.is_empty() => groups
            .iter()
            .filter_map(|t| Some((t.target_group_arn()?, t.weight())))
            .collect(),
        _ => a
            .target_group_arn()
            .map(|arn| (arn, None))
            .into_iter()
            .collect(),
    };
    ForwardView::Forward(targets)
}

/// The forward action ecsync manages — the one that sends only to the ECS and
/// legacy target groups — and the ECS share of its traffic, in percent.
pub fn managed_forward(actions: &[Action], ecs: &str, legacy: &str) -> Result<(usize, u8), String> {
    let views: Vec<ForwardView> = actions.iter().map(view).collect();
    forward::managed_forward(&views, ecs, legacy)
}

/// `actions` with only the managed forward action changed to send `percent`
/// to ECS and the rest to the legacy group; its stickiness, order and every
/// other action are kept exactly.
pub fn with_weights(
    actions: &[Action],
    index: usize,
    ecs: &str,
    legacy: &str,
    percent: u8,
) -> Vec<Action> {
    let mut out = actions.to_vec();
    if let Some(a) = out.get_mut(index) {
        let stickiness = a
            .forward_config()
            .and_then(|f| f.target_group_stickiness_config())
            .cloned();
        let (e, l) = forward::weights(percent);
        a.forward_config = Some(
            ForwardActionConfig::builder()
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(ecs)
                        .weight(e)
                        .build(),
                )
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(legacy)
                        .weight(l)
                        .build(),
                )
                .set_target_group_stickiness_config(stickiness)
                .build(),
        );
        // With several groups the top-level TargetGroupArn must not be set.
        a.target_group_arn = None;
    }
    keep_oidc_secrets(&mut out);
    out
}

/// Describe calls never return an OIDC client secret, and re-sending the
/// action without one is refused unless it says to keep the existing secret:
/// say so, so that action stays exactly as it was.
pub(super) fn keep_oidc_secrets(actions: &mut [Action]) {
    for a in actions {
        if let Some(oidc) = a.authenticate_oidc_config.as_mut()
            && oidc.client_secret.is_none()
        {
            oidc.use_existing_client_secret = Some(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{
        FixedResponseActionConfig, TargetGroupStickinessConfig,
    };

    const ECS: &str = "arn:tg/ecs";
    const LEGACY: &str = "arn:tg/legacy";

    fn forward_single(tg: &str) -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(tg)
            .order(2)
            .build()
    }

    fn weighted(e: i32, l: i32) -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(ECS)
                            .weight(e)
                            .build(),
                    )
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(LEGACY)
                            .weight(l)
                            .build(),
                    )
                    .target_group_stickiness_config(
                        TargetGroupStickinessConfig::builder()
                            .enabled(true)
                            .duration_seconds(300)
                            .build(),
                    )
                    .build(),
            )
            .order(2)
            .build()
    }

    fn auth_like() -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("503")
                    .build(),
            )
            .order(1)
            .build()
    }

    #[test]
    fn reads_the_ecs_share_from_the_forward_action() {
        assert_eq!(
            managed_forward(&[forward_single(LEGACY)], ECS, LEGACY),
            Ok((0, 0))
        );
        assert_eq!(
            managed_forward(&[forward_single(ECS)], ECS, LEGACY),
            Ok((0, 100))
        );
        assert_eq!(
            managed_forward(&[auth_like(), weighted(10, 90)], ECS, LEGACY),
            Ok((1, 10))
        );
        assert_eq!(managed_forward(&[weighted(1, 1)], ECS, LEGACY), Ok((0, 50)));
        assert_eq!(
            managed_forward(&[weighted(0, 100)], ECS, LEGACY),
            Ok((0, 0))
        );
    }

    #[test]
    fn refuses_actions_it_does_not_manage() {
        assert!(managed_forward(&[forward_single("arn:tg/other")], ECS, LEGACY).is_err());
        assert!(managed_forward(&[auth_like()], ECS, LEGACY).is_err());
        let mut mixed = weighted(10, 90);
        if let Some(f) = mixed.forward_config.as_mut() {
            f.target_groups.get_or_insert_with(Vec::new).push(
                TargetGroupTuple::builder()
                    .target_group_arn("arn:tg/x")
                    .weight(5)
                    .build(),
            );
        }
        let err = managed_forward(&[mixed], ECS, LEGACY).unwrap_err();
        assert!(err.contains("arn:tg/x"), "{err}");
        assert!(managed_forward(&[weighted(0, 0)], ECS, LEGACY).is_err());
    }

    #[test]
    fn changes_only_the_managed_action_and_keeps_its_stickiness() {
        let before = vec![auth_like(), weighted(10, 90)];
        let after = with_weights(&before, 1, ECS, LEGACY, 50);
        assert_eq!(after[0], before[0], "other actions untouched");
        assert_eq!(after[1].order(), Some(2));
        let f = after[1].forward_config().unwrap();
        assert_eq!(
            f.target_group_stickiness_config(),
            before[1]
                .forward_config()
                .unwrap()
                .target_group_stickiness_config()
        );
        let weights: Vec<_> = f
            .target_groups()
            .iter()
            .map(|t| (t.target_group_arn().unwrap(), t.weight().unwrap()))
            .collect();
        assert_eq!(weights, vec![(ECS, 50), (LEGACY, 50)]);
        assert_eq!(managed_forward(&after, ECS, LEGACY), Ok((1, 50)));

        let oidc = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .authenticate_oidc_config(
                aws_sdk_elasticloadbalancingv2::types::AuthenticateOidcActionConfig::builder()
                    .issuer("https://idp")
                    .client_id("web")
                    .build(),
            )
            .order(1)
            .build();
        let kept = with_weights(&[oidc, forward_single(LEGACY)], 1, ECS, LEGACY, 10);
        let cfg = kept[0].authenticate_oidc_config().unwrap();
        assert_eq!(cfg.use_existing_client_secret(), Some(true));
        assert_eq!(
            (cfg.issuer(), cfg.client_id()),
            (Some("https://idp"), Some("web"))
        );

        let single = with_weights(&[forward_single(LEGACY)], 0, ECS, LEGACY, 10);
        assert_eq!(single[0].target_group_arn(), None);
        assert_eq!(managed_forward(&single, ECS, LEGACY), Ok((0, 10)));
    }
}
