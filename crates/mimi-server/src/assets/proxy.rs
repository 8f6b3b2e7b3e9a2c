//! The hub's download proxy (-06 §5.10.2): `proxyDownload` for peers, and
//! the same logic for this provider's own devices when it is the hub.
//!
//! "The hub MUST verify that the host part of the `downloadUrl` is
//! associated with the asset server domain for one of its peer providers.
//! This prevents the hub from becoming an open proxy." Each request goes
//! through the three steps of `mimi_assets::target`:
//!
//! 1. the URL: `DownloadTargets::check` (https, no userinfo or fragment,
//!    no IP literal, an allowed host and port), else 403;
//! 2. every address the host resolves to: `check_address`, else 403; the
//!    connection then goes to those checked addresses only (the client is
//!    pinned to them, so a second DNS answer cannot differ);
//! 3. redirects: never followed; a 3xx answer is a 502 naming it.
//!
//! Our own asset URLs are served from the store; other bodies come from
//! the cache ("Both the downloading provider and the hub can cache
//! requests", §5.10.2) or are fetched, within `proxy_timeout_ms` (504)
//! and `proxy_max_bytes` (502), and then cached. A fetched body is held
//! in memory (at most `proxy_max_bytes`) so that a failure is still a
//! clean 502/504 rather than a truncated 200; our own assets stream.
//!
//! Nothing here holds a lock across an await: a slow or dead asset
//! provider costs only the requests for its assets.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mimi_assets::{TargetRefusal, check_address};
use reqwest::header::{FROM, LOCATION};
use url::Url;

use super::flight::Boarding;
use super::store::AssetReader;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// Media type of every asset answer: the bytes are ciphertext.
pub const ASSET_CONTENT_TYPE: &str = "application/octet-stream";

/// An asset's bytes, ready to answer.
pub enum AssetBody {
    /// One of ours, streamed from the store.
    Stored(AssetReader),
    /// A proxied body, from the cache or just fetched.
    Bytes(Arc<[u8]>),
}

impl IntoResponse for AssetBody {
    fn into_response(self) -> Response {
        let (size, body) = match self {
            AssetBody::Stored(reader) => (reader.size, Body::from_stream(reader.stream)),
            AssetBody::Bytes(bytes) => (bytes.len() as u64, Body::from(Bytes::from_owner(bytes))),
        };
        (
            StatusCode::OK,
            [
                (CONTENT_TYPE, ASSET_CONTENT_TYPE.to_owned()),
                (CONTENT_LENGTH, size.to_string()),
            ],
            body,
        )
            .into_response()
    }
}

/// The label of a refusal in `mimi_asset_proxy_refused_total`.
pub fn refusal_label(refusal: &TargetRefusal) -> &'static str {
    match refusal {
        TargetRefusal::Unparsable(_) => "unparsable",
        TargetRefusal::NotHttps { .. } => "not_https",
        TargetRefusal::UserInfo => "userinfo",
        TargetRefusal::Fragment => "fragment",
        TargetRefusal::IpLiteral { .. } => "ip_literal",
        TargetRefusal::HostNotAllowed { .. } => "host_not_allowed",
        TargetRefusal::PortNotAllowed { .. } => "port_not_allowed",
        TargetRefusal::RedirectToOtherHost { .. } => "redirect_other_host",
        TargetRefusal::RedirectToOtherPort { .. } => "redirect_other_port",
        TargetRefusal::NonPublicAddress { .. } => "non_public_address",
        TargetRefusal::UnusableAddress { .. } => "unusable_address",
    }
}

/// Why a fetch failed.
#[derive(Debug)]
pub enum FetchFailure {
    /// A target check refused it (403).
    Refused(TargetRefusal),
    /// The asset provider failed (502, or 504 for a timeout); `label` is
    /// the reason of `mimi_asset_proxy_upstream_failures_total`.
    Upstream {
        status: StatusCode,
        label: &'static str,
        reason: String,
    },
}

impl FetchFailure {
    fn upstream(status: StatusCode, label: &'static str, reason: String) -> Self {
        Self::Upstream {
            status,
            label,
            reason,
        }
    }
}

