//! Helpers for the fanout tests: real FanoutMessages from real openmls
//! groups, devices registered through the client API, event polling.

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mimi_protocol::msgs::fanout::{FanoutBody, FanoutMessage};
use mimi_protocol::msgs::ratchet_tree::RatchetTreeOption;
use mimi_store::{NewKeyPackage, NewOutboxItem};
use mimi_testkit::clients::{TestClient, wire};
use openmls::prelude::{KeyPackage, MlsMessageOut, OpenMlsProvider, ProtocolVersion};
use serde_json::Value;
use tls_codec::Serialize as _;

use crate::common::{Federation, Provider};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A room URI on `hub` that no other test uses.
pub fn unique_room(hub: &str, label: &str) -> String {
    format!("mimi://{hub}/r/{label}-{}", now_ms())
}

/// A member of a room with a real MLS group.
pub struct Sender {
    pub client: TestClient,
}

impl Sender {
    pub fn new(device: &str) -> Self {
        let mut client = TestClient::new(device);
        client.create_default_room(&[]);
        Self { client }
    }

    /// An application FanoutMessage (PrivateMessage) carrying `text`.
    pub fn application(&mut self, text: &str) -> Vec<u8> {
        let c = &mut self.client;
        let group = c.group.as_mut().unwrap();
        let out = group
            .create_message(&c.provider, &c.signer, text.as_bytes())
            .unwrap();
        encode(FanoutMessage {
            timestamp: now_ms(),
            message: wire(out),
            body: FanoutBody::Application { frank: None },
        })
    }

    /// Commits an Add of `key_package`; returns the Welcome FanoutMessage.
    pub fn add(&mut self, key_package: KeyPackage) -> Vec<u8> {
        let (_commit, welcome) = self.client.commit(vec![], vec![key_package]);
        self.client.merge_pending();
        let tree = self.client.group().export_ratchet_tree();
        let welcome = MlsMessageOut::from_welcome(welcome.unwrap(), ProtocolVersion::Mls10);
        encode(FanoutMessage {
            timestamp: now_ms(),
            message: wire(welcome),
            body: FanoutBody::Welcome {
                ratchet_tree_option: RatchetTreeOption::Full(tree.into()),
            },
        })
    }

    pub fn applications(&mut self, n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| self.application(&format!("m{i}"))).collect()
    }
}

pub fn encode(message: FanoutMessage) -> Vec<u8> {
    message.tls_serialize_detached().unwrap()
}

/// Outbox rows for one lane, seq 1.., as the hub writes them.
pub fn outbox_rows(destination: &str, room: &str, payloads: &[Vec<u8>]) -> Vec<NewOutboxItem> {
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| NewOutboxItem {
            destination: destination.into(),
            room_id: room.into(),
            seq: i as u64 + 1,
            payload: p.clone(),
        })
        .collect()
}

/// [`Provider::register`], then subscribes the device to `room` at its
/// provider.
pub async fn register_subscribed(p: &Provider, device: &str, room: &str) -> String {
    let token = p.register(device).await;
    p.server()
        .state
        .store
        .subscribe(room, device)
        .await
        .unwrap();
    token
}

/// One fetched event: (seq, room, FanoutMessage bytes).
pub type Event = (u64, String, Vec<u8>);

/// The device's events, once everything logged before the call is
/// readable (docs/operations.md "Delivery to devices").
pub async fn fetch(p: &Provider, token: &str, after: u64) -> Vec<Event> {
    p.server()
        .state
        .store
        .settle_delivery_log()
        .await
        .expect("settle");
    let resp = p
        .client_api
        .get(format!(
            "{}/client/v1/events?after={after}&limit=1000",
            p.client_base
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["room_id"].as_str().unwrap().to_owned(),
                B64.decode(e["fanout"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// Polls the device's queue until it holds at least `n` events.
pub async fn wait_for_events(p: &Provider, token: &str, n: usize, within: Duration) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let events = fetch(p, token, 0).await;
        if events.len() >= n || tokio::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A fresh KeyPackage of `client`, stored on `p` and claimed (as the
/// keyMaterial endpoint does), so Welcome routing can find its device.
pub async fn claimed_key_package(p: &Provider, client: &TestClient) -> KeyPackage {
    let kp = client.key_package();
    let key_package_ref = kp
        .hash_ref(client.provider.crypto())
        .unwrap()
        .as_slice()
        .to_vec();
    let store = &p.server().state.store;
    store
        .add_key_packages(
            &client.user(),
            &client.device,
            vec![NewKeyPackage {
                key_package_ref,
                key_package: MlsMessageOut::from(kp.clone())
                    .tls_serialize_detached()
                    .unwrap(),
                not_after: (now_ms() / 1000) as i64 + 3600,
                last_resort: false,
            }],
        )
        .await
        .unwrap();
    kp
}

/// The `/notify` URL of `domain` for `room` (our canonical path, -06 §5.1).
pub fn notify_url(fed: &Federation, domain: &str, room: &str) -> String {
    format!(
        "{}/v1/notify/{}",
        fed.federation_url(domain),
        mimi_protocol::uri::pct_encode_unreserved(room)
    )
}

/// A federation client authenticated as `domain`.
pub fn federation_client_as(fed: &Federation, domain: &str) -> reqwest::Client {
    fed.federation_client_as(domain)
}

/// POSTs a raw `/notify` body; returns the status.
pub async fn post_notify(
    client: &reqwest::Client,
    url: &str,
    from: &str,
    body: Vec<u8>,
) -> reqwest::StatusCode {
    client
        .post(url)
        .header("from", format!("mimi@{from}"))
        .header("content-type", "application/mimi-protocol")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

/// The sum of the series of counter `name` in `p`'s own `/metrics` (each
/// server has its own recorder) whose labels contain every one of `labels`.
pub async fn metric_sum(p: &Provider, name: &str, labels: &[&str]) -> u64 {
    let metrics = p
        .client_api
        .get(format!("{}/metrics", p.client_base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// How many `/notify` requests `p` has answered.
pub async fn notify_requests(p: &Provider) -> u64 {
    metric_sum(p, "mimi_requests_total", &["notify"]).await
}
