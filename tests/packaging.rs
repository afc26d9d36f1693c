//! Packaging checks (issue 7): the Dockerfile, the Helm chart in `charts/ecsync`, ecsync's own
//! ECS manifest and least-privilege IAM policy in `manifests/ecsync`, the Grafana dashboard and
//! the README's configuration table. None needs Docker, Helm or AWS: they read the files, and
//! run the built `ecsync` binary for `--help` and `validate`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// Runs the built binary with a clean environment, so no ECSYNC_* variable of the caller shows
/// up in `--help` or changes a result.
fn ecsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecsync"))
        .args(args)
        .current_dir(root())
        .env_clear()
        .output()
        .expect("running ecsync")
}

fn run_help() -> String {
    let out = ecsync(&["run", "--help"]);
    assert!(out.status.success(), "ecsync run --help failed: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8 help")
}

fn yaml(rel: &str) -> Value {
    serde_saphyr::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// Every `ECSYNC_[A-Z0-9_]+` name in a text.
fn ecsync_env_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("ECSYNC_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].trim_end_matches('_').to_string());
        rest = &tail[end..];
    }
    names
}

fn assert_env_names_exist(what: &str, text: &str, help: &str) {
    let unknown: Vec<String> = ecsync_env_names(text)
        .into_iter()
        .filter(|n| !help.contains(n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "{what} sets environment variables `ecsync run --help` does not know: {unknown:?}"
    );
}

// ───────────────────────────── `ecsync run --help` ─────────────────────────────

#[derive(Debug, Default, PartialEq)]
struct HelpFlag {
    env: Option<String>,
    default: Option<String>,
}

/// `--flag` → its `[env: NAME=]` and `[default: X]`, from `ecsync run --help` (long form).
fn help_flags(help: &str) -> BTreeMap<String, HelpFlag> {
    let mut flags: BTreeMap<String, HelpFlag> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let t = line.trim_start();
        let t = t.strip_prefix("-h, ").unwrap_or(t);
        if let Some(rest) = t.strip_prefix("--")
            && line.starts_with("  ")
        {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let flag = format!("--{name}");
            flags.insert(flag.clone(), HelpFlag::default());
            current = Some(flag);
        } else if let Some(flag) = &current {
            let entry = flags.get_mut(flag).unwrap();
            if let Some(env) = t.strip_prefix("[env: ") {
                entry.env = Some(env.split('=').next().unwrap_or_default().to_string());
            } else if let Some(default) = t.strip_prefix("[default: ") {
                entry.default = Some(default.trim_end_matches(']').to_string());
            }
        }
    }
    flags
}

#[test]
fn help_parser_reads_flags_and_env() {
    let help = "Options:\n      --repo <REPO>\n          Git\n\n          [env: ECSYNC_REPO=]\n          [default: 60s]\n\n      --prune\n          Delete\n\n  -h, --help\n          Print help\n";
    let flags = help_flags(help);
    assert_eq!(flags["--repo"].env.as_deref(), Some("ECSYNC_REPO"));
    assert_eq!(flags["--repo"].default.as_deref(), Some("60s"));
    assert_eq!(flags["--prune"], HelpFlag::default());
    assert!(flags.contains_key("--help"));
    assert_eq!(flags.len(), 3);
}

// ───────────────────────────── Dockerfile ─────────────────────────────

#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// Dockerfile instructions, with `\` continuations joined and comment lines dropped (a
/// comment inside a continued instruction is dropped too, as Docker does).
fn dockerfile(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            pending.push_str(body);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let full = std::mem::take(&mut pending);
        let full = full.trim();
        if full.is_empty() {
            continue;
        }
        let (kw, args) = full.split_once(char::is_whitespace).unwrap_or((full, ""));
        out.push(Instruction {
            keyword: kw.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
    }
    out
}

/// The instructions of each build stage, starting with its FROM.
fn stages(instructions: &[Instruction]) -> Vec<&[Instruction]> {
    let starts: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "FROM")
        .map(|(n, _)| n)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| &instructions[s..*starts.get(k + 1).unwrap_or(&instructions.len())])
        .collect()
}

fn json_form(args: &str, what: &str) -> Vec<String> {
    serde_json::from_str(args)
        .unwrap_or_else(|e| panic!("{what} must use the JSON (exec) form, got `{args}`: {e}"))
}

/// Packages that `apt-get install` lines of a stage install.
fn apt_packages(stage: &[Instruction]) -> BTreeSet<String> {
    let mut pkgs = BTreeSet::new();
    for i in stage.iter().filter(|i| i.keyword == "RUN") {
        for cmd in i.args.split("&&") {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            if let Some(p) = words.windows(2).position(|w| w == ["apt-get", "install"]) {
                pkgs.extend(
                    words[p + 2..]
                        .iter()
                        .filter(|w| !w.starts_with('-'))
                        .map(|w| w.to_string()),
                );
            }
        }
    }
    pkgs
}

