//! Attachments end to end through three real providers and real clients
//! (draft-ietf-mimi-content §Attachments, -06 §5.10): a file encrypted
//! by its sender, uploaded to the sender's provider, downloaded by
//! another provider's client through its provider and the room's hub
//! (`proxyDownload`), and refused on receipt when it does not match what
//! the message says; the room's asset policy honoured before sending.

#[macro_use]
mod common;

use common::{Backend, start_federation};
use mimi_client::http::{AttachmentError, Client, ClientError};
use mimi_client::{RoomOptions, content};
use mimi_content::MessageId;
use mimi_room::policy::default_role::MEMBER;

const ALICE: &str = "mimi://a.example/d/alice/laptop";
const BOB: &str = "mimi://b.example/d/bob/phone";
const CAROL: &str = "mimi://c.example/d/carol/tablet";
const ROOM: &str = "mimi://a.example/r/pictures";

/// Three providers, and Alice's room on a.example with Bob (b.example)
/// and Carol (c.example) in it.
async fn room_of_three() -> (mimi_testkit::Federation, Client, Client, Client) {
    let fed = start_federation(Backend::Sqlite).await;
    let [mut alice, mut bob, mut carol] = common::clients(&fed, [ALICE, BOB, CAROL]).await;
    bob.publish_key_packages(2).await.unwrap();
    carol.publish_key_packages(2).await.unwrap();
    alice
        .create_room_with(ROOM, RoomOptions::default())
        .await
        .unwrap();
    for user in ["mimi://b.example/u/bob", "mimi://c.example/u/carol"] {
        alice.add_user(ROOM, user, MEMBER).await.unwrap();
    }
    for c in [&mut bob, &mut carol] {
        until!("the Welcome", {
            c.sync().await.unwrap();
            c.device.epoch(ROOM).is_ok_and(|e| e == 2)
        });
    }
    (fed, alice, bob, carol)
}

/// Sets the room's `asset_policy` (a commit by Alice, its admin) and
/// waits until Bob and Carol have it.
async fn set_asset_policy(
    alice: &mut Client,
    others: [&mut Client; 2],
    policy: &mimi_protocol::components::AssetPolicy,
) {
    use mimi_protocol::components::ASSET_POLICY;
    use tls_codec::Serialize as _;
    alice
        .update_component(ROOM, ASSET_POLICY, policy.tls_serialize_detached().unwrap())
        .await
        .unwrap();
    let epoch = alice.device.epoch(ROOM).unwrap();
    for c in others {
        until!("the policy", {
            c.sync().await.unwrap();
            c.device.epoch(ROOM).is_ok_and(|e| e == epoch)
        });
    }
}

async fn received(client: &mut Client, id: &MessageId) {
    until!("the message", {
        client.sync().await.unwrap();
        client
            .device
            .history(ROOM)
            .unwrap()
            .iter()
            .any(|m| m.id == *id)
    });
}

