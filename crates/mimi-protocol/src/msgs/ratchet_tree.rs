//! `RatchetTreeOption`, `PartialGroupInfo` (draft-mahy-mls-ratchet-tree-options)
//! and `GroupInfoOption` (-06 §5.3).

use std::io::{Read, Write};

use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::{Extension, RatchetTreeIn};
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

/// `enum RatchetTreeRepresentation` (ratchet-tree-options §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum RatchetTreeRepresentation {
    Full = 1,
    HttpsUri = 2,
    OutOfBand = 3,
    DistributionService = 4,
}

/// `struct RatchetTreeOption` (ratchet-tree-options §3).
///
/// Reading: the draft's `case httpsUrl` is the `httpsUri(2)` value, and
/// `Node ratchet_tree<V>` is the RFC 9420 `ratchet_tree` extension body,
/// `optional<Node> ratchet_tree<V>` (blank nodes must be representable), i.e.
/// openmls's [`RatchetTreeIn`].
#[derive(Debug, Clone, PartialEq)]
pub enum RatchetTreeOption {
    /// `full`: the whole tree inline.
    Full(RatchetTreeIn),
    /// `httpsUri`: an HTTPS URL to fetch the tree from, and the tree signature.
    HttpsUri {
        ratchet_tree_url: VLBytes,
        tree_signature: VLBytes,
    },
    /// `outOfBand`: only the tree signature.
    OutOfBand { tree_signature: VLBytes },
    /// `distributionService`: the DS reconstructs the tree.
    DistributionService,
}

impl RatchetTreeOption {
    pub fn representation(&self) -> RatchetTreeRepresentation {
        match self {
            Self::Full(_) => RatchetTreeRepresentation::Full,
            Self::HttpsUri { .. } => RatchetTreeRepresentation::HttpsUri,
            Self::OutOfBand { .. } => RatchetTreeRepresentation::OutOfBand,
            Self::DistributionService => RatchetTreeRepresentation::DistributionService,
        }
    }
}

impl Size for RatchetTreeOption {
    fn tls_serialized_len(&self) -> usize {
        1 + match self {
            Self::Full(tree) => tree.tls_serialized_len(),
            Self::HttpsUri {
                ratchet_tree_url,
                tree_signature,
            } => ratchet_tree_url.tls_serialized_len() + tree_signature.tls_serialized_len(),
            Self::OutOfBand { tree_signature } => tree_signature.tls_serialized_len(),
            Self::DistributionService => 0,
        }
    }
}

impl Serialize for RatchetTreeOption {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut n = self.representation().tls_serialize(writer)?;
        n += match self {
            Self::Full(tree) => tree.tls_serialize(writer)?,
            Self::HttpsUri {
                ratchet_tree_url,
                tree_signature,
            } => ratchet_tree_url.tls_serialize(writer)? + tree_signature.tls_serialize(writer)?,
            Self::OutOfBand { tree_signature } => tree_signature.tls_serialize(writer)?,
            Self::DistributionService => 0,
        };
        Ok(n)
    }
}

impl Deserialize for RatchetTreeOption {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        Ok(match RatchetTreeRepresentation::tls_deserialize(bytes)? {
            RatchetTreeRepresentation::Full => Self::Full(RatchetTreeIn::tls_deserialize(bytes)?),
            RatchetTreeRepresentation::HttpsUri => Self::HttpsUri {
                ratchet_tree_url: VLBytes::tls_deserialize(bytes)?,
                tree_signature: VLBytes::tls_deserialize(bytes)?,
            },
            RatchetTreeRepresentation::OutOfBand => Self::OutOfBand {
                tree_signature: VLBytes::tls_deserialize(bytes)?,
            },
            RatchetTreeRepresentation::DistributionService => Self::DistributionService,
        })
    }
}

/// `enum RatchetTreePresence` (ratchet-tree-options §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum RatchetTreePresence {
    NoRatchetTree = 0,
    Present = 1,
    Removed = 2,
    Added = 3,
}

/// `struct PartialGroupInfo` (ratchet-tree-options §4): the parts of a
/// GroupInfo a DS cannot compute from the handshake it saw.
#[derive(Debug, Clone, PartialEq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct PartialGroupInfo {
    pub ratchet_tree_presence: RatchetTreePresence,
    /// GroupInfo extensions excluding `ratchet_tree`.
    pub group_info_extensions: Vec<Extension>,
    pub signature: VLBytes,
}

/// `enum GroupInfoRepresentation` (-06 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum GroupInfoRepresentation {
    Full = 1,
    Partial = 2,
}

/// `struct GroupInfoOption` (-06 §5.3). The GroupInfo omits `ratchet_tree`.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupInfoOption {
    Full(VerifiableGroupInfo),
    Partial(PartialGroupInfo),
}

impl GroupInfoOption {
    pub fn representation(&self) -> GroupInfoRepresentation {
        match self {
            Self::Full(_) => GroupInfoRepresentation::Full,
            Self::Partial(_) => GroupInfoRepresentation::Partial,
        }
    }
}

impl Size for GroupInfoOption {
    fn tls_serialized_len(&self) -> usize {
        1 + match self {
            Self::Full(gi) => gi.tls_serialized_len(),
            Self::Partial(p) => p.tls_serialized_len(),
        }
    }
}

impl Serialize for GroupInfoOption {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let n = self.representation().tls_serialize(writer)?;
        Ok(n + match self {
            Self::Full(gi) => gi.tls_serialize(writer)?,
            Self::Partial(p) => p.tls_serialize(writer)?,
        })
    }
}

impl Deserialize for GroupInfoOption {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        Ok(match GroupInfoRepresentation::tls_deserialize(bytes)? {
            GroupInfoRepresentation::Full => {
                Self::Full(VerifiableGroupInfo::tls_deserialize(bytes)?)
            }
            GroupInfoRepresentation::Partial => {
                Self::Partial(PartialGroupInfo::tls_deserialize(bytes)?)
            }
        })
    }
}
