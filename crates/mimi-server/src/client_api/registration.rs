//! Device registration and the per-user bookkeeping of the client API
//! (docs/client-api.md): KeyPackage upload, key material (-06 §5.2) via the
//! room's hub, the hub key, profile and discoverability (-06 §5.8),
//! consent (-06 §5.7) and the operator's abuse reports (-06 §5.9).

use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use mimi_client_api::{
    ConsentRequest, HubKeys, HubQuery, OwnKeyPackage, Profile, RegisterDevice, Registered,
    ReportView, Stored, UploadKeyPackages, paths,
};
use mimi_protocol::{MimiUri, MimiUriKind};

use super::auth::{Admin, AuthenticatedDevice, bearer_token, token_hash};
use crate::error::{ApiError, decode_body, encode_body};
use crate::federation::hub::mimi_response;
use crate::federation::{consent, key_material};
use crate::state::{AppState, now_ms, now_secs};
use axum::body::Bytes;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mimi_protocol::IdentifierUri;
use mimi_protocol::components::AppDataDictionary;
use mimi_protocol::endpoints::{RequestConsent, UpdateConsent};
use mimi_protocol::msgs::{AbuseReport, CipherSuite, ConsentEntry, ConsentOperation};
use mimi_room::key_packages::validate_upload;
use mimi_store::{Discoverability, NewKeyPackage, Reregistration, UserSettings};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::DEVICES, post(register_device))
        .route(paths::KEY_PACKAGES, post(upload_key_packages))
        .route(paths::OWN_KEY_PACKAGE, post(own_key_package))
        .route(paths::KEY_MATERIAL, post(key_material))
        .route(paths::HUB, get(hub))
        .route(paths::PROFILE, put(put_profile))
        .route(paths::CONSENT, post(consent))
        .route(paths::ADMIN_REPORTS, get(admin_reports))
}

/// Registration is open in development (`open_registration`), otherwise
/// it needs the operator's admin token. Carries who may replace the token
/// of a device id that is already registered: the admin, or whoever
/// presents that device's current token as the bearer token.
struct MayRegister(Reregistration);

impl FromRequestParts<AppState> for MayRegister {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let admin = Admin::from_request_parts(parts, state).await;
        if admin.is_ok() {
            return Ok(MayRegister(Reregistration::Admin));
        }
        if !state.config.client_api.open_registration {
            return admin.map(|_| MayRegister(Reregistration::Admin));
        }
        Ok(MayRegister(match bearer_token(parts) {
            Some(token) => Reregistration::WithCurrentToken(token_hash(token)),
            None => Reregistration::Refuse,
        }))
    }
}

async fn register_device(
    MayRegister(reregistration): MayRegister,
    State(state): State<AppState>,
    Json(req): Json<RegisterDevice>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let parse = |s: &str, what| {
        MimiUri::parse(s).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
    };
    let user = parse(&req.user, "user")?;
    let device = parse(&req.device, "device")?;
    if user.kind() != MimiUriKind::User || device.kind() != MimiUriKind::Device {
        return Err(ApiError::bad_request(
            "expected a user URI (…/u/…) and a device URI (…/d/…)",
        ));
    }
    if user.domain() != state.domain() || device.domain() != state.domain() {
        return Err(ApiError::bad_request(format!(
            "user and device must be in {}",
            state.domain()
        )));
    }
    // The hub derives a device's user from its URI (mimi-room identity).
    if mimi_room::identity::user_of_device(&device).as_ref() != Some(&user) {
        return Err(ApiError::bad_request(
            "the device URI must be mimi://<domain>/d/<user>/<device> of that user",
        ));
    }
    // Replacing is never implied, not even by the admin token.
    let reregistration = if req.replace {
        reregistration
    } else {
        Reregistration::Refuse
    };
    let token = {
        let mut bytes = [0u8; 32];
        crate::tls::crypto_provider()
            .secure_random
            .fill(&mut bytes)
            .map_err(|_| ApiError::internal("no secure random numbers"))?;
        hex::encode(bytes)
    };
    match state
        .store
        .register_device(
            user.as_str(),
            device.as_str(),
            token_hash(&token),
            reregistration,
            now_ms(),
        )
        .await
    {
        Ok(()) => Ok((StatusCode::CREATED, Json(Registered { token }))),
        Err(mimi_store::StoreError::DeviceRegistered(_)) if !req.replace => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "the device {device} is already registered; replacing its token (\"replace\": true) \
                 needs its current token or the admin token"
            ),
        )),
        Err(mimi_store::StoreError::DeviceRegistered(_)) => Err(ApiError::forbidden(format!(
            "replacing the token of {device} needs its current token or the admin token"
        ))),
        Err(mimi_store::StoreError::ClientOwnedByOtherUser { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "the device belongs to another user",
        )),
        Err(e) => Err(e.into()),
    }
}

