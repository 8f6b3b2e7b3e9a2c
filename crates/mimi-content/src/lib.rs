//! MIMI content format (draft-ietf-mimi-content).
//!
//! * [`MimiContent`] — the message container, with strict deterministic
//!   CBOR decoding ([`MimiContent::from_cbor`]) and encoding
//!   ([`MimiContent::to_cbor`]); an accepted input always re-encodes to the
//!   same bytes.
//! * [`NestedPart`] / [`Part`] — null, single, external and multi parts.
//! * [`Extensions`] — the extensions map with `senderUri`/`roomUri` helpers
//!   and generic [`Value`]s.
//! * [`message_id()`] — the draft's "Message ID" construction.
//! * [`MessageDerivedValues`] — the implied values (`implied.cddl`).
//! * [`franking`] — franking tag and salt derivation helpers.
//!
//! No IO. Decoding never panics on untrusted input.

#![warn(missing_docs)]

mod cbor;
mod content;
mod derived;
mod error;
mod extensions;
mod message_id;
mod part;
mod value;

pub mod franking;

pub use content::{Expiration, MAX_BODY_PARTS, MAX_TOPIC_ID_LEN, MimiContent, message_id_of_bytes};
pub use derived::{MessageDerivedValues, TAG_EXTENDED_TIME, Timestamp};
pub use error::ContentError;
pub use extensions::{ExtensionKey, Extensions, ROOM_URI, SENDER_URI};
pub use message_id::{HASH_ALG_SHA256, MessageId, message_id};
pub use part::{
    Disposition, ExternalPart, MAX_PART_DEPTH, MultiPart, NestedPart, Part, PartSemantics,
    SinglePart,
};
pub use value::{MAX_EXTENSION_DEPTH, MAX_SAFE_INTEGER, Value};
