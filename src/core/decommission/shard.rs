//! Sharding and decommission: what this shard must leave to another.
//!
//! A fleet is decommissioned by the shard that owns the cluster of the service
//! whose migration selects it. A replica sees only its own services, so it
//! cannot know whether a migration of another shard's service is complete: an
//! instance or Auto Scaling group that such a migration also selects is held,
//! even when a migration of this shard selects it and is complete, and even
//! when it carries ecsync's clock (which, without this rule, this shard would
//! read as "no migration selects it any more" and release it while the owner
//! is draining it). Likewise an instance tagged for a service in another
//! shard's cluster is that shard's to prune.
//!
//! Held objects are taken out of the fleet before anything is planned, so the
//! existing rules never see them; a migration of this shard that shares one
//! cannot clean up after its fleet either (see [`held_fleet`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{ASG_TAG, FleetInput, MigrationInput};
use crate::core::model::ServiceKey;
use crate::core::tags::{self, parse_service};

/// A migration declared for a service in a cluster another shard owns, as far
/// as selecting a fleet goes.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignMigration {
    pub service: ServiceKey,
    /// The shard that owns the service's cluster.
    pub shard: u32,
    /// `from.instances.tags`; an empty selector matches nothing.
    pub selector: BTreeMap<String, String>,
    /// `from.autoScalingGroup`.
    pub auto_scaling_group: Option<String>,
}

impl ForeignMigration {
    fn selects(&self, instance_tags: &BTreeMap<String, String>) -> bool {
        !self.selector.is_empty()
            && self
                .selector
                .iter()
                .all(|(k, v)| instance_tags.get(k) == Some(v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HeldKind {
    Instance,
    AutoScalingGroup,
}

impl HeldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::AutoScalingGroup => "Auto Scaling group",
        }
    }
}

/// An instance or group this shard leaves alone because another shard decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldByShard {
    pub kind: HeldKind,
    /// Instance ID or group name.
    pub id: String,
    /// The shard that decides about it.
    pub shard: u32,
    /// The other shard's service that selects it (or that it is tagged for).
    pub service: String,
    /// Services of this shard whose migration also selects it: their fleet
    /// is not gone while it is held.
    pub selected_here: BTreeSet<ServiceKey>,
    pub reason: String,
}

/// Takes out of `fleet` every instance and group another shard decides about,
/// and says why. `other_owner` maps a cluster to the shard that owns it, when
/// that is not this one.
pub fn hold_for_other_shards(
    fleet: &mut FleetInput,
    foreign: &[ForeignMigration],
    other_owner: &dyn Fn(&str) -> Option<u32>,
) -> Vec<HeldByShard> {
    let mut held = Vec::new();
    let own = fleet.migrations.clone();
    fleet.instances.retain(|inst| {
        if inst.gone() {
            return true;
        }
        let here = selected_here(&own, |m| m.selects(&inst.tags));
        let in_group = inst.tags.get(ASG_TAG);
        let by_migration = foreign
            .iter()
            .filter(|f| {
                f.selects(&inst.tags)
                    || in_group.is_some_and(|g| f.auto_scaling_group.as_ref() == Some(g))
            })
            .min_by_key(|f| (f.shard, &f.service));
        if let Some(f) = by_migration {
            held.push(HeldByShard {
                kind: HeldKind::Instance,
                id: inst.id.clone(),
                shard: f.shard,
                service: f.service.to_string(),
                selected_here: here,
                reason: format!(
                    "also selected by the migration of {}, whose cluster shard {} owns: \
                     this shard cannot see that migration's state",
                    f.service, f.shard
                ),
            });
            return false;
        }
        // Without a migration of this shard selecting it, a service tag
        // says whose prune decides.
        if here.is_empty()
            && let Some(service) = inst
                .tags
                .get(tags::INSTANCE_SERVICE)
                .and_then(|s| parse_service(s))
            && let Some(shard) = other_owner(&service.cluster)
        {
            held.push(HeldByShard {
                kind: HeldKind::Instance,
                id: inst.id.clone(),
                shard,
                service: service.to_string(),
                selected_here: here,
                reason: format!(
                    "tagged for service {service}, whose cluster shard {shard} owns: its prune decides"
                ),
            });
            return false;
        }
        true
    });
    fleet.groups.retain(|g| {
        let by_migration = foreign
            .iter()
            .filter(|f| f.auto_scaling_group.as_ref() == Some(&g.name))
            .min_by_key(|f| (f.shard, &f.service));
        let Some(f) = by_migration else {
            return true;
        };
        held.push(HeldByShard {
            kind: HeldKind::AutoScalingGroup,
            id: g.name.clone(),
            shard: f.shard,
            service: f.service.to_string(),
            selected_here: selected_here(&own, |m| m.auto_scaling_group.as_ref() == Some(&g.name)),
            reason: format!(
                "also named by the migration of {}, whose cluster shard {} owns: \
                 this shard cannot see that migration's state",
                f.service, f.shard
            ),
        });
        false
    });
    held.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    held
}

/// Why the fleet of this shard's migration of `service` is not gone while
/// something it selects is held by another shard; `None`: nothing is held.
pub fn held_fleet(held: &[HeldByShard], service: &ServiceKey) -> Option<String> {
    held.iter()
        .find(|h| h.selected_here.contains(service))
        .map(|h| format!("{} {} is held by shard {}", h.kind.as_str(), h.id, h.shard))
}

fn selected_here(
    own: &[MigrationInput],
    selects: impl Fn(&MigrationInput) -> bool,
) -> BTreeSet<ServiceKey> {
    own.iter()
        .filter(|m| selects(m))
        .map(|m| m.service.clone())
        .collect()
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
