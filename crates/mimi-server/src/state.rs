//! Shared server state handed to every handler.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mimi_store::Store;
use openmls::prelude::{BasicCredential, Credential, SignaturePublicKey};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::types::SignatureScheme;
use tls_codec::{Deserialize as _, Serialize as _};

use crate::config::ServerConfig;
use crate::outbound::PeerClient;

/// Everything a request handler or worker needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub store: Arc<dyn Store>,
    pub crypto: Arc<RustCrypto>,
    /// The hub's signing key: external sender in rooms it hosts (-06 §7.4),
    /// signer of groupInfo responses (§5.6) and franks (§5.4.1).
    pub hub_key: Arc<HubKey>,
    pub peers: Arc<PeerClient>,
}

impl AppState {
    pub fn domain(&self) -> &str {
        &self.config.domain
    }
}

/// The hub's long-term signature key and credential.
pub struct HubKey {
    pub signer: SignatureKeyPair,
    /// A BasicCredential naming the provider URI `mimi://<domain>`.
    pub credential: Credential,
}

impl HubKey {
    /// The signature scheme of mimi-rs rooms (MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519).
    pub const SCHEME: SignatureScheme = SignatureScheme::ED25519;

    /// Loads the key from `path`, creating it (mode 0600) on first start.
    pub fn load_or_create(path: &Path, domain: &str) -> std::io::Result<Self> {
        let signer = match std::fs::read(path) {
            Ok(bytes) => SignatureKeyPair::tls_deserialize_exact(bytes)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let signer = SignatureKeyPair::new(Self::SCHEME)
                    .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
                let bytes = signer
                    .tls_serialize_detached()
                    .map_err(std::io::Error::other)?;
                write_private(path, &bytes)?;
                signer
            }
            Err(e) => return Err(e),
        };
        let credential = BasicCredential::new(format!("mimi://{domain}").into_bytes()).into();
        Ok(Self { signer, credential })
    }

    pub fn public_key(&self) -> SignaturePublicKey {
        self.signer.public().into()
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
