//! Running rooms through the real socket: private rooms, roles, removal and bans, invite
//! links, moderators deleting messages, and the table of who may do what.

use app::{
    domain::{MessageBody, RoomName, RoomTopic, Username},
    protocol::{ClientMsg, ConversationId, ErrorCode, LeftReason, Role, ServerMsg, What},
};
use server::{db::Database, settings::StorageKind};
use std::time::Duration;

use crate::{
    chat::{open_direct, say},
    helpers::{disk_settings, spawn_app, spawn_app_with, Client, Site},
};

/// A `client_msg_id` not used before in this process.
fn next_id() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("m{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn id(conversation: &ConversationId) -> ConversationId {
    conversation.clone()
}

async fn create(client: &mut Client, name: &str, private: bool) -> ConversationId {
    client
        .ask(
            ClientMsg::CreateRoom {
                name: RoomName::parse(name).unwrap(),
                private,
            },
            |m| match m {
                ServerMsg::Conversation { conversation } => Some(conversation.id.clone()),
                _ => None,
            },
        )
        .await
}

/// Whether `msg` succeeded (its answer is one `done` accepts) or the error code it got.
async fn outcome(
    client: &mut Client,
    msg: ClientMsg,
    done: impl Fn(&ServerMsg) -> bool,
) -> Result<(), ErrorCode> {
    client
        .ask(msg, |m| match m {
            ServerMsg::Error { code, .. } => Some(Err(*code)),
            m if done(m) => Some(Ok(())),
            _ => None,
        })
        .await
}

/// A fresh socket of an existing user (no frames left over from earlier steps).
async fn socket(site: &Site, token: &str) -> Client {
    let mut c = site.connect(token).await;
    c.recv().await; // hello
    c.start().await;
    c
}

async fn invite_token(client: &mut Client, room: &ConversationId, hours: Option<u32>) -> String {
    client
        .ask(
            ClientMsg::CreateInvite {
                conversation_id: id(room),
                hours,
            },
            |m| match m {
                ServerMsg::Invites { invites, .. } => Some(invites[0].token.clone()),
                _ => None,
            },
        )
        .await
}

async fn join_by(client: &mut Client, token: &str) -> Result<(), ErrorCode> {
    outcome(
        client,
        ClientMsg::JoinByInvite {
            token: token.to_owned(),
        },
        // Room keys begin with `r`: not the answer to an earlier direct conversation.
        |m| matches!(m, ServerMsg::Conversation { conversation } if conversation.id.0.starts_with('r')),
    )
    .await
}

/// The people and the room of the table: `root` is the server's administrator (the first
/// account) and not in the room; `olga` created the private room; `adam` and `alex` are its
/// admins, `mia` and `tess` members; `otto`, `vic` and `nina` outsiders; `bart` banned.
struct Cast {
    room: ConversationId,
    tokens: std::collections::HashMap<&'static str, String>,
}

impl Cast {
    async fn on(site: &Site) -> Cast {
        let mut tokens = std::collections::HashMap::new();
        for name in [
            "root", "olga", "adam", "alex", "mia", "tess", "otto", "vic", "nina", "bart",
        ] {
            tokens.insert(name, site.sign_up(name).await);
        }
        let mut olga = socket(site, &tokens["olga"]).await;
        let room = create(&mut olga, "Ops", true).await;
        for name in ["adam", "alex", "mia", "tess", "bart"] {
            let added = outcome(
                &mut olga,
                ClientMsg::AddMember {
                    conversation_id: id(&room),
                    username: user(name),
                },
                |m| matches!(m, ServerMsg::MemberAdded { member, .. } if member.user.username == name),
            )
            .await;
            assert_eq!(added, Ok(()), "adding {name}");
        }
        for name in ["adam", "alex"] {
            let promoted = outcome(
                &mut olga,
                ClientMsg::SetRole {
                    conversation_id: id(&room),
                    username: user(name),
                    role: Role::Admin,
                },
                |m| matches!(m, ServerMsg::RoleChanged { username, .. } if username == name),
            )
            .await;
            assert_eq!(promoted, Ok(()));
        }
        let banned = outcome(
            &mut olga,
            ClientMsg::Ban {
                conversation_id: id(&room),
                username: user("bart"),
            },
            |m| matches!(m, ServerMsg::MemberRemoved { banned: true, .. }),
        )
        .await;
        assert_eq!(banned, Ok(()));
        Cast { room, tokens }
    }
}

