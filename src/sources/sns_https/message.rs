//! The JSON document SNS posts to an HTTP/S subscriber, and the exact text its signature
//! covers.
//!
//! Shapes: <https://docs.aws.amazon.com/sns/latest/dg/http-subscription-confirmation-json.html>,
//! <https://docs.aws.amazon.com/sns/latest/dg/http-notification-json.html> and
//! <https://docs.aws.amazon.com/sns/latest/dg/http-unsubscribe-confirmation-json.html>.
//! String to sign: <https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html>.

use aws_lc_rs::signature::{self, RsaParameters};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::error::{SnsHttpsError, preview};

/// What a message is; the `Type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl Kind {
    fn parse(kind: &str) -> Result<Kind, SnsHttpsError> {
        match kind {
            "Notification" => Ok(Kind::Notification),
            "SubscriptionConfirmation" => Ok(Kind::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Ok(Kind::UnsubscribeConfirmation),
            other => Err(SnsHttpsError::UnknownType {
                kind: preview(other),
            }),
        }
    }
}

/// A pushed message as sent; nothing in it is trusted until [`Message::string_to_sign`] has
/// been verified against [`Message::signature`].
///
/// Unknown fields are ignored (`UnsubscribeURL` among them: Herald never visits it).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Message {
    #[serde(rename = "Type")]
    pub kind: String,
    pub message_id: String,
    pub topic_arn: String,
    pub message: String,
    pub timestamp: String,
    pub signature_version: String,
    pub signature: String,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    /// Notifications only, and only when the publisher gave one. `null` counts as absent.
    pub subject: Option<String>,
    /// Confirmations only.
    pub token: Option<String>,
    /// Confirmations only: visiting it confirms the subscription.
    #[serde(rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
}

impl Message {
    /// Parses a request body; says which field is missing when one is.
    pub fn parse(body: &[u8]) -> Result<(Message, Kind), SnsHttpsError> {
        let message: Message = serde_json::from_slice(body)
            .map_err(|err| SnsHttpsError::malformed(err.to_string()))?;
        let kind = Kind::parse(&message.kind)?;
        Ok((message, kind))
    }

    /// The verification algorithm `SignatureVersion` names: RSA PKCS#1 v1.5 over SHA1 for
    /// `1`, over SHA256 for `2`. SNS signing keys are 2048-bit RSA.
    pub fn algorithm(&self) -> Result<&'static RsaParameters, SnsHttpsError> {
        match self.signature_version.as_str() {
            "1" => Ok(&signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY),
            "2" => Ok(&signature::RSA_PKCS1_2048_8192_SHA256),
            other => Err(SnsHttpsError::UnsupportedSignatureVersion {
                version: preview(other),
            }),
        }
    }

    /// The decoded `Signature`.
    pub fn signature(&self) -> Result<Vec<u8>, SnsHttpsError> {
        STANDARD
            .decode(&self.signature)
            .map_err(|err| SnsHttpsError::malformed(format!("Signature is not base64: {err}")))
    }

    /// The `SubscribeURL` a confirmation must carry.
    pub fn subscribe_url(&self) -> Result<&str, SnsHttpsError> {
        required(&self.subscribe_url, "SubscribeURL")
    }

    /// The text SNS signed: chosen fields in byte order of their names, each written as the
    /// name, a newline, the value, a newline. Which fields depends on the type, and `Subject`
    /// takes part only when the notification has one.
    pub fn string_to_sign(&self, kind: Kind) -> Result<String, SnsHttpsError> {
        let mut fields = vec![
            ("Message", self.message.as_str()),
            ("MessageId", self.message_id.as_str()),
        ];
        if kind == Kind::Notification {
            if let Some(subject) = &self.subject {
                fields.push(("Subject", subject));
            }
        } else {
            fields.push(("SubscribeURL", self.subscribe_url()?));
        }
        fields.push(("Timestamp", &self.timestamp));
        if kind != Kind::Notification {
            fields.push(("Token", required(&self.token, "Token")?));
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", &self.kind));
        Ok(join(&fields))
    }
}

fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, SnsHttpsError> {
    value
        .as_deref()
        .ok_or_else(|| SnsHttpsError::malformed(format!("missing field `{field}`")))
}

