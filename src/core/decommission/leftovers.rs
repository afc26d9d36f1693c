//! What a decommissioned fleet leaves behind that `decommission.cleanup` does
//! not delete (issue 13): security groups only the fleet used, its Elastic
//! IPs, its EBS volumes that outlive it, and the AMIs it was launched from.
//! They are *reported*, never deleted: whether an address or a volume still
//! matters is the operator's call.
//!
//! Once an instance is gone AWS no longer says which volume or address was
//! its, so the record is taken while the fleet still exists: in the pass
//! where a fleet's decommission clock starts, each such resource is tagged
//! [`LEFTOVER_OF`]`=<cluster>/<service>` (before the clock tag, so a crash in
//! between records again next pass). The report then reads the tags back
//! and keeps what nothing uses any more. Both halves are decided here from
//! described data; the shell only describes and tags.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::DecommissionAction;
use crate::core::model::ServiceKey;
use crate::core::tags::{self, LEFTOVER_OF, parse_service};

/// The kinds of leftover, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LeftoverKind {
    SecurityGroup,
    ElasticIp,
    Volume,
    Image,
}

impl LeftoverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecurityGroup => "securityGroup",
            Self::ElasticIp => "elasticIp",
            Self::Volume => "volume",
            Self::Image => "image",
        }
    }
}

/// An EBS volume attached to a fleet instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedVolume {
    pub volume_id: String,
    pub delete_on_termination: bool,
}

/// What one fleet instance uses, as DescribeInstances tells it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceUse {
    pub instance_id: String,
    pub image_id: Option<String>,
    pub volumes: Vec<AttachedVolume>,
    /// `(group id, group name)` of every network interface.
    pub security_groups: Vec<(String, String)>,
}

/// A resource that can carry the record tag, with the tags it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub id: String,
    pub tags: BTreeMap<String, String>,
}

/// A network interface that uses some security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceUse {
    pub groups: BTreeSet<String>,
    /// The instance it is attached to; `None`: not an instance's (a load
    /// balancer's, a Lambda's, a task's, or detached): a use all the same.
    pub instance_id: Option<String>,
}

/// Everything the record decision needs about one fleet starting its clock.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordInput {
    pub service: ServiceKey,
    pub action: DecommissionAction,
    pub instances: Vec<InstanceUse>,
    /// Elastic IPs associated with the instances.
    pub addresses: Vec<Tagged>,
    /// The volumes, security groups and images the instances name, as
    /// described (images: only those owned by this account).
    pub volumes: Vec<Tagged>,
    pub security_groups: Vec<Tagged>,
    pub owned_images: Vec<Tagged>,
    /// Every network interface using one of the instances' security groups.
    pub interfaces: Vec<InterfaceUse>,
}

/// One resource the record decision looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordItem {
    pub kind: LeftoverKind,
    pub id: String,
    /// `None`: to be tagged; otherwise why it is not.
    pub skipped: Option<String>,
}

/// Which of the fleet's resources get the record tag now.
pub fn plan_record(input: &RecordInput) -> Vec<RecordItem> {
    let fleet: BTreeSet<&str> = input
        .instances
        .iter()
        .map(|i| i.instance_id.as_str())
        .collect();
    let value = input.service.to_string();
    let mut out = Vec::new();
    let mut consider = |kind: LeftoverKind, r: &Tagged, outside_use: Option<String>| {
        let skipped = match r.tags.get(LEFTOVER_OF) {
            Some(v) if *v == value => return,
            Some(v) => Some(format!("already recorded as a leftover of {v}")),
            None if tags::is_protected(&r.tags) => Some("tagged ecsync.io/protect=true".into()),
            None => outside_use,
        };
        out.push(RecordItem {
            kind,
            id: r.id.clone(),
            skipped,
        });
    };

    // Stopped instances keep every volume; terminated ones only those that
    // are not deleted with them.
    let outliving: BTreeSet<&str> = input
        .instances
        .iter()
        .flat_map(|i| &i.volumes)
        .filter(|v| !v.delete_on_termination || input.action == DecommissionAction::Stop)
        .map(|v| v.volume_id.as_str())
        .collect();
    for v in input
        .volumes
        .iter()
        .filter(|v| outliving.contains(v.id.as_str()))
    {
        consider(LeftoverKind::Volume, v, None);
    }
    for a in &input.addresses {
        consider(LeftoverKind::ElasticIp, a, None);
    }
    // A VPC's default group can never be deleted: it is no leftover.
    let groups: BTreeSet<&str> = input
        .instances
        .iter()
        .flat_map(|i| &i.security_groups)
        .filter(|(_, name)| name != "default")
        .map(|(id, _)| id.as_str())
        .collect();
    for g in input
        .security_groups
        .iter()
        .filter(|g| groups.contains(g.id.as_str()))
    {
        let outside = input
            .interfaces
            .iter()
            .filter(|i| i.groups.contains(&g.id))
            .filter(|i| {
                i.instance_id
                    .as_deref()
                    .is_none_or(|id| !fleet.contains(id))
            })
            .count();
        let why = (outside > 0)
            .then(|| format!("also used by {outside} network interface(s) outside the fleet"));
        consider(LeftoverKind::SecurityGroup, g, why);
    }
    let images: BTreeSet<&str> = input
        .instances
        .iter()
        .filter_map(|i| i.image_id.as_deref())
        .collect();
    for img in input
        .owned_images
        .iter()
        .filter(|i| images.contains(i.id.as_str()))
    {
        consider(LeftoverKind::Image, img, None);
    }
    out.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    out
}

