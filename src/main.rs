//! The `herald` command: parses arguments, sets up logging and hands over to a command.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod commands;

/// Herald tells the right people when a file lands in object storage.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
struct Cli {
    /// Config file. Without it: $HERALD_CONFIG, then $HERALD_CONFIG_TOML, then ./herald.toml.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start an embedded S3 endpoint, upload sample files through an S3 client and write their
    /// emails (the built-in example config unless --config names another).
    Demo(commands::demo::Args),
    /// Run a local S3-compatible endpoint; every upload to it goes through the pipeline.
    Dev(commands::dev::Args),
    /// Run the pipeline on one event payload from a file or standard input.
    Invoke(commands::invoke::Args),
    /// Long-poll an SQS queue of bucket events and deliver their emails (containers).
    Worker(commands::worker::Args),
    /// Receive pushed events over HTTP: CloudEvents, Pub/Sub push, Event Grid, MinIO, SNS.
    Serve(commands::serve::Args),
    /// Validate a config file and its templates, reporting every problem at once.
    Check(commands::check::Args),
    /// List, replay or drop notifications parked in the dead-letter store ([dead_letter]).
    Dlq(commands::dlq::Args),
    /// List recent uploads and what became of them, from the trace files ([trace]).
    Events(commands::trace::EventsArgs),
    /// Show everything that happened to one upload: parsing, rules, emails, attempts.
    Trace(commands::trace::TraceArgs),
    /// Estimate a month's cloud bill for Herald on a platform, line by line, free tiers applied.
    Cost(commands::cost::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(cli.config, args),
        Command::Dev(args) => commands::dev::run(cli.config, args),
        Command::Invoke(args) => commands::invoke::run(cli.config, args),
        Command::Worker(args) => commands::worker::run(cli.config, args),
        Command::Serve(args) => commands::serve::run(cli.config, args),
        Command::Check(args) => commands::check::run(cli.config, args),
        Command::Dlq(args) => commands::dlq::run(cli.config, args),
        Command::Cost(args) => commands::cost::run(args),
        Command::Events(args) => commands::trace::events(cli.config, args),
        Command::Trace(args) => commands::trace::trace(cli.config, args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(commands::EXIT_FAILURE)
        }
    }
}

/// Logs go to standard error, apart from what commands print for people on standard output.
/// `HERALD_LOG` (or `RUST_LOG`) picks the level: warnings and errors only by default, since
/// every command already prints what happened to each upload.
fn init_tracing() {
    let filter = std::env::var("HERALD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
