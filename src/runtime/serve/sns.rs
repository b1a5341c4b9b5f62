//! `POST /sns`: Amazon SNS HTTPS subscriptions.
//!
//! SNS posts JSON as `text/plain`. Nothing in a message is trusted, not even its type, until
//! [`SnsHttps`](crate::sources::sns_https::SnsHttps) has checked its signature against a
//! certificate from an SNS host; only then is a subscription confirmed (for the topics in
//! `[serve] sns_topics`) or a notification's S3 event handed to the pipeline.
//! SNS retries only 5xx answers and sends 4xx ones to the subscription's dead-letter queue
//! when it has one (<https://docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html>).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::{info, warn};

use super::AppState;
use super::reply::{self, Platform};
use crate::sources::{self, sns_https::Received};

/// Checks the message, then confirms, acknowledges or delivers it.
pub(super) async fn delivery(State(state): State<AppState>, body: Bytes) -> Response {
    let Some(sns) = &state.sns else {
        warn!("sns message refused: no [serve] sns_topics configured");
        let message = "no SNS topics are configured for this endpoint\n";
        return (StatusCode::FORBIDDEN, message).into_response();
    };
    match sns.receive(&body).await {
        Ok(Received::Notification { message, .. }) => {
            let parsed = sources::parse(message.as_bytes());
            reply::handle(&state, Platform::Sns, parsed).await
        }
        Ok(Received::Confirmed { topic_arn }) => {
            info!(topic = %topic_arn, "sns subscription confirmed");
            (StatusCode::OK, "subscription confirmed\n").into_response()
        }
        Ok(Received::Unsubscribed { topic_arn }) => {
            warn!(topic = %topic_arn, "sns subscription ended by the topic");
            (StatusCode::OK, "unsubscription noted\n").into_response()
        }
        Err(err) => {
            warn!(error = %err, transient = err.is_transient(), "sns message refused");
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            (status, format!("{err}\n")).into_response()
        }
    }
}
