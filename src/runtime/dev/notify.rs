//! The S3 implementation behind the dev endpoint: s3s-fs with a hook that announces uploads.
//!
//! Every operation s3s-fs serves is passed through unchanged. PutObject, CopyObject and
//! CompleteMultipartUpload additionally emit one [`ObjectCreated`] once the object is on disk.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};
use s3s_fs::FileSystem;
use tracing::{debug, error, warn};

use super::{DEV_REGION, Uploads, limits};
use crate::event::{ObjectCreated, Provider};

/// The client's socket address, put into each request's extensions by the connection layer.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientAddr(pub(super) SocketAddr);

/// s3s-fs plus the event channel.
pub(super) struct NotifyingFs {
    fs: FileSystem,
    /// The folder s3s-fs serves, to check a key against what is on disk.
    data_dir: PathBuf,
    events: Uploads,
    sequencer: AtomicU64,
}

/// What is known about an upload before the filesystem has handled it.
struct Upload {
    event_name: &'static str,
    bucket: String,
    key: String,
    uploader: Option<String>,
    source_ip: Option<String>,
}

/// What the filesystem holds once the upload is done.
struct Stored {
    size: u64,
    content_type: Option<String>,
    etag: Option<String>,
}

impl Upload {
    fn new<T>(req: &S3Request<T>, event_name: &'static str, bucket: &str, key: &str) -> Self {
        Upload {
            event_name,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            uploader: req.credentials.as_ref().map(|c| c.access_key.clone()),
            source_ip: req
                .extensions
                .get::<ClientAddr>()
                .map(|addr| addr.0.ip().to_string()),
        }
    }
}

impl NotifyingFs {
    pub(super) fn new(fs: FileSystem, data_dir: PathBuf, events: Uploads) -> Self {
        NotifyingFs {
            fs,
            data_dir,
            events,
            sequencer: AtomicU64::new(sequencer_seed()),
        }
    }

    /// Reads the stored object back and hands its event on.
    ///
    /// s3s-fs answers copies and multipart completions without a size (and the multipart
    /// ETag only inside a deferred future), so the facts come from a head on the filesystem.
    /// An upload to the same key landing in between would be described instead: acceptable
    /// for a local endpoint, where the event is a notification, not an audit record.
    ///
    /// Fails only when the durable queue cannot store the event: the client is told to retry,
    /// since the upload was stored but its notification was not.
    async fn announce(&self, upload: Upload) -> S3Result<()> {
        let stored = match self.stored(&upload).await {
            Ok(stored) => stored,
            Err(err) => {
                error!(bucket = ?upload.bucket, key = ?upload.key, error = %err,
                    "dev upload stored but could not be read back; no event emitted");
                return Ok(());
            }
        };
        let event = self.event(upload, stored);
        debug!(bucket = ?event.bucket, key = ?event.key, size = event.size, "dev upload event");
        match &self.events {
            Uploads::Channel(channel) => {
                if let Err(lost) = channel.send(event).await {
                    error!(bucket = ?lost.0.bucket, key = ?lost.0.key,
                        "dev upload event dropped: event channel closed");
                }
                Ok(())
            }
            Uploads::Queue(queue) => {
                let (bucket, key) = (event.bucket.clone(), event.key.clone());
                queue.push(vec![event]).await.map(drop).map_err(|err| {
                    warn!(bucket = ?bucket, key = ?key, error = %err,
                        "dev upload not queued; the client is told to retry");
                    s3s::s3_error!(SlowDown, "the upload was stored but not queued: {err}")
                })
            }
        }
    }

    /// Refuses writes S3 would refuse, and keys s3s-fs could not store, before s3s-fs sees them.
    async fn require_writable(&self, bucket: &str, key: &str, multipart: bool) -> S3Result<()> {
        limits::require_bucket(&self.fs, bucket).await?;
        limits::require_storable_key(bucket, key, multipart)?;
        limits::require_no_file_folder_clash(&self.data_dir.join(bucket), key)
    }

