//! Starts the real server on an ephemeral port and speaks to it like a browser would.

use app::protocol::{ClientMsg, ConversationId, ServerMsg};
use futures::{SinkExt, StreamExt};
use server::{settings::Settings, Application};
use std::{net::SocketAddr, time::Duration};
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{connect_async, tungstenite::Message, MaybeTlsStream, WebSocketStream};

/// Every await on the server is bounded by this, so a broken server fails a test instead of
/// hanging it.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The password every test account gets.
pub const PASSWORD: &str = "correct horse battery";

/// A running server as a client reaches it: its address.
pub struct Site {
    pub addr: SocketAddr,
}

/// The server running in this test's process.
pub struct TestApp {
    site: Site,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl std::ops::Deref for TestApp {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.site
    }
}

/// Test settings with durable storage in `dir`.
pub fn disk_settings(dir: &std::path::Path) -> Settings {
    Settings {
        storage: server::settings::StorageKind::Disk,
        data_dir: dir.to_owned(),
        ..Settings::for_tests()
    }
}

/// Starts a server with in-memory storage.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Settings::for_tests()).await
}

/// Starts a server with the given settings; it must start at the first attempt (a data
/// directory that a server stopped cleanly is free again once `stop` returns).
pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let app = Application::build(settings)
        .await
        .unwrap_or_else(|e| panic!("server does not start: {e}"));
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    TestApp {
        site: Site { addr },
        stop: Some(stop),
        handle,
    }
}

impl Site {
    /// Creates an account (display name = username in capitals) and returns its token.
    pub async fn sign_up(&self, username: &str) -> String {
        let body = serde_json::json!({
            "username": username,
            "password": PASSWORD,
            "display_name": username.to_uppercase(),
        });
        let res = post_json(self.addr, "/api/auth/signup", &body, None).await;
        assert_eq!(res.status, 201, "sign-up of {username}: {}", res.body);
        res.session_token().expect("a session cookie")
    }

    /// Signs an existing account in again and returns the new session's token.
    pub async fn sign_in(&self, username: &str) -> String {
        let body = serde_json::json!({ "username": username, "password": PASSWORD });
        let res = post_json(self.addr, "/api/auth/signin", &body, None).await;
        assert_eq!(res.status, 200, "sign-in of {username}: {}", res.body);
        res.session_token().expect("a session cookie")
    }

    /// A new user's socket, past the hello.
    pub async fn user(&self, username: &str) -> Client {
        let token = self.sign_up(username).await;
        let mut client = self.connect(&token).await;
        client.recv().await; // hello
        client.start().await;
        client
    }

    /// Opens `/ws` as a browser on this origin would, with the session cookie.
    pub async fn connect(&self, token: &str) -> Client {
        let origin = format!("http://{}", self.addr);
        self.try_connect(Some(token), Some(&origin))
            .await
            .expect("websocket handshake")
    }

