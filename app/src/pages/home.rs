//! The landing page: sign in or create an account, then the chat.
//!
//! The server renders it in its "Loading…" state; the hydrated page asks `/api/auth/me` who
//! the user is and shows either the sign-in form or the signed-in view.

use leptos::prelude::*;

use crate::components::{AuthForm, ChatView};
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

    let sign_out = move |()| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            crate::auth_client::sign_out().await;
            auth.try_set(AuthState::SignedOut);
        });
    };

    move || match auth.get() {
        AuthState::SignedIn(me) => view! { <ChatView me on_sign_out=sign_out /> }.into_any(),
        other => view! {
            <main class="welcome">
                <header class="welcome-header">
                    <h1>"Chat"</h1>
                    <p class="tagline">"Real-time chat, written in Rust end to end."</p>
                </header>
                {match other {
                    AuthState::Unknown => {
                        view! { <p role="status" class="status">"Loading…"</p> }.into_any()
                    }
                    AuthState::Unreachable(problem) => {
                        view! {
                            <p role="alert" class="error">{problem}</p>
                            <AuthForm auth />
                        }
                            .into_any()
                    }
                    _ => view! { <AuthForm auth /> }.into_any(),
                }}
            </main>
        }
        .into_any(),
    }
}
