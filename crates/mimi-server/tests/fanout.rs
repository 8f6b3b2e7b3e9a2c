//! Durable fanout (-06 §5.5) between real providers: the hub's outbox
//! workers, the follower's `/notify` endpoint, Welcome routing and the
//! client event queue.

mod common;
mod fanout_support;

use std::time::Duration;

use common::{Backend, start_federation};
use fanout_support::*;
use mimi_testkit::clients::TestClient;
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// How many distinct `FanoutMessage`s `p` has received by `/notify` or
/// in-process delivery (its duplicate detection keeps one hash per
/// message); forgets them.
async fn notify_messages_seen(p: &common::Provider) -> u64 {
    p.server()
        .state
        .store
        .prune_notify_before(i64::MAX)
        .await
        .unwrap()
}

#[tokio::test]
async fn hub_outbox_reaches_follower_devices_in_order_and_batched() {
    ordered_and_batched(Backend::Sqlite).await;
}

#[tokio::test]
async fn hub_outbox_reaches_follower_devices_in_order_and_batched_postgres() {
    ordered_and_batched(Backend::Postgres {
        admin_url: common::postgres_admin_url(),
    })
    .await;
}

async fn ordered_and_batched(backend: Backend) {
    let fed = start_federation(backend).await;
    let (a, b) = (fed.provider("a.example"), fed.provider("b.example"));
    let room = unique_room("a.example", "ordered");
    let bob = "mimi://b.example/d/bob/laptop";
    let token = register_subscribed(b, bob, &room).await;

    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let payloads = alice.applications(12);
    a.server()
        .state
        .store
        .enqueue_outbox(outbox_rows("b.example", &room, &payloads), 0)
        .await
        .unwrap();

    let events = wait_for_events(b, &token, payloads.len(), WAIT).await;
    let got: Vec<Vec<u8>> = events.iter().map(|e| e.2.clone()).collect();
    assert!(
        got == payloads,
        "{}: got {} events, want {}",
        "all events, exactly once, in hub order",
        got.len(),
        payloads.len()
    );
    assert!(events.iter().all(|e| e.1 == room));
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0));
    // The outbox drains, and b.example recorded each message once.
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.server().state.store.outbox_depth().await.unwrap() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "outbox not drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(notify_messages_seen(b).await, payloads.len() as u64);
    // Batched: fewer /notify requests than messages.
    let requests = notify_requests(b).await;
    assert!(
        (1..payloads.len() as u64).contains(&requests),
        "{requests} /notify requests for {} messages",
        payloads.len()
    );
    fed.shutdown().await;
}

#[tokio::test]
async fn hub_delivers_to_its_own_devices_in_process() {
    local_delivery(Backend::Sqlite).await;
}

#[tokio::test]
async fn hub_delivers_to_its_own_devices_in_process_postgres() {
    local_delivery(Backend::Postgres {
        admin_url: common::postgres_admin_url(),
    })
    .await;
}

async fn local_delivery(backend: Backend) {
    let fed = start_federation(backend).await;
    let a = fed.provider("a.example");
    let room = unique_room("a.example", "local");
    let carol = "mimi://a.example/d/carol/phone";
    let token = a.register(carol).await;
    a.server()
        .state
        .store
        .subscribe(&room, carol)
        .await
        .unwrap();

    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let payloads = alice.applications(5);
    a.server()
        .state
        .store
        .enqueue_outbox(outbox_rows("a.example", &room, &payloads), 0)
        .await
        .unwrap();
    mimi_server::fanout::wake(&a.server().state);

    let events = wait_for_events(a, &token, payloads.len(), WAIT).await;
    let got: Vec<Vec<u8>> = events.into_iter().map(|e| e.2).collect();
    assert!(
        got == payloads,
        "got {} events, want {}",
        got.len(),
        payloads.len()
    );
    // In-process: no /notify request reached any peer.
    for domain in ["b.example", "c.example"] {
        assert_eq!(notify_messages_seen(fed.provider(domain)).await, 0);
    }
    fed.shutdown().await;
}

#[tokio::test]
async fn duplicate_notify_is_acknowledged_and_processed_once() {
    duplicate_notify(Backend::Sqlite).await;
}

#[tokio::test]
async fn duplicate_notify_is_acknowledged_and_processed_once_postgres() {
    duplicate_notify(Backend::Postgres {
        admin_url: common::postgres_admin_url(),
    })
    .await;
}

