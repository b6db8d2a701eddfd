//! Changes to messages over real sockets: replies, edits, deletions and reactions reach
//! every member live, in order; only a message's sender edits or deletes it, only members
//! touch it at all; a client that was away ends, after `resume`, in exactly the state of
//! one that stayed (both are the browser's own model, `app::chat::state::Chat`); and a
//! restart keeps all of it.

use app::{
    chat::state::Chat,
    domain::{ClientMsgId, Emoji, MessageBody},
    protocol::{ClientMsg, ConversationId, ErrorCode, Message, Quote, ServerMsg, UserInfo, What},
};
use std::collections::BTreeMap;

use crate::chat::open_direct;
use crate::helpers::{disk_settings, spawn_app, spawn_app_with, Client, Site};

fn emoji(e: &str) -> Emoji {
    Emoji::parse(e).unwrap()
}

fn body(text: &str) -> MessageBody {
    MessageBody::parse(text).unwrap()
}

/// Sends a message (in reply to `reply_to`) and returns it as acked.
async fn say(
    client: &mut Client,
    conv: &ConversationId,
    id: &str,
    text: &str,
    reply_to: Option<u64>,
) -> Message {
    let want = id.to_owned();
    client
        .ask(
            ClientMsg::Send {
                conversation_id: conv.clone(),
                client_msg_id: ClientMsgId::parse(id).unwrap(),
                body: Some(body(text)),
                attachments: Vec::new(),
                reply_to,
            },
            |m| match m {
                ServerMsg::Ack {
                    client_msg_id,
                    message,
                } if *client_msg_id == want => Some(message.clone()),
                ServerMsg::Error { code, message, .. } => {
                    panic!("send refused: {code:?} {message}")
                }
                _ => None,
            },
        )
        .await
}

/// The next change frame this client gets (others stay pending).
async fn next_change(client: &mut Client) -> app::protocol::Change {
    client
        .expect(|m| match m {
            ServerMsg::Changed { change } => Some(change.clone()),
            _ => None,
        })
        .await
}

/// The error a frame is refused with.
async fn refused(client: &mut Client, msg: ClientMsg) -> ErrorCode {
    client
        .ask(msg, |m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            ServerMsg::Changed { change } => panic!("changed instead of refused: {change:?}"),
            _ => None,
        })
        .await
}

/// Whether no change reaches this client before a ping's answer.
async fn no_change_before_pong(client: &mut Client, nonce: u64) -> bool {
    client.send(&ClientMsg::Ping { nonce }).await;
    loop {
        match client.recv().await {
            ServerMsg::Pong { nonce: n, .. } if n == nonce => return true,
            ServerMsg::Changed { .. } => return false,
            _ => {}
        }
    }
}

/// A page of history as it is now.
async fn page(client: &mut Client, conv: &ConversationId) -> Vec<Message> {
    client
        .ask(
            ClientMsg::History {
                conversation_id: conv.clone(),
                before_seq: None,
                limit: Some(100),
            },
            |m| match m {
                ServerMsg::History { messages, .. } => Some(messages.clone()),
                _ => None,
            },
        )
        .await
}

