//! A follower outage: the hub's outbox keeps every event, retries with
//! backoff, and delivers all of them exactly once and in order when the
//! follower is back (-06 §5.5, transport requirements §5).

mod common;
mod fanout_support;

use std::time::Duration;

use common::{Backend, start_federation};
use fanout_support::*;

/// `mimi_fanout_failures_total` of a.example towards b.example, read from
/// a.example's `/metrics`.
async fn failures_a_to_b(a: &common::Provider) -> u64 {
    metric_sum(
        a,
        "mimi_fanout_failures_total",
        &[r#"destination="b.example""#, r#"provider="a.example""#],
    )
    .await
}

#[tokio::test]
async fn follower_outage_loses_and_reorders_nothing() {
    outage(Backend::Sqlite).await;
}

#[tokio::test]
async fn follower_outage_loses_and_reorders_nothing_postgres() {
    outage(Backend::Postgres {
        admin_url: common::postgres_admin_url(),
    })
    .await;
}

/// Bob's device at b.example, subscribed to a fresh room of a.example;
/// then b.example stops. Returns the room and Bob's token.
async fn bob_subscribed_then_down(fed: &mut common::Federation, label: &str) -> (String, String) {
    let room = unique_room("a.example", label);
    let bob = "mimi://b.example/d/bob/laptop";
    let token = fed.provider("b.example").register(bob).await;
    fed.provider("b.example")
        .server()
        .state
        .store
        .subscribe(&room, bob)
        .await
        .unwrap();
    fed.provider_mut("b.example").stop().await;
    (room, token)
}

/// Runs this binary's tests one at a time, so that the backoff bounds are
/// measured on a machine not also running the other outage.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn outage(backend: Backend) {
    let _serial = SERIAL.lock().await;
    let mut fed = start_federation(backend).await;
    let (room, token) = bob_subscribed_then_down(&mut fed, "outage").await;

    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let payloads = alice.applications(20);
    let a = fed.provider("a.example");
    let store = a.server().state.store.clone();
    // Enqueued one by one, as the hub accepts events.
    for (i, row) in outbox_rows("b.example", &room, &payloads)
        .into_iter()
        .enumerate()
    {
        store.enqueue_outbox(vec![row], i as i64).await.unwrap();
    }
    // Exponential backoff (initial_backoff_ms 50, doubling): the fourth
    // attempt comes no earlier than 50 + 100 + 200 ms after the first. A
    // lower bound on elapsed time holds however loaded the machine is;
    // polling every 20 ms would reach it in about 60 ms.
    let started = tokio::time::Instant::now();
    let before = failures_a_to_b(a).await;
    let deadline = started + Duration::from_secs(20);
    while failures_a_to_b(a).await < before + 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than 4 attempts"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "4 attempts in {:?}: expected exponential backoff",
        started.elapsed()
    );
    assert_eq!(
        store.outbox_depth().await.unwrap(),
        20,
        "nothing is dropped"
    );

    fed.provider_mut("b.example").restart().await;
    let b = fed.provider("b.example");
    let events = wait_for_events(b, &token, 20, Duration::from_secs(40)).await;
    let got: Vec<Vec<u8>> = events.iter().map(|e| e.2.clone()).collect();
    assert!(
        got == payloads,
        "{}: got {} events, want {}",
        "all 20, exactly once, in order",
        got.len(),
        payloads.len()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.outbox_depth().await.unwrap() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "outbox not drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing more arrives later (no duplicate redelivery): stopping the
    // hub joins its fanout workers, so no send is still in flight.
    fed.provider_mut("a.example").stop().await;
    let b = fed.provider("b.example");
    assert_eq!(fetch(b, &token, 0).await.len(), 20);
    fed.shutdown().await;
}

/// A follower that refuses an event with a 4xx (here 403: a.example is
/// not the hub of a room on c.example) does not make the hub drop it
/// silently nor hold the lane: it is kept as a dead letter at the first
/// refusal, with the follower's status, and not sent again.
#[tokio::test]
async fn permanent_refusal_keeps_the_event_as_a_dead_letter() {
    let _serial = SERIAL.lock().await;
    let fed = start_federation(Backend::Sqlite).await;
    let a = fed.provider("a.example");
    let room = unique_room("c.example", "not-ours");
    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let payloads = alice.applications(1);
    let store = a.server().state.store.clone();
    let before = failures_a_to_b(a).await;
    store
        .enqueue_outbox(outbox_rows("b.example", &room, &payloads), 0)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.dead_letter_count().await.unwrap() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never set aside");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(
        (dead[0].seq, dead[0].status, &dead[0].payload),
        (1, Some(403), &payloads[0])
    );
    // Not retried: several worker polls later, still one attempt.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(failures_a_to_b(a).await - before, 1);
    fed.shutdown().await;
}

/// A follower back from a restart gets its events as soon as it answers
/// again, not when the lane's grown backoff runs out: the hub probes
/// destinations it could not connect to and retries their lanes at once.
#[tokio::test]
async fn a_follower_that_answers_again_is_retried_at_once() {
    recovery(Recovery::Probe).await;
}

/// The same when the follower shows it is back by sending the hub a
/// request before any probe.
#[tokio::test]
async fn a_follower_that_sends_a_request_is_retried_at_once() {
    recovery(Recovery::RequestFromFollower).await;
}

enum Recovery {
    Probe,
    RequestFromFollower,
}

async fn recovery(how: Recovery) {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = mimi_testkit::Options::new(Backend::Sqlite);
    // A first retry 60 s after the first failure: far beyond this test's
    // deadline, so only the recovery can deliver in time.
    options.fanout.initial_backoff_ms = 60_000;
    options.fanout.max_backoff_ms = 120_000;
    options.fanout.recovery_probe_ms = match how {
        Recovery::Probe => 50,
        // No probe within the test.
        Recovery::RequestFromFollower => 600_000,
    };
    let mut fed = mimi_testkit::Federation::start_in(dir.path(), options)
        .await
        .unwrap();
    let (room, token) = bob_subscribed_then_down(&mut fed, "recovery").await;

    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let payloads = alice.applications(3);
    let a = fed.provider("a.example");
    let before = failures_a_to_b(a).await;
    a.server()
        .state
        .store
        .enqueue_outbox(outbox_rows("b.example", &room, &payloads), 0)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while failures_a_to_b(a).await == before {
        assert!(tokio::time::Instant::now() < deadline, "never attempted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    fed.provider_mut("b.example").restart().await;
    let b = fed.provider("b.example");
    if let Recovery::RequestFromFollower = how {
        // Any authenticated request will do; this one is refused (an
        // empty /notify body) but shows that b.example is back.
        let room_uri = mimi_protocol::MimiUri::parse(&room).unwrap();
        let answer = b
            .server()
            .state
            .peers
            .send_raw::<mimi_protocol::endpoints::Notify>("a.example", &room_uri, Vec::new())
            .await
            .unwrap();
        assert!(answer.status().is_client_error(), "{}", answer.status());
    }
    let events = wait_for_events(b, &token, 3, Duration::from_secs(30)).await;
    let got: Vec<Vec<u8>> = events.iter().map(|e| e.2.clone()).collect();
    assert_eq!(got, payloads, "delivered in order long before the backoff");
    fed.shutdown().await;
}
