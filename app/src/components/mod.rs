//! Reusable pieces of UI.

mod auth_form;
mod connection_panel;

pub use auth_form::AuthForm;
pub use connection_panel::{ConnectionPanel, ConnectionState};
