//! Users and their sessions.

use app::domain::{DisplayName, Username};
use surrealdb::types::RecordId;

use super::{
    rows::{key_of, session_id, user_id, NameRow, UserRecord, UserRow},
    taken_table, StoreError, SurrealChatStore,
};

impl SurrealChatStore {
    /// Creates an account; fails with [`StoreError::UsernameTaken`] if the name is in use.
    pub async fn create_user(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let res = self
            .db
            .query(
                "CREATE $id SET display_name = $display_name, password_hash = $hash,
                    created_at = $now RETURN NONE",
            )
            .bind(("id", user_id(username.as_str())))
            .bind(("display_name", display_name.as_str().to_owned()))
            .bind(("hash", password_hash.to_owned()))
            .bind(("now", now_ms))
            .await?
            .check();
        match res {
            Ok(_) => Ok(()),
            Err(e) if taken_table(&e) == Some("user") => Err(StoreError::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let mut res = self
            .db
            .query("SELECT id, display_name, password_hash FROM ONLY $id")
            .bind(("id", user_id(username)))
            .await?
            .check()?;
        let row: Option<UserRow> = res.take(0)?;
        Ok(row.and_then(|r| {
            Some(UserRecord {
                username: Username::parse(&key_of(&r.id)).ok()?,
                display_name: r.display_name,
                password_hash: r.password_hash,
            })
        }))
    }

    /// Users whose username or display name contains `query` (case-insensitive), by username.
    pub async fn search_users(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut res = self
            .db
            .query(
                "SELECT id, display_name FROM user
                 WHERE string::contains(string::lowercase(record::id(id)), $q)
                    OR string::contains(string::lowercase(display_name), $q)
                 ORDER BY id LIMIT $limit",
            )
            .bind(("q", query.trim().to_lowercase()))
            .bind(("limit", i64::from(limit)))
            .await?
            .check()?;
        Ok(names(res.take(0)?))
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

    /// Records session `sid` of `username`, valid until `expires_at` (seconds).
    pub async fn create_session(
        &self,
        sid: &str,
        username: &str,
        now_secs: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.db
            .query("CREATE $id SET user = $user, created_at = $now, expires_at = $exp RETURN NONE")
            .bind(("id", session_id(sid)))
            .bind(("user", user_id(username)))
            .bind(("now", now_secs))
            .bind(("exp", expires_at))
            .await?
            .check()?;
        Ok(())
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
fn names(rows: Vec<NameRow>) -> Vec<(String, String)> {
    rows.into_iter()
        .map(|r| (key_of(&r.id), r.display_name))
        .collect()
}
