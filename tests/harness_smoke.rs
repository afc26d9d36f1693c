//! Proves the end-to-end harness in `tests/common` works: moto starts and is isolated per test,
//! the SDK clients and seeding helpers do what they say against it, and the git, process and
//! HTTP helpers behave. Nothing here tests ecsync itself.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use aws_sdk_ecs::types::{AwsVpcConfiguration, ContainerDefinition, NetworkConfiguration};
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
use common::{Daemon, GitRepo, Moto, http_get, http_post, wait_until, wait_until_async};

#[test]
fn two_motos_run_side_by_side_and_are_isolated() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Moto::start);
        let b = s.spawn(Moto::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.endpoint(), b.endpoint());
    for m in [&a, &b] {
        let env = m.env();
        assert!(env.contains(&("AWS_ENDPOINT_URL".into(), m.endpoint())));
        assert!(env.contains(&("AWS_REGION".into(), "us-east-1".into())));
        // moto answers plain HTTP on its port.
        let (status, _) = http_get(&m.addr(), "/moto-api/");
        assert_eq!(status, 200, "moto log:\n{}", m.log());
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        a.create_cluster("only-in-a").await;
        let in_a = a.ecs().list_clusters().send().await.unwrap();
        let in_b = b.ecs().list_clusters().send().await.unwrap();
        assert_eq!(in_a.cluster_arns().len(), 1);
        assert!(in_b.cluster_arns().is_empty(), "{:?}", in_b.cluster_arns());
    });

    // Dropping a moto stops it.
    let addr = a.addr();
    drop(a);
    assert!(
        wait_until(Duration::from_secs(5), || common::try_http_get(&addr, "/")
            .is_err()),
        "moto still answering on {addr} after drop"
    );
}

#[tokio::test]
async fn ecs_cluster_is_visible_through_the_sdk() {
    let moto = Moto::start();
    let arn = moto.create_cluster("demo").await;
    assert!(arn.ends_with(":cluster/demo"), "{arn}");

    // Also through an SdkConfig-built client, as ecsync builds its own.
    let ecs = aws_sdk_ecs::Client::new(&moto.sdk_config().await);
    let out = ecs
        .describe_clusters()
        .clusters("demo")
        .send()
        .await
        .unwrap();
    let cluster = &out.clusters()[0];
    assert_eq!(cluster.cluster_name(), Some("demo"));
    assert_eq!(cluster.status(), Some("ACTIVE"));
}

#[tokio::test]
async fn default_network_is_found() {
    let moto = Moto::start();
    let net = moto.default_network().await;
    assert!(net.vpc_id.starts_with("vpc-"), "{net:?}");
    assert_eq!(net.subnets.len(), 2);
    assert!(
        net.subnets.iter().all(|s| s.starts_with("subnet-")),
        "{net:?}"
    );
    assert_ne!(net.subnets[0], net.subnets[1]);
    assert!(net.security_group.starts_with("sg-"), "{net:?}");
}

#[tokio::test]
async fn alb_listener_and_instances_are_registered_and_healthy() {
    let moto = Moto::start();
    let net = moto.default_network().await;
    let tg = moto.create_target_group("web-ec2", "instance", 80).await;
    let ecs_tg = moto.create_target_group("web-ecs", "ip", 80).await;
    let (lb, listener) = moto
        .create_alb_with_listener("web", &net.subnets, &net.security_group, &tg)
        .await;
    assert!(lb.contains(":loadbalancer/app/web/"), "{lb}");
    assert!(listener.contains(":listener/app/web/"), "{listener}");

    let ids = moto.run_instances(3, &[("app", "web")]).await;
    assert_eq!(ids.len(), 3);
    moto.register_instances(&tg, &ids).await;

    let elbv2 = moto.elbv2();
    let listeners = elbv2
        .describe_listeners()
        .load_balancer_arn(&lb)
        .send()
        .await
        .unwrap();
    let action = &listeners.listeners()[0].default_actions()[0];
    assert_eq!(action.target_group_arn(), Some(tg.as_str()));

    let health = elbv2
        .describe_target_health()
        .target_group_arn(&tg)
        .send()
        .await
        .unwrap();
    let mut healthy: Vec<String> = health
        .target_health_descriptions()
        .iter()
        .filter(|d| {
            d.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy)
        })
        .filter_map(|d| d.target().and_then(|t| t.id()).map(str::to_string))
        .collect();
    healthy.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(healthy, want, "{health:?}");

    // An ip target group is empty until the test registers targets for the "tasks".
    let empty = elbv2
        .describe_target_health()
        .target_group_arn(&ecs_tg)
        .send()
        .await
        .unwrap();
    assert!(empty.target_health_descriptions().is_empty());
    moto.register_ip_targets(&ecs_tg, &["10.0.1.10"]).await;
    let one = elbv2
        .describe_target_health()
        .target_group_arn(&ecs_tg)
        .send()
        .await
        .unwrap();
    assert_eq!(one.target_health_descriptions().len(), 1);

    // The instances carry their tags and can be found by them.
    let found = moto
        .ec2()
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:app")
                .values("web")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let n: usize = found
        .reservations()
        .iter()
        .map(|r| r.instances().len())
        .sum();
    assert_eq!(n, 3);
}

