#!/usr/bin/env python3
"""Seed a fresh moto_server with the small legacy setup the demo manifests expect.

What it creates (account 123456789012, us-east-1):

* ECS cluster ``demo``;
* nothing new for the network: the default VPC's subnets in us-east-1a/us-east-1b and its
  default security group are used, and their IDs are made deterministic by seeding moto's random
  generator (``POST /moto-api/seed?a=SEED``) *before the first EC2 call*;
* an internet-facing ALB ``web`` in those subnets with target groups ``web-ecs`` (target type
  ``ip``, for the ECS service) and ``web-ec2`` (target type ``instance``), and a listener on port
  80 forwarding everything to ``web-ec2``;
* the legacy fleet in ``web-ec2``: three EC2 instances tagged ``app=web``, and an Auto Scaling
  group ``web-asg`` of two more (launch template ``web-lt``) attached to it;
* a CloudWatch alarm ``web-5xx`` on the ALB's target 5xx count (state OK), the migration's gate.

moto 5.2 cannot be told which IDs to give a VPC, subnet or security group (its ``_custom_id_``
tag is not wired into EC2), and its ECS checks that every subnet and security group in an
``awsvpcConfiguration`` exists. Seeding the generator is what makes the IDs written in
``manifests/demo/*.yaml`` match. The script checks that they do and fails loudly, printing the
actual IDs, if a different moto version hands out others.

Usage: seed_demo.py [--endpoint URL] [--manifests DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import urllib.request
from pathlib import Path

import boto3

REGION = "us-east-1"
SEED = 4242
AMI = "ami-12c6146b"  # any ID works: moto validates AMIs only with MOTO_ENABLE_AMI_VALIDATION
ID_RE = re.compile(r"\b((?:subnet|sg)-[0-9a-f]{8,17})\b")


def client(name: str, endpoint: str):
    return boto3.client(
        name,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )


def seed_random(endpoint: str, seed: int) -> None:
    req = urllib.request.Request(f"{endpoint}/moto-api/seed?a={seed}", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def default_network(ec2) -> tuple[str, list[str], str]:
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    vpc_id = vpc["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    by_az = {s["AvailabilityZone"]: s["SubnetId"] for s in subnets}
    subnet_ids = [by_az[f"{REGION}a"], by_az[f"{REGION}b"]]
    sg_id = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": ["default"]},
        ]
    )["SecurityGroups"][0]["GroupId"]
    return vpc_id, subnet_ids, sg_id


def manifest_ids(manifests: Path) -> set[str]:
    ids: set[str] = set()
    for path in sorted(manifests.glob("*.y*ml")):
        for line in path.read_text().splitlines():
            code = line.split("#", 1)[0]  # IDs quoted in comments do not count
            ids.update(ID_RE.findall(code))
    return ids


def main() -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5555"))
    parser.add_argument("--manifests", type=Path, default=here.parent / "manifests" / "demo")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    endpoint = args.endpoint.rstrip("/")

    ecs = client("ecs", endpoint)
    ec2 = client("ec2", endpoint)
    elbv2 = client("elbv2", endpoint)

    # An existing cluster `demo` means this moto was seeded already: re-seeding the generator
    # then would make moto hand out IDs it has handed out before.
    already = bool(ecs.describe_clusters(clusters=["demo"])["clusters"])
    if not already:
        # Must come before anything touches EC2: the default VPC is created, with random IDs,
        # the first time the EC2 backend for the region is used. (ECS calls do not touch it.)
        seed_random(endpoint, args.seed)
    vpc_id, subnet_ids, sg_id = default_network(ec2)

    wanted = manifest_ids(args.manifests)
    known = {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    known |= {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    missing = sorted(wanted - known)
    if missing:
        print(
            f"seed_demo: the manifests in {args.manifests} name {', '.join(missing)}, which this "
            f"moto_server does not have.\n"
            f"  Was it already used before seeding, or is it a moto version other than 5.2?\n"
            f"  This moto's default network: vpc {vpc_id}, subnets {subnet_ids}, security group {sg_id}.\n"
            f"  Start a fresh moto_server, or put these IDs in the manifests.",
            file=sys.stderr,
        )
        return 1

    if already:
        print(f"seed_demo: {endpoint} already has cluster 'demo'; nothing to do")
        return 0
    ecs.create_cluster(clusterName="demo")

    tgs = {}
    for name, target_type in (("web-ecs", "ip"), ("web-ec2", "instance")):
        tg = elbv2.create_target_group(
            Name=name,
            Protocol="HTTP",
            Port=80,
            VpcId=vpc_id,
            TargetType=target_type,
            HealthCheckPath="/",
        )["TargetGroups"][0]
        tgs[name] = tg["TargetGroupArn"]

    lb = elbv2.create_load_balancer(
        Name="web",
        Subnets=subnet_ids,
        SecurityGroups=[sg_id],
        Scheme="internet-facing",
        Type="application",
    )["LoadBalancers"][0]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tgs["web-ec2"]}],
    )["Listeners"][0]

    instances = ec2.run_instances(
        ImageId=AMI,
        InstanceType="t3.micro",
        MinCount=3,
        MaxCount=3,
        SubnetId=subnet_ids[0],
        SecurityGroupIds=[sg_id],
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "app", "Value": "web"}, {"Key": "Name", "Value": "web-legacy"}]}
        ],
    )["Instances"]
    instance_ids = [i["InstanceId"] for i in instances]
    elbv2.register_targets(
        TargetGroupArn=tgs["web-ec2"],
        Targets=[{"Id": i, "Port": 80} for i in instance_ids],
    )

    # The rest of the legacy fleet, as it usually is: an Auto Scaling group behind the
    # target group (Auto Scaling registers its instances there itself).
    ec2.create_launch_template(
        LaunchTemplateName="web-lt",
        LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro", "SecurityGroupIds": [sg_id]},
    )
    autoscaling = client("autoscaling", endpoint)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web-asg",
        LaunchTemplate={"LaunchTemplateName": "web-lt"},
        MinSize=2,
        MaxSize=4,
        DesiredCapacity=2,
        VPCZoneIdentifier=subnet_ids[0],
        TargetGroupARNs=[tgs["web-ec2"]],
        Tags=[{"Key": "Name", "Value": "web-legacy", "PropagateAtLaunch": True}],
    )
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])
    group_ids = [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]

    # The gate that sees what target health cannot: HTTP 500s from the new side.
    client("cloudwatch", endpoint).put_metric_alarm(
        AlarmName="web-5xx",
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Dimensions=[{"Name": "LoadBalancer", "Value": lb["LoadBalancerArn"].split(":loadbalancer/", 1)[-1]}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10.0,
        ComparisonOperator="GreaterThanThreshold",
    )

    # moto places no ECS tasks, so nothing would ever register in web-ecs; two IP
    # targets stand in for the service's tasks and let the migration's
    # ecs-healthy gate pass, as it would once ECS had started them.
    elbv2.register_targets(
        TargetGroupArn=tgs["web-ecs"],
        Targets=[{"Id": ip, "Port": 80} for ip in ("172.31.0.10", "172.31.16.10")],
    )

    print("seed_demo: seeded", endpoint)
    print("  cluster        demo")
    print(f"  vpc            {vpc_id}")
    print(f"  subnets        {' '.join(subnet_ids)}")
    print(f"  security group {sg_id}")
    print(f"  load balancer  {lb['LoadBalancerArn']}")
    print(f"  listener :80   {listener['ListenerArn']}  -> web-ec2")
    for name, arn in tgs.items():
        print(f"  target group   {name:8} {arn}")
    print(f"  instances      {' '.join(instance_ids)}  (app=web, registered in web-ec2)")
    print(f"  auto scaling   web-asg (launch template web-lt): {' '.join(group_ids)}  (in web-ec2)")
    print("  alarm          web-5xx  (OK; aws cloudwatch set-alarm-state to trip it)")
    print("  ip targets     172.31.0.10 172.31.16.10  (stand-ins for ECS tasks, in web-ecs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
