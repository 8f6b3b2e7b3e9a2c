//! Oblivious HTTP for asset downloads (-06 §5.10 "Download using
//! Oblivious HTTP"; RFC 9458).
//!
//! As a hub, this server runs the OHTTP Gateway: its key configurations
//! and its Gateway resource are both at `/.well-known/ohttp-gateway`
//! (RFC 9540 §4), on the federation listener behind mutual TLS, since the
//! Relays are peer providers (-06 names no directory key for it; docs/
//! divergences.md T10). A request opens to a `GET` of an asset URL, which
//! is checked and fetched exactly as `proxyDownload` does
//! ([`super::proxy::download`]); the answer, a refusal included, goes
//! back sealed, so the Relay learns nothing from it.
//!
//! As any provider, this server is the Relay for its own devices: the
//! client API passes the hub's key configurations and the encapsulated
//! request through, seeing neither the URL nor the content, and the hub
//! sees only this provider, never the device.

use std::path::Path;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use mimi_assets::oblivious::{
    GATEWAY_SECRET_LEN, Gateway, KEYS_MEDIA_TYPE, REQUEST_MEDIA_TYPE, RESPONSE_MEDIA_TYPE,
};
use mimi_client_api::OhttpQuery;

use super::AssetSetupError;
use super::proxy::{self, AssetBody};
use crate::client_api::auth::AuthenticatedDevice;
use crate::error::ApiError;
use crate::federation::key_material::with_retry_after;
use crate::state::AppState;
use crate::transport::SourceProvider;

/// The well-known path of the Gateway (RFC 9540 §4).
pub const GATEWAY_PATH: &str = "/.well-known/ohttp-gateway";

/// The Gateway key id.
const KEY_ID: u8 = 1;

/// The Gateway of the key kept in `dir/ohttp-gateway.key` (random, mode
/// 0600, created on first start): stable across restarts and shared by
/// every process of one hub that shares its data directory.
pub fn load_or_create_gateway(dir: &Path) -> Result<Gateway, AssetSetupError> {
    let path = dir.join("ohttp-gateway.key");
    let failed = |reason: String| AssetSetupError::GatewayKey {
        path: path.display().to_string(),
        reason,
    };
    let secret = crate::state::load_or_create_file(&path, || {
        mimi_room::keys::generate_hmac_key_bytes().map_err(std::io::Error::other)
    })
    .map_err(|e| failed(e.to_string()))?;
    if secret.len() != GATEWAY_SECRET_LEN {
        return Err(failed(format!(
            "{} bytes, expected {GATEWAY_SECRET_LEN}",
            secret.len()
        )));
    }
    Gateway::from_secret(KEY_ID, &secret).map_err(|e| failed(e.to_string()))
}

/// `GET /.well-known/ohttp-gateway`: the Gateway's key configurations.
pub async fn gateway_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = state
        .assets
        .gateway
        .key_configs()
        .map_err(ApiError::internal)?;
    Ok(([(CONTENT_TYPE, KEYS_MEDIA_TYPE)], keys).into_response())
}

/// `POST /.well-known/ohttp-gateway`: opens a relayed request, fetches
/// the asset as `proxyDownload` would, and seals the answer. A request
/// that does not open is 400 in the clear (there is nothing to seal an
/// answer with).
pub async fn gateway(
    State(state): State<AppState>,
    Extension(SourceProvider(source)): Extension<SourceProvider>,
    body: Bytes,
) -> Response {
    let answer = async {
        state.assets.limit_peer_download(&source)?;
        serve_gateway(&state, &body).await
    };
    with_retry_after(answer.await)
}

