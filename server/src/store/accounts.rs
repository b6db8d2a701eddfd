//! Users and their sessions.

use app::{
    domain::{DisplayName, Username},
    protocol::UserInfo,
};
use surrealdb::types::{RecordId, SurrealValue};

use super::{
    retry_conflicts,
    rows::{
        key_of, session_id, user_id, IdRow, NameRow, ProfileRow, SessionRecord, SessionRow,
        TermMatch, UserRecord, UserRow, UserTermRow,
    },
    taken_table, transaction, user_terms, StoreError, SurrealChatStore,
};

/// How precisely a session's `seen_at` is kept, in seconds.
pub const SEEN_EVERY: i64 = 300;

impl SurrealChatStore {
    /// How `username` shows changed: the lists here and on the other nodes drop it.
    fn person_changed(&self, username: &str) {
        self.recent.profile_changed(username);
        self.tell(|| super::Note::Person {
            user: username.to_owned(),
        });
    }

    /// Creates an account, and the terms it is found by, in one transaction; fails with
    /// [`StoreError::UsernameTaken`] if the name is in use. The first account ever created
    /// is a server administrator (`admin` makes any other one); returns whether it is one.
    pub async fn create_user(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password_hash: &str,
        admin: bool,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let name = username.as_str();
        let res = retry_conflicts(|| async {
            // Two first sign-ups at once both write the claim: one of them is refused as a
            // conflict (or finds the claim taken) and is run again, now not the first.
            let res = self
                .db
                .query(
                    "BEGIN;
                     LET $first = !record::exists(first_account:claim);
                     IF $first { CREATE first_account:claim SET user = $name RETURN NONE; };
                     CREATE $id SET display_name = $display_name, password_hash = $hash,
                        created_at = $now, admin = $first OR $admin RETURN NONE;
                     INSERT IGNORE INTO user_term $terms RETURN NONE;
                     COMMIT;",
                )
                .bind(("id", user_id(name)))
                .bind(("name", name.to_owned()))
                .bind(("display_name", display_name.as_str().to_owned()))
                .bind(("hash", password_hash.to_owned()))
                .bind(("admin", admin))
                .bind(("now", now_ms))
                .bind(("terms", UserTermRow::of(name, display_name.as_str())))
                .await?;
            Ok(transaction(res)?)
        })
        .await;
        match res {
            Err(StoreError::Db(e)) if taken_table(&e) == Some("user") => {
                Err(StoreError::UsernameTaken)
            }
            Err(StoreError::Db(e)) if taken_table(&e) == Some("first_account") => {
                Box::pin(self.create_user(username, display_name, password_hash, admin, now_ms))
                    .await
            }
            Err(e) => Err(e),
            Ok(()) => Ok(self.user(name).await?.is_some_and(|u| u.admin)),
        }
    }