/// One action of the table: the frame, whether an answer means it was done, and how the
/// owner puts things back after it was.
struct Case {
    name: &'static str,
    ask: fn(&ConversationId) -> ClientMsg,
    done: fn(&ServerMsg) -> bool,
    undo: Option<fn(&ConversationId) -> ClientMsg>,
}

fn add(room: &ConversationId, name: &str) -> ClientMsg {
    ClientMsg::AddMember {
        conversation_id: id(room),
        username: user(name),
    }
}

fn remove(room: &ConversationId, name: &str) -> ClientMsg {
    ClientMsg::RemoveMember {
        conversation_id: id(room),
        username: user(name),
    }
}

fn ban(room: &ConversationId, name: &str) -> ClientMsg {
    ClientMsg::Ban {
        conversation_id: id(room),
        username: user(name),
    }
}

fn unban(room: &ConversationId, name: &str) -> ClientMsg {
    ClientMsg::Unban {
        conversation_id: id(room),
        username: user(name),
    }
}

fn set_role(room: &ConversationId, name: &str, role: Role) -> ClientMsg {
    ClientMsg::SetRole {
        conversation_id: id(room),
        username: user(name),
        role,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "change the topic",
            ask: |r| ClientMsg::UpdateRoom {
                conversation_id: id(r),
                name: None,
                topic: Some(RoomTopic::parse("on call").unwrap()),
                private: None,
            },
            done: |m| matches!(m, ServerMsg::RoomUpdated { .. }),
            undo: None,
        },
        Case {
            name: "rename",
            ask: |r| ClientMsg::UpdateRoom {
                conversation_id: id(r),
                name: Some(RoomName::parse("Ops 2").unwrap()),
                topic: None,
                private: None,
            },
            done: |m| matches!(m, ServerMsg::RoomUpdated { .. }),
            undo: None,
        },
        Case {
            name: "add a person",
            ask: |r| add(r, "nina"),
            done: |m| matches!(m, ServerMsg::MemberAdded { member, .. } if member.user.username == "nina"),
            undo: Some(|r| remove(r, "nina")),
        },
        Case {
            name: "remove a member",
            ask: |r| remove(r, "tess"),
            done: |m| matches!(m, ServerMsg::MemberRemoved { username, .. } if username == "tess"),
            undo: Some(|r| add(r, "tess")),
        },
        Case {
            name: "remove an admin",
            ask: |r| remove(r, "alex"),
            done: |m| matches!(m, ServerMsg::MemberRemoved { username, .. } if username == "alex"),
            undo: None, // put back by hand: added, then made admin again
        },
        Case {
            name: "remove the owner",
            ask: |r| remove(r, "olga"),
            done: |m| matches!(m, ServerMsg::MemberRemoved { username, .. } if username == "olga"),
            undo: None,
        },
        Case {
            name: "ban an outsider",
            ask: |r| ban(r, "vic"),
            done: |m| matches!(m, ServerMsg::MemberRemoved { username, banned: true, .. } if username == "vic"),
            undo: Some(|r| unban(r, "vic")),
        },
        Case {
            name: "lift a ban",
            ask: |r| unban(r, "bart"),
            done: |m| matches!(m, ServerMsg::Bans { .. }),
            undo: Some(|r| ban(r, "bart")),
        },
        Case {
            name: "list bans",
            ask: |r| ClientMsg::ListBans {
                conversation_id: id(r),
            },
            done: |m| matches!(m, ServerMsg::Bans { .. }),
            undo: None,
        },
        Case {
            name: "make an admin",
            ask: |r| set_role(r, "tess", Role::Admin),
            done: |m| matches!(m, ServerMsg::RoleChanged { username, .. } if username == "tess"),
            undo: Some(|r| set_role(r, "tess", Role::Member)),
        },
        Case {
            name: "create an invite link",
            ask: |r| ClientMsg::CreateInvite {
                conversation_id: id(r),
                hours: Some(1),
            },
            done: |m| matches!(m, ServerMsg::Invites { .. }),
            undo: None,
        },
        Case {
            name: "list members",
            ask: |r| ClientMsg::ListMembers {
                conversation_id: id(r),
                after: None,
                limit: None,
            },
            done: |m| matches!(m, ServerMsg::Members { .. }),
            undo: None,
        },
        Case {
            name: "join",
            ask: |r| ClientMsg::JoinRoom {
                conversation_id: id(r),
            },
            done: |m| matches!(m, ServerMsg::Conversation { .. }),
            undo: None,
        },
        Case {
            name: "read history",
            ask: |r| ClientMsg::History {
                conversation_id: id(r),
                before_seq: None,
                limit: Some(5),
            },
            done: |m| matches!(m, ServerMsg::History { .. }),
            undo: None,
        },
    ]
}

