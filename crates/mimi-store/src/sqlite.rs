//! SQLite backend: the embedded single-process default (docs/architecture.md "Scaling past
//! one machine").
//!
//! Every read-modify-write runs in a `BEGIN IMMEDIATE` transaction, which takes
//! SQLite's single write lock up front: writers are serialized (waiting up to
//! the busy timeout), so compare-and-set, KeyPackage claims and outbox leases
//! are atomic even with several pool connections, and a deferred transaction
//! can never fail while upgrading its read lock.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, SqlSafeStr, Sqlite, Transaction};

use crate::error::{Result, StoreError, to_i64, to_u64};
use crate::sql::*;
use crate::types::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for SQLite's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// SQLite's `synchronous` setting for durable commits (see docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSynchronousMode {
    /// An fsync at every commit: an accepted event survives power loss.
    #[default]
    Full,
    /// WAL without fsync at commit: commits survive a process crash, but
    /// the last ones before a power loss or OS crash may be lost.
    Normal,
}

impl SqliteSynchronousMode {
    fn pragma(self) -> SqliteSynchronous {
        match self {
            Self::Full => SqliteSynchronous::Full,
            Self::Normal => SqliteSynchronous::Normal,
        }
    }
}

/// Settings for [`SqliteStore::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SqliteOptions {
    /// `synchronous` of durable writes (default FULL). Outbox leases and
    /// completions always commit with NORMAL (see `relaxed_write_tx`).
    pub synchronous: SqliteSynchronousMode,
}

/// [`Store`] on an SQLite file (or an in-memory database for tests).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Readers (WAL lets them run beside the writer).
    pool: SqlitePool,
    /// The one connection that writes. SQLite has a single write lock; a
    /// writer that finds it taken sleeps in SQLite's busy handler (steps of
    /// up to 100 ms), so with several writing connections the tail latency
    /// was hundreds of milliseconds. Writers instead wait in FIFO order for
    /// this connection and find the lock free.
    writer: SqlitePool,
    /// `synchronous` of durable write transactions ([`SqliteOptions`]).
    durable: SqliteSynchronous,
    group_commits: Arc<GroupCommits>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `location` and runs the
    /// SQLite migrations. `location` is a file path, a `sqlite:` URL, or
    /// `:memory:` / `sqlite::memory:` for a private in-memory database.
    /// Uses the default [`SqliteOptions`].
    pub async fn open(location: &str) -> Result<Self> {
        Self::open_with(location, SqliteOptions::default()).await
    }

    /// [`SqliteStore::open`] with explicit settings.
    pub async fn open_with(location: &str, options: SqliteOptions) -> Result<Self> {
        let durable = options.synchronous.pragma();
        let in_memory = location == ":memory:"
            || location.contains(":memory:")
            || location.contains("mode=memory");
        let base = if location == ":memory:" {
            SqliteConnectOptions::from_str("sqlite::memory:")?
        } else if location.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(location)?
        } else {
            SqliteConnectOptions::new().filename(location)
        };
        let base = base
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(durable);

        let (pool, writer) = if in_memory {
            // One connection that is never recycled: the database lives as long as it does.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(base)
                .await?;
            (pool.clone(), pool)
        } else {
            // Switch the file to WAL once, on a lone connection: changing the
            // journal mode needs an exclusive lock that busy_timeout cannot wait
            // for, and the mode is persistent afterwards.
            let setup =
                SqliteConnection::connect_with(&base.clone().journal_mode(SqliteJournalMode::Wal))
                    .await?;
            setup.close().await?;
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(base.clone())
                .await?;
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(base)
                .await?;
            (pool, writer)
        };
        MIGRATOR.run(&writer).await?;
        tracing::debug!(location, "opened SQLite store");
        Ok(Self {
            pool,
            writer,
            durable,
            group_commits: Arc::default(),
        })
    }

    /// The underlying pool (for diagnostics).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes all connections.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// A write transaction whose commit does not fsync (`synchronous =
    /// NORMAL` in WAL mode: it survives a process crash; the next durable
    /// commit's fsync covers it): for outbox leases and completions only.
    /// Losing one in a power loss means a lane is delivered again, which
    /// the outbox already allows (at-least-once, the follower deduplicates
    /// -06 §5.5); accepted events and claims stay fully durable.
    async fn relaxed_write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        self.write_tx_as(SqliteSynchronous::Normal).await
    }

    async fn write_tx_as(&self, mode: SqliteSynchronous) -> Result<Transaction<'static, Sqlite>> {
        let conn = self.writer_as(mode).await?;
        Ok(Transaction::begin(conn, Some("BEGIN IMMEDIATE".into_sql_str())).await?)
    }

    /// The writer connection with `synchronous` set to `mode`. Set on every
    /// use: the one writer connection serves relaxed and durable writes,
    /// and keeps whatever mode the previous user left.
    async fn writer_as(&self, mode: SqliteSynchronous) -> Result<PoolConnection<Sqlite>> {
        let mut conn = self.writer.acquire().await?;
        let pragma = match mode {
            SqliteSynchronous::Full => "PRAGMA synchronous = FULL",
            _ => "PRAGMA synchronous = NORMAL",
        };
        sqlx::query(pragma).execute(&mut *conn).await?;
        Ok(conn)
    }
}

