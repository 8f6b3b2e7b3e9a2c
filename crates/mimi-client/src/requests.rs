//! Signed requests a client makes through its provider: fetching key
//! material (-06 §5.2) and claiming group key information for an external
//! join (-06 §5.6), with the HPKE `EncryptWithLabel` of RFC 9420 §5.1.3
//! that protects the GroupInfo in transit.

use mimi_protocol::Protocol;
use mimi_protocol::msgs::group_info::{GROUP_INFO_ENCRYPTION_LABEL, decrypt_with_label};
use mimi_protocol::msgs::{
    ClientMaterial, GroupInfoCode, GroupInfoRatchetTreeTbe, GroupInfoRequest, GroupInfoRequestTbs,
    GroupInfoResponse, GroupInfoResponseBody, KeyMaterialRequest, KeyMaterialRequestTbs,
    KeyMaterialResponse, RatchetTreeOption, UpdateRequest,
};
use mimi_protocol::uri::MimiUri;
use mimi_protocol::{IdentifierUri, decode_exact};
use openmls::prelude::*;
use openmls_traits::crypto::OpenMlsCrypto;

use mimi_room::identity::ClientIdentity;
use mimi_room::policy::RoomPolicyState;
use mimi_room::policy::join_links;
use mimi_room::policy::preauth::Claims;

use crate::device::{Device, required_capabilities};
use crate::error::{Error, Result};

/// The HPKE key pair of one GroupInfoRequest; keep it until the response
/// arrives.
pub struct GroupInfoKey {
    room: String,
    private_key: Vec<u8>,
}

