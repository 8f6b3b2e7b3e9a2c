//! MLS `SignWithLabel` / `VerifyWithLabel` (RFC 9420 §5.1.2) for the MIMI
//! TBS structs.
//!
//! ```text
//! struct {
//!     opaque label<V>;   /* "MLS 1.0 " + Label */
//!     opaque content<V>;
//! } SignContent;
//! ```

use openmls::prelude::SignatureScheme;
use openmls_traits::{crypto::OpenMlsCrypto, signatures::Signer};
use tls_codec::{Serialize, VLBytes};

use super::MsgError;

const LABEL_PREFIX: &str = "MLS 1.0 ";

/// The labels MIMI uses (-06 §5.2, §5.4.1, §5.6).
pub mod labels {
    pub const KEY_MATERIAL_REQUEST: &str = "KeyMaterialRequestTBS";
    pub const GROUP_INFO_REQUEST: &str = "GroupInfoRequestTBS";
    pub const GROUP_INFO_RESPONSE: &str = "GroupInfoResponseTBS";
    pub const FRANKING_INTEGRITY: &str = "FrankingIntegrityTBS";
}

/// Serialized `SignContent` for `label` and `content`.
pub fn sign_content(label: &str, content: &[u8]) -> Result<Vec<u8>, MsgError> {
    let mut full_label = Vec::with_capacity(LABEL_PREFIX.len() + label.len());
    full_label.extend_from_slice(LABEL_PREFIX.as_bytes());
    full_label.extend_from_slice(label.as_bytes());
    let mut out = VLBytes::new(full_label).tls_serialize_detached()?;
    out.extend(VLBytes::from(content).tls_serialize_detached()?);
    Ok(out)
}

/// `SignWithLabel(signer, label, content)`.
pub fn sign_with_label(
    signer: &impl Signer,
    label: &str,
    content: &[u8],
) -> Result<Vec<u8>, MsgError> {
    signer
        .sign(&sign_content(label, content)?)
        .map_err(MsgError::Signer)
}

/// `VerifyWithLabel(public_key, label, content, signature)`.
pub fn verify_with_label(
    crypto: &impl OpenMlsCrypto,
    scheme: SignatureScheme,
    public_key: &[u8],
    label: &str,
    content: &[u8],
    signature: &[u8],
) -> Result<(), MsgError> {
    crypto
        .verify_signature(
            scheme,
            &sign_content(label, content)?,
            public_key,
            signature,
        )
        .map_err(|_| MsgError::InvalidSignature)
}

/// Signs the TLS encoding of `tbs`.
pub(crate) fn sign_tbs<T: Serialize>(
    signer: &impl Signer,
    label: &str,
    tbs: &T,
) -> Result<VLBytes, MsgError> {
    let content = tbs.tls_serialize_detached()?;
    Ok(sign_with_label(signer, label, &content)?.into())
}

/// Verifies a signature over the TLS encoding of `tbs`.
pub(crate) fn verify_tbs<T: Serialize>(
    crypto: &impl OpenMlsCrypto,
    scheme: SignatureScheme,
    public_key: &[u8],
    label: &str,
    tbs: &T,
    signature: &[u8],
) -> Result<(), MsgError> {
    let content = tbs.tls_serialize_detached()?;
    verify_with_label(crypto, scheme, public_key, label, &content, signature)
}
