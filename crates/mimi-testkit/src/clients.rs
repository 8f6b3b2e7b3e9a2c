//! Real openmls clients for driving a hub in tests: enough of a client to
//! create rooms, add and remove users, leave, join by external commit and
//! process fanned-out handshakes. They panic on errors, as test code
//! should. The full client is `mimi-client`.

use mimi_protocol::components::room_policy::RoleData;
use mimi_protocol::components::{
    FRANK_AAD, FRANKING_SIGNATURE_KEY, FrankAAD, FrankingAgentData, PARTICIPANT_LIST,
    ParticipantListData, ParticipantListUpdate, ROLES_LIST, UserRolePair,
};
use mimi_protocol::msgs::key_material::{KeyMaterialRequest, KeyMaterialRequestTbs};
use mimi_protocol::{IdentifierUri, Protocol};
use mimi_room::components::resolve_app_data_updates;
use mimi_room::policy::default_roles;
use openmls::component::{ComponentData, ComponentId, ComponentType, ComponentsList};
use openmls::framing::SafeAadItem;
use openmls::messages::group_info::{GroupInfo, VerifiableGroupInfo};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use tls_codec::{Deserialize as _, Serialize as _};

/// The cipher suite of [`TestClient::new`].
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// What a room gets besides its participant list and roles: the hub as
/// external sender (-06 §7.4) and as franking agent, and whether messages
/// must carry `frank_aad` (-06 §5.4.1).
#[derive(Default)]
pub struct RoomExtras {
    pub external_sender: Option<ExternalSender>,
    pub franking_agent: Option<FrankingAgentData>,
    pub require_frank_aad: bool,
}

pub fn capabilities() -> Capabilities {
    Capabilities::new(
        None,
        None,
        Some(&[ExtensionType::AppDataDictionary]),
        Some(&[ProposalType::AppDataUpdate, ProposalType::SelfRemove]),
        None,
    )
}

/// What a client of another implementation may have: the room's required
/// capabilities, but no SelfRemove (-06 does not require it).
pub fn capabilities_without_self_remove() -> Capabilities {
    Capabilities::new(
        None,
        None,
        Some(&[ExtensionType::AppDataDictionary]),
        Some(&[ProposalType::AppDataUpdate]),
        None,
    )
}

/// The `required_capabilities` of test rooms, as mimi-client's rooms:
/// the `app_data_dictionary` extension and AppDataUpdate proposals.
pub fn required_capabilities() -> RequiredCapabilitiesExtension {
    RequiredCapabilitiesExtension::new(
        &[ExtensionType::AppDataDictionary],
        &[ProposalType::AppDataUpdate],
        &[],
    )
}

/// Serialises and parses, as the network would.
pub fn wire(out: impl Into<MlsMessageOut>) -> MlsMessageIn {
    let bytes = out.into().tls_serialize_detached().unwrap();
    MlsMessageIn::tls_deserialize_exact(bytes).unwrap()
}

pub fn user_of(device: &str) -> String {
    // mimi://d/<user>/<device> → mimi://d/u/<user>
    let (domain, rest) = device
        .trim_start_matches("mimi://")
        .split_once("/d/")
        .unwrap();
    let user = rest.split('/').next().unwrap();
    format!("mimi://{domain}/u/{user}")
}

pub struct TestClient {
    pub device: String,
    /// The suite of its KeyPackages and of the rooms it creates.
    pub ciphersuite: Ciphersuite,
    pub provider: OpenMlsRustCrypto,
    pub signer: SignatureKeyPair,
    pub credential: CredentialWithKey,
    pub group: Option<MlsGroup>,
    /// The leaf capabilities of this client's KeyPackages and leaves.
    pub capabilities: Capabilities,
    /// The hub's `ExternalSender`, listed in `external_senders` of rooms
    /// this client creates (-06 §7.4); see [`TestClient::hosted_by`].
    pub hub: Option<ExternalSender>,
}

impl TestClient {
    pub fn new(device: &str) -> Self {
        Self::with_ciphersuite(device, CIPHERSUITE)
    }