/// Every room action by owner / admin / member / outsider / banned / server admin (not in
/// the room), with the answer each must get in a private room; whatever one of them is
/// allowed to do is undone before the next, so each row starts from the same room. Then a
/// disabled account: it reaches no room action at all.
#[tokio::test]
async fn every_room_action_is_allowed_or_refused_by_standing() {
    use ErrorCode::{Banned, Forbidden, InvalidInput, NotFound};
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(disk_settings(dir.path())).await;
    let cast = Cast::on(&app).await;
    let room = cast.room.clone();
    let ok = Ok(());
    // Columns: olga (owner), adam (admin), mia (member), otto (outsider), bart (banned),
    // root (server admin, outsider).
    let table: Vec<(&str, [Result<(), ErrorCode>; 6])> = vec![
        (
            "change the topic",
            [
                ok,
                ok,
                Err(Forbidden),
                Err(NotFound),
                Err(Banned),
                Err(NotFound),
            ],
        ),
        (
            "rename",
            [
                ok,
                ok,
                Err(Forbidden),
                Err(NotFound),
                Err(Banned),
                Err(NotFound),
            ],
        ),
        (
            "add a person",
            [
                ok,
                ok,
                Err(Forbidden),
                Err(NotFound),
                Err(Banned),
                Err(NotFound),
            ],
        ),
        (
            "remove a member",
            [
                ok,
                ok,
                Err(Forbidden),
                Err(NotFound),
                Err(Banned),
                Err(NotFound),
            ],
        ),
        (
            "remove an admin",
            [
                ok,
                Err(Forbidden),
                Err(Forbidden),
                Err(NotFound),
                Err(Banned),
                Err(NotFound),
            ],
        ),
        (
            "remove the owner",
            [
                Err(InvalidInput),
                Err(Forbidden),
                Err(Forbidden),
                Err(NotFound),
                Err(Banned),
                Err(NotFound),
            ],
        ),
        (
            "ban an outsider",
            [
                ok,
                ok,
                Err(Forbidden),
                Err(NotFound),
                Err(Banned),
                Err(NotFound),
            ],
        ),
        (
            "lift a ban",
            [
                ok,
                ok,
                Err(Forbidden),
                Err(NotFound),
                Err(Banned),
                Err(NotFound),
            ],
        ),
        (
            "list bans",
            [
                ok,
                ok,
                Err(Forbidden),
                Err(NotFound),
                Err(Banned),
                Err(NotFound),
            ],
        ),
        (
            "make an admin",
            [
                ok,
                Err(Forbidden),
                Err(Forbidden),
                Err(NotFound),
                Err(Banned),
                Err(NotFound),
            ],
        ),
        (
            "create an invite link",
            [
                ok,
                ok,
                Err(Forbidden),
                Err(NotFound),
                Err(Banned),
                Err(NotFound),
            ],
        ),
        (
            "list members",
            [ok, ok, ok, Err(NotFound), Err(NotFound), Err(NotFound)],
        ),
        (
            "join",
            [ok, ok, ok, Err(NotFound), Err(Banned), Err(NotFound)],
        ),
        (
            "read history",
            [ok, ok, ok, Err(NotFound), Err(NotFound), Err(NotFound)],
        ),
    ];
    let actors = ["olga", "adam", "mia", "otto", "bart", "root"];
    // Each undo on a socket of its own, so that its answer is not mistaken for an earlier push.
    let owner = || socket(&app, &cast.tokens["olga"]);
    let undone = |m: &ServerMsg| {
        matches!(
            m,
            ServerMsg::MemberAdded { .. }
                | ServerMsg::MemberRemoved { .. }
                | ServerMsg::Bans { .. }
                | ServerMsg::RoleChanged { .. }
        )
    };
    for case in cases() {
        let (_, expected) = table
            .iter()
            .find(|(name, _)| *name == case.name)
            .unwrap_or_else(|| panic!("no row for {}", case.name));
        for (actor, want) in actors.iter().zip(expected) {
            let mut client = socket(&app, &cast.tokens[actor]).await;
            let got = outcome(&mut client, (case.ask)(&room), case.done).await;
            assert_eq!(got, *want, "{actor}: {}", case.name);
            if got.is_ok() {
                if let Some(undo) = case.undo {
                    outcome(&mut owner().await, undo(&room), undone)
                        .await
                        .unwrap_or_else(|e| panic!("undoing {} by {actor}: {e:?}", case.name));
                }
                if case.name == "remove an admin" {
                    let mut owner = owner().await;
                    outcome(&mut owner, add(&room, "alex"), undone)
                        .await
                        .unwrap();
                    outcome(&mut owner, set_role(&room, "alex", Role::Admin), |m| {
                        matches!(m, ServerMsg::RoleChanged { username, .. } if username == "alex")
                    })
                    .await
                    .unwrap();
                }
            }
        }
    }

    // Deleting someone else's message (alex's, an admin's): the owner, an admin and the
    // server's administrator (who is not even in the room) may; a member, an outsider and a
    // banned person may not.
    let mut alex = socket(&app, &cast.tokens["alex"]).await;
    for (actor, want) in [
        ("olga", Ok(())),
        ("adam", Ok(())),
        ("root", Ok(())),
        ("mia", Err(Forbidden)),
        ("otto", Err(NotFound)),
        ("bart", Err(NotFound)),
    ] {
        let sent = say(&mut alex, &room, &next_id(), &format!("for {actor} to try")).await;
        let mut client = socket(&app, &cast.tokens[actor]).await;
        let got = outcome(
            &mut client,
            ClientMsg::Delete {
                conversation_id: id(&room),
                seq: sent.seq,
            },
            |m| matches!(m, ServerMsg::Changed { change } if change.target == sent.seq),
        )
        .await;
        assert_eq!(got, want, "{actor} deletes alex's message");
    }
    // A member deletes their own; nobody edits someone else's.
    let mut mia = socket(&app, &cast.tokens["mia"]).await;
    let mine = say(&mut mia, &room, &next_id(), "mine").await;
    let got = outcome(
        &mut mia,
        ClientMsg::Delete {
            conversation_id: id(&room),
            seq: mine.seq,
        },
        |m| matches!(m, ServerMsg::Changed { change } if change.target == mine.seq),
    )
    .await;
    assert_eq!(got, Ok(()));
    let theirs = say(&mut alex, &room, &next_id(), "not yours").await;
    let mut olga = socket(&app, &cast.tokens["olga"]).await;
    let got = outcome(
        &mut olga,
        ClientMsg::Edit {
            conversation_id: id(&room),
            seq: theirs.seq,
            body: MessageBody::parse("changed").unwrap(),
        },
        |m| matches!(m, ServerMsg::Changed { .. }),
    )
    .await;
    assert_eq!(got, Err(Forbidden), "moderators delete, they do not edit");

    // Disabled (an admin of the room): the open socket is closed, a new one refused, and
    // the HTTP paths too; so no action of the table reaches the room.
    let mut adam = socket(&app, &cast.tokens["adam"]).await;
    let reply = server::admin::socket::send(
        dir.path(),
        &server::admin::Request::SetDisabled {
            username: "adam".into(),
            disabled: true,
        },
    )
    .await
    .expect("the admin socket answers")
    .expect("the server listens on it");
    assert!(reply.ok, "{}", reply.message);
    assert!(
        crate::admin::closed_within(&mut adam, Duration::from_secs(1)).await,
        "the disabled admin's socket is closed within a second"
    );
    let origin = format!("http://{}", app.addr);
    assert_eq!(
        app.try_connect(Some(&cast.tokens["adam"]), Some(&origin))
            .await
            .err(),
        Some(401)
    );
    let me = crate::helpers::get_with(app.addr, "/api/auth/me", &cast.tokens["adam"]).await;
    assert_eq!(me.status, 401);
    app.stop().await;
}

