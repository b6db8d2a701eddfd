//! Group commit: how sent messages and changes to messages become durable, numbered and
//! delivered.
//!
//! Each conversation belongs to one of a few writer tasks (by a hash of its key). A socket
//! hands its `send` (or edit, deletion, reaction) to that writer and goes on reading; the
//! writer takes everything queued (up to [`MAX_BATCH`]), gives each message and each change
//! the next `seq` of its conversation, stores the whole batch in one transaction — one sync
//! for all of them — and only then acks each sender and fans each message and change out
//! through the [`crate::hub`], in `seq` order. Nothing is acked before it is durable, and a
//! batch is stored whole or not at all, so `seq`s have no gaps. Since every change to a
//! conversation passes through its one writer, in order, a change is checked against the
//! message as every earlier change left it ([`crate::changes`]), with no race.
//!
//! Numbering starts from the conversation's head in the store
//! ([`SurrealChatStore::last_seq`]: memory once known); the writer is the only one that
//! appends to its conversations and waits for each commit, so the head is always the last
//! committed `seq`. A conversation whose head is not known yet is read by a task beside
//! the writer: sends to it wait, in order, the others go on.
//!
//! A re-sent message (same sender and `client_msg_id`) is acked with the original instead
//! of being stored twice, however old it is: the store keeps a `client_msg` record per
//! message, written in the message's own transaction, and refuses a second one; the writer
//! remembers the last [`RECENT_IDS`] it stored so that a quick retry costs no database read.
//!
//! What a batch changes besides its messages — each conversation's last message, the
//! sender's read position (sending marks the conversation read) — waits in the store's
//! heads and is written by one thread beside the writers every [`PENDING_EVERY`], so that
//! no send waits for it, and once more when the last writer has ended. A crash loses none
//! of it: the next start sets the conversations' fields and their senders' read positions
//! from the messages. That thread runs a runtime of its own and spreads its transactions
//! over half of [`PENDING_EVERY`]: a SurrealDB statement runs to its end without yielding,
//! and on the sockets' runtime those bursts held up the sockets queued behind them. The
//! search index follows on a thread of its own, at the lowest priority ([`crate::indexer`]),
//! stopped before the store is closed.

use app::{
    domain::{ClientMsgId, FileId, MessageBody},
    protocol::{Attachment, ErrorCode, Quote, ServerMsg},
};
use axum::extract::ws::Utf8Bytes;
use std::{
    collections::{HashMap, HashSet, VecDeque},
    hash::BuildHasher,
    sync::Arc,
    time::Duration,
};
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

use crate::{
    changes::Request,
    hub::{Hub, Outbound},
    indexer::Indexer,
    refusal::Refusal,
    store::{
        Batch, ChangeKind, ChangeRecord, Entry, Mark, Members, MentionKey, MessageRecord,
        SentUpload, StoreError, SurrealChatStore, UploadRecord,
    },
    telemetry::CommitMetrics,
};

/// Why a send's files cannot go with it.
#[derive(Debug, PartialEq)]
enum NotAttached {
    /// They went with this very message already: the send is a retry.
    Repeat,
    Refused(Refusal),
}

/// The files a send asks for, as its message will carry them: each must be an upload of
/// the sender's to this conversation, not sent with another message, and named once
/// (`taken`: the files of this batch's earlier messages).
fn attachments(
    wanted: &[FileId],
    uploads: &HashMap<String, UploadRecord>,
    sender: &str,
    conversation: &str,
    client_msg_id: &str,
    taken: &HashSet<String>,
) -> Result<Vec<Attachment>, NotAttached> {
    let mut files = Vec::with_capacity(wanted.len());
    for id in wanted {
        let upload = uploads
            .get(id.as_str())
            .filter(|u| u.owner == sender && u.conversation == conversation)
            .ok_or_else(|| {
                NotAttached::Refused(Refusal::new(
                    ErrorCode::NotFound,
                    format!("attachments: no file {id} of yours in this conversation"),
                ))
            })?;
        match &upload.sent {
            Some((_, by)) if by == client_msg_id => return Err(NotAttached::Repeat),
            Some(_) => {
                return Err(NotAttached::Refused(Refusal::new(
                    ErrorCode::InvalidInput,
                    format!("attachments: file {id} was sent with another message"),
                )))
            }
            None => {}
        }
        if taken.contains(id.as_str()) || files.iter().any(|f: &Attachment| f.id == id.as_str()) {
            return Err(NotAttached::Refused(Refusal::new(
                ErrorCode::InvalidInput,
                format!("attachments: file {id} is named twice"),
            )));
        }
        files.push(upload.attachment());
    }
    Ok(files)
}

/// The mentions that appeared and went when changes took `changed` messages from the
/// mentions they had in `before` to their own.
fn mention_changes(
    before: &HashMap<(Arc<str>, u64), Vec<String>>,
    changed: &[MessageRecord],
) -> (Vec<MentionKey>, Vec<MentionKey>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for m in changed {
        let Some(old) = before.get(&(Arc::from(m.conversation.as_str()), m.seq)) else {
            continue;
        };
        let key = |user: &String| MentionKey {
            user: user.clone(),
            conversation: m.conversation.clone(),
            seq: m.seq,
        };
        added.extend(m.mentions.iter().filter(|u| !old.contains(u)).map(key));
        removed.extend(old.iter().filter(|u| !m.mentions.contains(u)).map(key));
    }
    (added, removed)
}

