//! `update` (-06 §5.3): a commit, or a set of proposals.

use std::collections::BTreeSet;

use mimi_protocol::MimiUri;
use mimi_protocol::msgs::fanout::encode_fanout_batch;
use mimi_protocol::msgs::{
    FanoutBody, FanoutMessage, GroupInfoOption, HandshakeBody, HandshakeBundle, PendingProposal,
    RatchetTreeOption, TlsString, UpdateRequest, UpdateResult, UpdateRoomResponse,
};
use openmls::prelude::{
    MlsMessageIn, MlsMessageOut, ProtocolMessage, ProtocolVersion, Sender, Welcome,
};
use tls_codec::{Deserialize as _, Serialize as _};

use super::{Fanout, HubEngine, KeyPackageRoute, Requester, timestamp};
use crate::RoomError;
use crate::identity::{ClientIdentity, client_identity};
use crate::policy::RoomPolicyState;
use crate::rejection::{UpdateCode, UpdateRejection};
use crate::stored::StoredRoom;
use crate::{AcceptedCommit, HubRoom};

/// What the hub decided about an update request.
#[derive(Debug)]
pub enum UpdateDecision {
    Rejected(UpdateRejection),
    /// A parent-dependent room whose parent dropped participants: the
    /// hub's Removes of their clients must be queued first (C21). Store
    /// them, then decide the request again on the new state, which the
    /// commit must then include (-06 §5.3).
    HubProposalsFirst(HubProposals),
    Accepted(AcceptedUpdate),
}

/// An accepted update: what the hub stores and sends.
#[derive(Debug)]
pub struct AcceptedUpdate {
    /// Whether it was a commit (else: proposals, the epoch unchanged).
    pub commit: bool,
    pub new_epoch: u64,
    /// The room's new stored state.
    pub new_state: Vec<u8>,
    /// The room `new_state` decodes to, for the next decision
    /// ([`HubEngine::update_room`]) without decoding it again.
    pub room: Box<StoredRoom>,
    /// The room log entry: the accepted FanoutMessage(s), encoded.
    pub event: Vec<u8>,
    /// In order: the commit (or proposals) to every provider with
    /// members before or after it, then a Welcome to the providers of
    /// the added clients (-06 §5.5).
    pub fanout: Vec<Fanout>,
    /// Where the Welcome for each added client's KeyPackage goes.
    pub routes: Vec<KeyPackageRoute>,
    pub response: UpdateRoomResponse,
    /// Whether a commit dropped a participant (removed from the list
    /// or banned): the room's parent-dependent rooms must follow
    /// (room-policy §Base Room policy, C21).
    pub participants_dropped: bool,
}

/// An `UpdateRoomResponse` with its description.
pub fn update_response(result: UpdateResult, description: impl Into<String>) -> UpdateRoomResponse {
    UpdateRoomResponse {
        error_description: TlsString(description.into()),
        result,
    }
}

/// `wrongEpoch`: the room moved on (also when another commit won the
/// compare-and-set, -06 §5.3: one commit per epoch).
pub fn wrong_epoch_response(current_epoch: u64) -> UpdateRoomResponse {
    update_response(
        UpdateResult::WrongEpoch { current_epoch },
        format!("the room is at epoch {current_epoch}"),
    )
}

impl UpdateRejection {
    /// The `UpdateRoomResponse` for this refusal, 1:1 on its code.
    pub fn response(&self) -> UpdateRoomResponse {
        let description = self.to_string();
        match (self.code(), self) {
            (_, Self::WrongEpoch { current_epoch }) => wrong_epoch_response(*current_epoch),
            (UpdateCode::InvalidProposal, _) => update_response(
                UpdateResult::InvalidProposal {
                    invalid_proposals: self.invalid_proposals(),
                },
                description,
            ),
            _ => update_response(UpdateResult::NotAllowed, description),
        }
    }
}

impl HubEngine {
    /// Decides an update request on the room stored as `state`, accepted
    /// (if it is) at `accepted_at_ms`. `Err` only when the stored state
    /// itself is broken.
    pub fn update(
        &self,
        state: &[u8],
        requester: &Requester,
        request: &UpdateRequest,
        accepted_at_ms: i64,
    ) -> Result<UpdateDecision, RoomError> {
        self.update_in(state, None, requester, request, accepted_at_ms)
    }

