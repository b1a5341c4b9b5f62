//! Amazon SNS: S3 event notifications published to a topic, as a subscriber receives them.
//!
//! S3 publishes its event (or its `s3:TestEvent`) as a JSON *string* in the notification's
//! `Message`. That notification reaches Herald in two shapes:
//!
//! - a Lambda SNS event, `{"Records": [{"EventSource": "aws:sns", "Sns": {...}}]}`
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html>);
//! - the bare notification, `{"Type": "Notification", "TopicArn": ..., "Message": ...}`, which is
//!   what an SQS message body holds when the subscription's raw message delivery is off
//!   (<https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html>).
//!
//! Signatures are not checked here: on both paths the message was handed over by AWS itself
//! under IAM, not posted by whoever can reach an HTTP endpoint.

use serde::Deserialize;
use serde_json::Value;

use crate::sources::{Payload, SourceError, merge, parse};

/// The `EventSource` of a record in a Lambda SNS event.
pub const EVENT_SOURCE: &str = "aws:sns";

/// Notification types SNS sends to a subscriber. Only `Notification` carries a message;
/// the confirmations arrive once, when a subscription is wired up or torn down.
const TYPES: [&str; 3] = [
    "Notification",
    "SubscriptionConfirmation",
    "UnsubscribeConfirmation",
];

/// An SNS notification; the Lambda event and the bare JSON share these field names.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Notification {
    r#type: String,
    message: String,
}

/// One entry of a Lambda SNS event's `Records`.
#[derive(Debug, Deserialize)]
struct LambdaRecord {
    #[serde(rename = "Sns")]
    sns: Notification,
}

/// Whether a payload is a Lambda SNS event: `Records` whose first entry comes from SNS.
pub fn is_lambda_event(payload: &Value) -> bool {
    payload
        .pointer("/Records/0/EventSource")
        .and_then(Value::as_str)
        == Some(EVENT_SOURCE)
}

/// Reads a payload [`is_lambda_event`] accepted. SNS hands Lambda one record per invocation;
/// should there be more, their contents are merged as [`merge`] describes.
pub fn read_lambda_event(mut payload: Value) -> Result<Payload, SourceError> {
    let Some(Value::Array(records)) = payload.get_mut("Records").map(Value::take) else {
        let reason = "SNS event has no \"Records\" array".to_owned();
        return Err(SourceError::UnknownFormat { reason });
    };
    let opened = records.into_iter().map(|record| {
        let record: LambdaRecord = serde_json::from_value(record).map_err(malformed)?;
        open(record.sns)
    });
    merge(opened.collect())
}

/// Whether a payload is a bare SNS notification, such as an SQS body without raw delivery.
pub fn is_notification(payload: &Value) -> bool {
    let text = |field| payload.get(field).and_then(Value::as_str);
    text("Type").is_some_and(|kind| TYPES.contains(&kind))
        && text("TopicArn").is_some()
        && text("Message").is_some()
}

/// Reads a payload [`is_notification`] accepted.
pub fn read_notification(payload: Value) -> Result<Payload, SourceError> {
    let notification: Notification = serde_json::from_value(payload).map_err(malformed)?;
    open(notification)
}

/// Parses the message a notification carries, in any format [`parse`] knows.
fn open(notification: Notification) -> Result<Payload, SourceError> {
    if notification.r#type != "Notification" {
        // A confirmation is wiring, not an upload. Lambda and SQS subscriptions are confirmed
        // by AWS when they are created, so there is nothing to visit here.
        return Ok(Payload::Test {
            kind: format!("sns:{}", notification.r#type),
        });
    }
    parse(notification.message.as_bytes()).map_err(|err| match err {
        SourceError::UnknownFormat { reason } => SourceError::UnknownFormat {
            reason: format!("in the SNS message, {reason}"),
        },
        other => other,
    })
}

fn malformed(err: serde_json::Error) -> SourceError {
    SourceError::UnknownFormat {
        reason: format!("SNS notification is malformed: {err}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::{ObjectCreated, Provider};
    use crate::sources::Record;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The upload every SNS fixture wraps: `tests/fixtures/s3/put.json`'s record.
    pub(crate) fn wrapped_put() -> Result<ObjectCreated, jiff::Error> {
        Ok(ObjectCreated {
            provider: Provider::Aws,
            event_name: "ObjectCreated:Put".into(),
            bucket: "acme-uploads".into(),
            key: "reports/Q3 summary.pdf".into(),
            size: 73_406,
            content_type: None,
            etag: Some("5d41402abc4b2a76b9719d911017c592".into()),
            version_id: None,
            sequencer: Some("0066A1B2C3D4E5F601".into()),
            event_time: Some("2024-06-03T14:20:31.402Z".parse()?),
            uploader: Some("AWS:AIDAQ4EXAMPLEUPLOADER".into()),
            source_ip: Some("203.0.113.24".into()),
            region: Some("eu-west-1".into()),
        })
    }

    #[test]
    fn lambda_sns_event_yields_the_s3_record() -> TestResult {
        let payload = include_bytes!("../../tests/fixtures/sns/lambda_event.json");
        let want = Payload::Records(vec![Ok(Record::Created(wrapped_put()?))]);
        assert_eq!(parse(payload)?, want);
        Ok(())
    }

    #[test]
    fn bare_notification_yields_the_s3_record() -> TestResult {
        let payload = include_bytes!("../../tests/fixtures/sns/notification.json");
        let want = Payload::Records(vec![Ok(Record::Created(wrapped_put()?))]);
        assert_eq!(parse(payload)?, want);
        Ok(())
    }

    #[test]
    fn s3_test_event_inside_sns_is_a_test() -> TestResult {
        let payload = include_bytes!("../../tests/fixtures/sns/test_event.json");
        let want = Payload::Test {
            kind: "s3:TestEvent".into(),
        };
        assert_eq!(parse(payload)?, want);
        Ok(())
    }

    #[test]
    fn subscription_confirmation_is_acknowledged() -> TestResult {
        let payload = json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": "0b5e8a4c-1d2f-4e3a-9b8c-7d6e5f4a3b2c",
            "TopicArn": "arn:aws:sns:eu-west-1:111122223333:uploads",
            "Message": "You have chosen to subscribe to the topic.",
            "Token": "2336412f37fb687f5d51e6e2425c464de"
        });
        let want = Payload::Test {
            kind: "sns:SubscriptionConfirmation".into(),
        };
        assert_eq!(parse(payload.to_string().as_bytes())?, want);
        Ok(())
    }

    #[test]
    fn message_that_is_no_storage_event_says_where() {
        let payload = json!({
            "Type": "Notification",
            "TopicArn": "arn:aws:sns:eu-west-1:111122223333:uploads",
            "Message": "hello from a person"
        });
        let want = SourceError::UnknownFormat {
            reason: "in the SNS message, not valid JSON (expected value at line 1 column 1)".into(),
        };
        assert_eq!(parse(payload.to_string().as_bytes()), Err(want));
    }

    #[test]
    fn sns_record_without_message_is_malformed() {
        let payload =
            json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification"}}]});
        let got = parse(payload.to_string().as_bytes());
        assert!(
            matches!(&got, Err(SourceError::UnknownFormat { reason })
                if reason.starts_with("SNS notification is malformed: missing field `Message`")),
            "{got:?}"
        );
    }
}
