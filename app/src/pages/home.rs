//! The landing page: sign in or create an account, then the chat.
//!
//! The server renders it in its "Loading…" state; the hydrated page asks `/api/auth/me` who
//! the user is and shows either the sign-in form or the signed-in view.
//!
//! The signed-in view is most of the front end's code. Built with the `split` feature (what
//! the project's scripts build), it is a WASM module of its own (Leptos's `#[lazy]`,
//! cargo-leptos's `--split`): the page starts on the small main module, which shows the form,
//! and fetches the chat's module at once, beside `/api/auth/me` and while a visitor signs in.

use leptos::prelude::*;

use crate::components::{AuthForm, LanguagePicker};
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

    // The chat's module is fetched now, beside `/api/auth/me`, not once the answer is in.
    #[cfg(all(feature = "hydrate", feature = "split"))]
    let _ = lazy_preload!(chat_screen);

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
        AuthState::SignedIn(me) => {
            let on_sign_out = Callback::new(sign_out);
            let screen = move || {
                let me = me.clone();
                Suspend::new(async move { chat_screen(me, on_sign_out).await })
            };
            view! {
                // Only while the chat's module is still on its way (it was asked for at once).
                <Suspense fallback=move || {
                    view! {
                        <main class="welcome">
                            <p role="status" class="status">{t!(i18n, loading)}</p>
                        </main>
                    }
                }>{screen}</Suspense>
            }
            .into_any()
        }
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

/// The signed-in view; its own WASM module when built with `split`.
#[cfg_attr(feature = "split", lazy)]
async fn chat_screen(me: UserInfo, on_sign_out: Callback<()>) -> AnyView {
    view! { <crate::components::ChatView me on_sign_out /> }.into_any()
}
