//! The shapes of what is stored: the records the rest of the server works with, the rows
//! SurrealDB reads and writes (`SurrealValue`), and how record ids are made from keys.
//! No I/O here.

use std::ops::Bound;
use surrealdb::types::{Array, RecordId, RecordIdKey, RecordIdKeyRange, SurrealValue, Value};

use app::domain::Username;

/// Longest preview kept on a conversation for the recent-conversations list.
pub const PREVIEW_CHARS: usize = 120;

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

impl MessageRecord {
    /// The message as the protocol carries it.
    pub fn to_wire(&self) -> app::protocol::Message {
        app::protocol::Message {
            conversation_id: app::protocol::ConversationId(self.conversation.clone()),
            seq: self.seq,
            sender: self.sender.clone(),
            body: self.body.clone(),
            client_msg_id: self.client_msg_id.clone(),
            sent_at_ms: self.sent_at,
        }
    }
}

/// One line of a user's recent-conversations list, with everything not stored yet applied
/// (only [`super::heads::Heads::view`] makes one from what the database returned).
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
pub(super) struct UserRow {
    pub id: RecordId,
    pub display_name: String,
    pub password_hash: String,
}

/// A message as stored (`id` is `msg:[conversation, seq]`).
#[derive(Debug, SurrealValue)]
pub(super) struct MessageRow {
    pub id: RecordId,
    pub sender: String,
    pub body: String,
    pub client_msg_id: String,
    pub sent_at: i64,
}

impl MessageRow {
    /// How one message is stored.
    pub fn of(m: &MessageRecord) -> Self {
        MessageRow {
            id: message_id(&m.conversation, m.seq),
            sender: m.sender.clone(),
            body: m.body.clone(),
            client_msg_id: m.client_msg_id.clone(),
            sent_at: m.sent_at,
        }
    }

    /// The record of a stored message; `None` for an id not of the form
    /// `msg:[key, seq]` (never written by this store).
    pub fn record(self) -> Option<MessageRecord> {
        let (conversation, seq) = message_position(&self.id)?;
        Some(MessageRecord {
            conversation,
            seq,
            sender: self.sender,
            body: self.body,
            client_msg_id: self.client_msg_id,
            sent_at: self.sent_at,
        })
    }
}

/// Where a sender's `client_msg_id` went: `client_msg:[sender, client_msg_id]`, written in
/// the same transaction as the message, so that a retry is recognised however old it is.
#[derive(Debug, SurrealValue)]
pub(super) struct ClientMsgRow {
    pub id: RecordId,
    pub conversation: String,
    pub seq: i64,
}

impl ClientMsgRow {
    pub fn of(m: &MessageRecord) -> Self {
        ClientMsgRow {
            id: client_msg_id(&m.sender, &m.client_msg_id),
            conversation: m.conversation.clone(),
            seq: m.seq as i64,
        }
    }
}

/// A message in schema 1's `message` table (see `migrations`).
#[derive(Debug, SurrealValue)]
pub(super) struct OldMessageRow {
    pub id: RecordId,
    pub conversation: RecordId,
    pub seq: i64,
    pub sender: RecordId,
    pub body: String,
    pub client_msg_id: String,
    pub sent_at: i64,
}

/// A conversation's `last_*` fields, as written.
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct LastMessageRow {
    pub id: RecordId,
    pub seq: i64,
    pub at: i64,
    pub sender: String,
    pub text: String,
}

/// A read position, as written.
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct ReadRow {
    pub id: RecordId,
    pub seq: i64,
}

#[derive(Debug, SurrealValue)]
pub(super) struct MemberConversationRow {
    pub last_read_seq: i64,
    pub c: ConversationFields,
}

#[derive(Debug, SurrealValue)]
pub(super) struct ConversationFields {
    pub id: RecordId,
    pub kind: String,
    pub name: Option<String>,
    pub peers: Vec<RecordId>,
    pub last_seq: i64,
    pub last_at: i64,
    pub last_sender: Option<String>,
    pub last_text: Option<String>,
}

#[derive(Debug, SurrealValue)]
pub(super) struct ConversationMeta {
    pub kind: String,
}

/// A conversation's `last_*` fields as read.
#[derive(Debug, SurrealValue)]
pub(super) struct LastFieldsRow {
    pub last_seq: i64,
    pub last_at: i64,
    pub last_sender: Option<String>,
    pub last_text: Option<String>,
}

#[derive(Debug, SurrealValue)]
pub(super) struct ConversationSeqRow {
    pub id: RecordId,
    pub last_seq: i64,
}

