//! The in-process switchboard: who is online on which sockets, and fan-out. It is the only
//! way an event reaches a socket (so a bus to other nodes has one place to join), and it
//! only routes: the database stays the truth.
//!
//! - Every socket registers a bounded outbox (`OUTBOX_CAPACITY` items). A frame is encoded
//!   once and shared (`Utf8Bytes`, reference-counted) by every recipient. A socket whose
//!   outbox is full is dropped from the hub, which closes its outbox; its handler tells the
//!   client `lagging` and closes it, and the client resumes on reconnect. Nobody else waits
//!   for it.
//! - Messages and acks carry their conversation and `seq`, so that each socket can keep
//!   every conversation in order, without repeats (`crate::ws::delivery`).
//! - Presence: a user is online while they have at least one registered socket.

use axum::extract::ws::Utf8Bytes;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tokio::sync::mpsc;

use crate::locks::lock;

/// Frames a socket may have queued before it counts as lagging.
pub const OUTBOX_CAPACITY: usize = 1024;

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

#[derive(Debug)]
struct SocketEntry {
    conn_id: u64,
    tx: mpsc::Sender<Outbound>,
}

#[derive(Default)]
struct Inner {
    /// username -> live sockets. A std mutex: never held across an await.
    sockets: Mutex<HashMap<String, Vec<SocketEntry>>>,
}

/// Cheap-to-clone handle to the switchboard.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_online_while_any_socket_is_open() {
        let hub = Hub::default();
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
        let hub = Hub::default();
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
}
