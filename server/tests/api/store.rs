//! `SurrealChatStore` against real embedded SurrealDB (in memory, and on disk for restarts).

use app::domain::{ClientMsgId, DisplayName, MessageBody, RoomName, Username};
use app::protocol::UserInfo;
use server::{
    db::Database,
    settings::StorageKind,
    store::{Kind, MessageRecord, StoreError, SurrealChatStore, DEFAULT_ROOM_KEY},
};
use std::path::Path;

async fn open(kind: StorageKind, dir: &Path) -> SurrealChatStore {
    // A disk database that was just dropped may be held by its background flush briefly.
    for _ in 0..50 {
        if let Ok(db) = Database::open(kind, dir).await {
            return SurrealChatStore::new(&db, 1).await.expect("schema");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("database does not open");
}

async fn memory_store() -> SurrealChatStore {
    open(StorageKind::Memory, Path::new("unused")).await
}

async fn memory_db() -> Database {
    Database::open(StorageKind::Memory, Path::new("unused"))
        .await
        .unwrap()
}

/// The store of the cluster node `name` on a database the nodes share.
async fn node(db: &Database, name: &str) -> SurrealChatStore {
    SurrealChatStore::new_for_node(db, 1, Some(name))
        .await
        .unwrap()
}

async fn user(store: &SurrealChatStore, name: &str) {
    store
        .create_user(
            &Username::parse(name).unwrap(),
            &DisplayName::parse(&name.to_uppercase()).unwrap(),
            "hash",
            false,
            1,
        )
        .await
        .unwrap();
}

fn cmid(s: &str) -> ClientMsgId {
    ClientMsgId::parse(s).unwrap()
}

fn body(s: &str) -> MessageBody {
    MessageBody::parse(s).unwrap()
}

/// The positions of a `mark_read` answer: (read up to, last).
fn read_seqs((read, last): (server::store::Mark, server::store::Mark)) -> (u64, u64) {
    (read.seq, last.seq)
}

/// A message of `conv` at `seq`, as the writer makes it.
fn record(conv: &str, seq: u64, sender: &str, id: &str, text: &str, at: i64) -> MessageRecord {
    MessageRecord {
        conversation: conv.to_owned(),
        seq,
        // These tests store messages only: every position is a message.
        n: seq,
        sender: sender.to_owned(),
        body: body(text).as_str().to_owned(),
        client_msg_id: cmid(id).to_string(),
        sent_at: at,
        ..MessageRecord::default()
    }
}

/// Stores one message at `seq`, as a batch of one, and the sender's read position with
/// it, as the server does (a second later at most).
async fn append(
    store: &SurrealChatStore,
    conv: &str,
    seq: u64,
    sender: &str,
    id: &str,
    text: &str,
    at: i64,
) -> Result<MessageRecord, StoreError> {
    let m = record(conv, seq, sender, id, text, at);
    store.append_batch(std::slice::from_ref(&m)).await?;
    store.store_pending(std::time::Duration::ZERO).await?;
    Ok(m)
}

/// Appends `text` as the next message of `conv`.
async fn say(store: &SurrealChatStore, conv: &str, sender: &str, text: &str, at: i64) -> u64 {
    let seq = store.last_seq(conv).await.unwrap().unwrap() + 1;
    append(
        store,
        conv,
        seq,
        sender,
        &format!("{sender}-{at}"),
        text,
        at,
    )
    .await
    .unwrap();
    seq
}

#[tokio::test]
async fn usernames_are_unique() {
    let store = memory_store().await;
    user(&store, "alice").await;
    let again = store
        .create_user(
            &Username::parse("Alice").unwrap(),
            &DisplayName::parse("Other").unwrap(),
            "h",
            false,
            2,
        )
        .await;
    assert!(matches!(again, Err(StoreError::UsernameTaken)), "{again:?}");
    let alice = store.user("alice").await.unwrap().unwrap();
    assert_eq!(alice.display_name, "ALICE");
    assert_eq!(alice.password_hash, "hash");
    assert!(store.user("nobody").await.unwrap().is_none());
}

#[tokio::test]
async fn a_pair_of_users_has_one_direct_conversation_whoever_starts_it() {
    let store = memory_store().await;
    for u in ["alice", "bob", "carol"] {
        user(&store, u).await;
    }
    let ab = store.open_direct("alice", "bob", 10).await.unwrap();
    let ba = store.open_direct("bob", "alice", 11).await.unwrap();
    assert_eq!(ab, ba);
    assert_eq!(*store.members(&ab).await.unwrap(), ["alice", "bob"]);
    assert!(matches!(
        store.require_member(&ab, "carol").await,
        Err(StoreError::NotMember)
    ));
    // Not a room to its members; not there at all to anyone else.
    assert!(matches!(
        store.join_room(&ab, "alice", 12).await,
        Err(StoreError::NotARoom)
    ));
    assert!(matches!(
        store.join_room(&ab, "carol", 12).await,
        Err(StoreError::NoSuchConversation)
    ));
    assert!(matches!(
        store.open_direct("alice", "nobody", 13).await,
        Err(StoreError::NoSuchUser)
    ));
}

#[tokio::test]
async fn messages_get_consecutive_positions_without_gaps() {
    let store = memory_store().await;
    user(&store, "alice").await;
    user(&store, "bob").await;
    let conv = store.open_direct("alice", "bob", 1).await.unwrap();
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        let seq = i as u64 + 1;
        let m = append(
            &store,
            &conv,
            seq,
            "alice",
            &format!("m{seq}"),
            text,
            100 + seq as i64,
        )
        .await
        .unwrap();
        assert_eq!(m.seq, seq);
    }
    // A batch must continue the conversation's last seq: neither the same position twice
    // nor a gap.
    let clash = append(&store, &conv, 3, "bob", "b1", "x", 200).await;
    assert!(matches!(clash, Err(StoreError::OutOfSequence)), "{clash:?}");
    let gap = append(&store, &conv, 5, "bob", "b1", "x", 200).await;
    assert!(matches!(gap, Err(StoreError::OutOfSequence)), "{gap:?}");
    let second = store.message(&conv, 2).await.unwrap().unwrap();
    assert_eq!((second.seq, second.body.as_str()), (2, "two"));
    assert!(store.message(&conv, 4).await.unwrap().is_none());

    let all = store.history(&conv, None, 50).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(store.last_seq(&conv).await.unwrap(), Some(3));
}

#[tokio::test]
async fn history_pages_backwards_from_the_newest() {
    let store = memory_store().await;
    user(&store, "alice").await;
    user(&store, "bob").await;
    let conv = store.open_direct("alice", "bob", 1).await.unwrap();
    for i in 1..=120 {
        say(&store, &conv, "alice", &format!("message {i}"), i).await;
    }
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = store.history(&conv, before, 50).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = Some(page[0].seq);
        pages.push(page.iter().map(|m| m.seq).collect::<Vec<_>>());
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0], (71..=120).collect::<Vec<_>>());
    assert_eq!(pages[1], (21..=70).collect::<Vec<_>>());
    assert_eq!(pages[2], (1..=20).collect::<Vec<_>>());
    let missed = store.messages_after(&conv, 117, 100).await.unwrap();
    assert_eq!(
        missed.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [118, 119, 120]
    );
    assert_eq!(missed[2].body, "message 120");
}

