//! `POST /eventgrid` and the CloudEvents `OPTIONS` handshake: Azure Blob Storage events from
//! Event Grid, in the Event Grid schema or the CloudEvents 1.0 schema.
//!
//! Event Grid checks that an endpoint wants its events before sending any: with the Event
//! Grid schema it posts a `SubscriptionValidationEvent` that must be answered 200 with
//! `{"validationResponse": "<validationCode>"}`; with the CloudEvents schema it sends
//! `OPTIONS` with `WebHook-Request-Origin`, answered 200 with `WebHook-Allowed-Origin`
//! (<https://learn.microsoft.com/azure/event-grid/webhook-event-delivery>,
//! <https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/http-webhook.md#4-abuse-protection>).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::{info, warn};

use super::AppState;
use super::google::{json, unknown};
use super::reply::{self, Platform};
use crate::sources::{azure_blob, cloudevents};

const REQUEST_ORIGIN: &str = "webhook-request-origin";
const ALLOWED_ORIGIN: &str = "webhook-allowed-origin";
const ALLOWED_RATE: &str = "webhook-allowed-rate";

/// Event Grid events (a JSON array), or CloudEvents from an Event Grid subscription that uses
/// the CloudEvents schema.
pub(super) async fn event_grid(State(state): State<AppState>, body: Bytes) -> Response {
    let value = match json(&body) {
        Ok(value) => value,
        Err(err) => return reply::unreadable(&err),
    };
    if let Some(code) = azure_blob::validation_code(&value) {
        info!("Event Grid subscription validated");
        return Json(json!({ "validationResponse": code })).into_response();
    }
    let parsed = if azure_blob::is_event_grid(&value) {
        azure_blob::read_event_grid(value)
    } else if cloudevents::is_structured(&value) {
        cloudevents::read_structured(value)
    } else if cloudevents::is_batch(&value) {
        cloudevents::read_batch(value)
    } else {
        Err(unknown(
            "expected an array of Event Grid events or CloudEvents from Event Grid",
        ))
    };
    reply::handle(&state, Platform::EventGrid, parsed).await
}

/// The abuse-protection handshake: any origin that asks is allowed, at any rate; who may
/// post is decided by who can reach the endpoint.
pub(super) async fn handshake(headers: HeaderMap) -> Response {
    let Some(origin) = headers.get(REQUEST_ORIGIN).cloned() else {
        warn!("OPTIONS without WebHook-Request-Origin refused");
        let message = "OPTIONS here is the CloudEvents webhook handshake: \
                       send WebHook-Request-Origin\n";
        return (StatusCode::BAD_REQUEST, message).into_response();
    };
    info!("CloudEvents webhook handshake answered");
    let mut response = StatusCode::OK.into_response();
    let answer = response.headers_mut();
    answer.insert(ALLOWED_ORIGIN, origin);
    answer.insert(ALLOWED_RATE, HeaderValue::from_static("*"));
    response
}