#[test]
fn dockerfile_parser_joins_continuations() {
    let d = dockerfile("# c\nFROM a AS b\nRUN x \\\n  # inner\n  && y\nCMD [\"run\"]\n");
    let kws: Vec<&str> = d.iter().map(|i| i.keyword.as_str()).collect();
    assert_eq!(kws, ["FROM", "RUN", "CMD"]);
    assert_eq!(
        d[1].args.split_whitespace().collect::<Vec<_>>(),
        ["x", "&&", "y"]
    );
    let pk = apt_packages(&dockerfile(
        "FROM x\nRUN apt-get update && apt-get install -y --no-install-recommends git curl && rm -rf /x\n",
    ));
    assert_eq!(pk, BTreeSet::from(["git".into(), "curl".into()]));
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_entrypoint_and_healthcheck() {
    let text = read("Dockerfile");
    let all = dockerfile(&text);
    let stages = stages(&all);
    assert!(stages.len() >= 2, "the Dockerfile must be multi-stage");

    let builder = stages[0];
    let from = &builder[0].args;
    assert!(
        from.starts_with("rust:1-bookworm") && from.to_ascii_lowercase().ends_with(" as builder"),
        "first stage must be `FROM rust:1-bookworm AS builder`, got `{from}`"
    );
    assert!(
        builder.iter().any(|i| i.keyword == "RUN"
            && i.args
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains("cargo build --release --locked --bin ecsync")),
        "the builder must run `cargo build --release --locked --bin ecsync`"
    );

    let runtime = *stages.last().unwrap();
    assert_eq!(
        runtime[0].args, "debian:bookworm-slim",
        "runtime base image"
    );
    let pkgs = apt_packages(runtime);
    for needed in ["git", "ca-certificates", "openssh-client"] {
        assert!(
            pkgs.contains(needed),
            "runtime stage must install {needed}: {pkgs:?}"
        );
    }
    assert!(
        runtime
            .iter()
            .any(|i| i.keyword == "COPY" && i.args.starts_with("--from=builder ")),
        "runtime stage must copy the binary from the builder"
    );

    let find =
        |kw: &str| -> Vec<&Instruction> { runtime.iter().filter(|i| i.keyword == kw).collect() };
    let user = find("USER");
    let user = user.last().expect("runtime stage must set USER");
    let name = user.args.split(':').next().unwrap();
    assert!(
        name != "root" && name != "0" && !name.is_empty(),
        "the image must not run as root: USER {}",
        user.args
    );
    let entry = find("ENTRYPOINT");
    assert_eq!(
        json_form(&entry.last().expect("ENTRYPOINT").args, "ENTRYPOINT"),
        ["ecsync"]
    );
    let cmd = find("CMD");
    assert_eq!(json_form(&cmd.last().expect("CMD").args, "CMD"), ["run"]);
    assert!(
        find("EXPOSE").iter().any(|i| i
            .args
            .split_whitespace()
            .any(|p| p == "9464" || p == "9464/tcp")),
        "EXPOSE 9464"
    );
    assert!(
        find("ENV")
            .iter()
            .any(|i| i.args.contains("ECSYNC_LISTEN=0.0.0.0:9464")),
        "the image must listen on all interfaces (ENV ECSYNC_LISTEN=0.0.0.0:9464), or EXPOSE is useless"
    );

    let hc = find("HEALTHCHECK");
    let hc = hc.last().expect("HEALTHCHECK");
    let (_, probe) = hc
        .args
        .split_once("CMD ")
        .expect("HEALTHCHECK ... CMD [...]");
    let probe = json_form(probe.trim(), "HEALTHCHECK CMD");
    assert!(
        probe.iter().any(|a| a.ends_with(":9464/healthz")),
        "HEALTHCHECK must probe /healthz on 9464: {probe:?}"
    );
    assert!(
        pkgs.contains(&probe[0]),
        "HEALTHCHECK uses `{}`, which the runtime stage does not install ({pkgs:?})",
        probe[0]
    );

    assert_env_names_exist("the Dockerfile", &text, &run_help());
}

#[test]
fn dockerignore_keeps_the_build_inputs_and_drops_target_and_git() {
    let ignore = read(".dockerignore");
    let patterns: BTreeSet<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for p in [".git", "target"] {
        assert!(patterns.contains(p), ".dockerignore must exclude {p}");
    }
    for i in dockerfile(&read("Dockerfile")) {
        if i.keyword != "COPY" || i.args.starts_with("--from") {
            continue;
        }
        let words: Vec<&str> = i.args.split_whitespace().collect();
        for src in &words[..words.len() - 1] {
            let src = src.trim_end_matches('/');
            assert!(
                root().join(src).exists(),
                "Dockerfile copies {src}, which does not exist"
            );
            assert!(
                !patterns.contains(src),
                ".dockerignore excludes {src}, which the Dockerfile copies"
            );
        }
    }
}

// ───────────────────────────── Helm chart ─────────────────────────────

const CHART: &str = "charts/ecsync";

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every `.Values.a.b.c` path a template text uses.
fn values_refs(template: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for (i, _) in template.match_indices(".Values.") {
        let tail = &template[i + ".Values.".len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(tail.len());
        let path = tail[..end].trim_end_matches('.');
        if !path.is_empty() {
            refs.insert(path.to_string());
        }
    }
    refs
}

fn lookup<'a>(values: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(values, |v, key| v.as_object().and_then(|m| m.get(key)))
}

/// Dotted paths of every mapping key in a parsed YAML tree (not descending into lists).
fn key_paths(v: &Value, prefix: &str, out: &mut Vec<(String, bool)>) {
    if let Some(map) = v.as_object() {
        for (k, child) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let leaf = child.as_object().is_none_or(|m| m.is_empty());
            out.push((path.clone(), leaf));
            key_paths(child, &path, out);
        }
    }
}

/// `(dotted path, documented)` for each `key:` line of a block-style YAML file, where
/// documented means the line directly above is a `#` comment.
fn documented_keys(text: &str) -> Vec<(String, bool, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') || t.starts_with('-') {
            continue;
        }
        let Some((key, _)) = t.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches('"').trim_matches('\'');
        let indent = line.len() - t.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let mut path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
        path.push(key);
        let documented = n > 0 && lines[n - 1].trim_start().starts_with('#');
        out.push((path.join("."), documented, n + 1));
        stack.push((indent, key.to_string()));
    }
    out
}

#[test]
fn values_helpers_work() {
    let v: Value = serde_saphyr::from_str("a:\n  b: 1\n  c: {}\nd: [1]\n").unwrap();
    assert!(lookup(&v, "a.b").is_some());
    assert!(lookup(&v, "a.x").is_none());
    assert!(lookup(&v, "d.0").is_none());
    assert_eq!(
        values_refs("{{ .Values.a.b | quote }} {{- with $.Values.d }}{{ .Values.a.c.}}"),
        BTreeSet::from(["a.b".into(), "d".into(), "a.c".into()])
    );
    let keys = documented_keys("# doc\na:\n  b: 1\n  # doc\n  c: {}\n\nd: [1]\n");
    let got: Vec<(&str, bool)> = keys.iter().map(|(p, d, _)| (p.as_str(), *d)).collect();
    assert_eq!(
        got,
        [("a", true), ("a.b", false), ("a.c", true), ("d", false)]
    );
}

