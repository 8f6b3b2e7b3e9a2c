//! The provider-internal client API of mimi-rs (docs/client-api.md): its
//! paths and its JSON request and response bodies, shared by the server
//! that answers them and the client that sends them.
//!
//! MIMI messages travel TLS-PL encoded (`application/mimi-protocol`) as on
//! the federation wire; only the bookkeeping bodies are JSON, defined
//! here. Binary fields are base64 (standard alphabet, padded).

pub mod paths;

use serde::{Deserialize, Serialize};

/// `POST /client/v1/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterDevice {
    pub user: String,
    pub device: String,
    /// Replace the token of a device id that is already registered (needs
    /// its current token or the admin token). Without it an existing
    /// device is always 409, so nothing is replaced by accident. Sent only
    /// when set, for providers that do not know it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

/// Answer to [`RegisterDevice`]: the device's bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    pub token: String,
}

/// `POST /client/v1/key-packages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadKeyPackages {
    /// Base64 `MLSMessage(KeyPackage)`s (a bare `KeyPackage` is taken too).
    pub key_packages: Vec<String>,
    #[serde(default)]
    pub last_resort: bool,
}

/// A KeyPackage the device spends itself, in its external join proposal
/// (`POST /client/v1/key-packages/own`): recorded as claimed by the
/// device, so that the Welcome adding it is delivered to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnKeyPackage {
    /// Base64 `MLSMessage(KeyPackage)` (a bare `KeyPackage` is taken too).
    pub key_package: String,
}

/// Answer to [`UploadKeyPackages`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub stored: u64,
}

/// Answer to an asset upload (`POST /client/v1/assets`, body: the
/// asset's bytes, already encrypted by the client; the header
/// [`ASSET_MEDIA_TYPE`] names the media type of the plaintext, which the
/// provider checks against the types it accepts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedAsset {
    /// The `https` URL receivers download it from, for the `ExternalPart`
    /// (draft-ietf-mimi-content §External content): on this provider's
    /// asset host, served to peers over mutual TLS.
    pub url: String,
    /// Bytes stored.
    pub size: u64,
    /// Unix seconds after which the provider deletes it (0: kept).
    pub expires: u64,
}

/// The header of an upload naming the plaintext's media type.
pub const ASSET_MEDIA_TYPE: &str = "mimi-asset-media-type";

/// Query of `GET /client/v1/assets/download`: an asset by the URL of its
/// `ExternalPart`, fetched by the device's provider through the hub of
/// `room` (-06 §5.10 `proxyDownload`), so that the asset provider never
/// sees the device. The answer is the asset's bytes, as uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetDownloadQuery {
    pub url: String,
    pub room: String,
}

/// Query of the Oblivious HTTP relay endpoints
/// (`GET /client/v1/ohttp/keys?hub=D`, `POST /client/v1/ohttp/relay?hub=D`):
/// the hub whose Gateway the device's provider relays to (-06 §5.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OhttpQuery {
    pub hub: String,
}

/// Query of `GET /client/v1/hub?ciphersuite=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubQuery {
    /// The room's MLS cipher suite, its code point as a decimal number
    /// (`2` for MLS_128_DHKEMP256_AES128GCM_SHA256_P256).
    #[serde(default = "default_ciphersuite")]
    pub ciphersuite: u16,
}

impl Default for HubQuery {
    fn default() -> Self {
        Self {
            ciphersuite: default_ciphersuite(),
        }
    }
}

/// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, the suite of a `GET
/// /client/v1/hub` without a query.
pub const fn default_ciphersuite() -> u16 {
    1
}

/// Answer to `GET /client/v1/hub`: the hub's keys for rooms on one cipher
/// suite (the hub has a pair per signature scheme, -06 §5.4.1, §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubKeys {
    /// The cipher suite the keys are for (the query's).
    #[serde(default = "default_ciphersuite")]
    pub ciphersuite: u16,
    /// Base64 TLS `ExternalSender`: the hub key of the suite's signature
    /// scheme, for the `external_senders` of rooms this provider hosts.
    pub external_sender: String,
    /// Base64 TLS `FrankingAgentData` (-06 §5.4.1): what rooms hosted here
    /// on the suite put in their `franking_signature_key` component for
    /// the hub to frank their messages.
    pub franking_agent: String,
}

/// `POST /client/v1/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRoom {
    pub room_id: String,
    /// Base64 `MLSMessage(GroupInfo)`.
    pub group_info: String,
    /// Base64 TLS `RatchetTree`.
    pub ratchet_tree: String,
}

/// `PUT /client/v1/profile`: the user's profile and discoverability
/// (-06 §5.8).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// `none` (the default), `exact` or `search`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discoverability: Option<String>,
    /// keyMaterial requests need an explicit grant (-06 §7).
    #[serde(default)]
    pub consent_required: bool,
}

/// `POST /client/v1/consent` (-06 §5.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// `request`, `cancel`, `grant` or `revoke`.
    pub operation: String,
    pub requester: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// Query of `GET /client/v1/events`; unknown parameters are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsQuery {
    /// Events with a greater `seq` are returned.
    #[serde(default)]
    pub after: u64,
    /// At most this many (the server's default and cap apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One queued event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub room_id: String,
    /// Base64 TLS `FanoutMessage` (-06 §5.5).
    pub fanout: String,
}

/// Answer to `GET /client/v1/events`, in delivery order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Events {
    pub events: Vec<Event>,
}

/// `POST /client/v1/events/ack`: deletes the device's events up to `up_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub up_to: u64,
}

/// Answer to [`Ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {
    pub deleted: u64,
}

/// A stored abuse report as `GET /client/v1/admin/reports` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportView {
    pub id: u64,
    pub room_id: String,
    pub source_provider: String,
    pub reporting_user: String,
    pub alleged_abuser: String,
    pub received_at_ms: i64,
    /// `AbuseType` code (-06 §5.9).
    pub reason_code: u8,
    /// The note, UTF-8 (lossy).
    pub note: String,
    /// How many `AbusiveMessage`s the report carries.
    pub messages: usize,
    /// Whether the hub verified every frank before storing the report
    /// (reports stored before verification existed: `false`).
    pub franks_verified: bool,
    /// Base64 TLS `AbuseReport` as received.
    pub report: String,
}

/// `GET /client/v1/admin/dead-letters?limit=M` (admin token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersQuery {
    /// At most this many (the server's default and cap apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A fanout event a follower refused permanently (a 4xx to a `/notify`
/// carrying it alone, -06 §5.5), kept aside so the rest of its room's
/// events reach that follower; listed oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterView {
    /// The id to retry or drop it by (its former outbox id).
    pub id: u64,
    /// The follower's provider domain.
    pub destination: String,
    pub room_id: String,
    /// Its place in the room's event log.
    pub seq: u64,
    /// Failed attempts before it was refused.
    pub attempts: u32,
    pub enqueued_at_ms: i64,
    pub dead_at_ms: i64,
    /// The follower's HTTP status; absent when the hub refused the event
    /// itself (not a `FanoutMessage`, bad room id).
    pub status: Option<u16>,
    /// A prefix of the follower's answer (at most 1024 bytes, UTF-8
    /// lossy), or the hub's reason.
    pub answer: String,
    /// Base64 TLS `FanoutMessage`.
    pub fanout: String,
}

/// Answer to `POST /client/v1/admin/dead-letters/{id}/retry`: the event is
/// back in the outbox, due now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRetried {
    pub outbox_id: u64,
}
