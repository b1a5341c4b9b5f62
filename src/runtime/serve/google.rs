//! `POST /cloudevents` and `POST /pubsub`: Cloud Storage events pushed by Eventarc (or any
//! CloudEvents sender, such as Knative) and by Pub/Sub push subscriptions.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use serde_json::Value;

use super::AppState;
use super::reply::{self, Platform};
use crate::sources::{Payload, SourceError, cloudevents, gcs};

/// A CloudEvent in binary mode (`ce-*` headers, the data as body), structured mode or a batch.
pub(super) async fn cloudevents(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    reply::handle(&state, Platform::Google, read_cloudevents(&headers, &body)).await
}

/// A Pub/Sub push request carrying a Cloud Storage notification.
pub(super) async fn pubsub(State(state): State<AppState>, body: Bytes) -> Response {
    let parsed = json(&body).and_then(|value| {
        if !gcs::is_pubsub_push(&value) {
            let reason = "expected a Pub/Sub push request: {\"message\": {...}, \
                          \"subscription\": ...}";
            return Err(unknown(reason));
        }
        gcs::read_pubsub_push(value)
    });
    reply::handle(&state, Platform::Google, parsed).await
}

/// Binary mode is recognized by its `ce-specversion` header; without it the body must be a
/// structured event or a batch, whatever the content type says.
fn read_cloudevents(headers: &HeaderMap, body: &[u8]) -> Result<Payload, SourceError> {
    if headers.contains_key("ce-specversion") && !is_structured_content(headers) {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        return cloudevents::read(cloudevents::from_binary(header, body)?);
    }
    let value = json(body)?;
    if cloudevents::is_structured(&value) {
        cloudevents::read_structured(value)
    } else if cloudevents::is_batch(&value) {
        cloudevents::read_batch(value)
    } else {
        Err(unknown(
            "expected a CloudEvent: ce-* headers (binary mode) or a JSON event with \
             \"specversion\" and \"type\" (structured mode)",
        ))
    }
}

fn is_structured_content(headers: &HeaderMap) -> bool {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    content_type.is_some_and(|ct| {
        ct.starts_with(cloudevents::STRUCTURED_CONTENT_TYPE)
            || ct.starts_with(cloudevents::BATCH_CONTENT_TYPE)
    })
}

/// The body as JSON, or why it is not.
pub(super) fn json(body: &[u8]) -> Result<Value, SourceError> {
    serde_json::from_slice(body).map_err(|err| unknown(format!("not valid JSON ({err})")))
}

pub(super) fn unknown(reason: impl Into<String>) -> SourceError {
    SourceError::UnknownFormat {
        reason: reason.into(),
    }
}
