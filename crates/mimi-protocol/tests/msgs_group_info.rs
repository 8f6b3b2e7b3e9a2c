//! GroupInfoRequest / GroupInfoResponse / PendingProposal /
//! GroupInfoRatchetTreeTBE (-06 §5.6).

mod common;

use common::*;
use mimi_protocol::msgs::group_info::external_sender_parts;
use mimi_protocol::msgs::{
    GroupInfoCode, GroupInfoRatchetTreeTbe, GroupInfoRequest, GroupInfoRequestTbs,
    GroupInfoResponse, GroupInfoResponseBody, GroupInfoResponseTbs, GroupInfoSuccess, MsgError,
    PendingProposal, RatchetTreeOption,
};
use mimi_protocol::{Protocol, decode_exact, encode};
use openmls_traits::types::HpkeCiphertext;
use proptest::prelude::*;
use proptest::sample::select;

fn request_tbs() -> impl Strategy<Value = GroupInfoRequestTbs> {
    (
        cipher_suite(),
        signature_key(),
        credential(),
        vlbytes(40),
        prop::option::of(vlbytes_wide()),
    )
        .prop_map(|(cs, sk, cred, pk, code)| GroupInfoRequestTbs {
            protocol: Protocol::Mls10,
            cipher_suite: cs,
            requesting_signature_key: sk,
            requesting_credential: cred,
            group_info_public_key: pk,
            joining_code: code,
        })
}

fn request() -> impl Strategy<Value = GroupInfoRequest> {
    (request_tbs(), vlbytes_wide()).prop_map(|(t, sig)| GroupInfoRequest {
        protocol: t.protocol,
        cipher_suite: t.cipher_suite,
        requesting_signature_key: t.requesting_signature_key,
        requesting_credential: t.requesting_credential,
        group_info_public_key: t.group_info_public_key,
        joining_code: t.joining_code,
        signature: sig,
    })
}

fn ciphertext() -> impl Strategy<Value = HpkeCiphertext> {
    (vlbytes(40), vlbytes_wide()).prop_map(|(k, c)| HpkeCiphertext {
        kem_output: k,
        ciphertext: c,
    })
}

fn status() -> impl Strategy<Value = GroupInfoCode> {
    select(vec![
        GroupInfoCode::Success,
        GroupInfoCode::NotAuthorized,
        GroupInfoCode::NoSuchRoom,
    ])
}

fn response_tbs() -> impl Strategy<Value = GroupInfoResponseTbs> {
    (
        vlbytes(60),
        status(),
        cipher_suite(),
        select(fx().external_senders.clone()),
        ciphertext(),
    )
        .prop_map(|(room, st, cs, hub, ct)| GroupInfoResponseTbs {
            protocol: Protocol::Mls10,
            room_id: room,
            status: st,
            cipher_suite: cs,
            hub_sender: hub,
            encrypted_groupinfo_and_tree: ct,
        })
}

fn response() -> impl Strategy<Value = GroupInfoResponse> {
    let success = (
        cipher_suite(),
        select(fx().external_senders.clone()),
        ciphertext(),
        vlbytes(80),
    )
        .prop_map(|(cs, hub, ct, sig)| {
            GroupInfoResponseBody::Success(GroupInfoSuccess {
                cipher_suite: cs,
                hub_sender: hub,
                encrypted_groupinfo_and_tree: ct,
                signature: sig,
            })
        });
    let body = prop_oneof![
        success,
        Just(GroupInfoResponseBody::NotAuthorized),
        Just(GroupInfoResponseBody::NoSuchRoom),
    ];
    (vlbytes(60), body).prop_map(|(room, body)| GroupInfoResponse {
        protocol: Protocol::Mls10,
        room_id: room,
        body,
    })
}

fn pending() -> impl Strategy<Value = PendingProposal> {
    (select(fx().proposals.clone()), any::<u64>()).prop_map(|(p, t)| PendingProposal {
        proposal: p,
        hub_accepted_time: t,
    })
}

