//! `mimi://` identifiers (draft-mahy-mimi-identity §4, -06 §3).
//!
//! A MIMI URI is `mimi://<domain>` (a provider) or
//! `mimi://<domain>/<kind>/<id>` where the first path segment names the kind
//! of identifier (draft-mahy-mimi-identity, table "types of MIMI URI
//! identifiers"): `u` user, `d` client/device, `r` room, `g` MLS group,
//! `p` pseudonym, `t` team.
//!
//! The drafts give examples, not a grammar, so this module fixes one on top
//! of RFC 3986:
//!
//! * scheme `mimi`, matched case-insensitively, always written lowercase;
//! * the authority is a DNS host name only (RFC 1123 letters-digits-hyphen
//!   labels, at most 63 octets each and 253 in total, no trailing dot, the
//!   last label not all-numeric so IPv4 literals are excluded), compared
//!   case-insensitively and stored lowercase; no userinfo, port or IP literal;
//! * no query and no fragment;
//! * the kind is one lowercase letter; the id is one non-empty path segment
//!   of RFC 3986 `pchar`s, except for devices, whose id may be
//!   `<user>/<client>` (draft-mahy-mimi-identity shows
//!   `mimi://a.example/d/alice/ClientA1`);
//! * percent-encoding must be well formed and is normalised (RFC 3986
//!   §6.2.2): escapes of unreserved characters are decoded, hex digits are
//!   written uppercase. The decoded id must be UTF-8 without control
//!   characters;
//! * the whole URI is at most [`MAX_MIMI_URI_LEN`] octets.
//!
//! Parsing normalises, so `to_string()` of a parsed URI is its canonical
//! form and two URIs denote the same identifier iff they are `==`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::common::IdentifierUri;

/// Longest accepted MIMI URI, in octets (our limit; the drafts set none).
pub const MAX_MIMI_URI_LEN: usize = 1024;
/// Longest DNS name (RFC 1035 §2.3.4, without the trailing dot).
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

const SCHEME_PREFIX: &str = "mimi://";

/// What a MIMI URI identifies: its first path segment
/// (draft-mahy-mimi-identity §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MimiUriKind {
    /// `mimi://a.example`
    Provider,
    /// `u`: `mimi://a.example/u/alice`
    User,
    /// `d`: `mimi://a.example/d/ClientA1` or `mimi://a.example/d/alice/ClientA1`
    Device,
    /// `r`: `mimi://a.example/r/clubhouse`
    Room,
    /// `g`: `mimi://a.example/g/TII9t5viBrXiXc`
    Group,
    /// `p`: `mimi://a.example/p/crazykoala75`
    Pseudonym,
    /// `t`: `mimi://a.example/t/engineering`
    Team,
}

impl MimiUriKind {
    /// The path letter, `None` for a provider.
    pub fn letter(self) -> Option<char> {
        match self {
            Self::Provider => None,
            Self::User => Some('u'),
            Self::Device => Some('d'),
            Self::Room => Some('r'),
            Self::Group => Some('g'),
            Self::Pseudonym => Some('p'),
            Self::Team => Some('t'),
        }
    }

    /// The kind for a path letter (lowercase only).
    pub fn from_letter(c: char) -> Option<Self> {
        Some(match c {
            'u' => Self::User,
            'd' => Self::Device,
            'r' => Self::Room,
            'g' => Self::Group,
            'p' => Self::Pseudonym,
            't' => Self::Team,
            _ => return None,
        })
    }
}

