//! Device registration on the client API of a real provider.

mod common;

use common::{Backend, start_federation};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn devices_register_and_get_distinct_tokens() {
    let fed = start_federation(Backend::Sqlite).await;
    let a = fed.provider("a.example");
    let url = format!("{}/client/v1/devices", a.client_base);
    let register = |user: &str, device: &str| {
        a.client_api
            .post(&url)
            .json(&json!({"user": user, "device": device}))
            .send()
    };

    let resp = register(
        "mimi://a.example/u/alice",
        "mimi://a.example/d/alice/laptop",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let first: serde_json::Value = resp.json().await.unwrap();
    let resp = register("mimi://a.example/u/alice", "mimi://a.example/d/alice/phone")
        .await
        .unwrap();
    let second: serde_json::Value = resp.json().await.unwrap();
    assert_ne!(first["token"], second["token"]);
    assert_eq!(first["token"].as_str().unwrap().len(), 64);

    // Another user cannot take over Alice's device.
    let resp = register(
        "mimi://a.example/u/mallory",
        "mimi://a.example/d/alice/laptop",
    )
    .await
    .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "device URI names alice, not mallory"
    );
    // Users of other providers cannot register here.
    let resp = register("mimi://b.example/u/bob", "mimi://b.example/d/bob/phone")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Garbage is a 4xx with a reason, not a crash.
    let resp = a
        .client_api
        .post(&url)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    let resp = a
        .client_api
        .get(format!("{}/health", a.client_base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    fed.shutdown().await;
}

#[tokio::test]
async fn closed_registration_needs_the_admin_token() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let b = fed.provider_mut("b.example");
    b.config.client_api.open_registration = false;
    b.config.client_api.admin_token = Some("operator-secret".into());
    b.restart().await;
    let b = fed.provider("b.example");
    let url = format!("{}/client/v1/devices", b.client_base);
    let body = json!({"user": "mimi://b.example/u/bob", "device": "mimi://b.example/d/bob/phone"});
    let resp = b.client_api.post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = b
        .client_api
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = b
        .client_api
        .post(&url)
        .bearer_auth("operator-secret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    fed.shutdown().await;
}
