//! Follower endpoint `POST /v1/notify/{roomId}` (-06 §5.5 "Fanout Messages
//! and Room Events").
//!
//! The room's hub sends one or more concatenated `FanoutMessage`s of one
//! room; we queue them for our devices (see [`crate::delivery`]) and answer
//! 201 with no body. A duplicate request (same hub, same body) is answered
//! 201 and not processed again (-06 §5.5).

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;

use crate::delivery::{self, DeliveryOutcome};
use crate::error::ApiError;
use crate::state::AppState;
use crate::transport::SourceProvider;

/// `POST /notify/{roomId}` (-06 §5.5).
///
/// Only the room's hub may notify: the hub of a room is the provider named
/// by the room URI's domain (docs/client-api.md "Rooms and hubs"); any
/// other source provider gets 403. A body that is not a sequence of
/// `FanoutMessage`s gets 400.
pub(crate) async fn notify(
    State(state): State<AppState>,
    Extension(SourceProvider(source)): Extension<SourceProvider>,
    Path(room_id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let room = crate::hub::parse_room_id(&room_id)?;
    let hub = room.domain().to_ascii_lowercase();
    if source != hub {
        return Err(ApiError::forbidden(format!(
            "{source} is not the hub of this room"
        )));
    }
    let items = delivery::split_batch(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed FanoutMessage: {e}")))?;
    let outcome = delivery::deliver_batch(&state, &hub, room.as_str(), &items).await?;
    match outcome {
        DeliveryOutcome::Duplicate => {
            tracing::debug!(room = room.as_str(), hub, "duplicate notify acknowledged");
        }
        DeliveryOutcome::Logged { log_entries } => {
            tracing::debug!(
                room = room.as_str(),
                hub,
                messages = items.len(),
                log_entries,
                "notify logged"
            );
        }
    }
    Ok(StatusCode::CREATED)
}
