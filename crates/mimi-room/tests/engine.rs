//! The hub's decisions (mimi_room::engine) driven by real openmls clients,
//! without sockets or a database: what a server would store, fan out and
//! answer for create, update, submit, groupInfo and reportAbuse.

use mimi_protocol::msgs::{
    GroupInfoOption, HandshakeBody, HandshakeBundle, RatchetTreeOption, SubmitMessageRequest,
    UpdateRequest, UpdateResult,
};
use mimi_protocol::{IdentifierUri, MimiUri, Protocol};
use mimi_room::engine::{AcceptedUpdate, HubEngine, Requester, UpdateDecision};
use mimi_room::external_senders::{ExternalSendersViolation, GroupContextExtensionsViolation};
use mimi_room::keys::{
    FrankingKey, HubKey, generate_hmac_key_bytes, generate_signer_bytes,
    supported_signature_schemes,
};
use mimi_room::policy::default_role::MEMBER;
use mimi_room::rejection::{CreateRoomRejection, ReportRejection};
use mimi_room::stored::StoredRoom;
use mimi_room::{SubmitRejection, UpdateRejection};
use mimi_testkit::clients::*;
use openmls::prelude::*;
use tls_codec::Serialize as _;

const ALICE: &str = "mimi://a.example/d/alice/laptop";
const BOB: &str = "mimi://b.example/d/bob/phone";
const ROOM: &str = "mimi://a.example/r/engine";

const P256: Ciphersuite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;

/// A hub with a signature and a franking key of every supported scheme,
/// as the server loads them.
fn engine() -> HubEngine {
    let hmac = generate_hmac_key_bytes().unwrap();
    let mut hub_keys = Vec::new();
    let mut franking_keys = Vec::new();
    for scheme in supported_signature_schemes() {
        let signer = generate_signer_bytes(scheme).unwrap();
        hub_keys.push(HubKey::from_bytes(&signer, "a.example").unwrap());
        let signer = generate_signer_bytes(scheme).unwrap();
        franking_keys.push(FrankingKey::from_bytes(&signer, &hmac, "a.example").unwrap());
    }
    HubEngine::new("a.example", hub_keys, franking_keys)
}

fn uri(s: &str) -> MimiUri {
    MimiUri::parse(s).unwrap()
}

/// `MLSMessage(GroupInfo)` and the TLS ratchet tree, as a creator uploads.
fn creation_bytes(client: &TestClient) -> (Vec<u8>, Vec<u8>) {
    let (tree, info) = client.group_info();
    // MLSMessage: version mls10 (1), wire_format mls_group_info (4).
    let mut message = vec![0, 1, 0, 4];
    message.extend(info.tls_serialize_detached().unwrap());
    (message, tree.tls_serialize_detached().unwrap())
}

fn device(s: &str) -> Requester {
    let device = uri(s);
    Requester::Device {
        user: uri(&user_of(s)),
        device,
    }
}

fn commit_request(
    commit: MlsMessageIn,
    welcome: Option<Welcome>,
    group_info: openmls::messages::group_info::VerifiableGroupInfo,
) -> UpdateRequest {
    UpdateRequest {
        bundle: HandshakeBundle {
            proposal_or_commit: commit,
            body: HandshakeBody::Commit {
                welcome,
                group_info_option: GroupInfoOption::Full(group_info),
                ratchet_tree_option: RatchetTreeOption::DistributionService,
            },
        },
    }
}

/// Alice's room as the hub stores it.
fn alice_room(hub: &HubEngine) -> (TestClient, Vec<u8>) {
    let mut alice = TestClient::new(ALICE).hosted_by(hub.external_sender(CIPHERSUITE).unwrap());
    alice.create_default_room(&[]);
    let (info, tree) = creation_bytes(&alice);
    let created = hub.create_room(&uri(ALICE), ROOM, &info, &tree).unwrap();
    assert_eq!(created.room_id.as_str(), ROOM);
    assert_eq!(created.epoch, 0);
    (alice, created.state)
}

#[test]
fn creation_is_refused_for_foreign_rooms_bad_uris_and_non_members() {
    let hub = engine();
    let mut alice = TestClient::new(ALICE).hosted_by(hub.external_sender(CIPHERSUITE).unwrap());
    alice.create_default_room(&[]);
    let (info, tree) = creation_bytes(&alice);
    assert!(matches!(
        hub.create_room(&uri(ALICE), "mimi://b.example/r/x", &info, &tree),
        Err(CreateRoomRejection::ForeignDomain { .. })
    ));
    assert_eq!(
        hub.create_room(&uri(ALICE), "mimi://a.example/u/alice", &info, &tree)
            .err(),
        Some(CreateRoomRejection::NotARoomUri)
    );
    assert_eq!(
        hub.create_room(&uri("mimi://a.example/d/eve/pc"), ROOM, &info, &tree)
            .err(),
        Some(CreateRoomRejection::CreatorNotMember)
    );
    assert!(matches!(
        hub.create_room(&uri(ALICE), ROOM, &info[4..], &tree),
        Err(CreateRoomRejection::GroupInfo { .. })
    ));
}

