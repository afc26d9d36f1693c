//! End to end: what a decommissioned fleet leaves behind (issue 13) is
//! recorded while the fleet exists, reported in `/status` once nothing uses
//! it, and never deleted; against a private moto per test.
//!
//! moto, checked: terminating an instance leaves its Elastic IP associated
//! and its network interfaces `in-use` with it (AWS releases both); the
//! report counts what a terminated instance holds as unused, which covers
//! AWS's own delay as well.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_ec2::types::{
    DomainType, Filter, InstanceType, LaunchTemplateBlockDeviceMappingRequest,
    LaunchTemplateEbsBlockDeviceRequest, RequestLaunchTemplateData,
};
use common::{
    GitRepo, MigrationStage, Moto, Network, ecsync_daemon, ecsync_text, free_port, migration_stage,
    wait_until_async, web_migrating,
};
use serde_json::Value;

const LEFTOVER_OF: &str = "ecsync.io/leftover-of";

/// The fleet and everything around it that the test looks at afterwards.
struct World {
    moto: Moto,
    repo: GitRepo,
    cache: tempfile::TempDir,
    ecs_tg: String,
    fleet_sg: String,
    shared_sg: String,
    image: String,
    address: String,
    /// Allocated but never the fleet's, and a volume nobody recorded.
    stranger_address: String,
    stranger_volume: String,
}

async fn security_group(moto: &Moto, net: &Network, name: &str) -> String {
    moto.ec2()
        .create_security_group()
        .group_name(name)
        .description(name)
        .vpc_id(&net.vpc_id)
        .send()
        .await
        .expect("CreateSecurityGroup")
        .group_id()
        .expect("group ID")
        .to_string()
}

