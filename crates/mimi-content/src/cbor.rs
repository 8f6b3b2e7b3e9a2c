//! Minimal strict CBOR reader and deterministic writer (RFC 8949).
//!
//! The reader accepts only the deterministic encoding of RFC 8949 §4.2.1 as
//! required by draft-ietf-mimi-content "Encoding restrictions": shortest
//! argument forms, definite lengths only. The writer always produces that
//! form. Neither ever panics; lengths are checked against the remaining
//! input before anything is sliced or allocated.

use crate::error::ContentError;

pub(crate) const MAJOR_UINT: u8 = 0;
pub(crate) const MAJOR_NINT: u8 = 1;
pub(crate) const MAJOR_BYTES: u8 = 2;
pub(crate) const MAJOR_TEXT: u8 = 3;
pub(crate) const MAJOR_ARRAY: u8 = 4;
pub(crate) const MAJOR_MAP: u8 = 5;
pub(crate) const MAJOR_TAG: u8 = 6;
pub(crate) const MAJOR_SIMPLE: u8 = 7;

pub(crate) const SIMPLE_FALSE: u8 = 20;
pub(crate) const SIMPLE_TRUE: u8 = 21;
pub(crate) const SIMPLE_NULL: u8 = 22;
pub(crate) const SIMPLE_UNDEFINED: u8 = 23;

/// A decoded initial byte plus argument.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    /// Offset of the initial byte.
    pub offset: usize,
    pub major: u8,
    /// Additional information (low five bits).
    pub ai: u8,
    /// The argument; for major type 7 with ai 25..=27 the raw float bits.
    pub arg: u64,
}

/// Strict CBOR reader over a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// Fails unless the whole input has been consumed.
    pub fn finish(&self) -> Result<(), ContentError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(ContentError::TrailingBytes {
                offset: self.pos,
                count: self.buf.len() - self.pos,
            })
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ContentError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(ContentError::UnexpectedEof { offset: self.pos })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, ContentError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Peeks at the major type of the next item without consuming it.
    pub fn peek_major(&self) -> Result<u8, ContentError> {
        self.buf
            .get(self.pos)
            .map(|b| b >> 5)
            .ok_or(ContentError::UnexpectedEof { offset: self.pos })
    }

    /// True (and consumes it) if the next item is `null`.
    pub fn take_null(&mut self) -> Result<bool, ContentError> {
        match self.buf.get(self.pos) {
            None => Err(ContentError::UnexpectedEof { offset: self.pos }),
            Some(&0xf6) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    /// Reads an initial byte and its argument, enforcing the shortest form
    /// and rejecting indefinite lengths and reserved encodings.
    pub fn head(&mut self) -> Result<Head, ContentError> {
        let offset = self.pos;
        let ib = *self
            .buf
            .get(self.pos)
            .ok_or(ContentError::UnexpectedEof { offset })?;
        self.pos += 1;
        let major = ib >> 5;
        let ai = ib & 0x1f;
        let non_shortest = ContentError::NonDeterministic {
            offset,
            reason: "argument not in shortest form",
        };
        let arg = match ai {
            0..=23 => u64::from(ai),
            24 => {
                let v = self.be(1)?;
                if major == MAJOR_SIMPLE {
                    if v < 32 {
                        return Err(ContentError::Malformed {
                            offset,
                            reason: "two-byte simple value below 32",
                        });
                    }
                } else if v < 24 {
                    return Err(non_shortest);
                }
                v
            }
            25 => {
                let v = self.be(2)?;
                if major != MAJOR_SIMPLE && v <= 0xff {
                    return Err(non_shortest);
                }
                v
            }
            26 => {
                let v = self.be(4)?;
                if major != MAJOR_SIMPLE && v <= 0xffff {
                    return Err(non_shortest);
                }
                v
            }
            27 => {
                let v = self.be(8)?;
                if major != MAJOR_SIMPLE && v <= 0xffff_ffff {
                    return Err(non_shortest);
                }
                v
            }
            28..=30 => {
                return Err(ContentError::Malformed {
                    offset,
                    reason: "reserved additional information",
                });
            }
            _ => {
                return Err(match major {
                    MAJOR_BYTES | MAJOR_TEXT | MAJOR_ARRAY | MAJOR_MAP | MAJOR_SIMPLE => {
                        ContentError::IndefiniteLength { offset }
                    }
                    _ => ContentError::Malformed {
                        offset,
                        reason: "additional information 31 on integer or tag",
                    },
                });
            }
        };
        Ok(Head {
            offset,
            major,
            ai,
            arg,
        })
    }

    fn expect(
        &mut self,
        major: u8,
        field: &'static str,
        expected: &'static str,
    ) -> Result<Head, ContentError> {
        let h = self.head()?;
        if h.major != major {
            return Err(ContentError::WrongType {
                field,
                expected,
                offset: h.offset,
            });
        }
        Ok(h)
    }

    /// Reads the content of a byte or text string whose head was read.
    pub fn string_body(&mut self, len: u64) -> Result<&'a [u8], ContentError> {
        let n =
            usize::try_from(len).map_err(|_| ContentError::UnexpectedEof { offset: self.pos })?;
        self.take(n)
    }

    /// Reads text-string content (head already read) and checks UTF-8.
    pub fn text_body(&mut self, h: Head) -> Result<&'a str, ContentError> {
        let raw = self.string_body(h.arg)?;
        std::str::from_utf8(raw).map_err(|_| ContentError::InvalidUtf8 { offset: h.offset })
    }

    pub fn uint(&mut self, field: &'static str) -> Result<u64, ContentError> {
        Ok(self.expect(MAJOR_UINT, field, "unsigned integer")?.arg)
    }

    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], ContentError> {
        let h = self.expect(MAJOR_BYTES, field, "byte string")?;
        self.string_body(h.arg)
    }

    pub fn text(&mut self, field: &'static str) -> Result<&'a str, ContentError> {
        let h = self.expect(MAJOR_TEXT, field, "text string")?;
        self.text_body(h)
    }

    /// Reads an array head and returns its length.
    pub fn array(&mut self, field: &'static str) -> Result<u64, ContentError> {
        Ok(self.expect(MAJOR_ARRAY, field, "array")?.arg)
    }

    /// Reads a map head and returns its number of pairs.
    pub fn map(&mut self, field: &'static str) -> Result<u64, ContentError> {
        Ok(self.expect(MAJOR_MAP, field, "map")?.arg)
    }

    pub fn bool(&mut self, field: &'static str) -> Result<bool, ContentError> {
        let h = self.head()?;
        match (h.major, h.ai) {
            (MAJOR_SIMPLE, SIMPLE_FALSE) => Ok(false),
            (MAJOR_SIMPLE, SIMPLE_TRUE) => Ok(true),
            _ => Err(ContentError::WrongType {
                field,
                expected: "bool",
                offset: h.offset,
            }),
        }
    }

    /// Reads the raw encoded bytes between two positions.
    pub fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        self.buf.get(from..to).unwrap_or(&[])
    }
}