/// Writer tasks: two, so that one can prepare and fan out while the other's commit syncs.
pub const WRITERS: usize = 2;
/// Most messages stored by one commit.
pub const MAX_BATCH: usize = 1024;
/// Sends queued per writer before senders wait (back-pressure on their sockets).
const QUEUE: usize = 4 * MAX_BATCH;
/// Attempts at a batch refused for ids or positions the writer did not know, before what
/// is left is stored one message at a time.
const COMMIT_ATTEMPTS: usize = 3;
/// How long a batch that keeps losing the race for its positions to other nodes' batches
/// (a busy room written through every node) goes again before what is left is tried one
/// message at a time, and refused if that loses too. Its senders wait for their acks
/// meanwhile; no count of tries would be right for every load, a time is.
const RACE_BUDGET: Duration = Duration::from_secs(5);
/// Stored `(sender, client_msg_id)` pairs each writer remembers.
pub const RECENT_IDS: usize = 100_000;
/// How often what a batch changed besides its messages is stored: a change waits in memory
/// for the next pass to start, and at most half of this more while the pass spreads out.
pub const PENDING_EVERY: Duration = Duration::from_secs(1);

/// A message to send, or a change to a message, that a socket asks for; membership and
/// rate were checked by the chat service.
#[derive(Debug)]
pub struct Submission {
    pub conversation: Arc<str>,
    /// Who asks (the sender of a message, the actor of a change).
    pub sender: String,
    /// The asking socket: it gets the ack (or the refusal), everyone else the message.
    pub conn_id: u64,
    pub action: Action,
}

#[derive(Debug)]
pub enum Action {
    Send {
        client_msg_id: ClientMsgId,
        /// `None`: files only.
        body: Option<MessageBody>,
        reply_to: Option<u64>,
        attachments: Vec<FileId>,
    },
    /// A change to the message at `seq` (see [`crate::changes`]).
    Change { seq: u64, request: Request },
}

impl Action {
    /// The message this action needs to see: the one it changes or answers.
    fn target(&self) -> Option<u64> {
        match self {
            Action::Send { reply_to, .. } => *reply_to,
            Action::Change { seq, .. } => Some(*seq),
        }
    }

    fn client_msg_id(&self) -> Option<&ClientMsgId> {
        match self {
            Action::Send { client_msg_id, .. } => Some(client_msg_id),
            Action::Change { .. } => None,
        }
    }
}

/// Why a batch goes again.
enum Retry {
    /// Some of its ids were stored already.
    Ids,
    /// Another writer took its positions first.
    Raced,
}

/// The pause before the `race`th attempt again: random, up to 1, 2, 4 … 32 ms.
fn race_pause(race: usize) -> Duration {
    let mut byte = [0u8; 2];
    let _ = getrandom::fill(&mut byte);
    let ceiling = 1u64 << race.min(5);
    Duration::from_micros(u64::from(u16::from_le_bytes(byte)) % (ceiling * 1000))
}

/// What an accepted submission became, for answering once the batch is stored.
enum Outcome {
    /// A new message (the `entries` index), quoting the message it answers.
    Sent(usize, Option<Quote>),
    /// A change, as sent to every member.
    Changed { seq: u64, frame: Utf8Bytes },
}

/// Handles to the writer tasks; cheap to clone.
#[derive(Clone)]
pub struct Writers {
    queues: Arc<[mpsc::Sender<Submission>]>,
    hasher: std::hash::RandomState,
}

