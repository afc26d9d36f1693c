//! What of a live service is ecsync's (DESIGN §3 "Ownership"): the tag keys
//! it put there, recorded in `ecsync.io/managed-tags`, and every path but the
//! manifest's `ignoreDifferences`. The rest is someone else's, never drift,
//! and shown as ignored so that nothing is hidden from the operator.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::diff::FieldDiff;
use crate::core::normalize::is_reserved_tag;
use crate::core::tags;

/// Why a live difference is not drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IgnoreReason {
    /// A tag key ecsync did not put there (another tool's, or a person's).
    ForeignTag,
    /// A path the manifest's `ignoreDifferences` names.
    IgnoredPath,
}

impl IgnoreReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ForeignTag => "foreign tag",
            Self::IgnoredPath => "ignoreDifferences",
        }
    }
}

/// A live difference that is not drift, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ignored {
    pub path: String,
    pub reason: IgnoreReason,
    /// `null` when absent on that side.
    pub desired: Value,
    pub live: Value,
}

/// What to do about a service's tags.
#[derive(Debug, Default, PartialEq)]
pub struct TagPlan {
    pub drift: Vec<FieldDiff>,
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
    pub foreign: Vec<Ignored>,
}

/// The declared tags against the live ones: set what differs, remove only
/// what ecsync had put there and Git no longer declares, keep the record of
/// its keys current, and leave every other key (and `aws:`) alone.
pub fn plan_tags(desired: &BTreeMap<String, String>, live: &BTreeMap<String, String>) -> TagPlan {
    let mut plan = TagPlan::default();
    let recorded = tags::decode_managed_tags(live);
    let managed = recorded.clone().unwrap_or_default();
    for (k, v) in desired {
        if live.get(k) != Some(v) {
            plan.drift.push(FieldDiff {
                path: format!("tags.{k}"),
                desired: Value::String(v.clone()),
                live: live
                    .get(k)
                    .map_or(Value::Null, |l| Value::String(l.clone())),
            });
            plan.set.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in live {
        if is_reserved_tag(k) || desired.contains_key(k) {
            continue;
        }
        if managed.contains(k) {
            plan.drift.push(FieldDiff {
                path: format!("tags.{k}"),
                desired: Value::Null,
                live: Value::String(v.clone()),
            });
            plan.remove.push(k.clone());
        } else {
            plan.foreign.push(Ignored {
                path: format!("tags.{k}"),
                reason: IgnoreReason::ForeignTag,
                desired: Value::Null,
                live: Value::String(v.clone()),
            });
        }
    }
    let keys: BTreeSet<String> = desired.keys().cloned().collect();
    if recorded.as_ref() != Some(&keys) {
        let record = tags::encode_managed_tags(&keys);
        plan.remove
            .extend(tags::managed_tags_beyond(live, record.len()));
        plan.set.extend(record);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_recorded_keys_are_changed_or_removed() {
        let desired = map(&[("team", "web"), ("tier", "1")]);
        let live = map(&[
            ("team", "old"),
            ("gone", "x"),
            ("cost-center", "42"),
            ("aws:cloudformation:stack-name", "s"),
            (tags::MANAGED_TAGS, "gone team"),
            (tags::MANAGED_BY, "ecsync"),
        ]);
        let plan = plan_tags(&desired, &live);
        let drift: Vec<&str> = plan.drift.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(drift, ["tags.team", "tags.tier", "tags.gone"]);
        assert_eq!(plan.remove, ["gone"]);
        assert_eq!(plan.set["team"], "web");
        assert_eq!(plan.set["tier"], "1");
        assert_eq!(plan.set[tags::MANAGED_TAGS], "team tier");
        let foreign: Vec<&str> = plan.foreign.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            foreign,
            ["tags.cost-center"],
            "aws: and ecsync.io/ keys are not even listed"
        );
    }

    #[test]
    fn without_a_record_nothing_is_removed_and_the_record_is_started() {
        let desired = map(&[("team", "web")]);
        let live = map(&[("team", "web"), ("owner", "ops")]);
        let plan = plan_tags(&desired, &live);
        assert!(plan.drift.is_empty(), "{:?}", plan.drift);
        assert!(plan.remove.is_empty());
        assert_eq!(plan.set, map(&[(tags::MANAGED_TAGS, "team")]));
        assert_eq!(plan.foreign.len(), 1);
    }

    #[test]
    fn an_in_sync_service_with_a_current_record_plans_nothing() {
        let desired = map(&[("team", "web")]);
        let live = map(&[
            ("team", "web"),
            ("backup", "daily"),
            (tags::MANAGED_TAGS, "team"),
        ]);
        let plan = plan_tags(&desired, &live);
        assert!(plan.drift.is_empty() && plan.set.is_empty() && plan.remove.is_empty());
    }
}
