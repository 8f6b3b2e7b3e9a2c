//! The room policy components of draft-ietf-mimi-room-policy beyond roles,
//! preauthorization, base policy and status notifications: `join_link_policy`
//! and `join_links` (§Join Link policies component), `link_preview_policy`
//! (§Link Preview policy component), `asset_policy` (§Asset policies
//! component), `logging_policy` (§Logging policy component),
//! `chat_history_policy` (§Chat history policy component), `bot_policy`
//! (§Chat bot policy component), `message_expiration_policy` (§Message
//! expiration policy component) and `mls_operational_policy` (§Operational
//! policy component).
//!
//! These are wire types: decoding checks lengths, enum values and
//! selectors, and each `validate` checks the prose constraints a component
//! can check on its own. Where the draft's syntax is not well-formed we
//! follow the readings of `docs/divergences.md` (C12a–C12j), noted at each
//! type.

use std::io::{Read, Write};

use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::ComponentId;
use super::room_metadata::Uri;
use super::room_policy::{Optionality, RoomPolicyError, tls_bool};
use crate::msgs::CipherSuite;

/// `select (Optionality) { case required: T; case optional: T; case
/// forbidden: struct {}; }` — the shape shared by the link preview,
/// logging, history and expiration policies: the settings follow the
/// `Optionality` octet unless the feature is forbidden.
///
/// The draft writes `case mandatory:`, a value `Optionality` does not have;
/// we read it as `required(1)` (divergence C12a). Other octets than 0–2 are
/// refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gated<T> {
    Optional(T),
    Required(T),
    Forbidden,
}

impl<T> Gated<T> {
    /// The `Optionality` octet on the wire.
    pub fn optionality(&self) -> Optionality {
        match self {
            Self::Optional(_) => Optionality::Optional,
            Self::Required(_) => Optionality::Required,
            Self::Forbidden => Optionality::Forbidden,
        }
    }

    /// The settings, absent when forbidden.
    pub fn settings(&self) -> Option<&T> {
        match self {
            Self::Optional(t) | Self::Required(t) => Some(t),
            Self::Forbidden => None,
        }
    }
}

impl<T: Size> Size for Gated<T> {
    fn tls_serialized_len(&self) -> usize {
        1 + self.settings().map_or(0, Size::tls_serialized_len)
    }
}

impl<T: Serialize> Serialize for Gated<T> {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let n = self.optionality().tls_serialize(writer)?;
        Ok(n + match self.settings() {
            Some(t) => t.tls_serialize(writer)?,
            None => 0,
        })
    }
}

impl<T: Deserialize> Deserialize for Gated<T> {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        Ok(match Optionality::tls_deserialize(bytes)? {
            Optionality::Optional => Self::Optional(T::tls_deserialize(bytes)?),
            Optionality::Required => Self::Required(T::tls_deserialize(bytes)?),
            Optionality::Forbidden => Self::Forbidden,
        })
    }
}

// --- §Join Link policies component -------------------------------------

/// `JoinLinkPolicy` (§Join Link policies component) — data of
/// `join_link_policy` and its update format.
///
/// `join_link` is a plain `Uri` as declared; the prose calls it
/// `link_requests` and says "if present", so an empty URI means no request
/// URI (divergence C12b).
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct JoinLinkPolicy {
    /// At most one join link is persisted at a time.
    #[tls_codec(with = "tls_bool")]
    pub on_request: bool,
    /// Where a client can request an invite code; empty if none.
    pub join_link: Uri,
    #[tls_codec(with = "tls_bool")]
    pub multiuser: bool,
    /// Seconds a new link stays valid after creation.
    pub expiration: u32,
}

/// `struct { opaque join_link<V>; } JoinLink;` — the draft's `opaque
/// join_link;` has no length; a link is variable-length (divergence C12c).
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct JoinLink {
    pub join_link: VLBytes,
}

impl JoinLink {
    pub fn new(link: impl Into<Vec<u8>>) -> Self {
        Self {
            join_link: VLBytes::new(link.into()),
        }
    }
}

/// `JoinLink JoinLinksData<V>;` — data of `join_links`: one vector of
/// links, encoded as the vector alone (divergence C12d).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct JoinLinksData {
    pub join_links: Vec<JoinLink>,
}

