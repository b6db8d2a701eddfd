//! The recent-conversations list from memory: what [`crate::store`] read from the database
//! once, kept current by the store's own writes.
//!
//! Reading a user's list from SurrealDB costs a member row and a conversation record per
//! conversation (about 12 ms for 200 on the benchmark's database); this cache answers from
//! memory. The database stays the truth, and the store is the only writer, so every change
//! passes through here:
//! - A conversation's last message moves with each committed batch ([`RecentCache::message`]);
//!   only a later `seq` replaces it, so a stale read can never undo a newer message.
//! - A read position only moves forward ([`RecentCache::read`]), as in the database.
//! - A change of membership (open, create, join, leave) drops the user's list
//!   ([`RecentCache::forget_user`]); the next request reads it again.
//!
//! A load races the writes it does not see: while one is in flight for a user, any change
//! to that user marks it dirty, and a dirty load is returned to its caller (it is as fresh
//! as a database read) but not cached. Conversations' fixed parts (kind, name, the names of
//! the people in a direct conversation) never change once created.
//!
//! Nothing is evicted: memory grows with the conversations that had a message, a reader or
//! a history page since start-up (their last message's preview), and with the users who
//! asked for their list (about 50 bytes per conversation in it).
//!
//! The same entries answer [`RecentCache::last_seq`]: where a history page ends and where a
//! writer's numbering resumes, without a database read once a conversation is known.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::hub::lock;
use crate::store::{ConversationRow, Kind};

#[derive(Default)]
pub struct RecentCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// conversation key -> what the lists show of it.
    conversations: HashMap<String, Conversation>,
    /// username -> their conversations (key -> last read `seq`), or a load in flight.
    users: HashMap<String, UserEntry>,
}

#[derive(Default)]
struct Conversation {
    /// `None` until a load read it (a message may be committed first).
    fixed: Option<Fixed>,
    last: Last,
}

struct Fixed {
    kind: Kind,
    name: Option<String>,
    /// Display names of the people in a direct conversation, as loads have seen them.
    names: HashMap<String, String>,
}

#[derive(Default, Clone)]
struct Last {
    seq: u64,
    at: i64,
    sender: Option<String>,
    text: Option<String>,
}

enum UserEntry {
    /// `loads` reads from the database in flight; `dirty` once anything changed meanwhile.
    Loading {
        loads: u32,
        dirty: bool,
    },
    Loaded(HashMap<String, u64>),
}

impl RecentCache {
    /// `user`'s list, newest activity first, if everything in it is known.
    pub fn get(&self, user: &str) -> Option<Vec<ConversationRow>> {
        let state = lock(&self.state);
        let Some(UserEntry::Loaded(reads)) = state.users.get(user) else {
            return None;
        };
        let mut rows = Vec::with_capacity(reads.len());
        for (key, &last_read_seq) in reads {
            let conv = state.conversations.get(key)?;
            let fixed = conv.fixed.as_ref()?;
            let peer = match fixed.kind {
                Kind::Room => None,
                Kind::Direct => {
                    let other = other_in_direct(key, user);
                    Some((other.to_owned(), fixed.names.get(other)?.clone()))
                }
            };
            rows.push(ConversationRow {
                key: key.clone(),
                kind: fixed.kind,
                name: fixed.name.clone(),
                peer,
                last_seq: conv.last.seq,
                last_read_seq,
                last_at: conv.last.at,
                last_sender: conv.last.sender.clone(),
                last_text: conv.last.text.clone(),
            });
        }
        sort(&mut rows);
        Some(rows)
    }

    /// A read of `user`'s list from the database is starting.
    pub fn begin_load(&self, user: &str) {
        let mut state = lock(&self.state);
        match state.users.get_mut(user) {
            Some(UserEntry::Loading { loads, .. }) => *loads += 1,
            _ => {
                state.users.insert(
                    user.to_owned(),
                    UserEntry::Loading {
                        loads: 1,
                        dirty: false,
                    },
                );
            }
        }
    }

