//! PostgreSQL backend: several server processes of one provider share one
//! database (docs/architecture.md, "Scaling past one machine").
//!
//! Transactions run at READ COMMITTED; exclusivity comes from row locks:
//! - the room compare-and-set is a single `UPDATE … WHERE epoch = $expected`;
//!   concurrent updaters of one room queue on its row lock and re-check the
//!   condition against the committed row, so one commit wins per epoch and
//!   same-epoch application messages get consecutive sequence numbers;
//! - a KeyPackage claim is `DELETE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)`;
//! - outbox lanes are leased with `FOR UPDATE SKIP LOCKED`.
//!
//! Lock order, to stay deadlock-free: room row, then outbox lanes in
//! (destination, room) order, then outbox rows; client queue heads in
//! client order.

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::error::{Result, StoreError, to_i64, to_u64};
use crate::sql::*;
use crate::types::*;

/// Events one transaction may log: positions are the transaction id
/// shifted left by 20 bits plus the event's place, from 1
/// (migrations/postgres/0010_room_event_log.sql).
const EVENTS_PER_TRANSACTION: usize = 1 << 20;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Pool settings for [`PgStore::connect_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgStoreOptions {
    /// Maximum connections of this process's pool (default 10).
    pub max_connections: u32,
    /// How long to wait for a connection, including the first one at
    /// start-up, e.g. while PostgreSQL is still starting (default 30 s).
    pub acquire_timeout: Duration,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// [`Store`] on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    group_commits: std::sync::Arc<GroupCommits>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`) with default
    /// [`PgStoreOptions`] and runs the PostgreSQL migrations (concurrent starts
    /// are serialized by sqlx's migration advisory lock).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PgStoreOptions::default()).await
    }

    /// [`PgStore::connect`] with explicit pool settings.
    pub async fn connect_with(url: &str, options: PgStoreOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        tracing::debug!("connected PostgreSQL store");
        Ok(Self {
            pool,
            group_commits: Default::default(),
        })
    }

    /// The underlying pool (for diagnostics).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes all connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction whose commit does not wait for the WAL flush: for
    /// outbox leases and completions only. Losing one in a crash of the
    /// database host means a lane is delivered again, which the outbox
    /// already allows (at-least-once, the follower deduplicates -06 §5.5);
    /// accepted events and claims stay fully durable.
    async fn relaxed_tx(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// Creates missing outbox lanes, in lane order.
async fn ensure_lanes<'a>(
    conn: &mut PgConnection,
    lanes: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    let mut lanes: Vec<(&str, &str)> = lanes.into_iter().collect();
    lanes.sort_unstable();
    lanes.dedup();
    for (destination, room_id) in lanes {
        sqlx::query(
            "INSERT INTO outbox_lanes (destination, room_id, next_attempt_at, leased_until)
             VALUES ($1, $2, 0, NULL) ON CONFLICT (destination, room_id) DO NOTHING",
        )
        .bind(destination)
        .bind(room_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Inserts one outbox row; its lane must exist (see [`ensure_lanes`]).
async fn insert_outbox_row(
    conn: &mut PgConnection,
    destination: &str,
    room_id: &str,
    seq: i64,
    payload: &[u8],
    now_ms: i64,
) -> Result<OutboxId> {
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

/// Locks one outbox lane (waiting for a concurrent leaser to finish).
async fn lock_lane(conn: &mut PgConnection, destination: &str, room_id: &str) -> Result<()> {
    sqlx::query("SELECT 1 FROM outbox_lanes WHERE destination = $1 AND room_id = $2 FOR UPDATE")
        .bind(destination)
        .bind(room_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The room-log rows, outbox lanes and outbox rows of a group commit's
/// accepted events, in array INSERTs.
async fn insert_accepted(conn: &mut PgConnection, plan: &AcceptPlan<'_>) -> Result<()> {
    if !plan.log.is_empty() {
        let rooms: Vec<&str> = plan.log.iter().map(|l| l.room_id).collect();
        let seqs: Vec<i64> = plan.log.iter().map(|l| l.seq).collect();
        let epochs: Vec<i64> = plan.log.iter().map(|l| l.epoch).collect();
        let new_epochs: Vec<i64> = plan.log.iter().map(|l| l.new_epoch).collect();
        let payloads: Vec<&[u8]> = plan.log.iter().map(|l| l.payload).collect();
        let times: Vec<i64> = plan.log.iter().map(|l| l.accepted_at_ms).collect();
        sqlx::query(
            "INSERT INTO room_events (room_id, seq, epoch, new_epoch, payload, accepted_at_ms)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],
                                  $5::bytea[], $6::bigint[])",
        )
        .bind(&rooms)
        .bind(&seqs)
        .bind(&epochs)
        .bind(&new_epochs)
        .bind(&payloads)
        .bind(&times)
        .execute(&mut *conn)
        .await?;
    }
    ensure_lanes(&mut *conn, plan.lanes()).await?;
    if !plan.outbox.is_empty() {
        let destinations: Vec<&str> = plan.outbox.iter().map(|o| o.destination).collect();
        let rooms: Vec<&str> = plan.outbox.iter().map(|o| o.room_id).collect();
        let seqs: Vec<i64> = plan.outbox.iter().map(|o| o.seq).collect();
        let payloads: Vec<&[u8]> = plan.outbox.iter().map(|o| o.payload).collect();
        let times: Vec<i64> = plan.outbox.iter().map(|o| o.enqueued_at_ms).collect();
        // WITH ORDINALITY keeps the queue order in the ids (lanes are
        // delivered by seq, then id).
        sqlx::query(
            "INSERT INTO outbox (destination, room_id, seq, payload, attempts, enqueued_at)
             SELECT d, r, s, p, 0, t
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bytea[], $5::bigint[])
                  WITH ORDINALITY AS u(d, r, s, p, t, n)
             ORDER BY n",
        )
        .bind(&destinations)
        .bind(&rooms)
        .bind(&seqs)
        .bind(&payloads)
        .bind(&times)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Backend for PgStore {
    type Db = Postgres;

    // A claimer takes the oldest single-use KeyPackage of each client. Rows
    // locked by a concurrent claimer are skipped, not waited for: each claimer
    // deletes a different row. (If that claimer then rolls back, this one may
    // fall back to last resort; it never double-claims.)
    const TAKE_SINGLE_USE_KEY_PACKAGE: &'static str = "DELETE FROM key_packages WHERE id = (
                 SELECT id FROM key_packages
                 WHERE client_uri = $1 AND last_resort = FALSE AND not_after > $2
                 ORDER BY id LIMIT 1
                 FOR UPDATE SKIP LOCKED)
             RETURNING key_package_ref, key_package, not_after, last_resort";

    // PostgreSQL needs the parameters' types where they may be NULL.
    const UPDATE_ROOM_FOR_RUN: &'static str = "UPDATE rooms SET
                 epoch = $3,
                 group_state = COALESCE($4, group_state),
                 state_version = state_version + (CASE WHEN $4::bytea IS NULL THEN 0 ELSE 1 END),
                 last_seq = last_seq + $7,
                 updated_at_ms = $6
             WHERE room_id = $1 AND epoch = $2 AND ($5::bigint IS NULL OR state_version = $5)
             RETURNING last_seq, epoch, state_version";

    // Positions are (transaction id << 20) + place, and every transaction
    // older than the snapshot's xmin has ended: nothing at or below
    // (xmin << 20) - 1 can still appear (migrations/postgres/0010).
    const VISIBLE_DELIVERY_SEQ: &'static str =
        "((pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20) - 1)";

    fn reads(&self) -> &sqlx::Pool<Postgres> {
        &self.pool
    }

    fn rows_affected(done: &<Postgres as sqlx::Database>::QueryResult) -> u64 {
        done.rows_affected()
    }

    fn group_commits(&self) -> &GroupCommits {
        &self.group_commits
    }

    async fn write_tx(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// A connection for one write statement (durable: PostgreSQL commits
    /// it with `synchronous_commit = on` unless a transaction said otherwise).
    async fn write_conn(&self) -> Result<PoolConnection<Postgres>> {
        Ok(self.pool.acquire().await?)
    }

    async fn settle_delivery_log(&self) -> Result<()> {
        // Every transaction that was running now has an id below xmax.
        let xmax: i64 =
            sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
                .fetch_one(&self.pool)
                .await?;
        loop {
            let xmin: i64 =
                sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                    .fetch_one(&self.pool)
                    .await?;
            if xmin >= xmax {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    async fn reserve_delivery_seqs(conn: &mut PgConnection, count: usize) -> Result<i64> {
        if count >= EVENTS_PER_TRANSACTION {
            return Err(StoreError::Invalid(format!(
                "{count} events in one transaction; at most {}",
                EVENTS_PER_TRANSACTION - 1
            )));
        }
        let base: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint << 20")
            .fetch_one(&mut *conn)
            .await?;
        Ok(base + 1)
    }

    async fn insert_delivery_log(
        conn: &mut PgConnection,
        room_id: &str,
        events: &[LoggedEvent<'_>],
        now_ms: i64,
    ) -> Result<()> {
        for chunk in events.chunks(5000) {
            let seqs: Vec<i64> = chunk.iter().map(|e| e.seq).collect();
            let recipients: Vec<Option<&str>> = chunk.iter().map(|e| e.recipient).collect();
            let payloads: Vec<&[u8]> = chunk.iter().map(|e| e.payload).collect();
            sqlx::query(
                "INSERT INTO delivery_log (seq, room_id, recipient, payload, enqueued_at)
                 SELECT s, $2, r, p, $5
                 FROM UNNEST($1::bigint[], $3::text[], $4::bytea[]) AS t(s, r, p)",
            )
            .bind(&seqs)
            .bind(room_id)
            .bind(&recipients)
            .bind(&payloads)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn insert_accepted(conn: &mut PgConnection, plan: &AcceptPlan<'_>) -> Result<()> {
        insert_accepted(conn, plan).await
    }

    async fn delete_expired_key_packages(&self, now_secs: i64) -> Result<u64> {
        // SKIP LOCKED: never wait for (or deadlock with) a claim in progress.
        Ok(sqlx::query(
            "DELETE FROM key_packages WHERE id IN (
                 SELECT id FROM key_packages WHERE not_after <= $1 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now_secs)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn insert_outbox_items(
        &self,
        items: Vec<NewOutboxItem>,
        now_ms: i64,
    ) -> Result<Vec<OutboxId>> {
        let mut tx = self.write_tx().await?;
        ensure_lanes(
            &mut tx,
            items
                .iter()
                .map(|i| (i.destination.as_str(), i.room_id.as_str())),
        )
        .await?;
        let mut ids = Vec::with_capacity(items.len());
        for item in &items {
            let seq = to_i64(item.seq, "seq")?;
            ids.push(
                insert_outbox_row(
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
        let mut tx = self.relaxed_tx().await?;
        // Lanes locked by another leaser are skipped; a lane whose lease was
        // committed meanwhile is re-checked against its new leased_until.
        let lanes: Vec<(String, String)> = sqlx::query_as(
            "SELECT l.destination, l.room_id FROM outbox_lanes l
             WHERE ($1::text IS NULL OR l.destination = $1)
               AND l.next_attempt_at <= $2
               AND (l.leased_until IS NULL OR l.leased_until <= $2)
               AND EXISTS (SELECT 1 FROM outbox o
                           WHERE o.destination = l.destination AND o.room_id = l.room_id)
             ORDER BY l.next_attempt_at, l.destination, l.room_id
             LIMIT $3
             FOR UPDATE OF l SKIP LOCKED",
        )
        .bind(destination)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if lanes.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let (dests, rooms): (Vec<String>, Vec<String>) = lanes.into_iter().unzip();
        // At most `limit` lanes, each contributing at least its head row; rows are
        // ranked within their lane so the LIMIT cuts every lane to a prefix. The
        // LATERAL limit bounds the scan of long lanes; payloads are read only
        // for the rows leased.
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "WITH picked AS (
                 SELECT o.id, o.destination, o.room_id,
                        ROW_NUMBER() OVER (PARTITION BY o.destination, o.room_id ORDER BY o.seq, o.id) AS rn
                 FROM UNNEST($1::text[], $2::text[]) AS lanes (destination, room_id)
                 CROSS JOIN LATERAL (
                     SELECT id, destination, room_id, seq FROM outbox
                     WHERE outbox.destination = lanes.destination AND outbox.room_id = lanes.room_id
                     ORDER BY seq, id LIMIT $3
                 ) o
             ), chosen AS (
                 SELECT id FROM picked ORDER BY rn, destination, room_id LIMIT $3
             )
             UPDATE outbox SET leased_until = $4 FROM chosen WHERE outbox.id = chosen.id
             RETURNING outbox.id, outbox.destination, outbox.room_id, outbox.seq,
                       outbox.payload, outbox.attempts",
        )
        .bind(&dests)
        .bind(&rooms)
        .bind(i64::from(limit))
        .bind(until)
        .fetch_all(&mut *tx)
        .await?;
        let mut items = rows
            .into_iter()
            .map(outbox_item)
            .collect::<Result<Vec<_>>>()?;
        items.sort_by(|a, b| {
            (&a.destination, &a.room_id, a.seq, a.id).cmp(&(
                &b.destination,
                &b.room_id,
                b.seq,
                b.id,
            ))
        });
        let mut leased: Vec<(&str, &str)> = items
            .iter()
            .map(|i| (i.destination.as_str(), i.room_id.as_str()))
            .collect();
        leased.dedup();
        let (dests, rooms): (Vec<&str>, Vec<&str>) = leased.into_iter().unzip();
        sqlx::query(
            "UPDATE outbox_lanes l SET leased_until = $1
             FROM UNNEST($2::text[], $3::text[]) AS x (destination, room_id)
             WHERE l.destination = x.destination AND l.room_id = x.room_id",
        )
        .bind(until)
        .bind(&dests)
        .bind(&rooms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(items)
    }

    async fn delete_delivered_outbox(&self, ids: &[OutboxId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids
            .iter()
            .map(|&OutboxId(id)| to_i64(id, "outbox id"))
            .collect::<Result<Vec<_>>>()?;
        let mut tx = self.relaxed_tx().await?;
        let lanes: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT destination, room_id FROM outbox WHERE id = ANY($1)
             ORDER BY destination, room_id",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        for (dest, room) in &lanes {
            lock_lane(&mut tx, dest, room).await?;
        }
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
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
        let mut tx = self.relaxed_tx().await?;
        let lane: Option<(String, String)> =
            sqlx::query_as("SELECT destination, room_id FROM outbox WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((dest, room)) = lane else {
            tracing::debug!(id, "retry_outbox: row already completed");
            return Ok(());
        };
        lock_lane(&mut tx, &dest, &room).await?;
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
            .bind(id)
            .bind(error)
            .execute(&mut *tx)
            .await?;
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
