//! The shapes of what is stored: the records the rest of the server works with, the rows
//! SurrealDB reads and writes (`SurrealValue`), and how record ids are made from keys.
//! No I/O here.

use std::ops::Bound;
use surrealdb::types::{Array, RecordId, RecordIdKey, RecordIdKeyRange, SurrealValue, Value};

use app::domain::Username;
use app::protocol::{Attachment, NotifyLevel, Quote, Reaction, Role, UserInfo};

/// Longest preview kept on a conversation for the recent-conversations list.
pub const PREVIEW_CHARS: usize = 120;
/// Longest quote of a message in a reply to it.
pub const QUOTE_CHARS: usize = 100;

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
    /// A server administrator (the first account is one).
    pub admin: bool,
    /// Disabled by an administrator: it cannot sign in.
    pub disabled: bool,
    /// The version of their picture (`avatar:<username>`), and their status text.
    pub avatar: Option<String>,
    pub status: Option<String>,
}

impl UserRecord {
    /// The user as others see them.
    pub fn info(&self) -> UserInfo {
        UserInfo {
            username: self.username.to_string(),
            display_name: self.display_name.clone(),
            avatar: self.avatar.clone(),
            status: self.status.clone(),
        }
    }
}

/// One signed-in device of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    /// When it signed in, and until when it lasts (seconds).
    pub created_at: i64,
    pub expires_at: i64,
    /// When it was last seen (a socket opened), to within a few minutes.
    pub seen_at: i64,
    /// The browser's `User-Agent` and the address it signed in from, as far as known.
    pub agent: Option<String>,
    pub address: Option<String>,
}

/// A stored message, as it is now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageRecord {
    pub conversation: String,
    pub seq: u64,
    /// Messages in the conversation up to this one, itself included (changes do not
    /// count): unread counts are differences of these.
    pub n: u64,
    pub sender: String,
    /// Empty once deleted.
    pub body: String,
    pub client_msg_id: String,
    pub sent_at: i64,
    /// The `seq` of the message this one answers.
    pub reply_to: Option<u64>,
    pub edited_at: Option<i64>,
    pub deleted: bool,
    /// Who deleted it, when not its sender (a moderator).
    pub deleted_by: Option<String>,
    pub reactions: Vec<Reaction>,
    /// The members it mentions (see [`app::mention`]), the sender excepted.
    pub mentions: Vec<String>,
    /// Its files (none once deleted).
    pub attachments: Vec<Attachment>,
}

impl MessageRecord {
    /// The message as the protocol carries it, with the quote of what it answers (when it
    /// answers one that is known).
    pub fn to_wire(&self, quote: Option<Quote>) -> app::protocol::Message {
        app::protocol::Message {
            conversation_id: app::protocol::ConversationId(self.conversation.clone()),
            seq: self.seq,
            sender: self.sender.clone(),
            body: self.body.clone(),
            client_msg_id: self.client_msg_id.clone(),
            sent_at_ms: self.sent_at,
            reply_to: quote,
            edited_at_ms: self.edited_at,
            deleted: self.deleted,
            deleted_by: self.deleted_by.clone(),
            reactions: self.reactions.clone(),
            mentions: self.mentions.clone(),
            attachments: self.attachments.clone(),
        }
    }

    /// How this message is quoted by a reply.
    pub fn quote(&self) -> Quote {
        Quote {
            seq: self.seq,
            sender: self.sender.clone(),
            text: app::domain::preview(&self.body, QUOTE_CHARS),
            deleted: self.deleted,
        }
    }
}

/// What a [`ChangeRecord`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Edit,
    Delete,
    React(String),
    Unreact(String),
}

/// A change to a message, stored at its own position (`change:[conversation, seq]`) so
/// that a client resuming after it learns of it in order. It holds no text: an edit is
/// replayed with the message's text as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub conversation: String,
    pub seq: u64,
    /// As for messages: the messages up to this position.
    pub n: u64,
    pub actor: String,
    pub target: u64,
    pub kind: ChangeKind,
    pub at: i64,
}

