//! Backup under load: senders write steadily (each one message in flight, as in `crash`)
//! while the server binary's `backup` subcommand copies the running server's data
//! directory; then `restore` puts the backup into a new directory, a server starts there,
//! and every message acknowledged before the backup began must be in it, exactly once, at
//! its acknowledged `seq`, with no gaps (the same check as after a crash).

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::check::{check, require, Findings};
use crate::crash::{spawn_senders, Shared};
use crate::process::{free_port, ServerProcess, Stop};
use crate::world::populate;

#[derive(Debug, Clone)]
pub struct Options {
    pub server_bin: PathBuf,
    pub senders: usize,
    /// How long the load runs before the backup starts, and after it ends.
    pub before: Duration,
    pub after: Duration,
    /// A data directory to run the server on (one `generate-db` made, say) instead of a
    /// new one; it is left as it was found, apart from what the senders add.
    pub data_dir: Option<PathBuf>,
}

pub struct Report {
    /// Acknowledged before the backup began; of those, found in the restored copy.
    pub acked_before: usize,
    pub acked_during: usize,
    pub acked_total: usize,
    pub backup_ms: u128,
    pub restore_ms: u128,
    /// Messages acknowledged per second before the backup, and while it ran.
    pub rate_before: f64,
    pub rate_during: f64,
    /// The data directory's size and the backup's, in bytes.
    pub data_bytes: u64,
    pub backup_bytes: u64,
    /// What the backup command printed.
    pub backup_said: String,
    pub restored: Findings,
}

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let data = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| dir.path().join("data"));
    let addr = free_port()?;
    let mut server = ServerProcess::new(&opts.server_bin, addr, &data)?;
    server.start().await?;
    let world = populate(addr, "backup", opts.senders, "backup room").await?;
    let shared = Arc::new(Shared::default());
    let tasks = spawn_senders(addr, &world, &shared, |i| 7 + i as u64);
    tokio::time::sleep(opts.before).await;

    let before = shared.acked.lock().expect("lock").clone();
    let backup = dir.path().join("backup");
    let started = Instant::now();
    let backup_said = admin(&opts.server_bin, &data, &["backup", path_str(&backup)?]).await?;
    let backup_ms = started.elapsed().as_millis();
    let acked_during = shared.acked.lock().expect("lock").len() - before.len();

    tokio::time::sleep(opts.after).await;
    shared.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await??;
    }
    let acked_total = shared.acked.lock().expect("lock").len();
    server.stop(Stop::Term).await?;

    let restored_dir = dir.path().join("restored");
    let started = Instant::now();
    admin(
        &opts.server_bin,
        &restored_dir,
        &["restore", path_str(&backup)?],
    )
    .await?;
    let restore_ms = started.elapsed().as_millis();
    let mut restored = ServerProcess::new(&opts.server_bin, free_port()?, &restored_dir)?;
    restored.start().await.context("the restored copy starts")?;
    let findings = check(restored.addr, &world.readers, &before).await?;
    restored.stop(Stop::Term).await?;
    require(&findings).context("the restored backup")?;
    Ok(Report {
        rate_before: before.len() as f64 / opts.before.as_secs_f64(),
        rate_during: acked_during as f64 / (backup_ms.max(1) as f64 / 1000.0),
        data_bytes: size_of(&data),
        backup_bytes: size_of(&backup),
        acked_before: before.len(),
        acked_during,
        acked_total,
        backup_ms,
        restore_ms,
        backup_said,
        restored: findings,
    })
}

/// Bytes of the files under `dir` (hard links counted each time).
fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => size_of(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("a temporary path is UTF-8")
}

/// Runs an administration subcommand of the server binary on `data_dir`; what it printed.
async fn admin(bin: &Path, data_dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new(bin)
            .args(args)
            .env("CHAT_DATA_DIR", data_dir)
            .env("CHAT_STORAGE", "disk")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("`server {}` did not finish in 10 minutes", args.join(" ")))??;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    anyhow::ensure!(
        out.status.success(),
        "`server {}` failed: {said} {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(said)
}