/// A message an admin deleted says who removed it, live and in history.
#[tokio::test]
async fn a_message_removed_by_an_admin_names_the_admin() {
    let app = spawn_app().await;
    let mut olga = app.user("olga").await;
    let mut mia = app.user("mia").await;
    let room = create(&mut olga, "Lobby", false).await;
    crate::chat::join_room(&mut mia, &room).await;
    let sent = say(&mut mia, &room, &next_id(), "buy cheap watches").await;
    olga.send(&ClientMsg::Delete {
        conversation_id: id(&room),
        seq: sent.seq,
    })
    .await;
    let change = mia
        .expect(|m| match m {
            ServerMsg::Changed { change } if change.target == sent.seq => Some(change.clone()),
            _ => None,
        })
        .await;
    assert_eq!(change.actor, "olga");
    assert_eq!(change.what, What::Deleted);
    let page = mia
        .ask(
            ClientMsg::History {
                conversation_id: id(&room),
                before_seq: None,
                limit: Some(10),
            },
            |m| match m {
                ServerMsg::History { messages, .. } => Some(messages.clone()),
                _ => None,
            },
        )
        .await;
    let gone = page.iter().find(|m| m.seq == sent.seq).unwrap();
    assert!(gone.deleted && gone.body.is_empty());
    assert_eq!(gone.deleted_by.as_deref(), Some("olga"));
    app.stop().await;
}

