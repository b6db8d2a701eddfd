//! The in-process switchboard: who is online on which sockets, the per-conversation send
//! order, and fan-out. The database stays the truth; the hub only routes.
//!
//! - Every socket registers a bounded outbox (`OUTBOX_CAPACITY` frames). A frame is encoded
//!   once and shared (`Arc<str>`) by every recipient. A socket whose outbox is full is
//!   dropped from the hub, which closes its outbox; its handler tells the client `lagging`
//!   and closes it, and the client resumes on reconnect. Nobody else waits for it.
//! - Sends are stored by the [`crate::writer`]s, which assign `seq`s, commit in batches and
//!   only then ack and fan out, in `seq` order: every socket sees a conversation's messages
//!   in order with no gaps.
//! - Members of each conversation are cached here (the database stays the truth: every
//!   change of membership goes through [`Hub::forget_members`]).
//! - Presence: a user is online while they have at least one registered socket.

use axum::extract::ws::Utf8Bytes;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};
use tokio::sync::mpsc;

/// Frames a socket may have queued before it counts as lagging.
pub const OUTBOX_CAPACITY: usize = 1024;

/// Sends per user: a bucket of `BURST_SECONDS` seconds' worth of tokens, refilled at the
/// configured rate.
pub const BURST_SECONDS: f64 = 3.0;

/// What the hub pushes to a socket's handler. Frames are encoded once and shared by every
/// recipient (`Utf8Bytes` clones are reference counts).
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An encoded `ServerMsg` to forward as is.
    Frame(Utf8Bytes),
    /// A message of `conversation` at `seq`, already encoded; the handler skips it if a
    /// `resume` has already sent it.
    Message {
        conversation: Arc<str>,
        seq: u64,
        frame: Utf8Bytes,
    },
    /// The `ack` of this socket's own message at `seq`; ordered with the deliveries.
    Ack {
        conversation: Arc<str>,
        seq: u64,
        frame: Utf8Bytes,
    },
}

impl Outbound {
    /// Encodes a `ServerMsg` once, as a frame to forward as is.
    pub fn frame(msg: &app::protocol::ServerMsg) -> Self {
        Outbound::Frame(Utf8Bytes::from(msg.encode()))
    }
}

/// Members of a conversation, sorted by username.
pub type Members = Arc<[String]>;

