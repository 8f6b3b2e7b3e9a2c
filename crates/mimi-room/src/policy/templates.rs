//! Room templates from draft-ietf-mimi-room-policy §Role examples, and a
//! table of what each role of a `roles_list` may do, in words.
//!
//! The four templates follow the draft's examples role for role, with the
//! readings docs/divergences.md C26 lists where an example cannot be
//! written down as it stands. The table is derived from a [`RoleData`]
//! alone, by the rules the hub enforces ([`super::authorize_participant_update`],
//! the capability checks in `hub.rs`), so that what an operator reads is
//! what the hub decides.

use std::fmt;
use std::str::FromStr;

use mimi_protocol::components::room_policy::capabilities as cap;
use mimi_protocol::components::room_policy::{
    BaseRoomPolicy, CapabilityType, PreAuthData, PreAuthRoleEntry, Role, RoleData,
    SingleSourceRoleChangeTargets,
};

use super::preauth::{basic_claim, claim};
use super::{BANNED_ROLE, RoomPolicyState};

/// One of the role examples of room-policy §Role examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    /// §Cooperatively administered room.
    Cooperative,
    /// §Strictly administered room.
    Strict,
    /// §Moderated room.
    Moderated,
    /// §Multi-organization administered room.
    MultiOrganization,
}

/// A template name that is none of [`Template::all`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown room template {0:?} (one of cooperative, strict, moderated, multi-org)")]
pub struct UnknownTemplate(pub String);

impl Template {
    pub fn all() -> [Template; 4] {
        [
            Template::Cooperative,
            Template::Strict,
            Template::Moderated,
            Template::MultiOrganization,
        ]
    }

    pub fn name(self) -> &'static str {
        match self {
            Template::Cooperative => "cooperative",
            Template::Strict => "strict",
            Template::Moderated => "moderated",
            Template::MultiOrganization => "multi-org",
        }
    }

    /// What the template is for, in one line.
    pub fn description(self) -> &'static str {
        match self {
            Template::Cooperative => {
                "friends, family, small peer groups: members add and remove members \
                 and edit most metadata; group admins ban and change roles"
            }
            Template::Strict => {
                "administered room: only admins add, remove, ban and edit metadata; \
                 members talk"
            }
            Template::Moderated => {
                "moderated room: guests and attendees follow, speakers talk, \
                 moderators manage participants"
            }
            Template::MultiOrganization => {
                "room of organizations A (the hub's), B and C: each organization's \
                 admins manage its users; a super admin manages everyone"
            }
        }
    }

    /// The `roles_list` of the example.
    pub fn roles(self) -> RoleData {
        match self {
            Template::Cooperative => cooperative_roles(),
            Template::Strict => strict_roles(),
            Template::Moderated => moderated_roles(),
            Template::MultiOrganization => multi_org_roles(),
        }
    }

    /// The creator's role: the example's `super_admin`, the only role that
    /// may hand out every other one. (The multi-organization example names
    /// its creator, Alice, a super admin; the others leave it open.)
    pub fn creator_role(self) -> u32 {
        match self {
            Template::Cooperative => cooperative::SUPER_ADMIN,
            Template::Strict => strict::SUPER_ADMIN,
            Template::Moderated => moderated::SUPER_ADMIN,
            Template::MultiOrganization => multi_org::SUPER_ADMIN,
        }
    }

    /// The `base_room_policy`: none of the examples sets one, so rooms get
    /// the draft's defaults (multi-device, no limits, membership not fixed).
    pub fn base(self) -> Option<BaseRoomPolicy> {
        None
    }

    /// The `preauth_list` for a room whose hub is `host_domain`. Only the
    /// multi-organization example relies on one: its host organization's
    /// roles hold `canJoinIfPreauthorized` and the other organizations'
    /// do not, so users of the host domain may join by themselves as
    /// `org_a_user` (matched by the `domain` claim, C20, C26).
    pub fn preauth(self, host_domain: &str) -> Option<PreAuthData> {
        match self {
            Template::MultiOrganization => {
                let target_role = self.roles().role(multi_org::ORG_A_USER)?.clone();
                Some(PreAuthData {
                    preauthorized_entries: vec![PreAuthRoleEntry {
                        claimset: vec![basic_claim(
                            claim::DOMAIN,
                            &host_domain.to_ascii_lowercase(),
                        )],
                        target_role,
                    }],
                })
            }
            _ => None,
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Template {
    type Err = UnknownTemplate;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::all()
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownTemplate(s.to_owned()))
    }
}

/// Role indexes of [`Template::Cooperative`].
pub mod cooperative {
    pub const NO_ROLE: u32 = 0;
    pub const BANNED: u32 = 1;
    pub const ORDINARY_USER: u32 = 2;
    pub const GROUP_ADMIN: u32 = 3;
    pub const SUPER_ADMIN: u32 = 4;
    pub const POLICY_ENFORCER: u32 = 5;
}

/// Role indexes of [`Template::Strict`].
pub mod strict {
    pub const NO_ROLE: u32 = 0;
    pub const BANNED: u32 = 1;
    pub const ORDINARY_USER: u32 = 2;
    pub const GROUP_ADMIN: u32 = 3;
    pub const SUPER_ADMIN: u32 = 4;
    pub const POLICY_ENFORCER: u32 = 5;
}

/// Role indexes of [`Template::Moderated`].
pub mod moderated {
    pub const NO_ROLE: u32 = 0;
    pub const BANNED: u32 = 1;
    pub const GUEST: u32 = 2;
    pub const ATTENDEE: u32 = 3;
    pub const SPEAKER: u32 = 4;
    pub const MODERATOR: u32 = 5;
    pub const SUPER_ADMIN: u32 = 6;
    pub const POLICY_ENFORCER: u32 = 7;
}

/// Role indexes of [`Template::MultiOrganization`].
pub mod multi_org {
    pub const NO_ROLE: u32 = 0;
    pub const BANNED: u32 = 1;
    pub const ORG_A_USER: u32 = 2;
    pub const ORG_B_USER: u32 = 3;
    pub const ORG_C_USER: u32 = 4;
    pub const ORG_A_ADMIN: u32 = 5;
    pub const ORG_B_ADMIN: u32 = 6;
    pub const ORG_C_ADMIN: u32 = 7;
    pub const SUPER_ADMIN: u32 = 8;
    pub const POLICY_ENFORCER: u32 = 9;
}

// ---- building the examples ---------------------------------------------

/// A role's participant count constraints, as the examples list them.
#[derive(Clone, Copy)]
struct Constraints {
    min: u32,
    max: Option<u32>,
    min_active: u32,
    max_active: Option<u32>,
}

const UNCONSTRAINED: Constraints = Constraints {
    min: 0,
    max: None,
    min_active: 0,
    max_active: None,
};

/// `no_role` and `banned`: nobody with them has clients.
const NEVER_ACTIVE: Constraints = Constraints {
    max_active: Some(0),
    ..UNCONSTRAINED
};

/// Roles the room must keep one of (`group_admin`, `moderator`).
const AT_LEAST_ONE: Constraints = Constraints {
    min: 1,
    ..UNCONSTRAINED
};

/// `policy_enforcer` in every example: one or two, never active.
const ENFORCER: Constraints = Constraints {
    min: 1,
    max: Some(2),
    min_active: 0,
    max_active: Some(0),
};

