//! Why the hub refuses a request: one enum per operation, a variant per
//! reason (in the manner of openmls's per-operation errors). Each maps to
//! the response code -06 defines for its operation; the server turns them
//! into responses and never has to parse a reason string.
//!
//! Foreign errors (openmls, codecs) are kept as their text in `detail`, so
//! the enums stay `Clone + Eq` for caching and tests.

use openmls::ciphersuite::hash_ref::ProposalRef;

use crate::RoomError;
use crate::external_senders::{ExternalSendersViolation, GroupContextExtensionsViolation};

/// A proposal or commit that breaks the room policy
/// (draft-ietf-mimi-room-policy §Role Capabilities, -06 §5.3, §7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("participant index {index} out of range")]
    ParticipantIndex { index: u32 },
    #[error("participant list: {detail}")]
    ParticipantList { detail: String },
    #[error("component {component:#06x} does not decode: {detail}")]
    MalformedComponent { component: u16, detail: String },
    #[error(
        "{proposer} may not change the role of {user} from {from} to {to} (room-policy §Role Changes)"
    )]
    RoleChange {
        proposer: String,
        user: String,
        from: u32,
        to: u32,
    },
    #[error("{proposer} may not remove {user} from the participant list (room-policy §Removing)")]
    ParticipantRemoval { proposer: String, user: String },
    #[error("{proposer} may not add {user} with role {role} (room-policy §Adding)")]
    ParticipantAddition {
        proposer: String,
        user: String,
        role: u32,
    },
    #[error(
        "role {role} would exceed its maximum participants (room-policy §Role-Based Access Control)"
    )]
    MaxParticipants { role: u32 },
    #[error(
        "role {role} would fall below its minimum participants (room-policy §Role-Based Access Control)"
    )]
    MinParticipants { role: u32 },
    #[error(
        "role {role} would exceed its maximum active participants (room-policy §Role-Based Access Control)"
    )]
    MaxActiveParticipants { role: u32 },
    #[error("external senders may only propose Remove (-06 §7.4)")]
    ExternalSenderProposal,
    #[error("Remove of an empty leaf")]
    RemoveOfEmptyLeaf,
    #[error("credential: {0}")]
    Credential(RoomError),
    #[error("{proposer} may only remove its own clients (room-policy §Removing)")]
    RemoveOnlyOwnClients { proposer: String },
    #[error(
        "{proposer} may not remove clients of {target}: needs canKick, or their removal or ban in the same commit (room-policy §Removing)"
    )]
    RemoveClientsOf { proposer: String, target: String },
    #[error("{proposer} may only propose Remove or SelfRemove (-06 §5.3)")]
    OnlyLeave { proposer: String },
    #[error(
        "{proposer} may not change role definitions: needs canChangeRoleDefinitions (room-policy §Disruptive Policy Changes)"
    )]
    RoleDefinitions { proposer: String },
    #[error("updates of component {component:#06x} are not allowed in this room")]
    ComponentNotAllowed { component: u16 },
    #[error(
        "{proposer} may not propose ReInit: needs canSendMLSReinitProposal (room-policy §Disruptive Policy Changes)"
    )]
    ReInit { proposer: String },
    #[error("this proposal type is not allowed in MIMI rooms")]
    ProposalType,
    #[error("{0}")]
    GroupContextExtensions(GroupContextExtensionsViolation),
    #[error(
        "role {role} would fall below its minimum active participants (room-policy §Role-Based Access Control)"
    )]
    MinActiveParticipants { role: u32 },
    #[error("{proposer} may not change {field}: needs {capability} (room-policy §Adjust metadata)")]
    MetadataField {
        proposer: String,
        field: &'static str,
        capability: &'static str,
    },
    #[error("the room URI in room_metadata never changes (-06 §7.6)")]
    RoomUriChanged,
    #[error(
        "{proposer} may not update component {component:#06x}: needs {capability} (room-policy §Role Capabilities)"
    )]
    ComponentCapability {
        proposer: String,
        component: u16,
        capability: &'static str,
    },
    #[error(
        "{user} may not join with role {role}: not preauthorized for it and the room is not open to join (room-policy §Adding)"
    )]
    SelfJoin { user: String, role: u32 },
    #[error(
        "{user} may not change its own role from {from} to {to}: needs canChangeOwnRole and the role its preauthorization gives (room-policy §Role Changes)"
    )]
    OwnRoleChange { user: String, from: u32, to: u32 },
    #[error(
        "the room would have more than {max} clients (room-policy §Base Room policy, max_clients)"
    )]
    MaxClients { max: u32 },
    #[error("the room would have more than {max} users (room-policy §Base Room policy, max_users)")]
    MaxUsers { max: u32 },
    #[error(
        "{user} would have more than one client in a single-device room (room-policy §Base Room policy, multi_device)"
    )]
    SingleDevice { user: String },
    #[error(
        "the participants of a fixed-membership room cannot change (room-policy §Base Room policy)"
    )]
    FixedMembership,
    #[error(
        "role {role} of a fixed-membership room may not hold capability {capability:#06x}, which lets other users in (room-policy §Base Room policy)"
    )]
    FixedMembershipRole { role: u32, capability: u16 },
    #[error(
        "a room's membership style (fixed_membership, parent_dependant, parent_room) is set at creation (room-policy §Base Room policy)"
    )]
    MembershipStyleChanged,
    #[error("base_room_policy: {0}")]
    BasePolicy(String),
    #[error(
        "{user} is not a participant of the parent room (room-policy §Base Room policy, parent_dependent)"
    )]
    NotInParent { user: String },
    #[error("a room's franking agent, once set, does not change (-06 §5.4.1)")]
    FrankingAgentChange,
    #[error("the Safe AAD components may only gain frank_aad (-06 §5.4.1)")]
    SafeAadChange,
    #[error("{proposer}: join links: {reason} (room-policy §Join Link policies component)")]
    JoinLinks { proposer: String, reason: String },
    #[error(
        "join links on request: at most one link is kept, the commit leaves {count} (room-policy §Join Link policies component)"
    )]
    JoinLinksOnRequest { count: usize },
    #[error(
        "a single-use join link must be removed by the join that uses it (room-policy §Join Link policies component, multiuser)"
    )]
    SingleUseLinkKept,
}

