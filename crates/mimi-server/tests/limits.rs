//! Resource limits (docs/operations.md "Limits"): request bodies above
//! `limits.max_body_bytes` get 413 and change nothing, the hub sends at
//! most `fanout.max_batch` FanoutMessages per `/notify` request, and a peer
//! that accepts TCP but never answers costs one `outbound_timeout_ms` per
//! attempt, never a stalled fanout.

mod common;
mod fanout_support;
mod net_support;

use std::time::Duration;

use common::{Backend, Provider, start_federation};
use fanout_support::*;
use reqwest::StatusCode;

const WAIT: Duration = Duration::from_secs(20);

async fn wait_until_drained(p: &Provider) {
    let store = &p.server().state.store;
    let deadline = tokio::time::Instant::now() + WAIT;
    while store.outbox_depth().await.unwrap() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "outbox not drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn payloads_of(events: &[Event]) -> Vec<Vec<u8>> {
    events.iter().map(|e| e.2.clone()).collect()
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_and_change_nothing() {
    const LIMIT: usize = 16 * 1024;
    let mut fed = start_federation(Backend::Sqlite).await;
    let b = fed.provider_mut("b.example");
    b.config.limits.max_body_bytes = LIMIT;
    b.restart().await;
    let b = fed.provider("b.example");
    let room = unique_room("a.example", "limits");
    let bob = "mimi://b.example/d/bob/laptop";
    let token = register_subscribed(b, bob, &room).await;

    // A well-formed batch, only too large.
    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let text = "x".repeat(1024);
    let payloads: Vec<Vec<u8>> = (0..20).map(|_| alice.application(&text)).collect();
    let too_large = payloads.concat();
    assert!(too_large.len() > LIMIT);
    let hub = federation_client_as(&fed, "a.example");
    let url = notify_url(&fed, "b.example", &room);
    assert_eq!(
        post_notify(&hub, &url, "a.example", too_large).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert!(fetch(b, &token, 0).await.is_empty(), "nothing was queued");
    // The client API has the same limit.
    let resp = b
        .client_api
        .post(format!("{}/client/v1/key-material", b.client_base))
        .bearer_auth(&token)
        .header("content-type", "application/mimi-protocol")
        .body(vec![0u8; LIMIT + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Under the limit, the same kind of batch is accepted and queued.
    let fits = payloads[..5].concat();
    assert!(fits.len() < LIMIT);
    assert_eq!(
        post_notify(&hub, &url, "a.example", fits).await,
        StatusCode::CREATED
    );
    assert!(payloads_of(&fetch(b, &token, 0).await) == payloads[..5].to_vec());
    fed.shutdown().await;
}

#[tokio::test]
async fn notify_requests_carry_at_most_max_batch_messages() {
    const MAX_BATCH: u32 = 3;
    const EVENTS: usize = 10;
    let mut fed = start_federation(Backend::Sqlite).await;
    let a = fed.provider_mut("a.example");
    a.config.fanout.max_batch = MAX_BATCH;
    a.restart().await;
    let (a, b) = (fed.provider("a.example"), fed.provider("b.example"));
    let room = unique_room("a.example", "batch");
    let bob = "mimi://b.example/d/bob/laptop";
    let token = register_subscribed(b, bob, &room).await;

    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let payloads = alice.applications(EVENTS);
    a.server()
        .state
        .store
        .enqueue_outbox(outbox_rows("b.example", &room, &payloads), 0)
        .await
        .unwrap();
    let events = wait_for_events(b, &token, EVENTS, WAIT).await;
    assert!(payloads_of(&events) == payloads, "all, once, in order");
    wait_until_drained(a).await;
    let requests = notify_requests(b).await;
    // At most MAX_BATCH messages a request: at least ceil(10 / 3) = 4
    // requests, and batching at all: fewer requests than events.
    assert!(
        requests >= EVENTS.div_ceil(MAX_BATCH as usize) as u64 && requests < EVENTS as u64,
        "{requests} /notify requests for {EVENTS} events with max_batch {MAX_BATCH}"
    );
    fed.shutdown().await;
}

/// With a single fanout worker, a follower that accepts connections and
/// never answers must not hold the worker: each attempt ends after
/// `outbound_timeout_ms`, later events to another follower still go out,
/// and the silent follower gets everything once it answers again.
#[tokio::test]
async fn a_silent_peer_times_out_and_is_retried_without_stalling_fanout() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let a = fed.provider_mut("a.example");
    a.config.limits.outbound_timeout_ms = 300;
    a.config.fanout.workers = 1;
    let proxy = net_support::interpose(&mut fed, "a.example", "b.example").await;
    proxy.set_blackhole(true);
    let (a, b, c) = (
        fed.provider("a.example"),
        fed.provider("b.example"),
        fed.provider("c.example"),
    );
    let room = unique_room("a.example", "silent");
    let bob = "mimi://b.example/d/bob/laptop";
    let carl = "mimi://c.example/d/carl/pc";
    let bob_token = b.register(bob).await;
    let carl_token = c.register(carl).await;
    b.server().state.store.subscribe(&room, bob).await.unwrap();
    c.server().state.store.subscribe(&room, carl).await.unwrap();

    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let payloads = alice.applications(6);
    let store = a.server().state.store.clone();
    store
        .enqueue_outbox(outbox_rows("b.example", &room, &payloads), 0)
        .await
        .unwrap();
    store
        .enqueue_outbox(outbox_rows("c.example", &room, &payloads[..3]), 0)
        .await
        .unwrap();
    assert!(payloads_of(&wait_for_events(c, &carl_token, 3, WAIT).await) == payloads[..3]);

    // The worker came back from the silent peer: the next events for
    // c.example are delivered too, and b.example's attempts are repeated
    // on new connections (each earlier one was given up, not awaited).
    let deadline = tokio::time::Instant::now() + WAIT;
    while proxy.blackholed() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retry after a timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rest: Vec<_> = payloads[3..]
        .iter()
        .enumerate()
        .map(|(i, p)| mimi_store::NewOutboxItem {
            destination: "c.example".into(),
            room_id: room.clone(),
            seq: 4 + i as u64,
            payload: p.clone(),
        })
        .collect();
    store.enqueue_outbox(rest, 0).await.unwrap();
    assert!(payloads_of(&wait_for_events(c, &carl_token, 6, WAIT).await) == payloads);
    assert!(fetch(b, &bob_token, 0).await.is_empty());
    assert_eq!(
        store.outbox_depth().await.unwrap(),
        6,
        "b.example's rows wait"
    );

    // The peer answers again: everything arrives, once and in order.
    proxy.set_blackhole(false);
    let events = wait_for_events(b, &bob_token, 6, WAIT).await;
    assert!(
        payloads_of(&events) == payloads,
        "got {} events",
        events.len()
    );
    wait_until_drained(a).await;
    // No late duplicate: stopping the hub joins its fanout workers, so no
    // send is still in flight when b.example's queue is counted.
    fed.provider_mut("a.example").stop().await;
    assert_eq!(
        fetch(fed.provider("b.example"), &bob_token, 0).await.len(),
        6
    );
    fed.shutdown().await;
}

/// A follower whose TLS handshake completes but which never answers the
/// `/notify` request: the attempt ends after `outbound_timeout_ms` (the
/// request timeout; the connect timeout does not cover it) and the retry
/// delivers everything, once and in order.
#[tokio::test]
async fn a_peer_that_never_answers_a_request_is_given_up_and_retried() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let a = fed.provider_mut("a.example");
    a.config.limits.outbound_timeout_ms = 300;
    a.config.fanout.workers = 1;
    let proxy = net_support::interpose(&mut fed, "a.example", "b.example").await;
    proxy.arm("/notify/", net_support::Fault::NoAnswer);
    let (a, b) = (fed.provider("a.example"), fed.provider("b.example"));
    let room = unique_room("a.example", "unanswered");
    let token = register_subscribed(b, "mimi://b.example/d/bob/laptop", &room).await;

    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let payloads = alice.applications(3);
    a.server()
        .state
        .store
        .enqueue_outbox(outbox_rows("b.example", &room, &payloads), 0)
        .await
        .unwrap();
    let events = wait_for_events(b, &token, 3, WAIT).await;
    assert!(payloads_of(&events) == payloads, "all, once, in order");
    assert_eq!(proxy.cuts(), 1, "the first /notify was held unanswered");
    fed.shutdown().await;
}

/// An answer given before the request body is read (here 413: the
/// declared length is over `limits.max_body_bytes`) reaches an HTTP/2
/// peer as its status while the peer is still sending the body slowly,
/// not as a reset stream or a timeout.
#[tokio::test]
async fn an_early_answer_reaches_an_http2_peer_still_sending_its_body() {
    let fed = start_federation(Backend::Sqlite).await;
    let a = fed.provider("a.example");
    let b = fed.provider("b.example");
    let ca = std::fs::read_to_string(&a.config.tls.ca).unwrap();
    let config = mimi_server::tls::client_config(
        mimi_server::tls::root_store(&ca).unwrap(),
        Some(&a.identity().unwrap()),
    )
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(b.config.federation.listen)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("b.example").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);

    let room = unique_room("a.example", "early");
    let path = notify_url(&fed, "b.example", &room);
    let path = &path[path.find("/v1/").unwrap()..];
    let declared = 4 * b.config.limits.max_body_bytes;
    let request = http::Request::post(format!("https://b.example{path}"))
        .header("from", "mimi@a.example")
        .header("content-type", "application/mimi-protocol")
        .header("content-length", declared.to_string())
        .body(())
        .unwrap();
    let (answer, mut body) = client.send_request(request, false).unwrap();
    // 16 KiB every 50 ms: the whole body would take minutes.
    let sender = tokio::spawn(async move {
        for _ in 0..(declared / (16 * 1024)) {
            if body
                .send_data(bytes::Bytes::from(vec![0u8; 16 * 1024]), false)
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let answer = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("answered while the body is still being sent")
        .expect("an answer, not a reset stream");
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
    sender.abort();
    fed.shutdown().await;
}