#[tokio::test]
async fn unread_counts_and_recent_order_follow_sends_and_reads() {
    let store = memory_store().await;
    for u in ["alice", "bob", "carol"] {
        user(&store, u).await;
    }
    let ab = store.open_direct("alice", "bob", 1).await.unwrap();
    let ac = store.open_direct("alice", "carol", 2).await.unwrap();
    say(&store, &ab, "bob", "hi alice", 10).await;
    say(&store, &ab, "bob", "are you there?", 11).await;
    say(&store, &ac, "carol", "lunch?", 12).await;
    say(&store, &ab, "alice", "yes!", 13).await;
    say(&store, &ab, "bob", "great", 14).await;

    let recent = store.recent_conversations("alice").await.unwrap();
    let lines: Vec<(&str, u64)> = recent
        .iter()
        .map(|c| (c.key.as_str(), c.unread()))
        .collect();
    // Sending marks everything before it read for the sender.
    assert_eq!(lines, [(ab.as_str(), 1), (ac.as_str(), 1)]);
    assert_eq!(recent[0].peer, Some(UserInfo::named("bob", "BOB")));
    assert_eq!(recent[0].last_text.as_deref(), Some("great"));
    assert_eq!(recent[0].last_sender.as_deref(), Some("bob"));
    assert_eq!(recent[0].kind, Kind::Direct);

    say(&store, &ac, "carol", "at noon", 15).await;
    let recent = store.recent_conversations("alice").await.unwrap();
    assert_eq!(recent[0].key, ac);
    assert_eq!(recent[0].unread(), 2);

    // Reading moves forward only, and never past the last message.
    assert_eq!(
        read_seqs(store.mark_read(&ac, "alice", 1).await.unwrap()),
        (1, 2)
    );
    assert_eq!(
        read_seqs(store.mark_read(&ac, "alice", 0).await.unwrap()),
        (1, 2)
    );
    assert_eq!(
        read_seqs(store.mark_read(&ac, "alice", 99).await.unwrap()),
        (2, 2)
    );
    let unread: Vec<u64> = store
        .recent_conversations("alice")
        .await
        .unwrap()
        .iter()
        .map(|c| c.unread())
        .collect();
    assert_eq!(unread, [0, 1]);
    assert!(matches!(
        store.mark_read(&ac, "bob", 1).await,
        Err(StoreError::NotMember)
    ));
    // Bob's view: one conversation, with everything Alice said since his last send unread.
    let bob = store.recent_conversations("bob").await.unwrap();
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].unread(), 0);
}

/// Sending marks read at once, even before the writer stores the position: a list read
/// from the database in between (a new tab, a list not cached) does not count one's own
/// message as unread.
#[tokio::test]
async fn a_sent_message_is_read_for_its_sender_before_its_position_is_stored() {
    let store = memory_store().await;
    user(&store, "alice").await;
    user(&store, "bob").await;
    let ab = store.open_direct("alice", "bob", 1).await.unwrap();
    say(&store, &ab, "bob", "hi", 10).await;
    let m = record(&ab, 2, "alice", "a1", "hello", 11);
    store.append_batch(std::slice::from_ref(&m)).await.unwrap();
    let unread = |rows: Vec<server::store::ConversationRow>| rows[0].unread();
    assert_eq!(
        unread(store.recent_conversations("alice").await.unwrap()),
        0
    );
    // The conversation's last message is pending too; a list read from disk shows it.
    let bob = store.recent_conversations("bob").await.unwrap();
    assert_eq!(
        (bob[0].last_seq, bob[0].last_text.as_deref()),
        (2, Some("hello"))
    );
    assert_eq!(bob[0].unread(), 1);
    assert_eq!(store.last_seq(&ab).await.unwrap(), Some(2));
    assert_eq!(
        read_seqs(store.mark_read(&ab, "alice", 1).await.unwrap()),
        (2, 2)
    );
    store
        .store_pending(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        unread(store.recent_conversations("alice").await.unwrap()),
        0
    );
}

