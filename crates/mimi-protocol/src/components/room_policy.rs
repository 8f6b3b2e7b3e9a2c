//! Room policy components (draft-ietf-mimi-room-policy).
//!
//! Covered: `roles_list` (`RoleData`, §Role-Based Access Control),
//! `preauth_list` (`PreAuthData`, §Preauthorized Users), `base_room_policy`
//! (`BaseRoomPolicy`, §Base Room policy component syntax),
//! `status_notification_policy` (`StatusNotificationPolicy`) and the role
//! capability registry values. The other policy components (join links,
//! link preview, assets, logging, history, bots, expiration, operational)
//! are in [`super::policy_components`]. All of them are wire types with
//! consistency checks; what the hub and clients enforce is decided where
//! the policy is applied, not here.

use std::collections::HashSet;

use openmls::prelude::CredentialType;
use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::ComponentId;
use super::room_metadata::Uri;

/// `uint16 CapabilityType;` (MIMI Role Capabilities registry).
pub type CapabilityType = u16;

/// Values of the MIMI Role Capabilities registry (room policy §IANA).
pub mod capabilities {
    use super::CapabilityType;
    pub const CAN_ADD_PARTICIPANT: CapabilityType = 0x0000;
    pub const CAN_REMOVE_PARTICIPANT: CapabilityType = 0x0001;
    pub const CAN_ADD_OWN_CLIENT: CapabilityType = 0x0002;
    pub const CAN_REMOVE_OWN_CLIENT: CapabilityType = 0x0003;
    pub const CAN_OPEN_JOIN: CapabilityType = 0x0004;
    pub const CAN_JOIN_IF_PREAUTHORIZED: CapabilityType = 0x0005;
    pub const CAN_REMOVE_SELF: CapabilityType = 0x0006;
    /// reserved
    pub const CAN_CREATE_JOIN_CODE: CapabilityType = 0x0007;
    /// reserved
    pub const CAN_DELETE_JOIN_CODE: CapabilityType = 0x0008;
    pub const CAN_USE_JOIN_CODE: CapabilityType = 0x0009;
    pub const CAN_BAN: CapabilityType = 0x000a;
    pub const CAN_UN_BAN: CapabilityType = 0x000b;
    pub const CAN_KICK: CapabilityType = 0x000c;
    /// reserved
    pub const CAN_KNOCK: CapabilityType = 0x000d;
    /// reserved
    pub const CAN_ACCEPT_KNOCK: CapabilityType = 0x000e;
    pub const CAN_CHANGE_USER_ROLE: CapabilityType = 0x000f;
    pub const CAN_CHANGE_OWN_ROLE: CapabilityType = 0x0010;
    /// reserved
    pub const CAN_CREATE_SUBGROUP: CapabilityType = 0x0011;
    pub const CAN_SEND_MESSAGE: CapabilityType = 0x0100;
    pub const CAN_RECEIVE_MESSAGE: CapabilityType = 0x0101;
    pub const CAN_COPY_MESSAGE: CapabilityType = 0x0102;
    pub const CAN_REPORT_ABUSE: CapabilityType = 0x0103;
    pub const CAN_REPLY_TO_MESSAGE: CapabilityType = 0x0104;
    pub const CAN_REACT_TO_MESSAGE: CapabilityType = 0x0105;
    pub const CAN_EDIT_REACTION: CapabilityType = 0x0106;
    pub const CAN_DELETE_OWN_REACTION: CapabilityType = 0x0107;
    pub const CAN_DELETE_OTHER_REACTION: CapabilityType = 0x0108;
    pub const CAN_EDIT_OWN_MESSAGE: CapabilityType = 0x0109;
    pub const CAN_DELETE_OWN_MESSAGE: CapabilityType = 0x010a;
    pub const CAN_DELETE_OTHER_MESSAGE: CapabilityType = 0x010b;
    pub const CAN_START_TOPIC: CapabilityType = 0x010c;
    pub const CAN_REPLY_IN_TOPIC: CapabilityType = 0x010d;
    pub const CAN_EDIT_OWN_TOPIC: CapabilityType = 0x010e;
    pub const CAN_EDIT_OTHER_TOPIC: CapabilityType = 0x010f;
    /// reserved
    pub const CAN_SEND_DIRECT_MESSAGE: CapabilityType = 0x0110;
    /// reserved
    pub const CAN_TARGET_MESSAGE: CapabilityType = 0x0111;
    pub const CAN_UPLOAD_IMAGE: CapabilityType = 0x0200;
    pub const CAN_UPLOAD_AUDIO: CapabilityType = 0x0201;
    pub const CAN_UPLOAD_VIDEO: CapabilityType = 0x0202;
    pub const CAN_UPLOAD_ATTACHMENT: CapabilityType = 0x0203;
    pub const CAN_DOWNLOAD_IMAGE: CapabilityType = 0x0204;
    pub const CAN_DOWNLOAD_AUDIO: CapabilityType = 0x0205;
    pub const CAN_DOWNLOAD_VIDEO: CapabilityType = 0x0206;
    pub const CAN_DOWNLOAD_ATTACHMENT: CapabilityType = 0x0207;
    pub const CAN_SEND_LINK: CapabilityType = 0x0208;
    pub const CAN_SEND_LINK_PREVIEW: CapabilityType = 0x0209;
    pub const CAN_FOLLOW_LINK: CapabilityType = 0x020a;
    pub const CAN_COPY_LINK: CapabilityType = 0x020b;
    pub const CAN_CHANGE_ROOM_NAME: CapabilityType = 0x0300;
    pub const CAN_CHANGE_ROOM_DESCRIPTION: CapabilityType = 0x0301;
    pub const CAN_CHANGE_ROOM_AVATAR: CapabilityType = 0x0302;
    pub const CAN_CHANGE_ROOM_SUBJECT: CapabilityType = 0x0303;
    pub const CAN_CHANGE_ROOM_MOOD: CapabilityType = 0x0304;
    /// reserved
    pub const CAN_CHANGE_OWN_NAME: CapabilityType = 0x0380;
    /// reserved
    pub const CAN_CHANGE_OWN_PRESENCE: CapabilityType = 0x0381;
    /// reserved
    pub const CAN_CHANGE_OWN_MOOD: CapabilityType = 0x0382;
    /// reserved
    pub const CAN_CHANGE_OWN_AVATAR: CapabilityType = 0x0383;
    pub const CAN_START_CALL: CapabilityType = 0x0400;
    pub const CAN_JOIN_CALL: CapabilityType = 0x0401;
    pub const CAN_SEND_AUDIO: CapabilityType = 0x0402;
    pub const CAN_RECEIVE_AUDIO: CapabilityType = 0x0403;
    pub const CAN_SEND_VIDEO: CapabilityType = 0x0404;
    pub const CAN_RECEIVE_VIDEO: CapabilityType = 0x0405;
    pub const CAN_SHARE_SCREEN: CapabilityType = 0x0406;
    pub const CAN_VIEW_SHARED_SCREEN: CapabilityType = 0x0407;
    /// reserved
    pub const CAN_CREATE_ROOM: CapabilityType = 0x0500;
    pub const CAN_DESTROY_ROOM: CapabilityType = 0x0501;
    pub const CAN_CHANGE_ROOM_MEMBERSHIP_STYLE: CapabilityType = 0x0502;
    pub const CAN_CHANGE_ROLE_DEFINITIONS: CapabilityType = 0x0503;
    pub const CAN_CHANGE_PREAUTHORIZED_USER_LIST: CapabilityType = 0x0504;
    /// reserved
    pub const CAN_CHANGE_OTHER_POLICY_ATTRIBUTE: CapabilityType = 0x0505;
    /// reserved
    pub const CAN_CHANGE_MLS_OPERATIONAL_POLICIES: CapabilityType = 0x0600;
    pub const CAN_SEND_MLS_REINIT_PROPOSAL: CapabilityType = 0x0601;
    /// reserved
    pub const CAN_SEND_MLS_UPDATE_PROPOSAL: CapabilityType = 0x0602;
    /// reserved
    pub const CAN_SEND_MLS_PSK_PROPOSAL: CapabilityType = 0x0603;
    /// reserved
    pub const CAN_SEND_MLS_EXTERNAL_PROPOSAL: CapabilityType = 0x0604;
    /// reserved
    pub const CAN_SEND_MLS_EXTERNAL_COMMIT: CapabilityType = 0x0605;
}

