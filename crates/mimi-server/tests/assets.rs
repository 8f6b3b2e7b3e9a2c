//! Assets over three real providers with mutual TLS (-06 §5.10,
//! docs/operations.md "Assets"): uploads on the client API, serving to
//! peers, the hub's `proxyDownload` with its target checks, cache and
//! failure answers, and downloads through a device's own provider.
//!
//! The client API is spoken as raw HTTP (reqwest with the device's bearer
//! token), so these tests depend on the server only.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::header::LOCATION;
use common::{Backend, Federation, Provider, start_federation};
use mimi_client_api::paths;
use mimi_client_api::{ASSET_MEDIA_TYPE, AssetDownloadQuery, UploadedAsset};
use mimi_protocol::uri::pct_encode_unreserved;
use mimi_server::assets::store::AssetId;
use mimi_server::tls;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A room hosted by a.example: its hub proxies the downloads.
const ROOM_A: &str = "mimi://a.example/r/holiday";
const CAROL: &str = "mimi://c.example/d/carol/phone";
const BOB: &str = "mimi://b.example/d/bob/laptop";
const ALICE: &str = "mimi://a.example/d/alice/laptop";

/// `n` bytes that are not all alike.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(7919).wrapping_add(u32::from(seed)) as u8)
        .collect()
}

async fn upload_raw(
    p: &Provider,
    token: &str,
    media_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = p
        .client_api
        .post(format!("{}{}", p.client_base, paths::ASSETS))
        .bearer_auth(token)
        .body(body);
    if let Some(media_type) = media_type {
        request = request.header(ASSET_MEDIA_TYPE, media_type);
    }
    request.send().await.expect("upload request")
}

async fn upload(p: &Provider, token: &str, body: Vec<u8>) -> UploadedAsset {
    let response = upload_raw(p, token, Some("image/png"), body).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "upload: {text}");
    serde_json::from_str(&text).expect("UploadedAsset")
}

