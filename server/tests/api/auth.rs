//! Accounts, sessions and the checks on the WebSocket upgrade.

use serde_json::json;
use server::settings::{Secret, Settings};

use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

use crate::helpers::{
    disk_settings, get, get_with, post_json, post_json_with, spawn_app, spawn_app_with, PASSWORD,
};

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
    // Who is signed in is never kept by a browser or a shared cache.
    for res in [&res, &me] {
        let headers = res.headers.to_ascii_lowercase();
        assert!(headers.contains("cache-control: no-store"), "{headers}");
    }
    assert_eq!(
        me.json(),
        json!({"username": "alice", "display_name": "Alice A.", "admin": true})
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

#[tokio::test]
async fn password_guessing_is_throttled_per_account_before_the_password_is_checked() {
    let per_pair = server::settings::Limits::default().sign_in_failures;
    let app = spawn_app().await;
    app.sign_up("victim").await;
    app.sign_up("bystander").await;
    let attempt = |username: &str, password: &str| {
        let body = json!({"username": username, "password": password});
        let addr = app.addr;
        async move { post_json(addr, "/api/auth/signin", &body, None).await }
    };
    for _ in 0..per_pair {
        let res = attempt("victim", "guess guess").await;
        assert_eq!(res.error_code(), "wrong_credentials");
    }
    // Locked: even the right password is refused now, and the answer says for how long.
    let locked = attempt("victim", PASSWORD).await;
    assert_eq!(
        (locked.status, locked.error_code()),
        (429, "too_many_attempts".to_owned())
    );
    assert!(
        locked
            .headers
            .to_ascii_lowercase()
            .contains("retry-after: "),
        "{}",
        locked.headers
    );
    // Other accounts are not affected (the address limit is higher).
    assert_eq!(attempt("bystander", PASSWORD).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn forged_expired_and_unsigned_tokens_are_refused() {
    use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
    const SECRET: &[u8] = b"a secret only this test and its server know";
    let mut settings = Settings::for_tests();
    settings.jwt_secret = Some(Secret::new(String::from_utf8_lossy(SECRET)));
    let app = spawn_app_with(settings).await;
    let token = app.sign_up("alice").await;
    let here = format!("http://{}", app.addr);
    let genuine = decode::<serde_json::Value>(
        &token,
        &DecodingKey::from_secret(SECRET),
        &Validation::new(Algorithm::HS256),
    )
    .expect("the server signs with the configured secret")
    .claims;
    let now = genuine["iat"].as_u64().unwrap();
    let sign = |claims: &serde_json::Value, alg: Algorithm, secret: &[u8]| {
        encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    };

    let mut expired = genuine.clone();
    expired["exp"] = json!(now - 1);
    let mut longer = genuine.clone();
    longer["exp"] = json!(now + 10 * 365 * 24 * 3600);
    let payload = token.split('.').nth(1).unwrap();
    let forged = [
        ("expired", sign(&expired, Algorithm::HS256, SECRET)),
        (
            "another key",
            sign(&genuine, Algorithm::HS256, b"some other secret"),
        ),
        (
            "extended by another key",
            sign(&longer, Algorithm::HS256, b"guess"),
        ),
        (
            "another algorithm",
            sign(&genuine, Algorithm::HS512, SECRET),
        ),
        // {"alg":"none","typ":"JWT"}, no signature.
        (
            "alg none",
            format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}."),
        ),
    ];
    for (what, token) in &forged {
        assert_eq!(
            app.try_connect(Some(token), Some(&here)).await.err(),
            Some(401),
            "{what}"
        );
        let me = get_with(app.addr, "/api/auth/me", token).await;
        assert_eq!(me.status, 401, "{what}");
    }
    assert!(app.try_connect(Some(&token), Some(&here)).await.is_ok());
    app.stop().await;
}

/// A page on another site cannot sign people out, or sign them in to an account of its
/// choosing: browsers say where a request comes from, and such requests are refused.
#[tokio::test]
async fn auth_requests_from_another_site_are_refused() {
    let app = spawn_app().await;
    let token = app.sign_up("alice").await;
    let own = format!("Origin: http://{}\r\n", app.addr);
    let addr = app.addr;
    let sign_out_with = |extra: String| {
        let token = token.clone();
        async move { post_json_with(addr, "/api/auth/signout", &json!({}), Some(&token), &extra).await }
    };
    for extra in [
        "Origin: http://evil.example\r\n".to_owned(),
        format!("Origin: https://{}.evil.example\r\n", app.addr.ip()),
        "Sec-Fetch-Site: cross-site\r\n".to_owned(),
        format!("{own}Sec-Fetch-Site: cross-site\r\n"),
    ] {
        let out = sign_out_with(extra.clone()).await;
        assert_eq!(
            (out.status, out.error_code().as_str()),
            (403, "forbidden_origin"),
            "{extra}"
        );
        let login = json!({"username": "alice", "password": PASSWORD});
        let signin = post_json_with(app.addr, "/api/auth/signin", &login, None, &extra).await;
        assert_eq!(signin.status, 403, "{extra}");
    }
    assert_eq!(
        get_with(app.addr, "/api/auth/me", &token).await.status,
        200,
        "still signed in"
    );
    // The app's own pages (same origin) still sign out.
    let out = sign_out_with(format!("{own}Sec-Fetch-Site: same-origin\r\n")).await;
    assert_eq!(out.status, 204);
    assert_eq!(get_with(app.addr, "/api/auth/me", &token).await.status, 401);
    app.stop().await;
}
