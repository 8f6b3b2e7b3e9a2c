//! Message franking (-06 §5.4.1) and abuse reports (-06 §5.9) across real
//! providers: the hub franks, receivers verify, a follower's user reports
//! through its provider, the hub verifies the frank and stores the report
//! for its operator; forged and replayed franks are refused.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Federation, start_federation};
use mimi_client::http::{Client, ClientError};
use mimi_client::{Event, FrankStatus, Message, RoomOptions, content};
use mimi_protocol::IdentifierUri;
use mimi_protocol::components::FrankingAgentData;
use mimi_protocol::msgs::{AbuseReport, AbuseType};
use mimi_room::policy::default_role::MEMBER;
use openmls::prelude::BasicCredential;
use openmls_basic_credential::SignatureKeyPair;

const ADMIN: &str = "operator-secret";
const WAIT: Duration = Duration::from_secs(20);

/// A registered device with KeyPackages published.
async fn client(fed: &Federation, device: &str) -> Client {
    let domain = &fed.provider_of(device).domain;
    let mut client = Client::register(device, fed.connection(domain).unwrap())
        .await
        .unwrap();
    client.publish_key_packages(2).await.unwrap();
    client
}

/// Syncs `client` until `found` matches one of the events.
async fn sync_until(client: &mut Client, what: &str, found: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(e) = client.sync().await.unwrap().into_iter().find(|e| found(e)) {
            return e;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn receive(client: &mut Client, text: &str) -> Message {
    let event = sync_until(client, text, |e| {
        matches!(e, Event::MessageReceived(m)
            if matches!(&m.content.nested_part.part,
                mimi_content::Part::Single(p) if p.content == text.as_bytes()))
    })
    .await;
    match event {
        Event::MessageReceived(m) => *m,
        _ => unreachable!(),
    }
}

fn own(client: &Client, room: &str, id: mimi_content::MessageId) -> Message {
    client
        .device
        .history(room)
        .unwrap()
        .into_iter()
        .find(|m| m.own && m.id == id)
        .unwrap()
}

/// The HTTP status of a refused request.
fn status(result: Result<(), ClientError>) -> u16 {
    match result {
        Err(ClientError::Refused { status, .. }) => status,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn messages_are_franked_verified_reported_and_listed() {
    let mut fed = start_federation(Backend::Sqlite).await;
    {
        let a = fed.provider_mut("a.example");
        a.config.client_api.admin_token = Some(ADMIN.into());
        a.restart().await;
    }
    let room = "mimi://a.example/r/franked";
    let mut alice = client(&fed, "mimi://a.example/d/alice/laptop").await;
    let mut bob = client(&fed, "mimi://b.example/d/bob/phone").await;
    alice.create_room(room).await.unwrap();
    // The room carries the hub's franking agent from GET /client/v1/hub.
    let hub_agent = alice
        .connection
        .hub_info(mimi_client::CIPHERSUITE)
        .await
        .unwrap()
        .franking_agent;
    assert_eq!(
        fed.provider("a.example")
            .server()
            .state
            .hub
            .franking_agent(mimi_client::CIPHERSUITE),
        Some(hub_agent)
    );
    alice
        .add_user(room, "mimi://b.example/u/bob", MEMBER)
        .await
        .unwrap();
    sync_until(&mut bob, "the Welcome", |e| {
        matches!(e, Event::Joined { .. })
    })
    .await;

    // Alice (on the hub) sends: the hub's answer carries the frank.
    let id = alice
        .send(room, content::text("you are all idiots"))
        .await
        .unwrap();
    let mine = own(&alice, room, id);
    assert_eq!(mine.frank_status, FrankStatus::Verified);
    assert!(mine.timestamp > 0);
    // Bob (a follower) receives it with a frank that verifies.
    let m = receive(&mut bob, "you are all idiots").await;
    assert_eq!(m.frank_status, FrankStatus::Verified, "{m:?}");
    assert_eq!(m.frank, mine.frank);
    assert_eq!(m.timestamp, mine.timestamp);

    // Bob's messages go through his provider to the hub and are franked.
    let bob_id = bob.send(room, content::text("please stop")).await.unwrap();
    assert_eq!(own(&bob, room, bob_id).frank_status, FrankStatus::Verified);
    let from_bob = receive(&mut alice, "please stop").await;
    assert_eq!(from_bob.frank_status, FrankStatus::Verified);

    // A second message of Alice, in the same room: its content with the
    // first message's frank and timestamp keeps sender, room and timestamp,
    // so the integrity signature still verifies and only the server
    // frank's HMAC over the franking tag tells them apart (divergence S22).
    let second_id = alice
        .send(room, content::text("and I mean it"))
        .await
        .unwrap();
    let second_content = own(&alice, room, second_id).content.to_cbor().unwrap();
    receive(&mut bob, "and I mean it").await;

    // Bob reports Alice's message via b.example, which forwards to the hub.
    bob.report(room, m.id, AbuseType { code: 7 }, "insults")
        .await
        .unwrap();

    let genuine = bob
        .device
        .abuse_report(room, m.id, AbuseType::RESERVED, "")
        .unwrap();
    let forged = |edit: &dyn Fn(&mut AbuseReport)| {
        let mut r = genuine.clone();
        edit(&mut r);
        r
    };
    let cases: Vec<(&str, AbuseReport, u16)> = vec![
        (
            "modified server_frank",
            forged(&|r| r.messages[0].frank.server_frank[3] ^= 1),
            422,
        ),
        (
            "modified accepted_timestamp",
            forged(&|r| r.messages[0].accepted_timestamp += 1),
            422,
        ),
        (
            "modified signature",
            forged(&|r| {
                let mut sig = r.messages[0]
                    .frank
                    .franking_integrity_signature
                    .as_slice()
                    .to_vec();
                sig[0] ^= 1;
                r.messages[0].frank.franking_integrity_signature = sig.into();
            }),
            422,
        ),
        (
            // Bob's own message content with Alice's frank: the tag differs.
            "frank replayed on other content",
            forged(&|r| {
                r.messages[0].message_content =
                    own(&bob, room, bob_id).content.to_cbor().unwrap().into();
                r.alleged_abuser_uri = IdentifierUri::new("mimi://b.example/u/bob");
            }),
            422,
        ),
        (
            "genuine frank moved to another message of the same sender",
            forged(&|r| r.messages[0].message_content = second_content.clone().into()),
            422,
        ),
        (
            "content of another sender than allegedAbuserUri",
            forged(&|r| r.alleged_abuser_uri = IdentifierUri::new("mimi://c.example/u/carol")),
            422,
        ),
        (
            "reportingUser is not the device's user",
            forged(&|r| r.reporting_user = IdentifierUri::new("mimi://b.example/u/eve")),
            403,
        ),
    ];
    for (what, report, expected) in cases {
        let got = status(bob.connection.report(room, &report).await);
        assert_eq!(got, expected, "{what}");
    }
    // The same genuine report against another room of the hub: refused
    // (the content's room_uri is bound into the frank).
    let other_room = "mimi://a.example/r/elsewhere";
    alice.create_room(other_room).await.unwrap();
    alice
        .add_user(other_room, "mimi://b.example/u/bob", MEMBER)
        .await
        .unwrap();
    assert_eq!(
        status(bob.connection.report(other_room, &genuine).await),
        422,
        "frank replayed in another room"
    );
    // A peer provider cannot report in the name of another provider's user
    // (federation endpoint: reportingUser must be of the source domain).
    let path = format!(
        "{}/v1/reportAbuse/{}",
        fed.federation_url("a.example"),
        encode_segment(room)
    );
    let c = fed.provider("c.example");
    let c_identity = mimi_server::tls::ProviderIdentity::from_files(
        "c.example",
        &c.config.tls.cert,
        &c.config.tls.key,
    )
    .unwrap();
    let resp = fed
        .federation_client(Some(&c_identity))
        .post(&path)
        .header("From", "mimi@c.example")
        .header("Content-Type", "application/mimi-protocol")
        .body(mimi_protocol::encode(&genuine).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // The operator of the hub lists the one verified report.
    let admin = fed.connection("a.example").unwrap().with_token(ADMIN);
    let reports = admin.admin_reports().await.unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    assert_eq!(r.room_id, room);
    assert_eq!(r.source_provider, "b.example");
    assert_eq!(r.reporting_user, "mimi://b.example/u/bob");
    assert_eq!(r.alleged_abuser, "mimi://a.example/u/alice");
    assert_eq!(
        (r.reason_code, r.note.as_str(), r.messages),
        (7, "insults", 1)
    );
    assert!(r.franks_verified);

    // A report without messages has nothing to verify: b.example (Bob is
    // a participant) may file it, and it is kept as unverified.
    let mut bare = genuine.clone();
    bare.messages.clear();
    bob.connection.report(room, &bare).await.unwrap();
    let reports = admin.admin_reports().await.unwrap();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(!reports[1].franks_verified);
    assert_eq!(reports[1].messages, 0);
    fed.shutdown().await;
}

#[tokio::test]
async fn the_hub_franks_only_for_its_own_franking_agent() {
    let fed = start_federation(Backend::Sqlite).await;
    let room = "mimi://a.example/r/foreign-agent";
    let mut alice = client(&fed, "mimi://a.example/d/alice/laptop").await;
    let hub = alice
        .connection
        .hub_info(mimi_client::CIPHERSUITE)
        .await
        .unwrap();
    let other = SignatureKeyPair::new(mimi_client::CIPHERSUITE.signature_algorithm()).unwrap();
    let options = RoomOptions {
        franking_agent: Some(FrankingAgentData {
            franking_signature_key: other.public().into(),
            credential: BasicCredential::new(b"mimi://a.example".to_vec()).into(),
        }),
        ..RoomOptions::default()
    };
    let created = alice
        .device
        .create_room(room, Some(hub.external_sender), options)
        .unwrap();
    alice.connection.create_room(&created).await.unwrap();
    let id = alice.send(room, content::text("unfranked")).await.unwrap();
    let mine = own(&alice, room, id);
    assert_eq!(mine.frank_status, FrankStatus::Unfranked);
    assert!(mine.frank.is_none());
    assert!(mine.franking_tag.is_some());
    let err = alice
        .report(room, id, AbuseType::RESERVED, "")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Device(mimi_client::Error::NotReportable(_))
        ),
        "{err}"
    );
    fed.shutdown().await;
}

fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A room on MLS_128_DHKEMP256_AES128GCM_SHA256_P256 (0x0002): the hub's
/// P-256 keys are its external sender and franking agent, messages are
/// franked under the room's suite and verify at the receiver, and a
/// report of one verifies at the hub (-06 §5.4.1, §5.9).
#[tokio::test]
async fn a_p256_room_is_franked_with_the_hubs_p256_key() {
    let mut fed = start_federation(Backend::Sqlite).await;
    {
        let a = fed.provider_mut("a.example");
        a.config.client_api.admin_token = Some(ADMIN.into());
        a.restart().await;
    }
    let p256 = mimi_client::parse_ciphersuite("0x0002").unwrap();
    let register = async |device: &str| {
        let domain = &fed.provider_of(device).domain;
        let mut client =
            Client::register_with_ciphersuite(device, fed.connection(domain).unwrap(), p256)
                .await
                .unwrap();
        client.publish_key_packages(2).await.unwrap();
        client
    };
    let mut alice = register("mimi://a.example/d/alice/laptop").await;
    let mut bob = register("mimi://b.example/d/bob/phone").await;
    let room = "mimi://a.example/r/p256";
    alice.create_room(room).await.unwrap();
    let hub = &fed.provider("a.example").server().state.hub;
    let group = alice.device.mls_group(room).unwrap();
    assert_eq!(group.ciphersuite(), p256);
    assert_eq!(
        group.extensions().external_senders().map(|s| s.to_vec()),
        Some(vec![hub.external_sender(p256).unwrap()])
    );
    assert_ne!(
        hub.franking_agent(p256),
        hub.franking_agent(mimi_client::CIPHERSUITE)
    );
    alice
        .add_user(room, "mimi://b.example/u/bob", MEMBER)
        .await
        .unwrap();
    sync_until(&mut bob, "the Welcome", |e| {
        matches!(e, Event::Joined { .. })
    })
    .await;

    let id = alice.send(room, content::text("on P-256")).await.unwrap();
    let mine = own(&alice, room, id);
    assert_eq!(mine.frank_status, FrankStatus::Verified);
    let frank = mine.frank.clone().unwrap();
    assert_eq!(frank.franking_signature_ciphersuite, p256.into());
    let m = receive(&mut bob, "on P-256").await;
    assert_eq!(m.frank_status, FrankStatus::Verified, "{m:?}");

    bob.report(room, m.id, AbuseType::RESERVED, "p256")
        .await
        .unwrap();
    let admin = fed.connection("a.example").unwrap().with_token(ADMIN);
    let reports = admin.admin_reports().await.unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].franks_verified);
    fed.shutdown().await;
}
