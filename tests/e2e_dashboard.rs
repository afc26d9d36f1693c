//! End to end: the dashboard and a detail page of a real `ecsync run` on moto, opened in
//! headless Chromium (issue 16): the DOM after the page's script ran, a screenshot, and proof
//! that the pages load nothing from anywhere but the controller.
//!
//! Chromium is Debian's `chromium` (`scripts/test.sh` installs it when missing). Without it this
//! test fails and says how to install it: a browser test that passes without a browser proves
//! nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Daemon, GitRepo, Moto, ecsync_with, free_port, http_request, spawn_listening, status_json,
    wait_until,
};
use serde_json::Value;

/// The demo's web service, migrating in two quick steps and with its legacy fleet queued for
/// decommissioning once it is complete.
fn web_yaml() -> String {
    let demo = std::fs::read_to_string(root().join("manifests/demo/web.yaml")).expect("demo web");
    let mut yaml = demo.clone();
    for (from, to) in [
        ("steps: [10, 50, 100]", "steps: [50, 100]"),
        ("stepInterval: 30s", "stepInterval: 2s"),
        ("after: 30s", "after: 1h"),
    ] {
        assert!(
            yaml.contains(from),
            "manifests/demo/web.yaml changed: no {from:?}"
        );
        yaml = yaml.replace(from, to);
    }
    yaml
}

/// The demo's worker; with `report` it is report-only and its queue name changed, so the
/// pass reports an environment value as drift and leaves it.
fn worker_yaml(report: bool) -> String {
    let demo =
        std::fs::read_to_string(root().join("manifests/demo/worker.yaml")).expect("demo worker");
    if !report {
        return demo;
    }
    let mut yaml = demo.clone();
    for (from, to) in [
        (
            "  name: worker\n",
            "  name: worker\n  annotations:\n    ecsync.io/sync: report\n",
        ),
        ("value: demo-jobs", "value: rotated-s3cret-value"),
    ] {
        assert!(
            yaml.contains(from),
            "manifests/demo/worker.yaml changed: no {from:?}"
        );
        yaml = yaml.replacen(from, to, 1);
    }
    yaml
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------- chromium

const INSTALL: &str = "headless Chromium is needed for this test and was not found: \
     install it with `apt-get install -y --no-install-recommends chromium` (Debian/Ubuntu; \
     scripts/test.sh does this when it is missing), or point ECSYNC_CHROMIUM at a chromium binary";

/// `ECSYNC_CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("ECSYNC_CHROMIUM") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "ECSYNC_CHROMIUM={} is not a file; {INSTALL}",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("{INSTALL}");
}

/// One headless Chromium run with its own profile, stopped if it hangs. Returns stdout.
fn run_chromium(args: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let out_dir = tempfile::tempdir().expect("chromium output dir");
    let stdout_path = out_dir.path().join("stdout");
    let stderr_path = out_dir.path().join("stderr");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("starting chromium: {e}; {INSTALL}"));
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish {url} in 90 s:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "chromium {args:?} {url} failed ({status}):\n{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    std::fs::read_to_string(&stdout_path).expect("chromium stdout")
}

/// The DOM after load (and after the page's own script ran), plus every URL fetched on the
/// page's behalf while loading it, from Chromium's network log.
fn dump_dom(url: &str) -> (String, Vec<String>) {
    let log_dir = tempfile::tempdir().expect("net log dir");
    let log = log_dir.path().join("netlog.json");
    let dom = run_chromium(
        &[
            format!("--log-net-log={}", log.display()),
            "--dump-dom".to_string(),
        ],
        url,
    );
    let text = std::fs::read_to_string(&log).expect("chromium wrote no net log");
    (dom, page_requests(&text, "http://127.0.0.1"))
}

/// The URLs of the requests made for a page on `site` (`http://127.0.0.1`): the navigation and
/// whatever the page then loads, which Chromium keys by the page's site (an iframe's too) or
/// names the page as initiator. The browser's own background requests (time, updates) have
/// other keys and are left out: they are not the page's doing.
fn page_requests(netlog: &str, site: &str) -> Vec<String> {
    // Cut short by an unclean exit, the log lacks its closing brackets.
    let log: Value = serde_json::from_str(netlog)
        .or_else(|_| {
            serde_json::from_str(&format!("{}]}}", netlog.trim_end().trim_end_matches(',')))
        })
        .expect("chromium's net log is not JSON");
    let Some(start_job) = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].as_u64()
    else {
        panic!("the net log names no URL_REQUEST_START_JOB event type");
    };
    let ours = |v: &Value| v.as_str().is_some_and(|s| s.starts_with(site));
    log["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"].as_u64() == Some(start_job))
        .map(|e| &e["params"])
        .filter(|p| ours(&p["network_isolation_key"]) || ours(&p["initiator"]))
        .filter_map(|p| p["url"].as_str().map(String::from))
        .collect()
}