fn tbe() -> impl Strategy<Value = GroupInfoRatchetTreeTbe> {
    let rto = prop_oneof![
        Just(RatchetTreeOption::Full(fx().ratchet_tree.clone())),
        Just(RatchetTreeOption::DistributionService),
        (vlbytes(40), vlbytes(40)).prop_map(|(u, s)| RatchetTreeOption::HttpsUri {
            ratchet_tree_url: u,
            tree_signature: s
        }),
    ];
    (rto, prop::collection::vec(pending(), 0..3)).prop_map(|(r, p)| GroupInfoRatchetTreeTbe {
        group_info: fx().group_info.clone(),
        ratchet_tree_option: r,
        pending_proposals: p,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn request_tbs_round_trips(t in request_tbs()) { round_trip(&t); }

    #[test]
    fn request_round_trips(r in request()) { round_trip(&r); }

    #[test]
    fn response_tbs_round_trips(t in response_tbs()) { round_trip(&t); }

    #[test]
    fn response_round_trips(r in response()) {
        round_trip(&r);
        prop_assert_eq!(r.tbs().is_some(), r.status() == GroupInfoCode::Success);
    }

    #[test]
    fn pending_proposal_round_trips(p in pending()) { round_trip(&p); }

    #[test]
    fn tbe_round_trips(t in tbe()) { round_trip(&t); }
}

fn signed_request() -> GroupInfoRequest {
    let f = fx();
    GroupInfoRequestTbs {
        protocol: Protocol::Mls10,
        cipher_suite: CS.into(),
        requesting_signature_key: f.signature_keys[0].clone(),
        requesting_credential: f.credentials[0].clone(),
        group_info_public_key: vec![4; 32].into(),
        joining_code: Some(b"join-me".to_vec().into()),
    }
    .sign(&f.signer)
    .unwrap()
}

#[test]
fn request_signature() {
    let req = signed_request();
    req.verify(&crypto()).unwrap();
    assert_eq!(req.tbs().sign(&fx().signer).unwrap().tbs(), req.tbs());

    let mut bad = req.clone();
    bad.joining_code = None;
    assert!(matches!(
        bad.verify(&crypto()),
        Err(MsgError::InvalidSignature)
    ));

    let mut sig = req.signature.as_slice().to_vec();
    sig[10] ^= 4;
    let mut bad = req.clone();
    bad.signature = sig.into();
    assert!(bad.verify(&crypto()).is_err());

    // A flipped byte in the encoded group_info_public_key.
    let mut bytes = encode(&req).unwrap();
    let pos = bytes.windows(32).position(|w| w == [4; 32]).unwrap();
    bytes[pos + 3] ^= 1;
    let decoded: GroupInfoRequest = decode_exact(&bytes).unwrap();
    assert!(decoded.verify(&crypto()).is_err());

    let mut bad = req.clone();
    bad.cipher_suite = mimi_protocol::msgs::CipherSuite(0x7777);
    assert!(matches!(
        bad.verify(&crypto()),
        Err(MsgError::UnsupportedCipherSuite(_))
    ));
}

#[test]
fn request_strict() {
    let req = signed_request();
    let bytes = round_trip(&req);
    assert_strict::<GroupInfoRequest>(&bytes);
    // Non-minimal length of the signature key, right after protocol + suite.
    assert_rejects_non_minimal::<GroupInfoRequest>(&bytes, 3);
    // joiningCode presence byte must be 0 or 1.
    let pos = bytes.windows(7).position(|w| w == b"join-me").unwrap();
    assert_eq!(bytes[pos - 2], 1);
    let mut bad = bytes.clone();
    bad[pos - 2] = 2;
    assert!(decode_exact::<GroupInfoRequest>(&bad).is_err());
    let mut bad = bytes.clone();
    bad[0] = 9;
    assert!(decode_exact::<GroupInfoRequest>(&bad).is_err());
}

fn signed_response() -> GroupInfoResponse {
    let f = fx();
    GroupInfoResponseTbs {
        protocol: Protocol::Mls10,
        room_id: b"mimi://hub.example/r/room".to_vec().into(),
        status: GroupInfoCode::Success,
        cipher_suite: CS.into(),
        hub_sender: f.external_senders[0].clone(),
        encrypted_groupinfo_and_tree: HpkeCiphertext {
            kem_output: vec![1; 32].into(),
            ciphertext: vec![2; 100].into(),
        },
    }
    .sign(&f.signer)
    .unwrap()
}

#[test]
fn response_signature() {
    let resp = signed_response();
    resp.verify(&crypto()).unwrap();
    let (key, cred) = external_sender_parts(&fx().external_senders[0]).unwrap();
    assert_eq!(key, fx().signature_keys[0]);
    assert_eq!(cred, fx().credentials[0]);

    let mut bad = resp.clone();
    bad.room_id = b"mimi://hub.example/r/other".to_vec().into();
    assert!(matches!(
        bad.verify(&crypto()),
        Err(MsgError::InvalidSignature)
    ));

    let mut bytes = encode(&resp).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1; // last signature byte
    let decoded: GroupInfoResponse = decode_exact(&bytes).unwrap();
    assert!(decoded.verify(&crypto()).is_err());

    // Hub sender whose key is not the signer's.
    let mut bad = resp.clone();
    if let GroupInfoResponseBody::Success(s) = &mut bad.body {
        s.hub_sender = fx().external_senders[1].clone();
    }
    assert!(bad.verify(&crypto()).is_err());

    let failure = GroupInfoResponse {
        protocol: Protocol::Mls10,
        room_id: vec![].into(),
        body: GroupInfoResponseBody::NotAuthorized,
    };
    assert!(matches!(
        failure.verify(&crypto()),
        Err(MsgError::NotSigned)
    ));
    // Signing a non-success TBS is refused.
    let mut tbs = resp.tbs().unwrap();
    tbs.status = GroupInfoCode::NoSuchRoom;
    assert!(matches!(tbs.sign(&fx().signer), Err(MsgError::NotSigned)));
}

#[test]
fn response_strict() {
    let resp = signed_response();
    let bytes = round_trip(&resp);
    assert_strict::<GroupInfoResponse>(&bytes);
    // room_id length is at offset 1 (25 bytes, 1-byte prefix).
    assert_rejects_non_minimal::<GroupInfoResponse>(&bytes, 1);

    let failure = GroupInfoResponse {
        protocol: Protocol::Mls10,
        room_id: b"r".to_vec().into(),
        body: GroupInfoResponseBody::NoSuchRoom,
    };
    let bytes = round_trip(&failure);
    assert_eq!(bytes, [1, 1, b'r', 3]);
    assert_strict::<GroupInfoResponse>(&bytes);
    // reserved(0) and unknown status codes.
    assert!(decode_exact::<GroupInfoResponse>(&[1, 1, b'r', 0]).is_err());
    assert!(decode_exact::<GroupInfoResponse>(&[1, 1, b'r', 4]).is_err());
}

#[test]
fn tbe_strict() {
    let f = fx();
    let tbe = GroupInfoRatchetTreeTbe {
        group_info: f.group_info.clone(),
        ratchet_tree_option: RatchetTreeOption::Full(f.ratchet_tree.clone()),
        pending_proposals: vec![PendingProposal {
            proposal: f.proposals[0].clone(),
            hub_accepted_time: 5,
        }],
    };
    let bytes = round_trip(&tbe);
    assert_strict::<GroupInfoRatchetTreeTbe>(&bytes);
    let p = PendingProposal {
        proposal: f.proposals[1].clone(),
        hub_accepted_time: 5,
    };
    let bytes = round_trip(&p);
    assert_strict::<PendingProposal>(&bytes);
}