#[test]
fn an_accepted_add_stores_fans_out_and_routes_the_welcome() {
    let hub = engine();
    let (mut alice, state) = alice_room(&hub);
    let mut bob = TestClient::new(BOB);
    let (commit, welcome, group_info) = alice.commit_with_group_info(
        vec![participant_update(&add_participant(&bob.user(), MEMBER))],
        vec![bob.key_package()],
    );
    let request = commit_request(commit, welcome, group_info);

    // A provider may not commit for another provider's user (-06 §4.1).
    let refused = hub
        .update(
            &state,
            &Requester::Provider("c.example".into()),
            &request,
            5,
        )
        .unwrap();
    assert!(matches!(
        refused,
        UpdateDecision::Rejected(UpdateRejection::CommitterNotRequesters { .. })
    ));

    let UpdateDecision::Accepted(AcceptedUpdate {
        commit,
        new_epoch,
        new_state,
        fanout,
        routes,
        response,
        ..
    }) = hub.update(&state, &device(ALICE), &request, 5).unwrap()
    else {
        panic!("the add was refused");
    };
    assert!(commit);
    assert_eq!(new_epoch, 1);
    assert!(matches!(
        response.result,
        UpdateResult::Success {
            accepted_timestamp: 5
        }
    ));
    // The commit to every member provider, then the Welcome to Bob's.
    assert_eq!(fanout.len(), 2);
    assert_eq!(
        fanout[0].destinations.iter().collect::<Vec<_>>(),
        ["a.example", "b.example"]
    );
    assert_eq!(
        fanout[1].destinations.iter().collect::<Vec<_>>(),
        ["b.example"]
    );
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].provider, "b.example");
    let stored = StoredRoom::decode(&new_state).unwrap();
    assert_eq!(stored.hub.epoch(), 1);
    assert!(stored.latest_group_info.is_some());

    // The same commit again, on the new state: the room moved on.
    let again = hub.update(&new_state, &device(ALICE), &request, 6).unwrap();
    assert!(matches!(
        again,
        UpdateDecision::Rejected(UpdateRejection::WrongEpoch { current_epoch: 1 })
    ));
    let UpdateDecision::Rejected(rejection) = again else {
        unreachable!()
    };
    assert!(matches!(
        rejection.response().result,
        UpdateResult::WrongEpoch { current_epoch: 1 }
    ));
    alice.merge_pending();
    let _ = &mut bob;
}

#[test]
fn a_commit_with_a_stale_group_info_or_without_welcome_is_refused() {
    let hub = engine();
    let (mut alice, state) = alice_room(&hub);
    let (_, old_group_info) = alice.group_info();
    let bob = TestClient::new(BOB);
    let (commit, welcome, group_info) = alice.commit_with_group_info(
        vec![participant_update(&add_participant(&bob.user(), MEMBER))],
        vec![bob.key_package()],
    );
    let stale_group_info = commit_request(commit.clone(), welcome, old_group_info);
    let no_welcome = commit_request(commit, None, group_info);
    for (request, expected) in [
        (stale_group_info, UpdateRejection::GroupInfoMismatch),
        (no_welcome, UpdateRejection::WelcomeMissing),
    ] {
        let UpdateDecision::Rejected(rejection) =
            hub.update(&state, &device(ALICE), &request, 1).unwrap()
        else {
            panic!("accepted without {expected}");
        };
        assert_eq!(rejection, expected);
        assert!(matches!(
            rejection.response().result,
            UpdateResult::NotAllowed
        ));
    }
}

#[test]
fn submit_refuses_strangers_and_wrong_shapes() {
    let hub = engine();
    let (mut alice, state) = alice_room(&hub);
    let view = mimi_room::engine::SubmitView::new(&state).unwrap();
    let proposal = alice.self_remove();
    let request = |sender: &str, message: MlsMessageIn| SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: message,
        sending_uri: IdentifierUri::new(sender),
    };
    let decide = |requester: &Requester, request: &SubmitMessageRequest| match hub.submit(
        &view,
        &uri(ROOM),
        requester,
        request,
        1,
    ) {
        mimi_room::engine::SubmitDecision::Rejected(r) => r,
        other => panic!("accepted: {other:?}"),
    };
    // A handshake message is not an application message.
    assert_eq!(
        decide(
            &device(ALICE),
            &request("mimi://a.example/u/alice", proposal.clone())
        ),
        SubmitRejection::NotApplicationMessage
    );
    // b.example may not send as Alice.
    assert!(matches!(
        decide(
            &Requester::Provider("b.example".into()),
            &request("mimi://a.example/u/alice", proposal.clone())
        ),
        SubmitRejection::RequesterMayNotSendAs { .. }
    ));
    assert_eq!(
        decide(&device(ALICE), &request("not a uri", proposal)),
        SubmitRejection::SendingUri
    );
}

#[test]
fn group_info_needs_a_participant_that_may_add_its_own_clients() {
    let hub = engine();
    let (_alice, state) = alice_room(&hub);
    // No request can be built without a client; an outsider's signed
    // request is checked first, then refused on the policy.
    let dave = TestClient::new("mimi://d.example/d/dave/phone");
    let keys = openmls_rust_crypto::RustCrypto::default()
        .derive_hpke_keypair(CIPHERSUITE.hpke_config(), &[7u8; 32])
        .unwrap();
    let request = mimi_protocol::msgs::GroupInfoRequestTbs {
        protocol: Protocol::Mls10,
        cipher_suite: CIPHERSUITE.into(),
        requesting_signature_key: dave.signer.public().into(),
        requesting_credential: dave.credential.credential.clone(),
        group_info_public_key: keys.public.clone().into(),
        joining_code: None,
    }
    .sign(&dave.signer)
    .unwrap();
    let client = hub
        .check_group_info_request(&Requester::Provider("d.example".into()), &request)
        .unwrap();
    assert_eq!(
        hub.group_info(&state, &uri(ROOM), &client, &request, 0)
            .err(),
        Some(mimi_room::GroupInfoRejection::MayNotAddOwnClient)
    );
    // Another provider may not ask for Dave's client.
    assert_eq!(
        hub.check_group_info_request(&Requester::Provider("b.example".into()), &request)
            .err(),
        Some(mimi_room::GroupInfoRejection::NotRequestersClient)
    );
}

#[test]
fn a_report_without_messages_is_unverified_and_only_from_participants() {
    let hub = engine();
    let (_alice, state) = alice_room(&hub);
    let report = |reporter: &str| mimi_protocol::msgs::AbuseReport {
        reporting_user: IdentifierUri::new(reporter),
        alleged_abuser_uri: IdentifierUri::new("mimi://a.example/u/alice"),
        reason_code: mimi_protocol::msgs::AbuseType::RESERVED,
        note: Vec::new().into(),
        messages: Vec::new(),
        abuse_extensions: Default::default(),
    };
    // a.example has a participant (Alice): accepted, not verified.
    let accepted = hub
        .verify_report(
            &state,
            &uri(ROOM),
            "a.example",
            &report("mimi://a.example/u/al"),
        )
        .unwrap();
    assert!(!accepted.franks_verified);
    // b.example has none: nothing to verify, so refused.
    assert!(matches!(
        hub.verify_report(
            &state,
            &uri(ROOM),
            "b.example",
            &report("mimi://b.example/u/bob")
        ),
        Err(ReportRejection::UnverifiableFromStranger { .. })
    ));
    // The reporter must be a user of the source provider.
    assert!(matches!(
        hub.verify_report(
            &state,
            &uri(ROOM),
            "a.example",
            &report("mimi://b.example/u/bob")
        ),
        Err(ReportRejection::ReporterNotFromSource { .. })
    ));
}

