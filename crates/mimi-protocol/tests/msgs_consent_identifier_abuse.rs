//! ConsentEntry / ConsentScope (-06 §5.7), identifier query (-06 §5.8) and
//! abuse reports (-06 §5.9).

mod common;

use common::*;
use mimi_protocol::msgs::{
    AbuseReport, AbuseType, AbusiveMessage, ConsentEntry, ConsentOperation, ConsentScope,
    FieldSource, Frank, IdentifierQueryCode, IdentifierRequest, IdentifierResponse, ProfileField,
    QueryElement, SearchIdentifierType, SearchType, UserProfile,
};
use mimi_protocol::{DecodeError, decode_exact, encode};
use openmls::prelude::AppDataDictionary;
use proptest::prelude::*;
use proptest::sample::select;

fn operation() -> impl Strategy<Value = ConsentOperation> {
    select(vec![
        ConsentOperation::Cancel,
        ConsentOperation::Request,
        ConsentOperation::Grant,
        ConsentOperation::Revoke,
    ])
}

fn consent_entry() -> impl Strategy<Value = ConsentEntry> {
    (
        operation(),
        uri(),
        uri(),
        prop::option::of(uri()),
        prop::collection::vec(key_package_in(), 0..3),
        app_data_dictionary(),
    )
        .prop_map(|(op, r, t, room, kps, ext)| ConsentEntry {
            consent_operation: op,
            requester_uri: r,
            target_uri: t,
            room_id: room,
            client_key_packages: if op == ConsentOperation::Grant {
                kps
            } else {
                vec![]
            },
            consent_extensions: ext,
        })
}

fn scope() -> impl Strategy<Value = ConsentScope> {
    (uri(), uri(), prop::option::of(uri())).prop_map(|(r, t, room)| ConsentScope {
        requester_uri: r,
        target_uri: t,
        room_id: room,
    })
}

fn search_type() -> impl Strategy<Value = SearchType> {
    prop_oneof![
        Just(SearchType::Handle),
        Just(SearchType::Nick),
        Just(SearchType::Email),
        Just(SearchType::Phone),
        Just(SearchType::PartialName),
        Just(SearchType::WholeProfile),
        vlbytes(20).prop_map(|c| SearchType::OidcStdClaim { claim_name: c }),
        vlbytes(20).prop_map(|p| SearchType::VcardField { property_name: p }),
    ]
}

fn query_element() -> impl Strategy<Value = QueryElement> {
    (search_type(), vlbytes_wide()).prop_map(|(t, v)| QueryElement {
        search_type: t,
        search_value: v,
    })
}

fn identifier_request() -> impl Strategy<Value = IdentifierRequest> {
    (
        prop::collection::vec(query_element(), 0..4),
        app_data_dictionary(),
    )
        .prop_map(|(q, e)| IdentifierRequest {
            query_elements: q,
            id_request_extensions: e,
        })
}

fn profile_field() -> impl Strategy<Value = ProfileField> {
    (
        select(vec![FieldSource::OidcStdClaim, FieldSource::VcardField]),
        tls_string(),
        vlbytes(30),
    )
        .prop_map(|(s, n, v)| ProfileField {
            field_source: s,
            field_name: n,
            field_value: v,
        })
}

fn user_profile() -> impl Strategy<Value = UserProfile> {
    (uri(), prop::collection::vec(profile_field(), 0..4)).prop_map(|(u, f)| UserProfile {
        stable_uri: u,
        fields: f,
    })
}

fn identifier_response() -> impl Strategy<Value = IdentifierResponse> {
    (
        select(vec![
            IdentifierQueryCode::Success,
            IdentifierQueryCode::NotFound,
            IdentifierQueryCode::Ambiguous,
            IdentifierQueryCode::Forbidden,
            IdentifierQueryCode::UnsupportedField,
        ]),
        prop::collection::vec(uri(), 0..3),
        prop::collection::vec(user_profile(), 0..3),
        app_data_dictionary(),
    )
        .prop_map(|(c, u, p, e)| IdentifierResponse {
            response_code: c,
            uri: u,
            found_profiles: p,
            id_response_extensions: e,
        })
}

fn frank() -> impl Strategy<Value = Frank> {
    (any::<[u8; 32]>(), cipher_suite(), vlbytes(80)).prop_map(|(f, c, s)| Frank {
        server_frank: f,
        franking_signature_ciphersuite: c,
        franking_integrity_signature: s,
    })
}

