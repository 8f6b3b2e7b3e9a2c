//! Wire round trips and strict decoding of the room state components
//! (-06 §5.4.1, §7; draft-ietf-mimi-room-policy).

use std::fmt::Debug;

use mimi_protocol::components::room_metadata::{RoomMetaUpdate, Utf8StringError};
use mimi_protocol::components::room_policy::{
    Claim, ClaimId, Optionality, PreAuthData, PreAuthRoleEntry, StatusNotificationPolicy,
};
use mimi_protocol::components::{
    self as c, BaseRoomPolicy, Component, FrankAAD, FrankingAgentData, ParticipantListData,
    ParticipantListUpdate, RichDescription, Role, RoleData, RoomMetaData, RoomMetadataError,
    SingleSourceRoleChangeTargets, UTF8String, Uri, UserRolePair, UserindexRolePair,
    decode_component,
};
use mimi_protocol::{DecodeError, decode_exact, encode};
use openmls::prelude::{BasicCredential, Credential, CredentialType, SignaturePublicKey};
use proptest::prelude::*;
use tls_codec::{Deserialize, Serialize, Size, VLBytes};

/// Encode, decode exactly, compare; every strict prefix and any trailing
/// byte must be rejected.
fn check_round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + Deserialize + Size + PartialEq + Debug,
{
    let bytes = encode(value).unwrap();
    prop_assert_eq!(bytes.len(), value.tls_serialized_len());
    let back: T = decode_exact(&bytes).unwrap();
    prop_assert_eq!(&back, value);
    for cut in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
        if cut < bytes.len() {
            prop_assert!(
                decode_exact::<T>(&bytes[..cut]).is_err(),
                "prefix {cut} decoded"
            );
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    prop_assert!(matches!(
        decode_exact::<T>(&longer),
        Err(DecodeError::TrailingBytes(1))
    ));
    Ok(())
}

fn vlbytes(max: usize) -> impl Strategy<Value = VLBytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(VLBytes::new)
}

fn utf8string() -> impl Strategy<Value = UTF8String> {
    "[^\\x00]{0,20}".prop_map(|s| UTF8String::new(s).unwrap())
}

fn uri() -> impl Strategy<Value = Uri> {
    "[ -~]{0,30}".prop_map(Uri::new)
}

fn user_role_pair() -> impl Strategy<Value = UserRolePair> {
    (vlbytes(24), any::<u32>()).prop_map(|(user, role_index)| UserRolePair { user, role_index })
}

fn rich_description() -> impl Strategy<Value = RichDescription> {
    (vlbytes(10), vlbytes(6), vlbytes(30)).prop_map(
        |(media_type, language_tag, description_content)| RichDescription {
            media_type,
            language_tag,
            description_content,
        },
    )
}

fn room_metadata() -> impl Strategy<Value = RoomMetaData> {
    (
        uri(),
        utf8string(),
        prop::collection::vec(rich_description(), 0..3),
        uri(),
        utf8string(),
        utf8string(),
    )
        .prop_map(
            |(room_uri, room_name, room_descriptions, room_avatar, room_subject, room_mood)| {
                RoomMetaData {
                    room_uri,
                    room_name,
                    room_descriptions,
                    room_avatar,
                    room_subject,
                    room_mood,
                }
            },
        )
}

fn role() -> impl Strategy<Value = Role> {
    (
        any::<u32>(),
        vlbytes(12),
        vlbytes(20),
        prop::collection::vec(any::<u16>(), 0..6),
        (
            any::<u32>(),
            any::<Option<u32>>(),
            any::<u32>(),
            any::<Option<u32>>(),
        ),
        prop::collection::vec(
            (any::<u32>(), prop::collection::vec(any::<u32>(), 0..4)).prop_map(
                |(from_role_index, target_role_indexes)| SingleSourceRoleChangeTargets {
                    from_role_index,
                    target_role_indexes,
                },
            ),
            0..3,
        ),
    )
        .prop_map(
            |(
                role_index,
                role_name,
                role_description,
                role_capabilities,
                (a, b, c, d),
                authorized_role_changes,
            )| Role {
                role_index,
                role_name,
                role_description,
                role_capabilities,
                minimum_participants_constraint: a,
                maximum_participants_constraint: b,
                minimum_active_participants_constraint: c,
                maximum_active_participants_constraint: d,
                authorized_role_changes,
            },
        )
}