// ---- cipher suites other than 0x0001 ----------------------------------

/// A signed GroupInfoRequest (-06 §5.6) of `client` on `cipher_suite`,
/// and the HPKE private key for its answer.
fn group_info_request(
    client: &TestClient,
    cipher_suite: mimi_protocol::msgs::CipherSuite,
) -> (mimi_protocol::msgs::GroupInfoRequest, Vec<u8>) {
    let hpke = client.ciphersuite.hpke_config();
    let keys = openmls_rust_crypto::RustCrypto::default()
        .derive_hpke_keypair(hpke, &[7u8; 32])
        .unwrap();
    let request = mimi_protocol::msgs::GroupInfoRequestTbs {
        protocol: Protocol::Mls10,
        cipher_suite,
        requesting_signature_key: client.signer.public().into(),
        requesting_credential: client.credential.credential.clone(),
        group_info_public_key: keys.public.clone().into(),
        joining_code: None,
    }
    .sign(&client.signer)
    .unwrap();
    (request, keys.private.to_vec())
}

/// Alice's room on P-256 with the hub's P-256 external sender and
/// franking agent, messages required to carry `frank_aad`.
fn alice_p256_room(hub: &HubEngine) -> (TestClient, Vec<u8>) {
    let mut alice = TestClient::with_ciphersuite(ALICE, P256);
    alice.create_room_with(
        &[(
            alice.user().as_str(),
            mimi_room::policy::default_role::ADMIN,
        )],
        mimi_room::policy::default_roles(),
        RoomExtras {
            external_sender: hub.external_sender(P256),
            franking_agent: hub.franking_agent(P256),
            require_frank_aad: true,
        },
    );
    let (info, tree) = creation_bytes(&alice);
    let created = hub.create_room(&uri(ALICE), ROOM, &info, &tree).unwrap();
    (alice, created.state)
}

#[test]
fn the_rooms_suite_picks_the_hubs_external_sender() {
    let hub = engine();
    let ed25519 = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
    assert_eq!(
        hub.supported_ciphersuites(),
        vec![
            ed25519,
            Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
            P256
        ]
    );
    assert_ne!(hub.external_sender(ed25519), hub.external_sender(P256));
    assert_ne!(hub.franking_agent(ed25519), hub.franking_agent(P256));
    // The provider has no P-384: the hub has no keys for it.
    let p384 = Ciphersuite::MLS_256_DHKEMP384_AES256GCM_SHA384_P384;
    assert_eq!(hub.external_sender(p384), None);
    assert_eq!(hub.franking_agent(p384), None);

    // A P-256 room listing the hub's P-256 key is hosted ...
    let (_alice, state) = alice_p256_room(&hub);
    assert!(StoredRoom::decode(&state).is_ok());
    // ... one listing its Ed25519 key is refused.
    let mut alice = TestClient::with_ciphersuite(ALICE, P256);
    alice.create_room_with(
        &[(
            alice.user().as_str(),
            mimi_room::policy::default_role::ADMIN,
        )],
        mimi_room::policy::default_roles(),
        RoomExtras {
            external_sender: hub.external_sender(ed25519),
            ..RoomExtras::default()
        },
    );
    let (info, tree) = creation_bytes(&alice);
    assert_eq!(
        hub.create_room(&uri(ALICE), ROOM, &info, &tree).err(),
        Some(CreateRoomRejection::ExternalSenders(
            ExternalSendersViolation::OtherHubKey { index: 0 }
        ))
    );
}

#[test]
fn a_p256_room_gets_group_info_signed_with_the_hubs_p256_key() {
    let hub = engine();
    let (_alice, state) = alice_p256_room(&hub);
    let laptop2 = TestClient::with_ciphersuite("mimi://a.example/d/alice/phone", P256);
    let (request, private_key) = group_info_request(&laptop2, P256.into());
    let client = hub
        .check_group_info_request(&Requester::Provider("a.example".into()), &request)
        .unwrap();
    let response = hub
        .group_info(&state, &uri(ROOM), &client, &request, 0)
        .unwrap();
    response
        .verify(&openmls_rust_crypto::RustCrypto::default())
        .unwrap();
    let mimi_protocol::msgs::GroupInfoResponseBody::Success(success) = &response.body else {
        panic!("not a success: {:?}", response.status())
    };
    assert_eq!(success.cipher_suite, P256.into());
    assert_eq!(Some(success.hub_sender.clone()), hub.external_sender(P256));
    let plaintext = mimi_protocol::msgs::group_info::decrypt_with_label(
        &openmls_rust_crypto::RustCrypto::default(),
        success.cipher_suite,
        &private_key,
        mimi_protocol::msgs::group_info::GROUP_INFO_ENCRYPTION_LABEL,
        ROOM.as_bytes(),
        &success.encrypted_groupinfo_and_tree,
    )
    .unwrap();
    let tbe: mimi_protocol::msgs::GroupInfoRatchetTreeTbe =
        mimi_protocol::decode_exact(&plaintext).unwrap();
    assert_eq!(tbe.group_info.group_context().ciphersuite(), P256);
    assert!(
        tbe.group_info
            .group_context()
            .extensions()
            .external_senders()
            .unwrap()
            .contains(&success.hub_sender)
    );
}

