//! Convey explicit consent: `POST /requestConsent`, `POST /updateConsent`
//! (-06 §5.7).

use std::io::{Read, Write};

use openmls::prelude::{AppDataDictionary, KeyPackageIn};
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize};

use super::encoding_error;
use crate::common::IdentifierUri;

/// `enum ConsentOperation` (-06 §5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum ConsentOperation {
    Cancel = 0,
    Request = 1,
    Grant = 2,
    Revoke = 3,
}

/// `struct ConsentEntry` (-06 §5.7).
///
/// Reading: the undefined `RoomId` type is [`IdentifierUri`].
/// `client_key_packages` is on the wire only for `grant`; it must be empty
/// for the other operations (serialization fails otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentEntry {
    pub consent_operation: ConsentOperation,
    pub requester_uri: IdentifierUri,
    pub target_uri: IdentifierUri,
    pub room_id: Option<IdentifierUri>,
    /// `case grant: KeyPackage clientKeyPackages<V>` (bare KeyPackages).
    pub client_key_packages: Vec<KeyPackageIn>,
    pub consent_extensions: AppDataDictionary,
}

impl ConsentEntry {
    /// The `ConsentScope` this entry refers to.
    pub fn scope(&self) -> ConsentScope {
        ConsentScope {
            requester_uri: self.requester_uri.clone(),
            target_uri: self.target_uri.clone(),
            room_id: self.room_id.clone(),
        }
    }
}

impl Size for ConsentEntry {
    fn tls_serialized_len(&self) -> usize {
        1 + self.requester_uri.tls_serialized_len()
            + self.target_uri.tls_serialized_len()
            + self.room_id.tls_serialized_len()
            + if self.consent_operation == ConsentOperation::Grant {
                self.client_key_packages.tls_serialized_len()
            } else {
                0
            }
            + self.consent_extensions.tls_serialized_len()
    }
}

impl Serialize for ConsentEntry {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let grant = self.consent_operation == ConsentOperation::Grant;
        if !grant && !self.client_key_packages.is_empty() {
            return Err(encoding_error(
                "clientKeyPackages are only sent with a grant",
            ));
        }
        let mut n = self.consent_operation.tls_serialize(writer)?;
        n += self.requester_uri.tls_serialize(writer)?;
        n += self.target_uri.tls_serialize(writer)?;
        n += self.room_id.tls_serialize(writer)?;
        if grant {
            n += self.client_key_packages.tls_serialize(writer)?;
        }
        n += self.consent_extensions.tls_serialize(writer)?;
        Ok(n)
    }
}

impl Deserialize for ConsentEntry {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let consent_operation = ConsentOperation::tls_deserialize(bytes)?;
        let requester_uri = IdentifierUri::tls_deserialize(bytes)?;
        let target_uri = IdentifierUri::tls_deserialize(bytes)?;
        let room_id = Option::<IdentifierUri>::tls_deserialize(bytes)?;
        let client_key_packages = if consent_operation == ConsentOperation::Grant {
            Vec::<KeyPackageIn>::tls_deserialize(bytes)?
        } else {
            Vec::new()
        };
        let consent_extensions = AppDataDictionary::tls_deserialize(bytes)?;
        Ok(Self {
            consent_operation,
            requester_uri,
            target_uri,
            room_id,
            client_key_packages,
            consent_extensions,
        })
    }
}

/// `struct ConsentScope` (-06 §5.7); `RoomId` read as [`IdentifierUri`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ConsentScope {
    pub requester_uri: IdentifierUri,
    pub target_uri: IdentifierUri,
    pub room_id: Option<IdentifierUri>,
}
