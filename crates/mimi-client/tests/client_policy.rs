//! The room policy only clients enforce (draft-ietf-mimi-room-policy
//! §Message Capabilities: "can only be enforced by other clients"): a
//! device refuses to send what its role or the room's components forbid,
//! and flags, without hiding, what another implementation sent anyway.

mod common;

use common::*;
use mimi_client::{Error, RoomOptions, content};
use mimi_protocol::components::room_policy::capabilities as cap;
use mimi_protocol::msgs::{FanoutBody, FanoutMessage};
use mimi_room::policy::default_role::MEMBER;
use mimi_room::policy::default_roles;
use openmls::prelude::*;
use tls_codec::{Deserialize as _, Serialize as _};

#[test]
fn forbidden_content_is_refused_when_sent_and_flagged_when_received() {
    // Nobody in this room may reply.
    let mut roles = default_roles();
    for role in &mut roles.roles {
        role.role_capabilities
            .retain(|c| *c != cap::CAN_REPLY_TO_MESSAGE);
    }
    let mut net = Net::create_with(
        ALICE,
        None,
        RoomOptions {
            roles,
            franking: false,
            ..RoomOptions::default()
        },
    );
    net.add_member(ALICE, BOB).unwrap();
    let first = net.say(ALICE, "lunch?");

    // Bob's device will not send a reply, and says which rule forbids it.
    match net.device(BOB).send(ROOM, content::reply(first, "yes")) {
        Err(Error::PolicyForbids(reason)) => {
            assert!(reason.contains("canReplyToMessage"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // A plain message still goes.
    net.say(BOB, "plain yes");

    // Another implementation sends a reply anyway: Bob shows it, flagged.
    let (provider, mut group, signer) = raw_group(&mut net, ALICE);
    let mut reply = content::reply(first, "replying regardless");
    reply.salt = [9; 16];
    reply.extensions.set_sender_uri(user(ALICE));
    reply.extensions.set_room_uri(ROOM);
    let out = group
        .create_message(&provider, &signer, &reply.to_cbor().unwrap())
        .unwrap();
    let fanout = FanoutMessage {
        timestamp: 1,
        message: MlsMessageIn::tls_deserialize_exact(out.tls_serialize_detached().unwrap())
            .unwrap(),
        body: FanoutBody::Application { frank: None },
    };
    net.deliver(&[BOB.to_owned()], &fanout);
    let history = net.device(BOB).history(ROOM).unwrap();
    let flagged = history.last().unwrap();
    assert_eq!(flagged.content.in_reply_to, Some(first));
    assert_eq!(
        flagged.policy_breaches,
        ["replying needs canReplyToMessage (room-policy §Message Capabilities)"]
    );
    // Kept across a restart, like the rest of the history.
    let restored = mimi_client::Device::from_bytes(&net.device(BOB).to_bytes().unwrap()).unwrap();
    assert_eq!(
        restored
            .history(ROOM)
            .unwrap()
            .last()
            .unwrap()
            .policy_breaches,
        flagged.policy_breaches
    );
    // Messages within the policy carry no flag.
    assert!(
        history
            .iter()
            .rev()
            .skip(1)
            .all(|m| m.policy_breaches.is_empty())
    );
    let _ = MEMBER;
}
