//! Puts a service spec into one canonical form, so that two ways of writing the
//! same thing — or a definition as written versus as ECS echoes it back with its
//! defaults filled in — compare equal (DESIGN §1, after ecspresso's `diff.go`).
//!
//! `normalize` must be idempotent and applied to both sides before any diff.

use crate::core::model::{
    AwsVpcConfiguration, ContainerDefinition, DeploymentCircuitBreaker, DeploymentConfiguration,
    HealthCheck, NetworkConfiguration, ServiceSpec, TaskDefinition,
};

/// Tag prefixes that belong to ecsync or AWS, never to the manifest's `tags`.
pub const RESERVED_TAG_PREFIXES: [&str; 2] = ["ecsync.io/", "aws:"];

pub fn is_reserved_tag(key: &str) -> bool {
    RESERVED_TAG_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// `"0.25 vCPU"`, `"1vcpu"`, `"256"` → CPU units as ECS stores them (`"256"`).
pub fn cpu_units(s: &str) -> Option<String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    if let Some(num) = lower.strip_suffix("vcpu") {
        let v: f64 = num.trim().parse().ok()?;
        return whole(v * 1024.0);
    }
    let v: u64 = t.parse().ok()?;
    Some(v.to_string())
}

/// `"2 GB"`, `"0.5GB"`, `"512 MiB"`, `"512"` → MiB as ECS stores them (`"2048"`).
/// ECS itself reads "GB" as GiB, so both spellings mean 1024 MiB.
pub fn memory_mib(s: &str) -> Option<String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    for (suffix, factor) in [("gib", 1024.0), ("gb", 1024.0), ("mib", 1.0), ("mb", 1.0)] {
        if let Some(num) = lower.strip_suffix(suffix) {
            let v: f64 = num.trim().parse().ok()?;
            return whole(v * factor);
        }
    }
    let v: u64 = t.parse().ok()?;
    Some(v.to_string())
}

fn whole(v: f64) -> Option<String> {
    (v.is_finite() && v > 0.0 && v.fract() == 0.0 && v < 1e9).then(|| format!("{}", v as u64))
}

fn none_if_empty<T>(v: Option<Vec<T>>) -> Option<Vec<T>> {
    v.filter(|v| !v.is_empty())
}

pub fn normalize_service(spec: &mut ServiceSpec) {
    normalize_task_definition(&mut spec.task_definition);

    if spec.launch_type.is_none() && spec.capacity_provider_strategy.is_none() {
        spec.launch_type = Some("EC2".into());
    }
    if let Some(cps) = &mut spec.capacity_provider_strategy {
        for item in cps.iter_mut() {
            if item.weight == Some(0) {
                item.weight = None;
            }
            if item.base == Some(0) {
                item.base = None;
            }
        }
        cps.sort();
    }
    spec.capacity_provider_strategy = none_if_empty(spec.capacity_provider_strategy.take());
    if spec.launch_type.as_deref() == Some("FARGATE") && spec.platform_version.is_none() {
        spec.platform_version = Some("LATEST".into());
    }
    if spec.scheduling_strategy.is_none() {
        spec.scheduling_strategy = Some("REPLICA".into());
    }

    if let Some(NetworkConfiguration {
        awsvpc_configuration: Some(vpc),
    }) = &mut spec.network_configuration
    {
        normalize_awsvpc(vpc);
    } else {
        spec.network_configuration = None;
    }

    if let Some(lbs) = &mut spec.load_balancers {
        lbs.sort();
    }
    spec.load_balancers = none_if_empty(spec.load_balancers.take());

    let daemon = spec.is_daemon();
    let dc = spec
        .deployment_configuration
        .get_or_insert_with(DeploymentConfiguration::default);
    // ECS's defaults: a daemon replaces its one task per instance in place.
    let (max, min) = if daemon { (100, 0) } else { (200, 100) };
    dc.maximum_percent.get_or_insert(max);
    dc.minimum_healthy_percent.get_or_insert(min);
    dc.deployment_circuit_breaker
        .get_or_insert(DeploymentCircuitBreaker {
            enable: false,
            rollback: false,
        });

    if spec.health_check_grace_period_seconds == Some(0) {
        spec.health_check_grace_period_seconds = None;
    }
    if spec.enable_execute_command == Some(false) {
        spec.enable_execute_command = None;
    }
    if spec.enable_ecs_managed_tags == Some(false) {
        spec.enable_ecs_managed_tags = None;
    }
    if spec.propagate_tags.as_deref() == Some("NONE") {
        spec.propagate_tags = None;
    }
    spec.placement_constraints = none_if_empty(spec.placement_constraints.take());
    spec.placement_strategy = none_if_empty(spec.placement_strategy.take());
    spec.tags.retain(|k, _| !is_reserved_tag(k));
}

