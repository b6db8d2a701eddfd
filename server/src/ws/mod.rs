//! The `/ws` endpoint: one [`Handler`] task per socket, speaking `app::protocol`. What each
//! frame does is the [`ChatService`]'s; the order in which a socket tells its client about
//! each conversation is [`delivery`]'s; this module is the transport: upgrade checks,
//! framing, the outbox from the [`crate::hub`], heartbeats and closing.
//!
//! Every socket gets [`ServerMsg::Hello`] first. Frames above the protocol's size cap get a
//! typed [`ServerMsg::Error`], as do binary and undecodable frames, and change nothing;
//! frames beyond [`TRANSPORT_LIMIT_BYTES`] are not even buffered: the socket is closed with
//! 1009. On shutdown each socket is closed with 1001 ("going away") so clients know to
//! reconnect.

pub mod delivery;

use app::domain::ClientMsgId;
use app::protocol::{ClientMsg, ErrorCode, ServerMsg, UserInfo, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use axum::{
    extract::{
        ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket},
        State, WebSocketUpgrade,
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures::SinkExt;
use std::time::Duration;
use tokio::{sync::broadcast, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, debug_span, Instrument};

use crate::{
    auth::{AuthError, AuthState, Session},
    changes::Request,
    chat::{ChatService, Refusal},
    hub::{Hub, Outbound, Registration, Why},
    security,
    writer::Action,
};
use delivery::{Cursor, Live};

/// How often the server pings an idle socket.
const HEARTBEAT: Duration = Duration::from_secs(25);
/// A socket that has sent nothing (not even a pong) for this long is dead and closed.
const DEAD_AFTER: Duration = Duration::from_secs(60);
/// How long one frame may take to go out before the peer is deemed to have stopped reading.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing socket waits for the peer to answer its close frame.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(1);

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

/// What the socket endpoint uses; cheap to clone.
#[derive(Clone)]
pub struct Sockets {
    pub chat: ChatService,
    pub auth: AuthState,
    /// Tracks socket tasks so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// `None`: accept WebSocket upgrades whose Origin matches their Host header.
    pub public_origin: Option<String>,
    /// Most sockets one user may hold open at once.
    pub per_user: usize,
    /// Frames received from clients, all sockets together (`/metrics`).
    pub frames_in: metrics::Counter,
    /// Live messages that came after a gap, filled from the store first (`/metrics`).
    pub gap_fills: metrics::Counter,
}

/// Checks the upgrade (Origin, then session), and hands the socket to a [`Handler`] tracked
/// by the server, so that shutdown waits for it to say goodbye. A foreign Origin gets 403
/// (cross-site WebSocket hijacking), a request without a live session gets 401; neither is
/// upgraded.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(sockets): State<Sockets>,
    headers: HeaderMap,
    session: Result<Session, AuthError>,
) -> Response {
    if !security::origin_allowed(&headers, sockets.public_origin.as_deref()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "cross-origin WebSocket refused",
        );
    }
    let session = match session {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let (me, admin) = match sockets.chat.user_info(session.username.as_str()).await {
        Ok(Some(found)) => found,
        _ => return AuthError::Unauthenticated.into_response(),
    };
    let conn_id = sockets.chat.hub().next_conn_id();
    // The socket's place is taken here, before the upgrade completes: every socket counts
    // towards the cap from its upgrade until it is closed. An upgrade that never completes
    // drops its registration, which frees the place.
    let Some(registration) = sockets.chat.hub().try_register(
        &me.username,
        &session.session_id,
        conn_id,
        sockets.per_user,
    ) else {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "too many open connections for this user",
        );
    };
    let user = session.username.to_string();
    // When the device was last seen, for its owner's list of devices; the socket does not
    // wait for it.
    tokio::spawn({
        let (store, sid) = (sockets.auth.store.clone(), session.session_id.clone());
        async move {
            if let Err(e) = store
                .touch_session(&sid, crate::auth::now_secs() as i64)
                .await
            {
                debug!(error = %e, "cannot note when a session was last seen");
            }
        }
    });
    ws.max_frame_size(TRANSPORT_LIMIT_BYTES)
        .max_message_size(TRANSPORT_LIMIT_BYTES)
        // The library's defaults (128 KiB each way) would cost an idle socket about 256 KiB;
        // frames are small, and every burst is flushed at once anyway.
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            let handler = Handler {
                socket,
                me,
                admin,
                conn_id,
                outbox_open: true,
                cursor: Cursor::default(),
                started: false,
                chat: sockets.chat,
                registration,
                frames_in: sockets.frames_in,
                gap_fills: sockets.gap_fills,
            };
            // A debug span: an enabled span is entered and left at every poll of the
            // socket's task, once per delivered frame.
            sockets
                .tasks
                .track_future(handler.run().instrument(debug_span!("ws", conn_id, user)))
        })
}

