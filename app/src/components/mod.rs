//! Reusable pieces of UI.

mod auth_form;
mod avatar;
mod chat_view;
mod conversation;
mod dialogs;
mod formatted;
mod language;
mod search;
mod sidebar;
mod status;

pub use auth_form::AuthForm;
pub use avatar::Avatar;
pub use chat_view::{ChatCtx, ChatView};
pub use conversation::ConversationPane;
pub use dialogs::{NewMessageDialog, NewRoomDialog};
pub use language::LanguagePicker;
pub use sidebar::Sidebar;
pub use status::{ConnectionState, StatusLine};

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
