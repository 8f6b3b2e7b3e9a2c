//! The directory document (-06 §5.1): `GET /.well-known/mimi-protocol-directory`,
//! served without client authentication. It lists the endpoints this
//! provider serves ([`super::served`]), each at
//! [`Endpoint::canonical_path`] under `federation.public_url`.
//!
//! [`Endpoint::canonical_path`]: mimi_protocol::endpoints::Endpoint::canonical_path

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mimi_protocol::Directory;
use mimi_protocol::directory::WELL_KNOWN_PATH;

use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route(WELL_KNOWN_PATH, get(directory))
}

/// This provider's directory, built from its public federation URL.
/// Endpoints it does not serve are left out (-06 §5.1 makes no key
/// mandatory).
async fn directory(State(state): State<AppState>) -> Result<Response, ApiError> {
    let directory = Directory::for_base_url(&state.config.public_url(), super::served())
        .map_err(ApiError::internal)?;
    Ok(([(CONTENT_TYPE, "application/json")], directory.to_json()).into_response())
}
