//! The per-socket order cursor: for each conversation, which messages this socket has told
//! its client, and so whether the next live message, ack, history page or replayed page is
//! delivered, skipped or first preceded by a gap fill. Pure: the socket handler does the
//! reading and writing and asks this module what to do.
//!
//! The rules, per conversation:
//! - `next` is the next `seq` the socket owes the client. A live message below it was
//!   already told (by a resume, a gap fill or the newest history page) and is skipped;
//!   one above it means the client misses what lies between, which is filled from the
//!   store first; so the client sees each conversation in order, once.
//! - An `ack` tells the sender its own message; before it goes out, every earlier message
//!   the socket owes is filled (a message fanned out just before ours may still be queued),
//!   and the acked `seq` is remembered so that a fill or a live copy does not repeat it.
//! - A fill or a live copy can reach one of the socket's own messages before its ack does
//!   (in a cluster, another node's later message may overtake the ack; after a reconnect,
//!   the original of a re-sent message may come from another node): it goes as its ack, in
//!   its place, and the ack that follows is not sent again.
//! - The newest history page tells the client everything up to its last message.
//! - A `resume` replays what the client says it missed, except what this socket already
//!   told it.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// Most acked-ahead `seq`s one socket remembers per conversation (a socket that only ever
/// sends in a conversation never advances `next` there; forgetting one costs at most a
/// repeat, which clients drop by `seq`).
pub const MAX_ACKED_AHEAD: usize = 1024;

/// Most of its own sends awaiting their acks one socket remembers (an ack forgets its send
/// at once; only a send refused after it left the socket stays, until pushed out). Past
/// it, the oldest is forgotten: a fill that reaches it tells it as a `message`, and its
/// ack follows.
pub const MAX_SENDING: usize = 64;

/// What to do with a live message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// Send it (the cursor has moved past it).
    Deliver,
    /// The client already has it.
    Skip,
    /// The client misses the stored messages after `after` and before this one: fill them
    /// ([`Cursor::replay_page`] from `after`), then ask [`Cursor::after_fill`].
    Gap { after: u64 },
}

/// What one page of stored messages means for the client.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Indexes into the page of the messages to send, in order.
    pub send: Vec<usize>,
    /// The last `seq` of the page that counts (below `until`), if any: the next page
    /// starts after it.
    pub last: Option<u64>,
    /// The page reached `until`: stop.
    pub done: bool,
}

#[derive(Debug, Default)]
pub struct Cursor {
    /// Per conversation, the next `seq` this socket owes its client.
    next: HashMap<String, u64>,
    /// Per conversation, `seq`s at or beyond `next` this socket told by an `ack`.
    acked: HashMap<String, BTreeSet<u64>>,
    /// The `client_msg_id`s of this socket's sends whose acks have not come, oldest first
    /// (a few at most: a linear search beats hashing them).
    sending: VecDeque<Box<str>>,
    /// This socket's own messages (conversation, `seq`) a fill told as their acks before
    /// the acks came.
    told_acks: Vec<(Box<str>, u64)>,
}

impl Cursor {
    /// A live message of `key` at `seq` came out of the socket's outbox.
    pub fn live(&mut self, key: &str, seq: u64) -> Live {
        // The common case (the next message in order) looks the conversation up once.
        match self.next.get_mut(key) {
            Some(next) if seq < *next => Live::Skip,
            Some(next) if seq > *next => Live::Gap { after: *next - 1 },
            Some(next) => {
                *next = seq + 1;
                self.skip_acked(key);
                Live::Deliver
            }
            None => {
                self.advance(key, seq);
                Live::Deliver
            }
        }
    }

    /// After the gap before a live message at `seq` was filled: whether to send it. A fill
    /// that found the message itself already told the client.
    pub fn after_fill(&mut self, key: &str, seq: u64) -> bool {
        if self.next.get(key).is_some_and(|&next| seq < next) {
            return false;
        }
        self.advance(key, seq);
        true
    }

    /// The newest history page of `key` ended at `last`: the client has everything up to it.
    pub fn history_newest(&mut self, key: &str, last: u64) {
        self.advance_to(key, last + 1);
    }

    /// A replay of `key` after `after` is starting (a resume, or a fill): the client has
    /// everything up to `after`.
    pub fn begin_replay(&mut self, key: &str, after: u64) {
        let next = after.saturating_add(1);
        match self.next.get_mut(key) {
            Some(held) => *held = (*held).max(next),
            None => {
                self.next.insert(key.to_owned(), next);
            }
        }
    }

