//! `ParticipantListData::apply` (-06 §7.5).

use mimi_protocol::components::{
    ParticipantListData, ParticipantListError as E, ParticipantListUpdate, UserRolePair,
    UserindexRolePair,
};
use mimi_protocol::uri::MimiUri;
use proptest::prelude::*;

fn list(entries: &[(&str, u32)]) -> ParticipantListData {
    ParticipantListData::new(
        entries
            .iter()
            .map(|(u, r)| UserRolePair::new(u.as_bytes(), *r))
            .collect(),
    )
}

fn upd(changed: &[(u32, u32)], removed: &[u32], added: &[(&str, u32)]) -> ParticipantListUpdate {
    ParticipantListUpdate {
        changed_role_participants: changed
            .iter()
            .map(|&(user_index, role_index)| UserindexRolePair {
                user_index,
                role_index,
            })
            .collect(),
        removed_indices: removed.to_vec(),
        added_participants: added
            .iter()
            .map(|(u, r)| UserRolePair::new(u.as_bytes(), *r))
            .collect(),
    }
}

fn err(user: &str) -> String {
    user.to_owned()
}

#[test]
fn change_remove_append() {
    let base = list(&[("a", 2), ("b", 3), ("c", 2), ("d", 1)]);
    let out = base
        .apply(&upd(&[(1, 4), (3, 2)], &[0, 2], &[("e", 2), ("f", 3)]))
        .unwrap();
    assert_eq!(out, list(&[("b", 4), ("d", 2), ("e", 2), ("f", 3)]));
    assert_eq!(out.role_of("b"), Some(4));
    assert_eq!(out.index_of("e"), Some(2));
    assert_eq!(out.role_of("a"), None);
    assert!(!out.contains("c"));
    // Removal order in the update does not matter.
    assert_eq!(
        base.apply(&upd(&[], &[2, 0], &[])).unwrap(),
        list(&[("b", 3), ("d", 1)])
    );
    // Empty update is the identity; empty list can grow.
    assert_eq!(base.apply(&ParticipantListUpdate::default()).unwrap(), base);
    let empty = ParticipantListData::default();
    assert_eq!(
        empty.apply(&upd(&[], &[], &[("a", 4)])).unwrap(),
        list(&[("a", 4)])
    );
    // Setting the same role again is a (no-op) change, allowed.
    assert_eq!(base.apply(&upd(&[(0, 2)], &[], &[])).unwrap(), base);
}

