//! Durable bulk fanout (-06 §5.5 "Fanout Messages and Room Events",
//! transport requirements §5): workers lease outbox lanes and deliver them
//! in order.
//!
//! The hub writes, in the transaction that accepts an event, one outbox row
//! per other destination provider domain (room id, room-log seq, one
//! encoded `FanoutMessage`); its own devices' entries are logged in that
//! transaction too (`delivery::route_fanout`). A lane `(destination, room)` is leased by one worker
//! at a time ([`mimi_store::Store::lease_outbox`]); its rows are sent in
//! sequence order as ONE `/notify` body of concatenated `FanoutMessage`s
//! (-06 §5.5 "The hub can include multiple concatenated FanoutMessage
//! objects relevant to the same room"). Rows for our own domain, left by
//! a hub that did not log them with the accept, are delivered in process
//! through [`crate::delivery`].
//!
//! Transient failures (network, 5xx, 408, 425, 429, our own storage): the
//! lane is handed back with [`mimi_store::RoomStore::retry_outbox`] on its
//! first undelivered row, so no later row overtakes it. The delay is
//! `initial_backoff_ms · 2^attempts`, capped at `max_backoff_ms`, or the
//! peer's `Retry-After` (-06 §5.5 "respecting any guidance … such as
//! Retry-After").
//!
//! Permanent refusals (any other 4xx, an undecodable row, a bad room id)
//! must not hold up the lane forever. The refused batch is narrowed down
//! (`narrow`): it is split in halves, sent in order, down to single rows;
//! a row refused on its own becomes a dead letter
//! ([`mimi_store::RoomStore::dead_letter_outbox`]) with the peer's status
//! and a bounded prefix of its answer, and is skipped, while every other
//! row is delivered in its order. Dead letters are durable, counted in
//! `/metrics` and listed, retried or dropped by the operator through the
//! admin client API (docs/operations.md): an accepted event is never
//! dropped silently (docs/architecture.md).

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;
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
use crate::outbound::OutboundError;
use crate::state::{AppState, now_ms};
use crate::transport::SourceProvider;

/// How long `/notify` hashes are kept for duplicate detection (-06 §5.5).
pub const NOTIFY_DEDUP_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// How often notify hashes and expired KeyPackages are purged.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(600);
/// The longest `Retry-After` we honour (one day).
const MAX_RETRY_AFTER_MS: u64 = 24 * 60 * 60 * 1000;
/// How much of a refusal's body is kept with a dead letter.
pub const ANSWER_PREFIX_BYTES: usize = 1024;

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
    tasks.spawn(run_recovery_prober(state.clone(), shutdown.clone()));
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

/// Why a run of a lane's rows was not delivered.
#[derive(Debug)]
enum LaneError {
    /// Worth retrying on the normal schedule.
    Transient(Transient),
    /// Will not succeed without a change: the rows are narrowed down and
    /// the refused ones become dead letters.
    Refused(Refusal),
}

/// A failure worth retrying (network, 5xx, 408, 425, 429, our own
/// storage), possibly after the peer's `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Transient {
    reason: String,
    retry_after_ms: Option<u64>,
    /// The destination could not be connected to (refused, timed out):
    /// it is probed until it answers, then retried at once.
    unreachable: bool,
}

/// A permanent refusal, as kept with a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    /// The peer's HTTP status; `None` when the hub refused the rows itself.
    status: Option<u16>,
    /// At most [`ANSWER_PREFIX_BYTES`] of the peer's answer, or our reason.
    answer: String,
}

impl LaneError {
    fn transient(reason: String) -> Self {
        Self::Transient(Transient {
            reason,
            retry_after_ms: None,
            unreachable: false,
        })
    }

    /// A request that failed before any answer came.
    fn from_outbound(err: OutboundError) -> Self {
        let unreachable = match &err {
            OutboundError::Http { source, .. } => source.is_connect() || source.is_timeout(),
            _ => false,
        };
        Self::Transient(Transient {
            reason: err.to_string(),
            retry_after_ms: None,
            unreachable,
        })
    }

