//! Group commit: how sent messages become durable, numbered and delivered.
//!
//! Each conversation belongs to one of a few writer tasks (by a hash of its key). A socket
//! hands its `send` to that writer and goes on reading; the writer takes everything queued
//! (up to [`MAX_BATCH`]), gives each message the next `seq` of its conversation, stores the
//! whole batch in one transaction — one sync for all of them — and only then acks each
//! sender and fans each message out, in `seq` order. Nothing is acked before it is durable,
//! and a batch is stored whole or not at all, so `seq`s have no gaps.
//!
//! The writer keeps each of its conversations' last `seq` in memory (it is the only one
//! that appends to them; the database is read once per conversation, by a task beside the
//! writer: sends to that conversation wait for it, in order, the others go on) and where the recent
//! `(sender, client_msg_id)` pairs it stored went, so that a re-sent message is acked with
//! the original instead of being stored twice. Those it remembers are the last
//! [`RECENT_IDS`] it stored, and, from before it started, the [`WARM_IDS`] newest messages
//! of each conversation it loads. A client that lost its connection resumes before it
//! re-sends (the resume delivers whatever was stored, with its `client_msg_id`), so older
//! re-sends do not arise from our clients.
//!
//! A batch's transaction writes its messages and nothing else. What they change besides —
//! each conversation's last message (its `last_*` fields) and the sender's read position
//! (sending marks the conversation read) — is kept in memory by the store (every read of
//! those fields applies it) and stored by one thread beside the writers every
//! [`PENDING_EVERY`], so that no send waits for it, and once more when the last writer has
//! ended. Updating them in each batch cost half of a one-message transaction and a
//! quarter of a full batch's throughput. A crash loses none of it: the next start sets the
//! conversations' fields and their senders' read positions from the messages.
//!
//! That thread runs a runtime of its own and spreads its transactions over half of
//! [`PENDING_EVERY`]: as a task on the sockets' runtime, its burst of statements (each runs
//! to its end without yielding) held up the sockets and writers queued behind it, and the
//! open loop's slowest deliveries came in bursts once a second (p99 2.7-3.7 ms, then
//! 1.8-2.5 ms; BENCHMARKS.md).

use app::{
    domain::{ClientMsgId, MessageBody},
    protocol::{ErrorCode, ServerMsg},
};
use axum::extract::ws::Utf8Bytes;
use std::{
    collections::{HashMap, HashSet, VecDeque},
    hash::BuildHasher,
    sync::Arc,
    time::Duration,
};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::{
    chat::{self, Refusal},
    hub::{Hub, Outbound},
    store::{MessageRecord, StoreError, SurrealChatStore},
};

/// Writer tasks: two, so that one can prepare and fan out while the other's commit syncs.
pub const WRITERS: usize = 2;
/// Most messages stored by one commit.
pub const MAX_BATCH: usize = 1024;
/// Sends queued per writer before senders wait (back-pressure on their sockets).
const QUEUE: usize = 4 * MAX_BATCH;
/// Stored `(sender, client_msg_id)` pairs each writer remembers.
pub const RECENT_IDS: usize = 100_000;
/// Newest messages of a conversation whose ids a writer learns when it first appends to it.
pub const WARM_IDS: u32 = 500;
/// How often what a batch changed besides its messages is stored: a change waits in memory
/// for the next pass to start, and at most half of this more while the pass spreads out.
pub const PENDING_EVERY: Duration = Duration::from_secs(1);

/// A message a socket asks to send; membership and rate were checked by [`chat::submit`].
#[derive(Debug)]
pub struct Submission {
    pub conversation: Arc<str>,
    pub sender: String,
    /// The sender's socket: it gets the ack, everyone else the message.
    pub conn_id: u64,
    pub client_msg_id: ClientMsgId,
    pub body: MessageBody,
}

/// Handles to the writer tasks; cheap to clone.
#[derive(Clone)]
pub struct Writers {
    queues: Arc<[mpsc::Sender<Submission>]>,
    hasher: std::hash::RandomState,
}

