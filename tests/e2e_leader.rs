//! End to end: two replicas, one DynamoDB lease; exactly one acts, and killing
//! it hands over within one lease duration.

mod common;

use std::time::{Duration, Instant};

use common::{
    Daemon, GitRepo, Moto, ecsync_with, free_port, http_get, reconcile_passes, service_yaml,
    status_role, try_http_get, wait_until,
};

const TABLE: &str = "ecsync-leases";

fn replica(
    moto: &Moto,
    repo: &GitRepo,
    holder: &str,
    addr: &str,
    cache: &tempfile::TempDir,
) -> Daemon {
    let mut cmd = ecsync_with(moto);
    cmd.args([
        "run",
        "--repo",
        &repo.url(),
        "--path",
        "services",
        "--interval",
        "1s",
    ])
    .args([
        "--listen",
        addr,
        "--leader-election-table",
        TABLE,
        "--lease-holder",
        holder,
    ])
    .args([
        // Long enough that a moto stalled for a few seconds by a loaded CI
        // machine does not make the leader step down mid-test.
        "--lease-duration",
        "6s",
        "--lease-renew-deadline",
        "4s",
        "--lease-retry-period",
        "500ms",
    ])
    .arg("--cache-dir")
    .arg(cache.path());
    Daemon::spawn(cmd)
}

async fn image_of(moto: &Moto) -> Option<String> {
    let ecs = moto.ecs();
    let svc = ecs
        .describe_services()
        .cluster("alpha")
        .services("web")
        .send()
        .await
        .ok()?;
    let td = svc.services().first()?.task_definition()?.to_string();
    let out = ecs
        .describe_task_definition()
        .task_definition(td)
        .send()
        .await
        .ok()?;
    Some(
        out.task_definition()?
            .container_definitions()
            .first()?
            .image()?
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_one_replica_acts_and_killing_it_hands_over() {
    let moto = Moto::start();
    moto.create_lease_table(TABLE).await;
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "alpha", &net, "app:1", "x", 1),
    );
    repo.commit("web");

    let (addr_a, addr_b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let (cache_a, cache_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = replica(&moto, &repo, "replica-a", &addr_a, &cache_a);
    // moto does not serialise conditional writes: two first takeovers in the
    // same few milliseconds can both succeed there, which DynamoDB never lets
    // happen. So the second replica starts once the first holds the lease.
    assert!(
        wait_until(Duration::from_secs(20), || status_role(&addr_a).as_deref()
            == Some("leader")),
        "the first replica never took the free lease\n{}",
        a.logs()
    );
    let mut b = replica(&moto, &repo, "replica-b", &addr_b, &cache_b);

    let settled = wait_until(Duration::from_secs(20), || {
        let roles = [status_role(&addr_a), status_role(&addr_b)];
        roles
            .iter()
            .filter(|r| r.as_deref() == Some("leader"))
            .count()
            == 1
            && roles
                .iter()
                .filter(|r| r.as_deref() == Some("follower"))
                .count()
                == 1
    });
    assert!(
        settled,
        "one leader and one follower expected\n--- a\n{}\n--- b\n{}",
        a.logs(),
        b.logs()
    );
    let (leader_addr, follower_addr) = if status_role(&addr_a).as_deref() == Some("leader") {
        (addr_a.clone(), addr_b.clone())
    } else {
        (addr_b.clone(), addr_a.clone())
    };
    let mut created = false;
    for _ in 0..100 {
        if image_of(&moto).await.as_deref() == Some("app:1") {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(created, "the leader must have created the service");
    // A pass can outlast the CreateService it made by many seconds on a
    // loaded machine, so wait for the pass before asking for what it publishes.
    assert!(
        wait_until(Duration::from_secs(30), || reconcile_passes(&leader_addr)
            >= 1),
        "the leader counts no pass:\n{}\n{}",
        http_get(&leader_addr, "/metrics").1,
        a.logs() + &b.logs()
    );
    // The leader shows its fencing token once it has finished a pass as leader.
    let token_shown = wait_until(Duration::from_secs(5), || {
        try_http_get(&leader_addr, "/status")
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
            .is_some_and(|v| v["leaseToken"].as_u64().is_some_and(|t| t >= 1))
    });
    assert!(
        token_shown,
        "no fencing token in the leader's /status:\n{}\n{}",
        http_get(&leader_addr, "/status").1,
        a.logs() + &b.logs()
    );
    assert_eq!(
        reconcile_passes(&follower_addr),
        0,
        "a follower never runs a pass"
    );

    // Kill the leader hard: no release, the lease has to expire.
    let (dead, survivor) = if leader_addr == addr_a {
        (&mut a, &addr_b)
    } else {
        (&mut b, &addr_a)
    };
    dead.kill();
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "alpha", &net, "app:2", "x", 1),
    );
    repo.commit("web 2");
    let killed = Instant::now();
    // The lease (6 s, renewed every 0.5 s) must expire before the survivor
    // may take it; the slack is for a loaded CI machine, not part of the design.
    assert!(
        wait_until(Duration::from_secs(16), || status_role(survivor).as_deref()
            == Some("leader")),
        "the survivor never became leader\n{}",
        a.logs() + &b.logs()
    );
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(5000),
        "took over a live lease after {took:?}"
    );
    let mut handed_over = false;
    for _ in 0..300 {
        if image_of(&moto).await.as_deref() == Some("app:2") {
            handed_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        handed_over,
        "the new leader never applied the new commit\n{}",
        a.logs() + &b.logs()
    );
}
