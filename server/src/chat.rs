//! What each client frame does: the chat's rules between the socket and the store.
//!
//! Every function here checks that the user may do what they ask (membership, validity,
//! rate) before anything is written, so a refused frame changes nothing.

use app::{
    domain::{ClientMsgId, MessageBody},
    protocol::{
        ConversationId, ConversationKind, ConversationSummary, ErrorCode, Member, Message, Preview,
        RoomInfo, ServerMsg, UserInfo, DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE,
    },
};
use std::sync::Arc;
use tracing::warn;

use crate::{
    hub::{Hub, Members, Outbound},
    store::{ConversationRow, Kind, MessageRecord, StoreError, SurrealChatStore},
    writer::Submission,
    AppState,
};

/// Most users a search returns.
const SEARCH_LIMIT: u32 = 20;
/// Most messages one `resume` replays per conversation; beyond that the client is told
/// to reload the conversation's history instead.
pub const RESUME_LIMIT: u64 = 10_000;
/// Messages fetched per database round trip while resuming.
const RESUME_PAGE: u32 = 500;

/// A refusal, sent to the client as `ServerMsg::Error`.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    pub fn into_msg(self, client_msg_id: Option<String>) -> ServerMsg {
        ServerMsg::Error {
            code: self.code,
            message: self.message,
            client_msg_id,
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            // Not telling non-members whether a conversation exists keeps who-talks-to-whom
            // private.
            StoreError::NoSuchConversation | StoreError::NotMember => {
                Refusal::new(ErrorCode::NotFound, "no such conversation")
            }
            StoreError::NoSuchUser => Refusal::new(ErrorCode::NotFound, "no such user"),
            StoreError::NotARoom => Refusal::new(
                ErrorCode::InvalidInput,
                "a direct conversation has no members to join or leave",
            ),
            StoreError::UsernameTaken | StoreError::SeqTaken | StoreError::Db(_) => {
                warn!(error = %e, "store failure");
                Refusal::new(ErrorCode::Internal, "the server failed; try again")
            }
        }
    }
}

pub type Reply = Result<ServerMsg, Refusal>;

pub fn message(m: MessageRecord) -> Message {
    Message {
        conversation_id: ConversationId(m.conversation),
        seq: m.seq,
        sender: m.sender,
        body: m.body,
        client_msg_id: m.client_msg_id,
        sent_at_ms: m.sent_at,
    }
}

fn summary(state: &AppState, row: ConversationRow) -> ConversationSummary {
    let unread = row.unread();
    let peer = row.peer.map(|(username, display_name)| Member {
        online: state.hub.is_online(&username),
        user: UserInfo {
            username,
            display_name,
        },
    });
    ConversationSummary {
        title: match (&peer, row.name) {
            (Some(p), _) => p.user.display_name.clone(),
            (None, Some(name)) => name,
            (None, None) => row.key.clone(),
        },
        id: ConversationId(row.key),
        kind: match row.kind {
            Kind::Direct => ConversationKind::Direct,
            Kind::Room => ConversationKind::Room,
        },
        peer,
        last_seq: row.last_seq,
        last_read_seq: row.last_read_seq,
        unread,
        last_message: row.last_sender.map(|sender| Preview {
            sender,
            text: row.last_text.unwrap_or_default(),
            sent_at_ms: row.last_at,
        }),
        last_activity_ms: row.last_at,
    }
}

pub async fn list_conversations(state: &AppState, me: &str) -> Reply {
    let rows = state.store.recent_conversations(me).await?;
    Ok(ServerMsg::Conversations {
        conversations: rows.into_iter().map(|r| summary(state, r)).collect(),
    })
}

/// The summary of one of `me`'s conversations.
pub async fn conversation(state: &AppState, me: &str, key: &str) -> Reply {
    let row = state.store.conversation_row(me, key).await?;
    Ok(ServerMsg::Conversation {
        conversation: summary(state, row),
    })
}

pub async fn open_direct(state: &AppState, me: &str, other: &str) -> Reply {
    if me == other {
        return Err(Refusal::new(
            ErrorCode::InvalidInput,
            "pick someone other than yourself",
        ));
    }
    let key = state.store.open_direct(me, other, crate::now_ms()).await?;
    state.hub.forget_members(&key);
    conversation(state, me, &key).await
}

pub async fn create_room(state: &AppState, me: &str, name: &app::domain::RoomName) -> Reply {
    let key = state.store.create_room(me, name, crate::now_ms()).await?;
    state.hub.forget_members(&key);
    conversation(state, me, &key).await
}

pub async fn list_rooms(state: &AppState, me: &str) -> Reply {
    let rooms = state.store.rooms().await?;
    let mine: std::collections::HashSet<String> = state
        .store
        .recent_conversations(me)
        .await?
        .into_iter()
        .map(|r| r.key)
        .collect();
    Ok(ServerMsg::Rooms {
        rooms: rooms
            .into_iter()
            .map(|r| RoomInfo {
                joined: mine.contains(&r.key),
                id: ConversationId(r.key),
                name: r.name,
                member_count: r.member_count,
            })
            .collect(),
    })
}

pub async fn join_room(state: &AppState, me: &str, key: &str) -> Reply {
    state.store.join_room(key, me, crate::now_ms()).await?;
    state.hub.forget_members(key);
    conversation(state, me, key).await
}

