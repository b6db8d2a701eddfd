//! How the command line reaches a running server: `<data dir>/admin.sock`, a Unix socket
//! only the data directory's owner may open (the file is `0600` inside a `0700` directory,
//! and a peer of another user is refused as well). One request per connection: a line of
//! JSON ([`Request`]) in, a line of JSON ([`Reply`]) out.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Admin, Reply, Request};

/// The socket's name in the data directory.
pub const SOCKET: &str = "admin.sock";
/// Longest request line (passwords and paths are short).
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket's path for `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// Binds the socket (replacing one a previous run left), readable and writable by its owner
/// only before it has its name, so nobody else can ever connect.
pub fn bind(data_dir: &Path) -> std::io::Result<UnixListener> {
    let (path, fresh) = (path(data_dir), data_dir.join(format!("{SOCKET}.new")));
    let _ = std::fs::remove_file(&fresh);
    let listener = UnixListener::bind(&fresh)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&fresh, &path)?;
    Ok(listener)
}

/// Answers requests on `listener` one at a time until `stop`; then removes the socket.
pub async fn serve(
    listener: UnixListener,
    admin: Admin,
    data_dir: PathBuf,
    stop: CancellationToken,
) {
    let owner = std::fs::metadata(&data_dir).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    loop {
        let conn = tokio::select! {
            conn = listener.accept() => conn,
            () = stop.cancelled() => break,
        };
        let mut conn = match conn {
            Ok((conn, _)) => conn,
            Err(e) => {
                warn!(error = %e, "administration socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = conn.peer_cred().map(|c| c.uid());
        if !matches!((&peer, &owner), (Ok(p), Ok(o)) if p == o) {
            warn!(peer = ?peer.ok(), "administration socket: a peer of another user refused");
            continue;
        }
        let reply = match read_request(&mut conn).await {
            Ok(request) => {
                info!(command = request.name(), "administration command");
                admin.answer(request).await
            }
            Err(message) => Reply { ok: false, message },
        };
        if let Err(e) = write_reply(&mut conn, &reply).await {
            warn!(error = %e, "administration socket: cannot answer");
        }
    }
    let _ = std::fs::remove_file(path(&data_dir));
}

async fn read_request(conn: &mut UnixStream) -> Result<Request, String> {
    let mut line = String::new();
    let mut reader = BufReader::new(conn.take(MAX_REQUEST));
    match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => serde_json::from_str(&line).map_err(|e| format!("not a request: {e}")),
        Ok(Err(e)) => Err(format!("cannot read the request: {e}")),
        Err(_) => Err("the request did not arrive in time".into()),
    }
}

async fn write_reply(conn: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    conn.write_all(&line).await?;
    conn.shutdown().await
}

/// Sends `request` to the server running on `data_dir`: its reply, or `None` when no server
/// is running there (no socket, or nobody listening on it).
pub async fn send(data_dir: &Path, request: &Request) -> std::io::Result<Option<Reply>> {
    let mut conn = match UnixStream::connect(path(data_dir)).await {
        Ok(conn) => conn,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    conn.write_all(&line).await?;
    let mut answer = String::new();
    BufReader::new(conn).read_line(&mut answer).await?;
    serde_json::from_str(&answer)
        .map(Some)
        .map_err(|e| std::io::Error::other(format!("the server's answer is not a reply: {e}")))
}

impl Request {
    /// The command's name, for the log (never its arguments: they may hold a password).
    pub fn name(&self) -> &'static str {
        match self {
            Request::CreateUser { .. } => "create_user",
            Request::ResetPassword { .. } => "reset_password",
            Request::SetAdmin { .. } => "set_admin",
            Request::SetDisabled { .. } => "set_disabled",
            Request::Invite { .. } => "invite",
            Request::RevokeInvite { .. } => "revoke_invite",
            Request::Backup { .. } => "backup",
            Request::ExportUser { .. } => "export_user",
        }
    }
}
