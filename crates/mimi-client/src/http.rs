//! Talking to one's own provider over its client API (docs/client-api.md),
//! feature `http`.
//!
//! [`ProviderConnection`] moves bytes; [`Client`] ties a [`Device`] to a
//! connection and runs whole operations: fetch KeyPackages, commit, send,
//! and apply the hub's answer (-06 §5.3: `success` → merge, anything else
//! → discard; `wrongEpoch` → catch up and try again).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::StreamExt as _;
use mimi_client_api::paths::{self, RoomAction};
use mimi_client_api::{
    Ack, CreateRoom, DeadLetterRetried, DeadLettersQuery, Events, EventsQuery, HubKeys, HubQuery,
    OwnKeyPackage, RegisterDevice, Registered, Stored, UploadKeyPackages,
};
use mimi_content::{MessageId, MimiContent};
use mimi_protocol::components::FrankingAgentData;
use mimi_protocol::msgs::{
    AbuseReport, AbuseType, FanoutMessage, GroupInfoResponse, KeyMaterialResponse,
    SubmitMessageResponse, SubmitStatus, UpdateRequest, UpdateResponseCode, UpdateRoomResponse,
};
use mimi_protocol::{decode_exact, encode};
use openmls::prelude::Ciphersuite;
use serde::{Deserialize, Serialize};

pub use mimi_client_api::{DeadLetterView, ReportView};

use crate::{Device, Event, KeyPackageOptions, RoomOptions, content, key_packages_from_response};

/// Media type of TLS-PL encoded MIMI bodies.
const MIMI_CONTENT_TYPE: &str = "application/mimi-protocol";

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Device(#[from] crate::Error),
    #[error("provider request failed: {0}")]
    Http(reqwest::Error),
    /// No connection to the provider: its name did not resolve
    /// (`name_unresolved`) or nothing answered at its address.
    #[error("cannot reach the provider at {url}: {reason}")]
    Unreachable {
        url: String,
        reason: String,
        name_unresolved: bool,
    },
    #[error("provider answered {status}: {reason}")]
    Refused { status: u16, reason: String },
    #[error("malformed answer from the provider: {0}")]
    Malformed(String),
    #[error("the hub refused the change ({code:?}){}", reason_suffix(reason))]
    UpdateRefused {
        code: UpdateResponseCode,
        reason: String,
    },
    #[error("the hub refused the message: {0}")]
    SubmitRefused(String),
    /// The user has no KeyPackages to claim (-06 §5.2), so cannot be added.
    #[error("{user} cannot be added: no KeyPackages ({status})")]
    NoKeyPackages { user: String, status: String },
    /// Registration without `replace` of a device id the provider has.
    #[error("the provider already has the device {device}: {reason}")]
    DeviceExists { device: String, reason: String },
    #[error("client state {path}: {reason}")]
    State { path: PathBuf, reason: String },
    /// A commit of this device reached the hub or may have, and no answer
    /// came back. It is kept (in the device file) and sent again, byte for
    /// byte, by the next operation on the room or settled by the hub's
    /// fanout.
    #[error(
        "no answer from the hub about this device's change to {room} ({reason}); \
         it is kept and sent again by the next command on the room"
    )]
    AnswerLost { room: String, reason: String },
    #[error(transparent)]
    Attachment(#[from] AttachmentError),
}

/// Whether a failed request leaves it open whether the hub acted on it (or
/// the request never left): no answer came, the provider could not relay
/// the hub's answer (502, 504) or asked for the request again (503). Such
/// a request is sent again byte for byte (docs/divergences.md S26).
fn answer_unknown(e: &ClientError) -> bool {
    match e {
        ClientError::Http(_) | ClientError::Unreachable { .. } => true,
        ClientError::Refused { status, .. } => matches!(status, 502..=504),
        _ => false,
    }
}

/// Runs `call` until it gets an answer, at most [`ATTEMPTS`] times with a
/// growing pause, while [`answer_unknown`]; also says whether an answer was
/// lost on the way (the hub may have acted on an earlier copy).
async fn again_on_loss<T, F>(mut call: impl FnMut() -> F) -> (Result<T>, bool)
where
    F: std::future::Future<Output = Result<T>>,
{
    let mut delay = std::time::Duration::from_millis(200);
    let mut lost = false;
    for _ in 1..ATTEMPTS {
        match call().await {
            Err(e) if answer_unknown(&e) => {
                lost = true;
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            answer => return (answer, lost),
        }
    }
    (call().await, lost)
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        if !e.is_connect() {
            return ClientError::Http(e);
        }
        // reqwest's own text is "error sending request"; the cause is in
        // its sources (hyper-util names resolver failures "dns error").
        let mut reason = Vec::new();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            reason.push(cause.to_string());
            source = cause.source();
        }
        let name_unresolved = reason.iter().any(|r| r.contains("dns error"));
        ClientError::Unreachable {
            url: e.url().map(|u| u.to_string()).unwrap_or_default(),
            reason: reason.join(": "),
            name_unresolved,
        }
    }
}

