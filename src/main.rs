mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, LogFormat, commands};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(
        cli.log_format,
        matches!(cli.command, Command::Run(_) | Command::Apply(_)),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ecsync: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Validate(args) => commands::validate(args),
            Command::Diff(args) => commands::diff(args).await,
            Command::Apply(args) => commands::apply(args).await,
            Command::Import(args) => commands::import(args).await,
            Command::Convert(args) => cli::convert::convert(args),
            Command::Render(args) => commands::render(args).await,
            Command::Run(args) => commands::run(*args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ecsync: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: LogFormat, verbose: bool) {
    use tracing_subscriber::EnvFilter;
    // One-shot read commands keep stderr quiet unless asked; the daemon and
    // `apply` log every mutating call.
    let default = if verbose { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("ECSYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only on a terminal: pod logs and files want plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}
