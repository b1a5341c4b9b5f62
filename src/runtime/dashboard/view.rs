//! Traces and dead letters turned into what the templates show: plain strings and numbers, so
//! the templates stay free of logic and every value in them is escaped text.

use jiff::Timestamp;
use serde::Serialize;

use crate::deadletter::DeadLetter;
use crate::event::ObjectCreated;
use crate::render::format::visible;
use crate::trace::{self, DeliveryStep, EventTrace, Step, TracedEmail};

/// One row of the uploads list.
#[derive(Debug, Serialize)]
pub(super) struct Row {
    pub id: String,
    pub status: &'static str,
    pub at: String,
    pub bucket: String,
    pub key: String,
    pub size: u64,
}

impl From<&EventTrace> for Row {
    fn from(trace: &EventTrace) -> Self {
        Row {
            id: trace.id.clone(),
            status: trace.status.name(),
            at: time(trace.last_at),
            bucket: visible(&trace.event.bucket),
            key: visible(&trace.event.key),
            size: trace.event.size,
        }
    }
}

/// A time as people read it, in UTC.
pub(super) fn time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An upload's fields as label and value, in the order people look for them.
pub(super) fn fields(event: &ObjectCreated) -> Vec<(&'static str, String)> {
    let optional = |value: &Option<String>| value.as_deref().map(visible);
    let mut fields = vec![
        ("provider", event.provider.to_string()),
        ("event", visible(&event.event_name)),
        ("bucket", visible(&event.bucket)),
        ("key", visible(&event.key)),
        ("size", format!("{} bytes", event.size)),
    ];
    let rest = [
        ("content type", optional(&event.content_type)),
        ("ETag", optional(&event.etag)),
        ("version", optional(&event.version_id)),
        ("sequencer", optional(&event.sequencer)),
        ("event time", event.event_time.map(time)),
        ("uploader", optional(&event.uploader)),
        ("source IP", optional(&event.source_ip)),
        ("region", optional(&event.region)),
    ];
    fields.extend(rest.into_iter().filter_map(|(k, v)| Some((k, v?))));
    fields
}

/// One handling of the upload in the timeline.
#[derive(Debug, Serialize)]
pub(super) struct Handling {
    pub at: String,
    pub status: &'static str,
    pub steps: Vec<StepView>,
}

/// One step, as a kind (for its CSS class), a title, a line of text and optional details.
#[derive(Debug, Default, Serialize)]
pub(super) struct StepView {
    pub kind: &'static str,
    pub title: String,
    pub text: String,
    pub details: Vec<String>,
    /// The email's number, for a link to `/events/{id}/emails/{n}`.
    pub email: Option<usize>,
    /// The dead-letter entry, for a link to the list.
    pub parked: Option<String>,
}

/// Every handling of the upload, numbering the rendered emails in order from 1.
pub(super) fn timeline(trace: &EventTrace) -> Vec<Handling> {
    let mut emails = 0;
    trace
        .lines
        .iter()
        .map(|line| Handling {
            at: time(line.at),
            status: line.status.name(),
            steps: line
                .steps
                .iter()
                .map(|step| step_view(step, &mut emails))
                .collect(),
        })
        .collect()
}

/// The `n`th email (from 1) rendered for the upload, with its rule.
pub(super) fn nth_email(trace: &EventTrace, n: usize) -> Option<(&str, &TracedEmail)> {
    let mut emails =
        trace
            .lines
            .iter()
            .flat_map(|line| &line.steps)
            .filter_map(|step| match step {
                Step::Rendered { rule, email } => Some((rule.as_str(), email)),
                _ => None,
            });
    emails.nth(n.checked_sub(1)?)
}

