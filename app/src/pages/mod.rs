//! Routed pages, one module each.

mod home;

pub use home::{AuthState, HomePage};

use leptos::prelude::*;

/// Shown for any path no route matches.
#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <main class="page">
            <h1>"Page not found"</h1>
            <p>
                <a href="/">"Back to the chat"</a>
            </p>
        </main>
    }
}
