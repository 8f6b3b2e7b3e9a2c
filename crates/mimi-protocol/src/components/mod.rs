//! Room state components in the MLS `app_data_dictionary` (-06 §7, §10;
//! draft-ietf-mimi-room-policy; draft-ietf-mls-extensions §4.6).
//!
//! Each component is identified by a [`ComponentId`] and carries a TLS-PL
//! value in its `ComponentData.data`; AppDataUpdate proposals carry an
//! update in the component's update format. Decode them with
//! [`decode_component`], which rejects trailing bytes.

pub mod franking;
pub mod participant_list;
pub mod policy_components;
pub mod room_metadata;
pub mod room_policy;

pub use franking::{FrankAAD, FrankingAgentData};
pub use openmls::component::ComponentId;
pub use participant_list::{
    ParticipantListData, ParticipantListError, ParticipantListUpdate, UserRolePair,
    UserindexRolePair,
};
pub use policy_components::{
    AssetPolicy, BotPolicy, HistoryPolicy, JoinLink, JoinLinkPolicy, JoinLinksData, JoinLinksError,
    JoinLinksUpdate, LinkPreviewPolicy, LoggingPolicy, MessageExpiration, OperationalParameters,
};
pub use room_metadata::{RichDescription, RoomMetaData, RoomMetadataError, UTF8String, Uri};
pub use room_policy::{
    BaseRoomPolicy, PreAuthData, Role, RoleData, RoomPolicyError, SingleSourceRoleChangeTargets,
    StatusNotificationPolicy,
};

/// The `app_data_dictionary` type of the extension fields of -06 messages
/// (consent and identifier responses carry an empty one).
pub use openmls::extensions::AppDataDictionary;
use openmls::messages::proposals::AppDataUpdateProposal;

use crate::codec::{DecodeError, decode_exact};

/// `frank_aad` Safe AAD component (-06 §5.4.1, IANA -06 §10). Where: AD.
pub const FRANK_AAD: ComponentId = 0x0020;
/// `franking_signature_key` GroupContext component (IANA -06 §10); its data
/// is [`FrankingAgentData`], which the prose of -06 §5.4.1 calls
/// `franking_agent`.
pub const FRANKING_SIGNATURE_KEY: ComponentId = 0x0021;
/// Alias: the name -06 §5.4.1 uses for [`FRANKING_SIGNATURE_KEY`].
pub const FRANKING_AGENT: ComponentId = FRANKING_SIGNATURE_KEY;
/// `participant_list` (-06 §7.5, IANA -06 §10).
pub const PARTICIPANT_LIST: ComponentId = 0x0022;
/// `room_metadata` (-06 §7.6, IANA -06 §10).
pub const ROOM_METADATA: ComponentId = 0x0023;

// draft-ietf-mimi-room-policy §IANA: values are TBDn with "suggested value"s;
// we use the suggested values.
/// `mls_operational_policy` (room policy, suggested 0x0024).
pub const MLS_OPERATIONAL_POLICY: ComponentId = 0x0024;
/// `roles_list` (room policy §Role-Based Access Control, suggested 0x0025).
pub const ROLES_LIST: ComponentId = 0x0025;
/// `preauth_list` (room policy §Preauthorized Users, suggested 0x0026).
pub const PREAUTH_LIST: ComponentId = 0x0026;
/// `base_room_policy` (room policy §Base Room policy, suggested 0x0027).
pub const BASE_ROOM_POLICY: ComponentId = 0x0027;
/// `status_notification_policy` (suggested 0x0028).
pub const STATUS_NOTIFICATION_POLICY: ComponentId = 0x0028;
/// `join_link_policy` (suggested 0x0029).
pub const JOIN_LINK_POLICY: ComponentId = 0x0029;
/// `join_links` (suggested 0x002A).
pub const JOIN_LINKS: ComponentId = 0x002A;
/// `link_preview_policy` (suggested 0x002B).
pub const LINK_PREVIEW_POLICY: ComponentId = 0x002B;
/// `asset_policy` (suggested 0x002C).
pub const ASSET_POLICY: ComponentId = 0x002C;
/// `logging_policy` (suggested 0x002D).
pub const LOGGING_POLICY: ComponentId = 0x002D;
/// `chat_history_policy` (suggested 0x002E).
pub const CHAT_HISTORY_POLICY: ComponentId = 0x002E;
/// `bot_policy` (suggested 0x002F).
pub const BOT_POLICY: ComponentId = 0x002F;
/// `message_expiration_policy` (suggested 0x0030).
pub const MESSAGE_EXPIRATION_POLICY: ComponentId = 0x0030;

