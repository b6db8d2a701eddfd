//! `SurrealChatStore`: everything the chat keeps, in SurrealDB. The database is the truth;
//! this module is the only place that speaks SurrealQL.
//!
//! One file per concern, all `impl SurrealChatStore` blocks over the same handle:
//! - [`schema`] — every table, field and index, applied once at open.
//! - [`rows`] — the stored records and the SurrealDB rows, record ids from keys (no I/O).
//! - [`accounts`] — users and sessions.
//! - [`user_terms`] — the terms a user is found by (pure).
//! - [`conversations`] — direct conversations, rooms, members, the recent list.
//! - [`messages`] — appending batches, history pages, read positions, `client_msg_id`s.
//! - [`heads`] — each conversation's last `seq` and last message, and the read positions
//!   sending moved, in memory ahead of the database (pure; the one overlay every read uses).
//! - [`deferred`] — writing what [`heads`] holds that the database does not, and closing.
//! - [`migrations`] — moving old layouts forward, counting boots, repairing after a crash.
//! - [`recent`] — the recent-conversations lists from memory.
//! - [`search`] — the message search index, following the messages within a second.
//! - [`uploads`] — uploaded files: whose, in which conversation, which message carries them.
//!
//! Decisions worth knowing:
//! - Record ids carry the uniqueness rules: `user:<username>`, `conversation:<a>/<b>` for
//!   the one direct conversation of a pair, `member:<conversation>|<user>`,
//!   `msg:[conversation, seq]` (a second message at a position is refused by the id, and a
//!   history page is a range of ids) and `client_msg:[sender, client_msg_id]` (a retried
//!   send is recognised however old it is).
//! - A batch of messages is one transaction that writes its messages and their
//!   `client_msg` records and nothing else; the rest it changes waits in [`heads`] and
//!   follows within a second. After a crash, opening the store puts every conversation's
//!   `last_*` fields and its senders' read positions back in step with its messages.
//! - Unread counts are never stored: they are `conversation.last_seq - member.last_read_seq`.
//! - Times are integers (milliseconds since the Unix epoch): lean records, no conversions.
//! - In a cluster, several nodes' stores share one database, and each keeps its caches and
//!   heads: what one changes that the others hold in memory goes out as a [`Note`] (see
//!   `crate::bus`) and is taken in by [`SurrealChatStore::learn_note`]. Positions stay
//!   gap-free whoever writes: a message's id is its position, so a node whose head was
//!   behind has its batch refused (`SeqTaken`), reads the head again and retries. Each
//!   node starts by repairing the `last_*` fields, since any node may have died before
//!   storing its own, and keeps its search index's progress under its name.

mod accounts;
mod conversations;
mod deferred;
pub mod heads;
mod messages;
mod migrations;
mod recent;
mod rooms;
pub mod rows;
mod schema;
mod search;
pub mod uploads;
pub mod user_terms;

use std::{
    future::Future,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};
use surrealdb::types::{ErrorDetails, QueryError};
use tokio::sync::mpsc;

use crate::{db::is_conflict, locks::lock};
use conversations::MemberCache;
use heads::Heads;
use recent::RecentCache;
use search::Unindexed;