/// `enum { false(0), true(1) } bool;` as a field codec:
/// `#[tls_codec(with = "tls_bool")]`. Any other octet is rejected.
pub mod tls_bool {
    use std::io::{Read, Write};

    pub fn tls_serialized_len(_: &bool) -> usize {
        1
    }

    pub fn tls_serialize<W: Write>(v: &bool, writer: &mut W) -> Result<usize, tls_codec::Error> {
        writer.write_all(&[u8::from(*v)])?;
        Ok(1)
    }

    pub fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<bool, tls_codec::Error> {
        let mut b = [0u8; 1];
        bytes
            .read_exact(&mut b)
            .map_err(|_| tls_codec::Error::EndOfStream)?;
        match b[0] {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(tls_codec::Error::UnknownValue(u64::from(v))),
        }
    }
}

/// `struct { uint32 from_role_index; uint32 target_role_indexes<V>; }
/// SingleSourceRoleChangeTargets;`
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct SingleSourceRoleChangeTargets {
    pub from_role_index: u32,
    pub target_role_indexes: Vec<u32>,
}

/// `Role` (room policy §Role-Based Access Control). `optional uint32` is
/// the RFC 9420 `optional<uint32>` (one presence octet).
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Role {
    pub role_index: u32,
    pub role_name: VLBytes,
    pub role_description: VLBytes,
    pub role_capabilities: Vec<CapabilityType>,
    pub minimum_participants_constraint: u32,
    pub maximum_participants_constraint: Option<u32>,
    pub minimum_active_participants_constraint: u32,
    pub maximum_active_participants_constraint: Option<u32>,
    pub authorized_role_changes: Vec<SingleSourceRoleChangeTargets>,
}

