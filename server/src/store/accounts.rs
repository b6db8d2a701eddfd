//! Users and their sessions.

use app::domain::{DisplayName, Username};
use surrealdb::types::RecordId;

use super::{
    retry_conflicts,
    rows::{key_of, session_id, user_id, NameRow, TermMatch, UserRecord, UserRow, UserTermRow},
    taken_table, transaction, user_terms, StoreError, SurrealChatStore,
};

impl SurrealChatStore {
    /// Creates an account, and the terms it is found by, in one transaction; fails with
    /// [`StoreError::UsernameTaken`] if the name is in use.
    pub async fn create_user(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let name = username.as_str();
        let res = retry_conflicts(|| async {
            let res = self
                .db
                .query(
                    "BEGIN;
                     CREATE $id SET display_name = $display_name, password_hash = $hash,
                        created_at = $now RETURN NONE;
                     INSERT IGNORE INTO user_term $terms RETURN NONE;
                     COMMIT;",
                )
                .bind(("id", user_id(name)))
                .bind(("display_name", display_name.as_str().to_owned()))
                .bind(("hash", password_hash.to_owned()))
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
            other => other,
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

    /// Up to `limit` users with a word of their username or display name beginning with
    /// `query` (see [`user_terms`]), closest first (by the rest of the matching name). The
    /// terms are read from the index a page at a time, so a search costs its page, however
    /// many users there are.
    pub async fn search_users(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let found = self
            .find_by_terms::<UserTermRow>(query, limit as usize)
            .await?;
        let mut names = self.display_names(&found).await?;
        names.sort_by_key(|(u, _)| found.iter().position(|f| f == u));
        Ok(names)
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