#[tokio::test]
async fn pages_of_rooms_with_the_same_name_each_come_once() {
    let store = memory_store().await;
    user(&store, "alice").await;
    let mut made = Vec::new();
    for name in ["Same", "Same", "Same", "Other", "Same", "Zeta"] {
        let key = store
            .create_room("alice", &RoomName::parse(name).unwrap(), false, 1)
            .await
            .unwrap();
        made.push(key);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let page = store.rooms(after.as_deref(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.key.clone());
        seen.extend(page.into_iter().map(|r| (r.name, r.key)));
    }
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["General", "Other", "Same", "Same", "Same", "Same", "Zeta"]
    );
    let mut keys: Vec<&String> = seen.iter().map(|(_, k)| k).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 7, "each room once");
}

#[tokio::test]
async fn rooms_can_be_created_joined_and_left() {
    let store = memory_store().await;
    for u in ["alice", "bob", "carol"] {
        user(&store, u).await;
    }
    let rooms = store.rooms(None, 100).await.unwrap();
    assert_eq!(rooms.len(), 1, "the default room exists: {rooms:?}");
    assert_eq!(rooms[0].key, DEFAULT_ROOM_KEY);

    let room = store
        .create_room("alice", &RoomName::parse("Rustaceans").unwrap(), false, 5)
        .await
        .unwrap();
    store.join_room(&room, "bob", 6).await.unwrap();
    store.join_room(&room, "bob", 7).await.unwrap(); // idempotent
    store.join_room(&room, "carol", 8).await.unwrap();
    assert_eq!(
        *store.members(&room).await.unwrap(),
        ["alice", "bob", "carol"]
    );
    say(&store, &room, "carol", "hello all", 9).await;
    let bob_view = store.recent_conversations("bob").await.unwrap();
    assert_eq!(bob_view[0].name.as_deref(), Some("Rustaceans"));
    assert_eq!(bob_view[0].unread(), 1);

    store.leave_room(&room, "bob").await.unwrap();
    assert_eq!(*store.members(&room).await.unwrap(), ["alice", "carol"]);
    assert!(store.recent_conversations("bob").await.unwrap().is_empty());
    assert!(matches!(
        store.leave_room(&room, "bob").await,
        Err(StoreError::NotMember)
    ));
    let listed = store.rooms(None, 100).await.unwrap();
    let rust = listed.iter().find(|r| r.key == room).unwrap();
    assert_eq!((rust.name.as_str(), rust.member_count), ("Rustaceans", 2));
    assert!(matches!(
        store.join_room("nope", "bob", 10).await,
        Err(StoreError::NoSuchConversation)
    ));
}

#[tokio::test]
async fn accounts_history_and_read_state_survive_reopening_the_disk_store() {
    let dir = tempfile::tempdir().unwrap();
    let conv = {
        let store = open(StorageKind::Disk, dir.path()).await;
        user(&store, "alice").await;
        user(&store, "bob").await;
        let conv = store.open_direct("alice", "bob", 1).await.unwrap();
        for i in 1..=5 {
            say(&store, &conv, "alice", &format!("m{i}"), i).await;
        }
        store.mark_read(&conv, "bob", 3).await.unwrap();
        conv
    };
    let store = open(StorageKind::Disk, dir.path()).await;
    assert!(store.user("alice").await.unwrap().is_some());
    let history = store.history(&conv, None, 50).await.unwrap();
    assert_eq!(
        history.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let bob = store.recent_conversations("bob").await.unwrap();
    assert_eq!((bob[0].last_read_seq, bob[0].unread()), (3, 2));
}

/// Alice and Bob, their direct conversation (made at 1) and Bob's empty room "Quiet" (made
/// at 2).
async fn alice_bob_and_a_quiet_room(store: &SurrealChatStore) -> (String, String) {
    user(store, "alice").await;
    user(store, "bob").await;
    let ab = store.open_direct("alice", "bob", 1).await.unwrap();
    let room = store
        .create_room("bob", &RoomName::parse("Quiet").unwrap(), false, 2)
        .await
        .unwrap();
    (ab, room)
}

/// The newest page and the next `seq` need the conversation's last `seq`: read once, then
/// known in memory and moved by every commit, so it never lags what was stored; reading it
/// changes nothing the recent-conversations list shows.
#[tokio::test]
async fn a_conversations_last_seq_is_read_once_then_follows_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (ab, room) = {
        let store = open(StorageKind::Disk, dir.path()).await;
        let (ab, room) = alice_bob_and_a_quiet_room(&store).await;
        for at in 3..=5 {
            say(&store, &ab, "alice", &format!("m{at}"), at).await;
        }
        store.close().await.unwrap();
        (ab, room)
    };
    let store = open(StorageKind::Disk, dir.path()).await;
    let seqs = |page: Vec<MessageRecord>| page.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.history(&ab, None, 50).await.unwrap()), [1, 2, 3]);
    assert_eq!(store.last_seq(&room).await.unwrap(), Some(0));
    assert_eq!(store.last_seq("nobody/nowhere").await.unwrap(), None);
    // Committed, not yet stored in the conversation's fields: the page still ends there.
    let batch = [
        record(&ab, 4, "bob", "b4", "m6", 6),
        record(&ab, 5, "bob", "b5", "m7", 7),
    ];
    store.append_batch(&batch).await.unwrap();
    assert_eq!(store.last_seq(&ab).await.unwrap(), Some(5));
    assert_eq!(
        seqs(store.history(&ab, None, 2).await.unwrap()),
        [4, 5],
        "the newest page ends at the last commit"
    );
    let alice = store.recent_conversations("alice").await.unwrap();
    let row = alice.iter().find(|r| r.key == ab).unwrap();
    assert_eq!(
        (
            row.last_seq,
            row.last_at,
            row.last_text.as_deref(),
            row.unread()
        ),
        (5, 7, Some("m7"), 2)
    );
    let bob = store.recent_conversations("bob").await.unwrap();
    let quiet = bob.iter().find(|r| r.key == room).unwrap();
    assert_eq!(
        (quiet.last_seq, quiet.last_at, quiet.last_text.as_deref()),
        (0, 2, None),
        "a conversation without messages shows when it was made"
    );
}

