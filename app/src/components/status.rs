//! The connection status line: connected, connecting, reconnecting or offline, in a `status`
//! live region so that screen readers hear changes.

use leptos::prelude::*;

use crate::i18n::{td_string, use_i18n, Locale};

/// What the user is told about the connection.
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
    /// The browser says there is no network; the client retries once it is back.
    Offline,
    /// Signed out: the socket is closed for good.
    Closed,
    /// The server ended the session (from another device, by a new password, by an
    /// administrator): the page goes back to the sign-in form.
    SignedOut,
}

impl ConnectionState {
    pub fn label(self, locale: Locale) -> &'static str {
        match self {
            ConnectionState::Loading => td_string!(locale, loading),
            ConnectionState::Connecting => td_string!(locale, connection.connecting),
            ConnectionState::Connected { .. } => td_string!(locale, connection.connected),
            ConnectionState::Reconnecting => td_string!(locale, connection.reconnecting),
            ConnectionState::Offline => td_string!(locale, connection.offline),
            ConnectionState::Closed => td_string!(locale, connection.closed),
            ConnectionState::SignedOut => td_string!(locale, connection.signed_out),
        }
    }

    /// A short name for styling and tests (`data-state`).
    pub fn key(self) -> &'static str {
        match self {
            ConnectionState::Loading => "loading",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected { .. } => "connected",
            ConnectionState::Reconnecting => "reconnecting",
            ConnectionState::Offline => "offline",
            ConnectionState::Closed => "closed",
            ConnectionState::SignedOut => "signed-out",
        }
    }

    pub fn is_connected(self) -> bool {
        matches!(self, ConnectionState::Connected { .. })
    }
}

#[component]
pub fn StatusLine(state: RwSignal<ConnectionState>) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <p role="status" class="conn" data-state=move || state.get().key()>
            <span class="conn-dot" aria-hidden="true"></span>
            {move || state.get().label(i18n.get_locale())}
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ConnectionState::Offline,
            ConnectionState::Closed,
            ConnectionState::SignedOut,
        ] {
            assert!(!s.is_connected(), "{s:?}");
            assert_ne!(s.key(), "connected");
        }
    }
}