/// A download through `p`'s client API: status and body.
async fn download(p: &Provider, token: &str, url: &str, room: &str) -> (StatusCode, Vec<u8>) {
    let query = AssetDownloadQuery {
        url: url.into(),
        room: room.into(),
    };
    let response = p
        .client_api
        .get(format!(
            "{}{}",
            p.client_base,
            paths::asset_download(&query)
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("download request");
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn download_text(p: &Provider, token: &str, url: &str, room: &str) -> (StatusCode, String) {
    let (status, body) = download(p, token, url, room).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `GET /v1/proxyDownload/{downloadUrl}` on `hub`, authenticated as `me`.
async fn proxy(fed: &Federation, me: &str, hub: &str, url: &str) -> (StatusCode, String) {
    let response = fed
        .federation_client_as(me)
        .get(format!(
            "{}/v1/proxyDownload/{}",
            fed.federation_url(hub),
            pct_encode_unreserved(url)
        ))
        .header("From", format!("mimi@{me}"))
        .send()
        .await
        .expect("proxyDownload request");
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// The provider's metrics, read from its recorder: a stopped or restarted
/// server's connections may live on, so `/metrics` over a pooled
/// connection could reach the previous instance.
async fn metrics(p: &Provider) -> String {
    p.server().state.runtime.metrics().render()
}

/// The sum of the series of counter `name` carrying every label of `labels`.
fn counter(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn asset_id(url: &str) -> AssetId {
    AssetId::parse(url.rsplit('/').next().unwrap()).expect("asset id in URL")
}

fn asset_files(p: &Provider) -> usize {
    std::fs::read_dir(p.config.assets_dir())
        .unwrap()
        .filter(|e| AssetId::parse(&e.as_ref().unwrap().file_name().to_string_lossy()).is_some())
        .count()
}

/// c.example's device uploads; a b.example device downloads it through
/// b's client API for a room on a.example (b → hub a `proxyDownload` →
/// c `/v1/assets`); the hub caches it; a.example's own device downloads
/// locally; a's own uploads are served from its store.
async fn an_asset_travels_through_the_hub(backend: Backend) {
    let fed = start_federation(backend).await;
    let (a, b, c) = (
        fed.provider("a.example"),
        fed.provider("b.example"),
        fed.provider("c.example"),
    );
    let carol = fed.register(CAROL).await;
    let bob = fed.register(BOB).await;
    let alice = fed.register(ALICE).await;

    let original = bytes(300 * 1024, 1);
    let asset = upload(c, &carol, original.clone()).await;
    assert!(
        asset
            .url
            .starts_with(&format!("{}/v1/assets/", fed.federation_url("c.example"))),
        "{}",
        asset.url
    );
    assert_eq!(asset.size, original.len() as u64);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(asset.expires > now + 29 * 24 * 3600, "kept 30 days");
    assert_eq!(asset_files(c), 1);

    // Peers fetch it over mutual TLS only.
    let anonymous = fed
        .federation_client(None)
        .get(&asset.url)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let fetched = fed
        .federation_client_as("b.example")
        .get(&asset.url)
        .header("From", "mimi@b.example")
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), &original[..]);
    let unknown = format!(
        "{}/v1/assets/{}",
        fed.federation_url("c.example"),
        AssetId::random().unwrap()
    );
    let missing = fed
        .federation_client_as("b.example")
        .get(&unknown)
        .header("From", "mimi@b.example")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // b.example's device, for a room on a.example: through hub a.
    let (status, body) = download(b, &bob, &asset.url, ROOM_A).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == original, "identical bytes");
    let a_metrics = metrics(a).await;
    assert_eq!(
        counter(
            &a_metrics,
            "mimi_asset_proxy_cache_total",
            &[("result", "miss")]
        ),
        1
    );
    assert_eq!(
        counter(
            &a_metrics,
            "mimi_asset_proxy_served_total",
            &[("source", "upstream")]
        ),
        1
    );
    let c_fetches = |m: &str| counter(m, "mimi_asset_peer_fetches_total", &[("result", "served")]);
    assert_eq!(
        c_fetches(&metrics(c).await),
        2,
        "b's direct fetch and the hub's"
    );

    // The second download is a hit in b's own cache ("Both the
    // downloading provider and the hub can cache requests", -06 §5.10.2):
    // it works even with the asset gone from c, and neither the hub nor c
    // sees a request.
    let c_state = &c.server().state;
    assert!(
        c_state
            .assets
            .store
            .delete(&asset_id(&asset.url))
            .await
            .unwrap()
    );
    let (status, body) = download(b, &bob, &asset.url, ROOM_A).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == original, "identical bytes from the cache");
    let hub_requests = |m: &str| counter(m, "mimi_asset_proxy_cache_total", &[("role", "hub")]);
    assert_eq!(hub_requests(&metrics(a).await), 1, "the hub was not asked");
    assert_eq!(c_fetches(&metrics(c).await), 2);
    let b_metrics = metrics(b).await;
    for (path, n) in [("proxy", 1), ("cache", 1)] {
        assert_eq!(
            counter(
                &b_metrics,
                "mimi_asset_downloads_total",
                &[("path", path), ("status", "200")]
            ),
            n,
            "{path}"
        );
    }

    // a.example's own device, for a room a hosts: the hub's logic runs
    // locally, a hit in the hub's cache.
    let (status, body) = download(a, &alice, &asset.url, ROOM_A).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == original);
    let a_metrics = metrics(a).await;
    assert_eq!(
        counter(
            &a_metrics,
            "mimi_asset_downloads_total",
            &[("path", "local"), ("status", "200")]
        ),
        1
    );
    assert_eq!(
        counter(
            &a_metrics,
            "mimi_asset_proxy_cache_total",
            &[("result", "hit"), ("role", "hub")]
        ),
        1
    );
    assert_eq!(c_fetches(&metrics(c).await), 2);

    // a's own upload: the hub serves it from its store, to b's device
    // through the proxy and to its own device locally.
    let own = bytes(5000, 2);
    let own_asset = upload(a, &alice, own.clone()).await;
    assert!(own_asset.url.starts_with(&fed.federation_url("a.example")));
    for (p, token) in [(b, &bob), (a, &alice)] {
        let (status, body) = download(p, token, &own_asset.url, ROOM_A).await;
        assert_eq!(status, StatusCode::OK, "{}", p.domain);
        assert!(body == own, "{}", p.domain);
    }
    assert_eq!(
        counter(
            &metrics(a).await,
            "mimi_asset_proxy_served_total",
            &[("source", "store")]
        ),
        2
    );
    // An id a does not have: the hub's 404 reaches b's device.
    let unknown_at_a = format!(
        "{}/v1/assets/{}",
        fed.federation_url("a.example"),
        AssetId::random().unwrap()
    );
    let (status, reason) = download_text(b, &bob, &unknown_at_a, ROOM_A).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reason}");
    assert!(reason.contains("not an asset of this provider"), "{reason}");

    // A room on b: b's device asks its own provider as hub, which has the
    // asset in its cache (one cache per provider, keyed by URL), and
    // fetches from c what it lacks.
    let room_b = "mimi://b.example/r/other";
    let (status, body) = download(b, &bob, &asset.url, room_b).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == original);
    let unknown_at_c = format!(
        "{}/v1/assets/{}",
        fed.federation_url("c.example"),
        AssetId::random().unwrap()
    );
    let (status, reason) = download_text(b, &bob, &unknown_at_c, room_b).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{reason}");
    assert!(reason.contains("answered 404"), "{reason}");

    // Bad queries and no token.
    let (status, reason) = download_text(b, &bob, &asset.url, "mimi://a.example/u/alice").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");
    let no_token = b
        .client_api
        .get(format!("{}{}", b.client_base, paths::ASSET_DOWNLOAD))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    fed.shutdown().await;
}

