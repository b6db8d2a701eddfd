//! Every table, field and index the server keeps, in one place; applied once each time the
//! store opens (every statement is `IF NOT EXISTS`, so it is idempotent).

/// The schema (see the README's storage table for what each field means).
pub const SCHEMA: &str = "
-- Accounts: `user:<username>`.
DEFINE TABLE IF NOT EXISTS user SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS display_name ON user TYPE string;
DEFINE FIELD IF NOT EXISTS password_hash ON user TYPE string;
DEFINE FIELD IF NOT EXISTS created_at ON user TYPE int;
-- A server administrator (absent: no); disabled by one (absent: no).
DEFINE FIELD IF NOT EXISTS admin ON user TYPE option<bool>;
DEFINE FIELD IF NOT EXISTS disabled ON user TYPE option<bool>;
-- The version of their picture (`avatar:<username>`; absent: initials), and their status.
DEFINE FIELD IF NOT EXISTS avatar ON user TYPE option<string>;
DEFINE FIELD IF NOT EXISTS status ON user TYPE option<string>;

-- Profile pictures: `avatar:<username>`, the square image (`bytes`, at most a few tens of
-- KB), its type and version.
DEFINE TABLE IF NOT EXISTS avatar SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS image ON avatar TYPE bytes;
DEFINE FIELD IF NOT EXISTS content_type ON avatar TYPE string;
DEFINE FIELD IF NOT EXISTS version ON avatar TYPE string;

-- `first_account:claim`: written with the first account, which is the server's
-- administrator; its existence means the next account is not.
DEFINE TABLE IF NOT EXISTS first_account SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS user ON first_account TYPE string;

-- Sign-up invitations (for sign-up by invitation): `signup_invite:<random hex>`, usable `uses`
-- more times until `expires_at` (seconds).
DEFINE TABLE IF NOT EXISTS signup_invite SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS uses ON signup_invite TYPE int;
DEFINE FIELD IF NOT EXISTS expires_at ON signup_invite TYPE int;
DEFINE FIELD IF NOT EXISTS created_at ON signup_invite TYPE int;

-- How users are found by name: `user_term:[term, username]`, one per word start of the
-- username and display name (`user_terms`), written with the user. The id makes each
-- term once per user; the fields repeat it for the index, whose range reads stop at
-- their `LIMIT` (a range of record ids is read whole in SurrealDB 3.3.5).
DEFINE TABLE IF NOT EXISTS user_term SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS term ON user_term TYPE string;
DEFINE FIELD IF NOT EXISTS user ON user_term TYPE string;
DEFINE INDEX IF NOT EXISTS user_term_order ON user_term FIELDS term, user;

-- How rooms are found by name: `room_term:[term, room key]`, one per word start of the
-- room's name, written with the room, read as `user_term` is.
DEFINE TABLE IF NOT EXISTS room_term SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS term ON room_term TYPE string;
DEFINE FIELD IF NOT EXISTS room ON room_term TYPE string;
DEFINE INDEX IF NOT EXISTS room_term_order ON room_term FIELDS term, room;

-- Sessions: `session:<random 128-bit hex>`; times in seconds; the browser (`agent`) and
-- address that signed in, when known. Expired ones are deleted every hour.
DEFINE TABLE IF NOT EXISTS session SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS user ON session TYPE record<user>;
DEFINE FIELD IF NOT EXISTS created_at ON session TYPE int;
DEFINE FIELD IF NOT EXISTS expires_at ON session TYPE int;
DEFINE FIELD IF NOT EXISTS agent ON session TYPE option<string>;
DEFINE FIELD IF NOT EXISTS address ON session TYPE option<string>;
-- When a socket of the session last opened (kept to within `SEEN_EVERY`).
DEFINE FIELD IF NOT EXISTS seen_at ON session TYPE option<int>;
DEFINE INDEX IF NOT EXISTS session_user ON session FIELDS user;
DEFINE INDEX IF NOT EXISTS session_expiry ON session FIELDS expires_at;

