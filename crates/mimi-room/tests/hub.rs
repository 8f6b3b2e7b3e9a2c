//! The hub state machine driven by real openmls clients (-06 §3 flow,
//! §5.3 update rules, §5.4 submit rules).

use mimi_protocol::components::{ParticipantListUpdate, UserindexRolePair};
use mimi_room::policy::default_role::{ADMIN, BANNED, MEMBER};
use mimi_room::{HubRoom, PolicyViolation, SubmitRejection, UpdateRejection};
use mimi_testkit::clients::*;
use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;

const ALICE: &str = "mimi://a.example/d/alice/laptop";
const BOB: &str = "mimi://b.example/d/bob/phone";
const CATHY: &str = "mimi://c.example/d/cathy/tablet";
const CATHY2: &str = "mimi://c.example/d/cathy/desktop";
const DAVE: &str = "mimi://d.example/d/dave/phone";

fn crypto() -> RustCrypto {
    RustCrypto::default()
}

/// Alice creates a room and the hub starts hosting it.
fn room_with_alice() -> (TestClient, HubRoom) {
    let mut alice = TestClient::new(ALICE);
    let (tree, info) = alice.create_default_room(&[]);
    let hub = HubRoom::create(&crypto(), tree, info).unwrap();
    (alice, hub)
}

/// Alice adds `who` as a member: one commit with the participant-list
/// update and the Add (-06 §3.2).
fn add_user(adder: &mut TestClient, hub: &mut HubRoom, who: &mut TestClient, role: u32) {
    let update = add_participant(&who.user(), role);
    let (commit, welcome) =
        adder.commit(vec![participant_update(&update)], vec![who.key_package()]);
    let accepted = hub
        .handle_commit(&crypto(), commit)
        .expect("hub refused the add");
    assert_eq!(accepted.added.len(), 1);
    assert_eq!(accepted.added[0].device, who.device);
    adder.merge_pending();
    let tree = adder.group().export_ratchet_tree().into();
    who.join(welcome.unwrap(), tree);
}

#[test]
fn room_creation_requires_creator_in_participant_list() {
    let mut alice = TestClient::new(ALICE);
    let (tree, info) = alice.create_room(
        &[("mimi://a.example/u/someone-else", ADMIN)],
        mimi_room::policy::default_roles(),
    );
    let err = HubRoom::create(&crypto(), tree, info)
        .err()
        .expect("inconsistent room accepted");
    assert!(err.to_string().contains("alice"), "{err}");
}

