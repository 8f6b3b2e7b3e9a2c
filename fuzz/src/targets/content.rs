//! The MIMI content format (draft-ietf-mimi-content): `MimiContent` (the
//! application message plaintext) and `MessageDerivedValues`. Decoding is
//! strict deterministic CBOR, so an accepted input re-encodes to itself.

use crate::split;
use mimi_content::{MessageDerivedValues, MimiContent, message_id_of_bytes};

/// One fuzz input (the `content` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Some((selector, body)) = split(data) else {
        return;
    };
    if selector % 2 == 0 {
        let Ok(content) = MimiContent::from_cbor(body) else {
            assert!(
                message_id_of_bytes("mimi://a.example/u/a", "mimi://a.example/r/r", body).is_err()
            );
            return;
        };
        let encoded = content.to_cbor().expect("decoded content re-encodes");
        // Byte equality, not value equality: a NaN float is not equal to
        // itself.
        assert!(encoded == body, "re-encoding differs from the input");
        let _ = content.sanity_check();
        let parts = content.nested_part.part_count();
        for i in 0..parts.min(64) {
            assert!(content.nested_part.part_by_index(i).is_some());
        }
        assert!(content.nested_part.part_by_index(parts).is_none());
        let id = content
            .message_id("mimi://a.example/u/a", "mimi://a.example/r/r")
            .expect("message id");
        assert_eq!(
            message_id_of_bytes("mimi://a.example/u/a", "mimi://a.example/r/r", body),
            Ok(id)
        );
        let _ = content.message_id_from_extensions();
    } else if let Ok(values) = MessageDerivedValues::from_cbor(body) {
        let encoded = values.to_cbor().expect("decoded values re-encode");
        assert!(encoded == body, "re-encoding differs from the input");
    }
}