fn role(
    role_index: u32,
    name: &str,
    capabilities: &[CapabilityType],
    constraints: Constraints,
    changes: Vec<SingleSourceRoleChangeTargets>,
) -> Role {
    Role {
        role_index,
        role_name: name.as_bytes().to_vec().into(),
        role_description: Vec::new().into(),
        role_capabilities: capabilities.to_vec(),
        minimum_participants_constraint: constraints.min,
        maximum_participants_constraint: constraints.max,
        minimum_active_participants_constraint: constraints.min_active,
        maximum_active_participants_constraint: constraints.max_active,
        authorized_role_changes: changes,
    }
}

/// `authorized_role_changes` as the examples write them: `[(from, [to…])]`.
fn changes(list: &[(u32, &[u32])]) -> Vec<SingleSourceRoleChangeTargets> {
    list.iter()
        .map(|(from, to)| SingleSourceRoleChangeTargets {
            from_role_index: *from,
            target_role_indexes: to.to_vec(),
        })
        .collect()
}

/// The examples' admin pattern: from each of `roles` to each other one,
/// e.g. `[(0,[1,2,3]), (1,[0,2,3]), (2,[0,1,3]), (3,[0,1,2])]`.
fn among(roles: &[u32]) -> Vec<SingleSourceRoleChangeTargets> {
    roles
        .iter()
        .map(|&from| SingleSourceRoleChangeTargets {
            from_role_index: from,
            target_role_indexes: roles.iter().copied().filter(|&to| to != from).collect(),
        })
        .collect()
}

/// `no_role`, role 0: users not in the participant list. In the strict
/// and moderated rooms it holds `canUseJoinCode`, and its changes from 0
/// are the roles a join link may give (C27); the room has join links once
/// it gets a `join_link_policy`.
fn no_role(
    capabilities: &[CapabilityType],
    constraints: Constraints,
    changes: Vec<SingleSourceRoleChangeTargets>,
) -> Role {
    role(0, "no_role", capabilities, constraints, changes)
}

fn banned() -> Role {
    role(BANNED_ROLE, "banned", &[], NEVER_ACTIVE, Vec::new())
}

/// `policy_enforcer`, the same in every example but for its changes.
/// Never active (maximum 0 active participants), it cannot act in our
/// rooms: a participant without clients sends nothing, and the hub
/// itself proposes only Removes as an external sender (C26).
fn policy_enforcer(role_index: u32, changes: Vec<SingleSourceRoleChangeTargets>) -> Role {
    role(
        role_index,
        "policy_enforcer",
        &[
            cap::CAN_REMOVE_PARTICIPANT,
            cap::CAN_CHANGE_USER_ROLE,
            cap::CAN_BAN,
            cap::CAN_UN_BAN,
            cap::CAN_CHANGE_ROLE_DEFINITIONS,
            cap::CAN_CHANGE_PREAUTHORIZED_USER_LIST,
            cap::CAN_CHANGE_MLS_OPERATIONAL_POLICIES,
            cap::CAN_DESTROY_ROOM,
            cap::CAN_SEND_MLS_REINIT_PROPOSAL,
        ],
        ENFORCER,
        changes,
    )
}

/// §Cooperatively administered room, ordinary_user.
const COOPERATIVE_USER: &[CapabilityType] = &[
    cap::CAN_ADD_PARTICIPANT,
    cap::CAN_REMOVE_PARTICIPANT,
    cap::CAN_ADD_OWN_CLIENT,
    cap::CAN_REMOVE_OWN_CLIENT,
    cap::CAN_REMOVE_SELF,
    cap::CAN_SEND_MESSAGE,
    cap::CAN_RECEIVE_MESSAGE,
    cap::CAN_COPY_MESSAGE,
    cap::CAN_REPORT_ABUSE,
    cap::CAN_REPLY_TO_MESSAGE,
    cap::CAN_REACT_TO_MESSAGE,
    cap::CAN_DELETE_OWN_REACTION,
    cap::CAN_EDIT_OWN_MESSAGE,
    cap::CAN_DELETE_OWN_MESSAGE,
    cap::CAN_START_TOPIC,
    cap::CAN_REPLY_IN_TOPIC,
    cap::CAN_EDIT_OWN_TOPIC,
    cap::CAN_UPLOAD_IMAGE,
    cap::CAN_UPLOAD_VIDEO,
    cap::CAN_UPLOAD_AUDIO,
    cap::CAN_UPLOAD_ATTACHMENT,
    cap::CAN_DOWNLOAD_IMAGE,
    cap::CAN_DOWNLOAD_VIDEO,
    cap::CAN_DOWNLOAD_AUDIO,
    cap::CAN_DOWNLOAD_ATTACHMENT,
    cap::CAN_SEND_LINK,
    cap::CAN_SEND_LINK_PREVIEW,
    cap::CAN_FOLLOW_LINK,
    cap::CAN_COPY_LINK,
    cap::CAN_CHANGE_ROOM_NAME,
    cap::CAN_CHANGE_ROOM_AVATAR,
    cap::CAN_CHANGE_ROOM_SUBJECT,
    cap::CAN_CHANGE_ROOM_MOOD,
    cap::CAN_CHANGE_OWN_NAME,
    cap::CAN_CHANGE_OWN_PRESENCE,
    cap::CAN_CHANGE_OWN_MOOD,
    cap::CAN_CHANGE_OWN_AVATAR,
];

/// What a cooperative group_admin adds. The example's `canRevokeVoice`
/// and `canGrantVoice` are in no registry and are left out (C26).
const COOPERATIVE_GROUP_ADMIN: &[CapabilityType] = &[
    cap::CAN_BAN,
    cap::CAN_UN_BAN,
    cap::CAN_KICK,
    cap::CAN_CHANGE_USER_ROLE,
    cap::CAN_DELETE_OTHER_MESSAGE,
    cap::CAN_EDIT_OTHER_TOPIC,
    cap::CAN_CHANGE_ROOM_DESCRIPTION,
];

/// What a cooperative super_admin adds. Not `canChangeRoleDefinitions`:
/// the example gives it to the policy_enforcer only.
const COOPERATIVE_SUPER_ADMIN: &[CapabilityType] = &[
    cap::CAN_CHANGE_ROOM_MEMBERSHIP_STYLE,
    cap::CAN_CHANGE_PREAUTHORIZED_USER_LIST,
    cap::CAN_DESTROY_ROOM,
];

fn cooperative_roles() -> RoleData {
    use cooperative::*;
    let group_admin = [COOPERATIVE_USER, COOPERATIVE_GROUP_ADMIN].concat();
    let super_admin = [&group_admin[..], COOPERATIVE_SUPER_ADMIN].concat();
    RoleData {
        roles: vec![
            no_role(&[], NEVER_ACTIVE, Vec::new()),
            banned(),
            role(
                ORDINARY_USER,
                "ordinary_user",
                COOPERATIVE_USER,
                UNCONSTRAINED,
                changes(&[(0, &[2]), (2, &[0])]),
            ),
            role(
                GROUP_ADMIN,
                "group_admin",
                &group_admin,
                AT_LEAST_ONE,
                among(&[0, 1, 2, 3]),
            ),
            role(
                SUPER_ADMIN,
                "super_admin",
                &super_admin,
                UNCONSTRAINED,
                among(&[0, 1, 2, 3, 4]),
            ),
            policy_enforcer(
                POLICY_ENFORCER,
                changes(&[
                    (0, &[1]),
                    (1, &[0]),
                    (2, &[0, 1]),
                    (3, &[0, 1]),
                    (4, &[0, 1]),
                ]),
            ),
        ],
    }
}