#[tokio::test]
async fn an_asset_travels_through_the_hub_sqlite() {
    an_asset_travels_through_the_hub(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_asset_travels_through_the_hub_postgres() {
    an_asset_travels_through_the_hub(Backend::postgres()).await;
}

/// Every URL the hub must not fetch is refused with 403 and a reason,
/// before anything is resolved or connected (-06 §5.10.2), and counted.
#[tokio::test]
async fn proxy_refusals_are_403_with_a_reason() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let carol = fed.register(CAROL).await;
    let bob = fed.register(BOB).await;
    let asset = upload(fed.provider("c.example"), &carol, bytes(100, 3)).await;
    let c_port = fed.provider("c.example").config.federation.listen.port();
    let path = format!("/v1/assets/{}", asset_id(&asset.url));
    let cases = [
        (
            format!("https://evil.example{path}"),
            "evil.example is not an asset host of a peer provider",
            "host_not_allowed",
        ),
        (
            format!("https://127.0.0.1:{c_port}{path}"),
            "names the IP address 127.0.0.1",
            "ip_literal",
        ),
        (
            format!("https://0x7f.1:{c_port}{path}"),
            "names the IP address 127.0.0.1",
            "ip_literal",
        ),
        (
            format!("https://[::1]:{c_port}{path}"),
            "names the IP address ::1",
            "ip_literal",
        ),
        (
            format!("https://carol:secret@c.example:{c_port}{path}"),
            "must not carry a user name or password",
            "userinfo",
        ),
        (
            format!("http://c.example:{c_port}{path}"),
            "must use https, not http",
            "not_https",
        ),
        (
            format!("https://c.example:1{path}"),
            "asset host c.example is not allowed on port 1",
            "port_not_allowed",
        ),
        (
            format!("https://c.example{path}"),
            "not allowed on port 443",
            "port_not_allowed",
        ),
        (
            format!("https://c.example:{c_port}{path}#x"),
            "must not have a fragment",
            "fragment",
        ),
        ("not a url".to_string(), "not a valid URL", "unparsable"),
    ];
    for (url, reason, _) in &cases {
        let (status, text) = proxy(&fed, "b.example", "a.example", url).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}: {text}");
        assert!(text.contains(reason), "{url}: {text}");
    }
    let a_metrics = metrics(fed.provider("a.example")).await;
    for label in [
        "host_not_allowed",
        "userinfo",
        "not_https",
        "fragment",
        "unparsable",
    ] {
        assert_eq!(
            counter(
                &a_metrics,
                "mimi_asset_proxy_refused_total",
                &[("reason", label)]
            ),
            1,
            "{label}"
        );
    }
    for label in ["ip_literal", "port_not_allowed"] {
        assert_eq!(
            counter(
                &a_metrics,
                "mimi_asset_proxy_refused_total",
                &[("reason", label)]
            ),
            cases.iter().filter(|c| c.2 == label).count() as u64,
            "{label}"
        );
    }
    assert_eq!(
        counter(&a_metrics, "mimi_asset_proxy_cache_total", &[]),
        0,
        "nothing refused got as far as the cache"
    );

    // The refusal reaches b's device through b with its reason.
    let (status, text) = download_text(
        fed.provider("b.example"),
        &bob,
        &format!("https://evil.example{path}"),
        ROOM_A,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("the hub a.example answered 403"), "{text}");
    assert!(
        text.contains("not an asset host of a peer provider"),
        "{text}"
    );

    // proxyDownload is a federation endpoint: no client certificate, 401.
    let anonymous = fed
        .federation_client(None)
        .get(format!(
            "{}/v1/proxyDownload/{}",
            fed.federation_url("a.example"),
            pct_encode_unreserved(&asset.url)
        ))
        .header("From", "mimi@b.example")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // A hub that may not connect to private addresses refuses the peer
    // whose name resolves to loopback (step 2), after resolving it.
    let a = fed.provider_mut("a.example");
    a.config.assets.allow_private_addresses = false;
    a.restart().await;
    let (status, text) = proxy(&fed, "b.example", "a.example", &asset.url).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(
        text.contains("resolved to 127.0.0.1, a loopback address"),
        "{text}"
    );
    assert_eq!(
        counter(
            &metrics(fed.provider("a.example")).await,
            "mimi_asset_proxy_refused_total",
            &[("reason", "non_public_address")]
        ),
        1
    );
    fed.shutdown().await;
}

