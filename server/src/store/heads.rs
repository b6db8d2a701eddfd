//! A conversation's head: its last position and the messages up to it, its last message,
//! and the read positions that sending moved, as far as they are known — in memory, ahead
//! of the database.
//!
//! A batch's transaction writes its messages and changes only; what it moves besides (each
//! conversation's `last_*` fields, the senders' read positions: sending marks a
//! conversation read) is recorded here by [`Heads::apply`], the one way a committed batch
//! changes a head, and written to the database later ([`super::deferred`]). So:
//! - the writers number positions from here ([`Heads::head`]): one home for a
//!   conversation's last `seq`;
//! - every read of those fields goes through [`Heads::view`] or [`Heads::read_position`],
//!   which put what is known over what the database returned. A row read from the database
//!   is a [`StoredRow`], and only [`Heads::view`] turns it into a
//!   [`ConversationRow`]: a read cannot forget the overlay, the types do not allow it.
//!
//! Positions count every change (messages, edits, deletions, reactions); `n` counts
//! messages only, so that unread counts (`last_n - last_read_n`) count messages only.
//! Heads only move forward: an older position never replaces a newer one. Pure state, no
//! I/O; the store holds it behind a mutex.

use std::collections::HashMap;

use super::rows::{ConversationRow, Entry, MessageRecord, PREVIEW_CHARS};

/// A position in a conversation and the messages up to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mark {
    pub seq: u64,
    pub n: u64,
}

impl Mark {
    pub fn new(seq: u64, n: u64) -> Self {
        Mark { seq, n }
    }

    /// The later of two marks (by position).
    pub fn max(self, other: Mark) -> Mark {
        if other.seq > self.seq {
            other
        } else {
            self
        }
    }
}

/// The last message of a conversation, as its `last_*` fields hold it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastMessage {
    pub seq: u64,
    pub at: i64,
    pub sender: String,
    /// The first line, shortened; empty once deleted.
    pub text: String,
}

impl LastMessage {
    pub fn of(m: &MessageRecord) -> Self {
        LastMessage {
            seq: m.seq,
            at: m.sent_at,
            sender: m.sender.clone(),
            text: app::protocol::preview_of(&m.body, &m.attachments, PREVIEW_CHARS),
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
    /// The last committed position (or the database's, when newer).
    at: Mark,
    /// The newest committed message, when known.
    last: Option<LastMessage>,
    /// The last position whose `last_*` fields the database holds.
    stored_seq: u64,
}

/// What a committed batch moved: the read positions, for caches that follow them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// `(user, conversation, mark)`: sending read the conversation up to its message.
    pub reads: Vec<(String, String, Mark)>,
}

/// A conversation's head as the database should hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadFields {
    pub at: Mark,
    pub last: Option<LastMessage>,
}

/// What is not in the database yet: written by [`super::deferred`], then confirmed with
/// [`Heads::stored_reads`] and [`Heads::stored_last`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unstored {
    /// `((user, conversation), mark)`.
    pub reads: Vec<((String, String), Mark)>,
    /// Conversations whose head is newer than their stored fields.
    pub last: Vec<(String, HeadFields)>,
}

impl Unstored {
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.last.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct Heads {
    conversations: HashMap<String, Head>,
    /// Read positions moved by sending, not stored yet.
    reads: HashMap<(String, String), Mark>,
    /// Read positions sending moved on other nodes of the cluster (they store them).
    reads_elsewhere: HashMap<(String, String), Mark>,
}

impl Heads {
    /// `key`'s last position, if known (a read of it, a list load or a commit made it known).
    pub fn head(&self, key: &str) -> Option<Mark> {
        self.conversations.get(key).map(|h| h.at)
    }

    /// Every conversation whose head is known, with its last `seq`.
    pub fn known(&self) -> Vec<(String, u64)> {
        self.conversations
            .iter()
            .map(|(key, head)| (key.clone(), head.at.seq))
            .collect()
    }

