//! The browser's WebSocket to `/ws`: connects, reconnects with backoff and jitter, decodes
//! [`ServerMsg`] frames and reports the connection state. Browser-only (`hydrate`).
//!
//! The first frame on every socket is the caller's (`on_open`: the chat's `resume`); frames
//! queued while the socket is down are dropped, because the chat re-sends what matters
//! (unacknowledged messages) once the `resume` completes.
//!
//! The state it reports stays honest: the browser's `offline` event drops the socket at once
//! (the socket itself may not notice a cut network for minutes), `online` reconnects without
//! waiting out the backoff, and a frame the user sends is followed by a ping (unless one is
//! already out) that must be answered within [`ANSWER_LIMIT_MS`].

use futures::{channel::mpsc, FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use gloo_timers::future::{sleep, IntervalStream};
use leptos::task::spawn_local;
use std::time::Duration;

use crate::components::ConnectionState;
use crate::protocol::{ClientMsg, ServerMsg};

/// The close code the server ends a socket with when its session ended (policy violation).
const SIGNED_OUT: u16 = 1008;

const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The page pings this often; a socket silent for [`SILENCE_LIMIT`] is presumed dead (the
/// browser may take minutes to notice a cut network by itself).
const PING_EVERY_MS: u32 = 15_000;
const SILENCE_LIMIT_MS: f64 = 40_000.0;
/// After the user sends something, the server must be heard from within this long, or the
/// socket is presumed dead. It answers a ping at once, but a socket's frames are answered in
/// order, and one before the ping may take a few hundred milliseconds on a loaded server.
const ANSWER_LIMIT_MS: f64 = 2_000.0;
/// How often an unanswered frame is checked for.
const CHECK_EVERY_MS: u32 = 250;

/// Handle to the page's socket; dropping every handle ends it.
#[derive(Clone)]
pub struct Socket {
    outbox: mpsc::UnboundedSender<ClientMsg>,
}

impl Socket {
    /// Opens `/ws` on the page's own host and keeps it open, reconnecting as needed.
    pub fn connect(
        on_state: impl Fn(ConnectionState) + 'static,
        on_open: impl Fn() -> ClientMsg + 'static,
        on_message: impl Fn(ServerMsg) + 'static,
    ) -> Self {
        let (outbox, rx) = mpsc::unbounded();
        spawn_local(run(socket_url(), rx, on_state, on_open, on_message));
        Socket { outbox }
    }

    /// Sends a frame if the socket is up; otherwise it is dropped (see the module docs).
    pub fn send(&self, msg: ClientMsg) {
        let _ = self.outbox.unbounded_send(msg);
    }

    /// Closes the socket for good (sign-out).
    pub fn close(&self) {
        self.outbox.close_channel();
    }
}

fn socket_url() -> String {
    let location = web_sys::window()
        .map(|w| w.location())
        .and_then(|l| Some((l.protocol().ok()?, l.host().ok()?)));
    match location {
        Some((protocol, host)) => {
            let scheme = if protocol == "https:" { "wss" } else { "ws" };
            format!("{scheme}://{host}/ws")
        }
        None => "ws://127.0.0.1:3000/ws".into(),
    }
}

fn browser_online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

fn now() -> f64 {
    web_sys::js_sys::Date::now()
}

async fn run(
    url: String,
    mut outbox: mpsc::UnboundedReceiver<ClientMsg>,
    on_state: impl Fn(ConnectionState),
    on_open: impl Fn() -> ClientMsg,
    on_message: impl Fn(ServerMsg),
) {
    let mut backoff = BACKOFF_MIN;
    let mut nonce = 0_u64;
    // The browser's word on the network: `true` online, `false` offline.
    let (network_tx, mut network) = mpsc::unbounded::<bool>();
    let listeners = [("online", true), ("offline", false)].map(|(name, online)| {
        let tx = network_tx.clone();
        leptos::prelude::window_event_listener_untyped(name, move |_| {
            let _ = tx.unbounded_send(online);
        })
    });
    let _listening = Listening(Some(listeners));
    loop {
        if !browser_online() {
            on_state(ConnectionState::Offline);
            while !browser_online() {
                // Back as soon as the browser says so (or checked again within a second).
                futures::select! {
                    _ = network.next() => {},
                    () = sleep(Duration::from_millis(1_000)).fuse() => {},
                }
            }
            backoff = BACKOFF_MIN;
        }
        on_state(ConnectionState::Connecting);
        if let Ok(ws) = WebSocket::open(&url) {
            let (mut write, read) = ws.split();
            let mut read = read.fuse();
            let mut pings = IntervalStream::new(PING_EVERY_MS).fuse();
            let mut checks = IntervalStream::new(CHECK_EVERY_MS).fuse();
            let mut heard = now();
            // When the server must have been heard from by (a ping is out).
            let mut answer_by: Option<f64> = None;
            loop {
                futures::select! {
                    frame = read.next() => {
                        heard = now();
                        answer_by = None;
                        match frame {
                            Some(Ok(Message::Text(text))) => match ServerMsg::decode(&text) {
                                Ok(msg) => {
                                    if let ServerMsg::Hello { protocol_version, .. } = msg {
                                        backoff = BACKOFF_MIN;
                                        // Whatever was queued for the old socket is stale.
                                        if !drain(&mut outbox) {
                                            return;
                                        }
                                        let first = on_open();
                                        if write.send(Message::Text(first.encode())).await.is_err() {
                                            break;
                                        }
                                        on_state(ConnectionState::Connected { protocol_version });
                                    }
                                    on_message(msg);
                                }
                                Err(e) => leptos::logging::warn!("undecodable frame from server: {e}"),
                            },
                            Some(Ok(Message::Bytes(_))) => {}
                            // The server ended this session (signed out elsewhere, a new
                            // password, a disabled account): reconnecting cannot help.
                            Some(Err(WebSocketError::ConnectionClose(close)))
                                if close.code == SIGNED_OUT =>
                            {
                                on_state(ConnectionState::SignedOut);
                                return;
                            }
                            Some(Err(_)) | None => break,
                        }
                    },
                    msg = outbox.next() => match msg {
                        Some(msg) => {
                            if write.send(Message::Text(msg.encode())).await.is_err() {
                                break;
                            }
                            if answer_by.is_none() {
                                nonce += 1;
                                let ping = ClientMsg::Ping { nonce }.encode();
                                if write.send(Message::Text(ping)).await.is_err() {
                                    break;
                                }
                                answer_by = Some(now() + ANSWER_LIMIT_MS);
                            }
                        }
                        // Signed out, or every handle is gone.
                        None => {
                            let _ = write.close().now_or_never();
                            on_state(ConnectionState::Closed);
                            return;
                        }
                    },
                    online = network.next() => {
                        if online == Some(false) {
                            break;
                        }
                    },
                    _ = checks.next() => {
                        if answer_by.is_some_and(|by| now() > by) {
                            break;
                        }
                    },
                    _ = pings.next() => {
                        if now() - heard > SILENCE_LIMIT_MS || !browser_online() {
                            break;
                        }
                        nonce += 1;
                        if write.send(Message::Text(ClientMsg::Ping { nonce }.encode())).await.is_err() {
                            break;
                        }
                    },
                }
            }
        }
        on_state(if browser_online() {
            ConnectionState::Reconnecting
        } else {
            ConnectionState::Offline
        });
        if !drain(&mut outbox) {
            on_state(ConnectionState::Closed);
            return;
        }
        // The network coming back ends the wait.
        futures::select! {
            _ = network.next() => backoff = BACKOFF_MIN,
            () = sleep(jittered(backoff)).fuse() => backoff = (backoff * 2).min(BACKOFF_MAX),
        }
    }
}

/// The page's `online`/`offline` listeners, removed when the socket ends for good.
struct Listening(Option<[leptos::prelude::WindowListenerHandle; 2]>);

impl Drop for Listening {
    fn drop(&mut self) {
        for handle in self.0.take().into_iter().flatten() {
            handle.remove();
        }
    }
}

/// Drops queued frames; `false` once the page has closed the socket for good.
fn drain(outbox: &mut mpsc::UnboundedReceiver<ClientMsg>) -> bool {
    loop {
        match outbox.try_recv() {
            Ok(_) => {}
            Err(mpsc::TryRecvError::Closed) => return false,
            Err(mpsc::TryRecvError::Empty) => return true,
        }
    }
}

/// Spreads reconnects over [d/2, d] so that clients dropped together do not return together.
fn jittered(d: Duration) -> Duration {
    let r = web_sys::js_sys::Math::random();
    d.mul_f64(0.5 + r / 2.0)
}
