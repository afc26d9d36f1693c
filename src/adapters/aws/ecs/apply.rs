//! The applier: carries out one service's planned actions, in order. Each step
//! is idempotent on its own, so a crash between steps converges on the next pass.

use std::collections::BTreeMap;

use tracing::info;

use crate::adapters::aws::{AwsError, Clients, call_error, convert};
use crate::core::manifest::DesiredService;
use crate::core::plan::{Action, ActionKind, ServicePlan, cleared, resolve_target_groups};
use crate::core::tags;

pub struct ApplyContext<'a> {
    pub controller_id: &'a str,
    pub revision: &'a str,
    pub target_groups: &'a BTreeMap<String, String>,
}

/// What was done for one service.
#[derive(Debug, Default)]
pub struct Applied {
    pub done: Vec<ActionKind>,
    pub task_definition_arn: Option<String>,
}

/// The live service a plan acts on, as far as the applier needs it.
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    pub arn: &'a str,
    /// DAEMON: ECS owns the count, so it is never set, not even to 0.
    pub daemon: bool,
}

pub async fn apply_service(
    clients: &Clients,
    desired: &DesiredService,
    plan: &ServicePlan,
    live: Option<Live<'_>>,
    ctx: &ApplyContext<'_>,
    applied: &mut Applied,
) -> Result<(), AwsError> {
    let live_arn = live.map(|l| l.arn);
    let key = &desired.key;
    // Where `ignoreDifferences` keeps live values, those are what is sent.
    let (base, hash) = match &plan.effective {
        Some(e) => (&e.spec, e.task_definition_hash.as_str()),
        None => (&desired.spec, desired.task_definition_hash.as_str()),
    };
    let spec =
        resolve_target_groups(base, ctx.target_groups).map_err(|message| AwsError::Call {
            operation: "resolve target groups",
            code: None,
            message,
        })?;
    let mut service_arn = live_arn.map(str::to_string);
    let why: Vec<&str> = plan.drift.iter().map(|d| d.path.as_str()).collect();

    for action in &plan.actions {
        match action {
            Action::RegisterTaskDefinition { family } => {
                let arn = register_task_definition(
                    clients,
                    &spec.task_definition,
                    hash,
                    ctx.controller_id,
                )
                .await?;
                info!(cluster = %key.cluster, service = %key.name, %family, task_definition = %arn,
                      hash = %hash, "registered task definition");
                applied.task_definition_arn = Some(arn);
            }
            Action::CreateService => {
                let count = (!spec.is_daemon()).then(|| spec.desired_count.unwrap_or(1));
                service_arn = create_service(
                    clients, desired, &spec, ctx, &key.name, count, applied, None,
                )
                .await?;
            }
            Action::CreateReplacement {
                name,
                desired_count,
            } => {
                create_service(
                    clients,
                    desired,
                    &spec,
                    ctx,
                    name,
                    *desired_count,
                    applied,
                    Some(&key.name),
                )
                .await?;
            }
            Action::UpdateService { fields } => {
                let id = convert::ServiceIdentity {
                    cluster: &key.cluster,
                    name: &key.name,
                    task_definition: applied.task_definition_arn.as_deref().unwrap_or_default(),
                };
                convert::update_service(&spec, &id, fields, cleared)?
                    .send_with(&clients.ecs)
                    .await
                    .map_err(|e| call_error("ECS:UpdateService", e))?;
                info!(cluster = %key.cluster, service = %key.name, fields = ?fields, drift = ?why,
                      "updated service");
            }
            Action::TagService { tags: set } => {
                let mut set = set.clone();
                if let Some(td) = &applied.task_definition_arn
                    && let Some(v) = tags::task_definition_tag(td, hash)
                {
                    set.insert(tags::TASK_DEFINITION.into(), v);
                }
                let arn = service_arn.clone().unwrap_or_default();
                clients
                    .ecs
                    .tag_resource()
                    .resource_arn(&arn)
                    .set_tags(Some(convert::sdk_tags(&set)))
                    .send()
                    .await
                    .map_err(|e| call_error("ECS:TagResource", e))?;
                let keys: Vec<&String> = set.keys().collect();
                info!(cluster = %key.cluster, service = %key.name, tags = ?keys, "tagged service");
            }
            Action::PruneService => {
                let daemon = live.is_some_and(|l| l.daemon);
                return prune_service(clients, plan, daemon, applied).await;
            }
            Action::UntagService { keys } => {
                let arn = service_arn.clone().unwrap_or_default();
                clients
                    .ecs
                    .untag_resource()
                    .resource_arn(&arn)
                    .set_tag_keys(Some(keys.clone()))
                    .send()
                    .await
                    .map_err(|e| call_error("ECS:UntagResource", e))?;
                info!(cluster = %key.cluster, service = %key.name, tags = ?keys, "untagged service");
            }
        }
        applied.done.push(action.kind());
    }
    Ok(())
}

