//! Server settings, layered: built-in defaults, then a TOML file (`--config` / `CHAT_CONFIG`),
//! then environment variables (`CHAT_*`), then command-line flags. Every setting is listed in
//! the README.

pub use crate::db::{RemoteDb, StorageKind};
use clap::Parser;
use serde::Deserialize;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// Our own logs at `info`; the storage engine's start-up chatter only from `warn`.
pub const DEFAULT_LOG: &str = "info,surrealdb=warn,surrealkv=warn";

/// Default messages per second per user.
pub const DEFAULT_SEND_RATE: u32 = 20;

/// Default size of the storage engine's block cache, in MiB (see `db::BLOCK_CACHE_BYTES`).
pub const DEFAULT_DB_CACHE_MB: u64 = crate::db::BLOCK_CACHE_BYTES >> 20;
/// Smallest block cache the settings accept, in MiB.
pub const MIN_DB_CACHE_MB: u64 = 16;

/// The limits that keep one client from taking the server from everyone else; each is a
/// setting (RELIABILITY.md says how to tune them). The defaults protect a small server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections (HTTP and WebSocket together) one client address may hold open.
    pub connections_per_address: usize,
    /// WebSockets one user may hold open at once.
    pub sockets_per_user: usize,
    /// How long a connection may take to send a request's headers (counted from when it
    /// opens or finishes its previous response, so also the keep-alive idle timeout), and
    /// a request its body.
    pub http_timeout: std::time::Duration,
    /// Failed sign-ins to one account from one address per 15 minutes.
    pub sign_in_failures: usize,
    /// Failed sign-ins to one account from all addresses per 15 minutes; past it, only
    /// addresses that have signed in to the account before may try (within their own limit).
    pub sign_in_failures_per_account: usize,
    /// Accounts one address may create per hour.
    pub sign_ups_per_hour: u32,
    /// Passwords hashed or checked at once (Argon2 takes 19 MiB and a core each).
    pub password_hashes_at_once: usize,
    /// Rooms one user may create per hour (bursts of five).
    pub rooms_per_hour: u32,
    /// Rooms one user may own (have created and not deleted).
    pub rooms_owned: usize,
    /// Bytes one uploaded file may have.
    pub file_max_bytes: u64,
    /// Bytes of files one user may have stored (sent or waiting to be).
    pub file_quota_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_per_address: 256,
            sockets_per_user: 32,
            http_timeout: std::time::Duration::from_secs(15),
            sign_in_failures: 5,
            sign_in_failures_per_account: 20,
            sign_ups_per_hour: 30,
            password_hashes_at_once: std::thread::available_parallelism().map_or(2, |n| n.get()),
            rooms_per_hour: 20,
            rooms_owned: 50,
            file_max_bytes: 25 << 20,
            file_quota_bytes: 1 << 30,
        }
    }
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignUpMode {
    /// Anyone who reaches the server (within `sign_ups_per_hour` per address).
    #[default]
    Open,
    /// Only with an invitation link made by `server invite`.
    Invite,
    /// Nobody: accounts are made with `server user create`.
    Closed,
}

/// The SurrealDB namespace and database the chat uses on a server unless told otherwise.
pub const DEFAULT_DB_NAME: &str = "chat";

/// Shortest `metrics_token` accepted: long enough not to be guessed.
pub const MIN_METRICS_TOKEN: usize = 16;

/// Default lifetime of a sign-in: 30 days.
pub const DEFAULT_SESSION_TTL_HOURS: u64 = 720;

