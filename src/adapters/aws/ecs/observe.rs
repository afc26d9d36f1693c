//! Observation: what is live in ECS, with as few calls as the APIs allow.
//!
//! Per cluster: ListServices (100 per page) and DescribeServices (10 per call,
//! tags included), through [`super::services`]. Task definitions are
//! immutable, so each ARN is described at most once per process, and not at
//! all when the service's tag already records the content hash of the
//! revision it runs. Then every target group name the manifests use is
//! resolved in one batch ([`elbv2::resolve_target_groups`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_ecs::types as ecs;
use tokio::task::JoinSet;

use super::services;
use crate::adapters::aws::{AwsError, Clients, call_error, convert, elbv2};
use crate::core::manifest::{DesiredService, task_definition_hash};
use crate::core::model::{ServiceKey, TaskDefinition};
use crate::core::normalize;
use crate::core::plan::{LiveService, LiveTaskDefinition, Observed};
use crate::core::shard::Shard;
use crate::core::state::{Rollout, RolloutState, ServiceStatus};
use crate::core::tags;
/// Concurrent read calls per pass: enough to hide latency, few enough not to
/// trip ECS's per-account rate limits on their own.
const READ_CONCURRENCY: usize = 8;

/// A normalised task definition and its content hash.
/// A described definition: normalised, its content hash, and the paths the
/// manifest model could not keep of it.
type Known = (
    Arc<TaskDefinition>,
    String,
    Arc<Vec<String>>,
    Option<BTreeSet<String>>,
);

/// Normalised task definitions by ARN; valid forever because ARNs are immutable.
#[derive(Clone, Default, Debug)]
pub struct TaskDefinitionCache {
    inner: Arc<Mutex<HashMap<String, Known>>>,
}

impl TaskDefinitionCache {
    fn get(&self, arn: &str) -> Option<Known> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(arn)
            .cloned()
    }
    fn put(
        &self,
        arn: String,
        td: TaskDefinition,
        hash: String,
        unmanaged: Vec<String>,
        own_tags: Option<BTreeSet<String>>,
    ) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(arn, (Arc::new(td), hash, Arc::new(unmanaged), own_tags));
    }
    /// A described revision's normalised content and hash, if known.
    pub fn content(&self, arn: &str) -> Option<(Arc<TaskDefinition>, String)> {
        self.get(arn).map(|(td, hash, ..)| (td, hash))
    }
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What to look at.
pub struct Scope<'a> {
    pub clusters: BTreeSet<String>,
    /// Also look at every other cluster in the account (ListClusters).
    pub all_clusters: bool,
    pub desired: &'a [Arc<DesiredService>],
    /// With sharding, the clusters ListClusters finds are this shard's only.
    pub shard: Option<Shard>,
}

