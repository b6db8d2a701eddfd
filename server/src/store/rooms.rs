//! What rooms keep beyond their members: name, topic and privacy, roles, bans and invite
//! links. Who may change them is decided by the chat service (see [`app::roles`]); this
//! module only reads and writes, each change in one transaction, and drops what the caches
//! hold of the room so that delivery follows at once.

use app::{
    domain::{RoomName, RoomTopic},
    protocol::RoomInvite,
    roles::{Role, Standing},
};
use surrealdb::types::{RecordId, SurrealValue};

use super::{
    committed, retry_conflicts,
    rows::{conversation_id, key_of, member_id, role_of, user_id, RoomTermRow},
    transaction, Kind, StoreError, SurrealChatStore,
};

/// A room (or a direct conversation) and where one user stands in it.
#[derive(Debug, Clone)]
pub struct RoomStanding {
    pub kind: Kind,
    pub name: String,
    pub topic: String,
    pub private: bool,
    pub created_by: Option<String>,
    pub standing: Standing,
}

#[derive(Debug, SurrealValue)]
struct StandingRow {
    kind: String,
    name: Option<String>,
    topic: Option<String>,
    private: Option<bool>,
    created_by: Option<String>,
    member: bool,
    role: Option<String>,
    banned: bool,
}

#[derive(Debug, SurrealValue)]
struct InviteRow {
    id: RecordId,
    room: String,
    created_by: String,
    created_at: i64,
    expires_at: i64,
}

impl InviteRow {
    fn wire(self) -> RoomInvite {
        RoomInvite {
            token: key_of(&self.id),
            created_by: self.created_by,
            created_at_ms: self.created_at,
            expires_at_ms: self.expires_at,
        }
    }
}

fn ban_id(key: &str, username: &str) -> RecordId {
    // The same shape as member ids: one record per room and person.
    RecordId::new("room_ban", format!("{key}|{username}"))
}

fn invite_id(token: &str) -> RecordId {
    RecordId::new("room_invite", token)
}

impl SurrealChatStore {
    /// The conversation `key` and where `username` stands in it, in one read;
    /// `NoSuchConversation` when there is none.
    pub async fn standing(&self, key: &str, username: &str) -> Result<RoomStanding, StoreError> {
        let mut res = self
            .db
            .query(
                "SELECT kind, name, topic, private, created_by,
                    record::exists($member) AS member,
                    (SELECT VALUE role FROM ONLY $member) AS role,
                    record::exists($ban) AS banned
                 FROM ONLY $conv",
            )
            .bind(("conv", conversation_id(key)))
            .bind(("member", member_id(key, username)))
            .bind(("ban", ban_id(key, username)))
            .await?
            .check()?;
        let row: Option<StandingRow> = res.take(0)?;
        let row = row.ok_or(StoreError::NoSuchConversation)?;
        let standing = if row.member {
            Standing::In(role_of(
                row.role.as_deref(),
                username,
                row.created_by.as_deref(),
            ))
        } else if row.banned {
            Standing::Banned
        } else {
            Standing::Outsider
        };
        Ok(RoomStanding {
            kind: if row.kind == "direct" {
                Kind::Direct
            } else {
                Kind::Room
            },
            name: row.name.unwrap_or_default(),
            topic: row.topic.unwrap_or_default(),
            private: row.private.unwrap_or(false),
            created_by: row.created_by,
            standing,
        })
    }

