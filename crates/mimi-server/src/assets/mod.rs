//! Attachments on the server side (-06 §5.10, draft-ietf-mimi-content
//! §External content; docs/operations.md "Assets").
//!
//! * Uploads: a device posts the ciphertext of an asset to
//!   `POST /client/v1/assets`; it is stored ([`store`]) and the device gets
//!   the `https` URL peers fetch it from, `<federation public URL>/v1/assets/<id>`.
//! * Serving: peers (mutual TLS) fetch it at `GET /v1/assets/<id>`.
//! * The hub's download proxy, `GET /v1/proxyDownload/{downloadUrl}`
//!   (-06 §5.10.2): a peer asks the room's hub for an asset URL; the hub
//!   fetches it from the asset provider ([`proxy`]) so that the asset
//!   provider never learns which provider, let alone which client, asked.
//! * Downloads: a device asks its own provider,
//!   `GET /client/v1/assets/download?url=…&room=…`, which asks the room's
//!   hub (or acts as the hub itself): the device never talks to the asset
//!   provider (-06 §5.10.1 does not recommend direct downloads).
//!
//! What is checked before the hub fetches anything is `mimi-assets`
//! (`DownloadTargets`, `check_address`): the hub must not become an open
//! proxy, nor a way into its own network.

pub mod flight;
pub mod media;
pub mod object;
pub mod oblivious;
pub mod proxy;
pub mod routes;
pub mod store;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mimi_assets::{DownloadCache, DownloadTargets, TargetConfigError};
use tokio::sync::watch;
use tokio::task::JoinSet;
use url::Url;

use crate::config::{AssetsConfig, ServerConfig};
use crate::rate_limit::{RateLimited, RateLimiter, RateLimits};
use crate::state::AppState;
use media::MediaTypes;
use proxy::Fetcher;
use store::{AssetId, AssetStore, FsAssetStore};

/// The federation path assets are served at; `{id}` is an [`AssetId`].
pub const ASSET_PATH: &str = "/v1/assets/{id}";