impl Writers {
    /// Starts `count` writer tasks on `tracker`, and the thread that stores what their
    /// batches leave pending. They end once every handle is dropped, or `stop` is
    /// cancelled, and what was queued is stored; the thread once they have ended and it has
    /// closed the store.
    pub fn start(
        store: &SurrealChatStore,
        hub: &Hub,
        count: usize,
        metrics: &CommitMetrics,
        tracker: &TaskTracker,
        stop: &CancellationToken,
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
                    recent: RecentIds::default(),
                    parked: HashMap::new(),
                    loads,
                    loaded,
                    stop: stop.clone(),
                    _running: running.clone(),
                    metrics: metrics.clone(),
                };
                tracker.spawn(writer.run());
                tx
            })
            .collect();
        drop(running);
        let (ended, done) = tokio::sync::oneshot::channel();
        let pending_store = store.clone();
        let indexer = Indexer::start(store.clone())?;
        std::thread::Builder::new()
            .name("pending-changes".into())
            .spawn(move || {
                runtime.block_on(store_pending_every(pending_store, indexer, writers_ended));
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
/// oldest forgotten first: a cache in front of the store's `client_msg` records.
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
    recent: RecentIds,
    /// Conversations whose heads are being read, with the sends that wait for them, in
    /// order.
    parked: HashMap<Arc<str>, Vec<Submission>>,
    /// Where reads of heads report.
    loads: mpsc::UnboundedSender<Loaded>,
    loaded: mpsc::UnboundedReceiver<Loaded>,
    /// Cancelled at shutdown: store what is queued and end, whoever still holds a handle.
    stop: CancellationToken,
    /// Dropped when the writer ends (see [`store_pending_every`]).
    _running: mpsc::Sender<()>,
    metrics: CommitMetrics,
}

/// A conversation whose head was read: `Ok(None)` when it does not exist.
struct Loaded {
    conversation: Arc<str>,
    result: Result<Option<u64>, StoreError>,
}

/// What woke a writer.
enum Wake {
    Queued(usize),
    Loaded(Loaded),
    Stop,
}

/// Stores what the writers' batches left pending (see [`SurrealChatStore::store_pending`])
/// every [`PENDING_EVERY`], spread over half of it; once every writer has ended (their
/// `running` senders are gone), stops the search indexer, closes the store and ends.
pub async fn store_pending_every(
    store: SurrealChatStore,
    indexer: Indexer,
    mut writers_ended: mpsc::Receiver<()>,
) {
    let mut next = tokio::time::Instant::now() + PENDING_EVERY;
    loop {
        let ended = tokio::select! {
            _ = writers_ended.recv() => true,
            () = tokio::time::sleep_until(next) => false,
        };
        // Passes start every PENDING_EVERY, however long the last one took to spread out.
        next = tokio::time::Instant::now().max(next) + PENDING_EVERY;
        if ended {
            indexer.stop();
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
    /// is drained and no conversation is being read.
    async fn run(mut self) {
        let mut queued = Vec::with_capacity(MAX_BATCH);
        let mut open = true;
        while open || !self.parked.is_empty() {
            let wake = tokio::select! {
                // A loaded conversation first: its sends were queued before these.
                biased;
                Some(loaded) = self.loaded.recv() => Wake::Loaded(loaded),
                n = self.rx.recv_many(&mut queued, MAX_BATCH), if open => Wake::Queued(n),
                () = self.stop.cancelled(), if open => Wake::Stop,
            };
            let mut batch = Vec::with_capacity(MAX_BATCH);
            match wake {
                Wake::Queued(0) => open = false,
                Wake::Queued(_) => {}
                Wake::Loaded(loaded) => batch = self.learn(loaded),
                Wake::Stop => {
                    // Nothing more is taken; what is queued is stored (a batch at a time).
                    self.rx.close();
                    while let Ok(sub) = self.rx.try_recv() {
                        queued.push(sub);
                    }
                    open = false;
                }
            }
            for sub in queued.drain(..) {
                self.route(sub, &mut batch);
            }
            if !batch.is_empty() {
                self.commit(batch).await;
            }
        }
    }

    /// Puts a send in `batch` if its conversation's head is known; otherwise parks it while
    /// the head is read beside the writer, so that sends to known conversations do not
    /// wait for that.
    fn route(&mut self, sub: Submission, batch: &mut Vec<Submission>) {
        if let Some(parked) = self.parked.get_mut(&sub.conversation) {
            parked.push(sub);
        } else if self.store.known_last_seq(&sub.conversation).is_some() {
            batch.push(sub);
        } else {
            let (store, loads, key) = (
                self.store.clone(),
                self.loads.clone(),
                sub.conversation.clone(),
            );
            tokio::spawn(async move {
                let result = store.last_seq(&key).await;
                // The writer holds a receiver until every read it started has reported.
                let _ = loads.send(Loaded {
                    conversation: key,
                    result,
                });
            });
            self.parked.insert(sub.conversation.clone(), vec![sub]);
        }
    }

    /// Takes in a conversation whose head was read; returns the sends that waited for it
    /// (refused if it could not be read or does not exist).
    fn learn(&mut self, loaded: Loaded) -> Vec<Submission> {
        let subs = self.parked.remove(&loaded.conversation).unwrap_or_default();
        let refusal: Refusal = match loaded.result {
            Ok(Some(_)) => return subs,
            Ok(None) => StoreError::NoSuchConversation.into(),
            Err(e) => e.into(),
        };
        for sub in &subs {
            self.refuse(sub, refusal.clone());
        }
        Vec::new()
    }

    /// Stores a batch and answers every send in it. A batch refused because some of its
    /// ids were stored before this writer remembered them (a retry from before a restart)
    /// learns where they went in one read and goes again without them; after
    /// [`COMMIT_ATTEMPTS`], what is left is stored one message at a time. A batch that
    /// lost a race for its positions (another node of a cluster wrote to the conversation
    /// first) goes again after the head is read again, for up to [`RACE_BUDGET`], with a
    /// short random pause so that racing nodes fall out of step.
    async fn commit(&mut self, mut batch: Vec<Submission>) {
        let (mut attempts, mut races) = (0, 0);
        let started = std::time::Instant::now();
        while attempts < COMMIT_ATTEMPTS {
            match self.try_commit(batch).await {
                None => return,
                Some((again, Retry::Raced)) if started.elapsed() < RACE_BUDGET => {
                    races += 1;
                    batch = again;
                    tokio::time::sleep(race_pause(races)).await;
                }
                Some((again, _)) => {
                    attempts += 1;
                    batch = again;
                }
            }
        }
        // What is left goes one at a time: one bad submission cannot hold up the others.
        for sub in batch {
            if let Some((left, why)) = self.try_commit(vec![sub]).await {
                for sub in &left {
                    warn!(
                        conversation = %sub.conversation,
                        raced = matches!(why, Retry::Raced),
                        "a send could not be stored however often it was tried; refused"
                    );
                    self.refuse(sub, Refusal::internal());
                }
            }
        }
    }

    /// One attempt at a batch; `Some` with the submissions to try again when it was
    /// refused for an id or a position the store had and the writer did not know. Each
    /// change is checked against its message as the batch left it (see
    /// [`crate::changes`]): a refused one is answered at once and stores nothing.
    async fn try_commit(&mut self, batch: Vec<Submission>) -> Option<(Vec<Submission>, Retry)> {
        let now = crate::clock::now_ms();
        let mut states = match self.targets(&batch).await {
            Ok(states) => states,
            Err(e) => {
                warn!(error = %e, "cannot read the messages a batch changes");
                for sub in &batch {
                    self.refuse(sub, Refusal::internal());
                }
                return None;
            }
        };
        let uploads = match self.uploads_of(&batch).await {
            Ok(uploads) => uploads,
            Err(e) => {
                warn!(error = %e, "cannot read the files a batch sends");
                for sub in &batch {
                    self.refuse(sub, Refusal::internal());
                }
                return None;
            }
        };
        // Uploads this batch's messages carry, and those of the messages it deletes.
        let mut sent_uploads: Vec<SentUpload> = Vec::new();
        let mut taken: HashSet<String> = HashSet::new();
        let mut deleted_uploads: Vec<String> = Vec::new();
        let mut entries: Vec<Entry> = Vec::with_capacity(batch.len());
        let mut accepted: Vec<(Submission, Outcome)> = Vec::with_capacity(batch.len());
        // Submissions repeating a `client_msg_id` of this batch or of a stored message.
        let mut repeats: Vec<Submission> = Vec::new();
        let mut in_batch: HashSet<(String, String)> = HashSet::new();
        // The messages this batch's changes changed.
        let mut touched: Vec<(Arc<str>, u64)> = Vec::new();
        // Per conversation, the last position given out in this batch.
        let mut given: HashMap<Arc<str>, Mark> = HashMap::new();
        // Who may be mentioned, per conversation (read when a text has an `@`).
        let mut members: HashMap<Arc<str>, Members> = HashMap::new();
        // New messages' mentions, and the mentions of changed messages before the batch.
        let mut mentioned: Vec<MentionKey> = Vec::new();
        let mut mentions_before: HashMap<(Arc<str>, u64), Vec<String>> = HashMap::new();
        for sub in batch {
            let head = match given.get(&sub.conversation).copied() {
                Some(mark) => mark,
                // Routed here only once known; a head is never forgotten.
                None => match self.store.known_head(&sub.conversation) {
                    Some(mark) => mark,
                    None => {
                        self.refuse(&sub, Refusal::internal());
                        continue;
                    }
                },
            };
            let seq = head.seq + 1;
            let key = sub.conversation.clone();
            let outcome = match &sub.action {
                Action::Send {
                    client_msg_id,
                    body,
                    reply_to,
                    attachments: wanted,
                } => {
                    let id = (sub.sender.clone(), client_msg_id.to_string());
                    if in_batch.contains(&id) || self.recent.get(&id.0, &id.1).is_some() {
                        repeats.push(sub);
                        continue;
                    }
                    let quote = match reply_to {
                        None => None,
                        Some(t) => match states.get(&(key.clone(), *t)) {
                            Some(m) => Some(m.quote()),
                            None => {
                                self.refuse(&sub, crate::changes::no_such_message("reply_to"));
                                continue;
                            }
                        },
                    };
                    let files = match attachments(
                        wanted,
                        &uploads,
                        &sub.sender,
                        &key,
                        client_msg_id.as_str(),
                        &taken,
                    ) {
                        Ok(files) => files,
                        Err(NotAttached::Repeat) => {
                            repeats.push(sub);
                            continue;
                        }
                        Err(NotAttached::Refused(refusal)) => {
                            self.refuse(&sub, refusal);
                            continue;
                        }
                    };
                    for f in &files {
                        taken.insert(f.id.clone());
                        sent_uploads.push(SentUpload::new(&f.id, seq, client_msg_id.as_str()));
                    }
                    in_batch.insert(id);
                    let body = body.as_ref().map_or("", MessageBody::as_str);
                    let mentions = self.mentions(&mut members, &key, &sub.sender, body).await;
                    mentioned.extend(mentions.iter().map(|user| MentionKey {
                        user: user.clone(),
                        conversation: key.to_string(),
                        seq,
                    }));
                    let record = MessageRecord {
                        conversation: key.to_string(),
                        seq,
                        n: head.n + 1,
                        sender: sub.sender.clone(),
                        body: body.to_owned(),
                        client_msg_id: client_msg_id.to_string(),
                        sent_at: now,
                        reply_to: *reply_to,
                        mentions,
                        attachments: files,
                        ..MessageRecord::default()
                    };
                    given.insert(key, Mark::new(seq, head.n + 1));
                    entries.push(Entry::Message(record));
                    Outcome::Sent(entries.len() - 1, quote)
                }
                Action::Change {
                    seq: target,
                    request,
                } => {
                    let Some(message) = states.get_mut(&(key.clone(), *target)) else {
                        self.refuse(&sub, crate::changes::no_such_message("seq"));
                        continue;
                    };
                    let before = message.mentions.clone();
                    let files: Vec<String> =
                        message.attachments.iter().map(|a| a.id.clone()).collect();
                    let kind = match crate::changes::apply(request, &sub.sender, now, message) {
                        Ok(Some(kind)) => {
                            if kind == ChangeKind::Delete {
                                deleted_uploads.extend(files);
                            }
                            if kind == ChangeKind::Edit {
                                message.mentions = self
                                    .mentions(&mut members, &key, &message.sender, &message.body)
                                    .await;
                            }
                            mentions_before
                                .entry((key.clone(), *target))
                                .or_insert(before);
                            kind
                        }
                        // Already as asked: nothing to store or tell.
                        Ok(None) => continue,
                        Err(refusal) => {
                            self.refuse(&sub, refusal);
                            continue;
                        }
                    };
                    let change = ChangeRecord {
                        conversation: key.to_string(),
                        seq,
                        n: head.n,
                        actor: sub.sender.clone(),
                        target: *target,
                        kind,
                        at: now,
                    };
                    let frame = Utf8Bytes::from(
                        ServerMsg::Changed {
                            change: change.to_wire(message),
                        }
                        .encode(),
                    );
                    given.insert(key.clone(), Mark::new(seq, head.n));
                    touched.push((key, *target));
                    entries.push(Entry::Change(change));
                    Outcome::Changed { seq, frame }
                }
            };
            accepted.push((sub, outcome));
        }
        let mut again = None;
        if !entries.is_empty() {
            touched.sort();
            touched.dedup();
            let changed: Vec<MessageRecord> = touched
                .iter()
                .filter_map(|k| states.get(k).cloned())
                .collect();
            let (more, unmentioned) = mention_changes(&mentions_before, &changed);
            // Whose count of unread mentions the changes moved.
            let recount: HashSet<(String, String)> = more
                .iter()
                .chain(&unmentioned)
                .map(|k| (k.user.clone(), k.conversation.clone()))
                .collect();
            mentioned.extend(more);
            let batch = Batch {
                entries,
                changed,
                mentioned,
                unmentioned,
                sent_uploads,
                deleted_uploads,
            };
            let started = std::time::Instant::now();
            let stored = self.store.commit(&batch).await;
            if stored.is_ok() {
                self.metrics.seconds.record(started.elapsed().as_secs_f64());
                self.metrics
                    .entries
                    .record((batch.entries.len() + batch.changed.len()) as f64);
            }
            match stored {
                Ok(()) => {
                    self.answer(accepted, batch.entries).await;
                    self.recount_mentions(recount);
                }
                Err(e) => {
                    let (subs, _): (Vec<Submission>, Vec<Outcome>) = accepted.into_iter().unzip();
                    match e {
                        StoreError::ClientMsgIdTaken => {
                            self.metrics.conflicts.increment(1);
                            // Sent before this writer remembered it: learn where each went.
                            if self.learn_ids(&subs).await {
                                again = Some((subs, Retry::Ids));
                            } else {
                                for sub in &subs {
                                    self.refuse(sub, Refusal::internal());
                                }
                            }
                        }
                        StoreError::SeqTaken | StoreError::OutOfSequence => {
                            self.metrics.conflicts.increment(1);
                            self.resync(&given).await;
                            again = Some((subs, Retry::Raced));
                        }
                        e => {
                            self.metrics.failures.increment(1);
                            warn!(error = %e, entries = subs.len(), "storing a batch failed");
                            for sub in &subs {
                                self.refuse(sub, Refusal::internal());
                            }
                        }
                    }
                }
            }
        }
        // After the batch: whatever the outcome, the store has the answer.
        for sub in &repeats {
            if !self.ack_stored(sub).await {
                warn!(
                    conversation = %sub.conversation,
                    "a repeated client_msg_id has no stored message; refused"
                );
                self.refuse(sub, Refusal::internal());
            }
        }
        again
    }

    /// The members of `key` that `body` mentions, `sender` excepted (see [`app::mention`]).
    async fn mentions(
        &self,
        members: &mut HashMap<Arc<str>, Members>,
        key: &Arc<str>,
        sender: &str,
        body: &str,
    ) -> Vec<String> {
        if !body.contains('@') {
            return Vec::new();
        }
        let names = app::mention::mentioned_names(body);
        if names.is_empty() {
            return names;
        }
        // Members are read only for a text that names someone.
        let who = match members.get(key) {
            Some(m) => m.clone(),
            None => match self.store.members(key).await {
                Ok(m) => {
                    members.insert(key.clone(), m.clone());
                    m
                }
                // The message goes without its mentions rather than not at all.
                Err(e) => {
                    warn!(error = %e, "cannot read members to find mentions");
                    return Vec::new();
                }
            },
        };
        crate::changes::mentions(names, sender, &who)
    }

    /// Edits and deletions changed whom messages mention: each `(user, conversation)`
    /// concerned gets its read state again, with the count of unread mentions as it is now.
    fn recount_mentions(&self, concerned: HashSet<(String, String)>) {
        if concerned.is_empty() {
            return;
        }
        let (store, hub) = (self.store.clone(), self.hub.clone());
        tokio::spawn(async move {
            for (user, key) in concerned {
                match store.read_state(&user, &key).await {
                    Ok(msg) => hub.push(&[user], &Outbound::frame(&msg), None),
                    Err(e) => warn!(error = %e, "cannot recount mentions"),
                }
            }
        });
    }

    /// The messages a batch changes or answers, as stored, by conversation and `seq`: one
    /// read per conversation that has any.
    /// The uploads the batch's sends name, by file id: one read.
    async fn uploads_of(
        &self,
        batch: &[Submission],
    ) -> Result<HashMap<String, UploadRecord>, StoreError> {
        let ids: Vec<String> = batch
            .iter()
            .filter_map(|sub| match &sub.action {
                Action::Send { attachments, .. } => Some(attachments),
                Action::Change { .. } => None,
            })
            .flatten()
            .map(|id| id.as_str().to_owned())
            .collect();
        Ok(self
            .store
            .uploads(&ids)
            .await?
            .into_iter()
            .map(|u| (u.id.clone(), u))
            .collect())
    }

    async fn targets(
        &self,
        batch: &[Submission],
    ) -> Result<HashMap<(Arc<str>, u64), MessageRecord>, StoreError> {
        let mut wanted: HashMap<&Arc<str>, Vec<u64>> = HashMap::new();
        for sub in batch {
            if let Some(t) = sub.action.target() {
                wanted.entry(&sub.conversation).or_default().push(t);
            }
        }
        let mut states = HashMap::new();
        for (key, mut seqs) in wanted {
            seqs.sort_unstable();
            seqs.dedup();
            for (seq, m) in self.store.messages_at(key, &seqs).await? {
                states.insert((key.clone(), seq), m);
            }
        }
        Ok(states)
    }

    /// A batch is stored: every message and change goes out to the members' sockets, in
    /// order, and each sender gets the ack of their message.
    async fn answer(&mut self, accepted: Vec<(Submission, Outcome)>, entries: Vec<Entry>) {
        let mut entries: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
        let mut members: HashMap<Arc<str>, Option<crate::store::Members>> = HashMap::new();
        for (sub, outcome) in accepted {
            let who = match members.get(&sub.conversation) {
                Some(m) => m.clone(),
                None => {
                    let m = match self.store.members(&sub.conversation).await {
                        Ok(m) => Some(m),
                        // Stored but not pushed: members get it when they next resume or
                        // open the conversation.
                        Err(e) => {
                            warn!(error = %e, "cannot read members to fan out");
                            None
                        }
                    };
                    members.insert(sub.conversation.clone(), m.clone());
                    m
                }
            };
            match outcome {
                Outcome::Sent(i, quote) => {
                    if let Some(Entry::Message(record)) = entries.get_mut(i).and_then(Option::take)
                    {
                        self.delivered(&record, quote, &sub, who.as_deref());
                    }
                }
                Outcome::Changed { seq, frame } => {
                    if let Some(who) = &who {
                        // A moderator outside the conversation (a server admin) is answered
                        // on the socket that asked.
                        if who.binary_search(&sub.sender).is_err() {
                            self.hub.push_to(
                                &sub.sender,
                                sub.conn_id,
                                Outbound::Frame(frame.clone()),
                            );
                        }
                        self.hub.push(
                            who,
                            &Outbound::message(sub.conversation.clone(), seq, None, frame),
                            None,
                        );
                    }
                }
            }
        }
    }

    /// Reads where these sends' ids went, for those stored, into the writer's memory;
    /// `false` if the store could not say.
    async fn learn_ids(&mut self, subs: &[Submission]) -> bool {
        let pairs: Vec<(String, String)> = subs
            .iter()
            .filter_map(|s| Some((s.sender.clone(), s.action.client_msg_id()?.to_string())))
            .collect();
        match self.store.sent_messages(&pairs).await {
            Ok(found) => {
                for ((sender, id), (conversation, seq)) in found {
                    self.recent
                        .insert(&sender, &id, &Arc::from(conversation), seq);
                }
                true
            }
            Err(e) => {
                warn!(error = %e, "cannot read where re-sent ids went");
                false
            }
        }
    }

    /// Makes the heads of these conversations follow what is really stored.
    async fn resync(&self, conversations: &HashMap<Arc<str>, Mark>) {
        let keys: Vec<&str> = conversations.keys().map(|k| &**k).collect();
        if let Err(e) = self.store.resync_heads(&keys).await {
            warn!(error = %e, "cannot re-read the heads of a batch's conversations");
        }
    }

    /// Acks a re-sent message with the stored original; `false` if there is none.
    async fn ack_stored(&mut self, sub: &Submission) -> bool {
        let Some(id) = sub.action.client_msg_id().map(ClientMsgId::as_str) else {
            return false;
        };
        let found = match self.recent.get(&sub.sender, id) {
            Some((conversation, seq)) => Ok(Some((conversation.to_string(), *seq))),
            None => self.store.sent_message(&sub.sender, id).await,
        };
        let (conversation, seq) = match found {
            Ok(Some(at)) => at,
            Ok(None) => return false,
            Err(e) => {
                self.refuse(sub, e.into());
                return true;
            }
        };
        if *conversation != *sub.conversation {
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
                self.recent
                    .insert(&m.sender, &m.client_msg_id, &sub.conversation, m.seq);
                let quote = match m.reply_to {
                    Some(_) => self
                        .store
                        .quotes(&conversation, [&m])
                        .await
                        .ok()
                        .and_then(|q| m.reply_to.and_then(|r| q.get(&r).cloned())),
                    None => None,
                };
                self.ack(&m, quote, sub);
                true
            }
            Ok(None) => false,
            Err(e) => {
                self.refuse(sub, e.into());
                true
            }
        }
    }

    /// A message is stored: fan it out to every member's sockets (`members`, when they
    /// could be read), then ack the sender.
    fn delivered(
        &mut self,
        record: &MessageRecord,
        quote: Option<Quote>,
        sub: &Submission,
        members: Option<&[String]>,
    ) {
        self.recent.insert(
            &record.sender,
            &record.client_msg_id,
            &sub.conversation,
            record.seq,
        );
        if let Some(members) = members {
            let frame = Utf8Bytes::from(
                ServerMsg::Message {
                    message: record.to_wire(quote.clone()),
                }
                .encode(),
            );
            self.hub.push(
                members,
                &Outbound::message(
                    sub.conversation.clone(),
                    record.seq,
                    Some(record.sender.as_str().into()),
                    frame,
                ),
                Some(sub.conn_id),
            );
        }
        self.ack(record, quote, sub);
    }

    fn ack(&self, record: &MessageRecord, quote: Option<Quote>, sub: &Submission) {
        let ack = ServerMsg::Ack {
            client_msg_id: record.client_msg_id.clone(),
            message: record.to_wire(quote),
        };
        self.hub.push_to(
            &sub.sender,
            sub.conn_id,
            Outbound::ack(
                sub.conversation.clone(),
                record.seq,
                record.client_msg_id.as_str().into(),
                Utf8Bytes::from(ack.encode()),
            ),
        );
    }

    fn refuse(&self, sub: &Submission, refusal: Refusal) {
        let id = sub.action.client_msg_id().map(ToString::to_string);
        let msg = refusal.into_msg(id);
        self.hub
            .push_to(&sub.sender, sub.conn_id, Outbound::frame(&msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, StorageKind};
    use app::domain::{DisplayName, Username};
    use app::protocol::Message;
    use std::path::Path;

    struct Setup {
        db: Database,
        store: SurrealChatStore,
        writers: Writers,
        /// Alice's socket (connection 1).
        alice: crate::hub::Registration,
        ab: String,
        _hub: Hub,
    }

    async fn setup() -> Setup {
        let db = Database::open(StorageKind::Memory, Path::new("unused"))
            .await
            .unwrap();
        let store = SurrealChatStore::new(&db, 1).await.unwrap();
        for name in ["alice", "bob"] {
            store
                .create_user(
                    &Username::parse(name).unwrap(),
                    &DisplayName::parse(name).unwrap(),
                    "h",
                    false,
                    1,
                )
                .await
                .unwrap();
        }
        let ab = store.open_direct("alice", "bob", 1).await.unwrap();
        let hub = Hub::default();
        let alice = hub.try_register("alice", "s", 1, 32).unwrap();
        let writers = Writers::start(
            &store,
            &hub,
            1,
            &CommitMetrics::unregistered(),
            &TaskTracker::new(),
            &CancellationToken::new(),
        )
        .unwrap();
        Setup {
            db,
            store,
            writers,
            alice,
            ab,
            _hub: hub,
        }
    }

    fn send(conversation: &str, id: &str, body: &str) -> Submission {
        Submission {
            conversation: Arc::from(conversation),
            sender: "alice".into(),
            conn_id: 1,
            action: Action::Send {
                client_msg_id: ClientMsgId::parse(id).unwrap(),
                body: Some(MessageBody::parse(body).unwrap()),
                attachments: Vec::new(),
                reply_to: None,
            },
        }
    }

    /// The next frame for Alice's socket, decoded.
    async fn next(outbox: &mut crate::outbox::Outbox<Outbound>) -> ServerMsg {
        let out = tokio::time::timeout(Duration::from_secs(10), outbox.recv())
            .await
            .expect("a frame in time")
            .expect("the outbox is open");
        let frame = match out {
            Outbound::Frame(f) => f,
            Outbound::Message(live) => live.frame.clone(),
            Outbound::Ack(ack) => ack.frame,
        };
        ServerMsg::decode(frame.as_str()).unwrap()
    }

    async fn acked(outbox: &mut crate::outbox::Outbox<Outbound>) -> Message {
        match next(outbox).await {
            ServerMsg::Ack { message, .. } => message,
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    async fn refused(outbox: &mut crate::outbox::Outbox<Outbound>) -> ErrorCode {
        match next(outbox).await {
            ServerMsg::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    async fn run_sql(db: &Database, sql: &str) {
        db.handle().query(sql).await.unwrap().check().unwrap();
    }

    #[tokio::test]
    async fn a_mention_is_stored_as_its_own_row_and_an_edit_moves_it() {
        let mut s = setup().await;
        s.writers
            .submit(send(&s.ab, "m1", "hi @Bob and @zed"))
            .await
            .unwrap();
        let m = acked(&mut s.alice.outbox).await;
        assert_eq!(m.mentions, vec!["bob".to_owned()]);
        let mut res =
            s.db.handle()
                .query("SELECT VALUE id FROM mention")
                .await
                .unwrap();
        let ids: Vec<surrealdb::types::RecordId> = res.take(0).unwrap();
        assert_eq!(ids.len(), 1);
        let unread = |after| {
            let store = s.store.clone();
            let ab = s.ab.clone();
            async move { store.mentions_after("bob", &ab, after, 1).await.unwrap() }
        };
        assert_eq!((unread(0).await, unread(m.seq).await), (1, 0));
        s.writers
            .submit(Submission {
                action: Action::Change {
                    seq: m.seq,
                    request: Request::Edit(MessageBody::parse("hi all").unwrap()),
                },
                ..send(&s.ab, "unused", "x")
            })
            .await
            .unwrap();
        next(&mut s.alice.outbox).await;
        assert_eq!(unread(0).await, 0, "the edit took the mention away");
    }

    #[tokio::test]
    async fn sends_are_numbered_from_the_head_and_acked_in_order() {
        let mut s = setup().await;
        for i in 1..=5 {
            s.writers
                .submit(send(&s.ab, &format!("c{i}"), &format!("m{i}")))
                .await
                .unwrap();
        }
        for i in 1..=5 {
            let m = acked(&mut s.alice.outbox).await;
            assert_eq!((m.seq, m.body), (i, format!("m{i}")));
        }
        assert_eq!(s.store.last_seq(&s.ab).await.unwrap(), Some(5));
    }

    #[tokio::test]
    async fn a_retry_of_a_message_stored_before_the_writer_knew_it_gets_the_original() {
        let mut s = setup().await;
        // Stored by an earlier process: this writer has never seen the id.
        let old = MessageRecord {
            conversation: s.ab.clone(),
            seq: 1,
            n: 1,
            sender: "alice".into(),
            body: "original".into(),
            client_msg_id: "c1".into(),
            sent_at: 5,
            ..MessageRecord::default()
        };
        s.store
            .append_batch(std::slice::from_ref(&old))
            .await
            .unwrap();
        // Queued together, so that they share a batch: the retry among new sends.
        s.writers.submit(send(&s.ab, "c0", "new")).await.unwrap();
        s.writers
            .submit(send(&s.ab, "c1", "retried"))
            .await
            .unwrap();
        for i in 2..=4 {
            s.writers
                .submit(send(&s.ab, &format!("c{i}"), "new"))
                .await
                .unwrap();
        }
        let mut acks: Vec<(String, u64, String)> = Vec::new();
        for _ in 0..5 {
            let m = acked(&mut s.alice.outbox).await;
            acks.push((m.client_msg_id, m.seq, m.body));
        }
        acks.sort_by_key(|a| a.1);
        assert_eq!(acks[0], ("c1".into(), 1, "original".into()));
        let seqs: Vec<u64> = acks.iter().map(|a| a.1).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "nothing was stored twice");
        assert_eq!(s.store.last_seq(&s.ab).await.unwrap(), Some(5));
    }

    #[tokio::test]
    async fn a_client_msg_id_used_in_another_conversation_is_refused() {
        let mut s = setup().await;
        let room = s
            .store
            .create_room(
                "alice",
                &app::domain::RoomName::parse("R").unwrap(),
                false,
                2,
            )
            .await
            .unwrap();
        s.writers.submit(send(&s.ab, "c1", "here")).await.unwrap();
        assert_eq!(acked(&mut s.alice.outbox).await.seq, 1);
        s.writers.submit(send(&room, "c1", "there")).await.unwrap();
        assert_eq!(refused(&mut s.alice.outbox).await, ErrorCode::InvalidInput);
        assert_eq!(s.store.last_seq(&room).await.unwrap(), Some(0));
    }

    #[tokio::test]
    async fn a_position_already_taken_is_learned_and_the_send_stored_after_it() {
        let mut s = setup().await;
        s.writers.submit(send(&s.ab, "c1", "one")).await.unwrap();
        assert_eq!(acked(&mut s.alice.outbox).await.seq, 1);
        run_sql(
            &s.db,
            "CREATE msg:['alice/bob', 2] SET sender = 'bob', body = 'b',
                client_msg_id = 'b2', sent_at = 1",
        )
        .await;
        s.writers.submit(send(&s.ab, "c2", "two")).await.unwrap();
        let m = acked(&mut s.alice.outbox).await;
        assert_eq!((m.seq, m.body.as_str()), (3, "two"));
    }

    #[tokio::test]
    async fn a_failed_commit_refuses_its_sends_and_leaves_no_gap() {
        let mut s = setup().await;
        s.writers.submit(send(&s.ab, "c1", "one")).await.unwrap();
        assert_eq!(acked(&mut s.alice.outbox).await.seq, 1);
        // Every insert into `client_msg` now fails: so does the batch's transaction.
        run_sql(&s.db, "DEFINE FIELD must ON client_msg TYPE string").await;
        s.writers.submit(send(&s.ab, "c2", "two")).await.unwrap();
        assert_eq!(refused(&mut s.alice.outbox).await, ErrorCode::Internal);
        run_sql(&s.db, "REMOVE FIELD must ON client_msg").await;
        s.writers.submit(send(&s.ab, "c2", "two")).await.unwrap();
        let m = acked(&mut s.alice.outbox).await;
        assert_eq!((m.seq, m.body.as_str()), (2, "two"));
        assert!(s.store.message(&s.ab, 3).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn sends_parked_behind_a_conversation_that_cannot_be_read_are_refused_alone() {
        let mut s = setup().await;
        s.writers
            .submit(send("nowhere", "c1", "lost"))
            .await
            .unwrap();
        s.writers
            .submit(send("nowhere", "c2", "lost"))
            .await
            .unwrap();
        s.writers.submit(send(&s.ab, "c3", "fine")).await.unwrap();
        let mut refusals = 0;
        let mut acks = Vec::new();
        for _ in 0..3 {
            match next(&mut s.alice.outbox).await {
                ServerMsg::Error { code, .. } => {
                    assert_eq!(code, ErrorCode::NotFound);
                    refusals += 1;
                }
                ServerMsg::Ack { message, .. } => acks.push(message.seq),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((refusals, acks), (2, vec![1]));
    }
}
