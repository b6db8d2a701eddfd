//! Messages: appending a batch, reading pages of history, read positions, and where each
//! `client_msg_id` went.

use std::collections::HashMap;

use super::{
    heads::LastMessage,
    retry_conflicts,
    rows::{
        client_msg_id, client_msg_key, conversation_id, member_id, message_range, to_u64,
        ClientMsgRow, LastFieldsRow, MessageRecord, MessageRow,
    },
    taken_table, transaction, StoreError, SurrealChatStore,
};

impl SurrealChatStore {
    /// The conversation's last `seq`, or `None` if it does not exist: from its head once
    /// known, else read once (and then known).
    pub async fn last_seq(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if let Some(seq) = self.known_last_seq(key) {
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
        let last = LastMessage::from_fields(stored, row.last_at, row.last_sender, row.last_text);
        Ok(Some(self.heads().learn(key, stored, last)))
    }

    /// Makes `key`'s head follow messages stored past it (which only something writing
    /// behind this store's back could leave: [`StoreError::SeqTaken`] says so). Returns the
    /// last `seq`.
    pub async fn resync_head(&self, key: &str) -> Result<u64, StoreError> {
        let known = self
            .last_seq(key)
            .await?
            .ok_or(StoreError::NoSuchConversation)?;
        let past = self.messages_in(key, known + 1, i64::MAX as u64).await?;
        let mut heads = self.heads();
        match past.last() {
            Some(m) => Ok(heads.learn(key, 0, Some(LastMessage::of(m)))),
            None => Ok(known),
        }
    }

    /// The conversation's last `seq` if its head is known (no database read).
    pub fn known_last_seq(&self, key: &str) -> Option<u64> {
        self.heads().last_seq(key)
    }

    /// Stores a batch of messages in one transaction, so that they share one sync: the
    /// group commit of [`crate::writer`]. Each conversation's messages must continue its
    /// last `seq` without gaps, in order (the caller numbers them from
    /// [`Self::last_seq`]), or the batch is refused with [`StoreError::OutOfSequence`]. All
    /// or nothing: a `seq` already stored fails the whole batch with
    /// [`StoreError::SeqTaken`] (then [`Self::resync_head`]), a `(sender, client_msg_id)` already used with
    /// [`StoreError::ClientMsgIdTaken`]. Durable when this returns. The transaction writes
    /// the messages and their `client_msg` records only; the rest the batch changes (last
    /// messages, the senders' read positions) moves in the heads at once and in the
    /// database within a second ([`Self::store_pending`]).
    pub async fn append_batch(&self, batch: &[MessageRecord]) -> Result<(), StoreError> {
        let mut last: HashMap<&str, u64> = HashMap::new();
        for m in batch {
            let expected = match last.get(m.conversation.as_str()) {
                Some(&prev) => prev + 1,
                None => {
                    self.last_seq(&m.conversation)
                        .await?
                        .ok_or(StoreError::NoSuchConversation)?
                        + 1
                }
            };
            if m.seq != expected {
                return Err(StoreError::OutOfSequence);
            }
            last.insert(&m.conversation, m.seq);
        }
        let rows: Vec<MessageRow> = batch.iter().map(MessageRow::of).collect();
        let ids: Vec<ClientMsgRow> = batch.iter().map(ClientMsgRow::of).collect();
        let res = self
            .db
            .query(
                "BEGIN;
                 INSERT INTO msg $rows RETURN NONE;
                 INSERT INTO client_msg $ids RETURN NONE;
                 COMMIT;",
            )
            .bind(("rows", rows))
            .bind(("ids", ids))
            .await
            .and_then(transaction);
        match res {
            Ok(()) => {
                let applied = self.heads().apply(batch);
                for (user, conv, seq) in applied.reads {
                    self.recent.read(&user, &conv, seq);
                }
                Ok(())
            }
            Err(e) => match taken_table(&e) {
                Some("msg") => Err(StoreError::SeqTaken),
                Some("client_msg") => Err(StoreError::ClientMsgIdTaken),
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
        let ids: Vec<surrealdb::types::RecordId> = pairs
            .iter()
            .map(|(sender, id)| client_msg_id(sender, id))
            .collect();
        let mut res = self
            .db
            .query("SELECT * FROM $ids")
            .bind(("ids", ids))
            .await?
            .check()?;
        let rows: Vec<ClientMsgRow> = res.take(0)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((client_msg_key(&r.id)?, (r.conversation, to_u64(r.seq)))))
            .collect())
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
        // `seq`s have no gaps, so the page is exactly this id range.
        self.messages_in(key, end.saturating_sub(u64::from(limit)).max(1), end)
            .await
    }

    /// Up to `limit` messages with `seq > after`, oldest first: what a reconnecting client
    /// missed.
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
            .bind(("range", message_range(key, from, to)))
            .await?
            .check()?;
        let rows: Vec<MessageRow> = res.take(0)?;
        Ok(rows.into_iter().filter_map(MessageRow::record).collect())
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
        let stored: Option<i64> = retry_conflicts(|| async {
            let _one_at_a_time = self.read_writes.lock().await;
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
            Ok(res.take(0)?)
        })
        .await?;
        let read = self
            .heads()
            .read_position(username, key, to_u64(stored.unwrap_or(0)));
        self.recent.read(username, key, read);
        Ok((read, last))
    }
}
