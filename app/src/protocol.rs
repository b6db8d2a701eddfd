//! The WebSocket wire protocol: one JSON object per text frame, tagged by `"type"`.
//!
//! Both ends compile this module, so the server and the browser cannot disagree on a frame's
//! shape. Every variant is documented in `PROTOCOL.md`; a change to a variant's meaning bumps
//! [`PROTOCOL_VERSION`], which the server announces in [`ServerMsg::Hello`].

use serde::{Deserialize, Serialize};

use crate::domain::{
    ClientMsgId, DisplayName, Emoji, FileId, MessageBody, RoomName, RoomTopic, StatusText, Username,
};
pub use crate::roles::Role;

/// Version of this protocol, announced by the server on every new socket.
pub const PROTOCOL_VERSION: u32 = 11;

/// How often a client says that its user is still typing (at most), in milliseconds.
pub const TYPING_EVERY_MS: i64 = 3_000;
/// How long a client shows that someone is typing after their last `typing`, unless a
/// message from them comes first.
pub const TYPING_SHOWN_MS: i64 = 6_000;

/// Largest text frame, in bytes, the server accepts; bigger frames are refused with
/// [`ErrorCode::FrameTooLarge`]. A maximal message body (4,000 characters of up to 4 bytes)
/// fits with room to spare.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// Largest page of history the server returns; bigger `limit`s are clamped.
pub const MAX_HISTORY_PAGE: u32 = 100;
/// Page size when a `history` request names no `limit`.
pub const DEFAULT_HISTORY_PAGE: u32 = 50;
/// Rooms or members per page of `list_rooms` / `list_members`, unless `limit` asks for fewer.
pub const MAX_LIST_PAGE: u32 = 200;
/// Conversations in one `conversations` answer at most (the most recently active ones).
pub const MAX_CONVERSATIONS_PAGE: u32 = 500;
/// Most messages one `search_messages` answers with (also the default).
pub const MAX_SEARCH_PAGE: u32 = 50;
/// Different emoji on one message at most; a new one beyond is refused with
/// [`ErrorCode::LimitReached`].
pub const MAX_REACTION_KINDS: usize = 20;

/// Files one message carries at most.
pub const MAX_ATTACHMENTS: usize = 10;

/// Members one message mentions at most: past them, further `@name`s are plain text (one
/// message cannot become thousands of stored mentions in a large room).
pub const MAX_MENTIONS: usize = 50;

/// A position in a conversation: 1 for its first change, then +1 per change (a message, an
/// edit, a deletion, a reaction added or removed), no gaps.
pub type Seq = u64;

/// Opaque conversation identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationId(pub String);

