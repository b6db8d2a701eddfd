//! The message search index: `search_doc:[conversation, seq]` for every message with text,
//! holding the terms it is found by ([`app::search::index_text`]: words, and the
//! characters and bigrams of Chinese, plus `@sender`) under SurrealDB's full-text index.
//!
//! A search is newest first, and a common word matches a large share of all messages, so
//! the index must never hand over every match to be sorted. Each document carries `ord`,
//! the order in which it was indexed (b-tree index), and its conversation under a second
//! full-text index, and a search asks for the newest [`FIRST_WINDOW`] documents first,
//! then windows eight times wider further back, until it has enough. SurrealDB answers
//! each window by intersecting three bitmaps (the words, the user's conversations, the
//! `ord` range) before it reads a single record, so a search reads about as many records
//! as it returns, however common the word.
//!
//! The index follows the messages instead of being written with them: a batch's
//! transaction stays as it was measured (the index would multiply its writes), and
//! [`SurrealChatStore::index_pending`] brings each conversation that changed up to date,
//! a chunk of positions per transaction, with its cursor (`search_cursor:<key>.upto`, the
//! last position indexed) in the same transaction. A crash loses no indexing: the next
//! start compares every cursor with its conversation's last position. Results are
//! read from the messages as they are now, so text that was edited or deleted since it was
//! indexed is never shown; the index itself forgets a deleted message within a second.

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use app::search::{index_text, Query};
use surrealdb::types::{RecordId, SurrealValue};

use super::{
    rows::{key_of, pair_key, to_u64, ChangeKind, ConversationSeqRow, Entry, MessageRecord},
    transaction, StoreError, SurrealChatStore,
};
use crate::locks::lock;

/// Positions indexed per transaction.
pub const INDEX_CHUNK: u64 = 1024;
/// Most documents one indexing transaction writes.
pub const INDEX_BATCH: usize = 16_384;
/// Documents in the first (newest) window a search looks at; each next one is 8 times wider.
pub const FIRST_WINDOW: u64 = 4096;

/// Conversations whose messages changed since they were last indexed, and the `ord` the
/// next document gets.
#[derive(Debug, Default)]
pub(super) struct Unindexed {
    keys: BTreeSet<String>,
    /// Taken from `keys` by the pass under way and not finished yet.
    in_pass: usize,
    next_ord: u64,
}

#[derive(Debug, SurrealValue)]
struct SearchDocRow {
    id: RecordId,
    conv: String,
    seq: i64,
    sender: String,
    at: i64,
    /// The order in which documents were indexed (see the module's documentation).
    ord: i64,
    terms: String,
}

/// What one indexing transaction will write: each message's document (with its order
/// number; `None` to remove it) and each conversation's new cursor.
#[derive(Debug, Default)]
struct IndexBatch {
    docs: HashMap<(String, u64), (u64, Option<SearchDocRow>)>,
    cursors: HashMap<String, u64>,
    /// The order number the next new document gets, once this batch has taken one: counted
    /// here, and given to the store's counter only when the batch is stored (only the
    /// indexer takes order numbers, and a search never looks past the counter).
    next_ord: Option<u64>,
}

impl IndexBatch {
    /// The next order number.
    fn new_ord(&mut self, unindexed: &std::sync::Mutex<Unindexed>) -> u64 {
        let next = self
            .next_ord
            .get_or_insert_with(|| lock(unindexed).next_ord);
        *next += 1;
        *next - 1
    }
}

#[derive(Debug, SurrealValue)]
struct OrdRow {
    seq: i64,
    ord: i64,
}

#[derive(Debug, SurrealValue)]
struct CursorRow {
    id: RecordId,
    upto: i64,
}

#[derive(Debug, SurrealValue)]
struct HitRow {
    conv: String,
    seq: i64,
    at: i64,
}

/// A message that may contain the query (the index says so; its text as it is now decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub conversation: String,
    pub seq: u64,
    pub at: i64,
}

fn doc_id(key: &str, seq: u64) -> RecordId {
    RecordId::new("search_doc", pair_key(key, seq as i64))
}

fn cursor_id(key: &str) -> RecordId {
    RecordId::new("search_cursor", key)
}

/// The term that finds a sender's messages (no word term starts with `@`).
fn sender_term(username: &str) -> String {
    format!("@{username}")
}

/// The document of a message (at `ord`), if it has text to find.
fn doc(m: &MessageRecord, ord: u64) -> Option<SearchDocRow> {
    let terms = index_text(&m.body);
    (!m.deleted && !terms.is_empty()).then(|| SearchDocRow {
        id: doc_id(&m.conversation, m.seq),
        conv: m.conversation.clone(),
        seq: m.seq as i64,
        sender: m.sender.clone(),
        at: m.sent_at,
        ord: ord as i64,
        terms: format!("{terms} {}", sender_term(&m.sender)),
    })
}