fn base_room_policy() -> impl Strategy<Value = BaseRoomPolicy> {
    (
        any::<[bool; 6]>(),
        prop::collection::vec(uri(), 0..2),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        prop::collection::vec(any::<u16>(), 0..5),
    )
        .prop_map(
            |(b, parent_room, max_clients, max_users, policy_component_ids)| BaseRoomPolicy {
                fixed_membership: b[0],
                parent_dependant: b[1],
                parent_room,
                multi_device: b[2],
                max_clients,
                max_users,
                pseudonyms_allowed: b[3],
                persistent_room: b[4],
                discoverable: b[5],
                policy_component_ids,
            },
        )
}

proptest! {
    #[test]
    fn participant_list_data(participants in prop::collection::vec(user_role_pair(), 0..6)) {
        check_round_trip(&ParticipantListData { participants })?;
    }

    #[test]
    fn user_role_pair_rt(p in user_role_pair()) {
        check_round_trip(&p)?;
    }

    #[test]
    fn participant_list_update(
        changed in prop::collection::vec((any::<u32>(), any::<u32>()), 0..5),
        removed in prop::collection::vec(any::<u32>(), 0..5),
        added in prop::collection::vec(user_role_pair(), 0..4),
    ) {
        let u = ParticipantListUpdate {
            changed_role_participants: changed
                .into_iter()
                .map(|(user_index, role_index)| UserindexRolePair { user_index, role_index })
                .collect(),
            removed_indices: removed,
            added_participants: added,
        };
        check_round_trip(&u)?;
        for c in &u.changed_role_participants {
            check_round_trip(c)?;
        }
    }

    #[test]
    fn room_metadata_rt(m in room_metadata()) {
        check_round_trip(&m)?;
        check_round_trip(&m.room_name)?;
        check_round_trip(&m.room_uri)?;
    }

    #[test]
    fn rich_description_rt(d in rich_description()) {
        check_round_trip(&d)?;
    }

    #[test]
    fn frank_aad(tag in any::<[u8; 32]>()) {
        let f = FrankAAD { franking_tag: tag };
        check_round_trip(&f)?;
        prop_assert_eq!(encode(&f).unwrap(), tag.to_vec());
    }

    #[test]
    fn franking_agent_data(key in prop::collection::vec(any::<u8>(), 0..64),
                           ctype in any::<u16>(),
                           content in prop::collection::vec(any::<u8>(), 0..40)) {
        let f = FrankingAgentData {
            franking_signature_key: SignaturePublicKey::from(key),
            credential: Credential::new(CredentialType::from(ctype), content),
        };
        check_round_trip(&f)?;
    }

    #[test]
    fn role_data(roles in prop::collection::vec(role(), 0..4)) {
        check_round_trip(&RoleData { roles })?;
    }

    #[test]
    fn base_room_policy_rt(p in base_room_policy()) {
        check_round_trip(&p)?;
    }

    #[test]
    fn preauth_data(entries in prop::collection::vec(
        (prop::collection::vec((any::<u16>(), vlbytes(8), vlbytes(8)), 0..3), role()), 0..3)) {
        let d = PreAuthData {
            preauthorized_entries: entries
                .into_iter()
                .map(|(claims, target_role)| PreAuthRoleEntry {
                    claimset: claims
                        .into_iter()
                        .map(|(t, id, claim_value)| Claim {
                            claim_id: ClaimId { credential_type: CredentialType::from(t), id },
                            claim_value,
                        })
                        .collect(),
                    target_role,
                })
                .collect(),
        };
        check_round_trip(&d)?;
    }

    #[test]
    fn status_notification_policy(a in 0u8..3, b in 0u8..3) {
        let o = |v| match v { 0 => Optionality::Optional, 1 => Optionality::Required, _ => Optionality::Forbidden };
        check_round_trip(&StatusNotificationPolicy { delivery_notifications: o(a), read_receipts: o(b) })?;
    }

    /// Decoding arbitrary bytes never panics.
    #[test]
    fn decode_garbage(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_exact::<ParticipantListData>(&bytes);
        let _ = decode_exact::<ParticipantListUpdate>(&bytes);
        let _ = decode_exact::<RoomMetaData>(&bytes);
        let _ = decode_exact::<FrankingAgentData>(&bytes);
        let _ = decode_exact::<RoleData>(&bytes);
        let _ = decode_exact::<BaseRoomPolicy>(&bytes);
        let _ = decode_exact::<PreAuthData>(&bytes);
    }
}