    /// [`Self::update`] on a parent-dependent room whose parent, hosted
    /// here too, is stored as `parent`: commits must keep the room within
    /// its parent's participants, and any member may remove whoever the
    /// parent dropped (room-policy §Base Room policy, C21).
    pub fn update_in(
        &self,
        state: &[u8],
        parent: Option<&[u8]>,
        requester: &Requester,
        request: &UpdateRequest,
        accepted_at_ms: i64,
    ) -> Result<UpdateDecision, RoomError> {
        self.update_room(
            StoredRoom::decode(state)?,
            parent,
            requester,
            request,
            accepted_at_ms,
        )
    }

    /// [`Self::update_in`] on a room already decoded: the one the hub's
    /// last accepted update of the room left ([`AcceptedUpdate::room`]),
    /// when the stored state is still the one it wrote. Restoring a
    /// 1000-member PublicGroup is about half of a commit's cost.
    pub fn update_room(
        &self,
        mut room: StoredRoom,
        parent: Option<&[u8]>,
        requester: &Requester,
        request: &UpdateRequest,
        accepted_at_ms: i64,
    ) -> Result<UpdateDecision, RoomError> {
        let parent = parent
            .map(|parent| StoredRoom::decode(parent)?.hub.policy_state())
            .transpose()?;
        if let Some(parent) = &parent
            && let Some(proposals) = self.removals_outside(&mut room, parent, accepted_at_ms)?
        {
            return Ok(UpdateDecision::HubProposalsFirst(proposals));
        }
        let bundle = &request.bundle;
        let decided = match &bundle.body {
            HandshakeBody::Commit { .. } => {
                self.commit(room, parent.as_ref(), requester, bundle, accepted_at_ms)
            }
            HandshakeBody::Proposal { more_proposals } => {
                self.proposals(room, requester, bundle, more_proposals, accepted_at_ms)
            }
        };
        Ok(decided.unwrap_or_else(UpdateDecision::Rejected))
    }

