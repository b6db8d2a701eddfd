//! The embedded SurrealDB handle: opened once at start-up from the settings, cheap to clone.
//!
//! Disk storage uses the SurrealKV engine (pure Rust, durable: one fsync per commit, with
//! concurrent commits grouped), opened with its memory capped; memory storage is for tests.
//! The schema is applied at every start and is idempotent.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};
use surrealdb::{
    engine::{
        local::{Db, Mem},
        remote::ws::{Client, Ws},
    },
    method::IntoVariables,
    opt::auth::Root,
    IndexedResults, Surreal,
};
use surrealdb_cnf::ConfigMap;
use surrealdb_core::kvs::Datastore;

use crate::search_index::{SearchIndex, SearchIndexError};

/// Where chats are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Embedded SurrealDB on disk (SurrealKV engine) under the data directory: durable.
    Disk,
    /// Embedded SurrealDB in memory: everything is lost at exit. For tests and demos.
    Memory,
    /// A SurrealDB server (`db_url`), which several chat servers can share. The data
    /// directory still holds this server's own state: its search index, uploaded files and
    /// its session-signing secret.
    Remote,
}

impl StorageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Disk => "disk",
            StorageKind::Memory => "memory",
            StorageKind::Remote => "remote",
        }
    }

    /// Whether the data directory is used (everything but memory storage).
    pub fn uses_data_dir(self) -> bool {
        self != StorageKind::Memory
    }
}

/// A SurrealDB server to store chats in.
#[derive(Debug, Clone)]
pub struct RemoteDb {
    /// `ws://host:port` (the SDK's WebSocket engine).
    pub url: String,
    pub namespace: String,
    pub database: String,
    /// A root user of that server.
    pub username: String,
    pub password: crate::settings::Secret,
}

/// The SurrealDB connection: the embedded engine, or a SurrealDB server. Both speak the
/// same queries; the SDK types them apart, so the few calls the store makes are passed on
/// here.
pub enum Conn {
    Local(Surreal<Db>),
    Remote(Surreal<Client>),
}