/// A banned member's sockets are told at once and get nothing more of the room; they cannot
/// come back by joining, being added or using a link, until the ban is lifted.
#[tokio::test]
async fn a_banned_person_stops_receiving_at_once_and_cannot_come_back() {
    let app = spawn_app().await;
    let mut olga = app.user("olga").await;
    let bart_token = app.sign_up("bart").await;
    let mut bart = socket(&app, &bart_token).await;
    let mut bart_again = socket(&app, &bart_token).await;
    let dm = open_direct(&mut bart, "olga").await.id;
    let room = create(&mut olga, "Public", false).await;
    crate::chat::join_room(&mut bart, &room).await;
    say(&mut olga, &room, &next_id(), "before").await;
    for socket in [&mut bart, &mut bart_again] {
        socket
            .expect(|m| {
                matches!(m, ServerMsg::Message { message } if message.body == "before")
                    .then_some(())
            })
            .await;
    }
    let link = invite_token(&mut olga, &room, None).await;
    outcome(&mut olga, ban(&room, "bart"), |m| {
        matches!(m, ServerMsg::MemberRemoved { banned: true, .. })
    })
    .await
    .unwrap();
    for socket in [&mut bart, &mut bart_again] {
        let reason = socket
            .expect(|m| match m {
                ServerMsg::Left {
                    conversation_id,
                    reason,
                } if *conversation_id == room => Some(*reason),
                _ => None,
            })
            .await;
        assert_eq!(reason, Some(LeftReason::Banned));
    }
    say(&mut olga, &room, &next_id(), "after").await;
    assert!(bart.gets_no_message_before_barrier(&dm).await);
    assert!(bart_again.gets_no_message_before_barrier(&dm).await);
    let join = ClientMsg::JoinRoom {
        conversation_id: id(&room),
    };
    let joined = |m: &ServerMsg| matches!(m, ServerMsg::Conversation { conversation } if conversation.id.0.starts_with('r'));
    assert_eq!(
        outcome(&mut bart, join.clone(), joined).await,
        Err(ErrorCode::Banned)
    );
    assert_eq!(join_by(&mut bart, &link).await, Err(ErrorCode::Banned));
    assert_eq!(
        outcome(&mut olga, add(&room, "bart"), |m| {
            matches!(m, ServerMsg::MemberAdded { by, .. } if by == "olga")
        })
        .await,
        Err(ErrorCode::Banned)
    );
    // Resuming from before the ban replays nothing of the room.
    let refused = bart
        .ask(
            ClientMsg::History {
                conversation_id: id(&room),
                before_seq: None,
                limit: None,
            },
            |m| match m {
                ServerMsg::Error { code, .. } => Some(*code),
                ServerMsg::History { .. } => Some(ErrorCode::Internal),
                _ => None,
            },
        )
        .await;
    assert_eq!(refused, ErrorCode::NotFound);
    // Lifted: the link works again.
    outcome(
        &mut olga,
        unban(&room, "bart"),
        |m| matches!(m, ServerMsg::Bans { users, .. } if users.is_empty()),
    )
    .await
    .unwrap();
    assert_eq!(join_by(&mut bart, &link).await, Ok(()));
    app.stop().await;
}

