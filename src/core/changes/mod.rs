//! What a new revision changed against the last applied one: the services a
//! targeted pass must look at, or why only a full pass can tell.
//!
//! The comparison is of the built [`DesiredService`]s, not of files: a change
//! that reaches a service through an overlay or `taskDefinitionFrom` changes
//! the service as built, so it is caught by construction. Anything whose
//! effect reaches beyond the changed services themselves (prune, a migration's
//! fleet, a dependency, schedules, manifest errors) asks for a full pass.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::core::dependencies::{dependencies, has_dependencies};
use crate::core::manifest::{DesiredService, ManifestSet};
use crate::core::model::ServiceKey;

/// The scope of one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeSet {
    /// Only these services need a look; every other one is as the last
    /// applied revision left it.
    Targeted { services: BTreeSet<ServiceKey> },
    /// Only the whole view can decide.
    Full { reason: FullReason },
}

/// Why a pass looks at everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullReason {
    /// No revision has been applied by this process yet.
    FirstPass,
    /// `--interval` came round: the level-triggered resync.
    Interval,
    /// A wake-up with no new revision and nothing in progress or due.
    NothingTargeted,
    /// The last targeted pass found something it could not decide alone.
    FollowUp(String),
    /// A service is no longer declared: the prune view.
    ServiceRemoved(ServiceKey),
    /// A manifest file is gone (deleted or renamed): the prune view.
    FileRemoved(String),
    /// A `migration` was added, removed or changed: fleets and listeners.
    Migration(ServiceKey),
    /// A changed service depends on others, or others depend on it.
    Dependency(ServiceKey),
    /// `kind: ScheduledTask` manifests changed.
    ScheduledTasks,
    /// Manifest errors (and so the services held for them) changed.
    ManifestErrors,
}

impl fmt::Display for FullReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FullReason::FirstPass => write!(f, "no revision applied yet"),
            FullReason::Interval => write!(f, "the poll interval came round"),
            FullReason::NothingTargeted => write!(f, "no new revision and nothing in progress"),
            FullReason::FollowUp(why) => write!(f, "the last targeted pass asked: {why}"),
            FullReason::ServiceRemoved(k) => write!(f, "{k} is no longer declared"),
            FullReason::FileRemoved(path) => write!(f, "manifest file {path} is gone"),
            FullReason::Migration(k) => write!(f, "the migration of {k} changed"),
            FullReason::Dependency(k) => write!(f, "{k} takes part in dependsOn"),
            FullReason::ScheduledTasks => write!(f, "scheduled tasks changed"),
            FullReason::ManifestErrors => write!(f, "manifest errors changed"),
        }
    }
}

/// The services whose built form differs between `old` (the last applied
/// set) and `new`, or why only a full pass can tell.
pub fn changes(old: &ManifestSet, new: &ManifestSet) -> ChangeSet {
    let full = |reason| ChangeSet::Full { reason };
    if old.errors != new.errors
        || old.held != new.held
        || old.broken_files != new.broken_files
        || old.held_scheduled != new.held_scheduled
    {
        return full(FullReason::ManifestErrors);
    }
    if old.scheduled != new.scheduled {
        return full(FullReason::ScheduledTasks);
    }
    // What each changed service was (if it was declared) and is.
    let mut changed: Vec<(Option<&DesiredService>, &DesiredService)> = Vec::new();
    let in_place = old.services.len() == new.services.len()
        && old
            .services
            .iter()
            .zip(&new.services)
            .all(|(a, b)| a.key == b.key && a.source == b.source);
    if in_place {
        // The usual push: the same services from the same files, so nothing
        // was removed, and a walk side by side finds what changed.
        for (a, b) in old.services.iter().zip(&new.services) {
            if !same(a, b) {
                changed.push((Some(a), b));
            }
        }
    } else {
        let before = by_key(old);
        let after = by_key(new);
        if let Some(k) = before.keys().find(|k| !after.contains_key(*k)) {
            return full(FullReason::ServiceRemoved((*k).clone()));
        }
        let files: BTreeSet<&str> = sources(new).collect();
        if let Some(gone) = sources(old).find(|f| !files.contains(f)) {
            return full(FullReason::FileRemoved(gone.to_string()));
        }
        for (k, d) in &after {
            let was = before.get(k);
            if was.is_none_or(|b| !same(b, d)) {
                changed.push((was.map(|b| &***b), d));
            }
        }
    }
    for (was, is) in &changed {
        if was.and_then(|d| d.spec.migration.as_ref()) != is.spec.migration.as_ref() {
            return full(FullReason::Migration(is.key.clone()));
        }
    }
    let changed: BTreeSet<ServiceKey> = changed.into_iter().map(|(_, d)| d.key.clone()).collect();
    // Both sides: a dependency added, or one that was dropped, both reach
    // another service's wait.
    let dependents = old
        .services
        .iter()
        .chain(&new.services)
        .filter(|d| has_dependencies(d));
    for d in dependents {
        if changed.contains(&d.key) {
            return full(FullReason::Dependency(d.key.clone()));
        }
        if let Some(dep) = dependencies(d)
            .into_iter()
            .find(|dep| changed.contains(dep))
        {
            return full(FullReason::Dependency(dep));
        }
    }
    ChangeSet::Targeted { services: changed }
}

