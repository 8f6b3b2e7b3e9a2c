//! The `room_metadata` component (0x0023, -06 §7.6).

use std::io::{Read, Write};

use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use crate::uri::{MimiUri, MimiUriKind};

/// `struct { opaque uri<V>; } Uri;` — "a valid URI (ex: MIMI URI)". The
/// wire form is opaque; [`RoomMetaData::validate`] checks the fields that
/// must be URIs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Uri {
    pub uri: VLBytes,
}

impl Default for Uri {
    /// The empty URI (e.g. "no avatar").
    fn default() -> Self {
        Self {
            uri: VLBytes::new(Vec::new()),
        }
    }
}

impl Uri {
    pub fn new(uri: impl AsRef<str>) -> Self {
        Self {
            uri: VLBytes::new(uri.as_ref().as_bytes().to_vec()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.uri.as_slice().is_empty()
    }

    /// The URI text, if UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.uri.as_slice()).ok()
    }
}

impl From<&MimiUri> for Uri {
    fn from(u: &MimiUri) -> Self {
        Self::new(u.as_str())
    }
}

/// Why a string cannot be a [`UTF8String`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Utf8StringError {
    #[error("string contains a NUL character")]
    ContainsNul,
    #[error("bytes are not valid UTF-8")]
    NotUtf8,
}

/// `struct { opaque string<V>; } UTF8String;` — "a sequence of valid UTF8
/// without nulls". Decoding rejects invalid UTF-8 and U+0000.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UTF8String(String);

impl UTF8String {
    pub fn new(s: impl Into<String>) -> Result<Self, Utf8StringError> {
        let s = s.into();
        if s.contains('\0') {
            return Err(Utf8StringError::ContainsNul);
        }
        Ok(Self(s))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Utf8StringError> {
        Self::new(String::from_utf8(bytes).map_err(|_| Utf8StringError::NotUtf8)?)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<&str> for UTF8String {
    type Error = Utf8StringError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl std::fmt::Display for UTF8String {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Size for UTF8String {
    fn tls_serialized_len(&self) -> usize {
        // Same length as the equivalent variable-length opaque vector.
        tls_codec::VLByteSlice(self.0.as_bytes()).tls_serialized_len()
    }
}

impl Serialize for UTF8String {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        tls_codec::VLByteSlice(self.0.as_bytes()).tls_serialize(writer)
    }
}

impl Deserialize for UTF8String {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let raw = VLBytes::tls_deserialize(bytes)?;
        Self::from_bytes(raw.into())
            .map_err(|e| tls_codec::Error::DecodingError(format!("UTF8String: {e}")))
    }
}

/// `struct { opaque media_type<V>; opaque language_tag<V>; opaque
/// description_content<V>; } RichDescription;` — an empty `media_type`
/// means `text/plain;charset=utf-8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RichDescription {
    pub media_type: VLBytes,
    pub language_tag: VLBytes,
    pub description_content: VLBytes,
}

/// The media type an empty `media_type` stands for.
pub const DEFAULT_DESCRIPTION_MEDIA_TYPE: &str = "text/plain;charset=utf-8";

impl RichDescription {
    /// A plain-text description (empty media type).
    pub fn plain(language_tag: &str, text: &str) -> Self {
        Self {
            media_type: VLBytes::new(Vec::new()),
            language_tag: VLBytes::new(language_tag.as_bytes().to_vec()),
            description_content: VLBytes::new(text.as_bytes().to_vec()),
        }
    }

    /// The effective media type.
    pub fn effective_media_type(&self) -> &[u8] {
        if self.media_type.as_slice().is_empty() {
            DEFAULT_DESCRIPTION_MEDIA_TYPE.as_bytes()
        } else {
            self.media_type.as_slice()
        }
    }
}

/// `RoomMetaData` — data of the `room_metadata` component and, unchanged,
/// its update format `RoomMetaUpdate`, which replaces the data entirely.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RoomMetaData {
    pub room_uri: Uri,
    pub room_name: UTF8String,
    pub room_descriptions: Vec<RichDescription>,
    /// An https URI resolving to an avatar image (empty: none).
    pub room_avatar: Uri,
    pub room_subject: UTF8String,
    pub room_mood: UTF8String,
}

/// `RoomMetaData RoomMetaUpdate;`
pub type RoomMetaUpdate = RoomMetaData;

/// Why room metadata or its updates are invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomMetadataError {
    #[error("room_uri is not a MIMI room URI")]
    RoomUriNotRoom,
    #[error("room_uri does not match the room ({0})")]
    RoomUriMismatch(String),
    #[error("room_avatar is neither empty nor an https URI")]
    AvatarNotHttps,
    #[error("exactly one room metadata update is valid per commit, got {0}")]
    NotExactlyOneUpdate(usize),
}

impl RoomMetaData {
    /// Semantic checks beyond the wire format: `room_uri` is a `mimi://…/r/…`
    /// URI (equal to `room` if given) and `room_avatar` is empty or `https:`.
    pub fn validate(&self, room: Option<&MimiUri>) -> Result<(), RoomMetadataError> {
        let uri = self
            .room_uri
            .as_str()
            .and_then(|s| MimiUri::parse(s).ok())
            .filter(|u| u.kind() == MimiUriKind::Room)
            .ok_or(RoomMetadataError::RoomUriNotRoom)?;
        if let Some(room) = room
            && &uri != room
        {
            return Err(RoomMetadataError::RoomUriMismatch(room.to_string()));
        }
        if !self.room_avatar.is_empty() {
            let ok = self.room_avatar.as_str().is_some_and(|s| {
                s.len() > 8
                    && s.is_char_boundary(8)
                    && s[..8].eq_ignore_ascii_case("https://")
                    && !s.contains(|c: char| c.is_control() || c.is_whitespace())
            });
            if !ok {
                return Err(RoomMetadataError::AvatarNotHttps);
            }
        }
        Ok(())
    }

    /// Applies the room-metadata updates of one commit: exactly one update,
    /// which replaces the data (-06 §7.6).
    pub fn apply_updates(updates: &[RoomMetaUpdate]) -> Result<RoomMetaData, RoomMetadataError> {
        match updates {
            [only] => Ok(only.clone()),
            _ => Err(RoomMetadataError::NotExactlyOneUpdate(updates.len())),
        }
    }
}