async fn unread(client: &mut Client, conv: &ConversationId) -> u64 {
    client
        .ask(ClientMsg::ListConversations { limit: None }, |m| match m {
            ServerMsg::Conversations { conversations, .. } => conversations
                .iter()
                .find(|c| c.id == *conv)
                .map(|c| c.unread),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn replies_edits_deletions_and_reactions_reach_both_sides_live() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bob").await;
    let dm = open_direct(&mut alice, "bob").await.id;
    let first = say(&mut alice, &dm, "a1", "helo bob", None).await;
    assert_eq!(first.seq, 1);

    // Bob reacts: both see it, at the next position.
    bob.send(&ClientMsg::React {
        conversation_id: dm.clone(),
        seq: 1,
        emoji: emoji("👍"),
    })
    .await;
    for side in [&mut alice, &mut bob] {
        let c = next_change(side).await;
        assert_eq!((c.seq, c.target, c.actor.as_str()), (2, 1, "bob"));
        assert_eq!(
            c.what,
            What::Reacted {
                emoji: "👍".into()
            }
        );
    }
    // The same reaction again is the same reaction: nothing stored, nothing sent.
    bob.send(&ClientMsg::React {
        conversation_id: dm.clone(),
        seq: 1,
        emoji: emoji("👍"),
    })
    .await;
    assert!(no_change_before_pong(&mut bob, 1).await);

    // Only Alice edits and deletes her message.
    let edit = |text: &str| ClientMsg::Edit {
        conversation_id: dm.clone(),
        seq: 1,
        body: body(text),
    };
    assert_eq!(
        refused(&mut bob, edit("mine now")).await,
        ErrorCode::Forbidden
    );
    let delete = ClientMsg::Delete {
        conversation_id: dm.clone(),
        seq: 1,
    };
    assert_eq!(
        refused(&mut bob, delete.clone()).await,
        ErrorCode::Forbidden
    );
    alice.send(&edit("hello bob")).await;
    for side in [&mut alice, &mut bob] {
        let c = next_change(side).await;
        assert_eq!((c.seq, c.target), (3, 1));
        assert_eq!(
            c.what,
            What::Edited {
                body: "hello bob".into(),
                mentions: vec![],
            }
        );
    }

    // A reply quotes the message as it is now.
    let reply = say(&mut bob, &dm, "b1", "hi!", Some(1)).await;
    assert_eq!(reply.seq, 4);
    let quote = reply.reply_to.clone().unwrap();
    assert_eq!(
        (quote.seq, quote.text.as_str(), quote.deleted),
        (1, "hello bob", false)
    );
    let live = alice
        .expect(|m| match m {
            ServerMsg::Message { message } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(live, reply);

    // Deleted: the text and reactions are gone for everyone, and nothing more can change.
    alice.send(&delete).await;
    for side in [&mut alice, &mut bob] {
        assert_eq!(next_change(side).await.what, What::Deleted);
    }
    assert_eq!(
        refused(&mut alice, edit("back")).await,
        ErrorCode::InvalidInput
    );
    let react_deleted = ClientMsg::React {
        conversation_id: dm.clone(),
        seq: 1,
        emoji: emoji("🎉"),
    };
    assert_eq!(
        refused(&mut bob, react_deleted).await,
        ErrorCode::InvalidInput
    );
    let now = page(&mut bob, &dm).await;
    assert_eq!(now.len(), 2, "history holds messages, not changes");
    assert!(now[0].deleted && now[0].body.is_empty() && now[0].reactions.is_empty());
    assert!(
        now[0].edited_at_ms.is_some(),
        "edited before it was deleted"
    );
    assert_eq!(
        now[1].reply_to,
        Some(Quote {
            seq: 1,
            sender: "alice".into(),
            text: String::new(),
            deleted: true,
        })
    );
    // Unread counts count messages: Alice has Bob's reply unread, not the changes.
    assert_eq!(unread(&mut alice, &dm).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn outsiders_and_bad_changes_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    app.sign_up("bob").await;
    let mut carol = app.user("carol").await;
    let dm = open_direct(&mut alice, "bob").await.id;
    say(&mut alice, &dm, "a1", "private", None).await;
    let before = page(&mut alice, &dm).await;

    let outsider = [
        ClientMsg::Edit {
            conversation_id: dm.clone(),
            seq: 1,
            body: body("mine"),
        },
        ClientMsg::Delete {
            conversation_id: dm.clone(),
            seq: 1,
        },
        ClientMsg::React {
            conversation_id: dm.clone(),
            seq: 1,
            emoji: emoji("👍"),
        },
        ClientMsg::Unreact {
            conversation_id: dm.clone(),
            seq: 1,
            emoji: emoji("👍"),
        },
        ClientMsg::Send {
            conversation_id: dm.clone(),
            client_msg_id: ClientMsgId::parse("c1").unwrap(),
            body: Some(body("in")),
            attachments: Vec::new(),
            reply_to: Some(1),
        },
    ];
    for msg in outsider {
        assert_eq!(refused(&mut carol, msg).await, ErrorCode::NotFound);
    }
    // Members' mistakes: no message there, an emoji that is not one, a reply to nothing.
    let missing = [
        ClientMsg::Edit {
            conversation_id: dm.clone(),
            seq: 99,
            body: body("x"),
        },
        ClientMsg::React {
            conversation_id: dm.clone(),
            seq: 0,
            emoji: emoji("👍"),
        },
        ClientMsg::Send {
            conversation_id: dm.clone(),
            client_msg_id: ClientMsgId::parse("a2").unwrap(),
            body: Some(body("re")),
            attachments: Vec::new(),
            reply_to: Some(7),
        },
    ];
    for msg in missing {
        assert_eq!(refused(&mut alice, msg).await, ErrorCode::NotFound);
    }
    let long = format!(
        r#"{{"type":"react","conversation_id":"{}","seq":1,"emoji":"{}"}}"#,
        dm.0,
        "x".repeat(1000)
    );
    alice
        .send_raw(tokio_tungstenite::tungstenite::Message::text(long))
        .await;
    let code = alice
        .expect(|m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::InvalidInput);
    assert_eq!(page(&mut alice, &dm).await, before, "nothing changed");
    // And the refused reply took no position: the next message is the second.
    assert_eq!(say(&mut alice, &dm, "a3", "next", None).await.seq, 2);
    app.stop().await;
}

/// Drives a browser model over a socket: sends what it asks for and applies what comes
/// back, until a ping's answer finds it with nothing more to ask.
async fn pump(client: &mut Client, chat: &mut Chat, mut out: Vec<ClientMsg>, nonce: &mut u64) {
    for _ in 0..50 {
        for msg in out.drain(..) {
            client.send(&msg).await;
        }
        *nonce += 1;
        let want = *nonce;
        client.send(&ClientMsg::Ping { nonce: want }).await;
        loop {
            match client.recv().await {
                ServerMsg::Pong { nonce, .. } if nonce == want => break,
                msg => out.extend(chat.apply(msg).0),
            }
        }
        if out.is_empty() {
            return;
        }
    }
    panic!("the model kept asking");
}

/// A browser model of `username` on a new socket, resumed from what it holds, with the
/// conversation `open` on screen.
async fn browser(
    site: &Site,
    token: &str,
    chat: &mut Chat,
    open: &ConversationId,
    nonce: &mut u64,
) -> Client {
    let mut client = site.connect(token).await;
    let hello = client.recv().await;
    chat.apply(hello);
    let resume = chat.resume();
    pump(&mut client, chat, vec![resume], nonce).await;
    let out = chat.open(open.clone());
    pump(&mut client, chat, out, nonce).await;
    client
}

#[tokio::test]
async fn a_resume_across_every_kind_of_change_ends_where_staying_would() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let bob_token = app.sign_up("bob").await;
    let dm = open_direct(&mut alice, "bob").await.id;
    for i in 1..=3 {
        say(
            &mut alice,
            &dm,
            &format!("a{i}"),
            &format!("message {i}"),
            None,
        )
        .await;
    }
    let me = UserInfo::named("bob", "BOB");
    let mut nonce = 0;
    let (mut stayed, mut away) = (Chat::new(me.clone()), Chat::new(me.clone()));
    let mut stay = browser(&app, &bob_token, &mut stayed, &dm, &mut nonce).await;
    let gone = browser(&app, &bob_token, &mut away, &dm, &mut nonce).await;
    drop(gone);
    away.disconnected();

    // A mix of everything while one of Bob's pages is away; Bob's own reactions go
    // through the page that stayed.
    let react = |c: &mut Chat, seq, e: &str| c.toggle_reaction(seq, emoji(e)).unwrap();
    let out = vec![react(&mut stayed, 2, "👍"), react(&mut stayed, 3, "🎉")];
    pump(&mut stay, &mut stayed, out, &mut nonce).await;
    alice
        .send(&ClientMsg::Edit {
            conversation_id: dm.clone(),
            seq: 1,
            body: body("message 1, edited"),
        })
        .await;
    say(&mut alice, &dm, "a4", "answer", Some(2)).await;
    alice
        .send(&ClientMsg::React {
            conversation_id: dm.clone(),
            seq: 2,
            emoji: emoji("👍"),
        })
        .await;
    let out = vec![react(&mut stayed, 2, "👍")]; // taken back
    pump(&mut stay, &mut stayed, out, &mut nonce).await;
    alice
        .send(&ClientMsg::Delete {
            conversation_id: dm.clone(),
            seq: 3,
        })
        .await;
    alice
        .send(&ClientMsg::Edit {
            conversation_id: dm.clone(),
            seq: 2,
            body: body("message 2, edited"),
        })
        .await;
    say(&mut alice, &dm, "a5", "last", None).await;
    alice
        .send(&ClientMsg::Edit {
            conversation_id: dm.clone(),
            seq: 1,
            body: body("message 1, edited twice"),
        })
        .await;
    say(&mut alice, &dm, "a6", "really last", None).await;
    pump(&mut stay, &mut stayed, Vec::new(), &mut nonce).await;

    let mut back = browser(&app, &bob_token, &mut away, &dm, &mut nonce).await;
    pump(&mut back, &mut away, Vec::new(), &mut nonce).await;
    let mut fresh = Chat::new(me);
    browser(&app, &bob_token, &mut fresh, &dm, &mut nonce).await;

    let thread = |c: &Chat| -> BTreeMap<u64, Message> { c.threads[&dm].messages.clone() };
    let now = thread(&fresh);
    assert_eq!(
        thread(&stayed),
        now,
        "the page that stayed matches the store"
    );
    assert_eq!(thread(&away), now, "the page that resumed matches it too");
    assert_eq!(now.len(), 6);
    assert_eq!(now[&1].body, "message 1, edited twice");
    assert!(now[&3].deleted && now[&3].body.is_empty() && now[&3].reactions.is_empty());
    assert_eq!(now[&2].reactions.len(), 1);
    assert_eq!(now[&2].reactions[0].users, ["alice"]);
    let quote = now
        .values()
        .find(|m| m.body == "answer")
        .unwrap()
        .reply_to
        .clone()
        .unwrap();
    assert_eq!(quote.text, "message 2, edited");
    assert_eq!(
        stayed.threads[&dm].last_seq(),
        away.threads[&dm].last_seq(),
        "both hold every position"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_every_change_and_the_text_of_deleted_messages_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let settings = disk_settings(dir.path());
    let app = spawn_app_with(settings.clone()).await;
    let mut alice = app.user("alice").await;
    let bob_token = app.sign_up("bob").await;
    let dm = open_direct(&mut alice, "bob").await.id;
    say(&mut alice, &dm, "a1", "keep me", None).await;
    say(&mut alice, &dm, "a2", "secret words", None).await;
    alice
        .send(&ClientMsg::Edit {
            conversation_id: dm.clone(),
            seq: 1,
            body: body("kept, edited"),
        })
        .await;
    alice
        .send(&ClientMsg::React {
            conversation_id: dm.clone(),
            seq: 1,
            emoji: emoji("❤️"),
        })
        .await;
    alice
        .send(&ClientMsg::Delete {
            conversation_id: dm.clone(),
            seq: 2,
        })
        .await;
    for _ in 0..3 {
        next_change(&mut alice).await;
    }
    let before = page(&mut alice, &dm).await;
    app.stop().await;

    let app = spawn_app_with(settings).await;
    let mut bob = app.connect(&bob_token).await;
    bob.recv().await;
    bob.start().await;
    let after = page(&mut bob, &dm).await;
    assert_eq!(after, before);
    assert_eq!(after[0].body, "kept, edited");
    assert_eq!(after[0].reactions[0].users, ["alice"]);
    assert!(after[1].deleted && after[1].body.is_empty());
    // Bob has two messages unread, however many changes came after them.
    assert_eq!(unread(&mut bob, &dm).await, 2);
    // The next position follows the changes: nothing is numbered twice.
    assert_eq!(say(&mut bob, &dm, "b1", "back", None).await.seq, 6);
    // A new page resuming from nothing gets every position, the changes included.
    let mut bob = app.connect(&bob_token).await;
    bob.recv().await;
    let mut replay = Vec::new();
    bob.send(&ClientMsg::Resume {
        positions: vec![app::protocol::Position {
            conversation_id: dm.clone(),
            seq: 0,
        }],
    })
    .await;
    loop {
        match bob.recv().await {
            ServerMsg::Resumed => break,
            ServerMsg::Message { message } => replay.push((message.seq, message.body.clone())),
            ServerMsg::Changed { change } => {
                replay.push((change.seq, format!("{:?}", change.what)))
            }
            _ => {}
        }
    }
    let seqs: Vec<u64> = replay.iter().map(|r| r.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6], "every position once, in order");
    assert!(
        replay.iter().all(|(_, text)| !text.contains("secret")),
        "no trace of the deleted text: {replay:?}"
    );
    app.stop().await;
}