#[test]
fn component_ids() {
    assert_eq!(c::FRANK_AAD, 0x0020);
    assert_eq!(c::FRANKING_SIGNATURE_KEY, 0x0021);
    assert_eq!(c::FRANKING_AGENT, 0x0021);
    assert_eq!(c::PARTICIPANT_LIST, 0x0022);
    assert_eq!(c::ROOM_METADATA, 0x0023);
    assert_eq!(c::MLS_OPERATIONAL_POLICY, 0x0024);
    assert_eq!(c::ROLES_LIST, 0x0025);
    assert_eq!(c::PREAUTH_LIST, 0x0026);
    assert_eq!(c::BASE_ROOM_POLICY, 0x0027);
    assert_eq!(c::MESSAGE_EXPIRATION_POLICY, 0x0030);
    assert_eq!(<ParticipantListData as Component>::ID, 0x0022);
    assert_eq!(<RoomMetaData as Component>::ID, 0x0023);
    assert_eq!(<FrankingAgentData as Component>::ID, 0x0021);
    assert_eq!(<FrankAAD as Component>::ID, 0x0020);
    assert_eq!(<RoleData as Component>::ID, 0x0025);
    assert_eq!(<BaseRoomPolicy as Component>::ID, 0x0027);
}

#[test]
fn participant_list_known_encoding() {
    let d = ParticipantListData::new(vec![UserRolePair::new(b"ab".to_vec(), 4)]);
    // participants<V>: length 7; user<V>: length 2 "ab"; role_index u32 4.
    assert_eq!(
        encode(&d).unwrap(),
        hex::decode("0702616200000004").unwrap()
    );
    let u = ParticipantListUpdate {
        changed_role_participants: vec![UserindexRolePair {
            user_index: 1,
            role_index: 2,
        }],
        removed_indices: vec![3],
        added_participants: vec![],
    };
    // changed<V> (8 octets) | removed<V> (4 octets) | added<V> (empty)
    assert_eq!(
        encode(&u).unwrap(),
        hex::decode("080000000100000002040000000300").unwrap()
    );
    let back: ParticipantListUpdate = decode_component(&encode(&u).unwrap()).unwrap();
    assert_eq!(back, u);
}

#[test]
fn non_minimal_length_prefix_rejected() {
    // Empty participant list with a two-octet length prefix.
    assert!(decode_exact::<ParticipantListData>(&[0x40, 0x00]).is_err());
    assert!(decode_exact::<ParticipantListData>(&[0x00]).is_ok());
    // A user<V> of length 2 with a two-octet prefix.
    assert!(
        decode_exact::<UserRolePair>(&hex::decode("40026162 00000004".replace(' ', "")).unwrap())
            .is_err()
    );
    assert!(decode_exact::<UTF8String>(&[0x40, 0x01, b'a']).is_err());
    assert!(decode_exact::<UTF8String>(&[0x01, b'a']).is_ok());
}

#[test]
fn utf8string_rules() {
    assert_eq!(UTF8String::new("a\0b"), Err(Utf8StringError::ContainsNul));
    assert_eq!(
        UTF8String::from_bytes(vec![0xc3, 0x28]),
        Err(Utf8StringError::NotUtf8)
    );
    assert_eq!(UTF8String::new("Ünïcode ✓").unwrap().as_str(), "Ünïcode ✓");
    // Wire: invalid UTF-8, NUL, overlong encoding of NUL, surrogate.
    for bad in [
        &[0x02, 0xc3, 0x28][..],
        &[0x01, 0x00],
        &[0x02, 0xc0, 0x80],
        &[0x03, 0xed, 0xa0, 0x80],
    ] {
        assert!(
            matches!(
                decode_exact::<UTF8String>(bad),
                Err(DecodeError::Malformed(_))
            ),
            "{bad:x?}"
        );
    }
    assert_eq!(
        decode_exact::<UTF8String>(&[0x02, 0xc3, 0xa9])
            .unwrap()
            .as_str(),
        "é"
    );
    // Inside RoomMetaData: a NUL in room_subject is rejected.
    let mut m = RoomMetaData {
        room_uri: Uri::new("mimi://hub.example/r/x"),
        room_name: UTF8String::new("n").unwrap(),
        room_subject: UTF8String::new("s").unwrap(),
        ..Default::default()
    };
    let ok = encode(&m).unwrap();
    assert_eq!(decode_exact::<RoomMetaData>(&ok).unwrap(), m);
    let i = ok.len() - 3; // room_subject is "01 73", room_mood "00"
    assert_eq!(&ok[i..], &[0x01, b's', 0x00]);
    let mut bad = ok.clone();
    bad[i + 1] = 0;
    assert!(decode_exact::<RoomMetaData>(&bad).is_err());
    m.room_mood = UTF8String::new("😀").unwrap();
    assert_eq!(
        decode_exact::<RoomMetaData>(&encode(&m).unwrap()).unwrap(),
        m
    );
}

