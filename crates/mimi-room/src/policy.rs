//! Room policy as the hub enforces it (-06 §5.3, draft-ietf-mimi-room-policy
//! §Role Capabilities).
//!
//! Authorization is per proposal and per *proposer*: a leaving user's
//! SelfRemove and participant-list removal are authorized against the
//! leaving user's role even when somebody else commits them, as
//! room-policy §Removing requires ("this action cannot be committed by the
//! leaving user").

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mimi_protocol::components::room_policy::capabilities as cap;
use mimi_protocol::components::room_policy::{
    BaseRoomPolicy, CapabilityType, PreAuthData, Role, RoleData, SingleSourceRoleChangeTargets,
};
use mimi_protocol::components::{
    BASE_ROOM_POLICY, JOIN_LINK_POLICY, JOIN_LINKS, JoinLinkPolicy, JoinLinksData,
    PARTICIPANT_LIST, PREAUTH_LIST, ParticipantListData, ParticipantListUpdate, ROLES_LIST,
    ROOM_METADATA, RoomMetaData, decode_component,
};
use openmls::prelude::AppDataDictionary;

pub mod base;
pub mod join_links;
pub mod preauth;
pub mod templates;
pub mod updates;

use crate::RoomError;
use crate::rejection::PolicyViolation;

/// role_index 1 named "banned" is the ban role (room-policy §Role Changes).
pub const BANNED_ROLE: u32 = 1;
pub(crate) const NOT_IN_LIST: u32 = 0;

/// The policy-relevant part of a room's GroupContext.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomPolicyState {
    pub participants: ParticipantListData,
    pub roles: RoleData,
    /// `base_room_policy`; the draft's defaults when absent.
    pub base: BaseRoomPolicy,
    /// `preauth_list`; empty when absent.
    pub preauth: PreAuthData,
    /// `room_metadata` (-06 §7.6), if the room has it.
    pub metadata: Option<RoomMetaData>,
    /// `join_link_policy`; without it the room has no join links (C27).
    pub join_link_policy: Option<JoinLinkPolicy>,
    /// `join_links`; empty when absent.
    pub join_links: JoinLinksData,
}

impl RoomPolicyState {
    /// Reads the policy components from an `app_data_dictionary`.
    pub fn from_dictionary(dict: Option<&AppDataDictionary>) -> Result<Self, RoomError> {
        fn read<T: tls_codec::Deserialize>(
            dict: Option<&AppDataDictionary>,
            id: u16,
            name: &str,
        ) -> Result<Option<T>, RoomError> {
            dict.and_then(|d| d.get(&id))
                .map(|bytes| decode_component::<T>(bytes))
                .transpose()
                .map_err(|e| RoomError::InvalidGroup(format!("{name}: {e}")))
        }
        Ok(Self {
            participants: read(dict, PARTICIPANT_LIST, "participant_list")?.unwrap_or_default(),
            roles: read(dict, ROLES_LIST, "roles_list")?.unwrap_or_default(),
            base: read(dict, BASE_ROOM_POLICY, "base_room_policy")?.unwrap_or_default(),
            preauth: read(dict, PREAUTH_LIST, "preauth_list")?.unwrap_or_default(),
            metadata: read(dict, ROOM_METADATA, "room_metadata")?,
            join_link_policy: read(dict, JOIN_LINK_POLICY, "join_link_policy")?,
            join_links: read(dict, JOIN_LINKS, "join_links")?.unwrap_or_default(),
        })
    }