/// Deterministic CBOR writer.
#[derive(Default)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    /// Writes an initial byte with the argument in its shortest form.
    pub fn head(&mut self, major: u8, arg: u64) {
        let m = major << 5;
        if arg < 24 {
            self.buf.push(m | arg as u8);
        } else if arg <= 0xff {
            self.buf.push(m | 24);
            self.buf.push(arg as u8);
        } else if arg <= 0xffff {
            self.buf.push(m | 25);
            self.buf.extend_from_slice(&(arg as u16).to_be_bytes());
        } else if arg <= 0xffff_ffff {
            self.buf.push(m | 26);
            self.buf.extend_from_slice(&(arg as u32).to_be_bytes());
        } else {
            self.buf.push(m | 27);
            self.buf.extend_from_slice(&arg.to_be_bytes());
        }
    }

    pub fn uint(&mut self, v: u64) {
        self.head(MAJOR_UINT, v);
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.head(MAJOR_BYTES, b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    pub fn text(&mut self, s: &str) {
        self.head(MAJOR_TEXT, s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub fn array(&mut self, len: usize) {
        self.head(MAJOR_ARRAY, len as u64);
    }

    pub fn map(&mut self, len: usize) {
        self.head(MAJOR_MAP, len as u64);
    }

    pub fn simple(&mut self, v: u8) {
        if v < 24 {
            self.buf.push(0xe0 | v);
        } else {
            self.buf.push(0xf8);
            self.buf.push(v);
        }
    }

    pub fn bool(&mut self, b: bool) {
        self.simple(if b { SIMPLE_TRUE } else { SIMPLE_FALSE });
    }

    pub fn null(&mut self) {
        self.simple(SIMPLE_NULL);
    }

    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
}
