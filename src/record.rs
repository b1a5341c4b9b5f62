//! Records what happened to each record of a payload: sent, ignored, skipped or failed.
//!
//! A [`Report`] is what runtimes act on (exit codes, partial batch failures) and what the CLI
//! prints. Every record has exactly one entry per rule and channel (email, chat) it reached,
//! or one entry saying why it reached none.

use serde::Serialize;
use serde_json::{Value, json};

use crate::deliver::{Email, Receipt};
use crate::event::ObjectCreated;
use crate::route::Mismatch;

/// Why an upload was skipped before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Key ends in `/`: a folder made by a console.
    FolderPlaceholder,
    /// Zero bytes.
    EmptyObject,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::FolderPlaceholder => "folder placeholder (key ends in /)",
            SkipReason::EmptyObject => "empty object (0 bytes)",
        })
    }
}

/// The fate of one record, or of one rule's email for a record.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The email was handed to the sender.
    Sent {
        /// The rule that produced it.
        rule: String,
        /// Its `Message-ID`.
        message_id: String,
        /// What the sender said.
        receipt: Receipt,
    },
    /// The same upload already produced this email; nothing was sent again.
    Duplicate {
        /// The rule that produced it.
        rule: String,
        /// Its `Message-ID`.
        message_id: String,
    },
    /// The upload was listed in its rule's digest window; the digest email goes out when the
    /// window closes.
    Gathered {
        /// The rule that gathers it.
        rule: String,
        /// When the window closes.
        closes_at: jiff::Timestamp,
    },
    /// Dry run: the email was rendered and not sent.
    Rendered {
        /// The email as it would be sent.
        email: Box<Email>,
    },
    /// Dry run: the chat message was rendered and not posted.
    RenderedChat {
        /// The rule that produced it.
        rule: String,
        /// The message text as it would be posted.
        text: String,
    },
    /// A provider control message such as `s3:TestEvent`.
    Test {
        /// The provider's name for it.
        kind: String,
    },
    /// A well-formed event Herald does not notify about, such as a delete.
    Ignored {
        /// The provider's event name.
        event_name: String,
    },
    /// Skipped by the `[skip]` policy.
    Skipped {
        /// Which part of the policy.
        reason: SkipReason,
    },
    /// Written to the event queue (`[queue]`); delivered from there, on its own.
    Queued {
        /// Its number in the queue.
        id: u64,
    },
    /// No rule matched and the config says to ignore such uploads.
    Unmatched {
        /// Each rule and the first of its conditions the upload failed.
        misses: Vec<Miss>,
    },
    /// Nothing was delivered for this record (or this rule).
    Failed {
        /// The rule, when the failure happened after routing.
        rule: Option<String>,
        /// What went wrong, for people.
        error: String,
        /// Whether a later retry may succeed.
        transient: bool,
        /// The dead-letter entry that keeps it for `herald dlq replay`, when it was parked.
        parked: Option<String>,
    },
}

/// Why one rule did not match an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// The rule's name.
    pub rule: String,
    /// The first of its conditions that failed.
    pub reason: Mismatch,
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule, self.reason)
    }
}

/// The object a record was about, as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    /// Bucket name.
    pub bucket: String,
    /// Decoded key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

impl ObjectRef {
    /// The upload's bucket, key and size.
    pub fn of(event: &ObjectCreated) -> Self {
        ObjectRef {
            bucket: event.bucket.clone(),
            key: event.key.clone(),
            size: event.size,
        }
    }
}

/// One line of a report.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Position of the record in its payload, from 0.
    pub record: usize,
    /// The object, when the record named one.
    pub object: Option<ObjectRef>,
    /// What happened.
    pub outcome: Outcome,
}

/// Everything that happened to one payload.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Entries in record order.
    pub entries: Vec<Entry>,
}

/// One upload and what the pipeline did with it, for runtimes that report per upload
/// (`herald dev`, `herald demo`).
#[derive(Debug)]
pub struct Handled {
    /// The upload.
    pub event: ObjectCreated,
    /// One entry per rule it reached, or one saying why it reached none.
    pub entries: Vec<Entry>,
}

