//! `GET /metrics`: what the server is doing, in Prometheus's text format, for an operator's
//! scraper: open sockets, frames in and out, sockets cut off for lagging, commit batch sizes
//! and latencies, failed commits.
//!
//! Each [`crate::Application`] has a registry of its own (a `metrics-exporter-prometheus`
//! recorder that is never installed as the process-wide one), so that several servers in
//! one process (the tests) do not count into each other, and the parts that record hold
//! their handles directly instead of looking a metric up by name at every event.
//!
//! The endpoint is off unless a `metrics_token` is set, and then answers only requests that
//! carry it as a Bearer token: the figures tell an outsider how busy the server is and who
//! is connected how much, so they are not public (as in Gitea, whose metrics share the
//! site's port behind a token; Prometheus sends it with `authorization: credentials`).

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use sha2::{Digest, Sha256};
use std::{sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// How often recorded histogram samples are folded into their buckets when nobody scrapes
/// (they would otherwise pile up in memory until the next scrape).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Commit latency buckets, in seconds: a synced commit takes about a millisecond on a fast
/// disk, tens on a slow one or a remote store.
const COMMIT_SECONDS: &[f64] = &[
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Messages (and changes) per commit: one when quiet, up to the writer's batch cap.
const COMMIT_ENTRIES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The server's metrics, registered once when it starts.
#[derive(Clone)]
pub struct Registry {
    recorder: Arc<PrometheusRecorder>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("chat_commit_seconds".into()), COMMIT_SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("chat_commit_entries".into()),
                    COMMIT_ENTRIES,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        Registry {
            recorder: Arc::new(recorder),
        }
    }

    pub fn counter(&self, name: &'static str, help: &'static str) -> Counter {
        self.counter_with(name, &[], help)
    }

    pub fn counter_with(
        &self,
        name: &'static str,
        labels: &[(&'static str, &'static str)],
        help: &'static str,
    ) -> Counter {
        self.recorder
            .describe_counter(KeyName::from_const_str(name), None, help.into());
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        self.recorder
            .describe_gauge(KeyName::from_const_str(name), None, help.into());
        self.recorder.register_gauge(&key(name, &[]), &METADATA)
    }

    pub fn histogram(
        &self,
        name: &'static str,
        unit: Option<Unit>,
        help: &'static str,
    ) -> Histogram {
        self.recorder
            .describe_histogram(KeyName::from_const_str(name), unit, help.into());
        self.recorder.register_histogram(&key(name, &[]), &METADATA)
    }

    fn handle(&self) -> PrometheusHandle {
        self.recorder.handle()
    }
}

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::from_static_parts(k, v))
        .collect();
    Key::from_parts(name, labels)
}

/// What the writer records about each commit.
#[derive(Clone)]
pub struct CommitMetrics {
    /// Entries (messages and changes) stored by each commit.
    pub entries: Histogram,
    /// How long each commit took, until it was synced.
    pub seconds: Histogram,
    /// Commits refused because another writer took a position or id first; retried.
    pub conflicts: Counter,
    /// Commits the database failed; their sends were refused.
    pub failures: Counter,
}

impl CommitMetrics {
    pub fn register(registry: &Registry) -> Self {
        CommitMetrics {
            entries: registry.histogram(
                "chat_commit_entries",
                Some(Unit::Count),
                "Messages and changes to messages stored by one commit.",
            ),
            seconds: registry.histogram(
                "chat_commit_seconds",
                Some(Unit::Seconds),
                "Time from a commit's start until it is synced to storage.",
            ),
            conflicts: registry.counter_with(
                "chat_commit_failures_total",
                &[("reason", "conflict")],
                "Commits that did not store: a position or id was taken first (the batch is retried), or the database failed (its sends are refused).",
            ),
            failures: registry.counter_with(
                "chat_commit_failures_total",
                &[("reason", "error")],
                "Commits that did not store: a position or id was taken first (the batch is retried), or the database failed (its sends are refused).",
            ),
        }
    }

    /// For tests of the parts that record.
    pub fn unregistered() -> Self {
        Self::register(&Registry::new())
    }
}

/// Frames received from clients, counted by each socket.
pub fn frames_received(registry: &Registry) -> Counter {
    registry.counter(
        "chat_frames_received_total",
        "Frames received from clients on WebSockets.",
    )
}

