//! The hub service (-06 §5.3–§5.6), shared by the federation endpoints
//! (`federation::hub`) and the client API (`client_api::rooms`).
//!
//! Every request follows the same shape: load the room record, rebuild the
//! [`HubRoom`] from its state bytes, let the pure room logic decide, and
//! accept the outcome with a compare-and-set in the store (the room log,
//! the new state and the outbox rows in one transaction). A lost
//! compare-and-set is retried once from a fresh load; for a commit a lost
//! epoch means another commit won (`wrongEpoch`).
//!
//! Fanout contract: every accepted event writes one outbox row per
//! destination provider domain, each carrying one TLS-encoded
//! [`FanoutMessage`]; a commit with a Welcome writes the commit rows first,
//! then the Welcome rows (-06 §5.5).

use std::collections::BTreeSet;

use axum::http::StatusCode;
use mimi_protocol::msgs::fanout::encode_fanout_batch;
use mimi_protocol::msgs::{
    CipherSuite, FanoutBody, FanoutMessage, Frank, GroupInfoCode, GroupInfoOption,
    GroupInfoRatchetTreeTbe, GroupInfoRequest, GroupInfoResponse, GroupInfoResponseBody,
    GroupInfoResponseTbs, HandshakeBody, HandshakeBundle, PendingProposal, RatchetTreeOption,
    ServerFrankingContext, SubmitMessageRequest, SubmitMessageResponse, SubmitStatus, TlsString,
    UpdateRequest, UpdateResult, UpdateRoomResponse,
};
use mimi_protocol::{IdentifierUri, MimiUri, MimiUriKind, Protocol};
use mimi_room::identity::{ClientIdentity, client_identity};
use mimi_room::policy::RoomPolicyState;
use mimi_room::{HubRoom, SubmitRejection, UpdateRejection};
use mimi_store::{AcceptedEvent, Delivery, NewRoom, RoomRecord, StoreError};
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::{
    BasicCredential, ContentType, Credential, ExternalSender, MlsMessageBodyIn, MlsMessageIn,
    MlsMessageOut, ProtocolMessage, ProtocolVersion, RatchetTreeIn, Sender, Welcome,
};
use tls_codec::{Deserialize as _, Serialize as _, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use crate::client_api::auth::AuthenticatedDevice;
use crate::error::ApiError;
use crate::state::{AppState, HubKey, now_ms};

/// Who asks the hub: a peer provider, authenticated by mutual TLS and its
/// `From` header (-06 §4.1), or one of this provider's own devices
/// (client API bearer token).
#[derive(Debug, Clone)]
pub enum Requester {
    Provider(String),
    Device(AuthenticatedDevice),
}

impl Requester {
    /// May this requester speak for a client of `user`? A provider speaks
    /// for the users of its domain; a device only for its own user.
    fn speaks_for_user(&self, user: &MimiUri) -> bool {
        match self {
            Self::Provider(domain) => user.domain().eq_ignore_ascii_case(domain),
            Self::Device(device) => device.user.as_str() == user.as_str(),
        }
    }

    /// May this requester speak for the client `device`?
    fn speaks_for_device(&self, device: &MimiUri) -> bool {
        match self {
            Self::Provider(domain) => device.domain().eq_ignore_ascii_case(domain),
            Self::Device(me) => me.device.as_str() == device.as_str(),
        }
    }
}

/// The room state the hub persists: the [`HubRoom`] bytes plus what the
/// hub must be able to hand to joiners without group secrets (-06 §5.6):
/// the latest GroupInfo a committer uploaded and the proposals accepted in
/// the current epoch.
#[derive(Debug, Clone, TlsSerialize, TlsDeserialize, TlsSize)]
struct StoredRoom {
    hub_room: VLBytes,
    latest_group_info: Option<VerifiableGroupInfo>,
    pending_proposals: Vec<PendingProposal>,
}

impl StoredRoom {
    fn decode(bytes: &[u8]) -> Result<Self, ApiError> {
        Self::tls_deserialize_exact(bytes).map_err(ApiError::internal)
    }

    fn encode(&self) -> Result<Vec<u8>, ApiError> {
        self.tls_serialize_detached().map_err(ApiError::internal)
    }
}

/// A room as loaded for one decision.
struct LoadedRoom {
    record: RoomRecord,
    hub: HubRoom,
    stored: StoredRoom,
}

/// Loads a hosted room; `None` if this hub does not host it.
async fn load_room(state: &AppState, room_id: &MimiUri) -> Result<Option<LoadedRoom>, ApiError> {
    let Some(record) = state.store.load_room(room_id.as_str()).await? else {
        return Ok(None);
    };
    let stored = StoredRoom::decode(&record.group_state)?;
    let hub = HubRoom::from_bytes(stored.hub_room.as_slice()).map_err(ApiError::internal)?;
    Ok(Some(LoadedRoom {
        record,
        hub,
        stored,
    }))
}

fn no_such_room(room_id: &MimiUri) -> ApiError {
    ApiError::not_found(format!("no room {room_id} on this hub"))
}

/// The hub's `ExternalSender` (-06 §7.4): its signature key and provider
/// credential.
pub fn hub_external_sender(hub_key: &HubKey) -> ExternalSender {
    ExternalSender::new(hub_key.public_key(), hub_key.credential.clone())
}

fn timestamp(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

fn encode_fanout(message: &FanoutMessage) -> Result<Vec<u8>, ApiError> {
    message.tls_serialize_detached().map_err(ApiError::internal)
}

/// One outbox row per destination domain, all with the same payload.
fn deliveries_to<'a>(
    domains: impl IntoIterator<Item = &'a String>,
    payload: &[u8],
) -> Vec<Delivery> {
    domains
        .into_iter()
        .map(|destination| Delivery {
            destination: destination.clone(),
            payload: payload.to_vec(),
        })
        .collect()
}

// ---- Room creation (client API) ---------------------------------------------

/// A validated room creation request (docs/client-api.md).
pub struct CreateRoom {
    pub room_id: MimiUri,
    pub group_info: VerifiableGroupInfo,
    pub ratchet_tree: RatchetTreeIn,
}

/// Starts hosting a room created by `creator` (a device of this provider):
/// the GroupInfo and tree must describe a consistent room whose members
/// include the creator; if the group names external senders, this hub's
/// must be among them (-06 §7.4). The creator's device is subscribed.
pub async fn create_room(
    state: &AppState,
    creator: &AuthenticatedDevice,
    request: CreateRoom,
) -> Result<(), ApiError> {
    let room_id = request.room_id;
    if room_id.kind() != MimiUriKind::Room {
        return Err(ApiError::bad_request(
            "room_id is not a mimi://<domain>/r/<id> URI",
        ));
    }
    if !room_id.domain().eq_ignore_ascii_case(state.domain())
        || !creator.device.domain().eq_ignore_ascii_case(state.domain())
    {
        return Err(ApiError::forbidden(format!(
            "rooms created here must be in {}",
            state.domain()
        )));
    }
    let hub = HubRoom::create(
        state.crypto.as_ref(),
        request.ratchet_tree,
        request.group_info.clone(),
    )
    .map_err(|e| ApiError::bad_request(format!("invalid room: {e}")))?;
    let creator_is_member = hub
        .members()
        .into_iter()
        .filter_map(|(_, id)| id.ok())
        .any(|id| id.device.as_str() == creator.device.as_str());
    if !creator_is_member {
        return Err(ApiError::bad_request(
            "the creating device is not a member of the group",
        ));
    }
    check_external_senders(state, &hub)?;
    let stored = StoredRoom {
        hub_room: hub.to_bytes().map_err(ApiError::internal)?.into(),
        latest_group_info: Some(request.group_info),
        pending_proposals: Vec::new(),
    };
    let created = state
        .store
        .create_room(NewRoom {
            room_id: room_id.as_str().to_owned(),
            epoch: hub.epoch(),
            group_state: stored.encode()?,
            created_at_ms: now_ms(),
        })
        .await;
    match created {
        Ok(_) => {}
        Err(StoreError::RoomExists(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("room {room_id} already exists"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    state
        .store
        .subscribe(room_id.as_str(), creator.device.as_str())
        .await?;
    tracing::info!(room = %room_id, creator = %creator.device, "room created");
    Ok(())
}

/// If the group lists external senders, this hub must be one of them.
/// Not required: a room without external senders works, only the hub
/// cannot send proposals in it.
fn check_external_senders(state: &AppState, hub: &HubRoom) -> Result<(), ApiError> {
    let Some(senders) = hub
        .public_group()
        .group_context()
        .extensions()
        .external_senders()
    else {
        return Ok(());
    };
    let ours = hub_external_sender(&state.hub_key);
    if senders.contains(&ours) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "external_senders does not include this hub (GET /client/v1/hub)",
        ))
    }
}

// ---- update (-06 §5.3) ---------------------------------------------------------

/// What the room logic decided about a request.
enum Decision<R> {
    Reject(R),
    Accept {
        event: AcceptedEvent,
        /// KeyPackageRef → provider routes of a Welcome (-06 §5.5).
        routes: Vec<(Vec<u8>, String)>,
    },
}

fn update_response(result: UpdateResult, description: impl Into<String>) -> UpdateRoomResponse {
    UpdateRoomResponse {
        error_description: TlsString(description.into()),
        result,
    }
}

fn wrong_epoch(current_epoch: u64) -> UpdateRoomResponse {
    update_response(
        UpdateResult::WrongEpoch { current_epoch },
        format!("the room is at epoch {current_epoch}"),
    )
}

fn not_allowed(description: impl Into<String>) -> UpdateRoomResponse {
    update_response(UpdateResult::NotAllowed, description)
}

/// Maps the room logic's refusal onto `UpdateRoomResponse` 1:1.
fn rejection_response(rejection: UpdateRejection) -> UpdateRoomResponse {
    let description = rejection.to_string();
    match rejection {
        UpdateRejection::WrongEpoch { current_epoch } => wrong_epoch(current_epoch),
        UpdateRejection::NotAllowed(_) => not_allowed(description),
        UpdateRejection::InvalidProposal { refs, .. } => update_response(
            UpdateResult::InvalidProposal {
                invalid_proposals: refs,
            },
            description,
        ),
    }
}

/// `POST /update/{roomId}` (-06 §5.3): a commit or a set of proposals.
/// Every answer is an `UpdateRoomResponse`; only an unknown room (404) and
/// internal failures are HTTP errors.
pub async fn update(
    state: &AppState,
    room_id: &MimiUri,
    requester: &Requester,
    request: UpdateRequest,
) -> Result<UpdateRoomResponse, ApiError> {
    let bundle = request.bundle;
    let is_commit = matches!(bundle.body, HandshakeBody::Commit { .. });
    for attempt in 0..2 {
        let room = load_room(state, room_id)
            .await?
            .ok_or_else(|| no_such_room(room_id))?;
        let accepted_at = now_ms();
        let decision = if is_commit {
            decide_commit(state, room_id, room, requester, &bundle, accepted_at)?
        } else {
            decide_proposals(state, room_id, room, requester, &bundle, accepted_at)?
        };
        let (event, routes) = match decision {
            Decision::Reject(response) => return Ok(response),
            Decision::Accept { event, routes } => (event, routes),
        };
        if !routes.is_empty() {
            state
                .store
                .record_key_package_routes(room_id.as_str(), routes)
                .await?;
        }
        let epoch = event.new_epoch;
        match state.store.accept_room_event(event).await {
            Ok(outcome) => {
                crate::fanout::wake(state);
                tracing::info!(room = %room_id, epoch, seq = outcome.seq, commit = is_commit, "update accepted");
                return Ok(update_response(
                    UpdateResult::Success {
                        accepted_timestamp: timestamp(accepted_at),
                    },
                    "",
                ));
            }
            // Another commit won this epoch (-06 §5.3: one commit per epoch).
            Err(StoreError::EpochConflict { current_epoch }) if is_commit => {
                return Ok(wrong_epoch(current_epoch));
            }
            Err(StoreError::EpochConflict { .. } | StoreError::StateVersionConflict { .. })
                if attempt == 0 =>
            {
                continue;
            }
            Err(
                StoreError::EpochConflict { current_epoch }
                | StoreError::StateVersionConflict { current_epoch, .. },
            ) => return Ok(wrong_epoch(current_epoch)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::unavailable(
        "the room changed concurrently; retry",
    ))
}

/// Validates and authorizes a commit (-06 §5.3) and builds its fanout:
/// the commit to every provider with members before or after it (removed
/// clients learn of their removal), then the Welcome to the providers of
/// the added clients (-06 §5.5).
///
/// Commits must carry the new epoch's GroupInfo in full: the hub has no
/// group secrets, so this is what it serves to joiners (-06 §5.6).
fn decide_commit(
    state: &AppState,
    room_id: &MimiUri,
    mut room: LoadedRoom,
    requester: &Requester,
    bundle: &HandshakeBundle,
    accepted_at: i64,
) -> Result<Decision<UpdateRoomResponse>, ApiError> {
    let HandshakeBody::Commit {
        welcome,
        group_info_option,
        ratchet_tree_option,
    } = &bundle.body
    else {
        return Err(ApiError::internal("decide_commit called with proposals"));
    };
    let domains_before = room.hub.member_domains();
    let accepted = match room
        .hub
        .handle_commit(state.crypto.as_ref(), bundle.proposal_or_commit.clone())
    {
        Ok(accepted) => accepted,
        Err(rejection) => return Ok(Decision::Reject(rejection_response(rejection))),
    };
    let committer = MimiUri::parse(&accepted.committer).map_err(ApiError::internal)?;
    if !requester.speaks_for_user(&committer) {
        return Ok(Decision::Reject(not_allowed(format!(
            "the committer {committer} is not a client of the requester"
        ))));
    }
    let GroupInfoOption::Full(group_info) = group_info_option else {
        return Ok(Decision::Reject(not_allowed(
            "commits must carry the new epoch's GroupInfo in full (GroupInfoOption full)",
        )));
    };
    if group_info.group_context() != room.hub.public_group().group_context() {
        return Ok(Decision::Reject(not_allowed(
            "the GroupInfo does not describe the epoch this commit creates",
        )));
    }
    if !accepted.added.is_empty() && welcome.is_none() {
        return Ok(Decision::Reject(not_allowed(
            "a commit that adds clients must carry their Welcome",
        )));
    }
    // The Welcome is routed by KeyPackageRef (-06 §5.5): it may only name
    // clients this commit adds.
    let welcomes_strangers = welcome.as_ref().is_some_and(|w| {
        w.secrets().iter().any(|secret| {
            !accepted
                .added
                .iter()
                .any(|a| a.key_package_ref == secret.new_member())
        })
    });
    if welcomes_strangers {
        return Ok(Decision::Reject(not_allowed(
            "the Welcome names a KeyPackage the commit does not add",
        )));
    }

    let ts = timestamp(accepted_at);
    let commit = FanoutMessage {
        timestamp: ts,
        message: bundle.proposal_or_commit.clone(),
        body: FanoutBody::Commit {
            external_proposals: Vec::new(),
        },
    };
    let commit_bytes = encode_fanout(&commit)?;
    let mut destinations = domains_before;
    destinations.extend(room.hub.member_domains());
    let mut deliveries = deliveries_to(&destinations, &commit_bytes);
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
        let welcome_bytes = encode_fanout(&message)?;
        let mut welcome_domains = BTreeSet::new();
        for added in &accepted.added {
            let device = MimiUri::parse(&added.device).map_err(ApiError::internal)?;
            let domain = device.domain().to_ascii_lowercase();
            routes.push((added.key_package_ref.as_slice().to_vec(), domain.clone()));
            welcome_domains.insert(domain);
        }
        deliveries.extend(deliveries_to(&welcome_domains, &welcome_bytes));
        messages.push(message);
    }

    let stored = StoredRoom {
        hub_room: room.hub.to_bytes().map_err(ApiError::internal)?.into(),
        latest_group_info: Some(group_info.clone()),
        pending_proposals: Vec::new(),
    };
    let event = AcceptedEvent {
        room_id: room_id.as_str().to_owned(),
        expected_epoch: room.record.epoch,
        new_epoch: accepted.new_epoch,
        expected_state_version: Some(room.record.state_version),
        new_group_state: Some(stored.encode()?),
        event: encode_fanout_batch(&messages).map_err(ApiError::internal)?,
        accepted_at_ms: accepted_at,
        deliveries,
    };
    Ok(Decision::Accept { event, routes })
}

/// A Welcome as an `MLSMessage` for a FanoutMessage.
fn welcome_message(welcome: &Welcome) -> Result<MlsMessageIn, ApiError> {
    let bytes = MlsMessageOut::from_welcome(welcome.clone(), ProtocolVersion::Mls10)
        .tls_serialize_detached()
        .map_err(ApiError::internal)?;
    MlsMessageIn::tls_deserialize_exact(bytes).map_err(ApiError::internal)
}

/// Validates, authorizes and queues proposals (-06 §5.3): the room state
/// changes (the queue), the epoch does not; they go to every member
/// provider as one FanoutMessage (-06 §5.5).
fn decide_proposals(
    state: &AppState,
    room_id: &MimiUri,
    mut room: LoadedRoom,
    requester: &Requester,
    bundle: &HandshakeBundle,
    accepted_at: i64,
) -> Result<Decision<UpdateRoomResponse>, ApiError> {
    let HandshakeBody::Proposal { more_proposals } = &bundle.body else {
        return Err(ApiError::internal("decide_proposals called with a commit"));
    };
    let mut proposals = Vec::with_capacity(1 + more_proposals.len());
    proposals.push(bundle.proposal_or_commit.clone());
    proposals.extend(more_proposals.iter().cloned());
    if let Err(rejection) = room
        .hub
        .handle_proposals(state.crypto.as_ref(), proposals.clone())
    {
        return Ok(Decision::Reject(rejection_response(rejection)));
    }
    for proposal in &proposals {
        let proposer = match proposer(&room.hub, proposal) {
            Ok(p) => p,
            Err(reason) => return Ok(Decision::Reject(not_allowed(reason))),
        };
        let allowed = match &proposer {
            Proposer::Client(id) => requester.speaks_for_device(&id.device),
            Proposer::Provider(domain) => {
                matches!(requester, Requester::Provider(d) if d.eq_ignore_ascii_case(domain))
            }
        };
        if !allowed {
            return Ok(Decision::Reject(not_allowed(format!(
                "{proposer} is not a sender the requester may speak for"
            ))));
        }
    }

    let ts = timestamp(accepted_at);
    let mut stored = room.stored;
    stored.hub_room = room.hub.to_bytes().map_err(ApiError::internal)?.into();
    stored
        .pending_proposals
        .extend(proposals.into_iter().map(|proposal| PendingProposal {
            proposal,
            hub_accepted_time: ts,
        }));
    let message = FanoutMessage {
        timestamp: ts,
        message: bundle.proposal_or_commit.clone(),
        body: FanoutBody::Proposal {
            more_proposals: more_proposals.clone(),
        },
    };
    let bytes = encode_fanout(&message)?;
    let event = AcceptedEvent {
        room_id: room_id.as_str().to_owned(),
        expected_epoch: room.record.epoch,
        new_epoch: room.record.epoch,
        expected_state_version: Some(room.record.state_version),
        new_group_state: Some(stored.encode()?),
        event: bytes.clone(),
        accepted_at_ms: accepted_at,
        deliveries: deliveries_to(&room.hub.member_domains(), &bytes),
    };
    Ok(Decision::Accept {
        event,
        routes: Vec::new(),
    })
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
fn proposer(hub: &HubRoom, proposal: &MlsMessageIn) -> Result<Proposer, String> {
    let Some(ProtocolMessage::PublicMessage(message)) =
        proposal.clone().try_into_protocol_message().ok()
    else {
        return Err("proposals must be PublicMessages".into());
    };
    match message.sender() {
        Sender::Member(leaf) => {
            let leaf = hub
                .public_group()
                .leaf(*leaf)
                .ok_or("proposal from an empty leaf")?;
            client_identity(leaf.credential())
                .map(Proposer::Client)
                .map_err(|e| e.to_string())
        }
        Sender::External(index) => {
            // SenderExtensionIndex is a uint32 whose accessor openmls keeps
            // private; read it back from its encoding.
            let bytes = index.tls_serialize_detached().map_err(|e| e.to_string())?;
            let index = u32::tls_deserialize_exact(bytes).map_err(|e| e.to_string())?;
            let sender = hub
                .public_group()
                .group_context()
                .extensions()
                .external_senders()
                .and_then(|senders| senders.get(index as usize))
                .ok_or("unknown external sender")?;
            let (_, credential) = mimi_protocol::msgs::group_info::external_sender_parts(sender)
                .map_err(|e| e.to_string())?;
            provider_of_credential(&credential).map(Proposer::Provider)
        }
        _ => Err("proposals must come from members or external senders".into()),
    }
}

/// The domain named by a server's BasicCredential `mimi://<domain>`.
fn provider_of_credential(credential: &Credential) -> Result<String, String> {
    let basic = BasicCredential::try_from(credential.clone())
        .map_err(|_| "external sender without a basic credential")?;
    let text = std::str::from_utf8(basic.identity()).map_err(|e| e.to_string())?;
    let uri = MimiUri::parse(text).map_err(|e| e.to_string())?;
    Ok(uri.domain().to_ascii_lowercase())
}

// ---- submitMessage (-06 §5.4) ----------------------------------------------------

fn submit_response(status: SubmitStatus) -> SubmitMessageResponse {
    SubmitMessageResponse {
        protocol: Protocol::Mls10,
        status,
    }
}

fn submit_rejection(rejection: SubmitRejection) -> SubmitMessageResponse {
    tracing::info!(%rejection, "submitMessage refused");
    submit_response(match rejection {
        SubmitRejection::NotAllowed(_) => SubmitStatus::NotAllowed,
        SubmitRejection::EpochTooOld { current_epoch } => {
            SubmitStatus::EpochTooOld { current_epoch }
        }
    })
}

/// The `sendingUri` of a submit request as a user URI.
pub fn sending_user(request: &SubmitMessageRequest) -> Result<MimiUri, ApiError> {
    request
        .sending_uri
        .as_str()
        .and_then(|s| MimiUri::parse(s).ok())
        .filter(|uri| uri.kind() == MimiUriKind::User)
        .ok_or_else(|| ApiError::bad_request("sendingUri is not a mimi://<domain>/u/<user> URI"))
}

/// What submitMessage needs of a room, kept between requests so a submit
/// does not restore the openmls PublicGroup from the stored bytes each
/// time (the cost grows with the group). Keyed by server and room; the
/// `state_version` it was loaded at is the accept's compare-and-set, so a
/// stale entry can never accept a message: it conflicts and is reloaded.
struct CachedRoom {
    state_version: u64,
    hub: HubRoom,
    domains: BTreeSet<String>,
    /// `authorize_message` verdicts per sending user for the cached epoch
    /// (a pure function of the cached state).
    verdicts: std::sync::Mutex<std::collections::HashMap<String, Result<(), SubmitRejection>>>,
}

impl CachedRoom {
    fn authorize(&self, epoch: u64, user: &str) -> Result<(), SubmitRejection> {
        if epoch != self.hub.epoch() {
            return self.hub.authorize_message(epoch, user);
        }
        let known = self.verdicts.lock().ok().and_then(|v| v.get(user).cloned());
        if let Some(verdict) = known {
            return verdict;
        }
        let verdict = self.hub.authorize_message(epoch, user);
        if let Ok(mut v) = self.verdicts.lock() {
            v.insert(user.to_owned(), verdict.clone());
        }
        verdict
    }
}

/// Rooms kept by [`cached_room`]; the map is emptied when full.
const ROOM_CACHE_CAPACITY: usize = 1024;

type RoomCache =
    std::sync::Mutex<std::collections::HashMap<(String, String), std::sync::Arc<CachedRoom>>>;

fn room_cache() -> &'static RoomCache {
    static CACHE: std::sync::OnceLock<RoomCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The cached room, or a fresh load when `fresh` or not cached.
async fn cached_room(
    state: &AppState,
    room_id: &MimiUri,
    fresh: bool,
) -> Result<Option<std::sync::Arc<CachedRoom>>, ApiError> {
    // Several servers may share a process (tests): key by listener too.
    let key = (
        format!("{}@{}", state.domain(), state.config.federation.listen),
        room_id.as_str().to_owned(),
    );
    if !fresh && let Some(hit) = room_cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(Some(hit));
    }
    let Some(room) = load_room(state, room_id).await? else {
        if let Ok(mut cache) = room_cache().lock() {
            cache.remove(&key);
        }
        return Ok(None);
    };
    let cached = std::sync::Arc::new(CachedRoom {
        state_version: room.record.state_version,
        domains: room.hub.member_domains(),
        hub: room.hub,
        verdicts: Default::default(),
    });
    if let Ok(mut cache) = room_cache().lock() {
        if cache.len() >= ROOM_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, cached.clone());
    }
    Ok(Some(cached))
}

/// `POST /submitMessage/{roomId}` (-06 §5.4): an application message
/// (a PrivateMessage with content type application) from an active
/// participant, in the current epoch, is accepted and fanned out to every
/// member provider. When the message carries a `frank_aad` franking tag and
/// the room's `franking_signature_key` component names this hub's franking
/// key, the hub franks it (-06 §5.4.1): the frank is returned and fanned
/// out with the message. The hub reads only the clear-text Safe AAD; the
/// content stays encrypted.
pub async fn submit_message(
    state: &AppState,
    room_id: &MimiUri,
    requester: &Requester,
    request: SubmitMessageRequest,
) -> Result<SubmitMessageResponse, ApiError> {
    let user = sending_user(&request)?;
    if !requester.speaks_for_user(&user) {
        return Ok(submit_rejection(SubmitRejection::NotAllowed(format!(
            "the requester may not send as {user}"
        ))));
    }
    let private = match request.app_message.clone().try_into_protocol_message().ok() {
        Some(ProtocolMessage::PrivateMessage(m))
            if m.content_type() == ContentType::Application =>
        {
            m
        }
        _ => {
            return Ok(submit_rejection(SubmitRejection::NotAllowed(
                "appMessage must be a PrivateMessage with application content".into(),
            )));
        }
    };
    let (group_id, epoch) = (private.group_id().clone(), private.epoch().as_u64());
    for attempt in 0..2 {
        let room = cached_room(state, room_id, attempt > 0)
            .await?
            .ok_or_else(|| no_such_room(room_id))?;
        if &group_id != room.hub.group_id() {
            return Ok(submit_rejection(SubmitRejection::NotAllowed(
                "appMessage is for another MLS group".into(),
            )));
        }
        // A newer epoch than the cached one: check against a fresh load.
        if epoch > room.hub.epoch() && attempt == 0 {
            continue;
        }
        if let Err(rejection) = room.authorize(epoch, user.as_str()) {
            return Ok(submit_rejection(rejection));
        }
        let franking_tag = match room.hub.franking_tag(&private) {
            Ok(tag) => tag,
            Err(rejection) => return Ok(submit_rejection(rejection)),
        };
        let accepted_at = now_ms();
        let frank = match franking_tag {
            Some(tag) => frank_message(state, &room.hub, room_id, &request, &tag, accepted_at)?,
            None => None,
        };
        let message = FanoutMessage {
            timestamp: timestamp(accepted_at),
            message: request.app_message.clone(),
            body: FanoutBody::Application {
                frank: frank.clone(),
            },
        };
        let bytes = encode_fanout(&message)?;
        let event = AcceptedEvent {
            room_id: room_id.as_str().to_owned(),
            expected_epoch: epoch,
            new_epoch: epoch,
            // The state the decision was made on: a commit or queued
            // proposal since (here or in another server process) makes
            // this compare-and-set fail, and the message is re-checked.
            expected_state_version: Some(room.state_version),
            new_group_state: None,
            event: bytes.clone(),
            accepted_at_ms: accepted_at,
            deliveries: deliveries_to(&room.domains, &bytes),
        };
        match state.store.accept_room_event(event).await {
            Ok(_) => {
                crate::fanout::wake(state);
                return Ok(submit_response(SubmitStatus::Accepted {
                    accepted_timestamp: timestamp(accepted_at),
                    frank,
                }));
            }
            // A commit or proposal moved the room on meanwhile: re-check
            // from the new state (which answers epochTooOld).
            Err(StoreError::EpochConflict { .. } | StoreError::StateVersionConflict { .. })
                if attempt == 0 =>
            {
                continue;
            }
            Err(StoreError::EpochConflict { current_epoch }) => {
                return Ok(submit_response(SubmitStatus::EpochTooOld { current_epoch }));
            }
            Err(StoreError::StateVersionConflict { .. }) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::unavailable(
        "the room changed concurrently; retry",
    ))
}

/// The hub's frank of an accepted message (-06 §5.4.1 "Hub processing"),
/// or `None` when the room's franking agent is not this hub (absent, or
/// another key): the hub only signs with the key the room's members
/// verify against. The context binds the sender asserted in `sendingUri`
/// (already checked to be a participant of the requester), the room and
/// the acceptance time.
fn frank_message(
    state: &AppState,
    hub: &HubRoom,
    room_id: &MimiUri,
    request: &SubmitMessageRequest,
    franking_tag: &[u8; 32],
    accepted_at: i64,
) -> Result<Option<Frank>, ApiError> {
    let agent = hub.franking_agent().map_err(ApiError::internal)?;
    if agent.as_ref() != Some(&state.franking.agent_data()) {
        return Ok(None);
    }
    let ciphersuite = hub.public_group().ciphersuite();
    if ciphersuite.signature_algorithm() != HubKey::SCHEME {
        return Ok(None);
    }
    let context = ServerFrankingContext {
        sender_uri: request.sending_uri.clone(),
        room_uri: IdentifierUri::new(room_id.as_str()),
        accepted_timestamp: timestamp(accepted_at),
    };
    state
        .franking
        .frank(franking_tag, context, ciphersuite.into())
        .map(Some)
        .map_err(ApiError::internal)
}

// ---- groupInfo (-06 §5.6) ----------------------------------------------------------

fn group_info_failure(room_id: &MimiUri, body: GroupInfoResponseBody) -> GroupInfoResponse {
    GroupInfoResponse {
        protocol: Protocol::Mls10,
        room_id: room_id.as_str().as_bytes().to_vec().into(),
        body,
    }
}

/// The device URI named by a request's credential.
pub fn requesting_device(request: &GroupInfoRequest) -> Option<ClientIdentity> {
    client_identity(&request.requesting_credential).ok()
}

/// `POST /groupInfo/{roomId}` (-06 §5.6): a new client of an existing
/// participant asks for what it needs to join by external commit. The
/// request signature must verify; the requesting credential's user must be
/// a participant whose role may be active and has `canAddOwnClient`. The
/// answer is the latest GroupInfo, the ratchet tree and the pending
/// proposals, HPKE-encrypted to `groupInfoPublicKey` with the room ID as
/// context, signed by the hub.
///
/// Returns the HTTP status with the response: 404 with `noSuchRoom`, 200
/// otherwise.
pub async fn group_info(
    state: &AppState,
    room_id: &MimiUri,
    requester: &Requester,
    request: GroupInfoRequest,
) -> Result<(StatusCode, GroupInfoResponse), ApiError> {
    let not_authorized = |reason: &str| {
        tracing::info!(room = %room_id, reason, "groupInfo refused");
        Ok((
            StatusCode::OK,
            group_info_failure(room_id, GroupInfoResponseBody::NotAuthorized),
        ))
    };
    if request.protocol != Protocol::Mls10 {
        return Err(ApiError::bad_request("unsupported protocol"));
    }
    if request.cipher_suite.signature_scheme().ok() != Some(HubKey::SCHEME) {
        return Err(ApiError::bad_request(
            "cipher suite unsupported by this hub (its signature scheme must be Ed25519)",
        ));
    }
    if request.verify(state.crypto.as_ref()).is_err() {
        return not_authorized("the request signature does not verify");
    }
    let Some(requester_id) = requesting_device(&request) else {
        return not_authorized("the requesting credential names no mimi device");
    };
    if !requester.speaks_for_device(&requester_id.device) {
        return not_authorized("the requesting client is not one of the requester's");
    }
    let Some(room) = load_room(state, room_id).await? else {
        return Ok((
            StatusCode::NOT_FOUND,
            group_info_failure(room_id, GroupInfoResponseBody::NoSuchRoom),
        ));
    };
    let policy: RoomPolicyState = room.hub.policy_state().map_err(ApiError::internal)?;
    let user = requester_id.user.as_str();
    if !(policy.may_be_active(user)
        && policy.has(
            user,
            mimi_protocol::components::room_policy::capabilities::CAN_ADD_OWN_CLIENT,
        ))
    {
        return not_authorized("the user may not add its own clients to this room");
    }
    let Some(group_info) = room.stored.latest_group_info.clone() else {
        return Err(ApiError::unavailable(
            "no GroupInfo is known for this room yet",
        ));
    };
    let tbe = GroupInfoRatchetTreeTbe {
        group_info,
        ratchet_tree_option: RatchetTreeOption::Full(
            room.hub.public_group().export_ratchet_tree().into(),
        ),
        pending_proposals: room.stored.pending_proposals,
    };
    let response = sign_group_info(state, room_id, request.cipher_suite, &request, &tbe)?;
    Ok((StatusCode::OK, response))
}

/// Encrypts the TBE to the requester and signs the response (-06 §5.6).
fn sign_group_info(
    state: &AppState,
    room_id: &MimiUri,
    cipher_suite: CipherSuite,
    request: &GroupInfoRequest,
    tbe: &GroupInfoRatchetTreeTbe,
) -> Result<GroupInfoResponse, ApiError> {
    let room_id_bytes = room_id.as_str().as_bytes();
    let encrypted = tbe
        .seal(
            state.crypto.as_ref(),
            cipher_suite,
            request.group_info_public_key.as_slice(),
            room_id_bytes,
        )
        .map_err(|e| ApiError::bad_request(format!("groupInfoPublicKey: {e}")))?;
    GroupInfoResponseTbs {
        protocol: Protocol::Mls10,
        room_id: room_id_bytes.to_vec().into(),
        status: GroupInfoCode::Success,
        cipher_suite,
        hub_sender: hub_external_sender(&state.hub_key),
        encrypted_groupinfo_and_tree: encrypted,
    }
    .sign(&state.hub_key.signer)
    .map_err(ApiError::internal)
}

/// Parses a room path parameter (axum has already percent-decoded it).
pub fn parse_room_id(raw: &str) -> Result<MimiUri, ApiError> {
    MimiUri::parse(raw)
        .ok()
        .filter(|uri| uri.kind() == MimiUriKind::Room)
        .ok_or_else(|| ApiError::bad_request("roomId is not a mimi://<domain>/r/<id> URI"))
}

/// Reads an `MLSMessage(GroupInfo)`.
pub fn group_info_from_message(bytes: &[u8]) -> Result<VerifiableGroupInfo, ApiError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| ApiError::bad_request(format!("group_info: {e}")))?;
    match message.extract() {
        MlsMessageBodyIn::GroupInfo(info) => Ok(info),
        _ => Err(ApiError::bad_request(
            "group_info is not an MLSMessage(GroupInfo)",
        )),
    }
}