/// An HTTP/1.1 upload with a chunked body (no declared length) of
/// `chunks` × `chunk` bytes; the status code answered.
async fn chunked_upload(
    p: &Provider,
    ca_pem: &str,
    token: &str,
    chunks: usize,
    chunk: usize,
) -> u16 {
    let mut config = tls::client_config(tls::root_store(ca_pem).unwrap(), None).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(p.config.client_api.listen)
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from(p.domain.clone()).unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n{ASSET_MEDIA_TYPE}: image/png\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        paths::ASSETS,
        p.domain
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let body = bytes(chunk, 9);
    for _ in 0..chunks {
        let mut frame = format!("{chunk:x}\r\n").into_bytes();
        frame.extend_from_slice(&body);
        frame.extend_from_slice(b"\r\n");
        // The server may answer and close before the last chunk.
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let _ = stream.flush().await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

/// Uploads: 413 over `[assets] max_upload_bytes` (declared or streamed,
/// whatever `[limits] max_body_bytes` says), 415 without an accepted media
/// type, 400 when empty, 429 over the user's rate with `Retry-After`;
/// nothing refused is kept.
#[tokio::test]
async fn uploads_are_limited_by_size_media_type_and_rate() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let c = fed.provider_mut("c.example");
    c.config.assets.max_upload_bytes = 1024;
    c.config.assets.uploads_per_user_per_minute = 3;
    // Uploads have their own limit, not the client API's general one.
    c.config.limits.max_body_bytes = 600;
    c.restart().await;
    let carol = fed.register(CAROL).await;
    let c = fed.provider("c.example");

    let refused = |response: reqwest::Response| async move {
        let status = response.status();
        (status, response.text().await.unwrap())
    };
    let (status, text) = refused(upload_raw(c, &carol, None, bytes(10, 0)).await).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        text.contains("mimi-asset-media-type header must name"),
        "{text}"
    );
    let (status, text) =
        refused(upload_raw(c, &carol, Some("text/html"), bytes(10, 0)).await).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        text.contains("media type text/html is not accepted by this provider (accepted: image/*"),
        "{text}"
    );
    let (status, text) = refused(upload_raw(c, &carol, Some("nonsense"), bytes(10, 0)).await).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(text.contains("is not a media type"), "{text}");
    let (status, text) =
        refused(upload_raw(c, &carol, Some("image/png"), bytes(1025, 0)).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        text.contains("the asset (1025 bytes) is larger than this provider's limit of 1024 bytes"),
        "{text}"
    );
    let no_token = c
        .client_api
        .post(format!("{}{}", c.client_base, paths::ASSETS))
        .header(ASSET_MEDIA_TYPE, "image/png")
        .body(bytes(10, 0))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);

    // Refusals before the body is read take no upload token: three more.
    let kept = upload(c, &carol, bytes(1024, 4)).await;
    assert_eq!(kept.size, 1024);
    let ca = fed.ca.cert_pem().to_owned();
    assert_eq!(
        chunked_upload(c, &ca, &carol, 5, 300).await,
        413,
        "streamed past the limit"
    );
    let (status, text) = refused(upload_raw(c, &carol, Some("video/mp4"), Vec::new()).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("empty"), "{text}");
    let limited = upload_raw(c, &carol, Some("image/png"), bytes(10, 0)).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(limited.text().await.unwrap().contains("retry after"));
    // Another user of c is not limited by carol's uploads.
    let dave = fed.register("mimi://c.example/d/dave/phone").await;
    upload(c, &dave, bytes(10, 5)).await;

    assert_eq!(asset_files(c), 2, "only the accepted uploads are kept");
    let leftovers = std::fs::read_dir(c.config.assets_dir()).unwrap().count();
    assert_eq!(leftovers, 2, "no partial upload left behind");
    let m = metrics(c).await;
    for (reason, n) in [
        ("media_type", 3),
        ("too_large", 2),
        ("empty", 1),
        ("rate_limited", 1),
    ] {
        assert_eq!(
            counter(
                &m,
                "mimi_asset_upload_refusals_total",
                &[("reason", reason)]
            ),
            n,
            "{reason}"
        );
    }
    assert_eq!(counter(&m, "mimi_asset_uploads_total", &[]), 2);
    assert_eq!(counter(&m, "mimi_asset_upload_bytes_total", &[]), 1034);
    fed.shutdown().await;
}

