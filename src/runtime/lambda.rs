//! AWS Lambda: the function behind the `bootstrap` binary.
//!
//! Every way an S3 event reaches a function is one invocation payload: S3 directly (async
//! invoke), SNS, EventBridge, or an SQS batch whose bodies hold any of those. An SQS batch is
//! split and each message handled on its own; the reply names only the messages a retry can
//! help (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>), which
//! works when the trigger enables `ReportBatchItemFailures`. Other payloads fail the invocation
//! only for a transient failure, so Lambda's async retries run again; permanent failures are
//! logged and dropped, since retrying cannot fix them.
//!
//! Config, templates and the sender are set up once per container, at init; an invocation
//! only parses, routes, renders and sends.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt as _;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tracing::{Instrument as _, debug, error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::config::{self, Config, ConfigError, Origin};
use crate::dedupe;
use crate::deliver;
use crate::pipeline::Pipeline;
use crate::record::{Entry, Outcome, Report};
use crate::sources::sqs::{self, Message};
use crate::sources::{SourceError, json_kind};

/// The config file's name beside the bootstrap binary, in `LAMBDA_TASK_ROOT`.
pub const CONFIG_FILE: &str = "herald.toml";

/// Messages of one SQS batch handled at the same time; the SMTP pool bounds sends anyway.
const CONCURRENCY: usize = 8;

/// Why the function cannot start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// No config file was found where Lambda looks.
    #[error(
        "no config: set HERALD_CONFIG (a path) or HERALD_CONFIG_TOML (the TOML itself), or put \
         {CONFIG_FILE} beside the bootstrap binary"
    )]
    NoConfig,
    /// The config file is missing, unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The sender or dedupe store the config names cannot be built.
    #[error(transparent)]
    Setup(#[from] super::PipelineSetupError),
}

/// Why an invocation is reported to Lambda as failed.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// Some notifications were not delivered. Failing the invocation makes Lambda retry the
    /// event and then hand it to the function's failure destination, where it waits to be
    /// replayed; the dedupe store keeps the emails that did go out from going twice.
    #[error("{failed} notification(s) not delivered; the event is retried, then dead-lettered")]
    Undelivered {
        /// How many emails or records failed.
        failed: usize,
    },
    /// The SQS batch itself cannot be split into messages.
    #[error("the SQS batch cannot be read: {0}")]
    Batch(SourceError),
}

impl From<InvocationError> for Diagnostic {
    fn from(err: InvocationError) -> Self {
        let error_type = match err {
            InvocationError::Undelivered { .. } => "Herald.Undelivered",
            InvocationError::Batch(_) => "Herald.BadBatch",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: err.to_string(),
        }
    }
}

/// Finds the config: `HERALD_CONFIG` (a path), else `HERALD_CONFIG_TOML` (the TOML itself, as
/// deploy templates set it), else `herald.toml` in `task_root` (`LAMBDA_TASK_ROOT`, or the
/// bootstrap binary's folder when that is not set), if the file exists.
pub fn locate_config(env: &dyn Fn(&str) -> Option<String>, task_root: &Path) -> Option<Origin> {
    config::locate(None, env, &task_root.join(CONFIG_FILE))
}

/// Loads and checks the config Lambda's environment points at. Every problem is logged.
pub fn load_config() -> Result<Arc<Config>, InitError> {
    let env = |name: &str| std::env::var(name).ok();
    let task_root = std::env::var_os("LAMBDA_TASK_ROOT")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()?
                .parent()
                .map(Path::to_path_buf)
        })
        .unwrap_or_default();
    let origin = locate_config(&env, &task_root).ok_or(InitError::NoConfig)?;
    info!(config = %origin, "loading config");
    config::load(origin).map(Arc::new).map_err(|err| {
        for problem in err.problems() {
            error!(problem = %problem, "config problem");
        }
        InitError::Config(err)
    })
}

/// Loads the config and builds the sender, the dedupe store (DynamoDB when the config says
/// so, else memory, which only dedupes within one warm container), the link signer and the
/// pipeline, once per container. Must run inside the async runtime, which the SMTP pool needs.
pub async fn init() -> Result<Handler, InitError> {
    let config = load_config()?;
    let pipeline = super::configured_pipeline(Arc::clone(&config)).await?;
    info!(sender = %deliver::describe(&config.sender), rules = config.rules.len(),
        dedupe = %dedupe::describe(&config), "ready");
    crate::digest::warn_without_store(&config, "lambda");
    Ok(Handler::new(pipeline))
}

/// Polls the Lambda Runtime API and hands every invocation to `handler`, one span each.
pub async fn run(handler: Handler) -> Result<(), lambda_runtime::Error> {
    let handler = Arc::new(handler);
    let service = lambda_runtime::service_fn(move |event: LambdaEvent<Value>| {
        let handler = Arc::clone(&handler);
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        async move { handler.invoke(event.payload).await }.instrument(span)
    });
    lambda_runtime::Runtime::new(service).run().await
}

/// Handles invocation payloads with one shared pipeline.
#[derive(Clone)]
pub struct Handler {
    pipeline: Pipeline,
}

impl Handler {
    /// A handler running `pipeline` for every invocation.
    pub fn new(pipeline: Pipeline) -> Self {
        Handler { pipeline }
    }

