//! The routes, the body limit and the per-request span.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::Request;
use axum::routing::{get, post};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use super::{AppState, azure, google, minio, sns};

/// Every route of `herald serve`, with requests over `body_limit` bytes answered 413.
pub fn router(state: AppState, body_limit: usize) -> Router {
    let routes = Router::new()
        .route(
            "/cloudevents",
            post(google::cloudevents).options(azure::handshake),
        )
        .route("/pubsub", post(google::pubsub))
        .route(
            "/eventgrid",
            post(azure::event_grid).options(azure::handshake),
        )
        .route("/minio", post(minio::webhook))
        .route("/healthz", get(healthz));
    mount_sns(routes)
        .with_state(state)
        // One limit for every route, set by the operator, instead of axum's fixed 2 MB.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // The pipeline logs failed deliveries at the level they deserve.
                .on_failure(()),
        )
}

/// `POST /sns`: SNS HTTPS subscriptions, every message signature-checked before use.
fn mount_sns(routes: Router<AppState>) -> Router<AppState> {
    routes.route("/sns", post(sns::delivery))
}

async fn healthz() -> &'static str {
    "ok"
}

/// One span per request: method, route and the caller's request id when it sends one.
fn request_span(request: &Request<Body>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(|id| id.chars().take(64).collect::<String>());
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id = request_id.as_deref(),
    )
}
