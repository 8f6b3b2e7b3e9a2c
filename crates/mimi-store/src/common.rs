//! Row conversions and SQL text shared by both backends (both accept `$N` parameters).

use std::time::Duration;

use crate::error::{Result, StoreError, to_i64, to_u64};
use crate::types::*;

pub(crate) type KeyPackageRow = (Vec<u8>, Vec<u8>, i64, bool);

pub(crate) fn claimed(
    (key_package_ref, key_package, not_after, last_resort): KeyPackageRow,
) -> ClaimedKeyPackage {
    ClaimedKeyPackage {
        key_package_ref,
        key_package,
        not_after,
        last_resort,
    }
}

pub(crate) type RoomRow = (String, i64, i64, Vec<u8>, i64, i64, i64);

pub(crate) fn room_record(row: RoomRow) -> Result<RoomRecord> {
    let (room_id, epoch, state_version, group_state, last_seq, created_at_ms, updated_at_ms) = row;
    Ok(RoomRecord {
        room_id,
        epoch: to_u64(epoch, "epoch")?,
        state_version: to_u64(state_version, "state version")?,
        group_state,
        last_seq: to_u64(last_seq, "seq")?,
        created_at_ms,
        updated_at_ms,
    })
}

pub(crate) type OutboxRow = (i64, String, String, i64, Vec<u8>, i64);

pub(crate) fn outbox_item(
    (id, destination, room_id, seq, payload, attempts): OutboxRow,
) -> Result<OutboxItem> {
    Ok(OutboxItem {
        id: to_u64(id, "outbox id")?,
        destination,
        room_id,
        seq: to_u64(seq, "seq")?,
        payload,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
    })
}

/// Releases a lane whose current lease has no rows left.
pub(crate) const RELEASE_FINISHED_LANE: &str = "UPDATE outbox_lanes SET leased_until = NULL
     WHERE destination = $1 AND room_id = $2 AND leased_until IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM outbox o
                       WHERE o.destination = outbox_lanes.destination
                         AND o.room_id = outbox_lanes.room_id
                         AND o.leased_until = outbox_lanes.leased_until)";

pub(crate) const DUE_DESTINATIONS: &str = "SELECT DISTINCT l.destination FROM outbox_lanes l
     WHERE l.next_attempt_at <= $1
       AND (l.leased_until IS NULL OR l.leased_until <= $1)
       AND EXISTS (SELECT 1 FROM outbox o
                   WHERE o.destination = l.destination AND o.room_id = l.room_id)
     ORDER BY l.destination";

pub(crate) const INSERT_NOTIFY: &str = "INSERT INTO notify_seen (hub_domain, body_sha256, seen_at)
     VALUES ($1, $2, $3) ON CONFLICT (hub_domain, body_sha256) DO NOTHING";

