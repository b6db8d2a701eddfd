//! Throughput and latency: users in pairs, each sending to its peer for a fixed time, against
//! the real server or one of the relay baselines in a process of its own (plain, or durable: see
//! [`crate::relay`]). Closed loop: each user keeps `window` messages in flight. Open loop: a
//! fixed aggregate rate, each user on its own schedule, and latencies counted from the
//! scheduled send time (so a stalled server cannot hide its queue). Measures delivered
//! messages per second, send→ack and send→delivery latency, and checks that every
//! acknowledged message was delivered once, in order. A mixed load (`changes_every`) makes
//! every n-th operation of a user a change to its own last message instead — an edit, a
//! reaction, the reaction taken back, in turn — acknowledged by the user's own copy of the
//! change and delivered to its peer like a message (the relays know messages only: their
//! figures stay messages only).

use anyhow::Context;
use app::domain::{ClientMsgId, Emoji, MessageBody};
use app::protocol::{ClientMsg, ConversationId, ServerMsg, What};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use crate::client::{Closed, Conn, Glance};
use crate::process::{free_port, ServerProcess, Stop};
use crate::relay::RelayProcess;
use crate::world::populate;

#[derive(Debug, Clone)]
pub enum Target {
    /// The chat server binary, on a fresh disk data directory.
    Server(PathBuf),
    /// The relay baseline: no storage.
    Relay,
    /// The relay baseline syncing every message to a file before its ack.
    DurableRelay,
    /// Chat nodes on the SurrealDB server `CHAT_DB_URL` names, NATS between them
    /// ([`crate::cluster::Cluster`]); each pair's two users on different nodes, so that
    /// every message crosses the bus.
    Cluster {
        server_bin: PathBuf,
        nats_bin: PathBuf,
        nginx_bin: PathBuf,
        nodes: usize,
    },
}

/// How the users send.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// Each user keeps this many messages unacknowledged.
    Closed { window: usize },
    /// All users together send this many messages per second.
    Open { per_second: f64 },
}

#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub users: usize,
    pub load: Load,
    pub duration: Duration,
    /// Every n-th operation of a user is a change to a message (the server only).
    pub changes_every: Option<usize>,
    /// Files of this many MB uploaded one after another for the whole run, by the first
    /// user (the server only).
    pub upload_mb: Option<u64>,
    /// The uploads' pace, MB/s (unpaced: as fast as the server takes them).
    pub upload_mb_per_s: Option<f64>,
}

/// Most messages one user may have unacknowledged in the open loop before the run fails.
const OPEN_BACKLOG: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    pub seconds: f64,
    pub acked: u64,
    pub delivered: u64,
    /// `delivered / seconds`.
    pub throughput: f64,
    pub ack_us: Percentiles,
    pub delivery_us: Percentiles,
    /// How long after its due time each frame had been written to the socket: the load
    /// generator's own lateness (its timer and scheduling), part of every latency above. In
    /// the closed loop a send is due when it is written, so this is only its write.
    pub send_late_us: Percentiles,
    pub rss_kib: Option<u64>,
    /// The target process's CPU from the first send until every user was done, in cores
    /// (not for a cluster).
    pub cpu_cores: Option<f64>,
    /// MB/s of each upload made beside the messages (`upload_mb`).
    pub uploads_mb_s: Vec<f64>,
    /// A cluster's commits and lost races (set-up included).
    pub commits: Option<crate::cluster::Commits>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(mut v: Vec<u64>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
        Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            max: *v.last().expect("non-empty"),
        }
    }
}

struct UserResult {
    acked: u64,
    delivered: u64,
    ack_us: Vec<u64>,
    delivery_us: Vec<u64>,
    send_late_us: Vec<u64>,
}

/// A message or a change at `seq` reached user `index`: it must come after `last_seq`
/// (each once, in order). A `body` holding its send time (ns since `start`) gives its
/// delivery latency. Returns the new last position.
fn delivered(
    r: &mut UserResult,
    index: usize,
    last_seq: u64,
    seq: u64,
    body: Option<&str>,
    start: Instant,
) -> anyhow::Result<u64> {
    anyhow::ensure!(seq > last_seq, "user {index}: seq {seq} after {last_seq}");
    r.delivered += 1;
    if let Some(ns) = body.and_then(|b| b.parse::<u128>().ok()) {
        let now_ns = start.elapsed().as_nanos();
        r.delivery_us
            .push((now_ns.saturating_sub(ns) / 1000) as u64);
    }
    Ok(seq)
}

