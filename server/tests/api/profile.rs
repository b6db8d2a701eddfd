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
    let expected = UserInfo::named("ann", "安娜 Ann");
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

/// `method path` with the session cookie and `body` (raw bytes).
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: chat_session={token}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    crate::helpers::exchange(std::net::Ipv4Addr::LOCALHOST.into(), addr, &request).await
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn peer_of(client: &mut crate::helpers::Client) -> UserInfo {
    let list = crate::chat::conversations(client).await;
    list[0].peer.clone().unwrap().user
}

/// A picture and a status: stored, served as a square, told to contacts and shown in their
/// lists (which the server keeps in memory) at once; refused when not an image; removed.
#[tokio::test]
async fn a_picture_and_a_status_reach_contacts_and_their_lists() {
    let app = spawn_app().await;
    let ann_token = app.sign_up("ann").await;
    let mut ann = app.connect(&ann_token).await;
    ann.recv().await;
    ann.start().await;
    let bob_token = app.sign_up("bob").await;
    let mut bob = app.connect(&bob_token).await;
    bob.recv().await;
    bob.start().await;
    open_direct(&mut bob, "ann").await;
    // Bob's list is read (and kept) before anything changes.
    assert_eq!(peer_of(&mut bob).await.avatar, None);

    let (status, _, body) = call(
        app.addr,
        "POST",
        "/api/account/avatar",
        &ann_token,
        &png(600, 300),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let version = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["avatar"]
        .as_str()
        .unwrap()
        .to_owned();
    let told = bob.expect(updated).await;
    assert_eq!(told.avatar.as_deref(), Some(version.as_str()));
    assert_eq!(
        ann.expect(updated).await.avatar.as_deref(),
        Some(version.as_str())
    );
    assert_eq!(
        peer_of(&mut bob).await.avatar.as_deref(),
        Some(version.as_str())
    );

    let url = told.avatar_url().unwrap();
    let (status, headers, image) = call(app.addr, "GET", &url, &bob_token, b"").await;
    assert_eq!(status, 200);
    assert!(
        headers.to_lowercase().contains("content-type: image/jpeg"),
        "{headers}"
    );
    assert!(headers.to_lowercase().contains("immutable"), "{headers}");
    let decoded = image::load_from_memory(&image).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (256, 256));
    let (status, ..) = call(app.addr, "GET", "/api/users/ann/avatar", "nobody", b"").await;
    assert_eq!(status, 401, "signed-in people only");

    // Not an image: refused, nothing changes.
    let (status, _, body) = call(
        app.addr,
        "POST",
        "/api/account/avatar",
        &ann_token,
        b"<svg onload=alert(1)>",
    )
    .await;
    assert_eq!(status, 415, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("not_an_image"));
    // Refused from its declared length, before the body is read.
    let addr = app.addr;
    let huge = format!(
        "POST /api/account/avatar HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: chat_session={ann_token}\r\nContent-Length: {}\r\n\r\n",
        11 << 20
    );
    let (status, _, body) =
        crate::helpers::exchange(std::net::Ipv4Addr::LOCALHOST.into(), addr, huge.as_bytes()).await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("file_too_large"));
    assert_eq!(
        peer_of(&mut bob).await.avatar.as_deref(),
        Some(version.as_str())
    );

    // A status, and a new name: each told with the picture kept.
    let set = ClientMsg::SetStatus {
        status: app::domain::StatusText::parse("🌴 On holiday 休假中").unwrap(),
    };
    let answer = ann.ask(set, updated).await;
    assert_eq!(answer.status.as_deref(), Some("🌴 On holiday 休假中"));
    let told = bob.expect(updated).await;
    assert_eq!(told.status.as_deref(), Some("🌴 On holiday 休假中"));
    assert_eq!(told.avatar.as_deref(), Some(version.as_str()));
    ann.ask(rename("Ann 安"), updated).await;
    bob.expect(updated).await;
    let listed = peer_of(&mut bob).await;
    assert_eq!(
        (listed.display_name.as_str(), listed.status.as_deref()),
        ("Ann 安", Some("🌴 On holiday 休假中")),
        "the list kept in memory follows every change"
    );
    let too_long = format!(r#"{{"type":"set_status","status":"{}"}}"#, "x".repeat(101));
    ann.send_raw(tokio_tungstenite::tungstenite::Message::text(too_long))
        .await;
    let code = ann
        .expect(|m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::InvalidInput);

    // Removed: back to initials.
    let (status, ..) = call(app.addr, "DELETE", "/api/account/avatar", &ann_token, b"").await;
    assert_eq!(status, 204);
    assert_eq!(bob.expect(updated).await.avatar, None);
    let (status, ..) = call(app.addr, "GET", "/api/users/ann/avatar", &bob_token, b"").await;
    assert_eq!(status, 404);
    app.stop().await;
}