impl Role {
    pub fn has_capability(&self, capability: CapabilityType) -> bool {
        self.role_capabilities.contains(&capability)
    }

    /// Whether a participant may be moved from role `from` to `self`'s
    /// listed targets for `from` (0 = not in the list).
    pub fn may_change(&self, from: u32, to: u32) -> bool {
        self.authorized_role_changes
            .iter()
            .any(|c| c.from_role_index == from && c.target_role_indexes.contains(&to))
    }
}

/// `struct { Role roles<V>; } RoleData;` — data of `roles_list` and its
/// update format `RoleUpdate` (which replaces the data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RoleData {
    pub roles: Vec<Role>,
}

/// `RoleData RoleUpdate;`
pub type RoleUpdate = RoleData;

/// Why a room policy component is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomPolicyError {
    #[error(
        "role index 0 (users not in the participant list) may only hold canOpenJoin and canUseJoinCode"
    )]
    ReservedRoleIndex,
    #[error("role {0}: canOpenJoin may only appear on role 0")]
    OpenJoinOnListedRole(u32),
    #[error("role index {0} is defined more than once")]
    DuplicateRoleIndex(u32),
    #[error("role {0}: minimum constraint exceeds maximum")]
    MinAboveMax(u32),
    #[error("role {role}: authorized change references undefined role {other}")]
    UndefinedRole { role: u32, other: u32 },
    #[error("parent_room must hold exactly one URI iff parent_dependant is set")]
    ParentRoomMismatch,
    #[error("link_preview_policy: autodetect_hyperlinks_in_text must not be required")]
    AutodetectRequired,
    #[error("link_preview_policy: a proxy URI is needed unless proxy use is forbidden")]
    MissingLinkPreviewProxy,
    #[error("asset_policy: hub upload needs exactly one provider, {0} listed")]
    HubUploadDomains(usize),
    #[error("asset_policy: a download type is both forbidden and allowed or the default")]
    DownloadTypeConflict,
    #[error("logging_policy: required logging needs at least one logging client")]
    MissingLoggingClient,
    #[error("chat_history_policy: role {0} cannot share history")]
    ReservedHistoryRole(u32),
    #[error("bot_policy: local client bot {0} must have role index 0")]
    LocalBotWithRole(usize),
    #[error("{0}: minimum, default and maximum are out of order")]
    UnorderedBounds(&'static str),
}

impl RoleData {
    /// The role with a given index.
    pub fn role(&self, role_index: u32) -> Option<&Role> {
        self.roles.iter().find(|r| r.role_index == role_index)
    }

    /// Whether `role_index` is defined and has `capability`.
    pub fn has_capability(&self, role_index: u32, capability: CapabilityType) -> bool {
        self.role(role_index)
            .is_some_and(|r| r.has_capability(capability))
    }

