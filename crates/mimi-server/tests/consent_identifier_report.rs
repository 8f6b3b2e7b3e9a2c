//! Consent (-06 §5.7), identifierQuery (-06 §5.8) and reportAbuse
//! (-06 §5.9) between real providers over mutual TLS.

mod common;

use common::{Backend, Federation, start_federation};
use mimi_protocol::msgs::identifier::{
    IdentifierQueryCode, IdentifierRequest, IdentifierResponse, QueryElement, SearchType,
};
use mimi_protocol::msgs::{
    AbuseReport, AbuseType, AbusiveMessage, ConsentEntry, ConsentOperation, Frank,
};
use mimi_protocol::{IdentifierUri, decode_exact, encode};
use mimi_server::tls::ProviderIdentity;
use openmls::prelude::AppDataDictionary;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tls_codec::VLBytes;

async fn client_post(
    fed: &Federation,
    domain: &str,
    token: &str,
    path: &str,
    body: Value,
) -> StatusCode {
    let p = fed.provider(domain);
    p.client_api
        .post(format!("{}{path}", p.client_base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn put_profile(fed: &Federation, domain: &str, token: &str, body: Value) {
    let p = fed.provider(domain);
    let resp = p
        .client_api
        .put(format!("{}/client/v1/profile", p.client_base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

fn federation_client_as(fed: &Federation, domain: &str) -> reqwest::Client {
    let p = fed.provider(domain);
    let identity =
        ProviderIdentity::from_files(domain, &p.config.tls.cert, &p.config.tls.key).unwrap();
    fed.federation_client(Some(&identity))
}

fn percent(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

async fn fed_post(
    fed: &Federation,
    from: &str,
    to: &str,
    path: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    federation_client_as(fed, from)
        .post(format!("{}{path}", fed.federation_url(to)))
        .header("from", format!("mimi@{from}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

fn entry(op: ConsentOperation, requester: &str, target: &str, room: Option<&str>) -> Vec<u8> {
    encode(&ConsentEntry {
        consent_operation: op,
        requester_uri: IdentifierUri::new(requester),
        target_uri: IdentifierUri::new(target),
        room_id: room.map(IdentifierUri::new),
        client_key_packages: vec![],
        consent_extensions: AppDataDictionary::new(),
    })
    .unwrap()
}

const ALICE: &str = "mimi://a.example/u/alice";
const BOB: &str = "mimi://b.example/u/bob";

#[tokio::test]
async fn consent_request_grant_revoke() {
    let fed = start_federation(Backend::Sqlite).await;
    let alice = fed.register("mimi://a.example/d/alice/laptop").await;
    let bob = fed.register("mimi://b.example/d/bob/phone").await;
    let a_store = fed.provider("a.example").server().state.store.clone();
    let b_store = fed.provider("b.example").server().state.store.clone();
    let ops = |store: std::sync::Arc<dyn mimi_store::Store>| async move {
        store
            .consent_entries(ALICE, BOB)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.room_id, e.operation.as_str().to_string()))
            .collect::<Vec<_>>()
    };

    // Alice asks Bob: stored at both providers.
    let s = client_post(
        &fed,
        "a.example",
        &alice,
        "/client/v1/consent",
        json!({"operation": "request", "requester": ALICE, "target": BOB}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        ops(b_store.clone()).await,
        vec![(None, "request".to_string())]
    );
    assert_eq!(
        ops(a_store.clone()).await,
        vec![(None, "request".to_string())]
    );
    // Bob grants: a.example learns it through updateConsent.
    let s = client_post(
        &fed,
        "b.example",
        &bob,
        "/client/v1/consent",
        json!({"operation": "grant", "requester": ALICE, "target": BOB}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        ops(a_store.clone()).await,
        vec![(None, "grant".to_string())]
    );
    // Bob revokes for one room.
    let room = "mimi://a.example/r/x";
    let s = client_post(
        &fed,
        "b.example",
        &bob,
        "/client/v1/consent",
        json!({"operation": "revoke", "requester": ALICE, "target": BOB, "room": room}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        ops(a_store.clone()).await,
        vec![
            (None, "grant".to_string()),
            (Some(room.to_string()), "revoke".to_string())
        ]
    );
    // Users act only for themselves; bad operations are 400.
    let s = client_post(
        &fed,
        "a.example",
        &alice,
        "/client/v1/consent",
        json!({"operation": "grant", "requester": ALICE, "target": BOB}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let s = client_post(
        &fed,
        "a.example",
        &alice,
        "/client/v1/consent",
        json!({"operation": "maybe", "requester": ALICE, "target": BOB}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Raw federation checks (-06 §5.7).
    let carol = "mimi://c.example/u/carol";
    let req = |op| entry(op, carol, BOB, None);
    let status = |r: reqwest::Response| r.status();
    // A cancel without a matching request: 201, nothing stored.
    let r = fed_post(
        &fed,
        "c.example",
        "b.example",
        "/v1/requestConsent/b.example",
        req(ConsentOperation::Cancel),
    )
    .await;
    assert_eq!(status(r), StatusCode::CREATED);
    assert!(
        b_store
            .consent_entries(carol, BOB)
            .await
            .unwrap()
            .is_empty()
    );
    // requesterUri not of the sender: 403.
    let r = fed_post(
        &fed,
        "a.example",
        "b.example",
        "/v1/requestConsent/b.example",
        req(ConsentOperation::Request),
    )
    .await;
    assert_eq!(status(r), StatusCode::FORBIDDEN);
    // targetUri not ours: 404.
    let r = fed_post(
        &fed,
        "c.example",
        "b.example",
        "/v1/requestConsent/b.example",
        entry(ConsentOperation::Request, carol, ALICE, None),
    )
    .await;
    assert_eq!(status(r), StatusCode::NOT_FOUND);
    // A grant is not a requestConsent; garbage is 400.
    let r = fed_post(
        &fed,
        "c.example",
        "b.example",
        "/v1/requestConsent/b.example",
        req(ConsentOperation::Grant),
    )
    .await;
    assert_eq!(status(r), StatusCode::BAD_REQUEST);
    let r = fed_post(
        &fed,
        "c.example",
        "b.example",
        "/v1/requestConsent/b.example",
        b"junk".to_vec(),
    )
    .await;
    assert_eq!(status(r), StatusCode::BAD_REQUEST);
    // updateConsent: targetUri must be the sender's.
    let r = fed_post(
        &fed,
        "c.example",
        "a.example",
        "/v1/updateConsent/a.example",
        entry(ConsentOperation::Revoke, ALICE, BOB, None),
    )
    .await;
    assert_eq!(status(r), StatusCode::FORBIDDEN);
    let r = fed_post(
        &fed,
        "c.example",
        "a.example",
        "/v1/updateConsent/a.example",
        entry(ConsentOperation::Revoke, ALICE, carol, None),
    )
    .await;
    assert_eq!(status(r), StatusCode::CREATED);
    fed.shutdown().await;
}

fn query(elements: Vec<(SearchType, &str)>) -> Vec<u8> {
    encode(&IdentifierRequest {
        query_elements: elements
            .into_iter()
            .map(|(search_type, v)| QueryElement {
                search_type,
                search_value: VLBytes::new(v.as_bytes().to_vec()),
            })
            .collect(),
        id_request_extensions: AppDataDictionary::new(),
    })
    .unwrap()
}

async fn ask(fed: &Federation, elements: Vec<(SearchType, &str)>) -> IdentifierResponse {
    let r = fed_post(
        fed,
        "a.example",
        "b.example",
        "/v1/identifierQuery/b.example",
        query(elements),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    decode_exact(&r.bytes().await.unwrap()).unwrap()
}

fn uris(r: &IdentifierResponse) -> Vec<&str> {
    r.uri.iter().map(|u| u.as_str().unwrap()).collect()
}

#[tokio::test]
async fn identifier_query_respects_discoverability() {
    let fed = start_federation(Backend::Sqlite).await;
    let bob = fed.register("mimi://b.example/d/bob/phone").await;
    let dan = fed.register("mimi://b.example/d/dan/phone").await;
    let eve = fed.register("mimi://b.example/d/eve/phone").await;
    put_profile(
        &fed,
        "b.example",
        &bob,
        json!({"handle": "@bob", "given_name": "Bob",
        "family_name": "Builder", "email": "bob@b.example", "discoverability": "search"}),
    )
    .await;
    put_profile(
        &fed,
        "b.example",
        &dan,
        json!({"handle": "@dan", "given_name": "Dan",
        "family_name": "Builder", "discoverability": "exact"}),
    )
    .await;
    put_profile(
        &fed,
        "b.example",
        &eve,
        json!({"handle": "@eve", "discoverability": "none"}),
    )
    .await;

    let r = ask(&fed, vec![(SearchType::Handle, "@bob")]).await;
    assert_eq!(r.response_code, IdentifierQueryCode::Success);
    assert_eq!(uris(&r), vec!["mimi://b.example/u/bob"]);
    assert_eq!(r.found_profiles.len(), 1);
    let r = ask(&fed, vec![(SearchType::Handle, "@dan")]).await;
    assert_eq!(uris(&r), vec!["mimi://b.example/u/dan"]);
    // Eve is not discoverable at all.
    let r = ask(&fed, vec![(SearchType::Handle, "@eve")]).await;
    assert_eq!(r.response_code, IdentifierQueryCode::NotFound);
    assert!(r.uri.is_empty());
    // Dan (exact) is not found by a partial name; Bob (search) is.
    let r = ask(&fed, vec![(SearchType::PartialName, "build")]).await;
    assert_eq!(uris(&r), vec!["mimi://b.example/u/bob"]);
    let r = ask(&fed, vec![(SearchType::WholeProfile, "b.example")]).await;
    assert_eq!(uris(&r), vec!["mimi://b.example/u/bob"]);
    // Elements are ANDed.
    let r = ask(
        &fed,
        vec![
            (SearchType::Handle, "@dan"),
            (SearchType::PartialName, "dan"),
        ],
    )
    .await;
    assert_eq!(r.response_code, IdentifierQueryCode::NotFound);
    let r = ask(
        &fed,
        vec![
            (SearchType::Handle, "@bob"),
            (SearchType::Email, "bob@b.example"),
        ],
    )
    .await;
    assert_eq!(r.response_code, IdentifierQueryCode::Success);
    // Unsupported fields and empty queries.
    let r = ask(
        &fed,
        vec![(
            SearchType::OidcStdClaim {
                claim_name: VLBytes::new(b"email".to_vec()),
            },
            "x",
        )],
    )
    .await;
    assert_eq!(r.response_code, IdentifierQueryCode::UnsupportedField);
    let r = ask(&fed, vec![]).await;
    assert_eq!(r.response_code, IdentifierQueryCode::Forbidden);
    // Wrong domain, garbage, bad profile.
    let r = fed_post(
        &fed,
        "a.example",
        "b.example",
        "/v1/identifierQuery/c.example",
        query(vec![(SearchType::Handle, "@bob")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = fed_post(
        &fed,
        "a.example",
        "b.example",
        "/v1/identifierQuery/b.example",
        vec![9, 9, 9],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let p = fed.provider("b.example");
    let resp = p
        .client_api
        .put(format!("{}/client/v1/profile", p.client_base))
        .bearer_auth(&bob)
        .json(&json!({"discoverability": "everyone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    fed.shutdown().await;
}

/// A report whose one message carries a made-up frank (refused: the hub
/// verifies franks), or one without messages.
fn report(with_message: bool) -> Vec<u8> {
    encode(&AbuseReport {
        reporting_user: IdentifierUri::new("mimi://c.example/u/carol"),
        alleged_abuser_uri: IdentifierUri::new("mimi://b.example/u/mallory"),
        reason_code: AbuseType::RESERVED,
        note: VLBytes::new(b"spam".to_vec()),
        messages: [AbusiveMessage {
            message_content: VLBytes::new(b"buy now".to_vec()),
            frank: Frank {
                server_frank: [7; 32],
                franking_signature_ciphersuite: mimi_protocol::msgs::CipherSuite(1),
                franking_integrity_signature: VLBytes::new(vec![1; 64]),
            },
            accepted_timestamp: 1,
        }]
        .into_iter()
        .filter(|_| with_message)
        .collect(),
        abuse_extensions: AppDataDictionary::new(),
    })
    .unwrap()
}

#[tokio::test]
async fn unverifiable_reports_from_strangers_are_refused() {
    let mut fed = start_federation(Backend::Sqlite).await;
    {
        let a = fed.provider_mut("a.example");
        a.config.client_api.admin_token = Some("operator-secret".into());
        a.restart().await;
    }
    let room = "mimi://a.example/r/x";
    fed.provider("a.example")
        .server()
        .state
        .store
        .create_room(mimi_store::NewRoom {
            room_id: room.into(),
            epoch: 0,
            group_state: vec![],
            created_at_ms: 0,
            fixed_membership_key: None,
            parent_room: None,
        })
        .await
        .unwrap();
    let path = format!("/v1/reportAbuse/{}", percent(room));
    let r = fed_post(&fed, "c.example", "a.example", &path, report(true)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Without messages there is no frank to verify: c.example has no
    // participant in the room, so its report is refused and not stored.
    let r = fed_post(&fed, "c.example", "a.example", &path, report(false)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Unknown room, a room of another hub, garbage.
    let other = format!("/v1/reportAbuse/{}", percent("mimi://a.example/r/none"));
    let r = fed_post(&fed, "c.example", "a.example", &other, report(false)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let other = format!("/v1/reportAbuse/{}", percent("mimi://b.example/r/x"));
    let r = fed_post(&fed, "c.example", "a.example", &other, report(false)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = fed_post(&fed, "c.example", "a.example", &path, b"junk".to_vec()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let a = fed.provider("a.example");
    let url = format!("{}/client/v1/admin/reports", a.client_base);
    let resp = a.client_api.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = a
        .client_api
        .get(&url)
        .bearer_auth("operator-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let list: Vec<Value> = resp.json().await.unwrap();
    assert!(list.is_empty(), "{list:?}");
    fed.shutdown().await;
}

#[tokio::test]
async fn consent_required_needs_a_grant() {
    let fed = start_federation(Backend::Sqlite).await;
    let bob = fed.register("mimi://b.example/d/bob/phone").await;
    put_profile(&fed, "b.example", &bob, json!({"consent_required": true})).await;
    let b = fed.provider("b.example").server().state.clone();
    let refusal = |room: Option<&'static str>| {
        let b = b.clone();
        async move {
            mimi_server::federation::consent::refusal(&b, ALICE, BOB, room)
                .await
                .unwrap()
        }
    };
    use mimi_protocol::msgs::key_material::KeyMaterialUserCode as Code;
    assert_eq!(refusal(None).await, Some(Code::NoConsent));
    let r = fed_post(
        &fed,
        "a.example",
        "b.example",
        "/v1/requestConsent/b.example",
        entry(ConsentOperation::Request, ALICE, BOB, None),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(refusal(None).await, Some(Code::NoConsent));
    let s = client_post(&fed, "b.example", &bob, "/client/v1/consent",
        json!({"operation": "grant", "requester": ALICE, "target": BOB, "room": "mimi://a.example/r/x"})).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(refusal(Some("mimi://a.example/r/x")).await, None);
    assert_eq!(
        refusal(Some("mimi://a.example/r/y")).await,
        Some(Code::NoConsentForThisRoom)
    );
    fed.shutdown().await;
}
