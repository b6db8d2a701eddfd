//! The landing page: sign in or create an account, then the chat.
//!
//! The server renders it in its "Loading…" state; the hydrated page asks `/api/auth/me` who
//! the user is and shows either the sign-in form or the signed-in view.
//!
//! The signed-in view is most of the front end's code. Built with the `split` feature (what
//! the project's scripts build), it is a WASM module of its own (a `wasm_split` point, which
//! Leptos's `#[lazy]` is built on, and cargo-leptos's `--split`): the page starts on the small
//! main module, which shows the form, and fetches the chat's module at once, beside
//! `/api/auth/me` and while a visitor signs in. The split point is declared `fallible` rather
//! than through `#[lazy]`, whose failed fetch panics and leaves the page dead on "Loading…": a
//! module that cannot be fetched is said so, with a button that fetches it again.

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

    // The chat's module is fetched now, beside `/api/auth/me`, not once the answer is in. A
    // failure here is not cached: showing the chat fetches it again.
    #[cfg(feature = "split")]
    leptos::task::spawn_local(async {
        let _ = preload_chat_screen().await;
    });

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
            // Bumped by "Try again" after the chat's module could not be fetched.
            let attempt = RwSignal::new(0u32);
            let screen = move || {
                attempt.track();
                let me = me.clone();
                Suspend::new(async move {
                    match chat_screen(me, on_sign_out).await {
                        Ok(view) => view,
                        Err(ModuleUnavailable) => view! {
                            <main class="welcome">
                                <header class="welcome-header">
                                    <h1>{t!(i18n, product)}</h1>
                                </header>
                                <div class="unavailable">
                                    <p role="alert" class="error">{t!(i18n, app_unavailable)}</p>
                                    <button on:click=move |_| attempt.update(|n| *n += 1)>
                                        {t!(i18n, try_again)}
                                    </button>
                                </div>
                            </main>
                        }
                        .into_any(),
                    }
                })
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

/// The signed-in view's module could not be fetched (the network, or a server mid-upgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ModuleUnavailable;

#[cfg(feature = "split")]
impl From<leptos::wasm_split::SplitLoaderError> for ModuleUnavailable {
    fn from(_: leptos::wasm_split::SplitLoaderError) -> Self {
        ModuleUnavailable
    }
}

/// The signed-in view, in a WASM module of its own: the macro turns this into an `async fn`
/// that fetches the module first (once it succeeded, never again) and answers
/// `Err(ModuleUnavailable)` if it cannot, and adds `preload_chat_screen`.
#[cfg(feature = "split")]
#[leptos::wasm_split::wasm_split(
    chat_screen,
    wasm_split_path = ::leptos::wasm_split,
    fallible,
    preload(preload_chat_screen)
)]
fn chat_screen(me: UserInfo, on_sign_out: Callback<()>) -> Result<AnyView, ModuleUnavailable> {
    Ok(chat_view(me, on_sign_out))
}

/// The signed-in view, in the one module.
#[cfg(not(feature = "split"))]
async fn chat_screen(
    me: UserInfo,
    on_sign_out: Callback<()>,
) -> Result<AnyView, ModuleUnavailable> {
    Ok(chat_view(me, on_sign_out))
}

fn chat_view(me: UserInfo, on_sign_out: Callback<()>) -> AnyView {
    view! { <crate::components::ChatView me on_sign_out /> }.into_any()
}
