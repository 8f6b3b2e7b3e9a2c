//! KeyMaterialRequest / KeyMaterialResponse (-06 §5.2).

mod common;

use common::*;
use mimi_protocol::msgs::{
    ClientKeyMaterial, ClientMaterial, KeyMaterialClientCode, KeyMaterialRequest,
    KeyMaterialRequestTbs, KeyMaterialResponse, KeyMaterialUserCode, MsgError,
};
use mimi_protocol::{DecodeError, Protocol, decode_exact, encode};
use proptest::prelude::*;
use proptest::sample::select;

fn tbs() -> impl Strategy<Value = KeyMaterialRequestTbs> {
    (
        uri(),
        uri(),
        uri(),
        prop::collection::vec(cipher_suite(), 1..5),
        select(fx().required_capabilities.clone()),
        signature_key(),
        credential(),
    )
        .prop_map(|(ru, tu, room, cs, rc, sk, cred)| KeyMaterialRequestTbs {
            protocol: Protocol::Mls10,
            requesting_user: ru,
            target_user: tu,
            room_id: room,
            acceptable_ciphersuites: cs,
            required_capabilities: rc,
            requester_signature_key: sk,
            requester_credential: cred,
        })
}

fn request() -> impl Strategy<Value = KeyMaterialRequest> {
    (tbs(), vlbytes_wide()).prop_map(|(t, s)| KeyMaterialRequest::from_parts(t, s))
}

fn user_code() -> impl Strategy<Value = KeyMaterialUserCode> {
    select(vec![
        KeyMaterialUserCode::Success,
        KeyMaterialUserCode::PartialSuccess,
        KeyMaterialUserCode::IncompatibleProtocol,
        KeyMaterialUserCode::NoCompatibleMaterial,
        KeyMaterialUserCode::UserUnknown,
        KeyMaterialUserCode::NoConsent,
        KeyMaterialUserCode::NoConsentForThisRoom,
        KeyMaterialUserCode::UserDeleted,
    ])
}

fn client() -> impl Strategy<Value = ClientKeyMaterial> {
    let material = prop_oneof![
        key_package_in().prop_map(ClientMaterial::Success),
        Just(ClientMaterial::KeyMaterialExhausted),
        prop::option::of(select(fx().capabilities.clone()))
            .prop_map(ClientMaterial::NothingCompatible),
    ];
    (uri(), material).prop_map(|(client_uri, material)| ClientKeyMaterial {
        client_uri,
        material,
    })
}

