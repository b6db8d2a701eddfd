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
