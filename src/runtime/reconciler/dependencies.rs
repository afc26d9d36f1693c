//! `dependsOn` after the services phase (the waits themselves are decided in
//! planning, `core::dependencies`): a service left waiting on a dependency
//! that ended this pass failed (its pre-deploy hook failed, its update
//! failed) is held, with the reason, until the dependency recovers.

use std::collections::BTreeMap;

use super::ServiceOutcome;
use crate::core::dependencies::{dependencies, failed_dependency};
use crate::core::manifest::DesiredService;
use crate::core::model::ServiceKey;
use crate::core::state::SyncState;

pub(super) fn hold_dependents_of_failures(
    outcomes: &mut [ServiceOutcome],
    desired: &BTreeMap<&ServiceKey, &DesiredService>,
) {
    let states: BTreeMap<ServiceKey, (SyncState, Option<String>)> = outcomes
        .iter()
        .map(|o| {
            let why = o
                .error
                .clone()
                .or_else(|| o.hook.as_ref().map(|h| h.summary()))
                .or_else(|| o.plan.held.clone());
            (o.plan.key.clone(), (o.state, why))
        })
        .collect();
    for o in outcomes.iter_mut().filter(|o| o.plan.waiting.is_some()) {
        let Some(d) = desired.get(&o.plan.key) else {
            continue;
        };
        if let Some(reason) = failed_dependency(&dependencies(d), |k| states.get(k).cloned()) {
            o.plan.waiting = None;
            o.plan.held = Some(reason);
            o.settle();
        }
    }
}
