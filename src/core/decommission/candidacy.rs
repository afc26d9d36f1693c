//! Which instances are candidates at all, and which candidates are skipped
//! (rules 2 and 3 of the module documentation).

use std::collections::BTreeSet;
use std::time::Duration;

use super::{
    ASG_TAG, DecommissionAction, FleetInput, InstanceInput, MigrationInput, OrphanState,
    PRUNE_GRACE, SkipReason, Why,
};
use crate::core::tags::{self, parse_service};

/// Candidacy, before any skip rule: of an instance or of an Auto Scaling group.
pub(super) struct Candidate {
    pub why: Why,
    pub action: DecommissionAction,
    pub after: Duration,
    /// The migrations' legacy target groups (ARNs): those an instance may be
    /// deregistered from, and a group detached from.
    pub legacy: BTreeSet<String>,
    pub report_only: bool,
}

pub(super) enum Candidacy {
    Candidate(Candidate),
    /// Not a candidate; the text says why (for the status of tagged instances).
    Not(String),
}

/// The candidacy the migrations that claim a fleet member (`claim`:
/// "selected" by their `from.instances`, "named" as `from.autoScalingGroup`)
/// give it: each must have a `decommission` block and be complete; when
/// several are, the most cautious settings win. `none` is why not when no
/// migration claims it.
pub(super) fn from_migrations(
    claiming: &[&MigrationInput],
    claim: &str,
    none: &str,
) -> Result<Candidate, String> {
    let mut chosen: Option<Candidate> = None;
    for m in claiming {
        let Some((action, after)) = m.decommission else {
            return Err(format!(
                "{claim} by the migration of {} which has no decommission block",
                m.service
            ));
        };
        let Some(completed) = m.completed_since else {
            return Err(format!("the migration of {} is not complete", m.service));
        };
        match &mut chosen {
            None => {
                chosen = Some(Candidate {
                    why: Why::Migration {
                        service: m.service.to_string(),
                        completed,
                    },
                    action,
                    after,
                    legacy: m.legacy_target_group.iter().cloned().collect(),
                    report_only: m.report_only,
                })
            }
            Some(c) => {
                c.action = c.action.min(action);
                c.after = c.after.max(after);
                c.legacy.extend(m.legacy_target_group.iter().cloned());
                c.report_only |= m.report_only;
            }
        }
    }
    chosen.ok_or_else(|| none.to_string())
}

pub(super) fn candidacy(fleet: &FleetInput, inst: &InstanceInput) -> Candidacy {
    let selecting: Vec<&MigrationInput> = fleet
        .migrations
        .iter()
        .filter(|m| m.selects(&inst.tags))
        .collect();
    if !selecting.is_empty() {
        return match from_migrations(&selecting, "selected", "no complete migration selects it") {
            Ok(c) => Candidacy::Candidate(c),
            Err(why_not) => Candidacy::Not(why_not),
        };
    }
    let owned = inst.tags.get(tags::MANAGED_BY) == Some(&fleet.controller_id);
    let Some(service) = inst
        .tags
        .get(tags::INSTANCE_SERVICE)
        .and_then(|s| parse_service(s))
    else {
        return Candidacy::Not("no migration selects it".into());
    };
    if !owned {
        return Candidacy::Not("not owned by this controller".into());
    }
    if fleet.declared.contains(&service) || fleet.held.contains(&service) {
        return Candidacy::Not(format!("service {service} is declared in Git"));
    }
    // Same guard as service pruning: an empty or partly unreadable set is never an
    // instruction to remove anything.
    if !fleet.prune || fleet.declared.is_empty() || fleet.set_incomplete {
        return Candidacy::Not(format!(
            "service {service} left Git, but pruning is off or the manifest set is incomplete"
        ));
    }
    Candidacy::Candidate(Candidate {
        why: Why::Prune {
            service: service.to_string(),
        },
        action: DecommissionAction::Stop,
        after: PRUNE_GRACE,
        legacy: BTreeSet::new(),
        report_only: false,
    })
}

pub(super) fn skip_reason(
    fleet: &FleetInput,
    inst: &InstanceInput,
    managed: &dyn Fn(&str) -> bool,
) -> Option<SkipReason> {
    if tags::is_protected(&inst.tags) {
        return Some(SkipReason::Protected);
    }
    if let Some(group) = inst.tags.get(ASG_TAG) {
        return Some(SkipReason::AutoScalingGroup {
            group: group.clone(),
        });
    }
    match inst.protection {
        None => return Some(SkipReason::ProtectionUnknown),
        Some(p) if p.termination => return Some(SkipReason::TerminationProtection),
        Some(p) if p.stop => return Some(SkipReason::StopProtection),
        Some(_) => {}
    }
    if let Some(r) = inst
        .registrations
        .iter()
        .find(|r| !managed(&r.target_group_arn))
    {
        let target_group = fleet
            .target_groups
            .get(&r.target_group_arn)
            .map_or_else(|| r.target_group_arn.clone(), |t| t.name.clone());
        return Some(SkipReason::UnmanagedTargetGroup { target_group });
    }
    None
}

/// Why a tagged fleet member that is no longer a candidate cannot be released
/// now, if so: protected (its tags stay as they are too), or its service's
/// manifest is broken (its intent is unknown). The state, the skip reason
/// and the message to report.
pub(super) fn release_blocked(
    fleet: &FleetInput,
    on: &std::collections::BTreeMap<String, String>,
    why_not: &str,
) -> Option<(OrphanState, Option<SkipReason>, String)> {
    if tags::is_protected(on) {
        return Some((
            OrphanState::Skipped,
            Some(SkipReason::Protected),
            format!("{why_not}; protected, so it is left as it is"),
        ));
    }
    let held = match on
        .get(tags::DECOMMISSION_FOR)
        .and_then(|s| parse_service(s))
    {
        Some(s) => fleet.held.contains(&s),
        // Unknown owner: any broken manifest might be the one that decides.
        None => fleet.set_incomplete,
    };
    held.then(|| {
        (
            OrphanState::Held,
            None,
            format!("{why_not}; held while its manifest is broken"),
        )
    })
}

/// The tags a release removes: ecsync's decommission record, and `extra`,
/// those of them that are there.
pub(super) fn record_keys_on(
    on: &std::collections::BTreeMap<String, String>,
    extra: &[&str],
) -> Vec<String> {
    [
        tags::DECOMMISSION,
        tags::DECOMMISSION_FOR,
        tags::DECOMMISSION_LEFT,
        tags::DECOMMISSION_BY,
    ]
    .iter()
    .chain(extra)
    .filter(|k| on.contains_key(**k))
    .map(|k| k.to_string())
    .collect()
}
