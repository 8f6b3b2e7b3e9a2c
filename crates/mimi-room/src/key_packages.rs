//! KeyPackages and key material requests (-06 §5.2): verification of
//! uploads and requests, compatibility with a request, and the
//! KeyPackageRefs the hub routes Welcomes by. Pure: the server stores and
//! claims, this module decides.

use mimi_protocol::msgs::CipherSuite;
use mimi_protocol::msgs::key_material::{ClientMaterial, KeyMaterialRequest};
use mimi_protocol::{IdentifierUri, MimiUri};
use openmls::prelude::{
    BasicCredential, KeyPackage, KeyPackageIn, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut,
    ProtocolVersion, SignatureScheme,
};
use openmls_rust_crypto::RustCrypto;
use tls_codec::{Deserialize as _, Serialize as _};

use crate::identity::user_of_device;
use crate::rejection::{
    ForwardedKeyPackageError, KeyMaterialRequestRejection, KeyPackageRejection,
};

/// A KeyMaterialRequest whose signature verifies, with its URIs parsed.
pub struct CheckedKeyMaterialRequest {
    pub request: KeyMaterialRequest,
    pub requesting_user: MimiUri,
    pub target_user: MimiUri,
    /// `None` when `roomId` is empty (divergence M2).
    pub room_id: Option<MimiUri>,
}

/// Decodes the URIs of a request and verifies its signature (-06 §5.2).
///
/// The scheme is that of the first acceptable cipher suite openmls knows,
/// else Ed25519 (divergence M3). The requester's credential must be a
/// BasicCredential naming the requesting user or one of its devices
/// (divergence I4).
pub fn check_key_material_request(
    request: KeyMaterialRequest,
) -> Result<CheckedKeyMaterialRequest, KeyMaterialRequestRejection> {
    let uri = |id: &IdentifierUri, field: &'static str| {
        let s = id
            .as_str()
            .ok_or(KeyMaterialRequestRejection::NotUtf8 { field })?;
        MimiUri::parse(s).map_err(|e| KeyMaterialRequestRejection::BadUri {
            field,
            detail: e.to_string(),
        })
    };
    let requesting_user = uri(&request.requesting_user, "requestingUser")?;
    let target_user = uri(&request.target_user, "targetUser")?;
    let room_id = match request.room_id.uri.as_slice() {
        [] => None,
        _ => Some(uri(&request.room_id, "roomId")?),
    };
    if request.acceptable_ciphersuites.is_empty() {
        return Err(KeyMaterialRequestRejection::NoCiphersuites);
    }
    let scheme = request
        .acceptable_ciphersuites
        .iter()
        .find_map(|cs| cs.signature_scheme().ok())
        .unwrap_or(SignatureScheme::ED25519);
    request
        .verify(&RustCrypto::default(), scheme)
        .map_err(|e| KeyMaterialRequestRejection::Signature {
            detail: e.to_string(),
        })?;
    let basic = BasicCredential::try_from(request.requester_credential.clone())
        .map_err(|_| KeyMaterialRequestRejection::NotBasicCredential)?;
    let identity = std::str::from_utf8(basic.identity())
        .ok()
        .and_then(|s| MimiUri::parse(s).ok())
        .ok_or(KeyMaterialRequestRejection::CredentialNotMimiUri)?;
    let user = user_of_device(&identity).unwrap_or(identity);
    if user != requesting_user {
        return Err(KeyMaterialRequestRejection::CredentialNotRequester);
    }
    Ok(CheckedKeyMaterialRequest {
        request,
        requesting_user,
        target_user,
        room_id,
    })
}

/// The KeyPackage inside a TLS-encoded `MLSMessage`.
fn key_package_from_message(bytes: &[u8]) -> Option<KeyPackageIn> {
    match MlsMessageIn::tls_deserialize_exact(bytes).ok()?.extract() {
        MlsMessageBodyIn::KeyPackage(kp) => Some(kp),
        _ => None,
    }
}

/// An uploaded KeyPackage, wrapped in an `MLSMessage` (RFC 9420 §6, as
/// -06 §5.2 returns it) or bare (the `KeyPackage` struct alone, as some
/// MLS libraries export it).
fn uploaded_key_package(bytes: &[u8]) -> Option<KeyPackageIn> {
    key_package_from_message(bytes).or_else(|| KeyPackageIn::tls_deserialize_exact(bytes).ok())
}

/// An uploaded KeyPackage that may be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidKeyPackage {
    pub key_package_ref: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
    /// The KeyPackage as an `MLSMessage`, the form stored whether it was
    /// uploaded bare or wrapped.
    pub message: Vec<u8>,
}

