//! Request and response bodies of the MIMI endpoints (-06 §5).
//!
//! One module per endpoint. Every struct implements `tls_codec`'s `Size`,
//! `Serialize` and `Deserialize`; decode request bodies with
//! [`crate::decode_exact`] so trailing bytes are rejected. MLS objects are the
//! openmls `*In` types (untrusted until validated by the caller).
//!
//! `select` fields of the draft are modelled as Rust enums so that an
//! inconsistent combination cannot be represented; where the selector is an
//! MLS object (`HandshakeBundle`, `FanoutMessage`) serialization checks the
//! combination and fails with `tls_codec::Error::EncodingError`.
//!
//! Readings chosen where -06 is inconsistent (details in the per-type docs
//! and `docs/divergences.md`):
//! - `CipherSuite` is a raw `u16` ([`CipherSuite`]), so unknown suites decode.
//! - `string` is UTF-8 in an `opaque<V>` ([`TlsString`]).
//! - `select (protocol)` / `select (room.protocol)` with no protocol field on
//!   the wire (`UpdateRequest`, `FanoutMessage`, `ClientKeyMaterial`) adds
//!   nothing to the encoding: mls10 is implied.
//! - `HandshakeBundle` and `FanoutMessage` select on the clear-text
//!   `content_type` of a PublicMessage/PrivateMessage, and on the Welcome wire
//!   format; SemiPrivateMessage is unsupported (openmls cannot decode it).
//! - `SubmitResponseCode` value 0 is `accepted` (the select says `success`).
//! - `joiningCode` is `optional<opaque<V>>` in both GroupInfoRequest and its TBS.
//! - `GroupInfoResponse.version` is the `Protocol`; the TBS exists only for
//!   `success` responses.
//! - `RoomId` in consent structs is `IdentifierUri`; `AbuseType` is an open
//!   `uint8` (only `reserved(0)` is defined).
//! - `RatchetTreeOption.full` carries `optional<Node> ratchet_tree<V>`.

pub mod abuse;
pub mod consent;
pub mod fanout;
pub mod franking;
pub mod group_info;
pub mod identifier;
pub mod key_material;
pub mod ratchet_tree;
pub mod signing;
pub mod submit;
pub mod update;

use std::io::{Read, Write};

use openmls::prelude::{ContentType, MlsMessageBodyIn, MlsMessageIn, SignatureScheme};
use tls_codec::{Deserialize, Serialize, Size, VLBytes};

pub use abuse::{AbuseReport, AbuseType, AbusiveMessage};
pub use consent::{ConsentEntry, ConsentOperation, ConsentScope};
pub use fanout::{FanoutBody, FanoutMessage};
pub use franking::{Frank, FrankingIntegrityTbs, ServerFrankingContext};
pub use group_info::{
    GroupInfoCode, GroupInfoRatchetTreeTbe, GroupInfoRequest, GroupInfoRequestTbs,
    GroupInfoResponse, GroupInfoResponseBody, GroupInfoResponseTbs, GroupInfoSuccess,
    PendingProposal,
};
pub use identifier::{
    FieldSource, IdentifierQueryCode, IdentifierRequest, IdentifierResponse, ProfileField,
    QueryElement, SearchIdentifierType, SearchType, UserProfile,
};
pub use key_material::{
    ClientKeyMaterial, ClientMaterial, KeyMaterialClientCode, KeyMaterialRequest,
    KeyMaterialRequestHead, KeyMaterialRequestTbs, KeyMaterialResponse, KeyMaterialUserCode,
};
pub use ratchet_tree::{
    GroupInfoOption, GroupInfoRepresentation, PartialGroupInfo, RatchetTreeOption,
    RatchetTreePresence, RatchetTreeRepresentation,
};
pub use signing::{sign_with_label, verify_with_label};
pub use submit::{SubmitMessageRequest, SubmitMessageResponse, SubmitResponseCode, SubmitStatus};
pub use update::{
    HandshakeBody, HandshakeBundle, UpdateRequest, UpdateResponseCode, UpdateResult,
    UpdateRoomResponse,
};