    /// Handles one invocation payload and returns the function's reply: for an SQS batch
    /// `{"batchItemFailures": [...]}`, otherwise `{"counts": {...}}`.
    pub async fn invoke(&self, event: Value) -> Result<Value, InvocationError> {
        if sqs::is_batch(&event) {
            let messages = sqs::split(event).map_err(InvocationError::Batch)?;
            return Ok(self.batch(messages).await);
        }
        self.single(&event).await
    }

    /// Handles each message on its own and names the ones to redeliver.
    async fn batch(&self, messages: Vec<Message>) -> Value {
        debug!(messages = messages.len(), "sqs batch received");
        let retry: Vec<Option<String>> = futures::stream::iter(messages)
            .map(|message| self.message(message))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let failures: Vec<Value> = retry
            .into_iter()
            .flatten()
            .map(|id| json!({ "itemIdentifier": id }))
            .collect();
        debug!(retry = failures.len(), "sqs batch handled");
        json!({ "batchItemFailures": failures })
    }

    /// Handles one SQS message; returns its id when anything in it was not delivered.
    ///
    /// A permanent failure is named too: SQS then redelivers it until the queue's
    /// `maxReceiveCount` moves it to the dead-letter queue, where it waits for the cause to
    /// be fixed and a redrive. Acknowledging it would lose the notification.
    async fn message(&self, message: Message) -> Option<String> {
        let id = message.message_id;
        let span = tracing::debug_span!("message", message_id = %id);
        let handled = self.pipeline.handle_payload(message.body.as_bytes());
        match handled.instrument(span).await {
            Ok(report) => {
                log_permanent(&report, Some(&id));
                (failures(&report) > 0).then_some(id)
            }
            Err(err) => {
                unreadable_body(&id, message.body.as_bytes(), &err);
                None
            }
        }
    }

    /// Handles a payload that is one event (S3 direct, SNS, EventBridge).
    async fn single(&self, event: &Value) -> Result<Value, InvocationError> {
        // Lambda already parsed the payload; the pipeline takes bytes so every runtime shares
        // one entry point. Re-encoding a `Value` cannot fail, and at most 256 KB it is cheap.
        let payload = serde_json::to_vec(event).unwrap_or_default();
        let report = match self.pipeline.handle_payload(&payload).await {
            Ok(report) => report,
            Err(err) => {
                // Retrying cannot make an unknown payload known: drop it, loudly.
                let kind = json_kind(event);
                error!(kind, error = %err, "payload is not a storage event; dropped");
                return Ok(json!({ "unrecognized": err.to_string() }));
            }
        };
        log_permanent(&report, None);
        debug!(counts = ?report.counts(), "payload handled");
        match failures(&report) {
            0 => Ok(json!({ "counts": report.counts() })),
            failed => Err(InvocationError::Undelivered { failed }),
        }
    }
}

/// How many entries were not delivered, for whatever reason.
fn failures(report: &Report) -> usize {
    let failed = |entry: &&Entry| matches!(entry.outcome, Outcome::Failed { .. });
    report.entries.iter().filter(failed).count()
}

/// Logs every permanent failure: these notifications reach the dead-letter queue after their
/// retries and wait there until an operator fixes the cause and replays them.
fn log_permanent(report: &Report, message_id: Option<&str>) {
    for entry in &report.entries {
        let Outcome::Failed {
            rule,
            error,
            transient: false,
            ..
        } = &entry.outcome
        else {
            continue;
        };
        let (bucket, key) = match &entry.object {
            Some(object) => (Some(object.bucket.as_str()), Some(object.key.as_str())),
            None => (None, None),
        };
        error!(
            message_id,
            record = entry.record,
            // Debug formatting escapes control characters, so a key cannot forge log lines.
            bucket = ?bucket,
            key = ?key,
            rule = rule.as_deref(),
            error = %error,
            "notification failed permanently; bound for the dead-letter queue"
        );
    }
}

/// An SQS body that is no storage event is acknowledged: redelivering it cannot change it.
/// JSON of another shape is someone else's message on this queue; anything else may be a
/// mangled event, which is worth an operator's look.
fn unreadable_body(message_id: &str, body: &[u8], err: &SourceError) {
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        warn!(message_id, error = %err, "message is not a storage event; acknowledged");
    } else {
        error!(message_id, error = %err, "message body is not JSON; acknowledged");
    }
}

/// Sets up logging as Lambda expects: JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`, level from
/// `AWS_LAMBDA_LOG_LEVEL` (then `RUST_LOG`, then INFO), and no timestamps, which the platform
/// adds to every line itself.
pub fn init_tracing() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let filter = EnvFilter::new(log_filter(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time();
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// The filter directives for Lambda's log level names (`TRACE` ... `FATAL`). lettre stays at
/// INFO whatever the level, because its DEBUG output includes the SMTP conversation.
pub fn log_filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> String {
    let level = match lambda_level.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("INFO") => "info",
        Some("WARN") => "warn",
        Some("ERROR" | "FATAL") => "error",
        _ => {
            return rust_log
                .filter(|v| !v.is_empty())
                .unwrap_or("info")
                .to_owned();
        }
    };
    match level {
        "trace" | "debug" => format!("{level},lettre=info"),
        _ => level.to_owned(),
    }
}

#[cfg(test)]
mod tests;
