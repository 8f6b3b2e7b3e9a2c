//! The hub endpoints (-06 §5.3 update, §5.4 submitMessage, §5.6 groupInfo)
//! on three real providers over mutual TLS, driven by real openmls clients
//! through the client API (forwarded to the hub when the client's provider
//! is not the room's hub).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Backend, Federation, start_federation};
use mimi_protocol::Protocol;
use mimi_protocol::components::ParticipantListUpdate;
use mimi_protocol::msgs::fanout::{FanoutCase, decode_fanout_batch};
use mimi_protocol::msgs::{
    GroupInfoCode, GroupInfoOption, GroupInfoRatchetTreeTbe, GroupInfoRequest, GroupInfoRequestTbs,
    GroupInfoResponse, GroupInfoResponseBody, HandshakeBody, HandshakeBundle, RatchetTreeOption,
    SubmitMessageRequest, SubmitMessageResponse, SubmitStatus, UpdateRequest, UpdateResult,
    UpdateRoomResponse,
};
use mimi_protocol::uri::pct_encode_unreserved;
use mimi_protocol::{IdentifierUri, decode_exact, encode};
use mimi_room::policy::default_role::{ADMIN, MEMBER};
use mimi_server::tls::ProviderIdentity;
use mimi_testkit::clients::{CIPHERSUITE, TestClient, add_participant, participant_update, wire};
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;
use reqwest::StatusCode;
use serde_json::json;
use tls_codec::Serialize as _;

const ROOM: &str = "mimi://a.example/r/clubhouse";
const ALICE: &str = "mimi://a.example/d/alice/laptop";
const BOB: &str = "mimi://b.example/d/bob/phone";
const CATHY: &str = "mimi://c.example/d/cathy/tablet";
const CATHY2: &str = "mimi://c.example/d/cathy/desktop";
const DAVE: &str = "mimi://b.example/d/dave/phone";

/// A device registered at its provider, with a real MLS client.
struct Device {
    mls: TestClient,
    domain: String,
    token: String,
}

impl Device {
    /// Registers `device` at its provider, with a fresh MLS client.
    async fn new(fed: &Federation, device: &str) -> Self {
        let mls = TestClient::new(device);
        let token = fed.register(device).await;
        Device {
            mls,
            domain: fed.provider_of(device).domain.clone(),
            token,
        }
    }
}

fn room_path(room: &str) -> String {
    pct_encode_unreserved(room)
}

/// POSTs a TLS body to the device's own client API.
async fn post(
    fed: &Federation,
    device: &Device,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let p = fed.provider(&device.domain);
    let resp = p
        .client_api
        .post(format!("{}{path}", p.client_base))
        .bearer_auth(&device.token)
        .header("content-type", "application/mimi-protocol")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.bytes().await.unwrap().to_vec())
}

