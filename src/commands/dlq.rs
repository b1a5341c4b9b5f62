//! `herald dlq`: lists, replays and drops the notifications parked in the dead-letter store
//! (`[dead_letter]`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use herald::config::Config;
use herald::deadletter::{self, DeadLetter, DeadLetters, Replayed};
use herald::pipeline::{Delivery, Pipeline};
use herald::render::format::visible;
use herald::{dedupe, deliver};

use super::{EXIT_CONFIG, EXIT_FAILURE};

/// Arguments of `herald dlq`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print every parked notification, oldest first.
    List,
    /// Send parked notifications again with the configured sender and dedupe store; each one
    /// delivered is removed, each one that fails again stays with its attempts counted.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
    Replay {
        /// The entry's id, as `herald dlq list` prints it.
        id: Option<String>,
        /// Every parked notification.
        #[arg(long)]
        all: bool,
    },
    /// Remove a parked notification without sending it.
    Drop {
        /// The entry's id.
        id: String,
    },
}

/// Exits 0 when all went well, 1 when a replay failed or an id is unknown, 2 when the config
/// is unusable or has no `[dead_letter]` section.
pub fn run(flag: Option<PathBuf>, args: Args) -> anyhow::Result<ExitCode> {
    let config = match super::load(super::origin(flag)) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err:#}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let Some(settings) = &config.dead_letter else {
        eprintln!("error: the config has no [dead_letter] section, so nothing is ever parked");
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    super::block_on(async {
        let store = DeadLetters::open(settings)?;
        match args.action {
            Action::List => list(&store).await,
            Action::Replay { id, .. } => replay(Arc::clone(&config), &store, id).await,
            Action::Drop { id } => drop_entry(&store, &id).await,
        }
    })
}

async fn list(store: &DeadLetters) -> anyhow::Result<ExitCode> {
    let entries = store.list().await?;
    if entries.is_empty() {
        println!("no parked notifications");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10}  {:<20}  {:<16}  {:<40}  {:>8}  error",
        "id", "last failed", "rule", "object", "attempts"
    );
    for entry in &entries {
        println!("{}", row(entry));
    }
    Ok(ExitCode::SUCCESS)
}

/// One table row; long values are cut so the row stays readable.
fn row(entry: &DeadLetter) -> String {
    let object = format!("{}/{}", entry.event.bucket, visible(&entry.event.key));
    let time = entry.last_failed.strftime("%Y-%m-%d %H:%M:%SZ");
    format!(
        "{:<10}  {:<20}  {:<16}  {:<40}  {:>8}  {}",
        entry.id,
        time,
        cut(&entry.rule, 16),
        cut(&object, 40),
        entry.attempts,
        cut(&visible(&entry.error), 100)
    )
}

fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

async fn replay(
    config: Arc<Config>,
    store: &DeadLetters,
    id: Option<String>,
) -> anyhow::Result<ExitCode> {
    let entries = match id {
        Some(id) => match store.get(&id).await? {
            Some(entry) => vec![entry],
            None => return unknown(&id),
        },
        None => store.list().await?,
    };
    let pipeline = replay_pipeline(config).await?;
    let mut failed = 0;
    let progress = super::progress::bar(entries.len() as u64, "replaying");
    for entry in &entries {
        let (delivered, lines) = replay_one(&pipeline, store, entry).await?;
        // Printed around the bar, so a terminal shows each line once and the bar below them.
        progress.suspend(|| lines.iter().for_each(|line| println!("{line}")));
        progress.inc(1);
        failed += usize::from(!delivered);
    }
    progress.finish_and_clear();
    pipeline.flush_trace();
    println!(
        "summary: {} delivered, {failed} still failing",
        entries.len() - failed
    );
    Ok(match failed {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_FAILURE),
    })
}

/// The configured sender and dedupe store, and no dead letters: a replay that fails again
/// updates its own entry.
async fn replay_pipeline(config: Arc<Config>) -> anyhow::Result<Pipeline> {
    let sender = deliver::build(&config.sender).await?;
    let dedupe = match &config.dedupe {
        Some(_) => Some(dedupe::build(&config).await?),
        None => None,
    };
    let trace = super::trace_log(&config);
    let mut pipeline = Pipeline::new(config, Delivery::Send(sender)).with_trace(trace);
    if let Some(store) = dedupe {
        pipeline = pipeline.with_dedupe(store);
    }
    Ok(pipeline)
}

/// Replays one entry: whether every channel of its rule was delivered (now or before), and
/// the lines saying what happened.
async fn replay_one(
    pipeline: &Pipeline,
    store: &DeadLetters,
    entry: &DeadLetter,
) -> anyhow::Result<(bool, Vec<String>)> {
    match deadletter::replay(pipeline, store, entry).await? {
        Replayed::Delivered { outcomes } => {
            let lines = outcomes
                .iter()
                .map(|outcome| format!("{}: {}", entry.id, super::describe(outcome)))
                .collect();
            Ok((true, lines))
        }
        Replayed::FailedAgain { error } => Ok((
            false,
            vec![format!("{}: failed again, kept: {error}", entry.id)],
        )),
    }
}

async fn drop_entry(store: &DeadLetters, id: &str) -> anyhow::Result<ExitCode> {
    if !store.remove(id).await? {
        return unknown(id);
    }
    println!("dropped {id}");
    Ok(ExitCode::SUCCESS)
}

fn unknown(id: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: no parked notification {id} (herald dlq list shows them)");
    Ok(ExitCode::from(EXIT_FAILURE))
}