#[tokio::test]
async fn start_with_env_reaches_moto() {
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let net = moto.default_network().await;
    moto.create_cluster("c").await;
    let ecs = moto.ecs();
    ecs.register_task_definition()
        .family("svc")
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("public.ecr.aws/nginx/nginx:1.27")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let svc = ecs
        .create_service()
        .cluster("c")
        .service_name("svc")
        .task_definition("svc")
        .desired_count(2)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .set_subnets(Some(net.subnets.clone()))
                        .security_groups(&net.security_group)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let svc = svc.service().unwrap();
    assert_eq!(svc.running_count(), 2, "{svc:?}");
}

#[test]
fn seed_demo_matches_the_demo_manifests() {
    // seed_demo.py exits non-zero if a subnet or security group named in manifests/demo does not
    // exist in the seeded moto; Moto::seed_demo asserts success.
    let moto = Moto::start();
    let out = moto.seed_demo();
    assert!(out.contains("web-ec2"), "{out}");
    for id in ["subnet-a44955179a2732165", "sg-bb6f21e967e361409"] {
        assert!(
            out.contains(id),
            "seeded network is not the manifests' one:\n{out}"
        );
    }
    // A second run on the same moto is a no-op, not an error.
    assert!(moto.seed_demo().contains("nothing to do"));
}

#[tokio::test]
async fn seed_random_makes_default_network_ids_deterministic() {
    let (a, b) = (Moto::start(), Moto::start());
    a.seed_random(7);
    b.seed_random(7);
    let (na, nb) = (a.default_network().await, b.default_network().await);
    assert_eq!((na.vpc_id, na.subnets), (nb.vpc_id, nb.subnets));
}

#[test]
fn git_repo_commits_and_branches() {
    let repo = GitRepo::new();
    repo.write("manifests/web.yaml", "kind: Service\n");
    let first = repo.commit("add web");
    assert_eq!(first.len(), 40, "{first}");
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()), "{first}");
    assert_eq!(repo.head(), first);
    assert!(repo.path().join(".git").is_dir());
    assert_eq!(repo.url(), repo.path().display().to_string());

    repo.checkout_new_branch("feature");
    repo.remove("manifests/web.yaml");
    let second = repo.commit("remove web");
    assert_ne!(first, second);
    assert!(!repo.path().join("manifests/web.yaml").exists());
    repo.checkout("main");
    assert_eq!(repo.head(), first);
    assert!(repo.path().join("manifests/web.yaml").exists());

    // `git clone` of url() works, as ecsync will do.
    let dest = tempfile::tempdir().unwrap();
    let status = Command::new("git")
        .args(["clone", "-q", &repo.file_url()])
        .arg(dest.path().join("clone"))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn daemon_captures_output_and_takes_signals() {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        // The trap first: "oops" is what the test waits for before it sends TERM, and a TERM
        // that arrived before the trap would kill the shell (seen under load).
        "trap 'echo draining; exit 0' TERM; echo started; echo oops >&2; \
         while :; do sleep 0.05; done",
    ]);
    let mut d = Daemon::spawn(cmd);
    assert!(d.pid() > 0);
    assert!(
        wait_until(Duration::from_secs(5), || d.logs().contains("oops")),
        "{}",
        d.logs()
    );
    assert!(d.stdout().contains("started"));
    assert!(d.try_wait().is_none());
    d.signal("TERM");
    let status = d
        .wait_timeout(Duration::from_secs(5))
        .expect("exits on TERM");
    assert!(status.success());
    assert!(d.stdout().contains("draining"));

    // Drop kills what is still running.
    let d = Daemon::spawn({
        let mut c = Command::new("sleep");
        c.arg("60");
        c
    });
    let pid = d.pid().to_string();
    drop(d);
    let alive = Command::new("kill")
        .args(["-0", &pid])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!alive.success(), "pid {pid} survived drop");
}

#[test]
fn ecsync_binary_is_built_for_tests() {
    let cmd = common::ecsync();
    assert!(std::path::Path::new(cmd.get_program()).is_file());
}

#[test]
fn http_helpers_speak_http_1_1() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for (i, conn) in listener.incoming().take(2).enumerate() {
            let mut conn = conn.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read until the headers and the announced body are in.
            loop {
                let n = conn.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            requests.push(String::from_utf8(buf).unwrap());
            let resp: &[u8] = if i == 0 {
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
            } else {
                b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbad\r\n4;x=y\r\n sig\r\n0\r\n\r\n"
            };
            conn.write_all(resp).unwrap();
        }
        requests
    });

    assert_eq!(http_get(&addr, "/healthz"), (200, "hello".to_string()));
    let (status, body) = http_post(
        &addr,
        "/hooks/git",
        &[
            ("X-Hub-Signature-256", "sha256=00"),
            ("Content-Type", "application/json"),
        ],
        br#"{"ref":"refs/heads/main"}"#,
    );
    assert_eq!((status, body.as_str()), (401, "bad sig"));

    let requests = server.join().unwrap();
    assert!(
        requests[0].starts_with("GET /healthz HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    assert!(requests[0].contains("Connection: close\r\n"));
    assert!(requests[1].starts_with("POST /hooks/git HTTP/1.1\r\n"));
    assert!(requests[1].contains("X-Hub-Signature-256: sha256=00\r\n"));
    assert!(requests[1].ends_with("\r\n\r\n{\"ref\":\"refs/heads/main\"}"));

    assert!(common::free_port() > 0);
}

#[tokio::test]
async fn wait_until_async_polls_until_true() {
    let mut n = 0;
    assert!(
        wait_until_async(Duration::from_secs(5), async || {
            n += 1;
            n >= 3
        })
        .await
    );
    assert!(!wait_until_async(Duration::from_millis(300), async || false).await);
}