    /// A client whose signature key, KeyPackages and rooms use
    /// `ciphersuite`.
    pub fn with_ciphersuite(device: &str, ciphersuite: Ciphersuite) -> Self {
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(ciphersuite.signature_algorithm()).unwrap();
        signer.store(provider.storage()).unwrap();
        let credential = CredentialWithKey {
            credential: BasicCredential::new(device.as_bytes().to_vec()).into(),
            signature_key: signer.public().into(),
        };
        Self {
            device: device.into(),
            ciphersuite,
            provider,
            signer,
            credential,
            group: None,
            capabilities: capabilities(),
            hub: None,
        }
    }

    /// Rooms this client creates list `hub` as their external sender, as
    /// -06 §7.4 requires of the hub hosting them.
    pub fn hosted_by(mut self, hub: ExternalSender) -> Self {
        self.hub = Some(hub);
        self
    }

    /// A client whose KeyPackages and leaf announce `capabilities`.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    pub fn user(&self) -> String {
        user_of(&self.device)
    }

    pub fn key_package(&self) -> KeyPackage {
        KeyPackage::builder()
            .leaf_node_capabilities(self.capabilities.clone())
            .build(
                self.ciphersuite,
                &self.provider,
                &self.signer,
                self.credential.clone(),
            )
            .unwrap()
            .key_package()
            .clone()
    }

    /// A signed `KeyMaterialRequest` (-06 §5.2) from this client's user
    /// for `target_user`'s KeyPackages, outside any room, accepting the
    /// client's suite.
    pub fn key_material_request(
        &self,
        target_user: &str,
        required_capabilities: RequiredCapabilitiesExtension,
    ) -> KeyMaterialRequest {
        KeyMaterialRequestTbs {
            protocol: Protocol::Mls10,
            requesting_user: IdentifierUri::new(self.user()),
            target_user: IdentifierUri::new(target_user),
            room_id: IdentifierUri::new(""),
            acceptable_ciphersuites: vec![self.ciphersuite.into()],
            required_capabilities,
            requester_signature_key: self.signer.public().into(),
            requester_credential: self.credential.credential.clone(),
        }
        .sign(&self.signer)
        .unwrap()
    }

    fn join_config() -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build()
    }

    /// Creates a room with the given participants (the creator among them)
    /// and roles; returns what the creator uploads to the hub.
    pub fn create_room(
        &mut self,
        participants: &[(&str, u32)],
        roles: RoleData,
    ) -> (RatchetTreeIn, VerifiableGroupInfo) {
        self.create_room_with(participants, roles, RoomExtras::default())
    }

    /// [`TestClient::create_room`] with an external sender, a franking
    /// agent and `frank_aad` required as `extras` say.
    pub fn create_room_with(
        &mut self,
        participants: &[(&str, u32)],
        roles: RoleData,
        extras: RoomExtras,
    ) -> (RatchetTreeIn, VerifiableGroupInfo) {
        let list = ParticipantListData::new(
            participants
                .iter()
                .map(|(u, r)| UserRolePair::new(u.as_bytes().to_vec(), *r))
                .collect(),
        );
        let mut dict = AppDataDictionary::new();
        dict.insert(PARTICIPANT_LIST, list.tls_serialize_detached().unwrap());
        dict.insert(ROLES_LIST, roles.tls_serialize_detached().unwrap());
        if let Some(agent) = extras.franking_agent {
            dict.insert(
                FRANKING_SIGNATURE_KEY,
                agent.tls_serialize_detached().unwrap(),
            );
        }
        if extras.require_frank_aad {
            dict.insert(
                ComponentId::from(ComponentType::SafeAad),
                ComponentsList::new(vec![FRANK_AAD])
                    .tls_serialize_detached()
                    .unwrap(),
            );
        }
        let mut extensions = vec![
            Extension::AppDataDictionary(AppDataDictionaryExtension::new(dict)),
            Extension::RequiredCapabilities(required_capabilities()),
        ];
        if let Some(sender) = extras.external_sender.or_else(|| self.hub.clone()) {
            extensions.push(Extension::ExternalSenders(vec![sender]));
        }
        let extensions = Extensions::from_vec(extensions).unwrap();
        let group = MlsGroup::builder()
            .ciphersuite(self.ciphersuite)
            .with_capabilities(self.capabilities.clone())
            .with_group_context_extensions(extensions)
            .with_wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build(&self.provider, &self.signer, self.credential.clone())
            .unwrap();
        self.group = Some(group);
        self.group_info()
    }

    pub fn create_default_room(
        &mut self,
        others: &[(&str, u32)],
    ) -> (RatchetTreeIn, VerifiableGroupInfo) {
        let me = self.user();
        let mut participants = vec![(me.as_str(), mimi_room::policy::default_role::ADMIN)];
        participants.extend_from_slice(others);
        self.create_room(&participants, default_roles())
    }

    pub fn group(&mut self) -> &mut MlsGroup {
        self.group.as_mut().expect("not in a group")
    }

    pub fn epoch(&self) -> u64 {
        self.group.as_ref().unwrap().epoch().as_u64()
    }

    pub fn group_info(&self) -> (RatchetTreeIn, VerifiableGroupInfo) {
        let group = self.group.as_ref().unwrap();
        let info = group
            .export_group_info(self.provider.crypto(), &self.signer, false)
            .unwrap();
        let MlsMessageBodyIn::GroupInfo(info) = wire(info).extract() else {
            panic!("not a GroupInfo")
        };
        (group.export_ratchet_tree().into(), info)
    }

    pub fn participants(&self) -> ParticipantListData {
        let dict = self
            .group
            .as_ref()
            .unwrap()
            .extensions()
            .app_data_dictionary()
            .unwrap()
            .dictionary();
        mimi_protocol::components::decode_component(dict.get(&PARTICIPANT_LIST).unwrap()).unwrap()
    }

    /// Builds (but does not merge) a commit with the given inline
    /// proposals and Adds, also committing pending proposals by reference.
    pub fn commit(
        &mut self,
        proposals: Vec<Proposal>,
        adds: Vec<KeyPackage>,
    ) -> (MlsMessageIn, Option<Welcome>) {
        self.commit_with_removals(proposals, adds, vec![])
    }

    pub fn commit_with_removals(
        &mut self,
        proposals: Vec<Proposal>,
        adds: Vec<KeyPackage>,
        removals: Vec<LeafNodeIndex>,
    ) -> (MlsMessageIn, Option<Welcome>) {
        let (commit, welcome, _) = self.stage_commit(proposals, adds, removals, false);
        (commit, welcome)
    }

    /// Like [`Self::commit`], with the new epoch's GroupInfo (which the hub
    /// requires with a commit, -06 §5.6).
    pub fn commit_with_group_info(
        &mut self,
        proposals: Vec<Proposal>,
        adds: Vec<KeyPackage>,
    ) -> (MlsMessageIn, Option<Welcome>, VerifiableGroupInfo) {
        let (commit, welcome, group_info) = self.stage_commit(proposals, adds, vec![], true);
        let group_info = match wire(group_info.expect("asked for a GroupInfo")).extract() {
            MlsMessageBodyIn::GroupInfo(g) => g,
            _ => unreachable!("a GroupInfo message"),
        };
        (commit, welcome, group_info)
    }

    /// Stages (but does not merge) a commit with the app-data updates its
    /// AppDataUpdate proposals resolve to.
    fn stage_commit(
        &mut self,
        proposals: Vec<Proposal>,
        adds: Vec<KeyPackage>,
        removals: Vec<LeafNodeIndex>,
        group_info: bool,
    ) -> (MlsMessageIn, Option<Welcome>, Option<GroupInfo>) {
        self.stage_commit_with(proposals, adds, removals, None, group_info)
    }

    fn stage_commit_with(
        &mut self,
        proposals: Vec<Proposal>,
        adds: Vec<KeyPackage>,
        removals: Vec<LeafNodeIndex>,
        group_context_extensions: Option<Extensions<GroupContext>>,
        group_info: bool,
    ) -> (MlsMessageIn, Option<Welcome>, Option<GroupInfo>) {
        let provider = &self.provider;
        let signer = &self.signer;
        let group = self.group.as_mut().unwrap();
        let old = group
            .extensions()
            .app_data_dictionary()
            .map(|e| e.dictionary().clone());
        let mut builder = group.commit_builder();
        if let Some(extensions) = group_context_extensions {
            builder = builder
                .propose_group_context_extensions(extensions)
                .unwrap();
        }
        let mut stage = builder
            .add_proposals(proposals)
            .propose_adds(adds)
            .propose_removals(removals)
            .load_psks(provider.storage())
            .unwrap()
            .create_group_info(group_info);
        let updates =
            resolve_app_data_updates(old.as_ref(), stage.app_data_update_proposals()).unwrap();
        stage.with_app_data_dictionary_updates(updates);
        let bundle = stage
            .build(provider.rand(), provider.crypto(), signer, |_| true)
            .unwrap()
            .stage_commit(provider)
            .unwrap();
        let (commit, welcome, group_info) = bundle.into_contents();
        (wire(commit), welcome, group_info)
    }

    pub fn merge_pending(&mut self) {
        let provider = &self.provider;
        self.group
            .as_mut()
            .unwrap()
            .merge_pending_commit(provider)
            .unwrap();
    }

    pub fn discard_pending(&mut self) {
        let provider = &self.provider;
        self.group
            .as_mut()
            .unwrap()
            .clear_pending_commit(provider.storage())
            .unwrap();
    }

    /// Processes a fanned-out handshake message; commits are merged.
    pub fn process(&mut self, message: MlsMessageIn) {
        let provider = &self.provider;
        let group = self.group.as_mut().unwrap();
        let protocol = message.try_into_protocol_message().unwrap();
        let processed = group.process_message(provider, protocol).unwrap();
        match processed.into_content() {
            ProcessedMessageContent::ProposalMessage(p)
            | ProcessedMessageContent::ExternalJoinProposalMessage(p) => group
                .store_pending_proposal(provider.storage(), *p)
                .unwrap(),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                group.merge_staged_commit(provider, *staged).unwrap()
            }
            ProcessedMessageContent::UnresolvedAppDataCommit(unresolved) => {
                let old = group
                    .extensions()
                    .app_data_dictionary()
                    .map(|e| e.dictionary().clone());
                let updates =
                    resolve_app_data_updates(old.as_ref(), unresolved.app_data_update_proposals())
                        .unwrap();
                let staged = group
                    .stage_app_data_commit(provider, *unresolved, updates)
                    .unwrap();
                group.merge_staged_commit(provider, staged).unwrap();
            }
            other => panic!("unexpected content {other:?}"),
        }
    }

    pub fn join(&mut self, welcome: Welcome, tree: RatchetTreeIn) {
        let staged = StagedWelcome::new_from_welcome(
            &self.provider,
            &Self::join_config(),
            welcome,
            Some(tree),
        )
        .unwrap();
        self.group = Some(staged.into_group(&self.provider).unwrap());
    }

    /// Joins by external commit from a GroupInfo (-06 §5.6); returns the
    /// commit for the hub.
    pub fn join_external(
        &mut self,
        tree: RatchetTreeIn,
        info: VerifiableGroupInfo,
    ) -> MlsMessageIn {
        let (group, bundle) = MlsGroup::external_commit_builder()
            .with_ratchet_tree(tree)
            .with_config(Self::join_config())
            .build_group(&self.provider, info, self.credential.clone())
            .unwrap()
            .leaf_node_parameters(
                LeafNodeParameters::builder()
                    .with_capabilities(self.capabilities.clone())
                    .build(),
            )
            .load_psks(self.provider.storage())
            .unwrap()
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.signer,
                |_| true,
            )
            .unwrap()
            .finalize(&self.provider)
            .unwrap();
        self.group = Some(group);
        wire(bundle.into_commit())
    }

    /// An external join proposal (RFC 9420 §12.1.8 `new_member_proposal`):
    /// an Add of a fresh KeyPackage of this client, for the group and
    /// epoch of `info`. The client joins later from the Welcome.
    pub fn join_proposal(&self, info: &VerifiableGroupInfo) -> MlsMessageIn {
        let context = info.group_context();
        wire(
            JoinProposal::new::<<OpenMlsRustCrypto as OpenMlsProvider>::StorageProvider>(
                self.key_package(),
                context.group_id().clone(),
                context.epoch(),
                &self.signer,
            )
            .unwrap(),
        )
    }

    /// An application message carrying `bytes`, with `frank_aad` in its
    /// Safe AAD when `franking_tag` is given (-06 §5.4.1).
    pub fn application_message(
        &mut self,
        bytes: &[u8],
        franking_tag: Option<[u8; 32]>,
    ) -> MlsMessageIn {
        let group = self.group.as_mut().expect("not in a group");
        if let Some(franking_tag) = franking_tag {
            let aad = FrankAAD { franking_tag }.tls_serialize_detached().unwrap();
            group
                .set_safe_aad(vec![SafeAadItem::new(FRANK_AAD, aad)])
                .unwrap();
        }
        wire(
            group
                .create_message(&self.provider, &self.signer, bytes)
                .unwrap(),
        )
    }

    pub fn self_remove(&mut self) -> MlsMessageIn {
        let provider = &self.provider;
        wire(
            self.group
                .as_mut()
                .unwrap()
                .leave_group_via_self_remove(provider, &self.signer)
                .unwrap(),
        )
    }

    /// Leaves as a client without SelfRemove does (RFC 9420 §12.1.3): a
    /// Remove proposal for its own leaf, which another member commits.
    pub fn leave_by_remove(&mut self) -> MlsMessageIn {
        let provider = &self.provider;
        wire(
            self.group
                .as_mut()
                .unwrap()
                .leave_group(provider, &self.signer)
                .unwrap(),
        )
    }

    /// The group's current extensions with `external_senders` replaced by
    /// `senders`: the content of a GroupContextExtensions proposal
    /// (RFC 9420 §12.1.7) that changes only that list.
    pub fn with_external_senders(&self, senders: Vec<ExternalSender>) -> Extensions<GroupContext> {
        let group = self.group.as_ref().unwrap();
        let mut extensions: Vec<Extension> = group
            .extensions()
            .iter()
            .filter(|e| e.extension_type() != ExtensionType::ExternalSenders)
            .cloned()
            .collect();
        extensions.push(Extension::ExternalSenders(senders));
        Extensions::from_vec(extensions).unwrap()
    }

    /// A GroupContextExtensions proposal by reference, for the hub to
    /// queue.
    pub fn propose_group_context_extensions(
        &mut self,
        extensions: Extensions<GroupContext>,
    ) -> MlsMessageIn {
        let provider = &self.provider;
        let (message, _) = self
            .group
            .as_mut()
            .unwrap()
            .propose_group_context_extensions(provider, extensions, &self.signer)
            .unwrap();
        wire(message)
    }

    /// Builds (but does not merge) a commit with a GroupContextExtensions
    /// proposal inline, the given inline proposals and removals.
    pub fn commit_group_context_extensions(
        &mut self,
        extensions: Extensions<GroupContext>,
        proposals: Vec<Proposal>,
        removals: Vec<LeafNodeIndex>,
    ) -> (MlsMessageIn, VerifiableGroupInfo) {
        let (commit, _, group_info) =
            self.stage_commit_with(proposals, vec![], removals, Some(extensions), true);
        let group_info = match wire(group_info.expect("asked for a GroupInfo")).extract() {
            MlsMessageBodyIn::GroupInfo(g) => g,
            _ => unreachable!("a GroupInfo message"),
        };
        (commit, group_info)
    }

    pub fn propose_participants(&mut self, update: &ParticipantListUpdate) -> MlsMessageIn {
        let provider = &self.provider;
        let (msg, _) = self
            .group
            .as_mut()
            .unwrap()
            .propose_app_data_update(
                provider,
                &self.signer,
                PARTICIPANT_LIST,
                AppDataUpdateOperation::Update(update.tls_serialize_detached().unwrap().into()),
            )
            .unwrap();
        wire(msg)
    }

    pub fn leaf_of(&self, device: &str) -> LeafNodeIndex {
        self.group
            .as_ref()
            .unwrap()
            .members()
            .find(|m| m.credential.serialized_content() == device.as_bytes())
            .map(|m| m.index)
            .expect("no such member")
    }
}

pub fn participant_update(proposal: &ParticipantListUpdate) -> Proposal {
    Proposal::AppDataUpdate(Box::new(AppDataUpdateProposal::update(
        PARTICIPANT_LIST,
        proposal.tls_serialize_detached().unwrap(),
    )))
}

pub fn add_participant(user: &str, role: u32) -> ParticipantListUpdate {
    ParticipantListUpdate {
        added_participants: vec![UserRolePair::new(user.as_bytes().to_vec(), role)],
        ..Default::default()
    }
}

pub fn component_data(id: u16, data: Vec<u8>) -> ComponentData {
    ComponentData::from_parts(id, data.into())
}
