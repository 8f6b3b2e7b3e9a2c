//! KeyPackage upload and keyMaterial (-06 §5.2) between real providers:
//! claims through the hub and through a follower, Welcome routing records,
//! refusals, rate limiting and concurrent claims.

mod common;

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Backend, Federation, start_federation};
use mimi_protocol::msgs::key_material::{
    ClientMaterial, KeyMaterialRequest, KeyMaterialRequestTbs, KeyMaterialResponse,
    KeyMaterialUserCode,
};
use mimi_protocol::{IdentifierUri, Protocol, decode_exact, encode};
use mimi_server::tls::ProviderIdentity;
use mimi_testkit::clients::{CIPHERSUITE, TestClient};
use openmls::prelude::{
    ExtensionType, KeyPackage, KeyPackageBuilder, KeyPackageIn, MlsMessageOut, ProposalType,
    RequiredCapabilitiesExtension,
};
use reqwest::StatusCode;
use serde_json::json;
use tls_codec::{Serialize as _, VLBytes};

const ROOM: &str = "mimi://a.example/r/x";

fn mls_message(kp: KeyPackage) -> Vec<u8> {
    MlsMessageOut::from(kp).tls_serialize_detached().unwrap()
}

/// Uploads KeyPackages; returns the answer's status and body.
async fn upload(
    fed: &Federation,
    domain: &str,
    token: &str,
    kps: Vec<Vec<u8>>,
    last_resort: bool,
) -> (StatusCode, String) {
    let p = fed.provider(domain);
    let body: Vec<String> = kps.iter().map(|k| B64.encode(k)).collect();
    let resp = p
        .client_api
        .post(format!("{}/client/v1/key-packages", p.client_base))
        .bearer_auth(token)
        .json(&json!({"key_packages": body, "last_resort": last_resort}))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// A device with a token and real MLS keys.
struct Device {
    client: TestClient,
    token: String,
    domain: String,
}

impl Device {
    async fn new(fed: &Federation, device: &str) -> Self {
        Self {
            client: TestClient::new(device),
            token: fed.register(device).await,
            domain: device
                .trim_start_matches("mimi://")
                .split('/')
                .next()
                .unwrap()
                .into(),
        }
    }

    async fn upload(&self, fed: &Federation, n: usize, last_resort: bool) {
        let kps = (0..n)
            .map(|_| {
                if last_resort {
                    mls_message(last_resort_kp(&self.client))
                } else {
                    mls_message(self.client.key_package())
                }
            })
            .collect();
        let (status, body) = upload(fed, &self.domain, &self.token, kps, last_resort).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, format!("{{\"stored\":{n}}}"));
    }

    fn request(&self, target: &str, room: &str) -> KeyMaterialRequest {
        KeyMaterialRequestTbs {
            protocol: Protocol::Mls10,
            requesting_user: IdentifierUri::new(self.client.user()),
            target_user: IdentifierUri::new(target),
            room_id: IdentifierUri::new(room),
            acceptable_ciphersuites: vec![CIPHERSUITE.into()],
            required_capabilities: RequiredCapabilitiesExtension::new(
                &[ExtensionType::AppDataDictionary],
                &[ProposalType::AppDataUpdate, ProposalType::SelfRemove],
                &[],
            ),
            requester_signature_key: self.client.signer.public().into(),
            requester_credential: self.client.credential.credential.clone(),
        }
        .sign(&self.client.signer)
        .unwrap()
    }

    /// Records a consent operation of this device's user (client API,
    /// `POST /client/v1/consent`), which must be accepted.
    async fn consent(&self, fed: &Federation, entry: serde_json::Value) {
        let p = fed.provider(&self.domain);
        let resp = p
            .client_api
            .post(format!("{}/client/v1/consent", p.client_base))
            .bearer_auth(&self.token)
            .json(&entry)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }

    /// Single-use KeyPackages this device still has at its provider.
    async fn single_use_left(&self, fed: &Federation) -> u64 {
        fed.provider(&self.domain)
            .server()
            .state
            .store
            .count_key_packages(&self.client.device, 0)
            .await
            .unwrap()
            .single_use
    }

    /// `POST /client/v1/key-material` with a raw body.
    async fn post_raw(&self, fed: &Federation, body: Vec<u8>) -> reqwest::Response {
        let p = fed.provider(&self.domain);
        p.client_api
            .post(format!("{}/client/v1/key-material", p.client_base))
            .bearer_auth(&self.token)
            .header("content-type", "application/mimi-protocol")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn claim(&self, fed: &Federation, target: &str, room: &str) -> KeyMaterialResponse {
        let resp = self
            .post_raw(fed, encode(&self.request(target, room)).unwrap())
            .await;
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        decode_exact(&bytes).unwrap()
    }
}

fn last_resort_kp(client: &TestClient) -> KeyPackage {
    let capabilities = openmls::prelude::Capabilities::new(
        None,
        None,
        Some(&[ExtensionType::AppDataDictionary, ExtensionType::LastResort]),
        Some(&[ProposalType::AppDataUpdate, ProposalType::SelfRemove]),
        None,
    );
    KeyPackageBuilder::new()
        .leaf_node_capabilities(capabilities)
        .mark_as_last_resort()
        .build(
            CIPHERSUITE,
            &client.provider,
            &client.signer,
            client.credential.clone(),
        )
        .unwrap()
        .key_package()
        .clone()
}

/// The KeyPackageRefs handed out, per client URI.
fn refs(_fed: &Federation, resp: &KeyMaterialResponse) -> Vec<(String, Vec<u8>)> {
    let crypto = openmls_rust_crypto::RustCrypto::default();
    resp.clients
        .iter()
        .filter_map(|c| match &c.material {
            ClientMaterial::Success(kp) => Some((
                c.client_uri.as_str().unwrap().to_owned(),
                kp_ref(&crypto, kp),
            )),
            _ => None,
        })
        .collect()
}

fn kp_ref(crypto: &openmls_rust_crypto::RustCrypto, kp: &KeyPackageIn) -> Vec<u8> {
    kp.clone()
        .validate(crypto, openmls::prelude::ProtocolVersion::Mls10)
        .unwrap()
        .hash_ref(crypto)
        .unwrap()
        .as_slice()
        .to_vec()
}

fn federation_client_as(fed: &Federation, domain: &str) -> reqwest::Client {
    let p = fed.provider(domain);
    let identity =
        ProviderIdentity::from_files(domain, &p.config.tls.cert, &p.config.tls.key).unwrap();
    fed.federation_client(Some(&identity))
}

fn percent(uri: &str) -> String {
    uri.replace(':', "%3A").replace('/', "%2F")
}

/// POSTs a body to `to`'s federation keyMaterial endpoint as `from`.
async fn federation_post(
    fed: &Federation,
    from: &str,
    to: &str,
    target: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    federation_client_as(fed, from)
        .post(format!(
            "{}/v1/keyMaterial/{}",
            fed.federation_url(to),
            percent(target)
        ))
        .header("from", format!("mimi@{from}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn claims_via_hub_and_follower_with_welcome_routes() {
    let fed = start_federation(Backend::Sqlite).await;
    let bob = "mimi://b.example/u/bob";
    let laptop = Device::new(&fed, "mimi://b.example/d/bob/laptop").await;
    let phone = Device::new(&fed, "mimi://b.example/d/bob/phone").await;
    laptop.upload(&fed, 2, false).await;
    phone.upload(&fed, 2, false).await;
    let alice = Device::new(&fed, "mimi://a.example/d/alice/laptop").await;

    // The directory names our endpoints.
    let dir = federation_client_as(&fed, "c.example")
        .get(format!(
            "{}/.well-known/mimi-protocol-directory",
            fed.federation_url("b.example")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(dir.status(), StatusCode::OK);
    assert!(
        dir.text()
            .await
            .unwrap()
            .contains("/v1/keyMaterial/{targetUser}")
    );

    // First claim: one per device, routes recorded on the hub and target.
    let first = alice.claim(&fed, bob, ROOM).await;
    assert_eq!(first.user_status, KeyMaterialUserCode::Success);
    let first_refs = refs(&fed, &first);
    let clients: HashSet<_> = first_refs.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(
        clients,
        HashSet::from([laptop.client.device.clone(), phone.client.device.clone()])
    );
    let a_store = fed.provider("a.example").server().state.store.clone();
    let b_store = fed.provider("b.example").server().state.store.clone();
    for (client, r) in &first_refs {
        assert_eq!(
            a_store.provider_for_key_package_ref(r).await.unwrap(),
            Some("b.example".into())
        );
        assert_eq!(
            b_store.client_for_key_package_ref(r).await.unwrap(),
            Some(client.clone())
        );
    }

    // Second claim: different KeyPackages; third: exhausted.
    let second = alice.claim(&fed, bob, ROOM).await;
    assert_eq!(second.user_status, KeyMaterialUserCode::Success);
    let second_refs = refs(&fed, &second);
    assert_eq!(second_refs.len(), 2);
    for r in &second_refs {
        assert!(!first_refs.contains(r), "a KeyPackage was handed out twice");
    }
    let third = alice.claim(&fed, bob, ROOM).await;
    assert_eq!(third.user_status, KeyMaterialUserCode::NoCompatibleMaterial);
    assert_eq!(third.clients.len(), 2);
    assert!(
        third
            .clients
            .iter()
            .all(|c| c.material == ClientMaterial::KeyMaterialExhausted)
    );

    // A last-resort KeyPackage is handed out again and again.
    laptop.upload(&fed, 1, true).await;
    let lr1 = alice.claim(&fed, bob, ROOM).await;
    assert_eq!(lr1.user_status, KeyMaterialUserCode::PartialSuccess);
    let lr2 = alice.claim(&fed, bob, ROOM).await;
    assert_eq!(refs(&fed, &lr1), refs(&fed, &lr2));

    // Through a follower: c.example → a.example (hub) → b.example.
    phone.upload(&fed, 1, false).await;
    let carol = Device::new(&fed, "mimi://c.example/d/carol/tablet").await;
    let via = carol.claim(&fed, bob, ROOM).await;
    assert_eq!(via.user_status, KeyMaterialUserCode::Success);
    let via_refs = refs(&fed, &via);
    let (_, phone_ref) = via_refs
        .iter()
        .find(|(c, _)| c == &phone.client.device)
        .expect("the phone's new KeyPackage");
    assert_eq!(
        a_store
            .provider_for_key_package_ref(phone_ref)
            .await
            .unwrap(),
        Some("b.example".into())
    );
    assert_eq!(
        b_store.client_for_key_package_ref(phone_ref).await.unwrap(),
        Some(phone.client.device.clone())
    );
    fed.shutdown().await;
}

#[tokio::test]
async fn uploads_are_validated() {
    let fed = start_federation(Backend::Sqlite).await;
    let laptop = Device::new(&fed, "mimi://b.example/d/bob/laptop").await;
    let other = TestClient::new("mimi://b.example/d/bob/phone");
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (vec![], "empty"),
        (vec![b"garbage".to_vec()], "garbage"),
        (
            vec![mls_message(other.key_package())],
            "another device's credential",
        ),
    ];
    for (kps, what) in cases {
        let (status, body) = upload(&fed, "b.example", &laptop.token, kps, false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert!(
            !body.is_empty() && !body.contains('\n'),
            "{what}: one-line reason"
        );
    }
    // A bare KeyPackage (not wrapped in an MLSMessage) is taken too, and
    // claimed like any other (-06 §5.2).
    let bare = laptop
        .client
        .key_package()
        .tls_serialize_detached()
        .unwrap();
    let (status, body) = upload(&fed, "b.example", &laptop.token, vec![bare], false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alice = Device::new(&fed, "mimi://a.example/d/alice/laptop").await;
    let claimed = alice.claim(&fed, "mimi://b.example/u/bob", ROOM).await;
    assert_eq!(claimed.user_status, KeyMaterialUserCode::Success);
    assert!(matches!(
        claimed.clients[0].material,
        ClientMaterial::Success(_)
    ));
    let p = fed.provider("b.example");
    let resp = p
        .client_api
        .post(format!("{}/client/v1/key-packages", p.client_base))
        .bearer_auth(&laptop.token)
        .json(&json!({"key_packages": ["!!!"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // No token: 401.
    let resp = p
        .client_api
        .post(format!("{}/client/v1/key-packages", p.client_base))
        .json(&json!({"key_packages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The hub key for external_senders.
    let resp = p
        .client_api
        .get(format!("{}/client/v1/hub", p.client_base))
        .bearer_auth(&laptop.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let hub: serde_json::Value = resp.json().await.unwrap();
    let bytes = B64
        .decode(hub["external_sender"].as_str().unwrap())
        .unwrap();
    let sender: openmls::prelude::ExternalSender = decode_exact(&bytes).unwrap();
    let (_, credential) = mimi_protocol::msgs::group_info::external_sender_parts(&sender).unwrap();
    let basic = openmls::prelude::BasicCredential::try_from(credential).unwrap();
    assert_eq!(basic.identity(), b"mimi://b.example");
    fed.shutdown().await;
}

/// `POST /client/v1/key-packages/own`: a device's own KeyPackage (for its
/// external join proposal) is checked like an upload, never claimable by
/// others, and routes the Welcome to the device (C29).
#[tokio::test]
async fn an_own_key_package_is_never_handed_out() {
    let fed = start_federation(Backend::Sqlite).await;
    let laptop = Device::new(&fed, "mimi://b.example/d/bob/laptop").await;
    let other = TestClient::new("mimi://b.example/d/bob/phone");
    let p = fed.provider("b.example");
    let own = |kp: Vec<u8>| {
        p.client_api
            .post(format!("{}/client/v1/key-packages/own", p.client_base))
            .bearer_auth(&laptop.token)
            .json(&json!({"key_package": B64.encode(kp)}))
            .send()
    };
    for (kp, what) in [
        (b"garbage".to_vec(), "garbage"),
        (
            mls_message(other.key_package()),
            "another device's credential",
        ),
    ] {
        let resp = own(kp).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
    }
    let kp = laptop.client.key_package();
    let resp = own(mls_message(kp.clone())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    // Not in the pool: a claim finds nothing to hand out.
    let alice = Device::new(&fed, "mimi://a.example/d/alice/laptop").await;
    let claimed = alice.claim(&fed, "mimi://b.example/u/bob", ROOM).await;
    assert!(
        claimed
            .clients
            .iter()
            .all(|c| !matches!(c.material, ClientMaterial::Success(_))),
        "{claimed:?}"
    );
    // Recorded for Welcome routing.
    let kp_ref = kp
        .hash_ref(&openmls_rust_crypto::RustCrypto::default())
        .unwrap();
    assert_eq!(
        p.server()
            .state
            .store
            .client_for_key_package_ref(kp_ref.as_slice())
            .await
            .unwrap()
            .as_deref(),
        Some("mimi://b.example/d/bob/laptop")
    );
    fed.shutdown().await;
}

#[tokio::test]
async fn refusals_claim_nothing() {
    let fed = start_federation(Backend::Sqlite).await;
    let bob = "mimi://b.example/u/bob";
    let laptop = Device::new(&fed, "mimi://b.example/d/bob/laptop").await;
    laptop.upload(&fed, 3, false).await;
    let alice = Device::new(&fed, "mimi://a.example/d/alice/laptop").await;

    // Forged signature: 400, nothing claimed (client API and federation).
    let mut forged = alice.request(bob, ROOM);
    forged.key_material_request_signature = VLBytes::new(vec![0; 64]);
    let resp = alice.post_raw(&fed, encode(&forged).unwrap()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = federation_post(
        &fed,
        "a.example",
        "b.example",
        bob,
        encode(&forged).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(laptop.single_use_left(&fed).await, 3);

    // Garbage bodies: 400.
    let resp = alice.post_raw(&fed, b"\x01\x02garbage".to_vec()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = federation_post(&fed, "a.example", "b.example", bob, vec![]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // A request framed for another protocol: its remainder cannot be
    // parsed, so incompatibleProtocol for the target it names (divergences
    // S24), nothing claimed. A head cut short is still 400.
    let mut other_protocol = encode(&alice.request(bob, ROOM)).unwrap();
    other_protocol[0] = 2;
    let resp = federation_post(&fed, "a.example", "b.example", bob, other_protocol.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: KeyMaterialResponse = decode_exact(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        answer.user_status,
        KeyMaterialUserCode::IncompatibleProtocol
    );
    assert_eq!(answer.user_uri.uri.as_slice(), bob.as_bytes());
    assert_eq!(answer.protocol, Protocol::Mls10);
    assert!(answer.clients.is_empty());
    let resp = federation_post(
        &fed,
        "a.example",
        "b.example",
        bob,
        other_protocol[..3].to_vec(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // A request signed by Alice but sent by c.example, for no room of c: 403.
    let body = encode(&alice.request(bob, "")).unwrap();
    let resp = federation_post(&fed, "c.example", "b.example", bob, body.clone()).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Path and body disagree: 400.
    let resp = federation_post(
        &fed,
        "a.example",
        "b.example",
        "mimi://b.example/u/other",
        body,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // A device asking in another user's name: 403.
    let mallory = Device::new(&fed, "mimi://a.example/d/mallory/pc").await;
    let resp = mallory
        .post_raw(&fed, encode(&alice.request(bob, ROOM)).unwrap())
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Neither target's provider nor hub: refused.
    let resp = federation_post(
        &fed,
        "a.example",
        "c.example",
        bob,
        encode(&alice.request(bob, ROOM)).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(laptop.single_use_left(&fed).await, 3);

    // Unknown user.
    let unknown = alice.claim(&fed, "mimi://b.example/u/nobody", ROOM).await;
    assert_eq!(unknown.user_status, KeyMaterialUserCode::UserUnknown);
    assert!(unknown.clients.is_empty());

    // Bob revokes Alice's consent (for any room): noConsent, nothing claimed.
    laptop
        .consent(
            &fed,
            json!({"operation": "revoke", "requester": alice.client.user(), "target": bob}),
        )
        .await;
    let refused = alice.claim(&fed, bob, ROOM).await;
    assert_eq!(refused.user_status, KeyMaterialUserCode::NoConsent);
    assert_eq!(laptop.single_use_left(&fed).await, 3);
    // ...then grants it for this room only.
    laptop.consent(&fed, json!({"operation": "grant", "requester": alice.client.user(), "target": bob, "room": ROOM})).await;
    let granted = alice.claim(&fed, bob, ROOM).await;
    assert_eq!(granted.user_status, KeyMaterialUserCode::Success);
    let other_room = alice.claim(&fed, bob, "mimi://a.example/r/other").await;
    assert_eq!(other_room.user_status, KeyMaterialUserCode::NoConsent);
    assert_eq!(laptop.single_use_left(&fed).await, 2);
    fed.shutdown().await;
}

/// A user who requires consent (profile `consent_required`) gets no
/// KeyPackage claimed by a requester without a grant: the keyMaterial
/// answer is `noConsent` and nothing is claimed; a grant for one room
/// opens that room only.
#[tokio::test]
async fn consent_required_refuses_key_material_without_a_grant() {
    let fed = start_federation(Backend::Sqlite).await;
    let bob = "mimi://b.example/u/bob";
    let laptop = Device::new(&fed, "mimi://b.example/d/bob/laptop").await;
    laptop.upload(&fed, 2, false).await;
    let p = fed.provider("b.example");
    let resp = p
        .client_api
        .put(format!("{}/client/v1/profile", p.client_base))
        .bearer_auth(&laptop.token)
        .json(&json!({"consent_required": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let alice = Device::new(&fed, "mimi://a.example/d/alice/laptop").await;

    let refused = alice.claim(&fed, bob, ROOM).await;
    assert_eq!(refused.user_status, KeyMaterialUserCode::NoConsent);
    assert!(refused.clients.is_empty());
    assert_eq!(laptop.single_use_left(&fed).await, 2);

    laptop.consent(&fed, json!({"operation": "grant", "requester": alice.client.user(), "target": bob, "room": ROOM})).await;
    let granted = alice.claim(&fed, bob, ROOM).await;
    assert_eq!(granted.user_status, KeyMaterialUserCode::Success);
    assert_eq!(laptop.single_use_left(&fed).await, 1);
    let other_room = alice.claim(&fed, bob, "mimi://a.example/r/other").await;
    assert_eq!(
        other_room.user_status,
        KeyMaterialUserCode::NoConsentForThisRoom
    );
    assert_eq!(laptop.single_use_left(&fed).await, 1);
    fed.shutdown().await;
}

#[tokio::test]
async fn rate_limited_per_requesting_user() {
    let fed = start_federation(Backend::Sqlite).await;
    let bob = "mimi://b.example/u/bob";
    let laptop = Device::new(&fed, "mimi://b.example/d/bob/laptop").await;
    laptop.upload(&fed, 1, true).await;
    let alice = Device::new(&fed, "mimi://a.example/d/alice/laptop").await;
    let body = encode(&alice.request(bob, "")).unwrap();
    let mut limited = None;
    for i in 0..30 {
        let resp = federation_post(&fed, "a.example", "b.example", bob, body.clone()).await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, resp));
            break;
        }
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let (i, resp) = limited.expect("rate limited");
    assert_eq!(i, 20, "burst of 20");
    assert!(resp.headers().contains_key("retry-after"));
    // Another requesting user is not affected.
    let carol = Device::new(&fed, "mimi://a.example/d/carol/laptop").await;
    let resp = federation_post(
        &fed,
        "a.example",
        "b.example",
        bob,
        encode(&carol.request(bob, "")).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    fed.shutdown().await;
}

impl Device {
    /// A requester with real MLS keys but no registration: the target's
    /// provider checks only the request's signature and credential.
    fn unregistered(device: &str) -> Self {
        Self {
            client: TestClient::new(device),
            token: String::new(),
            domain: device
                .trim_start_matches("mimi://")
                .split('/')
                .next()
                .unwrap()
                .into(),
        }
    }
}

/// `GET /metrics` of a provider.
async fn metrics_of(fed: &Federation, domain: &str) -> String {
    let p = fed.provider(domain);
    let resp = p
        .client_api
        .get(format!("{}/metrics", p.client_base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

/// A provider naming a new user in every request still meets its
/// provider-wide limit; other providers are not affected, and the limiter
/// and metrics of the other servers in this process saw nothing.
#[tokio::test]
async fn rate_limited_per_requesting_provider_whatever_users_it_names() {
    const PER_PROVIDER: u32 = 5;
    let mut fed = start_federation(Backend::Sqlite).await;
    let b = fed.provider_mut("b.example");
    b.config.limits.key_material_per_provider_per_minute = PER_PROVIDER;
    b.restart().await;
    let bob = "mimi://b.example/u/bob";
    let laptop = Device::new(&fed, "mimi://b.example/d/bob/laptop").await;
    laptop.upload(&fed, 1, true).await;
    for i in 0..PER_PROVIDER {
        let user = Device::unregistered(&format!("mimi://a.example/d/user{i}/laptop"));
        let body = encode(&user.request(bob, "")).unwrap();
        let resp = federation_post(&fed, "a.example", "b.example", bob, body).await;
        assert_eq!(resp.status(), StatusCode::OK, "request {i}");
    }
    let fresh = Device::unregistered("mimi://a.example/d/fresh/laptop");
    let resp = federation_post(
        &fed,
        "a.example",
        "b.example",
        bob,
        encode(&fresh.request(bob, "")).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        retry_after,
        u64::from(60 / PER_PROVIDER),
        "one token at 5 per minute"
    );
    // Another provider's users are not affected.
    let carol = Device::unregistered("mimi://c.example/d/carol/laptop");
    let resp = federation_post(
        &fed,
        "c.example",
        "b.example",
        bob,
        encode(&carol.request(bob, "")).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Only b.example's runtime saw these requests.
    let limiter_len = |domain: &str| {
        fed.provider(domain)
            .server()
            .state
            .runtime
            .key_material_limiter()
            .len()
    };
    assert!(limiter_len("b.example") > 0);
    assert_eq!(limiter_len("a.example"), 0);
    assert_eq!(limiter_len("c.example"), 0);
    let key_material_429 = r#"route="/v1/keyMaterial/{targetUser}",status="429""#;
    assert!(
        metrics_of(&fed, "b.example")
            .await
            .contains(key_material_429)
    );
    assert!(!metrics_of(&fed, "a.example").await.contains("keyMaterial"));
    assert!(!metrics_of(&fed, "c.example").await.contains("keyMaterial"));
    fed.shutdown().await;
}

/// M concurrent claims for a user with K KeyPackages hand out exactly
/// min(M, K) distinct KeyPackages.
async fn claim_race(backend: Backend) {
    const K: usize = 5;
    const M: usize = 12;
    let fed = start_federation(backend).await;
    let bob = "mimi://b.example/u/bob";
    let laptop = Device::new(&fed, "mimi://b.example/d/bob/laptop").await;
    laptop.upload(&fed, K, false).await;
    let alice = Device::new(&fed, "mimi://a.example/d/alice/laptop").await;
    let claims = futures_join(&fed, &alice, bob, M).await;
    let got: Vec<Vec<u8>> = claims
        .iter()
        .flat_map(|r| refs(&fed, r))
        .map(|(_, r)| r)
        .collect();
    let distinct: HashSet<_> = got.iter().cloned().collect();
    assert_eq!(got.len(), K.min(M));
    assert_eq!(distinct.len(), K.min(M));
    fed.shutdown().await;
}

async fn futures_join(
    fed: &Federation,
    device: &Device,
    target: &str,
    m: usize,
) -> Vec<KeyMaterialResponse> {
    let mut set = tokio::task::JoinSet::new();
    let p = fed.provider(&device.domain);
    for _ in 0..m {
        let client = p.client_api.clone();
        let url = format!("{}/client/v1/key-material", p.client_base);
        let token = device.token.clone();
        let body = encode(&device.request(target, ROOM)).unwrap();
        set.spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            decode_exact::<KeyMaterialResponse>(&resp.bytes().await.unwrap()).unwrap()
        });
    }
    set.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_sqlite() {
    claim_race(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_postgres() {
    claim_race(Backend::Postgres {
        admin_url: common::postgres_admin_url(),
    })
    .await;
}

/// -06 §4.1 with a directory that places the endpoints on another host
/// than the provider's domain (as -06 §5.1's own example does): every
/// provider advertises `https://127.0.0.1:<port>/…`. The hub's request to
/// Bob's provider goes to that address, yet names `b.example` in `Host`
/// and authenticates it by TLS, so it is answered.
#[tokio::test]
async fn endpoints_on_another_host_than_the_domain_are_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = mimi_testkit::federation::Options::new(Backend::Sqlite);
    options.endpoints_off_domain = true;
    let fed = Federation::start_in(dir.path(), options).await.unwrap();
    let bob = "mimi://b.example/u/bob";
    let laptop = Device::new(&fed, "mimi://b.example/d/bob/laptop").await;
    laptop.upload(&fed, 1, false).await;
    let alice = Device::new(&fed, "mimi://a.example/d/alice/laptop").await;

    let directory = federation_client_as(&fed, "a.example")
        .get(format!(
            "{}/.well-known/mimi-protocol-directory",
            fed.federation_url("b.example")
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        directory.contains("\"https://127.0.0.1:") && !directory.contains("b.example"),
        "{directory}"
    );

    let claimed = alice.claim(&fed, bob, ROOM).await;
    assert_eq!(claimed.user_status, KeyMaterialUserCode::Success);
    assert_eq!(claimed.clients.len(), 1);
    fed.shutdown().await;
}
