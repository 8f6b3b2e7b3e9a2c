//! Report abuse: `POST /reportAbuse/{roomId}` (-06 §5.9).
//!
//! The hub stores the report for its operator (listed by
//! `GET /client/v1/admin/reports`). Franking verification of the
//! `AbusiveMessage`s is not done here: a stored report claims nothing
//! about their authenticity.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use mimi_protocol::msgs::AbuseReport;
use mimi_store::NewAbuseReport;

use crate::error::{ApiError, decode_body};
use crate::hub::parse_room_id;
use crate::state::{AppState, now_ms};
use crate::transport::SourceProvider;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/reportAbuse/{room_id}", post(report_abuse))
}

/// Accepts a report about a room hosted here; 204, no body.
async fn report_abuse(
    State(state): State<AppState>,
    Extension(SourceProvider(source)): Extension<SourceProvider>,
    Path(room_id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let room_id = parse_room_id(&room_id)?;
    if !room_id.domain().eq_ignore_ascii_case(state.domain())
        || state.store.load_room(room_id.as_str()).await?.is_none()
    {
        return Err(ApiError::not_found(format!("{room_id} is not hosted here")));
    }
    let report: AbuseReport = decode_body(&body)?;
    let text = |u: &mimi_protocol::IdentifierUri, what: &str| {
        u.as_str()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request(format!("{what} is not UTF-8")))
    };
    let record = NewAbuseReport {
        room_id: room_id.to_string(),
        source_provider: source,
        reporting_user: text(&report.reporting_user, "reportingUser")?,
        alleged_abuser: text(&report.alleged_abuser_uri, "allegedAbuserUri")?,
        report: body.to_vec(),
        received_at_ms: now_ms(),
    };
    let id = state.store.add_abuse_report(record).await?;
    tracing::info!(id, room = %room_id, "abuse report stored");
    Ok(StatusCode::NO_CONTENT)
}