/// Why a string is not a valid MIMI URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MimiUriError {
    #[error("URI is {len} octets long, more than the {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("URI is not valid UTF-8")]
    NotUtf8,
    #[error("URI scheme is not `mimi://`")]
    WrongScheme,
    #[error("URI has a userinfo component (`@` before the host)")]
    UserinfoNotAllowed,
    #[error("URI has a port")]
    PortNotAllowed,
    #[error("URI has a query component")]
    QueryNotAllowed,
    #[error("URI has a fragment component")]
    FragmentNotAllowed,
    #[error("invalid domain: {0}")]
    InvalidDomain(#[from] DomainError),
    #[error("path must be empty (provider) or `/<kind>/<id>`")]
    MalformedPath,
    #[error("unknown identifier kind `{0}` (expected one of u, d, r, g, p, t)")]
    UnknownKind(String),
    #[error("empty identifier")]
    EmptyId,
    #[error("empty path segment in identifier")]
    EmptySegment,
    #[error("identifier of this kind must be a single path segment")]
    TooManySegments,
    #[error("character {ch:?} at octet {pos} is not allowed in a MIMI URI")]
    InvalidChar { ch: char, pos: usize },
    #[error("malformed percent-encoding at octet {pos}")]
    BadPercentEncoding { pos: usize },
    #[error("identifier decodes to a control character")]
    EncodedControlChar,
    #[error("identifier does not decode to valid UTF-8")]
    IdNotUtf8,
    #[error("URI is not in canonical form (canonical: {0})")]
    NotCanonical(String),
}

/// Why an authority is not an acceptable domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("empty domain")]
    Empty,
    #[error("domain longer than {MAX_DOMAIN_LEN} octets")]
    TooLong,
    #[error("empty label (leading, trailing or doubled dot)")]
    EmptyLabel,
    #[error("label longer than {MAX_LABEL_LEN} octets")]
    LabelTooLong,
    #[error("character {0:?} not allowed in a host name (use A-labels for IDNs)")]
    InvalidChar(char),
    #[error("label starts or ends with a hyphen")]
    HyphenAtLabelEdge,
    #[error("last label is all-numeric (IP addresses are not allowed)")]
    NumericTld,
    #[error("IP literals are not allowed")]
    IpLiteral,
}

/// A validated, normalised `mimi://` URI.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MimiUri {
    /// Canonical text.
    text: String,
    kind: MimiUriKind,
    /// Length of `mimi://<domain>` in `text`.
    authority_end: usize,
}

impl MimiUri {
    /// Parses and normalises a MIMI URI.
    pub fn parse(s: &str) -> Result<Self, MimiUriError> {
        if s.len() > MAX_MIMI_URI_LEN {
            return Err(MimiUriError::TooLong {
                len: s.len(),
                max: MAX_MIMI_URI_LEN,
            });
        }
        if s.len() < SCHEME_PREFIX.len()
            || !s.is_char_boundary(SCHEME_PREFIX.len())
            || !s[..SCHEME_PREFIX.len()].eq_ignore_ascii_case(SCHEME_PREFIX)
        {
            return Err(MimiUriError::WrongScheme);
        }
        let rest = &s[SCHEME_PREFIX.len()..];
        let base = SCHEME_PREFIX.len();
        // Control characters and other non-URI characters anywhere.
        for (i, ch) in rest.char_indices() {
            if !(is_pchar_literal(ch) || matches!(ch, '/' | '%' | '?' | '#')) {
                return Err(MimiUriError::InvalidChar { ch, pos: base + i });
            }
        }
        if rest.contains('#') {
            return Err(MimiUriError::FragmentNotAllowed);
        }
        if rest.contains('?') {
            return Err(MimiUriError::QueryNotAllowed);
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let domain = parse_domain(authority)?;

        let mut text = String::with_capacity(s.len());
        text.push_str(SCHEME_PREFIX);
        text.push_str(&domain);
        let authority_end = text.len();

        if path.is_empty() {
            return Ok(Self {
                text,
                kind: MimiUriKind::Provider,
                authority_end,
            });
        }
        // path = "/" kind "/" id
        let path = &path[1..];
        let (kind_str, id) = path.split_once('/').ok_or(MimiUriError::MalformedPath)?;
        if kind_str.is_empty() {
            return Err(MimiUriError::MalformedPath);
        }
        let kind = {
            let mut chars = kind_str.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => MimiUriKind::from_letter(c),
                _ => None,
            }
        }
        .ok_or_else(|| MimiUriError::UnknownKind(kind_str.to_owned()))?;
        if id.is_empty() {
            return Err(MimiUriError::EmptyId);
        }
        let id_offset = base + authority.len() + 1 + kind_str.len() + 1;
        let segments: Vec<&str> = id.split('/').collect();
        let max_segments = if kind == MimiUriKind::Device { 2 } else { 1 };
        if segments.iter().any(|s| s.is_empty()) {
            return Err(MimiUriError::EmptySegment);
        }
        if segments.len() > max_segments {
            return Err(MimiUriError::TooManySegments);
        }
        text.push('/');
        text.push_str(kind_str);
        text.push('/');
        normalize_id(id, id_offset, &mut text)?;
        Ok(Self {
            text,
            kind,
            authority_end,
        })
    }

