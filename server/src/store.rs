//! `SurrealChatStore`: accounts, conversations, members and messages in embedded SurrealDB.
//!
//! The database is the truth; this module is the only place that speaks SurrealQL for chats.
//! Decisions worth knowing:
//! - A direct conversation's record key is derived from the two usernames in sorted order
//!   (`alice/bob`), so there is exactly one per pair whoever starts it: the record id is the
//!   uniqueness constraint.
//! - A message's `seq` is assigned by the caller (the server serialises sends per
//!   conversation) and is part of its record id, `msg:[conversation, seq]`: a second message
//!   at the same position is refused by the id itself, and a history page is a range of
//!   ids, read straight from the key space (no index). A batch of messages is one
//!   transaction that writes those records and nothing else; what they change elsewhere
//!   (each conversation's `last_*` fields, the senders' read positions) is kept in memory
//!   and follows within a second ([`SurrealChatStore::store_pending`]); every read of those
//!   fields applies what is pending. After a crash, opening the store puts each
//!   conversation's `last_*` fields, and the read positions its senders moved, back in
//!   step with its messages ([`SurrealChatStore::repair_last_messages`]). A
//!   message is one record and nothing else: no secondary index (in 3.3.5 each one cost
//!   more CPU per insert than the row itself) and no record per `client_msg_id` (it cost
//!   a third of the store's throughput). Retried sends are recognised by
//!   [`crate::writer`], from memory and each conversation's newest messages.
//! - Unread counts are never stored: they are `conversation.last_seq - member.last_read_seq`.
//! - Times are integers (milliseconds since the Unix epoch): lean records, no conversions.

use app::domain::{DisplayName, RoomName, Username};
use std::{
    collections::HashMap,
    ops::Bound,
    sync::{Arc, Mutex},
    time::Duration,
};
use surrealdb::{
    engine::local::Db,
    types::{Array, RecordId, RecordIdKey, RecordIdKeyRange, SurrealValue, Value},
    Surreal,
};

use crate::db::DbError;
use crate::hub::lock;
use crate::recent::{self, RecentCache};

/// The tables, fields and indexes of the chat; applied at every start (idempotent).
pub const SCHEMA: &str = "
DEFINE TABLE IF NOT EXISTS user SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS display_name ON user TYPE string;
DEFINE FIELD IF NOT EXISTS password_hash ON user TYPE string;
DEFINE FIELD IF NOT EXISTS created_at ON user TYPE int;

DEFINE TABLE IF NOT EXISTS conversation SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS kind ON conversation TYPE string ASSERT $value IN ['direct', 'room'];
DEFINE FIELD IF NOT EXISTS name ON conversation TYPE option<string>;
DEFINE FIELD IF NOT EXISTS peers ON conversation TYPE array<record<user>>;
DEFINE FIELD IF NOT EXISTS last_seq ON conversation TYPE int;
DEFINE FIELD IF NOT EXISTS last_at ON conversation TYPE int;
DEFINE FIELD IF NOT EXISTS last_sender ON conversation TYPE option<string>;
DEFINE FIELD IF NOT EXISTS last_text ON conversation TYPE option<string>;
DEFINE FIELD IF NOT EXISTS created_at ON conversation TYPE int;
DEFINE INDEX IF NOT EXISTS conversation_kind ON conversation FIELDS kind;

DEFINE TABLE IF NOT EXISTS member SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS conversation ON member TYPE record<conversation>;
DEFINE FIELD IF NOT EXISTS user ON member TYPE record<user>;
DEFINE FIELD IF NOT EXISTS last_read_seq ON member TYPE int;
DEFINE FIELD IF NOT EXISTS joined_at ON member TYPE int;
DEFINE INDEX IF NOT EXISTS member_user ON member FIELDS user;
DEFINE INDEX IF NOT EXISTS member_conversation ON member FIELDS conversation;

-- Messages: `msg:[conversation key, seq]` with `sender` (a username), `body`,
-- `client_msg_id` and `sent_at` (ms). SCHEMALESS: its rows are written only by
-- `append_batch`, from a typed Rust row (`MessageRow`) and read back into the same type,
-- and the database's per-field checks cost ~15 % of the store's throughput (measured with
-- `store_ceiling`).
DEFINE TABLE IF NOT EXISTS msg SCHEMALESS;

-- `store_state:shutdown.clean`: false while a store has the database open, true once it
-- stored everything it kept in memory and closed.
DEFINE TABLE IF NOT EXISTS store_state SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS clean ON store_state TYPE bool;
";

/// Pending changes stored per transaction by [`SurrealChatStore::store_pending`]. A
/// statement runs to its end without yielding its thread: 64 rows took 7–15 ms under the
/// open-loop benchmark, 8 take 1–4 ms with their sync (measured when this ran on the
/// sockets' runtime; it has a thread of its own now, see [`crate::writer`]).
const PENDING_CHUNK: usize = 8;

/// Schema 1 kept messages in `message` (random ids, two unique indexes); opening such a
/// database moves them to `msg` once, this many per transaction.
const MIGRATION_PAGE: i64 = 2_000;

