//! Idle connections: how many authenticated sockets the server holds, and what each costs.
//!
//! Signs up enough users (at most [`PER_USER`] sockets each, under the server's per-user
//! cap), takes the server's RSS, opens `connections` sockets (each gets its `hello`), lets
//! them sit, takes the RSS again, then pings every socket and counts the `pong`s. The
//! difference in RSS over the count is the memory per connection; the RSS before (the
//! database and its caches, the runtime) is reported on its own.

use anyhow::ensure;
use app::protocol::{ClientMsg, ServerMsg};
use std::time::{Duration, Instant};

use crate::client::Conn;
use crate::http::sign_up;
use crate::process::{free_port, ServerProcess, Stop};

/// Sockets per user (the server allows 32).
pub const PER_USER: usize = 25;
/// Sockets being opened at once.
const OPENING: usize = 100;

#[derive(Debug, Clone)]
pub struct Options {
    pub server_bin: std::path::PathBuf,
    pub connections: usize,
    pub hold: Duration,
}

#[derive(Debug)]
pub struct Report {
    pub connections: usize,
    pub users: usize,
    pub open_seconds: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub alive: usize,
}

impl Report {
    pub fn bytes_per_connection(&self) -> f64 {
        (self.rss_after_kib.saturating_sub(self.rss_before_kib) * 1024) as f64
            / self.connections.max(1) as f64
    }
}

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let addr = free_port()?;
    let mut server = ServerProcess::new(&opts.server_bin, addr, &dir.path().join("data"))?;
    server.start().await?;
    let users = opts.connections.div_ceil(PER_USER).max(1);
    let mut tokens = Vec::new();
    for i in 0..users {
        tokens.push(sign_up(addr, &format!("idle{i}")).await?);
    }
    // One socket first, so that the runtime's one-off allocations are in the baseline.
    Conn::open(addr, &tokens[0]).await?.close().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_kib = server.rss_kib().unwrap_or(0);
    let started = Instant::now();
    let mut conns: Vec<Conn> = Vec::with_capacity(opts.connections);
    while conns.len() < opts.connections {
        let batch = (conns.len()..opts.connections.min(conns.len() + OPENING))
            .map(|i| Conn::open(addr, &tokens[i / PER_USER]));
        for conn in futures::future::join_all(batch).await {
            conns.push(conn?);
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(opts.hold).await;
    let rss_after_kib = server.rss_kib().unwrap_or(0);
    // Every socket must still answer.
    let mut alive = 0;
    for chunk in conns.chunks_mut(OPENING) {
        let pings = chunk.iter_mut().enumerate().map(|(i, c)| async move {
            c.ask(ClientMsg::Ping { nonce: i as u64 }, |m| {
                matches!(m, ServerMsg::Pong { .. }).then_some(())
            })
            .await
            .is_ok()
        });
        alive += futures::future::join_all(pings)
            .await
            .into_iter()
            .filter(|&ok| ok)
            .count();
    }
    ensure!(
        alive == opts.connections,
        "{alive} of {} sockets answered",
        opts.connections
    );
    drop(conns);
    server.stop(Stop::Term).await?;
    Ok(Report {
        connections: opts.connections,
        users,
        open_seconds,
        rss_before_kib,
        rss_after_kib,
        alive,
    })
}
