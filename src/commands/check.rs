//! `herald check`: validates a config and its templates.

use std::path::PathBuf;
use std::process::ExitCode;

use herald::config::{self, SenderKind};

use super::EXIT_CONFIG;

/// Arguments of `herald check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file to check; overrides --config.
    #[arg(value_name = "CONFIG")]
    file: Option<PathBuf>,
}

/// Prints a one-line verdict, or every problem with its place, and exits non-zero on problems.
pub fn run(flag: Option<PathBuf>, args: Args) -> anyhow::Result<ExitCode> {
    let origin = super::origin(args.file.or(flag));
    println!("config: {origin}");
    let config = match config::load(origin) {
        Ok(config) => config,
        Err(err) => {
            let file = err_file(&err);
            for problem in err.problems() {
                eprintln!("error: {file}: {problem}");
            }
            eprintln!("error: {err:#}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let sender = match &config.sender.kind {
        SenderKind::Outbox { dir } => format!("outbox in {}", dir.display()),
        SenderKind::Smtp(smtp) => format!("smtp {}:{} ({})", smtp.host, smtp.port, smtp.tls),
        SenderKind::Ses(_) | SenderKind::SendGrid(_) | SenderKind::Mailgun(_) => {
            herald::deliver::describe(&config.sender)
        }
    };
    println!("ok: {} rule(s); sender: {sender}", config.rules.len());
    print_digest_note(&config);
    Ok(ExitCode::SUCCESS)
}

/// Says where digest windows live and where digests do not happen, when any rule has them.
fn print_digest_note(config: &config::Config) {
    let rules: Vec<&str> = config
        .rules
        .iter()
        .filter(|rule| rule.digest.is_some())
        .map(|rule| rule.name.as_str())
        .collect();
    if rules.is_empty() {
        return;
    }
    println!(
        "note: digest rule(s) {}: herald dev, serve and worker keep their windows in {} (keep \
         it on a disk that outlives the process); herald invoke and Lambda keep none and send \
         one email per upload",
        rules.join(", "),
        config.digest.path.display()
    );
}

fn err_file(err: &config::ConfigError) -> String {
    match err {
        config::ConfigError::Invalid { origin, .. } => origin
            .path()
            .map_or_else(|| origin.to_string(), |p| p.display().to_string()),
        _ => String::new(),
    }
}
