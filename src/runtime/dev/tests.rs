//! The dev endpoint end to end: a real S3 client over TCP on 127.0.0.1, events on the channel.

use std::collections::HashSet;
use std::error::Error;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use tempfile::TempDir;
use tokio::sync::mpsc;

use super::*;
use crate::event::Provider;
use crate::runtime::demo::{s3_client, s3_client_with_keys, upload_samples};

type TestResult = Result<(), Box<dyn Error>>;

const BUCKET: &str = "uploads";

/// After the last expected event, how long to wait for an unexpected one.
const QUIET: Duration = Duration::from_millis(300);

type Running = (DevEndpoint, mpsc::Receiver<ObjectCreated>, TempDir);

/// An endpoint over a fresh temporary directory with [`BUCKET`] created.
async fn start(capacity: usize) -> Result<Running, Box<dyn Error>> {
    let data = tempfile::tempdir()?;
    let options = DevOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data.path().join("data"),
        buckets: vec![BUCKET.to_owned()],
    };
    let (sender, receiver) = mpsc::channel(capacity);
    let endpoint = DevEndpoint::start(options, sender).await?;
    Ok((endpoint, receiver, data))
}

/// Every event already sent or arriving within [`QUIET`] of the previous one.
async fn drain(events: &mut mpsc::Receiver<ObjectCreated>) -> Vec<ObjectCreated> {
    let mut received = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(QUIET, events.recv()).await {
        received.push(event);
    }
    received
}

fn expected_event_name(how: &str) -> &'static str {
    match how {
        "put" => "ObjectCreated:Put",
        "multipart" => "ObjectCreated:CompleteMultipartUpload",
        "copy" => "ObjectCreated:Copy",
        other => panic!("unknown upload kind {other}"),
    }
}

#[tokio::test]
async fn samples_emit_one_exact_event_each() -> TestResult {
    let (endpoint, mut events, data) = start(16).await?;
    let samples = upload_samples(&endpoint.endpoint_url(), BUCKET).await?;
    let received = drain(&mut events).await;
    endpoint.shutdown().await;

    let keys: Vec<&str> = received.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "reports/Q3 report (final).pdf",
            "photos/Café Zürich – 東京.jpg",
            "notes/a+b = c.txt",
            "datasets/export-2024.csv",
            "archive/Q3 report (final).pdf",
        ]
    );
    for (event, sample) in received.iter().zip(&samples) {
        assert_eq!(event.key, sample.key);
        assert_eq!(event.size, sample.size, "size of {}", sample.key);
        assert_eq!(event.event_name, expected_event_name(sample.how));
        let on_disk = std::fs::metadata(data.path().join("data").join(BUCKET).join(&event.key))?;
        assert_eq!(on_disk.len(), event.size);
    }
    let sequencers: HashSet<_> = received.iter().map(|e| e.sequencer.clone()).collect();
    assert_eq!(sequencers.len(), received.len());
    Ok(())
}

