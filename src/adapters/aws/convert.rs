//! Translation between the manifest model and the ECS SDK's types, both ways.
//! Kept mechanical on purpose: all judgement lives in `normalize`.

use std::collections::BTreeMap;

use aws_sdk_ecs::types as ecs;

use crate::core::model::*;

fn vec_or_none<T, U>(items: &[T], f: impl Fn(&T) -> U) -> Option<Vec<U>> {
    (!items.is_empty()).then(|| items.iter().map(f).collect())
}

fn strings(items: &[String]) -> Option<Vec<String>> {
    vec_or_none(items, Clone::clone)
}

fn secret_from(s: &ecs::Secret) -> Secret {
    Secret {
        name: s.name().to_string(),
        value_from: s.value_from().to_string(),
    }
}

// ---- live → model -------------------------------------------------------

pub fn task_definition_from_sdk(td: &ecs::TaskDefinition) -> TaskDefinition {
    TaskDefinition {
        family: td.family().unwrap_or_default().to_string(),
        task_role_arn: td.task_role_arn().map(str::to_string),
        execution_role_arn: td.execution_role_arn().map(str::to_string),
        network_mode: td.network_mode().map(|m| m.as_str().to_string()),
        cpu: td.cpu().map(str::to_string),
        memory: td.memory().map(str::to_string),
        requires_compatibilities: vec_or_none(td.requires_compatibilities(), |c| {
            c.as_str().to_string()
        }),
        container_definitions: td
            .container_definitions()
            .iter()
            .map(container_from_sdk)
            .collect(),
        volumes: vec_or_none(td.volumes(), |v| Volume {
            name: v.name().unwrap_or_default().to_string(),
            host: v.host().map(|h| HostVolume {
                source_path: h.source_path().map(str::to_string),
            }),
        }),
        runtime_platform: td.runtime_platform().map(|rp| RuntimePlatform {
            cpu_architecture: rp.cpu_architecture().map(|a| a.as_str().to_string()),
            operating_system_family: rp.operating_system_family().map(|o| o.as_str().to_string()),
        }),
        ephemeral_storage: td.ephemeral_storage().map(|e| EphemeralStorage {
            size_in_gib: e.size_in_gib(),
        }),
        pid_mode: td.pid_mode().map(|p| p.as_str().to_string()),
        ipc_mode: td.ipc_mode().map(|p| p.as_str().to_string()),
        ..Default::default()
    }
}

fn container_from_sdk(c: &ecs::ContainerDefinition) -> ContainerDefinition {
    ContainerDefinition {
        name: c.name().unwrap_or_default().to_string(),
        image: c.image().unwrap_or_default().to_string(),
        cpu: Some(c.cpu()),
        memory: c.memory(),
        memory_reservation: c.memory_reservation(),
        essential: c.essential(),
        port_mappings: vec_or_none(c.port_mappings(), |p| PortMapping {
            container_port: p.container_port().unwrap_or_default(),
            host_port: p.host_port(),
            protocol: p.protocol().map(|p| p.as_str().to_string()),
            name: p.name().map(str::to_string),
            app_protocol: p.app_protocol().map(|p| p.as_str().to_string()),
        }),
        environment: vec_or_none(c.environment(), |kv| KeyValuePair {
            name: kv.name().unwrap_or_default().to_string(),
            value: kv.value().map(str::to_string),
        }),
        secrets: vec_or_none(c.secrets(), secret_from),
        command: strings(c.command()),
        entry_point: strings(c.entry_point()),
        working_directory: c.working_directory().map(str::to_string),
        user: c.user().map(str::to_string),
        log_configuration: c.log_configuration().map(|lc| LogConfiguration {
            log_driver: lc.log_driver().as_str().to_string(),
            options: lc
                .options()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            secret_options: vec_or_none(lc.secret_options(), secret_from),
        }),
        health_check: c.health_check().map(|hc| HealthCheck {
            command: hc.command().to_vec(),
            interval: hc.interval(),
            timeout: hc.timeout(),
            retries: hc.retries(),
            start_period: hc.start_period(),
        }),
        depends_on: vec_or_none(c.depends_on(), |d| ContainerDependency {
            container_name: d.container_name().to_string(),
            condition: d.condition().as_str().to_string(),
        }),
        mount_points: vec_or_none(c.mount_points(), |m| MountPoint {
            source_volume: m.source_volume().unwrap_or_default().to_string(),
            container_path: m.container_path().unwrap_or_default().to_string(),
            read_only: m.read_only(),
        }),
        volumes_from: vec_or_none(c.volumes_from(), |v| VolumeFrom {
            source_container: v.source_container().unwrap_or_default().to_string(),
            read_only: v.read_only(),
        }),
        ulimits: vec_or_none(c.ulimits(), |u| Ulimit {
            name: u.name().as_str().to_string(),
            soft_limit: u.soft_limit(),
            hard_limit: u.hard_limit(),
        }),
        readonly_root_filesystem: c.readonly_root_filesystem(),
        privileged: c.privileged(),
        start_timeout: c.start_timeout(),
        stop_timeout: c.stop_timeout(),
        docker_labels: c
            .docker_labels()
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
    }
}