/// A tagged Elastic IP as DescribeAddresses shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressState {
    pub allocation_id: String,
    pub public_ip: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// The association, if any, and the instance it is with.
    pub associated: bool,
    pub instance_id: Option<String>,
}

/// A tagged resource by id, name and whether it is still in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceState {
    pub id: String,
    pub name: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// What the report reads back: resources carrying the record tag.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeftoverInput {
    /// Only the leftovers of these services are reported (the migrations
    /// this controller's manifests decommission).
    pub services: BTreeSet<ServiceKey>,
    /// Tagged volumes in state `available`.
    pub available_volumes: Vec<ResourceState>,
    pub addresses: Vec<AddressState>,
    pub security_groups: Vec<ResourceState>,
    /// Network interfaces using any of the tagged security groups.
    pub interfaces: Vec<InterfaceUse>,
    /// Tagged images owned by this account.
    pub images: Vec<ResourceState>,
    /// Instances shutting down or terminated, among those the interfaces and
    /// addresses name: what they hold is about to be released.
    pub gone_instances: BTreeSet<String>,
}

/// One leftover in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leftover {
    pub service: ServiceKey,
    pub kind: LeftoverKind,
    pub id: String,
    /// The group name, the image name, the public IP.
    pub name: Option<String>,
}

/// The recorded resources that nothing uses any more, by service, kind and id.
pub fn leftovers(input: &LeftoverInput) -> Vec<Leftover> {
    let of = |t: &BTreeMap<String, String>| {
        t.get(LEFTOVER_OF)
            .and_then(|v| parse_service(v))
            .filter(|s| input.services.contains(s))
    };
    let live = |instance: &Option<String>| {
        instance
            .as_ref()
            .is_none_or(|id| !input.gone_instances.contains(id))
    };
    let mut out = Vec::new();
    let mut push = |kind, r: &ResourceState| {
        if let Some(service) = of(&r.tags) {
            out.push(Leftover {
                service,
                kind,
                id: r.id.clone(),
                name: r.name.clone(),
            });
        }
    };
    for g in &input.security_groups {
        let used = input
            .interfaces
            .iter()
            .any(|i| i.groups.contains(&g.id) && live(&i.instance_id));
        if !used {
            push(LeftoverKind::SecurityGroup, g);
        }
    }
    for v in &input.available_volumes {
        push(LeftoverKind::Volume, v);
    }
    for img in &input.images {
        push(LeftoverKind::Image, img);
    }
    for a in &input.addresses {
        // Associated with something other than a gone instance: in use.
        if a.associated && (a.instance_id.is_none() || live(&a.instance_id)) {
            continue;
        }
        if let Some(service) = of(&a.tags) {
            out.push(Leftover {
                service,
                kind: LeftoverKind::ElasticIp,
                id: a.allocation_id.clone(),
                name: a.public_ip.clone(),
            });
        }
    }
    out.sort_by(|a, b| (&a.service, a.kind, &a.id).cmp(&(&b.service, b.kind, &b.id)));
    out.dedup();
    out
}

#[cfg(test)]
#[path = "leftovers/tests.rs"]
mod tests;
