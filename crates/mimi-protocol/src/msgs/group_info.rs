//! Claim group key information: `POST /groupInfo/{roomId}` (-06 §5.6).

use std::io::{Read, Write};

use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::{Credential, ExternalSender, MlsMessageIn, SignaturePublicKey};
use openmls_traits::{crypto::OpenMlsCrypto, signatures::Signer, types::HpkeCiphertext};
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::{
    CipherSuite, MsgError,
    ratchet_tree::RatchetTreeOption,
    signing::{labels, sign_tbs, verify_tbs},
};
use crate::common::Protocol;

/// `struct GroupInfoRequestTBS` (-06 §5.6).
///
/// Reading: the TBS says `optional opaque joiningCode<V>` while the request
/// says `opaque joiningCode<V>`. The signature must cover exactly the signed
/// fields, so both use `optional<opaque joiningCode<V>>`.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoRequestTbs {
    pub protocol: Protocol,
    /// Only fixes the algorithms for signing request and response.
    pub cipher_suite: CipherSuite,
    pub requesting_signature_key: SignaturePublicKey,
    pub requesting_credential: Credential,
    /// `HPKEPublicKey groupInfoPublicKey` (`opaque<V>`).
    pub group_info_public_key: VLBytes,
    pub joining_code: Option<VLBytes>,
}

/// `struct GroupInfoRequest` (-06 §5.6): the TBS fields followed by the
/// signature.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoRequest {
    pub protocol: Protocol,
    pub cipher_suite: CipherSuite,
    pub requesting_signature_key: SignaturePublicKey,
    pub requesting_credential: Credential,
    pub group_info_public_key: VLBytes,
    pub joining_code: Option<VLBytes>,
    /// `SignWithLabel(requestingSignatureKey, "GroupInfoRequestTBS", tbs)`.
    pub signature: VLBytes,
}

impl GroupInfoRequestTbs {
    pub fn sign(self, signer: &impl Signer) -> Result<GroupInfoRequest, MsgError> {
        let signature = sign_tbs(signer, labels::GROUP_INFO_REQUEST, &self)?;
        Ok(GroupInfoRequest {
            protocol: self.protocol,
            cipher_suite: self.cipher_suite,
            requesting_signature_key: self.requesting_signature_key,
            requesting_credential: self.requesting_credential,
            group_info_public_key: self.group_info_public_key,
            joining_code: self.joining_code,
            signature,
        })
    }
}

impl GroupInfoRequest {
    pub fn tbs(&self) -> GroupInfoRequestTbs {
        GroupInfoRequestTbs {
            protocol: self.protocol,
            cipher_suite: self.cipher_suite,
            requesting_signature_key: self.requesting_signature_key.clone(),
            requesting_credential: self.requesting_credential.clone(),
            group_info_public_key: self.group_info_public_key.clone(),
            joining_code: self.joining_code.clone(),
        }
    }

    /// Verifies the signature with `requesting_signature_key` and the
    /// signature scheme of `cipher_suite`.
    pub fn verify(&self, crypto: &impl OpenMlsCrypto) -> Result<(), MsgError> {
        verify_tbs(
            crypto,
            self.cipher_suite.signature_scheme()?,
            self.requesting_signature_key.as_slice(),
            labels::GROUP_INFO_REQUEST,
            &self.tbs(),
            self.signature.as_slice(),
        )
    }
}

/// `enum GroupInfoCode` (-06 §5.6). `reserved(0)` fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum GroupInfoCode {
    Success = 1,
    NotAuthorized = 2,
    NoSuchRoom = 3,
}

/// `struct PendingProposal` (-06 §5.6).
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct PendingProposal {
    pub proposal: MlsMessageIn,
    pub hub_accepted_time: u64,
}

/// `struct GroupInfoRatchetTreeTBE` (-06 §5.6): the plaintext of
/// `encrypted_groupinfo_and_tree` (EncryptWithLabel with label
/// "GroupInfo and ratchet_tree encryption" and the room ID as context).
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoRatchetTreeTbe {
    /// Without an embedded `ratchet_tree` extension.
    pub group_info: VerifiableGroupInfo,
    pub ratchet_tree_option: RatchetTreeOption,
    pub pending_proposals: Vec<PendingProposal>,
}

/// `struct GroupInfoResponseTBS` (-06 §5.6).
///
/// Reading: the draft's field is named `version` but selected on as
/// `protocol`; it is the `Protocol` value. The TBS has no `select (status)`:
/// it exists only for a `success` response and always carries the mls10
/// fields, exactly as written.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoResponseTbs {
    pub protocol: Protocol,
    pub room_id: VLBytes,
    pub status: GroupInfoCode,
    pub cipher_suite: CipherSuite,
    pub hub_sender: ExternalSender,
    pub encrypted_groupinfo_and_tree: HpkeCiphertext,
}