/// Each user's token and direct conversation (the first of their routes), in user order.
fn pairs(world: crate::world::World) -> (Vec<String>, Vec<ConversationId>) {
    let tokens = world.users.into_iter().map(|(_, t)| t).collect();
    let convs = world.routes.into_iter().map(|r| r[0].clone()).collect();
    (tokens, convs)
}

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let users = opts.users.max(2) & !1;
    let dir = tempfile::tempdir()?;
    let mut server = None;
    // Kept until the run ends: dropping it stops the relay's process.
    let mut relay = None;
    let mut cluster: Option<crate::cluster::Cluster> = None;
    let (addr, target, tokens, convs) = match &opts.target {
        Target::Relay | Target::DurableRelay => {
            let durable = matches!(opts.target, Target::DurableRelay);
            let journal = dir.path().join("journal");
            let started = RelayProcess::start(durable.then_some(journal.as_path())).await?;
            let addr = started.addr;
            relay = Some(started);
            let tokens: Vec<String> = (0..users).map(|i| format!("r{i}")).collect();
            let convs: Vec<ConversationId> = (0..users)
                .map(|i| {
                    let (a, b) = (i & !1, i | 1);
                    ConversationId(format!("r{a}/r{b}"))
                })
                .collect();
            (
                addr,
                if durable { "relay+sync" } else { "relay" },
                tokens,
                convs,
            )
        }
        Target::Cluster {
            server_bin,
            nats_bin,
            nginx_bin,
            nodes,
        } => {
            let mut rng = crate::Rng::new(crate::fresh_seed());
            let started = crate::cluster::Cluster::start(
                server_bin,
                nats_bin,
                nginx_bin,
                *nodes,
                dir.path(),
                &mut rng,
            )
            .await?;
            let addr = started.lb;
            // Names of its own: the single server of the same run may have used this
            // database.
            let (tokens, convs) = pairs(populate(addr, "cbench", users, "bench room").await?);
            cluster = Some(started);
            (addr, "cluster", tokens, convs)
        }
        Target::Server(bin) => {
            let addr = free_port()?;
            let mut s = ServerProcess::new(bin, addr, &dir.path().join("data"))?;
            if opts.upload_mb.is_some() {
                for (k, v) in crate::files::LARGE_FILES {
                    s.set_env(k, v);
                }
            }
            s.start().await?;
            // The users in pairs, each pair's direct conversation first in its routes.
            let (tokens, convs) = pairs(populate(addr, "bench", users, "bench room").await?);
            server = Some(s);
            (addr, "server", tokens, convs)
        }
    };
    let first_conv = convs.first().map(|c| c.0.clone()).unwrap_or_default();
    let mut conns = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        // In a cluster, user i on node i mod n: the two of a pair are neighbours.
        let at = match &cluster {
            Some(c) => c.nodes[i % c.nodes.len()].addr,
            None => addr,
        };
        conns.push(Conn::open_live(at, token).await.context("connect")?);
    }
    let target_pid = match (&server, &relay) {
        (Some(s), _) => s.pid(),
        (None, Some(r)) => r.pid(),
        (None, None) => None,
    };
    let cpu_before = target_pid.and_then(crate::process::cpu_seconds);
    let start = Instant::now();
    let deadline = start + opts.duration;
    let mut tasks = Vec::new();
    let count = conns.len();
    let mut schedules = Vec::new();
    for (i, (conn, conv)) in conns.into_iter().zip(convs).enumerate() {
        let pace = match opts.load {
            Load::Closed { window } => Pace::Window(window.max(1)),
            Load::Open { per_second } => {
                let every = Duration::from_secs_f64(count as f64 / per_second.max(0.001));
                let (tx, rx) = mpsc::unbounded_channel();
                // Staggered, so that the users' schedules spread over the interval.
                schedules.push(Schedule {
                    next: start + every.mul_f64(i as f64 / count as f64),
                    every,
                    due: tx,
                });
                Pace::Ticks(rx)
            }
        };
        let mix = match opts.target {
            Target::Server(_) | Target::Cluster { .. } => opts.changes_every.filter(|&n| n > 0),
            Target::Relay | Target::DurableRelay => None,
        };
        tasks.push(tokio::spawn(user(
            conn, i, conv, pace, mix, start, deadline,
        )));
    }
    let uploads = match (opts.upload_mb, server.is_some()) {
        (Some(mb), true) => Some(tokio::spawn(crate::files::upload_until(
            addr,
            tokens[0].clone(),
            first_conv.clone(),
            mb,
            opts.upload_mb_per_s,
            deadline,
        ))),
        _ => None,
    };
    if !schedules.is_empty() {
        std::thread::Builder::new()
            .name("open-loop-pacer".into())
            .spawn(move || pacer(schedules, deadline))?;
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await??);
    }
    let uploads_mb_s = match uploads {
        Some(t) => t.await??,
        None => Vec::new(),
    };
    let cpu_cores = match (target_pid.and_then(crate::process::cpu_seconds), cpu_before) {
        (Some(after), Some(before)) => Some((after - before) / start.elapsed().as_secs_f64()),
        _ => None,
    };
    let seconds = opts.duration.as_secs_f64();
    let rss_kib = target_pid.and_then(crate::process::rss_kib);
    if let Some(mut s) = server {
        s.stop(Stop::Term).await?;
    }
    let commits = match &cluster {
        Some(c) => Some(c.commits().await),
        None => None,
    };
    if let Some(mut c) = cluster {
        c.stop().await?;
    }
    drop(relay);
    let acked: u64 = results.iter().map(|r| r.acked).sum();
    let delivered: u64 = results.iter().map(|r| r.delivered).sum();
    anyhow::ensure!(
        acked == delivered,
        "{target}: {acked} acknowledged but {delivered} delivered"
    );
    Ok(Report {
        target,
        seconds,
        acked,
        delivered,
        throughput: delivered as f64 / seconds,
        ack_us: Percentiles::of(
            results
                .iter_mut()
                .flat_map(|r| r.ack_us.drain(..))
                .collect(),
        ),
        delivery_us: Percentiles::of(
            results
                .iter_mut()
                .flat_map(|r| r.delivery_us.drain(..))
                .collect(),
        ),
        send_late_us: Percentiles::of(
            results
                .iter_mut()
                .flat_map(|r| r.send_late_us.drain(..))
                .collect(),
        ),
        rss_kib,
        cpu_cores,
        uploads_mb_s,
        commits,
    })
}

