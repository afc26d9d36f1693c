//! The AWS tags through which ecsync keeps ownership and state (DESIGN §4),
//! and one codec per tag: every reader and writer of a tag value goes through
//! here, so its format has exactly one definition.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::core::model::ServiceKey;

pub const MANAGED_BY: &str = "ecsync.io/managed-by";
pub const REVISION: &str = "ecsync.io/revision";
pub const SOURCE: &str = "ecsync.io/source";
pub const PROTECT: &str = "ecsync.io/protect";
/// `disabled` on a service whose manifest carried the `ecsync.io/prune: disabled`
/// annotation: the annotation must still hold once the manifest is gone.
pub const PRUNE: &str = "ecsync.io/prune";
pub const MIGRATION_STEP: &str = "ecsync.io/migration-step";
pub const MIGRATION_STEP_SINCE: &str = "ecsync.io/migration-step-since";
/// `<n>@<fingerprint>`: rollbacks of the migration as the manifest (migration
/// spec and task definition) with that fingerprint declared it; a manifest
/// change starts a new count (DESIGN §5: "holds until the manifest changes").
pub const MIGRATION_ROLLBACKS: &str = "ecsync.io/migration-rollbacks";
pub const DECOMMISSION: &str = "ecsync.io/decommission";
/// On an EC2 instance being decommissioned: the controller id whose clock it
/// carries. Another controller leaves it alone (one without the tag, written
/// by an earlier version, counts as every controller's).
pub const DECOMMISSION_BY: &str = "ecsync.io/decommission-by";
/// On an EC2 instance being decommissioned: `<cluster>/<service>` whose migration
/// (or pruning) made it a candidate, so a broken manifest holds exactly its instances.
pub const DECOMMISSION_FOR: &str = "ecsync.io/decommission-for";
/// On an EC2 instance being decommissioned: the target groups (`name:port`, comma
/// separated) it was deregistered from, so it can be registered again if it stops
/// being a candidate (for instance, the migration rolls back).
pub const DECOMMISSION_LEFT: &str = "ecsync.io/decommission-left";
/// On an EC2 instance ecsync owns (with `managed-by`): the `<cluster>/<service>` it
/// serves. When that service leaves Git, `--prune` decommissions the instance.
/// On an Auto Scaling group: the processes ecsync suspended (comma-separated),
/// resumed if the group stops being a decommission candidate.
pub const DECOMMISSION_SUSPENDED: &str = "ecsync.io/decommission-suspended";
pub const INSTANCE_SERVICE: &str = "ecsync.io/service";
/// On a security group, Elastic IP, EBS volume or AMI a decommissioned fleet
/// used: `<cluster>/<service>` whose fleet it outlives. Written while the
/// fleet still exists (afterwards AWS no longer says whose it was), read by
/// the leftovers report; never a reason to delete anything.
pub const LEFTOVER_OF: &str = "ecsync.io/leftover-of";
/// `<family>:<revision>@<content hash>` of the task definition ecsync last put
/// on the service: while the service still runs that revision, its content is
/// known without a DescribeTaskDefinition call.
pub const TASK_DEFINITION: &str = "ecsync.io/task-definition";
/// On the stand-in service `<name>-ecsync-next` that serves while `<name>` is
/// replaced: the name of the service it stands in for.
pub const REPLACEMENT_OF: &str = "ecsync.io/replacement-of";
/// On task definitions ecsync registers: the content hash.
pub const SPEC_HASH: &str = "ecsync.io/spec-hash";

/// `<hook>@<revision>:<succeeded|failed>` on a service (DESIGN §4), and on the
/// task definition revision the hook ran with: `<revision>` is that
/// definition's content hash (as in [`TASK_DEFINITION`]), so the same manifest
/// never reruns a hook however many times it is registered, and a service that
/// does not exist yet keeps the result on the revision it will be created with.
pub const HOOK: &str = "ecsync.io/hook";
/// Beside a failed [`HOOK`]: the exit code and reason, so `/status` still says
/// why after a restart.
pub const HOOK_REASON: &str = "ecsync.io/hook-reason";
/// On a hook's task: `<hook>@<revision>`, which hook of which revision it runs.
pub const HOOK_TASK: &str = "ecsync.io/hook-task";
/// On a hook's task: when ecsync started it (the clock of its timeout).
pub const HOOK_STARTED: &str = "ecsync.io/hook-started";