#[test]
fn chart_yaml_files_parse() {
    let chart = yaml(&format!("{CHART}/Chart.yaml"));
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "ecsync");
    for key in ["version", "appVersion", "description"] {
        assert!(chart[key].is_string(), "Chart.yaml needs {key}");
    }
    let mut plain = 0;
    for f in files_under(&root().join(CHART)) {
        let text = fs::read_to_string(&f).unwrap();
        let name = f.display().to_string();
        match f.extension().and_then(|e| e.to_str()) {
            // Templates are Go templates, not YAML; everything else must parse as is.
            Some("yaml" | "yml") if !text.contains("{{") => {
                serde_saphyr::from_str::<Value>(&text)
                    .unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"));
                plain += 1;
            }
            Some("json") => {
                serde_json::from_str::<Value>(&text)
                    .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            }
            _ => {}
        }
    }
    assert!(plain >= 2, "Chart.yaml and values.yaml at least");
}

#[test]
fn every_value_a_template_uses_is_defined_in_values_yaml() {
    let values = yaml(&format!("{CHART}/values.yaml"));
    let mut missing = Vec::new();
    let mut used = BTreeSet::new();
    for f in files_under(&root().join(CHART).join("templates")) {
        let text = fs::read_to_string(&f).unwrap();
        for path in values_refs(&text) {
            if lookup(&values, &path).is_none() {
                missing.push(format!("{}: .Values.{path}", f.display()));
            }
            used.insert(path);
        }
    }
    assert!(
        missing.is_empty(),
        "templates use values that values.yaml does not define:\n  {}",
        missing.join("\n  ")
    );
    for expected in ["config.repo", "serviceAccount.roleArn", "webhook.enabled"] {
        assert!(
            used.contains(expected),
            "no template uses .Values.{expected}"
        );
    }
}

#[test]
fn every_value_in_values_yaml_is_used_by_a_template() {
    let values = yaml(&format!("{CHART}/values.yaml"));
    let mut refs = BTreeSet::new();
    for f in files_under(&root().join(CHART).join("templates")) {
        refs.extend(values_refs(&fs::read_to_string(&f).unwrap()));
    }
    let mut paths = Vec::new();
    key_paths(&values, "", &mut paths);
    // A template using `.Values.a` uses every value under `a` (for instance through toYaml).
    let unused: Vec<&str> = paths
        .iter()
        .filter(|(p, leaf)| {
            *leaf
                && !refs
                    .iter()
                    .any(|r| p == r || p.starts_with(&format!("{r}.")))
        })
        .map(|(p, _)| p.as_str())
        .collect();
    assert!(unused.is_empty(), "values no template uses: {unused:?}");
}

#[test]
fn every_value_is_documented_in_values_yaml_and_the_chart_readme() {
    let text = read(&format!("{CHART}/values.yaml"));
    let values = yaml(&format!("{CHART}/values.yaml"));
    let lines = documented_keys(&text);
    let undocumented: Vec<String> = lines
        .iter()
        .filter(|(_, doc, _)| !doc)
        .map(|(p, _, n)| format!("values.yaml:{n}: {p}"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "values without a `#` comment line directly above them:\n  {}",
        undocumented.join("\n  ")
    );
    // The line scan must see exactly the keys the YAML parser sees (a flow mapping such as
    // `{a: 1}` would hide undocumented keys from it).
    let mut parsed = Vec::new();
    key_paths(&values, "", &mut parsed);
    let from_lines: BTreeSet<&str> = lines.iter().map(|(p, _, _)| p.as_str()).collect();
    let from_yaml: BTreeSet<&str> = parsed.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        from_lines, from_yaml,
        "values.yaml must use block mappings only, so every key can carry its own comment"
    );

    let readme = read(&format!("{CHART}/README.md"));
    let absent: Vec<&str> = parsed
        .iter()
        .filter(|(p, leaf)| *leaf && !readme.contains(&format!("`{p}`")))
        .map(|(p, _)| p.as_str())
        .collect();
    assert!(
        absent.is_empty(),
        "values missing from the chart README's table (as `path`): {absent:?}"
    );
}

#[test]
fn chart_has_the_objects_probes_and_settings_issue_7_asks_for() {
    let t = |name: &str| read(&format!("{CHART}/templates/{name}"));
    for (file, kind) in [
        ("deployment.yaml", "Deployment"),
        ("serviceaccount.yaml", "ServiceAccount"),
        ("secret.yaml", "Secret"),
        ("service.yaml", "Service"),
        ("servicemonitor.yaml", "ServiceMonitor"),
        ("pdb.yaml", "PodDisruptionBudget"),
        ("grafana-dashboard.yaml", "ConfigMap"),
    ] {
        assert!(
            t(file).lines().any(|l| l.trim() == format!("kind: {kind}")),
            "{file} must define a {kind}"
        );
    }
    let dep = t("deployment.yaml");
    for needle in [
        "path: /healthz",
        "path: /readyz",
        "containerPort: 9464",
        "args: [\"run\"]",
        "mountPath: /var/cache/ecsync",
        "emptyDir:",
    ] {
        assert!(dep.contains(needle), "deployment.yaml lacks `{needle}`");
    }
    assert!(
        dep.contains("name: ECSYNC_CACHE_DIR\n              value: /var/cache/ecsync"),
        "the git cache must live in the emptyDir"
    );
    assert!(t("serviceaccount.yaml").contains("eks.amazonaws.com/role-arn:"));
    assert!(t("servicemonitor.yaml").contains("path: /metrics"));
    // More than one replica only with a lease; the holder identity is the pod name.
    assert!(dep.contains("(gt (int .Values.replicaCount) 1) (not .Values.leaderElection.table)"));
    assert!(dep.contains("{{- fail \"replicaCount > 1 needs leaderElection.table"));
    assert!(dep.contains("name: ECSYNC_LEASE_HOLDER\n              valueFrom:\n                fieldRef:\n                  fieldPath: metadata.name"));
    let dash = t("grafana-dashboard.yaml");
    assert!(dash.contains(".Files.Get \"dashboards/ecsync.json\""));

    let values = yaml(&format!("{CHART}/values.yaml"));
    assert_eq!(
        values["replicaCount"], 1,
        "one replica by default: more need leaderElection.table"
    );
    assert_eq!(values["podSecurityContext"]["runAsNonRoot"], true);
    assert_eq!(values["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(values["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(values["config"]["logFormat"], "json");
    assert_eq!(values["serviceMonitor"]["enabled"], false);
    assert_eq!(values["podDisruptionBudget"]["enabled"], false);
    assert!(values["resources"]["requests"]["cpu"].is_string());
    assert!(values["resources"]["requests"]["memory"].is_string());

    // Dockerfile's user and the chart's must agree, or runAsNonRoot/volume ownership breaks.
    let df = dockerfile(&read("Dockerfile"));
    let user = df.iter().rev().find(|i| i.keyword == "USER").unwrap();
    assert_eq!(
        user.args,
        format!(
            "{}:{}",
            values["podSecurityContext"]["runAsUser"], values["podSecurityContext"]["runAsGroup"]
        )
    );

    let help = run_help();
    for f in files_under(&root().join(CHART).join("templates")) {
        assert_env_names_exist(
            &f.display().to_string(),
            &fs::read_to_string(&f).unwrap(),
            &help,
        );
    }
}

// ───────────────────────────── Grafana dashboard ─────────────────────────────

use ecsync::runtime::metrics::{
    DESIGN_METRIC_NAMES as DESIGN_METRICS, EXTRA_NAMES as EXTRA_METRICS,
};

fn all_panels(v: &Value, out: &mut Vec<Value>) {
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p.clone());
        all_panels(p, out);
    }
}