impl std::fmt::Display for ConversationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A frame sent by the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Answered by [`ServerMsg::Pong`] with the same `nonce`.
    Ping { nonce: u64 },
    /// Answered by [`ServerMsg::Conversations`]: the user's `limit` most recently active
    /// conversations (at most and by default [`MAX_CONVERSATIONS_PAGE`]), latest first.
    ListConversations {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Opens (creating on first use) the direct conversation with `username`. Answered by
    /// [`ServerMsg::Conversation`].
    OpenDirect { username: Username },
    /// Creates a group room with the sender as its first member and owner; a `private` one
    /// is found and joined only by invitation. Answered by [`ServerMsg::Conversation`].
    CreateRoom {
        name: RoomName,
        #[serde(default, skip_serializing_if = "is_false")]
        private: bool,
    },
    /// Changes a room's name, topic (empty clears it) or privacy, whichever are given (room
    /// admins: see [`crate::roles`]). Every member's sockets get [`ServerMsg::RoomUpdated`].
    UpdateRoom {
        conversation_id: ConversationId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<RoomName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<RoomTopic>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        private: Option<bool>,
    },
    /// Adds a person to a room (any member of a public room, admins of a private one). They
    /// get [`ServerMsg::Conversation`]; every member [`ServerMsg::MemberAdded`], which is
    /// also the answer.
    AddMember {
        conversation_id: ConversationId,
        username: Username,
    },
    /// Removes a member from a room (admins remove members, the owner admins too). They
    /// get [`ServerMsg::Left`] and stop receiving the room at once; every remaining member
    /// gets [`ServerMsg::MemberRemoved`], which is also the answer.
    RemoveMember {
        conversation_id: ConversationId,
        username: Username,
    },
    /// As `remove_member`, and the person may not come back (join, be added or use a link)
    /// until unbanned. A person who is not a member may be banned too.
    Ban {
        conversation_id: ConversationId,
        username: Username,
    },
    /// Lifts a ban (room admins). Answered by [`ServerMsg::Bans`].
    Unban {
        conversation_id: ConversationId,
        username: Username,
    },
    /// Who is banned from a room (room admins). Answered by [`ServerMsg::Bans`].
    ListBans { conversation_id: ConversationId },
    /// Makes a member an admin or an admin a member (the room's owner). Every member gets
    /// [`ServerMsg::RoleChanged`], which is also the answer.
    SetRole {
        conversation_id: ConversationId,
        username: Username,
        role: Role,
    },
    /// Creates an invite link to a room that works for `hours` (1 to
    /// [`MAX_INVITE_HOURS`], by default [`DEFAULT_INVITE_HOURS`]) until revoked (room
    /// admins). Answered by [`ServerMsg::Invites`] with the room's live links.
    CreateInvite {
        conversation_id: ConversationId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hours: Option<u32>,
    },
    /// The room's live invite links (room admins). Answered by [`ServerMsg::Invites`].
    ListInvites { conversation_id: ConversationId },
    /// Revokes an invite link (room admins). Answered by [`ServerMsg::Invites`].
    RevokeInvite {
        conversation_id: ConversationId,
        token: String,
    },
    /// Joins the room an invite link leads to. Answered by [`ServerMsg::Conversation`];
    /// a link that expired, was revoked or never existed is refused with `invite_invalid`.
    JoinByInvite { token: String },
    /// Answered by [`ServerMsg::Rooms`]: a page of rooms in name order, with whether the user
    /// is in each: the first `limit` (at most and by default [`MAX_LIST_PAGE`]) after the room
    /// `after` (the previous page's `next`).
    ListRooms {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<ConversationId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Joins a room. Answered by [`ServerMsg::Conversation`].
    JoinRoom { conversation_id: ConversationId },
    /// Leaves a room: no more delivery. Answered by [`ServerMsg::Left`].
    LeaveRoom { conversation_id: ConversationId },
    /// Answered by [`ServerMsg::Members`]: a page of members in username order, after the
    /// username `after` (the previous page's `next`), `limit` as for rooms.
    ListMembers {
        conversation_id: ConversationId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Users with a word of their username or display name beginning with `query` (any
    /// case), for starting a direct conversation. Answered by [`ServerMsg::Users`].
    SearchUsers { query: String },
    /// Rooms with a word of their name beginning with `query` (any case; every Chinese
    /// character begins a word), closest first, with whether the user is in each. Answered
    /// by [`ServerMsg::RoomsFound`].
    SearchRooms { query: String },
    /// Messages containing every word of `query` (see [`crate::search`]: words whole, any
    /// case; Chinese found inside sentences), in the user's conversations or only in
    /// `conversation_id`, only from the user `from` when given; newest first, at most
    /// `limit` (at most and by default [`MAX_SEARCH_PAGE`]). Answered by
    /// [`ServerMsg::SearchResults`].
    SearchMessages {
        query: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<ConversationId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Username>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Posts a message, in reply to the message at `reply_to` if set, with the files
    /// `attachments` (uploaded to this conversation by the sender, each sent once; at most
    /// [`MAX_ATTACHMENTS`]). It needs a `body`, or files, or both. `client_msg_id` makes
    /// retries safe: sending the same id again returns the original message. Answered by
    /// [`ServerMsg::Ack`] once the message is durable.
    Send {
        conversation_id: ConversationId,
        client_msg_id: ClientMsgId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<MessageBody>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<Seq>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<FileId>,
    },
    /// Replaces the text of one of the user's own messages. Not answered unless refused:
    /// every member's sockets, the sender's included, get [`ServerMsg::Changed`]. The same
    /// text again changes nothing.
    Edit {
        conversation_id: ConversationId,
        seq: Seq,
        body: MessageBody,
    },
    /// Deletes one of the user's own messages: its text and reactions are erased from the
    /// store. Answered as `edit`; deleting a deleted message changes nothing.
    Delete {
        conversation_id: ConversationId,
        seq: Seq,
    },
    /// Adds the user's reaction `emoji` to a message. Answered as `edit`; a reaction the
    /// user already has changes nothing.
    React {
        conversation_id: ConversationId,
        seq: Seq,
        emoji: Emoji,
    },
    /// Takes the user's reaction `emoji` off a message. Answered as `edit`; a reaction the
    /// user does not have changes nothing.
    Unreact {
        conversation_id: ConversationId,
        seq: Seq,
        emoji: Emoji,
    },
    /// A page of history: the newest `limit` messages with `seq < before_seq` (or the newest
    /// overall), each as it is now. Answered by [`ServerMsg::History`].
    History {
        conversation_id: ConversationId,
        #[serde(default)]
        before_seq: Option<Seq>,
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Everything up to and including `seq` has been read. Echoed to all the user's sockets
    /// as [`ServerMsg::ReadState`].
    MarkRead {
        conversation_id: ConversationId,
        seq: Seq,
    },
    /// How the user is told of new messages in this conversation. Echoed to all the user's
    /// sockets as [`ServerMsg::Notify`].
    SetNotify {
        conversation_id: ConversationId,
        level: NotifyLevel,
    },
    /// Changes the user's display name. Answered by [`ServerMsg::UserUpdated`], which also
    /// reaches the user's other sockets and everyone who shares a conversation with them.
    /// Shares the sends' budget.
    SetDisplayName { display_name: DisplayName },
    /// Sets the user's status text (empty clears it). Answered and told as
    /// `set_display_name`.
    SetStatus { status: StatusText },
    /// The user is typing in this conversation: sent at most every [`TYPING_EVERY_MS`] while
    /// they type. Not answered (unless refused); the other members' sockets get
    /// [`ServerMsg::Typing`]. Never stored, never replayed.
    Typing { conversation_id: ConversationId },
    /// After a reconnect: for each conversation, the last `seq` the client has. The server
    /// sends every later change, in order, as [`ServerMsg::Message`] and
    /// [`ServerMsg::Changed`] frames, then [`ServerMsg::Resumed`]; live ones are never sent
    /// twice.
    Resume { positions: Vec<Position> },
}

/// What a client last saw of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub conversation_id: ConversationId,
    pub seq: Seq,
}

/// A frame sent by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMsg {
    /// First frame on every socket: who the socket belongs to.
    Hello {
        protocol_version: u32,
        server_version: String,
        me: UserInfo,
        /// The user administers the server: they moderate every room they are in.
        #[serde(default, skip_serializing_if = "is_false")]
        admin: bool,
    },
    Pong {
        nonce: u64,
        /// Server wall-clock time in milliseconds since the Unix epoch.
        server_time_ms: u64,
    },
    /// The user's conversations, latest activity first; `has_more` when they have more
    /// than were asked for.
    Conversations {
        conversations: Vec<ConversationSummary>,
        #[serde(default)]
        has_more: bool,
    },
    /// One conversation was opened, joined, created or changed.
    Conversation {
        conversation: ConversationSummary,
    },
    /// The user left the conversation (on any of their sockets), or was removed or banned
    /// from it (`reason`).
    Left {
        conversation_id: ConversationId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<LeftReason>,
    },
    /// A room's name, topic or privacy changed: to every member.
    RoomUpdated {
        conversation_id: ConversationId,
        name: String,
        /// Empty: none.
        #[serde(default)]
        topic: String,
        #[serde(default)]
        private: bool,
        /// Who changed it.
        by: String,
    },
    /// Someone was added to a room: to every member.
    MemberAdded {
        conversation_id: ConversationId,
        member: Member,
        by: String,
    },
    /// Someone was removed (or banned) from a room by `by`: to every remaining member.
    MemberRemoved {
        conversation_id: ConversationId,
        username: String,
        by: String,
        #[serde(default, skip_serializing_if = "is_false")]
        banned: bool,
    },
    /// A member's role changed: to every member.
    RoleChanged {
        conversation_id: ConversationId,
        username: String,
        role: Role,
    },
    /// Who is banned from a room.
    Bans {
        conversation_id: ConversationId,
        users: Vec<UserInfo>,
    },
    /// A room's invite links that still work, newest first.
    Invites {
        conversation_id: ConversationId,
        invites: Vec<RoomInvite>,
    },
    /// A page of rooms; `next` (when there are more) is the `after` of the next page.
    Rooms {
        rooms: Vec<RoomInfo>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<ConversationId>,
    },
    /// A page of members; `next` as for rooms.
    Members {
        conversation_id: ConversationId,
        members: Vec<Member>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    Users {
        query: String,
        users: Vec<UserInfo>,
    },
    /// The rooms found for `query` (as sent, trimmed).
    RoomsFound {
        query: String,
        rooms: Vec<RoomInfo>,
    },
    /// The messages found for `query` (as sent), newest first, each as it is now with the
    /// title of its conversation; `has_more` when more matched than were sent.
    SearchResults {
        query: String,
        hits: Vec<SearchHit>,
        has_more: bool,
    },
    /// The socket fell too far behind; the server closes it right after. Reconnect and
    /// `resume`.
    Lagging,
    /// The message with this `client_msg_id` is stored durably as `message`.
    Ack {
        client_msg_id: String,
        message: Message,
    },
    /// A new message in one of the user's conversations (live, or replayed by `resume`).
    Message {
        message: Message,
    },
    /// A page of history, oldest first, covering the positions `from_seq..=to_seq`: every
    /// message among them is here as it is now, and the other positions are changes already
    /// applied to them. `has_more` when older messages exist. An empty conversation
    /// answers `from_seq` 1 and `to_seq` 0.
    History {
        conversation_id: ConversationId,
        messages: Vec<Message>,
        has_more: bool,
        from_seq: Seq,
        to_seq: Seq,
    },
    /// A message was edited, deleted or reacted to (live, or replayed by `resume`): the
    /// change at `change.seq`.
    Changed {
        change: Change,
    },
    /// The user's read position in a conversation changed (on this or another socket), or
    /// an edit or deletion changed which unread messages mention them: `unread` messages
    /// remain up to the conversation's position `last_seq`, `mentions` of them mention the
    /// user.
    ReadState {
        conversation_id: ConversationId,
        last_read_seq: Seq,
        last_seq: Seq,
        unread: u64,
        #[serde(default)]
        mentions: u64,
    },
    /// The user's notification level for a conversation (set on this or another socket).
    Notify {
        conversation_id: ConversationId,
        level: NotifyLevel,
    },
    /// Every message missed before the `resume` has been sent.
    Resumed,
    /// `username` is typing in `conversation_id` (show it for [`TYPING_SHOWN_MS`], or until a
    /// message from them arrives).
    Typing {
        conversation_id: ConversationId,
        username: String,
    },
    /// Someone else has read a conversation up to `last_read_seq`, for "Seen" and "Seen by
    /// N". Sent to the other person of a direct conversation; in a room, to the sender of
    /// the message read up to (the only one shown who saw it), so that one read costs one
    /// frame however large the room. Other positions come with `members`.
    Seen {
        conversation_id: ConversationId,
        username: String,
        last_read_seq: Seq,
    },
    /// A user sharing a conversation with this one came online or went offline.
    Presence {
        username: String,
        online: bool,
    },
    /// A user changed their display name, picture or status (`user` is how they show now):
    /// sent to their own sockets and to everyone who shares a conversation with them.
    UserUpdated {
        user: UserInfo,
    },
    /// A frame could not be handled. Nothing was changed on the server. `client_msg_id` is
    /// set when the failed frame was a `send`.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
}

/// Why someone is no longer in a room they did not leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    Removed,
    Banned,
}

/// An invite link to a room: `/?join=<token>` on the server's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomInvite {
    pub token: String,
    pub created_by: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// How long an invite link works by default, and at most, in hours.
pub const DEFAULT_INVITE_HOURS: u32 = 24 * 7;
pub const MAX_INVITE_HOURS: u32 = 24 * 30;

/// The query parameter of an invite link.
pub const JOIN_PARAM: &str = "join";

/// One message found by a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchHit {
    /// As in [`ConversationSummary::title`].
    pub conversation_title: String,
    pub message: Message,
}

/// Why a call to `/api/auth/*` failed, as the browser words it (see `lang`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthProblem {
    /// No answer at all: the network or the server is down.
    Unreachable,
    /// A refusal with its `error.code` (`wrong_credentials`, `username_taken`, ...) and, when
    /// the server says how long to wait, its `Retry-After` in seconds.
    Refused {
        code: String,
        retry_after_s: Option<u64>,
    },
    /// An answer that is not the API's (a proxy's error page, say).
    Status(u16),
}

/// A user as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInfo {
    pub username: String,
    pub display_name: String,
    /// The version of their picture (see [`UserInfo::avatar_url`]); none: initials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// A short status they set ("On holiday until Monday").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Where users' pictures are: `GET <USERS_PATH>/<username>/avatar` (signed in).
pub const USERS_PATH: &str = "/api/users";
/// One's own picture: `POST` the image as the body (cropped to a square on the server),
/// `DELETE` to go back to initials.
pub const AVATAR_PATH: &str = "/api/account/avatar";
/// The side of a stored picture, in pixels.
pub const AVATAR_SIZE: u32 = 256;

impl UserInfo {
    /// Someone known only by name.
    pub fn named(username: impl Into<String>, display_name: impl Into<String>) -> Self {
        UserInfo {
            username: username.into(),
            display_name: display_name.into(),
            avatar: None,
            status: None,
        }
    }

    /// The address of their picture, when they have one (the version in it: a new picture
    /// is a new address, so each can be cached for good).
    pub fn avatar_url(&self) -> Option<String> {
        self.avatar
            .as_ref()
            .map(|v| format!("{USERS_PATH}/{}/avatar?v={v}", self.username))
    }
}

/// A stored message, as it is now (its edits, deletion and reactions applied).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub conversation_id: ConversationId,
    pub seq: Seq,
    pub sender: String,
    /// Empty once deleted.
    pub body: String,
    pub client_msg_id: String,
    /// Server time of storage, milliseconds since the Unix epoch.
    pub sent_at_ms: i64,
    /// The message this one answers, as that message is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Quote>,
    /// When the text was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// Who deleted it, when that was not its sender (a room admin or a server admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<String>,
    /// In the order each emoji was first used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The members this message mentions (`@name`, see [`crate::mention`]), the sender
    /// excepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// Its files, in the order they were attached; none once deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// A file sent with a message: what `POST /api/files` answered when it was uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub id: String,
    /// The name it was uploaded with (shown as text; never a path).
    pub name: String,
    /// Bytes, as stored (an image's location data removed).
    pub size: u64,
    /// What the server found it to be: one of [`INLINE_IMAGE_TYPES`] for an image it made a
    /// thumbnail of, else a type guessed from the name (it is then only ever downloaded).
    pub content_type: String,
    /// An image's size in pixels, upright (its EXIF orientation applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// The image types the server shows inline (and makes thumbnails of); every other file is
/// served as a download (`Content-Disposition: attachment`).
pub const INLINE_IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

impl Attachment {
    /// Whether it is shown as an image (with a thumbnail) rather than as a file to download.
    pub fn is_image(&self) -> bool {
        self.width.is_some() && INLINE_IMAGE_TYPES.contains(&self.content_type.as_str())
    }

    /// Where the file is downloaded from (by a conversation member's session).
    pub fn url(&self) -> String {
        file_url(&self.id)
    }

    /// Where an image's thumbnail is (at most [`THUMBNAIL_SIZE`] pixels a side).
    pub fn thumbnail_url(&self) -> String {
        format!("{}/thumbnail", file_url(&self.id))
    }
}

/// Where files are uploaded to (`POST`, the conversation in the query) and read from.
pub const FILES_PATH: &str = "/api/files";

/// The largest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIZE: u32 = 400;

fn file_url(id: &str) -> String {
    format!("{FILES_PATH}/{id}")
}

impl Message {
    /// How the conversation list shows it: its text's first line, shortened to `max`
    /// characters; for files alone, "📎" and the first file's name (and how many more).
    pub fn preview(&self, max: usize) -> String {
        preview_of(&self.body, &self.attachments, max)
    }
}

/// See [`Message::preview`]; also what the server keeps as a conversation's last text.
pub fn preview_of(body: &str, attachments: &[Attachment], max: usize) -> String {
    let text = crate::domain::preview(body, max);
    match attachments {
        [first, rest @ ..] if text.is_empty() => {
            let more = if rest.is_empty() {
                String::new()
            } else {
                format!(" +{}", rest.len())
            };
            crate::domain::preview(&format!("📎 {}{more}", first.name), max)
        }
        _ => text,
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The start of the message a reply answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub seq: Seq,
    pub sender: String,
    /// The first line, shortened; empty once deleted.
    pub text: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
}

/// One emoji on a message and who reacted with it, in the order they did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    pub users: Vec<String>,
}

/// A change to a message, at its own position `seq` of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub conversation_id: ConversationId,
    pub seq: Seq,
    /// Who made the change.
    pub actor: String,
    pub at_ms: i64,
    /// The `seq` of the message changed.
    pub target: Seq,
    pub what: What,
}

