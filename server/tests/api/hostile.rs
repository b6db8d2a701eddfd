//! Clients that attack the server, or are careless enough to look like it: each test runs
//! an attack and checks that it is contained, and that an honest client beside it is still
//! served in time. Attacks come from one loopback address and honest clients from another
//! (any of 127.0.0.0/8 reaches the server), as they would from the internet.

use crate::helpers::*;
use app::protocol::{ClientMsg, ConversationId, ErrorCode, ServerMsg};
use serde_json::json;
use server::settings::{Limits, Settings};
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn address(last: u8) -> IpAddr {
    Ipv4Addr::new(127, 0, 0, last).into()
}

const ATTACKER: u8 = 66;
const HONEST: u8 = 7;

fn with_limits(limits: Limits) -> Settings {
    Settings {
        limits,
        ..Settings::for_tests()
    }
}

/// `GET path` from the loopback address `.last`.
async fn get_from(last: u8, addr: SocketAddr, path: &str) -> HttpResponse {
    request_from(
        address(last),
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// `POST path` with a JSON body from the loopback address `.last`.
async fn post_from(
    last: u8,
    addr: SocketAddr,
    path: &str,
    body: serde_json::Value,
) -> HttpResponse {
    let raw = body.to_string();
    request_from(
        address(last),
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{raw}",
            raw.len()
        ),
    )
    .await
}

/// `/healthz` from the honest address answers 200 in time: within 3 s, generous for a debug
/// build with other tests running beside it, where an attack that worked would hold it
/// until the attack ends (tens of seconds).
async fn honest_client_is_served(addr: SocketAddr) {
    let started = Instant::now();
    let res = get_from(HONEST, addr, "/healthz").await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// Whether the server closes `stream` within `within` (reads to the end, discarding).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn one_address_cannot_hold_more_connections_than_its_cap() {
    let app = spawn_app_with(with_limits(Limits {
        connections_per_address: 20,
        ..Limits::default()
    }))
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect_from(address(ATTACKER), app.addr).await.unwrap());
    }
    // Give the accept loop time to count them all.
    honest_client_is_served(app.addr).await;
    let mut over = connect_from(address(ATTACKER), app.addr).await.unwrap();
    assert!(
        closed_within(&mut over, Duration::from_secs(2)).await,
        "the 21st connection from one address is closed at once"
    );
    honest_client_is_served(app.addr).await;
    // Places come back as connections close.
    held.truncate(10);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get_from(ATTACKER, app.addr, "/healthz").await.status, 200);
    drop(held);
    app.stop().await;
}

