//! The openmls provider of a device: RustCrypto plus a [`MemoryStorage`]
//! that can be written to and read from bytes deterministically.

use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider;
use tls_codec::{Deserialize as _, Serialize as _, VLBytes};

use crate::error::{Error, Result};

/// openmls's `OpenMlsRustCrypto` cannot be built around existing storage,
/// so the device uses this equivalent provider.
#[derive(Debug, Default)]
pub struct Provider {
    crypto: RustCrypto,
    storage: MemoryStorage,
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}

impl Provider {
    /// The storage as `(key, value)` pairs sorted by key, TLS-encoded:
    /// equal states give equal bytes.
    pub(crate) fn storage_to_bytes(&self) -> Result<Vec<u8>> {
        let values = self
            .storage
            .values
            .read()
            .map_err(|_| Error::Persistence("poisoned storage lock".into()))?;
        let mut entries: Vec<(VLBytes, VLBytes)> = values
            .iter()
            .map(|(k, v)| (VLBytes::new(k.clone()), VLBytes::new(v.clone())))
            .collect();
        entries.sort_by(|a, b| a.0.as_slice().cmp(b.0.as_slice()));
        Ok(entries.tls_serialize_detached()?)
    }

    /// Restores storage written by [`Provider::storage_to_bytes`].
    pub(crate) fn from_storage_bytes(bytes: &[u8]) -> Result<Self> {
        let entries = Vec::<(VLBytes, VLBytes)>::tls_deserialize_exact(bytes)
            .map_err(|e| Error::Persistence(format!("storage: {e}")))?;
        let provider = Provider::default();
        {
            let mut values = provider
                .storage
                .values
                .write()
                .map_err(|_| Error::Persistence("poisoned storage lock".into()))?;
            for (k, v) in entries {
                values.insert(k.into(), v.into());
            }
        }
        Ok(provider)
    }
}
