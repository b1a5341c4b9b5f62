//! The pipeline every runtime shares: parse, skip, route, render, deliver, record.
//!
//! Runtimes hand it raw payloads ([`Pipeline::handle_payload`]) or events they built
//! themselves ([`Pipeline::handle_event`], used by the embedded S3 endpoint) and act on the
//! [`Report`] it returns.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use tracing::{Instrument, debug, error, info, warn};

use crate::config::file::UnmatchedFile;
use crate::config::{Config, Rule};
use crate::dedupe::{Claim, DedupeStore};
use crate::deliver::{Email, Sender};
use crate::event::ObjectCreated;
use crate::links::LinkSigner;
use crate::record::{Entry, Miss, ObjectRef, Outcome, Report, SkipReason};
use crate::render::{Context, Link};
use crate::route::{Mismatch, Route, route};
use crate::sources::{self, Payload, Record, SourceError};

/// What to do with rendered emails.
#[derive(Clone)]
pub enum Delivery {
    /// Hand them to this sender.
    Send(Arc<dyn Sender>),
    /// Keep them in the report (`--dry-run`).
    DryRun,
}

/// How long a claim on an email keeps other deliveries of the same upload away. Longer than
/// the slowest send (an SMTP send is capped at 8 × its 30 s command timeout), so a lease only
/// runs out when the process holding it died.
pub const CLAIM_LEASE: Duration = Duration::from_secs(600);

/// A configured pipeline; cheap to share between tasks.
#[derive(Clone)]
pub struct Pipeline {
    config: Arc<Config>,
    delivery: Delivery,
    dedupe: Option<Arc<dyn DedupeStore>>,
    links: Option<Arc<dyn LinkSigner>>,
}

impl Pipeline {
    /// A pipeline over a checked config, sending every email it renders.
    pub fn new(config: Arc<Config>, delivery: Delivery) -> Self {
        Pipeline {
            config,
            delivery,
            dedupe: None,
            links: None,
        }
    }

    /// Sends each email only once per upload and rule, as remembered by `store`.
    pub fn with_dedupe(mut self, store: Arc<dyn DedupeStore>) -> Self {
        self.dedupe = Some(store);
        self
    }

    /// Signs download links for rules that ask for them. Without a signer such rules send
    /// their emails without a link.
    pub fn with_links(mut self, signer: impl Into<Option<Arc<dyn LinkSigner>>>) -> Self {
        self.links = signer.into();
        self
    }

    /// The config this pipeline runs on.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Parses a provider payload and handles each record on its own.
    ///
    /// Fails only when the payload as a whole is not a known format; a bad record becomes a
    /// failed entry and the others still go through.
    pub async fn handle_payload(&self, payload: &[u8]) -> Result<Report, SourceError> {
        Ok(self.handle_parsed(sources::parse(payload)?).await)
    }

    /// Handles a payload a runtime already parsed (the HTTP receiver reads each route's
    /// format itself), each record on its own.
    pub async fn handle_parsed(&self, payload: Payload) -> Report {
        let mut report = Report::default();
        match payload {
            Payload::Test { kind } => {
                info!(kind = %kind, "provider test event acknowledged");
                report.entries.push(entry(0, None, Outcome::Test { kind }));
            }
            Payload::Records(records) => {
                for (index, record) in records.into_iter().enumerate() {
                    report
                        .entries
                        .extend(self.handle_record(index, record).await);
                }
            }
        }
        report
    }

    async fn handle_record(&self, index: usize, record: Result<Record, SourceError>) -> Vec<Entry> {
        match record {
            Ok(Record::Created(event)) => self.handle_event(index, &event).await,
            Ok(Record::Ignored { event_name }) => {
                debug!(record = index, event_name = %event_name, "event kind ignored");
                vec![entry(index, None, Outcome::Ignored { event_name })]
            }
            Err(err) => {
                error!(record = index, error = %err, "record cannot be read and is dropped");
                let outcome = failed(None, err.to_string(), false);
                vec![entry(index, None, outcome)]
            }
        }
    }

    /// Skips, routes, renders and delivers one upload; one entry per rule it reached.
    pub async fn handle_event(&self, index: usize, event: &ObjectCreated) -> Vec<Entry> {
        let span = tracing::debug_span!("event", bucket = %event.bucket, key = %event.key);
        self.handle_event_inner(index, event).instrument(span).await
    }