/// AWS caps tag values at 256 characters.
pub const MAX_TAG_VALUE: usize = 256;

/// A tag value's length as AWS counts it: in Unicode characters, not bytes,
/// so every check against [`MAX_TAG_VALUE`] goes through here.
pub fn tag_len(value: &str) -> usize {
    value.chars().count()
}

/// The tag keys ecsync put on a resource (its manifest's `tags`), so that it
/// changes and removes only those: `ecsync.io/managed-tags`, continued in
/// `ecsync.io/managed-tags.2`, `.3`, ... when one value cannot hold them all.
pub const MANAGED_TAGS: &str = "ecsync.io/managed-tags";

/// The continuation tags of [`MANAGED_TAGS`]: `MANAGED_TAGS` itself first.
fn managed_tags_key(part: usize) -> String {
    if part == 1 {
        MANAGED_TAGS.to_string()
    } else {
        format!("{MANAGED_TAGS}.{part}")
    }
}

/// Tag values allow letters, digits, spaces and `+ - = . _ : / @`, as keys do;
/// keys are joined by spaces, with `+` written `+p` and a space `+s`.
fn escape_key(key: &str) -> String {
    key.replace('+', "+p").replace(' ', "+s")
}

fn unescape_key(key: &str) -> String {
    key.replace("+s", " ").replace("+p", "+")
}

/// The record of `keys` as tags: every value at most [`MAX_TAG_VALUE`], and
/// an empty record (`""`) when ecsync manages no key.
pub fn encode_managed_tags(keys: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut parts: Vec<String> = vec![String::new()];
    for key in keys.iter().map(|k| escape_key(k)) {
        let last = parts.last_mut().expect("one part at least");
        if last.is_empty() {
            *last = key;
        } else if tag_len(last) + 1 + tag_len(&key) <= MAX_TAG_VALUE {
            last.push(' ');
            last.push_str(&key);
        } else {
            parts.push(key);
        }
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(i, v)| (managed_tags_key(i + 1), v))
        .collect()
}

/// The keys ecsync recorded as its own; `None` when there is no record (a
/// resource from before the record existed: then ecsync removes nothing).
pub fn decode_managed_tags(tags: &BTreeMap<String, String>) -> Option<BTreeSet<String>> {
    let first = tags.get(MANAGED_TAGS)?;
    let mut keys: BTreeSet<String> = first
        .split(' ')
        .filter(|k| !k.is_empty())
        .map(unescape_key)
        .collect();
    for part in 2.. {
        let Some(v) = tags.get(&managed_tags_key(part)) else {
            break;
        };
        keys.extend(v.split(' ').filter(|k| !k.is_empty()).map(unescape_key));
    }
    Some(keys)
}

/// The continuation tags of a record beyond `parts` values: stale once the
/// record shrinks.
pub fn managed_tags_beyond(tags: &BTreeMap<String, String>, parts: usize) -> Vec<String> {
    tags.keys()
        .filter(|k| {
            k.strip_prefix(MANAGED_TAGS)
                .and_then(|rest| rest.strip_prefix('.'))
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n > parts)
        })
        .cloned()
        .collect()
}

/// The one clock format of every timestamp ecsync writes into a tag: RFC 3339
/// with milliseconds, so a clock read back is never earlier than written (a
/// clock truncated to the second would let a step be held up to a second
/// less than asked).
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Reads [`format_time`]'s form, and the whole-second form written by earlier
/// versions on instances that are still being decommissioned.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim()).ok()
}