/// Command-line flags; each also reads its environment variable.
#[derive(Debug, Default, Parser)]
#[command(name = "server", version, about = "Real-time chat server")]
pub struct Cli {
    /// What to do (with none: run the server).
    #[command(subcommand)]
    pub command: Option<crate::admin::cli::Command>,
    /// TOML file with any of the settings below (keys: the flag names with `_` for `-`).
    #[arg(long, env = "CHAT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: LEPTOS_SITE_ADDR, else 127.0.0.1:3000].
    #[arg(long, env = "CHAT_ADDR")]
    pub addr: Option<SocketAddr>,
    /// Directory holding the database and other state [default: ./data].
    #[arg(long, env = "CHAT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Storage engine [default: remote when db_url is set, else disk].
    #[arg(long, env = "CHAT_STORAGE", value_enum, global = true)]
    pub storage: Option<StorageKind>,
    /// The SurrealDB server to store chats in, as `ws://host:port` (storage = remote).
    #[arg(long, env = "CHAT_DB_URL", global = true)]
    pub db_url: Option<String>,
    /// Namespace on the SurrealDB server [default: chat].
    #[arg(long, env = "CHAT_DB_NAMESPACE", global = true)]
    pub db_namespace: Option<String>,
    /// Database on the SurrealDB server [default: chat].
    #[arg(long, env = "CHAT_DB_DATABASE", global = true)]
    pub db_database: Option<String>,
    /// A root user of the SurrealDB server.
    #[arg(long, env = "CHAT_DB_USER", global = true)]
    pub db_user: Option<String>,
    /// That user's password.
    #[arg(long, env = "CHAT_DB_PASSWORD", hide_env_values = true, global = true)]
    pub db_password: Option<String>,
    /// The NATS server that carries events between the nodes of a cluster, as
    /// `nats://host:port` [default: none, a single node]; needs `node`.
    #[arg(long, env = "CHAT_NATS_URL")]
    pub nats_url: Option<String>,
    /// This node's name in a cluster: unique, stable across restarts (its search index's
    /// progress is kept under it); letters, digits, `_` and `-`, at most 32.
    #[arg(long, env = "CHAT_NODE")]
    pub node: Option<String>,
    /// Secret that signs session tokens [default: generated once, kept in <data_dir>/jwt-secret].
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Token a Prometheus scraper sends (`Authorization: Bearer …`) to read `/metrics`; at
    /// least 16 characters [default: none, and `/metrics` is off].
    #[arg(long, env = "CHAT_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// How long a sign-in lasts, in hours [default: 720 (30 days)].
    #[arg(long, env = "CHAT_SESSION_TTL_HOURS")]
    pub session_ttl_hours: Option<u64>,
    /// The origin browsers load the app from, e.g. `https://chat.example.com`; WebSocket
    /// upgrades from any other origin are refused. Also marks the session cookie `Secure`
    /// when it is https [default: the origin of the request's own Host header].
    #[arg(long, env = "CHAT_PUBLIC_ORIGIN", global = true)]
    pub public_origin: Option<String>,
    /// Messages per second each user may send (bursts of three seconds' worth) [default: 20].
    #[arg(long, env = "CHAT_SEND_RATE")]
    pub send_rate: Option<u32>,
    /// Memory for the storage engine's cache of file blocks, in MiB (at least 16); more keeps
    /// more of a large database's history in memory [default: 256].
    #[arg(long, env = "CHAT_DB_CACHE_MB")]
    pub db_cache_mb: Option<u64>,
    /// Connections (HTTP and WebSocket) one client address may hold open [default: 256].
    #[arg(long, env = "CHAT_CONNECTIONS_PER_ADDRESS")]
    pub connections_per_address: Option<usize>,
    /// WebSockets one user may hold open at once [default: 32].
    #[arg(long, env = "CHAT_SOCKETS_PER_USER")]
    pub sockets_per_user: Option<usize>,
    /// Seconds a connection may take to send a request's headers (also the keep-alive idle
    /// timeout), and a request its body [default: 15].
    #[arg(long, env = "CHAT_HTTP_TIMEOUT_SECS")]
    pub http_timeout_secs: Option<u64>,
    /// Failed sign-ins to one account from one address per 15 minutes [default: 5].
    #[arg(long, env = "CHAT_SIGN_IN_FAILURES")]
    pub sign_in_failures: Option<usize>,
    /// Failed sign-ins to one account from all addresses per 15 minutes, after which only
    /// addresses that signed in to it before may try [default: 20].
    #[arg(long, env = "CHAT_SIGN_IN_FAILURES_PER_ACCOUNT")]
    pub sign_in_failures_per_account: Option<usize>,
    /// Accounts one address may create per hour [default: 30].
    #[arg(long, env = "CHAT_SIGN_UPS_PER_HOUR")]
    pub sign_ups_per_hour: Option<u32>,
    /// Who may create an account: open, invite (with a link from `server invite`) or
    /// closed (`server user create` only) [default: open].
    #[arg(long, env = "CHAT_SIGN_UP", value_enum)]
    pub sign_up: Option<SignUpMode>,
    /// Passwords hashed or checked at once, 19 MiB each [default: the number of cores].
    #[arg(long, env = "CHAT_PASSWORD_HASHES_AT_ONCE")]
    pub password_hashes_at_once: Option<usize>,
    /// Rooms one user may create per hour, in bursts of five [default: 20].
    #[arg(long, env = "CHAT_ROOMS_PER_HOUR")]
    pub rooms_per_hour: Option<u32>,
    /// Rooms one user may own [default: 50].
    #[arg(long, env = "CHAT_ROOMS_OWNED")]
    pub rooms_owned: Option<usize>,
    /// Largest file one upload may have, in MiB [default: 25].
    #[arg(long, env = "CHAT_FILE_MAX_MB")]
    pub file_max_mb: Option<u64>,
    /// Files one user may have stored, in MiB [default: 1024].
    #[arg(long, env = "CHAT_FILE_QUOTA_MB")]
    pub file_quota_mb: Option<u64>,
    /// Log filter in `tracing` EnvFilter syntax, e.g. `info` or `server=debug,info` [default: info,surrealdb=warn,surrealkv=warn].
    #[arg(long, env = "CHAT_LOG")]
    pub log: Option<String>,
}