/// The `UpdateResponseCode` of -06 §5.3 a rejection maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateCode {
    WrongEpoch,
    NotAllowed,
    InvalidProposal,
}

/// Why an update (-06 §5.3) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateRejection {
    #[error("wrong epoch: the room is at epoch {current_epoch}")]
    WrongEpoch { current_epoch: u64 },
    #[error("not allowed: not a handshake message")]
    NotHandshake,
    #[error("not allowed: handshake messages must be PublicMessages")]
    NotPublicMessage,
    #[error("not allowed: message is for another MLS group")]
    OtherGroup,
    #[error("not allowed: expected a commit")]
    NotACommit,
    #[error("not allowed: expected a proposal")]
    NotAProposal,
    #[error(
        "not allowed: an external join proposal must be an Add of the joiner's own client, sent alone"
    )]
    ExternalJoinProposal,
    #[error("not allowed: commits must come from members or joiners")]
    CommitSender,
    #[error("not allowed: committer: {0}")]
    Committer(RoomError),
    #[error("not allowed: {user} may not commit in this room")]
    CommitterNotActive { user: String },
    #[error(
        "not allowed: {user} may not join this room by itself (by external commit or external proposal; room-policy §Adding)"
    )]
    JoinNotAllowed { user: String },
    #[error("not allowed: the committer {committer} is not a client of the requester")]
    CommitterNotRequesters { committer: String },
    #[error("not allowed: {sender} is not a sender the requester may speak for")]
    ProposerNotRequesters { sender: String },
    #[error("not allowed: proposal sender: {detail}")]
    UnknownProposer { detail: String },
    #[error("not allowed: {user} may only propose Remove or SelfRemove")]
    ProposerMayOnlyLeave { user: String },
    #[error("not allowed: adding a client of {user} is not authorized")]
    AddNotAuthorized { user: String },
    #[error("not allowed: added client: {0}")]
    AddedClient(RoomError),
    #[error("not allowed: leaf {leaf}: {error}")]
    MemberCredential { leaf: u32, error: RoomError },
    #[error(
        "not allowed: {user} would have clients in the group but may not be an active participant"
    )]
    InactiveWithClients { user: String },
    #[error(
        "not allowed: role definitions cannot change in the same commit as the participant list"
    )]
    RolesWithParticipantList,
    #[error(
        "not allowed: the preauthorized users cannot change in the same commit as participant list changes other than removals (room-policy §Preauthorized Users)"
    )]
    PreauthWithParticipantChanges,
    #[error("not allowed: only a single room metadata update is valid per commit (-06 §7.6)")]
    SeveralMetadataUpdates,
    #[error(
        "not allowed: the franking agent may only be set to this hub's franking key (-06 §5.4.1)"
    )]
    FrankingAgentNotHub,
    #[error(
        "not allowed: {user} joins by external commit without being a participant, and the commit does not add {user} to the participant list (room-policy §Adding)"
    )]
    JoinerNotListed { user: String },
    #[error("not allowed: {user} joins with a joining code: {refusal} (room-policy §Adding)")]
    JoinCode {
        user: String,
        refusal: crate::policy::join_links::LinkRefusal,
    },
    #[error("not allowed: the external commit's authenticated data: {detail}")]
    JoinCodeAad { detail: String },
    #[error("not allowed: {0}")]
    RoleConstraint(PolicyViolation),
    #[error("not allowed: the room state after the commit: {0}")]
    StateAfter(RoomError),
    #[error(
        "not allowed: commits must carry the new epoch's GroupInfo in full (GroupInfoOption full)"
    )]
    GroupInfoMissing,
    #[error("not allowed: the GroupInfo does not describe the epoch this commit creates")]
    GroupInfoMismatch,
    #[error("not allowed: a commit that adds clients must carry their Welcome")]
    WelcomeMissing,
    #[error("not allowed: the Welcome names a KeyPackage the commit does not add")]
    WelcomeForStranger,
    #[error("not allowed: internal error: {0}")]
    Internal(String),
    #[error("invalid proposal: {detail}")]
    InvalidMls { detail: String },
    #[error("invalid proposal: {violation}")]
    Proposal {
        refs: Vec<ProposalRef>,
        violation: PolicyViolation,
    },
    #[error("invalid proposal: app data update: {detail}")]
    AppDataUpdate { detail: String },
    #[error("invalid proposal: the commit omits removals queued at the hub")]
    MissingQueuedRemovals { refs: Vec<ProposalRef> },
    #[error("invalid proposal: after the commit, {0}")]
    ExternalSenders(ExternalSendersViolation),
}

