//! Join links (room-policy §Join Link policies component; `canUseJoinCode`
//! in §Adding), as read in docs/divergences.md C27.
//!
//! A join link is the text `{room URI}?role={n}&code={secret}` with an
//! optional `&expires={unix seconds}`. The same bytes are the `JoinLink`
//! the room's `join_links` component lists, the `joiningCode` of the
//! groupInfo request (-06 §5.6), and the `join_links` Safe AAD item of the
//! joiner's external commit, so the hub, and every member, can tell which
//! link a join used without keeping any state of its own.
//!
//! A link is created by a commit that adds it to `join_links`: only by a
//! participant who could add a user with the link's role itself
//! (`canAddParticipant` and the change from role 0 to it), so a link never
//! lets in more than its creator could. A user not in the participant list
//! joins with it when role 0 holds `canUseJoinCode`, the room lists the
//! link, and it has not expired; a link of a room whose
//! `join_link_policy` is not `multiuser` is used up by the join, whose
//! commit must remove it.

use mimi_protocol::components::room_policy::capabilities as cap;
use mimi_protocol::components::{JoinLinkPolicy, JoinLinksUpdate};

use super::{NOT_IN_LIST, RoomPolicyState};
use crate::rejection::PolicyViolation;

/// The shortest secret a link may carry: 22 base64url characters hold 128
/// bits.
pub const MIN_CODE_LEN: usize = 22;

/// Slack between the creator's clock and the hub's when a new link's
/// expiry is checked against the policy's `expiration`.
pub const CLOCK_SKEW_SECS: u64 = 300;

/// The parts of a join link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinLinkText {
    /// The room's URI (`mimi://{hub domain}/r/{id}`).
    pub room: String,
    /// The role the joiner takes.
    pub role: u32,
    /// The secret: base64url characters, at least [`MIN_CODE_LEN`] when
    /// the hub accepts the link.
    pub code: String,
    /// Unix seconds after which the link no longer admits anyone.
    pub expires: Option<u64>,
}

impl JoinLinkText {
    /// Parses a link; the parameters may come in any order, each once.
    pub fn parse(link: &[u8]) -> Result<Self, LinkRefusal> {
        let malformed = |why: &str| LinkRefusal::Malformed(why.to_owned());
        let text = std::str::from_utf8(link).map_err(|_| malformed("not UTF-8"))?;
        let (room, query) = text
            .split_once('?')
            .ok_or_else(|| malformed("no ?role=…&code=… part"))?;
        if !room.starts_with("mimi://") || room.contains(['#', ' ']) {
            return Err(malformed("not a mimi room URI"));
        }
        let (mut role, mut code, mut expires) = (None, None, None);
        for parameter in query.split('&') {
            let (key, value) = parameter
                .split_once('=')
                .ok_or_else(|| malformed("a parameter without a value"))?;
            let slot_taken = match key {
                "role" => role
                    .replace(value.parse::<u32>().map_err(|_| malformed("role"))?)
                    .is_some(),
                "code" => {
                    if value.is_empty()
                        || !value
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    {
                        return Err(malformed("code: base64url characters only"));
                    }
                    code.replace(value.to_owned()).is_some()
                }
                "expires" => expires
                    .replace(value.parse::<u64>().map_err(|_| malformed("expires"))?)
                    .is_some(),
                other => return Err(LinkRefusal::Malformed(format!("unknown parameter {other}"))),
            };
            if slot_taken {
                return Err(LinkRefusal::Malformed(format!("{key} given twice")));
            }
        }
        Ok(Self {
            room: room.to_owned(),
            role: role.ok_or_else(|| malformed("no role"))?,
            code: code.ok_or_else(|| malformed("no code"))?,
            expires,
        })
    }
}

impl std::fmt::Display for JoinLinkText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}?role={}&code={}", self.room, self.role, self.code)?;
        if let Some(expires) = self.expires {
            write!(f, "&expires={expires}")?;
        }
        Ok(())
    }
}

