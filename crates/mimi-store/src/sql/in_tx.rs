//! Statements that run inside a caller's open write transaction: the
//! bodies of the group commits (KeyPackage claims and room accepts).

use std::marker::PhantomData;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::group_commit::{AcceptPlan, RunUpdate, accept_runs};
use super::{
    Backend, KeyPackageRow, LoggedEvent, SUBSCRIPTIONS_PER_STATEMENT, check_accept, claimed,
    conflict, insert_subscriptions_sql,
};
use crate::error::{Result, StoreError};
use crate::types::*;

/// An event for this provider's own devices, to log
/// ([`InTx::log_for_devices`]).
pub(crate) struct DeviceEvent<'a> {
    pub(crate) room_id: &'a str,
    pub(crate) payload: &'a [u8],
    pub(crate) recipients: &'a Recipients,
    /// When it was logged (Unix milliseconds), for retention.
    pub(crate) at_ms: i64,
}

/// Namespace for the in-transaction statements of backend `B`.
pub(super) struct InTx<B>(PhantomData<B>);

impl<B> InTx<B>
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
    /// One claim (one KeyPackage per client of `user_uri`) inside an open
    /// write transaction. Single-use KeyPackages are deleted as they are handed
    /// out (the backend's [`Backend::TAKE_SINGLE_USE_KEY_PACKAGE`]), so a later
    /// claim in the same transaction cannot see them; a client without one
    /// gets its newest last-resort KeyPackage, which stays.
    ///
    /// The queries compare `last_resort = FALSE` / `TRUE` rather than `NOT
    /// last_resort`: an equality lets the (client_uri, last_resort, id) index
    /// hand out the KeyPackage directly instead of scanning the client's rows.
    pub(super) async fn claim(
        conn: &mut <B::Db as Database>::Connection,
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
            let mut row: Option<KeyPackageRow> = sqlx::query_as(B::TAKE_SINGLE_USE_KEY_PACKAGE)
                .bind(client_uri.as_str())
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
                .bind(client_uri.as_str())
                .bind(now_secs)
                .fetch_optional(&mut *conn)
                .await?;
            }
            if let Some((kp_ref, ..)) = &row {
                sqlx::query(
                    "INSERT INTO key_package_claims (key_package_ref, client_uri, claimed_at)
                     VALUES ($1, $2, $3) ON CONFLICT (key_package_ref) DO NOTHING",
                )
                .bind(kp_ref.as_slice())
                .bind(client_uri.as_str())
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

    /// The accepts of one group commit inside an open write transaction: one
    /// room-row compare-and-set per run of [`accept_runs`] (on PostgreSQL its
    /// row lock serializes the room's accepts until commit), then the
    /// backend's bulk inserts of the room-log and outbox rows. The outer error
    /// is a database failure (the transaction must be abandoned); an inner one
    /// a lost compare-and-set, which wrote nothing for that event.
    pub(super) async fn accept_batch(
        conn: &mut <B::Db as Database>::Connection,
        events: &[&AcceptedEvent],
    ) -> Result<Vec<Result<AcceptOutcome>>> {
        let mut plan = AcceptPlan::default();
        for run in accept_runs(events) {
            let run = &events[run];
            let update = Self::update_room_for_run(&mut *conn, run).await?;
            plan.record(run, update)?;
        }
        B::insert_accepted(conn, &plan).await?;
        Self::log_for_devices(conn, &plan.local).await?;
        Ok(plan.outcomes)
    }

    /// Logs events for this provider's own devices inside an open write
    /// transaction, in order: one entry per event for the subscribers of
    /// its room, one per device for a Welcome, whose devices read the room
    /// from it on (one already subscribed keeps its place). Positions are
    /// reserved once for the transaction (PostgreSQL numbers them by
    /// transaction: [`Backend::reserve_delivery_seqs`]). Returns them in
    /// order.
    pub(super) async fn log_for_devices(
        conn: &mut <B::Db as Database>::Connection,
        events: &[DeviceEvent<'_>],
    ) -> Result<Vec<i64>> {
        // The log rows, and the index of the event each belongs to.
        let mut rows: Vec<LoggedEvent<'_>> = Vec::new();
        let mut owners: Vec<usize> = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let recipients: Vec<Option<&str>> = match event.recipients {
                Recipients::Room => vec![None],
                Recipients::Welcomed(devices) => devices.iter().map(|d| Some(d.as_str())).collect(),
            };
            for recipient in recipients {
                rows.push(LoggedEvent {
                    seq: 0,
                    recipient,
                    payload: event.payload,
                });
                owners.push(i);
            }
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let first = B::reserve_delivery_seqs(&mut *conn, rows.len()).await?;
        for (row, seq) in rows.iter_mut().zip(first..) {
            row.seq = seq;
        }
        // One insert per run of consecutive events of one room.
        let mut start = 0;
        while start < rows.len() {
            let event = &events[owners[start]];
            let end = owners[start..]
                .iter()
                .position(|&i| events[i].room_id != event.room_id)
                .map_or(rows.len(), |n| start + n);
            B::insert_delivery_log(&mut *conn, event.room_id, &rows[start..end], event.at_ms)
                .await?;
            start = end;
        }
        let welcomed: Vec<(&str, &str, i64)> = rows
            .iter()
            .zip(&owners)
            .filter_map(|(row, &i)| Some((events[i].room_id, row.recipient?, row.seq)))
            .collect();
        for chunk in welcomed.chunks(SUBSCRIPTIONS_PER_STATEMENT) {
            let sql = sqlx::AssertSqlSafe(insert_subscriptions_sql(chunk.len()));
            let mut insert = sqlx::query(sql);
            for &(room_id, device, seq) in chunk {
                insert = insert.bind(room_id).bind(device).bind(seq);
            }
            insert.execute(&mut *conn).await?;
        }
        Ok(rows.iter().map(|row| row.seq).collect())
    }

    /// The room-row compare-and-set for one run of accepts
    /// ([`Backend::UPDATE_ROOM_FOR_RUN`]); `last_seq` advances by the run's
    /// length. Returns the row after it, or the conflict.
    async fn update_room_for_run(
        conn: &mut <B::Db as Database>::Connection,
        run: &[&AcceptedEvent],
    ) -> Result<RunUpdate> {
        let Some(first) = run.first() else {
            return Err(StoreError::Invalid("empty accept run".into()));
        };
        let checked = check_accept(first)?;
        let updated: Option<(i64, i64, i64)> = sqlx::query_as(B::UPDATE_ROOM_FOR_RUN)
            .bind(first.room_id.as_str())
            .bind(checked.expected_epoch)
            .bind(checked.new_epoch)
            .bind(first.new_group_state.as_deref())
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
                .bind(first.room_id.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        Ok(Err(conflict(first, current)?))
    }
}
