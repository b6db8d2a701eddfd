//! One WebSocket to `/ws`, as a browser opens it (session cookie, same-origin `Origin`).
//! Every failure is an `Err`, never a panic: scenarios expect the server to vanish.

use anyhow::{anyhow, bail, Context};
use app::protocol::{ClientMsg, ServerMsg};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use std::borrow::Cow;
use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    client_async_with_config,
    tungstenite::{client::IntoClientRequest, Message, Utf8Bytes},
    MaybeTlsStream, WebSocketStream,
};

/// The server closed the socket (with this close code, if it sent one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed(pub Option<u16>);

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(code) => write!(f, "closed by the server with code {code}"),
            None => f.write_str("the connection ended without a close frame"),
        }
    }
}

impl std::error::Error for Closed {}

pub struct Conn {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Conn {
    /// Connects (without Nagle, as browsers do for WebSockets) and consumes the `hello`.
    pub async fn open(addr: SocketAddr, token: &str) -> anyhow::Result<Conn> {
        Self::open_from(addr, token, None).await
    }

    /// As [`Conn::open`], from the loopback address `from`: one source address has ~28,000
    /// ports towards one server address, so more sockets than that come from several.
    pub async fn open_from(
        addr: SocketAddr,
        token: &str,
        from: Option<IpAddr>,
    ) -> anyhow::Result<Conn> {
        let mut req = format!("ws://{addr}/ws").into_client_request()?;
        req.headers_mut()
            .insert("cookie", format!("chat_session={token}").parse()?);
        req.headers_mut()
            .insert("origin", format!("http://{addr}").parse()?);
        let connecting = async {
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            if let Some(ip) = from {
                socket.bind(crate::loopback_only(SocketAddr::new(ip, 0))?)?;
            }
            let stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            // Small buffers: a hundred thousand clients must fit beside the server.
            let config = crate::socket_config();
            let (ws, _) =
                client_async_with_config(req, MaybeTlsStream::Plain(stream), Some(config)).await?;
            anyhow::Ok(ws)
        };
        let ws = tokio::time::timeout(Duration::from_secs(5), connecting)
            .await
            .context("connect timed out")??;
        let mut conn = Conn { ws };
        match conn.next(Duration::from_secs(5)).await? {
            ServerMsg::Hello { .. } => Ok(conn),
            other => bail!("expected hello, got {other:?}"),
        }
    }

    /// Connects, resumes from nothing (so live delivery starts) and waits for `resumed`.
    pub async fn open_live(addr: SocketAddr, token: &str) -> anyhow::Result<Conn> {
        let mut conn = Conn::open(addr, token).await?;
        conn.send(&ClientMsg::Resume {
            positions: Vec::new(),
        })
        .await?;
        conn.until(Duration::from_secs(10), |m| {
            matches!(m, ServerMsg::Resumed).then_some(())
        })
        .await?;
        Ok(conn)
    }

    pub async fn send(&mut self, msg: &ClientMsg) -> anyhow::Result<()> {
        self.ws.send(Message::text(msg.encode())).await?;
        Ok(())
    }

    /// Queues `msg` without writing it out: [`Conn::flush`] writes everything queued at
    /// once, as one write (a burst of sends then costs the machine one system call, not one
    /// each).
    pub async fn feed(&mut self, msg: &ClientMsg) -> anyhow::Result<()> {
        self.ws.feed(Message::text(msg.encode())).await?;
        Ok(())
    }

    pub async fn flush(&mut self) -> anyhow::Result<()> {
        self.ws.flush().await?;
        Ok(())
    }

    /// The next text frame as it came, within `wait`, for readers that pick out a field or
    /// two instead of decoding every frame whole.
    pub async fn next_text(&mut self, wait: Duration) -> anyhow::Result<Utf8Bytes> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("no frame within {wait:?}"))?;
            match frame {
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Close(frame))) => {
                    return Err(Closed(frame.map(|f| u16::from(f.code))).into())
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(Closed(None).into()),
            }
        }
    }

    /// The next protocol frame within `wait`.
    pub async fn next(&mut self, wait: Duration) -> anyhow::Result<ServerMsg> {
        let text = self.next_text(wait).await?;
        Ok(ServerMsg::decode(&text)?)
    }

    /// Skips frames until `pick` accepts one (within `wait` in all).
    pub async fn until<T>(
        &mut self,
        wait: Duration,
        mut pick: impl FnMut(&ServerMsg) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.next(left).await?;
            if let Some(t) = pick(&msg) {
                return Ok(t);
            }
        }
    }

    /// Sends `msg` and waits (up to 10 s) for the reply `pick` accepts.
    pub async fn ask<T>(
        &mut self,
        msg: ClientMsg,
        pick: impl FnMut(&ServerMsg) -> Option<T>,
    ) -> anyhow::Result<T> {
        self.ask_within(Duration::from_secs(10), msg, pick).await
    }

    /// Sends `msg` and waits up to `wait` for the reply `pick` accepts.
    pub async fn ask_within<T>(
        &mut self,
        wait: Duration,
        msg: ClientMsg,
        pick: impl FnMut(&ServerMsg) -> Option<T>,
    ) -> anyhow::Result<T> {
        self.send(&msg).await?;
        self.until(wait, pick).await
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// The few fields of a frame that load runs read (its type; a `message`'s or `ack`'s
/// `seq`, sender and body; an ack's id), without decoding the rest: the load generator
/// runs on the target's cores, and decoding every frame whole was a large share of its
/// own cost. Other frames are decoded whole with [`ServerMsg::decode`] when needed.
#[derive(Debug, Deserialize)]
pub struct Glance<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub client_msg_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message: Option<Glimpse<'a>>,
}

/// A glanced-at message.
#[derive(Debug, Deserialize)]
pub struct Glimpse<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub sender: Cow<'a, str>,
    #[serde(borrow)]
    pub body: Cow<'a, str>,
}

impl<'a> Glance<'a> {
    pub fn of(text: &'a str) -> anyhow::Result<Self> {
        serde_json::from_str(text).with_context(|| format!("not a frame: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_glanced_at_for_its_type_seq_sender_and_body() {
        let text = r#"{"type":"ack","client_msg_id":"f3","message":{"conversation_id":"r1","seq":42,"sender":"a","body":"3:9\"9","client_msg_id":"f3","sent_at_ms":1,"reactions":[]}}"#;
        let frame = Glance::of(text).unwrap();
        assert_eq!(frame.kind, "ack");
        assert_eq!(frame.client_msg_id.as_deref(), Some("f3"));
        let m = frame.message.unwrap();
        assert_eq!((m.seq, &*m.sender, &*m.body), (42, "a", "3:9\"9"));
        let other = Glance::of(r#"{"type":"presence","username":"a","online":true}"#).unwrap();
        assert!(other.message.is_none() && other.client_msg_id.is_none());
        assert!(Glance::of("[1]").is_err());
    }
}