/// The mls10 fields of a `success` [`GroupInfoResponse`].
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoSuccess {
    pub cipher_suite: CipherSuite,
    pub hub_sender: ExternalSender,
    pub encrypted_groupinfo_and_tree: HpkeCiphertext,
    /// `SignWithLabel(hub_sender.signature_key, "GroupInfoResponseTBS", tbs)`.
    pub signature: VLBytes,
}

/// The `select (status)` part of a [`GroupInfoResponse`].
#[derive(Debug, Clone, PartialEq)]
pub enum GroupInfoResponseBody {
    Success(GroupInfoSuccess),
    NotAuthorized,
    NoSuchRoom,
}

impl GroupInfoResponseBody {
    pub fn status(&self) -> GroupInfoCode {
        match self {
            Self::Success(_) => GroupInfoCode::Success,
            Self::NotAuthorized => GroupInfoCode::NotAuthorized,
            Self::NoSuchRoom => GroupInfoCode::NoSuchRoom,
        }
    }
}

/// `struct GroupInfoResponse` (-06 §5.6): `version` (a `Protocol`),
/// `room_id`, `status`, and for `success` the mls10 fields and signature;
/// nothing for other codes.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInfoResponse {
    pub protocol: Protocol,
    pub room_id: VLBytes,
    pub body: GroupInfoResponseBody,
}

impl GroupInfoResponseTbs {
    /// Hub side: signs with the key of `hub_sender`.
    pub fn sign(self, signer: &impl Signer) -> Result<GroupInfoResponse, MsgError> {
        if self.status != GroupInfoCode::Success {
            return Err(MsgError::NotSigned);
        }
        let signature = sign_tbs(signer, labels::GROUP_INFO_RESPONSE, &self)?;
        Ok(GroupInfoResponse {
            protocol: self.protocol,
            room_id: self.room_id,
            body: GroupInfoResponseBody::Success(GroupInfoSuccess {
                cipher_suite: self.cipher_suite,
                hub_sender: self.hub_sender,
                encrypted_groupinfo_and_tree: self.encrypted_groupinfo_and_tree,
                signature,
            }),
        })
    }
}

impl GroupInfoResponse {
    pub fn status(&self) -> GroupInfoCode {
        self.body.status()
    }

    /// The signed part; `None` unless the status is `success`.
    pub fn tbs(&self) -> Option<GroupInfoResponseTbs> {
        match &self.body {
            GroupInfoResponseBody::Success(s) => Some(GroupInfoResponseTbs {
                protocol: self.protocol,
                room_id: self.room_id.clone(),
                status: GroupInfoCode::Success,
                cipher_suite: s.cipher_suite,
                hub_sender: s.hub_sender.clone(),
                encrypted_groupinfo_and_tree: s.encrypted_groupinfo_and_tree.clone(),
            }),
            _ => None,
        }
    }

    /// Verifies the signature with `hub_sender.signature_key` and the scheme
    /// of `cipher_suite`. Whether `hub_sender` is really the hub is the
    /// caller's check.
    pub fn verify(&self, crypto: &impl OpenMlsCrypto) -> Result<(), MsgError> {
        let (GroupInfoResponseBody::Success(s), Some(tbs)) = (&self.body, self.tbs()) else {
            return Err(MsgError::NotSigned);
        };
        let (hub_key, _) = external_sender_parts(&s.hub_sender)?;
        verify_tbs(
            crypto,
            s.cipher_suite.signature_scheme()?,
            hub_key.as_slice(),
            labels::GROUP_INFO_RESPONSE,
            &tbs,
            s.signature.as_slice(),
        )
    }
}

impl Size for GroupInfoResponse {
    fn tls_serialized_len(&self) -> usize {
        1 + self.room_id.tls_serialized_len()
            + 1
            + match &self.body {
                GroupInfoResponseBody::Success(s) => s.tls_serialized_len(),
                _ => 0,
            }
    }
}

impl Serialize for GroupInfoResponse {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut n = self.protocol.tls_serialize(writer)?;
        n += self.room_id.tls_serialize(writer)?;
        n += self.status().tls_serialize(writer)?;
        if let GroupInfoResponseBody::Success(s) = &self.body {
            n += s.tls_serialize(writer)?;
        }
        Ok(n)
    }
}

impl Deserialize for GroupInfoResponse {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let protocol = Protocol::tls_deserialize(bytes)?;
        let room_id = VLBytes::tls_deserialize(bytes)?;
        let body = match GroupInfoCode::tls_deserialize(bytes)? {
            GroupInfoCode::Success => {
                GroupInfoResponseBody::Success(GroupInfoSuccess::tls_deserialize(bytes)?)
            }
            GroupInfoCode::NotAuthorized => GroupInfoResponseBody::NotAuthorized,
            GroupInfoCode::NoSuchRoom => GroupInfoResponseBody::NoSuchRoom,
        };
        Ok(Self {
            protocol,
            room_id,
            body,
        })
    }
}

