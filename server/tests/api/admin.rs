//! Administration: the first account, the admin subcommands (through the running server's
//! socket, through the real binary, and over a stopped server's data directory), sign-up
//! modes, one's own sessions and password, backup and restore, a person's export.

use app::protocol::{ClientMsg, ConversationId, ServerMsg};
use serde_json::json;
use server::{
    admin::{cli::Command, socket, Request},
    settings::SignUpMode,
};
use std::{path::Path, time::Duration};
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

use crate::helpers::{
    disk_settings, download, get_with, post_json, post_json_with, request_from, spawn_app,
    spawn_app_with, upload, Client, HttpResponse, ServerProcess, Site, PASSWORD,
};

/// `method path` with the session cookie and no body.
async fn call(site: &Site, method: &str, path: &str, token: &str) -> HttpResponse {
    let addr = site.addr;
    request_from(
        std::net::Ipv4Addr::LOCALHOST.into(),
        addr,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: chat_session={token}\r\nContent-Length: 0\r\n\r\n"
        ),
    )
    .await
}

async fn admin(dir: &Path, request: Request) -> server::admin::Reply {
    socket::send(dir, &request)
        .await
        .expect("the socket answers")
        .expect("a server listens on the socket")
}

/// Waits (at most `within`) for the socket to be closed by the server with a policy close.
pub(crate) async fn closed_within(client: &mut Client, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, client.recv_raw()).await {
            Ok(Some(Message::Close(Some(frame)))) => return frame.code == CloseCode::Policy,
            Ok(None) => return true,
            Ok(Some(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn sign_in_body(username: &str, password: &str) -> serde_json::Value {
    json!({ "username": username, "password": password })
}

#[tokio::test]
async fn the_first_account_is_the_server_administrator_and_no_other_is() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let addr = app.addr;
    let me = |t: String| async move { get_with(addr, "/api/auth/me", &t).await.json() };
    assert_eq!(me(alice).await["admin"], json!(true));
    assert_eq!(me(bob).await["admin"], json!(false));
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_account_is_closed_out_within_a_second_and_cannot_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(disk_settings(dir.path())).await;
    app.sign_up("alice").await;
    let bob = app.user("bob").await;
    let mut bob = bob;
    let bob_token = app.sign_in("bob").await;
    let mut second = app.connect(&bob_token).await;
    second.recv().await; // hello

    let started = std::time::Instant::now();
    let reply = admin(
        dir.path(),
        Request::SetDisabled {
            username: "bob".into(),
            disabled: true,
        },
    )
    .await;
    assert!(reply.ok, "{}", reply.message);
    assert!(
        reply.message.contains("2 session(s) ended"),
        "{}",
        reply.message
    );
    assert!(closed_within(&mut bob, Duration::from_secs(1)).await);
    assert!(closed_within(&mut second, Duration::from_secs(1)).await);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    assert_eq!(
        get_with(app.addr, "/api/auth/me", &bob_token).await.status,
        401
    );
    let refused = post_json(
        app.addr,
        "/api/auth/signin",
        &sign_in_body("bob", PASSWORD),
        None,
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["error"]["code"], "account_disabled");
    // A wrong password is told only that it is wrong.
    let guess = post_json(
        app.addr,
        "/api/auth/signin",
        &sign_in_body("bob", "wrong guess here"),
        None,
    )
    .await;
    assert_eq!(guess.json()["error"]["code"], "wrong_credentials");

    let reply = admin(
        dir.path(),
        Request::SetDisabled {
            username: "bob".into(),
            disabled: false,
        },
    )
    .await;
    assert!(reply.ok, "{}", reply.message);
    app.sign_in("bob").await;
    app.stop().await;
}

#[tokio::test]
async fn admin_commands_refuse_unknown_people_and_bad_input_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(disk_settings(dir.path())).await;
    app.sign_up("alice").await;
    for (request, expected) in [
        (
            Request::SetAdmin {
                username: "nobody".into(),
                admin: true,
            },
            "no user named nobody",
        ),
        (
            Request::SetDisabled {
                username: "nobody".into(),
                disabled: true,
            },
            "no user named nobody",
        ),
        (
            Request::ResetPassword {
                username: "nobody".into(),
                password: "long enough password".into(),
            },
            "no user named nobody",
        ),
        (
            Request::CreateUser {
                username: "alice".into(),
                display_name: None,
                password: "long enough password".into(),
                admin: false,
            },
            "taken",
        ),
        (
            Request::CreateUser {
                username: "no spaces allowed".into(),
                display_name: None,
                password: "long enough password".into(),
                admin: false,
            },
            "username",
        ),
        (
            Request::CreateUser {
                username: "carol".into(),
                display_name: None,
                password: "short".into(),
                admin: false,
            },
            "password",
        ),
        (
            Request::ExportUser {
                username: "nobody".into(),
                to: dir.path().join("export"),
            },
            "no user named nobody",
        ),
        (
            Request::Backup {
                to: dir.path().to_owned(),
            },
            "already exists",
        ),
    ] {
        let name = format!("{request:?}");
        let reply = admin(dir.path(), request).await;
        assert!(!reply.ok, "{name} was carried out");
        assert!(
            reply.message.contains(expected),
            "{name}: {}",
            reply.message
        );
    }
    // Carol was never created.
    let res = post_json(
        app.addr,
        "/api/auth/signin",
        &sign_in_body("carol", "short"),
        None,
    )
    .await;
    assert_eq!(res.status, 401);
    // What is not a request is refused, and the socket still answers afterwards.
    let mut raw = tokio::net::UnixStream::connect(socket::path(dir.path()))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"{\"command\":\"drop_everything\"}\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut raw, &mut answer)
        .await
        .unwrap();
    assert!(answer.contains("\"ok\":false"), "{answer}");
    let reply = admin(
        dir.path(),
        Request::SetAdmin {
            username: "alice".into(),
            admin: true,
        },
    )
    .await;
    assert!(reply.ok, "{}", reply.message);
    app.stop().await;
}

#[tokio::test]
async fn the_server_binary_administers_a_running_server_and_a_stopped_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .args(args)
            .env("CHAT_DATA_DIR", data)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // No server yet: the command opens the data directory itself.
    let (ok, out) = run(
        &["user", "create", "root", "--display-name", "管理员"],
        "a long password\n",
    );
    assert!(
        ok && out.contains("created root (server administrator)"),
        "{out}"
    );

    let server = ServerProcess::start(&[("CHAT_DATA_DIR", data), ("CHAT_STORAGE", "disk")]);
    let res = post_json(
        server.addr,
        "/api/auth/signin",
        &sign_in_body("root", "a long password"),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["display_name"], "管理员");
    let token = server.sign_up("dave").await;
    let mut dave = server.connect(&token).await;
    dave.recv().await; // hello

    let (ok, out) = run(&["user", "disable", "dave"], "");
    assert!(ok && out.contains("dave is disabled"), "{out}");
    assert!(closed_within(&mut dave, Duration::from_secs(1)).await);
    let (ok, out) = run(&["user", "admin", "nobody"], "");
    assert!(!ok && out.contains("no user named nobody"), "{out}");
    let (ok, out) = run(&["user", "password", "root"], "another long password\n");
    assert!(ok && out.contains("1 session(s) ended"), "{out}");
    let res = post_json(
        server.addr,
        "/api/auth/signin",
        &sign_in_body("root", "another long password"),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    drop(server);
}

#[tokio::test]
async fn sign_up_can_be_closed_or_by_invitation_only() {
    let closed = spawn_app_with(server::settings::Settings {
        sign_up: SignUpMode::Closed,
        ..server::settings::Settings::for_tests()
    })
    .await;
    let body = json!({"username": "eve", "password": PASSWORD});
    let res = post_json(closed.addr, "/api/auth/signup", &body, None).await;
    assert_eq!(
        (res.status, res.json()["error"]["code"].clone()),
        (403, json!("sign_up_closed"))
    );
    closed.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(server::settings::Settings {
        sign_up: SignUpMode::Invite,
        ..disk_settings(dir.path())
    })
    .await;
    for invite in [
        None,
        Some("not-hex"),
        Some("0123456789abcdef0123456789abcdef"),
    ] {
        let mut body = json!({"username": "eve", "password": PASSWORD});
        if let Some(i) = invite {
            body["invite"] = json!(i);
        }
        let res = post_json(app.addr, "/api/auth/signup", &body, None).await;
        assert_eq!(
            (res.status, res.json()["error"]["code"].clone()),
            (403, json!("invite_invalid")),
            "{invite:?}"
        );
    }
    let invite = |uses: u32| {
        let dir = dir.path().to_owned();
        async move {
            let reply = admin(&dir, Request::Invite { hours: 1, uses }).await;
            assert!(reply.ok, "{}", reply.message);
            reply
                .message
                .split("invite=")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .expect("a link with a token")
                .to_owned()
        }
    };
    let addr = app.addr;
    let sign_up = |username: &str, token: &str| {
        let body = json!({"username": username, "password": PASSWORD, "invite": token});
        async move { post_json(addr, "/api/auth/signup", &body, None).await }
    };
    let reply = admin(
        dir.path(),
        Request::CreateUser {
            username: "taken".into(),
            display_name: None,
            password: PASSWORD.into(),
            admin: false,
        },
    )
    .await;
    assert!(reply.ok, "{}", reply.message);
    let token = invite(1).await;
    // A sign-up that fails for another reason does not use the invitation up.
    assert_eq!(sign_up("taken", &token).await.status, 409);
    assert_eq!(sign_up("eve", &token).await.status, 201);
    // Used up.
    let res = sign_up("mallory", &token).await;
    assert_eq!(res.json()["error"]["code"], "invite_invalid");

    let revoked = invite(5).await;
    let link = format!("http://chat.example/?invite={revoked}");
    let reply = admin(
        dir.path(),
        Request::RevokeInvite {
            token: link.clone(),
        },
    )
    .await;
    assert!(reply.ok, "{}", reply.message);
    let res = sign_up("mallory", &revoked).await;
    assert_eq!(res.json()["error"]["code"], "invite_invalid");
    let reply = admin(dir.path(), Request::RevokeInvite { token: link }).await;
    assert!(!reply.ok && reply.message.contains("no such invitation"));
    app.stop().await;
}

#[tokio::test]
async fn people_see_their_devices_and_end_one_or_all_the_others() {
    let app = spawn_app().await;
    let first = app.sign_up("alice").await;
    let second = app.sign_in("alice").await;
    let third = app.sign_in("alice").await;
    let mallory = app.sign_up("mallory").await;
    let mut on_second = app.connect(&second).await;
    on_second.recv().await;

    let list = get_with(app.addr, "/api/account/sessions", &first).await;
    assert_eq!(list.status, 200);
    let devices = list.json();
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 3, "{devices:?}");
    assert_eq!(
        devices
            .iter()
            .filter(|d| d["current"] == json!(true))
            .count(),
        1
    );
    assert!(devices.iter().all(|d| d["address"] == json!("127.0.0.1")));
    let addr = app.addr;
    let id_of = |token: &str| {
        // The one listed as current from that token's own list.
        let token = token.to_owned();
        async move {
            let list = get_with(addr, "/api/account/sessions", &token).await.json();
            list.as_array()
                .unwrap()
                .iter()
                .find(|d| d["current"] == json!(true))
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let second_id = id_of(&second).await;

    // Someone else's session is as unknown as a made-up one, and stays.
    for token in [&mallory] {
        let res = call(
            &app,
            "DELETE",
            &format!("/api/account/sessions/{second_id}"),
            token,
        )
        .await;
        assert_eq!(res.status, 404);
    }
    assert_eq!(
        get_with(app.addr, "/api/auth/me", &second).await.status,
        200
    );

    let res = call(
        &app,
        "DELETE",
        &format!("/api/account/sessions/{second_id}"),
        &first,
    )
    .await;
    assert_eq!(res.status, 204);
    assert!(closed_within(&mut on_second, Duration::from_secs(1)).await);
    assert_eq!(
        get_with(app.addr, "/api/auth/me", &second).await.status,
        401
    );

    // A page on another site cannot sign the user's devices out, nor change the password.
    for path in ["/api/account/sessions/end-others", "/api/account/password"] {
        let res = post_json_with(
            app.addr,
            path,
            &json!({"current": PASSWORD, "new": "taken over password"}),
            Some(&first),
            "Origin: http://evil.example\r\n",
        )
        .await;
        assert_eq!(res.status, 403, "{path}");
        assert_eq!(res.json()["error"]["code"], "forbidden_origin");
    }
    assert_eq!(get_with(app.addr, "/api/auth/me", &third).await.status, 200);

    let res = call(&app, "POST", "/api/account/sessions/end-others", &first).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["ended"], 1);
    assert_eq!(get_with(app.addr, "/api/auth/me", &third).await.status, 401);
    assert_eq!(get_with(app.addr, "/api/auth/me", &first).await.status, 200);
    // Signed out, nothing is listed or ended.
    assert_eq!(
        get_with(app.addr, "/api/account/sessions", "nonsense")
            .await
            .status,
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn changing_a_password_needs_the_current_one_and_ends_the_other_sessions() {
    let app = spawn_app().await;
    let here = app.sign_up("alice").await;
    let other = app.sign_in("alice").await;
    let change = |current: &str, new: &str| json!({"current": current, "new": new});

    let res = post_json(
        app.addr,
        "/api/account/password",
        &change("wrong password", "brand new password"),
        Some(&here),
    )
    .await;
    assert_eq!(
        (res.status, res.json()["error"]["code"].clone()),
        (403, json!("wrong_password"))
    );
    let res = post_json(
        app.addr,
        "/api/account/password",
        &change(PASSWORD, "short"),
        Some(&here),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(get_with(app.addr, "/api/auth/me", &other).await.status, 200);

    let res = post_json(
        app.addr,
        "/api/account/password",
        &change(PASSWORD, "brand new password"),
        Some(&here),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["ended"], 1);
    assert_eq!(get_with(app.addr, "/api/auth/me", &other).await.status, 401);
    assert_eq!(get_with(app.addr, "/api/auth/me", &here).await.status, 200);
    let old = post_json(
        app.addr,
        "/api/auth/signin",
        &sign_in_body("alice", PASSWORD),
        None,
    )
    .await;
    assert_eq!(old.status, 401);
    let new = post_json(
        app.addr,
        "/api/auth/signin",
        &sign_in_body("alice", "brand new password"),
        None,
    )
    .await;
    assert_eq!(new.status, 200);
    app.stop().await;
}

/// Sends `n` messages from `client` into `conversation`; their seqs.
async fn send_all(
    client: &mut Client,
    conversation: &ConversationId,
    n: usize,
    tag: &str,
) -> Vec<u64> {
    let mut seqs = Vec::new();
    for i in 0..n {
        let id = format!("{tag}-{i}");
        let seq = client
            .ask(
                ClientMsg::Send {
                    conversation_id: conversation.clone(),
                    client_msg_id: app::domain::ClientMsgId::parse(&id).unwrap(),
                    body: Some(app::domain::MessageBody::parse(&format!("{tag} {i}")).unwrap()),
                    reply_to: None,
                    attachments: Vec::new(),
                },
                |m| match m {
                    ServerMsg::Ack {
                        client_msg_id,
                        message,
                    } if *client_msg_id == id => Some(message.seq),
                    _ => None,
                },
            )
            .await;
        seqs.push(seq);
    }
    seqs
}

#[tokio::test]
async fn a_backup_taken_while_the_server_runs_restores_every_message_and_file_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = spawn_app_with(disk_settings(&data)).await;
    let token_of_alice = app.sign_up("alice").await;
    let mut alice = app.connect(&token_of_alice).await;
    alice.recv().await; // hello
    alice.start().await;
    app.sign_up("bob").await;
    let dm = crate::chat::open_direct(&mut alice, "bob").await.id;
    let mut before = send_all(&mut alice, &dm, 20, "before").await;
    let photo = b"not an image, a text file".repeat(1000);
    let file = upload(app.addr, Some(&token_of_alice), &dm.0, "notes.txt", &photo).await;
    assert_eq!(file.status, 201, "{}", file.body);
    let file_id = file.json()["id"].as_str().unwrap().to_owned();
    let with_file = alice
        .ask(
            ClientMsg::Send {
                conversation_id: dm.clone(),
                client_msg_id: app::domain::ClientMsgId::parse("with-file").unwrap(),
                body: None,
                reply_to: None,
                attachments: vec![app::domain::FileId::parse(&file_id).unwrap()],
            },
            |m| match m {
                ServerMsg::Ack { message, .. } => Some(message.seq),
                _ => None,
            },
        )
        .await;
    before.push(with_file);

    let backup = dir.path().join("backup");
    let reply = admin(&data, Request::Backup { to: backup.clone() }).await;
    assert!(reply.ok, "{}", reply.message);
    assert!(backup.join("backup.json").exists() && backup.join("database.surql").exists());
    assert!(!dir.path().join("backup.partial").exists());
    // After the snapshot: not in the backup, and nothing breaks.
    send_all(&mut alice, &dm, 5, "after").await;
    let export = dir.path().join("alice-export");
    let reply = admin(
        &data,
        Request::ExportUser {
            username: "alice".into(),
            to: export.clone(),
        },
    )
    .await;
    assert!(
        reply.ok && reply.message.contains("26 message(s), 1 file(s)"),
        "{}",
        reply.message
    );
    assert_eq!(
        std::fs::read(export.join("files").join(format!("{file_id}-notes.txt"))).unwrap(),
        photo
    );
    let messages: serde_json::Value =
        serde_json::from_slice(&std::fs::read(export.join("messages.json")).unwrap()).unwrap();
    assert_eq!(messages.as_array().unwrap().len(), 26);
    assert_eq!(messages[0]["body"], "before 0");
    drop(alice);
    app.stop().await;

    // Restoring needs an empty directory.
    let settings = |d: &Path| disk_settings(d);
    let err = server::admin::cli::run(
        Command::Restore {
            from: backup.clone(),
        },
        &settings(&data),
    )
    .await
    .expect_err("restoring over live data is refused");
    assert!(err.to_string().contains("not empty"), "{err}");
    let restored = dir.path().join("restored");
    server::admin::cli::run(
        Command::Restore {
            from: backup.clone(),
        },
        &settings(&restored),
    )
    .await
    .expect("restores");

    let app = spawn_app_with(disk_settings(&restored)).await;
    let token = app.sign_in("alice").await;
    let mut alice = app.connect(&token).await;
    alice.recv().await; // hello
    alice.start().await;
    let history = alice
        .ask(
            ClientMsg::History {
                conversation_id: dm.clone(),
                before_seq: None,
                limit: Some(100),
            },
            |m| match m {
                ServerMsg::History { messages, .. } => Some(messages.clone()),
                _ => None,
            },
        )
        .await;
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    for seq in &before {
        assert!(seqs.contains(seq), "message {seq} lost: {seqs:?}");
    }
    assert!(history.iter().all(|m| !m.body.starts_with("after")));
    let got = download(app.addr, &format!("/api/files/{file_id}"), Some(&token), "").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, photo);
    drop(alice);
    app.stop().await;

    // With the server stopped, the command does the backup itself.
    let offline = dir.path().join("offline-backup");
    let said = server::admin::cli::run(
        Command::Backup {
            to: offline.clone(),
        },
        &settings(&restored),
    )
    .await
    .expect("backs up a stopped server");
    assert!(said.contains("backup written"), "{said}");
}