/// A component's data type and its registered id.
pub trait Component: tls_codec::Serialize + tls_codec::Deserialize + Sized {
    /// The component id under which this value is stored.
    const ID: ComponentId;
    /// The registered name.
    const NAME: &'static str;
}

/// A component's update format (the `update` of an AppDataUpdate proposal,
/// mls-extensions §4.7) and the component it applies to.
pub trait ComponentUpdate: tls_codec::Serialize + tls_codec::Deserialize + Sized {
    const ID: ComponentId;
}

/// Decodes a component's `data` (or an update) exactly: no trailing bytes.
pub fn decode_component<T: tls_codec::Deserialize>(data: &[u8]) -> Result<T, DecodeError> {
    decode_exact(data)
}

/// Reads and decodes component `T` from an `app_data_dictionary`; `None`
/// if the component is absent.
pub fn read_component<T: Component>(dict: &AppDataDictionary) -> Result<Option<T>, DecodeError> {
    dict.get(&T::ID).map(decode_exact).transpose()
}

/// Encodes `value` into `dict` under `T::ID`, replacing any previous data.
pub fn write_component<T: Component>(
    dict: &mut AppDataDictionary,
    value: &T,
) -> Result<(), tls_codec::Error> {
    dict.insert(T::ID, value.tls_serialize_detached()?);
    Ok(())
}

/// An AppDataUpdate proposal (`op = update`) carrying `update`.
pub fn update_proposal<U: ComponentUpdate>(
    update: &U,
) -> Result<AppDataUpdateProposal, tls_codec::Error> {
    Ok(AppDataUpdateProposal::update(
        U::ID,
        update.tls_serialize_detached()?,
    ))
}

impl ComponentUpdate for ParticipantListUpdate {
    const ID: ComponentId = PARTICIPANT_LIST;
}

/// `RoomMetaUpdate` has the format of `RoomMetaData` and replaces it.
impl ComponentUpdate for RoomMetaData {
    const ID: ComponentId = ROOM_METADATA;
}

/// `FrankingAgentUpdate` has the format of `FrankingAgentData`.
impl ComponentUpdate for FrankingAgentData {
    const ID: ComponentId = FRANKING_SIGNATURE_KEY;
}

/// `RoleUpdate` has the format of `RoleData` and replaces it.
impl ComponentUpdate for RoleData {
    const ID: ComponentId = ROLES_LIST;
}

/// `BaseRoomUpdate` has the format of `BaseRoomPolicy` and replaces it.
impl ComponentUpdate for BaseRoomPolicy {
    const ID: ComponentId = BASE_ROOM_POLICY;
}

impl Component for ParticipantListData {
    const ID: ComponentId = PARTICIPANT_LIST;
    const NAME: &'static str = "participant_list";
}

impl Component for RoomMetaData {
    const ID: ComponentId = ROOM_METADATA;
    const NAME: &'static str = "room_metadata";
}

impl Component for FrankingAgentData {
    const ID: ComponentId = FRANKING_SIGNATURE_KEY;
    const NAME: &'static str = "franking_signature_key";
}

impl Component for FrankAAD {
    const ID: ComponentId = FRANK_AAD;
    const NAME: &'static str = "frank_aad";
}

impl Component for RoleData {
    const ID: ComponentId = ROLES_LIST;
    const NAME: &'static str = "roles_list";
}

impl Component for PreAuthData {
    const ID: ComponentId = PREAUTH_LIST;
    const NAME: &'static str = "preauth_list";
}

