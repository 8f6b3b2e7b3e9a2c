//! Find internal address: `POST /identifierQuery/{domain}` (-06 §5.8).

use std::io::{Read, Write};

use openmls::prelude::AppDataDictionary;
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::TlsString;
use crate::common::IdentifierUri;

/// `enum SearchIdentifierType` (-06 §5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum SearchIdentifierType {
    Handle = 1,
    Nick = 2,
    Email = 3,
    Phone = 4,
    PartialName = 5,
    WholeProfile = 6,
    OidcStdClaim = 7,
    VcardField = 8,
}

/// `searchType` plus its `select` arm in a [`QueryElement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchType {
    Handle,
    Nick,
    Email,
    Phone,
    PartialName,
    WholeProfile,
    /// An OIDC UserInfo standard claim name.
    OidcStdClaim {
        claim_name: VLBytes,
    },
    /// A vCard property name.
    VcardField {
        property_name: VLBytes,
    },
}

impl SearchType {
    pub fn identifier_type(&self) -> SearchIdentifierType {
        match self {
            Self::Handle => SearchIdentifierType::Handle,
            Self::Nick => SearchIdentifierType::Nick,
            Self::Email => SearchIdentifierType::Email,
            Self::Phone => SearchIdentifierType::Phone,
            Self::PartialName => SearchIdentifierType::PartialName,
            Self::WholeProfile => SearchIdentifierType::WholeProfile,
            Self::OidcStdClaim { .. } => SearchIdentifierType::OidcStdClaim,
            Self::VcardField { .. } => SearchIdentifierType::VcardField,
        }
    }
}

/// `struct QueryElement` (-06 §5.8). Reading: `select(type)` selects on the
/// `searchType` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryElement {
    pub search_type: SearchType,
    /// A UTF-8 string (not checked by the codec: the draft says `opaque`).
    pub search_value: VLBytes,
}

impl Size for QueryElement {
    fn tls_serialized_len(&self) -> usize {
        1 + match &self.search_type {
            SearchType::OidcStdClaim { claim_name: name }
            | SearchType::VcardField {
                property_name: name,
            } => name.tls_serialized_len(),
            _ => 0,
        } + self.search_value.tls_serialized_len()
    }
}

impl Serialize for QueryElement {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut n = self.search_type.identifier_type().tls_serialize(writer)?;
        n += match &self.search_type {
            SearchType::OidcStdClaim { claim_name: name }
            | SearchType::VcardField {
                property_name: name,
            } => name.tls_serialize(writer)?,
            _ => 0,
        };
        n += self.search_value.tls_serialize(writer)?;
        Ok(n)
    }
}

impl Deserialize for QueryElement {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let search_type = match SearchIdentifierType::tls_deserialize(bytes)? {
            SearchIdentifierType::Handle => SearchType::Handle,
            SearchIdentifierType::Nick => SearchType::Nick,
            SearchIdentifierType::Email => SearchType::Email,
            SearchIdentifierType::Phone => SearchType::Phone,
            SearchIdentifierType::PartialName => SearchType::PartialName,
            SearchIdentifierType::WholeProfile => SearchType::WholeProfile,
            SearchIdentifierType::OidcStdClaim => SearchType::OidcStdClaim {
                claim_name: VLBytes::tls_deserialize(bytes)?,
            },
            SearchIdentifierType::VcardField => SearchType::VcardField {
                property_name: VLBytes::tls_deserialize(bytes)?,
            },
        };
        Ok(Self {
            search_type,
            search_value: VLBytes::tls_deserialize(bytes)?,
        })
    }
}

/// `struct IdentifierRequest` (-06 §5.8). All elements must match (AND).
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct IdentifierRequest {
    pub query_elements: Vec<QueryElement>,
    pub id_request_extensions: AppDataDictionary,
}

/// `enum IdentifierQueryCode` (-06 §5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum IdentifierQueryCode {
    Success = 0,
    NotFound = 1,
    Ambiguous = 2,
    Forbidden = 3,
    UnsupportedField = 4,
}

/// `enum FieldSource` (-06 §5.8). `reserved(0)` fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum FieldSource {
    OidcStdClaim = 7,
    VcardField = 8,
}

/// `struct ProfileField` (-06 §5.8). `string fieldName` is UTF-8 `opaque<V>`.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ProfileField {
    pub field_source: FieldSource,
    pub field_name: TlsString,
    pub field_value: VLBytes,
}

/// `struct UserProfile` (-06 §5.8).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UserProfile {
    pub stable_uri: IdentifierUri,
    pub fields: Vec<ProfileField>,
}

/// `struct IdentifierResponse` (-06 §5.8).
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct IdentifierResponse {
    pub response_code: IdentifierQueryCode,
    pub uri: Vec<IdentifierUri>,
    pub found_profiles: Vec<UserProfile>,
    pub id_response_extensions: AppDataDictionary,
}
