//! The file store: uploaded files' bytes on disk, named by the SHA-256 of their content
//! (`<data dir>/files/blobs/<2 hex>/<64 hex>`; the same bytes twice are stored once), and
//! what is known of each upload in the database ([`crate::store::uploads`]).
//!
//! An upload is written to `files/tmp` under a random name while it arrives (hashed as it
//! goes, cut off past the size cap), synced, and only then renamed to its blob's name; its
//! database record comes last. So a crash at any point leaves at most a temporary file or
//! a blob no record names, never a record naming half a file; the sweep removes both. An
//! image is inspected on a blocking thread ([`picture`]): a bomb is refused from its
//! header, its location metadata is removed from what is stored, a thumbnail is made.
//!
//! The sweep (at start and every [`SWEEP_EVERY`]) forgets uploads never sent within
//! [`UNSENT_TTL`], then deletes the blobs no upload names that are older than
//! [`SWEEP_GRACE`] (an upload in flight has placed its blob but not yet its record), and
//! temporary files as old.
//!
//! [`http`] holds the endpoints: upload, download, thumbnail.

pub mod http;
pub mod picture;

use sha2::{Digest, Sha256};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use crate::store::{StoreError, SurrealChatStore, UploadRecord};

/// How often unsent uploads and unnamed blobs are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);
/// How long a file uploaded and never sent is kept.
pub const UNSENT_TTL: Duration = Duration::from_secs(24 * 3600);
/// How old an unnamed blob or a temporary file must be before the sweep removes it.
pub const SWEEP_GRACE: Duration = Duration::from_secs(3600);
/// Images inspected at once (each may take a few hundred MB while decoded).
const DECODES_AT_ONCE: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("no such file")]
    NotFound,
    #[error("the file is larger than {} MB", .max / 1_000_000)]
    TooLarge { max: u64 },
    #[error("the file would take your stored files over {} MB", .quota / 1_000_000)]
    QuotaExceeded { quota: u64 },
    #[error(transparent)]
    Picture(#[from] picture::PictureError),
    #[error("not a PNG, JPEG, GIF or WebP image")]
    NotAnImage,
    #[error("too many changes; slow down")]
    RateLimited,
    #[error(transparent)]
    Invalid(#[from] app::domain::Invalid),
    #[error("internal error")]
    Io(#[from] std::io::Error),
    #[error("internal error")]
    Store(#[from] StoreError),
}

/// Where files go, and the limits on them; cheap to clone.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    blobs: PathBuf,
    tmp: PathBuf,
    /// With memory storage, the files live in a temporary directory removed on exit.
    _scratch: Option<tempfile::TempDir>,
    store: SurrealChatStore,
    max_bytes: u64,
    quota: u64,
    /// Held while an upload checks the owner's quota and records itself, so that two
    /// uploads at once cannot both fit in the last free megabytes.
    quota_check: tokio::sync::Mutex<()>,
    decodes: tokio::sync::Semaphore,
    /// The sweep writes it, a backup reads it: while a backup copies, no blob is removed.
    removals: tokio::sync::RwLock<()>,
}

/// Who uploads a file, where to, and what it is called.
pub struct NewUpload<'a> {
    pub owner: &'a str,
    pub conversation: &'a str,
    pub name: &'a str,
    /// The type its name suggests (used unless it turns out to be an image).
    pub guessed_type: &'a str,
    pub now_ms: i64,
}

/// A file received whole and synced, under a temporary name.
pub struct Received {
    path: PathBuf,
    pub size: u64,
    pub hash: String,
    /// Its first bytes, to tell its type by.
    pub head: Vec<u8>,
}

impl FileStore {
    /// Files under `dir` (`None`: a temporary directory, for memory storage). Temporary
    /// files a crash left are removed.
    pub fn open(
        dir: Option<&Path>,
        store: SurrealChatStore,
        max_bytes: u64,
        quota: u64,
    ) -> std::io::Result<Self> {
        let scratch = match dir {
            Some(_) => None,
            None => Some(tempfile::tempdir()?),
        };
        let root = match (&scratch, dir) {
            (Some(t), _) => t.path().to_owned(),
            (None, Some(d)) => d.to_owned(),
            (None, None) => unreachable!("one of the two is set above"),
        };
        let (blobs, tmp) = (root.join("blobs"), root.join("tmp"));
        std::fs::create_dir_all(&blobs)?;
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        Ok(FileStore {
            inner: Arc::new(Inner {
                blobs,
                tmp,
                _scratch: scratch,
                store,
                max_bytes,
                quota,
                quota_check: tokio::sync::Mutex::new(()),
                decodes: tokio::sync::Semaphore::new(DECODES_AT_ONCE),
                removals: tokio::sync::RwLock::new(()),
            }),
        })
    }

    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    /// Refuses an upload of `bytes` more that would take `owner` over the quota (checked
    /// again, under a lock, before the upload is recorded).
    pub async fn check_quota(&self, owner: &str, bytes: u64) -> Result<(), FileError> {
        let used = self.inner.store.uploaded_bytes(owner).await?;
        if used + bytes > self.inner.quota {
            return Err(FileError::QuotaExceeded {
                quota: self.inner.quota,
            });
        }
        Ok(())
    }

    pub fn store(&self) -> &SurrealChatStore {
        &self.inner.store
    }

    fn blob_path(&self, hash: &str) -> PathBuf {
        self.inner.blobs.join(&hash[..2]).join(hash)
    }

    /// Keeps the sweep from removing any blob while it is held (a backup holds it from
    /// before its database snapshot until its copy of the blobs is done).
    pub async fn hold_removals(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.inner.removals.read().await
    }

    /// Puts every blob into `to` (same layout), as hard links where `to` is on the same
    /// file system (blobs never change once named), else as copies; how many.
    pub async fn copy_blobs(&self, to: &Path) -> std::io::Result<u64> {
        let (from, to) = (self.inner.blobs.clone(), to.to_owned());
        tokio::task::spawn_blocking(move || copy_tree(&from, &to))
            .await
            .map_err(std::io::Error::other)?
    }

    /// A profile picture made of `bytes` (see [`picture::avatar`]), decoded as uploads are:
    /// a few at a time, off the sockets' threads.
    pub async fn avatar(&self, bytes: Vec<u8>) -> Result<(Vec<u8>, &'static str), FileError> {
        let _permit = self
            .inner
            .decodes
            .acquire()
            .await
            .map_err(|_| std::io::Error::other("closed"))?;
        tokio::task::spawn_blocking(move || picture::avatar(&bytes))
            .await
            .map_err(std::io::Error::other)??
            .ok_or(FileError::NotAnImage)
    }

    /// The blob's path, if the name is a hash this store could have made.
    pub fn existing_blob(&self, hash: &str) -> Option<PathBuf> {
        (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.blob_path(hash))
    }

    fn temp_path(&self) -> PathBuf {
        self.inner
            .tmp
            .join(format!("{}.part", crate::auth::random_hex(16)))
    }

    /// Writes `chunks` to a temporary file, hashing as it goes; refused past the size cap
    /// (and the partial file removed). The hashing and writing happen on a thread of the
    /// upload's own at the lowest CPU priority, a few chunks behind the socket (which waits
    /// for it), and the file is synced every [`SYNC_EVERY`] bytes: hashing on the sockets'
    /// threads and hundreds of unsynced megabytes that each message's commit had to flush
    /// first (ext4 orders a journal commit after the data of the files it names) held
    /// deliveries up by tens of milliseconds (BENCHMARKS.md).
    pub async fn receive<S, E>(&self, mut chunks: S) -> Result<Received, FileError>
    where
        S: futures::Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        use futures::StreamExt;
        let path = self.temp_path();
        let (tx, rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(4);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let target = path.clone();
        std::thread::Builder::new()
            .name("upload".into())
            .spawn(move || {
                crate::priority::lowest("an upload");
                let _ = done_tx.send(write_and_hash(&target, rx));
            })?;
        let max = self.inner.max_bytes;
        let fed = async {
            let mut size = 0u64;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| std::io::Error::other(e.into()))?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(FileError::TooLarge { max });
                }
                if tx.send(chunk).await.is_err() {
                    // The writer stopped: its error is the one to tell.
                    break;
                }
            }
            Ok(())
        }
        .await;
        drop(tx);
        let written = done_rx
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the upload's writer ended")));
        let result = match (fed, written) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(e.into()),
            (Ok(()), Ok((size, hash, head))) => Ok(Received {
                path: path.clone(),
                size,
                hash,
                head,
            }),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        result
    }

    /// Stores a received file and what is made of it, and records the upload: the file's
    /// bytes (an image's without its metadata), its thumbnail, then the record, once the
    /// owner's quota allows it.
    pub async fn keep(
        &self,
        received: Received,
        new: NewUpload<'_>,
    ) -> Result<UploadRecord, FileError> {
        let outcome = self.keep_inner(&received, new).await;
        // Moved into place, or refused: either way the temporary file goes.
        let _ = tokio::fs::remove_file(&received.path).await;
        outcome
    }

    async fn keep_inner(
        &self,
        received: &Received,
        new: NewUpload<'_>,
    ) -> Result<UploadRecord, FileError> {
        let NewUpload {
            owner,
            conversation,
            name,
            guessed_type,
            now_ms,
        } = new;
        let (mut hash, mut size) = (received.hash.clone(), received.size);
        let mut upload = UploadRecord {
            id: crate::auth::random_hex(16),
            owner: owner.to_owned(),
            conversation: conversation.to_owned(),
            name: name.to_owned(),
            size,
            content_type: guessed_type.to_owned(),
            hash: String::new(),
            thumbnail: None,
            width: None,
            height: None,
            created_at: now_ms,
            sent: None,
        };
        if picture::sniff(&received.head).is_some() {
            let permit = self
                .inner
                .decodes
                .acquire()
                .await
                .map_err(|_| std::io::Error::other("closed"))?;
            let bytes = tokio::fs::read(&received.path).await?;
            let inspected = tokio::task::spawn_blocking(move || picture::inspect(&bytes))
                .await
                .map_err(std::io::Error::other)??;
            drop(permit);
            if let Some(p) = inspected {
                if let Some(stored) = &p.stored {
                    hash = hex(&Sha256::digest(stored));
                    size = stored.len() as u64;
                    self.place_bytes(&hash, stored).await?;
                }
                let thumb = hex(&Sha256::digest(&p.thumbnail));
                self.place_bytes(&thumb, &p.thumbnail).await?;
                upload.thumbnail = Some(thumb);
                upload.content_type = p.content_type.to_owned();
                upload.width = Some(p.width);
                upload.height = Some(p.height);
                upload.size = size;
            }
        }
        if hash == received.hash {
            self.place(&received.path, &hash).await?;
        }
        upload.hash = hash;
        let _one_at_a_time = self.inner.quota_check.lock().await;
        self.check_quota(owner, upload.size).await?;
        self.inner.store.add_upload(&upload).await?;
        Ok(upload)
    }

    /// Moves a synced temporary file to its blob's name (or, when that blob exists, marks
    /// the blob fresh so that the sweep leaves it to the record about to name it).
    async fn place(&self, temp: &Path, hash: &str) -> std::io::Result<()> {
        let target = self.blob_path(hash);
        let dir = target.parent().map(Path::to_owned).unwrap_or_default();
        tokio::fs::create_dir_all(&dir).await?;
        if tokio::fs::try_exists(&target).await? {
            let target = target.clone();
            return tokio::task::spawn_blocking(move || {
                std::fs::File::options()
                    .append(true)
                    .open(&target)?
                    .set_modified(SystemTime::now())
            })
            .await
            .map_err(std::io::Error::other)?;
        }
        tokio::fs::rename(temp, &target).await?;
        // The rename itself is durable once the directory is synced.
        tokio::fs::File::open(&dir).await?.sync_all().await
    }

    /// Stores bytes made here (a thumbnail, an image without its metadata) as a blob.
    async fn place_bytes(&self, hash: &str, bytes: &[u8]) -> std::io::Result<()> {
        let temp = self.temp_path();
        let written = async {
            let mut file = tokio::fs::File::create(&temp).await?;
            file.write_all(bytes).await?;
            file.sync_all().await?;
            self.place(&temp, hash).await
        }
        .await;
        let _ = tokio::fs::remove_file(&temp).await;
        written
    }

    /// Forgets uploads never sent within [`UNSENT_TTL`] of `now_ms`, then removes the blobs
    /// no upload names and the temporary files, both older than [`SWEEP_GRACE`]. Returns
    /// how many files were removed.
    pub async fn sweep(&self, now_ms: i64) -> Result<usize, FileError> {
        let _no_backup = self.inner.removals.write().await;
        let forgotten = self
            .inner
            .store
            .forget_unsent_uploads(now_ms - UNSENT_TTL.as_millis() as i64)
            .await?;
        let named = self.inner.store.upload_blobs().await?;
        let (blobs, tmp) = (self.inner.blobs.clone(), self.inner.tmp.clone());
        let cutoff =
            SystemTime::UNIX_EPOCH + Duration::from_millis(now_ms.max(0) as u64) - SWEEP_GRACE;
        let removed = tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
            let old = |p: &Path| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff)
            };
            let mut removed = 0;
            for shard in std::fs::read_dir(&blobs)? {
                for blob in std::fs::read_dir(shard?.path())? {
                    let path = blob?.path();
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    if !named.contains(name) && old(&path) {
                        std::fs::remove_file(&path)?;
                        removed += 1;
                    }
                }
            }
            for file in std::fs::read_dir(&tmp)? {
                let path = file?.path();
                if old(&path) {
                    std::fs::remove_file(&path)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(std::io::Error::other)??;
        if forgotten + removed > 0 {
            info!(
                forgotten_uploads = forgotten,
                removed_files = removed,
                "file sweep"
            );
        }
        Ok(removed)
    }

    /// Runs [`Self::sweep`] now and every [`SWEEP_EVERY`] until `stop`.
    pub async fn sweep_until(self, stop: tokio_util::sync::CancellationToken) {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if let Err(e) = self.sweep(crate::now_ms()).await {
                        warn!(error = %e, cause = ?std::error::Error::source(&e), "file sweep failed");
                    }
                }
                () = stop.cancelled() => break,
            }
        }
    }
}