impl SurrealChatStore {
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
        let mut res = self
            .db
            .query(
                "SELECT id, last_seq, last_n FROM conversation;
                 SELECT id, upto FROM search_cursor;
                 SELECT VALUE next FROM ONLY search_order:next;",
            )
            .await?
            .check()?;
        let convs: Vec<ConversationSeqRow> = res.take(0)?;
        let cursors: Vec<CursorRow> = res.take(1)?;
        let next: Option<i64> = res.take(2)?;
        lock(&self.unindexed).next_ord = next.map_or(0, to_u64);
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
    /// many conversations share a transaction, up to [`INDEX_BATCH`] of them, so that
    /// each term's postings are written once per transaction rather than once per
    /// conversation. What a failed transaction held stays noted.
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
                    // Out of time, or the index refused a transaction: the rest waits.
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
        // An edited message keeps its place in the index's order (from this batch, or as
        // stored).
        let stored: Vec<RecordId> = targets
            .iter()
            .filter(|&&t| !batch.docs.contains_key(&(key.to_owned(), t)))
            .map(|&t| doc_id(key, t))
            .collect();
        let mut res = self
            .db
            .query("SELECT seq, ord FROM $ids")
            .bind(("ids", stored))
            .await?
            .check()?;
        let kept: HashMap<u64, u64> = res
            .take::<Vec<OrdRow>>(0)?
            .into_iter()
            .map(|r| (to_u64(r.seq), to_u64(r.ord)))
            .collect();
        for e in &entries {
            let (seq, message) = match e {
                Entry::Message(m) => (m.seq, Some(m)),
                Entry::Change(c) if targets.contains(&c.target) => {
                    (c.target, changed.get(&c.target))
                }
                Entry::Change(_) => continue,
            };
            let slot = (key.to_owned(), seq);
            let ord = match (batch.docs.get(&slot), kept.get(&seq)) {
                (Some((ord, _)), _) => *ord,
                (None, Some(&ord)) => ord,
                (None, None) => batch.new_ord(&self.unindexed),
            };
            batch
                .docs
                .insert(slot, (ord, message.and_then(|m| doc(m, ord))));
        }
        batch.cursors.insert(key.to_owned(), to);
        Ok(to < last)
    }

    /// Stores what `batch` holds in one transaction, with the conversations' cursors, and
    /// empties it; then the documents are searchable. On failure, the conversations are
    /// noted again (their order numbers were never given out).
    async fn commit_index(&self, batch: &mut IndexBatch) -> Result<(), StoreError> {
        if batch.cursors.is_empty() {
            return Ok(());
        }
        let taken = std::mem::take(batch);
        let gone: Vec<RecordId> = taken.docs.keys().map(|(k, s)| doc_id(k, *s)).collect();
        let cursors: Vec<CursorRow> = taken
            .cursors
            .iter()
            .map(|(k, &upto)| CursorRow {
                id: cursor_id(k),
                upto: upto as i64,
            })
            .collect();
        let next = taken
            .next_ord
            .unwrap_or_else(|| lock(&self.unindexed).next_ord);
        let rows: Vec<SearchDocRow> = taken.docs.into_values().filter_map(|(_, d)| d).collect();
        let res = self
            .db
            .query(
                "BEGIN;
                 DELETE $gone RETURN NONE;
                 INSERT INTO search_doc $rows RETURN NONE;
                 FOR $c IN $cursors { UPSERT $c.id SET upto = $c.upto RETURN NONE; };
                 UPSERT search_order:next SET next = $next RETURN NONE;
                 COMMIT;",
            )
            .bind(("gone", gone))
            .bind(("rows", rows))
            .bind(("cursors", cursors))
            .bind(("next", next as i64))
            .await
            .map_err(StoreError::from)
            .and_then(|r| transaction(r).map_err(StoreError::from));
        match res {
            Ok(()) => lock(&self.unindexed).next_ord = next,
            Err(_) => self.unindexed(taken.cursors.keys().map(String::as_str)),
        }
        res
    }

    /// The indexed messages of `conversations` (from `sender` when given) that may contain
    /// `query`, newest first: at least `enough` of them when there are that many (more when
    /// the window that reached `enough` held more), from windows of the index's order
    /// further and further back. The second value says whether older windows are left.
    pub async fn search_candidates(
        &self,
        conversations: &[String],
        query: &Query,
        sender: Option<&str>,
        enough: usize,
    ) -> Result<(Vec<Candidate>, bool), StoreError> {
        if conversations.is_empty() {
            return Ok((Vec::new(), false));
        }
        let mut terms = query.terms_text();
        if let Some(sender) = sender {
            terms = format!("{terms} {}", sender_term(sender));
        }
        let scope = conversations.join(" ");
        let end = lock(&self.unindexed).next_ord;
        let (mut hits, mut hi, mut width) = (Vec::new(), end, FIRST_WINDOW);
        while hi > 0 && hits.len() < enough {
            let lo = hi.saturating_sub(width);
            let mut res = self
                .db
                .query(
                    "SELECT conv, seq, at FROM search_doc
                     WHERE terms @1,AND@ $terms AND conv @2,OR@ $scope
                        AND ord >= $lo AND ord < $hi",
                )
                .bind(("terms", terms.clone()))
                .bind(("scope", scope.clone()))
                .bind(("lo", lo as i64))
                .bind(("hi", hi as i64))
                .await?
                .check()?;
            let rows: Vec<HitRow> = res.take(0)?;
            hits.extend(rows.into_iter().map(|r| Candidate {
                conversation: r.conv,
                seq: to_u64(r.seq),
                at: r.at,
            }));
            hi = lo;
            width = width.saturating_mul(8);
        }
        hits.sort_by(|a, b| (b.at, &b.conversation, b.seq).cmp(&(a.at, &a.conversation, a.seq)));
        Ok((hits, hi > 0))
    }

    /// The last position of `key` the index has.
    pub async fn indexed_upto(&self, key: &str) -> Result<u64, StoreError> {
        let mut res = self
            .db
            .query("SELECT VALUE upto FROM ONLY $cursor")
            .bind(("cursor", cursor_id(key)))
            .await?
            .check()?;
        Ok(res.take::<Option<i64>>(0)?.map_or(0, to_u64))
    }
}
