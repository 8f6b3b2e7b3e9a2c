//! Update Room State: `POST /update/{roomId}` (-06 §5.3).

use std::io::{Read, Write};

use openmls::prelude::{ContentType, MlsMessageIn, Welcome, hash_ref::ProposalRef};
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize};

use super::{
    TlsString, decoding_error, encoding_error, framed_content_type,
    ratchet_tree::{GroupInfoOption, RatchetTreeOption},
};

/// The `select (proposalOrCommit.content.content_type)` part of a
/// [`HandshakeBundle`].
// Wire values are decoded once and moved, not stored in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum HandshakeBody {
    /// `case commit`. Welcome and GroupInfo omit the `ratchet_tree`.
    Commit {
        welcome: Option<Welcome>,
        group_info_option: GroupInfoOption,
        ratchet_tree_option: RatchetTreeOption,
    },
    /// `case proposal`: additional proposals (PublicMessage or
    /// SemiPrivateMessage each).
    Proposal { more_proposals: Vec<MlsMessageIn> },
}

/// `struct HandshakeBundle` (-06 §5.3).
///
/// The selector is the `content_type` of `proposalOrCommit`. Reading: it is
/// taken from the clear-text header of the PublicMessage or PrivateMessage
/// (both carry `content_type` outside the encryption, RFC 9420 §6); any other
/// wire format, or `application` content, is a decode error.
/// SemiPrivateMessage is not supported by openmls and fails to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct HandshakeBundle {
    pub proposal_or_commit: MlsMessageIn,
    pub body: HandshakeBody,
}

impl HandshakeBundle {
    fn check(&self) -> Result<(), tls_codec::Error> {
        match (framed_content_type(&self.proposal_or_commit), &self.body) {
            (Some(ContentType::Commit), HandshakeBody::Commit { .. })
            | (Some(ContentType::Proposal), HandshakeBody::Proposal { .. }) => Ok(()),
            _ => Err(encoding_error(
                "HandshakeBundle body does not match the content type of proposalOrCommit",
            )),
        }
    }
}

impl Size for HandshakeBundle {
    fn tls_serialized_len(&self) -> usize {
        self.proposal_or_commit.tls_serialized_len()
            + match &self.body {
                HandshakeBody::Commit {
                    welcome,
                    group_info_option,
                    ratchet_tree_option,
                } => {
                    welcome.tls_serialized_len()
                        + group_info_option.tls_serialized_len()
                        + ratchet_tree_option.tls_serialized_len()
                }
                HandshakeBody::Proposal { more_proposals } => more_proposals.tls_serialized_len(),
            }
    }
}

impl Serialize for HandshakeBundle {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        self.check()?;
        let mut n = self.proposal_or_commit.tls_serialize(writer)?;
        n += match &self.body {
            HandshakeBody::Commit {
                welcome,
                group_info_option,
                ratchet_tree_option,
            } => {
                welcome.tls_serialize(writer)?
                    + group_info_option.tls_serialize(writer)?
                    + ratchet_tree_option.tls_serialize(writer)?
            }
            HandshakeBody::Proposal { more_proposals } => more_proposals.tls_serialize(writer)?,
        };
        Ok(n)
    }
}

impl Deserialize for HandshakeBundle {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let proposal_or_commit = MlsMessageIn::tls_deserialize(bytes)?;
        let body = match framed_content_type(&proposal_or_commit) {
            Some(ContentType::Commit) => HandshakeBody::Commit {
                welcome: Option::<Welcome>::tls_deserialize(bytes)?,
                group_info_option: GroupInfoOption::tls_deserialize(bytes)?,
                ratchet_tree_option: RatchetTreeOption::tls_deserialize(bytes)?,
            },
            Some(ContentType::Proposal) => HandshakeBody::Proposal {
                more_proposals: Vec::<MlsMessageIn>::tls_deserialize(bytes)?,
            },
            _ => {
                return Err(decoding_error(
                    "proposalOrCommit is not a framed proposal or commit",
                ));
            }
        };
        Ok(Self {
            proposal_or_commit,
            body,
        })
    }
}