    /// `key`'s newest message, if known.
    pub fn last_message(&self, key: &str) -> Option<&LastMessage> {
        self.conversations.get(key)?.last.as_ref()
    }

    /// `key`'s last `seq`, if known.
    pub fn last_seq(&self, key: &str) -> Option<u64> {
        self.head(key).map(|m| m.seq)
    }

    /// What the database holds for `key`: its last position and, when it has messages,
    /// its last one. Older than what is known, it changes nothing. Returns the head.
    pub fn learn(&mut self, key: &str, stored: Mark, last: Option<LastMessage>) -> Mark {
        let head = self.conversations.entry(key.to_owned()).or_default();
        head.stored_seq = head.stored_seq.max(stored.seq);
        head.at = head.at.max(stored);
        if let Some(m) = last {
            if head.last.as_ref().is_none_or(|held| held.seq < m.seq) {
                head.last = Some(m);
            }
        }
        head.at
    }

    /// Another node of the cluster committed up to `at` in `key` (`last`: its newest
    /// message then): the head moves as for a commit here, but storing its fields is that
    /// node's to do (a node's start repairs them if it died first).
    pub fn learn_elsewhere(&mut self, key: &str, at: Mark, last: Option<LastMessage>) {
        let head = self.conversations.entry(key.to_owned()).or_default();
        head.at = head.at.max(at);
        head.stored_seq = head.stored_seq.max(at.seq);
        if let Some(m) = last {
            if head.last.as_ref().is_none_or(|held| held.seq <= m.seq) {
                head.last = Some(m);
            }
        }
    }

    /// Sending on another node read `key` up to `at` for `user` (that node stores it).
    pub fn read_elsewhere(&mut self, user: &str, key: &str, at: Mark) {
        let held = self
            .reads_elsewhere
            .entry((user.to_owned(), key.to_owned()))
            .or_default();
        *held = held.max(at);
    }

    /// A batch is committed: each conversation's head moves to its last entry in the
    /// batch, its last message to its newest message (or to the new state of the last
    /// message, when a change edited or deleted it: `changed` holds the states the
    /// batch's changes left), and each sender has read up to their newest message.
    pub fn apply(&mut self, batch: &[Entry], changed: &[MessageRecord]) -> Applied {
        let mut reads: HashMap<(&str, &str), Mark> = HashMap::new();
        for e in batch {
            let (conversation, mark) = match e {
                Entry::Message(m) => (&m.conversation, Mark::new(m.seq, m.n)),
                Entry::Change(c) => (&c.conversation, Mark::new(c.seq, c.n)),
            };
            let head = self.conversations.entry(conversation.clone()).or_default();
            head.at = head.at.max(mark);
            if let Entry::Message(m) = e {
                if head.last.as_ref().is_none_or(|held| held.seq < m.seq) {
                    head.last = Some(LastMessage::of(m));
                }
                let read = reads.entry((&m.sender, &m.conversation)).or_default();
                *read = read.max(mark);
            }
        }
        for m in changed {
            if let Some(last) = self
                .conversations
                .get_mut(&m.conversation)
                .and_then(|h| h.last.as_mut())
                .filter(|l| l.seq == m.seq)
            {
                *last = LastMessage::of(m);
            }
        }
        let mut applied = Applied::default();
        for ((user, conv), mark) in reads {
            let held = self
                .reads
                .entry((user.to_owned(), conv.to_owned()))
                .or_default();
            *held = held.max(mark);
            applied.reads.push((user.to_owned(), conv.to_owned(), mark));
        }
        applied
    }