fn metric_tokens(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in expr.match_indices("ecsync_") {
        if i > 0 && expr[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let tail = &expr[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
    }
    out
}

#[test]
fn dashboard_plots_every_design_metric() {
    let path = format!("{CHART}/dashboards/ecsync.json");
    let dash: Value = serde_json::from_str(&read(&path)).expect("dashboard is valid JSON");
    assert!(dash["title"].is_string() && dash["uid"].is_string());
    let mut panels = Vec::new();
    all_panels(&dash, &mut panels);
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for p in &panels {
        let id = p["id"].as_u64().expect("every panel has a numeric id");
        assert!(ids.insert(id), "duplicate panel id {id}");
        assert!(p["gridPos"].is_object(), "panel {id} has no gridPos");
        if p["type"] == "row" {
            continue;
        }
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(p["datasource"].is_object(), "panel {id} has no datasource");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("every target has a PromQL expr");
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "unbalanced parentheses in {expr}"
            );
            used.extend(metric_tokens(expr));
        }
    }
    let series = |m: &str| {
        [
            m.to_string(),
            format!("{m}_bucket"),
            format!("{m}_sum"),
            format!("{m}_count"),
        ]
    };
    let missing: Vec<&str> = DESIGN_METRICS
        .iter()
        .copied()
        .filter(|m| !series(m).iter().any(|s| used.contains(s)))
        .collect();
    assert!(missing.is_empty(), "no panel plots {missing:?}");
    let known: BTreeSet<String> = DESIGN_METRICS
        .iter()
        .chain(EXTRA_METRICS.iter())
        .flat_map(|m| series(m))
        .collect();
    let unknown: Vec<&String> = used.iter().filter(|m| !known.contains(*m)).collect();
    assert!(
        unknown.is_empty(),
        "panels query metrics ecsync does not expose: {unknown:?}"
    );
}

// ───────────────────────────── manifests/ecsync ─────────────────────────────