    pub async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let mut res = self
            .db
            .query(
                "SELECT id, display_name, password_hash, admin, disabled, avatar, status
                 FROM ONLY $id",
            )
            .bind(("id", user_id(username)))
            .await?
            .check()?;
        let row: Option<UserRow> = res.take(0)?;
        Ok(row.and_then(|r| {
            Some(UserRecord {
                username: Username::parse(&key_of(&r.id)).ok()?,
                display_name: r.display_name,
                password_hash: r.password_hash,
                admin: r.admin.unwrap_or(false),
                disabled: r.disabled.unwrap_or(false),
                avatar: r.avatar,
                status: r.status,
            })
        }))
    }

    /// Up to `limit` users with a word of their username or display name beginning with
    /// `query` (see [`user_terms`]), closest first (by the rest of the matching name). The
    /// terms are read from the index a page at a time, so a search costs its page, however
    /// many users there are.
    pub async fn search_users(&self, query: &str, limit: u32) -> Result<Vec<UserInfo>, StoreError> {
        let found = self
            .find_by_terms::<UserTermRow>(query, limit as usize)
            .await?;
        let mut people = self.profiles(&found).await?;
        people.sort_by_key(|u| found.iter().position(|f| *f == u.username));
        Ok(people)
    }

    /// These users as they show (unknown ones left out).
    pub async fn profiles(&self, usernames: &[String]) -> Result<Vec<UserInfo>, StoreError> {
        let ids: Vec<RecordId> = usernames.iter().map(|u| user_id(u)).collect();
        let mut res = self
            .db
            .query("SELECT id, display_name, avatar, status FROM $ids")
            .bind(("ids", ids))
            .await?
            .check()?;
        let rows: Vec<ProfileRow> = res.take(0)?;
        Ok(rows.into_iter().map(ProfileRow::info).collect())
    }

    /// Sets (or with `None` clears) `username`'s status text.
    pub async fn set_status(&self, username: &str, status: Option<&str>) -> Result<(), StoreError> {
        self.update_user(username, "status = $value", status.map(str::to_owned))
            .await?;
        self.person_changed(username);
        Ok(())
    }

    /// Sets `username`'s picture: `image` (of `content_type`) as version `version`; `None`
    /// removes it. One transaction: the version shown is always the picture served.
    pub async fn set_avatar(
        &self,
        username: &str,
        picture: Option<(&str, Vec<u8>, &str)>,
    ) -> Result<(), StoreError> {
        let (version, image, content_type) = match picture {
            Some((v, image, ct)) => (Some(v.to_owned()), Some(image), Some(ct.to_owned())),
            None => (None, None, None),
        };
        retry_conflicts(|| async {
            let res = self
                .db
                .query(
                    "BEGIN;
                     UPDATE $user SET avatar = $version RETURN NONE;
                     IF $version = NONE { DELETE $avatar }
                     ELSE {
                        UPSERT $avatar SET image = $image, content_type = $content_type,
                            version = $version RETURN NONE
                     };
                     COMMIT;",
                )
                .bind(("user", user_id(username)))
                .bind(("avatar", RecordId::new("avatar", username)))
                .bind(("version", version.clone()))
                .bind(("image", image.clone().map(surrealdb::types::Bytes::from)))
                .bind(("content_type", content_type.clone()))
                .await?;
            Ok(transaction(res)?)
        })
        .await?;
        self.person_changed(username);
        Ok(())
    }

    /// `username`'s picture: its version, bytes and type.
    pub async fn avatar(
        &self,
        username: &str,
    ) -> Result<Option<(String, Vec<u8>, String)>, StoreError> {
        let mut res = self
            .db
            .query("SELECT version, image, content_type FROM ONLY $avatar")
            .bind(("avatar", RecordId::new("avatar", username)))
            .await?
            .check()?;
        let row: Option<AvatarRow> = res.take(0)?;
        Ok(row.map(|r| (r.version, r.image.to_vec(), r.content_type)))
    }

    /// Up to `limit` distinct owners (users, rooms) of the terms that begin with `query`
    /// (see [`user_terms`]), closest first. The terms are read from the `(term, owner)`
    /// index a page at a time, so a search costs its page, however many owners there are.
    pub(super) async fn find_by_terms<T: TermMatch>(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let (table, owner) = (T::TABLE, T::OWNER);
        /// Terms read per page, and most pages read: one owner may hold many terms that
        /// begin the query (every character of a Chinese name begins one), so a search
        /// reads on until it has `limit` owners, within a bound.
        const PAGE: i64 = 50;
        const PAGES: usize = 10;
        let Some(q) = user_terms::query(query) else {
            return Ok(Vec::new());
        };
        let end = user_terms::after_all_starting_with(&q);
        let mut found: Vec<String> = Vec::new();
        // The first page from `q`; each next page after the last (term, owner) read: the
        // same term with later owners, then later terms (two reads of the index: one
        // condition with `OR` would read all of it).
        let mut res = self
            .db
            .query(format!(
                "SELECT id, term, {owner} FROM {table} WHERE term >= $q AND term < $end
                 ORDER BY term, {owner} LIMIT $page"
            ))
            .bind(("q", q))
            .bind(("end", end.clone()))
            .bind(("page", PAGE))
            .await?
            .check()?;
        for _ in 0..PAGES {
            let rows: Vec<T> = res.take(0)?;
            for r in &rows {
                if found.len() < limit && !found.iter().any(|f| f == r.owner()) {
                    found.push(r.owner().to_owned());
                }
            }
            let last = match rows.last() {
                Some(last) if rows.len() as i64 == PAGE && found.len() < limit => last,
                _ => break,
            };
            res = self
                .db
                .query(format!(
                    "RETURN array::slice(array::concat(
                        (SELECT id, term, {owner} FROM {table}
                            WHERE term = $term AND {owner} > $owner
                            ORDER BY term, {owner} LIMIT $page),
                        (SELECT id, term, {owner} FROM {table}
                            WHERE term > $term AND term < $end
                            ORDER BY term, {owner} LIMIT $page)
                     ), 0, $page)"
                ))
                .bind(("term", last.term().to_owned()))
                .bind(("owner", last.owner().to_owned()))
                .bind(("end", end.clone()))
                .bind(("page", PAGE))
                .await?
                .check()?;
        }
        Ok(found)
    }

    /// Display names of the given users (unknown ones are left out).
    pub async fn display_names(
        &self,
        usernames: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let ids: Vec<RecordId> = usernames.iter().map(|u| user_id(u)).collect();
        let mut res = self
            .db
            .query("SELECT id, display_name FROM $ids")
            .bind(("ids", ids))
            .await?
            .check()?;
        Ok(names(res.take(0)?))
    }

    /// Records session `sid` of `username`, valid until `expires_at` (seconds), signed in
    /// from `address` with browser `agent`.
    pub async fn create_session(
        &self,
        sid: &str,
        username: &str,
        now_secs: i64,
        expires_at: i64,
        agent: Option<&str>,
        address: Option<&str>,
    ) -> Result<(), StoreError> {
        self.db
            .query(
                "CREATE $id SET user = $user, created_at = $now, expires_at = $exp,
                    agent = $agent, address = $address RETURN NONE",
            )
            .bind(("id", session_id(sid)))
            .bind(("user", user_id(username)))
            .bind(("now", now_secs))
            .bind(("exp", expires_at))
            .bind(("agent", agent.map(str::to_owned)))
            .bind(("address", address.map(str::to_owned)))
            .await?
            .check()?;
        Ok(())
    }

    /// The sessions of `username` that have not expired at `now_secs`, newest first.
    pub async fn sessions_of(
        &self,
        username: &str,
        now_secs: i64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut res = self
            .db
            .query(
                "SELECT id, created_at, expires_at, seen_at, agent, address FROM session
                    WHERE user = $user AND expires_at > $now ORDER BY created_at DESC",
            )
            .bind(("user", user_id(username)))
            .bind(("now", now_secs))
            .await?
            .check()?;
        let rows: Vec<SessionRow> = res.take(0)?;
        Ok(rows.into_iter().map(SessionRow::into_record).collect())
    }

    /// Notes that session `sid` was seen at `now_secs`, unless it was within [`SEEN_EVERY`]
    /// seconds (so that a burst of reconnects writes once).
    pub async fn touch_session(&self, sid: &str, now_secs: i64) -> Result<(), StoreError> {
        self.db
            .query(
                "UPDATE $id SET seen_at = $now WHERE seen_at = NONE OR seen_at < $stale
                    RETURN NONE",
            )
            .bind(("id", session_id(sid)))
            .bind(("now", now_secs))
            .bind(("stale", now_secs - SEEN_EVERY))
            .await?
            .check()?;
        Ok(())
    }

    /// Ends the sessions of `username`, all of them or all but `keep`; returns the ids
    /// ended (their sockets are to be closed).
    pub async fn end_sessions(
        &self,
        username: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut res = self
            .db
            .query("DELETE session WHERE user = $user AND id != $keep RETURN BEFORE")
            .bind(("user", user_id(username)))
            .bind(("keep", keep.map(session_id)))
            .await?
            .check()?;
        let rows: Vec<IdRow> = res.take(0)?;
        Ok(rows.iter().map(|r| key_of(&r.id)).collect())
    }

    /// Ends session `sid` if it belongs to `username`; whether it did.
    pub async fn end_session_of(&self, username: &str, sid: &str) -> Result<bool, StoreError> {
        let mut res = self
            .db
            .query("DELETE $id WHERE user = $user RETURN BEFORE")
            .bind(("id", session_id(sid)))
            .bind(("user", user_id(username)))
            .await?
            .check()?;
        let rows: Vec<IdRow> = res.take(0)?;
        Ok(!rows.is_empty())
    }

    /// Deletes the sessions expired at `now_secs`, and the invitations expired or used up;
    /// how many sessions.
    pub async fn forget_expired(&self, now_secs: i64) -> Result<usize, StoreError> {
        let mut res = self
            .db
            .query(
                "DELETE session WHERE expires_at <= $now RETURN BEFORE;
                 DELETE signup_invite WHERE expires_at <= $now OR uses <= 0 RETURN NONE;
                 DELETE room_invite WHERE expires_at <= $now_ms RETURN NONE;",
            )
            .bind(("now", now_secs))
            .bind(("now_ms", now_secs.saturating_mul(1000)))
            .await?
            .check()?;
        let rows: Vec<IdRow> = res.take(0)?;
        Ok(rows.len())
    }

    /// Replaces the password hash of `username` and ends its sessions but `keep`; returns
    /// the sessions ended.
    pub async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        self.update_user(username, "password_hash = $value", password_hash.to_owned())
            .await?;
        self.end_sessions(username, keep).await
    }

    /// Changes the display name of `username`, and the terms it is found by, in one
    /// transaction; [`StoreError::NoSuchUser`] if there is none.
    pub async fn set_display_name(
        &self,
        username: &str,
        display_name: &DisplayName,
    ) -> Result<(), StoreError> {
        let old = self.user(username).await?.ok_or(StoreError::NoSuchUser)?;
        let gone: Vec<RecordId> = UserTermRow::of(username, &old.display_name)
            .into_iter()
            .map(|t| t.id)
            .collect();
        retry_conflicts(|| async {
            let res = self
                .db
                .query(
                    "BEGIN;
                     UPDATE $id SET display_name = $display_name RETURN NONE;
                     DELETE $gone;
                     INSERT IGNORE INTO user_term $terms RETURN NONE;
                     COMMIT;",
                )
                .bind(("id", user_id(username)))
                .bind(("display_name", display_name.as_str().to_owned()))
                .bind(("gone", gone.clone()))
                .bind(("terms", UserTermRow::of(username, display_name.as_str())))
                .await?;
            Ok(transaction(res)?)
        })
        .await?;
        self.person_changed(username);
        Ok(())
    }

    /// Makes `username` a server administrator or not.
    pub async fn set_admin(&self, username: &str, admin: bool) -> Result<(), StoreError> {
        self.update_user(username, "admin = $value", admin).await
    }

    /// Disables `username` (ending every session of it; returned) or enables it again.
    pub async fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<Vec<String>, StoreError> {
        self.update_user(username, "disabled = $value", disabled)
            .await?;
        if disabled {
            self.end_sessions(username, None).await
        } else {
            Ok(Vec::new())
        }
    }

    /// Sets one field of an existing user; [`StoreError::NoSuchUser`] if there is none.
    async fn update_user<V: surrealdb::types::SurrealValue + 'static>(
        &self,
        username: &str,
        assignment: &'static str,
        value: V,
    ) -> Result<(), StoreError> {
        let mut res = self
            .db
            .query(format!("UPDATE $id SET {assignment} RETURN VALUE id"))
            .bind(("id", user_id(username)))
            .bind(("value", value))
            .await?
            .check()?;
        let updated: Vec<RecordId> = res.take(0)?;
        if updated.is_empty() {
            return Err(StoreError::NoSuchUser);
        }
        Ok(())
    }

    /// Records an invitation to sign up, usable `uses` times until `expires_at` (seconds).
    pub async fn create_signup_invite(
        &self,
        token: &str,
        uses: u32,
        now_secs: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.db
            .query("CREATE $id SET uses = $uses, expires_at = $exp, created_at = $now RETURN NONE")
            .bind(("id", RecordId::new("signup_invite", token)))
            .bind(("uses", i64::from(uses)))
            .bind(("exp", expires_at))
            .bind(("now", now_secs))
            .await?
            .check()?;
        Ok(())
    }

    /// Takes one use of invitation `token`; whether it was valid (exists, not expired at
    /// `now_secs`, not used up). Used-up ones stay until [`Self::forget_expired`], so that
    /// [`Self::give_back_signup_invite`] can return a use that came to nothing.
    pub async fn take_signup_invite(&self, token: &str, now_secs: i64) -> Result<bool, StoreError> {
        let id = RecordId::new("signup_invite", token);
        // One statement: two sign-ups at once cannot both take the last use (one of them
        // conflicts, and is run again).
        let left: Vec<i64> = retry_conflicts(|| async {
            let mut res = self
                .db
                .query(
                    "UPDATE $id SET uses -= 1 WHERE uses > 0 AND expires_at > $now
                        RETURN VALUE uses",
                )
                .bind(("id", id.clone()))
                .bind(("now", now_secs))
                .await?
                .check()?;
            Ok(res.take(0)?)
        })
        .await?;
        Ok(!left.is_empty())
    }

    /// Returns a use taken by a sign-up that then failed (its username was taken).
    pub async fn give_back_signup_invite(&self, token: &str) -> Result<(), StoreError> {
        let id = RecordId::new("signup_invite", token);
        retry_conflicts(|| async {
            self.db
                .query("UPDATE $id SET uses += 1 RETURN NONE")
                .bind(("id", id.clone()))
                .await?
                .check()?;
            Ok(())
        })
        .await
    }

    /// Revokes invitation `token`; whether there was one.
    pub async fn revoke_signup_invite(&self, token: &str) -> Result<bool, StoreError> {
        let mut res = self
            .db
            .query("DELETE $id RETURN BEFORE")
            .bind(("id", RecordId::new("signup_invite", token)))
            .await?
            .check()?;
        let rows: Vec<IdRow> = res.take(0)?;
        Ok(!rows.is_empty())
    }

    /// The user of session `sid`, if it exists and has not expired at `now_secs`.
    pub async fn session_owner(
        &self,
        sid: &str,
        now_secs: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut res = self
            .db
            .query("SELECT VALUE record::id(user) FROM ONLY $id WHERE expires_at > $now")
            .bind(("id", session_id(sid)))
            .bind(("now", now_secs))
            .await?
            .check()?;
        Ok(res.take(0)?)
    }

    /// Whether session `sid` still exists (it has not signed out).
    pub async fn session_exists(&self, sid: &str) -> Result<bool, StoreError> {
        let mut res = self
            .db
            .query("RETURN record::exists($id)")
            .bind(("id", session_id(sid)))
            .await?
            .check()?;
        Ok(res.take::<Option<bool>>(0)?.unwrap_or(false))
    }

    /// Ends session `sid`: its token stops working at once.
    pub async fn delete_session(&self, sid: &str) -> Result<(), StoreError> {
        self.db
            .query("DELETE $id")
            .bind(("id", session_id(sid)))
            .await?
            .check()?;
        Ok(())
    }
}

/// `(username, display name)` of each row.
#[derive(Debug, SurrealValue)]
struct AvatarRow {
    version: String,
    image: surrealdb::types::Bytes,
    content_type: String,
}

fn names(rows: Vec<NameRow>) -> Vec<(String, String)> {
    rows.into_iter()
        .map(|r| (key_of(&r.id), r.display_name))
        .collect()
}
