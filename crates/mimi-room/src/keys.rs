//! The hub's long-term keys: its signature key as a room's external sender
//! (-06 §7.4) and signer of groupInfo responses (-06 §5.6), and its
//! franking keys (-06 §5.4.1).
//!
//! Pure: keys are generated, encoded and decoded here; where their bytes
//! are kept (files, a secret store) is the server's business.

use mimi_protocol::components::FrankingAgentData;
use mimi_protocol::msgs::{
    CipherSuite, Frank, FrankingIntegrityTbs, MsgError, ServerFrankingContext,
};
use openmls::prelude::{BasicCredential, Credential, ExternalSender, SignaturePublicKey};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::random::OpenMlsRand as _;
use openmls_traits::types::SignatureScheme;
use tls_codec::{Deserialize as _, Serialize as _};

/// Why key bytes could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("generating a key failed: {0}")]
    Generate(String),
    #[error("encoding a key failed: {0}")]
    Encode(#[source] tls_codec::Error),
    #[error("not a signature key pair: {0}")]
    DecodeSigner(#[source] tls_codec::Error),
    #[error("not a 32-octet key")]
    HmacKeyLength,
}

/// The signature scheme of mimi-rs hubs (the hub key, and the franking
/// key): Ed25519, as in MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.
pub const HUB_SIGNATURE_SCHEME: SignatureScheme = SignatureScheme::ED25519;

/// A BasicCredential naming the provider URI `mimi://<domain>`.
pub fn provider_credential(domain: &str) -> Credential {
    BasicCredential::new(format!("mimi://{domain}").into_bytes()).into()
}

/// A fresh signature key pair of the hub's scheme, TLS-encoded.
pub fn generate_signer_bytes() -> Result<Vec<u8>, KeyError> {
    SignatureKeyPair::new(HUB_SIGNATURE_SCHEME)
        .map_err(|e| KeyError::Generate(format!("{e:?}")))?
        .tls_serialize_detached()
        .map_err(KeyError::Encode)
}

/// A fresh 32-octet HMAC key.
pub fn generate_hmac_key_bytes() -> Result<Vec<u8>, KeyError> {
    RustCrypto::default()
        .random_vec(32)
        .map_err(|e| KeyError::Generate(format!("{e:?}")))
}

fn decode_signer(bytes: &[u8]) -> Result<SignatureKeyPair, KeyError> {
    SignatureKeyPair::tls_deserialize_exact(bytes).map_err(KeyError::DecodeSigner)
}

/// The hub's long-term signature key and credential.
pub struct HubKey {
    pub(crate) signer: SignatureKeyPair,
    /// A BasicCredential naming the provider URI `mimi://<domain>`.
    pub(crate) credential: Credential,
}

impl HubKey {
    /// The key encoded by [`generate_signer_bytes`], for `domain`.
    pub fn from_bytes(bytes: &[u8], domain: &str) -> Result<Self, KeyError> {
        Ok(Self {
            signer: decode_signer(bytes)?,
            credential: provider_credential(domain),
        })
    }

    pub fn public_key(&self) -> SignaturePublicKey {
        self.signer.public().into()
    }

    /// The hub's `ExternalSender` (-06 §7.4): its signature key and
    /// provider credential.
    pub fn external_sender(&self) -> ExternalSender {
        ExternalSender::new(self.public_key(), self.credential.clone())
    }
}

/// The hub's franking keys (-06 §5.4.1 "Hub processing"): the symmetric
/// `hub_key` of `server_frank = HMAC_SHA256(hub_key, franking_tag ||
/// context)` and the franking signature key pair whose public half rooms
/// carry in their `franking_signature_key` component.
///
/// One key of each, persisted by the server. There is no rotation: -06
/// §5.4.1 asks for a new group (ReInit) when the franking agent changes,
/// and franks made under a replaced key could no longer be verified in
/// abuse reports (-06 §5.9).
pub struct FrankingKey {
    signer: SignatureKeyPair,
    /// The provider credential `mimi://<domain>`; receivers check that its
    /// domain is the hub's.
    credential: Credential,
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
    /// The keys encoded by [`generate_signer_bytes`] and
    /// [`generate_hmac_key_bytes`], for `domain`.
    pub fn from_bytes(signer: &[u8], hmac_key: &[u8], domain: &str) -> Result<Self, KeyError> {
        Ok(Self {
            signer: decode_signer(signer)?,
            credential: provider_credential(domain),
            hmac_key: <[u8; 32]>::try_from(hmac_key).map_err(|_| KeyError::HmacKeyLength)?,
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
        if frank.franking_signature_ciphersuite.signature_scheme().ok()
            != Some(HUB_SIGNATURE_SCHEME)
        {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn franking_key() -> FrankingKey {
        FrankingKey::from_bytes(
            &generate_signer_bytes().unwrap(),
            &generate_hmac_key_bytes().unwrap(),
            "a.example",
        )
        .unwrap()
    }

    fn context(ts: u64) -> ServerFrankingContext {
        ServerFrankingContext {
            sender_uri: mimi_protocol::IdentifierUri::new("mimi://b.example/u/bob"),
            room_uri: mimi_protocol::IdentifierUri::new("mimi://a.example/r/room"),
            accepted_timestamp: ts,
        }
    }

    #[test]
    fn keys_round_trip_through_their_bytes() {
        let bytes = generate_signer_bytes().unwrap();
        let a = HubKey::from_bytes(&bytes, "a.example").unwrap();
        let b = HubKey::from_bytes(&bytes, "a.example").unwrap();
        assert_eq!(a.external_sender(), b.external_sender());
        assert!(matches!(
            FrankingKey::from_bytes(&bytes, &[0; 31], "a.example"),
            Err(KeyError::HmacKeyLength)
        ));
    }

    #[test]
    fn a_frank_verifies_only_for_its_tag_and_context() {
        let key = franking_key();
        let crypto = RustCrypto::default();
        let suite = CipherSuite::from(
            openmls::prelude::Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
        );
        let frank = key.frank(&[7; 32], context(1), suite).unwrap();
        assert_eq!(key.verify(&crypto, &[7; 32], &context(1), &frank), Ok(()));
        assert_eq!(
            key.verify(&crypto, &[8; 32], &context(1), &frank),
            Err(FrankError::ServerFrank)
        );
        assert_eq!(
            key.verify(&crypto, &[7; 32], &context(2), &frank),
            Err(FrankError::ServerFrank)
        );
        // Another hub's keys: its HMAC differs.
        assert_eq!(
            franking_key().verify(&crypto, &[7; 32], &context(1), &frank),
            Err(FrankError::ServerFrank)
        );
    }
}
