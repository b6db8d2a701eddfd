//! Several chat nodes on one SurrealDB server (the one `CHAT_DB_URL` names), NATS between
//! them and nginx in front, all on loopback and started here. Senders write through nginx
//! (so they are spread over the nodes) and one watcher per node listens on that node:
//! every message must reach every watcher once and in order, whichever node stored it.
//! Then nodes are killed (SIGKILL) and restarted while the senders go on (their sockets
//! reconnect through nginx to a node that lives, and re-send what was not acknowledged),
//! and NATS is killed once and restarted. At the end every acknowledged message must be
//! stored once at its `seq`, `seq`s must have no gaps, unread counts must agree, and no
//! watcher's socket may have seen a duplicate, a reorder or a gap.

use anyhow::{bail, Context};
use app::protocol::{ClientMsg, ConversationId, Position, ServerMsg};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

use crate::check::{require, Findings};
use crate::client::Conn;
use crate::crash::{spawn_senders, Shared};
use crate::process::{free_port, ServerProcess, Stop};
use crate::world::populate;
use crate::Rng;

/// nginx's configuration for the cluster, with `@DIR@`, `@SERVERS@` and `@LISTEN@` to fill.
const NGINX_TEMPLATE: &str = include_str!("../../deploy/nginx.conf");

#[derive(Debug, Clone)]
pub struct Options {
    pub server_bin: PathBuf,
    pub nats_bin: PathBuf,
    pub nginx_bin: PathBuf,
    pub nodes: usize,
    pub senders: usize,
    pub kills: usize,
    pub seed: u64,
    /// Seconds of steady sending before the first kill (and after the last).
    pub steady_secs: u64,
}

#[derive(Debug, Clone)]
pub struct KillReport {
    pub node: usize,
    pub acknowledged: usize,
    pub restart_ms: u128,
}

pub struct Report {
    pub seed: u64,
    pub kills: Vec<KillReport>,
    pub last: Findings,
    pub refused: u64,
    /// Why, in the server's words, and how often.
    pub refusals: BTreeMap<String, u64>,
    /// Per watcher: messages received live, and sockets it had to open again.
    pub watched: Vec<(usize, u64, u64)>,
    /// Acknowledged while every node was up, before the first kill.
    pub steady_acked: usize,
}

/// A child process we start and kill: NATS or nginx.
struct Daemon {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    async fn start(&mut self, ready: SocketAddr) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", self.program.display()))?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited with {status}: {}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if tokio::net::TcpStream::connect(ready).await.is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("{} did not listen on {ready} within 20 s", self.name)
    }

    /// SIGKILL: gone at once, as a crash leaves it.
    async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// SIGTERM, and SIGKILL if it is still there 10 s later: nginx's master stops its
    /// workers only when asked (killed, it leaves them running).
    async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await?;
        }
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            child.kill().await?;
        }
        Ok(())
    }
}

/// A run that fails midway still stops what it started (SIGTERM: see [`Daemon::stop`]).
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

/// What one watcher saw.
#[derive(Debug, Default)]
struct Watched {
    /// Per conversation, the last `seq` received.
    last: HashMap<ConversationId, u64>,
    received: u64,
    reconnects: u64,
    problems: Vec<String>,
}