/// ": reason", or nothing when the hub gave none.
fn reason_suffix(reason: &str) -> String {
    match reason {
        "" => String::new(),
        reason => format!(": {reason}"),
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// An HTTPS connection to a provider's client API.
#[derive(Clone)]
pub struct ProviderConnection {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// One queued event from the provider.
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    pub seq: u64,
    pub room_id: String,
    pub fanout: FanoutMessage,
}

impl ProviderConnection {
    /// `base` is the client API URL (e.g. `https://a.example:18444`);
    /// `ca_pem` the trust anchors for its certificate (all system roots are
    /// ignored when given); `connect_to` overrides where the base URL's
    /// host name is reached (local runs): the base URL's host still names
    /// the provider (TLS server name, `Host`), `connect_to` alone decides
    /// the address and port.
    pub fn new(base: &str, ca_pem: Option<&[u8]>, connect_to: Option<SocketAddr>) -> Result<Self> {
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = ca_pem {
            builder = builder.tls_certs_only([reqwest::Certificate::from_pem(pem)?]);
        }
        let mut url = reqwest::Url::parse(base)
            .map_err(|e| ClientError::Malformed(format!("provider URL {base:?}: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(ClientError::Malformed(format!(
                "provider URL {base:?}: expected https://<host>[:<port>]"
            )));
        }
        if let Some(addr) = connect_to {
            match url.domain().map(str::to_owned) {
                Some(host) => {
                    builder = builder.resolve(&host, addr);
                    // The connector prefers a port in the URL over the
                    // resolved one, so the URL must not carry one.
                    url.set_port(None)
                        .map_err(|()| ClientError::Malformed("provider URL".into()))?;
                }
                None => {
                    // An IP literal is never resolved: connect there directly.
                    url.set_ip_host(addr.ip())
                        .and_then(|()| url.set_port(Some(addr.port())))
                        .map_err(|()| ClientError::Malformed("provider URL".into()))?;
                }
            }
        }
        Ok(Self {
            base: url.as_str().trim_end_matches('/').to_owned(),
            http: builder.build()?,
            token: None,
        })
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let reason = resp.text().await.unwrap_or_default();
        Err(ClientError::Refused { status, reason })
    }

    async fn post_json<T: Serialize>(&self, path: &str, body: &T) -> Result<reqwest::Response> {
        let resp = self
            .authed(self.http.post(self.url(path)))
            .json(body)
            .send()
            .await?;
        Self::check(resp).await
    }

    async fn post_tls<T: tls_codec::Deserialize>(&self, path: &str, body: Vec<u8>) -> Result<T> {
        let resp = self
            .authed(self.http.post(self.url(path)))
            .header(reqwest::header::CONTENT_TYPE, MIMI_CONTENT_TYPE)
            .body(body)
            .send()
            .await?;
        let bytes = Self::check(resp).await?.bytes().await?;
        decode_exact(&bytes).map_err(|e| ClientError::Malformed(e.to_string()))
    }

    /// Uploads an asset's bytes, already encrypted (`POST
    /// /client/v1/assets`), declaring `media_type` for the plaintext; the
    /// body is sent in chunks, `progress(sent, total)` after each.
    pub async fn upload_asset(
        &self,
        bytes: Vec<u8>,
        media_type: &str,
        progress: Option<Progress>,
    ) -> Result<mimi_client_api::UploadedAsset> {
        const CHUNK: usize = 256 * 1024;
        let total = bytes.len() as u64;
        let bytes = bytes::Bytes::from(bytes);
        let chunks: Vec<std::result::Result<bytes::Bytes, std::io::Error>> = (0..bytes.len())
            .step_by(CHUNK)
            .map(|start| Ok(bytes.slice(start..(start + CHUNK).min(bytes.len()))))
            .collect();
        let mut sent = 0u64;
        let body = futures_util::stream::iter(chunks).inspect(move |chunk| {
            if let (Some(progress), Ok(chunk)) = (&progress, chunk) {
                sent += chunk.len() as u64;
                progress(sent, total);
            }
        });
        let resp = self
            .authed(self.http.post(self.url(paths::ASSETS)))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, total)
            .header(mimi_client_api::ASSET_MEDIA_TYPE, media_type)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await?;
        Ok(Self::check(resp).await?.json().await?)
    }

    /// Downloads an asset by its `ExternalPart` URL through this
    /// provider and the hub of `room` (-06 §5.10 `proxyDownload`): the
    /// bytes as uploaded, still encrypted.
    pub async fn download_asset(&self, url: &str, room: &str) -> Result<Vec<u8>> {
        let query = mimi_client_api::AssetDownloadQuery {
            url: url.to_owned(),
            room: room.to_owned(),
        };
        let resp = self
            .authed(self.http.get(self.url(&paths::asset_download(&query))))
            .send()
            .await?;
        Ok(Self::check(resp).await?.bytes().await?.to_vec())
    }

    /// The OHTTP Gateway key configurations of the hub `hub`, fetched by
    /// this provider (`application/ohttp-keys`, RFC 9458 §3).
    pub async fn ohttp_keys(&self, hub: &str) -> Result<Vec<u8>> {
        let query = mimi_client_api::OhttpQuery {
            hub: hub.to_owned(),
        };
        let resp = self
            .authed(self.http.get(self.url(&paths::ohttp_keys(&query))))
            .send()
            .await?;
        Ok(Self::check(resp).await?.bytes().await?.to_vec())
    }

    /// Relays an encapsulated request to the OHTTP Gateway of the hub
    /// `hub` through this provider, the Relay (RFC 9458 §2): the
    /// encapsulated response.
    pub async fn ohttp_relay(&self, hub: &str, request: Vec<u8>) -> Result<Vec<u8>> {
        let query = mimi_client_api::OhttpQuery {
            hub: hub.to_owned(),
        };
        let resp = self
            .authed(self.http.post(self.url(&paths::ohttp_relay(&query))))
            .header(
                reqwest::header::CONTENT_TYPE,
                mimi_assets::oblivious::REQUEST_MEDIA_TYPE,
            )
            .body(request)
            .send()
            .await?;
        Ok(Self::check(resp).await?.bytes().await?.to_vec())
    }

    /// Fetches `url` from the asset provider itself (-06 §5.10 "Direct
    /// download", NOT RECOMMENDED: the asset provider learns the device's
    /// address), with this connection's trust anchors.
    pub async fn download_direct(&self, url: &str) -> Result<Vec<u8>> {
        let resp = self.http.get(url).send().await?;
        Ok(Self::check(resp).await?.bytes().await?.to_vec())
    }

    /// Registers a new device and keeps its token.
    pub async fn register(&mut self, user: &str, device: &str) -> Result<String> {
        self.register_device(user, device, false).await
    }

    /// Registers a device and keeps its token. With `replace`, a device id
    /// that is already registered gets a new token (the old one stops
    /// working); that needs the connection's token to be the device's
    /// current one or the admin token. Without it, an existing device is
    /// [`ClientError::DeviceExists`].
    pub async fn register_device(
        &mut self,
        user: &str,
        device: &str,
        replace: bool,
    ) -> Result<String> {
        let body = RegisterDevice {
            user: user.to_owned(),
            device: device.to_owned(),
            replace,
        };
        let resp = match self.post_json(paths::DEVICES, &body).await {
            Err(ClientError::Refused {
                status: 409,
                reason,
            }) => {
                return Err(ClientError::DeviceExists {
                    device: device.to_owned(),
                    reason,
                });
            }
            other => other?,
        };
        let token = resp.json::<Registered>().await?.token;
        self.token = Some(token.clone());
        Ok(token)
    }

    pub async fn upload_key_packages(
        &self,
        mls_messages: &[Vec<u8>],
        last_resort: bool,
    ) -> Result<u64> {
        let body = UploadKeyPackages {
            key_packages: mls_messages.iter().map(|m| B64.encode(m)).collect(),
            last_resort,
        };
        let resp = self.post_json(paths::KEY_PACKAGES, &body).await?;
        Ok(resp.json::<Stored>().await?.stored)
    }

    /// Tells the provider of a KeyPackage this device spends in its own
    /// external join proposal, so the Welcome that adds it is delivered
    /// here (docs/divergences.md C29).
    pub async fn register_own_key_package(&self, mls_message: &[u8]) -> Result<()> {
        let body = OwnKeyPackage {
            key_package: B64.encode(mls_message),
        };
        self.post_json(paths::OWN_KEY_PACKAGE, &body).await?;
        Ok(())
    }

    /// The provider's hub key for rooms on `ciphersuite`, for their
    /// `external_senders`, and its franking agent (-06 §5.4.1), for their
    /// `franking_signature_key` component: both of the suite's signature
    /// scheme.
    pub async fn hub_info(&self, ciphersuite: Ciphersuite) -> Result<HubInfo> {
        let url = self.url(&paths::hub(HubQuery {
            ciphersuite: ciphersuite as u16,
        }));
        let resp = Self::check(self.authed(self.http.get(url)).send().await?).await?;
        let hub: HubKeys = resp.json().await?;
        let decode = |field: &str, text: String| {
            B64.decode(text)
                .map_err(|e| ClientError::Malformed(format!("{field}: {e}")))
        };
        let sender: openmls::prelude::ExternalSender =
            decode_exact(&decode("external_sender", hub.external_sender)?)
                .map_err(|e| ClientError::Malformed(e.to_string()))?;
        let franking_agent = decode_exact(&decode("franking_agent", hub.franking_agent)?)
            .map_err(|e| ClientError::Malformed(format!("franking_agent: {e}")))?;
        Ok(HubInfo {
            external_sender: mimi_protocol::msgs::group_info::external_sender_parts(&sender)
                .map_err(|e| ClientError::Malformed(e.to_string()))?,
            franking_agent,
        })
    }

    /// The provider's hub key, for the `external_senders` of rooms on
    /// `ciphersuite` it hosts.
    pub async fn hub_sender(&self, ciphersuite: Ciphersuite) -> Result<crate::HubSender> {
        Ok(self.hub_info(ciphersuite).await?.external_sender)
    }

    pub async fn create_room(&self, created: &crate::CreatedRoom) -> Result<()> {
        let body = CreateRoom {
            room_id: created.room.clone(),
            group_info: B64.encode(created.group_info_message_bytes()?),
            ratchet_tree: B64.encode(created.ratchet_tree_bytes()?),
        };
        self.post_json(paths::ROOMS, &body).await.map(|_| ())
    }

    pub async fn key_material(
        &self,
        request: &mimi_protocol::msgs::KeyMaterialRequest,
    ) -> Result<KeyMaterialResponse> {
        self.post_tls(
            paths::KEY_MATERIAL,
            encode(request).map_err(crate::Error::from)?,
        )
        .await
    }

    pub async fn update(&self, room: &str, request: &UpdateRequest) -> Result<UpdateRoomResponse> {
        self.post_tls(
            &RoomAction::Update.path(room),
            encode(request).map_err(crate::Error::from)?,
        )
        .await
    }

    pub async fn submit(
        &self,
        room: &str,
        request: &mimi_protocol::msgs::SubmitMessageRequest,
    ) -> Result<SubmitMessageResponse> {
        self.post_tls(
            &RoomAction::Submit.path(room),
            encode(request).map_err(crate::Error::from)?,
        )
        .await
    }

    pub async fn group_info(
        &self,
        room: &str,
        request: &mimi_protocol::msgs::GroupInfoRequest,
    ) -> Result<GroupInfoResponse> {
        self.post_tls(
            &RoomAction::GroupInfo.path(room),
            encode(request).map_err(crate::Error::from)?,
        )
        .await
    }

    /// Sends an abuse report (-06 §5.9) to the room's hub through the
    /// provider; the hub verifies its franks.
    pub async fn report(&self, room: &str, report: &AbuseReport) -> Result<()> {
        let resp = self
            .authed(self.http.post(self.url(&RoomAction::Report.path(room))))
            .header(reqwest::header::CONTENT_TYPE, MIMI_CONTENT_TYPE)
            .body(encode(report).map_err(crate::Error::from)?)
            .send()
            .await?;
        Self::check(resp).await.map(|_| ())
    }

    /// The abuse reports stored by this provider's hub (operator; the
    /// connection's token must be the admin token).
    pub async fn admin_reports(&self) -> Result<Vec<ReportView>> {
        let resp = Self::check(
            self.authed(self.http.get(self.url(paths::ADMIN_REPORTS)))
                .send()
                .await?,
        )
        .await?;
        Ok(resp.json().await?)
    }

    /// Fanout events a follower refused permanently, oldest first
    /// (operator; admin token). `limit`: the server's default if `None`.
    pub async fn admin_dead_letters(&self, limit: Option<u32>) -> Result<Vec<DeadLetterView>> {
        let url = self.url(&paths::dead_letters(DeadLettersQuery { limit }));
        let resp = Self::check(self.authed(self.http.get(url)).send().await?).await?;
        Ok(resp.json().await?)
    }

    /// Moves dead letter `id` back into the outbox, due now; returns its
    /// new outbox id (operator; admin token).
    pub async fn admin_retry_dead_letter(&self, id: u64) -> Result<u64> {
        let url = self.url(&paths::dead_letter_retry(id));
        let resp = Self::check(self.authed(self.http.post(url)).send().await?).await?;
        let retried: DeadLetterRetried = resp.json().await?;
        Ok(retried.outbox_id)
    }

    /// Drops dead letter `id`: it is never delivered (operator; admin
    /// token).
    pub async fn admin_drop_dead_letter(&self, id: u64) -> Result<()> {
        let url = self.url(&paths::dead_letter(id));
        Self::check(self.authed(self.http.delete(url)).send().await?).await?;
        Ok(())
    }

    /// Queued events after `after`, in delivery order.
    pub async fn events(&self, after: u64, limit: u32) -> Result<Vec<QueuedEvent>> {
        let url = self.url(&paths::events(EventsQuery {
            after,
            limit: Some(limit),
        }));
        let resp = Self::check(self.authed(self.http.get(url)).send().await?).await?;
        let json: Events = resp.json().await?;
        json.events
            .into_iter()
            .map(|e| {
                let bytes = B64
                    .decode(e.fanout)
                    .map_err(|err| ClientError::Malformed(err.to_string()))?;
                let fanout =
                    decode_exact(&bytes).map_err(|err| ClientError::Malformed(err.to_string()))?;
                Ok(QueuedEvent {
                    seq: e.seq,
                    room_id: e.room_id,
                    fanout,
                })
            })
            .collect()
    }

    pub async fn ack(&self, up_to: u64) -> Result<()> {
        self.post_json(paths::EVENTS_ACK, &Ack { up_to })
            .await
            .map(|_| ())
    }
}