/// `ecsync.io/protect=true`: never touched by prune, decommission or cleanup.
pub fn is_protected(tags: &BTreeMap<String, String>) -> bool {
    tags.get(PROTECT).map(String::as_str) == Some("true")
}

/// `ecsync.io/managed-by=<controller_id>`.
pub fn is_managed_by(tags: &BTreeMap<String, String>, controller_id: &str) -> bool {
    tags.get(MANAGED_BY).map(String::as_str) == Some(controller_id)
}

/// `family:revision` from a task definition ARN (or the string itself).
pub fn family_revision(arn: &str) -> &str {
    arn.rsplit_once("task-definition/")
        .map_or(arn, |(_, fr)| fr)
}

/// The value of the [`TASK_DEFINITION`] tag, if it fits in a tag.
pub fn task_definition_tag(task_definition_arn: &str, hash: &str) -> Option<String> {
    let v = format!("{}@{hash}", family_revision(task_definition_arn));
    (tag_len(&v) <= MAX_TAG_VALUE).then_some(v)
}

/// The content hash the tag records for `task_definition_arn`, if the tag is
/// about that very revision.
pub fn hash_for(tag_value: &str, task_definition_arn: &str) -> Option<String> {
    let (fr, hash) = tag_value.rsplit_once('@')?;
    (fr == family_revision(task_definition_arn) && !hash.is_empty()).then(|| hash.to_string())
}

/// [`MIGRATION_STEP`] read strictly: the number of steps taken, as written.
pub fn migration_step(tags: &BTreeMap<String, String>) -> Option<usize> {
    tags.get(MIGRATION_STEP)?.trim().parse().ok()
}

/// [`MIGRATION_STEP_SINCE`]: when the current step was taken.
pub fn migration_step_since(tags: &BTreeMap<String, String>) -> Option<SystemTime> {
    parse_time(tags.get(MIGRATION_STEP_SINCE)?)
}

/// The tags that record `stage` as taken at `now`.
pub fn migration_step_tags(stage: usize, now: SystemTime) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MIGRATION_STEP.to_string(), stage.to_string()),
        (MIGRATION_STEP_SINCE.to_string(), format_time(now)),
    ])
}

/// [`MIGRATION_ROLLBACKS`] for this fingerprint; another fingerprint counts zero.
pub fn migration_rollbacks(tags: &BTreeMap<String, String>, fingerprint: &str) -> u32 {
    tags.get(MIGRATION_ROLLBACKS)
        .and_then(|v| v.split_once('@'))
        .filter(|(_, fp)| *fp == fingerprint)
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}

pub fn migration_rollbacks_value(count: u32, fingerprint: &str) -> String {
    format!("{count}@{fingerprint}")
}

/// The phase recorded in the [`DECOMMISSION`] tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Pending,
    Stopped,
    Terminating,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Stopped => "stopped",
            Self::Terminating => "terminating",
        }
    }
}

/// `<phase>@<RFC 3339>`: the value of the [`DECOMMISSION`] tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub phase: Phase,
    pub since: SystemTime,
}

impl Clock {
    pub fn parse(value: &str) -> Option<Clock> {
        let (phase, at) = value.split_once('@')?;
        let phase = match phase {
            "pending" => Phase::Pending,
            "stopped" => Phase::Stopped,
            "terminating" => Phase::Terminating,
            _ => return None,
        };
        Some(Clock {
            phase,
            since: parse_time(at)?,
        })
    }
    pub fn format(&self) -> String {
        format!("{}@{}", self.phase.as_str(), format_time(self.since))
    }
}

