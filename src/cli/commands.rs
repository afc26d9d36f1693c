//! The commands: validate, diff, apply, import, and run (the daemon).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use ecsync::adapters::aws::interceptor::{CallCounts, ReadOnly};
use ecsync::adapters::aws::{self, Clients};
use ecsync::adapters::git::{GitConfig, GitSource, load_dir_tree};
use ecsync::core::manifest::{self, ManifestSet};
use ecsync::core::state::Mode;
use ecsync::runtime::daemon::{self, DaemonConfig};
use ecsync::runtime::desired::load_snapshot;
use ecsync::runtime::http::WebhookConfig;
use ecsync::runtime::leader::{LeaseConfig, default_holder, lease_name};
use ecsync::runtime::metrics::Metrics;
use ecsync::runtime::notify::{NotifyConfig, SecretUrl};
use ecsync::runtime::reconciler::{PassReport, Reconciler};

use super::render;
use super::{
    ApplyArgs, AwsArgs, DiffArgs, ImportArgs, Output, RenderArgs, RunArgs, ShardArgs, SourceArgs,
    ValidateArgs,
};

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_DRIFT: u8 = 2;

pub fn validate(args: ValidateArgs) -> Result<u8> {
    let (files, tree) = load_dir_tree(&args.path)?;
    let set = manifest::load_tree(files.iter().map(|f| (f.path.as_str(), &*f.contents)), &tree);
    for e in &set.errors {
        println!("{e}");
    }
    for w in &set.warnings {
        println!("warning: {w}");
    }
    if !set.errors.is_empty() {
        return Ok(EXIT_ERROR);
    }
    if set.scheduled.is_empty() {
        println!(
            "{} services in {} files are valid",
            set.services.len(),
            files.len()
        );
    } else {
        println!(
            "{} services and {} scheduled tasks in {} files are valid",
            set.services.len(),
            set.scheduled.len(),
            files.len()
        );
    }
    Ok(EXIT_OK)
}

/// The final manifests, overlays built, as `kustomize build` prints them.
pub async fn render(args: RenderArgs) -> Result<u8> {
    let (source, files, tree) = match &args.repo {
        Some(repo) => {
            let source = SourceArgs {
                repo: repo.clone(),
                git_ref: args.git_ref.clone(),
                path: args.path.clone(),
                access: args.access.clone(),
            };
            let snapshot = git_source(&source)?.fetch().await?;
            (
                format!("{} at {}", repo, snapshot.revision),
                snapshot.files,
                snapshot.tree,
            )
        }
        None => {
            let path = PathBuf::from(args.path.as_deref().unwrap_or("manifests"));
            let (files, tree) = load_dir_tree(&path)?;
            (path.display().to_string(), files, tree)
        }
    };
    let (rendered, errors) =
        manifest::render_tree(files.iter().map(|f| (f.path.as_str(), &*f.contents)), &tree);
    for e in &errors {
        eprintln!("{e}");
    }
    if !errors.is_empty() {
        return Ok(EXIT_ERROR);
    }
    if rendered.is_empty() {
        eprintln!("no manifests in {source}");
        return Ok(EXIT_ERROR);
    }
    let mut out = String::new();
    for r in &rendered {
        out.push_str("---\n");
        out.push_str(&format!("# Source: {}\n", r.source));
        out.push_str(&serde_saphyr::to_string(&r.value).context("writing YAML")?);
    }
    print!("{out}");
    Ok(EXIT_OK)
}

pub fn git_source(args: &SourceArgs) -> Result<GitSource> {
    let token = match &args.access.git_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading git token file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("ECSYNC_GIT_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    };
    Ok(GitSource::new(GitConfig {
        repo: args.repo.clone(),
        git_ref: args.git_ref.clone(),
        path: args.path.clone(),
        cache_dir: args
            .access
            .cache_dir
            .clone()
            .unwrap_or_else(default_cache_dir),
        token,
        ssh_key_file: args.access.ssh_key_file.clone(),
        timeout: args.access.git_timeout,
    }))
}

fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("ecsync")
}

async fn clients(
    args: &AwsArgs,
    metrics: Arc<Metrics>,
    read_only: bool,
) -> (Clients, Arc<CallCounts>) {
    let sdk = aws::load_config(args.endpoint_url.as_deref()).await;
    ecsync::runtime::clients(&sdk, metrics, ReadOnly::new(read_only))
}