    /// The read started by [`Self::begin_load`] ended with `rows` (`None`: it failed).
    pub fn finish_load(&self, user: &str, rows: Option<&[ConversationRow]>) {
        let mut state = lock(&self.state);
        for row in rows.unwrap_or_default() {
            let conv = state.conversations.entry(row.key.clone()).or_default();
            let fixed = conv.fixed.get_or_insert_with(|| Fixed {
                kind: row.kind,
                name: row.name.clone(),
                names: HashMap::new(),
            });
            if let Some((username, display_name)) = &row.peer {
                fixed
                    .names
                    .entry(username.clone())
                    .or_insert_with(|| display_name.clone());
            }
            if row.last_seq > conv.last.seq {
                conv.last = Last {
                    seq: row.last_seq,
                    at: row.last_at,
                    sender: row.last_sender.clone(),
                    text: row.last_text.clone(),
                };
            }
        }
        let Some(UserEntry::Loading { loads, dirty }) = state.users.get_mut(user) else {
            return;
        };
        *loads -= 1;
        match (rows, *dirty) {
            (Some(rows), false) => {
                let reads = rows
                    .iter()
                    .map(|r| (r.key.clone(), r.last_read_seq))
                    .collect();
                state
                    .users
                    .insert(user.to_owned(), UserEntry::Loaded(reads));
            }
            _ if *loads == 0 => {
                state.users.remove(user);
            }
            // A failed load leaves the others in flight as they are; a dirty one leaves
            // them dirty (they may have started before the change).
            _ => {}
        }
    }

    /// `user`'s conversations changed (opened, created, joined or left one).
    pub fn forget_user(&self, user: &str) {
        let mut state = lock(&self.state);
        match state.users.get_mut(user) {
            Some(UserEntry::Loading { dirty, .. }) => *dirty = true,
            Some(UserEntry::Loaded(_)) => {
                state.users.remove(user);
            }
            None => {}
        }
    }

    /// `user` has read `key` up to `seq` (never moves backwards).
    pub fn read(&self, user: &str, key: &str, seq: u64) {
        let mut state = lock(&self.state);
        match state.users.get_mut(user) {
            Some(UserEntry::Loading { dirty, .. }) => *dirty = true,
            Some(UserEntry::Loaded(reads)) => match reads.get_mut(key) {
                Some(read) => *read = (*read).max(seq),
                // Not in the list we hold: it is out of date.
                None => {
                    state.users.remove(user);
                }
            },
            None => {}
        }
    }

    /// `key`'s last `seq`, if a list load, a read of it or a committed message made it
    /// known; from then on every commit keeps it current (see [`Self::message`]).
    pub fn last_seq(&self, key: &str) -> Option<u64> {
        lock(&self.state).conversations.get(key).map(|c| c.last.seq)
    }

    /// `key`'s newest message is now `seq` (older news is ignored).
    pub fn message(&self, key: &str, seq: u64, at: i64, sender: &str, text: &str) {
        let mut state = lock(&self.state);
        let conv = state.conversations.entry(key.to_owned()).or_default();
        if seq > conv.last.seq {
            conv.last = Last {
                seq,
                at,
                sender: Some(sender.to_owned()),
                text: Some(text.to_owned()),
            };
        }
    }
}

/// Newest activity first; ties by key, so the order is stable.
pub fn sort(rows: &mut [ConversationRow]) {
    rows.sort_by(|a, b| b.last_at.cmp(&a.last_at).then_with(|| a.key.cmp(&b.key)));
}