/// The settings file's shape: the same keys as the flags, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    addr: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    storage: Option<StorageKind>,
    db_url: Option<String>,
    db_namespace: Option<String>,
    db_database: Option<String>,
    db_user: Option<String>,
    db_password: Option<String>,
    log: Option<String>,
    nats_url: Option<String>,
    node: Option<String>,
    jwt_secret: Option<String>,
    metrics_token: Option<String>,
    session_ttl_hours: Option<u64>,
    public_origin: Option<String>,
    send_rate: Option<u32>,
    db_cache_mb: Option<u64>,
    connections_per_address: Option<usize>,
    sockets_per_user: Option<usize>,
    http_timeout_secs: Option<u64>,
    sign_in_failures: Option<usize>,
    sign_in_failures_per_account: Option<usize>,
    sign_ups_per_hour: Option<u32>,
    sign_up: Option<SignUpMode>,
    password_hashes_at_once: Option<usize>,
    rooms_per_hour: Option<u32>,
    rooms_owned: Option<usize>,
    file_max_mb: Option<u64>,
    file_quota_mb: Option<u64>,
}

/// Fully resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub storage: StorageKind,
    /// The SurrealDB server, when `storage` is remote.
    pub remote: Option<RemoteDb>,
    pub log: String,
    /// `None`: a single node, no bus.
    pub cluster: Option<ClusterSettings>,
    /// `None`: generated and kept in the data directory.
    pub jwt_secret: Option<Secret>,
    /// `None`: `/metrics` is off.
    pub metrics_token: Option<Secret>,
    pub session_ttl: std::time::Duration,
    /// `None`: same origin as the request's Host header.
    pub public_origin: Option<String>,
    /// Messages per second per user.
    pub send_rate: u32,
    /// The storage engine's block cache, in bytes.
    pub db_cache_bytes: u64,
    pub sign_up: SignUpMode,
    pub limits: Limits,
}

/// This node's place in a cluster (see [`crate::bus`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `nats://host:port`.
    pub nats_url: String,
    /// Unique among the nodes, stable across restarts.
    pub node: String,
}

