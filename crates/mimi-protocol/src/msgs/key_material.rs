//! Fetch Key Material: `POST /keyMaterial/{targetUser}` (-06 §5.2).

use std::io::{Read, Write};

use openmls::prelude::{
    Capabilities, Credential, KeyPackageIn, RequiredCapabilitiesExtension, SignaturePublicKey,
    SignatureScheme,
};
use openmls_traits::{crypto::OpenMlsCrypto, signatures::Signer};
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::{
    CipherSuite, MsgError,
    signing::{labels, sign_tbs, verify_tbs},
};
use crate::common::{IdentifierUri, Protocol};

/// `struct KeyMaterialRequestTBS` (-06 §5.2).
///
/// `select (protocol)` has the single case `mls10`, so the mls10 fields are
/// plain fields after `protocol` (any other protocol value fails to decode).
/// `roomId` is not `optional` on the wire; an empty URI means "not for a
/// specific room".
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct KeyMaterialRequestTbs {
    pub protocol: Protocol,
    pub requesting_user: IdentifierUri,
    pub target_user: IdentifierUri,
    pub room_id: IdentifierUri,
    /// Must be non-empty (checked by the target provider, not by the codec).
    pub acceptable_ciphersuites: Vec<CipherSuite>,
    pub required_capabilities: RequiredCapabilitiesExtension,
    pub requester_signature_key: SignaturePublicKey,
    pub requester_credential: Credential,
}

/// `struct KeyMaterialRequest` (-06 §5.2): the TBS fields followed by
/// `key_material_request_signature`.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct KeyMaterialRequest {
    pub protocol: Protocol,
    pub requesting_user: IdentifierUri,
    pub target_user: IdentifierUri,
    pub room_id: IdentifierUri,
    pub acceptable_ciphersuites: Vec<CipherSuite>,
    pub required_capabilities: RequiredCapabilitiesExtension,
    pub requester_signature_key: SignaturePublicKey,
    pub requester_credential: Credential,
    /// `SignWithLabel(requesterSignatureKey, "KeyMaterialRequestTBS", tbs)`.
    pub key_material_request_signature: VLBytes,
}

/// The fields every `KeyMaterialRequest` starts with, whatever its
/// protocol (-06 §5.2: `select (protocol)` comes after them). A provider
/// reads them to answer `incompatibleProtocol` to a request framed for a
/// protocol it does not implement, whose remainder it cannot parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterialRequestHead {
    /// The raw `Protocol` value (`mls10` is 1).
    pub protocol: u8,
    pub requesting_user: IdentifierUri,
    pub target_user: IdentifierUri,
    pub room_id: IdentifierUri,
}

impl KeyMaterialRequestHead {
    /// The head of a request whose protocol is not `mls10`; `None` for an
    /// `mls10` request (decode it in full) or a body too short for a head.
    pub fn of_other_protocol(body: &[u8]) -> Option<Self> {
        let (&protocol, mut rest) = body.split_first()?;
        if protocol == Protocol::Mls10 as u8 {
            return None;
        }
        Some(Self {
            protocol,
            requesting_user: IdentifierUri::tls_deserialize(&mut rest).ok()?,
            target_user: IdentifierUri::tls_deserialize(&mut rest).ok()?,
            room_id: IdentifierUri::tls_deserialize(&mut rest).ok()?,
        })
    }
}

impl KeyMaterialRequestTbs {
    /// Signs with `signer` (whose key must be `requester_signature_key`).
    pub fn sign(self, signer: &impl Signer) -> Result<KeyMaterialRequest, MsgError> {
        let signature = sign_tbs(signer, labels::KEY_MATERIAL_REQUEST, &self)?;
        Ok(KeyMaterialRequest::from_parts(self, signature))
    }
}

impl KeyMaterialRequest {
    pub fn from_parts(tbs: KeyMaterialRequestTbs, signature: VLBytes) -> Self {
        Self {
            protocol: tbs.protocol,
            requesting_user: tbs.requesting_user,
            target_user: tbs.target_user,
            room_id: tbs.room_id,
            acceptable_ciphersuites: tbs.acceptable_ciphersuites,
            required_capabilities: tbs.required_capabilities,
            requester_signature_key: tbs.requester_signature_key,
            requester_credential: tbs.requester_credential,
            key_material_request_signature: signature,
        }
    }

    /// The signed part.
    pub fn tbs(&self) -> KeyMaterialRequestTbs {
        KeyMaterialRequestTbs {
            protocol: self.protocol,
            requesting_user: self.requesting_user.clone(),
            target_user: self.target_user.clone(),
            room_id: self.room_id.clone(),
            acceptable_ciphersuites: self.acceptable_ciphersuites.clone(),
            required_capabilities: self.required_capabilities.clone(),
            requester_signature_key: self.requester_signature_key.clone(),
            requester_credential: self.requester_credential.clone(),
        }
    }

    /// Verifies `key_material_request_signature` with
    /// `requester_signature_key`.
    ///
    /// The request names no signing suite (a draft gap), so the caller
    /// supplies the `scheme`, e.g. from the requester's credential or the
    /// room's cipher suite.
    pub fn verify(
        &self,
        crypto: &impl OpenMlsCrypto,
        scheme: SignatureScheme,
    ) -> Result<(), MsgError> {
        verify_tbs(
            crypto,
            scheme,
            self.requester_signature_key.as_slice(),
            labels::KEY_MATERIAL_REQUEST,
            &self.tbs(),
            self.key_material_request_signature.as_slice(),
        )
    }
}

