//! Google Cloud Storage: object events through Eventarc (CloudEvents) or legacy Pub/Sub
//! notifications.
//!
//! Both carry the object resource of the JSON API
//! (<https://cloud.google.com/storage/docs/json_api/v1/objects#resource>), in which the 64-bit
//! fields (`size`, `generation`, `metageneration`) are JSON *strings*, and `name` is the object
//! name as chosen, not URL-encoded.
//!
//! - Eventarc sends `google.cloud.storage.object.v1.finalized` (and `deleted`, `archived`,
//!   `metadataUpdated`) as CloudEvents, with the object resource as the data
//!   (<https://cloud.google.com/eventarc/docs/cloudevents>).
//! - Pub/Sub notifications push `{"message": {"attributes": {"eventType": "OBJECT_FINALIZE",
//!   ...}, "data": "<base64 object resource>"}, "subscription": ...}`
//!   (<https://cloud.google.com/storage/docs/pubsub-notifications>,
//!   <https://cloud.google.com/pubsub/docs/push>).
//!
//! Finalize also fires when an object is overwritten: the new content has a new `generation`,
//! which becomes the version id, so the overwrite is a new upload to the dedupe store.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::event::{ObjectCreated, Provider};
use crate::sources::cloudevents::CloudEvent;
use crate::sources::s3::{event_time, non_empty};
use crate::sources::{Payload, Record, SourceError, json_kind};

/// The CloudEvents type prefix of Cloud Storage object events.
pub const CE_TYPE_PREFIX: &str = "google.cloud.storage.object.v1.";

/// The CloudEvents type of a new object or a new generation of one.
pub const FINALIZED: &str = "google.cloud.storage.object.v1.finalized";

/// The Pub/Sub notification `eventType` of a new object or a new generation of one.
pub const OBJECT_FINALIZE: &str = "OBJECT_FINALIZE";

/// The object resource, as much of it as Herald maps. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StorageObject {
    bucket: String,
    name: String,
    #[serde(default, deserialize_with = "u64_text")]
    size: Option<u64>,
    #[serde(default, deserialize_with = "u64_text")]
    generation: Option<u64>,
    content_type: Option<String>,
    etag: Option<String>,
    md5_hash: Option<String>,
    time_created: Option<String>,
    updated: Option<String>,
}

/// A Pub/Sub push request.
#[derive(Debug, Deserialize)]
struct Push {
    message: PushMessage,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushMessage {
    #[serde(default)]
    attributes: HashMap<String, String>,
    data: Option<String>,
    publish_time: Option<String>,
}

/// Reads a Cloud Storage CloudEvent: `finalized` is an upload, every other type is ignored.
pub fn read_cloudevent(event: CloudEvent) -> Result<Payload, SourceError> {
    if event.kind != FINALIZED {
        return Ok(ignored(event.kind));
    }
    let record = match event.data {
        Some(data) => created(data, FINALIZED, event.time),
        None => Err(bad_record("finalized event carries no object resource")),
    };
    Ok(Payload::Records(vec![record.map(Record::Created)]))
}

/// Whether a payload is a Pub/Sub push request: a `message` object, named by `subscription`
/// or carrying a message id.
pub fn is_pubsub_push(payload: &Value) -> bool {
    let Some(message) = payload.get("message").filter(|m| m.is_object()) else {
        return false;
    };
    payload.get("subscription").is_some() || message.get("messageId").is_some()
}

/// Reads a push request [`is_pubsub_push`] accepted. A message that is no Cloud Storage
/// notification (no `eventType` attribute) is an unknown format.
pub fn read_pubsub_push(payload: Value) -> Result<Payload, SourceError> {
    let push: Push = serde_json::from_value(payload).map_err(|err| SourceError::UnknownFormat {
        reason: format!("Pub/Sub push request is malformed: {err}"),
    })?;
    let message = push.message;
    let Some(event_type) = message.attributes.get("eventType") else {
        let reason = "Pub/Sub message is no Cloud Storage notification (no eventType attribute)";
        return Err(SourceError::UnknownFormat {
            reason: reason.to_owned(),
        });
    };
    if event_type != OBJECT_FINALIZE {
        return Ok(ignored(event_type.clone()));
    }
    let time = message
        .attributes
        .get("eventTime")
        .cloned()
        .or(message.publish_time);
    let record = notification_object(message.data.as_deref())
        .and_then(|object| created(object, OBJECT_FINALIZE, time));
    Ok(Payload::Records(vec![record.map(Record::Created)]))
}

/// The object resource inside a notification's base64 `data`.
fn notification_object(data: Option<&str>) -> Result<Value, SourceError> {
    let Some(data) = data.filter(|data| !data.is_empty()) else {
        return Err(bad_record(
            "notification carries no object resource; create the notification with \
             payload format JSON_API_V1",
        ));
    };
    let bytes = STANDARD
        .decode(data)
        .map_err(|err| bad_record(format!("message data is not base64 ({err})")))?;
    serde_json::from_slice(&bytes).map_err(|err| {
        bad_record(format!(
            "message data is not a JSON object resource ({err})"
        ))
    })
}

/// Maps an object resource onto the normalized event. `fallback_time` (the envelope's time)
/// is used when the resource has no `timeCreated` or `updated`.
fn created(
    data: Value,
    event_name: &str,
    fallback_time: Option<String>,
) -> Result<ObjectCreated, SourceError> {
    if !data.is_object() {
        let reason = format!(
            "object resource is {}, expected an object",
            json_kind(&data)
        );
        return Err(bad_record(reason));
    }
    let object: StorageObject =
        serde_json::from_value(data).map_err(|err| bad_record(err.to_string()))?;
    if object.bucket.is_empty() {
        return Err(bad_record("object resource has an empty bucket"));
    }
    if object.name.is_empty() {
        return Err(bad_record("object resource has an empty name"));
    }
    let size = object
        .size
        .ok_or_else(|| bad_record("object resource has no size"))?;
    let time = non_empty(object.time_created)
        .or(non_empty(object.updated))
        .or(fallback_time);

    Ok(ObjectCreated {
        provider: Provider::Gcs,
        event_name: event_name.to_owned(),
        bucket: object.bucket,
        key: object.name,
        size,
        content_type: non_empty(object.content_type),
        etag: non_empty(object.etag).or(non_empty(object.md5_hash)),
        version_id: object.generation.map(|generation| generation.to_string()),
        sequencer: None,
        event_time: event_time(time).map_err(bad_record)?,
        uploader: None,
        source_ip: None,
        region: None,
    })
}

/// A 64-bit field written as a decimal string, as the JSON API does; a plain number is
/// accepted too, since some tools re-serialize the resource.
fn u64_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Text(String),
        Number(u64),
    }
    match Option::<Text>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Text::Number(number)) => Ok(Some(number)),
        Some(Text::Text(text)) => text.parse().map(Some).map_err(|_| {
            let shown: String = text.chars().take(30).collect();
            serde::de::Error::custom(format!("{shown:?} is not a 64-bit unsigned integer"))
        }),
    }
}