pub use conversations::{MemberRead, Members, DEFAULT_ROOM_KEY, DEFAULT_ROOM_NAME};
pub use deferred::PENDING_CHUNK;
pub use heads::Mark;
pub use messages::{Batch, HistoryPage};
pub use rooms::RoomStanding;
pub use rows::{
    direct_key, direct_peer, ChangeKind, ChangeRecord, ConversationRow, Entry, Kind, MentionKey,
    MessageRecord, RoomRow, SessionRecord, UserRecord,
};
pub use schema::SCHEMA;
pub use search::INDEX_CHUNK;
pub use uploads::{SentUpload, UploadRecord};

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
    #[error("banned from this room")]
    Banned,
    #[error("a message already has this position")]
    SeqTaken,
    #[error("a batch does not continue its conversation's last seq")]
    OutOfSequence,
    #[error("this sender already used this client_msg_id")]
    ClientMsgIdTaken,
    #[error("database error: {0}")]
    Db(#[source] surrealdb::Error),
    #[error(transparent)]
    Search(#[from] crate::search_index::SearchIndexError),
}

impl From<surrealdb::Error> for StoreError {
    fn from(e: surrealdb::Error) -> Self {
        StoreError::Db(e)
    }
}

/// The outcome of a `BEGIN; …; COMMIT;` query. `check()` would report the first failed
/// statement, which in a failed transaction is usually a bystander (a query error of kind
/// "not executed" or "cancelled"); the statement that really failed (a record id taken)
/// may come later, so its error is the one returned.
fn transaction(res: surrealdb::IndexedResults) -> Result<(), surrealdb::Error> {
    committed(res).map(|_| ())
}

/// [`transaction`], keeping the results of a transaction that committed, to take what its
/// statements returned.
fn committed(
    mut res: surrealdb::IndexedResults,
) -> Result<surrealdb::IndexedResults, surrealdb::Error> {
    let mut errors: Vec<(usize, surrealdb::Error)> = res.take_errors().into_iter().collect();
    errors.sort_by_key(|(i, _)| *i);
    let cause = errors
        .iter()
        .position(|(_, e)| {
            !matches!(
                e.details(),
                ErrorDetails::Query(Some(QueryError::NotExecuted | QueryError::Cancelled))
            )
        })
        .unwrap_or(0);
    match errors.into_iter().nth(cause) {
        None => Ok(res),
        Some((_, e)) => Err(e),
    }
}

/// What a store changed that the other nodes' stores hold in memory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Note {
    /// A batch was committed: each conversation's head (and its newest message then), and
    /// the read positions that sending moved.
    Committed {
        heads: Vec<(String, Mark, Option<heads::LastMessage>)>,
        reads: Vec<(String, String, Mark)>,
    },
    /// The members of a conversation changed; these users' lists with it.
    Members {
        conversation: String,
        users: Vec<String>,
    },
    /// These users' lists changed (a role, a new direct conversation).
    Lists { users: Vec<String> },
    /// How a room shows in lists changed (name, topic, privacy).
    Room { conversation: String },
    /// How a person shows changed (name, picture, status).
    Person { user: String },
    /// A user read a conversation up to a position.
    Read {
        user: String,
        conversation: String,
        at: Mark,
    },
}

/// Locks the membership writes of rooms are spread over (rooms whose keys hash alike share
/// one; a lock is held for one transaction).
const MEMBERSHIP_LOCKS: usize = 64;

/// Tries at opening the store while other nodes open it too (about 10 s in all).
const OPEN_TRIES: u32 = 16;

/// Tries of an operation whose transaction keeps meeting concurrent writes.
const CONFLICT_TRIES: u32 = 6;

/// Runs `op` until it does not fail for a write conflict with a concurrent transaction
/// (two people opening their conversation at once; a read position written by a client
/// and by the deferred writes at the same moment), pausing 1, 2, 4… ms between tries; the
/// last try's outcome is returned whatever it is. A race between two valid requests is
/// the server's to resolve, never a client's `internal` error.
async fn retry_conflicts<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pause = Duration::from_millis(1);
    for _ in 1..CONFLICT_TRIES {
        match op().await {
            Err(StoreError::Db(e)) if is_conflict(&e) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            done => return done,
        }
    }
    op().await
}

/// The table of the record whose id a write found taken, if that is what failed.
fn taken_table(e: &surrealdb::Error) -> Option<&str> {
    match e.already_exists_details()? {
        surrealdb::types::AlreadyExistsError::Record { id } => {
            Some(id.split_once(':').map_or(id.as_str(), |(table, _)| table))
        }
        _ => None,
    }
}