fn step_view(step: &Step, emails: &mut usize) -> StepView {
    match step {
        Step::Skipped { reason } => StepView {
            kind: "skipped",
            title: "skipped".into(),
            text: reason.clone(),
            ..StepView::default()
        },
        Step::Matched { rules } => StepView {
            kind: "matched",
            title: "matched".into(),
            text: format!("rules: {}", rules.join(", ")),
            ..StepView::default()
        },
        Step::Unmatched { misses, closest } => unmatched(misses, closest.as_ref()),
        Step::Rendered { rule, email } => {
            *emails += 1;
            StepView {
                kind: "rendered",
                title: format!("email rendered by rule {rule:?}"),
                text: email.subject.clone(),
                email: Some(*emails),
                ..StepView::default()
            }
        }
        Step::Delivery { rule, outcome } => delivery(rule.as_deref(), outcome),
    }
}

fn unmatched(misses: &[trace::RuleMiss], closest: Option<&trace::Closest>) -> StepView {
    let mut details: Vec<String> = misses
        .iter()
        .map(|miss| format!("rule {:?}: {}", miss.rule, miss.reason))
        .collect();
    let text = match closest {
        Some(closest) => {
            for failed in &closest.failed {
                let line = format!(
                    "closest rule {:?}: {}, wants {}",
                    closest.rule, failed.condition, failed.wanted
                );
                details.push(line);
            }
            format!("closest rule: {:?}", closest.rule)
        }
        None => "the config has no rules".to_owned(),
    };
    StepView {
        kind: "unmatched",
        title: "no rule matched".into(),
        text,
        details,
        ..StepView::default()
    }
}

fn delivery(rule: Option<&str>, outcome: &DeliveryStep) -> StepView {
    let rule = rule.map_or_else(String::new, |rule| format!(" (rule {rule:?})"));
    let (kind, title, text, parked) = match outcome {
        DeliveryStep::Sent {
            message_id,
            sender,
            detail,
        } => (
            "sent",
            "sent",
            format!("via {sender}: {detail}; Message-ID <{message_id}>"),
            None,
        ),
        DeliveryStep::Duplicate { message_id } => (
            "duplicate",
            "duplicate",
            format!("already sent: <{message_id}>"),
            None,
        ),
        DeliveryStep::Gathered { closes_at } => (
            "gathered",
            "gathered",
            format!("into the digest closing at {}", time(*closes_at)),
            None,
        ),
        DeliveryStep::Rendered => ("rendered", "rendered only", "dry run".to_owned(), None),
        DeliveryStep::Failed {
            error,
            transient,
            parked,
        } => {
            let retry = if *transient {
                "a retry may help"
            } else {
                "retrying cannot help"
            };
            (
                "failed",
                "failed",
                format!("{error} ({retry})"),
                parked.clone(),
            )
        }
    };
    StepView {
        kind,
        title: format!("{title}{rule}"),
        text,
        parked,
        ..StepView::default()
    }
}

/// The headers of an email as its recipients see them; Bcc is apart, since it is only in the
/// envelope.
pub(super) fn headers(email: &TracedEmail) -> Vec<(&'static str, String)> {
    let mut headers = vec![("From", email.from.clone())];
    if !email.to.is_empty() {
        headers.push(("To", email.to.join(", ")));
    }
    if !email.cc.is_empty() {
        headers.push(("Cc", email.cc.join(", ")));
    }
    if let Some(reply_to) = &email.reply_to {
        headers.push(("Reply-To", reply_to.clone()));
    }
    headers.push(("Subject", email.subject.clone()));
    headers.push(("Message-ID", format!("<{}>", email.message_id)));
    headers
}

/// One row of the dead-letter list.
#[derive(Debug, Serialize)]
pub(super) struct Parked {
    pub id: String,
    pub trace: String,
    pub rule: String,
    pub bucket: String,
    pub key: String,
    pub attempts: u32,
    pub last_failed: String,
    pub error: String,
}

impl From<&DeadLetter> for Parked {
    fn from(entry: &DeadLetter) -> Self {
        Parked {
            id: entry.id.clone(),
            trace: trace::event_id(&entry.event),
            rule: entry.rule.clone(),
            bucket: visible(&entry.event.bucket),
            key: visible(&entry.event.key),
            attempts: entry.attempts,
            last_failed: time(entry.last_failed),
            error: visible(&entry.error),
        }
    }
}
