//! Submit a Message: `POST /submitMessage/{roomId}` (-06 §5.4).

use std::io::{Read, Write};

use openmls::prelude::MlsMessageIn;
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize};

use super::franking::Frank;
use crate::common::{IdentifierUri, Protocol};

/// `struct SubmitMessageRequest` (-06 §5.4). `IdentifierURI` in the draft is
/// [`IdentifierUri`].
///
/// The draft requires `appMessage` to be a PrivateMessage with content type
/// `application`; that is checked by the hub, not by the codec.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct SubmitMessageRequest {
    pub protocol: Protocol,
    pub app_message: MlsMessageIn,
    pub sending_uri: IdentifierUri,
}

/// `enum SubmitResponseCode` (-06 §5.4). The draft names value 0 `accepted`
/// in the enum but `success` in the select; both mean value 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum SubmitResponseCode {
    Accepted = 0,
    NotAllowed = 1,
    EpochTooOld = 2,
}

/// The `select (statusCode)` part of [`SubmitMessageResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitStatus {
    /// `accepted`/`success`: hub acceptance time (ms since the UNIX epoch)
    /// and, if the message was franked, the frank (`optional<Frank>`).
    Accepted {
        accepted_timestamp: u64,
        frank: Option<Frank>,
    },
    NotAllowed,
    /// The hub's current MLS epoch.
    EpochTooOld {
        current_epoch: u64,
    },
}

/// `struct SubmitMessageResponse` (-06 §5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitMessageResponse {
    pub protocol: Protocol,
    pub status: SubmitStatus,
}

impl SubmitMessageResponse {
    pub fn status_code(&self) -> SubmitResponseCode {
        match self.status {
            SubmitStatus::Accepted { .. } => SubmitResponseCode::Accepted,
            SubmitStatus::NotAllowed => SubmitResponseCode::NotAllowed,
            SubmitStatus::EpochTooOld { .. } => SubmitResponseCode::EpochTooOld,
        }
    }
}

impl Size for SubmitMessageResponse {
    fn tls_serialized_len(&self) -> usize {
        2 + match &self.status {
            SubmitStatus::Accepted { frank, .. } => 8 + frank.tls_serialized_len(),
            SubmitStatus::NotAllowed => 0,
            SubmitStatus::EpochTooOld { .. } => 8,
        }
    }
}

impl Serialize for SubmitMessageResponse {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut n = self.protocol.tls_serialize(writer)?;
        n += self.status_code().tls_serialize(writer)?;
        n += match &self.status {
            SubmitStatus::Accepted {
                accepted_timestamp,
                frank,
            } => accepted_timestamp.tls_serialize(writer)? + frank.tls_serialize(writer)?,
            SubmitStatus::NotAllowed => 0,
            SubmitStatus::EpochTooOld { current_epoch } => current_epoch.tls_serialize(writer)?,
        };
        Ok(n)
    }
}

impl Deserialize for SubmitMessageResponse {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let protocol = Protocol::tls_deserialize(bytes)?;
        let status = match SubmitResponseCode::tls_deserialize(bytes)? {
            SubmitResponseCode::Accepted => SubmitStatus::Accepted {
                accepted_timestamp: u64::tls_deserialize(bytes)?,
                frank: Option::<Frank>::tls_deserialize(bytes)?,
            },
            SubmitResponseCode::NotAllowed => SubmitStatus::NotAllowed,
            SubmitResponseCode::EpochTooOld => SubmitStatus::EpochTooOld {
                current_epoch: u64::tls_deserialize(bytes)?,
            },
        };
        Ok(Self { protocol, status })
    }
}
