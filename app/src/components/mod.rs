//! Reusable pieces of UI.

mod connection_panel;

pub use connection_panel::{ConnectionPanel, ConnectionState};
