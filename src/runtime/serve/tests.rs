//! Router-level tests: every route driven with `oneshot`, no socket, emails kept in memory.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::*;
use crate::config::{self, Origin};
use crate::dedupe::MemoryStore;
use crate::deliver::memory::MemorySender;
use crate::deliver::{DeliveryError, Email, SendFuture, Sender};
use crate::pipeline::{Delivery, Pipeline};
use crate::sources::azure_blob::tests::{CLOUDEVENT, DATA_LAKE, PUT_BLOB, VALIDATION};
use crate::sources::gcs;
use crate::sources::gcs::tests::{FINALIZED_OBJECT, PUBSUB_FINALIZE, STRUCTURED};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PUBSUB_DELETE: &str = include_str!("../../../tests/fixtures/gcs/pubsub_delete.json");
const MINIO_PUT: &str = include_str!("../../../tests/fixtures/minio/put.json");

/// One rule for everything, with a subject that shows the name and the exact size.
const CONFIG: &str = r#"
[sender]
type = "outbox"
from = "Herald <herald@example.com>"

[[rule]]
name = "all"
to = ["Team <team@example.com>"]
subject = "{{ object.name }} ({{ object.size }} bytes, {{ object.provider }})"
"#;

const TOKEN: &str = "Bearer minio-s3cr3t";

fn app_with(sender: Arc<dyn Sender>, limit: usize) -> Router {
    let config = config::validate::parse(CONFIG, Origin::BuiltIn, &|_| None)
        .unwrap_or_else(|e| panic!("{e}: {:?}", e.problems()));
    let store = Arc::new(MemoryStore::new(Duration::from_secs(60)));
    let pipeline = Pipeline::new(Arc::new(config), Delivery::Send(sender)).with_dedupe(store);
    router(AppState::new(pipeline, Some(Secret::new(TOKEN))), limit)
}

fn app() -> (Router, Arc<MemorySender>) {
    let sender = Arc::new(MemorySender::new());
    (app_with(sender.clone(), DEFAULT_BODY_LIMIT), sender)
}

/// A response as status, headers and body text.
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn call(app: &Router, request: Request<Body>) -> Result<Answer, Box<dyn std::error::Error>> {
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX).await?;
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec())?,
    })
}

fn post(path: &str) -> axum::http::request::Builder {
    Request::post(path).header(header::CONTENT_TYPE, "application/json")
}

async fn post_json(
    app: &Router,
    path: &str,
    body: &str,
) -> Result<Answer, Box<dyn std::error::Error>> {
    call(app, post(path).body(Body::from(body.to_owned()))?).await
}

/// Eventarc's binary mode: attributes as `ce-*` headers, the object resource as the body.
fn binary_event(kind: &str, body: &str) -> Result<Request<Body>, axum::http::Error> {
    Request::post("/cloudevents")
        .header(header::CONTENT_TYPE, "application/json")
        .header("ce-id", "11863129744211254")
        .header(
            "ce-source",
            "//storage.googleapis.com/projects/_/buckets/acme-archive",
        )
        .header("ce-specversion", "1.0")
        .header("ce-type", kind)
        .header(
            "ce-subject",
            "objects/exports/2024/Q3 full dump (final).tar",
        )
        .header("ce-time", "2024-06-03T16:02:45.001Z")
        .header("ce-bucket", "acme-archive")
        .body(Body::from(body.to_owned()))
}

fn subjects(sender: &MemorySender) -> Vec<String> {
    sender
        .sent()
        .into_iter()
        .map(|email| email.subject)
        .collect()
}

#[tokio::test]
async fn binary_mode_finalize_sends_one_email_with_the_exact_size() -> TestResult {
    let (app, sender) = app();
    let answer = call(&app, binary_event(gcs::FINALIZED, FINALIZED_OBJECT)?).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["sent"], 1);
    let sent = sender.sent();
    assert_eq!(
        subjects(&sender),
        ["Q3 full dump (final).tar (5368709120 bytes, gcs)"]
    );
    assert_eq!(sent[0].to[0].email.to_string(), "team@example.com");
    Ok(())
}