async fn one_pass(
    source: &SourceArgs,
    aws_args: &AwsArgs,
    prune: Option<usize>,
    max_decommission_per_pass: usize,
    mode: Mode,
    dry_run: bool,
    shard: &ShardArgs,
) -> Result<(ManifestSet, PassReport, Arc<CallCounts>, Clients)> {
    let shard = shard.shard()?;
    let snapshot = git_source(source)?.fetch().await?;
    let mut set = load_snapshot(&snapshot, source.path.as_deref())?;
    if let Some(shard) = shard {
        set.warnings.extend(shard.dependency_warnings(&set));
    }
    let metrics = Arc::new(Metrics::new());
    let read_only = mode == Mode::Report || dry_run;
    let (clients, counts) = clients(aws_args, metrics.clone(), read_only).await;
    let reconciler = Reconciler {
        clients: clients.clone(),
        cache: Default::default(),
        metrics,
        controller_id: aws_args.controller_id.clone(),
        mode,
        prune,
        max_decommission_per_pass,
        shard,
    };
    let report = reconciler
        .pass(&snapshot.revision, &set, &Default::default())
        .await;
    Ok((set, report, counts, clients))
}

pub async fn diff(args: DiffArgs) -> Result<u8> {
    let (set, report, counts, _) = one_pass(
        &args.source,
        &args.aws,
        None,
        1,
        Mode::Report,
        true,
        &args.shard,
    )
    .await?;
    match args.output {
        Output::Text => print!("{}", render::diff_text(&set, &report)),
        Output::Json => println!("{}", render::report_json(&set, &report, Some(&counts))),
    }
    Ok(if report.has_errors() || !set.errors.is_empty() {
        EXIT_ERROR
    } else if report.drifted().next().is_some() || report.scheduled.drifted().next().is_some() {
        EXIT_DRIFT
    } else {
        EXIT_OK
    })
}

pub async fn apply(args: ApplyArgs) -> Result<u8> {
    let (set, report, counts, clients) = one_pass(
        &args.source,
        &args.aws,
        args.prune.limit(),
        args.prune.max_decommission_per_pass,
        args.mode,
        args.dry_run,
        &args.shard,
    )
    .await?;
    match args.output {
        Output::Text => print!(
            "{}",
            render::apply_text(&set, &report, &counts, args.dry_run)
        ),
        Output::Json => println!("{}", render::report_json(&set, &report, Some(&counts))),
    }
    if report.has_errors() || !set.errors.is_empty() {
        return Ok(EXIT_ERROR);
    }
    if args.wait {
        let targets = ecsync::runtime::wait::targets(&report);
        if !super::wait::wait(&clients, &targets, args.timeout).await? {
            return Ok(EXIT_ERROR);
        }
    }
    Ok(EXIT_OK)
}

