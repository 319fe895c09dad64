//! Content-addressed blob store: job bundles and outputs, stored under their SHA-256 hash.
//!
//! # Layout
//! `<data_dir>/blobs/<first 2 hex>/<64 hex>` holds a blob whose SHA-256 is its name;
//! `<data_dir>/blobs/tmp/` holds uploads in progress.
//!
//! # Invariants
//! - A file under a hash's name always holds bytes with that hash. An upload is streamed into
//!   a temporary file while being hashed, synced, and only then renamed onto its name (rename
//!   is atomic on one file system), after the hash was checked against the claimed one. A crash
//!   leaves at most a stray temporary file, which the next start removes; an upload or a
//!   peer fetch abandoned half-way (a client gone, a deadline passed) removes its own.
//! - No blob is larger than the configured limit: the upload is cut off when it exceeds it.
//!
//! # Garbage collection
//! A blob is *referenced* by a lease if it is the lease's job bundle or its committed output.
//! [`BlobStore::collect_garbage`] keeps every blob referenced by a lease that is still active,
//! or that became final less than `retention_blocks` ago; deletes blobs referenced only by
//! leases final for longer; and deletes unreferenced blobs older than the grace period (an
//! upload waiting for its `OpenLease`).

use futures::{Stream, StreamExt as _};
use orrery_types::hash::{Hash, HashWriter};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt as _;

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The content does not hash to the address it was uploaded under.
    #[error("blob content hashes to {actual}, not to {expected} it was uploaded as")]
    HashMismatch {
        /// The address claimed.
        expected: Hash,
        /// The content's hash.
        actual: Hash,
    },
    /// The upload exceeded the size limit.
    #[error("blob larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The upload stream broke.
    #[error("upload interrupted: {0}")]
    Body(String),
    /// Disk trouble.
    #[error("blob store I/O error at {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes read from disk per chunk when a blob is served or pushed.
const READ_CHUNK: usize = 64 * 1024;

/// A blob's bytes, read from disk a chunk at a time (`Sync`, so an HTTP client can send it).
pub type BlobBytes =
    std::pin::Pin<Box<dyn Stream<Item = io::Result<bytes::Bytes>> + Send + Sync + 'static>>;

fn read_chunks(file: tokio::fs::File) -> BlobBytes {
    use tokio::io::AsyncReadExt as _;
    Box::pin(futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; READ_CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }))
}

/// A temporary file removed when dropped; after a successful rename the removal finds
/// nothing, which is fine.
struct TmpFile(PathBuf);

impl Drop for TmpFile {
    fn drop(&mut self) {
        // Synchronous on purpose: a dropped future cannot await. One unlink is cheap.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// How a lease refers to blobs, for garbage collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    /// The referenced blob.
    pub hash: Hash,
    /// `None` while the lease is active; the height at which it became final otherwise.
    pub final_at: Option<u64>,
}

/// What a garbage collection pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs kept.
    pub kept: u64,
    /// Blobs deleted.
    pub deleted: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

/// The blob store.
#[derive(Debug)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
    max_blob_bytes: u64,
    tmp_counter: AtomicU64,
}

impl BlobStore {
    /// Open (creating) the store under `dir`, removing uploads a crash left unfinished.
    pub fn open(dir: &Path, max_blob_bytes: u64) -> Result<BlobStore, BlobError> {
        let tmp = dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        Ok(BlobStore {
            root: dir.to_path_buf(),
            tmp,
            max_blob_bytes,
            tmp_counter: AtomicU64::new(0),
        })
    }

    /// The size limit.
    pub fn max_blob_bytes(&self) -> u64 {
        self.max_blob_bytes
    }

