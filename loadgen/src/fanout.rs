//! Room fan-out: one room of `members` people, every one connected with a socket of their
//! own, and one of them posting — at a fixed rate, or as fast as the room takes it (a window
//! of posts not yet received by everyone). Measures deliveries per second, how long after a
//! post every member had it (p50/p99 over posts) and each delivery's latency, the target's
//! CPU and memory; checks that every member received every acknowledged post once, in `seq`
//! order. The same run then does the same against the plain relay (a process of its own, the
//! same frames, no storage), so each figure has its baseline beside it.
//!
//! The server's accounts and the room's membership are made before anything is measured
//! (sign-ups and `join_room`s on short-lived sockets), then every member connects and
//! resumes; only then does posting start.

use anyhow::{bail, ensure, Context};
use app::domain::{ClientMsgId, MessageBody, RoomName};
use app::protocol::{ClientMsg, ConversationId, ServerMsg};
use futures::future::join_all;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

use crate::bench::Percentiles;
use crate::client::{Closed, Conn, Glance};
use crate::http::sign_up;
use crate::in_batches;
use crate::process::{cpu_seconds, free_port, rss_kib, ServerProcess, Stop};
use crate::relay::RelayProcess;
use crate::world::ask_conversation;

/// Most posts one run makes (the per-post tally is allocated up front).
const MAX_POSTS: usize = 1_000_000;
/// Sockets opened (and sign-ups or joins made) at once while setting up.
const OPENING: usize = 64;
/// How long the run waits for the last acks and deliveries once posting stopped.
const DRAIN: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// This many posts a second.
    Rate(f64),
    /// Saturation: this many posts not yet received by every member.
    Window(usize),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub server_bin: PathBuf,
    /// People in the room, the poster included.
    pub members: usize,
    pub pace: Pace,
    pub duration: Duration,
}

/// One target's run.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    /// Seconds to connect (and resume) every member's socket.
    pub connect_seconds: f64,
    pub posts: u64,
    pub deliveries: u64,
    /// From the first post until the last member had the last one.
    pub seconds: f64,
    pub deliveries_per_second: f64,
    /// Per post: from its send until every member had it.
    pub all_reached_us: Percentiles,
    /// Per delivery: from the post's send until that member had it.
    pub delivery_us: Percentiles,
    /// The target's CPU time over `seconds`, in cores (2.0 = both cores all the time).
    pub cpu_cores: f64,
    /// The load generator's own, over the same time.
    pub loadgen_cpu_cores: f64,
    pub rss_kib: u64,
}

/// Runs the server, then the relay, with the same room and load.
pub async fn run(opts: Options) -> anyhow::Result<[Report; 2]> {
    ensure!(opts.members >= 2, "a room of at least 2 people");
    let dir = tempfile::tempdir()?;
    let addr = free_port()?;
    let mut server = ServerProcess::new(&opts.server_bin, addr, &dir.path().join("data"))?;
    server.start().await?;
    let (tokens, room) = populate(addr, opts.members).await?;
    let pid = server.pid().context("the server has no pid")?;
    let on_server = measure("server", addr, pid, &tokens, &room, false, &opts).await;
    server.stop(Stop::Term).await?;
    let on_server = on_server.with_context(|| format!("see {}", dir.path().display()))?;

    let relay = RelayProcess::start(None).await?;
    let pid = relay.pid().context("the relay has no pid")?;
    let names: Vec<String> = (0..opts.members).map(|i| format!("f{i}")).collect();
    let room = ConversationId("fanout".into());
    let on_relay = measure("relay", relay.addr, pid, &names, &room, true, &opts).await?;
    Ok([on_server, on_relay])
}

/// Signs up `members` people (`fan{i}`), the first creates a public room and the others
/// join it; returns their session tokens and the room.
async fn populate(
    addr: SocketAddr,
    members: usize,
) -> anyhow::Result<(Vec<String>, ConversationId)> {
    let tokens = in_batches(0..members, OPENING, |i| async move {
        sign_up(addr, &format!("fan{i}")).await
    })
    .await?;
    let room = ask_conversation(
        addr,
        &tokens[0],
        ClientMsg::CreateRoom {
            name: RoomName::parse("fan-out")?,
            private: false,
        },
    )
    .await?;
    in_batches(&tokens[1..], OPENING, |token| {
        let join = ClientMsg::JoinRoom {
            conversation_id: room.clone(),
        };
        async move {
            ask_conversation(addr, token, join)
                .await
                .context("join the room")
        }
    })
    .await?;
    Ok((tokens, room))
}

