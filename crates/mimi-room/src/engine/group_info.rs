//! `groupInfo` (-06 §5.6): a new client of an existing participant asks
//! for what it needs to join by external commit.

use mimi_protocol::MimiUri;
use mimi_protocol::Protocol;
use mimi_protocol::components::room_policy::capabilities::CAN_ADD_OWN_CLIENT;
use mimi_protocol::msgs::{
    GroupInfoCode, GroupInfoRatchetTreeTbe, GroupInfoRequest, GroupInfoResponse,
    GroupInfoResponseBody, GroupInfoResponseTbs, RatchetTreeOption,
};

use super::{HubEngine, Requester};
use crate::identity::{ClientIdentity, client_identity};
use crate::policy::join_links;
use crate::policy::preauth::Claims;
use crate::rejection::GroupInfoRejection;
use crate::stored::StoredRoom;

/// A groupInfo answer without the GroupInfo: `notAuthorized` or
/// `noSuchRoom` (-06 §5.6).
pub fn group_info_failure(room_id: &MimiUri, body: GroupInfoResponseBody) -> GroupInfoResponse {
    GroupInfoResponse {
        protocol: Protocol::Mls10,
        room_id: room_id.as_str().as_bytes().to_vec().into(),
        body,
    }
}

/// The device named by a request's requesting credential.
pub fn requesting_device(request: &GroupInfoRequest) -> Option<ClientIdentity> {
    client_identity(&request.requesting_credential).ok()
}

impl HubEngine {
    /// Checks what can be checked before the room is loaded: protocol,
    /// cipher suite, the request signature, and that the requesting client
    /// is one the requester speaks for. Returns the requesting client.
    pub fn check_group_info_request(
        &self,
        requester: &Requester,
        request: &GroupInfoRequest,
    ) -> Result<ClientIdentity, GroupInfoRejection> {
        if request.protocol != Protocol::Mls10 {
            return Err(GroupInfoRejection::UnsupportedProtocol);
        }
        // -06 §5.6: the request's suite "merely needs to be one
        // ciphersuite in common with the hub"; it picks the algorithms of
        // both signatures, so the hub needs a key of its scheme.
        if request
            .cipher_suite
            .to_openmls()
            .and_then(|cs| self.hub_key(cs))
            .is_none()
        {
            return Err(GroupInfoRejection::UnsupportedCipherSuite {
                cipher_suite: request.cipher_suite.0,
            });
        }
        if request.verify(self.crypto()).is_err() {
            return Err(GroupInfoRejection::BadSignature);
        }
        let client = requesting_device(request).ok_or(GroupInfoRejection::NoDevice)?;
        if !requester.speaks_for_device(&client.device) {
            return Err(GroupInfoRejection::NotRequestersClient);
        }
        Ok(client)
    }

    /// Answers a checked request on the room stored as `state` at `now_ms`:
    /// the requesting user must be a participant whose role may be active
    /// and has `canAddOwnClient`, or a user not in the participant list
    /// who may join by itself: preauthorized, an open room, or holding a
    /// valid `joiningCode` (a join link, C27). The answer is the latest GroupInfo, the
    /// ratchet tree and the pending proposals, HPKE-encrypted to
    /// `groupInfoPublicKey` with the room ID as context, signed by the
    /// hub's key of the request's suite (its `hub_sender`).
    pub fn group_info(
        &self,
        state: &[u8],
        room_id: &MimiUri,
        client: &ClientIdentity,
        request: &GroupInfoRequest,
        now_ms: i64,
    ) -> Result<GroupInfoResponse, GroupInfoRejection> {
        let room = StoredRoom::decode(state).map_err(GroupInfoRejection::RoomState)?;
        let policy = room
            .hub
            .policy_state()
            .map_err(GroupInfoRejection::RoomState)?;
        let user = client.user.as_str();
        // A participant adding its own client, or a user who is not in the
        // participant list and may join by itself (preauthorization, open
        // join: room-policy §Adding).
        let own_client = policy.may_be_active(user) && policy.has(user, CAN_ADD_OWN_CLIENT);
        let not_listed = policy.role_of(user) == 0;
        let self_join = not_listed
            && policy
                .self_join_role(Claims::of(client).first_role(&policy.preauth))
                .is_some();
        if !(own_client || self_join) {
            // A join code is looked at only when nothing else lets the
            // user in, and then must be valid (room-policy §Adding).
            match &request.joining_code {
                Some(code) if not_listed => {
                    let now = u64::try_from(now_ms / 1000).ok();
                    join_links::grant(&policy, code.as_slice(), now)
                        .map_err(GroupInfoRejection::JoinCode)?;
                }
                _ => return Err(GroupInfoRejection::MayNotAddOwnClient),
            }
        }
        let group_info = room
            .latest_group_info
            .clone()
            .ok_or(GroupInfoRejection::NoGroupInfoYet)?;
        let tbe = GroupInfoRatchetTreeTbe {
            group_info,
            ratchet_tree_option: RatchetTreeOption::Full(
                room.hub.public_group().export_ratchet_tree().into(),
            ),
            pending_proposals: room.pending_proposals,
        };
        let hub_key = request
            .cipher_suite
            .to_openmls()
            .and_then(|cs| self.hub_key(cs))
            .ok_or(GroupInfoRejection::UnsupportedCipherSuite {
                cipher_suite: request.cipher_suite.0,
            })?;
        let room_id_bytes = room_id.as_str().as_bytes();
        let encrypted = tbe
            .seal(
                self.crypto(),
                request.cipher_suite,
                request.group_info_public_key.as_slice(),
                room_id_bytes,
            )
            .map_err(|e| GroupInfoRejection::GroupInfoPublicKey {
                detail: e.to_string(),
            })?;
        GroupInfoResponseTbs {
            protocol: Protocol::Mls10,
            room_id: room_id_bytes.to_vec().into(),
            status: GroupInfoCode::Success,
            cipher_suite: request.cipher_suite,
            hub_sender: hub_key.external_sender(),
            encrypted_groupinfo_and_tree: encrypted,
        }
        .sign(&hub_key.signer)
        .map_err(|e| {
            GroupInfoRejection::RoomState(crate::RoomError::CorruptState(format!(
                "signing the response: {e}"
            )))
        })
    }
}