    /// A row read from the database (or from a cache of such reads), with what is only in
    /// memory put over it: a newer head and last message, a read position moved by
    /// sending. The database's fields teach `key`'s head when it is not known yet.
    pub fn view(&mut self, user: &str, StoredRow(mut row): StoredRow) -> ConversationRow {
        let last = LastMessage::from_fields(
            row.last_seq,
            row.last_at,
            row.last_sender.clone(),
            row.last_text.clone(),
        );
        self.learn(&row.key, Mark::new(row.last_seq, row.last_n), last);
        if let Some(head) = self.conversations.get(&row.key) {
            if head.at.seq > row.last_seq {
                row.last_seq = head.at.seq;
                row.last_n = head.at.n;
            }
            if let Some(m) = &head.last {
                row.last_at = m.at;
                row.last_sender = Some(m.sender.clone());
                row.last_text = Some(m.text.clone());
            }
        }
        let read = self.read_position(
            user,
            &row.key,
            Mark::new(row.last_read_seq, row.last_read_n),
        );
        row.last_read_seq = read.seq;
        row.last_read_n = read.n;
        row
    }

    /// `user`'s read position in `key`: the stored one, or a newer one sending moved.
    pub fn read_position(&self, user: &str, key: &str, stored: Mark) -> Mark {
        if self.reads.is_empty() && self.reads_elsewhere.is_empty() {
            return stored;
        }
        let pair = (user.to_owned(), key.to_owned());
        [&self.reads, &self.reads_elsewhere]
            .into_iter()
            .filter_map(|reads| reads.get(&pair))
            .fold(stored, |read, &mark| read.max(mark))
    }

