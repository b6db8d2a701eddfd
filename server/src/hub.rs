//! The in-process switchboard: who is online on which sockets, and fan-out. It is the only
//! way an event reaches a socket (so a bus to other nodes has one place to join), and it
//! only routes: the database stays the truth.
//!
//! - Every socket registers a bounded outbox (`OUTBOX_CAPACITY` items) when its upgrade is
//!   accepted, and counts towards its user's cap until it is closed. A frame is encoded
//!   once and shared (`Utf8Bytes`, reference-counted) by every recipient. A socket whose
//!   outbox is full is cut off: nothing more is queued for it and its handler is told, even
//!   one that is not reading its outbox yet; it tells the client `lagging` and closes, and
//!   the client resumes on reconnect. Nobody else waits for it.
//! - Each socket has one [`Stop`] signal, fired once with the reason it must close: it
//!   lagged, its session signed out, or the server is shutting down. A socket's loop polls
//!   it at every wake-up, so it is a flag and a waker of the socket's own: waiting on a
//!   token or channel shared by every socket would take their common lock per delivered
//!   frame.
//! - Messages and acks carry their conversation and `seq`, so that each socket can keep
//!   every conversation in order, without repeats (`crate::ws::delivery`).
//! - Presence: a user is online while they have at least one registered socket, here or
//!   on another node of the cluster.
//! - In a cluster, every push, sign-out and change of presence is also handed to the bus
//!   ([`Relayed`], see `crate::bus`), and what other nodes hand theirs arrives through
//!   [`Hub::deliver`]; connection ids are drawn from a random start, so that they are
//!   unique across nodes (an ack goes to one socket, wherever it is).

use axum::extract::ws::Utf8Bytes;
use futures::task::AtomicWaker;
use std::{
    collections::{HashMap, HashSet},
    future::poll_fn,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
        Arc, Mutex, OnceLock,
    },
    task::Poll,
};
use tokio::sync::mpsc;

use crate::{
    locks::lock,
    outbox::{outbox, Outbox, OutboxSender},
};

/// Frames a socket may have queued before it counts as lagging.
pub const OUTBOX_CAPACITY: usize = 1024;

/// What the hub pushes to a socket's handler. Frames are encoded once and shared by every
/// recipient (`Utf8Bytes` clones are reference counts). Small (40 bytes): a room's fan-out
/// queues one per member and message.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An encoded `ServerMsg` to forward as is.
    Frame(Utf8Bytes),
    /// A position of a conversation (a message or a change), one for all its recipients.
    Message(Arc<LiveItem>),
    /// The `ack` of this socket's own message; ordered with the deliveries.
    Ack(Box<Acked>),
}

/// A message or change of `conversation` at `seq`, already encoded; the handler skips it
/// if a `resume` has already sent it.
#[derive(Debug)]
pub struct LiveItem {
    pub conversation: Arc<str>,
    pub seq: u64,
    /// Who sent it, for a message (not a change): the frame may reach the sender's own
    /// socket before its ack, and then goes as that ack.
    pub sender: Option<Arc<str>>,
    pub frame: Utf8Bytes,
}

/// The `ack` of a socket's own message at `seq` of `conversation`, sent with
/// `client_msg_id`.
#[derive(Debug, Clone)]
pub struct Acked {
    pub conversation: Arc<str>,
    pub seq: u64,
    pub client_msg_id: Box<str>,
    pub frame: Utf8Bytes,
}

impl Outbound {
    /// Encodes a `ServerMsg` once, as a frame to forward as is.
    pub fn frame(msg: &app::protocol::ServerMsg) -> Self {
        Outbound::Frame(Utf8Bytes::from(msg.encode()))
    }

    pub fn message(
        conversation: Arc<str>,
        seq: u64,
        sender: Option<Arc<str>>,
        frame: Utf8Bytes,
    ) -> Self {
        Outbound::Message(Arc::new(LiveItem {
            conversation,
            seq,
            sender,
            frame,
        }))
    }

    pub fn ack(
        conversation: Arc<str>,
        seq: u64,
        client_msg_id: Box<str>,
        frame: Utf8Bytes,
    ) -> Self {
        Outbound::Ack(Box::new(Acked {
            conversation,
            seq,
            client_msg_id,
            frame,
        }))
    }
}

