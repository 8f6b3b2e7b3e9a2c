//! Wire types of the MIMI protocol, draft-ietf-mimi-protocol-06.
//!
//! Everything here is pure data: TLS presentation language structs encoded
//! with `tls_codec` (feature `mls`, so non-minimal variable-length prefixes are
//! rejected), the JSON directory document, `mimi://` identifiers and the room
//! state components carried in the MLS `app_data_dictionary`. No IO.
//!
//! MLS objects embedded in MIMI messages are openmls types; decoding uses
//! their `*In` variants, which are untrusted until validated by the caller.

pub mod codec;
pub mod common;
pub mod components;
pub mod directory;
pub mod endpoints;
pub mod msgs;
pub mod uri;

pub use codec::{DecodeError, decode_exact, encode};
pub use common::{IdentifierUri, Protocol};
pub use directory::Directory;
pub use uri::{MimiUri, MimiUriError, MimiUriKind};
