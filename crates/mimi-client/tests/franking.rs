//! Receiver verification of franks (-06 §5.4.1) and abuse reports built
//! from them (-06 §5.9), against an in-process hub.

mod common;

use common::*;
use mimi_client::{Device, Error, Event, FrankStatus, OutgoingMessage, RoomOptions, content};
use mimi_protocol::IdentifierUri;
use mimi_protocol::components::FrankingAgentData;
use mimi_protocol::msgs::{
    AbuseType, CipherSuite, FanoutBody, FanoutMessage, Frank, ServerFrankingContext,
};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use tls_codec::{Deserialize as _, Serialize as _};

const ACCEPTED: u64 = 1_800_000_000_000;

fn key_pair() -> SignatureKeyPair {
    SignatureKeyPair::new(mimi_client::CIPHERSUITE.signature_algorithm()).unwrap()
}

fn copy(key: &SignatureKeyPair) -> SignatureKeyPair {
    SignatureKeyPair::tls_deserialize_exact(key.tls_serialize_detached().unwrap()).unwrap()
}

fn agent(key: &SignatureKeyPair, credential_uri: &str) -> FrankingAgentData {
    FrankingAgentData {
        franking_signature_key: key.public().into(),
        credential: BasicCredential::new(credential_uri.as_bytes().to_vec()).into(),
    }
}

/// Alice and Bob in a room whose franking agent is `franker` with a
/// credential naming `agent_uri`.
fn room(franker: &SignatureKeyPair, agent_uri: &str) -> Net {
    let options = RoomOptions {
        franking_agent: Some(agent(franker, agent_uri)),
        ..Default::default()
    };
    let mut net = Net::create_with(ALICE, None, options);
    net.franker = Some(copy(franker));
    net.add_member(ALICE, BOB).unwrap();
    net
}

/// Alice sends `text`; Bob receives it at `timestamp` with `frank`.
fn deliver_with(
    net: &mut Net,
    text: &str,
    timestamp: u64,
    frank: impl FnOnce(&OutgoingMessage) -> Option<Frank>,
) -> mimi_client::Message {
    let out = net.device(ALICE).send(ROOM, content::text(text)).unwrap();
    let frank = frank(&out);
    let fanout = FanoutMessage {
        timestamp,
        message: on_the_wire(&out.request).app_message,
        body: FanoutBody::Application { frank },
    };
    net.deliver(&[BOB.to_owned()], &fanout);
    received(net, out.message_id)
}

fn received(net: &mut Net, id: mimi_content::MessageId) -> mimi_client::Message {
    net.device(BOB)
        .history(ROOM)
        .unwrap()
        .into_iter()
        .find(|m| m.id == id && !m.own)
        .expect("Bob stored the message")
}

fn context(sender: &str, room: &str, accepted_timestamp: u64) -> ServerFrankingContext {
    ServerFrankingContext {
        sender_uri: IdentifierUri::new(sender),
        room_uri: IdentifierUri::new(room),
        accepted_timestamp,
    }
}

fn assert_invalid(m: &mimi_client::Message, what: &str) {
    assert!(
        matches!(m.frank_status, FrankStatus::Invalid(_)),
        "{what}: {:?}",
        m.frank_status
    );
    assert!(m.frank.is_none(), "{what}: an invalid frank is not kept");
}