/// A file of `n` bytes that is not all one value.
fn file(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_reaches_every_provider_encrypted_and_checked() {
    let (fed, mut alice, mut bob, mut carol) = room_of_three().await;

    // Carol sends a file of several upload chunks.
    let original = file(700_000);
    let id = carol
        .send_file(
            ROOM,
            &original,
            "application/pdf",
            "report.pdf",
            "the Q3 report",
            None,
        )
        .await
        .unwrap();
    let sent = content::external_parts(
        &carol
            .device
            .history(ROOM)
            .unwrap()
            .into_iter()
            .find(|m| m.id == id)
            .unwrap()
            .content,
    )[0]
    .clone();
    // What travels in the message: where the ciphertext is, how to open
    // it and how to check it (draft-ietf-mimi-content §External content).
    assert!(sent.url.starts_with("https://c.example"), "{}", sent.url);
    assert_eq!(sent.enc_alg, 1, "AES-128-GCM");
    assert_eq!((sent.key.len(), sent.nonce.len()), (16, 12));
    assert_eq!((sent.hash_alg, sent.content_hash.len()), (1, 32));
    assert_eq!(sent.size, original.len() as u64 + 16, "ciphertext and tag");
    assert_eq!(sent.filename, "report.pdf");
    assert_eq!(sent.description, "the Q3 report");

    // Bob (b.example) gets it through b.example and the hub; Alice, at
    // the hub's own provider, from there.
    for reader in [&mut bob, &mut alice] {
        received(reader, &id).await;
        let downloaded = reader.download_attachments(ROOM, &id).await.unwrap();
        assert_eq!(downloaded.len(), 1);
        assert_eq!(downloaded[0].1, original);
        assert_eq!(downloaded[0].0, sent);
    }
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_refuses_an_asset_that_does_not_match_its_message() {
    let (fed, _alice, mut bob, mut carol) = room_of_three().await;

    // Carol's honest upload, then messages that lie about it: another
    // hash (a swapped or altered asset), or the right hash with another
    // key (a forged part).
    let sealed = mimi_assets::seal(mimi_assets::AeadAlgorithm::default(), &file(5000)).unwrap();
    let uploaded = carol
        .connection
        .upload_asset(sealed.ciphertext.clone(), "image/png", None)
        .await
        .unwrap();
    let honest = sealed.external_part(uploaded.url, "image/png");
    let mut other_hash = honest.clone();
    other_hash.content_hash[0] ^= 1;
    let mut other_key = honest.clone();
    other_key.key[0] ^= 1;
    let mut ids = Vec::new();
    for part in [other_hash, other_key] {
        ids.push(carol.send(ROOM, content::attachment(part)).await.unwrap());
    }
    for id in &ids {
        received(&mut bob, id).await;
    }
    let refused = bob.download_attachments(ROOM, &ids[0]).await.unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Attachment(AttachmentError::Open(mimi_assets::OpenError::HashMismatch))
        ),
        "{refused}"
    );
    let refused = bob.download_attachments(ROOM, &ids[1]).await.unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Attachment(AttachmentError::Open(mimi_assets::OpenError::TagMismatch))
        ),
        "{refused}"
    );
    // A message without an attachment has nothing to download.
    let text = carol.send(ROOM, content::text("no file")).await.unwrap();
    received(&mut bob, &text).await;
    assert!(matches!(
        bob.download_attachments(ROOM, &text).await.unwrap_err(),
        ClientError::Attachment(AttachmentError::NoAttachment(_))
    ));
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rooms_asset_policy_is_honoured_before_sending() {
    use mimi_protocol::components::AssetPolicy;
    use mimi_protocol::components::policy_components::{
        AssetUploadLocation, DomainName, DownloadPrivacy, DownloadPrivacyType,
        ProviderAssetUploadDomains,
    };

    let (fed, mut alice, mut bob, mut carol) = room_of_three().await;
    // Each provider's clients upload to their own provider; c.example's
    // only to files.c.example, which is not where Carol's provider puts
    // them; and no attachment over 1000 bytes.
    let policy = AssetPolicy {
        asset_upload_location: AssetUploadLocation::LocalProvider,
        upload_domains: ["a.example", "b.example"]
            .into_iter()
            .map(|d| ProviderAssetUploadDomains {
                provider: DomainName::new(d),
                asset_upload_destinations: vec![DomainName::new(d)],
            })
            .chain([ProviderAssetUploadDomains {
                provider: DomainName::new("c.example"),
                asset_upload_destinations: vec![DomainName::new("files.c.example")],
            }])
            .collect(),
        download_privacy: DownloadPrivacy {
            allowed_download_types: vec![DownloadPrivacyType::HubProxy],
            forbidden_download_types: Vec::new(),
            default_download_type: DownloadPrivacyType::HubProxy,
        },
        max_image: 0,
        max_audio: 0,
        max_video: 0,
        max_attachment: 1000,
        forbidden_media_types: Vec::new(),
        permitted_media_types: None,
    };
    set_asset_policy(&mut alice, [&mut bob, &mut carol], &policy).await;
    let refused = carol
        .send_file(ROOM, &file(100), "application/pdf", "a.pdf", "", None)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("not an asset upload domain"),
        "{refused}"
    );
    let refused = bob
        .send_file(ROOM, &file(2000), "application/pdf", "a.pdf", "", None)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("exceed the room's limit of 1000"),
        "{refused}"
    );
    // Within the rules it goes.
    let id = bob
        .send_file(ROOM, &file(100), "application/pdf", "a.pdf", "", None)
        .await
        .unwrap();
    received(&mut alice, &id).await;
    assert_eq!(
        alice.download_attachments(ROOM, &id).await.unwrap()[0].1,
        file(100)
    );
    fed.shutdown().await;
}

