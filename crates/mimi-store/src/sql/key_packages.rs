//! [`KeyPackageStore`]: KeyPackages (-06 §5.2) and the hub's Welcome routes.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::group_commit::{BatchKind, ClaimJob, group_run};
use super::{Backend, InTx};
use crate::KeyPackageStore;
use crate::error::{Result, StoreError, to_u64};
use crate::types::*;

#[async_trait::async_trait]
impl<B> KeyPackageStore for B
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
            added += B::rows_affected(&sqlx::query(
                "INSERT INTO key_packages (client_uri, key_package_ref, key_package, not_after, last_resort)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_package_ref) DO NOTHING",
            )
            .bind(client_uri)
            .bind(kp.key_package_ref)
            .bind(kp.key_package)
            .bind(kp.not_after)
            .bind(kp.last_resort)
            .execute(&mut *tx)
            .await?);
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn list_clients(&self, user_uri: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT client_uri FROM clients WHERE user_uri = $1 ORDER BY client_uri",
        )
        .bind(user_uri)
        .fetch_all(self.reads())
        .await?)
    }

    async fn claim_key_packages(&self, user_uri: &str, now_secs: i64) -> Result<Vec<ClientClaim>> {
        // Group-committed: one durable commit covers concurrent claims,
        // which run one after another in its transaction.
        let claims = BatchKind {
            commit: |store: &B| &store.group_commits().claims,
            run_together: |store, jobs| {
                Box::pin(async move {
                    let mut tx = store.write_tx().await?;
                    let mut outcomes = Vec::with_capacity(jobs.len());
                    for job in jobs {
                        outcomes.push(Ok(
                            InTx::<B>::claim(&mut tx, &job.user_uri, job.now_secs).await?
                        ));
                    }
                    tx.commit().await?;
                    Ok(outcomes)
                })
            },
        };
        let job = ClaimJob {
            user_uri: user_uri.to_owned(),
            now_secs,
        };
        group_run(self, claims, job).await
    }

    async fn record_own_key_package(
        &self,
        key_package_ref: &[u8],
        client_uri: &str,
        now_secs: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO key_package_claims (key_package_ref, client_uri, claimed_at)
             VALUES ($1, $2, $3) ON CONFLICT (key_package_ref) DO NOTHING",
        )
        .bind(key_package_ref)
        .bind(client_uri)
        .bind(now_secs)
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(())
    }

    async fn client_for_key_package_ref(&self, key_package_ref: &[u8]) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT client_uri FROM key_package_claims WHERE key_package_ref = $1",
        )
        .bind(key_package_ref)
        .fetch_optional(self.reads())
        .await?)
    }

    async fn count_key_packages(&self, client_uri: &str, now_secs: i64) -> Result<KeyPackageCount> {
        let (single_use, last_resort): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE NOT last_resort), COUNT(*) FILTER (WHERE last_resort)
             FROM key_packages WHERE client_uri = $1 AND not_after > $2",
        )
        .bind(client_uri)
        .bind(now_secs)
        .fetch_one(self.reads())
        .await?;
        Ok(KeyPackageCount {
            single_use: to_u64(single_use, "count")?,
            last_resort: to_u64(last_resort, "count")?,
        })
    }

    async fn purge_expired_key_packages(&self, now_secs: i64) -> Result<u64> {
        Backend::delete_expired_key_packages(self, now_secs).await
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
            .bind(kp_ref)
            .bind(room_id)
            .bind(domain)
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
        .fetch_optional(self.reads())
        .await?)
    }
}
