//! Assets in an object store: [`ObjectAssetStore`], over any
//! `object_store` backend, and its S3-compatible set-up from
//! `[assets.s3]` (docs/operations.md "Assets").
//!
//! A provider with several server processes, or without a durable local
//! disk, keeps assets in a bucket instead of `<data_dir>/assets`. The
//! bytes are the same opaque ciphertext (draft-ietf-mimi-content
//! §External content) under `<prefix>/<id>`.
//!
//! Uploads are read in parts of [`PART_BYTES`]: an asset that fits in one
//! part is one PUT, a larger one a multipart upload with at most
//! [`PARTS_IN_FLIGHT`] parts in memory and in transit. Either way the
//! object appears only once complete (S3 makes a multipart upload visible
//! at CompleteMultipartUpload), so a reader never sees half an asset; a
//! refused or broken upload is aborted. Uploads that die with the process
//! are the bucket's lifecycle rule's to abort (AbortIncompleteMultipartUpload,
//! docs/operations.md): a listing does not show them.

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::store::{AssetId, AssetReader, AssetStore, ByteStream, PutError, StoredAsset};
use crate::config::S3Config;

/// Bytes of one part: S3's smallest part but the last.
pub const PART_BYTES: usize = 5 * 1024 * 1024;

/// Parts of one upload in memory and in transit at once.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Assets as objects `<prefix>/<id>` of an object store.
#[derive(Debug)]
pub struct ObjectAssetStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

/// Why `[assets.s3]` could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("[assets.s3]: {0}")]
pub struct S3SetupError(String);

impl ObjectAssetStore {
    /// Assets under `prefix` (`/`-separated, may be empty) of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self {
            store,
            prefix: ObjectPath::from(prefix),
        }
    }

    /// The S3-compatible bucket of `config`. Credentials left out of the
    /// configuration come from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, instance metadata),
    /// as with every AWS tool.
    pub fn s3(config: &S3Config) -> Result<Self, S3SetupError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http)
            .with_virtual_hosted_style_request(config.virtual_hosted_style);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(path) = &config.secret_access_key_file {
            let secret = std::fs::read_to_string(path).map_err(|e| {
                S3SetupError(format!("secret_access_key_file {}: {e}", path.display()))
            })?;
            builder = builder.with_secret_access_key(secret.trim());
        }
        let store = builder.build().map_err(|e| S3SetupError(e.to_string()))?;
        Ok(Self::new(Arc::new(store), &config.prefix))
    }

    fn path(&self, id: &AssetId) -> ObjectPath {
        self.prefix.clone().join(id.to_string())
    }

    /// Writes the rest of `body` after `first` (a full part) as a
    /// multipart upload to `path`; the total size.
    async fn put_parts(
        &self,
        path: &ObjectPath,
        first: Bytes,
        mut body: ByteStream,
        max_bytes: u64,
    ) -> Result<u64, PutError> {
        let upload = self.store.put_multipart(path).await.map_err(to_io)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut size = first.len() as u64;
        writer.put(first);
        let result = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(PutError::Body)?;
                size = size.saturating_add(chunk.len() as u64);
                if size > max_bytes {
                    return Err(PutError::TooLarge { limit: max_bytes });
                }
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(to_io)?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                writer.finish().await.map_err(to_io)?;
                Ok(size)
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(%path, %abort, "aborting a refused multipart upload");
                }
                Err(e)
            }
        }
    }
}

fn to_io(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        other => io::Error::other(other),
    }
}

#[async_trait::async_trait]
impl AssetStore for ObjectAssetStore {
    async fn put(&self, mut body: ByteStream, max_bytes: u64) -> Result<StoredAsset, PutError> {
        let id = AssetId::random()?;
        let path = self.path(&id);
        // The first part decides: an asset that fits is one PUT.
        let mut first = BytesMut::new();
        while first.len() < PART_BYTES {
            let Some(chunk) = body.next().await else {
                break;
            };
            let chunk = chunk.map_err(PutError::Body)?;
            if (first.len() + chunk.len()) as u64 > max_bytes {
                return Err(PutError::TooLarge { limit: max_bytes });
            }
            first.extend_from_slice(&chunk);
        }
        if first.is_empty() {
            return Err(PutError::Empty);
        }
        let size = if first.len() < PART_BYTES {
            let size = first.len() as u64;
            self.store
                .put(&path, PutPayload::from_bytes(first.freeze()))
                .await
                .map_err(to_io)?;
            size
        } else {
            self.put_parts(&path, first.freeze(), body, max_bytes)
                .await?
        };
        Ok(StoredAsset { id, size })
    }

    async fn open(&self, id: &AssetId) -> io::Result<Option<AssetReader>> {
        let got = match self.store.get(&self.path(id)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(to_io(e)),
        };
        let size = got.meta.size;
        let stream = got.into_stream().map(|chunk| chunk.map_err(to_io));
        Ok(Some(AssetReader {
            size,
            stream: Box::pin(stream),
        }))
    }