/// What a [`Change`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum What {
    /// The text is now `body`, mentioning `mentions` (replayed: the text as it is now,
    /// empty if deleted since).
    Edited {
        body: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<String>,
    },
    /// The text and reactions are gone.
    Deleted,
    Reacted {
        emoji: String,
    },
    Unreacted {
        emoji: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    Direct,
    Room,
}

/// One line of the recent-conversations list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub kind: ConversationKind,
    /// The peer's display name for a direct conversation, the room's name otherwise.
    pub title: String,
    /// The other user, for a direct conversation, and whether they are online.
    pub peer: Option<Member>,
    /// The last position (a message or a change).
    pub last_seq: Seq,
    pub last_read_seq: Seq,
    /// Messages after `last_read_seq` (changes to messages do not count).
    pub unread: u64,
    /// Those of the unread messages that mention the user.
    #[serde(default)]
    pub mentions: u64,
    #[serde(default)]
    pub notify: NotifyLevel,
    pub last_message: Option<Preview>,
    /// Last message time, or creation time when empty; milliseconds since the Unix epoch.
    pub last_activity_ms: i64,
    /// Rooms only: the topic (when set), whether it is private, and the user's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub private: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// Which new messages of a conversation raise a notification for a member. A mention
/// always does; the unread count is kept at every level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyLevel {
    /// Every message.
    #[default]
    All,
    /// Messages that mention the user.
    Mentions,
    /// Muted: like `mentions`, and the conversation is shown muted (its unread count
    /// quiet, only mentions stand out).
    Mute,
}

