//! SendGrid delivery through the v3 Mail Send API: one JSON `POST /v3/mail/send` per email.
//!
//! Recipients go in one personalization (to, cc, bcc; Bcc never appears in a header), the
//! text part before the HTML part as the API requires, and `Message-ID` and `X-Herald-Rule` as
//! custom headers (neither is on SendGrid's reserved list). 202 means queued.
//!
//! <https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send>

use std::collections::HashSet;

use lettre::message::Mailbox;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tracing::debug;

use super::http::{self, Api, HttpSettings, HttpSetupError};
use super::{DeliveryError, Email, Receipt, SendFuture, Sender};
use crate::secret::Secret;

/// The name in receipts, errors and logs.
const NAME: &str = "sendgrid";

/// The global API; EU regional subusers use `https://api.eu.sendgrid.com`.
pub const DEFAULT_API_URL: &str = "https://api.sendgrid.com";

/// Everything needed to build a [`SendGridSender`]; produced by config validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendGridSettings {
    /// Base URL without a trailing slash, e.g. `https://api.sendgrid.com`.
    pub api_url: String,
    /// The API key, read from the environment at start-up.
    pub api_key: Secret,
    /// The environment variable it came from, named in error messages.
    pub api_key_env: String,
    /// Timeout and rate-limit wait.
    pub http: HttpSettings,
}

/// Sends email through SendGrid's v3 API.
#[derive(Debug)]
pub struct SendGridSender {
    api: Api,
    endpoint: String,
    api_key: Secret,
    api_key_env: String,
}

impl SendGridSender {
    /// Builds the HTTPS client; nothing is sent until the first email.
    pub fn new(settings: &SendGridSettings) -> Result<SendGridSender, HttpSetupError> {
        Ok(SendGridSender {
            api: Api::new(NAME, settings.http)?,
            endpoint: format!("{}/v3/mail/send", settings.api_url),
            api_key: settings.api_key.clone(),
            api_key_env: settings.api_key_env.clone(),
        })
    }

    async fn send_json(&self, email: &Email) -> Result<Receipt, DeliveryError> {
        let body = request_body(email);
        let key = self.api_key.expose();
        let sent = self
            .api
            .send(|client| client.post(&self.endpoint).bearer_auth(key).json(&body))
            .await;
        match sent {
            Ok(answer) => {
                let id = answer.headers.get("x-message-id");
                let id = id.and_then(|v| v.to_str().ok()).unwrap_or("(none)");
                Ok(Receipt {
                    sender: NAME,
                    detail: format!("accepted ({}), X-Message-Id {id}", answer.status),
                })
            }
            Err(failure) => Err(http::classify(NAME, failure, |status, text| {
                explain(status, text, &self.api_key_env)
            })),
        }
    }
}

impl Sender for SendGridSender {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(async move {
            let result = self.send_json(email).await;
            if let Err(err) = &result {
                debug!(message_id = %email.message_id, transient = err.is_transient(),
                    error = %err, "sendgrid send failed");
            }
            result
        })
    }
}

/// 401 is a bad key; 403 is a key without the Mail Send permission or a `from` that is not a
/// verified sender identity, which SendGrid's own text tells apart.
fn explain(status: StatusCode, text: &str, env: &str) -> Option<String> {
    match status {
        StatusCode::UNAUTHORIZED => Some(format!(
            "sendgrid refused the API key in ${env} ({status}: {text}): check it and its Mail \
             Send permission"
        )),
        StatusCode::FORBIDDEN => Some(format!(
            "sendgrid refused to send ({status}: {text}): check that the API key in ${env} has \
             the Mail Send permission and that the from address is a verified sender identity"
        )),
        _ => None,
    }
}

/// The Mail Send JSON for `email`.
///
/// SendGrid refuses an address listed twice anywhere in a personalization, so an address
/// already in `to` (or `cc`) is dropped from the later lists: the person gets one copy either
/// way.
fn request_body(email: &Email) -> Value {
    let mut seen = HashSet::new();
    let mut unique = |boxes: &[Mailbox]| -> Vec<Value> {
        boxes
            .iter()
            .filter(|b| seen.insert(b.email.to_string().to_lowercase()))
            .map(address)
            .collect()
    };
    let mut personalization = json!({ "to": unique(&email.to) });
    for (field, boxes) in [("cc", &email.cc), ("bcc", &email.bcc)] {
        let list = unique(boxes);
        if !list.is_empty() {
            personalization[field] = Value::Array(list);
        }
    }

    let mut content = vec![json!({ "type": "text/plain", "value": email.text })];
    if let Some(html) = &email.html {
        content.push(json!({ "type": "text/html", "value": html }));
    }
    let mut body = json!({
        "personalizations": [personalization],
        "from": address(&email.from),
        "subject": email.subject,
        "content": content,
        "headers": {
            "Message-ID": format!("<{}>", email.message_id),
            "X-Herald-Rule": email.rule,
        },
    });
    if let Some(reply_to) = &email.reply_to {
        body["reply_to"] = address(reply_to);
    }
    body
}

