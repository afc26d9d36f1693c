//! Value checks that types alone cannot express. Each problem carries the field
//! path it concerns, so the caller can point at the exact line and column.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{ANNOTATION_PRUNE, ANNOTATION_SYNC, FieldPath};
use crate::core::api::Validate;
use crate::core::model::{API_VERSION, KIND_SERVICE, Manifest, Migration, ServiceSpec};
use crate::core::normalize::{cpu_units, is_reserved_tag, memory_mib};

use crate::core::api::Problems;

pub fn validate(m: &Manifest) -> Problems {
    let mut p = Problems::new();
    let root = FieldPath::default();
    if m.api_version != API_VERSION {
        p.push((
            root.key("apiVersion"),
            format!("must be {API_VERSION}, not {:?}", m.api_version),
        ));
    }
    if m.kind != KIND_SERVICE {
        p.push((
            root.key("kind"),
            format!("must be {KIND_SERVICE}, not {:?}", m.kind),
        ));
    }
    let meta = root.key("metadata");
    if !is_ecs_name(&m.metadata.name) {
        p.push((
            meta.key("name"),
            "must be 1-255 letters, digits, hyphens or underscores".into(),
        ));
    }
    let annotations = meta.key("annotations");
    for (key, allowed) in [
        (ANNOTATION_SYNC, &["auto", "report"][..]),
        (ANNOTATION_PRUNE, &["enabled", "disabled"][..]),
    ] {
        if let Some(v) = m.metadata.annotations.get(key)
            && !allowed.contains(&v.as_str())
        {
            p.push((
                annotations.key(key),
                format!("must be one of {}, not {v:?}", allowed.join(", ")),
            ));
        }
    }

    let spec = root.key("spec");
    let s = &m.spec;
    if s.cluster.is_empty() {
        p.push((spec.key("cluster"), "must not be empty".into()));
    }
    if s.desired_count.is_some_and(|n| n < 0) {
        p.push((spec.key("desiredCount"), "must be 0 or more".into()));
    }
    // The model's own checks: enums, ranges, lengths and patterns, everywhere.
    s.validate_api(&spec, &mut p);
    s.task_definition
        .validate(&spec.key("taskDefinition"), &mut p);
    if s.launch_type.is_some() && s.capacity_provider_strategy.is_some() {
        p.push((
            spec.key("capacityProviderStrategy"),
            "cannot be combined with launchType".into(),
        ));
    }
    if s.is_daemon() && s.desired_count.is_some() {
        p.push((
            spec.key("desiredCount"),
            "cannot be set with schedulingStrategy DAEMON: ECS runs one task per container instance".into(),
        ));
    }
    for (i, tag) in s.tags.iter().flatten().enumerate() {
        if tag.key.as_deref().is_some_and(is_reserved_tag) {
            p.push((
                spec.key("tags").index(i),
                "tag keys starting with ecsync.io/ or aws: are reserved".into(),
            ));
        }
    }
    validate_strategy(s, &spec, &mut p);
    crate::core::hooks::validate(s, &spec, &mut p);
    for (i, path) in s.ignore_differences.iter().flatten().enumerate() {
        if let Err(e) = crate::core::ignore::IgnorePath::parse(path) {
            p.push((spec.key("ignoreDifferences").index(i), e));
        }
    }

    let td_path = spec.key("taskDefinition");
    let td = &s.task_definition;
    if !is_ecs_name(&td.family) {
        p.push((
            td_path.key("family"),
            "must be 1-255 letters, digits, hyphens or underscores".into(),
        ));
    }
    if let Some(cpu) = &td.cpu
        && cpu_units(cpu).is_none()
    {
        p.push((
            td_path.key("cpu"),
            format!("{cpu:?} is not CPU units (e.g. \"256\" or \"0.25 vCPU\")"),
        ));
    }
    if let Some(mem) = &td.memory
        && memory_mib(mem).is_none()
    {
        p.push((
            td_path.key("memory"),
            format!("{mem:?} is not memory in MiB (e.g. \"512\" or \"2 GB\")"),
        ));
    }
    let network_mode = td.network_mode.as_deref().unwrap_or("bridge");
    let is_fargate = s.launch_type.as_deref() == Some("FARGATE");
    if is_fargate && network_mode != "awsvpc" {
        p.push((
            td_path.key("networkMode"),
            "FARGATE needs networkMode awsvpc".into(),
        ));
    }
    if is_fargate && (td.cpu.is_none() || td.memory.is_none()) {
        p.push((
            td_path.clone(),
            "FARGATE needs task-level cpu and memory".into(),
        ));
    }
    if network_mode == "awsvpc" {
        match s
            .network_configuration
            .as_ref()
            .and_then(|n| n.awsvpc_configuration.as_ref())
        {
            None => p.push((
                spec.key("networkConfiguration"),
                "networkMode awsvpc needs networkConfiguration.awsvpcConfiguration".into(),
            )),
            Some(vpc) if vpc.subnets.is_empty() => p.push((
                spec.key("networkConfiguration")
                    .key("awsvpcConfiguration")
                    .key("subnets"),
                "must name at least one subnet".into(),
            )),
            Some(_) => {}
        }
    }

    let containers = td_path.key("containerDefinitions");
    if td.container_definitions.is_empty() {
        p.push((
            containers.clone(),
            "must list at least one container".into(),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, c) in td.container_definitions.iter().enumerate() {
        let cp = containers.index(i);
        let name = c.name.as_deref().unwrap_or_default();
        if !is_ecs_name(name) {
            p.push((
                cp.key("name"),
                "must be 1-255 letters, digits, hyphens or underscores".into(),
            ));
        } else if !names.insert(name) {
            p.push((
                cp.key("name"),
                format!("container {name:?} is declared twice"),
            ));
        }
        if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
            p.push((cp.key("image"), "must not be empty".into()));
        }
        for (j, pm) in c.port_mappings.iter().flatten().enumerate() {
            if pm.container_port_range.is_none()
                && !pm
                    .container_port
                    .is_some_and(|port| (1..=65535).contains(&port))
            {
                p.push((
                    cp.key("portMappings").index(j).key("containerPort"),
                    "must be a port between 1 and 65535".into(),
                ));
            }
        }
    }

    for (i, lb) in s.load_balancers.iter().flatten().enumerate() {
        let lp = spec.key("loadBalancers").index(i);
        let container = lb.container_name.as_deref().unwrap_or_default();
        match td
            .container_definitions
            .iter()
            .find(|c| c.name.as_deref() == Some(container))
        {
            None => p.push((
                lp.key("containerName"),
                format!("no container named {container:?} in the task definition"),
            )),
            Some(c)
                if !c
                    .port_mappings
                    .iter()
                    .flatten()
                    .any(|pm| pm.container_port == lb.container_port) =>
            {
                p.push((
                    lp.key("containerPort"),
                    format!(
                        "container {container:?} maps no port {}",
                        lb.container_port.unwrap_or_default()
                    ),
                ))
            }
            Some(_) => {}
        }
        let by_arn = lb
            .target_group_arn
            .as_deref()
            .is_some_and(|t| !t.trim().is_empty());
        if !by_arn && lb.load_balancer_name.is_none() {
            p.push((
                lp.key("targetGroupArn"),
                "must name the target group (targetGroupArn, or targetGroup by name)".into(),
            ));
        }
    }

    if let Some(mig) = &s.migration {
        validate_migration(mig, &spec.key("migration"), &mut p);
        if s.load_balancers.as_ref().is_none_or(|l| l.is_empty()) {
            p.push((
                spec.key("migration"),
                "needs loadBalancers: the ECS target group that takes the traffic".into(),
            ));
        }
    }
    p
}

/// The traffic-shifting strategies (BLUE_GREEN, LINEAR, CANARY) make ECS
/// the one that moves the production listener's weights; a migration moves
/// the same weights, so the two would fight over every step.
fn validate_strategy(s: &ServiceSpec, spec: &FieldPath, p: &mut Problems) {
    let strategy = s
        .deployment_configuration
        .as_ref()
        .and_then(|d| d.strategy.as_deref());
    if let Some(native) = strategy.filter(|st| *st != "ROLLING")
        && s.migration.is_some()
    {
        p.push((
            spec.key("migration"),
            format!(
                "cannot be combined with deploymentConfiguration.strategy {native}: ECS shifts the listener's traffic itself under {native}, and a migration shifting the same weights would fight it; use one or the other"
            ),
        ));
    }
}

fn validate_migration(m: &Migration, path: &FieldPath, p: &mut Problems) {
    let steps = path.key("steps");
    if m.steps.is_empty() {
        p.push((steps.clone(), "must list at least one step".into()));
    }
    for (i, w) in m.steps.iter().enumerate() {
        if !(1..=100).contains(w) {
            p.push((steps.index(i), "must be a percentage from 1 to 100".into()));
        }
        if i > 0 && *w <= m.steps[i - 1] {
            p.push((steps.index(i), "steps must be strictly ascending".into()));
        }
    }
    if m.steps.last().is_some_and(|last| *last != 100) {
        p.push((steps.clone(), "the last step must be 100".into()));
    }
    if let Err(e) = parse_duration(&m.step_interval) {
        p.push((path.key("stepInterval"), e));
    }
    if m.from.instances.as_ref().is_some_and(|i| i.tags.is_empty()) {
        p.push((
            path.key("from").key("instances").key("tags"),
            "must name at least one tag: an empty selector would match every instance".into(),
        ));
    }
    match &m.from.auto_scaling_group {
        None if m.from.instances.is_none() => p.push((
            path.key("from"),
            "needs instances or autoScalingGroup: which EC2 fleet is the legacy one".into(),
        )),
        // AutoScalingGroupName: 1 to 255 characters.
        Some(g) if g.trim().is_empty() || g.len() > 255 => p.push((
            path.key("from").key("autoScalingGroup"),
            "must be an Auto Scaling group name (1 to 255 characters)".into(),
        )),
        _ => {}
    }
    if m.from.target_group.trim().is_empty() {
        p.push((
            path.key("from").key("targetGroup"),
            "must not be empty".into(),
        ));
    }
    if let Some(g) = &m.gates {
        let ap = path.key("gates").key("alarms");
        for (i, name) in g.alarms.iter().enumerate() {
            // CloudWatch's AlarmName: 1 to 255 characters.
            if name.trim().is_empty() || name.len() > 255 {
                p.push((
                    ap.index(i),
                    "must be a CloudWatch alarm name (1 to 255 characters)".into(),
                ));
            }
        }
    }
    if let Some(d) = &m.decommission {
        let dp = path.key("decommission");
        if let Some(a) = &d.action
            && a != "stop"
            && a != "terminate"
        {
            p.push((dp.key("action"), "must be stop or terminate".into()));
        }
        if let Err(e) = parse_duration(&d.after) {
            p.push((dp.key("after"), e));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, item) in d.cleanup.iter().flatten().enumerate() {
            let ip = dp.key("cleanup").index(i);
            match crate::core::decommission::CleanupItem::parse(item) {
                None => p.push((
                    ip,
                    "must be autoScalingGroup, targetGroup or launchTemplate".into(),
                )),
                Some(_) if !seen.insert(item.as_str()) => {
                    p.push((ip, format!("{item} is listed twice")))
                }
                Some(c) if c.needs_group() && m.from.auto_scaling_group.is_none() => p.push((
                    ip,
                    format!("{item} needs migration.from.autoScalingGroup: there is no group to clean up after"),
                )),
                Some(_) => {}
            }
        }
    }
}

/// `"5m"`, `"1h30m"`, `"30s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration like 30s, 5m or 1h ({e})"))
}

pub(super) fn is_ecs_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