/// The sum of the series of counter `name` with every label of `labels`
/// in a provider's metrics.
fn counter(fed: &mimi_testkit::Federation, domain: &str, name: &str, labels: &[&str]) -> u64 {
    let text = fed
        .provider(domain)
        .server()
        .state
        .runtime
        .metrics()
        .render();
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_downloaded_by_oblivious_http_through_the_own_provider() {
    use mimi_client::http::DownloadPath;

    let (fed, mut alice, mut bob, mut carol) = room_of_three().await;
    let original = file(40_000);
    let id = carol
        .send_file(ROOM, &original, "image/png", "map.png", "", None)
        .await
        .unwrap();
    received(&mut bob, &id).await;

    // Bob's provider relays to the hub's Gateway (RFC 9458): it passes
    // opaque bytes on, and is never asked for a proxied download.
    bob.download_path = DownloadPath::Ohttp;
    let downloaded = bob.download_attachments(ROOM, &id).await.unwrap();
    assert_eq!(downloaded[0].1, original);
    assert_eq!(
        counter(&fed, "b.example", "mimi_asset_ohttp_relayed_total", &[]),
        1
    );
    assert_eq!(
        counter(&fed, "b.example", "mimi_asset_downloads_total", &[]),
        0
    );
    // The hub opened one request from b.example's relay and fetched from
    // c.example; Alice's own provider is its own relay.
    assert_eq!(
        counter(
            &fed,
            "a.example",
            "mimi_asset_ohttp_gateway_total",
            &["result=\"served\""]
        ),
        1
    );
    alice.download_path = DownloadPath::Ohttp;
    received(&mut alice, &id).await;
    assert_eq!(
        alice.download_attachments(ROOM, &id).await.unwrap()[0].1,
        original
    );

    // A URL the hub will not fetch is refused inside the sealed answer:
    // the relay cannot tell, the client can.
    let keys = bob.connection.ohttp_keys("a.example").await.unwrap();
    let target = url::Url::parse("https://127.0.0.1/v1/assets/x").unwrap();
    let (request, opener) = mimi_assets::oblivious::seal_request(&keys, &target).unwrap();
    let answer = bob
        .connection
        .ohttp_relay("a.example", request)
        .await
        .unwrap();
    let (status, reason) = opener.open(&answer).unwrap();
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&reason));
    // Garbage is not a request for the Gateway.
    let refused = bob
        .connection
        .ohttp_relay("a.example", b"not ohttp".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ClientError::Refused { status: 502, .. }),
        "{refused}"
    );

    // A room whose asset policy forbids the proxy path: the client
    // refuses it before any request, and OHTTP still works.
    use mimi_protocol::components::AssetPolicy;
    use mimi_protocol::components::policy_components::{
        AssetUploadLocation, DownloadPrivacy, DownloadPrivacyType,
    };
    let policy = AssetPolicy {
        asset_upload_location: AssetUploadLocation::Unspecified,
        upload_domains: Vec::new(),
        download_privacy: DownloadPrivacy {
            allowed_download_types: vec![DownloadPrivacyType::Ohttp],
            forbidden_download_types: vec![DownloadPrivacyType::HubProxy],
            default_download_type: DownloadPrivacyType::Ohttp,
        },
        max_image: 0,
        max_audio: 0,
        max_video: 0,
        max_attachment: 0,
        forbidden_media_types: Vec::new(),
        permitted_media_types: None,
    };
    set_asset_policy(&mut alice, [&mut bob, &mut carol], &policy).await;
    let relayed = counter(&fed, "b.example", "mimi_asset_ohttp_relayed_total", &[]);
    bob.download_path = DownloadPath::Proxy;
    let refused = bob.download_attachments(ROOM, &id).await.unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Attachment(AttachmentError::DownloadPath(_))
        ),
        "{refused}"
    );
    assert_eq!(
        counter(&fed, "b.example", "mimi_asset_downloads_total", &[]),
        0
    );
    bob.download_path = DownloadPath::Ohttp;
    assert_eq!(
        bob.download_attachments(ROOM, &id).await.unwrap()[0].1,
        original
    );
    assert_eq!(
        counter(&fed, "b.example", "mimi_asset_ohttp_relayed_total", &[]),
        relayed + 1
    );
    fed.shutdown().await;
}