    fn refused_here(answer: String) -> Self {
        Self::Refused(Refusal {
            status: None,
            answer,
        })
    }
}

/// What became of a lane's rows, by their index in the lane.
#[derive(Debug, Default, PartialEq, Eq)]
struct Narrowed {
    /// Delivered rows, in the order they were sent.
    delivered: Vec<usize>,
    /// Rows refused on their own, in lane order, with the refusal.
    dead: Vec<(usize, Refusal)>,
    /// The first row not delivered when a transient failure stopped the
    /// lane, and the failure.
    stopped: Option<(usize, Transient)>,
    /// Sends that delivered their run.
    delivered_sends: u64,
    /// Sends that failed (transient or refused).
    failures: u64,
}

/// Delivers rows `0..len` of a lane, `send(run)` sending the rows of `run`
/// as one batch. A refused run of several rows is split in halves, the
/// first sent before the second, down to single rows; a single refused row
/// is a dead letter and is skipped. Every row is thus sent after all rows
/// before it were delivered or set aside (the lane's order, -06 §5.5), and
/// one bad row among `n` costs about `2·log2(n)` extra sends. A transient
/// failure stops the lane at the run it hit.
async fn narrow<F, Fut>(len: usize, mut send: F) -> Narrowed
where
    F: FnMut(Range<usize>) -> Fut,
    Fut: Future<Output = Result<(), LaneError>>,
{
    let mut narrowed = Narrowed::default();
    // Runs still to send; the next one on top.
    let mut pending: Vec<Range<usize>> = Vec::new();
    pending.push(0..len);
    while let Some(run) = pending.pop() {
        if run.is_empty() {
            continue;
        }
        match send(run.clone()).await {
            Ok(()) => {
                narrowed.delivered_sends += 1;
                narrowed.delivered.extend(run);
            }
            Err(LaneError::Refused(refusal)) => {
                narrowed.failures += 1;
                if run.len() == 1 {
                    narrowed.dead.push((run.start, refusal));
                } else {
                    let middle = run.start + run.len() / 2;
                    pending.push(middle..run.end);
                    pending.push(run.start..middle);
                }
            }
            Err(LaneError::Transient(transient)) => {
                narrowed.failures += 1;
                narrowed.stopped = Some((run.start, transient));
                break;
            }
        }
    }
    narrowed
}

async fn deliver_lane(state: AppState, lane: Lane) {
    let local = lane.destination.eq_ignore_ascii_case(state.domain());
    let narrowed = narrow(lane.rows.len(), |run| send_run(&state, &lane, run, local)).await;
    let provider = state.domain().to_owned();
    let destination = lane.destination.clone();
    if narrowed.failures > 0 {
        state.runtime.record(|| {
            metrics::counter!("mimi_fanout_failures_total", "provider" => provider.clone(), "destination" => destination.clone())
                .increment(narrowed.failures);
        });
    }
    let delivered: Vec<&OutboxItem> = narrowed
        .delivered
        .iter()
        .filter_map(|&i| lane.rows.get(i))
        .collect();
    if !delivered.is_empty() {
        let ids: Vec<OutboxId> = delivered.iter().map(|r| r.id).collect();
        match state.store.complete_outbox(&ids).await {
            Ok(()) => state.runtime.record(|| {
                record_delivered(
                    &provider,
                    &destination,
                    &delivered,
                    narrowed.delivered_sends,
                )
            }),
            // The lease expires and the rows are sent again; the
            // follower's duplicate detection absorbs the repeat.
            Err(err) => {
                tracing::warn!(%err, destination, "completing delivered outbox rows failed")
            }
        }
    }
    for (index, refusal) in &narrowed.dead {
        if let Some(row) = lane.rows.get(*index) {
            dead_letter(&state, &lane, row, refusal).await;
        }
    }
    if let Some((index, transient)) = narrowed.stopped
        && let Some(head) = lane.rows.get(index)
    {
        schedule_retry(&state, &lane, head, transient).await;
    }
}

