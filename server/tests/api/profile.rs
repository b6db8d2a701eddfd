//! A display name changed after sign-up: who is told, what lists and searches show.

use app::{
    domain::DisplayName,
    protocol::{ClientMsg, ErrorCode, ServerMsg, UserInfo},
};
use std::time::Duration;

use crate::chat::open_direct;
use crate::helpers::spawn_app;

fn rename(name: &str) -> ClientMsg {
    ClientMsg::SetDisplayName {
        display_name: DisplayName::parse(name).unwrap(),
    }
}

fn updated(m: &ServerMsg) -> Option<UserInfo> {
    match m {
        ServerMsg::UserUpdated { user } => Some(user.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn a_new_display_name_reaches_contacts_at_once_and_is_found_by() {
    let app = spawn_app().await;
    let mut ann = app.user("ann").await;
    let mut bob = app.user("bob").await;
    let mut carol = app.user("carol").await;
    let ann_token = app.sign_in("ann").await;
    let mut ann_phone = app.connect(&ann_token).await;
    ann_phone.recv().await; // hello
    ann_phone.start().await;
    open_direct(&mut bob, "ann").await;

    let got = ann.ask(rename("  安娜 Ann  "), updated).await;
    let expected = UserInfo {
        username: "ann".into(),
        display_name: "安娜 Ann".into(),
    };
    assert_eq!(got, expected);
    assert_eq!(bob.expect(updated).await, expected);
    assert_eq!(ann_phone.expect(updated).await, expected);
    // Someone who shares no conversation with her is not told.
    assert!(
        !carol
            .receives_within(Duration::from_millis(300), |m| updated(m).is_some())
            .await
    );

    let list = bob
        .ask(ClientMsg::ListConversations { limit: None }, |m| match m {
            ServerMsg::Conversations { conversations, .. } => Some(conversations.clone()),
            _ => None,
        })
        .await;
    assert_eq!(list[0].title, "安娜 Ann");
    let search = |q: &str| ClientMsg::SearchUsers { query: q.into() };
    let found = |m: &ServerMsg| match m {
        ServerMsg::Users { users, .. } => Some(users.clone()),
        _ => None,
    };
    let by_new = carol.ask(search("安娜"), found).await;
    assert_eq!(by_new, vec![expected]);
    // The old name's words no longer find her once it changes again.
    ann.ask(rename("Zoë"), updated).await;
    assert_eq!(carol.ask(search("安娜"), found).await, vec![]);
    assert_eq!(carol.ask(search("zo"), found).await.len(), 1);

    // Bad names are refused with their code and change nothing.
    for bad in [
        r#"{"type":"set_display_name","display_name":"   "}"#,
        r#"{"type":"set_display_name","display_name":"a\u202eb"}"#,
    ] {
        ann.send_raw(tokio_tungstenite::tungstenite::Message::Text(bad.into()))
            .await;
        let code = ann
            .expect(|m| match m {
                ServerMsg::Error { code, .. } => Some(*code),
                _ => None,
            })
            .await;
        assert_eq!(code, ErrorCode::InvalidInput, "{bad}");
    }
    app.stop().await;
}