#[tokio::test]
async fn redelivered_finalize_is_sent_once_and_an_overwrite_again() -> TestResult {
    let (app, sender) = app();
    for _ in 0..3 {
        let answer = call(&app, binary_event(gcs::FINALIZED, FINALIZED_OBJECT)?).await?;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let mut overwrite: Value = serde_json::from_str(FINALIZED_OBJECT)?;
    overwrite["generation"] = json!("1717430999000001");
    overwrite["size"] = json!("12");
    let answer = call(&app, binary_event(gcs::FINALIZED, &overwrite.to_string())?).await?;
    assert_eq!(answer.json()["sent"], 1);
    assert_eq!(
        subjects(&sender),
        [
            "Q3 full dump (final).tar (5368709120 bytes, gcs)",
            "Q3 full dump (final).tar (12 bytes, gcs)"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn structured_mode_finalize_is_read_from_the_body() -> TestResult {
    let (app, sender) = app();
    let request = Request::post("/cloudevents")
        .header(
            header::CONTENT_TYPE,
            "application/cloudevents+json; charset=utf-8",
        )
        .body(Body::from(STRUCTURED))?;
    let answer = call(&app, request).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        subjects(&sender),
        ["Lieferschein März.pdf (482133 bytes, gcs)"]
    );
    Ok(())
}

#[tokio::test]
async fn other_storage_events_are_acknowledged_and_ignored() -> TestResult {
    let (app, sender) = app();
    for kind in ["deleted", "archived", "metadataUpdated"] {
        let kind = format!("google.cloud.storage.object.v1.{kind}");
        let answer = call(&app, binary_event(&kind, FINALIZED_OBJECT)?).await?;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["ignored"], 1);
    }
    let answer = post_json(&app, "/pubsub", PUBSUB_DELETE).await?;
    assert_eq!(
        (answer.status, answer.json()["ignored"].clone()),
        (StatusCode::OK, json!(1))
    );
    assert!(sender.sent().is_empty());
    Ok(())
}

#[tokio::test]
async fn pubsub_push_finalize_sends_the_email() -> TestResult {
    let (app, sender) = app();
    let answer = post_json(&app, "/pubsub", PUBSUB_FINALIZE).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        subjects(&sender),
        ["INV-2024-0042+copy.pdf (73421 bytes, gcs)"]
    );
    Ok(())
}

#[tokio::test]
async fn event_grid_put_blob_sends_the_email() -> TestResult {
    let (app, sender) = app();
    let answer = post_json(&app, "/eventgrid", PUT_BLOB).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        subjects(&sender),
        ["Vertrag Müller & Söhne (signed).pdf (2097152 bytes, azure)"]
    );
    Ok(())
}

#[tokio::test]
async fn data_lake_create_file_is_skipped_and_flush_with_close_sent() -> TestResult {
    let (app, sender) = app();
    let answer = post_json(&app, "/eventgrid", DATA_LAKE).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        (
            answer.json()["ignored"].clone(),
            answer.json()["sent"].clone()
        ),
        (json!(1), json!(1))
    );
    assert_eq!(
        subjects(&sender),
        ["batch-0007.parquet (6442450944 bytes, azure)"]
    );
    Ok(())
}

#[tokio::test]
async fn event_grid_cloudevents_schema_sends_the_email() -> TestResult {
    let (app, sender) = app();
    let request = Request::post("/eventgrid")
        .header(
            header::CONTENT_TYPE,
            "application/cloudevents+json; charset=utf-8",
        )
        .body(Body::from(CLOUDEVENT))?;
    let answer = call(&app, request).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        subjects(&sender),
        ["keynote 2024.mp4 (734003200 bytes, azure)"]
    );
    Ok(())
}

#[tokio::test]
async fn subscription_validation_echoes_the_code_exactly() -> TestResult {
    let (app, sender) = app();
    let request = post("/eventgrid")
        .header("aeg-event-type", "SubscriptionValidation")
        .body(Body::from(VALIDATION))?;
    let answer = call(&app, request).await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        r#"{"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}"#
    );
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    assert!(sender.sent().is_empty());
    Ok(())
}

