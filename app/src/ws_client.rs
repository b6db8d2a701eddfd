//! The browser's WebSocket to `/ws`: connects, reconnects with backoff and jitter, decodes
//! [`ServerMsg`] frames and reports the connection state. Browser-only (`hydrate`).

use futures::{channel::mpsc, SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message};
use gloo_timers::future::sleep;
use leptos::task::spawn_local;
use std::time::Duration;

use crate::components::ConnectionState;
use crate::protocol::{ClientMsg, ServerMsg};

/// Frames queued while the socket is down beyond this many are dropped (and the user's ping
/// is simply not answered): the queue must not grow without bound.
const OUTBOX_CAPACITY: usize = 64;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Handle to the page's socket; dropping it does not close the socket (the page owns it).
pub struct Socket {
    outbox: mpsc::Sender<ClientMsg>,
}

impl Socket {
    /// Opens `/ws` on the page's own host and keeps it open, reconnecting as needed.
    pub fn connect(
        on_state: impl Fn(ConnectionState) + 'static,
        on_message: impl Fn(ServerMsg) + 'static,
    ) -> Self {
        let (outbox, rx) = mpsc::channel(OUTBOX_CAPACITY);
        spawn_local(run(socket_url(), rx, on_state, on_message));
        Socket { outbox }
    }

    pub fn ping(&self, nonce: u64) {
        // A full queue means the socket has been down for a while; the status line says so.
        let _ = self.outbox.clone().try_send(ClientMsg::Ping { nonce });
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

async fn run(
    url: String,
    mut outbox: mpsc::Receiver<ClientMsg>,
    on_state: impl Fn(ConnectionState),
    on_message: impl Fn(ServerMsg),
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        on_state(ConnectionState::Connecting);
        if let Ok(ws) = WebSocket::open(&url) {
            let (mut write, read) = ws.split();
            let mut read = read.fuse();
            loop {
                futures::select! {
                    frame = read.next() => match frame {
                        Some(Ok(Message::Text(text))) => match ServerMsg::decode(&text) {
                            Ok(msg) => {
                                if let ServerMsg::Hello { protocol_version, .. } = msg {
                                    backoff = BACKOFF_MIN;
                                    on_state(ConnectionState::Connected { protocol_version });
                                    // Live delivery starts with the client's first frame;
                                    // this page keeps no history yet, so it resumes from
                                    // nothing.
                                    let start = ClientMsg::Resume { positions: Vec::new() };
                                    if write.send(Message::Text(start.encode())).await.is_err() {
                                        break;
                                    }
                                }
                                on_message(msg);
                            }
                            Err(e) => leptos::logging::warn!("undecodable frame from server: {e}"),
                        },
                        Some(Ok(Message::Bytes(_))) => {}
                        Some(Err(_)) | None => break,
                    },
                    msg = outbox.next() => match msg {
                        Some(msg) => {
                            if write.send(Message::Text(msg.encode())).await.is_err() {
                                break;
                            }
                        }
                        // Every `Socket` handle is gone: nobody can send any more.
                        None => return,
                    },
                }
            }
        }
        on_state(ConnectionState::Reconnecting);
        sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Spreads reconnects over [d/2, d] so that clients dropped together do not return together.
fn jittered(d: Duration) -> Duration {
    let r = js_random();
    d.mul_f64(0.5 + r / 2.0)
}

fn js_random() -> f64 {
    web_sys::js_sys::Math::random()
}
