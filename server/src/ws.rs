//! The `/ws` endpoint: one [`Handler`] task per socket, speaking `app::protocol`. What each
//! frame does is in [`crate::chat`]; this module is the transport: upgrade checks, framing,
//! the outbox from the [`crate::hub`], heartbeats, resume bookkeeping and closing.
//!
//! Every socket gets [`ServerMsg::Hello`] first. Frames above the protocol's size cap get a
//! typed [`ServerMsg::Error`], as do binary and undecodable frames, and change nothing; frames
//! beyond [`TRANSPORT_LIMIT_BYTES`] are not even buffered: the socket is closed with 1009. On shutdown each socket is closed with 1001
//! ("going away") so clients know to reconnect.

use app::domain::ClientMsgId;
use app::protocol::{ClientMsg, ErrorCode, ServerMsg, UserInfo, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use axum::{
    extract::{
        ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket},
        State, WebSocketUpgrade,
    },
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures::SinkExt;
use std::{
    collections::{BTreeSet, HashMap},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{
    sync::{broadcast, mpsc},
    time::Instant,
};
use tracing::{debug, info_span, Instrument};

use crate::{
    chat::{self, Refusal},
    hub::Outbound,
    AppState,
};

/// How often the server pings an idle socket.
const HEARTBEAT: Duration = Duration::from_secs(25);
/// A socket that has sent nothing (not even a pong) for this long is dead and closed.
const DEAD_AFTER: Duration = Duration::from_secs(60);
/// How long one frame may take to go out before the peer is deemed to have stopped reading.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most acked-ahead `seq`s one socket remembers per conversation (see `Handler::acked`).
const MAX_ACKED_AHEAD: usize = 1024;
/// How long a closing socket waits for the peer to answer its close frame.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(1);
/// Most sockets one user may hold open at once.
pub const MAX_SOCKETS_PER_USER: usize = 32;

/// Largest message the WebSocket layer will assemble. Above the protocol's own cap so that a
/// slightly oversized frame is answered with a typed error rather than a dropped socket.
pub const TRANSPORT_LIMIT_BYTES: usize = 4 * MAX_FRAME_BYTES;

/// Initial read buffer per socket; it grows for a larger frame.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Frames buffered for a socket before they are written out without waiting for a flush.
/// Allocated only once something is buffered: an idle socket does not pay for it.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// Most outbox items written with one flush (see `Handler::deliver_burst`).
const BURST: usize = 64;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Checks the upgrade (Origin, then session), and hands the socket to a [`Handler`] tracked
/// by the server, so that shutdown waits for it to say goodbye. A foreign Origin gets 403
/// (cross-site WebSocket hijacking), a missing or dead session 401; neither is upgraded.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    if !origin_allowed(&headers, state.public_origin.as_deref()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "cross-origin WebSocket refused",
        );
    }
    let session = match crate::auth::authenticate(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let me = match state.store.user(session.username.as_str()).await {
        Ok(Some(u)) => UserInfo {
            username: u.username.to_string(),
            display_name: u.display_name,
        },
        _ => return crate::auth::AuthError::Unauthenticated.into_response(),
    };
    if state.hub.socket_count(&me.username) >= MAX_SOCKETS_PER_USER {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "too many open connections for this user",
        );
    }
    let conn_id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let ended = state.sessions_ended.subscribe();
    let tracker = state.tasks.clone();
    let user = session.username.to_string();
    ws.max_frame_size(TRANSPORT_LIMIT_BYTES)
        .max_message_size(TRANSPORT_LIMIT_BYTES)
        // The library's defaults (128 KiB each way) would cost an idle socket about 256 KiB;
        // frames are small, and every burst is flushed at once anyway.
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            // Registered before the hello: nothing sent after it can be missed.
            let (outbox, came_online) = state.hub.register(&me.username, conn_id);
            let handler = Handler {
                socket,
                ended,
                session_id: session.session_id,
                me,
                conn_id,
                outbox,
                next: HashMap::new(),
                acked: HashMap::new(),
                started: false,
                state,
            };
            tracker.track_future(
                handler
                    .run(came_online)
                    .instrument(info_span!("ws", conn_id, user)),
            )
        })
}

