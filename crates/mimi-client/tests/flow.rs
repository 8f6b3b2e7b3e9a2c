//! The -06 §3 example flow among real openmls clients, with
//! `mimi_room::HubRoom` as the hub in-process.

mod common;

use common::*;
use mimi_client::{Event, RoomStatus, content};
use mimi_room::policy::default_role::MEMBER;

#[test]
fn protocol_flow_of_section_3() {
    // §3.1 Alice creates the room.
    let mut net = Net::create(ALICE);
    assert_eq!(net.device(ALICE).epoch(ROOM).unwrap(), 0);
    assert_eq!(
        net.device(ALICE)
            .participants(ROOM)
            .unwrap()
            .role_of(user(ALICE)),
        Some(mimi_room::policy::default_role::ADMIN)
    );

    // §3.2 Alice adds Bob: participant list + Add in one commit.
    let accepted = net.add_member(ALICE, BOB).unwrap().unwrap();
    assert_eq!(accepted.added[0].device, BOB);
    assert!(matches!(
        net.events_of(BOB),
        [Event::Joined { epoch: 1, .. }]
    ));
    net.say(ALICE, "hi Bob");

    // §3.3 Bob adds Cathy.
    net.add_member(BOB, CATHY).unwrap();
    assert!(net.events_of(ALICE).iter().any(|e| matches!(
        e,
        Event::CommitApplied { epoch: 2, added, room_state_changed: true, .. } if added == &[CATHY.to_string()]
    )));

    // §3.4 Cathy sends a message; replies, reactions, edits and deletes too.
    let hello = net.say(CATHY, "hello everyone");
    let out = net
        .device(ALICE)
        .send(ROOM, content::reply(hello, "welcome Cathy"))
        .unwrap();
    net.submit(out).unwrap();
    let out = net
        .device(BOB)
        .send(ROOM, content::reaction(hello, "👍"))
        .unwrap();
    net.submit(out).unwrap();
    let typo = net.say(BOB, "helo");
    let out = net
        .device(BOB)
        .send(ROOM, content::edit(typo, "hello"))
        .unwrap();
    net.submit(out).unwrap();
    let out = net.device(BOB).send(ROOM, content::delete(typo)).unwrap();
    net.submit(out).unwrap();
    for device in [ALICE, BOB, CATHY] {
        let history = net.device(device).history(ROOM).unwrap();
        let hello_msg = history
            .iter()
            .find(|m| m.id == hello)
            .expect("hello missing");
        assert_eq!(hello_msg.sender_user, user(CATHY));
        assert_eq!(hello_msg.sender_device, CATHY);
        assert!(hello_msg.franking_tag.is_some(), "franking tag in safe AAD");
        assert!(history.iter().any(|m| m.content.in_reply_to == Some(hello)));
        assert_eq!(
            history
                .iter()
                .filter(|m| m.content.replaces == Some(typo))
                .count(),
            2
        );
    }
    // Alice received the same message IDs the senders computed.
    let alice_ids: Vec<_> = net
        .device(ALICE)
        .history(ROOM)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    let cathy_ids: Vec<_> = net
        .device(CATHY)
        .history(ROOM)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert!(cathy_ids.iter().all(|id| alice_ids.contains(id)));

    // §3.5 Bob leaves: proposals queued at the hub, Cathy commits them.
    let req = net.device(BOB).leave(ROOM).unwrap();
    assert!(net.update(BOB, req).unwrap().is_none());
    assert!(
        net.events_of(CATHY)
            .iter()
            .any(|e| matches!(e, Event::ProposalQueued { proposer: Some(p), .. } if p == BOB))
    );
    // Sending is impossible while proposals are queued (openmls rule).
    assert!(matches!(
        net.device(ALICE).send(ROOM, content::text("x")),
        Err(mimi_client::Error::PendingProposals(_))
    ));
    let req = net.device(CATHY).commit_pending(ROOM).unwrap();
    let accepted = net.update(CATHY, req).unwrap().unwrap();
    assert_eq!(accepted.removed, vec![BOB.to_string()]);
    assert!(matches!(
        net.events_of(BOB).last(),
        Some(Event::RemovedFromRoom { .. })
    ));
    assert_eq!(
        net.device(BOB).room_status(ROOM).unwrap(),
        RoomStatus::Removed
    );
    net.say(ALICE, "bye Bob");

    // §3.6 Cathy adds a new device by external commit.
    net.new_device(CATHY2);
    let (info, tree) = (net.group_info.clone(), net.ratchet_tree.clone());
    let req = net
        .device(CATHY2)
        .join_by_external_commit(ROOM, info, tree)
        .unwrap();
    let accepted = net.update(CATHY2, req).unwrap().unwrap();
    assert_eq!(accepted.committer, user(CATHY));
    assert_eq!(
        net.device(CATHY2).room_status(ROOM).unwrap(),
        RoomStatus::Active
    );
    net.say(CATHY2, "from my desktop");
    net.say(ALICE, "hi desktop");

    // Everybody agrees on the room.
    let epoch = net.hub.epoch();
    let participants = net.device(ALICE).participants(ROOM).unwrap();
    for device in [ALICE, CATHY, CATHY2] {
        let d = net.device(device);
        assert_eq!(d.epoch(ROOM).unwrap(), epoch, "{device}");
        assert_eq!(d.participants(ROOM).unwrap(), participants, "{device}");
        let members = d.members(ROOM).unwrap();
        assert!(members.contains(&CATHY.to_string()) && members.contains(&CATHY2.to_string()));
        assert!(!members.contains(&BOB.to_string()));
    }
    assert!(!participants.contains(user(BOB)));
    assert_eq!(participants.len(), 2);
    assert_eq!(net.hub.policy_state().unwrap().participants, participants);

    // Everybody has every message sent while they were a member.
    let all = [
        "hi Bob",
        "hello everyone",
        "welcome Cathy",
        "👍",
        "helo",
        "hello",
        "bye Bob",
        "from my desktop",
        "hi desktop",
    ];
    assert_eq!(net.texts(ALICE), all);
    assert_eq!(net.texts(BOB), all[..6]);
    assert_eq!(net.texts(CATHY), all[1..]);
    assert_eq!(net.texts(CATHY2), all[7..]);

    // Own echoes were recognised and ignored.
    for device in [ALICE, BOB, CATHY, CATHY2] {
        assert!(
            net.events_of(device)
                .iter()
                .any(|e| matches!(e, Event::OwnEcho { .. })),
            "{device}"
        );
    }

    // Cathy leaves from her tablet: SelfRemove, Remove of her desktop and
    // her participant-list removal; Alice commits them (-06 §3.5).
    let req = net.device(CATHY).leave(ROOM).unwrap();
    net.update(CATHY, req).unwrap();
    let req = net.device(ALICE).commit_pending(ROOM).unwrap();
    let accepted = net.update(ALICE, req).unwrap().unwrap();
    let mut removed = accepted.removed.clone();
    removed.sort();
    assert_eq!(removed, [CATHY2.to_string(), CATHY.to_string()]);
    for device in [CATHY, CATHY2] {
        assert!(matches!(
            net.events_of(device).last(),
            Some(Event::RemovedFromRoom { .. })
        ));
    }
    assert_eq!(
        net.device(ALICE).members(ROOM).unwrap(),
        [ALICE.to_string()]
    );
    assert_eq!(net.device(ALICE).participants(ROOM).unwrap().len(), 1);
}