#[tokio::test]
async fn options_handshake_allows_the_requesting_origin() -> TestResult {
    let (app, _) = app();
    for path in ["/eventgrid", "/cloudevents"] {
        let request = Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header("WebHook-Request-Origin", "eventgrid.azure.net")
            .body(Body::empty())?;
        let answer = call(&app, request).await?;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.headers["webhook-allowed-origin"],
            "eventgrid.azure.net"
        );
        assert_eq!(answer.headers["webhook-allowed-rate"], "*");
    }
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri("/eventgrid")
        .body(Body::empty())?;
    assert_eq!(call(&app, request).await?.status, StatusCode::BAD_REQUEST);
    Ok(())
}

fn minio(token: Option<&str>) -> Result<Request<Body>, axum::http::Error> {
    let mut request = post("/minio");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, token);
    }
    request.body(Body::from(MINIO_PUT))
}

#[tokio::test]
async fn minio_needs_the_exact_token() -> TestResult {
    let (app, sender) = app();
    for token in [
        Some("Bearer wrong"),
        Some("Bearer minio-s3cr3t2"),
        Some("bearer minio-s3cr3t"),
        None,
    ] {
        let answer = call(&app, minio(token)?).await?;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(answer.headers.contains_key(header::WWW_AUTHENTICATE));
    }
    assert!(sender.sent().is_empty());
    let answer = call(&app, minio(Some(TOKEN))?).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        subjects(&sender),
        ["holiday photo.jpg (3145728 bytes, minio)"]
    );
    Ok(())
}

#[tokio::test]
async fn minio_without_a_configured_token_accepts_anyone() -> TestResult {
    let config = config::validate::parse(CONFIG, Origin::BuiltIn, &|_| None)?;
    let sender = Arc::new(MemorySender::new());
    let pipeline = Pipeline::new(Arc::new(config), Delivery::Send(sender.clone()));
    let app = router(AppState::new(pipeline, None), DEFAULT_BODY_LIMIT);
    assert_eq!(call(&app, minio(None)?).await?.status, StatusCode::OK);
    assert_eq!(sender.sent().len(), 1);
    Ok(())
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() -> TestResult {
    let sender = Arc::new(MemorySender::new());
    let app = app_with(sender.clone(), 2048);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
    let declared = post("/eventgrid")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))?;
    assert_eq!(
        call(&app, declared).await?.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Without a Content-Length (chunked), the limit stops the read instead.
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(big.into_bytes())]);
    let chunked = post("/pubsub").body(Body::from_stream(stream))?;
    assert_eq!(
        call(&app, chunked).await?.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let fits = post_json(&app, "/pubsub", PUBSUB_DELETE).await?;
    assert_eq!(fits.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn malformed_payloads_are_400_on_every_route() -> TestResult {
    let (app, sender) = app();
    let cases = [
        ("/pubsub", "{\"message\":"),
        ("/pubsub", r#"{"Records":[]}"#),
        ("/eventgrid", "not json"),
        ("/eventgrid", r#"{"Records":[]}"#),
        ("/cloudevents", r#"{"hello":"world"}"#),
        ("/minio", "<xml/>"),
    ];
    for (path, body) in cases {
        let request = post(path)
            .header(header::AUTHORIZATION, TOKEN)
            .body(Body::from(body))?;
        let answer = call(&app, request).await?;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path} {body}");
        assert!(
            answer
                .body
                .starts_with("payload is not a known storage event format"),
            "{}",
            answer.body
        );
    }
    // One event whose object resource is broken: the request as a whole is unreadable.
    let mut object: Value = serde_json::from_str(FINALIZED_OBJECT)?;
    object["size"] = json!("lots");
    let answer = call(&app, binary_event(gcs::FINALIZED, &object.to_string())?).await?;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .body
            .contains("\"lots\" is not a 64-bit unsigned integer"),
        "{}",
        answer.body
    );
    // A CloudEvent of a type Herald does not read.
    let answer = call(
        &app,
        binary_event("google.cloud.pubsub.topic.v1.messagePublished", "{}")?,
    )
    .await?;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(sender.sent().is_empty());
    Ok(())
}

#[tokio::test]
async fn health_answers_ok() -> TestResult {
    let (app, _) = app();
    let answer = call(&app, Request::get("/healthz").body(Body::empty())?).await?;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "ok")
    );
    let answer = call(&app, Request::get("/nowhere").body(Body::empty())?).await?;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    Ok(())
}

/// Fails every send, transiently or permanently.
struct FailingSender {
    transient: bool,
}

impl Sender for FailingSender {
    fn name(&self) -> &'static str {
        "failing"
    }

    fn send<'a>(&'a self, _email: &'a Email) -> SendFuture<'a> {
        let (sender, reason, source) = ("failing", "test".to_owned(), None);
        let err = if self.transient {
            DeliveryError::Transient {
                sender,
                reason,
                source,
                retry_after: None,
            }
        } else {
            DeliveryError::Permanent {
                sender,
                reason,
                source,
            }
        };
        Box::pin(async move { Err(err) })
    }
}

