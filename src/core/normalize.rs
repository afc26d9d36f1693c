//! Puts a service spec into one canonical form, so that two ways of writing the
//! same thing — or a definition as written versus as ECS echoes it back with its
//! defaults filled in — compare equal (DESIGN §1, after ecspresso's `diff.go`).
//!
//! `normalize` must be idempotent and applied to both sides before any diff.

use serde::Serialize;

use crate::core::model::{
    AwsVpcConfiguration, ContainerDefinition, DeploymentCircuitBreaker, DeploymentConfiguration,
    DeploymentController, HealthCheck, LoadBalancer, NetworkConfiguration, ServiceSpec, Tag,
    TaskDefinition,
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

/// Lists ECS treats as sets: put in one order, by their canonical JSON, so
/// any order written compares equal. (Generated types carry floats, so no `Ord`.)
fn sort_set<T: Serialize>(v: &mut Option<Vec<T>>) {
    if let Some(items) = v {
        let mut keyed: Vec<(String, T)> = items
            .drain(..)
            .map(|x| (serde_json::to_string(&x).unwrap_or_default(), x))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed.dedup_by(|a, b| a.0 == b.0);
        items.extend(keyed.into_iter().map(|(_, x)| x));
    }
    *v = none_if_empty(v.take());
}

fn none_if<T: PartialEq>(v: &mut Option<T>, default: T) {
    if v.as_ref() == Some(&default) {
        *v = None;
    }
}

/// Tags that are the manifest's: ecsync's and AWS's own left out, in key order.
fn normalize_tags(tags: &mut Option<Vec<Tag>>) {
    if let Some(t) = tags {
        t.retain(|t| t.key.as_deref().is_some_and(|k| !is_reserved_tag(k)));
        t.sort_by(|a, b| a.key.cmp(&b.key));
    }
    *tags = none_if_empty(tags.take());
}

pub fn normalize_service(spec: &mut ServiceSpec) {
    normalize_task_definition(&mut spec.task_definition);

    if spec.launch_type.is_none() && spec.capacity_provider_strategy.is_none() {
        spec.launch_type = Some("EC2".into());
    }
    if let Some(cps) = &mut spec.capacity_provider_strategy {
        for item in cps.iter_mut() {
            none_if(&mut item.weight, 0);
            none_if(&mut item.base, 0);
        }
    }
    sort_set(&mut spec.capacity_provider_strategy);
    if spec.launch_type.as_deref() == Some("FARGATE") && spec.platform_version.is_none() {
        spec.platform_version = Some("LATEST".into());
    }
    if spec.scheduling_strategy.is_none() {
        spec.scheduling_strategy = Some("REPLICA".into());
    }
    spec.deployment_controller
        .get_or_insert_with(|| DeploymentController {
            r#type: "ECS".into(),
        });

    if let Some(NetworkConfiguration {
        awsvpc_configuration: Some(vpc),
    }) = &mut spec.network_configuration
    {
        normalize_awsvpc(vpc);
    } else {
        spec.network_configuration = None;
    }

    normalize_load_balancers(&mut spec.load_balancers);
    sort_set(&mut spec.service_registries);
    sort_set(&mut spec.vpc_lattice_configurations);
    sort_set(&mut spec.volume_configurations);

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
            ..Default::default()
        });
    dc.strategy.get_or_insert_with(|| "ROLLING".into());
    // ECS answers "no alarms" as alarms that are off and name none.
    if dc
        .alarms
        .as_ref()
        .is_some_and(|a| !a.enable && !a.rollback && a.alarm_names.is_empty())
    {
        dc.alarms = None;
    }
    if let Some(alarms) = &mut dc.alarms {
        alarms.alarm_names.sort();
        alarms.alarm_names.dedup();
    }
    if dc.strategy.as_deref() == Some("ROLLING") {
        // Only the traffic-shifting strategies bake; ROLLING echoes a 0.
        none_if(&mut dc.bake_time_in_minutes, 0);
    }

    if spec
        .service_connect_configuration
        .as_ref()
        .is_some_and(|sc| !sc.enabled && sc.namespace.is_none() && sc.services.is_none())
    {
        spec.service_connect_configuration = None;
    }
    none_if(&mut spec.health_check_grace_period_seconds, 0);
    none_if(&mut spec.enable_execute_command, false);
    none_if(&mut spec.enable_ecs_managed_tags, false);
    none_if(&mut spec.propagate_tags, "NONE".into());
    spec.placement_constraints = none_if_empty(spec.placement_constraints.take());
    spec.placement_strategy = none_if_empty(spec.placement_strategy.take());
    normalize_tags(&mut spec.tags);
}

