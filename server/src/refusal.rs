//! A refusal: what a client is told when the server will not (or could not) do what a frame
//! asked, as a typed `ServerMsg::Error`. Below the chat service so that the writers, which
//! answer sends after their commit, speak the same words as the service.

use app::protocol::{ErrorCode, ServerMsg};
use tracing::warn;

use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The server failed; the client may retry.
    pub fn internal() -> Self {
        Refusal::new(ErrorCode::Internal, "the server failed; try again")
    }

    pub fn into_msg(self, client_msg_id: Option<String>) -> ServerMsg {
        ServerMsg::Error {
            code: self.code,
            message: self.message,
            client_msg_id,
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            // Not telling non-members whether a conversation exists keeps who-talks-to-whom
            // private.
            StoreError::NoSuchConversation | StoreError::NotMember => {
                Refusal::new(ErrorCode::NotFound, "no such conversation")
            }
            StoreError::NoSuchUser => Refusal::new(ErrorCode::NotFound, "no such user"),
            StoreError::NotARoom => Refusal::new(
                ErrorCode::InvalidInput,
                "a direct conversation has no members to join or leave",
            ),
            StoreError::Banned => Refusal::new(ErrorCode::Banned, "you are banned from this room"),
            e => {
                warn!(error = %e, "store failure");
                Refusal::internal()
            }
        }
    }
}
