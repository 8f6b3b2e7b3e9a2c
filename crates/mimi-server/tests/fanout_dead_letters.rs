//! A follower that cannot process one event refuses every `/notify`
//! holding it with a 4xx: the hub narrows the batch down to that event,
//! sets it aside as a dead letter and delivers the others in order
//! (-06 §5.5); the operator lists, retries and drops dead letters through
//! the admin client API.

mod common;
mod fanout_support;
mod net_support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Backend, start_federation};
use fanout_support::*;
use mimi_client::http::{ClientError, DeadLetterView, ProviderConnection};

const ADMIN: &str = "operator-secret";
const WAIT: Duration = Duration::from_secs(30);

/// Lists dead letters until there are `n`.
async fn wait_for_dead_letters(admin: &ProviderConnection, n: usize) -> Vec<DeadLetterView> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let dead = admin.admin_dead_letters(None).await.unwrap();
        if dead.len() == n {
            return dead;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} dead letters, want {n}: {dead:?}",
            dead.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_empty_outbox(p: &common::Provider) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while p.server().state.store.outbox_depth().await.unwrap() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "outbox not drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn refusal_status<T: std::fmt::Debug>(result: Result<T, ClientError>) -> u16 {
    match result {
        Err(ClientError::Refused { status, .. }) => status,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn one_refused_event_of_100_is_a_dead_letter_and_the_other_99_arrive_in_order() {
    one_refused_of_100(Backend::Sqlite).await;
}

#[tokio::test]
async fn one_refused_event_of_100_is_a_dead_letter_and_the_other_99_arrive_in_order_postgres() {
    one_refused_of_100(Backend::Postgres {
        admin_url: common::postgres_admin_url(),
    })
    .await;
}

async fn one_refused_of_100(backend: Backend) {
    let mut fed = start_federation(backend).await;
    // `interpose` restarts a.example with this token.
    fed.provider_mut("a.example").config.client_api.admin_token = Some(ADMIN.into());
    let proxy = net_support::interpose(&mut fed, "a.example", "b.example").await;
    let room = unique_room("a.example", "dead-letters");
    let bob = "mimi://b.example/d/bob/laptop";
    let token = register_subscribed(fed.provider("b.example"), bob, &room).await;

    let mut alice = Sender::new("mimi://a.example/d/alice/laptop");
    let payloads = alice.applications(100);
    let refused = 37;
    proxy.refuse_containing(&payloads[refused], 422, "cannot process this event");
    let a = fed.provider("a.example");
    a.server()
        .state
        .store
        .enqueue_outbox(outbox_rows("b.example", &room, &payloads), 0)
        .await
        .unwrap();

    // The other 99 arrive, exactly once and in hub order.
    let b = fed.provider("b.example");
    let mut want = payloads.clone();
    want.remove(refused);
    let events = wait_for_events(b, &token, 99, WAIT).await;
    let got: Vec<Vec<u8>> = events.iter().map(|e| e.2.clone()).collect();
    assert!(
        got == want,
        "got {} events, want the 99 accepted ones in order",
        got.len()
    );

    // The refused one is kept aside with the follower's answer, and the
    // lane is not stuck: the outbox drains.
    let admin = fed.connection("a.example").unwrap().with_token(ADMIN);
    let dead = wait_for_dead_letters(&admin, 1).await;
    let d = &dead[0];
    assert_eq!(
        (
            d.destination.as_str(),
            d.room_id.as_str(),
            d.seq,
            d.status,
            d.answer.as_str()
        ),
        (
            "b.example",
            room.as_str(),
            refused as u64 + 1,
            Some(422),
            "cannot process this event"
        )
    );
    assert_eq!(B64.decode(&d.fanout).unwrap(), payloads[refused]);
    wait_for_empty_outbox(a).await;
    assert_eq!(metric_sum(a, "mimi_dead_letters", &[]).await, 1);
    assert_eq!(
        metric_sum(a, "mimi_fanout_dead_letters_total", &["b.example"]).await,
        1
    );
    // Narrowed down, not sent one by one: a handful of refused batches.
    let refusals = proxy.refusals();
    assert!((2..=10).contains(&refusals), "{refusals} refusals");
    // Only the operator sees them.
    let stranger = fed.connection("a.example").unwrap().with_token("guess");
    assert_eq!(refusal_status(stranger.admin_dead_letters(None).await), 401);

    // Once the follower accepts it, a retry delivers it, after the others.
    proxy.stop_refusing();
    admin.admin_retry_dead_letter(d.id).await.unwrap();
    let events = wait_for_events(b, &token, 100, WAIT).await;
    let got: Vec<Vec<u8>> = events.iter().map(|e| e.2.clone()).collect();
    assert_eq!(got.len(), 100);
    assert!(got[..99] == want[..], "the 99 are unchanged");
    assert!(got[99] == payloads[refused], "the retried event comes last");
    assert!(admin.admin_dead_letters(None).await.unwrap().is_empty());
    assert_eq!(
        refusal_status(admin.admin_retry_dead_letter(d.id).await),
        404
    );

    // Another refused event, dropped by the operator: never delivered.
    let extra = alice.application("refused for good");
    proxy.refuse_containing(&extra, 400, "no");
    let mut row = outbox_rows("b.example", &room, std::slice::from_ref(&extra));
    row[0].seq = 101;
    a.server().state.store.enqueue_outbox(row, 0).await.unwrap();
    let dead = wait_for_dead_letters(&admin, 1).await;
    assert_eq!((dead[0].seq, dead[0].status), (101, Some(400)));
    admin.admin_drop_dead_letter(dead[0].id).await.unwrap();
    assert!(admin.admin_dead_letters(None).await.unwrap().is_empty());
    assert_eq!(
        refusal_status(admin.admin_drop_dead_letter(dead[0].id).await),
        404
    );
    assert_eq!(metric_sum(a, "mimi_dead_letters", &[]).await, 0);
    wait_for_empty_outbox(a).await;
    assert_eq!(fetch(b, &token, 0).await.len(), 100);
    fed.shutdown().await;
}