/// §Strictly administered room, ordinary_user.
const STRICT_USER: &[CapabilityType] = &[
    cap::CAN_ADD_OWN_CLIENT,
    cap::CAN_JOIN_IF_PREAUTHORIZED,
    cap::CAN_REMOVE_OWN_CLIENT,
    cap::CAN_REMOVE_SELF,
    cap::CAN_CHANGE_OWN_ROLE,
    cap::CAN_SEND_MESSAGE,
    cap::CAN_RECEIVE_MESSAGE,
    cap::CAN_COPY_MESSAGE,
    cap::CAN_REPORT_ABUSE,
    cap::CAN_REACT_TO_MESSAGE,
    cap::CAN_DELETE_OWN_REACTION,
    cap::CAN_EDIT_OWN_MESSAGE,
    cap::CAN_DELETE_OWN_MESSAGE,
    cap::CAN_START_TOPIC,
    cap::CAN_REPLY_IN_TOPIC,
    cap::CAN_UPLOAD_IMAGE,
    cap::CAN_UPLOAD_VIDEO,
    cap::CAN_UPLOAD_AUDIO,
    cap::CAN_UPLOAD_ATTACHMENT,
    cap::CAN_DOWNLOAD_IMAGE,
    cap::CAN_DOWNLOAD_VIDEO,
    cap::CAN_DOWNLOAD_AUDIO,
    cap::CAN_DOWNLOAD_ATTACHMENT,
    cap::CAN_SEND_LINK,
    cap::CAN_SEND_LINK_PREVIEW,
    cap::CAN_FOLLOW_LINK,
    cap::CAN_COPY_LINK,
    cap::CAN_CHANGE_OWN_NAME,
    cap::CAN_CHANGE_OWN_PRESENCE,
    cap::CAN_CHANGE_OWN_MOOD,
    cap::CAN_CHANGE_OWN_AVATAR,
];

/// What a strict group_admin adds (the reserved join code capabilities
/// are kept as listed; they have no effect).
const STRICT_GROUP_ADMIN: &[CapabilityType] = &[
    cap::CAN_ADD_PARTICIPANT,
    cap::CAN_REMOVE_PARTICIPANT,
    cap::CAN_BAN,
    cap::CAN_UN_BAN,
    cap::CAN_KICK,
    cap::CAN_CHANGE_USER_ROLE,
    cap::CAN_CREATE_JOIN_CODE,
    cap::CAN_DELETE_JOIN_CODE,
    cap::CAN_DELETE_OTHER_REACTION,
    cap::CAN_DELETE_OTHER_MESSAGE,
    cap::CAN_EDIT_OWN_TOPIC,
    cap::CAN_EDIT_OTHER_TOPIC,
    cap::CAN_CHANGE_ROOM_DESCRIPTION,
    cap::CAN_CHANGE_ROOM_NAME,
    cap::CAN_CHANGE_ROOM_AVATAR,
    cap::CAN_CHANGE_ROOM_SUBJECT,
    cap::CAN_CHANGE_ROOM_MOOD,
];

/// What a super_admin adds in the strict and moderated rooms.
const SUPER_ADMIN_POLICY: &[CapabilityType] = &[
    cap::CAN_CHANGE_ROOM_MEMBERSHIP_STYLE,
    cap::CAN_CHANGE_ROLE_DEFINITIONS,
    cap::CAN_CHANGE_PREAUTHORIZED_USER_LIST,
    cap::CAN_DESTROY_ROOM,
    cap::CAN_SEND_MLS_REINIT_PROPOSAL,
];

fn strict_roles() -> RoleData {
    use strict::*;
    let group_admin = [STRICT_USER, STRICT_GROUP_ADMIN].concat();
    let super_admin = [&group_admin[..], SUPER_ADMIN_POLICY].concat();
    RoleData {
        roles: vec![
            no_role(
                &[cap::CAN_USE_JOIN_CODE],
                NEVER_ACTIVE,
                changes(&[(0, &[2])]),
            ),
            banned(),
            role(
                ORDINARY_USER,
                "ordinary_user",
                STRICT_USER,
                UNCONSTRAINED,
                changes(&[(0, &[2]), (2, &[0])]),
            ),
            role(
                GROUP_ADMIN,
                "group_admin",
                &group_admin,
                AT_LEAST_ONE,
                among(&[0, 1, 2, 3]),
            ),
            role(
                SUPER_ADMIN,
                "super_admin",
                &super_admin,
                UNCONSTRAINED,
                among(&[0, 1, 2, 3, 4]),
            ),
            policy_enforcer(
                POLICY_ENFORCER,
                changes(&[
                    (0, &[1]),
                    (1, &[0]),
                    (2, &[0, 1]),
                    (3, &[0, 1]),
                    (4, &[0, 1]),
                ]),
            ),
        ],
    }
}

/// §Moderated room, guest.
const GUEST_CAPS: &[CapabilityType] = &[
    cap::CAN_REMOVE_SELF,
    cap::CAN_RECEIVE_MESSAGE,
    cap::CAN_COPY_MESSAGE,
    cap::CAN_REACT_TO_MESSAGE,
    cap::CAN_DELETE_OWN_REACTION,
    cap::CAN_FOLLOW_LINK,
    cap::CAN_COPY_LINK,
    cap::CAN_DOWNLOAD_IMAGE,
    cap::CAN_DOWNLOAD_VIDEO,
    cap::CAN_DOWNLOAD_AUDIO,
];

/// What an attendee adds to a guest.
const ATTENDEE_CAPS: &[CapabilityType] = &[
    cap::CAN_ADD_OWN_CLIENT,
    cap::CAN_JOIN_IF_PREAUTHORIZED,
    cap::CAN_REMOVE_OWN_CLIENT,
    cap::CAN_CHANGE_OWN_ROLE,
    cap::CAN_REPORT_ABUSE,
    cap::CAN_REPLY_IN_TOPIC,
    cap::CAN_DOWNLOAD_ATTACHMENT,
    cap::CAN_CHANGE_OWN_NAME,
    cap::CAN_CHANGE_OWN_PRESENCE,
    cap::CAN_CHANGE_OWN_AVATAR,
];

/// What a speaker adds. The example says "include all the capabilities
/// authorized for a speaker", itself; read as those of an attendee, the
/// role below it (C26).
const SPEAKER_CAPS: &[CapabilityType] = &[
    cap::CAN_SEND_MESSAGE,
    cap::CAN_EDIT_OWN_MESSAGE,
    cap::CAN_DELETE_OWN_MESSAGE,
    cap::CAN_START_TOPIC,
    cap::CAN_UPLOAD_IMAGE,
    cap::CAN_UPLOAD_VIDEO,
    cap::CAN_UPLOAD_AUDIO,
    cap::CAN_UPLOAD_ATTACHMENT,
    cap::CAN_SEND_LINK,
    cap::CAN_SEND_LINK_PREVIEW,
];

/// What a moderator adds. The example includes "all the capabilities
/// authorized for an ordinary_user", a role the moderated room does not
/// have; read as those of a speaker, the role below it (C26).
const MODERATOR_CAPS: &[CapabilityType] = &[
    cap::CAN_ADD_PARTICIPANT,
    cap::CAN_REMOVE_PARTICIPANT,
    cap::CAN_BAN,
    cap::CAN_UN_BAN,
    cap::CAN_KICK,
    cap::CAN_CHANGE_USER_ROLE,
    cap::CAN_CREATE_JOIN_CODE,
    cap::CAN_DELETE_JOIN_CODE,
    cap::CAN_DELETE_OTHER_REACTION,
    cap::CAN_DELETE_OTHER_MESSAGE,
    cap::CAN_EDIT_OWN_TOPIC,
    cap::CAN_EDIT_OTHER_TOPIC,
    cap::CAN_CHANGE_ROOM_NAME,
    cap::CAN_CHANGE_ROOM_AVATAR,
    cap::CAN_CHANGE_ROOM_SUBJECT,
    cap::CAN_CHANGE_ROOM_MOOD,
];

