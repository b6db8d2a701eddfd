//! The chat server as a child process on a data directory of ours, so that it can be killed
//! (SIGKILL: no goodbye, no flush) or stopped (SIGTERM: graceful) and started again.

use anyhow::{bail, Context};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

use crate::http::status_of;

pub struct ServerProcess {
    bin: PathBuf,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Extra `CHAT_*` settings for every start.
    env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGKILL: the process gets no chance to do anything.
    Kill,
    /// SIGTERM: the server's graceful shutdown.
    Term,
}

impl ServerProcess {
    /// A server on `addr` (loopback) storing to `data_dir` on disk (or to the SurrealDB
    /// server `CHAT_DB_URL` names); its output is appended to `data_dir/../server.log`.
    pub fn new(bin: &Path, addr: SocketAddr, data_dir: &Path) -> anyhow::Result<Self> {
        crate::loopback_only(addr)?;
        let log = data_dir.with_extension("log");
        Ok(ServerProcess {
            bin: bin.to_owned(),
            addr,
            data_dir: data_dir.to_owned(),
            log,
            child: None,
            env: vec![
                // Load tests play thousands of users from one address: they must not trip
                // the per-user send limit, nor the per-address limits on connections and
                // sign-ups (which protect a server from one client).
                ("CHAT_SEND_RATE".into(), "1000000".into()),
                ("CHAT_CONNECTIONS_PER_ADDRESS".into(), "1000000".into()),
                ("CHAT_SIGN_UPS_PER_HOUR".into(), "1000000".into()),
                ("CHAT_LOG".into(), "warn,server=info".into()),
            ],
        })
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Starts the server and waits until `/healthz` answers; returns how long that took.
    pub async fn start(&mut self) -> anyhow::Result<Duration> {
        anyhow::ensure!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open {}", self.log.display()))?;
        let started = Instant::now();
        let mut child = Command::new(&self.bin)
            .env("CHAT_ADDR", self.addr.to_string())
            .env("CHAT_DATA_DIR", &self.data_dir)
            .env("CHAT_STORAGE", storage())
            .env("LEPTOS_OUTPUT_NAME", "chat")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", self.bin.display()))?;
        while started.elapsed() < Duration::from_secs(60) {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the server exited with {status}; see {}",
                    self.log.display()
                );
            }
            if status_of(self.addr, "/healthz").await == Some(200) {
                self.child = Some(child);
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "the server did not become healthy in 60 s; see {}",
            self.log.display()
        )
    }

    pub async fn stop(&mut self, how: Stop) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id().context("no pid")?;
        let signal = match how {
            Stop::Kill => "-KILL",
            Stop::Term => "-TERM",
        };
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .await?;
        anyhow::ensure!(status.success(), "kill {signal} {pid} failed");
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .context("the server did not exit within 30 s")??;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Resident memory of the server process, in KiB (from `/proc`).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid()?)
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The server's storage: on disk under its data directory, or on the SurrealDB server
/// that `CHAT_DB_URL` (with `CHAT_DB_USER`, `CHAT_DB_PASSWORD` and `CHAT_DB_DATABASE`, which
/// the server reads from the environment it inherits) names.
fn storage() -> &'static str {
    if std::env::var_os("CHAT_DB_URL").is_some() {
        "remote"
    } else {
        "disk"
    }
}

/// Resident memory of process `pid`, in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time process `pid` has used so far (user and system, all its threads), from
/// `/proc/PID/stat`. Its clock ticks are USER_HZ, which Linux fixes at 100 on every
/// architecture it exposes to user space this way.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// A free loopback port (bound, then released).
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Runs the server's `store_ceiling` example for `seconds` and returns its messages per
/// second (from its JSON line).
pub async fn store_ceiling(bin: &Path, seconds: u64) -> anyhow::Result<f64> {
    let out = tokio::time::timeout(
        Duration::from_secs(seconds + 120),
        Command::new(bin)
            .args(["--seconds", &seconds.to_string()])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("the store ceiling run did not finish")??;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON line from the store ceiling run")?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    v["per_second"]
        .as_f64()
        .context("no per_second in the store ceiling's JSON line")
}