/// Sends rows `run` of the lane: in process to our own devices, else as
/// one `/notify` body.
async fn send_run(
    state: &AppState,
    lane: &Lane,
    run: Range<usize>,
    local: bool,
) -> Result<(), LaneError> {
    let rows = lane.rows.get(run).unwrap_or_default();
    if local {
        deliver_locally(state, &lane.room_id, rows).await
    } else {
        deliver_remote(state, lane, rows).await
    }
}

/// Sets a refused row aside as a dead letter, so the rest of its lane
/// goes on; if that fails the lease expires and the lane is narrowed again.
async fn dead_letter(state: &AppState, lane: &Lane, row: &OutboxItem, refusal: &Refusal) {
    tracing::error!(
        destination = lane.destination,
        room = lane.room_id,
        seq = row.seq,
        status = refusal.status,
        answer = refusal.answer,
        "fanout event refused permanently; kept as a dead letter"
    );
    match state
        .store
        .dead_letter_outbox(&[row.id], refusal.status, &refusal.answer, now_ms())
        .await
    {
        Ok(moved) => state.runtime.record(|| {
            metrics::counter!("mimi_fanout_dead_letters_total", "provider" => state.domain().to_owned(), "destination" => lane.destination.clone())
                .increment(moved);
        }),
        Err(err) => tracing::warn!(%err, "keeping a dead letter failed; the lease will expire"),
    }
}

/// Counts delivered `FanoutMessage`s and records their latency since hub
/// acceptance (the `timestamp` of -06 §5.5), into the current recorder.
fn record_delivered(provider: &str, destination: &str, rows: &[&OutboxItem], requests: u64) {
    metrics::counter!("mimi_fanout_delivered_total", "provider" => provider.to_owned(), "destination" => destination.to_owned())
        .increment(rows.len() as u64);
    metrics::counter!("mimi_fanout_requests_total", "provider" => provider.to_owned(), "destination" => destination.to_owned())
        .increment(requests);
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

/// Hands the lane back to the store: `head`, its first undelivered row,
/// becomes due again after the backoff, which releases the whole lane and
/// keeps its order.
async fn schedule_retry(state: &AppState, lane: &Lane, head: &OutboxItem, err: Transient) {
    let fanout = &state.config.fanout;
    let delay_ms = err.retry_after_ms.unwrap_or_else(|| {
        backoff_ms(
            fanout.initial_backoff_ms,
            fanout.max_backoff_ms,
            head.attempts,
        )
    });
    tracing::warn!(
        destination = lane.destination,
        room = lane.room_id,
        attempts = head.attempts,
        delay_ms,
        reason = err.reason,
        "fanout failed; will retry"
    );
    let at = now_ms().saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
    if let Err(e) = state.store.retry_outbox(head.id, at, &err.reason).await {
        tracing::warn!(%e, "recording the fanout retry failed; the lease will expire");
    }
    if err.unreachable && fanout.recovery_probe_ms > 0 {
        state.runtime.mark_unreachable(&lane.destination);
    }
}

/// `destination` answers again: stop probing it and make its waiting
/// lanes due now.
async fn retry_destination_now(state: &AppState, destination: &str) {
    state.runtime.forget_unreachable(destination);
    match state
        .store
        .wake_outbox_destination(destination, now_ms())
        .await
    {
        Ok(woken) => {
            tracing::info!(
                destination,
                woken,
                "destination answers again; retrying its lanes now"
            );
            wake(state);
        }
        Err(e) => tracing::warn!(destination, %e, "waking the destination's lanes failed"),
    }
}

/// Middleware on the federation routes, inside authentication: a peer
/// that sends us an authenticated request is reachable again, so lanes
/// to it that wait for the recovery probe are retried at once.
pub async fn notice_peer(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(SourceProvider(source)) = request.extensions().get::<SourceProvider>()
        && state.runtime.is_unreachable(source)
    {
        let (state, source) = (state.clone(), source.clone());
        tokio::spawn(async move { retry_destination_now(&state, &source).await });
    }
    next.run(request).await
}

/// Probes destinations fanout could not connect to, every
/// `recovery_probe_ms`; one that answers again has its waiting lanes made
/// due at once, so a follower back from a restart gets its events now
/// rather than after a backoff that grew while it was down (up to
/// `max_backoff_ms`). A probe is one GET of the directory per destination,
/// not a resend of every lane. Probing a destination stops when it
/// answers or after `max_backoff_ms`, when its lanes retry anyway.
async fn run_recovery_prober(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let fanout = &state.config.fanout;
    if fanout.recovery_probe_ms == 0 {
        return;
    }
    let every = Duration::from_millis(fanout.recovery_probe_ms);
    let give_up = Duration::from_millis(fanout.max_backoff_ms.max(fanout.recovery_probe_ms));
    while !*shutdown.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => continue,
        }
        let mut probes = JoinSet::new();
        for (destination, since) in state.runtime.unreachable() {
            if since.elapsed() > give_up {
                state.runtime.forget_unreachable(&destination);
                continue;
            }
            let state = state.clone();
            probes.spawn(async move {
                // A probe waits no longer than the interval: a peer that
                // is still down must not slow down the next round.
                if state.peers.answers(&destination, every).await {
                    retry_destination_now(&state, &destination).await;
                }
            });
        }
        while probes.join_next().await.is_some() {}
    }
}

