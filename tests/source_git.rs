//! The Git source against real repositories built with the git binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ecsync::adapters::git::{
    GitConfig, GitSource, MAX_MANIFEST_BYTES, ManifestFile, Snapshot, SourceError, load_dir,
};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs git in `dir` isolated from the developer's own configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Fixture {
    tmp: TempDir,
    /// A work repository that the tests commit in and fetch from.
    work: PathBuf,
}

impl Fixture {
    fn new(default_branch: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("upstream");
        std::fs::create_dir(&work).unwrap();
        git(
            &work,
            &[
                "-c",
                &format!("init.defaultBranch={default_branch}"),
                "init",
                "-q",
            ],
        );
        Fixture { tmp, work }
    }

    fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let p = self.work.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }

    fn remove(&self, rel: &str) {
        std::fs::remove_file(self.work.join(rel)).unwrap();
    }

    fn commit(&self, msg: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", msg]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn git(&self, args: &[&str]) -> String {
        git(&self.work, args)
    }

    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    fn url(&self) -> String {
        self.work.to_str().unwrap().to_owned()
    }

    fn source(&self, git_ref: Option<&str>, path: Option<&str>) -> GitSource {
        source_for(&self.url(), git_ref, path, &self.cache())
    }
}

fn config(repo: &str, cache: &Path) -> GitConfig {
    GitConfig {
        repo: repo.to_owned(),
        git_ref: None,
        path: None,
        cache_dir: cache.to_path_buf(),
        token: None,
        ssh_key_file: None,
        timeout: Duration::from_secs(30),
    }
}

fn source_for(repo: &str, git_ref: Option<&str>, path: Option<&str>, cache: &Path) -> GitSource {
    GitSource::new(GitConfig {
        git_ref: git_ref.map(str::to_owned),
        path: path.map(str::to_owned),
        ..config(repo, cache)
    })
}

fn paths(s: &Snapshot) -> Vec<&str> {
    s.files.iter().map(|f| f.path.as_str()).collect()
}

fn contents<'a>(s: &'a Snapshot, path: &str) -> &'a str {
    s.files
        .iter()
        .find(|f| f.path == path)
        .map(|f| &*f.contents)
        .unwrap_or_else(|| panic!("{path} not in {:?}", paths(s)))
}