/// The service-level part of a live service; `task_definition` stays default.
pub fn service_spec_from_sdk(s: &ecs::Service, cluster: &str) -> ServiceSpec {
    ServiceSpec {
        cluster: cluster.to_string(),
        desired_count: Some(s.desired_count()),
        launch_type: s.launch_type().map(|l| l.as_str().to_string()),
        capacity_provider_strategy: vec_or_none(s.capacity_provider_strategy(), |c| {
            CapacityProviderStrategyItem {
                capacity_provider: c.capacity_provider().to_string(),
                weight: Some(c.weight()),
                base: Some(c.base()),
            }
        }),
        platform_version: s.platform_version().map(str::to_string),
        task_definition: TaskDefinition::default(),
        network_configuration: s.network_configuration().map(|n| NetworkConfiguration {
            awsvpc_configuration: n.awsvpc_configuration().map(|v| AwsVpcConfiguration {
                subnets: v.subnets().to_vec(),
                security_groups: strings(v.security_groups()),
                assign_public_ip: v.assign_public_ip().map(|a| a.as_str().to_string()),
            }),
        }),
        load_balancers: vec_or_none(s.load_balancers(), |lb| LoadBalancer {
            target_group: lb.target_group_arn().unwrap_or_default().to_string(),
            container_name: lb.container_name().unwrap_or_default().to_string(),
            container_port: lb.container_port().unwrap_or_default(),
        }),
        deployment_configuration: s
            .deployment_configuration()
            .map(|dc| DeploymentConfiguration {
                maximum_percent: dc.maximum_percent(),
                minimum_healthy_percent: dc.minimum_healthy_percent(),
                deployment_circuit_breaker: dc.deployment_circuit_breaker().map(|cb| {
                    DeploymentCircuitBreaker {
                        enable: cb.enable(),
                        rollback: cb.rollback(),
                    }
                }),
            }),
        health_check_grace_period_seconds: s.health_check_grace_period_seconds(),
        scheduling_strategy: s.scheduling_strategy().map(|x| x.as_str().to_string()),
        enable_execute_command: Some(s.enable_execute_command()),
        enable_ecs_managed_tags: Some(s.enable_ecs_managed_tags()),
        propagate_tags: s.propagate_tags().map(|p| p.as_str().to_string()),
        placement_constraints: vec_or_none(s.placement_constraints(), |p| PlacementConstraint {
            kind: p
                .r#type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            expression: p.expression().map(str::to_string),
        }),
        placement_strategy: vec_or_none(s.placement_strategy(), |p| PlacementStrategy {
            kind: p
                .r#type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            field: p.field().map(str::to_string),
        }),
        tags: tags_from_sdk(s.tags()),
        migration: None,
    }
}