#[test]
fn a_valid_frank_is_verified_kept_and_reportable() {
    let franker = key_pair();
    let mut net = room(&franker, "mimi://a.example");
    let m = deliver_with(&mut net, "franked", ACCEPTED, |out| {
        hub_frank(&franker, &out.request, ACCEPTED)
    });
    assert_eq!(m.frank_status, FrankStatus::Verified);
    let frank = m.frank.clone().expect("kept");
    assert_eq!(m.timestamp, ACCEPTED);

    // Survives persistence.
    let bob = Device::from_bytes(&net.device(BOB).to_bytes().unwrap()).unwrap();
    let stored = bob.history(ROOM).unwrap();
    assert_eq!(stored[0].frank.as_ref(), Some(&frank));
    assert_eq!(stored[0].frank_status, FrankStatus::Verified);

    // The report carries the exact application data the tag covers, the
    // frank and the hub's timestamp (-06 §5.9).
    let report = bob
        .abuse_report(ROOM, m.id, AbuseType { code: 3 }, "rude")
        .unwrap();
    assert_eq!(report.reporting_user.as_str(), Some(user(BOB).as_str()));
    assert_eq!(
        report.alleged_abuser_uri.as_str(),
        Some(user(ALICE).as_str())
    );
    assert_eq!(report.reason_code.code, 3);
    assert_eq!(report.note.as_slice(), b"rude");
    let [message] = report.messages.as_slice() else {
        panic!("one message");
    };
    assert_eq!(message.frank, frank);
    assert_eq!(message.accepted_timestamp, ACCEPTED);
    let bytes = message.message_content.as_slice();
    let content = mimi_content::MimiContent::from_cbor(bytes).unwrap();
    assert_eq!(
        Some(mimi_content::franking::franking_tag(&content.salt, bytes)),
        m.franking_tag
    );
    assert_eq!(content.extensions.sender_uri(), Some(user(ALICE).as_str()));
    assert_eq!(content.extensions.room_uri(), Some(ROOM));
}

#[test]
fn forged_franks_are_flagged() {
    let franker = key_pair();
    let mut net = room(&franker, "mimi://a.example");

    // Signed by a key that is not the room's franking agent.
    let impostor = key_pair();
    let m = deliver_with(&mut net, "other key", ACCEPTED, |out| {
        hub_frank(&impostor, &out.request, ACCEPTED)
    });
    assert_invalid(&m, "wrong signature key");

    // server_frank changed after signing.
    let m = deliver_with(&mut net, "server frank", ACCEPTED, |out| {
        let mut f = hub_frank(&franker, &out.request, ACCEPTED).unwrap();
        f.server_frank[0] ^= 1;
        Some(f)
    });
    assert_invalid(&m, "modified server_frank");

    // Signature bytes changed.
    let m = deliver_with(&mut net, "signature", ACCEPTED, |out| {
        let f = hub_frank(&franker, &out.request, ACCEPTED).unwrap();
        let mut sig = f.franking_integrity_signature.as_slice().to_vec();
        sig[5] ^= 0x80;
        Some(Frank {
            franking_integrity_signature: sig.into(),
            ..f
        })
    });
    assert_invalid(&m, "modified signature");

    // The fanout's accepted timestamp differs from the signed one.
    let m = deliver_with(&mut net, "timestamp", ACCEPTED + 1, |out| {
        hub_frank(&franker, &out.request, ACCEPTED)
    });
    assert_invalid(&m, "modified accepted_timestamp");

    // The hub's context names another sender than the MLS credential and
    // the content (a provider asserting a wrong sendingUri).
    let m = deliver_with(&mut net, "sender", ACCEPTED, |out| {
        let tag = out.franking_tag.unwrap();
        Some(sign_frank(
            &franker,
            &tag,
            context("mimi://a.example/u/mallory", ROOM, ACCEPTED),
        ))
    });
    assert_invalid(&m, "other sender_uri");

    // A frank made for another room.
    let m = deliver_with(&mut net, "room", ACCEPTED, |out| {
        let tag = out.franking_tag.unwrap();
        Some(sign_frank(
            &franker,
            &tag,
            context(&user(ALICE), "mimi://a.example/r/elsewhere", ACCEPTED),
        ))
    });
    assert_invalid(&m, "other room_uri");

    // A genuine frank of another message by the same sender, in the same
    // room, at the same time: the receiver cannot tell, since the server
    // frank is a MAC under the hub's secret key (-06 §5.4.1). The hub
    // refuses it when the message is reported (mimi-server
    // tests/franking.rs); documented in docs/divergences.md.
    let earlier = net.device(ALICE).send(ROOM, content::text("x")).unwrap();
    let replayed = hub_frank(&franker, &earlier.request, ACCEPTED).unwrap();
    net.device(ALICE)
        .discard_message(ROOM, earlier.message_id)
        .unwrap();
    let m = deliver_with(&mut net, "replay", ACCEPTED, |_| Some(replayed));
    assert_eq!(m.frank_status, FrankStatus::Verified);

    // A cipher suite other than the room's.
    let m = deliver_with(&mut net, "suite", ACCEPTED, |out| {
        let f = hub_frank(&franker, &out.request, ACCEPTED).unwrap();
        Some(Frank {
            franking_signature_ciphersuite: CipherSuite(0x0003),
            ..f
        })
    });
    assert_invalid(&m, "other cipher suite");

    // Flagged messages are still delivered and cannot be reported.
    assert!(matches!(
        net.device(BOB)
            .abuse_report(ROOM, m.id, AbuseType::RESERVED, ""),
        Err(Error::NotReportable(_))
    ));
    assert!(net.texts(BOB).contains(&"suite".to_owned()));
}

