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
    ClientKeyMaterial, ClientMaterial, KeyMaterialRequest, KeyMaterialRequestHead,
    KeyMaterialResponse, KeyMaterialUserCode,
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
    if let Some(head) = KeyMaterialRequestHead::of_other_protocol(&body) {
        return Ok(incompatible_protocol(head));
    }
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

/// The answer to a request framed for a protocol other than MLS 1.0: its
/// remainder cannot be parsed, so `incompatibleProtocol` (-06 §5.2) for the
/// target it names, with the protocol this provider does implement
/// (docs/divergences.md S24).
fn incompatible_protocol(head: KeyMaterialRequestHead) -> Response {
    tracing::info!(
        protocol = head.protocol,
        "keyMaterial for an unsupported protocol"
    );
    let response = KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: KeyMaterialUserCode::IncompatibleProtocol,
        user_uri: head.target_user,
        clients: Vec::new(),
    };
    match encode_body(&response) {
        Ok(body) => mimi_response(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
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

/// The keyMaterial limit (-06 §5.2 leaves abuse limits to providers):
/// per requesting provider and per (provider, user), see
/// [`crate::rate_limit`] and [`crate::runtime::ServerRuntime::limit_key_material`].
pub mod rate_limit {
    use axum::http::StatusCode;

    use crate::error::ApiError;
    use crate::state::AppState;

    /// Takes one token or answers 429; the reason ends in
    /// "retry after N s", which [`super::with_retry_after`] turns into
    /// the `Retry-After` header.
    pub fn check(state: &AppState, source: &str, user: &str) -> Result<(), ApiError> {
        state
            .runtime
            .limit_key_material(state.domain(), source, user)
            .map_err(|limited| {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("keyMaterial: {limited}"),
                )
            })
    }

    /// The `N` of a reason ending in "retry after N s": ours, or a peer's
    /// passed on by `forward`; 1 when there is none.
    pub fn retry_after_secs(reason: &str) -> u64 {
        reason
            .rsplit_once("retry after ")
            .and_then(|(_, rest)| rest.strip_suffix(" s"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }
}

/// Adds `Retry-After` to a 429 answer.
pub fn with_retry_after(result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(r) => r,
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
            let secs = rate_limit::retry_after_secs(&e.reason);
            let mut response = e.into_response();
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
            response
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::rate_limit::retry_after_secs;

    #[test]
    fn retry_after_comes_from_the_reason() {
        assert_eq!(
            retry_after_secs("keyMaterial: too many requests for this user; retry after 3 s"),
            3
        );
        assert_eq!(
            retry_after_secs("b.example: keyMaterial: too many requests; retry after 60 s"),
            60
        );
        assert_eq!(retry_after_secs("too many"), 1);
    }
}