    /// One page of stored messages of `key` (their `seq`s, ascending) during a replay
    /// that stops before `until`: which to send. The cursor moves past the page.
    pub fn replay_page(&mut self, key: &str, seqs: &[u64], until: Option<u64>) -> Page {
        let mut page = Page::default();
        let next = self.next.get(key).copied().unwrap_or(0);
        let acked = self.acked.get(key);
        for (i, &seq) in seqs.iter().enumerate() {
            if until.is_some_and(|u| seq >= u) {
                page.done = true;
                break;
            }
            page.last = Some(seq);
            let own = acked.is_some_and(|a| a.contains(&seq));
            if seq >= next && !own {
                page.send.push(i);
            }
        }
        if let Some(last) = page.last {
            self.advance_to(key, last + 1);
        } else {
            page.done = true;
        }
        page
    }

    /// Before an `ack` of `key` at `seq` goes out: the earlier messages the socket owes,
    /// as a replay from `after` up to `seq` (`None`: nothing owed). Call
    /// [`Self::acked`] once they are sent.
    pub fn before_ack(&self, key: &str, seq: u64) -> Option<u64> {
        match self.next.get(key) {
            Some(&next) if next < seq => Some(next - 1),
            _ => None,
        }
    }

    /// The socket sent a message with `client_msg_id`: its ack is to come.
    pub fn sending(&mut self, client_msg_id: &str) {
        if self.sending.len() == MAX_SENDING {
            self.sending.pop_front();
        }
        self.sending.push_back(client_msg_id.into());
    }

    /// Whether any of this socket's sends awaits its ack.
    pub fn awaiting_acks(&self) -> bool {
        !self.sending.is_empty()
    }

    /// The send with `client_msg_id` was refused: no ack is to come.
    pub fn refused(&mut self, client_msg_id: &str) {
        self.forget_sending(client_msg_id);
    }

    /// A fill or a live copy is about to tell the user's own message at `seq` of `key`:
    /// whether it is a send of this socket whose ack has not come, so that it goes as its
    /// ack (and the ack itself, when it comes, is not sent again: [`Self::ack_due`]).
    pub fn own_send(&mut self, key: &str, seq: u64, client_msg_id: &str) -> bool {
        if !self.forget_sending(client_msg_id) {
            return false;
        }
        if self.told_acks.len() == MAX_SENDING {
            self.told_acks.remove(0);
        }
        self.told_acks.push((key.into(), seq));
        true
    }

    /// The ack of `client_msg_id`, stored at `seq` of `key`, came: whether to send it
    /// (`false`: a fill told it already). Then [`Self::before_ack`] and [`Self::acked`].
    pub fn ack_due(&mut self, key: &str, seq: u64, client_msg_id: &str) -> bool {
        self.forget_sending(client_msg_id);
        match self
            .told_acks
            .iter()
            .position(|(k, s)| **k == *key && *s == seq)
        {
            Some(i) => {
                self.told_acks.swap_remove(i);
                false
            }
            None => true,
        }
    }

    fn forget_sending(&mut self, client_msg_id: &str) -> bool {
        match self.sending.iter().position(|id| **id == *client_msg_id) {
            Some(i) => {
                self.sending.remove(i);
                true
            }
            None => false,
        }
    }

    /// The `ack` of `key` at `seq` is going out: it is not to be delivered again.
    pub fn acked(&mut self, key: &str, seq: u64) {
        if self.next.get(key).is_some_and(|&next| seq < next) {
            return;
        }
        if !self.acked.contains_key(key) {
            self.acked.insert(key.to_owned(), BTreeSet::new());
        }
        if let Some(acked) = self.acked.get_mut(key) {
            acked.insert(seq);
            if acked.len() > MAX_ACKED_AHEAD {
                acked.pop_first();
            }
        }
        self.skip_acked(key);
    }

    fn advance(&mut self, key: &str, seq: u64) {
        self.advance_to(key, seq + 1);
    }

    /// (Looked up before inserting: a key is allocated once per conversation, not per
    /// delivered message.)
    fn advance_to(&mut self, key: &str, next: u64) {
        match self.next.get_mut(key) {
            Some(held) => *held = (*held).max(next),
            None => {
                self.next.insert(key.to_owned(), next);
            }
        }
        self.skip_acked(key);
    }

