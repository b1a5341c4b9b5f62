//! One module per subcommand. Each loads what it needs, runs the library and reports to the
//! person at the terminal; the work itself lives in the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use herald::config::{self, Config, Origin};
use herald::links::{LinkSigner, S3LinkSigner};
use herald::pipeline::Pipeline;
use herald::record::Outcome;
use herald::runtime::dashboard::{self, Dashboard, DashboardState, RunningDashboard};
use herald::runtime::demo::s3_client;
use herald::runtime::dev::DevEndpoint;
use herald::trace::TraceLog;

pub mod check;
pub mod cost;
pub mod demo;
pub mod dev;
pub mod dlq;
pub mod invoke;
pub mod progress;
pub mod serve;
pub mod trace;
pub mod worker;

/// Something failed at run time.
pub const EXIT_FAILURE: u8 = 1;
/// The configuration is unusable.
pub const EXIT_CONFIG: u8 = 2;

/// Finds the config (flag, environment, default path), falling back to the built-in example.
pub fn origin(flag: Option<PathBuf>) -> Origin {
    let env = |name: &str| std::env::var(name).ok();
    let default = Path::new(config::DEFAULT_PATH);
    config::locate(flag.as_deref(), &env, default).unwrap_or(Origin::BuiltIn)
}

/// Loads and checks the config, printing every problem when there are any.
pub fn load(origin: Origin) -> anyhow::Result<Arc<Config>> {
    eprintln!("config: {origin}");
    match config::load(origin) {
        Ok(config) => Ok(Arc::new(config)),
        Err(err @ config::ConfigError::Read { .. }) => Err(err.into()),
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

/// How long a stopping command waits for blocking work it no longer needs (an SMTP send cut
/// off at shutdown, whose upload stays queued or unacknowledged) before exiting anyway.
const ABANDON_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs a long-running command's main future on a fresh runtime, and does not let blocking
/// calls still in flight at the end hold the process open.
pub fn block_on<T>(
    main: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let runtime = tokio_runtime()?;
    let result = runtime.block_on(main);
    runtime.shutdown_timeout(ABANDON_AFTER);
    result
}

/// The trace log the config asks for (`[trace]`, on by default). A folder that cannot be
/// written is reported once and the command runs without traces: they help diagnose
/// deliveries, they never hold one back.
pub fn trace_log(config: &Config) -> Option<TraceLog> {
    let settings = config.trace.clone()?;
    match TraceLog::start(settings) {
        Ok(log) => Some(log),
        Err(err) => {
            eprintln!(
                "warning: {:#}; running without traces",
                anyhow::Error::from(err)
            );
            None
        }
    }
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
        Outcome::Gathered { rule, closes_at } => {
            format!("gathered by rule {rule:?} into its digest, sent after {closes_at}")
        }
        Outcome::Rendered { email } => format!("rendered by rule {:?}", email.rule),
        Outcome::RenderedChat { rule, .. } => format!("chat message rendered by rule {rule:?}"),
        Outcome::Test { kind } => format!("test event {kind} acknowledged"),
        Outcome::Ignored { event_name } => format!("ignored: {event_name} is not an upload"),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
        Outcome::Queued { id } => format!("queued as {id}"),
        Outcome::Unmatched { misses } => {
            let why: Vec<String> = misses.iter().map(ToString::to_string).collect();
            format!("unmatched: no rule matched ({})", why.join("; "))
        }
        Outcome::Failed {
            error,
            parked: Some(id),
            ..
        } => format!("failed: {error} (parked as {id}: herald dlq replay {id})"),
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

/// Signs download links against the embedded endpoint with the dev credentials, so links in
/// `herald dev` and `herald demo` emails open the local copy of the object.
pub fn local_links(endpoint: &DevEndpoint) -> Arc<dyn LinkSigner> {
    Arc::new(S3LinkSigner::new(s3_client(&endpoint.endpoint_url())))
}

/// Binds the dashboard's listener: `--dashboard`, else `[dashboard] listen`, else the default.
/// When it is `optional` (`herald dev` did not ask for it) and neither says an address and
/// the default port is taken (another `herald dev`), the command runs without a dashboard,
/// with a warning: there it helps, it never holds the command back.
pub async fn bind_dashboard(
    flag: Option<SocketAddr>,
    config: &Config,
    optional: bool,
) -> anyhow::Result<Option<Dashboard>> {
    let addr = dashboard::listen_address(flag, &config.dashboard)?;
    match Dashboard::bind(addr).await {
        Ok(dashboard) => Ok(Some(dashboard)),
        Err(err) if optional && flag.is_none() && config.dashboard.listen.is_none() => {
            eprintln!(
                "warning: no dashboard: cannot listen on {addr} ({err}); \
                 --dashboard 127.0.0.1:0 picks a free port"
            );
            Ok(None)
        }
        Err(err) => Err(err).with_context(|| format!("cannot start the dashboard on {addr}")),
    }
}

/// Starts serving a bound dashboard over `pipeline` (its traces, dead letters and replays).
pub fn start_dashboard(
    dashboard: Option<Dashboard>,
    pipeline: &Pipeline,
) -> anyhow::Result<Option<RunningDashboard>> {
    let Some(dashboard) = dashboard else {
        return Ok(None);
    };
    let state = DashboardState::new(pipeline.clone())?;
    Ok(Some(dashboard.spawn(state)))
}
