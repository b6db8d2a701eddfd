//! `GET /healthz`: 200 with a JSON report when the server and its database answer, 503 when
//! the database does not. For load balancers, monitoring and the test-suite.

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;

use crate::{db::Database, store::SurrealChatStore};

/// What `/healthz` reads; cheap to clone.
#[derive(Clone)]
pub struct HealthState {
    pub db: Database,
    /// How many times the data directory has been opened, this time included.
    pub boots: u64,
    /// For how far the search index is behind.
    pub store: SurrealChatStore,
}

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub database: DatabaseHealth,
    pub search: SearchHealth,
}

/// How far the message search index is behind the messages (it follows them within a
/// second; after a start on a database indexed by nothing yet, for as long as it takes).
#[derive(Debug, Serialize)]
pub struct SearchHealth {
    /// Conversations with messages the index does not have yet.
    pub unindexed_conversations: usize,
}

#[derive(Debug, Serialize)]
pub struct DatabaseHealth {
    pub ok: bool,
    pub storage: &'static str,
    pub boots: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub async fn healthz(State(state): State<HealthState>) -> (StatusCode, Json<Health>) {
    let check = state.db.check().await;
    let ok = check.is_ok();
    let health = Health {
        status: if ok { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        database: DatabaseHealth {
            ok,
            storage: state.db.kind().as_str(),
            boots: state.boots,
            error: check.err().map(|e| e.to_string()),
        },
        search: SearchHealth {
            unindexed_conversations: state.store.unindexed_count(),
        },
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health))
}