/// `{"email": ..., "name": ...}`, the name left out when there is none.
fn address(mailbox: &Mailbox) -> Value {
    match mailbox.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => {
            json!({ "email": mailbox.email.to_string(), "name": name })
        }
        _ => json!({ "email": mailbox.email.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::deliver::http::testing::{Recorder, Reply};
    use crate::deliver::message::tests::sample_email;

    fn sender(url: &str) -> SendGridSender {
        SendGridSender::new(&SendGridSettings {
            api_url: url.to_owned(),
            api_key: Secret::new("SG.test-key"),
            api_key_env: "SENDGRID_API_KEY".into(),
            http: HttpSettings::default(),
        })
        .expect("client")
    }

    #[tokio::test]
    async fn request_has_the_documented_shape() {
        let server =
            Recorder::start(vec![Reply::new(202, "").header("x-message-id", "sg-123")]).await;
        let mut email = sample_email(Some("<p>A new file arrived.</p>"));
        email
            .bcc
            .push("LEGAL@example.com".parse().expect("address"));

        let receipt = sender(&server.url).send(&email).await.expect("sent");
        assert_eq!(receipt.sender, "sendgrid");
        assert!(
            receipt.detail.contains("X-Message-Id sg-123"),
            "{}",
            receipt.detail
        );

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v3/mail/send");
        assert_eq!(request.header("authorization"), "Bearer SG.test-key");
        assert_eq!(request.header("content-type"), "application/json");
        let expected = json!({
            "personalizations": [{
                "to": [{ "email": "legal@example.com", "name": "Legal" }],
                "cc": [{ "email": "audit@example.com" }],
                "bcc": [{ "email": "secret-watcher@example.com" }],
            }],
            "from": { "email": "uploads@example.com", "name": "Uploads" },
            "reply_to": { "email": "help@example.com" },
            "subject": "New file in uploads: report.pdf",
            "content": [
                { "type": "text/plain", "value": "A new file arrived.\n" },
                { "type": "text/html", "value": "<p>A new file arrived.</p>" },
            ],
            "headers": {
                "Message-ID": "<abc123.contracts@herald.example.com>",
                "X-Herald-Rule": "contracts",
            },
        });
        assert_eq!(request.json(), expected);
    }

    #[tokio::test]
    async fn a_short_rate_limit_is_waited_out_and_retried_once() {
        let server = Recorder::start(vec![
            Reply::new(429, r#"{"errors":[{"message":"too many"}]}"#).header("retry-after", "1"),
            Reply::new(202, ""),
        ])
        .await;
        let started = Instant::now();
        sender(&server.url)
            .send(&sample_email(None))
            .await
            .expect("sent on the second try");
        assert!(started.elapsed() >= Duration::from_secs(1));
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].body, requests[1].body);
    }

    #[tokio::test]
    async fn a_rate_limit_reset_beyond_the_cap_is_transient_with_the_hint() {
        let reset = (jiff::Timestamp::now().as_second() + 120).to_string();
        let server = Recorder::start(vec![
            Reply::new(429, "").header("x-ratelimit-reset", &reset),
        ])
        .await;
        let err = sender(&server.url)
            .send(&sample_email(None))
            .await
            .expect_err("rate limited");
        assert!(err.is_transient(), "{err}");
        let wait = err.retry_after().expect("hint");
        assert!(wait > Duration::from_secs(100), "{wait:?}");
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_refused_key_is_permanent_names_the_variable_and_is_not_retried() {
        let body = r#"{"errors":[{"message":"The provided authorization grant is invalid, expired, or revoked","field":null,"help":null}]}"#;
        let server = Recorder::start(vec![Reply::new(401, body)]).await;
        let err = sender(&server.url)
            .send(&sample_email(None))
            .await
            .expect_err("refused");
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.starts_with(
                "sendgrid rejected the message: sendgrid refused the API key in \
                              $SENDGRID_API_KEY (401 Unauthorized: The provided authorization"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("check it and its Mail Send permission"),
            "{text}"
        );
        assert!(!text.contains("SG.test-key"));
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_bad_request_is_permanent_with_sendgrids_text() {
        let body = r#"{"errors":[{"message":"Invalid from email address","field":"from"}]}"#;
        let server = Recorder::start(vec![Reply::new(400, body)]).await;
        let err = sender(&server.url)
            .send(&sample_email(None))
            .await
            .expect_err("bad request");
        assert!(!err.is_transient());
        assert!(
            err.to_string()
                .ends_with("400 Bad Request: Invalid from email address")
        );
    }

    #[tokio::test]
    async fn server_errors_are_transient() {
        let server = Recorder::start(vec![Reply::new(503, "unavailable")]).await;
        let err = sender(&server.url)
            .send(&sample_email(None))
            .await
            .expect_err("unavailable");
        assert!(err.is_transient(), "{err}");
    }

    #[test]
    fn debug_output_hides_the_key() {
        let sender = sender("https://api.sendgrid.com");
        assert!(!format!("{sender:?}").contains("SG.test-key"));
    }
}
