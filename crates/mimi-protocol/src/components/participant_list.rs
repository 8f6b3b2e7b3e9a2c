//! The `participant_list` component (0x0022, -06 §7.5).

use std::collections::HashSet;

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use crate::uri::MimiUri;

/// Role index reserved by draft-ietf-mimi-room-policy §Role-Based Access
/// Control for "not (or no longer) in the participant list"; no participant
/// list entry may carry it.
pub const NO_ROLE: u32 = 0;

/// `struct { opaque user<V>; uint32 role_index; } UserRolePair;`
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UserRolePair {
    /// The user's identifier (a `mimi://…/u/…` URI in MIMI; opaque here).
    pub user: VLBytes,
    pub role_index: u32,
}

impl UserRolePair {
    pub fn new(user: impl Into<Vec<u8>>, role_index: u32) -> Self {
        Self {
            user: VLBytes::new(user.into()),
            role_index,
        }
    }

    /// A pair for a MIMI user URI (its canonical text).
    pub fn for_uri(user: &MimiUri, role_index: u32) -> Self {
        Self::new(user.as_str().as_bytes(), role_index)
    }
}

/// `struct { UserRolePair participants<V>; } ParticipantListData;` — the
/// component's `data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ParticipantListData {
    pub participants: Vec<UserRolePair>,
}

/// `struct { uint32 user_index; uint32 role_index; } UserindexRolePair;`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UserindexRolePair {
    pub user_index: u32,
    pub role_index: u32,
}

/// `struct { UserindexRolePair changedRoleParticipants<V>; uint32
/// removedIndices<V>; UserRolePair addedParticipants<V>; }
/// ParticipantListUpdate;` — the `update` of an AppDataUpdate proposal for
/// the participant list. Indices refer to the list *before* the update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ParticipantListUpdate {
    pub changed_role_participants: Vec<UserindexRolePair>,
    pub removed_indices: Vec<u32>,
    pub added_participants: Vec<UserRolePair>,
}

impl ParticipantListUpdate {
    /// True if the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changed_role_participants.is_empty()
            && self.removed_indices.is_empty()
            && self.added_participants.is_empty()
    }
}

/// Why a participant list or an update of it is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParticipantListError {
    #[error("user index {index} is out of range (the list has {len} participants)")]
    IndexOutOfRange { index: u32, len: usize },
    #[error("user `{user}` is changed, removed or added more than once")]
    UserTouchedTwice { user: String },
    #[error("added user `{user}` is already in the participant list")]
    AlreadyPresent { user: String },
    #[error("user `{user}` appears more than once in the participant list")]
    DuplicateUser { user: String },
    #[error("role index 0 is reserved for users not in the participant list (user `{user}`)")]
    ReservedRole { user: String },
}

fn show(user: &[u8]) -> String {
    String::from_utf8_lossy(user).into_owned()
}

impl ParticipantListData {
    pub fn new(participants: Vec<UserRolePair>) -> Self {
        Self { participants }
    }

