//! A targeted pass: the services a push changed (and those still rolling out
//! or due for a retry), observed by name and planned and applied with the same
//! code as a full pass. Like kube-runtime's per-object reconcile beside its
//! periodic resync, and Argo CD's refresh beside a hard refresh: the full pass
//! every `--interval` stays the level-triggered backstop, and only it prunes,
//! decommissions and runs the scheduled phase.

use std::collections::{BTreeMap, BTreeSet};

use super::{PassReport, Reconciler};
use crate::core::manifest::ManifestSet;
use crate::core::model::ServiceKey;
use crate::core::plan::ServicePlan;

impl Reconciler {
    /// Observe, plan and apply `services` of `set` only. The migration phase
    /// runs for those of them that migrate; nothing else is looked at.
    pub async fn pass_targeted(
        &self,
        revision: &str,
        set: &ManifestSet,
        backing_off: &BTreeMap<ServiceKey, String>,
        services: &BTreeSet<ServiceKey>,
    ) -> PassReport {
        let only = subset(set, services);
        let mut report = self.pass_in(revision, &only, backing_off, true).await;
        report.targeted = Some(only.services.iter().map(|d| d.key.clone()).collect());
        report
    }
}

/// `set` cut down to `services`. Errors and broken files stay, so that the
/// plan holds what it would hold in a full pass; services held for them are
/// left out (a change to them is a change of errors: a full pass).
fn subset(set: &ManifestSet, services: &BTreeSet<ServiceKey>) -> ManifestSet {
    ManifestSet {
        services: set
            .services
            .iter()
            .filter(|d| services.contains(&d.key))
            .cloned()
            .collect(),
        errors: set.errors.clone(),
        warnings: Vec::new(),
        held: BTreeSet::new(),
        broken_files: set.broken_files.clone(),
        scheduled: Vec::new(),
        held_scheduled: BTreeSet::new(),
    }
}

/// Replacing a service creates and deletes a stand-in, which a pass that
/// never deletes cannot do: the full pass that follows does.
pub(super) fn needs_replacing(plans: &[ServicePlan]) -> Option<String> {
    plans
        .iter()
        .find(|p| !p.replace.is_empty() && p.held.is_none())
        .map(|p| format!("{} must be replaced ({})", p.key, p.replace.join(", ")))
}