    /// Whether a socket for `token` opens within a second (a place freed by a closed socket
    /// comes back once the server has seen the close).
    pub async fn connects_again(&self, token: &str) -> bool {
        let origin = format!("http://{}", self.addr);
        for _ in 0..50 {
            if self.try_connect(Some(token), Some(&origin)).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Opens `/ws` with the given cookie and Origin; `Err` carries the refusal's status.
    pub async fn try_connect(
        &self,
        token: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Client, u16> {
        use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Error};
        let mut req = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        if let Some(token) = token {
            req.headers_mut()
                .insert("cookie", format!("chat_session={token}").parse().unwrap());
        }
        if let Some(origin) = origin {
            req.headers_mut().insert("origin", origin.parse().unwrap());
        }
        match tokio::time::timeout(TIMEOUT, connect_async(req))
            .await
            .expect("connect in time")
        {
            Ok((ws, _)) => Ok(Client {
                ws,
                pending: Default::default(),
            }),
            Err(Error::Http(res)) => Err(res.status().as_u16()),
            Err(e) => panic!("handshake failed: {e}"),
        }
    }
}

impl TestApp {
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

/// The server binary run as a process of its own (for what only a process shows: its
/// memory, signals, its log), listening on a free loopback port.
pub struct ServerProcess {
    site: Site,
    child: std::process::Child,
    lines_before_listening: Vec<String>,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl std::ops::Deref for ServerProcess {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.site
    }
}

impl ServerProcess {
    /// Starts the binary with `env` (`CHAT_*` settings) and waits until it listens; the
    /// log is plain text, `info` and up (the storage engine's from `warn`) unless `env`
    /// says otherwise.
    pub fn start(env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .env("CHAT_ADDR", "127.0.0.1:0")
            .env("CHAT_LOG", "info,surrealdb=warn,surrealkv=warn")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped());
        let mut child = command.spawn().expect("the server binary starts");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines_before_listening = Vec::new();
        let mut raw = String::new();
        while out.read_line(&mut raw).expect("a log line") > 0 {
            let line = std::mem::take(&mut raw).trim_end().to_owned();
            if let Some(addr) = line.contains("listening").then(|| {
                line.split("addr=")
                    .nth(1)
                    .and_then(|a| a.split_whitespace().next())
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("an address in {line:?}"))
            }) {
                // The rest of the log is kept by a thread, so that the server never
                // writes into a full or closed pipe.
                let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                let kept = log.clone();
                std::thread::spawn(move || {
                    for line in out.lines().map_while(Result::ok) {
                        kept.lock().unwrap().push(line);
                    }
                });
                return ServerProcess {
                    site: Site { addr },
                    child,
                    lines_before_listening,
                    log,
                };
            }
            lines_before_listening.push(line);
        }
        let _ = child.wait();
        panic!("the server exited before listening: {lines_before_listening:#?}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged before it listened.
    pub fn start_log(&self) -> &[String] {
        &self.lines_before_listening
    }

    /// What it logged since it listened.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits (at most 30 s) for the process to end: its exit status, and
    /// how long it took.
    #[cfg(unix)]
    pub async fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let started = std::time::Instant::now();
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(sent.unwrap().success(), "SIGTERM sent");
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running 30 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames received while waiting for another one, in arrival order.
    pending: std::collections::VecDeque<ServerMsg>,
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
        if let Some(msg) = self.pending.pop_front() {
            return msg;
        }
        self.recv_wire().await
    }

    async fn recv_wire(&mut self) -> ServerMsg {
        let frame = loop {
            match self.recv_raw().await {
                // Heartbeats; tungstenite answers pings by itself.
                Some(Message::Ping(_) | Message::Pong(_)) => continue,
                other => break other,
            }
        };
        match frame {
            Some(Message::Text(text)) => ServerMsg::decode(&text).expect("valid ServerMsg"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Starts live delivery, as a client with nothing to resume does: an empty `resume`.
    pub async fn start(&mut self) {
        self.ask(ClientMsg::Resume { positions: vec![] }, |m| {
            matches!(m, ServerMsg::Resumed).then_some(())
        })
        .await;
    }

    /// The first frame (pending or new) that `pick` accepts; others stay pending in order.
    pub async fn expect<T>(&mut self, mut pick: impl FnMut(&ServerMsg) -> Option<T>) -> T {
        if let Some(i) = self.pending.iter().position(|m| pick(m).is_some()) {
            let msg = self.pending.remove(i).unwrap();
            return pick(&msg).unwrap();
        }
        loop {
            let msg = self.recv_wire().await;
            if let Some(t) = pick(&msg) {
                return t;
            }
            self.pending.push_back(msg);
        }
    }

    /// Sends `msg` and returns the first reply `pick` accepts.
    pub async fn ask<T>(&mut self, msg: ClientMsg, pick: impl FnMut(&ServerMsg) -> Option<T>) -> T {
        self.send(&msg).await;
        self.expect(pick).await
    }

    /// Whether no `message` frame reaches this socket before a barrier. The barrier is a
    /// read state of `own` (a conversation the user is in): the server pushes its copy
    /// through the same outbox as deliveries, behind anything already routed to this
    /// socket, so a message routed before it arrives first. Pending frames count.
    pub async fn gets_no_message_before_barrier(&mut self, own: &ConversationId) -> bool {
        if self
            .pending
            .iter()
            .any(|m| matches!(m, ServerMsg::Message { .. }))
        {
            return false;
        }
        self.send(&ClientMsg::MarkRead {
            conversation_id: own.clone(),
            seq: 0,
        })
        .await;
        // The direct answer and the outbox's copy.
        let mut read_states = 0;
        while read_states < 2 {
            match self.recv_wire().await {
                ServerMsg::Message { .. } => return false,
                ServerMsg::ReadState {
                    conversation_id, ..
                } if conversation_id == *own => read_states += 1,
                other => self.pending.push_back(other),
            }
        }
        true
    }

    /// Whether a frame `pick` accepts arrives within `wait` (pending frames count).
    pub async fn receives_within(
        &mut self,
        wait: Duration,
        mut pick: impl FnMut(&ServerMsg) -> bool,
    ) -> bool {
        if self.pending.iter().any(&mut pick) {
            return true;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let msg = ServerMsg::decode(&text).expect("valid ServerMsg");
                    if pick(&msg) {
                        return true;
                    }
                    self.pending.push_back(msg);
                }
                Ok(Some(Ok(_))) => {}
                Ok(_) | Err(_) => return false,
            }
        }
    }

    pub async fn recv_raw(&mut self) -> Option<Message> {
        tokio::time::timeout(TIMEOUT, self.ws.next())
            .await
            .expect("a frame in time")
            .map(|r| r.expect("no socket error"))
    }
}

/// A response from [`get`].
pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    /// The value of the `chat_session` cookie this response sets, if any.
    pub fn session_token(&self) -> Option<String> {
        self.headers
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| v.trim().strip_prefix("chat_session="))
            .map(|v| v.split(';').next().unwrap_or_default().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The `error.code` of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The code of an `error` frame (for [`Client::ask`] and [`Client::expect`]).
pub fn error_code(m: &ServerMsg) -> Option<app::protocol::ErrorCode> {
    match m {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// `POST path` with a JSON body and optionally the session cookie.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> HttpResponse {
    post_json_with(addr, path, body, token, "").await
}

/// [`post_json`] with extra header lines (each ending in `\r\n`), as a browser adds them.
pub async fn post_json_with(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
    token: Option<&str>,
    extra: &str,
) -> HttpResponse {
    let body = body.to_string();
    let cookie = token.map_or(String::new(), |t| format!("Cookie: chat_session={t}\r\n"));
    request(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{cookie}{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

/// `GET path` with the session cookie.
pub async fn get_with(addr: SocketAddr, path: &str, token: &str) -> HttpResponse {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: chat_session={token}\r\n\r\n"),
    )
    .await
}

/// `GET path` over HTTP/1.1 with `Connection: close`. A few lines of our own instead of an
/// HTTP client crate, whose features would change those SurrealDB is built with and force
/// a rebuild of it for the tests.
pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

pub async fn request(addr: SocketAddr, request: String) -> HttpResponse {
    request_from(std::net::Ipv4Addr::LOCALHOST.into(), addr, request).await
}

/// A TCP connection to `addr` from the loopback address `from` (any of 127.0.0.0/8): how
/// tests play clients at different addresses.
pub async fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// Sends a raw HTTP/1.1 `request` from the loopback address `from` and reads the answer
/// to the end.
pub async fn request_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    request: String,
) -> HttpResponse {
    let (status, headers, body) = exchange(from, addr, request.as_bytes()).await;
    HttpResponse {
        status,
        headers,
        body: String::from_utf8(body).expect("UTF-8 response"),
    }
}

/// A raw HTTP/1.1 exchange: the status, the header block, the body (de-chunked).
pub async fn exchange(
    from: std::net::IpAddr,
    addr: SocketAddr,
    request: &[u8],
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = connect_from(from, addr).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .expect("response in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header/body separator");
    let head = String::from_utf8(raw[..split].to_vec()).expect("UTF-8 headers");
    let body = &raw[split + 4..];
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (status, head, body)
}

/// A response with its body as bytes (a downloaded file).
pub struct Download {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Download {
    /// The value of header `name` (any case), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.headers, name)
    }
}

pub fn header_value(headers: &str, name: &str) -> Option<String> {
    headers
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
}

/// `GET path` with the session cookie (if any) and extra header lines; the body as bytes.
pub async fn download(addr: SocketAddr, path: &str, token: Option<&str>, extra: &str) -> Download {
    let cookie = token.map_or(String::new(), |t| format!("Cookie: chat_session={t}\r\n"));
    let (status, headers, body) = exchange(
        std::net::Ipv4Addr::LOCALHOST.into(),
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{cookie}{extra}\r\n")
            .as_bytes(),
    )
    .await;
    Download {
        status,
        headers,
        body,
    }
}

/// Uploads `bytes` as the file `name` for a message in `conversation`.
pub async fn upload(
    addr: SocketAddr,
    token: Option<&str>,
    conversation: &str,
    name: &str,
    bytes: &[u8],
) -> HttpResponse {
    let cookie = token.map_or(String::new(), |t| format!("Cookie: chat_session={t}\r\n"));
    let query = format!(
        "conversation_id={}&name={}",
        percent_encoding::utf8_percent_encode(conversation, percent_encoding::NON_ALPHANUMERIC),
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut request = format!(
        "POST /api/files?{query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{cookie}Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    )
    .into_bytes();
    request.extend_from_slice(bytes);
    let (status, headers, body) =
        exchange(std::net::Ipv4Addr::LOCALHOST.into(), addr, &request).await;
    HttpResponse {
        status,
        headers,
        body: String::from_utf8(body).expect("UTF-8 response"),
    }
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = s.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&s[..end]).expect("chunk size");
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        let rest = &s[end + 2..];
        out.extend_from_slice(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}
