//! A private `moto_server` per test (DESIGN §10), plus SDK clients and seeding helpers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, InstanceType, ResourceType, Tag as Ec2Tag, TagSpecification};
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, ProtocolEnum,
    TargetDescription, TargetTypeEnum,
};

use super::http::{free_port, http_request};

pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";
/// moto validates AMIs only with `MOTO_ENABLE_AMI_VALIDATION=true`; any ID works otherwise.
pub const AMI: &str = "ami-12c6146b";

const NOT_FOUND: &str = "moto_server not found: install it with `pip install 'moto[server]'` \
                         (the tests need a local AWS emulator)";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The default VPC as moto creates it: two of its subnets (us-east-1a, us-east-1b, in that
/// order) and its `default` security group.
#[derive(Debug, Clone)]
pub struct Network {
    pub vpc_id: String,
    pub subnets: Vec<String>,
    pub security_group: String,
}

/// A running `moto_server` on a free loopback port; killed and reaped on drop.
pub struct Moto {
    child: Child,
    port: u16,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = format!("127.0.0.1:{port}");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("moto_server exited early with {status}"));
        }
        // Any HTTP answer means it is serving.
        if http_request(&addr, "GET", "/moto-api/", &[], b"").is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "moto_server not answering on {addr} after {START_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Moto {
    /// Start a fresh moto_server with default settings.
    pub fn start() -> Moto {
        Moto::start_with_env(&[])
    }

    /// Start a fresh moto_server with extra environment variables, for instance
    /// `[("MOTO_ECS_SERVICE_RUNNING", "2")]` so new services report two running tasks and a
    /// completed rollout. Panics, with moto's log, if it does not answer within 20 s.
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let bin = find_on_path("moto_server").unwrap_or_else(|| panic!("{NOT_FOUND}"));
        Moto::start_program(bin, &[], env)
    }

    /// moto with ECS tasks as real ECS reports them (`tests/moto/ecs_tasks.py`):
    /// container `cpu` and `memory` as strings, so the SDK reads RunTask and
    /// DescribeTasks answers, and a command override holding
    /// `ECSYNC_TEST_EXIT=<n>` makes that container exit `n`.
    pub fn start_with_ecs_tasks(env: &[(&str, &str)]) -> Moto {
        let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto/ecs_tasks.py");
        Moto::start_program(PathBuf::from("python3"), &[launcher], env)
    }

    fn start_program(bin: PathBuf, pre_args: &[PathBuf], env: &[(&str, &str)]) -> Moto {
        let dir = tempfile::tempdir().expect("tempdir for moto_server");
        // The port is free when we look but could be taken before moto binds it: retry then.
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            let port = free_port();
            let log_path = dir.path().join(format!("moto-{attempt}.log"));
            let log = File::create(&log_path).expect("create moto log");
            let mut child = Command::new(&bin)
                .args(pre_args)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            match wait_ready(&mut child, port) {
                Ok(()) => {
                    return Moto {
                        child,
                        port,
                        log_path,
                        _dir: dir,
                    };
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    let retry = log.contains("in use");
                    failures.push(format!("attempt {attempt}: {why}\n--- moto log ---\n{log}"));
                    if !retry {
                        break;
                    }
                }
            }
        }
        panic!("moto_server did not start:\n{}", failures.join("\n"));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, for [`super::http_get`] and friends.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything moto has logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The environment that points the AWS SDK (and so ecsync) at this moto.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint().as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn credentials() -> Credentials {
        Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "ecsync-tests")
    }

    /// The leader-election lease table ecsync expects (partition key `lease`, a string).
    pub async fn create_lease_table(&self, table: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let ddb = aws_sdk_dynamodb::Client::new(&self.sdk_config().await);
        ddb.create_table()
            .table_name(table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("lease")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("a complete attribute definition"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("lease")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("a complete key schema"),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("moto creates the lease table");
    }

    /// A shared SDK config for this moto (endpoint, region, static test credentials).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new(REGION))
            .credentials_provider(Self::credentials())
            .load()
            .await
    }

    /// Seed moto's random generator (`POST /moto-api/seed?a=N`): IDs created afterwards are
    /// deterministic. The default VPC is created on the first EC2 call, so seed before it to
    /// get the same subnet and security-group IDs every time.
    pub fn seed_random(&self, seed: u64) {
        let resp = http_request(
            &self.addr(),
            "POST",
            &format!("/moto-api/seed?a={seed}"),
            &[],
            b"",
        )
        .expect("POST /moto-api/seed");
        assert_eq!(resp.status, 200, "seed moto: {}", resp.body);
    }

    /// Run `scripts/seed_demo.py` against this moto: the demo's cluster, ALB, target groups and
    /// legacy instances, with the network IDs that `manifests/demo/*.yaml` name. Call it on a
    /// fresh moto (before any EC2 call), as the script seeds moto's random generator.
    pub fn seed_demo(&self) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("python3")
            .arg(root.join("scripts/seed_demo.py"))
            .args(["--endpoint", &self.endpoint()])
            .arg("--manifests")
            .arg(root.join("manifests/demo"))
            .envs(self.env())
            .output()
            .expect("run python3 scripts/seed_demo.py");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "seed_demo.py failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The default VPC, its subnets in us-east-1a and us-east-1b, and its default security group.
    pub async fn default_network(&self) -> Network {
        let ec2 = self.ec2();
        let vpcs = ec2
            .describe_vpcs()
            .filters(Filter::builder().name("isDefault").values("true").build())
            .send()
            .await
            .expect("DescribeVpcs");
        let vpc_id = vpcs
            .vpcs()
            .first()
            .and_then(|v| v.vpc_id())
            .expect("moto has a default VPC")
            .to_string();
        let subnets = ec2
            .describe_subnets()
            .filters(Filter::builder().name("vpc-id").values(&vpc_id).build())
            .send()
            .await
            .expect("DescribeSubnets");
        let in_az = |az: &str| {
            subnets
                .subnets()
                .iter()
                .find(|s| s.availability_zone() == Some(az))
                .and_then(|s| s.subnet_id())
                .unwrap_or_else(|| panic!("default VPC has a subnet in {az}"))
                .to_string()
        };
        let subnets = vec![in_az("us-east-1a"), in_az("us-east-1b")];
        let groups = ec2
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(&vpc_id).build())
            .filters(
                Filter::builder()
                    .name("group-name")
                    .values("default")
                    .build(),
            )
            .send()
            .await
            .expect("DescribeSecurityGroups");
        let security_group = groups
            .security_groups()
            .first()
            .and_then(|g| g.group_id())
            .expect("default VPC has a default security group")
            .to_string();
        Network {
            vpc_id,
            subnets,
            security_group,
        }
    }

    /// Create an ECS cluster; returns its ARN.
    pub async fn create_cluster(&self, name: &str) -> String {
        self.ecs()
            .create_cluster()
            .cluster_name(name)
            .send()
            .await
            .expect("CreateCluster")
            .cluster()
            .and_then(|c| c.cluster_arn())
            .expect("cluster ARN")
            .to_string()
    }

    /// Create an HTTP target group in the default VPC; `target_type` is `"ip"` or `"instance"`.
    /// Returns its ARN.
    pub async fn create_target_group(&self, name: &str, target_type: &str, port: i32) -> String {
        let vpc_id = self.default_network().await.vpc_id;
        let out = self
            .elbv2()
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(port)
            .vpc_id(vpc_id)
            .target_type(TargetTypeEnum::from(target_type))
            .health_check_path("/")
            .send()
            .await
            .expect("CreateTargetGroup");
        out.target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .expect("target group ARN")
            .to_string()
    }

    /// Create an internet-facing ALB and an HTTP listener on port 80 whose default action
    /// forwards to `target_group_arn`. Returns (load balancer ARN, listener ARN).
    pub async fn create_alb_with_listener(
        &self,
        name: &str,
        subnets: &[String],
        security_group: &str,
        target_group_arn: &str,
    ) -> (String, String) {
        let elbv2 = self.elbv2();
        let lb = elbv2
            .create_load_balancer()
            .name(name)
            .set_subnets(Some(subnets.to_vec()))
            .security_groups(security_group)
            .scheme(LoadBalancerSchemeEnum::InternetFacing)
            .r#type(LoadBalancerTypeEnum::Application)
            .send()
            .await
            .expect("CreateLoadBalancer");
        let lb_arn = lb
            .load_balancers()
            .first()
            .and_then(|l| l.load_balancer_arn())
            .expect("load balancer ARN")
            .to_string();
        let listener = elbv2
            .create_listener()
            .load_balancer_arn(&lb_arn)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(target_group_arn)
                    .build(),
            )
            .send()
            .await
            .expect("CreateListener");
        let listener_arn = listener
            .listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .expect("listener ARN")
            .to_string();
        (lb_arn, listener_arn)
    }

    /// Run `n` t3.micro instances in the default VPC's first subnet, tagged with `tags`;
    /// returns their IDs (state `running` at once in moto).
    pub async fn run_instances(&self, n: i32, tags: &[(&str, &str)]) -> Vec<String> {
        let net = self.default_network().await;
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (k, v) in tags {
            spec = spec.tags(Ec2Tag::builder().key(*k).value(*v).build());
        }
        let mut req = self
            .ec2()
            .run_instances()
            .image_id(AMI)
            .instance_type(InstanceType::T3Micro)
            .min_count(n)
            .max_count(n)
            .subnet_id(&net.subnets[0])
            .security_group_ids(&net.security_group);
        if !tags.is_empty() {
            req = req.tag_specifications(spec.build());
        }
        let out = req.send().await.expect("RunInstances");
        out.instances()
            .iter()
            .map(|i| i.instance_id().expect("instance ID").to_string())
            .collect()
    }

    /// Register EC2 instances (port 80) in an `instance` target group.
    pub async fn register_instances(&self, target_group_arn: &str, instance_ids: &[String]) {
        self.register_targets(target_group_arn, instance_ids).await;
    }

    /// Register IP targets (port 80) in an `ip` target group: stands in for ECS placing tasks.
    pub async fn register_ip_targets(&self, target_group_arn: &str, ips: &[&str]) {
        let ips: Vec<String> = ips.iter().map(|s| s.to_string()).collect();
        self.register_targets(target_group_arn, &ips).await;
    }

    async fn register_targets(&self, target_group_arn: &str, ids: &[String]) {
        let targets = ids
            .iter()
            .map(|id| TargetDescription::builder().id(id).port(80).build())
            .collect();
        self.elbv2()
            .register_targets()
            .target_group_arn(target_group_arn)
            .set_targets(Some(targets))
            .send()
            .await
            .expect("RegisterTargets");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One SDK client per service, pointed at this moto with the test credentials.
macro_rules! moto_clients {
    ($($name:ident => $krate:ident),* $(,)?) => {
        impl Moto {
            $(
                pub fn $name(&self) -> $krate::Client {
                    let conf = $krate::Config::builder()
                        .behavior_version(BehaviorVersion::latest())
                        .endpoint_url(self.endpoint())
                        .region(Region::new(REGION))
                        .credentials_provider(Self::credentials())
                        .build();
                    $krate::Client::from_conf(conf)
                }
            )*
        }
    };
}

moto_clients!(
    ecs => aws_sdk_ecs,
    ec2 => aws_sdk_ec2,
    elbv2 => aws_sdk_elasticloadbalancingv2,
    autoscaling => aws_sdk_autoscaling,
    cloudwatch => aws_sdk_cloudwatch,
    scheduler => aws_sdk_scheduler,
    eventbridge => aws_sdk_eventbridge,
);