#[test]
fn protocol_flow_add_add_leave_new_device() {
    let (mut alice, mut hub) = room_with_alice();
    let mut bob = TestClient::new(BOB);
    let mut cathy = TestClient::new(CATHY);

    // Alice adds Bob, Bob adds Cathy (-06 §3.2, §3.3).
    add_user(&mut alice, &mut hub, &mut bob, MEMBER);
    assert_eq!(hub.epoch(), 1);
    let (commit, welcome) = bob.commit(
        vec![participant_update(&add_participant(&cathy.user(), MEMBER))],
        vec![cathy.key_package()],
    );
    hub.handle_commit(&crypto(), commit.clone()).unwrap();
    bob.merge_pending();
    alice.process(commit);
    cathy.join(welcome.unwrap(), bob.group().export_ratchet_tree().into());
    assert_eq!(hub.epoch(), 2);
    assert_eq!(alice.participants(), cathy.participants());
    assert!(hub.member_domains().contains("c.example"));

    // Cathy may send; Dave (not a participant) may not (-06 §5.4).
    hub.authorize_message(2, &cathy.user()).unwrap();
    assert!(matches!(
        hub.authorize_message(2, "mimi://d.example/u/dave"),
        Err(SubmitRejection::NotActive { ref user }) if user == "mimi://d.example/u/dave"
    ));
    assert_eq!(
        hub.authorize_message(1, &cathy.user()),
        Err(SubmitRejection::EpochTooOld { current_epoch: 2 })
    );
    assert!(matches!(
        hub.authorize_message(3, &cathy.user()),
        Err(SubmitRejection::EpochInFuture {
            epoch: 3,
            current_epoch: 2
        })
    ));

    // Bob leaves: SelfRemove plus removing himself from the participant
    // list, as proposals the hub queues (-06 §3.5).
    let bob_index = alice.participants().index_of(bob.user()).unwrap();
    let leave = ParticipantListUpdate {
        removed_indices: vec![bob_index],
        ..Default::default()
    };
    let p1 = bob.self_remove();
    let p2 = bob.propose_participants(&leave);
    let refs = hub
        .handle_proposals(&crypto(), vec![p1.clone(), p2.clone()])
        .unwrap();
    assert_eq!(refs.len(), 2);
    for p in [&p1, &p2] {
        alice.process(p.clone());
        cathy.process(p.clone());
    }

    // A commit that ignores Bob's queued removal is refused, and changes
    // nothing at the hub.
    let epoch = hub.epoch();
    let missing = hub.handle_commit(&crypto(), cathy_commit_without_pending(&mut cathy));
    assert!(
        matches!(missing, Err(UpdateRejection::MissingQueuedRemovals { ref refs }) if refs.len() == 1),
        "{missing:?}"
    );
    assert_eq!(hub.epoch(), epoch);

    // Cathy commits Bob's proposals by reference: accepted.
    let (commit, _) = cathy.commit(vec![], vec![]);
    let accepted = hub.handle_commit(&crypto(), commit.clone()).unwrap();
    assert_eq!(accepted.removed, vec![BOB.to_string()]);
    cathy.merge_pending();
    alice.process(commit);
    assert!(!alice.participants().contains(bob.user()));
    assert!(!hub.member_domains().contains("b.example"));
    assert!(matches!(
        hub.authorize_message(hub.epoch(), &bob.user()),
        Err(SubmitRejection::NotActive { .. })
    ));

    // Cathy's new device joins by external commit (-06 §3.6).
    let mut cathy2 = TestClient::new(CATHY2);
    let (tree, info) = cathy.group_info();
    let commit = cathy2.join_external(tree, info);
    hub.handle_commit(&crypto(), commit.clone()).unwrap();
    alice.process(commit.clone());
    cathy.process(commit);
    assert_eq!(alice.epoch(), hub.epoch());
    assert_eq!(cathy2.epoch(), hub.epoch());
    assert_eq!(hub.active_users().get(&cathy.user()), Some(&2));
}

/// Builds a commit from Cathy's state with the pending proposals dropped.
fn cathy_commit_without_pending(cathy: &mut TestClient) -> MlsMessageIn {
    let provider = &cathy.provider;
    let group = cathy.group.as_mut().unwrap();
    let mut stage = group
        .commit_builder()
        .consume_proposal_store(false)
        .force_self_update(true)
        .load_psks(provider.storage())
        .unwrap();
    stage.with_app_data_dictionary_updates(None);
    let bundle = stage
        .build(provider.rand(), provider.crypto(), &cathy.signer, |_| true)
        .unwrap()
        .stage_commit(provider)
        .unwrap();
    let commit = wire(bundle.into_commit());
    group.clear_pending_commit(provider.storage()).unwrap();
    commit
}

#[test]
fn exactly_one_commit_per_epoch() {
    let (mut alice, mut hub) = room_with_alice();
    let mut bob = TestClient::new(BOB);
    add_user(&mut alice, &mut hub, &mut bob, MEMBER);

    // Both commit against epoch 1; the hub takes the first it sees.
    let (from_bob, _) = bob.commit(vec![], vec![]);
    let (from_alice, _) = alice.commit(vec![], vec![]);
    hub.handle_commit(&crypto(), from_bob.clone()).unwrap();
    let late = hub.handle_commit(&crypto(), from_alice);
    assert!(
        matches!(late, Err(UpdateRejection::WrongEpoch { current_epoch: 2 })),
        "{late:?}"
    );
    bob.merge_pending();
    alice.discard_pending();
    alice.process(from_bob);
    assert_eq!(alice.epoch(), 2);
}