/// Requests the fake asset server had for `/counted/{name}`, by name.
static COUNTED: std::sync::Mutex<std::collections::BTreeMap<String, u32>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn counted(name: &str) -> u32 {
    COUNTED.lock().unwrap().get(name).copied().unwrap_or(0)
}

/// An asset server for "d.example" with a certificate of the federation's
/// CA, misbehaving on purpose.
async fn start_fake_asset_server(
    fed: &Federation,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    use axum::routing::get;
    let identity = fed.ca.issue("d.example").unwrap();
    let roots = tls::root_store(fed.ca.cert_pem()).unwrap();
    let config = tls::server_config(roots, &identity).unwrap();
    let app = axum::Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [(LOCATION, "/elsewhere")], "") }),
        )
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "disk on fire") }),
        )
        .route("/huge", get(|| async { vec![7u8; 4096] }))
        .route(
            "/counted/{name}",
            get(
                |axum::extract::Path(name): axum::extract::Path<String>| async move {
                    *COUNTED.lock().unwrap().entry(name).or_default() += 1;
                    // Long enough for every concurrent request to board.
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    "counted"
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mimi_server::transport::serve(
        listener,
        Arc::new(config),
        app,
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Failures of asset providers are the hub's 502 or 504 with a clear
/// reason, passed on to the device, and each costs only its own request:
/// a download from a healthy provider in parallel still succeeds.
#[tokio::test]
async fn a_failing_asset_provider_fails_alone() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let (d_addr, stop_d) = start_fake_asset_server(&fed).await;
    let dead = dead_port();
    let a = fed.provider_mut("a.example");
    a.config
        .peers
        .insert("d.example".into(), d_addr.to_string());
    a.config
        .assets
        .peer_hosts
        .insert("c.example".into(), vec![format!("c.example:{dead}")]);
    a.config.assets.proxy_timeout_ms = 3000;
    a.config.assets.proxy_max_bytes = Some(2048);
    a.restart().await;
    let carol = fed.register(CAROL).await;
    let bob = fed.register(BOB).await;
    let b = fed.provider("b.example");
    let d = |path: &str| format!("https://d.example:{}{path}", d_addr.port());

    // The fake server is a valid asset host.
    let (status, body) = download_text(b, &bob, &d("/ok"), ROOM_A).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "fine"));

    let cases = [
        (
            format!("https://c.example:{dead}/v1/assets/x"),
            StatusCode::BAD_GATEWAY,
            format!("could not connect to the asset server c.example:{dead} (at 127.0.0.1:{dead})"),
        ),
        (
            d("/redirect"),
            StatusCode::BAD_GATEWAY,
            "answered 302 Found redirecting to /elsewhere; the hub does not follow redirects"
                .into(),
        ),
        (
            d("/broken"),
            StatusCode::BAD_GATEWAY,
            "answered 500 Internal Server Error: disk on fire".into(),
        ),
        (
            d("/huge"),
            StatusCode::BAD_GATEWAY,
            "asset larger than 2048 bytes".into(),
        ),
    ];
    for (url, status, reason) in &cases {
        let (got, text) = download_text(b, &bob, url, ROOM_A).await;
        assert_eq!(got, *status, "{url}: {text}");
        assert!(text.contains(reason.as_str()), "{url}: {text}");
        assert!(text.contains("the hub a.example answered"), "{url}: {text}");
    }

    // A provider that never answers, and a healthy one at the same time.
    // (The healthy one is b: the hub must not have talked to c before c
    // goes down below, or its pooled connection to the stopped server,
    // which lives on in this process, would still answer.)
    let good = bytes(2000, 6);
    let asset = upload(b, &bob, good.clone()).await;
    let started = Instant::now();
    let slow = async {
        let answer = download_text(b, &bob, &d("/slow"), ROOM_A).await;
        (answer, started.elapsed())
    };
    let fast = async {
        let answer = download(b, &bob, &asset.url, ROOM_A).await;
        (answer, started.elapsed())
    };
    let (((slow_status, slow_text), slow_took), ((fast_status, fast_body), fast_took)) =
        tokio::join!(slow, fast);
    assert_eq!(slow_status, StatusCode::GATEWAY_TIMEOUT, "{slow_text}");
    assert!(
        slow_text.contains("did not deliver the asset within 3000 ms"),
        "{slow_text}"
    );
    assert_eq!(fast_status, StatusCode::OK);
    assert!(fast_body == good);
    assert!(
        fast_took < Duration::from_millis(2500) && fast_took < slow_took,
        "the healthy download waited: {fast_took:?} (slow {slow_took:?})"
    );

    // c down: its asset fails with 502 while b's is delivered.
    let b_asset = upload(b, &bob, bytes(700, 7)).await;
    let c_asset = upload(fed.provider("c.example"), &carol, bytes(700, 8)).await;
    fed.provider_mut("c.example").stop().await;
    let b = fed.provider("b.example");
    let (down, up) = tokio::join!(
        download_text(b, &bob, &c_asset.url, ROOM_A),
        download(b, &bob, &b_asset.url, ROOM_A)
    );
    assert_eq!(down.0, StatusCode::BAD_GATEWAY, "{}", down.1);
    assert!(
        down.1
            .contains("could not connect to the asset server c.example"),
        "{}",
        down.1
    );
    assert_eq!(up.0, StatusCode::OK);
    assert!(up.1 == bytes(700, 7));

    let m = metrics(fed.provider("a.example")).await;
    for (reason, n) in [
        ("connect", 2),
        ("redirect", 1),
        ("status", 1),
        ("too_large", 1),
        ("timeout", 1),
    ] {
        assert_eq!(
            counter(
                &m,
                "mimi_asset_proxy_upstream_failures_total",
                &[("reason", reason)]
            ),
            n,
            "{reason}"
        );
    }
    let _ = stop_d.send(());
    fed.shutdown().await;
}

/// Requests that overlap share one fetch: eight downloads by b's devices
/// are one `proxyDownload` from b, and `proxyDownload`s from b and c at
/// once are one fetch from the asset provider (-06 §5.10.2: this also
/// hides from the asset provider how many are downloading).
#[tokio::test]
async fn concurrent_first_downloads_share_one_fetch() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let (d_addr, stop_d) = start_fake_asset_server(&fed).await;
    let a = fed.provider_mut("a.example");
    a.config
        .peers
        .insert("d.example".into(), d_addr.to_string());
    a.restart().await;
    let bob = fed.register(BOB).await;
    let d = |name: &str| format!("https://d.example:{}/counted/{name}", d_addr.port());
    let b = fed.provider("b.example");

    let url = d("devices");
    let devices =
        futures_util::future::join_all((0..8).map(|_| download_text(b, &bob, &url, ROOM_A))).await;
    for (status, body) in &devices {
        assert_eq!((*status, body.as_str()), (StatusCode::OK, "counted"));
    }
    assert_eq!(counted("devices"), 1);
    let b_metrics = metrics(b).await;
    assert_eq!(
        counter(
            &b_metrics,
            "mimi_asset_fetches_coalesced_total",
            &[("role", "downloader")]
        ),
        7
    );
    let a_metrics = metrics(fed.provider("a.example")).await;
    assert_eq!(
        counter(
            &a_metrics,
            "mimi_asset_proxy_cache_total",
            &[("role", "hub")]
        ),
        1,
        "the hub had one request"
    );

    let url = d("peers");
    let peers = futures_util::future::join_all(
        ["b.example", "c.example", "b.example", "c.example"]
            .map(|me| proxy(&fed, me, "a.example", &url)),
    )
    .await;
    for (status, body) in &peers {
        assert_eq!((*status, body.as_str()), (StatusCode::OK, "counted"));
    }
    assert_eq!(counted("peers"), 1);
    let a_metrics = metrics(fed.provider("a.example")).await;
    assert_eq!(
        counter(
            &a_metrics,
            "mimi_asset_fetches_coalesced_total",
            &[("role", "hub")]
        ),
        3
    );
    assert_eq!(
        fed.provider("a.example")
            .server()
            .state
            .assets
            .fetches_in_flight(),
        0
    );
    let _ = stop_d.send(());
    fed.shutdown().await;
}