/// Whether `room` is in the list of public rooms, and whether it is found by `query`.
async fn listed(c: &mut Client, room: &ConversationId, query: &str) -> (bool, bool) {
    let in_list = c
        .ask(
            ClientMsg::ListRooms {
                after: None,
                limit: None,
            },
            |m| match m {
                ServerMsg::Rooms { rooms, .. } => Some(rooms.iter().any(|r| r.id == *room)),
                _ => None,
            },
        )
        .await;
    (in_list, found(c, room, query).await)
}

async fn found(c: &mut Client, room: &ConversationId, query: &str) -> bool {
    c.ask(
        ClientMsg::SearchRooms {
            query: query.to_owned(),
        },
        |m| match m {
            ServerMsg::RoomsFound { rooms, .. } => Some(rooms.iter().any(|r| r.id == *room)),
            _ => None,
        },
    )
    .await
}

/// A private room is listed and found only by its members, and joined only by invitation:
/// a link that was revoked, expired or never existed is refused.
#[tokio::test]
async fn a_private_room_is_reached_only_by_invitation() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(disk_settings(dir.path())).await;
    let mut olga = app.user("olga").await;
    let mut otto = app.user("otto").await;
    let mut vic = app.user("vic").await;
    let room = create(&mut olga, "Secret plans", true).await;
    assert_eq!(listed(&mut otto, &room, "secret").await, (false, false));
    let join = ClientMsg::JoinRoom {
        conversation_id: id(&room),
    };
    let joined = |m: &ServerMsg| matches!(m, ServerMsg::Conversation { .. });
    assert_eq!(
        outcome(&mut otto, join, joined).await,
        Err(ErrorCode::NotFound)
    );

    // By link.
    let link = invite_token(&mut olga, &room, Some(2)).await;
    assert_eq!(join_by(&mut otto, &link).await, Ok(()));
    let (in_list, found) = listed(&mut otto, &room, "plans").await;
    assert!(
        !in_list && found,
        "members find their private room; the public list stays public"
    );
    // Revoked.
    let revoked = olga
        .ask(
            ClientMsg::RevokeInvite {
                conversation_id: id(&room),
                token: link.clone(),
            },
            |m| match m {
                ServerMsg::Invites { invites, .. } => Some(invites.len()),
                _ => None,
            },
        )
        .await;
    assert_eq!(revoked, 0);
    assert_eq!(
        join_by(&mut vic, &link).await,
        Err(ErrorCode::InviteInvalid)
    );
    assert_eq!(
        join_by(&mut vic, "not-a-token").await,
        Err(ErrorCode::InviteInvalid)
    );
    assert_eq!(
        join_by(&mut vic, "00112233445566778899aabbccddeeff").await,
        Err(ErrorCode::InviteInvalid)
    );
    // Expired: a link whose time ran out (its expiry moved into the past while the server
    // was stopped) is refused, and a live one made since is not.
    let old = invite_token(&mut olga, &room, Some(1)).await;
    drop((olga, otto, vic));
    app.stop().await;
    let db = Database::open(StorageKind::Disk, dir.path()).await.unwrap();
    db.handle()
        .query("UPDATE room_invite SET expires_at = 1")
        .await
        .unwrap()
        .check()
        .unwrap();
    assert!(db.close(Duration::from_secs(10)).await);
    let app = spawn_app_with(disk_settings(dir.path())).await;
    let mut vic = socket(&app, &app.sign_in("vic").await).await;
    assert_eq!(join_by(&mut vic, &old).await, Err(ErrorCode::InviteInvalid));
    let mut olga = socket(&app, &app.sign_in("olga").await).await;
    let listed_links = olga
        .ask(
            ClientMsg::ListInvites {
                conversation_id: id(&room),
            },
            |m| match m {
                ServerMsg::Invites { invites, .. } => Some(invites.len()),
                _ => None,
            },
        )
        .await;
    assert_eq!(listed_links, 0, "an expired link is not listed");
    let fresh = invite_token(&mut olga, &room, None).await;
    assert_eq!(join_by(&mut vic, &fresh).await, Ok(()));
    app.stop().await;
}

