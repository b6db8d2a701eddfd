//! A round avatar with initials on a colour derived from a stable key, and an optional
//! presence dot.

use leptos::prelude::*;

use crate::chat::avatar::{hue, initials};

#[component]
pub fn Avatar(
    /// The name the initials come from.
    #[prop(into)]
    name: Signal<String>,
    /// What the colour is derived from (a username or a conversation id).
    #[prop(into)]
    key: String,
    /// `Some` for people: whether they are online.
    #[prop(default = None)]
    online: Option<Signal<bool>>,
    #[prop(optional)] small: bool,
) -> impl IntoView {
    let style = format!("--avatar-hue: {}", hue(&key));
    view! {
        <span class="avatar" class:small=small style=style aria-hidden="true">
            {move || initials(&name.get())}
            {online
                .map(|online| {
                    view! { <span class="presence" class:online=move || online.get()></span> }
                })}
        </span>
    }
}
