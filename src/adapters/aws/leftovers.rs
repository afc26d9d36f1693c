//! EC2 reads behind the leftovers report (`core::decommission::leftovers`):
//! what a fleet's instances use while they exist (to record it), and the
//! recorded resources as they are now (to report them). Tagging goes through
//! [`super::ec2::tag_resources`]; nothing here changes anything.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter, Tag};

use super::{AwsError, Clients, call_error};
use crate::core::decommission::{
    AddressState, AttachedVolume, InstanceState, InstanceUse, InterfaceUse, ResourceState, Tagged,
};
use crate::core::tags::LEFTOVER_OF;

/// EC2 takes at most 200 values in one filter.
const FILTER_VALUES: usize = 200;

fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

fn recorded() -> Filter {
    Filter::builder()
        .name("tag-key")
        .values(LEFTOVER_OF)
        .build()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn chunks(ids: &BTreeSet<String>) -> Vec<Vec<String>> {
    let all: Vec<String> = ids.iter().cloned().collect();
    all.chunks(FILTER_VALUES).map(<[String]>::to_vec).collect()
}

/// What each of `ids` uses: image, volumes, security groups.
pub async fn instance_uses(
    clients: &Clients,
    ids: &BTreeSet<String>,
) -> Result<Vec<InstanceUse>, AwsError> {
    let mut out = Vec::new();
    for chunk in chunks(ids) {
        let mut pages = clients
            .ec2
            .describe_instances()
            .filters(filter("instance-id", &chunk))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("EC2:DescribeInstances", e))?;
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = i.instance_id() else { continue };
                let mut groups: Vec<(String, String)> = i
                    .network_interfaces()
                    .iter()
                    .flat_map(|n| n.groups())
                    .chain(i.security_groups())
                    .filter_map(|g| {
                        Some((
                            g.group_id()?.to_string(),
                            g.group_name().unwrap_or("").to_string(),
                        ))
                    })
                    .collect();
                groups.sort();
                groups.dedup();
                out.push(InstanceUse {
                    instance_id: id.to_string(),
                    image_id: i.image_id().map(str::to_string),
                    volumes: i
                        .block_device_mappings()
                        .iter()
                        .filter_map(|b| {
                            let ebs = b.ebs()?;
                            Some(AttachedVolume {
                                volume_id: ebs.volume_id()?.to_string(),
                                // Unknown: assume it outlives the instance.
                                delete_on_termination: ebs.delete_on_termination() == Some(true),
                            })
                        })
                        .collect(),
                    security_groups: groups,
                });
            }
        }
    }
    Ok(out)
}

/// The Elastic IPs associated with any of `instance_ids`.
pub async fn addresses_of(
    clients: &Clients,
    instance_ids: &BTreeSet<String>,
) -> Result<Vec<Tagged>, AwsError> {
    let mut out = Vec::new();
    for chunk in chunks(instance_ids) {
        let page = clients
            .ec2
            .describe_addresses()
            .filters(filter("instance-id", &chunk))
            .send()
            .await
            .map_err(|e| call_error("EC2:DescribeAddresses", e))?;
        out.extend(page.addresses().iter().filter_map(|a| {
            Some(Tagged {
                id: a.allocation_id()?.to_string(),
                tags: tag_map(a.tags()),
            })
        }));
    }
    Ok(out)
}

/// `ids` as DescribeVolumes has them, with their tags.
pub async fn volumes(clients: &Clients, ids: &BTreeSet<String>) -> Result<Vec<Tagged>, AwsError> {
    by_ids(ids, "volume-id", |f| describe_volumes(clients, vec![f])).await
}

/// Describes `ids` in filters of at most [`FILTER_VALUES`] values each.
async fn by_ids<F, Fut>(
    ids: &BTreeSet<String>,
    name: &str,
    describe: F,
) -> Result<Vec<Tagged>, AwsError>
where
    F: Fn(Filter) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<ResourceState>, AwsError>>,
{
    let mut out = Vec::new();
    for chunk in chunks(ids) {
        out.extend(
            describe(filter(name, &chunk))
                .await?
                .into_iter()
                .map(|r| Tagged {
                    id: r.id,
                    tags: r.tags,
                }),
        );
    }
    Ok(out)
}

async fn describe_volumes(
    clients: &Clients,
    filters: Vec<Filter>,
) -> Result<Vec<ResourceState>, AwsError> {
    let mut pages = clients
        .ec2
        .describe_volumes()
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("EC2:DescribeVolumes", e))?;
        out.extend(page.volumes().iter().filter_map(|v| {
            Some(ResourceState {
                id: v.volume_id()?.to_string(),
                name: None,
                tags: tag_map(v.tags()),
            })
        }));
    }
    Ok(out)
}

