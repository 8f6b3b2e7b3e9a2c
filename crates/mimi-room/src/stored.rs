//! The persisted form of a hosted room: what the store keeps in a room's
//! state column. The format is this crate's: the server stores the bytes
//! and never looks inside.

use mimi_protocol::msgs::PendingProposal;
use openmls::messages::group_info::VerifiableGroupInfo;
use tls_codec::{Deserialize as _, Serialize as _, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use crate::{HubRoom, RoomError};

/// The room state the hub persists: the [`HubRoom`] bytes plus what the
/// hub must be able to hand to joiners without group secrets (-06 §5.6):
/// the latest GroupInfo a committer uploaded and the proposals accepted in
/// the current epoch.
#[derive(Debug, Clone, TlsSerialize, TlsDeserialize, TlsSize)]
pub(crate) struct StoredRoomBytes {
    hub_room: VLBytes,
    latest_group_info: Option<VerifiableGroupInfo>,
    pending_proposals: Vec<PendingProposal>,
}

/// A hosted room as loaded for one decision. The hub may keep the room an
/// accepted update left (`AcceptedUpdate::room`) for the next decision
/// instead of decoding the stored bytes again: it is the room those bytes
/// decode to.
pub struct StoredRoom {
    pub hub: HubRoom,
    /// The latest GroupInfo a committer uploaded (-06 §5.6).
    pub latest_group_info: Option<VerifiableGroupInfo>,
    /// Proposals accepted in the current epoch, with their acceptance time.
    pub pending_proposals: Vec<PendingProposal>,
}

impl std::fmt::Debug for StoredRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRoom")
            .field("epoch", &self.hub.epoch())
            .field("pending_proposals", &self.pending_proposals.len())
            .finish_non_exhaustive()
    }
}

impl StoredRoom {
    pub fn decode(bytes: &[u8]) -> Result<Self, RoomError> {
        let stored = StoredRoomBytes::tls_deserialize_exact(bytes)
            .map_err(|e| RoomError::CorruptState(format!("stored room: {e}")))?;
        Ok(Self {
            hub: HubRoom::from_bytes(stored.hub_room.as_slice())?,
            latest_group_info: stored.latest_group_info,
            pending_proposals: stored.pending_proposals,
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>, RoomError> {
        StoredRoomBytes {
            hub_room: self.hub.to_bytes()?.into(),
            latest_group_info: self.latest_group_info.clone(),
            pending_proposals: self.pending_proposals.clone(),
        }
        .tls_serialize_detached()
        .map_err(|e| RoomError::CorruptState(format!("encoding the stored room: {e}")))
    }
}