impl Writers {
    /// Starts `count` writer tasks on `tracker`, and the thread that stores what their
    /// batches leave pending. They end once every handle is dropped and their queues are
    /// drained; the thread once they have ended and it has closed the store.
    pub fn start(
        store: &SurrealChatStore,
        hub: &Hub,
        count: usize,
        tracker: &TaskTracker,
    ) -> std::io::Result<Self> {
        // On a thread of its own: a SurrealDB statement runs to its end without yielding
        // (1-4 ms for a chunk of pending changes), and on a runtime worker it held up the
        // sockets and writers queued behind it there.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (running, writers_ended) = mpsc::channel(1);
        let queues = (0..count.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let (loads, loaded) = mpsc::unbounded_channel();
                let writer = Writer {
                    store: store.clone(),
                    hub: hub.clone(),
                    rx,
                    last_seq: HashMap::new(),
                    recent: RecentIds::default(),
                    parked: HashMap::new(),
                    loads,
                    loaded,
                    _running: running.clone(),
                };
                tracker.spawn(writer.run());
                tx
            })
            .collect();
        drop(running);
        let (ended, done) = tokio::sync::oneshot::channel();
        let pending_store = store.clone();
        std::thread::Builder::new()
            .name("pending-changes".into())
            .spawn(move || {
                runtime.block_on(store_pending_every(pending_store, writers_ended));
                let _ = ended.send(());
            })?;
        // Shutdown waits for the store to be closed.
        tracker.spawn(async move {
            let _ = done.await;
        });
        Ok(Writers {
            queues,
            hasher: std::hash::RandomState::new(),
        })
    }

    /// Queues a send for its conversation's writer; waits while that writer is full.
    pub async fn submit(&self, submission: Submission) -> Result<(), Refusal> {
        let h = self.hasher.hash_one(&submission.conversation);
        let queue = &self.queues[(h % self.queues.len() as u64) as usize];
        queue
            .send(submission)
            .await
            .map_err(|_| Refusal::new(ErrorCode::Internal, "the server is shutting down"))
    }
}

/// Where stored `(sender, client_msg_id)` pairs went (conversation and `seq`), bounded,
/// oldest forgotten first.
#[derive(Default)]
struct RecentIds {
    map: HashMap<(String, String), (Arc<str>, u64)>,
    order: VecDeque<(String, String)>,
}

impl RecentIds {
    fn get(&self, sender: &str, id: &str) -> Option<&(Arc<str>, u64)> {
        self.map.get(&(sender.to_owned(), id.to_owned()))
    }