impl UpdateRejection {
    /// The -06 §5.3 response code.
    pub fn code(&self) -> UpdateCode {
        match self {
            Self::WrongEpoch { .. } => UpdateCode::WrongEpoch,
            Self::InvalidMls { .. }
            | Self::Proposal { .. }
            | Self::AppDataUpdate { .. }
            | Self::MissingQueuedRemovals { .. }
            | Self::ExternalSenders(_) => UpdateCode::InvalidProposal,
            _ => UpdateCode::NotAllowed,
        }
    }

    /// The proposals an `invalidProposal` answer names.
    pub fn invalid_proposals(&self) -> Vec<ProposalRef> {
        match self {
            Self::Proposal { refs, .. } | Self::MissingQueuedRemovals { refs } => refs.clone(),
            _ => Vec::new(),
        }
    }
}

/// Why a submitted application message was refused (-06 §5.4
/// `SubmitResponseCode`: all but `EpochTooOld` are `notAllowed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitRejection {
    #[error("epoch too old: the room is at epoch {current_epoch}")]
    EpochTooOld { current_epoch: u64 },
    #[error("not allowed: epoch {epoch} is newer than the room's epoch {current_epoch}")]
    EpochInFuture { epoch: u64, current_epoch: u64 },
    #[error("not allowed: the requester may not send as {user}")]
    RequesterMayNotSendAs { user: String },
    #[error("not allowed: sendingUri is not a mimi://<domain>/u/<user> URI")]
    SendingUri,
    #[error("not allowed: appMessage must be a PrivateMessage with application content")]
    NotApplicationMessage,
    #[error("not allowed: appMessage is for another MLS group")]
    OtherGroup,
    #[error("not allowed: {user} is not an active participant")]
    NotActive { user: String },
    #[error("not allowed: {user} may not send messages")]
    MayNotSend { user: String },
    #[error("not allowed: room safe_aad component: {detail}")]
    SafeAadComponent { detail: String },
    #[error("not allowed: Safe AAD: {detail}")]
    SafeAad { detail: String },
    #[error("not allowed: the room requires a frank_aad Safe AAD item")]
    FrankAadMissing,
    #[error("not allowed: frank_aad: {detail}")]
    FrankAad { detail: String },
    #[error("not allowed: room state: {0}")]
    RoomState(RoomError),
}

