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
//! - Messages and acks carry their conversation and `seq`, so that each socket can keep
//!   every conversation in order, without repeats (`crate::ws::delivery`).
//! - Presence: a user is online while they have at least one registered socket.

use axum::extract::ws::Utf8Bytes;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
    /// `None` once the socket lagged: nothing more is queued for it.
    tx: Option<mpsc::Sender<Outbound>>,
    /// Cancelled when the socket lagged, so that its handler closes it even if it is not
    /// reading its outbox (a socket that never sent its first frame).
    dropped: CancellationToken,
}

impl SocketEntry {
    /// Queues `item`; a socket that cannot take it is cut off (and told by `dropped`).
    fn offer(&mut self, item: Outbound) {
        if let Some(tx) = &self.tx {
            if tx.try_send(item).is_err() {
                self.tx = None;
                self.dropped.cancel();
            }
        }
    }
}

/// A socket's place in the hub, from the upgrade until [`Registration::release`] (or until
/// it is dropped: an upgrade that never completed frees its place).
pub struct Registration {
    hub: Hub,
    user: String,
    conn_id: u64,
    released: bool,
    /// What the hub routes to this socket; closed once it lagged.
    pub outbox: mpsc::Receiver<Outbound>,
    /// Cancelled once the socket lagged: it must be closed.
    pub dropped: CancellationToken,
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
    /// Registers a socket unless `user` already has `max` (every open socket counts until
    /// it is released, a lagging one included); checked and taken under one lock, so that
    /// concurrent upgrades cannot pass the cap together.
    pub fn try_register(&self, user: &str, conn_id: u64, max: usize) -> Option<Registration> {
        let (tx, outbox) = mpsc::channel(OUTBOX_CAPACITY);
        let dropped = CancellationToken::new();
        let mut sockets = lock(&self.inner.sockets);
        let list = sockets.entry(user.to_owned()).or_default();
        if list.len() >= max {
            return None;
        }
        let came_online = list.is_empty();
        list.push(SocketEntry {
            conn_id,
            tx: Some(tx),
            dropped: dropped.clone(),
        });
        Some(Registration {
            hub: self.clone(),
            user: user.to_owned(),
            conn_id,
            released: false,
            outbox,
            dropped,
            came_online,
        })
    }

    /// Forgets a socket; returns whether the user is offline now (no socket left).
    fn unregister(&self, user: &str, conn_id: u64) -> bool {
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

    /// How many sockets `user` has open (lagging ones included, until they are closed).
    pub fn socket_count(&self, user: &str) -> usize {
        lock(&self.inner.sockets).get(user).map_or(0, Vec::len)
    }

    /// Queues `item` for every socket of every user in `users`, except `skip_conn`.
    /// Sockets that cannot take it are cut off (they are lagging; see the module docs).
    pub fn push(&self, users: &[String], item: &Outbound, skip_conn: Option<u64>) {
        let mut sockets = lock(&self.inner.sockets);
        for user in users {
            for s in sockets.get_mut(user).into_iter().flatten() {
                if Some(s.conn_id) != skip_conn {
                    s.offer(item.clone());
                }
            }
        }
    }

    /// Queues `item` for one socket of `user`; cuts the socket off if it cannot take it.
    pub fn push_to(&self, user: &str, conn_id: u64, item: Outbound) {
        let mut sockets = lock(&self.inner.sockets);
        if let Some(s) = sockets
            .get_mut(user)
            .and_then(|list| list.iter_mut().find(|s| s.conn_id == conn_id))
        {
            s.offer(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_online_while_any_socket_is_registered() {
        let hub = Hub::default();
        let a = hub.try_register("alice", 1, 32).unwrap();
        let b = hub.try_register("alice", 2, 32).unwrap();
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
    fn the_socket_cap_counts_every_registered_socket() {
        let hub = Hub::default();
        let held: Vec<Registration> = (0..3)
            .map(|i| hub.try_register("alice", i, 3).unwrap())
            .collect();
        assert!(hub.try_register("alice", 9, 3).is_none());
        assert!(
            hub.try_register("bob", 10, 3).is_some(),
            "caps are per user"
        );
        drop(held);
        assert!(hub.try_register("alice", 11, 3).is_some());
    }

    #[test]
    fn a_full_outbox_cuts_off_only_that_socket_which_still_counts_until_closed() {
        let hub = Hub::default();
        let slow = hub.try_register("slow", 1, 32).unwrap();
        let mut fast = hub.try_register("fast", 2, 32).unwrap();
        let users = vec!["slow".to_owned(), "fast".to_owned()];
        let frame = Outbound::Frame(Utf8Bytes::from_static("{}"));
        for _ in 0..=OUTBOX_CAPACITY {
            hub.push(&users, &frame, None);
            // The fast reader keeps up.
            assert!(fast.outbox.try_recv().is_ok());
        }
        assert!(slow.dropped.is_cancelled());
        assert!(!fast.dropped.is_cancelled());
        assert_eq!(
            hub.socket_count("slow"),
            1,
            "open until its handler closes it"
        );
        assert!(slow.release());
        assert_eq!(hub.socket_count("slow"), 0);
    }
}
