//! Checks shared by the fuzz targets (see docs/fuzzing.md).
//!
//! Every target gets raw bytes. Targets that cover several decoders use the
//! first byte to pick one ([`split`]); the seeds in `fuzz/seeds/<target>/`
//! carry that byte too.
//!
//! The property checked for every TLS-PL message is canonicity: the codec
//! is `tls_codec` with the `mls` feature, which rejects non-minimal
//! variable-length prefixes (RFC 9420 §2.1.2), unknown enum values and
//! trailing bytes, so a value that decodes must re-encode to exactly the
//! input. A difference means two encodings of one value are accepted (a
//! signature or a duplicate-detection hash over the bytes would then
//! disagree with the value) or the encoder is wrong.

pub mod targets;

use std::fmt::Debug;

use mimi_protocol::{IdentifierUri, MimiUri, decode_exact, encode};
use tls_codec::{Deserialize, Serialize, Size};

/// Splits off the selector byte; `None` for empty input.
pub fn split(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}

/// Decodes exactly one `T` from `data`; if that succeeds, checks
/// [`assert_canonical`] and returns the value.
pub fn decode_canonical<T>(data: &[u8]) -> Option<T>
where
    T: Deserialize + Serialize + Size + PartialEq + Debug,
{
    let value = decode_exact::<T>(data).ok()?;
    assert_canonical(&value, data);
    Some(value)
}

/// `value` was decoded from `data`: it re-encodes to exactly `data`, its
/// `Size` agrees with the encoding, and the encoding decodes to `value`.
pub fn assert_canonical<T>(value: &T, data: &[u8])
where
    T: Deserialize + Serialize + Size + PartialEq + Debug,
{
    let bytes = encode(value)
        .unwrap_or_else(|e| panic!("a decoded value does not re-encode: {e}\n{value:?}"));
    assert_eq!(
        value.tls_serialized_len(),
        bytes.len(),
        "tls_serialized_len disagrees with the encoding"
    );
    assert!(
        bytes == data,
        "re-encoding differs from the input\n input: {data:02x?}\noutput: {bytes:02x?}"
    );
    let again: T = decode_exact(&bytes).expect("a re-encoded value decodes");
    assert_eq!(&again, value, "decode(encode(x)) != x");
}

/// The first `prefix` bytes of a signed message are the encoding of its TBS
/// (the signed fields come first, the signature last: -06 §5.2, §5.6).
pub fn assert_tbs_prefix<T: Serialize>(tbs: &T, message: &[u8]) {
    let tbs = encode(tbs).expect("a TBS built from a decoded message encodes");
    assert!(
        message.starts_with(&tbs),
        "the TBS is not the leading part of the signed message"
    );
}

/// Parses an `IdentifierUri` the way the endpoints do; an accepted URI is
/// canonical after parsing and parses back to itself.
pub fn check_identifier_uri(uri: &IdentifierUri) {
    if let Ok(parsed) = MimiUri::try_from(uri) {
        assert_mimi_uri(&parsed);
    }
}

/// Properties of a parsed [`MimiUri`]: its text is canonical (parses to
/// the same value), its parts are consistent and its wire form converts
/// back.
pub fn assert_mimi_uri(uri: &MimiUri) {
    let text = uri.as_str();
    let again = MimiUri::parse_canonical(text)
        .unwrap_or_else(|e| panic!("canonical form {text:?} does not parse canonically: {e}"));
    assert_eq!(&again, uri);
    assert!(text.starts_with("mimi://"));
    assert_eq!(uri.provider_uri().domain(), uri.domain());
    assert_eq!(uri.id().is_none(), uri.kind().letter().is_none());
    let segments = uri.id_segments();
    if let Some(decoded) = uri.id_decoded() {
        assert_eq!(decoded, segments.join("/"));
    }
    let wire = uri.to_identifier_uri();
    assert_eq!(MimiUri::try_from(&wire).as_ref(), Ok(uri));
}

#[cfg(test)]
mod tests {
    use tls_codec::VLBytes;

    use super::*;

    #[test]
    fn a_canonical_encoding_passes() {
        let v: VLBytes = decode_canonical(&[0x01, 0xaa]).expect("decodes");
        assert_eq!(v.as_slice(), &[0xaa]);
    }

    /// RFC 9420 §2.1.2: the codec itself refuses a non-minimal length.
    #[test]
    fn a_non_minimal_length_does_not_decode() {
        assert!(decode_canonical::<VLBytes>(&[0x40, 0x01, 0xaa]).is_none());
    }

    #[test]
    #[should_panic(expected = "re-encoding differs")]
    fn a_second_encoding_of_a_value_is_detected() {
        assert_canonical(&VLBytes::new(vec![0xaa]), &[0x40, 0x01, 0xaa]);
    }

    #[test]
    #[should_panic(expected = "not the leading part")]
    fn a_tbs_that_is_not_the_prefix_is_detected() {
        assert_tbs_prefix(&VLBytes::new(vec![0x01]), &[0x01, 0x02]);
    }

    #[test]
    fn uri_properties_hold_for_a_normalised_device_uri() {
        let uri = MimiUri::parse("MIMI://A.example/d/alice/Client%41").expect("parses");
        assert_eq!(uri.as_str(), "mimi://a.example/d/alice/ClientA");
        assert_mimi_uri(&uri);
    }
}
