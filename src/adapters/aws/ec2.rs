//! EC2: instances by tag, their protection attributes, and the calls a
//! decommission makes (tag, untag, stop, terminate).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, InstanceAttributeName, InstanceStateName, Tag};

use super::{AwsError, Clients, call_error};
use crate::core::decommission::{InstanceState, Protection};

/// An instance as the decommission planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    pub state: InstanceState,
    pub tags: BTreeMap<String, String>,
}

/// What to select instances by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every tag `key=value` present.
    Tags(BTreeMap<String, String>),
    /// The tag key present, with any value.
    TagKey(String),
}

impl Selector {
    fn filters(&self) -> Vec<Filter> {
        match self {
            Selector::Tags(tags) => tags
                .iter()
                .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
                .collect(),
            Selector::TagKey(key) => vec![Filter::builder().name("tag-key").values(key).build()],
        }
    }
}

/// The instances that match `selector` and can still be touched (not
/// shutting down or terminated).
pub async fn instances(clients: &Clients, selector: &Selector) -> Result<Vec<Instance>, AwsError> {
    let live = Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            InstanceState::LIVE
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        ))
        .build();
    let mut pages = clients
        .ec2
        .describe_instances()
        .set_filters(Some(selector.filters()))
        .filters(live)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("EC2:DescribeInstances", e))?;
        for i in page.reservations().iter().flat_map(|r| r.instances()) {
            let (Some(id), Some(state)) = (
                i.instance_id(),
                i.state().and_then(|s| s.name()).and_then(instance_state),
            ) else {
                continue;
            };
            out.push(Instance {
                id: id.to_string(),
                state,
                tags: i
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                    .collect(),
            });
        }
    }
    Ok(out)
}

fn instance_state(s: &InstanceStateName) -> Option<InstanceState> {
    Some(match s {
        InstanceStateName::Pending => InstanceState::Pending,
        InstanceStateName::Running => InstanceState::Running,
        InstanceStateName::Stopping => InstanceState::Stopping,
        InstanceStateName::Stopped => InstanceState::Stopped,
        InstanceStateName::ShuttingDown => InstanceState::ShuttingDown,
        InstanceStateName::Terminated => InstanceState::Terminated,
        _ => return None,
    })
}

/// Termination and stop protection. `Ok(None)` when an answer lacks the
/// value: as good as no answer, so the caller fails closed.
pub async fn protection(clients: &Clients, id: &str) -> Result<Option<Protection>, AwsError> {
    let read = |attr: InstanceAttributeName| async move {
        clients
            .ec2
            .describe_instance_attribute()
            .instance_id(id)
            .attribute(attr)
            .send()
            .await
            .map_err(|e| call_error("EC2:DescribeInstanceAttribute", e))
    };
    let termination = read(InstanceAttributeName::DisableApiTermination)
        .await?
        .disable_api_termination()
        .and_then(|v| v.value());
    let Some(termination) = termination else {
        return Ok(None);
    };
    let stop = read(InstanceAttributeName::DisableApiStop)
        .await?
        .disable_api_stop()
        .and_then(|v| v.value());
    Ok(stop.map(|stop| Protection { termination, stop }))
}

pub async fn tag(
    clients: &Clients,
    id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    tag_resources(clients, &[id.to_string()], tags).await
}

/// One CreateTags for several resources of any EC2 kind (instances, volumes,
/// addresses, security groups, images).
pub async fn tag_resources(
    clients: &Clients,
    ids: &[String],
    tags: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    clients
        .ec2
        .create_tags()
        .set_resources(Some(ids.to_vec()))
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| call_error("EC2:CreateTags", e))?;
    Ok(())
}

pub async fn untag(clients: &Clients, id: &str, keys: &[String]) -> Result<(), AwsError> {
    let tags: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
    clients
        .ec2
        .delete_tags()
        .resources(id)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| call_error("EC2:DeleteTags", e))?;
    Ok(())
}

pub async fn stop(clients: &Clients, id: &str) -> Result<(), AwsError> {
    clients
        .ec2
        .stop_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| call_error("EC2:StopInstances", e))?;
    Ok(())
}

pub async fn terminate(clients: &Clients, id: &str) -> Result<(), AwsError> {
    clients
        .ec2
        .terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| call_error("EC2:TerminateInstances", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::describe_instance_attribute::{
        DescribeInstanceAttributeError, DescribeInstanceAttributeOutput,
    };
    use aws_sdk_ec2::types::AttributeBooleanValue;
    use aws_smithy_mocks::mock;

    use super::*;

    use crate::adapters::aws::tests::mocked as mocked_ec2;

    fn answer(attr: InstanceAttributeName, value: Option<bool>) -> aws_smithy_mocks::Rule {
        let is_attr = attr.clone();
        mock!(aws_sdk_ec2::Client::describe_instance_attribute)
            .match_requests(move |r| r.attribute() == Some(&is_attr))
            .then_output(move || {
                let v = value.map(|v| AttributeBooleanValue::builder().value(v).build());
                match attr {
                    InstanceAttributeName::DisableApiTermination => {
                        DescribeInstanceAttributeOutput::builder()
                            .set_disable_api_termination(v)
                            .build()
                    }
                    _ => DescribeInstanceAttributeOutput::builder()
                        .set_disable_api_stop(v)
                        .build(),
                }
            })
    }

    #[tokio::test]
    async fn protection_is_read_from_both_attributes() {
        let term = answer(InstanceAttributeName::DisableApiTermination, Some(false));
        let stop = answer(InstanceAttributeName::DisableApiStop, Some(true));
        let clients = mocked_ec2(&[&term, &stop]);
        assert_eq!(
            protection(&clients, "i-1").await.ok().flatten(),
            Some(Protection {
                termination: false,
                stop: true
            })
        );
    }

    #[tokio::test]
    async fn protection_fails_closed() {
        // Denied: unknown, so the planner skips the instance.
        let denied = mock!(aws_sdk_ec2::Client::describe_instance_attribute)
            .then_error(|| DescribeInstanceAttributeError::unhandled("UnauthorizedOperation"));
        assert_eq!(
            protection(&mocked_ec2(&[&denied]), "i-1")
                .await
                .ok()
                .flatten(),
            None
        );
        // An answer without the value is no answer either.
        let term = answer(InstanceAttributeName::DisableApiTermination, None);
        let stop = answer(InstanceAttributeName::DisableApiStop, Some(false));
        assert_eq!(
            protection(&mocked_ec2(&[&term, &stop]), "i-1")
                .await
                .ok()
                .flatten(),
            None
        );
    }
}
