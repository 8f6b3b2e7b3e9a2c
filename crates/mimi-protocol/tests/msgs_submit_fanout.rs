//! SubmitMessageRequest / SubmitMessageResponse / Frank / franking structs
//! (-06 §5.4) and FanoutMessage (-06 §5.5).

mod common;

use common::*;
use mimi_protocol::msgs::fanout::{
    FanoutCase, decode_fanout_batch, encode_fanout_batch, fanout_case,
};
use mimi_protocol::msgs::{
    FanoutBody, FanoutMessage, Frank, FrankingIntegrityTbs, MsgError, RatchetTreeOption,
    ServerFrankingContext, SubmitMessageRequest, SubmitMessageResponse, SubmitResponseCode,
    SubmitStatus,
};
use mimi_protocol::{DecodeError, Protocol, decode_exact, encode};
use proptest::prelude::*;
use proptest::sample::select;

fn frank() -> impl Strategy<Value = Frank> {
    (any::<[u8; 32]>(), cipher_suite(), vlbytes_wide()).prop_map(|(f, c, s)| Frank {
        server_frank: f,
        franking_signature_ciphersuite: c,
        franking_integrity_signature: s,
    })
}

fn context() -> impl Strategy<Value = ServerFrankingContext> {
    (uri(), uri(), any::<u64>()).prop_map(|(s, r, t)| ServerFrankingContext {
        sender_uri: s,
        room_uri: r,
        accepted_timestamp: t,
    })
}

fn integrity_tbs() -> impl Strategy<Value = FrankingIntegrityTbs> {
    (any::<[u8; 32]>(), cipher_suite(), context()).prop_map(|(f, c, ctx)| FrankingIntegrityTbs {
        server_frank: f,
        franking_signature_ciphersuite: c,
        context: ctx,
    })
}

fn submit_request() -> impl Strategy<Value = SubmitMessageRequest> {
    (any_mls_message(), uri()).prop_map(|(m, u)| SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: m,
        sending_uri: u,
    })
}

fn submit_response() -> impl Strategy<Value = SubmitMessageResponse> {
    let status = prop_oneof![
        (any::<u64>(), prop::option::of(frank())).prop_map(|(t, f)| SubmitStatus::Accepted {
            accepted_timestamp: t,
            frank: f
        }),
        Just(SubmitStatus::NotAllowed),
        any::<u64>().prop_map(|e| SubmitStatus::EpochTooOld { current_epoch: e }),
    ];
    status.prop_map(|s| SubmitMessageResponse {
        protocol: Protocol::Mls10,
        status: s,
    })
}

