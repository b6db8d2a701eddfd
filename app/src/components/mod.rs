//! Reusable pieces of UI.

mod account;
mod auth_form;
mod avatar;
mod chat_view;
mod conversation;
mod dialogs;
mod files;
mod formatted;
mod language;
mod room;
mod search;
mod sidebar;
mod status;

pub use account::AccountDialog;
pub use auth_form::AuthForm;
pub use avatar::Avatar;
pub use chat_view::{ChatCtx, ChatView};
pub use conversation::ConversationPane;
pub use dialogs::{NewMessageDialog, NewRoomDialog};
pub use language::LanguagePicker;
pub use sidebar::Sidebar;
pub use status::{ConnectionState, StatusLine};

/// The elements a `query_selector_all` found, in page order, and which of them has the
/// keyboard's focus (for moving it along them).
#[cfg(feature = "hydrate")]
pub(crate) fn focus_order(
    found: Result<web_sys::NodeList, leptos::wasm_bindgen::JsValue>,
) -> (Vec<web_sys::HtmlElement>, Option<usize>) {
    use leptos::wasm_bindgen::JsCast;
    let Ok(list) = found else {
        return (Vec::new(), None);
    };
    let items: Vec<web_sys::HtmlElement> = (0..list.length())
        .filter_map(|i| list.item(i)?.dyn_into::<web_sys::HtmlElement>().ok())
        .collect();
    let active = leptos::prelude::document().active_element();
    let at = items.iter().position(|e| {
        active.as_ref().is_some_and(|a| {
            a.unchecked_ref::<web_sys::Node>() == e.unchecked_ref::<web_sys::Node>()
        })
    });
    (items, at)
}

/// Puts `text` on the clipboard and sets `copied` for two seconds (a "Copied" label).
pub(crate) fn copy_to_clipboard(text: &str, copied: leptos::prelude::RwSignal<bool>) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::prelude::*;
        let _ = window().navigator().clipboard().write_text(text);
        copied.set(true);
        set_timeout(
            move || {
                copied.try_set(false);
            },
            std::time::Duration::from_secs(2),
        );
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (text, copied);
}