    /// Everything the database does not hold yet.
    pub fn unstored(&self) -> Unstored {
        Unstored {
            reads: self.reads.iter().map(|(k, &v)| (k.clone(), v)).collect(),
            last: self
                .conversations
                .iter()
                .filter(|(_, head)| head.at.seq > head.stored_seq)
                .map(|(key, head)| {
                    (
                        key.clone(),
                        HeadFields {
                            at: head.at,
                            last: head.last.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// These read positions are stored; those moved again since stay unstored.
    pub fn stored_reads(&mut self, stored: &[((String, String), Mark)]) {
        for (key, mark) in stored {
            if self.reads.get(key).is_some_and(|now| now.seq <= mark.seq) {
                self.reads.remove(key);
            }
        }
    }

    /// These conversations' `last_*` fields are stored up to their positions.
    pub fn stored_last(&mut self, stored: &[(String, HeadFields)]) {
        for (key, fields) in stored {
            if let Some(head) = self.conversations.get_mut(key) {
                head.stored_seq = head.stored_seq.max(fields.at.seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rows::{ChangeKind, ChangeRecord, Kind};

    fn msg(conv: &str, seq: u64, sender: &str) -> MessageRecord {
        MessageRecord {
            conversation: conv.into(),
            seq,
            n: seq,
            sender: sender.into(),
            body: format!("m{seq}"),
            client_msg_id: format!("c{seq}"),
            sent_at: seq as i64 * 10,
            ..MessageRecord::default()
        }
    }

    fn msgs(list: &[MessageRecord]) -> Vec<Entry> {
        list.iter().cloned().map(Entry::Message).collect()
    }

    fn stored(key: &str, last_seq: u64, read: u64) -> StoredRow {
        StoredRow(ConversationRow {
            key: key.into(),
            kind: Kind::Room,
            name: Some("Room".into()),
            peer: None,
            last_seq,
            last_n: last_seq,
            last_read_seq: read,
            last_read_n: read,
            notify: app::protocol::NotifyLevel::All,
            last_at: 1,
            last_sender: (last_seq > 0).then(|| "bob".into()),
            last_text: (last_seq > 0).then(|| format!("m{last_seq}")),
            topic: None,
            private: false,
            role: None,
        })
    }

    #[test]
    fn a_committed_batch_moves_last_message_and_the_senders_read_positions() {
        let mut heads = Heads::default();
        assert_eq!(heads.learn("r", Mark::new(2, 2), None), Mark::new(2, 2));
        let applied = heads.apply(
            &msgs(&[
                msg("r", 3, "alice"),
                msg("r", 4, "bob"),
                msg("r", 5, "alice"),
            ]),
            &[],
        );
        assert_eq!(heads.last_seq("r"), Some(5));
        let mut reads = applied.reads;
        reads.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            reads,
            vec![
                ("alice".into(), "r".into(), Mark::new(5, 5)),
                ("bob".into(), "r".into(), Mark::new(4, 4))
            ]
        );
        let row = heads.view("bob", stored("r", 2, 1));
        assert_eq!((row.last_seq, row.last_read_seq, row.unread()), (5, 4, 1));
        assert_eq!(row.last_text.as_deref(), Some("m5"));
        assert_eq!(row.last_at, 50);
    }

    #[test]
    fn changes_move_the_position_but_not_the_unread_count() {
        let mut heads = Heads::default();
        heads.learn("r", Mark::default(), None);
        heads.apply(&msgs(&[msg("r", 1, "alice"), msg("r", 2, "alice")]), &[]);
        let mut edited = msg("r", 2, "alice");
        edited.body = "fixed".into();
        let change = |seq, kind| {
            Entry::Change(ChangeRecord {
                conversation: "r".into(),
                seq,
                n: 2,
                actor: "alice".into(),
                target: 2,
                kind,
                at: 99,
            })
        };
        heads.apply(
            &[
                change(3, ChangeKind::Edit),
                change(4, ChangeKind::React("👍".into())),
            ],
            &[edited],
        );
        assert_eq!(heads.head("r"), Some(Mark::new(4, 2)));
        let row = heads.view("bob", stored("r", 0, 0));
        assert_eq!((row.last_seq, row.unread()), (4, 2));
        assert_eq!(row.last_text.as_deref(), Some("fixed"), "the edit shows");
        assert_eq!(row.last_at, 20, "a change is not new activity");
        let unstored = heads.unstored();
        assert_eq!(unstored.last[0].1.at, Mark::new(4, 2));
    }

    #[test]
    fn a_stale_database_read_never_moves_a_head_back() {
        let mut heads = Heads::default();
        heads.learn("r", Mark::default(), None);
        heads.apply(&msgs(&[msg("r", 1, "alice"), msg("r", 2, "alice")]), &[]);
        assert_eq!(heads.learn("r", Mark::new(1, 1), None).seq, 2);
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
        heads.learn("r", Mark::default(), None);
        heads.apply(&msgs(&[msg("r", 1, "alice")]), &[]);
        let first = heads.unstored();
        assert_eq!(first.reads.len(), 1);
        assert_eq!(first.last.len(), 1);
        heads.apply(&msgs(&[msg("r", 2, "alice")]), &[]);
        heads.stored_reads(&first.reads);
        heads.stored_last(&first.last);
        let second = heads.unstored();
        assert_eq!(
            second.reads,
            vec![(("alice".into(), "r".into()), Mark::new(2, 2))]
        );
        assert_eq!(second.last.len(), 1);
        assert_eq!(second.last[0].1.at.seq, 2);
        heads.stored_reads(&second.reads);
        heads.stored_last(&second.last);
        assert!(heads.unstored().is_empty());
        assert_eq!(
            heads.read_position("alice", "r", Mark::default()),
            Mark::default(),
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

    #[test]
    fn a_head_learned_from_another_node_moves_views_but_is_not_stored_here() {
        let mut h = Heads::default();
        let last = LastMessage::of(&msg("r", 7, "bob"));
        h.learn_elsewhere("r", Mark::new(7, 7), Some(last.clone()));
        h.read_elsewhere("bob", "r", Mark::new(7, 7));
        assert_eq!(h.head("r"), Some(Mark::new(7, 7)));
        assert!(h.unstored().is_empty(), "the node that committed stores it");
        let row = h.view("bob", stored("r", 5, 3));
        assert_eq!((row.last_seq, row.last_read_seq), (7, 7));
        assert_eq!(row.last_text.as_deref(), Some(last.text.as_str()));
        assert_eq!(h.view("alice", stored("r", 5, 3)).last_read_seq, 3);
        // An older word from elsewhere moves nothing back.
        h.learn_elsewhere("r", Mark::new(6, 6), None);
        assert_eq!(h.head("r"), Some(Mark::new(7, 7)));
    }
}
