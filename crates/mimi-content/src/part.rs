//! Message bodies: `NestedPart` and its four cardinalities
//! (draft-ietf-mimi-content "Message Bodies", "External content").

use crate::cbor::{Reader, Writer};
use crate::error::ContentError;

/// `NestedParts` MUST NOT be nested more than 4 levels deep
/// ("Depth restrictions"); the body itself is level 1.
pub const MAX_PART_DEPTH: usize = 4;

const CARD_NULL: u64 = 0;
const CARD_SINGLE: u64 = 1;
const CARD_EXTERNAL: u64 = 2;
const CARD_MULTI: u64 = 3;

/// Part disposition, 0..=255 (MIMI Content Disposition registry).
/// Values 9..=255 are `unknownDispos` unless an extension defines them;
/// receivers treat unknown values as `render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Disposition(pub u8);

impl Disposition {
    /// No disposition hint provided.
    pub const UNSPECIFIED: Self = Self(0);
    /// Render according to local policy.
    pub const RENDER: Self = Self(1);
    /// A single reaction to another message.
    pub const REACTION: Self = Self(2);
    /// A profile of a participant or room.
    pub const PROFILE: Self = Self(3);
    /// Render inline in the chat interface.
    pub const INLINE: Self = Self(4);
    /// An icon such as an avatar image.
    pub const ICON: Self = Self(5);
    /// To be downloaded rather than rendered immediately.
    pub const ATTACHMENT: Self = Self(6);
    /// A multimedia session description or URI to join one.
    pub const SESSION: Self = Self(7);
    /// A sender-generated preview.
    pub const PREVIEW: Self = Self(8);

    /// The registry name of a base disposition, `None` for 9..=255.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 9] = [
            "unspecified",
            "render",
            "reaction",
            "profile",
            "inline",
            "icon",
            "attachment",
            "session",
            "preview",
        ];
        NAMES.get(usize::from(self.0)).copied()
    }
}

/// Relationship among the parts of a `MultiPart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartSemantics {
    /// Receiver picks exactly one part (like multipart/alternative).
    ChooseOne = 0,
    /// All parts form a single unit (like multipart/related).
    SingleUnit = 1,
    /// Parts are processed individually (like multipart/mixed).
    ProcessAll = 2,
}

impl PartSemantics {
    fn from_u64(v: u64) -> Result<Self, ContentError> {
        match v {
            0 => Ok(Self::ChooseOne),
            1 => Ok(Self::SingleUnit),
            2 => Ok(Self::ProcessAll),
            _ => Err(ContentError::OutOfRange {
                field: "partSemantics",
                value: v,
            }),
        }
    }
}

/// A body part with its disposition and language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedPart {
    /// Intended semantics of the part.
    pub disposition: Disposition,
    /// Empty, or a comma-separated list of RFC 5646 language tags.
    pub language: String,
    /// The part itself.
    pub part: Part,
}

/// The cardinality-dependent part of a `NestedPart`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// `NullPart`: no content (used by deletes and unlikes).
    Null,
    /// `SinglePart`: inline content.
    Single(SinglePart),
    /// `ExternalPart`: content referenced by URL.
    External(ExternalPart),
    /// `MultiPart`: two or more nested parts.
    Multi(MultiPart),
}

/// Inline content with its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinglePart {
    /// IANA media type, subtype and parameters.
    pub content_type: String,
    /// The content octets.
    pub content: Vec<u8>,
}

/// Reference to external (typically encrypted) content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExternalPart {
    /// IANA media type of the content.
    pub content_type: String,
    /// URL where the content can be fetched (plain text string, untagged).
    pub url: String,
    /// Expiry of the content in seconds since the UNIX epoch, 0 = none.
    pub expires: u32,
    /// Size of the content in octets, 0 = not provided.
    pub size: u64,
    /// IANA AEAD algorithm number, 0 = not encrypted.
    pub enc_alg: u16,
    /// AEAD key.
    pub key: Vec<u8>,
    /// AEAD nonce.
    pub nonce: Vec<u8>,
    /// AEAD additional authenticated data.
    pub aad: Vec<u8>,
    /// IANA Named Information hash algorithm of `content_hash`.
    pub hash_alg: u8,
    /// Hash of the content at `url`.
    pub content_hash: Vec<u8>,
    /// Optional text description (may be empty).
    pub description: String,
    /// Optional suggested file name (may be empty).
    pub filename: String,
}

/// Several nested parts with a relationship between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiPart {
    /// How the receiver treats the parts.
    pub part_semantics: PartSemantics,
    /// At least two parts (`[2* NestedPart]`).
    pub parts: Vec<NestedPart>,
}

impl NestedPart {
    /// A `NullPart` body with the given disposition.
    pub fn null(disposition: Disposition) -> Self {
        NestedPart {
            disposition,
            language: String::new(),
            part: Part::Null,
        }
    }

    /// A `SinglePart` with empty language.
    pub fn single(
        disposition: Disposition,
        content_type: impl Into<String>,
        content: impl Into<Vec<u8>>,
    ) -> Self {
        NestedPart {
            disposition,
            language: String::new(),
            part: Part::Single(SinglePart {
                content_type: content_type.into(),
                content: content.into(),
            }),
        }
    }

    /// Number of parts including this one and all nested ones.
    pub fn part_count(&self) -> usize {
        match &self.part {
            Part::Multi(m) => 1 + m.parts.iter().map(NestedPart::part_count).sum::<usize>(),
            _ => 1,
        }
    }

