//! Event sources: turn a provider's payload into normalized [`ObjectCreated`] events.
//!
//! Each provider module owns its serde types, tolerates unknown fields and keeps open-ended
//! values (event names) as strings. [`parse`] recognizes which format a payload is in by
//! checking a table of known formats in order, so a new source is one more module and one more
//! row. Envelopes (SNS, SQS) parse what they carry with [`parse`]
//! again, so every format reaches Herald however it was forwarded.

use serde_json::Value;

use crate::event::ObjectCreated;

pub mod azure_blob;
pub mod cloudevents;
pub mod eventbridge;
pub mod gcs;
pub mod key;
pub mod minio;
pub mod s3;
pub mod sns;
pub mod sns_https;
pub mod sqs;

/// One record of a payload, after normalization.
// Nearly every record is a creation, so boxing the large variant would add an allocation to
// the common case to save space in the rare one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An object was created: this is what Herald notifies about.
    Created(ObjectCreated),
    /// A well-formed record of a kind Herald does not notify about (a delete, a restore).
    /// Counted, never an error.
    Ignored {
        /// The provider's event name, e.g. `ObjectRemoved:Delete`.
        event_name: String,
    },
}

/// What a whole payload turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A control message the provider sends when wiring is set up (S3 `s3:TestEvent`).
    /// Acknowledged, never an error.
    Test {
        /// The provider's name for it, e.g. `s3:TestEvent`.
        kind: String,
    },
    /// Event records, each normalized on its own: one bad record never sinks the others.
    Records(Vec<Result<Record, SourceError>>),
}

/// A payload or record that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The payload is not JSON, or not a JSON shape any source knows.
    #[error("payload is not a known storage event format: {reason}")]
    UnknownFormat { reason: String },
    /// A record of a known format is missing a field or has one of the wrong type.
    #[error("record {index} is malformed: {reason}")]
    BadRecord { index: usize, reason: String },
    /// An object key could not be decoded.
    #[error("record {index} has an undecodable key {raw:?}: {reason}")]
    BadKey {
        index: usize,
        raw: String,
        reason: String,
    },
}

/// A payload format [`parse`] knows: how to recognize it and how to read it.
struct Format {
    /// What the format is called in logs.
    name: &'static str,
    /// Whether a payload is in this format. Looks at top-level fields only, so it is cheap and
    /// a payload that matches but is broken gets that format's specific error.
    matches: fn(&Value) -> bool,
    /// Reads a payload that matched.
    read: fn(Value) -> Result<Payload, SourceError>,
}

/// Known formats, checked in order; the first match wins, so a more specific shape must come
/// before a more general one. The MinIO wrapper, SQS batches and Lambda SNS events also have
/// `Records`, hence before plain S3.
const FORMATS: &[Format] = &[
    Format {
        name: "s3 test event",
        matches: s3::is_test_event,
        read: s3::read_test_event,
    },
    Format {
        name: "minio webhook",
        matches: minio::is_webhook,
        read: minio::read_webhook,
    },
    Format {
        name: "sqs batch",
        matches: sqs::is_batch,
        read: sqs::read_batch,
    },
    Format {
        name: "sns lambda event",
        matches: sns::is_lambda_event,
        read: sns::read_lambda_event,
    },
    Format {
        name: "s3 event notification",
        matches: s3::is_notification,
        read: s3::read_notification,
    },
    Format {
        name: "sns notification",
        matches: sns::is_notification,
        read: sns::read_notification,
    },
    Format {
        name: "eventbridge s3 event",
        matches: eventbridge::is_event,
        read: eventbridge::read_event,
    },
    Format {
        name: "cloudevent",
        matches: cloudevents::is_structured,
        read: cloudevents::read_structured,
    },
    Format {
        name: "cloudevents batch",
        matches: cloudevents::is_batch,
        read: cloudevents::read_batch,
    },
    Format {
        name: "pubsub push",
        matches: gcs::is_pubsub_push,
        read: gcs::read_pubsub_push,
    },
    Format {
        name: "event grid events",
        matches: azure_blob::is_event_grid,
        read: azure_blob::read_event_grid,
    },
];

/// Recognizes a payload's format and normalizes it.
///
/// An error here concerns the payload as a whole (not JSON, or no format matches); a problem
/// with one record is reported in that record's slot of [`Payload::Records`].
pub fn parse(payload: &[u8]) -> Result<Payload, SourceError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(SourceError::UnknownFormat {
            reason: "the payload is empty".to_owned(),
        });
    }
    let value: Value =
        serde_json::from_slice(payload).map_err(|err| SourceError::UnknownFormat {
            reason: format!("not valid JSON ({err})"),
        })?;
    let Some(format) = FORMATS.iter().find(|format| (format.matches)(&value)) else {
        return Err(SourceError::UnknownFormat {
            reason: unrecognized(&value),
        });
    };
    tracing::debug!(format = format.name, "recognized payload format");
    (format.read)(value)
}