/// Why the asset service could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AssetSetupError {
    #[error("[assets] media_types: {0}")]
    MediaTypes(String),
    #[error("[assets] proxy targets: {0}")]
    Targets(#[from] TargetConfigError),
    #[error("federation public URL {url}: {reason}")]
    PublicUrl { url: String, reason: String },
    #[error("assets directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error(transparent)]
    S3(#[from] object::S3SetupError),
    #[error("OHTTP Gateway key {path}: {reason}")]
    GatewayKey { path: String, reason: String },
}

/// Where this provider's own assets are reachable: the origin and path
/// prefix of the URLs uploads get.
#[derive(Debug, Clone)]
struct OwnAssets {
    /// `<public URL>/v1/assets/`, without the id.
    base: String,
    host: String,
    port: u16,
    /// The path up to the id.
    path_prefix: String,
}

impl OwnAssets {
    fn new(public_url: &str) -> Result<Self, AssetSetupError> {
        let bad = |reason: String| AssetSetupError::PublicUrl {
            url: public_url.to_owned(),
            reason,
        };
        let trimmed = public_url.trim_end_matches('/');
        let base = format!("{trimmed}/v1/assets/");
        let parsed = Url::parse(&base).map_err(|e| bad(e.to_string()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| bad("no host".into()))?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        Ok(Self {
            host,
            port: parsed.port_or_known_default().unwrap_or(443),
            path_prefix: parsed.path().to_owned(),
            base,
        })
    }

    /// `Some(id)` when `url` (checked and normalized) names one of our
    /// assets, `Some(None)` when it is on our asset origin and path but
    /// names no valid id, `None` when it is not ours.
    fn id_of(&self, url: &Url) -> Option<Option<AssetId>> {
        let ours = url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == Some(self.port);
        if !ours {
            return None;
        }
        let id = url
            .path()
            .strip_prefix(&self.path_prefix)
            .filter(|_| url.query().is_none())
            .and_then(AssetId::parse);
        Some(id)
    }

    /// The `host:port` of our asset URLs, as a proxy target entry, when
    /// it is a DNS name (the proxy never fetches IP literals).
    fn target_entry(&self) -> Option<String> {
        let entry = format!("{}:{}", self.host, self.port);
        DownloadTargets::new([&entry]).ok().map(|_| entry)
    }
}

/// A 429 whose reason carries the retry delay (`with_retry_after`).
fn too_many(limited: RateLimited) -> crate::error::ApiError {
    crate::error::ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        format!("asset downloads: {limited}"),
    )
}

/// One server's asset service: store, limits, the proxy's allowed targets,
/// cache and fetcher.
pub struct AssetService {
    pub store: Arc<dyn AssetStore>,
    config: AssetsConfig,
    media: MediaTypes,
    targets: DownloadTargets,
    own: OwnAssets,
    cache: Mutex<DownloadCache>,
    /// Fetches in progress (upstream at the hub, from the hub at a
    /// downloading provider), shared by the requests that overlap them.
    flights: flight::Flights<Result<Arc<[u8]>, crate::error::ApiError>>,
    uploads: RateLimiter,
    /// Our users' downloads, per user.
    device_downloads: RateLimiter,
    /// Peers' `proxyDownload` and Gateway requests, per provider.
    peer_downloads: RateLimiter,
    fetcher: Fetcher,
    local_domain: String,
    /// The hub's OHTTP Gateway key (-06 §5.10 "Download using Oblivious
    /// HTTP").
    pub gateway: mimi_assets::oblivious::Gateway,
}

impl AssetService {
    /// The service of a server whose federation public URL is final
    /// (`config.public_url()`); `tls` is the federation client's
    /// configuration (our certificate, the peers' roots), presented to
    /// asset providers as to any peer.
    pub fn new(config: &ServerConfig, tls: rustls::ClientConfig) -> Result<Self, AssetSetupError> {
        if let Some(s3) = &config.assets.s3 {
            let store = object::ObjectAssetStore::s3(s3)?;
            return Self::with_store(config, tls, Arc::new(store));
        }
        let dir = config.assets_dir();
        let store = FsAssetStore::open(&dir).map_err(|source| AssetSetupError::Dir {
            dir: dir.display().to_string(),
            source,
        })?;
        Self::with_store(config, tls, Arc::new(store))
    }

    /// As [`Self::new`], with another store.
    pub fn with_store(
        config: &ServerConfig,
        tls: rustls::ClientConfig,
        store: Arc<dyn AssetStore>,
    ) -> Result<Self, AssetSetupError> {
        let assets = &config.assets;
        let media = MediaTypes::new(&assets.media_types).map_err(AssetSetupError::MediaTypes)?;
        let own = OwnAssets::new(&config.public_url())?;
        let targets = DownloadTargets::new(proxy_target_entries(config, &own))?;
        let max_entry = usize::try_from(assets.proxy_max_bytes()).unwrap_or(usize::MAX);
        Ok(Self {
            store,
            media,
            targets,
            own,
            cache: Mutex::new(DownloadCache::new(assets.proxy_cache_bytes, max_entry)),
            flights: flight::Flights::default(),
            uploads: RateLimiter::new(RateLimits {
                per_provider_per_minute: assets.uploads_per_user_per_minute,
                per_user_per_minute: assets.uploads_per_user_per_minute,
                max_buckets: config.limits.rate_limit_buckets,
            }),
            device_downloads: RateLimiter::new(RateLimits {
                per_provider_per_minute: assets.downloads_per_user_per_minute,
                per_user_per_minute: assets.downloads_per_user_per_minute,
                max_buckets: config.limits.rate_limit_buckets,
            }),
            peer_downloads: RateLimiter::new(RateLimits {
                per_provider_per_minute: assets.downloads_per_provider_per_minute,
                per_user_per_minute: assets.downloads_per_provider_per_minute,
                max_buckets: config.limits.rate_limit_buckets,
            }),
            fetcher: Fetcher::new(config, tls),
            local_domain: config.domain.clone(),
            gateway: oblivious::load_or_create_gateway(&config.data_dir)?,
            config: assets.clone(),
        })
    }

    /// The `[assets]` configuration in force.
    pub fn config(&self) -> &AssetsConfig {
        &self.config
    }

    /// The hosts (and ports) the proxy fetches from.
    pub fn targets(&self) -> &DownloadTargets {
        &self.targets
    }

    /// The URL peers fetch asset `id` from.
    pub fn url_of(&self, id: &AssetId) -> String {
        format!("{}{id}", self.own.base)
    }

    /// Unix seconds after which an asset stored now is deleted (0: kept).
    pub fn expires(&self) -> u64 {
        if self.config.retention_secs == 0 {
            return 0;
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .saturating_add(self.config.retention_secs)
    }

    /// Takes an upload token of `user` (a local user).
    pub fn limit_upload(&self, user: &str) -> Result<(), RateLimited> {
        self.uploads
            .check_user(&self.local_domain, user, Instant::now())
    }

    /// Takes a download token of `user` (a local user): 429 when empty.
    pub fn limit_device_download(&self, user: &str) -> Result<(), crate::error::ApiError> {
        self.device_downloads
            .check_user(&self.local_domain, user, Instant::now())
            .map_err(too_many)
    }

    /// Takes a download token of the peer `provider` (`proxyDownload`,
    /// the OHTTP Gateway): 429 when empty.
    pub fn limit_peer_download(&self, provider: &str) -> Result<(), crate::error::ApiError> {
        self.peer_downloads
            .check(provider, "", Instant::now())
            .map_err(too_many)
    }

    /// The proxy cache's counters.
    pub fn cache_stats(&self) -> Option<mimi_assets::CacheStats> {
        self.cache.lock().ok().map(|c| c.stats())
    }

    /// The cached body of the (normalized) URL `key`. The guard is
    /// dropped before returning: no lock is held across an await.
    fn cache_get(&self, key: &str) -> Option<Arc<[u8]>> {
        self.cache.lock().ok().and_then(|mut c| c.get(key))
    }

    fn cache_put(&self, key: String, body: Arc<[u8]>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(key, body);
        }
    }

    /// Fetches in progress.
    pub fn fetches_in_flight(&self) -> usize {
        self.flights.len()
    }
}

/// The proxy's allowed `host[:port]` entries: every `[assets] peer_hosts`
/// entry, `domain:port` of every `[peers]` override (a peer's federation
/// listener, where its own uploads are served), and our own asset origin
/// (served from the store, never fetched).
fn proxy_target_entries(config: &ServerConfig, own: &OwnAssets) -> Vec<String> {
    let mut entries: Vec<String> = config
        .assets
        .peer_hosts
        .values()
        .flatten()
        .cloned()
        .collect();
    for (domain, address) in &config.peers {
        match address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
        {
            Some(port) => entries.push(format!("{domain}:{port}")),
            None => tracing::warn!(
                domain,
                address,
                "peer override without a port: not a proxy target"
            ),
        }
    }
    match own.target_entry() {
        Some(entry) => entries.push(entry),
        None => tracing::warn!(
            host = own.host,
            "the federation public URL names no DNS host: this provider's asset URLs \
             cannot be proxied by any hub"
        ),
    }
    entries
}

/// Deletes assets older than `[assets] retention_secs`, at
/// [`store::purge_interval`], until shutdown. Nothing runs with a
/// retention of 0.
pub fn spawn_retention(
    tasks: &mut JoinSet<()>,
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) {
    let retention = Duration::from_secs(state.assets.config.retention_secs);
    if retention.is_zero() {
        return;
    }
    let every = store::purge_interval(retention);
    tasks.spawn(async move {
        loop {
            if let Some(cutoff) = SystemTime::now().checked_sub(retention) {
                match state.assets.store.purge_older_than(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(deleted = n, "expired assets deleted");
                        state.runtime.record(|| {
                            metrics::counter!("mimi_assets_expired_total").increment(n);
                        });
                    }
                    Err(e) => tracing::warn!(%e, "deleting expired assets"),
                }
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_asset_urls_are_recognized() {
        let own = OwnAssets::new("https://A.example:8443/").unwrap();
        assert_eq!(own.base, "https://A.example:8443/v1/assets/");
        assert_eq!(own.target_entry().as_deref(), Some("a.example:8443"));
        let id = AssetId::random().unwrap();
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            own.id_of(&url(&format!("https://a.example:8443/v1/assets/{id}"))),
            Some(Some(id))
        );
        for not_an_asset in [
            format!("https://a.example:8443/v1/assets/{id}?x=1"),
            "https://a.example:8443/v1/assets/nope".to_string(),
            "https://a.example:8443/other".to_string(),
        ] {
            assert_eq!(own.id_of(&url(&not_an_asset)), Some(None), "{not_an_asset}");
        }
        assert_eq!(
            own.id_of(&url(&format!("https://a.example/v1/assets/{id}"))),
            None
        );
        assert_eq!(
            own.id_of(&url(&format!("https://b.example:8443/v1/assets/{id}"))),
            None
        );
        let prefixed = OwnAssets::new("https://a.example/mimi").unwrap();
        assert_eq!(
            prefixed.id_of(&url(&format!("https://a.example/mimi/v1/assets/{id}"))),
            Some(Some(id))
        );
        assert_eq!(
            OwnAssets::new("https://127.0.0.1:1")
                .unwrap()
                .target_entry(),
            None
        );
        assert!(OwnAssets::new("not a url").is_err());
    }
}