impl std::fmt::Debug for GroupInfoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupInfoKey")
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// A signed `KeyMaterialRequest` for `target_user`'s KeyPackages
    /// (-06 §5.2), optionally for a specific room, asking for the
    /// device's cipher suite and this library's required capabilities.
    pub fn key_material_request(
        &self,
        target_user: &str,
        room: Option<&str>,
    ) -> Result<KeyMaterialRequest> {
        let target = MimiUri::parse(target_user)?;
        let room_id = match room {
            Some(r) => MimiUri::parse(r)?.to_identifier_uri(),
            None => IdentifierUri::new(""),
        };
        KeyMaterialRequestTbs {
            protocol: Protocol::Mls10,
            requesting_user: self.user.to_identifier_uri(),
            target_user: target.to_identifier_uri(),
            room_id,
            acceptable_ciphersuites: vec![self.ciphersuite.into()],
            required_capabilities: required_capabilities(),
            requester_signature_key: self.signer.public().into(),
            requester_credential: self.credential.credential.clone(),
        }
        .sign(&self.signer)
        .map_err(|e| Error::mls("signing a KeyMaterialRequest", e))
    }

    /// A signed `GroupInfoRequest` (-06 §5.6) with a fresh HPKE key for the
    /// response, to join `room` by external commit.
    pub fn group_info_request(
        &self,
        room: &str,
        joining_code: Option<Vec<u8>>,
    ) -> Result<(GroupInfoRequest, GroupInfoKey)> {
        let room = MimiUri::parse(room)?;
        let ikm = self
            .provider
            .rand()
            .random_vec(32)
            .map_err(|e| Error::mls("randomness", e))?;
        let keys = self
            .provider
            .crypto()
            .derive_hpke_keypair(self.ciphersuite.hpke_config(), &ikm)
            .map_err(|e| Error::mls("HPKE key generation", e))?;
        let request = GroupInfoRequestTbs {
            protocol: Protocol::Mls10,
            cipher_suite: self.ciphersuite.into(),
            requesting_signature_key: self.signer.public().into(),
            requesting_credential: self.credential.credential.clone(),
            group_info_public_key: keys.public.clone().into(),
            joining_code: joining_code.map(Into::into),
        }
        .sign(&self.signer)
        .map_err(|e| Error::mls("signing a GroupInfoRequest", e))?;
        Ok((
            request,
            GroupInfoKey {
                room: room.as_str().to_owned(),
                private_key: keys.private.to_vec(),
            },
        ))
    }

    /// Verifies and decrypts a `GroupInfoResponse` (-06 §5.6): the hub's
    /// signature, the room, and `encrypted_groupinfo_and_tree`. Whether
    /// `hub_sender` really is the room's hub is checked against the
    /// `external_senders` of the GroupInfo when the room has one.
    pub fn open_group_info_response(
        &self,
        key: &GroupInfoKey,
        response: &GroupInfoResponse,
    ) -> Result<GroupInfoRatchetTreeTbe> {
        let success = match &response.body {
            GroupInfoResponseBody::Success(s) => s,
            other => {
                return Err(Error::GroupInfoRefused(match other.status() {
                    GroupInfoCode::NoSuchRoom => "the hub has no such room".to_owned(),
                    GroupInfoCode::NotAuthorized => {
                        "notAuthorized: this user may not join the room (not a participant \
                         who may add its own clients, not preauthorized, the room is not \
                         open to join, and no valid join link was given)"
                            .to_owned()
                    }
                    code => format!("{code:?}"),
                }));
            }
        };
        debug_assert_eq!(response.status(), GroupInfoCode::Success);
        if response.room_id.as_slice() != key.room.as_bytes() {
            return Err(Error::InvalidMessage(
                "GroupInfoResponse is for another room".into(),
            ));
        }
        response
            .verify(self.provider.crypto())
            .map_err(|e| Error::InvalidMessage(format!("GroupInfoResponse signature: {e}")))?;
        let plaintext = decrypt_with_label(
            self.provider.crypto(),
            success.cipher_suite,
            &key.private_key,
            GROUP_INFO_ENCRYPTION_LABEL,
            key.room.as_bytes(),
            &success.encrypted_groupinfo_and_tree,
        )
        .map_err(|e| Error::InvalidMessage(format!("encrypted_groupinfo_and_tree: {e}")))?;
        let tbe: GroupInfoRatchetTreeTbe = decode_exact(&plaintext)
            .map_err(|e| Error::InvalidMessage(format!("GroupInfoRatchetTreeTBE: {e}")))?;
        if let Some(senders) = tbe
            .group_info
            .group_context()
            .extensions()
            .external_senders()
            && !senders.is_empty()
            && !senders.contains(&success.hub_sender)
        {
            return Err(Error::InvalidMessage(
                "hub_sender is not an external sender of the room".into(),
            ));
        }
        Ok(tbe)
    }

    /// Opens a `GroupInfoResponse` and joins by external commit (-06 §3.6):
    /// the returned `UpdateRequest` goes to the hub.
    ///
    /// A user who is not a participant yet adds itself in the same commit,
    /// with the role the room lets it take by itself: its preauthorized
    /// role, or open join (room-policy §Adding).
    pub fn join_from_group_info_response(
        &mut self,
        key: &GroupInfoKey,
        response: &GroupInfoResponse,
    ) -> Result<UpdateRequest> {
        self.join_from_group_info_response_with(key, response, None)
    }

    /// [`Device::join_from_group_info_response`] holding a join link
    /// (docs/divergences.md C27): when nothing else lets the user in, it
    /// joins with the link's role, naming the link in its commit.
    pub fn join_from_group_info_response_with(
        &mut self,
        key: &GroupInfoKey,
        response: &GroupInfoResponse,
        join_link: Option<&[u8]>,
    ) -> Result<UpdateRequest> {
        let tbe = self.open_group_info_response(key, response)?;
        let policy = RoomPolicyState::from_dictionary(
            tbe.group_info
                .group_context()
                .extensions()
                .app_data_dictionary()
                .map(|e| e.dictionary()),
        )
        .map_err(|e| Error::InvalidMessage(format!("the room's policy: {e}")))?;
        let mut link = None;
        let add_self_as = if policy.role_of(self.user.as_str()) == 0 {
            let me = ClientIdentity {
                device: self.device.clone(),
                user: self.user.clone(),
            };
            match (
                policy.self_join_role(Claims::of(&me).first_role(&policy.preauth)),
                join_link,
            ) {
                (Some(role), _) => Some(role),
                (None, Some(code)) => {
                    let grant = join_links::grant(&policy, code, Some(unix_now()))
                        .map_err(|e| Error::RoomState(format!("the join link: {e}")))?;
                    let role = grant.role;
                    link = Some(grant);
                    Some(role)
                }
                (None, None) => {
                    return Err(Error::RoomState(format!(
                        "{} is not a participant of {}, and the room neither preauthorizes it \
                         nor is open to join",
                        self.user, key.room
                    )));
                }
            }
        } else {
            None
        };
        let RatchetTreeOption::Full(tree) = tbe.ratchet_tree_option else {
            return Err(Error::InvalidMessage(
                "only a full ratchet tree is supported".into(),
            ));
        };
        let room = key.room.clone();
        self.join_by_external_commit_as(&room, tbe.group_info, tree, add_self_as, link.as_ref())
    }
}

/// The KeyPackages of a `KeyMaterialResponse` (-06 §5.2), with the client
/// URI each belongs to; clients without material are skipped.
pub fn key_packages_from_response(response: &KeyMaterialResponse) -> Vec<(String, KeyPackageIn)> {
    response
        .clients
        .iter()
        .filter_map(|c| match &c.material {
            ClientMaterial::Success(kp) => Some((
                c.client_uri.as_str().unwrap_or_default().to_owned(),
                kp.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// Unix seconds now; a clock before 1970 counts as 0.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