/// Lease length in milliseconds, at least 1 so a lease is always in the future.
pub(crate) fn lease_millis(lease_for: Duration) -> i64 {
    i64::try_from(lease_for.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// [`AcceptedEvent`] numbers converted for storage, after the argument rules
/// of its docs are checked.
pub(crate) struct CheckedAccept {
    pub(crate) expected_epoch: i64,
    pub(crate) new_epoch: i64,
    pub(crate) expected_state_version: Option<i64>,
}

pub(crate) fn check_accept(event: &AcceptedEvent) -> Result<CheckedAccept> {
    if event.new_epoch < event.expected_epoch {
        return Err(StoreError::Invalid(format!(
            "new epoch {} is before expected epoch {}",
            event.new_epoch, event.expected_epoch
        )));
    }
    let commit = event.new_epoch > event.expected_epoch;
    if commit && event.new_group_state.is_none() {
        return Err(StoreError::Invalid(
            "an epoch change must carry the new group state".into(),
        ));
    }
    if !commit && event.new_group_state.is_some() && event.expected_state_version.is_none() {
        return Err(StoreError::Invalid(
            "a same-epoch group state write needs expected_state_version".into(),
        ));
    }
    Ok(CheckedAccept {
        expected_epoch: to_i64(event.expected_epoch, "epoch")?,
        new_epoch: to_i64(event.new_epoch, "epoch")?,
        expected_state_version: event
            .expected_state_version
            .map(|v| to_i64(v, "state version"))
            .transpose()?,
    })
}

/// The error for a failed room compare-and-set, given the room's current
/// `(epoch, state_version)` if it exists.
pub(crate) fn conflict(event: &AcceptedEvent, current: Option<(i64, i64)>) -> Result<StoreError> {
    let Some((epoch, state_version)) = current else {
        return Ok(StoreError::RoomNotFound(event.room_id.clone()));
    };
    let current_epoch = to_u64(epoch, "epoch")?;
    tracing::debug!(
        room_id = %event.room_id,
        expected_epoch = event.expected_epoch,
        current_epoch,
        "room compare-and-set lost"
    );
    if current_epoch != event.expected_epoch {
        Ok(StoreError::EpochConflict { current_epoch })
    } else {
        Ok(StoreError::StateVersionConflict {
            current_epoch,
            current_state_version: to_u64(state_version, "state version")?,
        })
    }
}

pub(crate) fn room_event(
    (room_id, seq, epoch, new_epoch, payload, accepted_at_ms): (
        String,
        i64,
        i64,
        i64,
        Vec<u8>,
        i64,
    ),
) -> Result<RoomEvent> {
    Ok(RoomEvent {
        room_id,
        seq: to_u64(seq, "seq")?,
        epoch: to_u64(epoch, "epoch")?,
        new_epoch: to_u64(new_epoch, "epoch")?,
        payload,
        accepted_at_ms,
    })
}

pub(crate) fn client_event(
    (seq, room_id, payload, enqueued_at_ms): (i64, String, Vec<u8>, i64),
) -> Result<ClientEvent> {
    Ok(ClientEvent {
        seq: to_u64(seq, "client seq")?,
        room_id,
        payload,
        enqueued_at_ms,
    })
}

/// An event waiting for the next group commit.
pub(crate) struct AcceptJob {
    event: AcceptedEvent,
    reply: tokio::sync::oneshot::Sender<Result<AcceptOutcome>>,
}

/// Group commit of accepted events: concurrent `accept_room_event` calls
/// queue their events; one batch at a time drains the queue into ONE
/// transaction, so one durable commit (fsync / WAL flush) covers many
/// events. Each event keeps its own compare-and-set (applied in queue
/// order, seeing the earlier ones), and no caller is answered before the
/// transaction holding its event has committed: durability is unchanged.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: std::sync::Mutex<Vec<AcceptJob>>,
    leader: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

/// Most events in one group commit.
const MAX_GROUP_COMMIT: usize = 512;

/// A store that can accept several events in one transaction.
#[async_trait::async_trait]
pub(crate) trait BatchAccept: Clone + Send + Sync + 'static {
    fn group_commit(&self) -> &GroupCommit;

    /// Every event in one transaction. The outer error means nothing was
    /// committed; an inner one is a lost compare-and-set, which wrote
    /// nothing for that event.
    async fn accept_together(
        &self,
        events: &[&AcceptedEvent],
    ) -> Result<Vec<Result<AcceptOutcome>>>;
}

/// `Store::accept_room_event` through the group commit.
pub(crate) async fn group_accept<S: BatchAccept>(
    store: &S,
    event: AcceptedEvent,
) -> Result<AcceptOutcome> {
    check_accept(&event)?;
    let (reply, outcome) = tokio::sync::oneshot::channel();
    store
        .group_commit()
        .queue
        .lock()
        .map_err(|_| StoreError::Invalid("poisoned accept queue".into()))?
        .push(AcceptJob { event, reply });
    // The batch runs in its own task: a caller that goes away (a dropped
    // request) cannot abort other callers' events.
    let runner = store.clone();
    tokio::spawn(async move { run_accept_batches(&runner).await });
    outcome
        .await
        .map_err(|_| StoreError::Invalid("the accept batch was abandoned".into()))?
}

/// Drains the accept queue in batches until it is empty.
async fn run_accept_batches<S: BatchAccept>(store: &S) {
    let _leader = store.group_commit().leader.lock().await;
    loop {
        let jobs: Vec<AcceptJob> = match store.group_commit().queue.lock() {
            Ok(mut queue) => {
                let n = queue.len().min(MAX_GROUP_COMMIT);
                queue.drain(..n).collect()
            }
            Err(_) => return,
        };
        if jobs.is_empty() {
            return;
        }
        let events: Vec<&AcceptedEvent> = jobs.iter().map(|j| &j.event).collect();
        match store.accept_together(&events).await {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            // A database error (or, on PostgreSQL, a deadlock with another
            // process): nothing was committed. Each event gets its own
            // transaction, so one bad event fails alone.
            Err(_) => {
                for job in jobs {
                    let outcome = match store.accept_together(&[&job.event]).await {
                        Ok(mut one) => one.pop().unwrap_or_else(|| {
                            Err(StoreError::Invalid("no outcome for the event".into()))
                        }),
                        Err(e) => Err(e),
                    };
                    let _ = job.reply.send(outcome);
                }
            }
        }
    }
}