#[test]
fn suites_the_provider_lacks_are_refused() {
    let hub = engine();
    // groupInfo on P-384 (0x0007): the hub has no such key (R51).
    let alice = TestClient::new(ALICE);
    let (request, _) = group_info_request(&alice, mimi_protocol::msgs::CipherSuite(0x0007));
    assert_eq!(
        hub.check_group_info_request(&Requester::Provider("a.example".into()), &request)
            .err(),
        Some(mimi_room::GroupInfoRejection::UnsupportedCipherSuite {
            cipher_suite: 0x0007
        })
    );
    // A room whose GroupInfo names P-384: refused before its signature is
    // looked at. The suite is the GroupContext's second field, after the
    // MLSMessage header (4 octets) and the version (2).
    let mut creator = TestClient::new(ALICE);
    creator.create_default_room(&[]);
    let (mut info, tree) = creation_bytes(&creator);
    assert_eq!(info[6..8], [0, 1]);
    info[6..8].copy_from_slice(&[0, 7]);
    assert_eq!(
        hub.create_room(&uri(ALICE), ROOM, &info, &tree).err(),
        Some(CreateRoomRejection::InvalidRoom(
            mimi_room::RoomError::UnsupportedCipherSuite {
                cipher_suite: 0x0007
            }
        ))
    );
}

#[test]
fn p256_messages_are_franked_with_the_p256_key_and_reports_verify() {
    use mimi_content::{Disposition, MimiContent, NestedPart};
    let hub = engine();
    let (mut alice, state) = alice_p256_room(&hub);
    let mut content = MimiContent::new(
        [9; 16],
        Default::default(),
        NestedPart::single(Disposition::RENDER, "text/plain", b"hello".as_slice()),
    );
    content
        .extensions
        .set_sender_uri("mimi://a.example/u/alice");
    content.extensions.set_room_uri(ROOM);
    let bytes = content.to_cbor().unwrap();
    let tag = mimi_content::franking::franking_tag(&content.salt, &bytes);
    let request = SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: alice.application_message(&bytes, Some(tag)),
        sending_uri: IdentifierUri::new("mimi://a.example/u/alice"),
    };
    let view = mimi_room::engine::SubmitView::new(&state).unwrap();
    let mimi_room::engine::SubmitDecision::Accepted { response, .. } =
        hub.submit(&view, &uri(ROOM), &device(ALICE), &request, 1234)
    else {
        panic!("not accepted")
    };
    let mimi_protocol::msgs::SubmitStatus::Accepted {
        accepted_timestamp,
        frank: Some(frank),
    } = response.status
    else {
        panic!("accepted without a frank: {:?}", response.status)
    };
    // -06 §5.4.1: the room's suite, and the room's franking agent key.
    assert_eq!(frank.franking_signature_ciphersuite, P256.into());
    let context = mimi_protocol::msgs::ServerFrankingContext {
        sender_uri: IdentifierUri::new("mimi://a.example/u/alice"),
        room_uri: IdentifierUri::new(ROOM),
        accepted_timestamp,
    };
    let agent = hub.franking_agent(P256).unwrap();
    frank
        .verify(
            &openmls_rust_crypto::RustCrypto::default(),
            agent.franking_signature_key.as_slice(),
            &context,
        )
        .unwrap();
    let report = |frank: mimi_protocol::msgs::Frank| mimi_protocol::msgs::AbuseReport {
        reporting_user: IdentifierUri::new("mimi://a.example/u/alice"),
        alleged_abuser_uri: IdentifierUri::new("mimi://a.example/u/alice"),
        reason_code: mimi_protocol::msgs::AbuseType::RESERVED,
        note: Vec::new().into(),
        messages: vec![mimi_protocol::msgs::AbusiveMessage {
            message_content: bytes.clone().into(),
            frank,
            accepted_timestamp,
        }],
        abuse_extensions: Default::default(),
    };
    let verified = hub
        .verify_report(&state, &uri(ROOM), "a.example", &report(frank.clone()))
        .unwrap();
    assert!(verified.franks_verified);
    // The same frank claiming the Ed25519 suite is checked against the
    // Ed25519 key, and fails.
    let mut relabelled = frank;
    relabelled.franking_signature_ciphersuite =
        Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.into();
    assert!(matches!(
        hub.verify_report(&state, &uri(ROOM), "a.example", &report(relabelled)),
        Err(ReportRejection::Message { .. })
    ));
}

/// A follower provider's `ExternalSender`: its own key and credential
/// `mimi://<domain>`, as its hub key would be.
fn follower_sender(domain: &str) -> ExternalSender {
    HubKey::from_bytes(
        &generate_signer_bytes(CIPHERSUITE.signature_algorithm()).unwrap(),
        domain,
    )
    .unwrap()
    .external_sender()
}

/// Alice's room with Bob (b.example) added: the hub's state and both
/// clients.
fn room_with_bob(hub: &HubEngine) -> (TestClient, TestClient, Vec<u8>) {
    let (mut alice, state) = alice_room(hub);
    let mut bob = TestClient::new(BOB);
    let (commit, welcome, group_info) = alice.commit_with_group_info(
        vec![participant_update(&add_participant(&bob.user(), MEMBER))],
        vec![bob.key_package()],
    );
    let request = commit_request(commit, welcome.clone(), group_info);
    let UpdateDecision::Accepted(AcceptedUpdate { new_state, .. }) =
        hub.update(&state, &device(ALICE), &request, 1).unwrap()
    else {
        panic!("the add was refused");
    };
    alice.merge_pending();
    let tree = alice.group().export_ratchet_tree().into();
    bob.join(welcome.unwrap(), tree);
    (alice, bob, new_state)
}

/// Alice's commit changing `external_senders` to `senders`, removing
/// `removals` (leaves, and the users at those participant-list indices).
fn external_senders_commit(
    alice: &mut TestClient,
    senders: Vec<ExternalSender>,
    removed: &[(LeafNodeIndex, u32)],
) -> UpdateRequest {
    let extensions = alice.with_external_senders(senders);
    let proposals = if removed.is_empty() {
        vec![]
    } else {
        vec![participant_update(
            &mimi_protocol::components::ParticipantListUpdate {
                removed_indices: removed.iter().map(|(_, index)| *index).collect(),
                ..Default::default()
            },
        )]
    };
    let leaves = removed.iter().map(|(leaf, _)| *leaf).collect();
    let (commit, group_info) = alice.commit_group_context_extensions(extensions, proposals, leaves);
    commit_request(commit, None, group_info)
}