async fn update(
    fed: &Federation,
    device: &Device,
    room: &str,
    request: &UpdateRequest,
) -> UpdateRoomResponse {
    let (status, body) = post(
        fed,
        device,
        &format!("/client/v1/rooms/{}/update", room_path(room)),
        encode(request).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    decode_exact(&body).unwrap()
}

async fn submit(
    fed: &Federation,
    device: &Device,
    request: &SubmitMessageRequest,
) -> SubmitMessageResponse {
    let (status, body) = post(
        fed,
        device,
        &format!("/client/v1/rooms/{}/submit", room_path(ROOM)),
        encode(request).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    decode_exact(&body).unwrap()
}

/// A commit with the new epoch's GroupInfo and tree, built but not merged.
struct Commit {
    request: UpdateRequest,
    welcome: Option<Welcome>,
}

/// Builds a commit with inline proposals and Adds; the bundle carries the
/// new epoch's GroupInfo (GroupInfoOption full) and ratchet tree.
fn build_commit(
    client: &mut TestClient,
    proposals: Vec<Proposal>,
    adds: Vec<KeyPackage>,
) -> Commit {
    let provider = &client.provider;
    let signer = &client.signer;
    let group = client.group.as_mut().unwrap();
    let old = group
        .extensions()
        .app_data_dictionary()
        .map(|e| e.dictionary().clone());
    let mut stage = group
        .commit_builder()
        .add_proposals(proposals)
        .propose_adds(adds)
        .load_psks(provider.storage())
        .unwrap()
        .create_group_info(true);
    let updates = mimi_room::components::resolve_app_data_updates(
        old.as_ref(),
        stage.app_data_update_proposals(),
    )
    .unwrap();
    stage.with_app_data_dictionary_updates(updates);
    let bundle = stage
        .build(provider.rand(), provider.crypto(), signer, |_| true)
        .unwrap()
        .stage_commit(provider)
        .unwrap();
    let (commit, welcome, group_info) = bundle.into_messages();
    let welcome = welcome.map(|w| match wire(w).extract() {
        MlsMessageBodyIn::Welcome(w) => w,
        _ => panic!("not a welcome"),
    });
    let group_info = group_info_of(wire(group_info.expect("group info")));
    Commit {
        request: commit_request(wire(commit), welcome.clone(), group_info, None),
        welcome,
    }
}

/// A commit that leaves out the proposals pending in `client`'s group,
/// with the new epoch's GroupInfo; the pending commit is then dropped.
fn commit_without_pending(client: &mut TestClient) -> UpdateRequest {
    let provider = &client.provider;
    let group = client.group.as_mut().unwrap();
    let mut stage = group
        .commit_builder()
        .consume_proposal_store(false)
        .force_self_update(true)
        .load_psks(provider.storage())
        .unwrap()
        .create_group_info(true);
    stage.with_app_data_dictionary_updates(None);
    let bundle = stage
        .build(provider.rand(), provider.crypto(), &client.signer, |_| true)
        .unwrap()
        .stage_commit(provider)
        .unwrap();
    let (commit, _, group_info) = bundle.into_messages();
    group.clear_pending_commit(provider.storage()).unwrap();
    let group_info = group_info_of(wire(group_info.expect("group info")));
    commit_request(wire(commit), None, group_info, None)
}

fn group_info_of(message: MlsMessageIn) -> VerifiableGroupInfo {
    match message.extract() {
        MlsMessageBodyIn::GroupInfo(info) => info,
        _ => panic!("not a GroupInfo"),
    }
}

fn commit_request(
    commit: MlsMessageIn,
    welcome: Option<Welcome>,
    group_info: VerifiableGroupInfo,
    tree: Option<RatchetTreeIn>,
) -> UpdateRequest {
    UpdateRequest {
        bundle: HandshakeBundle {
            proposal_or_commit: commit,
            body: HandshakeBody::Commit {
                welcome,
                group_info_option: GroupInfoOption::Full(group_info),
                ratchet_tree_option: tree
                    .map(RatchetTreeOption::Full)
                    .unwrap_or(RatchetTreeOption::DistributionService),
            },
        },
    }
}

fn app_message(client: &mut TestClient, text: &[u8]) -> MlsMessageIn {
    let provider = &client.provider;
    let signer = &client.signer;
    wire(
        client
            .group
            .as_mut()
            .unwrap()
            .create_message(provider, signer, text)
            .unwrap(),
    )
}

fn submit_request(message: MlsMessageIn, sender: &str) -> SubmitMessageRequest {
    SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: message,
        sending_uri: IdentifierUri::new(sender),
    }
}

fn success(response: &UpdateRoomResponse) -> bool {
    matches!(response.result, UpdateResult::Success { .. })
}

async fn room_epoch(fed: &Federation) -> u64 {
    fed.provider("a.example")
        .server()
        .state
        .store
        .load_room(ROOM)
        .await
        .unwrap()
        .unwrap()
        .epoch
}

/// Alice creates the room through a.example's client API.
async fn create_room(fed: &Federation, alice: &mut Device) {
    let a = fed.provider("a.example");
    // -06 §7.4: the room lists its hub as external sender.
    alice.mls.hub = a.server().state.hub.external_sender(alice.mls.ciphersuite);
    alice.mls.create_default_room(&[]);
    let group = alice.mls.group.as_ref().unwrap();
    let info = group
        .export_group_info(alice.mls.provider.crypto(), &alice.mls.signer, false)
        .unwrap()
        .tls_serialize_detached()
        .unwrap();
    let tree = group
        .export_ratchet_tree()
        .tls_serialize_detached()
        .unwrap();
    let body = json!({"room_id": ROOM, "group_info": B64.encode(&info), "ratchet_tree": B64.encode(&tree)});
    let create = || {
        a.client_api
            .post(format!("{}/client/v1/rooms", a.client_base))
            .bearer_auth(&alice.token)
            .json(&body)
            .send()
    };
    assert_eq!(create().await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(create().await.unwrap().status(), StatusCode::CONFLICT);
    // Rooms hosted elsewhere cannot be created here; garbage is a 400.
    let mut elsewhere = body.clone();
    elsewhere["room_id"] = json!("mimi://b.example/r/elsewhere");
    let resp = a
        .client_api
        .post(format!("{}/client/v1/rooms", a.client_base))
        .bearer_auth(&alice.token)
        .json(&elsewhere)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let mut garbage = body.clone();
    garbage["group_info"] = json!(B64.encode(b"not a group info"));
    let resp = a
        .client_api
        .post(format!("{}/client/v1/rooms", a.client_base))
        .bearer_auth(&alice.token)
        .json(&garbage)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

/// `adder` adds `who` as a member; returns the hub's answer and, on
/// success, `who` has joined.
async fn add_user(fed: &Federation, adder: &mut Device, who: &mut Device) -> UpdateRoomResponse {
    let update_proposal = participant_update(&add_participant(&who.mls.user(), MEMBER));
    let commit = build_commit(
        &mut adder.mls,
        vec![update_proposal],
        vec![who.mls.key_package()],
    );
    let response = update(fed, adder, ROOM, &commit.request).await;
    if success(&response) {
        adder.mls.merge_pending();
        let tree = adder.mls.group().export_ratchet_tree().into();
        who.mls.join(commit.welcome.unwrap(), tree);
    } else {
        adder.mls.discard_pending();
    }
    response
}

fn commit_message(request: &UpdateRequest) -> MlsMessageIn {
    request.bundle.proposal_or_commit.clone()
}

#[tokio::test]
async fn hub_protocol_flow_over_federation() {
    let fed = start_federation(Backend::Sqlite).await;
    let mut alice = Device::new(&fed, ALICE).await;
    let mut bob = Device::new(&fed, BOB).await;
    let mut cathy = Device::new(&fed, CATHY).await;
    let mut cathy2 = Device::new(&fed, CATHY2).await;
    let dave = Device::new(&fed, DAVE).await;
    create_room(&fed, &mut alice).await;
    let store = fed.provider("a.example").server().state.store.clone();

    // Alice adds Bob (-06 §3.2): success, and the room log holds the
    // commit followed by the Welcome.
    let response = add_user(&fed, &mut alice, &mut bob).await;
    assert!(success(&response), "{response:?}");
    assert_eq!(room_epoch(&fed).await, 1);
    let events = store.room_events(ROOM, 0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let batch = decode_fanout_batch(&events[0].payload).unwrap();
    let cases: Vec<_> = batch.iter().map(|m| m.body.case()).collect();
    assert_eq!(cases, vec![FanoutCase::Commit, FanoutCase::Welcome]);
    let bob_kp = bob_key_package_ref(&batch[1].message);
    assert_eq!(
        store
            .provider_for_key_package_ref(&bob_kp)
            .await
            .unwrap()
            .as_deref(),
        Some("b.example")
    );

    // Bob, through b.example (forwarded to the hub), adds Cathy (-06 §3.3).
    let response = add_user(&fed, &mut bob, &mut cathy).await;
    assert!(success(&response), "{response:?}");
    let bobs_commit = store.room_events(ROOM, 1, 10).await.unwrap();
    let bobs_commit = decode_fanout_batch(&bobs_commit[0].payload)
        .unwrap()
        .remove(0)
        .message;

    // Alice, still at epoch 1, commits: wrongEpoch with the current epoch.
    let stale = build_commit(&mut alice.mls, vec![], vec![]);
    let response = update(&fed, &alice, ROOM, &stale.request).await;
    assert_eq!(
        response.result,
        UpdateResult::WrongEpoch { current_epoch: 2 }
    );
    alice.mls.discard_pending();
    alice.mls.process(bobs_commit);
    assert_eq!(room_epoch(&fed).await, 2);

    // A message Cathy writes now will be too old after the next commit.
    let old_message = app_message(&mut cathy.mls, b"written at epoch 2");

    // Three clients of three providers commit for epoch 2 at once: exactly
    // one wins, the others are told the new epoch.
    let c_alice = build_commit(&mut alice.mls, vec![], vec![]);
    let c_bob = build_commit(&mut bob.mls, vec![], vec![]);
    let c_cathy = build_commit(&mut cathy.mls, vec![], vec![]);
    let (r_alice, r_bob, r_cathy) = tokio::join!(
        update(&fed, &alice, ROOM, &c_alice.request),
        update(&fed, &bob, ROOM, &c_bob.request),
        update(&fed, &cathy, ROOM, &c_cathy.request),
    );
    let results = [&r_alice, &r_bob, &r_cathy];
    assert_eq!(
        results.iter().filter(|r| success(r)).count(),
        1,
        "{results:?}"
    );
    for r in results.iter().filter(|r| !success(r)) {
        assert_eq!(r.result, UpdateResult::WrongEpoch { current_epoch: 3 });
    }
    assert_eq!(room_epoch(&fed).await, 3);
    let winner = if success(&r_alice) {
        commit_message(&c_alice.request)
    } else if success(&r_bob) {
        commit_message(&c_bob.request)
    } else {
        commit_message(&c_cathy.request)
    };
    for (device, won) in [
        (&mut alice, success(&r_alice)),
        (&mut bob, success(&r_bob)),
        (&mut cathy, success(&r_cathy)),
    ] {
        if won {
            device.mls.merge_pending();
        } else {
            device.mls.discard_pending();
            device.mls.process(winner.clone());
        }
        assert_eq!(device.mls.epoch(), 3);
    }

    // Bob (a member) may not add Dave as an admin: refused, epoch unchanged.
    let commit = build_commit(
        &mut bob.mls,
        vec![participant_update(&add_participant(
            &dave.mls.user(),
            ADMIN,
        ))],
        vec![dave.mls.key_package()],
    );
    let response = update(&fed, &bob, ROOM, &commit.request).await;
    assert!(
        matches!(
            response.result,
            UpdateResult::NotAllowed | UpdateResult::InvalidProposal { .. }
        ),
        "{response:?}"
    );
    bob.mls.discard_pending();
    assert_eq!(room_epoch(&fed).await, 3);

    // A federation request for Cathy's commit from b.example is refused:
    // the source provider must be the committer's.
    let commit = build_commit(&mut cathy.mls, vec![], vec![]);
    let (status, body) = federation_post(
        &fed,
        "b.example",
        "update",
        ROOM,
        encode(&commit.request).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response: UpdateRoomResponse = decode_exact(&body).unwrap();
    assert_eq!(response.result, UpdateResult::NotAllowed, "{response:?}");
    cathy.mls.discard_pending();
    assert_eq!(room_epoch(&fed).await, 3);

    // submitMessage (-06 §5.4): Cathy's message is accepted with a timestamp.
    let message = app_message(&mut cathy.mls, b"hello");
    let response = submit(
        &fed,
        &cathy,
        &submit_request(message.clone(), &cathy.mls.user()),
    )
    .await;
    let SubmitStatus::Accepted {
        accepted_timestamp,
        frank,
    } = response.status
    else {
        panic!("{response:?}")
    };
    assert!(accepted_timestamp > 1_700_000_000_000);
    assert!(frank.is_none());
    // Dave is no participant: refused, and nothing reaches the room log.
    let logged = store.room_events(ROOM, 0, 100).await.unwrap().len();
    let response = submit(
        &fed,
        &dave,
        &submit_request(message.clone(), &dave.mls.user()),
    )
    .await;
    assert_eq!(response.status, SubmitStatus::NotAllowed);
    assert_eq!(store.room_events(ROOM, 0, 100).await.unwrap().len(), logged);
    // A message of epoch 2.
    let response = submit(
        &fed,
        &cathy,
        &submit_request(old_message, &cathy.mls.user()),
    )
    .await;
    assert_eq!(
        response.status,
        SubmitStatus::EpochTooOld { current_epoch: 3 }
    );
    // Cathy may not claim to be Bob (client API check).
    let (status, _) = post(
        &fed,
        &cathy,
        &format!("/client/v1/rooms/{}/submit", room_path(ROOM)),
        encode(&submit_request(message.clone(), &bob.mls.user())).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nor may c.example send as b.example's Bob over federation.
    let (status, body) = federation_post(
        &fed,
        "c.example",
        "submitMessage",
        ROOM,
        encode(&submit_request(message, &bob.mls.user())).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response: SubmitMessageResponse = decode_exact(&body).unwrap();
    assert_eq!(response.status, SubmitStatus::NotAllowed);

    // groupInfo (-06 §5.6): Cathy's second device gets the GroupInfo and
    // tree and joins by external commit, which the hub accepts.
    let crypto = RustCrypto::default();
    let (request, private_key) = group_info_request(&cathy2.mls);
    let response = group_info(&fed, &cathy2, ROOM, &request).await;
    assert_eq!(response.status(), GroupInfoCode::Success);
    response.verify(&crypto).unwrap();
    let GroupInfoResponseBody::Success(success_body) = &response.body else {
        unreachable!()
    };
    let tbe = GroupInfoRatchetTreeTbe::open(
        &crypto,
        success_body.cipher_suite,
        &private_key,
        ROOM.as_bytes(),
        &success_body.encrypted_groupinfo_and_tree,
    )
    .unwrap();
    let RatchetTreeOption::Full(tree) = tbe.ratchet_tree_option else {
        panic!("expected the full tree")
    };
    let commit = cathy2.mls.join_external(tree, tbe.group_info);
    let (_, info) = cathy2.mls.group_info();
    let request = commit_request(commit.clone(), None, info, None);
    let response = update(&fed, &cathy2, ROOM, &request).await;
    assert!(success(&response), "{response:?}");
    assert_eq!(room_epoch(&fed).await, 4);
    let subscribers = fed
        .provider("c.example")
        .server()
        .state
        .store
        .subscribers(ROOM)
        .await
        .unwrap();
    assert!(subscribers.iter().any(|s| s == CATHY2), "{subscribers:?}");
    for device in [&mut alice, &mut bob, &mut cathy] {
        device.mls.process(commit.clone());
        assert_eq!(device.mls.epoch(), 4);
    }

    // Bob leaves (-06 §3.5): SelfRemove plus his removal from the
    // participant list, as proposals through b.example. The hub queues
    // them, fans them out and hands them to joiners as pending proposals.
    let bob_index = alice.mls.participants().index_of(bob.mls.user()).unwrap();
    let leave = ParticipantListUpdate {
        removed_indices: vec![bob_index],
        ..Default::default()
    };
    let p1 = bob.mls.self_remove();
    let p2 = bob.mls.propose_participants(&leave);
    let request = UpdateRequest {
        bundle: HandshakeBundle {
            proposal_or_commit: p1.clone(),
            body: HandshakeBody::Proposal {
                more_proposals: vec![p2.clone()],
            },
        },
    };
    let response = update(&fed, &bob, ROOM, &request).await;
    assert!(success(&response), "{response:?}");
    assert_eq!(room_epoch(&fed).await, 4);
    let last = store
        .room_events(ROOM, 0, 100)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let proposal_fanout = decode_fanout_batch(&last.payload).unwrap();
    assert_eq!(proposal_fanout[0].body.case(), FanoutCase::Proposal);
    let (request, private_key) = group_info_request(&cathy2.mls);
    let response = group_info(&fed, &cathy2, ROOM, &request).await;
    let GroupInfoResponseBody::Success(body) = &response.body else {
        panic!("{response:?}")
    };
    let tbe = GroupInfoRatchetTreeTbe::open(
        &crypto,
        body.cipher_suite,
        &private_key,
        ROOM.as_bytes(),
        &body.encrypted_groupinfo_and_tree,
    )
    .unwrap();
    assert_eq!(tbe.pending_proposals.len(), 2);
    for device in [&mut alice, &mut cathy, &mut cathy2] {
        device.mls.process(p1.clone());
        device.mls.process(p2.clone());
    }
    // A commit that leaves Bob's queued SelfRemove out is refused, naming
    // it; the epoch does not move (-06 §5.3).
    let ignoring = commit_without_pending(&mut alice.mls);
    let response = update(&fed, &alice, ROOM, &ignoring).await;
    assert!(
        matches!(&response.result, UpdateResult::InvalidProposal { invalid_proposals } if invalid_proposals.len() == 1),
        "{response:?}"
    );
    assert_eq!(room_epoch(&fed).await, 4);
    // Alice commits them by reference: Bob is out, b.example no longer a
    // member domain, but the commit still goes to b.example (-06 §5.5).
    let commit = build_commit(&mut alice.mls, vec![], vec![]);
    let response = update(&fed, &alice, ROOM, &commit.request).await;
    assert!(success(&response), "{response:?}");
    alice.mls.merge_pending();
    assert_eq!(room_epoch(&fed).await, 5);
    assert!(!alice.mls.participants().contains(bob.mls.user()));
    for device in [&mut cathy, &mut cathy2] {
        device.mls.process(commit_message(&commit.request));
    }
    let response = submit(
        &fed,
        &bob,
        &submit_request(app_message(&mut cathy.mls, b"bye"), &bob.mls.user()),
    )
    .await;
    assert_eq!(response.status, SubmitStatus::NotAllowed);

    // An outsider is not authorized; an unknown room is noSuchRoom. Both
    // are GroupInfoResponses, so both are HTTP 200 (divergences S15).
    let (request, _) = group_info_request(&dave.mls);
    let response = group_info(&fed, &dave, ROOM, &request).await;
    assert_eq!(response.status(), GroupInfoCode::NotAuthorized);
    let (status, body) = post(
        &fed,
        &dave,
        &format!(
            "/client/v1/rooms/{}/group-info",
            room_path("mimi://a.example/r/nowhere")
        ),
        encode(&request).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response: GroupInfoResponse = decode_exact(&body).unwrap();
    assert_eq!(response.status(), GroupInfoCode::NoSuchRoom);
    // Another device's credential is refused by the client API.
    let (status, _) = post(
        &fed,
        &dave,
        &format!("/client/v1/rooms/{}/group-info", room_path(ROOM)),
        encode(&group_info_request(&cathy2.mls).0).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Unknown rooms and malformed bodies.
    let commit = build_commit(&mut alice.mls, vec![], vec![]);
    alice.mls.discard_pending();
    let (status, _) = post(
        &fed,
        &alice,
        &format!(
            "/client/v1/rooms/{}/update",
            room_path("mimi://a.example/r/nowhere")
        ),
        encode(&commit.request).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for endpoint in ["update", "submit", "group-info"] {
        for device in [&alice, &bob] {
            let (status, _) = post(
                &fed,
                device,
                &format!("/client/v1/rooms/{}/{endpoint}", room_path(ROOM)),
                b"\x01\x02garbage".to_vec(),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}");
        }
    }
    for endpoint in ["update", "submitMessage", "groupInfo"] {
        let (status, _) = federation_post(&fed, "b.example", endpoint, ROOM, vec![0xff; 7]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}");
    }
    // A request that would succeed, followed by one more byte: malformed.
    let mut trailing = encode(&group_info_request(&cathy2.mls).0).unwrap();
    trailing.push(0);
    let (status, _) = post(
        &fed,
        &cathy2,
        &format!("/client/v1/rooms/{}/group-info", room_path(ROOM)),
        trailing.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = federation_post(&fed, "c.example", "groupInfo", ROOM, trailing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(room_epoch(&fed).await, 5);
    fed.shutdown().await;
}

/// The KeyPackageRef a Welcome names (its only new member).
fn bob_key_package_ref(welcome: &MlsMessageIn) -> Vec<u8> {
    let MlsMessageBodyIn::Welcome(welcome) = welcome.clone().extract() else {
        panic!("not a Welcome")
    };
    let secrets = welcome.secrets();
    assert_eq!(secrets.len(), 1);
    secrets[0].new_member().as_slice().to_vec()
}

/// A signed GroupInfoRequest of `client` and the HPKE private key.
fn group_info_request(client: &TestClient) -> (GroupInfoRequest, Vec<u8>) {
    let crypto = RustCrypto::default();
    let keys = crypto
        .derive_hpke_keypair(CIPHERSUITE.hpke_config(), &[7u8; 32])
        .unwrap();
    let request = GroupInfoRequestTbs {
        protocol: Protocol::Mls10,
        cipher_suite: CIPHERSUITE.into(),
        requesting_signature_key: client.signer.public().into(),
        requesting_credential: client.credential.credential.clone(),
        group_info_public_key: keys.public.clone().into(),
        joining_code: None,
    }
    .sign(&client.signer)
    .unwrap();
    (request, keys.private.to_vec())
}

async fn group_info(
    fed: &Federation,
    device: &Device,
    room: &str,
    request: &GroupInfoRequest,
) -> GroupInfoResponse {
    let (status, body) = post(
        fed,
        device,
        &format!("/client/v1/rooms/{}/group-info", room_path(room)),
        encode(request).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    decode_exact(&body).unwrap()
}

/// A raw federation request to a.example's `endpoint` from `source`.
async fn federation_post(
    fed: &Federation,
    source: &str,
    endpoint: &str,
    room: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let config = &fed.provider(source).config;
    let identity = ProviderIdentity::from_files(source, &config.tls.cert, &config.tls.key).unwrap();
    let client = fed.federation_client(Some(&identity));
    let resp = client
        .post(format!(
            "{}/v1/{endpoint}/{}",
            fed.federation_url("a.example"),
            room_path(room)
        ))
        .header("from", format!("mimi@{source}"))
        .header("content-type", "application/mimi-protocol")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// The same essentials on PostgreSQL: creation, an add, and concurrent
/// commits of which exactly one wins.
#[tokio::test]
async fn hub_on_postgres_accepts_one_commit_per_epoch() {
    let fed = start_federation(Backend::Postgres {
        admin_url: common::postgres_admin_url(),
    })
    .await;
    let mut alice = Device::new(&fed, ALICE).await;
    let mut bob = Device::new(&fed, BOB).await;
    create_room(&fed, &mut alice).await;
    assert!(success(&add_user(&fed, &mut alice, &mut bob).await));
    let c_alice = build_commit(&mut alice.mls, vec![], vec![]);
    let c_bob = build_commit(&mut bob.mls, vec![], vec![]);
    let (r_alice, r_bob) = tokio::join!(
        update(&fed, &alice, ROOM, &c_alice.request),
        update(&fed, &bob, ROOM, &c_bob.request),
    );
    assert_eq!(
        [&r_alice, &r_bob].iter().filter(|r| success(r)).count(),
        1,
        "{r_alice:?} {r_bob:?}"
    );
    assert_eq!(room_epoch(&fed).await, 2);
    let (winner, loser) = if success(&r_alice) {
        (&mut alice, &mut bob)
    } else {
        (&mut bob, &mut alice)
    };
    let winning = if success(&r_alice) { &c_alice } else { &c_bob };
    winner.mls.merge_pending();
    loser.mls.discard_pending();
    loser.mls.process(commit_message(&winning.request));
    let message = app_message(&mut alice.mls, b"hello from postgres");
    let response = submit(&fed, &alice, &submit_request(message, &alice.mls.user())).await;
    assert!(
        matches!(response.status, SubmitStatus::Accepted { .. }),
        "{response:?}"
    );
    fed.shutdown().await;
}

/// -06 §5.6 over federation: a follower relaying a GroupInfoRequest whose
/// signature does not verify gets `notAuthorized` and no GroupInfo; the
/// same request correctly signed succeeds, so the signature is the only
/// reason for the refusal.
#[tokio::test]
async fn forged_group_info_request_signature_is_refused_at_the_hub() {
    let fed = start_federation(Backend::Sqlite).await;
    let mut alice = Device::new(&fed, ALICE).await;
    let mut bob = Device::new(&fed, BOB).await;
    create_room(&fed, &mut alice).await;
    assert!(success(&add_user(&fed, &mut alice, &mut bob).await));

    // The genuine request; one with a flipped signature bit; one carrying
    // the valid signature of another device's request.
    let (genuine, _) = group_info_request(&bob.mls);
    let mut flipped = genuine.clone();
    let mut sig = flipped.signature.as_slice().to_vec();
    sig[0] ^= 1;
    flipped.signature = sig.into();
    let mut foreign = genuine.clone();
    foreign.signature = group_info_request(&TestClient::new(CATHY)).0.signature;
    for (request, expected) in [
        (genuine, GroupInfoCode::Success),
        (flipped, GroupInfoCode::NotAuthorized),
        (foreign, GroupInfoCode::NotAuthorized),
    ] {
        let body = encode(&request).unwrap();
        let (status, body) = federation_post(&fed, "b.example", "groupInfo", ROOM, body).await;
        assert_eq!(status, StatusCode::OK);
        let response: GroupInfoResponse = decode_exact(&body).unwrap();
        assert_eq!(response.status(), expected);
        if expected == GroupInfoCode::NotAuthorized {
            assert!(
                matches!(response.body, GroupInfoResponseBody::NotAuthorized),
                "no encrypted GroupInfo is returned: {:?}",
                response.body
            );
        }
    }
    // Nothing changed at the hub.
    assert_eq!(room_epoch(&fed).await, 1);
    fed.shutdown().await;
}

/// The hub's keys per cipher suite (`GET /client/v1/hub?ciphersuite=N`),
/// and the refusals for suites the crypto provider lacks: the hub
/// endpoint and groupInfo (R51) answer 400, as does creating a room whose
/// GroupInfo names such a suite.
#[tokio::test]
async fn the_hub_has_keys_per_cipher_suite_and_refuses_unsupported_ones() {
    let fed = start_federation(Backend::Sqlite).await;
    let alice = Device::new(&fed, ALICE).await;
    let p = fed.provider("a.example");
    let hub_keys = async |query: &str| {
        let resp = p
            .client_api
            .get(format!("{}/client/v1/hub{query}", p.client_base))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.text().await.unwrap())
    };
    let key_of = |json: &str| -> (u64, Vec<u8>) {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let sender = B64
            .decode(value["external_sender"].as_str().unwrap())
            .unwrap();
        let sender: ExternalSender = decode_exact(&sender).unwrap();
        let (key, _) = mimi_protocol::msgs::group_info::external_sender_parts(&sender).unwrap();
        (
            value["ciphersuite"].as_u64().unwrap(),
            key.as_slice().to_vec(),
        )
    };
    let (status, default) = hub_keys("").await;
    assert_eq!(status, StatusCode::OK);
    let (status, chacha) = hub_keys("?ciphersuite=3").await;
    assert_eq!(status, StatusCode::OK);
    let (status, p256) = hub_keys("?ciphersuite=2").await;
    assert_eq!(status, StatusCode::OK);
    // 0x0001 and 0x0003 share the Ed25519 key; 0x0002 has its P-256 key.
    assert_eq!(key_of(&default).0, 1);
    assert_eq!(key_of(&default).1, key_of(&chacha).1);
    assert_eq!(key_of(&p256).0, 2);
    assert_ne!(key_of(&default).1, key_of(&p256).1);
    let hub = &p.server().state.hub;
    let p256_suite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;
    let (expected, _) = mimi_protocol::msgs::group_info::external_sender_parts(
        &hub.external_sender(p256_suite).unwrap(),
    )
    .unwrap();
    assert_eq!(key_of(&p256).1, expected.as_slice());
    for query in ["?ciphersuite=7", "?ciphersuite=4", "?ciphersuite=65000"] {
        let (status, body) = hub_keys(query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(body.contains("not supported by this hub"), "{body}");
    }

    // groupInfo on P-384 (0x0007): 400 over federation (R51).
    let mut request = group_info_request(&alice.mls).0;
    request.cipher_suite = mimi_protocol::msgs::CipherSuite(0x0007);
    let (status, body) = federation_post(
        &fed,
        "b.example",
        "groupInfo",
        ROOM,
        encode(&request).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&body).contains("0x0007"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // A room whose GroupInfo names P-384: 400 at creation.
    let mut creator = TestClient::new(ALICE);
    creator.create_default_room(&[]);
    let (tree, info) = creator.group_info();
    let mut info = {
        let mut message = vec![0, 1, 0, 4];
        message.extend(info.tls_serialize_detached().unwrap());
        message
    };
    info[6..8].copy_from_slice(&[0, 7]);
    let resp = p
        .client_api
        .post(format!("{}/client/v1/rooms", p.client_base))
        .bearer_auth(&alice.token)
        .json(&json!({
            "room_id": "mimi://a.example/r/p384",
            "group_info": B64.encode(&info),
            "ratchet_tree": B64.encode(tree.tls_serialize_detached().unwrap()),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = resp.text().await.unwrap();
    assert!(body.contains("cipher suite 0x0007"), "{body}");
    fed.shutdown().await;
}