fn cache_entries(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[tokio::test]
async fn default_ref_is_the_remote_head() {
    let f = Fixture::new("main");
    f.write("web.yaml", "kind: Service # web\n");
    f.write("api.yml", "kind: Service # api\n");
    let sha = f.commit("first");

    let snap = f.source(None, None).fetch().await.unwrap();
    assert_eq!(snap.revision, sha);
    assert_eq!(snap.revision.len(), 40);
    assert_eq!(paths(&snap), ["api.yml", "web.yaml"]);
    assert_eq!(contents(&snap, "web.yaml"), "kind: Service # web\n");
}

#[tokio::test]
async fn default_branch_other_than_main_and_head_moves_are_followed() {
    let f = Fixture::new("trunk");
    f.write("app.yaml", "on: trunk\n");
    let trunk = f.commit("trunk");
    f.git(&["checkout", "-q", "-b", "main"]);
    f.write("app.yaml", "on: main\n");
    let main = f.commit("main");
    f.git(&["checkout", "-q", "trunk"]);

    let bare = f.tmp.path().join("remote.git");
    git(
        f.tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            f.work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let src = source_for(bare.to_str().unwrap(), None, None, &f.cache());

    let snap = src.fetch().await.unwrap();
    assert_eq!(snap.revision, trunk);
    assert_eq!(contents(&snap, "app.yaml"), "on: trunk\n");

    git(&bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    let snap = src.fetch().await.unwrap();
    assert_eq!(snap.revision, main);
    assert_eq!(contents(&snap, "app.yaml"), "on: main\n");
}

#[tokio::test]
async fn branch_by_name_and_full_ref() {
    let f = Fixture::new("main");
    f.write("app.yaml", "v: main\n");
    f.commit("main");
    f.git(&["checkout", "-q", "-b", "feature/x"]);
    f.write("app.yaml", "v: feature\n");
    let feature = f.commit("feature");
    f.git(&["checkout", "-q", "main"]);

    let snap = f.source(Some("feature/x"), None).fetch().await.unwrap();
    assert_eq!(snap.revision, feature);
    assert_eq!(contents(&snap, "app.yaml"), "v: feature\n");

    let snap = f
        .source(Some("refs/heads/feature/x"), None)
        .fetch()
        .await
        .unwrap();
    assert_eq!(snap.revision, feature);
}

#[tokio::test]
async fn annotated_and_lightweight_tags_resolve_to_commits() {
    let f = Fixture::new("main");
    f.write("app.yaml", "v: 1\n");
    let v1 = f.commit("v1");
    f.git(&["tag", "-a", "v1.0.0", "-m", "release 1"]);
    f.write("app.yaml", "v: 2\n");
    let v2 = f.commit("v2");
    f.git(&["tag", "v2-light"]);
    f.write("app.yaml", "v: 3\n");
    f.commit("v3");

    let tag_object = f.git(&["rev-parse", "v1.0.0"]);
    assert_ne!(
        tag_object, v1,
        "fixture: the annotated tag must be its own object"
    );

    let snap = f.source(Some("v1.0.0"), None).fetch().await.unwrap();
    assert_eq!(snap.revision, v1);
    assert_eq!(contents(&snap, "app.yaml"), "v: 1\n");

    let snap = f.source(Some("v2-light"), None).fetch().await.unwrap();
    assert_eq!(snap.revision, v2);
    assert_eq!(contents(&snap, "app.yaml"), "v: 2\n");
}

#[tokio::test]
async fn full_and_abbreviated_commit_shas() {
    let f = Fixture::new("main");
    f.write("app.yaml", "v: old\n");
    let old = f.commit("old");
    f.write("app.yaml", "v: new\n");
    f.commit("new");

    let snap = f.source(Some(&old), None).fetch().await.unwrap();
    assert_eq!(snap.revision, old);
    assert_eq!(contents(&snap, "app.yaml"), "v: old\n");

    let snap = f.source(Some(&old[..10]), None).fetch().await.unwrap();
    assert_eq!(snap.revision, old);

    let upper = old.to_uppercase();
    let snap = f.source(Some(&upper), None).fetch().await.unwrap();
    assert_eq!(snap.revision, old);
}

#[tokio::test]
async fn commit_on_no_branch_is_fetched_by_full_sha() {
    let f = Fixture::new("main");
    f.write("app.yaml", "v: main\n");
    f.commit("main");
    f.git(&["checkout", "-q", "-b", "gone"]);
    f.write("app.yaml", "v: orphan\n");
    let orphan = f.commit("orphan");
    f.git(&["checkout", "-q", "main"]);
    f.git(&["branch", "-q", "-D", "gone"]);

    let snap = f.source(Some(&orphan), None).fetch().await.unwrap();
    assert_eq!(snap.revision, orphan);
    assert_eq!(contents(&snap, "app.yaml"), "v: orphan\n");
}

#[tokio::test]
async fn path_selects_a_subfolder_recursively_and_ignores_other_files() {
    let f = Fixture::new("main");
    f.write("README.md", "# hi\n");
    f.write("root.yaml", "outside: true\n");
    f.write(".github/workflows/ci.yml", "on: push\n");
    f.write("manifests/web.yaml", "web\n");
    f.write("manifests/notes.txt", "not yaml\n");
    f.write("manifests/values.json", "{}\n");
    f.write("manifests/team-a/api.yml", "api\n");
    f.write("manifests/team-a/deep/er/worker.yaml", "worker\n");
    f.write("manifests/.hidden/skip.yaml", "hidden\n");
    f.write("manifests-old/web.yaml", "old\n");
    std::os::unix::fs::symlink("web.yaml", f.work.join("manifests/link.yaml")).unwrap();
    f.commit("tree");

    let expected = [
        "manifests/team-a/api.yml",
        "manifests/team-a/deep/er/worker.yaml",
        "manifests/web.yaml",
    ];
    for path in ["manifests", "./manifests/", "/manifests"] {
        let snap = f.source(None, Some(path)).fetch().await.unwrap();
        assert_eq!(paths(&snap), expected, "path {path:?}");
        assert_eq!(
            contents(&snap, "manifests/team-a/deep/er/worker.yaml"),
            "worker\n"
        );
    }

    let snap = f
        .source(None, Some("manifests/team-a"))
        .fetch()
        .await
        .unwrap();
    assert_eq!(
        paths(&snap),
        [
            "manifests/team-a/api.yml",
            "manifests/team-a/deep/er/worker.yaml"
        ]
    );

    for root in [None, Some(""), Some(".")] {
        let snap = f.source(None, root).fetch().await.unwrap();
        assert_eq!(
            paths(&snap),
            [
                "manifests-old/web.yaml",
                "manifests/team-a/api.yml",
                "manifests/team-a/deep/er/worker.yaml",
                "manifests/web.yaml",
                "root.yaml",
            ],
            "root {root:?}"
        );
    }
}

#[tokio::test]
async fn repeated_fetches_are_incremental_in_one_cache() {
    let f = Fixture::new("main");
    f.write("m/a.yaml", "a: 1\n");
    let first = f.commit("first");
    let src = f.source(None, Some("m"));

    let snap = src.fetch().await.unwrap();
    assert_eq!(snap.revision, first);
    let entries = cache_entries(&f.cache());
    assert_eq!(entries.len(), 1, "{entries:?}");
    let repo_dir = &entries[0];
    let name = repo_dir.file_name().unwrap().to_str().unwrap();
    assert_eq!(name.len(), 16);
    assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(repo_dir.join("HEAD").is_file(), "a bare repository");
    // Survives only if later fetches reuse the directory rather than re-clone.
    std::fs::write(repo_dir.join("ecsync-test-marker"), "x").unwrap();

    f.write("m/b.yml", "b: 1\n");
    f.write("m/a.yaml", "a: 2\n");
    let second = f.commit("second");
    let snap = src.fetch().await.unwrap();
    assert_eq!(snap.revision, second);
    assert_eq!(paths(&snap), ["m/a.yaml", "m/b.yml"]);
    assert_eq!(contents(&snap, "m/a.yaml"), "a: 2\n");

    f.remove("m/a.yaml");
    let third = f.commit("third");
    // A second GitSource on the same cache dir finds the same clone.
    let snap = f.source(None, Some("m")).fetch().await.unwrap();
    assert_eq!(snap.revision, third);
    assert_eq!(paths(&snap), ["m/b.yml"]);

    let snap = src.fetch().await.unwrap();
    assert_eq!(snap.revision, third);
    assert_eq!(cache_entries(&f.cache()), entries);
    assert!(repo_dir.join("ecsync-test-marker").exists());
}

#[tokio::test]
async fn concurrent_fetches_of_one_source_are_serialized() {
    let f = Fixture::new("main");
    f.write("a.yaml", "a\n");
    let sha = f.commit("one");
    let src = f.source(None, None);
    let (a, b, c) = tokio::join!(src.fetch(), src.fetch(), src.fetch());
    for snap in [a, b, c] {
        assert_eq!(snap.unwrap().revision, sha);
    }
}

#[tokio::test]
async fn force_push_is_followed() {
    let f = Fixture::new("main");
    f.write("app.yaml", "v: 1\n");
    let base = f.commit("base");
    let bare = f.tmp.path().join("remote.git");
    git(
        f.tmp.path(),
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    let remote = bare.to_str().unwrap();
    f.git(&["push", "-q", remote, "main"]);

    f.write("app.yaml", "v: 2\n");
    let doomed = f.commit("will be rewritten");
    f.git(&["push", "-q", remote, "main"]);

    let src = source_for(&format!("file://{remote}"), Some("main"), None, &f.cache());
    assert_eq!(src.fetch().await.unwrap().revision, doomed);
    // A rejected non-fast-forward would be "fixed" by re-cloning; the marker
    // shows the rewritten branch was followed in place.
    let marker = cache_entries(&f.cache())
        .remove(0)
        .join("ecsync-test-marker");
    std::fs::write(&marker, "x").unwrap();

    f.git(&["reset", "-q", "--hard", &base]);
    f.write("app.yaml", "v: rewritten\n");
    let rewritten = f.commit("rewritten");
    f.git(&["push", "-q", "--force", remote, "main"]);

    let snap = src.fetch().await.unwrap();
    assert_eq!(snap.revision, rewritten);
    assert_eq!(contents(&snap, "app.yaml"), "v: rewritten\n");
    assert!(marker.exists());
}

#[tokio::test]
async fn file_url_and_relative_path_both_work() {
    let f = Fixture::new("main");
    f.write("a.yaml", "a\n");
    let sha = f.commit("one");

    let url = format!("file://{}", f.url());
    let snap = source_for(&url, None, None, &f.cache())
        .fetch()
        .await
        .unwrap();
    assert_eq!(snap.revision, sha);

    // Integration tests run in the crate root; climb to / from there.
    let cwd = std::env::current_dir().unwrap();
    let mut rel = PathBuf::new();
    for _ in cwd.components().skip(1) {
        rel.push("..");
    }
    rel.push(f.work.strip_prefix("/").unwrap());
    let rel = rel.to_str().unwrap().to_owned();
    assert!(rel.starts_with(".."));
    let src = source_for(&rel, None, None, &f.cache());
    assert_eq!(src.repo_display(), rel);
    assert_eq!(src.fetch().await.unwrap().revision, sha);
}

#[tokio::test]
async fn broken_cache_is_recloned() {
    let f = Fixture::new("main");
    f.write("a.yaml", "a\n");
    f.commit("one");
    let src = f.source(None, None);
    src.fetch().await.unwrap();
    let repo_dir = cache_entries(&f.cache()).remove(0);

    std::fs::write(repo_dir.join("HEAD"), "garbage").unwrap();
    f.write("b.yaml", "b\n");
    let two = f.commit("two");
    let snap = src.fetch().await.unwrap();
    assert_eq!(snap.revision, two);
    assert_eq!(paths(&snap), ["a.yaml", "b.yaml"]);

    // Refs intact but every object gone: the fetch has nothing to do, and
    // reading the tree fails locally.
    std::fs::remove_dir_all(repo_dir.join("objects")).unwrap();
    std::fs::create_dir_all(repo_dir.join("objects/pack")).unwrap();
    std::fs::create_dir_all(repo_dir.join("objects/info")).unwrap();
    let snap = src.fetch().await.unwrap();
    assert_eq!(snap.revision, two);
    assert_eq!(contents(&snap, "b.yaml"), "b\n");
}

#[tokio::test]
async fn unreachable_repository_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-repo");
    let src = source_for(
        missing.to_str().unwrap(),
        None,
        None,
        &tmp.path().join("cache"),
    );
    let err = src.fetch().await.unwrap_err();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("no-such-repo"), "{msg}");
    assert!(
        msg.contains("does not appear to be a git repository"),
        "{msg}"
    );
}

#[tokio::test]
async fn empty_repository_has_no_head() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = tmp.path().join("empty.git");
    git(
        tmp.path(),
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    let err = source_for(
        bare.to_str().unwrap(),
        None,
        None,
        &tmp.path().join("cache"),
    )
    .fetch()
    .await
    .unwrap_err();
    assert!(matches!(err, SourceError::RefNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[tokio::test]
async fn unknown_ref_is_an_error() {
    let f = Fixture::new("main");
    f.write("a.yaml", "a\n");
    f.commit("one");
    for r in ["no-such-branch", "deadbeef", &"ab".repeat(20)] {
        let err = f.source(Some(r), None).fetch().await.unwrap_err();
        match &err {
            SourceError::RefNotFound { git_ref, .. } => assert_eq!(git_ref, r),
            other => panic!("{r}: {other:?}"),
        }
        assert!(err.to_string().contains(&f.url()), "{err}");
    }
    let err = f.source(Some("main~1"), None).fetch().await.unwrap_err();
    assert!(matches!(err, SourceError::InvalidRef { .. }), "{err:?}");
    let err = f
        .source(Some("--upload-pack=touch /tmp/x"), None)
        .fetch()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::InvalidRef { .. }), "{err:?}");
}

#[tokio::test]
async fn missing_or_escaping_path_is_an_error() {
    let f = Fixture::new("main");
    f.write("manifests/a.yaml", "a\n");
    let sha = f.commit("one");
    let err = f
        .source(None, Some("nope/deeper"))
        .fetch()
        .await
        .unwrap_err();
    match &err {
        SourceError::PathNotFound { path, revision, .. } => {
            assert_eq!(path, "nope/deeper");
            assert_eq!(revision, &sha);
        }
        other => panic!("{other:?}"),
    }
    // A prefix of a real folder name is not that folder.
    let err = f.source(None, Some("manifest")).fetch().await.unwrap_err();
    assert!(matches!(err, SourceError::PathNotFound { .. }), "{err:?}");

    let err = f.source(None, Some("../etc")).fetch().await.unwrap_err();
    assert!(matches!(err, SourceError::InvalidPath { .. }), "{err:?}");
}

#[tokio::test]
async fn oversized_file_is_an_error_naming_it() {
    let f = Fixture::new("main");
    f.write("m/ok.yaml", vec![b'a'; MAX_MANIFEST_BYTES as usize]);
    f.commit("at the limit");
    let snap = f.source(None, None).fetch().await.unwrap();
    assert_eq!(snap.files[0].contents.len() as u64, MAX_MANIFEST_BYTES);

    f.write("m/huge.yaml", vec![b'a'; MAX_MANIFEST_BYTES as usize + 1]);
    f.commit("over the limit");
    let err = f.source(None, None).fetch().await.unwrap_err();
    match &err {
        SourceError::FileTooLarge { path, size, .. } => {
            assert_eq!(path, "m/huge.yaml");
            assert_eq!(*size, MAX_MANIFEST_BYTES + 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("m/huge.yaml"), "{err}");
}

#[tokio::test]
async fn non_utf8_manifest_is_an_error_naming_it() {
    let f = Fixture::new("main");
    f.write("good.yaml", "ok\n");
    f.write("bad.yaml", [0x6b, 0xff, 0xfe, 0x0a]);
    f.commit("bytes");
    let err = f.source(None, None).fetch().await.unwrap_err();
    match &err {
        SourceError::NotUtf8 { path, .. } => assert_eq!(path, "bad.yaml"),
        other => panic!("{other:?}"),
    }
}

/// Accepts connections on 127.0.0.1, records each request head and answers
/// 404 (or never answers, when `hang`).
async fn fake_http_server(hang: bool) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            if hang {
                held.push(sock);
                continue;
            }
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).into_owned());
            let _ = sock
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    });
    (port, seen)
}

