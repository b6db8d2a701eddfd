//! What each way of keeping `(sender, client_msg_id)` in SurrealDB costs the store: the
//! raw statements of a batch commit, shaped like `store_ceiling`'s (2 writers, batches of
//! 1,024 over 100 conversations, durable), with nothing but the layout changing:
//!
//! - `msg`: the messages alone (no record of client ids: the upper bound);
//! - `full`: the messages and a `client_msg:[sender, id]` record each (the store's layout);
//! - `keyonly`: the same records with everything in the id and no fields;
//! - `chunk`: one record per sender and batch listing its ids (no exact lookup by id);
//! - `index`: a (non-unique) index on the messages' `sender, client_msg_id`.
//!
//!   cargo build --release --package server --example client_id_layouts
//!   target/release/examples/client_id_layouts <layout> [seconds]
use server::{db::Database, settings::StorageKind};
use std::time::{Duration, Instant};
use surrealdb::types::{Array, RecordId, RecordIdKey, SurrealValue, Value};

/// The server's allocator, as in `store_ceiling`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, SurrealValue)]
struct MsgRow {
    id: RecordId,
    sender: String,
    body: String,
    client_msg_id: String,
    sent_at: i64,
    n: Option<i64>,
}

#[derive(Debug, Clone, SurrealValue)]
struct IdRow {
    id: RecordId,
    conversation: String,
    seq: i64,
}

#[derive(Debug, Clone, SurrealValue)]
struct KeyRow {
    id: RecordId,
}

#[derive(Debug, Clone, SurrealValue)]
struct ChunkRow {
    id: RecordId,
    ids: Vec<String>,
    conversation: String,
    seqs: Vec<i64>,
}

fn key(parts: Vec<Value>) -> RecordIdKey {
    RecordIdKey::Array(Array::from(parts))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let variant = std::env::args().nth(1).unwrap_or_else(|| "full".into());
    anyhow::ensure!(
        ["msg", "full", "keyonly", "chunk", "index"].contains(&variant.as_str()),
        "layout: msg, full, keyonly, chunk or index"
    );
    let seconds: u64 = std::env::args()
        .nth(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(8)
        .clamp(1, 600);
    let dir = tempfile::tempdir()?;
    let db = Database::open(StorageKind::Disk, dir.path()).await?;
    let h = db.handle();
    h.query(
        "DEFINE TABLE msg SCHEMALESS; DEFINE TABLE client_msg SCHEMALESS; DEFINE TABLE client_chunk SCHEMALESS;",
    )
    .await?
    .check()?;
    if variant == "index" {
        h.query("DEFINE INDEX msg_cid ON msg FIELDS sender, client_msg_id")
            .await?
            .check()?;
    }
    let writers = 2;
    let batch = 1024;
    let pairs = 100;
    let run_for = Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let h = h.clone();
        let variant = variant.clone();
        tasks.push(tokio::spawn(async move {
            let mine: Vec<usize> = (w..pairs).step_by(writers).collect();
            let mut seqs = vec![0_i64; mine.len()];
            let mut stored = 0_u64;
            let mut n = 0_usize;
            while started.elapsed() < run_for {
                let mut rows = Vec::new();
                let mut ids = Vec::new();
                let mut keys = Vec::new();
                let mut chunks: Vec<ChunkRow> = Vec::new();
                for i in 0..batch {
                    let c = (n + i) % mine.len();
                    seqs[c] += 1;
                    let conv = format!("c{}", mine[c]);
                    let sender = format!("u{}", mine[c] * 2);
                    let cid = format!("w{w}-{}", n + i);
                    rows.push(MsgRow {
                        id: RecordId::new(
                            "msg",
                            key(vec![Value::String(conv.clone()), Value::from_t(seqs[c])]),
                        ),
                        sender: sender.clone(),
                        body: format!("ceiling message {} {}", seqs[c], c),
                        client_msg_id: cid.clone(),
                        sent_at: 1_700_000_000_000 + (n + i) as i64,
                        n: Some(seqs[c]),
                    });
                    ids.push(IdRow {
                        id: RecordId::new(
                            "client_msg",
                            key(vec![Value::String(sender.clone()), Value::String(cid.clone())]),
                        ),
                        conversation: conv.clone(),
                        seq: seqs[c],
                    });
                    keys.push(KeyRow {
                        id: RecordId::new(
                            "client_msg",
                            key(vec![
                                Value::String(sender.clone()),
                                Value::String(cid.clone()),
                                Value::String(conv.clone()),
                                Value::from_t(seqs[c]),
                            ]),
                        ),
                    });
                    if i < mine.len() {
                        chunks.push(ChunkRow {
                            id: RecordId::new(
                                "client_chunk",
                                key(vec![Value::String(sender.clone()), Value::from_t(seqs[c])]),
                            ),
                            ids: Vec::new(),
                            conversation: conv.clone(),
                            seqs: Vec::new(),
                        });
                    }
                    if let Some(ch) = chunks.get_mut(c) {
                        ch.ids.push(cid);
                        ch.seqs.push(seqs[c]);
                    }
                }
                let q = match variant.as_str() {
                    "msg" | "index" => h
                        .query("BEGIN; INSERT INTO msg $rows RETURN NONE; COMMIT;")
                        .bind(("rows", rows)),
                    "full" => h
                        .query("BEGIN; INSERT INTO msg $rows RETURN NONE; INSERT INTO client_msg $ids RETURN NONE; COMMIT;")
                        .bind(("rows", rows))
                        .bind(("ids", ids)),
                    "keyonly" => h
                        .query("BEGIN; INSERT INTO msg $rows RETURN NONE; INSERT INTO client_msg $ids RETURN NONE; COMMIT;")
                        .bind(("rows", rows))
                        .bind(("ids", keys)),
                    "chunk" => h
                        .query("BEGIN; INSERT INTO msg $rows RETURN NONE; INSERT INTO client_chunk $ids RETURN NONE; COMMIT;")
                        .bind(("rows", rows))
                        .bind(("ids", chunks)),
                    _ => unreachable!("checked above"),
                };
                q.await?.check()?;
                stored += batch as u64;
                n += batch;
            }
            anyhow::Ok(stored)
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await??;
    }
    let s = started.elapsed().as_secs_f64();
    println!("{variant}: {:.0}/s", stored as f64 / s);
    drop(h);
    db.close(Duration::from_secs(30)).await;
    Ok(())
}
