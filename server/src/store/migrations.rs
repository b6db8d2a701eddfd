//! Opening a database: counting boots, moving older layouts forward (each step once,
//! safe to interrupt), and repairing what a crash left behind.
//!
//! Layouts (`store_layout:current.version`):
//! 1. messages in a `message` table with random ids and two unique indexes;
//! 2. messages in `msg:[conversation, seq]`, plus a `sent` record per message;
//! 3. `msg` only, retries recognised from memory;
//! 4. `msg` and `client_msg:[sender, client_msg_id]`: retries recognised from the database;
//! 5. rooms carry their `member_count` (and `created_by`, unknown for older rooms);
//! 6. users are found by their `user_term` records;
//! 7. rooms are found by their `room_term` records;
//! 8. messages are found through the search index beside the database, no longer through
//!    `search_doc` records;
//! 9. the oldest account is the server's administrator (`first_account:claim`).
//!
//! A database without the record is 1, 2 or 3 (told apart by its tables) or new.

use std::{collections::HashMap, ops::Bound, time::Instant};
use surrealdb::types::{RecordId, RecordIdKey, RecordIdKeyRange, SurrealValue};
use tracing::{info, warn};

use super::{
    heads::{HeadFields, LastMessage, Mark},
    rows::{
        key_of, member_id, to_u64, ClientMsgRow, ConversationSeqRow, Entry, MessageRecord,
        MessageRow, NameRow, OldMessageRow, ReadRow, RoomTermRow, UserTermRow,
    },
    transaction, StoreError, SurrealChatStore,
};

/// A row read a page at a time, by its record id.
trait Paged: surrealdb::types::SurrealValue {
    fn id(&self) -> &RecordId;
}

impl Paged for OldMessageRow {
    fn id(&self) -> &RecordId {
        &self.id
    }
}

impl Paged for NameRow {
    fn id(&self) -> &RecordId {
        &self.id
    }
}

impl Paged for MessageRow {
    fn id(&self) -> &RecordId {
        &self.id
    }
}

/// A room's name, as stored.
#[derive(Debug, SurrealValue)]
struct RoomNameRow {
    id: RecordId,
    name: Option<String>,
}

/// The layout this code writes.
const LAYOUT: i64 = 9;
/// Records moved per transaction while a layout is moved forward.
const MIGRATION_PAGE: i64 = 2_000;

impl SurrealChatStore {
    /// Counts this open in `server_meta:boots`; returns the count.
    pub(super) async fn record_boot(&self) -> Result<u64, StoreError> {
        let mut res = self
            .db
            .query(
                "UPSERT ONLY server_meta:boots SET count = (count OR 0) + 1, at = time::now()
                    RETURN VALUE count",
            )
            .await?
            .check()?;
        let count: Option<i64> = res.take(0)?;
        Ok(to_u64(count.unwrap_or_default()))
    }