/// The Gateway's work on one encapsulated request.
async fn serve_gateway(state: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let (url, responder) = match state.assets.gateway.open_request(body) {
        Ok(opened) => opened,
        Err(e) => {
            count(state, "unopened");
            return Err(ApiError::bad_request(format!(
                "not an OHTTP request for this Gateway: {e}"
            )));
        }
    };
    let (status, content) = match proxy::download(state, &url).await {
        Ok(body) => match body_bytes(body, state.assets.config().proxy_max_bytes()).await {
            Ok(bytes) => (StatusCode::OK, bytes),
            Err(e) => (e.status, e.reason.into_bytes()),
        },
        Err(e) => (e.status, e.reason.into_bytes()),
    };
    count(
        state,
        if status.is_success() {
            "served"
        } else {
            "refused"
        },
    );
    let sealed = responder
        .seal(status.as_u16(), &content)
        .map_err(ApiError::internal)?;
    Ok(([(CONTENT_TYPE, RESPONSE_MEDIA_TYPE)], sealed).into_response())
}

/// The whole body of an answer, at most `max` bytes (one of our own
/// assets is streamed from the store; proxied ones are already in memory).
async fn body_bytes(body: AssetBody, max: u64) -> Result<Vec<u8>, ApiError> {
    match body {
        AssetBody::Bytes(bytes) => Ok(bytes.to_vec()),
        AssetBody::Stored(reader) => {
            if reader.size > max {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("asset larger than {max} bytes"),
                ));
            }
            let mut out = Vec::with_capacity(usize::try_from(reader.size).unwrap_or(0));
            let mut stream = reader.stream;
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk.map_err(ApiError::internal)?);
            }
            Ok(out)
        }
    }
}

fn count(state: &AppState, result: &'static str) {
    state.runtime.record(|| {
        metrics::counter!("mimi_asset_ohttp_gateway_total", "result" => result).increment(1);
    });
}

/// `GET /client/v1/ohttp/keys?hub=D`: the hub's Gateway key
/// configurations, ours when we are the hub.
pub async fn relay_keys(
    State(state): State<AppState>,
    _device: AuthenticatedDevice,
    Query(query): Query<OhttpQuery>,
) -> Result<Response, ApiError> {
    if query.hub.eq_ignore_ascii_case(state.domain()) {
        return gateway_keys(State(state)).await;
    }
    let response = state
        .peers
        .well_known(&query.hub, GATEWAY_PATH, None, None)
        .await
        .map_err(|e| unreachable_hub(&query.hub, &e))?;
    pass_back(&query.hub, response, KEYS_MEDIA_TYPE).await
}

/// `POST /client/v1/ohttp/relay?hub=D`: the Relay (RFC 9458 §2). The
/// encapsulated request goes to the hub's Gateway as it came, and its
/// answer back as it came: this provider reads neither.
pub async fn relay(
    State(state): State<AppState>,
    device: AuthenticatedDevice,
    Query(query): Query<OhttpQuery>,
    body: Bytes,
) -> Response {
    with_retry_after(relay_inner(state, device, query, body).await)
}

async fn relay_inner(
    state: AppState,
    device: AuthenticatedDevice,
    query: OhttpQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.assets.limit_device_download(device.user.as_str())?;
    state.runtime.record(|| {
        metrics::counter!("mimi_asset_ohttp_relayed_total").increment(1);
    });
    if query.hub.eq_ignore_ascii_case(state.domain()) {
        return serve_gateway(&state, &body).await;
    }
    let response = state
        .peers
        .well_known(
            &query.hub,
            GATEWAY_PATH,
            Some((REQUEST_MEDIA_TYPE, body.to_vec())),
            Some(super::routes::relay_timeout(&state.config)),
        )
        .await
        .map_err(|e| unreachable_hub(&query.hub, &e))?;
    pass_back(&query.hub, response, RESPONSE_MEDIA_TYPE).await
}

fn unreachable_hub(hub: &str, e: &crate::outbound::OutboundError) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        format!("the hub {hub}'s OHTTP Gateway is unreachable: {e}"),
    )
}

async fn pass_back(
    hub: &str,
    response: reqwest::Response,
    media_type: &'static str,
) -> Result<Response, ApiError> {
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the hub {hub}'s OHTTP Gateway: {e}"),
        )
    })?;
    if !status.is_success() {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "the hub {hub}'s OHTTP Gateway answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
            ),
        ));
    }
    Ok(([(CONTENT_TYPE, media_type)], Body::from(bytes)).into_response())
}