/// A crash loses what was pending in memory (the conversations' last-message fields, read
/// positions moved by sending), never a message: the next open sets the fields from the
/// messages, so the list, unread counts and the next `seq` are right.
#[tokio::test]
async fn conversations_are_repaired_from_their_messages_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (ab, room) = {
        let store = open(StorageKind::Disk, dir.path()).await;
        let (ab, room) = alice_bob_and_a_quiet_room(&store).await;
        say(&store, &ab, "alice", "stored before", 3).await;
        // Stored, but its conversation's fields only pending: then the process dies.
        let batch: Vec<MessageRecord> = (2..=4)
            .map(|seq| {
                let (id, text) = (format!("a{seq}"), format!("m{seq}"));
                record(&ab, seq, "alice", &id, &text, 10 + seq as i64)
            })
            .collect();
        store.append_batch(&batch).await.unwrap();
        (ab, room)
    };
    let store = open(StorageKind::Disk, dir.path()).await;
    assert_eq!(store.last_seq(&ab).await.unwrap(), Some(4));
    let bob = store.recent_conversations("bob").await.unwrap();
    let row = bob.iter().find(|r| r.key == ab).unwrap();
    assert_eq!(
        (
            row.last_seq,
            row.last_at,
            row.last_text.as_deref(),
            row.unread()
        ),
        (4, 14, Some("m4"), 4)
    );
    assert_eq!(bob[0].key, ab, "latest activity first");
    let quiet = bob.iter().find(|r| r.key == room).unwrap();
    assert_eq!((quiet.last_seq, quiet.last_text.as_deref()), (0, None));
    // The next message continues the sequence; the old position is not free.
    assert!(matches!(
        append(&store, &ab, 4, "bob", "b4", "again", 20).await,
        Err(StoreError::OutOfSequence)
    ));
    assert_eq!(say(&store, &ab, "bob", "next", 21).await, 5);
    // A clean close leaves nothing to repair; what it stored is there on the next open.
    store.close().await.unwrap();
    drop(store);
    let store = open(StorageKind::Disk, dir.path()).await;
    let alice = store.conversation_row("alice", &ab).await.unwrap();
    assert_eq!(
        (alice.last_seq, alice.last_text.as_deref(), alice.unread()),
        (5, Some("next"), 1),
        "her own messages were read (repaired), bob's is not"
    );
}

/// A database written by schema 1 (messages in `message`, random ids, two unique indexes)
/// is moved to the new layout when it is opened: same history, same client ids.
#[tokio::test]
async fn a_schema_one_database_is_migrated_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(StorageKind::Disk, dir.path()).await.unwrap();
    // Schema 1, as it was applied, and 2,500 messages (more than one migration page).
    db.handle()
        .query(
            "DEFINE TABLE message SCHEMAFULL;
             DEFINE FIELD conversation ON message TYPE record<conversation>;
             DEFINE FIELD seq ON message TYPE int;
             DEFINE FIELD sender ON message TYPE record<user>;
             DEFINE FIELD body ON message TYPE string;
             DEFINE FIELD client_msg_id ON message TYPE string;
             DEFINE FIELD sent_at ON message TYPE int;
             DEFINE INDEX message_seq ON message FIELDS conversation, seq UNIQUE;
             DEFINE INDEX message_client_id ON message FIELDS sender, client_msg_id UNIQUE;
             FOR $i IN 1..=2500 {
                CREATE message SET conversation = conversation:`alice/bob`, seq = $i,
                    sender = user:alice, body = 'old ' + <string> $i,
                    client_msg_id = 'c' + <string> $i, sent_at = $i;
             };",
        )
        .await
        .unwrap()
        .check()
        .unwrap();
    let store = SurrealChatStore::new(&db, 1).await.expect("migrates");
    user(&store, "alice").await;
    user(&store, "bob").await;
    let conv = store.open_direct("alice", "bob", 1).await.unwrap();
    assert_eq!(conv, "alice/bob");
    // Created after its messages were moved, the conversation's head learns them as a
    // writer does when it meets a position already taken.
    assert_eq!(store.resync_head(&conv).await.unwrap(), 2500);
    let page = store.history(&conv, Some(2001), 50).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1951..=2000).collect::<Vec<_>>()
    );
    assert_eq!(
        (page[0].sender.as_str(), page[0].body.as_str()),
        ("alice", "old 1951")
    );
    let all = store.messages_after(&conv, 0, 5000).await.unwrap();
    assert_eq!(all.len(), 2500);
    let found = store.message(&conv, 2222).await.unwrap().unwrap();
    assert_eq!(
        (found.client_msg_id.as_str(), found.body.as_str()),
        ("c2222", "old 2222")
    );
    // The old table is gone: opening again has nothing to move.
    let again = SurrealChatStore::new(&db, 1).await.unwrap();
    assert_eq!(
        again.messages_after(&conv, 0, 5000).await.unwrap().len(),
        2500
    );
}

