//! `submitMessage` (-06 §5.4) and the hub's franking (-06 §5.4.1).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use mimi_protocol::msgs::{
    FanoutBody, FanoutMessage, Frank, ServerFrankingContext, SubmitMessageRequest,
    SubmitMessageResponse, SubmitStatus,
};
use mimi_protocol::{IdentifierUri, MimiUri, MimiUriKind, Protocol};
use openmls::framing::PrivateMessageIn;
use openmls::prelude::{ContentType, ProtocolMessage};
use tls_codec::Serialize as _;

use super::{Fanout, HubEngine, Requester, timestamp};
use crate::rejection::SubmitRejection;
use crate::stored::StoredRoom;
use crate::{HubRoom, RoomError};

/// What submitMessage needs of a room, kept by the server between
/// requests so a submit does not restore the openmls PublicGroup from the
/// stored bytes each time (the cost grows with the group). The server must
/// accept with a compare-and-set on the state version the view was made
/// from, so a stale view can never accept a message.
pub struct SubmitView {
    hub: HubRoom,
    /// Where application messages go ([`HubRoom::receiving_domains`]),
    /// besides the sender's own provider.
    domains: BTreeSet<String>,
    /// `authorize_message` verdicts per sending user for the view's epoch
    /// (a pure function of the viewed state).
    verdicts: Mutex<HashMap<String, Result<(), SubmitRejection>>>,
}

impl SubmitView {
    /// A view of the room stored as `state`.
    pub fn new(state: &[u8]) -> Result<Self, RoomError> {
        let hub = StoredRoom::decode(state)?.hub;
        Ok(Self {
            domains: hub.receiving_domains()?,
            hub,
            verdicts: Mutex::default(),
        })
    }

    pub fn epoch(&self) -> u64 {
        self.hub.epoch()
    }

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

/// What the hub decided about a submitted message.
#[derive(Debug)]
pub enum SubmitDecision {
    Rejected(SubmitRejection),
    /// The message names a newer epoch than the view: decide again on a
    /// freshly loaded room.
    Stale,
    Accepted {
        /// The epoch the message was accepted in (the compare-and-set's).
        epoch: u64,
        /// The FanoutMessage, encoded: the room log entry and the payload
        /// of `fanout`.
        event: Vec<u8>,
        fanout: Fanout,
        response: SubmitMessageResponse,
    },
}

/// The `sendingUri` of a submit request as a user URI.
pub fn sending_user(request: &SubmitMessageRequest) -> Result<MimiUri, SubmitRejection> {
    request
        .sending_uri
        .as_str()
        .and_then(|s| MimiUri::parse(s).ok())
        .filter(|uri| uri.kind() == MimiUriKind::User)
        .ok_or(SubmitRejection::SendingUri)
}

/// A SubmitMessageResponse with `status`.
pub fn submit_response(status: SubmitStatus) -> SubmitMessageResponse {
    SubmitMessageResponse {
        protocol: Protocol::Mls10,
        status,
    }
}

impl SubmitRejection {
    /// The SubmitMessageResponse for this refusal (-06 §5.4).
    pub fn response(&self) -> SubmitMessageResponse {
        submit_response(match self {
            Self::EpochTooOld { current_epoch } => SubmitStatus::EpochTooOld {
                current_epoch: *current_epoch,
            },
            _ => SubmitStatus::NotAllowed,
        })
    }
}

impl HubEngine {
    /// Decides a submitted application message on `view`, accepted (if it
    /// is) at `accepted_at_ms`: a PrivateMessage with application content
    /// from an active participant, in the current epoch, goes to every
    /// member provider. When the message carries a `frank_aad` franking
    /// tag and the room's `franking_signature_key` component names this
    /// hub's franking key, the hub franks it (-06 §5.4.1): the frank is
    /// returned and fanned out with the message. The hub reads only the
    /// clear-text Safe AAD; the content stays encrypted.
    pub fn submit(
        &self,
        view: &SubmitView,
        room_id: &MimiUri,
        requester: &Requester,
        request: &SubmitMessageRequest,
        accepted_at_ms: i64,
    ) -> SubmitDecision {
        match self.try_submit(view, room_id, requester, request, accepted_at_ms) {
            Ok(decision) => decision,
            Err(rejection) => SubmitDecision::Rejected(rejection),
        }
    }

