//! The hub's room state machine (-06 §5.3–4.6, §6).
//!
//! Pure: the caller loads a [`HubRoom`] from its store, feeds it a
//! handshake message or an application message's metadata, and on success
//! persists [`HubRoom::to_bytes`] with a compare-and-set on the epoch it
//! loaded. Nothing here does IO.

use std::collections::{BTreeSet, HashMap};

use mimi_protocol::components::room_policy::CapabilityType;
use mimi_protocol::components::room_policy::capabilities as cap;
use mimi_protocol::components::{
    FRANK_AAD, FRANKING_SIGNATURE_KEY, FrankAAD, FrankingAgentData, JOIN_LINKS, JoinLink,
    JoinLinksUpdate, PARTICIPANT_LIST, PREAUTH_LIST, ParticipantListUpdate, ROLES_LIST,
    ROOM_METADATA, RoomMetaData, decode_component,
};
use openmls::ciphersuite::hash_ref::ProposalRef;
use openmls::component::{ComponentId, ComponentType, ComponentsList};
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::*;

use crate::RoomError;
use crate::components::resolve_app_data_updates;
use crate::external_senders::{
    ExternalSendersViolation, check_external_senders, check_group_context_extensions,
};
use crate::group::HubGroup;
use crate::identity::{ClientIdentity, client_identity};
use crate::policy::join_links::{self, LinkGrant};
use crate::policy::preauth::Claims;
use crate::policy::updates::{
    capability_for, capability_name, check_replacement, metadata_capabilities,
};
use crate::policy::{
    ParticipantChanges, RoomPolicyState, SelfGrants, authorize_participant_update, base,
    check_role_constraints,
};
use crate::rejection::{PolicyViolation, SubmitRejection, UpdateRejection};

/// A client added by an accepted commit, for Welcome routing by
/// KeyPackageRef (-06 §5.2, §5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedClient {
    pub key_package_ref: KeyPackageRef,
    pub device: String,
    pub user: String,
}

/// The outcome of an accepted commit.
#[derive(Debug, Clone)]
pub struct AcceptedCommit {
    pub new_epoch: u64,
    pub committer: String,
    pub added: Vec<AddedClient>,
    /// Device URIs of the clients the commit removed. They still receive
    /// this commit so they learn of their removal (-06 §5.5).
    pub removed: Vec<String>,
}

/// The hub's view of one room.
pub struct HubRoom {
    group: HubGroup,
}

