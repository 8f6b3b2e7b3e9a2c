//! A submitMessage sent again byte for byte (its answer was lost) gets the
//! original acceptance and is not fanned out a second time
//! (docs/divergences.md S26).

mod common;

use std::time::{Duration, Instant};

use common::{Backend, start_federation};
use mimi_client::http::Client;
use mimi_client::{Event, content};
use mimi_protocol::msgs::SubmitStatus;

const ROOM: &str = "mimi://a.example/r/replay";
const ALICE: &str = "mimi://a.example/d/alice/laptop";
const BOB: &str = "mimi://b.example/d/bob/phone";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_submit_gets_its_original_acceptance_and_one_delivery() {
    let fed = start_federation(Backend::Sqlite).await;
    let mut alice = Client::register(ALICE, fed.connection("a.example").unwrap())
        .await
        .unwrap();
    let mut bob = Client::register(BOB, fed.connection("b.example").unwrap())
        .await
        .unwrap();
    bob.publish_key_packages(2).await.unwrap();
    alice.create_room(ROOM).await.unwrap();
    alice
        .add_user(
            ROOM,
            "mimi://b.example/u/bob",
            mimi_room::policy::default_role::MEMBER,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while bob.device.history(ROOM).is_err() {
        assert!(Instant::now() < deadline, "Bob never joined");
        bob.sync().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The same request twice, as a client re-sends after a lost answer.
    let outgoing = alice.device.send(ROOM, content::text("once")).unwrap();
    let first = alice
        .connection
        .submit(ROOM, &outgoing.request)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = alice
        .connection
        .submit(ROOM, &outgoing.request)
        .await
        .unwrap();
    assert!(
        matches!(first.status, SubmitStatus::Accepted { .. }),
        "{first:?}"
    );
    assert_eq!(first, second, "the original acceptance, frank included");

    // Bob gets the message once; no second copy arrives (which his MLS
    // state could not decrypt again).
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !bob
        .device
        .history(ROOM)
        .unwrap()
        .iter()
        .any(|m| m.id == outgoing.message_id)
    {
        assert!(Instant::now() < deadline, "Bob never got the message");
        events.extend(bob.sync().await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    events.extend(bob.sync().await.unwrap());
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::InvalidMessage { .. })),
        "{events:?}"
    );
    let copies = bob
        .device
        .history(ROOM)
        .unwrap()
        .iter()
        .filter(|m| m.id == outgoing.message_id)
        .count();
    assert_eq!(copies, 1);
    fed.shutdown().await;
}
