//! The AWS tags through which ecsync keeps ownership and state (DESIGN §4).

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
/// On an EC2 instance being decommissioned: `<cluster>/<service>` whose migration
/// (or pruning) made it a candidate, so a broken manifest holds exactly its instances.
pub const DECOMMISSION_FOR: &str = "ecsync.io/decommission-for";
/// On an EC2 instance being decommissioned: the target groups (`name:port`, comma
/// separated) it was deregistered from, so it can be registered again if it stops
/// being a candidate (for instance, the migration rolls back).
pub const DECOMMISSION_LEFT: &str = "ecsync.io/decommission-left";
/// On an EC2 instance ecsync owns (with `managed-by`): the `<cluster>/<service>` it
/// serves. When that service leaves Git, `--prune` decommissions the instance.
pub const INSTANCE_SERVICE: &str = "ecsync.io/service";
/// `<family>:<revision>@<content hash>` of the task definition ecsync last put
/// on the service: while the service still runs that revision, its content is
/// known without a DescribeTaskDefinition call.
pub const TASK_DEFINITION: &str = "ecsync.io/task-definition";
/// On the stand-in service `<name>-ecsync-next` that serves while `<name>` is
/// replaced: the name of the service it stands in for.
pub const REPLACEMENT_OF: &str = "ecsync.io/replacement-of";
/// On task definitions ecsync registers: the content hash.
pub const SPEC_HASH: &str = "ecsync.io/spec-hash";

/// AWS caps tag values at 256 characters.
const MAX_TAG_VALUE: usize = 256;

/// `family:revision` from a task definition ARN (or the string itself).
pub fn family_revision(arn: &str) -> &str {
    arn.rsplit_once("task-definition/")
        .map_or(arn, |(_, fr)| fr)
}

/// The value of the [`TASK_DEFINITION`] tag, if it fits in a tag.
pub fn task_definition_tag(task_definition_arn: &str, hash: &str) -> Option<String> {
    let v = format!("{}@{hash}", family_revision(task_definition_arn));
    (v.len() <= MAX_TAG_VALUE).then_some(v)
}

/// The content hash the tag records for `task_definition_arn`, if the tag is
/// about that very revision.
pub fn hash_for(tag_value: &str, task_definition_arn: &str) -> Option<String> {
    let (fr, hash) = tag_value.rsplit_once('@')?;
    (fr == family_revision(task_definition_arn) && !hash.is_empty()).then(|| hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
