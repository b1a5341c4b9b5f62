//! What can go wrong receiving an SNS HTTPS push, and what each failure tells SNS.
//!
//! SNS retries an HTTP/S delivery only after a server-side failure (a 5xx or no answer) and
//! treats a 4xx as final (<https://docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html>).
//! So a message Herald will never accept (forged, unsigned, for a foreign topic) gets a 4xx and
//! is not sent again, while a failure on our side of the wire (the certificate host or the
//! confirmation URL did not answer) gets a 503 so the same message comes back later.

/// How much of a value taken from a request an error message shows.
const PREVIEW_CHARS: usize = 120;

/// Why a pushed SNS message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SnsHttpsError {
    /// The body is not JSON, or lacks a field its message type must carry.
    #[error("request body is not an sns message: {reason}")]
    Malformed { reason: String },
    /// The `Type` is none of the three SNS sends to HTTP/S subscribers.
    #[error("sns message type {kind:?} is not one herald handles")]
    UnknownType { kind: String },
    /// The topic is not in the allowed list. Checked before the signature, so a flood of
    /// messages naming other topics costs no certificate fetches.
    #[error("sns topic {topic_arn:?} is not allowed")]
    TopicNotAllowed { topic_arn: String },
    /// A `SignatureVersion` other than `1` (SHA1) or `2` (SHA256).
    #[error("sns signature version {version:?} is not supported")]
    UnsupportedSignatureVersion { version: String },
    /// `SigningCertURL` or `SubscribeURL` is not https on an SNS host; never fetched.
    #[error("{field} {url:?} is not an https url on an sns host")]
    UntrustedUrl { field: &'static str, url: String },
    /// The `Timestamp` is older or further ahead than a genuine delivery can be.
    #[error("sns message {message_id} has timestamp {timestamp} outside the accepted window")]
    Stale {
        message_id: String,
        timestamp: String,
    },
    /// The signing certificate was fetched but cannot vouch for anything.
    #[error("signing certificate from {url} is unusable: {reason}")]
    BadCertificate { url: String, reason: String },
    /// The signature does not match the message: forged or altered.
    #[error("signature of sns message {message_id} on topic {topic_arn} does not verify")]
    BadSignature {
        message_id: String,
        topic_arn: String,
    },
    /// The signing certificate could not be fetched.
    #[error("could not fetch signing certificate from {url}")]
    CertificateFetch {
        url: String,
        #[source]
        source: FetchError,
    },
    /// The verified confirmation's `SubscribeURL` did not answer with success.
    #[error("could not confirm the subscription to sns topic {topic_arn}")]
    ConfirmFailed {
        topic_arn: String,
        #[source]
        source: FetchError,
    },
}

impl SnsHttpsError {
    /// The HTTP status to answer SNS with: 400 for a body that is no SNS message, 403 for one
    /// Herald does not trust (a retry would carry the same signature and topic), 503 when
    /// fetching the certificate or confirming failed and a retry may succeed.
    pub fn status(&self) -> u16 {
        match self {
            SnsHttpsError::Malformed { .. } | SnsHttpsError::UnknownType { .. } => 400,
            SnsHttpsError::TopicNotAllowed { .. }
            | SnsHttpsError::UnsupportedSignatureVersion { .. }
            | SnsHttpsError::UntrustedUrl { .. }
            | SnsHttpsError::Stale { .. }
            | SnsHttpsError::BadCertificate { .. }
            | SnsHttpsError::BadSignature { .. } => 403,
            SnsHttpsError::CertificateFetch { .. } | SnsHttpsError::ConfirmFailed { .. } => 503,
        }
    }

    /// Whether SNS sending the same message again may succeed.
    pub fn is_transient(&self) -> bool {
        self.status() >= 500
    }

    pub(super) fn malformed(reason: impl Into<String>) -> Self {
        SnsHttpsError::Malformed {
            reason: reason.into(),
        }
    }

    pub(super) fn untrusted_url(field: &'static str, url: &str) -> Self {
        SnsHttpsError::UntrustedUrl {
            field,
            url: preview(url),
        }
    }
}

/// A failed GET of the signing certificate or the `SubscribeURL`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No response: connection refused, timeout, TLS failure.
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    /// A response other than 2xx. Redirects are not followed, so a 3xx lands here too.
    #[error("answered with http status {0}")]
    Status(u16),
    /// The response body is larger than any certificate.
    #[error("response is larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// [`SnsHttps::new`](super::SnsHttps::new) could not build a receiver.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The test-only URL prefix is not an http(s) URL on a loopback address.
    #[error("test-only sns url prefix {prefix:?} is refused: {reason}")]
    TestPrefix {
        prefix: String,
        reason: &'static str,
    },
    /// The HTTP client could not be built (no TLS roots, for instance).
    #[error("could not build the http client for sns")]
    Client(#[source] reqwest::Error),
}

/// A bounded preview of a value that came from the request.
pub(super) fn preview(value: &str) -> String {
    if value.chars().count() <= PREVIEW_CHARS {
        return value.to_owned();
    }
    let mut shown: String = value.chars().take(PREVIEW_CHARS).collect();
    shown.push_str("...");
    shown
}
