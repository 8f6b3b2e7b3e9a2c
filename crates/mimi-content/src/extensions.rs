//! The `mimiExtensions` map (draft-ietf-mimi-content "Extension Fields").
//!
//! Keys are integers (within ±(2^53 - 1), "Data model restrictions") or
//! text strings of 1..=255 octets, each at most once. Registered keys:
//! `senderUri` (1) and `roomUri` (2), both text. Entries are kept in the
//! deterministic order of RFC 8949 §4.2.1 (bytewise order of encoded keys).

use crate::cbor::{MAJOR_NINT, MAJOR_TEXT, MAJOR_UINT, Reader, Writer};
use crate::error::ContentError;
use crate::value::{MAX_SAFE_INTEGER, Value, check_order};

/// Registered key of the sender URI extension.
pub const SENDER_URI: i64 = 1;
/// Registered key of the room URI extension.
pub const ROOM_URI: i64 = 2;

/// A key of the extensions map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionKey {
    /// Integer key: positive keys are IANA registered, negative keys are
    /// for private use.
    Int(i64),
    /// Text key (private use), 1..=255 octets of UTF-8.
    Text(String),
}

impl From<i64> for ExtensionKey {
    fn from(k: i64) -> Self {
        ExtensionKey::Int(k)
    }
}

impl From<&str> for ExtensionKey {
    fn from(k: &str) -> Self {
        ExtensionKey::Text(k.to_owned())
    }
}

impl ExtensionKey {
    fn validate(&self) -> Result<(), ContentError> {
        match self {
            ExtensionKey::Int(k) if k.unsigned_abs() <= MAX_SAFE_INTEGER => Ok(()),
            ExtensionKey::Int(_) => Err(ContentError::InvalidKey {
                reason: "integer key not representable as a double",
            }),
            ExtensionKey::Text(s) if (1..=255).contains(&s.len()) => Ok(()),
            ExtensionKey::Text(_) => Err(ContentError::InvalidKey {
                reason: "text extension key must be 1..=255 octets",
            }),
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            ExtensionKey::Int(k) if *k >= 0 => w.head(MAJOR_UINT, k.unsigned_abs()),
            ExtensionKey::Int(k) => w.head(MAJOR_NINT, k.unsigned_abs() - 1),
            ExtensionKey::Text(s) => w.text(s),
        }
    }

    fn to_cbor(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.buf
    }

    fn decode(r: &mut Reader<'_>) -> Result<ExtensionKey, ContentError> {
        let h = r.head()?;
        let bad_int = ContentError::InvalidKey {
            reason: "integer key not representable as a double",
        };
        let key = match h.major {
            MAJOR_UINT if h.arg <= MAX_SAFE_INTEGER => ExtensionKey::Int(h.arg as i64),
            MAJOR_NINT if h.arg < MAX_SAFE_INTEGER => ExtensionKey::Int(-1 - h.arg as i64),
            MAJOR_UINT | MAJOR_NINT => return Err(bad_int),
            MAJOR_TEXT => ExtensionKey::Text(r.text_body(h)?.to_owned()),
            _ => {
                return Err(ContentError::InvalidKey {
                    reason: "extension keys must be integers or text strings",
                });
            }
        };
        key.validate()?;
        Ok(key)
    }
}

/// The `mimiExtensions` map. Always valid: every way of adding an entry
/// checks the draft's key, type and depth rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extensions {
    /// Sorted by encoded key, no duplicates.
    entries: Vec<(ExtensionKey, Value)>,
}

impl Extensions {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map with `senderUri` (1) and `roomUri` (2) set, as in every example
    /// of the draft.
    pub fn with_uris(sender_uri: impl Into<String>, room_uri: impl Into<String>) -> Self {
        Extensions {
            entries: vec![
                (
                    ExtensionKey::Int(SENDER_URI),
                    Value::Text(sender_uri.into()),
                ),
                (ExtensionKey::Int(ROOM_URI), Value::Text(room_uri.into())),
            ],
        }
    }

    /// Inserts or replaces an entry; returns the previous value.
    ///
    /// Fails if the key or value break the draft's rules (key range/length,
    /// text value for keys 1 and 2, nested key types, depth <= 4).
    pub fn insert(
        &mut self,
        key: impl Into<ExtensionKey>,
        value: Value,
    ) -> Result<Option<Value>, ContentError> {
        let key = key.into();
        key.validate()?;
        check_registered(&key, &value, 0)?;
        value.validate(1)?;
        let enc = key.to_cbor();
        match self
            .entries
            .binary_search_by(|(k, _)| k.to_cbor().cmp(&enc))
        {
            Ok(i) => Ok(Some(std::mem::replace(&mut self.entries[i].1, value))),
            Err(i) => {
                self.entries.insert(i, (key, value));
                Ok(None)
            }
        }
    }

