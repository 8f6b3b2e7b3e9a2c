//! Key material and GroupInfo requests (-06 §5.2, §5.6), rooms with a hub
//! external sender and room metadata.

mod common;

use common::*;
use mimi_client::{
    Device, GROUP_INFO_ENCRYPTION_LABEL, RoomOptions, RoomStatus, encrypt_with_label,
};
use mimi_protocol::Protocol;
use mimi_protocol::components::{RoomMetaData, UTF8String, Uri};
use mimi_protocol::msgs::{
    GroupInfoCode, GroupInfoRatchetTreeTbe, GroupInfoResponseTbs, RatchetTreeOption,
};
use mimi_room::policy::default_role::MEMBER;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;

fn hub_key() -> (SignatureKeyPair, ExternalSender) {
    let signer = SignatureKeyPair::new(mimi_client::CIPHERSUITE.signature_algorithm()).unwrap();
    let sender = ExternalSender::new(
        signer.public().into(),
        BasicCredential::new(b"mimi://a.example".to_vec()).into(),
    );
    (signer, sender)
}

fn metadata(name: &str) -> RoomMetaData {
    RoomMetaData {
        room_uri: Uri::new(ROOM),
        room_name: UTF8String::new(name).unwrap(),
        ..Default::default()
    }
}

#[test]
fn new_device_joins_from_a_group_info_response() {
    let (hub_signer, hub_sender) = hub_key();
    let options = RoomOptions {
        metadata: Some(metadata("Clubhouse")),
        ..Default::default()
    };
    let mut net = Net::create_with(
        ALICE,
        Some(mimi_protocol::msgs::group_info::external_sender_parts(&hub_sender).unwrap()),
        options,
    );
    assert_eq!(
        net.device(ALICE).room_metadata(ROOM).unwrap(),
        Some(metadata("Clubhouse"))
    );

    // Alice's phone asks the hub for the GroupInfo (-06 §5.6).
    let phone = "mimi://a.example/d/alice/phone";
    net.new_device(phone);
    let (request, key) = net.device(phone).group_info_request(ROOM, None).unwrap();
    let request = on_the_wire(&request);
    request.verify(&RustCrypto::default()).unwrap();

    // The hub answers, encrypting to the request's key.
    let tbe = GroupInfoRatchetTreeTbe {
        group_info: net.group_info.clone(),
        ratchet_tree_option: RatchetTreeOption::Full(net.ratchet_tree.clone()),
        pending_proposals: Vec::new(),
    };
    let crypto = RustCrypto::default();
    let encrypted = encrypt_with_label(
        &crypto,
        mimi_client::CIPHERSUITE.into(),
        request.group_info_public_key.as_slice(),
        GROUP_INFO_ENCRYPTION_LABEL,
        ROOM.as_bytes(),
        &mimi_protocol::encode(&tbe).unwrap(),
    )
    .unwrap();
    let response = GroupInfoResponseTbs {
        protocol: Protocol::Mls10,
        room_id: ROOM.as_bytes().to_vec().into(),
        status: GroupInfoCode::Success,
        cipher_suite: mimi_client::CIPHERSUITE.into(),
        hub_sender: hub_sender.clone(),
        encrypted_groupinfo_and_tree: encrypted,
    }
    .sign(&hub_signer)
    .unwrap();
    let response = on_the_wire(&response);

    // A response signed by somebody else is refused.
    let (other_signer, other_sender) = hub_key();
    let mut forged = response.tbs().unwrap();
    forged.hub_sender = other_sender;
    let forged = forged.sign(&other_signer).unwrap();
    assert!(
        net.device(phone)
            .open_group_info_response(&key, &forged)
            .is_err()
    );

    let req = net
        .device(phone)
        .join_from_group_info_response(&key, &response)
        .unwrap();
    net.update(phone, req).unwrap();
    assert_eq!(
        net.device(phone).room_status(ROOM).unwrap(),
        RoomStatus::Active
    );
    assert_eq!(
        net.device(phone).room_metadata(ROOM).unwrap(),
        Some(metadata("Clubhouse"))
    );
    net.say(phone, "hello from the phone");
    assert_eq!(net.texts(ALICE), ["hello from the phone"]);

    // Room metadata changes travel as AppDataUpdate (-06 §7.6).
    let req = net
        .device(ALICE)
        .set_room_metadata(ROOM, &metadata("Clubhouse 2"))
        .unwrap();
    net.update(ALICE, req).unwrap();
    assert_eq!(
        net.device(phone).room_metadata(ROOM).unwrap(),
        Some(metadata("Clubhouse 2"))
    );
}