async fn duplicate_notify(backend: Backend) {
    let fed = start_federation(backend).await;
    let b = fed.provider("b.example");
    let room = unique_room("a.example", "dup");
    let bob = "mimi://b.example/d/bob/laptop";
    let token = register_subscribed(b, bob, &room).await;

    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let payloads = alice.applications(3);
    let body = payloads.concat();
    let hub = federation_client_as(&fed, "a.example");
    let url = notify_url(&fed, "b.example", &room);
    assert_eq!(
        post_notify(&hub, &url, "a.example", body.clone()).await,
        StatusCode::CREATED
    );
    assert_eq!(
        post_notify(&hub, &url, "a.example", body).await,
        StatusCode::CREATED
    );
    let events = fetch(b, &token, 0).await;
    let got: Vec<Vec<u8>> = events.into_iter().map(|e| e.2).collect();
    assert!(
        got == payloads,
        "{}: got {} events, want {}",
        "the second copy was not queued again",
        got.len(),
        payloads.len()
    );
    fed.shutdown().await;
}

#[tokio::test]
async fn events_resent_in_other_batches_are_queued_once_per_device() {
    resent_in_other_batches(Backend::Sqlite).await;
}

#[tokio::test]
async fn events_resent_in_other_batches_are_queued_once_per_device_postgres() {
    resent_in_other_batches(Backend::Postgres {
        admin_url: common::postgres_admin_url(),
    })
    .await;
}

/// -06 §5.5 duplicate detection is per `FanoutMessage`: `[e1, e2]` then
/// `[e2, e3]` queues e1, e2, e3 once for each subscribed device.
async fn resent_in_other_batches(backend: Backend) {
    let fed = start_federation(backend).await;
    let b = fed.provider("b.example");
    let room = unique_room("a.example", "resplit");
    let laptop = register_subscribed(b, "mimi://b.example/d/bob/laptop", &room).await;
    let phone = register_subscribed(b, "mimi://b.example/d/bob/phone", &room).await;

    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let e = alice.applications(3);
    let hub = federation_client_as(&fed, "a.example");
    let url = notify_url(&fed, "b.example", &room);
    for batch in [[&e[0], &e[1]], [&e[1], &e[2]]] {
        assert_eq!(
            post_notify(
                &hub,
                &url,
                "a.example",
                [batch[0].clone(), batch[1].clone()].concat()
            )
            .await,
            StatusCode::CREATED
        );
    }
    for token in [&laptop, &phone] {
        let got: Vec<Vec<u8>> = fetch(b, token, 0)
            .await
            .into_iter()
            .map(|ev| ev.2)
            .collect();
        assert!(got == e, "got {} events, want e1, e2, e3 once", got.len());
    }
    fed.shutdown().await;
}

#[tokio::test]
async fn notify_refuses_non_hubs_and_garbage() {
    let fed = start_federation(Backend::Sqlite).await;
    let room = unique_room("a.example", "refuse");
    let url = notify_url(&fed, "b.example", &room);
    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let body = alice.application("hello");

    // c.example is not the hub of a room on a.example.
    let c = federation_client_as(&fed, "c.example");
    assert_eq!(
        post_notify(&c, &url, "c.example", body.clone()).await,
        StatusCode::FORBIDDEN
    );
    let hub = federation_client_as(&fed, "a.example");
    for garbage in [vec![], vec![0xff; 40], [body.clone(), vec![1, 2]].concat()] {
        assert_eq!(
            post_notify(&hub, &url, "a.example", garbage).await,
            StatusCode::BAD_REQUEST
        );
    }
    // A roomId that is not a MIMI URI, or a MIMI URI of a user.
    for not_a_room in ["not-a-room", "mimi%3A%2F%2Fa.example%2Fu%2Falice"] {
        let bad = format!("{}/v1/notify/{not_a_room}", fed.federation_url("b.example"));
        assert_eq!(
            post_notify(&hub, &bad, "a.example", body.clone()).await,
            StatusCode::BAD_REQUEST,
            "{not_a_room}"
        );
    }
    // No client certificate: refused before the handler.
    let anonymous = fed.federation_client(None);
    assert!(
        anonymous
            .post(&url)
            .header("from", "mimi@a.example")
            .body(body)
            .send()
            .await
            .map(|r| r.status().is_client_error())
            .unwrap_or(true)
    );
    fed.shutdown().await;
}

