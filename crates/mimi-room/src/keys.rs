//! The hub's long-term keys: its signature keys as a room's external
//! sender (-06 §7.4) and signer of groupInfo responses (-06 §5.6), and its
//! franking keys (-06 §5.4.1). There is one signature key and one franking
//! signature key per signature scheme of the crypto provider's cipher
//! suites; a room's suite picks the pair it uses.
//!
//! Pure: keys are generated, encoded and decoded here; where their bytes
//! are kept (files, a secret store) is the server's business.

use mimi_protocol::components::FrankingAgentData;
use mimi_protocol::msgs::{
    CipherSuite as WireCipherSuite, Frank, FrankingIntegrityTbs, MsgError, ServerFrankingContext,
};
use openmls::prelude::{
    BasicCredential, Ciphersuite, Credential, ExternalSender, SignaturePublicKey,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto as _;
use openmls_traits::random::OpenMlsRand as _;
pub use openmls_traits::types::SignatureScheme;
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
    #[error("signature scheme {0:?} is not one of the crypto provider's suites")]
    UnsupportedScheme(SignatureScheme),
}

/// The cipher suites the hub's crypto provider (openmls_rust_crypto)
/// supports: 0x0001 (X25519, AES-128-GCM, Ed25519), 0x0002 (P-256,
/// AES-128-GCM, ECDSA P-256) and 0x0003 (X25519, ChaCha20-Poly1305,
/// Ed25519). The P-384, P-521 and X448 suites of RFC 9420 are not: rooms
/// on them are refused.
pub fn supported_ciphersuites() -> Vec<Ciphersuite> {
    RustCrypto::default().supported_ciphersuites()
}

/// Whether the hub's crypto provider supports `ciphersuite`.
pub fn supports_ciphersuite(ciphersuite: Ciphersuite) -> bool {
    RustCrypto::default().supports(ciphersuite).is_ok()
}

/// The signature schemes of [`supported_ciphersuites`], each once (Ed25519
/// and ECDSA P-256): the hub keeps one signature key and one franking key
/// per scheme, and a room's suite picks the pair it uses (-06 §5.4.1,
/// §5.6, §7.4).
pub fn supported_signature_schemes() -> Vec<SignatureScheme> {
    let mut schemes = Vec::new();
    for suite in supported_ciphersuites() {
        let scheme = suite.signature_algorithm();
        if !schemes.contains(&scheme) {
            schemes.push(scheme);
        }
    }
    schemes
}

/// A BasicCredential naming the provider URI `mimi://<domain>`.
pub fn provider_credential(domain: &str) -> Credential {
    BasicCredential::new(format!("mimi://{domain}").into_bytes()).into()
}

/// A fresh signature key pair of `scheme`, TLS-encoded.
pub fn generate_signer_bytes(scheme: SignatureScheme) -> Result<Vec<u8>, KeyError> {
    SignatureKeyPair::new(scheme)
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
    let signer = SignatureKeyPair::tls_deserialize_exact(bytes).map_err(KeyError::DecodeSigner)?;
    if !supported_signature_schemes().contains(&signer.signature_scheme()) {
        return Err(KeyError::UnsupportedScheme(signer.signature_scheme()));
    }
    Ok(signer)
}