#[test]
fn policy_refuses_unauthorized_membership_changes() {
    let (mut alice, mut hub) = room_with_alice();
    let mut bob = TestClient::new(BOB);
    add_user(&mut alice, &mut hub, &mut bob, MEMBER);
    let dave = TestClient::new(DAVE);

    // A member may not add somebody as admin.
    let (commit, _) = bob.commit(
        vec![participant_update(&add_participant(&dave.user(), ADMIN))],
        vec![dave.key_package()],
    );
    assert!(matches!(
        hub.handle_commit(&crypto(), commit),
        Err(UpdateRejection::Proposal {
            violation: PolicyViolation::ParticipantAddition { role: ADMIN, .. },
            ..
        })
    ));
    bob.discard_pending();

    // A client whose user is not in the participant list may not be added.
    let (commit, _) = alice.commit(vec![], vec![dave.key_package()]);
    let refused = hub.handle_commit(&crypto(), commit);
    assert!(
        matches!(refused, Err(UpdateRejection::InactiveWithClients { ref user }) if user.contains("dave")),
        "{refused:?}"
    );
    alice.discard_pending();

    // A member may not remove another member's client (canKick).
    let alice_leaf = bob.leaf_of(ALICE);
    let (commit, _) = bob.commit_with_removals(vec![], vec![], vec![alice_leaf]);
    assert!(matches!(
        hub.handle_commit(&crypto(), commit),
        Err(UpdateRejection::Proposal {
            violation: PolicyViolation::RemoveClientsOf { .. },
            ..
        })
    ));
    bob.discard_pending();

    // Someone outside the participant list may not join by external commit
    // without adding itself (and the room lets nobody add itself).
    let mut outsider = TestClient::new(DAVE);
    let (tree, info) = alice.group_info();
    let refused = hub.handle_commit(&crypto(), outsider.join_external(tree, info));
    assert!(
        matches!(refused, Err(UpdateRejection::JoinerNotListed { .. })),
        "{refused:?}"
    );
    assert_eq!(hub.epoch(), 1);
}

#[test]
fn banning_requires_removing_the_clients_and_blocks_messages() {
    let (mut alice, mut hub) = room_with_alice();
    let mut bob = TestClient::new(BOB);
    add_user(&mut alice, &mut hub, &mut bob, MEMBER);
    let bob_index = alice.participants().index_of(bob.user()).unwrap();
    let ban = ParticipantListUpdate {
        changed_role_participants: vec![UserindexRolePair {
            user_index: bob_index,
            role_index: BANNED,
        }],
        ..Default::default()
    };

    // Banning while leaving Bob's client in the group is inconsistent.
    let (commit, _) = alice.commit(vec![participant_update(&ban)], vec![]);
    assert!(matches!(
        hub.handle_commit(&crypto(), commit),
        Err(UpdateRejection::InactiveWithClients { ref user }) if *user == bob.user()
    ));
    alice.discard_pending();

    // Ban plus Remove of Bob's client in one commit is accepted.
    let bob_leaf = alice.leaf_of(BOB);
    let (commit, _) =
        alice.commit_with_removals(vec![participant_update(&ban)], vec![], vec![bob_leaf]);
    let accepted = hub.handle_commit(&crypto(), commit).unwrap();
    assert_eq!(accepted.removed, vec![BOB.to_string()]);
    alice.merge_pending();
    assert_eq!(hub.policy_state().unwrap().role_of(&bob.user()), BANNED);
    assert!(matches!(
        hub.authorize_message(hub.epoch(), &bob.user()),
        Err(SubmitRejection::NotActive { .. })
    ));

    // Re-adding the banned user's client is refused.
    let mut bob_again = TestClient::new(BOB);
    let (commit, _) = alice.commit(vec![], vec![bob_again.key_package()]);
    assert!(matches!(
        hub.handle_commit(&crypto(), commit),
        Err(UpdateRejection::InactiveWithClients { ref user }) if *user == bob.user()
    ));
    alice.discard_pending();
    let _ = &mut bob_again;
}

