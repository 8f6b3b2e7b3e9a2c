//! Report abuse: `POST /reportAbuse/{roomId}` (-06 §5.9).
//!
//! The hub verifies the frank of every `AbusiveMessage` before storing the
//! report for its operator (listed by `GET /client/v1/admin/reports`): it
//! finds the salt and the sender and room URIs in the message content,
//! recomputes the franking tag and the `ServerFrankingContext`, regenerates
//! the server frank with its `hub_key` and checks the integrity signature.
//! A report with a frank that does not verify is refused as a whole.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use mimi_content::MimiContent;
use mimi_protocol::msgs::{AbuseReport, AbusiveMessage, ServerFrankingContext};
use mimi_protocol::{IdentifierUri, MimiUri, MimiUriKind};
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
    receive_report(&state, &room_id, &source, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Verifies and stores a report received from the provider `source` (a
/// peer, or this provider for its own users); returns the report's id.
///
/// Answers: 404 for a room not hosted here, 400 for a malformed report,
/// 403 when `reportingUser` is not a user of `source`, 422 when an
/// `AbusiveMessage` does not verify (-06 §5.9 defines no codes).
pub async fn receive_report(
    state: &AppState,
    room_id: &MimiUri,
    source: &str,
    body: &[u8],
) -> Result<u64, ApiError> {
    if !room_id.domain().eq_ignore_ascii_case(state.domain())
        || state.store.load_room(room_id.as_str()).await?.is_none()
    {
        return Err(ApiError::not_found(format!("{room_id} is not hosted here")));
    }
    let report: AbuseReport = decode_body(body)?;
    let reporting_user = text(&report.reporting_user, "reportingUser")?;
    // An empty reportingUser is an anonymous report (divergence M25).
    if !reporting_user.is_empty() {
        let user = user_uri(&reporting_user, "reportingUser")?;
        if !user.domain().eq_ignore_ascii_case(source) {
            return Err(ApiError::forbidden(format!(
                "reportingUser {user} is not a user of {source}"
            )));
        }
    }
    let alleged_abuser = user_uri(
        &text(&report.alleged_abuser_uri, "allegedAbuserUri")?,
        "allegedAbuserUri",
    )?;
    for (i, message) in report.messages.iter().enumerate() {
        verify_abusive_message(state, room_id, &alleged_abuser, message).map_err(|reason| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("messages[{i}]: {reason}"),
            )
        })?;
    }
    let record = NewAbuseReport {
        room_id: room_id.to_string(),
        source_provider: source.to_ascii_lowercase(),
        reporting_user,
        alleged_abuser: alleged_abuser.to_string(),
        report: body.to_vec(),
        received_at_ms: now_ms(),
        franks_verified: true,
    };
    let id = state.store.add_abuse_report(record).await?;
    tracing::info!(
        id,
        room = %room_id,
        messages = report.messages.len(),
        "abuse report verified and stored"
    );
    Ok(id)
}

fn text(uri: &IdentifierUri, what: &str) -> Result<String, ApiError> {
    uri.as_str()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::bad_request(format!("{what} is not UTF-8")))
}

fn user_uri(text: &str, what: &str) -> Result<MimiUri, ApiError> {
    MimiUri::parse(text)
        .ok()
        .filter(|u| u.kind() == MimiUriKind::User)
        .ok_or_else(|| {
            ApiError::bad_request(format!("{what} is not a mimi://<domain>/u/<user> URI"))
        })
}

/// -06 §5.9: "the hub finds the salt, sender URI, and room URI inside the
/// `message_content` and the `accepted_timestamp` to recalculate the
/// `franking_tag` and `context`", then regenerates `server_frank` and
/// verifies the integrity signature. The message must also belong to this
/// room and to the alleged abuser, so a genuine frank cannot be replayed
/// against another room or user.
fn verify_abusive_message(
    state: &AppState,
    room_id: &MimiUri,
    alleged_abuser: &MimiUri,
    message: &AbusiveMessage,
) -> Result<(), String> {
    let bytes = message.message_content.as_slice();
    let content = MimiContent::from_cbor(bytes).map_err(|e| format!("message_content: {e}"))?;
    let sender = content
        .extensions
        .sender_uri()
        .ok_or("message_content has no sender_uri extension")?;
    let room = content
        .extensions
        .room_uri()
        .ok_or("message_content has no room_uri extension")?;
    if room != room_id.as_str() {
        return Err(format!("the message's room_uri {room} is not {room_id}"));
    }
    if sender != alleged_abuser.as_str() {
        return Err(format!(
            "the message's sender_uri {sender} is not allegedAbuserUri {alleged_abuser}"
        ));
    }
    let franking_tag = mimi_content::franking::franking_tag(&content.salt, bytes);
    let context = ServerFrankingContext {
        sender_uri: IdentifierUri::new(sender),
        room_uri: IdentifierUri::new(room),
        accepted_timestamp: message.accepted_timestamp,
    };
    state
        .franking
        .verify(
            state.crypto.as_ref(),
            &franking_tag,
            &context,
            &message.frank,
        )
        .map_err(|e| e.to_string())
}