#[test]
fn with_mimi_uris() {
    let alice: MimiUri = "mimi://a.example/u/alice".parse().unwrap();
    let bob: MimiUri = "mimi://b.example/u/bob".parse().unwrap();
    let l = ParticipantListData::new(vec![UserRolePair::for_uri(&alice, 4)]);
    let l = l
        .apply(&ParticipantListUpdate {
            added_participants: vec![UserRolePair::for_uri(&bob, 2)],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(l.role_of_uri(&alice), Some(4));
    assert_eq!(l.role_of_uri(&bob), Some(2));
}

#[test]
fn rejections() {
    let base = list(&[("a", 2), ("b", 3), ("c", 2)]);
    let cases = [
        (
            upd(&[(3, 1)], &[], &[]),
            E::IndexOutOfRange { index: 3, len: 3 },
        ),
        (
            upd(&[], &[u32::MAX], &[]),
            E::IndexOutOfRange {
                index: u32::MAX,
                len: 3,
            },
        ),
        (
            upd(&[(1, 4), (1, 5)], &[], &[]),
            E::UserTouchedTwice { user: err("b") },
        ),
        (
            upd(&[(1, 4)], &[1], &[]),
            E::UserTouchedTwice { user: err("b") },
        ),
        (
            upd(&[], &[2, 2], &[]),
            E::UserTouchedTwice { user: err("c") },
        ),
        (
            upd(&[], &[0], &[("a", 2)]),
            E::UserTouchedTwice { user: err("a") },
        ),
        (
            upd(&[(0, 4)], &[], &[("a", 4)]),
            E::UserTouchedTwice { user: err("a") },
        ),
        (
            upd(&[], &[], &[("x", 2), ("x", 3)]),
            E::UserTouchedTwice { user: err("x") },
        ),
        (
            upd(&[], &[], &[("b", 2)]),
            E::AlreadyPresent { user: err("b") },
        ),
        (upd(&[(0, 0)], &[], &[]), E::ReservedRole { user: err("a") }),
        (
            upd(&[], &[], &[("x", 0)]),
            E::ReservedRole { user: err("x") },
        ),
    ];
    for (u, want) in cases {
        let before = base.clone();
        assert_eq!(base.apply(&u), Err(want), "{u:?}");
        assert_eq!(base, before);
    }
    // Out-of-range on an empty list.
    assert_eq!(
        ParticipantListData::default().apply(&upd(&[], &[0], &[])),
        Err(E::IndexOutOfRange { index: 0, len: 0 })
    );
    // An invalid base list is reported, not silently extended.
    let dup = list(&[("a", 2), ("a", 3)]);
    assert_eq!(dup.validate(), Err(E::DuplicateUser { user: err("a") }));
    assert_eq!(
        dup.apply(&upd(&[], &[], &[("z", 2)])),
        Err(E::DuplicateUser { user: err("a") })
    );
    assert_eq!(
        list(&[("a", 0)]).validate(),
        Err(E::ReservedRole { user: err("a") })
    );
}

#[test]
fn several_updates_in_one_commit() {
    let base = list(&[("a", 2), ("b", 3)]);
    // All indices refer to the epoch's list, not to the previous update.
    let u1 = upd(&[], &[0], &[("c", 2)]);
    let u2 = upd(&[(1, 4)], &[], &[("d", 2)]);
    assert_eq!(
        base.apply_all([&u1, &u2]).unwrap(),
        list(&[("b", 4), ("c", 2), ("d", 2)])
    );
    assert_eq!(
        base.apply_all([&u2, &u1]).unwrap(),
        list(&[("b", 4), ("d", 2), ("c", 2)])
    );
    // Touching the same user in two updates of one commit is invalid.
    let u3 = upd(&[(0, 5)], &[], &[]); // "a", removed by u1
    assert_eq!(
        base.apply_all([&u1, &u3]),
        Err(E::UserTouchedTwice { user: err("a") })
    );
    let u4 = upd(&[], &[], &[("a", 2)]); // "a", removed by u1
    assert_eq!(
        base.apply_all([&u1, &u4]),
        Err(E::UserTouchedTwice { user: err("a") })
    );
    let u5 = upd(&[], &[], &[("c", 3)]); // "c", added by u1
    assert_eq!(
        base.apply_all([&u1, &u5]),
        Err(E::UserTouchedTwice { user: err("c") })
    );
    assert_eq!(
        base.apply_all([&u1, &u1]),
        Err(E::UserTouchedTwice { user: err("a") })
    );
    assert_eq!(base.apply_all([]).unwrap(), base);
}

/// A list of distinct users with non-zero roles, plus a valid update for it
/// and the list the draft's semantics predict.
fn valid_case() -> impl Strategy<
    Value = (
        ParticipantListData,
        ParticipantListUpdate,
        ParticipantListData,
    ),
> {
    (
        prop::collection::btree_set("[a-z]{1,4}", 0..12),
        prop::collection::btree_set("[A-Z]{1,4}", 0..4),
    )
        .prop_flat_map(|(users, new_users)| {
            let users: Vec<String> = users.into_iter().collect();
            let n = users.len();
            (
                Just(users),
                prop::collection::vec(1u32..8, n),
                // Per user: 0 untouched, 1 changed, 2 removed.
                prop::collection::vec(0u8..3, n),
                prop::collection::vec(1u32..8, n),
                Just(new_users.into_iter().collect::<Vec<_>>()),
                prop::collection::vec(1u32..8, 4),
                any::<prop::sample::Index>(),
            )
        })
        .prop_map(
            |(users, roles, actions, new_roles, new_users, added_roles, shuffle)| {
                let base = ParticipantListData::new(
                    users
                        .iter()
                        .zip(&roles)
                        .map(|(u, r)| UserRolePair::new(u.as_bytes(), *r))
                        .collect(),
                );
                let mut update = ParticipantListUpdate::default();
                let mut expected = Vec::new();
                for (i, u) in users.iter().enumerate() {
                    match actions[i] {
                        0 => expected.push(UserRolePair::new(u.as_bytes(), roles[i])),
                        1 => {
                            update.changed_role_participants.push(UserindexRolePair {
                                user_index: i as u32,
                                role_index: new_roles[i],
                            });
                            expected.push(UserRolePair::new(u.as_bytes(), new_roles[i]));
                        }
                        _ => update.removed_indices.push(i as u32),
                    }
                }
                // Order within the lists is irrelevant; rotate to vary it.
                if !update.removed_indices.is_empty() {
                    let k = shuffle.index(update.removed_indices.len());
                    update.removed_indices.rotate_left(k);
                }
                if !update.changed_role_participants.is_empty() {
                    let k = shuffle.index(update.changed_role_participants.len());
                    update.changed_role_participants.rotate_left(k);
                }
                for (u, r) in new_users.iter().zip(&added_roles) {
                    let p = UserRolePair::new(u.as_bytes(), *r);
                    update.added_participants.push(p.clone());
                    expected.push(p);
                }
                (base, update, ParticipantListData::new(expected))
            },
        )
}

proptest! {
    #[test]
    fn valid_update_gives_expected_list((base, update, expected) in valid_case()) {
        let out = base.apply(&update).unwrap();
        prop_assert_eq!(&out, &expected);
        prop_assert!(out.validate().is_ok());
        prop_assert_eq!(out.len(), base.len() - update.removed_indices.len() + update.added_participants.len());
        prop_assert_eq!(base.apply_all([&update]).unwrap(), expected);
    }

    /// Corrupting a valid update in any of the ways -06 forbids makes apply
    /// fail and leaves the list as it was.
    #[test]
    fn invalid_update_rejected((base, update, _) in valid_case(), how in 0u8..6, pick in any::<prop::sample::Index>()) {
        let mut bad = update.clone();
        let n = base.len() as u32;
        match how {
            0 => bad.removed_indices.push(n + pick.index(100) as u32),
            1 => bad.changed_role_participants.push(UserindexRolePair { user_index: n + pick.index(100) as u32, role_index: 1 }),
            2 => {
                // Touch an already touched or any existing index twice.
                prop_assume!(n > 0);
                let i = pick.index(n as usize) as u32;
                bad.removed_indices.push(i);
                bad.changed_role_participants.push(UserindexRolePair { user_index: i, role_index: 1 });
            }
            3 => {
                prop_assume!(n > 0);
                let p = base.participants[pick.index(n as usize)].clone();
                bad.added_participants.push(p);
            }
            4 => {
                prop_assume!(!bad.added_participants.is_empty());
                let p = bad.added_participants[pick.index(bad.added_participants.len())].clone();
                bad.added_participants.push(p);
            }
            _ => bad.added_participants.push(UserRolePair::new(b"0new".to_vec(), 0)),
        }
        let before = base.clone();
        prop_assert!(base.apply(&bad).is_err());
        prop_assert_eq!(base, before);
    }
}