impl ClusterSettings {
    /// A node's cluster settings from its NATS URL and its name: both, or neither (a single
    /// node). One without the other is refused: a node that named itself but has no bus
    /// would run as the only writer of a database other nodes share.
    fn from_parts(
        nats_url: Option<String>,
        node: Option<String>,
    ) -> Result<Option<Self>, SettingsError> {
        let (nats_url, node) = match (nats_url, node) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(SettingsError::Cluster(
                    "nats_url needs node (CHAT_NODE), this node's name".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(SettingsError::Cluster(
                    "node needs nats_url (CHAT_NATS_URL), the cluster's NATS server".into(),
                ))
            }
            (Some(nats_url), Some(node)) => (nats_url, node),
        };
        if !nats_url.starts_with("nats://") {
            return Err(SettingsError::Cluster(format!(
                "nats_url must be nats://host:port (got {nats_url:?})"
            )));
        }
        if !is_node_name(&node) {
            return Err(SettingsError::Cluster(format!(
                "node {node:?} must be 1 to 32 letters, digits, _ or -"
            )));
        }
        Ok(Some(ClusterSettings { nats_url, node }))
    }
}

/// Whether `name` can name a node: 1 to 32 ASCII letters, digits, `_` or `-` (it goes into
/// bus subjects and table names).
pub fn is_node_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A secret string that never shows in logs or `Debug` output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid settings file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid LEPTOS_SITE_ADDR {0:?}")]
    SiteAddr(String),
    #[error("db_cache_mb must be at least {MIN_DB_CACHE_MB} (got {0})")]
    DbCache(u64),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("storage = \"remote\" {0}")]
    Remote(String),
    #[error("metrics_token must be at least {MIN_METRICS_TOKEN} characters (got {0})")]
    MetricsToken(usize),
    #[error("cluster: {0}")]
    Cluster(String),
}

impl Settings {
    /// Reads the file named by the flags (if any) and resolves every setting.
    pub fn load(mut cli: Cli) -> Result<Self, SettingsError> {
        let mut file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let site_addr = match std::env::var("LEPTOS_SITE_ADDR") {
            Ok(s) => Some(s.parse().map_err(|_| SettingsError::SiteAddr(s))?),
            Err(_) => None,
        };
        let cluster = ClusterSettings::from_parts(
            cli.nats_url.take().or(file.nats_url.take()),
            cli.node.take().or(file.node.take()),
        )?;
        let settings = Self {
            cluster,
            ..Self::resolve(cli, file, site_addr)
        };
        if settings.db_cache_bytes < MIN_DB_CACHE_MB << 20 {
            return Err(SettingsError::DbCache(settings.db_cache_bytes >> 20));
        }
        if settings.storage == StorageKind::Remote {
            let Some(remote) = &settings.remote else {
                return Err(SettingsError::Remote(
                    "needs db_url (ws://host:port), db_user and db_password".into(),
                ));
            };
            if !remote.url.starts_with("ws://") {
                return Err(SettingsError::Remote(format!(
                    "db_url must be ws://host:port (got {:?})",
                    remote.url
                )));
            }
            for name in [&remote.namespace, &remote.database] {
                if !crate::db::is_identifier(name) {
                    return Err(SettingsError::Remote(format!(
                        "{name:?} is not a namespace or database name this server uses (a letter, then letters, digits and _)"
                    )));
                }
            }
        }
        if settings.cluster.is_some() && settings.storage != StorageKind::Remote {
            return Err(SettingsError::Cluster(
                "nodes share their storage: set db_url (storage = \"remote\")".into(),
            ));
        }
        if let Some(token) = &settings.metrics_token {
            let length = token.expose().chars().count();
            if length < MIN_METRICS_TOKEN {
                return Err(SettingsError::MetricsToken(length));
            }
        }
        let l = settings.limits;
        for (name, value) in [
            ("connections_per_address", l.connections_per_address as u64),
            ("sockets_per_user", l.sockets_per_user as u64),
            ("http_timeout_secs", l.http_timeout.as_secs()),
            ("sign_in_failures", l.sign_in_failures as u64),
            (
                "sign_in_failures_per_account",
                l.sign_in_failures_per_account as u64,
            ),
            ("sign_ups_per_hour", u64::from(l.sign_ups_per_hour)),
            ("password_hashes_at_once", l.password_hashes_at_once as u64),
            ("rooms_per_hour", u64::from(l.rooms_per_hour)),
            ("rooms_owned", l.rooms_owned as u64),
            ("file_max_mb", l.file_max_bytes),
            ("file_quota_mb", l.file_quota_bytes),
        ] {
            if value == 0 {
                return Err(SettingsError::Zero(name));
            }
        }
        Ok(settings)
    }

