//! Fetch key material: `POST /keyMaterial/{targetUser}` (-06 §5.2).
//!
//! The same logic serves three roles:
//! - the target user's provider claims one KeyPackage per client
//!   ([`local_key_material`]);
//! - the hub of the room forwards the request to the target's provider and
//!   records KeyPackageRef → target provider for Welcome routing
//!   ([`forward_for_room`]);
//! - a follower forwards its own client's request to the hub
//!   (`client_api::registration`, via [`forward`]).

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mimi_protocol::endpoints;
use mimi_protocol::msgs::key_material::{
    ClientKeyMaterial, ClientMaterial, KeyMaterialRequest, KeyMaterialResponse, KeyMaterialUserCode,
};
use mimi_protocol::{IdentifierUri, MimiUri, Protocol};
use mimi_room::key_packages::{
    check_key_material_request, client_material, forwarded_key_package_ref,
};
use mimi_room::rejection::KeyMaterialRequestRejection;

use super::hub::mimi_response;
use crate::error::{ApiError, decode_body, encode_body};
use crate::outbound::OutboundError;
use crate::state::{AppState, now_secs};
use crate::transport::SourceProvider;

pub use mimi_room::key_packages::CheckedKeyMaterialRequest as CheckedRequest;

/// `POST /v1/keyMaterial/{targetUser}` from a peer provider (-06 §5.2).
///
/// The source provider must be the requesting user's provider, or the hub
/// of the request's room (forwarding for a follower).
pub(crate) async fn key_material(
    State(state): State<AppState>,
    Extension(SourceProvider(source)): Extension<SourceProvider>,
    Path(target_in_path): Path<String>,
    body: Bytes,
) -> Response {
    with_retry_after(key_material_inner(&state, &source, &target_in_path, body).await)
}

async fn key_material_inner(
    state: &AppState,
    source: &str,
    target_in_path: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    let checked = check_request(decode_body(&body)?)?;
    let path_target = MimiUri::parse(target_in_path)
        .map_err(|e| ApiError::bad_request(format!("targetUser in path: {e}")))?;
    if path_target != checked.target_user {
        return Err(ApiError::bad_request(
            "targetUser in the path differs from the body",
        ));
    }
    let via_hub = checked
        .room_id
        .as_ref()
        .is_some_and(|r| r.domain().eq_ignore_ascii_case(source));
    if !checked
        .requesting_user
        .domain()
        .eq_ignore_ascii_case(source)
        && !via_hub
    {
        return Err(ApiError::forbidden(format!(
            "{source} is neither the requesting user's provider nor the room's hub"
        )));
    }
    rate_limit::check(state, source, checked.requesting_user.as_str())?;
    let response = serve(state, &checked, body.to_vec()).await?;
    Ok(mimi_response(StatusCode::OK, encode_body(&response)?))
}

/// Decodes the URIs of a request and verifies its signature and
/// credential (-06 §5.2; [`mimi_room::key_packages::check_key_material_request`]).
pub fn check_request(request: KeyMaterialRequest) -> Result<CheckedRequest, ApiError> {
    check_key_material_request(request).map_err(|rejection| match rejection {
        KeyMaterialRequestRejection::CredentialNotRequester => {
            ApiError::forbidden(rejection.to_string())
        }
        _ => ApiError::bad_request(rejection.to_string()),
    })
}

/// What this provider does with a checked request: answer it for a local
/// target, or forward it as the room's hub; anything else is refused.
pub async fn serve(
    state: &AppState,
    checked: &CheckedRequest,
    body: Vec<u8>,
) -> Result<KeyMaterialResponse, ApiError> {
    if is_local(state, &checked.target_user) {
        return local_key_material(state, checked).await;
    }
    match &checked.room_id {
        Some(room) if is_local(state, room) => forward_for_room(state, checked, room, body).await,
        _ => Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "the target user is not served here and this provider is not the room's hub",
        )),
    }
}

pub fn is_local(state: &AppState, uri: &MimiUri) -> bool {
    uri.domain().eq_ignore_ascii_case(state.domain())
}

/// The hub forwards to the target's provider and records where each
/// returned KeyPackage's Welcome must go (-06 §5.2).
async fn forward_for_room(
    state: &AppState,
    checked: &CheckedRequest,
    room: &MimiUri,
    body: Vec<u8>,
) -> Result<KeyMaterialResponse, ApiError> {
    let target_domain = checked.target_user.domain().to_owned();
    let response = forward(state, &target_domain, &checked.target_user, body).await?;
    let mut routes = Vec::new();
    for client in &response.clients {
        if let ClientMaterial::Success(kp) = &client.material {
            let kp_ref = forwarded_key_package_ref(kp).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("{target_domain} returned a KeyPackage that cannot be routed: {e}"),
                )
            })?;
            routes.push((kp_ref, target_domain.clone()));
        }
    }
    if !routes.is_empty() {
        state
            .store
            .record_key_package_routes(room.as_str(), routes)
            .await?;
    }
    Ok(response)
}