/// Every `src` and `href` attribute value in `dom`.
fn attribute_urls(dom: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in [" src=\"", " href=\""] {
        let mut rest = dom;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap_or(rest.len());
            out.push(rest[..end].to_string());
        }
    }
    out
}

fn assert_nothing_from_outside(dom: &str, requested: &[String], origin: &str) {
    for url in attribute_urls(dom) {
        let local = (url.starts_with('/') && !url.starts_with("//"))
            || url.starts_with('?')
            || url.starts_with('#')
            || url.starts_with("data:")
            || url.starts_with(origin);
        assert!(local, "the page refers outside: {url}");
    }
    assert!(
        !requested.is_empty(),
        "the net log shows no request at all; is it being read right?"
    );
    for url in requested {
        assert!(
            url.starts_with(origin) || url.starts_with("data:"),
            "the browser fetched {url} while loading {origin}"
        );
    }
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG"
    );
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

// ---------------------------------------------------------------- the daemon

struct Running {
    daemon: Daemon,
    addr: String,
    _cache: tempfile::TempDir,
}

impl Running {
    fn start(moto: &Moto, repo: &GitRepo) -> Running {
        let cache = tempfile::tempdir().expect("cache dir");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = ecsync_with(moto);
        cmd.args(["run", "--repo", &repo.url(), "--path", "services"])
            .args([
                "--listen",
                &addr,
                "--interval",
                "2s",
                "--log-format",
                "text",
            ])
            .arg("--cache-dir")
            .arg(cache.path());
        let daemon = spawn_listening(cmd, &addr);
        Running {
            daemon,
            addr,
            _cache: cache,
        }
    }

    fn status(&self) -> Value {
        status_json(&self.addr)
    }

