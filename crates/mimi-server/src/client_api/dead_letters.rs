//! The operator's dead letters (docs/operations.md "Dead letters"): fanout
//! events a follower refused permanently (-06 §5.5), kept aside by
//! [`crate::fanout`] so the rest of their lane is delivered. Admin token.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mimi_client_api::{DeadLetterRetried, DeadLetterView, DeadLettersQuery, paths};
use mimi_store::OutboxId;

use super::auth::Admin;
use crate::error::ApiError;
use crate::fanout;
use crate::state::{AppState, now_ms};

/// Dead letters listed when the request names no `limit`.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most dead letters listed by one request.
pub const MAX_LIMIT: u32 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::ADMIN_DEAD_LETTERS, get(list))
        .route(paths::ADMIN_DEAD_LETTER, delete(drop_one))
        .route(paths::ADMIN_DEAD_LETTER_RETRY, post(retry))
}

/// `GET /client/v1/admin/dead-letters?limit=M`: the oldest first.
async fn list(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<DeadLettersQuery>,
) -> Result<Json<Vec<DeadLetterView>>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let dead = state.store.dead_letters(limit).await?;
    Ok(Json(
        dead.into_iter()
            .map(|d| DeadLetterView {
                id: d.id.0,
                destination: d.destination,
                room_id: d.room_id,
                seq: d.seq,
                attempts: d.attempts,
                enqueued_at_ms: d.enqueued_at_ms,
                dead_at_ms: d.dead_at_ms,
                status: d.status,
                answer: d.answer,
                fanout: B64.encode(d.payload),
            })
            .collect(),
    ))
}

/// `POST /client/v1/admin/dead-letters/{id}/retry`: back into its lane at
/// its seq, due now; delivered after the events already delivered.
async fn retry(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<DeadLetterRetried>, ApiError> {
    match state
        .store
        .retry_dead_letter(OutboxId(id), now_ms())
        .await?
    {
        Some(OutboxId(outbox_id)) => {
            fanout::wake(&state);
            Ok(Json(DeadLetterRetried { outbox_id }))
        }
        None => Err(not_found(id)),
    }
}

/// `DELETE /client/v1/admin/dead-letters/{id}`: the event is not delivered
/// to that follower.
async fn drop_one(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    if state.store.drop_dead_letter(OutboxId(id)).await? {
        tracing::warn!(id, "dead letter dropped by the operator");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(id))
    }
}

fn not_found(id: u64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no dead letter {id}"))
}
