//! Routed pages, one module each.

mod home;

pub use home::{AuthState, HomePage};

use leptos::prelude::*;

use crate::i18n::{t, use_i18n};

/// Shown for any path no route matches.
#[component]
pub fn NotFound() -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <main class="page">
            <h1>{t!(i18n, not_found.title)}</h1>
            <p>
                <a href="/">{t!(i18n, not_found.back)}</a>
            </p>
        </main>
    }
}
