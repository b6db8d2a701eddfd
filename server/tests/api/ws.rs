use app::protocol::{ClientMsg, ErrorCode, ServerMsg, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use futures::StreamExt;
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

use crate::helpers::spawn_app;

fn assert_error(msg: ServerMsg, want: ErrorCode) {
    match msg {
        ServerMsg::Error { code, .. } => assert_eq!(code, want),
        other => panic!("expected error {want:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_new_socket_is_greeted_with_the_protocol_version() {
    let app = spawn_app().await;
    let token = app.sign_up("alice").await;
    let mut client = app.connect(&token).await;
    match client.recv().await {
        ServerMsg::Hello {
            protocol_version,
            me,
            admin,
            ..
        } => {
            assert_eq!(protocol_version, PROTOCOL_VERSION);
            assert_eq!(
                (me.username.as_str(), me.display_name.as_str()),
                ("alice", "ALICE")
            );
            assert!(admin, "the first account administers the server");
        }
        other => panic!("expected hello, got {other:?}"),
    }
    let token = app.sign_up("bob").await;
    let mut bob = app.connect(&token).await;
    assert!(matches!(
        bob.recv().await,
        ServerMsg::Hello { admin: false, .. }
    ));
    app.stop().await;
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong_carrying_the_same_nonce() {
    let app = spawn_app().await;
    let mut client = app.user("alice").await;
    for nonce in [1, 42, u64::MAX] {
        client.send(&ClientMsg::Ping { nonce }).await;
        match client.recv().await {
            ServerMsg::Pong {
                nonce: got,
                server_time_ms,
            } => {
                assert_eq!(got, nonce);
                assert!(server_time_ms > 1_600_000_000_000, "{server_time_ms}");
            }
            other => panic!("expected pong, got {other:?}"),
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_frames_get_typed_errors_and_the_socket_stays_usable() {
    let app = spawn_app().await;
    let mut client = app.user("alice").await;

    client.send_raw(Message::text("{not json")).await;
    assert_error(client.recv().await, ErrorCode::BadFrame);

    client
        .send_raw(Message::text(r#"{"type":"format_disk"}"#))
        .await;
    assert_error(client.recv().await, ErrorCode::BadFrame);

    client.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_error(client.recv().await, ErrorCode::UnsupportedFrame);

    let oversized = format!(
        r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#,
        "x".repeat(MAX_FRAME_BYTES)
    );
    client.send_raw(Message::text(oversized)).await;
    assert_error(client.recv().await, ErrorCode::FrameTooLarge);

    client.send(&ClientMsg::Ping { nonce: 5 }).await;
    assert!(matches!(
        client.recv().await,
        ServerMsg::Pong { nonce: 5, .. }
    ));
    app.stop().await;
}

#[tokio::test]
async fn a_frame_beyond_the_transport_limit_closes_the_socket() {
    let app = spawn_app().await;
    let mut client = app.user("alice").await;
    let huge = "x".repeat(server::ws::TRANSPORT_LIMIT_BYTES + 1);
    client.send_raw(Message::text(huge)).await;
    // The server answers 1009, and gives the client time to read it before the unread
    // rest of the frame makes the kernel reset the connection.
    let next = tokio::time::timeout(crate::helpers::TIMEOUT, client.ws.next())
        .await
        .expect("the server reacts in time");
    match next {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a close frame with 1009, got {other:?}"),
    }
    app.stop().await;
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_the_socket_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::{
        coding::{Data, OpCode},
        Frame,
    };
    let app = spawn_app().await;
    let mut client = app.user("alice").await;
    let bad = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    client.send_raw(Message::Frame(bad)).await;
    let next = tokio::time::timeout(crate::helpers::TIMEOUT, client.ws.next())
        .await
        .expect("the server reacts in time");
    match next {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Invalid),
        other => panic!("expected a close frame with 1007, got {other:?}"),
    }
    app.stop().await;
}

#[tokio::test]
async fn shutdown_closes_open_sockets_with_going_away() {
    let app = spawn_app().await;
    let mut client = app.user("alice").await;
    let stopping = tokio::spawn(app.stop());
    match client.recv_raw().await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a close frame, got {other:?}"),
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn one_user_cannot_hold_more_than_the_socket_cap() {
    let app = spawn_app().await;
    let token = app.sign_up("hoarder").await;
    let here = format!("http://{}", app.addr);
    let mut held = Vec::new();
    for _ in 0..server::settings::Limits::default().sockets_per_user {
        held.push(app.connect(&token).await);
    }
    for _ in 0..3 {
        assert_eq!(
            app.try_connect(Some(&token), Some(&here)).await.err(),
            Some(429)
        );
    }
    // Others are not affected, and a freed slot can be used again.
    let other = app.sign_up("other").await;
    assert!(app.try_connect(Some(&other), Some(&here)).await.is_ok());
    drop(held.pop());
    assert!(
        app.connects_again(&token).await,
        "a closed socket frees its slot"
    );
    app.stop().await;
}

/// Upgrades that arrive at the same moment cannot pass the cap together: each socket takes
/// its place when its upgrade is accepted, before any frame.
#[tokio::test]
async fn concurrent_upgrades_cannot_pass_the_socket_cap_together() {
    let app = spawn_app().await;
    let token = app.sign_up("hoarder").await;
    let here = format!("http://{}", app.addr);
    let attempts = (0..server::settings::Limits::default().sockets_per_user + 16)
        .map(|_| app.try_connect(Some(&token), Some(&here)));
    let results = futures::future::join_all(attempts).await;
    let opened = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| r.as_ref().err() == Some(&429))
        .count();
    assert_eq!(
        (opened, refused),
        (server::settings::Limits::default().sockets_per_user, 16),
        "every attempt is either held or refused with 429"
    );
    drop(results);
    app.stop().await;
}

/// A socket that never sends its first frame (so live delivery never starts for it) still
/// fills up: once it is cut off as lagging it is told so and closed, and stops counting
/// only then.
#[tokio::test]
async fn a_socket_cut_off_before_its_first_frame_is_closed() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let bob_token = app.sign_up("bob").await;
    let mut silent = app.connect(&bob_token).await;
    assert!(matches!(silent.recv().await, ServerMsg::Hello { .. }));
    let dm = alice
        .ask(
            ClientMsg::OpenDirect {
                username: app::domain::Username::parse("bob").unwrap(),
            },
            |m| match m {
                ServerMsg::Conversation { conversation } => Some(conversation.id.clone()),
                _ => None,
            },
        )
        .await;
    // More messages than a socket's outbox holds, each waited for.
    for i in 0..=server::hub::OUTBOX_CAPACITY {
        let id = format!("m{i}");
        alice
            .ask(
                ClientMsg::Send {
                    conversation_id: dm.clone(),
                    client_msg_id: app::domain::ClientMsgId::parse(&id).unwrap(),
                    body: Some(app::domain::MessageBody::parse("flood").unwrap()),
                    attachments: Vec::new(),
                    reply_to: None,
                },
                |m| {
                    matches!(m, ServerMsg::Ack { client_msg_id, .. } if *client_msg_id == id)
                        .then_some(())
                },
            )
            .await;
    }
    // The silent socket is told it lagged and is closed with 1013 (try again later).
    let mut told = false;
    let code = loop {
        match silent.recv_raw().await {
            Some(Message::Text(t)) => {
                told |= matches!(ServerMsg::decode(&t), Ok(ServerMsg::Lagging));
            }
            Some(Message::Close(frame)) => break frame.map(|f| f.code),
            Some(_) => {}
            None => break None,
        }
    };
    assert!(told, "told it lagged");
    assert_eq!(code, Some(CloseCode::Again));
    app.stop().await;
}