    /// The part with the given implied part index (zero-indexed, depth
    /// first, this part is index 0), as used in `cid:N@local.invalid`.
    pub fn part_by_index(&self, index: usize) -> Option<&NestedPart> {
        if index == 0 {
            return Some(self);
        }
        let mut rest = index - 1;
        if let Part::Multi(m) = &self.part {
            for p in &m.parts {
                let n = p.part_count();
                if rest < n {
                    return p.part_by_index(rest);
                }
                rest -= n;
            }
        }
        None
    }

    pub(crate) fn encode(&self, w: &mut Writer, depth: usize) -> Result<(), ContentError> {
        if depth > MAX_PART_DEPTH {
            return Err(ContentError::TooDeep {
                what: "NestedPart",
                limit: MAX_PART_DEPTH,
            });
        }
        let len = match &self.part {
            Part::Null => 3,
            Part::Single(_) | Part::Multi(_) => 5,
            Part::External(_) => 15,
        };
        w.array(len);
        w.uint(u64::from(self.disposition.0));
        w.text(&self.language);
        match &self.part {
            Part::Null => w.uint(CARD_NULL),
            Part::Single(s) => {
                w.uint(CARD_SINGLE);
                w.text(&s.content_type);
                w.bytes(&s.content);
            }
            Part::External(e) => {
                w.uint(CARD_EXTERNAL);
                w.text(&e.content_type);
                w.text(&e.url);
                w.uint(u64::from(e.expires));
                w.uint(e.size);
                w.uint(u64::from(e.enc_alg));
                w.bytes(&e.key);
                w.bytes(&e.nonce);
                w.bytes(&e.aad);
                w.uint(u64::from(e.hash_alg));
                w.bytes(&e.content_hash);
                w.text(&e.description);
                w.text(&e.filename);
            }
            Part::Multi(m) => {
                if m.parts.len() < 2 {
                    return Err(ContentError::WrongLength {
                        field: "parts",
                        expected: "at least 2",
                        found: m.parts.len() as u64,
                    });
                }
                w.uint(CARD_MULTI);
                w.uint(m.part_semantics as u64);
                w.array(m.parts.len());
                for p in &m.parts {
                    p.encode(w, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader<'_>, depth: usize) -> Result<NestedPart, ContentError> {
        if depth > MAX_PART_DEPTH {
            return Err(ContentError::TooDeep {
                what: "NestedPart",
                limit: MAX_PART_DEPTH,
            });
        }
        let len = r.array("NestedPart")?;
        let disposition = r.uint("disposition")?;
        let disposition =
            u8::try_from(disposition)
                .map(Disposition)
                .map_err(|_| ContentError::OutOfRange {
                    field: "disposition",
                    value: disposition,
                })?;
        let language = r.text("language")?.to_owned();
        let cardinality = r.uint("cardinality")?;
        let (expected_len, expected) = match cardinality {
            CARD_NULL => (3, "3 for a NullPart"),
            CARD_SINGLE => (5, "5 for a SinglePart"),
            CARD_EXTERNAL => (15, "15 for an ExternalPart"),
            CARD_MULTI => (5, "5 for a MultiPart"),
            v => {
                return Err(ContentError::OutOfRange {
                    field: "cardinality",
                    value: v,
                });
            }
        };
        if len != expected_len {
            return Err(ContentError::WrongLength {
                field: "NestedPart",
                expected,
                found: len,
            });
        }
        let part = match cardinality {
            CARD_NULL => Part::Null,
            CARD_SINGLE => Part::Single(SinglePart {
                content_type: r.text("contentType")?.to_owned(),
                content: r.bytes("content")?.to_vec(),
            }),
            CARD_EXTERNAL => Part::External(ExternalPart {
                content_type: r.text("contentType")?.to_owned(),
                url: r.text("url")?.to_owned(),
                expires: uint_sized(r, "expires")?,
                size: r.uint("size")?,
                enc_alg: uint_sized(r, "encAlg")?,
                key: r.bytes("key")?.to_vec(),
                nonce: r.bytes("nonce")?.to_vec(),
                aad: r.bytes("aad")?.to_vec(),
                hash_alg: uint_sized(r, "hashAlg")?,
                content_hash: r.bytes("contentHash")?.to_vec(),
                description: r.text("description")?.to_owned(),
                filename: r.text("filename")?.to_owned(),
            }),
            _ => {
                let part_semantics = PartSemantics::from_u64(r.uint("partSemantics")?)?;
                let n = r.array("parts")?;
                if n < 2 {
                    return Err(ContentError::WrongLength {
                        field: "parts",
                        expected: "at least 2",
                        found: n,
                    });
                }
                let mut parts = Vec::new();
                for _ in 0..n {
                    parts.push(NestedPart::decode(r, depth + 1)?);
                }
                Part::Multi(MultiPart {
                    part_semantics,
                    parts,
                })
            }
        };
        Ok(NestedPart {
            disposition,
            language,
            part,
        })
    }
}

/// Reads a `uint .size N` field into the matching Rust integer.
pub(crate) fn uint_sized<T: TryFrom<u64>>(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<T, ContentError> {
    let v = r.uint(field)?;
    T::try_from(v).map_err(|_| ContentError::OutOfRange { field, value: v })
}
