//! The backend-independent suite against PostgreSQL. Each test creates its own
//! uniquely named database on the server at `MIMI_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and opens two `PgStore`s (two
//! pools, like two server processes) on it. An unreachable server fails the
//! tests: CI starts PostgreSQL.

mod suite;

use std::sync::Arc;
use std::time::Duration;

use mimi_store::{PgStore, PgStoreOptions};
use mimi_testkit::postgres as testing;
use suite::Stores;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn base_url() -> String {
    std::env::var("MIMI_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A fresh database, dropped by [`Guard::finish`].
struct Guard {
    url: String,
    stores: Vec<PgStore>,
}

impl Guard {
    async fn finish(self) {
        for s in &self.stores {
            s.close().await;
        }
        testing::drop_postgres_database(&base_url(), &self.url)
            .await
            .expect("drop test database");
    }
}

fn pool_options() -> PgStoreOptions {
    PgStoreOptions {
        max_connections: 8,
        ..PgStoreOptions::default()
    }
}

async fn fresh() -> (Guard, Stores) {
    let admin = base_url();
    let url = testing::fresh_postgres_database(&admin, "store")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required for these tests: {e}"));
    // Both "processes" start at once: migrations must cope with that.
    let (a, b) = tokio::join!(
        PgStore::connect_with(&url, pool_options()),
        PgStore::connect_with(&url, pool_options())
    );
    let (a, b) = (a.expect("connect"), b.expect("connect second pool"));
    let stores: Stores = vec![Arc::new(a.clone()), Arc::new(b.clone())];
    (
        Guard {
            url,
            stores: vec![a, b],
        },
        stores,
    )
}

suite_tests!(fresh;
    key_package_claim_per_client,
    key_package_expired_never_returned,
    key_package_claim_race,
    key_package_routes,
    room_create_and_load,
    fixed_membership_rooms_are_unique,
    a_parent_room_knows_its_children,
    epoch_cas_race,
    application_messages_same_epoch,
    commit_races_messages,
    accept_rules_and_state_versions,
    conflicting_commit_writes_nothing,
    outbox_lease_complete_retry,
    outbox_partial_lease_keeps_order,
    outbox_dead_letters,
    outbox_concurrent_leasers,
    notify_dedup,
    notify_dedup_per_message,
    delivery_log_fetch_ack,
    accepts_log_for_own_devices,
    delivery_log_purge,
    delivery_log_concurrent_readers,
    room_subscriptions,
    devices_and_tokens,
    ping,
    consent_entries_per_scope,
    user_settings_and_discovery,
    abuse_reports_stored,
);

#[tokio::test]
async fn data_survives_reconnect() {
    let (guard, stores) = fresh().await;
    suite::write_persisted(stores[0].as_ref()).await;
    drop(stores);
    let st = PgStore::connect(&guard.url).await.expect("reconnect");
    suite::check_persisted(&st).await;
    st.close().await;
    guard.finish().await;
}

#[tokio::test]
async fn unreachable_server_is_an_error() {
    let options = PgStoreOptions {
        acquire_timeout: Duration::from_secs(2),
        ..PgStoreOptions::default()
    };
    let err = PgStore::connect_with("postgres://postgres@127.0.0.1:1/none", options)
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(err, mimi_store::StoreError::Database(_)), "{err}");
}
