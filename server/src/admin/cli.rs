//! The server binary's administration subcommands. Each becomes a [`Request`] that the
//! server running on the data directory carries out (over [`super::socket`]); when none is
//! running, this process opens the data directory and carries it out itself.

use clap::Subcommand;
use std::{
    io::{BufRead, IsTerminal},
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{backup, Admin, AdminError, Request};
use crate::{db::Database, files::FileStore, settings::Settings, store::SurrealChatStore};

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Runs the chat server (what the binary does with no subcommand).
    Serve,
    /// Accounts: create one, reset a password, make or remove a server administrator,
    /// disable or enable one, export a person's data.
    #[command(subcommand)]
    User(UserCommand),
    /// Makes a sign-up invitation link (for `--sign-up invite`), or revokes one.
    Invite {
        /// Hours the link stays valid.
        #[arg(long, default_value_t = 168)]
        hours: u64,
        /// How many accounts it may create.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Revokes this invitation (its link, or the token in it) instead.
        #[arg(long)]
        revoke: Option<String>,
    },
    /// Writes a consistent backup of the whole data directory into a new directory, while
    /// the server runs (or not).
    Backup {
        /// The backup's directory (must not exist).
        to: PathBuf,
    },
    /// Restores a backup into the data directory (`--data-dir`), which must be empty or
    /// not exist, with no server running on it.
    Restore {
        /// A directory written by `backup`.
        from: PathBuf,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Creates an account; the password is read from the terminal or standard input.
    Create {
        username: String,
        /// The name others see [default: the username].
        #[arg(long)]
        display_name: Option<String>,
        /// Makes it a server administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Sets a new password (read from the terminal or standard input) and ends every
    /// session of the account.
    Password { username: String },
    /// Makes the account a server administrator (`--remove`: no longer one).
    Admin {
        username: String,
        #[arg(long)]
        remove: bool,
    },
    /// Disables the account: it cannot sign in, its sessions end, its sockets close.
    Disable { username: String },
    /// Lets a disabled account sign in again.
    Enable { username: String },
    /// Writes the person's profile, messages and files into a new directory.
    Export {
        username: String,
        /// The export's directory (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
}

/// Runs `command` against the data directory of `settings`; what to print on success.
pub async fn run(command: Command, settings: &Settings) -> anyhow::Result<String> {
    let data_dir = settings.data_dir.as_path();
    let request = match command {
        Command::Serve => unreachable!("`serve` runs the server; main handles it"),
        Command::Restore { from } => {
            if !matches!(settings.storage, crate::settings::StorageKind::Disk) {
                anyhow::bail!(
                    "restore fills a data directory of embedded storage; a SurrealDB server takes a backup's database.surql with `surreal import`, and the backup's files go into each node's data directory"
                );
            }
            let manifest = backup::restore(&absolute(&from)?, data_dir).await?;
            return Ok(format!(
                "restored into {} the backup taken at {} (ms since the epoch); start the server on it",
                data_dir.display(),
                manifest.taken_at
            ));
        }
        Command::Invite {
            revoke: Some(token),
            ..
        } => Request::RevokeInvite { token },
        Command::Invite { hours, uses, .. } => Request::Invite { hours, uses },
        Command::Backup { to } => Request::Backup { to: absolute(&to)? },
        Command::User(user) => match user {
            UserCommand::Create {
                username,
                display_name,
                admin,
            } => Request::CreateUser {
                password: read_password(&format!("password for {username}: "))?,
                username,
                display_name,
                admin,
            },
            UserCommand::Password { username } => Request::ResetPassword {
                password: read_password(&format!("new password for {username}: "))?,
                username,
            },
            UserCommand::Admin { username, remove } => Request::SetAdmin {
                username,
                admin: !remove,
            },
            UserCommand::Disable { username } => Request::SetDisabled {
                username,
                disabled: true,
            },
            UserCommand::Enable { username } => Request::SetDisabled {
                username,
                disabled: false,
            },
            UserCommand::Export { username, to } => Request::ExportUser {
                username,
                to: absolute(&to)?,
            },
        },
    };
    if let Some(reply) = super::socket::send(data_dir, &request).await? {
        return if reply.ok {
            Ok(reply.message)
        } else {
            Err(anyhow::anyhow!(reply.message))
        };
    }
    Ok(run_here(request, settings).await?)
}

/// Carries `request` out in this process, over the data directory no server is running on.
async fn run_here(request: Request, settings: &Settings) -> Result<String, AdminError> {
    let data_dir = settings.data_dir.clone();
    let db = match (settings.storage, &settings.remote) {
        (crate::settings::StorageKind::Remote, Some(remote)) => {
            Database::connect(remote, &data_dir).await?
        }
        _ => Database::open(crate::settings::StorageKind::Disk, &data_dir).await?,
    };
    let store = SurrealChatStore::new(&db, crate::now_ms()).await?;
    let files = FileStore::open(
        Some(&data_dir.join("files")),
        store.clone(),
        settings.limits.file_max_bytes,
        settings.limits.file_quota_bytes,
    )
    .map_err(AdminError::io("cannot open the files in", &data_dir))?;
    let admin = Admin {
        store: store.clone(),
        files,
        data_dir: Some(data_dir.clone()),
        hashing: Arc::new(tokio::sync::Semaphore::new(1)),
        // No server, no sockets to close.
        sessions_ended: tokio::sync::broadcast::channel(1).0,
        public_origin: settings.public_origin.clone(),
    };
    let result = admin.run(request).await;
    drop(admin);
    let closed = store.close().await;
    drop(store);
    db.close(std::time::Duration::from_secs(30)).await;
    let message = result?;
    closed?;
    Ok(message)
}

fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    std::path::absolute(path)
}

/// A password from the terminal (not echoed), else the first line of standard input.
fn read_password(prompt: &str) -> std::io::Result<String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
