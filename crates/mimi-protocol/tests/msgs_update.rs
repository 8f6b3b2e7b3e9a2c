//! UpdateRequest / HandshakeBundle / GroupInfoOption / RatchetTreeOption /
//! PartialGroupInfo / UpdateRoomResponse (-06 §5.3).

mod common;

use common::*;
use mimi_protocol::msgs::{
    GroupInfoOption, HandshakeBody, HandshakeBundle, PartialGroupInfo, RatchetTreeOption,
    RatchetTreePresence, RatchetTreeRepresentation, UpdateRequest, UpdateResponseCode,
    UpdateResult, UpdateRoomResponse,
};
use mimi_protocol::{decode_exact, encode};
use openmls::prelude::{Extension, UnknownExtension};
use proptest::prelude::*;
use proptest::sample::select;

fn ratchet_tree_option() -> impl Strategy<Value = RatchetTreeOption> {
    prop_oneof![
        Just(RatchetTreeOption::Full(fx().ratchet_tree.clone())),
        (vlbytes_wide(), vlbytes(80)).prop_map(|(u, s)| RatchetTreeOption::HttpsUri {
            ratchet_tree_url: u,
            tree_signature: s
        }),
        vlbytes(80).prop_map(|s| RatchetTreeOption::OutOfBand { tree_signature: s }),
        Just(RatchetTreeOption::DistributionService),
    ]
}

fn partial_group_info() -> impl Strategy<Value = PartialGroupInfo> {
    let presence = select(vec![
        RatchetTreePresence::NoRatchetTree,
        RatchetTreePresence::Present,
        RatchetTreePresence::Removed,
        RatchetTreePresence::Added,
    ]);
    let ext = (0xff00u16..0xff10, prop::collection::vec(any::<u8>(), 0..10))
        .prop_map(|(t, v)| Extension::Unknown(t, UnknownExtension(v)));
    (presence, prop::collection::vec(ext, 0..3), vlbytes(80)).prop_map(|(p, e, s)| {
        PartialGroupInfo {
            ratchet_tree_presence: p,
            group_info_extensions: e,
            signature: s,
        }
    })
}

fn group_info_option() -> impl Strategy<Value = GroupInfoOption> {
    prop_oneof![
        Just(GroupInfoOption::Full(fx().group_info.clone())),
        partial_group_info().prop_map(GroupInfoOption::Partial),
    ]
}

fn bundle() -> impl Strategy<Value = HandshakeBundle> {
    let commit = (
        select(fx().commits.clone()),
        prop::option::of(Just(fx().welcome.clone())),
        group_info_option(),
        ratchet_tree_option(),
    )
        .prop_map(|(m, w, g, r)| HandshakeBundle {
            proposal_or_commit: m,
            body: HandshakeBody::Commit {
                welcome: w,
                group_info_option: g,
                ratchet_tree_option: r,
            },
        });
    let proposal =
        (select(fx().proposals.clone()), proposals()).prop_map(|(m, more)| HandshakeBundle {
            proposal_or_commit: m,
            body: HandshakeBody::Proposal {
                more_proposals: more,
            },
        });
    prop_oneof![commit, proposal]
}

