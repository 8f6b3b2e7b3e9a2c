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

/// Dedup keys inserted by one statement: 4 parameters each, well under
/// SQLite's limit of 32,766 parameters.
pub(crate) const NOTIFY_KEYS_PER_STATEMENT: usize = 1000;

/// Inserts `n` `/notify` dedup keys (parameters: hub domain, room, key,
/// time, for each) and returns the keys that were not there yet.
pub(crate) fn insert_notify_keys_sql(n: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::from(
        "INSERT INTO notify_seen (hub_domain, room_id, message_sha256, seen_at) VALUES ",
    );
    for k in 0..n {
        let b = 4 * k;
        let sep = if k == 0 { "" } else { ", " };
        let _ = write!(sql, "{sep}(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4);
    }
    sql.push_str(
        " ON CONFLICT (hub_domain, room_id, message_sha256) DO NOTHING RETURNING message_sha256",
    );
    sql
}

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

/// A job waiting for the next group commit, with its caller's reply.
struct Job<J, O> {
    job: J,
    reply: tokio::sync::oneshot::Sender<Result<O>>,
}

/// Group commit: concurrent callers queue their jobs; one batch at a time
/// drains the queue into ONE transaction, so one durable commit (fsync /
/// WAL flush) covers many jobs. Jobs run in queue order, each seeing the
/// earlier ones, and no caller is answered before the transaction holding
/// its job has committed: durability is unchanged.
///
/// Used for accepted room events (each keeps its own compare-and-set) and
/// for KeyPackage claims (each claim still deletes its KeyPackage before
/// the next one looks, so nothing is issued twice).
pub(crate) struct GroupCommit<J, O> {
    queue: std::sync::Mutex<Vec<Job<J, O>>>,
    leader: tokio::sync::Mutex<()>,
    max_batch: usize,
}

impl<J, O> GroupCommit<J, O> {
    pub(crate) fn new(max_batch: usize) -> Self {
        Self {
            queue: std::sync::Mutex::new(Vec::new()),
            leader: tokio::sync::Mutex::new(()),
            max_batch,
        }
    }
}

impl<J, O> std::fmt::Debug for GroupCommit<J, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

/// Most events in one group commit.
pub(crate) const MAX_ACCEPT_BATCH: usize = 512;
/// Most KeyPackage claims in one group commit.
pub(crate) const MAX_CLAIM_BATCH: usize = 128;

/// The group commits of one store.
#[derive(Debug)]
pub(crate) struct GroupCommits {
    pub accepts: GroupCommit<AcceptedEvent, AcceptOutcome>,
    pub claims: GroupCommit<ClaimJob, Vec<ClientClaim>>,
}

impl Default for GroupCommits {
    fn default() -> Self {
        Self {
            accepts: GroupCommit::new(MAX_ACCEPT_BATCH),
            claims: GroupCommit::new(MAX_CLAIM_BATCH),
        }
    }
}

/// One `Store::claim_key_packages` call.
#[derive(Debug, Clone)]
pub(crate) struct ClaimJob {
    pub user_uri: String,
    pub now_secs: i64,
}

/// A store that can run several jobs of one kind in one transaction.
#[async_trait::async_trait]
pub(crate) trait Batched<J, O>: Clone + Send + Sync + 'static
where
    J: Send + Sync + 'static,
    O: Send + 'static,
{
    fn group_commit(&self) -> &GroupCommit<J, O>;

    /// Every job in one transaction. The outer error means nothing was
    /// committed; an inner one failed that job alone (for accepts, a lost
    /// compare-and-set, which wrote nothing for that event).
    async fn run_together(&self, jobs: &[&J]) -> Result<Vec<Result<O>>>;
}

/// Runs `job` through the store's group commit for its kind.
pub(crate) async fn group_run<S, J, O>(store: &S, job: J) -> Result<O>
where
    S: Batched<J, O>,
    J: Send + Sync + 'static,
    O: Send + 'static,
{
    let (reply, outcome) = tokio::sync::oneshot::channel();
    store
        .group_commit()
        .queue
        .lock()
        .map_err(|_| StoreError::Invalid("poisoned group-commit queue".into()))?
        .push(Job { job, reply });
    // The batch runs in its own task: a caller that goes away (a dropped
    // request) cannot abort other callers' jobs.
    let runner = store.clone();
    tokio::spawn(async move { run_batches(&runner).await });
    outcome
        .await
        .map_err(|_| StoreError::Invalid("the group-commit batch was abandoned".into()))?
}

/// The group commits of a store: `$tx` opens its write transaction, in
/// which the store's `accept_batch_in` runs a batch of accepts and its
/// `claim_in` one claim after another. (Both backends share this shape;
/// only their SQL differs.)
macro_rules! group_commit_impls {
    ($store:ty, $tx:ident) => {
        #[async_trait::async_trait]
        impl Batched<AcceptedEvent, AcceptOutcome> for $store {
            fn group_commit(&self) -> &GroupCommit<AcceptedEvent, AcceptOutcome> {
                &self.group_commits.accepts
            }

            async fn run_together(
                &self,
                events: &[&AcceptedEvent],
            ) -> Result<Vec<Result<AcceptOutcome>>> {
                let mut tx = self.$tx().await?;
                let outcomes = accept_batch_in(&mut tx, events).await?;
                tx.commit().await?;
                Ok(outcomes)
            }
        }

        #[async_trait::async_trait]
        impl Batched<ClaimJob, Vec<ClientClaim>> for $store {
            fn group_commit(&self) -> &GroupCommit<ClaimJob, Vec<ClientClaim>> {
                &self.group_commits.claims
            }

            async fn run_together(
                &self,
                jobs: &[&ClaimJob],
            ) -> Result<Vec<Result<Vec<ClientClaim>>>> {
                let mut tx = self.$tx().await?;
                let mut outcomes = Vec::with_capacity(jobs.len());
                for job in jobs {
                    outcomes.push(Ok(claim_in(&mut tx, &job.user_uri, job.now_secs).await?));
                }
                tx.commit().await?;
                Ok(outcomes)
            }
        }
    };
}
pub(crate) use group_commit_impls;

/// `claim_in(conn, user_uri, now_secs)`: one claim (one KeyPackage per
/// client of `user_uri`) inside an open write transaction. Single-use
/// KeyPackages are deleted as they are handed out, so a later claim in the
/// same transaction cannot see them; a client without one gets its newest
/// last-resort KeyPackage, which stays. `$take_single_use` is the backend's
/// `DELETE … RETURNING` of the oldest single-use KeyPackage (`$1` client,
/// `$2` now); the rest of the SQL is shared.
///
/// The queries compare `last_resort = FALSE` / `TRUE` rather than `NOT
/// last_resort`: an equality lets the (client_uri, last_resort, id) index
/// hand out the KeyPackage directly instead of scanning the client's rows.
macro_rules! claim_in_fn {
    ($conn:ty, $take_single_use:expr $(,)?) => {
        async fn claim_in(
            conn: &mut $conn,
            user_uri: &str,
            now_secs: i64,
        ) -> Result<Vec<ClientClaim>> {
            let clients: Vec<String> = sqlx::query_scalar(
                "SELECT client_uri FROM clients WHERE user_uri = $1 ORDER BY client_uri",
            )
            .bind(user_uri)
            .fetch_all(&mut *conn)
            .await?;
            let mut claims = Vec::with_capacity(clients.len());
            for client_uri in clients {
                let mut row: Option<KeyPackageRow> = sqlx::query_as($take_single_use)
                    .bind(&client_uri)
                    .bind(now_secs)
                    .fetch_optional(&mut *conn)
                    .await?;
                if row.is_none() {
                    row = sqlx::query_as(
                        "SELECT key_package_ref, key_package, not_after, last_resort
                         FROM key_packages
                         WHERE client_uri = $1 AND last_resort = TRUE AND not_after > $2
                         ORDER BY id DESC LIMIT 1",
                    )
                    .bind(&client_uri)
                    .bind(now_secs)
                    .fetch_optional(&mut *conn)
                    .await?;
                }
                if let Some((kp_ref, ..)) = &row {
                    sqlx::query(
                        "INSERT INTO key_package_claims (key_package_ref, client_uri, claimed_at)
                         VALUES ($1, $2, $3) ON CONFLICT (key_package_ref) DO NOTHING",
                    )
                    .bind(kp_ref)
                    .bind(&client_uri)
                    .bind(now_secs)
                    .execute(&mut *conn)
                    .await?;
                }
                claims.push(ClientClaim {
                    client_uri,
                    key_package: row.map(claimed),
                });
            }
            Ok(claims)
        }
    };
}
pub(crate) use claim_in_fn;

/// `update_room_for_run(conn, run)`: the room-row compare-and-set for one
/// run of accepts (see [`accept_runs`]); `last_seq` advances by the run's
/// length. Returns the row after it, or the conflict. `$update` is the
/// backend's `UPDATE rooms … RETURNING last_seq, epoch, state_version`
/// with `$1` room, `$2` expected epoch, `$3` new epoch, `$4` new state or
/// NULL, `$5` expected state version or NULL, `$6` time, `$7` run length.
macro_rules! update_room_for_run_fn {
    ($conn:ty, $update:expr $(,)?) => {
        async fn update_room_for_run(
            conn: &mut $conn,
            run: &[&AcceptedEvent],
        ) -> Result<RunUpdate> {
            let Some(first) = run.first() else {
                return Err(StoreError::Invalid("empty accept run".into()));
            };
            let checked = check_accept(first)?;
            let updated: Option<(i64, i64, i64)> = sqlx::query_as($update)
                .bind(&first.room_id)
                .bind(checked.expected_epoch)
                .bind(checked.new_epoch)
                .bind(&first.new_group_state)
                .bind(checked.expected_state_version)
                .bind(first.accepted_at_ms)
                .bind(i64::try_from(run.len()).unwrap_or(i64::MAX))
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = updated {
                return Ok(Ok(row));
            }
            let current: Option<(i64, i64)> =
                sqlx::query_as("SELECT epoch, state_version FROM rooms WHERE room_id = $1")
                    .bind(&first.room_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            Ok(Err(conflict(first, current)?))
        }
    };
}
pub(crate) use update_room_for_run_fn;

/// `Store::accept_room_event` through the group commit.
pub(crate) async fn group_accept<S: Batched<AcceptedEvent, AcceptOutcome>>(
    store: &S,
    event: AcceptedEvent,
) -> Result<AcceptOutcome> {
    check_accept(&event)?;
    group_run(store, event).await
}

/// Drains the queue in batches until it is empty.
async fn run_batches<S, J, O>(store: &S)
where
    S: Batched<J, O>,
    J: Send + Sync + 'static,
    O: Send + 'static,
{
    let commit = store.group_commit();
    let _leader = commit.leader.lock().await;
    loop {
        let jobs: Vec<Job<J, O>> = match commit.queue.lock() {
            Ok(mut queue) => {
                let n = queue.len().min(commit.max_batch);
                queue.drain(..n).collect()
            }
            Err(_) => return,
        };
        if jobs.is_empty() {
            return;
        }
        let batch: Vec<&J> = jobs.iter().map(|j| &j.job).collect();
        match store.run_together(&batch).await {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            // A database error (or, on PostgreSQL, a deadlock with another
            // process): nothing was committed. Each job gets its own
            // transaction, so one bad job fails alone.
            Err(_) => {
                for job in jobs {
                    let outcome = match store.run_together(&[&job.job]).await {
                        Ok(mut one) => one.pop().unwrap_or_else(|| {
                            Err(StoreError::Invalid("no outcome for the job".into()))
                        }),
                        Err(e) => Err(e),
                    };
                    let _ = job.reply.send(outcome);
                }
            }
        }
    }
}

/// Consecutive events of a group commit that ONE room-row update can
/// accept together: application events (same epoch, no state change) of
/// one room with the same guards. Accepted one by one they would each
/// pass or each fail the same compare-and-set, since none changes epoch
/// or state version, so together they take `k` consecutive sequence
/// numbers. Every other event is a run of its own.
pub(crate) fn accept_runs(events: &[&AcceptedEvent]) -> Vec<std::ops::Range<usize>> {
    let plain = |e: &AcceptedEvent| e.new_group_state.is_none() && e.new_epoch == e.expected_epoch;
    let joins = |a: &AcceptedEvent, b: &AcceptedEvent| {
        plain(a)
            && plain(b)
            && a.room_id == b.room_id
            && a.expected_epoch == b.expected_epoch
            && a.expected_state_version == b.expected_state_version
    };
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=events.len() {
        if i == events.len() || !joins(events[i - 1], events[i]) {
            runs.push(start..i);
            start = i;
        }
    }
    runs
}

/// The room-row update of one run: what the store's UPDATE returned
/// (`last_seq, epoch, state_version` after the run) or the conflict.
pub(crate) type RunUpdate = std::result::Result<(i64, i64, i64), StoreError>;

/// An accepted event's room-log row.
pub(crate) struct LogRow<'a> {
    pub(crate) room_id: &'a str,
    pub(crate) seq: i64,
    pub(crate) epoch: i64,
    pub(crate) new_epoch: i64,
    pub(crate) payload: &'a [u8],
    pub(crate) accepted_at_ms: i64,
}

/// An accepted event's outbox row.
pub(crate) struct OutboxRowIn<'a> {
    pub(crate) destination: &'a str,
    pub(crate) room_id: &'a str,
    pub(crate) seq: i64,
    pub(crate) payload: &'a [u8],
    pub(crate) enqueued_at_ms: i64,
}