impl NotifyLevel {
    pub const ALL: [NotifyLevel; 3] = [NotifyLevel::All, NotifyLevel::Mentions, NotifyLevel::Mute];

    /// Its name on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyLevel::All => "all",
            NotifyLevel::Mentions => "mentions",
            NotifyLevel::Mute => "mute",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// Whether a new message raises a notification at this level.
    pub fn notifies(self, mentions_me: bool) -> bool {
        mentions_me || self == NotifyLevel::All
    }
}

/// The latest message of a conversation, shortened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub sender: String,
    /// Empty once deleted.
    pub text: String,
    pub sent_at_ms: i64,
}

/// A conversation member and whether they are online.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user: UserInfo,
    pub online: bool,
    /// How far they have read (for "Seen" and "Seen by N"): in `members` answers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_seq: Option<Seq>,
    /// Their role in a room: in `members` answers and `member_added` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub id: ConversationId,
    pub name: String,
    pub member_count: u64,
    pub joined: bool,
    /// Private rooms are listed only to their members.
    #[serde(default, skip_serializing_if = "is_false")]
    pub private: bool,
}

/// Machine-readable reason carried by [`ServerMsg::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or not a valid [`ClientMsg`] (unknown type, missing or extra fields).
    BadFrame,
    /// A field broke its rule (empty or over-long body, bad username, ...).
    InvalidInput,
    /// The action is not this user's to take (editing someone else's message).
    Forbidden,
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    FrameTooLarge,
    /// Binary frames are not part of the protocol.
    UnsupportedFrame,
    /// The conversation or user does not exist (or is not visible to this user).
    NotFound,
    /// Too many messages (or rooms, or searches) too fast; retry later.
    RateLimited,
    /// A standing limit is reached (e.g. the rooms one user may own).
    LimitReached,
    /// The user is banned from this room.
    Banned,
    /// The invite link expired, was revoked or never existed.
    InviteInvalid,
    /// Something failed on the server; the client may retry.
    Internal,
}

