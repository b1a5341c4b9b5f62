//! Digests: a rule with `digest_secs` sends one email per window listing every upload it
//! gathered, instead of one email per upload.
//!
//! A window opens with a rule's first upload and closes `digest_secs` later. The pipeline
//! ([`crate::pipeline::Pipeline::with_digests`]) lists uploads in the rule's window in the
//! local state file ([`store`]); the flusher started by [`start`] sleeps until the earliest
//! window closes, renders its email and sends it through the pipeline's sender (retries, rate
//! limit and dedupe included), then forgets the window. Windows are in the file, so they
//! survive a restart: a window that closed while the process was down goes out on start.
//!
//! How each step stays at most once, and what a crash at each point does:
//!
//! - **Gathering** claims the upload's own email key (as a single email would) for the window
//!   plus [`CLAIM_LEASE`](crate::pipeline::CLAIM_LEASE), then lists the upload; listing is
//!   idempotent per upload and rule.
//!   A crash between the two leaves a claim with nothing listed: the upload is late until the
//!   claim lapses and the platform redelivers it, never listed twice.
//! - **Sending** uses the digest's own `Message-ID`, derived from the rule and the window's
//!   opening time, under the same claim/complete contract as single emails. A crash after the
//!   send but before the window is forgotten re-sends the same digest on start, which a
//!   durable dedupe store turns into a duplicate that is not sent again; with the memory store
//!   it goes out twice, under the same `Message-ID`.
//! - **After sending**, each listed upload's key is marked done before the window is removed,
//!   so a redelivery of a listed upload is a duplicate. With the memory store that is
//!   forgotten on restart, as for single emails.
//!
//! A transient failure keeps the window and retries it with backoff (5 s doubling up to
//! 5 minutes). A permanent failure (the server rejects the digest, its template cannot
//! render, its rule is gone) is logged at ERROR; each upload is parked in the dead-letter
//! store when one is configured, so `herald dlq replay` can send them one by one, and the
//! window is dropped. `herald invoke` and Lambda keep no windows: digest rules send one email
//! per upload there.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest as hash;
use jiff::Timestamp;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{Config, Rule};
use crate::deadletter::Failure;
use crate::deliver::Email;
use crate::pipeline::{Pipeline, with_causes};
use crate::record::Outcome;
use crate::render::digest::{DigestContext, DigestSources, DigestTemplates};
use crate::store::{StoreError, now_millis};

pub mod store;

pub use store::{DigestStore, Window, WindowId};

/// The first wait before a digest that failed transiently is tried again; it doubles.
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// The longest wait between tries of one digest.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// The wait before reading the windows again after the state file failed.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// A running flusher, or none when no rule has `digest_secs`.
#[derive(Debug)]
pub struct Flusher {
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Flusher {
    /// Stops the flusher after the digest it may be sending; pending windows stay in the file.
    pub async fn stop(self) {
        let Some((stop, task)) = self.running else {
            return;
        };
        let _ = stop.send(());
        if let Err(err) = task.await {
            error!(error = %err, "digest flusher ended abnormally");
        }
    }
}

/// Attaches the digest store to `pipeline` and starts its flusher, when any rule has
/// `digest_secs`; otherwise hands the pipeline back as it was with an idle [`Flusher`].
/// Called by `herald dev`, `serve` and `worker` inside the async runtime.
pub fn start(pipeline: Pipeline) -> Result<(Pipeline, Flusher), StoreError> {
    if !pipeline.config().has_digests() {
        return Ok((pipeline, Flusher { running: None }));
    }
    let path = pipeline.config().digest.path.clone();
    let store = DigestStore::open(&path)?;
    let pipeline = pipeline.with_digests(store.clone());
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(pipeline.clone(), store, stopped));
    info!(path = %path.display(), "digest windows kept in the state file");
    let running = Some((stop, task));
    Ok((pipeline, Flusher { running }))
}

/// Says once, at start, that this runtime keeps no digest windows, when any rule asks for one.
pub fn warn_without_store(config: &Config, runtime: &'static str) {
    let rules: Vec<&str> = config
        .rules
        .iter()
        .filter(|rule| rule.digest.is_some())
        .map(|rule| rule.name.as_str())
        .collect();
    if !rules.is_empty() {
        let rules = rules.join(", ");
        warn!(runtime, rules = %rules,
            "digest_secs needs a long-running process; these rules send one email per upload here");
    }
}

/// A time stored in the state file (epoch milliseconds) as a timestamp.
pub fn timestamp(millis: u64) -> Timestamp {
    i64::try_from(millis)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The `Message-ID` of one window's digest: the same every time that window is sent.
pub fn message_id(window: &WindowId, domain: &str) -> String {
    let input = format!("digest\u{0}{}\u{0}{}", window.rule, window.opened_ms);
    let digest = hash::digest(&hash::SHA256, input.as_bytes());
    let mut id = String::from("herald.digest.");
    for byte in &digest.as_ref()[..16] {
        let _ = write!(id, "{byte:02x}");
    }
    format!("{id}@{domain}")
}

/// A failed digest's next try.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    at_ms: u64,
}