/// Create `name` from the desired spec (the service itself, or the stand-in
/// that serves while it is replaced); returns the new service's ARN.
#[allow(clippy::too_many_arguments)]
async fn create_service(
    clients: &Clients,
    desired: &DesiredService,
    spec: &crate::core::model::ServiceSpec,
    ctx: &ApplyContext<'_>,
    name: &str,
    desired_count: Option<i32>,
    applied: &Applied,
    replacement_of: Option<&str>,
) -> Result<Option<String>, AwsError> {
    let key = &desired.key;
    let td = applied.task_definition_arn.clone().unwrap_or_default();
    let mut all_tags = spec.tag_map();
    let own_keys = all_tags.keys().cloned().collect();
    all_tags.extend(tags::encode_managed_tags(&own_keys));
    all_tags.insert(tags::MANAGED_BY.into(), ctx.controller_id.into());
    all_tags.insert(tags::REVISION.into(), ctx.revision.into());
    all_tags.insert(tags::SOURCE.into(), desired.source.clone());
    if desired.policy.prune_disabled {
        all_tags.insert(tags::PRUNE.into(), "disabled".into());
    }
    if let Some(v) = tags::task_definition_tag(&td, &desired.task_definition_hash) {
        all_tags.insert(tags::TASK_DEFINITION.into(), v);
    }
    if let Some(original) = replacement_of {
        all_tags.insert(tags::REPLACEMENT_OF.into(), original.into());
    }
    let id = convert::ServiceIdentity {
        cluster: &key.cluster,
        name,
        task_definition: &td,
    };
    let out = convert::create_service(spec, &id, desired_count, &all_tags)?
        .send_with(&clients.ecs)
        .await
        .map_err(|e| call_error("ECS:CreateService", e))?;
    info!(cluster = %key.cluster, service = %name, task_definition = %td,
          source = %desired.source, replacement_of = ?replacement_of, "created service");
    Ok(out
        .service()
        .and_then(|s| s.service_arn())
        .map(str::to_string))
}

/// Scale a service to zero (unless it is a daemon), then delete it. Only ever
/// planned for services whose `ecsync.io/managed-by` tag names this
/// controller (DESIGN §5).
pub async fn prune_service(
    clients: &Clients,
    plan: &ServicePlan,
    daemon: bool,
    applied: &mut Applied,
) -> Result<(), AwsError> {
    let key = &plan.key;
    // A daemon has no count to lower (ECS refuses desiredCount for it) and
    // DeleteService drains it as it is.
    if !daemon {
        clients
            .ecs
            .update_service()
            .cluster(&key.cluster)
            .service(&key.name)
            .desired_count(0)
            .send()
            .await
            .map_err(|e| call_error("ECS:UpdateService", e))?;
    }
    clients
        .ecs
        .delete_service()
        .cluster(&key.cluster)
        .service(&key.name)
        .send()
        .await
        .map_err(|e| call_error("ECS:DeleteService", e))?;
    info!(cluster = %key.cluster, service = %key.name, source = ?plan.source,
          "pruned service: scaled to 0 and deleted, its manifest is gone from Git");
    applied.done.push(ActionKind::PruneService);
    Ok(())
}

/// Register a definition with ecsync's bookkeeping beside its own tags (the
/// owner, the content hash, and which tag keys are the manifest's); the
/// new revision's ARN.
pub async fn register_task_definition(
    clients: &Clients,
    td: &crate::core::model::TaskDefinition,
    hash: &str,
    controller_id: &str,
) -> Result<String, AwsError> {
    let mut td_tags = BTreeMap::from([
        (tags::MANAGED_BY.to_string(), controller_id.to_string()),
        (tags::SPEC_HASH.to_string(), hash.to_string()),
    ]);
    let declared = crate::core::model::tag_map(td.tags.as_deref().unwrap_or_default());
    td_tags.extend(tags::encode_managed_tags(&declared.into_keys().collect()));
    let out = convert::register_task_definition(td, &td_tags)?
        .send_with(&clients.ecs)
        .await
        .map_err(|e| call_error("ECS:RegisterTaskDefinition", e))?;
    Ok(out
        .task_definition()
        .and_then(|td| td.task_definition_arn())
        .unwrap_or_default()
        .to_string())
}