fn ignored(event_name: String) -> Payload {
    Payload::Records(vec![Ok(Record::Ignored { event_name })])
}

/// Cloud Storage delivers one event at a time, so the record is always the first.
fn bad_record(reason: impl Into<String>) -> SourceError {
    SourceError::BadRecord {
        index: 0,
        reason: reason.into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::sources::{cloudevents, parse};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    pub(crate) const FINALIZED_OBJECT: &str =
        include_str!("../../tests/fixtures/gcs/object_finalized.json");
    pub(crate) const STRUCTURED: &str =
        include_str!("../../tests/fixtures/gcs/cloudevent_structured.json");
    pub(crate) const PUBSUB_FINALIZE: &str =
        include_str!("../../tests/fixtures/gcs/pubsub_finalize.json");
    const PUBSUB_DELETE: &str = include_str!("../../tests/fixtures/gcs/pubsub_delete.json");

    /// The upload in `object_finalized.json`: 5 GiB, a name with spaces and parentheses.
    pub(crate) fn large_export() -> Result<ObjectCreated, jiff::Error> {
        Ok(ObjectCreated {
            provider: Provider::Gcs,
            event_name: FINALIZED.into(),
            bucket: "acme-archive".into(),
            key: "exports/2024/Q3 full dump (final).tar".into(),
            size: 5_368_709_120,
            content_type: Some("application/x-tar".into()),
            etag: Some("CNmRz4TfxoYDEAE=".into()),
            version_id: Some("1717430564912345".into()),
            sequencer: None,
            event_time: Some("2024-06-03T16:02:44.915Z".parse()?),
            uploader: None,
            source_ip: None,
            region: None,
        })
    }

    fn binary(kind: &str, body: &str) -> Result<Payload, SourceError> {
        let header = |name: &str| match name {
            "ce-specversion" => Some("1.0"),
            "ce-type" => Some(kind),
            "ce-time" => Some("2024-06-03T16:02:45.001Z"),
            _ => None,
        };
        cloudevents::read(cloudevents::from_binary(header, body.as_bytes())?)
    }

    fn one_created(payload: Payload) -> ObjectCreated {
        match payload {
            Payload::Records(records) => match records.as_slice() {
                [Ok(Record::Created(event))] => event.clone(),
                other => panic!("expected one creation, got {other:?}"),
            },
            other => panic!("expected records, got {other:?}"),
        }
    }

    #[test]
    fn binary_mode_finalize_maps_every_field_with_a_size_over_4_gib() -> TestResult {
        assert_eq!(
            one_created(binary(FINALIZED, FINALIZED_OBJECT)?),
            large_export()?
        );
        Ok(())
    }

    #[test]
    fn structured_mode_finalize_keeps_the_name_as_sent() -> TestResult {
        let event = one_created(parse(STRUCTURED.as_bytes())?);
        assert_eq!(event.bucket, "acme-inbox");
        assert_eq!(event.key, "scans/Lieferschein März.pdf");
        assert_eq!(event.size, 482_133);
        assert_eq!(event.version_id.as_deref(), Some("1717430710331000"));
        assert_eq!(event.content_type.as_deref(), Some("application/pdf"));
        Ok(())
    }

    #[test]
    fn other_storage_event_types_are_ignored() -> TestResult {
        for kind in ["deleted", "archived", "metadataUpdated"] {
            let kind = format!("{CE_TYPE_PREFIX}{kind}");
            let want = Payload::Records(vec![Ok(Record::Ignored {
                event_name: kind.clone(),
            })]);
            assert_eq!(binary(&kind, FINALIZED_OBJECT)?, want);
        }
        Ok(())
    }

    #[test]
    fn an_overwrite_is_a_new_upload() -> TestResult {
        let first = one_created(binary(FINALIZED, FINALIZED_OBJECT)?);
        let mut object: Value = serde_json::from_str(FINALIZED_OBJECT)?;
        object["generation"] = json!("1717430999000001");
        let second = one_created(binary(FINALIZED, &object.to_string())?);
        assert_eq!(second.version_id.as_deref(), Some("1717430999000001"));
        assert_ne!(first.dedupe_key(), second.dedupe_key());
        Ok(())
    }

    #[test]
    fn envelope_time_stands_in_for_missing_resource_times() -> TestResult {
        let mut object: Value = serde_json::from_str(FINALIZED_OBJECT)?;
        if let Some(fields) = object.as_object_mut() {
            fields.remove("timeCreated");
            fields.remove("updated");
        }
        let event = one_created(binary(FINALIZED, &object.to_string())?);
        assert_eq!(event.event_time, Some("2024-06-03T16:02:45.001Z".parse()?));
        Ok(())
    }

    #[test]
    fn a_size_that_is_no_number_is_a_bad_record() -> TestResult {
        let mut object: Value = serde_json::from_str(FINALIZED_OBJECT)?;
        object["size"] = json!("5 GiB");
        let Payload::Records(records) = binary(FINALIZED, &object.to_string())? else {
            panic!("expected records");
        };
        let [Err(SourceError::BadRecord { reason, .. })] = records.as_slice() else {
            panic!("expected a bad record, got {records:?}");
        };
        assert!(
            reason.contains("\"5 GiB\" is not a 64-bit unsigned integer"),
            "{reason}"
        );
        Ok(())
    }

    #[test]
    fn pubsub_finalize_decodes_the_object_resource() -> TestResult {
        let event = one_created(parse(PUBSUB_FINALIZE.as_bytes())?);
        assert_eq!(event.event_name, OBJECT_FINALIZE);
        assert_eq!(event.bucket, "acme-inbox");
        assert_eq!(event.key, "invoices/INV-2024-0042+copy.pdf");
        assert_eq!(event.size, 73_421);
        assert_eq!(event.version_id.as_deref(), Some("1717431000123456"));
        assert_eq!(event.event_time, Some("2024-06-03T16:10:00.123Z".parse()?));
        Ok(())
    }

    #[test]
    fn pubsub_delete_is_ignored() -> TestResult {
        let want = Payload::Records(vec![Ok(Record::Ignored {
            event_name: "OBJECT_DELETE".into(),
        })]);
        assert_eq!(parse(PUBSUB_DELETE.as_bytes())?, want);
        Ok(())
    }

    #[test]
    fn pubsub_without_payload_says_how_to_fix_it() -> TestResult {
        let mut push: Value = serde_json::from_str(PUBSUB_FINALIZE)?;
        push["message"]["attributes"]["payloadFormat"] = json!("NONE");
        if let Some(message) = push["message"].as_object_mut() {
            message.remove("data");
        }
        let Payload::Records(records) = parse(push.to_string().as_bytes())? else {
            panic!("expected records");
        };
        let [Err(SourceError::BadRecord { reason, .. })] = records.as_slice() else {
            panic!("expected a bad record, got {records:?}");
        };
        assert!(reason.contains("JSON_API_V1"), "{reason}");
        Ok(())
    }

    #[test]
    fn other_pubsub_messages_are_unknown() {
        let push = json!({"message": {"data": "aGk=", "messageId": "1"}, "subscription": "s"});
        let err = parse(push.to_string().as_bytes()).map(|_| ());
        let reason = "Pub/Sub message is no Cloud Storage notification (no eventType attribute)";
        assert_eq!(
            err,
            Err(SourceError::UnknownFormat {
                reason: reason.into()
            })
        );
    }
}
