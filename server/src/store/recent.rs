//! The recent-conversations lists from memory: what [`super`] read from the database once,
//! kept current by the store's own writes.
//!
//! Reading a user's list from SurrealDB costs a member row and a conversation record per
//! conversation (about 12 ms for 200 on the benchmark's database); this cache answers from
//! memory. The database stays the truth, and the store is the only writer, so every change
//! passes through here:
//! - A read position only moves forward ([`RecentCache::read`]), as in the database.
//! - A change of membership (open, create, join, leave, removal) or of role drops the
//!   user's list ([`RecentCache::forget_user`]); the next request reads it again.
//! - A change to a room's name, topic or privacy drops what is kept of the room
//!   ([`RecentCache::forget_conversation`]) and every member's list.
//! - Last messages are not kept here: the rows this cache returns are [`StoredRow`]s, as
//!   loaded, and the store puts each conversation's head over them
//!   ([`super::heads::Heads::view`]), as it does for rows read from the database.
//!
//! A load races the writes it does not see: while one is in flight for a user, any change
//! to that user marks it dirty, and a dirty load is returned to its caller (it is as fresh
//! as a database read) but not cached, nor is what it read of the conversations. A change to
//! how a person shows (name, picture, status) drops what is kept of them
//! ([`RecentCache::profile_changed`]); clients hear of it as `user_updated`.
//!
//! Nothing is evicted: memory grows with the conversations in the lists of the users who
//! asked for theirs since start-up (about 50 bytes per conversation in a list, plus the
//! conversation's preview as loaded).

use std::collections::HashMap;
use std::sync::Mutex;

use app::protocol::{NotifyLevel, Role, UserInfo};

use super::heads::{Mark, StoredRow};
use super::rows::{direct_peer, ConversationRow, Kind};
use crate::locks::lock;

#[derive(Default)]
pub struct RecentCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// conversation key -> what the lists show of it, as last loaded.
    conversations: HashMap<String, Conversation>,
    /// username -> their conversations (key -> read position), or a load in flight.
    users: HashMap<String, UserEntry>,
}

struct Conversation {
    kind: Kind,
    name: Option<String>,
    topic: Option<String>,
    private: bool,
    /// The people in a direct conversation as they show (name, picture, status), as
    /// loads have seen them since they last changed.
    names: HashMap<String, UserInfo>,
    /// The `last_*` fields as the newest load read them (heads add what came since).
    last: Last,
}

#[derive(Default, Clone)]
struct Last {
    at_mark: Mark,
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
    Loaded(HashMap<String, Membership>),
}

/// What a user's list keeps of their membership of one conversation.
#[derive(Clone, Copy)]
struct Membership {
    read: Mark,
    notify: NotifyLevel,
    role: Option<Role>,
}