/// `struct { uint32 removedIndices<V>; JoinLink added_links<V>; }
/// JoinLinksUpdate;` — the update format of `join_links`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct JoinLinksUpdate {
    pub removed_indices: Vec<u32>,
    pub added_links: Vec<JoinLink>,
}

/// Why a `JoinLinksUpdate` does not apply to a `join_links` list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinLinksError {
    #[error("join_links: removed index {0} is not in the list")]
    NoSuchIndex(u32),
    #[error("join_links: index {0} removed twice")]
    RemovedTwice(u32),
    #[error("join_links: link listed twice")]
    Duplicate,
}

impl JoinLinksData {
    /// The list after `update`, read like the participant list's update
    /// (-06 §7.5): `removedIndices` are positions in this list, removed
    /// first; `added_links` are appended in order. A link may appear once.
    pub fn apply(&self, update: &JoinLinksUpdate) -> Result<Self, JoinLinksError> {
        let mut removed = vec![false; self.join_links.len()];
        for &index in &update.removed_indices {
            let slot = usize::try_from(index)
                .ok()
                .and_then(|i| removed.get_mut(i))
                .ok_or(JoinLinksError::NoSuchIndex(index))?;
            if std::mem::replace(slot, true) {
                return Err(JoinLinksError::RemovedTwice(index));
            }
        }
        let mut join_links: Vec<JoinLink> = self
            .join_links
            .iter()
            .zip(&removed)
            .filter(|(_, gone)| !**gone)
            .map(|(link, _)| link.clone())
            .collect();
        for link in &update.added_links {
            if join_links.contains(link) {
                return Err(JoinLinksError::Duplicate);
            }
            join_links.push(link.clone());
        }
        Ok(Self { join_links })
    }

    /// The position of `link` in the list.
    pub fn index_of(&self, link: &[u8]) -> Option<u32> {
        self.join_links
            .iter()
            .position(|l| l.join_link.as_slice() == link)
            .and_then(|i| u32::try_from(i).ok())
    }
}

// --- §Link Preview policy component ------------------------------------

/// `LinkPreviewPolicy` (§Link Preview policy component) — data of
/// `link_preview_policy` and its update format.
///
/// `link_preview_proxy` is the `link_preview_proxy_use` octet and the
/// `Uri link_preview_proxy<V>` vector it selects (divergences C12a, C12e).
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct LinkPreviewPolicy {
    /// Must not be `required` ([`Self::validate`]).
    pub autodetect_hyperlinks_in_text: Optionality,
    pub send_link_previews: Optionality,
    pub automatic_link_previews: Optionality,
    pub link_preview_proxy: Gated<Vec<Uri>>,
}

impl LinkPreviewPolicy {
    /// `autodetect_hyperlinks_in_text` is not `required`, and a proxy URI
    /// is listed unless proxy use is forbidden (§Link Preview policy).
    pub fn validate(&self) -> Result<(), RoomPolicyError> {
        if self.autodetect_hyperlinks_in_text == Optionality::Required {
            return Err(RoomPolicyError::AutodetectRequired);
        }
        if self
            .link_preview_proxy
            .settings()
            .is_some_and(Vec::is_empty)
        {
            return Err(RoomPolicyError::MissingLinkPreviewProxy);
        }
        Ok(())
    }
}

// --- §Asset policies component -----------------------------------------

/// `enum { unspecified(0), localProvider(1), hub(2), (255) }
/// AssetUploadLocation;`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum AssetUploadLocation {
    Unspecified = 0,
    LocalProvider = 1,
    Hub = 2,
}

/// `struct { opaque domain<V>; } DomainName;`
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct DomainName {
    pub domain: VLBytes,
}

impl DomainName {
    pub fn new(domain: impl AsRef<str>) -> Self {
        Self {
            domain: VLBytes::new(domain.as_ref().as_bytes().to_vec()),
        }
    }
}

/// `struct { DomainName provider; DomainName asset_upload_destinations<V>; }
/// ProviderAssetUploadDomains;`
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ProviderAssetUploadDomains {
    pub provider: DomainName,
    pub asset_upload_destinations: Vec<DomainName>,
}

