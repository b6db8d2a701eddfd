//! The bus between the nodes of a cluster, over NATS: what one node's hub pushes reaches
//! the sockets on every other node, and what one node's store changes that the others
//! keep in memory reaches their stores.
//!
//! - One subject per cluster database (`chat.<namespace>.<database>`), which every node
//!   publishes to and subscribes to; each event names the node it comes from, and a node
//!   skips its own. One publisher task per node, so a node's events arrive everywhere in
//!   the order it sent them (NATS keeps the order of one connection's messages).
//! - NATS core delivers at most once, so nothing here is the truth: a live message that
//!   never arrived shows as a gap at the next one, which the socket fills from the database
//!   (`crate::ws::delivery`), or at the client's next resume. A live message names its
//!   conversation, not its recipients: each node fans it out to the members it knows.
//! - Presence: each node says when a user opens their first socket there or closes their
//!   last, says who is online there when it (re)connects or hears of a node it did not
//!   know (a `hello`, which every node answers with its own list), and says it is alive
//!   every [`ALIVE_EVERY`]; a node silent for [`GONE_AFTER`] is taken for dead and its
//!   users for offline, which the live node with the first name announces to their
//!   contacts (one announcement, not one per node).
//! - Notes can be lost: a node killed between its commit and its note, NATS away for a
//!   while. So whenever that may have happened — this node's connection came back, another
//!   node said hello (it started again, or its connection came back), a node went silent —
//!   the node catches up ([`CatchUp`]): it reads members and lists from the database
//!   again, moves the heads it knows to what is stored past them and pushes the newest
//!   entry of each conversation that moved to its sockets there (which fill what is
//!   before it from the database). When a node went silent, the live node with the first
//!   name first repairs the conversations' stored `last_*` fields it may have left behind.
//!
//! Encoding: a JSON header line, then (for pushed frames) the frame's bytes as they go to
//! the sockets, not re-encoded.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use crate::{
    hub::{Hub, Outbound, Relayed},
    store::{Note, SurrealChatStore},
    telemetry::Registry,
};

/// How often a node says it is alive.
pub const ALIVE_EVERY: Duration = Duration::from_secs(1);
/// How long a node may be silent before it counts as gone.
pub const GONE_AFTER: Duration = Duration::from_secs(5);
/// Events queued for the publisher before more are dropped (the bus is that far behind).
const QUEUE: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot reach NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("cannot subscribe to {subject}: {source}")]
    Subscribe {
        subject: String,
        source: async_nats::SubscribeError,
    },
}

/// What one node tells the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Event {
    /// A frame for these users' sockets (none named: a live message, for the members of
    /// its conversation).
    Push {
        users: Vec<String>,
        item: Item,
        skip: Option<u64>,
    },
    /// A frame for one socket.
    PushTo {
        user: String,
        conn: u64,
        item: Item,
    },
    Close {
        sessions: Vec<String>,
    },
    Presence {
        user: String,
        online: bool,
    },
    /// Everyone online on the sending node now.
    Present {
        users: Vec<String>,
    },
    /// The sending node (re)joined, or heard of a node it did not know: everyone online
    /// on it now; each node answers with its own [`Event::Present`].
    Hello {
        users: Vec<String>,
    },
    Alive,
    Note {
        note: Note,
    },
}

/// What kind of hub item a pushed frame is (see [`Outbound`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Item {
    Frame,
    Message {
        conversation: String,
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<String>,
    },
    Ack {
        conversation: String,
        seq: u64,
        // Absent from an older node's events (a rolling deploy): the ack then goes out
        // unless a fill on its socket told it already.
        #[serde(default)]
        client_msg_id: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    from: String,
    event: Event,
}

fn item_of(item: &Outbound) -> (Item, &Utf8Bytes) {
    match item {
        Outbound::Frame(frame) => (Item::Frame, frame),
        Outbound::Message(live) => (
            Item::Message {
                conversation: live.conversation.to_string(),
                seq: live.seq,
                sender: live.sender.as_deref().map(str::to_owned),
            },
            &live.frame,
        ),
        Outbound::Ack(ack) => (
            Item::Ack {
                conversation: ack.conversation.to_string(),
                seq: ack.seq,
                client_msg_id: ack.client_msg_id.to_string(),
            },
            &ack.frame,
        ),
    }
}

fn outbound(item: Item, frame: Utf8Bytes) -> Outbound {
    match item {
        Item::Frame => Outbound::Frame(frame),
        Item::Message {
            conversation,
            seq,
            sender,
        } => Outbound::message(conversation.into(), seq, sender.map(Arc::from), frame),
        Item::Ack {
            conversation,
            seq,
            client_msg_id,
        } => Outbound::ack(conversation.into(), seq, client_msg_id.into(), frame),
    }
}

