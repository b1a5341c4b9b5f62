//! CloudEvents 1.0: the envelope Eventarc (Cloud Storage) and Event Grid's CloudEvents schema
//! (Azure Blob Storage) deliver storage events in.
//!
//! Over HTTP an event comes in one of three modes
//! (<https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md>):
//! binary, where the attributes are `ce-*` headers and the body is the event's data (what
//! Eventarc sends by default); structured, where the body is the whole event as JSON
//! (`application/cloudevents+json`) with the data under `data`; and batched, a JSON array of
//! structured events (`application/cloudevents-batch+json`). The event's `type` decides which
//! provider module reads the data.

use serde::Deserialize;
use serde_json::Value;

use crate::sources::{Payload, SourceError, azure_blob, gcs, merge};

/// The body's content type in structured mode.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// The body's content type of a batch.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// One event: the context attributes Herald reads and the data, however it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    /// `id`: unique per event from one source; redeliveries repeat it.
    pub id: Option<String>,
    /// `source`, e.g. `//storage.googleapis.com/projects/_/buckets/uploads`.
    pub source: Option<String>,
    /// `type`, e.g. `google.cloud.storage.object.v1.finalized`.
    pub kind: String,
    /// `subject`, e.g. `objects/reports/q3.pdf`.
    pub subject: Option<String>,
    /// `time`, RFC 3339.
    pub time: Option<String>,
    /// The event data, when there is any.
    pub data: Option<Value>,
}

/// A structured-mode event. Extension attributes (Eventarc's `bucket`) are ignored.
#[derive(Debug, Deserialize)]
struct Structured {
    specversion: String,
    id: Option<String>,
    source: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    subject: Option<String>,
    time: Option<String>,
    data: Option<Value>,
}

/// Reads a binary-mode event: `header` looks up a request header by its lowercase name and the
/// body is the data.
pub fn from_binary<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<CloudEvent, SourceError> {
    let version = header("ce-specversion")
        .ok_or_else(|| unknown("ce-specversion header is missing: not a binary-mode CloudEvent"))?;
    check_version(version)?;
    let kind = header("ce-type").ok_or_else(|| unknown("ce-type header is missing"))?;
    let data = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value = serde_json::from_slice(body)
            .map_err(|err| unknown(format!("CloudEvent data is not valid JSON ({err})")))?;
        Some(value)
    };
    let owned = |name: &str| header(name).map(str::to_owned);
    Ok(CloudEvent {
        id: owned("ce-id"),
        source: owned("ce-source"),
        kind: kind.to_owned(),
        subject: owned("ce-subject"),
        time: owned("ce-time"),
        data,
    })
}

/// Whether a payload is one structured-mode CloudEvent.
pub fn is_structured(payload: &Value) -> bool {
    payload.get("specversion").is_some_and(Value::is_string)
        && payload.get("type").is_some_and(Value::is_string)
}

/// Whether a payload is a batch of structured-mode CloudEvents.
pub fn is_batch(payload: &Value) -> bool {
    payload
        .as_array()
        .and_then(|events| events.first())
        .is_some_and(is_structured)
}

/// Reads a payload [`is_structured`] accepted.
pub fn read_structured(payload: Value) -> Result<Payload, SourceError> {
    let event: Structured = serde_json::from_value(payload)
        .map_err(|err| unknown(format!("CloudEvent is malformed: {err}")))?;
    check_version(&event.specversion)?;
    read(CloudEvent {
        id: event.id,
        source: event.source,
        kind: event.kind,
        subject: event.subject,
        time: event.time,
        data: event.data,
    })
}

/// Reads a payload [`is_batch`] accepted; each event is read on its own.
pub fn read_batch(payload: Value) -> Result<Payload, SourceError> {
    let Value::Array(events) = payload else {
        return Err(unknown("a CloudEvents batch is a JSON array"));
    };
    merge(events.into_iter().map(read_structured).collect())
}

/// Hands an event to the module that knows its type.
pub fn read(event: CloudEvent) -> Result<Payload, SourceError> {
    if event.kind.starts_with(gcs::CE_TYPE_PREFIX) {
        return gcs::read_cloudevent(event);
    }
    if event.kind.starts_with(azure_blob::TYPE_PREFIX) {
        return azure_blob::read_cloudevent(event);
    }
    // The type is chosen by whoever wired the trigger; a bounded preview keeps logs sane.
    let shown: String = event.kind.chars().take(80).collect();
    Err(unknown(format!(
        "CloudEvent type {shown:?} is not a storage event herald reads"
    )))
}

/// Version 1.0 is the only one there is; a minor bump keeps the attributes Herald reads.
fn check_version(version: &str) -> Result<(), SourceError> {
    if version.starts_with("1.") {
        return Ok(());
    }
    let shown: String = version.chars().take(20).collect();
    Err(unknown(format!(
        "CloudEvents specversion {shown:?} is not supported; herald reads 1.x"
    )))
}

fn unknown(reason: impl Into<String>) -> SourceError {
    SourceError::UnknownFormat {
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_mode_needs_spec_version_and_type() {
        let none = |_: &str| None;
        let err = from_binary(none, b"{}").map(|_| ());
        let want = "payload is not a known storage event format: \
                    ce-specversion header is missing: not a binary-mode CloudEvent";
        assert_eq!(err.map_err(|e| e.to_string()), Err(want.to_owned()));

        let version_only = |name: &str| (name == "ce-specversion").then_some("1.0");
        let err = from_binary(version_only, b"{}").map(|_| ());
        assert_eq!(err, Err(unknown("ce-type header is missing")));
    }

    #[test]
    fn other_spec_versions_and_types_are_refused() {
        let old = serde_json::json!({"specversion": "0.3", "type": "x", "id": "1"});
        let want = unknown("CloudEvents specversion \"0.3\" is not supported; herald reads 1.x");
        assert_eq!(read_structured(old), Err(want));

        let pubsub = serde_json::json!({"specversion": "1.0",
            "type": "google.cloud.pubsub.topic.v1.messagePublished", "data": {}});
        let want = unknown(
            "CloudEvent type \"google.cloud.pubsub.topic.v1.messagePublished\" \
             is not a storage event herald reads",
        );
        assert_eq!(read_structured(pubsub), Err(want));
    }
}
