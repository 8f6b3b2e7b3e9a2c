//! Proposals the hub makes as the room's external sender (-06 §7.4).
//!
//! openmls's `ExternalProposal::new_remove` leaves the authenticated data
//! empty, which a room requiring Safe AAD refuses (mls-extensions §4.9:
//! every message's authenticated data starts with a `SafeAAD`). The hub's
//! Remove is therefore framed and signed here as RFC 9420 §6 and §6.1
//! define a PublicMessage from an `external` sender: `FramedContent`,
//! signed over `FramedContentTBS` (no GroupContext for this sender), with
//! neither confirmation nor membership tag.

use openmls::framing::SafeAad;
use openmls::prelude::{GroupContext, LeafNodeIndex, MlsMessageIn};
use openmls_traits::signatures::Signer;
use tls_codec::{Deserialize as _, Serialize as _, VLBytes};

const MLS10: u16 = 1;
const PUBLIC_MESSAGE: u16 = 1;
const SENDER_EXTERNAL: u8 = 2;
const CONTENT_PROPOSAL: u8 = 2;
const PROPOSAL_REMOVE: u16 = 3;

/// A Remove of `removed` by the external sender at `sender_index` of
/// the group in `context`, signed by `signer` (that sender's key), with an
/// empty Safe AAD prefix when the group requires Safe AAD.
pub fn external_remove(
    context: &GroupContext,
    sender_index: u32,
    removed: LeafNodeIndex,
    signer: &impl Signer,
) -> Result<MlsMessageIn, String> {
    let err = |e: &dyn std::fmt::Display| format!("framing the hub's Remove: {e}");
    let aad = if context.safe_aad_required() {
        SafeAad::empty()
            .tls_serialize_detached()
            .map_err(|e| err(&e))?
    } else {
        Vec::new()
    };
    let mut content = VLBytes::from(context.group_id().as_slice())
        .tls_serialize_detached()
        .map_err(|e| err(&e))?;
    content.extend(context.epoch().as_u64().to_be_bytes());
    content.push(SENDER_EXTERNAL);
    content.extend(sender_index.to_be_bytes());
    content.extend(
        VLBytes::from(aad)
            .tls_serialize_detached()
            .map_err(|e| err(&e))?,
    );
    content.push(CONTENT_PROPOSAL);
    content.extend(PROPOSAL_REMOVE.to_be_bytes());
    content.extend(removed.u32().to_be_bytes());

    let mut message = Vec::with_capacity(4 + content.len() + 80);
    message.extend(MLS10.to_be_bytes());
    message.extend(PUBLIC_MESSAGE.to_be_bytes());
    message.extend(&content);
    let signature =
        mimi_protocol::msgs::signing::sign_with_label(signer, "FramedContentTBS", &message)
            .map_err(|e| err(&e))?;
    message.extend(
        VLBytes::from(signature)
            .tls_serialize_detached()
            .map_err(|e| err(&e))?,
    );
    MlsMessageIn::tls_deserialize_exact(message).map_err(|e| err(&e))
}
