//! Amazon SQS: a batch of queue messages, each carrying one storage event in its body.
//!
//! Lambda hands a function `{"Records": [{"messageId", "receiptHandle", "body",
//! "eventSource": "aws:sqs", ...}]}` (<https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>).
//! A body is whatever reached the queue: an S3 event notification sent to the queue directly,
//! an SNS notification wrapping one, the S3 event itself when the SNS subscription uses raw
//! message delivery, or an EventBridge event. Each message succeeds or fails on its own, so
//! runtimes [`split`] a batch and handle every body separately; [`read_batch`] is for callers
//! that want one report for the whole batch (`herald invoke`).

use serde::Deserialize;
use serde_json::Value;

use crate::sources::{Payload, SourceError, merge, parse};

/// The `eventSource` of a record in a Lambda SQS event.
pub const EVENT_SOURCE: &str = "aws:sqs";

/// One queue message, as much of it as Herald needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// SQS's id for the message; what a partial batch response names to have it redelivered.
    pub message_id: String,
    /// The message body: a storage event payload in any format [`parse`] knows.
    pub body: String,
}

/// Whether a payload is a Lambda SQS event: `Records` whose first entry comes from SQS.
pub fn is_batch(payload: &Value) -> bool {
    payload
        .pointer("/Records/0/eventSource")
        .and_then(Value::as_str)
        == Some(EVENT_SOURCE)
}

/// Splits a batch [`is_batch`] accepted into its messages, in order.
///
/// Fails as a whole when a record lacks its id or body: a message without an id cannot be
/// named in a partial batch response, so the batch is better retried than half acknowledged.
pub fn split(mut payload: Value) -> Result<Vec<Message>, SourceError> {
    let Some(Value::Array(records)) = payload.get_mut("Records").map(Value::take) else {
        let reason = "SQS event has no \"Records\" array".to_owned();
        return Err(SourceError::UnknownFormat { reason });
    };
    let messages = records.into_iter().enumerate().map(|(index, record)| {
        serde_json::from_value(record).map_err(|err| SourceError::BadRecord {
            index,
            reason: format!("SQS message is malformed: {err}"),
        })
    });
    messages.collect()
}

