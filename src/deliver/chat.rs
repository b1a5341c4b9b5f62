//! Chat notifications through Slack-compatible incoming webhooks: `POST <url>` with
//! `{"text": "..."}` (Slack, Mattermost, Rocket.Chat, Discord's `/slack` endpoints).
//!
//! A rule names the environment variable holding its webhook URL (`chat_webhook_env`); the
//! URL is a secret, because anyone holding it can post to the channel, so it is kept as a
//! [`Secret`] and never appears in logs or errors. 200 means posted; 404 and 410 mean the
//! webhook was revoked or its channel archived, which no retry fixes.
//!
//! <https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks/>

use std::sync::Mutex;

use reqwest::StatusCode;
use serde_json::json;
use tracing::debug;

use super::http::{self, Api, HttpSettings, HttpSetupError};
use super::{DeliveryError, Receipt, SendFuture};
use crate::event::ObjectCreated;
use crate::render::Link;
use crate::render::format::{one_line, size_human, visible};
use crate::secret::Secret;

/// The name in receipts, errors and logs.
const NAME: &str = "chat";

/// A rule's chat webhook, resolved at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatWebhook {
    /// The environment variable the URL came from, named in messages.
    pub env: String,
    /// The webhook URL.
    pub url: Secret,
}

/// A service that posts short text messages to a chat webhook.
pub trait ChatSender: Send + Sync {
    /// Short name used in logs and receipts.
    fn name(&self) -> &'static str;

    /// Posts `text` to `webhook`.
    fn post<'a>(&'a self, webhook: &'a ChatWebhook, text: &'a str) -> SendFuture<'a>;
}

/// Posts to Slack-compatible incoming webhooks over one shared HTTPS client.
#[derive(Debug)]
pub struct WebhookSender {
    api: Api,
}

impl WebhookSender {
    /// Builds the HTTPS client.
    pub fn new(settings: HttpSettings) -> Result<WebhookSender, HttpSetupError> {
        Ok(WebhookSender {
            api: Api::new(NAME, settings)?,
        })
    }

    async fn post_json(&self, webhook: &ChatWebhook, text: &str) -> Result<Receipt, DeliveryError> {
        let body = json!({ "text": text });
        let url = webhook.url.expose();
        match self.api.send(|client| client.post(url).json(&body)).await {
            Ok(answer) => Ok(Receipt {
                sender: NAME,
                detail: format!(
                    "posted to the webhook in ${} ({})",
                    webhook.env, answer.status
                ),
            }),
            Err(failure) => Err(http::classify(NAME, failure, |status, text| {
                explain(status, text, &webhook.env)
            })),
        }
    }
}

impl ChatSender for WebhookSender {
    fn name(&self) -> &'static str {
        NAME
    }

    fn post<'a>(&'a self, webhook: &'a ChatWebhook, text: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            let result = self.post_json(webhook, text).await;
            if let Err(err) = &result {
                debug!(webhook_env = %webhook.env, transient = err.is_transient(),
                    error = %err, "chat post failed");
            }
            result
        })
    }
}

/// Slack answers 404 `no_service` / `channel_not_found` and 410 `channel_is_archived` for a
/// webhook that no longer leads anywhere, 403 for a posting the workspace forbids.
fn explain(status: StatusCode, text: &str, env: &str) -> Option<String> {
    match status {
        StatusCode::NOT_FOUND | StatusCode::GONE => Some(format!(
            "the chat webhook in ${env} is gone ({status}: {text}): it was revoked or its \
             channel archived; create a new one and update ${env}"
        )),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Some(format!(
            "the chat webhook in ${env} may not post ({status}: {text}): check the app's \
             permissions in the workspace"
        )),
        _ => None,
    }
}

/// The chat message for an upload: the email's subject, then where the file is and how big,
/// then the download link when there is one.
///
/// Slack reads `<...>` as links and mentions (`<!channel>`) and `&` as the start of an
/// entity, so those three are escaped: a file name is data, never markup.
pub fn text(subject: &str, event: &ObjectCreated, link: Option<&Link>) -> String {
    let place = visible(&format!("{}/{}", event.bucket, event.key));
    let mut text = format!(
        "{}\n{place} ({})",
        one_line(subject),
        size_human(event.size)
    );
    if let Some(link) = link {
        text.push('\n');
        text.push_str(&link.url);
    }
    escape(&text)
}