#[tokio::test]
async fn failures_are_answered_by_each_platforms_retry_rules() -> TestResult {
    let transient = app_with(
        Arc::new(FailingSender { transient: true }),
        DEFAULT_BODY_LIMIT,
    );
    let permanent = app_with(
        Arc::new(FailingSender { transient: false }),
        DEFAULT_BODY_LIMIT,
    );
    let requests = |app: Router| async move {
        let pubsub = post_json(&app, "/pubsub", PUBSUB_FINALIZE).await?.status;
        let eventgrid = post_json(&app, "/eventgrid", PUT_BLOB).await?.status;
        let minio = call(&app, minio(Some(TOKEN))?).await?.status;
        Ok::<_, Box<dyn std::error::Error>>([pubsub, eventgrid, minio])
    };
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    assert_eq!(requests(transient).await?, [unavailable; 3]);
    assert_eq!(
        requests(permanent).await?,
        [
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::BAD_REQUEST,
            StatusCode::OK
        ]
    );
    Ok(())
}

#[test]
fn listen_address_prefers_flag_then_port_then_config() -> Result<(), ListenError> {
    let flag: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let configured = SocketAddr::from(([10, 0, 0, 5], 9000));
    assert_eq!(
        listen_address(Some(flag), Some("8081"), Some(configured))?,
        flag
    );
    assert_eq!(
        listen_address(None, Some("8081"), Some(configured))?,
        SocketAddr::from(([0, 0, 0, 0], 8081))
    );
    assert_eq!(
        listen_address(None, Some(""), Some(configured))?,
        configured
    );
    assert_eq!(listen_address(None, None, None)?, DEFAULT_LISTEN);
    let err = listen_address(None, Some("eighty"), None).map_err(|e| e.to_string());
    assert_eq!(
        err,
        Err("environment variable PORT is \"eighty\", expected a port number".into())
    );
    Ok(())
}

mod sns {
    //! `POST /sns` with messages signed by a throwaway certificate that a stand-in for SNS
    //! serves on loopback, trusted only through the test-only URL prefix.

    use super::*;
    use crate::sources::sns_https::tests::{NOTIFICATION, Peer, SUBSCRIPTION, sign};

    async fn app_with_sns(
        peer: &Peer,
    ) -> Result<(Router, Arc<MemorySender>), Box<dyn std::error::Error>> {
        let sender = Arc::new(MemorySender::new());
        let config = config::validate::parse(CONFIG, Origin::BuiltIn, &|_| None)
            .unwrap_or_else(|e| panic!("{e}: {:?}", e.problems()));
        let pipeline = Pipeline::new(Arc::new(config), Delivery::Send(sender.clone()));
        let state = AppState::new(pipeline, None).with_sns(peer.receiver()?);
        Ok((router(state, DEFAULT_BODY_LIMIT), sender))
    }