fn abusive_message() -> impl Strategy<Value = AbusiveMessage> {
    (vlbytes_wide(), frank(), any::<u64>()).prop_map(|(c, f, t)| AbusiveMessage {
        message_content: c,
        frank: f,
        accepted_timestamp: t,
    })
}

fn abuse_report() -> impl Strategy<Value = AbuseReport> {
    (
        uri(),
        uri(),
        any::<u8>(),
        vlbytes_wide(),
        prop::collection::vec(abusive_message(), 0..3),
        app_data_dictionary(),
    )
        .prop_map(|(r, a, code, note, m, e)| AbuseReport {
            reporting_user: r,
            alleged_abuser_uri: a,
            reason_code: AbuseType { code },
            note,
            messages: m,
            abuse_extensions: e,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn consent_entry_round_trips(c in consent_entry()) {
        round_trip(&c);
        let s = c.scope();
        prop_assert_eq!(&s.requester_uri, &c.requester_uri);
    }

    #[test]
    fn consent_scope_round_trips(s in scope()) { round_trip(&s); }

    #[test]
    fn query_element_round_trips(q in query_element()) { round_trip(&q); }

    #[test]
    fn identifier_request_round_trips(r in identifier_request()) { round_trip(&r); }

    #[test]
    fn profile_field_round_trips(f in profile_field()) { round_trip(&f); }

    #[test]
    fn user_profile_round_trips(p in user_profile()) { round_trip(&p); }

    #[test]
    fn identifier_response_round_trips(r in identifier_response()) { round_trip(&r); }

    #[test]
    fn abusive_message_round_trips(m in abusive_message()) { round_trip(&m); }

    #[test]
    fn abuse_report_round_trips(r in abuse_report()) { round_trip(&r); }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_exact::<ConsentEntry>(&bytes);
        let _ = decode_exact::<IdentifierRequest>(&bytes);
        let _ = decode_exact::<IdentifierResponse>(&bytes);
        let _ = decode_exact::<AbuseReport>(&bytes);
        let _ = decode_exact::<mimi_protocol::msgs::FanoutMessage>(&bytes);
        let _ = decode_exact::<mimi_protocol::msgs::HandshakeBundle>(&bytes);
        let _ = decode_exact::<mimi_protocol::msgs::KeyMaterialResponse>(&bytes);
        let _ = decode_exact::<mimi_protocol::msgs::GroupInfoResponse>(&bytes);
        let _ = decode_exact::<mimi_protocol::msgs::SubmitMessageResponse>(&bytes);
        let _ = decode_exact::<mimi_protocol::msgs::UpdateRoomResponse>(&bytes);
    }
}

fn dict() -> AppDataDictionary {
    let mut d = AppDataDictionary::new();
    d.insert(0x0022, vec![1, 2, 3]);
    d
}

#[test]
fn consent_wire_and_errors() {
    let e = ConsentEntry {
        consent_operation: ConsentOperation::Request,
        requester_uri: "a".into(),
        target_uri: "b".into(),
        room_id: None,
        client_key_packages: vec![],
        consent_extensions: AppDataDictionary::new(),
    };
    let bytes = round_trip(&e);
    assert_eq!(bytes, [1, 1, b'a', 1, b'b', 0, 0]);
    assert_strict::<ConsentEntry>(&bytes);
    assert_rejects_non_minimal::<ConsentEntry>(&bytes, 1);
    // Unknown operation.
    assert!(decode_exact::<ConsentEntry>(&[4, 1, b'a', 1, b'b', 0, 0]).is_err());
    // Key packages with a non-grant refuse to encode.
    let mut bad = e.clone();
    bad.client_key_packages = vec![fx().key_packages[0].clone()];
    assert!(encode(&bad).is_err());

    let grant = ConsentEntry {
        consent_operation: ConsentOperation::Grant,
        requester_uri: "mimi://a.example/u/alice".into(),
        target_uri: "mimi://b.example/u/bob".into(),
        room_id: Some("mimi://hub.example/r/room".into()),
        client_key_packages: fx().key_packages.clone(),
        consent_extensions: dict(),
    };
    let bytes = round_trip(&grant);
    assert_strict::<ConsentEntry>(&bytes);

    let s = ConsentScope {
        requester_uri: "a".into(),
        target_uri: "b".into(),
        room_id: Some("r".into()),
    };
    let bytes = round_trip(&s);
    assert_eq!(bytes, [1, b'a', 1, b'b', 1, 1, b'r']);
    assert_strict::<ConsentScope>(&bytes);
    assert_rejects_non_minimal::<ConsentScope>(&bytes, 5);
}

#[test]
fn identifier_wire_and_errors() {
    let q = QueryElement {
        search_type: SearchType::OidcStdClaim {
            claim_name: b"given_name".to_vec().into(),
        },
        search_value: b"Alice".to_vec().into(),
    };
    assert_eq!(
        q.search_type.identifier_type(),
        SearchIdentifierType::OidcStdClaim
    );
    let bytes = round_trip(&q);
    assert_eq!(&bytes[..2], &[7, 10]);
    assert_strict::<QueryElement>(&bytes);
    assert_rejects_non_minimal::<QueryElement>(&bytes, 1);
    // Handle has no claim name.
    assert_eq!(
        encode(&QueryElement {
            search_type: SearchType::Handle,
            search_value: vec![b'x'].into()
        })
        .unwrap(),
        [1, 1, b'x']
    );
    // reserved(0) and unknown(9) types.
    assert!(decode_exact::<QueryElement>(&[0, 0]).is_err());
    assert!(decode_exact::<QueryElement>(&[9, 0]).is_err());

    let req = IdentifierRequest {
        query_elements: vec![q.clone()],
        id_request_extensions: dict(),
    };
    let bytes = round_trip(&req);
    assert_strict::<IdentifierRequest>(&bytes);
    assert_rejects_non_minimal::<IdentifierRequest>(&bytes, 0);

    let resp = IdentifierResponse {
        response_code: IdentifierQueryCode::Success,
        uri: vec!["mimi://x.example/u/xavier".into()],
        found_profiles: vec![UserProfile {
            stable_uri: "mimi://x.example/u/xavier".into(),
            fields: vec![ProfileField {
                field_source: FieldSource::VcardField,
                field_name: "ORG".into(),
                field_value: b"XYZ".to_vec().into(),
            }],
        }],
        id_response_extensions: AppDataDictionary::new(),
    };
    let bytes = round_trip(&resp);
    assert_strict::<IdentifierResponse>(&bytes);
    assert_rejects_non_minimal::<IdentifierResponse>(&bytes, 1);
    let mut bad = bytes.clone();
    bad[0] = 5;
    assert!(decode_exact::<IdentifierResponse>(&bad).is_err());

    // FieldSource reserved(0) and a value between the defined ones.
    for code in [0u8, 1, 6, 9] {
        assert!(decode_exact::<ProfileField>(&[code, 0, 0]).is_err());
    }
    // fieldName must be UTF-8.
    assert!(decode_exact::<ProfileField>(&[7, 1, 0xc3, 0]).is_err());
    assert!(decode_exact::<ProfileField>(&[7, 2, 0xc3, 0xa9, 0]).is_ok());
}

#[test]
fn abuse_wire_and_errors() {
    let report = AbuseReport {
        reporting_user: "".into(),
        alleged_abuser_uri: "mimi://b.example/u/mallory".into(),
        reason_code: AbuseType::RESERVED,
        note: b"spam".to_vec().into(),
        messages: vec![AbusiveMessage {
            message_content: vec![0xa5; 100].into(),
            frank: Frank {
                server_frank: [9; 32],
                franking_signature_ciphersuite: CS.into(),
                franking_integrity_signature: vec![1; 64].into(),
            },
            accepted_timestamp: 99,
        }],
        abuse_extensions: dict(),
    };
    let bytes = round_trip(&report);
    assert_strict::<AbuseReport>(&bytes);
    assert_rejects_non_minimal::<AbuseReport>(&bytes, 1);
    // Trailing byte is reported as such.
    let mut longer = bytes.clone();
    longer.extend([1, 2]);
    assert!(matches!(
        decode_exact::<AbuseReport>(&longer),
        Err(DecodeError::TrailingBytes(2))
    ));

    let m = &report.messages[0];
    let bytes = round_trip(m);
    assert_strict::<AbusiveMessage>(&bytes);
    // message_content has a 2-byte prefix (100 bytes): 0x40 0x64. A 4-byte
    // prefix for the same length is non-minimal.
    assert_eq!(&bytes[..2], &[0x40, 100]);
    let mut patched = vec![0x80, 0, 0, 100];
    patched.extend(&bytes[2..]);
    assert!(decode_exact::<AbusiveMessage>(&patched).is_err());
}
