//! [`RoomStore`]: rooms a hub hosts, their event log and outbox.

use std::time::Duration;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::group_commit::{BatchKind, group_run};
use super::{Backend, DUE_DESTINATIONS, InTx, RoomRow, check_accept, room_event, room_record};
use crate::RoomStore;
use crate::error::{Result, StoreError, to_i64, to_u64};
use crate::types::*;

#[async_trait::async_trait]
impl<B> RoomStore for B
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
    async fn create_room(&self, room: NewRoom) -> Result<RoomRecord> {
        let epoch = to_i64(room.epoch, "epoch")?;
        let inserted = B::rows_affected(&sqlx::query(
            "INSERT INTO rooms (room_id, epoch, state_version, group_state, last_seq, created_at_ms, updated_at_ms)
             VALUES ($1, $2, 0, $3, 0, $4, $4) ON CONFLICT (room_id) DO NOTHING",
        )
        .bind(room.room_id.as_str())
        .bind(epoch)
        .bind(room.group_state.as_slice())
        .bind(room.created_at_ms)
        .execute(&mut *self.write_conn().await?)
        .await?);
        if inserted == 0 {
            return Err(StoreError::RoomExists(room.room_id));
        }
        Ok(RoomRecord {
            room_id: room.room_id,
            epoch: room.epoch,
            state_version: 0,
            group_state: room.group_state,
            last_seq: 0,
            created_at_ms: room.created_at_ms,
            updated_at_ms: room.created_at_ms,
        })
    }

    async fn load_room(&self, room_id: &str) -> Result<Option<RoomRecord>> {
        let row: Option<RoomRow> = sqlx::query_as(
            "SELECT room_id, epoch, state_version, group_state, last_seq, created_at_ms, updated_at_ms
             FROM rooms WHERE room_id = $1",
        )
        .bind(room_id)
        .fetch_optional(self.reads())
        .await?;
        row.map(room_record).transpose()
    }

    async fn accept_room_event(&self, event: AcceptedEvent) -> Result<AcceptOutcome> {
        check_accept(&event)?;
        // Group-committed: concurrent accepts share one durable commit;
        // each keeps its own compare-and-set.
        let accepts = BatchKind {
            commit: |store: &B| &store.group_commits().accepts,
            run_together: |store, events| {
                Box::pin(async move {
                    let mut tx = store.write_tx().await?;
                    let outcomes = InTx::<B>::accept_batch(&mut tx, events).await?;
                    tx.commit().await?;
                    Ok(outcomes)
                })
            },
        };
        group_run(self, accepts, event).await
    }

    async fn room_events(
        &self,
        room_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<RoomEvent>> {
        let rows: Vec<(String, i64, i64, i64, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT room_id, seq, epoch, new_epoch, payload, accepted_at_ms FROM room_events
             WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(room_id)
        .bind(to_i64(after_seq, "seq")?)
        .bind(i64::from(limit))
        .fetch_all(self.reads())
        .await?;
        rows.into_iter().map(room_event).collect()
    }

    async fn enqueue_outbox(
        &self,
        items: Vec<NewOutboxItem>,
        now_ms: i64,
    ) -> Result<Vec<OutboxId>> {
        Backend::insert_outbox_items(self, items, now_ms).await
    }

    async fn lease_outbox(
        &self,
        destination: Option<&str>,
        limit: u32,
        lease_for: Duration,
        now_ms: i64,
    ) -> Result<Vec<OutboxItem>> {
        Backend::lease_outbox_lanes(self, destination, limit, lease_for, now_ms).await
    }

    async fn complete_outbox(&self, ids: &[OutboxId]) -> Result<()> {
        Backend::delete_delivered_outbox(self, ids).await
    }

    async fn retry_outbox(&self, id: OutboxId, next_attempt_at_ms: i64, error: &str) -> Result<()> {
        Backend::release_lane_for_retry(self, id, next_attempt_at_ms, error).await
    }

    async fn outbox_depth(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(self.reads())
            .await?;
        to_u64(n, "count")
    }

    async fn destinations_with_due_items(&self, now_ms: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(DUE_DESTINATIONS)
            .bind(now_ms)
            .fetch_all(self.reads())
            .await?)
    }
}
