//! Fanout Messages and Room Events: `POST /notify/{roomId}` (-06 §5.5).

use std::io::{Read, Write};

use openmls::prelude::{ContentType, MlsMessageBodyIn, MlsMessageIn, WireFormat};
use tls_codec::{Deserialize, Serialize, Size};

use super::{
    decoding_error, encoding_error, framed_content_type, franking::Frank,
    ratchet_tree::RatchetTreeOption,
};
use crate::codec::DecodeError;

/// The `select (message.wire_format)` part of a [`FanoutMessage`].
///
/// Reading: the draft's cases mix wire formats and content types. The case
/// is decided from `message` as follows:
/// - Welcome wire format → `welcome`;
/// - PublicMessage or PrivateMessage: by the clear-text `content_type`
///   (`application`, `proposal`, `commit`);
/// - GroupInfo and KeyPackage wire formats are not fanned out → error.
#[derive(Debug, Clone, PartialEq)]
pub enum FanoutBody {
    /// `case application`: `optional<Frank> frank`.
    Application { frank: Option<Frank> },
    /// `case welcome`: how to get the ratchet tree.
    Welcome {
        ratchet_tree_option: RatchetTreeOption,
    },
    /// `case proposal`: the `moreProposals` of the `HandshakeBundle`.
    Proposal { more_proposals: Vec<MlsMessageIn> },
    /// `case commit`: replacement proposals stapled to an external commit.
    Commit {
        external_proposals: Vec<MlsMessageIn>,
    },
}

/// Which [`FanoutBody`] case `message` selects, if any.
pub fn fanout_case(message: &MlsMessageIn) -> Option<FanoutCase> {
    if message.wire_format() == WireFormat::Welcome {
        return Some(FanoutCase::Welcome);
    }
    Some(match framed_content_type(message)? {
        ContentType::Application => FanoutCase::Application,
        ContentType::Proposal => FanoutCase::Proposal,
        ContentType::Commit => FanoutCase::Commit,
    })
}

/// The selector values of [`FanoutBody`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FanoutCase {
    Application,
    Welcome,
    Proposal,
    Commit,
}

impl FanoutBody {
    pub fn case(&self) -> FanoutCase {
        match self {
            Self::Application { .. } => FanoutCase::Application,
            Self::Welcome { .. } => FanoutCase::Welcome,
            Self::Proposal { .. } => FanoutCase::Proposal,
            Self::Commit { .. } => FanoutCase::Commit,
        }
    }
}

/// `struct FanoutMessage` (-06 §5.5).
///
/// Reading: the draft selects on `protocol` but has no protocol field; as in
/// `UpdateRequest` the protocol is the room's (mls10), so the encoding is
/// `timestamp`, `message`, then the per-case body.
#[derive(Debug, Clone, PartialEq)]
pub struct FanoutMessage {
    /// Hub acceptance time, ms since the UNIX epoch.
    pub timestamp: u64,
    pub message: MlsMessageIn,
    pub body: FanoutBody,
}

impl FanoutMessage {
    /// The KeyPackageRefs a fanned-out Welcome is addressed to (the
    /// `new_member` of each entry of `secrets`, RFC 9420 §12.4.3.1); `None`
    /// if the message is not a Welcome.
    pub fn welcome_key_package_refs(&self) -> Option<Vec<Vec<u8>>> {
        // Look before cloning: most fanned-out messages are not Welcomes.
        if self.message.wire_format() != WireFormat::Welcome {
            return None;
        }
        match self.message.clone().extract() {
            MlsMessageBodyIn::Welcome(welcome) => Some(
                welcome
                    .secrets()
                    .iter()
                    .map(|s| s.new_member().as_slice().to_vec())
                    .collect(),
            ),
            _ => None,
        }
    }
}

impl Size for FanoutMessage {
    fn tls_serialized_len(&self) -> usize {
        8 + self.message.tls_serialized_len()
            + match &self.body {
                FanoutBody::Application { frank } => frank.tls_serialized_len(),
                FanoutBody::Welcome {
                    ratchet_tree_option,
                } => ratchet_tree_option.tls_serialized_len(),
                FanoutBody::Proposal { more_proposals } => more_proposals.tls_serialized_len(),
                FanoutBody::Commit { external_proposals } => {
                    external_proposals.tls_serialized_len()
                }
            }
    }
}

impl Serialize for FanoutMessage {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        if fanout_case(&self.message) != Some(self.body.case()) {
            return Err(encoding_error(
                "FanoutMessage body does not match the message's wire format / content type",
            ));
        }
        let mut n = self.timestamp.tls_serialize(writer)?;
        n += self.message.tls_serialize(writer)?;
        n += match &self.body {
            FanoutBody::Application { frank } => frank.tls_serialize(writer)?,
            FanoutBody::Welcome {
                ratchet_tree_option,
            } => ratchet_tree_option.tls_serialize(writer)?,
            FanoutBody::Proposal { more_proposals } => more_proposals.tls_serialize(writer)?,
            FanoutBody::Commit { external_proposals } => {
                external_proposals.tls_serialize(writer)?
            }
        };
        Ok(n)
    }
}

impl Deserialize for FanoutMessage {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let timestamp = u64::tls_deserialize(bytes)?;
        let message = MlsMessageIn::tls_deserialize(bytes)?;
        let body = match fanout_case(&message) {
            Some(FanoutCase::Application) => FanoutBody::Application {
                frank: Option::<Frank>::tls_deserialize(bytes)?,
            },
            Some(FanoutCase::Welcome) => FanoutBody::Welcome {
                ratchet_tree_option: RatchetTreeOption::tls_deserialize(bytes)?,
            },
            Some(FanoutCase::Proposal) => FanoutBody::Proposal {
                more_proposals: Vec::<MlsMessageIn>::tls_deserialize(bytes)?,
            },
            Some(FanoutCase::Commit) => FanoutBody::Commit {
                external_proposals: Vec::<MlsMessageIn>::tls_deserialize(bytes)?,
            },
            None => {
                return Err(decoding_error(
                    "FanoutMessage carries a GroupInfo or KeyPackage",
                ));
            }
        };
        Ok(Self {
            timestamp,
            message,
            body,
        })
    }
}

/// Decodes a `/notify` body: one or more concatenated `FanoutMessage`s
/// (-06 §5.5). An empty body is an error.
pub fn decode_fanout_batch(mut bytes: &[u8]) -> Result<Vec<FanoutMessage>, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Malformed(decoding_error("empty notify body")));
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(FanoutMessage::tls_deserialize(&mut bytes)?);
    }
    Ok(out)
}

/// Encodes several `FanoutMessage`s back to back.
pub fn encode_fanout_batch(messages: &[FanoutMessage]) -> Result<Vec<u8>, tls_codec::Error> {
    let mut out = Vec::new();
    for m in messages {
        m.tls_serialize(&mut out)?;
    }
    Ok(out)
}
