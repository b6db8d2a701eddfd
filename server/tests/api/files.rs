//! Files over real HTTP and sockets: upload, send, download by members only, limits,
//! hostile files, images, deletion, and a crash in the middle of an upload.

use app::{
    domain::{ClientMsgId, FileId, MessageBody},
    protocol::{ClientMsg, ConversationId, ErrorCode, Message, ServerMsg},
};
use image::{codecs::jpeg::JpegEncoder, ImageEncoder};
use img_parts::{jpeg::Jpeg, Bytes, ImageEXIF};
use server::settings::Settings;

use crate::chat::open_direct;
use crate::helpers::{download, spawn_app, spawn_app_with, upload, Client, ServerProcess, Site};

/// Signs three people up: `alice` and `bob` share a direct conversation, `carol` is outside
/// it. Their tokens and sockets, and the conversation.
async fn three(site: &Site) -> ([String; 3], [Client; 3], ConversationId) {
    let tokens = [
        site.sign_up("alice").await,
        site.sign_up("bob").await,
        site.sign_up("carol").await,
    ];
    let mut clients = [
        site.connect(&tokens[0]).await,
        site.connect(&tokens[1]).await,
        site.connect(&tokens[2]).await,
    ];
    for c in &mut clients {
        c.start().await;
    }
    let dm = open_direct(&mut clients[0], "bob").await.id;
    (tokens, clients, dm)
}

fn send_files(conv: &ConversationId, cmid: &str, body: Option<&str>, files: &[&str]) -> ClientMsg {
    ClientMsg::Send {
        conversation_id: conv.clone(),
        client_msg_id: ClientMsgId::parse(cmid).unwrap(),
        body: body.map(|b| MessageBody::parse(b).unwrap()),
        reply_to: None,
        attachments: files.iter().map(|f| FileId::parse(f).unwrap()).collect(),
    }
}

async fn sent(client: &mut Client, msg: ClientMsg) -> Result<Message, ErrorCode> {
    client
        .ask(msg, |m| match m {
            ServerMsg::Ack { message, .. } => Some(Ok(message.clone())),
            ServerMsg::Error { code, .. } => Some(Err(*code)),
            _ => None,
        })
        .await
}