fn moderated_roles() -> RoleData {
    let attendee = [GUEST_CAPS, ATTENDEE_CAPS].concat();
    let speaker = [&attendee[..], SPEAKER_CAPS].concat();
    let moderator = [&speaker[..], MODERATOR_CAPS].concat();
    let super_admin = [
        &moderator[..],
        &[cap::CAN_CHANGE_ROOM_DESCRIPTION],
        SUPER_ADMIN_POLICY,
    ]
    .concat();
    RoleData {
        roles: vec![
            no_role(
                &[cap::CAN_USE_JOIN_CODE],
                UNCONSTRAINED,
                changes(&[(0, &[2, 3])]),
            ),
            banned(),
            role(
                moderated::GUEST,
                "guest",
                GUEST_CAPS,
                UNCONSTRAINED,
                changes(&[(0, &[2]), (2, &[0])]),
            ),
            role(
                moderated::ATTENDEE,
                "attendee",
                &attendee,
                UNCONSTRAINED,
                changes(&[(0, &[3]), (3, &[0])]),
            ),
            role(
                moderated::SPEAKER,
                "speaker",
                &speaker,
                UNCONSTRAINED,
                changes(&[(0, &[4]), (4, &[0])]),
            ),
            role(
                moderated::MODERATOR,
                "moderator",
                &moderator,
                AT_LEAST_ONE,
                among(&[0, 1, 2, 3, 4, 5]),
            ),
            role(
                moderated::SUPER_ADMIN,
                "super_admin",
                &super_admin,
                UNCONSTRAINED,
                among(&[0, 1, 2, 3, 4, 5, 6]),
            ),
            policy_enforcer(
                moderated::POLICY_ENFORCER,
                changes(&[
                    (0, &[1]),
                    (1, &[0]),
                    (2, &[0, 1]),
                    (3, &[0, 1]),
                    (4, &[0, 1]),
                    (5, &[0, 1]),
                    (6, &[0, 1]),
                ]),
            ),
        ],
    }
}

/// §Multi-organization administered room, org_b_user (and org_c_user).
const ORG_USER: &[CapabilityType] = &[
    cap::CAN_REMOVE_SELF,
    cap::CAN_ADD_OWN_CLIENT,
    cap::CAN_REMOVE_OWN_CLIENT,
    cap::CAN_SEND_MESSAGE,
    cap::CAN_RECEIVE_MESSAGE,
    cap::CAN_COPY_MESSAGE,
    cap::CAN_REPORT_ABUSE,
    cap::CAN_REPLY_IN_TOPIC,
    cap::CAN_REACT_TO_MESSAGE,
    cap::CAN_DELETE_OWN_REACTION,
    cap::CAN_EDIT_OWN_MESSAGE,
    cap::CAN_SEND_LINK,
    cap::CAN_SEND_LINK_PREVIEW,
    cap::CAN_FOLLOW_LINK,
    cap::CAN_COPY_LINK,
    cap::CAN_DOWNLOAD_IMAGE,
    cap::CAN_DOWNLOAD_VIDEO,
    cap::CAN_DOWNLOAD_AUDIO,
    cap::CAN_DOWNLOAD_ATTACHMENT,
    cap::CAN_CHANGE_OWN_NAME,
    cap::CAN_CHANGE_OWN_PRESENCE,
    cap::CAN_CHANGE_OWN_AVATAR,
];

/// What an organization admin adds to its organization's users. No
/// `canUnban`: "can ban (but not unban) their own org users".
const ORG_ADMIN: &[CapabilityType] = &[
    cap::CAN_DELETE_OWN_MESSAGE,
    cap::CAN_START_TOPIC,
    cap::CAN_UPLOAD_IMAGE,
    cap::CAN_UPLOAD_VIDEO,
    cap::CAN_UPLOAD_AUDIO,
    cap::CAN_UPLOAD_ATTACHMENT,
    cap::CAN_ADD_PARTICIPANT,
    cap::CAN_REMOVE_PARTICIPANT,
    cap::CAN_BAN,
    cap::CAN_KICK,
    cap::CAN_CHANGE_USER_ROLE,
];

/// What the host organization's roles add to the others'.
const HOST_ORG: &[CapabilityType] = &[cap::CAN_CHANGE_OWN_ROLE, cap::CAN_JOIN_IF_PREAUTHORIZED];

/// What the super_admin adds to an org_a_admin.
const MULTI_ORG_SUPER_ADMIN: &[CapabilityType] = &[
    cap::CAN_UN_BAN,
    cap::CAN_DELETE_OTHER_REACTION,
    cap::CAN_DELETE_OTHER_MESSAGE,
    cap::CAN_EDIT_OWN_TOPIC,
    cap::CAN_EDIT_OTHER_TOPIC,
    cap::CAN_CHANGE_ROOM_DESCRIPTION,
    cap::CAN_CHANGE_ROOM_NAME,
    cap::CAN_CHANGE_ROOM_AVATAR,
    cap::CAN_CHANGE_ROOM_SUBJECT,
    cap::CAN_CHANGE_ROOM_MOOD,
    cap::CAN_CHANGE_ROOM_MEMBERSHIP_STYLE,
    cap::CAN_CHANGE_ROLE_DEFINITIONS,
    cap::CAN_CHANGE_PREAUTHORIZED_USER_LIST,
    cap::CAN_DESTROY_ROOM,
    cap::CAN_SEND_MLS_REINIT_PROPOSAL,
];

/// Which users belong to which organization is up to whoever gives them
/// their roles: the hub reads claims only for preauthorization, so
/// nothing ties `org_b_*` to the B provider's users (C26).
fn multi_org_roles() -> RoleData {
    use multi_org::*;
    let org_a_user = [ORG_USER, HOST_ORG].concat();
    let org_admin = [ORG_USER, ORG_ADMIN].concat();
    let org_a_admin = [&org_admin[..], HOST_ORG].concat();
    let super_admin = [&org_a_admin[..], MULTI_ORG_SUPER_ADMIN].concat();
    // "limited to 3 admins per org", and each keeps one active admin.
    let org_admins = Constraints {
        min: 1,
        max: Some(3),
        min_active: 1,
        max_active: None,
    };
    RoleData {
        roles: vec![
            no_role(&[], NEVER_ACTIVE, Vec::new()),
            banned(),
            role(
                ORG_A_USER,
                "org_a_user",
                &org_a_user,
                UNCONSTRAINED,
                changes(&[(0, &[2]), (2, &[0])]),
            ),
            role(
                ORG_B_USER,
                "org_b_user",
                ORG_USER,
                UNCONSTRAINED,
                changes(&[(0, &[3]), (3, &[0])]),
            ),
            role(
                ORG_C_USER,
                "org_c_user",
                ORG_USER,
                UNCONSTRAINED,
                changes(&[(0, &[4]), (4, &[0])]),
            ),
            role(
                ORG_A_ADMIN,
                "org_a_admin",
                &org_a_admin,
                UNCONSTRAINED,
                changes(&[(0, &[2, 5]), (2, &[0, 1, 5]), (5, &[0, 1, 2])]),
            ),
            role(
                ORG_B_ADMIN,
                "org_b_admin",
                &org_admin,
                org_admins,
                changes(&[(0, &[3, 6]), (3, &[0, 1, 6]), (6, &[0, 1, 3])]),
            ),
            role(
                ORG_C_ADMIN,
                "org_c_admin",
                &org_admin,
                org_admins,
                changes(&[(0, &[4, 7]), (4, &[0, 1, 7]), (7, &[0, 1, 4])]),
            ),
            role(
                SUPER_ADMIN,
                "super_admin",
                &super_admin,
                Constraints {
                    min: 1,
                    max: None,
                    min_active: 1,
                    max_active: None,
                },
                changes(&[
                    (0, &[1, 2, 3, 4, 5, 6, 7, 8]),
                    (1, &[0, 2, 3, 4, 5, 6, 7, 8]),
                    (2, &[0, 1, 5, 8]),
                    (3, &[0, 1, 6]),
                    (4, &[0, 1, 7]),
                    (5, &[0, 1, 2, 8]),
                    (6, &[0, 1, 3]),
                    (7, &[0, 1, 4]),
                    (8, &[0, 1, 2, 5]),
                ]),
            ),
            // As written: no entry from org_a_user (2), unlike the other
            // examples' enforcers.
            policy_enforcer(
                POLICY_ENFORCER,
                changes(&[
                    (0, &[1]),
                    (1, &[0]),
                    (3, &[0, 1]),
                    (4, &[0, 1]),
                    (5, &[0, 1]),
                    (6, &[0, 1]),
                    (7, &[0, 1]),
                    (8, &[0, 1]),
                ]),
            ),
        ],
    }
}

