//! Who a client is: the `mimi://` identity in its MLS credential.
//!
//! mimi-rs clients use BasicCredentials whose identity is the two-segment
//! device URI `mimi://<domain>/d/<user>/<device>` (draft-mahy-mimi-identity
//! §4 "Client"), so the hub can derive the user, whose role the room policy
//! governs, from any leaf or KeyPackage without a directory lookup.

use mimi_protocol::uri::{MimiUri, MimiUriKind};
use openmls::prelude::{BasicCredential, Credential};

use crate::RoomError;

/// A client's device URI and the user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub device: MimiUri,
    pub user: MimiUri,
}

/// The user a two-segment device URI belongs to.
pub fn user_of_device(device: &MimiUri) -> Option<MimiUri> {
    if device.kind() != MimiUriKind::Device {
        return None;
    }
    match device.id_segments().as_slice() {
        [user, _device] => MimiUri::user(device.domain(), user).ok(),
        _ => None,
    }
}

/// Reads the identity from a BasicCredential.
pub fn client_identity(credential: &Credential) -> Result<ClientIdentity, RoomError> {
    let basic = BasicCredential::try_from(credential.clone())
        .map_err(|_| RoomError::BadCredential("not a basic credential".into()))?;
    let text = std::str::from_utf8(basic.identity())
        .map_err(|_| RoomError::BadCredential("identity is not UTF-8".into()))?;
    let device = MimiUri::parse(text)
        .map_err(|e| RoomError::BadCredential(format!("identity `{text}`: {e}")))?;
    let user = user_of_device(&device).ok_or_else(|| {
        RoomError::BadCredential(format!(
            "identity `{text}` is not a mimi://domain/d/user/device URI"
        ))
    })?;
    Ok(ClientIdentity { device, user })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_uri_names_its_user() {
        let device = MimiUri::parse("mimi://b.example/d/bob/phone").unwrap();
        assert_eq!(
            user_of_device(&device).unwrap().as_str(),
            "mimi://b.example/u/bob"
        );
    }

    #[test]
    fn single_segment_device_and_other_kinds_have_no_user() {
        for s in [
            "mimi://b.example/d/phone",
            "mimi://b.example/u/bob",
            "mimi://b.example/r/room",
        ] {
            assert!(user_of_device(&MimiUri::parse(s).unwrap()).is_none(), "{s}");
        }
    }
}
