//! Durable bulk fanout (-06 §5.5 "Fanout Messages and Room Events",
//! transport requirements §5): workers lease outbox lanes and deliver them
//! in order.
//!
//! The hub writes, in the transaction that accepts an event, one outbox row
//! per destination provider domain (room id, room-log seq, one encoded
//! `FanoutMessage`). A lane `(destination, room)` is leased by one worker
//! at a time ([`mimi_store::Store::lease_outbox`]); its rows are sent in
//! sequence order as ONE `/notify` body of concatenated `FanoutMessage`s
//! (-06 §5.5 "The hub can include multiple concatenated FanoutMessage
//! objects relevant to the same room"). Rows for our own domain are
//! delivered in-process through [`crate::delivery`].
//!
//! Failures: a lane that fails is handed back with
//! [`mimi_store::RoomStore::retry_outbox`] on its first row, so no later row
//! overtakes it. The delay is `initial_backoff_ms · 2^attempts`, capped at
//! `max_backoff_ms`, or the peer's `Retry-After` (-06 §5.5 "respecting any
//! guidance … such as Retry-After"). A 4xx other than 408/429 is logged as
//! an error but still retried with the maximum backoff: an accepted event
//! is never dropped silently (docs/architecture.md), and an operator can fix the peer
//! or the configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use mimi_protocol::MimiUri;
use mimi_protocol::endpoints;
use mimi_store::{OutboxId, OutboxItem};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::batch::{self, FanoutItem};
use crate::delivery;
use crate::state::{AppState, now_ms};

/// How long `/notify` hashes are kept for duplicate detection (-06 §5.5).
pub const NOTIFY_DEDUP_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// How often notify hashes and expired KeyPackages are purged.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(600);
/// The longest `Retry-After` we honour (one day).
const MAX_RETRY_AFTER_MS: u64 = 24 * 60 * 60 * 1000;

/// Wakes this server's fanout workers now instead of at their next poll,
/// e.g. right after the hub accepted an event.
pub fn wake(state: &AppState) {
    state.runtime.wake_fanout();
}

/// Starts the delivery workers and the maintenance task; they stop when
/// `shutdown` turns true.
pub fn spawn_workers(tasks: &mut JoinSet<()>, state: AppState, shutdown: watch::Receiver<bool>) {
    let workers = state.config.fanout.workers.max(1);
    for worker in 0..workers {
        tasks.spawn(run_worker(worker, state.clone(), shutdown.clone()));
    }
    tasks.spawn(run_maintenance(state, shutdown));
}

