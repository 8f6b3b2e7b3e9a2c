//! The asset routes: upload and download on the client API, serving and
//! `proxyDownload` on the federation listener (see [`super`]).

use std::io;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use mimi_client_api::paths;
use mimi_client_api::{ASSET_MEDIA_TYPE, AssetDownloadQuery, UploadedAsset};
use mimi_protocol::endpoints::ProxyDownload;
use tower_http::timeout::TimeoutLayer;

use super::proxy::{self, error_chain};
use super::store::{AssetId, PutError};
use crate::client_api::auth::AuthenticatedDevice;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::federation::key_material::with_retry_after;
use crate::hub::parse_room_id;
use crate::outbound::OutboundError;
use crate::state::AppState;
use crate::transport::SourceProvider;

/// Most bytes of a hub's refusal passed on to the device.
const RELAYED_REASON: usize = 1024;

/// `POST /client/v1/assets` and `GET /client/v1/assets/download`, with
/// their own body limit and timeouts instead of the client API's general
/// ones: an upload may be far larger than any other request, and a
/// download waits for the hub's fetch.
pub fn client_routes(config: &ServerConfig) -> Router<AppState> {
    let assets = &config.assets;
    let upload_timeout = Duration::from_millis(assets.upload_timeout_ms);
    let download_timeout = relay_timeout(config) + Duration::from_secs(1);
    let upload = Router::new()
        .route(paths::ASSETS, post(upload))
        // The handler counts the bytes itself (413 with a reason).
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            upload_timeout,
        ));
    let download = Router::new()
        .route(paths::ASSET_DOWNLOAD, get(download))
        .route(paths::OHTTP_KEYS, get(super::oblivious::relay_keys))
        .route(paths::OHTTP_RELAY, post(super::oblivious::relay))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            download_timeout,
        ));
    upload.merge(download)
}

/// `GET /v1/assets/{id}` on the federation listener (behind mutual TLS).
pub fn federation_routes() -> Router<AppState> {
    Router::new().route(super::ASSET_PATH, get(serve_asset))
}

/// The OHTTP Gateway on the federation listener (behind mutual TLS): it
/// waits for the asset provider as `proxyDownload` does.
pub fn gateway_routes() -> Router<AppState> {
    Router::new().route(
        super::oblivious::GATEWAY_PATH,
        get(super::oblivious::gateway_keys).post(super::oblivious::gateway),
    )
}

/// How long a follower waits for the hub's `proxyDownload` answer: the
/// hub's fetch, plus one ordinary peer request.
pub(crate) fn relay_timeout(config: &ServerConfig) -> Duration {
    Duration::from_millis(
        config
            .assets
            .proxy_timeout_ms
            .saturating_add(config.limits.outbound_timeout_ms),
    )
}

/// How long the hub's `proxyDownload` route may take: the fetch's own
/// timeout answers 504 first; this only bounds the rest.
pub fn proxy_route_timeout(config: &ServerConfig) -> Duration {
    Duration::from_millis(config.assets.proxy_timeout_ms) + Duration::from_secs(5)
}

fn upload_refused(state: &AppState, reason: &'static str, error: ApiError) -> ApiError {
    state.runtime.record(|| {
        metrics::counter!("mimi_asset_upload_refusals_total", "reason" => reason).increment(1);
    });
    error
}

/// `POST /client/v1/assets`: stores the body (the asset's ciphertext) and
/// answers 201 with its URL. 415 without an accepted
/// `mimi-asset-media-type`, 413 over `[assets] max_upload_bytes`, 429
/// over the user's upload rate (with `Retry-After`).
async fn upload(
    State(state): State<AppState>,
    device: AuthenticatedDevice,
    headers: HeaderMap,
    body: Body,
) -> Response {
    with_retry_after(upload_inner(&state, &device, &headers, body).await)
}