fn rejection(decision: UpdateDecision) -> UpdateRejection {
    match decision {
        UpdateDecision::Rejected(rejection) => rejection,
        UpdateDecision::Accepted(_) => panic!("accepted"),
        UpdateDecision::HubProposalsFirst(_) => panic!("the hub's own proposals came first"),
    }
}

#[test]
fn rooms_must_list_the_hub_as_external_sender() {
    let hub = engine();
    // No external_senders at all (-06 §7.4 MUST).
    let mut alice = TestClient::new(ALICE);
    alice.create_default_room(&[]);
    let (info, tree) = creation_bytes(&alice);
    assert_eq!(
        hub.create_room(&uri(ALICE), ROOM, &info, &tree).err(),
        Some(CreateRoomRejection::ExternalSenders(
            ExternalSendersViolation::Missing
        ))
    );
    // A key for this hub's domain that is not the hub's (an old or
    // forged one).
    let mut alice = TestClient::new(ALICE).hosted_by(follower_sender("a.example"));
    alice.create_default_room(&[]);
    let (info, tree) = creation_bytes(&alice);
    assert_eq!(
        hub.create_room(&uri(ALICE), ROOM, &info, &tree).err(),
        Some(CreateRoomRejection::ExternalSenders(
            ExternalSendersViolation::OtherHubKey { index: 0 }
        ))
    );
    // Only another provider, which has no participant here.
    let mut alice = TestClient::new(ALICE).hosted_by(follower_sender("b.example"));
    alice.create_default_room(&[]);
    let (info, tree) = creation_bytes(&alice);
    assert_eq!(
        hub.create_room(&uri(ALICE), ROOM, &info, &tree).err(),
        Some(CreateRoomRejection::ExternalSenders(
            ExternalSendersViolation::NoParticipant {
                domain: "b.example".into()
            }
        ))
    );
}

#[test]
fn a_follower_with_participants_may_be_added_as_external_sender_and_must_go_with_them() {
    let hub = engine();
    let (mut alice, mut bob, state) = room_with_bob(&hub);
    let b = follower_sender("b.example");

    // c.example has no participant: its certificate may not be listed.
    let request = external_senders_commit(
        &mut alice,
        vec![
            hub.external_sender(CIPHERSUITE).unwrap(),
            follower_sender("c.example"),
        ],
        &[],
    );
    assert_eq!(
        rejection(hub.update(&state, &device(ALICE), &request, 2).unwrap()),
        UpdateRejection::ExternalSenders(ExternalSendersViolation::NoParticipant {
            domain: "c.example".into()
        })
    );
    alice.discard_pending();

    // The hub may not be dropped from the list.
    let request = external_senders_commit(&mut alice, vec![b.clone()], &[]);
    assert_eq!(
        rejection(hub.update(&state, &device(ALICE), &request, 2).unwrap()),
        UpdateRejection::ExternalSenders(ExternalSendersViolation::HubMissing)
    );
    alice.discard_pending();

    // b.example (Bob's provider) may be added.
    let request = external_senders_commit(
        &mut alice,
        vec![hub.external_sender(CIPHERSUITE).unwrap(), b.clone()],
        &[],
    );
    let UpdateDecision::Accepted(AcceptedUpdate { new_state, .. }) =
        hub.update(&state, &device(ALICE), &request, 2).unwrap()
    else {
        panic!("adding the follower's certificate was refused");
    };
    alice.merge_pending();
    bob.process(request.bundle.proposal_or_commit.clone());
    let state = new_state;

    // Removing Bob, b.example's last participant, without removing its
    // certificate is refused ...
    let bob_leaf = alice.leaf_of(BOB);
    let request = external_senders_commit(
        &mut alice,
        vec![hub.external_sender(CIPHERSUITE).unwrap(), b.clone()],
        &[(bob_leaf, 1)],
    );
    assert_eq!(
        rejection(hub.update(&state, &device(ALICE), &request, 3).unwrap()),
        UpdateRejection::ExternalSenders(ExternalSendersViolation::NoParticipant {
            domain: "b.example".into()
        })
    );
    alice.discard_pending();
    // ... and accepted when the same commit removes it (-06 §7.4 MUST).
    let request = external_senders_commit(
        &mut alice,
        vec![hub.external_sender(CIPHERSUITE).unwrap()],
        &[(bob_leaf, 1)],
    );
    assert!(matches!(
        hub.update(&state, &device(ALICE), &request, 3).unwrap(),
        UpdateDecision::Accepted(_)
    ));
}

#[test]
fn group_context_extensions_may_change_nothing_but_external_senders() {
    let hub = engine();
    let (mut alice, _bob, state) = room_with_bob(&hub);
    let mut extensions: Vec<Extension> = alice
        .with_external_senders(vec![hub.external_sender(CIPHERSUITE).unwrap()])
        .iter()
        .filter(|e| e.extension_type() != ExtensionType::RequiredCapabilities)
        .cloned()
        .collect();
    extensions.push(Extension::RequiredCapabilities(
        RequiredCapabilitiesExtension::new(&[ExtensionType::AppDataDictionary], &[], &[]),
    ));
    let (commit, group_info) = alice.commit_group_context_extensions(
        Extensions::from_vec(extensions).unwrap(),
        vec![],
        vec![],
    );
    let request = commit_request(commit, None, group_info);
    assert!(matches!(
        rejection(hub.update(&state, &device(ALICE), &request, 2).unwrap()),
        UpdateRejection::Proposal {
            violation: mimi_room::PolicyViolation::GroupContextExtensions(
                GroupContextExtensionsViolation::Changes(ExtensionType::RequiredCapabilities)
            ),
            ..
        }
    ));
}