/// Chat storage over one SurrealDB handle; cheap to clone.
#[derive(Clone)]
pub struct SurrealChatStore {
    /// Shared, never cloned (a clone is a new engine session: see [`crate::db::Database`]).
    db: Arc<crate::db::Conn>,
    /// Conversations' heads and the read positions sending moved (see [`heads`]).
    heads: Arc<Mutex<Heads>>,
    /// The recent-conversations lists, kept current by this store's writes.
    recent: Arc<RecentCache>,
    /// Conversations' members, kept current by this store's writes.
    members: Arc<MemberCache>,
    /// Held by every write of read positions (`mark_read`, the deferred writes), so that
    /// they take turns: two at once on the same member record conflict in the engine, and
    /// under CPU contention the deferred writes met `mark_read`s through all their retries
    /// (the soak logged a failed write of pending changes).
    read_writes: Arc<tokio::sync::Mutex<()>>,
    /// Held by the writes that change a room's membership (joins, removals, leaving), per
    /// room: each updates the room's `member_count`, and dozens of people joining one room
    /// at once conflicted in the engine through all their retries, which refused some of
    /// them. See [`Self::membership_lock`].
    membership_writes: Arc<[tokio::sync::Mutex<()>; MEMBERSHIP_LOCKS]>,
    /// Conversations the search index is behind (see [`search`]).
    unindexed: Arc<Mutex<Unindexed>>,
    /// The message search index, shared with the [`crate::db::Database`] it was opened with.
    search: Arc<crate::search_index::SearchIndex>,
    /// How many times this database has been opened, this time included.
    boots: u64,
    /// Set in a cluster: where [`Note`]s for the other nodes go.
    notes: Arc<OnceLock<mpsc::Sender<Note>>>,
    /// The table of this node's search cursors (see [`search`]).
    cursor_table: Arc<str>,
    /// In a cluster: other nodes write too, and any of them may have died.
    shared: bool,
}