/// Why a socket must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Why {
    /// Its outbox overflowed: it fell too far behind.
    Lagging = 1,
    /// The session it was opened with signed out (or was ended by an administrator).
    SignedOut = 2,
    /// The server is shutting down.
    ShuttingDown = 3,
}

/// A socket's close signal: fired at most once (the first reason wins), and waited for by
/// that socket's loop alone.
#[derive(Debug, Default)]
pub struct Stop {
    why: AtomicU8,
    waker: AtomicWaker,
}

impl Stop {
    fn fire(&self, why: Why) {
        if self
            .why
            .compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.waker.wake();
        }
    }

    fn fired(&self) -> Option<Why> {
        match self.why.load(Ordering::Acquire) {
            1 => Some(Why::Lagging),
            2 => Some(Why::SignedOut),
            3 => Some(Why::ShuttingDown),
            _ => None,
        }
    }

    /// Resolves once the signal is fired, with its reason. Cheap to poll again and again:
    /// an atomic load and a waker registration, nothing shared with other sockets.
    pub async fn fired_with(&self) -> Why {
        poll_fn(|cx| {
            if let Some(why) = self.fired() {
                return Poll::Ready(why);
            }
            self.waker.register(cx.waker());
            // Fired between the first look and the registration: its wake-up may have
            // found no waker.
            self.fired().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }
}

#[derive(Debug)]
struct SocketEntry {
    conn_id: u64,
    /// The session the socket was opened with: its sign-out closes the socket.
    session: Arc<str>,
    /// `None` once the socket lagged: nothing more is queued for it.
    tx: Option<OutboxSender<Outbound>>,
    /// Fired when the socket must close, so that its handler closes it even if it is not
    /// reading its outbox (a socket that never sent its first frame).
    stop: Arc<Stop>,
}

impl SocketEntry {
    /// Queues `item`; a socket that cannot take it is cut off (and told by `stop`).
    /// Returns what happened, for the hub's counts.
    fn offer(&mut self, item: Outbound) -> Offered {
        let Some(tx) = &self.tx else {
            return Offered::Dropped;
        };
        if tx.try_send(item).is_ok() {
            Offered::Queued
        } else {
            self.tx = None;
            self.stop.fire(Why::Lagging);
            Offered::CutOff
        }
    }
}

enum Offered {
    Queued,
    /// The socket was lagging already.
    Dropped,
    /// The socket's outbox was full: it is lagging from now on.
    CutOff,
}

/// What the hub hands to the bus so that the sockets on other nodes get it too. Each is
/// the part of a call that this node's own sockets could not take.
#[derive(Debug, Clone)]
pub enum Relayed {
    /// `item` for every socket of `users` but `skip_conn`. A live message is for its
    /// conversation's members, whom every node knows: `users` is empty then.
    Push {
        users: Vec<String>,
        item: Outbound,
        skip_conn: Option<u64>,
    },
    /// `item` for the socket `conn_id` of `user`, which is not on this node.
    PushTo {
        user: String,
        conn_id: u64,
        item: Outbound,
    },
    /// The sockets of these sessions must close (they signed out).
    CloseSessions(Vec<String>),
    /// `user` opened their first socket on this node (`true`) or closed their last.
    Presence { user: String, online: bool },
}

/// What the hub has done since it started, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubCounts {
    /// Sockets registered now.
    pub sockets: usize,
    /// Items queued for sockets.
    pub queued: u64,
    /// Sockets cut off for lagging.
    pub lagged: u64,
}

/// A socket's place in the hub, from the upgrade until [`Registration::release`] (or until
/// it is dropped: an upgrade that never completed frees its place).
pub struct Registration {
    hub: Hub,
    user: String,
    conn_id: u64,
    released: bool,
    /// What the hub routes to this socket; closed once it lagged.
    pub outbox: Outbox<Outbound>,
    /// Fired once the socket must be closed, with the reason.
    pub stop: Arc<Stop>,
    /// Whether the user came online with this socket.
    pub came_online: bool,
}

impl Registration {
    /// Leaves the hub; returns whether the user is offline now.
    pub fn release(mut self) -> bool {
        self.released = true;
        self.hub.unregister(&self.user, self.conn_id)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.released {
            self.hub.unregister(&self.user, self.conn_id);
        }
    }
}

