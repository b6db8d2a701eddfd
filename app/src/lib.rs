//! Everything the browser shows, plus the types both sides share.
//!
//! # Layout
//! - [`domain`] — validated values (usernames, message bodies, ...) shared by both sides.
//! - [`mention`] — `@name` mentions in message text, shared by both sides.
//! - [`search`] — the terms messages are indexed and found by (Chinese included), shared by both sides.
//! - [`protocol`] — the WebSocket frames (`ClientMsg` / `ServerMsg`), compiled by server and browser.
//! - [`roles`] — who may do what in a room, shared by both sides.
//! - [`pages`] — one module per routed page.
//! - [`components`] — reusable pieces of UI.
//! - [`chat`] — the browser's model of the chat (pure data, tested on the host).
//! - `ws_client`, `auth_client` (browser only): the socket that talks [`protocol`] to `/ws`,
//!   and the calls to `/api/auth/*`.
//!
//! Features: `ssr` for the server build, `hydrate` for the WASM build. Browser-only code sits
//! behind `hydrate`; it is never compiled into the server.
// Statically typed view trees nest deeper than rustc's default query depth allows.
#![recursion_limit = "256"]

#[cfg(feature = "hydrate")]
pub mod auth_client;
pub mod chat;
pub mod components;
pub mod domain;
pub mod lang;
pub mod markdown;
pub mod mention;
pub mod pages;
pub mod protocol;
pub mod roles;
pub mod search;
pub mod user_agent;
#[cfg(feature = "hydrate")]
pub mod ws_client;

// The `i18n` module generated from `locales/*.json` by the build script: `Locale`,
// `use_i18n`, `t!`, `I18nContextProvider`.
include!(concat!(env!("OUT_DIR"), "/i18n/mod.rs"));

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{ParentRoute, Route, Router, Routes},
    ParamSegment, StaticSegment,
};

/// The HTML document the server renders around [`App`]; the WASM hydrates its body.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        // `lang` (and `dir`) are set by the i18n provider from the chosen language.
        <html>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The root component: language, styles, title and routes.
///
/// The language is the one the reader chose (a cookie, see [`lang::chosen_language`]), else
/// the best match of the browser's `Accept-Language`, else English; the server renders the
/// page in it (the browser then reads it from `<html lang>`), so it never flashes in the
/// other language.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <i18n::I18nContextProvider ssr_lang_header_getter=accept_language()>
            <Root />
        </i18n::I18nContextProvider>
    }
}

/// The languages the request asks for (server side): the one the reader chose if they did,
/// else those it accepts, any Chinese read as ours.
fn accept_language() -> leptos_i18n::context::UseLocalesOptions {
    leptos_i18n::context::UseLocalesOptions::default().ssr_lang_header_getter(|| {
        #[cfg(feature = "ssr")]
        {
            use leptos_i18n::Locale as _;
            let parts = use_context::<http::request::Parts>()?;
            let chosen = parts
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(lang::chosen_language);
            if let Some(locale) = chosen {
                return Some(locale.as_str().to_owned());
            }
            let header = parts.headers.get(http::header::ACCEPT_LANGUAGE)?;
            Some(lang::prefer_our_chinese(header.to_str().ok()?))
        }
        #[cfg(not(feature = "ssr"))]
        None
    })
}

#[component]
fn Root() -> impl IntoView {
    let i18n = i18n::use_i18n();
    view! {
        <Stylesheet id="leptos" href="/pkg/chat.css" />
        <Title text=move || i18n::t_string!(i18n, product) />
        <Router>
            <Routes fallback=pages::NotFound>
                // One page for the list and for each conversation's address (see
                // `chat::address`): moving between them keeps the page (and its socket); the
                // chat follows the address itself.
                <ParentRoute path=StaticSegment("") view=pages::HomePage>
                    <Route path=StaticSegment("") view=|| () />
                    <Route path=(StaticSegment("c"), ParamSegment("conversation")) view=|| () />
                    <Route
                        path=(StaticSegment("c"), ParamSegment("conversation"), ParamSegment("seq"))
                        view=|| ()
                    />
                </ParentRoute>
            </Routes>
        </Router>
    }
}