    /// Moves the data to [`LAYOUT`], one step at a time.
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        let mut res = self
            .db
            .query("SELECT VALUE version FROM ONLY store_layout:current")
            .await?
            .check()?;
        let version: Option<i64> = res.take(0)?;
        if version.unwrap_or(0) >= LAYOUT {
            return Ok(());
        }
        self.move_old_messages().await?;
        self.drop_sent_table().await?;
        self.index_client_msg_ids().await?;
        self.count_room_members().await?;
        self.index_user_terms().await?;
        self.index_room_terms().await?;
        self.drop_search_docs().await?;
        self.claim_first_admin().await?;
        self.db
            .query("UPSERT store_layout:current SET version = $v RETURN NONE")
            .bind(("v", LAYOUT))
            .await?
            .check()?;
        Ok(())
    }

    /// Makes the oldest account the server's administrator, as the first account of a new
    /// server is (layout 9). Idempotent: nothing happens once the claim exists.
    async fn claim_first_admin(&self) -> Result<(), StoreError> {
        self.db
            .query(
                "IF !record::exists(first_account:claim) {
                    LET $first = (SELECT VALUE id FROM user ORDER BY created_at LIMIT 1)[0];
                    IF $first != NONE {
                        UPDATE $first SET admin = true RETURN NONE;
                        CREATE first_account:claim SET user = record::id($first) RETURN NONE;
                    };
                 }",
            )
            .await?
            .check()?;
        Ok(())
    }

    /// Gives every room that has none its `member_count` (layout 5). Idempotent.
    async fn count_room_members(&self) -> Result<(), StoreError> {
        self.db
            .query(
                "UPDATE conversation
                    SET member_count = count(SELECT VALUE id FROM member WHERE conversation = $parent.id)
                    WHERE kind = 'room' AND member_count = NONE RETURN NONE",
            )
            .await?
            .check()?;
        Ok(())
    }

    /// Writes the search terms of every user (layout 6), a page of users per transaction.
    /// Idempotent.
    async fn index_user_terms(&self) -> Result<(), StoreError> {
        let mut after = Bound::Unbounded;
        loop {
            let users: Vec<NameRow> = self.next_page("user", &mut after).await?;
            if users.is_empty() {
                return Ok(());
            }
            let terms: Vec<UserTermRow> = users
                .iter()
                .flat_map(|u| UserTermRow::of(&key_of(&u.id), &u.display_name))
                .collect();
            self.db
                .query("INSERT IGNORE INTO user_term $terms RETURN NONE")
                .bind(("terms", terms))
                .await?
                .check()?;
        }
    }

    /// Writes the search terms of every room (layout 7), a page of terms per transaction.
    /// Idempotent.
    async fn index_room_terms(&self) -> Result<(), StoreError> {
        let mut res = self
            .db
            .query("SELECT id, name FROM conversation WHERE kind = 'room'")
            .await?
            .check()?;
        let rooms: Vec<RoomNameRow> = res.take(0)?;
        let terms: Vec<RoomTermRow> = rooms
            .iter()
            .flat_map(|r| RoomTermRow::of(&key_of(&r.id), r.name.as_deref().unwrap_or_default()))
            .collect();
        let mut terms = terms.into_iter().peekable();
        while terms.peek().is_some() {
            let page: Vec<RoomTermRow> = terms.by_ref().take(MIGRATION_PAGE as usize).collect();
            self.db
                .query("INSERT IGNORE INTO room_term $terms RETURN NONE")
                .bind(("terms", page))
                .await?
                .check()?;
        }
        Ok(())
    }

    /// Drops the search records of layouts 6 and 7 and their cursors (layout 8): the index
    /// beside the database is filled from the messages. Idempotent.
    async fn drop_search_docs(&self) -> Result<(), StoreError> {
        self.db
            .query(
                "REMOVE TABLE IF EXISTS search_doc;
                 REMOVE TABLE IF EXISTS search_order;
                 REMOVE ANALYZER IF EXISTS search_terms;
                 DELETE search_cursor RETURN NONE;",
            )
            .await?
            .check()?;
        Ok(())
    }

    /// The next page of `table` in id order after `after` (moved past it): layouts are moved
    /// forward a page per transaction.
    async fn next_page<T: Paged>(
        &self,
        table: &str,
        after: &mut Bound<RecordIdKey>,
    ) -> Result<Vec<T>, StoreError> {
        let range = RecordId::new(
            table,
            RecordIdKeyRange {
                start: after.clone(),
                end: Bound::Unbounded,
            },
        );
        let mut res = self
            .db
            .query("SELECT * FROM $range LIMIT $page")
            .bind(("range", range))
            .bind(("page", MIGRATION_PAGE))
            .await?
            .check()?;
        let rows: Vec<T> = res.take(0)?;
        if let Some(last) = rows.last() {
            *after = Bound::Excluded(last.id().key.clone());
        }
        Ok(rows)
    }

    /// Whether the database defines table `name`.
    async fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        let mut res = self
            .db
            .query("RETURN (INFO FOR DB).tables[$name] != NONE")
            .bind(("name", name.to_owned()))
            .await?
            .check()?;
        Ok(res.take::<Option<bool>>(0)? == Some(true))
    }

    /// Layout 2 kept a `sent:[sender, client_msg_id]` record per message in a shape nothing
    /// reads any more: a database that has the table loses it once.
    async fn drop_sent_table(&self) -> Result<(), StoreError> {
        if self.has_table("sent").await? {
            let started = Instant::now();
            self.db.query("REMOVE TABLE sent").await?.check()?;
            info!(
                ms = started.elapsed().as_millis() as u64,
                "removed the `sent` table of layout 2"
            );
        }
        Ok(())
    }

    /// Moves the messages of a layout-1 database (table `message`) to `msg`, a page per
    /// transaction in id order, then removes the old table. A page already copied is
    /// skipped (`INSERT IGNORE`) when it runs again.
    async fn move_old_messages(&self) -> Result<(), StoreError> {
        if !self.has_table("message").await? {
            return Ok(());
        }
        let started = Instant::now();
        let mut after: Bound<RecordIdKey> = Bound::Unbounded;
        let mut moved = 0_usize;
        loop {
            let old: Vec<OldMessageRow> = self.next_page("message", &mut after).await?;
            if old.is_empty() {
                break;
            }
            let page = old.len();
            let rows: Vec<MessageRow> = old
                .into_iter()
                .map(|m| {
                    MessageRow::of(&MessageRecord {
                        conversation: key_of(&m.conversation),
                        seq: to_u64(m.seq),
                        n: to_u64(m.seq),
                        sender: key_of(&m.sender),
                        body: m.body,
                        client_msg_id: m.client_msg_id,
                        sent_at: m.sent_at,
                        ..MessageRecord::default()
                    })
                })
                .collect();
            self.db
                .query("INSERT IGNORE INTO msg $rows RETURN NONE")
                .bind(("rows", rows))
                .await?
                .check()?;
            moved += page;
            if moved % 100_000 < page {
                info!(moved, "moving messages to the new layout");
            }
        }
        self.db.query("REMOVE TABLE message").await?.check()?;
        info!(
            moved,
            ms = started.elapsed().as_millis() as u64,
            "messages moved to the new layout"
        );
        Ok(())
    }

    /// Writes a `client_msg` record for every stored message (layouts before 4 had none),
    /// conversation by conversation in key order, each one's messages read as ranges of
    /// record ids (an unbounded range with a `LIMIT` reads the whole rest of the table in
    /// SurrealDB 3.3.5). About [`MIGRATION_PAGE`] records per transaction, with the last
    /// conversation done, so that an interrupted move goes on where it stopped; where a
    /// sender used an id twice, the first message keeps it.
    async fn index_client_msg_ids(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut res = self
            .db
            .query(
                "SELECT VALUE conversation FROM ONLY layout_progress:current;
                 SELECT id, last_seq FROM conversation ORDER BY id;",
            )
            .await?
            .check()?;
        let done_upto: Option<String> = res.take(0)?;
        let convs: Vec<ConversationSeqRow> = res.take(1)?;
        let page = usize::try_from(MIGRATION_PAGE).unwrap_or(2_000);
        let mut ids: Vec<ClientMsgRow> = Vec::with_capacity(page);
        let mut indexed = 0_usize;
        for c in &convs {
            let key = key_of(&c.id);
            if done_upto
                .as_deref()
                .is_some_and(|done| key.as_str() <= done)
            {
                continue;
            }
            // Messages may run past `last_seq` (it follows within a second; a crash
            // repair comes later): read until a page comes back short.
            let mut from = 1_u64;
            loop {
                let to = from + page as u64;
                let messages = self.messages_in(&key, from, to).await?;
                let short = messages.len() < page;
                ids.extend(messages.iter().map(ClientMsgRow::of));
                from = to;
                if short && from > to_u64(c.last_seq) {
                    break;
                }
            }
            if ids.len() >= page {
                indexed += ids.len();
                self.record_client_msg_ids(std::mem::take(&mut ids), &key)
                    .await?;
                if indexed % 100_000 < page {
                    info!(indexed, "recording messages' client_msg_ids");
                }
            }
        }
        if let Some(last) = convs.last() {
            indexed += ids.len();
            self.record_client_msg_ids(ids, &key_of(&last.id)).await?;
        }
        self.db.query("DELETE layout_progress").await?.check()?;
        if indexed > 0 {
            info!(
                indexed,
                ms = started.elapsed().as_millis() as u64,
                "every message's client_msg_id is recorded"
            );
        }
        Ok(())
    }

    /// Writes `ids` and records that every conversation up to `done_upto` is done.
    async fn record_client_msg_ids(
        &self,
        ids: Vec<ClientMsgRow>,
        done_upto: &str,
    ) -> Result<(), StoreError> {
        let res = self
            .db
            .query(
                "BEGIN;
                 INSERT IGNORE INTO client_msg $ids RETURN NONE;
                 UPSERT layout_progress:current SET conversation = $c RETURN NONE;
                 COMMIT;",
            )
            .bind(("ids", ids))
            .bind(("c", done_upto.to_owned()))
            .await?;
        Ok(transaction(res)?)
    }

    /// Marks the database open (not closed cleanly), first repairing it if the last store
    /// did not close cleanly. A database without the mark was never opened by a store that
    /// defers fields: nothing to repair.
    pub(super) async fn open_state(&self) -> Result<(), StoreError> {
        let mut res = self
            .db
            .query("SELECT VALUE clean FROM ONLY store_state:shutdown")
            .await?
            .check()?;
        // In a cluster the flag is every node's: another node may have died since it was set.
        if self.shared || res.take::<Option<bool>>(0)? == Some(false) {
            self.repair_last_messages().await?;
        }
        self.set_clean(false).await
    }

    pub(super) async fn set_clean(&self, clean: bool) -> Result<(), StoreError> {
        self.db
            .query("UPSERT store_state:shutdown SET clean = $clean RETURN NONE")
            .bind(("clean", clean))
            .await?
            .check()?;
        Ok(())
    }

    /// After a crash, a conversation's `last_*` fields and its senders' read positions may
    /// miss its last second of messages and changes (they were only in memory): sets them
    /// from the entries past `last_seq`. One range read per conversation and table, almost
    /// always empty.
    pub async fn repair_last_messages(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut res = self
            .db
            .query("SELECT id, last_seq, last_n FROM conversation")
            .await?
            .check()?;
        let convs: Vec<ConversationSeqRow> = res.take(0)?;
        let (mut last, mut reads) = (Vec::new(), Vec::new());
        for c in &convs {
            let key = key_of(&c.id);
            let after = self
                .entries_in(&key, to_u64(c.last_seq) + 1, i64::MAX as u64)
                .await?;
            let Some(end) = after.last() else {
                continue;
            };
            let mut message = None;
            // Sending marked them read for their senders.
            let mut senders: HashMap<&str, Mark> = HashMap::new();
            for e in &after {
                if let Entry::Message(m) = e {
                    senders.insert(&m.sender, Mark::new(m.seq, m.n));
                    message = Some(LastMessage::of(m));
                }
            }
            if message.is_none() {
                // Only changes past it: the last message is older, and may be one of
                // those they changed.
                message = self.last_message(&key, to_u64(c.last_seq)).await?;
            }
            last.push((
                key.clone(),
                HeadFields {
                    at: Mark::new(end.seq(), end.n()),
                    last: message,
                },
            ));
            reads.extend(senders.into_iter().map(|(user, mark)| ReadRow {
                id: member_id(&key, user),
                seq: mark.seq as i64,
                n: mark.n as i64,
            }));
        }
        let count = last.len();
        if count > 0 {
            self.store_changes(reads, &last).await?;
        }
        let ms = started.elapsed().as_millis() as u64;
        let what = "a store may have stopped before storing its deferred fields (a crash, or \
                    in a cluster a node gone): conversations' last messages checked";
        // In a cluster every start and every node gone checks; news only if it repaired.
        if self.shared && count == 0 {
            tracing::info!(conversations = convs.len(), repaired = count, ms, "{what}");
        } else {
            warn!(conversations = convs.len(), repaired = count, ms, "{what}");
        }
        Ok(())
    }
}
