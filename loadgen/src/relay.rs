//! The baseline: a minimal in-process WebSocket relay speaking the same frames as the chat
//! server, with no authentication, no storage and no sequencing beyond a counter. Whatever
//! it reaches on this machine is the ceiling the real server is compared with.
//!
//! A client's session token is taken as its username; a direct conversation `a/b` has the
//! members `a` and `b`. A `send` is acknowledged to the sender and delivered to the other
//! members' sockets, encoded once.

use app::protocol::{ClientMsg, Message, ServerMsg, UserInfo, PROTOCOL_VERSION};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{
    handshake::server::{Request, Response},
    Message as Frame,
};

type Outboxes = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Arc<str>>>>>>;

/// A running relay; dropping it does not stop it (it lives as long as the runtime).
pub struct Relay {
    pub addr: SocketAddr,
}

impl Relay {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let outboxes: Outboxes = Arc::default();
        let seqs: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // As the server does: frames go out at once.
                let _ = stream.set_nodelay(true);
                let outboxes = outboxes.clone();
                let seqs = seqs.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, outboxes, seqs).await;
                });
            }
        });
        Ok(Relay { addr })
    }
}

// The handshake callback's error type is tungstenite's (an HTTP response), not ours.
#[allow(clippy::result_large_err)]
async fn serve(
    stream: tokio::net::TcpStream,
    outboxes: Outboxes,
    seqs: Arc<Mutex<HashMap<String, u64>>>,
) -> anyhow::Result<()> {
    let mut user = String::new();
    let ws = tokio_tungstenite::accept_hdr_async(stream, |req: &Request, res: Response| {
        user = req
            .headers()
            .get("cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.strip_prefix("chat_session="))
            .unwrap_or("anonymous")
            .to_owned();
        Ok(res)
    })
    .await?;
    let (mut write, mut read) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<str>>();
    {
        let mut outboxes = outboxes.lock().expect("lock");
        let mine = outboxes.entry(user.clone()).or_default();
        mine.retain(|s| !s.is_closed());
        mine.push(tx.clone());
    }
    let hello = ServerMsg::Hello {
        protocol_version: PROTOCOL_VERSION,
        server_version: "relay".into(),
        me: UserInfo {
            username: user.clone(),
            display_name: user.clone(),
        },
    };
    write.send(Frame::text(hello.encode())).await?;
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if write.send(Frame::text(&*frame)).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(frame)) = read.next().await {
        let Frame::Text(text) = frame else { continue };
        let reply = match ClientMsg::decode(&text) {
            Ok(ClientMsg::Send {
                conversation_id,
                client_msg_id,
                body,
            }) => {
                let seq = {
                    let mut seqs = seqs.lock().expect("lock");
                    let s = seqs.entry(conversation_id.0.clone()).or_default();
                    *s += 1;
                    *s
                };
                let message = Message {
                    conversation_id: conversation_id.clone(),
                    seq,
                    sender: user.clone(),
                    body: body.into_inner(),
                    client_msg_id: client_msg_id.to_string(),
                    sent_at_ms: 0,
                };
                let delivery: Arc<str> = Arc::from(
                    ServerMsg::Message {
                        message: message.clone(),
                    }
                    .encode(),
                );
                {
                    let outboxes = outboxes.lock().expect("lock");
                    for member in conversation_id.0.split('/').filter(|m| *m != user) {
                        for out in outboxes.get(member).into_iter().flatten() {
                            let _ = out.send(delivery.clone());
                        }
                    }
                }
                ServerMsg::Ack {
                    client_msg_id: client_msg_id.to_string(),
                    message,
                }
            }
            Ok(ClientMsg::Resume { .. }) => ServerMsg::Resumed,
            Ok(ClientMsg::Ping { nonce }) => ServerMsg::Pong {
                nonce,
                server_time_ms: 0,
            },
            Ok(_) => continue,
            Err(e) => e.into(),
        };
        if tx.send(Arc::from(reply.encode())).is_err() {
            break;
        }
    }
    writer.abort();
    Ok(())
}
