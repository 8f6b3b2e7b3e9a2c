//! The backend-independent suite against PostgreSQL. Each test creates its own
//! uniquely named database on the server at `MIMI_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and opens two `PgStore`s (two
//! pools, like two server processes) on it. An unreachable server fails the
//! tests: CI starts PostgreSQL.

mod suite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mimi_store::{PgStore, PgStoreOptions};
use sqlx::{Connection, PgConnection};
use suite::Stores;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn base_url() -> String {
    std::env::var("MIMI_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let authority_start = main.find("://").map_or(0, |i| i + 3);
    let prefix = match main[authority_start..].find('/') {
        Some(i) => &main[..authority_start + i],
        None => main,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

async fn admin() -> PgConnection {
    let url = base_url();
    PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required for these tests: {e}"))
}

/// A fresh database, dropped by [`Guard::finish`].
struct Guard {
    db: String,
    stores: Vec<PgStore>,
}

impl Guard {
    async fn finish(self) {
        for s in &self.stores {
            s.close().await;
        }
        let mut conn = admin().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.db
        )))
        .execute(&mut conn)
        .await
        .expect("drop test database");
    }
}

async fn create_database() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let db = format!(
        "mimi_store_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = admin().await;
    // The name is made of digits, letters and underscores only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    db
}

fn pool_options() -> PgStoreOptions {
    PgStoreOptions {
        max_connections: 8,
        ..PgStoreOptions::default()
    }
}

async fn fresh() -> (Guard, Stores) {
    let db = create_database().await;
    let url = with_database(&base_url(), &db);
    // Both "processes" start at once: migrations must cope with that.
    let (a, b) = tokio::join!(
        PgStore::connect_with(&url, pool_options()),
        PgStore::connect_with(&url, pool_options())
    );
    let (a, b) = (a.expect("connect"), b.expect("connect second pool"));
    let stores: Stores = vec![Arc::new(a.clone()), Arc::new(b.clone())];
    (
        Guard {
            db,
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
    epoch_cas_race,
    application_messages_same_epoch,
    accept_rules_and_state_versions,
    conflicting_commit_writes_nothing,
    outbox_lease_complete_retry,
    outbox_partial_lease_keeps_order,
    outbox_concurrent_leasers,
    notify_dedup,
    client_queue_fetch_ack,
    ping,
);

#[tokio::test]
async fn data_survives_reconnect() {
    let (guard, stores) = fresh().await;
    suite::write_persisted(stores[0].as_ref()).await;
    drop(stores);
    let url = with_database(&base_url(), &guard.db);
    let st = PgStore::connect(&url).await.expect("reconnect");
    suite::check_persisted(&st).await;
    st.close().await;
    guard.finish().await;
}

#[test]
fn database_url_rewrite() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
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
