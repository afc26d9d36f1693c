//! Sharding (`--shard-index I --shard-count N`): which replica owns which ECS
//! cluster, and the part of the manifest set one shard acts on.
//!
//! A cluster belongs to shard `u64::from_be_bytes(SHA-256(name)[..8]) % N`.
//! The hash is fixed by this function alone (no std `Hasher`, whose output
//! may change between Rust versions), so every replica, on any machine and
//! any ecsync version, agrees on the owner; the golden table in the tests
//! pins it. A cluster is the unit because an ECS service's identity, its
//! prune view and its scheduled tasks are all per cluster.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::dependencies::dependencies;
use crate::core::manifest::{ManifestError, ManifestSet};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard-count must be at least 1")]
    ZeroCount,
    #[error("--shard-index {index} is out of range: it must be below --shard-count {count}")]
    IndexOutOfRange { index: u32, count: u32 },
}

/// This replica's shard. `Shard::new(0, 1)` owns every cluster (what an
/// unsharded ecsync does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The shard that owns `cluster` among `count` (at least 1).
pub fn shard_of(cluster: &str, count: u32) -> u32 {
    let digest = Sha256::digest(cluster.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The remainder is below `count`, itself a u32.
    (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::ZeroCount);
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    pub fn owns(&self, cluster: &str) -> bool {
        shard_of(cluster, self.count) == self.index
    }

    /// The shard that owns `cluster`, when it is not this one.
    pub fn other_owner(&self, cluster: &str) -> Option<u32> {
        let owner = shard_of(cluster, self.count);
        (owner != self.index).then_some(owner)
    }

    /// The part of `set` this shard acts on: services, held services and
    /// scheduled tasks whose cluster it owns. What is not in here is not part
    /// of this replica's world: never observed, planned, reported or pruned.
    ///
    /// Errors, broken files and held schedule names stay: they say the set
    /// is incomplete, which must stop pruning in every shard (a broken file
    /// may declare anything, in any cluster).
    pub fn scope(&self, set: &ManifestSet) -> ManifestSet {
        ManifestSet {
            services: set
                .services
                .iter()
                .filter(|d| self.owns(&d.key.cluster))
                .cloned()
                .collect(),
            errors: set.errors.clone(),
            warnings: set.warnings.clone(),
            held: set
                .held
                .iter()
                .filter(|k| self.owns(&k.cluster))
                .cloned()
                .collect(),
            broken_files: set.broken_files.clone(),
            scheduled: set
                .scheduled
                .iter()
                .filter(|t| self.owns(&t.spec.cluster))
                .cloned()
                .collect(),
            held_scheduled: set.held_scheduled.clone(),
        }
    }

    /// Warnings, at the manifest's `file:line:col`, for each `dependsOn` of
    /// this shard's services that names a service in another shard's cluster:
    /// this shard cannot see that service roll out, so the dependent is held.
    pub fn dependency_warnings(&self, set: &ManifestSet) -> Vec<ManifestError> {
        let mut out = Vec::new();
        for d in set.services.iter().filter(|d| self.owns(&d.key.cluster)) {
            for (i, dep) in dependencies(d).iter().enumerate() {
                let Some(owner) = self.other_owner(&dep.cluster) else {
                    continue;
                };
                let (file, line, column) = d
                    .depends_on_at
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| (d.source.clone(), 0, 0));
                out.push(ManifestError {
                    file,
                    line,
                    column,
                    message: format!(
                        "spec.dependsOn[{i}].service: {dep} is in a cluster shard {owner} owns; \
                         shard {} cannot see it roll out, so {} is held",
                        self.index, d.key
                    ),
                });
            }
        }
        out
    }

    /// Whether this shard acts on the live schedule `name` in ecsync's group,
    /// whose target runs in `live_cluster`. `declared` maps each schedule name
    /// of the whole manifest set to its cluster: a declared schedule belongs
    /// to the shard of the cluster its manifest names (so a manifest that moves
    /// it to another cluster is carried out by the new owner, as an update),
    /// an undeclared one to the shard of the cluster it runs in (the one whose
    /// prune decides about it). Every schedule thus has exactly one owner.
    pub fn owns_schedule(
        &self,
        name: &str,
        live_cluster: &str,
        declared: &BTreeMap<&str, &str>,
    ) -> bool {
        self.owns(declared.get(name).copied().unwrap_or(live_cluster))
    }
}

#[cfg(test)]
mod tests;
