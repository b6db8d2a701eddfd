//! Message search over real sockets: Chinese and mixed text found by words inside
//! sentences, newest first, only in the conversations the searcher is in now, never text
//! that was edited away or deleted; bad queries refused.

use std::time::{Duration, Instant};

use app::{
    domain::{MessageBody, Username},
    protocol::{ClientMsg, ConversationId, ErrorCode, SearchHit, ServerMsg},
};

use crate::chat::{create_room, join_room, open_direct, say};
use crate::helpers::{error_code, spawn_app, Client};

fn search(query: &str) -> ClientMsg {
    ClientMsg::SearchMessages {
        query: query.to_owned(),
        conversation_id: None,
        from: None,
        limit: None,
    }
}

/// The answer to `msg`: the hits, or the error code.
async fn ask(client: &mut Client, msg: ClientMsg) -> Result<Vec<SearchHit>, ErrorCode> {
    client
        .ask(msg, |m| match m {
            ServerMsg::SearchResults { hits, .. } => Some(Ok(hits.clone())),
            ServerMsg::Error { code, .. } => Some(Err(*code)),
            _ => None,
        })
        .await
}

/// The bodies found by `msg`, newest first.
async fn bodies(client: &mut Client, msg: ClientMsg) -> Vec<String> {
    ask(client, msg)
        .await
        .expect("a search answers")
        .into_iter()
        .map(|h| h.message.body)
        .collect()
}

/// Asks `msg` until it finds `want` (the index follows the messages within about a second;
/// bounded at 15 s), and returns the bodies found.
async fn found(client: &mut Client, msg: ClientMsg, want: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = bodies(client, msg.clone()).await;
        if got == want || Instant::now() > deadline {
            return got;
        }
        // Under the per-user budget of searches.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

#[tokio::test]
async fn chinese_and_mixed_text_is_found_by_words_inside_sentences_newest_first() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let dm = open_direct(&mut alice, "bob").await.id;
    let room = create_room(&mut alice, "后端").await.id;
    join_room(&mut bob, &room).await;

    say(&mut alice, &dm, "a1", "我们的数据库今天很慢").await;
    say(&mut bob, &room, "b1", "WebSocket连接断了").await;
    say(&mut bob, &dm, "b2", "the **database** is slow again").await;
    say(&mut alice, &room, "a2", "数据在仓库，据库存不多").await;
    say(&mut alice, &room, "a3", "新的数据库上线了 🎉").await;

    assert_eq!(
        found(
            &mut bob,
            search("数据库"),
            &["新的数据库上线了 🎉", "我们的数据库今天很慢"]
        )
        .await,
        ["新的数据库上线了 🎉", "我们的数据库今天很慢"],
        "both sentences with the word, newest first; not the one with only its halves"
    );
    assert_eq!(
        bodies(&mut alice, search("websocket")).await,
        ["WebSocket连接断了"]
    );
    assert_eq!(
        bodies(&mut alice, search("连接")).await,
        ["WebSocket连接断了"]
    );
    assert_eq!(
        bodies(&mut alice, search("DATABASE slow")).await,
        ["the **database** is slow again"]
    );
    assert!(
        bodies(&mut alice, search("data")).await.is_empty(),
        "whole words"
    );

    // Each hit names its conversation and sender.
    let hits = ask(&mut alice, search("WebSocket")).await.unwrap();
    assert_eq!(hits[0].conversation_title, "后端");
    assert_eq!(hits[0].message.sender, "bob");
    assert_eq!(hits[0].message.conversation_id, room);

    // Filters: in one conversation, from one person.
    let in_room = ClientMsg::SearchMessages {
        query: "数据库".into(),
        conversation_id: Some(room.clone()),
        from: None,
        limit: None,
    };
    assert_eq!(bodies(&mut alice, in_room).await, ["新的数据库上线了 🎉"]);
    let from_bob = ClientMsg::SearchMessages {
        query: "数据库 database".into(),
        conversation_id: None,
        from: Some(Username::parse("bob").unwrap()),
        limit: None,
    };
    assert!(bodies(&mut alice, from_bob).await.is_empty());
    let from_alice = ClientMsg::SearchMessages {
        query: "数据库".into(),
        conversation_id: None,
        from: Some(Username::parse("alice").unwrap()),
        limit: Some(1),
    };
    let answer = alice
        .ask(from_alice, |m| match m {
            ServerMsg::SearchResults { hits, has_more, .. } => Some((hits.clone(), *has_more)),
            _ => None,
        })
        .await;
    assert_eq!(answer.0.len(), 1);
    assert!(answer.1, "a second match is left for a bigger page");
    app.stop().await;
}