enum Pace {
    /// Closed loop: this many messages unacknowledged.
    Window(usize),
    /// Open loop: a message is due at each time received (from [`pacer`]); the channel
    /// closes at the deadline.
    Ticks(mpsc::UnboundedReceiver<Instant>),
}

/// One user's open-loop schedule.
struct Schedule {
    next: Instant,
    every: Duration,
    due: mpsc::UnboundedSender<Instant>,
}

/// Tells each user when a send of theirs is due, until `deadline`, from a thread of its own
/// sleeping with the OS's high-resolution timer. The runtime's timer rounds every deadline
/// up to its next millisecond tick, so users waking themselves sent ~0.9 ms late at the
/// median, and that lateness counted as latency of whichever target was measured.
fn pacer(mut schedules: Vec<Schedule>, deadline: Instant) {
    let mut order: BinaryHeap<Reverse<(Instant, usize)>> = schedules
        .iter()
        .enumerate()
        .map(|(i, s)| Reverse((s.next, i)))
        .collect();
    while let Some(Reverse((at, i))) = order.pop() {
        if at >= deadline {
            continue;
        }
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let s = &mut schedules[i];
        // A user that failed has dropped its receiver: nothing more for it.
        if s.due.send(at).is_ok() {
            s.next = at + s.every;
            order.push(Reverse((s.next, i)));
        }
    }
    // Dropping the senders tells every user that sending is over.
}