    /// Validates and authorizes a commit (-06 §5.3) and builds its fanout.
    ///
    /// Commits must carry the new epoch's GroupInfo in full: the hub has
    /// no group secrets, so this is what it serves to joiners (-06 §5.6).
    fn commit(
        &self,
        mut room: StoredRoom,
        parent: Option<&RoomPolicyState>,
        requester: &Requester,
        bundle: &HandshakeBundle,
        accepted_at: i64,
    ) -> Result<UpdateDecision, UpdateRejection> {
        let HandshakeBody::Commit {
            welcome,
            group_info_option,
            ratchet_tree_option,
        } = &bundle.body
        else {
            return Err(UpdateRejection::NotACommit);
        };
        let domains_before = room.hub.member_domains();
        let policy_before = room.hub.policy_state().map_err(internal)?;
        let agent_before = room
            .hub
            .franking_agent()
            .map_err(UpdateRejection::StateAfter)?;
        let accepted = room.hub.handle_commit_in(
            self.crypto(),
            bundle.proposal_or_commit.clone(),
            unix_seconds(accepted_at),
            parent,
        )?;
        // -06 §7.4, on the state the commit produced: the hub still
        // listed, followers only while they have participants.
        self.check_external_senders(&room.hub)
            .map_err(UpdateRejection::ExternalSenders)?;
        // A franking agent added later must be this hub's franking key for
        // the room's suite: only the hub franks (-06 §5.4.1; C22).
        let agent_after = room
            .hub
            .franking_agent()
            .map_err(UpdateRejection::StateAfter)?;
        if agent_after != agent_before
            && agent_after != self.franking_agent(room.hub.public_group().ciphersuite())
        {
            return Err(UpdateRejection::FrankingAgentNotHub);
        }
        let committer = MimiUri::parse(&accepted.committer)
            .map_err(|e| UpdateRejection::Internal(e.to_string()))?;
        if !requester.speaks_for_user(&committer) {
            return Err(UpdateRejection::CommitterNotRequesters {
                committer: committer.to_string(),
            });
        }
        let GroupInfoOption::Full(group_info) = group_info_option else {
            return Err(UpdateRejection::GroupInfoMissing);
        };
        if group_info.group_context() != room.hub.public_group().group_context() {
            return Err(UpdateRejection::GroupInfoMismatch);
        }
        if !accepted.added.is_empty() && welcome.is_none() {
            return Err(UpdateRejection::WelcomeMissing);
        }
        // The Welcome is routed by KeyPackageRef (-06 §5.5): it may only
        // name clients this commit adds.
        if welcome
            .as_ref()
            .is_some_and(|w| welcomes_strangers(w, &accepted))
        {
            return Err(UpdateRejection::WelcomeForStranger);
        }

        let ts = timestamp(accepted_at);
        let commit = FanoutMessage {
            timestamp: ts,
            message: bundle.proposal_or_commit.clone(),
            body: FanoutBody::Commit {
                external_proposals: Vec::new(),
            },
        };
        // Removed clients' providers still get the commit, so they learn
        // of the removal (-06 §5.5).
        let mut destinations = domains_before;
        destinations.extend(room.hub.member_domains());
        let mut fanout = vec![Fanout {
            destinations,
            payload: encode(&commit)?,
        }];
        let mut messages = vec![commit];
        let mut routes = Vec::new();
        if let Some(welcome) = welcome {
            let tree = match ratchet_tree_option {
                RatchetTreeOption::Full(tree) => tree.clone(),
                _ => room.hub.public_group().export_ratchet_tree().into(),
            };
            let message = FanoutMessage {
                timestamp: ts,
                message: welcome_message(welcome)?,
                body: FanoutBody::Welcome {
                    ratchet_tree_option: RatchetTreeOption::Full(tree),
                },
            };
            let mut welcome_domains = BTreeSet::new();
            for added in &accepted.added {
                let device = MimiUri::parse(&added.device)
                    .map_err(|e| UpdateRejection::Internal(e.to_string()))?;
                let provider = device.domain().to_ascii_lowercase();
                routes.push(KeyPackageRoute {
                    key_package_ref: added.key_package_ref.as_slice().to_vec(),
                    provider: provider.clone(),
                });
                welcome_domains.insert(provider);
            }
            fanout.push(Fanout {
                destinations: welcome_domains,
                payload: encode(&message)?,
            });
            messages.push(message);
        }

        let policy_after = room
            .hub
            .policy_state()
            .map_err(UpdateRejection::StateAfter)?;
        let participants_dropped =
            !crate::policy::base::outside_parent(&policy_before, &policy_after).is_empty();
        room.latest_group_info = Some(group_info.clone());
        room.pending_proposals = Vec::new();
        Ok(UpdateDecision::Accepted(AcceptedUpdate {
            participants_dropped,
            commit: true,
            new_epoch: accepted.new_epoch,
            new_state: room.encode().map_err(internal)?,
            room: Box::new(room),
            event: encode_fanout_batch(&messages).map_err(internal)?,
            fanout,
            routes,
            response: success(accepted_at),
        }))
    }

