//! The `base_room_policy` component as the hub enforces it (room-policy
//! §Base Room policy component syntax). A room without the component has
//! the default policy: multi-device, no limits, membership not fixed.

use std::collections::{BTreeSet, HashMap};

use mimi_protocol::components::room_policy::capabilities as cap;
use mimi_protocol::components::room_policy::{BaseRoomPolicy, RoleData};

use super::{BANNED_ROLE, NOT_IN_LIST, RoomPolicyState};
use crate::rejection::PolicyViolation;

/// Clients in the MLS group per user.
pub type ClientsByUser = HashMap<String, usize>;

/// Capabilities that would let a user who is not a participant in, which
/// a fixed-membership room cannot have ("other users cannot be added").
const JOINING: [u16; 4] = [
    cap::CAN_ADD_PARTICIPANT,
    cap::CAN_OPEN_JOIN,
    cap::CAN_JOIN_IF_PREAUTHORIZED,
    cap::CAN_USE_JOIN_CODE,
];

/// A fixed-membership room's roles: no non-zero, non-banned role may add
/// participants, and no role may let outsiders join.
pub fn check_fixed_membership_roles(
    policy: &BaseRoomPolicy,
    roles: &RoleData,
) -> Result<(), PolicyViolation> {
    if !policy.fixed_membership {
        return Ok(());
    }
    for role in &roles.roles {
        if role.role_index == BANNED_ROLE {
            continue;
        }
        if let Some(&capability) = JOINING.iter().find(|c| role.has_capability(**c)) {
            return Err(PolicyViolation::FixedMembershipRole {
                role: role.role_index,
                capability,
            });
        }
    }
    Ok(())
}

/// The base room policy on the room a commit produces. Limits are checked
/// only where the commit makes the count grow, so that a room over a
/// lowered limit can still shrink.
pub fn check_after_commit(
    before: &RoomPolicyState,
    after: &RoomPolicyState,
    clients_before: &ClientsByUser,
    clients_after: &ClientsByUser,
) -> Result<(), PolicyViolation> {
    let (old, new) = (&before.base, &after.base);
    // The membership style is what the room was created as: a fixed-
    // membership room is unique for its participants, and a parent-
    // dependent room's participants follow its parent (C21).
    if old.fixed_membership != new.fixed_membership
        || old.parent_dependant != new.parent_dependant
        || old.parent_room != new.parent_room
    {
        return Err(PolicyViolation::MembershipStyleChanged);
    }
    new.validate()
        .map_err(|e| PolicyViolation::BasePolicy(e.to_string()))?;
    check_fixed_membership_roles(new, &after.roles)?;
    if old.fixed_membership && users(before) != users(after) {
        return Err(PolicyViolation::FixedMembership);
    }
    check_limits(before, after, clients_before, clients_after)
}

/// The base room policy of a room being created with `clients`: the
/// component consistent, and the room within its own limits.
pub fn check_at_creation(
    state: &RoomPolicyState,
    clients: &ClientsByUser,
) -> Result<(), PolicyViolation> {
    state
        .base
        .validate()
        .map_err(|e| PolicyViolation::BasePolicy(e.to_string()))?;
    check_fixed_membership_roles(&state.base, &state.roles)?;
    check_limits(
        &RoomPolicyState::default(),
        state,
        &ClientsByUser::new(),
        clients,
    )
}

/// `max_clients`, `max_users` and `multi_device` of `after`'s policy,
/// where the room grows.
fn check_limits(
    before: &RoomPolicyState,
    after: &RoomPolicyState,
    clients_before: &ClientsByUser,
    clients_after: &ClientsByUser,
) -> Result<(), PolicyViolation> {
    let new = &after.base;
    let total = |c: &ClientsByUser| c.values().sum::<usize>();
    if let Some(max) = new.max_clients {
        let n = total(clients_after);
        if n > max as usize && n > total(clients_before) {
            return Err(PolicyViolation::MaxClients { max });
        }
    }
    if let Some(max) = new.max_users {
        let n = listed_users(after);
        if n > max as usize && n > listed_users(before) {
            return Err(PolicyViolation::MaxUsers { max });
        }
    }
    if !new.multi_device
        && let Some((user, _)) = clients_after
            .iter()
            .find(|(user, n)| **n > 1 && **n > clients_before.get(*user).copied().unwrap_or(0))
    {
        return Err(PolicyViolation::SingleDevice { user: user.clone() });
    }
    Ok(())
}

/// A parent-dependent room's participants must be participants of its
/// parent (room-policy §Base Room policy): every non-banned entry of the
/// child is a non-banned entry of the parent. The draft says "strict
/// subset"; we read a subset, so a call room of a whole group DM (the
/// draft's own example) is possible (docs/divergences.md C21). This is the
/// check at creation; commits use [`check_parent_after_commit`].
pub fn check_parent_membership(
    child: &RoomPolicyState,
    parent: &RoomPolicyState,
) -> Result<(), PolicyViolation> {
    match outside_parent(child, parent).into_iter().next() {
        Some(stranger) => Err(PolicyViolation::NotInParent { user: stranger }),
        None => Ok(()),
    }
}

