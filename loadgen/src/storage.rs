//! The storage benchmark: the queries users feel, on a large database.
//!
//! `generate` builds the database through the real protocol: `users` users, every pair of
//! them in a direct conversation and the rest of `conversations` as two-person rooms, so
//! that each user has about `2 * conversations / users` conversations; then `messages`
//! messages, half of them in ten big rooms (deep scroll-back) and half spread over the
//! rest. The layout (tokens, conversations, sizes) is kept beside the data directory.
//!
//! The messages are everyday sentences, 40 % Chinese, 40 % English and 20 % Chinese with
//! English names in them (see [`body`]).
//!
//! `measure` starts the server on it (start-up time: spawn until `/healthz` answers), waits
//! until the search index has every message, then times, one request at a time over a
//! WebSocket, the newest history page of random conversations, a page deep in a big room's
//! scroll-back, the recent-conversations list of random users, and message searches of
//! random users for a two-character Chinese word and for a common English word; and checks
//! every answer.

use anyhow::{ensure, Context};
use app::domain::{ClientMsgId, MessageBody, RoomName, Username};
use app::protocol::{ClientMsg, ConversationId, ServerMsg};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bench::Percentiles;
use crate::client::{Closed, Conn};
use crate::http::{body_of, sign_up};
use crate::process::{free_port, ServerProcess, Stop};
use crate::Rng;

/// Rooms that get half of all messages.
const BIG_ROOMS: usize = 10;
/// Messages each sender keeps in flight while generating.
const WINDOW: usize = 64;
/// Messages per history page, as the app asks.
const PAGE: u32 = 50;
/// What the search benchmark looks for: a two-character Chinese word (in 1 of 10
/// messages) and a common English word (in 1 of 4).
pub const SEARCHES: [&str; 2] = ["数据", "the"];
/// The least time between two searches of one user (the server allows 5 a second).
const SEARCH_SPACING: Duration = Duration::from_millis(200);

const CHINESE: [&str; 8] = [
    "我们的数据库今天很慢，大家先别跑大查询",
    "明天下午三点开会讨论新需求",
    "服务器的日志里有很多报错，我在查",
    "这个接口的性能还需要优化一下",
    "周报已经发到群里了，请大家看看",
    "新版本的数据迁移脚本写好了",
    "谁有空帮忙看一下测试用例？",
    "缓存命中率比上周高了不少",
];
const ENGLISH: [&str; 8] = [
    "the build is green again",
    "can someone review the pull request before lunch",
    "deploying the new release this afternoon",
    "the dashboard shows higher latency today",
    "meeting notes are in the wiki",
    "I will look at the backup job tomorrow",
    "thanks, that fixed the login issue",
    "invoices for last month have arrived",
];
const MIXED: [&str; 4] = [
    "WebSocket连接断了，重连以后正常",
    "Docker镜像已经推到registry了",
    "API文档更新了，请看GitHub上的说明",
    "Redis的内存又满了，CI也挂了",
];

/// The text of the `n`th message a user sends: 4 of 10 Chinese, 4 English, 2 mixed.
pub fn body(n: u64) -> String {
    let k = (n / 10) as usize;
    let text = match n % 10 {
        0..=3 => CHINESE[k % CHINESE.len()],
        4..=7 => ENGLISH[k % ENGLISH.len()],
        _ => MIXED[k % MIXED.len()],
    };
    format!("{text} ({n})")
}