/// Load balancers in one order, as a set (resolving names to ARNs re-sorts).
pub fn normalize_load_balancers(lbs: &mut Option<Vec<LoadBalancer>>) {
    sort_set(lbs);
}

pub fn normalize_awsvpc(vpc: &mut AwsVpcConfiguration) {
    vpc.subnets.sort();
    vpc.subnets.dedup();
    sort_set(&mut vpc.security_groups);
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
    sort_set(&mut td.requires_compatibilities);
    for c in &mut td.container_definitions {
        normalize_container(c, &network_mode);
    }
    td.container_definitions.sort_by(|a, b| a.name.cmp(&b.name));
    sort_set(&mut td.volumes);
    sort_set(&mut td.placement_constraints);
    sort_set(&mut td.inference_accelerators);
    none_if(&mut td.enable_fault_injection, false);
    normalize_tags(&mut td.tags);
}

fn normalize_container(c: &mut ContainerDefinition, network_mode: &str) {
    none_if(&mut c.cpu, 0);
    c.essential.get_or_insert(true);
    if let Some(pms) = &mut c.port_mappings {
        for pm in pms.iter_mut() {
            pm.protocol.get_or_insert_with(|| "tcp".into());
            match (network_mode, pm.container_port) {
                // Under awsvpc and host the host port can only be the container port.
                ("awsvpc" | "host", Some(port)) => {
                    pm.host_port.get_or_insert(port);
                }
                ("awsvpc" | "host", None) => {}
                // Under bridge, 0 and "unset" both mean a dynamic host port.
                _ => {
                    if pm.container_port_range.is_none() {
                        pm.host_port.get_or_insert(0);
                    }
                }
            }
        }
    }
    sort_set(&mut c.port_mappings);
    sort_set(&mut c.environment);
    sort_set(&mut c.secrets);
    c.command = none_if_empty(c.command.take());
    c.entry_point = none_if_empty(c.entry_point.take());
    if let Some(lc) = &mut c.log_configuration {
        if lc.options.as_ref().is_some_and(|o| o.is_empty()) {
            lc.options = None;
        }
        sort_set(&mut lc.secret_options);
    }
    if let Some(hc) = &mut c.health_check {
        normalize_health_check(hc);
    }
    sort_set(&mut c.depends_on);
    sort_set(&mut c.mount_points);
    sort_set(&mut c.volumes_from);
    sort_set(&mut c.ulimits);
    sort_set(&mut c.system_controls);
    sort_set(&mut c.resource_requirements);
    sort_set(&mut c.docker_security_options);
    sort_set(&mut c.credential_specs);
    sort_set(&mut c.links);
    if c.docker_labels.as_ref().is_some_and(|l| l.is_empty()) {
        c.docker_labels = None;
    }
    for flag in [
        &mut c.readonly_root_filesystem,
        &mut c.privileged,
        &mut c.disable_networking,
        &mut c.interactive,
        &mut c.pseudo_terminal,
    ] {
        none_if(flag, false);
    }
    // ECS resolves tags to digests unless told not to: "enabled" is unset.
    none_if(&mut c.version_consistency, "enabled".into());
    if let Some(lp) = &mut c.linux_parameters {
        none_if(&mut lp.init_process_enabled, false);
        if let Some(caps) = &mut lp.capabilities {
            sort_set(&mut caps.add);
            sort_set(&mut caps.drop);
        }
    }
    if let Some(fl) = &mut c.firelens_configuration
        && let Some(options) = &mut fl.options
    {
        // FireLens adds ECS metadata to each record unless this says "false".
        if options.get("enable-ecs-log-metadata").map(String::as_str) == Some("true") {
            options.remove("enable-ecs-log-metadata");
        }
        if options.is_empty() {
            fl.options = None;
        }
    }
    if c.restart_policy.as_ref().is_some_and(|r| {
        !r.enabled && r.ignored_exit_codes.is_none() && r.restart_attempt_period.is_none()
    }) {
        c.restart_policy = None;
    }
}

fn normalize_health_check(hc: &mut HealthCheck) {
    hc.interval.get_or_insert(30);
    hc.timeout.get_or_insert(5);
    hc.retries.get_or_insert(3);
    none_if(&mut hc.start_period, 0);
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
