//! No lost or doubled events at a client: a device that crashes between
//! receiving and saving, or between saving and acknowledging, gets every
//! event once; a submit or a commit whose answer is cut after the hub
//! accepted it is sent again byte for byte and counted once; a commit in
//! flight when the device crashed is settled by the next command, even
//! when the hub forgot its answer (docs/divergences.md S26).

#[macro_use]
mod common;
mod net_support;

use std::path::Path;
use std::time::Duration;

use common::{Backend, Federation, start_federation};
use mimi_client::http::Client;
use mimi_client::{Event, content};
use mimi_room::policy::default_role;
use net_support::Fault;

const ROOM: &str = "mimi://a.example/r/loss";
const ALICE: &str = "mimi://a.example/d/alice/laptop";
const BOB: &str = "mimi://b.example/d/bob/phone";
const CAROL: &str = "mimi://c.example/d/carol/tablet";

/// Alice (on the hub's provider) creates the room and adds Bob with
/// `bob_role`; Bob's device is saved at `bob_path`, so every operation
/// saves it again.
async fn room_with_bob(fed: &Federation, bob_path: &Path, bob_role: u32) -> (Client, Client) {
    let mut alice = Client::register(ALICE, fed.connection("a.example").unwrap())
        .await
        .unwrap();
    let mut bob = Client::register(BOB, fed.connection("b.example").unwrap())
        .await
        .unwrap();
    bob.publish_key_packages(2).await.unwrap();
    bob.save(bob_path).unwrap();
    alice.create_room(ROOM).await.unwrap();
    alice
        .add_user(ROOM, "mimi://b.example/u/bob", bob_role)
        .await
        .unwrap();
    until!("Bob joins", {
        bob.sync().await.unwrap();
        bob.device.history(ROOM).is_ok()
    });
    (alice, bob)
}

fn texts(client: &Client) -> Vec<String> {
    client
        .device
        .history(ROOM)
        .unwrap()
        .into_iter()
        .filter_map(|m| match m.content.nested_part.part {
            mimi_content::Part::Single(p) => String::from_utf8(p.content).ok(),
            _ => None,
        })
        .collect()
}

fn no_invalid(events: &[Event]) {
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::InvalidMessage { .. })),
        "{events:?}"
    );
}

/// How many events Bob's provider holds for him (not yet acknowledged).
async fn queued(bob: &Client) -> usize {
    bob.connection.events(0, 256).await.unwrap().len()
}

