//! The chat service: every use-case a client frame can ask for, as a method of
//! [`ChatService`], which holds exactly what they need (the store, the hub, the writers
//! and the per-user budgets: sends, rooms, searches, typing). Each checks that the user may do what
//! they ask (membership, validity, rate) before anything is written, so a refused frame
//! changes nothing.
//!
//! Running a room (its name, topic and privacy, members added, removed and banned, roles,
//! invite links) is in `chat/rooms.rs`, decided by [`app::roles::may`].
//!
//! The socket handler ([`crate::ws`]) only decodes frames and calls these; what a method
//! answers goes back to the asking socket, and what others must see goes through the
//! [`Hub`].

mod limit;
mod rooms;

use app::{
    domain::{DisplayName, RoomName, StatusText},
    protocol::{
        ConversationId, ConversationKind, ConversationSummary, ErrorCode, Member, NotifyLevel,
        Preview, RoomInfo, SearchHit, ServerMsg, UserInfo, DEFAULT_HISTORY_PAGE,
        MAX_CONVERSATIONS_PAGE, MAX_HISTORY_PAGE, MAX_LIST_PAGE, MAX_SEARCH_PAGE,
    },
    roles::RoomAction,
    search::{Query, QueryError},
};
use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

pub use crate::refusal::Refusal;
use crate::{
    changes::Request,
    hub::{Hub, Outbound, Relayed},
    store::{
        direct_peer, ConversationRow, Entry, Kind, RoomRow, StoreError, SurrealChatStore,
        DEFAULT_ROOM_NAME,
    },
    writer::{Action, Submission, Writers},
};
use limit::UserRate;

/// Most users a search returns.
const SEARCH_LIMIT: u32 = 20;
/// Most messages one `resume` replays per conversation; beyond that the client is told
/// to reload the conversation's history instead.
pub const RESUME_LIMIT: u64 = 10_000;
/// Positions fetched per database round trip while resuming.
const RESUME_PAGE: u32 = 500;

pub type Reply = Result<ServerMsg, Refusal>;

/// What each user may do how often (from the settings).
#[derive(Debug, Clone, Copy)]
pub struct UserLimits {
    /// Messages per second (bursts of three seconds' worth).
    pub send_rate: u32,
    /// Rooms created per hour (bursts of five).
    pub rooms_per_hour: u32,
    /// Rooms one user may have created.
    pub rooms_owned: usize,
}

/// What a conversation is called for this user: the other person's display name, or the
/// room's name.
fn title(row: &ConversationRow) -> String {
    match (&row.peer, &row.name) {
        (Some(peer), _) => peer.display_name.clone(),
        (None, Some(name)) => name.clone(),
        (None, None) => row.key.clone(),
    }
}

/// The per-user budgets.
struct Budgets {
    sends: UserRate,
    rooms: UserRate,
    searches: UserRate,
    typing: UserRate,
    rooms_owned: u64,
}

/// The chat's use-cases; cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    store: SurrealChatStore,
    hub: Hub,
    writers: Writers,
    budgets: Arc<Budgets>,
}

impl ChatService {
    pub fn new(store: SurrealChatStore, hub: Hub, writers: Writers, limits: UserLimits) -> Self {
        ChatService {
            store,
            hub,
            writers,
            budgets: Arc::new(Budgets {
                sends: UserRate::sends(limits.send_rate),
                rooms: UserRate::rooms(limits.rooms_per_hour),
                searches: UserRate::searches(),
                typing: UserRate::typing(),
                rooms_owned: limits.rooms_owned as u64,
            }),
        }
    }

    /// The hub this service delivers through (the socket handler registers with it).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Forgets the budgets (sends, rooms, searches) of users idle long enough to have full
    /// ones again: memory for budgets follows the users acting now, not everyone who ever did.
    pub fn forget_idle_senders(&self) {
        self.budgets.sends.forget_idle();
        self.budgets.rooms.forget_idle();
        self.budgets.searches.forget_idle();
        self.budgets.typing.forget_idle();
    }

