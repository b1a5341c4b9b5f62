//! One module per subcommand. Each loads what it needs, runs the library and reports to the
//! person at the terminal; the work itself lives in the library.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use herald::config::{self, Config, Origin};
use herald::record::Outcome;

pub mod check;
pub mod demo;
pub mod dev;
pub mod invoke;
pub mod worker;

/// Something failed at run time.
pub const EXIT_FAILURE: u8 = 1;
/// The configuration is unusable.
pub const EXIT_CONFIG: u8 = 2;

/// Finds the config (flag, environment, default path), falling back to the built-in example.
pub fn origin(flag: Option<PathBuf>) -> Origin {
    let env = std::env::var(config::CONFIG_ENV).ok();
    config::locate(flag.as_deref(), env.as_deref()).unwrap_or(Origin::BuiltIn)
}

/// Loads and checks the config, printing every problem when there are any.
pub fn load(origin: Origin) -> anyhow::Result<Arc<Config>> {
    eprintln!("config: {origin}");
    match config::load(origin) {
        Ok(config) => Ok(Arc::new(config)),
        Err(err) => {
            for problem in err.problems() {
                eprintln!("  {problem}");
            }
            Err(err).context("fix the config and try again (herald check lists every problem)")
        }
    }
}

/// A multi-threaded runtime for the async commands.
pub fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// One line for people saying what happened to a record.
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Sent { rule, receipt, .. } => {
            format!(
                "sent by rule {rule:?} via {}: {}",
                receipt.sender, receipt.detail
            )
        }
        Outcome::Duplicate { rule, .. } => format!("duplicate: rule {rule:?} already sent it"),
        Outcome::Rendered { email } => format!("rendered by rule {:?}", email.rule),
        Outcome::Test { kind } => format!("test event {kind} acknowledged"),
        Outcome::Ignored { event_name } => format!("ignored: {event_name} is not an upload"),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
        Outcome::Unmatched => "unmatched: no rule matched".into(),
        Outcome::Failed { error, .. } => format!("failed: {error}"),
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM (what container runtimes send).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