    fn resolve(cli: Cli, file: FileSettings, site_addr: Option<SocketAddr>) -> Self {
        Settings {
            addr: cli
                .addr
                .or(file.addr)
                .or(site_addr)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000))),
            data_dir: cli
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("data")),
            storage: cli.storage.or(file.storage).unwrap_or(
                if cli.db_url.is_some() || file.db_url.is_some() {
                    StorageKind::Remote
                } else {
                    StorageKind::Disk
                },
            ),
            remote: match (
                cli.db_url.or(file.db_url),
                cli.db_user.or(file.db_user),
                cli.db_password.or(file.db_password),
            ) {
                (Some(url), Some(username), Some(password)) => Some(RemoteDb {
                    url,
                    namespace: cli
                        .db_namespace
                        .or(file.db_namespace)
                        .unwrap_or_else(|| DEFAULT_DB_NAME.into()),
                    database: cli
                        .db_database
                        .or(file.db_database)
                        .unwrap_or_else(|| DEFAULT_DB_NAME.into()),
                    username,
                    password: Secret(password),
                }),
                _ => None,
            },
            log: cli.log.or(file.log).unwrap_or_else(|| DEFAULT_LOG.into()),
            // Checked as a pair by `load` (see `ClusterSettings::from_parts`).
            cluster: None,
            jwt_secret: cli.jwt_secret.or(file.jwt_secret).map(Secret),
            metrics_token: cli.metrics_token.or(file.metrics_token).map(Secret),
            session_ttl: std::time::Duration::from_secs(
                3600 * cli
                    .session_ttl_hours
                    .or(file.session_ttl_hours)
                    .unwrap_or(DEFAULT_SESSION_TTL_HOURS),
            ),
            public_origin: cli
                .public_origin
                .or(file.public_origin)
                .map(|o| o.trim_end_matches('/').to_owned()),
            send_rate: cli
                .send_rate
                .or(file.send_rate)
                .unwrap_or(DEFAULT_SEND_RATE),
            db_cache_bytes: cli
                .db_cache_mb
                .or(file.db_cache_mb)
                .unwrap_or(DEFAULT_DB_CACHE_MB)
                .saturating_mul(1 << 20),
            sign_up: cli.sign_up.or(file.sign_up).unwrap_or_default(),
            limits: {
                let d = Limits::default();
                Limits {
                    connections_per_address: cli
                        .connections_per_address
                        .or(file.connections_per_address)
                        .unwrap_or(d.connections_per_address),
                    sockets_per_user: cli
                        .sockets_per_user
                        .or(file.sockets_per_user)
                        .unwrap_or(d.sockets_per_user),
                    http_timeout: cli
                        .http_timeout_secs
                        .or(file.http_timeout_secs)
                        .map_or(d.http_timeout, std::time::Duration::from_secs),
                    sign_in_failures: cli
                        .sign_in_failures
                        .or(file.sign_in_failures)
                        .unwrap_or(d.sign_in_failures),
                    sign_in_failures_per_account: cli
                        .sign_in_failures_per_account
                        .or(file.sign_in_failures_per_account)
                        .unwrap_or(d.sign_in_failures_per_account),
                    sign_ups_per_hour: cli
                        .sign_ups_per_hour
                        .or(file.sign_ups_per_hour)
                        .unwrap_or(d.sign_ups_per_hour),
                    password_hashes_at_once: cli
                        .password_hashes_at_once
                        .or(file.password_hashes_at_once)
                        .unwrap_or(d.password_hashes_at_once),
                    rooms_per_hour: cli
                        .rooms_per_hour
                        .or(file.rooms_per_hour)
                        .unwrap_or(d.rooms_per_hour),
                    rooms_owned: cli
                        .rooms_owned
                        .or(file.rooms_owned)
                        .unwrap_or(d.rooms_owned),
                    file_max_bytes: cli
                        .file_max_mb
                        .or(file.file_max_mb)
                        .map_or(d.file_max_bytes, |mb| mb.saturating_mul(1 << 20)),
                    file_quota_bytes: cli
                        .file_quota_mb
                        .or(file.file_quota_mb)
                        .map_or(d.file_quota_bytes, |mb| mb.saturating_mul(1 << 20)),
                }
            },
        }
    }

    /// In-memory storage on an ephemeral loopback port: what integration tests start.
    pub fn for_tests() -> Self {
        Settings {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: PathBuf::from("unused-in-memory"),
            storage: StorageKind::Memory,
            remote: None,
            log: "warn".into(),
            cluster: None,
            jwt_secret: None,
            metrics_token: None,
            session_ttl: std::time::Duration::from_secs(3600 * DEFAULT_SESSION_TTL_HOURS),
            public_origin: None,
            // Tests pour messages in; the rate limit has a test of its own.
            send_rate: 100_000,
            db_cache_bytes: DEFAULT_DB_CACHE_MB << 20,
            sign_up: SignUpMode::Open,
            // Tests open many connections and accounts from one address, quickly; the
            // limits have tests of their own.
            limits: Limits {
                connections_per_address: 100_000,
                sign_ups_per_hour: 1_000_000,
                rooms_per_hour: 1_000_000,
                rooms_owned: 100_000,
                ..Limits::default()
            },
        }
    }
}