/// With `[assets] retention_secs`, the background task deletes expired
/// assets: peers then get 404.
#[tokio::test]
async fn expired_assets_are_deleted() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let c = fed.provider_mut("c.example");
    c.config.assets.retention_secs = 1;
    c.restart().await;
    let carol = fed.register(CAROL).await;
    let c = fed.provider("c.example");
    let asset = upload(c, &carol, bytes(100, 10)).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now..=now + 2).contains(&asset.expires),
        "{}",
        asset.expires
    );
    until!("the expired asset is deleted", { asset_files(c) == 0 });
    let gone = fed
        .federation_client_as("b.example")
        .get(&asset.url)
        .header("From", "mimi@b.example")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        counter(&metrics(c).await, "mimi_assets_expired_total", &[]),
        1
    );
    fed.shutdown().await;
}

/// a.example's directory lists proxyDownload (-06 §5.1, §5.10).
#[tokio::test]
async fn the_directory_offers_proxy_download() {
    let fed = start_federation(Backend::Sqlite).await;
    let directory: serde_json::Value = fed
        .federation_client(None)
        .get(format!(
            "{}/.well-known/mimi-protocol-directory",
            fed.federation_url("a.example")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        directory["proxyDownload"],
        format!(
            "{}/v1/proxyDownload/{{downloadUrl}}",
            fed.federation_url("a.example")
        )
    );
    fed.shutdown().await;
}

/// Downloads are rate limited per user at the device's provider and per
/// requesting provider at the hub, each a 429 with `Retry-After`; one
/// provider's limit does not touch another's.
#[tokio::test]
async fn downloads_are_limited_per_user_and_per_provider() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let a = fed.provider_mut("a.example");
    a.config.assets.downloads_per_provider_per_minute = 2;
    a.restart().await;
    let b = fed.provider_mut("b.example");
    b.config.assets.downloads_per_user_per_minute = 3;
    b.restart().await;
    let carol = fed.register(CAROL).await;
    let bob = fed.register("mimi://b.example/d/bob/phone").await;
    let asset = upload(fed.provider("c.example"), &carol, bytes(100, 1)).await;

    // At hub a: two proxyDownloads from b.example, then 429; c.example
    // still gets its own.
    for _ in 0..2 {
        assert_eq!(
            proxy(&fed, "b.example", "a.example", &asset.url).await.0,
            StatusCode::OK
        );
    }
    let (status, reason) = proxy(&fed, "b.example", "a.example", &asset.url).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{reason}");
    assert!(
        reason.contains("too many requests from this provider"),
        "{reason}"
    );
    assert_eq!(
        proxy(&fed, "c.example", "a.example", &asset.url).await.0,
        StatusCode::OK
    );

    // At b: Bob's third download through a room hosted on c passes, the
    // fourth is refused by his own provider before it asks any hub.
    let room = "mimi://c.example/r/any";
    for _ in 0..3 {
        assert_eq!(
            download(fed.provider("b.example"), &bob, &asset.url, room)
                .await
                .0,
            StatusCode::OK
        );
    }
    let response = fed
        .provider("b.example")
        .client_api
        .get(format!(
            "{}{}",
            fed.provider("b.example").client_base,
            paths::asset_download(&AssetDownloadQuery {
                url: asset.url.clone(),
                room: room.into(),
            })
        ))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    fed.shutdown().await;
}