    fn wait_for(&self, what: &str, timeout: Duration, mut ok: impl FnMut(&Value) -> bool) {
        let mut last = Value::Null;
        let reached = wait_until(timeout, || {
            last = self.status();
            ok(&last)
        });
        assert!(
            reached,
            "{what}: not reached within {timeout:?}\n/status: {last:#}\nlogs:\n{}",
            self.daemon.logs()
        );
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn web_complete(s: &Value) -> bool {
    let web = s["services"]
        .as_array()
        .and_then(|v| v.iter().find(|x| x["service"] == "web"));
    web.is_some_and(|w| w["migration"]["percent"] == 100)
        && s["decommission"]
            .as_array()
            .is_some_and(|d| !d.is_empty() && d.iter().all(|i| i["actsAt"].is_string()))
}

#[test]
fn dashboard_and_detail_pages_in_a_real_browser() {
    // Fail at once, before minutes of setup, when there is no browser.
    let browser = chromium();
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    moto.seed_demo();
    let repo = GitRepo::new();
    repo.write("services/web.yaml", &web_yaml());
    repo.write("services/worker.yaml", &worker_yaml(false));
    repo.commit("the demo, migrating in two quick steps");
    let ecsync = Running::start(&moto, &repo);

    ecsync.wait_for(
        "web migrated to 100% and its legacy fleet queued",
        Duration::from_secs(120),
        web_complete,
    );
    repo.write("services/worker.yaml", &worker_yaml(true));
    // Markup in a commit subject must reach the page as text.
    let revision = repo.commit("worker: report only <blink>&</blink>");
    ecsync.wait_for(
        "the worker's environment reported as drift",
        Duration::from_secs(60),
        |s| {
            s["revision"] == revision.as_str()
                && s["services"].as_array().is_some_and(|v| {
                    v.iter().any(|x| {
                        x["service"] == "worker"
                            && x["state"] == "OutOfSync"
                            && x["drift"].to_string().contains("environment[QUEUE_NAME]")
                    })
                })
        },
    );
    ecsync.wait_for(
        "web's Auto Scaling group and its cleanup queued",
        Duration::from_secs(60),
        |s| {
            s["decommissionGroups"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g["autoScalingGroup"] == "web-asg"))
                && s["decommissionCleanup"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty())
        },
    );
    let status = ecsync.status();
    let instances: Vec<String> = status["decommission"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|i| i["instanceId"].as_str())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(instances.len(), 3, "{status:#}");

    // The pages carry their CSP, whatever a browser makes of them.
    for path in ["/", "/ui/services/demo/worker", "/ui/services/demo/web"] {
        let resp = http_request(&ecsync.addr, "GET", path, &[], b"").expect("GET page");
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        assert_eq!(
            resp.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let csp = resp.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("img-src data:"),
            "{path}: CSP {csp:?}"
        );
    }
    let origin = ecsync.url("/");

    // The dashboard.
    let (dom, requested) = dump_dom(&ecsync.url("/"));
    assert_nothing_from_outside(&dom, &requested, &origin);
    for needle in [
        r#"<a href="/ui/services/demo/web">demo/web</a>"#,
        r#"<a href="/ui/services/demo/worker">demo/worker</a>"#,
        r#"data-state="OutOfSync""#,
        r#"role="progressbar""#,
        r#"aria-valuenow="100""#,
        r#"<li class="done">50%"#,
        r#"data-gate="ecs-healthy""#,
        "<h2>Decommission queue</h2>",
        // The group and the cleanup, beside the instances.
        r#"<tr class="group" data-group="web-asg">"#,
        "<h3>Cleanup</h3>",
        r#"data-item="launchTemplate""#,
        "<h2>Last passes</h2>",
        // Escaped in the page, so text in the DOM.
        "worker: report only &lt;blink&gt;&amp;&lt;/blink&gt;",
    ] {
        assert!(dom.contains(needle), "dashboard DOM lacks {needle}:\n{dom}");
    }
    assert!(
        !dom.contains("<blink>"),
        "a commit subject became markup:\n{dom}"
    );
    assert!(dom.contains(&revision[..12]), "no short revision:\n{dom}");
    for id in &instances {
        assert!(
            dom.contains(&format!(r#"data-instance="{id}""#)),
            "{id} not queued:\n{dom}"
        );
    }
    // The inline script ran under the CSP (it rewrites the refresh note), and the queue's
    // countdowns read "in ..." (an hour away) after it ticked.
    assert!(
        dom.contains("Refreshes every 10 s"),
        "the page's script did not run:\n{dom}"
    );
    let countdowns = dom.matches(r#"data-live="countdown">in "#).count();
    assert!(countdowns >= 3, "no live countdowns for the queue:\n{dom}");

    // The worker's page: drift, field by field, its environment value never shown.
    let (dom, requested) = dump_dom(&ecsync.url("/ui/services/demo/worker"));
    assert_nothing_from_outside(&dom, &requested, &origin);
    assert!(
        dom.contains("environment[QUEUE_NAME].value"),
        "no drifted field:\n{dom}"
    );
    assert!(
        dom.contains("data-secret"),
        "the value is not marked secret:\n{dom}"
    );
    for secret in ["rotated-s3cret-value", "demo-jobs"] {
        assert!(!dom.contains(secret), "{secret} shown on the page:\n{dom}");
    }
    assert!(
        dom.contains(r#"<li class="pending">register_task_definition"#),
        "no plan:\n{dom}"
    );

    // The web service's page: migration, gates, and what the passes did.
    let (dom, _) = dump_dom(&ecsync.url("/ui/services/demo/web"));
    for needle in [
        r#"id="migration""#,
        r#"data-gate="deployment""#,
        "advance_traffic",
        "create_service",
    ] {
        assert!(dom.contains(needle), "web's page lacks {needle}:\n{dom}");
    }

    // A screenshot, as a person would see the dashboard on a laptop.
    let shots = tempfile::tempdir().expect("screenshot dir");
    let png_path = shots.path().join("dashboard.png");
    run_chromium(
        &[
            format!("--screenshot={}", png_path.display()),
            "--window-size=1280,1600".to_string(),
        ],
        &ecsync.url("/?refresh=off"),
    );
    let png = std::fs::read(&png_path).expect("chromium wrote no screenshot");
    assert_eq!(png_size(&png), (1280, 1600));
    // A blank page compresses to a few kilobytes; text, tables and a bar do not.
    assert!(png.len() > 30_000, "screenshot only {} bytes", png.len());
    if let Some(keep) = std::env::var_os("ECSYNC_DASHBOARD_SCREENSHOT") {
        std::fs::copy(&png_path, &keep).expect("copy the screenshot");
    }
    drop(browser);
}

/// The checks above can fail: a page that loads an image from another origin (another
/// loopback address, so nothing leaves the machine) is caught both in its DOM and in the
/// browser's network log.
#[test]
fn the_outside_checks_catch_a_page_that_loads_from_elsewhere() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let page = r#"<!DOCTYPE html><p>hi</p><img src="http://127.0.0.2:9/x.png">"#;
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let mut buf = [0u8; 4096];
                        let _ = conn.read(&mut buf);
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                            page.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };
    let origin = format!("http://{addr}/");
    let (dom, requested) = dump_dom(&origin);
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    assert!(
        attribute_urls(&dom).contains(&"http://127.0.0.2:9/x.png".to_string()),
        "{dom}"
    );
    assert!(
        requested.iter().any(|u| u == "http://127.0.0.2:9/x.png"),
        "the net log misses the image: {requested:?}"
    );
    assert!(requested.contains(&origin), "{requested:?}");
    let caught =
        std::panic::catch_unwind(|| assert_nothing_from_outside(&dom, &requested, &origin));
    assert!(caught.is_err(), "an outside image passed the check");
}