    /// Whether a user who is not in the participant list may add itself
    /// with `role` (an external commit, room-policy §Adding): as the first
    /// role its claims match in `preauth_list` if that role holds
    /// `canJoinIfPreauthorized`, or as a role that role 0 (everyone not
    /// listed) may move to when role 0 holds `canOpenJoin`.
    pub fn may_join_as(&self, preauth_role: Option<u32>, role: u32) -> bool {
        if role == NOT_IN_LIST || self.is_banned_role(role) || self.roles.role(role).is_none() {
            return false;
        }
        let preauthorized = preauth_role == Some(role)
            && self
                .roles
                .has_capability(role, cap::CAN_JOIN_IF_PREAUTHORIZED);
        let open = self
            .roles
            .role(NOT_IN_LIST)
            .is_some_and(|r| r.has_capability(cap::CAN_OPEN_JOIN) && r.may_change(0, role));
        preauthorized || open
    }

    /// The role a user who is not in the participant list may join as by
    /// itself: its preauthorized role, else the first role open join
    /// allows; `None` if it may not join by itself.
    pub fn self_join_role(&self, preauth_role: Option<u32>) -> Option<u32> {
        if let Some(role) = preauth_role
            && self.may_join_as(preauth_role, role)
        {
            return Some(role);
        }
        self.roles
            .role(NOT_IN_LIST)
            .filter(|r| r.has_capability(cap::CAN_OPEN_JOIN))?
            .authorized_role_changes
            .iter()
            .filter(|c| c.from_role_index == NOT_IN_LIST)
            .flat_map(|c| c.target_role_indexes.iter().copied())
            .find(|&role| self.may_join_as(None, role))
    }

    /// The role of `user`, 0 if not in the participant list.
    pub fn role_of(&self, user: &str) -> u32 {
        self.participants.role_of(user).unwrap_or(NOT_IN_LIST)
    }

    pub fn has(&self, user: &str, capability: CapabilityType) -> bool {
        self.roles.has_capability(self.role_of(user), capability)
    }

    /// Whether `role` is the ban role as room-policy defines it.
    pub fn is_banned_role(&self, role: u32) -> bool {
        role == BANNED_ROLE
            && self
                .roles
                .role(BANNED_ROLE)
                .is_some_and(|r| r.role_name.as_slice() == b"banned")
    }

    /// A user may be active (have clients in the group) when they are in
    /// the participant list with a role that is not banned and whose
    /// `maximum_active_participants_constraint` is not zero.
    pub fn may_be_active(&self, user: &str) -> bool {
        self.role_may_be_active(self.role_of(user))
    }

    /// [`Self::may_be_active`] for a user whose role is already known.
    pub fn role_may_be_active(&self, role: u32) -> bool {
        role != NOT_IN_LIST
            && !self.is_banned_role(role)
            && self
                .roles
                .role(role)
                .is_none_or(|r| r.maximum_active_participants_constraint != Some(0))
    }

    /// user → role for the whole participant list. `role_of` scans the
    /// list; checks that visit every member use this instead, so a commit
    /// stays linear in the group size.
    pub fn roles_by_user(&self) -> HashMap<&[u8], u32> {
        self.participants
            .participants
            .iter()
            .map(|p| (p.user.as_slice(), p.role_index))
            .collect()
    }

    /// Role of `user` in an index from [`Self::roles_by_user`].
    pub fn role_in(index: &HashMap<&[u8], u32>, user: &str) -> u32 {
        index.get(user.as_bytes()).copied().unwrap_or(NOT_IN_LIST)
    }

    fn may_change(&self, actor_role: u32, from: u32, to: u32) -> bool {
        self.roles
            .role(actor_role)
            .is_some_and(|r| r.may_change(from, to))
    }
}

/// What one participant-list update did, user by user, for authorization
/// of the other proposals in the same commit.
#[derive(Debug, Default, Clone)]
pub struct ParticipantChanges {
    /// user → (old role, new role); 0 = not in the list.
    pub changed: BTreeMap<String, (u32, u32)>,
}

impl ParticipantChanges {
    pub fn added(&self, user: &str) -> bool {
        self.changed
            .get(user)
            .is_some_and(|(old, _)| *old == NOT_IN_LIST)
    }