    /// Who `username` is, as sockets introduce them, and whether they administer the
    /// server; `None` for an unknown account.
    pub async fn user_info(&self, username: &str) -> Result<Option<(UserInfo, bool)>, StoreError> {
        Ok(self
            .store
            .user(username)
            .await?
            .map(|u| (u.info(), u.admin)))
    }

    /// One line of the list; `mentions` of its unread messages mention the user.
    fn summary(&self, row: ConversationRow, mentions: u64) -> ConversationSummary {
        let unread = row.unread();
        let title = title(&row);
        let peer = row.peer.map(|user| Member {
            online: self.hub.is_online(&user.username),
            user,
            last_read_seq: None,
            role: None,
        });
        ConversationSummary {
            title,
            id: ConversationId(row.key),
            kind: match row.kind {
                Kind::Direct => ConversationKind::Direct,
                Kind::Room => ConversationKind::Room,
            },
            peer,
            last_seq: row.last_seq,
            last_read_seq: row.last_read_seq,
            unread,
            mentions,
            notify: row.notify,
            last_message: row.last_sender.map(|sender| Preview {
                sender,
                text: row.last_text.unwrap_or_default(),
                sent_at_ms: row.last_at,
            }),
            last_activity_ms: row.last_at,
            topic: row.topic,
            private: row.private,
            role: row.role,
        }
    }

    pub async fn list_conversations(&self, me: &str, limit: Option<u32>) -> Reply {
        let limit = page_size(limit, MAX_CONVERSATIONS_PAGE)?;
        let mut rows = self.store.recent_conversations(me).await?;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let unread: Vec<(&str, u64)> = rows
            .iter()
            .filter(|r| r.unread() > 0)
            .map(|r| (r.key.as_str(), r.last_read_seq))
            .collect();
        let mentions = self.store.unread_mentions(me, &unread).await?;
        Ok(ServerMsg::Conversations {
            conversations: rows
                .into_iter()
                .map(|r| {
                    let n = mentions.get(&r.key).copied().unwrap_or(0);
                    self.summary(r, n)
                })
                .collect(),
            has_more,
        })
    }

    /// The summary of one of `me`'s conversations.
    pub async fn conversation(&self, me: &str, key: &str) -> Reply {
        let row = self.store.conversation_row(me, key).await?;
        let mentions = self
            .store
            .mentions_after(me, key, row.last_read_seq, row.unread())
            .await?;
        Ok(ServerMsg::Conversation {
            conversation: self.summary(row, mentions),
        })
    }

    pub async fn open_direct(&self, me: &str, other: &str) -> Reply {
        if me == other {
            return Err(Refusal::new(
                ErrorCode::InvalidInput,
                "pick someone other than yourself",
            ));
        }
        let key = self
            .store
            .open_direct(me, other, crate::clock::now_ms())
            .await?;
        self.conversation(me, &key).await
    }