// ---- KeyPackages and key material (-06 §5.2) -----------------------------------

/// `POST /client/v1/key-packages`: every KeyPackage must be valid, unexpired
/// and carry a BasicCredential naming exactly the device.
async fn upload_key_packages(
    device: AuthenticatedDevice,
    State(state): State<AppState>,
    Json(req): Json<UploadKeyPackages>,
) -> Result<Json<Stored>, ApiError> {
    if req.key_packages.is_empty() {
        return Err(ApiError::bad_request("no key_packages"));
    }
    let mut new = Vec::with_capacity(req.key_packages.len());
    for (i, b64) in req.key_packages.iter().enumerate() {
        let bytes = B64
            .decode(b64)
            .map_err(|e| ApiError::bad_request(format!("key_packages[{i}]: base64: {e}")))?;
        let valid = validate_upload(&bytes, &device.device, now_secs())
            .map_err(|e| ApiError::bad_request(format!("key_packages[{i}]: {e}")))?;
        new.push(NewKeyPackage {
            key_package_ref: valid.key_package_ref,
            key_package: valid.message,
            not_after: valid.not_after,
            last_resort: req.last_resort,
        });
    }
    let stored = state
        .store
        .add_key_packages(device.user.as_str(), device.device.as_str(), new)
        .await?;
    Ok(Json(Stored { stored }))
}