#[test]
fn own_ecs_manifest_validates() {
    let out = ecsync(&["validate", "manifests/ecsync"]);
    assert!(
        out.status.success(),
        "ecsync validate manifests/ecsync failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ───────────────────────────── manifests/examples ─────────────────────────────

#[test]
fn the_examples_validate_and_render_each_environment() {
    let out = ecsync(&["validate", "manifests/examples"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ecsync validate manifests/examples failed:\n{text}"
    );
    assert!(
        text.contains("4 services and 2 scheduled tasks"),
        "web and worker and the nightly job, staging and prod: {text}"
    );
    for (env, cluster, tag) in [
        ("staging", "staging", "2026-12-02.1"),
        ("prod", "prod", "2026-11-30.4"),
    ] {
        let out = ecsync(&[
            "render",
            "--path",
            &format!("manifests/examples/rails/{env}"),
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "render {env}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let docs: Vec<Value> = text
            .split("\n---\n")
            .map(|d| serde_saphyr::from_str(d.trim_start_matches("---\n")).expect("rendered YAML"))
            .collect();
        assert_eq!(docs.len(), 3, "{env}: web, worker and the nightly job");
        for doc in &docs {
            assert_eq!(doc["spec"]["cluster"], cluster, "{env}");
            // The nightly job runs web's definition (taskDefinitionFrom).
            if doc["kind"] == "ScheduledTask" {
                continue;
            }
            let image = doc["spec"]["taskDefinition"]["containerDefinitions"][0]["image"]
                .as_str()
                .unwrap_or_default();
            assert!(image.ends_with(&format!(":{tag}")), "{env}: {image}");
        }
    }
}

#[test]
fn own_ecs_manifest_runs_the_image_as_the_chart_does() {
    let text = read("manifests/ecsync/ecsync.yaml");
    let m: Value = serde_saphyr::from_str(&text).expect("one YAML document");
    assert_eq!(m["apiVersion"], "ecsync.io/v1alpha1");
    assert_eq!(m["kind"], "Service");
    let spec = &m["spec"];
    assert_eq!(spec["launchType"], "FARGATE");
    assert_eq!(
        spec["desiredCount"], 1,
        "one task: the manifest sets no leader-election table"
    );
    assert_eq!(
        spec["deploymentConfiguration"]["maximumPercent"], 100,
        "a deployment must never run two ecsync tasks at once"
    );
    let td = &spec["taskDefinition"];
    for role in ["taskRoleArn", "executionRoleArn"] {
        let arn = td[role].as_str().unwrap_or_default();
        assert!(
            arn.starts_with("arn:aws:iam::") && arn.contains("REPLACE-ME"),
            "{role} must be an obvious placeholder, got {arn:?}"
        );
    }
    let c = &td["containerDefinitions"][0];
    assert_eq!(c["command"], serde_json::json!(["run"]));
    assert_eq!(c["portMappings"][0]["containerPort"], 9464);
    assert_eq!(c["logConfiguration"]["logDriver"], "awslogs");
    assert_eq!(c["readonlyRootFilesystem"], true);
    let hc: Vec<String> = serde_json::from_value(c["healthCheck"]["command"].clone()).unwrap();
    assert!(hc.iter().any(|a| a.ends_with(":9464/healthz")), "{hc:?}");
    let runtime_pkgs = apt_packages(stages(&dockerfile(&read("Dockerfile"))).last().unwrap());
    assert!(
        runtime_pkgs.contains(&hc[1]),
        "the ECS health check runs `{}`, which the image does not install",
        hc[1]
    );
    let env: BTreeMap<String, String> = c["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(env["ECSYNC_LISTEN"], "0.0.0.0:9464");
    assert!(env.contains_key("ECSYNC_REPO"));
    let mounts: Vec<&str> = c["mountPoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&env["ECSYNC_CACHE_DIR"].as_str()));
    let user = dockerfile(&read("Dockerfile"))
        .into_iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .unwrap();
    assert_eq!(c["user"], user.args.as_str());
    assert_env_names_exist("manifests/ecsync/ecsync.yaml", &text, &run_help());
}

// ───────────────────────────── IAM policy ─────────────────────────────

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
}

/// A small Rust lexer: identifiers, string literals (normal, byte, raw) and punctuation, with
/// comments dropped, so calls split over lines by rustfmt, or mentioned in comments and
/// strings, are seen as they are. Each token carries its line.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            if (word == "r" || word == "br") && (at(i) == '"' || at(i) == '#') {
                let mut hashes = 0;
                while at(i) == '#' {
                    hashes += 1;
                    i += 1;
                }
                if at(i) != '"' {
                    out.push((Tok::Ident(word), line));
                    continue;
                }
                i += 1;
                let start_line = line;
                let s = i;
                loop {
                    if i >= c.len() {
                        break;
                    }
                    if c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                        break;
                    }
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                out.push((Tok::Str(c[s..i.min(c.len())].iter().collect()), start_line));
                i += 1 + hashes;
            } else if word == "b" && (at(i) == '"' || at(i) == '\'') {
                // byte string / byte char: lexed by the branches below
            } else {
                out.push((Tok::Ident(word), line));
            }
        } else if ch == '"' {
            let start_line = line;
            let mut s = String::new();
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    s.push(c[i]);
                    i += 1;
                }
                if c[i] == '\n' {
                    line += 1;
                }
                s.push(c[i]);
                i += 1;
            }
            i += 1;
            out.push((Tok::Str(s), start_line));
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{..}', '\''), or else a lifetime's quote.
            if at(i + 1) == '\\' {
                let mut j = i + 2;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                out.push((Tok::Punct('\''), line));
                i += 1;
            }
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

fn is_punct(t: Option<&(Tok, usize)>, p: char) -> bool {
    matches!(t, Some((Tok::Punct(q), _)) if *q == p)
}

/// Drops `#[cfg(test)] mod x { ... }` and `#[cfg(test)] fn ... { ... }` from a token stream
/// and returns the names of `#[cfg(test)] mod x;` file modules.
fn strip_test_code(toks: Vec<(Tok, usize)>) -> (Vec<(Tok, usize)>, Vec<String>) {
    let pattern = [
        Tok::Punct('#'),
        Tok::Punct('['),
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    let mut out = Vec::new();
    let mut file_mods = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let is_cfg_test = toks.len() >= i + pattern.len()
            && toks[i..i + pattern.len()]
                .iter()
                .zip(&pattern)
                .all(|((t, _), p)| t == p);
        if !is_cfg_test {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        let mut j = i + pattern.len();
        if ident(toks.get(j)) == Some("mod") && is_punct(toks.get(j + 2), ';') {
            file_mods.push(ident(toks.get(j + 1)).unwrap_or_default().to_string());
            i = j + 3;
            continue;
        }
        // Skip the item: up to its first `{`, then to the matching `}` (or a `;` first).
        while j < toks.len() && !is_punct(toks.get(j), '{') && !is_punct(toks.get(j), ';') {
            j += 1;
        }
        if is_punct(toks.get(j), '{') {
            let mut depth = 0;
            while j < toks.len() {
                if is_punct(toks.get(j), '{') {
                    depth += 1;
                } else if is_punct(toks.get(j), '}') {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                j += 1;
            }
        }
        i = j + 1;
    }
    (out, file_mods)
}

/// The SDK clients: default receiver name (the `Clients` field), crate, IAM service prefix.
/// A new `aws-sdk-*` dependency must be added here (a test checks Cargo.toml).
const SDK_CLIENTS: [(&str, &str, &str); 8] = [
    ("ecs", "aws_sdk_ecs", "ecs"),
    ("ec2", "aws_sdk_ec2", "ec2"),
    (
        "elbv2",
        "aws_sdk_elasticloadbalancingv2",
        "elasticloadbalancing",
    ),
    ("dynamodb", "aws_sdk_dynamodb", "dynamodb"),
    ("autoscaling", "aws_sdk_autoscaling", "autoscaling"),
    ("cloudwatch", "aws_sdk_cloudwatch", "cloudwatch"),
    ("scheduler", "aws_sdk_scheduler", "scheduler"),
    ("eventbridge", "aws_sdk_eventbridge", "events"),
];
/// Operation labels in error messages (`call_error("ECS:DescribeServices", ..)`).
const LABEL_PREFIXES: [(&str, &str); 8] = [
    ("ECS:", "ecs"),
    ("EC2:", "ec2"),
    ("ELBv2:", "elasticloadbalancing"),
    ("DynamoDB:", "dynamodb"),
    ("AutoScaling:", "autoscaling"),
    ("CloudWatch:", "cloudwatch"),
    ("Scheduler:", "scheduler"),
    ("EventBridge:", "events"),
];
/// Client methods that are not API operations.
const NOT_OPERATIONS: [&str; 4] = ["clone", "config", "as_ref", "to_owned"];

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut cs = w.chars();
            cs.next()
                .map(|f| f.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// IAM action → where it is called, for one file's tokens.
fn sdk_calls(toks: &[(Tok, usize)], file: &str, found: &mut BTreeMap<String, BTreeSet<String>>) {
    // Receivers: the client fields themselves (`clients.ecs`, a `let ecs = clients.ecs.clone()`),
    // and, per file, parameters typed `name: &aws_sdk_ecs::Client` and
    // `let name = <...>.ecs.clone()` bindings.
    // A name bound twice in one file (`client` for two SDKs) resolves to the binding before the
    // call, or the first one after it (a struct field declared below its impl).
    let mut receivers: BTreeMap<String, Vec<(usize, &str)>> = SDK_CLIENTS
        .iter()
        .map(|(field, _, prefix)| (field.to_string(), vec![(0, *prefix)]))
        .collect();
    for (k, (t, _)) in toks.iter().enumerate() {
        if let Tok::Ident(krate) = t
            && let Some((_, _, prefix)) = SDK_CLIENTS.iter().find(|(_, c, _)| c == krate)
            && is_punct(toks.get(k + 1), ':')
            && ident(toks.get(k + 3)) == Some("Client")
        {
            // Walk back over `&` and `mut` to the `name:` before the type.
            let mut b = k;
            while b > 0 && (is_punct(toks.get(b - 1), '&') || ident(toks.get(b - 1)) == Some("mut"))
            {
                b -= 1;
            }
            if b >= 2
                && is_punct(toks.get(b - 1), ':')
                && let Some(name) = ident(toks.get(b - 2))
            {
                receivers
                    .entry(name.to_string())
                    .or_default()
                    .push((k, prefix));
            }
        }
        if matches!(t, Tok::Ident(w) if w == "let")
            && let Some(name) = ident(toks.get(k + 1))
            && is_punct(toks.get(k + 2), '=')
        {
            let end = (k + 3..toks.len())
                .find(|&e| is_punct(toks.get(e), ';'))
                .unwrap_or(toks.len());
            let stmt = &toks[k + 3..end];
            if stmt.len() >= 5
                && ident(stmt.get(stmt.len() - 3)) == Some("clone")
                && is_punct(stmt.get(stmt.len() - 4), '.')
                && let Some(field) = ident(stmt.get(stmt.len() - 5))
                && let Some((_, _, prefix)) = SDK_CLIENTS.iter().find(|(f, _, _)| *f == field)
            {
                receivers
                    .entry(name.to_string())
                    .or_default()
                    .push((k, prefix));
            }
        }
    }
    for (k, (t, line)) in toks.iter().enumerate() {
        match t {
            Tok::Ident(r) if receivers.contains_key(r) => {
                let bindings = &receivers[r];
                let prefix = bindings
                    .iter()
                    .rev()
                    .find(|(at, _)| *at < k)
                    .or(bindings.first())
                    .map(|(_, p)| *p)
                    .unwrap();
                if k > 0 && is_punct(toks.get(k - 1), ':') {
                    continue;
                }
                if is_punct(toks.get(k + 1), '.')
                    && let Some(op) = ident(toks.get(k + 2))
                    && is_punct(toks.get(k + 3), '(')
                    && is_punct(toks.get(k + 4), ')')
                    && !NOT_OPERATIONS.contains(&op)
                {
                    assert!(
                        !op.starts_with("wait_until"),
                        "{file}:{line}: waiter {op}: add the operations it polls to tests/packaging.rs"
                    );
                    found
                        .entry(format!("{prefix}:{}", pascal(op)))
                        .or_default()
                        .insert(format!("{file}:{line}"));
                }
            }
            Tok::Str(s) => {
                for (label, prefix) in LABEL_PREFIXES {
                    if let Some(op) = s.strip_prefix(label)
                        && !op.is_empty()
                        && op.chars().all(|c| c.is_ascii_alphanumeric())
                        && op.starts_with(|c: char| c.is_ascii_uppercase())
                    {
                        found
                            .entry(format!("{prefix}:{op}"))
                            .or_default()
                            .insert(format!("{file}:{line}"));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Every AWS API operation the non-test code under `src/` calls, as IAM actions.
fn called_actions(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: Vec<PathBuf> = files_under(src)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    let mut tokens = BTreeMap::new();
    let mut test_files: BTreeSet<PathBuf> = BTreeSet::new();
    for f in &files {
        let (toks, file_mods) = strip_test_code(lex(&fs::read_to_string(f).unwrap()));
        let stem = f.file_stem().unwrap().to_str().unwrap();
        let base = if ["mod", "lib", "main"].contains(&stem) {
            f.parent().unwrap().to_path_buf()
        } else {
            f.with_extension("")
        };
        for m in file_mods {
            test_files.insert(base.join(format!("{m}.rs")));
            test_files.insert(base.join(&m));
        }
        tokens.insert(f.clone(), toks);
    }
    let mut found = BTreeMap::new();
    for (f, toks) in &tokens {
        if test_files.iter().any(|t| f.starts_with(t)) {
            continue;
        }
        let rel = f.strip_prefix(root()).unwrap_or(f).display().to_string();
        sdk_calls(toks, &rel, &mut found);
    }
    found
}

#[test]
fn scanner_finds_calls_across_line_breaks_and_ignores_tests_and_comments() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::create_dir_all(src.join("aws")).unwrap();
    fs::write(
        src.join("aws/mod.rs"),
        r#"
#[cfg(test)]
mod tests;
// clients.ecs.delete_cluster() in a comment is not a call
async fn a(clients: &Clients) {
    let out = clients
        .ecs
        .update_service()
        .send();
    let ecs = clients.ecs.clone();
    ecs.describe_services().send();
    let s = "clients.ec2.run_instances()";
    clients.elbv2.describe_target_health().send();
    let e = call_error("EC2:DescribeInstances", x);
    let lt: &'static str = "x"; let ch = '{';
}
fn b(client: &aws_sdk_ecs::Client) { client.register_task_definition(); }
fn c(lb: &aws_sdk_elasticloadbalancingv2::Client) { lb
    .modify_listener()
    .send(); }
struct Lease { client: aws_sdk_dynamodb::Client }
impl Lease { fn renew(&self) { self
    .client
    .update_item()
    .send(); } }
#[cfg(test)]
mod inline {
    fn t(clients: &Clients) { clients.ecs.delete_service(); }
}
"#,
    )
    .unwrap();
    fs::write(
        src.join("aws/tests.rs"),
        "fn t(clients: &Clients) { clients.ec2.terminate_instances(); }",
    )
    .unwrap();
    let found: BTreeSet<String> = called_actions(src).into_keys().collect();
    assert_eq!(
        found,
        BTreeSet::from([
            "ecs:UpdateService".to_string(),
            "ecs:DescribeServices".into(),
            "elasticloadbalancing:DescribeTargetHealth".into(),
            "ec2:DescribeInstances".into(),
            "ecs:RegisterTaskDefinition".into(),
            "elasticloadbalancing:ModifyListener".into(),
            "dynamodb:UpdateItem".into(),
        ])
    );
}

#[test]
fn scanner_knows_every_aws_sdk_crate_the_crate_depends_on() {
    let cargo = read("Cargo.toml");
    let unknown: Vec<String> = cargo
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("aws-sdk-"))
        .map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            format!("aws_sdk_{}", name.replace('-', "_"))
        })
        .filter(|krate| !SDK_CLIENTS.iter().any(|(_, c, _)| c == krate))
        .collect();
    assert!(
        unknown.is_empty(),
        "add {unknown:?} with its IAM service prefix to SDK_CLIENTS in tests/packaging.rs, \
         so the IAM policy test sees its calls"
    );
}

/// Actions the policy may hold although no SDK call is named after them.
const IMPLIED_ACTIONS: [(&str, &str, &str); 1] = [(
    "iam:PassRole",
    "ecs:RegisterTaskDefinition",
    "registering a task definition with taskRoleArn/executionRoleArn passes those roles",
)];

fn policy_actions(policy: &Value) -> BTreeSet<String> {
    assert_eq!(policy["Version"], "2012-10-17");
    let mut actions = BTreeSet::new();
    for st in policy["Statement"].as_array().expect("Statement list") {
        assert_eq!(st["Effect"], "Allow", "only Allow statements: {st}");
        assert!(st.get("NotAction").is_none(), "no NotAction: {st}");
        assert!(
            st["Sid"].is_string(),
            "every statement has a Sid that says why: {st}"
        );
        match &st["Action"] {
            Value::String(a) => {
                actions.insert(a.clone());
            }
            Value::Array(list) => {
                actions.extend(list.iter().map(|a| a.as_str().unwrap().to_string()))
            }
            other => panic!("Action must be a string or a list: {other}"),
        }
    }
    for a in &actions {
        assert!(!a.contains('*'), "no wildcard actions: {a}");
    }
    actions
}

#[test]
fn iam_policy_lists_exactly_the_actions_ecsync_calls() {
    let called = called_actions(&root().join("src"));
    for sure in [
        "ecs:DescribeServices",
        "ecs:UpdateService",
        "elasticloadbalancing:DescribeTargetGroups",
    ] {
        assert!(
            called.contains_key(sure),
            "the scanner lost {sure}; found {:?}",
            called.keys()
        );
    }
    let policy: Value =
        serde_json::from_str(&read("manifests/ecsync/iam-policy.json")).expect("valid JSON");
    let granted = policy_actions(&policy);

    let add: Vec<String> = called
        .iter()
        .filter(|(a, _)| !granted.contains(*a))
        .map(|(a, at)| {
            let at: Vec<&str> = at.iter().map(String::as_str).collect();
            format!("  add    {a}  (called at {})", at.join(", "))
        })
        .collect();
    let remove: Vec<String> = granted
        .iter()
        .filter(|a| !called.contains_key(*a))
        .filter(|a| {
            !IMPLIED_ACTIONS
                .iter()
                .any(|(implied, by, _)| implied == *a && called.contains_key(*by))
        })
        .map(|a| format!("  remove {a}  (nothing in src/ calls it)"))
        .collect();
    assert!(
        add.is_empty() && remove.is_empty(),
        "manifests/ecsync/iam-policy.json does not match the AWS calls in src/ (least privilege):\n{}\n\
         Implied actions allowed without a call: {:?}",
        add.iter()
            .chain(&remove)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        IMPLIED_ACTIONS
    );
}

/// Sets up IAM on a moto whose IAM enforcement starts after three requests: those three create
/// an `admin` user with `*`, and everything after is signed with its keys. Then: the `prod`
/// cluster, a `web-ecs` target group, the `ecsync-leases` lease table, a user `ecsync` whose
/// only policy is the file given, and
/// a user `weak` with the same policy minus `ecs:CreateService`. Prints JSON.
const IAM_SETUP: &str = r#"
import json, sys, boto3
endpoint, policy_path = sys.argv[1], sys.argv[2]
def client(svc, key="testing", secret="testing"):
    return boto3.client(svc, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
iam = client("iam")
iam.create_user(UserName="admin")
iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="admin")["AccessKey"]
admin = (k["AccessKeyId"], k["SecretAccessKey"])
iam = client("iam", *admin)
ec2 = client("ec2", *admin)
client("ecs", *admin).create_cluster(clusterName="prod")
vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]][:2]
sg = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                           {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
client("elbv2", *admin).create_target_group(Name="web-ecs", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
client("dynamodb", *admin).create_table(TableName="ecsync-leases", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "lease", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "lease", "KeyType": "HASH"}])
policy = json.load(open(policy_path))
# moto matches a statement's Resource only against "*" (it does not know the resource a call
# is on), so scoped statements are widened here: this test checks actions, not resources.
for st in policy["Statement"]:
    st["Resource"] = "*"
weak = json.loads(json.dumps(policy))
for st in weak["Statement"]:
    acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
    st["Action"] = [a for a in acts if a != "ecs:CreateService"] or ["ecs:ListTagsForResource"]
users = {}
for name, doc in [("ecsync", policy), ("weak", weak)]:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="ecsync", PolicyDocument=json.dumps(doc))
    k = iam.create_access_key(UserName=name)["AccessKey"]
    users[name] = [k["AccessKeyId"], k["SecretAccessKey"]]
# moto rejects an unknown key once enforcement is on: prove it is.
try:
    client("ecs").list_clusters()
    sys.exit("moto does not enforce IAM")
except Exception:
    pass
print(json.dumps({"users": users, "subnets": subnets, "sg": sg}))
"#;

/// The policy is not only equal to the scanned calls: it is enough for a real apply, diff,
/// import and a leader-elected daemon pass against moto with IAM enforcement on (which checks
/// each call's action; it cannot evaluate `aws:ResourceTag` conditions, so pruning is not
/// exercised here).
#[tokio::test(flavor = "multi_thread")]
async fn iam_policy_is_enough_to_apply_diff_and_import_under_enforced_iam() {
    let moto = common::Moto::start_with_env(&[
        ("INITIAL_NO_AUTH_ACTION_COUNT", "3"),
        ("MOTO_ECS_SERVICE_RUNNING", "1"),
    ]);
    let out = Command::new("python3")
        .args(["-c", IAM_SETUP, &moto.endpoint()])
        .arg(root().join("manifests/ecsync/iam-policy.json"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "IAM setup failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        moto.log()
    );
    let setup: Value = serde_json::from_slice(&out.stdout).expect("setup JSON");
    let manifest = format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: web
spec:
  cluster: prod
  desiredCount: 1
  launchType: FARGATE
  taskDefinition:
    family: web
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    taskRoleArn: arn:aws:iam::123456789012:role/web-task
    containerDefinitions:
      - name: web
        image: nginx:1.27
        portMappings: [{{containerPort: 80}}]
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [{s0}, {s1}]
      securityGroups: [{sg}]
  loadBalancers:
    - {{targetGroup: web-ecs, containerName: web, containerPort: 80}}
  tags: {{team: platform}}
"#,
        s0 = setup["subnets"][0].as_str().unwrap(),
        s1 = setup["subnets"][1].as_str().unwrap(),
        sg = setup["sg"].as_str().unwrap(),
    );
    let repo = common::GitRepo::new();
    repo.write("services/web.yaml", &manifest);
    repo.commit("web");
    let cache = tempfile::tempdir().unwrap();
    let as_user = |user: &str, args: &[&str]| {
        let key = &setup["users"][user];
        let mut cmd = common::ecsync_with(&moto);
        cmd.args(args)
            .env("AWS_ACCESS_KEY_ID", key[0].as_str().unwrap())
            .env("AWS_SECRET_ACCESS_KEY", key[1].as_str().unwrap());
        if args[0] != "import" {
            cmd.args(["--repo", &repo.url(), "--path", "services", "--cache-dir"])
                .arg(cache.path());
        }
        common::run(cmd)
    };

    // The control: without ecs:CreateService the same apply is refused, so moto really checks.
    let weak = as_user("weak", &["apply"]);
    assert_eq!(weak.code, 1, "{weak}");
    assert!(
        format!("{weak}").contains("CreateService"),
        "the weak policy must fail on CreateService: {weak}"
    );

    let log_before = moto.log().len();
    let apply = as_user("ecsync", &["apply", "--output", "json"]);
    assert_eq!(apply.code, 0, "apply with iam-policy.json:\n{apply}");
    let diff = as_user("ecsync", &["diff"]);
    assert_eq!(diff.code, 0, "diff with iam-policy.json:\n{diff}");
    // `--service`: moto's IAM check computes a different SigV4 signature for
    // EventBridge Scheduler's REST calls (403 SignatureDoesNotMatch), so the
    // schedule side of import cannot run here; the scanner test above keeps
    // its actions in the policy.
    let import = as_user(
        "ecsync",
        &["import", "--cluster", "prod", "--service", "web"],
    );
    assert_eq!(import.code, 0, "import with iam-policy.json:\n{import}");
    assert!(import.stdout.contains("name: web"), "{import}");
    // The daemon with a lease: it takes the lease (dynamodb:UpdateItem) and finishes a pass.
    let addr = format!("127.0.0.1:{}", common::free_port());
    let key = &setup["users"]["ecsync"];
    let mut cmd = common::ecsync_with(&moto);
    cmd.args([
        "run",
        "--repo",
        &repo.url(),
        "--path",
        "services",
        "--listen",
        &addr,
    ])
    .args([
        "--leader-election-table",
        "ecsync-leases",
        "--interval",
        "1s",
    ])
    .arg("--cache-dir")
    .arg(cache.path())
    .env("AWS_ACCESS_KEY_ID", key[0].as_str().unwrap())
    .env("AWS_SECRET_ACCESS_KEY", key[1].as_str().unwrap());
    let mut daemon = common::Daemon::spawn(cmd);
    let led_a_pass = common::wait_until(Duration::from_secs(30), || {
        let Ok((200, body)) = common::try_http_get(&addr, "/status") else {
            return false;
        };
        let (_, metrics) = common::http_get(&addr, "/metrics");
        let leader = serde_json::from_str::<Value>(&body).is_ok_and(|v| v["role"] == "leader");
        leader
            && metrics.lines().any(|l| {
                l.starts_with("ecsync_reconcile_total{result=\"ok\",") && !l.ends_with(" 0")
            })
    });
    daemon.signal("TERM");
    let _ = daemon.wait_timeout(Duration::from_secs(20));
    assert!(
        led_a_pass,
        "the daemon did not lead and finish a pass with iam-policy.json:\n{}",
        daemon.logs()
    );

    let log = moto.log();
    let refused: Vec<&str> = log[log_before..]
        .lines()
        .filter(|l| l.contains("\" 403 "))
        .collect();
    assert!(
        refused.is_empty(),
        "moto refused calls made with iam-policy.json: {refused:?}"
    );
    assert!(
        apply.json().to_string().contains("CreateService"),
        "the apply must have created the service: {apply}"
    );
}

// ───────────────────────────── README ─────────────────────────────

#[test]
fn readme_configuration_table_matches_run_help() {
    let readme = read("README.md");
    let start = readme
        .find("\n## Running it")
        .expect("README has a `## Running it` section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let rows: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with('|') && l.contains("`--"))
        .collect();
    let help = run_help();
    let flags = help_flags(&help);
    assert!(flags.len() > 10, "help parser found {flags:?}");
    let mut problems = Vec::new();
    for (flag, f) in &flags {
        if flag == "--help" {
            continue;
        }
        let cell = format!("`{flag}`");
        match rows.iter().find(|r| r.contains(&cell)) {
            None => problems.push(format!("{flag} has no row in the configuration table")),
            Some(row) => {
                if let Some(env) = &f.env
                    && !row.contains(&format!("`{env}`"))
                {
                    problems.push(format!("the {flag} row does not name `{env}`"));
                }
                if let Some(default) = &f.default
                    && !row.contains(&format!("`{default}`"))
                {
                    problems.push(format!(
                        "the {flag} row does not give its default `{default}`"
                    ));
                }
            }
        }
    }
    for row in &rows {
        let first = row.split('|').nth(1).unwrap_or_default();
        for flag in first.split('`').filter(|w| w.starts_with("--")) {
            let flag = flag.split_whitespace().next().unwrap();
            if !flags.contains_key(flag) {
                problems.push(format!(
                    "the table documents {flag}, which `ecsync run` does not have"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "README configuration table vs `ecsync run --help`:\n  {}",
        problems.join("\n  ")
    );
}