/// What the daemon knows when it wakes up, for [`decide`].
pub struct Wake<'a> {
    /// The revision the last completed pass ran on, and its set; `None` before
    /// the first (or after leadership was lost: another replica may have acted).
    pub applied: Option<(&'a str, &'a ManifestSet)>,
    pub revision: &'a str,
    pub set: &'a ManifestSet,
    /// `--interval` came round, or the process (or its turn as leader) started.
    pub full_due: bool,
    /// Why the last targeted pass asked for the whole view, if it did.
    pub follow_up: Option<&'a str>,
    /// Services a pass left rolling out, and services whose retry is due.
    pub pending: &'a BTreeSet<ServiceKey>,
}

/// The scope of the pass about to run: the services the new revision changed,
/// plus those still rolling out or due for a retry, unless anything asks for
/// the whole view. A wake-up with nothing to look at is a full pass (a manual
/// nudge means "look again", as Argo CD's refresh).
pub fn decide(w: &Wake) -> ChangeSet {
    let full = |reason| ChangeSet::Full { reason };
    let Some((applied, old)) = w.applied else {
        return full(FullReason::FirstPass);
    };
    if w.full_due {
        return full(FullReason::Interval);
    }
    if let Some(why) = w.follow_up {
        return full(FullReason::FollowUp(why.to_string()));
    }
    let new_revision = applied != w.revision;
    let mut services = if new_revision {
        match changes(old, w.set) {
            ChangeSet::Targeted { services } => services,
            f @ ChangeSet::Full { .. } => return f,
        }
    } else {
        BTreeSet::new()
    };
    if !w.pending.is_empty() {
        let declared: HashSet<&ServiceKey> = w.set.services.iter().map(|d| &d.key).collect();
        services.extend(w.pending.iter().filter(|k| declared.contains(k)).cloned());
    }
    if services.is_empty() && !new_revision {
        return full(FullReason::NothingTargeted);
    }
    involving(w.set, services)
}

/// Targeted at `services`, unless one takes part in a `dependsOn`: its wait
/// reads the plan of the other side, which a targeted pass does not make.
pub fn involving(set: &ManifestSet, services: BTreeSet<ServiceKey>) -> ChangeSet {
    for d in set.services.iter().filter(|d| has_dependencies(d)) {
        let deps = dependencies(d);
        if services.contains(&d.key) && !deps.is_empty() {
            return ChangeSet::Full {
                reason: FullReason::Dependency(d.key.clone()),
            };
        }
        if let Some(dep) = deps.into_iter().find(|dep| services.contains(dep)) {
            return ChangeSet::Full {
                reason: FullReason::Dependency(dep),
            };
        }
    }
    ChangeSet::Targeted { services }
}

/// Unchanged files give back the very same services (the parse cache), so
/// most comparisons end at the pointer.
fn same(a: &Arc<DesiredService>, b: &Arc<DesiredService>) -> bool {
    Arc::ptr_eq(a, b) || **a == **b
}

fn by_key(set: &ManifestSet) -> BTreeMap<&ServiceKey, &Arc<DesiredService>> {
    set.services.iter().map(|d| (&d.key, d)).collect()
}

/// The files that declare something.
fn sources(set: &ManifestSet) -> impl Iterator<Item = &str> {
    set.services
        .iter()
        .map(|d| d.source.as_str())
        .chain(set.scheduled.iter().map(|t| t.source.as_str()))
}

#[cfg(test)]
mod tests;
