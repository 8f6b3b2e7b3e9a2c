//! Shared server state handed to every handler.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRef;
use mimi_room::engine::HubEngine;
use mimi_room::keys::{self, FrankingKey, HubKey, KeyError};
use mimi_store::Store;

use crate::config::ServerConfig;
use crate::metrics::ServerMetrics;
use crate::outbound::PeerClient;
use crate::runtime::ServerRuntime;

/// Everything a request handler or worker needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub store: Arc<dyn Store>,
    /// The hub's decisions, with its keys (mimi-room).
    pub hub: Arc<HubEngine>,
    pub peers: Arc<PeerClient>,
    /// This server's caches, limiter, fanout wake-up, metrics and
    /// delivery observer.
    pub runtime: Arc<ServerRuntime>,
}

impl AppState {
    pub fn domain(&self) -> &str {
        &self.config.domain
    }
}

// Handlers that need only part of the state extract just that part
// (`crate::metrics`), so those modules do not depend on this one.
impl FromRef<AppState> for Arc<ServerMetrics> {
    fn from_ref(state: &AppState) -> Self {
        state.runtime.metrics().clone()
    }
}

impl FromRef<AppState> for Arc<dyn Store> {
    fn from_ref(state: &AppState) -> Self {
        state.store.clone()
    }
}

/// Loads the hub's keys from the data directory `dir`
/// (`hub-signature.key`, `franking-signature.key`, `franking-hmac.key`),
/// creating each (mode 0600) on first start, and builds the hub engine.
pub fn load_or_create_hub(dir: &Path, domain: &str) -> std::io::Result<HubEngine> {
    let key_error =
        |path: &Path, e: KeyError| std::io::Error::other(format!("{}: {e}", path.display()));
    let generated = |bytes: Result<Vec<u8>, KeyError>| bytes.map_err(std::io::Error::other);
    let hub_path = dir.join("hub-signature.key");
    let hub_bytes = load_or_create_file(&hub_path, || generated(keys::generate_signer_bytes()))?;
    let hub_key = HubKey::from_bytes(&hub_bytes, domain).map_err(|e| key_error(&hub_path, e))?;
    let signer_path = dir.join("franking-signature.key");
    let signer = load_or_create_file(&signer_path, || generated(keys::generate_signer_bytes()))?;
    let hmac_path = dir.join("franking-hmac.key");
    let hmac = load_or_create_file(&hmac_path, || generated(keys::generate_hmac_key_bytes()))?;
    let franking =
        FrankingKey::from_bytes(&signer, &hmac, domain).map_err(|e| key_error(&signer_path, e))?;
    Ok(HubEngine::new(domain, hub_key, franking))
}

/// Reads a secret file, creating it (mode 0600) with `create()` on first
/// start.
fn load_or_create_file(
    path: &Path,
    create: impl FnOnce() -> std::io::Result<Vec<u8>>,
) -> std::io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = create()?;
            write_private(path, &bytes)?;
            Ok(bytes)
        }
        Err(e) => Err(e),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Milliseconds since the Unix epoch (hub acceptance timestamps, -06 §5.3).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch (KeyPackage lifetimes).
pub fn now_secs() -> i64 {
    now_ms() / 1000
}