impl ChangeRecord {
    /// The change as the protocol carries it, given the message it changed as it is now.
    pub fn to_wire(&self, target: &MessageRecord) -> app::protocol::Change {
        use app::protocol::What;
        app::protocol::Change {
            conversation_id: app::protocol::ConversationId(self.conversation.clone()),
            seq: self.seq,
            actor: self.actor.clone(),
            at_ms: self.at,
            target: self.target,
            what: match &self.kind {
                ChangeKind::Edit => What::Edited {
                    body: target.body.clone(),
                    mentions: target.mentions.clone(),
                },
                ChangeKind::Delete => What::Deleted,
                ChangeKind::React(emoji) => What::Reacted {
                    emoji: emoji.clone(),
                },
                ChangeKind::Unreact(emoji) => What::Unreacted {
                    emoji: emoji.clone(),
                },
            },
        }
    }
}

/// Whatever is stored at one position of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Message(MessageRecord),
    Change(ChangeRecord),
}

impl Entry {
    pub fn seq(&self) -> u64 {
        match self {
            Entry::Message(m) => m.seq,
            Entry::Change(c) => c.seq,
        }
    }

    pub fn n(&self) -> u64 {
        match self {
            Entry::Message(m) => m.n,
            Entry::Change(c) => c.n,
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
    /// For a direct conversation: the other user as they show.
    pub peer: Option<UserInfo>,
    pub last_seq: u64,
    /// Messages in the conversation (see [`MessageRecord::n`]).
    pub last_n: u64,
    pub last_read_seq: u64,
    /// Messages up to the read position.
    pub last_read_n: u64,
    /// The member's notification level.
    pub notify: NotifyLevel,
    pub last_at: i64,
    pub last_sender: Option<String>,
    pub last_text: Option<String>,
    /// Rooms only: the topic (when set), whether it is private, and the member's role.
    pub topic: Option<String>,
    pub private: bool,
    pub role: Option<Role>,
}

impl ConversationRow {
    /// Messages after the read position (changes to messages do not count).
    pub fn unread(&self) -> u64 {
        self.last_n.saturating_sub(self.last_read_n)
    }

    /// The member's read state as the protocol carries it, `mentions` of the unread
    /// messages mentioning them.
    pub fn read_state(&self, mentions: u64) -> app::protocol::ServerMsg {
        app::protocol::ServerMsg::ReadState {
            conversation_id: app::protocol::ConversationId(self.key.clone()),
            last_read_seq: self.last_read_seq,
            last_seq: self.last_seq,
            unread: self.unread(),
            mentions,
        }
    }
}

/// A room as listed to someone who may join it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRow {
    pub key: String,
    pub name: String,
    pub member_count: u64,
    pub private: bool,
}

#[derive(Debug, SurrealValue)]
pub(super) struct UserRow {
    pub id: RecordId,
    pub display_name: String,
    pub password_hash: String,
    pub admin: Option<bool>,
    pub disabled: Option<bool>,
    pub avatar: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, SurrealValue)]
pub(super) struct SessionRow {
    pub id: RecordId,
    pub created_at: i64,
    pub expires_at: i64,
    pub seen_at: Option<i64>,
    pub agent: Option<String>,
    pub address: Option<String>,
}

impl SessionRow {
    pub fn into_record(self) -> SessionRecord {
        SessionRecord {
            id: key_of(&self.id),
            created_at: self.created_at,
            expires_at: self.expires_at,
            seen_at: self.seen_at.unwrap_or(self.created_at),
            agent: self.agent,
            address: self.address,
        }
    }
}

/// A row of which only the id is read.
#[derive(Debug, SurrealValue)]
pub(super) struct IdRow {
    pub id: RecordId,
}