/// The flusher: sends every closed window, then sleeps until the next one closes, a window
/// opens, a retry is due or it is told to stop.
async fn run(pipeline: Pipeline, store: DigestStore, mut stop: oneshot::Receiver<()>) {
    let mut retries = HashMap::new();
    loop {
        let next = match flush_due(&pipeline, &store, &mut retries).await {
            Ok(next) => next,
            Err(err) => {
                error!(error = %err, "digest windows cannot be read; trying again soon");
                Some(now_millis().saturating_add(millis(STORE_RETRY)))
            }
        };
        let wait = async {
            match next {
                Some(at) => {
                    let ms = at.saturating_sub(now_millis());
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop => break,
            () = store.window_opened() => {}
            () = wait => {}
        }
    }
    info!("digest flusher stopped; pending windows stay in the state file");
}

/// Flushes every window that closed and is not waiting for a retry; returns when the next
/// one is due.
async fn flush_due(
    pipeline: &Pipeline,
    store: &DigestStore,
    retries: &mut HashMap<WindowId, Retry>,
) -> Result<Option<u64>, StoreError> {
    let now = now_millis();
    let mut next: Option<u64> = None;
    for (id, closes_ms) in store.windows().await? {
        let due = retries
            .get(&id)
            .map_or(closes_ms, |r| r.at_ms.max(closes_ms));
        if due > now {
            next = Some(next.map_or(due, |n| n.min(due)));
            continue;
        }
        match flush(pipeline, store, &id).await? {
            None => {
                retries.remove(&id);
            }
            Some(error) => {
                let retry = retry_after(retries.get(&id), now);
                warn!(rule = %id.rule, attempts = retry.attempts, error = %error,
                    "digest not sent yet; trying again later");
                next = Some(next.map_or(retry.at_ms, |n| n.min(retry.at_ms)));
                retries.insert(id, retry);
            }
        }
    }
    Ok(next)
}

/// The next try after one more failure: 5 s, doubling, at most 5 minutes.
fn retry_after(previous: Option<&Retry>, now: u64) -> Retry {
    let attempts = previous.map_or(1, |r| r.attempts.saturating_add(1));
    let factor = 2u64.saturating_pow(attempts.saturating_sub(1).min(16));
    let wait = millis(FIRST_RETRY)
        .saturating_mul(factor)
        .min(millis(MAX_RETRY));
    Retry {
        attempts,
        at_ms: now.saturating_add(wait),
    }
}

/// Sends one window's digest and forgets the window, or parks it when it failed for good.
/// Returns the error of a transient failure, which keeps the window for a retry.
async fn flush(
    pipeline: &Pipeline,
    store: &DigestStore,
    id: &WindowId,
) -> Result<Option<String>, StoreError> {
    let Some(window) = store.load(id).await? else {
        return Ok(None);
    };
    let Some(rule) = pipeline.config().rules.iter().find(|r| r.name == id.rule) else {
        let error = "the rule is no longer in the config";
        park(pipeline, &window, error).await;
        store.remove(id).await?;
        return Ok(None);
    };
    let email = match email(pipeline, rule, &window) {
        Ok(email) => email,
        Err(error) => {
            park(pipeline, &window, &error).await;
            store.remove(id).await?;
            return Ok(None);
        }
    };
    match pipeline.send_digest(&email).await {
        Outcome::Failed {
            error,
            transient: true,
            ..
        } => Ok(Some(error)),
        Outcome::Failed { error, .. } => {
            park(pipeline, &window, &error).await;
            store.remove(id).await?;
            Ok(None)
        }
        outcome => {
            sent(pipeline, rule, &window, &email, &outcome).await;
            store.remove(id).await?;
            Ok(None)
        }
    }
}

/// Marks every listed upload as notified, and says so.
async fn sent(pipeline: &Pipeline, rule: &Rule, window: &Window, email: &Email, how: &Outcome) {
    for file in &window.files {
        pipeline
            .mark_listed(&pipeline.upload_message_id(rule, file))
            .await;
    }
    let duplicate = matches!(how, Outcome::Duplicate { .. });
    info!(rule = %rule.name, files = window.files.len(), message_id = %email.message_id,
        duplicate, "digest sent");
}

/// Builds the digest email for a window; a template that fails is a permanent error.
fn email(pipeline: &Pipeline, rule: &Rule, window: &Window) -> Result<Email, String> {
    let templates = match &rule.digest {
        Some(digest) => Arc::clone(&digest.templates),
        // The rule lost its digest_secs across a restart: its pending window still goes out.
        None => Arc::new(
            DigestTemplates::compile(DigestSources::default()).map_err(|errors| {
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                errors.join("; ")
            })?,
        ),
    };
    let context = DigestContext {
        rule: &rule.name,
        time_zone: &rule.time_zone,
        opened: timestamp(window.id.opened_ms),
        closed: timestamp(window.closes_ms),
        files: &window.files,
    };
    let rendered = templates
        .render(&context)
        .map_err(|err| with_causes(&err))?;
    let default_from = &pipeline.config().sender.from;
    Ok(crate::pipeline::address(
        rule,
        default_from,
        rendered,
        |domain| message_id(&window.id, domain),
    ))
}

/// Logs a digest lost for good and parks each of its uploads, when a dead-letter store is set.
async fn park(pipeline: &Pipeline, window: &Window, error: &str) {
    let rule = window.id.rule.as_str();
    let mut parked = 0;
    if let Some(store) = pipeline.dead_letters() {
        for event in &window.files {
            let failure = Failure {
                rule,
                event,
                error,
                transient: false,
            };
            match store.park(failure).await {
                Ok(_) => parked += 1,
                Err(err) => error!(rule, error = %err, "failed upload not parked"),
            }
        }
    }
    error!(rule, files = window.files.len(), parked, error = %error,
        "digest failed for good and is dropped; parked uploads replay one by one");
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
