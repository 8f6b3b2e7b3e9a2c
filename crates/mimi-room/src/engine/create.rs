//! Room creation (client API; -06 §3.2): the hub starts hosting a room
//! from its creator's GroupInfo and ratchet tree.

use mimi_protocol::{MimiUri, MimiUriKind};
use openmls::prelude::{MlsMessageBodyIn, MlsMessageIn, RatchetTreeIn};
use tls_codec::Deserialize as _;

use super::HubEngine;
use crate::HubRoom;
use crate::rejection::CreateRoomRejection;
use crate::stored::StoredRoom;

/// A room the hub may start hosting: the state to store.
pub struct CreatedRoom {
    pub room_id: MimiUri,
    pub epoch: u64,
    pub state: Vec<u8>,
    /// For a fixed-membership room, the key the hub keeps unique across
    /// its rooms ([`crate::policy::base::fixed_membership_key`]).
    pub fixed_membership_key: Option<String>,
}

impl HubEngine {
    /// Validates a room created by `creator_device` (a device of this
    /// provider): `group_info` is an `MLSMessage(GroupInfo)` and
    /// `ratchet_tree` a TLS `RatchetTree` describing a consistent room
    /// whose members include the creator; if the group names external
    /// senders, this hub must be among them (-06 §7.4).
    pub fn create_room(
        &self,
        creator_device: &MimiUri,
        room_id: &str,
        group_info: &[u8],
        ratchet_tree: &[u8],
    ) -> Result<CreatedRoom, CreateRoomRejection> {
        let room_id = MimiUri::parse(room_id)
            .ok()
            .filter(|uri| uri.kind() == MimiUriKind::Room)
            .ok_or(CreateRoomRejection::NotARoomUri)?;
        if !self.is_own_domain(room_id.domain()) || !self.is_own_domain(creator_device.domain()) {
            return Err(CreateRoomRejection::ForeignDomain {
                domain: self.domain.clone(),
            });
        }
        let message = MlsMessageIn::tls_deserialize_exact(group_info).map_err(|e| {
            CreateRoomRejection::GroupInfo {
                detail: e.to_string(),
            }
        })?;
        let MlsMessageBodyIn::GroupInfo(group_info) = message.extract() else {
            return Err(CreateRoomRejection::GroupInfo {
                detail: "not an MLSMessage(GroupInfo)".into(),
            });
        };
        let ratchet_tree = RatchetTreeIn::tls_deserialize_exact(ratchet_tree).map_err(|e| {
            CreateRoomRejection::RatchetTree {
                detail: e.to_string(),
            }
        })?;
        let hub = HubRoom::create(self.crypto(), ratchet_tree, group_info.clone())
            .map_err(CreateRoomRejection::InvalidRoom)?;
        let creator_is_member = hub
            .members()
            .into_iter()
            .filter_map(|(_, id)| id.ok())
            .any(|id| id.device.as_str() == creator_device.as_str());
        if !creator_is_member {
            return Err(CreateRoomRejection::CreatorNotMember);
        }
        // -06 §7.4: the group MUST carry external_senders with the hub's
        // entry for the room's ciphersuite.
        self.check_external_senders(&hub)
            .map_err(CreateRoomRejection::ExternalSenders)?;
        let epoch = hub.epoch();
        let fixed_membership_key = hub
            .policy_state()
            .map_err(CreateRoomRejection::InvalidRoom)?;
        let fixed_membership_key = crate::policy::base::fixed_membership_key(&fixed_membership_key);
        let stored = StoredRoom {
            hub,
            latest_group_info: Some(group_info),
            pending_proposals: Vec::new(),
        };
        let state = stored.encode().map_err(CreateRoomRejection::InvalidRoom)?;
        Ok(CreatedRoom {
            room_id,
            epoch,
            state,
            fixed_membership_key,
        })
    }
}