    /// Consistency: unique indices, min ≤ max, role changes only between
    /// defined roles or 0. Role 0 stands for users not in the participant
    /// list; it is defined only to hold `canOpenJoin` ("when this
    /// capability appears on role zero", room-policy §Adding;
    /// docs/divergences.md C23), which no other role may hold.
    pub fn validate(&self) -> Result<(), RoomPolicyError> {
        let mut seen = HashSet::new();
        for r in &self.roles {
            // Role 0 is everyone not in the list: it may hold only the
            // capabilities of joining by oneself (C23, C27).
            let open_join_only = r.role_capabilities.iter().all(|c| {
                *c == capabilities::CAN_OPEN_JOIN || *c == capabilities::CAN_USE_JOIN_CODE
            });
            if r.role_index == 0 && !open_join_only {
                return Err(RoomPolicyError::ReservedRoleIndex);
            }
            if r.role_index != 0 && r.has_capability(capabilities::CAN_OPEN_JOIN) {
                return Err(RoomPolicyError::OpenJoinOnListedRole(r.role_index));
            }
            if !seen.insert(r.role_index) {
                return Err(RoomPolicyError::DuplicateRoleIndex(r.role_index));
            }
            let bad = |min: u32, max: Option<u32>| max.is_some_and(|m| min > m);
            if bad(
                r.minimum_participants_constraint,
                r.maximum_participants_constraint,
            ) || bad(
                r.minimum_active_participants_constraint,
                r.maximum_active_participants_constraint,
            ) {
                return Err(RoomPolicyError::MinAboveMax(r.role_index));
            }
        }
        for r in &self.roles {
            for c in &r.authorized_role_changes {
                for &other in std::iter::once(&c.from_role_index).chain(&c.target_role_indexes) {
                    if other != 0 && !seen.contains(&other) {
                        return Err(RoomPolicyError::UndefinedRole {
                            role: r.role_index,
                            other,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// `struct { CredentialType credential_type; opaque id<V>; } ClaimId;`
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ClaimId {
    pub credential_type: CredentialType,
    pub id: VLBytes,
}

/// `struct { ClaimId claim_id; opaque claim_value<V>; } Claim;`
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Claim {
    pub claim_id: ClaimId,
    pub claim_value: VLBytes,
}

/// `struct { Claim claimset<V>; Role target_role; } PreAuthRoleEntry;`
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct PreAuthRoleEntry {
    pub claimset: Vec<Claim>,
    pub target_role: Role,
}

/// `struct { PreAuthRoleEntry preauthorized_entries<V>; } PreAuthData;` —
/// data of `preauth_list` and its update format `PreAuthUpdate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct PreAuthData {
    pub preauthorized_entries: Vec<PreAuthRoleEntry>,
}

/// `BaseRoomPolicy` (room policy §Base Room policy component syntax) — data
/// of `base_room_policy` and its update format.
///
/// `parent_room` is declared `Uri parent_room<V>`, a vector of `Uri`; the
/// prose says it holds the parent room id or "is zero-length", so we keep
/// the vector as written and [`Self::validate`] requires one entry iff
/// `parent_dependant`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct BaseRoomPolicy {
    #[tls_codec(with = "tls_bool")]
    pub fixed_membership: bool,
    #[tls_codec(with = "tls_bool")]
    pub parent_dependant: bool,
    pub parent_room: Vec<Uri>,
    #[tls_codec(with = "tls_bool")]
    pub multi_device: bool,
    pub max_clients: Option<u32>,
    pub max_users: Option<u32>,
    #[tls_codec(with = "tls_bool")]
    pub pseudonyms_allowed: bool,
    #[tls_codec(with = "tls_bool")]
    pub persistent_room: bool,
    #[tls_codec(with = "tls_bool")]
    pub discoverable: bool,
    pub policy_component_ids: Vec<ComponentId>,
}

impl Default for BaseRoomPolicy {
    /// `multi_device` defaults to true (room policy §Base Room policy).
    fn default() -> Self {
        Self {
            fixed_membership: false,
            parent_dependant: false,
            parent_room: Vec::new(),
            multi_device: true,
            max_clients: None,
            max_users: None,
            pseudonyms_allowed: false,
            persistent_room: false,
            discoverable: false,
            policy_component_ids: Vec::new(),
        }
    }
}

impl BaseRoomPolicy {
    pub fn validate(&self) -> Result<(), RoomPolicyError> {
        if self.parent_dependant != (self.parent_room.len() == 1) || self.parent_room.len() > 1 {
            return Err(RoomPolicyError::ParentRoomMismatch);
        }
        Ok(())
    }
}

/// `enum { optional(0), required(1), forbidden(2) } Optionality;`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum Optionality {
    Optional = 0,
    Required = 1,
    Forbidden = 2,
}

/// `struct { Optionality delivery_notifications; Optionality read_receipts; }
/// StatusNotificationPolicy;` (room policy §Status Notifications).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct StatusNotificationPolicy {
    pub delivery_notifications: Optionality,
    pub read_receipts: Optionality,
}
