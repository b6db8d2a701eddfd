//! Mentions, notification levels and read receipts over real sockets: a mention of a member
//! counts for them until they read it, edits and deletions recount it, a level chosen on
//! one socket reaches the user's others and is kept, and a room tells the sender of the
//! newest message who has seen it.

use app::{
    domain::MessageBody,
    protocol::{ClientMsg, ConversationId, ErrorCode, NotifyLevel, ServerMsg},
};

use crate::chat::{conversations, create_room, join_room, next_seen, say};
use crate::helpers::{disk_settings, spawn_app, spawn_app_with, Client};

/// `(unread, mentions, notify)` of `conv` in the user's list.
async fn counts(client: &mut Client, conv: &ConversationId) -> (u64, u64, NotifyLevel) {
    let list = conversations(client).await;
    let c = list.iter().find(|c| c.id == *conv).expect("in the list");
    (c.unread, c.mentions, c.notify)
}

/// Waits for a read state of `conv` with `mentions` unread mentions.
async fn mentions_become(client: &mut Client, conv: &ConversationId, want: u64) {
    client
        .expect(|m| match m {
            ServerMsg::ReadState {
                conversation_id,
                mentions,
                ..
            } if conversation_id == conv && *mentions == want => Some(()),
            _ => None,
        })
        .await;
}

fn edit(conv: &ConversationId, seq: u64, text: &str) -> ClientMsg {
    ClientMsg::Edit {
        conversation_id: conv.clone(),
        seq,
        body: MessageBody::parse(text).unwrap(),
    }
}

#[tokio::test]
async fn a_mention_counts_for_the_member_named_until_read_and_edits_recount_it() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let mut carol = app.user("carol").await;
    let room = create_room(&mut alice, "Planning").await.id;
    join_room(&mut bob, &room).await;
    join_room(&mut carol, &room).await;

    // Only members are mentioned, whatever the case; the sender never is; an address is
    // not a mention.
    let first = say(
        &mut alice,
        &room,
        "m1",
        "hi @Bob, @nobody, @alice and ops@carol.example",
    )
    .await;
    assert_eq!(first.mentions, vec!["bob".to_owned()]);
    say(&mut alice, &room, "m2", "no mention here").await;
    assert_eq!(counts(&mut bob, &room).await, (2, 1, NotifyLevel::All));
    assert_eq!(counts(&mut carol, &room).await, (2, 0, NotifyLevel::All));

    // An edit that takes the mention away, or adds one, recounts it for whom it concerns.
    alice.send(&edit(&room, first.seq, "hi everyone")).await;
    mentions_become(&mut bob, &room, 0).await;
    assert_eq!(counts(&mut bob, &room).await, (2, 0, NotifyLevel::All));
    alice
        .send(&edit(&room, first.seq, "hi @bob and @carol"))
        .await;
    mentions_become(&mut bob, &room, 1).await;
    mentions_become(&mut carol, &room, 1).await;
    // A deletion takes its mentions with it.
    alice
        .send(&ClientMsg::Delete {
            conversation_id: room.clone(),
            seq: first.seq,
        })
        .await;
    mentions_become(&mut carol, &room, 0).await;
    assert_eq!(counts(&mut bob, &room).await, (2, 0, NotifyLevel::All));

    // Reading past a mention clears it; a later one counts again.
    let third = say(&mut alice, &room, "m3", "@bob look").await;
    assert_eq!(counts(&mut bob, &room).await.1, 1);
    bob.send(&ClientMsg::MarkRead {
        conversation_id: room.clone(),
        seq: third.seq,
    })
    .await;
    mentions_become(&mut bob, &room, 0).await;
    say(&mut alice, &room, "m4", "@bob again").await;
    assert_eq!(counts(&mut bob, &room).await, (1, 1, NotifyLevel::All));
}

#[tokio::test]
async fn a_notification_level_reaches_every_socket_of_the_user_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(disk_settings(dir.path())).await;
    let mut alice = app.user("alice").await;
    let bob_token = app.sign_up("bob").await;
    let mut bob = app.connect(&bob_token).await;
    bob.recv().await;
    bob.start().await;
    let mut bob_too = app.connect(&bob_token).await;
    bob_too.recv().await;
    bob_too.start().await;
    let room = create_room(&mut alice, "Release").await.id;
    join_room(&mut bob, &room).await;

    let mute = ClientMsg::SetNotify {
        conversation_id: room.clone(),
        level: NotifyLevel::Mute,
    };
    bob.send(&mute).await;
    let told = bob_too
        .expect(|m| match m {
            ServerMsg::Notify {
                conversation_id,
                level,
            } if *conversation_id == room => Some(*level),
            _ => None,
        })
        .await;
    assert_eq!(told, NotifyLevel::Mute);
    assert_eq!(counts(&mut bob_too, &room).await.2, NotifyLevel::Mute);
    assert_eq!(
        counts(&mut alice, &room).await.2,
        NotifyLevel::All,
        "per member"
    );

    // A muted conversation still counts its messages and its mentions.
    say(&mut alice, &room, "a1", "@bob ship it").await;
    assert_eq!(counts(&mut bob, &room).await, (1, 1, NotifyLevel::Mute));

    // Not a member: the same answer as for a conversation that does not exist.
    let mut eve = app.user("eve").await;
    for conv in [room.clone(), ConversationId("nope".into())] {
        let code = eve
            .ask(
                ClientMsg::SetNotify {
                    conversation_id: conv,
                    level: NotifyLevel::Mentions,
                },
                |m| match m {
                    ServerMsg::Error { code, .. } => Some(*code),
                    _ => None,
                },
            )
            .await;
        assert_eq!(code, ErrorCode::NotFound);
    }
    // An unknown level is refused at decode.
    eve.send_raw(tokio_tungstenite::tungstenite::Message::text(format!(
        r#"{{"type":"set_notify","conversation_id":"{}","level":"loud"}}"#,
        room.0
    )))
    .await;
    let code = eve
        .expect(|m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::BadFrame);

    // Kept across a restart.
    drop((alice, bob, bob_too, eve));
    app.stop().await;
    let app = spawn_app_with(disk_settings(dir.path())).await;
    let token = app.sign_in("bob").await;
    let mut bob = app.connect(&token).await;
    bob.recv().await;
    bob.start().await;
    assert_eq!(counts(&mut bob, &room).await, (1, 1, NotifyLevel::Mute));
}

#[tokio::test]
async fn a_room_tells_the_sender_of_the_newest_message_who_has_seen_it() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let mut carol = app.user("carol").await;
    let room = create_room(&mut alice, "Standup").await.id;
    join_room(&mut bob, &room).await;
    join_room(&mut carol, &room).await;
    let posted = say(&mut alice, &room, "s1", "done for today").await;

    bob.send(&ClientMsg::MarkRead {
        conversation_id: room.clone(),
        seq: posted.seq,
    })
    .await;
    assert_eq!(
        next_seen(&mut alice).await,
        (room.clone(), "bob".to_owned(), posted.seq)
    );
    // Nobody else is told: one frame per read, however large the room.
    carol.send(&ClientMsg::Ping { nonce: 9 }).await;
    loop {
        match carol.recv().await {
            ServerMsg::Pong { nonce: 9, .. } => break,
            ServerMsg::Seen { .. } => panic!("carol was told of bob's read"),
            _ => {}
        }
    }
}
