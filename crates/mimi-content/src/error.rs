//! The one error type of this crate.

use thiserror::Error;

/// Everything that can go wrong when decoding, encoding or validating MIMI
/// content.
///
/// Decoding is strict: anything that is not the deterministic encoding
/// (RFC 8949 §4.2.1, draft-ietf-mimi-content "Encoding restrictions") of a
/// value allowed by the CDDL is rejected, so an accepted input always
/// re-encodes to the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContentError {
    /// The input ended in the middle of a data item.
    #[error("unexpected end of input at offset {offset}")]
    UnexpectedEof {
        /// Byte offset where more input was needed.
        offset: usize,
    },
    /// Bytes remain after the top-level data item.
    #[error("{count} trailing byte(s) after the data item at offset {offset}")]
    TrailingBytes {
        /// Offset of the first trailing byte.
        offset: usize,
        /// Number of trailing bytes.
        count: usize,
    },
    /// An indefinite-length string, array or map, or a stray "break".
    #[error("indefinite-length encoding at offset {offset}")]
    IndefiniteLength {
        /// Offset of the offending initial byte.
        offset: usize,
    },
    /// Input that is not well-formed CBOR (reserved additional information,
    /// two-byte simple value below 32).
    #[error("malformed CBOR at offset {offset}: {reason}")]
    Malformed {
        /// Offset of the offending initial byte.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Well-formed CBOR that is not in deterministic (preferred) form.
    #[error("non-deterministic encoding at offset {offset}: {reason}")]
    NonDeterministic {
        /// Offset of the offending item.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A text string that is not valid UTF-8.
    #[error("invalid UTF-8 in text string at offset {offset}")]
    InvalidUtf8 {
        /// Offset of the text string's initial byte.
        offset: usize,
    },
    /// A data item of the wrong CBOR type for the field.
    #[error("wrong type for {field} at offset {offset}: expected {expected}")]
    WrongType {
        /// The field being decoded.
        field: &'static str,
        /// What the CDDL requires there.
        expected: &'static str,
        /// Offset of the offending item.
        offset: usize,
    },
    /// A string or array of the wrong length for the field.
    #[error("wrong length for {field}: expected {expected}, found {found}")]
    WrongLength {
        /// The field being decoded or encoded.
        field: &'static str,
        /// What the CDDL requires (e.g. "16", "5 for a single part").
        expected: &'static str,
        /// The length found.
        found: u64,
    },
    /// An integer or enumeration value outside the range the CDDL allows.
    #[error("value {value} out of range for {field}")]
    OutOfRange {
        /// The field being decoded.
        field: &'static str,
        /// The offending value.
        value: u64,
    },
    /// NestedParts nested more than 4 levels, or extension content with
    /// more than 4 levels of tags, maps or arrays ("Depth restrictions").
    #[error("{what} nested deeper than {limit} levels")]
    TooDeep {
        /// Which structure.
        what: &'static str,
        /// The limit from the draft.
        limit: usize,
    },
    /// Map keys not in bytewise lexicographic order of their encodings.
    #[error("map keys not in deterministic order at offset {offset}")]
    UnsortedMap {
        /// Offset of the out-of-order key.
        offset: usize,
    },
    /// The same key appears twice in a map.
    #[error("duplicate map key at offset {offset}")]
    DuplicateKey {
        /// Offset of the repeated key (0 when found while encoding).
        offset: usize,
    },
    /// A map key the data model does not allow ("Data model restrictions").
    #[error("invalid map key: {reason}")]
    InvalidKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// A value the data model does not allow (NaN other than 0xf97e00,
    /// reserved simple values, bignums that fit an integer, ...).
    #[error("invalid value: {reason}")]
    InvalidValue {
        /// What is wrong.
        reason: &'static str,
    },
    /// A well-formed message the draft's "Security Considerations" call
    /// nonsensical (returned only by [`crate::MimiContent::sanity_check`]).
    #[error("suspicious message: {reason}")]
    Suspicious {
        /// Which check failed.
        reason: &'static str,
    },
}