/// Alice's room where admins may also change the preauthorized users.
fn preauth_admin_room(hub: &HubEngine) -> (TestClient, Vec<u8>) {
    use mimi_protocol::components::room_policy::capabilities::CAN_CHANGE_PREAUTHORIZED_USER_LIST;
    use mimi_room::policy::{default_role, default_roles};
    let mut roles = default_roles();
    for role in &mut roles.roles {
        if role.role_index == default_role::ADMIN {
            role.role_capabilities
                .push(CAN_CHANGE_PREAUTHORIZED_USER_LIST);
        }
    }
    let mut alice = TestClient::new(ALICE).hosted_by(hub.external_sender(CIPHERSUITE).unwrap());
    let me = alice.user();
    alice.create_room(&[(me.as_str(), default_role::ADMIN)], roles);
    let (info, tree) = creation_bytes(&alice);
    let created = hub.create_room(&uri(ALICE), ROOM, &info, &tree).unwrap();
    (alice, created.state)
}

fn app_data_update(id: u16, data: Vec<u8>) -> Proposal {
    Proposal::AppDataUpdate(Box::new(AppDataUpdateProposal::update(id, data)))
}

fn preauth_update() -> Proposal {
    use mimi_protocol::components::PREAUTH_LIST;
    use mimi_protocol::components::room_policy::{PreAuthData, PreAuthRoleEntry};
    use mimi_room::policy::preauth::{basic_claim, claim};
    use mimi_room::policy::{default_role, default_roles};
    let preauth = PreAuthData {
        preauthorized_entries: vec![PreAuthRoleEntry {
            claimset: vec![basic_claim(claim::DOMAIN, "b.example")],
            target_role: default_roles().role(default_role::MEMBER).unwrap().clone(),
        }],
    };
    app_data_update(PREAUTH_LIST, preauth.tls_serialize_detached().unwrap())
}

#[test]
fn one_metadata_update_per_commit() {
    use mimi_protocol::components::ROOM_METADATA;
    use mimi_protocol::components::room_metadata::{RoomMetaData, UTF8String, Uri};
    let hub = engine();
    let (mut alice, state) = alice_room(&hub);
    let named = |name: &str| {
        let metadata = RoomMetaData {
            room_uri: Uri::new(ROOM),
            room_name: UTF8String::new(name).unwrap(),
            ..RoomMetaData::default()
        };
        app_data_update(ROOM_METADATA, metadata.tls_serialize_detached().unwrap())
    };
    let (commit, _, info) = alice.commit_with_group_info(vec![named("a"), named("b")], vec![]);
    let refused = rejection(
        hub.update(
            &state,
            &device(ALICE),
            &commit_request(commit, None, info),
            1,
        )
        .unwrap(),
    );
    assert_eq!(refused, UpdateRejection::SeveralMetadataUpdates);
    assert!(refused.to_string().contains("-06 §7.6"), "{refused}");
    alice.discard_pending();
    let (commit, _, info) = alice.commit_with_group_info(vec![named("a")], vec![]);
    assert!(matches!(
        hub.update(
            &state,
            &device(ALICE),
            &commit_request(commit, None, info),
            1
        )
        .unwrap(),
        UpdateDecision::Accepted(_)
    ));
}

#[test]
fn preauthorized_users_change_apart_from_participant_additions() {
    let hub = engine();
    let (mut alice, state) = preauth_admin_room(&hub);
    let bob = TestClient::new(BOB);
    let (commit, welcome, info) = alice.commit_with_group_info(
        vec![
            preauth_update(),
            participant_update(&add_participant(&bob.user(), MEMBER)),
        ],
        vec![bob.key_package()],
    );
    let refused = rejection(
        hub.update(
            &state,
            &device(ALICE),
            &commit_request(commit, welcome, info),
            1,
        )
        .unwrap(),
    );
    assert_eq!(refused, UpdateRejection::PreauthWithParticipantChanges);
    assert!(refused.to_string().contains("§Preauthorized Users"));
    alice.discard_pending();
    let (commit, _, info) = alice.commit_with_group_info(vec![preauth_update()], vec![]);
    assert!(matches!(
        hub.update(
            &state,
            &device(ALICE),
            &commit_request(commit, None, info),
            1
        )
        .unwrap(),
        UpdateDecision::Accepted(_)
    ));

    // Without canChangePreauthorizedUserList (the default admin role).
    let (mut alice, state) = alice_room(&hub);
    let (commit, _, info) = alice.commit_with_group_info(vec![preauth_update()], vec![]);
    let refused = rejection(
        hub.update(
            &state,
            &device(ALICE),
            &commit_request(commit, None, info),
            1,
        )
        .unwrap(),
    );
    assert!(
        refused
            .to_string()
            .contains("needs canChangePreauthorizedUserList"),
        "{refused}"
    );
}

#[test]
fn a_franking_agent_added_later_must_be_the_hubs_key() {
    use mimi_protocol::components::FRANKING_SIGNATURE_KEY;
    let hub = engine();
    let (mut alice, state) = alice_room(&hub);
    let agent = |data: mimi_protocol::components::FrankingAgentData| {
        app_data_update(
            FRANKING_SIGNATURE_KEY,
            data.tls_serialize_detached().unwrap(),
        )
    };
    // Another hub's key (a fresh engine has fresh keys).
    let foreign = engine().franking_agent(CIPHERSUITE).unwrap();
    let (commit, _, info) = alice.commit_with_group_info(vec![agent(foreign)], vec![]);
    assert_eq!(
        rejection(
            hub.update(
                &state,
                &device(ALICE),
                &commit_request(commit, None, info),
                1
            )
            .unwrap()
        ),
        UpdateRejection::FrankingAgentNotHub
    );
    alice.discard_pending();
    let own = hub.franking_agent(CIPHERSUITE).unwrap();
    let (commit, _, info) = alice.commit_with_group_info(vec![agent(own.clone())], vec![]);
    let UpdateDecision::Accepted(AcceptedUpdate { new_state, .. }) = hub
        .update(
            &state,
            &device(ALICE),
            &commit_request(commit, None, info),
            1,
        )
        .unwrap()
    else {
        panic!("the hub's own key was refused");
    };
    alice.merge_pending();
    // Once set, it does not change.
    let (commit, _, info) = alice.commit_with_group_info(vec![agent(own)], vec![]);
    let refused = rejection(
        hub.update(
            &new_state,
            &device(ALICE),
            &commit_request(commit, None, info),
            2,
        )
        .unwrap(),
    );
    assert!(
        refused.to_string().contains("once set, does not change"),
        "{refused}"
    );
}