const S3_BUCKET: &str = "mimi-assets";
const S3_KEY: &str = "mimi-test-key";
const S3_SECRET: &str = "mimi-test-secret";

/// An S3-compatible server (s3s-fs over a temporary directory) on
/// loopback, with one bucket and one key pair: the `[assets.s3]` store
/// speaks real S3 (SigV4, multipart uploads, listings) to it.
struct S3Server {
    endpoint: String,
    root: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl S3Server {
    async fn start() -> Self {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(S3_BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(S3_KEY, S3_SECRET));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            loop {
                let socket = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(_) => continue,
                    },
                    _ = &mut stopped => return,
                };
                let connection = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        Self {
            endpoint,
            root,
            stop,
        }
    }

    /// `[assets.s3]` for this server, the secret in a file of `dir`.
    fn config(&self, dir: &std::path::Path, secret: &str) -> mimi_server::config::S3Config {
        let secret_file = dir.join("s3-secret");
        std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
        toml::from_str(&format!(
            "bucket = \"{S3_BUCKET}\"\nendpoint = \"{}\"\naccess_key_id = \"{S3_KEY}\"\n\
             secret_access_key_file = \"{}\"\nallow_http = true\n",
            self.endpoint,
            secret_file.display()
        ))
        .unwrap()
    }