/// `<target group name>:<port>` pairs, comma-separated, in the
/// [`DECOMMISSION_LEFT`] tag: where to register the instance again if it
/// stops being a candidate. Names, not ARNs: five ARNs would not fit in a tag.
pub fn encode_left(entries: &BTreeSet<(String, Option<i32>)>) -> String {
    entries
        .iter()
        .map(|(name, port)| match port {
            Some(p) => format!("{name}:{p}"),
            None => name.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn decode_left(value: &str) -> BTreeSet<(String, Option<i32>)> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|e| match e.rsplit_once(':') {
            Some((name, port)) => match port.parse() {
                Ok(p) => (name.to_string(), Some(p)),
                Err(_) => (e.to_string(), None),
            },
            None => (e.to_string(), None),
        })
        .collect()
}

/// `<cluster>/<service>`, as in [`DECOMMISSION_FOR`] and [`INSTANCE_SERVICE`].
pub fn parse_service(value: &str) -> Option<ServiceKey> {
    let (cluster, name) = value.split_once('/')?;
    (!cluster.is_empty() && !name.is_empty()).then(|| ServiceKey {
        cluster: cluster.to_string(),
        name: name.to_string(),
    })
}

/// How a pre-deploy hook ended, as recorded in [`HOOK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HookResult {
    Succeeded,
    Failed,
}

impl HookResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// The value of [`HOOK`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRecord {
    pub name: String,
    pub revision: String,
    pub result: HookResult,
}

impl HookRecord {
    pub fn parse(value: &str) -> Option<HookRecord> {
        let (rest, result) = value.rsplit_once(':')?;
        let (name, revision) = rest.rsplit_once('@')?;
        let result = match result {
            "succeeded" => HookResult::Succeeded,
            "failed" => HookResult::Failed,
            _ => return None,
        };
        (!name.is_empty() && !revision.is_empty()).then(|| HookRecord {
            name: name.to_string(),
            revision: revision.to_string(),
            result,
        })
    }
    pub fn format(&self) -> String {
        format!("{}@{}:{}", self.name, self.revision, self.result.as_str())
    }
    /// [`HOOK`] read from a resource's tags.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Option<HookRecord> {
        HookRecord::parse(tags.get(HOOK)?)
    }
}

/// The value of [`HOOK_TASK`].
pub fn hook_task_value(name: &str, revision: &str) -> String {
    format!("{name}@{revision}")
}

/// [`HOOK_TASK`] read back: (hook, revision).
pub fn parse_hook_task(value: &str) -> Option<(String, String)> {
    let (name, revision) = value.rsplit_once('@')?;
    Some((name.to_string(), revision.to_string()))
}

