//! `mimi conformance` (docs/conformance.md): the real binary against a
//! real provider, with the fixtures set up through the provider's own
//! client API as an operator would; and against a target that answers
//! 200 to everything, to show that the checks fail when they should.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use mimi_client::http::Client;
use mimi_server::tls::{self, DevCa};
use mimi_testkit::{Backend, Federation, start_federation};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The provider under test.
const TARGET: &str = "a.example";
/// The tester presents c.example's dev certificate.
const TESTER: &str = "c.example";
const ALICE_DEVICE: &str = "mimi://a.example/d/alice/phone";
const ALICE: &str = "mimi://a.example/u/alice";
const REQUESTER: &str = "mimi://c.example/u/conformance";
const REQUESTER_DEVICE: &str = "mimi://c.example/d/conformance/phone";
const ROOM: &str = "mimi://a.example/r/conformance";
const HANDLE: &str = "alice.conformance";

/// One row of the JSON report.
fn verdicts(report: &Value) -> Vec<(String, String, String)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_owned(),
                c["verdict"].as_str().unwrap_or_default().to_owned(),
                c["evidence"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn client_api(
    fed: &Federation,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) {
    let p = fed.provider(TARGET);
    let resp = p
        .client_api
        .request(method, format!("{}{path}", p.client_base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
}

/// What an operator of a.example sets up (docs/conformance.md):
/// Alice with KeyPackages, discoverable by handle, requiring consent and
/// granting it to the tester's user; a room whose participant list has
/// the tester's user as a member (who may add its own clients).
async fn fixtures(fed: &Federation) {
    let mut alice = Client::register(ALICE_DEVICE, fed.connection(TARGET).unwrap())
        .await
        .unwrap();
    alice.publish_key_packages(4).await.unwrap();
    let token = alice.connection.token().unwrap().to_owned();
    client_api(
        fed,
        &token,
        reqwest::Method::PUT,
        "/client/v1/profile",
        json!({ "handle": HANDLE, "discoverability": "exact", "consent_required": true }),
    )
    .await;
    client_api(
        fed,
        &token,
        reqwest::Method::POST,
        "/client/v1/consent",
        json!({ "operation": "grant", "requester": REQUESTER, "target": ALICE }),
    )
    .await;
    // The tester's user is added with a device at c.example, as any
    // participant would be; the conformance run joins further devices.
    let mut member = Client::register(REQUESTER_DEVICE, fed.connection(TESTER).unwrap())
        .await
        .unwrap();
    member.publish_key_packages(2).await.unwrap();
    alice.create_room(ROOM).await.unwrap();
    alice
        .add_user(ROOM, REQUESTER, mimi_room_member_role())
        .await
        .unwrap();
}

/// `member` in the default roles of mimi-rs rooms: may add its own clients.
fn mimi_room_member_role() -> u32 {
    2
}

async fn run_mimi(args: &[String]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mimi"))
        .arg("conformance")
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tester_args(dir: &Path, target: &str, connect: SocketAddr) -> Vec<String> {
    [
        "--target".to_owned(),
        target.to_owned(),
        "--connect".into(),
        connect.to_string(),
        "--domain".into(),
        TESTER.into(),
        "--cert".into(),
        dir.join(format!("{TESTER}.pem")).display().to_string(),
        "--key".into(),
        dir.join(format!("{TESTER}.key")).display().to_string(),
        "--ca".into(),
        dir.join("ca.pem").display().to_string(),
    ]
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_provider_passes_every_check() {
    let fed = start_federation(Backend::Sqlite).await;
    fixtures(&fed).await;
    let connect = fed.provider(TARGET).config.federation.listen;
    let mut args = tester_args(&fed.dir, &fed.federation_url(TARGET), connect);
    args.extend(
        [
            "--user",
            ALICE,
            "--requester",
            REQUESTER,
            "--consent-required",
            "--handle",
            HANDLE,
            "--room",
            ROOM,
        ]
        .map(String::from),
    );

    let (code, table, stderr) = run_mimi(&args).await;
    println!("{table}");
    assert!(
        table.contains("check") && table.contains("evidence"),
        "{table}"
    );
    assert!(
        table.contains("transport.host") && table.contains("§4.1"),
        "{table}"
    );
    assert_eq!(code, 0, "{table}\n{stderr}");

    // Every check passes, none skipped: all fixtures were given. JSON
    // this time, from a second run (single-use KeyPackages are claimed
    // again; Alice has four).
    args.extend(["--format", "json"].map(String::from));
    let (code, json, stderr) = run_mimi(&args).await;
    assert_eq!(code, 0, "{json}\n{stderr}");
    let report: Value = serde_json::from_str(&json).unwrap();
    let checks = verdicts(&report);
    assert!(checks.len() >= 30, "{checks:?}");
    for (id, verdict, evidence) in &checks {
        assert_eq!(verdict, "pass", "{id}: {evidence}");
    }
    fed.shutdown().await;
}

/// A TLS server that answers every request 200 with an empty body, except
/// the directory, which points every endpoint at itself.
async fn yes_server(dir: &Path) -> SocketAddr {
    let ca = DevCa::generate("yes CA").unwrap();
    let id = ca.issue(TARGET).unwrap();
    let tester = ca.issue(TESTER).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join(format!("{TESTER}.pem")), &tester.cert_chain_pem).unwrap();
    std::fs::write(dir.join(format!("{TESTER}.key")), &tester.key_pem).unwrap();
    let mut config = tls::client_api_server_config(&id).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("https://{TARGET}:{}", addr.port());
    let directory = json!({
        "keyMaterial": format!("{base}/v1/keyMaterial/{{targetUser}}"),
        "update": format!("{base}/v1/update/{{roomId}}"),
        "notify": format!("{base}/v1/notify/{{roomId}}"),
        "submitMessage": format!("{base}/v1/submitMessage/{{roomId}}"),
        "groupInfo": format!("{base}/v1/groupInfo/{{roomId}}"),
        "requestConsent": format!("{base}/v1/requestConsent/{{targetDomain}}"),
        "updateConsent": format!("{base}/v1/updateConsent/{{requesterDomain}}"),
        "identifierQuery": format!("{base}/v1/identifierQuery/{{domain}}"),
        "reportAbuse": format!("{base}/v1/reportAbuse/{{roomId}}"),
    })
    .to_string();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let directory = directory.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while request.len() < head_end + length {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = if head.starts_with("get /.well-known/mimi-protocol-directory") {
                    directory.as_str()
                } else {
                    ""
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_accepts_everything_fails() {
    let dir = tempfile::tempdir().unwrap();
    let addr = yes_server(dir.path()).await;
    let mut args = tester_args(dir.path(), TARGET, addr);
    args.extend(["--format", "json"].map(String::from));
    let (code, json, stderr) = run_mimi(&args).await;
    assert_eq!(code, 1, "{json}\n{stderr}");
    let report: Value = serde_json::from_str(&json).unwrap();
    let checks = verdicts(&report);
    let verdict = |id: &str| {
        checks
            .iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, v, e)| (v.clone(), e.clone()))
            .unwrap_or_else(|| panic!("no check {id}: {checks:?}"))
    };
    for id in ["transport.server-certificate", "directory.document"] {
        assert_eq!(verdict(id).0, "pass", "{id}: {:?}", verdict(id));
    }
    for id in [
        "transport.control",
        "transport.client-certificate",
        "transport.host",
        "transport.from-authenticated",
        "transport.from-missing",
        "bodies.keyMaterial",
        "bodies.notify",
        "bodies.update",
        "keyMaterial.unknown-user",
        "notify.duplicate",
        "identifierQuery.not-found",
        "consent.target-domain",
    ] {
        assert_eq!(verdict(id).0, "fail", "{id}: {:?}", verdict(id));
    }
    // Checks whose fixtures were not given are skipped, never passed.
    for id in ["keyMaterial.single-use", "update.one-commit-per-epoch"] {
        let (v, e) = verdict(id);
        assert_eq!(v, "skip", "{id}: {e}");
        assert!(e.contains("needs"), "{id}: {e}");
    }

    // With fixtures named, the checks that need them run, and fail.
    args.extend(
        [
            "--user",
            ALICE,
            "--consent-required",
            "--handle",
            HANDLE,
            "--room",
            ROOM,
        ]
        .map(String::from),
    );
    let (code, json, stderr) = run_mimi(&args).await;
    assert_eq!(code, 1, "{json}\n{stderr}");
    let report: Value = serde_json::from_str(&json).unwrap();
    let checks = verdicts(&report);
    for id in [
        "keyMaterial.single-use",
        "keyMaterial.consent",
        "identifierQuery.handle",
        "submitMessage.foreign-group",
        "groupInfo.success",
    ] {
        let (v, e) = checks
            .iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, v, e)| (v.clone(), e.clone()))
            .unwrap_or_else(|| panic!("no check {id}: {checks:?}"));
        assert_eq!(v, "fail", "{id}: {e}");
    }
}
