//! [`DeliveryStore`]: a follower's `/notify` deduplication, the delivery
//! log its devices read through their subscriptions and cursors, and room
//! subscriptions.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::in_tx::{DeviceEvent, InTx};
use super::{Backend, NOTIFY_KEYS_PER_STATEMENT, client_event, insert_notify_keys_sql};
use crate::DeliveryStore;
use crate::error::{Result, to_i64, to_u64};
use crate::types::*;

#[async_trait::async_trait]
impl<B> DeliveryStore for B
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
    async fn record_notify_and_log(
        &self,
        hub_domain: &str,
        room_id: &str,
        messages: Vec<NotifiedMessage>,
        now_ms: i64,
    ) -> Result<NotifyOutcome> {
        // Keys are inserted in hash order, so two batches holding
        // the same messages in another order cannot deadlock on
        // PostgreSQL's unique index.
        let mut order: Vec<usize> = (0..messages.len()).collect();
        order.sort_by_key(|&i| messages[i].message_sha256);
        let mut new_messages = vec![false; messages.len()];
        let mut tx = self.write_tx().await?;
        // One multi-row statement per chunk (not one per message),
        // returning the keys that were new.
        for chunk in order.chunks(NOTIFY_KEYS_PER_STATEMENT) {
            // Only placeholders are generated; every value is bound.
            let sql = sqlx::AssertSqlSafe(insert_notify_keys_sql(chunk.len()));
            let mut query = sqlx::query_scalar::<_, Vec<u8>>(sql);
            for &i in chunk {
                query = query
                    .bind(hub_domain)
                    .bind(room_id)
                    .bind(&messages[i].message_sha256[..])
                    .bind(now_ms);
            }
            let inserted: Vec<Vec<u8>> = query.fetch_all(&mut *tx).await?;
            // A message repeated within one batch counts once: only
            // its first occurrence is new.
            for key in inserted {
                if let Some(&i) = chunk
                    .iter()
                    .find(|&&i| !new_messages[i] && messages[i].message_sha256[..] == key[..])
                {
                    new_messages[i] = true;
                }
            }
        }
        // One row per new message for the room, one per device for a
        // Welcome: never one per member device.
        let events: Vec<DeviceEvent<'_>> = messages
            .iter()
            .zip(&new_messages)
            .filter(|(_, new)| **new)
            .map(|(message, _)| DeviceEvent {
                room_id,
                payload: &message.payload,
                recipients: &message.recipients,
                at_ms: now_ms,
            })
            .collect();
        let logged_seqs = InTx::<B>::log_for_devices(&mut tx, &events)
            .await?
            .into_iter()
            .map(|seq| to_u64(seq, "event seq"))
            .collect::<Result<Vec<u64>>>()?;
        tx.commit().await?;
        Ok(NotifyOutcome {
            new_messages,
            logged_seqs,
        })
    }

    async fn prune_notify_before(&self, before_ms: i64) -> Result<u64> {
        Ok(B::rows_affected(
            &sqlx::query("DELETE FROM notify_seen WHERE seen_at < $1")
                .bind(before_ms)
                .execute(&mut *self.write_conn().await?)
                .await?,
        ))
    }

    async fn fetch_client_events(
        &self,
        client_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ClientEvent>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT seq, room_id, payload, enqueued_at FROM ({feed}) AS feed
             ORDER BY seq LIMIT $3",
            feed = feed_sql(B::VISIBLE_DELIVERY_SEQ)
        ));
        let rows: Vec<(i64, String, Vec<u8>, i64)> = sqlx::query_as(sql)
            .bind(client_id)
            .bind(to_i64(after_seq, "seq")?)
            .bind(i64::from(limit))
            .fetch_all(self.reads())
            .await?;
        rows.into_iter().map(client_event).collect()
    }

    async fn ack_client_events(&self, client_id: &str, up_to_seq: u64) -> Result<u64> {
        // Sequence numbers beyond i64 cannot exist; acknowledge everything.
        let up_to = i64::try_from(up_to_seq).unwrap_or(i64::MAX);
        // What the cursor passes (the cursor itself is the lower bound),
        // counted on a reader so the one writer does only the upsert. Every
        // event at or below `up_to` was readable when the device fetched it,
        // so none appears between this count and the upsert.
        let count_sql = sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM ({feed}) AS feed WHERE seq <= $3",
            feed = feed_sql(B::VISIBLE_DELIVERY_SEQ)
        ));
        let acknowledged: i64 = sqlx::query_scalar(count_sql)
            .bind(client_id)
            .bind(0_i64)
            .bind(up_to)
            .fetch_one(self.reads())
            .await?;
        // Never past what was handed out: a cursor ahead of the log would
        // hide the device's future events.
        // (`WHERE TRUE`: SQLite's reading of `INSERT … SELECT … ON CONFLICT`.)
        let upsert = sqlx::AssertSqlSafe(format!(
            "INSERT INTO client_cursors (client_id, acked_seq)
             SELECT $1, CASE WHEN $2 < v THEN $2 ELSE v END
               FROM (SELECT {visible} AS v) AS ceiling WHERE TRUE
             ON CONFLICT (client_id) DO UPDATE SET acked_seq = CASE
                 WHEN excluded.acked_seq > client_cursors.acked_seq THEN excluded.acked_seq
                 ELSE client_cursors.acked_seq END",
            visible = B::VISIBLE_DELIVERY_SEQ
        ));
        sqlx::query(upsert)
            .bind(client_id)
            .bind(up_to)
            .execute(&mut *self.write_conn().await?)
            .await?;
        to_u64(acknowledged, "count")
    }

    async fn settle_delivery_log(&self) -> Result<()> {
        B::settle_delivery_log(self).await
    }

    async fn purge_delivery_log(&self, expired_before_ms: i64) -> Result<u64> {
        // An event stays while a device that may read it has not
        // acknowledged it, and the retention limit has not passed.
        Ok(B::rows_affected(
            &sqlx::query(
                "DELETE FROM delivery_log WHERE enqueued_at < $1
                 OR (recipient IS NOT NULL AND seq <= COALESCE(
                        (SELECT c.acked_seq FROM client_cursors c
                          WHERE c.client_id = delivery_log.recipient), 0))
                 OR (recipient IS NULL AND NOT EXISTS (
                        SELECT 1 FROM room_subscriptions s
                         WHERE s.room_id = delivery_log.room_id
                           AND s.from_seq < delivery_log.seq
                           AND COALESCE((SELECT c.acked_seq FROM client_cursors c
                                          WHERE c.client_id = s.client_id), 0)
                               < delivery_log.seq))",
            )
            .bind(expired_before_ms)
            .execute(&mut *self.write_conn().await?)
            .await?,
        ))
    }

    async fn subscribe(&self, room_id: &str, client_id: &str) -> Result<()> {
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO room_subscriptions (room_id, client_id, from_seq)
             SELECT $1, $2, {visible} WHERE TRUE ON CONFLICT DO NOTHING",
            visible = B::VISIBLE_DELIVERY_SEQ
        ));
        sqlx::query(sql)
            .bind(room_id)
            .bind(client_id)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(())
    }
    async fn unsubscribe(&self, room_id: &str, client_id: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM room_subscriptions WHERE room_id = $1 AND client_id = $2")
                .bind(room_id)
                .bind(client_id)
                .execute(&mut *self.write_conn().await?)
                .await?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn subscribers(&self, room_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT client_id FROM room_subscriptions WHERE room_id = $1 ORDER BY client_id",
        )
        .bind(room_id)
        .fetch_all(self.reads())
        .await?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }
}