    /// The asset objects in the bucket, as the server keeps them.
    fn objects(&self) -> Vec<String> {
        let dir = self.root.path().join(S3_BUCKET).join("assets");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| AssetId::parse(n).is_some())
            .collect();
        names.sort();
        names
    }
}

fn byte_stream(data: Vec<u8>, chunk: usize) -> mimi_server::assets::store::ByteStream {
    let chunks: Vec<std::io::Result<bytes::Bytes>> = data
        .chunks(chunk)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

/// The `[assets.s3]` store against an S3-compatible server: one PUT for a
/// small asset, a multipart upload for a large one, reads, deletes,
/// expiry, refusals that leave no object, and wrong credentials.
#[tokio::test]
async fn the_s3_store_keeps_assets_in_a_bucket() {
    use futures_util::StreamExt;
    use mimi_server::assets::object::{ObjectAssetStore, PART_BYTES};
    use mimi_server::assets::store::{AssetStore, PutError};
    let server = S3Server::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let store = ObjectAssetStore::s3(&server.config(secrets.path(), S3_SECRET)).unwrap();

    let small = store
        .put(byte_stream(bytes(1000, 1), 300), 10_000)
        .await
        .unwrap();
    let large_bytes = bytes(2 * PART_BYTES + 4321, 2);
    let large = store
        .put(byte_stream(large_bytes.clone(), 256 * 1024), u64::MAX)
        .await
        .unwrap();
    assert_eq!((small.size, large.size), (1000, large_bytes.len() as u64));
    let mut expected = vec![small.id.to_string(), large.id.to_string()];
    expected.sort();
    assert_eq!(server.objects(), expected);
    let reader = store.open(&large.id).await.unwrap().unwrap();
    assert_eq!(reader.size, large_bytes.len() as u64);
    let read: Vec<u8> = reader
        .stream
        .map(|chunk| chunk.unwrap().to_vec())
        .concat()
        .await;
    assert!(read == large_bytes, "identical bytes");

    // Refusals, before and after the first part: no object is left.
    let too_large = store.put(byte_stream(bytes(2000, 3), 100), 1500).await;
    assert!(matches!(too_large, Err(PutError::TooLarge { limit: 1500 })));
    let too_large_later = store
        .put(
            byte_stream(bytes(PART_BYTES + 200_000, 4), 100_000),
            PART_BYTES as u64 + 100_000,
        )
        .await;
    assert!(matches!(too_large_later, Err(PutError::TooLarge { .. })));
    assert_eq!(server.objects(), expected);

    assert!(store.delete(&small.id).await.unwrap());
    assert!(!store.delete(&small.id).await.unwrap());
    assert!(store.open(&small.id).await.unwrap().is_none());
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(store.purge_older_than(an_hour_ago).await.unwrap(), 0);
    let later = SystemTime::now() + Duration::from_secs(5);
    assert_eq!(store.purge_older_than(later).await.unwrap(), 1);
    assert!(server.objects().is_empty());

    let wrong = ObjectAssetStore::s3(&server.config(secrets.path(), "not-the-secret")).unwrap();
    let refused = wrong.put(byte_stream(bytes(10, 5), 10), 100).await;
    assert!(matches!(refused, Err(PutError::Io(_))), "{refused:?}");
    let _ = server.stop.send(());
}

/// A provider configured with `[assets.s3]` keeps its users' uploads in
/// the bucket (nothing in its assets directory) and serves them to the
/// hub's proxy like any other.
#[tokio::test]
async fn an_asset_in_an_s3_bucket_travels_through_the_hub() {
    let mut fed = start_federation(Backend::Sqlite).await;
    let server = S3Server::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let c = fed.provider_mut("c.example");
    c.config.assets.s3 = Some(server.config(secrets.path(), S3_SECRET));
    c.restart().await;
    let carol = fed.register(CAROL).await;
    let bob = fed.register(BOB).await;
    let original = bytes(700 * 1024, 9);
    let asset = upload(fed.provider("c.example"), &carol, original.clone()).await;
    assert_eq!(server.objects(), [asset_id(&asset.url).to_string()]);
    assert_eq!(asset_files(fed.provider("c.example")), 0);
    let (status, body) = download(fed.provider("b.example"), &bob, &asset.url, ROOM_A).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == original, "identical bytes");
    let _ = server.stop.send(());
    fed.shutdown().await;
}
