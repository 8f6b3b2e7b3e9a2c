//! Room operations that change the MLS group: creation (-06 §3.1), adding
//! and removing users (§3.2, §3.3, §3.5), leaving (§3.5), role changes
//! (§7.5, room-policy), committing queued proposals, joining by external
//! commit (§3.6), and the fate of a pending commit after the hub's answer
//! (§5.3).
//!
//! Every commit carries the participant-list change as an AppDataUpdate
//! proposal in the same commit as the Adds/Removes, and the dictionary
//! change is computed with [`resolve_app_data_updates`], the function the
//! hub and every other client use.

use std::collections::{BTreeMap, BTreeSet};

use mimi_protocol::components::room_policy::capabilities::CAN_USE_JOIN_CODE;
use mimi_protocol::components::room_policy::{BaseRoomPolicy, PreAuthData, RoleData};
use mimi_protocol::components::{
    BASE_ROOM_POLICY, ComponentId, FRANK_AAD, FRANKING_SIGNATURE_KEY, FrankingAgentData,
    JOIN_LINK_POLICY, JOIN_LINKS, JoinLink, JoinLinkPolicy, JoinLinksUpdate, PARTICIPANT_LIST,
    PREAUTH_LIST, ParticipantListData, ParticipantListUpdate, ROLES_LIST, ROOM_METADATA,
    RoomMetaData, UserRolePair, UserindexRolePair,
};
use mimi_protocol::msgs::{
    GroupInfoOption, HandshakeBody, HandshakeBundle, RatchetTreeOption, UpdateRequest,
};
use mimi_protocol::uri::MimiUri;
use mimi_room::components::resolve_app_data_updates;
use mimi_room::identity::client_identity;
use mimi_room::policy::join_links::{JoinLinkText, LinkGrant};
use mimi_room::policy::preauth::Claims;
use mimi_room::policy::{RoomPolicyState, default_role, default_roles};
use openmls::component::{ComponentType, ComponentsList};
use openmls::framing::{SafeAad, SafeAadItem};
use openmls::messages::group_info::{GroupInfo, VerifiableGroupInfo};
use openmls::prelude::*;
use tls_codec::{Deserialize as _, Serialize as _};

use crate::device::{
    Device, RoomRecord, RoomStatus, capabilities, digest_of, group_id_of_room, participants_of,
    required_capabilities,
};
use crate::error::{Error, Result};

/// How a room is set up by [`Device::create_room`].
#[derive(Debug, Clone)]
pub struct RoomOptions {
    /// The `roles_list` component (room-policy).
    pub roles: RoleData,
    /// The creator's role index in the initial participant list.
    pub creator_role: u32,
    /// Initial `room_metadata` (-06 §7.6), if any.
    pub metadata: Option<RoomMetaData>,
    /// Require Safe AAD with the `frank_aad` component (-06 §5.4.1), so
    /// that every application message carries a franking tag.
    pub franking: bool,
    /// The hub's franking key (`franking_signature_key` component, -06
    /// §5.4.1), if the hub franks messages of this room.
    pub franking_agent: Option<FrankingAgentData>,
    /// Participants besides the creator, (user URI, role), listed from
    /// the start: a fixed-membership room's members, who then add their
    /// own clients (room-policy §Base Room policy).
    pub participants: Vec<(String, u32)>,
    /// The `base_room_policy` component, if any (room-policy).
    pub base: Option<BaseRoomPolicy>,
    /// The `preauth_list` component, if any (room-policy §Preauthorized
    /// Users).
    pub preauth: Option<PreAuthData>,
    /// The `join_link_policy` component, if the room has join links
    /// (room-policy §Join Link policies component; see
    /// [`RoomOptions::with_join_links`]).
    pub join_link_policy: Option<JoinLinkPolicy>,
}

impl RoomOptions {
    /// These options with join links: the `join_link_policy`, and role 0
    /// (users not in the participant list) holding `canUseJoinCode`, so
    /// that a link's holder may use it, with every role that may have
    /// clients as a target (docs/divergences.md C27). Who may
    /// create a link for a role is whoever may add a user with that role.
    pub fn with_join_links(mut self, policy: JoinLinkPolicy) -> Self {
        self.join_link_policy = Some(policy);
        // A link may give any role that can have clients (its creator's
        // authority limits it further); a role 0 already defined keeps
        // its own targets.
        let joinable: Vec<u32> = self
            .roles
            .roles
            .iter()
            .filter(|r| {
                r.role_index != 0
                    && r.role_name.as_slice() != b"banned"
                    && r.maximum_active_participants_constraint != Some(0)
            })
            .map(|r| r.role_index)
            .collect();
        match self.roles.roles.iter_mut().find(|r| r.role_index == 0) {
            Some(no_role) => {
                if !no_role.has_capability(CAN_USE_JOIN_CODE) {
                    no_role.role_capabilities.push(CAN_USE_JOIN_CODE);
                }
            }
            None => self.roles.roles.insert(
                0,
                mimi_room::policy::no_role(vec![CAN_USE_JOIN_CODE], joinable),
            ),
        }
        self
    }
}

impl Default for RoomOptions {
    fn default() -> Self {
        Self {
            roles: default_roles(),
            creator_role: default_role::ADMIN,
            metadata: None,
            franking: true,
            franking_agent: None,
            participants: Vec::new(),
            base: None,
            preauth: None,
            join_link_policy: None,
        }
    }
}

/// What the hub needs to start hosting a new room: the GroupInfo without
/// an embedded tree and the ratchet tree.
#[derive(Debug, Clone)]
pub struct CreatedRoom {
    pub room: String,
    pub group_info: VerifiableGroupInfo,
    pub ratchet_tree: RatchetTreeIn,
}

impl CreatedRoom {
    /// As a `GroupInfoOption` (-06 §5.3).
    pub fn group_info_option(&self) -> GroupInfoOption {
        GroupInfoOption::Full(self.group_info.clone())
    }