/// Listens as `token`'s user on `home` (then, once that socket breaks, through `lb`),
/// resuming from what it saw, and checks each message against the one before it in its
/// conversation: the next `seq`, never one again, never one skipped.
async fn watch(
    index: usize,
    home: SocketAddr,
    lb: SocketAddr,
    token: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Watched>>,
) -> anyhow::Result<()> {
    let mut addr = home;
    let mut quiet_since = Instant::now();
    loop {
        let positions: Vec<Position> = seen
            .lock()
            .expect("lock")
            .last
            .iter()
            .map(|(c, &seq)| Position {
                conversation_id: c.clone(),
                seq,
            })
            .collect();
        let mut conn = match Conn::open(addr, &token).await {
            Ok(c) => c,
            Err(_) => {
                if stop.load(Ordering::SeqCst) && quiet_since.elapsed() > Duration::from_secs(3) {
                    return Ok(());
                }
                addr = lb;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if conn.send(&ClientMsg::Resume { positions }).await.is_err() {
            continue;
        }
        loop {
            match conn.next(Duration::from_millis(250)).await {
                Ok(ServerMsg::Message { message }) => {
                    quiet_since = Instant::now();
                    let mut s = seen.lock().expect("lock");
                    s.received += 1;
                    let prev = s.last.get(&message.conversation_id).copied();
                    match prev {
                        Some(p) if message.seq <= p => s.problems.push(format!(
                            "watcher {index}: {} seq {} after {p} (a repeat or a reorder)",
                            message.conversation_id, message.seq
                        )),
                        Some(p) if message.seq != p + 1 => s.problems.push(format!(
                            "watcher {index}: {} seq {} after {p} (a gap)",
                            message.conversation_id, message.seq
                        )),
                        _ => {}
                    }
                    let last = s.last.entry(message.conversation_id.clone()).or_default();
                    *last = (*last).max(message.seq);
                }
                Ok(_) => {}
                // Quiet for a while (not closed).
                Err(e) if e.downcast_ref::<crate::client::Closed>().is_none() => {
                    if stop.load(Ordering::SeqCst) && quiet_since.elapsed() > Duration::from_secs(3)
                    {
                        conn.close().await;
                        return Ok(());
                    }
                }
                // The node went away: again, through the balancer.
                Err(_) => {
                    seen.lock().expect("lock").reconnects += 1;
                    addr = lb;
                    break;
                }
            }
        }
    }
}

/// Waits until every node's `/healthz` says the bus is up and hears all the others.
async fn until_joined(nodes: &[ServerProcess], within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    'again: while started.elapsed() < within {
        for n in nodes {
            let body = crate::http::body_of(n.addr, "/healthz")
                .await
                .unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let heard = v["bus"]["nodes"].as_array().map_or(0, Vec::len);
            if v["bus"]["connected"] != true || heard + 1 < nodes.len() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'again;
            }
        }
        return Ok(());
    }
    bail!("the nodes did not all join the bus within {within:?}")
}

fn nginx_conf(dir: &Path, listen: SocketAddr, nodes: &[SocketAddr]) -> String {
    let servers: String = nodes
        .iter()
        .map(|a| format!("        server {a} max_fails=1 fail_timeout=2s;\n"))
        .collect();
    NGINX_TEMPLATE
        .replace("@DIR@", &dir.display().to_string())
        .replace("@LISTEN@", &listen.to_string())
        .replace("@SERVERS@", servers.trim_end())
}

/// NATS, the chat nodes and nginx, started on loopback for a run; the SurrealDB server is
/// the one `CHAT_DB_URL` names.
pub struct Cluster {
    nats: Daemon,
    nats_addr: SocketAddr,
    pub nodes: Vec<ServerProcess>,
    nginx: Daemon,
    /// nginx, in front of the nodes.
    pub lb: SocketAddr,
    /// The nodes' `/metrics` token.
    metrics_token: String,
}

/// What the nodes' writers did, summed over the nodes (from their `/metrics`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Commits {
    /// Batches committed.
    pub commits: f64,
    /// Batches that lost the race for their positions to another node's and went again.
    pub raced: f64,
}

/// The value of the sample `name` (labels included, as written) in a Prometheus text page.
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