/// Reads every message of a batch and merges their records, as [`merge`] describes.
pub fn read_batch(payload: Value) -> Result<Payload, SourceError> {
    let payloads = split(payload)?
        .into_iter()
        .enumerate()
        .map(|(index, message)| {
            parse(message.body.as_bytes()).map_err(|err| SourceError::BadRecord {
                index,
                reason: format!("SQS message {}: {err}", message.message_id),
            })
        });
    merge(payloads.collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ObjectCreated, Provider};
    use crate::sources::Record;
    use crate::sources::eventbridge::tests::large_upload;
    use crate::sources::sns::tests::wrapped_put;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A message id and what its body parsed to.
    type Parsed = (String, Result<Payload, SourceError>);

    /// The messages of a fixture batch, each body parsed on its own as the Lambda runtime does.
    fn bodies(fixture: &[u8]) -> Result<Vec<Parsed>, SourceError> {
        let messages =
            split(
                serde_json::from_slice(fixture).map_err(|err| SourceError::UnknownFormat {
                    reason: err.to_string(),
                })?,
            )?;
        let parsed = messages.into_iter().map(|message| {
            let payload = parse(message.body.as_bytes());
            (message.message_id, payload)
        });
        Ok(parsed.collect())
    }

    fn created(event: ObjectCreated) -> Result<Payload, SourceError> {
        Ok(Payload::Records(vec![Ok(Record::Created(event))]))
    }

    #[test]
    fn s3_body_yields_the_s3_record() -> TestResult {
        let got = bodies(include_bytes!("../../tests/fixtures/sqs/s3_body.json"))?;
        let id = "2d4e6f80-1a3b-4c5d-8e9f-a0b1c2d3e4f5".to_owned();
        assert_eq!(got, vec![(id, created(wrapped_put()?))]);
        Ok(())
    }

    #[test]
    fn sns_body_yields_the_wrapped_s3_record() -> TestResult {
        let got = bodies(include_bytes!("../../tests/fixtures/sqs/sns_body.json"))?;
        let id = "3e5f7a91-2b4c-4d6e-9fa0-b1c2d3e4f5a6".to_owned();
        assert_eq!(got, vec![(id, created(wrapped_put()?))]);
        Ok(())
    }

    #[test]
    fn raw_delivered_body_is_decoded_like_s3() -> TestResult {
        let got = bodies(include_bytes!("../../tests/fixtures/sqs/raw_delivery.json"))?;
        let want = ObjectCreated {
            provider: Provider::Aws,
            event_name: "ObjectCreated:Put".into(),
            bucket: "acme-uploads".into(),
            key: "inbox/raw delivery (2).csv".into(),
            size: 9120,
            content_type: None,
            etag: Some("c4ca4238a0b923820dcc509a6f75849b".into()),
            version_id: None,
            sequencer: Some("0066A1B2C3D4E5F702".into()),
            event_time: Some("2024-06-03T14:21:07.013Z".parse()?),
            uploader: Some("AWS:AIDAQ4EXAMPLEUPLOADER".into()),
            source_ip: Some("203.0.113.24".into()),
            region: Some("eu-west-1".into()),
        };
        let id = "4f6a8b02-3c5d-4e7f-a0b1-c2d3e4f5a6b7".to_owned();
        assert_eq!(got, vec![(id, created(want))]);
        Ok(())
    }

    #[test]
    fn test_event_in_sns_in_sqs_is_a_test() -> TestResult {
        let got = bodies(include_bytes!(
            "../../tests/fixtures/sqs/sns_test_event.json"
        ))?;
        let test = Payload::Test {
            kind: "s3:TestEvent".into(),
        };
        let id = "5a7b9c13-4d6e-4f80-b1c2-d3e4f5a6b7c8".to_owned();
        assert_eq!(got, vec![(id, Ok(test))]);
        Ok(())
    }

    #[test]
    fn eventbridge_body_keeps_its_key_verbatim() -> TestResult {
        let got = bodies(include_bytes!(
            "../../tests/fixtures/sqs/eventbridge_body.json"
        ))?;
        let id = "6b8cad24-5e7f-4091-c2d3-e4f5a6b7c8d9".to_owned();
        assert_eq!(got, vec![(id, created(large_upload()?))]);
        Ok(())
    }

    #[test]
    fn each_message_of_a_mixed_batch_stands_alone() -> TestResult {
        let got = bodies(include_bytes!("../../tests/fixtures/sqs/mixed.json"))?;
        let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "7c9dbe35-6f80-41a2-d3e4-f5a6b7c8d9e0",
                "8daecf46-7091-42b3-e4f5-a6b7c8d9e0f1",
                "9ebfd057-81a2-43c4-f5a6-b7c8d9e0f1a2",
                "afc0e168-92b3-44d5-a6b7-c8d9e0f1a2b3",
            ]
        );
        assert_eq!(got[0].1, created(wrapped_put()?));
        assert!(matches!(got[1].1, Ok(Payload::Test { .. })));
        assert!(matches!(got[2].1, Err(SourceError::UnknownFormat { .. })));
        assert!(matches!(got[3].1, Err(SourceError::UnknownFormat { .. })));
        Ok(())
    }

    #[test]
    fn whole_batch_parse_merges_the_messages() -> TestResult {
        let payload = include_bytes!("../../tests/fixtures/sqs/mixed.json");
        let Payload::Records(records) = parse(payload)? else {
            panic!("a batch of several messages reads as records");
        };
        assert_eq!(records.len(), 4);
        assert_eq!(records[0], Ok(Record::Created(wrapped_put()?)));
        let test = Record::Ignored {
            event_name: "s3:TestEvent".into(),
        };
        assert_eq!(records[1], Ok(test));
        let reason = "SQS message 9ebfd057-81a2-43c4-f5a6-b7c8d9e0f1a2: payload is not a known \
                      storage event format: JSON object has no \"Records\" array and is no test \
                      event (top-level keys: alarm, severity)";
        let want = SourceError::BadRecord {
            index: 2,
            reason: reason.into(),
        };
        assert_eq!(records[2], Err(want));
        Ok(())
    }

    #[test]
    fn record_without_message_id_fails_the_split() {
        let payload = serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]});
        let got = split(payload);
        assert!(
            matches!(&got, Err(SourceError::BadRecord { index: 0, reason })
                if reason.contains("missing field `messageId`")),
            "{got:?}"
        );
    }
}