#[derive(Debug)]
struct SocketEntry {
    conn_id: u64,
    tx: mpsc::Sender<Outbound>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Inner {
    /// Sends per second allowed per user.
    rate: f64,
    /// username -> live sockets. A std mutex: never held across an await.
    sockets: Mutex<HashMap<String, Vec<SocketEntry>>>,
    /// conversation key -> its members, once loaded from the database.
    members: Mutex<HashMap<String, Members>>,
    /// Bumped by every [`Hub::forget_members`], so that a load that raced a change of
    /// membership does not cache what it read before the change.
    members_generation: AtomicU64,
    /// username -> send budget. A std mutex: never held across an await.
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Cheap-to-clone handle to the switchboard.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// A hub allowing each user `send_rate` messages per second (bursts of three seconds').
    pub fn new(send_rate: u32) -> Self {
        Hub {
            inner: Arc::new(Inner {
                rate: f64::from(send_rate.max(1)),
                sockets: Mutex::default(),
                members: Mutex::default(),
                members_generation: AtomicU64::new(0),
                buckets: Mutex::default(),
            }),
        }
    }

    /// Registers a socket; returns its outbox and whether the user just came online.
    pub fn register(&self, user: &str, conn_id: u64) -> (mpsc::Receiver<Outbound>, bool) {
        let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
        let mut sockets = lock(&self.inner.sockets);
        let list = sockets.entry(user.to_owned()).or_default();
        let came_online = list.is_empty();
        list.push(SocketEntry { conn_id, tx });
        (rx, came_online)
    }

    /// Forgets a socket; returns whether the user is offline now (no socket left, counting
    /// sockets `push` already dropped for lagging).
    pub fn unregister(&self, user: &str, conn_id: u64) -> bool {
        let mut sockets = lock(&self.inner.sockets);
        let Some(list) = sockets.get_mut(user) else {
            return true;
        };
        list.retain(|s| s.conn_id != conn_id);
        if list.is_empty() {
            sockets.remove(user);
            true
        } else {
            false
        }
    }

    pub fn is_online(&self, user: &str) -> bool {
        lock(&self.inner.sockets).contains_key(user)
    }

    /// How many sockets `user` has open.
    pub fn socket_count(&self, user: &str) -> usize {
        lock(&self.inner.sockets).get(user).map_or(0, Vec::len)
    }

    /// Queues `item` for every socket of every user in `users`, except `skip_conn`.
    /// Sockets that cannot take it are dropped (they are lagging; see the module docs).
    pub fn push(&self, users: &[String], item: &Outbound, skip_conn: Option<u64>) {
        let mut sockets = lock(&self.inner.sockets);
        for user in users {
            if let Some(list) = sockets.get_mut(user) {
                list.retain(|s| {
                    Some(s.conn_id) == skip_conn || s.tx.try_send(item.clone()).is_ok()
                });
                if list.is_empty() {
                    sockets.remove(user);
                }
            }
        }
    }

    /// Queues `item` for one socket of `user`; drops the socket if it cannot take it.
    pub fn push_to(&self, user: &str, conn_id: u64, item: Outbound) {
        let mut sockets = lock(&self.inner.sockets);
        if let Some(list) = sockets.get_mut(user) {
            if let Some(i) = list.iter().position(|s| s.conn_id == conn_id) {
                if list[i].tx.try_send(item).is_err() {
                    list.swap_remove(i);
                }
            }
            if list.is_empty() {
                sockets.remove(user);
            }
        }
    }

    /// The cached members of `key`, if loaded.
    pub fn cached_members(&self, key: &str) -> Option<Members> {
        lock(&self.inner.members).get(key).cloned()
    }

    /// The current membership generation: read it before loading members from the database
    /// and hand it to [`Hub::cache_members`].
    pub fn members_generation(&self) -> u64 {
        self.inner.members_generation.load(Ordering::Acquire)
    }

    /// Caches members read from the database, unless membership changed since `generation`.
    pub fn cache_members(&self, key: &str, members: Members, generation: u64) {
        let mut map = lock(&self.inner.members);
        if self.inner.members_generation.load(Ordering::Acquire) == generation {
            map.insert(key.to_owned(), members);
        }
    }

    /// Drops the cached members of `key`: call after its membership changed in the database.
    pub fn forget_members(&self, key: &str) {
        let mut map = lock(&self.inner.members);
        self.inner.members_generation.fetch_add(1, Ordering::AcqRel);
        map.remove(key);
    }

    /// Takes one send token from `user`'s bucket; `false` when they are sending too fast.
    pub fn allow_send(&self, user: &str) -> bool {
        let now = Instant::now();
        let mut buckets = lock(&self.inner.buckets);
        let burst = self.inner.rate * BURST_SECONDS;
        let b = buckets.entry(user.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.inner.rate;
        b.tokens = (b.tokens + refill).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it: every critical
/// section here (and in [`crate::recent`]) leaves the maps consistent at each step.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_online_while_any_socket_is_open() {
        let hub = Hub::new(20);
        let (_a, first) = hub.register("alice", 1);
        let (_b, second) = hub.register("alice", 2);
        assert!(first && !second);
        assert!(!hub.unregister("alice", 1));
        assert!(hub.is_online("alice"));
        assert!(hub.unregister("alice", 2));
        assert!(!hub.is_online("alice"));
    }

    #[test]
    fn a_full_outbox_drops_only_that_socket() {
        let hub = Hub::new(20);
        let (_slow, _) = hub.register("slow", 1);
        let (mut fast, _) = hub.register("fast", 2);
        let users = vec!["slow".to_owned(), "fast".to_owned()];
        let frame = Outbound::Frame(Utf8Bytes::from_static("{}"));
        for _ in 0..=OUTBOX_CAPACITY {
            hub.push(&users, &frame, None);
            // The fast reader keeps up.
            assert!(fast.try_recv().is_ok());
        }
        assert!(!hub.is_online("slow"));
        assert!(hub.is_online("fast"));
    }

    #[test]
    fn sending_is_limited_to_a_burst_then_the_refill_rate() {
        let hub = Hub::new(20);
        let allowed = (0..100).filter(|_| hub.allow_send("alice")).count();
        assert_eq!(allowed, 60);
        assert!(hub.allow_send("bob"), "buckets are per user");
    }
}
