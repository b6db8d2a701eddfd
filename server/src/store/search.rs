//! Keeping the message search index ([`crate::search_index`]) up to date with the stored
//! messages, and asking it for candidates.
//!
//! The index follows the messages instead of being written with them: a batch's
//! transaction stays as it was measured, and [`SurrealChatStore::index_pending`] brings
//! each conversation that changed up to date, a chunk of positions at a time, documents of
//! many conversations per index commit. Each conversation's cursor
//! (`search_cursor:<key>.upto`, the last position indexed) is written to the database
//! after the index has committed: a crash in between makes the next start index those
//! positions again, which replaces the documents rather than adding copies. A start on an
//! index made anew (missing or unreadable) forgets every cursor. Results are read from the
//! messages as they are now, so text that was edited or deleted since it was indexed is
//! never shown; the index itself forgets a deleted message within a second.

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use app::search::{index_text, Query};
use surrealdb::types::{RecordId, SurrealValue};

use super::{
    rows::{key_of, to_u64, ChangeKind, ConversationSeqRow, Entry, MessageRecord},
    StoreError, SurrealChatStore,
};
use crate::{
    locks::lock,
    search_index::{Candidate, SearchDoc},
};

/// Positions of one conversation read at a time.
pub const INDEX_CHUNK: u64 = 1024;
/// Most documents one index commit writes.
pub const INDEX_BATCH: usize = 16_384;

/// Conversations whose messages changed since they were last indexed.
#[derive(Debug, Default)]
pub(super) struct Unindexed {
    keys: BTreeSet<String>,
    /// Taken from `keys` by the pass under way and not finished yet.
    in_pass: usize,
}

/// What one index commit will write: each message's document (`None` to remove it) and
/// each conversation's new cursor.
#[derive(Debug, Default)]
struct IndexBatch {
    docs: HashMap<(String, u64), Option<SearchDoc>>,
    cursors: HashMap<String, u64>,
}

#[derive(Debug, SurrealValue)]
struct CursorRow {
    id: RecordId,
    upto: i64,
}

/// The term that finds a sender's messages (no word term starts with `@`).
fn sender_term(username: &str) -> String {
    format!("@{username}")
}

/// The document of a message, if it has text to find.
fn doc(m: &MessageRecord) -> Option<SearchDoc> {
    let terms = index_text(&m.body);
    (!m.deleted && !terms.is_empty()).then(|| SearchDoc {
        conversation: m.conversation.clone(),
        seq: m.seq,
        sent_at: m.sent_at,
        terms: format!("{terms} {}", sender_term(&m.sender)),
    })
}

impl SurrealChatStore {
    /// The record of `key`'s cursor, in this node's table.
    fn cursor_id(&self, key: &str) -> RecordId {
        RecordId::new(&*self.cursor_table, key)
    }

