//! Leftovers of a decommissioned fleet (DESIGN §3 `decommission`, issue 13):
//! recorded while the fleet exists, reported once nothing uses them, never
//! deleted. The decisions are [`crate::core::decommission::plan_record`] and
//! [`crate::core::decommission::leftovers`].
//!
//! Calls, only when a migration with a `decommission` block is complete:
//! * in the pass where a fleet's clock starts (its instances, or its Auto
//!   Scaling group's): DescribeInstances, DescribeAddresses, DescribeVolumes,
//!   DescribeSecurityGroups, DescribeNetworkInterfaces and DescribeImages for
//!   what its instances use, then one CreateTags (none when read-only);
//! * every pass, the report: DescribeVolumes, DescribeAddresses,
//!   DescribeSecurityGroups and DescribeImages by the record tag, plus
//!   DescribeNetworkInterfaces for the recorded groups and DescribeInstances
//!   for instances still holding any of them, when there are any.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tracing::{info, warn};

use crate::adapters::aws::{AwsError, Clients, ec2, leftovers as aws};
use crate::core::decommission::{
    DecommissionAction, FleetInput, GroupPlan, InstancePlan, Leftover, LeftoverInput, RecordInput,
    RecordItem, Why, leftovers, plan_record,
};
use crate::core::model::ServiceKey;
use crate::core::tags::{LEFTOVER_OF, parse_service};

/// A fleet whose decommission clock starts this pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Starting {
    pub service: ServiceKey,
    pub action: DecommissionAction,
    pub instance_ids: BTreeSet<String>,
    /// Decide, never tag: read-only run or report-only service.
    pub report_only: bool,
}

/// What the record decided for one fleet, and whether the tags went on.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordOutcome {
    pub service: ServiceKey,
    pub items: Vec<RecordItem>,
    pub report_only: bool,
    pub tagged: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeftoversReport {
    /// Recorded resources nothing uses any more.
    pub found: Vec<Leftover>,
    /// Fleets whose clock started this pass (or would have).
    pub recorded: Vec<RecordOutcome>,
    /// The report could not be read.
    pub error: Option<String>,
}

impl LeftoversReport {
    pub fn has_errors(&self) -> bool {
        self.error.is_some() || self.recorded.iter().any(|r| r.error.is_some())
    }
}

/// The migrations whose fleets are decommissioned: the only ones with leftovers.
pub fn decommissioning(fleet: &FleetInput) -> BTreeSet<ServiceKey> {
    fleet
        .migrations
        .iter()
        .filter(|m| m.decommission.is_some() && m.completed_since.is_some())
        .map(|m| m.service.clone())
        .collect()
}

/// The fleets whose clocks these plans start, by service: the instances
/// selected by tag and those of the Auto Scaling groups.
pub fn starting(
    fleet: &FleetInput,
    instances: &[InstancePlan],
    groups: &[GroupPlan],
    read_only: bool,
) -> Vec<Starting> {
    let mut by: BTreeMap<ServiceKey, Starting> = BTreeMap::new();
    let mut add = |why: &Option<Why>,
                   action: Option<DecommissionAction>,
                   report_only: bool,
                   ids: &mut dyn Iterator<Item = String>| {
        // A pruned service's instances are no migration's fleet.
        let Some(Why::Migration { service, .. }) = why else {
            return;
        };
        let Some(service) = parse_service(service) else {
            return;
        };
        let s = by.entry(service.clone()).or_insert_with(|| Starting {
            service,
            action: action.unwrap_or(DecommissionAction::Stop),
            instance_ids: BTreeSet::new(),
            report_only: read_only,
        });
        s.report_only |= report_only;
        s.instance_ids.extend(ids);
    };
    for p in instances.iter().filter(|p| p.starts_clock()) {
        add(
            &p.why,
            p.action,
            p.report_only,
            &mut std::iter::once(p.instance_id.clone()),
        );
    }
    for p in groups.iter().filter(|p| p.starts_clock()) {
        let ids = fleet
            .groups
            .iter()
            .filter(|g| g.name == p.group)
            .flat_map(|g| g.instances.iter().map(|i| i.id.clone()));
        add(
            &p.why,
            p.action,
            p.report_only,
            &mut ids.collect::<Vec<_>>().into_iter(),
        );
    }
    by.into_values().collect()
}

