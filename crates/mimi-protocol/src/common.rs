//! Types shared by several MIMI messages (-06 §5).

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

/// The end-to-end protocol a request is framed for (-06 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum Protocol {
    /// MLS 1.0 (RFC 9420).
    Mls10 = 1,
}

/// `struct { opaque uri<V>; } IdentifierUri;` (-06 §5.2).
///
/// On the wire this is any byte string; [`crate::uri::MimiUri`] parses and
/// validates the `mimi://` form where the protocol requires one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct IdentifierUri {
    pub uri: VLBytes,
}

impl IdentifierUri {
    pub fn new(uri: impl AsRef<str>) -> Self {
        Self {
            uri: VLBytes::new(uri.as_ref().as_bytes().to_vec()),
        }
    }

    /// The URI as UTF-8, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.uri.as_slice()).ok()
    }
}

impl From<&str> for IdentifierUri {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}