    pub fn removed_or_banned(&self, user: &str, state: &RoomPolicyState) -> bool {
        self.changed
            .get(user)
            .is_some_and(|(_, new)| *new == NOT_IN_LIST || state.is_banned_role(*new))
    }
}

/// What lets a proposer act beyond its role: the first role its
/// credential claims match in `preauth_list`
/// ([`preauth::Claims::first_role`]), which authorizes adding oneself and
/// changing one's own role; the role of the join link it joins with
/// ([`join_links::grant`]), which authorizes adding oneself; and the users
/// whose external join proposals the commit includes, with their
/// preauthorized roles, whom anyone may add with a role they may join as;
/// and, in a parent-dependent room, the participants its parent no longer
/// has, whom anyone may remove ([`base::outside_parent`], C21).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelfGrants<'a> {
    pub preauth_role: Option<u32>,
    pub link_role: Option<u32>,
    pub external_joiners: &'a [(String, Option<u32>)],
    pub outside_parent: Option<&'a BTreeSet<String>>,
}

impl SelfGrants<'_> {
    pub fn preauthorized(role: Option<u32>) -> Self {
        Self {
            preauth_role: role,
            ..Self::default()
        }
    }
}

/// Authorizes one ParticipantListUpdate proposed by `proposer` against the
/// list it applies to, and records who it changed.
pub fn authorize_participant_update(
    state: &RoomPolicyState,
    proposer: &str,
    grants: SelfGrants<'_>,
    update: &ParticipantListUpdate,
    changes: &mut ParticipantChanges,
) -> Result<(), PolicyViolation> {
    let preauth_role = grants.preauth_role;
    let actor = state.role_of(proposer);
    let list = &state.participants.participants;
    let user_at = |i: u32| {
        usize::try_from(i)
            .ok()
            .and_then(|i| list.get(i))
            .map(|p| {
                (
                    String::from_utf8_lossy(p.user.as_slice()).into_owned(),
                    p.role_index,
                )
            })
            .ok_or(PolicyViolation::ParticipantIndex { index: i })
    };
    for change in &update.changed_role_participants {
        let (user, from) = user_at(change.user_index)?;
        let to = change.role_index;
        if user == proposer {
            // canChangeOwnRole: to the first non-zero role the proposer's
            // claims match; authorized_role_changes is not consulted.
            if !(state.has(proposer, cap::CAN_CHANGE_OWN_ROLE)
                && to != NOT_IN_LIST
                && preauth_role == Some(to))
            {
                return Err(PolicyViolation::OwnRoleChange { user, from, to });
            }
            changes.changed.insert(user, (from, to));
            continue;
        }
        let allowed = if state.is_banned_role(to) {
            (state.has(proposer, cap::CAN_BAN) || state.has(proposer, cap::CAN_CHANGE_USER_ROLE))
                && state.may_change(actor, from, to)
        } else if state.is_banned_role(from) {
            (state.has(proposer, cap::CAN_UN_BAN) || state.has(proposer, cap::CAN_CHANGE_USER_ROLE))
                && state.may_change(actor, from, to)
        } else {
            state.has(proposer, cap::CAN_CHANGE_USER_ROLE) && state.may_change(actor, from, to)
        };
        if !allowed {
            return Err(PolicyViolation::RoleChange {
                proposer: proposer.to_owned(),
                user,
                from,
                to,
            });
        }
        changes.changed.insert(user, (from, to));
    }
    for &index in &update.removed_indices {
        let (user, from) = user_at(index)?;
        // The child follows its parent: whoever left the parent is
        // removed by any member (room-policy §Base Room policy).
        if grants
            .outside_parent
            .is_some_and(|users| users.contains(&user))
        {
            changes.changed.insert(user, (from, NOT_IN_LIST));
            continue;
        }
        let capability = if user == proposer {
            cap::CAN_REMOVE_SELF
        } else {
            cap::CAN_REMOVE_PARTICIPANT
        };
        if !(state.has(proposer, capability) && state.may_change(actor, from, NOT_IN_LIST)) {
            return Err(PolicyViolation::ParticipantRemoval {
                proposer: proposer.to_owned(),
                user,
            });
        }
        changes.changed.insert(user, (from, NOT_IN_LIST));
    }
    for added in &update.added_participants {
        let user = String::from_utf8_lossy(added.user.as_slice()).into_owned();
        let to = added.role_index;
        if user == proposer {
            // Adding oneself: preauthorization, open join, or the role of
            // one's join link (docs/divergences.md C13, C27).
            if !(state.may_join_as(preauth_role, to) || grants.link_role == Some(to)) {
                return Err(PolicyViolation::SelfJoin { user, role: to });
            }
            changes.changed.insert(user, (NOT_IN_LIST, to));
            continue;
        }
        let asked = grants
            .external_joiners
            .iter()
            .any(|(joiner, preauth_role)| *joiner == user && state.may_join_as(*preauth_role, to));
        let allowed = asked
            || state.has(proposer, cap::CAN_ADD_PARTICIPANT)
                && state.may_change(actor, NOT_IN_LIST, to);
        if !allowed {
            return Err(PolicyViolation::ParticipantAddition {
                proposer: proposer.to_owned(),
                user,
                role: to,
            });
        }
        changes.changed.insert(user, (NOT_IN_LIST, to));
    }
    Ok(())
}