/// A message as stored (`id` is `msg:[conversation, seq]`). Rows written before changes
/// existed have no `n` (it equals `seq` there) and none of the optional fields.
#[derive(Debug, SurrealValue)]
pub(super) struct MessageRow {
    pub id: RecordId,
    pub sender: String,
    pub body: String,
    pub client_msg_id: String,
    pub sent_at: i64,
    pub n: Option<i64>,
    pub reply_to: Option<i64>,
    pub edited_at: Option<i64>,
    pub deleted: Option<bool>,
    pub deleted_by: Option<String>,
    pub reactions: Option<Vec<ReactionRow>>,
    pub mentions: Option<Vec<String>>,
    pub attachments: Option<Vec<AttachmentRow>>,
}

/// A file of a message, as stored in the message's row (what the upload was, so that a
/// page of history needs no other read).
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct AttachmentRow {
    pub id: String,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
}

impl AttachmentRow {
    fn of(a: &Attachment) -> Self {
        AttachmentRow {
            id: a.id.clone(),
            name: a.name.clone(),
            size: a.size as i64,
            content_type: a.content_type.clone(),
            width: a.width.map(i64::from),
            height: a.height.map(i64::from),
        }
    }

    fn attachment(self) -> Attachment {
        let dim = |d: Option<i64>| d.and_then(|d| u32::try_from(d).ok());
        Attachment {
            id: self.id,
            name: self.name,
            size: to_u64(self.size),
            content_type: self.content_type,
            width: dim(self.width),
            height: dim(self.height),
        }
    }
}

fn attachment_rows(attachments: &[Attachment]) -> Option<Vec<AttachmentRow>> {
    (!attachments.is_empty()).then(|| attachments.iter().map(AttachmentRow::of).collect())
}

/// One emoji on a message and who used it.
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct ReactionRow {
    pub emoji: String,
    pub users: Vec<String>,
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
            n: Some(m.n as i64),
            reply_to: m.reply_to.map(|s| s as i64),
            edited_at: m.edited_at,
            deleted: m.deleted.then_some(true),
            deleted_by: m.deleted_by.clone(),
            reactions: (!m.reactions.is_empty()).then(|| {
                m.reactions
                    .iter()
                    .map(|r| ReactionRow {
                        emoji: r.emoji.clone(),
                        users: r.users.clone(),
                    })
                    .collect()
            }),
            mentions: (!m.mentions.is_empty()).then(|| m.mentions.clone()),
            attachments: attachment_rows(&m.attachments),
        }
    }

    /// The record of a stored message; `None` for an id not of the form
    /// `msg:[key, seq]` (never written by this store).
    pub fn record(self) -> Option<MessageRecord> {
        let (conversation, seq) = position_of(&self.id)?;
        Some(MessageRecord {
            conversation,
            seq,
            n: self.n.map_or(seq, to_u64),
            sender: self.sender,
            body: self.body,
            client_msg_id: self.client_msg_id,
            sent_at: self.sent_at,
            reply_to: self.reply_to.map(to_u64),
            edited_at: self.edited_at,
            deleted: self.deleted.unwrap_or(false),
            deleted_by: self.deleted_by,
            reactions: self
                .reactions
                .unwrap_or_default()
                .into_iter()
                .map(|r| Reaction {
                    emoji: r.emoji,
                    users: r.users,
                })
                .collect(),
            mentions: self.mentions.unwrap_or_default(),
            attachments: self
                .attachments
                .unwrap_or_default()
                .into_iter()
                .map(AttachmentRow::attachment)
                .collect(),
        })
    }
}

/// A change as stored (`id` is `change:[conversation, seq]`).
#[derive(Debug, SurrealValue)]
pub(super) struct ChangeRow {
    pub id: RecordId,
    pub n: i64,
    pub actor: String,
    pub target: i64,
    /// `edit`, `delete`, `react` or `unreact`.
    pub kind: String,
    pub emoji: Option<String>,
    pub at: i64,
}