    /// As a `RatchetTreeOption` (ratchet-tree-options).
    pub fn ratchet_tree_option(&self) -> RatchetTreeOption {
        RatchetTreeOption::Full(self.ratchet_tree.clone())
    }

    /// The GroupInfo as TLS `MLSMessage(GroupInfo)` bytes.
    pub fn group_info_message_bytes(&self) -> Result<Vec<u8>> {
        // MLSMessage = version (mls10 = 1) || wire_format (group_info = 4)
        // || GroupInfo (RFC 9420 §6).
        let mut out = vec![0, 1, 0, 4];
        self.group_info.tls_serialize(&mut out)?;
        Ok(out)
    }

    /// The ratchet tree as TLS bytes (`optional<Node> ratchet_tree<V>`).
    pub fn ratchet_tree_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.ratchet_tree.tls_serialize_detached()?)
    }
}

/// The hub's signature key and credential, for the `external_senders`
/// GroupContext extension. From a TLS `ExternalSender` (as the provider's
/// client API hands it out) use
/// `mimi_protocol::msgs::group_info::external_sender_parts`.
pub type HubSender = (SignaturePublicKey, Credential);

impl Device {
    pub(crate) fn join_config() -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            // The hub must read handshake messages (-06 §5.3).
            .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .max_past_epochs(3)
            .build()
    }

    /// Creates a room (-06 §3.1): an MLS group whose id is derived from
    /// the room URI, with the hub as external sender (if given), the
    /// required capabilities, and an `app_data_dictionary` holding the
    /// participant list (the creator's user with `creator_role`), the roles
    /// list, optional room metadata and, with franking, the Safe AAD
    /// component list `[frank_aad]`.
    pub fn create_room(
        &mut self,
        room_uri: &str,
        hub_external_sender: Option<HubSender>,
        options: RoomOptions,
    ) -> Result<CreatedRoom> {
        let room = MimiUri::parse(room_uri)?;
        let key = room.as_str().to_owned();
        if self.rooms.contains_key(&key) {
            return Err(Error::RoomExists(key));
        }
        let group_id = group_id_of_room(&room)?;

        let mut listed = vec![UserRolePair::for_uri(&self.user, options.creator_role)];
        for (user, role) in &options.participants {
            let user = MimiUri::parse(user)?;
            if user.kind() != mimi_protocol::MimiUriKind::User {
                return Err(Error::RoomState(format!("{user} is not a user URI")));
            }
            listed.push(UserRolePair::for_uri(&user, *role));
        }
        let participants = ParticipantListData::new(listed);
        participants
            .validate()
            .map_err(|e| Error::RoomState(e.to_string()))?;
        let state = RoomPolicyState {
            participants: participants.clone(),
            roles: options.roles.clone(),
            base: options.base.clone().unwrap_or_default(),
            preauth: options.preauth.clone().unwrap_or_default(),
            metadata: options.metadata.clone(),
            join_link_policy: options.join_link_policy.clone(),
            ..RoomPolicyState::default()
        };
        state
            .roles
            .validate()
            .map_err(|e| Error::RoomState(e.to_string()))?;
        // The hub checks the same on creation; refusing here says why.
        mimi_room::policy::base::check_at_creation(
            &state,
            &[(self.user.as_str().to_owned(), 1)].into(),
        )
        .map_err(|e| Error::RoomState(e.to_string()))?;
        if !state.may_be_active(self.user.as_str()) {
            return Err(Error::RoomState(format!(
                "role {} may not be an active participant",
                options.creator_role
            )));
        }
        let mut dict = AppDataDictionary::new();
        dict.insert(PARTICIPANT_LIST, participants.tls_serialize_detached()?);
        dict.insert(ROLES_LIST, options.roles.tls_serialize_detached()?);
        if let Some(metadata) = &options.metadata {
            metadata
                .validate(Some(&room))
                .map_err(|e| Error::RoomState(e.to_string()))?;
            dict.insert(ROOM_METADATA, metadata.tls_serialize_detached()?);
        }
        if let Some(agent) = &options.franking_agent {
            dict.insert(FRANKING_SIGNATURE_KEY, agent.tls_serialize_detached()?);
        }
        if let Some(base) = &options.base {
            dict.insert(BASE_ROOM_POLICY, base.tls_serialize_detached()?);
        }
        if let Some(preauth) = &options.preauth {
            dict.insert(PREAUTH_LIST, preauth.tls_serialize_detached()?);
        }
        if let Some(policy) = &options.join_link_policy {
            dict.insert(JOIN_LINK_POLICY, policy.tls_serialize_detached()?);
        }
        if options.franking {
            dict.insert(
                ComponentId::from(ComponentType::SafeAad),
                ComponentsList::new(vec![FRANK_AAD]).tls_serialize_detached()?,
            );
        }
        let mut extensions = vec![
            Extension::AppDataDictionary(AppDataDictionaryExtension::new(dict)),
            Extension::RequiredCapabilities(required_capabilities()),
        ];
        if let Some((signature_key, credential)) = hub_external_sender {
            extensions.push(Extension::ExternalSenders(vec![ExternalSender::new(
                signature_key,
                credential,
            )]));
        }
        let extensions =
            Extensions::from_vec(extensions).map_err(|e| Error::mls("room extensions", e))?;
        let group = MlsGroup::builder()
            .with_group_id(group_id.clone())
            .ciphersuite(self.ciphersuite)
            .with_capabilities(capabilities(self.ciphersuite))
            .with_group_context_extensions(extensions)
            .with_wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .max_past_epochs(3)
            .build(&self.provider, &self.signer, self.credential.clone())
            .map_err(|e| Error::mls("group creation", e))?;
        let info = group
            .export_group_info(self.provider.crypto(), &self.signer, false)
            .map_err(|e| Error::mls("GroupInfo export", e))?;
        let group_info =
            match MlsMessageIn::tls_deserialize_exact(info.tls_serialize_detached()?)?.extract() {
                MlsMessageBodyIn::GroupInfo(info) => info,
                _ => return Err(Error::mls("GroupInfo export", "not a GroupInfo")),
            };
        let ratchet_tree = group.export_ratchet_tree().into();
        self.rooms.insert(key.clone(), RoomRecord::new(&group_id));
        self.groups.insert(key.clone(), group);
        Ok(CreatedRoom {
            room: key,
            group_info,
            ratchet_tree,
        })
    }

    /// Adds a user with `role` and their clients (-06 §3.2, §3.3): one
    /// commit with the participant-list AppDataUpdate and an Add per
    /// KeyPackage, plus a Welcome. If the user is already a participant
    /// (a new client of an existing user) only the Adds are sent.
    ///
    /// The KeyPackages are validated first: signature, lifetime, cipher
    /// suite, capabilities, and a credential naming a device of `user_uri`.
    pub fn add_user(
        &mut self,
        room: &str,
        user_uri: &str,
        role: u32,
        key_packages: Vec<KeyPackageIn>,
    ) -> Result<UpdateRequest> {
        let user = MimiUri::parse(user_uri)?;
        if key_packages.is_empty() {
            return Err(Error::InvalidKeyPackage("no KeyPackages to add".into()));
        }
        let ciphersuite = self.group(room)?.ciphersuite();
        let mut adds = Vec::with_capacity(key_packages.len());
        for kp in key_packages {
            adds.push(self.validate_key_package(kp, &user, ciphersuite)?);
        }
        let participants = participants_of(self.group(room)?)?;
        let mut inline = Vec::new();
        if !participants.contains(user.as_str()) {
            inline.push(participant_update_proposal(&ParticipantListUpdate {
                added_participants: vec![UserRolePair::for_uri(&user, role)],
                ..Default::default()
            })?);
        }
        self.commit(room, inline, adds, Vec::new())
    }

    fn validate_key_package(
        &self,
        kp: KeyPackageIn,
        user: &MimiUri,
        ciphersuite: Ciphersuite,
    ) -> Result<KeyPackage> {
        let kp = kp
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| Error::InvalidKeyPackage(format!("{e:?}")))?;
        if kp.ciphersuite() != ciphersuite {
            return Err(Error::InvalidKeyPackage(format!(
                "cipher suite {:?} is not the room's",
                kp.ciphersuite()
            )));
        }
        let identity = client_identity(kp.leaf_node().credential())
            .map_err(|e| Error::InvalidKeyPackage(e.to_string()))?;
        if identity.user != *user {
            return Err(Error::InvalidKeyPackage(format!(
                "KeyPackage of {} is not a client of {user}",
                identity.device
            )));
        }
        let caps = kp.leaf_node().capabilities();
        let required = required_capabilities();
        let supported = required
            .extension_types()
            .iter()
            .all(|t| caps.extensions().contains(t))
            && required
                .proposal_types()
                .iter()
                .all(|t| caps.proposals().contains(t));
        if !supported {
            return Err(Error::InvalidKeyPackage(format!(
                "{} lacks the room's required capabilities",
                identity.device
            )));
        }
        Ok(kp)
    }

    /// Removes a user (-06 §3.5, first paragraph): one commit removing the
    /// user from the participant list and Removing all their clients.
    pub fn remove_user(&mut self, room: &str, user_uri: &str) -> Result<UpdateRequest> {
        let user = MimiUri::parse(user_uri)?;
        let participants = participants_of(self.group(room)?)?;
        let index = participants
            .index_of(user.as_str())
            .ok_or_else(|| Error::NotAParticipant {
                room: room.to_owned(),
                user: user.as_str().to_owned(),
            })?;
        let leaves = self.leaves_of_user(room, &user)?;
        let update = participant_update_proposal(&ParticipantListUpdate {
            removed_indices: vec![index],
            ..Default::default()
        })?;
        self.commit(room, vec![update], Vec::new(), leaves)
    }

    /// Changes a participant's role (room-policy §Role Changes). If the new
    /// role may not be active (e.g. banned), the user's clients are removed
    /// in the same commit.
    pub fn set_role(&mut self, room: &str, user_uri: &str, role: u32) -> Result<UpdateRequest> {
        let user = MimiUri::parse(user_uri)?;
        let group = self.group(room)?;
        let state = RoomPolicyState::from_dictionary(
            group
                .extensions()
                .app_data_dictionary()
                .map(|e| e.dictionary()),
        )
        .map_err(|e| Error::RoomState(e.to_string()))?;
        let index =
            state
                .participants
                .index_of(user.as_str())
                .ok_or_else(|| Error::NotAParticipant {
                    room: room.to_owned(),
                    user: user.as_str().to_owned(),
                })?;
        let update = ParticipantListUpdate {
            changed_role_participants: vec![UserindexRolePair {
                user_index: index,
                role_index: role,
            }],
            ..Default::default()
        };
        let after = RoomPolicyState {
            participants: state
                .participants
                .apply(&update)
                .map_err(|e| Error::RoomState(e.to_string()))?,
            ..state.clone()
        };
        let removals = if after.may_be_active(user.as_str()) {
            Vec::new()
        } else {
            self.leaves_of_user(room, &user)?
        };
        self.commit(
            room,
            vec![participant_update_proposal(&update)?],
            Vec::new(),
            removals,
        )
    }

    /// Leaves the room (-06 §3.5): SelfRemove, Removes of the user's other
    /// clients and the participant-list removal of the own user, as
    /// proposals in one HandshakeBundle (the first as `proposalOrCommit`,
    /// the rest as `moreProposals`). The hub queues them and the next
    /// committer must include them; the device learns of its removal when
    /// that commit arrives.
    pub fn leave(&mut self, room: &str) -> Result<UpdateRequest> {
        let own_user = self.user.clone();
        let index = participants_of(self.group(room)?)?
            .index_of(own_user.as_str())
            .ok_or_else(|| Error::NotAParticipant {
                room: room.to_owned(),
                user: own_user.as_str().to_owned(),
            })?;
        let own_leaf = self.group(room)?.own_leaf_index();
        let other_leaves: Vec<LeafNodeIndex> = self
            .leaves_of_user(room, &own_user)?
            .into_iter()
            .filter(|l| *l != own_leaf)
            .collect();
        let update = ParticipantListUpdate {
            removed_indices: vec![index],
            ..Default::default()
        };
        let group = self
            .groups
            .get_mut(room)
            .ok_or_else(|| Error::UnknownRoom(room.to_owned()))?;
        // A proposal type not every member supports makes the commit
        // invalid (RFC 9420 §12.2), so SelfRemove is used only when all
        // leaves announce it; otherwise a Remove of the own leaf, which
        // every MLS client can commit (RFC 9420 §12.1.3).
        let public = group.public_group();
        let all_support_self_remove = public.members().all(|m| {
            public.leaf(m.index).is_some_and(|leaf| {
                leaf.capabilities()
                    .proposals()
                    .contains(&ProposalType::SelfRemove)
            })
        });
        let leave = if all_support_self_remove {
            group
                .leave_group_via_self_remove(&self.provider, &self.signer)
                .map_err(|e| Error::mls("SelfRemove", e))?
        } else {
            group
                .leave_group(&self.provider, &self.signer)
                .map_err(|e| Error::mls("Remove of the own leaf", e))?
        };
        let mut messages = vec![leave];
        for leaf in other_leaves {
            let (msg, _) = group
                .propose_remove_member(&self.provider, &self.signer, leaf)
                .map_err(|e| Error::mls("Remove proposal", e))?;
            messages.push(msg);
        }
        let (msg, _) = group
            .propose_app_data_update(
                &self.provider,
                &self.signer,
                PARTICIPANT_LIST,
                AppDataUpdateOperation::Update(update.tls_serialize_detached()?.into()),
            )
            .map_err(|e| Error::mls("AppDataUpdate proposal", e))?;
        messages.push(msg);
        let mut messages = messages
            .into_iter()
            .map(wire)
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let first = messages
            .next()
            .ok_or_else(|| Error::mls("leave", "no proposal"))?;
        let more_proposals: Vec<MlsMessageIn> = messages.collect();
        let record = self.record_mut(room)?;
        record.remember_sent(digest_of(&first)?);
        for p in &more_proposals {
            record.remember_sent(digest_of(p)?);
        }
        Ok(UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: first,
                body: HandshakeBody::Proposal { more_proposals },
            },
        })
    }

    /// Replaces the room metadata (-06 §7.6): one commit with an
    /// AppDataUpdate of `room_metadata`.
    pub fn set_room_metadata(
        &mut self,
        room: &str,
        metadata: &RoomMetaData,
    ) -> Result<UpdateRequest> {
        let uri = MimiUri::parse(room)?;
        metadata
            .validate(Some(&uri))
            .map_err(|e| Error::RoomState(e.to_string()))?;
        let proposal = Proposal::AppDataUpdate(Box::new(AppDataUpdateProposal::update(
            ROOM_METADATA,
            metadata.tls_serialize_detached()?,
        )));
        self.commit(room, vec![proposal], Vec::new(), Vec::new())
    }

    /// Replaces room component `component` (a policy component such as
    /// `preauth_list`, or `roles_list`) with `data`: one commit with its
    /// AppDataUpdate. The hub checks the capability it needs.
    pub fn update_component(
        &mut self,
        room: &str,
        component: ComponentId,
        data: Vec<u8>,
    ) -> Result<UpdateRequest> {
        let proposal =
            Proposal::AppDataUpdate(Box::new(AppDataUpdateProposal::update(component, data)));
        self.commit(room, vec![proposal], Vec::new(), Vec::new())
    }

    /// The room's join links, as text (room-policy §Join Link policies
    /// component; docs/divergences.md C27).
    pub fn join_links(&self, room: &str) -> Result<Vec<String>> {
        Ok(self
            .room_state(room)?
            .join_links
            .join_links
            .iter()
            .map(|l| String::from_utf8_lossy(l.join_link.as_slice()).into_owned())
            .collect())
    }

    /// A new join link of `room` for `role`, not yet added: a fresh
    /// 128-bit code, and an expiry at `expires` (unix seconds) or, when
    /// the room's links must expire, the latest its policy allows after
    /// `now`.
    pub fn new_join_link(
        &self,
        room: &str,
        role: u32,
        expires: Option<u64>,
        now: u64,
    ) -> Result<String> {
        let state = self.room_state(room)?;
        let policy = state.join_link_policy.as_ref().ok_or_else(|| {
            Error::RoomState(format!("{room} has no join link policy, so no join links"))
        })?;
        let expires = expires
            .or_else(|| (policy.expiration != 0).then(|| now + u64::from(policy.expiration)));
        let code = self
            .provider
            .rand()
            .random_vec(16)
            .map_err(|e| Error::mls("randomness", e))?;
        Ok(JoinLinkText {
            room: MimiUri::parse(room)?.as_str().to_owned(),
            role,
            code: hex::encode(code),
            expires,
        }
        .to_string())
    }

    /// A commit adding `link` (from [`Device::new_join_link`]) to the
    /// room's join links.
    pub fn add_join_link(&mut self, room: &str, link: &str) -> Result<UpdateRequest> {
        let update = JoinLinksUpdate {
            removed_indices: Vec::new(),
            added_links: vec![JoinLink::new(link.as_bytes().to_vec())],
        };
        self.update_component(room, JOIN_LINKS, update.tls_serialize_detached()?)
    }

    /// A commit removing `link` from the room's join links.
    pub fn remove_join_link(&mut self, room: &str, link: &str) -> Result<UpdateRequest> {
        let index = self
            .room_state(room)?
            .join_links
            .index_of(link.as_bytes())
            .ok_or_else(|| Error::RoomState(format!("{room} has no such join link")))?;
        let update = JoinLinksUpdate {
            removed_indices: vec![index],
            added_links: Vec::new(),
        };
        self.update_component(room, JOIN_LINKS, update.tls_serialize_detached()?)
    }

    /// An external join proposal (RFC 9420 §12.1.8 `new_member_proposal`)
    /// for the group `group_info` describes: an Add of a fresh KeyPackage
    /// of this device, for a user who may join `room` by itself
    /// (room-policy §Adding; docs/divergences.md C29). A member's next
    /// commit adds the user; this device joins from the Welcome. Returns
    /// the request for the hub and the KeyPackage (`MLSMessage`), which the
    /// device's provider must know to route the Welcome.
    pub fn external_join_proposal(
        &mut self,
        room: &str,
        group_info: &VerifiableGroupInfo,
    ) -> Result<(UpdateRequest, Vec<u8>)> {
        let room = MimiUri::parse(room)?;
        if self.rooms.contains_key(room.as_str()) {
            return Err(Error::RoomExists(room.as_str().to_owned()));
        }
        if group_info.group_id() != &group_id_of_room(&room)? {
            return Err(Error::InvalidMessage(format!(
                "the GroupInfo is not for room {room}"
            )));
        }
        let bundle = KeyPackage::builder()
            .leaf_node_capabilities(capabilities(self.ciphersuite))
            .build(
                self.ciphersuite,
                &self.provider,
                &self.signer,
                self.credential.clone(),
            )
            .map_err(|e| Error::mls("KeyPackage creation", e))?;
        let key_package = bundle.key_package().clone();
        let context = group_info.group_context();
        let proposal = if context.safe_aad_required() {
            join_proposal_with_safe_aad(&key_package, context, &self.signer)?
        } else {
            wire(
                JoinProposal::new::<openmls_memory_storage::MemoryStorage>(
                    key_package.clone(),
                    context.group_id().clone(),
                    context.epoch(),
                    &self.signer,
                )
                .map_err(|e| Error::mls("join proposal", e))?,
            )?
        };
        let request = UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: proposal,
                body: HandshakeBody::Proposal {
                    more_proposals: Vec::new(),
                },
            },
        };
        let key_package = MlsMessageOut::from(key_package).tls_serialize_detached()?;
        Ok((request, key_package))
    }

    /// The participant-list additions for the external join proposals
    /// pending in `room` (room-policy §Adding; docs/divergences.md C29):
    /// the commit that includes such an Add must list its user with a role
    /// the user may join as by itself, and the hub lets any member do so.
    /// A proposal whose user may no longer join that way is dropped.
    fn list_external_joiners(&mut self, room: &str) -> Result<Option<ParticipantListUpdate>> {
        let state = self.room_state(room)?;
        let group = self
            .groups
            .get_mut(room)
            .ok_or_else(|| Error::UnknownRoom(room.to_owned()))?;
        let mut added: Vec<UserRolePair> = Vec::new();
        let mut dropped = Vec::new();
        for queued in group.pending_proposals() {
            let (Sender::NewMemberProposal, Proposal::Add(add)) =
                (queued.sender(), queued.proposal())
            else {
                continue;
            };
            let role = client_identity(add.key_package().leaf_node().credential())
                .ok()
                .filter(|id| state.role_of(id.user.as_str()) == 0)
                .and_then(|id| {
                    let preauth = Claims::of(&id).first_role(&state.preauth);
                    state.self_join_role(preauth).map(|role| (id, role))
                });
            match role {
                Some((id, role)) => {
                    if !added
                        .iter()
                        .any(|p| p.user.as_slice() == id.user.as_str().as_bytes())
                    {
                        added.push(UserRolePair::for_uri(&id.user, role));
                    }
                }
                None => dropped.push(queued.proposal_reference_ref().clone()),
            }
        }
        for proposal_ref in dropped {
            group
                .remove_pending_proposal(self.provider.storage(), &proposal_ref)
                .map_err(|e| Error::mls("dropping a join proposal", e))?;
        }
        Ok((!added.is_empty()).then(|| ParticipantListUpdate {
            added_participants: added,
            ..Default::default()
        }))
    }

    /// In a parent-dependent room, the participant-list removal of every
    /// user all of whose clients the queued proposals of a server (the
    /// hub, an external sender) remove: the hub proposes them when the
    /// parent drops the user, and the commit that includes them may drop
    /// the user from the list whatever the committer's role (room-policy
    /// §Base Room policy; docs/divergences.md C21).
    fn unlist_parent_leavers(&self, room: &str) -> Result<Option<ParticipantListUpdate>> {
        let state = self.room_state(room)?;
        if !state.base.parent_dependant {
            return Ok(None);
        }
        let group = self.group(room)?;
        let removed: BTreeSet<LeafNodeIndex> = group
            .pending_proposals()
            .filter_map(|queued| match (queued.sender(), queued.proposal()) {
                (Sender::External(_), Proposal::Remove(remove)) => Some(remove.removed()),
                _ => None,
            })
            .collect();
        if removed.is_empty() {
            return Ok(None);
        }
        let mut leaves_by_user: BTreeMap<String, Vec<LeafNodeIndex>> = BTreeMap::new();
        for member in group.members() {
            if let Ok(id) = client_identity(&member.credential) {
                leaves_by_user
                    .entry(id.user.as_str().to_owned())
                    .or_default()
                    .push(member.index);
            }
        }
        let mut removed_indices: Vec<u32> = leaves_by_user
            .iter()
            .filter(|(_, leaves)| leaves.iter().all(|leaf| removed.contains(leaf)))
            .filter_map(|(user, _)| state.participants.index_of(user))
            .collect();
        removed_indices.sort_unstable();
        Ok(
            (!removed_indices.is_empty()).then(|| ParticipantListUpdate {
                removed_indices,
                ..Default::default()
            }),
        )
    }

    /// The room's policy state as of the device's epoch.
    fn room_state(&self, room: &str) -> Result<RoomPolicyState> {
        RoomPolicyState::from_dictionary(
            self.group(room)?
                .extensions()
                .app_data_dictionary()
                .map(|e| e.dictionary()),
        )
        .map_err(|e| Error::RoomState(e.to_string()))
    }

    /// Turns franking on in a room created without it (-06 §5.4.1): one
    /// commit setting the `franking_signature_key` component to the hub's
    /// `agent` and requiring `frank_aad` in the Safe AAD, so every later
    /// message carries a franking tag.
    pub fn enable_franking(
        &mut self,
        room: &str,
        agent: &FrankingAgentData,
    ) -> Result<UpdateRequest> {
        let safe_aad = ComponentId::from(ComponentType::SafeAad);
        let mut required: Vec<ComponentId> = self
            .group(room)?
            .extensions()
            .app_data_dictionary()
            .and_then(|e| e.dictionary().get(&safe_aad))
            .and_then(|b| ComponentsList::tls_deserialize_exact(b).ok())
            .map(ComponentsList::into_ids)
            .unwrap_or_default();
        if !required.contains(&FRANK_AAD) {
            required.push(FRANK_AAD);
        }
        let proposals = vec![
            Proposal::AppDataUpdate(Box::new(AppDataUpdateProposal::update(
                FRANKING_SIGNATURE_KEY,
                agent.tls_serialize_detached()?,
            ))),
            Proposal::AppDataUpdate(Box::new(AppDataUpdateProposal::update(
                safe_aad,
                ComponentsList::new(required).tls_serialize_detached()?,
            ))),
        ];
        self.commit(room, proposals, Vec::new(), Vec::new())
    }

    /// Commits the queued proposals by reference (e.g. another user's
    /// leave, -06 §3.5), with an empty path update if nothing is queued.
    pub fn commit_pending(&mut self, room: &str) -> Result<UpdateRequest> {
        self.commit(room, Vec::new(), Vec::new(), Vec::new())
    }

    /// Joins a room with a new client by external commit (-06 §3.6), from
    /// the GroupInfo and ratchet tree the hub returned (-06 §5.6). The
    /// group is usable at once; if the hub refuses the commit,
    /// [`Device::discard_commit`] forgets the room again.
    pub fn join_by_external_commit(
        &mut self,
        room_uri: &str,
        group_info: VerifiableGroupInfo,
        ratchet_tree: RatchetTreeIn,
    ) -> Result<UpdateRequest> {
        self.join_by_external_commit_as(room_uri, group_info, ratchet_tree, None, None)
    }

    /// [`Device::join_by_external_commit`]; with `add_self_as`, the commit
    /// also adds this device's user to the participant list with that role
    /// (a self-join of a user who is not a participant: preauthorization or
    /// open join, room-policy §Adding).
    ///
    /// With `link`, the join link that lets the user in (docs/divergences.md
    /// C27): the commit names it in its authenticated data, and removes it
    /// from the room's links when it is single-use.
    pub fn join_by_external_commit_as(
        &mut self,
        room_uri: &str,
        group_info: VerifiableGroupInfo,
        ratchet_tree: RatchetTreeIn,
        add_self_as: Option<u32>,
        link: Option<&LinkGrant>,
    ) -> Result<UpdateRequest> {
        let room = MimiUri::parse(room_uri)?;
        let key = room.as_str().to_owned();
        if self.rooms.contains_key(&key) {
            return Err(Error::RoomExists(key));
        }
        let group_id = group_id_of_room(&room)?;
        if group_info.group_id() != &group_id {
            return Err(Error::InvalidMessage(format!(
                "the GroupInfo is not for room {key}"
            )));
        }
        let old = group_info
            .group_context()
            .extensions()
            .app_data_dictionary()
            .map(|e| e.dictionary().clone());
        let mut builder = MlsGroup::external_commit_builder()
            .with_ratchet_tree(ratchet_tree)
            .with_config(Self::join_config());
        if let Some(link) = link {
            let item = JoinLink::new(link.link.clone()).tls_serialize_detached()?;
            let aad = SafeAad::from_items(vec![SafeAadItem::new(JOIN_LINKS, item)])
                .map_err(|e| Error::mls("external commit", e))?;
            builder = builder.with_aad(aad.tls_serialize_detached()?);
        }
        let mut builder = builder
            .build_group(&self.provider, group_info, self.credential.clone())
            .map_err(|e| Error::mls("external commit", e))?;
        if let Some(link) = link.filter(|l| l.single_use) {
            builder = builder.add_app_data_update_proposal(AppDataUpdateProposal::update(
                JOIN_LINKS,
                JoinLinksUpdate {
                    removed_indices: vec![link.index],
                    added_links: Vec::new(),
                }
                .tls_serialize_detached()?,
            ));
        }
        if let Some(role) = add_self_as {
            builder = builder.add_app_data_update_proposal(AppDataUpdateProposal::update(
                PARTICIPANT_LIST,
                ParticipantListUpdate {
                    added_participants: vec![UserRolePair::for_uri(&self.user, role)],
                    ..Default::default()
                }
                .tls_serialize_detached()?,
            ));
        }
        let mut stage = builder
            .leaf_node_parameters(
                LeafNodeParameters::builder()
                    .with_capabilities(capabilities(self.ciphersuite))
                    .build(),
            )
            .load_psks(self.provider.storage())
            .map_err(|e| Error::mls("external commit", e))?;
        let updates = resolve_app_data_updates(old.as_ref(), stage.app_data_update_proposals())
            .map_err(|e| Error::RoomState(e.to_string()))?;
        stage.with_app_data_dictionary_updates(updates);
        let (group, bundle) = stage
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.signer,
                |_| true,
            )
            .map_err(|e| Error::mls("external commit", e))?
            .finalize(&self.provider)
            .map_err(|e| Error::mls("external commit", e))?;
        let (commit, _welcome, info) = bundle.into_contents();
        let info = match info {
            Some(info) => verifiable(&info)?,
            None => {
                let msg = group
                    .export_group_info(self.provider.crypto(), &self.signer, false)
                    .map_err(|e| Error::mls("GroupInfo export", e))?;
                match wire(msg)?.extract() {
                    MlsMessageBodyIn::GroupInfo(info) => info,
                    _ => return Err(Error::mls("GroupInfo export", "not a GroupInfo")),
                }
            }
        };
        let tree: RatchetTreeIn = group.export_ratchet_tree().into();
        let commit = wire(commit)?;
        let mut record = RoomRecord::new(&group_id);
        record.status = RoomStatus::JoiningByExternalCommit;
        record.remember_sent(digest_of(&commit)?);
        self.rooms.insert(key.clone(), record);
        self.groups.insert(key, group);
        Ok(UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: commit,
                body: HandshakeBody::Commit {
                    welcome: None,
                    group_info_option: GroupInfoOption::Full(info),
                    ratchet_tree_option: RatchetTreeOption::Full(tree),
                },
            },
        })
    }

    /// The hub accepted this device's commit (`success`, -06 §5.3): merge
    /// it. Returns the new epoch. Harmless if the hub's echo of the commit
    /// was processed already (returns the current epoch).
    pub fn confirm_commit(&mut self, room: &str) -> Result<u64> {
        let record = self.record_mut(room)?;
        if record.status == RoomStatus::JoiningByExternalCommit {
            record.status = RoomStatus::Active;
            return self.epoch(room);
        }
        let group = self
            .groups
            .get_mut(room)
            .ok_or_else(|| Error::UnknownRoom(room.to_owned()))?;
        if group.pending_commit().is_some() {
            group
                .merge_pending_commit(&self.provider)
                .map_err(|e| Error::mls("merging the pending commit", e))?;
        }
        Ok(group.epoch().as_u64())
    }

    /// The hub refused this device's commit (`wrongEpoch`, `notAllowed`,
    /// `invalidProposal`, -06 §5.3): drop it. After `wrongEpoch`, process
    /// the fanout the device missed and build the change again. For an
    /// external join the room is forgotten. A no-op if the pending commit
    /// was already superseded by processing the winning commit.
    pub fn discard_commit(&mut self, room: &str) -> Result<()> {
        if self.record(room)?.status == RoomStatus::JoiningByExternalCommit {
            self.rooms.remove(room);
            if let Some(mut group) = self.groups.remove(room) {
                group
                    .delete(self.provider.storage())
                    .map_err(|e| Error::mls("deleting the group", e))?;
            }
            return Ok(());
        }
        let group = self
            .groups
            .get_mut(room)
            .ok_or_else(|| Error::UnknownRoom(room.to_owned()))?;
        if group.pending_commit().is_none() {
            // Already superseded by a commit from the fanout.
            return Ok(());
        }
        group
            .clear_pending_commit(self.provider.storage())
            .map_err(|e| Error::mls("discarding the pending commit", e))
    }

    /// Drops a room and its MLS group from this device (e.g. after the
    /// provider refused to create it). Unknown rooms are ignored.
    pub fn forget_room(&mut self, room: &str) -> Result<()> {
        self.rooms.remove(room);
        if let Some(mut group) = self.groups.remove(room) {
            group
                .delete(self.provider.storage())
                .map_err(|e| Error::mls("deleting the group", e))?;
        }
        Ok(())
    }

    /// Records `request` (this device's commit) as sent to the hub and not
    /// yet answered, or clears the record with `None`. Saved with the
    /// device, so a device that crashed or lost the hub's answer sends the
    /// same bytes again rather than a commit the hub may already have
    /// accepted under another form (docs/divergences.md S26).
    pub fn set_update_in_flight(
        &mut self,
        room: &str,
        request: Option<&UpdateRequest>,
    ) -> Result<()> {
        let encoded = match request {
            Some(r) => Some(hex::encode(r.tls_serialize_detached()?)),
            None => None,
        };
        self.record_mut(room)?.update_in_flight = encoded;
        Ok(())
    }

    /// The commit sent to the hub whose answer this device has not had
    /// ([`Device::set_update_in_flight`]), if any.
    pub fn update_in_flight(&self, room: &str) -> Result<Option<UpdateRequest>> {
        let Some(encoded) = &self.record(room)?.update_in_flight else {
            return Ok(None);
        };
        let bytes = hex::decode(encoded)
            .map_err(|_| Error::Persistence(format!("bad update in flight for {room}")))?;
        UpdateRequest::tls_deserialize_exact(bytes)
            .map(Some)
            .map_err(|e| Error::Persistence(format!("update in flight for {room}: {e}")))
    }

    /// Whether this device has a commit waiting for the hub's answer.
    pub fn has_pending_commit(&self, room: &str) -> Result<bool> {
        Ok(self.group(room)?.pending_commit().is_some())
    }

    /// Builds a commit over `inline` proposals, Adds and Removes, plus
    /// every queued proposal by reference; stages it as the pending commit.
    pub(crate) fn commit(
        &mut self,
        room: &str,
        mut inline: Vec<Proposal>,
        adds: Vec<KeyPackage>,
        removals: Vec<LeafNodeIndex>,
    ) -> Result<UpdateRequest> {
        if self.record(room)?.status != RoomStatus::Active {
            return Err(Error::NotAMember(room.to_owned()));
        }
        if let Some(update) = self.list_external_joiners(room)? {
            inline.push(Proposal::AppDataUpdate(Box::new(
                AppDataUpdateProposal::update(PARTICIPANT_LIST, update.tls_serialize_detached()?),
            )));
        }
        if let Some(update) = self.unlist_parent_leavers(room)? {
            inline.push(Proposal::AppDataUpdate(Box::new(
                AppDataUpdateProposal::update(PARTICIPANT_LIST, update.tls_serialize_detached()?),
            )));
        }
        let provider = &self.provider;
        let group = self
            .groups
            .get_mut(room)
            .ok_or_else(|| Error::UnknownRoom(room.to_owned()))?;
        if !group.is_active() {
            return Err(Error::NotAMember(room.to_owned()));
        }
        if group.pending_commit().is_some() {
            return Err(Error::RoomState(
                "a commit is already pending; confirm or discard it first".into(),
            ));
        }
        let old = group
            .extensions()
            .app_data_dictionary()
            .map(|e| e.dictionary().clone());
        let mut stage = group
            .commit_builder()
            .add_proposals(inline)
            .propose_adds(adds)
            .propose_removals(removals)
            .load_psks(provider.storage())
            .map_err(|e| Error::mls("commit", e))?
            .create_group_info(true);
        let updates = resolve_app_data_updates(old.as_ref(), stage.app_data_update_proposals())
            .map_err(|e| Error::RoomState(e.to_string()))?;
        stage.with_app_data_dictionary_updates(updates);
        let bundle = stage
            .build(provider.rand(), provider.crypto(), &self.signer, |_| true)
            .map_err(|e| Error::mls("commit", e))?
            .stage_commit(provider)
            .map_err(|e| Error::mls("commit", e))?;
        let (commit, welcome, group_info) = bundle.into_contents();
        let ratchet_tree_option = match group.pending_commit() {
            Some(staged) => staged
                .export_ratchet_tree(provider.crypto(), group.export_ratchet_tree())
                .map_err(|e| Error::mls("ratchet tree export", e))?
                .map(|t| RatchetTreeOption::Full(t.into()))
                .unwrap_or(RatchetTreeOption::DistributionService),
            None => RatchetTreeOption::DistributionService,
        };
        let group_info = group_info.ok_or_else(|| Error::mls("commit", "no GroupInfo"))?;
        let commit = wire(commit)?;
        self.record_mut(room)?.remember_sent(digest_of(&commit)?);
        Ok(UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: commit,
                body: HandshakeBody::Commit {
                    welcome,
                    group_info_option: GroupInfoOption::Full(verifiable(&group_info)?),
                    ratchet_tree_option,
                },
            },
        })
    }

    /// Leaves of the MLS group whose credential names a device of `user`.
    fn leaves_of_user(&self, room: &str, user: &MimiUri) -> Result<Vec<LeafNodeIndex>> {
        Ok(self
            .group(room)?
            .members()
            .filter(|m| client_identity(&m.credential).is_ok_and(|id| id.user == *user))
            .map(|m| m.index)
            .collect())
    }
}

