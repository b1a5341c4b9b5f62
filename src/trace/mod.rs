//! Event traces: what Herald did with each upload, kept so people can ask "why did (or didn't)
//! that upload send an email?" after the fact (`herald events`, `herald trace`, the dashboard).
//!
//! Every time the pipeline handles an upload it writes one [`TraceLine`]: the normalized event
//! (what the payload was parsed as), then the [`Step`]s in order: skipped, matched rules or
//! why none matched (with the rule that came closest), each rendered email, and each channel's
//! outcome (sent after how many attempts, duplicate, gathered into a digest, failed, parked).
//! Redeliveries and queued retries of the same upload write further lines under the same id,
//! which [`read`] merges into one [`EventTrace`].
//!
//! Lines go to JSON-lines files in a folder ([`log::TraceLog`]), bounded in size and age, so a
//! second process (`herald events` beside a running `herald dev`) can read them while they
//! are written.

use std::fmt;

use aws_lc_rs::digest;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::deliver::Email;
use crate::event::ObjectCreated;
use crate::record::{Entry, Outcome, SkipReason};
use crate::route::Near;

pub mod log;
pub mod read;

pub use log::{TraceLog, TraceSettings};
pub use read::EventTrace;

/// Most bytes of an email body kept in a trace; longer bodies are cut with a marker.
const MAX_BODY: usize = 32 * 1024;

/// The id of an upload's trace: ten hex digits of a hash over its dedupe key, so every
/// delivery of the same upload shares it.
pub fn event_id(event: &ObjectCreated) -> String {
    let hash = digest::digest(&digest::SHA256, event.dedupe_key().as_bytes());
    hash.as_ref()[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One handling of one upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceLine {
    /// The upload's trace id ([`event_id`]).
    pub id: String,
    /// When the handling finished.
    pub at: Timestamp,
    /// The upload as Herald understood it.
    pub event: ObjectCreated,
    /// What the handling came to.
    pub status: Status,
    /// What happened, in order.
    pub steps: Vec<Step>,
}

/// What one handling of an upload came to, worst first when several channels differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A notification failed for good (and was parked, when a dead-letter store is set).
    Failed,
    /// A notification failed in a way a retry may fix; the runtime retries it.
    Retrying,
    /// Every notification was delivered (or gathered into a digest).
    Sent,
    /// Every notification had been delivered before.
    Duplicate,
    /// No rule matched.
    Unmatched,
    /// Skipped by policy (a folder placeholder, an empty object).
    Skipped,
    /// Rendered only (`--dry-run`).
    Rendered,
}

impl Status {
    /// Every status, for command-line choices.
    pub const ALL: [Status; 7] = [
        Status::Failed,
        Status::Retrying,
        Status::Sent,
        Status::Duplicate,
        Status::Unmatched,
        Status::Skipped,
        Status::Rendered,
    ];

    /// The lowercase name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Status::Failed => "failed",
            Status::Retrying => "retrying",
            Status::Sent => "sent",
            Status::Duplicate => "duplicate",
            Status::Unmatched => "unmatched",
            Status::Skipped => "skipped",
            Status::Rendered => "rendered",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One thing that happened to an upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Skipped by policy before routing.
    Skipped {
        /// Why.
        reason: String,
    },
    /// These rules matched, in file order.
    Matched {
        /// Rule names.
        rules: Vec<String>,
    },
    /// No rule matched: each rule's first failed condition, and the closest rule with every
    /// condition it failed.
    Unmatched {
        /// Rule name and the first condition it failed.
        misses: Vec<RuleMiss>,
        /// The rule with the fewest failed conditions, when there are rules.
        closest: Option<Closest>,
    },
    /// A rule's email, as rendered.
    Rendered {
        /// The rule.
        rule: String,
        /// The email, bodies cut at 32 KiB.
        email: TracedEmail,
    },
    /// One channel's outcome for one rule.
    Delivery {
        /// The rule.
        rule: Option<String>,
        /// What happened.
        outcome: DeliveryStep,
    },
}

/// A rule that did not match, and the first condition it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMiss {
    /// Rule name.
    pub rule: String,
    /// The condition, for people (`prefix differs`).
    pub reason: String,
}

/// The rule that came closest to matching an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closest {
    /// Rule name.
    pub rule: String,
    /// Every condition it failed, each with what the rule wants.
    pub failed: Vec<FailedCondition>,
}

/// One failed condition of the closest rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCondition {
    /// Which condition (`bucket differs`, `smaller than min_size_bytes`).
    pub condition: String,
    /// What the rule wants (`a key starting with "reports/"`).
    pub wanted: String,
}

impl From<&Near> for FailedCondition {
    fn from(near: &Near) -> Self {
        FailedCondition {
            condition: near.reason.to_string(),
            wanted: near.wanted.clone(),
        }
    }
}

/// A rendered email as kept in a trace: what its recipients see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedEmail {
    /// `Message-ID`, without angle brackets.
    pub message_id: String,
    /// `From`.
    pub from: String,
    /// `To`.
    pub to: Vec<String>,
    /// `Cc`.
    pub cc: Vec<String>,
    /// Blind copies: in the envelope only.
    pub bcc: Vec<String>,
    /// `Reply-To`.
    pub reply_to: Option<String>,
    /// `Subject`.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body, when there is one.
    pub html: Option<String>,
}