fn update_response() -> impl Strategy<Value = UpdateRoomResponse> {
    let result = prop_oneof![
        any::<u64>().prop_map(|t| UpdateResult::Success {
            accepted_timestamp: t
        }),
        any::<u64>().prop_map(|e| UpdateResult::WrongEpoch { current_epoch: e }),
        Just(UpdateResult::NotAllowed),
        prop::collection::vec(select(fx().proposal_refs.clone()), 0..3).prop_map(|p| {
            UpdateResult::InvalidProposal {
                invalid_proposals: p,
            }
        }),
    ];
    (tls_string(), result).prop_map(|(d, r)| UpdateRoomResponse {
        error_description: d,
        result: r,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn ratchet_tree_option_round_trips(r in ratchet_tree_option()) { round_trip(&r); }

    #[test]
    fn partial_group_info_round_trips(p in partial_group_info()) { round_trip(&p); }

    #[test]
    fn group_info_option_round_trips(g in group_info_option()) { round_trip(&g); }

    #[test]
    fn handshake_bundle_round_trips(b in bundle()) {
        round_trip(&b);
        let req = UpdateRequest { bundle: b.clone() };
        // UpdateRequest is encoded exactly as its bundle.
        prop_assert_eq!(encode(&req).unwrap(), encode(&b).unwrap());
        round_trip(&req);
    }

    #[test]
    fn update_response_round_trips(r in update_response()) { round_trip(&r); }
}

#[test]
fn bundle_body_must_match_content_type() {
    let f = fx();
    // A proposal with a commit body.
    let bad = HandshakeBundle {
        proposal_or_commit: f.proposals[0].clone(),
        body: HandshakeBody::Commit {
            welcome: None,
            group_info_option: GroupInfoOption::Full(f.group_info.clone()),
            ratchet_tree_option: RatchetTreeOption::DistributionService,
        },
    };
    assert!(encode(&bad).is_err());
    // Application messages, Welcomes and GroupInfos cannot head a bundle.
    for m in [
        &f.applications[1],
        &f.welcome_message,
        &f.group_info_message,
    ] {
        let mut bytes = encode(m).unwrap();
        bytes.push(0); // empty moreProposals
        assert!(decode_exact::<HandshakeBundle>(&bytes).is_err());
    }
}

#[test]
fn bundle_strict_decoding() {
    let f = fx();
    for b in [
        HandshakeBundle {
            proposal_or_commit: f.commits[0].clone(),
            body: HandshakeBody::Commit {
                welcome: Some(f.welcome.clone()),
                group_info_option: GroupInfoOption::Full(f.group_info.clone()),
                ratchet_tree_option: RatchetTreeOption::Full(f.ratchet_tree.clone()),
            },
        },
        HandshakeBundle {
            proposal_or_commit: f.proposals[1].clone(),
            body: HandshakeBody::Proposal {
                more_proposals: vec![f.proposals[0].clone()],
            },
        },
    ] {
        let bytes = round_trip(&b);
        assert_strict::<HandshakeBundle>(&bytes);
    }
    // Non-minimal length in a trailing opaque field: OutOfBand signature.
    let b = HandshakeBundle {
        proposal_or_commit: f.commits[1].clone(),
        body: HandshakeBody::Commit {
            welcome: None,
            group_info_option: GroupInfoOption::Partial(PartialGroupInfo {
                ratchet_tree_presence: RatchetTreePresence::Present,
                group_info_extensions: vec![],
                signature: vec![1, 2, 3].into(),
            }),
            ratchet_tree_option: RatchetTreeOption::OutOfBand {
                tree_signature: vec![9; 5].into(),
            },
        },
    };
    let bytes = round_trip(&b);
    assert_eq!(&bytes[bytes.len() - 7..bytes.len() - 5], &[3, 5]);
    assert_rejects_non_minimal::<HandshakeBundle>(&bytes, bytes.len() - 6);
}

#[test]
fn ratchet_tree_option_enum_values() {
    assert_eq!(
        encode(&RatchetTreeOption::DistributionService).unwrap(),
        [4]
    );
    assert_eq!(
        RatchetTreeOption::DistributionService.representation(),
        RatchetTreeRepresentation::DistributionService
    );
    assert_eq!(
        encode(&RatchetTreeOption::OutOfBand {
            tree_signature: vec![7].into()
        })
        .unwrap(),
        [3, 1, 7]
    );
    for bad in [[0u8], [5]] {
        assert!(decode_exact::<RatchetTreeOption>(&bad).is_err());
    }
    assert!(decode_exact::<RatchetTreeOption>(&[3, 0x40, 1, 7]).is_err());
    // GroupInfoOption reserved(0) and unknown(3).
    assert!(decode_exact::<GroupInfoOption>(&[0]).is_err());
    assert!(decode_exact::<GroupInfoOption>(&[3]).is_err());
    // PartialGroupInfo with unknown presence.
    assert!(decode_exact::<PartialGroupInfo>(&[4, 0, 0]).is_err());
    assert!(decode_exact::<PartialGroupInfo>(&[1, 0, 0]).is_ok());
}

#[test]
fn update_response_wire_and_errors() {
    let r = UpdateRoomResponse {
        error_description: "".into(),
        result: UpdateResult::WrongEpoch { current_epoch: 7 },
    };
    assert_eq!(r.response_code(), UpdateResponseCode::WrongEpoch);
    let bytes = round_trip(&r);
    assert_eq!(bytes, [1, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
    assert_strict::<UpdateRoomResponse>(&bytes);

    let r = UpdateRoomResponse {
        error_description: "nope".into(),
        result: UpdateResult::InvalidProposal {
            invalid_proposals: fx().proposal_refs.clone(),
        },
    };
    let bytes = round_trip(&r);
    assert_strict::<UpdateRoomResponse>(&bytes);
    assert_rejects_non_minimal::<UpdateRoomResponse>(&bytes, 1);
    // Unknown code.
    assert!(decode_exact::<UpdateRoomResponse>(&[4, 0]).is_err());
    // notAllowed has no body.
    assert_eq!(
        decode_exact::<UpdateRoomResponse>(&[2, 0]).unwrap().result,
        UpdateResult::NotAllowed
    );
    // errorDescription must be UTF-8.
    assert!(decode_exact::<UpdateRoomResponse>(&[2, 1, 0xff]).is_err());
}

#[test]
fn semi_private_message_is_unsupported() {
    // MLSMessage { version = mls10 (1), wire_format = 0x0008 (the suggested
    // SemiPrivateMessage value), ... }: openmls cannot decode it, so the
    // bundle is rejected with an error rather than misread.
    let bytes = [0, 1, 0, 8, 0, 0, 0];
    assert!(decode_exact::<HandshakeBundle>(&bytes).is_err());
    assert!(decode_exact::<UpdateRequest>(&bytes).is_err());
}