/// The events device `$1` may read past `$2` and its cursor: Welcomes
/// addressed to it, and the events of its rooms after it subscribed, up to
/// `visible` (an SQL expression, [`Backend::VISIBLE_DELIVERY_SEQ`]). Columns
/// `seq, room_id, payload, enqueued_at`.
fn feed_sql(visible: &str) -> String {
    format!(
        "WITH after AS (
             SELECT CASE WHEN COALESCE(MAX(acked_seq), 0) > $2
                         THEN MAX(acked_seq) ELSE $2 END AS seq
             FROM client_cursors WHERE client_id = $1),
         visible AS (SELECT {visible} AS seq)
         SELECT e.seq, e.room_id, e.payload, e.enqueued_at FROM delivery_log e
          WHERE e.recipient = $1
            AND e.seq > (SELECT seq FROM after) AND e.seq <= (SELECT seq FROM visible)
         UNION ALL
         SELECT e.seq, e.room_id, e.payload, e.enqueued_at
           FROM room_subscriptions s JOIN delivery_log e
             ON e.room_id = s.room_id AND e.recipient IS NULL AND e.seq > s.from_seq
          WHERE s.client_id = $1
            AND e.seq > (SELECT seq FROM after) AND e.seq <= (SELECT seq FROM visible)"
    )
}
