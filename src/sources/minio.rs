//! MinIO bucket notifications delivered by its webhook target.
//!
//! MinIO posts `{"EventName": "s3:ObjectCreated:Put", "Key": "<bucket>/<key>", "Records": [...]}`
//! with one S3-shaped record inside, so the records go through [`crate::sources::s3`]. See
//! <https://min.io/docs/minio/linux/administration/monitoring/publish-events-to-webhook.html>.
//!
//! The wrapper's `Key` is the bucket and the already-decoded key joined by `/`, which cannot be
//! split back apart when the bucket is unknown; the record carries both separately, encoded like
//! S3's, so the wrapper fields are only used to recognize the format.

use serde_json::Value;

use crate::event::Provider;
use crate::sources::{Payload, SourceError, s3};

/// Whether a payload is a MinIO webhook body: S3 records under MinIO's `EventName` wrapper.
pub fn is_webhook(payload: &Value) -> bool {
    payload.get("EventName").is_some() && payload.get("Records").is_some()
}

/// Reads a payload [`is_webhook`] accepted. Records whose `eventSource` is missing count as
/// MinIO's.
pub fn read_webhook(mut payload: Value) -> Result<Payload, SourceError> {
    s3::read_records(payload.get_mut("Records").map(Value::take), Provider::Minio)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::ObjectCreated;
    use crate::sources::{Record, parse};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const PUT: &str = include_str!("../../tests/fixtures/minio/put.json");

    fn records(payload: &str) -> Result<Vec<Result<Record, SourceError>>, SourceError> {
        match parse(payload.as_bytes())? {
            Payload::Records(records) => Ok(records),
            other => panic!("expected records, got {other:?}"),
        }
    }

    #[test]
    fn webhook_put_maps_every_field() -> TestResult {
        let want = ObjectCreated {
            provider: Provider::Minio,
            event_name: "s3:ObjectCreated:Put".into(),
            bucket: "media-inbox".into(),
            key: "2024/holiday photo.jpg".into(),
            size: 3_145_728,
            content_type: Some("image/jpeg".into()),
            etag: Some("a1b2c3d4e5f60718293a4b5c6d7e8f90".into()),
            version_id: None,
            sequencer: Some("17BC4F3A2E0A1B2C".into()),
            event_time: Some("2024-03-14T11:45:09.812Z".parse()?),
            uploader: Some("herald-uploader".into()),
            source_ip: Some("192.168.1.50".into()),
            region: None,
        };
        assert_eq!(records(PUT)?, vec![Ok(Record::Created(want))]);
        Ok(())
    }

    #[test]
    fn records_without_event_source_count_as_minio() -> TestResult {
        let mut payload: Value = serde_json::from_str(PUT)?;
        if let Some(record) = payload
            .pointer_mut("/Records/0")
            .and_then(Value::as_object_mut)
        {
            record.remove("eventSource");
        }
        let got = records(&payload.to_string())?;
        let Some(Ok(Record::Created(event))) = got.first() else {
            panic!("expected a creation, got {got:?}");
        };
        assert_eq!(event.provider, Provider::Minio);
        Ok(())
    }

    #[test]
    fn webhook_delete_is_ignored() -> TestResult {
        let mut payload: Value = serde_json::from_str(PUT)?;
        payload["EventName"] = json!("s3:ObjectRemoved:Delete");
        payload["Records"][0]["eventName"] = json!("s3:ObjectRemoved:Delete");
        let want = Record::Ignored {
            event_name: "s3:ObjectRemoved:Delete".into(),
        };
        assert_eq!(records(&payload.to_string())?, vec![Ok(want)]);
        Ok(())
    }

    #[test]
    fn webhook_without_records_array_is_unknown() {
        let payload = br#"{"EventName":"s3:ObjectCreated:Put","Key":"b/k","Records":null}"#;
        let want = SourceError::UnknownFormat {
            reason: "\"Records\" is null, expected an array".into(),
        };
        assert_eq!(parse(payload), Err(want));
    }
}
