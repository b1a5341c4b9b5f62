//! Turns what the pipeline made of a request into the status code its platform acts on.
//!
//! | outcome | Google (`/cloudevents`, `/pubsub`) | Event Grid, SNS | MinIO (`/minio`) |
//! | --- | --- | --- | --- |
//! | sent, duplicate, queued, ignored, skipped, unmatched, test | 200 | 200 | 200 |
//! | payload unreadable | 400 | 400 | 400 |
//! | a delivery may succeed later, or the queue cannot store it | 503 | 503 | 503 |
//! | a delivery can never succeed | 422 | 400 | 200 |
//!
//! Why the last row differs: Pub/Sub and Eventarc retry every answer that is not a 2xx until
//! the subscription's dead-letter topic takes the message or its retention ends, so a 422
//! hands a permanent failure to the dead-letter topic where an operator can replay it (as
//! `herald worker` leaves such messages to the SQS redrive policy). Event Grid does not retry
//! a 400 and dead-letters it at once when the subscription has a dead-letter destination
//! (<https://learn.microsoft.com/azure/event-grid/delivery-and-retry>). MinIO has no dead
//! letter and would resend from its queue store, so a permanent failure is acknowledged
//! there. In every case the pipeline has logged the failure at ERROR.
//!
//! A request with a transient failure among permanent ones gets the transient answer: the
//! retry may help, and the dedupe store keeps emails already sent from going out twice.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::{debug, warn};

use super::AppState;
use crate::queue::QueueError;
use crate::record::{Outcome, Report};
use crate::sources::{Payload, SourceError};

/// Which platform's retry rules a route answers by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Platform {
    /// Eventarc, Pub/Sub push, Knative: every non-2xx is retried.
    Google,
    /// Azure Event Grid: 400, 401, 403 and 413 are not retried.
    EventGrid,
    /// MinIO and other S3-compatible webhooks: no dead letter.
    Minio,
    /// SNS HTTPS: 4xx answers are not retried and go to the subscription's dead-letter queue.
    Sns,
}

/// Runs what a route parsed through the pipeline and answers.
pub(super) async fn handle(
    state: &AppState,
    platform: Platform,
    parsed: Result<Payload, SourceError>,
) -> Response {
    let payload = match parsed.and_then(readable) {
        Ok(payload) => payload,
        Err(err) => return unreadable(&err),
    };
    let report = match &state.queue {
        Some(queue) => match queue.accept(payload).await {
            Ok(report) => report,
            Err(err) => return not_queued(&err),
        },
        None => state.pipeline.handle_parsed(payload).await,
    };
    answer(platform, &report)
}

/// A 503 when the queue could not store the uploads: nothing was acknowledged, so the
/// platform sends them again.
fn not_queued(err: &QueueError) -> Response {
    warn!(error = %err, "request refused: uploads not queued; the sender will retry");
    (StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n")).into_response()
}

/// A 400 for a payload Herald cannot read; logged, since the event it carried is lost.
pub(super) fn unreadable(err: &SourceError) -> Response {
    warn!(error = %err, "request refused: payload cannot be read");
    (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response()
}

/// The status and a summary of counts; the counts hold no user data.
fn answer(platform: Platform, report: &Report) -> Response {
    let status = status(platform, report);
    let counts = report.counts();
    debug!(status = status.as_u16(), ?counts, "request answered");
    (status, Json(counts)).into_response()
}

fn status(platform: Platform, report: &Report) -> StatusCode {
    let failures: Vec<bool> = report
        .entries
        .iter()
        .filter_map(|entry| match &entry.outcome {
            Outcome::Failed { transient, .. } => Some(*transient),
            _ => None,
        })
        .collect();
    if failures.is_empty() {
        return StatusCode::OK;
    }
    if failures.contains(&true) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match platform {
        Platform::Google => StatusCode::UNPROCESSABLE_ENTITY,
        Platform::EventGrid | Platform::Sns => StatusCode::BAD_REQUEST,
        Platform::Minio => StatusCode::OK,
    }
}

/// A payload whose every record is unreadable is answered as unreadable as a whole, so a
/// malformed single event gets a 400 rather than a delivery failure's status.
fn readable(payload: Payload) -> Result<Payload, SourceError> {
    if let Payload::Records(records) = &payload
        && let Some(Err(first)) = records.first()
        && records.iter().all(Result::is_err)
    {
        return Err(first.clone());
    }
    Ok(payload)
}
