//! Report abuse: `POST /reportAbuse/{roomId}` (-06 §5.9).

use openmls::prelude::AppDataDictionary;
use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::franking::Frank;
use crate::common::IdentifierUri;

/// `struct AbusiveMessage` (-06 §5.9).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct AbusiveMessage {
    /// The allegedly abusive content (e.g. a MIMI content message).
    pub message_content: VLBytes,
    pub frank: Frank,
    pub accepted_timestamp: u64,
}

/// `enum AbuseType` (-06 §5.9).
///
/// Reading: the draft defines only `reserved(0)` (the taxonomy is a TODO),
/// so a closed enum could not decode any report. The raw `uint8` is kept and
/// every value, including 0, decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct AbuseType {
    pub code: u8,
}

impl AbuseType {
    pub const RESERVED: AbuseType = AbuseType { code: 0 };
}

/// `struct AbuseReport` (-06 §5.9).
///
/// `reportingUser` is "optional" in the prose but not on the wire; an empty
/// URI means an anonymous report.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct AbuseReport {
    pub reporting_user: IdentifierUri,
    pub alleged_abuser_uri: IdentifierUri,
    pub reason_code: AbuseType,
    /// UTF-8, possibly empty (`opaque<V>` on the wire, not checked).
    pub note: VLBytes,
    pub messages: Vec<AbusiveMessage>,
    pub abuse_extensions: AppDataDictionary,
}
