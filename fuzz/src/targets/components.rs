//! Room state components carried in the MLS `app_data_dictionary` and in
//! AppDataUpdate proposals (-06 §7, §5.4.1; draft-ietf-mimi-room-policy):
//! participant list and its update (§7.5), room metadata (§7.6), roles,
//! pre-authorisation, base room policy, status notifications, and the
//! franking components (`frank_aad`, `franking_signature_key`) plus the
//! `Frank` struct. Also the dictionary itself, read component by component.

use crate::{assert_canonical, decode_canonical, split};
use mimi_protocol::components::room_policy::StatusNotificationPolicy;
use mimi_protocol::components::{
    BaseRoomPolicy, FrankAAD, FrankingAgentData, ParticipantListData, ParticipantListUpdate,
    PreAuthData, RoleData, RoomMetaData, read_component,
};
use mimi_protocol::msgs::Frank;
use openmls::extensions::AppDataDictionary;
use tls_codec::Deserialize;

/// A list and an update to it, back to back: applying a valid update to a
/// valid list yields a valid list (-06 §7.5), and `apply_all` of the one
/// update agrees with `apply`.
fn list_and_update(body: &[u8]) {
    let mut rest = body;
    let Ok(list) = ParticipantListData::tls_deserialize(&mut rest) else {
        return;
    };
    assert_canonical(&list, &body[..body.len() - rest.len()]);
    let Some(update) = decode_canonical::<ParticipantListUpdate>(rest) else {
        return;
    };
    let applied = list.apply(&update);
    if let Ok(result) = &applied {
        assert_eq!(result.validate(), Ok(()), "apply produced an invalid list");
        let added = update.added_participants.len();
        let removed = update.removed_indices.len();
        assert_eq!(result.len() + removed, list.len() + added);
    }
    assert_eq!(list.apply_all([&update]), applied);
}

fn dictionary(body: &[u8]) {
    let Some(dict) = decode_canonical::<AppDataDictionary>(body) else {
        return;
    };
    let _ = read_component::<ParticipantListData>(&dict);
    if let Ok(Some(m)) = read_component::<RoomMetaData>(&dict) {
        let _ = m.validate(None);
    }
    if let Ok(Some(r)) = read_component::<RoleData>(&dict) {
        let _ = r.validate();
    }
    let _ = read_component::<PreAuthData>(&dict);
    if let Ok(Some(b)) = read_component::<BaseRoomPolicy>(&dict) {
        let _ = b.validate();
    }
    let _ = read_component::<FrankAAD>(&dict);
    let _ = read_component::<FrankingAgentData>(&dict);
}

/// One fuzz input (the `components` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Some((selector, body)) = split(data) else {
        return;
    };
    match selector % 12 {
        0 => {
            if let Some(list) = decode_canonical::<ParticipantListData>(body) {
                let _ = list.validate();
            }
        }
        1 => {
            let _ = decode_canonical::<ParticipantListUpdate>(body);
        }
        2 => list_and_update(body),
        3 => {
            if let Some(m) = decode_canonical::<RoomMetaData>(body) {
                let _ = m.validate(None);
                assert_eq!(RoomMetaData::apply_updates(std::slice::from_ref(&m)), Ok(m));
            }
        }
        4 => {
            if let Some(roles) = decode_canonical::<RoleData>(body) {
                let _ = roles.validate();
            }
        }
        5 => {
            let _ = decode_canonical::<PreAuthData>(body);
        }
        6 => {
            if let Some(policy) = decode_canonical::<BaseRoomPolicy>(body) {
                let _ = policy.validate();
            }
        }
        7 => {
            let _ = decode_canonical::<StatusNotificationPolicy>(body);
        }
        8 => {
            let _ = decode_canonical::<FrankAAD>(body);
        }
        9 => {
            let _ = decode_canonical::<FrankingAgentData>(body);
        }
        10 => {
            let _ = decode_canonical::<Frank>(body);
        }
        _ => dictionary(body),
    }
}
