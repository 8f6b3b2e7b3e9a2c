//! Generic CBOR values, used for the contents of the `mimiExtensions` map.
//!
//! draft-ietf-mimi-content "Extension Fields" allows any CBOR as an extension
//! value, subject to "Data model restrictions" and "Depth restrictions":
//! nested map keys are integers, text or byte strings; integer keys fit in a
//! double (|k| <= 2^53 - 1); the only NaN is the half-width quiet NaN
//! 0xf97e00; tags, maps and arrays nest at most 4 levels counting the
//! extensions map itself as level 1.

use crate::cbor::{
    MAJOR_ARRAY, MAJOR_BYTES, MAJOR_MAP, MAJOR_NINT, MAJOR_SIMPLE, MAJOR_TAG, MAJOR_TEXT,
    MAJOR_UINT, Reader, SIMPLE_FALSE, SIMPLE_NULL, SIMPLE_TRUE, SIMPLE_UNDEFINED, Writer,
};
use crate::error::ContentError;

/// Largest integer magnitude allowed for map keys (2^53 - 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Maximum depth of tags, maps and arrays inside the extensions map,
/// counting the extensions map itself as level 1.
pub const MAX_EXTENSION_DEPTH: usize = 4;

/// A CBOR data item.
///
/// `Map` entries may be given in any order; they are always encoded sorted
/// by the bytewise order of their encoded keys (RFC 8949 §4.2.1), and
/// decoded values are in that order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Major type 0.
    Unsigned(u64),
    /// Major type 1: the integer `-1 - n`.
    Negative(u64),
    /// Byte string.
    Bytes(Vec<u8>),
    /// Text string.
    Text(String),
    /// Array.
    Array(Vec<Value>),
    /// Map, as key/value pairs.
    Map(Vec<(Value, Value)>),
    /// Tagged item.
    Tag(u64, Box<Value>),
    /// `false` / `true`.
    Bool(bool),
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// Unassigned simple value (0..=19 or 32..=255).
    Simple(u8),
    /// Floating point; encoded in the shortest of half/single/double that
    /// preserves the value. Any NaN is encoded as 0xf97e00.
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Unsigned(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        if v >= 0 {
            Value::Unsigned(v.unsigned_abs())
        } else {
            Value::Negative(v.unsigned_abs() - 1)
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl Value {
    /// The text, if this is a text string.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The deterministic encoding of this value (no validation).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.buf
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            Value::Unsigned(n) => w.head(MAJOR_UINT, *n),
            Value::Negative(n) => w.head(MAJOR_NINT, *n),
            Value::Bytes(b) => w.bytes(b),
            Value::Text(s) => w.text(s),
            Value::Array(items) => {
                w.array(items.len());
                for i in items {
                    i.encode(w);
                }
            }
            Value::Map(entries) => {
                let mut enc: Vec<(Vec<u8>, &Value)> =
                    entries.iter().map(|(k, v)| (k.to_cbor(), v)).collect();
                enc.sort_by(|a, b| a.0.cmp(&b.0));
                w.map(enc.len());
                for (k, v) in enc {
                    w.raw(&k);
                    v.encode(w);
                }
            }
            Value::Tag(t, inner) => {
                w.head(MAJOR_TAG, *t);
                inner.encode(w);
            }
            Value::Bool(b) => w.bool(*b),
            Value::Null => w.null(),
            Value::Undefined => w.simple(SIMPLE_UNDEFINED),
            Value::Simple(v) => w.simple(*v),
            Value::Float(f) => encode_float(w, *f),
        }
    }

    /// Checks that this value, placed inside a container at nesting level
    /// `parent_level`, satisfies the draft's data model and depth
    /// restrictions (i.e. that its encoding would decode again).
    pub(crate) fn validate(&self, parent_level: usize) -> Result<(), ContentError> {
        match self {
            Value::Array(items) => {
                let level = enter(parent_level)?;
                items.iter().try_for_each(|i| i.validate(level))
            }
            Value::Map(entries) => {
                let level = enter(parent_level)?;
                let mut keys: Vec<Vec<u8>> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    check_nested_key(k)?;
                    v.validate(level)?;
                    keys.push(k.to_cbor());
                }
                keys.sort();
                if keys.windows(2).any(|w| w[0] == w[1]) {
                    return Err(ContentError::DuplicateKey { offset: 0 });
                }
                Ok(())
            }
            Value::Tag(t, inner) => {
                let level = enter(parent_level)?;
                check_bignum(*t, inner)?;
                inner.validate(level)
            }
            Value::Simple(v) => {
                if (20..32).contains(v) {
                    Err(ContentError::InvalidValue {
                        reason: "simple values 20..=31 are not unassigned simple values",
                    })
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Decodes one value found inside a container at level `parent_level`.
    pub(crate) fn decode(r: &mut Reader<'_>, parent_level: usize) -> Result<Value, ContentError> {
        let h = r.head()?;
        Ok(match h.major {
            MAJOR_UINT => Value::Unsigned(h.arg),
            MAJOR_NINT => Value::Negative(h.arg),
            MAJOR_BYTES => Value::Bytes(r.string_body(h.arg)?.to_vec()),
            MAJOR_TEXT => Value::Text(r.text_body(h)?.to_owned()),
            MAJOR_ARRAY => {
                let level = enter(parent_level)?;
                let mut items = Vec::new();
                for _ in 0..h.arg {
                    items.push(Value::decode(r, level)?);
                }
                Value::Array(items)
            }
            MAJOR_MAP => {
                let level = enter(parent_level)?;
                let mut entries = Vec::new();
                let mut prev: Option<(usize, usize)> = None;
                for _ in 0..h.arg {
                    let start = r.position();
                    let k = Value::decode(r, level)?;
                    let end = r.position();
                    check_nested_key(&k)?;
                    check_order(r, prev, (start, end))?;
                    prev = Some((start, end));
                    let v = Value::decode(r, level)?;
                    entries.push((k, v));
                }
                Value::Map(entries)
            }
            MAJOR_TAG => {
                let level = enter(parent_level)?;
                let inner = Value::decode(r, level)?;
                check_bignum(h.arg, &inner).map_err(|e| match e {
                    ContentError::InvalidValue { reason } => ContentError::NonDeterministic {
                        offset: h.offset,
                        reason,
                    },
                    other => other,
                })?;
                Value::Tag(h.arg, Box::new(inner))
            }
            _ => {
                debug_assert_eq!(h.major, MAJOR_SIMPLE);
                decode_simple(h)?
            }
        })
    }
}

fn decode_simple(h: crate::cbor::Head) -> Result<Value, ContentError> {
    Ok(match h.ai {
        SIMPLE_FALSE => Value::Bool(false),
        SIMPLE_TRUE => Value::Bool(true),
        SIMPLE_NULL => Value::Null,
        SIMPLE_UNDEFINED => Value::Undefined,
        0..=19 => Value::Simple(h.ai),
        24 => Value::Simple(h.arg as u8),
        25 => {
            let bits = h.arg as u16;
            let v = f16_to_f64(bits);
            if v.is_nan() && bits != 0x7e00 {
                return Err(ContentError::InvalidValue {
                    reason: "only the half-width quiet NaN 0xf97e00 is allowed",
                });
            }
            Value::Float(v)
        }
        26 => {
            let v = f64::from(f32::from_bits(h.arg as u32));
            if v.is_nan() {
                return Err(ContentError::InvalidValue {
                    reason: "only the half-width quiet NaN 0xf97e00 is allowed",
                });
            }
            if f64_to_f16_exact(v).is_some() {
                return Err(ContentError::NonDeterministic {
                    offset: h.offset,
                    reason: "float not in shortest form",
                });
            }
            Value::Float(v)
        }
        _ => {
            let v = f64::from_bits(h.arg);
            if v.is_nan() {
                return Err(ContentError::InvalidValue {
                    reason: "only the half-width quiet NaN 0xf97e00 is allowed",
                });
            }
            if f64::from(v as f32) == v {
                return Err(ContentError::NonDeterministic {
                    offset: h.offset,
                    reason: "float not in shortest form",
                });
            }
            Value::Float(v)
        }
    })
}

/// Enters a container one level below `parent_level`.
fn enter(parent_level: usize) -> Result<usize, ContentError> {
    let level = parent_level + 1;
    if level > MAX_EXTENSION_DEPTH {
        Err(ContentError::TooDeep {
            what: "extension content (tags, maps, arrays)",
            limit: MAX_EXTENSION_DEPTH,
        })
    } else {
        Ok(level)
    }
}

/// Map keys nested inside an extension: integer (within ±(2^53-1)), text
/// or byte string ("Data model restrictions").
fn check_nested_key(k: &Value) -> Result<(), ContentError> {
    match k {
        Value::Unsigned(n) if *n <= MAX_SAFE_INTEGER => Ok(()),
        Value::Negative(n) if *n < MAX_SAFE_INTEGER => Ok(()),
        Value::Unsigned(_) | Value::Negative(_) => Err(ContentError::InvalidKey {
            reason: "integer key not representable as a double",
        }),
        Value::Text(_) | Value::Bytes(_) => Ok(()),
        _ => Err(ContentError::InvalidKey {
            reason: "nested map keys must be integers, text or byte strings",
        }),
    }
}

/// Checks that the key encoded at `cur` sorts strictly after `prev`.
pub(crate) fn check_order(
    r: &Reader<'_>,
    prev: Option<(usize, usize)>,
    cur: (usize, usize),
) -> Result<(), ContentError> {
    if let Some((ps, pe)) = prev {
        let a = r.slice(ps, pe);
        let b = r.slice(cur.0, cur.1);
        match a.cmp(b) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => return Err(ContentError::DuplicateKey { offset: cur.0 }),
            std::cmp::Ordering::Greater => return Err(ContentError::UnsortedMap { offset: cur.0 }),
        }
    }
    Ok(())
}

/// Bignums (tags 2 and 3) must not be used for values that fit a CBOR
/// integer and must not have leading zero bytes (RFC 8949 §4.2.1, §3.4.3).
fn check_bignum(tag: u64, inner: &Value) -> Result<(), ContentError> {
    if tag != 2 && tag != 3 {
        return Ok(());
    }
    match inner {
        Value::Bytes(b) if b.len() > 8 && b[0] != 0 => Ok(()),
        Value::Bytes(_) => Err(ContentError::InvalidValue {
            reason: "bignum that fits an integer or has leading zeros",
        }),
        _ => Err(ContentError::InvalidValue {
            reason: "bignum tag content must be a byte string",
        }),
    }
}

fn encode_float(w: &mut Writer, v: f64) {
    if v.is_nan() {
        w.raw(&[0xf9, 0x7e, 0x00]);
    } else if let Some(h) = f64_to_f16_exact(v) {
        w.raw(&[0xf9]);
        w.raw(&h.to_be_bytes());
    } else if f64::from(v as f32) == v {
        w.raw(&[0xfa]);
        w.raw(&(v as f32).to_bits().to_be_bytes());
    } else {
        w.raw(&[0xfb]);
        w.raw(&v.to_bits().to_be_bytes());
    }
}

/// IEEE 754 binary16 to f64 (exact).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let mant = f64::from(bits & 0x3ff);
    let mag = match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1024.0 + mant) * 2f64.powi(exp - 25),
    };
    sign * mag
}