    /// Validates, authorizes and queues proposals (-06 §5.3): the room
    /// state changes (the queue), the epoch does not; they go to every
    /// member provider as one FanoutMessage (-06 §5.5).
    fn proposals(
        &self,
        mut room: StoredRoom,
        requester: &Requester,
        bundle: &HandshakeBundle,
        more_proposals: &[MlsMessageIn],
        accepted_at: i64,
    ) -> Result<UpdateDecision, UpdateRejection> {
        let mut proposals = Vec::with_capacity(1 + more_proposals.len());
        proposals.push(bundle.proposal_or_commit.clone());
        proposals.extend(more_proposals.iter().cloned());
        let proposers = room.hub.handle_proposals_from(
            self.crypto(),
            proposals.clone(),
            unix_seconds(accepted_at),
        )?;
        for (proposal, (_, client)) in proposals.iter().zip(proposers) {
            let proposer = match client {
                Some(client) => Proposer::Client(client),
                None => proposer(&room.hub, proposal)?,
            };
            let allowed = match &proposer {
                Proposer::Client(id) => requester.speaks_for_device(&id.device),
                Proposer::Provider(domain) => {
                    matches!(requester, Requester::Provider(d) if d.eq_ignore_ascii_case(domain))
                }
            };
            if !allowed {
                return Err(UpdateRejection::ProposerNotRequesters {
                    sender: proposer.to_string(),
                });
            }
        }

        let ts = timestamp(accepted_at);
        let epoch = room.hub.epoch();
        room.pending_proposals
            .extend(proposals.into_iter().map(|proposal| PendingProposal {
                proposal,
                hub_accepted_time: ts,
            }));
        let message = FanoutMessage {
            timestamp: ts,
            message: bundle.proposal_or_commit.clone(),
            body: FanoutBody::Proposal {
                more_proposals: more_proposals.to_vec(),
            },
        };
        let payload = encode(&message)?;
        let destinations = room.hub.member_domains();
        Ok(UpdateDecision::Accepted(AcceptedUpdate {
            commit: false,
            new_epoch: epoch,
            new_state: room.encode().map_err(internal)?,
            room: Box::new(room),
            event: payload.clone(),
            fanout: vec![Fanout {
                destinations,
                payload,
            }],
            routes: Vec::new(),
            response: success(accepted_at),
            participants_dropped: false,
        }))
    }
}

/// The hub's own proposals, queued in a room: stored and fanned out like
/// proposals a member sent (-06 §5.3, §5.5).
#[derive(Debug)]
pub struct HubProposals {
    /// The room's epoch (proposals do not change it).
    pub epoch: u64,
    pub new_state: Vec<u8>,
    /// The room log entry: one FanoutMessage of the proposals.
    pub event: Vec<u8>,
    pub fanout: Fanout,
    /// How many proposals.
    pub count: usize,
    /// The hub's acceptance time in the proposals' FanoutMessage.
    pub accepted_at_ms: i64,
}

impl HubEngine {
    /// Makes a parent-dependent room stored as `child` follow its parent
    /// stored as `parent` (room-policy §Base Room policy, C21): the hub,
    /// the room's external sender (-06 §7.4), proposes the Remove of every
    /// client of a participant the parent no longer has. The next commit
    /// must include them (-06 §5.3), and its committer may drop those
    /// users from the participant list whatever its role. `None` when
    /// nothing is left to propose.
    pub fn parent_removals(
        &self,
        child: &[u8],
        parent: &[u8],
        accepted_at_ms: i64,
    ) -> Result<Option<HubProposals>, RoomError> {
        let mut room = StoredRoom::decode(child)?;
        let parent = StoredRoom::decode(parent)?.hub.policy_state()?;
        self.removals_outside(&mut room, &parent, accepted_at_ms)
    }

    /// [`Self::parent_removals`] on decoded states; `room` changes only
    /// when there are proposals.
    fn removals_outside(
        &self,
        room: &mut StoredRoom,
        parent: &RoomPolicyState,
        accepted_at_ms: i64,
    ) -> Result<Option<HubProposals>, RoomError> {
        let strangers = crate::policy::base::outside_parent(&room.hub.policy_state()?, parent);
        if strangers.is_empty() {
            return Ok(None);
        }
        let hub = self
            .hub_key(room.hub.public_group().ciphersuite())
            .ok_or_else(|| RoomError::InvalidGroup("no hub key for the room's suite".into()))?;
        let proposals = room
            .hub
            .propose_removals(self.crypto(), hub, &strangers)
            .map_err(|e| RoomError::InvalidGroup(e.to_string()))?;
        let Some((first, more)) = proposals.split_first() else {
            return Ok(None);
        };
        let ts = timestamp(accepted_at_ms);
        room.pending_proposals
            .extend(proposals.iter().cloned().map(|proposal| PendingProposal {
                proposal,
                hub_accepted_time: ts,
            }));
        let message = FanoutMessage {
            timestamp: ts,
            message: first.clone(),
            body: FanoutBody::Proposal {
                more_proposals: more.to_vec(),
            },
        };
        let payload = message
            .tls_serialize_detached()
            .map_err(|e| RoomError::CorruptState(e.to_string()))?;
        Ok(Some(HubProposals {
            epoch: room.hub.epoch(),
            new_state: room.encode()?,
            event: payload.clone(),
            fanout: Fanout {
                destinations: room.hub.member_domains(),
                payload,
            },
            count: proposals.len(),
            accepted_at_ms,
        }))
    }
}