pub fn tags_from_sdk(tags: &[ecs::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

// ---- model → API input --------------------------------------------------

#[derive(Debug, thiserror::Error)]
#[error("cannot build {what}: {source}")]
pub struct InputError {
    what: &'static str,
    #[source]
    source: aws_sdk_ecs::error::BuildError,
}

fn input<T>(
    what: &'static str,
    r: Result<T, aws_sdk_ecs::error::BuildError>,
) -> Result<T, InputError> {
    r.map_err(|source| InputError { what, source })
}

pub fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<ecs::Tag> {
    tags.iter()
        .map(|(k, v)| ecs::Tag::builder().key(k).value(v).build())
        .collect()
}

fn sdk_secret(s: &Secret) -> Result<ecs::Secret, InputError> {
    input(
        "secret",
        ecs::Secret::builder()
            .name(&s.name)
            .value_from(&s.value_from)
            .build(),
    )
}

/// The one mapping of a task definition onto RegisterTaskDefinition's
/// members, for the client's fluent builder and for the bare input alike.
macro_rules! task_definition_members {
    ($builder:expr, $td:expr, $tags:expr) => {{
        let td: &TaskDefinition = $td;
        let tags: &BTreeMap<String, String> = $tags;
        let mut b = $builder
            .family(&td.family)
            .set_task_role_arn(td.task_role_arn.clone())
            .set_execution_role_arn(td.execution_role_arn.clone())
            .set_network_mode(td.network_mode.as_deref().map(ecs::NetworkMode::from))
            .set_cpu(td.cpu.clone())
            .set_memory(td.memory.clone())
            .set_requires_compatibilities(td.requires_compatibilities.as_ref().map(|v| {
                v.iter()
                    .map(|c| ecs::Compatibility::from(c.as_str()))
                    .collect()
            }))
            .set_pid_mode(td.pid_mode.as_deref().map(ecs::PidMode::from))
            .set_ipc_mode(td.ipc_mode.as_deref().map(ecs::IpcMode::from))
            .set_tags(Some(sdk_tags(tags)));
        for c in &td.container_definitions {
            b = b.container_definitions(sdk_container(c)?);
        }
        for v in td.volumes.iter().flatten() {
            b = b.volumes(
                ecs::Volume::builder()
                    .name(&v.name)
                    .set_host(v.host.as_ref().map(|h| {
                        ecs::HostVolumeProperties::builder()
                            .set_source_path(h.source_path.clone())
                            .build()
                    }))
                    .build(),
            );
        }
        if let Some(rp) = &td.runtime_platform {
            b = b.runtime_platform(
                ecs::RuntimePlatform::builder()
                    .set_cpu_architecture(
                        rp.cpu_architecture
                            .as_deref()
                            .map(ecs::CpuArchitecture::from),
                    )
                    .set_operating_system_family(
                        rp.operating_system_family
                            .as_deref()
                            .map(ecs::OsFamily::from),
                    )
                    .build(),
            );
        }
        if let Some(es) = &td.ephemeral_storage {
            b = b.ephemeral_storage(
                ecs::EphemeralStorage::builder()
                    .size_in_gib(es.size_in_gib)
                    .build(),
            );
        }
        b
    }};
}

pub fn register_task_definition(
    client: &aws_sdk_ecs::Client,
    td: &TaskDefinition,
    tags: &BTreeMap<String, String>,
) -> Result<
    aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder,
    InputError,
> {
    Ok(task_definition_members!(
        client.register_task_definition(),
        td,
        tags
    ))
}

/// The RegisterTaskDefinition input ecsync would send for `td`, untagged.
pub fn register_task_definition_input(
    td: &TaskDefinition,
) -> Result<aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput, InputError>
{
    let b = task_definition_members!(
        aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput::builder(),
        td,
        &BTreeMap::new()
    );
    b.build().map_err(|source| InputError {
        what: "RegisterTaskDefinitionInput",
        source,
    })
}

fn sdk_container(c: &ContainerDefinition) -> Result<ecs::ContainerDefinition, InputError> {
    let mut b = ecs::ContainerDefinition::builder()
        .name(&c.name)
        .image(&c.image)
        .set_cpu(c.cpu)
        .set_memory(c.memory)
        .set_memory_reservation(c.memory_reservation)
        .set_essential(c.essential)
        .set_command(c.command.clone())
        .set_entry_point(c.entry_point.clone())
        .set_working_directory(c.working_directory.clone())
        .set_user(c.user.clone())
        .set_readonly_root_filesystem(c.readonly_root_filesystem)
        .set_privileged(c.privileged)
        .set_start_timeout(c.start_timeout)
        .set_stop_timeout(c.stop_timeout)
        .set_docker_labels(c.docker_labels.clone().map(|l| l.into_iter().collect()));
    for pm in c.port_mappings.iter().flatten() {
        b = b.port_mappings(
            ecs::PortMapping::builder()
                .container_port(pm.container_port)
                .set_host_port(pm.host_port)
                .set_protocol(pm.protocol.as_deref().map(ecs::TransportProtocol::from))
                .set_name(pm.name.clone())
                .set_app_protocol(
                    pm.app_protocol
                        .as_deref()
                        .map(ecs::ApplicationProtocol::from),
                )
                .build(),
        );
    }
    for kv in c.environment.iter().flatten() {
        b = b.environment(
            ecs::KeyValuePair::builder()
                .name(&kv.name)
                .set_value(kv.value.clone())
                .build(),
        );
    }
    for s in c.secrets.iter().flatten() {
        b = b.secrets(sdk_secret(s)?);
    }
    if let Some(lc) = &c.log_configuration {
        let mut lb = ecs::LogConfiguration::builder()
            .log_driver(ecs::LogDriver::from(lc.log_driver.as_str()))
            .set_options(lc.options.clone().map(|o| o.into_iter().collect()));
        for s in lc.secret_options.iter().flatten() {
            lb = lb.secret_options(sdk_secret(s)?);
        }
        b = b.log_configuration(input("logConfiguration", lb.build())?);
    }
    if let Some(hc) = &c.health_check {
        b = b.health_check(input(
            "healthCheck",
            ecs::HealthCheck::builder()
                .set_command(Some(hc.command.clone()))
                .set_interval(hc.interval)
                .set_timeout(hc.timeout)
                .set_retries(hc.retries)
                .set_start_period(hc.start_period)
                .build(),
        )?);
    }
    for d in c.depends_on.iter().flatten() {
        b = b.depends_on(input(
            "dependsOn",
            ecs::ContainerDependency::builder()
                .container_name(&d.container_name)
                .condition(ecs::ContainerCondition::from(d.condition.as_str()))
                .build(),
        )?);
    }
    for m in c.mount_points.iter().flatten() {
        b = b.mount_points(
            ecs::MountPoint::builder()
                .source_volume(&m.source_volume)
                .container_path(&m.container_path)
                .set_read_only(m.read_only)
                .build(),
        );
    }
    for v in c.volumes_from.iter().flatten() {
        b = b.volumes_from(
            ecs::VolumeFrom::builder()
                .source_container(&v.source_container)
                .set_read_only(v.read_only)
                .build(),
        );
    }
    for u in c.ulimits.iter().flatten() {
        b = b.ulimits(input(
            "ulimit",
            ecs::Ulimit::builder()
                .name(ecs::UlimitName::from(u.name.as_str()))
                .soft_limit(u.soft_limit)
                .hard_limit(u.hard_limit)
                .build(),
        )?);
    }
    Ok(b.build())
}

pub fn network_configuration(
    spec: &ServiceSpec,
) -> Result<Option<ecs::NetworkConfiguration>, InputError> {
    let Some(vpc) = spec
        .network_configuration
        .as_ref()
        .and_then(|n| n.awsvpc_configuration.as_ref())
    else {
        return Ok(None);
    };
    let awsvpc = input(
        "awsvpcConfiguration",
        ecs::AwsVpcConfiguration::builder()
            .set_subnets(Some(vpc.subnets.clone()))
            .set_security_groups(vpc.security_groups.clone())
            .set_assign_public_ip(
                vpc.assign_public_ip
                    .as_deref()
                    .map(ecs::AssignPublicIp::from),
            )
            .build(),
    )?;
    Ok(Some(
        ecs::NetworkConfiguration::builder()
            .awsvpc_configuration(awsvpc)
            .build(),
    ))
}

/// Load balancers with target groups already resolved to ARNs.
pub fn load_balancers(spec: &ServiceSpec) -> Vec<ecs::LoadBalancer> {
    spec.load_balancers
        .iter()
        .flatten()
        .map(|lb| {
            ecs::LoadBalancer::builder()
                .target_group_arn(&lb.target_group)
                .container_name(&lb.container_name)
                .container_port(lb.container_port)
                .build()
        })
        .collect()
}

pub fn deployment_configuration(spec: &ServiceSpec) -> Option<ecs::DeploymentConfiguration> {
    spec.deployment_configuration.as_ref().map(|dc| {
        ecs::DeploymentConfiguration::builder()
            .set_maximum_percent(dc.maximum_percent)
            .set_minimum_healthy_percent(dc.minimum_healthy_percent)
            .set_deployment_circuit_breaker(dc.deployment_circuit_breaker.as_ref().map(|cb| {
                ecs::DeploymentCircuitBreaker::builder()
                    .enable(cb.enable)
                    .rollback(cb.rollback)
                    .build()
            }))
            .build()
    })
}

pub fn capacity_provider_strategy(
    spec: &ServiceSpec,
) -> Result<Option<Vec<ecs::CapacityProviderStrategyItem>>, InputError> {
    spec.capacity_provider_strategy
        .as_ref()
        .map(|items| {
            items
                .iter()
                .map(|c| {
                    input(
                        "capacityProviderStrategy",
                        ecs::CapacityProviderStrategyItem::builder()
                            .capacity_provider(&c.capacity_provider)
                            .set_weight(c.weight)
                            .set_base(c.base)
                            .build(),
                    )
                })
                .collect()
        })
        .transpose()
}

pub fn placement_constraints(spec: &ServiceSpec) -> Option<Vec<ecs::PlacementConstraint>> {
    spec.placement_constraints.as_ref().map(|v| {
        v.iter()
            .map(|p| {
                ecs::PlacementConstraint::builder()
                    .r#type(ecs::PlacementConstraintType::from(p.kind.as_str()))
                    .set_expression(p.expression.clone())
                    .build()
            })
            .collect()
    })
}

pub fn placement_strategy(spec: &ServiceSpec) -> Option<Vec<ecs::PlacementStrategy>> {
    spec.placement_strategy.as_ref().map(|v| {
        v.iter()
            .map(|p| {
                ecs::PlacementStrategy::builder()
                    .r#type(ecs::PlacementStrategyType::from(p.kind.as_str()))
                    .set_field(p.field.clone())
                    .build()
            })
            .collect()
    })
}