/// `ids` as DescribeSecurityGroups has them, with their tags.
pub async fn security_groups(
    clients: &Clients,
    ids: &BTreeSet<String>,
) -> Result<Vec<Tagged>, AwsError> {
    by_ids(ids, "group-id", |f| describe_security_groups(clients, f)).await
}

async fn describe_security_groups(
    clients: &Clients,
    by: Filter,
) -> Result<Vec<ResourceState>, AwsError> {
    let mut pages = clients
        .ec2
        .describe_security_groups()
        .filters(by)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("EC2:DescribeSecurityGroups", e))?;
        out.extend(page.security_groups().iter().filter_map(|g| {
            Some(ResourceState {
                id: g.group_id()?.to_string(),
                name: g.group_name().map(str::to_string),
                tags: tag_map(g.tags()),
            })
        }));
    }
    Ok(out)
}

/// Those of `ids` that this account owns, with their tags (someone else's
/// AMI is no leftover of ours, and could not be tagged anyway).
pub async fn owned_images(
    clients: &Clients,
    ids: &BTreeSet<String>,
) -> Result<Vec<Tagged>, AwsError> {
    by_ids(ids, "image-id", |f| describe_owned_images(clients, f)).await
}

async fn describe_owned_images(
    clients: &Clients,
    by: Filter,
) -> Result<Vec<ResourceState>, AwsError> {
    // A filter rather than ImageIds: an unknown ID is then no error.
    let mut pages = clients
        .ec2
        .describe_images()
        .owners("self")
        .filters(by)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("EC2:DescribeImages", e))?;
        out.extend(page.images().iter().filter_map(|i| {
            Some(ResourceState {
                id: i.image_id()?.to_string(),
                name: i.name().map(str::to_string),
                tags: tag_map(i.tags()),
            })
        }));
    }
    Ok(out)
}

/// Every network interface using any of `group_ids`.
pub async fn interfaces_using(
    clients: &Clients,
    group_ids: &BTreeSet<String>,
) -> Result<Vec<InterfaceUse>, AwsError> {
    let mut out = Vec::new();
    for chunk in chunks(group_ids) {
        let mut pages = clients
            .ec2
            .describe_network_interfaces()
            .filters(filter("group-id", &chunk))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("EC2:DescribeNetworkInterfaces", e))?;
            out.extend(page.network_interfaces().iter().map(|n| {
                InterfaceUse {
                    groups: n
                        .groups()
                        .iter()
                        .filter_map(|g| g.group_id().map(str::to_string))
                        .collect(),
                    instance_id: n
                        .attachment()
                        .and_then(|a| a.instance_id())
                        .map(str::to_string),
                }
            }));
        }
    }
    Ok(out)
}

/// Recorded volumes that nothing has attached (`available`).
pub async fn recorded_available_volumes(clients: &Clients) -> Result<Vec<ResourceState>, AwsError> {
    let available = Filter::builder().name("status").values("available").build();
    describe_volumes(clients, vec![recorded(), available]).await
}

pub async fn recorded_security_groups(clients: &Clients) -> Result<Vec<ResourceState>, AwsError> {
    describe_security_groups(clients, recorded()).await
}

pub async fn recorded_images(clients: &Clients) -> Result<Vec<ResourceState>, AwsError> {
    describe_owned_images(clients, recorded()).await
}

pub async fn recorded_addresses(clients: &Clients) -> Result<Vec<AddressState>, AwsError> {
    let page = clients
        .ec2
        .describe_addresses()
        .filters(recorded())
        .send()
        .await
        .map_err(|e| call_error("EC2:DescribeAddresses", e))?;
    Ok(page
        .addresses()
        .iter()
        .filter_map(|a| {
            Some(AddressState {
                allocation_id: a.allocation_id()?.to_string(),
                public_ip: a.public_ip().map(str::to_string),
                tags: tag_map(a.tags()),
                associated: a.association_id().is_some(),
                instance_id: a.instance_id().map(str::to_string),
            })
        })
        .collect())
}

/// Those of `ids` that are shutting down or terminated.
pub async fn gone_instances(
    clients: &Clients,
    ids: &BTreeSet<String>,
) -> Result<BTreeSet<String>, AwsError> {
    let gone: Vec<String> = [InstanceState::ShuttingDown, InstanceState::Terminated]
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    let mut out = BTreeSet::new();
    for chunk in chunks(ids) {
        let mut pages = clients
            .ec2
            .describe_instances()
            .filters(filter("instance-id", &chunk))
            .filters(filter("instance-state-name", &gone))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("EC2:DescribeInstances", e))?;
            out.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter_map(|i| i.instance_id().map(str::to_string)),
            );
        }
    }
    Ok(out)
}
