//! Where uploaded assets live: the [`AssetStore`] trait and its filesystem
//! implementation [`FsAssetStore`].
//!
//! Assets are opaque ciphertext (draft-ietf-mimi-content §External
//! content): the store keeps bytes under a random 256-bit id and never
//! learns what they are. Bodies move as streams of chunks in both
//! directions, so no asset is ever held in memory as a whole.
//!
//! The other implementation is the S3-compatible bucket of
//! [`super::object`] (docs/operations.md "Assets").

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

/// A stream of an asset's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An asset's id: 256 random bits, so that its URL is unguessable. Written
/// as 64 lowercase hex digits (URL path segment and file name).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssetId([u8; 32]);

impl AssetId {
    /// A fresh id from the system's secure random generator.
    pub fn random() -> io::Result<Self> {
        let mut bytes = [0u8; 32];
        crate::tls::crypto_provider()
            .secure_random
            .fill(&mut bytes)
            .map_err(|_| io::Error::other("no secure random numbers"))?;
        Ok(Self(bytes))
    }

    /// Parses exactly 64 lowercase hex digits; anything else (including
    /// `..`, slashes and upper case) is `None`, so a path segment never
    /// names a file outside the store.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssetId({self})")
    }
}

/// An asset just stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredAsset {
    pub id: AssetId,
    pub size: u64,
}

/// An asset opened for reading.
pub struct AssetReader {
    pub size: u64,
    pub stream: ByteStream,
}

/// Why an upload was not stored. Nothing is kept in any case.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("the asset is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the asset is empty")]
    Empty,
    /// The uploader's stream failed (disconnect, bad framing).
    #[error("reading the upload failed: {0}")]
    Body(io::Error),
    /// The store failed.
    #[error("storing the asset failed: {0}")]
    Io(#[from] io::Error),
}

/// Storage of uploaded assets.
#[async_trait::async_trait]
pub trait AssetStore: Send + Sync + 'static {
    /// Stores the bytes of `body` under a fresh id, refusing (and keeping
    /// nothing) as soon as more than `max_bytes` arrived. The asset is
    /// visible to [`Self::open`] only once complete.
    async fn put(&self, body: ByteStream, max_bytes: u64) -> Result<StoredAsset, PutError>;

    /// The asset `id`, or `None` when there is none.
    async fn open(&self, id: &AssetId) -> io::Result<Option<AssetReader>>;

    /// Deletes the asset `id`; whether there was one.
    async fn delete(&self, id: &AssetId) -> io::Result<bool>;

    /// Deletes every asset stored before `cutoff`, and uploads abandoned
    /// (nothing written) since before it; the number of assets deleted.
    async fn purge_older_than(&self, cutoff: SystemTime) -> io::Result<u64>;
}

/// Assets as files `<dir>/<id>` (mode 0600, directory 0700). An upload
/// is written to `<dir>/.<id>.part` and renamed when complete, so a
/// reader never sees a partial asset and a crash leaves only a `.part`
/// file, which [`AssetStore::purge_older_than`] removes.
pub struct FsAssetStore {
    dir: PathBuf,
}

/// Chunk size of reads.
const READ_CHUNK: usize = 64 * 1024;

impl FsAssetStore {
    /// Opens (creating, owner-only) the directory `dir`.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, id: &AssetId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn partial_path(&self, id: &AssetId) -> PathBuf {
        self.dir.join(format!(".{id}.part"))
    }

    /// Writes `body` to `file`; the byte count.
    async fn write_body(
        file: &mut tokio::fs::File,
        mut body: ByteStream,
        max_bytes: u64,
    ) -> Result<u64, PutError> {
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(PutError::Body)?;
            size = size.saturating_add(chunk.len() as u64);
            if size > max_bytes {
                return Err(PutError::TooLarge { limit: max_bytes });
            }
            file.write_all(&chunk).await?;
        }
        if size == 0 {
            return Err(PutError::Empty);
        }
        file.flush().await?;
        // The URL goes into a message as soon as it is answered: the
        // bytes must survive a crash from then on.
        file.sync_all().await?;
        Ok(size)
    }
}

