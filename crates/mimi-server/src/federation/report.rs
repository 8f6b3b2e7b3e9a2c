//! Report abuse: `POST /reportAbuse/{roomId}` (-06 §5.9).
//!
//! The hub verifies the frank of every `AbusiveMessage` before storing the
//! report for its operator (listed by `GET /client/v1/admin/reports`): it
//! finds the salt and the sender and room URIs in the message content,
//! recomputes the franking tag and the `ServerFrankingContext`, regenerates
//! the server frank with its `hub_key` and checks the integrity signature.
//! A report with a frank that does not verify is refused as a whole. The
//! checks are [`mimi_room::engine::HubEngine::verify_report`].

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use mimi_protocol::MimiUri;
use mimi_protocol::msgs::AbuseReport;
use mimi_room::rejection::ReportRejection;
use mimi_store::NewAbuseReport;

use crate::error::{ApiError, decode_body};
use crate::hub::parse_room_id;
use crate::state::{AppState, now_ms};
use crate::transport::SourceProvider;

/// Accepts a report about a room hosted here; 204, no body.
pub(crate) async fn report_abuse(
    State(state): State<AppState>,
    Extension(SourceProvider(source)): Extension<SourceProvider>,
    Path(room_id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let room_id = parse_room_id(&room_id)?;
    receive_report(&state, &room_id, &source, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Verifies and stores a report received from the provider `source` (a
/// peer, or this provider for its own users); returns the report's id.
///
/// Answers: 404 for a room not hosted here, 400 for a malformed report,
/// 403 when `reportingUser` is not a user of `source` or when a report
/// without messages comes from a provider with no participant in the
/// room, 422 when an `AbusiveMessage` does not verify (-06 §5.9 defines
/// no codes). A report is stored as verified only if it carries messages
/// and every frank verifies; one without messages is stored unverified.
pub async fn receive_report(
    state: &AppState,
    room_id: &MimiUri,
    source: &str,
    body: &[u8],
) -> Result<u64, ApiError> {
    let record = match room_id.domain().eq_ignore_ascii_case(state.domain()) {
        true => state.store.load_room(room_id.as_str()).await?,
        false => None,
    };
    let Some(record) = record else {
        return Err(ApiError::not_found(format!("{room_id} is not hosted here")));
    };
    let report: AbuseReport = decode_body(body)?;
    let verified = state
        .hub
        .verify_report(&record.group_state, room_id, source, &report)
        .map_err(|rejection| {
            let status = match rejection {
                ReportRejection::NotUtf8 { .. } | ReportRejection::NotAUser { .. } => {
                    StatusCode::BAD_REQUEST
                }
                ReportRejection::ReporterNotFromSource { .. }
                | ReportRejection::UnverifiableFromStranger { .. }
                | ReportRejection::MayNotReport { .. } => StatusCode::FORBIDDEN,
                ReportRejection::Message { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            };
            ApiError::new(status, rejection.to_string())
        })?;
    let record = NewAbuseReport {
        room_id: room_id.to_string(),
        source_provider: source.to_ascii_lowercase(),
        reporting_user: verified.reporting_user,
        alleged_abuser: verified.alleged_abuser.to_string(),
        report: body.to_vec(),
        received_at_ms: now_ms(),
        franks_verified: verified.franks_verified,
    };
    let id = state.store.add_abuse_report(record).await?;
    tracing::info!(
        id,
        room = %room_id,
        messages = report.messages.len(),
        franks_verified = verified.franks_verified,
        "abuse report stored"
    );
    Ok(id)
}