fn join(fields: &[(&str, &str)]) -> String {
    let size = fields
        .iter()
        .map(|(key, value)| key.len() + value.len() + 2);
    let mut text = String::with_capacity(size.sum());
    for (key, value) in fields {
        text.push_str(key);
        text.push('\n');
        text.push_str(value);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parsed(value: serde_json::Value) -> Result<(Message, Kind), SnsHttpsError> {
        Message::parse(value.to_string().as_bytes())
    }

    fn notification() -> serde_json::Value {
        json!({
            "Type": "Notification",
            "MessageId": "m-1",
            "TopicArn": "arn:aws:sns:eu-west-1:111122223333:uploads",
            "Message": "line one\nline two",
            "Timestamp": "2024-06-03T14:20:31.611Z",
            "SignatureVersion": "2",
            "Signature": "AAAA",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe"
        })
    }

    #[test]
    fn notification_without_subject_signs_five_fields() -> Result<(), SnsHttpsError> {
        let (message, kind) = parsed(notification())?;
        let want = "Message\nline one\nline two\nMessageId\nm-1\n\
                    Timestamp\n2024-06-03T14:20:31.611Z\n\
                    TopicArn\narn:aws:sns:eu-west-1:111122223333:uploads\nType\nNotification\n";
        assert_eq!(message.string_to_sign(kind)?, want);
        Ok(())
    }

    #[test]
    fn notification_subject_sits_between_message_id_and_timestamp() -> Result<(), SnsHttpsError> {
        let mut value = notification();
        value["Subject"] = json!("Amazon S3 Notification");
        let (message, kind) = parsed(value)?;
        let text = message.string_to_sign(kind)?;
        assert!(
            text.contains("MessageId\nm-1\nSubject\nAmazon S3 Notification\nTimestamp\n"),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn null_subject_is_left_out() -> Result<(), SnsHttpsError> {
        let mut value = notification();
        value["Subject"] = json!(null);
        let (message, kind) = parsed(value)?;
        assert!(!message.string_to_sign(kind)?.contains("Subject"));
        Ok(())
    }

    #[test]
    fn confirmation_signs_subscribe_url_and_token() -> Result<(), SnsHttpsError> {
        let (message, kind) = parsed(json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": "m-2",
            "Token": "tok",
            "TopicArn": "arn:aws:sns:eu-west-1:111122223333:uploads",
            "Message": "You have chosen to subscribe.",
            "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
            "Timestamp": "2024-06-03T14:20:31.611Z",
            "SignatureVersion": "1",
            "Signature": "AAAA",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem"
        }))?;
        let want = "Message\nYou have chosen to subscribe.\nMessageId\nm-2\n\
                    SubscribeURL\nhttps://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription\n\
                    Timestamp\n2024-06-03T14:20:31.611Z\nToken\ntok\n\
                    TopicArn\narn:aws:sns:eu-west-1:111122223333:uploads\n\
                    Type\nSubscriptionConfirmation\n";
        assert_eq!(kind, Kind::SubscriptionConfirmation);
        assert_eq!(message.string_to_sign(kind)?, want);
        Ok(())
    }

    #[test]
    fn confirmation_without_token_is_malformed() -> Result<(), SnsHttpsError> {
        let mut value = notification();
        value["Type"] = json!("UnsubscribeConfirmation");
        value["SubscribeURL"] = json!("https://sns.eu-west-1.amazonaws.com/");
        let (message, kind) = parsed(value)?;
        let got = message.string_to_sign(kind);
        assert!(
            matches!(&got, Err(SnsHttpsError::Malformed { reason }) if reason.contains("Token")),
            "{got:?}"
        );
        Ok(())
    }

    #[test]
    fn unknown_type_and_version_are_named() -> Result<(), SnsHttpsError> {
        let mut value = notification();
        value["Type"] = json!("Telegram");
        let got = parsed(value).map(|_| ());
        assert!(matches!(got, Err(SnsHttpsError::UnknownType { ref kind }) if kind == "Telegram"));

        let mut value = notification();
        value["SignatureVersion"] = json!("3");
        let (message, _) = parsed(value)?;
        let got = message.algorithm().map(|_| ());
        assert!(matches!(
            got,
            Err(SnsHttpsError::UnsupportedSignatureVersion { ref version }) if version == "3"
        ));
        Ok(())
    }
}
