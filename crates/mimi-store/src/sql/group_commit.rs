//! Group commit: concurrent accepts (and KeyPackage claims) share one
//! durable transaction.

use std::future::Future;
use std::pin::Pin;

use crate::error::{Result, StoreError, to_u64};
use crate::types::*;

use super::in_tx::DeviceEvent;
use super::rows::check_accept;

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
pub struct GroupCommit<J, O> {
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
pub struct GroupCommits {
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

/// One `KeyPackageStore::claim_key_packages` call.
#[derive(Debug, Clone)]
pub struct ClaimJob {
    pub user_uri: String,
    pub now_secs: i64,
}

/// A boxed future that may move between threads.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Every job of a batch in one transaction: the outer error means nothing
/// was committed; an inner one failed that job alone.
pub(crate) type RunTogether<S, J, O> =
    for<'a> fn(&'a S, &'a [&'a J]) -> BoxFuture<'a, Result<Vec<Result<O>>>>;

/// How a store runs one kind of job in batches.
pub(crate) struct BatchKind<S, J, O> {
    /// The store's group commit for this kind of job.
    pub(crate) commit: fn(&S) -> &GroupCommit<J, O>,
    /// Every job in one transaction. The outer error means nothing was
    /// committed; an inner one failed that job alone (for accepts, a lost
    /// compare-and-set, which wrote nothing for that event).
    pub(crate) run_together: RunTogether<S, J, O>,
}

impl<S, J, O> Clone for BatchKind<S, J, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, J, O> Copy for BatchKind<S, J, O> {}

/// Runs `job` through the store's group commit for its kind.
pub(crate) async fn group_run<S, J, O>(store: &S, kind: BatchKind<S, J, O>, job: J) -> Result<O>
where
    S: Clone + Send + Sync + 'static,
    J: Send + Sync + 'static,
    O: Send + 'static,
{
    let (reply, outcome) = tokio::sync::oneshot::channel();
    (kind.commit)(store)
        .queue
        .lock()
        .map_err(|_| StoreError::Invalid("poisoned group-commit queue".into()))?
        .push(Job { job, reply });
    // The batch runs in its own task: a caller that goes away (a dropped
    // request) cannot abort other callers' jobs.
    let runner = store.clone();
    tokio::spawn(async move { run_batches(&runner, kind).await });
    outcome
        .await
        .map_err(|_| StoreError::Invalid("the group-commit batch was abandoned".into()))?
}

/// Drains the queue in batches until it is empty.
async fn run_batches<S, J, O>(store: &S, kind: BatchKind<S, J, O>)
where
    S: Send + Sync,
    J: Send + Sync + 'static,
    O: Send + 'static,
{
    let commit = (kind.commit)(store);
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
        match (kind.run_together)(store, &batch).await {
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
                    let outcome = match (kind.run_together)(store, &[&job.job]).await {
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
pub type RunUpdate = std::result::Result<(i64, i64, i64), StoreError>;

/// An accepted event's room-log row.
pub struct LogRow<'a> {
    pub(crate) room_id: &'a str,
    pub(crate) seq: i64,
    pub(crate) epoch: i64,
    pub(crate) new_epoch: i64,
    pub(crate) payload: &'a [u8],
    pub(crate) accepted_at_ms: i64,
}

/// An accepted event's outbox row.
pub struct OutboxRowIn<'a> {
    pub(crate) destination: &'a str,
    pub(crate) room_id: &'a str,
    pub(crate) seq: i64,
    pub(crate) payload: &'a [u8],
    pub(crate) enqueued_at_ms: i64,
}

/// What one group commit of accepts writes after the room-row updates:
/// the callers' outcomes and the rows, in queue order, for bulk inserts.
#[derive(Default)]
pub struct AcceptPlan<'a> {
    pub(crate) outcomes: Vec<Result<AcceptOutcome>>,
    pub(crate) log: Vec<LogRow<'a>>,
    pub(crate) outbox: Vec<OutboxRowIn<'a>>,
    /// The accepted events' deliveries to this provider's own devices.
    pub(crate) local: Vec<DeviceEvent<'a>>,
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
            let mut logged = 0;
            for local in &event.local {
                logged += match &local.recipients {
                    Recipients::Room => 1,
                    Recipients::Welcomed(devices) => devices.len(),
                };
                self.local.push(DeviceEvent {
                    room_id: &event.room_id,
                    payload: &local.payload,
                    recipients: &local.recipients,
                    at_ms: event.accepted_at_ms,
                });
            }
            self.outcomes.push(Ok(AcceptOutcome {
                seq: to_u64(seq, "seq")?,
                epoch: to_u64(epoch, "epoch")?,
                state_version: to_u64(state_version, "state version")?,
                logged,
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
            local: Vec::new(),
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
