//! The one-shot commands: validate, diff, apply, import.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use ecsync::aws::{self, Clients};
use ecsync::controller::{PassReport, Reconciler};
use ecsync::interceptor::{ApiCallInterceptor, CallCounts};
use ecsync::manifest::{self, ManifestSet};
use ecsync::metrics::Metrics;
use ecsync::source::{GitConfig, GitSource, Snapshot, load_dir};

use crate::cli::{
    ApplyArgs, AwsArgs, DiffArgs, ImportArgs, Mode, Output, SourceArgs, ValidateArgs,
};
use crate::render;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_DRIFT: u8 = 2;

pub fn validate(args: ValidateArgs) -> Result<u8> {
    let files = load_dir(&args.path)?;
    let set = manifest::load(files.iter().map(|f| (f.path.as_str(), f.contents.as_str())));
    for e in &set.errors {
        println!("{e}");
    }
    if !set.errors.is_empty() {
        return Ok(EXIT_ERROR);
    }
    println!(
        "{} services in {} files are valid",
        set.services.len(),
        files.len()
    );
    Ok(EXIT_OK)
}

pub fn git_source(args: &SourceArgs) -> Result<GitSource> {
    let token = match &args.git_token_file {
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
        cache_dir: args.cache_dir.clone().unwrap_or_else(default_cache_dir),
        token,
        ssh_key_file: args.ssh_key_file.clone(),
        timeout: args.git_timeout,
    }))
}

fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("ecsync")
}

/// Parse a snapshot; an empty set is an error, never an instruction.
pub fn load_snapshot(snapshot: &Snapshot, path: Option<&str>) -> Result<ManifestSet> {
    let set = manifest::load(
        snapshot
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.contents.as_str())),
    );
    if set.services.is_empty() && set.errors.is_empty() {
        bail!(
            "no manifests found under {:?} at {}: refusing to treat an empty repository as the desired state",
            path.unwrap_or("."),
            snapshot.revision
        );
    }
    Ok(set)
}

pub async fn clients(
    args: &AwsArgs,
    metrics: Arc<Metrics>,
    read_only: bool,
) -> (Clients, Arc<CallCounts>) {
    let switch = Arc::new(std::sync::atomic::AtomicBool::new(read_only));
    let sdk = aws::load_config(args.endpoint_url.as_deref()).await;
    clients_with_switch(&sdk, metrics, switch)
}

/// Clients whose mutating calls are refused while `read_only` is set.
pub fn clients_with_switch(
    sdk: &aws_config::SdkConfig,
    metrics: Arc<Metrics>,
    read_only: Arc<std::sync::atomic::AtomicBool>,
) -> (Clients, Arc<CallCounts>) {
    let counts = Arc::new(CallCounts::default());
    let interceptor = ApiCallInterceptor::with_switch(metrics, counts.clone(), read_only);
    (Clients::new(sdk, interceptor), counts)
}

async fn one_pass(
    source: &SourceArgs,
    aws_args: &AwsArgs,
    prune: Option<usize>,
    max_decommission_per_pass: usize,
    report_only: bool,
    dry_run: bool,
) -> Result<(ManifestSet, PassReport, Arc<CallCounts>)> {
    let snapshot = git_source(source)?.fetch().await?;
    let set = load_snapshot(&snapshot, source.path.as_deref())?;
    let metrics = Arc::new(Metrics::new());
    let (clients, counts) = clients(aws_args, metrics.clone(), report_only || dry_run).await;
    let reconciler = Reconciler {
        clients,
        cache: Default::default(),
        metrics,
        controller_id: aws_args.controller_id.clone(),
        report_only,
        prune,
        max_decommission_per_pass,
    };
    let report = reconciler
        .pass(&snapshot.revision, &set, dry_run, &Default::default())
        .await;
    Ok((set, report, counts))
}

pub async fn diff(args: DiffArgs) -> Result<u8> {
    let (set, report, counts) = one_pass(&args.source, &args.aws, None, 1, true, true).await?;
    match args.output {
        Output::Text => print!("{}", render::diff_text(&set, &report)),
        Output::Json => println!("{}", render::report_json(&set, &report, Some(&counts))),
    }
    Ok(if report.has_errors() || !set.errors.is_empty() {
        EXIT_ERROR
    } else if report.drifted().next().is_some() {
        EXIT_DRIFT
    } else {
        EXIT_OK
    })
}

pub async fn apply(args: ApplyArgs) -> Result<u8> {
    let report_only = args.mode == Mode::Report;
    let (set, report, counts) = one_pass(
        &args.source,
        &args.aws,
        args.prune.limit(),
        args.prune.max_decommission_per_pass,
        report_only,
        args.dry_run,
    )
    .await?;
    match args.output {
        Output::Text => print!(
            "{}",
            render::apply_text(&set, &report, &counts, args.dry_run)
        ),
        Output::Json => println!("{}", render::report_json(&set, &report, Some(&counts))),
    }
    Ok(if report.has_errors() || !set.errors.is_empty() {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

pub async fn import(args: ImportArgs) -> Result<u8> {
    let metrics = Arc::new(Metrics::new());
    let (clients, _) = clients(&args.aws, metrics, true).await;
    let manifests = aws::import::import(&clients, &args.cluster, args.service.as_deref()).await?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for m in &manifests {
        let yaml = aws::import::to_yaml(m)?;
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
    if manifests.is_empty() {
        eprintln!("no services found in cluster {}", args.cluster);
    }
    Ok(EXIT_OK)
}
