//! Shows the live state of the page's WebSocket and lets the user ping the server.
//!
//! Rendered on the server as "Loading…" with a disabled button: only the hydrated page can
//! open the socket, so a working "Ping server" button is proof that hydration happened.

use leptos::prelude::*;

use crate::protocol::ServerMsg;

/// What the user is told about the connection. Rendered into a `status` live region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Server-rendered, before the WASM has taken over.
    Loading,
    Connecting,
    Connected {
        protocol_version: u32,
    },
    /// The socket dropped; the client retries with backoff.
    Reconnecting,
}

impl ConnectionState {
    pub fn label(self) -> String {
        match self {
            ConnectionState::Loading => "Loading…".into(),
            ConnectionState::Connecting => "Connecting…".into(),
            ConnectionState::Connected { protocol_version } => {
                format!("Connected (protocol v{protocol_version})")
            }
            ConnectionState::Reconnecting => "Reconnecting…".into(),
        }
    }

    pub fn is_connected(self) -> bool {
        matches!(self, ConnectionState::Connected { .. })
    }
}

/// One line in the panel's reply log.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    id: u64,
    text: String,
}

#[component]
pub fn ConnectionPanel() -> impl IntoView {
    let state = RwSignal::new(ConnectionState::Loading);
    let replies = RwSignal::new(Vec::<Reply>::new());
    let hydrated = RwSignal::new(false);
    #[allow(unused_variables)] // only the hydrate build sends pings
    let next_nonce = StoredValue::new(1_u64);

    // The socket is opened by an effect, which runs in the browser only and only once the
    // server-rendered DOM has been hydrated, so the first client render matches the HTML.
    #[cfg(feature = "hydrate")]
    let socket = StoredValue::new_local(None::<crate::ws_client::Socket>);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if socket.with_value(Option::is_some) {
            return;
        }
        let on_state = move |s| {
            state.try_set(s);
        };
        let on_message = move |msg: ServerMsg| {
            if let Some(text) = describe(&msg) {
                replies.update(|r| {
                    let id = r.len() as u64;
                    r.push(Reply { id, text });
                });
            }
        };
        socket.set_value(Some(crate::ws_client::Socket::connect(
            on_state, on_message,
        )));
        hydrated.set(true);
    });

    let ping = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let nonce = next_nonce.get_value();
            next_nonce.set_value(nonce + 1);
            socket.with_value(|s| {
                if let Some(s) = s {
                    s.ping(nonce);
                }
            });
        }
    };

    view! {
        <section
            class="panel"
            aria-labelledby="connection-heading"
            data-hydrated=move || hydrated.get().to_string()
        >
            <h2 id="connection-heading">"Server connection"</h2>
            <p role="status" class="status" data-state=move || format!("{:?}", state.get())>
                {move || state.get().label()}
            </p>
            <button
                type="button"
                on:click=ping
                disabled=move || !state.get().is_connected()
            >
                "Ping server"
            </button>
            <ol class="replies" aria-label="Replies">
                <For each=move || replies.get() key=|r| r.id let:reply>
                    <li>{reply.text}</li>
                </For>
            </ol>
        </section>
    }
}

/// The line shown for a server frame, if it is worth showing.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn describe(msg: &ServerMsg) -> Option<String> {
    match msg {
        ServerMsg::Pong { nonce, .. } => Some(format!("Pong #{nonce}")),
        ServerMsg::Error { code, message, .. } => Some(format!("Error {code:?}: {message}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;

    #[test]
    fn only_a_live_socket_counts_as_connected() {
        assert!(ConnectionState::Connected {
            protocol_version: 1
        }
        .is_connected());
        for s in [
            ConnectionState::Loading,
            ConnectionState::Connecting,
            ConnectionState::Reconnecting,
        ] {
            assert!(!s.is_connected(), "{s:?}");
        }
    }

    #[test]
    fn pongs_and_errors_are_shown_and_hellos_are_not() {
        let hello = ServerMsg::Hello {
            protocol_version: 1,
            server_version: "x".into(),
            me: crate::protocol::UserInfo {
                username: "a".into(),
                display_name: "A".into(),
            },
        };
        assert_eq!(describe(&hello), None);
        let pong = ServerMsg::Pong {
            nonce: 3,
            server_time_ms: 0,
        };
        assert_eq!(describe(&pong).as_deref(), Some("Pong #3"));
        let err = ServerMsg::error(ErrorCode::BadFrame, "bad");
        assert_eq!(describe(&err).as_deref(), Some("Error BadFrame: bad"));
    }
}
