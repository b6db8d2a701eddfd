//! A conversation's head: its last `seq` and last message, and the read positions that
//! sending moved, as far as they are known — in memory, ahead of the database.
//!
//! A batch's transaction writes its messages only; what it changes besides (each
//! conversation's `last_*` fields, the senders' read positions: sending marks a
//! conversation read) is recorded here by [`Heads::apply`], the one way a committed batch
//! changes a head, and written to the database later ([`super::deferred`]). So:
//! - the writers number messages from here ([`Heads::last_seq`]): one home for a
//!   conversation's last `seq`;
//! - every read of those fields goes through [`Heads::view`] or [`Heads::read_position`],
//!   which put what is known over what the database returned. A row read from the database
//!   is a [`StoredRow`], and only [`Heads::view`] turns it into a
//!   [`ConversationRow`]: a read cannot forget the overlay, the types do not allow it.
//!
//! Heads only move forward: an older `seq` never replaces a newer one. Pure state, no I/O;
//! the store holds it behind a mutex.

use std::collections::HashMap;

use super::rows::{ConversationRow, MessageRecord, PREVIEW_CHARS};

/// The last message of a conversation, as its `last_*` fields hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastMessage {
    pub seq: u64,
    pub at: i64,
    pub sender: String,
    pub text: String,
}

impl LastMessage {
    pub fn of(m: &MessageRecord) -> Self {
        LastMessage {
            seq: m.seq,
            at: m.sent_at,
            sender: m.sender.clone(),
            text: app::domain::preview(&m.body, PREVIEW_CHARS),
        }
    }

    /// The last message as a conversation's stored `last_*` fields hold it; `None` for a
    /// conversation without messages.
    pub fn from_fields(
        seq: u64,
        at: i64,
        sender: Option<String>,
        text: Option<String>,
    ) -> Option<Self> {
        match (sender, text) {
            (Some(sender), Some(text)) if seq > 0 => Some(LastMessage {
                seq,
                at,
                sender,
                text,
            }),
            _ => None,
        }
    }
}

/// A conversation row as the database returned it, before what is only in memory is put
/// over it (see [`Heads::view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow(pub ConversationRow);

#[derive(Debug, Clone, Default)]
struct Head {
    /// The newest committed message; `None` while the conversation has none (or only
    /// the database's fields are known, without a message).
    last: Option<LastMessage>,
    /// The last `seq` whose `last_*` fields the database holds.
    stored_seq: u64,
}

impl Head {
    fn last_seq(&self) -> u64 {
        self.last.as_ref().map_or(0, |m| m.seq).max(self.stored_seq)
    }
}

/// What a committed batch moved: the read positions, for caches that follow them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// `(user, conversation, seq)`: sending read the conversation up to `seq`.
    pub reads: Vec<(String, String, u64)>,
}

/// What is not in the database yet: written by [`super::deferred`], then confirmed with
/// [`Heads::stored_reads`] and [`Heads::stored_last`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unstored {
    /// `((user, conversation), seq)`.
    pub reads: Vec<((String, String), u64)>,
    /// Conversations whose last message is newer than their stored fields.
    pub last: Vec<(String, LastMessage)>,
}

impl Unstored {
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.last.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct Heads {
    conversations: HashMap<String, Head>,
    /// Read positions moved by sending, not stored yet: `(user, conversation) -> seq`.
    reads: HashMap<(String, String), u64>,
}

impl Heads {
    /// `key`'s last `seq`, if known (a read of it, a list load or a commit made it known).
    pub fn last_seq(&self, key: &str) -> Option<u64> {
        self.conversations.get(key).map(Head::last_seq)
    }

    /// What the database holds for `key`: its last `seq` and, when it has messages, its
    /// last one. Older than what is known, it changes nothing. Returns the last `seq`.
    pub fn learn(&mut self, key: &str, stored_seq: u64, last: Option<LastMessage>) -> u64 {
        let head = self.conversations.entry(key.to_owned()).or_default();
        head.stored_seq = head.stored_seq.max(stored_seq);
        if let Some(m) = last {
            if head.last.as_ref().is_none_or(|held| held.seq < m.seq) {
                head.last = Some(m);
            }
        }
        head.last_seq()
    }

    /// A batch is committed: each conversation's last message moves to its newest message
    /// in the batch, and each sender has read up to their newest message.
    pub fn apply(&mut self, batch: &[MessageRecord]) -> Applied {
        let mut reads: HashMap<(&str, &str), u64> = HashMap::new();
        for m in batch {
            let head = self
                .conversations
                .entry(m.conversation.clone())
                .or_default();
            if m.seq > head.last_seq() {
                head.last = Some(LastMessage::of(m));
            }
            let read = reads.entry((&m.sender, &m.conversation)).or_default();
            *read = (*read).max(m.seq);
        }
        let mut applied = Applied::default();
        for ((user, conv), seq) in reads {
            let held = self
                .reads
                .entry((user.to_owned(), conv.to_owned()))
                .or_default();
            *held = (*held).max(seq);
            applied.reads.push((user.to_owned(), conv.to_owned(), seq));
        }
        applied
    }

    /// A row read from the database (or from a cache of such reads), with what is only in
    /// memory put over it: a newer last message, a read position moved by sending. The
    /// database's fields teach `key`'s head when it is not known yet.
    pub fn view(&mut self, user: &str, StoredRow(mut row): StoredRow) -> ConversationRow {
        let last = LastMessage::from_fields(
            row.last_seq,
            row.last_at,
            row.last_sender.clone(),
            row.last_text.clone(),
        );
        self.learn(&row.key, row.last_seq, last);
        if let Some(m) = self
            .conversations
            .get(&row.key)
            .and_then(|h| h.last.as_ref())
            .filter(|m| m.seq > row.last_seq)
        {
            row.last_seq = m.seq;
            row.last_at = m.at;
            row.last_sender = Some(m.sender.clone());
            row.last_text = Some(m.text.clone());
        }
        row.last_read_seq = self.read_position(user, &row.key, row.last_read_seq);
        row
    }

