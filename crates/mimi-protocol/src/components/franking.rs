//! Franking components (-06 §5.4.1 "Message Franking").

use openmls::prelude::{Credential, SignaturePublicKey};
use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize};

/// `struct { uint8 franking_tag[32]; } FrankAAD;` — the `frank_aad` Safe
/// AAD component (0x0020) of a franked application message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct FrankAAD {
    pub franking_tag: [u8; 32],
}

/// `struct { SignaturePublicKey franking_signature_key; Credential
/// credential; } FrankingAgentData;` — data of the GroupContext component
/// 0x0021 (`franking_signature_key` in IANA, `franking_agent` in the prose),
/// and also its update format (`FrankingAgentUpdate`). Mirrors RFC 9420
/// `ExternalSender`. The key's algorithm is the group ciphersuite's.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct FrankingAgentData {
    pub franking_signature_key: SignaturePublicKey,
    pub credential: Credential,
}

/// `FrankingAgentData FrankingAgentUpdate;`
pub type FrankingAgentUpdate = FrankingAgentData;