impl SurrealChatStore {
    /// The rows of those of `ids` that exist, in one read (none asked: no read).
    async fn rows_at<T: surrealdb::types::SurrealValue>(
        &self,
        ids: Vec<surrealdb::types::RecordId>,
    ) -> Result<Vec<T>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut res = self
            .db
            .query("SELECT * FROM $ids")
            .bind(("ids", ids))
            .await?
            .check()?;
        Ok(res.take(0)?)
    }

    /// Applies the schema, moves old layouts forward, repairs what a crash left behind and
    /// makes sure the default room exists. One store per database: its caches assume every
    /// write goes through it (clones share them), and [`Self::close`] is called once when
    /// it is done.
    pub async fn new(database: &crate::db::Database, now_ms: i64) -> Result<Self, StoreError> {
        Self::new_for_node(database, now_ms, None).await
    }

    /// [`Self::new`] for node `node` of a cluster (`None`: the only node). The name must
    /// pass [`crate::settings::is_node_name`].
    pub async fn new_for_node(
        database: &crate::db::Database,
        now_ms: i64,
        node: Option<&str>,
    ) -> Result<Self, StoreError> {
        let db = database.handle();
        let mut store = SurrealChatStore {
            db,
            search: database.search_index(),
            heads: Arc::default(),
            recent: Arc::default(),
            members: Arc::default(),
            read_writes: Arc::default(),
            membership_writes: Arc::new(std::array::from_fn(|_| tokio::sync::Mutex::new(()))),
            unindexed: Arc::default(),
            boots: 0,
            notes: Arc::default(),
            cursor_table: match node {
                // `-` is not allowed in a table name without quotes.
                Some(node) => format!("search_cursor_{}", node.replace('-', "_")).into(),
                None => "search_cursor".into(),
            },
            shared: node.is_some(),
        };
        // Nodes of a cluster starting together on a new database define its tables and
        // its default room at the same moment: every step is safe to run again, and a
        // step that met another node's is, after a pause.
        let mut pause = Duration::from_millis(20);
        for attempt in 1.. {
            match store.open(now_ms).await {
                Err(StoreError::Db(e)) if attempt < OPEN_TRIES && is_conflict(&e) => {
                    tracing::info!(error = %e, attempt, "opening the store met another node's writes; again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                opened => return opened.map(|()| store),
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn open(&mut self, now_ms: i64) -> Result<(), StoreError> {
        self.db.query(SCHEMA).await?.check()?;
        if self.shared {
            // The search cursors of the `search_cursor` table, under this node's name.
            self.db
                .query(format!(
                    "DEFINE TABLE IF NOT EXISTS {} SCHEMALESS",
                    self.cursor_table
                ))
                .await?
                .check()?;
        }
        // Counted once: an open that met another node's writes later on goes again.
        if self.boots == 0 {
            self.boots = self.record_boot().await?;
        }
        self.migrate().await?;
        self.open_state().await?;
        self.ensure_default_room(now_ms).await?;
        self.find_unindexed().await
    }

    /// Writes the whole database to `path` as SurrealQL statements, from one read
    /// transaction: a consistent snapshot, taken while writes go on.
    pub async fn export_to(&self, path: &std::path::Path) -> Result<(), StoreError> {
        self.db.export(path).await?;
        Ok(())
    }

    /// How many times this database has been opened, this time included. On disk it grows
    /// across restarts, which makes durability visible in `/healthz`.
    pub fn boots(&self) -> u64 {
        self.boots
    }

    /// Taken around a write that changes the membership of room `key`, so that two of
    /// them on one room take turns instead of conflicting (other writes to the room, such
    /// as its last message, may still conflict with one, and are retried).
    async fn membership_lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let stripe = BuildHasherDefault::<DefaultHasher>::default().hash_one(key) as usize
            % MEMBERSHIP_LOCKS;
        self.membership_writes[stripe].lock().await
    }

    fn heads(&self) -> std::sync::MutexGuard<'_, Heads> {
        lock(&self.heads)
    }

    /// From now on, what other nodes' stores must learn goes to `notes` (once).
    pub fn notes_to(&self, notes: mpsc::Sender<Note>) {
        let _ = self.notes.set(notes);
    }

    /// Tells the other nodes, if there are any; a note the bus cannot take now is dropped
    /// (their caches then follow the database a little later: see `crate::bus`).
    fn tell(&self, note: impl FnOnce() -> Note) {
        if let Some(notes) = self.notes.get() {
            let _ = notes.try_send(note());
        }
    }

    /// This node may have missed notes (the bus was away, or a node died or restarted):
    /// members and lists are read from the database again. Heads are caught up with
    /// [`Self::catch_up_heads`].
    pub fn forget_cached(&self) {
        self.members.forget_all();
        self.recent.forget_all();
    }

    /// What another node's store changed: caches drop what it made stale, heads and read
    /// positions move, and the search index follows the conversations it wrote to.
    pub async fn learn_note(&self, note: Note) {
        match note {
            Note::Committed { heads, reads } => {
                {
                    let mut h = self.heads();
                    for (key, at, last) in &heads {
                        h.learn_elsewhere(key, *at, last.clone());
                    }
                    for (user, key, at) in &reads {
                        h.read_elsewhere(user, key, *at);
                    }
                }
                for (user, key, at) in reads {
                    self.recent.read(&user, &key, at);
                }
                self.unindexed(heads.iter().map(|(key, _, _)| key.as_str()));
            }
            Note::Members {
                conversation,
                users,
            } => {
                self.members.forget(&conversation);
                for user in &users {
                    self.recent.forget_user(user);
                }
            }
            Note::Lists { users } => {
                for user in &users {
                    self.recent.forget_user(user);
                }
            }
            Note::Room { conversation } => self.forget_room(&conversation).await,
            Note::Person { user } => self.recent.profile_changed(&user),
            Note::Read {
                user,
                conversation,
                at,
            } => self.recent.read(&user, &conversation, at),
        }
    }
}