/// Why the hub does not answer a groupInfo request with the GroupInfo
/// (-06 §5.6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupInfoRejection {
    #[error("unsupported protocol")]
    UnsupportedProtocol,
    #[error(
        "cipher suite {cipher_suite:#06x} is not supported by this hub (0x0001, 0x0002 and 0x0003 are)"
    )]
    UnsupportedCipherSuite { cipher_suite: u16 },
    #[error("the request signature does not verify")]
    BadSignature,
    #[error("the requesting credential names no mimi device")]
    NoDevice,
    #[error("the requesting client is not one of the requester's")]
    NotRequestersClient,
    #[error(
        "the user may neither add its own clients to this room nor join it by itself (room-policy §Adding)"
    )]
    MayNotAddOwnClient,
    #[error("joining code: {0} (room-policy §Adding, canUseJoinCode)")]
    JoinCode(crate::policy::join_links::LinkRefusal),
    #[error("no GroupInfo is known for this room yet")]
    NoGroupInfoYet,
    #[error("groupInfoPublicKey: {detail}")]
    GroupInfoPublicKey { detail: String },
    #[error("room state: {0}")]
    RoomState(RoomError),
}

/// What the server answers for a [`GroupInfoRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupInfoAnswer {
    /// A malformed or unsupported request (HTTP 400).
    BadRequest,
    /// A `notAuthorized` GroupInfoResponse (-06 §5.6).
    NotAuthorized,
    /// Not available now (HTTP 503).
    Unavailable,
    /// The hub's own state is broken (HTTP 500).
    Internal,
}

impl GroupInfoRejection {
    pub fn answer(&self) -> GroupInfoAnswer {
        match self {
            Self::UnsupportedProtocol
            | Self::UnsupportedCipherSuite { .. }
            | Self::GroupInfoPublicKey { .. } => GroupInfoAnswer::BadRequest,
            Self::BadSignature
            | Self::NoDevice
            | Self::NotRequestersClient
            | Self::MayNotAddOwnClient
            | Self::JoinCode(_) => GroupInfoAnswer::NotAuthorized,
            Self::NoGroupInfoYet => GroupInfoAnswer::Unavailable,
            Self::RoomState(_) => GroupInfoAnswer::Internal,
        }
    }
}

