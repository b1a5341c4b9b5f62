//! The pipeline every runtime shares: parse, skip, route, render, deliver, record.
//!
//! Runtimes hand it raw payloads ([`Pipeline::handle_payload`]) or events they built
//! themselves ([`Pipeline::handle_event`], used by the embedded S3 endpoint) and act on the
//! [`Report`] it returns.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use tracing::{Instrument, debug, error, info, warn};

use crate::config::file::UnmatchedFile;
use crate::config::{Config, Rule};
use crate::deadletter::{DeadLetters, Failure};
use crate::dedupe::{Claim, DedupeStore};
use crate::deliver::chat::{self, ChatSender, ChatWebhook, WebhookSender};
use crate::deliver::http::HttpSettings;
use crate::deliver::{DeliveryError, Email, Receipt, Sender};
use crate::digest::DigestStore;
use crate::digest::store::Added;
use crate::event::ObjectCreated;
use crate::links::LinkSigner;
use crate::record::{Entry, Miss, ObjectRef, Outcome, Report, SkipReason};
use crate::render::{Context, Link};
use crate::route::{self, Mismatch, Route, route};
use crate::sources::{self, Payload, Record, SourceError};
use crate::trace::{
    self, Closest, FailedCondition, RuleMiss, Step, TraceLine, TraceLog, TracedEmail,
};

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

/// Appended to an email's `Message-ID` to name the same rule's chat post for one upload, so
/// the two channels are deduplicated, and retried, on their own.
pub const CHAT_KEY_SUFFIX: &str = ":chat";

/// A configured pipeline; cheap to share between tasks.
#[derive(Clone)]
pub struct Pipeline {
    config: Arc<Config>,
    delivery: Delivery,
    dedupe: Option<Arc<dyn DedupeStore>>,
    dead_letters: Option<DeadLetters>,
    links: Option<Arc<dyn LinkSigner>>,
    chat: Option<Arc<dyn ChatSender>>,
    trace: Option<TraceLog>,
    digests: Option<DigestStore>,
}

impl Pipeline {
    /// A pipeline over a checked config, sending every email it renders.
    ///
    /// When a rule has a chat webhook, the HTTPS client that posts to it is built here, once.
    pub fn new(config: Arc<Config>, delivery: Delivery) -> Self {
        let chat = chat_client(&config);
        Pipeline {
            config,
            delivery,
            dedupe: None,
            dead_letters: None,
            links: None,
            chat,
            trace: None,
            digests: None,
        }
    }

    /// Posts chat messages through `chat` instead of the built-in webhook client.
    pub fn with_chat(mut self, chat: Arc<dyn ChatSender>) -> Self {
        self.chat = Some(chat);
        self
    }

    /// Sends each email only once per upload and rule, as remembered by `store`.
    pub fn with_dedupe(mut self, store: Arc<dyn DedupeStore>) -> Self {
        self.dedupe = Some(store);
        self
    }

    /// Parks each rule's notification that failed for good (a permanent delivery error on any
    /// of its channels, or a template that cannot render) in `store`, and names the entry in
    /// the failed outcomes (`parked`). Transient failures are not parked: whoever delivered the
    /// event retries them. What the runtime does with the failure does not change.
    pub fn with_dead_letters(mut self, store: DeadLetters) -> Self {
        self.dead_letters = Some(store);
        self
    }

    /// Signs download links for rules that ask for them. Without a signer such rules send
    /// their emails without a link.
    pub fn with_links(mut self, signer: impl Into<Option<Arc<dyn LinkSigner>>>) -> Self {
        self.links = signer.into();
        self
    }

    /// Gathers the uploads of rules with `digest_secs` into windows in `store` instead of
    /// sending them one by one; a flusher ([`crate::digest::start`]) sends each window's
    /// email. Without a store such rules send one email per upload. A dry run always renders
    /// the upload's own email.
    pub fn with_digests(mut self, store: DigestStore) -> Self {
        self.digests = Some(store);
        self
    }

    /// This pipeline without its dead-letter store and digest windows, for replaying a
    /// parked notification ([`crate::deadletter::replay`]): the replay records its own
    /// failure on the entry, and sends a digest rule's email on its own.
    pub fn for_replay(&self) -> Pipeline {
        Pipeline {
            dead_letters: None,
            digests: None,
            ..self.clone()
        }
    }

