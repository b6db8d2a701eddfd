//! The chat server as a library, so that `main` stays thin and tests can start the real thing.
//!
//! # Layout
//! Dependencies point one way: transport -> chat service -> writer -> {hub, store} -> db.
//! - [`ws`] — the `/ws` endpoint: upgrade checks, one handler task per socket (reading,
//!   writing, closing); [`ws::delivery`] is the pure per-socket order cursor.
//! - [`auth`] — sign-up/in/out endpoints and the [`auth::Session`] extractor (cookie or
//!   Bearer token); [`throttle`] slows password guessing; [`account`] — one's own
//!   signed-in devices and password.
//! - [`chat`] — the chat service: every use-case a frame can ask for, as a method, with the
//!   per-user send limit; [`refusal`] is what a client is told when one is refused.
//! - [`writer`] — group commit: sends numbered, stored in batches, acked, fanned out; it
//!   starts and stops `indexer`, the search index's low-priority thread.
//! - [`hub`] — live sockets, presence and fan-out: the only way an event reaches a socket.
//! - [`store`] — `SurrealChatStore`: the schema and everything stored, one file per
//!   concern, with each conversation's head in memory ahead of the database.
//! - [`db`] — opening the embedded SurrealDB engine (its storage kinds, its memory caps).
//! - [`settings`] — layered configuration (defaults, TOML file, `CHAT_*` env, flags).
//! - [`files`] — uploaded files: stored by content hash, images inspected and given
//!   thumbnails, served to the conversation's members only (`/api/files`).
//! - [`admin`] — the administration subcommands (accounts, backup and restore, a person's
//!   export), carried out in the running server over a Unix socket or over the data
//!   directory when none runs.
//! - [`health`] — `/healthz`; [`telemetry`] — `/metrics` (behind a token) and the
//!   handles the writer records commits with; [`security`] — security headers, the pages' CSP, the
//!   same-origin checks.
//! - `clock` (the wall clock as stored), `locks` (std mutexes that survive a panic) and
//!   `priority` (background threads at the lowest CPU priority): leaves every module may use.
//! - [`Application`]: opens the database, binds the listener, wires the routes (Leptos
//!   pages, `/ws`, `/healthz`, `/metrics`, `/api/auth/*`, static files), runs until told
//!   to stop.
//!
//! # The path of one message
//! 1. A `send` frame arrives on a socket; [`ws`] decodes it (`app::protocol::ClientMsg`)
//!    and calls [`chat::ChatService::submit`], which checks membership and the send rate.
//! 2. The submission is queued for the [`writer`] that owns its conversation; the socket
//!    reads on (and keeps forwarding its outbox while that queue is full).
//! 3. The writer numbers everything queued from each conversation's head
//!    ([`store::heads`]), stores the batch in one transaction (messages and their
//!    `client_msg` records: one sync), then applies it to the heads.
//! 4. The writer pushes each message to every member's sockets through the [`hub`] and the
//!    ack to the sender's socket, in `seq` order.
//! 5. Each socket's [`ws::delivery`] cursor lets the message through, skips a copy the
//!    client already has, or fills a gap from the store first; then the frame is written.
//! 6. Within a second, the conversation's `last_*` fields and the sender's read position
//!    reach the database ([`store`]'s deferred writes).

pub mod account;
pub mod admin;
pub mod auth;
pub mod bus;
pub mod changes;
pub mod chat;
mod clock;
pub mod db;
pub mod files;
pub mod health;
pub mod hub;
pub mod indexer;
pub mod listen;
mod locks;
pub mod outbox;
mod priority;
pub mod profile;
pub mod refusal;
pub mod search_index;
pub mod security;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod writer;
pub mod ws;

use axum::{
    extract::FromRef,
    routing::{delete, get, post},
    Router,
};
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::{future::Future, net::SocketAddr, time::Duration};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::{timeout::RequestBodyTimeoutLayer, trace::TraceLayer};
use tracing::{info, warn};

use crate::{db::Database, settings::Settings, store::SurrealChatStore};
pub use clock::now_ms;

/// How long shutdown lets HTTP requests in flight finish before closing their connections.
const HTTP_DRAIN_GRACE: Duration = Duration::from_secs(3);
/// How long shutdown waits for sockets to say goodbye before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long shutdown waits for the database to flush and close.
const DB_CLOSE_GRACE: Duration = Duration::from_secs(10);
/// How often idle users' send budgets are forgotten.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// The router's state: each handler takes only the part it uses (`FromRef`).
#[derive(Clone)]
pub struct AppState {
    leptos: LeptosOptions,
    auth: auth::AuthState,
    sockets: ws::Sockets,
    health: health::HealthState,
    files: files::FileStore,
    metrics: telemetry::MetricsState,
}