/// Why a join link does not let its holder in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error("not a join link: {0}")]
    Malformed(String),
    #[error("the link is for another room ({0})")]
    OtherRoom(String),
    #[error("the room has no join link policy, so no join links")]
    NotEnabled,
    #[error(
        "users not in the participant list may not use join codes here: role 0 lacks canUseJoinCode"
    )]
    CodesNotAllowed,
    #[error("the room does not list this link: removed, used up, or never created")]
    NotListed,
    #[error("the link expired at {expires} (unix seconds)")]
    Expired { expires: u64 },
    #[error(
        "the link's role {0} cannot be joined: undefined, role 0, banned, without active participants, or not a target of role 0's changes"
    )]
    Role(u32),
    #[error("the time of the join is not known, so the link's expiry cannot be checked")]
    NoClock,
}

/// What a valid link lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkGrant {
    /// The link's bytes, as listed.
    pub link: Vec<u8>,
    /// The role the holder joins with.
    pub role: u32,
    /// The link's position in `join_links`.
    pub index: u32,
    /// Whether the join uses the link up (`multiuser` false).
    pub single_use: bool,
}

/// Whether `role` can be given by a link ("the join code refers to a valid
/// target role", room-policy §Adding): a defined, non-zero role that is
/// not the ban role, may have active participants, and is a target of
/// role 0's changes from 0.
fn joinable(state: &RoomPolicyState, role: u32) -> bool {
    role != NOT_IN_LIST
        && state.roles.role(role).is_some()
        && state.role_may_be_active(role)
        && state
            .roles
            .role(NOT_IN_LIST)
            .is_some_and(|r| r.may_change(NOT_IN_LIST, role))
}

/// The room's URI as its metadata names it, if it has metadata.
fn room_uri(state: &RoomPolicyState) -> Option<&str> {
    state
        .metadata
        .as_ref()
        .and_then(|m| m.room_uri.as_str())
        .filter(|uri| !uri.is_empty())
}

/// What the join code `link`, presented at `now` (unix seconds) by a user
/// not in the participant list, lets that user do.
pub fn grant(
    state: &RoomPolicyState,
    link: &[u8],
    now: Option<u64>,
) -> Result<LinkGrant, LinkRefusal> {
    let policy = state
        .join_link_policy
        .as_ref()
        .ok_or(LinkRefusal::NotEnabled)?;
    if !state
        .roles
        .has_capability(NOT_IN_LIST, cap::CAN_USE_JOIN_CODE)
    {
        return Err(LinkRefusal::CodesNotAllowed);
    }
    let index = state
        .join_links
        .index_of(link)
        .ok_or(LinkRefusal::NotListed)?;
    let text = JoinLinkText::parse(link)?;
    if let Some(room) = room_uri(state)
        && room != text.room
    {
        return Err(LinkRefusal::OtherRoom(text.room));
    }
    if let Some(expires) = text.expires {
        let now = now.ok_or(LinkRefusal::NoClock)?;
        if now >= expires {
            return Err(LinkRefusal::Expired { expires });
        }
    }
    if !joinable(state, text.role) {
        return Err(LinkRefusal::Role(text.role));
    }
    Ok(LinkGrant {
        link: link.to_vec(),
        role: text.role,
        index,
        single_use: !policy.multiuser,
    })
}

/// Whether `proposer` may create, or remove, a link giving `role`: it
/// could add a user with that role itself.
fn may_manage(state: &RoomPolicyState, proposer: &str, role: u32) -> bool {
    state.has(proposer, cap::CAN_ADD_PARTICIPANT)
        && state.may_change(state.role_of(proposer), NOT_IN_LIST, role)
}

