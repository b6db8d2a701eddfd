//! The landing page: sign in or create an account, then the live connection to the server.
//!
//! The server renders it in its "Loading…" state; the hydrated page asks `/api/auth/me` who
//! the user is and shows either the sign-in form or the signed-in view.

use leptos::prelude::*;

use crate::components::{AuthForm, ConnectionPanel};
use crate::protocol::UserInfo;

/// What the page knows about the visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthState {
    /// Server-rendered, or waiting for `/api/auth/me`.
    Unknown,
    SignedOut,
    SignedIn(UserInfo),
    /// `/api/auth/me` failed; the form is shown with this explanation.
    Unreachable(String),
}

#[component]
pub fn HomePage() -> impl IntoView {
    let auth = RwSignal::new(AuthState::Unknown);

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            let state = match crate::auth_client::me().await {
                Ok(Some(me)) => AuthState::SignedIn(me),
                Ok(None) => AuthState::SignedOut,
                Err(e) => AuthState::Unreachable(e),
            };
            auth.try_set(state);
        });
    });

    let sign_out = move |_| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            crate::auth_client::sign_out().await;
            auth.try_set(AuthState::SignedOut);
        });
    };

    view! {
        <main class="page">
            <header class="page-header">
                <h1>"Chat"</h1>
                <p class="tagline">"Real-time chat, written in Rust end to end."</p>
            </header>
            {move || match auth.get() {
                AuthState::Unknown => {
                    view! { <p role="status" class="status">"Loading…"</p> }.into_any()
                }
                AuthState::SignedOut => view! { <AuthForm auth /> }.into_any(),
                AuthState::Unreachable(problem) => {
                    view! {
                        <p role="alert" class="error">{problem}</p>
                        <AuthForm auth />
                    }
                        .into_any()
                }
                AuthState::SignedIn(me) => {
                    view! {
                        <div class="whoami">
                            <span>
                                "Signed in as " <strong>{me.display_name}</strong>
                                <span class="muted">" @" {me.username}</span>
                            </span>
                            <button type="button" class="secondary" on:click=sign_out>
                                "Sign out"
                            </button>
                        </div>
                        <ConnectionPanel />
                    }
                        .into_any()
                }
            }}
        </main>
    }
}
