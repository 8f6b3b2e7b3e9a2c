//! The MIMI content container (draft-ietf-mimi-content "Message Behavior
//! Fields", complete CDDL `mimiContent`).

use crate::cbor::{Reader, Writer};
use crate::error::ContentError;
use crate::extensions::Extensions;
use crate::message_id::{HASH_ALG_SHA256, MessageId, message_id};
use crate::part::{NestedPart, uint_sized};

/// Longest `topicId` [`MimiContent::sanity_check`] accepts.
pub const MAX_TOPIC_ID_LEN: usize = 4096;
/// Most body parts [`MimiContent::sanity_check`] accepts.
pub const MAX_BODY_PARTS: usize = 1024;

/// A MIMI content message:
/// `[salt, replaces, topicId, expires, inReplyTo, mimiExtensions, nestedPart]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MimiContent {
    /// 16-octet cryptographically random per-message salt.
    pub salt: [u8; 16],
    /// Message ID of the (first version of the) message this one edits,
    /// deletes or un-reacts {1}.
    pub replaces: Option<MessageId>,
    /// Topic (thread) grouping; empty for none {2}.
    pub topic_id: Vec<u8>,
    /// Expiry hint {3}.
    pub expires: Option<Expiration>,
    /// Message ID this message replies or reacts to {4}.
    pub in_reply_to: Option<MessageId>,
    /// The extensions map {6}.
    pub extensions: Extensions,
    /// The body {7}.
    pub nested_part: NestedPart,
}

/// `Expiration = [relative: bool, time: uint .size 4]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expiration {
    /// True: `time` is seconds after the receiver reads the message.
    /// False: `time` is seconds since the UNIX epoch.
    pub relative: bool,
    /// Seconds (see `relative`).
    pub time: u32,
}

impl MimiContent {
    /// A message with only a salt, extensions and body set.
    pub fn new(salt: [u8; 16], extensions: Extensions, nested_part: NestedPart) -> Self {
        MimiContent {
            salt,
            replaces: None,
            topic_id: Vec::new(),
            expires: None,
            in_reply_to: None,
            extensions,
            nested_part,
        }
    }

    /// Deterministic CBOR encoding (RFC 8949 §4.2.1).
    ///
    /// Fails if the body breaks the CDDL or depth rules (a `MultiPart`
    /// with fewer than two parts, `NestedPart`s deeper than 4 levels).
    pub fn to_cbor(&self) -> Result<Vec<u8>, ContentError> {
        let mut w = Writer::new();
        w.array(7);
        w.bytes(&self.salt);
        opt_id(&mut w, &self.replaces);
        w.bytes(&self.topic_id);
        match &self.expires {
            None => w.null(),
            Some(e) => {
                w.array(2);
                w.bool(e.relative);
                w.uint(u64::from(e.time));
            }
        }
        opt_id(&mut w, &self.in_reply_to);
        self.extensions.encode(&mut w);
        self.nested_part.encode(&mut w, 1)?;
        Ok(w.buf)
    }

    /// Strict decoding: rejects anything but the deterministic encoding of
    /// a message matching the CDDL, including trailing bytes.
    pub fn from_cbor(bytes: &[u8]) -> Result<MimiContent, ContentError> {
        let mut r = Reader::new(bytes);
        let n = r.array("mimiContent")?;
        if n != 7 {
            return Err(ContentError::WrongLength {
                field: "mimiContent",
                expected: "7",
                found: n,
            });
        }
        let salt_raw = r.bytes("salt")?;
        let salt: [u8; 16] = salt_raw.try_into().map_err(|_| ContentError::WrongLength {
            field: "salt",
            expected: "16",
            found: salt_raw.len() as u64,
        })?;
        let replaces = opt_id_decode(&mut r, "replaces")?;
        let topic_id = r.bytes("topicId")?.to_vec();
        let expires = if r.take_null()? {
            None
        } else {
            let n = r.array("expires")?;
            if n != 2 {
                return Err(ContentError::WrongLength {
                    field: "expires",
                    expected: "2",
                    found: n,
                });
            }
            Some(Expiration {
                relative: r.bool("relative")?,
                time: uint_sized(&mut r, "time")?,
            })
        };
        let in_reply_to = opt_id_decode(&mut r, "inReplyTo")?;
        let extensions = Extensions::decode(&mut r)?;
        let nested_part = NestedPart::decode(&mut r, 1)?;
        r.finish()?;
        Ok(MimiContent {
            salt,
            replaces,
            topic_id,
            expires,
            in_reply_to,
            extensions,
            nested_part,
        })
    }

    /// Receiver-side checks from the draft's "Security Considerations" /
    /// "General handling" that need no context beyond the message itself:
    /// `topicId` longer than 4096 octets, more than 1024 body parts,
    /// `replaces`/`inReplyTo` whose first octet is not a known hash
    /// algorithm (only SHA-256, 0x01). Such messages "should be logged and
    /// discarded"; decoding does not apply these checks. (Depth and unknown
    /// `partSemantics` are already decoding errors.)
    pub fn sanity_check(&self) -> Result<(), ContentError> {
        if self.topic_id.len() > MAX_TOPIC_ID_LEN {
            return Err(ContentError::Suspicious {
                reason: "topicId longer than 4096 octets",
            });
        }
        if self.nested_part.part_count() > MAX_BODY_PARTS {
            return Err(ContentError::Suspicious {
                reason: "more than 1024 body parts",
            });
        }
        let known = |id: &Option<MessageId>| id.is_none_or(|id| id.hash_alg() == HASH_ALG_SHA256);
        if !known(&self.replaces) || !known(&self.in_reply_to) {
            return Err(ContentError::Suspicious {
                reason: "message ID with an unknown hash algorithm",
            });
        }
        Ok(())
    }

    /// The message ID of this message, encoded deterministically, for the
    /// given sender and room URIs.
    pub fn message_id(&self, sender_uri: &str, room_uri: &str) -> Result<MessageId, ContentError> {
        message_id(sender_uri, room_uri, &self.to_cbor()?, &self.salt)
    }

    /// The message ID using the `senderUri` and `roomUri` extensions, or
    /// `None` if either is absent.
    pub fn message_id_from_extensions(&self) -> Result<Option<MessageId>, ContentError> {
        match (self.extensions.sender_uri(), self.extensions.room_uri()) {
            (Some(s), Some(r)) => self.message_id(s, r).map(Some),
            _ => Ok(None),
        }
    }
}

/// Message ID of already-encoded content: decodes it (strictly) to find
/// the salt, then hashes the bytes as given.
pub fn message_id_of_bytes(
    sender_uri: &str,
    room_uri: &str,
    content: &[u8],
) -> Result<MessageId, ContentError> {
    let c = MimiContent::from_cbor(content)?;
    message_id(sender_uri, room_uri, content, &c.salt)
}

fn opt_id(w: &mut Writer, id: &Option<MessageId>) {
    match id {
        None => w.null(),
        Some(id) => w.bytes(id.as_bytes()),
    }
}

pub(crate) fn opt_id_decode(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<Option<MessageId>, ContentError> {
    if r.take_null()? {
        return Ok(None);
    }
    id_decode(r, field).map(Some)
}

pub(crate) fn id_decode(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<MessageId, ContentError> {
    let raw = r.bytes(field)?;
    let id: [u8; 32] = raw.try_into().map_err(|_| ContentError::WrongLength {
        field,
        expected: "32",
        found: raw.len() as u64,
    })?;
    Ok(MessageId(id))
}