/// Tells everyone who shares a conversation with `user` that they came or went.
async fn announce_presence(state: AppState, user: String, online: bool) {
    let contacts = chat::contacts(&state, &user).await;
    let msg = ServerMsg::Presence {
        username: user,
        online,
    };
    state.hub.push(&contacts, &Outbound::frame(&msg), None);
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, Json(body)).into_response()
}

/// Browsers always send `Origin` on WebSocket upgrades; it must be the configured public
/// origin, or else the origin of the Host the request was sent to. Clients that send no
/// Origin are not browsers and cannot be hijacked this way (they still need a session).
fn origin_allowed(headers: &HeaderMap, public_origin: Option<&str>) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    match public_origin {
        Some(allowed) => origin == allowed,
        None => {
            let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
                return false;
            };
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        }
    }
}

/// Owns one socket for its whole life.
struct Handler {
    socket: WebSocket,
    /// Sessions signing out; ours closes the socket.
    ended: broadcast::Receiver<String>,
    session_id: String,
    me: UserInfo,
    conn_id: u64,
    /// What the hub routes to this socket. Closed by the hub when the socket lags.
    outbox: mpsc::Receiver<Outbound>,
    /// Per conversation, the next `seq` this socket must deliver. Live messages below it are
    /// copies of what a `resume` already sent and are skipped; one above it means a gap,
    /// filled from the database first. So each conversation reaches the client in order,
    /// once.
    next: HashMap<String, u64>,
    /// Per conversation, `seq`s this socket was sent as `ack`s at or beyond its `next`:
    /// the sender already has them, so deliveries and gap fills skip them.
    acked: HashMap<String, BTreeSet<u64>>,
    /// Live delivery starts with the client's first frame, so that a reconnecting client's
    /// `resume` is handled before any live message and nothing overtakes what it missed.
    started: bool,
    state: AppState,
}

/// Why the loop ended, and what to tell the peer.
enum Exit {
    Quiet,
    Close(u16, &'static str),
}

impl Handler {
    async fn run(mut self, came_online: bool) {
        debug!("socket opened");
        let username = self.me.username.clone();
        if came_online {
            announce_presence(self.state.clone(), username.clone(), true).await;
        }
        let exit = self.serve().await;
        if let Exit::Close(code, reason) = exit {
            self.close(code, reason).await;
        }
        if self.state.hub.unregister(&username, self.conn_id) {
            announce_presence(self.state.clone(), username, false).await;
        }
        debug!("socket closed");
    }

