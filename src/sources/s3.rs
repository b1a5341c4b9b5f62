//! Amazon S3 event notifications: the `{"Records": [...]}` payload and the `s3:TestEvent`.
//!
//! The record shape is documented at
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>.
//! MinIO and other S3-compatible servers send the same records, which is why [`read_records`]
//! takes the provider to assume when `eventSource` does not name one.
//!
//! Every record is deserialized and normalized on its own, so one malformed record yields an
//! error in its slot while its neighbours still parse.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use crate::event::{ObjectCreated, Provider};
use crate::sources::key::decode_key;
use crate::sources::{Payload, Record, SourceError, json_kind};

/// The `Event` value of the message S3 sends when a notification configuration is saved.
pub const TEST_EVENT: &str = "s3:TestEvent";

/// One entry of `Records`. Unknown fields are ignored; only what Herald maps is read.
///
/// `eventVersion` is checked before this is deserialized (see [`check_version`]), so a
/// different major version is reported as such rather than as a confusing missing field.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    event_source: Option<String>,
    aws_region: Option<String>,
    event_time: Option<String>,
    event_name: String,
    user_identity: Option<UserIdentity>,
    request_parameters: Option<RequestParameters>,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity {
    principal_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RequestParameters {
    #[serde(rename = "sourceIPAddress")]
    source_ip_address: Option<String>,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Debug, Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Object {
    key: String,
    /// Absent on `ObjectRemoved` records, required on `ObjectCreated` ones.
    size: Option<u64>,
    #[serde(rename = "eTag")]
    etag: Option<String>,
    version_id: Option<String>,
    sequencer: Option<String>,
    /// Sent by MinIO; AWS leaves it out.
    content_type: Option<String>,
}

/// Whether a payload is the S3 test event, e.g.
/// `{"Service": "Amazon S3", "Event": "s3:TestEvent", ...}`.
pub fn is_test_event(payload: &Value) -> bool {
    payload.get("Service").and_then(Value::as_str) == Some("Amazon S3")
        && payload.get("Event").and_then(Value::as_str) == Some(TEST_EVENT)
}

/// Reads a payload [`is_test_event`] accepted.
pub fn read_test_event(_payload: Value) -> Result<Payload, SourceError> {
    Ok(Payload::Test {
        kind: TEST_EVENT.to_owned(),
    })
}

/// Whether a payload carries S3 event records at the top level.
pub fn is_notification(payload: &Value) -> bool {
    payload.get("Records").is_some()
}

/// Reads an S3 event notification sent by AWS.
pub fn read_notification(mut payload: Value) -> Result<Payload, SourceError> {
    read_records(payload.get_mut("Records").map(Value::take), Provider::Aws)
}

/// Normalizes a `Records` value, record by record.
///
/// `default` is the provider assumed when a record's `eventSource` is neither `aws:s3` nor
/// `minio:s3` (absent, or another S3-compatible server's own name).
pub fn read_records(records: Option<Value>, default: Provider) -> Result<Payload, SourceError> {
    let records = match records {
        Some(Value::Array(records)) => records,
        Some(other) => {
            let reason = format!("\"Records\" is {}, expected an array", json_kind(&other));
            return Err(SourceError::UnknownFormat { reason });
        }
        None => {
            let reason = "JSON object has no \"Records\" array".to_owned();
            return Err(SourceError::UnknownFormat { reason });
        }
    };
    let records = records.into_iter().enumerate();
    Ok(Payload::Records(
        records
            .map(|(index, record)| normalize(index, record, default))
            .collect(),
    ))
}

/// Normalizes the record at `index` of a payload.
pub fn normalize(index: usize, record: Value, default: Provider) -> Result<Record, SourceError> {
    if !record.is_object() {
        let reason = format!("record is {}, expected an object", json_kind(&record));
        return Err(bad_record(index, reason));
    }
    check_version(record.get("eventVersion")).map_err(|reason| bad_record(index, reason))?;
    let record: S3Record =
        serde_json::from_value(record).map_err(|err| bad_record(index, err.to_string()))?;

    if !is_object_created(&record.event_name) {
        return Ok(Record::Ignored {
            event_name: record.event_name,
        });
    }
    created(index, record, default).map(Record::Created)
}

/// Accepts any `2.x`: S3 raises the minor version when it adds fields or event types, so a
/// newer minor still carries what Herald reads. A new major version would announce a shape
/// Herald has not seen, so it is refused rather than half understood.
fn check_version(version: Option<&Value>) -> Result<(), String> {
    let Some(version) = version else {
        return Err("eventVersion is missing".to_owned());
    };
    let Some(text) = version.as_str() else {
        return Err(format!(
            "eventVersion is {}, expected a string",
            json_kind(version)
        ));
    };
    let minor = text.strip_prefix("2.").unwrap_or("");
    if minor.is_empty() || !minor.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "eventVersion {text:?} is not supported; herald reads version 2.x records"
        ));
    }
    Ok(())
}

