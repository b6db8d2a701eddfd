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
    assert_eq!(body["search"]["unindexed_conversations"], 0);
    app.stop().await;
}

#[tokio::test]
async fn the_home_page_is_rendered_on_the_server_with_its_hydration_script() {
    let app = spawn_app().await;
    // The list, and a conversation's address (the same page, opened on it once hydrated).
    for path in ["/", "/c/ann~bob", "/c/ann~bob/42"] {
        let res = get(app.addr, path).await;
        assert_eq!(res.status, 200, "{path}");
        let html = res.body;
        assert!(html.contains("<h1>Chat</h1>"), "{html}");
        assert!(html.contains("Loading…"), "status before hydration: {html}");
        assert!(html.contains("/pkg/chat.js"), "hydration script: {html}");
        assert!(html.contains("/pkg/chat.css"), "stylesheet: {html}");
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let app = spawn_app().await;
    for path in ["/no/such/page", "/c/a/b/c"] {
        assert_eq!(get(app.addr, path).await.status, 404, "{path}");
    }
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
    let stalled = crate::hostile::half_sent_requests(app.addr).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "stopped after {:?}",
        started.elapsed()
    );
    drop(stalled);
}

/// `/metrics` as a scraper with the token reads it, after two users exchanged a message.
#[tokio::test]
async fn metrics_are_served_to_the_token_only_and_follow_the_chat() {
    use crate::chat::{open_direct, send_msg};
    use crate::helpers::{request, Client};
    use app::protocol::ServerMsg;

    const TOKEN: &str = "scrape-me-0123456789";
    let scrape = |addr, auth: Option<&str>| {
        let header = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        request(
            addr,
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{header}\r\n"),
        )
    };
    // Off unless a token is set.
    let off = spawn_app().await;
    assert_eq!(scrape(off.addr, None).await.status, 404);
    assert_eq!(scrape(off.addr, Some("Bearer x")).await.status, 404);
    off.stop().await;

    let app = spawn_app_with(server::settings::Settings {
        metrics_token: Some(server::settings::Secret::new(TOKEN)),
        ..server::settings::Settings::for_tests()
    })
    .await;
    for auth in [None, Some("Bearer wrong-token-0123456789"), Some(TOKEN)] {
        let res = scrape(app.addr, auth).await;
        assert_eq!(res.status, 401, "{auth:?}");
        assert!(
            res.headers
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{}",
            res.headers
        );
    }
    let mut ann: Client = app.user("ann").await;
    let mut bob: Client = app.user("bob").await;
    let dm = open_direct(&mut ann, "bob").await;
    ann.send(&send_msg(&dm.id, "m-1", "hello")).await;
    ann.expect(|m| matches!(m, ServerMsg::Ack { .. }).then_some(()))
        .await;
    bob.expect(|m| matches!(m, ServerMsg::Message { .. }).then_some(()))
        .await;

    let res = scrape(app.addr, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(
        res.headers.contains("text/plain; version=0.0.4"),
        "{}",
        res.headers
    );
    let value = |name: &str| -> f64 {
        res.body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{}", res.body))
    };
    assert_eq!(value("chat_sockets"), 2.0);
    assert_eq!(value("chat_commit_entries_count"), 1.0);
    assert_eq!(value("chat_commit_entries_sum"), 1.0);
    assert_eq!(value("chat_commit_seconds_count"), 1.0);
    assert_eq!(value("chat_commit_failures_total{reason=\"error\"}"), 0.0);
    assert_eq!(value("chat_sockets_lagged_total"), 0.0);
    // Each start's frame, the open and the send, at least.
    assert!(value("chat_frames_received_total") >= 3.0, "{}", res.body);
    // The ack and the message, at least (answers to a socket's own requests, such as its
    // hello, are written directly, not through the hub).
    assert!(value("chat_socket_events_total") >= 2.0, "{}", res.body);
    assert!(res.body.contains("# HELP chat_sockets "), "{}", res.body);
    assert!(
        res.body.contains("# TYPE chat_commit_seconds histogram"),
        "{}",
        res.body
    );

    drop((ann, bob));
    // The sockets' tasks see the close and leave the hub.
    let mut open = 2.0;
    for _ in 0..100 {
        let res = scrape(app.addr, Some(&format!("Bearer {TOKEN}"))).await;
        open = res
            .body
            .lines()
            .find_map(|l| l.strip_prefix("chat_sockets ")?.parse().ok())
            .unwrap();
        if open == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(open, 0.0);
    app.stop().await;
}