pub async fn observe(
    clients: &Clients,
    scope: &Scope<'_>,
    cache: &TaskDefinitionCache,
) -> Result<Observed, AwsError> {
    let mut observed = Observed::default();
    let mut existing = if scope.clusters.is_empty() {
        BTreeSet::new()
    } else {
        existing_clusters(clients, &scope.clusters).await?
    };
    observed.missing_clusters = scope.clusters.difference(&existing).cloned().collect();
    if scope.all_clusters {
        let listed = list_clusters(clients).await?;
        existing.extend(
            listed
                .into_iter()
                .filter(|c| scope.shard.is_none_or(|s| s.owns(c))),
        );
    }

    // One bound for the reads of every cluster: a per-cluster bound would multiply with the
    // number of clusters.
    let reads = Arc::new(tokio::sync::Semaphore::new(READ_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for cluster in existing {
        let clients = clients.clone();
        let reads = reads.clone();
        tasks.spawn(async move {
            let services = cluster_services(&clients, &cluster, &reads).await;
            (cluster, services)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (cluster, result) = joined.map_err(|e| AwsError::lost("reading a cluster", e))?;
        for svc in result? {
            let live = live_service(&svc, &cluster, cache)?;
            observed.services.insert(live.key.clone(), live);
        }
    }

    describe_unknown_task_definitions(clients, scope, &mut observed, cache).await?;
    observed.target_groups =
        elbv2::resolve_target_groups(clients, &target_group_names(scope.desired)).await?;
    Ok(observed)
}

/// A targeted look at `scope.desired` only: DescribeServices by name, 10 a
/// call per cluster, and no ListServices or ListClusters. A service ECS does
/// not find is simply absent, so the plan creates it.
pub async fn observe_named(
    clients: &Clients,
    scope: &Scope<'_>,
    cache: &TaskDefinitionCache,
) -> Result<Observed, AwsError> {
    let mut observed = Observed::default();
    let existing = if scope.clusters.is_empty() {
        BTreeSet::new()
    } else {
        existing_clusters(clients, &scope.clusters).await?
    };
    observed.missing_clusters = scope.clusters.difference(&existing).cloned().collect();
    let mut names: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for d in scope.desired {
        if existing.contains(&d.key.cluster) {
            names
                .entry(d.key.cluster.as_str())
                .or_default()
                .push(d.key.name.clone());
        }
    }
    let reads = Arc::new(tokio::sync::Semaphore::new(READ_CONCURRENCY));
    for (cluster, names) in names {
        let described = services::describe(clients, cluster, &names, &reads).await?;
        if let Some(f) = described
            .failures
            .iter()
            .find(|f| f.reason() != Some("MISSING"))
        {
            return Err(AwsError::Incomplete(format!(
                "DescribeServices in {cluster}: {} {}",
                f.arn().unwrap_or_default(),
                f.reason().unwrap_or("failed")
            )));
        }
        for svc in &described.services {
            let live = live_service(svc, cluster, cache)?;
            observed.services.insert(live.key.clone(), live);
        }
    }
    describe_unknown_task_definitions(clients, scope, &mut observed, cache).await?;
    observed.target_groups =
        elbv2::resolve_target_groups(clients, &target_group_names(scope.desired)).await?;
    Ok(observed)
}

async fn existing_clusters(
    clients: &Clients,
    names: &BTreeSet<String>,
) -> Result<BTreeSet<String>, AwsError> {
    let mut found = BTreeSet::new();
    let names: Vec<String> = names.iter().cloned().collect();
    for chunk in names.chunks(100) {
        let out = clients
            .ecs
            .describe_clusters()
            .set_clusters(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| call_error("ECS:DescribeClusters", e))?;
        for c in out.clusters() {
            if c.status() == Some("ACTIVE")
                && let Some(name) = c.cluster_name()
            {
                found.insert(name.to_string());
            }
        }
    }
    Ok(found)
}

async fn list_clusters(clients: &Clients) -> Result<Vec<String>, AwsError> {
    let mut names = Vec::new();
    let mut pages = clients.ecs.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("ECS:ListClusters", e))?;
        names.extend(
            page.cluster_arns()
                .iter()
                .filter_map(|arn| arn.rsplit_once('/').map(|(_, name)| name.to_string())),
        );
    }
    Ok(names)
}

/// Every call here holds a permit of `reads`, shared by all clusters of the pass.
async fn cluster_services(
    clients: &Clients,
    cluster: &str,
    reads: &Arc<tokio::sync::Semaphore>,
) -> Result<Vec<ecs::Service>, AwsError> {
    let arns = services::list(clients, cluster, reads).await?;
    let described = services::describe(clients, cluster, &arns, reads).await?;
    // MISSING: deleted between ListServices and DescribeServices, so absent.
    // Anything else means a service was listed and could not be seen.
    if let Some(f) = described
        .failures
        .iter()
        .find(|f| f.reason() != Some("MISSING"))
    {
        return Err(AwsError::Incomplete(format!(
            "DescribeServices in {cluster}: {} {}",
            f.arn().unwrap_or_default(),
            f.reason().unwrap_or("failed")
        )));
    }
    Ok(described.services)
}

fn live_service(
    s: &ecs::Service,
    cluster: &str,
    cache: &TaskDefinitionCache,
) -> Result<LiveService, AwsError> {
    let mut spec = convert::service_spec_from_sdk(s, cluster)?;
    let all_tags = spec.tag_map();
    normalize::normalize_service(&mut spec);
    let td_arn = s.task_definition().unwrap_or_default().to_string();
    let task_definition = match cache.get(&td_arn) {
        Some(known) => described(known),
        None => all_tags
            .get(tags::TASK_DEFINITION)
            .and_then(|v| tags::hash_for(v, &td_arn))
            .map_or(LiveTaskDefinition::Unknown, LiveTaskDefinition::Hash),
    };
    Ok(LiveService {
        key: ServiceKey {
            cluster: cluster.to_string(),
            name: s.service_name().unwrap_or_default().to_string(),
        },
        arn: s.service_arn().unwrap_or_default().to_string(),
        status: ServiceStatus::parse(s.status().unwrap_or_default()),
        spec,
        task_definition_arn: td_arn,
        task_definition,
        tags: all_tags,
        rollout: rollout(s),
    })
}

fn rollout(s: &ecs::Service) -> Rollout {
    let primary = s
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"));
    Rollout {
        rollout_state: primary
            .and_then(|d| d.rollout_state())
            .and_then(|r| RolloutState::parse(r.as_str())),
        rollout_reason: primary.and_then(|d| d.rollout_state_reason().map(str::to_string)),
        deployments: s.deployments().len(),
        desired: s.desired_count(),
        running: s.running_count(),
        pending: s.pending_count(),
    }
}

/// Describe the live task definitions whose content is not known yet but
/// matters: those of desired services that do not visibly match.
async fn describe_unknown_task_definitions(
    clients: &Clients,
    scope: &Scope<'_>,
    observed: &mut Observed,
    cache: &TaskDefinitionCache,
) -> Result<(), AwsError> {
    let mut wanted = BTreeSet::new();
    for d in scope.desired {
        if let Some(live) = observed.services.get(&d.key)
            && live.is_active()
        {
            let needs = match &live.task_definition {
                LiveTaskDefinition::Unknown => true,
                LiveTaskDefinition::Hash(h) => h != &d.task_definition_hash,
                LiveTaskDefinition::Described { .. } => false,
            };
            if needs && !live.task_definition_arn.is_empty() {
                wanted.insert(live.task_definition_arn.clone());
            }
        }
    }
    describe_task_definitions(clients, wanted, cache).await?;
    for live in observed.services.values_mut() {
        if let Some(known) = cache.get(&live.task_definition_arn) {
            live.task_definition = described(known);
        }
    }
    Ok(())
}

/// Describe these task definitions (tags included) into the cache: each ARN
/// once per process, since a revision never changes.
pub async fn describe_task_definitions(
    clients: &Clients,
    wanted: BTreeSet<String>,
    cache: &TaskDefinitionCache,
) -> Result<(), AwsError> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(READ_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for arn in wanted {
        let ecs = clients.ecs.clone();
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let out = ecs
                .describe_task_definition()
                .task_definition(&arn)
                .include(ecs::TaskDefinitionField::Tags)
                .send()
                .await
                .map_err(|e| call_error("ECS:DescribeTaskDefinition", e))?;
            let td = out
                .task_definition()
                .map(|td| convert::read_task_definition(td, out.tags()));
            let own_tags = tags::decode_managed_tags(&convert::tags_from_sdk(out.tags()));
            Ok::<_, AwsError>((arn, td, own_tags))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (arn, td, own_tags) =
            joined.map_err(|e| AwsError::lost("describing a task definition", e))??;
        let Some((mut td, unmanaged)) = td else {
            return Err(AwsError::Incomplete(format!(
                "DescribeTaskDefinition answered {arn} without a definition"
            )));
        };
        normalize::normalize_task_definition(&mut td);
        let hash = task_definition_hash(&td);
        cache.put(arn, td, hash, unmanaged, own_tags);
    }
    Ok(())
}

fn described((td, hash, unmanaged, own_tags): Known) -> LiveTaskDefinition {
    LiveTaskDefinition::Described {
        spec: Box::new((*td).clone()),
        hash,
        unmanaged: (*unmanaged).clone(),
        own_tags,
    }
}

/// Every target group the manifests name: the services' own and their
/// migrations' legacy groups.
fn target_group_names(desired: &[Arc<DesiredService>]) -> BTreeSet<String> {
    desired
        .iter()
        .flat_map(|d| {
            let own = d
                .spec
                .load_balancers
                .iter()
                .flatten()
                .filter_map(|lb| lb.target_group_arn.clone());
            let legacy = d.spec.migration.iter().map(|m| m.from.target_group.clone());
            own.chain(legacy)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::operation::describe_clusters::DescribeClustersOutput;
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::types as ecs;
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::DescribeTargetGroupsOutput;
    use aws_sdk_elasticloadbalancingv2::types::TargetGroup;
    use aws_smithy_mocks::mock;

    use super::{Scope, TaskDefinitionCache, observe_named};
    use crate::adapters::aws::tests::mocked;
    use crate::core::manifest::load;

    /// A targeted look names its services to DescribeServices and lists nothing
    /// (no ListServices rule here: such a call would fail the observation); a
    /// name ECS does not know is absent, anything else it could not describe
    /// fails the observation rather than passing for a missing service.
    #[tokio::test]
    async fn a_targeted_look_describes_by_name_and_lists_nothing() {
        let web = crate::core::manifest::tests::WEB;
        let api = web
            .replacen("name: web", "name: api", 1)
            .replace("family: web", "family: api");
        let set = load([("web.yaml", web), ("api.yaml", api.as_str())]);
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        let observe_with = |reason: &'static str| {
            let clusters = mock!(aws_sdk_ecs::Client::describe_clusters).then_output(|| {
                DescribeClustersOutput::builder()
                    .clusters(
                        ecs::Cluster::builder()
                            .cluster_name("prod")
                            .status("ACTIVE")
                            .build(),
                    )
                    .build()
            });
            let describe = mock!(aws_sdk_ecs::Client::describe_services)
                .match_requests(|r| {
                    r.cluster() == Some("prod") && {
                        let mut names = r.services().to_vec();
                        names.sort();
                        names == ["api", "web"]
                    }
                })
                .then_output(move || {
                    DescribeServicesOutput::builder()
                        .services(
                            ecs::Service::builder()
                                .service_name("web")
                                .service_arn("arn:aws:ecs:us-east-1:1:service/prod/web")
                                .status("ACTIVE")
                                .build(),
                        )
                        .failures(
                            ecs::Failure::builder()
                                .arn("arn:aws:ecs:us-east-1:1:service/prod/api")
                                .reason(reason)
                                .build(),
                        )
                        .build()
                });
            // Only the target groups the named services use.
            let groups = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_groups)
                .match_requests(|r| r.names() == ["web-ecs"])
                .then_output(|| {
                    DescribeTargetGroupsOutput::builder()
                        .target_groups(
                            TargetGroup::builder()
                                .target_group_name("web-ecs")
                                .target_group_arn(
                                    "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-ecs/1",
                                )
                                .build(),
                        )
                        .build()
                });
            let set = &set;
            async move {
                let clients = mocked(&[&clusters, &describe, &groups]);
                let scope = Scope {
                    clusters: ["prod".to_string()].into(),
                    all_clusters: false,
                    desired: &set.services,
                    shard: None,
                };
                observe_named(&clients, &scope, &TaskDefinitionCache::default()).await
            }
        };
        let seen = observe_with("MISSING")
            .await
            .expect("a service ECS does not know is simply absent");
        let names: Vec<&str> = seen.services.keys().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["web"]);
        assert_eq!(seen.target_groups.len(), 1);
        let err = observe_with("ACCESS_DENIED")
            .await
            .expect_err("a service that could not be seen fails the observation");
        assert!(err.to_string().contains("ACCESS_DENIED"), "{err}");
    }
}