impl From<&Email> for TracedEmail {
    fn from(email: &Email) -> Self {
        TracedEmail {
            message_id: email.message_id.clone(),
            from: email.from.to_string(),
            to: mailboxes(&email.to),
            cc: mailboxes(&email.cc),
            bcc: mailboxes(&email.bcc),
            reply_to: email.reply_to.as_ref().map(ToString::to_string),
            subject: email.subject.clone(),
            text: cut(&email.text),
            html: email.html.as_deref().map(cut),
        }
    }
}

fn mailboxes(boxes: &[lettre::message::Mailbox]) -> Vec<String> {
    boxes.iter().map(ToString::to_string).collect()
}

/// What one channel of one rule came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeliveryStep {
    /// Delivered; `detail` is the service's answer and, after retries, the earlier errors.
    Sent {
        /// The delivery's key (the email's `Message-ID`).
        message_id: String,
        /// Which sender.
        sender: String,
        /// Its answer.
        detail: String,
    },
    /// Delivered before; not sent again.
    Duplicate {
        /// The delivery's key.
        message_id: String,
    },
    /// Added to the rule's digest window.
    Gathered {
        /// When the window closes.
        closes_at: Timestamp,
    },
    /// Kept, not sent (`--dry-run`).
    Rendered,
    /// Not delivered.
    Failed {
        /// The error, with how many attempts were made.
        error: String,
        /// Whether a retry may help.
        transient: bool,
        /// The dead-letter entry it was parked as.
        parked: Option<String>,
    },
}

impl TraceLine {
    /// The line for one handling of `event` that produced `entries`, after `steps`.
    pub fn new(event: &ObjectCreated, mut steps: Vec<Step>, entries: &[Entry]) -> Self {
        for entry in entries {
            if let Some(step) = delivery_step(&entry.outcome) {
                steps.push(step);
            }
        }
        TraceLine {
            id: event_id(event),
            at: Timestamp::now(),
            event: event.clone(),
            status: status(entries),
            steps,
        }
    }
}

/// The step an outcome adds after routing, if any; skips and misses are steps of their own.
fn delivery_step(outcome: &Outcome) -> Option<Step> {
    let (rule, outcome) = match outcome {
        Outcome::Sent {
            rule,
            message_id,
            receipt,
        } => {
            let (message_id, detail) = (message_id.clone(), receipt.detail.clone());
            let sender = receipt.sender.to_owned();
            let sent = DeliveryStep::Sent {
                message_id,
                sender,
                detail,
            };
            (Some(rule.clone()), sent)
        }
        Outcome::Duplicate { rule, message_id } => {
            let message_id = message_id.clone();
            (Some(rule.clone()), DeliveryStep::Duplicate { message_id })
        }
        Outcome::Gathered { rule, closes_at } => {
            let closes_at = *closes_at;
            (Some(rule.clone()), DeliveryStep::Gathered { closes_at })
        }
        Outcome::Rendered { email } => (Some(email.rule.clone()), DeliveryStep::Rendered),
        Outcome::RenderedChat { rule, .. } => (Some(rule.clone()), DeliveryStep::Rendered),
        Outcome::Failed {
            rule,
            error,
            transient,
            parked,
        } => {
            let (error, transient, parked) = (error.clone(), *transient, parked.clone());
            let failed = DeliveryStep::Failed {
                error,
                transient,
                parked,
            };
            (rule.clone(), failed)
        }
        Outcome::Test { .. }
        | Outcome::Ignored { .. }
        | Outcome::Skipped { .. }
        | Outcome::Unmatched { .. }
        | Outcome::Queued { .. } => return None,
    };
    Some(Step::Delivery { rule, outcome })
}

/// The worst status among the entries of one upload.
fn status(entries: &[Entry]) -> Status {
    entries
        .iter()
        .map(|entry| match &entry.outcome {
            Outcome::Failed {
                transient: true, ..
            } => Status::Retrying,
            Outcome::Failed { .. } => Status::Failed,
            Outcome::Sent { .. } | Outcome::Gathered { .. } | Outcome::Queued { .. } => {
                Status::Sent
            }
            Outcome::Duplicate { .. } => Status::Duplicate,
            Outcome::Unmatched { .. } => Status::Unmatched,
            Outcome::Skipped { .. } | Outcome::Test { .. } | Outcome::Ignored { .. } => {
                Status::Skipped
            }
            Outcome::Rendered { .. } | Outcome::RenderedChat { .. } => Status::Rendered,
        })
        .min()
        .unwrap_or(Status::Skipped)
}

/// The step for an upload skipped by policy.
pub fn skipped(reason: SkipReason) -> Step {
    Step::Skipped {
        reason: reason.to_string(),
    }
}

/// Cuts `text` to [`MAX_BODY`] bytes on a character boundary, marking the cut.
fn cut(text: &str) -> String {
    if text.len() <= MAX_BODY {
        return text.to_owned();
    }
    let mut end = MAX_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[… cut: {} bytes in all]", &text[..end], text.len())
}

#[cfg(test)]
mod tests;
