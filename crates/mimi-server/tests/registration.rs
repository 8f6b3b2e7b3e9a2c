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

/// Re-registering an existing device id replaces its token only when asked
/// to ("replace") and then only for the holder of its current token or the
/// operator (admin token); otherwise 409 (not asked) or 403 (not allowed)
/// and the old token keeps working.
#[tokio::test]
async fn reregistering_a_device_needs_its_token_or_the_admin_token() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let a = fed.provider_mut("a.example");
    a.config.client_api.admin_token = Some("operator-secret".into());
    a.restart().await;
    let a = fed.provider("a.example");
    let url = format!("{}/client/v1/devices", a.client_base);
    let body =
        json!({"user": "mimi://a.example/u/alice", "device": "mimi://a.example/d/alice/laptop"});
    let replace = json!({"user": "mimi://a.example/u/alice", "device": "mimi://a.example/d/alice/laptop", "replace": true});
    let register = |bearer: Option<&str>| {
        let body = if bearer.is_some() { &replace } else { &body };
        let mut req = a.client_api.post(&url).json(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    // The token works when the device may fetch its events.
    let works = |token: String| {
        a.client_api
            .get(format!("{}/client/v1/events", a.client_base))
            .bearer_auth(token)
            .send()
    };
    let token_of = |resp: reqwest::Response| async move {
        assert_eq!(resp.status(), StatusCode::CREATED);
        let v: serde_json::Value = resp.json().await.unwrap();
        v["token"].as_str().unwrap().to_owned()
    };

    let first = token_of(register(None).await.unwrap()).await;
    // Same user, same device id, no token: refused, with a reason.
    let resp = register(None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(resp.text().await.unwrap().contains("already registered"));
    // Another device's token does not authorise it either.
    let other = token_of(
        a.client_api
            .post(&url)
            .json(&json!({"user": "mimi://a.example/u/alice", "device": "mimi://a.example/d/alice/phone"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let resp = register(Some(&other)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("current token"));
    // Without "replace" even the admin token replaces nothing.
    let resp = a
        .client_api
        .post(&url)
        .bearer_auth("operator-secret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(works(first.clone()).await.unwrap().status(), StatusCode::OK);

    // With its current token: re-registered, the old token is gone.
    let second = token_of(register(Some(&first)).await.unwrap()).await;
    assert_ne!(second, first);
    assert_eq!(
        works(first).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        works(second.clone()).await.unwrap().status(),
        StatusCode::OK
    );

    // With the admin token: re-registered.
    let third = token_of(register(Some("operator-secret")).await.unwrap()).await;
    assert_eq!(
        works(second).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(works(third).await.unwrap().status(), StatusCode::OK);
    fed.shutdown().await;
}