    fn insert(&mut self, sender: &str, id: &str, conversation: &Arc<str>, seq: u64) {
        let key = (sender.to_owned(), id.to_owned());
        if self
            .map
            .insert(key.clone(), (conversation.clone(), seq))
            .is_none()
        {
            self.order.push_back(key);
            if self.order.len() > RECENT_IDS {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

struct Writer {
    store: SurrealChatStore,
    hub: Hub,
    rx: mpsc::Receiver<Submission>,
    /// Last stored `seq` of each conversation this writer has appended to.
    last_seq: HashMap<Arc<str>, u64>,
    recent: RecentIds,
    /// Conversations being loaded, with the sends that wait for them, in order.
    parked: HashMap<Arc<str>, Vec<Submission>>,
    /// Where loads of conversations report.
    loads: mpsc::UnboundedSender<Loaded>,
    loaded: mpsc::UnboundedReceiver<Loaded>,
    /// Dropped when the writer ends (see [`store_pending_every`]).
    _running: mpsc::Sender<()>,
}

/// A conversation a writer had not appended to yet: its last `seq` and newest messages.
struct Loaded {
    conversation: Arc<str>,
    result: Result<(u64, Vec<MessageRecord>), StoreError>,
}

/// Reads what a writer needs to know of a conversation before it appends to it.
async fn load(
    store: &SurrealChatStore,
    key: &str,
) -> Result<(u64, Vec<MessageRecord>), StoreError> {
    let last = store
        .last_seq(key)
        .await?
        .ok_or(StoreError::NoSuchConversation)?;
    let newest = store.history(key, Some(last + 1), WARM_IDS).await?;
    Ok((last, newest))
}

/// What woke a writer.
enum Wake {
    Queued(usize),
    Loaded(Loaded),
}

/// Stores what the writers' batches left pending (see [`SurrealChatStore::append_batch`])
/// every [`PENDING_EVERY`], spread over half of it; once every writer has ended (their
/// `running` senders are gone), closes the store and ends.
pub async fn store_pending_every(store: SurrealChatStore, mut writers_ended: mpsc::Receiver<()>) {
    let mut next = tokio::time::Instant::now() + PENDING_EVERY;
    loop {
        let ended = tokio::select! {
            _ = writers_ended.recv() => true,
            () = tokio::time::sleep_until(next) => false,
        };
        // Passes start every PENDING_EVERY, however long the last one took to spread out.
        next = tokio::time::Instant::now().max(next) + PENDING_EVERY;
        if ended {
            if let Err(e) = store.close().await {
                warn!(error = %e, "closing the store failed; the next start repairs it");
            }
            break;
        }
        if let Err(e) = store.store_pending(PENDING_EVERY / 2).await {
            warn!(error = %e, "storing pending changes failed; they are kept for the next try");
        }
    }
}

impl Writer {
    /// Commits what is queued, batch after batch, until every handle is gone, the queue
    /// is drained and no conversation is being loaded.
    async fn run(mut self) {
        let mut queued = Vec::with_capacity(MAX_BATCH);
        let mut open = true;
        while open || !self.parked.is_empty() {
            let wake = tokio::select! {
                // A loaded conversation first: its sends were queued before these.
                biased;
                Some(loaded) = self.loaded.recv() => Wake::Loaded(loaded),
                n = self.rx.recv_many(&mut queued, MAX_BATCH), if open => Wake::Queued(n),
            };
            let mut batch = Vec::with_capacity(MAX_BATCH);
            match wake {
                Wake::Queued(0) => open = false,
                Wake::Queued(_) => {}
                Wake::Loaded(loaded) => batch = self.learn(loaded),
            }
            for sub in queued.drain(..) {
                self.route(sub, &mut batch);
            }
            if !batch.is_empty() {
                self.commit(batch).await;
            }
        }
    }

    /// Puts a send in `batch` if its conversation is known; otherwise parks it while the
    /// conversation loads beside the writer, so that sends to known conversations do not
    /// wait for that.
    fn route(&mut self, sub: Submission, batch: &mut Vec<Submission>) {
        if let Some(parked) = self.parked.get_mut(&sub.conversation) {
            parked.push(sub);
        } else if self.last_seq.contains_key(&sub.conversation) {
            batch.push(sub);
        } else {
            let (store, loads, key) = (
                self.store.clone(),
                self.loads.clone(),
                sub.conversation.clone(),
            );
            tokio::spawn(async move {
                let result = load(&store, &key).await;
                // The writer holds a receiver until every load it started has reported.
                let _ = loads.send(Loaded {
                    conversation: key,
                    result,
                });
            });
            self.parked.insert(sub.conversation.clone(), vec![sub]);
        }
    }

    /// Takes in a loaded conversation; returns the sends that waited for it (refused if it
    /// could not be loaded).
    fn learn(&mut self, loaded: Loaded) -> Vec<Submission> {
        let subs = self.parked.remove(&loaded.conversation).unwrap_or_default();
        match loaded.result {
            Ok((last, newest)) => {
                self.know(&loaded.conversation, last, newest);
                subs
            }
            Err(e) => {
                let refusal: Refusal = e.into();
                for sub in &subs {
                    self.refuse(sub, refusal.clone());
                }
                Vec::new()
            }
        }
    }

    fn know(&mut self, key: &Arc<str>, last: u64, newest: Vec<MessageRecord>) {
        for m in newest {
            self.recent.insert(&m.sender, &m.client_msg_id, key, m.seq);
        }
        self.last_seq.insert(key.clone(), last);
    }

    /// The last stored `seq` of `key`, counted in memory once loaded. Loading it also
    /// learns the ids of the conversation's newest messages.
    async fn last_seq(&mut self, key: &Arc<str>) -> Result<u64, StoreError> {
        if let Some(&last) = self.last_seq.get(key) {
            return Ok(last);
        }
        let (last, newest) = load(&self.store, key).await?;
        self.know(key, last, newest);
        Ok(last)
    }

    /// The next `seq` of `key`, taken.
    async fn next_seq(&mut self, key: &Arc<str>) -> Result<u64, StoreError> {
        let next = self.last_seq(key).await? + 1;
        self.last_seq.insert(key.clone(), next);
        Ok(next)
    }

    async fn commit(&mut self, batch: Vec<Submission>) {
        let now = crate::now_ms();
        let mut records: Vec<MessageRecord> = Vec::with_capacity(batch.len());
        let mut senders: Vec<Submission> = Vec::with_capacity(batch.len());
        // Submissions repeating a `client_msg_id` of this batch or of a stored message.
        let mut repeats: Vec<Submission> = Vec::new();
        let mut in_batch: HashSet<(String, String)> = HashSet::new();
        for sub in batch {
            // Loading the conversation first teaches its newest ids.
            if let Err(e) = self.last_seq(&sub.conversation).await {
                self.refuse(&sub, e.into());
                continue;
            }
            let id = (sub.sender.clone(), sub.client_msg_id.to_string());
            if in_batch.contains(&id) || self.recent.get(&id.0, &id.1).is_some() {
                repeats.push(sub);
                continue;
            }
            let seq = match self.next_seq(&sub.conversation).await {
                Ok(seq) => seq,
                Err(e) => {
                    self.refuse(&sub, e.into());
                    continue;
                }
            };
            in_batch.insert(id);
            records.push(record(&sub, seq, now));
            senders.push(sub);
        }
        if !records.is_empty() {
            match self.store.append_batch(&records).await {
                Ok(()) => {
                    for (record, sub) in records.iter().zip(&senders) {
                        self.delivered(record, sub).await;
                    }
                }
                Err(StoreError::SeqTaken) => {
                    // A message stored before this writer started, re-sent: redo the batch
                    // one message at a time, looking each one up first.
                    self.forget_positions(&records);
                    for sub in &senders {
                        self.commit_one(sub).await;
                    }
                }
                Err(e) => {
                    warn!(error = %e, messages = records.len(), "storing a batch failed");
                    self.forget_positions(&records);
                    for sub in &senders {
                        self.refuse(sub, failed());
                    }
                }
            }
        }
        // After the batch: whatever the outcome, the store has the answer.
        for sub in &repeats {
            if !self.ack_stored(sub).await {
                self.refuse(sub, failed());
            }
        }
    }

    /// Stores one message on the slow path: the answer for an already stored
    /// `client_msg_id`, else a batch of one.
    async fn commit_one(&mut self, sub: &Submission) {
        if self.ack_stored(sub).await {
            return;
        }
        let result = match self.next_seq(&sub.conversation).await {
            Ok(seq) => {
                let record = record(sub, seq, crate::now_ms());
                self.store
                    .append_batch(std::slice::from_ref(&record))
                    .await
                    .map(|()| record)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(record) => self.delivered(&record, sub).await,
            Err(e) => {
                self.last_seq.remove(&sub.conversation);
                self.refuse(sub, e.into());
            }
        }
    }

    /// Acks a re-sent message with the stored original; `false` if there is none.
    async fn ack_stored(&mut self, sub: &Submission) -> bool {
        let Some((conversation, seq)) = self
            .recent
            .get(&sub.sender, sub.client_msg_id.as_str())
            .cloned()
        else {
            return false;
        };
        if conversation != sub.conversation {
            self.refuse(
                sub,
                Refusal::new(
                    ErrorCode::InvalidInput,
                    "client_msg_id: already used for a message in another conversation",
                ),
            );
            return true;
        }
        match self.store.message(&conversation, seq).await {
            Ok(Some(m)) => {
                self.ack(&m, sub);
                true
            }
            Ok(None) => false,
            Err(e) => {
                self.refuse(sub, e.into());
                true
            }
        }
    }

    /// After a failed commit the positions counted in memory are unknown: reload them.
    fn forget_positions(&mut self, records: &[MessageRecord]) {
        for r in records {
            self.last_seq.remove(r.conversation.as_str());
        }
    }

    /// A message is stored: fan it out to every member's sockets, then ack the sender.
    async fn delivered(&mut self, record: &MessageRecord, sub: &Submission) {
        self.recent.insert(
            &record.sender,
            &record.client_msg_id,
            &sub.conversation,
            record.seq,
        );
        let message = chat::message(record.clone());
        let frame = Utf8Bytes::from(
            ServerMsg::Message {
                message: message.clone(),
            }
            .encode(),
        );
        match chat::members(&self.hub, &self.store, &sub.conversation).await {
            Ok(members) => self.hub.push(
                &members,
                &Outbound::Message {
                    conversation: sub.conversation.clone(),
                    seq: record.seq,
                    frame,
                },
                Some(sub.conn_id),
            ),
            // Stored but not pushed: members get it when they next resume or open it.
            Err(e) => warn!(error = %e, "cannot read members to fan out a message"),
        }
        self.ack(record, sub);
    }

    fn ack(&self, record: &MessageRecord, sub: &Submission) {
        let ack = ServerMsg::Ack {
            client_msg_id: sub.client_msg_id.to_string(),
            message: chat::message(record.clone()),
        };
        self.hub.push_to(
            &sub.sender,
            sub.conn_id,
            Outbound::Ack {
                conversation: sub.conversation.clone(),
                seq: record.seq,
                frame: Utf8Bytes::from(ack.encode()),
            },
        );
    }

    fn refuse(&self, sub: &Submission, refusal: Refusal) {
        let msg = refusal.into_msg(Some(sub.client_msg_id.to_string()));
        self.hub
            .push_to(&sub.sender, sub.conn_id, Outbound::frame(&msg));
    }
}

fn record(sub: &Submission, seq: u64, now: i64) -> MessageRecord {
    MessageRecord {
        conversation: sub.conversation.to_string(),
        seq,
        sender: sub.sender.clone(),
        body: sub.body.as_str().to_owned(),
        client_msg_id: sub.client_msg_id.to_string(),
        sent_at: now,
    }
}

fn failed() -> Refusal {
    Refusal::new(ErrorCode::Internal, "the server failed; try again")
}