/// Entry counts by outcome, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Emails and chat messages handed over for delivery.
    pub sent: usize,
    /// Emails not sent again because the upload was already notified.
    pub duplicate: usize,
    /// Uploads listed in a digest window, to be sent with it.
    pub gathered: usize,
    /// Emails and chat messages rendered in a dry run.
    pub rendered: usize,
    /// Control messages.
    pub test: usize,
    /// Events of other kinds.
    pub ignored: usize,
    /// Skipped by policy.
    pub skipped: usize,
    /// Matched no rule.
    pub unmatched: usize,
    /// Written to the event queue, to be delivered from there.
    pub queued: usize,
    /// Failed.
    pub failed: usize,
}

impl Report {
    /// Counts entries by outcome.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for entry in &self.entries {
            let slot = match entry.outcome {
                Outcome::Sent { .. } => &mut counts.sent,
                Outcome::Duplicate { .. } => &mut counts.duplicate,
                Outcome::Gathered { .. } => &mut counts.gathered,
                Outcome::Rendered { .. } | Outcome::RenderedChat { .. } => &mut counts.rendered,
                Outcome::Test { .. } => &mut counts.test,
                Outcome::Ignored { .. } => &mut counts.ignored,
                Outcome::Skipped { .. } => &mut counts.skipped,
                Outcome::Unmatched { .. } => &mut counts.unmatched,
                Outcome::Queued { .. } => &mut counts.queued,
                Outcome::Failed { .. } => &mut counts.failed,
            };
            *slot += 1;
        }
        counts
    }

    /// True when no entry failed.
    pub fn all_ok(&self) -> bool {
        self.counts().failed == 0
    }

    /// The report as JSON, for `herald invoke --json` and machine readers.
    pub fn to_json(&self) -> Value {
        let entries: Vec<Value> = self.entries.iter().map(Entry::to_json).collect();
        json!({ "entries": entries, "counts": self.counts() })
    }
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut value = outcome_json(&self.outcome);
        value["record"] = json!(self.record);
        if let Some(object) = &self.object {
            value["object"] = json!(object);
        }
        value
    }
}

fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Sent {
            rule,
            message_id,
            receipt,
        } => json!({
            "outcome": "sent", "rule": rule, "message_id": message_id,
            "sender": receipt.sender, "detail": receipt.detail,
        }),
        Outcome::Duplicate { rule, message_id } => {
            json!({ "outcome": "duplicate", "rule": rule, "message_id": message_id })
        }
        Outcome::Gathered { rule, closes_at } => {
            json!({ "outcome": "gathered", "rule": rule, "closes_at": closes_at.to_string() })
        }
        Outcome::Rendered { email } => json!({ "outcome": "rendered", "email": email_json(email) }),
        Outcome::RenderedChat { rule, text } => {
            json!({ "outcome": "rendered", "chat": { "rule": rule, "text": text } })
        }
        Outcome::Test { kind } => json!({ "outcome": "test", "kind": kind }),
        Outcome::Ignored { event_name } => {
            json!({ "outcome": "ignored", "event_name": event_name })
        }
        Outcome::Skipped { reason } => json!({ "outcome": "skipped", "reason": reason }),
        Outcome::Queued { id } => json!({ "outcome": "queued", "queued": id }),
        Outcome::Unmatched { misses } => {
            let misses: Vec<Value> = misses
                .iter()
                .map(|m| json!({ "rule": m.rule, "reason": m.reason.to_string() }))
                .collect();
            json!({ "outcome": "unmatched", "misses": misses })
        }
        Outcome::Failed {
            rule,
            error,
            transient,
            parked,
        } => json!({
            "outcome": "failed", "rule": rule, "error": error, "transient": transient,
            "parked": parked,
        }),
    }
}

/// An email as plain strings; addresses in their header form.
pub fn email_json(email: &Email) -> Value {
    let list = |boxes: &[lettre::message::Mailbox]| -> Vec<String> {
        boxes.iter().map(ToString::to_string).collect()
    };
    json!({
        "rule": email.rule,
        "message_id": email.message_id,
        "from": email.from.to_string(),
        "to": list(&email.to),
        "cc": list(&email.cc),
        "bcc": list(&email.bcc),
        "reply_to": email.reply_to.as_ref().map(ToString::to_string),
        "subject": email.subject,
        "text": email.text,
        "html": email.html,
    })
}