/// The non-banned participants of a parent-dependent room who are not
/// (or no longer) non-banned participants of its parent: the child
/// follows the parent, so any member may remove them (C21).
pub fn outside_parent(child: &RoomPolicyState, parent: &RoomPolicyState) -> BTreeSet<String> {
    let in_parent: BTreeSet<&[u8]> = parent
        .participants
        .participants
        .iter()
        .filter(|p| !parent.is_banned_role(p.role_index))
        .map(|p| p.user.as_slice())
        .collect();
    child
        .participants
        .participants
        .iter()
        .filter(|p| !child.is_banned_role(p.role_index))
        .filter(|p| !in_parent.contains(p.user.as_slice()))
        .map(|p| String::from_utf8_lossy(p.user.as_slice()).into_owned())
        .collect()
}

/// A parent-dependent room after a commit (C21): no one outside the
/// parent is added, given a new role or left with clients. A participant
/// the parent dropped since stays listed, clientless and powerless, until
/// a member's commit removes it; the hub proposes the removal of its
/// clients at once (`HubEngine::parent_removals`), and the next commit
/// must include those proposals (-06 §5.3).
pub fn check_parent_after_commit(
    before: &RoomPolicyState,
    after: &RoomPolicyState,
    parent: &RoomPolicyState,
    clients_after: &ClientsByUser,
) -> Result<(), PolicyViolation> {
    for user in outside_parent(after, parent) {
        let kept_as_was =
            before.role_of(&user) != NOT_IN_LIST && before.role_of(&user) == after.role_of(&user);
        if !kept_as_was || clients_after.get(&user).copied().unwrap_or(0) > 0 {
            return Err(PolicyViolation::NotInParent { user });
        }
    }
    Ok(())
}

fn users(state: &RoomPolicyState) -> BTreeSet<&[u8]> {
    state
        .participants
        .participants
        .iter()
        .map(|p| p.user.as_slice())
        .collect()
}

/// Non-banned entries of the participant list (`max_users`).
fn listed_users(state: &RoomPolicyState) -> usize {
    state
        .participants
        .participants
        .iter()
        .filter(|p| !state.is_banned_role(p.role_index))
        .count()
}

