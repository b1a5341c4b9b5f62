//! Mailgun delivery through the Messages API: one form-encoded `POST /v3/<domain>/messages`
//! per email, with HTTP basic auth `api:<key>`.
//!
//! Each recipient is its own `to`, `cc` or `bcc` field (Bcc never appears in a header);
//! `Reply-To`, `Message-Id` and `X-Herald-Rule` go as `h:` header fields. 200 means queued.
//!
//! <https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages>

use reqwest::StatusCode;
use tracing::debug;

use super::http::{self, Api, HttpSettings, HttpSetupError};
use super::{DeliveryError, Email, Receipt, SendFuture, Sender};
use crate::secret::Secret;

/// The name in receipts, errors and logs.
const NAME: &str = "mailgun";

/// The US region; domains created in the EU region need `https://api.eu.mailgun.net`.
pub const DEFAULT_API_URL: &str = "https://api.mailgun.net";

/// Everything needed to build a [`MailgunSender`]; produced by config validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailgunSettings {
    /// Base URL without a trailing slash, e.g. `https://api.mailgun.net`.
    pub api_url: String,
    /// The sending domain, e.g. `mg.example.com`.
    pub domain: String,
    /// The API key, read from the environment at start-up.
    pub api_key: Secret,
    /// The environment variable it came from, named in error messages.
    pub api_key_env: String,
    /// Timeout and rate-limit wait.
    pub http: HttpSettings,
}

/// Sends email through Mailgun's Messages API.
#[derive(Debug)]
pub struct MailgunSender {
    api: Api,
    endpoint: String,
    settings: MailgunSettings,
}

impl MailgunSender {
    /// Builds the HTTPS client; nothing is sent until the first email.
    pub fn new(settings: &MailgunSettings) -> Result<MailgunSender, HttpSetupError> {
        Ok(MailgunSender {
            api: Api::new(NAME, settings.http)?,
            endpoint: format!("{}/v3/{}/messages", settings.api_url, settings.domain),
            settings: settings.clone(),
        })
    }

    async fn send_form(&self, email: &Email) -> Result<Receipt, DeliveryError> {
        let fields = form_fields(email);
        let key = self.settings.api_key.expose();
        let sent = self
            .api
            .send(|client| {
                let request = client.post(&self.endpoint).basic_auth("api", Some(key));
                request.form(&fields)
            })
            .await;
        match sent {
            Ok(answer) => Ok(Receipt {
                sender: NAME,
                detail: queued(&answer.body),
            }),
            Err(failure) => Err(http::classify(NAME, failure, |status, text| {
                explain(status, text, &self.settings)
            })),
        }
    }
}

impl Sender for MailgunSender {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(async move {
            let result = self.send_form(email).await;
            if let Err(err) = &result {
                debug!(message_id = %email.message_id, transient = err.is_transient(),
                    error = %err, "mailgun send failed");
            }
            result
        })
    }
}

/// Mailgun answers 401 for a wrong key, and for a right key sent to the other region's API;
/// 403 for a domain not allowed to send (a sandbox domain's unauthorized recipient); 404 for a
/// domain it does not know at this API URL.
fn explain(status: StatusCode, text: &str, settings: &MailgunSettings) -> Option<String> {
    let (env, domain, url) = (&settings.api_key_env, &settings.domain, &settings.api_url);
    match status {
        StatusCode::UNAUTHORIZED => Some(format!(
            "mailgun refused the API key in ${env} ({status}: {text}): check it, and that \
             api_url ({url}) is the region the key belongs to"
        )),
        StatusCode::FORBIDDEN => Some(format!(
            "mailgun refused to send for domain {domain} ({status}: {text}): check the domain's \
             state and, for a sandbox domain, its authorized recipients"
        )),
        StatusCode::NOT_FOUND => Some(format!(
            "mailgun does not know domain {domain} at {url} ({status}: {text}): check [sender] \
             domain, and api_url for domains in the EU region"
        )),
        _ => None,
    }
}