/// The other person in the direct conversation `key` (`a/b`), or `user` when talking to
/// themselves.
fn other_in_direct<'a>(key: &'a str, user: &'a str) -> &'a str {
    match key.split_once('/') {
        Some((a, b)) if a == user => b,
        Some((a, _)) => a,
        None => user,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        key: &str,
        kind: Kind,
        peer: Option<(&str, &str)>,
        last: u64,
        read: u64,
    ) -> ConversationRow {
        ConversationRow {
            key: key.to_owned(),
            kind,
            name: (kind == Kind::Room).then(|| "Room".to_owned()),
            peer: peer.map(|(u, n)| (u.to_owned(), n.to_owned())),
            last_seq: last,
            last_read_seq: read,
            last_at: last as i64,
            last_sender: (last > 0).then(|| "bob".to_owned()),
            last_text: (last > 0).then(|| format!("m{last}")),
        }
    }

    fn loaded(cache: &RecentCache, user: &str, rows: &[ConversationRow]) {
        cache.begin_load(user);
        cache.finish_load(user, Some(rows));
    }

    #[test]
    fn a_loaded_list_follows_messages_and_reads() {
        let cache = RecentCache::default();
        assert!(cache.get("alice").is_none());
        loaded(
            &cache,
            "alice",
            &[
                row("alice/bob", Kind::Direct, Some(("bob", "Bob")), 3, 1),
                row("r1", Kind::Room, None, 5, 5),
            ],
        );
        let list = cache.get("alice").unwrap();
        assert_eq!(list[0].key, "r1");
        assert_eq!(
            (list[1].unread(), list[1].peer.clone().unwrap().1.as_str()),
            (2, "Bob")
        );

        cache.message("alice/bob", 4, 10, "bob", "hi");
        cache.message("alice/bob", 2, 1, "bob", "old news");
        cache.read("alice", "alice/bob", 2);
        let list = cache.get("alice").unwrap();
        assert_eq!(list[0].key, "alice/bob", "newest activity first");
        assert_eq!((list[0].last_seq, list[0].unread()), (4, 2));
        assert_eq!(list[0].last_text.as_deref(), Some("hi"));
        cache.read("alice", "alice/bob", 1);
        assert_eq!(
            cache.get("alice").unwrap()[0].last_read_seq,
            2,
            "never backwards"
        );

        // Bob's view of the same conversation needs Alice's name, not known yet.
        cache.begin_load("bob");
        cache.finish_load(
            "bob",
            Some(&[row(
                "alice/bob",
                Kind::Direct,
                Some(("alice", "Alice")),
                3,
                0,
            )]),
        );
        let bob = cache.get("bob").unwrap();
        assert_eq!(
            (bob[0].last_seq, bob[0].peer.clone().unwrap().1.as_str()),
            (4, "Alice")
        );
    }

    #[test]
    fn a_load_that_raced_a_change_is_not_kept() {
        let cache = RecentCache::default();
        cache.begin_load("alice");
        cache.read("alice", "r1", 5);
        cache.finish_load("alice", Some(&[row("r1", Kind::Room, None, 5, 3)]));
        assert!(
            cache.get("alice").is_none(),
            "the load may have missed the read"
        );

        cache.begin_load("alice");
        cache.forget_user("alice");
        cache.finish_load("alice", Some(&[]));
        assert!(cache.get("alice").is_none());

        loaded(&cache, "alice", &[row("r1", Kind::Room, None, 5, 3)]);
        cache.forget_user("alice");
        assert!(cache.get("alice").is_none(), "membership changed");

        cache.begin_load("alice");
        cache.finish_load("alice", None);
        loaded(&cache, "alice", &[row("r1", Kind::Room, None, 5, 5)]);
        assert_eq!(cache.get("alice").unwrap()[0].unread(), 0);
    }

    #[test]
    fn a_message_committed_before_the_load_finishes_is_not_undone() {
        let cache = RecentCache::default();
        cache.begin_load("alice");
        cache.message("r1", 6, 60, "bob", "newer");
        cache.finish_load("alice", Some(&[row("r1", Kind::Room, None, 5, 5)]));
        let list = cache.get("alice").unwrap();
        assert_eq!((list[0].last_seq, list[0].unread()), (6, 1));
    }
}