#[async_trait::async_trait]
impl AssetStore for FsAssetStore {
    async fn put(&self, body: ByteStream, max_bytes: u64) -> Result<StoredAsset, PutError> {
        let id = AssetId::random()?;
        let partial = self.partial_path(&id);
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&partial).await?;
        let written = Self::write_body(&mut file, body, max_bytes).await;
        drop(file);
        let size = match written {
            Ok(size) => size,
            Err(e) => {
                if let Err(rm) = tokio::fs::remove_file(&partial).await {
                    tracing::warn!(path = %partial.display(), %rm, "removing a refused upload");
                }
                return Err(e);
            }
        };
        if let Err(e) = tokio::fs::rename(&partial, self.path(&id)).await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e.into());
        }
        // The rename itself is durable only with the directory synced.
        if let Ok(dir) = tokio::fs::File::open(&self.dir).await
            && let Err(e) = dir.sync_all().await
        {
            tracing::debug!(%e, "syncing the assets directory");
        }
        Ok(StoredAsset { id, size })
    }

    async fn open(&self, id: &AssetId) -> io::Result<Option<AssetReader>> {
        let file = match tokio::fs::File::open(self.path(id)).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = file.metadata().await?.len();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK);
        Ok(Some(AssetReader {
            size,
            stream: Box::pin(stream),
        }))
    }

    async fn delete(&self, id: &AssetId) -> io::Result<bool> {
        match tokio::fs::remove_file(self.path(id)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn purge_older_than(&self, cutoff: SystemTime) -> io::Result<u64> {
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        let mut deleted = 0;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let asset = AssetId::parse(name).is_some();
            let partial = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".part"))
                .is_some_and(|n| AssetId::parse(n).is_some());
            if !asset && !partial {
                continue;
            }
            // Another process of the provider may have removed it already.
            let Ok(modified) = entry.metadata().await.and_then(|m| m.modified()) else {
                continue;
            };
            if modified >= cutoff {
                continue;
            }
            match tokio::fs::remove_file(entry.path()).await {
                Ok(()) if asset => deleted += 1,
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = name, %e, "deleting an expired asset"),
            }
        }
        Ok(deleted)
    }
}

/// Every byte of `reader` (tests of the stores).
#[cfg(test)]
pub(crate) async fn read_all(reader: AssetReader) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = reader.stream;
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// How often the retention task runs for a retention of `retention`:
/// a tenth of it, between one second and one hour, so an asset outlives
/// its retention by at most about 10 %.
pub fn purge_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(chunks: Vec<io::Result<&'static [u8]>>) -> ByteStream {
        Box::pin(futures_util::stream::iter(
            chunks.into_iter().map(|c| c.map(Bytes::from_static)),
        ))
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn stores_reads_and_deletes_owner_only_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("assets");
        let store = FsAssetStore::open(&dir).unwrap();
        let stored = store
            .put(stream(vec![Ok(b"hello "), Ok(b"world")]), 11)
            .await
            .unwrap();
        assert_eq!(stored.size, 11);
        assert_eq!(files(&dir), [stored.id.to_string()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(stored.id.to_string())), 0o600);
        }
        let reader = store.open(&stored.id).await.unwrap().unwrap();
        assert_eq!(reader.size, 11);
        assert_eq!(read_all(reader).await, b"hello world");
        assert!(store.delete(&stored.id).await.unwrap());
        assert!(!store.delete(&stored.id).await.unwrap());
        assert!(store.open(&stored.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refused_uploads_leave_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FsAssetStore::open(tmp.path()).unwrap();
        let too_large = store.put(stream(vec![Ok(b"12345"), Ok(b"6")]), 5).await;
        assert!(matches!(too_large, Err(PutError::TooLarge { limit: 5 })));
        let broken = store
            .put(stream(vec![Ok(b"12"), Err(io::Error::other("reset"))]), 100)
            .await;
        assert!(matches!(broken, Err(PutError::Body(_))));
        let empty = store.put(stream(vec![]), 100).await;
        assert!(matches!(empty, Err(PutError::Empty)));
        assert!(files(tmp.path()).is_empty());
    }

    #[tokio::test]
    async fn purge_deletes_old_assets_and_abandoned_parts_only() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FsAssetStore::open(tmp.path()).unwrap();
        let old = store.put(stream(vec![Ok(b"old")]), 10).await.unwrap();
        let new = store.put(stream(vec![Ok(b"new")]), 10).await.unwrap();
        let part = tmp
            .path()
            .join(format!(".{}.part", AssetId::random().unwrap()));
        std::fs::write(&part, b"half").unwrap();
        let unrelated = tmp.path().join("unrelated");
        std::fs::write(&unrelated, b"x").unwrap();
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for path in [tmp.path().join(old.id.to_string()), part, unrelated] {
            let file = std::fs::File::options().write(true).open(path).unwrap();
            file.set_modified(an_hour_ago).unwrap();
        }
        let cutoff = SystemTime::now() - Duration::from_secs(60);
        assert_eq!(store.purge_older_than(cutoff).await.unwrap(), 1);
        let mut expected = vec![new.id.to_string(), "unrelated".to_string()];
        expected.sort();
        assert_eq!(files(tmp.path()), expected);
    }

    #[test]
    fn ids_are_64_lowercase_hex_digits() {
        let id = AssetId::random().unwrap();
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(AssetId::parse(&text), Some(id));
        assert_ne!(AssetId::random().unwrap(), id);
        for bad in [
            "",
            "..",
            &text.to_uppercase(),
            &text[..63],
            &format!("{text}0"),
            &format!("../{}", &text[3..]),
        ] {
            assert_eq!(AssetId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn purge_interval_is_a_tenth_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(purge_interval(s(30 * 24 * 3600)), s(3600));
        assert_eq!(purge_interval(s(100)), s(10));
        assert_eq!(purge_interval(s(1)), s(1));
    }
}
