//! Federation endpoints (-06 §5), served over mutual TLS.
//!
//! Every route except the directory sits behind
//! [`crate::transport::authenticate_provider`], so handlers can rely on the
//! [`crate::transport::SourceProvider`] extension.

pub mod consent;
pub mod directory;
pub mod hub;
pub mod identifier;
pub mod key_material;
pub mod notify;
pub mod report;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use tower_http::timeout::TimeoutLayer;

use crate::state::AppState;
use crate::transport::{LocalDomain, authenticate_provider};

pub fn router(state: AppState) -> Router {
    let limits = &state.config.limits;
    let authenticated = Router::new()
        .merge(key_material::routes())
        .merge(hub::routes())
        .merge(notify::routes())
        .merge(consent::routes())
        .merge(identifier::routes())
        .merge(report::routes())
        .layer(middleware::from_fn_with_state(
            LocalDomain(state.config.domain.as_str().into()),
            authenticate_provider,
        ));
    Router::new()
        .merge(directory::routes())
        .merge(authenticated)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(limits.request_timeout_ms),
        ))
        .layer(middleware::from_fn_with_state(
            state.runtime.metrics().clone(),
            crate::metrics::track_requests,
        ))
        .with_state(state)
}