/// Validates a KeyPackage `device` uploads, as an `MLSMessage(KeyPackage)`
/// or bare: signature, lifetime (`now_secs`), version, and a
/// BasicCredential naming exactly the device.
pub fn validate_upload(
    bytes: &[u8],
    device: &MimiUri,
    now_secs: i64,
) -> Result<ValidKeyPackage, KeyPackageRejection> {
    let kp_in = uploaded_key_package(bytes).ok_or(KeyPackageRejection::NotKeyPackage)?;
    let crypto = RustCrypto::default();
    let kp = kp_in
        .validate(&crypto, ProtocolVersion::Mls10)
        .map_err(|e| KeyPackageRejection::Invalid {
            detail: format!("{e:?}"),
        })?;
    let key_package_ref = kp
        .hash_ref(&crypto)
        .map_err(|e| KeyPackageRejection::Reference {
            detail: format!("{e:?}"),
        })?;
    let not_after = i64::try_from(kp.life_time().not_after()).unwrap_or(i64::MAX);
    if not_after <= now_secs {
        return Err(KeyPackageRejection::Expired);
    }
    let identity = BasicCredential::try_from(kp.leaf_node().credential().clone())
        .ok()
        .map(|c| c.identity().to_vec());
    if identity.as_deref() != Some(device.as_str().as_bytes()) {
        return Err(KeyPackageRejection::NotTheDevice {
            device: device.to_string(),
        });
    }
    let message = MlsMessageOut::from(kp)
        .tls_serialize_detached()
        .map_err(|e| KeyPackageRejection::Invalid {
            detail: format!("re-encoding: {e}"),
        })?;
    Ok(ValidKeyPackage {
        key_package_ref: key_package_ref.as_slice().to_vec(),
        not_after,
        message,
    })
}

/// The KeyPackageRef of a KeyPackage a peer returned for a claim the hub
/// forwarded, after verifying it: the hub routes the Welcome that names
/// it (-06 §5.2, §5.5).
pub fn forwarded_key_package_ref(kp: &KeyPackageIn) -> Result<Vec<u8>, ForwardedKeyPackageError> {
    let crypto = RustCrypto::default();
    let kp = kp
        .clone()
        .validate(&crypto, ProtocolVersion::Mls10)
        .map_err(|e| ForwardedKeyPackageError::Invalid {
            detail: format!("{e:?}"),
        })?;
    let kp_ref = kp
        .hash_ref(&crypto)
        .map_err(|e| ForwardedKeyPackageError::Reference {
            detail: format!("{e:?}"),
        })?;
    Ok(kp_ref.as_slice().to_vec())
}

/// A stored KeyPackage (an MLSMessage) as a client's material for
/// `request`: the KeyPackage, or `nothingCompatible` with its
/// capabilities. `None` if the stored bytes do not decode.
pub fn client_material(stored: &[u8], request: &KeyMaterialRequest) -> Option<ClientMaterial> {
    let kp_in = key_package_from_message(stored)?;
    // Every stored KeyPackage was verified when it was uploaded
    // (`validate_upload`) and expired ones are never claimed, so its two
    // signatures are not verified again on every claim; whoever adds it
    // to a group verifies it anyway (RFC 9420 §10.1).
    let kp = kp_in.clone().into_unchecked();
    Some(if compatible(&kp, request) {
        ClientMaterial::Success(kp_in)
    } else {
        ClientMaterial::NothingCompatible(Some(kp.leaf_node().capabilities().clone()))
    })
}

/// Whether a KeyPackage's suite is acceptable and its leaf supports every
/// required extension, proposal and credential type (RFC 9420 §7.2:
/// default types need not be listed).
fn compatible(kp: &KeyPackage, request: &KeyMaterialRequest) -> bool {
    if !request
        .acceptable_ciphersuites
        .contains(&CipherSuite::from(kp.ciphersuite()))
    {
        return false;
    }
    let caps = kp.leaf_node().capabilities();
    let required = &request.required_capabilities;
    let extensions_ok = required
        .extension_types()
        .iter()
        .all(|t| (1..=5).contains(&u16::from(*t)) || caps.extensions().contains(t));
    let proposals_ok = required
        .proposal_types()
        .iter()
        .all(|t| (1..=7).contains(&u16::from(*t)) || caps.proposals().contains(t));
    let credentials_ok = required
        .credential_types()
        .iter()
        .all(|t| caps.credentials().contains(t));
    extensions_ok && proposals_ok && credentials_ok
}