fn normalize_awsvpc(vpc: &mut AwsVpcConfiguration) {
    vpc.subnets.sort();
    vpc.subnets.dedup();
    if let Some(sgs) = &mut vpc.security_groups {
        sgs.sort();
        sgs.dedup();
    }
    vpc.security_groups = none_if_empty(vpc.security_groups.take());
    vpc.assign_public_ip
        .get_or_insert_with(|| "DISABLED".into());
}

pub fn normalize_task_definition(td: &mut TaskDefinition) {
    if let Some(cpu) = td.cpu.as_deref().and_then(cpu_units) {
        td.cpu = Some(cpu);
    }
    if let Some(mem) = td.memory.as_deref().and_then(memory_mib) {
        td.memory = Some(mem);
    }
    let network_mode = td
        .network_mode
        .get_or_insert_with(|| "bridge".into())
        .clone();
    if let Some(rc) = &mut td.requires_compatibilities {
        rc.sort();
        rc.dedup();
    }
    td.requires_compatibilities = none_if_empty(td.requires_compatibilities.take());
    for c in &mut td.container_definitions {
        normalize_container(c, &network_mode);
    }
    td.container_definitions.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(vols) = &mut td.volumes {
        vols.sort();
    }
    td.volumes = none_if_empty(td.volumes.take());
    if td
        .runtime_platform
        .as_ref()
        .is_some_and(|rp| rp.cpu_architecture.is_none() && rp.operating_system_family.is_none())
    {
        td.runtime_platform = None;
    }
}

fn normalize_container(c: &mut ContainerDefinition, network_mode: &str) {
    if c.cpu == Some(0) {
        c.cpu = None;
    }
    c.essential.get_or_insert(true);
    if let Some(pms) = &mut c.port_mappings {
        for pm in pms.iter_mut() {
            pm.protocol.get_or_insert_with(|| "tcp".into());
            match network_mode {
                // Under awsvpc and host the host port can only be the container port.
                "awsvpc" | "host" => {
                    pm.host_port.get_or_insert(pm.container_port);
                }
                // Under bridge, 0 and "unset" both mean a dynamic host port.
                _ => {
                    pm.host_port.get_or_insert(0);
                }
            }
        }
        pms.sort();
    }
    c.port_mappings = none_if_empty(c.port_mappings.take());
    if let Some(env) = &mut c.environment {
        env.sort();
    }
    c.environment = none_if_empty(c.environment.take());
    if let Some(secrets) = &mut c.secrets {
        secrets.sort();
    }
    c.secrets = none_if_empty(c.secrets.take());
    c.command = none_if_empty(c.command.take());
    c.entry_point = none_if_empty(c.entry_point.take());
    if let Some(lc) = &mut c.log_configuration {
        if lc.options.as_ref().is_some_and(|o| o.is_empty()) {
            lc.options = None;
        }
        if let Some(so) = &mut lc.secret_options {
            so.sort();
        }
        lc.secret_options = none_if_empty(lc.secret_options.take());
    }
    if let Some(hc) = &mut c.health_check {
        normalize_health_check(hc);
    }
    if let Some(deps) = &mut c.depends_on {
        deps.sort();
    }
    c.depends_on = none_if_empty(c.depends_on.take());
    if let Some(mps) = &mut c.mount_points {
        mps.sort();
    }
    c.mount_points = none_if_empty(c.mount_points.take());
    if let Some(vf) = &mut c.volumes_from {
        vf.sort();
    }
    c.volumes_from = none_if_empty(c.volumes_from.take());
    if let Some(ul) = &mut c.ulimits {
        ul.sort();
    }
    c.ulimits = none_if_empty(c.ulimits.take());
    if c.docker_labels.as_ref().is_some_and(|l| l.is_empty()) {
        c.docker_labels = None;
    }
    if c.readonly_root_filesystem == Some(false) {
        c.readonly_root_filesystem = None;
    }
    if c.privileged == Some(false) {
        c.privileged = None;
    }
}

fn normalize_health_check(hc: &mut HealthCheck) {
    hc.interval.get_or_insert(30);
    hc.timeout.get_or_insert(5);
    hc.retries.get_or_insert(3);
    if hc.start_period == Some(0) {
        hc.start_period = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_units() {
        let cases = [
            ("256", Some("256")),
            ("0.25 vCPU", Some("256")),
            ("1vcpu", Some("1024")),
            ("2 vCPU", Some("2048")),
            ("0.1 vCPU", None),
            ("-1", None),
            ("lots", None),
        ];
        for (input, want) in cases {
            assert_eq!(cpu_units(input).as_deref(), want, "cpu {input}");
        }
        let cases = [
            ("512", Some("512")),
            ("2 GB", Some("2048")),
            ("0.5GB", Some("512")),
            ("3 GiB", Some("3072")),
            ("512 MiB", Some("512")),
            ("1.3 GB", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(memory_mib(input).as_deref(), want, "memory {input}");
        }
    }
}