/// Free text as a tag value: characters tags do not allow become spaces,
/// and it is cut to [`MAX_TAG_VALUE`].
pub fn tag_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || " +-=._:/@".contains(c) {
                c
            } else {
                ' '
            }
        })
        .take(MAX_TAG_VALUE)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hook_tags_round_trip() {
        let r = HookRecord {
            name: "db-migrate".into(),
            revision: "0123456789abcdef".into(),
            result: HookResult::Failed,
        };
        assert_eq!(r.format(), "db-migrate@0123456789abcdef:failed");
        assert_eq!(HookRecord::parse(&r.format()), Some(r));
        assert_eq!(HookRecord::parse("migrate@abc:maybe"), None);
        assert_eq!(HookRecord::parse("migrate:succeeded"), None);
        assert_eq!(HookRecord::parse("@abc:succeeded"), None);
        assert_eq!(
            parse_hook_task(&hook_task_value("migrate", "abc")),
            Some(("migrate".into(), "abc".into()))
        );
        assert_eq!(tag_text("exit 1: \"boom\" (oom)"), "exit 1:  boom   oom");
        assert_eq!(tag_text(&"x".repeat(300)).len(), MAX_TAG_VALUE);
        assert_eq!(tag_len(&tag_text(&"é".repeat(300))), MAX_TAG_VALUE);
    }

    #[test]
    fn tag_values_are_measured_in_characters_as_aws_counts_them() {
        // 100 two-byte keys: 200 bytes each, too long in bytes, fine in characters.
        let keys: BTreeSet<String> = ["é".repeat(100), "ü".repeat(100)].into_iter().collect();
        let record = encode_managed_tags(&keys);
        assert_eq!(record.len(), 1, "{record:?}");
        assert!(record.values().all(|v| tag_len(v) <= MAX_TAG_VALUE));
        assert_eq!(decode_managed_tags(&record), Some(keys));
        let arn = "arn:aws:ecs:us-east-1:1:task-definition/web:7";
        assert!(task_definition_tag(arn, &"ä".repeat(240)).is_some());
        assert!(task_definition_tag(arn, &"ä".repeat(251)).is_none());
    }

    #[test]
    fn the_managed_tag_record_round_trips_any_key_and_spills_over() {
        let keys: BTreeSet<String> = ["team", "cost center", "a+b", "x:y/z@w=v"]
            .into_iter()
            .map(String::from)
            .collect();
        let record = encode_managed_tags(&keys);
        assert_eq!(record.len(), 1);
        assert_eq!(record[MANAGED_TAGS], "a+pb cost+scenter team x:y/z@w=v");
        assert_eq!(decode_managed_tags(&record), Some(keys));

        let long: BTreeSet<String> = (0..40)
            .map(|i| format!("{i:02}{}", "k".repeat(120)))
            .collect();
        let record = encode_managed_tags(&long);
        assert!(record.len() > 1, "{record:?}");
        assert!(record.values().all(|v| v.len() <= MAX_TAG_VALUE));
        assert!(record.contains_key("ecsync.io/managed-tags.2"));
        assert_eq!(decode_managed_tags(&record), Some(long));
        assert_eq!(
            managed_tags_beyond(&record, 1).len(),
            record.len() - 1,
            "a record that shrinks to one value leaves the rest stale"
        );

        let none = encode_managed_tags(&BTreeSet::new());
        assert_eq!(
            none,
            BTreeMap::from([(MANAGED_TAGS.to_string(), String::new())])
        );
        assert_eq!(decode_managed_tags(&none), Some(BTreeSet::new()));
        assert_eq!(decode_managed_tags(&BTreeMap::new()), None);
    }
    use super::*;
    use std::time::Duration;

    #[test]
    fn task_definition_tag_round_trips_only_for_the_same_revision() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7";
        let tag = task_definition_tag(arn, "abc123").unwrap();
        assert_eq!(tag, "web:7@abc123");
        assert_eq!(hash_for(&tag, arn).as_deref(), Some("abc123"));
        let other = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:8";
        assert_eq!(hash_for(&tag, other), None);
        assert_eq!(hash_for("garbage", arn), None);
    }

    #[test]
    fn one_clock_format_with_milliseconds_that_still_reads_seconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_750_000_000_123);
        assert_eq!(format_time(t), "2025-06-15T15:06:40.123Z");
        assert_eq!(parse_time(&format_time(t)), Some(t));
        let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        assert_eq!(parse_time("2025-06-15T15:06:40Z"), Some(whole));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn step_and_rollback_tags_round_trip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_750_000_000_500);
        let tags = migration_step_tags(2, t);
        assert_eq!(migration_step(&tags), Some(2));
        assert_eq!(migration_step_since(&tags), Some(t));
        let mut tags = BTreeMap::new();
        tags.insert(
            MIGRATION_ROLLBACKS.to_string(),
            migration_rollbacks_value(2, "abc"),
        );
        assert_eq!(migration_rollbacks(&tags, "abc"), 2);
        assert_eq!(migration_rollbacks(&tags, "def"), 0);
    }

    #[test]
    fn protection_and_ownership() {
        let tags = BTreeMap::from([
            (PROTECT.to_string(), "true".to_string()),
            (MANAGED_BY.to_string(), "ecsync".to_string()),
        ]);
        assert!(is_protected(&tags));
        assert!(is_managed_by(&tags, "ecsync"));
        assert!(!is_managed_by(&tags, "other"));
        assert!(!is_protected(&BTreeMap::from([(
            PROTECT.to_string(),
            "yes".to_string()
        )])));
    }
}