fn response() -> impl Strategy<Value = KeyMaterialResponse> {
    (user_code(), uri(), prop::collection::vec(client(), 0..3)).prop_map(|(s, u, c)| {
        KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status: s,
            user_uri: u,
            clients: c,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn request_tbs_round_trips(t in tbs()) { round_trip(&t); }

    #[test]
    fn request_round_trips(r in request()) {
        round_trip(&r);
        prop_assert_eq!(KeyMaterialRequest::from_parts(r.tbs(), r.key_material_request_signature.clone()), r);
    }

    #[test]
    fn client_round_trips(c in client()) { round_trip(&c); }

    #[test]
    fn response_round_trips(r in response()) { round_trip(&r); }
}

fn sample_request() -> KeyMaterialRequest {
    let f = fx();
    KeyMaterialRequestTbs {
        protocol: Protocol::Mls10,
        requesting_user: "mimi://a.example/u/alice".into(),
        target_user: "mimi://b.example/u/bob".into(),
        room_id: "mimi://hub.example/r/room".into(),
        acceptable_ciphersuites: vec![CS.into()],
        required_capabilities: f.required_capabilities[1].clone(),
        requester_signature_key: f.signature_keys[0].clone(),
        requester_credential: f.credentials[0].clone(),
    }
    .sign(&f.signer)
    .unwrap()
}

#[test]
fn request_signature_verifies_and_flipped_byte_fails() {
    let req = sample_request();
    let scheme = CS.signature_algorithm();
    req.verify(&crypto(), scheme).unwrap();

    // Tamper with a signed field.
    let mut tampered = req.clone();
    tampered.target_user = "mimi://b.example/u/mallory".into();
    assert!(matches!(
        tampered.verify(&crypto(), scheme),
        Err(MsgError::InvalidSignature)
    ));

    // Flip a byte of the signature.
    let mut sig = req.key_material_request_signature.as_slice().to_vec();
    sig[0] ^= 1;
    let mut tampered = req.clone();
    tampered.key_material_request_signature = sig.into();
    assert!(tampered.verify(&crypto(), scheme).is_err());

    // Flip a byte in the encoded request (inside the room id).
    let mut bytes = encode(&req).unwrap();
    let pos = bytes.windows(4).position(|w| w == b"room").unwrap();
    bytes[pos] ^= 0x20;
    let decoded: KeyMaterialRequest = decode_exact(&bytes).unwrap();
    assert!(decoded.verify(&crypto(), scheme).is_err());
}

#[test]
fn request_strict_decoding() {
    let req = sample_request();
    let bytes = encode(&req).unwrap();
    assert_strict::<KeyMaterialRequest>(&bytes);
    // protocol(1) then requestingUser's length prefix at offset 1.
    assert_rejects_non_minimal::<KeyMaterialRequest>(&bytes, 1);
    // Unknown protocol.
    let mut bad = bytes.clone();
    bad[0] = 2;
    assert!(matches!(
        decode_exact::<KeyMaterialRequest>(&bad),
        Err(DecodeError::Malformed(_))
    ));
    bad[0] = 0;
    assert!(decode_exact::<KeyMaterialRequest>(&bad).is_err());
}

#[test]
fn response_strict_decoding() {
    let f = fx();
    let resp = KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: KeyMaterialUserCode::PartialSuccess,
        user_uri: "mimi://b.example/u/bob".into(),
        clients: vec![
            ClientKeyMaterial {
                client_uri: "mimi://b.example/d/bob/1".into(),
                material: ClientMaterial::Success(f.key_packages[0].clone()),
            },
            ClientKeyMaterial {
                client_uri: "mimi://b.example/d/bob/2".into(),
                material: ClientMaterial::KeyMaterialExhausted,
            },
            ClientKeyMaterial {
                client_uri: "mimi://b.example/d/bob/3".into(),
                material: ClientMaterial::NothingCompatible(Some(f.capabilities[1].clone())),
            },
        ],
    };
    let bytes = round_trip(&resp);
    assert_strict::<KeyMaterialResponse>(&bytes);
    assert_rejects_non_minimal::<KeyMaterialResponse>(&bytes, 2);
    // Unknown user code.
    let mut bad = bytes.clone();
    bad[1] = 8;
    assert!(decode_exact::<KeyMaterialResponse>(&bad).is_err());

    // Client with unknown status code.
    let c = ClientKeyMaterial {
        client_uri: "x".into(),
        material: ClientMaterial::KeyMaterialExhausted,
    };
    assert_eq!(
        c.client_status(),
        KeyMaterialClientCode::KeyMaterialExhausted
    );
    let mut cb = encode(&c).unwrap();
    assert_eq!(cb, [1, 1, b'x']);
    cb[0] = 3;
    assert!(decode_exact::<ClientKeyMaterial>(&cb).is_err());
    // optional<Capabilities> with a bad presence byte.
    assert!(decode_exact::<ClientKeyMaterial>(&[2, 0, 2]).is_err());
    assert_eq!(
        decode_exact::<ClientKeyMaterial>(&[2, 0, 0])
            .unwrap()
            .material,
        ClientMaterial::NothingCompatible(None)
    );
}

#[test]
fn clients_allowed_policy() {
    let resp = KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: KeyMaterialUserCode::NoConsent,
        user_uri: "u".into(),
        clients: vec![ClientKeyMaterial {
            client_uri: "c".into(),
            material: ClientMaterial::KeyMaterialExhausted,
        }],
    };
    assert!(!resp.clients_allowed());
}
