//! The search indexer: a thread of its own, at the lowest CPU priority the system gives,
//! that brings the search index up to date with the stored messages
//! ([`SurrealChatStore::index_pending`]). Indexing is never what a sender waits for, so it
//! takes only the CPU that sending and delivering leave: under a saturating load it falls
//! behind and catches up when the load eases (`/healthz` says how far behind it is); on an
//! idle server it follows the messages within a fraction of a second.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use tracing::warn;

use crate::store::SurrealChatStore;

/// How long one pass may index before it looks at the stop flag again.
const PASS: Duration = Duration::from_millis(250);
/// The pause between passes when nothing is left to index.
const IDLE: Duration = Duration::from_millis(200);

/// The running indexer; [`Indexer::stop`] ends it.
pub struct Indexer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    pub fn start(store: SurrealChatStore) -> std::io::Result<Indexer> {
        let stop = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("search-index".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    crate::priority::lowest("the search indexer");
                    runtime.block_on(run(store, stop));
                }
            })?;
        Ok(Indexer {
            stop,
            thread: Some(thread),
        })
    }

    /// Ends the indexer after its current pass (a quarter of a second at most) and waits
    /// for it. What it had not indexed is indexed after the next start.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn run(store: SurrealChatStore, stop: Arc<AtomicBool>) {
    let mut failing = false;
    while !stop.load(Ordering::Acquire) {
        match store.index_pending(PASS).await {
            Ok(()) => failing = false,
            Err(e) => {
                // Said once per run of failures, not at every pass.
                if !failing {
                    warn!(error = %e, "indexing messages for search failed; it is tried again");
                }
                failing = true;
            }
        }
        if failing || store.unindexed_count() == 0 {
            tokio::time::sleep(IDLE).await;
        }
    }
}