/// Schema 2 kept a `sent` record per message; a database that has them loses the table
/// when it is opened, and keeps its messages.
#[tokio::test]
async fn a_schema_two_database_loses_its_sent_records_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store, conv) = disk_store_with_alice_and_bob(dir.path()).await;
    say(&store, &conv, "alice", "kept", 2).await;
    db.handle()
        .query(
            "DEFINE TABLE sent SCHEMALESS;
             CREATE sent:['alice', 'c1'] SET conversation = 'alice/bob', seq = 1;",
        )
        .await
        .unwrap()
        .check()
        .unwrap();
    assert!(has_sent_table(&db).await);
    // As a database of that layout: no layout record.
    db.handle()
        .query("DELETE store_layout")
        .await
        .unwrap()
        .check()
        .unwrap();
    let again = SurrealChatStore::new(&db, 1).await.unwrap();
    assert!(!has_sent_table(&db).await);
    let kept = again.message(&conv, 1).await.unwrap().unwrap();
    assert_eq!(kept.body, "kept");
}

/// A disk database (its handle too, for statements behind the store's back), its store,
/// and Alice and Bob's direct conversation.
async fn disk_store_with_alice_and_bob(dir: &Path) -> (Database, SurrealChatStore, String) {
    let db = Database::open(StorageKind::Disk, dir).await.unwrap();
    let store = SurrealChatStore::new(&db, 1).await.unwrap();
    user(&store, "alice").await;
    user(&store, "bob").await;
    let conv = store.open_direct("alice", "bob", 1).await.unwrap();
    (db, store, conv)
}

async fn has_sent_table(db: &Database) -> bool {
    let mut res = db
        .handle()
        .query("RETURN (INFO FOR DB).tables.sent != NONE")
        .await
        .unwrap();
    res.take::<Option<bool>>(0).unwrap() == Some(true)
}

/// Layouts before 4 had no `client_msg` records: opening one records every message's
/// `client_msg_id`, so that a retry of a message sent before the upgrade is recognised.
#[tokio::test]
async fn an_older_database_learns_every_messages_client_msg_id_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store, conv) = disk_store_with_alice_and_bob(dir.path()).await;
    for i in 1..=2_100 {
        say(&store, &conv, "alice", &format!("m{i}"), i).await;
    }
    db.handle()
        .query("DELETE client_msg; DELETE store_layout;")
        .await
        .unwrap()
        .check()
        .unwrap();
    assert_eq!(store.sent_message("alice", "alice-5").await.unwrap(), None);
    let again = SurrealChatStore::new(&db, 1).await.unwrap();
    assert_eq!(
        again.sent_message("alice", "alice-5").await.unwrap(),
        Some((conv.clone(), 5))
    );
    assert_eq!(
        again.sent_message("alice", "alice-2100").await.unwrap(),
        Some((conv, 2_100))
    );
    assert_eq!(again.sent_message("bob", "alice-5").await.unwrap(), None);
}

/// The database is the truth for `(sender, client_msg_id)`: a second message with the
/// same pair is refused whatever its conversation, and where the first went is found.
#[tokio::test]
async fn a_senders_client_msg_id_is_taken_once_for_good() {
    let store = memory_store().await;
    let (ab, room) = alice_bob_and_a_quiet_room(&store).await;
    store
        .join_room(&room, "alice", 3)
        .await
        .expect("alice joins");
    append(&store, &ab, 1, "alice", "same", "first", 10)
        .await
        .unwrap();
    let again = append(&store, &ab, 2, "alice", "same", "second", 11).await;
    assert!(
        matches!(again, Err(StoreError::ClientMsgIdTaken)),
        "{again:?}"
    );
    let elsewhere = append(&store, &room, 1, "alice", "same", "third", 12).await;
    assert!(matches!(elsewhere, Err(StoreError::ClientMsgIdTaken)));
    // Nothing of the refused batches was stored, and the heads did not move.
    assert_eq!(store.last_seq(&ab).await.unwrap(), Some(1));
    assert_eq!(store.last_seq(&room).await.unwrap(), Some(0));
    assert_eq!(
        store.sent_message("alice", "same").await.unwrap(),
        Some((ab.clone(), 1))
    );
    append(&store, &ab, 2, "bob", "same", "bob's own", 13)
        .await
        .expect("ids are per sender");
}

/// A message stored behind the store's back (nothing does that but this test) makes the
/// next batch at that position fail as taken; the head then follows what is stored.
#[tokio::test]
async fn a_position_taken_behind_the_stores_back_is_refused_then_learned() {
    let db = Database::open(StorageKind::Memory, Path::new("unused"))
        .await
        .unwrap();
    let store = SurrealChatStore::new(&db, 1).await.unwrap();
    let (ab, _) = alice_bob_and_a_quiet_room(&store).await;
    say(&store, &ab, "alice", "one", 3).await;
    db.handle()
        .query(
            "CREATE msg:['alice/bob', 2] SET sender = 'bob', body = 'sneaky',
                client_msg_id = 'x', sent_at = 4",
        )
        .await
        .unwrap()
        .check()
        .unwrap();
    let clash = append(&store, &ab, 2, "alice", "a2", "two", 5).await;
    assert!(matches!(clash, Err(StoreError::SeqTaken)), "{clash:?}");
    assert_eq!(store.resync_head(&ab).await.unwrap(), 2);
    assert_eq!(say(&store, &ab, "alice", "three", 6).await, 3);
}

