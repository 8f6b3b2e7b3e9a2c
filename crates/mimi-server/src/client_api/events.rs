//! A device's view of the delivery log (docs/client-api.md "Delivery to
//! clients"): `GET /client/v1/events` and `POST /client/v1/events/ack`.
//!
//! Each event is one `FanoutMessage` (-06 §5.5) of a room the device is
//! in, in delivery order; unacknowledged events are delivered again.

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mimi_client_api::{Ack, Acked, Event, Events, EventsQuery, paths};

use crate::client_api::auth::AuthenticatedDevice;
use crate::error::ApiError;
use crate::state::AppState;

/// Events returned when the request names no `limit`.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most events returned by one request.
pub const MAX_LIMIT: u32 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::EVENTS, get(fetch))
        .route(paths::EVENTS_ACK, post(ack))
}

/// `GET /client/v1/events?after=N&limit=M`: the device's events with
/// `seq > after` and past its cursor, ascending.
async fn fetch(
    State(state): State<AppState>,
    device: AuthenticatedDevice,
    Query(query): Query<EventsQuery>,
) -> Result<Json<Events>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let events = state
        .store
        .fetch_client_events(device.device.as_str(), query.after, limit)
        .await?
        .into_iter()
        .map(|e| Event {
            seq: e.seq,
            room_id: e.room_id,
            fanout: B64.encode(e.payload),
        })
        .collect();
    Ok(Json(Events { events }))
}

/// `POST /client/v1/events/ack` `{"up_to": N}`: moves the device's cursor
/// to `N`; `deleted` counts the events that acknowledged.
async fn ack(
    State(state): State<AppState>,
    device: AuthenticatedDevice,
    Json(body): Json<Ack>,
) -> Result<Json<Acked>, ApiError> {
    let deleted = state
        .store
        .ack_client_events(device.device.as_str(), body.up_to)
        .await?;
    Ok(Json(Acked { deleted }))
}