#[tokio::test]
async fn only_members_find_a_conversations_text_and_a_left_room_stops_showing_up() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let mut eve = app.user("eve").await;
    let dm = open_direct(&mut alice, "bob").await.id;
    let room = create_room(&mut alice, "Ops").await.id;
    join_room(&mut eve, &room).await;
    say(&mut alice, &dm, "a1", "密码是 hunter2").await;
    say(&mut alice, &room, "a2", "部署密码在保险箱").await;

    assert_eq!(
        found(&mut bob, search("密码"), &["密码是 hunter2"]).await,
        ["密码是 hunter2"]
    );
    assert_eq!(
        found(&mut eve, search("密码"), &["部署密码在保险箱"]).await,
        ["部署密码在保险箱"],
        "eve finds the room's text, never the direct conversation's"
    );
    assert!(bodies(&mut eve, search("hunter2")).await.is_empty());
    // Naming a conversation one is not in is the same "not found" as one that does not exist.
    let into_dm = ClientMsg::SearchMessages {
        query: "密码".into(),
        conversation_id: Some(dm.clone()),
        from: None,
        limit: None,
    };
    assert_eq!(ask(&mut eve, into_dm).await, Err(ErrorCode::NotFound));
    let nowhere = ClientMsg::SearchMessages {
        query: "密码".into(),
        conversation_id: Some(ConversationId("rffffffffffffffff".into())),
        from: None,
        limit: None,
    };
    assert_eq!(ask(&mut eve, nowhere).await, Err(ErrorCode::NotFound));

    eve.ask(
        ClientMsg::LeaveRoom {
            conversation_id: room.clone(),
        },
        |m| matches!(m, ServerMsg::Left { .. }).then_some(()),
    )
    .await;
    assert!(
        bodies(&mut eve, search("密码")).await.is_empty(),
        "a room left is not searched"
    );
    app.stop().await;
}

#[tokio::test]
async fn edited_away_and_deleted_text_is_never_found() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let dm = open_direct(&mut alice, "bob").await.id;
    let first = say(&mut alice, &dm, "a1", "会议改到周三").await;
    let second = say(&mut alice, &dm, "a2", "周三的会议取消").await;
    assert_eq!(
        found(
            &mut bob,
            search("会议"),
            &["周三的会议取消", "会议改到周三"]
        )
        .await,
        ["周三的会议取消", "会议改到周三"]
    );

    alice
        .send(&ClientMsg::Edit {
            conversation_id: dm.clone(),
            seq: first.seq,
            body: MessageBody::parse("改到周四了").unwrap(),
        })
        .await;
    alice
        .send(&ClientMsg::Delete {
            conversation_id: dm.clone(),
            seq: second.seq,
        })
        .await;
    // At once: results are the messages as they are now, whatever the index still holds.
    bob.expect(|m| match m {
        ServerMsg::Changed { change } if change.target == second.seq => Some(()),
        _ => None,
    })
    .await;
    assert!(bodies(&mut bob, search("会议")).await.is_empty());
    assert_eq!(
        found(&mut bob, search("周四"), &["改到周四了"]).await,
        ["改到周四了"]
    );
    assert_eq!(bodies(&mut bob, search("周三")).await, Vec::<String>::new());
    app.stop().await;
}

#[tokio::test]
async fn a_query_without_words_or_too_long_is_refused() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    for q in ["", "   ", "?! 🎉", &"长".repeat(101), "a b c d e f g h i"] {
        assert_eq!(
            ask(&mut alice, search(q)).await,
            Err(ErrorCode::InvalidInput),
            "{q:?}"
        );
    }
    // A bad `from` is refused when the frame is read.
    alice
        .send_raw(tokio_tungstenite::tungstenite::Message::text(
            r#"{"type":"search_messages","query":"x","from":"NOT A NAME!"}"#,
        ))
        .await;
    assert_eq!(alice.expect(error_code).await, ErrorCode::InvalidInput);
    app.stop().await;
}

/// The rooms found for `query`, or the error code.
async fn rooms_found(
    client: &mut Client,
    query: &str,
) -> Result<Vec<app::protocol::RoomInfo>, ErrorCode> {
    client
        .ask(
            ClientMsg::SearchRooms {
                query: query.to_owned(),
            },
            |m| match m {
                ServerMsg::RoomsFound { rooms, .. } => Some(Ok(rooms.clone())),
                ServerMsg::Error { code, .. } => Some(Err(*code)),
                _ => None,
            },
        )
        .await
}

#[tokio::test]
async fn rooms_are_found_by_a_word_of_their_name_with_whether_one_is_in_them() {
    let app = spawn_app().await;
    let mut ann = app.user("ann").await;
    let mut bob = app.user("bob").await;
    let ops = create_room(&mut ann, "Ops 运维值班").await;
    create_room(&mut ann, "Design reviews").await;

    // Bob is in neither: found by any word start, any case, a Chinese character inside.
    for query in ["ops", "OPS", "运维", "值班", "维值"] {
        let rooms = rooms_found(&mut bob, query).await.unwrap();
        let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Ops 运维值班"], "{query}");
        assert!(!rooms[0].joined);
        assert_eq!(rooms[0].member_count, 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Not by the middle of a word.
    assert!(rooms_found(&mut bob, "esign").await.unwrap().is_empty());
    // The server's own room is found too.
    let general = rooms_found(&mut bob, "gen").await.unwrap();
    assert_eq!(general[0].name, "General");

    // Once he joins, it says so.
    join_room(&mut bob, &ops.id).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let rooms = rooms_found(&mut bob, "ops").await.unwrap();
    assert!(rooms[0].joined);

    // Bad queries are refused with a typed error.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        rooms_found(&mut bob, "  ").await.unwrap_err(),
        ErrorCode::InvalidInput
    );
    assert_eq!(
        rooms_found(&mut bob, &"x".repeat(65)).await.unwrap_err(),
        ErrorCode::InvalidInput
    );
}
