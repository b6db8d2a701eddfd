//! Reconnect storm: half of the users lose their sockets at the same moment, again and
//! again, and all reconnect at once and resume, while their peers keep sending.
//!
//! Users are in pairs. The first of each pair sends to the second at `rate` messages per
//! second for the whole run. Every `every`, all second users drop their sockets together,
//! wait a moment, reconnect together and resume from the last `seq` they saw. Measured:
//! time from reconnecting to `resumed` (p50/p99/max). Checked: each second user receives
//! every message its peer had acknowledged, once, in order, with no gap.

use anyhow::{ensure, Context};
use app::domain::{ClientMsgId, MessageBody};
use app::protocol::{ClientMsg, ConversationId, Position, ServerMsg};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Barrier};
use tokio::time::Instant;

use crate::bench::Percentiles;
use crate::client::Conn;
use crate::process::{free_port, ServerProcess, Stop};
use crate::world::populate;

/// How long the dropped sockets stay away.
const AWAY: Duration = Duration::from_millis(300);

/// How long past the storm's time a socket waits for the others before giving up.
const BARRIER_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Options {
    pub server_bin: std::path::PathBuf,
    pub users: usize,
    pub storms: usize,
    pub every: Duration,
    /// Messages per second each sender sends.
    pub rate: f64,
}

#[derive(Debug)]
pub struct Report {
    pub pairs: usize,
    pub storms: usize,
    pub reconnects: usize,
    pub resume_us: Percentiles,
    pub delivered: u64,
}

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let addr = free_port()?;
    let mut server = ServerProcess::new(&opts.server_bin, addr, &dir.path().join("data"))?;
    server.start().await?;
    let world = populate(addr, "storm", opts.users.max(2), "storm room").await?;
    let pairs = world.users.len() / 2;
    let barrier = Arc::new(Barrier::new(pairs));
    let run_for = opts.every * (opts.storms as u32 + 1);
    let mut senders = Vec::new();
    let mut stormers = Vec::new();
    let mut targets = Vec::new();
    for p in 0..pairs {
        let conv = world.routes[2 * p][0].clone();
        let sender = Conn::open_live(addr, &world.users[2 * p].1).await?;
        senders.push(tokio::spawn(send(
            sender,
            p,
            conv.clone(),
            opts.rate,
            run_for,
        )));
        let (tx, rx) = oneshot::channel();
        targets.push(tx);
        let token = world.users[2 * p + 1].1.clone();
        stormers.push(tokio::spawn(storm(
            addr,
            token,
            conv,
            opts.clone(),
            barrier.clone(),
            rx,
        )));
    }
    for (s, target) in senders.into_iter().zip(targets) {
        let last = s.await??;
        let _ = target.send(last);
    }
    // The first failure ends the run (the others would wait for it at the barrier).
    let results = futures::future::try_join_all(
        stormers
            .into_iter()
            .map(|s| async move { s.await.context("a stormer panicked")? }),
    )
    .await?;
    let mut resume_us = Vec::new();
    let mut delivered = 0;
    for (times, got) in results {
        resume_us.extend(times);
        delivered += got;
    }
    server.stop(Stop::Term).await?;
    Ok(Report {
        pairs,
        storms: opts.storms,
        reconnects: resume_us.len(),
        resume_us: Percentiles::of(resume_us),
        delivered,
    })
}

/// Sends at `rate` for `run_for`; returns the last acknowledged `seq`.
async fn send(
    mut conn: Conn,
    index: usize,
    conv: ConversationId,
    rate: f64,
    run_for: Duration,
) -> anyhow::Result<u64> {
    let every = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let end = Instant::now() + run_for;
    let mut tick = tokio::time::interval(every);
    let mut n = 0;
    let mut last = 0;
    let mut unacked = 0_usize;
    while Instant::now() < end || unacked > 0 {
        tokio::select! {
            _ = tick.tick(), if Instant::now() < end => {
                n += 1;
                conn.send(&ClientMsg::Send {
                    conversation_id: conv.clone(),
                    client_msg_id: ClientMsgId::parse(&format!("s{index}-{n}"))?,
                    body: Some(MessageBody::parse(&format!("storm message {n}"))?),
                    attachments: Vec::new(),
                    reply_to: None,
                })
                .await?;
                unacked += 1;
            }
            frame = conn.next(Duration::from_secs(10)) => {
                match frame.with_context(|| format!("sender {index}"))? {
                    ServerMsg::Ack { message, .. } => {
                        unacked -= 1;
                        last = last.max(message.seq);
                    }
                    ServerMsg::Error { code, message, .. } => {
                        anyhow::bail!("sender {index}: {code:?}: {message}")
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(last)
}

/// Reads its conversation, dropping and resuming the socket with everyone else `storms`
/// times; then reads until it has the sender's last acknowledged `seq`. Returns the
/// resume times (µs) and how many messages arrived.
async fn storm(
    addr: SocketAddr,
    token: String,
    conv: ConversationId,
    opts: Options,
    barrier: Arc<Barrier>,
    target: oneshot::Receiver<u64>,
) -> anyhow::Result<(Vec<u64>, u64)> {
    // The peer may already be sending: resume from the start, so nothing sent before this
    // socket was live is missed.
    let mut last = 0_u64;
    let mut got = 0_u64;
    let mut times = Vec::new();
    let start = Instant::now();
    let mut read = |m: ServerMsg, last: &mut u64| -> anyhow::Result<()> {
        if let ServerMsg::Message { message } = m {
            ensure!(
                message.seq == *last + 1,
                "{}: seq {} after {last}",
                conv.0,
                message.seq
            );
            *last = message.seq;
            got += 1;
        }
        Ok(())
    };
    let mut conn = Conn::open(addr, &token).await?;
    for m in resume(&mut conn, &conv, last).await? {
        read(m, &mut last)?;
    }
    for round in 1..=opts.storms {
        let at = start + opts.every * round as u32;
        while let Ok(m) = conn
            .next(at.saturating_duration_since(Instant::now()))
            .await
        {
            read(m, &mut last)?;
        }
        drop(conn);
        tokio::time::timeout(opts.every + BARRIER_WAIT, barrier.wait())
            .await
            .context("the other sockets never came to the storm (one of them failed)")?;
        tokio::time::sleep(AWAY).await;
        let t = Instant::now();
        conn = Conn::open(addr, &token).await?;
        for m in resume(&mut conn, &conv, last).await? {
            read(m, &mut last)?;
        }
        times.push(t.elapsed().as_micros() as u64);
    }
    let target = target.await.context("the sender failed")?;
    while last < target {
        let m = conn
            .next(Duration::from_secs(10))
            .await
            .with_context(|| format!("{}: stuck at {last} of {target}", conv.0))?;
        read(m, &mut last)?;
    }
    ensure!(last == target, "{}: {last} beyond {target}", conv.0);
    Ok((times, got))
}

/// Resumes `conv` after `seq`; returns what arrived before `resumed`.
async fn resume(
    conn: &mut Conn,
    conv: &ConversationId,
    seq: u64,
) -> anyhow::Result<Vec<ServerMsg>> {
    conn.send(&ClientMsg::Resume {
        positions: vec![Position {
            conversation_id: conv.clone(),
            seq,
        }],
    })
    .await?;
    let mut missed = Vec::new();
    loop {
        match conn.next(Duration::from_secs(10)).await? {
            ServerMsg::Resumed => return Ok(missed),
            m => missed.push(m),
        }
    }
}
