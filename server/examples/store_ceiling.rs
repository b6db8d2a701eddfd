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
//! commit, as in production). Prints one human line and one JSON line.

use app::domain::{DisplayName, Username};
use server::{
    db::Database,
    settings::StorageKind,
    store::{MessageRecord, SurrealChatStore},
    writer,
};
use std::time::{Duration, Instant};

struct Options {
    pairs: usize,
    batch: usize,
    writers: usize,
    seconds: f64,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        pairs: 100,
        batch: writer::MAX_BATCH,
        writers: writer::WRITERS,
        seconds: 10.0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            anyhow::bail!("expected --flag value pairs, got {args:?}");
        };
        match flag.as_str() {
            "--pairs" => o.pairs = value.parse::<usize>()?.clamp(1, 10_000),
            "--batch" => o.batch = value.parse::<usize>()?.clamp(1, 10_000),
            "--writers" => o.writers = value.parse::<usize>()?.clamp(1, 16),
            "--seconds" => o.seconds = value.parse::<f64>()?.clamp(1.0, 600.0),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let dir = tempfile::tempdir()?;
    let db = Database::open(StorageKind::Disk, dir.path()).await?;
    let store = SurrealChatStore::new(db.handle(), 1).await?;
    let mut convs = Vec::new();
    for p in 0..o.pairs {
        let (a, b) = (format!("ceil{}", 2 * p), format!("ceil{}", 2 * p + 1));
        for u in [&a, &b] {
            store
                .create_user(
                    &Username::parse(u)?,
                    &DisplayName::parse(u)?,
                    "not a real hash",
                    1,
                )
                .await?;
        }
        convs.push((store.open_direct(&a, &b, 1).await?, a));
    }
    let run_for = Duration::from_secs_f64(o.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..o.writers {
        // Each writer owns every `writers`-th conversation, as the server's writers do.
        let mine: Vec<(String, String)> =
            convs.iter().skip(w).step_by(o.writers).cloned().collect();
        let store = store.clone();
        let batch = o.batch;
        tasks.push(tokio::spawn(async move {
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
                            sender: sender.clone(),
                            body: format!("ceiling message {} {}", seqs[c], c),
                            client_msg_id: format!("w{w}-{}", n + i),
                            sent_at: 1_700_000_000_000 + (n + i) as i64,
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
    let mut stored = 0;
    for t in tasks {
        stored += t.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let per_second = stored as f64 / seconds;
    println!(
        "store ceiling: {stored} messages in {seconds:.1} s = {per_second:.0}/s \
         ({} writers, batches of {}, {} conversations, durable)",
        o.writers, o.batch, o.pairs
    );
    println!(
        "{}",
        serde_json::json!({
            "scenario": "store-ceiling",
            "stored": stored,
            "seconds": seconds,
            "per_second": per_second,
            "writers": o.writers,
            "batch": o.batch,
            "conversations": o.pairs,
        })
    );
    drop(store);
    db.close(Duration::from_secs(30)).await;
    Ok(())
}