/// `proxyDownload` of `raw` (the decoded `downloadUrl`): checks it, then
/// answers from the store, the cache or the asset provider.
pub async fn download(state: &AppState, raw: &str) -> Result<AssetBody, ApiError> {
    let assets = &state.assets;
    let url = assets.targets.check(raw).map_err(|r| refused(state, r))?;
    if let Some(id) = assets.own.id_of(&url) {
        let not_found = || ApiError::not_found(format!("{url} is not an asset of this provider"));
        let id = id.ok_or_else(not_found)?;
        let reader = assets
            .store
            .open(&id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(not_found)?;
        served(state, "store");
        return Ok(AssetBody::Stored(reader));
    }
    let fetch = async {
        assets
            .fetcher
            .fetch(&url)
            .await
            .map_err(|failure| failed(state, &url, failure))
    };
    let (source, body) = cached_or_fetched(state, url.as_str(), "hub", fetch).await;
    let body = body?;
    served(state, source);
    Ok(AssetBody::Bytes(body))
}

/// The body of the (normalized) URL `key`: from the cache, else by
/// `fetch`, which runs once for all the requests of `key` that overlap it
/// (`role` as in [`cached`]); the body fetched is cached. With where it
/// came from, "cache" or "upstream".
pub(super) async fn cached_or_fetched(
    state: &AppState,
    key: &str,
    role: &'static str,
    fetch: impl Future<Output = Result<Vec<u8>, ApiError>>,
) -> (&'static str, Result<Arc<[u8]>, ApiError>) {
    if let Some(body) = cached(state, key, role) {
        return ("cache", Ok(body));
    }
    let assets = &state.assets;
    let (fetched, boarding) = assets
        .flights
        .run(key, || async {
            // A flight that landed between our miss and boarding filled
            // the cache.
            if let Some(body) = assets.cache_get(key) {
                return Ok(body);
            }
            let body: Arc<[u8]> = fetch.await?.into();
            assets.cache_put(key.to_owned(), body.clone());
            Ok(body)
        })
        .await;
    if boarding == Boarding::Joined {
        state.runtime.record(|| {
            metrics::counter!("mimi_asset_fetches_coalesced_total", "role" => role).increment(1);
        });
    }
    ("upstream", fetched)
}

/// The cached body of `key`, counted in `mimi_asset_proxy_cache_total`
/// (`role`: "hub" for `proxyDownload`, "downloader" for our devices'
/// downloads through another hub).
pub(super) fn cached(state: &AppState, key: &str, role: &'static str) -> Option<Arc<[u8]>> {
    let body = state.assets.cache_get(key);
    let result = if body.is_some() { "hit" } else { "miss" };
    state.runtime.record(|| {
        metrics::counter!("mimi_asset_proxy_cache_total", "result" => result, "role" => role)
            .increment(1);
    });
    body
}

/// The answer to a failed fetch: 403 for a refusal, else the upstream
/// failure, counted.
fn failed(state: &AppState, url: &Url, failure: FetchFailure) -> ApiError {
    match failure {
        FetchFailure::Refused(r) => refused(state, r),
        FetchFailure::Upstream {
            status,
            label,
            reason,
        } => {
            tracing::info!(host = url.host_str(), %status, reason, "proxied download failed");
            state.runtime.record(|| {
                metrics::counter!("mimi_asset_proxy_upstream_failures_total", "reason" => label)
                    .increment(1);
            });
            ApiError::new(status, reason)
        }
    }
}

fn served(state: &AppState, source: &'static str) {
    state.runtime.record(|| {
        metrics::counter!("mimi_asset_proxy_served_total", "source" => source).increment(1);
    });
}

/// A 403 naming the refusal, counted by reason.
fn refused(state: &AppState, refusal: TargetRefusal) -> ApiError {
    let label = refusal_label(&refusal);
    state.runtime.record(|| {
        metrics::counter!("mimi_asset_proxy_refused_total", "reason" => label).increment(1);
    });
    ApiError::forbidden(refusal.to_string())
}

/// Most clients kept by a [`Fetcher`]; the table is emptied when full.
const CLIENTS_KEPT: usize = 256;

/// Most bytes of an asset provider's refusal quoted in our reason.
const QUOTED_REASON: usize = 200;

/// (host, port, the checked addresses it resolved to, sorted).
type ClientKey = (String, u16, Vec<SocketAddr>);

/// Fetches asset URLs that passed [`mimi_assets::DownloadTargets::check`].
pub struct Fetcher {
    /// The federation client's TLS: our certificate, the peers' roots.
    tls: rustls::ClientConfig,
    /// `[peers]`: domain (lowercase) → `host:port`, resolved instead of
    /// the DNS name; the URL's port is kept.
    overrides: BTreeMap<String, String>,
    allow_private: bool,
    timeout: Duration,
    max_bytes: u64,
    from: String,
    /// One client per pinned address set, so connections are reused while
    /// the addresses stay the same; addresses are resolved and checked on
    /// every fetch.
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
}

impl Fetcher {
    pub fn new(config: &ServerConfig, tls: rustls::ClientConfig) -> Self {
        Self {
            tls,
            overrides: config
                .peers
                .iter()
                .map(|(d, a)| (d.trim_end_matches('.').to_ascii_lowercase(), a.clone()))
                .collect(),
            allow_private: config.assets.allow_private_addresses,
            timeout: Duration::from_millis(config.assets.proxy_timeout_ms),
            max_bytes: config.assets.proxy_max_bytes(),
            from: format!("mimi@{}", config.domain),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The body of `url`, within the time and size limits.
    pub async fn fetch(&self, url: &Url) -> Result<Vec<u8>, FetchFailure> {
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        match tokio::time::timeout(self.timeout, self.fetch_within(url, &host, port)).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(&host, port)),
        }
    }

    fn timed_out(&self, host: &str, port: u16) -> FetchFailure {
        FetchFailure::upstream(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "the asset server {host}:{port} did not deliver the asset within {} ms",
                self.timeout.as_millis()
            ),
        )
    }

    async fn fetch_within(
        &self,
        url: &Url,
        host: &str,
        port: u16,
    ) -> Result<Vec<u8>, FetchFailure> {
        let addrs = self.resolve(host, port).await?;
        for addr in &addrs {
            check_address(addr.ip(), self.allow_private).map_err(FetchFailure::Refused)?;
        }
        let client = self.client(host, port, addrs.clone())?;
        let response = client
            .get(url.clone())
            .header(FROM, &self.from)
            .send()
            .await
            .map_err(|e| self.request_failed(host, port, &addrs, &e))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("nowhere")
                .to_owned();
            return Err(FetchFailure::upstream(
                StatusCode::BAD_GATEWAY,
                "redirect",
                format!(
                    "the asset server {host}:{port} answered {status} redirecting to {location}; \
                     the hub does not follow redirects"
                ),
            ));
        }
        if !status.is_success() {
            let reason = quoted_reason(response).await;
            return Err(FetchFailure::upstream(
                StatusCode::BAD_GATEWAY,
                "status",
                format!("the asset server {host}:{port} answered {status}{reason}"),
            ));
        }
        let too_large = || {
            FetchFailure::upstream(
                StatusCode::BAD_GATEWAY,
                "too_large",
                format!(
                    "asset larger than {} bytes, the most this hub proxies",
                    self.max_bytes
                ),
            )
        };
        read_within(response, self.max_bytes)
            .await
            .map_err(|failure| match failure {
                ReadFailure::TooLarge => too_large(),
                ReadFailure::Transfer(e) => self.request_failed(host, port, &addrs, &e),
            })
    }

    /// The addresses of `host`: its `[peers]` override's, else DNS; with
    /// the URL's port.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, FetchFailure> {
        let looked_up: std::io::Result<Vec<SocketAddr>> = match self.overrides.get(host) {
            Some(address) => tokio::net::lookup_host(address.as_str())
                .await
                .map(Iterator::collect),
            None => tokio::net::lookup_host((host, port))
                .await
                .map(Iterator::collect),
        };
        let failed =
            |reason: String| FetchFailure::upstream(StatusCode::BAD_GATEWAY, "resolve", reason);
        let mut addrs: Vec<SocketAddr> = looked_up
            .map_err(|e| failed(format!("the asset host {host} could not be resolved: {e}")))?
            .into_iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(failed(format!(
                "the asset host {host} resolved to no address"
            )));
        }
        Ok(addrs)
    }

    /// A client that connects to `host` at `addrs` only, never follows a
    /// redirect and uses no proxy of the environment.
    fn client(
        &self,
        host: &str,
        port: u16,
        addrs: Vec<SocketAddr>,
    ) -> Result<reqwest::Client, FetchFailure> {
        let key = (host.to_owned(), port, addrs);
        if let Some(client) = self.clients.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(self.tls.clone())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .resolve_to_addrs(host, &key.2)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .timeout(self.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| {
                tracing::error!(%e, "building the proxy's HTTP client");
                FetchFailure::upstream(
                    StatusCode::BAD_GATEWAY,
                    "client",
                    "the hub could not set up a connection to the asset server".into(),
                )
            })?;
        if let Ok(mut clients) = self.clients.lock() {
            if clients.len() >= CLIENTS_KEPT {
                clients.clear();
            }
            clients.insert(key, client.clone());
        }
        Ok(client)
    }

    fn request_failed(
        &self,
        host: &str,
        port: u16,
        addrs: &[SocketAddr],
        e: &reqwest::Error,
    ) -> FetchFailure {
        if e.is_timeout() {
            return self.timed_out(host, port);
        }
        let at: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let cause = error_chain(e);
        if e.is_connect() {
            FetchFailure::upstream(
                StatusCode::BAD_GATEWAY,
                "connect",
                format!(
                    "could not connect to the asset server {host}:{port} (at {}): {cause}",
                    at.join(", ")
                ),
            )
        } else {
            FetchFailure::upstream(
                StatusCode::BAD_GATEWAY,
                "transfer",
                format!("fetching from the asset server {host}:{port} failed: {cause}"),
            )
        }
    }
}

/// Why [`read_within`] gave up.
pub(super) enum ReadFailure {
    /// More than the limit arrived, or was announced.
    TooLarge,
    /// The transfer failed.
    Transfer(reqwest::Error),
}

/// The whole body of `response`, refused as soon as it is announced or
/// grows larger than `max_bytes`: a body held in memory, so that a
/// failure midway is a clean error rather than a truncated 200, and so
/// that it can be cached.
pub(super) async fn read_within(
    mut response: reqwest::Response,
    max_bytes: u64,
) -> Result<Vec<u8>, ReadFailure> {
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(ReadFailure::TooLarge);
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > max_bytes {
                    return Err(ReadFailure::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(ReadFailure::Transfer(e)),
        }
    }
}

/// `": <first bytes of the body>"` of a refusal, or nothing.
async fn quoted_reason(mut response: reqwest::Response) -> String {
    let Ok(Some(chunk)) = response.chunk().await else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&chunk[..chunk.len().min(QUOTED_REASON)]);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// An error and its sources, `: `-separated (reqwest's own message names
/// only the request).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
