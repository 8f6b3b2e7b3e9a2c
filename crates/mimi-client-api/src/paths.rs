//! Paths of the client API (docs/client-api.md). Route templates use the
//! `{var}` syntax of axum 0.8; the builders fill them.

use mimi_protocol::uri::pct_encode_unreserved;

use crate::{AssetDownloadQuery, DeadLettersQuery, EventsQuery, HubQuery, OhttpQuery};

pub const DEVICES: &str = "/client/v1/devices";
pub const KEY_PACKAGES: &str = "/client/v1/key-packages";
/// A KeyPackage the device spends itself (its external join proposal).
pub const OWN_KEY_PACKAGE: &str = "/client/v1/key-packages/own";
pub const KEY_MATERIAL: &str = "/client/v1/key-material";
pub const HUB: &str = "/client/v1/hub";
pub const PROFILE: &str = "/client/v1/profile";
pub const CONSENT: &str = "/client/v1/consent";
pub const ADMIN_REPORTS: &str = "/client/v1/admin/reports";
pub const ADMIN_DEAD_LETTERS: &str = "/client/v1/admin/dead-letters";
/// `DELETE`: drops the dead letter.
pub const ADMIN_DEAD_LETTER: &str = "/client/v1/admin/dead-letters/{id}";
/// `POST`: moves the dead letter back into the outbox.
pub const ADMIN_DEAD_LETTER_RETRY: &str = "/client/v1/admin/dead-letters/{id}/retry";
pub const ROOMS: &str = "/client/v1/rooms";
/// `POST`: uploads an asset (body: its encrypted bytes).
pub const ASSETS: &str = "/client/v1/assets";
/// `GET`: downloads an asset through the room's hub.
pub const ASSET_DOWNLOAD: &str = "/client/v1/assets/download";
/// `GET`: a hub's OHTTP Gateway key configurations, through this provider.
pub const OHTTP_KEYS: &str = "/client/v1/ohttp/keys";
/// `POST`: an encapsulated request relayed to a hub's OHTTP Gateway.
pub const OHTTP_RELAY: &str = "/client/v1/ohttp/relay";
pub const EVENTS: &str = "/client/v1/events";
pub const EVENTS_ACK: &str = "/client/v1/events/ack";
pub const HEALTH: &str = "/health";
pub const METRICS: &str = "/metrics";

/// A device's request about one room, relayed to the room's hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomAction {
    /// TLS `UpdateRequest` (-06 §5.3).
    Update,
    /// TLS `SubmitMessageRequest` (-06 §5.4).
    Submit,
    /// TLS `GroupInfoRequest` (-06 §5.6).
    GroupInfo,
    /// TLS `AbuseReport` (-06 §5.9).
    Report,
}

impl RoomAction {
    pub const ALL: [RoomAction; 4] = [Self::Update, Self::Submit, Self::GroupInfo, Self::Report];

    /// The route template, with the `{roomId}` variable.
    pub fn route(self) -> &'static str {
        match self {
            Self::Update => "/client/v1/rooms/{roomId}/update",
            Self::Submit => "/client/v1/rooms/{roomId}/submit",
            Self::GroupInfo => "/client/v1/rooms/{roomId}/group-info",
            Self::Report => "/client/v1/rooms/{roomId}/report",
        }
    }

    /// The path for a room: its URI percent-encoded as one path segment
    /// (RFC 6570 simple expansion, as in the federation directory).
    pub fn path(self, room_id: &str) -> String {
        self.route()
            .replace("{roomId}", &pct_encode_unreserved(room_id))
    }
}

/// `GET /client/v1/events?after=N[&limit=M]`.
pub fn events(query: EventsQuery) -> String {
    match query.limit {
        Some(limit) => format!("{EVENTS}?after={}&limit={limit}", query.after),
        None => format!("{EVENTS}?after={}", query.after),
    }
}

/// `GET /client/v1/hub?ciphersuite=N`.
pub fn hub(query: HubQuery) -> String {
    format!("{HUB}?ciphersuite={}", query.ciphersuite)
}

/// `GET /client/v1/admin/dead-letters[?limit=M]`.
pub fn dead_letters(query: DeadLettersQuery) -> String {
    match query.limit {
        Some(limit) => format!("{ADMIN_DEAD_LETTERS}?limit={limit}"),
        None => ADMIN_DEAD_LETTERS.to_owned(),
    }
}

/// `DELETE /client/v1/admin/dead-letters/{id}`.
pub fn dead_letter(id: u64) -> String {
    ADMIN_DEAD_LETTER.replace("{id}", &id.to_string())
}

/// `POST /client/v1/admin/dead-letters/{id}/retry`.
pub fn dead_letter_retry(id: u64) -> String {
    ADMIN_DEAD_LETTER_RETRY.replace("{id}", &id.to_string())
}

/// `GET /client/v1/assets/download?url=…&room=…`.
pub fn asset_download(query: &AssetDownloadQuery) -> String {
    format!(
        "{ASSET_DOWNLOAD}?url={}&room={}",
        pct_encode_unreserved(&query.url),
        pct_encode_unreserved(&query.room)
    )
}

/// `GET /client/v1/ohttp/keys?hub=D`.
pub fn ohttp_keys(query: &OhttpQuery) -> String {
    format!("{OHTTP_KEYS}?hub={}", pct_encode_unreserved(&query.hub))
}

/// `POST /client/v1/ohttp/relay?hub=D`.
pub fn ohttp_relay(query: &OhttpQuery) -> String {
    format!("{OHTTP_RELAY}?hub={}", pct_encode_unreserved(&query.hub))
}
