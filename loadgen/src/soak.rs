//! Soak: users in pairs and in a room send at a steady rate for a bounded time while their
//! sockets come and go (each connection lives a few seconds, then the user reconnects,
//! opens the direct conversation with their partner again, and resumes), marking what
//! they receive as read now and then, at the same moments as the server stores the read
//! positions that sending moved. Checks, throughout: each socket sees each conversation's
//! messages in `seq` order, each once, and no request is refused; at the end: every
//! acknowledged message stored exactly once, no gaps, unread counts consistent, every
//! read position at least where its user marked it, and no error or warning in the
//! server's log (a clean stop logs none). Samples the server's resident memory every
//! second.

use anyhow::Context;
use app::domain::{ClientMsgId, MessageBody};
use app::protocol::{ClientMsg, ConversationId, ServerMsg};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::check::{require, Acked, Findings};
use crate::client::Conn;
use crate::process::{free_port, ServerProcess, Stop};
use crate::world::populate;
use crate::Rng;

#[derive(Debug, Clone)]
pub struct Options {
    pub server_bin: PathBuf,
    pub users: usize,
    pub duration: Duration,
    /// Messages per second per user.
    pub rate: f64,
    pub seed: u64,
}

#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub seconds: f64,
    pub acked: usize,
    pub delivered: u64,
    pub connections: u64,
    pub rss_start_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_end_kib: u64,
    pub findings: Findings,
    pub log_problems: Vec<String>,
}

#[derive(Default)]
struct Shared {
    acked: Mutex<Vec<Acked>>,
    /// Per user: the furthest each conversation was marked read.
    marked: Mutex<HashMap<(usize, ConversationId), u64>>,
    problems: Mutex<Vec<String>>,
    delivered: AtomicU64,
    connections: AtomicU64,
}

