//! [`DeliveryStore`]: a follower's `/notify` deduplication, client queues
//! and room subscriptions.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Backend, NOTIFY_KEYS_PER_STATEMENT, client_event, insert_notify_keys_sql};
use crate::DeliveryStore;
use crate::error::{Result, to_i64};
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
    async fn record_notify_and_enqueue(
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
        let events: Vec<NewClientEvent> = messages
            .into_iter()
            .zip(&new_messages)
            .filter(|(_, new)| **new)
            .flat_map(|(m, _)| m.events)
            .collect();
        let client_seqs = if events.is_empty() {
            Vec::new()
        } else {
            B::enqueue_clients(&mut tx, events, now_ms).await?
        };
        tx.commit().await?;
        Ok(NotifyOutcome {
            new_messages,
            client_seqs,
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

    async fn enqueue_for_clients(
        &self,
        events: Vec<NewClientEvent>,
        now_ms: i64,
    ) -> Result<Vec<u64>> {
        let mut tx = self.write_tx().await?;
        let seqs = B::enqueue_clients(&mut tx, events, now_ms).await?;
        tx.commit().await?;
        Ok(seqs)
    }

    async fn fetch_client_events(
        &self,
        client_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ClientEvent>> {
        let rows: Vec<(i64, String, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT seq, room_id, payload, enqueued_at FROM client_events
             WHERE client_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
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
        Ok(B::rows_affected(
            &sqlx::query("DELETE FROM client_events WHERE client_id = $1 AND seq <= $2")
                .bind(client_id)
                .bind(up_to)
                .execute(&mut *self.write_conn().await?)
                .await?,
        ))
    }

    async fn subscribe(&self, room_id: &str, client_id: &str) -> Result<()> {
        sqlx::query("INSERT INTO room_subscriptions (room_id, client_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
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