fn read_file(path: &Path) -> Result<FileSettings, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| SettingsError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn file(text: &str) -> FileSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::resolve(Cli::default(), FileSettings::default(), None);
        assert_eq!(s.addr, addr("127.0.0.1:3000"));
        assert_eq!(s.data_dir, PathBuf::from("data"));
        assert_eq!(s.storage, StorageKind::Disk);
        assert_eq!(s.log, DEFAULT_LOG);
        assert_eq!(s.db_cache_bytes, 256 << 20);
        assert_eq!(s.limits, Limits::default());
    }

    #[test]
    fn limits_come_from_the_file_and_cannot_be_zero() {
        let s = Settings::resolve(
            Cli::default(),
            file("connections_per_address = 1000\nhttp_timeout_secs = 30\nrooms_owned = 5"),
            None,
        );
        assert_eq!(s.limits.connections_per_address, 1000);
        assert_eq!(s.limits.http_timeout, std::time::Duration::from_secs(30));
        assert_eq!(s.limits.rooms_owned, 5);
        let cli = Cli {
            sign_ups_per_hour: Some(0),
            ..Cli::default()
        };
        assert!(matches!(
            Settings::load(cli),
            Err(SettingsError::Zero("sign_ups_per_hour"))
        ));
    }

    #[test]
    fn a_database_url_means_remote_storage_and_needs_its_credentials() {
        let s = Settings::resolve(
            Cli::default(),
            file("db_url = \"ws://127.0.0.1:8000\"\ndb_user = \"root\"\ndb_password = \"pw\""),
            None,
        );
        assert_eq!(s.storage, StorageKind::Remote);
        let remote = s.remote.as_ref().unwrap();
        assert_eq!(
            (remote.namespace.as_str(), remote.database.as_str()),
            ("chat", "chat")
        );
        assert_eq!(format!("{:?}", remote.password), "Secret(***)");
        let load = |cli: Cli| Settings::load(cli).map(|s| s.storage);
        let remote = |url: &str, database: &str| Cli {
            db_url: Some(url.into()),
            db_user: Some("root".into()),
            db_password: Some("pw".into()),
            db_database: Some(database.into()),
            ..Cli::default()
        };
        assert!(matches!(
            load(remote("ws://127.0.0.1:8000", "chat_2")),
            Ok(StorageKind::Remote)
        ));
        for (cli, why) in [
            (remote("http://127.0.0.1:8000", "chat"), "ws://"),
            (
                remote("ws://127.0.0.1:8000", "chat; REMOVE DATABASE x"),
                "not a namespace",
            ),
            (remote("ws://127.0.0.1:8000", "9lives"), "not a namespace"),
            (
                Cli {
                    storage: Some(StorageKind::Remote),
                    ..Cli::default()
                },
                "needs db_url",
            ),
            (
                Cli {
                    db_user: None,
                    ..remote("ws://127.0.0.1:8000", "chat")
                },
                "needs db_url",
            ),
        ] {
            let e = load(cli).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn a_cluster_node_needs_its_name_a_nats_url_and_shared_storage() {
        let node = |nats: Option<&str>, name: Option<&str>, db: bool| Cli {
            nats_url: nats.map(Into::into),
            node: name.map(Into::into),
            db_url: db.then(|| "ws://127.0.0.1:8000".into()),
            db_user: db.then(|| "root".into()),
            db_password: db.then(|| "pw".into()),
            ..Cli::default()
        };
        let s = Settings::load(node(Some("nats://127.0.0.1:4222"), Some("chat-1"), true)).unwrap();
        assert_eq!(
            s.cluster,
            Some(ClusterSettings {
                nats_url: "nats://127.0.0.1:4222".into(),
                node: "chat-1".into()
            })
        );
        assert!(Settings::load(node(None, None, true))
            .unwrap()
            .cluster
            .is_none());
        for (cli, says) in [
            (
                node(Some("nats://127.0.0.1:4222"), None, true),
                "needs node",
            ),
            (node(None, Some("chat-1"), true), "needs nats_url"),
            (
                node(Some("nats://127.0.0.1:4222"), Some("chat-1"), false),
                "db_url",
            ),
            (
                node(Some("http://127.0.0.1:4222"), Some("chat-1"), true),
                "nats://",
            ),
            (
                node(Some("nats://127.0.0.1:4222"), Some("a b"), true),
                "letters",
            ),
            (
                node(Some("nats://127.0.0.1:4222"), Some(&"n".repeat(33)), true),
                "letters",
            ),
        ] {
            match Settings::load(cli) {
                Err(SettingsError::Cluster(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("expected a cluster error saying {says}, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_cluster_pair_may_come_from_the_file_and_a_flag_beats_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.toml");
        std::fs::write(
            &path,
            "nats_url = \"nats://10.0.0.1:4222\"\nnode = \"from-file\"\n\
             db_url = \"ws://127.0.0.1:8000\"\ndb_user = \"root\"\ndb_password = \"pw\"",
        )
        .unwrap();
        let with = |node: Option<&str>| Cli {
            config: Some(path.clone()),
            node: node.map(Into::into),
            ..Cli::default()
        };
        let s = Settings::load(with(None)).unwrap();
        assert_eq!(
            s.cluster,
            Some(ClusterSettings {
                nats_url: "nats://10.0.0.1:4222".into(),
                node: "from-file".into()
            })
        );
        let s = Settings::load(with(Some("from-flag"))).unwrap();
        assert_eq!(s.cluster.map(|c| c.node).as_deref(), Some("from-flag"));
    }

    #[test]
    fn a_metrics_token_comes_from_the_file_and_must_not_be_short() {
        let s = Settings::resolve(Cli::default(), FileSettings::default(), None);
        assert!(s.metrics_token.is_none());
        let s = Settings::resolve(
            Cli::default(),
            file("metrics_token = \"0123456789abcdef\""),
            None,
        );
        assert_eq!(
            s.metrics_token.as_ref().map(Secret::expose),
            Some("0123456789abcdef")
        );
        assert_eq!(format!("{:?}", s.metrics_token), "Some(Secret(***))");
        let cli = Cli {
            metrics_token: Some("short".into()),
            ..Cli::default()
        };
        assert!(matches!(
            Settings::load(cli),
            Err(SettingsError::MetricsToken(5))
        ));
    }

    #[test]
    fn the_data_directory_may_follow_a_subcommand() {
        for args in [
            ["server", "restore", "/b", "--data-dir", "/d"],
            ["server", "--data-dir", "/d", "restore", "/b"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert_eq!(cli.data_dir, Some(PathBuf::from("/d")), "{args:?}");
            assert!(matches!(
                cli.command,
                Some(crate::admin::cli::Command::Restore { .. })
            ));
        }
    }

    #[test]
    fn sign_up_is_open_unless_the_file_or_a_flag_says_otherwise() {
        let s = Settings::resolve(Cli::default(), FileSettings::default(), None);
        assert_eq!(s.sign_up, SignUpMode::Open);
        let s = Settings::resolve(Cli::default(), file("sign_up = \"invite\""), None);
        assert_eq!(s.sign_up, SignUpMode::Invite);
        let cli = Cli {
            sign_up: Some(SignUpMode::Closed),
            ..Cli::default()
        };
        let s = Settings::resolve(cli, file("sign_up = \"invite\""), None);
        assert_eq!(s.sign_up, SignUpMode::Closed);
        assert!(toml::from_str::<FileSettings>("sign_up = \"maybe\"").is_err());
    }

    #[test]
    fn the_database_cache_is_set_in_mib_and_has_a_floor() {
        let s = Settings::resolve(Cli::default(), file("db_cache_mb = 1024"), None);
        assert_eq!(s.db_cache_bytes, 1 << 30);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.toml");
        std::fs::write(&path, "db_cache_mb = 8").unwrap();
        let cli = Cli {
            config: Some(path),
            ..Cli::default()
        };
        assert!(matches!(
            Settings::load(cli),
            Err(SettingsError::DbCache(8))
        ));
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_cargo_leptos() {
        let f = file("addr = \"127.0.0.1:4000\"\ndata_dir = \"/srv/chat\"\nstorage = \"memory\"");
        let cli = Cli {
            addr: Some(addr("127.0.0.1:5000")),
            ..Cli::default()
        };
        let s = Settings::resolve(cli, f, Some(addr("127.0.0.1:3000")));
        assert_eq!(s.addr, addr("127.0.0.1:5000"));
        assert_eq!(s.data_dir, PathBuf::from("/srv/chat"));
        assert_eq!(s.storage, StorageKind::Memory);

        let s = Settings::resolve(
            Cli::default(),
            file("addr = \"127.0.0.1:4000\""),
            Some(addr("127.0.0.1:3000")),
        );
        assert_eq!(s.addr, addr("127.0.0.1:4000"));
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        assert!(toml::from_str::<FileSettings>("adress = \"x\"").is_err());
        assert!(toml::from_str::<FileSettings>("storage = \"floppy\"").is_err());
    }

    #[test]
    fn environment_variables_feed_the_flags() {
        // clap reads CHAT_* through `env = ...`; check the names once, without touching the
        // process environment (tests run in parallel).
        let cmd = <Cli as clap::CommandFactory>::command();
        let envs: Vec<_> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            envs,
            [
                "CHAT_CONFIG",
                "CHAT_ADDR",
                "CHAT_DATA_DIR",
                "CHAT_STORAGE",
                "CHAT_DB_URL",
                "CHAT_DB_NAMESPACE",
                "CHAT_DB_DATABASE",
                "CHAT_DB_USER",
                "CHAT_DB_PASSWORD",
                "CHAT_NATS_URL",
                "CHAT_NODE",
                "CHAT_JWT_SECRET",
                "CHAT_METRICS_TOKEN",
                "CHAT_SESSION_TTL_HOURS",
                "CHAT_PUBLIC_ORIGIN",
                "CHAT_SEND_RATE",
                "CHAT_DB_CACHE_MB",
                "CHAT_CONNECTIONS_PER_ADDRESS",
                "CHAT_SOCKETS_PER_USER",
                "CHAT_HTTP_TIMEOUT_SECS",
                "CHAT_SIGN_IN_FAILURES",
                "CHAT_SIGN_IN_FAILURES_PER_ACCOUNT",
                "CHAT_SIGN_UPS_PER_HOUR",
                "CHAT_SIGN_UP",
                "CHAT_PASSWORD_HASHES_AT_ONCE",
                "CHAT_ROOMS_PER_HOUR",
                "CHAT_ROOMS_OWNED",
                "CHAT_FILE_MAX_MB",
                "CHAT_FILE_QUOTA_MB",
                "CHAT_LOG"
            ]
        );
    }
}
