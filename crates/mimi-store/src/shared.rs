//! The [`Store`](crate::Store) methods whose SQL both backends share (both
//! accept `$N` parameters, `ON CONFLICT` and `RETURNING`).
//!
//! `store_impl!(Backend { … })` writes `impl Store for Backend` from the
//! backend's own methods (the ones whose SQL or locking differs) and these.
//! A backend provides, besides the helpers in [`crate::common`]:
//! - `pool`: where reads go;
//! - `write_tx()`: a durable write transaction;
//! - `write_conn()`: a connection for one durable write statement.

macro_rules! store_impl {
    ($store:ty { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl Store for $store {
            $($own)*

            async fn add_key_packages(
                &self,
                user_uri: &str,
                client_uri: &str,
                key_packages: Vec<NewKeyPackage>,
            ) -> Result<u64> {
                let mut tx = self.write_tx().await?;
                sqlx::query(
                    "INSERT INTO clients (client_uri, user_uri) VALUES ($1, $2)
                     ON CONFLICT (client_uri) DO NOTHING",
                )
                .bind(client_uri)
                .bind(user_uri)
                .execute(&mut *tx)
                .await?;
                let owner: String =
                    sqlx::query_scalar("SELECT user_uri FROM clients WHERE client_uri = $1")
                        .bind(client_uri)
                        .fetch_one(&mut *tx)
                        .await?;
                if owner != user_uri {
                    return Err(StoreError::ClientOwnedByOtherUser {
                        client_uri: client_uri.to_owned(),
                        owner,
                    });
                }
                let mut added = 0;
                for kp in key_packages {
                    added += sqlx::query(
                        "INSERT INTO key_packages (client_uri, key_package_ref, key_package, not_after, last_resort)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_package_ref) DO NOTHING",
                    )
                    .bind(client_uri)
                    .bind(&kp.key_package_ref)
                    .bind(&kp.key_package)
                    .bind(kp.not_after)
                    .bind(kp.last_resort)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                Ok(added)
            }

            async fn list_clients(&self, user_uri: &str) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT client_uri FROM clients WHERE user_uri = $1 ORDER BY client_uri",
                )
                .bind(user_uri)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn claim_key_packages(&self, user_uri: &str, now_secs: i64) -> Result<Vec<ClientClaim>> {
                // Group-committed: one durable commit covers concurrent claims.
                group_run(
                    self,
                    ClaimJob {
                        user_uri: user_uri.to_owned(),
                        now_secs,
                    },
                )
                .await
            }

            async fn client_for_key_package_ref(&self, key_package_ref: &[u8]) -> Result<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT client_uri FROM key_package_claims WHERE key_package_ref = $1",
                )
                .bind(key_package_ref)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn count_key_packages(&self, client_uri: &str, now_secs: i64) -> Result<KeyPackageCount> {
                let (single_use, last_resort): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*) FILTER (WHERE NOT last_resort), COUNT(*) FILTER (WHERE last_resort)
                     FROM key_packages WHERE client_uri = $1 AND not_after > $2",
                )
                .bind(client_uri)
                .bind(now_secs)
                .fetch_one(&self.pool)
                .await?;
                Ok(KeyPackageCount {
                    single_use: to_u64(single_use, "count")?,
                    last_resort: to_u64(last_resort, "count")?,
                })
            }

            async fn record_key_package_routes(
                &self,
                room_id: &str,
                mut routes: Vec<(Vec<u8>, String)>,
            ) -> Result<()> {
                routes.sort();
                let mut tx = self.write_tx().await?;
                for (kp_ref, domain) in routes {
                    sqlx::query(
                        "INSERT INTO key_package_routes (key_package_ref, room_id, provider_domain)
                         VALUES ($1, $2, $3) ON CONFLICT (key_package_ref)
                         DO UPDATE SET room_id = excluded.room_id, provider_domain = excluded.provider_domain",
                    )
                    .bind(&kp_ref)
                    .bind(room_id)
                    .bind(&domain)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn provider_for_key_package_ref(&self, key_package_ref: &[u8]) -> Result<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT provider_domain FROM key_package_routes WHERE key_package_ref = $1",
                )
                .bind(key_package_ref)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn create_room(&self, room: NewRoom) -> Result<RoomRecord> {
                let epoch = to_i64(room.epoch, "epoch")?;
                let inserted = sqlx::query(
                    "INSERT INTO rooms (room_id, epoch, state_version, group_state, last_seq, created_at_ms, updated_at_ms)
                     VALUES ($1, $2, 0, $3, 0, $4, $4) ON CONFLICT (room_id) DO NOTHING",
                )
                .bind(&room.room_id)
                .bind(epoch)
                .bind(&room.group_state)
                .bind(room.created_at_ms)
                .execute(&mut *self.write_conn().await?)
                .await?
                .rows_affected();
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
                .fetch_optional(&self.pool)
                .await?;
                row.map(room_record).transpose()
            }

            async fn accept_room_event(&self, event: AcceptedEvent) -> Result<AcceptOutcome> {
                group_accept(self, event).await
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
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(room_event).collect()
            }

            async fn outbox_depth(&self) -> Result<u64> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
                    .fetch_one(&self.pool)
                    .await?;
                to_u64(n, "count")
            }

            async fn destinations_with_due_items(&self, now_ms: i64) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar(DUE_DESTINATIONS)
                    .bind(now_ms)
                    .fetch_all(&self.pool)
                    .await?)
            }

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
                        if let Some(&i) = chunk.iter().find(|&&i| {
                            !new_messages[i] && messages[i].message_sha256[..] == key[..]
                        }) {
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
                    enqueue_clients(&mut tx, events, now_ms).await?
                };
                tx.commit().await?;
                Ok(NotifyOutcome {
                    new_messages,
                    client_seqs,
                })
            }

            async fn prune_notify_before(&self, before_ms: i64) -> Result<u64> {
                Ok(sqlx::query("DELETE FROM notify_seen WHERE seen_at < $1")
                    .bind(before_ms)
                    .execute(&mut *self.write_conn().await?)
                    .await?
                    .rows_affected())
            }

            async fn enqueue_for_clients(
                &self,
                events: Vec<NewClientEvent>,
                now_ms: i64,
            ) -> Result<Vec<u64>> {
                let mut tx = self.write_tx().await?;
                let seqs = enqueue_clients(&mut tx, events, now_ms).await?;
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
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(client_event).collect()
            }

            async fn ack_client_events(&self, client_id: &str, up_to_seq: u64) -> Result<u64> {
                // Sequence numbers beyond i64 cannot exist; acknowledge everything.
                let up_to = i64::try_from(up_to_seq).unwrap_or(i64::MAX);
                Ok(
                    sqlx::query("DELETE FROM client_events WHERE client_id = $1 AND seq <= $2")
                        .bind(client_id)
                        .bind(up_to)
                        .execute(&mut *self.write_conn().await?)
                        .await?
                        .rows_affected(),
                )
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
                Ok(done.rows_affected() > 0)
            }

            async fn subscribers(&self, room_id: &str) -> Result<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT client_id FROM room_subscriptions WHERE room_id = $1 ORDER BY client_id",
                )
                .bind(room_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(c,)| c).collect())
            }

            async fn register_device(
                &self,
                user_uri: &str,
                device_uri: &str,
                token_sha256: [u8; 32],
                reregistration: Reregistration,
                now_ms: i64,
            ) -> Result<()> {
                // The conditional upsert changes nothing when the device is
                // another user's or the re-registration is not authorised;
                // which one is then looked up. No stored token is empty, so
                // `Refuse` never matches one.
                let (admin, current) = match reregistration {
                    Reregistration::Refuse => (false, Vec::new()),
                    Reregistration::WithCurrentToken(hash) => (false, hash.to_vec()),
                    Reregistration::Admin => (true, Vec::new()),
                };
                let done = sqlx::query(
                    "INSERT INTO devices (device_uri, user_uri, token_sha256, registered_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (device_uri) DO UPDATE
                     SET token_sha256 = EXCLUDED.token_sha256, registered_at = EXCLUDED.registered_at
                     WHERE devices.user_uri = EXCLUDED.user_uri
                       AND ($5 OR devices.token_sha256 = $6)",
                )
                .bind(device_uri)
                .bind(user_uri)
                .bind(token_sha256.to_vec())
                .bind(now_ms)
                .bind(admin)
                .bind(current)
                .execute(&mut *self.write_conn().await?)
                .await?;
                if done.rows_affected() == 0 {
                    let owner: Option<String> =
                        sqlx::query_scalar("SELECT user_uri FROM devices WHERE device_uri = $1")
                            .bind(device_uri)
                            .fetch_optional(&self.pool)
                            .await?;
                    return Err(match owner {
                        Some(owner) if owner != user_uri => StoreError::ClientOwnedByOtherUser {
                            client_uri: device_uri.to_owned(),
                            owner,
                        },
                        _ => StoreError::DeviceRegistered(device_uri.to_owned()),
                    });
                }
                Ok(())
            }

            async fn device_for_token(&self, token_sha256: [u8; 32]) -> Result<Option<(String, String)>> {
                Ok(
                    sqlx::query_as("SELECT user_uri, device_uri FROM devices WHERE token_sha256 = $1")
                        .bind(token_sha256.to_vec())
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn record_consent(&self, entry: crate::ConsentRecord) -> Result<()> {
                sqlx::query("INSERT INTO consent_entries (requester_uri, target_uri, room_id, operation, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (requester_uri, target_uri, room_id) DO UPDATE SET operation = excluded.operation, updated_at = excluded.updated_at")
                    .bind(entry.requester_uri)
                    .bind(entry.target_uri)
                    .bind(entry.room_id.unwrap_or_default())
                    .bind(entry.operation.as_str())
                    .bind(entry.updated_at_ms)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                Ok(())
            }

            async fn consent_entries(
                &self,
                requester_uri: &str,
                target_uri: &str,
            ) -> Result<Vec<crate::ConsentRecord>> {
                let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as("SELECT requester_uri, target_uri, room_id, operation, updated_at FROM consent_entries WHERE requester_uri = $1 AND target_uri = $2 ORDER BY room_id")
                    .bind(requester_uri)
                    .bind(target_uri)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(
                        |(requester_uri, target_uri, room, operation, updated_at_ms)| {
                            Ok(crate::ConsentRecord {
                                requester_uri,
                                target_uri,
                                room_id: (!room.is_empty()).then_some(room),
                                operation: crate::stored_name(
                                    crate::ConsentOperation::from_name(&operation),
                                    "consent operation",
                                    &operation,
                                )?,
                                updated_at_ms,
                            })
                        },
                    )
                    .collect()
            }

            async fn put_user_settings(&self, s: crate::UserSettings) -> Result<()> {
                sqlx::query("INSERT INTO user_settings (user_uri, consent_required, handle, nick, email, phone, given_name, family_name, discoverability) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (user_uri) DO UPDATE SET consent_required = excluded.consent_required, handle = excluded.handle, nick = excluded.nick, email = excluded.email, phone = excluded.phone, given_name = excluded.given_name, family_name = excluded.family_name, discoverability = excluded.discoverability")
                    .bind(s.user_uri)
                    .bind(s.consent_required)
                    .bind(s.handle)
                    .bind(s.nick)
                    .bind(s.email)
                    .bind(s.phone)
                    .bind(s.given_name)
                    .bind(s.family_name)
                    .bind(s.discoverability.as_str())
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                Ok(())
            }

            async fn user_settings(&self, user_uri: &str) -> Result<Option<crate::UserSettings>> {
                let row: Option<UserSettingsRow> = sqlx::query_as("SELECT user_uri, consent_required, handle, nick, email, phone, given_name, family_name, discoverability FROM user_settings WHERE user_uri = $1")
                    .bind(user_uri)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(user_settings_from_row).transpose()
            }

            async fn discoverable_users(&self) -> Result<Vec<crate::UserSettings>> {
                let rows: Vec<UserSettingsRow> = sqlx::query_as("SELECT user_uri, consent_required, handle, nick, email, phone, given_name, family_name, discoverability FROM user_settings WHERE discoverability <> 'none' ORDER BY user_uri")
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(user_settings_from_row).collect()
            }

            async fn add_abuse_report(&self, r: crate::NewAbuseReport) -> Result<u64> {
                let (id,): (i64,) = sqlx::query_as("INSERT INTO abuse_reports (room_id, source_provider, reporting_user, alleged_abuser, report, received_at, franks_verified) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
                    .bind(r.room_id)
                    .bind(r.source_provider)
                    .bind(r.reporting_user)
                    .bind(r.alleged_abuser)
                    .bind(r.report)
                    .bind(r.received_at_ms)
                    .bind(r.franks_verified)
                    .fetch_one(&mut *self.write_conn().await?)
                    .await?;
                to_u64(id, "abuse report id")
            }

            async fn abuse_reports(&self) -> Result<Vec<crate::AbuseReportRecord>> {
                type Row = (i64, String, String, String, String, Vec<u8>, i64, bool);
                let rows: Vec<Row> = sqlx::query_as("SELECT id, room_id, source_provider, reporting_user, alleged_abuser, report, received_at, franks_verified FROM abuse_reports ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(
                        |(
                            id,
                            room_id,
                            source_provider,
                            reporting_user,
                            alleged_abuser,
                            report,
                            received_at_ms,
                            franks_verified,
                        )| {
                            Ok(crate::AbuseReportRecord {
                                id: to_u64(id, "abuse report id")?,
                                report: crate::NewAbuseReport {
                                    room_id,
                                    source_provider,
                                    reporting_user,
                                    alleged_abuser,
                                    report,
                                    received_at_ms,
                                    franks_verified,
                                },
                            })
                        },
                    )
                    .collect()
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}
pub(crate) use store_impl;