#[test]
fn committer_learns_acceptance_from_the_echo() {
    let mut net = Net::create(ALICE);
    net.confirm_before_fanout = false;
    net.add_member(ALICE, BOB).unwrap();
    assert!(matches!(
        net.events_of(ALICE),
        [Event::OwnCommitConfirmed { epoch: 1, .. }]
    ));
    assert!(!net.device(ALICE).has_pending_commit(ROOM).unwrap());
    // A late success answer is harmless.
    assert_eq!(net.device(ALICE).confirm_commit(ROOM).unwrap(), 1);
    net.say(BOB, "hi");
    assert_eq!(net.texts(ALICE), ["hi"]);

    // The same for an external joiner.
    net.new_device(mimi_client_test_alice2());
    let (info, tree) = (net.group_info.clone(), net.ratchet_tree.clone());
    let req = net
        .device(mimi_client_test_alice2())
        .join_by_external_commit(ROOM, info, tree)
        .unwrap();
    net.update(mimi_client_test_alice2(), req).unwrap();
    assert_eq!(
        net.device(mimi_client_test_alice2())
            .room_status(ROOM)
            .unwrap(),
        RoomStatus::Active
    );
    net.say(mimi_client_test_alice2(), "second device");
    assert_eq!(net.texts(BOB), ["hi", "second device"]);
}