/// Two nodes' stores on one database: what one commits and the other never hears of (its
/// note lost) stays out of the other's history and unread counts until it catches up; then
/// its heads follow what is stored, and only the conversations behind are named.
#[tokio::test]
async fn a_node_that_missed_another_nodes_commits_catches_up_with_the_database() {
    let db = memory_db().await;
    let here = node(&db, "n1").await;
    let (ab, room) = alice_bob_and_a_quiet_room(&here).await;
    say(&here, &ab, "alice", "one", 3).await;
    assert_eq!(here.last_seq(&room).await.unwrap(), Some(0));
    let there = node(&db, "n2").await;
    say(&there, &ab, "bob", "two", 4).await;
    say(&there, &ab, "bob", "three", 5).await;
    let seen = |page: server::store::HistoryPage| {
        page.messages
            .iter()
            .map(|m| m.body.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seen(here.history_page(&ab, None, 10).await.unwrap()),
        ["one"]
    );
    assert_eq!(
        here.catch_up_heads().await.unwrap(),
        [(ab.clone(), 1, 3)],
        "the quiet room is not behind"
    );
    assert_eq!(
        seen(here.history_page(&ab, None, 10).await.unwrap()),
        ["one", "two", "three"]
    );
    assert_eq!(here.catch_up_heads().await.unwrap(), []);
    assert_eq!(say(&here, &ab, "alice", "four", 6).await, 4);
}

/// A batch that lost the race for a position to another node's is renumbered from the
/// heads read again: the conversation that moved follows the database, the others keep
/// theirs, and the batch then goes through.
#[tokio::test]
async fn a_batch_that_lost_a_race_follows_the_other_nodes_positions() {
    let db = memory_db().await;
    let here = node(&db, "n1").await;
    let (ab, room) = alice_bob_and_a_quiet_room(&here).await;
    say(&here, &ab, "alice", "one", 3).await;
    say(&here, &room, "bob", "hello", 3).await;
    let there = node(&db, "n2").await;
    assert_eq!(say(&there, &ab, "bob", "two", 4).await, 2);
    let lost = append(&here, &ab, 2, "alice", "alice-5", "late", 5).await;
    assert!(matches!(lost, Err(StoreError::SeqTaken)), "{lost:?}");
    here.resync_heads(&[&ab, &room]).await.unwrap();
    assert_eq!(here.known_last_seq(&ab), Some(2));
    assert_eq!(here.known_last_seq(&room), Some(1));
    assert_eq!(say(&here, &ab, "alice", "late", 5).await, 3);
}

/// Read positions written at the same moment (several tabs of one person, the deferred
/// writes of what sending moved) conflict in the engine; the store runs them again, so
/// none fails and the highest wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_of_one_read_position_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(StorageKind::Disk, dir.path()).await;
    let (ab, _) = alice_bob_and_a_quiet_room(&store).await;
    for i in 1..=40 {
        say(&store, &ab, "bob", &format!("m{i}"), i).await;
    }
    let marks = (1..=40).map(|seq| {
        let store = store.clone();
        let ab = ab.clone();
        tokio::spawn(async move { store.mark_read(&ab, "alice", seq).await })
    });
    for done in futures::future::join_all(marks).await {
        done.unwrap().expect("a concurrent mark_read succeeds");
    }
    let row = store.conversation_row("alice", &ab).await.unwrap();
    assert_eq!((row.last_read_seq, row.unread()), (40, 0));
}

/// A move to the new layout that was interrupted goes on from the last conversation it
/// recorded, rather than starting over (on a million messages a start-over costs minutes).
#[tokio::test]
async fn an_interrupted_layout_move_goes_on_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(StorageKind::Disk, dir.path()).await.unwrap();
    let store = SurrealChatStore::new(&db, 1).await.unwrap();
    let (ab, room) = alice_bob_and_a_quiet_room(&store).await;
    store.join_room(&room, "alice", 3).await.unwrap();
    for i in 1..=30 {
        say(&store, &ab, "alice", &format!("d{i}"), i).await;
        say(&store, &room, "alice", &format!("r{i}"), 100 + i).await;
    }
    // As if an older layout's move had finished the first conversation, then stopped.
    let (first, second) = if ab < room {
        (&ab, &room)
    } else {
        (&room, &ab)
    };
    db.handle()
        .query(
            "DELETE client_msg; DELETE store_layout;
             CREATE layout_progress:current SET conversation = $c;",
        )
        .bind(("c", first.clone()))
        .await
        .unwrap()
        .check()
        .unwrap();
    let again = SurrealChatStore::new(&db, 1).await.unwrap();
    let found = |conv: &String| {
        let again = again.clone();
        let conv = conv.clone();
        async move {
            let mut n = 0;
            for seq in 1..=30 {
                let m = again.message(&conv, seq).await.unwrap().unwrap();
                if again
                    .sent_message("alice", &m.client_msg_id)
                    .await
                    .unwrap()
                    .is_some()
                {
                    n += 1;
                }
            }
            n
        }
    };
    assert_eq!(found(first).await, 0, "the finished one is not read again");
    assert_eq!(found(second).await, 30);
}

async fn named(store: &SurrealChatStore, username: &str, display_name: &str) {
    store
        .create_user(
            &Username::parse(username).unwrap(),
            &DisplayName::parse(display_name).unwrap(),
            "hash",
            false,
            1,
        )
        .await
        .unwrap();
}

async fn found(store: &SurrealChatStore, q: &str) -> Vec<String> {
    let users = store.search_users(q, 20).await.unwrap();
    users.into_iter().map(|u| u.username).collect()
}

