//! `POST /update/{roomId}` (-06 §5.3): `UpdateRequest` (a
//! `HandshakeBundle`, selected on the framed content type) and
//! `UpdateRoomResponse`.

use crate::{decode_canonical, split};
use mimi_protocol::msgs::{HandshakeBody, UpdateRequest, UpdateRoomResponse, framed_content_type};
use openmls::prelude::ContentType;

/// One fuzz input (the `update` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Some((selector, body)) = split(data) else {
        return;
    };
    if selector % 2 == 0 {
        let Some(request) = decode_canonical::<UpdateRequest>(body) else {
            return;
        };
        let bundle = &request.bundle;
        let expected = match bundle.body {
            HandshakeBody::Commit { .. } => ContentType::Commit,
            HandshakeBody::Proposal { .. } => ContentType::Proposal,
        };
        assert_eq!(
            framed_content_type(&bundle.proposal_or_commit),
            Some(expected)
        );
    } else if let Some(response) = decode_canonical::<UpdateRoomResponse>(body) {
        assert_eq!(response.response_code() as u8, body[0]);
    }
}
