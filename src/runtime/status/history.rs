//! The short histories a snapshot carries for people: the last passes, and
//! what was done to each service. Bounded, so a daemon that runs for months
//! serves a page of the same size as on its first day; kept in memory only,
//! since everything that matters for correctness lives in AWS tags.

use super::{ActionRecord, PassSummary, StatusSnapshot};

/// Passes kept, newest first.
pub const PASS_HISTORY: usize = 20;
/// Action records kept per service, newest first.
pub const ACTION_HISTORY: usize = 10;

impl StatusSnapshot {
    /// Carry the histories over from `previous`, the snapshot this one
    /// replaces: its passes after this one's, and each service's records after
    /// this pass's, both cut to their bound. Services no longer listed lose
    /// theirs.
    pub fn keep_history(&mut self, previous: &StatusSnapshot) {
        let newest: Vec<u64> = self.passes.iter().map(|p| p.pass_id).collect();
        let passes = previous
            .passes
            .iter()
            .filter(|p| !newest.contains(&p.pass_id));
        extend_bounded(&mut self.passes, passes, PASS_HISTORY);
        for service in &mut self.services {
            let Some(before) = previous
                .services
                .iter()
                .find(|p| p.cluster == service.cluster && p.service == service.service)
            else {
                continue;
            };
            // The same failure again: one record, from when it began.
            if let ([new], Some(old)) = (
                service.recent_actions.as_slice(),
                before.recent_actions.first(),
            ) && new.actions.is_empty()
                && old.actions.is_empty()
                && new.error == old.error
            {
                service.recent_actions.clear();
            }
            extend_bounded(
                &mut service.recent_actions,
                before.recent_actions.iter(),
                ACTION_HISTORY,
            );
        }
    }
}

fn extend_bounded<'a, T: Clone + 'a>(
    into: &mut Vec<T>,
    older: impl Iterator<Item = &'a T>,
    bound: usize,
) {
    let room = bound.saturating_sub(into.len());
    into.extend(older.take(room).cloned());
    into.truncate(bound);
}

/// This pass's record for a service, when it changed something or failed.
pub(super) fn record(
    pass: &PassSummary,
    actions: Vec<String>,
    error: Option<&str>,
) -> Option<ActionRecord> {
    if actions.is_empty() && error.is_none() {
        return None;
    }
    Some(ActionRecord {
        at: pass.started_at.clone(),
        pass_id: pass.pass_id,
        actions,
        result: if error.is_some() { "error" } else { "ok" }.to_string(),
        error: error.map(str::to_string),
    })
}
