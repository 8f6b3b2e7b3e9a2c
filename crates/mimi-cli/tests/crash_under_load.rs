//! A hub killed (SIGKILL) at a random moment while it is accepting
//! messages: the kill lands inside the accept path (decision, the
//! transaction that writes room log and outbox rows, the answer), not
//! after it. Three rounds of kill and restart of a real `mimi server`
//! process; then every message whose send was acknowledged reaches the
//! follower's device exactly once, a message whose acknowledgement was
//! lost arrives at most once, and the device receives exactly the
//! application messages the hub's room log holds (-06 §5.5; the outbox
//! row is written in the transaction that accepts the event).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mimi_client::content;
use mimi_protocol::msgs::fanout::{FanoutCase, decode_fanout_batch};
use support::{
    Deadline, DevSetup, history_texts, store_args, two_test_databases, wait_joined, wait_listening,
};

const ROOM: &str = "mimi://a.example/r/load";
const WAIT: Duration = Duration::from_secs(30);
const ROUNDS: usize = 3;

#[tokio::test]
async fn hub_killed_under_load_delivers_every_accepted_message_once_sqlite() {
    kill_under_load(None).await;
}

#[tokio::test]
async fn hub_killed_under_load_delivers_every_accepted_message_once_postgres() {
    kill_under_load(Some(two_test_databases(["load_a", "load_b"]).await)).await;
}

/// Kill delays in milliseconds, from a seed printed for reproduction.
fn kill_delays() -> Vec<u64> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("kill delays seed: {seed}");
    let mut x = seed | 1;
    (0..ROUNDS)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            50 + x % 400
        })
        .collect()
}

async fn kill_under_load(postgres: Option<[String; 2]>) {
    let setup = DevSetup::new(&["a.example", "b.example"]);
    let db = |i: usize| postgres.as_ref().map(|urls| urls[i].clone());
    let args = |i: usize| store_args(&postgres, i);
    let (a, b) = (setup.provider("a.example"), setup.provider("b.example"));
    let mut hub = setup.spawn("a.example", &args(0));
    let _follower = setup.spawn("b.example", &args(1));
    wait_listening(&[a.federation, a.client, b.federation, b.client]).await;

    let mut alice = setup
        .device("mimi://a.example/d/alice/laptop", a.client)
        .await;
    let mut bob = setup.device("mimi://b.example/d/bob/phone", b.client).await;
    for c in [&mut alice, &mut bob] {
        c.publish_key_packages(2).await.unwrap();
    }
    alice.create_room(ROOM).await.unwrap();
    alice
        .add_user(ROOM, "mimi://b.example/u/bob", 2)
        .await
        .unwrap();
    wait_joined(&mut bob, WAIT).await;

    // text -> whether the hub acknowledged it.
    let mut sent: BTreeMap<String, bool> = BTreeMap::new();
    for (round, delay) in kill_delays().into_iter().enumerate() {
        let killer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            hub.kill();
        });
        // Alice sends back to back until the hub is gone.
        for i in 0.. {
            let text = format!("r{round}-m{i:04}");
            let acked = alice.send(ROOM, content::text(&text)).await.is_ok();
            sent.insert(text, acked);
            if !acked {
                break;
            }
        }
        killer.await.unwrap();
        hub = setup.spawn("a.example", &args(0));
        wait_listening(&[a.federation, a.client]).await;
    }
    let acked: Vec<&String> = sent.iter().filter(|(_, a)| **a).map(|(t, _)| t).collect();
    assert!(
        acked.len() >= ROUNDS,
        "too few messages acknowledged to mean anything: {}",
        acked.len()
    );

    // Every acknowledged message reaches Bob.
    let deadline = Deadline::new(WAIT, "every acknowledged message reaches Bob");
    loop {
        bob.sync().await.unwrap();
        let got = history_texts(&bob, ROOM);
        if acked.iter().all(|t| got.contains(t)) {
            break;
        }
        deadline.tick().await;
    }
    // The hub's outbox drains. A row is deleted only after the follower
    // answered for it, so once it is empty nothing is still in flight.
    let hub_store = setup.store("a.example", db(0).as_deref()).await;
    let deadline = Deadline::new(WAIT, "the hub's outbox drains");
    while hub_store.outbox_depth().await.unwrap() > 0 {
        deadline.tick().await;
    }
    bob.sync().await.unwrap();
    let got = history_texts(&bob, ROOM);

    // Exactly once: no text twice, every acknowledged one, nothing unsent.
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for text in &got {
        *counts.entry(text).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    for text in &got {
        assert!(sent.contains_key(text), "never sent: {text}");
    }
    // Bob received exactly what the hub accepted: one application message
    // of the room log for each text Bob has.
    let accepted = hub_store
        .room_events(ROOM, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|e| decode_fanout_batch(&e.payload).unwrap())
        .filter(|m| m.body.case() == FanoutCase::Application)
        .count();
    assert_eq!(got.len(), accepted, "Bob's messages against the room log");
    drop(hub);
}
