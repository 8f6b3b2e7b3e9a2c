//! [`RoomStore`]: rooms a hub hosts, their event log and outbox.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::group_commit::{BatchKind, group_run};
use super::{
    Backend, DUE_DESTINATIONS, DeadLetterRow, InTx, RELEASE_FINISHED_LANE, RoomRow, check_accept,
    dead_letter, room_event, room_record,
};
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
        // One statement: the unique index on fixed_membership_key refuses a
        // second fixed-membership room for the same participants.
        let done = sqlx::query(
            "INSERT INTO rooms (room_id, epoch, state_version, group_state, last_seq, created_at_ms, updated_at_ms, fixed_membership_key, parent_room)
             VALUES ($1, $2, 0, $3, 0, $4, $4, $5, $6) ON CONFLICT (room_id) DO NOTHING",
        )
        .bind(room.room_id.as_str())
        .bind(epoch)
        .bind(room.group_state.as_slice())
        .bind(room.created_at_ms)
        .bind(room.fixed_membership_key.clone())
        .bind(room.parent_room.clone())
        .execute(&mut *self.write_conn().await?)
        .await;
        let inserted = match done {
            Ok(done) => B::rows_affected(&done),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let existing: Option<(String,)> =
                    sqlx::query_as("SELECT room_id FROM rooms WHERE fixed_membership_key = $1")
                        .bind(room.fixed_membership_key.clone())
                        .fetch_optional(&mut *self.write_conn().await?)
                        .await?;
                return match existing {
                    Some((room_id,)) => Err(StoreError::FixedMembershipExists { room_id }),
                    None => Err(StoreError::RoomExists(room.room_id)),
                };
            }
            Err(e) => return Err(e.into()),
        };
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
            parent_room: room.parent_room,
        })
    }

    async fn child_rooms(&self, parent_room: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT room_id FROM rooms WHERE parent_room = $1 ORDER BY room_id")
                .bind(parent_room)
                .fetch_all(self.reads())
                .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn load_room(&self, room_id: &str) -> Result<Option<RoomRecord>> {
        let row: Option<RoomRow> = sqlx::query_as(
            "SELECT room_id, epoch, state_version, group_state, last_seq, created_at_ms, updated_at_ms, parent_room
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

    async fn dead_letter_outbox(
        &self,
        ids: &[OutboxId],
        status: Option<u16>,
        answer: &str,
        now_ms: i64,
    ) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let status = status.map(i64::from);
        let mut tx = self.write_tx().await?;
        let mut lanes = BTreeSet::new();
        let mut moved = 0u64;
        for &OutboxId(id) in ids {
            let id = to_i64(id, "outbox id")?;
            sqlx::query(
                "INSERT INTO dead_letters
                   (id, destination, room_id, seq, payload, attempts, enqueued_at, status, answer, dead_at)
                 SELECT id, destination, room_id, seq, payload, attempts, enqueued_at, $2, $3, $4
                 FROM outbox WHERE id = $1",
            )
            .bind(id)
            .bind(status)
            .bind(answer)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            let lane: Option<(String, String)> =
                sqlx::query_as("DELETE FROM outbox WHERE id = $1 RETURNING destination, room_id")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(lane) = lane {
                moved += 1;
                lanes.insert(lane);
            }
        }
        for (destination, room_id) in &lanes {
            sqlx::query(RELEASE_FINISHED_LANE)
                .bind(destination.as_str())
                .bind(room_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>> {
        let rows: Vec<DeadLetterRow> = sqlx::query_as(
            "SELECT id, destination, room_id, seq, payload, attempts, enqueued_at, status, answer, dead_at
             FROM dead_letters ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.reads())
        .await?;
        rows.into_iter().map(dead_letter).collect()
    }

    async fn dead_letter_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters")
            .fetch_one(self.reads())
            .await?;
        to_u64(n, "count")
    }

    async fn retry_dead_letter(&self, id: OutboxId, now_ms: i64) -> Result<Option<OutboxId>> {
        let id = to_i64(id.0, "dead letter id")?;
        let mut tx = self.write_tx().await?;
        let row: Option<(String, String, i64, Vec<u8>, i64)> = sqlx::query_as(
            "DELETE FROM dead_letters WHERE id = $1
             RETURNING destination, room_id, seq, payload, enqueued_at",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((destination, room_id, seq, payload, enqueued_at)) = row else {
            return Ok(None);
        };
        // A lane backing off keeps its delay: the row waits with the rest
        // of its lane rather than overtaking it.
        sqlx::query(
            "INSERT INTO outbox_lanes (destination, room_id, next_attempt_at, leased_until)
             VALUES ($1, $2, $3, NULL)
             ON CONFLICT (destination, room_id) DO UPDATE SET next_attempt_at =
               CASE WHEN outbox_lanes.next_attempt_at > $3 THEN $3
                    ELSE outbox_lanes.next_attempt_at END",
        )
        .bind(destination.as_str())
        .bind(room_id.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let new_id: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (destination, room_id, seq, payload, attempts, enqueued_at)
             VALUES ($1, $2, $3, $4, 0, $5) RETURNING id",
        )
        .bind(destination.as_str())
        .bind(room_id.as_str())
        .bind(seq)
        .bind(payload.as_slice())
        .bind(enqueued_at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(OutboxId(to_u64(new_id, "outbox id")?)))
    }

    async fn wake_outbox_destination(&self, destination: &str, now_ms: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE outbox_lanes SET next_attempt_at = $2
             WHERE destination = $1 AND next_attempt_at > $2 AND leased_until IS NULL",
        )
        .bind(destination)
        .bind(now_ms)
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(B::rows_affected(&done))
    }

    async fn drop_dead_letter(&self, id: OutboxId) -> Result<bool> {
        let id = to_i64(id.0, "dead letter id")?;
        let done = sqlx::query("DELETE FROM dead_letters WHERE id = $1")
            .bind(id)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(B::rows_affected(&done) > 0)
    }
}