/// `enum { direct(0), hubProxy(1), ohttp(2), (255) } DownloadPrivacyType;`
/// (-06 §5.10.1–§5.10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum DownloadPrivacyType {
    Direct = 0,
    HubProxy = 1,
    Ohttp = 2,
}

/// `struct { DownloadPrivacyType allowed_download_types<V>;
/// DownloadPrivacyType forbidden_download_types<V>; DownloadPrivacyType
/// default_download_type; } DownloadPrivacy;`
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct DownloadPrivacy {
    pub allowed_download_types: Vec<DownloadPrivacyType>,
    pub forbidden_download_types: Vec<DownloadPrivacyType>,
    pub default_download_type: DownloadPrivacyType,
}

impl DownloadPrivacy {
    /// Whether a client may download the room's assets by `path`: never
    /// when forbidden; else when it is the default, or listed as allowed,
    /// or no list of allowed types narrows the choice (room-policy §Asset
    /// policies; a forbidden default is refused too).
    pub fn allows(&self, path: DownloadPrivacyType) -> bool {
        if self.forbidden_download_types.contains(&path) {
            return false;
        }
        self.allowed_download_types.is_empty()
            || self.allowed_download_types.contains(&path)
            || self.default_download_type == path
    }
}

/// `struct { opaque parameter_name<V>; opaque parameter_value<V>; }
/// Parameter;` (draft-ietf-mls-extensions §6.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Parameter {
    pub parameter_name: VLBytes,
    pub parameter_value: VLBytes,
}

/// `struct { opaque type<V>; Parameter parameters<V>; } MediaType;`
/// (draft-ietf-mls-extensions §6.2.2); `type` is a Rust keyword, hence
/// `media_type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct MediaType {
    /// Top-level type, `/`, subtype (e.g. `text/plain`).
    pub media_type: VLBytes,
    pub parameters: Vec<Parameter>,
}

impl MediaType {
    /// A media type without parameters.
    pub fn new(media_type: impl AsRef<str>) -> Self {
        Self {
            media_type: VLBytes::new(media_type.as_ref().as_bytes().to_vec()),
            parameters: Vec::new(),
        }
    }
}

/// `AssetPolicy` (§Asset policies component) — data of `asset_policy` and
/// its update format.
///
/// `optional<MediaType> permitted_media_types<V>` is read as an optional
/// vector: one presence octet, then the vector if present (divergence
/// C12g). The prose's `asset_upload_domains` is the field `upload_domains`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct AssetPolicy {
    pub asset_upload_location: AssetUploadLocation,
    pub upload_domains: Vec<ProviderAssetUploadDomains>,
    pub download_privacy: DownloadPrivacy,
    /// Maximum sizes in bytes.
    pub max_image: u64,
    pub max_audio: u64,
    pub max_video: u64,
    pub max_attachment: u64,
    pub forbidden_media_types: Vec<MediaType>,
    pub permitted_media_types: Option<Vec<MediaType>>,
}

impl AssetPolicy {
    /// With `hub` upload exactly one provider is listed; no download type is
    /// both allowed and forbidden, and the default is not forbidden
    /// (§Asset policies component).
    pub fn validate(&self) -> Result<(), RoomPolicyError> {
        if self.asset_upload_location == AssetUploadLocation::Hub && self.upload_domains.len() != 1
        {
            return Err(RoomPolicyError::HubUploadDomains(self.upload_domains.len()));
        }
        let p = &self.download_privacy;
        if p.forbidden_download_types
            .iter()
            .any(|t| p.allowed_download_types.contains(t) || *t == p.default_download_type)
        {
            return Err(RoomPolicyError::DownloadTypeConflict);
        }
        Ok(())
    }
}

// --- §Logging policy component -----------------------------------------

/// The fields of [`LoggingPolicy`] present unless logging is forbidden.
/// The two policy URIs are "optional" in the prose but plain `Uri`s in the
/// syntax: empty means none (divergence C12b).
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct LoggingSettings {
    pub logging_clients: Vec<Uri>,
    pub machine_readable_policy: Uri,
    pub human_readable_policy: Uri,
}

