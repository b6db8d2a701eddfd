//! The chat over real sockets: direct and room conversations, fan-out to every socket,
//! read state, resume after a reconnect, idempotent sends, restarts and bad frames.

use app::{
    domain::{ClientMsgId, MessageBody, RoomName, Username},
    protocol::{
        ClientMsg, ConversationId, ConversationSummary, ErrorCode, Message, Position, ServerMsg,
    },
};
use server::settings::Settings;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::helpers::{disk_settings, spawn_app, spawn_app_with, Client, TestApp};

pub(crate) fn send_msg(conv: &ConversationId, cmid: &str, body: &str) -> ClientMsg {
    ClientMsg::Send {
        conversation_id: conv.clone(),
        client_msg_id: ClientMsgId::parse(cmid).unwrap(),
        body: Some(MessageBody::parse(body).unwrap()),
        attachments: Vec::new(),
        reply_to: None,
    }
}

pub(crate) async fn open_direct(client: &mut Client, with: &str) -> ConversationSummary {
    client
        .ask(
            ClientMsg::OpenDirect {
                username: Username::parse(with).unwrap(),
            },
            |m| match m {
                ServerMsg::Conversation { conversation } => Some(conversation.clone()),
                _ => None,
            },
        )
        .await
}

pub(crate) async fn create_room(client: &mut Client, name: &str) -> ConversationSummary {
    client
        .ask(
            ClientMsg::CreateRoom {
                name: RoomName::parse(name).unwrap(),
                private: false,
            },
            |m| match m {
                ServerMsg::Conversation { conversation } => Some(conversation.clone()),
                _ => None,
            },
        )
        .await
}

/// Joins a room; the id of the conversation the server answers with.
pub(crate) async fn join_room(client: &mut Client, room: &ConversationId) -> ConversationId {
    client
        .ask(
            ClientMsg::JoinRoom {
                conversation_id: room.clone(),
            },
            |m| match m {
                ServerMsg::Conversation { conversation } => Some(conversation.id.clone()),
                _ => None,
            },
        )
        .await
}

pub(crate) async fn say(
    client: &mut Client,
    conv: &ConversationId,
    cmid: &str,
    body: &str,
) -> Message {
    let want = cmid.to_owned();
    client
        .ask(send_msg(conv, cmid, body), |m| match m {
            ServerMsg::Ack {
                client_msg_id,
                message,
            } if *client_msg_id == want => Some(message.clone()),
            ServerMsg::Error {
                client_msg_id: Some(id),
                code,
                message,
            } if *id == want => panic!("send {want} refused: {code:?} {message}"),
            _ => None,
        })
        .await
}

async fn next_message(client: &mut Client) -> Message {
    client
        .expect(|m| match m {
            ServerMsg::Message { message } => Some(message.clone()),
            _ => None,
        })
        .await
}

/// True when no `message` frame is on its way to `client` (see
/// `Client::gets_no_message_before_barrier`; `own` is one of its user's conversations).
async fn gets_no_message(client: &mut Client, own: &ConversationId) -> bool {
    client.gets_no_message_before_barrier(own).await
}

