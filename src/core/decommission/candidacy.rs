//! Which instances are candidates at all, and which candidates are skipped
//! (rules 2 and 3 of the module documentation).

use std::collections::BTreeSet;
use std::time::Duration;

use super::{
    ASG_TAG, DecommissionAction, FleetInput, InstanceInput, MigrationInput, PRUNE_GRACE,
    SkipReason, Why,
};
use crate::core::tags::{self, parse_service};

/// Candidacy, before any skip rule.
pub(super) struct Candidate {
    pub why: Why,
    pub action: DecommissionAction,
    pub after: Duration,
    /// Target groups an instance of this candidate may be deregistered from.
    pub managed_legacy: BTreeSet<String>,
    pub report_only: bool,
}

pub(super) enum Candidacy {
    Candidate(Candidate),
    /// Not a candidate; the text says why (for the status of tagged instances).
    Not(String),
}

pub(super) fn candidacy(fleet: &FleetInput, inst: &InstanceInput) -> Candidacy {
    let selecting: Vec<&MigrationInput> = fleet
        .migrations
        .iter()
        .filter(|m| m.selects(&inst.tags))
        .collect();
    if !selecting.is_empty() {
        let mut chosen: Option<Candidate> = None;
        for m in &selecting {
            let Some((action, after)) = m.decommission else {
                return Candidacy::Not(format!(
                    "selected by the migration of {} which has no decommission block",
                    m.service
                ));
            };
            let Some(completed) = m.completed_since else {
                return Candidacy::Not(format!("the migration of {} is not complete", m.service));
            };
            // Several complete migrations select it: the most cautious settings win.
            match &mut chosen {
                None => {
                    chosen = Some(Candidate {
                        why: Why::Migration {
                            service: m.service.to_string(),
                            completed,
                        },
                        action,
                        after,
                        managed_legacy: m.legacy_target_group.iter().cloned().collect(),
                        report_only: m.report_only,
                    })
                }
                Some(c) => {
                    c.action = c.action.min(action);
                    c.after = c.after.max(after);
                    c.managed_legacy
                        .extend(m.legacy_target_group.iter().cloned());
                    c.report_only |= m.report_only;
                }
            }
        }
        return match chosen {
            Some(c) => Candidacy::Candidate(c),
            None => Candidacy::Not("no complete migration selects it".into()),
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
        managed_legacy: BTreeSet::new(),
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
