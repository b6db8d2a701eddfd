//! The `/ws` endpoint: one [`Handler`] task per socket, speaking `app::protocol`.
//!
//! Every socket gets [`ServerMsg::Hello`] first. Frames above the protocol's size cap get a
//! typed [`ServerMsg::Error`], as do binary and undecodable frames, and change nothing; frames
//! beyond [`TRANSPORT_LIMIT_BYTES`] are not even buffered: the socket is closed with 1009. On shutdown each socket is closed with 1001
//! ("going away") so clients know to reconnect.

use app::protocol::{ClientMsg, ErrorCode, ServerMsg, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use axum::{
    extract::{
        ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket},
        State, WebSocketUpgrade,
    },
    response::Response,
};
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, Instrument};

use crate::AppState;

/// Largest message the WebSocket layer will assemble. Above the protocol's own cap so that a
/// slightly oversized frame is answered with a typed error rather than a dropped socket.
pub const TRANSPORT_LIMIT_BYTES: usize = 4 * MAX_FRAME_BYTES;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Upgrades the request and hands the socket to a [`Handler`] tracked by the server, so that
/// shutdown waits for it to say goodbye.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    let conn_id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let shutdown = state.shutdown.clone();
    let tracker = state.tasks.clone();
    ws.max_frame_size(TRANSPORT_LIMIT_BYTES)
        .max_message_size(TRANSPORT_LIMIT_BYTES)
        .on_upgrade(move |socket| {
            let handler = Handler { socket, shutdown };
            tracker.track_future(handler.run().instrument(info_span!("ws", conn_id)))
        })
}

/// Owns one socket for its whole life.
struct Handler {
    socket: WebSocket,
    shutdown: CancellationToken,
}

impl Handler {
    async fn run(mut self) {
        debug!("socket opened");
        let hello = ServerMsg::Hello {
            protocol_version: PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
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
