//! The MLS objects the tester needs (RFC 9420 through openmls): a client
//! identity per tester device, signed requests, sample messages of a
//! throw-away group for well-formed bodies, and external joins (-06 §5.6).

use mimi_protocol::msgs::{
    GroupInfoRequest, GroupInfoRequestTbs, KeyMaterialRequest, KeyMaterialRequestTbs,
};
use mimi_protocol::{IdentifierUri, Protocol};
use openmls::messages::group_info::{GroupInfo, VerifiableGroupInfo};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use tls_codec::{Deserialize as _, Serialize as _};

/// The suite the tester offers: the mandatory-to-implement suite of
/// RFC 9420 §17.1.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// Why an MLS object could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct MlsError {
    pub what: &'static str,
    pub reason: String,
}

fn mls_err(what: &'static str) -> impl FnOnce(String) -> MlsError {
    move |reason| MlsError { what, reason }
}

/// Serialises and parses, as the network would.
fn wire(out: impl Into<MlsMessageOut>) -> Result<MlsMessageIn, MlsError> {
    let bytes = out
        .into()
        .tls_serialize_detached()
        .map_err(|e| mls_err("encoding an MLS message")(e.to_string()))?;
    MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| mls_err("decoding an MLS message")(e.to_string()))
}

/// Leaf capabilities: the MLS extensions MIMI rooms use (-06 §7), plus
/// whatever the room's `required_capabilities` asks for.
fn capabilities(required: Option<&RequiredCapabilitiesExtension>) -> Capabilities {
    let mut extensions = vec![ExtensionType::AppDataDictionary];
    let mut proposals = vec![ProposalType::AppDataUpdate, ProposalType::SelfRemove];
    let mut credentials = vec![CredentialType::Basic];
    if let Some(req) = required {
        extensions.extend(req.extension_types().iter().copied());
        proposals.extend(req.proposal_types().iter().copied());
        credentials.extend(req.credential_types().iter().copied());
    }
    extensions.sort_by_key(|e| u16::from(*e));
    extensions.dedup();
    proposals.sort_by_key(|p| u16::from(*p));
    proposals.dedup();
    credentials.sort_by_key(|c| u16::from(*c));
    credentials.dedup();
    Capabilities::new(
        None,
        None,
        Some(&extensions),
        Some(&proposals),
        Some(&credentials),
    )
}

/// One tester device: a BasicCredential naming its `mimi://…/d/…` URI.
pub struct TesterClient {
    pub device: String,
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
}