/// A relayed hub item as an event, with the frame it carries.
fn event_of(relayed: Relayed) -> (Event, Option<Utf8Bytes>) {
    match relayed {
        Relayed::Push {
            users,
            item,
            skip_conn,
        } => {
            let (kind, frame) = item_of(&item);
            (
                Event::Push {
                    users,
                    item: kind,
                    skip: skip_conn,
                },
                Some(frame.clone()),
            )
        }
        Relayed::PushTo {
            user,
            conn_id,
            item,
        } => {
            let (kind, frame) = item_of(&item);
            (
                Event::PushTo {
                    user,
                    conn: conn_id,
                    item: kind,
                },
                Some(frame.clone()),
            )
        }
        Relayed::CloseSessions(sessions) => (Event::Close { sessions }, None),
        Relayed::Presence { user, online } => (Event::Presence { user, online }, None),
    }
}

/// `from`'s `event` as bytes on the bus: the header line, then the frame.
fn encode(from: &str, event: Event, frame: Option<&Utf8Bytes>) -> Vec<u8> {
    let header = Header {
        from: from.to_owned(),
        event,
    };
    let mut out = serde_json::to_vec(&header).expect("bus headers always encode");
    out.push(b'\n');
    if let Some(frame) = frame {
        out.extend_from_slice(frame.as_bytes());
    }
    out
}

/// The header and the frame of bytes from the bus; `None` if they are not ours.
fn decode(bytes: &[u8]) -> Option<(Header, Utf8Bytes)> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    let header: Header = serde_json::from_slice(&bytes[..end]).ok()?;
    let frame = std::str::from_utf8(&bytes[end + 1..]).ok()?;
    Some((header, Utf8Bytes::from(frame)))
}

/// The bus counters in `/metrics`.
#[derive(Clone)]
struct BusMetrics {
    published: metrics::Counter,
    received: metrics::Counter,
    failed: metrics::Counter,
    connected: metrics::Gauge,
}

impl BusMetrics {
    fn register(registry: &Registry) -> Self {
        BusMetrics {
            published: registry.counter(
                "chat_bus_published_total",
                "Events this node published to the other nodes.",
            ),
            received: registry.counter(
                "chat_bus_received_total",
                "Events received from the other nodes.",
            ),
            failed: registry.counter(
                "chat_bus_publish_failures_total",
                "Events that could not be published (the bus was away or behind).",
            ),
            connected: registry.gauge(
                "chat_bus_connected",
                "1 while the connection to NATS is up.",
            ),
        }
    }
}

/// Asks the node to catch up with the database (see the module's notes); requests made
/// while one is waiting are taken together. Cheap to clone.
#[derive(Clone, Default)]
pub struct CatchUp {
    wanted: Arc<tokio::sync::Notify>,
    repair: Arc<AtomicBool>,
}

impl CatchUp {
    /// Asks for a catch-up; `repair`: the stored `last_*` fields are repaired first.
    fn ask(&self, repair: bool) {
        if repair {
            self.repair.store(true, Ordering::SeqCst);
        }
        self.wanted.notify_one();
    }

    /// Waits until a catch-up is wanted; whether the fields are to be repaired first.
    pub async fn wanted(&self) -> bool {
        self.wanted.notified().await;
        self.repair.swap(false, Ordering::SeqCst)
    }
}

/// What the bus asks of the rest of the node.
pub struct Duties {
    /// Users to announce as offline (their node went silent).
    pub offline: mpsc::UnboundedReceiver<String>,
    pub catch_up: CatchUp,
}

/// A node's place on the bus; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    node: Arc<str>,
    connected: Arc<AtomicBool>,
    nodes: Arc<std::sync::Mutex<HashMap<Arc<str>, Instant>>>,
}

/// What `/healthz` says of the bus.
#[derive(Debug, Serialize)]
pub struct BusHealth {
    pub node: String,
    pub connected: bool,
    /// Other nodes heard from within [`GONE_AFTER`].
    pub nodes: Vec<String>,
}

impl Bus {
    pub fn health(&self) -> BusHealth {
        let mut nodes: Vec<String> = crate::locks::lock(&self.nodes)
            .keys()
            .map(|n| n.to_string())
            .collect();
        nodes.sort();
        BusHealth {
            node: self.node.to_string(),
            connected: self.connected.load(Ordering::Relaxed),
            nodes,
        }
    }