/// Record what one starting fleet will leave behind: describe, decide, tag.
pub async fn record(clients: &Clients, s: &Starting) -> RecordOutcome {
    let mut out = RecordOutcome {
        service: s.service.clone(),
        items: Vec::new(),
        report_only: s.report_only,
        tagged: false,
        error: None,
    };
    let input = match describe_fleet(clients, s).await {
        Ok(i) => i,
        Err(e) => {
            warn!(service = %s.service, error = %e, "leftovers: describing the fleet failed; its clock waits");
            out.error = Some(format!("recording leftovers: {e}"));
            return out;
        }
    };
    out.items = plan_record(&input);
    let ids: Vec<String> = out
        .items
        .iter()
        .filter(|i| i.skipped.is_none())
        .map(|i| i.id.clone())
        .collect();
    if s.report_only || ids.is_empty() {
        return out;
    }
    let value = BTreeMap::from([(LEFTOVER_OF.to_string(), s.service.to_string())]);
    match ec2::tag_resources(clients, &ids, &value).await {
        Ok(()) => {
            out.tagged = true;
            info!(service = %s.service, resources = ?ids, tag = %LEFTOVER_OF, why = "decommission starts: recorded what the fleet may leave behind, for the leftovers report (nothing is deleted)", "tagged leftovers of the fleet");
        }
        Err(e) => {
            warn!(service = %s.service, error = %e, "leftovers: tagging failed; its clock waits");
            out.error = Some(format!("recording leftovers: {e}"));
        }
    }
    out
}

async fn describe_fleet(clients: &Clients, s: &Starting) -> Result<RecordInput, AwsError> {
    let instances = aws::instance_uses(clients, &s.instance_ids).await?;
    let volume_ids: BTreeSet<String> = instances
        .iter()
        .flat_map(|i| i.volumes.iter().map(|v| v.volume_id.clone()))
        .collect();
    let group_ids: BTreeSet<String> = instances
        .iter()
        .flat_map(|i| i.security_groups.iter().map(|(id, _)| id.clone()))
        .collect();
    let image_ids: BTreeSet<String> = instances
        .iter()
        .filter_map(|i| i.image_id.clone())
        .collect();
    Ok(RecordInput {
        service: s.service.clone(),
        action: s.action,
        addresses: aws::addresses_of(clients, &s.instance_ids).await?,
        volumes: aws::volumes(clients, &volume_ids).await?,
        security_groups: aws::security_groups(clients, &group_ids).await?,
        owned_images: aws::owned_images(clients, &image_ids).await?,
        interfaces: aws::interfaces_using(clients, &group_ids).await?,
        instances,
    })
}

/// The leftovers of `services`' fleets as they are now.
pub async fn report(
    clients: &Clients,
    services: BTreeSet<ServiceKey>,
) -> Result<Vec<Leftover>, AwsError> {
    let security_groups = aws::recorded_security_groups(clients).await?;
    let addresses = aws::recorded_addresses(clients).await?;
    let group_ids: BTreeSet<String> = security_groups.iter().map(|g| g.id.clone()).collect();
    let interfaces = if group_ids.is_empty() {
        Vec::new()
    } else {
        aws::interfaces_using(clients, &group_ids).await?
    };
    // AWS releases what a terminated instance held, but not at once (and
    // moto never): an interface or address of a gone instance is no use.
    let holders: BTreeSet<String> = interfaces
        .iter()
        .filter_map(|i| i.instance_id.clone())
        .chain(addresses.iter().filter_map(|a| a.instance_id.clone()))
        .collect();
    let gone_instances = if holders.is_empty() {
        BTreeSet::new()
    } else {
        aws::gone_instances(clients, &holders).await?
    };
    let input = LeftoverInput {
        services,
        available_volumes: aws::recorded_available_volumes(clients).await?,
        images: aws::recorded_images(clients).await?,
        addresses,
        security_groups,
        interfaces,
        gone_instances,
    };
    Ok(leftovers(&input))
}

