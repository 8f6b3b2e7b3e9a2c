//! A network cut in the middle of a keyMaterial claim (-06 §5.2) never
//! hands a KeyPackage out twice: a.example claims Bob's KeyPackages from
//! b.example through a proxy that cuts the connection after b.example
//! answered, then in the middle of the request body; the requester
//! retries. The target's store is checked afterwards.

mod common;
mod fanout_support;
mod net_support;

use std::collections::BTreeSet;

use common::{Backend, Provider, start_federation};
use fanout_support::now_ms;
use mimi_protocol::msgs::key_material::{ClientMaterial, KeyMaterialResponse, KeyMaterialUserCode};
use mimi_protocol::{decode_exact, encode};
use mimi_store::NewKeyPackage;
use mimi_testkit::clients::TestClient;
use net_support::{Fault, interpose};
use openmls::prelude::{MlsMessageOut, OpenMlsProvider, ProtocolVersion};
use reqwest::StatusCode;
use tls_codec::Serialize as _;

const KEY_MATERIAL_PATH: &str = "/v1/keyMaterial/";
const UPLOADED: usize = 6;

/// Stores `n` single-use KeyPackages of `client` on `p`; returns their refs.
async fn store_key_packages(p: &Provider, client: &TestClient, n: usize) -> BTreeSet<Vec<u8>> {
    let mut refs = BTreeSet::new();
    let mut rows = Vec::new();
    for _ in 0..n {
        let kp = client.key_package();
        let kp_ref = kp.hash_ref(client.provider.crypto()).unwrap();
        refs.insert(kp_ref.as_slice().to_vec());
        rows.push(NewKeyPackage {
            key_package_ref: kp_ref.as_slice().to_vec(),
            key_package: MlsMessageOut::from(kp).tls_serialize_detached().unwrap(),
            not_after: (now_ms() / 1000) as i64 + 3600,
            last_resort: false,
        });
    }
    let store = &p.server().state.store;
    let stored = store
        .add_key_packages(&client.user(), &client.device, rows)
        .await
        .unwrap();
    assert_eq!(stored, n as u64);
    refs
}

/// Alice asks her provider for Bob's key material (no room: a.example
/// forwards to b.example).
async fn claim(a: &Provider, token: &str, alice: &TestClient, bob: &str) -> (StatusCode, Vec<u8>) {
    let request = alice.key_material_request(bob, Default::default());
    let resp = a
        .client_api
        .post(format!("{}/client/v1/key-material", a.client_base))
        .bearer_auth(token)
        .header("content-type", "application/mimi-protocol")
        .body(encode(&request).unwrap())
        .send()
        .await
        .unwrap();
    (resp.status(), resp.bytes().await.unwrap().to_vec())
}

/// The single KeyPackageRef of a successful answer.
fn obtained_ref(body: &[u8]) -> Vec<u8> {
    let response: KeyMaterialResponse = decode_exact(body).unwrap();
    assert_eq!(response.user_status, KeyMaterialUserCode::Success);
    assert_eq!(response.clients.len(), 1);
    let ClientMaterial::Success(kp) = &response.clients[0].material else {
        panic!("no KeyPackage: {:?}", response.clients[0].material);
    };
    let crypto = openmls_rust_crypto::RustCrypto::default();
    kp.clone()
        .validate(&crypto, ProtocolVersion::Mls10)
        .unwrap()
        .hash_ref(&crypto)
        .unwrap()
        .as_slice()
        .to_vec()
}

#[tokio::test]
async fn cut_claims_never_hand_out_a_key_package_twice() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let proxy = interpose(&mut fed, "a.example", "b.example").await;
    let (a, b) = (fed.provider("a.example"), fed.provider("b.example"));
    let alice = TestClient::new("mimi://a.example/d/alice/laptop");
    let bob = TestClient::new("mimi://b.example/d/bob/laptop");
    let token = a.register(&alice.device).await;
    b.register(&bob.device).await;
    let uploaded = store_key_packages(b, &bob, UPLOADED).await;
    let store = b.server().state.store.clone();
    let now_secs = || (now_ms() / 1000) as i64;
    let left = || async {
        store
            .count_key_packages(&bob.device, now_secs())
            .await
            .unwrap()
    };

    // (i) b.example claims and answers; the answer is lost on the way.
    proxy.arm(KEY_MATERIAL_PATH, Fault::CutBeforeResponse);
    let (status, body) = claim(a, &token, &alice, &bob.user()).await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(proxy.cuts(), 1);
    assert_eq!(left().await.single_use, UPLOADED as u64 - 1);

    // (ii) The request body is cut: b.example never sees a whole request
    // and claims nothing.
    proxy.arm(KEY_MATERIAL_PATH, Fault::CutMidRequest);
    let (status, _) = claim(a, &token, &alice, &bob.user()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(proxy.cuts(), 2);
    assert_eq!(left().await.single_use, UPLOADED as u64 - 1);

    // The requester retries; each retry gets a fresh KeyPackage.
    let mut obtained = Vec::new();
    for _ in 0..2 {
        let (status, body) = claim(a, &token, &alice, &bob.user()).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        obtained.push(obtained_ref(&body));
    }
    let distinct: BTreeSet<_> = obtained.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        obtained.len(),
        "a KeyPackage came back twice"
    );
    assert!(distinct.is_subset(&uploaded));

    // The store: the claimed set is what was handed out plus the one whose
    // answer was cut (consumed, never reused); each is claimed by Bob's
    // device.
    let mut claimed = BTreeSet::new();
    for r in &uploaded {
        if let Some(client) = store.client_for_key_package_ref(r).await.unwrap() {
            assert_eq!(client, bob.device);
            claimed.insert(r.clone());
        }
    }
    assert!(distinct.is_subset(&claimed));
    assert_eq!(claimed.len(), obtained.len() + 1);
    assert_eq!(
        left().await.single_use as usize,
        UPLOADED - claimed.len(),
        "claimed and available KeyPackages partition the upload"
    );

    // Whatever is still available was never claimed: draining it yields
    // exactly the unclaimed rest, each once.
    let mut drained = BTreeSet::new();
    loop {
        let claims = store
            .claim_key_packages(&bob.user(), now_secs())
            .await
            .unwrap();
        let Some(kp) = claims.into_iter().find_map(|c| c.key_package) else {
            break;
        };
        assert!(!claimed.contains(&kp.key_package_ref), "claimed twice");
        assert!(drained.insert(kp.key_package_ref), "available twice");
    }
    assert_eq!(
        drained,
        uploaded
            .difference(&claimed)
            .cloned()
            .collect::<BTreeSet<_>>()
    );
    fed.shutdown().await;
}
