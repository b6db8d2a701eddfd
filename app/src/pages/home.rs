//! The landing page. For now it proves the stack end to end: it is rendered on the server,
//! hydrated in the browser, and exchanges typed frames with the server over `/ws`.

use leptos::prelude::*;

use crate::components::ConnectionPanel;

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <main class="page">
            <header class="page-header">
                <h1>"Chat"</h1>
                <p class="tagline">"Real-time chat, written in Rust end to end."</p>
            </header>
            <ConnectionPanel />
        </main>
    }
}