/// Checks the per-role participant count constraints of the room policy
/// on the list after a commit. Minimums are only enforced for roles whose
/// count went down, so that a room created below a minimum can still grow.
pub fn check_role_constraints(
    before: &RoomPolicyState,
    after: &RoomPolicyState,
    active_users_before: &HashMap<String, usize>,
    active_users_after: &HashMap<String, usize>,
) -> Result<(), PolicyViolation> {
    let count = |s: &RoomPolicyState| {
        let mut by_role: HashMap<u32, u32> = HashMap::new();
        for p in &s.participants.participants {
            *by_role.entry(p.role_index).or_default() += 1;
        }
        by_role
    };
    let (old, new) = (count(before), count(after));
    let active = |s: &RoomPolicyState, users: &HashMap<String, usize>| {
        let roles = s.roles_by_user();
        let mut by_role: HashMap<u32, u32> = HashMap::new();
        for user in users.keys() {
            *by_role
                .entry(RoomPolicyState::role_in(&roles, user))
                .or_default() += 1;
        }
        by_role
    };
    let active_before = active(before, active_users_before);
    let active_by_role = active(after, active_users_after);
    for role in &after.roles.roles {
        let n = new.get(&role.role_index).copied().unwrap_or(0);
        let o = old.get(&role.role_index).copied().unwrap_or(0);
        if role
            .maximum_participants_constraint
            .is_some_and(|max| n > max && n > o)
        {
            return Err(PolicyViolation::MaxParticipants {
                role: role.role_index,
            });
        }
        if n < o && n < role.minimum_participants_constraint {
            return Err(PolicyViolation::MinParticipants {
                role: role.role_index,
            });
        }
        let active = active_by_role.get(&role.role_index).copied().unwrap_or(0);
        if role
            .maximum_active_participants_constraint
            .is_some_and(|max| active > max)
        {
            return Err(PolicyViolation::MaxActiveParticipants {
                role: role.role_index,
            });
        }
        let was_active = active_before.get(&role.role_index).copied().unwrap_or(0);
        if active < was_active && active < role.minimum_active_participants_constraint {
            return Err(PolicyViolation::MinActiveParticipants {
                role: role.role_index,
            });
        }
    }
    Ok(())
}

/// Role indexes of [`default_roles`].
pub mod default_role {
    pub const BANNED: u32 = super::BANNED_ROLE;
    pub const MEMBER: u32 = 2;
    pub const MODERATOR: u32 = 3;
    pub const ADMIN: u32 = 4;
}