/// `ObjectCreated:Put`, `:Post`, `:Copy`, `:CompleteMultipartUpload` and any future
/// `ObjectCreated:*`. MinIO prefixes the same names with `s3:`.
fn is_object_created(event_name: &str) -> bool {
    let name = event_name.strip_prefix("s3:").unwrap_or(event_name);
    name.starts_with("ObjectCreated:")
}

/// Maps an `ObjectCreated` record onto the normalized event.
fn created(
    index: usize,
    record: S3Record,
    default: Provider,
) -> Result<ObjectCreated, SourceError> {
    let S3Entity { bucket, object } = record.s3;
    if bucket.name.is_empty() {
        return Err(bad_record(index, "s3.bucket.name is empty"));
    }
    let key = object_key(index, &object.key)?;
    let size = object
        .size
        .ok_or_else(|| bad_record(index, "ObjectCreated record has no s3.object.size"))?;
    let event_time = event_time(record.event_time).map_err(|reason| bad_record(index, reason))?;

    Ok(ObjectCreated {
        provider: provider(record.event_source.as_deref(), default),
        event_name: record.event_name,
        bucket: bucket.name,
        key,
        size,
        content_type: non_empty(object.content_type),
        etag: non_empty(object.etag.map(unquote)),
        version_id: non_empty(object.version_id),
        sequencer: non_empty(object.sequencer),
        event_time,
        uploader: non_empty(record.user_identity.and_then(|user| user.principal_id)),
        source_ip: non_empty(
            record
                .request_parameters
                .and_then(|req| req.source_ip_address),
        ),
        region: non_empty(record.aws_region),
    })
}

/// Decodes the record's key; an empty key is no object at all.
fn object_key(index: usize, raw: &str) -> Result<String, SourceError> {
    if raw.is_empty() {
        return Err(bad_record(index, "s3.object.key is empty"));
    }
    decode_key(raw).map_err(|err| SourceError::BadKey {
        index,
        raw: err.raw,
        reason: err.problem.to_string(),
    })
}

fn bad_record(index: usize, reason: impl Into<String>) -> SourceError {
    SourceError::BadRecord {
        index,
        reason: reason.into(),
    }
}

fn provider(event_source: Option<&str>, default: Provider) -> Provider {
    match event_source {
        Some("aws:s3") => Provider::Aws,
        Some("minio:s3") => Provider::Minio,
        _ => default,
    }
}

/// Parses `eventTime` as RFC 3339; an absent or empty one is `None`.
pub(crate) fn event_time(value: Option<String>) -> Result<Option<Timestamp>, String> {
    let Some(text) = non_empty(value) else {
        return Ok(None);
    };
    text.parse::<Timestamp>()
        .map(Some)
        .map_err(|err| format!("eventTime {text:?} is not an RFC 3339 timestamp: {err}"))
}

/// S3 sends the ETag bare, but the HTTP header form is quoted and some servers copy it.
pub(crate) fn unquote(etag: String) -> String {
    match etag
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) => inner.to_owned(),
        None => etag,
    }
}

