//! Azure Blob Storage events delivered by Event Grid, in the Event Grid schema (a JSON array
//! of events) or the CloudEvents 1.0 schema.
//!
//! Event shapes: <https://learn.microsoft.com/azure/event-grid/event-schema-blob-storage>.
//! What bites:
//!
//! - `Microsoft.Storage.BlobCreated` names the API call in `data.api`. Accounts with a
//!   hierarchical namespace (Data Lake) fire `CreateFile` when a file is opened and
//!   `FlushWithClose` when it is complete; only the second is an upload worth an email.
//! - The container and blob path come from `subject`
//!   (`/blobServices/default/containers/<container>/blobs/<path>`), where the path is as the
//!   uploader chose it, `/` included. `data.url` is the same path percent-encoded, so it is not
//!   used for the key.
//! - Before delivering anything, an Event Grid schema subscription sends a
//!   `Microsoft.EventGrid.SubscriptionValidationEvent` whose `validationCode` the endpoint must
//!   echo back (<https://learn.microsoft.com/azure/event-grid/webhook-event-delivery>). The
//!   HTTP runtime answers it; [`validation_code`] finds it.
//!
//! The container becomes the event's bucket; the storage account is not part of it.

use serde::Deserialize;
use serde_json::Value;

use crate::event::{ObjectCreated, Provider};
use crate::sources::cloudevents::CloudEvent;
use crate::sources::s3::{event_time, non_empty, unquote};
use crate::sources::{Payload, Record, SourceError, json_kind};

/// The type prefix of Azure Storage events.
pub const TYPE_PREFIX: &str = "Microsoft.Storage.";

/// The type of a new or replaced blob.
pub const BLOB_CREATED: &str = "Microsoft.Storage.BlobCreated";

/// The type of the handshake an Event Grid schema subscription starts with.
pub const SUBSCRIPTION_VALIDATION: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

/// `data.api` values of a `BlobCreated` that mean the blob is complete.
pub const NOTIFIED_APIS: [&str; 5] = [
    "PutBlob",
    "PutBlockList",
    "CopyBlob",
    "FlushWithClose",
    "SftpCommit",
];

/// The Data Lake call that creates an empty file before its content is flushed.
pub const CREATE_FILE: &str = "CreateFile";

const SUBJECT_PREFIX: &str = "/blobServices/default/containers/";

/// An event in the Event Grid schema; `data` is read once the type is known.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GridEvent {
    event_type: String,
    subject: Option<String>,
    event_time: Option<String>,
    data: Option<Value>,
}

/// `data` of a `BlobCreated`, as much of it as Herald maps.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlobCreatedData {
    api: String,
    content_type: Option<String>,
    content_length: Option<u64>,
    e_tag: Option<String>,
    sequencer: Option<String>,
}

/// Whether a payload is an array of Event Grid schema events.
pub fn is_event_grid(payload: &Value) -> bool {
    payload
        .as_array()
        .and_then(|events| events.first())
        .is_some_and(|event| event.get("eventType").is_some_and(Value::is_string))
}

/// The `validationCode` of a subscription validation event, when the payload is one.
pub fn validation_code(payload: &Value) -> Option<&str> {
    payload.as_array()?.iter().find_map(|event| {
        if event.get("eventType")?.as_str()? != SUBSCRIPTION_VALIDATION {
            return None;
        }
        event.pointer("/data/validationCode")?.as_str()
    })
}

/// Reads a payload [`is_event_grid`] accepted, event by event. A validation event makes the
/// whole payload a test event.
pub fn read_event_grid(payload: Value) -> Result<Payload, SourceError> {
    if validation_code(&payload).is_some() {
        return Ok(Payload::Test {
            kind: SUBSCRIPTION_VALIDATION.to_owned(),
        });
    }
    let Value::Array(events) = payload else {
        let reason = "Event Grid events come as a JSON array".to_owned();
        return Err(SourceError::UnknownFormat { reason });
    };
    let records = events.into_iter().enumerate();
    Ok(Payload::Records(
        records
            .map(|(index, event)| grid_event(index, event))
            .collect(),
    ))
}