/// The `signature_key` and `credential` of an [`ExternalSender`].
///
/// openmls keeps the accessors crate-private; the struct is
/// `struct { SignaturePublicKey signature_key; Credential credential; }`
/// (RFC 9420 §12.1.8.1), so the fields are recovered from its encoding.
pub fn external_sender_parts(
    sender: &ExternalSender,
) -> Result<(SignaturePublicKey, Credential), tls_codec::Error> {
    let bytes = sender.tls_serialize_detached()?;
    let mut rest = bytes.as_slice();
    let key = SignaturePublicKey::tls_deserialize(&mut rest)?;
    let credential = Credential::tls_deserialize(&mut rest)?;
    Ok((key, credential))
}

/// The EncryptWithLabel label of `encrypted_groupinfo_and_tree` (-06 §5.6).
pub const GROUP_INFO_ENCRYPTION_LABEL: &str = "GroupInfo and ratchet_tree encryption";

/// `struct { opaque label<V>; opaque context<V>; } EncryptContext`
/// (RFC 9420 §5.1.3), with `label = "MLS 1.0 " + Label`.
#[derive(TlsSerialize, TlsSize)]
struct EncryptContext {
    label: VLBytes,
    context: VLBytes,
}

fn encrypt_context(label: &str, context: &[u8]) -> Result<Vec<u8>, MsgError> {
    Ok(EncryptContext {
        label: format!("MLS 1.0 {label}").into_bytes().into(),
        context: context.to_vec().into(),
    }
    .tls_serialize_detached()?)
}

/// `EncryptWithLabel(public_key, label, context, plaintext)` (RFC 9420
/// §5.1.3): `SealBase(public_key, EncryptContext, "", plaintext)` with the
/// HPKE algorithms of `cipher_suite`. openmls keeps its own helper private.
pub fn encrypt_with_label(
    crypto: &impl OpenMlsCrypto,
    cipher_suite: CipherSuite,
    public_key: &[u8],
    label: &str,
    context: &[u8],
    plaintext: &[u8],
) -> Result<HpkeCiphertext, MsgError> {
    let suite = cipher_suite
        .to_openmls()
        .ok_or(MsgError::UnsupportedCipherSuite(cipher_suite.0))?;
    crypto
        .hpke_seal(
            suite.hpke_config(),
            public_key,
            &encrypt_context(label, context)?,
            &[],
            plaintext,
        )
        .map_err(MsgError::Hpke)
}

/// `DecryptWithLabel(private_key, label, context, ciphertext)` (RFC 9420
/// §5.1.3), the inverse of [`encrypt_with_label`].
pub fn decrypt_with_label(
    crypto: &impl OpenMlsCrypto,
    cipher_suite: CipherSuite,
    private_key: &[u8],
    label: &str,
    context: &[u8],
    ciphertext: &HpkeCiphertext,
) -> Result<Vec<u8>, MsgError> {
    let suite = cipher_suite
        .to_openmls()
        .ok_or(MsgError::UnsupportedCipherSuite(cipher_suite.0))?;
    crypto
        .hpke_open(
            suite.hpke_config(),
            ciphertext,
            private_key,
            &encrypt_context(label, context)?,
            &[],
        )
        .map_err(MsgError::Hpke)
}

impl GroupInfoRatchetTreeTbe {
    /// Hub side (-06 §5.6): encrypts to the requester's `groupInfoPublicKey`
    /// with the room ID as context.
    pub fn seal(
        &self,
        crypto: &impl OpenMlsCrypto,
        cipher_suite: CipherSuite,
        group_info_public_key: &[u8],
        room_id: &[u8],
    ) -> Result<HpkeCiphertext, MsgError> {
        encrypt_with_label(
            crypto,
            cipher_suite,
            group_info_public_key,
            GROUP_INFO_ENCRYPTION_LABEL,
            room_id,
            &self.tls_serialize_detached()?,
        )
    }

    /// Client side: decrypts `encrypted_groupinfo_and_tree` of a verified
    /// [`GroupInfoResponse`] with the private key of `groupInfoPublicKey`.
    pub fn open(
        crypto: &impl OpenMlsCrypto,
        cipher_suite: CipherSuite,
        group_info_private_key: &[u8],
        room_id: &[u8],
        ciphertext: &HpkeCiphertext,
    ) -> Result<Self, MsgError> {
        let plaintext = decrypt_with_label(
            crypto,
            cipher_suite,
            group_info_private_key,
            GROUP_INFO_ENCRYPTION_LABEL,
            room_id,
            ciphertext,
        )?;
        crate::decode_exact(&plaintext)
            .map_err(|e| MsgError::Codec(tls_codec::Error::DecodingError(e.to_string())))
    }
}