/// Slack's three control characters as entities.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Keeps every post it is given, in order: for tests and dry runs.
#[derive(Debug, Default)]
pub struct MemoryChat {
    posted: Mutex<Vec<(String, String)>>,
}

impl MemoryChat {
    /// An empty recorder.
    pub fn new() -> Self {
        MemoryChat::default()
    }

    /// `(webhook variable, text)` for each post so far.
    pub fn posted(&self) -> Vec<(String, String)> {
        self.posted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ChatSender for MemoryChat {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn post<'a>(&'a self, webhook: &'a ChatWebhook, text: &'a str) -> SendFuture<'a> {
        let mut posted = self.posted.lock().unwrap_or_else(|p| p.into_inner());
        posted.push((webhook.env.clone(), text.to_owned()));
        let detail = format!("kept as post {}", posted.len());
        Box::pin(async move {
            Ok(Receipt {
                sender: "memory",
                detail,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::http::testing::{Recorder, Reply};
    use crate::event::Provider;

    fn webhook(url: &str) -> ChatWebhook {
        ChatWebhook {
            env: "SLACK_WEBHOOK_URL".into(),
            url: Secret::new(format!("{url}/services/T000/B000/XXXXSECRET")),
        }
    }

    fn sender() -> WebhookSender {
        WebhookSender::new(HttpSettings::default()).expect("client")
    }

    #[tokio::test]
    async fn posts_the_text_as_json() {
        let server = Recorder::start(vec![Reply::new(200, "ok")]).await;
        let receipt = sender()
            .post(&webhook(&server.url), "New file\nbucket/key (1 B)")
            .await
            .expect("posted");
        assert_eq!(
            receipt.detail,
            "posted to the webhook in $SLACK_WEBHOOK_URL (200 OK)"
        );

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/services/T000/B000/XXXXSECRET");
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.header("authorization"), "");
        assert_eq!(
            request.json(),
            json!({ "text": "New file\nbucket/key (1 B)" })
        );
    }

    #[tokio::test]
    async fn a_short_rate_limit_is_waited_out_and_retried_once() {
        let server = Recorder::start(vec![
            Reply::new(429, "rate_limited").header("retry-after", "1"),
            Reply::new(200, "ok"),
        ])
        .await;
        sender()
            .post(&webhook(&server.url), "hello")
            .await
            .expect("posted on the second try");
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_revoked_webhook_is_permanent_and_keeps_the_url_secret() {
        let server = Recorder::start(vec![Reply::new(410, "channel_is_archived")]).await;
        let err = sender()
            .post(&webhook(&server.url), "hello")
            .await
            .expect_err("gone");
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.contains(
                "the chat webhook in $SLACK_WEBHOOK_URL is gone (410 Gone: \
                           channel_is_archived)"
            ),
            "{text}"
        );
        assert!(!text.contains("SECRET"), "{text}");
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn text_escapes_markup_in_file_names() {
        let event = ObjectCreated {
            provider: Provider::Aws,
            event_name: "ObjectCreated:Put".into(),
            bucket: "uploads".into(),
            key: "in/<!channel> & <http://evil|click>\r\n.pdf".into(),
            size: 1536,
            content_type: None,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: None,
            uploader: None,
            source_ip: None,
            region: None,
        };
        let link = Link {
            url: "https://uploads.s3.amazonaws.com/in/x?a=1&b=2".into(),
            expires_at: jiff::Timestamp::UNIX_EPOCH,
        };
        let text = text("New file: <b>", &event, Some(&link));
        assert_eq!(
            text,
            "New file: &lt;b&gt;\nuploads/in/&lt;!channel&gt; &amp; &lt;http://evil|click&gt;\
             \\r\\n.pdf (1.5 KiB)\nhttps://uploads.s3.amazonaws.com/in/x?a=1&amp;b=2"
        );
    }
}