/// What `GET /client/v1/hub` tells about the provider's hub.
#[derive(Debug, Clone)]
pub struct HubInfo {
    pub external_sender: crate::HubSender,
    pub franking_agent: FrankingAgentData,
}

/// Connection details kept beside the device file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionState {
    pub provider: String,
    pub token: String,
    /// Events acknowledged up to this sequence number (what was applied
    /// is in the device file: [`Device::delivered_up_to`]).
    pub cursor: u64,
}

/// A device connected to its provider.
pub struct Client {
    pub device: Device,
    pub connection: ProviderConnection,
    /// Acknowledged up to this sequence number (as far as known).
    cursor: u64,
    path: Option<PathBuf>,
    /// How attachments are downloaded.
    pub download_path: DownloadPath,
}

/// How a client downloads attachments (-06 §5.10): through its provider
/// and the hub's `proxyDownload` (the default), by Oblivious HTTP through
/// its provider (the Relay) to the hub's Gateway, or directly from the
/// asset provider, which the draft does NOT RECOMMEND and which is only
/// used when chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DownloadPath {
    /// The provider asks the hub, which fetches: the hub and the provider
    /// see the URL, the asset provider sees only the hub.
    #[default]
    Proxy,
    /// Encapsulated to the hub's Gateway key: the provider sees neither
    /// URL nor content, the hub not the device.
    Ohttp,
    /// The device fetches the URL itself.
    Direct,
}