// ---- the capability table ----------------------------------------------

/// What a row of the capability table is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Add another user to the participant list (canAddParticipant).
    Add,
    /// Remove another user from the list with all their clients
    /// (canRemoveParticipant).
    Remove,
    /// Leave the list (canRemoveSelf).
    Leave,
    /// Move another user to the banned role (canBan, or canChangeUserRole).
    Ban,
    /// Move a banned user to another role (canUnban, or canChangeUserRole).
    Unban,
    /// Remove another user's clients, leaving the list as it is (canKick).
    Kick,
    /// Change another user's role, bans aside (canChangeUserRole).
    ChangeRole,
    /// Change one's own role (canChangeOwnRole).
    ChangeOwnRole,
    /// Change fields of the room metadata (room-policy §Adjust metadata).
    Metadata,
    /// Change policy components, or ReInit (§Disruptive Policy Changes).
    Policy,
    /// Send messages (canSendMessage).
    Send,
    /// Add one's own clients (canAddOwnClient).
    AddOwnClient,
    /// Join by itself as this role: open join or preauthorization.
    JoinByItself,
    /// The role's participant count constraints.
    Limits,
}

impl Action {
    /// The table's rows, in order.
    pub const ALL: [Action; 14] = [
        Action::Add,
        Action::Remove,
        Action::Leave,
        Action::Ban,
        Action::Unban,
        Action::Kick,
        Action::ChangeRole,
        Action::ChangeOwnRole,
        Action::Metadata,
        Action::Policy,
        Action::Send,
        Action::AddOwnClient,
        Action::JoinByItself,
        Action::Limits,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Action::Add => "add participants",
            Action::Remove => "remove participants",
            Action::Leave => "leave",
            Action::Ban => "ban",
            Action::Unban => "unban",
            Action::Kick => "kick (remove clients)",
            Action::ChangeRole => "change others' roles",
            Action::ChangeOwnRole => "change own role",
            Action::Metadata => "change room metadata",
            Action::Policy => "change room policy",
            Action::Send => "send messages",
            Action::AddOwnClient => "add own clients",
            Action::JoinByItself => "join by itself",
            Action::Limits => "limits",
        }
    }
}

/// What a role may do about one [`Action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    No,
    Yes,
    /// Join by itself, or change its own role, only to the role its
    /// credential's claims are preauthorized for.
    IfPreauthorized,
    /// `Add`: the roles it may give added users. `Remove`, `Ban`: the
    /// roles of the users it may remove or ban.
    Roles(Vec<u32>),
    /// `ChangeRole`, `Unban`: (from, to) role changes.
    Changes(Vec<(u32, u32)>),
    /// `Metadata`, `Policy`: the capabilities it holds.
    Capabilities(Vec<CapabilityType>),
    /// `Limits`: the role's constraints, and whether it may have clients
    /// at all.
    Limits {
        min: u32,
        max: Option<u32>,
        min_active: u32,
        max_active: Option<u32>,
        active: bool,
    },
}

impl Allowed {
    /// Whether anything at all is allowed.
    pub fn any(&self) -> bool {
        !matches!(self, Allowed::No)
    }

    /// `Roles` holding `role`.
    pub fn role(&self, role: u32) -> bool {
        matches!(self, Allowed::Roles(roles) if roles.contains(&role))
    }

    /// `Changes` holding `from` → `to`.
    pub fn change(&self, from: u32, to: u32) -> bool {
        matches!(self, Allowed::Changes(c) if c.contains(&(from, to)))
    }

    /// `Capabilities` holding `capability`.
    pub fn capability(&self, capability: CapabilityType) -> bool {
        matches!(self, Allowed::Capabilities(c) if c.contains(&capability))
    }
}

/// One row of the capability table: what role `role_index` may do about
/// `action`, structured (`allowed`) and in words (`answer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    pub role_index: u32,
    pub role_name: String,
    pub action: Action,
    pub allowed: Allowed,
    pub answer: String,
}

/// The row of `role` about `action`.
pub fn cell(rows: &[TableRow], role: u32, action: Action) -> Option<&TableRow> {
    rows.iter()
        .find(|r| r.role_index == role && r.action == action)
}

/// The metadata capabilities, with the field each covers.
const METADATA: [(CapabilityType, &str); 5] = [
    (cap::CAN_CHANGE_ROOM_NAME, "name"),
    (cap::CAN_CHANGE_ROOM_DESCRIPTION, "description"),
    (cap::CAN_CHANGE_ROOM_AVATAR, "avatar"),
    (cap::CAN_CHANGE_ROOM_SUBJECT, "subject"),
    (cap::CAN_CHANGE_ROOM_MOOD, "mood"),
];

/// The capabilities the hub checks for policy components (C22) and ReInit.
const POLICY: [(CapabilityType, &str); 6] = [
    (cap::CAN_CHANGE_ROLE_DEFINITIONS, "role definitions"),
    (
        cap::CAN_CHANGE_PREAUTHORIZED_USER_LIST,
        "preauthorized users",
    ),
    (cap::CAN_CHANGE_ROOM_MEMBERSHIP_STYLE, "base room policy"),
    (
        cap::CAN_CHANGE_MLS_OPERATIONAL_POLICIES,
        "MLS operational policy",
    ),
    (
        cap::CAN_CHANGE_OTHER_POLICY_ATTRIBUTE,
        "other policy components",
    ),
    (cap::CAN_SEND_MLS_REINIT_PROPOSAL, "ReInit"),
];

