//! Delivery: hands a rendered [`Email`] to a notification service.
//!
//! Every sender implements [`Sender`]; the pipeline only sees that trait. Errors say whether a
//! retry can help ([`DeliveryError::is_transient`]), so runtimes can retry, dead-letter or drop.
//! [`build`] wraps every sender in the same two layers: a send rate ([`rate_limit`]) and, around
//! it, retries of transient failures ([`retry`]), so each retry also waits for its turn.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;

use crate::config::{SenderKind, SenderSettings};

pub mod chat;
pub mod http;
pub mod mailgun;
pub mod memory;
pub mod message;
pub mod outbox;
pub mod rate_limit;
pub mod retry;
pub mod sendgrid;
pub mod ses;
pub mod smtp;

/// A message ready to send: every field is final, rendered text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The `From` mailbox.
    pub from: Mailbox,
    /// Primary recipients.
    pub to: Vec<Mailbox>,
    /// Copied recipients.
    pub cc: Vec<Mailbox>,
    /// Blind-copied recipients: in the envelope, never in a header.
    pub bcc: Vec<Mailbox>,
    /// Optional `Reply-To`.
    pub reply_to: Option<Mailbox>,
    /// Subject line: a single line with control characters already removed.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body; sent with the text as `multipart/alternative` when present.
    pub html: Option<String>,
    /// Globally unique `Message-ID` without angle brackets, derived from the event and rule so
    /// that a redelivered event renders the same id.
    pub message_id: String,
    /// Name of the rule that produced this email, sent as `X-Herald-Rule`.
    pub rule: String,
}

impl Email {
    /// Every envelope recipient: to, cc and bcc.
    pub fn recipients(&self) -> impl Iterator<Item = &Mailbox> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }
}

/// What a sender reports after a successful hand-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Which sender took the message (`smtp`, `outbox`, ...).
    pub sender: &'static str,
    /// Where it went: the server's reply or the file written.
    pub detail: String,
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Might succeed later: connection refused, timeouts, SMTP 4xx, HTTP 429 or 5xx.
    #[error("{sender} delivery failed, a retry may help: {reason}")]
    Transient {
        sender: &'static str,
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
        /// How long the service asked us to wait before trying again (HTTP `Retry-After` or
        /// a rate-limit reset), when it said.
        retry_after: Option<Duration>,
    },
    /// Will fail again as it is: SMTP 5xx, rejected recipients, bad credentials.
    #[error("{sender} rejected the message: {reason}")]
    Permanent {
        sender: &'static str,
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl DeliveryError {
    /// True when retrying the same message later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, DeliveryError::Transient { .. })
    }

    /// How long the service asked to be left alone before a retry, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Transient { retry_after, .. } => *retry_after,
            DeliveryError::Permanent { .. } => None,
        }
    }
}

/// The future returned by [`Sender::send`].
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Receipt, DeliveryError>> + Send + 'a>>;

/// A notification service that accepts [`Email`]s.
pub trait Sender: Send + Sync {
    /// Short name used in logs and receipts.
    fn name(&self) -> &'static str;

    /// Delivers one email to every recipient in it.
    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a>;
}

/// Why a sender could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The outbox folder is unusable.
    #[error(transparent)]
    Outbox(#[from] outbox::OutboxError),
    /// The SMTP transport could not be built.
    #[error(transparent)]
    Smtp(#[from] smtp::SmtpSetupError),
    /// The AWS SDK could not be set up for SES.
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsSetupError),
    /// The HTTPS client for SendGrid or Mailgun could not be built.
    #[error(transparent)]
    Http(#[from] http::HttpSetupError),
}

/// Builds the sender a config names, paced by its rate limit and retrying transient failures.
/// Called once at start-up, inside the async runtime (the SMTP pool needs one, and loading the
/// AWS config for SES is async); the sender is then shared.
pub async fn build(settings: &SenderSettings) -> Result<Arc<dyn Sender>, SetupError> {
    let mut sender = build_backend(settings).await?;
    if let Some(limit) = settings.rate_limit {
        sender = Arc::new(rate_limit::RateLimitedSender::new(sender, limit));
    }
    // Wrapped even with one attempt, so every failure says how many attempts were made.
    sender = Arc::new(retry::RetryingSender::new(sender, settings.retry));
    Ok(sender)
}

async fn build_backend(settings: &SenderSettings) -> Result<Arc<dyn Sender>, SetupError> {
    match &settings.kind {
        SenderKind::Outbox { dir } => Ok(Arc::new(outbox::OutboxSender::new(dir)?)),
        SenderKind::Smtp(smtp) => Ok(Arc::new(smtp::SmtpSender::new(smtp)?)),
        SenderKind::Ses(ses) => Ok(Arc::new(ses::SesSender::new(ses).await?)),
        SenderKind::SendGrid(sendgrid) => Ok(Arc::new(sendgrid::SendGridSender::new(sendgrid)?)),
        SenderKind::Mailgun(mailgun) => Ok(Arc::new(mailgun::MailgunSender::new(mailgun)?)),
    }
}

/// Where a sender delivers, in words, for start-up messages.
pub fn describe(settings: &SenderSettings) -> String {
    match &settings.kind {
        SenderKind::Outbox { dir } => {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            format!("outbox {} (.eml files)", dir.display())
        }
        SenderKind::Smtp(smtp) => format!("smtp {}:{}", smtp.host, smtp.port),
        SenderKind::Ses(ses) => match &ses.region {
            Some(region) => format!("ses in {region}"),
            None => "ses (region from the AWS environment)".into(),
        },
        SenderKind::SendGrid(sendgrid) => format!("sendgrid at {}", sendgrid.api_url),
        SenderKind::Mailgun(mailgun) => {
            format!("mailgun at {} for {}", mailgun.api_url, mailgun.domain)
        }
    }
}

/// The email as a person reads it: headers, then the text part, then the HTML part.
pub fn preview(email: &Email) -> String {
    let list = |boxes: &[Mailbox]| boxes.iter().map(Mailbox::to_string).collect::<Vec<_>>();
    let mut out = format!("From: {}\n", email.from);
    for (name, boxes) in [("To", &email.to), ("Cc", &email.cc), ("Bcc", &email.bcc)] {
        if !boxes.is_empty() {
            out += &format!("{name}: {}\n", list(boxes).join(", "));
        }
    }
    if let Some(reply_to) = &email.reply_to {
        out += &format!("Reply-To: {reply_to}\n");
    }
    out += &format!(
        "Subject: {}\nMessage-ID: <{}>\n\n{}",
        email.subject, email.message_id, email.text
    );
    if let Some(html) = &email.html {
        out += &format!("\n--- HTML part ---\n{html}");
    }
    out
}