pub async fn import(args: ImportArgs) -> Result<u8> {
    let metrics = Arc::new(Metrics::new());
    let (clients, _) = clients(&args.aws, metrics, true).await;
    let manifests =
        aws::ecs::import::import(&clients, &args.cluster, args.service.as_deref()).await?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for imported in &manifests {
        let m = &imported.manifest;
        if !imported.unmanaged.is_empty() {
            // Written anyway, so the service can be watched for drift; a new
            // revision is refused until these can be expressed.
            eprintln!(
                "warning: {}: not in the manifest, since manifests cannot express them yet: {}",
                m.metadata.name,
                imported.unmanaged.join(", ")
            );
        }
        let yaml = aws::ecs::import::to_yaml(m)?;
        match &args.out {
            Some(dir) => {
                let path = dir.join(format!("{}.yaml", m.metadata.name));
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            None => print!("---\n{yaml}"),
        }
    }
    // The schedules of ecsync's group that run tasks in this cluster; none
    // with --service, which names one service.
    let group = ecsync::core::scheduled::group_name(&args.aws.controller_id);
    let schedules = match &args.service {
        Some(_) => Vec::new(),
        None => aws::scheduler::import(&clients, &group, &args.cluster).await?,
    };
    for imported in &schedules {
        let m = &imported.manifest;
        if !imported.unmanaged.is_empty() {
            eprintln!(
                "warning: schedule {}: its task definition sets what manifests cannot express yet: {}",
                m.metadata.name,
                imported.unmanaged.join(", ")
            );
        }
        let yaml = aws::scheduler::to_yaml(m)?;
        match &args.out {
            Some(dir) => {
                // Beside the services, never over one of the same name.
                let path = dir.join(format!("{}.scheduled.yaml", m.metadata.name));
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            None => print!("---\n{yaml}"),
        }
    }
    // EventBridge rules are never touched: each is reported with the
    // ScheduledTask it would be, on one line, for the operator to move.
    let rules = match &args.service {
        Some(_) => Vec::new(),
        None => aws::eventbridge::ecs_rule_tasks(&clients, &args.cluster).await?,
    };
    for mut r in rules {
        let (td, _) = aws::scheduler::describe_for_import(&clients, &r.task_definition_arn).await?;
        r.manifest.spec.task_definition = Some(td);
        let one_line = serde_json::to_string(&ecsync::core::diff::to_clean_value(&r.manifest))?;
        eprintln!(
            "note: EventBridge rule {} runs tasks in cluster {} (ecsync never changes rules). As a ScheduledTask \
             (then give it a role that trusts scheduler.amazonaws.com, and disable the rule): {one_line}",
            r.rule, args.cluster
        );
    }
    if manifests.is_empty() && schedules.is_empty() {
        eprintln!("no services found in cluster {}", args.cluster);
    }
    Ok(EXIT_OK)
}

pub async fn run(args: RunArgs) -> Result<u8> {
    let webhook = match &args.webhook_secret_file {
        Some(path) => {
            let secret = std::fs::read(path)
                .with_context(|| format!("reading webhook secret {}", path.display()))?;
            let secret = String::from_utf8_lossy(&secret).trim().as_bytes().to_vec();
            if secret.is_empty() {
                // Every delivery would get 401: fail where the operator looks first.
                anyhow::bail!("webhook secret file {} is empty", path.display());
            }
            Some(WebhookConfig {
                secret,
                branch: args.source.git_ref.clone(),
                default_branch: Default::default(),
            })
        }
        None => None,
    };
    // The Slack URL and the secret come from files so that they stay out of argv and logs.
    let read_trimmed = |path: &PathBuf, what: &str| -> Result<String> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {what} {}", path.display()))?;
        let text = text.trim_end();
        if text.is_empty() {
            anyhow::bail!("{what} file {} is empty", path.display());
        }
        Ok(text.to_string())
    };
    let notify = NotifyConfig {
        webhooks: args
            .notify_webhook_url
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect(),
        slack: args
            .notify_slack_url_file
            .as_ref()
            .map(|p| read_trimmed(p, "Slack URL"))
            .transpose()?
            .map(SecretUrl::new),
        secret: args
            .notify_secret_file
            .as_ref()
            .map(|p| read_trimmed(p, "notification secret"))
            .transpose()?
            .map(String::into_bytes),
        delivery: Default::default(),
    };
    let shard = args.shard.shard()?;
    let source = git_source(&args.source)?;
    let sdk = aws::load_config(args.aws.endpoint_url.as_deref()).await;
    let leader = args
        .leader
        .leader_election_table
        .as_ref()
        .map(|table| LeaseConfig {
            table: table.clone(),
            name: lease_name(&args.aws.controller_id, shard),
            holder: args
                .leader
                .lease_holder
                .clone()
                .unwrap_or_else(default_holder),
            duration: args.leader.lease_duration,
            renew_deadline: args.leader.lease_renew_deadline,
            retry_period: args.leader.lease_retry_period,
        });
    let cfg = DaemonConfig {
        mode: args.mode,
        interval: args.interval,
        listen: args.listen.clone(),
        webhook,
        pass_timeout: args.pass_timeout,
        controller_id: args.aws.controller_id.clone(),
        prune: args.prune.limit(),
        max_decommission_per_pass: args.prune.max_decommission_per_pass,
        path: args.source.path.clone(),
        leader,
        notify,
        shard,
    };
    daemon::run(cfg, source, sdk).await?;
    Ok(EXIT_OK)
}