async fn upload_inner(
    state: &AppState,
    device: &AuthenticatedDevice,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let assets = &state.assets;
    let media = |reason: String| {
        upload_refused(
            state,
            "media_type",
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason),
        )
    };
    let declared = headers
        .get(ASSET_MEDIA_TYPE)
        .ok_or_else(|| {
            media(format!(
                "the {ASSET_MEDIA_TYPE} header must name the media type of the plaintext"
            ))
        })?
        .to_str()
        .ok()
        .and_then(super::media::essence)
        .ok_or_else(|| media(format!("the {ASSET_MEDIA_TYPE} header is not a media type")))?;
    if !assets.media.allows(&declared) {
        return Err(media(format!(
            "media type {declared} is not accepted by this provider (accepted: {})",
            assets.media.listed()
        )));
    }
    let max = assets.config.max_upload_bytes;
    let too_large = |what: String| {
        upload_refused(
            state,
            "too_large",
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{what} is larger than this provider's limit of {max} bytes"),
            ),
        )
    };
    // Refused before a byte is read, when the length is declared.
    if let Some(length) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > max
    {
        return Err(too_large(format!("the asset ({length} bytes)")));
    }
    assets
        .limit_upload(device.user.as_str())
        .map_err(|limited| {
            upload_refused(
                state,
                "rate_limited",
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("asset uploads: {limited}"),
                ),
            )
        })?;
    let stream = body
        .into_data_stream()
        .map(|chunk| chunk.map_err(io::Error::other));
    let stored = match assets.store.put(Box::pin(stream), max).await {
        Ok(stored) => stored,
        Err(PutError::TooLarge { .. }) => return Err(too_large("the asset".into())),
        Err(e @ PutError::Empty) => {
            return Err(upload_refused(
                state,
                "empty",
                ApiError::bad_request(e.to_string()),
            ));
        }
        Err(PutError::Body(e)) => {
            return Err(upload_refused(
                state,
                "body",
                ApiError::bad_request(format!("reading the upload failed: {}", error_chain(&e))),
            ));
        }
        Err(e @ PutError::Io(_)) => return Err(ApiError::internal(e)),
    };
    state.runtime.record(|| {
        metrics::counter!("mimi_asset_uploads_total").increment(1);
        metrics::counter!("mimi_asset_upload_bytes_total").increment(stored.size);
    });
    tracing::debug!(device = %device.device, size = stored.size, "asset stored");
    let answer = UploadedAsset {
        url: assets.url_of(&stored.id),
        size: stored.size,
        expires: assets.expires(),
    };
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

/// `GET /v1/assets/{id}`: one of our assets, to an authenticated peer.
async fn serve_asset(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("no such asset here");
    let id = AssetId::parse(&id).ok_or_else(not_found)?;
    let reader = state
        .assets
        .store
        .open(&id)
        .await
        .map_err(ApiError::internal)?;
    let result = if reader.is_some() {
        "served"
    } else {
        "not_found"
    };
    state.runtime.record(|| {
        metrics::counter!("mimi_asset_peer_fetches_total", "result" => result).increment(1);
    });
    Ok(proxy::AssetBody::Stored(reader.ok_or_else(not_found)?).into_response())
}

/// `GET /v1/proxyDownload/{downloadUrl}` (-06 §5.10.2), from a peer.
/// `downloadUrl` arrives percent-decoded (one path segment).
pub(crate) async fn proxy_download(
    State(state): State<AppState>,
    Extension(SourceProvider(source)): Extension<SourceProvider>,
    Path(download_url): Path<String>,
) -> Response {
    let answer = async {
        state.assets.limit_peer_download(&source)?;
        Ok(proxy::download(&state, &download_url)
            .await?
            .into_response())
    };
    with_retry_after(answer.await)
}

/// `GET /client/v1/assets/download?url=…&room=…`: the asset through the
/// room's hub. The hub is the provider of the room URI's domain; when
/// that is us the proxy logic runs here, else the body comes from our
/// cache or the hub's `proxyDownload` over mutual TLS (its 403, 404, 502
/// and 504 passed on with their reasons). The asset provider is never
/// contacted from here (-06 §5.10.1).
async fn download(
    State(state): State<AppState>,
    device: AuthenticatedDevice,
    query: Result<Query<AssetDownloadQuery>, QueryRejection>,
) -> Response {
    with_retry_after(download_inner(state, device, query).await)
}