/// `PreAuthUpdate` has the format of `PreAuthData` and replaces it.
impl ComponentUpdate for PreAuthData {
    const ID: ComponentId = PREAUTH_LIST;
}

impl Component for BaseRoomPolicy {
    const ID: ComponentId = BASE_ROOM_POLICY;
    const NAME: &'static str = "base_room_policy";
}

impl Component for StatusNotificationPolicy {
    const ID: ComponentId = STATUS_NOTIFICATION_POLICY;
    const NAME: &'static str = "status_notification_policy";
}

/// `StatusNotificationPolicyUpdate` has the format of the data.
impl ComponentUpdate for StatusNotificationPolicy {
    const ID: ComponentId = STATUS_NOTIFICATION_POLICY;
}

impl Component for JoinLinkPolicy {
    const ID: ComponentId = JOIN_LINK_POLICY;
    const NAME: &'static str = "join_link_policy";
}

/// `JoinLinkPolicyUpdate` has the format of `JoinLinkPolicy`.
impl ComponentUpdate for JoinLinkPolicy {
    const ID: ComponentId = JOIN_LINK_POLICY;
}

impl Component for JoinLinksData {
    const ID: ComponentId = JOIN_LINKS;
    const NAME: &'static str = "join_links";
}

/// `join_links` has its own update format (removals and additions).
impl ComponentUpdate for JoinLinksUpdate {
    const ID: ComponentId = JOIN_LINKS;
}

impl Component for LinkPreviewPolicy {
    const ID: ComponentId = LINK_PREVIEW_POLICY;
    const NAME: &'static str = "link_preview_policy";
}

/// `LinkPreviewPolicyUpdate` has the format of `LinkPreviewPolicy`.
impl ComponentUpdate for LinkPreviewPolicy {
    const ID: ComponentId = LINK_PREVIEW_POLICY;
}

impl Component for AssetPolicy {
    const ID: ComponentId = ASSET_POLICY;
    const NAME: &'static str = "asset_policy";
}

/// `AssetPolicyUpdate` has the format of `AssetPolicy`.
impl ComponentUpdate for AssetPolicy {
    const ID: ComponentId = ASSET_POLICY;
}

impl Component for LoggingPolicy {
    const ID: ComponentId = LOGGING_POLICY;
    const NAME: &'static str = "logging_policy";
}

/// `LoggingPolicyUpdate` has the format of `LoggingPolicy`.
impl ComponentUpdate for LoggingPolicy {
    const ID: ComponentId = LOGGING_POLICY;
}

impl Component for HistoryPolicy {
    const ID: ComponentId = CHAT_HISTORY_POLICY;
    const NAME: &'static str = "chat_history_policy";
}

/// `HistoryPolicyUpdate` has the format of `HistoryPolicy`.
impl ComponentUpdate for HistoryPolicy {
    const ID: ComponentId = CHAT_HISTORY_POLICY;
}

impl Component for BotPolicy {
    const ID: ComponentId = BOT_POLICY;
    const NAME: &'static str = "bot_policy";
}

/// `BotPolicyUpdate` has the format of `BotPolicy`.
impl ComponentUpdate for BotPolicy {
    const ID: ComponentId = BOT_POLICY;
}

impl Component for MessageExpiration {
    const ID: ComponentId = MESSAGE_EXPIRATION_POLICY;
    const NAME: &'static str = "message_expiration_policy";
}

/// `MessageExpirationUpdate` has the format of `MessageExpiration`.
impl ComponentUpdate for MessageExpiration {
    const ID: ComponentId = MESSAGE_EXPIRATION_POLICY;
}

impl Component for OperationalParameters {
    const ID: ComponentId = MLS_OPERATIONAL_POLICY;
    const NAME: &'static str = "mls_operational_policy";
}

/// `OperationalParametersUpdate` has the format of `OperationalParameters`.
impl ComponentUpdate for OperationalParameters {
    const ID: ComponentId = MLS_OPERATIONAL_POLICY;
}