fn mimi_client_test_alice2() -> &'static str {
    "mimi://a.example/d/alice/phone"
}

#[test]
fn wrong_epoch_then_discard_and_retry() {
    let mut net = Net::create(ALICE);
    net.add_member(ALICE, BOB).unwrap();

    // Both commit against epoch 1; Bob's reaches the hub first.
    net.new_device(CATHY);
    let kps = net.key_packages(CATHY, 1);
    let from_alice = net
        .device(ALICE)
        .add_user(ROOM, &user(CATHY), MEMBER, kps)
        .unwrap();
    let from_bob = net.device(BOB).commit_pending(ROOM).unwrap();
    assert!(
        net.device(ALICE).commit_pending(ROOM).is_err(),
        "one pending commit at a time"
    );
    net.update(BOB, from_bob).unwrap();
    let refused = net.update(ALICE, from_alice);
    assert!(
        matches!(
            refused,
            Err(mimi_room::UpdateRejection::WrongEpoch { current_epoch: 2 })
        ),
        "{refused:?}"
    );
    net.device(ALICE).discard_commit(ROOM).unwrap();
    assert_eq!(net.device(ALICE).epoch(ROOM).unwrap(), 2);

    // Retry with fresh KeyPackages (the first ones were never used).
    let kps = net.key_packages(CATHY, 1);
    let req = net
        .device(ALICE)
        .add_user(ROOM, &user(CATHY), MEMBER, kps)
        .unwrap();
    net.update(ALICE, req).unwrap();
    net.say(CATHY, "made it");
    for d in [ALICE, BOB, CATHY] {
        assert_eq!(net.device(d).epoch(ROOM).unwrap(), 3);
        assert_eq!(net.texts(d), ["made it"]);
    }
}

#[test]
fn wrong_epoch_discard_before_fanout() {
    // The hub's refusal may arrive before the winning commit's fanout.
    let mut net = Net::create(ALICE);
    net.add_member(ALICE, BOB).unwrap();
    let from_alice = net.device(ALICE).commit_pending(ROOM).unwrap();
    net.device(ALICE).discard_commit(ROOM).unwrap();
    assert!(!net.device(ALICE).has_pending_commit(ROOM).unwrap());
    drop(from_alice);
    let req = net.device(BOB).commit_pending(ROOM).unwrap();
    net.update(BOB, req).unwrap();
    assert_eq!(net.device(ALICE).epoch(ROOM).unwrap(), 2);
}

