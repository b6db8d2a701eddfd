//! The signed-in person's own account over HTTP: their signed-in devices (list, end one,
//! end all the others) and their password. Every endpoint acts on the session's own user
//! only; ending a session closes its sockets at once.

use app::domain::Password;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::auth::{self, AuthError, AuthState, Session};

/// One signed-in device, as listed to its owner.
#[derive(Debug, Serialize)]
pub struct DeviceView {
    pub id: String,
    /// The session this list was asked from.
    pub current: bool,
    /// Seconds since the epoch.
    pub created_at: i64,
    pub expires_at: i64,
    /// When a socket of it last opened (to within five minutes).
    pub seen_at: i64,
    pub agent: Option<String>,
    pub address: Option<String>,
}

/// `GET /api/account/sessions`: the user's sessions, newest first.
pub async fn sessions(
    State(auth): State<AuthState>,
    session: Session,
) -> Result<Json<Vec<DeviceView>>, AuthError> {
    let list = auth
        .store
        .sessions_of(session.username.as_str(), auth::now_secs() as i64)
        .await?;
    Ok(Json(
        list.into_iter()
            .map(|s| DeviceView {
                current: s.id == session.session_id,
                id: s.id,
                created_at: s.created_at,
                expires_at: s.expires_at,
                seen_at: s.seen_at,
                agent: s.agent,
                address: s.address,
            })
            .collect(),
    ))
}

/// `DELETE /api/account/sessions/{id}`: ends one of the user's sessions (204), or 404 when
/// they have none by that id (another user's looks the same as none).
pub async fn end_session(
    State(auth): State<AuthState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<StatusCode, AuthError> {
    if !auth
        .store
        .end_session_of(session.username.as_str(), &id)
        .await?
    {
        return Err(AuthError::NoSuchSession);
    }
    auth.close_sockets([id]);
    info!(user = %session.username, "a session ended from another device");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
pub struct Ended {
    pub ended: usize,
}

/// `POST /api/account/sessions/end-others`: ends every session of the user but this one.
pub async fn end_other_sessions(
    State(auth): State<AuthState>,
    session: Session,
) -> Result<Json<Ended>, AuthError> {
    let ended = auth
        .store
        .end_sessions(session.username.as_str(), Some(&session.session_id))
        .await?;
    let n = ended.len();
    auth.close_sockets(ended);
    info!(user = %session.username, sessions = n, "other sessions ended");
    Ok(Json(Ended { ended: n }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current: String,
    new: String,
}

/// `POST /api/account/password` `{current, new}`: sets a new password if the current one is
/// right (403 `wrong_password` otherwise, counted as a failed sign-in), and ends every other
/// session. 204.
pub async fn change_password(
    State(auth): State<AuthState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    session: Session,
    Json(form): Json<PasswordChange>,
) -> Result<Json<Ended>, AuthError> {
    let new = Password::parse(&form.new)?;
    let username = session.username.as_str();
    let attempt = auth
        .throttle
        .begin(username, peer.ip())
        .map_err(AuthError::TooManyAttempts)?;
    let current = Password::parse(&form.current).map_err(|_| AuthError::WrongPassword)?;
    let user = auth.store.user(username).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !auth::verify_password(&auth.hashing, current, hash).await {
        return Err(AuthError::WrongPassword);
    }
    attempt.succeeded();
    let hash = auth::hash_password(&auth.hashing, new).await?;
    let ended = auth
        .store
        .set_password(username, &hash, Some(&session.session_id))
        .await?;
    let n = ended.len();
    auth.close_sockets(ended);
    info!(user = %session.username, sessions_ended = n, "password changed");
    Ok(Json(Ended { ended: n }))
}