    /// Parses `s` and requires it to be already in canonical form, e.g. for
    /// identifiers compared as bytes on the wire (participant list users).
    pub fn parse_canonical(s: &str) -> Result<Self, MimiUriError> {
        let u = Self::parse(s)?;
        if u.text != s {
            return Err(MimiUriError::NotCanonical(u.text));
        }
        Ok(u)
    }

    /// `mimi://<domain>`.
    pub fn provider(domain: &str) -> Result<Self, MimiUriError> {
        let domain = parse_domain(domain)?;
        Self::parse(&format!("{SCHEME_PREFIX}{domain}"))
    }

    /// `mimi://<domain>/<kind>/<id>` from an unencoded id, percent-encoding
    /// every character that is not a literal `pchar` (including `/`, so the
    /// id is one path segment). `kind` must not be [`MimiUriKind::Provider`].
    pub fn new(kind: MimiUriKind, domain: &str, id: &str) -> Result<Self, MimiUriError> {
        let letter = kind.letter().ok_or(MimiUriError::MalformedPath)?;
        let domain = parse_domain(domain)?;
        Self::parse(&format!(
            "{SCHEME_PREFIX}{domain}/{letter}/{}",
            encode_segment(id)
        ))
    }

    /// `mimi://<domain>/u/<user>`.
    pub fn user(domain: &str, user: &str) -> Result<Self, MimiUriError> {
        Self::new(MimiUriKind::User, domain, user)
    }

    /// `mimi://<domain>/r/<room>`.
    pub fn room(domain: &str, room: &str) -> Result<Self, MimiUriError> {
        Self::new(MimiUriKind::Room, domain, room)
    }

    /// `mimi://<domain>/d/<user>/<client>`, the two-segment device form.
    pub fn device_of_user(domain: &str, user: &str, client: &str) -> Result<Self, MimiUriError> {
        let domain = parse_domain(domain)?;
        Self::parse(&format!(
            "{SCHEME_PREFIX}{domain}/d/{}/{}",
            encode_segment(user),
            encode_segment(client)
        ))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The (lowercase) domain.
    pub fn domain(&self) -> &str {
        &self.text[SCHEME_PREFIX.len()..self.authority_end]
    }

    pub fn kind(&self) -> MimiUriKind {
        self.kind
    }

    /// The id as it appears in the URI (normalised percent-encoding), `None`
    /// for a provider. For a two-segment device id this includes the `/`.
    pub fn id(&self) -> Option<&str> {
        match self.kind {
            MimiUriKind::Provider => None,
            // skip "/x/"
            _ => Some(&self.text[self.authority_end + 3..]),
        }
    }

    /// The id with percent-encoding removed (always valid UTF-8, checked on
    /// parse). For a two-segment device id the segments are joined by `/`;
    /// use [`Self::id_segments`] to keep them apart.
    pub fn id_decoded(&self) -> Option<Cow<'_, str>> {
        self.id().map(|id| percent_decode_str(id))
    }

    /// The decoded path segments of the id (one, or two for a device).
    pub fn id_segments(&self) -> Vec<Cow<'_, str>> {
        self.id()
            .map(|id| id.split('/').map(percent_decode_str).collect())
            .unwrap_or_default()
    }

    /// The provider URI of this identifier's domain.
    pub fn provider_uri(&self) -> MimiUri {
        MimiUri {
            text: self.text[..self.authority_end].to_owned(),
            kind: MimiUriKind::Provider,
            authority_end: self.authority_end,
        }
    }

    /// Converts to the wire form.
    pub fn to_identifier_uri(&self) -> IdentifierUri {
        IdentifierUri::new(&self.text)
    }
}

impl fmt::Display for MimiUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for MimiUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MimiUri({:?})", self.text)
    }
}

