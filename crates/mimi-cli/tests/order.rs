//! One order on every device (-06 §5.5: the hub orders a room's events):
//! a follower restarts in the middle of a conversation, its user sends
//! before the messages queued for it during the outage arrive, and still
//! every device shows the room in the hub's order.

use mimi_client::content;
use mimi_client::http::Client;
use mimi_testkit::{Backend, start_federation};

const ROOM: &str = "mimi://a.example/r/order";
const ALICE: &str = "mimi://a.example/d/alice/laptop";
const BOB: &str = "mimi://b.example/d/bob/phone";
const BOB_USER: &str = "mimi://b.example/u/bob";

/// The texts of a device's history, in its order.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_shows_the_hubs_order_across_a_follower_restart() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let mut alice = Client::register(ALICE, fed.connection("a.example").unwrap())
        .await
        .unwrap();
    let mut bob = Client::register(BOB, fed.connection("b.example").unwrap())
        .await
        .unwrap();
    bob.publish_key_packages(2).await.unwrap();
    alice.create_room(ROOM).await.unwrap();
    alice
        .add_user(ROOM, BOB_USER, mimi_room::policy::default_role::MEMBER)
        .await
        .unwrap();
    // The Welcome reaches Bob's provider through fanout, asynchronously.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while bob.device.history(ROOM).is_err() {
        assert!(tokio::time::Instant::now() < deadline, "Bob never joined");
        bob.sync().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    for i in 0..3 {
        alice
            .send(ROOM, content::text(&format!("alice {i}")))
            .await
            .unwrap();
        bob.send(ROOM, content::text(&format!("bob {i}")))
            .await
            .unwrap();
    }

    // b.example is down while Alice goes on; when it is back, Bob writes
    // before his device has seen what Alice wrote meanwhile.
    fed.provider_mut("b.example").stop().await;
    for i in 3..6 {
        alice
            .send(ROOM, content::text(&format!("alice {i}")))
            .await
            .unwrap();
    }
    fed.provider_mut("b.example").restart().await;
    for i in 3..5 {
        bob.send(ROOM, content::text(&format!("bob {i}")))
            .await
            .unwrap();
    }
    alice.send(ROOM, content::text("alice 6")).await.unwrap();

    // Everything the hub accepted reaches both devices.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        alice.sync().await.unwrap();
        bob.sync().await.unwrap();
        let settled = |c: &Client| c.device.history(ROOM).unwrap().iter().all(|m| !m.pending);
        if texts(&alice).len() == 12 && texts(&bob).len() == 12 && settled(&alice) && settled(&bob)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice {:?}\nbob {:?}",
            texts(&alice),
            texts(&bob)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let hub_order = texts(&alice);
    // Bob's messages after the restart come after Alice's of the outage.
    let position = |text: &str| hub_order.iter().position(|t| t == text).unwrap();
    assert!(position("alice 5") < position("bob 3"), "{hub_order:?}");
    assert_eq!(texts(&bob), hub_order);
    fed.shutdown().await;
}
