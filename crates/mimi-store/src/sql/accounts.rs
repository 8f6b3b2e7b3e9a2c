//! [`AccountStore`]: devices, consent, user settings and abuse reports.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Backend, UserSettingsRow, user_settings_from_row};
use crate::error::{Result, StoreError, to_u64};
use crate::types::*;
use crate::{
    AbuseReportRecord, AccountStore, ConsentOperation, ConsentRecord, NewAbuseReport, UserSettings,
    stored_name,
};

#[async_trait::async_trait]
impl<B> AccountStore for B
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
        if B::rows_affected(&done) == 0 {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT user_uri FROM devices WHERE device_uri = $1")
                    .bind(device_uri)
                    .fetch_optional(self.reads())
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

    async fn device_for_token(&self, token_sha256: [u8; 32]) -> Result<Option<RegisteredDevice>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT user_uri, device_uri FROM devices WHERE token_sha256 = $1")
                .bind(&token_sha256[..])
                .fetch_optional(self.reads())
                .await?;
        Ok(row.map(|(user_uri, device_uri)| RegisteredDevice {
            user_uri,
            device_uri,
        }))
    }

    async fn record_consent(&self, entry: ConsentRecord) -> Result<()> {
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
    ) -> Result<Vec<ConsentRecord>> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as("SELECT requester_uri, target_uri, room_id, operation, updated_at FROM consent_entries WHERE requester_uri = $1 AND target_uri = $2 ORDER BY room_id")
            .bind(requester_uri)
            .bind(target_uri)
            .fetch_all(self.reads())
            .await?;
        rows.into_iter()
            .map(
                |(requester_uri, target_uri, room, operation, updated_at_ms)| {
                    Ok(ConsentRecord {
                        requester_uri,
                        target_uri,
                        room_id: (!room.is_empty()).then_some(room),
                        operation: stored_name(
                            ConsentOperation::from_name(&operation),
                            "consent operation",
                            &operation,
                        )?,
                        updated_at_ms,
                    })
                },
            )
            .collect()
    }

    async fn put_user_settings(&self, s: UserSettings) -> Result<()> {
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

    async fn user_settings(&self, user_uri: &str) -> Result<Option<UserSettings>> {
        let row: Option<UserSettingsRow> = sqlx::query_as("SELECT user_uri, consent_required, handle, nick, email, phone, given_name, family_name, discoverability FROM user_settings WHERE user_uri = $1")
            .bind(user_uri)
            .fetch_optional(self.reads())
            .await?;
        row.map(user_settings_from_row).transpose()
    }

    async fn discoverable_users(&self) -> Result<Vec<UserSettings>> {
        let rows: Vec<UserSettingsRow> = sqlx::query_as("SELECT user_uri, consent_required, handle, nick, email, phone, given_name, family_name, discoverability FROM user_settings WHERE discoverability <> 'none' ORDER BY user_uri")
            .fetch_all(self.reads())
            .await?;
        rows.into_iter().map(user_settings_from_row).collect()
    }

    async fn add_abuse_report(&self, r: NewAbuseReport) -> Result<u64> {
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

    async fn abuse_reports(&self) -> Result<Vec<AbuseReportRecord>> {
        type Row = (i64, String, String, String, String, Vec<u8>, i64, bool);
        let rows: Vec<Row> = sqlx::query_as("SELECT id, room_id, source_provider, reporting_user, alleged_abuser, report, received_at, franks_verified FROM abuse_reports ORDER BY id")
            .fetch_all(self.reads())
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
                    Ok(AbuseReportRecord {
                        id: to_u64(id, "abuse report id")?,
                        report: NewAbuseReport {
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
}