async fn error_code(client: &mut Client, msg: ClientMsg) -> ErrorCode {
    client
        .ask(msg, |m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await
}

pub(crate) async fn history(
    client: &mut Client,
    conv: &ConversationId,
    before: Option<u64>,
) -> (Vec<u64>, bool) {
    client
        .ask(
            ClientMsg::History {
                conversation_id: conv.clone(),
                before_seq: before,
                limit: Some(50),
            },
            |m| match m {
                ServerMsg::History {
                    messages, has_more, ..
                } => Some((messages.iter().map(|m| m.seq).collect(), *has_more)),
                _ => None,
            },
        )
        .await
}

/// The next `seen` frame: (conversation, who read, up to where).
pub(crate) async fn next_seen(client: &mut Client) -> (ConversationId, String, u64) {
    client
        .expect(|m| match m {
            ServerMsg::Seen {
                conversation_id,
                username,
                last_read_seq,
            } => Some((conversation_id.clone(), username.clone(), *last_read_seq)),
            _ => None,
        })
        .await
}

pub(crate) async fn conversations(client: &mut Client) -> Vec<ConversationSummary> {
    client
        .ask(ClientMsg::ListConversations { limit: None }, |m| match m {
            ServerMsg::Conversations { conversations, .. } => Some(conversations.clone()),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn two_users_chat_in_a_direct_conversation_and_a_third_cannot_get_in() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let mut eve = app.user("eve").await;

    let dm = open_direct(&mut alice, "bob").await;
    assert_eq!(dm.title, "BOB");
    let same = open_direct(&mut bob, "alice").await;
    assert_eq!(same.id, dm.id, "one conversation per pair");

    let sent = say(&mut alice, &dm.id, "a1", "hi bob").await;
    assert_eq!(sent.seq, 1);
    let got = next_message(&mut bob).await;
    assert_eq!(
        (got.seq, got.body.as_str(), got.sender.as_str()),
        (1, "hi bob", "alice")
    );
    say(&mut bob, &dm.id, "b1", "hi alice").await;
    let got = next_message(&mut alice).await;
    assert_eq!((got.seq, got.body.as_str()), (2, "hi alice"));

    // Eve can neither read, post, mark read nor join.
    let history_req = ClientMsg::History {
        conversation_id: dm.id.clone(),
        before_seq: None,
        limit: None,
    };
    assert_eq!(error_code(&mut eve, history_req).await, ErrorCode::NotFound);
    assert_eq!(
        error_code(&mut eve, send_msg(&dm.id, "e1", "let me in")).await,
        ErrorCode::NotFound
    );
    let mark = ClientMsg::MarkRead {
        conversation_id: dm.id.clone(),
        seq: 2,
    };
    assert_eq!(error_code(&mut eve, mark).await, ErrorCode::NotFound);
    // To an outsider someone else's direct conversation does not exist; to its members it
    // is not a room.
    let join = ClientMsg::JoinRoom {
        conversation_id: dm.id.clone(),
    };
    assert_eq!(
        error_code(&mut eve, join.clone()).await,
        ErrorCode::NotFound
    );
    assert_eq!(error_code(&mut bob, join).await, ErrorCode::InvalidInput);
    assert_eq!(
        history(&mut alice, &dm.id, None).await.0,
        [1, 2],
        "nothing stored by eve"
    );
    let own = create_room(&mut eve, "eve's own").await.id;
    assert!(gets_no_message(&mut eve, &own).await);
    app.stop().await;
}

#[tokio::test]
async fn every_socket_of_a_user_gets_every_message_and_read_state() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let token = app.sign_up("bob").await;
    let mut bob1 = app.connect(&token).await;
    let mut bob2 = app.connect(&token).await;
    let mut bob3 = app.connect(&token).await;
    for b in [&mut bob1, &mut bob2, &mut bob3] {
        b.recv().await; // hello
        b.start().await;
    }
    let dm = open_direct(&mut alice, "bob").await;
    for i in 1..=3 {
        say(
            &mut alice,
            &dm.id,
            &format!("m{i}"),
            &format!("message {i}"),
        )
        .await;
    }
    for b in [&mut bob1, &mut bob2, &mut bob3] {
        for want in 1..=3 {
            assert_eq!(next_message(b).await.seq, want);
        }
    }
    // Bob's own message reaches his other sockets too.
    say(&mut bob1, &dm.id, "b1", "from tab one").await;
    assert_eq!(next_message(&mut bob2).await.body, "from tab one");
    assert_eq!(next_message(&mut bob3).await.body, "from tab one");

    let mark = ClientMsg::MarkRead {
        conversation_id: dm.id.clone(),
        seq: 4,
    };
    bob1.send(&mark).await;
    for b in [&mut bob2, &mut bob3] {
        let (read, unread) = b
            .expect(|m| match m {
                ServerMsg::ReadState {
                    last_read_seq,
                    unread,
                    ..
                } => Some((*last_read_seq, *unread)),
                _ => None,
            })
            .await;
        assert_eq!((read, unread), (4, 0));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_room_delivers_to_its_members_until_they_leave() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let mut carol = app.user("carol").await;
    let room = create_room(&mut alice, "Rustaceans").await;
    assert_eq!(room.title, "Rustaceans");
    // The server's own room cannot be imitated.
    for taken in ["General", " general "] {
        let spoof = ClientMsg::CreateRoom {
            name: RoomName::parse(taken).unwrap(),
            private: false,
        };
        assert_eq!(error_code(&mut alice, spoof).await, ErrorCode::InvalidInput);
    }
    for c in [&mut bob, &mut carol] {
        let listed = c
            .ask(
                ClientMsg::ListRooms {
                    after: None,
                    limit: None,
                },
                |m| match m {
                    ServerMsg::Rooms { rooms, .. } => Some(rooms.clone()),
                    _ => None,
                },
            )
            .await;
        assert!(listed.iter().any(|r| r.id == room.id && !r.joined));
        assert!(
            listed.iter().any(|r| r.name == "General"),
            "the default room is listed"
        );
        let joined = join_room(c, &room.id).await;
        assert_eq!(joined, room.id);
    }
    say(&mut alice, &room.id, "r1", "welcome").await;
    assert_eq!(next_message(&mut bob).await.body, "welcome");
    assert_eq!(next_message(&mut carol).await.body, "welcome");

    bob.ask(
        ClientMsg::LeaveRoom {
            conversation_id: room.id.clone(),
        },
        |m| matches!(m, ServerMsg::Left { .. }).then_some(()),
    )
    .await;
    say(&mut carol, &room.id, "r2", "bye bob").await;
    assert_eq!(next_message(&mut alice).await.body, "bye bob");
    let own = create_room(&mut bob, "bob's own").await.id;
    assert!(
        gets_no_message(&mut bob, &own).await,
        "no delivery after leaving"
    );
    app.stop().await;
}

#[tokio::test]
async fn unread_counts_and_recent_order_follow_sends_and_reads() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let mut carol = app.user("carol").await;
    let ab = open_direct(&mut bob, "alice").await;
    let ac = open_direct(&mut carol, "alice").await;
    say(&mut bob, &ab.id, "b1", "one").await;
    say(&mut bob, &ab.id, "b2", "two").await;
    say(&mut carol, &ac.id, "c1", "three").await;

    let list = conversations(&mut alice).await;
    let lines: Vec<(String, u64)> = list.iter().map(|c| (c.title.clone(), c.unread)).collect();
    assert_eq!(lines, [("CAROL".to_owned(), 1), ("BOB".to_owned(), 2)]);
    assert_eq!(list[1].last_message.as_ref().unwrap().text, "two");

    say(&mut bob, &ab.id, "b3", "four").await;
    let list = conversations(&mut alice).await;
    assert_eq!(list[0].title, "BOB", "the newest activity comes first");
    assert_eq!(list[0].unread, 3);

    alice
        .ask(
            ClientMsg::MarkRead {
                conversation_id: ab.id.clone(),
                seq: 2,
            },
            |m| matches!(m, ServerMsg::ReadState { .. }).then_some(()),
        )
        .await;
    let unread: Vec<u64> = conversations(&mut alice)
        .await
        .iter()
        .map(|c| c.unread)
        .collect();
    assert_eq!(unread, [1, 1]);
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_reconnects_mid_burst_ends_with_every_message_once_in_order() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let token = app.sign_up("bob").await;
    let mut bob = app.connect(&token).await;
    bob.recv().await;
    bob.start().await;
    let dm = open_direct(&mut alice, "bob").await;

    const N: u64 = 1000;
    // Alice pipelines the whole burst; acks come back as the server stores them.
    let sender = {
        let conv = dm.id.clone();
        tokio::spawn(async move {
            for i in 1..=N {
                alice
                    .send(&send_msg(
                        &conv,
                        &format!("burst-{i}"),
                        &format!("message {i}"),
                    ))
                    .await;
            }
            let mut acked = 0;
            while acked < N {
                if let ServerMsg::Ack { .. } = alice.recv().await {
                    acked += 1;
                }
            }
            alice
        })
    };

    let mut got: Vec<u64> = Vec::new();
    while got.len() < 200 {
        got.push(next_message(&mut bob).await.seq);
    }
    drop(bob); // the connection drops mid-burst
    let mut bob = app.connect(&token).await;
    bob.recv().await; // hello
    bob.send(&ClientMsg::Resume {
        positions: vec![Position {
            conversation_id: dm.id.clone(),
            seq: *got.last().unwrap(),
        }],
    })
    .await;
    while (got.len() as u64) < N {
        match bob.recv().await {
            ServerMsg::Message { message } => got.push(message.seq),
            ServerMsg::Resumed | ServerMsg::Presence { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        got,
        (1..=N).collect::<Vec<_>>(),
        "all, in order, none twice"
    );
    assert!(gets_no_message(&mut bob, &dm.id).await, "and nothing more");

    // A retried send returns the original and stores nothing new.
    let mut alice = sender.await.unwrap();
    let again = say(&mut alice, &dm.id, "burst-7", "message 7, retried").await;
    assert_eq!((again.seq, again.body.as_str()), (7, "message 7"));
    let (page, has_more) = history(&mut alice, &dm.id, None).await;
    assert_eq!(page.last(), Some(&N));
    assert!(has_more);
    app.stop().await;
}

#[tokio::test]
async fn accounts_history_and_unread_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = disk_settings(dir.path());
    let app = spawn_app_with(settings.clone()).await;
    let alice_token = app.sign_up("alice").await;
    let bob_token = app.sign_up("bob").await;
    let mut alice = app.connect(&alice_token).await;
    alice.recv().await;
    alice.start().await;
    let dm = open_direct(&mut alice, "bob").await;
    for i in 1..=3 {
        say(
            &mut alice,
            &dm.id,
            &format!("m{i}"),
            &format!("before restart {i}"),
        )
        .await;
    }
    drop(alice);
    app.stop().await;

    let app: TestApp = spawn_app_with(settings).await;
    let mut bob = app.connect(&bob_token).await;
    bob.recv().await;
    bob.start().await;
    let list = conversations(&mut bob).await;
    assert_eq!((list[0].title.as_str(), list[0].unread), ("ALICE", 3));
    assert_eq!(history(&mut bob, &dm.id, None).await.0, [1, 2, 3]);
    let mut alice = app.connect(&alice_token).await;
    alice.recv().await;
    alice.start().await;
    // Sending marked it read for Alice: stored on the way down, with her messages.
    let list = conversations(&mut alice).await;
    assert_eq!((list[0].title.as_str(), list[0].unread), ("BOB", 0));
    // A send whose ack was lost in the restart, re-sent: the original, not a copy.
    let again = say(&mut alice, &dm.id, "m3", "before restart 3, re-sent").await;
    assert_eq!((again.seq, again.body.as_str()), (3, "before restart 3"));
    assert_eq!(say(&mut alice, &dm.id, "m4", "after restart").await.seq, 4);
    app.stop().await;
}

#[tokio::test]
async fn bad_frames_get_their_error_and_store_nothing() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let dm = open_direct(&mut alice, "bob").await;
    let conv = serde_json::to_string(&dm.id).unwrap();
    let long = "x".repeat(MessageBody::MAX + 1);
    let cases: Vec<(String, ErrorCode)> = vec![
        ("{not json".into(), ErrorCode::BadFrame),
        (r#"{"type":"launch_rockets"}"#.into(), ErrorCode::BadFrame),
        (format!(r#"{{"type":"send","conversation_id":{conv},"client_msg_id":"c1","body":""}}"#), ErrorCode::InvalidInput),
        (format!(r#"{{"type":"send","conversation_id":{conv},"client_msg_id":"c2","body":"   "}}"#), ErrorCode::InvalidInput),
        (format!(r#"{{"type":"send","conversation_id":{conv},"client_msg_id":"c3","body":"{long}"}}"#), ErrorCode::InvalidInput),
        (format!(r#"{{"type":"send","conversation_id":{conv},"client_msg_id":"c 4","body":"hi"}}"#), ErrorCode::InvalidInput),
        // A forged sender is not a field of the protocol at all.
        (format!(r#"{{"type":"send","conversation_id":{conv},"client_msg_id":"c5","body":"hi","sender":"bob"}}"#), ErrorCode::BadFrame),
        (r#"{"type":"send","conversation_id":"general","client_msg_id":"c6","body":"not a member"}"#.into(), ErrorCode::NotFound),
        (r#"{"type":"send","conversation_id":"nope","client_msg_id":"c7","body":"no such"}"#.into(), ErrorCode::NotFound),
        (r#"{"type":"history","conversation_id":"bob/eve"}"#.into(), ErrorCode::NotFound),
        (r#"{"type":"open_direct","username":"alice"}"#.into(), ErrorCode::InvalidInput),
        (r#"{"type":"open_direct","username":"nobody"}"#.into(), ErrorCode::NotFound),
        (format!(r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#, "x".repeat(app::protocol::MAX_FRAME_BYTES)), ErrorCode::FrameTooLarge),
    ];
    // A refused send names its client_msg_id, even when the body is what failed.
    alice
        .send_raw(Frame::text(format!(
            r#"{{"type":"send","conversation_id":{conv},"client_msg_id":"named-2","body":""}}"#
        )))
        .await;
    let id = alice
        .expect(|m| match m {
            ServerMsg::Error { client_msg_id, .. } => Some(client_msg_id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(id.as_deref(), Some("named-2"));
    for (frame, want) in cases {
        alice.send_raw(Frame::text(frame.clone())).await;
        let code = alice
            .expect(|m| match m {
                ServerMsg::Error { code, .. } => Some(*code),
                _ => None,
            })
            .await;
        assert_eq!(code, want, "frame {}", &frame[..frame.len().min(120)]);
    }
    // A resume from the largest position there is: nothing to replay, and the socket lives.
    alice
        .send_raw(Frame::text(format!(
            r#"{{"type":"resume","positions":[{{"conversation_id":{conv},"seq":{}}}]}}"#,
            u64::MAX
        )))
        .await;
    alice
        .expect(|m| matches!(m, ServerMsg::Resumed).then_some(()))
        .await;
    assert_eq!(history(&mut alice, &dm.id, None).await.0, Vec::<u64>::new());
    assert!(gets_no_message(&mut bob, &dm.id).await);
    app.stop().await;
}

#[tokio::test]
async fn a_flooding_sender_is_rate_limited_with_a_typed_error() {
    let app = spawn_app_with(Settings {
        send_rate: 1,
        ..Settings::for_tests()
    })
    .await;
    let mut alice = app.user("alice").await;
    app.sign_up("bob").await;
    let dm = open_direct(&mut alice, "bob").await;
    for i in 0..40 {
        alice
            .send(&send_msg(&dm.id, &format!("f{i}"), "flood"))
            .await;
    }
    let (mut acks, mut limited) = (0, 0);
    while acks + limited < 40 {
        match alice.recv().await {
            ServerMsg::Ack { .. } => acks += 1,
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                client_msg_id: Some(_),
                ..
            } => limited += 1,
            _ => {}
        }
    }
    // A burst of 3 s worth at 1/s, plus what refills while the accepted ones are stored.
    assert!((3..=12).contains(&acks), "{acks} accepted");
    assert_eq!(limited, 40 - acks);
    app.stop().await;
}

#[tokio::test]
async fn contacts_see_each_other_come_and_go() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    app.sign_up("bob").await;
    open_direct(&mut alice, "bob").await;
    let bob_token = {
        let res = crate::helpers::post_json(
            app.addr,
            "/api/auth/signin",
            &serde_json::json!({"username": "bob", "password": "correct horse battery"}),
            None,
        )
        .await;
        res.session_token().unwrap()
    };
    let mut bob = app.connect(&bob_token).await;
    bob.recv().await;
    bob.start().await;
    let online = |want: bool| {
        move |m: &ServerMsg| match m {
            ServerMsg::Presence { username, online } if username == "bob" && *online == want => {
                Some(())
            }
            _ => None,
        }
    };
    alice.expect(online(true)).await;
    drop(bob);
    alice.expect(online(false)).await;
    app.stop().await;
}

#[tokio::test]
async fn the_same_message_sent_on_two_sockets_at_once_is_stored_once_and_acked_on_both() {
    // A client that reconnects re-sends what was unacknowledged, possibly while its old
    // socket's copy is still being stored: both must get the one stored message.
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let token = app.sign_up("bob").await;
    let dm = open_direct(&mut alice, "bob").await;
    let mut tabs = Vec::new();
    for _ in 0..2 {
        let mut tab = app.connect(&token).await;
        tab.recv().await; // hello
        tabs.push(tab);
    }
    for i in 0..20 {
        let cmid = format!("twice{i}");
        let frame = send_msg(&dm.id, &cmid, &format!("once {i}"));
        let (a, b) = tabs.split_at_mut(1);
        let (first, second) = tokio::join!(
            async {
                a[0].send(&frame).await;
                ack_of(&mut a[0], &cmid).await
            },
            async {
                b[0].send(&frame).await;
                ack_of(&mut b[0], &cmid).await
            }
        );
        assert_eq!(first, second, "both sockets are told the same message");
        assert_eq!(first.seq, i + 1, "stored once: no seq is skipped");
    }
    let (seqs, _) = history(&mut alice, &dm.id, None).await;
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
    app.stop().await;
}

/// The `ack` for `cmid`, failing on an error for it.
async fn ack_of(client: &mut Client, cmid: &str) -> Message {
    client
        .expect(|m| match m {
            ServerMsg::Ack {
                client_msg_id,
                message,
            } if client_msg_id == cmid => Some(message.clone()),
            ServerMsg::Error {
                client_msg_id: Some(id),
                code,
                message,
            } if id == cmid => panic!("{cmid} refused: {code:?} {message}"),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn a_member_who_never_reads_is_cut_off_and_nobody_else_waits_for_them() {
    // Beyond the 1,024-frame outbox plus what TCP buffers hold for a reader that reads nothing.
    const FLOOD: u64 = 1600;
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let mut slow = app.user("slow").await;
    let room = create_room(&mut alice, "busy").await.id;
    for member in [&mut bob, &mut slow] {
        assert_eq!(join_room(member, &room).await, room);
    }
    // From here on `slow` reads nothing while 1,600 messages of 4,000 characters go by.
    let body = "x".repeat(4000);
    let send_all = async {
        // In windows of 100, reading the acks: a sender is a reader too.
        for window in (1..=FLOOD).collect::<Vec<_>>().chunks(100) {
            for i in window {
                alice.send(&send_msg(&room, &format!("f{i}"), &body)).await;
            }
            for i in window {
                ack_of(&mut alice, &format!("f{i}")).await;
            }
        }
    };
    let bob_reads = async {
        for want in 1..=FLOOD {
            assert_eq!(next_message(&mut bob).await.seq, want);
        }
    };
    tokio::join!(send_all, bob_reads);

    // Its socket's writes time out and the server drops it (not held forever): its
    // contacts see it go offline without it reading a byte.
    let gone = bob
        .receives_within(
            server::ws::WRITE_TIMEOUT * 3,
            |m| matches!(m, ServerMsg::Presence { username, online: false } if username == "slow"),
        )
        .await;
    assert!(
        gone,
        "the server still holds the socket of a reader that never reads"
    );

    // Reading now finds a bounded backlog, then the end of a connection the server already
    // dropped (a server still holding it would now send the rest, `lagging` and a close).
    let mut got = 0_u64;
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match futures::StreamExt::next(&mut slow.ws).await {
                Some(Ok(Frame::Text(text))) => {
                    if matches!(ServerMsg::decode(&text), Ok(ServerMsg::Message { .. })) {
                        got += 1;
                    }
                }
                Some(Ok(Frame::Close(frame))) => return Some(frame),
                Some(Err(_)) | None => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the stream ends");
    assert_eq!(end, None, "the connection was still open");
    assert!(got < FLOOD, "slow got all {got}: it was never cut off");

    // Coming back and resuming brings everything, in order.
    let token = app.sign_in("slow").await;
    let mut back = app.connect(&token).await;
    back.recv().await; // hello
    back.send(&ClientMsg::Resume {
        positions: vec![Position {
            conversation_id: room.clone(),
            seq: 0,
        }],
    })
    .await;
    for want in 1..=FLOOD {
        assert_eq!(next_message(&mut back).await.seq, want);
    }
    app.stop().await;
}

#[tokio::test]
async fn an_outsider_gets_not_found_on_every_path_into_a_conversation() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    app.sign_up("bob").await;
    let mut eve = app.user("eve").await;
    let dm = open_direct(&mut alice, "bob").await;
    say(&mut alice, &dm.id, "a1", "private").await;
    let room = create_room(&mut alice, "team").await.id;
    say(&mut alice, &room, "a2", "members only").await;
    let made_up = ConversationId("r0123456789abcdef".into());
    for conv in [&dm.id, &room, &made_up] {
        let paths = [
            ClientMsg::History {
                conversation_id: conv.clone(),
                before_seq: None,
                limit: None,
            },
            send_msg(conv, &format!("e{}", conv.0.len()), "let me in"),
            ClientMsg::MarkRead {
                conversation_id: conv.clone(),
                seq: 1,
            },
            ClientMsg::ListMembers {
                conversation_id: conv.clone(),
                after: None,
                limit: None,
            },
            ClientMsg::LeaveRoom {
                conversation_id: conv.clone(),
            },
            ClientMsg::Resume {
                positions: vec![Position {
                    conversation_id: conv.clone(),
                    seq: 0,
                }],
            },
        ];
        for path in paths {
            // The same answer whether the conversation exists or not, whatever its kind.
            let code = error_code(&mut eve, path.clone()).await;
            assert_eq!(code, ErrorCode::NotFound, "{path:?}");
        }
    }
    // Nothing leaked to eve, nothing was stored or moved by her.
    let own = create_room(&mut eve, "eve's own").await.id;
    assert!(gets_no_message(&mut eve, &own).await);
    assert_eq!(history(&mut alice, &dm.id, None).await.0, [1]);
    assert_eq!(history(&mut alice, &room, None).await.0, [1]);
    app.stop().await;
}

/// The database is the truth for `(sender, client_msg_id)`: a send retried after a restart
/// (a client that queued it while offline) gets the original back, and nothing is stored
/// twice, however many messages came between.
#[tokio::test]
async fn a_send_retried_after_a_restart_gets_the_original_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(disk_settings(dir.path())).await;
    let mut alice = app.user("alice").await;
    app.sign_up("bob").await;
    let dm = open_direct(&mut alice, "bob").await;
    let first = say(&mut alice, &dm.id, "queued-1", "sent once").await;
    for i in 0..20 {
        say(&mut alice, &dm.id, &format!("later-{i}"), "later").await;
    }
    app.stop().await;

    let app = spawn_app_with(disk_settings(dir.path())).await;
    let token = app.sign_in("alice").await;
    let mut alice = app.connect(&token).await;
    alice.recv().await;
    alice.start().await;
    let again = say(&mut alice, &dm.id, "queued-1", "sent twice?").await;
    assert_eq!(
        (again.seq, again.body.as_str(), again.sent_at_ms),
        (first.seq, "sent once", first.sent_at_ms)
    );
    assert_eq!(
        history(&mut alice, &dm.id, None).await.0,
        (1..=21).collect::<Vec<u64>>()
    );
    app.stop().await;
}

/// Whether `typing` frames naming `who` in `conv` reached `client` (a `ping` round trip
/// bounds the wait: anything pushed before it is in by then).
async fn saw_typing(client: &mut Client, conv: &ConversationId, who: &str) -> bool {
    client
        .ask(ClientMsg::Ping { nonce: 7 }, |m| {
            matches!(m, ServerMsg::Pong { nonce: 7, .. }).then_some(())
        })
        .await;
    client
        .receives_within(Duration::ZERO, |m| {
            matches!(m, ServerMsg::Typing { conversation_id, username }
                if conversation_id == conv && username == who)
        })
        .await
}

/// Typing is passed on to the other members' sockets at once, to nobody else, and kept
/// nowhere: an outsider is refused, history holds nothing of it, a resume replays none.
#[tokio::test]
async fn typing_reaches_the_other_members_and_is_kept_nowhere() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let bob_token = app.sign_up("bob").await;
    let mut bob = app.connect(&bob_token).await;
    bob.recv().await;
    bob.start().await;
    let mut eve = app.user("eve").await;
    let dm = open_direct(&mut alice, "bob").await.id;
    alice
        .send(&ClientMsg::Typing {
            conversation_id: dm.clone(),
        })
        .await;
    let seen = bob
        .expect(|m| match m {
            ServerMsg::Typing {
                conversation_id,
                username,
            } => Some((conversation_id.clone(), username.clone())),
            _ => None,
        })
        .await;
    assert_eq!(seen, (dm.clone(), "alice".to_owned()));
    assert!(
        !saw_typing(&mut alice, &dm, "alice").await,
        "not to oneself"
    );
    let refused = eve
        .ask(
            ClientMsg::Typing {
                conversation_id: dm.clone(),
            },
            crate::helpers::error_code,
        )
        .await;
    assert_eq!(refused, ErrorCode::NotFound);
    assert!(!saw_typing(&mut bob, &dm, "eve").await);
    assert_eq!(history(&mut bob, &dm, None).await, (vec![], false));
    drop(bob);
    let mut bob = app.connect(&bob_token).await;
    bob.recv().await;
    bob.send(&ClientMsg::Resume {
        positions: vec![Position {
            conversation_id: dm.clone(),
            seq: 0,
        }],
    })
    .await;
    bob.expect(|m| matches!(m, ServerMsg::Resumed).then_some(()))
        .await;
    assert!(!saw_typing(&mut bob, &dm, "alice").await, "never replayed");
    app.stop().await;
}

/// Reading a direct conversation tells the other person ("Seen"); the member list carries
/// everyone's read position; in a room, the sender of the newest message read is told.
#[tokio::test]
async fn read_positions_reach_the_other_person_and_come_with_the_members() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let dm = open_direct(&mut alice, "bob").await.id;
    for i in 1..=2 {
        say(&mut alice, &dm, &format!("s{i}"), "read me").await;
    }
    bob.send(&ClientMsg::MarkRead {
        conversation_id: dm.clone(),
        seq: 2,
    })
    .await;
    assert_eq!(
        next_seen(&mut alice).await,
        (dm.clone(), "bob".to_owned(), 2)
    );
    let reads = |m: &ServerMsg| match m {
        ServerMsg::Members { members, .. } => Some(
            members
                .iter()
                .map(|m| (m.user.username.clone(), m.last_read_seq))
                .collect::<Vec<_>>(),
        ),
        _ => None,
    };
    let members = ClientMsg::ListMembers {
        conversation_id: dm.clone(),
        after: None,
        limit: None,
    };
    assert_eq!(
        alice.ask(members, reads).await,
        [("alice".to_owned(), Some(2)), ("bob".to_owned(), Some(2))],
        "alice read up to her own message by sending it"
    );

    let room = create_room(&mut alice, "readers").await.id;
    bob.ask(
        ClientMsg::JoinRoom {
            conversation_id: room.clone(),
        },
        |m| matches!(m, ServerMsg::Conversation { .. }).then_some(()),
    )
    .await;
    say(&mut bob, &room, "r1", "in the room").await;
    alice
        .send(&ClientMsg::MarkRead {
            conversation_id: room.clone(),
            seq: 1,
        })
        .await;
    // In a room, the sender of the newest message read is told (the one person shown who
    // saw it; `mentions::a_room_tells_the_sender_of_the_newest_message_who_has_seen_it`
    // checks that nobody else is).
    let pushed = bob
        .receives_within(
            Duration::from_secs(5),
            |m| matches!(m, ServerMsg::Seen { conversation_id, username, .. } if *conversation_id == room && username == "alice"),
        )
        .await;
    assert!(pushed, "the sender of the newest message is told");
    app.stop().await;
}

#[tokio::test]
async fn messages_sent_from_another_socket_leave_nothing_unread_before_and_after_they_are_stored() {
    let app = spawn_app().await;
    let mut ann = app.user("ann").await;
    let mut bob = app.user("bob").await;
    let dm = open_direct(&mut ann, "bob").await;
    say(&mut ann, &dm.id, "first", "first").await;
    let _ = conversations(&mut ann).await;
    let _ = conversations(&mut bob).await;
    let token = app.sign_in("ann").await;
    let mut other = app.connect(&token).await;
    other.start().await;
    for i in 0..120 {
        say(
            &mut other,
            &dm.id,
            &format!("bulk-{i}"),
            &format!("Filler {i}"),
        )
        .await;
    }
    let mut third = app.connect(&token).await;
    third.start().await;
    // From memory first, then once the read position has been written (every second).
    for wait in [0, 1_500] {
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        let list = conversations(&mut third).await;
        assert_eq!((list[0].last_read_seq, list[0].unread), (121, 0));
    }
    app.stop().await;
}