/// Reads a `Microsoft.Storage.*` CloudEvent.
pub fn read_cloudevent(event: CloudEvent) -> Result<Payload, SourceError> {
    let record = blob_event(0, event.kind, event.subject, event.time, event.data);
    Ok(Payload::Records(vec![record]))
}

fn grid_event(index: usize, event: Value) -> Result<Record, SourceError> {
    if !event.is_object() {
        let reason = format!("event is {}, expected an object", json_kind(&event));
        return Err(bad_record(index, reason));
    }
    let event: GridEvent =
        serde_json::from_value(event).map_err(|err| bad_record(index, err.to_string()))?;
    blob_event(
        index,
        event.event_type,
        event.subject,
        event.event_time,
        event.data,
    )
}

/// One event of either schema: a complete blob is an upload, everything else is ignored.
fn blob_event(
    index: usize,
    kind: String,
    subject: Option<String>,
    time: Option<String>,
    data: Option<Value>,
) -> Result<Record, SourceError> {
    if kind != BLOB_CREATED {
        return Ok(Record::Ignored { event_name: kind });
    }
    let data: BlobCreatedData = serde_json::from_value(data.unwrap_or(Value::Null))
        .map_err(|err| bad_record(index, format!("BlobCreated data: {err}")))?;
    let event_name = format!("{kind}:{}", data.api);
    if !NOTIFIED_APIS.contains(&data.api.as_str()) {
        // CreateFile opens an empty Data Lake file whose FlushWithClose follows; an API not
        // in the list is not known to mean a complete blob, so it is counted, not mailed.
        return Ok(Record::Ignored { event_name });
    }
    let subject = subject.unwrap_or_default();
    let (container, path) = split_subject(&subject).map_err(|reason| bad_record(index, reason))?;
    let size = data
        .content_length
        .ok_or_else(|| bad_record(index, "BlobCreated event has no data.contentLength"))?;

    Ok(Record::Created(ObjectCreated {
        provider: Provider::Azure,
        event_name,
        bucket: container.to_owned(),
        key: path.to_owned(),
        size,
        content_type: non_empty(data.content_type),
        etag: non_empty(data.e_tag.map(unquote)),
        version_id: None,
        sequencer: non_empty(data.sequencer),
        event_time: event_time(time).map_err(|reason| bad_record(index, reason))?,
        uploader: None,
        source_ip: None,
        region: None,
    }))
}

/// Container and blob path of `/blobServices/default/containers/<container>/blobs/<path>`.
/// Container names cannot contain `/`, so the first `/blobs/` after the prefix ends it.
fn split_subject(subject: &str) -> Result<(&str, &str), String> {
    let shown = || subject.chars().take(120).collect::<String>();
    let rest = subject
        .strip_prefix(SUBJECT_PREFIX)
        .ok_or_else(|| format!("subject {:?} does not name a blob", shown()))?;
    match rest.split_once("/blobs/") {
        Some((container, path)) if !container.is_empty() && !path.is_empty() => {
            Ok((container, path))
        }
        _ => Err(format!("subject {:?} does not name a blob", shown())),
    }
}

