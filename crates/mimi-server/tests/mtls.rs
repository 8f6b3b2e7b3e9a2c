//! Real mutual TLS over loopback against the production federation router
//! (`mimi_server::start`): b.example's server and clients presenting
//! certificates from the federation's dev CA, from a rogue CA, or none
//! (-06 §4.1, docs/security.md "Transport").

mod common;

use std::net::SocketAddr;

use common::{Backend, Federation, start_federation};
use mimi_server::tls::{self, DevCa, ProviderIdentity};
use reqwest::StatusCode;

/// A client trusting `trust` that presents `me`, resolving `target` to
/// `addr` (so a test can point a name at another provider's listener).
fn client(
    trust: &DevCa,
    me: Option<&ProviderIdentity>,
    target: &str,
    addr: SocketAddr,
) -> reqwest::Client {
    let config = tls::client_config(tls::root_store(trust.cert_pem()).unwrap(), me).unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .resolve(target, addr)
        .build()
        .unwrap()
}

fn b_addr(fed: &Federation) -> SocketAddr {
    fed.provider("b.example").server().federation_addr
}

/// `POST /v1/notify/{roomId}` on b.example: the handler answers 403 unless
/// the authenticated source is the room's hub, so it shows which provider
/// the server identified.
async fn notify(
    http: &reqwest::Client,
    port: u16,
    room: &str,
    from: Option<&str>,
) -> reqwest::Result<(StatusCode, String)> {
    let room = room.replace(':', "%3A").replace('/', "%2F");
    let mut req = http
        .post(format!("https://b.example:{port}/v1/notify/{room}"))
        .body(vec![0xff]);
    if let Some(from) = from {
        req = req.header("From", from);
    }
    let resp = req.send().await?;
    let status = resp.status();
    Ok((status, resp.text().await?))
}

#[tokio::test]
async fn authenticated_provider_is_identified_by_certificate_and_from() {
    let fed = start_federation(Backend::Sqlite).await;
    let a = fed.ca.issue("a.example").unwrap();
    let http = client(&fed.ca, Some(&a), "b.example", b_addr(&fed));
    let port = b_addr(&fed).port();

    // a.example is the hub of its own rooms: authenticated and authorised,
    // the garbage body is then refused by the handler.
    let (status, body) = notify(&http, port, "mimi://a.example/r/x", Some("mimi@a.example"))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // ... and not of c.example's.
    let (status, body) = notify(&http, port, "mimi://c.example/r/x", Some("mimi@a.example"))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("a.example"), "{body}");
    fed.shutdown().await;
}

#[tokio::test]
async fn from_header_not_matching_certificate_is_refused() {
    let fed = start_federation(Backend::Sqlite).await;
    let a = fed.ca.issue("a.example").unwrap();
    let http = client(&fed.ca, Some(&a), "b.example", b_addr(&fed));
    let port = b_addr(&fed).port();
    let room = "mimi://c.example/r/x";

    // Claiming to be c.example (the room's hub) with a.example's certificate.
    let (status, body) = notify(&http, port, room, Some("mimi@c.example"))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = notify(&http, port, room, Some("alice@a.example"))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = notify(&http, port, room, None).await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    fed.shutdown().await;
}

/// Every endpoint the directory advertises, except the directory itself,
/// answers 401 to a TLS client without a certificate.
#[tokio::test]
async fn every_federation_endpoint_refuses_a_client_without_certificate() {
    let fed = start_federation(Backend::Sqlite).await;
    let http = client(&fed.ca, None, "b.example", b_addr(&fed));
    let port = b_addr(&fed).port();

    let directory: serde_json::Value = http
        .get(format!(
            "https://b.example:{port}/.well-known/mimi-protocol-directory"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let templates: Vec<String> = directory
        .as_object()
        .expect("directory is a JSON object")
        .values()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert!(templates.len() >= 8, "{directory}");
    for template in templates {
        // Fill every `{variable}` with a percent-encoded MIMI URI.
        let mut url = String::new();
        let mut rest = template.as_str();
        while let Some(open) = rest.find('{') {
            url.push_str(&rest[..open]);
            let close = rest[open..].find('}').expect("closed expression") + open;
            url.push_str("mimi%3A%2F%2Fb.example%2Fr%2Fx");
            rest = &rest[close + 1..];
        }
        url.push_str(rest);
        let resp = http
            .post(&url)
            .header("From", "mimi@a.example")
            .body(vec![0])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{url}");
    }
    fed.shutdown().await;
}

#[tokio::test]
async fn certificate_from_another_ca_fails_the_handshake() {
    let fed = start_federation(Backend::Sqlite).await;
    let rogue_ca = DevCa::generate("rogue CA").unwrap();
    let rogue_a = rogue_ca.issue("a.example").unwrap();
    // The rogue client trusts the real CA (so it accepts the server), but
    // presents a certificate the server cannot chain to its roots.
    let http = client(&fed.ca, Some(&rogue_a), "b.example", b_addr(&fed));

    let result = notify(
        &http,
        b_addr(&fed).port(),
        "mimi://a.example/r/x",
        Some("mimi@a.example"),
    )
    .await;
    assert!(result.is_err(), "rogue certificate accepted: {result:?}");
    fed.shutdown().await;
}

#[tokio::test]
async fn server_must_authenticate_the_target_domain() {
    let fed = start_federation(Backend::Sqlite).await;
    let a = fed.ca.issue("a.example").unwrap();
    // c.example's server answers where the client expects b.example.
    let c_addr = fed.provider("c.example").server().federation_addr;
    let http = client(&fed.ca, Some(&a), "b.example", c_addr);

    let result = notify(
        &http,
        c_addr.port(),
        "mimi://a.example/r/x",
        Some("mimi@a.example"),
    )
    .await;
    assert!(
        result.is_err(),
        "client accepted a certificate for the wrong domain: {result:?}"
    );
    fed.shutdown().await;
}

#[tokio::test]
async fn host_naming_another_provider_is_misdirected() {
    let fed = start_federation(Backend::Sqlite).await;
    let a = fed.ca.issue("a.example").unwrap();
    // TLS authenticates b.example; the Host header then names c.example.
    let http = client(&fed.ca, Some(&a), "b.example", b_addr(&fed));
    let resp = http
        .post(format!(
            "https://b.example:{}/v1/notify/mimi%3A%2F%2Fa.example%2Fr%2Fx",
            b_addr(&fed).port()
        ))
        .header("From", "mimi@a.example")
        .header("Host", "c.example")
        .body(vec![0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
    fed.shutdown().await;
}