-- Conversations: `conversation:<a>/<b>` (direct, usernames sorted), `general` and
-- `r<16 hex>` (rooms). The `last_*` fields follow the messages within a second:
-- `last_seq` is the last position (a message or a change), `last_n` the messages up to it
-- (absent in conversations older than changes: equal to `last_seq` there), `last_at`,
-- `last_sender` and `last_text` the last message.
DEFINE TABLE IF NOT EXISTS conversation SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS kind ON conversation TYPE string ASSERT $value IN ['direct', 'room'];
DEFINE FIELD IF NOT EXISTS name ON conversation TYPE option<string>;
DEFINE FIELD IF NOT EXISTS peers ON conversation TYPE array<record<user>>;
DEFINE FIELD IF NOT EXISTS last_seq ON conversation TYPE int;
DEFINE FIELD IF NOT EXISTS last_n ON conversation TYPE option<int>;
DEFINE FIELD IF NOT EXISTS last_at ON conversation TYPE int;
DEFINE FIELD IF NOT EXISTS last_sender ON conversation TYPE option<string>;
DEFINE FIELD IF NOT EXISTS last_text ON conversation TYPE option<string>;
DEFINE FIELD IF NOT EXISTS created_at ON conversation TYPE int;
-- Rooms only: who created it (`NONE` for the server's own room), and how many members it
-- has (kept with every join and leave, so that listing rooms reads no members).
DEFINE FIELD IF NOT EXISTS created_by ON conversation TYPE option<string>;
DEFINE FIELD IF NOT EXISTS member_count ON conversation TYPE option<int>;
-- Rooms only: found and joined by invitation only (absent: public), and the topic.
DEFINE FIELD IF NOT EXISTS private ON conversation TYPE option<bool>;
DEFINE FIELD IF NOT EXISTS topic ON conversation TYPE option<string>;
DEFINE INDEX IF NOT EXISTS conversation_kind ON conversation FIELDS kind;
DEFINE INDEX IF NOT EXISTS conversation_room_name ON conversation FIELDS kind, name;
DEFINE INDEX IF NOT EXISTS conversation_created_by ON conversation FIELDS created_by;

-- Members: `member:<conversation>|<username>`, read up to `last_read_seq`, which has
-- `last_read_n` messages up to it (absent: equal to `last_read_seq`, as for `last_n`).
DEFINE TABLE IF NOT EXISTS member SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS conversation ON member TYPE record<conversation>;
DEFINE FIELD IF NOT EXISTS user ON member TYPE record<user>;
DEFINE FIELD IF NOT EXISTS last_read_seq ON member TYPE int;
DEFINE FIELD IF NOT EXISTS last_read_n ON member TYPE option<int>;
DEFINE FIELD IF NOT EXISTS joined_at ON member TYPE int;
-- How the member is told of new messages: `all` (absent), `mentions` or `mute`.
DEFINE FIELD IF NOT EXISTS notify ON member TYPE option<string>
    ASSERT $value == NONE OR $value IN ['all', 'mentions', 'mute'];
-- A room member's role: `admin` (absent: a member; the owner is the room's `created_by`).
DEFINE FIELD IF NOT EXISTS role ON member TYPE option<string>
    ASSERT $value == NONE OR $value IN ['admin'];
DEFINE INDEX IF NOT EXISTS member_user ON member FIELDS user;

-- Bans: `room_ban:<room key>|<username>`, who banned them (`by`) and when (`at`, ms). A
-- banned person is not a member and cannot become one until the record is deleted.
DEFINE TABLE IF NOT EXISTS room_ban SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS room ON room_ban TYPE string;
DEFINE FIELD IF NOT EXISTS user ON room_ban TYPE string;
DEFINE FIELD IF NOT EXISTS by ON room_ban TYPE string;
DEFINE FIELD IF NOT EXISTS at ON room_ban TYPE int;
DEFINE INDEX IF NOT EXISTS room_ban_room ON room_ban FIELDS room;

-- Invite links to rooms: `room_invite:<random hex>`, working until `expires_at` (ms);
-- revoking one deletes it, and expired ones are deleted every hour.
DEFINE TABLE IF NOT EXISTS room_invite SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS room ON room_invite TYPE string;
DEFINE FIELD IF NOT EXISTS created_by ON room_invite TYPE string;
DEFINE FIELD IF NOT EXISTS created_at ON room_invite TYPE int;
DEFINE FIELD IF NOT EXISTS expires_at ON room_invite TYPE int;
DEFINE INDEX IF NOT EXISTS room_invite_room ON room_invite FIELDS room;
DEFINE INDEX IF NOT EXISTS member_conversation ON member FIELDS conversation;

