//! The one normalized event every source produces and every later stage consumes.
//!
//! Provider payloads (S3 records, MinIO webhooks, SNS, Event Grid, Cloud Storage) are
//! turned into an [`ObjectCreated`] at the edge, in `crate::sources`. Routing, rendering and
//! delivery never see provider JSON.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon S3 event notifications (direct, or through SNS, SQS, EventBridge).
    Aws,
    /// MinIO or another S3-compatible server's webhook.
    Minio,
    /// Herald's own embedded S3-compatible endpoint (`herald dev`, `herald demo`).
    Dev,
    /// Google Cloud Storage (Eventarc CloudEvents or Pub/Sub notifications).
    Gcs,
    /// Azure Blob Storage (Event Grid).
    Azure,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Aws => "aws",
            Provider::Minio => "minio",
            Provider::Dev => "dev",
            Provider::Gcs => "gcs",
            Provider::Azure => "azure",
        })
    }
}

/// A new object (or a new version of one) landed in a bucket.
///
/// `key` is always decoded: sources undo the provider's URL encoding exactly once and never
/// normalize Unicode, so the key is byte for byte what the uploader chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCreated {
    /// Which provider reported the event.
    pub provider: Provider,
    /// The provider's own name for what happened, e.g. `ObjectCreated:Put`.
    pub event_name: String,
    /// Bucket (or container) name.
    pub bucket: String,
    /// Full object key, decoded.
    pub key: String,
    /// Object size in bytes; objects can exceed 4 GiB, hence `u64`.
    pub size: u64,
    /// MIME type, where the provider reports it.
    pub content_type: Option<String>,
    /// Entity tag without quotes; not an MD5 for multipart uploads and copies.
    pub etag: Option<String>,
    /// Object version id (S3 versioning) or generation (Cloud Storage).
    pub version_id: Option<String>,
    /// Orders events for the same key (S3 `sequencer`); opaque otherwise.
    pub sequencer: Option<String>,
    /// When the provider says the object was created.
    pub event_time: Option<Timestamp>,
    /// Who uploaded it (principal id, user name or access key), where known.
    pub uploader: Option<String>,
    /// The uploader's IP address, where known.
    pub source_ip: Option<String>,
    /// Region of the bucket, where known.
    pub region: Option<String>,
}

impl ObjectCreated {
    /// The last path segment of the key: what people call the file name.
    ///
    /// For a key ending in `/` this is the empty string.
    pub fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }

    /// The key without its file name, e.g. `reports/2024/` for `reports/2024/q3.pdf`.
    pub fn folder(&self) -> &str {
        &self.key[..self.key.len() - self.file_name().len()]
    }

    /// Consoles create "folders" as zero-byte objects whose key ends in `/`.
    pub fn is_folder_placeholder(&self) -> bool {
        self.key.ends_with('/')
    }

    /// Identifies one upload across redeliveries: the same object version reported twice
    /// yields the same key, a new upload to the same name yields a different one.
    ///
    /// Built from bucket, key, version id and sequencer, falling back to the ETag where the
    /// provider has no sequencer.
    pub fn dedupe_key(&self) -> String {
        let version = self.version_id.as_deref().unwrap_or("");
        let order = self
            .sequencer
            .as_deref()
            .or(self.etag.as_deref())
            .unwrap_or("");
        format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            self.bucket, self.key, version, order
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plain event for tests of later stages.
    pub(crate) fn sample(key: &str, size: u64) -> ObjectCreated {
        ObjectCreated {
            provider: Provider::Aws,
            event_name: "ObjectCreated:Put".into(),
            bucket: "uploads".into(),
            key: key.into(),
            size,
            content_type: None,
            etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
            version_id: None,
            sequencer: Some("0055AED6DCD90281E5".into()),
            event_time: None,
            uploader: None,
            source_ip: None,
            region: None,
        }
    }

    #[test]
    fn file_name_and_folder_split_on_last_slash() {
        let event = sample("reports/2024/Q3 report (final).pdf", 1);
        assert_eq!(event.file_name(), "Q3 report (final).pdf");
        assert_eq!(event.folder(), "reports/2024/");
        let top = sample("top.txt", 1);
        assert_eq!(top.file_name(), "top.txt");
        assert_eq!(top.folder(), "");
    }

    #[test]
    fn folder_placeholder_has_trailing_slash() {
        assert!(sample("photos/", 0).is_folder_placeholder());
        assert!(!sample("photos/a.jpg", 0).is_folder_placeholder());
    }

    #[test]
    fn dedupe_key_separates_versions() {
        let a = sample("a.txt", 1);
        let mut b = a.clone();
        assert_eq!(a.dedupe_key(), b.dedupe_key());
        b.sequencer = Some("0055AED6DCD90281E6".into());
        assert_ne!(a.dedupe_key(), b.dedupe_key());
    }
}
