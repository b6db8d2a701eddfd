//! Conversations (direct ones and rooms), their members, and each user's list of them.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use app::{
    domain::RoomName,
    protocol::{NotifyLevel, UserInfo},
};
use surrealdb::types::RecordId;

use super::{
    heads::Mark,
    heads::StoredRow,
    recent, retry_conflicts,
    rows::{
        conversation_id, direct_key, key_of, member_id, role_of, to_u64, user_id, ConversationMeta,
        ConversationRow, Kind, MemberConversationRow, MemberReadRow, RoomListRow, RoomRow,
        RoomTermRow,
    },
    taken_table, transaction, StoreError, SurrealChatStore,
};
use crate::locks::lock;

/// Key of the public room every user can join (the old chats' "broadcast to all").
pub const DEFAULT_ROOM_KEY: &str = "general";
/// Its name, which no other room may take (it would pass for it).
pub const DEFAULT_ROOM_NAME: &str = "General";

/// A member as a page of members shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRead {
    pub user: UserInfo,
    pub last_read_seq: u64,
    pub role: app::roles::Role,
}

/// Members of a conversation, sorted by username.
pub type Members = Arc<[String]>;

/// Conversations' members once read, dropped by every change of membership (all of which
/// go through this store).
#[derive(Default)]
pub struct MemberCache {
    members: Mutex<HashMap<String, Members>>,
    /// Bumped by every change, so that a load that raced one does not cache what it read
    /// before the change.
    generation: AtomicU64,
}