/// People are found by the start of any word of their username or display name, in any
/// case, and by any character of a Chinese name; closest first, at most the limit.
#[tokio::test]
async fn people_are_found_by_the_start_of_any_word_of_their_names() {
    let store = memory_store().await;
    named(&store, "ada_l", "Ada Lovelace").await;
    named(&store, "adam", "Adam Smith").await;
    named(&store, "grace", "Grace Hopper").await;
    named(&store, "zhangwei", "张伟").await;
    named(&store, "wangfang", "王芳 Fang").await;
    assert_eq!(found(&store, "ADA").await, ["ada_l", "adam"]);
    assert_eq!(found(&store, "ada ").await, ["ada_l", "adam"], "trimmed");
    assert_eq!(found(&store, "love").await, ["ada_l"]);
    assert_eq!(found(&store, "hopper").await, ["grace"]);
    assert_eq!(found(&store, "伟").await, ["zhangwei"]);
    assert_eq!(found(&store, "王芳").await, ["wangfang"]);
    assert_eq!(found(&store, "fang").await, ["wangfang"]);
    assert!(
        found(&store, "ace").await.is_empty(),
        "not the inside of a word"
    );
    assert!(found(&store, "nobody").await.is_empty());
    let named_alike = store.search_users("ada", 1).await.unwrap();
    assert_eq!(named_alike, [UserInfo::named("ada_l", "Ada Lovelace")]);
}

/// One person whose name matches a query many times over (every character of a long
/// Chinese name begins a word) takes one place in the answer, not all of them.
#[tokio::test]
async fn a_name_that_matches_many_times_takes_one_place() {
    let store = memory_store().await;
    named(&store, "a-many", &"张".repeat(64)).await;
    for i in 0..30 {
        named(&store, &format!("zhang{i:02}"), &format!("张{i}")).await;
    }
    let users = found(&store, "张").await;
    assert_eq!(users.len(), 20);
    assert_eq!(users.iter().filter(|u| *u == "a-many").count(), 1);
}

/// A database from before users had search terms learns them when opened.
#[tokio::test]
async fn an_older_database_learns_how_its_people_are_found_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store, _) = disk_store_with_alice_and_bob(dir.path()).await;
    db.handle()
        .query("DELETE user_term; UPDATE store_layout:current SET version = 5;")
        .await
        .unwrap()
        .check()
        .unwrap();
    assert!(found(&store, "alice").await.is_empty());
    let again = SurrealChatStore::new(&db, 1).await.unwrap();
    assert_eq!(found(&again, "ALI").await, ["alice"]);
    assert_eq!(found(&again, "bob").await, ["bob"]);
}

/// A database from before rooms had search terms learns them when opened.
#[tokio::test]
async fn an_older_database_learns_how_its_rooms_are_found_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store, _) = disk_store_with_alice_and_bob(dir.path()).await;
    let name = app::domain::RoomName::parse("Night shift 夜班").unwrap();
    let key = store.create_room("alice", &name, false, 1).await.unwrap();
    let rooms = |store: SurrealChatStore| async move {
        let found = store.search_rooms("夜班", 5).await.unwrap();
        found.into_iter().map(|r| r.key).collect::<Vec<_>>()
    };
    assert_eq!(rooms(store).await, std::slice::from_ref(&key));
    db.handle()
        .query("DELETE room_term; UPDATE store_layout:current SET version = 6;")
        .await
        .unwrap()
        .check()
        .unwrap();
    let again = SurrealChatStore::new(&db, 1).await.unwrap();
    assert_eq!(rooms(again.clone()).await, [key]);
    let general = again.search_rooms("general", 5).await.unwrap();
    assert_eq!(general[0].name, "General");
}

/// `(conversation, seq)` of the indexed messages that may contain `query`, newest first.
async fn candidates(store: &SurrealChatStore, convs: &[&str], query: &str) -> Vec<u64> {
    let convs: Vec<String> = convs.iter().map(|c| (*c).to_owned()).collect();
    let query = app::search::Query::parse(query).unwrap();
    store
        .search_candidates(&convs, &query, None, 100)
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|c| c.seq)
        .collect()
}

/// The search index follows the messages: what was stored before a restart without being
/// indexed is indexed after it, and a deleted message leaves the index.
#[tokio::test]
async fn the_search_index_catches_up_after_a_restart_and_forgets_deleted_messages() {
    use server::store::{
        rows::{ChangeKind, ChangeRecord, Entry},
        Batch,
    };
    let dir = tempfile::tempdir().unwrap();
    let conv = {
        let store = open(StorageKind::Disk, dir.path()).await;
        user(&store, "alice").await;
        user(&store, "bob").await;
        let conv = store.open_direct("alice", "bob", 1).await.unwrap();
        say(&store, &conv, "alice", "服务器重启了", 2).await;
        say(&store, &conv, "bob", "重启以后很快", 3).await;
        say(&store, &conv, "bob", "nothing to find", 4).await;
        // Closed before the index caught up (as a crash would leave it).
        assert_eq!(store.indexed_upto(&conv).await.unwrap(), 0);
        store.close().await.unwrap();
        conv
    };
    let store = open(StorageKind::Disk, dir.path()).await;
    assert!(candidates(&store, &[&conv], "重启").await.is_empty());
    store
        .index_pending(std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.indexed_upto(&conv).await.unwrap(), 3);
    assert_eq!(candidates(&store, &[&conv], "重启").await, [2, 1]);
    assert!(candidates(&store, &["elsewhere"], "重启").await.is_empty());

    // Bob deletes his message: the index forgets it at its next pass.
    let mut gone = store.message(&conv, 2).await.unwrap().unwrap();
    gone.body.clear();
    gone.deleted = true;
    store
        .commit(&Batch {
            entries: vec![Entry::Change(ChangeRecord {
                conversation: conv.clone(),
                seq: 4,
                n: 3,
                actor: "bob".into(),
                target: 2,
                kind: ChangeKind::Delete,
                at: 5,
            })],
            changed: vec![gone],
            ..Batch::default()
        })
        .await
        .unwrap();
    store
        .index_pending(std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.indexed_upto(&conv).await.unwrap(), 4);
    assert_eq!(candidates(&store, &[&conv], "重启").await, [1]);
}

