//! `POST /groupInfo/{roomId}` (-06 §5.6): `GroupInfoRequest`,
//! `GroupInfoResponse`, and the decrypted `GroupInfoRatchetTreeTBE` (its
//! plaintext comes from the hub, so it is untrusted input too).

use crate::{assert_tbs_prefix, decode_canonical, split};
use mimi_protocol::msgs::group_info::external_sender_parts;
use mimi_protocol::msgs::{
    GroupInfoRatchetTreeTbe, GroupInfoRequest, GroupInfoResponse, GroupInfoResponseBody,
};
use openmls_rust_crypto::RustCrypto;

/// One fuzz input (the `group_info` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Some((selector, body)) = split(data) else {
        return;
    };
    match selector % 3 {
        0 => {
            if let Some(request) = decode_canonical::<GroupInfoRequest>(body) {
                assert_tbs_prefix(&request.tbs(), body);
                let _ = request.verify(&RustCrypto::default());
            }
        }
        1 => {
            if let Some(response) = decode_canonical::<GroupInfoResponse>(body) {
                let success = matches!(response.body, GroupInfoResponseBody::Success(_));
                assert_eq!(response.tbs().is_some(), success);
                if let GroupInfoResponseBody::Success(s) = &response.body {
                    assert!(external_sender_parts(&s.hub_sender).is_ok());
                }
                let _ = response.verify(&RustCrypto::default());
            }
        }
        _ => {
            let _ = decode_canonical::<GroupInfoRatchetTreeTbe>(body);
        }
    }
}
