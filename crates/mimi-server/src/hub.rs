//! The hub service (-06 §5.3–§5.6), shared by the federation endpoints
//! (`federation::hub`) and the client API (`client_api::rooms`).
//!
//! Every request is load → decide → compare-and-set → respond: the room
//! record is loaded, [`mimi_room::engine::HubEngine`] decides, and an
//! accepted decision is stored with a compare-and-set (the room log, the
//! new state and the outbox rows in one transaction). A lost
//! compare-and-set is retried once from a fresh load
//! ([`compare_and_set_rounds`]); for a commit a lost epoch means another
//! commit won (`wrongEpoch`).
//!
//! Fanout contract: every accepted event writes one outbox row per other
//! destination provider domain, each carrying one TLS-encoded
//! `FanoutMessage`, and logs the message for the hub's own devices in the
//! same transaction (`delivery::route_fanout`); a commit with a Welcome
//! writes the commit first, then the Welcome (-06 §5.5).

use std::sync::Arc;

use axum::http::StatusCode;
use mimi_protocol::endpoints::MessageBody;
use mimi_protocol::msgs::{
    GroupInfoRequest, GroupInfoResponse, GroupInfoResponseBody, SubmitMessageRequest,
    SubmitMessageResponse, SubmitStatus, UpdateRequest, UpdateResponseCode, UpdateRoomResponse,
};
use mimi_protocol::{MimiUri, MimiUriKind};
use mimi_room::engine::{
    AcceptedUpdate, HubProposals, Requester, SubmitDecision, SubmitView, UpdateDecision,
    group_info_failure, wrong_epoch_response,
};
use mimi_room::rejection::{CreateRoomRejection, GroupInfoAnswer, GroupInfoRejection};
use mimi_room::stored::StoredRoom;
use mimi_room::{SubmitRejection, UpdateRejection};
use mimi_store::{AcceptedEvent, NewRoom, RoomRecord, StoreError};
use sha2::{Digest as _, Sha256};

use crate::client_api::auth::AuthenticatedDevice;
use crate::delivery::{logged_with_accept, route_fanout};
use crate::error::ApiError;
use crate::runtime::CachedView;
use crate::state::{AppState, now_ms};

impl From<&AuthenticatedDevice> for Requester {
    fn from(device: &AuthenticatedDevice) -> Self {
        Requester::Device {
            user: device.user.clone(),
            device: device.device.clone(),
        }
    }
}

/// What one load → decide → compare-and-set round gave.
enum Round<T> {
    Answer(T),
    /// The room changed between load and compare-and-set (or the cached
    /// view was stale); `if_last` answers when no round is left.
    Conflict {
        if_last: Result<T, ApiError>,
    },
}

/// Rounds per request: the first on the loaded (or cached) state, one
/// more from a fresh load.
const ROUNDS: u32 = 2;

/// Runs `$round(attempt)` (an async expression giving a [`Round`]) until
/// it answers, at most [`ROUNDS`] times: the one compare-and-set retry
/// loop of every hub operation.
async fn compare_and_set_rounds<T, F>(mut round: impl FnMut(u32) -> F) -> Result<T, ApiError>
where
    F: Future<Output = Result<Round<T>, ApiError>>,
{
    for attempt in 0..ROUNDS {
        match round(attempt).await? {
            Round::Answer(answer) => return Ok(answer),
            Round::Conflict { if_last } if attempt + 1 == ROUNDS => return if_last,
            Round::Conflict { .. } => {}
        }
    }
    Err(ApiError::unavailable(
        "the room changed concurrently; retry",
    ))
}

/// Loads a hosted room's record, 404 if this hub does not host it.
async fn load_record(state: &AppState, room_id: &MimiUri) -> Result<RoomRecord, ApiError> {
    state
        .store
        .load_room(room_id.as_str())
        .await?
        .ok_or_else(|| no_such_room(room_id))
}

fn no_such_room(room_id: &MimiUri) -> ApiError {
    ApiError::not_found(format!("no room {room_id} on this hub"))
}