/// Key of the public room every user can join (the old chats' "broadcast to all").
pub const DEFAULT_ROOM_KEY: &str = "general";
const DEFAULT_ROOM_NAME: &str = "General";
/// Longest preview kept on a conversation for the recent-conversations list.
const PREVIEW_CHARS: usize = 120;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username is taken")]
    UsernameTaken,
    #[error("no such user")]
    NoSuchUser,
    #[error("no such conversation")]
    NoSuchConversation,
    #[error("not a member of this conversation")]
    NotMember,
    #[error("a direct conversation cannot be joined or left")]
    NotARoom,
    #[error("a message already has this position")]
    SeqTaken,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<surrealdb::Error> for StoreError {
    fn from(e: surrealdb::Error) -> Self {
        StoreError::Db(DbError::Surreal(e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Direct,
    Room,
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub username: Username,
    pub display_name: String,
    pub password_hash: String,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub conversation: String,
    pub seq: u64,
    pub sender: String,
    pub body: String,
    pub client_msg_id: String,
    pub sent_at: i64,
}

/// One line of a user's recent-conversations list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    pub key: String,
    pub kind: Kind,
    /// The room's name; `None` for a direct conversation.
    pub name: Option<String>,
    /// For a direct conversation: the other user and their display name.
    pub peer: Option<(String, String)>,
    pub last_seq: u64,
    pub last_read_seq: u64,
    pub last_at: i64,
    pub last_sender: Option<String>,
    pub last_text: Option<String>,
}

impl ConversationRow {
    pub fn unread(&self) -> u64 {
        self.last_seq.saturating_sub(self.last_read_seq)
    }
}

/// A room as listed to someone who may join it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRow {
    pub key: String,
    pub name: String,
    pub member_count: u64,
}

#[derive(Debug, SurrealValue)]
struct UserRow {
    id: RecordId,
    display_name: String,
    password_hash: String,
}

/// A message as stored (`id` is `msg:[conversation, seq]`): read by the queries, written
/// by `append_batch`.
#[derive(Debug, SurrealValue)]
struct MessageRow {
    id: RecordId,
    sender: String,
    body: String,
    client_msg_id: String,
    sent_at: i64,
}

/// How one message is stored.
fn stored_row(m: &MessageRecord) -> MessageRow {
    MessageRow {
        id: message_id(&m.conversation, m.seq),
        sender: m.sender.clone(),
        body: m.body.clone(),
        client_msg_id: m.client_msg_id.clone(),
        sent_at: m.sent_at,
    }
}

/// A message in schema 1's `message` table (see [`SurrealChatStore::migrate_messages`]).
#[derive(Debug, SurrealValue)]
struct OldMessageRow {
    id: RecordId,
    conversation: RecordId,
    seq: i64,
    sender: RecordId,
    body: String,
    client_msg_id: String,
    sent_at: i64,
}

#[derive(Debug, SurrealValue)]
struct LastMessageRow {
    id: RecordId,
    seq: i64,
    at: i64,
    sender: String,
    text: String,
}

#[derive(Debug, SurrealValue)]
struct ReadRow {
    id: RecordId,
    seq: i64,
}

#[derive(Debug, SurrealValue)]
struct MemberConversationRow {
    last_read_seq: i64,
    c: ConversationFields,
}

#[derive(Debug, SurrealValue)]
struct ConversationFields {
    id: RecordId,
    kind: String,
    name: Option<String>,
    peers: Vec<RecordId>,
    last_seq: i64,
    last_at: i64,
    last_sender: Option<String>,
    last_text: Option<String>,
}

#[derive(Debug, SurrealValue)]
struct ConversationMeta {
    kind: String,
}

/// A conversation's `last_*` fields as stored.
#[derive(Debug, SurrealValue)]
struct LastFieldsRow {
    last_seq: i64,
    last_at: i64,
    last_sender: Option<String>,
    last_text: Option<String>,
}

#[derive(Debug, SurrealValue)]
struct ConversationSeqRow {
    id: RecordId,
    last_seq: i64,
}

#[derive(Debug, SurrealValue)]
struct RoomListRow {
    id: RecordId,
    name: Option<String>,
    members: i64,
}

#[derive(Debug, SurrealValue)]
struct NameRow {
    id: RecordId,
    display_name: String,
}

fn user_id(username: &str) -> RecordId {
    RecordId::new("user", username)
}

fn conversation_id(key: &str) -> RecordId {
    RecordId::new("conversation", key)
}

fn message_id(conversation: &str, seq: u64) -> RecordId {
    RecordId::new("msg", message_key(conversation, seq))
}

fn message_key(conversation: &str, seq: u64) -> RecordIdKey {
    RecordIdKey::Array(Array::from(vec![
        Value::String(conversation.to_owned()),
        Value::from_t(seq as i64),
    ]))
}

/// `msg:[conversation, from]..[conversation, to]` (`to` excluded): a page of history.
fn message_range(conversation: &str, from: u64, to: u64) -> RecordId {
    RecordId::new(
        "msg",
        RecordIdKeyRange {
            start: Bound::Included(message_key(conversation, from)),
            end: Bound::Excluded(message_key(conversation, to)),
        },
    )
}

fn member_id(conversation: &str, username: &str) -> RecordId {
    RecordId::new("member", format!("{conversation}|{username}"))
}

/// The string key of a record id (every id this store creates has one).
fn key_of(id: &RecordId) -> String {
    match &id.key {
        RecordIdKey::String(s) => s.clone(),
        RecordIdKey::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn to_u64(n: i64) -> u64 {
    n.max(0) as u64
}

/// The canonical key of the direct conversation between two users.
pub fn direct_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}/{b}")
    } else {
        format!("{b}/{a}")
    }
}