/// POSTs the request body to `domain`'s keyMaterial URL for `target` and
/// decodes the answer. Peer refusals are relayed with their status.
pub async fn forward(
    state: &AppState,
    domain: &str,
    target: &MimiUri,
    body: Vec<u8>,
) -> Result<KeyMaterialResponse, ApiError> {
    let bad_gateway = |reason: String| ApiError::new(StatusCode::BAD_GATEWAY, reason);
    let response = state
        .peers
        .send_bytes::<endpoints::KeyMaterial>(domain, target, body)
        .await
        .map_err(|e| match e {
            // Refusals (4xx) are relayed; a peer's own failure is a bad gateway here.
            OutboundError::Refused { status, reason, .. } if status.is_client_error() => {
                let status =
                    StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                ApiError::new(status, format!("{domain}: {reason}"))
            }
            e => bad_gateway(e.to_string()),
        })?;
    if response.user_uri != target.to_identifier_uri() {
        return Err(bad_gateway(format!("{domain} answered for another user")));
    }
    Ok(response)
}

/// The target provider's answer for a local user (-06 §5.2): consent,
/// then one KeyPackage per client, filtered by the request's suites and
/// required capabilities.
async fn local_key_material(
    state: &AppState,
    checked: &CheckedRequest,
) -> Result<KeyMaterialResponse, ApiError> {
    let target = checked.target_user.as_str();
    let refuse = |code| KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: code,
        user_uri: checked.target_user.to_identifier_uri(),
        clients: Vec::new(),
    };
    let known = !state.store.list_clients(target).await?.is_empty()
        || state.store.user_settings(target).await?.is_some();
    if !known {
        return Ok(refuse(KeyMaterialUserCode::UserUnknown));
    }
    if let Some(code) = super::consent::refusal(
        state,
        checked.requesting_user.as_str(),
        target,
        checked.room_id.as_ref().map(MimiUri::as_str),
    )
    .await?
    {
        return Ok(refuse(code));
    }
    let claims = state.store.claim_key_packages(target, now_secs()).await?;
    let clients: Vec<ClientKeyMaterial> = claims
        .into_iter()
        .map(|claim| ClientKeyMaterial {
            client_uri: IdentifierUri::new(&claim.client_uri),
            material: match claim.key_package {
                None => ClientMaterial::KeyMaterialExhausted,
                Some(kp) => {
                    client_material(&kp.key_package, &checked.request).unwrap_or_else(|| {
                        tracing::warn!("a stored KeyPackage does not decode");
                        ClientMaterial::NothingCompatible(None)
                    })
                }
            },
        })
        .collect();
    Ok(KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: user_status(&clients),
        user_uri: checked.target_user.to_identifier_uri(),
        clients,
    })
}

/// `success` when every client got a KeyPackage, `partialSuccess` when
/// some did, else `noCompatibleMaterial` (also when all are exhausted: the
/// draft has no user code for that).
fn user_status(clients: &[ClientKeyMaterial]) -> KeyMaterialUserCode {
    let ok = clients
        .iter()
        .filter(|c| matches!(c.material, ClientMaterial::Success(_)))
        .count();
    match ok {
        0 => KeyMaterialUserCode::NoCompatibleMaterial,
        n if n == clients.len() => KeyMaterialUserCode::Success,
        _ => KeyMaterialUserCode::PartialSuccess,
    }
}

/// A per-(source provider, requesting user) token bucket, in memory
/// (-06 §5.2 leaves abuse limits to providers).
pub mod rate_limit {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::Instant;

    use axum::http::StatusCode;

    use crate::error::ApiError;
    use crate::state::AppState;

    /// Bucket size: requests allowed in a burst.
    pub const BURST: f64 = 20.0;
    /// Refill rate: requests per minute.
    pub const PER_MINUTE: f64 = 20.0;

    type Key = (String, String, String);

    fn buckets() -> &'static Mutex<HashMap<Key, (f64, Instant)>> {
        static BUCKETS: OnceLock<Mutex<HashMap<Key, (f64, Instant)>>> = OnceLock::new();
        BUCKETS.get_or_init(|| Mutex::new(HashMap::new()))
    }

    /// Takes one token or answers 429 with `Retry-After` in the reason.
    pub fn check(state: &AppState, source: &str, user: &str) -> Result<(), ApiError> {
        // Keyed by our listener too, so several servers in one process
        // (tests) do not share buckets.
        let local = format!("{}@{}", state.domain(), state.config.federation.listen);
        let key = (local, source.to_ascii_lowercase(), user.to_owned());
        let now = Instant::now();
        let mut map = buckets()
            .lock()
            .map_err(|_| ApiError::internal("rate limiter poisoned"))?;
        if map.len() > 100_000 {
            map.retain(|_, (tokens, at)| {
                *tokens + at.elapsed().as_secs_f64() * PER_MINUTE / 60.0 < BURST
            });
        }
        let (tokens, at) = map.entry(key).or_insert((BURST, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * PER_MINUTE / 60.0).min(BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - *tokens) * 60.0 / PER_MINUTE).ceil().max(1.0);
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many keyMaterial requests; retry after {wait} s"),
        ))
    }

    /// Seconds to put in `Retry-After` for a 429 produced by [`check`].
    pub fn retry_after_secs() -> u64 {
        (60.0 / PER_MINUTE).ceil() as u64
    }
}

/// Adds `Retry-After` to a 429 answer.
pub fn with_retry_after(result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(r) => r,
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
            let mut response = e.into_response();
            if let Ok(v) = rate_limit::retry_after_secs().to_string().parse() {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}