/// Servers fill optional fields with `""` (MinIO's `awsRegion`, for one); that means unknown.
pub(crate) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sources::parse;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const PUT: &str = include_str!("../../tests/fixtures/s3/put.json");

    /// The records of a payload that must be an event notification.
    fn records(payload: &str) -> Result<Vec<Result<Record, SourceError>>, SourceError> {
        match parse(payload.as_bytes())? {
            Payload::Records(records) => Ok(records),
            other => panic!("expected records, got {other:?}"),
        }
    }

    /// The one record of a single-record payload.
    fn single(payload: &str) -> Result<Record, SourceError> {
        let mut records = records(payload)?;
        assert_eq!(records.len(), 1, "record count");
        records.remove(0)
    }

    /// `put.json` with one field replaced, addressed by JSON pointer below the record.
    fn put_with(pointer: &str, value: Value) -> Result<String, serde_json::Error> {
        let mut payload: Value = serde_json::from_str(PUT)?;
        let path = format!("/Records/0{pointer}");
        match payload.pointer_mut(&path) {
            Some(slot) => *slot = value,
            None => panic!("put.json has no {path}"),
        }
        serde_json::to_string(&payload)
    }

    /// The fields every `acme-uploads` fixture shares, uploaded by the same IAM user.
    fn acme(event_name: &str, key: &str, size: u64, etag: &str, sequencer: &str) -> ObjectCreated {
        ObjectCreated {
            provider: Provider::Aws,
            event_name: event_name.into(),
            bucket: "acme-uploads".into(),
            key: key.into(),
            size,
            content_type: None,
            etag: Some(etag.into()),
            version_id: None,
            sequencer: Some(sequencer.into()),
            event_time: None,
            uploader: Some("AWS:AIDAQ4EXAMPLEUPLOADER".into()),
            source_ip: Some("203.0.113.24".into()),
            region: Some("eu-west-1".into()),
        }
    }

    fn at(time: &str) -> Result<Option<Timestamp>, jiff::Error> {
        time.parse().map(Some)
    }

    #[test]
    fn records_that_are_not_objects_say_so() -> TestResult {
        let found = records(r#"{"Records":[1,"x",null]}"#)?;
        let kinds = ["a number", "a string", "null"];
        for (index, (record, kind)) in found.into_iter().zip(kinds).enumerate() {
            let reason = format!("record is {kind}, expected an object");
            assert_eq!(record, Err(SourceError::BadRecord { index, reason }));
        }
        Ok(())
    }

    #[test]
    fn put_maps_every_field() -> TestResult {
        let mut want = acme(
            "ObjectCreated:Put",
            "invoices/2024/INV-0042.pdf",
            48213,
            "7e3a2f1c9b8d4e6f0a1b2c3d4e5f6a7b",
            "0065F2C1D5A8E1B3C4",
        );
        want.version_id = Some("Ql7qgY2kGk9uJ0fTz6d8bHq3vX5nW1pA".into());
        want.event_time = at("2024-03-14T09:26:53.589Z")?;
        assert_eq!(single(PUT)?, Record::Created(want));
        Ok(())
    }

    #[test]
    fn multipart_keeps_the_part_count_etag() -> TestResult {
        let mut want = acme(
            "ObjectCreated:CompleteMultipartUpload",
            "backups/db-2024-03-14.tar.gz",
            157_286_400,
            "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c-19",
            "0065F2D0A1B2C3D4E5",
        );
        want.event_time = at("2024-03-14T10:02:11.204Z")?;
        want.uploader = Some("AWS:AROAQ4EXAMPLEROLE:nightly-backup".into());
        want.source_ip = Some("198.51.100.7".into());
        let payload = include_str!("../../tests/fixtures/s3/multipart.json");
        assert_eq!(single(payload)?, Record::Created(want));
        Ok(())
    }

    #[test]
    fn copy_is_a_creation() -> TestResult {
        let mut want = acme(
            "ObjectCreated:Copy",
            "archive/2024/INV-0042.pdf",
            48213,
            "7e3a2f1c9b8d4e6f0a1b2c3d4e5f6a7b",
            "0065F2C3E7F8A9B0C1",
        );
        want.version_id = Some("Xb3mT9cL0vR2sK8eQ1wN4yH6jD7fG5aZ".into());
        want.event_time = at("2024-03-14T09:31:05.117Z")?;
        let payload = include_str!("../../tests/fixtures/s3/copy.json");
        assert_eq!(single(payload)?, Record::Created(want));
        Ok(())
    }

    #[test]
    fn multi_record_keeps_order() -> TestResult {
        let expected = [
            (
                "ObjectCreated:Put",
                "inbox/a.csv",
                1200,
                "0cc175b9c0f1b6a831c399e269772661",
            ),
            (
                "ObjectCreated:Post",
                "inbox/b.csv",
                2400,
                "92eb5ffee6ae2fec3ad71c777531578f",
            ),
            (
                "ObjectCreated:Put",
                "inbox/c.csv",
                3600,
                "4a8a08f09d37b73795649038408b5f33",
            ),
        ];
        let payload = include_str!("../../tests/fixtures/s3/multi_record.json");
        let got = records(payload)?;
        assert_eq!(got.len(), expected.len());
        for (n, (record, (name, key, size, etag))) in got.into_iter().zip(expected).enumerate() {
            let letter = ["A", "B", "C"][n];
            let mut want = acme(
                name,
                key,
                size,
                etag,
                &format!("0065F4000000000{letter}0{}", n + 1),
            );
            want.event_time = at(&format!("2024-03-15T08:00:00.00{}Z", n + 1))?;
            assert_eq!(record?, Record::Created(want), "record {n}");
        }
        Ok(())
    }

    #[test]
    fn keys_are_decoded_once() -> TestResult {
        let cases = [
            (
                include_str!("../../tests/fixtures/s3/key_plus.json"),
                "reports/Q3 report (final).pdf",
                20480,
            ),
            (
                include_str!("../../tests/fixtures/s3/key_encoded_plus.json"),
                "a+b.txt",
                3,
            ),
            (
                include_str!("../../tests/fixtures/s3/key_colon.json"),
                "logs/2024-01-01T10:00:00.log",
                5120,
            ),
            (
                include_str!("../../tests/fixtures/s3/key_utf8.json"),
                "photos/Caf\u{e9} Z\u{fc}rich \u{6771}\u{4eac}.jpg",
                2_097_152,
            ),
            (
                include_str!("../../tests/fixtures/s3/folder_placeholder.json"),
                "photos/2024/",
                0,
            ),
        ];
        for (payload, key, size) in cases {
            let Record::Created(event) = single(payload)? else {
                panic!("{key:?} was not a creation");
            };
            assert_eq!((event.key.as_str(), event.size), (key, size));
        }
        Ok(())
    }

    #[test]
    fn key_with_encoded_slashes_maps_every_field() -> TestResult {
        let mut want = acme(
            "ObjectCreated:Put",
            "folder/sub/file.txt",
            11,
            "5eb63bbbe01eeed093cb22bb8f5acdc3",
            "0065F2E10000000404",
        );
        want.event_time = at("2024-03-14T12:00:04.000Z")?;
        want.uploader = Some("AIDAJDPLRKLG7UEXAMPLE".into());
        want.source_ip = Some("127.0.0.1".into());
        want.region = Some("us-east-1".into());
        let payload = include_str!("../../tests/fixtures/s3/key_slash.json");
        assert_eq!(single(payload)?, Record::Created(want));
        Ok(())
    }

    #[test]
    fn folder_placeholder_is_reported_as_such() -> TestResult {
        let mut want = acme(
            "ObjectCreated:Put",
            "photos/2024/",
            0,
            "d41d8cd98f00b204e9800998ecf8427e",
            "0065F2E10000000606",
        );
        want.event_time = at("2024-03-14T12:00:06.000Z")?;
        assert!(want.is_folder_placeholder());
        let payload = include_str!("../../tests/fixtures/s3/folder_placeholder.json");
        assert_eq!(single(payload)?, Record::Created(want));
        Ok(())
    }

    #[test]
    fn sizes_above_four_gib_survive() -> TestResult {
        let mut want = acme(
            "ObjectCreated:CompleteMultipartUpload",
            "video/raw/keynote-4k.mov",
            5_368_709_120,
            "c9a4f3e2d1b0a9f8e7d6c5b4a3928170-640",
            "0065F2F1B0C1D2E3F4",
        );
        want.event_time = at("2024-03-14T13:47:22.930Z")?;
        let payload = include_str!("../../tests/fixtures/s3/size_5gib.json");
        assert_eq!(single(payload)?, Record::Created(want));
        Ok(())
    }

    #[test]
    fn event_version_2_6_is_accepted() -> TestResult {
        let mut want = acme(
            "ObjectCreated:Put",
            "data/export.parquet",
            73_400_320,
            "d8e8fca2dc0f896fd7cb4cb0031ba249",
            "00683D5A3E0F1A2B3C",
        );
        want.event_time = at("2025-06-02T07:15:42.061Z")?;
        let payload = include_str!("../../tests/fixtures/s3/event_version_2_6.json");
        assert_eq!(single(payload)?, Record::Created(want));
        Ok(())
    }

    #[test]
    fn any_2_x_version_is_accepted() -> TestResult {
        for version in ["2.0", "2.2", "2.3", "2.10"] {
            let payload = put_with("/eventVersion", json!(version))?;
            assert!(matches!(single(&payload)?, Record::Created(_)), "{version}");
        }
        Ok(())
    }

    #[test]
    fn other_versions_are_bad_records() -> TestResult {
        let cases = [
            (
                json!("3.0"),
                "eventVersion \"3.0\" is not supported; herald reads version 2.x records",
            ),
            (
                json!("1.0"),
                "eventVersion \"1.0\" is not supported; herald reads version 2.x records",
            ),
            (
                json!("2"),
                "eventVersion \"2\" is not supported; herald reads version 2.x records",
            ),
            (
                json!("2.x"),
                "eventVersion \"2.x\" is not supported; herald reads version 2.x records",
            ),
            (json!(2.1), "eventVersion is a number, expected a string"),
            (Value::Null, "eventVersion is null, expected a string"),
        ];
        for (version, reason) in cases {
            let payload = put_with("/eventVersion", version)?;
            assert_eq!(single(&payload), Err(bad_record(0, reason)));
        }
        Ok(())
    }

    #[test]
    fn missing_version_is_a_bad_record() -> TestResult {
        let mut payload: Value = serde_json::from_str(PUT)?;
        if let Some(record) = payload
            .pointer_mut("/Records/0")
            .and_then(Value::as_object_mut)
        {
            record.remove("eventVersion");
        }
        let got = single(&payload.to_string());
        assert_eq!(got, Err(bad_record(0, "eventVersion is missing")));
        Ok(())
    }

    #[test]
    fn delete_is_ignored() {
        let payload = include_str!("../../tests/fixtures/s3/delete.json");
        let want = Record::Ignored {
            event_name: "ObjectRemoved:Delete".into(),
        };
        assert_eq!(single(payload), Ok(want));
    }

    #[test]
    fn event_names_are_matched_by_prefix() -> TestResult {
        let cases = [
            ("ObjectCreated:SomethingNew", true),
            ("s3:ObjectCreated:Put", true),
            ("s3:ObjectRemoved:Delete", false),
            ("ObjectRestore:Completed", false),
            ("LifecycleExpiration:Delete", false),
            ("ObjectCreated", false),
        ];
        for (name, created) in cases {
            let payload = put_with("/eventName", json!(name))?;
            let got = single(&payload)?;
            let want_ignored = Record::Ignored {
                event_name: name.into(),
            };
            assert_eq!(matches!(got, Record::Created(_)), created, "{name}");
            assert!(created || got == want_ignored, "{name}");
        }
        Ok(())
    }

    #[test]
    fn one_bad_record_leaves_the_others() -> TestResult {
        let mut good = acme(
            "ObjectCreated:Put",
            "inbox/good.txt",
            42,
            "9e107d9d372bb6826bd81d3542a419d6",
            "0065F4100000000001",
        );
        good.event_time = at("2024-03-15T09:10:11.000Z")?;
        let payload = include_str!("../../tests/fixtures/s3/mixed_bad_record.json");
        let want = vec![
            Ok(Record::Created(good)),
            Err(bad_record(1, "ObjectCreated record has no s3.object.size")),
        ];
        assert_eq!(records(payload)?, want);
        Ok(())
    }

    #[test]
    fn test_event_is_a_control_message() {
        let payload = include_str!("../../tests/fixtures/s3/test_event.json");
        let want = Payload::Test {
            kind: "s3:TestEvent".into(),
        };
        assert_eq!(parse(payload.as_bytes()), Ok(want));
    }

    #[test]
    fn undecodable_key_names_the_raw_key() -> TestResult {
        let payload = put_with("/s3/object/key", json!("inbox/100%.txt"))?;
        let want = SourceError::BadKey {
            index: 0,
            raw: "inbox/100%.txt".into(),
            reason: "'%' at byte 9 is not followed by two hex digits".into(),
        };
        assert_eq!(single(&payload), Err(want));
        Ok(())
    }

    #[test]
    fn unparsable_event_time_is_a_bad_record() -> TestResult {
        let payload = put_with("/eventTime", json!("yesterday"))?;
        let Err(SourceError::BadRecord { index: 0, reason }) = single(&payload) else {
            panic!("expected a bad record");
        };
        let prefix = "eventTime \"yesterday\" is not an RFC 3339 timestamp: ";
        assert!(reason.starts_with(prefix), "{reason}");
        Ok(())
    }

    #[test]
    fn wrong_field_types_are_bad_records() -> TestResult {
        let payload = put_with("/s3/object/size", json!("big"))?;
        let reason = "invalid type: string \"big\", expected u64";
        assert_eq!(single(&payload), Err(bad_record(0, reason)));

        let payload = put_with("/s3/object/size", json!(-1))?;
        let reason = "invalid value: integer `-1`, expected u64";
        assert_eq!(single(&payload), Err(bad_record(0, reason)));
        Ok(())
    }

    #[test]
    fn missing_bucket_or_key_are_bad_records() -> TestResult {
        let payload = put_with("/s3/object/key", json!(""))?;
        assert_eq!(
            single(&payload),
            Err(bad_record(0, "s3.object.key is empty"))
        );

        let payload = put_with("/s3/bucket", json!({}))?;
        assert_eq!(single(&payload), Err(bad_record(0, "missing field `name`")));
        Ok(())
    }

    #[test]
    fn empty_optional_fields_are_none() -> TestResult {
        let mut payload: Value = serde_json::from_str(&put_with("/awsRegion", json!(""))?)?;
        for pointer in [
            "/eventTime",
            "/userIdentity/principalId",
            "/requestParameters/sourceIPAddress",
            "/s3/object/versionId",
            "/s3/object/sequencer",
            "/s3/object/eTag",
        ] {
            if let Some(slot) = payload.pointer_mut(&format!("/Records/0{pointer}")) {
                *slot = json!("");
            }
        }
        let Record::Created(event) = single(&payload.to_string())? else {
            panic!("expected a creation");
        };
        let optional = [
            &event.region,
            &event.uploader,
            &event.source_ip,
            &event.version_id,
            &event.sequencer,
            &event.etag,
        ];
        assert!(optional.iter().all(|field| field.is_none()), "{event:?}");
        assert_eq!(event.event_time, None);
        Ok(())
    }

    #[test]
    fn quoted_etag_is_unquoted() -> TestResult {
        let payload = put_with(
            "/s3/object/eTag",
            json!("\"0f343b0931126a20f133d67c2b018a3b\""),
        )?;
        let Record::Created(event) = single(&payload)? else {
            panic!("expected a creation");
        };
        assert_eq!(
            event.etag.as_deref(),
            Some("0f343b0931126a20f133d67c2b018a3b")
        );
        Ok(())
    }

    #[test]
    fn provider_follows_event_source() -> TestResult {
        let cases = [
            (json!("aws:s3"), Provider::Aws),
            (json!("minio:s3"), Provider::Minio),
            (json!("ceph:s3"), Provider::Aws),
            (Value::Null, Provider::Aws),
        ];
        for (source, want) in cases {
            let payload = put_with("/eventSource", source.clone())?;
            let Record::Created(event) = single(&payload)? else {
                panic!("expected a creation");
            };
            assert_eq!(event.provider, want, "{source}");
        }
        Ok(())
    }
}
