//! Checks the dev endpoint makes before a write, where s3s-fs would otherwise do something real
//! S3 does not: create a bucket on first write, or fail with a bare internal error.

use s3s::dto::HeadBucketInput;
use s3s::{S3, S3Error, S3Result, s3_error};
use s3s_fs::FileSystem;

use super::notify::internal_request;

/// Longest file name the usual Linux file systems (ext4, xfs, tmpfs) accept.
const NAME_MAX: usize = 255;

/// s3s-fs keeps an object's metadata in a file named
/// `.bucket-<base64 bucket>.object-<base64 key>[.upload-<uuid>].metadata.json`, so the bucket
/// and key together must stay short enough for that name to fit in [`NAME_MAX`].
const METADATA_NAME_OVERHEAD: usize = ".bucket-".len() + ".object-".len() + ".metadata.json".len();

/// The `.upload-<uuid>` part of the metadata name while a multipart upload is in progress.
const UPLOAD_ID_OVERHEAD: usize = ".upload-".len() + 36;

/// Fails with `NoSuchBucket`, as S3 does, unless the bucket exists: s3s-fs alone would create
/// the bucket's folder on the first write, hiding a typo in a bucket name.
pub(super) async fn require_bucket(fs: &FileSystem, bucket: &str) -> S3Result<()> {
    let mut input = HeadBucketInput::builder();
    input.set_bucket(bucket.to_owned());
    let input = input.build().map_err(S3Error::internal_error)?;
    match fs.head_bucket(internal_request(input)).await {
        Ok(_) => Ok(()),
        Err(_) => Err(s3_error!(NoSuchBucket, "bucket {bucket:?} does not exist")),
    }
}

/// Fails with `KeyTooLongError` and an explanation where s3s-fs could not store the key,
/// instead of the bare `InternalError` the file system's name limit would produce.
pub(super) fn require_storable_key(bucket: &str, key: &str, multipart: bool) -> S3Result<()> {
    let extra = if multipart { UPLOAD_ID_OVERHEAD } else { 0 };
    let metadata_name = METADATA_NAME_OVERHEAD + extra + base64_len(bucket) + base64_len(key);
    let longest_segment = key.split('/').map(str::len).max().unwrap_or(0);
    if metadata_name <= NAME_MAX && longest_segment <= NAME_MAX {
        return Ok(());
    }
    Err(s3_error!(
        KeyTooLongError,
        "herald dev stores objects as files and keeps their metadata in file names, so bucket \
         and key together are limited to about {} bytes here ({} bytes sent); real S3 allows \
         keys of 1024 bytes",
        (NAME_MAX - METADATA_NAME_OVERHEAD - extra) * 3 / 4,
        bucket.len() + key.len()
    ))
}

/// Length of unpadded base64 for `text`.
fn base64_len(text: &str) -> usize {
    (text.len() * 4).div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_limit_follows_the_metadata_file_name() {
        // "uploads" encodes to 10 characters, leaving 215 for the key: 161 bytes.
        assert!(require_storable_key("uploads", &"k".repeat(161), false).is_ok());
        let err = require_storable_key("uploads", &"k".repeat(162), false).err();
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("limited to about 168 bytes"), "{err}");
        assert!(require_storable_key("uploads", &"k".repeat(150), true).is_err());
    }
}