/// A fresh room key: `r` and 16 hex digits from the standard library's randomly keyed
/// hasher (room keys are unique, not secret: rooms are listed to everyone).
fn new_room_key() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("r{:016x}", h.finish())
}

/// True when a SurrealDB error is a unique-index or record-id clash.
/// The outcome of a `BEGIN; …; COMMIT;` query. `check()` would report the first failed
/// statement, which in a failed transaction is usually a bystander ("not executed due to a
/// failed transaction"); the statement that really failed (a record id taken, a `THROW`) may
/// come later, so its error is the one returned.
fn transaction(mut res: surrealdb::IndexedResults) -> Result<(), surrealdb::Error> {
    let mut errors: Vec<(usize, surrealdb::Error)> = res.take_errors().into_iter().collect();
    errors.sort_by_key(|(i, _)| *i);
    let cause = errors
        .iter()
        .position(|(_, e)| {
            let text = e.to_string();
            !text.contains("not executed due to") && !text.contains("Cannot COMMIT")
        })
        .unwrap_or(0);
    match errors.into_iter().nth(cause) {
        None => Ok(()),
        Some((_, e)) => Err(e),
    }
}

fn is_duplicate(e: &surrealdb::Error) -> bool {
    let text = e.to_string();
    text.contains("already contains") || text.contains("already exists")
}

/// The last message of a conversation, as its `last_*` fields hold it.
#[derive(Debug, Clone)]
struct LastMessage {
    seq: u64,
    at: i64,
    sender: String,
    text: String,
}

/// What stored batches changed that is not on disk yet (see
/// [`SurrealChatStore::append_batch`]). Whatever reads these fields from the database
/// applies them.
#[derive(Debug, Default, Clone)]
struct Pending {
    /// Read positions moved by sending: `(user, conversation) -> seq`.
    reads: HashMap<(String, String), u64>,
    /// Conversations' last messages, by conversation key.
    last: HashMap<String, LastMessage>,
}

impl LastMessage {
    fn of(m: &MessageRecord) -> Self {
        LastMessage {
            seq: m.seq,
            at: m.sent_at,
            sender: m.sender.clone(),
            text: app::domain::preview(&m.body, PREVIEW_CHARS),
        }
    }

    /// How it is stored in conversation `key`'s `last_*` fields.
    fn row(&self, key: &str) -> LastMessageRow {
        LastMessageRow {
            id: conversation_id(key),
            seq: self.seq as i64,
            at: self.at,
            sender: self.sender.clone(),
            text: self.text.clone(),
        }
    }
}

impl Pending {
    /// `key`'s last `seq`: the stored one or a newer pending one.
    fn last_seq(&self, key: &str, stored: u64) -> u64 {
        self.last.get(key).map_or(stored, |m| m.seq.max(stored))
    }
}

/// Chat storage over one SurrealDB handle; cheap to clone.
#[derive(Clone)]
pub struct SurrealChatStore {
    /// Shared, never cloned (a clone is a new engine session: see [`crate::db::Database`]).
    db: Arc<Surreal<Db>>,
    /// The recent-conversations lists, kept current by this store's writes.
    recent: Arc<RecentCache>,
    pending: Arc<Mutex<Pending>>,
}

