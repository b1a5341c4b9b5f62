//! Amazon SNS HTTPS subscriptions: messages SNS POSTs to Herald's `/sns` endpoint.
//!
//! Unlike the Lambda and SQS paths ([`super::sns`]), anyone who can reach the endpoint can post
//! here, so nothing in a message is believed before its signature checks out
//! (<https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html>):
//!
//! 1. parse the JSON and its `Type`;
//! 2. refuse topics not in [`SnsHttpsOptions::allowed_topics`];
//! 3. refuse a `SignatureVersion` other than `1` (SHA1) or `2` (SHA256);
//! 4. refuse a `SigningCertURL`, and for a subscription a `SubscribeURL`, that is not https on
//!    an SNS host ([`urls`]);
//! 5. refuse a `Timestamp` outside [`MAX_AGE`] / [`MAX_AHEAD`] of now;
//! 6. fetch the certificate (cached), check its validity period, and verify the signature
//!    over the string to sign ([`message`]);
//!
//! and only then act: hand a notification's message on, GET a subscription's `SubscribeURL`,
//! or acknowledge an unsubscription. The HTTP route reads [`SnsHttpsError::status`] to answer.

mod cert;
mod error;
mod message;
mod urls;

use std::time::Duration;

use aws_lc_rs::signature::RsaParameters;
use jiff::{SignedDuration, Timestamp};
use tracing::{info, warn};
use url::Url;

use self::cert::{CertCache, get_bounded};
use self::message::{Kind, Message};
use self::urls::UrlPolicy;

pub use self::error::{FetchError, SetupError, SnsHttpsError};

/// Oldest `Timestamp` accepted. SNS gives up retrying an HTTP/S delivery within an hour
/// (<https://docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html>); the second
/// hour is slack for throttled deliveries and clock skew. A replay of a captured message
/// older than this is refused; a younger one is left to the dedupe store.
pub const MAX_AGE: SignedDuration = SignedDuration::from_hours(2);

/// How far in the future a `Timestamp` may be: clock skew between SNS and this host.
pub const MAX_AHEAD: SignedDuration = SignedDuration::from_mins(15);

/// Per request to the certificate host or `SubscribeURL`. SNS waits 15 s for Herald's answer
/// by default, and both may happen within one delivery.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes of the confirmation answer read before it is dropped; its content does not matter.
const MAX_CONFIRM_BYTES: usize = 64 * 1024;

/// How to build an [`SnsHttps`].
#[derive(Debug, Clone, Default)]
pub struct SnsHttpsOptions {
    /// Topic ARNs whose subscriptions are confirmed and whose messages are accepted. Empty
    /// accepts none.
    pub allowed_topics: Vec<String>,
    /// **Test only.** Also allows signing certificates and `SubscribeURL`s under this URL
    /// prefix, such as `http://127.0.0.1:8080/`, so tests can sign with a throwaway
    /// certificate. [`SnsHttps::new`] refuses any prefix whose host is not a loopback IP
    /// literal, and with it set plain http is allowed only under it. `None` in production.
    pub test_only_url_prefix: Option<String>,
}

/// What a verified message asks of Herald.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A published message; `message` is its payload (for S3, the event JSON) for
    /// [`super::parse`].
    Notification {
        topic_arn: String,
        message_id: String,
        message: String,
    },
    /// A subscription to an allowed topic was confirmed by visiting its `SubscribeURL`.
    Confirmed { topic_arn: String },
    /// SNS reports the subscription was removed. Logged at WARN: Herald stops hearing about
    /// uploads on this topic until someone subscribes it again.
    Unsubscribed { topic_arn: String },
}

/// Receives SNS HTTPS pushes; built once at start-up and shared by every request.
#[derive(Debug)]
pub struct SnsHttps {
    allowed_topics: Vec<String>,
    urls: UrlPolicy,
    client: reqwest::Client,
    certs: CertCache,
}

impl SnsHttps {
    /// Checks the options and builds the HTTP client used for certificates and confirmations.
    pub fn new(options: SnsHttpsOptions) -> Result<Self, SetupError> {
        let urls = UrlPolicy::new(options.test_only_url_prefix.as_deref())?;
        if urls.allows_test_prefix() {
            warn!("sns test-only url prefix is set; this receiver is not fit for production");
        }
        let client = reqwest::Client::builder()
            .https_only(!urls.allows_test_prefix())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(SetupError::Client)?;
        Ok(SnsHttps {
            allowed_topics: options.allowed_topics,
            urls,
            certs: CertCache::new(client.clone()),
            client,
        })
    }

