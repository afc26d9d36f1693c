//! From a Git snapshot to the desired state.

use crate::adapters::git::Snapshot;
use crate::core::manifest::{self, ManifestSet, ParseCache};

#[derive(Debug, thiserror::Error)]
#[error(
    "no manifests found under {path:?} at {revision}: refusing to treat an empty repository as the desired state"
)]
pub struct EmptyManifestSet {
    pub path: String,
    pub revision: String,
}

/// Parse a snapshot; an empty set is an error, never an instruction.
pub fn load_snapshot(
    snapshot: &Snapshot,
    path: Option<&str>,
) -> Result<ManifestSet, EmptyManifestSet> {
    load_snapshot_cached(snapshot, path, &mut ParseCache::default())
}

/// [`load_snapshot`] for the daemon, which loads every fetched revision: the
/// documents the last revision had too are not parsed again.
pub fn load_snapshot_cached(
    snapshot: &Snapshot,
    path: Option<&str>,
    cache: &mut ParseCache,
) -> Result<ManifestSet, EmptyManifestSet> {
    let set = manifest::load_tree_cached(
        snapshot
            .files
            .iter()
            .map(|f| (f.path.as_str(), &*f.contents)),
        &snapshot.tree,
        cache,
    );
    if set.services.is_empty() && set.scheduled.is_empty() && set.errors.is_empty() {
        return Err(EmptyManifestSet {
            path: path.unwrap_or(".").to_string(),
            revision: snapshot.revision.clone(),
        });
    }
    Ok(set)
}