    /// The value for `key`, if any.
    pub fn get(&self, key: &ExtensionKey) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Removes and returns the value for `key`.
    pub fn remove(&mut self, key: &ExtensionKey) -> Option<Value> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    /// Entries in encoding order.
    pub fn iter(&self) -> impl Iterator<Item = (&ExtensionKey, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `senderUri` (key 1) extension.
    pub fn sender_uri(&self) -> Option<&str> {
        self.get(&ExtensionKey::Int(SENDER_URI))
            .and_then(Value::as_text)
    }

    /// The `roomUri` (key 2) extension.
    pub fn room_uri(&self) -> Option<&str> {
        self.get(&ExtensionKey::Int(ROOM_URI))
            .and_then(Value::as_text)
    }

    /// Sets the `senderUri` (key 1) extension.
    pub fn set_sender_uri(&mut self, uri: impl Into<String>) {
        self.set_text(SENDER_URI, uri.into());
    }

    /// Sets the `roomUri` (key 2) extension.
    pub fn set_room_uri(&mut self, uri: impl Into<String>) {
        self.set_text(ROOM_URI, uri.into());
    }

    fn set_text(&mut self, key: i64, s: String) {
        let key = ExtensionKey::Int(key);
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(e) => e.1 = Value::Text(s),
            None => {
                let enc = key.to_cbor();
                let i = self.entries.partition_point(|(k, _)| k.to_cbor() < enc);
                self.entries.insert(i, (key, Value::Text(s)));
            }
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.map(self.entries.len());
        for (k, v) in &self.entries {
            k.encode(w);
            v.encode(w);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Extensions, ContentError> {
        let n = r.map("mimiExtensions")?;
        let mut entries = Vec::new();
        let mut prev = None;
        for _ in 0..n {
            let start = r.position();
            let key = ExtensionKey::decode(r)?;
            let end = r.position();
            check_order(r, prev, (start, end))?;
            prev = Some((start, end));
            let value_offset = r.position();
            let value = Value::decode(r, 1)?;
            check_registered(&key, &value, value_offset)?;
            entries.push((key, value));
        }
        Ok(Extensions { entries })
    }
}

/// `senderUri` and `roomUri` values must be text (`tstr` in the CDDL).
fn check_registered(key: &ExtensionKey, value: &Value, offset: usize) -> Result<(), ContentError> {
    let field = match key {
        ExtensionKey::Int(SENDER_URI) => "senderUri",
        ExtensionKey::Int(ROOM_URI) => "roomUri",
        _ => return Ok(()),
    };
    match value {
        Value::Text(_) => Ok(()),
        _ => Err(ContentError::WrongType {
            field,
            expected: "text string",
            offset,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_deterministic() {
        let mut e = Extensions::new();
        e.insert("zz", Value::Null).expect("ok");
        e.insert(-1, Value::Null).expect("ok");
        e.insert(300, Value::Null).expect("ok");
        e.insert("a", Value::Null).expect("ok");
        e.set_room_uri("r");
        e.set_sender_uri("s");
        let keys: Vec<_> = e.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            vec![
                ExtensionKey::Int(1),
                ExtensionKey::Int(2),
                ExtensionKey::Int(300),
                ExtensionKey::Int(-1),
                ExtensionKey::from("a"),
                ExtensionKey::from("zz"),
            ]
        );
        assert_eq!(e.sender_uri(), Some("s"));
        assert_eq!(e.room_uri(), Some("r"));
    }

    #[test]
    fn insert_checks_rules() {
        let mut e = Extensions::new();
        assert!(e.insert("", Value::Null).is_err());
        assert!(e.insert("x".repeat(256).as_str(), Value::Null).is_err());
        assert!(e.insert(1 << 53, Value::Null).is_err());
        assert!(e.insert(SENDER_URI, Value::Unsigned(1)).is_err());
        let deep = Value::Array(vec![Value::Array(vec![Value::Tag(
            32,
            Box::new(Value::Null),
        )])]);
        assert!(e.insert(256, deep.clone()).is_ok());
        let too_deep = Value::Array(vec![deep]);
        assert!(e.insert(257, too_deep).is_err());
        let bad_key = Value::Map(vec![(Value::Null, Value::Null)]);
        assert!(e.insert(258, bad_key).is_err());
        let dup = Value::Map(vec![
            (Value::from(1u64), Value::Null),
            (Value::from(1u64), Value::Null),
        ]);
        assert!(e.insert(259, dup).is_err());
    }
}