/// `enum KeyMaterialUserCode` (-06 §5.2; the draft's `;` separators read as `,`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum KeyMaterialUserCode {
    Success = 0,
    PartialSuccess = 1,
    IncompatibleProtocol = 2,
    NoCompatibleMaterial = 3,
    UserUnknown = 4,
    NoConsent = 5,
    NoConsentForThisRoom = 6,
    UserDeleted = 7,
}

/// `enum KeyMaterialClientCode` (-06 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum KeyMaterialClientCode {
    Success = 0,
    KeyMaterialExhausted = 1,
    NothingCompatible = 2,
}

/// The `select (clientStatus)` part of [`ClientKeyMaterial`].
// Wire values are decoded once and moved, not stored in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMaterial {
    /// `success`: the claimed KeyPackage (bare `KeyPackage`, not an MLSMessage).
    Success(KeyPackageIn),
    /// `keyMaterialExhausted`: nothing follows.
    KeyMaterialExhausted,
    /// `nothingCompatible`: optionally the client's capabilities.
    NothingCompatible(Option<Capabilities>),
}

/// `struct ClientKeyMaterial` (-06 §5.2).
///
/// On the wire: `clientStatus`, `clientUri`, then the per-status body. The
/// `select (protocol)` refers to the enclosing response's protocol (only
/// `mls10` exists), so it adds nothing to the encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientKeyMaterial {
    pub client_uri: IdentifierUri,
    pub material: ClientMaterial,
}

impl ClientKeyMaterial {
    pub fn client_status(&self) -> KeyMaterialClientCode {
        match self.material {
            ClientMaterial::Success(_) => KeyMaterialClientCode::Success,
            ClientMaterial::KeyMaterialExhausted => KeyMaterialClientCode::KeyMaterialExhausted,
            ClientMaterial::NothingCompatible(_) => KeyMaterialClientCode::NothingCompatible,
        }
    }
}

impl Size for ClientKeyMaterial {
    fn tls_serialized_len(&self) -> usize {
        1 + self.client_uri.tls_serialized_len()
            + match &self.material {
                ClientMaterial::Success(kp) => kp.tls_serialized_len(),
                ClientMaterial::KeyMaterialExhausted => 0,
                ClientMaterial::NothingCompatible(caps) => caps.tls_serialized_len(),
            }
    }
}

impl Serialize for ClientKeyMaterial {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut n = self.client_status().tls_serialize(writer)?;
        n += self.client_uri.tls_serialize(writer)?;
        n += match &self.material {
            ClientMaterial::Success(kp) => kp.tls_serialize(writer)?,
            ClientMaterial::KeyMaterialExhausted => 0,
            ClientMaterial::NothingCompatible(caps) => caps.tls_serialize(writer)?,
        };
        Ok(n)
    }
}

impl Deserialize for ClientKeyMaterial {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let status = KeyMaterialClientCode::tls_deserialize(bytes)?;
        let client_uri = IdentifierUri::tls_deserialize(bytes)?;
        let material = match status {
            KeyMaterialClientCode::Success => {
                ClientMaterial::Success(KeyPackageIn::tls_deserialize(bytes)?)
            }
            KeyMaterialClientCode::KeyMaterialExhausted => ClientMaterial::KeyMaterialExhausted,
            KeyMaterialClientCode::NothingCompatible => {
                ClientMaterial::NothingCompatible(Option::<Capabilities>::tls_deserialize(bytes)?)
            }
        };
        Ok(Self {
            client_uri,
            material,
        })
    }
}

/// `struct KeyMaterialResponse` (-06 §5.2).
///
/// The rule that `clients` is empty unless `userStatus` is `success`,
/// `partialSuccess` or `noCompatibleMaterial` is policy, checked by
/// [`KeyMaterialResponse::clients_allowed`], not by the codec.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct KeyMaterialResponse {
    pub protocol: Protocol,
    pub user_status: KeyMaterialUserCode,
    pub user_uri: IdentifierUri,
    pub clients: Vec<ClientKeyMaterial>,
}

impl KeyMaterialResponse {
    /// Whether the draft allows a non-empty `clients` list for this status.
    pub fn clients_allowed(&self) -> bool {
        matches!(
            self.user_status,
            KeyMaterialUserCode::Success
                | KeyMaterialUserCode::PartialSuccess
                | KeyMaterialUserCode::NoCompatibleMaterial
        ) || self.clients.is_empty()
    }
}

#[cfg(test)]
mod head_tests {
    use super::*;

    fn uri(s: &str) -> IdentifierUri {
        IdentifierUri {
            uri: VLBytes::new(s.as_bytes().to_vec()),
        }
    }

    /// The common head of a request for another protocol is read without
    /// its (unparseable) remainder; an `mls10` request or a short body is not.
    #[test]
    fn head_of_another_protocol() {
        let mut body = vec![7u8];
        for u in ["mimi://a.example/u/alice", "mimi://b.example/u/bob", ""] {
            uri(u).tls_serialize(&mut body).unwrap();
        }
        body.extend_from_slice(b"whatever protocol 7 carries");
        let head = KeyMaterialRequestHead::of_other_protocol(&body).unwrap();
        assert_eq!(head.protocol, 7);
        assert_eq!(head.requesting_user, uri("mimi://a.example/u/alice"));
        assert_eq!(head.target_user, uri("mimi://b.example/u/bob"));
        assert_eq!(head.room_id, uri(""));
        body[0] = Protocol::Mls10 as u8;
        assert_eq!(KeyMaterialRequestHead::of_other_protocol(&body), None);
        body[0] = 7;
        assert_eq!(KeyMaterialRequestHead::of_other_protocol(&body[..5]), None);
        assert_eq!(KeyMaterialRequestHead::of_other_protocol(&[]), None);
    }
}
