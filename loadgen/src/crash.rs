//! Crash consistency: senders write steadily while the server is killed (SIGKILL, or SIGTERM
//! with `--stop term`) at random moments and restarted on the same data directory. After
//! every restart, and at the end, every message the server acknowledged must be stored
//! exactly once at its acknowledged `seq`, `seq`s must have no gaps, and unread counts must
//! agree with the histories.

use anyhow::Context;
use app::domain::{ClientMsgId, MessageBody};
use app::protocol::{ClientMsg, ConversationId, ServerMsg};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::check::{check, require, Acked, Findings};
use crate::client::{Closed, Conn};
use crate::process::{free_port, ServerProcess, Stop};
use crate::world::populate;
use crate::Rng;

#[derive(Debug, Clone)]
pub struct Options {
    pub server_bin: PathBuf,
    pub senders: usize,
    pub kills: usize,
    pub stop: Stop,
    pub seed: u64,
    /// The server runs for a random time in this range (ms) before each kill.
    pub up_ms: (u64, u64),
}

/// One kill and restart.
#[derive(Debug, Clone)]
pub struct KillReport {
    pub kill: usize,
    pub up_ms: u64,
    /// Acknowledged before the kill (all senders, since the start).
    pub acknowledged: usize,
    pub recovered: usize,
    pub lost: usize,
    pub restart_ms: u128,
}

pub struct Report {
    pub seed: u64,
    pub kills: Vec<KillReport>,
    pub last: Findings,
    /// Sends the server refused with an error (retried by nobody: they were never acked).
    pub refused: u64,
    /// Open sockets that the server closed with 1001 "going away", and those that just broke.
    pub clean_closes: u64,
    pub abrupt_closes: u64,
}

/// What the senders share: what was acknowledged, and when to stop.
#[derive(Default)]
pub(crate) struct Shared {
    pub acked: Mutex<Vec<Acked>>,
    pub stop: AtomicBool,
    pub refused: AtomicU64,
    /// Why sends were refused: the server's words, and how often.
    pub refusals: Mutex<std::collections::BTreeMap<String, u64>>,
    pub clean_closes: AtomicU64,
    pub abrupt_closes: AtomicU64,
}

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let addr = free_port()?;
    let mut server = ServerProcess::new(&opts.server_bin, addr, &dir.path().join("data"))?;
    server.start().await?;
    let mut rng = Rng::new(opts.seed);
    let tag = opts.seed % 100_000;

    let world = populate(addr, &format!("crash{tag}"), opts.senders, "crash room").await?;

    let shared = Arc::new(Shared::default());
    let tasks = spawn_senders(addr, &world, &shared, |_| rng.next_u64());

    let mut kills = Vec::new();
    for kill in 1..=opts.kills {
        let up_ms = rng.range(opts.up_ms.0, opts.up_ms.1);
        tokio::time::sleep(Duration::from_millis(up_ms)).await;
        server.stop(opts.stop).await?;
        let snapshot = shared.acked.lock().expect("lock").clone();
        let restart = server.start().await?;
        let f = check(addr, &world.readers, &snapshot).await?;
        kills.push(KillReport {
            kill,
            up_ms,
            acknowledged: snapshot.len(),
            recovered: f.recovered,
            lost: f.lost.len(),
            restart_ms: restart.as_millis(),
        });
        require(&f).with_context(|| format!("after kill {kill}"))?;
    }
    // Let the senders settle on the last restart, then stop them and check everything.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shared.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await??;
    }
    let acked = shared.acked.lock().expect("lock").clone();
    let last = world.check(addr, &acked, &Default::default()).await?;
    server.stop(Stop::Term).await?;
    require(&last).context("final check")?;
    let abrupt = shared.abrupt_closes.load(Ordering::SeqCst);
    anyhow::ensure!(
        opts.stop == Stop::Kill || abrupt == 0,
        "graceful shutdown broke {abrupt} sockets without a close frame"
    );
    Ok(Report {
        seed: opts.seed,
        kills,
        last,
        refused: shared.refused.load(Ordering::SeqCst),
        clean_closes: shared.clean_closes.load(Ordering::SeqCst),
        abrupt_closes: shared.abrupt_closes.load(Ordering::SeqCst),
    })
}