impl std::str::FromStr for DownloadPath {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "proxy" => Ok(Self::Proxy),
            "ohttp" => Ok(Self::Ohttp),
            "direct" => Ok(Self::Direct),
            other => Err(format!("`{other}`: expected proxy, ohttp or direct")),
        }
    }
}

/// How often an operation is rebuilt after `wrongEpoch` / `epochTooOld`,
/// and how often a request is sent when no answer comes.
const ATTEMPTS: usize = 4;

/// How long [`Client::settle`] waits for the fanout to tell whether a
/// commit whose answer was lost was accepted.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Client {
    /// Registers a new device on [`crate::CIPHERSUITE`] with its provider.
    pub async fn register(device_uri: &str, connection: ProviderConnection) -> Result<Self> {
        Self::register_with_ciphersuite(device_uri, connection, crate::CIPHERSUITE).await
    }

    /// Registers a new device on `ciphersuite` with its provider
    /// ([`Device::with_ciphersuite`]).
    pub async fn register_with_ciphersuite(
        device_uri: &str,
        connection: ProviderConnection,
        ciphersuite: Ciphersuite,
    ) -> Result<Self> {
        Self::register_device(device_uri, connection, ciphersuite, false).await
    }

    /// Registers a device on `ciphersuite`; with `replace`, also a device
    /// id the provider already has ([`ProviderConnection::register_device`]:
    /// `connection` then carries its current token or the admin token).
    /// The device's keys are always new.
    pub async fn register_device(
        device_uri: &str,
        mut connection: ProviderConnection,
        ciphersuite: Ciphersuite,
        replace: bool,
    ) -> Result<Self> {
        let device = Device::with_ciphersuite(device_uri, ciphersuite)?;
        connection
            .register_device(device.user_uri().as_str(), device_uri, replace)
            .await?;
        Ok(Self {
            device,
            connection,
            cursor: 0,
            path: None,
            download_path: DownloadPath::default(),
        })
    }

    /// Loads a device saved with [`Client::save`]; `connection` must point
    /// at the same provider (its token is restored).
    pub fn load(path: &Path, connection: ProviderConnection) -> Result<Self> {
        let device = Device::load(path)?;
        let state_path = session_path(path);
        let text = std::fs::read_to_string(&state_path).map_err(|e| ClientError::State {
            path: state_path.clone(),
            reason: e.to_string(),
        })?;
        // It holds the bearer token.
        crate::device::check_private(&state_path)?;
        let state: SessionState = serde_json::from_str(&text).map_err(|e| ClientError::State {
            path: state_path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            device,
            connection: connection.with_token(state.token),
            cursor: state.cursor,
            path: Some(path.to_owned()),
            download_path: DownloadPath::default(),
        })
    }

    /// Saves the device and the session beside it.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.device.save(path)?;
        let state = SessionState {
            provider: self.connection.base.clone(),
            token: self.connection.token.clone().unwrap_or_default(),
            cursor: self.cursor,
        };
        let state_path = session_path(path);
        let text = serde_json::to_string_pretty(&state)
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        // The session holds the bearer token: owner-only, like the device.
        crate::device::write_private(&state_path, text.as_bytes()).map_err(|e| {
            ClientError::State {
                path: state_path,
                reason: e.to_string(),
            }
        })?;
        self.path = Some(path.to_owned());
        Ok(())
    }

    fn autosave(&mut self) -> Result<()> {
        match self.path.clone() {
            Some(path) => self.save(&path),
            None => Ok(()),
        }
    }

    /// Generates and uploads `n` KeyPackages (plus one last-resort one).
    pub async fn publish_key_packages(&mut self, n: usize) -> Result<u64> {
        let kps = self
            .device
            .generate_key_packages(n, KeyPackageOptions::default())?;
        let mut stored = self
            .connection
            .upload_key_packages(
                &kps.iter()
                    .map(|k| k.mls_message.clone())
                    .collect::<Vec<_>>(),
                false,
            )
            .await?;
        let last = self.device.generate_key_packages(
            1,
            KeyPackageOptions {
                last_resort: true,
                ..KeyPackageOptions::default()
            },
        )?;
        stored += self
            .connection
            .upload_key_packages(&[last[0].mls_message.clone()], true)
            .await?;
        self.autosave()?;
        Ok(stored)
    }

    /// Creates a room hosted by this device's provider (-06 §3.1), with
    /// the hub as external sender and as franking agent (-06 §5.4.1).
    pub async fn create_room(&mut self, room: &str) -> Result<()> {
        self.create_room_with(room, RoomOptions::default()).await
    }

    /// [`Client::create_room`] with the room's policy, participants and
    /// metadata from `options`; the hub's external sender and franking
    /// key are always added.
    pub async fn create_room_with(&mut self, room: &str, options: RoomOptions) -> Result<()> {
        let hub = self.connection.hub_info(self.device.ciphersuite()).await?;
        let options = RoomOptions {
            franking_agent: options.franking.then_some(hub.franking_agent),
            ..options
        };
        let created = self
            .device
            .create_room(room, Some(hub.external_sender), options)?;
        if let Err(e) = self.connection.create_room(&created).await {
            self.device.forget_room(room)?;
            return Err(e);
        }
        self.autosave()
    }

    /// Fetches and processes every queued event, in order.
    pub async fn sync(&mut self) -> Result<Vec<Event>> {
        // Applied and saved before a crash, never acknowledged: the
        // provider still holds those events.
        let applied = self.device.delivered_up_to();
        if applied > self.cursor {
            self.connection.ack(applied).await?;
            self.cursor = applied;
        }
        let mut all = Vec::new();
        while let Some((events, last)) = self.fetch_and_apply().await? {
            all.extend(events);
            // Saved before acknowledged: the provider deletes what is
            // acknowledged, so a crash in between must find the events
            // either still queued or already in the device file.
            self.autosave()?;
            self.connection.ack(last).await?;
            self.cursor = last;
        }
        Ok(all)
    }

    /// One step of [`Client::sync`]: fetches the next batch of queued
    /// events and applies it to the device in memory, neither saved nor
    /// acknowledged; returns its events and the last sequence number, or
    /// `None` when nothing is queued. Events at or below the device's
    /// [`Device::delivered_up_to`] (applied, saved, then not acknowledged
    /// before a crash) are skipped, not applied twice.
    pub async fn fetch_and_apply(&mut self) -> Result<Option<(Vec<Event>, u64)>> {
        let after = self.cursor.max(self.device.delivered_up_to());
        let batch = self.connection.events(after, 256).await?;
        let Some(last) = batch.last().map(|e| e.seq) else {
            return Ok(None);
        };
        let mut all = Vec::new();
        for event in batch {
            if event.seq <= self.device.delivered_up_to() {
                continue;
            }
            match self.device.process_fanout(event.fanout) {
                Ok(events) => all.extend(events),
                // A message this device cannot use (e.g. for a room it
                // left) must not block the queue.
                Err(e) => all.push(Event::InvalidMessage {
                    room: event.room_id,
                    sender: None,
                    reason: e.to_string(),
                }),
            }
            self.device.mark_delivered(event.seq);
        }
        // Everything up to `last` is applied, including events skipped as
        // applied before.
        self.device.mark_delivered(last);
        Ok(Some((all, last)))
    }

    /// Sends a handshake to the hub and applies its answer.
    async fn commit(&mut self, room: &str, request: UpdateRequest) -> Result<UpdateResult> {
        // Kept and saved before it leaves: after a crash or a lost answer
        // the same bytes go again ([`Client::settle`]), never a rebuilt
        // commit that could contradict one the hub already accepted.
        self.device.set_update_in_flight(room, Some(&request))?;
        self.autosave()?;
        self.deliver_update(room, &request, false).await
    }

    /// Sends `request`, the update in flight for `room`, byte for byte
    /// again while no answer comes, and applies the hub's answer.
    /// `lost_before`: an earlier copy may have reached the hub.
    async fn deliver_update(
        &mut self,
        room: &str,
        request: &UpdateRequest,
        lost_before: bool,
    ) -> Result<UpdateResult> {
        let connection = self.connection.clone();
        let (answer, lost) = again_on_loss(|| connection.update(room, request)).await;
        let lost = lost || lost_before;
        let outcome = match answer {
            Ok(response) => match response.response_code() {
                UpdateResponseCode::Success => {
                    self.device.confirm_commit(room)?;
                    Ok(UpdateResult::Accepted)
                }
                // The hub no longer knows an earlier copy (another process
                // of it, or a restart, took the answer away): it may have
                // accepted that copy. The fanout of the epoch decides.
                UpdateResponseCode::WrongEpoch if lost => self.settle_by_fanout(room).await,
                code => {
                    // Proposals the hub queued that had not reached this
                    // device (e.g. the hub's own Removes, C21): the next
                    // commit, after a sync, includes them (-06 §5.3).
                    let missed_proposals = match &response.result {
                        mimi_protocol::msgs::UpdateResult::InvalidProposal {
                            invalid_proposals,
                        } => self.device.commit_lacks_any(room, invalid_proposals)?,
                        _ => false,
                    };
                    self.device.discard_commit(room)?;
                    if code == UpdateResponseCode::WrongEpoch || missed_proposals {
                        Ok(UpdateResult::Retry)
                    } else {
                        Err(ClientError::UpdateRefused {
                            code,
                            reason: response.error_description.0.clone(),
                        })
                    }
                }
            },
            Err(e) if lost || answer_unknown(&e) => Err(ClientError::AnswerLost {
                room: room.to_owned(),
                reason: e.to_string(),
            }),
            Err(e) => {
                self.device.discard_commit(room)?;
                Err(e)
            }
        };
        let settled = !matches!(outcome, Err(ClientError::AnswerLost { .. }));
        // A refused external join forgot the room, and its record with it.
        if settled && self.device.room_status(room).is_ok() {
            self.device.set_update_in_flight(room, None)?;
        }
        self.autosave()?;
        outcome
    }

    /// Processes the fanout until this device's pending commit in `room` is
    /// settled: merged when its echo comes (the hub had accepted it), or
    /// superseded by another commit of the same epoch.
    async fn settle_by_fanout(&mut self, room: &str) -> Result<UpdateResult> {
        let deadline = std::time::Instant::now() + SETTLE_WAIT;
        loop {
            let events = self.sync().await?;
            let confirmed = events
                .iter()
                .any(|e| matches!(e, Event::OwnCommitConfirmed { room: r, .. } if r == room));
            if confirmed {
                return Ok(UpdateResult::Accepted);
            }
            let joining = self.device.room_status(room).ok()
                == Some(crate::RoomStatus::JoiningByExternalCommit);
            if self.device.room_status(room).is_err()
                || (!joining && !self.device.has_pending_commit(room)?)
            {
                return Ok(UpdateResult::Retry);
            }
            if std::time::Instant::now() > deadline {
                return Err(ClientError::AnswerLost {
                    room: room.to_owned(),
                    reason: "the hub moved to a later epoch and its fanout has not \
                             yet told whether it was this change"
                        .into(),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Settles a commit of this device to `room` whose answer never came
    /// (a crash, a cut connection) before anything else is done there.
    pub async fn settle(&mut self, room: &str) -> Result<()> {
        if self.device.room_status(room).is_err() {
            return Ok(());
        }
        let Some(request) = self.device.update_in_flight(room)? else {
            return Ok(());
        };
        match self.deliver_update(room, &request, true).await? {
            UpdateResult::Accepted => Ok(()),
            UpdateResult::Retry => {
                self.sync().await?;
                Ok(())
            }
        }
    }

    /// Runs `build` → commit, catching up and rebuilding on `wrongEpoch`.
    async fn with_retries(
        &mut self,
        room: &str,
        mut build: impl FnMut(&mut Device) -> crate::Result<UpdateRequest>,
    ) -> Result<()> {
        self.settle(room).await?;
        for _ in 0..ATTEMPTS {
            let request = build(&mut self.device)?;
            if let UpdateResult::Accepted = self.commit(room, request).await? {
                return Ok(());
            }
            self.sync().await?;
        }
        Err(ClientError::UpdateRefused {
            code: UpdateResponseCode::WrongEpoch,
            reason: "the room kept moving; gave up".into(),
        })
    }

    /// Adds a user with all their devices (-06 §3.2): their KeyPackages
    /// are claimed through the room's hub, then one commit adds them.
    pub async fn add_user(&mut self, room: &str, user: &str, role: u32) -> Result<()> {
        let request = self.device.key_material_request(user, Some(room))?;
        let response = self.connection.key_material(&request).await?;
        let kps: Vec<_> = key_packages_from_response(&response)
            .into_iter()
            .map(|(_, kp)| kp)
            .collect();
        if kps.is_empty() {
            return Err(ClientError::NoKeyPackages {
                user: user.to_owned(),
                status: format!("{:?}", response.user_status),
            });
        }
        let user = user.to_owned();
        self.with_retries(room, |d| d.add_user(room, &user, role, kps.clone()))
            .await
    }

    pub async fn remove_user(&mut self, room: &str, user: &str) -> Result<()> {
        self.with_retries(room, |d| d.remove_user(room, user)).await
    }

    pub async fn set_role(&mut self, room: &str, user: &str, role: u32) -> Result<()> {
        self.with_retries(room, |d| d.set_role(room, user, role))
            .await
    }

    /// Replaces the room metadata (-06 §7.6); the hub checks the
    /// capability of every field it changes.
    pub async fn set_room_metadata(
        &mut self,
        room: &str,
        metadata: &mimi_protocol::components::RoomMetaData,
    ) -> Result<()> {
        self.with_retries(room, |d| d.set_room_metadata(room, metadata))
            .await
    }

    /// Replaces a room component (e.g. `preauth_list`) with `data`
    /// ([`Device::update_component`]).
    pub async fn update_component(
        &mut self,
        room: &str,
        component: mimi_protocol::components::ComponentId,
        data: Vec<u8>,
    ) -> Result<()> {
        self.with_retries(room, |d| d.update_component(room, component, data.clone()))
            .await
    }

    /// Creates a join link of `room` for `role` and adds it to the room
    /// (room-policy §Join Link policies component; docs/divergences.md
    /// C27); returns the link to hand out. Without `expires_in`, the link
    /// lasts as long as the room's policy allows (forever if it sets no
    /// expiration).
    pub async fn create_join_link(
        &mut self,
        room: &str,
        role: u32,
        expires_in: Option<std::time::Duration>,
    ) -> Result<String> {
        let now = crate::requests::unix_now();
        let link =
            self.device
                .new_join_link(room, role, expires_in.map(|d| now + d.as_secs()), now)?;
        self.with_retries(room, |d| d.add_join_link(room, &link))
            .await?;
        Ok(link)
    }

    /// Removes a join link from `room`.
    pub async fn remove_join_link(&mut self, room: &str, link: &str) -> Result<()> {
        self.with_retries(room, |d| d.remove_join_link(room, link))
            .await
    }

    /// Turns franking on in a room created without it, with the hub's
    /// franking key ([`Device::enable_franking`]).
    pub async fn enable_franking(&mut self, room: &str) -> Result<()> {
        let ciphersuite = self.device.room_ciphersuite(room)?;
        let agent = self.connection.hub_info(ciphersuite).await?.franking_agent;
        self.with_retries(room, |d| d.enable_franking(room, &agent))
            .await
    }

    /// Commits proposals queued by others (e.g. a leave, -06 §3.5).
    pub async fn commit_pending(&mut self, room: &str) -> Result<()> {
        self.with_retries(room, |d| d.commit_pending(room)).await
    }

    /// Leaves a room: the proposals go to the hub; the next committer
    /// completes the departure (-06 §3.5).
    pub async fn leave(&mut self, room: &str) -> Result<()> {
        self.settle(room).await?;
        let request = self.device.leave(room)?;
        // Proposals sent again byte for byte are answered once (S26).
        let connection = self.connection.clone();
        let response = again_on_loss(|| connection.update(room, &request))
            .await
            .0?;
        match response.response_code() {
            UpdateResponseCode::Success => self.autosave(),
            code => Err(ClientError::UpdateRefused {
                code,
                reason: response.error_description.0.clone(),
            }),
        }
    }

    /// Joins a room this device's user is a participant of, by external
    /// commit from the hub's GroupInfo (-06 §3.6, §5.6).
    pub async fn join(&mut self, room: &str) -> Result<()> {
        self.join_with(room, None).await
    }

    /// Joins the room of a join link (docs/divergences.md C27): the link
    /// is the joining code of the groupInfo request, and the external
    /// commit adds this user with the link's role. Returns the room.
    pub async fn join_by_link(&mut self, link: &str) -> Result<String> {
        let text = mimi_room::policy::join_links::JoinLinkText::parse(link.as_bytes())
            .map_err(|e| crate::Error::RoomState(e.to_string()))?;
        self.join_with(&text.room, Some(link.as_bytes())).await?;
        Ok(text.room)
    }

    /// Asks to be added to a room this user may join by itself
    /// (preauthorized, or an open room) with an external join proposal
    /// instead of an external commit (room-policy §Adding;
    /// docs/divergences.md C29): the next commit of any member adds the
    /// user, and this device joins from the Welcome on a later `sync`.
    pub async fn ask_to_join(&mut self, room: &str) -> Result<()> {
        let (request, key) = self.device.group_info_request(room, None)?;
        let response = self.connection.group_info(room, &request).await?;
        let tbe = self.device.open_group_info_response(&key, &response)?;
        let (update, key_package) = self.device.external_join_proposal(room, &tbe.group_info)?;
        self.connection
            .register_own_key_package(&key_package)
            .await?;
        let connection = self.connection.clone();
        let response = again_on_loss(|| connection.update(room, &update)).await.0?;
        match response.response_code() {
            UpdateResponseCode::Success => Ok(()),
            code => Err(ClientError::UpdateRefused {
                code,
                reason: response.error_description.0.clone(),
            }),
        }
    }

    async fn join_with(&mut self, room: &str, join_link: Option<&[u8]>) -> Result<()> {
        self.settle(room).await?;
        if self.device.room_status(room).ok() == Some(crate::RoomStatus::Active) {
            return Ok(());
        }
        for _ in 0..ATTEMPTS {
            let (request, key) = self
                .device
                .group_info_request(room, join_link.map(<[u8]>::to_vec))?;
            let response = self.connection.group_info(room, &request).await?;
            let update = self
                .device
                .join_from_group_info_response_with(&key, &response, join_link)?;
            if let UpdateResult::Accepted = self.commit(room, update).await? {
                return Ok(());
            }
        }
        Err(ClientError::UpdateRefused {
            code: UpdateResponseCode::WrongEpoch,
            reason: "the room kept moving; gave up".into(),
        })
    }

    /// Reports the message `id` of `room` to the room's hub (-06 §5.9).
    pub async fn report(
        &mut self,
        room: &str,
        id: MessageId,
        reason: AbuseType,
        note: &str,
    ) -> Result<()> {
        let report = self.device.abuse_report(room, id, reason, note)?;
        self.connection.report(room, &report).await
    }

    /// Sends a message (-06 §3.4, §5.4); returns its message ID. A commit
    /// of this device to the room whose answer was lost is settled first.
    /// Sends a file (draft-ietf-mimi-content §Attachments): encrypts it
    /// with a fresh key (AES-128-GCM), uploads the ciphertext to this
    /// device's provider, and sends an `ExternalPart` with its URL, key,
    /// nonce and hash, `caption` as its description. The message is
    /// refused, before it leaves, if the room's policy forbids it
    /// (room-policy §Asset policies).
    pub async fn send_file(
        &mut self,
        room: &str,
        file: &[u8],
        media_type: &str,
        filename: &str,
        caption: &str,
        progress: Option<Progress>,
    ) -> Result<MessageId> {
        let sealed = mimi_assets::seal(mimi_assets::AeadAlgorithm::default(), file)
            .map_err(AttachmentError::from)?;
        let uploaded = self
            .connection
            .upload_asset(sealed.ciphertext.clone(), media_type, progress)
            .await?;
        let mut part = sealed.external_part(uploaded.url, media_type);
        part.filename = filename.to_owned();
        part.description = caption.to_owned();
        part.expires = u32::try_from(uploaded.expires).unwrap_or(u32::MAX);
        // Device::send refuses what the room's policy forbids (the
        // sender's upload capabilities, the asset policy's upload domains,
        // media types and sizes).
        self.send(room, content::attachment(part)).await
    }

    /// Downloads and decrypts the attachments of message `id` in `room`
    /// through this device's provider and the room's hub (-06 §5.10):
    /// each part's bytes are checked against its hash and AEAD tag, and a
    /// mismatch is an error, never content.
    pub async fn download_attachments(
        &mut self,
        room: &str,
        id: &MessageId,
    ) -> Result<Vec<(mimi_content::ExternalPart, Vec<u8>)>> {
        let message = self
            .device
            .history(room)?
            .into_iter()
            .find(|m| m.id == *id)
            .ok_or_else(|| AttachmentError::NoAttachment(id.to_string()))?;
        let parts: Vec<mimi_content::ExternalPart> = content::external_parts(&message.content)
            .into_iter()
            .cloned()
            .collect();
        if parts.is_empty() {
            return Err(AttachmentError::NoAttachment(id.to_string()).into());
        }
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            mimi_assets::validate_part(&part).map_err(AttachmentError::from)?;
            let downloaded = self.fetch_asset(&part.url, room).await?;
            let plaintext = mimi_assets::open(&downloaded, &part).map_err(AttachmentError::from)?;
            out.push((part, plaintext));
        }
        Ok(out)
    }

    /// The bytes at an asset URL, by [`Self::download_path`], if the
    /// room's asset policy allows that path (room-policy §Asset policies,
    /// `download_privacy`).
    async fn fetch_asset(&self, url: &str, room: &str) -> Result<Vec<u8>> {
        if let Some(assets) = self.device.room_policy(room)?.assets {
            use mimi_protocol::components::policy_components::DownloadPrivacyType as T;
            let chosen = match self.download_path {
                DownloadPath::Proxy => T::HubProxy,
                DownloadPath::Ohttp => T::Ohttp,
                DownloadPath::Direct => T::Direct,
            };
            let privacy = &assets.download_privacy;
            if !privacy.allows(chosen) {
                return Err(AttachmentError::DownloadPath(format!(
                    "the room does not allow downloads by {:?} (room-policy §Asset policies); its default is {:?}",
                    self.download_path, privacy.default_download_type
                ))
                .into());
            }
        }
        match self.download_path {
            DownloadPath::Proxy => self.connection.download_asset(url, room).await,
            DownloadPath::Direct => self.connection.download_direct(url).await,
            DownloadPath::Ohttp => {
                let hub = mimi_protocol::MimiUri::parse(room)
                    .map_err(|e| ClientError::Malformed(e.to_string()))?
                    .domain()
                    .to_ascii_lowercase();
                let target = reqwest::Url::parse(url)
                    .map_err(|e| ClientError::Malformed(format!("asset URL {url:?}: {e}")))?;
                let keys = self.connection.ohttp_keys(&hub).await?;
                let (request, opener) = mimi_assets::oblivious::seal_request(&keys, &target)
                    .map_err(AttachmentError::from)?;
                let answer = self.connection.ohttp_relay(&hub, request).await?;
                let (status, body) = opener.open(&answer).map_err(AttachmentError::from)?;
                if !(200..300).contains(&status) {
                    return Err(ClientError::Refused {
                        status,
                        reason: format!(
                            "the hub's OHTTP Gateway: {}",
                            String::from_utf8_lossy(&body)
                        ),
                    });
                }
                Ok(body)
            }
        }
    }

    pub async fn send(&mut self, room: &str, content: MimiContent) -> Result<MessageId> {
        self.settle(room).await?;
        for _ in 0..ATTEMPTS {
            let outgoing = self.device.send(room, content.clone())?;
            // Saved before it leaves: the ratchet has moved on, and a crash
            // after the hub accepted must not send other bytes under the
            // same generation.
            self.autosave()?;
            // No answer: the same bytes go again, which the hub answers
            // with its original acceptance if it had accepted them
            // (docs/divergences.md S26). A message that never got an
            // answer stays pending in the history until the hub's echo
            // settles it.
            let connection = self.connection.clone();
            let response = again_on_loss(|| connection.submit(room, &outgoing.request))
                .await
                .0?;
            match response.status {
                SubmitStatus::Accepted {
                    accepted_timestamp,
                    frank,
                } => {
                    self.device.message_accepted(
                        room,
                        outgoing.message_id,
                        accepted_timestamp,
                        frank,
                    )?;
                    self.autosave()?;
                    return Ok(outgoing.message_id);
                }
                SubmitStatus::EpochTooOld { .. } => {
                    self.device.discard_message(room, outgoing.message_id)?;
                    self.sync().await?;
                }
                SubmitStatus::NotAllowed => {
                    self.device.discard_message(room, outgoing.message_id)?;
                    return Err(ClientError::SubmitRefused(
                        "notAllowed (the room's policy does not let this user send)".into(),
                    ));
                }
            }
        }
        Err(ClientError::SubmitRefused(
            "the room kept moving; gave up".into(),
        ))
    }
}

/// Called with (bytes sent, total) while an upload goes out.
pub type Progress = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Why an attachment could not be sent or opened.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error(transparent)]
    Seal(#[from] mimi_assets::SealError),
    #[error("message {0} has no attachment")]
    NoAttachment(String),
    #[error("the downloaded attachment does not check out: {0}")]
    Open(#[from] mimi_assets::OpenError),
    #[error("Oblivious HTTP: {0}")]
    Oblivious(#[from] mimi_assets::oblivious::ObliviousError),
    #[error("{0}")]
    DownloadPath(String),
}

enum UpdateResult {
    Accepted,
    Retry,
}

/// The session file (token, event cursor) kept beside a device file.
pub fn session_path(device_path: &Path) -> PathBuf {
    let mut name = device_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".session.json");
    device_path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_file_sits_beside_the_device() {
        assert_eq!(
            session_path(Path::new("/x/alice.device")),
            PathBuf::from("/x/alice.device.session.json")
        );
    }
}