/// The close frame a socket error calls for: 1009 for a message beyond
/// [`TRANSPORT_LIMIT_BYTES`], 1007 for a text frame that is not UTF-8, 1002 for another
/// protocol violation; none when the connection itself is gone.
fn close_for(error: &axum::Error) -> Option<(u16, &'static str)> {
    use tungstenite::Error;
    let cause = std::error::Error::source(error)?.downcast_ref::<Error>()?;
    match cause {
        Error::Capacity(_) => Some((close_code::SIZE, "message too big")),
        Error::Utf8(_) => Some((close_code::INVALID, "text frame is not UTF-8")),
        Error::Protocol(_) => Some((close_code::PROTOCOL, "protocol error")),
        _ => None,
    }
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, Json(body)).into_response()
}

/// Owns one socket for its whole life.
struct Handler {
    socket: WebSocket,
    me: UserInfo,
    /// The user administers the server (told to the client with the hello).
    admin: bool,
    conn_id: u64,
    /// False once the outbox said it is closed.
    outbox_open: bool,
    /// What this socket has told its client, per conversation (see [`delivery`]).
    cursor: Cursor,
    /// Live delivery starts with the client's first frame, so that a reconnecting client's
    /// `resume` is handled before any live message and nothing overtakes what it missed.
    started: bool,
    chat: ChatService,
    /// The socket's place in the hub: its outbox, and the signal to close it.
    registration: Registration,
    frames_in: metrics::Counter,
    gap_fills: metrics::Counter,
}

/// Closes sockets from outside their loops, through the hub: every socket once `shutdown`
/// is cancelled, and the sockets of each session that signs out (when sign-outs were
/// missed, the store says which sessions are still alive). One task for the server, so
/// that no socket waits on a channel or token shared with all the others.
///
/// Subscribes at once: a sign-out after this call is not missed.
pub fn close_when_told(
    hub: Hub,
    auth: AuthState,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> {
    let ended = auth.sessions_ended.subscribe();
    close_sockets_when_told(hub, auth, ended, shutdown)
}

async fn close_sockets_when_told(
    hub: Hub,
    auth: AuthState,
    mut ended: broadcast::Receiver<String>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            sid = ended.recv() => match sid {
                Ok(sid) => hub.close_sessions(&[sid.as_str()]),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let mut gone = Vec::new();
                    for sid in hub.sessions() {
                        if !auth.session_alive(&sid).await {
                            gone.push(sid);
                        }
                    }
                    let gone: Vec<&str> = gone.iter().map(|s| &**s).collect();
                    hub.close_sessions(&gone);
                }
                // Every sender is gone: the server is stopping.
                Err(broadcast::error::RecvError::Closed) => {
                    shutdown.cancelled().await;
                    break;
                }
            },
        }
    }
    hub.close_all();
}

