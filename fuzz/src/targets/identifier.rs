//! `POST /identifierQuery/{domain}` (-06 §5.8): `IdentifierRequest` and
//! `IdentifierResponse`.

use crate::{check_identifier_uri, decode_canonical, split};
use mimi_protocol::msgs::{IdentifierRequest, IdentifierResponse};

/// One fuzz input (the `identifier` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Some((selector, body)) = split(data) else {
        return;
    };
    if selector % 2 == 0 {
        if let Some(request) = decode_canonical::<IdentifierRequest>(body) {
            for element in &request.query_elements {
                let _ = element.search_type.identifier_type();
            }
        }
    } else if let Some(response) = decode_canonical::<IdentifierResponse>(body) {
        for uri in &response.uri {
            check_identifier_uri(uri);
        }
        for profile in &response.found_profiles {
            check_identifier_uri(&profile.stable_uri);
        }
    }
}