fn file_id(res: &crate::helpers::HttpResponse) -> String {
    assert_eq!(res.status, 201, "upload: {}", res.body);
    res.json()["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn a_sent_file_reaches_members_only_and_comes_back_with_history() {
    let app = spawn_app().await;
    let ([alice, bob, carol], [mut a, mut b, _c], dm) = three(&app).await;
    let text = "minutes of the meeting\n".repeat(100);
    let res = upload(
        app.addr,
        Some(&alice),
        &dm.0,
        "纪要 notes.txt",
        text.as_bytes(),
    )
    .await;
    let id = file_id(&res);
    let j = res.json();
    assert_eq!(j["name"], "纪要 notes.txt");
    assert_eq!(j["size"], text.len());
    assert_eq!(j["content_type"], "text/plain");
    let path = format!("/api/files/{id}");

    // Before it is sent, only its uploader sees it.
    assert_eq!(
        download(app.addr, &path, Some(&alice), "").await.status,
        200
    );
    let early = download(app.addr, &path, Some(&bob), "").await;
    assert_eq!(early.status, 404);

    let message = sent(&mut a, send_files(&dm, "f1", Some("the notes"), &[&id]))
        .await
        .expect("sent");
    assert_eq!(message.attachments.len(), 1);
    assert_eq!(message.attachments[0].id, id);
    let got = b
        .expect(|m| match m {
            ServerMsg::Message { message } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got.attachments, message.attachments);

    let d = download(app.addr, &path, Some(&bob), "").await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body, text.as_bytes());
    assert_eq!(
        d.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    let disposition = d.header("content-disposition").unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(disposition.contains("filename*=UTF-8''%E7%BA%AA%E8%A6%81%20notes%2Etxt"));
    assert_eq!(
        d.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(d
        .header("content-security-policy")
        .unwrap()
        .contains("sandbox"));

    // Ranges and the ETag.
    let part = download(app.addr, &path, Some(&bob), "Range: bytes=0-7\r\n").await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, b"minutes ");
    let etag = d.header("etag").unwrap();
    let again = download(
        app.addr,
        &path,
        Some(&bob),
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!(again.status, 304);

    // An outsider, a made-up id and a signed-out client learn nothing.
    let outsider = download(app.addr, &path, Some(&carol), "").await;
    let missing = download(
        app.addr,
        &format!("/api/files/{}", "0".repeat(32)),
        Some(&carol),
        "",
    )
    .await;
    assert_eq!((outsider.status, missing.status), (404, 404));
    assert_eq!(outsider.body, missing.body);
    assert_eq!(download(app.addr, &path, None, "").await.status, 401);
    let res = upload(app.addr, Some(&carol), &dm.0, "x.txt", b"x").await;
    assert_eq!((res.status, res.error_code().as_str()), (404, "not_found"));
    assert_eq!(
        upload(app.addr, None, &dm.0, "x.txt", b"x").await.status,
        401
    );

    // History carries the file; a retried send is the same message, another is refused.
    let history = b
        .ask(
            ClientMsg::History {
                conversation_id: dm.clone(),
                before_seq: None,
                limit: None,
            },
            |m| match m {
                ServerMsg::History { messages, .. } => Some(messages.clone()),
                _ => None,
            },
        )
        .await;
    assert_eq!(history.last().unwrap().attachments, message.attachments);
    let retried = sent(&mut a, send_files(&dm, "f1", Some("the notes"), &[&id])).await;
    assert_eq!(retried.unwrap().seq, message.seq);
    assert_eq!(
        sent(&mut a, send_files(&dm, "f2", None, &[&id])).await,
        Err(ErrorCode::InvalidInput)
    );
    // Someone else's file cannot be sent, nor a message of nothing.
    let theirs = file_id(&upload(app.addr, Some(&bob), &dm.0, "b.txt", b"bob's").await);
    assert_eq!(
        sent(&mut a, send_files(&dm, "f3", None, &[&theirs])).await,
        Err(ErrorCode::NotFound)
    );
    assert_eq!(
        sent(&mut a, send_files(&dm, "f4", None, &[])).await,
        Err(ErrorCode::InvalidInput)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_message_takes_its_files_with_it() {
    let app = spawn_app().await;
    let ([alice, bob, _], [mut a, _b, _c], dm) = three(&app).await;
    let id = file_id(&upload(app.addr, Some(&alice), &dm.0, "a.pdf", b"%PDF-1.4 tiny").await);
    let message = sent(&mut a, send_files(&dm, "d1", None, &[&id]))
        .await
        .unwrap();
    assert_eq!(message.body, "", "files alone");
    let path = format!("/api/files/{id}");
    assert_eq!(download(app.addr, &path, Some(&bob), "").await.status, 200);
    a.send(&ClientMsg::Delete {
        conversation_id: dm.clone(),
        seq: message.seq,
    })
    .await;
    let change = a
        .expect(|m| match m {
            ServerMsg::Changed { change } => Some(change.clone()),
            _ => None,
        })
        .await;
    assert_eq!(change.target, message.seq);
    assert_eq!(download(app.addr, &path, Some(&bob), "").await.status, 404);
    assert_eq!(
        download(app.addr, &path, Some(&alice), "").await.status,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn the_size_cap_and_the_quota_are_refused_with_their_codes() {
    let mut settings = Settings::for_tests();
    settings.limits.file_max_bytes = 1000;
    settings.limits.file_quota_bytes = 2500;
    let app = spawn_app_with(settings).await;
    let ([alice, ..], _clients, dm) = three(&app).await;
    let res = upload(app.addr, Some(&alice), &dm.0, "big.bin", &[7u8; 1001]).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (413, "file_too_large")
    );
    for n in 0..2 {
        let res = upload(app.addr, Some(&alice), &dm.0, "ok.bin", &[n; 900]).await;
        assert_eq!(res.status, 201, "{}", res.body);
    }
    let res = upload(app.addr, Some(&alice), &dm.0, "over.bin", &[9u8; 900]).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (413, "quota_exceeded")
    );
    // A bad name is refused before anything is stored.
    let res = upload(app.addr, Some(&alice), &dm.0, "photo\u{202E}gpj.exe", b"x").await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (400, "invalid_input")
    );
    app.stop().await;
}

#[tokio::test]
async fn html_svg_and_fake_images_are_only_ever_downloads() {
    let app = spawn_app().await;
    let ([alice, bob, _], [mut a, ..], dm) = three(&app).await;
    let hostile: [(&str, &[u8]); 4] = [
        ("page.html", b"<html><script>alert(1)</script></html>"),
        (
            "logo.svg",
            br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#,
        ),
        (
            "cat.jpg",
            b"<html><body onload=alert(1)>not a cat</body></html>",
        ),
        (
            "\"><img src=x onerror=alert(1)>.png",
            b"\xff\xd8\xff\xe0<script>alert(1)</script>",
        ),
    ];
    for (n, (name, bytes)) in hostile.iter().enumerate() {
        let res = upload(app.addr, Some(&alice), &dm.0, name, bytes).await;
        let id = file_id(&res);
        let j = res.json();
        assert!(j["width"].is_null(), "{name} is not shown as an image");
        assert!(
            !j["content_type"].as_str().unwrap().starts_with("image/"),
            "{name}"
        );
        sent(&mut a, send_files(&dm, &format!("h{n}"), None, &[&id]))
            .await
            .unwrap();
        let d = download(app.addr, &format!("/api/files/{id}"), Some(&bob), "").await;
        assert_eq!(d.status, 200);
        assert_eq!(d.body, *bytes);
        assert_eq!(
            d.header("content-type").as_deref(),
            Some("application/octet-stream"),
            "{name}"
        );
        assert!(d
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment;"));
        assert_eq!(
            d.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert!(d
            .header("content-security-policy")
            .unwrap()
            .contains("sandbox"));
        let thumb = download(
            app.addr,
            &format!("/api/files/{id}/thumbnail"),
            Some(&bob),
            "",
        )
        .await;
        assert_eq!(thumb.status, 404, "no thumbnail of {name}");
    }
    app.stop().await;
}

/// A JPEG of `w`×`h` whose EXIF says it is turned by `orientation` and where it was taken.
fn photo(w: u32, h: u32, orientation: u16) -> Vec<u8> {
    let pixels: Vec<u8> = (0..w * h)
        .flat_map(|i| [(i % 251) as u8, 90, 200])
        .collect();
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 90)
        .write_image(&pixels, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    let mut exif = b"MM\0\x2a\0\0\0\x08\0\x02".to_vec();
    exif.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    exif.extend_from_slice(&orientation.to_be_bytes());
    exif.extend_from_slice(&[0, 0, 0x01, 0x0E, 0, 2, 0, 0, 0, 12, 0, 0, 0, 38, 0, 0, 0, 0]);
    exif.extend_from_slice(b"GPS 48N 2E\0\0");
    let mut parsed = Jpeg::from_bytes(Bytes::from(jpeg)).unwrap();
    parsed.set_exif(Some(Bytes::from(exif)));
    parsed.encoder().bytes().to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn an_image_is_shown_upright_with_a_thumbnail_and_without_its_location() {
    let app = spawn_app().await;
    let ([alice, bob, _], [mut a, ..], dm) = three(&app).await;
    let original = photo(900, 600, 6);
    let res = upload(app.addr, Some(&alice), &dm.0, "IMG_0001.JPG", &original).await;
    let id = file_id(&res);
    let j = res.json();
    assert_eq!(j["content_type"], "image/jpeg");
    assert_eq!(
        (j["width"].as_u64(), j["height"].as_u64()),
        (Some(600), Some(900))
    );
    sent(&mut a, send_files(&dm, "p1", Some("看这张"), &[&id]))
        .await
        .unwrap();

    let d = download(app.addr, &format!("/api/files/{id}"), Some(&bob), "").await;
    assert_eq!(d.header("content-type").as_deref(), Some("image/jpeg"));
    assert!(d
        .header("content-disposition")
        .unwrap()
        .starts_with("inline;"));
    assert!(contains(&original, b"GPS 48N"));
    assert!(!contains(&d.body, b"GPS 48N"), "the location is gone");
    let upright = image::load_from_memory(&d.body).unwrap();
    assert_eq!((upright.width(), upright.height()), (600, 900));

    let t = download(
        app.addr,
        &format!("/api/files/{id}/thumbnail"),
        Some(&bob),
        "",
    )
    .await;
    assert_eq!(t.status, 200);
    assert_eq!(t.header("content-type").as_deref(), Some("image/jpeg"));
    let thumb = image::load_from_memory(&t.body).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (267, 400));
    app.stop().await;
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_without_the_server_memory_jumping() {
    let server = ServerProcess::start(&[
        ("CHAT_STORAGE", "memory"),
        ("CHAT_SIGN_UPS_PER_HOUR", "100"),
    ]);
    let ([alice, ..], _clients, dm) = three(&server).await;
    // 12,000 × 12,000 grey pixels (144 MB decoded), compressed to a few hundred KB.
    let (w, h) = (12_000u32, 12_000u32);
    let mut bomb = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut bomb,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(
        &vec![0u8; (w * h) as usize],
        w,
        h,
        image::ExtendedColorType::L8,
    )
    .unwrap();
    // The peak so far (start-up) is reset to the current size (`clear_refs` 5), so that
    // the peak after the upload is what the upload took.
    std::fs::write(format!("/proc/{}/clear_refs", server.pid()), "5").unwrap();
    let before = peak_rss_kib(server.pid());
    let res = upload(server.addr, Some(&alice), &dm.0, "bomb.png", &bomb).await;
    let after = peak_rss_kib(server.pid());
    println!(
        "decompression bomb: {} KB on the wire, {} MB decoded; server peak RSS {} -> {} MiB",
        bomb.len() / 1000,
        u64::from(w) * u64::from(h) / 1_000_000,
        before / 1024,
        after / 1024
    );
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (422, "image_too_large")
    );
    let rise = after.saturating_sub(before);
    assert!(rise < 32 * 1024, "peak RSS rose by {rise} KiB");
}

#[tokio::test]
async fn a_crash_in_the_middle_of_an_upload_leaves_no_partial_file_behind() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let env = [
        ("CHAT_STORAGE", "disk"),
        ("CHAT_DATA_DIR", data),
        ("CHAT_SIGN_UPS_PER_HOUR", "100"),
    ];
    let server = ServerProcess::start(&env);
    let ([alice, bob, _], [mut a, ..], dm) = three(&server).await;
    let whole = b"the whole file".repeat(1000);
    let id = file_id(&upload(server.addr, Some(&alice), &dm.0, "whole.txt", &whole).await);
    sent(&mut a, send_files(&dm, "k1", None, &[&id]))
        .await
        .unwrap();

    // A second upload stops halfway; then the server is killed.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/files?conversation_id={}&name=half.bin HTTP/1.1\r\nHost: {}\r\nCookie: chat_session={alice}\r\nContent-Length: 4000000\r\n\r\n",
        percent_encoding::utf8_percent_encode(&dm.0, percent_encoding::NON_ALPHANUMERIC),
        server.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![1u8; 1_000_000]).await.unwrap();
    stream.flush().await.unwrap();
    let tmp = dir.path().join("files/tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&tmp).unwrap().count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Dropping the process kills it (SIGKILL) and waits for it.
    drop(server);
    drop(stream);

    let server = ServerProcess::start(&env);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the partial file is gone"
    );
    let blobs: usize = std::fs::read_dir(dir.path().join("files/blobs"))
        .unwrap()
        .map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(blobs, 1, "only the whole file");
    let d = download(server.addr, &format!("/api/files/{id}"), Some(&bob), "").await;
    assert_eq!((d.status, d.body.len()), (200, whole.len()));
}