/// Usernames hashed with foldhash (a per-process random seed): a fan-out to a room hashes
/// one name per member, and the standard SipHash was a visible share of it.
type ByUser = HashMap<String, Vec<SocketEntry>, foldhash::fast::RandomState>;

#[derive(Default)]
struct Inner {
    /// username -> live sockets. A std mutex: never held across an await.
    sockets: Mutex<ByUser>,
    /// Set once the server is shutting down: a socket registered after that is stopped at
    /// once.
    closing: AtomicBool,
    /// Sockets registered now (changed under the `sockets` lock).
    open: AtomicU64,
    /// Items queued for sockets: added once per push, not per socket.
    queued: AtomicU64,
    lagged: AtomicU64,
    /// The next connection id.
    next_conn: AtomicU64,
    /// Set in a cluster: where what other nodes must see goes.
    relay: OnceLock<mpsc::Sender<Relayed>>,
    /// Relayed items dropped because the bus fell behind.
    relay_dropped: AtomicU64,
    /// Users online on other nodes: username -> those nodes.
    remote: Mutex<HashMap<String, HashSet<Arc<str>>>>,
}

/// Cheap-to-clone handle to the switchboard.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Default for Hub {
    fn default() -> Self {
        let mut start = [0u8; 8];
        getrandom::fill(&mut start).expect("the OS random source is available");
        // A random start in the lower half leaves room to count up for ever; ids of two
        // nodes' sockets meet only if their starts fall within one node's lifetime count.
        let start = (u64::from_le_bytes(start) >> 1).max(1);
        let inner = Inner {
            sockets: Mutex::default(),
            closing: AtomicBool::default(),
            open: AtomicU64::default(),
            queued: AtomicU64::default(),
            lagged: AtomicU64::default(),
            next_conn: AtomicU64::new(start),
            relay: OnceLock::new(),
            relay_dropped: AtomicU64::default(),
            remote: Mutex::default(),
        };
        Hub {
            inner: Arc::new(inner),
        }
    }
}