    fn sns_post(doc: &Value) -> Result<Request<Body>, axum::http::Error> {
        Request::post("/sns")
            .header(header::CONTENT_TYPE, "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", doc["Type"].as_str().unwrap_or(""))
            .body(Body::from(doc.to_string()))
    }

    #[tokio::test]
    async fn signed_notification_sends_the_email() -> TestResult {
        let peer = Peer::start().await?;
        let (app, sender) = app_with_sns(&peer).await?;
        let doc = peer.signed(NOTIFICATION, "2")?;
        let answer = call(&app, sns_post(&doc)?).await?;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(sender.sent().len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn forged_notification_is_refused_and_sends_nothing() -> TestResult {
        let peer = Peer::start().await?;
        let (app, sender) = app_with_sns(&peer).await?;
        let mut doc = peer.signed(NOTIFICATION, "1")?;
        let message = doc["Message"]
            .as_str()
            .unwrap_or_default()
            .replace("acme", "acmf");
        doc["Message"] = json!(message);
        let answer = call(&app, sns_post(&doc)?).await?;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
        assert!(sender.sent().is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn subscription_is_confirmed_after_the_signature_check() -> TestResult {
        let peer = Peer::start().await?;
        let (app, sender) = app_with_sns(&peer).await?;
        let doc = peer.signed(SUBSCRIPTION, "2")?;
        let answer = call(&app, sns_post(&doc)?).await?;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(peer.hits().1, 1, "the SubscribeURL is visited once");
        assert!(sender.sent().is_empty());

        let mut forged = peer.signed(SUBSCRIPTION, "2")?;
        forged["Token"] = json!("another-token");
        let answer = call(&app, sns_post(&forged)?).await?;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(peer.hits().1, 1, "a forged confirmation is never visited");
        Ok(())
    }

    #[tokio::test]
    async fn without_configured_topics_every_message_is_refused() -> TestResult {
        let peer = Peer::start().await?;
        let (app, sender) = app();
        let mut doc = peer.signed(NOTIFICATION, "2")?;
        sign(&mut doc)?;
        let answer = call(&app, sns_post(&doc)?).await?;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(peer.hits(), (0, 0, 0), "nothing fetched");
        assert!(sender.sent().is_empty());
        Ok(())
    }
}

/// A router over a `[queue]` in `dir` whose queue is full after `max_entries` uploads.
fn queued_app(
    dir: &tempfile::TempDir,
    max_entries: usize,
) -> Result<(Router, crate::queue::Inbox, Arc<MemorySender>), Box<dyn std::error::Error>> {
    let config = config::validate::parse(CONFIG, Origin::BuiltIn, &|_| None)?;
    let sender = Arc::new(MemorySender::new());
    let pipeline = Pipeline::new(Arc::new(config), Delivery::Send(sender.clone()));
    let inbox = crate::queue::Inbox::open(&crate::queue::QueueSettings {
        path: dir.path().join("state.redb"),
        max_entries,
        concurrency: 1,
        retry_max: Duration::from_secs(1),
        max_age: Duration::from_secs(60),
        drain_grace: Duration::from_secs(1),
    })?;
    let state = AppState::new(pipeline, None).with_queue(inbox.clone());
    Ok((router(state, DEFAULT_BODY_LIMIT), inbox, sender))
}

#[tokio::test]
async fn a_queued_upload_is_acknowledged_once_stored_and_a_full_queue_is_a_503() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (app, inbox, sender) = queued_app(&dir, 1)?;

    let answer = call(&app, minio(None)?).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["queued"], 1);
    assert_eq!(inbox.waiting().await?, 1);
    assert!(sender.sent().is_empty(), "delivery is the drain loop's job");

    let full = call(&app, minio(None)?).await?;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.body, "the event queue is full (1 uploads waiting)\n");

    let unreadable = call(&app, post("/minio").body(Body::from("{\"Records\": 7}"))?).await?;
    assert_eq!(unreadable.status, StatusCode::BAD_REQUEST);
    assert_eq!(inbox.waiting().await?, 1);
    Ok(())
}