#[tokio::test]
async fn token_is_sent_as_a_header_and_never_shown() {
    let (port, seen) = fake_http_server(false).await;
    let tmp = tempfile::tempdir().unwrap();
    let token = "ghp_SuperSecretToken123";
    let src = GitSource::new(GitConfig {
        token: Some(token.to_owned()),
        ..config(&format!("http://127.0.0.1:{port}/org/repo.git"), tmp.path())
    });
    let err = src.fetch().await.unwrap_err();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}/org/repo.git")),
        "{msg}"
    );
    assert!(!msg.contains(token), "{msg}");

    // base64("x-access-token:ghp_SuperSecretToken123")
    let header = "Authorization: Basic eC1hY2Nlc3MtdG9rZW46Z2hwX1N1cGVyU2VjcmV0VG9rZW4xMjM=";
    let requests = seen.lock().unwrap().clone();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(r.contains(header), "{r}");
    }
    assert!(!msg.contains("eC1hY2Nlc3MtdG9rZW46"), "{msg}");
}

#[tokio::test]
async fn credentials_stay_out_of_errors_on_a_closed_port() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let tmp = tempfile::tempdir().unwrap();
    let token = "tok-ABCDEF-0123456789";
    let password = "pa55w0rd-in-url";
    for repo in [
        format!("https://127.0.0.1:{port}/org/repo.git"),
        format!("https://someone:{password}@127.0.0.1:{port}/org/repo.git"),
    ] {
        let src = GitSource::new(GitConfig {
            token: Some(token.to_owned()),
            ..config(&repo, tmp.path())
        });
        assert!(!src.repo_display().contains(password));
        assert!(!src.repo_display().contains("someone"));
        let err = src.fetch().await.unwrap_err();
        assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
        let msg = format!("{err} {err:?}");
        assert!(
            msg.contains(&format!("https://127.0.0.1:{port}/org/repo.git")),
            "{msg}"
        );
        assert!(!msg.contains(token), "{msg}");
        assert!(!msg.contains(password), "{msg}");
        assert!(!msg.contains("someone"), "{msg}");
    }
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let (port, _) = fake_http_server(true).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = GitSource::new(GitConfig {
        timeout: Duration::from_secs(1),
        ..config(&format!("http://127.0.0.1:{port}/org/repo.git"), tmp.path())
    });
    let started = Instant::now();
    let err = src.fetch().await.unwrap_err();
    assert!(
        matches!(
            err,
            SourceError::Timeout {
                command: "fetch",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("timed out"), "{err}");
}

// ---- load_dir ----

fn loaded(files: &[ManifestFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

#[test]
fn load_dir_walks_recursively_skipping_hidden_and_non_yaml() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("m");
    for (rel, body) in [
        ("web.yaml", "web"),
        ("a/api.yml", "api"),
        ("a-b/x.yaml", "x"),
        ("a/deep/er/worker.YAML", "worker"),
        ("notes.txt", "no"),
        (".git/config.yaml", "no"),
        (".hidden.yaml", "no"),
        ("a/.cache/x.yml", "no"),
    ] {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let files = load_dir(&root).unwrap();
    let r = root.to_str().unwrap();
    assert_eq!(
        loaded(&files),
        [
            format!("{r}/a-b/x.yaml"),
            format!("{r}/a/api.yml"),
            format!("{r}/a/deep/er/worker.YAML"),
            format!("{r}/web.yaml"),
        ]
    );
    assert_eq!(&*files[3].contents, "web");
}

#[test]
fn load_dir_keeps_the_path_as_given() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("svc.yml"), "svc").unwrap();
    let given = tmp.path().join(".");
    let files = load_dir(&given).unwrap();
    assert_eq!(
        loaded(&files),
        [format!("{}/./svc.yml", tmp.path().display())]
    );
}

#[test]
fn load_dir_accepts_a_single_yaml_file_only() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = tmp.path().join("one.yaml");
    std::fs::write(&yaml, "one").unwrap();
    let files = load_dir(&yaml).unwrap();
    assert_eq!(loaded(&files), [yaml.to_str().unwrap()]);
    assert_eq!(&*files[0].contents, "one");

    let txt = tmp.path().join("one.txt");
    std::fs::write(&txt, "one").unwrap();
    let err = load_dir(&txt).unwrap_err();
    assert!(matches!(err, SourceError::NotManifest { .. }), "{err:?}");
    assert!(err.to_string().contains("one.txt"), "{err}");
}