impl Hub {
    /// A connection id, unique on this node and (drawn from a random start) across nodes.
    pub fn next_conn_id(&self) -> u64 {
        self.inner.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// From now on, what other nodes must see is also handed to `relay` (once: the bus
    /// is started once).
    pub fn relay_to(&self, relay: mpsc::Sender<Relayed>) {
        let _ = self.inner.relay.set(relay);
    }

    /// Hands `item` to the bus, if there is one; dropped if the bus is that far behind
    /// (delivery between nodes is at most once: a socket fills what it missed from the
    /// store when the next message shows the gap, or when it resumes).
    fn relay(&self, item: Relayed) {
        if let Some(relay) = self.inner.relay.get() {
            if relay.try_send(item).is_err() {
                self.inner.relay_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn in_cluster(&self) -> bool {
        self.inner.relay.get().is_some()
    }

    /// Items the bus could not take (it fell behind), since the start.
    pub fn relay_dropped(&self) -> u64 {
        self.inner.relay_dropped.load(Ordering::Relaxed)
    }

    /// Whether `user` has a socket on another node.
    fn online_elsewhere(&self, user: &str) -> bool {
        lock(&self.inner.remote).contains_key(user)
    }

    /// `node` says `user` opened their first socket there, or closed their last.
    pub fn presence_elsewhere(&self, node: &Arc<str>, user: &str, online: bool) {
        let mut remote = lock(&self.inner.remote);
        if online {
            remote
                .entry(user.to_owned())
                .or_default()
                .insert(node.clone());
        } else if let Some(nodes) = remote.get_mut(user) {
            nodes.remove(node);
            if nodes.is_empty() {
                remote.remove(user);
            }
        }
    }

    /// `node`'s users online now are `users` (all of them: what was known is replaced).
    pub fn present_elsewhere(&self, node: &Arc<str>, users: &[String]) {
        let _ = self.forget_node(node);
        let mut remote = lock(&self.inner.remote);
        for user in users {
            remote.entry(user.clone()).or_default().insert(node.clone());
        }
    }

    /// `node` is gone: nobody is online there. Returns the users who were online there
    /// and now are nowhere.
    pub fn forget_node(&self, node: &str) -> Vec<String> {
        let mut gone = Vec::new();
        lock(&self.inner.remote).retain(|user, nodes| {
            let before = nodes.len();
            nodes.retain(|n| &**n != node);
            if nodes.is_empty() && before > 0 {
                gone.push(user.clone());
            }
            !nodes.is_empty()
        });
        let here = lock(&self.inner.sockets);
        gone.retain(|user| !here.contains_key(user));
        gone
    }

    /// The users with a socket on this node.
    pub fn local_users(&self) -> Vec<String> {
        lock(&self.inner.sockets).keys().cloned().collect()
    }

    /// What another node relayed: for this node's sockets only (never relayed again).
    pub fn deliver(&self, relayed: Relayed) {
        match relayed {
            Relayed::Push {
                users,
                item,
                skip_conn,
            } => self.push_here(&users, &item, skip_conn),
            Relayed::PushTo {
                user,
                conn_id,
                item,
            } => {
                self.push_to_here(&user, conn_id, item);
            }
            Relayed::CloseSessions(sessions) => {
                let sessions: Vec<&str> = sessions.iter().map(String::as_str).collect();
                self.close_sessions_here(&sessions);
            }
            // Presence of another node's users is kept by `presence_elsewhere`.
            Relayed::Presence { .. } => {}
        }
    }

    /// Registers a socket unless `user` already has `max` (every open socket counts until
    /// it is released, a lagging one included); checked and taken under one lock, so that
    /// concurrent upgrades cannot pass the cap together.
    pub fn try_register(
        &self,
        user: &str,
        session: &str,
        conn_id: u64,
        max: usize,
    ) -> Option<Registration> {
        let (tx, outbox) = outbox(OUTBOX_CAPACITY);
        let stop = Arc::new(Stop::default());
        let mut sockets = lock(&self.inner.sockets);
        let list = sockets.entry(user.to_owned()).or_default();
        if list.len() >= max {
            return None;
        }
        let first_here = list.is_empty();
        self.inner.open.fetch_add(1, Ordering::Relaxed);
        list.push(SocketEntry {
            conn_id,
            session: session.into(),
            tx: Some(tx),
            stop: stop.clone(),
        });
        // Read under the lock `close_all` takes after setting it: either it sees this
        // socket, or this socket sees the flag.
        if self.inner.closing.load(Ordering::Acquire) {
            stop.fire(Why::ShuttingDown);
        }
        drop(sockets);
        let came_online = first_here && !self.online_elsewhere(user);
        if first_here && self.in_cluster() {
            self.relay(Relayed::Presence {
                user: user.to_owned(),
                online: true,
            });
        }
        Some(Registration {
            hub: self.clone(),
            user: user.to_owned(),
            conn_id,
            released: false,
            outbox,
            stop,
            came_online,
        })
    }

    /// Stops every socket, and every one registered from now on: the server is shutting
    /// down.
    pub fn close_all(&self) {
        self.inner.closing.store(true, Ordering::Release);
        for s in lock(&self.inner.sockets).values().flatten() {
            s.stop.fire(Why::ShuttingDown);
        }
    }

    /// Stops the sockets opened with these sessions (which signed out), on every node.
    pub fn close_sessions(&self, sessions: &[&str]) {
        self.close_sessions_here(sessions);
        if self.in_cluster() {
            self.relay(Relayed::CloseSessions(
                sessions.iter().map(|s| (*s).to_owned()).collect(),
            ));
        }
    }

    fn close_sessions_here(&self, sessions: &[&str]) {
        for s in lock(&self.inner.sockets).values().flatten() {
            if sessions.contains(&&*s.session) {
                s.stop.fire(Why::SignedOut);
            }
        }
    }

    /// The sessions that have sockets open (each once).
    pub fn sessions(&self) -> Vec<Arc<str>> {
        let mut all: Vec<Arc<str>> = lock(&self.inner.sockets)
            .values()
            .flatten()
            .map(|s| s.session.clone())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Forgets a socket; returns whether the user is offline now (no socket left here or
    /// elsewhere).
    fn unregister(&self, user: &str, conn_id: u64) -> bool {
        let mut sockets = lock(&self.inner.sockets);
        let Some(list) = sockets.get_mut(user) else {
            return !self.online_elsewhere(user);
        };
        let before = list.len();
        list.retain(|s| s.conn_id != conn_id);
        self.inner
            .open
            .fetch_sub((before - list.len()) as u64, Ordering::Relaxed);
        if !list.is_empty() {
            return false;
        }
        sockets.remove(user);
        drop(sockets);
        if self.in_cluster() {
            self.relay(Relayed::Presence {
                user: user.to_owned(),
                online: false,
            });
        }
        !self.online_elsewhere(user)
    }

    /// Whether `user` has a socket open here or on another node.
    pub fn is_online(&self, user: &str) -> bool {
        lock(&self.inner.sockets).contains_key(user) || self.online_elsewhere(user)
    }

    /// How many sockets `user` has open (lagging ones included, until they are closed).
    pub fn socket_count(&self, user: &str) -> usize {
        lock(&self.inner.sockets).get(user).map_or(0, Vec::len)
    }

    /// Queues `item` for every socket of every user in `users`, except `skip_conn`, here
    /// and on the other nodes. Sockets that cannot take it are cut off (they are lagging;
    /// see the module docs).
    pub fn push(&self, users: &[String], item: &Outbound, skip_conn: Option<u64>) {
        self.push_here(users, item, skip_conn);
        if self.in_cluster() {
            let users = match item {
                // For the conversation's members, whom the other nodes know.
                Outbound::Message(_) => Vec::new(),
                _ => users.to_vec(),
            };
            self.relay(Relayed::Push {
                users,
                item: item.clone(),
                skip_conn,
            });
        }
    }

    fn push_here(&self, users: &[String], item: &Outbound, skip_conn: Option<u64>) {
        let mut tally = Tally::default();
        let mut sockets = lock(&self.inner.sockets);
        for user in users {
            for s in sockets.get_mut(user).into_iter().flatten() {
                if Some(s.conn_id) != skip_conn {
                    tally.add(s.offer(item.clone()));
                }
            }
        }
        drop(sockets);
        self.count(tally);
    }

    /// Queues `item` for one socket of `user`, here or on another node; cuts the socket
    /// off if it cannot take it.
    pub fn push_to(&self, user: &str, conn_id: u64, item: Outbound) {
        if let Some(item) = self.push_to_here(user, conn_id, item) {
            if self.in_cluster() {
                self.relay(Relayed::PushTo {
                    user: user.to_owned(),
                    conn_id,
                    item,
                });
            }
        }
    }

    /// Queues `item` for the socket if it is on this node; gives it back if not.
    fn push_to_here(&self, user: &str, conn_id: u64, item: Outbound) -> Option<Outbound> {
        let mut sockets = lock(&self.inner.sockets);
        let Some(s) = sockets
            .get_mut(user)
            .and_then(|list| list.iter_mut().find(|s| s.conn_id == conn_id))
        else {
            return Some(item);
        };
        let mut tally = Tally::default();
        tally.add(s.offer(item));
        drop(sockets);
        self.count(tally);
        None
    }

    /// What the hub has done so far.
    pub fn counts(&self) -> HubCounts {
        HubCounts {
            sockets: self.inner.open.load(Ordering::Relaxed) as usize,
            queued: self.inner.queued.load(Ordering::Relaxed),
            lagged: self.inner.lagged.load(Ordering::Relaxed),
        }
    }

    /// Adds a push's tally to the counts: one atomic add per push (per room's fan-out),
    /// not per socket.
    fn count(&self, tally: Tally) {
        if tally.queued > 0 {
            self.inner.queued.fetch_add(tally.queued, Ordering::Relaxed);
        }
        if tally.lagged > 0 {
            self.inner.lagged.fetch_add(tally.lagged, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct Tally {
    queued: u64,
    lagged: u64,
}

impl Tally {
    fn add(&mut self, offered: Offered) {
        match offered {
            Offered::Queued => self.queued += 1,
            Offered::CutOff => self.lagged += 1,
            Offered::Dropped => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A room's fan-out queues one item per member and message: what a live item carries
    /// beyond a frame lives behind one pointer.
    #[test]
    fn an_outbox_item_is_a_frame_and_a_tag() {
        assert!(std::mem::size_of::<Outbound>() <= 40);
    }

    #[test]
    fn a_user_is_online_while_any_socket_is_registered() {
        let hub = Hub::default();
        let a = hub.try_register("alice", "s-alice", 1, 32).unwrap();
        let b = hub.try_register("alice", "s-alice", 2, 32).unwrap();
        assert!(a.came_online && !b.came_online);
        assert!(!a.release());
        assert!(hub.is_online("alice"));
        drop(b);
        assert!(
            !hub.is_online("alice"),
            "a dropped registration frees its place"
        );
    }

    #[test]
    fn counts_follow_sockets_pushes_and_cut_offs() {
        let hub = Hub::default();
        let a = hub.try_register("alice", "s-alice", 1, 32).unwrap();
        let b = hub.try_register("bob", "s-bob", 2, 32).unwrap();
        let users = ["alice".to_owned(), "bob".to_owned()];
        let frame = Outbound::Frame("{}".into());
        hub.push(&users, &frame, Some(2));
        assert_eq!(
            hub.counts(),
            HubCounts {
                sockets: 2,
                queued: 1,
                lagged: 0
            }
        );
        // Bob never reads: his outbox fills, he is cut off once, and then skipped.
        for _ in 0..OUTBOX_CAPACITY + 5 {
            hub.push_to("bob", 2, frame.clone());
        }
        assert_eq!(
            hub.counts(),
            HubCounts {
                sockets: 2,
                queued: 1 + OUTBOX_CAPACITY as u64,
                lagged: 1
            }
        );
        drop(a);
        b.release();
        assert_eq!(hub.counts().sockets, 0);
    }

    #[test]
    fn the_socket_cap_counts_every_registered_socket() {
        let hub = Hub::default();
        let held: Vec<Registration> = (0..3)
            .map(|i| hub.try_register("alice", "s-alice", i, 3).unwrap())
            .collect();
        assert!(hub.try_register("alice", "s-alice", 9, 3).is_none());
        assert!(
            hub.try_register("bob", "s-bob", 10, 3).is_some(),
            "caps are per user"
        );
        drop(held);
        assert!(hub.try_register("alice", "s-alice", 11, 3).is_some());
    }

    #[test]
    fn a_full_outbox_cuts_off_only_that_socket_which_still_counts_until_closed() {
        let hub = Hub::default();
        let slow = hub.try_register("slow", "s-slow", 1, 32).unwrap();
        let mut fast = hub.try_register("fast", "s-fast", 2, 32).unwrap();
        let users = vec!["slow".to_owned(), "fast".to_owned()];
        let frame = Outbound::Frame(Utf8Bytes::from_static("{}"));
        for _ in 0..=OUTBOX_CAPACITY {
            hub.push(&users, &frame, None);
            // The fast reader keeps up.
            assert!(fast.outbox.try_recv().is_ok());
        }
        assert_eq!(slow.stop.fired(), Some(Why::Lagging));
        assert_eq!(fast.stop.fired(), None);
        assert_eq!(
            hub.socket_count("slow"),
            1,
            "open until its handler closes it"
        );
        assert!(slow.release());
        assert_eq!(hub.socket_count("slow"), 0);
    }

    #[test]
    fn a_sign_out_stops_only_that_sessions_sockets() {
        let hub = Hub::default();
        let phone = hub.try_register("alice", "phone", 1, 32).unwrap();
        let laptop = hub.try_register("alice", "laptop", 2, 32).unwrap();
        let bob = hub.try_register("bob", "bobs", 3, 32).unwrap();
        assert_eq!(hub.sessions().len(), 3);
        hub.close_sessions(&["phone"]);
        assert_eq!(phone.stop.fired(), Some(Why::SignedOut));
        assert_eq!(laptop.stop.fired(), None);
        assert_eq!(bob.stop.fired(), None);
    }

    #[test]
    fn shutting_down_stops_every_socket_and_later_ones_at_once_and_the_first_reason_wins() {
        let hub = Hub::default();
        let slow = hub.try_register("slow", "a", 1, 32).unwrap();
        slow.stop.fire(Why::Lagging);
        let open = hub.try_register("alice", "b", 2, 32).unwrap();
        hub.close_all();
        let late = hub.try_register("bob", "c", 3, 32).unwrap();
        assert_eq!(slow.stop.fired(), Some(Why::Lagging));
        assert_eq!(open.stop.fired(), Some(Why::ShuttingDown));
        assert_eq!(late.stop.fired(), Some(Why::ShuttingDown));
    }

    fn relayed(rx: &mut mpsc::Receiver<Relayed>) -> Vec<Relayed> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn in_a_cluster_what_other_nodes_must_see_goes_to_the_bus_once() {
        let hub = Hub::default();
        let (tx, mut rx) = mpsc::channel(64);
        hub.relay_to(tx);
        let mut alice = hub.try_register("alice", "a", 10, 32).unwrap();
        assert!(matches!(
            &relayed(&mut rx)[..],
            [Relayed::Presence { user, online: true }] if user == "alice"
        ));
        let users = ["alice".to_owned(), "bob".to_owned()];
        hub.push(&users, &Outbound::Frame("{}".into()), None);
        assert!(alice.outbox.try_recv().is_ok(), "delivered here too");
        assert!(matches!(
            &relayed(&mut rx)[..],
            [Relayed::Push { users: to, skip_conn: None, .. }] if to.len() == 2
        ));
        // A live message names no one: every node knows the conversation's members.
        let message = Outbound::message("r1".into(), 4, Some("bob".into()), "{}".into());
        hub.push(&users, &message, Some(10));
        assert!(
            alice.outbox.try_recv().is_err(),
            "the sender's own socket is skipped"
        );
        assert!(matches!(
            &relayed(&mut rx)[..],
            [Relayed::Push { users: to, skip_conn: Some(10), .. }] if to.is_empty()
        ));
        // An ack for a socket here stays here; for one elsewhere, it travels.
        hub.push_to("alice", 10, Outbound::Frame("{}".into()));
        assert!(relayed(&mut rx).is_empty());
        hub.push_to("alice", 99, Outbound::Frame("{}".into()));
        assert!(matches!(
            &relayed(&mut rx)[..],
            [Relayed::PushTo { conn_id: 99, .. }]
        ));
        // What another node relayed reaches the sockets here and goes nowhere else.
        while alice.outbox.try_recv().is_ok() {}
        hub.deliver(Relayed::Push {
            users: vec!["alice".into()],
            item: Outbound::Frame("{}".into()),
            skip_conn: None,
        });
        assert!(alice.outbox.try_recv().is_ok());
        hub.deliver(Relayed::CloseSessions(vec!["a".into()]));
        assert_eq!(alice.stop.fired(), Some(Why::SignedOut));
        assert!(relayed(&mut rx).is_empty());
    }

    #[test]
    fn a_user_online_on_another_node_is_online_here_until_that_node_is_gone() {
        let hub = Hub::default();
        let (tx, mut rx) = mpsc::channel(64);
        hub.relay_to(tx);
        let n2: Arc<str> = "n2".into();
        hub.presence_elsewhere(&n2, "bob", true);
        assert!(hub.is_online("bob"));
        let here = hub.try_register("bob", "b", 1, 32).unwrap();
        assert!(!here.came_online, "already online elsewhere");
        assert!(!here.release(), "still online on n2");
        assert!(matches!(
            &relayed(&mut rx)[..],
            [
                Relayed::Presence { online: true, .. },
                Relayed::Presence { online: false, .. }
            ]
        ));
        hub.present_elsewhere(&n2, &["carol".to_owned()]);
        assert!(!hub.is_online("bob"), "n2's list replaced what was known");
        assert!(hub.is_online("carol"));
        assert_eq!(hub.forget_node("n2"), ["carol".to_owned()]);
        assert!(!hub.is_online("carol"));
    }

    #[test]
    fn connection_ids_are_unique_and_start_at_random() {
        let (a, b) = (Hub::default(), Hub::default());
        let (x, y) = (a.next_conn_id(), a.next_conn_id());
        assert_eq!(y, x + 1);
        assert_ne!(
            x,
            b.next_conn_id(),
            "two nodes do not count from the same place"
        );
    }

    #[tokio::test]
    async fn a_waiting_socket_is_woken_when_its_stop_fires() {
        let hub = Hub::default();
        let r = hub.try_register("alice", "a", 1, 32).unwrap();
        let stop = r.stop.clone();
        let waiting = tokio::spawn(async move { stop.fired_with().await });
        tokio::task::yield_now().await;
        hub.close_sessions(&["a"]);
        let why = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(why, Why::SignedOut);
    }
}