/// `POST /client/v1/key-packages/own`: a KeyPackage the device puts in its
/// own external join proposal (room-policy §Adding; docs/divergences.md
/// C29). Checked like an upload, never offered to others, and recorded as
/// claimed by the device so the Welcome that adds it reaches it (-06 §5.5).
async fn own_key_package(
    device: AuthenticatedDevice,
    State(state): State<AppState>,
    Json(req): Json<OwnKeyPackage>,
) -> Result<StatusCode, ApiError> {
    let bytes = B64
        .decode(&req.key_package)
        .map_err(|e| ApiError::bad_request(format!("key_package: base64: {e}")))?;
    let valid = validate_upload(&bytes, &device.device, now_secs())
        .map_err(|e| ApiError::bad_request(format!("key_package: {e}")))?;
    state
        .store
        .record_own_key_package(&valid.key_package_ref, device.device.as_str(), now_secs())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /client/v1/key-material`: a TLS `KeyMaterialRequest` signed by the
/// device, answered here when this provider is the room's hub (or the
/// target's provider without a room), else forwarded to the hub.
async fn key_material(
    device: AuthenticatedDevice,
    State(state): State<AppState>,
    body: Bytes,
) -> Response {
    key_material::with_retry_after(key_material_inner(&device, &state, body).await)
}

async fn key_material_inner(
    device: &AuthenticatedDevice,
    state: &AppState,
    body: Bytes,
) -> Result<Response, ApiError> {
    let checked = key_material::check_request(decode_body(&body)?)?;
    if checked.requesting_user != device.user {
        return Err(ApiError::forbidden(
            "requestingUser must be the device's user",
        ));
    }
    key_material::rate_limit::check(state, state.domain(), device.user.as_str())?;
    let target = &checked.target_user;
    let response = match &checked.room_id {
        Some(room) if !key_material::is_local(state, room) => {
            key_material::forward(state, room.domain(), target, body.to_vec()).await?
        }
        None if !key_material::is_local(state, target) => {
            key_material::forward(state, target.domain(), target, body.to_vec()).await?
        }
        _ => key_material::serve(state, &checked, body.to_vec()).await?,
    };
    Ok(mimi_response(StatusCode::OK, encode_body(&response)?))
}

/// `GET /client/v1/hub?ciphersuite=N`: this provider's hub key as an
/// `ExternalSender` and its franking agent, both of the signature scheme of
/// the room's cipher suite `N` (default 1). A suite the hub does not
/// support is 400.
async fn hub(
    _: AuthenticatedDevice,
    State(state): State<AppState>,
    Query(query): Query<HubQuery>,
) -> Result<Json<HubKeys>, ApiError> {
    let suite = CipherSuite(query.ciphersuite).to_openmls();
    let keys = suite.and_then(|cs| {
        Some((
            state.hub.external_sender(cs)?,
            state.hub.franking_agent(cs)?,
        ))
    });
    let Some((sender, agent)) = keys else {
        let supported: Vec<String> = state
            .hub
            .supported_ciphersuites()
            .into_iter()
            .map(|cs| format!("{:#06x}", CipherSuite::from(cs).0))
            .collect();
        return Err(ApiError::bad_request(format!(
            "cipher suite {:#06x} is not supported by this hub (supported: {})",
            query.ciphersuite,
            supported.join(", ")
        )));
    };
    Ok(Json(HubKeys {
        ciphersuite: query.ciphersuite,
        external_sender: B64.encode(encode_body(&sender)?),
        franking_agent: B64.encode(encode_body(&agent)?),
    }))
}

// ---- Profile and discoverability (-06 §5.8) ------------------------------------

/// `PUT /client/v1/profile`: replaces the device's user's profile.
async fn put_profile(
    device: AuthenticatedDevice,
    State(state): State<AppState>,
    Json(p): Json<Profile>,
) -> Result<StatusCode, ApiError> {
    let discoverability = match p.discoverability.as_deref() {
        None => Discoverability::None,
        Some(name) => Discoverability::from_name(name)
            .ok_or_else(|| ApiError::bad_request("discoverability is none, exact or search"))?,
    };
    state
        .store
        .put_user_settings(UserSettings {
            user_uri: device.user.to_string(),
            consent_required: p.consent_required,
            handle: p.handle,
            nick: p.nick,
            email: p.email,
            phone: p.phone,
            given_name: p.given_name,
            family_name: p.family_name,
            discoverability,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- Consent (-06 §5.7) ------------------------------------------------------------

/// `POST /client/v1/consent`: the device's user requests or cancels
/// (as requester), grants or revokes (as target). Stored here and sent to
/// the other user's provider (`requestConsent` / `updateConsent`).
async fn consent(
    device: AuthenticatedDevice,
    State(state): State<AppState>,
    Json(req): Json<ConsentRequest>,
) -> Result<StatusCode, ApiError> {
    let operation = match req.operation.as_str() {
        "request" => ConsentOperation::Request,
        "cancel" => ConsentOperation::Cancel,
        "grant" => ConsentOperation::Grant,
        "revoke" => ConsentOperation::Revoke,
        _ => {
            return Err(ApiError::bad_request(
                "operation is request, cancel, grant or revoke",
            ));
        }
    };
    let entry = ConsentEntry {
        consent_operation: operation,
        requester_uri: IdentifierUri::new(&req.requester),
        target_uri: IdentifierUri::new(&req.target),
        room_id: req.room.as_deref().map(IdentifierUri::new),
        client_key_packages: Vec::new(),
        consent_extensions: AppDataDictionary::new(),
    };
    let parsed = consent::parse_entry(entry)?;
    let asks = matches!(
        operation,
        ConsentOperation::Request | ConsentOperation::Cancel
    );
    let (own, other) = if asks {
        (&parsed.requester, &parsed.target)
    } else {
        (&parsed.target, &parsed.requester)
    };
    if own != &device.user {
        return Err(ApiError::forbidden(if asks {
            "the device's user must be the requester"
        } else {
            "the device's user must be the target"
        }));
    }
    consent::store_entry(&state, &parsed).await?;
    if !key_material::is_local(&state, other) {
        send_consent(&state, &parsed, asks, other).await?;
    }
    Ok(StatusCode::CREATED)
}

/// Sends a ConsentEntry to the other user's provider.
async fn send_consent(
    state: &AppState,
    parsed: &consent::ParsedEntry,
    asks: bool,
    other: &mimi_protocol::MimiUri,
) -> Result<(), ApiError> {
    let domain = other.domain();
    let sent = if asks {
        state
            .peers
            .send::<RequestConsent>(domain, &parsed.target, &parsed.entry)
            .await
    } else {
        state
            .peers
            .send::<UpdateConsent>(domain, &parsed.requester, &parsed.entry)
            .await
    };
    sent.map(|_| ())
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))
}

// ---- Abuse reports for the operator (-06 §5.9) ------------------------------------

/// `GET /client/v1/admin/reports` (admin token).
async fn admin_reports(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<ReportView>>, ApiError> {
    let reports = state.store.abuse_reports().await?;
    Ok(Json(
        reports
            .into_iter()
            .map(|r| {
                // Stored reports decoded once already; a row that no longer
                // decodes is still listed, with its raw bytes.
                let decoded: Option<AbuseReport> =
                    mimi_protocol::decode_exact(&r.report.report).ok();
                ReportView {
                    id: r.id,
                    room_id: r.report.room_id,
                    source_provider: r.report.source_provider,
                    reporting_user: r.report.reporting_user,
                    alleged_abuser: r.report.alleged_abuser,
                    received_at_ms: r.report.received_at_ms,
                    reason_code: decoded.as_ref().map_or(0, |d| d.reason_code.code),
                    note: decoded
                        .as_ref()
                        .map(|d| String::from_utf8_lossy(d.note.as_slice()).into_owned())
                        .unwrap_or_default(),
                    messages: decoded.as_ref().map_or(0, |d| d.messages.len()),
                    franks_verified: r.report.franks_verified,
                    report: B64.encode(&r.report.report),
                }
            })
            .collect(),
    ))
}