impl MemberCache {
    fn get(&self, key: &str) -> Option<Members> {
        lock(&self.members).get(key).cloned()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn put(&self, key: &str, members: Members, generation: u64) {
        let mut map = lock(&self.members);
        if self.generation.load(Ordering::Acquire) == generation {
            map.insert(key.to_owned(), members);
        }
    }

    pub(super) fn forget_all(&self) {
        let mut map = lock(&self.members);
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    pub(super) fn forget(&self, key: &str) {
        let mut map = lock(&self.members);
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(key);
    }
}

/// A fresh room key: `r` and 16 random hex digits (room keys are unique, not secret).
fn new_room_key() -> String {
    let mut bytes = [0u8; 8];
    // The OS's random source; should it fail, the clock and a counter keep keys unique.
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n =
            crate::clock::now_ms() as u64 ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(40);
        bytes = n.to_be_bytes();
    }
    format!(
        "r{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

impl SurrealChatStore {
    pub(super) async fn ensure_default_room(&self, now_ms: i64) -> Result<(), StoreError> {
        self.db
            .query(
                "IF !record::exists($room) {
                    CREATE $room SET kind = 'room', name = $name, peers = [], last_seq = 0,
                        last_at = $now, created_at = $now, member_count = 0;
                    INSERT IGNORE INTO room_term $terms RETURN NONE;
                 };",
            )
            .bind(("room", conversation_id(DEFAULT_ROOM_KEY)))
            .bind(("name", DEFAULT_ROOM_NAME))
            .bind(("now", now_ms))
            .bind((
                "terms",
                RoomTermRow::of(DEFAULT_ROOM_KEY, DEFAULT_ROOM_NAME),
            ))
            .await?
            .check()?;
        Ok(())
    }

    /// Membership of `key` (and so `users`' lists) changed.
    pub(super) fn membership_changed(&self, key: &str, users: &[&str]) {
        self.members.forget(key);
        for user in users {
            self.recent.forget_user(user);
        }
        self.tell(|| super::Note::Members {
            conversation: key.to_owned(),
            users: users.iter().map(|u| (*u).to_owned()).collect(),
        });
    }

    /// The direct conversation between `a` and `b`, created (with both as members) on first
    /// use. Returns its key.
    pub async fn open_direct(&self, a: &str, b: &str, now_ms: i64) -> Result<String, StoreError> {
        if self.user(b).await?.is_none() || self.user(a).await?.is_none() {
            return Err(StoreError::NoSuchUser);
        }
        let key = direct_key(a, b);
        let created = retry_conflicts(|| self.create_direct(&key, a, b, now_ms)).await;
        self.membership_changed(&key, &[a, b]);
        created.map(|()| key)
    }

    /// Creates the direct conversation `key` of `a` and `b` unless it exists.
    async fn create_direct(
        &self,
        key: &str,
        a: &str,
        b: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let res = self
            .db
            .query(
                "BEGIN;
                 IF !record::exists($conv) {
                    CREATE $conv SET kind = 'direct', peers = [$a, $b], last_seq = 0,
                        last_at = $now, created_at = $now;
                    CREATE $ma SET conversation = $conv, user = $a, last_read_seq = 0, joined_at = $now;
                    CREATE $mb SET conversation = $conv, user = $b, last_read_seq = 0, joined_at = $now;
                 };
                 COMMIT;",
            )
            .bind(("conv", conversation_id(key)))
            .bind(("a", user_id(a)))
            .bind(("b", user_id(b)))
            .bind(("ma", member_id(key, a)))
            .bind(("mb", member_id(key, b)))
            .bind(("now", now_ms))
            .await?;
        match transaction(res) {
            Ok(()) => Ok(()),
            // The other person's transaction created it first.
            Err(e) if taken_table(&e).is_some() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a room (`private` or public) with `creator` as its first member and owner.
    /// Returns its key.
    pub async fn create_room(
        &self,
        creator: &str,
        name: &RoomName,
        private: bool,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let key = new_room_key();
        let res = self
            .db
            .query(
                "BEGIN;
                 CREATE $conv SET kind = 'room', name = $name, peers = [], last_seq = 0,
                    last_at = $now, created_at = $now, created_by = $creator, member_count = 1,
                    private = $private;
                 CREATE $member SET conversation = $conv, user = $user, last_read_seq = 0,
                    joined_at = $now;
                 INSERT IGNORE INTO room_term $terms RETURN NONE;
                 COMMIT;",
            )
            .bind(("conv", conversation_id(&key)))
            .bind(("member", member_id(&key, creator)))
            .bind(("name", name.as_str().to_owned()))
            .bind(("terms", RoomTermRow::of(&key, name.as_str())))
            .bind(("user", user_id(creator)))
            .bind(("creator", creator.to_owned()))
            .bind(("private", private.then_some(true)))
            .bind(("now", now_ms))
            .await;
        self.membership_changed(&key, &[creator]);
        transaction(res?)?;
        Ok(key)
    }

    /// Up to `limit` rooms with a word of their name beginning with `query` (any case),
    /// closest first, with their member counts: a bounded read of `room_term`, as people
    /// are found.
    pub async fn search_rooms(&self, query: &str, limit: u32) -> Result<Vec<RoomRow>, StoreError> {
        let keys = self
            .find_by_terms::<RoomTermRow>(query, limit as usize)
            .await?;
        let ids: Vec<RecordId> = keys.iter().map(|k| conversation_id(k)).collect();
        let mut res = self
            .db
            .query("SELECT id, name, member_count, private FROM $ids WHERE kind = 'room'")
            .bind(("ids", ids))
            .await?
            .check()?;
        let rows: Vec<RoomListRow> = res.take(0)?;
        let mut rooms: Vec<RoomRow> = rows.into_iter().map(RoomRow::from).collect();
        rooms.sort_by_key(|r| keys.iter().position(|k| *k == r.key));
        Ok(rooms)
    }

    /// A page of rooms in name order with their member counts: the first `limit` after the
    /// room `after` (from the start when `None`). Only the page is read.
    pub async fn rooms(&self, after: Option<&str>, limit: u32) -> Result<Vec<RoomRow>, StoreError> {
        let from = match after {
            Some(key) => {
                let mut res = self
                    .db
                    .query(
                        "SELECT id, name, member_count, private FROM ONLY $conv
                         WHERE kind = 'room'",
                    )
                    .bind(("conv", conversation_id(key)))
                    .await?
                    .check()?;
                let row: Option<RoomListRow> = res.take(0)?;
                Some(row.ok_or(StoreError::NoSuchConversation)?)
            }
            None => None,
        };
        let mut res = match from {
            None => {
                self.db
                    .query(
                        "SELECT id, name, member_count, private FROM conversation
                         WHERE kind = 'room' AND private != true
                         ORDER BY name, id LIMIT $limit",
                    )
                    .bind(("limit", i64::from(limit)))
                    .await?
            }
            // Rooms named like the cursor's that come after it, then the names after it: two
            // range reads of the `(kind, name)` index (one condition with `OR` reads them all).
            Some(from) => {
                self.db
                    .query(
                        "RETURN array::slice(array::concat(
                            (SELECT id, name, member_count, private FROM conversation
                                WHERE kind = 'room' AND name = $name AND id > $id
                                    AND private != true
                                ORDER BY name, id LIMIT $limit),
                            (SELECT id, name, member_count, private FROM conversation
                                WHERE kind = 'room' AND name > $name AND private != true
                                ORDER BY name, id LIMIT $limit)
                         ), 0, $limit)",
                    )
                    .bind(("name", from.name.unwrap_or_default()))
                    .bind(("id", from.id))
                    .bind(("limit", i64::from(limit)))
                    .await?
            }
        }
        .check()?;
        let rows: Vec<RoomListRow> = res.take(0)?;
        Ok(rows.into_iter().map(RoomRow::from).collect())
    }

    /// These members of `key` (unknown ones are left out), in the order given: each with
    /// their display name, read position (a position sending moved included) and role (the
    /// owner is `created_by`).
    pub async fn members_read(
        &self,
        key: &str,
        usernames: &[String],
        created_by: Option<&str>,
    ) -> Result<Vec<MemberRead>, StoreError> {
        let ids: Vec<RecordId> = usernames.iter().map(|u| member_id(key, u)).collect();
        let mut res = self
            .db
            .query(
                "SELECT user, user.display_name AS display_name, user.avatar AS avatar,
                    user.status AS status, last_read_seq, role FROM $ids",
            )
            .bind(("ids", ids))
            .await?
            .check()?;
        let rows: Vec<MemberReadRow> = res.take(0)?;
        let heads = self.heads();
        let mut out: Vec<MemberRead> = rows
            .into_iter()
            .map(|r| {
                let user = key_of(&r.user);
                let stored = to_u64(r.last_read_seq);
                // Only the position is wanted: its `n` does not matter here.
                let read = heads.read_position(&user, key, Mark::new(stored, 0));
                MemberRead {
                    role: role_of(r.role.as_deref(), &user, created_by),
                    user: UserInfo {
                        username: user,
                        display_name: r.display_name,
                        avatar: r.avatar,
                        status: r.status,
                    },
                    last_read_seq: read.seq,
                }
            })
            .collect();
        drop(heads);
        out.sort_by_key(|m| usernames.iter().position(|n| *n == m.user.username));
        Ok(out)
    }

    /// How many rooms `username` has created.
    pub async fn rooms_created_by(&self, username: &str) -> Result<u64, StoreError> {
        let mut res = self
            .db
            .query("SELECT VALUE count() FROM conversation WHERE created_by = $user GROUP ALL")
            .bind(("user", username.to_owned()))
            .await?
            .check()?;
        let counts: Vec<i64> = res.take(0)?;
        Ok(counts.first().copied().map_or(0, to_u64))
    }

    /// Joins a room (no-op when already a member; `Banned` when banned). A new member has
    /// read nothing. Whether they may (a private room) is the chat service's to decide.
    pub async fn join_room(
        &self,
        key: &str,
        username: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.require_room(key, username).await?;
        self.admit(key, username, now_ms).await.map(|_| ())
    }

    pub async fn leave_room(&self, key: &str, username: &str) -> Result<(), StoreError> {
        self.require_room(key, username).await?;
        self.require_member(key, username).await?;
        let one_at_a_time = self.membership_lock(key).await;
        let left = retry_conflicts(|| async {
            self.db
                .query(
                    "BEGIN;
                     IF record::exists($m) {
                        DELETE $m;
                        UPDATE $conv SET member_count -= 1;
                     };
                     COMMIT;",
                )
                .bind(("m", member_id(key, username)))
                .bind(("conv", conversation_id(key)))
                .await
                .and_then(transaction)?;
            Ok(())
        })
        .await;
        drop(one_at_a_time);
        self.membership_changed(key, &[username]);
        left
    }

    /// Fails unless `key` is a room. A direct conversation is `NotARoom` only to its own
    /// members: to anyone else it does not exist, as on every other path, so that who talks
    /// to whom does not leak.
    async fn require_room(&self, key: &str, username: &str) -> Result<(), StoreError> {
        match self.meta(key).await? {
            None => Err(StoreError::NoSuchConversation),
            Some(m) if m.kind != "room" => match self.require_member(key, username).await {
                Ok(_) => Err(StoreError::NotARoom),
                Err(StoreError::NotMember) => Err(StoreError::NoSuchConversation),
                Err(e) => Err(e),
            },
            Some(_) => Ok(()),
        }
    }

    async fn meta(&self, key: &str) -> Result<Option<ConversationMeta>, StoreError> {
        let mut res = self
            .db
            .query("SELECT kind, name, private, created_by FROM ONLY $conv")
            .bind(("conv", conversation_id(key)))
            .await?
            .check()?;
        Ok(res.take(0)?)
    }

    /// Fails with `NoSuchConversation` or `NotMember` unless `username` belongs to `key`.
    /// Returns the conversation's members.
    pub async fn require_member(&self, key: &str, username: &str) -> Result<Members, StoreError> {
        let members = self.members(key).await?;
        if members
            .binary_search_by(|m| m.as_str().cmp(username))
            .is_ok()
        {
            Ok(members)
        } else if members.is_empty() && self.meta(key).await?.is_none() {
            Err(StoreError::NoSuchConversation)
        } else {
            Err(StoreError::NotMember)
        }
    }

    /// Sets how `key` notifies `username` (a member).
    pub async fn set_notify(
        &self,
        key: &str,
        username: &str,
        level: NotifyLevel,
    ) -> Result<(), StoreError> {
        self.require_member(key, username).await?;
        retry_conflicts(|| async {
            self.db
                .query("UPDATE $member SET notify = $level RETURN NONE")
                .bind(("member", member_id(key, username)))
                .bind((
                    "level",
                    (level != NotifyLevel::All).then(|| level.as_str().to_owned()),
                ))
                .await?
                .check()?;
            Ok(())
        })
        .await?;
        self.recent.forget_user(username);
        self.tell(|| super::Note::Lists {
            users: vec![username.to_owned()],
        });
        Ok(())
    }

    /// Usernames of the conversation's members, sorted: from memory once read.
    pub async fn members(&self, key: &str) -> Result<Members, StoreError> {
        if let Some(members) = self.members.get(key) {
            return Ok(members);
        }
        let generation = self.members.generation();
        let mut res = self
            .db
            .query("SELECT VALUE user FROM member WHERE conversation = $conv")
            .bind(("conv", conversation_id(key)))
            .await?
            .check()?;
        let users: Vec<RecordId> = res.take(0)?;
        let mut names: Vec<String> = users.iter().map(key_of).collect();
        names.sort();
        let members: Members = names.into();
        // An unknown key is not cached: anyone could fill the cache with made-up keys.
        if !members.is_empty() {
            self.members.put(key, members.clone(), generation);
        }
        Ok(members)
    }

    /// The user's conversations, latest activity first.
    pub async fn recent_conversations(
        &self,
        username: &str,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        let stored = match self.recent.get(username) {
            Some(rows) => rows,
            None => {
                self.recent.begin_load(username);
                let rows = self.stored_rows(username, None).await;
                self.recent
                    .finish_load(username, rows.as_ref().ok().map(Vec::as_slice));
                rows?
            }
        };
        let mut rows = self.view(username, stored);
        recent::sort(&mut rows);
        Ok(rows)
    }

    /// One of the user's conversations; `NotMember` if they are not in it.
    pub async fn conversation_row(
        &self,
        username: &str,
        key: &str,
    ) -> Result<ConversationRow, StoreError> {
        let stored = self.stored_rows(username, Some(key)).await?;
        self.view(username, stored)
            .pop()
            .ok_or(StoreError::NotMember)
    }

    /// Rows as stored, with each conversation's head put over them.
    fn view(&self, username: &str, stored: Vec<StoredRow>) -> Vec<ConversationRow> {
        let mut heads = self.heads();
        stored
            .into_iter()
            .map(|row| heads.view(username, row))
            .collect()
    }

    /// All of the user's conversations as stored, or only `key`.
    async fn stored_rows(
        &self,
        username: &str,
        key: Option<&str>,
    ) -> Result<Vec<StoredRow>, StoreError> {
        // The conversation record is read once per row, not once per field.
        const FIELDS: &str =
            "SELECT last_read_seq, last_read_n, notify, role, conversation.{id, kind, name,
                    peers, last_seq, last_n, last_at, last_sender, last_text, topic,
                    private, created_by} AS c";
        let query = match key {
            None => self
                .db
                .query(format!("{FIELDS} FROM member WHERE user = $user"))
                .bind(("user", user_id(username))),
            // A member record's id is derived from the conversation and the user.
            Some(key) => self
                .db
                .query(format!("{FIELDS} FROM $member"))
                .bind(("member", member_id(key, username))),
        };
        let rows: Vec<MemberConversationRow> = query.await?.check()?.take(0)?;
        // The user too: a conversation with oneself shows oneself.
        let mut peers: Vec<String> = rows
            .iter()
            .flat_map(|r| r.c.peers.iter().map(key_of))
            .collect();
        peers.sort();
        peers.dedup();
        let people: HashMap<String, UserInfo> = self
            .profiles(&peers)
            .await?
            .into_iter()
            .map(|u| (u.username.clone(), u))
            .collect();
        Ok(rows
            .into_iter()
            .map(|r| {
                let kind = if r.c.kind == "direct" {
                    Kind::Direct
                } else {
                    Kind::Room
                };
                let peer = (kind == Kind::Direct).then(|| {
                    let p =
                        r.c.peers
                            .iter()
                            .map(key_of)
                            .find(|p| p != username)
                            // A conversation with oneself is a direct conversation too.
                            .unwrap_or_else(|| username.to_owned());
                    people.get(&p).cloned().unwrap_or_else(|| UserInfo {
                        display_name: p.clone(),
                        username: p,
                        avatar: None,
                        status: None,
                    })
                });
                StoredRow(ConversationRow {
                    key: key_of(&r.c.id),
                    kind,
                    name: r.c.name,
                    peer,
                    last_seq: to_u64(r.c.last_seq),
                    // Absent before changes existed: positions were messages only.
                    last_n: r.c.last_n.map_or(to_u64(r.c.last_seq), to_u64),
                    last_read_seq: to_u64(r.last_read_seq),
                    last_read_n: r.last_read_n.map_or(to_u64(r.last_read_seq), to_u64),
                    notify: r
                        .notify
                        .as_deref()
                        .and_then(NotifyLevel::parse)
                        .unwrap_or_default(),
                    last_at: r.c.last_at,
                    last_sender: r.c.last_sender,
                    last_text: r.c.last_text,
                    role: (kind == Kind::Room)
                        .then(|| role_of(r.role.as_deref(), username, r.c.created_by.as_deref())),
                    topic: r.c.topic,
                    private: r.c.private.unwrap_or(false),
                })
            })
            .collect())
    }
}