    async fn serve(&mut self) -> Exit {
        let hello = ServerMsg::Hello {
            protocol_version: PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            me: self.me.clone(),
        };
        if self.send(&hello).await.is_err() {
            return Exit::Quiet;
        }
        let shutdown = self.state.shutdown.clone();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                frame = self.socket.recv() => {
                    last_heard = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(text))) => {
                            let handled = self.handle_text(&text).await;
                            self.started = true;
                            if handled.is_err() {
                                return Exit::Quiet;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let e = ServerMsg::error(
                                ErrorCode::UnsupportedFrame,
                                "binary frames are not part of the protocol; send JSON text frames",
                            );
                            if self.send(&e).await.is_err() {
                                return Exit::Quiet;
                            }
                        }
                        // axum answers pings itself; a pong proves the peer is alive.
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | None => return Exit::Quiet,
                        Some(Err(e)) => {
                            debug!(error = %e, "socket error");
                            self.close_after_error(&e).await;
                            return Exit::Quiet;
                        }
                    }
                }
                out = self.outbox.recv(), if self.started => {
                    let Some(out) = out else {
                        // The hub dropped us: we fell too far behind.
                        let _ = self.send(&ServerMsg::Lagging).await;
                        return Exit::Close(close_code::AGAIN, "lagging; reconnect and resume");
                    };
                    if self.deliver_burst(out).await.is_err() {
                        return Exit::Quiet;
                    }
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > DEAD_AFTER {
                        debug!("no sign of life; closing");
                        return Exit::Close(close_code::AWAY, "no heartbeat");
                    }
                    if self.write(Message::Ping(Default::default())).await.is_err() {
                        return Exit::Quiet;
                    }
                }
                () = shutdown.cancelled() => {
                    return Exit::Close(close_code::AWAY, "server shutting down");
                }
                ended = self.ended.recv() => {
                    match ended {
                        Ok(sid) if sid == self.session_id => {}
                        // Missed some sign-outs: ours may have been one of them.
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            if crate::auth::session_alive(&self.state, &self.session_id).await {
                                continue;
                            }
                        }
                        _ => continue,
                    }
                    return Exit::Close(close_code::POLICY, "signed out");
                }
            }
        }
    }

    /// Tells the peer why its socket is being closed, where the error allows it: 1009 for a
    /// message beyond [`TRANSPORT_LIMIT_BYTES`], 1002 for a protocol violation.
    async fn close_after_error(&mut self, error: &axum::Error) {
        // The WebSocket library's error type is not re-exported by axum; its message is the
        // only stable handle on the cause.
        let text = error.to_string();
        let (code, reason) = if text.contains("Space limit exceeded") {
            (close_code::SIZE, "message too big")
        } else if text.contains("Protocol error") || text.contains("Utf8") {
            (close_code::PROTOCOL, "protocol error")
        } else {
            return;
        };
        self.close(code, reason).await;
    }

    /// Sends a close frame; the socket may already be gone, which is fine.
    ///
    /// Then it waits (briefly) for the peer's close reply, reading and dropping whatever the
    /// peer sent meanwhile: closing a TCP connection with unread data makes the kernel send a
    /// reset, and a reset can destroy the close frame before the peer reads it.
    async fn close(&mut self, code: u16, reason: &'static str) {
        let sent = self
            .write(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await;
        if sent.is_err() {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, async {
            while let Some(Ok(frame)) = self.socket.recv().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }

    /// Handles one client frame; `Err` only when the socket itself failed.
    async fn handle_text(&mut self, text: &str) -> Result<(), axum::Error> {
        let msg = match ClientMsg::decode(text) {
            Ok(msg) => msg,
            Err(error) => {
                // A refused `send` names its `client_msg_id` when the frame has a readable
                // one, so the client can mark that message failed.
                let client_msg_id = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .filter(|v| v["type"] == "send")
                    .and_then(|v| v["client_msg_id"].as_str().map(str::to_owned))
                    .filter(|id| ClientMsgId::parse(id).is_ok());
                let reply = ServerMsg::Error {
                    code: error.code,
                    message: error.message,
                    client_msg_id,
                };
                return self.send(&reply).await;
            }
        };
        let state = &self.state;
        let me = self.me.username.as_str();
        let reply = match msg {
            ClientMsg::Ping { nonce } => Ok(ServerMsg::Pong {
                nonce,
                server_time_ms: now_ms(),
            }),
            ClientMsg::ListConversations => chat::list_conversations(state, me).await,
            ClientMsg::OpenDirect { username } => {
                chat::open_direct(state, me, username.as_str()).await
            }
            ClientMsg::CreateRoom { name } => chat::create_room(state, me, &name).await,
            ClientMsg::ListRooms => chat::list_rooms(state, me).await,
            ClientMsg::JoinRoom { conversation_id } => {
                chat::join_room(state, me, &conversation_id.0).await
            }
            ClientMsg::LeaveRoom { conversation_id } => {
                chat::leave_room(state, me, &conversation_id.0).await
            }
            ClientMsg::ListMembers { conversation_id } => {
                chat::list_members(state, me, &conversation_id.0).await
            }
            ClientMsg::SearchUsers { query } => chat::search_users(state, &query).await,
            ClientMsg::History {
                conversation_id,
                before_seq,
                limit,
            } => {
                let reply = chat::history(state, me, &conversation_id.0, before_seq, limit).await;
                // The newest page tells the client everything up to its last message: live
                // copies of those are not sent again.
                if let (None, Ok(ServerMsg::History { messages, .. })) = (before_seq, &reply) {
                    if let Some(last) = messages.last() {
                        let next = self.next.entry(conversation_id.0.clone()).or_insert(0);
                        *next = (*next).max(last.seq + 1);
                        self.skip_acked(&conversation_id.0);
                    }
                }
                reply
            }
            ClientMsg::MarkRead {
                conversation_id,
                seq,
            } => chat::mark_read(state, me, &conversation_id.0, seq).await,
            ClientMsg::Send {
                conversation_id,
                client_msg_id,
                body,
            } => {
                // The ack (or a failure to store) comes back through the outbox, in order
                // with the conversation's messages; meanwhile this socket reads on.
                let id = client_msg_id.to_string();
                return match chat::submit(
                    state,
                    me,
                    self.conn_id,
                    &conversation_id.0,
                    client_msg_id,
                    body,
                )
                .await
                {
                    Ok(()) => Ok(()),
                    Err(refusal) => self.send(&refusal.into_msg(Some(id))).await,
                };
            }
            ClientMsg::Resume { positions } => {
                for p in positions {
                    self.resume(&p.conversation_id.0, p.seq).await?;
                }
                Ok(ServerMsg::Resumed)
            }
        };
        let reply = reply.unwrap_or_else(|r: Refusal| r.into_msg(None));
        self.send(&reply).await
    }

    /// Forwards `first` and whatever else the outbox already holds (up to [`BURST`] items)
    /// with one flush: a committed batch reaches a socket as several items at once, and one
    /// write for all of them costs one system call instead of one each.
    async fn deliver_burst(&mut self, first: Outbound) -> Result<(), axum::Error> {
        self.deliver(first).await?;
        for _ in 1..BURST {
            let Ok(out) = self.outbox.try_recv() else {
                break;
            };
            self.deliver(out).await?;
        }
        self.timed(|socket| socket.flush()).await
    }

    /// Forwards one item from the hub, keeping each conversation in order and without
    /// repeats (see [`Handler::next`]). Buffered: the caller flushes.
    async fn deliver(&mut self, out: Outbound) -> Result<(), axum::Error> {
        let frame = match out {
            Outbound::Frame(frame) => frame,
            Outbound::Message {
                conversation,
                seq,
                frame,
            } => {
                match self.next.get(&*conversation).copied() {
                    Some(next) if seq < next => return Ok(()),
                    Some(next) if seq > next => {
                        // Everything below `seq` is stored: fetch the gap, which may
                        // include `seq` itself.
                        self.resume(&conversation, next - 1).await?;
                        if self.next.get(&*conversation).is_some_and(|&n| seq < n) {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
                self.next.insert(conversation.to_string(), seq + 1);
                self.skip_acked(&conversation);
                frame
            }
            Outbound::Ack {
                conversation,
                seq,
                frame,
            } => {
                self.before_ack(&conversation, seq).await?;
                frame
            }
        };
        self.timed(|socket| socket.feed(Message::Text(frame))).await
    }

    /// Remembers that this socket was told `seq` by an `ack`, so that it is not also
    /// delivered as a `message` (by a gap fill, for instance).
    fn note_acked(&mut self, key: &str, seq: u64) {
        match self.next.get(key) {
            Some(&next) if seq < next => {}
            _ => {
                let acked = self.acked.entry(key.to_owned()).or_default();
                acked.insert(seq);
                // A socket that only ever sends in a conversation never advances `next`
                // there; keep the newest few (forgetting one costs at most a repeat).
                if acked.len() > MAX_ACKED_AHEAD {
                    acked.pop_first();
                }
                self.skip_acked(key);
            }
        }
    }

    /// Moves `next` past acked `seq`s it has reached, and forgets those below it.
    fn skip_acked(&mut self, key: &str) {
        let Some(acked) = self.acked.get_mut(key) else {
            return;
        };
        if let Some(next) = self.next.get_mut(key) {
            while acked.first().is_some_and(|&s| s <= *next) {
                let s = acked.pop_first().expect("checked non-empty");
                if s == *next {
                    *next += 1;
                }
            }
        }
        if acked.is_empty() {
            self.acked.remove(key);
        }
    }

    /// Replays what this socket missed in one conversation after `after`, in order, and
    /// moves the conversation's next expected `seq` past it.
    async fn resume(&mut self, key: &str, after: u64) -> Result<(), axum::Error> {
        self.replay(key, after, None).await
    }

    /// Sends the stored messages of `key` after `after` (and below `until`, if given) that
    /// this socket has not been told of, in order, moving `next` past them.
    async fn replay(
        &mut self,
        key: &str,
        mut after: u64,
        until: Option<u64>,
    ) -> Result<(), axum::Error> {
        let me = self.me.username.clone();
        let start = after;
        let next = self
            .next
            .entry(key.to_owned())
            .or_insert(after.saturating_add(1));
        *next = (*next).max(after.saturating_add(1));
        loop {
            let page = match chat::missed(&self.state, &me, key, after).await {
                Ok(page) => page,
                Err(refusal) => return self.send(&refusal.into_msg(None)).await,
            };
            let mut reached_until = false;
            let mut last = None;
            for message in page {
                if until.is_some_and(|u| message.seq >= u) {
                    reached_until = true;
                    break;
                }
                last = Some(message.seq);
                let own = self
                    .acked
                    .get(key)
                    .is_some_and(|acked| acked.contains(&message.seq));
                if !own {
                    self.send(&ServerMsg::Message { message }).await?;
                }
            }
            let Some(last) = last else {
                return Ok(());
            };
            after = last;
            let next = self.next.entry(key.to_owned()).or_insert(last + 1);
            *next = (*next).max(last + 1);
            self.skip_acked(key);
            if reached_until {
                return Ok(());
            }
            if after - start >= chat::RESUME_LIMIT {
                let e = ServerMsg::error(
                    ErrorCode::InvalidInput,
                    format!(
                        "more than {} missed messages in {key}; reload its history",
                        chat::RESUME_LIMIT
                    ),
                );
                return self.send(&e).await;
            }
        }
    }

    /// Before an `ack` for `seq` goes out: every earlier message of the conversation that
    /// this socket is owed goes first, so that the client sees `seq`s in order (a message
    /// fanned out just before ours may still sit in this socket's outbox).
    async fn before_ack(&mut self, key: &str, seq: u64) -> Result<(), axum::Error> {
        if let Some(&next) = self.next.get(key) {
            if next < seq {
                self.replay(key, next - 1, Some(seq)).await?;
            }
        }
        self.note_acked(key, seq);
        Ok(())
    }

    async fn send(&mut self, msg: &ServerMsg) -> Result<(), axum::Error> {
        self.write(Message::Text(msg.encode().into())).await
    }

    /// Writes one frame and flushes (with whatever was buffered before it).
    async fn write(&mut self, frame: Message) -> Result<(), axum::Error> {
        self.timed(|socket| socket.send(frame)).await
    }

    /// Runs one write operation on the socket, giving up after [`WRITE_TIMEOUT`]: a peer
    /// that stops reading fills its TCP buffers, and would otherwise hold this task (and
    /// its memory) forever.
    async fn timed<'a, F>(
        &'a mut self,
        op: impl FnOnce(&'a mut WebSocket) -> F,
    ) -> Result<(), axum::Error>
    where
        F: std::future::Future<Output = Result<(), axum::Error>> + 'a,
    {
        match tokio::time::timeout(WRITE_TIMEOUT, op(&mut self.socket)).await {
            Ok(done) => done,
            Err(_) => {
                debug!("peer stopped reading; dropping the socket");
                Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "write timed out",
                )))
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(host));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn only_same_or_configured_origins_may_open_sockets() {
        let host = "127.0.0.1:3000";
        assert!(origin_allowed(
            &headers(Some("http://127.0.0.1:3000"), host),
            None
        ));
        assert!(origin_allowed(&headers(None, host), None));
        assert!(!origin_allowed(
            &headers(Some("http://evil.example"), host),
            None
        ));
        assert!(!origin_allowed(
            &headers(Some("http://127.0.0.1:3001"), host),
            None
        ));
        let public = Some("https://chat.example.com");
        assert!(origin_allowed(
            &headers(Some("https://chat.example.com"), host),
            public
        ));
        assert!(!origin_allowed(
            &headers(Some("http://127.0.0.1:3000"), host),
            public
        ));
    }
}