#[test]
fn a_participant_reports_abuse_only_with_can_report_abuse() {
    use mimi_protocol::components::room_policy::capabilities::CAN_REPORT_ABUSE;
    use mimi_room::policy::{default_role, default_roles};
    let hub = engine();
    let mut roles = default_roles();
    for role in &mut roles.roles {
        role.role_capabilities.retain(|c| *c != CAN_REPORT_ABUSE);
    }
    let mut alice = TestClient::new(ALICE).hosted_by(hub.external_sender(CIPHERSUITE).unwrap());
    let me = alice.user();
    alice.create_room(&[(me.as_str(), default_role::ADMIN)], roles);
    let (info, tree) = creation_bytes(&alice);
    let state = hub
        .create_room(&uri(ALICE), ROOM, &info, &tree)
        .unwrap()
        .state;
    let report = |reporter: &str| mimi_protocol::msgs::AbuseReport {
        reporting_user: IdentifierUri::new(reporter),
        alleged_abuser_uri: IdentifierUri::new("mimi://a.example/u/mallory"),
        reason_code: mimi_protocol::msgs::AbuseType::RESERVED,
        note: Vec::new().into(),
        messages: Vec::new(),
        abuse_extensions: Default::default(),
    };
    assert!(matches!(
        hub.verify_report(&state, &uri(ROOM), "a.example", &report(&me)),
        Err(ReportRejection::MayNotReport { .. })
    ));
    // Someone no longer in the list may still report what it received.
    assert!(
        hub.verify_report(
            &state,
            &uri(ROOM),
            "a.example",
            &report("mimi://a.example/u/former")
        )
        .is_ok()
    );
}

#[test]
fn messages_go_only_to_providers_with_a_user_who_may_receive_them() {
    use mimi_protocol::components::room_policy::capabilities::CAN_RECEIVE_MESSAGE;
    use mimi_room::policy::{default_role, default_roles};
    let hub = engine();
    // Members may send but not receive; moderators may do both.
    let mut roles = default_roles();
    for role in &mut roles.roles {
        if role.role_index == default_role::MEMBER {
            role.role_capabilities.retain(|c| *c != CAN_RECEIVE_MESSAGE);
        }
    }
    let mut alice = TestClient::new(ALICE).hosted_by(hub.external_sender(CIPHERSUITE).unwrap());
    let me = alice.user();
    alice.create_room(&[(me.as_str(), default_role::ADMIN)], roles);
    let (info, tree) = creation_bytes(&alice);
    let state = hub
        .create_room(&uri(ALICE), ROOM, &info, &tree)
        .unwrap()
        .state;
    let mut bob = TestClient::new(BOB);
    let mut carol = TestClient::new("mimi://c.example/d/carol/tablet");
    let mut add = add_participant(&bob.user(), default_role::MEMBER);
    add.added_participants
        .extend(add_participant(&carol.user(), default_role::MODERATOR).added_participants);
    let (commit, welcome, group_info) = alice.commit_with_group_info(
        vec![participant_update(&add)],
        vec![bob.key_package(), carol.key_package()],
    );
    let request = commit_request(commit, welcome.clone(), group_info);
    let UpdateDecision::Accepted(AcceptedUpdate {
        new_state,
        participants_dropped,
        ..
    }) = hub.update(&state, &device(ALICE), &request, 1).unwrap()
    else {
        panic!("the adds were refused");
    };
    assert!(!participants_dropped, "adds drop nobody");
    alice.merge_pending();
    let tree: RatchetTreeIn = alice.group().export_ratchet_tree().into();
    bob.join(welcome.clone().unwrap(), tree.clone());
    carol.join(welcome.unwrap(), tree);

    let view = mimi_room::engine::SubmitView::new(&new_state).unwrap();
    let destinations = |client: &mut TestClient, device_uri: &str| {
        let request = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: client.application_message(b"hi", None),
            sending_uri: IdentifierUri::new(client.user()),
        };
        match hub.submit(&view, &uri(ROOM), &device(device_uri), &request, 2) {
            mimi_room::engine::SubmitDecision::Accepted { fanout, .. } => {
                fanout.destinations.into_iter().collect::<Vec<_>>()
            }
            other => panic!("not accepted: {other:?}"),
        }
    };
    // b.example has only Bob, who may not receive: it is left out...
    assert_eq!(destinations(&mut alice, ALICE), ["a.example", "c.example"]);
    // ...except for the echo of Bob's own message.
    assert_eq!(
        destinations(&mut bob, BOB),
        ["a.example", "b.example", "c.example"]
    );
}

/// The room with Alice alone, as a parent room's stored state: Bob is not
/// (or no longer) one of its participants.
fn parent_without_bob(hub: &HubEngine) -> Vec<u8> {
    alice_room(hub).1
}