impl SurrealChatStore {
    /// Applies the schema (migrating schema-1 messages), repairs what a crash left behind
    /// and makes sure the default room exists. One store per database: its
    /// recent-conversations cache assumes every write goes through it (clones share the
    /// cache), and [`Self::close`] is called once when it is done.
    pub async fn new(db: Arc<Surreal<Db>>, now_ms: i64) -> Result<Self, StoreError> {
        db.query(SCHEMA).await?.check()?;
        let store = SurrealChatStore {
            db,
            recent: Arc::default(),
            pending: Arc::default(),
        };
        store.migrate_messages().await?;
        store.drop_sent_table().await?;
        store.open_state().await?;
        store
            .db
            .query(
                "IF !record::exists($room) {
                    CREATE $room SET kind = 'room', name = $name, peers = [], last_seq = 0,
                        last_at = $now, created_at = $now;
                 };",
            )
            .bind(("room", conversation_id(DEFAULT_ROOM_KEY)))
            .bind(("name", DEFAULT_ROOM_NAME))
            .bind(("now", now_ms))
            .await?
            .check()?;
        Ok(store)
    }

    /// Marks the database open (not closed cleanly), first repairing it if the last store
    /// did not close cleanly. A database without the mark was never opened by a store that
    /// defers fields (older ones wrote them with each batch): nothing to repair.
    async fn open_state(&self) -> Result<(), StoreError> {
        let mut res = self
            .db
            .query("SELECT VALUE clean FROM ONLY store_state:shutdown")
            .await?
            .check()?;
        if res.take::<Option<bool>>(0)? == Some(false) {
            self.repair_last_messages().await?;
        }
        self.set_clean(false).await
    }

    async fn set_clean(&self, clean: bool) -> Result<(), StoreError> {
        self.db
            .query("UPSERT store_state:shutdown SET clean = $clean RETURN NONE")
            .bind(("clean", clean))
            .await?
            .check()?;
        Ok(())
    }

    /// Stores what is pending and marks the database closed cleanly, so that the next
    /// start need not repair it. Call it once, after the last [`Self::append_batch`].
    pub async fn close(&self) -> Result<(), StoreError> {
        self.store_pending(Duration::ZERO).await?;
        self.set_clean(true).await
    }

    /// After a crash, a conversation's `last_*` fields and its senders' read positions may
    /// miss its last second of messages (they were pending): sets them from the messages
    /// past `last_seq`. One range read per conversation, almost always empty.
    pub async fn repair_last_messages(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut res = self
            .db
            .query("SELECT id, last_seq FROM conversation")
            .await?
            .check()?;
        let convs: Vec<ConversationSeqRow> = res.take(0)?;
        let (mut last, mut reads) = (Vec::new(), Vec::new());
        for c in &convs {
            let key = key_of(&c.id);
            let after = self
                .messages_in(&key, to_u64(c.last_seq) + 1, i64::MAX as u64)
                .await?;
            let Some(m) = after.last() else {
                continue;
            };
            last.push(LastMessage::of(m).row(&key));
            // Sending marked them read for their senders.
            let mut senders: HashMap<&str, u64> = HashMap::new();
            for m in &after {
                senders.insert(&m.sender, m.seq);
            }
            reads.extend(senders.into_iter().map(|(user, seq)| ReadRow {
                id: member_id(&key, user),
                seq: seq as i64,
            }));
        }
        let count = last.len();
        if count > 0 {
            self.store_changes(reads, last).await?;
        }
        tracing::warn!(
            conversations = convs.len(),
            repaired = count,
            ms = started.elapsed().as_millis() as u64,
            "the database was not closed cleanly: conversations' last messages checked"
        );
        Ok(())
    }

    /// Whether the database defines table `name` (for the steps that move old layouts).
    async fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        let mut res = self
            .db
            .query("RETURN (INFO FOR DB).tables[$name] != NONE")
            .bind(("name", name.to_owned()))
            .await?
            .check()?;
        Ok(res.take::<Option<bool>>(0)? == Some(true))
    }

    /// Schema 2 also kept a `sent:[sender, client_msg_id]` record per message; nothing
    /// reads it any more, so a database that has the table loses it once.
    async fn drop_sent_table(&self) -> Result<(), StoreError> {
        if self.has_table("sent").await? {
            let started = std::time::Instant::now();
            self.db.query("REMOVE TABLE sent").await?.check()?;
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "removed the `sent` table of schema 2"
            );
        }
        Ok(())
    }

    /// Moves the messages of a schema-1 database (table `message`) to `msg`, a
    /// page per transaction in id order, then removes the old table. Safe to interrupt: a
    /// page already copied is skipped (`INSERT IGNORE`) when it runs again. A no-op on a
    /// database without the old table.
    async fn migrate_messages(&self) -> Result<(), StoreError> {
        if !self.has_table("message").await? {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let mut after: Bound<RecordIdKey> = Bound::Unbounded;
        let mut moved = 0_usize;
        loop {
            let range = RecordId::new(
                "message",
                RecordIdKeyRange {
                    start: after,
                    end: Bound::Unbounded,
                },
            );
            let mut res = self
                .db
                .query("SELECT * FROM $range LIMIT $page")
                .bind(("range", range))
                .bind(("page", MIGRATION_PAGE))
                .await?
                .check()?;
            let old: Vec<OldMessageRow> = res.take(0)?;
            let Some(last) = old.last() else {
                break;
            };
            after = Bound::Excluded(last.id.key.clone());
            let page = old.len();
            let rows: Vec<MessageRow> = old
                .into_iter()
                .map(|m| {
                    stored_row(&MessageRecord {
                        conversation: key_of(&m.conversation),
                        seq: to_u64(m.seq),
                        sender: key_of(&m.sender),
                        body: m.body,
                        client_msg_id: m.client_msg_id,
                        sent_at: m.sent_at,
                    })
                })
                .collect();
            self.db
                .query("INSERT IGNORE INTO msg $rows RETURN NONE")
                .bind(("rows", rows))
                .await?
                .check()?;
            moved += page;
            if moved % 100_000 < page {
                tracing::info!(moved, "moving messages to the new layout");
            }
        }
        self.db.query("REMOVE TABLE message").await?.check()?;
        tracing::info!(
            moved,
            ms = started.elapsed().as_millis() as u64,
            "messages moved to the new layout (schema 2)"
        );
        Ok(())
    }

    // ---- accounts ----------------------------------------------------------------------

    /// Creates an account; fails with [`StoreError::UsernameTaken`] if the name is in use.
    pub async fn create_user(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let res = self
            .db
            .query("CREATE $id SET display_name = $display_name, password_hash = $hash, created_at = $now")
            .bind(("id", user_id(username.as_str())))
            .bind(("display_name", display_name.as_str().to_owned()))
            .bind(("hash", password_hash.to_owned()))
            .bind(("now", now_ms))
            .await?
            .check();
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => Err(StoreError::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let mut res = self
            .db
            .query("SELECT id, display_name, password_hash FROM ONLY $id")
            .bind(("id", user_id(username)))
            .await?
            .check()?;
        let row: Option<UserRow> = res.take(0)?;
        Ok(row.and_then(|r| {
            Some(UserRecord {
                username: Username::parse(&key_of(&r.id)).ok()?,
                display_name: r.display_name,
                password_hash: r.password_hash,
            })
        }))
    }

    /// Users whose username or display name contains `query` (case-insensitive), by username.
    pub async fn search_users(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut res = self
            .db
            .query(
                "SELECT id, display_name FROM user
                 WHERE string::contains(string::lowercase(record::id(id)), $q)
                    OR string::contains(string::lowercase(display_name), $q)
                 ORDER BY id LIMIT $limit",
            )
            .bind(("q", query.trim().to_lowercase()))
            .bind(("limit", i64::from(limit)))
            .await?
            .check()?;
        let rows: Vec<NameRow> = res.take(0)?;
        Ok(rows
            .into_iter()
            .map(|r| (key_of(&r.id), r.display_name))
            .collect())
    }

    /// Display names of the given users (unknown ones are left out).
    pub async fn display_names(
        &self,
        usernames: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let ids: Vec<RecordId> = usernames.iter().map(|u| user_id(u)).collect();
        let mut res = self
            .db
            .query("SELECT id, display_name FROM $ids")
            .bind(("ids", ids))
            .await?
            .check()?;
        let rows: Vec<NameRow> = res.take(0)?;
        Ok(rows
            .into_iter()
            .map(|r| (key_of(&r.id), r.display_name))
            .collect())
    }

    // ---- conversations -----------------------------------------------------------------

    /// The direct conversation between `a` and `b`, created (with both as members) on first
    /// use. Returns its key.
    pub async fn open_direct(&self, a: &str, b: &str, now_ms: i64) -> Result<String, StoreError> {
        if self.user(b).await?.is_none() || self.user(a).await?.is_none() {
            return Err(StoreError::NoSuchUser);
        }
        let key = direct_key(a, b);
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
            .bind(("conv", conversation_id(&key)))
            .bind(("a", user_id(a)))
            .bind(("b", user_id(b)))
            .bind(("ma", member_id(&key, a)))
            .bind(("mb", member_id(&key, b)))
            .bind(("now", now_ms))
            .await;
        self.recent.forget_user(a);
        self.recent.forget_user(b);
        match transaction(res?) {
            Ok(_) => Ok(key),
            // Both users opened it at the same moment: the other transaction created it.
            Err(e) if is_duplicate(&e) => Ok(key),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a room with `creator` as its first member. Returns its key.
    pub async fn create_room(
        &self,
        creator: &str,
        name: &RoomName,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let key = new_room_key();
        let res = self
            .db
            .query(
                "BEGIN;
                 CREATE $conv SET kind = 'room', name = $name, peers = [], last_seq = 0,
                    last_at = $now, created_at = $now;
                 CREATE $member SET conversation = $conv, user = $user, last_read_seq = 0,
                    joined_at = $now;
                 COMMIT;",
            )
            .bind(("conv", conversation_id(&key)))
            .bind(("member", member_id(&key, creator)))
            .bind(("name", name.as_str().to_owned()))
            .bind(("user", user_id(creator)))
            .bind(("now", now_ms))
            .await;
        self.recent.forget_user(creator);
        res?.check()?;
        Ok(key)
    }

    /// Every room with its member count.
    pub async fn rooms(&self) -> Result<Vec<RoomRow>, StoreError> {
        let mut res = self
            .db
            .query(
                "SELECT id, name, count(SELECT VALUE id FROM member WHERE conversation = $parent.id) AS members
                 FROM conversation WHERE kind = 'room' ORDER BY name",
            )
            .await?
            .check()?;
        let rows: Vec<RoomListRow> = res.take(0)?;
        Ok(rows
            .into_iter()
            .map(|r| RoomRow {
                key: key_of(&r.id),
                name: r.name.unwrap_or_default(),
                member_count: to_u64(r.members),
            })
            .collect())
    }

    /// Joins a room (no-op when already a member). A new member has read nothing.
    pub async fn join_room(
        &self,
        key: &str,
        username: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.require_room(key).await?;
        let res = self
            .db
            .query(
                "IF !record::exists($m) {
                    CREATE $m SET conversation = $conv, user = $user, last_read_seq = 0, joined_at = $now;
                 };",
            )
            .bind(("m", member_id(key, username)))
            .bind(("conv", conversation_id(key)))
            .bind(("user", user_id(username)))
            .bind(("now", now_ms))
            .await;
        self.recent.forget_user(username);
        res?.check()?;
        Ok(())
    }

    pub async fn leave_room(&self, key: &str, username: &str) -> Result<(), StoreError> {
        self.require_room(key).await?;
        self.require_member(key, username).await?;
        let res = self
            .db
            .query("DELETE $m")
            .bind(("m", member_id(key, username)))
            .await;
        self.recent.forget_user(username);
        res?.check()?;
        Ok(())
    }

    async fn require_room(&self, key: &str) -> Result<(), StoreError> {
        match self.meta(key).await? {
            None => Err(StoreError::NoSuchConversation),
            Some(m) if m.kind != "room" => Err(StoreError::NotARoom),
            Some(_) => Ok(()),
        }
    }

    async fn meta(&self, key: &str) -> Result<Option<ConversationMeta>, StoreError> {
        let mut res = self
            .db
            .query("SELECT kind FROM ONLY $conv")
            .bind(("conv", conversation_id(key)))
            .await?
            .check()?;
        Ok(res.take(0)?)
    }

    /// The conversation's last `seq`, or `None` if it does not exist. From memory once known
    /// (the recent-conversations cache follows every commit); else read, and then known.
    pub async fn last_seq(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if let Some(seq) = self.recent.last_seq(key) {
            return Ok(Some(seq));
        }
        let mut res = self
            .db
            .query("SELECT last_seq, last_at, last_sender, last_text FROM ONLY $conv")
            .bind(("conv", conversation_id(key)))
            .await?
            .check()?;
        let Some(row): Option<LastFieldsRow> = res.take(0)? else {
            return Ok(None);
        };
        let stored = to_u64(row.last_seq);
        // A conversation without messages is left out: its list row shows when it was made.
        if let (true, Some(sender), Some(text)) = (stored > 0, &row.last_sender, &row.last_text) {
            // Older than what a commit already put there, this changes nothing.
            self.recent.message(key, stored, row.last_at, sender, text);
        }
        Ok(Some(lock(&self.pending).last_seq(key, stored)))
    }

    pub async fn is_member(&self, key: &str, username: &str) -> Result<bool, StoreError> {
        let mut res = self
            .db
            .query("RETURN record::exists($m)")
            .bind(("m", member_id(key, username)))
            .await?
            .check()?;
        let exists: Option<bool> = res.take(0)?;
        Ok(exists.unwrap_or(false))
    }

    /// Fails with `NoSuchConversation` or `NotMember` unless `username` belongs to `key`.
    pub async fn require_member(&self, key: &str, username: &str) -> Result<(), StoreError> {
        if self.is_member(key, username).await? {
            Ok(())
        } else if self.meta(key).await?.is_none() {
            Err(StoreError::NoSuchConversation)
        } else {
            Err(StoreError::NotMember)
        }
    }

    /// Usernames of the conversation's members.
    pub async fn members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut res = self
            .db
            .query("SELECT VALUE user FROM member WHERE conversation = $conv")
            .bind(("conv", conversation_id(key)))
            .await?
            .check()?;
        let users: Vec<RecordId> = res.take(0)?;
        let mut names: Vec<String> = users.iter().map(key_of).collect();
        names.sort();
        Ok(names)
    }

    /// The user's conversations, latest activity first.
    pub async fn recent_conversations(
        &self,
        username: &str,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        if let Some(rows) = self.recent.get(username) {
            return Ok(rows);
        }
        self.recent.begin_load(username);
        let rows = self.conversation_rows(username, None).await;
        self.recent
            .finish_load(username, rows.as_ref().ok().map(Vec::as_slice));
        rows
    }

    /// One of the user's conversations; `NotMember` if they are not in it.
    pub async fn conversation_row(
        &self,
        username: &str,
        key: &str,
    ) -> Result<ConversationRow, StoreError> {
        self.conversation_rows(username, Some(key))
            .await?
            .pop()
            .ok_or(StoreError::NotMember)
    }

    /// All of the user's conversations, or only `key`.
    async fn conversation_rows(
        &self,
        username: &str,
        key: Option<&str>,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        // The conversation record is read once per row, not once per field.
        const FIELDS: &str = "SELECT last_read_seq, conversation.{id, kind, name, peers,
                    last_seq, last_at, last_sender, last_text} AS c";
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
        let peers: Vec<String> = rows
            .iter()
            .flat_map(|r| r.c.peers.iter().map(key_of))
            .filter(|p| p != username)
            .collect();
        let names: std::collections::HashMap<String, String> =
            self.display_names(&peers).await?.into_iter().collect();
        let mut out: Vec<ConversationRow> = rows
            .into_iter()
            .map(|r| {
                let kind = if r.c.kind == "direct" {
                    Kind::Direct
                } else {
                    Kind::Room
                };
                let peer = (kind == Kind::Direct)
                    .then(|| {
                        r.c.peers
                            .iter()
                            .map(key_of)
                            .find(|p| p != username)
                            // A conversation with oneself is a direct conversation too.
                            .or_else(|| Some(username.to_owned()))
                    })
                    .flatten()
                    .map(|p| {
                        let name = names.get(&p).cloned().unwrap_or_else(|| p.clone());
                        (p, name)
                    });
                ConversationRow {
                    key: key_of(&r.c.id),
                    kind,
                    name: r.c.name,
                    peer,
                    last_seq: to_u64(r.c.last_seq),
                    last_read_seq: to_u64(r.last_read_seq),
                    last_at: r.c.last_at,
                    last_sender: r.c.last_sender,
                    last_text: r.c.last_text,
                }
            })
            .collect();
        self.add_pending(username, &mut out);
        recent::sort(&mut out);
        Ok(out)
    }

    /// Last messages and read positions of `username` not stored yet, over rows read from
    /// the database.
    fn add_pending(&self, username: &str, rows: &mut [ConversationRow]) {
        let pending = lock(&self.pending);
        for row in rows {
            if let Some(m) = pending.last.get(&row.key).filter(|m| m.seq > row.last_seq) {
                row.last_seq = m.seq;
                row.last_at = m.at;
                row.last_sender = Some(m.sender.clone());
                row.last_text = Some(m.text.clone());
            }
            if pending.reads.is_empty() {
                continue;
            }
            if let Some(&seq) = pending.reads.get(&(username.to_owned(), row.key.clone())) {
                row.last_read_seq = row.last_read_seq.max(seq);
            }
        }
    }

    // ---- messages ----------------------------------------------------------------------

    /// Stores a batch of messages in one transaction, so that they share one sync: the
    /// group commit of [`crate::writer`]. Each conversation's messages must continue its
    /// last `seq` without gaps, in order (the caller counts them). All or nothing: a `seq`
    /// already stored fails the whole batch with [`StoreError::SeqTaken`]. Durable when this
    /// returns. The transaction writes the messages only (the store's cost is per record
    /// written): their conversations' last-message fields and the senders' read positions
    /// (sending reads) move at once in memory — the recent-conversations cache, and the
    /// pending changes that reads from disk apply — and on disk at the next
    /// [`Self::store_pending`] (a second later at most: see [`crate::writer`]).
    pub async fn append_batch(&self, batch: &[MessageRecord]) -> Result<(), StoreError> {
        // Per conversation: its last message in the batch.
        let mut last: HashMap<&str, &MessageRecord> = HashMap::new();
        let mut reads: HashMap<(&str, &str), u64> = HashMap::new();
        for m in batch {
            match last.get_mut(m.conversation.as_str()) {
                Some(prev) if prev.seq + 1 != m.seq => return Err(StoreError::SeqTaken),
                Some(prev) => *prev = m,
                None => {
                    last.insert(&m.conversation, m);
                }
            }
            let read = reads.entry((&m.conversation, &m.sender)).or_default();
            *read = (*read).max(m.seq);
        }
        let rows: Vec<MessageRow> = batch.iter().map(stored_row).collect();
        // One statement: atomic on its own.
        let res = self
            .db
            .query("INSERT INTO msg $rows RETURN NONE")
            .bind(("rows", rows))
            .await
            .and_then(surrealdb::IndexedResults::check);
        match res {
            Ok(_) => {
                let mut pending = lock(&self.pending);
                for m in last.into_values() {
                    let newer = LastMessage::of(m);
                    self.recent
                        .message(&m.conversation, m.seq, m.sent_at, &m.sender, &newer.text);
                    match pending.last.get_mut(m.conversation.as_str()) {
                        Some(held) if held.seq < m.seq => *held = newer,
                        Some(_) => {}
                        None => {
                            pending.last.insert(m.conversation.clone(), newer);
                        }
                    }
                }
                for ((conv, user), seq) in reads {
                    self.recent.read(user, conv, seq);
                    let read = pending
                        .reads
                        .entry((user.to_owned(), conv.to_owned()))
                        .or_default();
                    *read = (*read).max(seq);
                }
                Ok(())
            }
            Err(e) if is_duplicate(&e) => Err(StoreError::SeqTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores what [`Self::append_batch`] left pending — conversations' last messages and
    /// read positions, forward only; members who left are skipped — a few at a time
    /// ([`PENDING_CHUNK`] per transaction), so that the writers' transactions never wait
    /// long behind one, with the chunks spread evenly `over` that long (zero: one after
    /// another), so that their CPU does not come all at once. Those moved again meanwhile
    /// stay pending, as does whatever a failure stopped.
    pub async fn store_pending(&self, over: Duration) -> Result<(), StoreError> {
        let held = lock(&self.pending).clone();
        let chunks =
            held.reads.len().div_ceil(PENDING_CHUNK) + held.last.len().div_ceil(PENDING_CHUNK);
        let gap = over / u32::try_from(chunks.max(1)).unwrap_or(u32::MAX);
        let mut left = chunks;
        // Between chunks (not after the last): a yield, or the gap.
        let mut pause = move || {
            left = left.saturating_sub(1);
            let gap = if left == 0 { Duration::ZERO } else { gap };
            async move {
                if gap.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(gap).await;
                }
            }
        };
        // Read positions first: a crash in between leaves conversations behind their
        // messages, which the next start repairs, read positions included.
        let reads: Vec<((String, String), u64)> = held.reads.into_iter().collect();
        for chunk in reads.chunks(PENDING_CHUNK) {
            let rows = chunk
                .iter()
                .map(|((user, conv), seq)| ReadRow {
                    id: member_id(conv, user),
                    seq: *seq as i64,
                })
                .collect();
            self.store_changes(rows, Vec::new()).await?;
            {
                let mut pending = lock(&self.pending);
                for (key, seq) in chunk {
                    if pending.reads.get(key).is_some_and(|now| now <= seq) {
                        pending.reads.remove(key);
                    }
                }
            }
            pause().await;
        }
        let last: Vec<(String, LastMessage)> = held.last.into_iter().collect();
        for chunk in last.chunks(PENDING_CHUNK) {
            let rows = chunk.iter().map(|(key, m)| m.row(key)).collect();
            self.store_changes(Vec::new(), rows).await?;
            {
                let mut pending = lock(&self.pending);
                for (key, m) in chunk {
                    if pending.last.get(key).is_some_and(|now| now.seq <= m.seq) {
                        pending.last.remove(key);
                    }
                }
            }
            pause().await;
        }
        Ok(())
    }

    /// Moves read positions and conversations' last messages forward, in one transaction.
    async fn store_changes(
        &self,
        reads: Vec<ReadRow>,
        last: Vec<LastMessageRow>,
    ) -> Result<(), StoreError> {
        let res = self
            .db
            .query(
                "BEGIN;
                 FOR $r IN $reads {
                    UPDATE $r.id SET last_read_seq = math::max([last_read_seq, $r.seq])
                        RETURN NONE;
                 };
                 FOR $c IN $convs {
                    UPDATE $c.id SET last_seq = $c.seq, last_at = $c.at,
                        last_sender = $c.sender, last_text = $c.text
                        WHERE last_seq < $c.seq RETURN NONE;
                 };
                 COMMIT;",
            )
            .bind(("reads", reads))
            .bind(("convs", last))
            .await?;
        Ok(transaction(res)?)
    }

    /// The message at `seq` of conversation `key`, if stored.
    pub async fn message(&self, key: &str, seq: u64) -> Result<Option<MessageRecord>, StoreError> {
        Ok(self
            .messages_in(key, seq, seq.saturating_add(1))
            .await?
            .pop())
    }

    /// Up to `limit` messages with `seq < before` (or the newest), oldest first.
    pub async fn history(
        &self,
        key: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let end = match before {
            Some(b) => b,
            None => self.last_seq(key).await?.unwrap_or(0) + 1,
        };
        // `seq`s have no gaps (the writer checks), so the page is exactly this id range.
        self.messages_in(key, end.saturating_sub(u64::from(limit)).max(1), end)
            .await
    }

    /// Up to `limit` messages with `seq > after`, oldest first: what a reconnecting client missed.
    pub async fn messages_after(
        &self,
        key: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let from = after.saturating_add(1);
        self.messages_in(key, from, from.saturating_add(u64::from(limit)))
            .await
    }

    /// The messages with `from <= seq < to`, oldest first: one range of record ids.
    async fn messages_in(
        &self,
        key: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let mut res = self
            .db
            .query("SELECT * FROM $range")
            .bind(("range", message_range(key, from, to)))
            .await?
            .check()?;
        let rows: Vec<MessageRow> = res.take(0)?;
        Ok(rows.into_iter().filter_map(message_record).collect())
    }

    /// Moves the user's read position forward to `seq` (never backwards, never past the last
    /// message). Returns `(last_read_seq, last_seq)` after the update.
    pub async fn mark_read(
        &self,
        key: &str,
        username: &str,
        seq: u64,
    ) -> Result<(u64, u64), StoreError> {
        self.require_member(key, username).await?;
        let last = self.last_seq(key).await?.unwrap_or(0);
        let mut res = self
            .db
            .query(
                "UPDATE ONLY $member SET last_read_seq = math::max([last_read_seq, $upto])
                    RETURN VALUE last_read_seq",
            )
            .bind(("member", member_id(key, username)))
            .bind(("upto", seq.min(last) as i64))
            .await?
            .check()?;
        let read: Option<i64> = res.take(0)?;
        let mut read = to_u64(read.unwrap_or(0));
        if let Some(&pending) = lock(&self.pending)
            .reads
            .get(&(username.to_owned(), key.to_owned()))
        {
            read = read.max(pending);
        }
        self.recent.read(username, key, read);
        Ok((read, last))
    }
}

/// The record of a stored message; `None` for an id not of the form `msg:[key, seq]`
/// (never written by this store).
fn message_record(r: MessageRow) -> Option<MessageRecord> {
    let (conversation, seq) = message_position(&r.id)?;
    Some(MessageRecord {
        conversation,
        seq,
        sender: r.sender,
        body: r.body,
        client_msg_id: r.client_msg_id,
        sent_at: r.sent_at,
    })
}

/// `(conversation, seq)` of a message id `msg:[conversation, seq]`.
fn message_position(id: &RecordId) -> Option<(String, u64)> {
    let RecordIdKey::Array(parts) = &id.key else {
        return None;
    };
    match parts.iter().collect::<Vec<_>>().as_slice() {
        [Value::String(conversation), Value::Number(seq)] => {
            Some((conversation.clone(), to_u64(seq.to_int()?)))
        }
        _ => None,
    }
}
