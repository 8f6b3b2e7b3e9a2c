//! Shared server state handed to every handler.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mimi_protocol::components::FrankingAgentData;
use mimi_protocol::msgs::{
    CipherSuite, Frank, FrankingIntegrityTbs, MsgError, ServerFrankingContext,
};
use mimi_store::Store;
use openmls::prelude::{BasicCredential, Credential, SignaturePublicKey};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::random::OpenMlsRand as _;
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
    /// The hub's signing key: external sender in rooms it hosts (-06 §7.4)
    /// and signer of groupInfo responses (§5.6).
    pub hub_key: Arc<HubKey>,
    /// The hub's franking keys (-06 §5.4.1).
    pub franking: Arc<FrankingKey>,
    pub peers: Arc<PeerClient>,
    /// Sees every batch this server has durably queued for its devices
    /// (measurements: `mimi bench`); none by default.
    pub delivery_observer: Arc<std::sync::RwLock<Option<Arc<crate::delivery::DeliveryObserver>>>>,
}

impl AppState {
    pub fn domain(&self) -> &str {
        &self.config.domain
    }

    /// Installs (or with `None` removes) this server's delivery observer.
    pub fn set_delivery_observer(&self, f: Option<Arc<crate::delivery::DeliveryObserver>>) {
        if let Ok(mut slot) = self.delivery_observer.write() {
            *slot = f;
        }
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
        Ok(Self {
            signer: load_or_create_signer(path)?,
            credential: provider_credential(domain),
        })
    }

    pub fn public_key(&self) -> SignaturePublicKey {
        self.signer.public().into()
    }
}

/// A BasicCredential naming the provider URI `mimi://<domain>`.
fn provider_credential(domain: &str) -> Credential {
    BasicCredential::new(format!("mimi://{domain}").into_bytes()).into()
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

/// An Ed25519 signature key pair persisted at `path`.
fn load_or_create_signer(path: &Path) -> std::io::Result<SignatureKeyPair> {
    let bytes = load_or_create_file(path, || {
        SignatureKeyPair::new(HubKey::SCHEME)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?
            .tls_serialize_detached()
            .map_err(std::io::Error::other)
    })?;
    SignatureKeyPair::tls_deserialize_exact(bytes)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))
}

/// The hub's franking keys (-06 §5.4.1 "Hub processing"): the symmetric
/// `hub_key` of `server_frank = HMAC_SHA256(hub_key, franking_tag ||
/// context)` and the franking signature key pair whose public half rooms
/// carry in their `franking_signature_key` component.
///
/// One key of each, persisted beside the hub key. There is no rotation:
/// -06 §5.4.1 asks for a new group (ReInit) when the franking agent
/// changes, and franks made under a replaced key could no longer be
/// verified in abuse reports (-06 §5.9).
pub struct FrankingKey {
    pub signer: SignatureKeyPair,
    /// The provider credential `mimi://<domain>`; receivers check that its
    /// domain is the hub's.
    pub credential: Credential,
    hmac_key: [u8; 32],
}

/// Why a frank presented in an abuse report does not verify (-06 §5.9).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrankError {
    #[error(
        "server_frank does not match (not franked by this hub, or content, sender, room or timestamp changed)"
    )]
    ServerFrank,
    #[error("franking_integrity_signature does not verify")]
    Signature,
    #[error("franking_signature_ciphersuite is not one this hub signs with")]
    Ciphersuite,
}

impl FrankingKey {
    /// Loads the keys from `dir` (`franking-signature.key`,
    /// `franking-hmac.key`), creating them (mode 0600) on first start.
    pub fn load_or_create(dir: &Path, domain: &str) -> std::io::Result<Self> {
        let signer = load_or_create_signer(&dir.join("franking-signature.key"))?;
        let secret = load_or_create_file(&dir.join("franking-hmac.key"), || {
            RustCrypto::default()
                .random_vec(32)
                .map_err(|e| std::io::Error::other(format!("{e:?}")))
        })?;
        let hmac_key = <[u8; 32]>::try_from(secret.as_slice()).map_err(|_| {
            std::io::Error::other(format!(
                "{}: not a 32-octet key",
                dir.join("franking-hmac.key").display()
            ))
        })?;
        Ok(Self {
            signer,
            credential: provider_credential(domain),
            hmac_key,
        })
    }

    /// The `FrankingAgentData` rooms put in their `franking_signature_key`
    /// GroupContext component for this hub to frank their messages.
    pub fn agent_data(&self) -> FrankingAgentData {
        FrankingAgentData {
            franking_signature_key: self.signer.public().into(),
            credential: self.credential.clone(),
        }
    }

    /// `HMAC_SHA256(hub_key, franking_tag || context)`, the context
    /// TLS-serialised.
    pub fn server_frank(
        &self,
        franking_tag: &[u8; 32],
        context: &ServerFrankingContext,
    ) -> Result<[u8; 32], tls_codec::Error> {
        let mut input = franking_tag.to_vec();
        context.tls_serialize(&mut input)?;
        Ok(mimi_content::franking::hmac_sha256(&self.hmac_key, &input))
    }

    /// Franks a message: the server frank, signed as
    /// `SignWithLabel(franking_private_key, "FrankingIntegrityTBS", ...)`.
    pub fn frank(
        &self,
        franking_tag: &[u8; 32],
        context: ServerFrankingContext,
        ciphersuite: CipherSuite,
    ) -> Result<Frank, MsgError> {
        let server_frank = self.server_frank(franking_tag, &context)?;
        FrankingIntegrityTbs {
            server_frank,
            franking_signature_ciphersuite: ciphersuite,
            context,
        }
        .sign(&self.signer)
    }

    /// Checks a frank against a recomputed franking tag and context (-06
    /// §5.9): the server frank is regenerated with `hub_key` and compared
    /// in constant time, and the integrity signature must verify with this
    /// hub's franking key.
    pub fn verify(
        &self,
        crypto: &RustCrypto,
        franking_tag: &[u8; 32],
        context: &ServerFrankingContext,
        frank: &Frank,
    ) -> Result<(), FrankError> {
        if frank.franking_signature_ciphersuite.signature_scheme().ok() != Some(HubKey::SCHEME) {
            return Err(FrankError::Ciphersuite);
        }
        let expected = self
            .server_frank(franking_tag, context)
            .map_err(|_| FrankError::ServerFrank)?;
        if !constant_time_eq(&expected, &frank.server_frank) {
            return Err(FrankError::ServerFrank);
        }
        frank
            .verify(crypto, self.signer.public(), context)
            .map_err(|_| FrankError::Signature)
    }
}

/// Compares two MACs without an early exit on the first differing octet.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
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