impl RecentCache {
    /// `user`'s list as loaded and kept, unsorted, if everything in it is known.
    pub fn get(&self, user: &str) -> Option<Vec<StoredRow>> {
        let state = lock(&self.state);
        let Some(UserEntry::Loaded(reads)) = state.users.get(user) else {
            return None;
        };
        let mut rows = Vec::with_capacity(reads.len());
        for (key, &Membership { read, notify, role }) in reads {
            let conv = state.conversations.get(key)?;
            let peer = match conv.kind {
                Kind::Room => None,
                Kind::Direct => {
                    let other = direct_peer(key, user).unwrap_or(user);
                    Some(conv.names.get(other)?.clone())
                }
            };
            rows.push(StoredRow(ConversationRow {
                key: key.clone(),
                kind: conv.kind,
                name: conv.name.clone(),
                peer,
                last_seq: conv.last.at_mark.seq,
                last_n: conv.last.at_mark.n,
                last_read_seq: read.seq,
                last_read_n: read.n,
                notify,
                last_at: conv.last.at,
                last_sender: conv.last.sender.clone(),
                last_text: conv.last.text.clone(),
                topic: conv.topic.clone(),
                private: conv.private,
                role,
            }));
        }
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
    pub fn finish_load(&self, user: &str, rows: Option<&[StoredRow]>) {
        let mut state = lock(&self.state);
        let dirty = matches!(
            state.users.get(user),
            Some(UserEntry::Loading { dirty: true, .. })
        );
        // A dirty load may have read a room as it was before a change.
        let learned = if dirty { None } else { rows };
        for StoredRow(row) in learned.unwrap_or_default() {
            let conv = state
                .conversations
                .entry(row.key.clone())
                .or_insert_with(|| Conversation {
                    kind: row.kind,
                    name: row.name.clone(),
                    topic: row.topic.clone(),
                    private: row.private,
                    names: HashMap::new(),
                    last: Last::default(),
                });
            if let Some(peer) = &row.peer {
                conv.names
                    .entry(peer.username.clone())
                    .or_insert_with(|| peer.clone());
            }
            if row.last_seq > conv.last.at_mark.seq || conv.last.at_mark.seq == 0 {
                conv.last = Last {
                    at_mark: Mark::new(row.last_seq, row.last_n),
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
                    .map(|StoredRow(r)| {
                        let read = Mark::new(r.last_read_seq, r.last_read_n);
                        (
                            r.key.clone(),
                            Membership {
                                read,
                                notify: r.notify,
                                role: r.role,
                            },
                        )
                    })
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

    /// `user`'s conversations changed (opened, created, joined or left one, or set how one
    /// notifies them).
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

    /// `user` changed their name, picture or status: lists that show them are read again,
    /// and loads in flight are not kept (they may have read the old one).
    pub fn profile_changed(&self, user: &str) {
        let mut state = lock(&self.state);
        for conv in state.conversations.values_mut() {
            conv.names.remove(user);
        }
        for entry in state.users.values_mut() {
            if let UserEntry::Loading { dirty, .. } = entry {
                *dirty = true;
            }
        }
    }

    /// Everything may have changed (this node missed what other nodes said): every list
    /// is read again, and loads in flight are not kept.
    pub fn forget_all(&self) {
        let mut state = lock(&self.state);
        state.conversations.clear();
        state.users.retain(|_, entry| match entry {
            UserEntry::Loading { dirty, .. } => {
                *dirty = true;
                true
            }
            UserEntry::Loaded(_) => false,
        });
    }

    /// A room's name, topic or privacy changed: what is kept of it is read again (its
    /// members' lists are to be forgotten too, by [`Self::forget_user`]).
    pub fn forget_conversation(&self, key: &str) {
        lock(&self.state).conversations.remove(key);
    }

    /// `user` has read `key` up to `mark` (never moves backwards).
    pub fn read(&self, user: &str, key: &str, mark: Mark) {
        let mut state = lock(&self.state);
        match state.users.get_mut(user) {
            Some(UserEntry::Loading { dirty, .. }) => *dirty = true,
            Some(UserEntry::Loaded(reads)) => match reads.get_mut(key) {
                Some(m) => m.read = m.read.max(mark),
                // Not in the list we hold: it is out of date.
                None => {
                    state.users.remove(user);
                }
            },
            None => {}
        }
    }
}

/// Newest activity first; ties by key, so the order is stable.
pub fn sort(rows: &mut [ConversationRow]) {
    rows.sort_by(|a, b| b.last_at.cmp(&a.last_at).then_with(|| a.key.cmp(&b.key)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, kind: Kind, peer: Option<(&str, &str)>, last: u64, read: u64) -> StoredRow {
        StoredRow(ConversationRow {
            key: key.to_owned(),
            kind,
            name: (kind == Kind::Room).then(|| "Room".to_owned()),
            peer: peer.map(|(u, n)| UserInfo::named(u, n)),
            last_seq: last,
            last_n: last,
            last_read_seq: read,
            last_read_n: read,
            notify: NotifyLevel::All,
            last_at: last as i64,
            last_sender: (last > 0).then(|| "bob".to_owned()),
            last_text: (last > 0).then(|| format!("m{last}")),
            topic: None,
            private: false,
            role: None,
        })
    }

    fn loaded(cache: &RecentCache, user: &str, rows: &[StoredRow]) {
        cache.begin_load(user);
        cache.finish_load(user, Some(rows));
    }

    fn list(cache: &RecentCache, user: &str) -> Vec<ConversationRow> {
        let mut rows: Vec<ConversationRow> = cache
            .get(user)
            .expect("loaded")
            .into_iter()
            .map(|r| r.0)
            .collect();
        sort(&mut rows);
        rows
    }

    #[test]
    fn a_loaded_list_follows_reads_and_never_moves_them_back() {
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
        let rows = list(&cache, "alice");
        assert_eq!(rows[0].key, "r1", "newest activity first");
        assert_eq!(
            (
                rows[1].unread(),
                rows[1].peer.clone().unwrap().display_name.as_str()
            ),
            (2, "Bob")
        );
        cache.read("alice", "alice/bob", Mark::new(2, 2));
        cache.read("alice", "alice/bob", Mark::new(1, 1));
        assert_eq!(list(&cache, "alice")[1].last_read_seq, 2, "never backwards");

        // Bob's view of the same conversation needs Alice's name, not known yet.
        loaded(
            &cache,
            "bob",
            &[row(
                "alice/bob",
                Kind::Direct,
                Some(("alice", "Alice")),
                4,
                0,
            )],
        );
        let bob = list(&cache, "bob");
        assert_eq!(
            (
                bob[0].last_seq,
                bob[0].peer.clone().unwrap().display_name.as_str()
            ),
            (4, "Alice")
        );
        let alice = list(&cache, "alice");
        let ab = alice.iter().find(|r| r.key == "alice/bob").unwrap();
        assert_eq!(ab.last_seq, 4, "the newer load is kept");
    }

    #[test]
    fn a_load_that_raced_a_change_is_not_kept() {
        let cache = RecentCache::default();
        cache.begin_load("alice");
        cache.read("alice", "r1", Mark::new(5, 5));
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
        assert_eq!(list(&cache, "alice")[0].unread(), 0);
    }
}