/// Links (or copies, across file systems) every file of the two-level tree `from` into the
/// same places under `to`, syncing copies; how many files.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    std::fs::create_dir_all(to)?;
    for shard in std::fs::read_dir(from)? {
        let shard = shard?;
        if !shard.file_type()?.is_dir() {
            continue;
        }
        let target = to.join(shard.file_name());
        std::fs::create_dir_all(&target)?;
        for file in std::fs::read_dir(shard.path())? {
            let file = file?;
            let dest = target.join(file.file_name());
            if dest.exists() {
                n += 1;
                continue;
            }
            link_or_copy(&file.path(), &dest)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Puts the blob `from` at `dest`: a hard link (blobs never change once named), or a synced
/// copy where `dest` is on another file system.
pub fn link_or_copy(from: &Path, dest: &Path) -> std::io::Result<()> {
    if std::fs::hard_link(from, dest).is_err() {
        std::fs::copy(from, dest)?;
        std::fs::File::open(dest)?.sync_all()?;
    }
    Ok(())
}

/// How many bytes of an upload may wait unsynced (see [`FileStore::receive`]).
pub const SYNC_EVERY: u64 = 4 << 20;

/// Writes what arrives on `chunks` to a new file at `path`, hashing it, syncing every
/// [`SYNC_EVERY`] bytes and at the end: its size, SHA-256 and first bytes.
fn write_and_hash(
    path: &Path,
    mut chunks: tokio::sync::mpsc::Receiver<axum::body::Bytes>,
) -> std::io::Result<(u64, String, Vec<u8>)> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    let mut hasher = Sha256::new();
    let (mut size, mut unsynced, mut head) = (0u64, 0u64, Vec::new());
    while let Some(chunk) = chunks.blocking_recv() {
        if head.len() < 64 {
            head.extend_from_slice(&chunk[..chunk.len().min(64 - head.len())]);
        }
        hasher.update(&chunk);
        file.write_all(&chunk)?;
        size += chunk.len() as u64;
        unsynced += chunk.len() as u64;
        if unsynced >= SYNC_EVERY {
            file.sync_data()?;
            unsynced = 0;
        }
    }
    file.sync_all()?;
    Ok((size, hex(&hasher.finalize()), head))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{db::Database, settings::StorageKind};

    const HOUR: i64 = 3_600_000;

    async fn file_store() -> (FileStore, Database, tempfile::TempDir) {
        let db = Database::open(StorageKind::Memory, Path::new("unused"))
            .await
            .unwrap();
        let store = SurrealChatStore::new(&db, 1).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = FileStore::open(Some(dir.path()), store, 1 << 20, 1 << 30).unwrap();
        (files, db, dir)
    }

    async fn upload(files: &FileStore, bytes: &[u8], at: i64) -> UploadRecord {
        let body = futures::stream::iter([Ok::<_, std::io::Error>(
            axum::body::Bytes::copy_from_slice(bytes),
        )]);
        let received = files.receive(body).await.unwrap();
        let new = NewUpload {
            owner: "ann",
            conversation: "ann/bob",
            name: "f.txt",
            guessed_type: "text/plain",
            now_ms: at,
        };
        files.keep(received, new).await.unwrap()
    }

    fn blob_exists(files: &FileStore, hash: &str) -> bool {
        files.existing_blob(hash).unwrap().exists()
    }

    #[tokio::test]
    async fn the_sweep_removes_what_nobody_names_and_keeps_the_rest() {
        let (files, _db, dir) = file_store().await;
        let now = crate::now_ms();
        let fresh = upload(&files, b"picked a minute ago", now).await;
        let abandoned = upload(&files, b"picked two days ago", now - 48 * HOUR).await;
        std::fs::write(dir.path().join("tmp/left-by-a-crash.part"), b"half").unwrap();
        assert_eq!(files.store().uploaded_bytes("ann").await.unwrap(), 38);

        // Within the grace period, nothing goes: an upload in flight has its blob before
        // its record.
        files.sweep(now).await.unwrap();
        assert!(
            blob_exists(&files, &abandoned.hash),
            "its record was forgotten, but the blob is fresh"
        );
        assert_eq!(files.store().upload(&abandoned.id).await.unwrap(), None);
        assert!(dir.path().join("tmp/left-by-a-crash.part").exists());

        // Two hours on: what no record names is gone, what one names stays.
        assert_eq!(files.sweep(now + 2 * HOUR).await.unwrap(), 2);
        assert!(!blob_exists(&files, &abandoned.hash));
        assert!(blob_exists(&files, &fresh.hash));
        assert!(files.store().upload(&fresh.id).await.unwrap().is_some());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn the_same_bytes_twice_are_stored_once_and_past_the_cap_not_at_all() {
        let (files, _db, dir) = file_store().await;
        let a = upload(&files, b"same bytes", 1).await;
        let b = upload(&files, b"same bytes", 2).await;
        assert_ne!(a.id, b.id);
        assert_eq!(a.hash, b.hash);
        let big = futures::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from(
            vec![0u8; (1 << 20) + 1],
        ))]);
        assert!(matches!(
            files.receive(big).await,
            Err(FileError::TooLarge { .. })
        ));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
