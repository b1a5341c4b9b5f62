//! The dashboard's routes.

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

use super::guard;
use super::pages;
use super::state::DashboardState;

/// Every dashboard route, with the security headers and the `Host` check on all of them.
pub fn router(state: DashboardState) -> Router {
    Router::new()
        .route("/", get(pages::events))
        .route("/events/{id}", get(pages::event))
        .route("/events/{id}/emails/{n}", get(pages::email))
        .route("/dead-letters", get(pages::dead_letters))
        .route("/dead-letters/{id}/replay", post(pages::replay))
        .route("/dead-letters/{id}/drop", post(pages::drop_entry))
        .route("/style.css", get(pages::style))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::headers,
        ))
        .with_state(state)
}