/// Alice sends five messages; returns once Bob's provider queued them.
async fn five_from_alice(alice: &mut Client, bob: &Client) -> Vec<String> {
    let before = queued(bob).await;
    let sent: Vec<String> = (1..=5).map(|i| format!("message {i}")).collect();
    for text in &sent {
        alice.send(ROOM, content::text(text)).await.unwrap();
    }
    until!("the messages reach Bob's provider", {
        queued(bob).await >= before + 5
    });
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_killed_between_receiving_and_saving_gets_every_event_once() {
    let fed = start_federation(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob.mimi");
    let (mut alice, mut bob) = room_with_bob(&fed, &path, default_role::MEMBER).await;
    let sent = five_from_alice(&mut alice, &bob).await;

    // Received and applied in memory, then the process dies: nothing of
    // it was saved or acknowledged.
    let (events, _) = bob.fetch_and_apply().await.unwrap().unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::MessageReceived(_)))
            .count(),
        5
    );
    drop(bob);

    let mut bob = Client::load(&path, fed.connection("b.example").unwrap()).unwrap();
    assert!(texts(&bob).is_empty(), "nothing was saved");
    let events = bob.sync().await.unwrap();
    no_invalid(&events);
    assert_eq!(texts(&bob), sent);
    assert_eq!(queued(&bob).await, 0, "acknowledged once saved");
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_killed_between_saving_and_acknowledging_applies_nothing_twice() {
    let fed = start_federation(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob.mimi");
    let (mut alice, mut bob) = room_with_bob(&fed, &path, default_role::MEMBER).await;
    let sent = five_from_alice(&mut alice, &bob).await;

    // Applied and the device file written; the process dies before the
    // session file (the older cursor) and before the acknowledgement.
    bob.fetch_and_apply().await.unwrap().unwrap();
    bob.device.save(&path).unwrap();
    drop(bob);

    let mut bob = Client::load(&path, fed.connection("b.example").unwrap()).unwrap();
    assert_eq!(texts(&bob), sent, "applied and saved");
    assert!(queued(&bob).await >= 5, "the provider offers them again");
    let events = bob.sync().await.unwrap();
    no_invalid(&events);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::MessageReceived(_))),
        "no message applied twice: {events:?}"
    );
    assert_eq!(texts(&bob), sent);
    assert_eq!(queued(&bob).await, 0);

    // The room still works both ways.
    bob.send(ROOM, content::text("still here")).await.unwrap();
    until!("Alice gets Bob's message", {
        alice.sync().await.unwrap();
        texts(&alice).last().map(String::as_str) == Some("still here")
    });
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_cut_after_the_hub_accepted_it_is_delivered_once() {
    let mut fed = start_federation(Backend::Sqlite).await;
    // Bob's provider reaches the hub through a proxy that can cut.
    let proxy = net_support::interpose(&mut fed, "b.example", "a.example").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob.mimi");
    let (mut alice, mut bob) = room_with_bob(&fed, &path, default_role::MEMBER).await;

    proxy.arm("/submitMessage/", Fault::CutBeforeResponse);
    let id = bob.send(ROOM, content::text("once")).await.unwrap();
    assert_eq!(proxy.cuts(), 1, "the hub's answer was cut");

    let mut events = Vec::new();
    until!("Alice gets the message", {
        events.extend(alice.sync().await.unwrap());
        texts(&alice).contains(&"once".to_owned())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    events.extend(alice.sync().await.unwrap());
    no_invalid(&events);
    assert_eq!(texts(&alice), ["once"], "one copy, no second event");

    until!("Bob's own copy is settled by the hub's echo", {
        bob.sync().await.unwrap();
        bob.device.history(ROOM).unwrap().iter().all(|m| !m.pending)
    });
    let own: Vec<_> = bob.device.history(ROOM).unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].id, id);
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cut_after_the_hub_accepted_it_is_sent_again_not_rebuilt() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let proxy = net_support::interpose(&mut fed, "b.example", "a.example").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob.mimi");
    let (mut alice, mut bob) = room_with_bob(&fed, &path, default_role::ADMIN).await;
    let mut carol = Client::register(CAROL, fed.connection("c.example").unwrap())
        .await
        .unwrap();
    carol.publish_key_packages(2).await.unwrap();

    proxy.arm("/update/", Fault::CutBeforeResponse);
    bob.add_user(ROOM, "mimi://c.example/u/carol", default_role::MEMBER)
        .await
        .unwrap();
    assert_eq!(proxy.cuts(), 1, "the hub's answer was cut");
    let epoch = bob.device.epoch(ROOM).unwrap();
    assert!(bob.device.update_in_flight(ROOM).unwrap().is_none());

    until!("Carol joins", {
        carol.sync().await.unwrap();
        carol.device.history(ROOM).is_ok()
    });
    until!("Alice reaches Bob's epoch", {
        alice.sync().await.unwrap();
        alice.device.epoch(ROOM).unwrap() == epoch
    });
    assert_eq!(carol.device.epoch(ROOM).unwrap(), epoch);
    // Everyone can read everyone in the new epoch. (Carol's provider would
    // reach the hub through the proxy too, which speaks for Bob's only.)
    alice.send(ROOM, content::text("hi all")).await.unwrap();
    bob.send(ROOM, content::text("hi Carol")).await.unwrap();
    for member in [&mut alice, &mut bob, &mut carol] {
        until!("both messages arrive", {
            no_invalid(&member.sync().await.unwrap());
            let seen = texts(member);
            seen.contains(&"hi all".to_owned()) && seen.contains(&"hi Carol".to_owned())
        });
    }
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_in_flight_at_a_crash_is_settled_by_the_next_command() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob.mimi");
    let (mut alice, mut bob) = room_with_bob(&fed, &path, default_role::ADMIN).await;
    let mut carol = Client::register(CAROL, fed.connection("c.example").unwrap())
        .await
        .unwrap();
    carol.publish_key_packages(4).await.unwrap();

    // 1. Saved in flight, then the process died before sending it.
    let kps = claim_carol(&bob).await;
    let request = bob
        .device
        .add_user(ROOM, "mimi://c.example/u/carol", default_role::MEMBER, kps)
        .unwrap();
    bob.device
        .set_update_in_flight(ROOM, Some(&request))
        .unwrap();
    bob.save(&path).unwrap();
    drop(bob);
    let mut bob = Client::load(&path, fed.connection("b.example").unwrap()).unwrap();
    bob.send(ROOM, content::text("after the crash"))
        .await
        .unwrap();
    assert!(bob.device.update_in_flight(ROOM).unwrap().is_none());
    until!("Carol joins and gets Bob's message", {
        carol.sync().await.unwrap();
        carol.device.history(ROOM).is_ok() && texts(&carol).contains(&"after the crash".to_owned())
    });

    // 2. Sent and accepted, the answer lost with the process, and the hub
    // restarted (it no longer knows the answer): the repeat gets
    // `wrongEpoch`, and the echo of the commit in the fanout settles it.
    bob.remove_user(ROOM, "mimi://c.example/u/carol")
        .await
        .unwrap();
    let before = bob.device.epoch(ROOM).unwrap();
    until!("Alice is at Bob's epoch", {
        alice.sync().await.unwrap();
        alice.device.epoch(ROOM).unwrap() == before
    });
    let kps = claim_carol(&bob).await;
    let request = bob
        .device
        .add_user(ROOM, "mimi://c.example/u/carol", default_role::MEMBER, kps)
        .unwrap();
    bob.device
        .set_update_in_flight(ROOM, Some(&request))
        .unwrap();
    bob.save(&path).unwrap();
    let answer = bob.connection.update(ROOM, &request).await.unwrap();
    assert_eq!(
        answer.response_code(),
        mimi_protocol::msgs::UpdateResponseCode::Success
    );
    drop(bob);
    fed.provider_mut("a.example").restart().await;
    let mut bob = Client::load(&path, fed.connection("b.example").unwrap()).unwrap();
    bob.send(ROOM, content::text("second crash")).await.unwrap();
    assert_eq!(bob.device.epoch(ROOM).unwrap(), before + 1);
    until!("Alice gets Bob's message in the new epoch", {
        no_invalid(&alice.sync().await.unwrap());
        texts(&alice).contains(&"second crash".to_owned())
    });
    assert_eq!(alice.device.epoch(ROOM).unwrap(), before + 1);
    fed.shutdown().await;
}

/// Claims Carol's KeyPackages through the room's hub, as Bob.
async fn claim_carol(bob: &Client) -> Vec<openmls::prelude::KeyPackageIn> {
    let request = bob
        .device
        .key_material_request("mimi://c.example/u/carol", Some(ROOM))
        .unwrap();
    let response = bob.connection.key_material(&request).await.unwrap();
    mimi_client::key_packages_from_response(&response)
        .into_iter()
        .map(|(_, kp)| kp)
        .collect()
}