/// Alice's device as a lying client: its saved state with the first
/// occurrence of `from` (in the JSON part, before the MLS storage) turned
/// into `to`, so it asserts another user or room in the content while its
/// MLS credential and group stay Alice's.
fn lying_copy_of_alice(net: &mut Net, from: &str, to: &str) -> Device {
    assert_eq!(from.len(), to.len(), "the length prefix must stay valid");
    let mut bytes = net.device(ALICE).to_bytes().unwrap();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("in the saved state");
    bytes[at..at + from.len()].copy_from_slice(to.as_bytes());
    Device::from_bytes(&bytes).unwrap()
}

/// -06 §5.4.1 "Receiver verification": the content's `sender_uri` must be
/// the user of the MLS credential and its `room_uri` the room. A sender
/// asserting another user or room gets its message flagged, not stored.
#[test]
fn a_sender_claiming_another_identity_in_the_content_is_flagged() {
    let franker = key_pair();
    let cases = [
        (ALICE, ALICE.replace("alice", "carol"), "senderUri"),
        (ROOM, ROOM.replace("clubhouse", "clubhousx"), "roomUri"),
    ];
    for (from, to, reason) in cases {
        let mut net = room(&franker, "mimi://a.example");
        let mut liar = lying_copy_of_alice(&mut net, from, &to);
        let room_of_liar = if from == ROOM { to.as_str() } else { ROOM };
        let out = liar.send(room_of_liar, content::text("lie")).unwrap();
        let fanout = FanoutMessage {
            timestamp: ACCEPTED,
            message: on_the_wire(&out.request).app_message,
            body: FanoutBody::Application {
                frank: hub_frank(&franker, &out.request, ACCEPTED),
            },
        };
        net.deliver(&[BOB.to_owned()], &fanout);
        match net.events_of(BOB).last() {
            Some(Event::InvalidMessage { reason: why, .. }) => {
                assert!(why.contains(reason), "{reason}: {why}");
            }
            other => panic!("{reason}: {other:?}"),
        }
        assert!(!net.texts(BOB).contains(&"lie".to_owned()), "{reason}");
    }
}

