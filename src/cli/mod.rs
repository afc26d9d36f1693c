//! Command-line interface (DESIGN §2). Every flag also reads an `ECSYNC_*`
//! environment variable.

pub mod commands;
pub mod convert;
pub mod render;
pub mod wait;

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ecsync::core::shard::{Shard, ShardError};
use ecsync::core::state::Mode;

/// `--mode auto|report`, parsed into the core's [`Mode`].
fn mode_parser() -> impl TypedValueParser<Value = Mode> {
    PossibleValuesParser::new([Mode::Auto.as_str(), Mode::Report.as_str()])
        .try_map(|s| s.parse::<Mode>())
}

#[derive(Parser, Debug)]
#[command(
    name = "ecsync",
    version,
    about = "GitOps reconciliation controller for Amazon ECS"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, env = "ECSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and validate manifests; print each error as file:line:col: message.
    Validate(ValidateArgs),
    /// Observe live state and print the drift per service (exit 0 in sync, 2 drift, 1 error).
    Diff(DiffArgs),
    /// Run one reconcile pass, then exit (0 converged or progressing, 1 error); --wait follows its rollouts.
    Apply(ApplyArgs),
    /// Run the reconciliation daemon until SIGTERM or SIGINT.
    Run(Box<RunArgs>),
    /// Write manifests for live services, to adopt an existing account.
    Import(ImportArgs),
    /// Write the manifest of an ecspresso project, or of plain AWS CLI JSON.
    Convert(ConvertArgs),
    /// Print the final manifests, overlays built, like `kustomize build` (without --repo: the local --path, default manifests).
    Render(RenderArgs),
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Git repository: local path, file://, https:// or ssh:// / scp-style URL.
    #[arg(long, env = "ECSYNC_REPO")]
    pub repo: Option<String>,
    /// Branch, tag or commit; default the remote's HEAD.
    #[arg(long = "ref", env = "ECSYNC_REF", requires = "repo")]
    pub git_ref: Option<String>,
    /// Folder (in the repository, or on disk without --repo) that holds the manifests.
    #[arg(long, env = "ECSYNC_PATH")]
    pub path: Option<String>,
    #[command(flatten)]
    pub access: GitAccessArgs,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// ecspresso's config (ecspresso.yml or .json): cluster, service and the definitions it names.
    #[arg(long, conflicts_with_all = ["task_definition", "service_definition", "cluster", "name"])]
    pub ecspresso: Option<PathBuf>,
    /// A task definition as JSON (RegisterTaskDefinition input or a describe answer).
    #[arg(long)]
    pub task_definition: Option<PathBuf>,
    /// A service definition as JSON (CreateService input or a describe answer).
    #[arg(long)]
    pub service_definition: Option<PathBuf>,
    #[arg(long)]
    pub cluster: Option<String>,
    /// The service name.
    #[arg(long)]
    pub name: Option<String>,
    /// Folder to write `<service>.yaml` into; default: print to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// A manifest file or a folder of them (searched recursively).
    #[arg(default_value = "manifests")]
    pub path: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// Git repository: local path, file://, https:// or ssh:// / scp-style URL.
    #[arg(long, env = "ECSYNC_REPO")]
    pub repo: String,
    /// Branch, tag or commit; default the remote's HEAD.
    #[arg(long = "ref", env = "ECSYNC_REF")]
    pub git_ref: Option<String>,
    /// Folder inside the repository that holds the manifests.
    #[arg(long, env = "ECSYNC_PATH")]
    pub path: Option<String>,
    #[command(flatten)]
    pub access: GitAccessArgs,
}

/// How the Git source is reached and cached.
#[derive(Args, Debug, Clone)]
pub struct GitAccessArgs {
    /// Where cached clones live (default: $XDG_CACHE_HOME/ecsync or ~/.cache/ecsync).
    #[arg(long, env = "ECSYNC_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// File holding an https token (ECSYNC_GIT_TOKEN is read too).
    #[arg(long, env = "ECSYNC_GIT_TOKEN_FILE")]
    pub git_token_file: Option<PathBuf>,
    /// Private key for ssh:// repositories.
    #[arg(long, env = "ECSYNC_SSH_KEY_FILE")]
    pub ssh_key_file: Option<PathBuf>,
    /// Time limit for one git command.
    #[arg(long, env = "ECSYNC_GIT_TIMEOUT", value_parser = humantime::parse_duration, default_value = "60s")]
    pub git_timeout: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct AwsArgs {
    /// Send every AWS call to this endpoint (also AWS_ENDPOINT_URL).
    #[arg(long, env = "ECSYNC_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Value of the ecsync.io/managed-by tag on what this instance owns.
    #[arg(long, env = "ECSYNC_CONTROLLER_ID", default_value = "ecsync")]
    pub controller_id: String,
}

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// Delete services this controller owns whose manifest is gone from Git.
    #[arg(long, env = "ECSYNC_PRUNE")]
    pub prune: bool,
    /// At most this many services are pruned in one pass.
    #[arg(long, env = "ECSYNC_MAX_PRUNE_PER_PASS", default_value_t = 1)]
    pub max_prune_per_pass: usize,
    /// At most this many EC2 instances are stopped or terminated in one pass
    /// (decommission of migrated fleets; independent of --prune).
    #[arg(long, env = "ECSYNC_MAX_DECOMMISSION_PER_PASS", default_value_t = 1)]
    pub max_decommission_per_pass: usize,
}