impl ClientMsg {
    /// Decodes one text frame, mapping every failure to the error the server sends back.
    pub fn decode(frame: &str) -> Result<Self, DecodeError> {
        if frame.len() > MAX_FRAME_BYTES {
            return Err(DecodeError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "frame is {} bytes; the limit is {MAX_FRAME_BYTES}",
                    frame.len()
                ),
            ));
        }
        let msg: ClientMsg = serde_json::from_str(frame).map_err(|e| {
            // A domain value that breaks its rule fails decoding with a message that starts
            // with the field's name (see `domain::Invalid`): that is invalid input, not a
            // malformed frame.
            let text = e.to_string();
            let code = if VALIDATION_MARKERS.iter().any(|m| text.starts_with(m)) {
                ErrorCode::InvalidInput
            } else {
                ErrorCode::BadFrame
            };
            DecodeError::new(code, text)
        })?;
        if let ClientMsg::Send {
            body, attachments, ..
        } = &msg
        {
            if body.is_none() && attachments.is_empty() {
                return Err(DecodeError::new(
                    ErrorCode::InvalidInput,
                    "body: a message needs text or a file",
                ));
            }
            if attachments.len() > MAX_ATTACHMENTS {
                return Err(DecodeError::new(
                    ErrorCode::InvalidInput,
                    format!("attachments: at most {MAX_ATTACHMENTS} files per message"),
                ));
            }
        }
        Ok(msg)
    }

    /// Encodes this message as one text frame.
    pub fn encode(&self) -> String {
        encode(self)
    }
}