#[test]
fn removed_device_detects_its_removal() {
    let mut net = Net::create(ALICE);
    net.add_member(ALICE, BOB).unwrap();

    let req = net.device(ALICE).remove_user(ROOM, &user(BOB)).unwrap();
    let accepted = net.update(ALICE, req).unwrap().unwrap();
    assert_eq!(accepted.removed, vec![BOB.to_string()]);
    assert!(matches!(
        net.events_of(BOB).last(),
        Some(Event::RemovedFromRoom { committer: Some(c), .. }) if c == ALICE
    ));
    let bob = net.device(BOB);
    assert_eq!(bob.room_status(ROOM).unwrap(), RoomStatus::Removed);
    assert!(matches!(
        bob.send(ROOM, content::text("still here?")),
        Err(mimi_client::Error::NotAMember(_))
    ));
    assert!(net.device(ALICE).participants(ROOM).unwrap().len() == 1);
}

#[test]
fn banning_removes_the_clients_in_the_same_commit() {
    let mut net = Net::create(ALICE);
    net.add_member(ALICE, BOB).unwrap();
    let req = net
        .device(ALICE)
        .set_role(ROOM, &user(BOB), mimi_room::policy::default_role::BANNED)
        .unwrap();
    let accepted = net.update(ALICE, req).unwrap().unwrap();
    assert_eq!(accepted.removed, vec![BOB.to_string()]);
    assert_eq!(
        net.device(ALICE)
            .participants(ROOM)
            .unwrap()
            .role_of(user(BOB)),
        Some(mimi_room::policy::default_role::BANNED)
    );
    assert_eq!(
        net.device(BOB).room_status(ROOM).unwrap(),
        RoomStatus::Removed
    );
}

#[test]
fn key_packages_of_another_user_are_refused() {
    let mut net = Net::create(ALICE);
    net.new_device(BOB);
    let kps = net.key_packages(BOB, 2);
    let refused = net.device(ALICE).add_user(ROOM, &user(CATHY), MEMBER, kps);
    assert!(
        matches!(refused, Err(mimi_client::Error::InvalidKeyPackage(_))),
        "{refused:?}"
    );
    assert!(!net.device(ALICE).has_pending_commit(ROOM).unwrap());
}

#[test]
fn epoch_too_old_then_resend() {
    let mut net = Net::create(ALICE);
    net.add_member(ALICE, BOB).unwrap();

    // Alice's message is built at epoch 1, but Bob's commit wins the race.
    let late = net.device(ALICE).send(ROOM, content::text("late")).unwrap();
    let req = net.device(BOB).commit_pending(ROOM).unwrap();
    net.update(BOB, req).unwrap();
    let refused = net.submit(late.clone());
    assert_eq!(
        refused,
        Err(mimi_room::SubmitRejection::EpochTooOld { current_epoch: 2 })
    );
    assert!(
        net.device(ALICE)
            .discard_message(ROOM, late.message_id)
            .unwrap()
    );
    net.say(ALICE, "late");
    assert_eq!(net.texts(ALICE), ["late"]);
    assert_eq!(net.texts(BOB), ["late"]);
}

#[test]
fn tampered_and_foreign_fanout_is_an_error_not_a_panic() {
    use mimi_protocol::msgs::{FanoutBody, FanoutMessage};
    let mut net = Net::create(ALICE);
    net.add_member(ALICE, BOB).unwrap();
    let out = net
        .device(ALICE)
        .send(ROOM, content::text("intact"))
        .unwrap();
    let bytes = mimi_protocol::encode(&out.request.app_message).unwrap();

    // Flip each of the last bytes (ciphertext): every variant is refused.
    for i in 1..8 {
        let mut tampered = bytes.clone();
        let n = tampered.len();
        tampered[n - i] ^= 0x01;
        let Ok(message) = mimi_protocol::decode_exact(&tampered) else {
            continue;
        };
        let fanout = FanoutMessage {
            timestamp: 1,
            message,
            body: FanoutBody::Application { frank: None },
        };
        assert!(net.device(BOB).process_fanout(fanout).is_err());
    }
    // A message of a group Bob is not in.
    let mut stranger = mimi_client::Device::new("mimi://d.example/d/dave/pc").unwrap();
    stranger
        .create_room("mimi://d.example/r/other", None, Default::default())
        .unwrap();
    let foreign = stranger
        .send("mimi://d.example/r/other", content::text("?"))
        .unwrap();
    assert!(matches!(
        net.device(BOB).process_fanout(FanoutMessage {
            timestamp: 1,
            message: foreign.request.app_message,
            body: FanoutBody::Application { frank: None },
        }),
        Err(mimi_client::Error::UnknownRoom(_))
    ));
    // The intact message still decrypts.
    net.submit(out).unwrap();
    assert_eq!(net.texts(BOB), ["intact"]);
}

