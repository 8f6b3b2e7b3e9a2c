//! Message franking structs (-06 §5.4.1).

use openmls_traits::{crypto::OpenMlsCrypto, signatures::Signer};
use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::{
    CipherSuite, MsgError,
    signing::{labels, sign_tbs, verify_tbs},
};
use crate::common::IdentifierUri;

/// `struct Frank` (-06 §5.4): what the hub returns to the sender and fans
/// out with an application message.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Frank {
    pub server_frank: [u8; 32],
    pub franking_signature_ciphersuite: CipherSuite,
    /// `SignWithLabel(franking_private_key, "FrankingIntegrityTBS", ...)`.
    pub franking_integrity_signature: VLBytes,
}

/// `struct ServerFrankingContext` (-06 §5.4.1.2).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ServerFrankingContext {
    pub sender_uri: IdentifierUri,
    pub room_uri: IdentifierUri,
    pub accepted_timestamp: u64,
}

/// `struct FrankingIntegrityTBS` (-06 §5.4.1.2). `opaque server_frank[32]` is
/// the same 32 bytes as `Frank.server_frank` (`uint8[32]`).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct FrankingIntegrityTbs {
    pub server_frank: [u8; 32],
    pub franking_signature_ciphersuite: CipherSuite,
    pub context: ServerFrankingContext,
}

impl FrankingIntegrityTbs {
    /// Hub side: signs with the franking private key and returns the [`Frank`].
    pub fn sign(&self, signer: &impl Signer) -> Result<Frank, MsgError> {
        let signature = sign_tbs(signer, labels::FRANKING_INTEGRITY, self)?;
        Ok(Frank {
            server_frank: self.server_frank,
            franking_signature_ciphersuite: self.franking_signature_ciphersuite,
            franking_integrity_signature: signature,
        })
    }

    /// Rebuilds the TBS a receiver verifies from a [`Frank`] and the context.
    pub fn from_frank(frank: &Frank, context: ServerFrankingContext) -> Self {
        Self {
            server_frank: frank.server_frank,
            franking_signature_ciphersuite: frank.franking_signature_ciphersuite,
            context,
        }
    }
}

impl Frank {
    /// Receiver side: `VerifyWithLabel(franking_signature_key,
    /// "FrankingIntegrityTBS", FrankingIntegrityTBS, signature)`, with the
    /// signature scheme of `franking_signature_ciphersuite`.
    pub fn verify(
        &self,
        crypto: &impl OpenMlsCrypto,
        franking_signature_key: &[u8],
        context: &ServerFrankingContext,
    ) -> Result<(), MsgError> {
        let tbs = FrankingIntegrityTbs::from_frank(self, context.clone());
        verify_tbs(
            crypto,
            self.franking_signature_ciphersuite.signature_scheme()?,
            franking_signature_key,
            labels::FRANKING_INTEGRITY,
            &tbs,
            self.franking_integrity_signature.as_slice(),
        )
    }
}