/// What one group commit of accepts writes after the room-row updates:
/// the callers' outcomes and the rows, in queue order, for bulk inserts.
#[derive(Default)]
pub(crate) struct AcceptPlan<'a> {
    pub(crate) outcomes: Vec<Result<AcceptOutcome>>,
    pub(crate) log: Vec<LogRow<'a>>,
    pub(crate) outbox: Vec<OutboxRowIn<'a>>,
}

impl<'a> AcceptPlan<'a> {
    /// Records the update of `run` (consecutive events of [`accept_runs`]).
    pub(crate) fn record(&mut self, run: &[&'a AcceptedEvent], update: RunUpdate) -> Result<()> {
        let (last_seq, epoch, state_version) = match update {
            Ok(row) => row,
            Err(conflict) => {
                // Every event of the run lost the same compare-and-set.
                for _ in 1..run.len() {
                    self.outcomes.push(Err(same_conflict(&conflict)));
                }
                self.outcomes.push(Err(conflict));
                return Ok(());
            }
        };
        let first_seq = last_seq - i64::try_from(run.len()).unwrap_or(i64::MAX) + 1;
        for (event, seq) in run.iter().zip(first_seq..) {
            let checked = check_accept(event)?;
            self.log.push(LogRow {
                room_id: &event.room_id,
                seq,
                epoch: checked.expected_epoch,
                new_epoch: checked.new_epoch,
                payload: &event.event,
                accepted_at_ms: event.accepted_at_ms,
            });
            self.outbox
                .extend(event.deliveries.iter().map(|d| OutboxRowIn {
                    destination: &d.destination,
                    room_id: &event.room_id,
                    seq,
                    payload: &d.payload,
                    enqueued_at_ms: event.accepted_at_ms,
                }));
            self.outcomes.push(Ok(AcceptOutcome {
                seq: to_u64(seq, "seq")?,
                epoch: to_u64(epoch, "epoch")?,
                state_version: to_u64(state_version, "state version")?,
            }));
        }
        Ok(())
    }

    /// The distinct outbox lanes, sorted (a consistent lock order).
    pub(crate) fn lanes(&self) -> Vec<(&'a str, &'a str)> {
        let mut lanes: Vec<(&str, &str)> = self
            .outbox
            .iter()
            .map(|o| (o.destination, o.room_id))
            .collect();
        lanes.sort_unstable();
        lanes.dedup();
        lanes
    }
}

/// A copy of a compare-and-set conflict for the other events of its run.
fn same_conflict(e: &StoreError) -> StoreError {
    match e {
        StoreError::RoomNotFound(room) => StoreError::RoomNotFound(room.clone()),
        StoreError::EpochConflict { current_epoch } => StoreError::EpochConflict {
            current_epoch: *current_epoch,
        },
        StoreError::StateVersionConflict {
            current_epoch,
            current_state_version,
        } => StoreError::StateVersionConflict {
            current_epoch: *current_epoch,
            current_state_version: *current_state_version,
        },
        other => StoreError::Invalid(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        room: &str,
        epoch: u64,
        new_epoch: u64,
        state: bool,
        version: Option<u64>,
    ) -> AcceptedEvent {
        AcceptedEvent {
            room_id: room.into(),
            expected_epoch: epoch,
            new_epoch,
            expected_state_version: version,
            new_group_state: state.then(Vec::new),
            event: vec![1],
            accepted_at_ms: 0,
            deliveries: Vec::new(),
        }
    }

    #[test]
    fn runs_join_only_plain_events_of_one_room_with_equal_guards() {
        let e = [
            event("r1", 3, 3, false, Some(7)),
            event("r1", 3, 3, false, Some(7)),
            event("r2", 3, 3, false, Some(7)),
            event("r2", 3, 3, false, Some(8)),
            event("r2", 3, 4, true, None),
            event("r2", 4, 4, false, None),
            event("r2", 4, 4, false, None),
            event("r2", 4, 4, true, Some(1)),
            event("r2", 4, 4, false, None),
        ];
        let refs: Vec<&AcceptedEvent> = e.iter().collect();
        assert_eq!(
            accept_runs(&refs),
            vec![0..2, 2..3, 3..4, 4..5, 5..7, 7..8, 8..9]
        );
        assert!(accept_runs(&[]).is_empty());
    }

    #[test]
    fn a_run_takes_consecutive_seqs_and_a_lost_one_fails_every_event() {
        let e = [event("r", 1, 1, false, None), event("r", 1, 1, false, None)];
        let refs: Vec<&AcceptedEvent> = e.iter().collect();
        let mut plan = AcceptPlan::default();
        plan.record(&refs, Ok((12, 1, 5))).unwrap();
        plan.record(&refs, Err(StoreError::EpochConflict { current_epoch: 2 }))
            .unwrap();
        let seqs: Vec<u64> = plan.outcomes[..2]
            .iter()
            .map(|o| o.as_ref().unwrap().seq)
            .collect();
        assert_eq!(seqs, [11, 12]);
        assert_eq!(plan.log.iter().map(|l| l.seq).collect::<Vec<_>>(), [11, 12]);
        assert!(
            plan.outcomes[2..]
                .iter()
                .all(|o| matches!(o, Err(StoreError::EpochConflict { current_epoch: 2 })))
        );
    }
}
