//! Messages and the changes to them: appending a batch, reading pages of history and
//! what a client missed, read positions, and where each `client_msg_id` went.
//!
//! A conversation's positions (`seq`) are shared by messages (`msg:[key, seq]`) and changes
//! (`change:[key, seq]`), gap-free between them: what a client missed after a position is
//! the two ranges of ids after it, merged. History pages hold messages only, so a page
//! reads back from its end in ranges of positions until it has its messages.

use std::collections::HashMap;

use app::protocol::Quote;
use surrealdb::types::{RecordId, SurrealValue};

use super::{
    heads::{LastMessage, Mark},
    retry_conflicts,
    rows::{
        change_id, client_msg_id, client_msg_key, conversation_id, member_id, mentioned_id,
        mentions_after, message_id, position_of, position_range, to_u64, ChangeRow, ClientMsgRow,
        Entry, LastFieldsRow, MentionKey, MessageRecord, MessageRow, MessageStateRow,
    },
    taken_table, transaction,
    uploads::SentUpload,
    StoreError, SurrealChatStore,
};

/// Widest range of positions one read of a history page covers (the ranges double from
/// the page's size while they come back short of messages).
const MAX_HISTORY_WINDOW: u64 = 10_000;

/// Heads checked per read by [`SurrealChatStore::catch_up_heads`] (two record ids each).
const CATCH_UP_CHUNK: usize = 500;

/// What one commit stores: new entries (messages and changes) in position order, the
/// messages the changes changed, as they are after them, and the mentions that appeared
/// (new messages' and edits') and went (edits' and deletions').
#[derive(Debug, Default)]
pub struct Batch {
    pub entries: Vec<Entry>,
    pub changed: Vec<MessageRecord>,
    pub mentioned: Vec<MentionKey>,
    pub unmentioned: Vec<MentionKey>,
    /// Uploads its new messages carry.
    pub sent_uploads: Vec<SentUpload>,
    /// Uploads of the messages it deletes (file ids): deleted with them.
    pub deleted_uploads: Vec<String>,
}

/// A page of history: its messages, oldest first, and the positions it covers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HistoryPage {
    pub messages: Vec<MessageRecord>,
    /// Every message at a position `from..=to` is in the page.
    pub from: u64,
    pub to: u64,
    /// Older messages exist.
    pub has_more: bool,
}

#[derive(Debug, SurrealValue)]
struct MentionRow {
    id: RecordId,
}

/// `mentioned:[user, conversation]`: the newest position there that mentions the user.
#[derive(Debug, SurrealValue)]
struct MentionedRow {
    id: RecordId,
    user: String,
    conversation: String,
    last: i64,
}

impl MentionedRow {
    fn of(k: &MentionKey) -> Self {
        MentionedRow {
            id: mentioned_id(&k.user, &k.conversation),
            user: k.user.clone(),
            conversation: k.conversation.clone(),
            last: k.seq as i64,
        }
    }
}

#[derive(Debug, SurrealValue)]
struct NRow {
    n: Option<i64>,
}

impl SurrealChatStore {
    /// Every message `sender` has sent that is not deleted, oldest first by conversation
    /// and position: a person's data export. Reads the whole message table (there is no
    /// index by sender), so it is for the administration command, not for requests.
    pub async fn messages_by(&self, sender: &str) -> Result<Vec<MessageRecord>, StoreError> {
        let mut res = self
            .db
            .query("SELECT * FROM msg WHERE sender = $sender AND !deleted ORDER BY id")
            .bind(("sender", sender.to_owned()))
            .await?
            .check()?;
        let rows: Vec<MessageRow> = res.take(0)?;
        Ok(rows.into_iter().filter_map(MessageRow::record).collect())
    }

    /// The conversation's head (last position and the messages up to it), or `None` if it
    /// does not exist: from memory once known, else read once (and then known).
    pub async fn head(&self, key: &str) -> Result<Option<Mark>, StoreError> {
        if let Some(mark) = self.heads().head(key) {
            return Ok(Some(mark));
        }
        let mut res = self
            .db
            .query("SELECT last_seq, last_n, last_at, last_sender, last_text FROM ONLY $conv")
            .bind(("conv", conversation_id(key)))
            .await?
            .check()?;
        let Some(row): Option<LastFieldsRow> = res.take(0)? else {
            return Ok(None);
        };
        let stored = to_u64(row.last_seq);
        let mark = Mark::new(stored, row.last_n.map_or(stored, to_u64));
        let last = LastMessage::from_fields(stored, row.last_at, row.last_sender, row.last_text);
        Ok(Some(self.heads().learn(key, mark, last)))
    }