    /// s3s-fs keeps a "folder" (a key ending in `/`) as a directory, which a head cannot
    /// read; S3 keeps it as an empty object, so it is described as one.
    async fn stored(&self, upload: &Upload) -> S3Result<Stored> {
        if upload.key.ends_with('/') {
            let (content_type, etag) = (None, None);
            return Ok(Stored {
                size: 0,
                content_type,
                etag,
            });
        }
        self.head(&upload.bucket, &upload.key).await
    }

    async fn head(&self, bucket: &str, key: &str) -> S3Result<Stored> {
        let mut input = HeadObjectInput::builder();
        input.set_bucket(bucket.to_owned());
        input.set_key(key.to_owned());
        let input = input.build().map_err(s3s::S3Error::internal_error)?;
        let head = self.fs.head_object(internal_request(input)).await?.output;
        // s3s-fs always reports the file's length; a missing one is a bug worth an error
        // rather than an event claiming zero bytes.
        let size = head
            .content_length
            .and_then(|len| u64::try_from(len).ok())
            .ok_or_else(|| s3s::s3_error!(InternalError, "stored object has no length"))?;
        Ok(Stored {
            size,
            content_type: head.content_type,
            etag: head.e_tag.map(ETag::into_value),
        })
    }

    fn event(&self, upload: Upload, stored: Stored) -> ObjectCreated {
        ObjectCreated {
            provider: Provider::Dev,
            event_name: upload.event_name.to_owned(),
            bucket: upload.bucket,
            key: upload.key,
            size: stored.size,
            content_type: stored.content_type,
            etag: stored.etag,
            version_id: None,
            sequencer: Some(self.next_sequencer()),
            event_time: Some(Timestamp::now()),
            uploader: upload.uploader,
            source_ip: upload.source_ip,
            region: Some(DEV_REGION.to_owned()),
        }
    }

    /// Fixed-width upper-case hex, so sequencers compare correctly as strings, as S3's do.
    fn next_sequencer(&self) -> String {
        format!("{:016X}", self.sequencer.fetch_add(1, Ordering::Relaxed))
    }
}

/// Starts the counter at the current time in nanoseconds, so a restarted endpoint does not
/// reuse sequencers (and dedupe keys) of a previous run; 16 hex digits hold it until 2554.
fn sequencer_seed() -> u64 {
    u64::try_from(Timestamp::now().as_nanosecond()).unwrap_or(0)
}

/// A request made by the endpoint itself rather than by a client; s3s-fs reads only the input.
pub(super) fn internal_request<T>(input: T) -> S3Request<T> {
    S3Request {
        input,
        method: Default::default(),
        uri: Default::default(),
        headers: Default::default(),
        extensions: Default::default(),
        credentials: None,
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// The object a copy wrote: the destination, not the source.
fn copy_destination(req: &S3Request<CopyObjectInput>) -> Upload {
    let input = &req.input;
    Upload::new(req, "ObjectCreated:Copy", &input.bucket, &input.key)
}

#[async_trait::async_trait]
impl S3 for NotifyingFs {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let upload = Upload::new(&req, "ObjectCreated:Put", &req.input.bucket, &req.input.key);
        self.require_writable(&upload.bucket, &upload.key, false)
            .await?;
        let response = self.fs.put_object(req).await?;
        self.announce(upload).await?;
        Ok(response)
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let upload = copy_destination(&req);
        self.require_writable(&upload.bucket, &upload.key, false)
            .await?;
        let response = self.fs.copy_object(req).await?;
        self.announce(upload).await?;
        Ok(response)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (bucket, key) = (&req.input.bucket, &req.input.key);
        let upload = Upload::new(&req, "ObjectCreated:CompleteMultipartUpload", bucket, key);
        let response = self.fs.complete_multipart_upload(req).await?;
        self.announce(upload).await?;
        Ok(response)
    }

    // Everything below is s3s-fs unchanged: no object is created by these operations, or
    // (UploadPart, UploadPartCopy) not yet, only a part of one.

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.fs.delete_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.fs.delete_objects(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let (bucket, key) = (&req.input.bucket, &req.input.key);
        self.require_writable(bucket, key, true).await?;
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.fs.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.fs.list_parts(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }
}