#[test]
fn external_join_waits_for_queued_removals() {
    let mut net = Net::create(ALICE);
    for (adder, device) in [(ALICE, BOB), (ALICE, CATHY)] {
        net.add_member(adder, device).unwrap();
    }
    let req = net.device(BOB).leave(ROOM).unwrap();
    net.update(BOB, req).unwrap();

    // An external commit cannot include the queued removals by reference
    // (RFC 9420 §12.4.3.2), so the hub refuses it until somebody commits.
    net.new_device(CATHY2);
    let (info, tree) = (net.group_info.clone(), net.ratchet_tree.clone());
    let req = net
        .device(CATHY2)
        .join_by_external_commit(ROOM, info, tree)
        .unwrap();
    let refused = net.update(CATHY2, req);
    assert!(
        matches!(
            refused,
            Err(mimi_room::UpdateRejection::MissingQueuedRemovals { .. })
        ),
        "{refused:?}"
    );
    net.device(CATHY2).discard_commit(ROOM).unwrap();
    assert!(net.device(CATHY2).rooms().is_empty());

    let req = net.device(CATHY).commit_pending(ROOM).unwrap();
    net.update(CATHY, req).unwrap();
    let (info, tree) = (net.group_info.clone(), net.ratchet_tree.clone());
    let req = net
        .device(CATHY2)
        .join_by_external_commit(ROOM, info, tree)
        .unwrap();
    net.update(CATHY2, req).unwrap();
    net.say(CATHY2, "in");
    assert_eq!(net.texts(ALICE), ["in"]);
}

/// A member of another implementation whose leaf lacks SelfRemove (-06
/// does not require it): a bare openmls client.
struct ForeignMember {
    provider: openmls_rust_crypto::OpenMlsRustCrypto,
    signer: openmls_basic_credential::SignatureKeyPair,
    credential: openmls::prelude::CredentialWithKey,
    group: Option<openmls::prelude::MlsGroup>,
}

impl ForeignMember {
    fn new(device: &str) -> Self {
        use openmls::prelude::*;
        let provider = openmls_rust_crypto::OpenMlsRustCrypto::default();
        let signer = openmls_basic_credential::SignatureKeyPair::new(
            mimi_client::CIPHERSUITE.signature_algorithm(),
        )
        .unwrap();
        signer.store(provider.storage()).unwrap();
        let credential = CredentialWithKey {
            credential: BasicCredential::new(device.as_bytes().to_vec()).into(),
            signature_key: signer.public().into(),
        };
        Self {
            provider,
            signer,
            credential,
            group: None,
        }
    }

    fn key_package(&self) -> openmls::prelude::KeyPackageIn {
        use openmls::prelude::*;
        let capabilities = Capabilities::new(
            None,
            None,
            Some(&[ExtensionType::AppDataDictionary]),
            Some(&[ProposalType::AppDataUpdate]),
            None,
        );
        let bundle = KeyPackage::builder()
            .leaf_node_capabilities(capabilities)
            .build(
                mimi_client::CIPHERSUITE,
                &self.provider,
                &self.signer,
                self.credential.clone(),
            )
            .unwrap();
        on_the_wire(&KeyPackageIn::from(bundle.key_package().clone()))
    }
}

