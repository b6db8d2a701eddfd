//! The `/ws` endpoint: one [`Handler`] task per socket, speaking `app::protocol`.
//!
//! Every socket gets [`ServerMsg::Hello`] first. Frames above the protocol's size cap get a
//! typed [`ServerMsg::Error`], as do binary and undecodable frames, and change nothing; frames
//! beyond [`TRANSPORT_LIMIT_BYTES`] are not even buffered: the socket is closed with 1009. On shutdown each socket is closed with 1001
//! ("going away") so clients know to reconnect.

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
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, Instrument};

use crate::AppState;

/// Largest message the WebSocket layer will assemble. Above the protocol's own cap so that a
/// slightly oversized frame is answered with a typed error rather than a dropped socket.
pub const TRANSPORT_LIMIT_BYTES: usize = 4 * MAX_FRAME_BYTES;

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
    let conn_id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let shutdown = state.shutdown.clone();
    let ended = state.sessions_ended.subscribe();
    let tracker = state.tasks.clone();
    let user = session.username.to_string();
    ws.max_frame_size(TRANSPORT_LIMIT_BYTES)
        .max_message_size(TRANSPORT_LIMIT_BYTES)
        .on_upgrade(move |socket| {
            let handler = Handler {
                socket,
                shutdown,
                ended,
                session_id: session.session_id,
                me,
            };
            tracker.track_future(handler.run().instrument(info_span!("ws", conn_id, user)))
        })
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
    shutdown: CancellationToken,
    /// Sessions signing out; ours closes the socket.
    ended: broadcast::Receiver<String>,
    session_id: String,
    me: UserInfo,
}

impl Handler {
    async fn run(mut self) {
        debug!("socket opened");
        let hello = ServerMsg::Hello {
            protocol_version: PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            me: self.me.clone(),
        };
        if self.send(&hello).await.is_err() {
            return;
        }
        loop {
            let frame = tokio::select! {
                frame = self.socket.recv() => frame,
                () = self.shutdown.cancelled() => {
                    let _ = self
                        .socket
                        .send(Message::Close(Some(CloseFrame {
                            code: close_code::AWAY,
                            reason: Utf8Bytes::from_static("server shutting down"),
                        })))
                        .await;
                    break;
                }
                ended = self.ended.recv() => {
                    match ended {
                        Ok(sid) if sid == self.session_id => {}
                        // Missed some sign-outs: ours may have been one of them.
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        _ => continue,
                    }
                    let _ = self
                        .socket
                        .send(Message::Close(Some(CloseFrame {
                            code: close_code::POLICY,
                            reason: Utf8Bytes::from_static("signed out"),
                        })))
                        .await;
                    break;
                }
            };
            let reply = match frame {
                Some(Ok(Message::Text(text))) => Some(self.handle_text(&text)),
                Some(Ok(Message::Binary(_))) => Some(ServerMsg::error(
                    ErrorCode::UnsupportedFrame,
                    "binary frames are not part of the protocol; send JSON text frames",
                )),
                // axum answers pings itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    debug!(error = %e, "socket error");
                    self.close_after_error(&e).await;
                    break;
                }
            };
            if let Some(reply) = reply {
                if self.send(&reply).await.is_err() {
                    break;
                }
            }
        }
        debug!("socket closed");
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
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await;
    }

    fn handle_text(&self, text: &str) -> ServerMsg {
        match ClientMsg::decode(text) {
            Ok(ClientMsg::Ping { nonce }) => ServerMsg::Pong {
                nonce,
                server_time_ms: now_ms(),
            },
            Err(error) => error,
        }
    }

    async fn send(&mut self, msg: &ServerMsg) -> Result<(), axum::Error> {
        self.socket.send(Message::Text(msg.encode().into())).await
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