    async fn handle_event_inner(&self, index: usize, event: &ObjectCreated) -> Vec<Entry> {
        let object = ObjectRef {
            bucket: event.bucket.clone(),
            key: event.key.clone(),
            size: event.size,
        };
        let at = |outcome| entry(index, Some(object.clone()), outcome);

        if let Some(reason) = self.skip_reason(event) {
            debug!(reason = ?reason, "upload skipped by policy");
            return vec![at(Outcome::Skipped { reason })];
        }
        let rules = match route(&self.config.rules, event) {
            Route::Matched(rules) => rules,
            Route::Unmatched(misses) => return vec![at(self.unmatched(event, misses))],
        };
        let mut entries = Vec::with_capacity(rules.len());
        for rule in rules {
            entries.push(at(self.notify(rule, event).await));
        }
        entries
    }

    fn skip_reason(&self, event: &ObjectCreated) -> Option<SkipReason> {
        if self.config.skip_folder_placeholders && event.is_folder_placeholder() {
            return Some(SkipReason::FolderPlaceholder);
        }
        if self.config.skip_empty_objects && event.size == 0 {
            return Some(SkipReason::EmptyObject);
        }
        None
    }

    /// What an upload no rule matched becomes, with each rule's reason for missing it.
    fn unmatched(&self, event: &ObjectCreated, misses: Vec<(&Rule, Mismatch)>) -> Outcome {
        let misses: Vec<Miss> = misses
            .into_iter()
            .map(|(rule, reason)| Miss {
                rule: rule.name.clone(),
                reason,
            })
            .collect();
        let why = misses
            .iter()
            .map(Miss::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        match self.config.unmatched {
            UnmatchedFile::Ignore => {
                info!(bucket = %event.bucket, key = %event.key, misses = %why,
                    "no rule matched; ignored");
                Outcome::Unmatched { misses }
            }
            UnmatchedFile::Fail => {
                warn!(bucket = %event.bucket, key = %event.key, misses = %why, "no rule matched");
                let error = format!("no rule matched and unmatched = \"fail\" ({why})");
                failed(None, error, false)
            }
        }
    }

    /// Renders one rule's email and delivers it (or keeps it, in a dry run).
    async fn notify(&self, rule: &Rule, event: &ObjectCreated) -> Outcome {
        let email = match self.email(rule, event).await {
            Ok(email) => email,
            Err(message) => {
                error!(rule = %rule.name, error = %message, "email cannot be rendered");
                return failed(Some(&rule.name), message, false);
            }
        };
        let sender = match &self.delivery {
            Delivery::DryRun => {
                return Outcome::Rendered {
                    email: Box::new(email),
                };
            }
            Delivery::Send(sender) => sender,
        };
        match &self.dedupe {
            Some(store) => send_once(store.as_ref(), sender.as_ref(), &email).await,
            None => send(sender.as_ref(), &email).await,
        }
    }

    /// Builds the email one rule sends for one upload.
    pub async fn email(&self, rule: &Rule, event: &ObjectCreated) -> Result<Email, String> {
        let link = self.link(rule, event).await;
        let context = Context {
            event,
            rule: &rule.name,
            time_zone: &rule.time_zone,
            link: link.as_ref(),
        };
        let rendered = rule
            .templates
            .render(&context)
            .map_err(|e| with_causes(&e))?;
        let from = rule
            .from
            .clone()
            .unwrap_or_else(|| self.config.sender.from.clone());
        let message_id = message_id(event, rule, from.email.domain());
        Ok(Email {
            from,
            to: rule.to.clone(),
            cc: rule.cc.clone(),
            bcc: rule.bcc.clone(),
            reply_to: rule.reply_to.clone(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            message_id,
            rule: rule.name.clone(),
        })
    }
}

impl Pipeline {
    /// The rule's download link, if it wants one. A link that cannot be signed is left out
    /// rather than holding back the notification.
    async fn link(&self, rule: &Rule, event: &ObjectCreated) -> Option<Link> {
        let valid_for = rule.download_link?;
        let Some(signer) = &self.links else {
            debug!(rule = %rule.name, "no link signer configured; email sent without link");
            return None;
        };
        match signer.sign(event, valid_for).await {
            Ok(link) => Some(link),
            Err(err) => {
                warn!(rule = %rule.name, error = %err, "download link left out");
                None
            }
        }
    }
}

/// A `Message-ID` that is the same every time the same upload reaches the same rule, so
/// duplicates are recognizable downstream (mail servers, archives, tests).
fn message_id(event: &ObjectCreated, rule: &Rule, domain: &str) -> String {
    let input = format!("{}\u{0}{}", event.dedupe_key(), rule.name);
    let hash = digest::digest(&digest::SHA256, input.as_bytes());
    let mut id = String::from("herald.");
    for byte in &hash.as_ref()[..16] {
        let _ = write!(id, "{byte:02x}");
    }
    format!("{id}@{domain}")
}

/// Claims the email before sending and records the result, so a redelivered upload, even one
/// arriving during the send, does not send it again.
async fn send_once(store: &dyn DedupeStore, sender: &dyn Sender, email: &Email) -> Outcome {
    let key = email.message_id.as_str();
    match store.claim(key, CLAIM_LEASE).await {
        Ok(Claim::Acquired) => {}
        Ok(Claim::Done) => {
            debug!(rule = %email.rule, message_id = %key, "duplicate delivery; already sent");
            let (rule, message_id) = (email.rule.clone(), key.to_owned());
            return Outcome::Duplicate { rule, message_id };
        }
        Ok(Claim::Busy) => {
            let error = "another delivery of this upload is being sent right now".to_owned();
            return failed(Some(&email.rule), error, true);
        }
        Err(err) => {
            warn!(store = store.name(), error = %err, "dedupe store unavailable; not sending");
            return failed(Some(&email.rule), err.to_string(), err.transient);
        }
    }

    let outcome = send(sender, email).await;
    let recorded = match outcome {
        Outcome::Sent { .. } => store.complete(key).await,
        _ => store.release(key).await,
    };
    if let Err(err) = recorded {
        // The send itself is settled; a stale claim only delays a retry until its lease runs
        // out, and a missing "done" mark risks one duplicate, never a lost email.
        warn!(store = store.name(), message_id = %key, error = %err, "dedupe state not recorded");
    }
    outcome
}

/// Hands one email to the sender and turns the result into an outcome.
async fn send(sender: &dyn Sender, email: &Email) -> Outcome {
    match sender.send(email).await {
        Ok(receipt) => {
            debug!(rule = %email.rule, message_id = %email.message_id, "email delivered");
            let (rule, message_id) = (email.rule.clone(), email.message_id.clone());
            Outcome::Sent {
                rule,
                message_id,
                receipt,
            }
        }
        // A transient failure is retried by whoever delivered the event; only a permanent one
        // loses the notification and needs an operator.
        Err(err) if err.is_transient() => {
            warn!(rule = %email.rule, error = %err, "email not delivered yet; a retry may help");
            failed(Some(&email.rule), err.to_string(), true)
        }
        Err(err) => {
            error!(rule = %email.rule, error = %err, "email rejected; it will not be retried");
            failed(Some(&email.rule), err.to_string(), false)
        }
    }
}

/// An error and its causes on one line, so the reason a template failed (a division by zero,
/// an undefined value) reaches the report and not only "failed to render".
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text = format!("{text}: {err}");
        cause = err.source();
    }
    text
}