#[test]
fn a_member_without_self_remove_makes_leavers_use_a_remove_of_their_own_leaf() {
    use openmls::prelude::*;
    let mut net = Net::create(ALICE);
    net.add_member(ALICE, BOB).unwrap();
    let dave = "mimi://d.example/d/dave/phone";
    let mut foreign = ForeignMember::new(dave);
    let request = net
        .device(ALICE)
        .add_user(ROOM, &user(dave), MEMBER, vec![foreign.key_package()])
        .unwrap();
    let mimi_protocol::msgs::HandshakeBody::Commit { welcome, .. } = &request.bundle.body else {
        panic!("an add is a commit");
    };
    let welcome = welcome.clone().expect("a Welcome for Dave");
    net.update(ALICE, request).unwrap();
    let staged = StagedWelcome::new_from_welcome(
        &foreign.provider,
        &MlsGroupJoinConfig::builder()
            .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build(),
        welcome,
        Some(net.hub.public_group().export_ratchet_tree().into()),
    )
    .unwrap();
    foreign.group = Some(staged.into_group(&foreign.provider).unwrap());

    // Bob leaves. Dave could not process a commit carrying SelfRemove
    // (RFC 9420 §12.2), so Bob's leave is a Remove of his own leaf.
    let request = net.device(BOB).leave(ROOM).unwrap();
    let group = foreign.group.as_mut().unwrap();
    let processed = group
        .process_message(
            &foreign.provider,
            request
                .bundle
                .proposal_or_commit
                .clone()
                .try_into_protocol_message()
                .unwrap(),
        )
        .unwrap();
    let ProcessedMessageContent::ProposalMessage(proposal) = processed.into_content() else {
        panic!("the leave is a proposal");
    };
    assert!(
        matches!(proposal.proposal(), Proposal::Remove(r) if Some(r.removed()) == group.members().find(|m| m.credential.serialized_content() == BOB.as_bytes()).map(|m| m.index)),
        "{:?}",
        proposal.proposal()
    );
    let _ = &foreign.signer;

    // The hub queues it and Alice's commit of it removes Bob.
    net.update(BOB, request).unwrap();
    let commit = net.device(ALICE).commit_pending(ROOM).unwrap();
    let accepted = net.update(ALICE, commit).unwrap().unwrap();
    assert_eq!(accepted.removed, vec![BOB.to_string()]);
    assert!(
        !net.device(ALICE)
            .participants(ROOM)
            .unwrap()
            .contains(user(BOB))
    );
}

#[test]
fn own_messages_take_the_place_the_hub_gave_them() {
    let mut net = Net::create(ALICE);
    net.add_member(ALICE, BOB).unwrap();
    // Bob writes two messages before he has seen Alice's, which the hub
    // accepts first.
    let first = net.device(BOB).send(ROOM, content::text("bob 1")).unwrap();
    let second = net.device(BOB).send(ROOM, content::text("bob 2")).unwrap();
    net.say(ALICE, "alice 1");
    // What arrives while Bob's own messages wait for their echo was
    // ordered before them by the hub; they stay last, pending.
    assert_eq!(net.texts(BOB), ["alice 1", "bob 1", "bob 2"]);
    // Until the hub echoes them, Bob's own messages are pending.
    let pending = |net: &Net| -> Vec<bool> {
        net.devices[BOB]
            .history(ROOM)
            .unwrap()
            .iter()
            .map(|m| m.pending)
            .collect()
    };
    assert_eq!(pending(&net), [false, true, true]);
    net.submit(first).unwrap();
    // Echoed: settled in its place; the other stays last and pending.
    assert_eq!(pending(&net), [false, false, true]);
    net.submit(second).unwrap();
    // Once the hub echoed them, Bob's device shows the hub's order, the
    // same as Alice's.
    assert_eq!(net.texts(ALICE), ["alice 1", "bob 1", "bob 2"]);
    assert_eq!(net.texts(BOB), net.texts(ALICE));
    assert_eq!(pending(&net), [false, false, false]);
}