#[test]
fn key_material_request_is_signed_by_the_device() {
    let alice = Device::new(ALICE).unwrap();
    let request = alice.key_material_request(&user(BOB), Some(ROOM)).unwrap();
    let request = on_the_wire(&request);
    request
        .verify(
            &RustCrypto::default(),
            mimi_client::CIPHERSUITE.signature_algorithm(),
        )
        .unwrap();
    assert_eq!(request.target_user.as_str(), Some(user(BOB).as_str()));
    assert_eq!(request.requesting_user.as_str(), Some(user(ALICE).as_str()));
}

#[test]
fn key_material_response_feeds_add_user() {
    use mimi_protocol::msgs::{
        ClientKeyMaterial, ClientMaterial, KeyMaterialResponse, KeyMaterialUserCode,
    };
    let mut net = Net::create(ALICE);
    net.new_device(BOB);
    let kp = net.key_packages(BOB, 1).remove(0);
    let response = on_the_wire(&KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: KeyMaterialUserCode::Success,
        user_uri: mimi_protocol::IdentifierUri::new(user(BOB)),
        clients: vec![
            ClientKeyMaterial {
                client_uri: mimi_protocol::IdentifierUri::new(BOB),
                material: ClientMaterial::Success(kp),
            },
            ClientKeyMaterial {
                client_uri: mimi_protocol::IdentifierUri::new("mimi://b.example/d/bob/tv"),
                material: ClientMaterial::KeyMaterialExhausted,
            },
        ],
    });
    let kps: Vec<_> = mimi_client::key_packages_from_response(&response)
        .into_iter()
        .map(|(_, kp)| kp)
        .collect();
    assert_eq!(kps.len(), 1);
    let req = net
        .device(ALICE)
        .add_user(ROOM, &user(BOB), MEMBER, kps)
        .unwrap();
    net.update(ALICE, req).unwrap();
    assert_eq!(net.device(BOB).epoch(ROOM).unwrap(), 1);
}

#[test]
fn created_room_encodings() {
    let mut alice = Device::new(ALICE).unwrap();
    let created = alice
        .create_room(ROOM, None, RoomOptions::default())
        .unwrap();
    let message: MlsMessageIn =
        mimi_protocol::decode_exact(&created.group_info_message_bytes().unwrap()).unwrap();
    assert!(matches!(message.extract(), MlsMessageBodyIn::GroupInfo(_)));
    let _tree: RatchetTreeIn =
        mimi_protocol::decode_exact(&created.ratchet_tree_bytes().unwrap()).unwrap();
    assert!(matches!(
        alice.create_room(ROOM, None, RoomOptions::default()),
        Err(mimi_client::Error::RoomExists(_))
    ));
    assert!(
        alice
            .create_room(
                "mimi://a.example/u/not-a-room",
                None,
                RoomOptions::default()
            )
            .is_err()
    );
    assert_eq!(
        mimi_client::group_id_of_room(&mimi_protocol::MimiUri::parse(ROOM).unwrap())
            .unwrap()
            .as_slice(),
        b"mimi://a.example/g/clubhouse"
    );
}

#[test]
fn franked_messages_are_verified_and_kept() {
    use mimi_protocol::components::FrankingAgentData;
    let (franker, sender) = hub_key();
    let (key, credential) =
        mimi_protocol::msgs::group_info::external_sender_parts(&sender).unwrap();
    let options = RoomOptions {
        franking_agent: Some(FrankingAgentData {
            franking_signature_key: key,
            credential,
        }),
        ..Default::default()
    };
    let mut net = Net::create_with(ALICE, None, options);
    net.franker = Some(franker);
    net.add_member(ALICE, BOB).unwrap();
    let id = net.say(ALICE, "franked");
    let received = net.device(BOB).history(ROOM).unwrap();
    let m = received.iter().find(|m| m.id == id).unwrap();
    assert!(m.franking_tag.is_some());
    let frank = m.frank.clone().expect("frank verified and stored");
    // Survives persistence.
    let bob = Device::from_bytes(&net.device(BOB).to_bytes().unwrap()).unwrap();
    assert_eq!(bob.history(ROOM).unwrap()[0].frank, Some(frank));

    // A frank signed with another key is dropped.
    let (impostor, _) = hub_key();
    net.franker = Some(impostor);
    let id = net.say(ALICE, "forged frank");
    let received = net.device(BOB).history(ROOM).unwrap();
    let m = received.iter().find(|m| m.id == id).unwrap();
    assert!(m.frank.is_none());
}