/// `LoggingPolicy` (§Logging policy component) — data of `logging_policy`
/// and its update format: the `logging` octet and the fields it selects
/// (divergence C12a).
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct LoggingPolicy {
    pub logging: Gated<LoggingSettings>,
}

impl LoggingPolicy {
    /// Required logging lists at least one logging client.
    pub fn validate(&self) -> Result<(), RoomPolicyError> {
        match &self.logging {
            Gated::Required(s) if s.logging_clients.is_empty() => {
                Err(RoomPolicyError::MissingLoggingClient)
            }
            _ => Ok(()),
        }
    }

    /// "If logging is optional and there is at least one `logging_client`
    /// then logging is active", and required logging is always active.
    pub fn logging_active(&self) -> bool {
        match &self.logging {
            Gated::Required(_) => true,
            Gated::Optional(s) => !s.logging_clients.is_empty(),
            Gated::Forbidden => false,
        }
    }
}

// --- §Chat history policy component ------------------------------------

/// The fields of [`HistoryPolicy`] present unless sharing is forbidden.
/// When forbidden nothing follows the octet; the prose's values (no roles,
/// not automatic, zero seconds) are what absence means (divergence C12f).
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct HistorySharing {
    /// Role indexes allowed to share (the prose's `who_can_share`).
    pub roles_that_can_share: Vec<u32>,
    #[tls_codec(with = "tls_bool")]
    pub automatically_share: bool,
    /// Seconds of history that may be shared.
    pub max_time_period: u32,
}

/// `HistoryPolicy` (§Chat history policy component) — data of
/// `chat_history_policy` and its update format (divergence C12a).
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct HistoryPolicy {
    pub history_sharing: Gated<HistorySharing>,
}

impl HistoryPolicy {
    /// Roles 0 (non-participant) and 1 (banned) cannot share. Roles whose
    /// maximum of active participants is zero cannot either; that needs
    /// the `roles_list` and is left to the caller.
    pub fn validate(&self) -> Result<(), RoomPolicyError> {
        if let Some(s) = self.history_sharing.settings()
            && let Some(&r) = s.roles_that_can_share.iter().find(|&&r| r <= 1)
        {
            return Err(RoomPolicyError::ReservedHistoryRole(r));
        }
        Ok(())
    }
}

// --- §Chat bot policy component ----------------------------------------

/// `Bot` (§Chat bot policy component).
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Bot {
    pub name: VLBytes,
    pub description: VLBytes,
    pub homepage: Uri,
    #[tls_codec(with = "tls_bool")]
    pub local_client_bot: bool,
    /// 0: not an active participant.
    pub bot_role_index: u32,
    #[tls_codec(with = "tls_bool")]
    pub can_target_message_in_group: bool,
    #[tls_codec(with = "tls_bool")]
    pub per_user_content: bool,
}

/// `struct { Bot allowed_bots<V>; } BotPolicy;` — data of `bot_policy` and
/// its update format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct BotPolicy {
    pub allowed_bots: Vec<Bot>,
}

impl BotPolicy {
    /// "A bot with `local_client_bot` set to true has a `bot_role_index` of 0."
    pub fn validate(&self) -> Result<(), RoomPolicyError> {
        if let Some(i) = self
            .allowed_bots
            .iter()
            .position(|b| b.local_client_bot && b.bot_role_index != 0)
        {
            return Err(RoomPolicyError::LocalBotWithRole(i));
        }
        Ok(())
    }
}

// --- §Message expiration policy component ------------------------------

/// The fields of [`MessageExpiration`] present unless expiring messages are
/// forbidden; when forbidden nothing follows the octet (divergence C12f).
/// `optional uint32` is `optional<uint32>` (C10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ExpirationDurations {
    /// Seconds.
    pub min_expiration_duration: u32,
    pub max_expiration_duration: u32,
    pub default_expiration_duration: Option<u32>,
}

/// `MessageExpiration` (§Message expiration policy component) — data of
/// `message_expiration_policy` and its update format (divergence C12a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct MessageExpiration {
    pub expiring_messages: Gated<ExpirationDurations>,
}

