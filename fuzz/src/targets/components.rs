//! Room state components carried in the MLS `app_data_dictionary` and in
//! AppDataUpdate proposals (-06 §7, §5.4.1; draft-ietf-mimi-room-policy):
//! participant list and its update (§7.5), room metadata (§7.6), roles,
//! pre-authorisation, base room policy, status notifications, join link
//! policy, join links and their update, link preview, asset, logging, chat
//! history, bot and message expiration policies, MLS operational
//! parameters, and the franking components (`frank_aad`,
//! `franking_signature_key`) plus the `Frank` struct. Also the dictionary
//! itself, read component by component.

use crate::{assert_canonical, decode_canonical, split};
use mimi_protocol::components::policy_components::Gated;
use mimi_protocol::components::{
    AssetPolicy, BaseRoomPolicy, BotPolicy, FrankAAD, FrankingAgentData, HistoryPolicy,
    JoinLinkPolicy, JoinLinksData, JoinLinksUpdate, LinkPreviewPolicy, LoggingPolicy,
    MessageExpiration, OperationalParameters, ParticipantListData, ParticipantListUpdate,
    PreAuthData, RoleData, RoomMetaData, StatusNotificationPolicy, read_component,
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
    let _ = read_component::<StatusNotificationPolicy>(&dict);
    let _ = read_component::<JoinLinkPolicy>(&dict);
    let _ = read_component::<JoinLinksData>(&dict);
    if let Ok(Some(p)) = read_component::<LinkPreviewPolicy>(&dict) {
        let _ = p.validate();
    }
    if let Ok(Some(p)) = read_component::<AssetPolicy>(&dict) {
        let _ = p.validate();
    }
    if let Ok(Some(p)) = read_component::<LoggingPolicy>(&dict) {
        let _ = p.validate();
    }
    if let Ok(Some(p)) = read_component::<HistoryPolicy>(&dict) {
        let _ = p.validate();
    }
    if let Ok(Some(p)) = read_component::<BotPolicy>(&dict) {
        let _ = p.validate();
    }
    if let Ok(Some(p)) = read_component::<MessageExpiration>(&dict) {
        let _ = p.validate();
    }
    if let Ok(Some(p)) = read_component::<OperationalParameters>(&dict) {
        let _ = p.validate();
    }
}

/// A `select (Optionality)` decoded at `offset` of `body`, the last field
/// of its component: its octet is the one on the wire, and settings follow
/// it exactly when it is not `forbidden` (divergence C12a).
fn assert_gate<T>(gate: &Gated<T>, body: &[u8], offset: usize) {
    assert_eq!(body.get(offset), Some(&(gate.optionality() as u8)));
    assert_eq!(gate.settings().is_none(), body.len() == offset + 1);
}

/// One fuzz input (the `components` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Some((selector, body)) = split(data) else {
        return;
    };
    match selector % 22 {
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
        11 => dictionary(body),
        12 => {
            let _ = decode_canonical::<JoinLinkPolicy>(body);
        }
        13 => {
            let _ = decode_canonical::<JoinLinksData>(body);
        }
        14 => {
            let _ = decode_canonical::<JoinLinksUpdate>(body);
        }
        15 => {
            if let Some(p) = decode_canonical::<LinkPreviewPolicy>(body) {
                assert_gate(&p.link_preview_proxy, body, 3);
                let _ = p.validate();
            }
        }
        16 => {
            if let Some(p) = decode_canonical::<AssetPolicy>(body) {
                let _ = p.validate();
            }
        }
        17 => {
            if let Some(p) = decode_canonical::<LoggingPolicy>(body) {
                assert_gate(&p.logging, body, 0);
                let _ = p.validate();
            }
        }
        18 => {
            if let Some(p) = decode_canonical::<HistoryPolicy>(body) {
                assert_gate(&p.history_sharing, body, 0);
                let _ = p.validate();
            }
        }
        19 => {
            if let Some(p) = decode_canonical::<BotPolicy>(body) {
                let _ = p.validate();
            }
        }
        20 => {
            if let Some(p) = decode_canonical::<MessageExpiration>(body) {
                assert_gate(&p.expiring_messages, body, 0);
                let _ = p.validate();
            }
        }
        _ => {
            if let Some(p) = decode_canonical::<OperationalParameters>(body) {
                let _ = p.validate();
            }
        }
    }
}