#[tokio::test]
async fn event_fields_describe_the_upload() -> TestResult {
    let (endpoint, mut events, _data) = start(16).await?;
    let samples = upload_samples(&endpoint.endpoint_url(), BUCKET).await?;
    let received = drain(&mut events).await;
    endpoint.shutdown().await;

    let report = &received[0];
    assert_eq!(report.provider, Provider::Dev);
    assert_eq!(report.bucket, BUCKET);
    assert_eq!(report.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(report.uploader.as_deref(), Some(DEV_ACCESS_KEY));
    assert_eq!(report.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(report.region.as_deref(), Some(DEV_REGION));
    assert!(report.event_time.is_some());
    let etag = report.etag.as_deref().unwrap_or_default();
    assert_eq!(etag.len(), 32, "md5 etag without quotes: {etag}");

    // A multipart ETag is the MD5 of the part MD5s with the part count: 17 MiB in 6 MiB parts.
    let dataset = &received[3];
    assert!(dataset.size > 16 * 1024 * 1024 && dataset.size == samples[3].size);
    assert!(dataset.etag.as_deref().unwrap_or_default().ends_with("-3"));
    assert_eq!(dataset.content_type.as_deref(), Some("text/csv"));

    // A copy keeps the source's bytes and metadata.
    let archive = &received[4];
    assert_eq!(archive.etag, report.etag);
    assert_eq!(archive.content_type, report.content_type);

    let sequencers: Vec<_> = received
        .iter()
        .filter_map(|e| e.sequencer.clone())
        .collect();
    assert!(
        sequencers.windows(2).all(|pair| pair[0] < pair[1]),
        "{sequencers:?}"
    );
    Ok(())
}

#[tokio::test]
async fn wrong_secret_is_rejected_without_event() -> TestResult {
    let (endpoint, mut events, data) = start(16).await?;
    let client = s3_client_with_keys(&endpoint.endpoint_url(), DEV_ACCESS_KEY, "not-the-secret");
    let result = client
        .put_object()
        .bucket(BUCKET)
        .key("intruder.txt")
        .body(ByteStream::from_static(b"nope"))
        .send()
        .await;
    let received = drain(&mut events).await;
    endpoint.shutdown().await;

    let err = match result {
        Ok(_) => return Err("a put with a wrong secret succeeded".into()),
        Err(err) => err,
    };
    let status = err
        .raw_response()
        .map(|response| response.status().as_u16());
    assert_eq!(status, Some(403));
    assert!(received.is_empty(), "{received:?}");
    assert!(
        !data
            .path()
            .join("data")
            .join(BUCKET)
            .join("intruder.txt")
            .exists()
    );
    Ok(())
}

#[tokio::test]
async fn closed_channel_does_not_fail_the_upload() -> TestResult {
    let (endpoint, events, _data) = start(1).await?;
    drop(events);
    let client = s3_client(&endpoint.endpoint_url());
    client
        .put_object()
        .bucket(BUCKET)
        .key("nobody listens.txt")
        .body(ByteStream::from_static(b"still stored"))
        .send()
        .await?;
    let stored = client
        .get_object()
        .bucket(BUCKET)
        .key("nobody listens.txt")
        .send()
        .await?;
    let body = stored.body.collect().await?.into_bytes();
    endpoint.shutdown().await;
    assert_eq!(&body[..], b"still stored");
    Ok(())
}

#[tokio::test]
async fn invalid_bucket_name_is_refused_at_start() -> TestResult {
    let data = tempfile::tempdir()?;
    let options = DevOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data.path().to_owned(),
        buckets: vec!["../escape".to_owned()],
    };
    let (sender, _receiver) = mpsc::channel(1);
    let result = DevEndpoint::start(options, sender).await;
    assert!(matches!(result, Err(DevError::InvalidBucket { .. })));
    Ok(())
}

#[tokio::test]
async fn shutdown_stops_listening() -> TestResult {
    let (endpoint, _events, _data) = start(1).await?;
    let addr = endpoint.local_addr();
    endpoint.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    Ok(())
}

#[tokio::test]
async fn odd_keys_arrive_byte_for_byte() -> TestResult {
    let keys = [
        "logs/2024-03-01T10:00:00Z.json",
        "100% done (v2).txt",
        // Decomposed "é": must not come back composed, keys are never normalized.
        "deep/er/still/Cafe\u{301} + more.txt",
        "a/b/c/d/e/f/g.bin",
    ];
    let (endpoint, mut events, _data) = start(16).await?;
    let client = s3_client(&endpoint.endpoint_url());
    for key in keys {
        let body = ByteStream::from(key.as_bytes().to_vec());
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body)
            .send()
            .await?;
    }
    let received = drain(&mut events).await;
    endpoint.shutdown().await;

    let got: Vec<&str> = received.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(got, keys);
    for event in &received {
        assert_eq!(event.size, event.key.len() as u64);
    }
    Ok(())
}
