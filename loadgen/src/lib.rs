//! A client of the chat server that speaks its real protocol, and scenarios built on it.
//!
//! - [`http`] — sign-up over plain HTTP/1.1 (no HTTP client crate needed).
//! - [`client`] — one WebSocket, tolerant of the server going away.
//! - [`process`] — the server as a child process: start, SIGKILL / SIGTERM, RSS, logs.
//! - [`world`] — users in pairs and one room: the population scenarios run on.
//! - [`check`] — reads every conversation back and checks the invariants.
//! - [`crash`] — many senders while the server is killed and restarted.
//! - [`cluster`] — nodes on a SurrealDB server with NATS and nginx: delivery across nodes,
//!   nodes and NATS killed under load.
//! - [`backup`] — the server binary's `backup` while senders write, then `restore`.
//! - [`soak`] — mixed traffic with connects and disconnects for a bounded time.
//! - [`files`] — upload throughput, an image's thumbnail time, uploads beside `bench`.
//! - [`bench`] — closed-loop throughput and latency, against the server or [`relay`], the
//!   baseline with no authentication or storage (a process of its own).
//! - [`fanout`] — one room of many members: deliveries per second and the time until every
//!   member has a post, against the server and the relay.
//!
//! Loopback only: every address is checked with [`loopback_only`].

pub mod backup;
pub mod bench;
pub mod check;
pub mod client;
pub mod cluster;
pub mod crash;
pub mod deflate;
pub mod fanout;
pub mod files;
pub mod http;
pub mod idle;
pub mod process;
pub mod relay;
pub mod soak;
pub mod storage;
pub mod storm;
pub mod world;

use std::net::SocketAddr;

/// Refuses anything but a loopback target: load is never sent elsewhere.
pub fn loopback_only(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "{addr} is not a loopback address; this tool only loads loopback servers"
    );
    Ok(addr)
}

/// A small seeded generator (xorshift64*): runs are reproducible from their printed seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// Runs `task` for each of `items`, `at_once` of them at a time (a server set up by thousands
/// of sign-ups, joins or connections at once would refuse them), and returns their results
/// in the items' order; the first failure fails the whole.
pub async fn in_batches<I, T, F, Fut>(
    items: impl IntoIterator<Item = I>,
    at_once: usize,
    mut task: F,
) -> anyhow::Result<Vec<T>>
where
    F: FnMut(I) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut items = items.into_iter().peekable();
    let mut done = Vec::new();
    while items.peek().is_some() {
        let batch: Vec<Fut> = items.by_ref().take(at_once.max(1)).map(&mut task).collect();
        for result in futures::future::join_all(batch).await {
            done.push(result?);
        }
    }
    Ok(done)
}

/// The server's socket buffers (`server::ws`: 4 KiB read, 16 KiB write), for the relay and
/// the clients alike: the library's defaults (128 KiB each way) would cost each socket
/// ~130 KiB, and the relay would differ from the server in how it frames, not only in what
/// it does.
pub fn socket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
}

/// A seed from the clock, for runs that were not given one.
pub fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// The machine's load averages (1, 5 and 15 minutes) from `/proc/loadavg`, as printed there.
pub fn machine_load() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The machine's CPU time counters (`/proc/stat`, all CPUs), to tell how much of a run's
/// time the hypervisor gave to other guests (steal): on a shared VM, that is what makes
/// two runs of the same code differ.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    total: u64,
    steal: u64,
}

impl CpuTimes {
    pub fn now() -> Option<CpuTimes> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = text
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        Some(CpuTimes {
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            total: fields.iter().take(8).sum(),
            steal: *fields.get(7)?,
        })
    }

    /// The share of CPU time stolen since `self`, in percent.
    pub fn steal_since(&self) -> Option<f64> {
        let now = CpuTimes::now()?;
        let total = now.total.checked_sub(self.total)?;
        (total > 0).then(|| 100.0 * (now.steal - self.steal) as f64 / total as f64)
    }
}