/// Services whose record failed this pass: their clocks do not start yet.
pub fn failed(records: &[RecordOutcome]) -> BTreeSet<String> {
    records
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.service.to_string())
        .collect()
}

/// A leftover as a person reads it, e.g. `volume vol-1 of prod/web`.
pub fn describe(l: &Leftover) -> String {
    let name = l
        .name
        .as_deref()
        .map_or(String::new(), |n| format!(" ({n})"));
    format!("{} {}{name} of {}", l.kind.as_str(), l.id, l.service)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::core::decommission::{GroupInput, GroupInstance, GroupStep, OrphanState, Step};
    use crate::core::tags::{DECOMMISSION, DECOMMISSION_FOR};

    fn key(name: &str) -> ServiceKey {
        ServiceKey {
            cluster: "prod".into(),
            name: name.into(),
        }
    }

    fn migration_of(service: &str) -> Option<Why> {
        Some(Why::Migration {
            service: service.into(),
            completed: SystemTime::UNIX_EPOCH,
        })
    }

    fn clock_start(service: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                DECOMMISSION.to_string(),
                "pending@2025-01-01T00:00:00Z".into(),
            ),
            (DECOMMISSION_FOR.to_string(), service.into()),
        ])
    }

    fn instance(id: &str, why: Option<Why>, starts: bool) -> InstancePlan {
        let service = why.as_ref().map(|w| w.service().to_string());
        InstancePlan {
            instance_id: id.into(),
            state: OrphanState::Pending,
            why,
            action: Some(DecommissionAction::Terminate),
            acts_at: None,
            skipped: None,
            leaves: Vec::new(),
            drained_from: Vec::new(),
            steps: if starts {
                vec![Step::Tag {
                    tags: clock_start(&service.unwrap_or_default()),
                }]
            } else {
                Vec::new()
            },
            report_only: false,
            message: String::new(),
        }
    }

    fn fleet_with_group() -> FleetInput {
        FleetInput {
            controller_id: "ecsync".into(),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
            max_per_pass: 1,
            prune: true,
            declared: BTreeSet::new(),
            held: BTreeSet::new(),
            set_incomplete: false,
            migrations: Vec::new(),
            target_groups: BTreeMap::new(),
            instances: Vec::new(),
            groups: vec![GroupInput {
                name: "api-asg".into(),
                tags: BTreeMap::new(),
                min_size: 2,
                desired_capacity: 2,
                suspended: BTreeSet::new(),
                target_group_arns: BTreeSet::new(),
                load_balancer_names: Vec::new(),
                instances: ["i-a1", "i-a2"]
                    .iter()
                    .map(|id| GroupInstance {
                        id: id.to_string(),
                        protected_from_scale_in: false,
                    })
                    .collect(),
                terminating_hooks: Some(Vec::new()),
                registrations: Vec::new(),
                deleting: false,
                template_first: false,
            }],
        }
    }

    #[test]
    fn only_fleets_whose_clock_starts_now_are_recorded_by_service() {
        let fleet = fleet_with_group();
        let instances = vec![
            instance("i-w1", migration_of("prod/web"), true),
            instance("i-w2", migration_of("prod/web"), true),
            // Its clock started on an earlier pass: recorded then.
            instance("i-w3", migration_of("prod/web"), false),
            // A pruned service's instance is no migration's fleet.
            instance(
                "i-p1",
                Some(Why::Prune {
                    service: "prod/gone".into(),
                }),
                true,
            ),
        ];
        let groups = vec![GroupPlan {
            group: "api-asg".into(),
            state: OrphanState::Pending,
            why: migration_of("prod/api"),
            action: Some(DecommissionAction::Stop),
            acts_at: None,
            skipped: None,
            instances: 2,
            steps: vec![GroupStep::Tag {
                tags: clock_start("prod/api"),
            }],
            report_only: true,
            message: String::new(),
        }];
        let got = starting(&fleet, &instances, &groups, false);
        assert_eq!(
            got,
            vec![
                Starting {
                    service: key("api"),
                    action: DecommissionAction::Stop,
                    instance_ids: BTreeSet::from(["i-a1".into(), "i-a2".into()]),
                    report_only: true,
                },
                Starting {
                    service: key("web"),
                    action: DecommissionAction::Terminate,
                    instance_ids: BTreeSet::from(["i-w1".into(), "i-w2".into()]),
                    report_only: false,
                },
            ]
        );
        // Read-only: every fleet is decided and shown, none tagged.
        assert!(
            starting(&fleet, &instances, &groups, true)
                .iter()
                .all(|s| s.report_only)
        );
        // Nothing starts: no call at all.
        let settled: Vec<InstancePlan> = instances
            .into_iter()
            .map(|mut p| {
                p.steps.clear();
                p
            })
            .collect();
        assert!(starting(&fleet, &settled, &[], false).is_empty());
    }

    /// What moto cannot show: AWS refusing the tag (a policy without the
    /// leftovers statement). The record fails, so the fleet's clock waits.
    #[tokio::test]
    async fn a_refused_tag_is_the_fleets_error_and_nothing_counts_as_recorded() {
        use aws_sdk_ec2::operation::create_tags::CreateTagsError;
        use aws_sdk_ec2::operation::describe_addresses::DescribeAddressesOutput;
        use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
        use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesOutput;
        use aws_sdk_ec2::types::{
            EbsInstanceBlockDevice, Instance, InstanceBlockDeviceMapping, Reservation, Volume,
        };
        use aws_smithy_mocks::mock;

        let instances = mock!(aws_sdk_ec2::Client::describe_instances).then_output(|| {
            DescribeInstancesOutput::builder()
                .reservations(
                    Reservation::builder()
                        .instances(
                            Instance::builder()
                                .instance_id("i-1")
                                .block_device_mappings(
                                    InstanceBlockDeviceMapping::builder()
                                        .device_name("/dev/sdf")
                                        // No DeleteOnTermination in the answer: it may outlive.
                                        .ebs(
                                            EbsInstanceBlockDevice::builder()
                                                .volume_id("vol-1")
                                                .build(),
                                        )
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
        let addresses = mock!(aws_sdk_ec2::Client::describe_addresses)
            .then_output(|| DescribeAddressesOutput::builder().build());
        let volumes = mock!(aws_sdk_ec2::Client::describe_volumes).then_output(|| {
            DescribeVolumesOutput::builder()
                .volumes(Volume::builder().volume_id("vol-1").build())
                .build()
        });
        let refused = mock!(aws_sdk_ec2::Client::create_tags)
            .then_error(|| CreateTagsError::unhandled("UnauthorizedOperation"));
        let clients =
            crate::adapters::aws::tests::mocked(&[&instances, &addresses, &volumes, &refused]);
        let s = Starting {
            service: key("web"),
            action: DecommissionAction::Terminate,
            instance_ids: BTreeSet::from(["i-1".to_string()]),
            report_only: false,
        };
        let out = record(&clients, &s).await;
        assert_eq!(
            out.items
                .iter()
                .map(|i| (i.kind, i.id.as_str(), i.skipped.is_none()))
                .collect::<Vec<_>>(),
            vec![(
                crate::core::decommission::LeftoverKind::Volume,
                "vol-1",
                true
            )]
        );
        assert!(!out.tagged);
        assert!(
            out.error
                .as_deref()
                .is_some_and(|e| e.starts_with("recording leftovers:")),
            "{out:?}"
        );
        assert_eq!(failed(&[out]), BTreeSet::from(["prod/web".to_string()]));
        assert_eq!(refused.num_calls(), 1);
    }
}