    fn try_submit(
        &self,
        view: &SubmitView,
        room_id: &MimiUri,
        requester: &Requester,
        request: &SubmitMessageRequest,
        accepted_at: i64,
    ) -> Result<SubmitDecision, SubmitRejection> {
        let user = sending_user(request)?;
        if !requester.speaks_for_user(&user) {
            return Err(SubmitRejection::RequesterMayNotSendAs {
                user: user.to_string(),
            });
        }
        let private = application_message(request)?;
        let epoch = private.epoch().as_u64();
        if private.group_id() != view.hub.group_id() {
            return Err(SubmitRejection::OtherGroup);
        }
        if epoch > view.hub.epoch() {
            return Ok(SubmitDecision::Stale);
        }
        view.authorize(epoch, user.as_str())?;
        let frank = match view.hub.franking_tag(&private)? {
            Some(tag) => self.frank(&view.hub, room_id, request, &tag, accepted_at)?,
            None => None,
        };
        let message = FanoutMessage {
            timestamp: timestamp(accepted_at),
            message: request.app_message.clone(),
            body: FanoutBody::Application {
                frank: frank.clone(),
            },
        };
        let event = message
            .tls_serialize_detached()
            .map_err(|e| SubmitRejection::RoomState(RoomError::CorruptState(e.to_string())))?;
        // The sender's provider always gets the message back: its
        // clients settle a sent message by the hub's echo.
        let mut destinations = view.domains.clone();
        destinations.insert(user.domain().to_owned());
        Ok(SubmitDecision::Accepted {
            epoch,
            fanout: Fanout {
                destinations,
                payload: event.clone(),
            },
            event,
            response: submit_response(SubmitStatus::Accepted {
                accepted_timestamp: timestamp(accepted_at),
                frank,
            }),
        })
    }

    /// The hub's frank of an accepted message (-06 §5.4.1 "Hub
    /// processing"), or `None` when the room's franking agent is not this
    /// hub (absent, or another key): the hub only signs with the key the
    /// room's members verify against. That key is the hub's franking key
    /// of the room suite's signature scheme (-06 §5.4.1: "the same as the
    /// signature algorithm of cipher suite of the MLS group"), and
    /// `franking_signature_ciphersuite` is the room's suite, the one "in
    /// use at the time the message is franked". The context binds the sender
    /// asserted in `sendingUri` (already checked to be a participant of
    /// the requester), the room and the acceptance time.
    fn frank(
        &self,
        hub: &HubRoom,
        room_id: &MimiUri,
        request: &SubmitMessageRequest,
        franking_tag: &[u8; 32],
        accepted_at: i64,
    ) -> Result<Option<Frank>, SubmitRejection> {
        let agent = hub.franking_agent().map_err(SubmitRejection::RoomState)?;
        let ciphersuite = hub.public_group().ciphersuite();
        let Some(key) = self.franking_key(ciphersuite) else {
            return Ok(None);
        };
        if agent.as_ref() != Some(&key.agent_data()) {
            return Ok(None);
        }
        let context = ServerFrankingContext {
            sender_uri: request.sending_uri.clone(),
            room_uri: IdentifierUri::new(room_id.as_str()),
            accepted_timestamp: timestamp(accepted_at),
        };
        key.frank(franking_tag, context, ciphersuite.into())
            .map(Some)
            .map_err(|e| SubmitRejection::RoomState(RoomError::CorruptState(e.to_string())))
    }
}

/// The request's `appMessage` as an application PrivateMessage.
fn application_message(
    request: &SubmitMessageRequest,
) -> Result<PrivateMessageIn, SubmitRejection> {
    match request.app_message.clone().try_into_protocol_message().ok() {
        Some(ProtocolMessage::PrivateMessage(m))
            if m.content_type() == ContentType::Application =>
        {
            Ok(m)
        }
        _ => Err(SubmitRejection::NotApplicationMessage),
    }
}