async fn download_inner(
    state: AppState,
    device: AuthenticatedDevice,
    query: Result<Query<AssetDownloadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    state.assets.limit_device_download(device.user.as_str())?;
    let room = parse_room_id(&query.room)?;
    let hub = room.domain();
    let (path, result) = if hub.eq_ignore_ascii_case(state.domain()) {
        let result = proxy::download(&state, &query.url).await;
        ("local", result)
    } else {
        through_hub(&state, hub, &query.url).await
    };
    let status = match &result {
        Ok(_) => "200".to_owned(),
        Err(e) => e.status.as_u16().to_string(),
    };
    state.runtime.record(|| {
        metrics::counter!("mimi_asset_downloads_total", "path" => path, "status" => status)
            .increment(1);
    });
    result.map(IntoResponse::into_response)
}

/// The asset `url` from our cache ("Both the downloading provider and the
/// hub can cache requests", -06 §5.10.2), else from `hub`, one request
/// per URL however many of our devices ask at once; with the path it
/// took (`cache` or `proxy`) for the metrics.
async fn through_hub(
    state: &AppState,
    hub: &str,
    url: &str,
) -> (&'static str, Result<proxy::AssetBody, ApiError>) {
    // The key is the URL as the hub will check and cache it; a URL that
    // does not parse goes to the hub for its refusal, uncached.
    let key = url::Url::parse(url).map_or_else(|_| url.to_owned(), String::from);
    let (source, body) =
        proxy::cached_or_fetched(state, &key, "downloader", relay(state, hub, url)).await;
    let path = if source == "cache" { "cache" } else { "proxy" };
    (path, body.map(proxy::AssetBody::Bytes))
}

/// Asks `hub` for `url`: its body, read whole within `proxy_max_bytes`
/// so that a failure midway is a clean 502 rather than a truncated 200,
/// and so that it can be cached.
async fn relay(state: &AppState, hub: &str, url: &str) -> Result<Vec<u8>, ApiError> {
    let timeout = relay_timeout(&state.config);
    let response = state
        .peers
        .send_raw_with_timeout::<ProxyDownload>(hub, url, Vec::new(), Some(timeout))
        .await
        .map_err(|e| match e {
            OutboundError::NotOffered { .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the hub {hub} does not offer proxyDownload (-06 §5.10): {e}"),
            ),
            OutboundError::Http { source, .. } if source.is_timeout() => {
                hub_timed_out(hub, timeout)
            }
            OutboundError::Http { source, .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the hub {hub} is unreachable: {}", error_chain(&source)),
            ),
            other => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the hub {hub} is unreachable: {other}"),
            ),
        })?;
    let status = response.status();
    if !status.is_success() {
        let reason = read_reason(response).await;
        let passed = match status.as_u16() {
            403 => StatusCode::FORBIDDEN,
            404 => StatusCode::NOT_FOUND,
            504 => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        return Err(ApiError::new(
            passed,
            format!("the hub {hub} answered {status}: {reason}"),
        ));
    }
    let max = state.assets.config.proxy_max_bytes();
    proxy::read_within(response, max)
        .await
        .map_err(|failure| match failure {
            proxy::ReadFailure::TooLarge => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the hub {hub} sent an asset larger than {max} bytes, the most this provider downloads"
                ),
            ),
            proxy::ReadFailure::Transfer(e) if e.is_timeout() => hub_timed_out(hub, timeout),
            proxy::ReadFailure::Transfer(e) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the hub {hub} broke off the download: {}", error_chain(&e)),
            ),
        })
}

fn hub_timed_out(hub: &str, timeout: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "the hub {hub} did not answer within {} ms",
            timeout.as_millis()
        ),
    )
}

/// The first bytes of a refusal's body, as text.
async fn read_reason(mut response: reqwest::Response) -> String {
    let mut reason = Vec::new();
    while reason.len() < RELAYED_REASON {
        match response.chunk().await {
            Ok(Some(chunk)) => reason.extend_from_slice(&chunk),
            _ => break,
        }
    }
    reason.truncate(RELAYED_REASON);
    String::from_utf8_lossy(&reason).trim().to_owned()
}
