//! Amazon EventBridge: S3's "Object Created" events.
//!
//! With EventBridge notifications turned on, S3 sends one event per change, shaped
//! `{"detail-type": "Object Created", "source": "aws.s3", "detail": {...}}` and documented at
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html>. It differs from the
//! S3 notification format in ways that matter: `detail` fields are kebab-case
//! (`version-id`, `source-ip-address`), the ETag field is lowercase `etag`, keys are *not*
//! form-encoded (a `+` is a plus sign), and `reason` names the API call that created the
//! object (`PutObject`, `CopyObject`, `CompleteMultipartUpload`).

use serde::Deserialize;
use serde_json::Value;

use crate::event::{ObjectCreated, Provider};
use crate::sources::s3::{event_time, non_empty, unquote};
use crate::sources::{Payload, Record, SourceError};

/// The `source` of events S3 sends to EventBridge.
pub const SOURCE: &str = "aws.s3";

/// The `detail-type` of an upload; S3's other types (`Object Deleted`, `Object Restore
/// Completed`, ...) are ignored.
pub const OBJECT_CREATED: &str = "Object Created";

/// The envelope; `detail` is read separately once the type is known to be an upload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Event {
    detail_type: String,
    time: Option<String>,
    region: Option<String>,
    detail: Detail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Detail {
    bucket: Bucket,
    object: Object,
    /// The account or service principal that made the request.
    requester: Option<String>,
    source_ip_address: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Object {
    key: String,
    size: Option<u64>,
    etag: Option<String>,
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// Whether a payload is an EventBridge event from S3.
pub fn is_event(payload: &Value) -> bool {
    payload.get("source").and_then(Value::as_str) == Some(SOURCE)
        && payload.get("detail-type").and_then(Value::as_str).is_some()
        && payload.get("detail").is_some()
}

/// Reads a payload [`is_event`] accepted: one record, an upload or an ignored event.
pub fn read_event(payload: Value) -> Result<Payload, SourceError> {
    let detail_type = payload.get("detail-type").and_then(Value::as_str);
    if detail_type != Some(OBJECT_CREATED) {
        let event_name = detail_type.unwrap_or_default().to_owned();
        return Ok(Payload::Records(vec![Ok(Record::Ignored { event_name })]));
    }
    let record = serde_json::from_value(payload)
        .map_err(|err| bad_record(err.to_string()))
        .and_then(created)
        .map(Record::Created);
    Ok(Payload::Records(vec![record]))
}

/// Maps an "Object Created" event onto the normalized event. The key is used as sent.
fn created(event: Event) -> Result<ObjectCreated, SourceError> {
    let Detail {
        bucket,
        object,
        requester,
        source_ip_address,
        reason,
    } = event.detail;
    if bucket.name.is_empty() {
        return Err(bad_record("detail.bucket.name is empty"));
    }
    if object.key.is_empty() {
        return Err(bad_record("detail.object.key is empty"));
    }
    let size = object
        .size
        .ok_or_else(|| bad_record("Object Created event has no detail.object.size"))?;

    Ok(ObjectCreated {
        provider: Provider::Aws,
        event_name: event_name(&event.detail_type, reason.as_deref()),
        bucket: bucket.name,
        key: object.key,
        size,
        content_type: None,
        etag: non_empty(object.etag.map(unquote)),
        version_id: non_empty(object.version_id),
        sequencer: non_empty(object.sequencer),
        event_time: event_time(event.time).map_err(bad_record)?,
        uploader: non_empty(requester),
        source_ip: non_empty(source_ip_address),
        region: non_empty(event.region),
    })
}

/// `Object Created:PutObject`: the detail type and the API call, both as EventBridge names
/// them, in the `<what>:<how>` shape of S3's own `ObjectCreated:Put`.
fn event_name(detail_type: &str, reason: Option<&str>) -> String {
    match reason.filter(|reason| !reason.is_empty()) {
        Some(reason) => format!("{detail_type}:{reason}"),
        None => detail_type.to_owned(),
    }
}

/// EventBridge delivers one event at a time, so the record is always the first.
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
    use crate::sources::parse;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const CREATED: &str = include_str!("../../tests/fixtures/eventbridge/object_created.json");

    /// The upload in `object_created.json`: 2.4 GB, a key with spaces and a `+`.
    pub(crate) fn large_upload() -> Result<ObjectCreated, jiff::Error> {
        Ok(ObjectCreated {
            provider: Provider::Aws,
            event_name: "Object Created:CompleteMultipartUpload".into(),
            bucket: "acme-media".into(),
            key: "videos/Launch day+final cut.mp4".into(),
            size: 2_400_000_000,
            content_type: None,
            etag: Some("a3f1c9e27b5d4e8f9a0b1c2d3e4f5a6b-287".into()),
            version_id: Some("Zr8kDm3QbX5tYw1vN7uL2sA9pH4jF6gE".into()),
            sequencer: Some("0066A1C0FFEE123456".into()),
            event_time: Some("2024-06-03T15:02:44Z".parse()?),
            uploader: Some("111122223333".into()),
            source_ip: Some("198.51.100.42".into()),
            region: Some("eu-west-1".into()),
        })
    }

    fn created(payload: &str) -> Result<Payload, SourceError> {
        parse(payload.as_bytes())
    }

    #[test]
    fn object_created_maps_every_field_and_keeps_the_key() -> TestResult {
        let want = Payload::Records(vec![Ok(Record::Created(large_upload()?))]);
        assert_eq!(created(CREATED)?, want);
        Ok(())
    }

    #[test]
    fn copy_keeps_its_reason() -> TestResult {
        let payload = include_str!("../../tests/fixtures/eventbridge/copy.json");
        let Payload::Records(records) = created(payload)? else {
            panic!("an event is a record");
        };
        let [Ok(Record::Created(event))] = records.as_slice() else {
            panic!("expected one creation, got {records:?}");
        };
        assert_eq!(event.event_name, "Object Created:CopyObject");
        assert_eq!(event.key, "shared/Brand guide (v2).pdf");
        assert_eq!(event.size, 1_048_576);
        Ok(())
    }

    #[test]
    fn object_deleted_is_ignored() -> TestResult {
        let payload = include_str!("../../tests/fixtures/eventbridge/object_deleted.json");
        let ignored = Record::Ignored {
            event_name: "Object Deleted".into(),
        };
        assert_eq!(created(payload)?, Payload::Records(vec![Ok(ignored)]));
        Ok(())
    }

    #[test]
    fn percent_signs_in_keys_stay_as_sent() -> TestResult {
        let mut payload: Value = serde_json::from_str(CREATED)?;
        payload["detail"]["object"]["key"] = json!("a%2Bb%20c.txt");
        let Payload::Records(records) = created(&payload.to_string())? else {
            panic!("an event is a record");
        };
        let [Ok(Record::Created(event))] = records.as_slice() else {
            panic!("expected one creation, got {records:?}");
        };
        assert_eq!(event.key, "a%2Bb%20c.txt");
        Ok(())
    }

    #[test]
    fn missing_size_is_a_bad_record() -> TestResult {
        let mut payload: Value = serde_json::from_str(CREATED)?;
        if let Some(object) = payload["detail"]["object"].as_object_mut() {
            object.remove("size");
        }
        let want = bad_record("Object Created event has no detail.object.size");
        assert_eq!(
            created(&payload.to_string())?,
            Payload::Records(vec![Err(want)])
        );
        Ok(())
    }

    #[test]
    fn other_sources_are_not_s3_events() {
        let payload = json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change \
                             Notification", "detail": {}});
        assert!(!is_event(&payload));
    }
}