#[derive(Debug, Clone)]
pub struct Generate {
    pub server_bin: PathBuf,
    pub dir: PathBuf,
    pub users: usize,
    pub conversations: usize,
    pub messages: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Layout {
    /// (username, token).
    users: Vec<(String, String)>,
    /// Each conversation: its id, the index of a member, and how many messages it holds.
    conversations: Vec<(String, usize, u64)>,
    /// Indexes into `conversations` of the big rooms.
    big: Vec<usize>,
    messages: u64,
}

fn layout_path(dir: &Path) -> PathBuf {
    dir.join("layout.json")
}

fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

pub struct Generated {
    pub conversations: usize,
    pub messages: u64,
    pub seconds: f64,
}

/// Builds the database in `opts.dir` (which must not hold one yet).
pub async fn generate(opts: Generate) -> anyhow::Result<Generated> {
    ensure!(
        !layout_path(&opts.dir).exists(),
        "{} already holds a generated database",
        opts.dir.display()
    );
    ensure!(opts.users >= 2, "at least two users");
    std::fs::create_dir_all(&opts.dir)?;
    let started = Instant::now();
    let addr = free_port()?;
    let mut server = ServerProcess::new(&opts.server_bin, addr, &data_dir(&opts.dir))?;
    // A few users make all the rooms.
    server.set_env("CHAT_ROOMS_PER_HOUR", "1000000");
    server.set_env("CHAT_ROOMS_OWNED", "1000000");
    server.start().await?;
    let mut users = Vec::new();
    for i in 0..opts.users {
        let name = format!("store{i}");
        users.push((name.clone(), sign_up(addr, &name).await?));
    }
    let mut conns = Vec::new();
    for (_, token) in &users {
        conns.push(Conn::open(addr, token).await?);
    }
    // Conversations as (id, the two members).
    let mut convs: Vec<(String, usize, usize)> = Vec::new();
    #[allow(clippy::needless_range_loop)] // `a` and `b` index two lists
    'pairs: for a in 0..opts.users {
        for b in a + 1..opts.users {
            if convs.len() >= opts.conversations {
                break 'pairs;
            }
            let id = conns[a]
                .ask(
                    ClientMsg::OpenDirect {
                        username: Username::parse(&users[b].0)?,
                    },
                    conversation_reply,
                )
                .await??;
            convs.push((id, a, b));
        }
    }
    let mut k = 0;
    while convs.len() < opts.conversations {
        let a = k % opts.users;
        let b = (a + 1 + (k / opts.users) % (opts.users - 1)) % opts.users;
        let id = conns[a]
            .ask(
                ClientMsg::CreateRoom {
                    name: RoomName::parse(&format!("Room {k}"))?,
                    private: false,
                },
                conversation_reply,
            )
            .await??;
        conns[b]
            .ask(
                ClientMsg::JoinRoom {
                    conversation_id: ConversationId(id.clone()),
                },
                conversation_reply,
            )
            .await??;
        convs.push((id, a, b));
        k += 1;
    }
    println!(
        "{} users, {} conversations in {:.0} s",
        users.len(),
        convs.len(),
        started.elapsed().as_secs_f64()
    );
    // The last `BIG_ROOMS` conversations (rooms) take half of the messages.
    let big: Vec<usize> = (convs.len().saturating_sub(BIG_ROOMS)..convs.len()).collect();
    let small = convs.len() - big.len();
    let half = opts.messages / 2;
    let mut counts = vec![0_u64; convs.len()];
    for (i, c) in counts.iter_mut().enumerate() {
        *c = if i < small {
            half / small as u64 + u64::from((i as u64) < half % small as u64)
        } else {
            let rest = opts.messages - half;
            rest / big.len() as u64 + u64::from(((i - small) as u64) < rest % big.len() as u64)
        };
    }
    // Each conversation's messages alternate between its two members; each user sends
    // its share round-robin over its conversations.
    let mut plans: Vec<Vec<(ConversationId, u64)>> = vec![Vec::new(); users.len()];
    for ((id, a, b), &n) in convs.iter().zip(&counts) {
        plans[*a].push((ConversationId(id.clone()), n.div_ceil(2)));
        plans[*b].push((ConversationId(id.clone()), n / 2));
    }
    let sending = Instant::now();
    let mut tasks = Vec::new();
    for (i, (conn, plan)) in conns.into_iter().zip(plans).enumerate() {
        tasks.push(tokio::spawn(send_plan(conn, i, plan)));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await??;
    }
    ensure!(
        sent == opts.messages,
        "{sent} acknowledged of {}",
        opts.messages
    );
    let send_seconds = sending.elapsed().as_secs_f64();
    println!(
        "{sent} messages in {send_seconds:.0} s ({:.0}/s)",
        sent as f64 / send_seconds
    );
    server.stop(Stop::Term).await?;
    let layout = Layout {
        users,
        conversations: convs
            .into_iter()
            .zip(&counts)
            .map(|((id, a, _), &n)| (id, a, n))
            .collect(),
        big,
        messages: sent,
    };
    std::fs::write(layout_path(&opts.dir), serde_json::to_vec(&layout)?)?;
    Ok(Generated {
        conversations: layout.conversations.len(),
        messages: sent,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn conversation_reply(m: &ServerMsg) -> Option<anyhow::Result<String>> {
    match m {
        ServerMsg::Conversation { conversation } => Some(Ok(conversation.id.0.clone())),
        ServerMsg::Error { code, message, .. } => {
            Some(Err(anyhow::anyhow!("refused: {code:?}: {message}")))
        }
        _ => None,
    }
}

/// Sends `plan` (conversation, count) round-robin with `WINDOW` in flight; returns how
/// many were acknowledged. Everything else that arrives (the peers' messages) is read and
/// dropped.
async fn send_plan(
    mut conn: Conn,
    index: usize,
    mut plan: Vec<(ConversationId, u64)>,
) -> anyhow::Result<u64> {
    // Live delivery starts with the first frame; a resume from nothing starts it cleanly.
    conn.send(&ClientMsg::Resume {
        positions: Vec::new(),
    })
    .await?;
    let mut in_flight = 0;
    let mut acked = 0;
    let mut n = 0_u64;
    let mut turn = 0;
    loop {
        plan.retain(|(_, left)| *left > 0);
        while in_flight < WINDOW && !plan.is_empty() {
            turn = (turn + 1) % plan.len();
            let (conv, left) = &mut plan[turn];
            *left -= 1;
            n += 1;
            conn.send(&ClientMsg::Send {
                conversation_id: conv.clone(),
                client_msg_id: ClientMsgId::parse(&format!("g{index}-{n}"))?,
                body: Some(MessageBody::parse(&body(n))?),
                attachments: Vec::new(),
                reply_to: None,
            })
            .await?;
            in_flight += 1;
            if plan[turn].1 == 0 {
                break;
            }
        }
        if in_flight == 0 && plan.is_empty() {
            return Ok(acked);
        }
        match conn.next(Duration::from_secs(30)).await {
            Ok(ServerMsg::Ack { .. }) => {
                in_flight -= 1;
                acked += 1;
            }
            Ok(ServerMsg::Error { code, message, .. }) => {
                anyhow::bail!("user {index}: {code:?}: {message}")
            }
            Ok(_) => {}
            Err(e) if e.downcast_ref::<Closed>().is_some() => return Err(e),
            Err(e) => return Err(e.context(format!("user {index}: no ack"))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Measure {
    pub server_bin: PathBuf,
    pub dir: PathBuf,
    pub samples: usize,
    pub starts: usize,
    pub seed: u64,
}

#[derive(Debug)]
pub struct Measured {
    pub messages: u64,
    pub conversations: usize,
    pub users: usize,
    pub disk_bytes: u64,
    pub startup_ms: Vec<u64>,
    pub latest_us: Percentiles,
    pub deep_us: Percentiles,
    pub recent_us: Percentiles,
    /// Seconds from the last start until the search index had every message.
    pub index_catch_up_s: f64,
    /// Message searches for each of [`SEARCHES`].
    pub search_us: [Percentiles; 2],
    /// Results of those searches, fewest and most.
    pub search_hits: (usize, usize),
    /// Rows in the recent-conversations lists, smallest and largest.
    pub recent_rows: (usize, usize),
    pub rss_kib: Option<u64>,
}

pub async fn measure(opts: Measure) -> anyhow::Result<Measured> {
    let layout: Layout = serde_json::from_slice(
        &std::fs::read(layout_path(&opts.dir))
            .with_context(|| format!("no generated database in {}", opts.dir.display()))?,
    )?;
    let addr: SocketAddr = free_port()?;
    let mut server = ServerProcess::new(&opts.server_bin, addr, &data_dir(&opts.dir))?;
    let mut startup_ms = Vec::new();
    for i in 0..opts.starts.max(1) {
        if i > 0 {
            server.stop(Stop::Term).await?;
        }
        startup_ms.push(server.start().await?.as_millis() as u64);
    }
    let index_catch_up_s = index_caught_up(addr).await?;
    let mut rng = Rng::new(opts.seed);
    let mut conns: HashMap<usize, (Conn, Instant)> = HashMap::new();
    let mut latest = Vec::new();
    let mut deep = Vec::new();
    let mut recent = Vec::new();
    let mut searches = [Vec::new(), Vec::new()];
    let mut searched_at: HashMap<usize, Instant> = HashMap::new();
    let mut search_hits = (usize::MAX, 0);
    let mut rows = (usize::MAX, 0);
    for _ in 0..opts.samples {
        // The newest page of a random conversation.
        let c = rng.range(0, layout.conversations.len() as u64) as usize;
        let (id, member, count) = &layout.conversations[c];
        let conn = conn_of(&mut conns, addr, &layout, *member).await?;
        let (took, seqs) = history(conn, id, None).await?;
        let expect: Vec<u64> = (count.saturating_sub(u64::from(PAGE)) + 1..=*count).collect();
        ensure!(seqs == expect, "{id}: newest page {seqs:?}");
        latest.push(took);

        // A page deep in a big room's scroll-back.
        let c = layout.big[rng.range(0, layout.big.len() as u64) as usize];
        let (id, member, count) = &layout.conversations[c];
        let deepest = (count / 2).max(u64::from(PAGE) + 2).min(count + 1);
        ensure!(
            deepest > u64::from(PAGE) + 1,
            "{id}: too small for a deep page"
        );
        let before = rng.range(u64::from(PAGE) + 1, deepest);
        let conn = conn_of(&mut conns, addr, &layout, *member).await?;
        let (took, seqs) = history(conn, id, Some(before)).await?;
        let expect: Vec<u64> = (before - u64::from(PAGE)..before).collect();
        ensure!(seqs == expect, "{id}: page before {before}: {seqs:?}");
        deep.push(took);

        // A random user's recent conversations.
        let u = rng.range(0, layout.users.len() as u64) as usize;
        let conn = conn_of(&mut conns, addr, &layout, u).await?;
        let t = Instant::now();
        let list = conn
            .ask(ClientMsg::ListConversations { limit: None }, |m| match m {
                ServerMsg::Conversations { conversations, .. } => Some(conversations.clone()),
                _ => None,
            })
            .await?;
        recent.push(t.elapsed().as_micros() as u64);
        ensure!(
            list.windows(2)
                .all(|w| w[0].last_activity_ms >= w[1].last_activity_ms),
            "recent conversations out of order"
        );
        ensure!(
            list.iter()
                .all(|c| c.unread == c.last_seq.saturating_sub(c.last_read_seq)),
            "unread counts inconsistent"
        );
        rows = (rows.0.min(list.len()), rows.1.max(list.len()));

        // A random user's search, for each word in turn. The server answers 5 searches a
        // second per user: a user's next search waits (untimed) until a fifth of a second
        // after their last, which a small database's few users would otherwise exceed.
        for (k, word) in SEARCHES.iter().enumerate() {
            let u = rng.range(0, layout.users.len() as u64) as usize;
            if let Some(last) = searched_at.get(&u) {
                tokio::time::sleep(SEARCH_SPACING.saturating_sub(last.elapsed())).await;
            }
            let conn = conn_of(&mut conns, addr, &layout, u).await?;
            let t = Instant::now();
            let bodies = conn
                .ask(
                    ClientMsg::SearchMessages {
                        query: (*word).to_owned(),
                        conversation_id: None,
                        from: None,
                        limit: None,
                    },
                    |m| match m {
                        ServerMsg::SearchResults { hits, .. } => Some(Ok(hits
                            .iter()
                            .map(|h| h.message.body.clone())
                            .collect::<Vec<_>>())),
                        ServerMsg::Error { code, message, .. } => {
                            Some(Err(anyhow::anyhow!("{code:?}: {message}")))
                        }
                        _ => None,
                    },
                )
                .await??;
            searches[k].push(t.elapsed().as_micros() as u64);
            searched_at.insert(u, Instant::now());
            ensure!(
                !bodies.is_empty() && bodies.iter().all(|b| b.contains(word)),
                "search for {word}: {bodies:?}"
            );
            search_hits = (
                search_hits.0.min(bodies.len()),
                search_hits.1.max(bodies.len()),
            );
        }
    }
    let rss_kib = server.rss_kib();
    server.stop(Stop::Term).await?;
    Ok(Measured {
        messages: layout.messages,
        conversations: layout.conversations.len(),
        users: layout.users.len(),
        disk_bytes: dir_size(&data_dir(&opts.dir)),
        startup_ms,
        latest_us: Percentiles::of(latest),
        deep_us: Percentiles::of(deep),
        recent_us: Percentiles::of(recent),
        index_catch_up_s,
        search_us: searches.map(Percentiles::of),
        search_hits,
        recent_rows: rows,
        rss_kib,
    })
}

/// Waits (at most an hour) until `/healthz` says the search index has every message;
/// returns how long that took, in seconds.
async fn index_caught_up(addr: SocketAddr) -> anyhow::Result<f64> {
    let started = Instant::now();
    loop {
        let health: serde_json::Value =
            serde_json::from_str(&body_of(addr, "/healthz").await.context("no /healthz")?)?;
        if health["search"]["unindexed_conversations"] == 0 {
            return Ok(started.elapsed().as_secs_f64());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "the search index is still behind after an hour"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The socket of `user`, opened on first use, and reopened when it sat unused long enough
/// for the server to drop it as silent (a browser pings; this client does not).
async fn conn_of<'a>(
    conns: &'a mut HashMap<usize, (Conn, Instant)>,
    addr: SocketAddr,
    layout: &Layout,
    user: usize,
) -> anyhow::Result<&'a mut Conn> {
    let fresh = conns
        .get(&user)
        .is_some_and(|(_, used)| used.elapsed() < Duration::from_secs(30));
    if !fresh {
        let conn = Conn::open(addr, &layout.users[user].1).await?;
        conns.insert(user, (conn, Instant::now()));
    }
    let (conn, used) = conns.get_mut(&user).expect("inserted above");
    *used = Instant::now();
    Ok(conn)
}

/// One history request: how long the answer took (µs) and the `seq`s it held.
async fn history(
    conn: &mut Conn,
    id: &str,
    before: Option<u64>,
) -> anyhow::Result<(u64, Vec<u64>)> {
    let t = Instant::now();
    let seqs = conn
        .ask(
            ClientMsg::History {
                conversation_id: ConversationId(id.to_owned()),
                before_seq: before,
                limit: Some(PAGE),
            },
            |m| match m {
                ServerMsg::History { messages, .. } => {
                    Some(messages.iter().map(|m| m.seq).collect::<Vec<_>>())
                }
                _ => None,
            },
        )
        .await?;
    Ok((t.elapsed().as_micros() as u64, seqs))
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