    /// Connects to NATS (waiting for it if it is not up yet: the node serves its own
    /// sockets meanwhile), hands the hub's and the store's outgoing events to it, and
    /// delivers the other nodes' to them, until `stop`; the [`Duties`] are what it asks of
    /// the rest of the node.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        url: &str,
        node: &str,
        subject: String,
        hub: &Hub,
        store: &SurrealChatStore,
        registry: &Registry,
        tracker: &TaskTracker,
        stop: &CancellationToken,
    ) -> Result<(Bus, Duties), BusError> {
        let node: Arc<str> = node.into();
        let metrics = BusMetrics::register(registry);
        let connected = Arc::new(AtomicBool::new(false));
        let (joined_tx, joined) = mpsc::unbounded_channel::<bool>();
        let client = async_nats::ConnectOptions::new()
            .name(format!("chat node {node}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            // Back within a second of NATS: delivery between nodes waits for it.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts as u64).min(1000))
            })
            .event_callback({
                let (connected, gauge) = (connected.clone(), metrics.connected.clone());
                move |event| {
                    let (connected, gauge, joined) =
                        (connected.clone(), gauge.clone(), joined_tx.clone());
                    async move {
                        match event {
                            async_nats::Event::Connected => {
                                connected.store(true, Ordering::Relaxed);
                                gauge.set(1.0);
                                let _ = joined.send(true);
                            }
                            async_nats::Event::Disconnected => {
                                connected.store(false, Ordering::Relaxed);
                                gauge.set(0.0);
                                let _ = joined.send(false);
                            }
                            other => warn!(event = %other, "bus"),
                        }
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|source| BusError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let subscriber =
            client
                .subscribe(subject.clone())
                .await
                .map_err(|source| BusError::Subscribe {
                    subject: subject.clone(),
                    source,
                })?;
        let (relay_tx, relay_rx) = mpsc::channel(QUEUE);
        let (notes_tx, notes_rx) = mpsc::channel(QUEUE);
        let (own_tx, own_rx) = mpsc::channel(64);
        hub.relay_to(relay_tx);
        store.notes_to(notes_tx);
        let bus = Bus {
            node: node.clone(),
            connected,
            nodes: Arc::default(),
        };
        tracker.spawn(publish(
            client.clone(),
            subject,
            node.clone(),
            relay_rx,
            notes_rx,
            own_rx,
            metrics.clone(),
            stop.clone(),
        ));
        let catch_up = CatchUp::default();
        tracker.spawn(receive(
            subscriber,
            bus.clone(),
            hub.clone(),
            store.clone(),
            own_tx.clone(),
            catch_up.clone(),
            metrics,
            stop.clone(),
        ));
        let (gone_tx, offline) = mpsc::unbounded_channel();
        tracker.spawn(keep_in_touch(
            bus.clone(),
            hub.clone(),
            joined,
            own_tx,
            gone_tx,
            catch_up.clone(),
            stop.clone(),
        ));
        info!(%node, url, "bus started");
        Ok((bus, Duties { offline, catch_up }))
    }
}

/// Publishes, in order, what the hub and the store hand over and what the node says of
/// itself.
#[allow(clippy::too_many_arguments)]
async fn publish(
    client: async_nats::Client,
    subject: String,
    node: Arc<str>,
    mut relayed: mpsc::Receiver<Relayed>,
    mut notes: mpsc::Receiver<Note>,
    mut own: mpsc::Receiver<Event>,
    metrics: BusMetrics,
    stop: CancellationToken,
) {
    loop {
        let bytes = tokio::select! {
            biased;
            Some(event) = own.recv() => encode(&node, event, None),
            Some(note) = notes.recv() => encode(&node, Event::Note { note }, None),
            Some(item) = relayed.recv() => {
                let (event, frame) = event_of(item);
                encode(&node, event, frame.as_ref())
            }
            () = stop.cancelled() => break,
        };
        match client.publish(subject.clone(), bytes.into()).await {
            Ok(()) => metrics.published.increment(1),
            Err(e) => {
                metrics.failed.increment(1);
                warn!(error = %e, "cannot publish to the bus");
            }
        }
    }
    let _ = client.flush().await;
}

/// Delivers what the other nodes publish.
#[allow(clippy::too_many_arguments)]
async fn receive(
    mut subscriber: async_nats::Subscriber,
    bus: Bus,
    hub: Hub,
    store: SurrealChatStore,
    own: mpsc::Sender<Event>,
    catch_up: CatchUp,
    metrics: BusMetrics,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            m = subscriber.next() => match m {
                Some(m) => m,
                None => break,
            },
            () = stop.cancelled() => break,
        };
        let Some((Header { from, event }, frame)) = decode(&message.payload) else {
            warn!("a bus message that is not ours");
            continue;
        };
        if *from == *bus.node {
            continue;
        }
        metrics.received.increment(1);
        let from: Arc<str> = from.into();
        let new_node = crate::locks::lock(&bus.nodes)
            .insert(from.clone(), Instant::now())
            .is_none();
        if new_node && !matches!(event, Event::Hello { .. }) {
            // A node we did not know of (or had taken for gone): ask who is online there.
            let _ = own.try_send(Event::Hello {
                users: hub.local_users(),
            });
        }
        match event {
            Event::Push { users, item, skip } => {
                let item = outbound(item, frame);
                let users: Vec<String> = match (&item, users.is_empty()) {
                    (Outbound::Message(live), true) => {
                        match store.members(&live.conversation).await {
                            Ok(members) => members.to_vec(),
                            Err(e) => {
                                warn!(error = %e, "cannot read members to fan out from the bus");
                                continue;
                            }
                        }
                    }
                    _ => users,
                };
                hub.deliver(Relayed::Push {
                    users,
                    item,
                    skip_conn: skip,
                });
            }
            Event::PushTo { user, conn, item } => hub.deliver(Relayed::PushTo {
                user,
                conn_id: conn,
                item: outbound(item, frame),
            }),
            Event::Close { sessions } => hub.deliver(Relayed::CloseSessions(sessions)),
            Event::Presence { user, online } => hub.presence_elsewhere(&from, &user, online),
            Event::Present { users } => hub.present_elsewhere(&from, &users),
            Event::Hello { users } => {
                hub.present_elsewhere(&from, &users);
                // It started again or its connection came back: what it said meanwhile
                // may not have come.
                catch_up.ask(false);
                let _ = own.try_send(Event::Present {
                    users: hub.local_users(),
                });
            }
            Event::Alive => {}
            Event::Note { note } => store.learn_note(note).await,
        }
    }
}

/// Says hello on every (re)connection, alive every [`ALIVE_EVERY`], and forgets the
/// nodes not heard from for [`GONE_AFTER`].
async fn keep_in_touch(
    bus: Bus,
    hub: Hub,
    mut joined: mpsc::UnboundedReceiver<bool>,
    own: mpsc::Sender<Event>,
    gone_users: mpsc::UnboundedSender<String>,
    catch_up: CatchUp,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(ALIVE_EVERY);
    let mut was_away = false;
    loop {
        tokio::select! {
            j = joined.recv() => match j {
                Some(true) => {
                    if was_away {
                        info!("bus back: catching up with the database");
                        catch_up.ask(false);
                    }
                    let _ = own.send(Event::Hello { users: hub.local_users() }).await;
                }
                Some(false) => was_away = true,
                None => break,
            },
            _ = tick.tick() => {
                let _ = own.try_send(Event::Alive);
                let (gone, first) = {
                    let mut nodes = crate::locks::lock(&bus.nodes);
                    let gone = nodes
                        .iter()
                        .filter(|(_, seen)| seen.elapsed() > GONE_AFTER)
                        .map(|(n, _)| n.clone())
                        .collect::<Vec<_>>();
                    for n in &gone {
                        nodes.remove(n);
                    }
                    // Whether this node has the first name among those alive.
                    let first = nodes.keys().all(|n| **n > *bus.node);
                    (gone, first)
                };
                if !gone.is_empty() {
                    catch_up.ask(first);
                }
                for n in gone {
                    warn!(node = %n, "a node went silent: its users count as offline");
                    for user in hub.forget_node(&n) {
                        if first {
                            let _ = gone_users.send(user);
                        }
                    }
                }
            }
            () = stop.cancelled() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mark;

    #[test]
    fn events_keep_their_frames_byte_for_byte() {
        let frame = Utf8Bytes::from("{\"type\":\"message\",\"body\":\"line\\none 你好\"}");
        let relayed = Relayed::Push {
            users: Vec::new(),
            item: Outbound::message("r1".into(), 7, Some("ann".into()), frame.clone()),
            skip_conn: Some(u64::MAX / 3),
        };
        let (event, carried) = event_of(relayed);
        let bytes = encode("node-a", event.clone(), carried.as_ref());
        let (header, back) = decode(&bytes).unwrap();
        assert_eq!(header.from, "node-a");
        assert_eq!(header.event, event);
        assert_eq!(back, frame);
    }

    #[test]
    fn notes_cross_the_bus_whole() {
        let note = Note::Read {
            user: "alice".into(),
            conversation: "alice/bob".into(),
            at: Mark::new(9, 4),
        };
        let bytes = encode("n1", Event::Note { note: note.clone() }, None);
        let (header, frame) = decode(&bytes).unwrap();
        assert_eq!(header.event, Event::Note { note });
        assert!(frame.is_empty());
    }

    #[test]
    fn foreign_bytes_are_not_taken_for_events() {
        assert!(decode(b"hello").is_none());
        assert!(decode(b"{\"from\":1}\n").is_none());
    }
}
