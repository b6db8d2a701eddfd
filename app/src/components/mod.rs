//! Reusable pieces of UI.

mod auth_form;
mod avatar;
mod chat_view;
mod conversation;
mod dialogs;
mod formatted;
mod sidebar;
mod status;

pub use auth_form::AuthForm;
pub use avatar::Avatar;
pub use chat_view::{ChatCtx, ChatView};
pub use conversation::ConversationPane;
pub use dialogs::{NewMessageDialog, NewRoomDialog};
pub use sidebar::Sidebar;
pub use status::{ConnectionState, StatusLine};
