//! `POST /submitMessage/{roomId}` (-06 §5.4): `SubmitMessageRequest` and
//! `SubmitMessageResponse` (with the optional `Frank`, §5.4.1).

use crate::{check_identifier_uri, decode_canonical, split};
use mimi_protocol::msgs::{SubmitMessageRequest, SubmitMessageResponse};

/// One fuzz input (the `submit` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Some((selector, body)) = split(data) else {
        return;
    };
    if selector % 2 == 0 {
        if let Some(request) = decode_canonical::<SubmitMessageRequest>(body) {
            check_identifier_uri(&request.sending_uri);
        }
    } else if let Some(response) = decode_canonical::<SubmitMessageResponse>(body) {
        assert_eq!(response.status_code() as u8, body[1]);
    }
}
