//! Sample uploads for `herald demo`, made through a real S3 client.
//!
//! The uploads go over the wire with aws-sdk-s3 and SigV4, exactly as a user's own client
//! would, and cover what tends to break notification code: spaces, parentheses, `+`, `:` and
//! non-ASCII letters in keys, nested folders, a multipart upload over 16 MiB and a
//! server-side copy. Contents are generated, so every run uploads the same bytes.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tracing::warn;

use crate::runtime::dev::{DEV_ACCESS_KEY, DEV_REGION, DEV_SECRET_KEY};

const MIB: usize = 1024 * 1024;

/// The multipart sample is just over 16 MiB, the size where tools commonly switch to multipart.
const DATASET_MIN_BYTES: usize = 17 * MIB;

/// S3 requires every part but the last to be at least 5 MiB.
const PART_BYTES: usize = 6 * MIB;

const REPORT_KEY: &str = "reports/Q3 report (final).pdf";
const PHOTO_KEY: &str = "photos/Café Zürich – 東京.jpg";
const NOTES_KEY: &str = "notes/a+b = c.txt";
const DATASET_KEY: &str = "datasets/export-2024.csv";
const ARCHIVE_KEY: &str = "archive/Q3 report (final).pdf";

/// `x-amz-copy-source` is a URL path: everything but unreserved characters and the `/`
/// separators is percent-encoded, `+` included (some servers read a bare `+` as a space).
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html>
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// One upload the demo made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The object key, as the client chose it.
    pub key: String,
    /// Bytes uploaded.
    pub size: u64,
    /// How it was uploaded: `"put"`, `"multipart"` or `"copy"`.
    pub how: &'static str,
}

/// A sample upload failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The S3 endpoint refused or failed a request.
    #[error("sample upload of {key:?} failed")]
    Upload {
        /// The key being uploaded.
        key: String,
        /// What the S3 client reported.
        #[source]
        source: Box<aws_sdk_s3::Error>,
    },
    /// The endpoint acknowledged a part without an ETag, so the upload cannot be completed.
    #[error("part {part} of {key:?} came back without an etag")]
    PartWithoutEtag {
        /// The key being uploaded.
        key: String,
        /// The 1-based part number.
        part: i32,
    },
}

/// An S3 client for the dev endpoint: dev credentials, region [`DEV_REGION`], path style.
pub fn s3_client(endpoint_url: &str) -> Client {
    s3_client_with_keys(endpoint_url, DEV_ACCESS_KEY, DEV_SECRET_KEY)
}

/// Like [`s3_client`] with other keys; tests use it to check that bad signatures fail.
pub(crate) fn s3_client_with_keys(endpoint_url: &str, access_key: &str, secret: &str) -> Client {
    let credentials = Credentials::new(access_key, secret, None, None, "herald-dev");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(DEV_REGION))
        .credentials_provider(credentials)
        .endpoint_url(endpoint_url)
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

/// Uploads the demo's sample files into `bucket`, in order, and lists them.
///
/// The bucket must exist. Five uploads are made, each of which creates one object: three
/// plain puts, one multipart upload and one server-side copy.
pub async fn upload_samples(endpoint_url: &str, bucket: &str) -> Result<Vec<Sample>, DemoError> {
    let client = s3_client(endpoint_url);
    let report = put(&client, bucket, REPORT_KEY, "application/pdf", report_pdf()).await?;
    let photo = put(&client, bucket, PHOTO_KEY, "image/jpeg", photo_jpeg()).await?;
    let notes = put(
        &client,
        bucket,
        NOTES_KEY,
        "text/plain; charset=utf-8",
        notes_text(),
    )
    .await?;
    let dataset = multipart(&client, bucket, DATASET_KEY, "text/csv", dataset_csv()).await?;
    let archive = copy(&client, bucket, REPORT_KEY, ARCHIVE_KEY, report.size).await?;
    Ok(vec![report, photo, notes, dataset, archive])
}

async fn put(
    client: &Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Sample, DemoError> {
    let size = body.len() as u64;
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|err| upload_error(key, err))?;
    Ok(sample(key, size, "put"))
}