    pub async fn create_room(&self, me: &str, name: &RoomName, private: bool) -> Reply {
        not_the_default_name(name)?;
        if self.store.rooms_created_by(me).await? >= self.budgets.rooms_owned {
            return Err(Refusal::new(
                ErrorCode::LimitReached,
                format!(
                    "you have created {} rooms, the most one person may",
                    self.budgets.rooms_owned
                ),
            ));
        }
        if !self.budgets.rooms.allow(me) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many rooms created lately; try again later",
            ));
        }
        let key = self
            .store
            .create_room(me, name, private, crate::clock::now_ms())
            .await?;
        self.conversation(me, &key).await
    }

    pub async fn list_rooms(&self, me: &str, after: Option<&str>, limit: Option<u32>) -> Reply {
        let limit = page_size(limit, MAX_LIST_PAGE)?;
        // One more than the page, to tell whether there is a next one.
        let mut rooms = self.store.rooms(after, limit as u32 + 1).await?;
        let next = (rooms.len() > limit).then(|| {
            rooms.truncate(limit);
            ConversationId(rooms[limit - 1].key.clone())
        });
        Ok(ServerMsg::Rooms {
            rooms: self.room_infos(me, rooms).await?,
            next,
        })
    }

    /// Rooms as `me` sees them: with whether they are in each; a private room only to its
    /// members.
    async fn room_infos(&self, me: &str, rooms: Vec<RoomRow>) -> Result<Vec<RoomInfo>, Refusal> {
        let mine: std::collections::HashSet<String> = self
            .store
            .recent_conversations(me)
            .await?
            .into_iter()
            .map(|r| r.key)
            .collect();
        Ok(rooms
            .into_iter()
            .filter(|r| !r.private || mine.contains(&r.key))
            .map(|r| RoomInfo {
                joined: mine.contains(&r.key),
                id: ConversationId(r.key),
                name: r.name,
                member_count: r.member_count,
                private: r.private,
            })
            .collect())
    }

    /// Joins a public room by oneself (a private one only by invitation: to anyone else it
    /// does not exist); a banned person is refused.
    pub async fn join_room(&self, me: &str, key: &str) -> Reply {
        let room = self.room(me, key).await?;
        room.require(RoomAction::Join)?;
        if self.store.admit(key, me, crate::clock::now_ms()).await? {
            self.announce_member(key, me, me).await;
        }
        self.conversation(me, key).await
    }

    /// Leaves a room, and tells the user's other sockets.
    pub async fn leave_room(&self, me: &str, key: &str) -> Reply {
        self.store.leave_room(key, me).await?;
        let left = ServerMsg::Left {
            conversation_id: ConversationId(key.to_owned()),
            reason: None,
        };
        self.hub
            .push(&[me.to_owned()], &Outbound::frame(&left), None);
        Ok(left)
    }

    pub async fn list_members(
        &self,
        me: &str,
        key: &str,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Reply {
        let limit = page_size(limit, MAX_LIST_PAGE)?;
        let names = self.store.require_member(key, me).await?;
        let room = self.store.standing(key, me).await?;
        let is_room = room.kind == Kind::Room;
        // Members are held sorted: the page starts after `after`, wherever it would be.
        let start = after.map_or(0, |a| names.partition_point(|n| n.as_str() <= a));
        let page: Vec<String> = names.iter().skip(start).take(limit).cloned().collect();
        let next = (start + page.len() < names.len())
            .then(|| page.last().cloned())
            .flatten();
        let users = self
            .store
            .members_read(key, &page, room.created_by.as_deref())
            .await?;
        Ok(ServerMsg::Members {
            next,
            conversation_id: ConversationId(key.to_owned()),
            members: users
                .into_iter()
                .map(|m| Member {
                    online: self.hub.is_online(&m.user.username),
                    user: m.user,
                    last_read_seq: Some(m.last_read_seq),
                    role: is_room.then_some(m.role),
                })
                .collect(),
        })
    }

    /// A name search's query, trimmed, if it is one and the user's search budget allows it.
    fn name_query<'q>(&self, me: &str, query: &'q str) -> Result<&'q str, Refusal> {
        let q = query.trim();
        if q.is_empty() || q.chars().count() > 64 {
            return Err(Refusal::new(
                ErrorCode::InvalidInput,
                "query: must be 1–64 characters",
            ));
        }
        if !self.budgets.searches.allow(me) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many searches; wait a moment",
            ));
        }
        Ok(q)
    }

    /// Rooms found by a word of their name (public ones, and private ones the user is in),
    /// with whether the user is in each.
    pub async fn search_rooms(&self, me: &str, query: &str) -> Reply {
        let q = self.name_query(me, query)?;
        let rooms = self.store.search_rooms(q, SEARCH_LIMIT).await?;
        Ok(ServerMsg::RoomsFound {
            query: q.to_owned(),
            rooms: self.room_infos(me, rooms).await?,
        })
    }

    pub async fn search_users(&self, me: &str, query: &str) -> Reply {
        let q = self.name_query(me, query)?;
        let users = self.store.search_users(q, SEARCH_LIMIT).await?;
        Ok(ServerMsg::Users {
            query: q.to_owned(),
            users,
        })
    }

    /// Messages containing `query` that the user may read, newest first (see
    /// [`app::protocol::ClientMsg::SearchMessages`]): the index proposes, and each message
    /// as it is now decides, so that edited-away or deleted text is never found.
    pub async fn search_messages(
        &self,
        me: &str,
        query: &str,
        within: Option<&str>,
        from: Option<&str>,
        limit: Option<u32>,
    ) -> Reply {
        let parsed = Query::parse(query).map_err(|e| {
            Refusal::new(
                ErrorCode::InvalidInput,
                match e {
                    QueryError::Empty => "query: needs a letter, digit or character to find",
                    QueryError::TooLong => "query: at most 100 characters",
                    QueryError::TooManyParts => "query: at most 8 words",
                },
            )
        })?;
        if !self.budgets.searches.allow(me) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many searches; wait a moment",
            ));
        }
        if let Some(key) = within {
            self.store.require_member(key, me).await?;
        }
        // Only the conversations the user is in now: a room they left is not searched.
        let titles: HashMap<String, String> = self
            .store
            .recent_conversations(me)
            .await?
            .into_iter()
            .filter(|row| within.is_none_or(|k| row.key == k))
            .map(|row| (row.key.clone(), title(&row)))
            .collect();
        let keys: Vec<String> = titles.keys().cloned().collect();
        let limit = limit.unwrap_or(MAX_SEARCH_PAGE).clamp(1, MAX_SEARCH_PAGE) as usize;
        // Candidates the index proposes, checked against the messages as they are now; asked
        // again further back in the rare case that too few of them hold up.
        let mut enough = limit + 1;
        let (mut hits, mut has_more) = (Vec::with_capacity(limit), false);
        for _ in 0..4 {
            let (candidates, older) = self
                .store
                .search_candidates(&keys, &parsed, from, enough)
                .await?;
            hits.clear();
            has_more = false;
            'pages: for chunk in candidates.chunks(limit) {
                let places: Vec<(&str, u64)> = chunk
                    .iter()
                    .map(|c| (c.conversation.as_str(), c.seq))
                    .collect();
                let mut now: HashMap<(String, u64), _> = self
                    .store
                    .messages_of(&places)
                    .await?
                    .into_iter()
                    .map(|m| ((m.conversation.clone(), m.seq), m))
                    .collect();
                for c in chunk {
                    let Some(m) = now.remove(&(c.conversation.clone(), c.seq)) else {
                        continue;
                    };
                    if m.deleted || !parsed.matches(&m.body) {
                        continue;
                    }
                    if hits.len() == limit {
                        has_more = true;
                        break 'pages;
                    }
                    hits.push(SearchHit {
                        conversation_title: titles
                            .get(&m.conversation)
                            .cloned()
                            .unwrap_or_default(),
                        message: m.to_wire(None),
                    });
                }
            }
            if has_more || !older {
                break;
            }
            enough *= 8;
        }
        Ok(ServerMsg::SearchResults {
            query: query.to_owned(),
            hits,
            has_more,
        })
    }

    pub async fn history(
        &self,
        me: &str,
        key: &str,
        before: Option<u64>,
        limit: Option<u32>,
    ) -> Reply {
        self.store.require_member(key, me).await?;
        let limit = limit
            .unwrap_or(DEFAULT_HISTORY_PAGE)
            .clamp(1, MAX_HISTORY_PAGE);
        let page = self.store.history_page(key, before, limit).await?;
        let quotes = self.store.quotes(key, &page.messages).await?;
        Ok(ServerMsg::History {
            conversation_id: ConversationId(key.to_owned()),
            messages: page
                .messages
                .iter()
                .map(|m| m.to_wire(m.reply_to.and_then(|r| quotes.get(&r).cloned())))
                .collect(),
            has_more: page.has_more,
            from_seq: page.from,
            to_seq: page.to,
        })
    }

    /// Moves the read position and tells every socket of the user.
    pub async fn mark_read(&self, me: &str, key: &str, seq: u64) -> Reply {
        let (read, head) = self.store.mark_read(key, me, seq).await?;
        let unread = head.n.saturating_sub(read.n);
        let mentions = self.store.mentions_after(me, key, read.seq, unread).await?;
        let msg = ServerMsg::ReadState {
            conversation_id: ConversationId(key.to_owned()),
            last_read_seq: read.seq,
            last_seq: head.seq,
            unread,
            mentions,
        };
        self.hub
            .push(&[me.to_owned()], &Outbound::frame(&msg), None);
        // "Seen": the other person of a direct conversation is told; in a room, the sender
        // of the newest message read, the one person shown who has seen it — one frame per
        // read however large the room (other positions come with `members`).
        let seer = match direct_peer(key, me) {
            Some(other) => Some(other.to_owned()),
            None => self
                .store
                .known_last_sender(key)
                .filter(|(_, at)| *at <= read.seq)
                .map(|(sender, _)| sender),
        };
        if let Some(other) = seer.filter(|o| o != me) {
            let seen = ServerMsg::Seen {
                conversation_id: ConversationId(key.to_owned()),
                username: me.to_owned(),
                last_read_seq: read.seq,
            };
            self.hub.push(&[other], &Outbound::frame(&seen), None);
        }
        Ok(msg)
    }

    /// Sets how `key` notifies the user, and tells all their sockets.
    pub async fn set_notify(&self, me: &str, key: &str, level: NotifyLevel) -> Reply {
        // Each is a write and a reload of the user's list: it shares the sends' budget.
        if !self.budgets.sends.allow(me) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many changes; slow down",
            ));
        }
        self.store.set_notify(key, me, level).await?;
        let msg = ServerMsg::Notify {
            conversation_id: ConversationId(key.to_owned()),
            level,
        };
        self.hub
            .push(&[me.to_owned()], &Outbound::frame(&msg), None);
        Ok(msg)
    }

    /// Checks a `send` or a change to a message and hands it to its conversation's writer,
    /// which checks it against the message, stores it, acks it and fans it out (see
    /// [`crate::writer`]). Retrying a send with the same `client_msg_id` returns the
    /// original message and stores nothing. Waits while the writer is full.
    pub async fn submit(
        &self,
        me: &str,
        conn_id: u64,
        key: &str,
        mut action: Action,
    ) -> Result<(), Refusal> {
        // Deleting: a moderator (a room admin, a server admin anywhere) deletes anyone's
        // message; everyone else only their own, which the writer checks.
        let moderating = match &action {
            Action::Change {
                seq,
                request: Request::Delete,
            } if self.moderates(me, key).await? => {
                action = Action::Change {
                    seq: *seq,
                    request: Request::Remove,
                };
                true
            }
            _ => false,
        };
        if !moderating {
            self.store.require_member(key, me).await?;
        }
        // Sends, edits, deletions and reactions share one budget: each is a stored change.
        if !self.budgets.sends.allow(me) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many messages; slow down",
            ));
        }
        self.writers
            .submit(Submission {
                conversation: Arc::from(key),
                sender: me.to_owned(),
                conn_id,
                action,
            })
            .await
    }

    /// One page of what a reconnecting client missed in `key` after `after`: each entry's
    /// position and its frame (messages with their quotes; edits with the text as it is
    /// now).
    pub async fn missed(
        &self,
        me: &str,
        key: &str,
        after: u64,
    ) -> Result<Vec<(u64, ServerMsg)>, Refusal> {
        self.store.require_member(key, me).await?;
        Ok(self.entries_after(key, after).await?)
    }

    /// [`Self::missed`] for anyone: the frames are the same for every member.
    async fn entries_after(
        &self,
        key: &str,
        after: u64,
    ) -> Result<Vec<(u64, ServerMsg)>, StoreError> {
        let entries = self.store.entries_after(key, after, RESUME_PAGE).await?;
        let messages = entries.iter().filter_map(|e| match e {
            Entry::Message(m) => Some(m),
            Entry::Change(_) => None,
        });
        let quotes = self.store.quotes(key, messages).await?;
        let mut targets: Vec<u64> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Change(c) => Some(c.target),
                Entry::Message(_) => None,
            })
            .collect();
        targets.sort_unstable();
        targets.dedup();
        let states = self.store.messages_at(key, &targets).await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| match e {
                Entry::Message(m) => {
                    let quote = m.reply_to.and_then(|r| quotes.get(&r).cloned());
                    Some((
                        m.seq,
                        ServerMsg::Message {
                            message: m.to_wire(quote),
                        },
                    ))
                }
                Entry::Change(c) => states.get(&c.target).map(|target| {
                    (
                        c.seq,
                        ServerMsg::Changed {
                            change: c.to_wire(target),
                        },
                    )
                }),
            })
            .collect())
    }

    /// `me` is typing in `key`: the other members' sockets are told, nothing is stored.
    /// Beyond `me`'s typing budget the news is dropped (it is only ever a hint, and the
    /// client says it again while the user types); a conversation `me` is not in is
    /// refused like every other path into it.
    pub async fn typing(&self, me: &str, key: &str) -> Result<(), Refusal> {
        let members = self.store.require_member(key, me).await?;
        if !self.budgets.typing.allow(me) {
            return Ok(());
        }
        let others: Vec<String> = members.iter().filter(|m| *m != me).cloned().collect();
        let msg = ServerMsg::Typing {
            conversation_id: ConversationId(key.to_owned()),
            username: me.to_owned(),
        };
        self.hub.push(&others, &Outbound::frame(&msg), None);
        Ok(())
    }

    /// Changes `me`'s display name: everyone who shares a conversation with them, and their
    /// other sockets, are told at once; the answer goes to the socket that asked.
    pub async fn set_display_name(&self, me: &str, conn_id: u64, name: &DisplayName) -> Reply {
        self.profile_budget(me)?;
        self.store.set_display_name(me, name).await?;
        self.announce_profile(me, Some(conn_id)).await
    }

    /// Sets (empty: clears) `me`'s status text, told as a new display name is.
    pub async fn set_status(&self, me: &str, conn_id: u64, status: &StatusText) -> Reply {
        self.profile_budget(me)?;
        let text = Some(status.as_str()).filter(|s| !s.is_empty());
        self.store.set_status(me, text).await?;
        self.announce_profile(me, Some(conn_id)).await
    }

    /// Sets (or with `None` removes) `me`'s picture: `(version, image, content type)`; told
    /// as a new display name is.
    pub async fn set_avatar(
        &self,
        me: &str,
        picture: Option<(&str, Vec<u8>, &str)>,
    ) -> Result<(), StoreError> {
        self.store.set_avatar(me, picture).await?;
        if let Err(refusal) = self.announce_profile(me, None).await {
            tracing::warn!(message = %refusal.message, "a new picture was not announced");
        }
        Ok(())
    }

    /// `username`'s picture: `(version, image, content type)`.
    pub async fn avatar(
        &self,
        username: &str,
    ) -> Result<Option<(String, Vec<u8>, String)>, StoreError> {
        self.store.avatar(username).await
    }

    /// A change to how one shows is a write and a message to every contact: it shares the
    /// sends' budget.
    pub fn profile_budget(&self, me: &str) -> Result<(), Refusal> {
        if self.budgets.sends.allow(me) {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many changes; slow down",
            ))
        }
    }

    /// Tells everyone who shares a conversation with `me`, and `me`'s sockets (but
    /// `skip`, which gets the answer), how `me` shows now.
    pub async fn announce_profile(&self, me: &str, skip: Option<u64>) -> Reply {
        let user = self
            .store
            .user(me)
            .await?
            .ok_or(StoreError::NoSuchUser)?
            .info();
        let msg = ServerMsg::UserUpdated { user };
        let mut to = self.contacts(me, usize::MAX).await;
        to.push(me.to_owned());
        self.hub.push(&to, &Outbound::frame(&msg), skip);
        Ok(msg)
    }

    /// Catches up with what other nodes stored whose notes never came (see `crate::bus`):
    /// members and lists are read again, the heads known move to what is stored, and the
    /// newest entry of each conversation that moved goes to its members' sockets here
    /// (each fills what comes before it from the database). `repair`: the conversations'
    /// stored `last_*` fields are repaired first (a node died before storing its own).
    pub async fn catch_up(&self, repair: bool) {
        if repair {
            if let Err(e) = self.store.repair_last_messages().await {
                tracing::warn!(error = %e, "cannot repair the conversations a silent node left");
            }
        }
        self.store.forget_cached();
        let moved = match self.store.catch_up_heads().await {
            Ok(moved) => moved,
            Err(e) => {
                tracing::warn!(error = %e, "cannot catch up with the database");
                return;
            }
        };
        for (key, _, to) in &moved {
            let newest = match self.entries_after(key, to - 1).await {
                Ok(entries) => entries.into_iter().find(|(seq, _)| seq == to),
                Err(e) => {
                    tracing::warn!(error = %e, conversation = %key, "cannot read what was caught up");
                    continue;
                }
            };
            let (Some((seq, msg)), Ok(members)) = (newest, self.store.members(key).await) else {
                continue;
            };
            self.hub.deliver(Relayed::Push {
                users: members.to_vec(),
                item: Outbound::message(
                    Arc::from(key.as_str()),
                    seq,
                    match &msg {
                        ServerMsg::Message { message } => Some(message.sender.as_str().into()),
                        _ => None,
                    },
                    msg.encode().into(),
                ),
                skip_conn: None,
            });
        }
        if !moved.is_empty() {
            tracing::info!(
                conversations = moved.len(),
                "caught up with entries other nodes stored"
            );
        }
    }

    /// Tells everyone who shares a conversation with `user` that they came or went, but
    /// through rooms of more than [`PRESENCE_ROOM_LIMIT`] members.
    pub async fn announce_presence(&self, user: &str, online: bool) {
        let contacts = self.contacts(user, PRESENCE_ROOM_LIMIT).await;
        let msg = ServerMsg::Presence {
            username: user.to_owned(),
            online,
        };
        self.hub.push(&contacts, &Outbound::frame(&msg), None);
    }

    /// Everyone who shares a conversation of at most `largest` members with `me`.
    async fn contacts(&self, me: &str, largest: usize) -> Vec<String> {
        let Ok(rows) = self.store.recent_conversations(me).await else {
            return Vec::new();
        };
        let mut all = BTreeSet::new();
        for row in rows {
            if let Ok(members) = self.store.members(&row.key).await {
                if members.len() <= largest {
                    all.extend(members.iter().cloned());
                }
            }
        }
        all.remove(me);
        all.into_iter().collect()
    }
}

/// Rooms larger than this do not tell their members when someone comes or goes: everyone
/// connecting at once (a morning, a restart) would make a message to every member per
/// member, the square of the room. Their member lists show who was online when they were
/// read; direct conversations and smaller rooms are told live. (Slack and Discord likewise
/// stop pushing presence for large groups.)
pub const PRESENCE_ROOM_LIMIT: usize = 1_000;

/// No room but the server's own may be called like it (it would pass for it).
fn not_the_default_name(name: &RoomName) -> Result<(), Refusal> {
    if name.as_str().to_lowercase() == DEFAULT_ROOM_NAME.to_lowercase() {
        return Err(Refusal::new(
            ErrorCode::InvalidInput,
            format!("room_name: \"{DEFAULT_ROOM_NAME}\" is the server's own room"),
        ));
    }
    Ok(())
}

/// The page size a listing asked for: `max` when it did not say; 1 to `max`.
fn page_size(asked: Option<u32>, max: u32) -> Result<usize, Refusal> {
    match asked {
        None => Ok(max as usize),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(_) => Err(Refusal::new(
            ErrorCode::InvalidInput,
            format!("limit: must be 1–{max}"),
        )),
    }
}
