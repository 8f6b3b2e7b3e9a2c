//! Strict decoding helpers shared by every MIMI message.
//!
//! A MIMI request body is exactly one TLS-PL value (-06 §5); anything left
//! over after it is an error, never silently ignored.

use tls_codec::{Deserialize, Serialize};

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a valid encoding (truncated, non-minimal length
    /// prefix, unknown enum value, ...).
    #[error("malformed TLS encoding: {0}")]
    Malformed(#[from] tls_codec::Error),
    /// A complete value was decoded but `n` bytes followed it.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
}

/// Decodes exactly one `T` from `bytes`, rejecting trailing data.
pub fn decode_exact<T: Deserialize>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut rest = bytes;
    let value = T::tls_deserialize(&mut rest)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Encodes `value` into a fresh buffer.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, tls_codec::Error> {
    value.tls_serialize_detached()
}