impl FromStr for MimiUri {
    type Err = MimiUriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for MimiUri {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl TryFrom<&IdentifierUri> for MimiUri {
    type Error = MimiUriError;
    fn try_from(value: &IdentifierUri) -> Result<Self, Self::Error> {
        let bytes = value.uri.as_slice();
        if bytes.len() > MAX_MIMI_URI_LEN {
            return Err(MimiUriError::TooLong {
                len: bytes.len(),
                max: MAX_MIMI_URI_LEN,
            });
        }
        let s = std::str::from_utf8(bytes).map_err(|_| MimiUriError::NotUtf8)?;
        Self::parse(s)
    }
}

impl TryFrom<IdentifierUri> for MimiUri {
    type Error = MimiUriError;
    fn try_from(value: IdentifierUri) -> Result<Self, Self::Error> {
        Self::try_from(&value)
    }
}

impl From<&MimiUri> for IdentifierUri {
    fn from(value: &MimiUri) -> Self {
        value.to_identifier_uri()
    }
}

impl From<MimiUri> for IdentifierUri {
    fn from(value: MimiUri) -> Self {
        value.to_identifier_uri()
    }
}

impl serde::Serialize for MimiUri {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for MimiUri {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Validates a host name and returns it lowercased.
pub fn parse_domain(authority: &str) -> Result<String, MimiUriError> {
    if authority.contains('@') {
        return Err(MimiUriError::UserinfoNotAllowed);
    }
    if authority.starts_with('[') {
        return Err(DomainError::IpLiteral.into());
    }
    if authority.contains(':') {
        return Err(MimiUriError::PortNotAllowed);
    }
    validate_domain(authority)?;
    Ok(authority.to_ascii_lowercase())
}

/// RFC 1123 host name check (see the module docs).
pub fn validate_domain(domain: &str) -> Result<(), DomainError> {
    if domain.is_empty() {
        return Err(DomainError::Empty);
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(DomainError::TooLong);
    }
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(DomainError::LabelTooLong);
        }
        if let Some(ch) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(DomainError::InvalidChar(ch));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::HyphenAtLabelEdge);
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::NumericTld);
    }
    Ok(())
}

/// RFC 3986 `unreserved`.
pub(crate) fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// RFC 3986 `pchar` minus `pct-encoded`.
fn is_pchar_literal(c: char) -> bool {
    is_unreserved(c)
        || matches!(
            c,
            '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';' | '=' | ':' | '@'
        )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Normalises the percent-encoding of `id` into `out` and checks that the
/// decoded id is UTF-8 without control characters. `offset` is the octet
/// position of `id` in the input, for error messages.
fn normalize_id(id: &str, offset: usize, out: &mut String) -> Result<(), MimiUriError> {
    let bytes = id.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            ) else {
                return Err(MimiUriError::BadPercentEncoding { pos: offset + i });
            };
            let v = (h << 4) | l;
            decoded.push(v);
            if is_unreserved(v as char) && v.is_ascii() {
                out.push(v as char);
            } else {
                out.push('%');
                out.push(HEX_UPPER[(v >> 4) as usize] as char);
                out.push(HEX_UPPER[(v & 15) as usize] as char);
            }
            i += 3;
        } else {
            // Only ASCII pchars and '/' reach here (checked by the caller).
            decoded.push(b);
            out.push(b as char);
            i += 1;
        }
    }
    let decoded = String::from_utf8(decoded).map_err(|_| MimiUriError::IdNotUtf8)?;
    if decoded.chars().any(char::is_control) {
        return Err(MimiUriError::EncodedControlChar);
    }
    Ok(())
}

/// Percent-encodes every octet of `s` that is not a literal `pchar`.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii() && is_pchar_literal(b as char) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX_UPPER[(b >> 4) as usize] as char);
            out.push(HEX_UPPER[(b & 15) as usize] as char);
        }
    }
    out
}

/// Decodes a string whose percent-encoding is already known to be valid and
/// to decode to UTF-8.
fn percent_decode_str(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            )
        {
            out.push((h << 4) | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// RFC 6570 simple-string expansion of one value: every octet of the UTF-8
/// encoding that is not `unreserved` is percent-encoded (uppercase hex).
pub fn pct_encode_unreserved(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii() && is_unreserved(b as char) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX_UPPER[(b >> 4) as usize] as char);
            out.push(HEX_UPPER[(b & 15) as usize] as char);
        }
    }
    out
}
