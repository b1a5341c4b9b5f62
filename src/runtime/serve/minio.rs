//! `POST /minio`: webhooks from MinIO and other S3-compatible servers.
//!
//! MinIO sends its webhook target's `auth_token` as the `Authorization` header exactly as
//! configured (<https://min.io/docs/minio/linux/administration/monitoring/publish-events-to-webhook.html>).
//! When `[serve] minio_token_env` names a token, the header must equal it; the comparison
//! takes the same time wherever the first difference is, so it reveals nothing of the token.
//! The body is any payload `herald invoke` reads: MinIO's wrapper or plain S3 records.

use aws_lc_rs::digest;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;
use tracing::warn;

use super::AppState;
use super::reply::{self, Platform};
use crate::secret::Secret;
use crate::sources;

/// Checks the token, then hands the body to the pipeline.
pub(super) async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(expected) = &state.minio_token
        && !authorized(expected, &headers)
    {
        let present = headers.contains_key(AUTHORIZATION);
        warn!(
            authorization_present = present,
            "webhook refused: wrong or missing token"
        );
        let challenge = [(WWW_AUTHENTICATE, "Bearer realm=\"herald\"")];
        let message = "Authorization header missing or wrong\n";
        return (StatusCode::UNAUTHORIZED, challenge, message).into_response();
    }
    reply::handle(&state, Platform::Minio, sources::parse(&body)).await
}

/// Compares digests of the two values, so neither their contents nor their lengths show in
/// the time taken.
fn authorized(expected: &Secret, headers: &HeaderMap) -> bool {
    let Some(given) = headers.get(AUTHORIZATION) else {
        return false;
    };
    let given = digest::digest(&digest::SHA256, given.as_bytes());
    let expected = digest::digest(&digest::SHA256, expected.expose().as_bytes());
    given.as_ref().ct_eq(expected.as_ref()).into()
}
