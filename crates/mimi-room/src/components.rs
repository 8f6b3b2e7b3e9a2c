//! Applying AppDataUpdate proposals to the room's components
//! (mls-extensions §4.6, -06 §7.5–6.5, room-policy §Role-Based Access
//! Control).
//!
//! Every party that processes a commit (the hub and every client) must
//! compute the same new `app_data_dictionary`, so this is the one place
//! that interprets updates. openmls hands the proposals over sorted by
//! component id, commit order kept within a component.

use mimi_protocol::components::room_policy::RoleData;
use mimi_protocol::components::{
    JOIN_LINKS, JoinLinksData, JoinLinksUpdate, PARTICIPANT_LIST, ParticipantListData,
    ParticipantListUpdate, ROLES_LIST, ROOM_METADATA, RoomMetaData, decode_component,
};
use openmls::component::ComponentData;
use openmls::prelude::*;
use tls_codec::Serialize as _;

/// Why a commit's AppDataUpdate proposals cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppDataUpdateError {
    #[error("participant list update: {detail}")]
    ParticipantListUpdate { detail: String },
    #[error("the participant list cannot be removed")]
    ParticipantListRemoved,
    #[error("room metadata update: {detail}")]
    RoomMetadata { detail: String },
    #[error("roles list update: {detail}")]
    RolesList { detail: String },
    #[error("participant list: {detail}")]
    ParticipantList { detail: String },
    #[error("participant list encoding: {detail}")]
    Encoding { detail: String },
    #[error("join links update: {detail}")]
    JoinLinks { detail: String },
}

/// Computes the dictionary changes a commit's AppDataUpdate proposals make.
///
/// Participant-list updates are applied cumulatively; `join_links` updates
/// (room-policy §Join Link policies component) edit the list in commit
/// order; room metadata and role list updates replace the component; other
/// components are replaced or removed verbatim (authorization decides
/// whether that is allowed).
pub fn resolve_app_data_updates<'a>(
    old: Option<&AppDataDictionary>,
    proposals: impl IntoIterator<Item = &'a AppDataUpdateProposal>,
) -> Result<Option<AppDataUpdates>, AppDataUpdateError> {
    let mut updater = AppDataDictionaryUpdater::new(old);
    let mut participant_updates: Vec<ParticipantListUpdate> = Vec::new();
    let mut join_link_updates: Vec<JoinLinksUpdate> = Vec::new();
    for proposal in proposals {
        let id = proposal.component_id();
        match (id, proposal.operation()) {
            (PARTICIPANT_LIST, AppDataUpdateOperation::Update(bytes)) => {
                participant_updates.push(decode_component(bytes.as_slice()).map_err(|e| {
                    AppDataUpdateError::ParticipantListUpdate {
                        detail: e.to_string(),
                    }
                })?);
            }
            (PARTICIPANT_LIST, AppDataUpdateOperation::Remove) => {
                return Err(AppDataUpdateError::ParticipantListRemoved);
            }
            (ROOM_METADATA, AppDataUpdateOperation::Update(bytes)) => {
                let _: RoomMetaData = decode_component(bytes.as_slice()).map_err(|e| {
                    AppDataUpdateError::RoomMetadata {
                        detail: e.to_string(),
                    }
                })?;
                updater.set(ComponentData::from_parts(id, bytes.clone()));
            }
            (ROLES_LIST, AppDataUpdateOperation::Update(bytes)) => {
                let roles_list = |e: &dyn std::fmt::Display| AppDataUpdateError::RolesList {
                    detail: e.to_string(),
                };
                let roles: RoleData =
                    decode_component(bytes.as_slice()).map_err(|e| roles_list(&e))?;
                roles.validate().map_err(|e| roles_list(&e))?;
                updater.set(ComponentData::from_parts(id, bytes.clone()));
            }
            (JOIN_LINKS, AppDataUpdateOperation::Update(bytes)) => {
                join_link_updates.push(decode_component(bytes.as_slice()).map_err(|e| {
                    AppDataUpdateError::JoinLinks {
                        detail: e.to_string(),
                    }
                })?);
            }
            (_, AppDataUpdateOperation::Update(bytes)) => {
                updater.set(ComponentData::from_parts(id, bytes.clone()));
            }
            (_, AppDataUpdateOperation::Remove) => updater.remove(&id),
        }
    }
    if !participant_updates.is_empty() {
        let current = match old.and_then(|d| d.get(&PARTICIPANT_LIST)) {
            Some(bytes) => decode_component::<ParticipantListData>(bytes).map_err(|e| {
                AppDataUpdateError::ParticipantList {
                    detail: e.to_string(),
                }
            })?,
            None => ParticipantListData::default(),
        };
        let next = current.apply_all(participant_updates.iter()).map_err(|e| {
            AppDataUpdateError::ParticipantListUpdate {
                detail: e.to_string(),
            }
        })?;
        let bytes = next
            .tls_serialize_detached()
            .map_err(|e| AppDataUpdateError::Encoding {
                detail: e.to_string(),
            })?;
        updater.set(ComponentData::from_parts(PARTICIPANT_LIST, bytes.into()));
    }
    if !join_link_updates.is_empty() {
        let join_links = |e: &dyn std::fmt::Display| AppDataUpdateError::JoinLinks {
            detail: e.to_string(),
        };
        let mut links = match old.and_then(|d| d.get(&JOIN_LINKS)) {
            Some(bytes) => decode_component::<JoinLinksData>(bytes).map_err(|e| join_links(&e))?,
            None => JoinLinksData::default(),
        };
        for update in &join_link_updates {
            links = links.apply(update).map_err(|e| join_links(&e))?;
        }
        let bytes = links.tls_serialize_detached().map_err(|e| join_links(&e))?;
        updater.set(ComponentData::from_parts(JOIN_LINKS, bytes.into()));
    }
    Ok(updater.changes())
}