/// Why a client frame could not be decoded; sent back as [`ServerMsg::Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
}

impl DecodeError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        DecodeError {
            code,
            message: message.into(),
        }
    }
}

impl From<DecodeError> for ServerMsg {
    fn from(e: DecodeError) -> Self {
        ServerMsg::error(e.code, e.message)
    }
}

/// How `domain::Invalid` messages start.
const VALIDATION_MARKERS: &[&str] = &[
    "username:",
    "display_name:",
    "room_name:",
    "topic:",
    "status:",
    "password:",
    "body:",
    "client_msg_id:",
    "emoji:",
    "file_id:",
    "file_name:",
];

impl ServerMsg {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
            client_msg_id: None,
        }
    }

    /// Decodes one text frame received from the server.
    pub fn decode(frame: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(frame)
    }

    /// Encodes this message as one text frame.
    pub fn encode(&self) -> String {
        encode(self)
    }
}

fn encode<T: Serialize>(msg: &T) -> String {
    // Serialising these enums cannot fail: every field is a string, a number or a unit enum,
    // and no map has non-string keys.
    serde_json::to_string(msg).expect("protocol messages always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_has_a_stable_wire_shape() {
        let ping = ClientMsg::Ping { nonce: 7 };
        assert_eq!(ping.encode(), r#"{"type":"ping","nonce":7}"#);
        assert_eq!(ClientMsg::decode(r#"{"type":"ping","nonce":7}"#), Ok(ping));
    }

    #[test]
    fn every_server_message_survives_a_round_trip() {
        let messages = [
            ServerMsg::Hello {
                protocol_version: PROTOCOL_VERSION,
                server_version: "0.1.0".into(),
                me: UserInfo {
                    username: "alice".into(),
                    display_name: "Alice <b>".into(),
                    avatar: Some("0123456789abcdef".into()),
                    status: Some("🌴 away".into()),
                },
                admin: true,
            },
            ServerMsg::Pong {
                nonce: u64::MAX,
                server_time_ms: 1,
            },
            ServerMsg::error(ErrorCode::BadFrame, "nope"),
        ];
        for msg in messages {
            assert_eq!(ServerMsg::decode(&msg.encode()).unwrap(), msg);
        }
    }

    #[test]
    fn malformed_frames_are_rejected_with_a_code() {
        let cases = [
            ("not json", ErrorCode::BadFrame),
            (r#"{"type":"launch_rockets"}"#, ErrorCode::BadFrame),
            (r#"{"type":"ping"}"#, ErrorCode::BadFrame),
            (r#"{"type":"ping","nonce":-1}"#, ErrorCode::BadFrame),
            (
                r#"{"type":"ping","nonce":1,"extra":true}"#,
                ErrorCode::BadFrame,
            ),
            // Frames without fields refuse unknown ones too.
            (r#"{"type":"list_rooms","admin":true}"#, ErrorCode::BadFrame),
            (r#"{"type":"list_rooms","limit":-1}"#, ErrorCode::BadFrame),
            (
                r#"{"type":"list_conversations","all":1}"#,
                ErrorCode::BadFrame,
            ),
        ];
        assert_eq!(
            ClientMsg::decode(r#"{"type":"list_rooms"}"#).unwrap(),
            ClientMsg::ListRooms {
                after: None,
                limit: None
            }
        );
        for (frame, want) in cases {
            match ClientMsg::decode(frame) {
                Err(DecodeError { code, .. }) => assert_eq!(code, want, "frame {frame}"),
                other => panic!("frame {frame} decoded to {other:?}"),
            }
        }
    }

    #[test]
    fn a_send_needs_text_or_files_and_takes_only_so_many_files() {
        let send = |extra: &str| {
            format!(r#"{{"type":"send","conversation_id":"a/b","client_msg_id":"c1"{extra}}}"#)
        };
        let code = |frame: String| ClientMsg::decode(&frame).err().map(|e| e.code);
        assert_eq!(
            code(send("")),
            Some(ErrorCode::InvalidInput),
            "nothing to send"
        );
        assert_eq!(code(send(r#","body":"hi""#)), None);
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(code(send(&format!(r#","attachments":["{id}"]"#))), None);
        assert_eq!(
            code(send(r#","attachments":["../../etc/passwd"]"#)),
            Some(ErrorCode::InvalidInput)
        );
        let many = vec![format!("\"{id}\""); MAX_ATTACHMENTS + 1].join(",");
        assert_eq!(
            code(send(&format!(r#","attachments":[{many}]"#))),
            Some(ErrorCode::InvalidInput)
        );
    }

    #[test]
    fn files_alone_are_previewed_by_their_name() {
        let file = |name: &str| Attachment {
            id: "0".repeat(32),
            name: name.into(),
            size: 1,
            content_type: "image/png".into(),
            width: Some(1),
            height: Some(1),
        };
        assert_eq!(preview_of("hello\nthere", &[file("a.png")], 50), "hello");
        assert_eq!(preview_of("", &[file("a.png")], 50), "📎 a.png");
        assert_eq!(
            preview_of("", &[file("a.png"), file("b.pdf")], 50),
            "📎 a.png +1"
        );
        assert_eq!(preview_of("", &[], 50), "");
    }

    #[test]
    fn oversized_frames_are_rejected_before_parsing() {
        let frame = format!(
            r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        match ClientMsg::decode(&frame) {
            Err(DecodeError { code, .. }) => assert_eq!(code, ErrorCode::FrameTooLarge),
            other => panic!("decoded to {other:?}"),
        }
    }
}
