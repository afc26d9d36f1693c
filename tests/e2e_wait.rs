//! End to end: `ecsync apply --wait` follows the rollouts its pass started.
//! moto settles a deployment when the service is created (by its
//! MOTO_ECS_SERVICE_RUNNING setting), so both ends are driven from there;
//! replacements and rollbacks, which moto does not model, are covered by
//! the follower's tests against aws-smithy-mocks.

mod common;

use common::{GitRepo, Moto, ecsync_in, service_yaml};

/// A cluster and a repository declaring `web` with two tasks.
async fn web(moto: &Moto) -> (GitRepo, tempfile::TempDir) {
    moto.create_cluster("alpha").await;
    let net = moto.default_network().await;
    let repo = GitRepo::new();
    repo.write(
        "services/web.yaml",
        &service_yaml("web", "alpha", &net, "nginx:1.27", "a", 2),
    );
    repo.commit("web");
    (repo, tempfile::tempdir().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_0_once_the_new_service_is_running() {
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (repo, cache) = web(&moto).await;
    let run = ecsync_in(
        &moto,
        &repo,
        cache.path(),
        "apply",
        &["--wait", "--timeout", "30s"],
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("1 rollout(s) completed"), "{run}");
    // Not a terminal: plain progress lines on stderr.
    assert!(
        run.stderr.contains("alpha/web: completed (2/2 running"),
        "{run}"
    );

    // Nothing changed, nothing to follow.
    let again = ecsync_in(&moto, &repo, cache.path(), "apply", &["--wait"]);
    assert_eq!(again.code, 0, "{again}");
    assert!(again.stderr.contains("started no rollout"), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_1_when_the_rollout_outlasts_the_timeout() {
    // No task ever runs: the deployment stays IN_PROGRESS.
    let moto = Moto::start();
    let (repo, cache) = web(&moto).await;
    let run = ecsync_in(
        &moto,
        &repo,
        cache.path(),
        "apply",
        &["--wait", "--timeout", "4s"],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stdout.contains("alpha/web: timed out after 4s"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("alpha/web: in progress (0/2 running, rollout IN_PROGRESS"),
        "{run}"
    );
}