fn fanout() -> impl Strategy<Value = FanoutMessage> {
    let f = fx();
    let app = (select(f.applications.clone()), prop::option::of(frank()))
        .prop_map(|(m, fr)| (m, FanoutBody::Application { frank: fr }));
    let welcome = prop_oneof![
        Just(RatchetTreeOption::Full(f.ratchet_tree.clone())),
        Just(RatchetTreeOption::DistributionService),
        vlbytes(40).prop_map(|s| RatchetTreeOption::OutOfBand { tree_signature: s }),
    ]
    .prop_map(|r| {
        (
            fx().welcome_message.clone(),
            FanoutBody::Welcome {
                ratchet_tree_option: r,
            },
        )
    });
    let proposal = (select(f.proposals.clone()), proposals()).prop_map(|(m, more)| {
        (
            m,
            FanoutBody::Proposal {
                more_proposals: more,
            },
        )
    });
    let commit = (select(f.commits.clone()), proposals()).prop_map(|(m, ext)| {
        (
            m,
            FanoutBody::Commit {
                external_proposals: ext,
            },
        )
    });
    (any::<u64>(), prop_oneof![app, welcome, proposal, commit]).prop_map(|(t, (m, b))| {
        FanoutMessage {
            timestamp: t,
            message: m,
            body: b,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn frank_round_trips(f in frank()) { round_trip(&f); }

    #[test]
    fn context_round_trips(c in context()) { round_trip(&c); }

    #[test]
    fn integrity_tbs_round_trips(t in integrity_tbs()) { round_trip(&t); }

    #[test]
    fn submit_request_round_trips(r in submit_request()) { round_trip(&r); }

    #[test]
    fn submit_response_round_trips(r in submit_response()) { round_trip(&r); }

    #[test]
    fn fanout_round_trips(m in fanout()) { round_trip(&m); }

    #[test]
    fn fanout_batch_round_trips(ms in prop::collection::vec(fanout(), 1..4)) {
        let bytes = encode_fanout_batch(&ms).unwrap();
        prop_assert_eq!(decode_fanout_batch(&bytes).unwrap(), ms);
    }
}

#[test]
fn submit_response_wire_and_errors() {
    let r = SubmitMessageResponse {
        protocol: Protocol::Mls10,
        status: SubmitStatus::Accepted {
            accepted_timestamp: 1,
            frank: None,
        },
    };
    assert_eq!(r.status_code(), SubmitResponseCode::Accepted);
    let bytes = round_trip(&r);
    assert_eq!(bytes, [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert_strict::<SubmitMessageResponse>(&bytes);
    // Unknown status, unknown protocol, bad optional flag.
    assert!(decode_exact::<SubmitMessageResponse>(&[1, 3]).is_err());
    assert!(decode_exact::<SubmitMessageResponse>(&[2, 1]).is_err());
    let mut bad = bytes.clone();
    *bad.last_mut().unwrap() = 2;
    assert!(decode_exact::<SubmitMessageResponse>(&bad).is_err());

    let r = SubmitMessageResponse {
        protocol: Protocol::Mls10,
        status: SubmitStatus::Accepted {
            accepted_timestamp: 1,
            frank: Some(Frank {
                server_frank: [3; 32],
                franking_signature_ciphersuite: CS.into(),
                franking_integrity_signature: vec![5; 10].into(),
            }),
        },
    };
    let bytes = round_trip(&r);
    assert_strict::<SubmitMessageResponse>(&bytes);
    // protocol, code, ts(8), present(1), frank(32), suite(2), then the length.
    assert_rejects_non_minimal::<SubmitMessageResponse>(&bytes, 1 + 1 + 8 + 1 + 32 + 2);
}

#[test]
fn submit_request_strict() {
    let f = fx();
    let r = SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: f.applications[1].clone(),
        sending_uri: "mimi://a.example/u/alice".into(),
    };
    let bytes = round_trip(&r);
    assert_strict::<SubmitMessageRequest>(&bytes);
    let uri_len_at = bytes.len() - "mimi://a.example/u/alice".len() - 1;
    assert_rejects_non_minimal::<SubmitMessageRequest>(&bytes, uri_len_at);
}

#[test]
fn fanout_cases_follow_wire_format_and_content_type() {
    let f = fx();
    assert_eq!(
        fanout_case(&f.applications[1]),
        Some(FanoutCase::Application)
    );
    assert_eq!(fanout_case(&f.welcome_message), Some(FanoutCase::Welcome));
    assert_eq!(fanout_case(&f.proposals[0]), Some(FanoutCase::Proposal));
    assert_eq!(fanout_case(&f.proposals[1]), Some(FanoutCase::Proposal));
    assert_eq!(fanout_case(&f.commits[0]), Some(FanoutCase::Commit));
    assert_eq!(fanout_case(&f.commits[1]), Some(FanoutCase::Commit));
    assert_eq!(fanout_case(&f.group_info_message), None);
    assert_eq!(fanout_case(&f.key_package_message), None);

    // Mismatched body refuses to encode.
    let bad = FanoutMessage {
        timestamp: 0,
        message: f.commits[0].clone(),
        body: FanoutBody::Application { frank: None },
    };
    assert!(encode(&bad).is_err());
    // GroupInfo / KeyPackage messages are not fanned out.
    for m in [&f.group_info_message, &f.key_package_message] {
        let mut bytes = vec![0u8; 8];
        bytes.extend(encode(m).unwrap());
        bytes.push(0);
        assert!(decode_exact::<FanoutMessage>(&bytes).is_err());
    }
}

#[test]
fn fanout_strict_decoding() {
    let f = fx();
    let msgs = [
        FanoutMessage {
            timestamp: 42,
            message: f.applications[1].clone(),
            body: FanoutBody::Application {
                frank: Some(Frank {
                    server_frank: [1; 32],
                    franking_signature_ciphersuite: CS.into(),
                    franking_integrity_signature: vec![2; 64].into(),
                }),
            },
        },
        FanoutMessage {
            timestamp: 43,
            message: f.welcome_message.clone(),
            body: FanoutBody::Welcome {
                ratchet_tree_option: RatchetTreeOption::Full(f.ratchet_tree.clone()),
            },
        },
        FanoutMessage {
            timestamp: 44,
            message: f.commits[0].clone(),
            body: FanoutBody::Commit {
                external_proposals: vec![f.proposals[0].clone()],
            },
        },
    ];
    for m in &msgs {
        let bytes = round_trip(m);
        assert_strict::<FanoutMessage>(&bytes);
    }
    // Batch: truncation anywhere fails; empty body fails.
    let bytes = encode_fanout_batch(&msgs).unwrap();
    assert_eq!(decode_fanout_batch(&bytes).unwrap().len(), 3);
    assert!(decode_fanout_batch(&[]).is_err());
    for n in [1, bytes.len() / 2, bytes.len() - 1] {
        assert!(decode_fanout_batch(&bytes[..n]).is_err());
    }
    // Welcome with an out-of-band tree signature of length 3, non-minimal.
    let m = FanoutMessage {
        timestamp: 1,
        message: f.welcome_message.clone(),
        body: FanoutBody::Welcome {
            ratchet_tree_option: RatchetTreeOption::OutOfBand {
                tree_signature: vec![1, 2, 3].into(),
            },
        },
    };
    let bytes = round_trip(&m);
    assert_rejects_non_minimal::<FanoutMessage>(&bytes, bytes.len() - 4);
    assert!(matches!(
        decode_exact::<FanoutMessage>(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn franking_signature_verifies_and_flipped_byte_fails() {
    let f = fx();
    let context = ServerFrankingContext {
        sender_uri: "mimi://a.example/u/alice".into(),
        room_uri: "mimi://hub.example/r/room".into(),
        accepted_timestamp: 1_700_000_000_000,
    };
    let tbs = FrankingIntegrityTbs {
        server_frank: [7; 32],
        franking_signature_ciphersuite: CS.into(),
        context: context.clone(),
    };
    let frank = tbs.sign(&f.signer).unwrap();
    let key = f.signature_keys[0].as_slice();
    frank.verify(&crypto(), key, &context).unwrap();

    let mut bad = frank.clone();
    bad.server_frank[31] ^= 1;
    assert!(matches!(
        bad.verify(&crypto(), key, &context),
        Err(MsgError::InvalidSignature)
    ));

    let mut sig = frank.franking_integrity_signature.as_slice().to_vec();
    sig[5] ^= 0x80;
    let mut bad = frank.clone();
    bad.franking_integrity_signature = sig.into();
    assert!(bad.verify(&crypto(), key, &context).is_err());

    let mut other = context.clone();
    other.accepted_timestamp += 1;
    assert!(frank.verify(&crypto(), key, &other).is_err());

    // Wrong key.
    assert!(
        frank
            .verify(&crypto(), f.signature_keys[1].as_slice(), &context)
            .is_err()
    );
    // Unknown suite: no scheme.
    let mut bad = frank.clone();
    bad.franking_signature_ciphersuite = mimi_protocol::msgs::CipherSuite(0xfefe);
    assert!(matches!(
        bad.verify(&crypto(), key, &context),
        Err(MsgError::UnsupportedCipherSuite(0xfefe))
    ));
}