/// Errors of the message helpers (signing, verification, shape checks).
#[derive(Debug, thiserror::Error)]
pub enum MsgError {
    #[error("TLS codec error: {0}")]
    Codec(#[from] tls_codec::Error),
    /// The cipher suite is not one openmls knows, so its signature scheme is
    /// unknown.
    #[error("unsupported cipher suite 0x{0:04x}")]
    UnsupportedCipherSuite(u16),
    #[error("signing failed: {0:?}")]
    Signer(openmls_traits::signatures::SignerError),
    /// The signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// The message has no signature to verify (e.g. a non-success response).
    #[error("message carries no signature")]
    NotSigned,
    /// HPKE sealing or opening failed (wrong key, corrupt ciphertext).
    #[error("HPKE: {0:?}")]
    Hpke(openmls_traits::types::CryptoError),
}

/// `uint16 CipherSuite` (RFC 9420 §17.1), kept as a raw code point.
///
/// openmls's `Ciphersuite` rejects unknown values on decode; MIMI messages
/// carry suites chosen by other providers (e.g. `acceptableCiphersuites`,
/// GREASE values), so the wire type is the raw `u16`. Convert with
/// [`CipherSuite::to_openmls`] when the algorithms are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CipherSuite(pub u16);

impl CipherSuite {
    /// The openmls cipher suite, if this code point is one openmls supports.
    pub fn to_openmls(self) -> Option<openmls::prelude::Ciphersuite> {
        openmls::prelude::Ciphersuite::try_from(self.0).ok()
    }

    /// The signature scheme of this suite.
    pub fn signature_scheme(self) -> Result<SignatureScheme, MsgError> {
        self.to_openmls()
            .map(|cs| cs.signature_algorithm())
            .ok_or(MsgError::UnsupportedCipherSuite(self.0))
    }
}

impl From<openmls::prelude::Ciphersuite> for CipherSuite {
    fn from(cs: openmls::prelude::Ciphersuite) -> Self {
        Self(cs as u16)
    }
}

impl Size for CipherSuite {
    fn tls_serialized_len(&self) -> usize {
        2
    }
}

impl Serialize for CipherSuite {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        self.0.tls_serialize(writer)
    }
}

impl Deserialize for CipherSuite {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        Ok(Self(u16::tls_deserialize(bytes)?))
    }
}

/// The draft's `string` type, encoded as `opaque<V>` holding UTF-8.
///
/// Decoding rejects invalid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TlsString(pub String);

impl From<&str> for TlsString {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for TlsString {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl Size for TlsString {
    fn tls_serialized_len(&self) -> usize {
        vl_len(self.0.len())
    }
}

impl Serialize for TlsString {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        VLBytes::from(self.0.as_bytes()).tls_serialize(writer)
    }
}

impl Deserialize for TlsString {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let raw = VLBytes::tls_deserialize(bytes)?;
        String::from_utf8(raw.into())
            .map(Self)
            .map_err(|_| tls_codec::Error::DecodingError("string is not valid UTF-8".into()))
    }
}

/// Encoded length of an `opaque<V>` with `n` content bytes.
pub(crate) fn vl_len(n: usize) -> usize {
    let prefix = if n <= 0x3f {
        1
    } else if n <= 0x3fff {
        2
    } else {
        4
    };
    prefix + n
}

/// The `content_type` of a PublicMessage or PrivateMessage.
///
/// Both carry it in the clear (RFC 9420 §6.2, §6.3), so the hub and the
/// followers can read it without decrypting. `None` for every other wire
/// format (Welcome, GroupInfo, KeyPackage).
pub fn framed_content_type(msg: &MlsMessageIn) -> Option<ContentType> {
    match msg.clone().extract() {
        MlsMessageBodyIn::PublicMessage(m) => Some(m.content_type()),
        MlsMessageBodyIn::PrivateMessage(m) => Some(m.content_type()),
        _ => None,
    }
}

pub(crate) fn encoding_error(what: &str) -> tls_codec::Error {
    tls_codec::Error::EncodingError(what.to_owned())
}

pub(crate) fn decoding_error(what: &str) -> tls_codec::Error {
    tls_codec::Error::DecodingError(what.to_owned())
}