-- Messages: `msg:[conversation key, seq]` with `sender` (a username), `body` (empty once
-- deleted), `client_msg_id`, `sent_at` (ms), `n` (the messages up to it; absent in rows
-- older than changes, where it equals `seq`), and when they apply `reply_to` (a seq),
-- `edited_at`, `deleted` (and `deleted_by`, a moderator who deleted someone else's message)
-- and `reactions` (`[{ emoji, users }]`): each row is the message
-- as it is now. SCHEMALESS: its rows are written only by `append_batch`, from a typed
-- Rust row, and read back into the same type; the database's per-field checks cost ~15 %
-- of the store's throughput.
DEFINE TABLE IF NOT EXISTS msg SCHEMALESS;

-- Changes to messages: `change:[conversation key, seq]`, each at its own position
-- between the messages, with `actor`, `target` (the message's seq), `kind` (`edit`,
-- `delete`, `react`, `unreact`), `emoji` for reactions, `at` (ms) and `n`. No text: an
-- edit is replayed with the message's text as it is now, so a deletion erases all of it.
-- SCHEMALESS for the same reason as `msg`.
DEFINE TABLE IF NOT EXISTS change SCHEMALESS;

-- Mentions: `mention:[username, conversation key, seq]`, one per member a message
-- mentions, written and removed with the message's edits and deletion in the same
-- transactions; the ids are the index (a member's mentions after their read position in a
-- conversation are one range). SCHEMALESS for the same reason as `msg`.
DEFINE TABLE IF NOT EXISTS mention SCHEMALESS;
-- `mentioned:[username, conversation key]`: the newest position that mentioned the member
-- there (`last`), kept by the same transactions; a hint that rules out, with one read of the
-- `user` index, the conversations where they have no unread mention.
DEFINE TABLE IF NOT EXISTS mentioned SCHEMALESS;
DEFINE INDEX IF NOT EXISTS mentioned_user ON mentioned FIELDS user;

-- Where each `client_msg_id` went: `client_msg:[sender, client_msg_id]` with
-- `conversation` and `seq`, written in the message's own transaction. The record id is
-- the rule: one message per sender and id, however long ago it was sent. SCHEMALESS
-- for the same reason as `msg`.
DEFINE TABLE IF NOT EXISTS client_msg SCHEMALESS;

-- Uploaded files: `upload:<file id>` (`store::uploads`), its blob in the file store by
-- `hash` (SHA-256, hex) and an image's `thumbnail` blob; `seq` and `client_msg_id` once a
-- message carries it (set in that message's transaction), deleted with that message.
DEFINE TABLE IF NOT EXISTS upload SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS owner ON upload TYPE string;
DEFINE FIELD IF NOT EXISTS conversation ON upload TYPE string;
DEFINE FIELD IF NOT EXISTS name ON upload TYPE string;
DEFINE FIELD IF NOT EXISTS size ON upload TYPE int;
DEFINE FIELD IF NOT EXISTS content_type ON upload TYPE string;
DEFINE FIELD IF NOT EXISTS hash ON upload TYPE string;
DEFINE FIELD IF NOT EXISTS thumbnail ON upload TYPE option<string>;
DEFINE FIELD IF NOT EXISTS width ON upload TYPE option<int>;
DEFINE FIELD IF NOT EXISTS height ON upload TYPE option<int>;
DEFINE FIELD IF NOT EXISTS created_at ON upload TYPE int;
DEFINE FIELD IF NOT EXISTS seq ON upload TYPE option<int>;
DEFINE FIELD IF NOT EXISTS client_msg_id ON upload TYPE option<string>;
DEFINE INDEX IF NOT EXISTS upload_owner ON upload FIELDS owner;

-- Message search lives in its own index beside the database (`search_index`);
-- `search_cursor:<conversation key>.upto` is the last position of a conversation that index
-- has (`store::search`). SCHEMALESS for the same reason as `msg`.
DEFINE TABLE IF NOT EXISTS search_cursor SCHEMALESS;

-- `server_meta:boots`: how often this data directory has been opened, and when last.
DEFINE TABLE IF NOT EXISTS server_meta SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS count ON server_meta TYPE int;
DEFINE FIELD IF NOT EXISTS at ON server_meta TYPE datetime;

-- `store_state:shutdown.clean`: false while a store has the database open, true once it
-- stored everything it kept in memory and closed.
DEFINE TABLE IF NOT EXISTS store_state SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS clean ON store_state TYPE bool;

-- `store_layout:current.version`: the newest layout the data was moved to (`migrations`).
DEFINE TABLE IF NOT EXISTS store_layout SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS version ON store_layout TYPE int;

-- `layout_progress:current`: how far a move that was interrupted had got (the last
-- conversation it finished, in key order), so that it goes on from there.
DEFINE TABLE IF NOT EXISTS layout_progress SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS conversation ON layout_progress TYPE string;
";
