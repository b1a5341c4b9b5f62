//! Checks the dev endpoint makes before a write, where s3s-fs would otherwise do something real
//! S3 does not: create a bucket on first write, or fail with a bare internal error.

use std::path::Path;

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
    let room = NAME_MAX.saturating_sub(METADATA_NAME_OVERHEAD + extra + base64_len(bucket));
    Err(s3_error!(
        KeyTooLongError,
        "herald dev stores objects as files and keeps their metadata in file names, so in \
         bucket {bucket:?} a key is limited to {} bytes, and each part between slashes to \
         {NAME_MAX} ({} bytes sent); real S3 allows keys of 1024 bytes",
        room * 3 / 4,
        key.len()
    ))
}

/// Fails with `InvalidRequest` and the reason where the key and an object already stored
/// would need the same path as a file and as a folder (`a` and `a/b`): S3 keeps both, a file
/// system cannot, and s3s-fs alone answers a bare `InternalError`.
pub(super) fn require_no_file_folder_clash(bucket_dir: &Path, key: &str) -> S3Result<()> {
    let parts: Vec<&str> = key.split('/').collect();
    let mut path = bucket_dir.to_path_buf();
    for (index, part) in parts.iter().enumerate().take(parts.len().saturating_sub(1)) {
        path.push(part);
        if path.is_file() {
            let object = parts[..=index].join("/");
            return Err(s3_error!(
                InvalidRequest,
                "herald dev stores objects as files: {object:?} is an object, so {key:?} \
                 cannot also be stored under it (real S3 allows both)"
            ));
        }
    }
    if !key.ends_with('/') && bucket_dir.join(key).is_dir() {
        return Err(s3_error!(
            InvalidRequest,
            "herald dev stores objects as files: {key:?} is a folder of other objects here, so \
             it cannot also be an object (real S3 allows both)"
        ));
    }
    Ok(())
}

/// Length of unpadded base64 for `text`.
fn base64_len(text: &str) -> usize {
    (text.len() * 4).div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_cannot_be_both_a_file_and_a_folder() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("odd/deeper"))?;
        std::fs::write(dir.path().join("odd/file.txt"), b"x")?;
        let err = |key| {
            let err = require_no_file_folder_clash(dir.path(), key).err();
            err.map(|e| e.message().unwrap_or_default().to_owned())
        };
        let under_file = err("odd/file.txt/child").unwrap_or_default();
        assert!(
            under_file.contains("\"odd/file.txt\" is an object"),
            "{under_file}"
        );
        let over_folder = err("odd/deeper").unwrap_or_default();
        assert!(
            over_folder.contains("is a folder of other objects"),
            "{over_folder}"
        );
        assert_eq!(err("odd/deeper/new.txt"), None);
        assert_eq!(err("odd/file.txt"), None, "overwriting an object is fine");
        assert_eq!(
            err("odd/deeper/"),
            None,
            "a folder placeholder is the folder"
        );
        Ok(())
    }

    #[test]
    fn key_limit_follows_the_metadata_file_name() {
        // "uploads" encodes to 10 characters, leaving 215 for the key: 161 bytes.
        assert!(require_storable_key("uploads", &"k".repeat(161), false).is_ok());
        let err = require_storable_key("uploads", &"k".repeat(162), false).err();
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("a key is limited to 161 bytes"), "{err}");
        assert!(require_storable_key("uploads", &"k".repeat(150), true).is_err());
    }
}
