//! The one sqlx implementation of the store traits.
//!
//! Every trait of this crate is implemented once, here, for any
//! [`Backend`]: a backend ([`crate::SqliteStore`], [`crate::PgStore`])
//! supplies its connections (where reads go, how a durable or a relaxed
//! write transaction starts) and the few operations whose SQL differs
//! (PostgreSQL's array `UNNEST` inserts and `SKIP LOCKED` leases, SQLite's
//! multi-row `VALUES` and single writer). Everything else is written once,
//! in SQL both accept (`$N` parameters, `ON CONFLICT`, `RETURNING`).
//!
//! The generic code states the sqlx capabilities it relies on (executors,
//! the types it binds and reads) in the `where` clause of each generic
//! impl: the four aggregate traits, [`Store`](crate::Store) and the
//! in-transaction statements (`in_tx.rs`). Rust does not carry a trait's
//! `where` clauses to its users, so the list cannot be named once; it is
//! the same in each, and both backends meet it.

mod accounts;
mod delivery;
mod group_commit;
mod in_tx;
mod key_packages;
mod rooms;
mod rows;

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type,
};

use crate::error::Result;
use crate::types::{NewOutboxItem, OutboxId, OutboxItem};

pub(crate) use group_commit::{AcceptPlan, GroupCommits};
use in_tx::InTx;
pub(crate) use rows::*;

/// One row of the delivery log to insert.
pub struct LoggedEvent<'a> {
    pub seq: i64,
    /// `None`: every subscriber of the room.
    pub recipient: Option<&'a str>,
    pub payload: &'a [u8],
}

/// What a database backend supplies to the shared implementation. Sealed:
/// the trait is public only so that [`crate::SqliteStore`] and
/// [`crate::PgStore`] may implement the store traits through it; this
/// module is private.
#[async_trait::async_trait]
pub trait Backend: Clone + Send + Sync + 'static {
    /// The sqlx driver.
    type Db: Database;

    /// `DELETE … RETURNING` of a client's oldest unexpired single-use
    /// KeyPackage (`$1` client, `$2` now), returning
    /// `key_package_ref, key_package, not_after, last_resort`.
    const TAKE_SINGLE_USE_KEY_PACKAGE: &'static str;

    /// `UPDATE rooms … RETURNING last_seq, epoch, state_version`: the room
    /// compare-and-set of one run of accepts, with `$1` room, `$2` expected
    /// epoch, `$3` new epoch, `$4` new state or NULL, `$5` expected state
    /// version or NULL, `$6` time, `$7` run length.
    const UPDATE_ROOM_FOR_RUN: &'static str;

    /// Where reads go.
    fn reads(&self) -> &Pool<Self::Db>;

    /// Rows a statement changed (sqlx has no trait for it).
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;

    /// The store's group commits (accepts and claims).
    fn group_commits(&self) -> &GroupCommits;

    /// A durable write transaction.
    async fn write_tx(&self) -> Result<Transaction<'static, Self::Db>>;

    /// A connection for one durable write statement.
    async fn write_conn(&self) -> Result<PoolConnection<Self::Db>>;

    /// An SQL expression for the highest room-event position a reader may
    /// see now: no event at or below it can still appear. Subscriptions
    /// start there and cursors never pass it.
    const VISIBLE_DELIVERY_SEQ: &'static str;

    /// [`crate::DeliveryStore::settle_delivery_log`].
    async fn settle_delivery_log(&self) -> Result<()>;

    /// Numbers `count` logged events inside an open write transaction:
    /// returns the first position, the others follow it.
    async fn reserve_delivery_seqs(
        conn: &mut <Self::Db as Database>::Connection,
        count: usize,
    ) -> Result<i64>;

    /// Inserts logged events `(seq, recipient, payload)` of `room_id` inside
    /// an open write transaction.
    async fn insert_delivery_log(
        conn: &mut <Self::Db as Database>::Connection,
        room_id: &str,
        events: &[LoggedEvent<'_>],
        now_ms: i64,
    ) -> Result<()>;

    /// Writes the room-log rows, outbox lanes and outbox rows of a group
    /// commit's accepted events (the room rows are updated already).
    async fn insert_accepted(
        conn: &mut <Self::Db as Database>::Connection,
        plan: &AcceptPlan<'_>,
    ) -> Result<()>;

    /// [`crate::KeyPackageStore::purge_expired_key_packages`].
    async fn delete_expired_key_packages(&self, now_secs: i64) -> Result<u64>;

    /// [`crate::RoomStore::enqueue_outbox`].
    async fn insert_outbox_items(
        &self,
        items: Vec<NewOutboxItem>,
        now_ms: i64,
    ) -> Result<Vec<OutboxId>>;

    /// [`crate::RoomStore::lease_outbox`].
    async fn lease_outbox_lanes(
        &self,
        destination: Option<&str>,
        limit: u32,
        lease_for: Duration,
        now_ms: i64,
    ) -> Result<Vec<OutboxItem>>;

    /// [`crate::RoomStore::complete_outbox`].
    async fn delete_delivered_outbox(&self, ids: &[OutboxId]) -> Result<()>;

    /// [`crate::RoomStore::retry_outbox`].
    async fn release_lane_for_retry(
        &self,
        id: OutboxId,
        next_attempt_at_ms: i64,
        error: &str,
    ) -> Result<()>;
}

#[async_trait::async_trait]
impl<B> crate::Store for B
where
    B: Backend,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'r> i64: Encode<'r, B::Db> + Decode<'r, B::Db> + Type<B::Db>,
    for<'r> bool: Encode<'r, B::Db> + Decode<'r, B::Db> + Type<B::Db>,
    for<'r> String: Encode<'r, B::Db> + Decode<'r, B::Db> + Type<B::Db>,
    for<'r> Vec<u8>: Encode<'r, B::Db> + Decode<'r, B::Db> + Type<B::Db>,
    for<'r> &'r str: Encode<'r, B::Db> + Type<B::Db>,
    for<'r> &'r [u8]: Encode<'r, B::Db> + Type<B::Db>,
    for<'r> Option<i64>: Encode<'r, B::Db>,
    for<'r> Option<String>: Encode<'r, B::Db>,
    for<'r> Option<&'r [u8]>: Encode<'r, B::Db>,
{
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.reads()).await?;
        Ok(())
    }
}