/// Starts a [`sender`] for every user of `world`, each seeded by `seed(its index)`.
pub(crate) fn spawn_senders(
    addr: std::net::SocketAddr,
    world: &crate::world::World,
    shared: &Arc<Shared>,
    mut seed: impl FnMut(usize) -> u64,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let mut tasks = Vec::new();
    for (i, ((name, token), convs)) in world
        .users
        .iter()
        .cloned()
        .zip(world.routes.clone())
        .enumerate()
    {
        let shared = shared.clone();
        let seed = seed(i);
        tasks.push(tokio::spawn(async move {
            sender(addr, i, name, token, convs, shared, seed).await
        }));
    }
    tasks
}

/// How long a sender told to stop may take to have its last message acknowledged (it may
/// be reconnecting then): what is stored is then what was acknowledged.
const FINISH_WITHIN: Duration = Duration::from_secs(30);

/// The answer to a sender's message on its socket.
enum Reply {
    Acked(u64),
    Refused(String),
    /// It came as a `message`: its ack takes its place on the sending socket, always.
    Echoed(u64),
}

/// Sends one message at a time, waiting for its ack; reconnects whenever the socket dies and
/// re-sends the unacknowledged message with the same `client_msg_id`. Told to stop, it
/// stops once its last message is answered.
pub(crate) async fn sender(
    addr: std::net::SocketAddr,
    index: usize,
    name: String,
    token: String,
    convs: Vec<ConversationId>,
    shared: Arc<Shared>,
    seed: u64,
) -> anyhow::Result<()> {
    let mut rng = Rng::new(seed);
    let mut n = 0_u64;
    let mut in_flight: Option<(ConversationId, String)> = None;
    let mut stopping: Option<std::time::Instant> = None;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            let Some((conv, id)) = &in_flight else {
                return Ok(());
            };
            if stopping
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
                > FINISH_WITHIN
            {
                anyhow::bail!(
                    "{name}: {id} in {conv} still unanswered {FINISH_WITHIN:?} after the stop"
                );
            }
        }
        let mut conn = match Conn::open(addr, &token).await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            }
        };
        loop {
            if shared.stop.load(Ordering::SeqCst) && in_flight.is_none() {
                conn.close().await;
                return Ok(());
            }
            let (conv, id) = in_flight.clone().unwrap_or_else(|| {
                n += 1;
                let conv = convs[rng.range(0, convs.len() as u64) as usize].clone();
                (conv, format!("s{index}-{n}"))
            });
            in_flight = Some((conv.clone(), id.clone()));
            let frame = ClientMsg::Send {
                conversation_id: conv.clone(),
                client_msg_id: ClientMsgId::parse(&id)?,
                body: Some(MessageBody::parse(&format!("{name} #{n}"))?),
                attachments: Vec::new(),
                reply_to: None,
            };
            if conn.send(&frame).await.is_err() {
                break;
            }
            let want = id.clone();
            let reply = conn
                .until(Duration::from_secs(5), move |m| match m {
                    ServerMsg::Ack {
                        client_msg_id,
                        message,
                    } if *client_msg_id == want => Some(Reply::Acked(message.seq)),
                    ServerMsg::Error {
                        client_msg_id: Some(c),
                        code,
                        message,
                    } if *c == want => Some(Reply::Refused(format!("{code:?}: {message}"))),
                    ServerMsg::Message { message } if message.client_msg_id == want => {
                        Some(Reply::Echoed(message.seq))
                    }
                    _ => None,
                })
                .await;
            match reply {
                Ok(Reply::Echoed(seq)) => {
                    anyhow::bail!("{name}: {id} came back to its socket as a message at {seq}")
                }
                Ok(Reply::Acked(seq)) => {
                    shared.acked.lock().expect("lock").push(Acked {
                        conversation: conv,
                        seq,
                        client_msg_id: id,
                    });
                    in_flight = None;
                }
                Ok(Reply::Refused(why)) => {
                    shared.refused.fetch_add(1, Ordering::SeqCst);
                    *shared
                        .refusals
                        .lock()
                        .expect("lock")
                        .entry(why)
                        .or_default() += 1;
                    in_flight = None;
                }
                // The server went away: reconnect and send the same message again.
                Err(e) => {
                    let counter = match e.downcast_ref::<Closed>() {
                        Some(Closed(Some(1001))) => &shared.clean_closes,
                        _ => &shared.abrupt_closes,
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
