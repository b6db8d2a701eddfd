//! `GET /healthz`: 200 with a JSON report when the server and its database answer, 503 when
//! the database does not. For load balancers, monitoring and the test-suite.

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;

use crate::{db::Database, store::SurrealChatStore};

/// What `/healthz` reads; cheap to clone.
#[derive(Clone)]
pub struct HealthState {
    /// `None`: a single node.
    pub bus: Option<crate::bus::Bus>,
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
    /// In a cluster: this node, whether it reaches the bus, and the nodes it hears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<crate::bus::BusHealth>,
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
    let bus = state.bus.as_ref().map(crate::bus::Bus::health);
    // Without the bus a node still serves its own sockets from the shared database (so
    // it stays in the balancer), but its people miss the other nodes' live events.
    let whole = ok && bus.as_ref().is_none_or(|b| b.connected);
    let health = Health {
        status: if whole { "ok" } else { "degraded" },
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
        bus,
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health))
}