/// What each role of `roles` (but role 0, users not in the list) may do,
/// by the rules the hub enforces: the role's capabilities and its
/// `authorized_role_changes`, a banned role only when role 1 is named
/// "banned", and nothing at all for a role that may not have clients
/// (banned, or at most 0 active participants), since the hub takes
/// nothing but leaving from such users.
pub fn capability_table(roles: &RoleData) -> Vec<TableRow> {
    let state = RoomPolicyState {
        roles: roles.clone(),
        ..RoomPolicyState::default()
    };
    let has_banned_role = state.is_banned_role(BANNED_ROLE);
    let listed: Vec<u32> = roles
        .roles
        .iter()
        .map(|r| r.role_index)
        .filter(|&i| i != 0)
        .collect();
    let name = |index: u32| role_name(roles, index);
    let mut rows = Vec::new();
    for role in roles.roles.iter().filter(|r| r.role_index != 0) {
        let index = role.role_index;
        let active = state.role_may_be_active(index);
        let has = |c: CapabilityType| active && role.has_capability(c);
        let not_banned = |i: &u32| !(has_banned_role && *i == BANNED_ROLE);
        let roles_if = |allowed: bool, pick: &dyn Fn(u32) -> bool| {
            let picked: Vec<u32> = listed.iter().copied().filter(|&i| pick(i)).collect();
            if allowed && !picked.is_empty() {
                Allowed::Roles(picked)
            } else {
                Allowed::No
            }
        };
        let changes_if = |allowed: bool, pick: &dyn Fn(u32, u32) -> bool| {
            let picked: Vec<(u32, u32)> = listed
                .iter()
                .flat_map(|&from| listed.iter().map(move |&to| (from, to)))
                .filter(|&(from, to)| from != to && pick(from, to))
                .collect();
            if allowed && !picked.is_empty() {
                Allowed::Changes(picked)
            } else {
                Allowed::No
            }
        };
        let yes_if = |allowed: bool| if allowed { Allowed::Yes } else { Allowed::No };
        let held = |list: &[(CapabilityType, &str)]| {
            let held: Vec<CapabilityType> =
                list.iter().map(|(c, _)| *c).filter(|c| has(*c)).collect();
            if held.is_empty() {
                Allowed::No
            } else {
                Allowed::Capabilities(held)
            }
        };
        for action in Action::ALL {
            let allowed = match action {
                Action::Add => {
                    roles_if(has(cap::CAN_ADD_PARTICIPANT), &|to| role.may_change(0, to))
                }
                Action::Remove => roles_if(has(cap::CAN_REMOVE_PARTICIPANT), &|from| {
                    role.may_change(from, 0)
                }),
                Action::Leave => yes_if(has(cap::CAN_REMOVE_SELF) && role.may_change(index, 0)),
                Action::Ban => roles_if(
                    has_banned_role && (has(cap::CAN_BAN) || has(cap::CAN_CHANGE_USER_ROLE)),
                    &|from| from != BANNED_ROLE && role.may_change(from, BANNED_ROLE),
                ),
                Action::Unban => changes_if(
                    has_banned_role && (has(cap::CAN_UN_BAN) || has(cap::CAN_CHANGE_USER_ROLE)),
                    &|from, to| from == BANNED_ROLE && role.may_change(from, to),
                ),
                Action::Kick => yes_if(has(cap::CAN_KICK)),
                Action::ChangeRole => changes_if(has(cap::CAN_CHANGE_USER_ROLE), &|from, to| {
                    not_banned(&from) && not_banned(&to) && role.may_change(from, to)
                }),
                Action::ChangeOwnRole => {
                    if has(cap::CAN_CHANGE_OWN_ROLE) {
                        Allowed::IfPreauthorized
                    } else {
                        Allowed::No
                    }
                }
                Action::Metadata => held(&METADATA),
                Action::Policy => held(&POLICY),
                Action::Send => yes_if(has(cap::CAN_SEND_MESSAGE)),
                Action::AddOwnClient => yes_if(has(cap::CAN_ADD_OWN_CLIENT)),
                Action::JoinByItself => {
                    if !active {
                        Allowed::No
                    } else if state.may_join_as(None, index) {
                        Allowed::Yes
                    } else if state.may_join_as(Some(index), index) {
                        Allowed::IfPreauthorized
                    } else {
                        Allowed::No
                    }
                }
                Action::Limits => Allowed::Limits {
                    min: role.minimum_participants_constraint,
                    max: role.maximum_participants_constraint,
                    min_active: role.minimum_active_participants_constraint,
                    max_active: role.maximum_active_participants_constraint,
                    active,
                },
            };
            let answer = describe(action, &allowed, &name);
            rows.push(TableRow {
                role_index: index,
                role_name: name(index),
                action,
                allowed,
                answer,
            });
        }
    }
    rows
}

/// A role's name for people: its `role_name`, or "role N".
fn role_name(roles: &RoleData, index: u32) -> String {
    match roles.role(index).map(|r| r.role_name.as_slice()) {
        Some(name) if !name.is_empty() => String::from_utf8_lossy(name).into_owned(),
        _ => format!("role {index}"),
    }
}

/// "1 participant", "3 participants".
fn participants(n: u32) -> String {
    if n == 1 {
        "1 participant".into()
    } else {
        format!("{n} participants")
    }
}

fn describe(action: Action, allowed: &Allowed, name: &dyn Fn(u32) -> String) -> String {
    let names = |roles: &[u32]| {
        roles
            .iter()
            .map(|&r| name(r))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match allowed {
        Allowed::No => "no".into(),
        Allowed::Yes if action == Action::JoinByItself => "yes (open join)".into(),
        Allowed::Yes => "yes".into(),
        Allowed::IfPreauthorized if action == Action::ChangeOwnRole => {
            "to the role it is preauthorized for".into()
        }
        Allowed::IfPreauthorized => "if preauthorized".into(),
        Allowed::Roles(roles) if action == Action::Add => format!("as {}", names(roles)),
        Allowed::Roles(roles) => format!("users who are {}", names(roles)),
        Allowed::Changes(changes) => {
            // Grouped by the role changed from: "a → b, c; d → e".
            let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
            for &(from, to) in changes {
                match groups.last_mut() {
                    Some((f, tos)) if *f == from => tos.push(to),
                    _ => groups.push((from, vec![to])),
                }
            }
            groups
                .iter()
                .map(|(from, tos)| format!("{} → {}", name(*from), names(tos)))
                .collect::<Vec<_>>()
                .join("; ")
        }
        Allowed::Capabilities(held) => {
            let table: &[(CapabilityType, &str)] = if action == Action::Metadata {
                &METADATA
            } else {
                &POLICY
            };
            table
                .iter()
                .filter(|(c, _)| held.contains(c))
                .map(|(_, what)| *what)
                .collect::<Vec<_>>()
                .join(", ")
        }
        Allowed::Limits {
            min,
            max,
            min_active,
            max_active,
            active,
        } => {
            let mut parts = Vec::new();
            match (min, max) {
                (0, None) => {}
                (min, None) => parts.push(format!("at least {}", participants(*min))),
                (0, Some(max)) => parts.push(format!("at most {}", participants(*max))),
                (min, Some(max)) => parts.push(format!("{min} to {max} participants")),
            }
            if !active {
                parts.push("never active (no clients)".into());
            } else {
                match (min_active, max_active) {
                    (0, None) => {}
                    (min, None) => parts.push(format!("at least {min} active")),
                    (0, Some(max)) => parts.push(format!("at most {max} active")),
                    (min, Some(max)) => parts.push(format!("{min} to {max} active")),
                }
            }
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join("; ")
            }
        }
    }
}

/// The table as aligned plain text: role, action, answer.
pub fn render_table(rows: &[TableRow]) -> String {
    let roles: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.role_index, r.role_name))
        .collect();
    let header = ("ROLE", "ACTION", "MAY");
    let role_width = roles
        .iter()
        .map(|r| r.chars().count())
        .chain([header.0.len()])
        .max()
        .unwrap_or(0);
    let action_width = rows
        .iter()
        .map(|r| r.action.label().chars().count())
        .chain([header.1.len()])
        .max()
        .unwrap_or(0);
    let line = |role: &str, action: &str, answer: &str| {
        let row = format!("{role:<role_width$}  {action:<action_width$}  {answer}");
        format!("{}\n", row.trim_end())
    };
    let mut out = line(header.0, header.1, header.2);
    for (row, role) in rows.iter().zip(&roles) {
        out.push_str(&line(role, row.action.label(), &row.answer));
    }
    out
}