#[test]
fn room_metadata_semantics() {
    let room: mimi_protocol::uri::MimiUri = "mimi://hub.example/r/clubhouse".parse().unwrap();
    let mut m = RoomMetaData {
        room_uri: Uri::from(&room),
        room_name: UTF8String::new("Clubhouse").unwrap(),
        room_descriptions: vec![RichDescription::plain("en", "A room")],
        room_avatar: Uri::new("https://hub.example/a.png"),
        ..Default::default()
    };
    assert_eq!(m.validate(Some(&room)), Ok(()));
    assert_eq!(
        m.room_descriptions[0].effective_media_type(),
        b"text/plain;charset=utf-8"
    );
    let other = "mimi://hub.example/r/other".parse().unwrap();
    assert!(matches!(
        m.validate(Some(&other)),
        Err(RoomMetadataError::RoomUriMismatch(_))
    ));
    m.room_avatar = Uri::new("http://hub.example/a.png");
    assert_eq!(m.validate(None), Err(RoomMetadataError::AvatarNotHttps));
    m.room_avatar = Uri::default();
    assert_eq!(m.validate(None), Ok(()));
    m.room_uri = Uri::new("mimi://hub.example/u/alice");
    assert_eq!(m.validate(None), Err(RoomMetadataError::RoomUriNotRoom));
    let u: Vec<RoomMetaUpdate> = vec![m.clone()];
    assert_eq!(RoomMetaData::apply_updates(&u), Ok(m.clone()));
    assert_eq!(
        RoomMetaData::apply_updates(&[m.clone(), m.clone()]),
        Err(RoomMetadataError::NotExactlyOneUpdate(2))
    );
}

#[test]
fn franking_agent_with_real_credential() {
    let cred: Credential = BasicCredential::new(b"mimi://hub.example".to_vec()).into();
    let f = FrankingAgentData {
        franking_signature_key: SignaturePublicKey::from(vec![7u8; 32]),
        credential: cred,
    };
    let bytes = encode(&f).unwrap();
    let back: FrankingAgentData = decode_component(&bytes).unwrap();
    assert_eq!(back, f);
    assert_eq!(back.credential.credential_type(), CredentialType::Basic);
}

#[test]
fn bool_fields_are_strict() {
    let p = BaseRoomPolicy::default();
    assert!(p.multi_device);
    let mut bytes = encode(&p).unwrap();
    // fixed_membership is the first octet.
    assert_eq!(bytes[0], 0);
    bytes[0] = 2;
    assert!(decode_exact::<BaseRoomPolicy>(&bytes).is_err());
    // optional<uint32> presence octet other than 0/1 is rejected too.
    let p = BaseRoomPolicy {
        max_clients: Some(5),
        ..Default::default()
    };
    let ok = encode(&p).unwrap();
    assert_eq!(decode_exact::<BaseRoomPolicy>(&ok).unwrap(), p);
    // fixed_membership, parent_dependant, parent_room<V> (empty), multi_device,
    // then the presence octet of max_clients.
    assert_eq!(&ok[..6], &[0, 0, 0, 1, 1, 0]);
    let mut bad = ok.clone();
    bad[4] = 2;
    assert!(decode_exact::<BaseRoomPolicy>(&bad).is_err());
}