/// A query being built on a [`Conn`]: `bind` and `query` chain as on the SDK's, and it is
/// awaited the same way.
pub enum Query<'c> {
    Local(surrealdb::method::Query<'c, Db>),
    Remote(surrealdb::method::Query<'c, Client>),
}

impl Conn {
    pub fn query<'c>(&'c self, sql: impl Into<std::borrow::Cow<'c, str>>) -> Query<'c> {
        match self {
            Conn::Local(db) => Query::Local(db.query(sql)),
            Conn::Remote(db) => Query::Remote(db.query(sql)),
        }
    }

    /// Writes the whole database to `path` as SurrealQL statements.
    pub async fn export(&self, path: &Path) -> Result<(), surrealdb::Error> {
        match self {
            Conn::Local(db) => db.export(path).await,
            Conn::Remote(db) => db.export(path).await,
        }
    }

    /// Runs the SurrealQL statements in `path` (an [`Self::export`]).
    pub async fn import(&self, path: &Path) -> Result<(), surrealdb::Error> {
        match self {
            Conn::Local(db) => db.import(path).await,
            Conn::Remote(db) => db.import(path).await,
        }
    }

    async fn health(&self) -> Result<(), surrealdb::Error> {
        match self {
            Conn::Local(db) => db.health().await,
            Conn::Remote(db) => db.health().await,
        }
    }
}

impl<'c> Query<'c> {
    pub fn bind(self, vars: impl IntoVariables) -> Self {
        match self {
            Query::Local(q) => Query::Local(q.bind(vars)),
            Query::Remote(q) => Query::Remote(q.bind(vars)),
        }
    }

    pub fn query(self, sql: impl Into<std::borrow::Cow<'c, str>>) -> Self {
        match self {
            Query::Local(q) => Query::Local(q.query(sql)),
            Query::Remote(q) => Query::Remote(q.query(sql)),
        }
    }
}

impl<'c> std::future::IntoFuture for Query<'c> {
    type Output = Result<IndexedResults, surrealdb::Error>;
    type IntoFuture =
        std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send + 'c>>;

    fn into_future(self) -> Self::IntoFuture {
        match self {
            Query::Local(q) => q.into_future(),
            Query::Remote(q) => q.into_future(),
        }
    }
}

const NAMESPACE: &str = "chat";
const DATABASE: &str = "chat";

/// The storage engine's write buffer (memtable): what it holds in memory before writing a
/// sorted file. SurrealKV's default is 1 GiB on a machine with 16-64 GiB of RAM, allocated
/// and zeroed in one go, which took 3.5 s of CPU at each shutdown and would stall a commit
/// when it fills.
pub const MEMTABLE_BYTES: u64 = 64 << 20;
/// How long a health check waits for the database.
pub const CHECK_WITHIN: Duration = Duration::from_secs(5);

/// The storage engine's cache of file blocks by default (the `db_cache_mb` setting changes
/// it); SurrealKV's own default is half of RAM less 1 GiB.
pub const BLOCK_CACHE_BYTES: u64 = 256 << 20;

/// Cheap-to-clone handle to the embedded database.
///
/// The `Surreal` handle is shared behind an `Arc`, never cloned: in SurrealDB 3.3 every
/// clone of it opens a session of its own in the engine (about 8 KB, created and torn down
/// by the engine's one session task), which made every request and every socket pay for
/// sessions it never needed. Nothing here sets session variables, so one session serves all.
#[derive(Clone)]
pub struct Database {
    db: Arc<Conn>,
    /// The message search index beside it (`<data dir>/search` on disk).
    search: Arc<SearchIndex>,
    kind: StorageKind,
    /// The storage engine's lock file (disk only), held until its shutdown is complete.
    lock_file: Option<PathBuf>,
}

/// Set when [`Database::close`] lets go of the last handle, which starts the engine's own
/// shutdown (see [`engine_closing`]).
static ENGINE_CLOSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The line SurrealKV 0.21 logs when a handle to its tree is dropped on one of its own
/// threads, where its `Drop` finds no async runtime to close the tree on. The engine's own
/// shutdown (run by SurrealDB on a runtime task once the last handle is gone) stops its
/// commit thread, which drops such a handle, and then flushes and closes the tree itself;
/// `close` then sees the engine's file lock released. Logged at any other time, the line
/// would mean a tree left unclosed.
pub const ENGINE_THREAD_DROP_WARNING: &str = "No runtime available for closing the store correctly";

/// Whether this process has started its engine's shutdown: from then on
/// [`ENGINE_THREAD_DROP_WARNING`] is that shutdown stopping the engine's commit thread.
pub fn engine_closing() -> bool {
    ENGINE_CLOSING.load(std::sync::atomic::Ordering::Acquire)
}

/// A log layer that drops [`ENGINE_THREAD_DROP_WARNING`] during the engine's shutdown, and
/// only then: logged at any other time, it still shows.
pub struct ClosedEngineNoise;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ClosedEngineNoise {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        if !engine_closing() || *event.metadata().level() != tracing::Level::WARN {
            return true;
        }
        let mut message = Message(false);
        event.record(&mut message);
        !message.0
    }
}

/// Whether an event's message is [`ENGINE_THREAD_DROP_WARNING`].
struct Message(bool);

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = value == ENGINE_THREAD_DROP_WARNING;
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}") == ENGINE_THREAD_DROP_WARNING;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Surreal(#[from] surrealdb::Error),
    #[error("cannot open the storage engine: {0}")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot open the {0}")]
    Search(#[from] SearchIndexError),
    #[error("cannot reach the SurrealDB server at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<surrealdb::Error>,
    },
    #[error("storage = \"remote\" needs db_url (the SurrealDB server's ws://host:port address), db_user and db_password")]
    RemoteUnset,
    #[error("the database did not answer within {0:?}")]
    Unanswered(Duration),
    #[error("{0:?} is not a SurrealDB namespace or database name this server uses (letters, digits and _, starting with a letter)")]
    RemoteName(String),
}

/// Opens SurrealKV in `dir` as `surrealdb::engine::any::connect("surrealkv://...")` would,
/// but with its memory capped ([`MEMTABLE_BYTES`], `cache_bytes`): the SDK reads those
/// settings only from a datastore it is handed (`Surreal::unstable_from_datastore`, outside
/// SurrealDB's semver promise; the version is pinned in `Cargo.toml`). The steps after
/// building are the SDK's own (`surrealdb_engine_local::connect`): settle the storage
/// version before the maintenance tasks write anything.
async fn open_surrealkv(dir: &Path, cache_bytes: u64) -> anyhow::Result<Arc<Datastore>> {
    let config = ConfigMap::empty()
        .with_key_value("surrealkv_max_memtable_size", MEMTABLE_BYTES.to_string())
        .with_key_value("surrealkv_block_cache_capacity", cache_bytes.to_string());
    let datastore = Datastore::builder()
        .with_config(config)
        .without_maintenance_tasks()
        .build_with_path(&format!("surrealkv://{}", dir.display()))
        .await?;
    datastore.check_version().await?;
    datastore.bootstrap().await?;
    datastore.start_maintenance_tasks();
    Ok(datastore)
}