/// Sends to its peer at its `pace` until `deadline`; reads acks and deliveries; then waits
/// for the last acks and deliveries.
async fn user(
    mut conn: Conn,
    index: usize,
    conv: ConversationId,
    mut pace: Pace,
    changes_every: Option<usize>,
    start: Instant,
    deadline: Instant,
) -> anyhow::Result<UserResult> {
    let mut r = UserResult {
        acked: 0,
        delivered: 0,
        ack_us: Vec::new(),
        delivery_us: Vec::new(),
        send_late_us: Vec::new(),
    };
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    // Mixed load: this user's name and last acknowledged message, the message its reaction
    // is on (taken back next), and its changes in flight (acknowledged in order).
    let mut me: Option<String> = None;
    let mut own_last: Option<u64> = None;
    let mut reacted: Option<u64> = None;
    let mut changes: VecDeque<Instant> = VecDeque::new();
    let thumbs = Emoji::parse("👍")?;
    let mut n = 0_u64;
    let mut last_seq = 0_u64;
    let mut quiet_since: Option<Instant> = None;
    // Each send is stamped with its due time: now for the closed loop, the schedule's for
    // the open loop.
    let mut due = Vec::new();
    let mut burst = Vec::new();
    loop {
        let now = Instant::now();
        let sending = match &pace {
            Pace::Window(window) => {
                if now < deadline {
                    while sent_at.len() + changes.len() + due.len() < *window {
                        due.push(now);
                    }
                }
                now < deadline
            }
            Pace::Ticks(ticks) => {
                anyhow::ensure!(
                    sent_at.len() < OPEN_BACKLOG,
                    "user {index}: {} messages unacknowledged: the server fell behind",
                    sent_at.len()
                );
                !ticks.is_closed() || !ticks.is_empty()
            }
        };
        for at in due.drain(..) {
            n += 1;
            // The body carries the due time, for the receiver's latency.
            let body = format!("{}", at.duration_since(start).as_nanos());
            let change_due = changes_every.is_some_and(|every| n.is_multiple_of(every as u64));
            if let (true, Some(last)) = (change_due, own_last) {
                let frame = match reacted.take() {
                    Some(target) => ClientMsg::Unreact {
                        conversation_id: conv.clone(),
                        seq: target,
                        emoji: thumbs.clone(),
                    },
                    None if n.is_multiple_of(2) => {
                        reacted = Some(last);
                        ClientMsg::React {
                            conversation_id: conv.clone(),
                            seq: last,
                            emoji: thumbs.clone(),
                        }
                    }
                    None => ClientMsg::Edit {
                        conversation_id: conv.clone(),
                        seq: last,
                        body: MessageBody::parse(&body)?,
                    },
                };
                conn.feed(&frame).await?;
                changes.push_back(at);
                burst.push(at);
                continue;
            }
            let id = format!("b{index}-{n}");
            conn.feed(&ClientMsg::Send {
                conversation_id: conv.clone(),
                client_msg_id: ClientMsgId::parse(&id)?,
                body: Some(MessageBody::parse(&body)?),
                attachments: Vec::new(),
                reply_to: None,
            })
            .await?;
            sent_at.insert(id, at);
            burst.push(at);
        }
        // Everything due goes out with one write; each send is late by the time it left.
        if !burst.is_empty() {
            conn.flush().await?;
            for at in burst.drain(..) {
                r.send_late_us.push(at.elapsed().as_micros() as u64);
            }
        }
        if !sending
            && sent_at.is_empty()
            && changes.is_empty()
            && quiet_since.is_some_and(|q| q.elapsed() > Duration::from_millis(500))
        {
            return Ok(r);
        }
        let wait = Duration::from_millis(200);
        let next = match &mut pace {
            Pace::Ticks(ticks) if sending => tokio::select! {
                biased;
                at = ticks.recv() => {
                    // `None`: the pacer is done; the loop then only reads.
                    due.extend(at);
                    while let Ok(at) = ticks.try_recv() {
                        due.push(at);
                    }
                    continue;
                }
                next = conn.next_text(wait) => next,
            },
            _ => conn.next_text(wait).await,
        };
        let text = match next {
            Ok(f) => f,
            // The socket closed: a failure, not a quiet moment.
            Err(e) if e.downcast_ref::<Closed>().is_some() => return Err(e),
            Err(_) => {
                let quiet = *quiet_since.get_or_insert_with(Instant::now);
                if quiet.elapsed() > Duration::from_secs(10) {
                    anyhow::bail!(
                        "user {index}: nothing for 10 s with {} messages unacknowledged",
                        sent_at.len()
                    );
                }
                continue;
            }
        };
        quiet_since = None;
        // Acks and messages, nearly every frame, are glanced at; the rest decoded whole.
        let glance = Glance::of(&text)?;
        match (glance.kind.as_ref(), glance.message) {
            ("ack", Some(message)) => {
                let id = glance.client_msg_id.context("an ack without its id")?;
                if let Some(t) = sent_at.remove(id.as_ref()) {
                    r.acked += 1;
                    r.ack_us.push(t.elapsed().as_micros() as u64);
                }
                own_last = Some(own_last.map_or(message.seq, |l| l.max(message.seq)));
                if me.is_none() {
                    me = Some(message.sender.into_owned());
                }
                continue;
            }
            ("message", Some(message)) => {
                // Each user has one socket, and a message's ack takes its place on it.
                anyhow::ensure!(
                    me.as_deref() != Some(message.sender.as_ref()),
                    "user {index}: its own message {} came back as a message",
                    message.seq
                );
                last_seq = delivered(
                    &mut r,
                    index,
                    last_seq,
                    message.seq,
                    Some(&message.body),
                    start,
                )?;
                continue;
            }
            _ => {}
        }
        match ServerMsg::decode(&text)? {
            ServerMsg::Changed { change } if me.as_deref() == Some(change.actor.as_str()) => {
                let t = changes.pop_front().context("a change nobody made")?;
                r.acked += 1;
                r.ack_us.push(t.elapsed().as_micros() as u64);
            }
            ServerMsg::Changed { change } => {
                let body = match &change.what {
                    What::Edited { body, .. } => Some(body.as_str()),
                    _ => None,
                };
                last_seq = delivered(&mut r, index, last_seq, change.seq, body, start)?;
            }
            ServerMsg::Error { code, message, .. } => {
                anyhow::bail!("user {index}: error {code:?}: {message}")
            }
            _ => {}
        }
    }
}