    /// Moves `next` past acked `seq`s it has reached, and forgets those below it.
    fn skip_acked(&mut self, key: &str) {
        if self.acked.is_empty() {
            return;
        }
        let Some(acked) = self.acked.get_mut(key) else {
            return;
        };
        if let Some(next) = self.next.get_mut(key) {
            while let Some(&s) = acked.first() {
                if s > *next {
                    break;
                }
                acked.pop_first();
                if s == *next {
                    *next += 1;
                }
            }
        }
        if acked.is_empty() {
            self.acked.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_messages_in_order_are_delivered_and_repeats_skipped() {
        let mut c = Cursor::default();
        assert_eq!(
            c.live("r", 5),
            Live::Deliver,
            "the first one sets the cursor"
        );
        assert_eq!(c.live("r", 6), Live::Deliver);
        assert_eq!(c.live("r", 6), Live::Skip);
        assert_eq!(c.live("r", 9), Live::Gap { after: 6 });
        assert_eq!(c.live("s", 1), Live::Deliver, "conversations are apart");
    }

    #[test]
    fn a_gap_is_filled_before_the_message_that_revealed_it() {
        let mut c = Cursor::default();
        c.begin_replay("r", 2);
        assert_eq!(c.live("r", 6), Live::Gap { after: 2 });
        c.begin_replay("r", 2);
        let page = c.replay_page("r", &[3, 4, 5, 6], None);
        assert_eq!(page.send, vec![0, 1, 2, 3]);
        assert!(!c.after_fill("r", 6), "the fill brought it");
        assert_eq!(c.live("r", 7), Live::Deliver);
    }

    #[test]
    fn an_ack_goes_after_what_is_owed_and_is_never_repeated() {
        let mut c = Cursor::default();
        c.begin_replay("r", 0);
        assert_eq!(c.before_ack("r", 3), Some(0), "1 and 2 are owed first");
        let page = c.replay_page("r", &[1, 2, 3], Some(3));
        assert_eq!((page.send, page.done), (vec![0, 1], true));
        assert_eq!(c.before_ack("r", 3), None);
        c.acked("r", 3);
        assert_eq!(
            c.live("r", 3),
            Live::Skip,
            "the live copy of our own message"
        );
        c.acked("r", 5);
        let page = c.replay_page("r", &[4, 5, 6], None);
        assert_eq!(page.send, vec![0, 2], "5 was acked");
        assert_eq!(c.live("r", 7), Live::Deliver);
    }

    #[test]
    fn an_own_message_a_fill_reaches_before_its_ack_goes_as_that_ack_once() {
        let mut c = Cursor::default();
        c.begin_replay("r", 7);
        c.sending("mine");
        // Another node's message at 9 overtook the ack of ours at 8.
        assert_eq!(c.live("r", 9), Live::Gap { after: 7 });
        c.begin_replay("r", 7);
        let page = c.replay_page("r", &[8, 9], None);
        assert_eq!(page.send, vec![0, 1]);
        assert!(c.own_send("r", 8, "mine"), "8 goes as its ack");
        assert!(!c.own_send("r", 8, "mine"), "once");
        assert!(!c.own_send("r", 9, "another tab's"));
        assert!(!c.after_fill("r", 9), "the fill brought 9");
        assert!(
            !c.ack_due("r", 8, "mine"),
            "the ack itself is not sent again"
        );
        c.sending("next");
        assert!(c.ack_due("r", 10, "next"), "an ack in its place goes out");
        assert!(c.sending.is_empty() && c.told_acks.is_empty());
    }

    #[test]
    fn sends_awaiting_their_acks_are_bounded() {
        let mut c = Cursor::default();
        for i in 0..(MAX_SENDING + 10) {
            c.sending(&format!("m{i}"));
        }
        c.refused(&format!("m{}", MAX_SENDING + 9));
        assert_eq!(c.sending.len(), MAX_SENDING - 1);
        assert!(!c.own_send("r", 1, "m0"), "the oldest were forgotten");
        assert!(c.own_send("r", 1, "m10"));
    }

    #[test]
    fn the_newest_history_page_tells_everything_before_it() {
        let mut c = Cursor::default();
        c.history_newest("r", 10);
        assert_eq!(c.live("r", 10), Live::Skip);
        assert_eq!(c.live("r", 11), Live::Deliver);
        let page = c.replay_page("r", &[9, 10, 11, 12], None);
        assert_eq!(
            page.send,
            vec![3],
            "a resume does not repeat what this socket told"
        );
    }

    #[test]
    fn acked_seqs_ahead_are_bounded() {
        let mut c = Cursor::default();
        c.begin_replay("r", 0);
        for seq in 0..(MAX_ACKED_AHEAD as u64 + 10) {
            c.acked("r", 1000 + 2 * seq);
        }
        assert_eq!(c.acked.get("r").map(BTreeSet::len), Some(MAX_ACKED_AHEAD));
    }

    /// A tiny deterministic generator (xorshift), so that a failing case is reproducible
    /// from its seed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }
    }

    /// What the socket handler does with the store and the outbox, in a model: messages
    /// `1..=total` of one conversation are committed one by one, some sent by this client
    /// (they come back as acks, in order with the others or, as in a cluster, overtaken by
    /// later messages of other nodes), the others as live messages; the socket may register
    /// late, be dropped and replaced (a reconnect that resumes from what the client holds),
    /// and the client may ask for the newest history page at any time. What the client ends
    /// with must be every message, each told once per socket (as a message or as its ack)
    /// and in order.
    fn run_model(seed: u64) {
        const PAGE: usize = 4;
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let total = 1 + rng.below(40);
        let own: Vec<bool> = (0..=total).map(|_| rng.below(3) == 0).collect();
        let id = |seq: u64| format!("m{seq}");
        let mut committed = 0_u64;
        // The client's contiguous holding: every seq up to here.
        let mut held: BTreeSet<u64> = BTreeSet::new();
        let contiguous = |held: &BTreeSet<u64>| {
            let mut n = 0;
            while held.contains(&(n + 1)) {
                n += 1;
            }
            n
        };
        let mut sockets = 0;
        'socket: loop {
            sockets += 1;
            assert!(sockets < 100, "seed {seed}: too many reconnects");
            let mut cursor = Cursor::default();
            // Registered now: the outbox gets what commits from here on; `late` holds the
            // acks another node's messages overtake.
            let mut outbox: std::collections::VecDeque<(u64, bool)> = Default::default();
            let mut late: std::collections::VecDeque<u64> = Default::default();
            let mut told: Vec<u64> = Vec::new();
            // What the newest history page told (the client holds it all).
            let mut history = 0;
            let stored =
                |after: u64, until: u64| -> Vec<u64> { ((after + 1)..=until).take(PAGE).collect() };
            // Replays through the cursor, page by page, as the handler does: this socket's
            // own sends awaiting their acks go as their acks.
            let replay = |cursor: &mut Cursor,
                          told: &mut Vec<u64>,
                          committed: u64,
                          mut after: u64,
                          until: Option<u64>| {
                cursor.begin_replay("r", after);
                loop {
                    let page = stored(after, committed);
                    let step = cursor.replay_page("r", &page, until);
                    for &i in &step.send {
                        if own[page[i] as usize] {
                            cursor.own_send("r", page[i], &id(page[i]));
                        }
                        told.push(page[i]);
                    }
                    match step.last {
                        Some(last) if !step.done => after = last,
                        _ => break,
                    }
                }
            };
            // The first frame: a resume from what the client holds.
            replay(&mut cursor, &mut told, committed, contiguous(&held), None);
            loop {
                if committed == total && outbox.is_empty() && late.is_empty() {
                    check_socket(seed, &told);
                    held.extend(told);
                    break 'socket;
                }
                let action = rng.below(11);
                let popped = if committed < total && action < 4 {
                    committed += 1;
                    let mine = own[committed as usize];
                    if mine {
                        cursor.sending(&id(committed));
                    }
                    if mine && rng.below(2) == 0 {
                        late.push_back(committed);
                    } else {
                        outbox.push_back((committed, mine));
                    }
                    None
                } else if action < 8 && !outbox.is_empty() {
                    outbox.pop_front()
                } else if action == 10 && !late.is_empty() {
                    late.pop_front().map(|seq| (seq, true))
                } else if action == 8 && committed > 0 {
                    // The newest history page, and older ones as the client scrolls back:
                    // the client holds everything up to its last message.
                    held.extend(1..=committed);
                    history = committed;
                    cursor.history_newest("r", committed);
                    None
                } else if action == 9 && rng.below(4) == 0 {
                    // Dropped (lagging, a network change): the client reconnects.
                    check_socket(seed, &told);
                    held.extend(told);
                    continue 'socket;
                } else {
                    None
                };
                let Some((seq, is_ack)) = popped else {
                    continue;
                };
                if is_ack {
                    if !cursor.ack_due("r", seq, &id(seq)) {
                        continue;
                    }
                    if let Some(after) = cursor.before_ack("r", seq) {
                        replay(&mut cursor, &mut told, committed, after, Some(seq));
                    }
                    cursor.acked("r", seq);
                    // The ack goes out: it tells the message, unless the client holds it
                    // from a history page already (then it only confirms the send).
                    if seq > history {
                        told.push(seq);
                    }
                } else {
                    match cursor.live("r", seq) {
                        Live::Deliver => told.push(seq),
                        Live::Skip => {}
                        Live::Gap { after } => {
                            replay(&mut cursor, &mut told, committed, after, None);
                            if cursor.after_fill("r", seq) {
                                told.push(seq);
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(
            contiguous(&held),
            total,
            "seed {seed}: the client ends with every message"
        );
    }

    /// One socket told each message at most once, in `seq` order.
    fn check_socket(seed: u64, told: &[u64]) {
        assert!(
            told.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: told out of order or twice: {told:?}"
        );
    }

    #[test]
    fn any_interleaving_of_commits_acks_history_and_reconnects_tells_every_message_once_in_order() {
        for seed in 0..5_000 {
            run_model(seed);
        }
    }
}