    /// Changes whichever of name, topic (empty: none) and privacy are given; `old_name` is
    /// the name the room is found by now.
    pub async fn update_room(
        &self,
        key: &str,
        old_name: &str,
        name: Option<&RoomName>,
        topic: Option<&RoomTopic>,
        private: Option<bool>,
    ) -> Result<(), StoreError> {
        let mut sets = Vec::new();
        if name.is_some() {
            sets.push("name = $name");
        }
        if topic.is_some() {
            sets.push("topic = $topic");
        }
        if private.is_some() {
            sets.push("private = $private");
        }
        if sets.is_empty() {
            return Ok(());
        }
        let renamed = name.filter(|n| n.as_str() != old_name);
        let (old_terms, new_terms) = match renamed {
            Some(n) => (
                RoomTermRow::of(key, old_name)
                    .into_iter()
                    .map(|t| t.id)
                    .collect::<Vec<_>>(),
                RoomTermRow::of(key, n.as_str()),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let query = format!(
            "BEGIN;
             UPDATE $conv SET {} RETURN NONE;
             DELETE $old_terms RETURN NONE;
             INSERT IGNORE INTO room_term $new_terms RETURN NONE;
             COMMIT;",
            sets.join(", ")
        );
        let res = retry_conflicts(|| async {
            self.db
                .query(query.as_str())
                .bind(("conv", conversation_id(key)))
                .bind(("name", name.map(|n| n.as_str().to_owned())))
                .bind((
                    "topic",
                    topic
                        .map(RoomTopic::as_str)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                ))
                .bind(("private", private))
                .bind(("old_terms", old_terms.clone()))
                .bind(("new_terms", new_terms.clone()))
                .await
                .and_then(transaction)?;
            Ok(())
        })
        .await;
        self.room_changed(key).await;
        res
    }

    /// What the lists show of `key` changed: every member's list is read again, here and
    /// on the other nodes.
    async fn room_changed(&self, key: &str) {
        self.forget_room(key).await;
        self.tell(|| super::Note::Room {
            conversation: key.to_owned(),
        });
    }

    /// Drops what the lists keep of `key`, and its members' lists.
    pub(super) async fn forget_room(&self, key: &str) {
        self.recent.forget_conversation(key);
        if let Ok(members) = self.members(key).await {
            for m in members.iter() {
                self.recent.forget_user(m);
            }
        }
    }

    /// Makes `username` a member of the room `key` unless they are banned from it
    /// (`StoreError::Banned`); a member already stays as they are. Returns whether they
    /// were added.
    pub async fn admit(&self, key: &str, username: &str, now_ms: i64) -> Result<bool, StoreError> {
        let one_at_a_time = self.membership_lock(key).await;
        let added = retry_conflicts(|| async {
            let res = self
                .db
                .query(
                    "BEGIN;
                     LET $banned = record::exists($ban);
                     LET $add = !$banned AND !record::exists($m);
                     IF $add {
                        CREATE $m SET conversation = $conv, user = $user, last_read_seq = 0,
                            joined_at = $now;
                        UPDATE $conv SET member_count += 1;
                     };
                     RETURN { banned: $banned, added: $add };
                     COMMIT;",
                )
                .bind(("m", member_id(key, username)))
                .bind(("ban", ban_id(key, username)))
                .bind(("conv", conversation_id(key)))
                .bind(("user", user_id(username)))
                .bind(("now", now_ms))
                .await?;
            let mut res = committed(res)?;
            let outcome: Option<AdmitRow> = res.take(returned(&res))?;
            Ok(outcome)
        })
        .await?;
        drop(one_at_a_time);
        let outcome = added.ok_or(StoreError::NoSuchConversation)?;
        if outcome.banned {
            return Err(StoreError::Banned);
        }
        if outcome.added {
            self.membership_changed(key, &[username]);
        }
        Ok(outcome.added)
    }

    /// Removes `username` from the room `key` (if a member), and bans them when `ban` names
    /// who bans them. Returns whether they were a member.
    pub async fn remove_member(
        &self,
        key: &str,
        username: &str,
        ban: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let one_at_a_time = self.membership_lock(key).await;
        let removed = retry_conflicts(|| async {
            let res = self
                .db
                .query(
                    "BEGIN;
                     LET $was = record::exists($m);
                     IF $was {
                        DELETE $m;
                        UPDATE $conv SET member_count -= 1;
                     };
                     IF $by != NONE {
                        UPSERT $ban SET room = $room, user = $username, by = $by, at = $now
                            RETURN NONE;
                     };
                     RETURN $was;
                     COMMIT;",
                )
                .bind(("m", member_id(key, username)))
                .bind(("ban", ban_id(key, username)))
                .bind(("conv", conversation_id(key)))
                .bind(("room", key.to_owned()))
                .bind(("username", username.to_owned()))
                .bind(("by", ban.map(str::to_owned)))
                .bind(("now", now_ms))
                .await?;
            let mut res = committed(res)?;
            let was: Option<bool> = res.take(returned(&res))?;
            Ok(was.unwrap_or(false))
        })
        .await?;
        drop(one_at_a_time);
        self.membership_changed(key, &[username]);
        Ok(removed)
    }

    /// Lifts `username`'s ban from `key`; whether there was one.
    pub async fn unban(&self, key: &str, username: &str) -> Result<bool, StoreError> {
        let mut res = self
            .db
            .query("DELETE $ban RETURN BEFORE")
            .bind(("ban", ban_id(key, username)))
            .await?
            .check()?;
        let gone: Vec<surrealdb::types::Value> = res.take(0)?;
        Ok(!gone.is_empty())
    }

    /// Who is banned from `key`, by username, with their display names.
    pub async fn bans(&self, key: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut res = self
            .db
            .query("SELECT VALUE user FROM room_ban WHERE room = $room ORDER BY user")
            .bind(("room", key.to_owned()))
            .await?
            .check()?;
        let users: Vec<String> = res.take(0)?;
        let mut named = self.display_names(&users).await?;
        named.sort();
        Ok(named)
    }

    /// Sets a member's role (`Member` or `Admin`; the owner is whoever created the room).
    pub async fn set_role(&self, key: &str, username: &str, role: Role) -> Result<(), StoreError> {
        retry_conflicts(|| async {
            self.db
                .query("UPDATE $m SET role = $role RETURN NONE")
                .bind(("m", member_id(key, username)))
                .bind(("role", (role == Role::Admin).then_some("admin")))
                .await?
                .check()?;
            Ok(())
        })
        .await?;
        self.recent.forget_user(username);
        self.tell(|| super::Note::Lists {
            users: vec![username.to_owned()],
        });
        Ok(())
    }

    /// Records an invite link to `key` that works until `expires_at_ms`.
    pub async fn create_invite(
        &self,
        key: &str,
        token: &str,
        by: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.db
            .query(
                "CREATE $inv SET room = $room, created_by = $by, created_at = $now,
                    expires_at = $expires RETURN NONE",
            )
            .bind(("inv", invite_id(token)))
            .bind(("room", key.to_owned()))
            .bind(("by", by.to_owned()))
            .bind(("now", now_ms))
            .bind(("expires", expires_at_ms))
            .await?
            .check()?;
        Ok(())
    }

    /// The invite links to `key` that still work at `now_ms`, newest first.
    pub async fn invites(&self, key: &str, now_ms: i64) -> Result<Vec<RoomInvite>, StoreError> {
        let mut res = self
            .db
            .query(
                "SELECT * FROM room_invite WHERE room = $room AND expires_at > $now
                 ORDER BY created_at DESC",
            )
            .bind(("room", key.to_owned()))
            .bind(("now", now_ms))
            .await?
            .check()?;
        let rows: Vec<InviteRow> = res.take(0)?;
        Ok(rows.into_iter().map(InviteRow::wire).collect())
    }

    /// Revokes the invite link `token` to `key`; whether there was one.
    pub async fn revoke_invite(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        let mut res = self
            .db
            .query("DELETE $inv WHERE room = $room RETURN BEFORE")
            .bind(("inv", invite_id(token)))
            .bind(("room", key.to_owned()))
            .await?
            .check()?;
        let gone: Vec<surrealdb::types::Value> = res.take(0)?;
        Ok(!gone.is_empty())
    }

    /// The room an invite link leads to, if it still works at `now_ms`.
    pub async fn invite_room(
        &self,
        token: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut res = self
            .db
            .query("SELECT * FROM ONLY $inv")
            .bind(("inv", invite_id(token)))
            .await?
            .check()?;
        let row: Option<InviteRow> = res.take(0)?;
        Ok(row.filter(|r| r.expires_at > now_ms).map(|r| r.room))
    }
}

/// Where the `RETURN` of a `BEGIN; …; RETURN …; COMMIT;` query is among its results: the
/// last but one (`COMMIT` has a result of its own).
fn returned(res: &surrealdb::IndexedResults) -> usize {
    res.num_statements().saturating_sub(2)
}

#[derive(Debug, SurrealValue)]
struct AdmitRow {
    banned: bool,
    added: bool,
}
