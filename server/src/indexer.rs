//! The search indexer: a thread of its own, at the lowest CPU priority the system gives,
//! that brings the search index up to date with the stored messages
//! ([`SurrealChatStore::index_pending`]). Indexing is never what a sender waits for, so it
//! takes only the CPU that sending and delivering leave: under a saturating load it falls
//! behind and catches up when the load eases (`/healthz` says how far behind it is).
//! Otherwise it follows the messages within about a second: a pass that found work is
//! followed by the next a second after it began, so that under a steady flow of messages
//! one index commit covers a second of them.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use tokio::time::Instant;

use tracing::warn;

use crate::store::SurrealChatStore;

/// How long one pass may index before it looks at the stop flag again.
const PASS: Duration = Duration::from_millis(250);
/// The pause between passes when nothing is left to index.
const IDLE: Duration = Duration::from_millis(200);
/// The least time from the start of a pass that found work to the start of the next,
/// unless it ran out of time with work left. Each pass reads every conversation that
/// changed and ends in an index commit (a segment written, synced and later merged): back
/// to back under a steady 1,000 messages a second they took as much CPU as storing and
/// delivering the messages (the server at 0.87–0.96 cores against 0.43–0.56).
const EVERY: Duration = Duration::from_secs(1);

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

    /// Ends the indexer after its current pass or pause (half a second at most) and waits
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
        let began = Instant::now();
        let had_work = store.unindexed_count() > 0;
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
        let pass = Pass {
            had_work,
            failed: failing,
            took: began.elapsed(),
            left: store.unindexed_count() > 0,
        };
        let until = began + pass.took + pause(pass);
        // In slices, so that a stop is not held up by a whole pause.
        while !stop.load(Ordering::Acquire) && Instant::now() < until {
            tokio::time::sleep(until.saturating_duration_since(Instant::now()).min(IDLE)).await;
        }
    }
}

/// What a pass of the indexer found and did.
#[derive(Debug, Clone, Copy)]
struct Pass {
    /// Conversations were waiting when it began.
    had_work: bool,
    failed: bool,
    took: Duration,
    /// Conversations are waiting now (left over, or changed meanwhile).
    left: bool,
}

/// How long to wait after `pass` before the next one.
fn pause(pass: Pass) -> Duration {
    if pass.failed || !(pass.had_work || pass.left) {
        IDLE
    } else if pass.took >= PASS && pass.left {
        // Behind (a start, a burst the load left no CPU for): catch up without waiting.
        Duration::ZERO
    } else if pass.had_work {
        EVERY.saturating_sub(pass.took)
    } else {
        // Nothing when it began, something since: as soon as an idle server would look.
        IDLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(had_work: bool, failed: bool, took_ms: u64, left: bool) -> Pass {
        Pass {
            had_work,
            failed,
            took: Duration::from_millis(took_ms),
            left,
        }
    }

    #[test]
    fn an_idle_index_looks_again_soon() {
        assert_eq!(pause(pass(false, false, 0, false)), IDLE);
        assert_eq!(pause(pass(false, false, 1, true)), IDLE);
    }

    #[test]
    fn a_pass_that_found_work_is_followed_a_second_after_it_began() {
        assert_eq!(
            pause(pass(true, false, 30, true)),
            EVERY - Duration::from_millis(30)
        );
        assert_eq!(
            pause(pass(true, false, 30, false)),
            EVERY - Duration::from_millis(30)
        );
    }

    #[test]
    fn an_index_behind_catches_up_without_waiting() {
        assert_eq!(pause(pass(true, false, 250, true)), Duration::ZERO);
        assert_eq!(pause(pass(true, false, 400, true)), Duration::ZERO);
        // Done within its time: the usual second.
        assert_eq!(
            pause(pass(true, false, 400, false)),
            EVERY - Duration::from_millis(400)
        );
    }

    #[test]
    fn a_failing_index_is_tried_again_after_the_idle_pause() {
        assert_eq!(pause(pass(true, true, 5, true)), IDLE);
    }
}
