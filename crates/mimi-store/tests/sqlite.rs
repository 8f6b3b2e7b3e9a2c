//! The backend-independent suite against SQLite: each test opens two stores
//! (two pools) on one fresh temporary database file.

mod suite;

use std::sync::Arc;

use mimi_store::{RoomStore, SqliteStore, Store};
use suite::Stores;

/// Keeps the temporary directory alive for the test's duration.
struct Guard {
    _dir: tempfile::TempDir,
    stores: Vec<SqliteStore>,
}

impl Guard {
    async fn finish(self) {
        for s in &self.stores {
            s.close().await;
        }
    }
}

async fn fresh() -> (Guard, Stores) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let path = path.to_str().expect("utf-8 path");
    let a = SqliteStore::open(path).await.expect("open");
    let b = SqliteStore::open(path).await.expect("open again");
    let stores: Stores = vec![Arc::new(a.clone()), Arc::new(b.clone())];
    (
        Guard {
            _dir: dir,
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
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("persist.db");
    let path = path.to_str().expect("utf-8 path");
    let st = SqliteStore::open(path).await.expect("open");
    suite::write_persisted(&st).await;
    st.close().await;
    drop(st);
    // Reopening runs the migrations again (a no-op) and sees everything.
    let st = SqliteStore::open(&format!("sqlite://{path}"))
        .await
        .expect("reopen");
    suite::check_persisted(&st).await;
    st.close().await;
}

#[tokio::test]
async fn in_memory_store_works() {
    for location in [":memory:", "sqlite::memory:"] {
        let st: Arc<dyn Store> = Arc::new(SqliteStore::open(location).await.expect("open"));
        suite::write_persisted(st.as_ref()).await;
        suite::check_persisted(st.as_ref()).await;
    }
    // Two in-memory stores are independent.
    let a = SqliteStore::open(":memory:").await.expect("open");
    let b = SqliteStore::open(":memory:").await.expect("open");
    a.create_room(mimi_store::NewRoom {
        room_id: "r".into(),
        epoch: 0,
        group_state: vec![],
        created_at_ms: 0,
        fixed_membership_key: None,
        parent_room: None,
    })
    .await
    .expect("create");
    assert!(b.load_room("r").await.expect("load").is_none());
}