#[test]
fn the_franking_agent_must_be_the_hub() {
    // A correctly signed frank, but the room's franking agent claims to be
    // another provider than the room's hub (a.example).
    let franker = key_pair();
    let mut net = room(&franker, "mimi://evil.example");
    let m = deliver_with(&mut net, "hi", ACCEPTED, |out| {
        hub_frank(&franker, &out.request, ACCEPTED)
    });
    assert_invalid(&m, "agent of another domain");
    match &m.frank_status {
        FrankStatus::Invalid(reason) => assert!(reason.contains("a.example"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unfranked_messages_are_delivered_but_not_reportable() {
    let franker = key_pair();
    let mut net = room(&franker, "mimi://a.example");
    let m = deliver_with(&mut net, "no frank", ACCEPTED, |_| None);
    assert_eq!(m.frank_status, FrankStatus::Unfranked);
    assert!(m.franking_tag.is_some());
    let err = net
        .device(BOB)
        .abuse_report(ROOM, m.id, AbuseType::RESERVED, "")
        .unwrap_err();
    assert!(matches!(err, Error::NotReportable(_)), "{err}");
    // Unknown message.
    let other = mimi_content::MessageId::from_hex(&"00".repeat(32)).unwrap();
    assert!(matches!(
        net.device(BOB)
            .abuse_report(ROOM, other, AbuseType::RESERVED, ""),
        Err(Error::NotReportable(_))
    ));
}

/// -06 §5.4.1: the sender writes the franking tag into the Safe AAD
/// itself. A tag over other bytes than the content it sends (the AEAD is
/// intact) is caught by the receiver recomputing it: flagged, not stored.
#[test]
fn a_tag_the_sender_computed_over_other_content_is_flagged() {
    use mimi_protocol::components::{FRANK_AAD, FrankAAD};
    use openmls::framing::SafeAadItem;
    let franker = key_pair();
    let mut net = room(&franker, "mimi://a.example");
    let (provider, mut group, signer) = raw_group(&mut net, ALICE);
    let mut content = content::text("the real text");
    content.salt = [7; 16];
    content.extensions.set_sender_uri(user(ALICE));
    content.extensions.set_room_uri(ROOM);
    let bytes = content.to_cbor().unwrap();
    // Alice's group writes `tag` into the Safe AAD of a message carrying
    // `bytes`, and Bob receives it unfranked.
    let mut send_with_tag = |net: &mut Net, tag: [u8; 32]| {
        let aad = FrankAAD { franking_tag: tag }
            .tls_serialize_detached()
            .unwrap();
        group
            .set_safe_aad(vec![SafeAadItem::new(FRANK_AAD, aad)])
            .unwrap();
        let out = group.create_message(&provider, &signer, &bytes).unwrap();
        let message =
            MlsMessageIn::tls_deserialize_exact(out.tls_serialize_detached().unwrap()).unwrap();
        let fanout = FanoutMessage {
            timestamp: ACCEPTED,
            message,
            body: FanoutBody::Application { frank: None },
        };
        net.deliver(&[BOB.to_owned()], &fanout);
    };
    let wrong = mimi_content::franking::franking_tag(&content.salt, b"an innocent text");
    send_with_tag(&mut net, wrong);
    match net.events_of(BOB).last() {
        Some(Event::InvalidMessage { reason, .. }) => {
            assert!(reason.contains("franking tag"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!net.texts(BOB).contains(&"the real text".to_owned()));
    // The same message with the right tag is taken: only the tag differed.
    send_with_tag(
        &mut net,
        mimi_content::franking::franking_tag(&content.salt, &bytes),
    );
    assert!(net.texts(BOB).contains(&"the real text".to_owned()));
}

#[test]
fn a_tampered_franking_tag_is_detected() {
    let franker = key_pair();
    let mut net = room(&franker, "mimi://a.example");
    let out = net.device(ALICE).send(ROOM, content::text("hi")).unwrap();
    let tag = out.franking_tag.unwrap();
    let frank = hub_frank(&franker, &out.request, ACCEPTED);
    // A provider on the path swaps the franking tag in the clear-text
    // Safe AAD: the AEAD (which authenticates the AAD) fails at Bob.
    let mut bytes = out.request.app_message.tls_serialize_detached().unwrap();
    let at = bytes
        .windows(32)
        .position(|w| w == tag)
        .expect("the tag is in the clear");
    bytes[at] ^= 1;
    let message = MlsMessageIn::tls_deserialize_exact(bytes).unwrap();
    let fanout = FanoutMessage {
        timestamp: ACCEPTED,
        message,
        body: FanoutBody::Application { frank },
    };
    assert!(net.device(BOB).process_fanout(fanout).is_err());
    assert!(net.device(BOB).history(ROOM).unwrap().is_empty());
}

#[test]
fn own_messages_keep_the_hubs_frank() {
    let franker = key_pair();
    let mut net = room(&franker, "mimi://a.example");
    let out = net.device(ALICE).send(ROOM, content::text("mine")).unwrap();
    let frank = hub_frank(&franker, &out.request, ACCEPTED);
    let alice = net.device(ALICE);
    assert_eq!(
        alice
            .message_accepted(ROOM, out.message_id, ACCEPTED, frank.clone())
            .unwrap(),
        FrankStatus::Verified
    );
    let own = alice
        .history(ROOM)
        .unwrap()
        .into_iter()
        .find(|m| m.own && m.id == out.message_id)
        .unwrap();
    assert_eq!(own.timestamp, ACCEPTED);
    assert_eq!(own.frank, frank);

    // A frank for another time is flagged.
    let out = alice.send(ROOM, content::text("again")).unwrap();
    let other = hub_frank(&franker, &out.request, ACCEPTED);
    assert!(matches!(
        alice
            .message_accepted(ROOM, out.message_id, ACCEPTED + 5, other)
            .unwrap(),
        FrankStatus::Invalid(_)
    ));
}