/// A room's name, topic and privacy reach every member at once, and their lists show them.
#[tokio::test]
async fn room_changes_reach_every_member() {
    let app = spawn_app().await;
    let mut olga = app.user("olga").await;
    let mut mia = app.user("mia").await;
    let room = create(&mut olga, "Lobby", false).await;
    crate::chat::join_room(&mut mia, &room).await;
    olga.send(&ClientMsg::UpdateRoom {
        conversation_id: id(&room),
        name: Some(RoomName::parse("大厅 Lobby").unwrap()),
        topic: Some(RoomTopic::parse("Say hi 打个招呼").unwrap()),
        private: Some(true),
    })
    .await;
    let (name, topic, private) = mia
        .expect(|m| match m {
            ServerMsg::RoomUpdated {
                name,
                topic,
                private,
                ..
            } => Some((name.clone(), topic.clone(), *private)),
            _ => None,
        })
        .await;
    assert_eq!(
        (name.as_str(), topic.as_str(), private),
        ("大厅 Lobby", "Say hi 打个招呼", true)
    );
    let mine = crate::chat::conversations(&mut mia).await;
    let summary = mine.iter().find(|c| c.id == room).unwrap();
    assert_eq!(summary.title, "大厅 Lobby");
    assert_eq!(summary.topic.as_deref(), Some("Say hi 打个招呼"));
    assert!(summary.private);
    assert_eq!(summary.role, Some(Role::Member));
    let theirs = crate::chat::conversations(&mut olga).await;
    assert_eq!(
        theirs.iter().find(|c| c.id == room).unwrap().role,
        Some(Role::Owner)
    );
    // Found under its new name only.
    assert!(found(&mut mia, &room, "大厅").await);
    let mut otto = app.user("otto").await;
    assert!(
        !found(&mut otto, &room, "lobby").await,
        "private now: hidden from outsiders"
    );
    // The server's own room keeps its name and stays public.
    let general = ConversationId("general".into());
    let mut root_like = olga;
    let refused = outcome(
        &mut root_like,
        ClientMsg::UpdateRoom {
            conversation_id: general.clone(),
            name: None,
            topic: None,
            private: Some(true),
        },
        |m| matches!(m, ServerMsg::RoomUpdated { conversation_id, .. } if *conversation_id == general),
    )
    .await;
    assert!(refused.is_err());
    app.stop().await;
}

/// Dozens of people joining one room at the same moment all get in: each join updates the
/// room's member count, and a race between valid requests is the server's to resolve. On
/// disk, where each commit waits for its sync and concurrent ones overlap the most.
#[tokio::test]
async fn many_people_joining_one_room_at_once_all_get_in() {
    const JOINERS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(disk_settings(dir.path())).await;
    let mut owner = app.user("crowdowner").await;
    let room = crate::chat::create_room(&mut owner, "crowded").await.id;
    let mut clients = Vec::new();
    for i in 0..JOINERS {
        clients.push(app.user(&format!("crowd{i}")).await);
    }
    let joins = clients.into_iter().map(|mut c| {
        let room = room.clone();
        tokio::spawn(async move {
            let answer = c
                .ask(
                    ClientMsg::JoinRoom {
                        conversation_id: room.clone(),
                    },
                    |m| match m {
                        ServerMsg::Conversation { conversation } => {
                            Some(Ok(conversation.id.clone()))
                        }
                        ServerMsg::Error { code, .. } => Some(Err(*code)),
                        _ => None,
                    },
                )
                .await;
            (c, answer)
        })
    });
    let mut joined = Vec::new();
    for join in joins.collect::<Vec<_>>() {
        let (c, answer) = join.await.unwrap();
        assert_eq!(answer, Ok(room.clone()), "a join was refused");
        joined.push(c);
    }
    assert_eq!(joined.len(), JOINERS);
    app.stop().await;
}