/// Whether an update is a commit by a joining client (an external commit,
/// -06 §3.6): its provider subscribes the joining device once it is
/// accepted.
pub fn is_external_commit(request: &UpdateRequest) -> bool {
    let bundle = &request.bundle;
    matches!(bundle.body, HandshakeBody::Commit { .. })
        && matches!(
            bundle.proposal_or_commit.clone().try_into_protocol_message(),
            Ok(ProtocolMessage::PublicMessage(m)) if matches!(m.sender(), Sender::NewMemberCommit)
        )
}

/// Unix seconds of a millisecond time, `None` before 1970.
fn unix_seconds(ms: i64) -> Option<u64> {
    u64::try_from(ms / 1000).ok()
}

fn success(accepted_at: i64) -> UpdateRoomResponse {
    update_response(
        UpdateResult::Success {
            accepted_timestamp: timestamp(accepted_at),
        },
        "",
    )
}

fn internal(e: impl std::fmt::Display) -> UpdateRejection {
    UpdateRejection::Internal(e.to_string())
}

fn encode(message: &FanoutMessage) -> Result<Vec<u8>, UpdateRejection> {
    message.tls_serialize_detached().map_err(internal)
}

/// Whether a Welcome names a KeyPackage the commit does not add.
fn welcomes_strangers(welcome: &Welcome, accepted: &AcceptedCommit) -> bool {
    welcome.secrets().iter().any(|secret| {
        !accepted
            .added
            .iter()
            .any(|a| a.key_package_ref == secret.new_member())
    })
}

/// A Welcome as an `MLSMessage` for a FanoutMessage.
fn welcome_message(welcome: &Welcome) -> Result<MlsMessageIn, UpdateRejection> {
    let bytes = MlsMessageOut::from_welcome(welcome.clone(), ProtocolVersion::Mls10)
        .tls_serialize_detached()
        .map_err(internal)?;
    MlsMessageIn::tls_deserialize_exact(bytes).map_err(internal)
}

/// Who sent a proposal: a member client, or a server by its
/// external-sender credential (`mimi://<domain>`).
enum Proposer {
    Client(ClientIdentity),
    Provider(String),
}

impl std::fmt::Display for Proposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Client(id) => write!(f, "the proposer {}", id.device),
            Self::Provider(domain) => write!(f, "the external sender {domain}"),
        }
    }
}

/// The sender of an already validated proposal (a PublicMessage).
fn proposer(hub: &HubRoom, proposal: &MlsMessageIn) -> Result<Proposer, UpdateRejection> {
    let unknown = |detail: &str| UpdateRejection::UnknownProposer {
        detail: detail.to_owned(),
    };
    let Some(ProtocolMessage::PublicMessage(message)) =
        proposal.clone().try_into_protocol_message().ok()
    else {
        return Err(UpdateRejection::NotPublicMessage);
    };
    match message.sender() {
        Sender::Member(leaf) => {
            let leaf = hub
                .public_group()
                .leaf(*leaf)
                .ok_or_else(|| unknown("proposal from an empty leaf"))?;
            client_identity(leaf.credential())
                .map(Proposer::Client)
                .map_err(|e| unknown(&e.to_string()))
        }
        Sender::External(index) => {
            // SenderExtensionIndex is a uint32 whose accessor openmls keeps
            // private; read it back from its encoding.
            let bytes = index
                .tls_serialize_detached()
                .map_err(|e| unknown(&e.to_string()))?;
            let index = u32::tls_deserialize_exact(bytes).map_err(|e| unknown(&e.to_string()))?;
            let sender = hub
                .public_group()
                .group_context()
                .extensions()
                .external_senders()
                .and_then(|senders| senders.get(index as usize))
                .ok_or_else(|| unknown("unknown external sender"))?;
            let uri = crate::external_senders::sender_uri(sender).map_err(|e| unknown(&e))?;
            Ok(Proposer::Provider(uri.domain().to_ascii_lowercase()))
        }
        _ => Err(unknown(
            "proposals must come from members or external senders",
        )),
    }
}