/// Sharding: several daemons split the clusters between them (DESIGN §2 flags, README "Sharding").
#[derive(Args, Debug, Clone)]
pub struct ShardArgs {
    /// This replica's shard, from 0: it acts only on the clusters that hash to it
    /// (with --shard-count).
    #[arg(long, env = "ECSYNC_SHARD_INDEX", requires = "shard_count")]
    pub shard_index: Option<u32>,
    /// How many shards split the clusters (with --shard-index).
    #[arg(long, env = "ECSYNC_SHARD_COUNT", requires = "shard_index")]
    pub shard_count: Option<u32>,
}

impl ShardArgs {
    /// `None` without sharding.
    pub fn shard(&self) -> Result<Option<Shard>, ShardError> {
        match (self.shard_index, self.shard_count) {
            (Some(index), Some(count)) => Shard::new(index, count).map(Some),
            // clap requires both or neither.
            _ => Ok(None),
        }
    }
}

impl PruneArgs {
    pub fn limit(&self) -> Option<usize> {
        self.prune.then_some(self.max_prune_per_pass)
    }
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub shard: ShardArgs,
    #[arg(long, env = "ECSYNC_OUTPUT", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub prune: PruneArgs,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Print what would change; make no mutating AWS call.
    #[arg(long, env = "ECSYNC_DRY_RUN")]
    pub dry_run: bool,
    /// auto: correct drift; report: detect and report it, make no mutating AWS call.
    #[arg(long, env = "ECSYNC_MODE", value_parser = mode_parser(), default_value = "auto")]
    pub mode: Mode,
    #[arg(long, env = "ECSYNC_OUTPUT", value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// After the pass, follow the rollouts it started until each completes,
    /// fails or is rolled back (exit 1 unless all completed).
    #[arg(long, conflicts_with = "dry_run")]
    pub wait: bool,
    /// How long `--wait` follows before it gives up.
    #[arg(long, requires = "wait", value_parser = humantime::parse_duration, default_value = "10m")]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub prune: PruneArgs,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// auto: correct drift; report: detect and report it, make no mutating AWS call.
    #[arg(long, env = "ECSYNC_MODE", value_parser = mode_parser(), default_value = "auto")]
    pub mode: Mode,
    /// Poll interval (jittered by ±10%).
    #[arg(long, env = "ECSYNC_INTERVAL", value_parser = humantime::parse_duration, default_value = "60s")]
    pub interval: Duration,
    /// Address for /metrics, /healthz, /readyz, /status and /hooks/git.
    #[arg(long, env = "ECSYNC_LISTEN", default_value = "127.0.0.1:9464")]
    pub listen: String,
    /// File holding the push-webhook secret; without it the webhook is disabled.
    #[arg(long, env = "ECSYNC_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Upper bound on one pass.
    #[arg(long, env = "ECSYNC_PASS_TIMEOUT", value_parser = humantime::parse_duration, default_value = "5m")]
    pub pass_timeout: Duration,
    /// POST each notification event as JSON to this URL (repeatable; comma-separated in the
    /// environment).
    #[arg(
        long,
        env = "ECSYNC_NOTIFY_WEBHOOK_URL",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub notify_webhook_url: Vec<String>,
    /// File holding a Slack incoming-webhook URL: events go there as messages.
    #[arg(long, env = "ECSYNC_NOTIFY_SLACK_URL_FILE", value_name = "FILE")]
    pub notify_slack_url_file: Option<PathBuf>,
    /// File holding the secret that signs webhook notifications (X-Ecsync-Signature-256).
    #[arg(long, env = "ECSYNC_NOTIFY_SECRET_FILE", value_name = "FILE")]
    pub notify_secret_file: Option<PathBuf>,
}

/// Leader election for two or more replicas (off unless a table is given).
#[derive(Args, Debug, Clone)]
pub struct LeaderArgs {
    /// DynamoDB table (partition key `lease`, string) holding the leader lease;
    /// enables leader election: only the leader acts.
    #[arg(long, env = "ECSYNC_LEADER_ELECTION_TABLE")]
    pub leader_election_table: Option<String>,
    /// How long a lease lasts without renewal; failover takes at most this long.
    #[arg(long, env = "ECSYNC_LEASE_DURATION", value_parser = humantime::parse_duration, default_value = "15s")]
    pub lease_duration: Duration,
    /// A leader that could not renew for this long stops acting (must be < lease duration).
    #[arg(long, env = "ECSYNC_LEASE_RENEW_DEADLINE", value_parser = humantime::parse_duration, default_value = "10s")]
    pub lease_renew_deadline: Duration,
    /// How often to renew, or to try to acquire (must be < renew deadline).
    #[arg(long, env = "ECSYNC_LEASE_RETRY_PERIOD", value_parser = humantime::parse_duration, default_value = "2s")]
    pub lease_retry_period: Duration,
    /// This replica's identity in the lease (default: host name, pid and a random suffix).
    #[arg(long, env = "ECSYNC_LEASE_HOLDER")]
    pub lease_holder: Option<String>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[arg(long, env = "ECSYNC_CLUSTER")]
    pub cluster: String,
    /// Import only this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Folder to write `<service>.yaml` files into; default: print to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
}