/// One worker: lease due lanes, deliver them, sleep when idle.
async fn run_worker(worker: usize, state: AppState, mut shutdown: watch::Receiver<bool>) {
    let poll = Duration::from_millis(state.config.fanout.poll_ms.max(1));
    while !*shutdown.borrow() {
        let idle = match lease(&state).await {
            Ok(items) if items.is_empty() => true,
            Ok(items) => {
                deliver_lanes(&state, items).await;
                false
            }
            Err(err) => {
                tracing::warn!(worker, %err, "leasing outbox rows failed");
                true
            }
        };
        if idle {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = state.runtime.fanout_woken() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

async fn lease(state: &AppState) -> mimi_store::Result<Vec<OutboxItem>> {
    let fanout = &state.config.fanout;
    state
        .store
        .lease_outbox(
            None,
            fanout.max_batch.max(1),
            Duration::from_millis(fanout.lease_ms),
            now_ms(),
        )
        .await
}

/// Groups leased rows by lane (they arrive sorted by destination, room,
/// seq) and delivers the lanes concurrently, each in order.
async fn deliver_lanes(state: &AppState, items: Vec<OutboxItem>) {
    let mut lanes: BTreeMap<(String, String), Vec<OutboxItem>> = BTreeMap::new();
    for item in items {
        lanes
            .entry((item.destination.clone(), item.room_id.clone()))
            .or_default()
            .push(item);
    }
    let mut running = JoinSet::new();
    for ((destination, room_id), mut rows) in lanes {
        rows.sort_by_key(|r| (r.seq, r.id));
        let lane = Lane {
            destination,
            room_id,
            rows,
        };
        running.spawn(deliver_lane(state.clone(), lane));
    }
    while running.join_next().await.is_some() {}
}

/// The leased rows of one `(destination, room)` lane, in order.
struct Lane {
    destination: String,
    room_id: String,
    rows: Vec<OutboxItem>,
}

/// Why a lane could not be delivered.
#[derive(Debug)]
enum LaneError {
    /// Worth retrying on the normal schedule (network, 5xx, 408, 429, our
    /// own storage), possibly after the peer's `Retry-After`.
    Transient {
        reason: String,
        retry_after_ms: Option<u64>,
    },
    /// Will not succeed without a change (4xx, undecodable row, bad room
    /// id); retried with the maximum backoff.
    Permanent(String),
}

impl LaneError {
    fn reason(&self) -> &str {
        match self {
            Self::Transient { reason, .. } | Self::Permanent(reason) => reason,
        }
    }
}

async fn deliver_lane(state: AppState, lane: Lane) {
    let result = if lane.destination.eq_ignore_ascii_case(state.domain()) {
        deliver_locally(&state, &lane).await
    } else {
        deliver_remote(&state, &lane).await
    };
    let provider = state.domain().to_owned();
    let destination = lane.destination.clone();
    match result {
        Ok(()) => {
            let ids: Vec<OutboxId> = lane.rows.iter().map(|r| r.id).collect();
            if let Err(err) = state.store.complete_outbox(&ids).await {
                // The lease expires and the lane is sent again; the
                // follower's duplicate detection absorbs the repeat.
                tracing::warn!(%err, destination, "completing delivered outbox rows failed");
                return;
            }
            state
                .runtime
                .record(|| record_delivered(&provider, &destination, &lane.rows));
        }
        Err(err) => {
            state.runtime.record(|| {
                metrics::counter!("mimi_fanout_failures_total", "provider" => provider, "destination" => destination.clone())
                    .increment(1);
            });
            schedule_retry(&state, &lane, err).await;
        }
    }
}

/// Counts delivered `FanoutMessage`s and records their latency since hub
/// acceptance (the `timestamp` of -06 §5.5), into the current recorder.
fn record_delivered(provider: &str, destination: &str, rows: &[OutboxItem]) {
    metrics::counter!("mimi_fanout_delivered_total", "provider" => provider.to_owned(), "destination" => destination.to_owned())
        .increment(rows.len() as u64);
    metrics::counter!("mimi_fanout_requests_total", "provider" => provider.to_owned(), "destination" => destination.to_owned())
        .increment(1);
    let now = now_ms();
    let histogram =
        metrics::histogram!("mimi_fanout_latency_seconds", "provider" => provider.to_owned());
    for row in rows {
        if let Some(accepted) = fanout_timestamp(&row.payload) {
            let accepted = i64::try_from(accepted).unwrap_or(i64::MAX);
            let latency_ms = now.saturating_sub(accepted).max(0);
            histogram.record(latency_ms as f64 / 1000.0);
        }
    }
}

/// The `timestamp` of an encoded `FanoutMessage`: its leading uint64
/// (-06 §5.5), read without decoding the MLSMessage behind it.
fn fanout_timestamp(encoded: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = encoded.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Hands the lane back to the store: its first row becomes due again after
/// the backoff, which releases the whole lane and keeps its order.
async fn schedule_retry(state: &AppState, lane: &Lane, err: LaneError) {
    let Some(head) = lane.rows.first() else {
        return;
    };
    let fanout = &state.config.fanout;
    let delay_ms = match &err {
        LaneError::Transient {
            retry_after_ms: Some(ms),
            ..
        } => *ms,
        LaneError::Transient { .. } => backoff_ms(
            fanout.initial_backoff_ms,
            fanout.max_backoff_ms,
            head.attempts,
        ),
        LaneError::Permanent(_) => fanout.max_backoff_ms,
    };
    match &err {
        LaneError::Permanent(reason) => tracing::error!(
            destination = lane.destination,
            room = lane.room_id,
            attempts = head.attempts,
            reason,
            "fanout refused permanently; retrying with the maximum backoff"
        ),
        LaneError::Transient { reason, .. } => tracing::warn!(
            destination = lane.destination,
            room = lane.room_id,
            attempts = head.attempts,
            delay_ms,
            reason,
            "fanout failed; will retry"
        ),
    }
    let at = now_ms().saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
    if let Err(e) = state.store.retry_outbox(head.id, at, err.reason()).await {
        tracing::warn!(%e, "recording the fanout retry failed; the lease will expire");
    }
}

/// `initial · 2^attempts`, capped at `max`.
pub fn backoff_ms(initial_ms: u64, max_ms: u64, attempts: u32) -> u64 {
    let factor = 1u64.checked_shl(attempts.min(63)).unwrap_or(u64::MAX);
    initial_ms.saturating_mul(factor).min(max_ms)
}

/// The hub delivering to its own devices: same routing and duplicate
/// detection as `/notify`, without HTTP.
async fn deliver_locally(state: &AppState, lane: &Lane) -> Result<(), LaneError> {
    let body = lane_body(lane);
    let items: Vec<FanoutItem> = batch::split_batch(&body)
        .map_err(|e| LaneError::Permanent(format!("outbox row is not a FanoutMessage: {e}")))?;
    let hub = state.domain().to_owned();
    delivery::deliver_batch(state, &hub, &lane.room_id, &items)
        .await
        .map(|_| ())
        .map_err(|e| LaneError::Transient {
            reason: format!("local delivery: {e}"),
            retry_after_ms: None,
        })
}

/// POSTs the lane as one `/notify` body to the destination's notify URL
/// for the room (-06 §5.1 directory, §5.5); success is 201.
async fn deliver_remote(state: &AppState, lane: &Lane) -> Result<(), LaneError> {
    let room = MimiUri::parse(&lane.room_id)
        .map_err(|e| LaneError::Permanent(format!("room id {}: {e}", lane.room_id)))?;
    let transient = |reason: String| LaneError::Transient {
        reason,
        retry_after_ms: None,
    };
    let response = state
        .peers
        .send_raw::<endpoints::Notify>(&lane.destination, &room, lane_body(lane))
        .await
        .map_err(|e| transient(e.to_string()))?;
    classify(response.status(), retry_after_ms(response.headers()))
}

/// The lane's payloads concatenated in order (-06 §5.5).
fn lane_body(lane: &Lane) -> Vec<u8> {
    lane.rows
        .iter()
        .flat_map(|r| r.payload.iter().copied())
        .collect()
}

/// Maps a `/notify` answer to success, a transient or a permanent failure.
fn classify(status: StatusCode, retry_after_ms: Option<u64>) -> Result<(), LaneError> {
    if status == StatusCode::CREATED {
        return Ok(());
    }
    let reason = format!("notify answered {status}");
    let transient = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || !status.is_client_error();
    if transient {
        Err(LaneError::Transient {
            reason,
            retry_after_ms,
        })
    } else {
        Err(LaneError::Permanent(reason))
    }
}

/// `Retry-After` in delay-seconds form (RFC 9110 §10.2.3); the HTTP-date
/// form is ignored (the normal backoff applies).
fn retry_after_ms(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(seconds.saturating_mul(1000).min(MAX_RETRY_AFTER_MS))
}

/// Periodic housekeeping: forgets `/notify` hashes older than
/// [`NOTIFY_DEDUP_WINDOW_MS`] and deletes expired KeyPackages.
async fn run_maintenance(state: AppState, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        maintain(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(MAINTENANCE_INTERVAL) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn maintain(state: &AppState) {
    let now = now_ms();
    match state
        .store
        .prune_notify_before(now - NOTIFY_DEDUP_WINDOW_MS)
        .await
    {
        Ok(n) if n > 0 => tracing::info!(pruned = n, "forgot old notify hashes"),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "pruning notify hashes failed"),
    }
    match state.store.purge_expired_key_packages(now / 1000).await {
        Ok(n) if n > 0 => tracing::info!(purged = n, "deleted expired KeyPackages"),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "purging expired KeyPackages failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timestamp_is_the_leading_uint64_of_a_fanout_message() {
        use mimi_protocol::msgs::fanout::{FanoutBody, FanoutMessage};
        use mimi_testkit::clients::{TestClient, wire};
        let mut client = TestClient::new("mimi://a.example/d/alice/phone");
        client.create_default_room(&[]);
        let application = client
            .group
            .as_mut()
            .unwrap()
            .create_message(&client.provider, &client.signer, b"hello")
            .unwrap();
        let message = FanoutMessage {
            timestamp: 1_700_000_000_123,
            message: wire(application),
            body: FanoutBody::Application { frank: None },
        };
        let encoded = mimi_protocol::encode(&message).unwrap();
        assert_eq!(fanout_timestamp(&encoded), Some(1_700_000_000_123));
        assert_eq!(fanout_timestamp(&encoded[..7]), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(200, 30_000, 0), 200);
        assert_eq!(backoff_ms(200, 30_000, 1), 400);
        assert_eq!(backoff_ms(200, 30_000, 3), 1_600);
        assert_eq!(backoff_ms(200, 30_000, 10), 30_000);
        assert_eq!(backoff_ms(200, 30_000, u32::MAX), 30_000);
    }

    #[test]
    fn only_4xx_other_than_408_429_are_permanent() {
        assert!(classify(StatusCode::CREATED, None).is_ok());
        for status in [
            StatusCode::OK,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert!(matches!(
                classify(status, None),
                Err(LaneError::Transient { .. })
            ));
        }
        for status in [StatusCode::BAD_REQUEST, StatusCode::FORBIDDEN] {
            assert!(matches!(
                classify(status, None),
                Err(LaneError::Permanent(_))
            ));
        }
    }

    #[test]
    fn retry_after_seconds_are_honoured() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after_ms(&headers), Some(3000));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after_ms(&headers), None);
    }
}