/// The binary16 encoding of `v` if it represents `v` exactly (not for NaN).
fn f64_to_f16_exact(v: f64) -> Option<u16> {
    if v.is_nan() {
        return None;
    }
    let sign: u16 = if v.is_sign_negative() { 0x8000 } else { 0 };
    let a = v.abs();
    if a == 0.0 {
        return Some(sign);
    }
    if a.is_infinite() {
        return Some(sign | 0x7c00);
    }
    if a < 2f64.powi(-14) {
        // Subnormal half: multiples of 2^-24 (scaling by 2^24 is exact).
        let m = a * 2f64.powi(24);
        return (m.fract() == 0.0 && m < 1024.0).then_some(sign | m as u16);
    }
    let bits = a.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let mant = bits & ((1u64 << 52) - 1);
    if exp > 15 || mant & ((1u64 << 42) - 1) != 0 {
        return None;
    }
    Some(sign | (((exp + 15) as u16) << 10) | (mant >> 42) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(v: &Value) -> Value {
        let b = v.to_cbor();
        let mut r = Reader::new(&b);
        let d = Value::decode(&mut r, 0).expect("decodes");
        r.finish().expect("no trailing");
        d
    }

    #[test]
    fn floats_shortest() {
        assert_eq!(Value::Float(1.5).to_cbor(), [0xf9, 0x3e, 0x00]);
        assert_eq!(Value::Float(0.0).to_cbor(), [0xf9, 0x00, 0x00]);
        assert_eq!(Value::Float(-0.0).to_cbor(), [0xf9, 0x80, 0x00]);
        assert_eq!(Value::Float(f64::INFINITY).to_cbor(), [0xf9, 0x7c, 0x00]);
        assert_eq!(Value::Float(f64::NAN).to_cbor(), [0xf9, 0x7e, 0x00]);
        assert_eq!(
            Value::Float(5.960464477539063e-8).to_cbor(),
            [0xf9, 0x00, 0x01]
        );
        assert_eq!(Value::Float(65504.0).to_cbor(), [0xf9, 0x7b, 0xff]);
        assert_eq!(
            Value::Float(100000.0).to_cbor(),
            [0xfa, 0x47, 0xc3, 0x50, 0x00]
        );
        assert_eq!(Value::Float(1.1).to_cbor()[0], 0xfb);
        for f in [
            1.5,
            -0.0,
            65504.0,
            100000.0,
            1.1,
            5.960464477539063e-8,
            1e300,
        ] {
            assert_eq!(rt(&Value::Float(f)), Value::Float(f));
        }
    }

    #[test]
    fn rejects_long_floats_and_other_nans() {
        for bad in [
            &[0xfa, 0x3f, 0xc0, 0x00, 0x00][..],
            &[0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0],
            &[0xf9, 0x7e, 0x01],
            &[0xf9, 0xfe, 0x00],
            &[0xfa, 0x7f, 0xc0, 0x00, 0x00],
        ] {
            let mut r = Reader::new(bad);
            assert!(Value::decode(&mut r, 0).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn negative_from_i64() {
        assert_eq!(Value::from(-1i64), Value::Negative(0));
        assert_eq!(Value::from(i64::MIN).to_cbor()[0], 0x3b);
    }
}