impl HubRoom {
    /// Starts hosting a room from its creator's GroupInfo and ratchet tree.
    ///
    /// The initial state must already be consistent: every member's user in
    /// the participant list with a role allowed to be active.
    pub fn create(
        crypto: &impl OpenMlsCrypto,
        ratchet_tree: RatchetTreeIn,
        group_info: VerifiableGroupInfo,
    ) -> Result<Self, RoomError> {
        let room = Self {
            group: HubGroup::from_group_info(crypto, ratchet_tree, group_info)?,
        };
        let state = room.policy_state()?;
        if state.participants.is_empty() {
            return Err(RoomError::NoParticipantList);
        }
        state
            .participants
            .validate()
            .map_err(|e| RoomError::InvalidGroup(e.to_string()))?;
        state
            .roles
            .validate()
            .map_err(|e| RoomError::InvalidGroup(e.to_string()))?;
        // room-policy §Base Room policy: the style and limits hold from the
        // start (the same checks a commit passes, from an empty room).
        base::check_at_creation(&state, &room.active_users())
            .map_err(|e| RoomError::InvalidGroup(e.to_string()))?;
        room.check_members_consistent(&state)?;
        Ok(room)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RoomError> {
        Ok(Self {
            group: HubGroup::from_bytes(bytes)?,
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, RoomError> {
        self.group.to_bytes()
    }

    pub fn epoch(&self) -> u64 {
        self.group.epoch()
    }

    pub fn group_id(&self) -> &GroupId {
        self.group.public_group().group_id()
    }

    pub fn public_group(&self) -> &PublicGroup {
        self.group.public_group()
    }

    /// Participant list and roles as of the current epoch.
    pub fn policy_state(&self) -> Result<RoomPolicyState, RoomError> {
        RoomPolicyState::from_dictionary(self.dictionary())
    }

    /// The room state as the hub has accepted it: the current epoch's,
    /// with the participant-list updates queued in this epoch applied.
    /// Room state changes take effect when the hub accepts them, before
    /// they are committed (-06 §7.1), so a queued ban or removal already
    /// blocks the user (-06 §5.3).
    pub fn accepted_policy_state(&self) -> Result<RoomPolicyState, RoomError> {
        let mut state = self.policy_state()?;
        let queued = self
            .group
            .public_group()
            .queued_proposals(self.group.storage())
            .map_err(|e| RoomError::CorruptState(format!("{e:?}")))?;
        let updates: Vec<ParticipantListUpdate> = queued
            .iter()
            .filter_map(|(_, q)| match q.proposal() {
                Proposal::AppDataUpdate(u) if u.component_id() == PARTICIPANT_LIST => {
                    match u.operation() {
                        AppDataUpdateOperation::Update(bytes) => {
                            decode_component(bytes.as_slice()).ok()
                        }
                        AppDataUpdateOperation::Remove => None,
                    }
                }
                _ => None,
            })
            .collect();
        if !updates.is_empty() {
            // Each queued update was validated when it was accepted;
            // together they were built against this epoch's list.
            if let Ok(list) = state.participants.apply_all(updates.iter()) {
                state.participants = list;
            }
        }
        Ok(state)
    }

    fn dictionary(&self) -> Option<&AppDataDictionary> {
        self.group
            .public_group()
            .group_context()
            .extensions()
            .app_data_dictionary()
            .map(|ext| ext.dictionary())
    }

    /// The room's `franking_signature_key` component (`FrankingAgentData`,
    /// -06 §5.4.1, component 0x0021), if the room has a franking agent.
    pub fn franking_agent(&self) -> Result<Option<FrankingAgentData>, RoomError> {
        self.dictionary()
            .and_then(|d| d.get(&FRANKING_SIGNATURE_KEY))
            .map(|bytes| {
                decode_component(bytes)
                    .map_err(|e| RoomError::CorruptState(format!("franking_signature_key: {e}")))
            })
            .transpose()
    }

    /// The franking tag of an application message (-06 §5.4.1): its
    /// `frank_aad` Safe AAD item. The Safe AAD is the clear-text prefix of
    /// the PrivateMessage's `authenticated_data` (mls-extensions §4.9), so
    /// the hub reads it without group secrets; the receiver's AEAD check
    /// binds it to the content.
    ///
    /// `Ok(None)` when the room does not list `frank_aad` among its
    /// required Safe AAD components. When it does, a message without a
    /// well-formed item is refused: its receivers would reject it anyway.
    pub fn franking_tag(
        &self,
        message: &openmls::framing::PrivateMessageIn,
    ) -> Result<Option<[u8; 32]>, SubmitRejection> {
        let context = self.group.public_group().group_context();
        let required = context.safe_aad_required_components().map_err(|e| {
            SubmitRejection::SafeAadComponent {
                detail: e.to_string(),
            }
        })?;
        if !required.is_some_and(|ids| ids.contains(&FRANK_AAD)) {
            return Ok(None);
        }

        let (safe_aad, _) =
            <openmls::framing::SafeAad as tls_codec::DeserializeBytes>::tls_deserialize_bytes(
                message.aad(),
            )
            .map_err(|e| SubmitRejection::SafeAad {
                detail: e.to_string(),
            })?;
        let item = safe_aad
            .get(FRANK_AAD)
            .ok_or(SubmitRejection::FrankAadMissing)?;
        let aad: FrankAAD = decode_component(item).map_err(|e| SubmitRejection::FrankAad {
            detail: e.to_string(),
        })?;
        Ok(Some(aad.franking_tag))
    }

    /// Every member client's identity, by leaf.
    pub fn members(&self) -> Vec<(LeafNodeIndex, Result<ClientIdentity, RoomError>)> {
        self.group
            .public_group()
            .members()
            .map(|m| (m.index, client_identity(&m.credential)))
            .collect()
    }

    /// Active users (users with at least one client) and their client count.
    pub fn active_users(&self) -> HashMap<String, usize> {
        let mut users = HashMap::new();
        for (_, identity) in self.members() {
            if let Ok(id) = identity {
                *users.entry(id.user.as_str().to_owned()).or_default() += 1;
            }
        }
        users
    }

    /// Provider domains with at least one client in the group: the
    /// destinations of fanout (-06 §5.5).
    pub fn member_domains(&self) -> BTreeSet<String> {
        self.members()
            .into_iter()
            .filter_map(|(_, id)| id.ok())
            .map(|id| id.device.domain().to_owned())
            .collect()
    }

    /// Provider domains with a member client whose user may receive the
    /// room's messages (room-policy `canReceiveMessage`) under the state
    /// the hub has accepted: where application messages go. Fanout is per
    /// provider (-06 §5.5), so a provider gets them while any one of its
    /// users there may receive (docs/divergences.md C28).
    pub fn receiving_domains(&self) -> Result<BTreeSet<String>, RoomError> {
        let state = self.accepted_policy_state()?;
        let mut verdicts: HashMap<String, bool> = HashMap::new();
        let mut domains = BTreeSet::new();
        for (_, identity) in self.members() {
            let Ok(id) = identity else { continue };
            let user = id.user.as_str();
            let receives = *verdicts.entry(user.to_owned()).or_insert_with(|| {
                state.may_be_active(user) && state.has(user, cap::CAN_RECEIVE_MESSAGE)
            });
            if receives {
                domains.insert(id.device.domain().to_owned());
            }
        }
        Ok(domains)
    }

    /// Provider domains that have a participant in the room: a user in
    /// the participant list or a client in the group.
    pub fn participant_domains(&self) -> Result<BTreeSet<String>, RoomError> {
        let state = self.policy_state()?;
        let listed = state.participants.participants.iter().filter_map(|pair| {
            std::str::from_utf8(pair.user.as_slice())
                .ok()
                .and_then(|user| mimi_protocol::MimiUri::parse(user).ok())
                .map(|user| user.domain().to_ascii_lowercase())
        });
        let mut domains: BTreeSet<String> = listed.collect();
        domains.extend(
            self.member_domains()
                .into_iter()
                .map(|d| d.to_ascii_lowercase()),
        );
        Ok(domains)
    }

    /// Checks the group's `external_senders` as of the current epoch
    /// against -06 §7.4 (see [`check_external_senders`]): the hub (`hub`,
    /// its entry for the room's ciphersuite) listed, and followers only
    /// while they have participants.
    pub fn check_external_senders(
        &self,
        hub: Option<&ExternalSender>,
        hub_domain: &str,
    ) -> Result<(), ExternalSendersViolation> {
        // No entry: the hub has no key for the room's ciphersuite.
        let hub = hub.ok_or(ExternalSendersViolation::HubMissing)?;
        let participating = self
            .participant_domains()
            .map_err(|e| ExternalSendersViolation::RoomState(e.to_string()))?;
        check_external_senders(
            self.group
                .public_group()
                .group_context()
                .extensions()
                .external_senders()
                .map(|senders| senders.as_slice()),
            hub,
            hub_domain,
            &participating,
        )
    }

    /// Handles the proposals of an update request (HandshakeBundle with a
    /// proposal, -06 §5.3): each is validated and authorized on its own
    /// proposer's role; all are queued for the next commit, or none.
    pub fn handle_proposals(
        &mut self,
        crypto: &impl OpenMlsCrypto,
        proposals: Vec<MlsMessageIn>,
    ) -> Result<Vec<ProposalRef>, UpdateRejection> {
        self.handle_proposals_at(crypto, proposals, None)
    }

    /// [`Self::handle_proposals`] at `now` (unix seconds), the time the
    /// hub accepts them: what depends on the time (a new join link's
    /// expiry) is refused without it.
    pub fn handle_proposals_at(
        &mut self,
        crypto: &impl OpenMlsCrypto,
        proposals: Vec<MlsMessageIn>,
        now: Option<u64>,
    ) -> Result<Vec<ProposalRef>, UpdateRejection> {
        Ok(self
            .handle_proposals_from(crypto, proposals, now)?
            .into_iter()
            .map(|(proposal_ref, _)| proposal_ref)
            .collect())
    }

    /// [`Self::handle_proposals_at`], with each proposal's proposing
    /// client: a member, or the joiner of an external join proposal;
    /// `None` for an external sender (a server).
    pub fn handle_proposals_from(
        &mut self,
        crypto: &impl OpenMlsCrypto,
        proposals: Vec<MlsMessageIn>,
        now: Option<u64>,
    ) -> Result<Vec<(ProposalRef, Option<ClientIdentity>)>, UpdateRejection> {
        let state = self.policy_state().map_err(internal)?;
        let accepted = self.accepted_policy_state().map_err(internal)?;
        let mut queued = Vec::with_capacity(proposals.len());
        for message in proposals {
            let processed = self.process(crypto, message)?;
            let proposal = match processed.into_content() {
                ProcessedMessageContent::ProposalMessage(p) => *p,
                ProcessedMessageContent::ExternalJoinProposalMessage(p) => {
                    // A user who may join by itself may also ask to be
                    // added (room-policy §Adding: "added by an external
                    // proposal"); a member's commit then adds it (C29).
                    let joiner = external_joiner(&p)?;
                    let user = joiner.user.as_str();
                    let preauth_role = Claims::of(&joiner).first_role(&accepted.preauth);
                    if accepted.role_of(user) != 0
                        || accepted.self_join_role(preauth_role).is_none()
                    {
                        return Err(UpdateRejection::JoinNotAllowed {
                            user: user.to_owned(),
                        });
                    }
                    queued.push((*p, Some(joiner)));
                    continue;
                }
                _ => return Err(UpdateRejection::NotAProposal),
            };
            let proposer_id = self.proposer(proposal.sender(), None)?;
            let proposer = proposer_id.as_ref().map(|id| id.user.as_str().to_owned());
            // A user removed or banned by an accepted, not yet committed
            // change may only leave (-06 §5.3).
            if let Some(p) = proposer.as_deref()
                && !accepted.may_be_active(p)
                && !matches!(
                    proposal.proposal(),
                    Proposal::Remove(_) | Proposal::SelfRemove
                )
            {
                return Err(UpdateRejection::ProposerMayOnlyLeave { user: p.to_owned() });
            }
            let mut changes = ParticipantChanges::default();
            let context = ProposalContext {
                link: None,
                joiners: &[],
                now,
                outside_parent: None,
            };
            self.authorize_proposal(
                &state,
                &state,
                proposer_id.as_ref(),
                proposal.proposal(),
                &mut changes,
                &context,
            )
            .map_err(|violation| UpdateRejection::Proposal {
                refs: vec![proposal.proposal_reference_ref().clone()],
                violation,
            })?;
            queued.push((proposal, proposer_id));
        }
        let (group, storage) = self.group.parts_mut();
        let mut refs = Vec::with_capacity(queued.len());
        for (proposal, proposer) in queued {
            refs.push((proposal.proposal_reference_ref().clone(), proposer));
            group
                .add_proposal(storage, proposal)
                .map_err(|e| internal(format!("{e:?}")))?;
        }
        Ok(refs)
    }

    /// The hub's own Removes of every client of `users` that no queued
    /// Remove or SelfRemove already covers, signed with `hub` (the room's
    /// external sender, -06 §7.4) and queued like any accepted proposal:
    /// the next commit must include them (-06 §5.3). The hub uses them to
    /// make a parent-dependent room follow its parent (C21). Empty when
    /// there is nothing left to remove.
    pub fn propose_removals(
        &mut self,
        crypto: &impl OpenMlsCrypto,
        hub: &crate::keys::HubKey,
        users: &BTreeSet<String>,
    ) -> Result<Vec<MlsMessageIn>, UpdateRejection> {
        let own = hub.external_sender();
        let sender_index = self
            .public_group()
            .group_context()
            .extensions()
            .external_senders()
            .and_then(|senders| senders.iter().position(|s| *s == own))
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| internal("the hub is not an external sender of the room"))?;
        let queued = self
            .group
            .public_group()
            .queued_proposals(self.group.storage())
            .map_err(|e| internal(format!("{e:?}")))?;
        let covered: BTreeSet<LeafNodeIndex> = queued
            .iter()
            .filter_map(|(_, p)| match (p.proposal(), p.sender()) {
                (Proposal::Remove(r), _) => Some(r.removed()),
                (Proposal::SelfRemove, Sender::Member(leaf)) => Some(*leaf),
                _ => None,
            })
            .collect();
        let leaves: Vec<LeafNodeIndex> = self
            .members()
            .into_iter()
            .filter(|(leaf, id)| {
                !covered.contains(leaf)
                    && id.as_ref().is_ok_and(|id| users.contains(id.user.as_str()))
            })
            .map(|(leaf, _)| leaf)
            .collect();
        let mut messages = Vec::with_capacity(leaves.len());
        for leaf in leaves {
            let message = crate::external_proposal::external_remove(
                self.public_group().group_context(),
                sender_index,
                leaf,
                &hub.signer,
            )
            .map_err(internal)?;
            let proposal = match self.process(crypto, message.clone())?.into_content() {
                ProcessedMessageContent::ProposalMessage(p) => *p,
                _ => return Err(UpdateRejection::NotAProposal),
            };
            let (group, storage) = self.group.parts_mut();
            group
                .add_proposal(storage, proposal)
                .map_err(|e| internal(format!("{e:?}")))?;
            messages.push(message);
        }
        Ok(messages)
    }

    /// Handles a commit (-06 §5.3): exactly one commit is accepted per
    /// epoch; it must be valid MLS, authorized by the room policy for each
    /// of its proposals' proposers, leave the group consistent with the
    /// participant list, and include every Remove/SelfRemove the hub has
    /// queued in this epoch.
    pub fn handle_commit(
        &mut self,
        crypto: &impl OpenMlsCrypto,
        commit: MlsMessageIn,
    ) -> Result<AcceptedCommit, UpdateRejection> {
        self.handle_commit_at(crypto, commit, None)
    }

    /// [`Self::handle_commit`] at `now` (unix seconds), the time the hub
    /// accepts it: what depends on the time (joining by a join link that
    /// expires, creating such a link) is refused without it.
    pub fn handle_commit_at(
        &mut self,
        crypto: &impl OpenMlsCrypto,
        commit: MlsMessageIn,
        now: Option<u64>,
    ) -> Result<AcceptedCommit, UpdateRejection> {
        self.handle_commit_in(crypto, commit, now, None)
    }

    /// [`Self::handle_commit_at`] in a parent-dependent room whose parent
    /// (hosted here) is in the state `parent`: the room follows its
    /// parent's participants (room-policy §Base Room policy, C21).
    pub fn handle_commit_in(
        &mut self,
        crypto: &impl OpenMlsCrypto,
        commit: MlsMessageIn,
        now: Option<u64>,
        parent: Option<&RoomPolicyState>,
    ) -> Result<AcceptedCommit, UpdateRejection> {
        let before = self.policy_state().map_err(internal)?;
        let outside_parent = parent.map(|parent| base::outside_parent(&before, parent));
        let accepted = self.accepted_policy_state().map_err(internal)?;
        let processed = self.process(crypto, commit)?;
        let aad = processed.aad().to_vec();
        let committer =
            client_identity(processed.credential()).map_err(UpdateRejection::Committer)?;
        let sender = processed.sender().clone();
        let staged = match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => *staged,
            ProcessedMessageContent::UnresolvedAppDataCommit(unresolved) => {
                let updates = resolve_app_data_updates(
                    self.dictionary(),
                    unresolved.app_data_update_proposals(),
                )
                .map_err(|e| UpdateRejection::AppDataUpdate {
                    detail: e.to_string(),
                })?;
                self.group
                    .public_group()
                    .stage_app_data_commit(crypto, *unresolved, updates)
                    .map_err(|e| UpdateRejection::InvalidMls {
                        detail: e.to_string(),
                    })?
            }
            _ => return Err(UpdateRejection::NotACommit),
        };

        // The committer must be allowed to act in the room at all: a
        // removed or banned user's clients may not commit (-06 §5.3).
        let committer_user = committer.user.as_str().to_owned();
        match sender {
            Sender::Member(_) => {
                if !accepted.may_be_active(&committer_user) {
                    return Err(UpdateRejection::CommitterNotActive {
                        user: committer_user,
                    });
                }
            }
            // A user not in the participant list joining by external
            // commit must add itself in this commit (preauthorization or
            // open join, checked with its participant list update below).
            Sender::NewMemberCommit if before.role_of(&committer_user) == 0 => {}
            Sender::NewMemberCommit => {
                // A new client of an existing participant joining by
                // external commit (-06 §3.6, room-policy canAddOwnClient).
                if !(before.may_be_active(&committer_user)
                    && before.has(&committer_user, cap::CAN_ADD_OWN_CLIENT))
                {
                    return Err(UpdateRejection::JoinNotAllowed {
                        user: committer_user,
                    });
                }
            }
            _ => return Err(UpdateRejection::CommitSender),
        }
        // A user not in the participant list may join with a join link
        // the commit names in its authenticated data (C27).
        let link = if sender == Sender::NewMemberCommit && before.role_of(&committer_user) == 0 {
            join_code_in(&aad)
                .map_err(|detail| UpdateRejection::JoinCodeAad { detail })?
                .map(|code| {
                    join_links::grant(&before, &code, now).map_err(|refusal| {
                        UpdateRejection::JoinCode {
                            user: committer_user.clone(),
                            refusal,
                        }
                    })
                })
                .transpose()?
        } else {
            None
        };

        // Every Remove/SelfRemove queued at the hub this epoch must be
        // committed now (-06 §5.3: leaving users' proposals are cached and
        // the next commit must include them).
        let included: BTreeSet<&ProposalRef> = staged
            .queued_proposals()
            .map(|p| p.proposal_reference_ref())
            .collect();
        let missing: Vec<ProposalRef> = self
            .group
            .public_group()
            .queued_proposals(self.group.storage())
            .map_err(|e| internal(format!("{e:?}")))?
            .into_iter()
            .filter(|(_, p)| matches!(p.proposal(), Proposal::Remove(_) | Proposal::SelfRemove))
            .map(|(r, _)| r)
            .filter(|r| !included.contains(r))
            .collect();
        if !missing.is_empty() {
            return Err(UpdateRejection::MissingQueuedRemovals { refs: missing });
        }

        // Authorize every proposal on its proposer's role. Participant-list
        // updates are all built against this epoch's list (-06 §7.5, see
        // ParticipantListData::apply_all), so each is checked against it.
        let after = RoomPolicyState::from_dictionary(
            staged
                .group_context()
                .extensions()
                .app_data_dictionary()
                .map(|e| e.dictionary()),
        )
        .map_err(UpdateRejection::StateAfter)?;
        let mut changes = ParticipantChanges::default();
        let mut participant_list_changed = false;
        let mut roles_changed = false;
        let mut preauth_changed = false;
        let mut metadata_updates = 0;
        let mut join_link_updates = 0;
        // Users whose external join proposals (Adds of their own clients)
        // this commit includes, with their preauthorized role: a member's
        // commit may add them with a role they may join as (C29).
        let mut joiners: Vec<(String, Option<u32>)> = Vec::new();
        for queued in staged.queued_proposals() {
            if *queued.sender() == Sender::NewMemberProposal {
                let joiner = external_joiner(queued)?;
                let preauth_role = Claims::of(&joiner).first_role(&before.preauth);
                joiners.push((joiner.user.as_str().to_owned(), preauth_role));
            }
        }
        for queued in staged.queued_proposals() {
            if *queued.sender() == Sender::NewMemberProposal {
                // Its Add is authorized with the added clients below.
                continue;
            }
            let proposer = self.proposer(queued.sender(), Some(&committer))?;
            if let Proposal::AppDataUpdate(update) = queued.proposal() {
                participant_list_changed |= update.component_id() == PARTICIPANT_LIST;
                roles_changed |= update.component_id() == ROLES_LIST;
                preauth_changed |= update.component_id() == PREAUTH_LIST;
                metadata_updates += usize::from(update.component_id() == ROOM_METADATA);
                join_link_updates += usize::from(update.component_id() == JOIN_LINKS);
            }
            // The link grants only the joiner's own proposals.
            let joiner = proposer
                .as_ref()
                .is_some_and(|p| p.user.as_str() == committer_user);
            let context = ProposalContext {
                link: link.as_ref().filter(|_| joiner),
                joiners: &joiners,
                now,
                outside_parent: outside_parent.as_ref(),
            };
            self.authorize_proposal(
                &before,
                &after,
                proposer.as_ref(),
                queued.proposal(),
                &mut changes,
                &context,
            )
            .map_err(|violation| UpdateRejection::Proposal {
                refs: vec![queued.proposal_reference_ref().clone()],
                violation,
            })?;
        }
        if participant_list_changed && roles_changed {
            // room-policy §Role-Based Access Control.
            return Err(UpdateRejection::RolesWithParticipantList);
        }
        if roles_changed {
            after
                .roles
                .validate()
                .map_err(|e| UpdateRejection::StateAfter(RoomError::InvalidGroup(e.to_string())))?;
        }
        if preauth_changed && changes.changed.values().any(|(_, new)| *new != 0) {
            return Err(UpdateRejection::PreauthWithParticipantChanges);
        }
        if metadata_updates > 1 {
            return Err(UpdateRejection::SeveralMetadataUpdates);
        }
        if join_link_updates > 1 {
            // Each update's indices are positions in this epoch's list.
            return Err(UpdateRejection::RoleConstraint(
                PolicyViolation::JoinLinks {
                    proposer: committer_user,
                    reason: "only one join_links update per commit".into(),
                },
            ));
        }
        join_links::check_after(&after, link.as_ref()).map_err(UpdateRejection::RoleConstraint)?;
        if sender == Sender::NewMemberCommit
            && before.role_of(&committer_user) == 0
            && !changes.added(&committer_user)
        {
            return Err(UpdateRejection::JoinerNotListed {
                user: committer_user,
            });
        }
        // Clients added by Add proposals: authorized by their user's
        // addition in this commit, or by canAddOwnClient for one's own user.
        let mut added = Vec::new();
        for add in staged.add_proposals() {
            let key_package = add.add_proposal().key_package();
            let identity = client_identity(key_package.leaf_node().credential())
                .map_err(UpdateRejection::AddedClient)?;
            let user = identity.user.as_str().to_owned();
            let proposer = match add.sender() {
                // An external join proposal: its user must be added with a
                // role it may join as (checked with the list update).
                Sender::NewMemberProposal => Some(user.clone()),
                sender => self
                    .proposer(sender, Some(&committer))?
                    .map(|id| id.user.as_str().to_owned()),
            };
            let allowed = changes.added(&user)
                || proposer.as_deref() == Some(user.as_str())
                    && before.has(&user, cap::CAN_ADD_OWN_CLIENT)
                || proposer
                    .as_deref()
                    .is_some_and(|p| before.has(p, cap::CAN_ADD_PARTICIPANT));
            if !allowed {
                return Err(UpdateRejection::AddNotAuthorized { user });
            }
            let key_package_ref = key_package
                .hash_ref(crypto)
                .map_err(|e| internal(format!("KeyPackageRef: {e:?}")))?;
            added.push(AddedClient {
                key_package_ref,
                device: identity.device.as_str().to_owned(),
                user,
            });
        }

        // The group after the commit must match the new participant list:
        // old members minus removed leaves, plus added clients, plus the
        // joiner of an external commit.
        let mut removed_leaves: BTreeSet<LeafNodeIndex> = staged
            .remove_proposals()
            .map(|r| r.remove_proposal().removed())
            .collect();
        // A SelfRemove removes its sender's leaf (mls-extensions §3.6).
        removed_leaves.extend(staged.queued_proposals().filter_map(|p| {
            match (p.proposal(), p.sender()) {
                (Proposal::SelfRemove, Sender::Member(leaf)) => Some(*leaf),
                _ => None,
            }
        }));
        let mut removed = Vec::new();
        let mut users_after: HashMap<String, usize> = HashMap::new();
        for (leaf, identity) in self.members() {
            let identity = identity.map_err(|error| UpdateRejection::MemberCredential {
                leaf: leaf.u32(),
                error,
            })?;
            if removed_leaves.contains(&leaf) {
                removed.push(identity.device.as_str().to_owned());
            } else {
                *users_after
                    .entry(identity.user.as_str().to_owned())
                    .or_default() += 1;
            }
        }
        for client in &added {
            *users_after.entry(client.user.clone()).or_default() += 1;
        }
        if sender == Sender::NewMemberCommit {
            *users_after.entry(committer_user.clone()).or_default() += 1;
        }
        let roles_after = after.roles_by_user();
        if let Some(user) = users_after
            .keys()
            .find(|u| !after.role_may_be_active(RoomPolicyState::role_in(&roles_after, u)))
        {
            return Err(UpdateRejection::InactiveWithClients { user: user.clone() });
        }
        let users_before = self.active_users();
        check_role_constraints(&before, &after, &users_before, &users_after)
            .map_err(UpdateRejection::RoleConstraint)?;
        base::check_after_commit(&before, &after, &users_before, &users_after)
            .map_err(UpdateRejection::RoleConstraint)?;
        if let Some(parent) = parent {
            base::check_parent_after_commit(&before, &after, parent, &users_after)
                .map_err(UpdateRejection::RoleConstraint)?;
        }

        let new_epoch = staged.group_context().epoch().as_u64();
        self.group.merge(staged).map_err(internal)?;
        Ok(AcceptedCommit {
            new_epoch,
            committer: committer_user,
            added,
            removed,
        })
    }

    /// Checks an application message's metadata before fanout (-06 §5.4):
    /// the epoch must be current and the asserted sender an active
    /// participant allowed to send messages.
    pub fn authorize_message(
        &self,
        message_epoch: u64,
        sending_user: &str,
    ) -> Result<(), SubmitRejection> {
        let current = self.epoch();
        if message_epoch < current {
            return Err(SubmitRejection::EpochTooOld {
                current_epoch: current,
            });
        }
        if message_epoch > current {
            return Err(SubmitRejection::EpochInFuture {
                epoch: message_epoch,
                current_epoch: current,
            });
        }
        let state = self
            .accepted_policy_state()
            .map_err(SubmitRejection::RoomState)?;
        if !state.may_be_active(sending_user) || !self.active_users().contains_key(sending_user) {
            return Err(SubmitRejection::NotActive {
                user: sending_user.to_owned(),
            });
        }
        if !state.has(sending_user, cap::CAN_SEND_MESSAGE) {
            return Err(SubmitRejection::MayNotSend {
                user: sending_user.to_owned(),
            });
        }
        Ok(())
    }

    fn process(
        &self,
        crypto: &impl OpenMlsCrypto,
        message: MlsMessageIn,
    ) -> Result<ProcessedMessage, UpdateRejection> {
        let protocol = message
            .try_into_protocol_message()
            .map_err(|_| UpdateRejection::NotHandshake)?;
        let ProtocolMessage::PublicMessage(_) = &protocol else {
            // SemiPrivateMessage is not supported yet; a PrivateMessage
            // handshake cannot be checked by the hub at all.
            return Err(UpdateRejection::NotPublicMessage);
        };
        if protocol.group_id() != self.group_id() {
            return Err(UpdateRejection::OtherGroup);
        }
        let current = self.epoch();
        if protocol.epoch().as_u64() != current {
            return Err(UpdateRejection::WrongEpoch {
                current_epoch: current,
            });
        }
        self.group
            .public_group()
            .process_message(crypto, protocol)
            .map_err(|e| UpdateRejection::InvalidMls {
                detail: e.to_string(),
            })
    }

    /// The user who proposed something: a member's credential, the
    /// committer for inline proposals of an external commit, `None` for an
    /// external sender (a server).
    fn proposer(
        &self,
        sender: &Sender,
        committer: Option<&ClientIdentity>,
    ) -> Result<Option<ClientIdentity>, UpdateRejection> {
        match sender {
            Sender::Member(index) => {
                let leaf = self.group.public_group().leaf(*index).ok_or_else(|| {
                    UpdateRejection::UnknownProposer {
                        detail: "proposal from an unknown leaf".into(),
                    }
                })?;
                let id = client_identity(leaf.credential()).map_err(|e| {
                    UpdateRejection::UnknownProposer {
                        detail: e.to_string(),
                    }
                })?;
                Ok(Some(id))
            }
            Sender::NewMemberCommit => Ok(committer.cloned()),
            Sender::External(_) => Ok(None),
            Sender::NewMemberProposal => Err(UpdateRejection::ExternalJoinProposal),
        }
    }

    /// Authorizes one proposal by `proposer` (None: an external sender).
    /// `state` is the room state the proposal applies to, `after` the
    /// state the whole commit produces.
    fn authorize_proposal(
        &self,
        state: &RoomPolicyState,
        after: &RoomPolicyState,
        proposer: Option<&ClientIdentity>,
        proposal: &Proposal,
        changes: &mut ParticipantChanges,
        context: &ProposalContext<'_>,
    ) -> Result<(), PolicyViolation> {
        let Some(proposer_id) = proposer else {
            // Servers (hub, followers) may only remove clients (DESIGN:
            // external senders send Add/Remove; -06 §7.4).
            return match proposal {
                Proposal::Remove(_) => Ok(()),
                _ => Err(PolicyViolation::ExternalSenderProposal),
            };
        };
        let proposer = proposer_id.user.as_str();
        let active = state.may_be_active(proposer);
        // Someone not in the participant list may only add itself (a
        // self-join by external commit, room-policy §Adding) and use up
        // the join link it joins with (C27).
        let self_join = state.role_of(proposer) == 0
            && match proposal {
                Proposal::ExternalInit(_) => true,
                Proposal::AppDataUpdate(u) => {
                    u.component_id() == PARTICIPANT_LIST
                        || (u.component_id() == JOIN_LINKS && context.link.is_some())
                }
                _ => false,
            };
        match proposal {
            // Leaving is always possible, even for removed or banned users
            // (-06 §5.3 keeps Remove/SelfRemove open to them).
            Proposal::SelfRemove => Ok(()),
            Proposal::Remove(remove) => {
                let target = self
                    .group
                    .public_group()
                    .leaf(remove.removed())
                    .ok_or(PolicyViolation::RemoveOfEmptyLeaf)?;
                let target_user = client_identity(target.credential())
                    .map_err(PolicyViolation::Credential)?
                    .user;
                let target_user = target_user.as_str();
                if target_user == proposer {
                    return Ok(());
                }
                if !active {
                    return Err(PolicyViolation::RemoveOnlyOwnClients {
                        proposer: proposer.to_owned(),
                    });
                }
                if changes.removed_or_banned(target_user, after)
                    || state.has(proposer, cap::CAN_KICK)
                {
                    Ok(())
                } else {
                    Err(PolicyViolation::RemoveClientsOf {
                        proposer: proposer.to_owned(),
                        target: target_user.to_owned(),
                    })
                }
            }
            _ if !active && !self_join => Err(PolicyViolation::OnlyLeave {
                proposer: proposer.to_owned(),
            }),
            Proposal::Add(_)
            | Proposal::Update(_)
            | Proposal::ExternalInit(_)
            | Proposal::PreSharedKey(_) => {
                // Adds are authorized per added user once the whole commit
                // is known (handle_commit); the rest only touch MLS state.
                Ok(())
            }
            Proposal::AppDataUpdate(update) => match (update.component_id(), update.operation()) {
                (PARTICIPANT_LIST, AppDataUpdateOperation::Update(bytes)) => {
                    let update: ParticipantListUpdate = decode_component(bytes.as_slice())
                        .map_err(|e| PolicyViolation::MalformedComponent {
                            component: PARTICIPANT_LIST,
                            detail: e.to_string(),
                        })?;
                    state.participants.apply(&update).map_err(|e| {
                        PolicyViolation::ParticipantList {
                            detail: e.to_string(),
                        }
                    })?;
                    let grants = SelfGrants {
                        preauth_role: Claims::of(proposer_id).first_role(&state.preauth),
                        link_role: context.link.map(|l| l.role),
                        external_joiners: context.joiners,
                        outside_parent: context.outside_parent,
                    };
                    authorize_participant_update(state, proposer, grants, &update, changes)
                }
                (JOIN_LINKS, AppDataUpdateOperation::Update(bytes)) => {
                    let update: JoinLinksUpdate =
                        decode_component(bytes.as_slice()).map_err(|e| {
                            PolicyViolation::MalformedComponent {
                                component: JOIN_LINKS,
                                detail: e.to_string(),
                            }
                        })?;
                    join_links::authorize_update(
                        state,
                        proposer,
                        &update,
                        context.link,
                        context.now,
                    )
                }
                (JOIN_LINKS, AppDataUpdateOperation::Remove) => Err(PolicyViolation::JoinLinks {
                    proposer: proposer.to_owned(),
                    reason: "the list stays; links are removed by index".into(),
                }),
                (ROOM_METADATA, operation) => {
                    let new = match operation {
                        AppDataUpdateOperation::Update(bytes) => {
                            Some(decode_component::<RoomMetaData>(bytes.as_slice()).map_err(
                                |e| PolicyViolation::MalformedComponent {
                                    component: ROOM_METADATA,
                                    detail: e.to_string(),
                                },
                            )?)
                        }
                        AppDataUpdateOperation::Remove => None,
                    };
                    for capability in metadata_capabilities(state.metadata.as_ref(), new.as_ref())?
                    {
                        if !state.has(proposer, capability) {
                            return Err(PolicyViolation::MetadataField {
                                proposer: proposer.to_owned(),
                                field: metadata_field(capability),
                                capability: capability_name(capability),
                            });
                        }
                    }
                    Ok(())
                }
                // Franking added to a room created without it (-06 §5.4.1):
                // the agent once, and frank_aad among the Safe AAD
                // components; the engine checks the agent is this hub.
                (FRANKING_SIGNATURE_KEY, operation) => {
                    require(
                        state,
                        proposer,
                        cap::CAN_CHANGE_OTHER_POLICY_ATTRIBUTE,
                        FRANKING_SIGNATURE_KEY,
                    )?;
                    let had_agent = self.franking_agent().ok().flatten().is_some();
                    match operation {
                        AppDataUpdateOperation::Update(bytes) if !had_agent => {
                            decode_component::<FrankingAgentData>(bytes.as_slice())
                                .map(|_| ())
                                .map_err(|e| PolicyViolation::MalformedComponent {
                                    component: FRANKING_SIGNATURE_KEY,
                                    detail: e.to_string(),
                                })
                        }
                        _ => Err(PolicyViolation::FrankingAgentChange),
                    }
                }
                (id, operation) if id == ComponentId::from(ComponentType::SafeAad) => {
                    require(state, proposer, cap::CAN_CHANGE_OTHER_POLICY_ATTRIBUTE, id)?;
                    let AppDataUpdateOperation::Update(bytes) = operation else {
                        return Err(PolicyViolation::SafeAadChange);
                    };
                    let new = decode_component::<ComponentsList>(bytes.as_slice())
                        .map_err(|_| PolicyViolation::SafeAadChange)?;
                    let old = self
                        .dictionary()
                        .and_then(|d| d.get(&id))
                        .and_then(|b| decode_component::<ComponentsList>(b).ok());
                    let old: Vec<ComponentId> =
                        old.map(ComponentsList::into_ids).unwrap_or_default();
                    let mut expected = old.clone();
                    if !expected.contains(&FRANK_AAD) {
                        expected.push(FRANK_AAD);
                    }
                    let mut got = new.into_ids();
                    got.sort_unstable();
                    expected.sort_unstable();
                    (got == expected)
                        .then_some(())
                        .ok_or(PolicyViolation::SafeAadChange)
                }
                (ROLES_LIST, _) => state
                    .has(proposer, cap::CAN_CHANGE_ROLE_DEFINITIONS)
                    .then_some(())
                    .ok_or_else(|| PolicyViolation::RoleDefinitions {
                        proposer: proposer.to_owned(),
                    }),
                (id, operation) => {
                    let capability = capability_for(id)
                        .ok_or(PolicyViolation::ComponentNotAllowed { component: id })?;
                    require(state, proposer, capability, id)?;
                    match operation {
                        AppDataUpdateOperation::Update(bytes) => {
                            check_replacement(id, bytes.as_slice()).map_err(|detail| {
                                PolicyViolation::MalformedComponent {
                                    component: id,
                                    detail,
                                }
                            })
                        }
                        AppDataUpdateOperation::Remove => Ok(()),
                    }
                }
            },
            // -06 §7.4: the only GroupContext change a MIMI room allows is
            // to its external_senders; what the new list may hold is
            // checked on the commit's result (engine::update).
            Proposal::GroupContextExtensions(proposal) => check_group_context_extensions(
                self.group.public_group().group_context().extensions(),
                proposal.extensions(),
            )
            .map_err(PolicyViolation::GroupContextExtensions),
            Proposal::ReInit(_) => state
                .has(proposer, cap::CAN_SEND_MLS_REINIT_PROPOSAL)
                .then_some(())
                .ok_or_else(|| PolicyViolation::ReInit {
                    proposer: proposer.to_owned(),
                }),
            _ => Err(PolicyViolation::ProposalType),
        }
    }

    /// Every member's user must be allowed to be active under `state`.
    fn check_members_consistent(&self, state: &RoomPolicyState) -> Result<(), RoomError> {
        // Used at creation; commits check the would-be membership instead.
        let roles = state.roles_by_user();
        for (_, identity) in self.members() {
            let identity = identity?;
            let user = identity.user.as_str();
            if !state.role_may_be_active(RoomPolicyState::role_in(&roles, user)) {
                return Err(RoomError::InactiveMember {
                    user: user.to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// The client an external join proposal (an Add of its own KeyPackage,
/// RFC 9420 §12.1.8 `new_member_proposal`) asks to add.
fn external_joiner(proposal: &QueuedProposal) -> Result<ClientIdentity, UpdateRejection> {
    match proposal.proposal() {
        Proposal::Add(add) => client_identity(add.key_package().leaf_node().credential())
            .map_err(UpdateRejection::AddedClient),
        _ => Err(UpdateRejection::ExternalJoinProposal),
    }
}

/// What authorizing one proposal may depend on beyond the room state.
struct ProposalContext<'a> {
    /// The join link the proposer joins with (an external commit's
    /// joiner, C27).
    link: Option<&'a LinkGrant>,
    /// Users the commit adds by their external join proposals, with their
    /// preauthorized role (C29).
    joiners: &'a [(String, Option<u32>)],
    /// The hub's time, unix seconds.
    now: Option<u64>,
    /// In a parent-dependent room, the participants its parent no longer
    /// has (C21).
    outside_parent: Option<&'a BTreeSet<String>>,
}

/// The join code an external commit names: the `join_links` item of a
/// Safe AAD in its authenticated data (mls-extensions §4.9; C27). When
/// the room requires Safe AAD, the joiner's stack puts an empty Safe AAD
/// prefix first (it cannot know which items the room expects), so the
/// item may be in the first or the second Safe AAD. Authenticated data
/// that holds no Safe AAD names no code.
fn join_code_in(aad: &[u8]) -> Result<Option<Vec<u8>>, String> {
    use tls_codec::DeserializeBytes as _;
    let mut rest = aad;
    for _ in 0..2 {
        if rest.is_empty() {
            break;
        }
        let Ok((safe_aad, after)) = openmls::framing::SafeAad::tls_deserialize_bytes(rest) else {
            break;
        };
        if let Some(item) = safe_aad.get(JOIN_LINKS) {
            return decode_component::<JoinLink>(item)
                .map(|link| Some(link.join_link.as_slice().to_vec()))
                .map_err(|e| format!("join_links item: {e}"));
        }
        rest = after;
    }
    Ok(None)
}

/// `proposer` must hold `capability` to update `component`.
fn require(
    state: &RoomPolicyState,
    proposer: &str,
    capability: CapabilityType,
    component: ComponentId,
) -> Result<(), PolicyViolation> {
    if state.has(proposer, capability) {
        return Ok(());
    }
    Err(PolicyViolation::ComponentCapability {
        proposer: proposer.to_owned(),
        component,
        capability: capability_name(capability),
    })
}

/// The room metadata field a capability of room-policy §Adjust metadata
/// covers.
fn metadata_field(capability: u16) -> &'static str {
    match capability {
        cap::CAN_CHANGE_ROOM_NAME => "the room name",
        cap::CAN_CHANGE_ROOM_DESCRIPTION => "the room description",
        cap::CAN_CHANGE_ROOM_AVATAR => "the room avatar",
        cap::CAN_CHANGE_ROOM_SUBJECT => "the room subject",
        _ => "the room mood",
    }
}

fn internal(reason: impl ToString) -> UpdateRejection {
    UpdateRejection::Internal(reason.to_string())
}