/// `web-asg`: two instances from `web-lt`, which names an AMI of this
/// account, the groups `web-fleet` and `shared`, and a data volume kept on
/// termination; one instance holds an Elastic IP. Another instance outside
/// the fleet uses `shared`. `web` migrates off the group in one step.
async fn world() -> World {
    let MigrationStage {
        moto,
        net,
        legacy_tg,
        ecs_tg,
    } = migration_stage().await;
    let ec2 = moto.ec2();
    let fleet_sg = security_group(&moto, &net, "web-fleet").await;
    let shared_sg = security_group(&moto, &net, "shared").await;

    let builder = moto.run_instances(1, &[("role", "image-builder")]).await;
    let image = ec2
        .create_image()
        .instance_id(&builder[0])
        .name("web-2024")
        .send()
        .await
        .expect("CreateImage")
        .image_id()
        .expect("image ID")
        .to_string();
    ec2.create_launch_template()
        .launch_template_name("web-lt")
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(&image)
                .instance_type(InstanceType::T3Micro)
                .security_group_ids(&fleet_sg)
                .security_group_ids(&shared_sg)
                .block_device_mappings(
                    LaunchTemplateBlockDeviceMappingRequest::builder()
                        .device_name("/dev/sdf")
                        .ebs(
                            LaunchTemplateEbsBlockDeviceRequest::builder()
                                .volume_size(1)
                                .delete_on_termination(false)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
    moto.autoscaling()
        .create_auto_scaling_group()
        .auto_scaling_group_name("web-asg")
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name("web-lt")
                .build(),
        )
        .min_size(2)
        .max_size(2)
        .desired_capacity(2)
        .vpc_zone_identifier(net.subnets[0].clone())
        .target_group_arns(&legacy_tg)
        .send()
        .await
        .expect("CreateAutoScalingGroup");
    let members: Vec<String> = moto
        .autoscaling()
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("web-asg")
        .send()
        .await
        .expect("DescribeAutoScalingGroups")
        .auto_scaling_groups()[0]
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    assert_eq!(members.len(), 2);

    let allocate = || async {
        ec2.allocate_address()
            .domain(DomainType::Vpc)
            .send()
            .await
            .expect("AllocateAddress")
            .allocation_id()
            .expect("allocation ID")
            .to_string()
    };
    let address = allocate().await;
    ec2.associate_address()
        .allocation_id(&address)
        .instance_id(&members[0])
        .send()
        .await
        .expect("AssociateAddress");
    let stranger_address = allocate().await;
    let stranger_volume = ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(1)
        .send()
        .await
        .expect("CreateVolume")
        .volume_id()
        .expect("volume ID")
        .to_string();
    ec2.run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(&net.subnets[1])
        .security_group_ids(&shared_sg)
        .send()
        .await
        .expect("RunInstances");

    moto.create_alb_with_listener("web-alb", &net.subnets, &net.security_group, &legacy_tg)
        .await;
    let repo = GitRepo::new();
    repo.write("services/web.yaml", &manifest(&net));
    repo.commit("web migrates off web-asg");
    World {
        moto,
        repo,
        cache: tempfile::tempdir().unwrap(),
        ecs_tg,
        fleet_sg,
        shared_sg,
        image,
        address,
        stranger_address,
        stranger_volume,
    }
}

fn manifest(net: &Network) -> String {
    format!(
        "{}    listener: {{loadBalancer: web-alb, port: 80}}
    from:
      targetGroup: web-ec2
      autoScalingGroup: web-asg
    steps: [100]
    stepInterval: 1s
    decommission:
      action: terminate
      after: 1s
",
        web_migrating(net, "nginx:1.27")
    )
}

impl World {
    fn run(&self, args: &[&str]) -> (i32, String) {
        ecsync_text(&self.moto, &self.repo, self.cache.path(), args)
    }

    /// The migration's step as the service's tag records it.
    async fn migration_step(&self) -> Option<String> {
        let ecs = self.moto.ecs();
        let arn = ecs
            .describe_services()
            .cluster("prod")
            .services("web")
            .send()
            .await
            .ok()?
            .services()
            .first()?
            .service_arn()?
            .to_string();
        ecs.list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .ok()?
            .tags()
            .iter()
            .find(|t| t.key() == Some("ecsync.io/migration-step"))?
            .value()
            .map(str::to_string)
    }

    /// Every resource carrying the record tag, as `(kind, id) -> service`.
    async fn recorded(&self) -> BTreeMap<(&'static str, String), String> {
        let ec2 = self.moto.ec2();
        let by_tag = || {
            Filter::builder()
                .name("tag-key")
                .values(LEFTOVER_OF)
                .build()
        };
        let value = |tags: &[aws_sdk_ec2::types::Tag]| {
            tags.iter()
                .find(|t| t.key() == Some(LEFTOVER_OF))
                .and_then(|t| t.value())
                .unwrap_or_default()
                .to_string()
        };
        let mut out = BTreeMap::new();
        for v in ec2
            .describe_volumes()
            .filters(by_tag())
            .send()
            .await
            .unwrap()
            .volumes()
        {
            out.insert(("volume", v.volume_id().unwrap().into()), value(v.tags()));
        }
        for a in ec2
            .describe_addresses()
            .filters(by_tag())
            .send()
            .await
            .unwrap()
            .addresses()
        {
            out.insert(
                ("elasticIp", a.allocation_id().unwrap().into()),
                value(a.tags()),
            );
        }
        for g in ec2
            .describe_security_groups()
            .filters(by_tag())
            .send()
            .await
            .unwrap()
            .security_groups()
        {
            out.insert(
                ("securityGroup", g.group_id().unwrap().into()),
                value(g.tags()),
            );
        }
        for i in ec2
            .describe_images()
            .owners("self")
            .filters(by_tag())
            .send()
            .await
            .unwrap()
            .images()
        {
            out.insert(("image", i.image_id().unwrap().into()), value(i.tags()));
        }
        out
    }

    /// Data volumes the fleet's instances had (kept on termination).
    async fn data_volumes(&self) -> BTreeSet<String> {
        self.moto
            .ec2()
            .describe_volumes()
            .filters(Filter::builder().name("size").values("1").build())
            .send()
            .await
            .unwrap()
            .volumes()
            .iter()
            .filter_map(|v| v.volume_id().map(str::to_string))
            .filter(|v| *v != self.stranger_volume)
            .collect()
    }

    /// Whether each of these still exists: nothing is ever deleted.
    async fn all_still_exist(&self, volumes: &BTreeSet<String>) {
        let ec2 = self.moto.ec2();
        let vols = ec2
            .describe_volumes()
            .set_volume_ids(Some(volumes.iter().cloned().collect()))
            .send()
            .await
            .expect("the data volumes still exist");
        assert_eq!(vols.volumes().len(), volumes.len());
        let addresses = ec2
            .describe_addresses()
            .allocation_ids(&self.address)
            .allocation_ids(&self.stranger_address)
            .send()
            .await
            .expect("the addresses still exist");
        assert_eq!(addresses.addresses().len(), 2);
        let groups = ec2
            .describe_security_groups()
            .group_ids(&self.fleet_sg)
            .group_ids(&self.shared_sg)
            .send()
            .await
            .expect("the groups still exist");
        assert_eq!(groups.security_groups().len(), 2);
        let images = ec2
            .describe_images()
            .image_ids(&self.image)
            .send()
            .await
            .expect("the image still exists");
        assert_eq!(images.images().len(), 1);
    }
}

fn leftovers_of(addr: &str) -> Option<Vec<Value>> {
    let (code, body) = common::try_http_get(addr, "/status").ok()?;
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["decommissionLeftovers"]["items"].as_array().cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_fleet_leaves_exactly_its_own_resources_reported_and_nothing_deleted() {
    let w = world().await;
    let data_volumes = w.data_volumes().await;
    assert_eq!(data_volumes.len(), 2, "one data volume per instance");

    // The ECS side is healthy and traffic moves to 100% (one step); once the
    // step has held its interval, a dry run shows what would be recorded and
    // tags nothing. (A real pass then would start the decommission.)
    w.moto
        .register_ip_targets(&w.ecs_tg, &["10.0.1.10", "10.0.2.10"])
        .await;
    let stepped = wait_until_async(Duration::from_secs(30), async || {
        let (code, out) = w.run(&["apply"]);
        assert_eq!(code, 0, "{out}");
        w.migration_step().await.as_deref() == Some("1")
    })
    .await;
    assert!(stepped, "traffic never moved to ECS");
    let dry_run_names_the_fleet = wait_until_async(Duration::from_secs(30), async || {
        let (code, out) = w.run(&["apply", "--dry-run"]);
        code == 0 && out.contains("would record securityGroup")
    })
    .await;
    let (_, out) = w.run(&["apply", "--dry-run"]);
    assert!(dry_run_names_the_fleet, "{out}");
    for wanted in [
        format!(
            "would record securityGroup {} as a leftover of prod/web",
            w.fleet_sg
        ),
        format!(
            "would record elasticIp {} as a leftover of prod/web",
            w.address
        ),
        format!("would record image {} as a leftover of prod/web", w.image),
        format!(
            "not a leftover of prod/web: securityGroup {} (also used by 1 network interface(s) outside the fleet)",
            w.shared_sg
        ),
    ] {
        assert!(out.contains(&wanted), "missing {wanted:?} in\n{out}");
    }
    for v in &data_volumes {
        assert!(
            out.contains(&format!(
                "would record volume {v} as a leftover of prod/web"
            )),
            "{out}"
        );
    }
    assert!(w.recorded().await.is_empty(), "a dry run tagged something");

    // The daemon decommissions the group; /status then lists exactly the
    // fleet's own leftovers.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = ecsync_daemon(&w.moto, &w.repo, w.cache.path(), &addr);
    let expected: BTreeSet<(String, String)> = [
        ("securityGroup", w.fleet_sg.clone()),
        ("elasticIp", w.address.clone()),
        ("image", w.image.clone()),
    ]
    .into_iter()
    .map(|(k, id)| (k.to_string(), id))
    .chain(
        data_volumes
            .iter()
            .map(|v| ("volume".to_string(), v.clone())),
    )
    .collect();
    let listed = |items: &[Value]| -> BTreeSet<(String, String)> {
        items
            .iter()
            .filter(|i| i["state"] == "leftover")
            .map(|i| {
                (
                    i["kind"].as_str().unwrap_or_default().to_string(),
                    i["id"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let group_gone = async || {
        w.moto
            .autoscaling()
            .describe_auto_scaling_groups()
            .auto_scaling_group_names("web-asg")
            .send()
            .await
            .is_ok_and(|o| o.auto_scaling_groups().is_empty())
    };
    let done = wait_until_async(Duration::from_secs(60), async || {
        group_gone().await && leftovers_of(&addr).is_some_and(|items| listed(&items) == expected)
    })
    .await;
    assert!(
        done,
        "status: {:?}\nlogs:\n{}",
        leftovers_of(&addr),
        d.logs()
    );
    let items = leftovers_of(&addr).unwrap();
    for i in items.iter().filter(|i| i["state"] == "leftover") {
        assert_eq!(
            (i["cluster"].as_str(), i["service"].as_str()),
            (Some("prod"), Some("web"))
        );
    }

    // The record is the tag, on exactly those; and nothing was deleted.
    let recorded = w.recorded().await;
    let tagged: BTreeSet<(String, String)> = recorded
        .keys()
        .map(|(k, id)| (k.to_string(), id.clone()))
        .collect();
    assert_eq!(tagged, expected);
    assert!(recorded.values().all(|v| v == "prod/web"), "{recorded:?}");
    w.all_still_exist(&data_volumes).await;
    let logs = d.logs();
    assert_eq!(
        logs.matches("tagged leftovers of the fleet").count(),
        1,
        "recorded once, when the decommission started:\n{logs}"
    );
    // Before the clock: a crash in between records again, never not at all.
    let recorded_at = logs.find("tagged leftovers of the fleet");
    let clock_at = logs.find("tagged Auto Scaling group");
    assert!(
        recorded_at.is_some() && clock_at.is_some() && recorded_at < clock_at,
        "{logs}"
    );
}
