//! Starts the real server on an ephemeral port and speaks to it like a browser would.

use app::protocol::{ClientMsg, ServerMsg};
use futures::{SinkExt, StreamExt};
use server::{settings::Settings, Application};
use std::{net::SocketAddr, time::Duration};
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{connect_async, tungstenite::Message, MaybeTlsStream, WebSocketStream};

/// Every await on the server is bounded by this, so a broken server fails a test instead of
/// hanging it.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<std::io::Result<()>>,
}

/// Starts a server with in-memory storage.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Settings::for_tests()).await
}

/// Starts a server with the given settings. A disk database that was just closed may still
/// be held by the store's background flush for a moment, so opening is retried briefly.
pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let mut attempts = 0;
    let app = loop {
        match Application::build(settings.clone()).await {
            Ok(app) => break app,
            Err(e) if attempts < 50 => {
                attempts += 1;
                eprintln!("server did not start yet ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("server does not start: {e}"),
        }
    };
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        stop: Some(stop),
        handle,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn connect(&self) -> Client {
        let (ws, _) =
            tokio::time::timeout(TIMEOUT, connect_async(format!("ws://{}/ws", self.addr)))
                .await
                .expect("connect in time")
                .expect("websocket handshake");
        Client { ws }
    }

    /// Triggers graceful shutdown and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(TIMEOUT, &mut self.handle)
            .await
            .expect("server stops in time")
            .expect("server task did not panic")
            .expect("server ran without I/O errors");
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_raw(Message::text(msg.encode())).await;
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send frame");
    }

    /// The next frame, which must be a text frame holding a valid `ServerMsg`.
    pub async fn recv(&mut self) -> ServerMsg {
        match self.recv_raw().await {
            Some(Message::Text(text)) => ServerMsg::decode(&text).expect("valid ServerMsg"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    pub async fn recv_raw(&mut self) -> Option<Message> {
        tokio::time::timeout(TIMEOUT, self.ws.next())
            .await
            .expect("a frame in time")
            .map(|r| r.expect("no socket error"))
    }
}