/// The key under which a hub keeps "only a single fixed-membership room
/// for any unique set of participants": the room's participant users
/// (URIs as the list holds them, which clients normalise), sorted and
/// joined by a space. `None` for a room whose
/// membership is not fixed.
pub fn fixed_membership_key(state: &RoomPolicyState) -> Option<String> {
    if !state.base.fixed_membership {
        return None;
    }
    let users: BTreeSet<String> = state
        .participants
        .participants
        .iter()
        .map(|p| String::from_utf8_lossy(p.user.as_slice()).into_owned())
        .collect();
    Some(users.into_iter().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use mimi_protocol::components::{ParticipantListData, UserRolePair};

    use super::*;
    use crate::policy::{default_role, default_roles};

    fn state(users: &[(&str, u32)], base: BaseRoomPolicy) -> RoomPolicyState {
        RoomPolicyState {
            participants: ParticipantListData::new(
                users
                    .iter()
                    .map(|(u, r)| UserRolePair::new(u.as_bytes(), *r))
                    .collect(),
            ),
            roles: default_roles(),
            base,
            ..RoomPolicyState::default()
        }
    }

    fn clients(list: &[(&str, usize)]) -> ClientsByUser {
        list.iter().map(|(u, n)| ((*u).to_owned(), *n)).collect()
    }

    const M: u32 = default_role::MEMBER;

    #[test]
    fn max_clients_and_max_users_bound_growth_only() {
        let base = BaseRoomPolicy {
            max_clients: Some(2),
            max_users: Some(2),
            ..BaseRoomPolicy::default()
        };
        let two = state(&[("a", M), ("b", M)], base.clone());
        let three = state(&[("a", M), ("b", M), ("c", M)], base.clone());
        let ab = clients(&[("a", 1), ("b", 1)]);
        assert_eq!(
            check_after_commit(&two, &three, &ab, &ab),
            Err(PolicyViolation::MaxUsers { max: 2 })
        );
        assert_eq!(
            check_after_commit(&two, &two, &ab, &clients(&[("a", 2), ("b", 1)])),
            Err(PolicyViolation::MaxClients { max: 2 })
        );
        // At creation, the same limits hold from an empty room.
        assert_eq!(
            check_at_creation(&three, &clients(&[("a", 1)])),
            Err(PolicyViolation::MaxUsers { max: 2 })
        );
        check_at_creation(&two, &clients(&[("a", 1)])).unwrap();
        // Shrinking a room that is over its limits is always possible.
        check_after_commit(&three, &two, &clients(&[("a", 3)]), &clients(&[("a", 2)])).unwrap();
        // A banned entry does not count as a user.
        let banned = state(&[("a", M), ("b", M), ("c", BANNED_ROLE)], base);
        check_after_commit(&two, &banned, &ab, &ab).unwrap();
    }

    #[test]
    fn a_single_device_room_takes_one_client_per_user() {
        let base = BaseRoomPolicy {
            multi_device: false,
            ..BaseRoomPolicy::default()
        };
        let s = state(&[("a", M), ("b", M)], base);
        assert_eq!(
            check_after_commit(
                &s,
                &s,
                &clients(&[("a", 1)]),
                &clients(&[("a", 2), ("b", 1)])
            ),
            Err(PolicyViolation::SingleDevice { user: "a".into() })
        );
        check_after_commit(
            &s,
            &s,
            &clients(&[("a", 1)]),
            &clients(&[("a", 1), ("b", 1)]),
        )
        .unwrap();
    }

    #[test]
    fn a_fixed_membership_room_keeps_its_participants_and_style() {
        let fixed = BaseRoomPolicy {
            fixed_membership: true,
            ..BaseRoomPolicy::default()
        };
        let mut roles = default_roles();
        for role in &mut roles.roles {
            role.role_capabilities
                .retain(|c| *c != cap::CAN_ADD_PARTICIPANT);
        }
        let dm = |users: &[(&str, u32)]| RoomPolicyState {
            roles: roles.clone(),
            ..state(users, fixed.clone())
        };
        let ab = dm(&[("a", M), ("b", M)]);
        let c = clients(&[("a", 1), ("b", 1)]);
        check_at_creation(&ab, &clients(&[("a", 1)])).unwrap();
        check_after_commit(&ab, &ab, &c, &clients(&[("a", 2), ("b", 1)])).unwrap();
        for other in [dm(&[("a", M)]), dm(&[("a", M), ("b", M), ("c", M)])] {
            assert_eq!(
                check_after_commit(&ab, &other, &c, &c),
                Err(PolicyViolation::FixedMembership)
            );
        }
        let unfixed = RoomPolicyState {
            base: BaseRoomPolicy::default(),
            ..ab.clone()
        };
        assert_eq!(
            check_after_commit(&ab, &unfixed, &c, &c),
            Err(PolicyViolation::MembershipStyleChanged)
        );
        // Roles that let others in contradict fixed membership.
        assert_eq!(
            check_fixed_membership_roles(&fixed, &default_roles()),
            Err(PolicyViolation::FixedMembershipRole {
                role: default_role::MEMBER,
                capability: cap::CAN_ADD_PARTICIPANT
            })
        );
        assert_eq!(
            fixed_membership_key(&dm(&[("mimi://b/u/bob", M), ("mimi://a/u/al", M)])).as_deref(),
            Some("mimi://a/u/al mimi://b/u/bob")
        );
        assert_eq!(
            fixed_membership_key(&state(&[("a", M)], BaseRoomPolicy::default())),
            None
        );
    }

    #[test]
    fn after_a_commit_a_child_keeps_those_its_parent_dropped_only_clientless_and_unchanged() {
        let open = BaseRoomPolicy::default;
        let parent = state(&[("a", M), ("c", BANNED_ROLE)], open());
        let before = state(&[("a", M), ("b", M), ("c", M)], open());
        let none = clients(&[("a", 1)]);
        assert_eq!(
            outside_parent(&before, &parent),
            BTreeSet::from(["b".to_owned(), "c".to_owned()])
        );
        // Kept as they were and without clients: tolerated until removed.
        check_parent_after_commit(&before, &before, &parent, &none).unwrap();
        // Removed: fine.
        check_parent_after_commit(&before, &state(&[("a", M)], open()), &parent, &none).unwrap();
        // Still holding a client, given a new role, or newly added: refused.
        let refused = |after: &RoomPolicyState, clients: &ClientsByUser, user: &str| {
            assert_eq!(
                check_parent_after_commit(&before, after, &parent, clients),
                Err(PolicyViolation::NotInParent { user: user.into() })
            );
        };
        refused(&before, &clients(&[("a", 1), ("b", 1)]), "b");
        refused(
            &state(
                &[("a", M), ("b", default_role::MODERATOR), ("c", M)],
                open(),
            ),
            &none,
            "b",
        );
        refused(
            &state(&[("a", M), ("b", M), ("c", M), ("d", M)], open()),
            &none,
            "d",
        );
    }

    #[test]
    fn a_parent_dependent_room_holds_only_participants_of_its_parent() {
        let open = BaseRoomPolicy::default;
        let parent = state(&[("a", M), ("b", M), ("c", BANNED_ROLE)], open());
        check_parent_membership(&state(&[("a", M), ("b", M)], open()), &parent).unwrap();
        for stranger in ["c", "d"] {
            assert_eq!(
                check_parent_membership(&state(&[("a", M), (stranger, M)], open()), &parent),
                Err(PolicyViolation::NotInParent {
                    user: stranger.into()
                })
            );
        }
    }
}