    /// Where a blob lives.
    pub fn path_of(&self, hash: &Hash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// The blob's size, if stored.
    pub async fn size(&self, hash: &Hash) -> Option<u64> {
        tokio::fs::metadata(self.path_of(hash))
            .await
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Store the bytes of `body` under `expected`, checking the hash. Returns the size and
    /// whether the blob is new.
    pub async fn put<S, E>(&self, expected: Hash, body: S) -> Result<(u64, bool), BlobError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>>,
        E: std::fmt::Display,
    {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp_path = self.tmp.join(format!(
            "{}-{}-{n}.part",
            expected.short(),
            std::process::id()
        ));
        // Removes the temporary file however this future ends, dropped half-way included.
        let tmp = TmpFile(tmp_path);
        let size = self.write_tmp(&tmp.0, expected, body).await?;
        let dest = self.path_of(&expected);
        if tokio::fs::metadata(&dest).await.is_ok() {
            return Ok((size, false));
        }
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(io_err(&parent))?;
        tokio::fs::rename(&tmp.0, &dest)
            .await
            .map_err(io_err(&dest))?;
        // Make the rename durable; failure here only risks losing the new name.
        if let Ok(dir) = tokio::fs::File::open(&parent).await {
            let _ = dir.sync_all().await;
        }
        Ok((size, true))
    }

    async fn write_tmp<S, E>(&self, path: &Path, expected: Hash, body: S) -> Result<u64, BlobError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>>,
        E: std::fmt::Display,
    {
        let mut file = tokio::fs::File::create(path).await.map_err(io_err(path))?;
        let mut hasher = HashWriter::new();
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BlobError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > self.max_blob_bytes {
                return Err(BlobError::TooLarge {
                    limit: self.max_blob_bytes,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io_err(path))?;
        }
        let actual = hasher.finish();
        if actual != expected {
            return Err(BlobError::HashMismatch { expected, actual });
        }
        file.sync_all().await.map_err(io_err(path))?;
        Ok(size)
    }

    /// Open a stored blob for reading, with its size.
    pub async fn open_blob(&self, hash: &Hash) -> Option<(tokio::fs::File, u64)> {
        let file = tokio::fs::File::open(self.path_of(hash)).await.ok()?;
        let meta = file.metadata().await.ok()?;
        meta.is_file().then_some((file, meta.len()))
    }

    /// A stored blob's bytes as a stream of chunks, with its size; `None` if not stored.
    pub async fn read(&self, hash: &Hash) -> Option<(BlobBytes, u64)> {
        let (file, size) = self.open_blob(hash).await?;
        Some((read_chunks(file), size))
    }

    /// Every stored blob with its size and modification time.
    fn list(&self) -> Result<Vec<(Hash, PathBuf, u64, SystemTime)>, BlobError> {
        let mut out = Vec::new();
        let dirs = std::fs::read_dir(&self.root).map_err(io_err(&self.root))?;
        for dir in dirs.flatten() {
            let dir_path = dir.path();
            if dir_path == self.tmp || !dir_path.is_dir() {
                continue;
            }
            let Ok(files) = std::fs::read_dir(&dir_path) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name();
                let Some(hash) = name.to_str().and_then(|n| n.parse::<Hash>().ok()) else {
                    continue;
                };
                let Ok(meta) = f.metadata() else { continue };
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((hash, f.path(), meta.len(), mtime));
            }
        }
        Ok(out)
    }

    /// Delete what the retention rules allow (see the module docs). `height` is the chain's
    /// finalized height, `now` the wall clock (only for the grace period of unreferenced
    /// uploads). Blocking file-system work: call from a blocking thread.
    pub fn collect_garbage(
        &self,
        refs: &[BlobRef],
        height: u64,
        retention_blocks: u64,
        unreferenced_grace: Duration,
        now: SystemTime,
    ) -> Result<GcReport, BlobError> {
        // For each referenced blob: keep if any reference is active or recent.
        let mut keep: HashMap<Hash, bool> = HashMap::new();
        for r in refs {
            let live = match r.final_at {
                None => true,
                Some(at) => height < at.saturating_add(retention_blocks),
            };
            *keep.entry(r.hash).or_insert(false) |= live;
        }
        let mut report = GcReport::default();
        for (hash, path, size, mtime) in self.list()? {
            let delete = match keep.get(&hash) {
                Some(live) => !live,
                None => now.duration_since(mtime).unwrap_or_default() >= unreferenced_grace,
            };
            if delete {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        report.deleted += 1;
                        report.bytes_freed += size;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path)(e)),
                }
            } else {
                report.kept += 1;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