/// An AppDataUpdate proposal for the participant list.
fn participant_update_proposal(update: &ParticipantListUpdate) -> Result<Proposal> {
    Ok(Proposal::AppDataUpdate(Box::new(
        AppDataUpdateProposal::update(PARTICIPANT_LIST, update.tls_serialize_detached()?),
    )))
}

/// Serialises an outgoing message and parses it as received, which is the
/// form the mimi-protocol types carry.
pub(crate) fn wire(out: MlsMessageOut) -> Result<MlsMessageIn> {
    Ok(MlsMessageIn::tls_deserialize_exact(
        out.tls_serialize_detached()?,
    )?)
}

fn verifiable(info: &GroupInfo) -> Result<VerifiableGroupInfo> {
    Ok(VerifiableGroupInfo::tls_deserialize_exact(
        info.tls_serialize_detached()?,
    )?)
}

/// An external join proposal whose `authenticated_data` is the empty Safe
/// AAD prefix a room requiring Safe AAD expects of every message
/// (mls-extensions §4.9). openmls's `JoinProposal` cannot set
/// authenticated data, so the PublicMessage is framed and signed here as
/// RFC 9420 §6 and §6.1 define it: `FramedContent` with sender
/// `new_member_proposal`, signed over `FramedContentTBS` (no
/// GroupContext for this sender), without membership tag.
fn join_proposal_with_safe_aad(
    key_package: &KeyPackage,
    context: &GroupContext,
    signer: &impl openmls_traits::signatures::Signer,
) -> Result<MlsMessageIn> {
    use tls_codec::VLBytes;
    const MLS10: u16 = 1;
    const PUBLIC_MESSAGE: u16 = 1;
    const NEW_MEMBER_PROPOSAL: u8 = 3;
    const PROPOSAL: u8 = 2;
    const ADD: u16 = 1;
    let mut content = VLBytes::from(context.group_id().as_slice()).tls_serialize_detached()?;
    content.extend(context.epoch().as_u64().to_be_bytes());
    content.push(NEW_MEMBER_PROPOSAL);
    let aad = SafeAad::empty().tls_serialize_detached()?;
    content.extend(VLBytes::from(aad).tls_serialize_detached()?);
    content.push(PROPOSAL);
    content.extend(ADD.to_be_bytes());
    content.extend(key_package.tls_serialize_detached()?);

    let mut tbs = Vec::with_capacity(4 + content.len());
    tbs.extend(MLS10.to_be_bytes());
    tbs.extend(PUBLIC_MESSAGE.to_be_bytes());
    tbs.extend(&content);
    let signature = mimi_protocol::msgs::signing::sign_with_label(signer, "FramedContentTBS", &tbs)
        .map_err(|e| Error::mls("join proposal", e))?;

    let mut message = Vec::with_capacity(tbs.len() + signature.len() + 4);
    message.extend(tbs);
    message.extend(VLBytes::from(signature).tls_serialize_detached()?);
    Ok(MlsMessageIn::tls_deserialize_exact(message)?)
}
