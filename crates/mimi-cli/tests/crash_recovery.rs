//! A hub killed (SIGKILL) after accepting events but before fanning them
//! out delivers them after a restart (-06 §5.5; the outbox row is written
//! in the transaction that accepts the event): two real `mimi server`
//! processes, the follower down while the hub accepts two commits and five
//! messages, then the hub killed, the follower started, the hub restarted
//! on the same database. The follower's device queue must hold every
//! accepted event exactly once, in the hub's order.

mod support;

use std::time::Duration;

use mimi_client::{Event, content};
use mimi_protocol::msgs::fanout::{FanoutCase, decode_fanout_batch};
use support::{
    Deadline, DevSetup, history_texts, store_args, two_test_databases, wait_joined, wait_listening,
};
use tls_codec::Serialize as _;

const ROOM: &str = "mimi://a.example/r/crash";
const WAIT: Duration = Duration::from_secs(20);
const MESSAGES: [&str; 5] = ["m1", "m2", "m3", "m4", "m5"];

#[tokio::test]
async fn hub_killed_before_fanout_redelivers_after_restart_sqlite() {
    crash_and_recover(None).await;
}

#[tokio::test]
async fn hub_killed_before_fanout_redelivers_after_restart_postgres() {
    crash_and_recover(Some(two_test_databases(["crash_a", "crash_b"]).await)).await;
}

/// `postgres`: the databases of a.example and b.example; SQLite otherwise.
async fn crash_and_recover(postgres: Option<[String; 2]>) {
    let setup = DevSetup::new(&["a.example", "b.example"]);
    let db = |i: usize| postgres.as_ref().map(|urls| urls[i].clone());
    let args = |i: usize| store_args(&postgres, i);
    let (a, b) = (setup.provider("a.example"), setup.provider("b.example"));
    let hub = setup.spawn("a.example", &args(0));
    let follower = setup.spawn("b.example", &args(1));
    wait_listening(&[a.federation, a.client, b.federation, b.client]).await;

    let mut alice = setup
        .device("mimi://a.example/d/alice/laptop", a.client)
        .await;
    let mut bob = setup.device("mimi://b.example/d/bob/phone", b.client).await;
    let mut carol = setup.device("mimi://a.example/d/carol/pc", a.client).await;
    let mut dave = setup.device("mimi://a.example/d/dave/pc", a.client).await;
    for c in [&mut alice, &mut bob, &mut carol, &mut dave] {
        c.publish_key_packages(2).await.unwrap();
    }
    alice.create_room(ROOM).await.unwrap();
    alice
        .add_user(ROOM, "mimi://b.example/u/bob", 2)
        .await
        .unwrap();
    wait_joined(&mut bob, WAIT).await;

    // The follower goes down; the hub accepts two commits and five messages.
    follower.kill();
    for user in ["mimi://a.example/u/carol", "mimi://a.example/u/dave"] {
        alice.add_user(ROOM, user, 2).await.unwrap();
    }
    for text in MESSAGES {
        alice.send(ROOM, content::text(text)).await.unwrap();
    }
    hub.kill();

    // Accepted, not delivered: the events for b.example wait in the outbox.
    let hub_store = setup.store("a.example", db(0).as_deref()).await;
    let depth = hub_store.outbox_depth().await.unwrap();
    assert!(depth >= 7, "outbox holds {depth} rows");
    // What b.example must receive: every room-log entry since Bob joined
    // (epoch 1), without the Welcomes addressed to a.example's devices.
    let expected: Vec<Vec<u8>> = hub_store
        .room_events(ROOM, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.new_epoch >= 2)
        .flat_map(|e| decode_fanout_batch(&e.payload).unwrap())
        .filter(|m| m.body.case() != FanoutCase::Welcome)
        .map(|m| m.tls_serialize_detached().unwrap())
        .collect();
    assert_eq!(expected.len(), 7, "two commits and five messages");
    drop(hub_store);

    let _follower = setup.spawn("b.example", &args(1));
    wait_listening(&[b.federation, b.client]).await;
    let _hub = setup.spawn("a.example", &args(0));
    wait_listening(&[a.federation, a.client]).await;

    let follower_store = setup.store("b.example", db(1).as_deref()).await;
    let bob_device = "mimi://b.example/d/bob/phone";
    let deadline = Deadline::new(WAIT, "the events reach b.example");
    while follower_store
        .fetch_client_events(bob_device, 0, 1000)
        .await
        .unwrap()
        .len()
        < expected.len()
    {
        deadline.tick().await;
    }
    // The hub's outbox drains. A row is deleted only after the follower
    // answered for it, so once it is empty nothing is still in flight and
    // a duplicate would already be queued.
    let hub_store = setup.store("a.example", db(0).as_deref()).await;
    let deadline = Deadline::new(WAIT, "the hub's outbox drains");
    while hub_store.outbox_depth().await.unwrap() > 0 {
        deadline.tick().await;
    }
    let got: Vec<Vec<u8>> = follower_store
        .fetch_client_events(bob_device, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert!(
        got == expected,
        "exactly once and in order: got {} events, want {}",
        got.len(),
        expected.len()
    );

    // Bob's device applies both commits, then reads the five messages.
    let events = bob.sync().await.unwrap();
    let epochs: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::CommitApplied { epoch, .. } => Some(*epoch),
            _ => None,
        })
        .collect();
    assert_eq!(epochs, vec![2, 3], "{events:?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::InvalidMessage { .. })),
        "{events:?}"
    );
    let texts = history_texts(&bob, ROOM);
    assert_eq!(texts, MESSAGES);
}
