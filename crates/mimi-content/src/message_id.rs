//! Message IDs (draft-ietf-mimi-content "Message ID").
//!
//! ```text
//! hash_output = SHA256( senderUriLength || senderUri ||
//!                       roomUriLength   || roomUri   ||
//!                       message         || salt )
//! messageId   = 0x01 || hash_output[0..30]     (31 octets, inclusive range)
//! ```
//! The lengths are big-endian `u16`; `message` is the entire encoded MIMI
//! content (which already starts with the salt); the salt is appended again
//! against length extension.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::ContentError;

/// Hash algorithm identifier of SHA-256 in the IANA Named Information Hash
/// Algorithm registry; the first octet of every message ID computed here.
pub const HASH_ALG_SHA256: u8 = 0x01;

/// A 32-octet MIMI message ID (`MessageId = bstr .size 32`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The hash algorithm identifier (first octet).
    pub fn hash_alg(&self) -> u8 {
        self.0[0]
    }

    /// The raw octets.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<MessageId> {
        let v = hex::decode(s).ok()?;
        Some(MessageId(v.try_into().ok()?))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.to_hex())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<[u8; 32]> for MessageId {
    fn from(b: [u8; 32]) -> Self {
        MessageId(b)
    }
}

/// Computes the message ID of an encoded MIMI content message.
///
/// `content` must be the exact bytes sent and `salt` the salt inside them.
/// In the draft's examples the sender URI is the user URI carried in the
/// `senderUri` extension and the room URI the one in `roomUri`.
/// Fails only if a URI is longer than 65535 octets.
pub fn message_id(
    sender_uri: &str,
    room_uri: &str,
    content: &[u8],
    salt: &[u8; 16],
) -> Result<MessageId, ContentError> {
    let len16 = |s: &str, field| {
        u16::try_from(s.len()).map_err(|_| ContentError::OutOfRange {
            field,
            value: s.len() as u64,
        })
    };
    let mut h = Sha256::new();
    h.update(len16(sender_uri, "senderUri length")?.to_be_bytes());
    h.update(sender_uri.as_bytes());
    h.update(len16(room_uri, "roomUri length")?.to_be_bytes());
    h.update(room_uri.as_bytes());
    h.update(content);
    h.update(salt);
    let out = h.finalize();
    let mut id = [0u8; 32];
    id[0] = HASH_ALG_SHA256;
    id[1..].copy_from_slice(&out[..31]);
    Ok(MessageId(id))
}