/// Most messages one user has in flight (sent, not yet acknowledged).
const WINDOW: usize = 4;

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let addr = free_port()?;
    let mut server = ServerProcess::new(&opts.server_bin, addr, &dir.path().join("data"))?;
    server.start().await?;
    let mut rng = Rng::new(opts.seed);
    let tag = opts.seed % 100_000;

    let world = populate(addr, &format!("soak{tag}"), opts.users, "soak room").await?;

    let rss_start = server.rss_kib().unwrap_or(0);
    let started = Instant::now();
    let deadline = started + opts.duration;
    let shared = Arc::new(Shared::default());
    let mut tasks = Vec::new();
    for (i, ((name, token), convs)) in world
        .users
        .iter()
        .cloned()
        .zip(world.routes.clone())
        .enumerate()
    {
        let shared = shared.clone();
        let seed = rng.next_u64();
        let period = Duration::from_secs_f64(1.0 / opts.rate.max(0.01));
        // Users are paired 0-1, 2-3, …; an odd last one has no partner.
        let partner = world.users.get(i ^ 1).map(|(n, _)| n.clone());
        let me = User {
            index: i,
            name,
            token,
            partner,
        };
        tasks.push(tokio::spawn(async move {
            user(addr, me, convs, shared, seed, period, deadline).await
        }));
    }
    let mut rss_peak = rss_start;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_peak = rss_peak.max(server.rss_kib().unwrap_or(0));
    }
    for t in tasks {
        t.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss_end = server.rss_kib().unwrap_or(0);
    let acked = shared.acked.lock().expect("lock").clone();
    let marked = shared.marked.lock().expect("lock").clone();
    let mut findings = world.check(addr, &acked, &marked).await?;
    findings
        .problems
        .extend(shared.problems.lock().expect("lock").iter().cloned());
    server.stop(Stop::Term).await?;
    let log_problems: Vec<String> = strip_ansi(&server.log())
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .map(str::to_owned)
        .collect();
    require(&findings).with_context(|| {
        format!(
            "soak check; the server logged:\n{}",
            log_problems
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    anyhow::ensure!(
        log_problems.is_empty(),
        "the server logged problems:\n{}",
        log_problems.join("\n")
    );
    Ok(Report {
        seed: opts.seed,
        seconds,
        acked: acked.len(),
        delivered: shared.delivered.load(Ordering::SeqCst),
        connections: shared.connections.load(Ordering::SeqCst),
        rss_start_kib: rss_start,
        rss_peak_kib: rss_peak,
        rss_end_kib: rss_end,
        findings,
        log_problems,
    })
}

/// Who a soak user is.
struct User {
    index: usize,
    name: String,
    token: String,
    partner: Option<String>,
}

/// One user: connects, opens the conversation with their partner, sends at its rate (at
/// most [`WINDOW`] unacknowledged), reads what arrives and marks some of it read, and
/// after a few seconds drops the connection and comes back; unacknowledged messages are
/// sent again with the same ids.
async fn user(
    addr: std::net::SocketAddr,
    me: User,
    convs: Vec<ConversationId>,
    shared: Arc<Shared>,
    seed: u64,
    period: Duration,
    deadline: Instant,
) -> anyhow::Result<()> {
    let User {
        index,
        name,
        token,
        partner,
    } = me;
    let mut rng = Rng::new(seed);
    let mut n = 0_u64;
    // Sent and not acknowledged: id -> (conversation, body).
    let mut in_flight: BTreeMap<String, (ConversationId, String)> = BTreeMap::new();
    while Instant::now() < deadline || !in_flight.is_empty() {
        if Instant::now() > deadline + Duration::from_secs(30) {
            anyhow::bail!("{name}: {} messages never acknowledged", in_flight.len());
        }
        let mut conn = Conn::open_live(addr, &token)
            .await
            .with_context(|| format!("{name} connects"))?;
        shared.connections.fetch_add(1, Ordering::SeqCst);
        if let Some(partner) = &partner {
            let username = app::domain::Username::parse(partner)?;
            conn.send(&ClientMsg::OpenDirect { username }).await?;
        }
        for (id, (conv, body)) in &in_flight {
            conn.send(&send_frame(conv, id, body)?).await?;
        }
        let session_end = Instant::now() + Duration::from_millis(rng.range(2_000, 8_000));
        // What this socket has seen of each conversation.
        let mut last_seen: HashMap<ConversationId, u64> = HashMap::new();
        let mut ticks = tokio::time::interval(period);
        // Sent when the session is over: the server answers frames in order, so once this
        // is answered every earlier request has been, and its answer (an error included)
        // was read here.
        let mut barrier_sent = false;
        loop {
            let now = Instant::now();
            if !barrier_sent && (now >= session_end || (now >= deadline && in_flight.is_empty())) {
                conn.send(&ClientMsg::ListConversations { limit: Some(1) })
                    .await?;
                barrier_sent = true;
            }
            tokio::select! {
                _ = ticks.tick() => {
                    if !barrier_sent && now < deadline && in_flight.len() < WINDOW {
                        n += 1;
                        let id = format!("k{index}-{n}");
                        let conv = convs[rng.range(0, convs.len() as u64) as usize].clone();
                        let body = format!("{name} says {n}");
                        conn.send(&send_frame(&conv, &id, &body)?).await?;
                        in_flight.insert(id, (conv, body));
                    }
                }
                frame = conn.next(Duration::from_secs(10)) => match frame? {
                    ServerMsg::Ack { client_msg_id, message }
                        if in_flight.remove(&client_msg_id).is_some() =>
                    {
                        shared.acked.lock().expect("lock").push(Acked {
                            conversation: message.conversation_id,
                            seq: message.seq,
                            client_msg_id,
                        });
                    }
                    ServerMsg::Message { message } => {
                        shared.delivered.fetch_add(1, Ordering::Relaxed);
                        let last = last_seen.entry(message.conversation_id.clone()).or_default();
                        if message.seq <= *last {
                            shared.problems.lock().expect("lock").push(format!(
                                "{name}: {} seq {} after {} on one socket (duplicate or reordered)",
                                message.conversation_id, message.seq, last
                            ));
                        }
                        *last = message.seq;
                        // Not after the barrier: its answer must follow every request.
                        if !barrier_sent && rng.range(0, 4) == 0 {
                            let (conversation_id, seq) = (message.conversation_id, message.seq);
                            {
                                let mut marked = shared.marked.lock().expect("lock");
                                let furthest =
                                    marked.entry((index, conversation_id.clone())).or_default();
                                *furthest = (*furthest).max(seq);
                            }
                            conn.send(&ClientMsg::MarkRead { conversation_id, seq }).await?;
                        }
                    }
                    ServerMsg::Conversations { .. } if barrier_sent => break,
                    ServerMsg::Conversation { conversation } if !convs.contains(&conversation.id) => {
                        shared.problems.lock().expect("lock").push(format!(
                            "{name}: opening the conversation with {partner:?} gave {}",
                            conversation.id
                        ));
                    }
                    ServerMsg::Error { code, message, client_msg_id } => {
                        shared.problems.lock().expect("lock").push(format!(
                            "{name}: error {code:?} {message} ({client_msg_id:?})"
                        ));
                        if let Some(id) = client_msg_id {
                            in_flight.remove(&id);
                        }
                    }
                    _ => {}
                },
            }
        }
        conn.close().await;
    }
    Ok(())
}

/// The log without terminal colour codes (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn send_frame(conv: &ConversationId, id: &str, body: &str) -> anyhow::Result<ClientMsg> {
    Ok(ClientMsg::Send {
        conversation_id: conv.clone(),
        client_msg_id: ClientMsgId::parse(id)?,
        body: Some(MessageBody::parse(body)?),
        attachments: Vec::new(),
        reply_to: None,
    })
}