    /// Verifies a request body and does what it asks (see the module docs for the order).
    pub async fn receive(&self, body: &[u8]) -> Result<Received, SnsHttpsError> {
        let (message, kind) = Message::parse(body)?;
        let checked = self.check_unsigned(&message, kind)?;
        self.verify(&message, kind, &checked).await?;

        let topic_arn = message.topic_arn;
        match (kind, checked.subscribe_url) {
            (Kind::Notification, _) => Ok(Received::Notification {
                topic_arn,
                message_id: message.message_id,
                message: message.message,
            }),
            (Kind::SubscriptionConfirmation, Some(url)) => {
                self.confirm(&topic_arn, &url).await?;
                info!(topic_arn = %topic_arn, "confirmed sns subscription");
                Ok(Received::Confirmed { topic_arn })
            }
            // check_unsigned returns a SubscribeURL for every subscription.
            (Kind::SubscriptionConfirmation, None) => {
                Err(SnsHttpsError::malformed("missing field `SubscribeURL`"))
            }
            (Kind::UnsubscribeConfirmation, _) => {
                warn!(topic_arn = %topic_arn, "sns subscription was removed");
                Ok(Received::Unsubscribed { topic_arn })
            }
        }
    }

    /// The checks that need no network: topic, signature version, URLs, timestamp.
    fn check_unsigned(&self, message: &Message, kind: Kind) -> Result<Checked, SnsHttpsError> {
        if !self.allowed_topics.contains(&message.topic_arn) {
            return Err(SnsHttpsError::TopicNotAllowed {
                topic_arn: error::preview(&message.topic_arn),
            });
        }
        let algorithm = message.algorithm()?;
        let cert_url = self
            .urls
            .check("SigningCertURL", &message.signing_cert_url)?;
        let subscribe_url = if kind == Kind::SubscriptionConfirmation {
            Some(self.urls.check("SubscribeURL", message.subscribe_url()?)?)
        } else {
            None
        };
        self.check_timestamp(message)?;
        Ok(Checked {
            algorithm,
            cert_url,
            subscribe_url,
        })
    }

    fn check_timestamp(&self, message: &Message) -> Result<(), SnsHttpsError> {
        let sent: Timestamp = message.timestamp.parse().map_err(|err| {
            SnsHttpsError::malformed(format!("Timestamp is not an RFC 3339 time: {err}"))
        })?;
        let age = Timestamp::now().duration_since(sent);
        if age > MAX_AGE || age < -MAX_AHEAD {
            return Err(SnsHttpsError::Stale {
                message_id: error::preview(&message.message_id),
                timestamp: error::preview(&message.timestamp),
            });
        }
        Ok(())
    }

    /// Fetches the signing certificate and checks the signature.
    async fn verify(
        &self,
        message: &Message,
        kind: Kind,
        checked: &Checked,
    ) -> Result<(), SnsHttpsError> {
        let text = message.string_to_sign(kind)?;
        let signature = message.signature()?;
        let cert = self.certs.get(&checked.cert_url, Timestamp::now()).await?;
        if cert.verifies(checked.algorithm, text.as_bytes(), &signature) {
            Ok(())
        } else {
            Err(SnsHttpsError::BadSignature {
                message_id: error::preview(&message.message_id),
                topic_arn: message.topic_arn.clone(),
            })
        }
    }

    /// Visits the `SubscribeURL` of a verified subscription confirmation.
    async fn confirm(&self, topic_arn: &str, url: &Url) -> Result<(), SnsHttpsError> {
        // The URL carries the confirmation token: it is not logged.
        get_bounded(&self.client, url, MAX_CONFIRM_BYTES)
            .await
            .map(drop)
            .map_err(|source| SnsHttpsError::ConfirmFailed {
                topic_arn: topic_arn.to_owned(),
                source,
            })
    }
}

/// What [`SnsHttps::check_unsigned`] established: how to verify, and what may be fetched.
struct Checked {
    algorithm: &'static RsaParameters,
    cert_url: Url,
    /// For a subscription confirmation only.
    subscribe_url: Option<Url>,
}

#[cfg(test)]
pub(crate) mod tests;