#[test]
fn state_survives_serialisation() {
    let (mut alice, hub) = room_with_alice();
    let bytes = hub.to_bytes().unwrap();
    let mut restored = HubRoom::from_bytes(&bytes).unwrap();
    assert_eq!(
        restored.to_bytes().unwrap(),
        bytes,
        "serialisation is deterministic"
    );
    let mut bob = TestClient::new(BOB);
    add_user(&mut alice, &mut restored, &mut bob, MEMBER);
    let again = HubRoom::from_bytes(&restored.to_bytes().unwrap()).unwrap();
    assert_eq!(again.epoch(), 1);
    assert_eq!(
        again.policy_state().unwrap(),
        restored.policy_state().unwrap()
    );
    assert!(HubRoom::from_bytes(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn an_accepted_ban_blocks_the_user_before_it_is_committed() {
    let (mut alice, mut hub) = room_with_alice();
    let mut bob = TestClient::new(BOB);
    add_user(&mut alice, &mut hub, &mut bob, MEMBER);
    let bob_index = alice.participants().index_of(bob.user()).unwrap();
    let ban = ParticipantListUpdate {
        changed_role_participants: vec![UserindexRolePair {
            user_index: bob_index,
            role_index: BANNED,
        }],
        ..Default::default()
    };
    hub.authorize_message(hub.epoch(), &bob.user()).unwrap();

    // Alice's ban is accepted as a proposal; it is not committed yet.
    hub.handle_proposals(&crypto(), vec![alice.propose_participants(&ban)])
        .unwrap();

    // Bob may no longer send messages, commit, or propose anything but
    // his own removal (-06 §5.3).
    assert!(matches!(
        hub.authorize_message(hub.epoch(), &bob.user()),
        Err(SubmitRejection::NotActive { .. })
    ));
    let (commit, _) = bob.commit(vec![], vec![]);
    assert!(matches!(
        hub.handle_commit(&crypto(), commit),
        Err(UpdateRejection::CommitterNotActive { .. })
    ));
    bob.discard_pending();
    let add_dave = bob.propose_participants(&add_participant("mimi://d.example/u/dave", MEMBER));
    assert!(matches!(
        hub.handle_proposals(&crypto(), vec![add_dave]),
        Err(UpdateRejection::ProposerMayOnlyLeave { .. })
    ));
    hub.handle_proposals(&crypto(), vec![bob.self_remove()])
        .unwrap();
    // Alice is unaffected.
    hub.authorize_message(hub.epoch(), &alice.user()).unwrap();
}

#[test]
fn a_client_without_self_remove_joins_and_leaves_with_a_remove_of_its_own_leaf() {
    let (mut alice, mut hub) = room_with_alice();
    // Another implementation's client: the room's required capabilities,
    // no SelfRemove (-06 does not require it).
    let mut bob = TestClient::new(BOB).with_capabilities(capabilities_without_self_remove());
    add_user(&mut alice, &mut hub, &mut bob, MEMBER);

    // Bob leaves: a Remove proposal for his own leaf and the removal of
    // his user from the participant list, both queued by the hub.
    let bob_index = alice.participants().index_of(bob.user()).unwrap();
    let leave = ParticipantListUpdate {
        removed_indices: vec![bob_index],
        ..Default::default()
    };
    let remove = bob.leave_by_remove();
    let unlist = bob.propose_participants(&leave);
    hub.handle_proposals(&crypto(), vec![remove.clone(), unlist.clone()])
        .unwrap();
    alice.process(remove);
    alice.process(unlist);

    // Alice commits both; Bob's client is gone and his user unlisted.
    let (commit, _) = alice.commit(vec![], vec![]);
    let accepted = hub.handle_commit(&crypto(), commit).unwrap();
    assert_eq!(accepted.removed, vec![BOB.to_string()]);
    alice.merge_pending();
    assert!(!alice.participants().contains(bob.user()));
    assert!(!hub.member_domains().contains("b.example"));
}

/// An open room (role 0 `canOpenJoin`, to members) whose members may not
/// add anyone: Alice (admin) and Bob (member).
fn open_room_without_member_adds() -> (TestClient, TestClient, HubRoom) {
    use mimi_protocol::components::room_policy::capabilities as cap;
    let mut roles = mimi_room::policy::default_roles();
    for role in &mut roles.roles {
        if role.role_index == MEMBER {
            role.role_capabilities
                .retain(|c| *c != cap::CAN_ADD_PARTICIPANT);
        }
    }
    roles.roles.push(mimi_room::policy::no_role(
        vec![cap::CAN_OPEN_JOIN],
        vec![MEMBER],
    ));
    let mut alice = TestClient::new(ALICE);
    let me = alice.user();
    let (tree, info) = alice.create_room(&[(me.as_str(), ADMIN)], roles);
    let mut hub = HubRoom::create(&crypto(), tree, info).unwrap();
    let mut bob = TestClient::new(BOB);
    add_user(&mut alice, &mut hub, &mut bob, MEMBER);
    (alice, bob, hub)
}

#[test]
fn a_user_who_may_join_by_itself_is_added_by_its_external_proposal() {
    let (alice, mut bob, mut hub) = open_room_without_member_adds();
    let dave = TestClient::new(DAVE);
    let (_, info) = alice.group_info();
    let proposal = dave.join_proposal(&info);
    hub.handle_proposals(&crypto(), vec![proposal.clone()])
        .expect("the hub queues the join proposal");
    bob.process(proposal);

    // Bob may not add anyone himself, and Dave may only take a role he
    // could join as.
    let (commit, _) = bob.commit(
        vec![participant_update(&add_participant(&user_of(DAVE), ADMIN))],
        vec![],
    );
    let refused = hub.handle_commit(&crypto(), commit);
    assert!(
        matches!(
            refused,
            Err(UpdateRejection::Proposal {
                violation: PolicyViolation::ParticipantAddition { role: ADMIN, .. },
                ..
            })
        ),
        "{refused:?}"
    );
    bob.discard_pending();
    // Without listing Dave, his client may not come in.
    let (commit, _) = bob.commit(vec![], vec![]);
    let refused = hub.handle_commit(&crypto(), commit);
    assert!(
        matches!(refused, Err(UpdateRejection::AddNotAuthorized { ref user }) if *user == user_of(DAVE)),
        "{refused:?}"
    );
    bob.discard_pending();

    // Listed as a member, Dave's own proposal lets Bob add him.
    let (commit, welcome) = bob.commit(
        vec![participant_update(&add_participant(&user_of(DAVE), MEMBER))],
        vec![],
    );
    let accepted = hub.handle_commit(&crypto(), commit).unwrap();
    assert_eq!(accepted.added.len(), 1);
    assert_eq!(accepted.added[0].device, DAVE);
    assert!(welcome.is_some());
    assert_eq!(hub.policy_state().unwrap().role_of(&user_of(DAVE)), MEMBER);
}

#[test]
fn an_external_proposal_needs_a_user_who_may_join_by_itself() {
    // The default roles let nobody in by themselves.
    let (mut alice, mut hub) = room_with_alice();
    let mut bob = TestClient::new(BOB);
    add_user(&mut alice, &mut hub, &mut bob, MEMBER);
    let (_, info) = alice.group_info();
    let refused = hub.handle_proposals(&crypto(), vec![TestClient::new(DAVE).join_proposal(&info)]);
    assert!(
        matches!(refused, Err(UpdateRejection::JoinNotAllowed { .. })),
        "{refused:?}"
    );
    // Nor one already in the list (Bob's new device asks as a new user).
    let refused = hub.handle_proposals(
        &crypto(),
        vec![TestClient::new("mimi://b.example/d/bob/tablet").join_proposal(&info)],
    );
    assert!(
        matches!(refused, Err(UpdateRejection::JoinNotAllowed { .. })),
        "{refused:?}"
    );
}
