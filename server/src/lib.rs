//! The chat server as a library, so that `main` stays thin and tests can start the real thing.
//!
//! # Layout
//! - [`auth`] — accounts and sessions: sign-up/in/out endpoints, the check on every socket.
//! - [`settings`] — layered configuration (defaults, TOML file, `CHAT_*` env, flags).
//! - [`db`] — the embedded SurrealDB handle.
//! - [`store`] — `SurrealChatStore`: accounts, conversations, members, messages.
//! - [`ws`] — the `/ws` endpoint, one handler task per socket.
//! - [`chat`] — what each client frame does, between the socket and the store.
//! - [`hub`] — in-process routing: live sockets, cached members, fan-out.
//! - [`writer`] — group commit: sent messages numbered, stored in batches, acked, fanned out.
//! - [`throttle`] — slows password guessing (per account and per address).
//! - [`health`] — `/healthz`.
//! - [`security`] — security headers and the pages' Content-Security-Policy.
//! - [`Application`]: binds the listener, wires the routes (Leptos pages, `/ws`, `/healthz`,
//!   static files) and runs until a shutdown future resolves.

pub mod auth;
pub mod chat;
pub mod db;
pub mod health;
pub mod hub;
mod recent;
pub mod security;
pub mod settings;
pub mod store;
pub mod throttle;
pub mod writer;
pub mod ws;

use axum::{
    extract::FromRef,
    routing::{get, post},
    serve::ListenerExt,
    Router,
};
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::{future::Future, net::SocketAddr, time::Duration};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::{db::Database, settings::Settings, store::SurrealChatStore};

/// How long shutdown waits for sockets to say goodbye before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long shutdown waits for the database to flush and close.
const DB_CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub db: Database,
    pub store: SurrealChatStore,
    pub hub: hub::Hub,
    /// Where sends go to be stored (see [`writer`]).
    pub writers: writer::Writers,
    /// The writer tasks: shutdown waits for them to drain.
    pub writer_tasks: TaskTracker,
    pub keys: auth::Keys,
    /// `None`: accept WebSocket upgrades whose Origin matches their Host header.
    pub public_origin: Option<String>,
    /// Session ids as they sign out; their sockets close.
    pub sessions_ended: tokio::sync::broadcast::Sender<String>,
    /// Cancelled once, when the server starts shutting down; every socket watches it.
    pub shutdown: CancellationToken,
    /// Tracks socket tasks so shutdown can wait for them.
    pub tasks: TaskTracker,
    pub sign_in_throttle: throttle::SignInThrottle,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
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
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot read or create the session-signing secret: {0}")]
    Secret(std::io::Error),
    #[error("invalid Leptos configuration: {0}")]
    Leptos(String),
    #[error("cannot start the thread that stores pending changes: {source}")]
    Writers { source: std::io::Error },
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Opens the database and binds the listener; nothing is served until [`Self::run`].
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let leptos = leptos_options()?;
        let db = Database::open_with_cache(
            settings.storage,
            &settings.data_dir,
            settings.db_cache_bytes,
        )
        .await?;
        info!(
            storage = settings.storage.as_str(),
            data_dir = %settings.data_dir.display(),
            boots = db.boots(),
            "database open"
        );
        let store = SurrealChatStore::new(db.handle(), now_ms()).await?;
        db.handle()
            .query(auth::SCHEMA)
            .await
            .and_then(|r| r.check())
            .map_err(db::DbError::from)?;
        let secret = auth::load_or_create_secret(
            settings.jwt_secret.as_ref().map(|s| s.expose()),
            (settings.storage == settings::StorageKind::Disk)
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
        let hub = hub::Hub::new(settings.send_rate);
        let writer_tasks = TaskTracker::new();
        let writers = writer::Writers::start(&store, &hub, writer::WRITERS, &writer_tasks)
            .map_err(|source| StartError::Writers { source })?;
        let state = AppState {
            leptos,
            db,
            store,
            hub,
            writers,
            writer_tasks,
            keys,
            public_origin: settings.public_origin.clone(),
            sessions_ended: tokio::sync::broadcast::channel(256).0,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            sign_in_throttle: throttle::SignInThrottle::default(),
        };
        let router = router(state.clone());
        Ok(Application {
            listener,
            router,
            state,
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
            state,
        } = self;
        let token = state.shutdown.clone();
        tokio::spawn({
            let token = token.clone();
            async move {
                shutdown.await;
                info!("shutting down");
                token.cancel();
            }
        });
        info!(addr = %listener.local_addr()?, "listening");
        // No Nagle: every frame is written as soon as it is ready, and a small frame held back
        // for the peer's delayed ACK would add up to 40 ms to a delivery.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                warn!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        // The peer address is what sign-in throttling counts per client.
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(token.cancelled_owned())
        .await?;
        state.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, state.tasks.wait())
            .await
            .is_err()
        {
            warn!("some sockets did not close within {SHUTDOWN_GRACE:?}");
        }
        // The last handles go with the state; then the database finishes its own shutdown.
        let db = state.db.clone();
        let writers = state.writer_tasks.clone();
        drop(state);
        // With the last handle gone the writers store what is queued, and end.
        writers.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, writers.wait())
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

fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(health::healthz))
        .route("/api/auth/signup", post(auth::sign_up))
        .route("/api/auth/signin", post(auth::sign_in))
        .route("/api/auth/signout", post(auth::sign_out))
        .route("/api/auth/me", get(auth::me))
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
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Leptos settings from cargo-leptos's environment (`LEPTOS_*`), with the project's output
/// name when the binary was built without cargo-leptos (plain `cargo test`).
fn leptos_options() -> Result<LeptosOptions, StartError> {
    let mut options = leptos::config::get_configuration(None)
        .map_err(|e| StartError::Leptos(e.to_string()))?
        .leptos_options;
    if options.output_name.is_empty() {
        options.output_name = "chat".into();
    }
    Ok(options)
}

/// Milliseconds since the Unix epoch: the timestamps stored with messages.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Turns transparent huge pages off for this process (Linux only; elsewhere there is
/// nothing to do). mimalloc asks the kernel for them by default, and then every first touch
/// of freshly purged allocator memory has the kernel zero a whole 2 MiB page inside whatever
/// request touched it: ~10 % of the server's CPU reading history, and the tail of every
/// latency. Measured with and without (BENCHMARKS.md, session 9): newest history page p99
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
