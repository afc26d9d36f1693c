use super::*;

fn key(name: &str) -> ServiceKey {
    ServiceKey {
        cluster: "prod".into(),
        name: name.into(),
    }
}

fn tagged(id: &str, tags: &[(&str, &str)]) -> Tagged {
    Tagged {
        id: id.into(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn state(id: &str, of: Option<&str>) -> ResourceState {
    ResourceState {
        id: id.into(),
        name: Some(format!("{id}-name")),
        tags: of
            .map(|v| BTreeMap::from([(LEFTOVER_OF.to_string(), v.to_string())]))
            .unwrap_or_default(),
    }
}

fn eni(groups: &[&str], instance: Option<&str>) -> InterfaceUse {
    InterfaceUse {
        groups: groups.iter().map(|g| g.to_string()).collect(),
        instance_id: instance.map(str::to_string),
    }
}

/// Two fleet instances launched from `ami-fleet`, each with a root volume
/// deleted on termination and a data volume that is not; a fleet-only
/// group, a group shared with another instance, and the VPC's default one.
fn fleet(action: DecommissionAction) -> RecordInput {
    let instance = |n: &str| InstanceUse {
        instance_id: format!("i-{n}"),
        image_id: Some("ami-fleet".into()),
        volumes: vec![
            AttachedVolume {
                volume_id: format!("vol-root-{n}"),
                delete_on_termination: true,
            },
            AttachedVolume {
                volume_id: format!("vol-data-{n}"),
                delete_on_termination: false,
            },
        ],
        security_groups: vec![
            ("sg-fleet".into(), "web-ec2".into()),
            ("sg-shared".into(), "ssh".into()),
            ("sg-default".into(), "default".into()),
        ],
    };
    RecordInput {
        service: key("web"),
        action,
        instances: vec![instance("1"), instance("2")],
        addresses: vec![tagged("eipalloc-1", &[])],
        volumes: ["vol-root-1", "vol-data-1", "vol-root-2", "vol-data-2"]
            .iter()
            .map(|v| tagged(v, &[]))
            .collect(),
        security_groups: ["sg-fleet", "sg-shared", "sg-default"]
            .iter()
            .map(|g| tagged(g, &[]))
            .collect(),
        owned_images: vec![tagged("ami-fleet", &[])],
        interfaces: vec![
            eni(&["sg-fleet", "sg-shared", "sg-default"], Some("i-1")),
            eni(&["sg-fleet", "sg-shared", "sg-default"], Some("i-2")),
            eni(&["sg-shared"], Some("i-other")),
        ],
    }
}

fn to_tag(items: &[RecordItem]) -> Vec<(LeftoverKind, &str)> {
    items
        .iter()
        .filter(|i| i.skipped.is_none())
        .map(|i| (i.kind, i.id.as_str()))
        .collect()
}

#[test]
fn terminate_records_what_outlives_the_fleet_and_only_that() {
    let plan = plan_record(&fleet(DecommissionAction::Terminate));
    assert_eq!(
        to_tag(&plan),
        vec![
            (LeftoverKind::SecurityGroup, "sg-fleet"),
            (LeftoverKind::ElasticIp, "eipalloc-1"),
            (LeftoverKind::Volume, "vol-data-1"),
            (LeftoverKind::Volume, "vol-data-2"),
            (LeftoverKind::Image, "ami-fleet"),
        ]
    );
    // The shared group is named with the reason, so the report can say why.
    let shared = plan.iter().find(|i| i.id == "sg-shared").unwrap();
    assert_eq!(
        shared.skipped.as_deref(),
        Some("also used by 1 network interface(s) outside the fleet")
    );
    assert!(!plan.iter().any(|i| i.id == "sg-default"));
}

#[test]
fn stop_records_every_volume_the_stopped_instances_keep() {
    let plan = plan_record(&fleet(DecommissionAction::Stop));
    let volumes: Vec<&str> = plan
        .iter()
        .filter(|i| i.kind == LeftoverKind::Volume)
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(
        volumes,
        vec!["vol-data-1", "vol-data-2", "vol-root-1", "vol-root-2"]
    );
}

#[test]
fn a_group_used_by_something_that_is_not_an_instance_is_shared() {
    let mut input = fleet(DecommissionAction::Terminate);
    input.interfaces.push(eni(&["sg-fleet"], None));
    let plan = plan_record(&input);
    assert!(!to_tag(&plan).contains(&(LeftoverKind::SecurityGroup, "sg-fleet")));
}

#[test]
fn recorded_protected_and_foreign_resources_are_not_tagged_again() {
    let mut input = fleet(DecommissionAction::Terminate);
    input.addresses = vec![tagged("eipalloc-1", &[(LEFTOVER_OF, "prod/web")])];
    input.owned_images = vec![tagged("ami-fleet", &[(LEFTOVER_OF, "prod/api")])];
    input.volumes[1] = tagged("vol-data-1", &[(tags::PROTECT, "true")]);
    let plan = plan_record(&input);
    // Already ours: nothing to do, not even a line.
    assert!(!plan.iter().any(|i| i.id == "eipalloc-1"));
    let skipped: BTreeMap<&str, &str> = plan
        .iter()
        .filter_map(|i| Some((i.id.as_str(), i.skipped.as_deref()?)))
        .collect();
    assert_eq!(
        skipped.get("ami-fleet"),
        Some(&"already recorded as a leftover of prod/api")
    );
    assert_eq!(
        skipped.get("vol-data-1"),
        Some(&"tagged ecsync.io/protect=true")
    );
    assert_eq!(
        to_tag(&plan),
        vec![
            (LeftoverKind::SecurityGroup, "sg-fleet"),
            (LeftoverKind::Volume, "vol-data-2"),
        ]
    );
}

#[test]
fn images_not_owned_by_the_account_are_never_named() {
    let mut input = fleet(DecommissionAction::Terminate);
    // An Amazon or Marketplace AMI is not described as owned, so not given.
    input.owned_images.clear();
    assert!(
        !plan_record(&input)
            .iter()
            .any(|i| i.kind == LeftoverKind::Image)
    );
}

fn report_input() -> LeftoverInput {
    LeftoverInput {
        services: BTreeSet::from([key("web")]),
        available_volumes: vec![state("vol-data-1", Some("prod/web"))],
        addresses: vec![
            AddressState {
                allocation_id: "eipalloc-free".into(),
                public_ip: Some("203.0.113.1".into()),
                tags: BTreeMap::from([(LEFTOVER_OF.into(), "prod/web".into())]),
                associated: false,
                instance_id: None,
            },
            AddressState {
                allocation_id: "eipalloc-held".into(),
                public_ip: Some("203.0.113.2".into()),
                tags: BTreeMap::from([(LEFTOVER_OF.into(), "prod/web".into())]),
                associated: true,
                instance_id: Some("i-live".into()),
            },
            AddressState {
                allocation_id: "eipalloc-of-gone".into(),
                public_ip: Some("203.0.113.3".into()),
                tags: BTreeMap::from([(LEFTOVER_OF.into(), "prod/web".into())]),
                associated: true,
                instance_id: Some("i-gone".into()),
            },
        ],
        security_groups: vec![
            state("sg-unused", Some("prod/web")),
            state("sg-used", Some("prod/web")),
            state("sg-of-gone", Some("prod/web")),
        ],
        interfaces: vec![
            eni(&["sg-used"], Some("i-live")),
            eni(&["sg-of-gone"], Some("i-gone")),
        ],
        images: vec![state("ami-fleet", Some("prod/web"))],
        gone_instances: BTreeSet::from(["i-gone".to_string()]),
    }
}

#[test]
fn the_report_keeps_what_nothing_uses_any_more() {
    let found: Vec<(LeftoverKind, String)> = leftovers(&report_input())
        .into_iter()
        .map(|l| (l.kind, l.id))
        .collect();
    assert_eq!(
        found,
        vec![
            (LeftoverKind::SecurityGroup, "sg-of-gone".into()),
            (LeftoverKind::SecurityGroup, "sg-unused".into()),
            (LeftoverKind::ElasticIp, "eipalloc-free".into()),
            (LeftoverKind::ElasticIp, "eipalloc-of-gone".into()),
            (LeftoverKind::Volume, "vol-data-1".into()),
            (LeftoverKind::Image, "ami-fleet".into()),
        ]
    );
}

#[test]
fn the_report_names_only_the_services_this_controller_decommissions() {
    let mut input = report_input();
    input.services = BTreeSet::from([key("api")]);
    assert!(leftovers(&input).is_empty());
    // A tag that does not read as `<cluster>/<service>` names nobody.
    input.services = BTreeSet::from([key("web")]);
    input.images = vec![state("ami-odd", Some("web"))];
    assert!(!leftovers(&input).iter().any(|l| l.id == "ami-odd"));
}
