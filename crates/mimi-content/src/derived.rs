//! Values derived outside the message (draft-ietf-mimi-content "Derived
//! Data Values", `MessageDerivedValues`), e.g. `implied-original.cbor`.

use crate::cbor::{MAJOR_TAG, MAJOR_UINT, Reader, Writer};
use crate::content::id_decode;
use crate::error::ContentError;
use crate::message_id::MessageId;
use crate::part::uint_sized;
use crate::value::Value;

/// CBOR tag of RFC 9581 extended time.
pub const TAG_EXTENDED_TIME: u64 = 1001;

/// Hub accepted timestamp: `MsecsSinceEpoch / ExtendedTime`.
#[derive(Debug, Clone, PartialEq)]
pub enum Timestamp {
    /// Milliseconds since the UNIX epoch.
    Millis(u64),
    /// RFC 9581 extended time: the map inside tag 1001.
    Extended(Vec<(Value, Value)>),
}

/// `MessageDerivedValues`: what a receiver knows about a message besides
/// its content.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDerivedValues {
    /// ID of the message.
    pub message_id: MessageId,
    /// Time the hub accepted the message.
    pub hub_accepted_timestamp: Timestamp,
    /// MLS group ID {12}.
    pub mls_group_id: Vec<u8>,
    /// Sender's MLS leaf index {13}.
    pub sender_leaf_index: u32,
    /// Sender client URL {14}.
    pub sender_client_url: String,
    /// Sender user URL ("From") {15}.
    pub sender_user_url: String,
    /// Room URL ("To") {16}.
    pub room_url: String,
}

impl MessageDerivedValues {
    /// Deterministic CBOR encoding (URLs as untagged text, as in the
    /// draft's example file).
    pub fn to_cbor(&self) -> Result<Vec<u8>, ContentError> {
        let mut w = Writer::new();
        w.array(7);
        w.bytes(self.message_id.as_bytes());
        match &self.hub_accepted_timestamp {
            Timestamp::Millis(ms) => w.uint(*ms),
            Timestamp::Extended(m) => {
                let v = Value::Tag(TAG_EXTENDED_TIME, Box::new(Value::Map(m.clone())));
                v.validate(0)?;
                v.encode(&mut w);
            }
        }
        w.bytes(&self.mls_group_id);
        w.uint(u64::from(self.sender_leaf_index));
        w.text(&self.sender_client_url);
        w.text(&self.sender_user_url);
        w.text(&self.room_url);
        Ok(w.buf)
    }

    /// Strict decoding.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ContentError> {
        let mut r = Reader::new(bytes);
        let n = r.array("MessageDerivedValues")?;
        if n != 7 {
            return Err(ContentError::WrongLength {
                field: "MessageDerivedValues",
                expected: "7",
                found: n,
            });
        }
        let message_id = id_decode(&mut r, "messageId")?;
        let offset = r.position();
        let hub_accepted_timestamp = match r.peek_major()? {
            MAJOR_UINT => Timestamp::Millis(r.uint("hubAcceptedTimestamp")?),
            MAJOR_TAG => match Value::decode(&mut r, 0)? {
                Value::Tag(TAG_EXTENDED_TIME, inner) => match *inner {
                    Value::Map(m) => Timestamp::Extended(m),
                    _ => return Err(wrong_ts(offset)),
                },
                _ => return Err(wrong_ts(offset)),
            },
            _ => return Err(wrong_ts(offset)),
        };
        let v = MessageDerivedValues {
            message_id,
            hub_accepted_timestamp,
            mls_group_id: r.bytes("mlsGroupId")?.to_vec(),
            sender_leaf_index: uint_sized(&mut r, "senderLeafIndex")?,
            sender_client_url: r.text("senderClientUrl")?.to_owned(),
            sender_user_url: r.text("senderUserUrl")?.to_owned(),
            room_url: r.text("roomUrl")?.to_owned(),
        };
        r.finish()?;
        Ok(v)
    }
}

fn wrong_ts(offset: usize) -> ContentError {
    ContentError::WrongType {
        field: "hubAcceptedTimestamp",
        expected: "uint or tag 1001 map",
        offset,
    }
}