/// Inserts one outbox row (and its lane, if new) inside an open write transaction.
async fn insert_outbox(
    conn: &mut SqliteConnection,
    destination: &str,
    room_id: &str,
    seq: i64,
    payload: &[u8],
    now_ms: i64,
) -> Result<OutboxId> {
    sqlx::query(
        "INSERT INTO outbox_lanes (destination, room_id, next_attempt_at, leased_until)
         VALUES ($1, $2, 0, NULL) ON CONFLICT (destination, room_id) DO NOTHING",
    )
    .bind(destination)
    .bind(room_id)
    .execute(&mut *conn)
    .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (destination, room_id, seq, payload, attempts, enqueued_at)
         VALUES ($1, $2, $3, $4, 0, $5) RETURNING id",
    )
    .bind(destination)
    .bind(room_id)
    .bind(seq)
    .bind(payload)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(OutboxId(to_u64(id, "outbox id")?))
}

/// The room-log rows, outbox lanes and outbox rows of a group commit's
/// accepted events, in multi-row INSERTs.
async fn insert_accepted(conn: &mut SqliteConnection, plan: &AcceptPlan<'_>) -> Result<()> {
    // 6 and 5 parameters per row, well under SQLite's 32766.
    for chunk in plan.log.chunks(1000) {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO room_events (room_id, seq, epoch, new_epoch, payload, accepted_at_ms) ",
        );
        insert.push_values(chunk, |mut row, l| {
            row.push_bind(l.room_id)
                .push_bind(l.seq)
                .push_bind(l.epoch)
                .push_bind(l.new_epoch)
                .push_bind(l.payload)
                .push_bind(l.accepted_at_ms);
        });
        insert.build().execute(&mut *conn).await?;
    }
    let lanes = plan.lanes();
    for chunk in lanes.chunks(1000) {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO outbox_lanes (destination, room_id, next_attempt_at, leased_until) ",
        );
        insert.push_values(chunk, |mut row, (destination, room_id)| {
            row.push_bind(*destination)
                .push_bind(*room_id)
                .push_bind(0i64)
                .push_bind(None::<i64>);
        });
        insert.push(" ON CONFLICT (destination, room_id) DO NOTHING");
        insert.build().execute(&mut *conn).await?;
    }
    for chunk in plan.outbox.chunks(1000) {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO outbox (destination, room_id, seq, payload, attempts, enqueued_at) ",
        );
        insert.push_values(chunk, |mut row, o| {
            row.push_bind(o.destination)
                .push_bind(o.room_id)
                .push_bind(o.seq)
                .push_bind(o.payload)
                .push_bind(0i64)
                .push_bind(o.enqueued_at_ms);
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Backend for SqliteStore {
    type Db = Sqlite;

    // A claimer takes the oldest single-use KeyPackage of each client; the
    // one writer connection serialises claimers.
    const TAKE_SINGLE_USE_KEY_PACKAGE: &'static str = "DELETE FROM key_packages WHERE id = (
                 SELECT id FROM key_packages
                 WHERE client_uri = $1 AND last_resort = FALSE AND not_after > $2
                 ORDER BY id LIMIT 1)
             RETURNING key_package_ref, key_package, not_after, last_resort";

    const UPDATE_ROOM_FOR_RUN: &'static str = "UPDATE rooms SET
             epoch = $3,
             group_state = COALESCE($4, group_state),
             state_version = state_version + (CASE WHEN $4 IS NULL THEN 0 ELSE 1 END),
             last_seq = last_seq + $7,
             updated_at_ms = $6
         WHERE room_id = $1 AND epoch = $2 AND ($5 IS NULL OR state_version = $5)
         RETURNING last_seq, epoch, state_version";

    // One writer numbers events, so numbering order is commit order.
    const VISIBLE_DELIVERY_SEQ: &'static str = "(SELECT last_seq FROM delivery_log_head)";

    fn reads(&self) -> &sqlx::Pool<Sqlite> {
        &self.pool
    }

    fn rows_affected(done: &<Sqlite as sqlx::Database>::QueryResult) -> u64 {
        done.rows_affected()
    }

    fn group_commits(&self) -> &GroupCommits {
        &self.group_commits
    }

    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        self.write_tx_as(self.durable).await
    }

    /// The writer connection for one durable write statement.
    async fn write_conn(&self) -> Result<PoolConnection<Sqlite>> {
        self.writer_as(self.durable).await
    }

    async fn settle_delivery_log(&self) -> Result<()> {
        // Numbered in commit order by the one writer: readable once committed.
        Ok(())
    }

    async fn reserve_delivery_seqs(conn: &mut SqliteConnection, count: usize) -> Result<i64> {
        let count =
            i64::try_from(count).map_err(|_| StoreError::Invalid("too many events".into()))?;
        let last: i64 = sqlx::query_scalar(
            "UPDATE delivery_log_head SET last_seq = last_seq + $1 RETURNING last_seq",
        )
        .bind(count)
        .fetch_one(&mut *conn)
        .await?;
        Ok(last - count + 1)
    }

    async fn insert_delivery_log(
        conn: &mut SqliteConnection,
        room_id: &str,
        events: &[LoggedEvent<'_>],
        now_ms: i64,
    ) -> Result<()> {
        // 5 parameters per row, well under SQLite's 32766.
        for chunk in events.chunks(1000) {
            let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO delivery_log (seq, room_id, recipient, payload, enqueued_at) ",
            );
            insert.push_values(chunk, |mut row, event| {
                row.push_bind(event.seq)
                    .push_bind(room_id)
                    .push_bind(event.recipient)
                    .push_bind(event.payload)
                    .push_bind(now_ms);
            });
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn insert_accepted(conn: &mut SqliteConnection, plan: &AcceptPlan<'_>) -> Result<()> {
        insert_accepted(conn, plan).await
    }

    async fn delete_expired_key_packages(&self, now_secs: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM key_packages WHERE not_after <= $1")
                .bind(now_secs)
                .execute(&mut *self.write_conn().await?)
                .await?
                .rows_affected(),
        )
    }

    async fn insert_outbox_items(
        &self,
        items: Vec<NewOutboxItem>,
        now_ms: i64,
    ) -> Result<Vec<OutboxId>> {
        let mut tx = self.write_tx().await?;
        let mut ids = Vec::with_capacity(items.len());
        for item in &items {
            let seq = to_i64(item.seq, "seq")?;
            ids.push(
                insert_outbox(
                    &mut tx,
                    &item.destination,
                    &item.room_id,
                    seq,
                    &item.payload,
                    now_ms,
                )
                .await?,
            );
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn lease_outbox_lanes(
        &self,
        destination: Option<&str>,
        limit: u32,
        lease_for: Duration,
        now_ms: i64,
    ) -> Result<Vec<OutboxItem>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let until = now_ms.saturating_add(lease_millis(lease_for));
        let mut tx = self.relaxed_write_tx().await?;
        let lanes: Vec<(String, String)> = sqlx::query_as(
            "SELECT l.destination, l.room_id FROM outbox_lanes l
             WHERE ($1 IS NULL OR l.destination = $1)
               AND l.next_attempt_at <= $2
               AND (l.leased_until IS NULL OR l.leased_until <= $2)
               AND EXISTS (SELECT 1 FROM outbox o
                           WHERE o.destination = l.destination AND o.room_id = l.room_id)
             ORDER BY l.next_attempt_at, l.destination, l.room_id
             LIMIT $3",
        )
        .bind(destination)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        // Each lane's first `limit` row ids in order, then round-robin over the
        // lanes: every lane gets its head, and is cut to a prefix.
        let mut per_lane = Vec::with_capacity(lanes.len());
        for (dest, room) in &lanes {
            let ids: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM outbox WHERE destination = $1 AND room_id = $2
                 ORDER BY seq, id LIMIT $3",
            )
            .bind(dest)
            .bind(room)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            per_lane.push(ids);
        }
        let chosen = round_robin(&per_lane, limit as usize);
        let mut items = Vec::with_capacity(chosen.len());
        // One statement per chunk of rows rather than one per row.
        for ids in chosen.chunks(500) {
            let mut update = sqlx::QueryBuilder::<Sqlite>::new("UPDATE outbox SET leased_until = ");
            update.push_bind(until).push(" WHERE id IN (");
            let mut list = update.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            update.push(") RETURNING id, destination, room_id, seq, payload, attempts");
            let rows: Vec<OutboxRow> = update.build_query_as().fetch_all(&mut *tx).await?;
            for row in rows {
                items.push(outbox_item(row)?);
            }
        }
        items.sort_by(|a, b| {
            (&a.destination, &a.room_id, a.seq, a.id).cmp(&(
                &b.destination,
                &b.room_id,
                b.seq,
                b.id,
            ))
        });
        let leased: BTreeSet<(&str, &str)> = items
            .iter()
            .map(|i| (i.destination.as_str(), i.room_id.as_str()))
            .collect();
        for (dest, room) in leased {
            sqlx::query(
                "UPDATE outbox_lanes SET leased_until = $3 WHERE destination = $1 AND room_id = $2",
            )
            .bind(dest)
            .bind(room)
            .bind(until)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(items)
    }

    async fn delete_delivered_outbox(&self, ids: &[OutboxId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.relaxed_write_tx().await?;
        let mut lanes = BTreeSet::new();
        for chunk in ids.chunks(500) {
            let mut delete = sqlx::QueryBuilder::<Sqlite>::new("DELETE FROM outbox WHERE id IN (");
            let mut list = delete.separated(", ");
            for &OutboxId(id) in chunk {
                list.push_bind(to_i64(id, "outbox id")?);
            }
            delete.push(") RETURNING destination, room_id");
            let deleted: Vec<(String, String)> =
                delete.build_query_as().fetch_all(&mut *tx).await?;
            lanes.extend(deleted);
        }
        for (dest, room) in &lanes {
            sqlx::query(RELEASE_FINISHED_LANE)
                .bind(dest)
                .bind(room)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn release_lane_for_retry(
        &self,
        id: OutboxId,
        next_attempt_at_ms: i64,
        error: &str,
    ) -> Result<()> {
        let id = to_i64(id.0, "outbox id")?;
        let mut tx = self.relaxed_write_tx().await?;
        let lane: Option<(String, String)> = sqlx::query_as(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1
             RETURNING destination, room_id",
        )
        .bind(id)
        .bind(error)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((dest, room)) = lane else {
            tracing::debug!(id, "retry_outbox: row already completed");
            return Ok(());
        };
        sqlx::query(
            "UPDATE outbox SET leased_until = NULL WHERE destination = $1 AND room_id = $2",
        )
        .bind(&dest)
        .bind(&room)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE outbox_lanes SET next_attempt_at = $3, leased_until = NULL
             WHERE destination = $1 AND room_id = $2",
        )
        .bind(&dest)
        .bind(&room)
        .bind(next_attempt_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Takes ids from the lanes in rounds (every lane's first, then every lane's
/// second, ...) until `limit`: each lane contributes a prefix of its ids.
fn round_robin(lanes: &[Vec<i64>], limit: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(limit);
    let longest = lanes.iter().map(Vec::len).max().unwrap_or(0);
    for rank in 0..longest {
        for lane in lanes {
            if out.len() == limit {
                return out;
            }
            if let Some(&id) = lane.get(rank) {
                out.push(id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{AccountStore, DeliveryStore, RoomStore};

    /// `synchronous` of the writer connection as it is now (0 OFF, 1
    /// NORMAL, 2 FULL).
    async fn writer_synchronous(store: &SqliteStore) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.writer)
            .await
            .unwrap()
    }

    /// Leases and completions leave the one writer connection at
    /// `synchronous = NORMAL`; a single-statement write after them must
    /// still commit durably.
    #[tokio::test]
    async fn a_write_after_a_relaxed_lease_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let durable = match store.durable {
            SqliteSynchronous::Full => 2,
            _ => 1,
        };
        store
            .enqueue_outbox(
                vec![NewOutboxItem {
                    destination: "b.example".into(),
                    room_id: "mimi://a.example/r/room".into(),
                    seq: 1,
                    payload: b"event".to_vec(),
                }],
                0,
            )
            .await
            .unwrap();
        let leased = store
            .lease_outbox(None, 10, Duration::from_secs(30), 0)
            .await
            .unwrap();
        assert_eq!(leased.len(), 1);
        assert_eq!(writer_synchronous(&store).await, 1, "leases are relaxed");
        store
            .subscribe("mimi://a.example/r/room", "client-1")
            .await
            .unwrap();
        assert_eq!(writer_synchronous(&store).await, durable);
        store.complete_outbox(&[leased[0].id]).await.unwrap();
        store
            .record_consent(crate::ConsentRecord {
                requester_uri: "mimi://b.example/u/bob".into(),
                target_uri: "mimi://a.example/u/alice".into(),
                room_id: None,
                operation: crate::ConsentOperation::Grant,
                updated_at_ms: 0,
            })
            .await
            .unwrap();
        assert_eq!(writer_synchronous(&store).await, durable);
    }

    /// Default options commit with `synchronous = FULL` (2), whatever the
    /// environment says.
    #[tokio::test]
    async fn default_options_are_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteStore::open_with(path.to_str().unwrap(), SqliteOptions::default())
            .await
            .unwrap();
        assert_eq!(writer_synchronous(&store).await, 2);
        // A durable write leaves the writer at FULL too.
        store
            .subscribe("mimi://a.example/r/room", "client-1")
            .await
            .unwrap();
        assert_eq!(writer_synchronous(&store).await, 2);
        let reader: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(reader, 2);
        store.close().await;
    }

    #[tokio::test]
    async fn normal_is_used_when_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let options = SqliteOptions {
            synchronous: SqliteSynchronousMode::Normal,
        };
        let store = SqliteStore::open_with(path.to_str().unwrap(), options)
            .await
            .unwrap();
        store
            .subscribe("mimi://a.example/r/room", "client-1")
            .await
            .unwrap();
        assert_eq!(writer_synchronous(&store).await, 1);
        store.close().await;
    }

    #[test]
    fn round_robin_takes_prefixes() {
        let lanes = vec![vec![1, 2, 3], vec![10], vec![20, 21]];
        assert_eq!(round_robin(&lanes, 10), vec![1, 10, 20, 2, 21, 3]);
        assert_eq!(round_robin(&lanes, 4), vec![1, 10, 20, 2]);
        assert_eq!(round_robin(&lanes, 0), Vec::<i64>::new());
        assert_eq!(round_robin(&[], 3), Vec::<i64>::new());
    }
}
