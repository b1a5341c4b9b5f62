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