/// Why the loop ended, and what to tell the peer.
enum Exit {
    Quiet,
    Close(u16, &'static str),
}

impl Handler {
    /// What the socket does rarely and whose futures are large (a frame's handling, store
    /// reads, presence) is boxed where it is awaited: a task's memory is its largest
    /// state, and an idle socket would otherwise hold room for them all its life.
    async fn run(mut self) {
        debug!("socket opened");
        let username = self.me.username.clone();
        if self.registration.came_online {
            Box::pin(self.chat.announce_presence(&username, true)).await;
        }
        let exit = self.serve().await;
        if let Exit::Close(code, reason) = exit {
            self.close(code, reason).await;
        }
        let Handler {
            registration, chat, ..
        } = self;
        if registration.release() {
            Box::pin(chat.announce_presence(&username, false)).await;
        }
        debug!("socket closed");
    }

    async fn serve(&mut self) -> Exit {
        let hello = ServerMsg::Hello {
            protocol_version: PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            me: self.me.clone(),
            admin: self.admin,
        };
        if self.send(&hello).await.is_err() {
            return Exit::Quiet;
        }
        // Every branch below is polled at every wake-up, once per delivered burst: none of
        // them waits on something shared with other sockets (shutdown and sign-out come
        // through the socket's own stop signal, see `close_when_told`).
        let stop = self.registration.stop.clone();
        let stopped = stop.fired_with();
        tokio::pin!(stopped);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        let mut last_heard = Instant::now();
        loop {
            if !self.outbox_open {
                // The hub dropped us: we fell too far behind.
                let _ = self.send(&ServerMsg::Lagging).await;
                return Exit::Close(close_code::AGAIN, "lagging; reconnect and resume");
            }
            tokio::select! {
                frame = self.socket.recv() => {
                    last_heard = Instant::now();
                    if matches!(frame, Some(Ok(Message::Text(_) | Message::Binary(_)))) {
                        self.frames_in.increment(1);
                    }
                    match frame {
                        Some(Ok(Message::Text(text))) => {
                            let handled = Box::pin(self.handle_text(&text)).await;
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
                out = self.registration.outbox.recv(), if self.started => {
                    if self.forward(out).await.is_err() {
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
                why = &mut stopped => match why {
                    // Cut off by the hub, started or not: it fell too far behind (told
                    // at the top of the loop).
                    Why::Lagging => self.outbox_open = false,
                    Why::SignedOut => return Exit::Close(close_code::POLICY, "signed out"),
                    Why::ShuttingDown => {
                        return Exit::Close(close_code::AWAY, "server shutting down")
                    }
                },
            }
        }
    }

    /// Forwards what the outbox gave (`None`: it is closed, the socket is lagging).
    async fn forward(&mut self, out: Option<Outbound>) -> Result<(), axum::Error> {
        match out {
            Some(out) => self.deliver_burst(out).await,
            None => {
                self.outbox_open = false;
                Ok(())
            }
        }
    }

    /// Tells the peer why its socket is being closed, where the error allows it (see
    /// [`close_for`]).
    async fn close_after_error(&mut self, error: &axum::Error) {
        if let Some((code, reason)) = close_for(error) {
            self.close(code, reason).await;
        }
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
            loop {
                match self.socket.recv().await {
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {}
                    // The stream cannot be read on (a frame too big was left unread): give
                    // the peer the time to read the close frame and hang up, rather than
                    // reset the connection under it now.
                    Some(Err(_)) => std::future::pending::<()>().await,
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
        let chat = self.chat.clone();
        let me = self.me.username.clone();
        let me = me.as_str();
        let reply = match msg {
            ClientMsg::Ping { nonce } => Ok(ServerMsg::Pong {
                nonce,
                server_time_ms: crate::clock::now_ms().max(0) as u64,
            }),
            ClientMsg::ListConversations { limit } => chat.list_conversations(me, limit).await,
            ClientMsg::OpenDirect { username } => chat.open_direct(me, username.as_str()).await,
            ClientMsg::CreateRoom { name, private } => chat.create_room(me, &name, private).await,
            ClientMsg::UpdateRoom {
                conversation_id,
                name,
                topic,
                private,
            } => {
                chat.update_room(
                    me,
                    &conversation_id.0,
                    name.as_ref(),
                    topic.as_ref(),
                    private,
                )
                .await
            }
            ClientMsg::AddMember {
                conversation_id,
                username,
            } => {
                chat.add_member(me, &conversation_id.0, username.as_str())
                    .await
            }
            ClientMsg::RemoveMember {
                conversation_id,
                username,
            } => {
                chat.remove_member(me, &conversation_id.0, username.as_str(), false)
                    .await
            }
            ClientMsg::Ban {
                conversation_id,
                username,
            } => {
                chat.remove_member(me, &conversation_id.0, username.as_str(), true)
                    .await
            }
            ClientMsg::Unban {
                conversation_id,
                username,
            } => chat.unban(me, &conversation_id.0, username.as_str()).await,
            ClientMsg::ListBans { conversation_id } => chat.list_bans(me, &conversation_id.0).await,
            ClientMsg::SetRole {
                conversation_id,
                username,
                role,
            } => {
                chat.set_role(me, &conversation_id.0, username.as_str(), role)
                    .await
            }
            ClientMsg::CreateInvite {
                conversation_id,
                hours,
            } => chat.create_invite(me, &conversation_id.0, hours).await,
            ClientMsg::ListInvites { conversation_id } => {
                chat.list_invites(me, &conversation_id.0).await
            }
            ClientMsg::RevokeInvite {
                conversation_id,
                token,
            } => chat.revoke_invite(me, &conversation_id.0, &token).await,
            ClientMsg::JoinByInvite { token } => chat.join_by_invite(me, &token).await,
            ClientMsg::ListRooms { after, limit } => {
                chat.list_rooms(me, after.as_ref().map(|a| a.0.as_str()), limit)
                    .await
            }
            ClientMsg::JoinRoom { conversation_id } => chat.join_room(me, &conversation_id.0).await,
            ClientMsg::LeaveRoom { conversation_id } => {
                chat.leave_room(me, &conversation_id.0).await
            }
            ClientMsg::ListMembers {
                conversation_id,
                after,
                limit,
            } => {
                chat.list_members(me, &conversation_id.0, after.as_deref(), limit)
                    .await
            }
            ClientMsg::SearchUsers { query } => chat.search_users(me, &query).await,
            ClientMsg::SearchRooms { query } => chat.search_rooms(me, &query).await,
            ClientMsg::SearchMessages {
                query,
                conversation_id,
                from,
                limit,
            } => {
                chat.search_messages(
                    me,
                    &query,
                    conversation_id.as_ref().map(|c| c.0.as_str()),
                    from.as_ref().map(|u| u.as_str()),
                    limit,
                )
                .await
            }
            ClientMsg::History {
                conversation_id,
                before_seq,
                limit,
            } => {
                let reply = chat
                    .history(me, &conversation_id.0, before_seq, limit)
                    .await;
                if let (None, Ok(ServerMsg::History { to_seq, .. })) = (before_seq, &reply) {
                    if *to_seq > 0 {
                        self.cursor.history_newest(&conversation_id.0, *to_seq);
                    }
                }
                reply
            }
            ClientMsg::MarkRead {
                conversation_id,
                seq,
            } => chat.mark_read(me, &conversation_id.0, seq).await,
            ClientMsg::SetNotify {
                conversation_id,
                level,
            } => chat.set_notify(me, &conversation_id.0, level).await,
            ClientMsg::Send {
                conversation_id,
                client_msg_id,
                body,
                reply_to,
                attachments,
            } => {
                let action = Action::Send {
                    client_msg_id,
                    body,
                    reply_to,
                    attachments,
                };
                return self.submit(&conversation_id.0, action).await;
            }
            ClientMsg::Edit {
                conversation_id,
                seq,
                body,
            } => {
                return self
                    .change(&conversation_id.0, seq, Request::Edit(body))
                    .await
            }
            ClientMsg::Delete {
                conversation_id,
                seq,
            } => return self.change(&conversation_id.0, seq, Request::Delete).await,
            ClientMsg::React {
                conversation_id,
                seq,
                emoji,
            } => {
                return self
                    .change(&conversation_id.0, seq, Request::React(emoji))
                    .await
            }
            ClientMsg::Unreact {
                conversation_id,
                seq,
                emoji,
            } => {
                return self
                    .change(&conversation_id.0, seq, Request::Unreact(emoji))
                    .await
            }
            ClientMsg::SetDisplayName { display_name } => {
                chat.set_display_name(me, self.conn_id, &display_name).await
            }
            ClientMsg::SetStatus { status } => chat.set_status(me, self.conn_id, &status).await,
            // Answered only when refused.
            ClientMsg::Typing { conversation_id } => {
                return match chat.typing(me, &conversation_id.0).await {
                    Ok(()) => Ok(()),
                    Err(refusal) => self.send(&refusal.into_msg(None)).await,
                };
            }
            ClientMsg::Resume { positions } => {
                for p in positions {
                    self.replay(&p.conversation_id.0, p.seq, None).await?;
                }
                Ok(ServerMsg::Resumed)
            }
        };
        let reply = reply.unwrap_or_else(|r: Refusal| r.into_msg(None));
        self.send(&reply).await
    }

    /// Hands a change to the message at `seq` of `key` to its writer (see [`Self::submit`]).
    async fn change(&mut self, key: &str, seq: u64, request: Request) -> Result<(), axum::Error> {
        self.submit(key, Action::Change { seq, request }).await
    }

    /// Hands a send or a change to its conversation's writer. The ack, the change or a
    /// refusal comes back through the outbox, in order with the conversation's messages.
    /// While the writer's queue is full this socket keeps forwarding its own outbox, so
    /// that a slow database never makes a sender look like a lagging reader.
    async fn submit(&mut self, key: &str, action: Action) -> Result<(), axum::Error> {
        let id = action_id(&action);
        if let Some(id) = &id {
            self.cursor.sending(id);
        }
        let chat = self.chat.clone();
        let me = self.me.username.clone();
        let submit = chat.submit(&me, self.conn_id, key, action);
        tokio::pin!(submit);
        let submitted = loop {
            tokio::select! {
                biased;
                submitted = &mut submit => break submitted,
                out = self.registration.outbox.recv(), if self.started && self.outbox_open => {
                    self.forward(out).await?;
                }
            }
        };
        match submitted {
            Ok(()) => Ok(()),
            Err(refusal) => {
                if let Some(id) = &id {
                    self.cursor.refused(id);
                }
                self.send(&refusal.into_msg(id)).await
            }
        }
    }

    /// Forwards `first` and whatever else the outbox already holds (up to [`BURST`] items)
    /// with one flush: a committed batch reaches a socket as several items at once, and one
    /// write for all of them costs one system call instead of one each. The burst as a
    /// whole gets [`WRITE_TIMEOUT`] (one timer per burst, not one per frame).
    async fn deliver_burst(&mut self, first: Outbound) -> Result<(), axum::Error> {
        let burst = async {
            self.deliver(first).await?;
            for _ in 1..BURST {
                let Ok(out) = self.registration.outbox.try_recv() else {
                    break;
                };
                self.deliver(out).await?;
            }
            self.socket.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, burst)
            .await
            .unwrap_or_else(|_| Err(write_timed_out()))
    }

    /// Forwards one item from the hub, as the cursor says (see [`delivery`]). Buffered:
    /// the caller flushes, and bounds the time it takes.
    async fn deliver(&mut self, out: Outbound) -> Result<(), axum::Error> {
        let frame = match out {
            Outbound::Frame(frame) => frame,
            Outbound::Message(item) => {
                let key = &*item.conversation;
                match self.cursor.live(key, item.seq) {
                    Live::Deliver => {}
                    Live::Skip => return Ok(()),
                    Live::Gap { after } => {
                        self.gap_fills.increment(1);
                        // Everything below `seq` is stored: fetch the gap, which may
                        // include `seq` itself.
                        Box::pin(self.replay(key, after, None)).await?;
                        if !self.cursor.after_fill(key, item.seq) {
                            return Ok(());
                        }
                    }
                }
                if item.sender.as_deref() == Some(self.me.username.as_str())
                    && self.cursor.awaiting_acks()
                {
                    self.as_ack_if_awaited_frame(key, item.frame.clone())
                } else {
                    item.frame.clone()
                }
            }
            Outbound::Ack(ack) => {
                let key = &*ack.conversation;
                if !self.cursor.ack_due(key, ack.seq, &ack.client_msg_id) {
                    return Ok(());
                }
                if let Some(after) = self.cursor.before_ack(key, ack.seq) {
                    Box::pin(self.replay(key, after, Some(ack.seq))).await?;
                }
                self.cursor.acked(key, ack.seq);
                ack.frame
            }
        };
        // Within the burst's timeout.
        self.socket.feed(Message::Text(frame)).await
    }

    /// Sends the stored messages of `key` after `after` (and below `until`, if given) that
    /// this socket has not told its client, in order, page by page.
    async fn replay(
        &mut self,
        key: &str,
        mut after: u64,
        until: Option<u64>,
    ) -> Result<(), axum::Error> {
        let start = after;
        let mut begun = false;
        loop {
            let page = match self.chat.missed(&self.me.username, key, after).await {
                Ok(page) => page,
                Err(refusal) => return self.send(&refusal.into_msg(None)).await,
            };
            // Only once the user is known to be a member: the cursor holds positions of
            // the user's own conversations, whatever ids a client sends.
            if !begun {
                self.cursor.begin_replay(key, after);
                begun = true;
            }
            let seqs: Vec<u64> = page.iter().map(|(seq, _)| *seq).collect();
            let step = self.cursor.replay_page(key, &seqs, until);
            let mut page: Vec<Option<ServerMsg>> =
                page.into_iter().map(|(_, msg)| Some(msg)).collect();
            for i in step.send {
                if let Some(msg) = page[i].take() {
                    let msg = self.as_ack_if_awaited(key, msg);
                    self.send(&msg).await?;
                }
            }
            let Some(last) = step.last.filter(|_| !step.done) else {
                return Ok(());
            };
            after = last;
            if after - start >= crate::chat::RESUME_LIMIT {
                let e = ServerMsg::error(
                    ErrorCode::InvalidInput,
                    format!(
                        "more than {} missed changes in {key}; reload its history",
                        crate::chat::RESUME_LIMIT
                    ),
                );
                return self.send(&e).await;
            }
        }
    }

    /// A replayed message that is one of this socket's sends whose ack has not come goes
    /// as that ack, in its place (see [`delivery`]).
    fn as_ack_if_awaited(&mut self, key: &str, msg: ServerMsg) -> ServerMsg {
        match msg {
            ServerMsg::Message { message }
                if message.sender == self.me.username
                    && self
                        .cursor
                        .own_send(key, message.seq, &message.client_msg_id) =>
            {
                ServerMsg::Ack {
                    client_msg_id: message.client_msg_id.clone(),
                    message,
                }
            }
            msg => msg,
        }
    }

    /// [`Self::as_ack_if_awaited`] for a live frame of the user's own message (rare: one
    /// that reached this socket from another node or a catch-up before its ack).
    fn as_ack_if_awaited_frame(&mut self, key: &str, frame: Utf8Bytes) -> Utf8Bytes {
        let Ok(msg) = ServerMsg::decode(frame.as_str()) else {
            return frame;
        };
        match self.as_ack_if_awaited(key, msg) {
            ack @ ServerMsg::Ack { .. } => ack.encode().into(),
            _ => frame,
        }
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
            Err(_) => Err(write_timed_out()),
        }
    }
}

/// The error of a write that did not finish within [`WRITE_TIMEOUT`].
fn write_timed_out() -> axum::Error {
    debug!("peer stopped reading; dropping the socket");
    axum::Error::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "write timed out",
    ))
}

/// The `client_msg_id` a refusal of this action names (sends only).
fn action_id(action: &Action) -> Option<String> {
    match action {
        Action::Send { client_msg_id, .. } => Some(client_msg_id.to_string()),
        Action::Change { .. } => None,
    }
}