    /// `user`'s read position in `key`: the stored one, or a newer one sending moved.
    pub fn read_position(&self, user: &str, key: &str, stored: u64) -> u64 {
        if self.reads.is_empty() {
            return stored;
        }
        self.reads
            .get(&(user.to_owned(), key.to_owned()))
            .map_or(stored, |&seq| seq.max(stored))
    }

    /// Everything the database does not hold yet.
    pub fn unstored(&self) -> Unstored {
        Unstored {
            reads: self.reads.iter().map(|(k, &v)| (k.clone(), v)).collect(),
            last: self
                .conversations
                .iter()
                .filter_map(|(key, head)| {
                    let m = head.last.as_ref()?;
                    (m.seq > head.stored_seq).then(|| (key.clone(), m.clone()))
                })
                .collect(),
        }
    }

    /// These read positions are stored; those moved again since stay unstored.
    pub fn stored_reads(&mut self, stored: &[((String, String), u64)]) {
        for (key, seq) in stored {
            if self.reads.get(key).is_some_and(|now| now <= seq) {
                self.reads.remove(key);
            }
        }
    }

    /// These conversations' `last_*` fields are stored up to `seq`.
    pub fn stored_last(&mut self, stored: &[(String, LastMessage)]) {
        for (key, m) in stored {
            if let Some(head) = self.conversations.get_mut(key) {
                head.stored_seq = head.stored_seq.max(m.seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rows::Kind;

    fn msg(conv: &str, seq: u64, sender: &str) -> MessageRecord {
        MessageRecord {
            conversation: conv.into(),
            seq,
            sender: sender.into(),
            body: format!("m{seq}"),
            client_msg_id: format!("c{seq}"),
            sent_at: seq as i64 * 10,
        }
    }

    fn stored(key: &str, last_seq: u64, read: u64) -> StoredRow {
        StoredRow(ConversationRow {
            key: key.into(),
            kind: Kind::Room,
            name: Some("Room".into()),
            peer: None,
            last_seq,
            last_read_seq: read,
            last_at: 1,
            last_sender: (last_seq > 0).then(|| "bob".into()),
            last_text: (last_seq > 0).then(|| format!("m{last_seq}")),
        })
    }

    #[test]
    fn a_committed_batch_moves_last_message_and_the_senders_read_positions() {
        let mut heads = Heads::default();
        assert_eq!(heads.learn("r", 2, None), 2);
        let applied = heads.apply(&[
            msg("r", 3, "alice"),
            msg("r", 4, "bob"),
            msg("r", 5, "alice"),
        ]);
        assert_eq!(heads.last_seq("r"), Some(5));
        let mut reads = applied.reads;
        reads.sort();
        assert_eq!(
            reads,
            vec![
                ("alice".into(), "r".into(), 5),
                ("bob".into(), "r".into(), 4)
            ]
        );
        let row = heads.view("bob", stored("r", 2, 1));
        assert_eq!((row.last_seq, row.last_read_seq, row.unread()), (5, 4, 1));
        assert_eq!(row.last_text.as_deref(), Some("m5"));
        assert_eq!(row.last_at, 50);
    }

    #[test]
    fn a_stale_database_read_never_moves_a_head_back() {
        let mut heads = Heads::default();
        heads.learn("r", 0, None);
        heads.apply(&[msg("r", 1, "alice"), msg("r", 2, "alice")]);
        assert_eq!(heads.learn("r", 1, None), 2);
        let row = heads.view("carol", stored("r", 1, 0));
        assert_eq!((row.last_seq, row.unread()), (2, 2));
        assert_eq!(heads.last_seq("r"), Some(2));
    }

    #[test]
    fn a_row_of_an_unknown_conversation_teaches_its_head() {
        let mut heads = Heads::default();
        assert_eq!(heads.last_seq("r"), None);
        let row = heads.view("alice", stored("r", 7, 7));
        assert_eq!(row.unread(), 0);
        assert_eq!(heads.last_seq("r"), Some(7));
        assert!(heads.unstored().is_empty(), "the database holds all of it");
    }

    #[test]
    fn unstored_changes_go_once_stored_but_not_those_moved_again() {
        let mut heads = Heads::default();
        heads.learn("r", 0, None);
        heads.apply(&[msg("r", 1, "alice")]);
        let first = heads.unstored();
        assert_eq!(first.reads.len(), 1);
        assert_eq!(first.last.len(), 1);
        heads.apply(&[msg("r", 2, "alice")]);
        heads.stored_reads(&first.reads);
        heads.stored_last(&first.last);
        let second = heads.unstored();
        assert_eq!(second.reads, vec![(("alice".into(), "r".into()), 2)]);
        assert_eq!(second.last.len(), 1);
        assert_eq!(second.last[0].1.seq, 2);
        heads.stored_reads(&second.reads);
        heads.stored_last(&second.last);
        assert!(heads.unstored().is_empty());
        assert_eq!(
            heads.read_position("alice", "r", 0),
            0,
            "stored now: the database answers"
        );
    }

    #[test]
    fn an_empty_conversation_keeps_its_stored_fields() {
        let mut heads = Heads::default();
        let mut row = stored("r", 0, 0);
        row.0.last_at = 99;
        let row = heads.view("alice", row);
        assert_eq!((row.last_seq, row.last_at, row.last_sender), (0, 99, None));
    }
}