#[cfg(test)]
mod tests {
    use mimi_protocol::components::{
        ParticipantListData, ParticipantListUpdate, UserRolePair, UserindexRolePair,
    };

    use super::*;
    use crate::policy::preauth::Claims;
    use crate::policy::{ParticipantChanges, SelfGrants, authorize_participant_update};

    fn answer(rows: &[TableRow], role: u32, action: Action) -> &Allowed {
        &cell(rows, role, action)
            .unwrap_or_else(|| panic!("no row for role {role}, {action:?}"))
            .allowed
    }

    #[test]
    fn names_parse_back_and_every_template_validates() {
        for t in Template::all() {
            assert_eq!(t.name().parse::<Template>(), Ok(t));
            assert_eq!(t.to_string(), t.name());
            let roles = t.roles();
            roles.validate().unwrap_or_else(|e| panic!("{t}: {e}"));
            assert!(!t.description().is_empty());
            // The ban role as room-policy §Role Changes defines it.
            let state = RoomPolicyState {
                roles: roles.clone(),
                ..RoomPolicyState::default()
            };
            assert!(state.is_banned_role(BANNED_ROLE), "{t}");
            assert!(state.role_may_be_active(t.creator_role()), "{t}");
            assert_eq!(role_name(&roles, t.creator_role()), "super_admin", "{t}");
            assert_eq!(t.base(), None);
        }
        assert!("open".parse::<Template>().is_err());
    }

    #[test]
    fn only_the_multi_organization_room_preauthorizes_its_host_domain() {
        use multi_org::*;
        for t in [Template::Cooperative, Template::Strict, Template::Moderated] {
            assert_eq!(t.preauth("a.example"), None);
        }
        let preauth = Template::MultiOrganization.preauth("a.example").unwrap();
        let claims = |device: &str| {
            let device = mimi_protocol::MimiUri::parse(device).unwrap();
            let user = crate::identity::user_of_device(&device).unwrap();
            Claims::of(&crate::identity::ClientIdentity { device, user })
        };
        let state = RoomPolicyState {
            roles: Template::MultiOrganization.roles(),
            preauth: preauth.clone(),
            ..RoomPolicyState::default()
        };
        let dora = claims("mimi://a.example/d/dora/phone").first_role(&preauth);
        assert_eq!(dora, Some(ORG_A_USER));
        assert_eq!(state.self_join_role(dora), Some(ORG_A_USER));
        let bob = claims("mimi://b.example/d/bob/phone").first_role(&preauth);
        assert_eq!(state.self_join_role(bob), None);
    }

    #[test]
    fn cooperative_members_add_and_remove_members_and_admins_moderate() {
        use cooperative::*;
        let rows = capability_table(&Template::Cooperative.roles());
        assert_eq!(
            answer(&rows, ORDINARY_USER, Action::Add),
            &Allowed::Roles(vec![ORDINARY_USER])
        );
        assert_eq!(
            answer(&rows, ORDINARY_USER, Action::Remove),
            &Allowed::Roles(vec![ORDINARY_USER])
        );
        assert_eq!(answer(&rows, ORDINARY_USER, Action::Leave), &Allowed::Yes);
        assert_eq!(answer(&rows, ORDINARY_USER, Action::Ban), &Allowed::No);
        assert_eq!(answer(&rows, ORDINARY_USER, Action::Kick), &Allowed::No);
        let member_metadata = answer(&rows, ORDINARY_USER, Action::Metadata);
        assert!(member_metadata.capability(cap::CAN_CHANGE_ROOM_NAME));
        assert!(!member_metadata.capability(cap::CAN_CHANGE_ROOM_DESCRIPTION));
        assert!(
            answer(&rows, GROUP_ADMIN, Action::Metadata)
                .capability(cap::CAN_CHANGE_ROOM_DESCRIPTION)
        );
        assert_eq!(
            answer(&rows, GROUP_ADMIN, Action::Ban),
            &Allowed::Roles(vec![ORDINARY_USER, GROUP_ADMIN])
        );
        assert!(answer(&rows, GROUP_ADMIN, Action::ChangeRole).change(ORDINARY_USER, GROUP_ADMIN));
        assert!(!answer(&rows, GROUP_ADMIN, Action::ChangeRole).change(SUPER_ADMIN, ORDINARY_USER));
        assert_eq!(answer(&rows, GROUP_ADMIN, Action::Policy), &Allowed::No);
        // Nobody who can act changes role definitions: the example gives
        // canChangeRoleDefinitions to the policy enforcer only.
        let super_policy = answer(&rows, SUPER_ADMIN, Action::Policy);
        assert!(super_policy.capability(cap::CAN_CHANGE_PREAUTHORIZED_USER_LIST));
        assert!(!super_policy.capability(cap::CAN_CHANGE_ROLE_DEFINITIONS));
        for action in Action::ALL.into_iter().filter(|a| *a != Action::Limits) {
            assert_eq!(answer(&rows, POLICY_ENFORCER, action), &Allowed::No);
            assert_eq!(answer(&rows, BANNED, action), &Allowed::No);
        }
        let limits = cell(&rows, POLICY_ENFORCER, Action::Limits).unwrap();
        assert_eq!(
            limits.answer,
            "1 to 2 participants; never active (no clients)"
        );
        assert_eq!(
            cell(&rows, GROUP_ADMIN, Action::Limits).unwrap().answer,
            "at least 1 participant"
        );
        // Nobody joins by themselves.
        for role in [ORDINARY_USER, GROUP_ADMIN, SUPER_ADMIN] {
            assert_eq!(answer(&rows, role, Action::JoinByItself), &Allowed::No);
        }
    }

    #[test]
    fn strict_members_only_talk() {
        use strict::*;
        let rows = capability_table(&Template::Strict.roles());
        for action in [
            Action::Add,
            Action::Remove,
            Action::Ban,
            Action::Kick,
            Action::ChangeRole,
            Action::Metadata,
            Action::Policy,
        ] {
            assert_eq!(
                answer(&rows, ORDINARY_USER, action),
                &Allowed::No,
                "{action:?}"
            );
        }
        assert_eq!(answer(&rows, ORDINARY_USER, Action::Send), &Allowed::Yes);
        assert_eq!(
            answer(&rows, ORDINARY_USER, Action::ChangeOwnRole),
            &Allowed::IfPreauthorized
        );
        assert_eq!(
            answer(&rows, ORDINARY_USER, Action::JoinByItself),
            &Allowed::IfPreauthorized
        );
        assert_eq!(
            answer(&rows, GROUP_ADMIN, Action::Add),
            &Allowed::Roles(vec![BANNED, ORDINARY_USER, GROUP_ADMIN])
        );
        assert!(answer(&rows, GROUP_ADMIN, Action::Unban).change(BANNED, ORDINARY_USER));
        assert!(!answer(&rows, GROUP_ADMIN, Action::ChangeRole).change(ORDINARY_USER, SUPER_ADMIN));
        assert!(answer(&rows, SUPER_ADMIN, Action::ChangeRole).change(ORDINARY_USER, SUPER_ADMIN));
        let metadata = answer(&rows, GROUP_ADMIN, Action::Metadata);
        assert!(METADATA.iter().all(|(c, _)| metadata.capability(*c)));
        assert!(!answer(&rows, GROUP_ADMIN, Action::Policy).any());
        assert!(
            answer(&rows, SUPER_ADMIN, Action::Policy).capability(cap::CAN_CHANGE_ROLE_DEFINITIONS)
        );
    }