/// Role 0, the users not in the participant list (C23), holding only
/// `capabilities` (`canOpenJoin`, `canUseJoinCode`), with `targets` the
/// roles an open join or a join link may give.
pub fn no_role(capabilities: Vec<CapabilityType>, targets: Vec<u32>) -> Role {
    Role {
        role_index: NOT_IN_LIST,
        role_name: b"no_role".to_vec().into(),
        role_description: b"users not in the participant list".to_vec().into(),
        role_capabilities: capabilities,
        minimum_participants_constraint: 0,
        maximum_participants_constraint: None,
        minimum_active_participants_constraint: 0,
        maximum_active_participants_constraint: None,
        authorized_role_changes: vec![SingleSourceRoleChangeTargets {
            from_role_index: NOT_IN_LIST,
            target_role_indexes: targets,
        }],
    }
}

/// A cooperatively administered room in the spirit of room-policy
/// §Role examples, with the indexes -06 §3.3 uses (1 banned, 3 moderator,
/// 4 admin) and 2 for ordinary members, who may add others as members,
/// leave, and send every kind of message (links, topics, files).
/// Moderators also kick, ban, unban and edit the room metadata; admins may
/// additionally change roles and role definitions.
pub fn default_roles() -> RoleData {
    use default_role::*;
    use mimi_protocol::components::room_policy::{Role, SingleSourceRoleChangeTargets};

    let changes = |list: &[(u32, &[u32])]| {
        list.iter()
            .map(|(from, to)| SingleSourceRoleChangeTargets {
                from_role_index: *from,
                target_role_indexes: to.to_vec(),
            })
            .collect()
    };
    let member_caps = vec![
        cap::CAN_ADD_PARTICIPANT,
        cap::CAN_ADD_OWN_CLIENT,
        cap::CAN_REMOVE_OWN_CLIENT,
        cap::CAN_REMOVE_SELF,
        cap::CAN_SEND_MESSAGE,
        cap::CAN_RECEIVE_MESSAGE,
        cap::CAN_REPORT_ABUSE,
        cap::CAN_REPLY_TO_MESSAGE,
        cap::CAN_REACT_TO_MESSAGE,
        cap::CAN_EDIT_REACTION,
        cap::CAN_DELETE_OWN_REACTION,
        cap::CAN_EDIT_OWN_MESSAGE,
        cap::CAN_DELETE_OWN_MESSAGE,
        cap::CAN_COPY_MESSAGE,
        cap::CAN_START_TOPIC,
        cap::CAN_REPLY_IN_TOPIC,
        cap::CAN_EDIT_OWN_TOPIC,
        cap::CAN_SEND_LINK,
        cap::CAN_SEND_LINK_PREVIEW,
        cap::CAN_FOLLOW_LINK,
        cap::CAN_COPY_LINK,
        cap::CAN_UPLOAD_IMAGE,
        cap::CAN_UPLOAD_AUDIO,
        cap::CAN_UPLOAD_VIDEO,
        cap::CAN_UPLOAD_ATTACHMENT,
        cap::CAN_DOWNLOAD_IMAGE,
        cap::CAN_DOWNLOAD_AUDIO,
        cap::CAN_DOWNLOAD_VIDEO,
        cap::CAN_DOWNLOAD_ATTACHMENT,
    ];
    let mut moderator_caps = member_caps.clone();
    moderator_caps.extend([
        cap::CAN_REMOVE_PARTICIPANT,
        cap::CAN_KICK,
        cap::CAN_BAN,
        cap::CAN_UN_BAN,
        cap::CAN_DELETE_OTHER_MESSAGE,
        cap::CAN_CHANGE_ROOM_NAME,
        cap::CAN_CHANGE_ROOM_DESCRIPTION,
        cap::CAN_CHANGE_ROOM_AVATAR,
        cap::CAN_CHANGE_ROOM_SUBJECT,
        cap::CAN_CHANGE_ROOM_MOOD,
    ]);
    let mut admin_caps = moderator_caps.clone();
    admin_caps.extend([
        cap::CAN_CHANGE_USER_ROLE,
        cap::CAN_CHANGE_ROLE_DEFINITIONS,
        cap::CAN_CHANGE_OTHER_POLICY_ATTRIBUTE,
    ]);
    let role =
        |index: u32, name: &str, caps: Vec<CapabilityType>, max_active: Option<u32>, changes| {
            Role {
                role_index: index,
                role_name: name.as_bytes().to_vec().into(),
                role_description: Vec::new().into(),
                role_capabilities: caps,
                minimum_participants_constraint: 0,
                maximum_participants_constraint: None,
                minimum_active_participants_constraint: 0,
                maximum_active_participants_constraint: max_active,
                authorized_role_changes: changes,
            }
        };
    RoleData {
        roles: vec![
            role(BANNED, "banned", Vec::new(), Some(0), Vec::new()),
            role(
                MEMBER,
                "member",
                member_caps,
                None,
                changes(&[(0, &[MEMBER]), (MEMBER, &[0])]),
            ),
            role(
                MODERATOR,
                "moderator",
                moderator_caps,
                None,
                changes(&[
                    (0, &[MEMBER]),
                    (MEMBER, &[0, BANNED]),
                    (BANNED, &[0, MEMBER]),
                    (MODERATOR, &[0]),
                ]),
            ),
            role(
                ADMIN,
                "admin",
                admin_caps,
                None,
                changes(&[
                    (0, &[MEMBER, MODERATOR, ADMIN]),
                    (MEMBER, &[0, BANNED, MODERATOR, ADMIN]),
                    (MODERATOR, &[0, BANNED, MEMBER, ADMIN]),
                    (BANNED, &[0, MEMBER]),
                    (ADMIN, &[0]),
                ]),
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimi_protocol::components::UserRolePair;

    fn state(users: &[(&str, u32)]) -> RoomPolicyState {
        RoomPolicyState {
            participants: ParticipantListData::new(
                users
                    .iter()
                    .map(|(u, r)| UserRolePair::new(u.as_bytes(), *r))
                    .collect(),
            ),
            roles: default_roles(),
            ..RoomPolicyState::default()
        }
    }

    #[test]
    fn default_roles_are_consistent() {
        default_roles().validate().unwrap();
    }

    #[test]
    fn members_may_add_members_but_not_admins() {
        let s = state(&[
            ("alice", default_role::ADMIN),
            ("bob", default_role::MEMBER),
        ]);
        let add = |role| ParticipantListUpdate {
            added_participants: vec![UserRolePair::new(b"cathy".to_vec(), role)],
            ..Default::default()
        };
        let mut c = ParticipantChanges::default();
        authorize_participant_update(
            &s,
            "bob",
            SelfGrants::default(),
            &add(default_role::MEMBER),
            &mut c,
        )
        .unwrap();
        assert!(c.added("cathy"));
        assert!(
            authorize_participant_update(
                &s,
                "bob",
                SelfGrants::default(),
                &add(default_role::ADMIN),
                &mut Default::default()
            )
            .is_err()
        );
        authorize_participant_update(
            &s,
            "alice",
            SelfGrants::default(),
            &add(default_role::ADMIN),
            &mut Default::default(),
        )
        .unwrap();
    }

    #[test]
    fn members_may_leave_but_not_remove_others() {
        let s = state(&[
            ("alice", default_role::ADMIN),
            ("bob", default_role::MEMBER),
            ("cathy", default_role::MEMBER),
        ]);
        let remove = |i| ParticipantListUpdate {
            removed_indices: vec![i],
            ..Default::default()
        };
        authorize_participant_update(
            &s,
            "bob",
            SelfGrants::default(),
            &remove(1),
            &mut Default::default(),
        )
        .unwrap();
        assert!(
            authorize_participant_update(
                &s,
                "bob",
                SelfGrants::default(),
                &remove(2),
                &mut Default::default()
            )
            .is_err()
        );
        authorize_participant_update(
            &s,
            "alice",
            SelfGrants::default(),
            &remove(2),
            &mut Default::default(),
        )
        .unwrap();
    }

    #[test]
    fn banning_needs_can_ban_and_banned_users_may_not_be_active() {
        let s = state(&[
            ("alice", default_role::ADMIN),
            ("bob", default_role::MEMBER),
            ("eve", default_role::MEMBER),
        ]);
        let ban = ParticipantListUpdate {
            changed_role_participants: vec![mimi_protocol::components::UserindexRolePair {
                user_index: 2,
                role_index: BANNED_ROLE,
            }],
            ..Default::default()
        };
        assert!(
            authorize_participant_update(
                &s,
                "bob",
                SelfGrants::default(),
                &ban,
                &mut Default::default()
            )
            .is_err()
        );
        let mut c = ParticipantChanges::default();
        authorize_participant_update(&s, "alice", SelfGrants::default(), &ban, &mut c).unwrap();
        let after = RoomPolicyState {
            participants: s.participants.apply(&ban).unwrap(),
            ..s.clone()
        };
        assert!(c.removed_or_banned("eve", &after));
        assert!(!after.may_be_active("eve"));
        assert!(after.may_be_active("bob"));
    }

    #[test]
    fn role_constraints_bound_growth() {
        let mut roles = default_roles();
        roles.roles[1].maximum_participants_constraint = Some(2);
        let before = RoomPolicyState {
            roles: roles.clone(),
            ..state(&[("a", 2), ("b", 2)])
        };
        let after = RoomPolicyState {
            roles,
            ..state(&[("a", 2), ("b", 2), ("c", 2)])
        };
        assert!(check_role_constraints(&before, &after, &HashMap::new(), &HashMap::new()).is_err());
        assert!(check_role_constraints(&before, &before, &HashMap::new(), &HashMap::new()).is_ok());
    }

    fn preauth_for(role: u32) -> PreAuthData {
        use mimi_protocol::components::room_policy::PreAuthRoleEntry;
        PreAuthData {
            preauthorized_entries: vec![PreAuthRoleEntry {
                claimset: vec![preauth::basic_claim(preauth::claim::DOMAIN, "b.example")],
                target_role: default_roles().role(role).unwrap().clone(),
            }],
        }
    }

    fn self_add(user: &str, role: u32) -> ParticipantListUpdate {
        ParticipantListUpdate {
            added_participants: vec![UserRolePair::new(user.as_bytes(), role)],
            ..Default::default()
        }
    }

    #[test]
    fn a_preauthorized_user_may_add_itself_with_its_role_only() {
        let mut s = state(&[("alice", default_role::ADMIN)]);
        s.preauth = preauth_for(default_role::MEMBER);
        let mut member = s.roles.roles[1].clone();
        assert_eq!(member.role_index, default_role::MEMBER);
        member
            .role_capabilities
            .push(cap::CAN_JOIN_IF_PREAUTHORIZED);
        s.roles.roles[1] = member;
        let bob = "mimi://b.example/u/bob";
        let mut c = ParticipantChanges::default();
        authorize_participant_update(
            &s,
            bob,
            SelfGrants::preauthorized(Some(default_role::MEMBER)),
            &self_add(bob, default_role::MEMBER),
            &mut c,
        )
        .unwrap();
        assert!(c.added(bob));
        // Another role than the preauthorized one, or no preauthorization.
        for (preauth_role, role) in [
            (Some(default_role::MEMBER), default_role::ADMIN),
            (None, default_role::MEMBER),
            (Some(default_role::MEMBER), BANNED_ROLE),
        ] {
            assert_eq!(
                authorize_participant_update(
                    &s,
                    bob,
                    SelfGrants::preauthorized(preauth_role),
                    &self_add(bob, role),
                    &mut Default::default()
                ),
                Err(PolicyViolation::SelfJoin {
                    user: bob.into(),
                    role
                })
            );
        }
        // The preauthorized role must hold canJoinIfPreauthorized.
        let plain = RoomPolicyState {
            roles: default_roles(),
            ..s.clone()
        };
        assert!(
            authorize_participant_update(
                &plain,
                bob,
                SelfGrants::preauthorized(Some(default_role::MEMBER)),
                &self_add(bob, default_role::MEMBER),
                &mut Default::default()
            )
            .is_err()
        );
    }

    #[test]
    fn own_role_changes_follow_preauthorization() {
        let mut s = state(&[
            ("bob", default_role::MEMBER),
            ("alice", default_role::ADMIN),
        ]);
        s.roles.roles[1]
            .role_capabilities
            .push(cap::CAN_CHANGE_OWN_ROLE);
        let to = |role| ParticipantListUpdate {
            changed_role_participants: vec![mimi_protocol::components::UserindexRolePair {
                user_index: 0,
                role_index: role,
            }],
            ..Default::default()
        };
        authorize_participant_update(
            &s,
            "bob",
            SelfGrants::preauthorized(Some(default_role::MODERATOR)),
            &to(default_role::MODERATOR),
            &mut Default::default(),
        )
        .unwrap();
        assert_eq!(
            authorize_participant_update(
                &s,
                "bob",
                SelfGrants::preauthorized(Some(default_role::MODERATOR)),
                &to(default_role::ADMIN),
                &mut Default::default()
            ),
            Err(PolicyViolation::OwnRoleChange {
                user: "bob".into(),
                from: default_role::MEMBER,
                to: default_role::ADMIN
            })
        );
        // Without canChangeOwnRole, even the preauthorized role is refused.
        let plain = state(&[("bob", default_role::MEMBER)]);
        assert!(
            authorize_participant_update(
                &plain,
                "bob",
                SelfGrants::preauthorized(Some(default_role::MODERATOR)),
                &to(default_role::MODERATOR),
                &mut Default::default()
            )
            .is_err()
        );
    }

    #[test]
    fn a_role_may_not_fall_below_its_minimum_active_participants() {
        let mut roles = default_roles();
        roles.roles[3].minimum_active_participants_constraint = 1;
        let s = RoomPolicyState {
            roles,
            ..state(&[
                ("alice", default_role::ADMIN),
                ("bob", default_role::MEMBER),
            ])
        };
        let both: HashMap<String, usize> = [("alice".to_owned(), 1), ("bob".to_owned(), 1)].into();
        let bob_only: HashMap<String, usize> = [("bob".to_owned(), 1)].into();
        assert_eq!(
            check_role_constraints(&s, &s, &both, &bob_only),
            Err(PolicyViolation::MinActiveParticipants {
                role: default_role::ADMIN
            })
        );
        check_role_constraints(&s, &s, &bob_only, &bob_only).unwrap();
        check_role_constraints(&s, &s, &bob_only, &both).unwrap();
    }

    #[test]
    fn role_zero_with_can_open_join_opens_the_room_to_its_targets() {
        let mut s = state(&[("alice", default_role::ADMIN)]);
        assert_eq!(s.self_join_role(None), None);
        s.roles.roles.push(no_role(
            vec![cap::CAN_OPEN_JOIN],
            vec![default_role::MEMBER],
        ));
        s.roles.validate().unwrap();
        assert_eq!(s.self_join_role(None), Some(default_role::MEMBER));
        authorize_participant_update(
            &s,
            "bob",
            SelfGrants::default(),
            &self_add("bob", default_role::MEMBER),
            &mut Default::default(),
        )
        .unwrap();
        assert!(
            authorize_participant_update(
                &s,
                "bob",
                SelfGrants::default(),
                &self_add("bob", default_role::ADMIN),
                &mut Default::default()
            )
            .is_err()
        );
    }
}