#[test]
fn a_child_room_follows_its_parent_through_the_hubs_own_removals() {
    let hub = engine();
    let (mut alice, mut bob, child) = room_with_bob(&hub);
    let parent = parent_without_bob(&hub);

    // A request to the child before the hub made its proposals: they
    // come first, decided on the same decoded states.
    let (commit, _, group_info) = alice.commit_with_group_info(vec![], vec![]);
    let early = commit_request(commit, None, group_info);
    let UpdateDecision::HubProposalsFirst(first) = hub
        .update_in(&child, Some(&parent), &device(ALICE), &early, 4)
        .unwrap()
    else {
        panic!("the hub's removals did not come first");
    };
    assert_eq!((first.count, first.accepted_at_ms), (1, 4));
    alice.discard_pending();

    // The hub proposes the removal of Bob's client, signed as the room's
    // external sender; both clients accept it as such.
    let proposals = hub.parent_removals(&child, &parent, 5).unwrap().unwrap();
    assert_eq!(proposals.count, 1);
    assert_eq!(
        proposals.fanout.destinations,
        ["a.example", "b.example"].map(String::from).into()
    );
    let child = proposals.new_state;
    let message = match StoredRoom::decode(&child)
        .unwrap()
        .pending_proposals
        .as_slice()
    {
        [pending] => pending.proposal.clone(),
        other => panic!("{} pending proposals", other.len()),
    };
    // A commit made before the hub's Remove reached its committer is
    // refused (-06 §5.3: the next commit must include it).
    let (commit, _, group_info) = alice.commit_with_group_info(vec![], vec![]);
    let request = commit_request(commit, None, group_info);
    assert!(matches!(
        rejection(
            hub.update_in(&child, Some(&parent), &device(ALICE), &request, 6)
                .unwrap()
        ),
        UpdateRejection::MissingQueuedRemovals { .. }
    ));
    alice.discard_pending();
    alice.process(message.clone());
    bob.process(message);
    // Proposed once: nothing more while it is queued.
    assert!(hub.parent_removals(&child, &parent, 7).unwrap().is_none());

    // Nobody outside the parent may be added to the child.
    let carol = TestClient::new("mimi://c.example/d/carol/tablet");
    let (commit, welcome, group_info) = alice.commit_with_group_info(
        vec![participant_update(&add_participant(&carol.user(), MEMBER))],
        vec![carol.key_package()],
    );
    let request = commit_request(commit, welcome, group_info);
    assert!(matches!(
        rejection(hub.update_in(&child, Some(&parent), &device(ALICE), &request, 8).unwrap()),
        UpdateRejection::RoleConstraint(mimi_room::PolicyViolation::NotInParent { user })
            if user == "mimi://c.example/u/carol"
    ));
    alice.discard_pending();

    // The commit including the hub's Remove and dropping Bob from the
    // list is accepted; the room then holds only its parent's users.
    let (commit, _, group_info) = alice.commit_with_group_info(
        vec![participant_update(
            &mimi_protocol::components::ParticipantListUpdate {
                removed_indices: vec![1],
                ..Default::default()
            },
        )],
        vec![],
    );
    let request = commit_request(commit, None, group_info);
    let UpdateDecision::Accepted(AcceptedUpdate {
        new_state,
        participants_dropped,
        ..
    }) = hub
        .update_in(&child, Some(&parent), &device(ALICE), &request, 9)
        .unwrap()
    else {
        panic!("the commit following the parent was refused");
    };
    assert!(participants_dropped, "Bob left the list");
    let room = StoredRoom::decode(&new_state).unwrap().hub;
    assert_eq!(room.members().len(), 1);
    assert_eq!(room.policy_state().unwrap().role_of(&bob.user()), 0);
    assert!(
        hub.parent_removals(&new_state, &parent, 10)
            .unwrap()
            .is_none()
    );
}

#[test]
fn the_hubs_removal_carries_the_safe_aad_prefix_a_room_requires() {
    let hub = engine();
    let (mut alice, child) = alice_p256_room(&hub);
    // A parent without Alice: the hub proposes removing her only client.
    const DAVE: &str = "mimi://a.example/d/dave/pc";
    let mut other =
        TestClient::with_ciphersuite(DAVE, P256).hosted_by(hub.external_sender(P256).unwrap());
    other.create_default_room(&[]);
    let (info, tree) = creation_bytes(&other);
    let parent = hub
        .create_room(&uri(DAVE), "mimi://a.example/r/parent", &info, &tree)
        .unwrap()
        .state;
    let proposals = hub.parent_removals(&child, &parent, 5).unwrap().unwrap();
    let message = StoredRoom::decode(&proposals.new_state)
        .unwrap()
        .pending_proposals[0]
        .proposal
        .clone();
    // Alice's MLS stack parses the Safe AAD prefix the room requires.
    alice.process(message);
}

/// The room an accepted update leaves is the room its stored bytes decode
/// to: the hub may decide the next update on it (its commit-rooms cache)
/// and decides exactly as on the stored bytes.
#[test]
fn the_room_an_update_leaves_decides_like_its_stored_bytes() {
    let hub = engine();
    let (mut alice, state) = alice_room(&hub);
    let bob = TestClient::new(BOB);
    let (commit, welcome, group_info) = alice.commit_with_group_info(
        vec![participant_update(&add_participant(&bob.user(), MEMBER))],
        vec![bob.key_package()],
    );
    let request = commit_request(commit, welcome, group_info);
    let UpdateDecision::Accepted(AcceptedUpdate {
        new_state, room, ..
    }) = hub.update(&state, &device(ALICE), &request, 5).unwrap()
    else {
        panic!("the add was refused");
    };
    assert_eq!(room.encode().unwrap(), new_state);
    alice.merge_pending();

    let carol = TestClient::new("mimi://c.example/d/carol/pc");
    let (commit, welcome, group_info) = alice.commit_with_group_info(
        vec![participant_update(&add_participant(&carol.user(), MEMBER))],
        vec![carol.key_package()],
    );
    let request = commit_request(commit, welcome, group_info);
    let decide = |decision: UpdateDecision| match decision {
        UpdateDecision::Accepted(accepted) => accepted,
        other => panic!("refused: {other:?}"),
    };
    let on_bytes = decide(hub.update(&new_state, &device(ALICE), &request, 6).unwrap());
    let on_room = decide(
        hub.update_room(*room, None, &device(ALICE), &request, 6)
            .unwrap(),
    );
    assert_eq!(on_room.new_epoch, 2);
    assert_eq!(on_room.new_state, on_bytes.new_state);
    assert_eq!(on_room.event, on_bytes.event);
    assert_eq!(on_room.room.encode().unwrap(), on_bytes.new_state);
    // A refused update on either gives the same refusal.
    let stale_on_room = hub
        .update_room(*on_room.room, None, &device(ALICE), &request, 7)
        .unwrap();
    let stale_on_bytes = hub
        .update(&on_bytes.new_state, &device(ALICE), &request, 7)
        .unwrap();
    assert_eq!(rejection(stale_on_room), rejection(stale_on_bytes));
}