impl ChangeRow {
    pub fn of(c: &ChangeRecord) -> Self {
        let (kind, emoji) = match &c.kind {
            ChangeKind::Edit => ("edit", None),
            ChangeKind::Delete => ("delete", None),
            ChangeKind::React(e) => ("react", Some(e.clone())),
            ChangeKind::Unreact(e) => ("unreact", Some(e.clone())),
        };
        ChangeRow {
            id: change_id(&c.conversation, c.seq),
            n: c.n as i64,
            actor: c.actor.clone(),
            target: c.target as i64,
            kind: kind.to_owned(),
            emoji,
            at: c.at,
        }
    }

    /// `None` for a row this store did not write.
    pub fn record(self) -> Option<ChangeRecord> {
        let (conversation, seq) = position_of(&self.id)?;
        let kind = match (self.kind.as_str(), self.emoji) {
            ("edit", _) => ChangeKind::Edit,
            ("delete", _) => ChangeKind::Delete,
            ("react", Some(e)) => ChangeKind::React(e),
            ("unreact", Some(e)) => ChangeKind::Unreact(e),
            _ => return None,
        };
        Some(ChangeRecord {
            conversation,
            seq,
            n: to_u64(self.n),
            actor: self.actor,
            target: to_u64(self.target),
            kind,
            at: self.at,
        })
    }
}

/// A message's state after changes, as written over its row.
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct MessageStateRow {
    pub id: RecordId,
    pub body: String,
    pub edited_at: Option<i64>,
    pub deleted: bool,
    pub deleted_by: Option<String>,
    pub reactions: Vec<ReactionRow>,
    pub mentions: Vec<String>,
    pub attachments: Vec<AttachmentRow>,
}

