//! Writing what [`super::heads`] holds that the database does not (conversations' last
//! messages, read positions moved by sending), a few changes per transaction, and closing
//! the store cleanly.

use std::time::Duration;

use super::{
    heads::HeadFields,
    retry_conflicts,
    rows::{conversation_id, member_id, LastMessageRow, LastTextRow, ReadRow},
    transaction, StoreError, SurrealChatStore,
};

/// Changes written per transaction by [`SurrealChatStore::store_pending`]. A statement
/// runs to its end without yielding its thread: 64 rows took 7–15 ms under the open-loop
/// benchmark, 8 take 1–4 ms with their sync.
pub const PENDING_CHUNK: usize = 8;

impl SurrealChatStore {
    /// Writes what the heads hold that the database does not — forward only; members who
    /// left are skipped — [`PENDING_CHUNK`] changes per transaction, so that the writers'
    /// transactions never wait long behind one, with the chunks spread evenly `over` that
    /// long (zero: one after another), so that their CPU does not come all at once. Those
    /// moved again meanwhile stay unstored, as does whatever a failure stopped.
    pub async fn store_pending(&self, over: Duration) -> Result<(), StoreError> {
        let unstored = self.heads().unstored();
        let chunks = unstored.reads.len().div_ceil(PENDING_CHUNK)
            + unstored.last.len().div_ceil(PENDING_CHUNK);
        let gap = over / u32::try_from(chunks.max(1)).unwrap_or(u32::MAX);
        let mut left = chunks;
        // Between chunks (not after the last): a yield, or the gap.
        let mut pause = move || {
            left = left.saturating_sub(1);
            let gap = if left == 0 { Duration::ZERO } else { gap };
            async move {
                if gap.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(gap).await;
                }
            }
        };
        // Read positions first: a crash in between leaves conversations behind their
        // messages, which the next start repairs, read positions included.
        for chunk in unstored.reads.chunks(PENDING_CHUNK) {
            let rows = chunk
                .iter()
                .map(|((user, conv), mark)| ReadRow {
                    id: member_id(conv, user),
                    seq: mark.seq as i64,
                    n: mark.n as i64,
                })
                .collect();
            self.store_changes(rows, &[]).await?;
            self.heads().stored_reads(chunk);
            pause().await;
        }
        for chunk in unstored.last.chunks(PENDING_CHUNK) {
            self.store_changes(Vec::new(), chunk).await?;
            self.heads().stored_last(chunk);
            pause().await;
        }
        Ok(())
    }

    /// Moves read positions and conversations' heads forward, in one transaction.
    pub(super) async fn store_changes(
        &self,
        reads: Vec<ReadRow>,
        last: &[(String, HeadFields)],
    ) -> Result<(), StoreError> {
        let convs: Vec<LastMessageRow> = last
            .iter()
            .map(|(key, head)| LastMessageRow {
                id: conversation_id(key),
                seq: head.at.seq as i64,
                n: head.at.n as i64,
                message: head.last.as_ref().map(|m| LastTextRow {
                    at: m.at,
                    sender: m.sender.clone(),
                    text: m.text.clone(),
                }),
            })
            .collect();
        // A client's own `mark_read` may write a read position at the same moment: one
        // at a time (see `read_writes`), and a conflict with other writes is retried.
        retry_conflicts(|| async {
            let _one_at_a_time = self.read_writes.lock().await;
            let res = self
                .db
                .query(
                    "BEGIN;
                     FOR $r IN $reads {
                        UPDATE $r.id SET last_read_seq = $r.seq, last_read_n = $r.n
                            WHERE last_read_seq < $r.seq RETURN NONE;
                     };
                     FOR $c IN $convs {
                        UPDATE $c.id SET last_seq = $c.seq, last_n = $c.n
                            WHERE last_seq < $c.seq RETURN NONE;
                        IF $c.message != NONE {
                            UPDATE $c.id SET last_at = $c.message.at,
                                last_sender = $c.message.sender, last_text = $c.message.text
                                WHERE last_seq <= $c.seq RETURN NONE;
                        };
                     };
                     COMMIT;",
                )
                .bind(("reads", reads.clone()))
                .bind(("convs", convs.clone()))
                .await?;
            Ok(transaction(res)?)
        })
        .await
    }

    /// Writes everything pending and marks the database closed cleanly, so that the next
    /// start need not repair it. Call it once, after the last [`Self::append_batch`].
    pub async fn close(&self) -> Result<(), StoreError> {
        self.store_pending(Duration::ZERO).await?;
        self.set_clean(true).await
    }
}