#[derive(Debug, SurrealValue)]
pub(super) struct RoomListRow {
    pub id: RecordId,
    pub name: Option<String>,
    pub member_count: Option<i64>,
}

/// A member of a conversation with their display name and read position.
#[derive(Debug, SurrealValue)]
pub(super) struct MemberReadRow {
    pub user: RecordId,
    pub display_name: String,
    pub last_read_seq: i64,
}

#[derive(Debug, SurrealValue)]
pub(super) struct NameRow {
    pub id: RecordId,
    pub display_name: String,
}

pub(super) fn user_id(username: &str) -> RecordId {
    RecordId::new("user", username)
}

/// `user_term:[term, username]`: `username` is found by queries that begin `term`.
#[derive(Debug, SurrealValue)]
pub(super) struct UserTermRow {
    pub id: RecordId,
    pub term: String,
    pub user: String,
}

impl UserTermRow {
    /// The rows `username` is found by (see [`super::user_terms`]).
    pub fn of(username: &str, display_name: &str) -> Vec<Self> {
        super::user_terms::terms(username, display_name)
            .into_iter()
            .map(|term| UserTermRow {
                id: RecordId::new("user_term", text_pair(&term, username)),
                term,
                user: username.to_owned(),
            })
            .collect()
    }
}

fn text_pair(a: &str, b: &str) -> RecordIdKey {
    RecordIdKey::Array(Array::from(vec![
        Value::String(a.to_owned()),
        Value::String(b.to_owned()),
    ]))
}

pub(super) fn session_id(sid: &str) -> RecordId {
    RecordId::new("session", sid)
}

pub(super) fn conversation_id(key: &str) -> RecordId {
    RecordId::new("conversation", key)
}

pub(super) fn member_id(conversation: &str, username: &str) -> RecordId {
    RecordId::new("member", format!("{conversation}|{username}"))
}

pub(super) fn message_id(conversation: &str, seq: u64) -> RecordId {
    RecordId::new("msg", pair_key(conversation, seq as i64))
}

pub(super) fn client_msg_id(sender: &str, client_msg_id: &str) -> RecordId {
    RecordId::new("client_msg", text_pair(sender, client_msg_id))
}

fn pair_key(conversation: &str, seq: i64) -> RecordIdKey {
    RecordIdKey::Array(Array::from(vec![
        Value::String(conversation.to_owned()),
        Value::from_t(seq),
    ]))
}

/// `msg:[conversation, from]..[conversation, to]` (`to` excluded): a page of history.
pub(super) fn message_range(conversation: &str, from: u64, to: u64) -> RecordId {
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    RecordId::new(
        "msg",
        RecordIdKeyRange {
            start: Bound::Included(pair_key(conversation, from as i64)),
            end: Bound::Excluded(pair_key(conversation, to)),
        },
    )
}

/// The string key of a record id (every id this store creates with a string has one).
pub(super) fn key_of(id: &RecordId) -> String {
    match &id.key {
        RecordIdKey::String(s) => s.clone(),
        RecordIdKey::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

pub(super) fn to_u64(n: i64) -> u64 {
    n.max(0) as u64
}

/// `(sender, client_msg_id)` of an id `client_msg:[sender, client_msg_id]`.
pub(super) fn client_msg_key(id: &RecordId) -> Option<(String, String)> {
    text_pair_of(id)
}

/// The two strings of an id `table:[a, b]`.
fn text_pair_of(id: &RecordId) -> Option<(String, String)> {
    let RecordIdKey::Array(parts) = &id.key else {
        return None;
    };
    match parts.iter().collect::<Vec<_>>().as_slice() {
        [Value::String(a), Value::String(b)] => Some((a.clone(), b.clone())),
        _ => None,
    }
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

/// The canonical key of the direct conversation between two users.
pub fn direct_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}/{b}")
    } else {
        format!("{b}/{a}")
    }
}

/// The other person in the direct conversation `key` (`a/b`); `None` for a room.
pub fn direct_peer<'a>(key: &'a str, user: &str) -> Option<&'a str> {
    let (a, b) = key.split_once('/')?;
    Some(if a == user { b } else { a })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_row_round_trips_to_the_same_record() {
        let m = MessageRecord {
            conversation: "alice/bob".into(),
            seq: 42,
            sender: "alice".into(),
            body: "hi".into(),
            client_msg_id: "c1".into(),
            sent_at: 7,
        };
        assert_eq!(MessageRow::of(&m).record(), Some(m));
    }

    #[test]
    fn a_direct_key_is_the_same_whoever_starts() {
        assert_eq!(direct_key("bob", "alice"), "alice/bob");
        assert_eq!(direct_key("alice", "bob"), "alice/bob");
    }
}