    /// Notes that `keys` have positions the index does not have yet.
    pub(super) fn unindexed<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut u = lock(&self.unindexed);
        for k in keys {
            if !u.keys.contains(k) {
                u.keys.insert(k.to_owned());
            }
        }
    }

    /// How many conversations have messages the index does not have yet.
    pub fn unindexed_count(&self) -> usize {
        let u = lock(&self.unindexed);
        u.keys.len() + u.in_pass
    }

    /// Notes every conversation the index is behind (after a start, crash or not): one read
    /// of the conversations and one of the cursors.
    pub(super) async fn find_unindexed(&self) -> Result<(), StoreError> {
        if self.search.take_fresh() {
            // An index made anew holds nothing, whatever the cursors say.
            self.db
                .query(format!("DELETE {}", self.cursor_table))
                .await?
                .check()?;
        }
        let mut res = self
            .db
            .query(format!(
                "SELECT id, last_seq, last_n FROM conversation;
                 SELECT id, upto FROM {};",
                self.cursor_table
            ))
            .await?
            .check()?;
        let convs: Vec<ConversationSeqRow> = res.take(0)?;
        let cursors: Vec<CursorRow> = res.take(1)?;
        let upto: HashMap<String, i64> = cursors.iter().map(|c| (key_of(&c.id), c.upto)).collect();
        let keys: Vec<String> = convs
            .iter()
            .filter(|c| c.last_seq > upto.get(&key_of(&c.id)).copied().unwrap_or(0))
            .map(|c| key_of(&c.id))
            .collect();
        self.unindexed(keys.iter().map(String::as_str));
        Ok(())
    }

    /// Brings the index up to date with the conversations noted as behind, for at most about
    /// `budget` (what is left stays noted for the next pass: a start on a database nothing
    /// has indexed must not hold up the thread's other work, or a shutdown). Documents of
    /// many conversations share an index commit, up to [`INDEX_BATCH`] of them (each commit
    /// writes and syncs a segment of its own). What a failed commit held stays noted.
    pub async fn index_pending(&self, budget: Duration) -> Result<(), StoreError> {
        let started = Instant::now();
        let keys: Vec<String> = {
            let mut u = lock(&self.unindexed);
            let keys = std::mem::take(&mut u.keys);
            u.in_pass = keys.len();
            keys.into_iter().collect()
        };
        let mut batch = IndexBatch::default();
        let mut outcome = Ok(());
        for (i, key) in keys.iter().enumerate() {
            let more = loop {
                if started.elapsed() >= budget {
                    break Ok(true);
                }
                let more = self.plan_chunk(key, &mut batch).await;
                if batch.docs.len() >= INDEX_BATCH {
                    outcome = self.commit_index(&mut batch).await;
                    if outcome.is_err() {
                        break Ok(true);
                    }
                }
                match more {
                    Ok(true) => tokio::task::yield_now().await,
                    done => break done,
                }
            };
            match more {
                Ok(false) => lock(&self.unindexed).in_pass -= 1,
                Ok(true) => {
                    // Out of time, or the index refused a commit: the rest waits.
                    let mut u = lock(&self.unindexed);
                    u.keys.extend(keys[i..].iter().cloned());
                    u.in_pass = 0;
                    break;
                }
                Err(e) => {
                    self.unindexed([key.as_str()]);
                    lock(&self.unindexed).in_pass -= 1;
                    outcome = Err(e);
                }
            }
        }
        if outcome.is_ok() {
            outcome = self.commit_index(&mut batch).await;
        }
        lock(&self.unindexed).in_pass = 0;
        outcome
    }

    /// Adds the next [`INDEX_CHUNK`] positions of `key` after its cursor to `batch`.
    /// Returns whether more are left.
    async fn plan_chunk(&self, key: &str, batch: &mut IndexBatch) -> Result<bool, StoreError> {
        let Some(last) = self.last_seq(key).await? else {
            return Ok(false);
        };
        let upto = match batch.cursors.get(key) {
            Some(&upto) => upto,
            None => self.indexed_upto(key).await?,
        };
        if upto >= last {
            return Ok(false);
        }
        let to = last.min(upto + INDEX_CHUNK);
        let entries = self.entries_in(key, upto + 1, to + 1).await?;
        // Edits and deletions: the message as it is now.
        let targets: Vec<u64> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Change(c) if matches!(c.kind, ChangeKind::Edit | ChangeKind::Delete) => {
                    Some(c.target)
                }
                _ => None,
            })
            .collect();
        let changed = self.messages_at(key, &targets).await?;
        for e in &entries {
            let (seq, message) = match e {
                Entry::Message(m) => (m.seq, Some(m)),
                Entry::Change(c) if targets.contains(&c.target) => {
                    (c.target, changed.get(&c.target))
                }
                Entry::Change(_) => continue,
            };
            batch
                .docs
                .insert((key.to_owned(), seq), message.and_then(doc));
        }
        batch.cursors.insert(key.to_owned(), to);
        Ok(to < last)
    }

    /// Writes what `batch` holds to the index (one commit), then the conversations'
    /// cursors to the database, and empties it; the documents are searchable from the
    /// index's commit on. On failure, the conversations are noted again.
    async fn commit_index(&self, batch: &mut IndexBatch) -> Result<(), StoreError> {
        if batch.cursors.is_empty() {
            return Ok(());
        }
        let taken = std::mem::take(batch);
        let cursors: Vec<CursorRow> = taken
            .cursors
            .iter()
            .map(|(k, &upto)| CursorRow {
                id: self.cursor_id(k),
                upto: upto as i64,
            })
            .collect();
        let written = self.search.write(
            taken
                .docs
                .iter()
                .map(|((key, seq), d)| ((key.as_str(), *seq), d.as_ref())),
        );
        let res = match written {
            Ok(()) => self
                .db
                .query("FOR $c IN $cursors { UPSERT $c.id SET upto = $c.upto RETURN NONE; };")
                .bind(("cursors", cursors))
                .await
                .and_then(|r| r.check())
                .map(drop)
                .map_err(StoreError::from),
            Err(e) => Err(e.into()),
        };
        if res.is_err() {
            self.unindexed(taken.cursors.keys().map(String::as_str));
        }
        res
    }

    /// The indexed messages of `conversations` (from `sender` when given) that may contain
    /// `query`, newest first: the newest `enough` of them. The second value says whether
    /// older ones may be left.
    pub async fn search_candidates(
        &self,
        conversations: &[String],
        query: &Query,
        sender: Option<&str>,
        enough: usize,
    ) -> Result<(Vec<Candidate>, bool), StoreError> {
        let mut terms = query.terms();
        terms.extend(sender.map(sender_term));
        Ok(self.search.candidates(conversations, &terms, enough)?)
    }

    /// The last position of `key` the index has.
    pub async fn indexed_upto(&self, key: &str) -> Result<u64, StoreError> {
        let mut res = self
            .db
            .query("SELECT VALUE upto FROM ONLY $cursor")
            .bind(("cursor", self.cursor_id(key)))
            .await?
            .check()?;
        Ok(res.take::<Option<i64>>(0)?.map_or(0, to_u64))
    }
}