#[tokio::test]
async fn connections_that_trickle_headers_or_sit_idle_are_closed() {
    let app = spawn_app_with(with_limits(Limits {
        http_timeout: Duration::from_secs(1),
        ..Limits::default()
    }))
    .await;
    // Nothing at all.
    let mut silent = connect_from(address(ATTACKER), app.addr).await.unwrap();
    // A header line every 300 ms, never the end of the headers.
    let mut trickle = connect_from(address(ATTACKER), app.addr).await.unwrap();
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let addr = app.addr;
    let trickler = tokio::spawn(async move {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if trickle
                .write_all(format!("X-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
        }
        false
    });
    // A finished request on a kept-alive connection, then silence.
    let mut kept = connect_from(address(ATTACKER), app.addr).await.unwrap();
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    honest_client_is_served(app.addr).await;
    assert!(
        closed_within(&mut silent, Duration::from_secs(4)).await,
        "silent"
    );
    assert!(
        closed_within(&mut kept, Duration::from_secs(4)).await,
        "idle keep-alive"
    );
    assert!(
        trickler.await.unwrap(),
        "the trickling connection was closed"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_body_that_trickles_in_is_cut_off() {
    let app = spawn_app_with(with_limits(Limits {
        http_timeout: Duration::from_secs(1),
        ..Limits::default()
    }))
    .await;
    let mut slow = connect_from(address(ATTACKER), app.addr).await.unwrap();
    slow.write_all(
        format!(
            "POST /api/auth/signin HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"user",
            app.addr
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    honest_client_is_served(app.addr).await;
    let mut answer = String::new();
    let read = tokio::time::timeout(Duration::from_secs(4), slow.read_to_string(&mut answer)).await;
    assert!(read.is_ok(), "the connection ends");
    // Cut off with an error answer (the body never came), or without one.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    app.stop().await;
}

#[tokio::test]
async fn guesses_in_parallel_are_counted_before_any_password_is_checked() {
    let app = spawn_app().await;
    app.sign_up("victim").await;
    let guesses = (0..30).map(|i| {
        let addr = app.addr;
        async move {
            let body = json!({"username": "victim", "password": format!("guess number {i}")});
            post_from(ATTACKER, addr, "/api/auth/signin", body).await
        }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|r| r.status == 401).count();
    let refused = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        checked,
        Limits::default().sign_in_failures,
        "{checked} checked"
    );
    assert_eq!(checked + refused, 30);
    app.stop().await;
}

#[tokio::test]
async fn guesses_from_many_addresses_do_not_lock_the_owner_out() {
    let app = spawn_app().await;
    app.sign_up("owner").await;
    let sign_in = |from: u8, password: &'static str| {
        let addr = app.addr;
        async move {
            let body = json!({"username": "owner", "password": password});
            post_from(from, addr, "/api/auth/signin", body).await.status
        }
    };
    // The owner has signed in from their usual address before.
    assert_eq!(sign_in(HONEST, PASSWORD).await, 200);
    let per_account = Limits::default().sign_in_failures_per_account;
    let attackers = (0..per_account + 10).map(|i| sign_in(100 + i as u8, "wrong guess!"));
    let statuses = futures::future::join_all(attackers).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        per_account,
        "only the account's ceiling of guesses is checked"
    );
    // The owner is let in where they usually sign in; a new address waits.
    assert_eq!(sign_in(HONEST, PASSWORD).await, 200);
    assert_eq!(sign_in(250, PASSWORD).await, 429);
    app.stop().await;
}

#[tokio::test]
async fn sign_ups_are_limited_per_address_and_hashing_does_not_pile_up() {
    let app = spawn_app_with(with_limits(Limits {
        sign_ups_per_hour: 3,
        password_hashes_at_once: 1,
        ..Limits::default()
    }))
    .await;
    let sign_up = |from: u8, name: String| {
        let addr = app.addr;
        async move {
            let body = json!({"username": name, "password": PASSWORD});
            post_from(from, addr, "/api/auth/signup", body).await
        }
    };
    let burst = (0..10).map(|i| sign_up(ATTACKER, format!("bot{i}")));
    let answers = futures::future::join_all(burst).await;
    assert_eq!(answers.iter().filter(|r| r.status == 201).count(), 3);
    let refused: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(refused.len(), 7);
    assert_eq!(refused[0].error_code(), "too_many_attempts");
    assert!(refused[0]
        .headers
        .to_ascii_lowercase()
        .contains("retry-after: "));
    // Someone else signs up meanwhile.
    assert_eq!(sign_up(HONEST, "newcomer".into()).await.status, 201);
    app.stop().await;
}

/// Creates `n` rooms as `client` (named `prefix000`...).
async fn create_rooms(
    client: &mut Client,
    prefix: &str,
    n: usize,
) -> Vec<Result<ConversationId, ErrorCode>> {
    let mut out = Vec::new();
    for i in 0..n {
        let name = app::domain::RoomName::parse(&format!("{prefix}{i:03}")).unwrap();
        let got = client
            .ask(
                ClientMsg::CreateRoom {
                    name,
                    private: false,
                },
                |m| match m {
                    ServerMsg::Conversation { conversation } => Some(Ok(conversation.id.clone())),
                    ServerMsg::Error { code, .. } => Some(Err(*code)),
                    _ => None,
                },
            )
            .await;
        out.push(got);
    }
    out
}

#[tokio::test]
async fn creating_rooms_is_rate_limited_and_capped_per_user() {
    let app = spawn_app_with(with_limits(Limits {
        rooms_per_hour: 20,
        rooms_owned: 3,
        ..Limits::default()
    }))
    .await;
    let mut spammer = app.user("spammer").await;
    let made = create_rooms(&mut spammer, "spam", 6).await;
    assert_eq!(made.iter().filter(|r| r.is_ok()).count(), 3);
    assert!(made[3..].iter().all(|r| *r == Err(ErrorCode::LimitReached)));

    let app2 = spawn_app_with(with_limits(Limits {
        rooms_per_hour: 1,
        ..Limits::default()
    }))
    .await;
    let mut hasty = app2.user("hasty").await;
    let made = create_rooms(&mut hasty, "fast", 3).await;
    assert!(made[0].is_ok());
    assert_eq!(made[1], Err(ErrorCode::RateLimited));
    // Others are not affected.
    let mut other = app2.user("other").await;
    assert!(create_rooms(&mut other, "mine", 1).await[0].is_ok());
    app.stop().await;
    app2.stop().await;
}

#[tokio::test]
async fn room_and_member_lists_come_in_pages() {
    let app = spawn_app().await;
    let mut maker = app.user("maker").await;
    let made = create_rooms(&mut maker, "room", 230).await;
    assert!(made.iter().all(Result::is_ok));
    let page =
        |after: Option<ConversationId>, limit: Option<u32>| ClientMsg::ListRooms { after, limit };
    let first = maker
        .ask(page(None, None), |m| match m {
            ServerMsg::Rooms { rooms, next } => Some((rooms.clone(), next.clone())),
            _ => None,
        })
        .await;
    assert_eq!(first.0.len(), app::protocol::MAX_LIST_PAGE as usize);
    let second = maker
        .ask(page(first.1.clone(), None), |m| match m {
            ServerMsg::Rooms { rooms, next } => Some((rooms.clone(), next.clone())),
            _ => None,
        })
        .await;
    // 230 rooms and the server's own.
    assert_eq!(second.0.len(), 31);
    assert_eq!(second.1, None);
    let mut names: Vec<String> = first
        .0
        .iter()
        .chain(&second.0)
        .map(|r| r.name.clone())
        .collect();
    let listed = names.clone();
    names.sort();
    names.dedup();
    assert_eq!(names, listed, "in name order, each once");
    assert!(first
        .0
        .iter()
        .chain(&second.0)
        .filter(|r| r.name.starts_with("room"))
        .all(|r| r.member_count == 1 && r.joined));

    let refused = maker.ask(page(None, Some(100_000)), error_code).await;
    assert_eq!(refused, ErrorCode::InvalidInput);

    // Members, three to a page.
    let room = made[0].clone().unwrap();
    for name in ["mem1", "mem2", "mem3", "mem4"] {
        let mut member = app.user(name).await;
        member
            .ask(
                ClientMsg::JoinRoom {
                    conversation_id: room.clone(),
                },
                |m| matches!(m, ServerMsg::Conversation { .. }).then_some(()),
            )
            .await;
    }
    let members = |after: Option<String>| ClientMsg::ListMembers {
        conversation_id: room.clone(),
        after,
        limit: Some(3),
    };
    let pick = |m: &ServerMsg| match m {
        ServerMsg::Members { members, next, .. } => Some((
            members
                .iter()
                .map(|m| m.user.username.clone())
                .collect::<Vec<_>>(),
            next.clone(),
        )),
        _ => None,
    };
    let one = maker.ask(members(None), pick).await;
    assert_eq!(
        one,
        (
            vec!["maker".into(), "mem1".into(), "mem2".into()],
            Some("mem2".into())
        )
    );
    let two = maker.ask(members(one.1), pick).await;
    assert_eq!(two, (vec!["mem3".into(), "mem4".into()], None));
    let rooms_now = maker
        .ask(page(None, Some(2)), |m| match m {
            ServerMsg::Rooms { rooms, .. } => Some(rooms.clone()),
            _ => None,
        })
        .await;
    assert_eq!(rooms_now[1].id, room);
    assert_eq!(rooms_now[1].member_count, 5, "counted as they joined");
    app.stop().await;
}

/// The server's resident memory, from `/proc`.
#[cfg(target_os = "linux")]
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// One socket sends `resume` after `resume`, each naming a made-up conversation with a
/// 28 KB id: what the server keeps for the socket must not grow with them (it once kept a
/// position for every id before checking membership: 42 MiB for 1,500 of them). The
/// server runs as a process of its own so that its memory is measured alone.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn resumes_naming_made_up_conversations_do_not_grow_the_server() {
    use tokio_tungstenite::tungstenite::Message;
    let server = ServerProcess::start(&[("CHAT_STORAGE", "memory"), ("CHAT_LOG", "info")]);
    let addr = server.addr;
    let body = json!({"username": "roamer", "password": PASSWORD});
    let signed_up = post_from(ATTACKER, addr, "/api/auth/signup", body).await;
    let token = signed_up.session_token().expect("a session");
    let mut roamer = server.connect(&token).await;
    let _hello = roamer.recv().await;
    let before = rss_kib(server.pid());
    let filler = "x".repeat(28_000);
    for i in 0..1_500 {
        let frame = json!({
            "type": "resume",
            "positions": [{"conversation_id": format!("{i:05}{filler}"), "seq": 1}],
        });
        roamer.send_raw(Message::text(frame.to_string())).await;
        match roamer.recv().await {
            // Refused (the conversation does not exist for this user), or an empty replay.
            ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::NotFound),
            ServerMsg::Resumed => {}
            other => panic!("{other:?}"),
        }
    }
    honest_client_is_served(addr).await;
    let grown = rss_kib(server.pid()).saturating_sub(before);
    eprintln!("1,500 resumes of 28 KB made-up ids: the server grew by {grown} KiB");
    assert!(grown < 16 * 1024, "the server grew by {grown} KiB");
}

/// Alice sends Bob `body` in their direct conversation; Bob's next message is it.
async fn honest_pair_chats(alice: &mut Client, bob: &mut Client, id: &str) {
    let conv = crate::chat::open_direct(alice, "bobby").await.id;
    alice
        .ask(crate::chat::send_msg(&conv, id, "still here"), |m| {
            matches!(m, ServerMsg::Ack { .. }).then_some(())
        })
        .await;
    let got = bob
        .expect(|m| match m {
            ServerMsg::Message { message } if message.client_msg_id == id => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got.body, "still here");
}

#[tokio::test]
async fn silent_sockets_cannot_take_more_than_their_users_places() {
    let app = spawn_app_with(with_limits(Limits {
        sockets_per_user: 4,
        ..Limits::default()
    }))
    .await;
    let token = app.sign_up("hoarder").await;
    let here = format!("http://{}", app.addr);
    // Upgraded, greeted, and never a frame from them.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(app.connect(&token).await);
    }
    for _ in 0..3 {
        assert_eq!(
            app.try_connect(Some(&token), Some(&here)).await.err(),
            Some(429)
        );
    }
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bobby").await;
    honest_pair_chats(&mut alice, &mut bob, "m1").await;
    // A place comes back when its socket closes.
    drop(held.pop());
    assert!(
        app.connects_again(&token).await,
        "the freed place is taken again"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_outsider_probing_a_direct_conversation_learns_nothing_and_changes_nothing() {
    let app = spawn_app().await;
    let mut alice = app.user("alice").await;
    let mut bob = app.user("bobby").await;
    let theirs = crate::chat::open_direct(&mut alice, "bobby").await.id;
    let mut eve = app.user("eve").await;
    let made_up = ConversationId("alice/zed".into());
    for conv in [&theirs, &made_up] {
        for probe in [
            ClientMsg::JoinRoom {
                conversation_id: conv.clone(),
            },
            ClientMsg::LeaveRoom {
                conversation_id: conv.clone(),
            },
            ClientMsg::ListMembers {
                conversation_id: conv.clone(),
                after: None,
                limit: None,
            },
            crate::chat::send_msg(conv, "e1", "let me in"),
        ] {
            let code = eve.ask(probe, error_code).await;
            // The same answer whether the conversation exists or not.
            assert_eq!(code, ErrorCode::NotFound, "{conv}");
        }
    }
    // Fields a frame does not have are refused, not ignored.
    eve.send_raw(tokio_tungstenite::tungstenite::Message::text(
        r#"{"type":"list_rooms","admin":true}"#,
    ))
    .await;
    let code = eve.expect(error_code).await;
    assert_eq!(code, ErrorCode::BadFrame);
    honest_pair_chats(&mut alice, &mut bob, "m2").await;
    let own = crate::chat::open_direct(&mut eve, "alice").await.id;
    assert!(
        eve.gets_no_message_before_barrier(&own).await,
        "nothing of theirs reached the outsider"
    );
    app.stop().await;
}

/// Two connections stuck in the middle of a request: one sent its headers but not its
/// body, one not even all its headers. Both are being read once `/healthz` has answered.
pub(crate) async fn half_sent_requests(addr: SocketAddr) -> Vec<tokio::net::TcpStream> {
    let mut body_missing = connect_from(address(ATTACKER), addr).await.unwrap();
    body_missing
        .write_all(b"POST /api/auth/signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let mut headers_missing = connect_from(address(ATTACKER), addr).await.unwrap();
    headers_missing
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    honest_client_is_served(addr).await;
    vec![body_missing, headers_missing]
}

/// Shutdown and a clean stop: with requests stalled half-way open, SIGTERM ends the process
/// within the drain deadline, after the messages honest people were told are stored are
/// stored for good; the stop logs no warning or error (the storage engine once said "No
/// runtime available for closing the store correctly" at every stop), and the next start
/// finds the store closed cleanly with everything in it.
#[cfg(unix)]
#[tokio::test]
async fn a_stalled_request_cannot_hold_up_a_clean_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let mut server = ServerProcess::start(&[("CHAT_DATA_DIR", dir)]);
    let mut alice = server.user("alice").await;
    let _bob = server.user("bobby").await;
    let conv = crate::chat::open_direct(&mut alice, "bobby").await.id;
    for i in 1..=5 {
        alice
            .ask(
                crate::chat::send_msg(&conv, &format!("m{i}"), "before the stop"),
                |m| matches!(m, ServerMsg::Ack { .. }).then_some(()),
            )
            .await;
    }
    let stalled = half_sent_requests(server.addr).await;
    let (status, took) = server.terminate().await;
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(15), "stopped after {took:?}");
    drop(stalled);
    let noisy: Vec<String> = server
        .log()
        .into_iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("No runtime"))
        .collect();
    assert!(noisy.is_empty(), "the stop logged: {noisy:#?}");
    let again = ServerProcess::start(&[("CHAT_DATA_DIR", dir)]);
    assert!(
        !again
            .start_log()
            .iter()
            .any(|l| l.contains("conversations' last messages checked")),
        "{:#?}",
        again.start_log()
    );
    let token = again.sign_in("alice").await;
    let mut alice = again.connect(&token).await;
    alice.recv().await;
    let (seqs, _) = crate::chat::history(&mut alice, &conv, None).await;
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

/// Races between valid requests are the server's to resolve: many pairs open their
/// conversation at the same moment (the engine sees conflicting transactions), then
/// chat while both mark every message read as it arrives (a client's read positions
/// meet the ones the server stores in the background). Nobody is told `internal` or
/// anything else, each pair has one conversation, and every read position holds.
#[tokio::test]
async fn races_between_valid_requests_never_reach_the_client() {
    const PAIRS: usize = 12;
    const MESSAGES: usize = 8;
    let app = spawn_app().await;
    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        pairs.push((
            app.user(&format!("ann{i}")).await,
            app.user(&format!("bob{i}")).await,
        ));
    }
    let opens = pairs.iter_mut().enumerate().map(|(i, (a, b))| async move {
        let (to_bob, to_ann) = (format!("bob{i}"), format!("ann{i}"));
        let (x, y) = tokio::join!(opened(a, &to_bob), opened(b, &to_ann));
        let (x, y) = (x.expect("ann gets it"), y.expect("bob gets it"));
        assert_eq!(x, y, "one conversation per pair");
        x
    });
    let convs = futures::future::join_all(opens).await;
    let chats = pairs
        .iter_mut()
        .zip(&convs)
        .map(|((ann, bob), conv)| async move {
            let send_and_read = async {
                for i in 0..MESSAGES {
                    let seq = ann
                        .ask(
                            crate::chat::send_msg(conv, &format!("r{i}"), "hi"),
                            |m| match m {
                                ServerMsg::Ack { message, .. } => Some(Ok(message.seq)),
                                ServerMsg::Error { code, .. } => Some(Err(*code)),
                                _ => None,
                            },
                        )
                        .await
                        .expect("the send is acknowledged");
                    ann.send(&ClientMsg::MarkRead {
                        conversation_id: conv.clone(),
                        seq,
                    })
                    .await;
                }
            };
            let receive_and_read = async {
                let mut last = 0;
                while last < MESSAGES as u64 {
                    last = bob
                        .expect(|m| match m {
                            ServerMsg::Message { message } => Some(message.seq),
                            ServerMsg::Error { code, message, .. } => panic!("{code:?}: {message}"),
                            _ => None,
                        })
                        .await;
                    bob.send(&ClientMsg::MarkRead {
                        conversation_id: conv.clone(),
                        seq: last,
                    })
                    .await;
                }
            };
            tokio::join!(send_and_read, receive_and_read);
            for person in [ann, bob] {
                let unread = person
                    .ask(ClientMsg::ListConversations { limit: None }, |m| match m {
                        ServerMsg::Conversations { conversations, .. } => Some(
                            conversations
                                .iter()
                                .find(|c| &c.id == conv)
                                .map(|c| c.unread),
                        ),
                        ServerMsg::Error { code, message, .. } => panic!("{code:?}: {message}"),
                        _ => None,
                    })
                    .await;
                assert_eq!(unread, Some(0), "everything was marked read");
            }
        });
    futures::future::join_all(chats).await;
    app.stop().await;
}

/// Opens the direct conversation with `username`: its id, or the error's code.
async fn opened(client: &mut Client, username: &str) -> Result<ConversationId, ErrorCode> {
    let username = app::domain::Username::parse(username).unwrap();
    client
        .ask(ClientMsg::OpenDirect { username }, |m| match m {
            ServerMsg::Conversation { conversation } => Some(Ok(conversation.id.clone())),
            ServerMsg::Error { code, .. } => Some(Err(*code)),
            _ => None,
        })
        .await
}