fn entry(record: usize, object: Option<ObjectRef>, outcome: Outcome) -> Entry {
    Entry {
        record,
        object,
        outcome,
    }
}

fn failed(rule: Option<&str>, error: String, transient: bool) -> Outcome {
    Outcome::Failed {
        rule: rule.map(str::to_owned),
        error,
        transient,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{self, Origin};
    use crate::dedupe::MemoryStore;
    use crate::deliver::memory::MemorySender;

    fn pipeline(sender: Arc<MemorySender>) -> Pipeline {
        let config = config::load(Origin::BuiltIn).unwrap_or_else(|e| panic!("{e}"));
        let store = Arc::new(MemoryStore::new(Duration::from_secs(60)));
        Pipeline::new(Arc::new(config), Delivery::Send(sender)).with_dedupe(store)
    }

    const PUT: &[u8] = include_bytes!("../tests/fixtures/s3/put.json");

    #[tokio::test]
    async fn redelivered_event_is_sent_once() -> Result<(), SourceError> {
        let sender = Arc::new(MemorySender::new());
        let pipeline = pipeline(sender.clone());
        for _ in 0..5 {
            pipeline.handle_payload(PUT).await?;
        }
        let counts = pipeline.handle_payload(PUT).await?.counts();
        assert_eq!((counts.sent, counts.duplicate), (0, 1));
        assert_eq!(sender.sent().len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn concurrent_deliveries_send_once() {
        let sender = Arc::new(MemorySender::new());
        let pipeline = pipeline(sender.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..5 {
            let pipeline = pipeline.clone();
            tasks.spawn(async move { pipeline.handle_payload(PUT).await });
        }
        let mut sent = 0;
        while let Some(report) = tasks.join_next().await {
            let report = report.expect("task ran").expect("payload parses");
            sent += report.counts().sent;
        }
        assert_eq!((sent, sender.sent().len()), (1, 1));
    }
}