#[test]
fn role_data_validation() {
    use mimi_protocol::components::room_policy::{RoomPolicyError, capabilities as cap};
    let role = |idx: u32, caps: Vec<u16>, changes: Vec<(u32, Vec<u32>)>| Role {
        role_index: idx,
        role_name: VLBytes::new(format!("r{idx}").into_bytes()),
        role_description: VLBytes::new(vec![]),
        role_capabilities: caps,
        minimum_participants_constraint: 0,
        maximum_participants_constraint: None,
        minimum_active_participants_constraint: 0,
        maximum_active_participants_constraint: None,
        authorized_role_changes: changes
            .into_iter()
            .map(
                |(from_role_index, target_role_indexes)| SingleSourceRoleChangeTargets {
                    from_role_index,
                    target_role_indexes,
                },
            )
            .collect(),
    };
    let mut d = RoleData {
        roles: vec![
            role(1, vec![], vec![]),
            role(2, vec![cap::CAN_SEND_MESSAGE], vec![]),
            role(
                4,
                vec![cap::CAN_ADD_PARTICIPANT, cap::CAN_BAN],
                vec![(0, vec![2]), (2, vec![1, 0])],
            ),
        ],
    };
    assert_eq!(d.validate(), Ok(()));
    assert!(d.has_capability(4, cap::CAN_BAN));
    assert!(!d.has_capability(2, cap::CAN_BAN));
    assert!(!d.has_capability(3, cap::CAN_SEND_MESSAGE));
    assert!(d.role(4).unwrap().may_change(2, 1));
    assert!(!d.role(4).unwrap().may_change(1, 2));
    d.roles.push(role(4, vec![], vec![]));
    assert_eq!(d.validate(), Err(RoomPolicyError::DuplicateRoleIndex(4)));
    d.roles.pop();
    d.roles.push(role(0, vec![cap::CAN_SEND_MESSAGE], vec![]));
    assert_eq!(d.validate(), Err(RoomPolicyError::ReservedRoleIndex));
    d.roles.pop();
    // Role 0 exists only to open the room to everyone not listed, or to
    // holders of a join code (C23, C27).
    d.roles
        .push(role(0, vec![cap::CAN_OPEN_JOIN], vec![(0, vec![2])]));
    assert_eq!(d.validate(), Ok(()));
    d.roles.pop();
    d.roles.push(role(0, vec![cap::CAN_USE_JOIN_CODE], vec![]));
    assert_eq!(d.validate(), Ok(()));
    d.roles.pop();
    d.roles.push(role(5, vec![cap::CAN_OPEN_JOIN], vec![]));
    assert_eq!(d.validate(), Err(RoomPolicyError::OpenJoinOnListedRole(5)));
    d.roles.pop();
    d.roles.push(role(5, vec![], vec![(1, vec![9])]));
    assert_eq!(
        d.validate(),
        Err(RoomPolicyError::UndefinedRole { role: 5, other: 9 })
    );
    d.roles.pop();
    let mut r = role(6, vec![], vec![]);
    r.minimum_participants_constraint = 3;
    r.maximum_participants_constraint = Some(2);
    d.roles.push(r);
    assert_eq!(d.validate(), Err(RoomPolicyError::MinAboveMax(6)));

    let mut p = BaseRoomPolicy::default();
    assert_eq!(p.validate(), Ok(()));
    p.parent_dependant = true;
    assert_eq!(p.validate(), Err(RoomPolicyError::ParentRoomMismatch));
    p.parent_room = vec![Uri::new("mimi://hub.example/r/parent")];
    assert_eq!(p.validate(), Ok(()));
}

#[test]
fn dictionary_and_proposal_helpers() {
    use mimi_protocol::components::{
        ComponentUpdate, read_component, update_proposal, write_component,
    };
    use openmls::extensions::AppDataDictionary;

    let mut dict = AppDataDictionary::new();
    assert_eq!(read_component::<ParticipantListData>(&dict).unwrap(), None);
    let list = ParticipantListData::new(vec![UserRolePair::new(
        b"mimi://a.example/u/alice".to_vec(),
        4,
    )]);
    write_component(&mut dict, &list).unwrap();
    assert_eq!(dict.get(&0x0022), Some(&encode(&list).unwrap()[..]));
    assert_eq!(
        read_component::<ParticipantListData>(&dict).unwrap(),
        Some(list)
    );
    // Garbage under the id is a decode error, trailing bytes too.
    dict.insert(0x0023, vec![0xff]);
    assert!(read_component::<RoomMetaData>(&dict).is_err());
    let mut bytes = encode(&RoomMetaData::default()).unwrap();
    bytes.push(0);
    dict.insert(0x0023, bytes);
    assert!(matches!(
        read_component::<RoomMetaData>(&dict),
        Err(DecodeError::TrailingBytes(1))
    ));

    let u = ParticipantListUpdate::default();
    let p = update_proposal(&u).unwrap();
    assert_eq!(p.component_id(), 0x0022);
    assert_eq!(<RoomMetaData as ComponentUpdate>::ID, 0x0023);
    assert_eq!(<PreAuthData as ComponentUpdate>::ID, 0x0026);
}