    pub fn len(&self) -> usize {
        self.participants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Index of a user in the list.
    pub fn index_of(&self, user: impl AsRef<[u8]>) -> Option<u32> {
        let user = user.as_ref();
        self.participants
            .iter()
            .position(|p| p.user.as_slice() == user)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// The role of a user, `None` if absent (role index 0 in room-policy
    /// terms).
    pub fn role_of(&self, user: impl AsRef<[u8]>) -> Option<u32> {
        let user = user.as_ref();
        self.participants
            .iter()
            .find(|p| p.user.as_slice() == user)
            .map(|p| p.role_index)
    }

    /// Like [`Self::role_of`] for a MIMI URI.
    pub fn role_of_uri(&self, user: &MimiUri) -> Option<u32> {
        self.role_of(user.as_str())
    }

    pub fn contains(&self, user: impl AsRef<[u8]>) -> bool {
        self.role_of(user).is_some()
    }

    /// Checks the list invariants: every user at most once, no role 0.
    pub fn validate(&self) -> Result<(), ParticipantListError> {
        let mut seen = HashSet::with_capacity(self.participants.len());
        for p in &self.participants {
            if p.role_index == NO_ROLE {
                return Err(ParticipantListError::ReservedRole {
                    user: show(p.user.as_slice()),
                });
            }
            if !seen.insert(p.user.as_slice()) {
                return Err(ParticipantListError::DuplicateUser {
                    user: show(p.user.as_slice()),
                });
            }
        }
        Ok(())
    }

    /// Applies one update (-06 §7.5): first the role changes by index, then
    /// the removals by index (indices refer to `self`), then the additions
    /// are appended in order. Remaining participants keep their order.
    ///
    /// Rejected, leaving `self` untouched: an invalid `self` (see
    /// [`Self::validate`]), an index out of range, any user operated on
    /// more than once (changed twice, changed and removed, removed twice,
    /// removed or changed and re-added, added twice), adding a user already
    /// present, and role index 0 in a change or an addition.
    pub fn apply(
        &self,
        update: &ParticipantListUpdate,
    ) -> Result<ParticipantListData, ParticipantListError> {
        self.validate()?;
        let mut touched_users: HashSet<&[u8]> = HashSet::new();
        let len = self.participants.len();
        let entry = |index: u32| {
            usize::try_from(index)
                .ok()
                .filter(|i| *i < len)
                .ok_or(ParticipantListError::IndexOutOfRange { index, len })
        };

        let mut participants = self.participants.clone();
        for change in &update.changed_role_participants {
            let i = entry(change.user_index)?;
            let user = self.participants[i].user.as_slice();
            touch(&mut touched_users, user)?;
            if change.role_index == NO_ROLE {
                return Err(ParticipantListError::ReservedRole { user: show(user) });
            }
            participants[i].role_index = change.role_index;
        }
        let mut removed = vec![false; len];
        for &index in &update.removed_indices {
            let i = entry(index)?;
            touch(&mut touched_users, self.participants[i].user.as_slice())?;
            removed[i] = true;
        }
        let mut result: Vec<UserRolePair> = participants
            .into_iter()
            .zip(removed)
            .filter_map(|(p, r)| (!r).then_some(p))
            .collect();

        let present: HashSet<&[u8]> = self
            .participants
            .iter()
            .map(|p| p.user.as_slice())
            .collect();
        for added in &update.added_participants {
            let user = added.user.as_slice();
            if present.contains(user) && !touched_users.contains(user) {
                return Err(ParticipantListError::AlreadyPresent { user: show(user) });
            }
            touch(&mut touched_users, user)?;
            if added.role_index == NO_ROLE {
                return Err(ParticipantListError::ReservedRole { user: show(user) });
            }
            result.push(added.clone());
        }
        Ok(ParticipantListData {
            participants: result,
        })
    }

    /// Applies all participant-list updates of one commit (mls-extensions
    /// §4.6 hands the application every AppDataUpdate for the component, in
    /// commit order). Every update was built against the list of the epoch
    /// being committed — proposals by reference are created independently —
    /// so all indices refer to `self`, not to the result of the previous
    /// update; additions are appended in commit order. A user operated on
    /// by more than one update is rejected (-06 §7.5: "a single commit is not
    /// valid if it contains any combination of Participant list updates that
    /// operate on … the same user … more than once"). This is exactly
    /// [`Self::apply`] of the concatenated update.
    pub fn apply_all<'a>(
        &self,
        updates: impl IntoIterator<Item = &'a ParticipantListUpdate>,
    ) -> Result<ParticipantListData, ParticipantListError> {
        let mut merged = ParticipantListUpdate::default();
        for u in updates {
            merged
                .changed_role_participants
                .extend_from_slice(&u.changed_role_participants);
            merged.removed_indices.extend_from_slice(&u.removed_indices);
            merged
                .added_participants
                .extend_from_slice(&u.added_participants);
        }
        self.apply(&merged)
    }
}

/// Records that an update operates on `user`; a second time is an error.
fn touch<'a>(touched: &mut HashSet<&'a [u8]>, user: &'a [u8]) -> Result<(), ParticipantListError> {
    if touched.insert(user) {
        Ok(())
    } else {
        Err(ParticipantListError::UserTouchedTwice { user: show(user) })
    }
}
