//! Two `mimi server` processes of one provider on one PostgreSQL database,
//! as docs/operations.md "Scaling out" describes: requests spread over both
//! listeners race at the database, and the invariants hold across
//! processes: one commit per epoch (-06 §5.3) and every KeyPackage handed
//! out at most once (-06 §5.2).

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use mimi_client::http::{Client, ProviderConnection};
use mimi_client::{KeyPackageOptions, key_packages_from_response};
use mimi_protocol::msgs::UpdateResponseCode;
use mimi_protocol::msgs::key_material::KeyMaterialResponse;
use mimi_testkit::postgres::fresh_test_database;
use openmls::prelude::ProtocolVersion;
use openmls_rust_crypto::RustCrypto;
use support::{DevSetup, free_ports, wait_joined, wait_listening};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

const ROOM: &str = "mimi://a.example/r/shared";
const WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// Members committing concurrently.
const COMMITTERS: usize = 6;
/// KeyPackages of the claimed user, and concurrent claims for them.
const KEY_PACKAGES: usize = 4;
const CLAIMS: usize = 10;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs `f` on every connection at once (after a barrier), in tasks.
async fn race<T, F, Fut>(connections: Vec<ProviderConnection>, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, ProviderConnection) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(connections.len()));
    let mut tasks = JoinSet::new();
    for (i, connection) in connections.into_iter().enumerate() {
        let (barrier, run) = (barrier.clone(), f(i, connection));
        tasks.spawn(async move {
            barrier.wait().await;
            run.await
        });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn two_processes_on_one_database_keep_the_invariants() {
    let url = fresh_test_database("shared").await;
    let setup = DevSetup::new(&["a.example"]);
    let a = setup.provider("a.example");
    // The first instance creates the schema and the hub key; the second
    // uses them, on its own ports.
    let _first = setup.spawn("a.example", &["--postgres".into(), url.clone()]);
    wait_listening(&[a.federation, a.client]).await;
    let ports = free_ports(2);
    let _second = setup.spawn(
        "a.example",
        &[
            "--postgres".into(),
            url.clone(),
            "--federation-listen".into(),
            format!("127.0.0.1:{}", ports[0]),
            "--client-listen".into(),
            format!("127.0.0.1:{}", ports[1]),
        ],
    );
    wait_listening(&ports).await;
    let instances = [a.client, ports[1]];
    let store = setup.store("a.example", Some(&url)).await;

    // Alice (on the first instance) and five devices of Bob, spread over
    // both instances, all in one room.
    let mut alice = setup
        .device("mimi://a.example/d/alice/laptop", instances[0])
        .await;
    alice.create_room(ROOM).await.unwrap();
    let mut bobs: Vec<Client> = Vec::new();
    for i in 1..COMMITTERS {
        let device = format!("mimi://a.example/d/bob/d{i}");
        let mut bob = setup.device(&device, instances[i % 2]).await;
        bob.publish_key_packages(1).await.unwrap();
        bobs.push(bob);
    }
    alice
        .add_user(ROOM, "mimi://a.example/u/bob", 2)
        .await
        .unwrap();
    for bob in &mut bobs {
        wait_joined(bob, WAIT).await;
    }
    let epoch = store.load_room(ROOM).await.unwrap().unwrap().epoch;

    // (a) Every member commits for the same epoch at once, half through
    // each instance: exactly one commit is accepted, the others get
    // wrongEpoch with the new epoch, and the room advanced once.
    let mut members: Vec<&mut Client> = vec![&mut alice];
    members.extend(bobs.iter_mut());
    let requests: Vec<_> = members
        .iter_mut()
        .map(|m| m.device.commit_pending(ROOM).unwrap())
        .collect();
    let connections = members.iter().map(|m| m.connection.clone()).collect();
    let answers = race(connections, |i, c| {
        let request = requests[i].clone();
        async move { c.update(ROOM, &request).await.unwrap() }
    })
    .await;
    let codes: Vec<_> = answers.iter().map(|r| r.response_code()).collect();
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == UpdateResponseCode::Success)
            .count(),
        1,
        "{codes:?}"
    );
    assert!(
        codes.iter().all(|c| matches!(
            c,
            UpdateResponseCode::Success | UpdateResponseCode::WrongEpoch
        )),
        "{codes:?}"
    );
    let room = store.load_room(ROOM).await.unwrap().unwrap();
    assert_eq!(room.epoch, epoch + 1);
    let commits_into_next_epoch = store
        .room_events(ROOM, 0, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.new_epoch == epoch + 1)
        .count();
    assert_eq!(commits_into_next_epoch, 1);

    // (b) Carol has four single-use KeyPackages (no last-resort one); ten
    // claims race over both instances: exactly four get one, all distinct.
    let mut carol = setup
        .device("mimi://a.example/d/carol/pc", instances[1])
        .await;
    let kps = carol
        .device
        .generate_key_packages(KEY_PACKAGES, KeyPackageOptions::default())
        .unwrap();
    let messages: Vec<Vec<u8>> = kps.iter().map(|k| k.mls_message.clone()).collect();
    carol
        .connection
        .upload_key_packages(&messages, false)
        .await
        .unwrap();
    let uploaded: BTreeSet<Vec<u8>> = kps.iter().map(|k| k.key_package_ref.clone()).collect();
    let request = alice
        .device
        .key_material_request("mimi://a.example/u/carol", None)
        .unwrap();
    let token = alice.connection.token().unwrap().to_owned();
    let connections = (0..CLAIMS)
        .map(|i| {
            setup
                .connection("a.example", instances[i % 2])
                .with_token(token.clone())
        })
        .collect();
    let responses: Vec<KeyMaterialResponse> = race(connections, |_, c| {
        let request = request.clone();
        async move { c.key_material(&request).await.unwrap() }
    })
    .await;
    let crypto = RustCrypto::default();
    let obtained: Vec<Vec<u8>> = responses
        .iter()
        .flat_map(key_packages_from_response)
        .map(|(_, kp)| {
            kp.validate(&crypto, ProtocolVersion::Mls10)
                .unwrap()
                .hash_ref(&crypto)
                .unwrap()
                .as_slice()
                .to_vec()
        })
        .collect();
    assert_eq!(obtained.len(), KEY_PACKAGES.min(CLAIMS));
    let distinct: BTreeSet<Vec<u8>> = obtained.iter().cloned().collect();
    assert_eq!(distinct, uploaded, "each KeyPackage handed out once");
    let left = store
        .count_key_packages("mimi://a.example/d/carol/pc", now_secs())
        .await
        .unwrap();
    assert_eq!(left.single_use, 0);
    for r in &uploaded {
        assert_eq!(
            store
                .client_for_key_package_ref(r)
                .await
                .unwrap()
                .as_deref(),
            Some("mimi://a.example/d/carol/pc")
        );
    }
}
