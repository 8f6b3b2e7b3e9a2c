//! Shared server state handed to every handler.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRef;
use mimi_room::engine::HubEngine;
use mimi_room::keys::{self, FrankingKey, HubKey, KeyError, SignatureScheme};
use mimi_store::Store;

use crate::assets::AssetService;
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
    /// Uploads, serving them to peers, the download proxy (-06 §5.10).
    pub assets: Arc<AssetService>,
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

/// Loads the hub's keys from the data directory `dir`, creating each
/// (mode 0600) on first start, and builds the hub engine. The hub has a
/// signature key and a franking signature key per signature scheme of the
/// crypto provider's cipher suites (a room's suite picks the pair,
/// -06 §5.4.1, §7.4): `hub-signature.key` and `franking-signature.key`
/// for Ed25519 (the names of the Ed25519-only versions, so existing keys
/// stay), `hub-signature-p256.key` and `franking-signature-p256.key` for
/// ECDSA P-256; and one `franking-hmac.key` for all.
pub fn load_or_create_hub(dir: &Path, domain: &str) -> std::io::Result<HubEngine> {
    let key_error =
        |path: &Path, e: KeyError| std::io::Error::other(format!("{}: {e}", path.display()));
    let generated = |bytes: Result<Vec<u8>, KeyError>| bytes.map_err(std::io::Error::other);
    let hmac_path = dir.join("franking-hmac.key");
    let hmac = load_or_create_file(&hmac_path, || generated(keys::generate_hmac_key_bytes()))?;
    let mut hub_keys = Vec::new();
    let mut franking_keys = Vec::new();
    for scheme in keys::supported_signature_schemes() {
        let suffix = key_file_suffix(scheme);
        let hub_path = dir.join(format!("hub-signature{suffix}.key"));
        let hub_bytes =
            load_or_create_file(&hub_path, || generated(keys::generate_signer_bytes(scheme)))?;
        let hub_key =
            HubKey::from_bytes(&hub_bytes, domain).map_err(|e| key_error(&hub_path, e))?;
        let signer_path = dir.join(format!("franking-signature{suffix}.key"));
        let signer = load_or_create_file(&signer_path, || {
            generated(keys::generate_signer_bytes(scheme))
        })?;
        let franking = FrankingKey::from_bytes(&signer, &hmac, domain)
            .map_err(|e| key_error(&signer_path, e))?;
        for (path, found) in [
            (&hub_path, hub_key.signature_scheme()),
            (&signer_path, franking.signature_scheme()),
        ] {
            if found != scheme {
                return Err(std::io::Error::other(format!(
                    "{}: a {found:?} key, expected {scheme:?}",
                    path.display()
                )));
            }
        }
        hub_keys.push(hub_key);
        franking_keys.push(franking);
    }
    Ok(HubEngine::new(domain, hub_keys, franking_keys))
}

/// The file name suffix of the hub's keys of `scheme`: none for Ed25519,
/// whose files predate the other schemes.
fn key_file_suffix(scheme: SignatureScheme) -> String {
    match scheme {
        SignatureScheme::ED25519 => String::new(),
        SignatureScheme::ECDSA_SECP256R1_SHA256 => "-p256".into(),
        other => format!("-{:04x}", other as u16),
    }
}

/// Reads a secret file, creating it (mode 0600) with `create()` on first
/// start.
pub(crate) fn load_or_create_file(
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

#[cfg(test)]
mod tests {
    use super::*;
    use mimi_protocol::msgs::CipherSuite;

    /// A data directory of a version with Ed25519 keys only keeps them and
    /// gets the P-256 keys on the next start.
    #[test]
    fn existing_ed25519_keys_stay_and_p256_keys_are_added() {
        let dir = tempfile::tempdir().unwrap();
        let ed25519 = keys::generate_signer_bytes(SignatureScheme::ED25519).unwrap();
        std::fs::write(dir.path().join("hub-signature.key"), &ed25519).unwrap();
        let old_key = HubKey::from_bytes(&ed25519, "a.example").unwrap();
        let hub = load_or_create_hub(dir.path(), "a.example").unwrap();
        let suite = |code| CipherSuite(code).to_openmls().unwrap();
        assert_eq!(
            hub.external_sender(suite(1)),
            Some(old_key.external_sender())
        );
        for file in ["hub-signature-p256.key", "franking-signature-p256.key"] {
            assert!(dir.path().join(file).exists(), "{file}");
        }
        let p256 = hub.external_sender(suite(2)).unwrap();
        assert_ne!(Some(p256.clone()), hub.external_sender(suite(1)));
        // The next start loads the same keys.
        let again = load_or_create_hub(dir.path(), "a.example").unwrap();
        assert_eq!(again.external_sender(suite(2)), Some(p256));
        assert_eq!(again.franking_agent(suite(2)), hub.franking_agent(suite(2)));
        // A P-256 key where the Ed25519 one belongs is an error.
        std::fs::copy(
            dir.path().join("hub-signature-p256.key"),
            dir.path().join("hub-signature.key"),
        )
        .unwrap();
        assert!(load_or_create_hub(dir.path(), "a.example").is_err());
    }
}