/// Uploads `body` in [`PART_BYTES`] parts, aborting the upload if a step fails so no parts
/// are left behind on the endpoint.
async fn multipart(
    client: &Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Sample, DemoError> {
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .send()
        .await
        .map_err(|err| upload_error(key, err))?;
    let upload_id = created.upload_id().unwrap_or_default();

    let result = upload_parts(client, bucket, key, upload_id, &body).await;
    if result.is_err() {
        abort(client, bucket, key, upload_id).await;
    }
    result.map(|()| sample(key, body.len() as u64, "multipart"))
}

async fn upload_parts(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    body: &[u8],
) -> Result<(), DemoError> {
    let mut parts = Vec::new();
    for (number, chunk) in (1..).zip(body.chunks(PART_BYTES)) {
        let uploaded = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .map_err(|err| upload_error(key, err))?;
        parts.push(completed_part(key, number, uploaded.e_tag())?);
    }

    let parts = CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build();
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(parts)
        .send()
        .await
        .map_err(|err| upload_error(key, err))?;
    Ok(())
}

fn completed_part(key: &str, part: i32, etag: Option<&str>) -> Result<CompletedPart, DemoError> {
    let etag = etag.ok_or_else(|| DemoError::PartWithoutEtag {
        key: key.to_owned(),
        part,
    })?;
    Ok(CompletedPart::builder()
        .part_number(part)
        .e_tag(etag)
        .build())
}

async fn abort(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    let aborted = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(err) = aborted {
        warn!(bucket, key, error = %aws_sdk_s3::Error::from(err), "demo multipart abort failed");
    }
}

/// Server-side copy within `bucket`; `size` is the source's, which a copy keeps.
async fn copy(
    client: &Client,
    bucket: &str,
    from: &str,
    to: &str,
    size: u64,
) -> Result<Sample, DemoError> {
    client
        .copy_object()
        .bucket(bucket)
        .key(to)
        .copy_source(copy_source(bucket, from))
        .send()
        .await
        .map_err(|err| upload_error(to, err))?;
    Ok(sample(to, size, "copy"))
}

/// `bucket/key` with the key percent-encoded, as `x-amz-copy-source` expects.
fn copy_source(bucket: &str, key: &str) -> String {
    format!("{bucket}/{}", utf8_percent_encode(key, COPY_SOURCE))
}

fn sample(key: &str, size: u64, how: &'static str) -> Sample {
    Sample {
        key: key.to_owned(),
        size,
        how,
    }
}

fn upload_error(key: &str, err: impl Into<aws_sdk_s3::Error>) -> DemoError {
    DemoError::Upload {
        key: key.to_owned(),
        source: Box::new(err.into()),
    }
}

/// A one-page PDF saying hello; small, but a PDF reader opens it.
fn report_pdf() -> Vec<u8> {
    let text = "%PDF-1.4\n\
        1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
        2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
        3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
        /Resources << /Font << /F1 5 0 R >> >> >> endobj\n\
        4 0 obj << /Length 47 >> stream\n\
        BT /F1 24 Tf 72 760 Td (Q3 report, final) Tj ET\n\
        endstream endobj\n\
        5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n\
        trailer << /Root 1 0 R >>\n\
        %%EOF\n";
    text.as_bytes().to_vec()
}

/// JPEG start and end markers around a deterministic byte pattern (not a viewable image).
fn photo_jpeg() -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0u32..48 * 1024).map(|i| (i.wrapping_mul(31) % 251) as u8));
    bytes.extend([0xFF, 0xD9]);
    bytes
}

fn notes_text() -> Vec<u8> {
    b"a+b = c\n\nA key with a plus sign: S3 events encode it as %2B and a space as +.\n".to_vec()
}

/// CSV rows until just over [`DATASET_MIN_BYTES`]; whole rows, so the size is not round.
fn dataset_csv() -> Vec<u8> {
    let mut csv = String::with_capacity(DATASET_MIN_BYTES + 64);
    csv.push_str("id,day,item,quantity,amount\n");
    for id in 0u64.. {
        if csv.len() >= DATASET_MIN_BYTES {
            break;
        }
        let day = id % 28 + 1;
        csv.push_str(&format!(
            "{id},2024-03-{day:02},item-{:04},{},{}.{:02}\n",
            id % 9973,
            id % 17 + 1,
            id % 1000,
            id % 100
        ));
    }
    csv.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encodes_everything_but_slashes() {
        assert_eq!(
            copy_source("demo", "a dir/Café (1)+x:y.pdf"),
            "demo/a%20dir/Caf%C3%A9%20%281%29%2Bx%3Ay.pdf"
        );
    }

    #[test]
    fn dataset_is_just_over_sixteen_mebibytes() {
        let csv = dataset_csv();
        assert!(csv.len() >= DATASET_MIN_BYTES && csv.len() < DATASET_MIN_BYTES + 64);
        assert!(csv.ends_with(b"\n"));
        assert_eq!(csv, dataset_csv());
    }

    #[test]
    fn report_is_a_pdf() {
        let pdf = report_pdf();
        assert!(pdf.starts_with(b"%PDF-") && pdf.ends_with(b"%%EOF\n"));
    }
}