/// Leaves a room, and tells the user's other sockets.
pub async fn leave_room(state: &AppState, me: &str, key: &str) -> Reply {
    state.store.leave_room(key, me).await?;
    state.hub.forget_members(key);
    let left = ServerMsg::Left {
        conversation_id: ConversationId(key.to_owned()),
    };
    state
        .hub
        .push(&[me.to_owned()], &Outbound::frame(&left), None);
    Ok(left)
}

pub async fn list_members(state: &AppState, me: &str, key: &str) -> Reply {
    require_member(state, key, me).await?;
    let names = members(&state.hub, &state.store, key).await?;
    let users = state.store.display_names(&names).await?;
    Ok(ServerMsg::Members {
        conversation_id: ConversationId(key.to_owned()),
        members: users
            .into_iter()
            .map(|(username, display_name)| Member {
                online: state.hub.is_online(&username),
                user: UserInfo {
                    username,
                    display_name,
                },
            })
            .collect(),
    })
}

pub async fn search_users(state: &AppState, query: &str) -> Reply {
    let q = query.trim();
    if q.is_empty() || q.chars().count() > 64 {
        return Err(Refusal::new(
            ErrorCode::InvalidInput,
            "query: must be 1–64 characters",
        ));
    }
    let users = state.store.search_users(q, SEARCH_LIMIT).await?;
    Ok(ServerMsg::Users {
        query: q.to_owned(),
        users: users
            .into_iter()
            .map(|(username, display_name)| UserInfo {
                username,
                display_name,
            })
            .collect(),
    })
}

pub async fn history(
    state: &AppState,
    me: &str,
    key: &str,
    before: Option<u64>,
    limit: Option<u32>,
) -> Reply {
    require_member(state, key, me).await?;
    let limit = limit
        .unwrap_or(DEFAULT_HISTORY_PAGE)
        .clamp(1, MAX_HISTORY_PAGE);
    // One extra row says whether an older page exists.
    let mut page = state.store.history(key, before, limit + 1).await?;
    let has_more = page.len() > limit as usize;
    if has_more {
        page.remove(0);
    }
    Ok(ServerMsg::History {
        conversation_id: ConversationId(key.to_owned()),
        messages: page.into_iter().map(message).collect(),
        has_more,
    })
}

/// Moves the read position and tells every socket of the user.
pub async fn mark_read(state: &AppState, me: &str, key: &str, seq: u64) -> Reply {
    let (read, last) = state.store.mark_read(key, me, seq).await?;
    let msg = ServerMsg::ReadState {
        conversation_id: ConversationId(key.to_owned()),
        last_read_seq: read,
        unread: last.saturating_sub(read),
    };
    state
        .hub
        .push(&[me.to_owned()], &Outbound::frame(&msg), None);
    Ok(msg)
}

/// Checks a `send` and hands it to its conversation's writer, which stores it, acks it and
/// fans it out (see [`crate::writer`]). Retrying with the same `client_msg_id` returns the
/// original message and stores nothing.
pub async fn submit(
    state: &AppState,
    me: &str,
    conn_id: u64,
    key: &str,
    client_msg_id: ClientMsgId,
    body: MessageBody,
) -> Result<(), Refusal> {
    require_member(state, key, me).await?;
    if !state.hub.allow_send(me) {
        return Err(Refusal::new(
            ErrorCode::RateLimited,
            "too many messages; slow down",
        ));
    }
    state
        .writers
        .submit(Submission {
            conversation: Arc::from(key),
            sender: me.to_owned(),
            conn_id,
            client_msg_id,
            body,
        })
        .await
}

/// The members of `key`, from the hub's cache or else the database (then cached).
pub async fn members(
    hub: &Hub,
    store: &SurrealChatStore,
    key: &str,
) -> Result<Members, StoreError> {
    if let Some(members) = hub.cached_members(key) {
        return Ok(members);
    }
    let generation = hub.members_generation();
    let members: Members = store.members(key).await?.into();
    // An unknown key is not cached: anyone could fill the cache with made-up keys.
    if !members.is_empty() {
        hub.cache_members(key, members.clone(), generation);
    }
    Ok(members)
}

/// Fails with `NotMember` (told to the client as "no such conversation") unless `me`
/// belongs to `key`.
pub async fn require_member(state: &AppState, key: &str, me: &str) -> Result<(), StoreError> {
    let members = members(&state.hub, &state.store, key).await?;
    if members.binary_search_by(|m| m.as_str().cmp(me)).is_ok() {
        Ok(())
    } else {
        Err(StoreError::NotMember)
    }
}

/// One page of what a reconnecting client missed in `key` after `after`.
pub async fn missed(
    state: &AppState,
    me: &str,
    key: &str,
    after: u64,
) -> Result<Vec<Message>, Refusal> {
    require_member(state, key, me).await?;
    Ok(state
        .store
        .messages_after(key, after, RESUME_PAGE)
        .await?
        .into_iter()
        .map(message)
        .collect())
}

/// Everyone who shares a conversation with `me`: told when `me` comes and goes.
pub async fn contacts(state: &AppState, me: &str) -> Vec<String> {
    let Ok(rows) = state.store.recent_conversations(me).await else {
        return Vec::new();
    };
    let mut all = std::collections::BTreeSet::new();
    for row in rows {
        if let Ok(members) = members(&state.hub, &state.store, &row.key).await {
            all.extend(members.iter().cloned());
        }
    }
    all.remove(me);
    all.into_iter().collect()
}
