//! The baselines: a minimal WebSocket relay speaking the same frames as the chat
//! server, with no authentication and no sequencing beyond a counter. Whatever it reaches on
//! this machine is the ceiling the real server is compared with.
//!
//! Two kinds: the plain relay stores nothing; the durable relay appends every `send` to one
//! file and acknowledges and delivers it only after an fsync that covers it, one thread
//! syncing and everything that arrived during a sync sharing the next (group commit, the
//! server's store's own scheme). The durable relay is the floor for a server that acks
//! nothing before it is on disk: this machine's disk and scheduler, and no database.
//!
//! A client's session token is taken as its username; a direct conversation `a/b` has the
//! members `a` and `b`; any other conversation (no `/`) is a room, whose members are those who sent
//! `join_room` for it. A `send` is acknowledged to the sender and delivered to the other
//! members' sockets, encoded once and shared; each socket writes whatever is queued for it
//! with one flush, as the server does. Benchmarks run it in a process of its own
//! ([`RelayProcess`]), as they run the server, so that it never shares a runtime with the
//! load generator and its CPU and memory are its own.

use anyhow::Context;
use app::protocol::{ClientMsg, Message, ServerMsg, UserInfo, PROTOCOL_VERSION};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{
    handshake::server::{Request, Response},
    Message as Frame, Utf8Bytes,
};

type Outbox = mpsc::UnboundedSender<Utf8Bytes>;
type Outboxes = Arc<Mutex<HashMap<String, Vec<Outbox>>>>;

/// Most queued frames a socket writes with one flush (the server's `BURST`).
const BURST: usize = 64;

/// A running relay. Dropping it stops the durable relay's syncing thread (its sockets then
/// get no more acks); the sockets themselves live as long as the runtime.
pub struct Relay {
    pub addr: SocketAddr,
    journal: Option<Arc<Journal>>,
}

impl Relay {
    /// Listens on a free loopback port; with `journal`, durable: appends every message to
    /// that file (created) and syncs it before the ack.
    pub async fn start(journal: Option<&Path>) -> anyhow::Result<Relay> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), journal).await
    }

    /// As [`Relay::start`], on `addr` (loopback only).
    pub async fn start_on(addr: SocketAddr, journal: Option<&Path>) -> anyhow::Result<Relay> {
        let listener = TcpListener::bind(crate::loopback_only(addr)?).await?;
        let addr = listener.local_addr()?;
        let journal = match journal {
            Some(path) => Some(Journal::start(File::create(path)?)?),
            None => None,
        };
        let shared = Shared {
            outboxes: Arc::default(),
            rooms: Arc::default(),
            seqs: Arc::default(),
            journal: journal.clone(),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // As the server does: frames go out at once.
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, shared).await;
                });
            }
        });
        Ok(Relay { addr, journal })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(journal) = &self.journal {
            journal.close();
        }
    }
}

/// The relay in a process of its own (`loadgen relay`), killed when dropped.
pub struct RelayProcess {
    pub addr: SocketAddr,
    child: Child,
}

