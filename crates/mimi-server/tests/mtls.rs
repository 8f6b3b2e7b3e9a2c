//! Real mutual TLS over loopback: a provider server for b.example and
//! clients presenting certificates from our dev CA (-06 §4.1).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Extension;
use axum::routing::post;
use axum::{Router, middleware};
use mimi_server::tls::{self, DevCa, ProviderIdentity};
use mimi_server::transport::{self, LocalDomain, SourceProvider};
use reqwest::StatusCode;

struct Provider {
    addr: SocketAddr,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn start_provider(ca: &DevCa, identity: &ProviderIdentity) -> Provider {
    let app = Router::new()
        .route(
            "/v1/whoami",
            post(|Extension(source): Extension<SourceProvider>| async move { source.0 }),
        )
        .layer(middleware::from_fn_with_state(
            LocalDomain(identity.domain.as_str().into()),
            transport::authenticate_provider,
        ));
    let config = tls::server_config(tls::root_store(ca.cert_pem()).unwrap(), identity).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(transport::serve(listener, Arc::new(config), app, async {
        let _ = rx.await;
    }));
    Provider {
        addr,
        _shutdown: tx,
    }
}

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

async fn whoami(
    client: &reqwest::Client,
    addr: SocketAddr,
    host: &str,
    from: Option<&str>,
) -> reqwest::Result<(StatusCode, String)> {
    let mut req = client.post(format!("https://{host}:{}/v1/whoami", addr.port()));
    if let Some(from) = from {
        req = req.header("From", from);
    }
    let resp = req.send().await?;
    let status = resp.status();
    Ok((status, resp.text().await?))
}

#[tokio::test]
async fn authenticated_provider_is_identified_by_certificate_and_from() {
    let ca = DevCa::generate("mimi dev CA").unwrap();
    let a = ca.issue("a.example").unwrap();
    let b = ca.issue("b.example").unwrap();
    let server = start_provider(&ca, &b).await;
    let http = client(&ca, Some(&a), "b.example", server.addr);

    let (status, body) = whoami(&http, server.addr, "b.example", Some("mimi@a.example"))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "a.example");
}

#[tokio::test]
async fn from_header_not_matching_certificate_is_forbidden() {
    let ca = DevCa::generate("mimi dev CA").unwrap();
    let a = ca.issue("a.example").unwrap();
    let b = ca.issue("b.example").unwrap();
    let server = start_provider(&ca, &b).await;
    let http = client(&ca, Some(&a), "b.example", server.addr);

    let (status, body) = whoami(&http, server.addr, "b.example", Some("mimi@c.example"))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = whoami(&http, server.addr, "b.example", Some("alice@a.example"))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = whoami(&http, server.addr, "b.example", None).await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn request_without_client_certificate_is_unauthorized() {
    let ca = DevCa::generate("mimi dev CA").unwrap();
    let b = ca.issue("b.example").unwrap();
    let server = start_provider(&ca, &b).await;
    let http = client(&ca, None, "b.example", server.addr);

    let (status, body) = whoami(&http, server.addr, "b.example", Some("mimi@a.example"))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn certificate_from_another_ca_fails_the_handshake() {
    let ca = DevCa::generate("mimi dev CA").unwrap();
    let rogue_ca = DevCa::generate("rogue CA").unwrap();
    let b = ca.issue("b.example").unwrap();
    let rogue_a = rogue_ca.issue("a.example").unwrap();
    let server = start_provider(&ca, &b).await;
    // The rogue client trusts the real CA (so it accepts the server), but
    // presents a certificate the server cannot chain to its roots.
    let http = client(&ca, Some(&rogue_a), "b.example", server.addr);

    let result = whoami(&http, server.addr, "b.example", Some("mimi@a.example")).await;
    assert!(result.is_err(), "rogue certificate accepted: {result:?}");
}

#[tokio::test]
async fn server_must_authenticate_the_target_domain() {
    let ca = DevCa::generate("mimi dev CA").unwrap();
    let a = ca.issue("a.example").unwrap();
    let c = ca.issue("c.example").unwrap();
    // c.example's server answers where the client expects b.example.
    let server = start_provider(&ca, &c).await;
    let http = client(&ca, Some(&a), "b.example", server.addr);

    let result = whoami(&http, server.addr, "b.example", Some("mimi@a.example")).await;
    assert!(
        result.is_err(),
        "client accepted a certificate for the wrong domain: {result:?}"
    );
}

#[tokio::test]
async fn host_naming_another_provider_is_misdirected() {
    let ca = DevCa::generate("mimi dev CA").unwrap();
    let a = ca.issue("a.example").unwrap();
    let b = ca.issue("b.example").unwrap();
    let server = start_provider(&ca, &b).await;
    // TLS authenticates b.example; the Host header then names c.example.
    let http = client(&ca, Some(&a), "b.example", server.addr);
    let resp = http
        .post(format!(
            "https://b.example:{}/v1/whoami",
            server.addr.port()
        ))
        .header("From", "mimi@a.example")
        .header("Host", "c.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
}