// ---- Room creation (client API) ---------------------------------------------

/// Starts hosting a room created by `creator` (a device of this provider)
/// from its `MLSMessage(GroupInfo)` and TLS `RatchetTree`; the creator's
/// device is subscribed.
pub async fn create_room(
    state: &AppState,
    creator: &AuthenticatedDevice,
    room_id: &str,
    group_info: &[u8],
    ratchet_tree: &[u8],
) -> Result<(), ApiError> {
    let created = state
        .hub
        .create_room(&creator.device, room_id, group_info, ratchet_tree)
        .map_err(|rejection| match rejection {
            CreateRoomRejection::ForeignDomain { .. } => ApiError::forbidden(rejection.to_string()),
            _ => ApiError::bad_request(rejection.to_string()),
        })?;
    let room_id = created.room_id;
    // room-policy §Base Room policy: "A parent-dependent room is always
    // hosted on the same Hub as the parent room", and holds only its
    // participants.
    let parent_room = state
        .hub
        .parent_room(&created.state)
        .map_err(ApiError::internal)?;
    if let Some(parent) = &parent_room {
        let record = state.store.load_room(parent).await?.ok_or_else(|| {
            ApiError::bad_request(format!(
                "the parent room {parent} is not hosted here; a parent-dependent room lives on its parent's hub (room-policy §Base Room policy)"
            ))
        })?;
        state
            .hub
            .check_parent(&created.state, &record.group_state)
            .map_err(|violation| ApiError::bad_request(violation.to_string()))?;
    }
    let result = state
        .store
        .create_room(NewRoom {
            room_id: room_id.as_str().to_owned(),
            epoch: created.epoch,
            group_state: created.state,
            created_at_ms: now_ms(),
            fixed_membership_key: created.fixed_membership_key,
            parent_room,
        })
        .await;
    match result {
        Ok(_) => {}
        Err(StoreError::RoomExists(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("room {room_id} already exists"),
            ));
        }
        // room-policy §Base Room policy: one fixed-membership room per set
        // of participants.
        Err(e @ StoreError::FixedMembershipExists { .. }) => {
            return Err(ApiError::new(StatusCode::CONFLICT, e.to_string()));
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

// ---- update (-06 §5.3) ---------------------------------------------------------

/// `POST /update/{roomId}` (-06 §5.3): a commit or a set of proposals.
/// Every answer is an `UpdateRoomResponse`; only an unknown room (404) and
/// internal failures are HTTP errors.
pub async fn update(
    state: &AppState,
    room_id: &MimiUri,
    requester: &Requester,
    request: UpdateRequest,
) -> Result<UpdateRoomResponse, ApiError> {
    // A request whose answer was lost comes again byte for byte: it gets
    // the original `success`, not a `wrongEpoch` for its own commit nor a
    // second copy of its proposals (runtime::Replies, S26).
    let digest = request_digest(&request);
    if let Some(digest) = digest
        && let Some(answer) = state.runtime.update_replies().get(room_id.as_str(), digest)
        && let Ok(response) = UpdateRoomResponse::from_body(&answer)
    {
        tracing::info!(room = %room_id, "update repeated; answered with its acceptance");
        return Ok(response);
    }
    let Updated {
        response,
        participants_dropped,
    } = compare_and_set_rounds(|_| update_round(state, room_id, requester, &request)).await?;
    // A commit that dropped participants: the room's parent-dependent
    // rooms must drop them too (room-policy §Base Room policy, C21).
    if participants_dropped {
        follow_parent_in_children(state, room_id.as_str()).await;
    }
    if let Some(digest) = digest
        && response.response_code() == UpdateResponseCode::Success
        && let Ok(answer) = response.to_body()
    {
        state
            .runtime
            .update_replies()
            .put(room_id.as_str(), digest, answer);
    }
    Ok(response)
}

/// SHA-256 of a request's encoding, the key of runtime::Replies.
fn request_digest(request: &impl MessageBody) -> Option<[u8; 32]> {
    request
        .to_body()
        .map(|body| <[u8; 32]>::from(Sha256::digest(body)))
        .ok()
}

/// The answer of an [`update`], and what the hub does next.
struct Updated {
    response: UpdateRoomResponse,
    participants_dropped: bool,
}

impl From<UpdateRoomResponse> for Updated {
    fn from(response: UpdateRoomResponse) -> Self {
        Self {
            response,
            participants_dropped: false,
        }
    }
}

/// One round of [`update`].
async fn update_round(
    state: &AppState,
    room_id: &MimiUri,
    requester: &Requester,
    request: &UpdateRequest,
) -> Result<Round<Updated>, ApiError> {
    let record = load_record(state, room_id).await?;
    // A parent-dependent room follows its parent's participants
    // (room-policy §Base Room policy, C21): its commits are decided
    // against the parent's list, and whoever the parent dropped has its
    // clients' removal proposed by the hub first (if an earlier attempt
    // did not get to it), which the commit must then include.
    let parent = match &record.parent_room {
        None => None,
        Some(parent) => match state.store.load_room(parent).await? {
            Some(parent) => Some(parent.group_state),
            None => {
                let rejection = UpdateRejection::RoleConstraint(
                    mimi_room::rejection::PolicyViolation::BasePolicy(format!(
                        "the parent room {parent} is not hosted here"
                    )),
                );
                log_update_refusal(room_id, &rejection);
                return Ok(Round::Answer(rejection.response().into()));
            }
        },
    };
    let accepted_at = now_ms();
    // The room this server's last accepted update left, if the stored
    // state is still the one it wrote (runtime::CommitRooms).
    let room = match state
        .runtime
        .commit_rooms()
        .take(room_id.as_str(), record.state_version)
    {
        Some(room) => room,
        None => StoredRoom::decode(&record.group_state).map_err(ApiError::internal)?,
    };
    let decision = state
        .hub
        .update_room(room, parent.as_deref(), requester, request, accepted_at)
        .map_err(ApiError::internal)?;
    let AcceptedUpdate {
        commit,
        new_epoch,
        new_state,
        room,
        event,
        fanout,
        routes,
        response,
        participants_dropped,
    } = match decision {
        // The hub's own failure is not a refusal of the request: 500, so
        // the sender retries rather than reading a policy decision.
        UpdateDecision::Rejected(rejection @ UpdateRejection::Internal(_)) => {
            return Err(ApiError::internal(rejection));
        }
        UpdateDecision::Rejected(rejection) => {
            log_update_refusal(room_id, &rejection);
            return Ok(Round::Answer(rejection.response().into()));
        }
        // Stored (or the room moved meanwhile): decide again.
        UpdateDecision::HubProposalsFirst(proposals) => {
            store_hub_proposals(state, &record, proposals).await?;
            return Ok(Round::Conflict {
                if_last: Err(ApiError::unavailable(
                    "the room changed concurrently; retry",
                )),
            });
        }
        UpdateDecision::Accepted(accepted) => accepted,
    };
    if !routes.is_empty() {
        let routes = routes
            .into_iter()
            .map(|r| (r.key_package_ref, r.provider))
            .collect();
        state
            .store
            .record_key_package_routes(room_id.as_str(), routes)
            .await?;
    }
    let routed = route_fanout(state, room_id.as_str(), fanout).await?;
    let event = AcceptedEvent {
        room_id: room_id.as_str().to_owned(),
        expected_epoch: record.epoch,
        new_epoch,
        expected_state_version: Some(record.state_version),
        new_group_state: Some(new_state),
        event,
        accepted_at_ms: accepted_at,
        deliveries: routed.remote,
        local: routed.local,
    };
    let size = event.new_group_state.as_ref().map_or(0, Vec::len);
    match state.store.accept_room_event(event).await {
        Ok(outcome) => {
            state.runtime.wake_fanout();
            logged_with_accept(state, room_id.as_str(), &routed.local_items, outcome.logged);
            state
                .runtime
                .commit_rooms()
                .put(room_id.as_str(), outcome.state_version, size, *room);
            tracing::info!(room = %room_id, epoch = new_epoch, seq = outcome.seq, commit, "update accepted");
            Ok(Round::Answer(Updated {
                response,
                participants_dropped,
            }))
        }
        // Another commit won this epoch (-06 §5.3: one commit per epoch).
        Err(StoreError::EpochConflict { current_epoch }) if commit => {
            Ok(Round::Answer(wrong_epoch_response(current_epoch).into()))
        }
        Err(StoreError::EpochConflict { current_epoch }) => Ok(Round::Conflict {
            if_last: Ok(wrong_epoch_response(current_epoch).into()),
        }),
        // A same-epoch write (a queued proposal) raced this one: the epoch
        // did not change, so `wrongEpoch` would be wrong (-06 §5.3); as
        // for submitMessage, the sender is asked to retry.
        Err(StoreError::StateVersionConflict { .. }) => Ok(Round::Conflict {
            if_last: Err(ApiError::unavailable(
                "the room changed concurrently; retry",
            )),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Queues the hub's Removes of the clients of every participant of the
/// child room `record` that its parent (stored as `parent`) no longer
/// has (room-policy §Base Room policy, C21), as one proposals event.
/// `true` if it stored them; `false` if there was nothing to propose or
/// the room moved on meanwhile (the caller's next round sees it).
async fn propose_parent_removals(
    state: &AppState,
    record: &RoomRecord,
    parent: &[u8],
) -> Result<bool, ApiError> {
    let Some(proposals) = state
        .hub
        .parent_removals(&record.group_state, parent, now_ms())
        .map_err(ApiError::internal)?
    else {
        return Ok(false);
    };
    store_hub_proposals(state, record, proposals).await
}

/// Stores the hub's own `proposals` in the room `record`; `false` when
/// the room moved on meanwhile.
async fn store_hub_proposals(
    state: &AppState,
    record: &RoomRecord,
    proposals: HubProposals,
) -> Result<bool, ApiError> {
    let accepted_at = proposals.accepted_at_ms;
    let routed = route_fanout(state, &record.room_id, vec![proposals.fanout]).await?;
    let event = AcceptedEvent {
        room_id: record.room_id.clone(),
        expected_epoch: record.epoch,
        new_epoch: proposals.epoch,
        expected_state_version: Some(record.state_version),
        new_group_state: Some(proposals.new_state),
        event: proposals.event,
        accepted_at_ms: accepted_at,
        deliveries: routed.remote,
        local: routed.local,
    };
    match state.store.accept_room_event(event).await {
        Ok(outcome) => {
            state.runtime.wake_fanout();
            logged_with_accept(state, &record.room_id, &routed.local_items, outcome.logged);
            tracing::info!(
                room = %record.room_id,
                seq = outcome.seq,
                removals = proposals.count,
                "hub proposed removals: the parent room dropped participants"
            );
            Ok(true)
        }
        Err(StoreError::EpochConflict { .. } | StoreError::StateVersionConflict { .. }) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// After a commit in `parent_room`, makes each of its parent-dependent
/// rooms follow its participants: the hub proposes the removal of the
/// clients of whoever the parent dropped (C21). The parent's commit is
/// already accepted, so failures are logged, not answered; the child's
/// next update retries them ([`update_round`]).
async fn follow_parent_in_children(state: &AppState, parent_room: &str) {
    let children = match state.store.child_rooms(parent_room).await {
        Ok(children) => children,
        Err(error) => {
            tracing::warn!(room = %parent_room, %error, "could not list the room's children");
            return;
        }
    };
    for child in children {
        for _ in 0..3 {
            let result = async {
                let parent = state.store.load_room(parent_room).await?;
                let record = state.store.load_room(&child).await?;
                match (parent, record) {
                    (Some(parent), Some(record)) => {
                        propose_parent_removals(state, &record, &parent.group_state).await
                    }
                    _ => Ok(false),
                }
            }
            .await;
            match result {
                // Stored, or nothing (more) to propose: re-check once it
                // is stored, in case the room moved meanwhile.
                Ok(true) => continue,
                Ok(false) => break,
                Err(error) => {
                    tracing::warn!(room = %child, %error, "could not follow the parent room");
                    break;
                }
            }
        }
    }
}

fn log_update_refusal(room_id: &MimiUri, rejection: &UpdateRejection) {
    tracing::info!(room = %room_id, %rejection, "update refused");
}

// ---- submitMessage (-06 §5.4) ----------------------------------------------------

/// The cached view of a room, or a fresh load when `fresh` or not cached.
async fn submit_view(
    state: &AppState,
    room_id: &MimiUri,
    fresh: bool,
) -> Result<Arc<CachedView>, ApiError> {
    let views = state.runtime.submit_views();
    if !fresh && let Some(hit) = views.get(room_id.as_str()) {
        return Ok(hit);
    }
    let record = match load_record(state, room_id).await {
        Ok(record) => record,
        Err(e) => {
            views.put(room_id.as_str(), None);
            return Err(e);
        }
    };
    let cached = Arc::new(CachedView {
        state_version: record.state_version,
        view: SubmitView::new(&record.group_state).map_err(ApiError::internal)?,
    });
    views.put(room_id.as_str(), Some(cached.clone()));
    Ok(cached)
}

/// `POST /submitMessage/{roomId}` (-06 §5.4); franking per -06 §5.4.1
/// (see [`mimi_room::engine::HubEngine::submit`]).
pub async fn submit_message(
    state: &AppState,
    room_id: &MimiUri,
    requester: &Requester,
    request: SubmitMessageRequest,
) -> Result<SubmitMessageResponse, ApiError> {
    // A `sendingUri` that is not a user URI is the engine's `notAllowed`
    // (SubmitRejection::SendingUri), in the response body like every
    // other refusal (docs/divergences.md S9).
    // A request whose answer was lost comes again byte for byte: it gets
    // the original acceptance, not a second event (runtime::Replies).
    let digest = request_digest(&request);
    if let Some(digest) = digest
        && let Some(answer) = state.runtime.submit_replies().get(room_id.as_str(), digest)
        && let Ok(response) = SubmitMessageResponse::from_body(&answer)
    {
        tracing::info!(room = %room_id, "submitMessage repeated; answered with its acceptance");
        return Ok(response);
    }
    let response = compare_and_set_rounds(|attempt| {
        submit_round(state, room_id, requester, &request, attempt)
    })
    .await?;
    if let Some(digest) = digest
        && matches!(response.status, SubmitStatus::Accepted { .. })
        && let Ok(answer) = response.to_body()
    {
        state
            .runtime
            .submit_replies()
            .put(room_id.as_str(), digest, answer);
    }
    Ok(response)
}

/// One round of [`submit_message`]; the first may use a cached view.
async fn submit_round(
    state: &AppState,
    room_id: &MimiUri,
    requester: &Requester,
    request: &SubmitMessageRequest,
    attempt: u32,
) -> Result<Round<SubmitMessageResponse>, ApiError> {
    let cached = submit_view(state, room_id, attempt > 0).await?;
    let accepted_at = now_ms();
    let decision = state
        .hub
        .submit(&cached.view, room_id, requester, request, accepted_at);
    let (epoch, event, fanout, response) = match decision {
        SubmitDecision::Rejected(rejection @ SubmitRejection::RoomState(_)) => {
            return Err(ApiError::internal(rejection));
        }
        SubmitDecision::Rejected(rejection) => {
            tracing::info!(room = %room_id, %rejection, "submitMessage refused");
            return Ok(Round::Answer(rejection.response()));
        }
        // A newer epoch than the cached one: check against a fresh load.
        SubmitDecision::Stale => {
            return Ok(Round::Conflict {
                if_last: Ok(SubmitRejection::EpochInFuture {
                    epoch: cached.view.epoch() + 1,
                    current_epoch: cached.view.epoch(),
                }
                .response()),
            });
        }
        SubmitDecision::Accepted {
            epoch,
            event,
            fanout,
            response,
        } => (epoch, event, fanout, response),
    };
    let routed = route_fanout(state, room_id.as_str(), vec![fanout]).await?;
    let event = AcceptedEvent {
        room_id: room_id.as_str().to_owned(),
        expected_epoch: epoch,
        new_epoch: epoch,
        // The state the decision was made on: a commit or queued
        // proposal since (here or in another server process) makes
        // this compare-and-set fail, and the message is re-checked.
        expected_state_version: Some(cached.state_version),
        new_group_state: None,
        event,
        accepted_at_ms: accepted_at,
        deliveries: routed.remote,
        local: routed.local,
    };
    match state.store.accept_room_event(event).await {
        Ok(outcome) => {
            state.runtime.wake_fanout();
            logged_with_accept(state, room_id.as_str(), &routed.local_items, outcome.logged);
            Ok(Round::Answer(response))
        }
        // A commit or proposal moved the room on meanwhile: re-check
        // from the new state (which answers epochTooOld).
        Err(StoreError::EpochConflict { current_epoch }) => Ok(Round::Conflict {
            if_last: Ok(SubmitRejection::EpochTooOld { current_epoch }.response()),
        }),
        Err(StoreError::StateVersionConflict { .. }) => Ok(Round::Conflict {
            if_last: Err(ApiError::unavailable(
                "the room changed concurrently; retry",
            )),
        }),
        Err(e) => Err(e.into()),
    }
}

// ---- groupInfo (-06 §5.6) ----------------------------------------------------------

/// `POST /groupInfo/{roomId}` (-06 §5.6): see
/// [`mimi_room::engine::HubEngine::group_info`].
///
/// Returns the HTTP status with the response: 200 whenever the body is a
/// `GroupInfoResponse` (its status says success, `notAuthorized` or
/// `noSuchRoom`; docs/divergences.md S15).
pub async fn group_info(
    state: &AppState,
    room_id: &MimiUri,
    requester: &Requester,
    request: GroupInfoRequest,
) -> Result<(StatusCode, GroupInfoResponse), ApiError> {
    let client = match state.hub.check_group_info_request(requester, &request) {
        Ok(client) => client,
        Err(rejection) => return group_info_refusal(room_id, rejection),
    };
    let Some(record) = state.store.load_room(room_id.as_str()).await? else {
        return Ok((
            StatusCode::OK,
            group_info_failure(room_id, GroupInfoResponseBody::NoSuchRoom),
        ));
    };
    match state.hub.group_info(
        &record.group_state,
        room_id,
        &client,
        &request,
        crate::state::now_ms(),
    ) {
        Ok(response) => Ok((StatusCode::OK, response)),
        Err(rejection) => group_info_refusal(room_id, rejection),
    }
}

fn group_info_refusal(
    room_id: &MimiUri,
    rejection: GroupInfoRejection,
) -> Result<(StatusCode, GroupInfoResponse), ApiError> {
    match rejection.answer() {
        GroupInfoAnswer::NotAuthorized => {
            tracing::info!(room = %room_id, reason = %rejection, "groupInfo refused");
            Ok((
                StatusCode::OK,
                group_info_failure(room_id, GroupInfoResponseBody::NotAuthorized),
            ))
        }
        GroupInfoAnswer::BadRequest => Err(ApiError::bad_request(rejection.to_string())),
        GroupInfoAnswer::Unavailable => Err(ApiError::unavailable(rejection.to_string())),
        GroupInfoAnswer::Internal => Err(ApiError::internal(rejection)),
    }
}

/// Parses a room path parameter (axum has already percent-decoded it).
pub fn parse_room_id(raw: &str) -> Result<MimiUri, ApiError> {
    MimiUri::parse(raw)
        .ok()
        .filter(|uri| uri.kind() == MimiUriKind::Room)
        .ok_or_else(|| ApiError::bad_request("roomId is not a mimi://<domain>/r/<id> URI"))
}