impl MessageExpiration {
    /// `min ≤ default ≤ max` (the bounds are the shortest and longest
    /// acceptable durations).
    pub fn validate(&self) -> Result<(), RoomPolicyError> {
        if let Some(d) = self.expiring_messages.settings() {
            let default = d
                .default_expiration_duration
                .unwrap_or(d.min_expiration_duration);
            if !(d.min_expiration_duration <= default && default <= d.max_expiration_duration) {
                return Err(RoomPolicyError::UnorderedBounds(
                    "message_expiration_policy",
                ));
            }
        }
        Ok(())
    }
}

// --- §Operational policy component -------------------------------------

/// `ExtendedCapabilities` (§Operational policy component). The MLS types
/// are carried as raw code points so any registry value, including GREASE,
/// decodes (divergence C12j): `ProtocolVersion`, `ExtensionType`,
/// `ProposalType`, `CredentialType` and `WireFormat` (the draft's
/// `WireFormats`) are RFC 9420 `uint16`s, `ComponentID` is the 16-bit
/// [`ComponentId`] (C9), `ContentType` the RFC 9420 §6 `uint8`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ExtendedCapabilities {
    pub versions: Vec<u16>,
    pub cipher_suites: Vec<CipherSuite>,
    pub extensions: Vec<u16>,
    pub proposals: Vec<u16>,
    pub credentials: Vec<u16>,
    pub wire_formats: Vec<u16>,
    pub component_ids: Vec<ComponentId>,
    pub safe_aad_types: Vec<ComponentId>,
    pub media_types: Vec<MediaType>,
    pub content_types: Vec<u8>,
}

/// `enum { unspecified(0), immediate_commit(1), random_delay(2), (255) }
/// PendingProposalStrategy;` plus `extension(3)`, the value of the
/// select's `case extension:` that the draft does not assign (divergence
/// C12i).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum PendingProposalStrategy {
    Unspecified = 0,
    ImmediateCommit = 1,
    RandomDelay = 2,
    Extension = 3,
}

/// `PendingProposalPolicy`: the strategy octet and what it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PendingProposalPolicy {
    Unspecified,
    ImmediateCommit,
    RandomDelay {
        minimum_delay_ms: u64,
        maximum_delay_ms: u64,
    },
    /// The strategy's parameters are in another component.
    Extension {
        id_of_strategy_params: ComponentId,
    },
}

impl PendingProposalPolicy {
    pub fn strategy(&self) -> PendingProposalStrategy {
        match self {
            Self::Unspecified => PendingProposalStrategy::Unspecified,
            Self::ImmediateCommit => PendingProposalStrategy::ImmediateCommit,
            Self::RandomDelay { .. } => PendingProposalStrategy::RandomDelay,
            Self::Extension { .. } => PendingProposalStrategy::Extension,
        }
    }
}

impl Size for PendingProposalPolicy {
    fn tls_serialized_len(&self) -> usize {
        1 + match self {
            Self::Unspecified | Self::ImmediateCommit => 0,
            Self::RandomDelay { .. } => 16,
            Self::Extension { .. } => 2,
        }
    }
}

impl Serialize for PendingProposalPolicy {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let n = self.strategy().tls_serialize(writer)?;
        Ok(n + match self {
            Self::Unspecified | Self::ImmediateCommit => 0,
            Self::RandomDelay {
                minimum_delay_ms,
                maximum_delay_ms,
            } => {
                minimum_delay_ms.tls_serialize(writer)? + maximum_delay_ms.tls_serialize(writer)?
            }
            Self::Extension {
                id_of_strategy_params,
            } => id_of_strategy_params.tls_serialize(writer)?,
        })
    }
}

impl Deserialize for PendingProposalPolicy {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        Ok(match PendingProposalStrategy::tls_deserialize(bytes)? {
            PendingProposalStrategy::Unspecified => Self::Unspecified,
            PendingProposalStrategy::ImmediateCommit => Self::ImmediateCommit,
            PendingProposalStrategy::RandomDelay => Self::RandomDelay {
                minimum_delay_ms: u64::tls_deserialize(bytes)?,
                maximum_delay_ms: u64::tls_deserialize(bytes)?,
            },
            PendingProposalStrategy::Extension => Self::Extension {
                id_of_strategy_params: ComponentId::tls_deserialize(bytes)?,
            },
        })
    }
}

