//! Administration: what the server binary's subcommands do (see the README's
//! "Administration"). Each is a [`Request`], carried out by [`Admin::run`] either inside the
//! running server (the command line reaches it over [`socket`], a Unix socket in the data
//! directory only its owner may open) or, when no server runs, in the command's own process
//! over the same data directory. Either way the same code decides, so a rule has one home.
//!
//! - [`cli`] — the subcommands, turned into requests; passwords are read from the terminal
//!   or standard input, never from the command line.
//! - [`backup`] — an online, consistent backup of the whole data directory, and its restore
//!   into an empty one.
//! - [`export`] — one person's data (profile, messages, files) as JSON and files.

pub mod backup;
pub mod cli;
pub mod export;
pub mod socket;

use app::domain::{DisplayName, Password, Username};
use serde::{Deserialize, Serialize};
use std::{path::PathBuf, sync::Arc};
use tokio::sync::{broadcast, Semaphore};
use tracing::info;

use crate::{
    auth::{self, AuthError},
    files::FileStore,
    store::{StoreError, SurrealChatStore},
};

/// One administration command, as the command line sends it to the server. Paths are
/// absolute (made so where the command was typed).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    CreateUser {
        username: String,
        display_name: Option<String>,
        password: String,
        admin: bool,
    },
    /// Sets a new password and ends every session of the account.
    ResetPassword {
        username: String,
        password: String,
    },
    SetAdmin {
        username: String,
        admin: bool,
    },
    /// Disabling ends every session of the account and closes its sockets.
    SetDisabled {
        username: String,
        disabled: bool,
    },
    /// A sign-up invitation usable `uses` times within `hours`.
    Invite {
        hours: u64,
        uses: u32,
    },
    /// Revokes an invitation (its token, or the link holding it).
    RevokeInvite {
        token: String,
    },
    Backup {
        to: PathBuf,
    },
    ExportUser {
        username: String,
        to: PathBuf,
    },
}

/// Only the command's name: its arguments may hold a password.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Request::{}", self.name())
    }
}

/// What a command answers: a sentence for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(#[from] app::domain::Invalid),
    #[error("there is no user named {0}")]
    NoSuchUser(String),
    #[error("the username {0} is taken")]
    UsernameTaken(String),
    #[error("{0} already exists: a backup or an export goes into a new directory")]
    TargetExists(PathBuf),
    #[error("{0} is not empty: a backup is restored into a new data directory")]
    NotEmpty(PathBuf),
    #[error("{0} is not a backup (it has no {file})", file = backup::MANIFEST)]
    NotABackup(PathBuf),
    #[error("there is no such invitation (or it has expired)")]
    NoSuchInvite,
    #[error("this needs the data on disk (storage = \"disk\")")]
    NeedsDisk,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("cannot hash the password: {0}")]
    Hashing(#[source] AuthError),
}

impl AdminError {
    fn io(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| AdminError::Io { what, path, source }
    }
}

/// What the commands work on; cheap to clone.
#[derive(Clone)]
pub struct Admin {
    pub store: SurrealChatStore,
    pub files: FileStore,
    /// The data directory (`None`: memory storage, which cannot be backed up).
    pub data_dir: Option<PathBuf>,
    /// Places for password hashes (shared with sign-in, which they would otherwise starve).
    pub hashing: Arc<Semaphore>,
    /// Session ids as they end; their sockets close.
    pub sessions_ended: broadcast::Sender<String>,
    /// Where invitation links point (`None`: the link is printed as a path).
    pub public_origin: Option<String>,
}

impl Admin {
    /// Carries out `request`; the reply says what was done, or why nothing was.
    pub async fn answer(&self, request: Request) -> Reply {
        match self.run(request).await {
            Ok(message) => Reply { ok: true, message },
            Err(e) => Reply {
                ok: false,
                message: e.to_string(),
            },
        }
    }

    /// Carries out `request`: what was done, as a sentence.
    pub async fn run(&self, request: Request) -> Result<String, AdminError> {
        match request {
            Request::CreateUser {
                username,
                display_name,
                password,
                admin,
            } => {
                let name = Username::parse(&username)?;
                let display = DisplayName::parse(display_name.as_deref().unwrap_or(&username))?;
                let hash = self.hash(password).await?;
                let admin = self
                    .store
                    .create_user(&name, &display, &hash, admin, crate::now_ms())
                    .await
                    .map_err(|e| match e {
                        StoreError::UsernameTaken => AdminError::UsernameTaken(username.clone()),
                        other => other.into(),
                    })?;
                info!(user = %name, admin, "account created by the administrator");
                Ok(format!(
                    "created {name}{}",
                    if admin { " (server administrator)" } else { "" }
                ))
            }
            Request::ResetPassword { username, password } => {
                let hash = self.hash(password).await?;
                let ended = self
                    .store
                    .set_password(&username, &hash, None)
                    .await
                    .map_err(|e| no_such_user(e, &username))?;
                let n = ended.len();
                auth::close_sockets(&self.sessions_ended, ended);
                info!(user = %username, sessions_ended = n, "password reset by the administrator");
                Ok(format!(
                    "new password set for {username}; {n} session(s) ended"
                ))
            }
            Request::SetAdmin { username, admin } => {
                self.store
                    .set_admin(&username, admin)
                    .await
                    .map_err(|e| no_such_user(e, &username))?;
                info!(user = %username, admin, "server administrator changed");
                Ok(if admin {
                    format!("{username} is a server administrator")
                } else {
                    format!("{username} is no longer a server administrator")
                })
            }
            Request::SetDisabled { username, disabled } => {
                let ended = self
                    .store
                    .set_disabled(&username, disabled)
                    .await
                    .map_err(|e| no_such_user(e, &username))?;
                let n = ended.len();
                auth::close_sockets(&self.sessions_ended, ended);
                info!(user = %username, disabled, sessions_ended = n, "account disabled or enabled");
                Ok(if disabled {
                    format!("{username} is disabled; {n} session(s) ended")
                } else {
                    format!("{username} may sign in again")
                })
            }
            Request::Invite { hours, uses } => {
                let token = auth::random_hex(16);
                let now = auth::now_secs() as i64;
                let hours = hours.clamp(1, 24 * 365);
                self.store
                    .create_signup_invite(&token, uses.max(1), now, now + 3600 * hours as i64)
                    .await?;
                let origin = self.public_origin.as_deref().unwrap_or("");
                Ok(format!(
                    "{origin}/?invite={token}\n(valid for {hours} hour(s), {} sign-up(s))",
                    uses.max(1)
                ))
            }
            Request::RevokeInvite { token } => {
                let token = token.rsplit("invite=").next().unwrap_or_default().trim();
                if auth::valid_token(token) && self.store.revoke_signup_invite(token).await? {
                    Ok("the invitation is revoked".into())
                } else {
                    Err(AdminError::NoSuchInvite)
                }
            }
            Request::Backup { to } => {
                let summary = backup::backup(self, &to).await?;
                Ok(summary.to_string())
            }
            Request::ExportUser { username, to } => {
                let summary = export::export_user(self, &username, &to).await?;
                Ok(summary)
            }
        }
    }

    async fn hash(&self, password: String) -> Result<String, AdminError> {
        let password = Password::parse(&password)?;
        auth::hash_password(&self.hashing, password)
            .await
            .map_err(AdminError::Hashing)
    }
}

fn no_such_user(e: StoreError, username: &str) -> AdminError {
    match e {
        StoreError::NoSuchUser => AdminError::NoSuchUser(username.to_owned()),
        other => other.into(),
    }
}