#[test]
fn load_dir_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let err = load_dir(&missing).unwrap_err();
    assert!(matches!(err, SourceError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");

    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    assert!(load_dir(&dir).unwrap().is_empty());

    std::fs::write(
        dir.join("big.yaml"),
        vec![b'a'; MAX_MANIFEST_BYTES as usize + 1],
    )
    .unwrap();
    let err = load_dir(&dir).unwrap_err();
    match &err {
        SourceError::FileTooLarge { path, size, .. } => {
            assert!(path.ends_with("d/big.yaml"), "{path}");
            assert_eq!(*size, MAX_MANIFEST_BYTES + 1);
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(dir.join("big.yaml")).unwrap();

    std::fs::write(dir.join("bad.yml"), [0xff, 0xfe]).unwrap();
    let err = load_dir(&dir).unwrap_err();
    assert!(matches!(err, SourceError::NotUtf8 { .. }), "{err:?}");
    assert!(err.to_string().contains("bad.yml"), "{err}");
}

/// Each commit read by one source that remembers the last (so it reads only
/// what `diff-tree` names) must equal the same commit read from scratch.
#[tokio::test]
async fn reading_only_what_changed_equals_reading_everything() {
    let f = Fixture::new("main");
    for i in 0..5 {
        f.write(&format!("m/s{i}.yaml"), format!("n: {i}\n"));
    }
    f.write("other/x.yaml", "outside: 1\n");
    f.commit("start");
    let src = f.source(None, Some("m"));
    let fresh_cache = f.tmp.path().join("fresh");

    type Step = fn(&Fixture);
    let steps: Vec<(&str, Step)> = vec![
        ("edit one", |f| f.write("m/s1.yaml", "n: 10\n")),
        ("add two, one nested", |f| {
            f.write("m/new.yml", "new: 1\n");
            f.write("m/deep/er/z.yaml", "z: 1\n");
        }),
        ("delete one", |f| f.remove("m/s2.yaml")),
        ("rename", |f| {
            f.remove("m/s3.yaml");
            f.write("m/renamed.yaml", "n: 3\n");
        }),
        ("same contents in two files", |f| {
            f.write("m/copy.yaml", "n: 10\n")
        }),
        ("not manifests, hidden, outside the path", |f| {
            f.write("m/README.md", "hi\n");
            f.write("m/.hidden/h.yaml", "h: 1\n");
            f.write("m/.h.yaml", "h: 1\n");
            f.write("other/x.yaml", "outside: 2\n");
        }),
        ("a file becomes a symlink", |f| {
            f.remove("m/s4.yaml");
            std::os::unix::fs::symlink("s0.yaml", f.work.join("m/s4.yaml")).unwrap();
        }),
        ("a file becomes a folder", |f| {
            f.remove("m/new.yml");
            f.write("m/new.yml/inner.yaml", "inner: 1\n");
        }),
        ("nothing under the path changes", |f| {
            f.write("other/y.yaml", "y: 1\n")
        }),
        ("an empty commit", |_| {}),
    ];
    for (what, step) in steps {
        step(&f);
        let revision = f.commit(what);
        let read = src.fetch().await.unwrap();
        let _ = std::fs::remove_dir_all(&fresh_cache);
        let fresh = source_for(&f.url(), None, Some("m"), &fresh_cache)
            .fetch()
            .await
            .unwrap();
        assert_eq!(read.revision, revision, "{what}");
        assert_eq!(read.files, fresh.files, "{what}");
    }

    // Everything under the path removed: an error, as from scratch.
    f.git(&["rm", "-r", "-q", "m"]);
    f.commit("remove the folder");
    let err = src.fetch().await.unwrap_err();
    assert!(matches!(err, SourceError::PathNotFound { .. }), "{err}");
    // And back again after the error.
    f.write("m/back.yaml", "back: 1\n");
    f.commit("back");
    assert_eq!(paths(&src.fetch().await.unwrap()), ["m/back.yaml"]);
}