impl TesterClient {
    pub fn new(device: &str) -> Result<Self, MlsError> {
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm())
            .map_err(|e| mls_err("signature key")(format!("{e:?}")))?;
        signer
            .store(provider.storage())
            .map_err(|e| mls_err("storing the signature key")(format!("{e:?}")))?;
        let credential = CredentialWithKey {
            credential: BasicCredential::new(device.as_bytes().to_vec()).into(),
            signature_key: signer.public().into(),
        };
        Ok(Self {
            device: device.to_owned(),
            provider,
            signer,
            credential,
        })
    }

    /// Random lowercase hex, for fresh names.
    pub fn random_hex(&self, octets: usize) -> String {
        self.provider
            .rand()
            .random_vec(octets)
            .map(hex::encode)
            .unwrap_or_else(|_| "0".repeat(octets * 2))
    }

    /// A signed `KeyMaterialRequest` (-06 §5.2).
    pub fn key_material_request(
        &self,
        requesting_user: &str,
        target_user: &str,
        room: &str,
    ) -> Result<KeyMaterialRequest, MlsError> {
        KeyMaterialRequestTbs {
            protocol: Protocol::Mls10,
            requesting_user: IdentifierUri::new(requesting_user),
            target_user: IdentifierUri::new(target_user),
            room_id: IdentifierUri::new(room),
            acceptable_ciphersuites: vec![CIPHERSUITE.into()],
            required_capabilities: RequiredCapabilitiesExtension::new(&[], &[], &[]),
            requester_signature_key: self.signer.public().into(),
            requester_credential: self.credential.credential.clone(),
        }
        .sign(&self.signer)
        .map_err(|e| mls_err("signing a KeyMaterialRequest")(e.to_string()))
    }

    /// A signed `GroupInfoRequest` (-06 §5.6) and the HPKE private key
    /// for its answer.
    pub fn group_info_request(&self) -> Result<(GroupInfoRequest, Vec<u8>), MlsError> {
        let ikm = self
            .provider
            .rand()
            .random_vec(32)
            .map_err(|e| mls_err("randomness")(format!("{e:?}")))?;
        let keys = self
            .provider
            .crypto()
            .derive_hpke_keypair(CIPHERSUITE.hpke_config(), &ikm)
            .map_err(|e| mls_err("HPKE key")(format!("{e:?}")))?;
        let request = GroupInfoRequestTbs {
            protocol: Protocol::Mls10,
            cipher_suite: CIPHERSUITE.into(),
            requesting_signature_key: self.signer.public().into(),
            requesting_credential: self.credential.credential.clone(),
            group_info_public_key: keys.public.clone().into(),
            joining_code: None,
        }
        .sign(&self.signer)
        .map_err(|e| mls_err("signing a GroupInfoRequest")(e.to_string()))?;
        Ok((request, keys.private.to_vec()))
    }

    pub fn crypto(&self) -> &impl openmls_traits::crypto::OpenMlsCrypto {
        self.provider.crypto()
    }

    /// Well-formed MLS messages of a throw-away one-member group: a commit
    /// with the new epoch's GroupInfo and an application message.
    pub fn sample_messages(&self) -> Result<SampleMessages, MlsError> {
        let mut group = MlsGroup::builder()
            .ciphersuite(CIPHERSUITE)
            .with_capabilities(capabilities(None))
            .with_wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build(&self.provider, &self.signer, self.credential.clone())
            .map_err(|e| mls_err("creating a group")(format!("{e:?}")))?;
        let bundle = group
            .commit_builder()
            .load_psks(self.provider.storage())
            .map_err(|e| mls_err("commit")(format!("{e:?}")))?
            .create_group_info(true)
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.signer,
                |_| true,
            )
            .map_err(|e| mls_err("commit")(format!("{e:?}")))?
            .stage_commit(&self.provider)
            .map_err(|e| mls_err("commit")(format!("{e:?}")))?;
        let (commit, _, group_info) = bundle.into_contents();
        let commit = wire(commit)?;
        let group_info = group_info_of(group_info.ok_or_else(|| MlsError {
            what: "commit",
            reason: "no GroupInfo".into(),
        })?)?;
        group
            .merge_pending_commit(&self.provider)
            .map_err(|e| mls_err("merging a commit")(format!("{e:?}")))?;
        let application = wire(
            group
                .create_message(&self.provider, &self.signer, b"mimi conformance")
                .map_err(|e| mls_err("application message")(format!("{e:?}")))?,
        )?;
        Ok(SampleMessages {
            commit,
            group_info,
            application,
        })
    }

    /// Joins by external commit (RFC 9420 §12.4.3.2) from a GroupInfo and
    /// ratchet tree; returns the commit and the new epoch's GroupInfo, which
    /// a hub needs because it cannot sign one (-06 §5.3, §5.6).
    pub fn external_commit(
        &self,
        tree: RatchetTreeIn,
        info: VerifiableGroupInfo,
    ) -> Result<(MlsMessageIn, VerifiableGroupInfo), MlsError> {
        let required = info
            .group_context()
            .extensions()
            .required_capabilities()
            .cloned();
        let config = MlsGroupJoinConfig::builder()
            .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build();
        let (group, bundle) = MlsGroup::external_commit_builder()
            .with_ratchet_tree(tree)
            .with_config(config)
            .build_group(&self.provider, info, self.credential.clone())
            .map_err(|e| mls_err("external commit")(format!("{e:?}")))?
            .leaf_node_parameters(
                LeafNodeParameters::builder()
                    .with_capabilities(capabilities(required.as_ref()))
                    .build(),
            )
            .load_psks(self.provider.storage())
            .map_err(|e| mls_err("external commit")(format!("{e:?}")))?
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.signer,
                |_| true,
            )
            .map_err(|e| mls_err("external commit")(format!("{e:?}")))?
            .finalize(&self.provider)
            .map_err(|e| mls_err("external commit")(format!("{e:?}")))?;
        let commit = wire(bundle.into_commit())?;
        let info = group
            .export_group_info(self.provider.crypto(), &self.signer, false)
            .map_err(|e| mls_err("exporting a GroupInfo")(format!("{e:?}")))?;
        Ok((commit, group_info_of_message(info)?))
    }
}

fn group_info_of(info: GroupInfo) -> Result<VerifiableGroupInfo, MlsError> {
    group_info_of_message(MlsMessageOut::from(info))
}

fn group_info_of_message(info: MlsMessageOut) -> Result<VerifiableGroupInfo, MlsError> {
    match wire(info)?.extract() {
        MlsMessageBodyIn::GroupInfo(info) => Ok(info),
        _ => Err(MlsError {
            what: "GroupInfo",
            reason: "not a GroupInfo message".into(),
        }),
    }
}

/// Well-formed MLS messages for building valid bodies.
pub struct SampleMessages {
    pub commit: MlsMessageIn,
    pub group_info: VerifiableGroupInfo,
    pub application: MlsMessageIn,
}

/// The `KeyPackageRef` (RFC 9420 §5.2) of a KeyPackage a target sent, once
/// its signatures verify and its lifetime covers now (-06 §5.2: a target
/// MUST NOT provide expired keying material).
pub fn key_package_ref(
    crypto: &impl openmls_traits::crypto::OpenMlsCrypto,
    key_package: KeyPackageIn,
) -> Result<String, String> {
    let kp = key_package
        .validate(crypto, ProtocolVersion::Mls10)
        .map_err(|e| format!("KeyPackage does not validate: {e:?}"))?;
    let r = kp
        .hash_ref(crypto)
        .map_err(|e| format!("KeyPackageRef: {e:?}"))?;
    Ok(hex::encode(r.as_slice()))
}