/// The form fields for `email`, in the order Mailgun documents them.
fn form_fields(email: &Email) -> Vec<(&'static str, String)> {
    let mut fields = vec![("from", email.from.to_string())];
    for (name, boxes) in [("to", &email.to), ("cc", &email.cc), ("bcc", &email.bcc)] {
        fields.extend(boxes.iter().map(|mailbox| (name, mailbox.to_string())));
    }
    fields.push(("subject", email.subject.clone()));
    fields.push(("text", email.text.clone()));
    if let Some(html) = &email.html {
        fields.push(("html", html.clone()));
    }
    if let Some(reply_to) = &email.reply_to {
        fields.push(("h:Reply-To", reply_to.to_string()));
    }
    fields.push(("h:Message-Id", format!("<{}>", email.message_id)));
    fields.push(("h:X-Herald-Rule", email.rule.clone()));
    fields
}

/// `{"id": "<...>", "message": "Queued. Thank you."}` as a receipt line.
fn queued(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    match value.get("id").and_then(|id| id.as_str()) {
        Some(id) => format!("queued as {id}"),
        None => "queued".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::http::testing::{Recorder, Reply};
    use crate::deliver::message::tests::sample_email;

    fn sender(url: &str) -> MailgunSender {
        MailgunSender::new(&MailgunSettings {
            api_url: url.to_owned(),
            domain: "mg.example.com".into(),
            api_key: Secret::new("key-test"),
            api_key_env: "MAILGUN_API_KEY".into(),
            http: HttpSettings::default(),
        })
        .expect("client")
    }

    const QUEUED: &str = r#"{"id":"<20241001.1@mg.example.com>","message":"Queued. Thank you."}"#;

    #[tokio::test]
    async fn request_has_the_documented_shape() {
        let server = Recorder::start(vec![Reply::new(200, QUEUED)]).await;
        let email = sample_email(Some("<p>A new file arrived.</p>"));

        let receipt = sender(&server.url).send(&email).await.expect("sent");
        assert_eq!(receipt.detail, "queued as <20241001.1@mg.example.com>");

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v3/mg.example.com/messages");
        // base64("api:key-test")
        assert_eq!(request.header("authorization"), "Basic YXBpOmtleS10ZXN0");
        assert_eq!(
            request.header("content-type"),
            "application/x-www-form-urlencoded"
        );
        let field = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        let expected = vec![
            field("from", "Uploads <uploads@example.com>"),
            field("to", "Legal <legal@example.com>"),
            field("cc", "audit@example.com"),
            field("bcc", "secret-watcher@example.com"),
            field("subject", "New file in uploads: report.pdf"),
            field("text", "A new file arrived.\n"),
            field("html", "<p>A new file arrived.</p>"),
            field("h:Reply-To", "help@example.com"),
            field("h:Message-Id", "<abc123.contracts@herald.example.com>"),
            field("h:X-Herald-Rule", "contracts"),
        ];
        assert_eq!(request.form(), expected);
    }

    #[tokio::test]
    async fn a_short_rate_limit_is_waited_out_and_retried_once() {
        let server = Recorder::start(vec![
            Reply::new(429, "").header("retry-after", "1"),
            Reply::new(200, QUEUED),
        ])
        .await;
        sender(&server.url)
            .send(&sample_email(None))
            .await
            .expect("sent on the second try");
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_refused_key_is_permanent_names_the_variable_and_is_not_retried() {
        let server = Recorder::start(vec![Reply::new(401, "Forbidden")]).await;
        let err = sender(&server.url)
            .send(&sample_email(None))
            .await
            .expect_err("refused");
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.contains(
                "mailgun refused the API key in $MAILGUN_API_KEY (401 Unauthorized: \
                           Forbidden)"
            ),
            "{text}"
        );
        assert!(!text.contains("key-test"));
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn an_unknown_domain_is_permanent_and_says_what_to_check() {
        let body = r#"{"message":"Domain not found: mg.example.com"}"#;
        let server = Recorder::start(vec![Reply::new(404, body)]).await;
        let err = sender(&server.url)
            .send(&sample_email(None))
            .await
            .expect_err("unknown domain");
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.contains("does not know domain mg.example.com"),
            "{text}"
        );
        assert!(text.contains("Domain not found"), "{text}");
    }
}
