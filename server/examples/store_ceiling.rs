//! The store-only ceiling: how many messages per second `SurrealChatStore::append_batch`
//! makes durable on this machine, with nothing else running — no sockets, no JSON, no
//! fan-out. The chat server's throughput is compared against it (and against the relay) by
//! `loadgen bench --store-ceiling`.
//!
//!   cargo build --release --package server --example store_ceiling
//!   target/release/examples/store_ceiling [--pairs 100] [--batch 1024] [--writers 2] [--seconds 10]
//!
//! The batches are shaped like the server's under the closed-loop benchmark: `pairs` direct
//! conversations, each batch spread over all of them, and as many concurrent writers as the
//! server runs (each with its own conversations), on a fresh disk database (one sync per
//! commit, as in production); what the batches leave pending (conversations' last
//! messages, the senders' read positions) is stored every `writer::PENDING_EVERY` by the
//! server's own task for that. Prints one human line and one JSON line.

use app::domain::{DisplayName, Username};
use clap::Parser;
use server::{
    db::Database,
    settings::StorageKind,
    store::{MessageRecord, SurrealChatStore},
    writer,
};
use std::time::{Duration, Instant};

/// The server's allocator (see `src/main.rs`), so that the ceiling is the store's, not malloc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Flags (see the file's docs); every count is bounded.
#[derive(Parser)]
struct Options {
    /// Direct conversations (two users each) the batches are spread over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pairs: u16,
    /// Messages per `append_batch` (the server's `writer::MAX_BATCH`).
    #[arg(long, default_value_t = writer::MAX_BATCH as u16, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    batch: u16,
    /// Concurrent writers (the server's `writer::WRITERS`).
    #[arg(long, default_value_t = writer::WRITERS as u8, value_parser = clap::value_parser!(u8).range(1..=16))]
    writers: u8,
    /// How long to store.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As the server runs (see `server::no_transparent_huge_pages`).
    server::no_transparent_huge_pages()?;
    let o = Options::parse();
    let (pairs, batch, writers) = (
        usize::from(o.pairs),
        usize::from(o.batch),
        usize::from(o.writers),
    );
    let dir = tempfile::tempdir()?;
    let db = Database::open(StorageKind::Disk, dir.path()).await?;
    let store = SurrealChatStore::new(&db, 1).await?;
    let mut convs = Vec::new();
    for p in 0..pairs {
        let (a, b) = (format!("ceil{}", 2 * p), format!("ceil{}", 2 * p + 1));
        for u in [&a, &b] {
            store
                .create_user(
                    &Username::parse(u)?,
                    &DisplayName::parse(u)?,
                    "not a real hash",
                    false,
                    1,
                )
                .await?;
        }
        convs.push((store.open_direct(&a, &b, 1).await?, a));
    }
    let run_for = Duration::from_secs(o.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let (running, writers_ended) = tokio::sync::mpsc::channel::<()>(1);
    // The search indexer runs beside the writers, as in the server.
    let indexer = server::indexer::Indexer::start(store.clone())?;
    let pending = tokio::spawn(writer::store_pending_every(
        store.clone(),
        indexer,
        writers_ended,
    ));
    for w in 0..writers {
        // Each writer owns every `writers`-th conversation, as the server's writers do.
        let mine: Vec<(String, String)> = convs.iter().skip(w).step_by(writers).cloned().collect();
        let store = store.clone();
        let running = running.clone();
        tasks.push(tokio::spawn(async move {
            let _running = running;
            let mut seqs = vec![0_u64; mine.len()];
            let mut stored = 0_u64;
            let mut n = 0_usize;
            while started.elapsed() < run_for && !mine.is_empty() {
                let records: Vec<MessageRecord> = (0..batch)
                    .map(|i| {
                        let c = (n + i) % mine.len();
                        seqs[c] += 1;
                        let (key, sender) = &mine[c];
                        MessageRecord {
                            conversation: key.clone(),
                            seq: seqs[c],
                            n: seqs[c],
                            sender: sender.clone(),
                            body: format!("ceiling message {} {}", seqs[c], c),
                            client_msg_id: format!("w{w}-{}", n + i),
                            sent_at: 1_700_000_000_000 + (n + i) as i64,
                            ..MessageRecord::default()
                        }
                    })
                    .collect();
                // Conversations' messages must be in `seq` order within a batch: they are,
                // because each conversation's seqs are assigned in order above.
                store.append_batch(&records).await?;
                stored += records.len() as u64;
                n += batch;
            }
            anyhow::Ok(stored)
        }));
    }
    drop(running);
    let mut stored = 0;
    for t in tasks {
        stored += t.await??;
    }
    pending.await?;
    let seconds = started.elapsed().as_secs_f64();
    let per_second = stored as f64 / seconds;
    println!(
        "store ceiling: {stored} messages in {seconds:.1} s = {per_second:.0}/s \
         ({} writers, batches of {}, {} conversations, durable)",
        writers, batch, pairs
    );
    println!(
        "{}",
        serde_json::json!({
            "scenario": "store-ceiling",
            "stored": stored,
            "seconds": seconds,
            "per_second": per_second,
            "writers": writers,
            "batch": batch,
            "conversations": pairs,
        })
    );
    drop(store);
    db.close(Duration::from_secs(30)).await;
    Ok(())
}
