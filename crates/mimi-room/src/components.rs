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
    PARTICIPANT_LIST, ParticipantListData, ParticipantListUpdate, ROLES_LIST, ROOM_METADATA,
    RoomMetaData, decode_component,
};
use openmls::component::ComponentData;
use openmls::prelude::*;
use tls_codec::Serialize as _;

/// Computes the dictionary changes a commit's AppDataUpdate proposals make.
///
/// Participant-list updates are applied cumulatively; room metadata and
/// role list updates replace the component; other components are replaced
/// or removed verbatim (authorization decides whether that is allowed).
pub fn resolve_app_data_updates<'a>(
    old: Option<&AppDataDictionary>,
    proposals: impl IntoIterator<Item = &'a AppDataUpdateProposal>,
) -> Result<Option<AppDataUpdates>, String> {
    let mut updater = AppDataDictionaryUpdater::new(old);
    let mut participant_updates: Vec<ParticipantListUpdate> = Vec::new();
    for proposal in proposals {
        let id = proposal.component_id();
        match (id, proposal.operation()) {
            (PARTICIPANT_LIST, AppDataUpdateOperation::Update(bytes)) => {
                participant_updates.push(
                    decode_component(bytes.as_slice())
                        .map_err(|e| format!("participant list update: {e}"))?,
                );
            }
            (PARTICIPANT_LIST, AppDataUpdateOperation::Remove) => {
                return Err("the participant list cannot be removed".into());
            }
            (ROOM_METADATA, AppDataUpdateOperation::Update(bytes)) => {
                let _: RoomMetaData = decode_component(bytes.as_slice())
                    .map_err(|e| format!("room metadata update: {e}"))?;
                updater.set(ComponentData::from_parts(id, bytes.clone()));
            }
            (ROLES_LIST, AppDataUpdateOperation::Update(bytes)) => {
                let roles: RoleData = decode_component(bytes.as_slice())
                    .map_err(|e| format!("roles list update: {e}"))?;
                roles
                    .validate()
                    .map_err(|e| format!("roles list update: {e}"))?;
                updater.set(ComponentData::from_parts(id, bytes.clone()));
            }
            (_, AppDataUpdateOperation::Update(bytes)) => {
                updater.set(ComponentData::from_parts(id, bytes.clone()));
            }
            (_, AppDataUpdateOperation::Remove) => updater.remove(&id),
        }
    }
    if !participant_updates.is_empty() {
        let current = match old.and_then(|d| d.get(&PARTICIPANT_LIST)) {
            Some(bytes) => decode_component::<ParticipantListData>(bytes)
                .map_err(|e| format!("participant list: {e}"))?,
            None => ParticipantListData::default(),
        };
        let next = current
            .apply_all(participant_updates.iter())
            .map_err(|e| format!("participant list update: {e}"))?;
        let bytes = next
            .tls_serialize_detached()
            .map_err(|e| format!("participant list encoding: {e}"))?;
        updater.set(ComponentData::from_parts(PARTICIPANT_LIST, bytes.into()));
    }
    Ok(updater.changes())
}
