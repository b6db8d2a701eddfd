//! The WebSocket wire protocol: one JSON object per text frame, tagged by `"type"`.
//!
//! Both ends compile this module, so the server and the browser cannot disagree on a frame's
//! shape. Every variant is documented in `PROTOCOL.md`; a change to a variant's meaning bumps
//! [`PROTOCOL_VERSION`], which the server announces in [`ServerMsg::Hello`].

use serde::{Deserialize, Serialize};

/// Version of this protocol, announced by the server on every new socket.
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest text frame, in bytes, the server accepts; bigger frames are refused with
/// [`ErrorCode::FrameTooLarge`].
pub const MAX_FRAME_BYTES: usize = 16 * 1024;

/// A frame sent by the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Asks the server to answer with [`ServerMsg::Pong`] carrying the same `nonce`; used to
    /// measure round trips and to prove the socket is alive end to end.
    Ping { nonce: u64 },
}

/// A frame sent by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMsg {
    /// First frame on every socket: who the socket belongs to.
    Hello {
        protocol_version: u32,
        server_version: String,
        me: UserInfo,
    },
    /// Answer to [`ClientMsg::Ping`].
    Pong {
        nonce: u64,
        /// Server wall-clock time in milliseconds since the Unix epoch.
        server_time_ms: u64,
    },
    /// A frame could not be handled. Nothing was changed on the server.
    Error { code: ErrorCode, message: String },
}

/// A user as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInfo {
    pub username: String,
    pub display_name: String,
}

/// Machine-readable reason carried by [`ServerMsg::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON or does not match any [`ClientMsg`] variant.
    BadFrame,
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    FrameTooLarge,
    /// Binary frames are not part of the protocol.
    UnsupportedFrame,
    /// Something failed on the server; the client may retry.
    Internal,
}

impl ClientMsg {
    /// Decodes one text frame, mapping every failure to the error the server sends back.
    pub fn decode(frame: &str) -> Result<Self, ServerMsg> {
        if frame.len() > MAX_FRAME_BYTES {
            return Err(ServerMsg::error(
                ErrorCode::FrameTooLarge,
                format!(
                    "frame is {} bytes; the limit is {MAX_FRAME_BYTES}",
                    frame.len()
                ),
            ));
        }
        serde_json::from_str(frame)
            .map_err(|e| ServerMsg::error(ErrorCode::BadFrame, e.to_string()))
    }

    /// Encodes this message as one text frame.
    pub fn encode(&self) -> String {
        encode(self)
    }
}

impl ServerMsg {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
        }
    }

    /// Decodes one text frame received from the server.
    pub fn decode(frame: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(frame)
    }

    /// Encodes this message as one text frame.
    pub fn encode(&self) -> String {
        encode(self)
    }
}

fn encode<T: Serialize>(msg: &T) -> String {
    // Serialising these enums cannot fail: every field is a string, a number or a unit enum,
    // and no map has non-string keys.
    serde_json::to_string(msg).expect("protocol messages always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_has_a_stable_wire_shape() {
        let ping = ClientMsg::Ping { nonce: 7 };
        assert_eq!(ping.encode(), r#"{"type":"ping","nonce":7}"#);
        assert_eq!(ClientMsg::decode(r#"{"type":"ping","nonce":7}"#), Ok(ping));
    }

    #[test]
    fn every_server_message_survives_a_round_trip() {
        let messages = [
            ServerMsg::Hello {
                protocol_version: PROTOCOL_VERSION,
                server_version: "0.1.0".into(),
                me: UserInfo {
                    username: "alice".into(),
                    display_name: "Alice <b>".into(),
                },
            },
            ServerMsg::Pong {
                nonce: u64::MAX,
                server_time_ms: 1,
            },
            ServerMsg::error(ErrorCode::BadFrame, "nope"),
        ];
        for msg in messages {
            assert_eq!(ServerMsg::decode(&msg.encode()).unwrap(), msg);
        }
    }

    #[test]
    fn malformed_frames_are_rejected_with_a_code() {
        let cases = [
            ("not json", ErrorCode::BadFrame),
            (r#"{"type":"launch_rockets"}"#, ErrorCode::BadFrame),
            (r#"{"type":"ping"}"#, ErrorCode::BadFrame),
            (r#"{"type":"ping","nonce":-1}"#, ErrorCode::BadFrame),
            (
                r#"{"type":"ping","nonce":1,"extra":true}"#,
                ErrorCode::BadFrame,
            ),
        ];
        for (frame, want) in cases {
            match ClientMsg::decode(frame) {
                Err(ServerMsg::Error { code, .. }) => assert_eq!(code, want, "frame {frame}"),
                other => panic!("frame {frame} decoded to {other:?}"),
            }
        }
    }

    #[test]
    fn oversized_frames_are_rejected_before_parsing() {
        let frame = format!(
            r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        match ClientMsg::decode(&frame) {
            Err(ServerMsg::Error { code, .. }) => assert_eq!(code, ErrorCode::FrameTooLarge),
            other => panic!("decoded to {other:?}"),
        }
    }
}
