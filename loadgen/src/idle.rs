//! Idle connections: how many authenticated sockets the server holds, and what each costs,
//! beside what the same sockets cost the plain relay baseline.
//!
//! Signs up enough users (at most [`PER_USER`] sockets each, under the server's per-user
//! cap), takes the server's RSS, opens `connections` sockets (each gets its `hello`), lets
//! them sit, takes the RSS again, then pings every socket and counts the `pong`s. The
//! difference in RSS over the count is the memory per connection; the RSS before (the
//! database and its caches, the runtime) is reported on its own. Then the same with the
//! plain relay ([`crate::relay`]) in a process of its own (`loadgen relay`), so that its RSS
//! is the relay's alone: what a socket costs on this machine with nothing but WebSocket
//! framing on tokio.

use anyhow::{ensure, Context};
use app::protocol::{ClientMsg, ServerMsg};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::client::Conn;
use crate::http::sign_up;
use crate::in_batches;
use crate::process::{free_port, rss_kib, ServerProcess, Stop};
use crate::relay::RelayProcess;

/// Sockets per user (the server allows 32).
pub const PER_USER: usize = 25;
/// Sockets being opened at once.
const OPENING: usize = 100;
/// Sockets from one source address (127.0.0.1, then .2, …): fewer than the ~28,000
/// ephemeral ports one source has towards one server address.
const PER_SOURCE: usize = 20_000;

/// The loopback source address of socket `i`.
fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i / PER_SOURCE) as u8))
}

#[derive(Debug, Clone)]
pub struct Options {
    pub server_bin: std::path::PathBuf,
    pub connections: usize,
    pub hold: Duration,
}

/// What one target's sockets cost.
#[derive(Debug)]
pub struct Held {
    pub open_seconds: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub alive: usize,
}

impl Held {
    pub fn bytes_per_connection(&self, connections: usize) -> f64 {
        (self.rss_after_kib.saturating_sub(self.rss_before_kib) * 1024) as f64
            / connections.max(1) as f64
    }
}

#[derive(Debug)]
pub struct Report {
    pub connections: usize,
    pub users: usize,
    pub server: Held,
    /// The plain relay, same sockets, measured right after the server.
    pub relay: Held,
}

impl Report {
    pub fn bytes_per_connection(&self) -> f64 {
        self.server.bytes_per_connection(self.connections)
    }

    pub fn relay_bytes_per_connection(&self) -> f64 {
        self.relay.bytes_per_connection(self.connections)
    }

    /// The server's memory per socket as a multiple of the relay's.
    pub fn ratio_to_relay(&self) -> f64 {
        self.bytes_per_connection() / self.relay_bytes_per_connection().max(1.0)
    }
}

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let addr = free_port()?;
    let mut server = ServerProcess::new(&opts.server_bin, addr, &dir.path().join("data"))?;
    server.start().await?;
    let users = opts.connections.div_ceil(PER_USER).max(1);
    let names: Vec<String> = (0..users).map(|i| format!("idle{i}")).collect();
    let tokens = in_batches(&names, OPENING, |name| sign_up(addr, name)).await?;
    let pid = server.pid().context("the server has no pid")?;
    let held = hold(addr, &tokens, pid, &opts).await?;
    server.stop(Stop::Term).await?;

    // The relay takes a socket's token as its username.
    let relay = RelayProcess::start(None).await?;
    let relay_pid = relay.pid().context("the relay has no pid")?;
    let relay_held = hold(relay.addr, &names, relay_pid, &opts).await?;
    drop(relay);
    Ok(Report {
        connections: opts.connections,
        users,
        server: held,
        relay: relay_held,
    })
}

/// Opens `opts.connections` sockets to `addr` ([`PER_USER`] per token), holds them, and
/// takes the RSS of process `pid` before and after; every socket must answer a ping.
async fn hold(
    addr: SocketAddr,
    tokens: &[String],
    pid: u32,
    opts: &Options,
) -> anyhow::Result<Held> {
    // One socket first, so that the runtime's one-off allocations are in the baseline.
    Conn::open(addr, &tokens[0]).await?.close().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_kib = rss_kib(pid).unwrap_or(0);
    let started = Instant::now();
    let mut conns = in_batches(0..opts.connections, OPENING, |i| {
        Conn::open_from(addr, &tokens[i / PER_USER], Some(source(i)))
    })
    .await?;
    let open_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(opts.hold).await;
    let rss_after_kib = rss_kib(pid).unwrap_or(0);
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
        "{alive} of {} sockets to {addr} answered",
        opts.connections
    );
    Ok(Held {
        open_seconds,
        rss_before_kib,
        rss_after_kib,
        alive,
    })
}