fn bad_record(index: usize, reason: impl Into<String>) -> SourceError {
    SourceError::BadRecord {
        index,
        reason: reason.into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::sources::parse;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    pub(crate) const PUT_BLOB: &str =
        include_str!("../../tests/fixtures/azure/blob_created_put_blob.json");
    pub(crate) const DATA_LAKE: &str =
        include_str!("../../tests/fixtures/azure/data_lake_create_then_flush.json");
    pub(crate) const VALIDATION: &str =
        include_str!("../../tests/fixtures/azure/subscription_validation.json");
    pub(crate) const CLOUDEVENT: &str =
        include_str!("../../tests/fixtures/azure/cloudevent_put_block_list.json");
    const DELETED: &str = include_str!("../../tests/fixtures/azure/blob_deleted.json");

    fn records(payload: &str) -> Result<Vec<Result<Record, SourceError>>, SourceError> {
        match parse(payload.as_bytes())? {
            Payload::Records(records) => Ok(records),
            other => panic!("expected records, got {other:?}"),
        }
    }

    #[test]
    fn put_blob_maps_every_field_and_keeps_the_path_as_sent() -> TestResult {
        let want = ObjectCreated {
            provider: Provider::Azure,
            event_name: "Microsoft.Storage.BlobCreated:PutBlob".into(),
            bucket: "contracts".into(),
            key: "2024/Vertrag Müller & Söhne (signed).pdf".into(),
            size: 2_097_152,
            content_type: Some("application/pdf".into()),
            etag: Some("0x8DC83A1B2C3D4E5".into()),
            version_id: None,
            sequencer: Some("00000000000000000000000000017a4e0000000000c3b1d2".into()),
            event_time: Some("2024-06-03T14:21:07.4521938Z".parse()?),
            uploader: None,
            source_ip: None,
            region: None,
        };
        assert_eq!(records(PUT_BLOB)?, vec![Ok(Record::Created(want))]);
        Ok(())
    }

    #[test]
    fn data_lake_create_file_is_ignored_and_flush_is_the_upload() -> TestResult {
        let got = records(DATA_LAKE)?;
        let [
            Ok(Record::Ignored { event_name }),
            Ok(Record::Created(event)),
        ] = got.as_slice()
        else {
            panic!("expected CreateFile ignored then an upload, got {got:?}");
        };
        assert_eq!(event_name, "Microsoft.Storage.BlobCreated:CreateFile");
        assert_eq!(
            event.event_name,
            "Microsoft.Storage.BlobCreated:FlushWithClose"
        );
        assert_eq!(event.bucket, "raw");
        assert_eq!(event.key, "telemetry/2024/06/03/batch-0007.parquet");
        assert_eq!(event.size, 6_442_450_944);
        Ok(())
    }

    #[test]
    fn validation_event_is_a_test_with_its_code() -> TestResult {
        let payload: Value = serde_json::from_str(VALIDATION)?;
        assert_eq!(
            validation_code(&payload),
            Some("512d38b6-c7b8-40c8-89fe-f46f9e9622b6")
        );
        let want = Payload::Test {
            kind: SUBSCRIPTION_VALIDATION.into(),
        };
        assert_eq!(parse(VALIDATION.as_bytes())?, want);
        Ok(())
    }

    #[test]
    fn blob_deleted_is_ignored() -> TestResult {
        let ignored = Record::Ignored {
            event_name: "Microsoft.Storage.BlobDeleted".into(),
        };
        assert_eq!(records(DELETED)?, vec![Ok(ignored)]);
        Ok(())
    }

    #[test]
    fn cloudevents_schema_reads_the_same_fields() -> TestResult {
        let got = records(CLOUDEVENT)?;
        let [Ok(Record::Created(event))] = got.as_slice() else {
            panic!("expected one upload, got {got:?}");
        };
        assert_eq!(
            event.event_name,
            "Microsoft.Storage.BlobCreated:PutBlockList"
        );
        assert_eq!(event.bucket, "media");
        assert_eq!(event.key, "videos/keynote 2024.mp4");
        assert_eq!(event.size, 734_003_200);
        assert_eq!(event.etag.as_deref(), Some("0x8DC83A1C0D1E2F3"));
        Ok(())
    }

    #[test]
    fn a_subject_naming_no_blob_fails_only_its_event() -> TestResult {
        let mut events: Value = serde_json::from_str(DATA_LAKE)?;
        events[1]["subject"] = json!("/blobServices/default/containers/raw");
        let got = records(&events.to_string())?;
        let want = bad_record(
            1,
            "subject \"/blobServices/default/containers/raw\" does not name a blob",
        );
        assert_eq!(got.get(1), Some(&Err(want)));
        assert!(matches!(got.first(), Some(Ok(Record::Ignored { .. }))));
        Ok(())
    }
}