impl RelayProcess {
    /// Starts `loadgen relay` (this executable) on a free loopback port, durable with
    /// `journal`, and waits until it listens.
    pub async fn start(journal: Option<&Path>) -> anyhow::Result<RelayProcess> {
        let addr = crate::process::free_port()?;
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["relay", "--addr", &addr.to_string()]);
        if let Some(path) = journal {
            command.arg("--journal").arg(path);
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start the relay process")?;
        let listening = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            anyhow::ensure!(
                listening.elapsed() < Duration::from_secs(10),
                "the relay process did not listen on {addr} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(RelayProcess { addr, child })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

#[derive(Clone)]
struct Shared {
    outboxes: Outboxes,
    /// Each room's members (who sent `join_room` for it).
    rooms: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// Each conversation's last `seq`; the durable relay holds it until the message is
    /// appended, so that a conversation's messages reach the file in `seq` order.
    seqs: Arc<Mutex<HashMap<String, u64>>>,
    journal: Option<Arc<Journal>>,
}

/// A stored message's frames and who gets them: the delivery to the other members' sockets,
/// the ack to the sender's. The plain relay sends them at once; the durable one after the
/// sync, in the order they were appended.
struct Frames {
    ack: (Outbox, Utf8Bytes),
    delivery: (Vec<Outbox>, Utf8Bytes),
}

impl Frames {
    /// Sends the delivery, then the ack; false if the sender's socket is gone.
    fn send(self) -> bool {
        for out in &self.delivery.0 {
            let _ = out.send(self.delivery.1.clone());
        }
        self.ack.0.send(self.ack.1).is_ok()
    }
}

#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    waiting: Vec<Frames>,
    closed: bool,
}

/// The durable relay's log: appended under [`Shared::seqs`], written and synced by one
/// thread.
struct Journal {
    next: Mutex<Batch>,
    arrived: Condvar,
}

impl Journal {
    fn start(file: File) -> anyhow::Result<Arc<Journal>> {
        let journal = Arc::new(Journal {
            next: Mutex::default(),
            arrived: Condvar::new(),
        });
        let syncing = journal.clone();
        std::thread::Builder::new()
            .name("relay-journal".into())
            .spawn(move || syncing.run(file))?;
        Ok(journal)
    }

    /// Appends the delivery frame as one line; `frames` go out once it is synced.
    fn append(&self, frames: Frames) {
        let mut next = self.next.lock().expect("lock");
        next.bytes.extend_from_slice(frames.delivery.1.as_bytes());
        next.bytes.push(b'\n');
        next.waiting.push(frames);
        drop(next);
        self.arrived.notify_one();
    }

    fn close(&self) {
        self.next.lock().expect("lock").closed = true;
        self.arrived.notify_one();
    }

    /// Writes and syncs whatever arrived, then releases its frames; until closed or the
    /// file fails (then nothing more is acked, and the run reports the silence).
    fn run(&self, mut file: File) {
        loop {
            let batch = {
                let mut next = self.next.lock().expect("lock");
                while next.waiting.is_empty() && !next.closed {
                    next = self.arrived.wait(next).expect("lock");
                }
                if next.closed {
                    return;
                }
                std::mem::take(&mut *next)
            };
            if file
                .write_all(&batch.bytes)
                .and_then(|()| file.sync_all())
                .is_err()
            {
                return;
            }
            for frames in batch.waiting {
                frames.send();
            }
        }
    }
}

// The handshake callback's error type is tungstenite's (an HTTP response), not ours.
#[allow(clippy::result_large_err)]
async fn serve(stream: tokio::net::TcpStream, shared: Shared) -> anyhow::Result<()> {
    let mut user = String::new();
    let ws = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        |req: &Request, res: Response| {
            user = req
                .headers()
                .get("cookie")
                .and_then(|c| c.to_str().ok())
                .and_then(|c| c.strip_prefix("chat_session="))
                .unwrap_or("anonymous")
                .to_owned();
            Ok(res)
        },
        Some(crate::socket_config()),
    )
    .await?;
    let (mut write, mut read) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    {
        let mut outboxes = shared.outboxes.lock().expect("lock");
        let mine = outboxes.entry(user.clone()).or_default();
        mine.retain(|s| !s.is_closed());
        mine.push(tx.clone());
    }
    let hello = ServerMsg::Hello {
        protocol_version: PROTOCOL_VERSION,
        server_version: "relay".into(),
        me: UserInfo::named(user.clone(), user.clone()),
        admin: false,
    };
    write.send(Frame::text(hello.encode())).await?;
    // Whatever is queued goes out with one flush (one write), as the server's sockets do.
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if write.feed(Frame::Text(frame)).await.is_err() {
                break;
            }
            for _ in 1..BURST {
                let Ok(frame) = rx.try_recv() else { break };
                if write.feed(Frame::Text(frame)).await.is_err() {
                    return;
                }
            }
            if write.flush().await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(frame)) = read.next().await {
        let Frame::Text(text) = frame else { continue };
        let reply = match ClientMsg::decode(&text) {
            Ok(ClientMsg::Send {
                conversation_id,
                client_msg_id,
                body,
                ..
            }) => {
                let mut seqs = shared.seqs.lock().expect("lock");
                let seq = {
                    let s = seqs.entry(conversation_id.0.clone()).or_default();
                    *s += 1;
                    *s
                };
                // The plain relay needs the lock no longer.
                let seqs = shared.journal.is_some().then_some(seqs);
                let message = Message {
                    conversation_id: conversation_id.clone(),
                    seq,
                    sender: user.clone(),
                    body: body.map(|b| b.into_inner()).unwrap_or_default(),
                    client_msg_id: client_msg_id.to_string(),
                    sent_at_ms: 0,
                    ..Message::default()
                };
                let delivery = Utf8Bytes::from(
                    ServerMsg::Message {
                        message: message.clone(),
                    }
                    .encode(),
                );
                let recipients: Vec<Outbox> = {
                    let outboxes = shared.outboxes.lock().expect("lock");
                    let sockets = |m: &str| outboxes.get(m).into_iter().flatten().cloned();
                    if conversation_id.0.contains('/') {
                        conversation_id
                            .0
                            .split('/')
                            .filter(|m| *m != user)
                            .flat_map(sockets)
                            .collect()
                    } else {
                        let rooms = shared.rooms.lock().expect("lock");
                        rooms
                            .get(&conversation_id.0)
                            .into_iter()
                            .flatten()
                            .filter(|m| **m != user)
                            .flat_map(|m| sockets(m))
                            .collect()
                    }
                };
                let ack = Utf8Bytes::from(
                    ServerMsg::Ack {
                        client_msg_id: client_msg_id.to_string(),
                        message,
                    }
                    .encode(),
                );
                let frames = Frames {
                    ack: (tx.clone(), ack),
                    delivery: (recipients, delivery),
                };
                match &shared.journal {
                    // Appended under the lock that numbered it.
                    Some(journal) => journal.append(frames),
                    None => {
                        if !frames.send() {
                            break;
                        }
                    }
                }
                drop(seqs);
                continue;
            }
            Ok(ClientMsg::Resume { .. }) => ServerMsg::Resumed,
            // Joined at once; the client learns it with its next answer (a `ping`'s).
            Ok(ClientMsg::JoinRoom { conversation_id }) => {
                let mut rooms = shared.rooms.lock().expect("lock");
                let members = rooms.entry(conversation_id.0).or_default();
                if !members.contains(&user) {
                    members.push(user.clone());
                }
                continue;
            }
            Ok(ClientMsg::Ping { nonce }) => ServerMsg::Pong {
                nonce,
                server_time_ms: 0,
            },
            Ok(_) => continue,
            Err(e) => e.into(),
        };
        if tx.send(Utf8Bytes::from(reply.encode())).is_err() {
            break;
        }
    }
    writer.abort();
    Ok(())
}
