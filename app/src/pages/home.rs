//! The landing page: sign in or create an account, then the chat.
//!
//! The server renders it in its "Loading…" state; the hydrated page asks `/api/auth/me` who
//! the user is and shows either the sign-in form or the signed-in view.

use leptos::prelude::*;

use crate::components::{AuthForm, ChatView, LanguagePicker};
use crate::i18n::{t, use_i18n};
use crate::lang::auth_problem_text;
use crate::protocol::{AuthProblem, UserInfo};

/// What the page knows about the visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthState {
    /// Server-rendered, or waiting for `/api/auth/me`.
    Unknown,
    SignedOut,
    SignedIn(UserInfo),
    /// `/api/auth/me` failed; the form is shown with this explanation.
    Unreachable(AuthProblem),
}

#[component]
pub fn HomePage() -> impl IntoView {
    let i18n = use_i18n();
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
                <div class="welcome-language">
                    <LanguagePicker />
                </div>
                <header class="welcome-header">
                    <h1>{t!(i18n, product)}</h1>
                    <p class="tagline">{t!(i18n, tagline)}</p>
                </header>
                {match other {
                    AuthState::Unknown => {
                        view! { <p role="status" class="status">{t!(i18n, loading)}</p> }
                            .into_any()
                    }
                    AuthState::Unreachable(problem) => {
                        let text = move || auth_problem_text(i18n.get_locale(), &problem);
                        view! {
                            <p role="alert" class="error">{text}</p>
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