impl FromRef<AppState> for files::FileStore {
    fn from_ref(state: &AppState) -> Self {
        state.files.clone()
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl FromRef<AppState> for auth::AuthState {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for chat::ChatService {
    fn from_ref(state: &AppState) -> Self {
        state.sockets.chat.clone()
    }
}

impl FromRef<AppState> for ws::Sockets {
    fn from_ref(state: &AppState) -> Self {
        state.sockets.clone()
    }
}

impl FromRef<AppState> for telemetry::MetricsState {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

impl FromRef<AppState> for health::HealthState {
    fn from_ref(state: &AppState) -> Self {
        state.health.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot read or create the session-signing secret: {0}")]
    Secret(#[source] std::io::Error),
    #[error("invalid Leptos configuration: {0}")]
    Leptos(#[source] leptos::config::errors::LeptosConfigError),
    #[error("cannot start the thread that stores pending changes: {source}")]
    Writers { source: std::io::Error },
    #[error("cannot open the file store: {0}")]
    Files(#[source] std::io::Error),
    #[error("cannot join the cluster's bus: {0}")]
    Bus(#[source] bus::BusError),
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: listen::ConnectionLimits,
    db: Database,
    store: SurrealChatStore,
    chat: chat::ChatService,
    files: files::FileStore,
    sign_ups: std::sync::Arc<auth::SignUpLimit>,
    admin: admin::Admin,
    /// Its sign-outs close their sessions' sockets.
    auth: auth::AuthState,
    shutdown: CancellationToken,
    /// Socket tasks: shutdown waits for them.
    tasks: TaskTracker,
    /// The writer tasks: shutdown waits for them to drain.
    writer_tasks: TaskTracker,
    /// Cancelled once the sockets are closed: the writers store what is queued and end.
    writer_stop: CancellationToken,
    metrics: telemetry::MetricsState,
}

impl Application {
    /// Opens the database and binds the listener; nothing is served until [`Self::run`].
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let leptos = leptos_options()?;
        let db = Database::open_from(&settings).await?;
        let node = settings.cluster.as_ref().map(|c| c.node.as_str());
        let store = SurrealChatStore::new_for_node(&db, now_ms(), node).await?;
        info!(
            storage = settings.storage.as_str(),
            data_dir = %settings.data_dir.display(),
            boots = store.boots(),
            "database open"
        );
        let secret = auth::load_or_create_secret(
            settings.jwt_secret.as_ref().map(|s| s.expose()),
            settings
                .storage
                .uses_data_dir()
                .then_some(settings.data_dir.as_path()),
        )
        .map_err(StartError::Secret)?;
        let secure_cookie = settings
            .public_origin
            .as_deref()
            .is_some_and(|o| o.starts_with("https://"));
        let keys = auth::Keys::from_secret(&secret, settings.session_ttl, secure_cookie);
        let listener =
            TcpListener::bind(settings.addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: settings.addr,
                    source,
                })?;
        let files = files::FileStore::open(
            settings
                .storage
                .uses_data_dir()
                .then(|| settings.data_dir.join("files"))
                .as_deref(),
            store.clone(),
            settings.limits.file_max_bytes,
            settings.limits.file_quota_bytes,
        )
        .map_err(StartError::Files)?;
        let hub = hub::Hub::default();
        let registry = telemetry::Registry::new();
        let writer_tasks = TaskTracker::new();
        let writer_stop = CancellationToken::new();
        let writers = writer::Writers::start(
            &store,
            &hub,
            writer::WRITERS,
            &telemetry::CommitMetrics::register(&registry),
            &writer_tasks,
            &writer_stop,
        )
        .map_err(|source| StartError::Writers { source })?;
        let (bus, duties) = match (&settings.cluster, &settings.remote) {
            (Some(cluster), Some(remote)) => {
                let (bus, duties) = bus::Bus::start(
                    &cluster.nats_url,
                    &cluster.node,
                    format!("chat.{}.{}", remote.namespace, remote.database),
                    &hub,
                    &store,
                    &registry,
                    &writer_tasks,
                    &writer_stop,
                )
                .await
                .map_err(StartError::Bus)?;
                (Some(bus), Some(duties))
            }
            _ => (None, None),
        };
        let metrics = telemetry::MetricsState::new(
            &registry,
            settings.metrics_token.as_ref().map(|t| t.expose()),
            hub.clone(),
        );
        let chat = chat::ChatService::new(
            store.clone(),
            hub,
            writers,
            chat::UserLimits {
                send_rate: settings.send_rate,
                rooms_per_hour: settings.limits.rooms_per_hour,
                rooms_owned: settings.limits.rooms_owned,
            },
        );
        if let Some(bus::Duties {
            mut offline,
            catch_up,
        }) = duties
        {
            // The people of a node that went silent: their contacts are told they left.
            let announcing = chat.clone();
            writer_tasks.spawn(async move {
                while let Some(user) = offline.recv().await {
                    if !announcing.hub().is_online(&user) {
                        announcing.announce_presence(&user, false).await;
                    }
                }
            });
            let (chat, stop) = (chat.clone(), writer_stop.clone());
            writer_tasks.spawn(async move {
                loop {
                    tokio::select! {
                        repair = catch_up.wanted() => chat.catch_up(repair).await,
                        () = stop.cancelled() => break,
                    }
                }
            });
        }
        let auth = auth::AuthState {
            store: store.clone(),
            keys,
            throttle: throttle::SignInThrottle::new(
                settings.limits.sign_in_failures,
                settings.limits.sign_in_failures_per_account,
            ),
            sign_ups: std::sync::Arc::new(auth::SignUpLimit::new(
                settings.limits.sign_ups_per_hour,
            )),
            hashing: std::sync::Arc::new(tokio::sync::Semaphore::new(
                settings.limits.password_hashes_at_once,
            )),
            sessions_ended: tokio::sync::broadcast::channel(256).0,
            public_origin: settings.public_origin.clone(),
            sign_up: settings.sign_up,
        };
        let admin = admin::Admin {
            store: store.clone(),
            files: files.clone(),
            data_dir: settings
                .storage
                .uses_data_dir()
                .then(|| settings.data_dir.clone()),
            hashing: auth.hashing.clone(),
            sessions_ended: auth.sessions_ended.clone(),
            public_origin: settings.public_origin.clone(),
        };
        let sign_ups = auth.sign_ups.clone();
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let state = AppState {
            leptos,
            sockets: ws::Sockets {
                chat: chat.clone(),
                auth: auth.clone(),
                tasks: tasks.clone(),
                public_origin: settings.public_origin.clone(),
                per_user: settings.limits.sockets_per_user,
                frames_in: telemetry::frames_received(&registry),
                gap_fills: telemetry::gap_fills(&registry),
            },
            auth: auth.clone(),
            health: health::HealthState {
                bus,
                db: db.clone(),
                boots: store.boots(),
                store: store.clone(),
            },
            files: files.clone(),
            metrics: metrics.clone(),
        };
        let limits = listen::ConnectionLimits {
            per_address: settings.limits.connections_per_address,
            header_timeout: settings.limits.http_timeout,
        };
        Ok(Application {
            listener,
            router: router(state, settings.limits.http_timeout),
            limits,
            db,
            store,
            chat,
            files,
            sign_ups,
            admin,
            auth,
            shutdown,
            tasks,
            writer_tasks,
            writer_stop,
            metrics,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener always has a local address")
    }

    /// Serves until `shutdown` resolves, then closes every socket with "going away", lets
    /// in-flight requests finish, and waits (bounded) for socket tasks to end.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            listener,
            router,
            limits,
            db,
            store,
            chat,
            files,
            sign_ups,
            admin,
            auth,
            shutdown: token,
            tasks,
            writer_tasks,
            writer_stop,
            metrics,
        } = self;
        tokio::spawn({
            let token = token.clone();
            async move {
                shutdown.await;
                info!("shutting down");
                token.cancel();
            }
        });
        // Budgets (sends, sign-ups) of users and addresses that went quiet are forgotten,
        // so that they take memory only while people act.
        tokio::spawn({
            let (token, chat, sign_ups) = (token.clone(), chat.clone(), sign_ups);
            async move {
                let mut every = tokio::time::interval(FORGET_IDLE_EVERY);
                loop {
                    tokio::select! {
                        _ = every.tick() => {
                            chat.forget_idle_senders();
                            sign_ups.forget_idle();
                        }
                        () = token.cancelled() => break,
                    }
                }
            }
        });
        tokio::spawn(files.sweep_until(token.clone()));
        tokio::spawn(metrics.upkeep_until(token.clone()));
        // Before the first socket: sign-outs and the shutdown reach every socket from here.
        tokio::spawn(ws::close_when_told(chat.hub().clone(), auth, token.clone()));
        tokio::spawn(forget_expired_sessions(store.clone(), token.clone()));
        // The administration subcommands reach this server through its data directory.
        if let Some(dir) = admin.data_dir.clone() {
            match admin::socket::bind(&dir) {
                Ok(socket) => {
                    tasks.spawn(admin::socket::serve(socket, admin, dir, token.clone()));
                }
                Err(e) => {
                    warn!(error = %e, "no administration socket: the admin subcommands cannot reach this server")
                }
            }
        } else {
            drop(admin);
        }
        info!(addr = %listener.local_addr()?, "listening");
        // Requests in flight get HTTP_DRAIN_GRACE to finish; one that never completes (a
        // client that sent half a request) is closed then, and does not hold the process up.
        listen::serve(listener, router, limits, token.clone(), HTTP_DRAIN_GRACE).await;
        tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
            .await
            .is_err()
        {
            warn!("some sockets did not close within {SHUTDOWN_GRACE:?}");
        }
        // The writers store what is queued and end; then the pending-changes thread closes
        // the store.
        drop((chat, store));
        writer_stop.cancel();
        writer_tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, writer_tasks.wait())
            .await
            .is_err()
        {
            warn!("the message writers did not finish within {SHUTDOWN_GRACE:?}");
        }
        if !db.close(DB_CLOSE_GRACE).await {
            warn!("the database did not finish shutting down within {DB_CLOSE_GRACE:?}");
        }
        info!("stopped");
        Ok(())
    }
}

/// How often sessions past their expiry (and invitations and invite links expired or used
/// up) are deleted.
const EXPIRED_SESSIONS_EVERY: Duration = Duration::from_secs(3600);

/// Deletes expired sessions and invitations now and every [`EXPIRED_SESSIONS_EVERY`] until
/// `stop`.
async fn forget_expired_sessions(store: SurrealChatStore, stop: CancellationToken) {
    let mut every = tokio::time::interval(EXPIRED_SESSIONS_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {
                match store.forget_expired(auth::now_secs() as i64).await {
                    Ok(0) => {}
                    Ok(n) => info!(sessions = n, "expired sessions deleted"),
                    Err(e) => warn!(error = %e, "cannot delete expired sessions"),
                }
            }
            () = stop.cancelled() => break,
        }
    }
}

fn router(state: AppState, body_timeout: Duration) -> Router {
    let routes = generate_route_list(app::App);
    Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(telemetry::metrics))
        .merge(
            Router::new()
                .route("/api/auth/signup", post(auth::sign_up))
                .route("/api/auth/signin", post(auth::sign_in))
                .route("/api/auth/signout", post(auth::sign_out))
                .route("/api/account/password", post(account::change_password))
                .route(
                    "/api/account/sessions/end-others",
                    post(account::end_other_sessions),
                )
                .route("/api/account/sessions/{id}", delete(account::end_session))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.auth.clone(),
                    auth::same_site_only,
                ))
                .route("/api/auth/me", get(auth::me))
                .route("/api/account/sessions", get(account::sessions))
                .layer(axum::middleware::map_response(security::no_store)),
        )
        .merge(
            Router::new()
                .route(app::protocol::FILES_PATH, post(files::http::upload))
                .route(
                    app::protocol::AVATAR_PATH,
                    // The upload reads its body itself, up to its own limit.
                    post(profile::upload).delete(profile::remove),
                )
                .route_layer(axum::middleware::from_fn_with_state(
                    state.auth.clone(),
                    auth::same_site_only,
                ))
                .route("/api/users/{username}/avatar", get(profile::get))
                .route("/api/files/{id}", get(files::http::download))
                .route("/api/files/{id}/thumbnail", get(files::http::thumbnail)),
        )
        .leptos_routes(&state, routes, {
            let leptos = state.leptos.clone();
            move || {
                security::set_page_policy();
                app::shell(leptos.clone())
            }
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            |options| {
                security::set_page_policy();
                app::shell(options)
            },
        ))
        .layer(axum::middleware::map_response(security::add_headers))
        // A body that trickles in is cut off (408) rather than holding its connection.
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Leptos settings from cargo-leptos's environment (`LEPTOS_*`), with the project's output
/// name when the binary was built without cargo-leptos (plain `cargo test`).
fn leptos_options() -> Result<LeptosOptions, StartError> {
    let mut options = leptos::config::get_configuration(None)
        .map_err(StartError::Leptos)?
        .leptos_options;
    if options.output_name.is_empty() {
        options.output_name = "chat".into();
    }
    Ok(options)
}

/// Turns transparent huge pages off for this process (Linux only; elsewhere there is
/// nothing to do). mimalloc asks the kernel for them by default, and then every first touch
/// of freshly purged allocator memory has the kernel zero a whole 2 MiB page inside whatever
/// request touched it: ~10 % of the server's CPU reading history, and the tail of every
/// latency. Measured with and without (BENCHMARKS.md, what was tried): newest history page p99
/// 8-12 ms -> 3-4 ms, open-loop delivery p99 3.6-5.1x -> 0.7x the durable relay's, RSS at
/// 1,000 msg/s 100 -> 72 MiB; closed-loop throughput unchanged within noise.
pub fn no_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE passes no pointers; it sets one flag on this process.
        if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