/// `initial · 2^attempts`, capped at `max`.
pub fn backoff_ms(initial_ms: u64, max_ms: u64, attempts: u32) -> u64 {
    let factor = 1u64.checked_shl(attempts.min(63)).unwrap_or(u64::MAX);
    initial_ms.saturating_mul(factor).min(max_ms)
}

/// The hub delivering to its own devices: same routing and duplicate
/// detection as `/notify`, without HTTP.
async fn deliver_locally(
    state: &AppState,
    room_id: &str,
    rows: &[OutboxItem],
) -> Result<(), LaneError> {
    let body = batch_body(rows);
    let items: Vec<FanoutItem> = batch::split_batch(&body)
        .map_err(|e| LaneError::refused_here(format!("outbox row is not a FanoutMessage: {e}")))?;
    let hub = state.domain().to_owned();
    delivery::deliver_batch(state, &hub, room_id, &items)
        .await
        .map(|_| ())
        .map_err(|e| LaneError::transient(format!("local delivery: {e}")))
}

/// POSTs rows as one `/notify` body to the destination's notify URL for
/// the room (-06 §5.1 directory, §5.5); success is 201.
async fn deliver_remote(
    state: &AppState,
    lane: &Lane,
    rows: &[OutboxItem],
) -> Result<(), LaneError> {
    let room = MimiUri::parse(&lane.room_id)
        .map_err(|e| LaneError::refused_here(format!("room id {}: {e}", lane.room_id)))?;
    let response = state
        .peers
        .send_raw::<endpoints::Notify>(&lane.destination, &room, batch_body(rows))
        .await
        .map_err(LaneError::from_outbound)?;
    match classify(response.status(), retry_after_ms(response.headers())) {
        Err(LaneError::Refused(refusal)) => Err(LaneError::Refused(Refusal {
            answer: answer_prefix(response).await,
            ..refusal
        })),
        other => other,
    }
}

/// The rows' payloads concatenated in order (-06 §5.5).
fn batch_body(rows: &[OutboxItem]) -> Vec<u8> {
    rows.iter()
        .flat_map(|r| r.payload.iter().copied())
        .collect()
}

