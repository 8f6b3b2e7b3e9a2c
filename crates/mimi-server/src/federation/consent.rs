//! Convey explicit consent: `POST /requestConsent/{targetDomain}` and
//! `POST /updateConsent/{requesterDomain}` (-06 §5.7, §7), and the consent
//! policy applied to keyMaterial requests (-06 §5.2).
//!
//! Every operation is stored per `ConsentScope` (requester, target, room),
//! the latest one replacing the previous one of the same scope.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use mimi_protocol::msgs::key_material::KeyMaterialUserCode;
use mimi_protocol::msgs::{ConsentEntry, ConsentOperation};
use mimi_protocol::{IdentifierUri, MimiUri};
use mimi_store::{ConsentOperation as StoredOperation, ConsentRecord};

use crate::error::{ApiError, decode_body};
use crate::state::{AppState, now_ms};
use crate::transport::SourceProvider;

/// A ConsentEntry with its URIs parsed.
pub struct ParsedEntry {
    pub entry: ConsentEntry,
    pub requester: MimiUri,
    pub target: MimiUri,
    pub room: Option<MimiUri>,
}

/// Parses the URIs of an entry (400 on garbage).
pub fn parse_entry(entry: ConsentEntry) -> Result<ParsedEntry, ApiError> {
    let uri = |id: &IdentifierUri, what: &str| {
        id.as_str()
            .and_then(|s| MimiUri::parse(s).ok())
            .ok_or_else(|| ApiError::bad_request(format!("{what} is not a mimi URI")))
    };
    Ok(ParsedEntry {
        requester: uri(&entry.requester_uri, "requesterUri")?,
        target: uri(&entry.target_uri, "targetUri")?,
        room: entry
            .room_id
            .as_ref()
            .map(|r| uri(r, "roomId"))
            .transpose()?,
        entry,
    })
}

/// The stored form of a wire consent operation.
pub fn stored_operation(op: ConsentOperation) -> StoredOperation {
    match op {
        ConsentOperation::Cancel => StoredOperation::Cancel,
        ConsentOperation::Request => StoredOperation::Request,
        ConsentOperation::Grant => StoredOperation::Grant,
        ConsentOperation::Revoke => StoredOperation::Revoke,
    }
}

/// Stores an entry for its scope.
pub async fn store_entry(state: &AppState, parsed: &ParsedEntry) -> Result<(), ApiError> {
    state
        .store
        .record_consent(ConsentRecord {
            requester_uri: parsed.requester.to_string(),
            target_uri: parsed.target.to_string(),
            room_id: parsed.room.as_ref().map(ToString::to_string),
            operation: stored_operation(parsed.entry.consent_operation),
            updated_at_ms: now_ms(),
        })
        .await?;
    Ok(())
}

fn same_domain(uri: &MimiUri, domain: &str) -> bool {
    uri.domain().eq_ignore_ascii_case(domain)
}

/// `POST /requestConsent/{targetDomain}` (-06 §5.7): a `request` or
/// `cancel`; `targetUri` is ours, `requesterUri` the sender's. A `cancel`
/// without a matching `request` changes nothing and still answers 201.
pub(crate) async fn request_consent(
    State(state): State<AppState>,
    Extension(SourceProvider(source)): Extension<SourceProvider>,
    Path(target_domain): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let parsed = parse_entry(decode_body(&body)?)?;
    let op = parsed.entry.consent_operation;
    if !matches!(op, ConsentOperation::Request | ConsentOperation::Cancel) {
        return Err(ApiError::bad_request(
            "requestConsent carries a request or cancel",
        ));
    }
    if !target_domain.eq_ignore_ascii_case(state.domain())
        || !same_domain(&parsed.target, state.domain())
    {
        return Err(ApiError::not_found(
            "targetUri is not a user of this provider",
        ));
    }
    if !same_domain(&parsed.requester, &source) {
        return Err(ApiError::forbidden(
            "requesterUri is not a user of the sending provider",
        ));
    }
    if op == ConsentOperation::Cancel && !has_request(&state, &parsed).await? {
        return Ok(StatusCode::CREATED);
    }
    store_entry(&state, &parsed).await?;
    Ok(StatusCode::CREATED)
}

/// Whether the latest operation of the entry's exact scope is a `request`.
async fn has_request(state: &AppState, parsed: &ParsedEntry) -> Result<bool, ApiError> {
    let room = parsed.room.as_ref().map(ToString::to_string);
    Ok(state
        .store
        .consent_entries(parsed.requester.as_str(), parsed.target.as_str())
        .await?
        .iter()
        .any(|e| e.room_id == room && e.operation == StoredOperation::Request))
}

/// `POST /updateConsent/{requesterDomain}` (-06 §5.7): a `grant` or
/// `revoke`; `requesterUri` is ours, `targetUri` the sender's.
pub(crate) async fn update_consent(
    State(state): State<AppState>,
    Extension(SourceProvider(source)): Extension<SourceProvider>,
    Path(requester_domain): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let parsed = parse_entry(decode_body(&body)?)?;
    if !matches!(
        parsed.entry.consent_operation,
        ConsentOperation::Grant | ConsentOperation::Revoke
    ) {
        return Err(ApiError::bad_request(
            "updateConsent carries a grant or revoke",
        ));
    }
    if !requester_domain.eq_ignore_ascii_case(state.domain())
        || !same_domain(&parsed.requester, state.domain())
    {
        return Err(ApiError::not_found(
            "requesterUri is not a user of this provider",
        ));
    }
    if !same_domain(&parsed.target, &source) {
        return Err(ApiError::forbidden(
            "targetUri is not a user of the sending provider",
        ));
    }
    store_entry(&state, &parsed).await?;
    Ok(StatusCode::CREATED)
}

/// The consent policy for a keyMaterial request for a local `target`
/// (-06 §5.2, §7): `None` when allowed.
///
/// The room-specific entry decides first, then the any-room entry; a
/// `revoke` refuses (`noConsentForThisRoom` / `noConsent`), a `grant`
/// allows. Without either, a user with `consent_required` is refused.
pub async fn refusal(
    state: &AppState,
    requester: &str,
    target: &str,
    room: Option<&str>,
) -> Result<Option<KeyMaterialUserCode>, ApiError> {
    let entries = state.store.consent_entries(requester, target).await?;
    let op_for = |r: Option<&str>| {
        entries
            .iter()
            .find(|e| e.room_id.as_deref() == r)
            .map(|e| e.operation)
    };
    if room.is_some() {
        match op_for(room) {
            Some(StoredOperation::Revoke) => {
                return Ok(Some(KeyMaterialUserCode::NoConsentForThisRoom));
            }
            Some(StoredOperation::Grant) => return Ok(None),
            _ => {}
        }
    }
    match op_for(None) {
        Some(StoredOperation::Revoke) => return Ok(Some(KeyMaterialUserCode::NoConsent)),
        Some(StoredOperation::Grant) => return Ok(None),
        _ => {}
    }
    let required = state
        .store
        .user_settings(target)
        .await?
        .is_some_and(|s| s.consent_required);
    if !required {
        return Ok(None);
    }
    let granted_elsewhere = entries
        .iter()
        .any(|e| e.operation == StoredOperation::Grant);
    Ok(Some(if granted_elsewhere {
        KeyMaterialUserCode::NoConsentForThisRoom
    } else {
        KeyMaterialUserCode::NoConsent
    }))
}