    /// The conversation's last position, or `None` if it does not exist.
    pub async fn last_seq(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.head(key).await?.map(|m| m.seq))
    }

    /// Makes `key`'s head follow entries stored past it (which only something writing
    /// behind this store's back could leave: [`StoreError::SeqTaken`] says so). Returns the
    /// last `seq`.
    pub async fn resync_head(&self, key: &str) -> Result<u64, StoreError> {
        let known = self
            .last_seq(key)
            .await?
            .ok_or(StoreError::NoSuchConversation)?;
        let past = self.entries_in(key, known + 1, i64::MAX as u64).await?;
        let Some(end) = past.last() else {
            return Ok(known);
        };
        let mark = Mark::new(end.seq(), end.n());
        let last = past.iter().rev().find_map(|e| match e {
            Entry::Message(m) => Some(LastMessage::of(m)),
            Entry::Change(_) => None,
        });
        Ok(self.heads().learn(key, mark, last).seq)
    }

    /// Moves every head this store knows to what is stored past it, if anything is: what
    /// other nodes committed whose notes never came (a node killed between its commit and
    /// its note, or the bus away for a while). Returns `(key, from, to)` for each head moved.
    pub async fn catch_up_heads(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let known = self.heads().known();
        self.follow_stored(known).await
    }

    /// [`Self::resync_head`] for each of `keys` (the conversations of a batch that lost a
    /// race for its positions to another node's), in one read for all those whose head is
    /// known and one more per conversation found behind: the others are not read again.
    pub async fn resync_heads(&self, keys: &[&str]) -> Result<(), StoreError> {
        let mut known = Vec::new();
        for &key in keys {
            match self.known_last_seq(key) {
                Some(seq) => known.push((key.to_owned(), seq)),
                None => {
                    self.resync_head(key).await?;
                }
            }
        }
        self.follow_stored(known).await.map(|_| ())
    }

    /// Moves each of these heads (`(key, last seq)` as known here) that something is stored
    /// past to the end of what is stored: one read per [`CATCH_UP_CHUNK`] heads (is anything
    /// at the next position?), then [`Self::resync_head`] for each found behind. Returns
    /// `(key, from, to)` for each head moved.
    async fn follow_stored(
        &self,
        known: Vec<(String, u64)>,
    ) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let mut behind: Vec<(String, u64)> = Vec::new();
        for chunk in known.chunks(CATCH_UP_CHUNK) {
            let next: Vec<RecordId> = chunk
                .iter()
                .flat_map(|(key, seq)| [message_id(key, seq + 1), change_id(key, seq + 1)])
                .collect();
            let mut res = self
                .db
                .query("SELECT VALUE id FROM $next")
                .bind(("next", next))
                .await?
                .check()?;
            let found: Vec<RecordId> = res.take(0)?;
            behind.extend(
                found
                    .iter()
                    .filter_map(position_of)
                    .map(|(key, seq)| (key, seq.saturating_sub(1))),
            );
        }
        behind.sort();
        behind.dedup_by(|a, b| a.0 == b.0);
        let mut moved = Vec::new();
        for (key, from) in behind {
            let to = self.resync_head(&key).await?;
            if to > from {
                moved.push((key, from, to));
            }
        }
        Ok(moved)
    }

    /// The conversation's head if known (no database read).
    pub fn known_head(&self, key: &str) -> Option<Mark> {
        self.heads().head(key)
    }

    /// Who sent the conversation's newest message and at which position, if known (no
    /// database read).
    pub fn known_last_sender(&self, key: &str) -> Option<(String, u64)> {
        self.heads()
            .last_message(key)
            .map(|m| (m.sender.clone(), m.seq))
    }

    /// The conversation's last `seq` if its head is known (no database read).
    pub fn known_last_seq(&self, key: &str) -> Option<u64> {
        self.heads().last_seq(key)
    }

    /// Stores a batch of new messages (see [`Self::commit`]).
    pub async fn append_batch(&self, batch: &[MessageRecord]) -> Result<(), StoreError> {
        self.commit(&Batch {
            entries: batch.iter().cloned().map(Entry::Message).collect(),
            ..Batch::default()
        })
        .await
    }

    /// Stores a batch of messages and changes in one transaction, so that they share one
    /// sync: the group commit of [`crate::writer`]. Each conversation's entries must
    /// continue its last `seq` without gaps, in order (the caller numbers them from
    /// [`Self::head`]), or the batch is refused with [`StoreError::OutOfSequence`]. All or
    /// nothing: a position already stored fails the whole batch with
    /// [`StoreError::SeqTaken`] (then [`Self::resync_head`]), a `(sender, client_msg_id)`
    /// already used with [`StoreError::ClientMsgIdTaken`]. Durable when this returns. The
    /// transaction writes the entries, the messages' `client_msg` records and the changed
    /// messages' new states only; the rest the batch moves (heads, the senders' read
    /// positions) moves in memory at once and in the database within a second
    /// ([`Self::store_pending`]).
    pub async fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut last: HashMap<&str, u64> = HashMap::new();
        let (mut rows, mut ids, mut changes) = (Vec::new(), Vec::new(), Vec::new());
        for e in &batch.entries {
            let (conversation, seq) = match e {
                Entry::Message(m) => (m.conversation.as_str(), m.seq),
                Entry::Change(c) => (c.conversation.as_str(), c.seq),
            };
            let expected = match last.get(conversation) {
                Some(&prev) => prev + 1,
                None => {
                    self.last_seq(conversation)
                        .await?
                        .ok_or(StoreError::NoSuchConversation)?
                        + 1
                }
            };
            if seq != expected {
                return Err(StoreError::OutOfSequence);
            }
            last.insert(conversation, seq);
            match e {
                Entry::Message(m) => {
                    rows.push(MessageRow::of(m));
                    ids.push(ClientMsgRow::of(m));
                }
                Entry::Change(c) => changes.push(ChangeRow::of(c)),
            }
        }
        let states: Vec<MessageStateRow> = batch.changed.iter().map(MessageStateRow::of).collect();
        let mentioned: Vec<MentionRow> = batch
            .mentioned
            .iter()
            .map(|k| MentionRow { id: k.id() })
            .collect();
        let unmentioned: Vec<RecordId> = batch.unmentioned.iter().map(MentionKey::id).collect();
        let hints: Vec<MentionedRow> = batch.mentioned.iter().map(MentionedRow::of).collect();
        // Messages alone (the common case) keep the statement the store was measured with.
        let deleted_uploads: Vec<RecordId> = batch
            .deleted_uploads
            .iter()
            .map(|id| super::uploads::upload_id(id))
            .collect();
        let sql = if changes.is_empty()
            && states.is_empty()
            && mentioned.is_empty()
            && unmentioned.is_empty()
            && batch.sent_uploads.is_empty()
            && deleted_uploads.is_empty()
        {
            "BEGIN;
             INSERT INTO msg $rows RETURN NONE;
             INSERT INTO client_msg $ids RETURN NONE;
             COMMIT;"
        } else {
            "BEGIN;
             INSERT INTO msg $rows RETURN NONE;
             INSERT INTO client_msg $ids RETURN NONE;
             INSERT INTO change $changes RETURN NONE;
             FOR $s IN $states {
                UPDATE $s.id SET body = $s.body, edited_at = $s.edited_at,
                    deleted = $s.deleted, deleted_by = $s.deleted_by, reactions = $s.reactions,
                    mentions = $s.mentions,
                    attachments = $s.attachments RETURN NONE;
             };
             FOR $u IN $sent_uploads {
                UPDATE $u.id SET seq = $u.seq, client_msg_id = $u.client_msg_id RETURN NONE;
             };
             DELETE $deleted_uploads RETURN NONE;
             DELETE $unmentioned RETURN NONE;
             INSERT INTO mention $mentioned RETURN NONE;
             FOR $h IN $hints {
                UPSERT $h.id SET user = $h.user, conversation = $h.conversation,
                    last = math::max([last ?? 0, $h.last]) RETURN NONE;
             };
             COMMIT;"
        };
        let res = self
            .db
            .query(sql)
            .bind(("rows", rows))
            .bind(("ids", ids))
            .bind(("changes", changes))
            .bind(("states", states))
            .bind(("mentioned", mentioned))
            .bind(("unmentioned", unmentioned))
            .bind(("hints", hints))
            .bind(("sent_uploads", batch.sent_uploads.clone()))
            .bind(("deleted_uploads", deleted_uploads))
            .await
            .and_then(transaction);
        match res {
            Ok(()) => {
                self.unindexed(last.keys().copied());
                let (applied, heads) = {
                    let mut h = self.heads();
                    let applied = h.apply(&batch.entries, &batch.changed);
                    let heads: Vec<_> = match self.notes.get() {
                        Some(_) => last
                            .keys()
                            .filter_map(|key| {
                                let at = h.head(key)?;
                                Some(((*key).to_owned(), at, h.last_message(key).cloned()))
                            })
                            .collect(),
                        None => Vec::new(),
                    };
                    (applied, heads)
                };
                for (user, conv, mark) in &applied.reads {
                    self.recent.read(user, conv, *mark);
                }
                self.tell(|| super::Note::Committed {
                    heads,
                    reads: applied.reads,
                });
                Ok(())
            }
            Err(e) => match taken_table(&e) {
                Some("msg" | "change") => Err(StoreError::SeqTaken),
                Some("client_msg") => Err(StoreError::ClientMsgIdTaken),
                // Another node's batch wrote the same records at the same moment (in a
                // cluster): as for a position found taken, the head is read again and the
                // batch goes again, numbered after what that node stored.
                _ if crate::db::is_conflict(&e) => Err(StoreError::SeqTaken),
                _ => Err(e.into()),
            },
        }
    }

    /// Where `sender`'s message with `client_msg_id` was stored: `(conversation, seq)`.
    pub async fn sent_message(
        &self,
        sender: &str,
        client_msg: &str,
    ) -> Result<Option<(String, u64)>, StoreError> {
        let pair = (sender.to_owned(), client_msg.to_owned());
        Ok(self
            .sent_messages(std::slice::from_ref(&pair))
            .await?
            .remove(&pair))
    }

    /// Where each of these `(sender, client_msg_id)` pairs went, for those stored: one read
    /// for a whole batch.
    pub async fn sent_messages(
        &self,
        pairs: &[(String, String)],
    ) -> Result<HashMap<(String, String), (String, u64)>, StoreError> {
        let ids: Vec<RecordId> = pairs
            .iter()
            .map(|(sender, id)| client_msg_id(sender, id))
            .collect();
        let rows: Vec<ClientMsgRow> = self.rows_at(ids).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((client_msg_key(&r.id)?, (r.conversation, to_u64(r.seq)))))
            .collect())
    }

    /// The message at `seq` of conversation `key`, if there is one there.
    pub async fn message(&self, key: &str, seq: u64) -> Result<Option<MessageRecord>, StoreError> {
        Ok(self
            .messages_in(key, seq, seq.saturating_add(1))
            .await?
            .pop())
    }

    /// The messages of `key` at these positions (those that are messages), in one read.
    pub async fn messages_at(
        &self,
        key: &str,
        seqs: &[u64],
    ) -> Result<HashMap<u64, MessageRecord>, StoreError> {
        let places: Vec<(&str, u64)> = seqs.iter().map(|&s| (key, s)).collect();
        Ok(self
            .messages_of(&places)
            .await?
            .into_iter()
            .map(|m| (m.seq, m))
            .collect())
    }

    /// The messages at these `(conversation, seq)` places (those that are messages), in one
    /// read, in no particular order.
    pub async fn messages_of(
        &self,
        places: &[(&str, u64)],
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let ids: Vec<RecordId> = places.iter().map(|&(k, s)| message_id(k, s)).collect();
        let rows: Vec<MessageRow> = self.rows_at(ids).await?;
        Ok(rows.into_iter().filter_map(MessageRow::record).collect())
    }

    /// The quotes of the messages these messages answer, by the answered `seq`: from the
    /// page itself where it holds them, else in one read.
    pub async fn quotes<'a>(
        &self,
        key: &str,
        page: impl IntoIterator<Item = &'a MessageRecord>,
    ) -> Result<HashMap<u64, Quote>, StoreError> {
        // In `seq` order, as pages are.
        let page: Vec<&MessageRecord> = page.into_iter().collect();
        let mut quotes: HashMap<u64, Quote> = HashMap::new();
        let mut missing = Vec::new();
        for target in page.iter().filter_map(|m| m.reply_to) {
            match page.binary_search_by_key(&target, |m| m.seq) {
                Ok(i) => {
                    quotes.insert(target, page[i].quote());
                }
                Err(_) => missing.push(target),
            }
        }
        missing.sort_unstable();
        missing.dedup();
        for (seq, m) in self.messages_at(key, &missing).await? {
            quotes.insert(seq, m.quote());
        }
        Ok(quotes)
    }

    /// Up to `limit` messages with `seq < before` (or the newest), oldest first.
    pub async fn history(
        &self,
        key: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        Ok(self.history_page(key, before, limit).await?.messages)
    }

    /// The newest `limit` messages at positions before `before` (or the newest overall),
    /// oldest first, and the positions they cover. Reads back from the end in ranges of
    /// positions, as wide as the page at first and twice as wide each time one comes back
    /// short (positions between messages hold changes).
    pub async fn history_page(
        &self,
        key: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<HistoryPage, StoreError> {
        let head = self.last_seq(key).await?.unwrap_or(0);
        let end = before.unwrap_or(head + 1).min(head + 1);
        self.page_before(key, end, limit).await
    }

    /// The newest message at or before position `upto`, as a conversation's last message
    /// (the head is not consulted: crash repair calls it before heads are known).
    pub(super) async fn last_message(
        &self,
        key: &str,
        upto: u64,
    ) -> Result<Option<LastMessage>, StoreError> {
        let page = self.page_before(key, upto.saturating_add(1), 1).await?;
        Ok(page.messages.last().map(LastMessage::of))
    }

    /// [`Self::history_page`] ending before position `end`.
    async fn page_before(
        &self,
        key: &str,
        end: u64,
        limit: u32,
    ) -> Result<HistoryPage, StoreError> {
        // One more than the page says whether older messages exist.
        let want = limit as usize + 1;
        let mut found: Vec<MessageRecord> = Vec::new();
        let (mut low, mut window) = (end, u64::from(limit).max(1) + 1);
        while found.len() < want && low > 1 {
            let from = low.saturating_sub(window).max(1);
            let mut older = self.messages_in(key, from, low).await?;
            older.append(&mut found);
            found = older;
            low = from;
            window = (window * 2).min(MAX_HISTORY_WINDOW);
        }
        let has_more = found.len() > limit as usize;
        if has_more {
            found.drain(..found.len() - limit as usize);
        }
        Ok(HistoryPage {
            from: if has_more { found[0].seq } else { 1 },
            to: end.saturating_sub(1),
            messages: found,
            has_more,
        })
    }

    /// Up to `limit` messages with `seq > after`, oldest first (changes between them
    /// skipped).
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

    /// The entries (messages and changes) at the `limit` positions after `after`, in
    /// order: what a reconnecting client missed.
    pub async fn entries_after(
        &self,
        key: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        let from = after.saturating_add(1);
        self.entries_in(key, from, from.saturating_add(u64::from(limit)))
            .await
    }

    /// The entries at positions `from <= seq < to`, in order: one range of ids in each
    /// table, merged.
    pub(super) async fn entries_in(
        &self,
        key: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<Entry>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let mut res = self
            .db
            .query("SELECT * FROM $messages; SELECT * FROM $changes;")
            .bind(("messages", position_range("msg", key, from, to)))
            .bind(("changes", position_range("change", key, from, to)))
            .await?
            .check()?;
        let messages: Vec<MessageRow> = res.take(0)?;
        let changes: Vec<ChangeRow> = res.take(1)?;
        let mut entries: Vec<Entry> = messages
            .into_iter()
            .filter_map(MessageRow::record)
            .map(Entry::Message)
            .chain(
                changes
                    .into_iter()
                    .filter_map(ChangeRow::record)
                    .map(Entry::Change),
            )
            .collect();
        entries.sort_by_key(Entry::seq);
        Ok(entries)
    }

    /// The messages with `from <= seq < to`, oldest first: one range of record ids.
    pub(super) async fn messages_in(
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
            .bind(("range", position_range("msg", key, from, to)))
            .await?
            .check()?;
        let rows: Vec<MessageRow> = res.take(0)?;
        Ok(rows.into_iter().filter_map(MessageRow::record).collect())
    }

    /// How many messages mention `user` after their read position, in each of
    /// `conversations` (`(key, read seq)`); conversations without any are left out. The
    /// user's `mentioned` records (one per conversation they were ever mentioned in, with
    /// the newest position that did) rule out the rest with one indexed read; then one
    /// range of `mention` ids per conversation left.
    pub async fn unread_mentions(
        &self,
        user: &str,
        conversations: &[(&str, u64)],
    ) -> Result<HashMap<String, u64>, StoreError> {
        let mut counts = HashMap::new();
        if conversations.is_empty() {
            return Ok(counts);
        }
        let mut res = self
            .db
            .query("SELECT VALUE [conversation, last] FROM mentioned WHERE user = $user")
            .bind(("user", user.to_owned()))
            .await?
            .check()?;
        let newest: Vec<(String, i64)> = res.take(0)?;
        let newest: HashMap<String, u64> =
            newest.into_iter().map(|(c, at)| (c, to_u64(at))).collect();
        let conversations: Vec<(&str, u64)> = conversations
            .iter()
            .copied()
            .filter(|(key, read)| newest.get(*key).is_some_and(|at| at > read))
            .collect();
        if conversations.is_empty() {
            return Ok(counts);
        }
        // A statement per range: `FROM` takes one range, not an array of them. The text
        // names bound parameters only.
        let sql: String = (0..conversations.len())
            .map(|i| format!("RETURN array::len(SELECT VALUE id FROM $r{i});"))
            .collect();
        let mut query = self.db.query(sql);
        for (i, (key, read)) in conversations.iter().enumerate() {
            query = query.bind((format!("r{i}"), mentions_after(user, key, *read)));
        }
        let mut res = query.await?.check()?;
        for (i, (key, _)) in conversations.iter().enumerate() {
            let n: Option<i64> = res.take(i)?;
            if let Some(n) = n.filter(|&n| n > 0) {
                counts.insert((*key).to_owned(), to_u64(n));
            }
        }
        Ok(counts)
    }

    /// The member's read state of `key` as it is now, with their unread mentions.
    pub async fn read_state(
        &self,
        username: &str,
        key: &str,
    ) -> Result<app::protocol::ServerMsg, StoreError> {
        let row = self.conversation_row(username, key).await?;
        let mentions = self
            .mentions_after(username, key, row.last_read_seq, row.unread())
            .await?;
        Ok(row.read_state(mentions))
    }

    /// How many of the `unread` messages of `key` after `seq` mention `user` (no read when
    /// none is unread).
    pub async fn mentions_after(
        &self,
        user: &str,
        key: &str,
        seq: u64,
        unread: u64,
    ) -> Result<u64, StoreError> {
        if unread == 0 {
            return Ok(0);
        }
        Ok(self
            .unread_mentions(user, &[(key, seq)])
            .await?
            .get(key)
            .copied()
            .unwrap_or(0))
    }

    /// The position `seq` of `key` with the messages up to it. `head` is the conversation's.
    async fn mark_at(&self, key: &str, seq: u64, head: Mark) -> Result<Mark, StoreError> {
        if seq >= head.seq {
            return Ok(head);
        }
        if seq == 0 {
            return Ok(Mark::default());
        }
        let mut res = self
            .db
            .query("SELECT n FROM $ids")
            .bind(("ids", vec![message_id(key, seq), change_id(key, seq)]))
            .await?
            .check()?;
        let rows: Vec<NRow> = res.take(0)?;
        // Rows from before changes existed have no `n`: it equals `seq` there.
        let n = rows
            .first()
            .map_or(seq.min(head.n), |r| r.n.map_or(seq, to_u64));
        Ok(Mark::new(seq, n))
    }

    /// Moves the user's read position forward to `seq` (never backwards, never past the last
    /// position). Returns the read position and the conversation's head after the update.
    pub async fn mark_read(
        &self,
        key: &str,
        username: &str,
        seq: u64,
    ) -> Result<(Mark, Mark), StoreError> {
        self.require_member(key, username).await?;
        let head = self.head(key).await?.unwrap_or_default();
        let upto = self.mark_at(key, seq, head).await?;
        let stored: Option<ReadFields> = retry_conflicts(|| async {
            let _one_at_a_time = self.read_writes.lock().await;
            let mut res = self
                .db
                .query(
                    "UPDATE $member SET last_read_seq = $seq, last_read_n = $n
                        WHERE last_read_seq < $seq RETURN NONE;
                     SELECT last_read_seq, last_read_n FROM ONLY $member;",
                )
                .bind(("member", member_id(key, username)))
                .bind(("seq", upto.seq as i64))
                .bind(("n", upto.n as i64))
                .await?
                .check()?;
            Ok(res.take(1)?)
        })
        .await?;
        let stored = stored.map_or(Mark::default(), |r| {
            let seq = to_u64(r.last_read_seq);
            Mark::new(seq, r.last_read_n.map_or(seq, to_u64))
        });
        let read = self.heads().read_position(username, key, stored);
        self.recent.read(username, key, read);
        self.tell(|| super::Note::Read {
            user: username.to_owned(),
            conversation: key.to_owned(),
            at: read,
        });
        Ok((read, head.max(read)))
    }
}

#[derive(Debug, SurrealValue)]
struct ReadFields {
    last_read_seq: i64,
    last_read_n: Option<i64>,
}