/// Maps a `/notify` answer to success, a transient failure or a refusal
/// (with an empty answer, for the caller to fill in).
fn classify(status: StatusCode, retry_after_ms: Option<u64>) -> Result<(), LaneError> {
    if status == StatusCode::CREATED {
        return Ok(());
    }
    // 408 Request Timeout, 425 Too Early and 429 Too Many Requests ask to
    // try again later (RFC 9110 §15.5.9, RFC 8470 §5.2, RFC 6585 §4).
    let again_later = matches!(status.as_u16(), 408 | 425 | 429);
    if status.is_client_error() && !again_later {
        Err(LaneError::Refused(Refusal {
            status: Some(status.as_u16()),
            answer: String::new(),
        }))
    } else {
        Err(LaneError::Transient(Transient {
            reason: format!("notify answered {status}"),
            retry_after_ms,
            unreachable: false,
        }))
    }
}

/// At most [`ANSWER_PREFIX_BYTES`] of a refusal's body, lossy UTF-8:
/// enough for the peer's reason, bounded whatever the peer sends.
async fn answer_prefix(mut response: reqwest::Response) -> String {
    let mut prefix = Vec::new();
    while prefix.len() < ANSWER_PREFIX_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => prefix.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    prefix.truncate(ANSWER_PREFIX_BYTES);
    String::from_utf8_lossy(&prefix).into_owned()
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
/// [`NOTIFY_DEDUP_WINDOW_MS`], deletes the logged events every device that
/// may read them has acknowledged or that are past `[delivery]
/// event_retention_secs`, and deletes expired KeyPackages.
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
    let expired_before = state.config.delivery.expired_before_ms(now);
    match state.store.purge_delivery_log(expired_before).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(purged = n, "deleted read or expired logged events");
            }
            state.runtime.record(|| {
                metrics::counter!("mimi_delivery_log_purged_total", "provider" => state.domain().to_owned())
                    .increment(n);
            });
        }
        Err(err) => tracing::warn!(%err, "purging logged events failed"),
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
    fn only_4xx_other_than_408_425_429_are_refusals() {
        assert!(classify(StatusCode::CREATED, None).is_ok());
        for status in [200, 408, 425, 429, 500, 503] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(
                    classify(status, Some(7)),
                    Err(LaneError::Transient(Transient {
                        retry_after_ms: Some(7),
                        ..
                    }))
                ),
                "{status}"
            );
        }
        for status in [400, 403, 404, 413, 422] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(classify(status, None), Err(LaneError::Refused(Refusal { status: Some(s), .. })) if s == status.as_u16()),
                "{status}"
            );
        }
    }

    /// A follower's answers to runs of a lane: refuses every run holding
    /// one of `bad`, fails transiently on the `transient_at`-th send.
    struct Follower {
        bad: Vec<usize>,
        transient_at: Option<usize>,
        sent: Vec<Range<usize>>,
    }

    impl Follower {
        fn new(bad: &[usize]) -> Self {
            Self {
                bad: bad.to_vec(),
                transient_at: None,
                sent: Vec::new(),
            }
        }

        fn answer(&mut self, run: Range<usize>) -> std::future::Ready<Result<(), LaneError>> {
            self.sent.push(run.clone());
            let answer = if self.transient_at == Some(self.sent.len()) {
                Err(LaneError::transient("503".into()))
            } else if self.bad.iter().any(|b| run.contains(b)) {
                Err(LaneError::Refused(Refusal {
                    status: Some(400),
                    answer: format!("bad {run:?}"),
                }))
            } else {
                Ok(())
            };
            std::future::ready(answer)
        }

        async fn narrow(&mut self, len: usize) -> Narrowed {
            narrow(len, |run| self.answer(run)).await
        }
    }

    fn dead_rows(narrowed: &Narrowed) -> Vec<usize> {
        narrowed.dead.iter().map(|(i, _)| *i).collect()
    }

    #[tokio::test]
    async fn one_refused_row_of_100_is_isolated_and_the_other_99_go_in_order() {
        let mut follower = Follower::new(&[37]);
        let narrowed = follower.narrow(100).await;
        let want: Vec<usize> = (0..100).filter(|&i| i != 37).collect();
        assert_eq!(narrowed.delivered, want, "in lane order, 37 skipped");
        assert_eq!(
            narrowed.dead,
            vec![(
                37,
                Refusal {
                    status: Some(400),
                    answer: "bad 37..38".into()
                }
            )]
        );
        assert_eq!(narrowed.stopped, None);
        // The whole lane, one refused run per halving down to row 37 (7
        // refusals), each sibling accepted: 13 sends, not 100.
        assert_eq!(follower.sent.len(), 13, "{:?}", follower.sent);
        assert_eq!(narrowed.failures, 7);
        // Every run starts right after the rows settled (delivered or set
        // aside) before it: nothing overtakes an earlier row.
        let mut settled = 0;
        for run in &follower.sent {
            assert_eq!(run.start, settled, "{:?}", follower.sent);
            if !run.contains(&37) || run.len() == 1 {
                settled = run.end;
            }
        }
        assert_eq!(settled, 100);
    }

    #[tokio::test]
    async fn several_refused_rows_are_each_set_aside() {
        let mut follower = Follower::new(&[0, 5, 6, 9]);
        let narrowed = follower.narrow(10).await;
        assert_eq!(narrowed.delivered, vec![1, 2, 3, 4, 7, 8]);
        assert_eq!(dead_rows(&narrowed), vec![0, 5, 6, 9]);
        // A lane the follower refuses whatever it holds: every row is dead,
        // after 2n - 1 sends.
        let mut follower = Follower::new(&[0, 1, 2, 3, 4]);
        let narrowed = follower.narrow(5).await;
        assert!(narrowed.delivered.is_empty());
        assert_eq!(dead_rows(&narrowed), vec![0, 1, 2, 3, 4]);
        assert_eq!(follower.sent.len(), 9);
    }

    #[tokio::test]
    async fn a_transient_failure_stops_the_lane_at_its_run() {
        // 10 rows, row 6 bad: [0..10] refused, [0..5] delivered, [5..10]
        // refused, [5..7] fails transiently: stop at row 5.
        let mut follower = Follower::new(&[6]);
        follower.transient_at = Some(4);
        let narrowed = follower.narrow(10).await;
        assert_eq!(narrowed.delivered, vec![0, 1, 2, 3, 4]);
        assert!(narrowed.dead.is_empty());
        let (at, transient) = narrowed.stopped.expect("stopped");
        assert_eq!((at, transient.reason.as_str()), (5, "503"));
        assert_eq!(follower.sent, vec![0..10, 0..5, 5..10, 5..7]);
    }

    #[tokio::test]
    async fn a_lane_accepted_at_once_is_one_send() {
        let mut follower = Follower::new(&[]);
        let narrowed = follower.narrow(12).await;
        assert_eq!(narrowed.delivered, (0..12).collect::<Vec<_>>());
        assert_eq!(
            (
                follower.sent.len(),
                narrowed.delivered_sends,
                narrowed.failures
            ),
            (1, 1, 0)
        );
        let narrowed = Follower::new(&[]).narrow(0).await;
        assert_eq!(narrowed, Narrowed::default());
    }

    #[tokio::test]
    async fn a_refusal_keeps_a_bounded_prefix_of_the_answer() {
        let answer = |body: Vec<u8>| {
            reqwest::Response::from(
                axum::http::Response::builder()
                    .status(400)
                    .body(body)
                    .unwrap(),
            )
        };
        let long = answer_prefix(answer(vec![b'x'; 5 * ANSWER_PREFIX_BYTES])).await;
        assert_eq!(long, "x".repeat(ANSWER_PREFIX_BYTES));
        assert_eq!(
            answer_prefix(answer(b"bad event".to_vec())).await,
            "bad event"
        );
        // Not UTF-8: kept lossily, never an error.
        assert_eq!(answer_prefix(answer(vec![0xff, b'!'])).await, "\u{fffd}!");
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
