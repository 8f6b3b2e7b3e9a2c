//! The hub's federation endpoints (-06 §5.3, §5.4, §5.6):
//! `POST /v1/update/{roomId}`, `POST /v1/submitMessage/{roomId}` and
//! `POST /v1/groupInfo/{roomId}`. `{roomId}` is the percent-encoded room
//! URI (divergence T5); the logic lives in [`crate::hub`].

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mimi_protocol::MimiUri;

use crate::error::{ApiError, decode_body, encode_body};
use crate::hub::{self, parse_room_id};
use crate::outbound::MIMI_CONTENT_TYPE;
use crate::state::AppState;
use crate::transport::SourceProvider;
use mimi_room::engine::Requester;

/// A TLS-PL response body.
pub fn mimi_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, MIMI_CONTENT_TYPE)],
        body,
    )
        .into_response()
}

/// The room, which must be hosted by this provider (its URI's domain).
fn hosted_room(state: &AppState, raw: &str) -> Result<MimiUri, ApiError> {
    let room_id = parse_room_id(raw)?;
    if !room_id.domain().eq_ignore_ascii_case(state.domain()) {
        return Err(ApiError::not_found(format!(
            "{room_id} is not hosted by {}",
            state.domain()
        )));
    }
    Ok(room_id)
}

/// `POST /update/{roomId}` (-06 §5.3). The source provider must be the
/// provider of the committing or proposing client.
pub(crate) async fn update(
    State(state): State<AppState>,
    Extension(SourceProvider(source)): Extension<SourceProvider>,
    Path(room_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room_id = hosted_room(&state, &room_id)?;
    let request = decode_body(&body)?;
    let response = hub::update(&state, &room_id, &Requester::Provider(source), request).await?;
    Ok(mimi_response(StatusCode::OK, encode_body(&response)?))
}

/// `POST /submitMessage/{roomId}` (-06 §5.4). `sendingUri` must be a user
/// of the source provider.
pub(crate) async fn submit_message(
    State(state): State<AppState>,
    Extension(SourceProvider(source)): Extension<SourceProvider>,
    Path(room_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room_id = hosted_room(&state, &room_id)?;
    let request = decode_body(&body)?;
    let response =
        hub::submit_message(&state, &room_id, &Requester::Provider(source), request).await?;
    Ok(mimi_response(StatusCode::OK, encode_body(&response)?))
}

/// `POST /groupInfo/{roomId}` (-06 §5.6). The requesting client must be a
/// client of the source provider.
pub(crate) async fn group_info(
    State(state): State<AppState>,
    Extension(SourceProvider(source)): Extension<SourceProvider>,
    Path(room_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room_id = hosted_room(&state, &room_id)?;
    let request = decode_body(&body)?;
    let (status, response) =
        hub::group_info(&state, &room_id, &Requester::Provider(source), request).await?;
    Ok(mimi_response(status, encode_body(&response)?))
}