impl Cluster {
    /// Starts NATS, `count` nodes one after the other (each healthy before the next) and
    /// nginx, with their files under `dir`; returns once every node hears the others.
    pub async fn start(
        server_bin: &Path,
        nats_bin: &Path,
        nginx_bin: &Path,
        count: usize,
        dir: &Path,
        rng: &mut Rng,
    ) -> anyhow::Result<Cluster> {
        anyhow::ensure!(
            std::env::var_os("CHAT_DB_URL").is_some(),
            "a cluster runs on a SurrealDB server: set CHAT_DB_URL, CHAT_DB_USER and CHAT_DB_PASSWORD"
        );
        anyhow::ensure!(count >= 2, "a cluster has at least two nodes");
        let nats_addr = free_port()?;
        let mut nats = Daemon {
            name: "nats-server",
            program: nats_bin.to_owned(),
            args: vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                nats_addr.port().to_string(),
            ],
            log: dir.join("nats.log"),
            child: None,
        };
        nats.start(nats_addr).await?;
        let secret = format!("cluster-{:x}-{:x}", rng.next_u64(), rng.next_u64());
        let metrics_token = format!("metrics-{:x}-{:x}", rng.next_u64(), rng.next_u64());
        let mut nodes = Vec::new();
        for i in 0..count {
            let mut node =
                ServerProcess::new(server_bin, free_port()?, &dir.join(format!("node{i}")))?;
            node.set_env("CHAT_NODE", &format!("n{i}"));
            node.set_env("CHAT_NATS_URL", &format!("nats://{nats_addr}"));
            node.set_env("CHAT_JWT_SECRET", &secret);
            node.set_env("CHAT_METRICS_TOKEN", &metrics_token);
            node.start().await?;
            nodes.push(node);
        }
        until_joined(&nodes, Duration::from_secs(30)).await?;
        let lb = free_port()?;
        let nginx_dir = dir.join("nginx");
        std::fs::create_dir_all(&nginx_dir)?;
        let conf = nginx_dir.join("nginx.conf");
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        std::fs::write(&conf, nginx_conf(&nginx_dir, lb, &addrs))?;
        let mut nginx = Daemon {
            name: "nginx",
            program: nginx_bin.to_owned(),
            args: vec![
                "-p".into(),
                nginx_dir.display().to_string(),
                "-c".into(),
                conf.display().to_string(),
                "-e".into(),
                nginx_dir.join("error.log").display().to_string(),
            ],
            log: nginx_dir.join("nginx.log"),
            child: None,
        };
        nginx.start(lb).await?;
        Ok(Cluster {
            nats,
            nats_addr,
            nodes,
            nginx,
            lb,
            metrics_token,
        })
    }

    /// Commits and lost races so far, all nodes together.
    pub async fn commits(&self) -> Commits {
        let mut sum = Commits::default();
        for node in &self.nodes {
            let page = crate::http::body_with_token(node.addr, "/metrics", &self.metrics_token)
                .await
                .unwrap_or_default();
            sum.commits += sample(&page, "chat_commit_entries_count");
            sum.raced += sample(&page, "chat_commit_failures_total{reason=\"conflict\"}");
        }
        sum
    }

    /// Stops the nodes (gracefully), nginx and NATS.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.stop(Stop::Term).await?;
        }
        self.nginx.stop().await?;
        self.nats.stop().await
    }
}

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    // Logs of every process, kept for a look when asked.
    if std::env::var_os("LOADGEN_KEEP_LOGS").is_some() {
        println!("logs in {}", dir.path().display());
    }
    let mut rng = Rng::new(opts.seed);

    let mut cluster = Cluster::start(
        &opts.server_bin,
        &opts.nats_bin,
        &opts.nginx_bin,
        opts.nodes,
        dir.path(),
        &mut rng,
    )
    .await?;
    let (nodes, nats, nats_addr, lb) = (
        &mut cluster.nodes,
        &mut cluster.nats,
        cluster.nats_addr,
        cluster.lb,
    );
    let tag = opts.seed % 100_000;
    let world = populate(lb, &format!("cl{tag}"), opts.senders, "cluster room").await?;

    // One watcher per node, listening on that node as one of the users (each is in the
    // room and in one direct conversation).
    let stop_watching = Arc::new(AtomicBool::new(false));
    let mut watchers = Vec::new();
    let mut seen = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let s = Arc::new(Mutex::new(Watched::default()));
        seen.push(s.clone());
        let (addr, token, stop) = (node.addr, world.users[i].1.clone(), stop_watching.clone());
        watchers.push(tokio::spawn(watch(i, addr, lb, token, stop, s)));
    }
    // The watchers' `resume` is answered before anything is sent.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let shared = Arc::new(Shared::default());
    let senders = spawn_senders(lb, &world, &shared, |_| rng.next_u64());

    tokio::time::sleep(Duration::from_secs(opts.steady_secs)).await;
    let steady_acked = shared.acked.lock().expect("lock").len();
    anyhow::ensure!(
        steady_acked > 0,
        "nothing was acknowledged through the cluster"
    );

    let mut kills = Vec::new();
    for _ in 0..opts.kills {
        let victim = rng.range(0, nodes.len() as u64) as usize;
        nodes[victim].stop(Stop::Kill).await?;
        let acknowledged = shared.acked.lock().expect("lock").len();
        // The others carry on without it for a moment.
        tokio::time::sleep(Duration::from_millis(rng.range(200, 800))).await;
        let restart = nodes[victim].start().await?;
        kills.push(KillReport {
            node: victim,
            acknowledged,
            restart_ms: restart.as_millis(),
        });
        tokio::time::sleep(Duration::from_millis(rng.range(300, 1200))).await;
    }
    // NATS goes away once: the nodes go on storing; live delivery between them resumes
    // when it is back, and what the watchers missed is filled from the database.
    nats.kill().await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nats.start(nats_addr).await?;
    until_joined(nodes, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(opts.steady_secs)).await;

    shared.stop.store(true, Ordering::SeqCst);
    for t in senders {
        t.await??;
    }
    stop_watching.store(true, Ordering::SeqCst);
    for w in watchers {
        w.await??;
    }
    let acked = shared.acked.lock().expect("lock").clone();
    let refusals = shared.refusals.lock().expect("lock").clone();
    // What is stored and what each member's list says, read through the balancer, then
    // from each node: every node tells the same (one that missed what another stored
    // would show less).
    let mut last = world.check(lb, &acked, &Default::default()).await?;
    for (i, node) in nodes.iter().enumerate() {
        let there = world.check(node.addr, &acked, &Default::default()).await?;
        last.problems.extend(
            there
                .lost
                .iter()
                .map(|l| format!("node {i}: acknowledged {l:?} not there"))
                .chain(there.problems.iter().map(|p| format!("node {i}: {p}"))),
        );
        for (conv, end) in &there.ends {
            let want = last.ends.get(conv).copied().unwrap_or(0);
            if *end != want {
                last.problems.push(format!(
                    "node {i}: {conv} ends at {end}, through the balancer at {want}"
                ));
            }
        }
    }
    let mut newest: BTreeMap<ConversationId, u64> = BTreeMap::new();
    for a in &acked {
        let n = newest.entry(a.conversation.clone()).or_default();
        *n = (*n).max(a.seq);
    }
    let mut problems = Vec::new();
    let mut watched = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        let s = s.lock().expect("lock");
        problems.extend(s.problems.iter().cloned());
        for conv in &world.routes[i] {
            let want = newest.get(conv).copied().unwrap_or(0);
            let got = s.last.get(conv).copied().unwrap_or(0);
            if got != want {
                problems.push(format!(
                    "watcher {i} (node {i}) saw {conv} up to {got}, but {want} was acknowledged"
                ));
            }
        }
        watched.push((i, s.received, s.reconnects));
    }
    cluster.stop().await?;
    if std::env::var_os("LOADGEN_KEEP_LOGS").is_some() {
        let _ = dir.keep();
    }
    require(&last).context("final check")?;
    if !problems.is_empty() {
        bail!(
            "{} delivery problems, the first: {}",
            problems.len(),
            problems.join("; ").chars().take(2000).collect::<String>()
        );
    }
    Ok(Report {
        seed: opts.seed,
        kills,
        last,
        refused: shared.refused.load(Ordering::SeqCst),
        refusals,
        watched,
        steady_acked,
    })
}