/// One of the hub's long-term signature keys, and its credential. The
/// hub has one per signature scheme it supports; the room's cipher suite
/// picks the one it lists as external sender (-06 §7.4).
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

    pub fn signature_scheme(&self) -> SignatureScheme {
        self.signer.signature_scheme()
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
/// -06 §5.4.1: "The signature algorithm of the `franking_signature_key`
/// is the same as the signature algorithm of cipher suite of the MLS group
/// which corresponds to the room", so the hub has one franking signature
/// key per signature scheme it supports, and a room's cipher suite picks
/// it; `franking_signature_ciphersuite` of a frank is the room's suite.
/// The HMAC `hub_key` does not depend on the suite and is shared.
///
/// Persisted by the server. There is no rotation: -06 §5.4.1 asks for a
/// new group (ReInit) when the franking agent changes, and franks made
/// under a replaced key could no longer be verified in abuse reports
/// (-06 §5.9).
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
    #[error("franking_signature_ciphersuite is not one this franking key signs with")]
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

    pub fn signature_scheme(&self) -> SignatureScheme {
        self.signer.signature_scheme()
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

    /// Franks a message of a room on `ciphersuite`: the server frank,
    /// signed as `SignWithLabel(franking_private_key,
    /// "FrankingIntegrityTBS", ...)`. The suite's signature scheme must be
    /// this key's.
    pub fn frank(
        &self,
        franking_tag: &[u8; 32],
        context: ServerFrankingContext,
        ciphersuite: WireCipherSuite,
    ) -> Result<Frank, MsgError> {
        if ciphersuite.signature_scheme()? != self.signature_scheme() {
            return Err(MsgError::UnsupportedCipherSuite(ciphersuite.0));
        }
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
            != Some(self.signature_scheme())
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

    const ED25519_SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
    const P256_SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;

    fn franking_key(scheme: SignatureScheme) -> FrankingKey {
        FrankingKey::from_bytes(
            &generate_signer_bytes(scheme).unwrap(),
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
    fn the_provider_supports_ed25519_and_p256_suites_only() {
        assert_eq!(
            supported_signature_schemes(),
            vec![
                SignatureScheme::ED25519,
                SignatureScheme::ECDSA_SECP256R1_SHA256
            ]
        );
        assert!(supports_ciphersuite(P256_SUITE));
        assert!(!supports_ciphersuite(
            Ciphersuite::MLS_256_DHKEMP384_AES256GCM_SHA384_P384
        ));
        // A P-384 key pair can be made by the credential crate, but no
        // suite of the provider uses it.
        let p384 = generate_signer_bytes(SignatureScheme::ECDSA_SECP384R1_SHA384).unwrap();
        assert!(matches!(
            HubKey::from_bytes(&p384, "a.example"),
            Err(KeyError::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn keys_round_trip_through_their_bytes() {
        for scheme in supported_signature_schemes() {
            let bytes = generate_signer_bytes(scheme).unwrap();
            let a = HubKey::from_bytes(&bytes, "a.example").unwrap();
            let b = HubKey::from_bytes(&bytes, "a.example").unwrap();
            assert_eq!(a.external_sender(), b.external_sender());
            assert_eq!(a.signature_scheme(), scheme);
            assert!(matches!(
                FrankingKey::from_bytes(&bytes, &[0; 31], "a.example"),
                Err(KeyError::HmacKeyLength)
            ));
        }
    }

    #[test]
    fn a_frank_verifies_only_for_its_tag_and_context() {
        for (scheme, suite) in [
            (SignatureScheme::ED25519, ED25519_SUITE),
            (SignatureScheme::ECDSA_SECP256R1_SHA256, P256_SUITE),
        ] {
            let key = franking_key(scheme);
            let crypto = RustCrypto::default();
            let frank = key.frank(&[7; 32], context(1), suite.into()).unwrap();
            assert_eq!(frank.franking_signature_ciphersuite, suite.into());
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
                franking_key(scheme).verify(&crypto, &[7; 32], &context(1), &frank),
                Err(FrankError::ServerFrank)
            );
        }
    }

    #[test]
    fn a_franking_key_signs_and_verifies_only_its_own_scheme() {
        let ed = franking_key(SignatureScheme::ED25519);
        assert!(ed.frank(&[7; 32], context(1), P256_SUITE.into()).is_err());
        let p256 = franking_key(SignatureScheme::ECDSA_SECP256R1_SHA256);
        let frank = p256.frank(&[7; 32], context(1), P256_SUITE.into()).unwrap();
        assert_eq!(
            ed.verify(&RustCrypto::default(), &[7; 32], &context(1), &frank),
            Err(FrankError::Ciphersuite)
        );
    }
}
