//! Accounts, sessions and the checks on the WebSocket upgrade.

use serde_json::json;

use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

use crate::helpers::{disk_settings, get, get_with, post_json, spawn_app, spawn_app_with};

#[tokio::test]
async fn signing_up_signs_in_and_me_says_who() {
    let app = spawn_app().await;
    let res = post_json(
        app.addr,
        "/api/auth/signup",
        &json!({"username": "Alice", "password": "correct horse", "display_name": "Alice A."}),
        None,
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let set_cookie = res.headers.to_ascii_lowercase();
    assert!(set_cookie.contains("httponly") && set_cookie.contains("samesite=lax"));
    let token = res.session_token().unwrap();
    let me = get_with(app.addr, "/api/auth/me", &token).await;
    assert_eq!(me.status, 200);
    assert_eq!(
        me.json(),
        json!({"username": "alice", "display_name": "Alice A."})
    );

    let again = post_json(
        app.addr,
        "/api/auth/signin",
        &json!({"username": "alice", "password": "correct horse"}),
        None,
    )
    .await;
    assert_eq!(again.status, 200);
    assert!(again.session_token().is_some());
    app.stop().await;
}

#[tokio::test]
async fn bad_sign_ups_and_sign_ins_get_clear_codes() {
    let app = spawn_app().await;
    app.sign_up("bob").await;
    let cases = [
        (
            "/api/auth/signup",
            json!({"username": "bob", "password": "long enough"}),
            409,
            "username_taken",
        ),
        (
            "/api/auth/signup",
            json!({"username": "b", "password": "long enough"}),
            400,
            "invalid_input",
        ),
        (
            "/api/auth/signup",
            json!({"username": "<script>", "password": "long enough"}),
            400,
            "invalid_input",
        ),
        (
            "/api/auth/signup",
            json!({"username": "carol", "password": "short"}),
            400,
            "invalid_input",
        ),
        (
            "/api/auth/signin",
            json!({"username": "bob", "password": "wrong password"}),
            401,
            "wrong_credentials",
        ),
        (
            "/api/auth/signin",
            json!({"username": "nobody", "password": "whatever1"}),
            401,
            "wrong_credentials",
        ),
    ];
    for (path, body, status, code) in cases {
        let res = post_json(app.addr, path, &body, None).await;
        assert_eq!(
            (res.status, res.error_code()),
            (status, code.to_owned()),
            "{path} {body}"
        );
    }
    let unknown_field = post_json(
        app.addr,
        "/api/auth/signin",
        &json!({"username": "bob", "password": "x", "admin": true}),
        None,
    )
    .await;
    assert_eq!(unknown_field.status, 422);
    assert_eq!(get(app.addr, "/api/auth/me").await.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn sockets_need_a_live_session_and_this_origin() {
    let app = spawn_app().await;
    let token = app.sign_up("alice").await;
    let here = format!("http://{}", app.addr);
    assert_eq!(app.try_connect(None, Some(&here)).await.err(), Some(401));
    assert_eq!(
        app.try_connect(Some("not.a.jwt"), Some(&here)).await.err(),
        Some(401)
    );
    let mut tampered = token.clone();
    tampered.pop();
    assert_eq!(
        app.try_connect(Some(&tampered), Some(&here)).await.err(),
        Some(401)
    );
    assert_eq!(
        app.try_connect(Some(&token), Some("http://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert!(app.try_connect(Some(&token), Some(&here)).await.is_ok());
    // Non-browser clients send no Origin.
    assert!(app.try_connect(Some(&token), None).await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn signing_out_closes_the_sessions_sockets_and_kills_its_token() {
    let app = spawn_app().await;
    let token = app.sign_up("alice").await;
    let mut socket = app.connect(&token).await;
    socket.recv().await; // hello
    let res = post_json(app.addr, "/api/auth/signout", &json!({}), Some(&token)).await;
    assert_eq!(res.status, 204);
    assert!(res.headers.contains("Max-Age=0"));
    match socket.recv_raw().await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Policy),
        other => panic!("expected the socket to be closed, got {other:?}"),
    }
    assert_eq!(get_with(app.addr, "/api/auth/me", &token).await.status, 401);
    let here = format!("http://{}", app.addr);
    assert_eq!(
        app.try_connect(Some(&token), Some(&here)).await.err(),
        Some(401)
    );
    app.stop().await;
}

#[tokio::test]
async fn accounts_and_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = disk_settings(dir.path());
    let app = spawn_app_with(settings.clone()).await;
    let token = app.sign_up("alice").await;
    app.stop().await;
    assert!(dir.path().join("jwt-secret").is_file());

    let app = spawn_app_with(settings).await;
    // The secret was kept, so the old token still works.
    assert_eq!(get_with(app.addr, "/api/auth/me", &token).await.status, 200);
    let res = post_json(
        app.addr,
        "/api/auth/signin",
        &json!({"username": "alice", "password": "correct horse battery"}),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    app.stop().await;
}