/// The counter of live messages delivered after a gap was filled from the store (a
/// socket that fell behind its outbox, or in a cluster an event the bus lost).
pub fn gap_fills(registry: &Registry) -> Counter {
    registry.counter(
        "chat_gap_fills_total",
        "Live messages that arrived past a gap, which was filled from the database first.",
    )
}

/// What `/metrics` reads; cheap to clone.
#[derive(Clone)]
pub struct MetricsState {
    handle: PrometheusHandle,
    /// SHA-256 of the token a scraper must send; `None`: the endpoint is off.
    token: Option<[u8; 32]>,
    hub: Hub,
    sockets: Gauge,
    queued: Counter,
    lagged: Counter,
}

impl MetricsState {
    /// The endpoint over `registry`, answering requests that carry `token`; the hub's
    /// figures are read at each scrape.
    pub fn new(registry: &Registry, token: Option<&str>, hub: Hub) -> Self {
        MetricsState {
            handle: registry.handle(),
            token: token.map(digest),
            sockets: registry.gauge("chat_sockets", "WebSocket connections open now."),
            queued: registry.counter(
                "chat_socket_events_total",
                "Events (messages, acks, changes, presence, typing) queued for sockets.",
            ),
            lagged: registry.counter(
                "chat_sockets_lagged_total",
                "Sockets cut off because they fell too far behind (their clients resume on reconnect).",
            ),
            hub,
        }
    }

    /// Folds recorded samples into their histograms every [`UPKEEP_EVERY`] until `stop`.
    pub async fn upkeep_until(self, stop: CancellationToken) {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => self.handle.run_upkeep(),
                () = stop.cancelled() => break,
            }
        }
    }

    fn authorised(&self, headers: &HeaderMap) -> Result<(), StatusCode> {
        let Some(expected) = &self.token else {
            return Err(StatusCode::NOT_FOUND);
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        // Digests compared, not the tokens: how long the comparison takes says nothing
        // about how much of the token was right.
        match given {
            Some(t) if digest(t) == *expected => Ok(()),
            _ => Err(StatusCode::UNAUTHORIZED),
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `GET /metrics`. 404 when no token is set (the endpoint is off), 401 without the right
/// Bearer token.
pub async fn metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    match state.authorised(&headers) {
        Ok(()) => {}
        Err(StatusCode::UNAUTHORIZED) => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a Bearer token is required\n",
            )
                .into_response()
        }
        Err(code) => return code.into_response(),
    }
    let counts = state.hub.counts();
    state.sockets.set(counts.sockets as f64);
    state.queued.absolute(counts.queued);
    state.lagged.absolute(counts.lagged);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.handle.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn only_the_configured_token_is_let_in() {
        let registry = Registry::new();
        let off = MetricsState::new(&registry, None, Hub::default());
        assert_eq!(off.authorised(&bearer("x")), Err(StatusCode::NOT_FOUND));
        let on = MetricsState::new(&registry, Some("s3cret-token"), Hub::default());
        assert_eq!(on.authorised(&bearer("s3cret-token")), Ok(()));
        assert_eq!(
            on.authorised(&bearer("s3cret-tokem")),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(on.authorised(&bearer("")), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(
            on.authorised(&HeaderMap::new()),
            Err(StatusCode::UNAUTHORIZED)
        );
    }

    #[test]
    fn commits_show_as_histograms_and_failures_by_reason() {
        let registry = Registry::new();
        let commits = CommitMetrics::register(&registry);
        commits.entries.record(3.0);
        commits.entries.record(700.0);
        commits.seconds.record(0.003);
        commits.conflicts.increment(1);
        let text = registry.handle().render();
        for line in [
            "chat_commit_entries_bucket{le=\"4\"} 1",
            "chat_commit_entries_bucket{le=\"1024\"} 2",
            "chat_commit_entries_count 2",
            "chat_commit_seconds_bucket{le=\"0.005\"} 1",
            "chat_commit_failures_total{reason=\"conflict\"} 1",
            "chat_commit_failures_total{reason=\"error\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn two_registries_count_apart() {
        let (a, b) = (Registry::new(), Registry::new());
        CommitMetrics::register(&a).failures.increment(5);
        CommitMetrics::register(&b);
        let text = b.handle().render();
        assert!(
            text.contains("chat_commit_failures_total{reason=\"error\"} 0"),
            "{text}"
        );
    }
}