    #[test]
    fn moderated_members_cannot_kick_and_moderators_cannot_redefine_roles() {
        use moderated::*;
        let rows = capability_table(&Template::Moderated.roles());
        for member in [GUEST, ATTENDEE, SPEAKER] {
            for action in [Action::Kick, Action::Ban, Action::Add, Action::Metadata] {
                assert_eq!(
                    answer(&rows, member, action),
                    &Allowed::No,
                    "{member} {action:?}"
                );
            }
        }
        assert_eq!(answer(&rows, GUEST, Action::Send), &Allowed::No);
        assert_eq!(answer(&rows, ATTENDEE, Action::Send), &Allowed::No);
        assert_eq!(answer(&rows, SPEAKER, Action::Send), &Allowed::Yes);
        assert_eq!(answer(&rows, GUEST, Action::AddOwnClient), &Allowed::No);
        assert_eq!(answer(&rows, ATTENDEE, Action::AddOwnClient), &Allowed::Yes);
        assert_eq!(answer(&rows, MODERATOR, Action::Send), &Allowed::Yes);
        assert_eq!(answer(&rows, MODERATOR, Action::Kick), &Allowed::Yes);
        assert_eq!(
            answer(&rows, MODERATOR, Action::Ban),
            &Allowed::Roles(vec![GUEST, ATTENDEE, SPEAKER, MODERATOR])
        );
        assert!(answer(&rows, MODERATOR, Action::ChangeRole).change(ATTENDEE, SPEAKER));
        assert!(!answer(&rows, MODERATOR, Action::ChangeRole).change(SPEAKER, SUPER_ADMIN));
        assert_eq!(answer(&rows, MODERATOR, Action::Policy), &Allowed::No);
        let metadata = answer(&rows, MODERATOR, Action::Metadata);
        assert!(metadata.capability(cap::CAN_CHANGE_ROOM_SUBJECT));
        assert!(!metadata.capability(cap::CAN_CHANGE_ROOM_DESCRIPTION));
        assert!(
            answer(&rows, SUPER_ADMIN, Action::Policy).capability(cap::CAN_CHANGE_ROLE_DEFINITIONS)
        );
        assert_eq!(
            cell(&rows, MODERATOR, Action::Ban).unwrap().answer,
            "users who are guest, attendee, speaker, moderator"
        );
    }

    #[test]
    fn multi_organization_admins_manage_their_own_organization() {
        use multi_org::*;
        let rows = capability_table(&Template::MultiOrganization.roles());
        assert_eq!(
            answer(&rows, ORG_B_ADMIN, Action::Add),
            &Allowed::Roles(vec![ORG_B_USER, ORG_B_ADMIN])
        );
        assert_eq!(
            answer(&rows, ORG_B_ADMIN, Action::Ban),
            &Allowed::Roles(vec![ORG_B_USER, ORG_B_ADMIN])
        );
        // "can ban (but not unban) their own org users".
        assert_eq!(answer(&rows, ORG_B_ADMIN, Action::Unban), &Allowed::No);
        assert!(answer(&rows, SUPER_ADMIN, Action::Unban).change(BANNED, ORG_B_USER));
        assert_eq!(
            answer(&rows, ORG_C_ADMIN, Action::ChangeRole),
            &Allowed::Changes(vec![(ORG_C_USER, ORG_C_ADMIN), (ORG_C_ADMIN, ORG_C_USER)])
        );
        assert_eq!(
            cell(&rows, ORG_C_ADMIN, Action::ChangeRole).unwrap().answer,
            "org_c_user → org_c_admin; org_c_admin → org_c_user"
        );
        // Only the host organization joins by itself and changes its own role.
        for (role, join) in [
            (ORG_A_USER, Allowed::IfPreauthorized),
            (ORG_A_ADMIN, Allowed::IfPreauthorized),
            (ORG_B_USER, Allowed::No),
            (ORG_C_ADMIN, Allowed::No),
        ] {
            assert_eq!(answer(&rows, role, Action::JoinByItself), &join, "{role}");
            assert_eq!(answer(&rows, role, Action::ChangeOwnRole), &join, "{role}");
        }
        assert_eq!(answer(&rows, ORG_B_USER, Action::Metadata), &Allowed::No);
        assert_eq!(
            cell(&rows, ORG_B_ADMIN, Action::Limits).unwrap().answer,
            "1 to 3 participants; at least 1 active"
        );
    }

    /// The table and the hub's decision function agree on every add,
    /// removal and role change between two other users, for every role
    /// that may act, in every template.
    #[test]
    fn the_table_says_what_the_hub_decides() {
        for t in Template::all() {
            let roles = t.roles();
            let rows = capability_table(&roles);
            let listed: Vec<u32> = roles
                .roles
                .iter()
                .map(|r| r.role_index)
                .filter(|&i| i != 0)
                .collect();
            let state = |users: &[(&str, u32)]| RoomPolicyState {
                participants: ParticipantListData::new(
                    users
                        .iter()
                        .map(|(u, r)| UserRolePair::new(u.as_bytes(), *r))
                        .collect(),
                ),
                roles: roles.clone(),
                ..RoomPolicyState::default()
            };
            let hub = |s: &RoomPolicyState, update: ParticipantListUpdate| {
                authorize_participant_update(
                    s,
                    "actor",
                    SelfGrants::default(),
                    &update,
                    &mut ParticipantChanges::default(),
                )
                .is_ok()
            };
            for &actor in &listed {
                if !state(&[]).role_may_be_active(actor) {
                    // The hub takes nothing but leaving from such users.
                    continue;
                }
                for &to in &listed {
                    let add = ParticipantListUpdate {
                        added_participants: vec![UserRolePair::new(b"other".to_vec(), to)],
                        ..Default::default()
                    };
                    assert_eq!(
                        hub(&state(&[("actor", actor)]), add),
                        answer(&rows, actor, Action::Add).role(to),
                        "{t}: role {actor} adds as {to}"
                    );
                }
                for &from in &listed {
                    let s = state(&[("actor", actor), ("other", from)]);
                    let remove = ParticipantListUpdate {
                        removed_indices: vec![1],
                        ..Default::default()
                    };
                    assert_eq!(
                        hub(&s, remove),
                        answer(&rows, actor, Action::Remove).role(from),
                        "{t}: role {actor} removes a {from}"
                    );
                    for &to in listed.iter().filter(|&&to| to != from) {
                        let table = if to == BANNED_ROLE {
                            answer(&rows, actor, Action::Ban).role(from)
                        } else if from == BANNED_ROLE {
                            answer(&rows, actor, Action::Unban).change(from, to)
                        } else {
                            answer(&rows, actor, Action::ChangeRole).change(from, to)
                        };
                        let change = ParticipantListUpdate {
                            changed_role_participants: vec![UserindexRolePair {
                                user_index: 1,
                                role_index: to,
                            }],
                            ..Default::default()
                        };
                        assert_eq!(
                            hub(&s, change),
                            table,
                            "{t}: role {actor} moves a {from} to {to}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_rendered_table_is_aligned() {
        let rows = capability_table(&Template::Moderated.roles());
        let text = render_table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), rows.len() + 1);
        assert!(lines[0].starts_with("ROLE"));
        let column = lines[0].find("ACTION").unwrap();
        let answers = lines[0].find("MAY").unwrap();
        for line in &lines[1..] {
            let chars: Vec<char> = line.chars().collect();
            assert_eq!(chars[column - 1], ' ', "{line}");
            assert_ne!(chars[column], ' ', "{line}");
            assert_ne!(chars[answers], ' ', "{line}");
        }
        assert!(text.contains("5 moderator"));
        assert!(text.contains("kick (remove clients)"));
    }
}
