//! The provider-internal client API (docs/client-api.md): how a provider's
//! own clients register devices, upload KeyPackages, create rooms, send
//! handshake and application messages, and fetch their queued events.
//! Served over TLS (server authentication); clients use bearer tokens.

pub mod auth;
pub mod dead_letters;
pub mod events;
pub mod registration;
pub mod rooms;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use mimi_client_api::paths;
use tower_http::timeout::TimeoutLayer;

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let limits = &state.config.limits;
    let general = Router::new()
        .route(paths::HEALTH, get(health))
        .route(paths::METRICS, get(crate::metrics::render))
        .merge(registration::routes())
        .merge(rooms::routes())
        .merge(events::routes())
        .merge(dead_letters::routes())
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // A declared length over the limit is answered 413 at once,
        // before any of the body is read: a peer still sending gets the
        // answer rather than waiting until the limit is reached.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            limits.max_body_bytes,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(limits.request_timeout_ms),
        ));
    // Assets have their own body limit and timeouts (`[assets]`).
    general
        .merge(crate::assets::routes::client_routes(&state.config))
        .layer(axum::middleware::from_fn_with_state(
            state.runtime.metrics().clone(),
            crate::metrics::track_requests,
        ))
        .with_state(state)
}

/// Liveness and storage readiness.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::warn!(%e, "health check: store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}