#[tokio::test]
async fn welcome_goes_to_the_named_device_only_and_subscribes_it() {
    let fed = start_federation(Backend::Sqlite).await;
    let b = fed.provider("b.example");
    let room = unique_room("a.example", "welcome");
    let laptop = TestClient::new("mimi://b.example/d/bob/laptop");
    let phone = TestClient::new("mimi://b.example/d/bob/phone");
    let laptop_token = b.register(&laptop.device).await;
    let phone_token = b.register(&phone.device).await;
    let laptop_kp = claimed_key_package(b, &laptop).await;
    let _phone_kp = claimed_key_package(b, &phone).await;
    let claims = b
        .server()
        .state
        .store
        .claim_key_packages(&laptop.user(), (now_ms() / 1000) as i64)
        .await
        .unwrap();
    assert_eq!(claims.len(), 2);

    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let welcome = alice.add(laptop_kp);
    let after = alice.application("welcome, bob");
    let hub = federation_client_as(&fed, "a.example");
    let url = notify_url(&fed, "b.example", &room);
    // The Welcome and the next message in one request: the new member
    // gets both.
    assert_eq!(
        post_notify(
            &hub,
            &url,
            "a.example",
            [welcome.clone(), after.clone()].concat()
        )
        .await,
        StatusCode::CREATED
    );
    let got: Vec<Vec<u8>> = fetch(b, &laptop_token, 0)
        .await
        .into_iter()
        .map(|e| e.2)
        .collect();
    assert!(got == vec![welcome, after], "got {} events", got.len());
    assert!(fetch(b, &phone_token, 0).await.is_empty());
    assert_eq!(
        b.server().state.store.subscribers(&room).await.unwrap(),
        vec![laptop.device.clone()]
    );

    // A Welcome naming no device of b.example is skipped, still 201.
    let stranger = TestClient::new("mimi://c.example/d/carl/pc");
    let other = alice.add(stranger.key_package());
    assert_eq!(
        post_notify(&hub, &url, "a.example", other).await,
        StatusCode::CREATED
    );
    assert_eq!(fetch(b, &laptop_token, 0).await.len(), 2);
    assert!(fetch(b, &phone_token, 0).await.is_empty());
    fed.shutdown().await;
}

#[tokio::test]
async fn events_api_fetches_and_acks_only_the_devices_own_queue() {
    let fed = start_federation(Backend::Sqlite).await;
    let b = fed.provider("b.example");
    let room = unique_room("a.example", "events");
    let bob = "mimi://b.example/d/bob/laptop";
    let token = b.register(bob).await;
    let other_token = b.register("mimi://b.example/d/dave/pc").await;
    b.server().state.store.subscribe(&room, bob).await.unwrap();
    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let payloads = alice.applications(4);
    let hub = federation_client_as(&fed, "a.example");
    let url = notify_url(&fed, "b.example", &room);
    assert_eq!(
        post_notify(&hub, &url, "a.example", payloads.concat()).await,
        StatusCode::CREATED
    );

    let events_url = format!("{}/client/v1/events", b.client_base);
    // No token, or an unknown one: 401.
    let resp = b.client_api.get(&events_url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = b
        .client_api
        .get(&events_url)
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = b
        .client_api
        .post(format!("{events_url}/ack"))
        .json(&json!({"up_to": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // limit and after.
    let resp = b
        .client_api
        .get(format!("{events_url}?limit=2"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let page: Value = resp.json().await.unwrap();
    let page = page["events"].as_array().unwrap().clone();
    assert_eq!(page.len(), 2);
    let second_seq = page[1]["seq"].as_u64().unwrap();
    let rest = fetch(b, &token, second_seq).await;
    assert_eq!(rest.len(), 2);
    assert!(rest.iter().all(|e| e.0 > second_seq));
    assert!(fetch(b, &other_token, 0).await.is_empty());

    // Another device's ack does not touch Bob's queue.
    let ack = |token: String, up_to: u64| {
        b.client_api
            .post(format!("{events_url}/ack"))
            .bearer_auth(token)
            .json(&json!({ "up_to": up_to }))
            .send()
    };
    let resp: Value = ack(other_token.clone(), u64::MAX >> 1)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["deleted"], 0);
    let resp: Value = ack(token.clone(), second_seq)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["deleted"], 2);
    let left = fetch(b, &token, 0).await;
    let got: Vec<Vec<u8>> = left.into_iter().map(|e| e.2).collect();
    assert!(
        got == payloads[2..].to_vec(),
        "{}: got {} events, want {}",
        "unacknowledged events stay",
        got.len(),
        payloads[2..].to_vec().len()
    );
    fed.shutdown().await;
}