/// `struct UpdateRequest` (-06 §5.3).
///
/// Reading: `select (room.protocol)` selects on the protocol of the room
/// (known from the URL), not on a field, so the body is just the
/// `HandshakeBundle` (mls10 is the only protocol).
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UpdateRequest {
    pub bundle: HandshakeBundle,
}

/// `enum UpdateResponseCode` (-06 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum UpdateResponseCode {
    Success = 0,
    WrongEpoch = 1,
    NotAllowed = 2,
    InvalidProposal = 3,
}

/// The `select (responseCode)` part of [`UpdateRoomResponse`].
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateResult {
    /// Hub acceptance time, ms since the UNIX epoch.
    Success {
        accepted_timestamp: u64,
    },
    /// The hub's current MLS epoch.
    WrongEpoch {
        current_epoch: u64,
    },
    NotAllowed,
    InvalidProposal {
        invalid_proposals: Vec<ProposalRef>,
    },
}

/// `struct UpdateRoomResponse` (-06 §5.3).
///
/// On the wire: `responseCode`, `errorDescription` (the draft's `string`,
/// encoded as UTF-8 `opaque<V>`), then the per-code body.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRoomResponse {
    pub error_description: TlsString,
    pub result: UpdateResult,
}

impl UpdateRoomResponse {
    pub fn response_code(&self) -> UpdateResponseCode {
        match self.result {
            UpdateResult::Success { .. } => UpdateResponseCode::Success,
            UpdateResult::WrongEpoch { .. } => UpdateResponseCode::WrongEpoch,
            UpdateResult::NotAllowed => UpdateResponseCode::NotAllowed,
            UpdateResult::InvalidProposal { .. } => UpdateResponseCode::InvalidProposal,
        }
    }
}

impl Size for UpdateRoomResponse {
    fn tls_serialized_len(&self) -> usize {
        1 + self.error_description.tls_serialized_len()
            + match &self.result {
                UpdateResult::Success { .. } | UpdateResult::WrongEpoch { .. } => 8,
                UpdateResult::NotAllowed => 0,
                UpdateResult::InvalidProposal { invalid_proposals } => {
                    invalid_proposals.tls_serialized_len()
                }
            }
    }
}

impl Serialize for UpdateRoomResponse {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut n = self.response_code().tls_serialize(writer)?;
        n += self.error_description.tls_serialize(writer)?;
        n += match &self.result {
            UpdateResult::Success { accepted_timestamp } => {
                accepted_timestamp.tls_serialize(writer)?
            }
            UpdateResult::WrongEpoch { current_epoch } => current_epoch.tls_serialize(writer)?,
            UpdateResult::NotAllowed => 0,
            UpdateResult::InvalidProposal { invalid_proposals } => {
                invalid_proposals.tls_serialize(writer)?
            }
        };
        Ok(n)
    }
}

impl Deserialize for UpdateRoomResponse {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let code = UpdateResponseCode::tls_deserialize(bytes)?;
        let error_description = TlsString::tls_deserialize(bytes)?;
        let result = match code {
            UpdateResponseCode::Success => UpdateResult::Success {
                accepted_timestamp: u64::tls_deserialize(bytes)?,
            },
            UpdateResponseCode::WrongEpoch => UpdateResult::WrongEpoch {
                current_epoch: u64::tls_deserialize(bytes)?,
            },
            UpdateResponseCode::NotAllowed => UpdateResult::NotAllowed,
            UpdateResponseCode::InvalidProposal => UpdateResult::InvalidProposal {
                invalid_proposals: Vec::<ProposalRef>::tls_deserialize(bytes)?,
            },
        };
        Ok(Self {
            error_description,
            result,
        })
    }
}