/// Combines the payloads an envelope carried into one.
///
/// A single payload is returned as it is, so an envelope around one test event is a test
/// event. Several are flattened in order: a test event becomes an ignored record named after
/// it, and a payload that failed as a whole becomes a failed record, so one bad message never
/// hides the others. Record indexes in errors are those within each carried payload.
pub(crate) fn merge(
    mut payloads: Vec<Result<Payload, SourceError>>,
) -> Result<Payload, SourceError> {
    if payloads.len() == 1 {
        return payloads.remove(0);
    }
    let mut records = Vec::new();
    for payload in payloads {
        match payload {
            Ok(Payload::Records(more)) => records.extend(more),
            Ok(Payload::Test { kind }) => records.push(Ok(Record::Ignored { event_name: kind })),
            Err(err) => records.push(Err(err)),
        }
    }
    Ok(Payload::Records(records))
}

/// Explains why JSON matched no format, naming what it does have so a human can tell a
/// misrouted payload from a truncated one.
fn unrecognized(value: &Value) -> String {
    // Keys are the sender's data: show a bounded preview of them, never the whole payload.
    const SHOWN: usize = 8;
    const KEY_CHARS: usize = 40;
    if let Value::Array(_) = value {
        return "top-level JSON is an array, but not of Event Grid events (objects with \
                \"eventType\" and \"data\"), and other formats are objects with a \"Records\" \
                array"
            .to_owned();
    }
    let Value::Object(object) = value else {
        return format!(
            "top-level JSON is {}, expected an object with a \"Records\" array",
            json_kind(value)
        );
    };
    if object.is_empty() {
        return "JSON object is empty, expected a \"Records\" array".to_owned();
    }
    let mut keys: Vec<String> = object
        .keys()
        .take(SHOWN)
        .map(|key| key.chars().take(KEY_CHARS).collect())
        .collect();
    if object.len() > SHOWN {
        keys.push("...".to_owned());
    }
    format!(
        "JSON object has no \"Records\" array and is no test event (top-level keys: {})",
        keys.join(", ")
    )
}

/// Names a JSON value's type for error messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(reason: &str) -> SourceError {
        SourceError::UnknownFormat {
            reason: reason.into(),
        }
    }

    #[test]
    fn non_json_says_so() {
        let want = unknown("not valid JSON (expected value at line 1 column 1)");
        assert_eq!(parse(b"Records: none"), Err(want));
        let want = unknown("not valid JSON (EOF while parsing a value at line 1 column 11)");
        assert_eq!(parse(b"{\"Records\":"), Err(want));
    }

    #[test]
    fn json_without_records_names_its_keys() {
        let want = unknown(
            "JSON object has no \"Records\" array and is no test event \
             (top-level keys: Message, Type)",
        );
        assert_eq!(
            parse(br#"{"Type":"Notification","Message":"{}"}"#),
            Err(want)
        );
    }

    #[test]
    fn long_key_lists_are_cut_short() {
        let payload = br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}"#;
        let want = unknown(
            "JSON object has no \"Records\" array and is no test event \
             (top-level keys: a, b, c, d, e, f, g, h, ...)",
        );
        assert_eq!(parse(payload), Err(want));
    }

    #[test]
    fn long_keys_are_cut_short() {
        let payload = format!("{{\"{}\":1}}", "k".repeat(100));
        let want = unknown(&format!(
            "JSON object has no \"Records\" array and is no test event (top-level keys: {})",
            "k".repeat(40)
        ));
        assert_eq!(parse(payload.as_bytes()), Err(want));
    }

    #[test]
    fn other_json_shapes_are_named() {
        let cases: [(&[u8], &str); 4] = [
            (b"{}", "JSON object is empty, expected a \"Records\" array"),
            (
                b"[{\"type\":\"Microsoft.Storage.BlobCreated\"}]",
                "top-level JSON is an array, but not of Event Grid events (objects with \
                 \"eventType\" and \"data\"), and other formats are objects with a \"Records\" \
                 array",
            ),
            (
                b"\"s3:TestEvent\"",
                "top-level JSON is a string, expected an object with a \"Records\" array",
            ),
            (
                b"{\"Records\":{}}",
                "\"Records\" is an object, expected an array",
            ),
        ];
        for (payload, reason) in cases {
            assert_eq!(parse(payload), Err(unknown(reason)));
        }
    }

    #[test]
    fn a_test_event_from_elsewhere_is_not_s3s() {
        let payload = br#"{"Service":"Other","Event":"s3:TestEvent"}"#;
        let want = unknown(
            "JSON object has no \"Records\" array and is no test event \
             (top-level keys: Event, Service)",
        );
        assert_eq!(parse(payload), Err(want));
    }

    #[test]
    fn empty_records_is_an_empty_batch() {
        assert_eq!(parse(b"{\"Records\":[]}"), Ok(Payload::Records(Vec::new())));
    }

    #[test]
    fn error_message_reads_as_one_sentence() {
        let message = parse(b"{}").map_err(|err| err.to_string());
        let want = "payload is not a known storage event format: \
                    JSON object is empty, expected a \"Records\" array";
        assert_eq!(message, Err(want.to_owned()));
    }
}