/// A search keeps only the newest matches, however many messages match: a common word
/// gives the newest `enough`, a rare one reaches the oldest message; either way the answer
/// is newest first.
#[tokio::test]
async fn a_search_keeps_the_newest_matches_however_many_match() {
    let store = memory_store().await;
    user(&store, "alice").await;
    user(&store, "bob").await;
    let conv = store.open_direct("alice", "bob", 1).await.unwrap();
    let n: u64 = 5000;
    let text = |seq: u64| match seq {
        1 => "旧的备忘录 common".to_owned(),
        s if s == n => "新的备忘录 common".to_owned(),
        s => format!("message {s} common"),
    };
    for from in (1..=n).step_by(500) {
        let batch: Vec<MessageRecord> = (from..(from + 500).min(n + 1))
            .map(|s| record(&conv, s, "alice", &format!("c{s}"), &text(s), s as i64))
            .collect();
        store.append_batch(&batch).await.unwrap();
    }
    store
        .index_pending(std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let convs = vec![conv.clone()];
    let search = |q: &str, enough: usize| {
        let (store, convs) = (store.clone(), convs.clone());
        let q = app::search::Query::parse(q).unwrap();
        async move {
            let (hits, older) = store
                .search_candidates(&convs, &q, None, enough)
                .await
                .unwrap();
            (hits.into_iter().map(|c| c.seq).collect::<Vec<_>>(), older)
        }
    };
    let (common, older) = search("common", 10).await;
    assert_eq!(common, (n - 9..=n).rev().collect::<Vec<_>>());
    assert!(older);
    let (rare, older) = search("备忘录", 10).await;
    assert_eq!(rare, [n, 1], "the oldest message is reached, newest first");
    assert!(!older);
    // The sender's term narrows it: nothing from bob.
    let q = app::search::Query::parse("备忘录").unwrap();
    let (from_bob, _) = store
        .search_candidates(&convs, &q, Some("bob"), 10)
        .await
        .unwrap();
    assert!(from_bob.is_empty());
}

/// The index beside the database is rebuilt from the messages when it is lost, and
/// indexing positions again (a crash between the index's commit and the cursor's) leaves
/// one document per message.
#[tokio::test]
async fn a_lost_search_index_is_rebuilt_and_indexing_again_adds_no_copies() {
    let dir = tempfile::tempdir().unwrap();
    let index_all = |store: SurrealChatStore| async move {
        store
            .index_pending(std::time::Duration::from_secs(60))
            .await
            .unwrap();
    };
    let conv = {
        let (db, store, conv) = disk_store_with_alice_and_bob(dir.path()).await;
        say(&store, &conv, "alice", "备份恢复了", 2).await;
        say(&store, &conv, "bob", "恢复得很快", 3).await;
        index_all(store.clone()).await;
        assert_eq!(candidates(&store, &[&conv], "恢复").await, [2, 1]);
        // As if the cursor had not been written after the index's commit.
        db.handle()
            .query("UPDATE search_cursor SET upto = 0")
            .await
            .unwrap()
            .check()
            .unwrap();
        store.close().await.unwrap();
        drop(store);
        assert!(db.close(std::time::Duration::from_secs(10)).await);
        conv
    };
    {
        let store = open(StorageKind::Disk, dir.path()).await;
        assert_eq!(store.unindexed_count(), 1);
        index_all(store.clone()).await;
        assert_eq!(
            candidates(&store, &[&conv], "恢复").await,
            [2, 1],
            "no copies"
        );
        store.close().await.unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("search")).unwrap();
    let store = open(StorageKind::Disk, dir.path()).await;
    assert!(candidates(&store, &[&conv], "恢复").await.is_empty());
    assert_eq!(store.unindexed_count(), 1, "every conversation again");
    index_all(store.clone()).await;
    assert_eq!(candidates(&store, &[&conv], "恢复").await, [2, 1]);
}

#[tokio::test]
async fn a_session_is_seen_again_at_most_every_few_minutes_and_expired_ones_go() {
    let store = memory_store().await;
    user(&store, "alice").await;
    store
        .create_session(
            "s1",
            "alice",
            1_000,
            1_000_000,
            Some("Firefox/1"),
            Some("127.0.0.1"),
        )
        .await
        .unwrap();
    store
        .create_session("old", "alice", 10, 100, None, None)
        .await
        .unwrap();
    let seen = |store: SurrealChatStore| async move {
        store.sessions_of("alice", 1_000).await.unwrap()[0].seen_at
    };
    // Never seen: its sign-in counts.
    assert_eq!(seen(store.clone()).await, 1_000);
    store.touch_session("s1", 2_000).await.unwrap();
    assert_eq!(seen(store.clone()).await, 2_000);
    // A burst of reconnects within the precision writes nothing new.
    store.touch_session("s1", 2_100).await.unwrap();
    assert_eq!(seen(store.clone()).await, 2_000);
    store.touch_session("s1", 2_000 + 301).await.unwrap();
    assert_eq!(seen(store.clone()).await, 2_301);

    assert_eq!(store.forget_expired(1_000).await.unwrap(), 1);
    let left = store.sessions_of("alice", 0).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].agent.as_deref(), Some("Firefox/1"));
}
