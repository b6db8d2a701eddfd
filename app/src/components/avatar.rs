//! A round avatar: a person's picture when they set one, else initials on a colour derived
//! from a stable key; and an optional presence dot.

use leptos::prelude::*;

use crate::chat::avatar::{hue, initials};
use crate::components::ChatCtx;

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
    /// `key` is a person's username (implied by `online`): their picture shows when they
    /// have one.
    #[prop(optional)]
    person: bool,
    #[prop(optional)] small: bool,
) -> impl IntoView {
    let style = format!("--avatar-hue: {}", hue(&key));
    let chat = use_context::<ChatCtx>().map(|c| c.chat);
    let picture = (person || online.is_some())
        .then_some(chat)
        .flatten()
        .map(|chat| {
            let key = key.clone();
            Memo::new(move |_| chat.with(|c| c.picture(&key)))
        });
    view! {
        <span class="avatar" class:small=small style=style aria-hidden="true">
            {move || match picture.and_then(|p| p.get()) {
                // Decorative: the name is always written beside it.
                Some(url) => view! { <img src=url alt="" loading="lazy" /> }.into_any(),
                None => initials(&name.get()).into_any(),
            }}
            {online
                .map(|online| {
                    view! { <span class="presence" class:online=move || online.get()></span> }
                })}
        </span>
    }
}