/// `struct { uint64 minimum_time; uint64 default_time; uint64 maximum_time; }
/// MinDefaultMaxTime;`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct MinDefaultMaxTime {
    pub minimum_time: u64,
    pub default_time: u64,
    pub maximum_time: u64,
}

impl MinDefaultMaxTime {
    fn ordered(&self) -> bool {
        self.minimum_time <= self.default_time && self.default_time <= self.maximum_time
    }
}

/// `struct { uint8 epoch_tolerance; uint16 pad_to_size; uint32
/// max_generations_skipahead; } AppMessagePolicy;`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct AppMessagePolicy {
    pub epoch_tolerance: u8,
    pub pad_to_size: u16,
    pub max_generations_skipahead: u32,
}

/// `OperationalParameters` (§Operational policy component) — data of
/// `mls_operational_policy` and its update format. The draft's `unit64
/// max_kp_lifetime` is `uint64` (divergence C12h).
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct OperationalParameters {
    pub mandatory_capabilities: ExtendedCapabilities,
    pub default_capabilities: ExtendedCapabilities,
    pub forbidden_capabilities: ExtendedCapabilities,
    /// RFC 9420 `WireFormat` code points (C12j).
    pub handshake_formats: Vec<u16>,
    #[tls_codec(with = "tls_bool")]
    pub external_proposal_allowed: bool,
    #[tls_codec(with = "tls_bool")]
    pub external_commit_allowed: bool,
    pub pending_proposal_policy: PendingProposalPolicy,
    /// The draft's `LeafNode_update_time`.
    pub leaf_node_update_time: MinDefaultMaxTime,
    pub app_message_policy: AppMessagePolicy,
    pub max_kp_lifetime: u64,
    pub max_credential_lifetime: u64,
    pub resumption_psk_lifetime: u64,
    pub sender_nonce_keypair_lifetime: MinDefaultMaxTime,
    pub max_keypairs: u32,
    pub buffer_incoming_message_time: MinDefaultMaxTime,
    pub max_buffered_messages: u32,
}

impl OperationalParameters {
    /// Each minimum/default/maximum triple is ordered, and so is a random
    /// commit delay.
    pub fn validate(&self) -> Result<(), RoomPolicyError> {
        for (name, t) in [
            ("LeafNode_update_time", &self.leaf_node_update_time),
            (
                "sender_nonce_keypair_lifetime",
                &self.sender_nonce_keypair_lifetime,
            ),
            (
                "buffer_incoming_message_time",
                &self.buffer_incoming_message_time,
            ),
        ] {
            if !t.ordered() {
                return Err(RoomPolicyError::UnorderedBounds(name));
            }
        }
        if let PendingProposalPolicy::RandomDelay {
            minimum_delay_ms,
            maximum_delay_ms,
        } = self.pending_proposal_policy
            && minimum_delay_ms > maximum_delay_ms
        {
            return Err(RoomPolicyError::UnorderedBounds("random_delay"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::DownloadPrivacyType::{Direct, HubProxy, Ohttp};
    use super::*;

    fn privacy(
        allowed: &[DownloadPrivacyType],
        forbidden: &[DownloadPrivacyType],
        default: DownloadPrivacyType,
    ) -> DownloadPrivacy {
        DownloadPrivacy {
            allowed_download_types: allowed.to_vec(),
            forbidden_download_types: forbidden.to_vec(),
            default_download_type: default,
        }
    }

    #[test]
    fn the_room_decides_which_download_paths_clients_use() {
        let open = privacy(&[], &[], HubProxy);
        assert!(
            [Direct, HubProxy, Ohttp]
                .into_iter()
                .all(|p| open.allows(p))
        );
        // Forbidden wins, over the default too.
        let no_direct = privacy(&[], &[Direct], HubProxy);
        assert!(!no_direct.allows(Direct) && no_direct.allows(Ohttp));
        assert!(!privacy(&[Ohttp], &[HubProxy], HubProxy).allows(HubProxy));
        // An allowed list narrows the choice to it and the default.
        let narrow = privacy(&[Ohttp], &[], HubProxy);
        assert!(narrow.allows(Ohttp) && narrow.allows(HubProxy) && !narrow.allows(Direct));
    }
}