/// Which members have had each post: the member that completes a post tells the poster.
struct Tally {
    start: Instant,
    receivers: u32,
    counts: Vec<AtomicU32>,
    /// (post, microseconds from its send until the last member had it).
    complete: mpsc::UnboundedSender<(usize, u64)>,
}

/// What one member received: each post's `seq` and latency, in arrival order.
struct Received {
    seqs: Vec<u64>,
    latency_us: Vec<u64>,
}

/// A post's body: its number and its send time (ns since the run's start).
fn body(post: usize, sent_ns: u64) -> String {
    format!("{post}:{sent_ns}")
}

fn parse_body(body: &str) -> Option<(usize, u64)> {
    let (post, sent) = body.split_once(':')?;
    Some((post.parse().ok()?, sent.parse().ok()?))
}

/// Connects every member, then posts from the first for `opts.duration` and waits until
/// every acknowledged post reached everyone.
async fn measure(
    target: &'static str,
    addr: SocketAddr,
    pid: u32,
    tokens: &[String],
    room: &ConversationId,
    join: bool,
    opts: &Options,
) -> anyhow::Result<Report> {
    let opening = Instant::now();
    let conns = in_batches(tokens, OPENING, |token| async move {
        let mut conn = Conn::open_live(addr, token).await?;
        if join {
            // The relay learns the room's members from their sockets; its `pong` says
            // the join is done.
            conn.send(&ClientMsg::JoinRoom {
                conversation_id: room.clone(),
            })
            .await?;
            conn.ask(ClientMsg::Ping { nonce: 0 }, |m| {
                matches!(m, ServerMsg::Pong { .. }).then_some(())
            })
            .await?;
        }
        anyhow::Ok(conn)
    })
    .await
    .context("connect a member")?;
    let connect_seconds = opening.elapsed().as_secs_f64();
    // Whatever connecting set off (presence, above all) settles before posting starts.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (complete, mut completed) = mpsc::unbounded_channel();
    let tally = Arc::new(Tally {
        start: Instant::now(),
        receivers: (tokens.len() - 1) as u32,
        counts: (0..MAX_POSTS).map(|_| AtomicU32::new(0)).collect(),
        complete,
    });
    let (total_tx, total) = watch::channel(None);
    let mut conns = conns.into_iter();
    let mut poster = conns.next().context("no poster")?;
    let receivers: Vec<_> = conns
        .enumerate()
        .map(|(i, conn)| tokio::spawn(receive(conn, i + 1, tally.clone(), total.clone())))
        .collect();

    let me = std::process::id();
    let cpu_before = cpu_seconds(pid).unwrap_or(0.0);
    let own_before = cpu_seconds(me).unwrap_or(0.0);
    let start = tally.start;
    let deadline = start + opts.duration;
    let mut acked: Vec<u64> = Vec::new();
    let mut all_reached_us: Vec<u64> = Vec::new();
    let mut posts = 0_usize;
    let mut last_complete = start;
    loop {
        let now = Instant::now();
        let posting = now < deadline && posts < MAX_POSTS;
        if posting {
            let due = match opts.pace {
                Pace::Rate(per_second) => {
                    ((now - start).as_secs_f64() * per_second).floor() as usize + 1
                }
                Pace::Window(window) => all_reached_us.len() + window.max(1),
            };
            let due = due.min(MAX_POSTS);
            if posts < due {
                while posts < due {
                    let sent_ns = start.elapsed().as_nanos() as u64;
                    poster
                        .feed(&ClientMsg::Send {
                            conversation_id: room.clone(),
                            client_msg_id: ClientMsgId::parse(&format!("f{posts}"))?,
                            body: Some(MessageBody::parse(&body(posts, sent_ns))?),
                            attachments: Vec::new(),
                            reply_to: None,
                        })
                        .await?;
                    posts += 1;
                }
                poster.flush().await?;
            }
        } else {
            if total_tx.borrow().is_none() && acked.len() == posts {
                total_tx.send_replace(Some(posts as u64));
            }
            if all_reached_us.len() == posts && acked.len() == posts {
                break;
            }
            ensure!(
                now < deadline + DRAIN,
                "{target}: {} of {posts} posts acknowledged and {} reached everyone {} s after posting stopped",
                acked.len(),
                all_reached_us.len(),
                DRAIN.as_secs()
            );
        }
        // Wait for what comes first: a post reaching everyone, the poster's socket, or the
        // next post's due time.
        let wake = match opts.pace {
            Pace::Rate(per_second) if posting => {
                start + Duration::from_secs_f64(posts as f64 / per_second)
            }
            _ => now + Duration::from_millis(100),
        };
        tokio::select! {
            done = completed.recv() => {
                let (_, us) = done.context("the tally closed")?;
                all_reached_us.push(us);
                last_complete = Instant::now();
                while let Ok((_, us)) = completed.try_recv() {
                    all_reached_us.push(us);
                }
            }
            text = poster.next_text(Duration::from_secs(3600)) => {
                let text = text?;
                let frame = Glance::of(&text)?;
                match frame.kind.as_ref() {
                    "ack" => acked.push(frame.message.context("an ack without its message")?.seq),
                    "error" | "lagging" => bail!("{target}: the poster was told {text}"),
                    _ => {}
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    let seconds = last_complete.duration_since(start).as_secs_f64().max(1e-3);
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu_before;
    let own = cpu_seconds(me).unwrap_or(0.0) - own_before;
    let rss_kib = rss_kib(pid).unwrap_or(0);

    acked.sort_unstable();
    let mut deliveries = 0_u64;
    let mut delivery_us = Vec::new();
    for (i, r) in join_all(receivers).await.into_iter().enumerate() {
        let r = r??;
        ensure!(
            r.seqs == acked,
            "{target}: member {} received {} posts, {} acknowledged (or out of order)",
            i + 1,
            r.seqs.len(),
            acked.len()
        );
        deliveries += r.seqs.len() as u64;
        delivery_us.extend(r.latency_us);
    }
    poster.close().await;
    Ok(Report {
        target,
        connect_seconds,
        posts: posts as u64,
        deliveries,
        seconds,
        deliveries_per_second: deliveries as f64 / seconds,
        all_reached_us: Percentiles::of(all_reached_us),
        delivery_us: Percentiles::of(delivery_us),
        cpu_cores: cpu / seconds,
        loadgen_cpu_cores: own / seconds,
        rss_kib,
    })
}

/// Reads one member's socket until it has as many posts as were acknowledged (once that
/// number is known); each post must come after the one before.
async fn receive(
    mut conn: Conn,
    index: usize,
    tally: Arc<Tally>,
    mut total: watch::Receiver<Option<u64>>,
) -> anyhow::Result<Received> {
    let mut r = Received {
        seqs: Vec::new(),
        latency_us: Vec::new(),
    };
    let mut told_total_at: Option<Instant> = None;
    loop {
        let known = *total.borrow_and_update();
        if let Some(total) = known {
            if r.seqs.len() as u64 >= total {
                conn.close().await;
                return Ok(r);
            }
            let since = *told_total_at.get_or_insert_with(Instant::now);
            ensure!(
                since.elapsed() < DRAIN,
                "member {index}: {} of {total} posts",
                r.seqs.len()
            );
        }
        let text = tokio::select! {
            _ = total.changed() => continue,
            text = conn.next_text(Duration::from_secs(1)) => match text {
                Ok(text) => text,
                Err(e) if e.downcast_ref::<Closed>().is_some() => {
                    return Err(e.context(format!("member {index}")))
                }
                // Quiet: look at the total again.
                Err(_) => continue,
            },
        };
        let frame = Glance::of(&text)?;
        match frame.kind.as_ref() {
            "message" => {}
            "lagging" | "error" => bail!("member {index} was told {text}"),
            _ => continue,
        }
        let posted = frame
            .message
            .context("a message frame without its message")?;
        let (post, sent_ns) = parse_body(&posted.body).context("a post with a foreign body")?;
        if let Some(&last) = r.seqs.last() {
            ensure!(
                posted.seq > last,
                "member {index}: seq {} after {last}",
                posted.seq
            );
        }
        let now_ns = tally.start.elapsed().as_nanos() as u64;
        let latency_us = now_ns.saturating_sub(sent_ns) / 1000;
        r.seqs.push(posted.seq);
        r.latency_us.push(latency_us);
        let count = tally
            .counts
            .get(post)
            .context("a post number out of range")?
            .fetch_add(1, Ordering::AcqRel)
            + 1;
        if count == tally.receivers {
            let _ = tally.complete.send((post, latency_us));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_carries_its_post_and_send_time() {
        assert_eq!(parse_body(&body(17, 123_456_789)), Some((17, 123_456_789)));
        assert_eq!(parse_body("hello"), None);
        assert_eq!(parse_body("1:x"), None);
    }
}