    async fn delete(&self, id: &AssetId) -> io::Result<bool> {
        // S3's DELETE succeeds whether or not the object exists.
        let path = self.path(id);
        match self.store.head(&path).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(to_io(e)),
        }
        match self.store.delete(&path).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(to_io(e)),
        }
    }

    async fn purge_older_than(&self, cutoff: SystemTime) -> io::Result<u64> {
        let mut listing = self.store.list(Some(&self.prefix));
        let mut deleted = 0;
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(to_io)?;
            // Only our assets: other objects may share the bucket.
            let ours = meta
                .location
                .prefix_match(&self.prefix)
                .and_then(|mut rest| {
                    let name = rest.next()?;
                    rest.next().is_none().then_some(name)
                })
                .is_some_and(|name| AssetId::parse(name.as_ref()).is_some());
            if !ours || SystemTime::from(meta.last_modified) >= cutoff {
                continue;
            }
            match self.store.delete(&meta.location).await {
                Ok(()) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!(object = %meta.location, %e, "deleting an expired asset"),
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::store::read_all;
    use object_store::memory::InMemory;

    fn stream(chunks: Vec<io::Result<Bytes>>) -> ByteStream {
        Box::pin(futures_util::stream::iter(chunks))
    }

    fn one_chunk(bytes: &'static [u8]) -> ByteStream {
        stream(vec![Ok(Bytes::from_static(bytes))])
    }

    async fn objects(store: &InMemory) -> Vec<String> {
        let mut names: Vec<String> = store
            .list(None)
            .map(|m| m.unwrap().location.to_string())
            .collect()
            .await;
        names.sort();
        names
    }

    #[tokio::test]
    async fn small_and_multipart_assets_round_trip_under_the_prefix() {
        let memory = Arc::new(InMemory::new());
        let store = ObjectAssetStore::new(memory.clone(), "mimi/assets");
        let small = store.put(one_chunk(b"hello"), 100).await.unwrap();
        // Three parts' worth in odd-sized chunks.
        let big: Vec<u8> = (0..PART_BYTES * 2 + 12345).map(|i| i as u8).collect();
        let chunks = big
            .chunks(700_001)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let large = store.put(stream(chunks), u64::MAX).await.unwrap();
        assert_eq!(large.size, big.len() as u64);
        let mut expected = vec![
            format!("mimi/assets/{}", small.id),
            format!("mimi/assets/{}", large.id),
        ];
        expected.sort();
        assert_eq!(objects(&memory).await, expected);
        let reader = store.open(&large.id).await.unwrap().unwrap();
        assert_eq!(reader.size, big.len() as u64);
        assert!(read_all(reader).await == big);
        assert!(store.delete(&small.id).await.unwrap());
        assert!(!store.delete(&small.id).await.unwrap());
        assert!(store.open(&small.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refused_uploads_leave_no_object() {
        let memory = Arc::new(InMemory::new());
        let store = ObjectAssetStore::new(memory.clone(), "");
        let too_large = store.put(one_chunk(b"123456"), 5).await;
        assert!(matches!(too_large, Err(PutError::TooLarge { limit: 5 })));
        let part = Bytes::from(vec![1u8; PART_BYTES]);
        let too_large_later = store
            .put(
                stream(vec![Ok(part.clone()), Ok(part.clone())]),
                PART_BYTES as u64 + 1,
            )
            .await;
        assert!(matches!(too_large_later, Err(PutError::TooLarge { .. })));
        let broken = store
            .put(
                stream(vec![Ok(part), Err(io::Error::other("reset"))]),
                u64::MAX,
            )
            .await;
        assert!(matches!(broken, Err(PutError::Body(_))));
        let empty = store.put(stream(vec![]), 100).await;
        assert!(matches!(empty, Err(PutError::Empty)));
        assert!(objects(&memory).await.is_empty());
    }

    #[tokio::test]
    async fn purge_deletes_only_old_assets_of_the_prefix() {
        let memory = Arc::new(InMemory::new());
        let store = ObjectAssetStore::new(memory.clone(), "assets");
        let asset = store.put(one_chunk(b"x"), 10).await.unwrap();
        for other in ["assets/unrelated", "elsewhere/file", "assets/deeper/x"] {
            memory
                .put(&ObjectPath::from(other), PutPayload::from_static(b"y"))
                .await
                .unwrap();
        }
        let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        assert_eq!(store.purge_older_than(an_hour_ago).await.unwrap(), 0);
        let later = SystemTime::now() + std::time::Duration::from_secs(1);
        assert_eq!(store.purge_older_than(later).await.unwrap(), 1);
        assert!(store.open(&asset.id).await.unwrap().is_none());
        assert_eq!(
            objects(&memory).await,
            ["assets/deeper/x", "assets/unrelated", "elsewhere/file"]
        );
    }
}