/// A namespace or database name written into a statement as is: a letter, then letters,
/// digits and `_`.
pub fn is_identifier(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The message search index in `<data_dir>/search`.
fn open_search(data_dir: &Path) -> Result<SearchIndex, DbError> {
    let dir = data_dir.join("search");
    private_dirs(data_dir, &dir).map_err(|source| DbError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    Ok(SearchIndex::open(Some(&dir))?)
}

/// Creates the data directory and the database's directory inside it, readable by this
/// user only (0700): they hold password hashes and every message. Directories that exist
/// with wider permissions are narrowed.
fn private_dirs(data_dir: &Path, db_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(db_dir)?;
    #[cfg(unix)]
    for dir in [data_dir, db_dir] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

impl Database {
    /// Opens (creating if needed) the database, with the default block cache.
    pub async fn open(kind: StorageKind, data_dir: &Path) -> Result<Self, DbError> {
        Self::open_with_cache(kind, data_dir, BLOCK_CACHE_BYTES).await
    }

    /// Opens the database the settings name: embedded, or on a SurrealDB server.
    pub async fn open_from(settings: &crate::settings::Settings) -> Result<Self, DbError> {
        match (settings.storage, &settings.remote) {
            (StorageKind::Remote, Some(remote)) => Self::connect(remote, &settings.data_dir).await,
            (kind, _) => {
                Self::open_with_cache(kind, &settings.data_dir, settings.db_cache_bytes).await
            }
        }
    }

    /// Opens (creating if needed) the database; on disk, with a block cache of `cache_bytes`.
    /// Remote storage is opened by [`Self::connect`].
    pub async fn open_with_cache(
        kind: StorageKind,
        data_dir: &Path,
        cache_bytes: u64,
    ) -> Result<Self, DbError> {
        let (db, lock_file, search) = match kind {
            StorageKind::Memory => (
                Surreal::new::<Mem>(()).await?,
                None,
                SearchIndex::open(None)?,
            ),
            StorageKind::Disk => {
                let dir = data_dir.join("db");
                private_dirs(data_dir, &dir).map_err(|source| DbError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
                let datastore = open_surrealkv(&dir, cache_bytes)
                    .await
                    .map_err(|e| DbError::Engine(e.into()))?;
                // Opened after the engine, whose lock keeps a second process out of both.
                let search = open_search(data_dir)?;
                (
                    Surreal::<Db>::unstable_from_datastore(datastore, None).await?,
                    Some(dir.join("LOCK")),
                    search,
                )
            }
            StorageKind::Remote => return Err(DbError::RemoteUnset),
        };
        db.use_ns(NAMESPACE).use_db(DATABASE).await?;
        Ok(Database {
            db: Arc::new(Conn::Local(db)),
            search: Arc::new(search),
            kind,
            lock_file,
        })
    }

    /// Connects to a SurrealDB server as its root user, creating the namespace and database
    /// if they do not exist; the search index is kept in `data_dir`.
    pub async fn connect(remote: &RemoteDb, data_dir: &Path) -> Result<Self, DbError> {
        let address = remote
            .url
            .strip_prefix("ws://")
            .unwrap_or(&remote.url)
            .trim_end_matches('/');
        let failed = |source| DbError::Connect {
            url: remote.url.clone(),
            source: Box::new(source),
        };
        let db = Surreal::new::<Ws>(address).await.map_err(failed)?;
        db.signin(Root {
            username: remote.username.clone(),
            password: remote.password.expose().to_owned(),
        })
        .await
        .map_err(failed)?;
        // A root user may create them. Their names are checked identifiers (the settings
        // refuse anything else), quoted so that a keyword is a name too: SurrealQL takes no
        // parameter there.
        for name in [&remote.namespace, &remote.database] {
            if !is_identifier(name) {
                return Err(DbError::RemoteName(name.clone()));
            }
        }
        define_once(&db, "NAMESPACE", &remote.namespace)
            .await
            .map_err(failed)?;
        db.use_ns(remote.namespace.as_str()).await.map_err(failed)?;
        define_once(&db, "DATABASE", &remote.database)
            .await
            .map_err(failed)?;
        db.use_db(remote.database.as_str()).await.map_err(failed)?;
        let search = open_search(data_dir)?;
        Ok(Database {
            db: Arc::new(Conn::Remote(db)),
            search: Arc::new(search),
            kind: StorageKind::Remote,
            lock_file: None,
        })
    }

    /// The underlying SurrealDB handle (shared, not cloned: see [`Database`]).
    pub fn handle(&self) -> Arc<Conn> {
        Arc::clone(&self.db)
    }

    /// The message search index (shared).
    pub fn search_index(&self) -> Arc<SearchIndex> {
        Arc::clone(&self.search)
    }

    /// Which engine this handle runs on.
    pub fn kind(&self) -> StorageKind {
        self.kind
    }

    /// Drops this handle and waits (at most `limit`) until the embedded engine has shut
    /// down: background tasks stopped, memtable flushed, files closed. `false` on timeout.
    ///
    /// SurrealDB 3.3 shuts its datastore down on a detached task once the last handle is
    /// gone, and offers nothing to await; a process that exits first cuts that shutdown short
    /// (and logs errors). Its storage engine holds an exclusive `flock` on `LOCK` until it
    /// is done, so being able to take that lock ourselves is the signal. Every other handle
    /// (the store's, the sockets') must be dropped before this is called.
    pub async fn close(self, limit: Duration) -> bool {
        let Database {
            db,
            lock_file,
            search,
            ..
        } = self;
        search.close();
        if Arc::strong_count(&db) == 1 {
            ENGINE_CLOSING.store(true, std::sync::atomic::Ordering::Release);
        }
        drop(db);
        let Some(path) = lock_file else {
            return true;
        };
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(file) = std::fs::File::open(&path) {
                if file.try_lock().is_ok() {
                    let _ = file.unlock();
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Succeeds when the datastore answers a query within [`CHECK_WITHIN`]. (A SurrealDB
    /// server that went away is waited for by the SDK, which reconnects when it is back:
    /// without a limit, `/healthz` would hang as long.)
    pub async fn check(&self) -> Result<(), DbError> {
        let answered = tokio::time::timeout(CHECK_WITHIN, async {
            self.db.health().await?;
            self.db.query("RETURN 1").await?.check()?;
            Ok::<(), surrealdb::Error>(())
        })
        .await;
        match answered {
            Ok(result) => Ok(result?),
            Err(_) => Err(DbError::Unanswered(CHECK_WITHIN)),
        }
    }
}

/// Whether the engine refused a transaction because a concurrent one wrote the same
/// records (it may be run again and will see the other's outcome): as the query layer
/// reports it, or as the key-value layer words it (a SurrealDB server returns some
/// conflicts that way, with no detail to match).
pub fn is_conflict(e: &surrealdb::Error) -> bool {
    e.query_details() == Some(&surrealdb::types::QueryError::TransactionConflict)
        || e.to_string().contains("This transaction can be retried")
}

/// Tries at defining the namespace or the database while other nodes define it too.
const DEFINE_TRIES: u32 = 10;

/// `DEFINE <what> IF NOT EXISTS <name>`, again after a pause while it meets the same
/// definition by a node starting at the same moment. `name` is a checked identifier,
/// quoted so that a keyword is a name too (SurrealQL takes no parameter there).
async fn define_once(db: &Surreal<Client>, what: &str, name: &str) -> Result<(), surrealdb::Error> {
    let sql = format!("DEFINE {what} IF NOT EXISTS `{name}`;");
    let mut pause = Duration::from_millis(20);
    for _ in 1..DEFINE_TRIES {
        match db.query(sql.as_str()).await.and_then(|r| r.check()) {
            Err(e) if is_conflict(&e) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            done => return done.map(|_| ()),
        }
    }
    db.query(sql).await.and_then(|r| r.check()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_name_a_namespace_or_database() {
        for ok in ["chat", "chat_2", "Chat"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            "2chat",
            "_chat",
            "chat-2",
            "chat; REMOVE NAMESPACE chat",
            "chät",
        ] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_server_that_does_not_answer_is_a_clear_error() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let remote = RemoteDb {
            url: format!("ws://127.0.0.1:{port}"),
            namespace: "chat".into(),
            database: "chat".into(),
            username: "root".into(),
            password: crate::settings::Secret::new("pw"),
        };
        let dir = tempfile::tempdir().unwrap();
        let e = tokio::time::timeout(
            Duration::from_secs(30),
            Database::connect(&remote, dir.path()),
        )
        .await
        .expect("refused at once, not hanging")
        .err()
        .expect("no database there");
        assert!(matches!(e, DbError::Connect { .. }), "{e}");
        assert!(e.to_string().contains(&remote.url), "{e}");
    }
}