/// Why the hub refuses to start hosting a room (client API, -06 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateRoomRejection {
    #[error("room_id is not a mimi://<domain>/r/<id> URI")]
    NotARoomUri,
    #[error("rooms created here must be in {domain}")]
    ForeignDomain { domain: String },
    #[error("group_info: {detail}")]
    GroupInfo { detail: String },
    #[error("ratchet_tree: {detail}")]
    RatchetTree { detail: String },
    #[error("invalid room: {0}")]
    InvalidRoom(RoomError),
    #[error("the creating device is not a member of the group")]
    CreatorNotMember,
    #[error("{0}")]
    ExternalSenders(ExternalSendersViolation),
}

/// Why a KeyMaterialRequest (-06 §5.2) is refused before it is served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyMaterialRequestRejection {
    #[error("{field} is not UTF-8")]
    NotUtf8 { field: &'static str },
    #[error("{field}: {detail}")]
    BadUri { field: &'static str, detail: String },
    #[error("acceptableCiphersuites is empty")]
    NoCiphersuites,
    #[error("keyMaterialRequestSignature: {detail}")]
    Signature { detail: String },
    #[error("requesterCredential is not a BasicCredential")]
    NotBasicCredential,
    #[error("requesterCredential does not name a mimi URI")]
    CredentialNotMimiUri,
    /// Answered 403, the others 400.
    #[error("requesterCredential does not belong to requestingUser")]
    CredentialNotRequester,
}

/// Why an uploaded KeyPackage is refused (client API, -06 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPackageRejection {
    #[error("not a KeyPackage, bare or in an MLSMessage")]
    NotKeyPackage,
    #[error("invalid KeyPackage: {detail}")]
    Invalid { detail: String },
    #[error("KeyPackageRef: {detail}")]
    Reference { detail: String },
    #[error("the KeyPackage has expired")]
    Expired,
    #[error("the credential must be a BasicCredential naming {device}")]
    NotTheDevice { device: String },
}

/// Why a KeyPackage returned by a peer cannot be routed (-06 §5.2, §5.5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardedKeyPackageError {
    #[error("invalid KeyPackage: {detail}")]
    Invalid { detail: String },
    #[error("KeyPackageRef: {detail}")]
    Reference { detail: String },
}

/// Why an abuse report (-06 §5.9) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportRejection {
    /// Answered 400.
    #[error("{field} is not UTF-8")]
    NotUtf8 { field: &'static str },
    /// Answered 400.
    #[error("{field} is not a mimi://<domain>/u/<user> URI")]
    NotAUser { field: &'static str },
    /// Answered 403.
    #[error("reportingUser {user} is not a user of {source_provider}")]
    ReporterNotFromSource {
        user: String,
        source_provider: String,
    },
    /// Answered 403: a report without messages cannot be verified, so it
    /// is only taken from a provider with a participant in the room.
    #[error(
        "{source_provider} has no participant in this room; a report without messages is refused"
    )]
    UnverifiableFromStranger { source_provider: String },
    /// Answered 403: a named reporter whose role in the room lacks
    /// `canReportAbuse` (room-policy §Message Capabilities).
    #[error(
        "{user} may not report abuse in this room: needs canReportAbuse (room-policy §Message Capabilities)"
    )]
    MayNotReport { user: String },
    /// Answered 422.
    #[error("messages[{index}]: {reason}")]
    Message {
        index: usize,
        reason: AbusiveMessageError,
    },
}

/// Why one `AbusiveMessage` of a report does not verify (-06 §5.9).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbusiveMessageError {
    #[error("message_content: {detail}")]
    Content { detail: String },
    #[error("message_content has no sender_uri extension")]
    NoSender,
    #[error("message_content has no room_uri extension")]
    NoRoom,
    #[error("the message's room_uri {room} is not {expected}")]
    OtherRoom { room: String, expected: String },
    #[error("the message's sender_uri {sender} is not allegedAbuserUri {alleged}")]
    OtherSender { sender: String, alleged: String },
    #[error("{0}")]
    Frank(crate::keys::FrankError),
}