/// Authorizes a `join_links` update proposed by `proposer` at `now`.
/// `used` is the link the proposer joins with when it is the joiner of an
/// external commit: it may remove that link and nothing else.
pub fn authorize_update(
    state: &RoomPolicyState,
    proposer: &str,
    update: &JoinLinksUpdate,
    used: Option<&LinkGrant>,
    now: Option<u64>,
) -> Result<(), PolicyViolation> {
    let refused = |reason: String| PolicyViolation::JoinLinks {
        proposer: proposer.to_owned(),
        reason,
    };
    if let Some(used) = used {
        return (update.added_links.is_empty() && update.removed_indices == [used.index])
            .then_some(())
            .ok_or_else(|| refused("a joiner may only remove the link it joins with".into()));
    }
    let policy: &JoinLinkPolicy = state
        .join_link_policy
        .as_ref()
        .ok_or_else(|| refused(LinkRefusal::NotEnabled.to_string()))?;
    for &index in &update.removed_indices {
        let listed = usize::try_from(index)
            .ok()
            .and_then(|i| state.join_links.join_links.get(i))
            .ok_or_else(|| refused(format!("no link at index {index}")))?;
        // A link that no longer parses may be removed by anyone who may
        // create links at all.
        let allowed = match JoinLinkText::parse(listed.join_link.as_slice()) {
            Ok(text) => may_manage(state, proposer, text.role),
            Err(_) => state.has(proposer, cap::CAN_ADD_PARTICIPANT),
        };
        if !allowed {
            return Err(refused(format!(
                "may not remove link {index}: needs canAddParticipant and the change from role 0 to its role"
            )));
        }
    }
    for added in &update.added_links {
        let text =
            JoinLinkText::parse(added.join_link.as_slice()).map_err(|e| refused(e.to_string()))?;
        if let Some(room) = room_uri(state)
            && room != text.room
        {
            return Err(refused(LinkRefusal::OtherRoom(text.room).to_string()));
        }
        if text.code.len() < MIN_CODE_LEN {
            return Err(refused(format!(
                "the code must have at least {MIN_CODE_LEN} characters"
            )));
        }
        if !joinable(state, text.role) {
            return Err(refused(LinkRefusal::Role(text.role).to_string()));
        }
        if !may_manage(state, proposer, text.role) {
            return Err(refused(format!(
                "may not create a link for role {}: needs canAddParticipant and the change from role 0 to it",
                text.role
            )));
        }
        match (text.expires, policy.expiration) {
            (None, 0) => {}
            (None, max) => {
                return Err(refused(format!(
                    "links of this room expire within {max} s: the link needs expires"
                )));
            }
            (Some(expires), max) => {
                let now = now.ok_or_else(|| refused(LinkRefusal::NoClock.to_string()))?;
                if expires <= now {
                    return Err(refused(format!("the link expired at {expires}")));
                }
                if max != 0 && expires > now + u64::from(max) + CLOCK_SKEW_SECS {
                    return Err(refused(format!(
                        "the link outlives the room's link expiration of {max} s"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The rules on the links after a commit: with `on_request` at most one
/// link is kept; a single-use link a joiner used is gone.
pub fn check_after(
    after: &RoomPolicyState,
    used: Option<&LinkGrant>,
) -> Result<(), PolicyViolation> {
    if after
        .join_link_policy
        .as_ref()
        .is_some_and(|p| p.on_request)
        && after.join_links.join_links.len() > 1
    {
        return Err(PolicyViolation::JoinLinksOnRequest {
            count: after.join_links.join_links.len(),
        });
    }
    if let Some(used) = used
        && used.single_use
        && after.join_links.index_of(&used.link).is_some()
    {
        return Err(PolicyViolation::SingleUseLinkKept);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use mimi_protocol::components::room_policy::RoleData;
    use mimi_protocol::components::{
        JoinLink, JoinLinksData, ParticipantListData, RoomMetaData, UserRolePair,
    };

    use super::*;
    use crate::policy::{BANNED_ROLE, default_role, default_roles};

    const ROOM: &str = "mimi://a.example/r/club";
    const CODE: &str = "abcdefghijklmnopqrstuvwxyz";

    fn link(role: u32, expires: Option<u64>) -> String {
        JoinLinkText {
            room: ROOM.into(),
            role,
            code: CODE.into(),
            expires,
        }
        .to_string()
    }

    /// The default roles, role 0 holding `canUseJoinCode`, alice an
    /// admin, bob a member; links not single use unless `multiuser` is
    /// false.
    fn state(multiuser: bool, links: &[&str]) -> RoomPolicyState {
        let mut roles: RoleData = default_roles();
        roles.roles.push(crate::policy::no_role(
            vec![cap::CAN_USE_JOIN_CODE],
            vec![default_role::MEMBER, default_role::ADMIN],
        ));
        RoomPolicyState {
            participants: ParticipantListData {
                participants: vec![
                    UserRolePair::new(b"alice", default_role::ADMIN),
                    UserRolePair::new(b"bob", default_role::MEMBER),
                ],
            },
            roles,
            join_link_policy: Some(JoinLinkPolicy {
                on_request: false,
                join_link: Default::default(),
                multiuser,
                expiration: 3600,
            }),
            join_links: JoinLinksData {
                join_links: links.iter().map(|l| JoinLink::new(*l)).collect(),
            },
            metadata: Some(RoomMetaData {
                room_uri: mimi_protocol::components::Uri::new(ROOM),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn add(links: &[&str]) -> JoinLinksUpdate {
        JoinLinksUpdate {
            removed_indices: vec![],
            added_links: links.iter().map(|l| JoinLink::new(*l)).collect(),
        }
    }

    #[test]
    fn links_print_and_parse_alike() {
        let text = JoinLinkText::parse(link(2, Some(99)).as_bytes()).unwrap();
        assert_eq!((text.role, text.expires), (2, Some(99)));
        assert_eq!(text.to_string(), link(2, Some(99)));
        let reordered = format!("{ROOM}?code={CODE}&expires=5&role=3");
        assert_eq!(JoinLinkText::parse(reordered.as_bytes()).unwrap().role, 3);
        for bad in [
            ROOM.to_owned(),
            format!("{ROOM}?role=2"),
            format!("{ROOM}?code={CODE}"),
            format!("{ROOM}?role=2&role=3&code={CODE}"),
            format!("{ROOM}?role=x&code={CODE}"),
            format!("{ROOM}?role=2&code=a/b"),
            format!("{ROOM}?role=2&code={CODE}&via=b.example"),
            format!("https://a.example/r/club?role=2&code={CODE}"),
        ] {
            assert!(
                matches!(
                    JoinLinkText::parse(bad.as_bytes()),
                    Err(LinkRefusal::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    proptest::proptest! {
        /// Any bytes: a parse, or a refusal, never a panic; what parses
        /// prints back to a link that parses the same.
        #[test]
        fn parsing_never_panics_and_round_trips(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            if let Ok(text) = JoinLinkText::parse(&bytes) {
                proptest::prop_assert_eq!(JoinLinkText::parse(text.to_string().as_bytes()), Ok(text));
            }
        }

        #[test]
        fn made_links_parse_to_their_parts(
            role in proptest::prelude::any::<u32>(),
            code in "[A-Za-z0-9_-]{1,40}",
            expires in proptest::option::of(proptest::prelude::any::<u64>()),
        ) {
            let text = JoinLinkText { room: ROOM.into(), role, code, expires };
            proptest::prop_assert_eq!(JoinLinkText::parse(text.to_string().as_bytes()), Ok(text));
        }
    }

    #[test]
    fn a_listed_unexpired_link_admits_with_its_role() {
        let l = link(default_role::MEMBER, Some(1000));
        let s = state(true, &["other", &l]);
        let g = grant(&s, l.as_bytes(), Some(999)).unwrap();
        assert_eq!(
            (g.role, g.index, g.single_use),
            (default_role::MEMBER, 1, false)
        );
        assert_eq!(
            grant(&s, l.as_bytes(), Some(1000)),
            Err(LinkRefusal::Expired { expires: 1000 })
        );
        assert_eq!(grant(&s, l.as_bytes(), None), Err(LinkRefusal::NoClock));
        let unlisted = link(default_role::MEMBER, Some(2000));
        assert_eq!(
            grant(&s, unlisted.as_bytes(), Some(1)),
            Err(LinkRefusal::NotListed)
        );
        // Single use when the policy is not multiuser.
        let s = state(false, &[&l]);
        assert!(grant(&s, l.as_bytes(), Some(1)).unwrap().single_use);
    }

    #[test]
    fn links_need_role_zero_to_use_codes_and_a_joinable_role() {
        let l = link(default_role::MEMBER, None);
        let mut s = state(true, &[&l]);
        s.roles.roles.retain(|r| r.role_index != 0);
        assert_eq!(
            grant(&s, l.as_bytes(), Some(1)),
            Err(LinkRefusal::CodesNotAllowed)
        );
        let banned = link(BANNED_ROLE, None);
        let s = state(true, &[&banned]);
        assert_eq!(
            grant(&s, banned.as_bytes(), Some(1)),
            Err(LinkRefusal::Role(BANNED_ROLE))
        );
        // Moderators are no target of role 0's changes.
        let moderator = link(default_role::MODERATOR, None);
        let s = state(true, &[&moderator]);
        assert_eq!(
            grant(&s, moderator.as_bytes(), Some(1)),
            Err(LinkRefusal::Role(default_role::MODERATOR))
        );
        let mut s = state(true, &[&l]);
        s.join_link_policy = None;
        assert_eq!(
            grant(&s, l.as_bytes(), Some(1)),
            Err(LinkRefusal::NotEnabled)
        );
        let other_room = format!("mimi://a.example/r/other?role=2&code={CODE}");
        let s = state(true, &[&other_room]);
        assert!(matches!(
            grant(&s, other_room.as_bytes(), Some(1)),
            Err(LinkRefusal::OtherRoom(_))
        ));
    }

    #[test]
    fn only_who_could_add_the_role_creates_a_link_for_it() {
        let s = state(true, &[]);
        let now = Some(1_000);
        let member_link = link(default_role::MEMBER, Some(2_000));
        let admin_link = link(default_role::ADMIN, Some(2_000));
        authorize_update(&s, "alice", &add(&[&member_link]), None, now).unwrap();
        // Members may add members, so they may create member links, but
        // never admin links.
        authorize_update(&s, "bob", &add(&[&member_link]), None, now).unwrap();
        assert!(authorize_update(&s, "bob", &add(&[&admin_link]), None, now).is_err());
        assert!(authorize_update(&s, "carol", &add(&[&member_link]), None, now).is_err());
    }

    #[test]
    fn new_links_respect_the_expiration_policy() {
        let s = state(true, &[]);
        let now = 1_000;
        let ok = |l: &str| authorize_update(&s, "alice", &add(&[l]), None, Some(now));
        ok(&link(2, Some(now + 3600))).unwrap();
        assert!(
            ok(&link(2, None)).is_err(),
            "expiration set: expires needed"
        );
        assert!(ok(&link(2, Some(now))).is_err(), "already expired");
        assert!(ok(&link(2, Some(now + 3600 + CLOCK_SKEW_SECS + 1))).is_err());
        let short = format!("{ROOM}?role=2&code=short&expires={}", now + 10);
        assert!(ok(&short).is_err(), "a guessable code");
        let mut open = state(true, &[]);
        open.join_link_policy.as_mut().unwrap().expiration = 0;
        authorize_update(&open, "alice", &add(&[&link(2, None)]), None, Some(now)).unwrap();
    }

    #[test]
    fn a_joiner_only_removes_its_own_link_and_single_use_links_go() {
        let l = link(default_role::MEMBER, None);
        let s = state(false, &["x", &l]);
        let g = grant(&s, l.as_bytes(), Some(1)).unwrap();
        let remove = |i: u32| JoinLinksUpdate {
            removed_indices: vec![i],
            added_links: vec![],
        };
        authorize_update(&s, "dora", &remove(1), Some(&g), Some(1)).unwrap();
        assert!(authorize_update(&s, "dora", &remove(0), Some(&g), Some(1)).is_err());
        assert!(authorize_update(&s, "dora", &add(&[&l]), Some(&g), Some(1)).is_err());

        // The commit's result must no longer list a used single-use link.
        assert_eq!(
            check_after(&s, Some(&g)),
            Err(PolicyViolation::SingleUseLinkKept)
        );
        let mut after = s.clone();
        after.join_links.join_links.remove(1);
        check_after(&after, Some(&g)).unwrap();
        // With on_request, at most one link is kept.
        let mut one = state(true, &["a", "b"]);
        one.join_link_policy.as_mut().unwrap().on_request = true;
        assert_eq!(
            check_after(&one, None),
            Err(PolicyViolation::JoinLinksOnRequest { count: 2 })
        );
    }
}