impl MessageStateRow {
    pub fn of(m: &MessageRecord) -> Self {
        let full = MessageRow::of(m);
        MessageStateRow {
            id: full.id,
            body: full.body,
            edited_at: full.edited_at,
            deleted: m.deleted,
            deleted_by: m.deleted_by.clone(),
            reactions: full.reactions.unwrap_or_default(),
            mentions: m.mentions.clone(),
            attachments: full.attachments.unwrap_or_default(),
        }
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

/// A conversation's `last_*` fields, as written: its last position and the messages up to
/// it, and its last message when known.
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct LastMessageRow {
    pub id: RecordId,
    pub seq: i64,
    pub n: i64,
    pub message: Option<LastTextRow>,
}

#[derive(Debug, Clone, SurrealValue)]
pub(super) struct LastTextRow {
    pub at: i64,
    pub sender: String,
    pub text: String,
}

/// A read position, as written.
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct ReadRow {
    pub id: RecordId,
    pub seq: i64,
    pub n: i64,
}

#[derive(Debug, SurrealValue)]
pub(super) struct MemberConversationRow {
    pub last_read_seq: i64,
    /// Absent before changes existed (equal to `last_read_seq` then).
    pub last_read_n: Option<i64>,
    pub notify: Option<String>,
    pub role: Option<String>,
    pub c: ConversationFields,
}

#[derive(Debug, SurrealValue)]
pub(super) struct ConversationFields {
    pub id: RecordId,
    pub kind: String,
    pub name: Option<String>,
    pub peers: Vec<RecordId>,
    pub last_seq: i64,
    pub last_n: Option<i64>,
    pub last_at: i64,
    pub last_sender: Option<String>,
    pub last_text: Option<String>,
    pub topic: Option<String>,
    pub private: Option<bool>,
    pub created_by: Option<String>,
}

/// A room member's role as stored: `role` (`admin`, or absent) on the member record, and
/// the owner is whoever created the room.
pub(super) fn role_of(stored: Option<&str>, user: &str, created_by: Option<&str>) -> Role {
    if created_by == Some(user) {
        Role::Owner
    } else {
        stored.and_then(Role::parse).unwrap_or_default()
    }
}

#[derive(Debug, SurrealValue)]
pub(super) struct ConversationMeta {
    pub kind: String,
    pub name: Option<String>,
    pub private: Option<bool>,
    pub created_by: Option<String>,
}

/// A conversation's `last_*` fields as read.
#[derive(Debug, SurrealValue)]
pub(super) struct LastFieldsRow {
    pub last_seq: i64,
    pub last_n: Option<i64>,
    pub last_at: i64,
    pub last_sender: Option<String>,
    pub last_text: Option<String>,
}

#[derive(Debug, SurrealValue)]
pub(super) struct ConversationSeqRow {
    pub id: RecordId,
    pub last_seq: i64,
    pub last_n: Option<i64>,
}

#[derive(Debug, SurrealValue)]
pub(super) struct RoomListRow {
    pub id: RecordId,
    pub name: Option<String>,
    pub member_count: Option<i64>,
    pub private: Option<bool>,
}

impl From<RoomListRow> for RoomRow {
    fn from(r: RoomListRow) -> Self {
        RoomRow {
            key: key_of(&r.id),
            name: r.name.unwrap_or_default(),
            member_count: r.member_count.map_or(0, to_u64),
            private: r.private.unwrap_or(false),
        }
    }
}

/// A member of a conversation with their display name and read position.
#[derive(Debug, SurrealValue)]
pub(super) struct MemberReadRow {
    pub user: RecordId,
    pub display_name: String,
    pub avatar: Option<String>,
    pub status: Option<String>,
    pub last_read_seq: i64,
    pub role: Option<String>,
}

#[derive(Debug, SurrealValue)]
pub(super) struct NameRow {
    pub id: RecordId,
    pub display_name: String,
}

/// How a user shows: name, picture version, status.
#[derive(Debug, SurrealValue)]
pub(super) struct ProfileRow {
    pub id: RecordId,
    pub display_name: String,
    pub avatar: Option<String>,
    pub status: Option<String>,
}

impl ProfileRow {
    pub fn info(self) -> UserInfo {
        UserInfo {
            username: key_of(&self.id),
            display_name: self.display_name,
            avatar: self.avatar,
            status: self.status,
        }
    }
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

/// A record a name is found by (`user_term`, `room_term`; see
/// [`SurrealChatStore::find_by_terms`](super::SurrealChatStore::find_by_terms)).
pub(super) trait TermMatch: SurrealValue {
    /// The table, and the field that names the owner (this store's own names).
    const TABLE: &'static str;
    const OWNER: &'static str;
    fn term(&self) -> &str;
    fn owner(&self) -> &str;
}

impl TermMatch for UserTermRow {
    const TABLE: &'static str = "user_term";
    const OWNER: &'static str = "user";
    fn term(&self) -> &str {
        &self.term
    }
    fn owner(&self) -> &str {
        &self.user
    }
}

impl TermMatch for RoomTermRow {
    const TABLE: &'static str = "room_term";
    const OWNER: &'static str = "room";
    fn term(&self) -> &str {
        &self.term
    }
    fn owner(&self) -> &str {
        &self.room
    }
}

/// `room_term:[term, room key]` (see the schema).
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct RoomTermRow {
    pub id: RecordId,
    pub term: String,
    pub room: String,
}

impl RoomTermRow {
    /// The rows the room `key` named `name` is found by: the word starts of its name, as
    /// for people (see [`super::user_terms`]).
    pub fn of(key: &str, name: &str) -> Vec<Self> {
        super::user_terms::terms(name, "")
            .into_iter()
            .map(|term| RoomTermRow {
                id: RecordId::new("room_term", text_pair(&term, key)),
                term,
                room: key.to_owned(),
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

/// `mentioned:[user, conversation]` (see the schema).
pub(super) fn mentioned_id(user: &str, conversation: &str) -> RecordId {
    RecordId::new("mentioned", text_pair(user, conversation))
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

pub(super) fn change_id(conversation: &str, seq: u64) -> RecordId {
    RecordId::new("change", pair_key(conversation, seq as i64))
}

pub(super) fn client_msg_id(sender: &str, client_msg_id: &str) -> RecordId {
    RecordId::new("client_msg", text_pair(sender, client_msg_id))
}

/// `mention:[user, conversation, seq]`: the message at `seq` mentions `user`. The ids are
/// the index: a user's unread mentions in a conversation are one range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MentionKey {
    pub user: String,
    pub conversation: String,
    pub seq: u64,
}

impl MentionKey {
    pub fn id(&self) -> RecordId {
        RecordId::new(
            "mention",
            mention_key(&self.user, &self.conversation, self.seq as i64),
        )
    }
}

impl MentionKey {
    /// The key of an id `mention:[user, conversation, seq]`.
    pub fn of(id: &RecordId) -> Option<Self> {
        let RecordIdKey::Array(parts) = &id.key else {
            return None;
        };
        match parts.iter().collect::<Vec<_>>().as_slice() {
            [Value::String(user), Value::String(conversation), Value::Number(seq)] => {
                Some(MentionKey {
                    user: user.clone(),
                    conversation: conversation.clone(),
                    seq: to_u64(seq.to_int()?),
                })
            }
            _ => None,
        }
    }
}

fn mention_key(user: &str, conversation: &str, seq: i64) -> RecordIdKey {
    RecordIdKey::Array(Array::from(vec![
        Value::String(user.to_owned()),
        Value::String(conversation.to_owned()),
        Value::from_t(seq),
    ]))
}

/// The mentions of `user` in `conversation` after the position `after`.
pub(super) fn mentions_after(user: &str, conversation: &str, after: u64) -> RecordId {
    RecordId::new(
        "mention",
        RecordIdKeyRange {
            start: Bound::Excluded(mention_key(user, conversation, after as i64)),
            end: Bound::Included(mention_key(user, conversation, i64::MAX)),
        },
    )
}

pub(super) fn pair_key(conversation: &str, seq: i64) -> RecordIdKey {
    RecordIdKey::Array(Array::from(vec![
        Value::String(conversation.to_owned()),
        Value::from_t(seq),
    ]))
}

/// `<table>:[conversation, from]..[conversation, to]` (`to` excluded) of `msg` or
/// `change`: the positions of a conversation from `from` to before `to`.
pub(super) fn position_range(table: &str, conversation: &str, from: u64, to: u64) -> RecordId {
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    RecordId::new(
        table,
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

/// `(conversation, seq)` of an id `msg:[conversation, seq]` or `change:[conversation, seq]`.
pub(super) fn position_of(id: &RecordId) -> Option<(String, u64)> {
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
        let mut m = MessageRecord {
            conversation: "alice/bob".into(),
            seq: 42,
            n: 40,
            sender: "alice".into(),
            body: "hi".into(),
            client_msg_id: "c1".into(),
            sent_at: 7,
            ..MessageRecord::default()
        };
        assert_eq!(MessageRow::of(&m).record(), Some(m.clone()));
        m.reply_to = Some(3);
        m.edited_at = Some(9);
        m.reactions = vec![Reaction {
            emoji: "👍".into(),
            users: vec!["bob".into()],
        }];
        assert_eq!(MessageRow::of(&m).record(), Some(m));
    }

    #[test]
    fn a_change_row_round_trips_to_the_same_record() {
        for kind in [
            ChangeKind::Edit,
            ChangeKind::Delete,
            ChangeKind::React("👍".into()),
            ChangeKind::Unreact("👍".into()),
        ] {
            let c = ChangeRecord {
                conversation: "r1".into(),
                seq: 9,
                n: 4,
                actor: "bob".into(),
                target: 2,
                kind,
                at: 5,
            };
            assert_eq!(ChangeRow::of(&c).record(), Some(c));
        }
    }

    #[test]
    fn a_direct_key_is_the_same_whoever_starts() {
        assert_eq!(direct_key("bob", "alice"), "alice/bob");
        assert_eq!(direct_key("alice", "bob"), "alice/bob");
    }
}
