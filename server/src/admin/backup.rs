//! Backup and restore of a whole data directory.
//!
//! A backup is a directory: `database.surql` (SurrealDB's export, written from one read
//! transaction, so every record is as of one moment while writes go on), `files/blobs/`
//! (every uploaded file and thumbnail, hard-linked where the backup is on the same file
//! system: blobs never change once named), the session-signing secret, and
//! [`MANIFEST`]. It is written under `<target>.partial` and renamed when complete, so a
//! directory with the target's name is always a whole backup. From before the snapshot until
//! the blobs are copied the file sweep is held, so no file the snapshot names goes missing.
//!
//! The snapshot is the data as a crash at that moment would have left it (RELIABILITY.md):
//! every message acknowledged before the backup began is in it, and the summary fields the
//! server keeps ahead in memory are repaired when the restored directory is first opened,
//! as after a crash. The search index is not copied: it is rebuilt from the messages.
//!
//! Restore goes into an empty (or new) data directory, with no server running on it.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tracing::info;

use super::{Admin, AdminError};
use crate::{db::Database, settings::StorageKind};

/// The file that marks a directory as a whole backup, and says what it holds.
pub const MANIFEST: &str = "backup.json";
/// The database's export, inside a backup.
pub const DATABASE: &str = "database.surql";
/// The session-signing secret's file, in a data directory and in a backup.
pub const SECRET: &str = "jwt-secret";
/// What this code writes into [`MANIFEST`]'s `format`.
const FORMAT: u32 = 1;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// When its snapshot was taken (ms since the epoch).
    pub taken_at: i64,
    pub database_bytes: u64,
    pub files: u64,
    /// How long it took to write, in ms.
    pub took_ms: u64,
}

impl std::fmt::Display for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "backup written: database {:.1} MB, {} file(s), in {:.1} s",
            self.database_bytes as f64 / 1e6,
            self.files,
            self.took_ms as f64 / 1000.0
        )
    }
}

/// Writes a backup of everything `admin` holds into `to`, which must not exist yet.
pub async fn backup(admin: &Admin, to: &Path) -> Result<Manifest, AdminError> {
    let data_dir = admin.data_dir.as_deref().ok_or(AdminError::NeedsDisk)?;
    let partial = fresh_partial(to)?;
    let started = std::time::Instant::now();
    private_dir(&partial)?;
    let database = partial.join(DATABASE);
    let (taken_at, files) = {
        let _no_sweep = admin.files.hold_removals().await;
        let taken_at = crate::now_ms();
        admin.store.export_to(&database).await?;
        let blobs = partial.join("files").join("blobs");
        let files = admin
            .files
            .copy_blobs(&blobs)
            .await
            .map_err(AdminError::io("cannot copy the files into", &blobs))?;
        (taken_at, files)
    };
    sync_file(&database)?;
    let secret = data_dir.join(SECRET);
    if secret.exists() {
        let copy = partial.join(SECRET);
        std::fs::copy(&secret, &copy).map_err(AdminError::io("cannot copy", &secret))?;
        sync_file(&copy)?;
    }
    let manifest = Manifest {
        format: FORMAT,
        taken_at,
        database_bytes: std::fs::metadata(&database)
            .map_err(AdminError::io("cannot read", &database))?
            .len(),
        files,
        took_ms: started.elapsed().as_millis() as u64,
    };
    let manifest_path = partial.join(MANIFEST);
    let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other);
    json.and_then(|j| std::fs::write(&manifest_path, j))
        .map_err(AdminError::io("cannot write", &manifest_path))?;
    sync_file(&manifest_path)?;
    sync_file(&partial)?;
    std::fs::rename(&partial, to).map_err(AdminError::io("cannot rename the backup to", to))?;
    if let Some(parent) = to.parent() {
        sync_file(parent)?;
    }
    info!(to = %to.display(), files, database_bytes = manifest.database_bytes, took_ms = manifest.took_ms, "backup written");
    Ok(manifest)
}

/// Restores the backup in `from` into `data_dir`, which must be empty or not exist, with no
/// server running on it. The server then starts there as from its own data.
pub async fn restore(from: &Path, data_dir: &Path) -> Result<Manifest, AdminError> {
    let manifest_path = from.join(MANIFEST);
    let manifest: Manifest = std::fs::read(&manifest_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| AdminError::NotABackup(from.to_owned()))?;
    let not_empty = std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some());
    if not_empty {
        return Err(AdminError::NotEmpty(data_dir.to_owned()));
    }
    let db = Database::open(StorageKind::Disk, data_dir).await?;
    let database = from.join(DATABASE);
    let imported = db.handle().import(&database).await;
    let closed = db.close(std::time::Duration::from_secs(30)).await;
    imported.map_err(|e| AdminError::Store(e.into()))?;
    if !closed {
        return Err(AdminError::Io {
            what: "the database did not close in time in",
            path: data_dir.to_owned(),
            source: std::io::ErrorKind::TimedOut.into(),
        });
    }
    let blobs = data_dir.join("files").join("blobs");
    let from_blobs = from.join("files").join("blobs");
    if from_blobs.exists() {
        let (a, b) = (from_blobs.clone(), blobs.clone());
        tokio::task::spawn_blocking(move || crate::files::copy_tree(&a, &b))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(AdminError::io("cannot copy the files into", &blobs))?;
    }
    let secret = from.join(SECRET);
    if secret.exists() {
        let to = data_dir.join(SECRET);
        std::fs::copy(&secret, &to).map_err(AdminError::io("cannot copy", &secret))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
                .map_err(AdminError::io("cannot protect", &to))?;
        }
    }
    info!(from = %from.display(), to = %data_dir.display(), "backup restored");
    Ok(manifest)
}

/// Where a new directory `to` (a backup, an export) is written until it is whole, once `to`
/// is known not to exist yet; one left by a run that was cut off (never whole) is removed.
pub(super) fn fresh_partial(to: &Path) -> Result<PathBuf, AdminError> {
    if to.exists() {
        return Err(AdminError::TargetExists(to.to_owned()));
    }
    let partial = partial_path(to);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(AdminError::io("cannot remove", &partial))?;
    }
    Ok(partial)
}

/// Where a backup to `to` is written until it is whole.
fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    to.with_file_name(name)
}

/// Creates `dir` readable by its owner only (a backup holds every message and the secret).
fn private_dir(dir: &Path) -> Result<(), AdminError> {
    std::fs::create_dir_all(dir).map_err(AdminError::io("cannot create", dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(AdminError::io("cannot protect", dir))?;
    }
    Ok(())
}

/// Syncs a file or a directory (its entries) to disk.
fn sync_file(path: &Path) -> Result<(), AdminError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(AdminError::io("cannot sync", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_written_beside_its_target_under_another_name() {
        assert_eq!(
            partial_path(Path::new("/b/monday")),
            Path::new("/b/monday.partial")
        );
    }
}
