//! `POST /requestConsent`, `POST /updateConsent` (-06 §5.7): the
//! `ConsentEntry` body (`clientKeyPackages` only for `grant`).

use crate::{check_identifier_uri, decode_canonical};
use mimi_protocol::msgs::{ConsentEntry, ConsentOperation};

/// One fuzz input (the `consent` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Some(entry) = decode_canonical::<ConsentEntry>(data) else {
        return;
    };
    if entry.consent_operation != ConsentOperation::Grant {
        assert!(entry.client_key_packages.is_empty());
    }
    let scope = entry.scope();
    check_identifier_uri(&scope.requester_uri);
    check_identifier_uri(&scope.target_uri);
    if let Some(room) = &scope.room_id {
        check_identifier_uri(room);
    }
}
