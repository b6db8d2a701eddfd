use crate::helpers::{disk_settings, get, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_reports_a_working_database() {
    let app = spawn_app().await;
    let res = get(app.addr, "/healthz").await;
    assert_eq!(res.status, 200);
    assert!(res
        .headers
        .to_ascii_lowercase()
        .contains("content-type: application/json"));
    let body = res.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"]["ok"], true);
    assert_eq!(body["database"]["storage"], "memory");
    app.stop().await;
}

#[tokio::test]
async fn the_home_page_is_rendered_on_the_server_with_its_hydration_script() {
    let app = spawn_app().await;
    let res = get(app.addr, "/").await;
    assert_eq!(res.status, 200);
    let html = res.body;
    assert!(html.contains("<h1>Chat</h1>"), "{html}");
    assert!(html.contains("Loading…"), "status before hydration: {html}");
    assert!(html.contains("/pkg/chat.js"), "hydration script: {html}");
    assert!(html.contains("/pkg/chat.css"), "stylesheet: {html}");
    app.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let app = spawn_app().await;
    let res = get(app.addr, "/no/such/page").await;
    assert_eq!(res.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_clean_stop_frees_the_data_directory_for_an_immediate_restart() {
    // `spawn_app_with` starts a server once, without retrying: each restart must succeed
    // at the first attempt, right after the previous server's `stop` returned.
    let tmp = tempfile::tempdir().unwrap();
    // A data directory made readable by everyone, as a careless `mkdir` would.
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let settings = disk_settings(&dir);
    for expected_boots in 1..=3 {
        let app = spawn_app_with(settings.clone()).await;
        let body = get(app.addr, "/healthz").await.json();
        assert_eq!(body["database"]["storage"], "disk");
        assert_eq!(body["database"]["boots"], expected_boots);
        app.stop().await;
    }
    assert!(dir.join("db").is_dir());
    // Password hashes and every message live here: this user's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for d in [dir.clone(), dir.join("db")] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
    }
}

/// A client that sends half a request and then nothing does not hold up a graceful stop:
/// requests in flight get a few seconds, then the server stops anyway.
#[tokio::test]
async fn a_half_sent_request_does_not_hold_up_a_graceful_stop() {
    let app = spawn_app().await;
    let stalled = half_sent_requests(app.addr).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "stopped after {:?}",
        started.elapsed()
    );
    drop(stalled);
}

/// The same for the real process: SIGTERM with half-sent requests open ends it in
/// seconds, and the store was closed cleanly (the next start repairs nothing).
#[cfg(unix)]
#[tokio::test]
async fn sigterm_with_half_sent_requests_open_stops_the_process_cleanly() {
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_server"))
            .env("CHAT_ADDR", "127.0.0.1:0")
            .env("CHAT_DATA_DIR", tmp.path())
            .env("CHAT_LOG", "info,surrealdb=warn,surrealkv=warn")
            // Plain log lines, without terminal colour codes.
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server binary starts")
    };
    let mut server = start();
    let log = std::io::BufReader::new(server.stdout.take().unwrap());
    let addr = listening_addr(log);
    let stalled = half_sent_requests(addr).await;
    let started = std::time::Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::task::spawn_blocking(move || server.wait().unwrap()),
    )
    .await
    .expect("the process ends after SIGTERM")
    .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "stopped after {:?}",
        started.elapsed()
    );
    drop(stalled);
    let mut again = start();
    let log = std::io::BufReader::new(again.stdout.take().unwrap());
    let (addr, lines) = listening_addr_and_log(log);
    assert!(
        !lines.iter().any(|l| l.contains("not closed cleanly")),
        "{lines:#?}"
    );
    assert_eq!(get(addr, "/healthz").await.status, 200);
    let _ = again.kill();
    let _ = again.wait();
}

/// Two connections stuck in the middle of a request: one sent its headers but not its
/// body, one not even all its headers. Both are being read once `/healthz` has answered.
async fn half_sent_requests(addr: std::net::SocketAddr) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut body_missing = tokio::net::TcpStream::connect(addr).await.unwrap();
    body_missing
        .write_all(b"POST /api/auth/signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let mut headers_missing = tokio::net::TcpStream::connect(addr).await.unwrap();
    headers_missing
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert_eq!(get(addr, "/healthz").await.status, 200);
    vec![body_missing, headers_missing]
}

/// The address a server process logged as the one it listens on.
pub(crate) fn listening_addr(log: impl std::io::BufRead + Send + 'static) -> std::net::SocketAddr {
    listening_addr_and_log(log).0
}

/// The listening address, and every line logged before it; the rest of the log is read
/// (and dropped) by a thread, so that the server never writes into a closed pipe.
fn listening_addr_and_log(
    mut log: impl std::io::BufRead + Send + 'static,
) -> (std::net::SocketAddr, Vec<String>) {
    let mut lines = Vec::new();
    let mut raw = String::new();
    while log.read_line(&mut raw).expect("a log line") > 0 {
        let line = std::mem::take(&mut raw).trim_end().to_owned();
        if line.contains("listening") {
            let addr = line
                .split("addr=")
                .nth(1)
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("an address in {line:?}"));
            std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
            return (addr, lines);
        }
        lines.push(line);
    }
    panic!("the server exited before listening: {lines:#?}");
}