    /// The dead-letter store, when one is attached.
    pub fn dead_letters(&self) -> Option<&DeadLetters> {
        self.dead_letters.as_ref()
    }

    /// Writes what happens to each upload to `log`, for `herald events`, `herald trace` and
    /// the dashboard.
    pub fn with_trace(mut self, log: impl Into<Option<TraceLog>>) -> Self {
        self.trace = log.into();
        self
    }

    /// Waits until the trace lines of what was handled so far are written (see
    /// [`TraceLog::flush`]); for commands about to exit.
    pub fn flush_trace(&self) {
        if let Some(log) = &self.trace {
            log.flush();
        }
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
        let span = tracing::debug_span!("event", bucket = ?event.bucket, key = ?event.key);
        self.handle_event_inner(index, event).instrument(span).await
    }

    async fn handle_event_inner(&self, index: usize, event: &ObjectCreated) -> Vec<Entry> {
        let mut steps = Steps::new(self.trace.is_some());
        let entries = self.route_and_notify(index, event, &mut steps).await;
        if let Some(log) = &self.trace {
            log.record(TraceLine::new(event, steps.into_vec(), &entries));
        }
        entries
    }

    async fn route_and_notify(
        &self,
        index: usize,
        event: &ObjectCreated,
        steps: &mut Steps,
    ) -> Vec<Entry> {
        let object = ObjectRef::of(event);
        let at = |outcome| entry(index, Some(object.clone()), outcome);

        if let Some(reason) = self.skip_reason(event) {
            debug!(reason = ?reason, "upload skipped by policy");
            steps.push(|| trace::skipped(reason));
            return vec![at(Outcome::Skipped { reason })];
        }
        let rules = match route(&self.config.rules, event) {
            Route::Matched(rules) => rules,
            Route::Unmatched(misses) => {
                steps.push(|| unmatched_step(&self.config.rules, event, &misses));
                return vec![at(self.unmatched(event, misses))];
            }
        };
        steps.push(|| Step::Matched {
            rules: rules.iter().map(|rule| rule.name.clone()).collect(),
        });
        let mut entries = Vec::with_capacity(rules.len());
        for rule in rules {
            let outcomes = self.notify(rule, event, steps).await;
            entries.extend(outcomes.into_iter().map(at));
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
                info!(bucket = ?event.bucket, key = ?event.key, misses = %why,
                    "no rule matched; ignored");
                Outcome::Unmatched { misses }
            }
            UnmatchedFile::Fail => {
                error!(bucket = ?event.bucket, key = ?event.key, misses = %why, "no rule matched");
                let error = format!("no rule matched and unmatched = \"fail\" ({why})");
                failed(None, error, false)
            }
        }
    }

    /// Runs one rule's notification again for a parked upload (`herald dlq replay`), on every
    /// channel of the rule; channels already delivered come back as duplicates when a dedupe
    /// store is set. `None` when the config has no rule of that name any more.
    pub async fn replay(&self, rule: &str, event: &ObjectCreated) -> Option<Vec<Outcome>> {
        let rule = self.config.rules.iter().find(|r| r.name == rule)?;
        let mut steps = Steps::new(self.trace.is_some());
        let outcomes = self.notify(rule, event, &mut steps).await;
        if let Some(log) = &self.trace {
            let entries: Vec<Entry> = outcomes
                .iter()
                .map(|outcome| entry(0, Some(ObjectRef::of(event)), outcome.clone()))
                .collect();
            log.record(TraceLine::new(event, steps.into_vec(), &entries));
        }
        Some(outcomes)
    }

    /// Delivers one rule's notification and parks it when it failed for good; for a digest
    /// rule with a store attached, lists the upload in the rule's window instead.
    async fn notify(&self, rule: &Rule, event: &ObjectCreated, steps: &mut Steps) -> Vec<Outcome> {
        if let (Some(digest), Some(store), Delivery::Send(_)) =
            (&rule.digest, &self.digests, &self.delivery)
        {
            return vec![self.gather(rule, digest.window, store, event).await];
        }
        let mut outcomes = self.deliver(rule, event, steps).await;
        if let Some(store) = &self.dead_letters {
            park(store, rule, event, &mut outcomes).await;
        }
        outcomes
    }

    /// Renders one rule's notification and delivers it on each of the rule's channels (email,
    /// chat webhook), or keeps it, in a dry run: one outcome per channel.
    async fn deliver(&self, rule: &Rule, event: &ObjectCreated, steps: &mut Steps) -> Vec<Outcome> {
        let (email, link) = match self.render(rule, event).await {
            Ok(rendered) => rendered,
            Err(message) => {
                error!(rule = %rule.name, error = %message, "email cannot be rendered");
                return vec![failed(Some(&rule.name), message, false)];
            }
        };
        if rule.has_recipients() {
            steps.push(|| Step::Rendered {
                rule: rule.name.clone(),
                email: TracedEmail::from(&email),
            });
        }
        let chat = rule.chat.as_ref().map(|webhook| {
            let text = chat::text(&email.subject, event, link.as_ref());
            (webhook, text)
        });
        let mut outcomes = Vec::with_capacity(2);
        match &self.delivery {
            Delivery::DryRun => {
                if rule.has_recipients() {
                    let email = Box::new(email);
                    outcomes.push(Outcome::Rendered { email });
                }
                if let Some((_, text)) = chat {
                    let rule = rule.name.clone();
                    outcomes.push(Outcome::RenderedChat { rule, text });
                }
            }
            Delivery::Send(sender) => {
                if rule.has_recipients() {
                    let key = email.message_id.clone();
                    let send = send(sender.as_ref(), &email);
                    outcomes.push(self.once(&key, &rule.name, send).await);
                }
                if let Some((webhook, text)) = chat {
                    let key = format!("{}{CHAT_KEY_SUFFIX}", email.message_id);
                    let post = self.post(webhook, &text, &rule.name, &key);
                    outcomes.push(self.once(&key, &rule.name, post).await);
                }
            }
        }
        outcomes
    }

    /// Builds the email one rule sends for one upload.
    pub async fn email(&self, rule: &Rule, event: &ObjectCreated) -> Result<Email, String> {
        self.render(rule, event).await.map(|(email, _)| email)
    }

    /// The rule's email and the download link in it, if any.
    async fn render(
        &self,
        rule: &Rule,
        event: &ObjectCreated,
    ) -> Result<(Email, Option<Link>), String> {
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
        let default_from = &self.config.sender.from;
        let email = address(rule, default_from, rendered, |domain| {
            message_id(event, rule, domain)
        });
        Ok((email, link))
    }

    /// Runs one channel's delivery, at most once per upload when a dedupe store is set.
    async fn once(&self, key: &str, rule: &str, deliver: impl Future<Output = Outcome>) -> Outcome {
        match &self.dedupe {
            Some(store) => send_once(store.as_ref(), key, rule, deliver).await,
            None => deliver.await,
        }
    }

    /// Posts one chat message and turns the result into an outcome.
    async fn post(&self, webhook: &ChatWebhook, text: &str, rule: &str, key: &str) -> Outcome {
        let Some(chat) = &self.chat else {
            let error = "the chat webhook client could not be set up (see the start-up log)";
            return failed(Some(rule), error.to_owned(), false);
        };
        let result = chat.post(webhook, text).await;
        settle(result, rule, key, "chat message")
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

impl Pipeline {
    /// Lists one upload in its rule's digest window. The upload's own email key is claimed
    /// first, for as long as the window may take to go out, so an upload a sent digest
    /// already listed (its key is done) is not listed again, and another process gathering
    /// the same upload (its claim is busy) is left to do so. A busy claim on an upload this
    /// store already lists is a redelivery: gathered, once.
    async fn gather(
        &self,
        rule: &Rule,
        window: Duration,
        store: &DigestStore,
        event: &ObjectCreated,
    ) -> Outcome {
        let key = self.upload_message_id(rule, event);
        let claim = match &self.dedupe {
            Some(dedupe) => dedupe.claim(&key, window + CLAIM_LEASE).await,
            None => Ok(Claim::Acquired),
        };
        let listed = match claim {
            Ok(Claim::Acquired) => store.add(&rule.name, millis(window), event).await.map(Some),
            Ok(Claim::Busy) => store.listed(&rule.name, event).await.map(|closes| {
                closes.map(|closes_ms| Added {
                    closes_ms,
                    new: false,
                })
            }),
            Ok(Claim::Done) => {
                let (rule, message_id) = (rule.name.clone(), key);
                return Outcome::Duplicate { rule, message_id };
            }
            Err(err) => {
                warn!(error = %err, "dedupe store unavailable; upload not gathered");
                return failed(Some(&rule.name), err.to_string(), err.transient);
            }
        };
        self.gathered(rule, &key, listed).await
    }

    /// The outcome of listing an upload, giving its claim back when the window could not
    /// take it.
    async fn gathered(
        &self,
        rule: &Rule,
        key: &str,
        listed: Result<Option<Added>, crate::store::StoreError>,
    ) -> Outcome {
        match listed {
            Ok(Some(added)) => {
                debug!(rule = %rule.name, new = added.new, closes_ms = added.closes_ms,
                    "upload gathered into digest");
                let closes_at = crate::digest::timestamp(added.closes_ms);
                let rule = rule.name.clone();
                Outcome::Gathered { rule, closes_at }
            }
            Ok(None) => {
                warn!(rule = %rule.name, message_id = %key,
                    "upload claimed elsewhere; not gathered");
                let error = "another delivery of this upload holds its claim (gathering it \
                             now, or stopped: the claim lapses after the digest window and 10 \
                             minutes)";
                failed(Some(&rule.name), error.to_owned(), true)
            }
            Err(err) => {
                error!(rule = %rule.name, error = %err, "upload not gathered into digest");
                if let Some(dedupe) = &self.dedupe
                    && let Err(err) = dedupe.release(key).await
                {
                    warn!(error = %err, "dedupe claim not released");
                }
                failed(Some(&rule.name), with_causes(&err), false)
            }
        }
    }

    /// The `Message-ID` the rule's own email for this upload has: the upload's key in the
    /// dedupe store, also when a digest lists it.
    pub fn upload_message_id(&self, rule: &Rule, event: &ObjectCreated) -> String {
        let from = rule.from.as_ref().unwrap_or(&self.config.sender.from);
        message_id(event, rule, from.email.domain())
    }

    /// Sends a digest email through the pipeline's sender, once per `Message-ID` when a
    /// dedupe store is set; a dry run keeps it.
    pub async fn send_digest(&self, email: &Email) -> Outcome {
        match &self.delivery {
            Delivery::DryRun => Outcome::Rendered {
                email: Box::new(email.clone()),
            },
            Delivery::Send(sender) => {
                let send = send(sender.as_ref(), email);
                self.once(&email.message_id, &email.rule, send).await
            }
        }
    }

    /// Records the upload's own email key as done, once a sent digest listed it.
    pub async fn mark_listed(&self, key: &str) {
        let Some(dedupe) = &self.dedupe else { return };
        if let Err(err) = dedupe.complete(key).await {
            // The digest went out; a missing mark risks listing a redelivered upload again.
            warn!(store = dedupe.name(), message_id = %key, error = %err,
                "dedupe state not recorded");
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Parks the rule's notification once when any channel failed for good, and marks those
/// outcomes with the entry's id. A store that cannot take it is logged; the failure stands.
async fn park(store: &DeadLetters, rule: &Rule, event: &ObjectCreated, outcomes: &mut [Outcome]) {
    let errors: Vec<&str> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Outcome::Failed {
                error,
                transient: false,
                ..
            } => Some(error.as_str()),
            _ => None,
        })
        .collect();
    if errors.is_empty() {
        return;
    }
    let error = errors.join("; ");
    let failure = Failure {
        rule: &rule.name,
        event,
        error: &error,
        transient: false,
    };
    let id = match store.park(failure).await {
        Ok(id) => id,
        Err(err) => {
            error!(rule = %rule.name, error = %err, "failed notification not parked");
            return;
        }
    };
    info!(rule = %rule.name, id = %id, "failed notification parked for herald dlq");
    for outcome in outcomes {
        if let Outcome::Failed {
            transient: false,
            parked,
            ..
        } = outcome
        {
            *parked = Some(id.clone());
        }
    }
}

/// The webhook client, when any rule posts to a chat. A client that cannot be built is logged
/// once here and each post then fails permanently with a pointer to this log line.
fn chat_client(config: &Config) -> Option<Arc<dyn ChatSender>> {
    if !config.rules.iter().any(|rule| rule.chat.is_some()) {
        return None;
    }
    match WebhookSender::new(HttpSettings::default()) {
        Ok(sender) => Some(Arc::new(sender)),
        Err(err) => {
            error!(error = %err, "chat webhook client cannot be set up; chat posts will fail");
            None
        }
    }
}

/// The email `rule` sends with `rendered` as its content: the rule's recipients, its own
/// `From` or else `default_from`, and the `Message-ID` that `message_id` makes from the
/// `From` address's domain.
pub(crate) fn address(
    rule: &Rule,
    default_from: &lettre::message::Mailbox,
    rendered: crate::render::Rendered,
    message_id: impl FnOnce(&str) -> String,
) -> Email {
    let from = rule.from.clone().unwrap_or_else(|| default_from.clone());
    let message_id = message_id(from.email.domain());
    Email {
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

/// Claims the delivery before making it and records the result, so a redelivered upload,
/// even one arriving during the send, does not deliver it again. `key` names the delivery: the
/// email's `Message-ID`, or that with [`CHAT_KEY_SUFFIX`] for the chat post.
async fn send_once(
    store: &dyn DedupeStore,
    key: &str,
    rule: &str,
    deliver: impl Future<Output = Outcome>,
) -> Outcome {
    match store.claim(key, CLAIM_LEASE).await {
        Ok(Claim::Acquired) => {}
        Ok(Claim::Done) => {
            debug!(rule = %rule, message_id = %key, "duplicate delivery; already sent");
            let (rule, message_id) = (rule.to_owned(), key.to_owned());
            return Outcome::Duplicate { rule, message_id };
        }
        Ok(Claim::Busy) => {
            // Another process holds the claim: it is sending now, or it stopped mid-send and
            // its lease (CLAIM_LEASE) has to run out before a redelivery may send.
            let error = "another delivery of this upload holds its claim (sending now, or \
                         stopped mid-send: the claim lapses after 10 minutes)"
                .to_owned();
            warn!(rule = %rule, message_id = %key, "delivery claimed elsewhere; not sent now");
            return failed(Some(rule), error, true);
        }
        Err(err) => {
            warn!(store = store.name(), error = %err, "dedupe store unavailable; not sending");
            return failed(Some(rule), err.to_string(), err.transient);
        }
    }

    let outcome = deliver.await;
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
    let result = sender.send(email).await;
    settle(result, &email.rule, &email.message_id, "email")
}

/// What a delivery's result means for the report, logged at the level it deserves.
fn settle(result: Result<Receipt, DeliveryError>, rule: &str, key: &str, what: &str) -> Outcome {
    match result {
        Ok(receipt) => {
            debug!(rule = %rule, message_id = %key, channel = what, "delivered");
            let (rule, message_id) = (rule.to_owned(), key.to_owned());
            Outcome::Sent {
                rule,
                message_id,
                receipt,
            }
        }
        // A transient failure is retried by whoever delivered the event; only a permanent one
        // loses the notification and needs an operator.
        Err(err) if err.is_transient() => {
            warn!(rule = %rule, channel = what, error = %err,
                "notification not delivered yet; a retry may help");
            failed(Some(rule), err.to_string(), true)
        }
        Err(err) => {
            error!(rule = %rule, channel = what, error = %err,
                "notification rejected; retrying cannot help");
            failed(Some(rule), err.to_string(), false)
        }
    }
}

/// An error and its causes on one line, so the reason a template failed (a division by zero,
/// an undefined value) reaches the report and not only "failed to render".
pub(crate) fn with_causes(err: &dyn std::error::Error) -> String {
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
        parked: None,
    }
}

/// The trace steps of one handling, collected only when a trace log is set, so an untraced
/// pipeline builds none of them.
struct Steps {
    steps: Option<Vec<Step>>,
}

impl Steps {
    fn new(enabled: bool) -> Self {
        Steps {
            steps: enabled.then(Vec::new),
        }
    }

    fn push(&mut self, step: impl FnOnce() -> Step) {
        if let Some(steps) = &mut self.steps {
            steps.push(step());
        }
    }

    fn into_vec(self) -> Vec<Step> {
        self.steps.unwrap_or_default()
    }
}

/// Each rule's first failed condition, and the rule that came closest with all it failed.
fn unmatched_step(rules: &[Rule], event: &ObjectCreated, misses: &[(&Rule, Mismatch)]) -> Step {
    let misses = misses
        .iter()
        .map(|(rule, reason)| RuleMiss {
            rule: rule.name.clone(),
            reason: reason.to_string(),
        })
        .collect();
    let closest = route::closest(rules, event).map(|(rule, failed)| Closest {
        rule: rule.name.clone(),
        failed: failed.iter().map(FailedCondition::from).collect(),
    });
    Step::Unmatched { misses, closest }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{self, Origin};
    use crate::dedupe::MemoryStore;
    use crate::deliver::chat::MemoryChat;
    use crate::deliver::memory::{MemorySender, Refusing};
    use crate::record::{Outcome, Report};

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

    /// A pipeline over `rules` (TOML) with an outbox sender, in-memory dedupe, and memory
    /// stand-ins for email and chat.
    fn chat_pipeline(
        rules: &str,
        delivery: Option<Arc<MemorySender>>,
    ) -> (Pipeline, Arc<MemoryChat>) {
        let text = format!("[sender]\ntype = \"outbox\"\nfrom = \"h@example.com\"\n{rules}");
        let env = |name: &str| {
            (name == "SLACK_WEBHOOK_URL").then(|| "https://hooks.example.com/T/B/X".to_owned())
        };
        let config = config::validate::parse(&text, Origin::BuiltIn, &env)
            .unwrap_or_else(|e| panic!("{e}: {:?}", e.problems()));
        let delivery = match delivery {
            Some(sender) => Delivery::Send(sender),
            None => Delivery::DryRun,
        };
        let chat = Arc::new(MemoryChat::new());
        let store = Arc::new(MemoryStore::new(Duration::from_secs(60)));
        let pipeline = Pipeline::new(Arc::new(config), delivery)
            .with_dedupe(store)
            .with_chat(chat.clone());
        (pipeline, chat)
    }

    /// A pipeline over `rules` (TOML) sending through `sender`, parking in a state file in
    /// `dir`.
    fn parking_pipeline(
        rules: &str,
        sender: Arc<dyn Sender>,
        dir: &tempfile::TempDir,
    ) -> Result<(Pipeline, DeadLetters), Box<dyn std::error::Error>> {
        let text = format!("[sender]\ntype = \"outbox\"\nfrom = \"h@example.com\"\n{rules}");
        let config = config::validate::parse(&text, Origin::BuiltIn, &|_| None)?;
        let store = DeadLetters::open(&crate::deadletter::DeadLetterSettings {
            path: dir.path().join("state.redb"),
            max_entries: 10,
            max_age: Duration::from_secs(3600),
        })?;
        let pipeline = Pipeline::new(Arc::new(config), Delivery::Send(sender))
            .with_dead_letters(store.clone());
        Ok((pipeline, store))
    }

    const RULE: &str = "[[rule]]\nname = \"all\"\nto = [\"a@example.com\"]\n";

    fn parked(report: &Report) -> Vec<Option<String>> {
        let parked = report.entries.iter().filter_map(|e| match &e.outcome {
            Outcome::Failed { parked, .. } => Some(parked.clone()),
            _ => None,
        });
        parked.collect()
    }

    #[tokio::test]
    async fn a_permanent_failure_is_parked_and_named() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let refusing = Arc::new(Refusing { transient: false });
        let (pipeline, store) = parking_pipeline(RULE, refusing, &dir)?;
        let report = pipeline.handle_payload(PUT).await?;

        let entries = store.list().await?;
        assert_eq!(entries.len(), 1);
        assert_eq!(parked(&report), [Some(entries[0].id.clone())]);
        assert_eq!(entries[0].rule, "all");
        assert!(entries[0].error.contains("550"), "{entries:?}");
        Ok(())
    }

    #[tokio::test]
    async fn a_transient_failure_is_left_to_the_platform() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let refusing = Arc::new(Refusing { transient: true });
        let (pipeline, store) = parking_pipeline(RULE, refusing, &dir)?;
        let report = pipeline.handle_payload(PUT).await?;
        assert_eq!(parked(&report), [None]);
        assert!(store.list().await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_render_failure_is_parked_and_replays_once_fixed()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        // Divides by zero only for the fixture's 48213-byte object, so `herald check`'s trial
        // render passes and the real one fails.
        let broken = format!("{RULE}subject = \"{{{{ 1 // (object.size - 48213) }}}}\"\n");
        let sender = Arc::new(MemorySender::new());
        let (pipeline, store) = parking_pipeline(&broken, sender.clone(), &dir)?;
        let report = pipeline.handle_payload(PUT).await?;
        let entry = store.list().await?.pop().ok_or("parked entry")?;
        assert_eq!(parked(&report), [Some(entry.id.clone())]);

        let fixed = parking_pipeline(RULE, sender.clone(), &dir)?.0;
        let outcomes = fixed
            .replay(&entry.rule, &entry.event)
            .await
            .ok_or("rule")?;
        assert!(
            matches!(outcomes[..], [Outcome::Sent { .. }]),
            "{outcomes:?}"
        );
        assert_eq!(sender.sent().len(), 1);
        assert!(fixed.replay("gone", &entry.event).await.is_none());
        Ok(())
    }

    const BOTH: &str = "[[rule]]\nname = \"both\"\nto = [\"a@example.com\"]\n\
                        chat_webhook_env = \"SLACK_WEBHOOK_URL\"\n";

    #[tokio::test]
    async fn a_chat_only_rule_posts_and_sends_no_email() -> Result<(), SourceError> {
        let rule = "[[rule]]\nname = \"chat\"\nchat_webhook_env = \"SLACK_WEBHOOK_URL\"\n";
        let sender = Arc::new(MemorySender::new());
        let (pipeline, chat) = chat_pipeline(rule, Some(sender.clone()));

        let report = pipeline.handle_payload(PUT).await?;
        assert_eq!(report.counts().sent, 1, "{report:?}");
        assert!(sender.sent().is_empty());
        let posted = chat.posted();
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].0, "SLACK_WEBHOOK_URL");
        let mut lines = posted[0].1.lines();
        assert!(
            lines.next().is_some_and(|l| l.starts_with("New file in ")),
            "{posted:?}"
        );
        assert!(
            lines
                .next()
                .is_some_and(|l| l.ends_with(" B)") || l.ends_with("iB)"))
        );
        Ok(())
    }

    #[tokio::test]
    async fn each_channel_is_deduplicated_on_its_own_key() -> Result<(), SourceError> {
        let sender = Arc::new(MemorySender::new());
        let (pipeline, chat) = chat_pipeline(BOTH, Some(sender.clone()));

        let first = pipeline.handle_payload(PUT).await?;
        let keys: Vec<&str> = first
            .entries
            .iter()
            .filter_map(|e| match &e.outcome {
                Outcome::Sent { message_id, .. } => Some(message_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(keys.len(), 2, "{first:?}");
        assert_eq!(format!("{}{CHAT_KEY_SUFFIX}", keys[0]), keys[1]);

        let again = pipeline.handle_payload(PUT).await?.counts();
        assert_eq!((again.sent, again.duplicate), (0, 2));
        assert_eq!((sender.sent().len(), chat.posted().len()), (1, 1));
        Ok(())
    }

    #[tokio::test]
    async fn a_dry_run_renders_both_channels() -> Result<(), SourceError> {
        let (pipeline, chat) = chat_pipeline(BOTH, None);
        let report = pipeline.handle_payload(PUT).await?;
        let outcomes: Vec<&Outcome> = report.entries.iter().map(|e| &e.outcome).collect();
        assert!(matches!(
            outcomes[..],
            [Outcome::Rendered { .. }, Outcome::RenderedChat { .. }]
        ));
        assert!(chat.posted().is_empty());
        Ok(())
    }
}
