//! The hub's view of a room's MLS group: an openmls [`PublicGroup`] with
//! its storage, serialisable to bytes so the store can keep it in one row.
//!
//! The hub has no group secrets (-06 §5.2): it tracks the public tree,
//! GroupContext and pending proposals, which is what it needs to validate
//! handshake messages and to answer groupInfo.

use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::*;
use openmls_memory_storage::MemoryStorage;
use tls_codec::{Deserialize as _, Serialize as _, VLBytes};

use crate::RoomError;

/// A room's public MLS state at the hub.
pub struct HubGroup {
    storage: MemoryStorage,
    group: PublicGroup,
}

impl HubGroup {
    /// Starts tracking a group from the GroupInfo and ratchet tree its
    /// creator uploaded (the commit's GroupInfoOption / RatchetTreeOption).
    /// The group's cipher suite must be one the crypto provider supports
    /// (docs/interop.md "Cipher suites").
    pub fn from_group_info(
        crypto: &impl OpenMlsCrypto,
        ratchet_tree: RatchetTreeIn,
        group_info: VerifiableGroupInfo,
    ) -> Result<Self, RoomError> {
        let ciphersuite = group_info.ciphersuite();
        if crypto.supports(ciphersuite).is_err() {
            return Err(RoomError::UnsupportedCipherSuite {
                cipher_suite: ciphersuite as u16,
            });
        }
        let storage = MemoryStorage::default();
        let (group, _info) = PublicGroup::from_external(
            crypto,
            &storage,
            ratchet_tree,
            group_info,
            ProposalStore::new(),
        )
        .map_err(|e| RoomError::InvalidGroup(e.to_string()))?;
        Ok(Self { storage, group })
    }

    /// Restores a group saved with [`HubGroup::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RoomError> {
        let mut rest = bytes;
        let group_id = VLBytes::tls_deserialize(&mut rest).map_err(corrupt)?;
        let entries = Vec::<(VLBytes, VLBytes)>::tls_deserialize(&mut rest).map_err(corrupt)?;
        if !rest.is_empty() {
            return Err(RoomError::CorruptState("trailing bytes".into()));
        }
        let storage = MemoryStorage::default();
        {
            let mut values = storage
                .values
                .write()
                .map_err(|_| RoomError::CorruptState("poisoned storage lock".into()))?;
            for (k, v) in entries {
                values.insert(k.into(), v.into());
            }
        }
        let group_id = GroupId::from_slice(group_id.as_slice());
        let group = PublicGroup::load(&storage, &group_id)
            .map_err(|e| RoomError::CorruptState(e.to_string()))?
            .ok_or_else(|| RoomError::CorruptState("group missing from state".into()))?;
        Ok(Self { storage, group })
    }

    /// Serialises the group, its tree and its pending proposals.
    ///
    /// Entries are sorted so equal states give equal bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RoomError> {
        let values = self
            .storage
            .values
            .read()
            .map_err(|_| RoomError::CorruptState("poisoned storage lock".into()))?;
        let mut entries: Vec<(VLBytes, VLBytes)> = values
            .iter()
            .map(|(k, v)| (VLBytes::new(k.clone()), VLBytes::new(v.clone())))
            .collect();
        entries.sort_by(|a, b| a.0.as_slice().cmp(b.0.as_slice()));
        let group_id = VLBytes::new(self.group.group_id().as_slice().to_vec());
        let mut out = group_id.tls_serialize_detached().map_err(encode)?;
        entries.tls_serialize(&mut out).map_err(encode)?;
        Ok(out)
    }

    pub fn epoch(&self) -> u64 {
        self.group.group_context().epoch().as_u64()
    }

    pub fn public_group(&self) -> &PublicGroup {
        &self.group
    }

    pub(crate) fn storage(&self) -> &MemoryStorage {
        &self.storage
    }

    pub(crate) fn parts_mut(&mut self) -> (&mut PublicGroup, &MemoryStorage) {
        (&mut self.group, &self.storage)
    }

    /// Applies a staged commit: the new epoch's tree and context replace
    /// the old, and the proposal queue is emptied.
    pub(crate) fn merge(&mut self, staged: StagedCommit) -> Result<(), RoomError> {
        self.group
            .merge_commit(&self.storage, staged)
            .map_err(|e| RoomError::CorruptState(format!("merge failed: {e:?}")))
    }
}

fn corrupt(e: tls_codec::Error) -> RoomError {
    RoomError::CorruptState(e.to_string())
}

fn encode(e: tls_codec::Error) -> RoomError {
    RoomError::CorruptState(format!("encoding failed: {e}"))
}
