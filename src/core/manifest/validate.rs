//! Value checks that types alone cannot express. Each problem carries the field
//! path it concerns, so the caller can point at the exact line and column.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{ANNOTATION_PRUNE, ANNOTATION_SYNC, FieldPath};
use crate::core::model::{API_VERSION, KIND_SERVICE, Manifest, Migration};
use crate::core::normalize::{cpu_units, is_reserved_tag, memory_mib};

type Problems = Vec<(FieldPath, String)>;

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
    if let Some(lt) = &s.launch_type {
        if !["FARGATE", "EC2", "EXTERNAL"].contains(&lt.as_str()) {
            p.push((
                spec.key("launchType"),
                format!("must be FARGATE, EC2 or EXTERNAL, not {lt:?}"),
            ));
        }
        if s.capacity_provider_strategy.is_some() {
            p.push((
                spec.key("capacityProviderStrategy"),
                "cannot be combined with launchType".into(),
            ));
        }
    }
    if let Some(ss) = &s.scheduling_strategy
        && !["REPLICA", "DAEMON"].contains(&ss.as_str())
    {
        p.push((
            spec.key("schedulingStrategy"),
            "must be REPLICA or DAEMON".into(),
        ));
    }
    if s.is_daemon() && s.desired_count.is_some() {
        p.push((
            spec.key("desiredCount"),
            "cannot be set with schedulingStrategy DAEMON: ECS runs one task per container instance".into(),
        ));
    }
    if let Some(pt) = &s.propagate_tags
        && !["NONE", "SERVICE", "TASK_DEFINITION"].contains(&pt.as_str())
    {
        p.push((
            spec.key("propagateTags"),
            "must be NONE, SERVICE or TASK_DEFINITION".into(),
        ));
    }
    for key in s.tags.keys() {
        if is_reserved_tag(key) {
            p.push((
                spec.key("tags").key(key),
                "tag keys starting with ecsync.io/ or aws: are reserved".into(),
            ));
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
    if !["awsvpc", "bridge", "host", "none"].contains(&network_mode) {
        p.push((
            td_path.key("networkMode"),
            "must be awsvpc, bridge, host or none".into(),
        ));
    }
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
        if !is_ecs_name(&c.name) {
            p.push((
                cp.key("name"),
                "must be 1-255 letters, digits, hyphens or underscores".into(),
            ));
        } else if !names.insert(c.name.as_str()) {
            p.push((
                cp.key("name"),
                format!("container {:?} is declared twice", c.name),
            ));
        }
        if c.image.trim().is_empty() {
            p.push((cp.key("image"), "must not be empty".into()));
        }
        for (j, pm) in c.port_mappings.iter().flatten().enumerate() {
            if !(1..=65535).contains(&pm.container_port) {
                p.push((
                    cp.key("portMappings").index(j).key("containerPort"),
                    "must be a port between 1 and 65535".into(),
                ));
            }
        }
    }

    for (i, lb) in s.load_balancers.iter().flatten().enumerate() {
        let lp = spec.key("loadBalancers").index(i);
        match td
            .container_definitions
            .iter()
            .find(|c| c.name == lb.container_name)
        {
            None => p.push((
                lp.key("containerName"),
                format!(
                    "no container named {:?} in the task definition",
                    lb.container_name
                ),
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
                        "container {:?} maps no port {}",
                        lb.container_name, lb.container_port
                    ),
                ))
            }
            Some(_) => {}
        }
        if lb.target_group.trim().is_empty() {
            p.push((lp.key("targetGroup"), "must not be empty".into()));
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
    if m.from.instances.tags.is_empty() {
        p.push((
            path.key("from").key("instances").key("tags"),
            "must name at least one tag: an empty selector would match every instance".into(),
        ));
    }
    if m.from.target_group.trim().is_empty() {
        p.push((
            path.key("from").key("targetGroup"),
            "must not be empty".into(),
        ));
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
    }
}

/// `"5m"`, `"1h30m"`, `"30s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration like 30s, 5m or 1h ({e})"))
}

fn is_ecs_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
