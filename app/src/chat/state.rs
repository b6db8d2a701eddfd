//! The chat as the browser holds it: conversations, loaded messages, local echoes, read
//! positions and presence, changed only by [`ServerMsg`]s and by the user's actions.
//!
//! Pure data (no DOM, no socket), so every rule here — ordering, de-duplication, unread
//! counts, what to resume — is unit-tested on the host. The UI keeps one [`Chat`] in a signal
//! and sends whatever the methods return.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::address::Place;
use super::rooms::{Farewell, RoomPanel};
use crate::domain::{ClientMsgId, Emoji, FileId, MessageBody, Username};
use crate::protocol::{
    Attachment, Change, ClientMsg, ConversationId, ConversationKind, ConversationSummary,
    ErrorCode, Message, NotifyLevel, Position, Preview, Reaction, RoomInfo, SearchHit, Seq,
    ServerMsg, UserInfo, What, DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE, TYPING_EVERY_MS,
    TYPING_SHOWN_MS,
};
use crate::search::QueryError;

/// The first page of a conversation's members.
fn members_request(conversation_id: ConversationId) -> ClientMsg {
    ClientMsg::ListMembers {
        conversation_id,
        after: None,
        limit: None,
    }
}

/// Characters of a message kept for the sidebar preview (the server keeps as many).
const PREVIEW_CHARS: usize = 120;
/// Characters of a message quoted by a reply (the server quotes as many).
const QUOTE_CHARS: usize = 100;
/// Positions after an address's message in the page opened around it.
const AROUND_AFTER: Seq = MAX_HISTORY_PAGE as Seq / 2;

/// Everything the signed-in page knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Chat {
    pub me: UserInfo,
    /// Latest activity first.
    pub conversations: Vec<ConversationSummary>,
    pub threads: HashMap<ConversationId, Thread>,
    /// The conversation on screen.
    pub active: Option<ConversationId>,
    /// The socket is up and its `resume` has completed: sends go out at once.
    pub live: bool,
    /// Whether the page is visible (tab in front): only then is the open conversation read.
    pub visible: bool,
    /// Display names by username, from conversations, member lists and searches.
    pub names: HashMap<String, String>,
    /// Addresses of people's pictures and their status texts, learnt as names are.
    pictures: HashMap<String, String>,
    statuses: HashMap<String, String>,
    pub online: HashSet<String>,
    /// The answer to the last `list_rooms`, with the pages after it that were asked for.
    pub rooms: Option<Vec<RoomInfo>>,
    /// Where the next page of rooms starts, when there is one.
    pub rooms_next: Option<ConversationId>,
    /// A request for the next page of rooms is out: its answer extends the list.
    rooms_extending: bool,
    /// The answer to the last `search_users`.
    pub search: Option<(String, Vec<UserInfo>)>,
    /// The answer to the last `search_rooms`.
    pub rooms_found: Option<(String, Vec<RoomInfo>)>,
    /// The message search in the sidebar: what was asked, and the answer once it came.
    pub found: Option<Found>,
    /// A `conversation` answer should open that conversation (the user asked for it).
    opening: bool,
    /// A `list_conversations` is on its way; no need to ask again.
    listing: bool,
    /// The last refusal not tied to a message, for the user to read.
    pub notice: Option<ErrorCode>,
    /// Who is typing where, as `typing` frames said (in the order they started).
    pub typing: Vec<Typist>,
    /// Where and when (browser clock, ms) this user last said they were typing.
    typing_sent: Option<(ConversationId, i64)>,
    /// The conversation list has arrived at least once.
    listed: bool,
    /// An address named this place before the list arrived: opened once it does.
    wanted: Option<Place>,
    /// An address named a conversation the user does not have (or that does not exist:
    /// the same to them).
    pub missing: Option<Place>,
    /// The room panel on screen (see [`super::rooms`]).
    pub panel: Option<RoomPanel>,
    /// The user was removed or banned from a room: told until they dismiss it.
    pub farewell: Option<Farewell>,
    /// An invite link the page was opened with, joined once the socket is live.
    pub joining: Option<String>,
    /// The user administers the server (the hello says so).
    pub server_admin: bool,
}

/// A message search and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The words searched for, as sent (without `in:` and `from:`).
    pub query: String,
    /// `None` until the answer comes.
    pub hits: Option<Vec<SearchHit>>,
    pub has_more: bool,
    /// Why the search could not be made.
    pub error: Option<SearchProblem>,
}

/// Why the search box's text cannot be searched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchProblem {
    /// `from:` names no possible username.
    NoSuchPerson(String),
    /// `in:` names no conversation of the user's.
    NoSuchConversation(String),
    Query(QueryError),
}

/// What the search box asks: its words, and the `in:` and `from:` filters typed with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    pub words: String,
    pub within: Option<ConversationId>,
    pub from: Option<Username>,
}

/// Reads the search box: `from:<username>` keeps one person's messages, `in:<name>` one
/// conversation's (a room's name or a person's username or name, spaces left out, any case);
/// the rest are the words. An unknown `in:` or `from:` is an error the user reads.
pub fn search_request(
    text: &str,
    conversations: &[ConversationSummary],
) -> Result<SearchRequest, SearchProblem> {
    let squash = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let (mut words, mut within, mut from) = (Vec::new(), None, None);
    for w in text.split_whitespace() {
        if let Some(name) = w.strip_prefix("from:") {
            let name = name.trim_start_matches('@');
            from = Some(
                Username::parse(name).map_err(|_| SearchProblem::NoSuchPerson(name.to_owned()))?,
            );
        } else if let Some(name) = w.strip_prefix("in:") {
            let name = squash(name.trim_start_matches(['#', '@']));
            let found = conversations.iter().find(|c| {
                squash(&c.title) == name || c.peer.as_ref().is_some_and(|p| p.user.username == name)
            });
            within = Some(
                found
                    .map(|c| c.id.clone())
                    .ok_or_else(|| SearchProblem::NoSuchConversation(name.clone()))?,
            );
        } else {
            words.push(w);
        }
    }
    Ok(SearchRequest {
        words: words.join(" "),
        within,
        from,
    })
}

/// Someone typing in a conversation, shown until `until_ms` (browser clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typist {
    pub conversation_id: ConversationId,
    pub username: String,
    pub until_ms: i64,
}

/// One conversation's loaded messages and local echoes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thread {
    /// Stored messages by `seq`, as they are now: inserting twice is harmless, order is by
    /// construction.
    pub messages: BTreeMap<Seq, Message>,
    /// Every position this thread holds: its messages and the changes between them (which
    /// history pages cover, and live changes add). Holes in it are filled from history.
    pub known: BTreeSet<Seq>,
    /// The newest page has arrived.
    pub loaded: bool,
    /// Older messages exist before the first loaded one.
    pub has_more: bool,
    pub loading_older: bool,
    /// Messages typed here and not yet acknowledged, in the order they were typed.
    pub pending: Vec<Pending>,
    /// The first unread `seq` when the conversation was opened ("new messages" line).
    pub first_unread: Option<Seq>,
    /// The message an address opened the conversation at (highlighted).
    pub focus: Option<Seq>,
    /// How far the other members have read, as far as known (the member list, `seen`
    /// frames, and their own messages: sending reads up to one's message).
    pub read_by: BTreeMap<String, Seq>,
    /// Positions left out on purpose (first, last), between the page opened around an
    /// address's message far back and the newer messages: loaded a page at a time as the
    /// reader scrolls to them ([`Chat::load_gap`]), never all at once.
    pub gap: Option<(Seq, Seq)>,
    pub loading_gap: bool,
    /// The message the page around was last asked for (asked once per address).
    around: Option<Seq>,
}

/// Who has seen the newest message, when it is the user's own: "Seen" in a direct
/// conversation, "Seen by N" in a room (with their names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenBy {
    pub seq: Seq,
    pub direct: bool,
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub client_msg_id: String,
    /// Empty for files alone.
    pub body: String,
    /// The message it answers.
    pub reply_to: Option<Seq>,
    /// Its files, uploaded already.
    pub attachments: Vec<Attachment>,
    pub state: PendingState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PendingState {
    /// Sent, or waiting for the socket; retried on every reconnect.
    Sending,
    /// Refused by the server: shown with its reason and a retry button.
    Failed(ErrorCode),
}

/// Something the page should tell the user outside the conversation on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub conversation_id: ConversationId,
    /// Who wrote.
    pub sender: String,
    /// The room it was written in; `None` in a direct conversation.
    pub room: Option<String>,
    pub body: String,
}

impl Thread {
    /// Opening at an address's message (else at the first unread message), older pages
    /// are still on their way to it.
    pub fn reaching_back(&self) -> bool {
        match (self.focus.or(self.first_unread), self.first_seq()) {
            (Some(target), Some(first)) => first > target && self.has_more,
            _ => false,
        }
    }

    /// The next request on the way to where the thread was opened, unless one is already on
    /// its way: the page around an address's message when it is far from what is held
    /// ([`Self::load_around`]), else the next older page (see [`Self::reaching_back`]).
    fn reach_back(&mut self, id: &ConversationId) -> Option<ClientMsg> {
        if self.loading_older {
            return None;
        }
        if let Some(seq) = self
            .focus
            .filter(|&s| self.around != Some(s) && self.far_from(s))
        {
            return Some(self.load_around(id, seq));
        }
        if !self.reaching_back() {
            return None;
        }
        self.loading_older = true;
        Some(ClientMsg::History {
            conversation_id: id.clone(),
            before_seq: self.first_seq(),
            limit: Some(MAX_HISTORY_PAGE),
        })
    }

    /// Whether message `seq` is more than a page older than the first position held, or
    /// between held positions without being held (in the gap): reached by a page around it
    /// rather than page after page back.
    fn far_from(&self, seq: Seq) -> bool {
        let (Some(first), Some(last)) = (self.first_seq(), self.last_seq()) else {
            return false;
        };
        seq >= 1
            && seq < last
            && !self.known.contains(&seq)
            && (seq.saturating_add(u64::from(MAX_HISTORY_PAGE)) < first || seq > first)
    }

    /// Asks for the page around message `seq` ([`AROUND_AFTER`] positions after it, the
    /// rest before), keeping only the newest run of held positions; the positions between
    /// the two become the gap.
    fn load_around(&mut self, id: &ConversationId, seq: Seq) -> ClientMsg {
        let newest_run = self.newest_run();
        self.known.retain(|&s| s >= newest_run);
        self.messages.retain(|&s, _| s >= newest_run);
        self.has_more = true;
        let before = (seq + AROUND_AFTER + 1).min(newest_run);
        self.gap = (before < newest_run).then(|| (before, newest_run - 1));
        self.loading_older = true;
        self.around = Some(seq);
        ClientMsg::History {
            conversation_id: id.clone(),
            before_seq: Some(before),
            limit: Some(MAX_HISTORY_PAGE),
        }
    }

    /// The first position of the newest run of consecutive held positions.
    fn newest_run(&self) -> Seq {
        let mut first = self.last_seq().unwrap_or(1);
        for &s in self.known.iter().rev().skip(1) {
            if s + 1 != first {
                break;
            }
            first = s;
        }
        first
    }

    /// Shrinks the gap to the positions still missing at its ends.
    fn settle_gap(&mut self) {
        let Some((mut first, mut last)) = self.gap else {
            return;
        };
        while first <= last && self.known.contains(&first) {
            first += 1;
        }
        while last >= first && self.known.contains(&last) {
            last -= 1;
        }
        self.gap = (first <= last).then_some((first, last));
    }

    /// Whether positions `from..=to` all lie in the gap.
    fn in_gap(&self, from: Seq, to: Seq) -> bool {
        self.gap
            .is_some_and(|(first, last)| first <= from && to <= last)
    }

    /// The last position held (for `resume`).
    pub fn last_seq(&self) -> Option<Seq> {
        self.known.last().copied()
    }

    /// The first position held (older pages are asked for before it).
    pub fn first_seq(&self) -> Option<Seq> {
        self.known.first().copied()
    }

    /// The newest message held.
    pub fn newest(&self) -> Option<&Message> {
        self.messages.values().next_back()
    }

    /// Puts a change to one of this thread's messages in place (a message not loaded is
    /// fetched as it is now when its page is). Edits of a deleted message change nothing;
    /// reactions are sets, so a change applied twice changes nothing the second time.
    fn change(&mut self, change: &Change) {
        self.known.insert(change.seq);
        let Some(m) = self.messages.get_mut(&change.target) else {
            return;
        };
        match &change.what {
            What::Edited { body, mentions } if !m.deleted => {
                m.body.clone_from(body);
                m.mentions.clone_from(mentions);
                m.edited_at_ms = Some(change.at_ms);
            }
            What::Edited { .. } => {}
            What::Deleted => {
                m.deleted = true;
                m.deleted_by = (change.actor != m.sender).then(|| change.actor.clone());
                m.body.clear();
                m.reactions.clear();
                m.mentions.clear();
                m.attachments.clear();
            }
            What::Reacted { emoji } if !m.deleted => {
                match m.reactions.iter_mut().find(|r| &r.emoji == emoji) {
                    Some(r) if r.users.contains(&change.actor) => {}
                    Some(r) => r.users.push(change.actor.clone()),
                    None => m.reactions.push(Reaction {
                        emoji: emoji.clone(),
                        users: vec![change.actor.clone()],
                    }),
                }
            }
            What::Reacted { .. } => {}
            What::Unreacted { emoji } => {
                if let Some(r) = m.reactions.iter_mut().find(|r| &r.emoji == emoji) {
                    r.users.retain(|u| u != &change.actor);
                }
                m.reactions.retain(|r| !r.users.is_empty());
            }
        }
        // Replies show the message they answer as it is now.
        let quote = m.seq;
        let (text, deleted) = (m.body.clone(), m.deleted);
        for reply in self.messages.values_mut() {
            if let Some(q) = reply.reply_to.as_mut().filter(|q| q.seq == quote) {
                q.text = crate::domain::preview(&text, QUOTE_CHARS);
                q.deleted = deleted;
            }
        }
    }

    /// The first hole in the held positions outside the gap, as (the newest missing seq +
    /// 1, its length): a `history` request with these as `before_seq` and `limit` fills it
    /// from the top.
    fn hole(&self) -> Option<(Seq, u32)> {
        let mut prev: Option<Seq> = None;
        for &seq in &self.known {
            if let Some(p) = prev {
                if seq > p + 1 && !self.in_gap(p + 1, seq - 1) {
                    let missing = (seq - p - 1).min(u64::from(MAX_HISTORY_PAGE)) as u32;
                    return Some((seq, missing));
                }
            }
            prev = Some(seq);
        }
        None
    }
}

impl Chat {
    pub fn new(me: UserInfo) -> Self {
        let mut names = HashMap::new();
        names.insert(me.username.clone(), me.display_name.clone());
        Chat {
            me,
            conversations: Vec::new(),
            threads: HashMap::new(),
            active: None,
            live: false,
            visible: true,
            names,
            pictures: HashMap::new(),
            statuses: HashMap::new(),
            online: HashSet::new(),
            rooms: None,
            rooms_next: None,
            rooms_extending: false,
            search: None,
            rooms_found: None,
            found: None,
            opening: false,
            listing: false,
            notice: None,
            typing: Vec::new(),
            typing_sent: None,
            listed: false,
            wanted: None,
            missing: None,
            panel: None,
            farewell: None,
            joining: None,
            server_admin: false,
        }
    }

    pub fn summary(&self, id: &ConversationId) -> Option<&ConversationSummary> {
        self.conversations.iter().find(|c| &c.id == id)
    }

    pub(super) fn summary_mut(&mut self, id: &ConversationId) -> Option<&mut ConversationSummary> {
        self.conversations.iter_mut().find(|c| &c.id == id)
    }

    pub fn total_unread(&self) -> u64 {
        self.conversations.iter().map(|c| c.unread).sum()
    }

    /// How a username is shown.
    pub fn name_of<'a>(&'a self, username: &'a str) -> &'a str {
        self.names.get(username).map_or(username, String::as_str)
    }

    /// Whether a direct conversation's peer is online.
    pub fn peer_online(&self, c: &ConversationSummary) -> Option<bool> {
        c.peer
            .as_ref()
            .map(|p| self.online.contains(&p.user.username))
    }

    /// The first frame on a new socket: what this page already holds, so the server replays
    /// only what it missed.
    pub fn resume(&mut self) -> ClientMsg {
        self.live = false;
        self.listing = false;
        let mut positions: Vec<Position> = self
            .threads
            .iter()
            .filter(|(_, t)| t.loaded)
            .map(|(id, t)| Position {
                conversation_id: id.clone(),
                seq: t.last_seq().unwrap_or(0),
            })
            .collect();
        positions.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
        ClientMsg::Resume { positions }
    }

    /// The socket closed: nothing more goes out until the next `resumed`.
    pub fn disconnected(&mut self) {
        self.live = false;
        // Without a connection nobody is known to be online; the list asked for after the
        // resume says who is.
        self.online.clear();
        for t in self.threads.values_mut() {
            // An answer that will never come must not block the next request.
            t.loading_older = false;
            t.loading_gap = false;
            // A page around an address's message that had not come is asked for again.
            t.around = None;
        }
    }

    /// Applies one frame from the server. Returns the frames to send back and, for a new
    /// message from someone else, what to tell the user.
    pub fn apply(&mut self, msg: ServerMsg) -> (Vec<ClientMsg>, Option<Alert>) {
        let mut out = Vec::new();
        let mut alert = None;
        if self.apply_room(&msg) {
            return (out, alert);
        }
        match msg {
            ServerMsg::Hello { me, admin, .. } => {
                self.server_admin = admin;
                self.learn_user(&me);
                self.me = me;
            }
            ServerMsg::Resumed => {
                self.live = true;
                self.listing = true;
                out.push(ClientMsg::ListConversations { limit: None });
                // The invite link the page was opened with: the room opens once joined.
                if let Some(token) = self.joining.take() {
                    self.opening = true;
                    out.push(ClientMsg::JoinByInvite { token });
                }
                for (id, t) in &self.threads {
                    for p in &t.pending {
                        if p.state == PendingState::Sending {
                            out.extend(send_frame(id, p));
                        }
                    }
                }
                out.extend(self.open_requests());
                // Whatever was on its way back to where the open conversation was opened.
                if let Some(id) = self.active.clone() {
                    if let Some(t) = self.threads.get_mut(&id).filter(|t| t.loaded) {
                        out.extend(t.reach_back(&id));
                    }
                }
                out.extend(self.read_request());
            }
            ServerMsg::Conversations { conversations, .. } => {
                self.listing = false;
                self.listed = true;
                for c in &conversations {
                    self.learn(c);
                }
                self.conversations = conversations;
                // Read positions moved while away, and unread counts are the server's.
                self.sort();
                if let Some(place) = self.wanted.take() {
                    out.extend(self.go_to(Some(place)));
                }
                out.extend(self.read_request());
            }
            ServerMsg::Conversation { conversation } => {
                self.learn(&conversation);
                let id = conversation.id.clone();
                self.upsert(conversation);
                if std::mem::take(&mut self.opening) {
                    out.extend(self.open(id));
                }
            }
            ServerMsg::Left {
                conversation_id,
                reason,
            } => {
                self.farewell(&conversation_id, reason);
                self.conversations.retain(|c| c.id != conversation_id);
                self.threads.remove(&conversation_id);
                if self.active.as_ref() == Some(&conversation_id) {
                    self.active = None;
                }
                if let Some(rooms) = &mut self.rooms {
                    for r in rooms.iter_mut().filter(|r| r.id == conversation_id) {
                        r.joined = false;
                        r.member_count = r.member_count.saturating_sub(1);
                    }
                }
            }
            ServerMsg::Rooms { rooms, next } => {
                match (&mut self.rooms, std::mem::take(&mut self.rooms_extending)) {
                    (Some(list), true) => list.extend(rooms),
                    _ => self.rooms = Some(rooms),
                }
                self.rooms_next = next;
            }
            ServerMsg::Members {
                conversation_id,
                members,
                ..
            } => {
                for m in members {
                    self.set_online(&m.user.username, m.online);
                    if let Some(read) = m.last_read_seq {
                        self.read_up_to(&conversation_id, &m.user.username, read);
                    }
                    self.learn_user(&m.user);
                }
            }
            ServerMsg::Seen {
                conversation_id,
                username,
                last_read_seq,
            } => self.read_up_to(&conversation_id, &username, last_read_seq),
            ServerMsg::Users { query, users } => {
                for u in &users {
                    self.learn_user(u);
                }
                self.search = Some((query, users));
            }
            ServerMsg::RoomsFound { query, rooms } => self.rooms_found = Some((query, rooms)),
            ServerMsg::SearchResults {
                query,
                hits,
                has_more,
            } => {
                if let Some(f) = self.found.as_mut().filter(|f| f.query == query) {
                    f.hits = Some(hits);
                    f.has_more = has_more;
                }
            }
            ServerMsg::Ack {
                client_msg_id,
                message,
            } => {
                if let Some(t) = self.threads.get_mut(&message.conversation_id) {
                    t.pending.retain(|p| p.client_msg_id != client_msg_id);
                }
                out.extend(self.receive(message));
            }
            ServerMsg::Message { message } => {
                let from_someone_else = message.sender != self.me.username;
                let id = message.conversation_id.clone();
                let seen = self.is_reading(&id);
                let level = self.summary(&id).map(|c| c.notify).unwrap_or_default();
                let alert_body = (from_someone_else && level.notifies(self.mentions_me(&message)))
                    .then(|| {
                        let text = crate::markdown::plain_text(&message.body);
                        crate::protocol::preview_of(&text, &message.attachments, PREVIEW_CHARS)
                    });
                let sender = message.sender.clone();
                let known = self.receive_known(message, &mut out);
                if !known && !self.listing {
                    // A conversation this page has not heard of (someone wrote first).
                    self.listing = true;
                    out.push(ClientMsg::ListConversations { limit: None });
                }
                if let (Some(body), false) = (alert_body, seen) {
                    let room = self
                        .summary(&id)
                        .filter(|c| c.kind == ConversationKind::Room)
                        .map(|c| c.title.clone());
                    alert = Some(Alert {
                        conversation_id: id,
                        sender: self.name_of(&sender).to_owned(),
                        room,
                        body,
                    });
                }
            }
            ServerMsg::History {
                conversation_id,
                messages,
                has_more,
                from_seq,
                to_seq,
            } => {
                let t = self.threads.entry(conversation_id.clone()).or_default();
                let oldest_before = t.first_seq();
                // The page reaches as far back as anything loaded: it decides `has_more`.
                if !t.loaded || oldest_before.is_none_or(|o| from_seq <= o) {
                    t.has_more = has_more;
                }
                t.loaded = true;
                t.loading_older = false;
                t.loading_gap = false;
                for m in messages {
                    t.messages.insert(m.seq, m);
                }
                // Every position the page covers is held: its messages, and changes
                // already applied to them.
                t.known.extend(from_seq..=to_seq);
                t.settle_gap();
                if let Some((before, limit)) = t.hole() {
                    out.push(ClientMsg::History {
                        conversation_id: conversation_id.clone(),
                        before_seq: Some(before),
                        limit: Some(limit),
                    });
                } else {
                    // Opening at the first unread message (or an address's), however far
                    // back it is.
                    out.extend(t.reach_back(&conversation_id));
                }
                if let Some(c) = self.summary_mut(&conversation_id) {
                    c.last_seq = c.last_seq.max(to_seq);
                }
                out.extend(self.read_request());
            }
            ServerMsg::Changed { change } => out.extend(self.changed(change)),
            ServerMsg::ReadState {
                conversation_id,
                last_read_seq,
                last_seq,
                unread,
                mentions,
            } => {
                if let Some(c) = self.summary_mut(&conversation_id) {
                    // Messages after `last_seq` that already arrived are counted below it
                    // no more: the server counted up to `last_seq`.
                    if last_read_seq >= c.last_read_seq {
                        c.last_read_seq = last_read_seq;
                        c.unread = unread;
                        c.mentions = mentions;
                        c.last_seq = c.last_seq.max(last_seq);
                    }
                }
            }
            ServerMsg::Notify {
                conversation_id,
                level,
            } => {
                if let Some(c) = self.summary_mut(&conversation_id) {
                    c.notify = level;
                }
            }
            ServerMsg::Presence { username, online } => self.set_online(&username, online),
            ServerMsg::UserUpdated { user } => self.user_updated(user),
            // Applied by `apply_room` above.
            ServerMsg::RoomUpdated { .. }
            | ServerMsg::MemberAdded { .. }
            | ServerMsg::MemberRemoved { .. }
            | ServerMsg::RoleChanged { .. }
            | ServerMsg::Bans { .. }
            | ServerMsg::Invites { .. } => {}
            // Shown for a time: the browser hands it to `someone_typing` with its clock.
            ServerMsg::Typing { .. } => {}
            ServerMsg::Error {
                code,
                client_msg_id: Some(id),
                ..
            } => {
                for t in self.threads.values_mut() {
                    for p in t.pending.iter_mut().filter(|p| p.client_msg_id == id) {
                        p.state = PendingState::Failed(code);
                    }
                }
            }
            ServerMsg::Error { code, .. } => {
                self.opening = false;
                self.notice = Some(code);
            }
            ServerMsg::Pong { .. } | ServerMsg::Lagging => {}
        }
        (out, alert)
    }

    /// Searches messages for what the search box holds (see [`search_request`]); an empty
    /// box ends the search.
    pub fn search_messages(&mut self, text: &str) -> Option<ClientMsg> {
        let request = match search_request(text, &self.conversations) {
            Ok(r) if r.words.is_empty() && text.trim().is_empty() => {
                self.found = None;
                return None;
            }
            Ok(r) => r,
            Err(error) => {
                self.found = Some(Found {
                    query: String::new(),
                    hits: None,
                    has_more: false,
                    error: Some(error),
                });
                return None;
            }
        };
        let error = crate::search::Query::parse(&request.words)
            .err()
            .map(SearchProblem::Query);
        let ask = error.is_none();
        self.found = Some(Found {
            query: request.words.clone(),
            hits: None,
            has_more: false,
            error,
        });
        ask.then_some(ClientMsg::SearchMessages {
            query: request.words,
            conversation_id: request.within,
            from: request.from,
            limit: None,
        })
    }

    /// The search box was emptied or closed.
    pub fn end_search(&mut self) {
        self.found = None;
    }

    /// Whether the user is looking at this conversation right now.
    pub fn is_reading(&self, id: &ConversationId) -> bool {
        self.visible && self.active.as_ref() == Some(id)
    }

    /// Where the page is: the open conversation (at the message an address named), or the
    /// place an address named (waiting for the list, or not the user's); `None` for the list.
    pub fn place(&self) -> Option<Place> {
        match &self.active {
            Some(id) => Some(Place {
                conversation: id.clone(),
                seq: self.threads.get(id).and_then(|t| t.focus),
            }),
            None => self.wanted.clone().or_else(|| self.missing.clone()),
        }
    }

    /// The address changed to `place` (a link, a reload, the back button): shows that
    /// conversation (at its message) if the user has it, "not found" if not (once the list
    /// is known), or the list.
    pub fn go_to(&mut self, place: Option<Place>) -> Vec<ClientMsg> {
        if self.place() == place {
            return Vec::new();
        }
        match place {
            None => {
                self.close();
                Vec::new()
            }
            Some(place) if self.summary(&place.conversation).is_some() => {
                let mut out = Vec::new();
                if self.active.as_ref() != Some(&place.conversation) {
                    self.close();
                    out = self.open(place.conversation.clone());
                }
                out.extend(self.focus_on(place.seq));
                out
            }
            Some(place) if self.listed => {
                self.close();
                self.missing = Some(place);
                Vec::new()
            }
            Some(place) => {
                self.close();
                self.wanted = Some(place);
                Vec::new()
            }
        }
    }

    /// Shows the open conversation at message `seq` (highlighted), loading older pages
    /// back to it.
    fn focus_on(&mut self, seq: Option<Seq>) -> Option<ClientMsg> {
        let id = self.active.clone()?;
        let live = self.live;
        let t = self.threads.entry(id.clone()).or_default();
        if t.focus != seq {
            t.around = None;
        }
        t.focus = seq;
        (live && t.loaded).then(|| t.reach_back(&id)).flatten()
    }

    /// Shows a conversation: loads its newest page if needed, marks it read.
    pub fn open(&mut self, id: ConversationId) -> Vec<ClientMsg> {
        self.wanted = None;
        self.missing = None;
        let first_unread = self
            .summary(&id)
            .filter(|c| c.unread > 0)
            .map(|c| c.last_read_seq + 1);
        self.active = Some(id.clone());
        self.notice = None;
        let t = self.threads.entry(id).or_default();
        t.first_unread = first_unread;
        t.focus = None;
        let mut out = self.open_requests();
        out.extend(self.read_request());
        out
    }

    /// Back to the list (phone-width screens).
    pub fn close(&mut self) {
        self.active = None;
        self.wanted = None;
        self.missing = None;
    }

    /// The user is about to open the conversation the server will answer with.
    /// The request for the first page of rooms (the list starts over).
    pub fn list_rooms(&mut self) -> ClientMsg {
        self.rooms_extending = false;
        ClientMsg::ListRooms {
            after: None,
            limit: None,
        }
    }

    /// The request for the next page of rooms, if there is one; its answer extends the list.
    pub fn more_rooms(&mut self) -> Option<ClientMsg> {
        let after = self.rooms_next.clone()?;
        self.rooms_extending = true;
        Some(ClientMsg::ListRooms {
            after: Some(after),
            limit: None,
        })
    }

    pub fn expect_open(&mut self) {
        self.opening = true;
    }

    /// A conversation asked for (see [`Self::expect_open`]) has not opened yet.
    pub fn is_opening(&self) -> bool {
        self.opening
    }

    /// Requests the active conversation's newest page and, for a room, its members.
    fn open_requests(&mut self) -> Vec<ClientMsg> {
        let mut out = Vec::new();
        let Some(id) = self.active.clone() else {
            return out;
        };
        if !self.live {
            return out;
        }
        let t = self.threads.entry(id.clone()).or_default();
        if !t.loaded && !t.loading_older {
            t.loading_older = true;
            out.push(ClientMsg::History {
                conversation_id: id.clone(),
                before_seq: None,
                limit: Some(DEFAULT_HISTORY_PAGE),
            });
            // Who is in it, online, and how far they have read.
            out.push(members_request(id));
        }
        out
    }

    /// The page became visible or hidden.
    pub fn set_visible(&mut self, visible: bool) -> Option<ClientMsg> {
        self.visible = visible;
        self.read_request()
    }

    /// Marks the open conversation read up to its newest message, if the user can see it.
    pub fn read_request(&mut self) -> Option<ClientMsg> {
        if !self.live {
            return None;
        }
        let id = self.active.clone()?;
        if !self.is_reading(&id) {
            return None;
        }
        let newest = self.threads.get(&id).and_then(Thread::last_seq);
        let c = self.summary_mut(&id)?;
        let seq = c.last_seq.max(newest.unwrap_or(0));
        if seq <= c.last_read_seq {
            return None;
        }
        // Optimistic: the badge clears now; the server's `read_state` confirms it.
        c.last_read_seq = seq;
        c.last_seq = seq;
        c.unread = 0;
        c.mentions = 0;
        Some(ClientMsg::MarkRead {
            conversation_id: id,
            seq,
        })
    }

    /// Members of `id` to offer while `typed` follows an `@` (see
    /// [`crate::mention::offers`]): the ones known (the member list, the people who
    /// wrote), the user excepted, at most `limit`, by username.
    pub fn mention_candidates(
        &self,
        id: &ConversationId,
        typed: &str,
        limit: usize,
    ) -> Vec<UserInfo> {
        let mut known: BTreeSet<&str> = BTreeSet::new();
        if let Some(t) = self.threads.get(id) {
            known.extend(t.read_by.keys().map(String::as_str));
            known.extend(t.messages.values().map(|m| m.sender.as_str()));
        }
        if let Some(peer) = self.summary(id).and_then(|c| c.peer.as_ref()) {
            known.insert(&peer.user.username);
        }
        known
            .into_iter()
            .filter(|u| *u != self.me.username)
            .filter(|u| crate::mention::offers(typed, u, self.name_of(u)))
            .take(limit)
            .map(|u| UserInfo::named(u, self.name_of(u)))
            .collect()
    }

    /// The open conversation's members again (for mentions: people join rooms).
    pub fn refresh_members(&mut self) -> Option<ClientMsg> {
        let id = self.active.clone()?;
        self.live.then(|| members_request(id))
    }

    /// Whether `message` mentions the user.
    pub fn mentions_me(&self, message: &Message) -> bool {
        message.mentions.contains(&self.me.username)
    }

    /// The user chose how `id` notifies them: shown at once, and on their other tabs once
    /// the server's `notify` reaches them.
    pub fn set_notify(&mut self, id: &ConversationId, level: NotifyLevel) -> Option<ClientMsg> {
        let c = self.summary_mut(id)?;
        if c.notify == level {
            return None;
        }
        c.notify = level;
        Some(ClientMsg::SetNotify {
            conversation_id: id.clone(),
            level,
        })
    }

    /// The user scrolled to the top of the open conversation.
    pub fn load_older(&mut self) -> Option<ClientMsg> {
        let id = self.active.clone()?;
        let live = self.live;
        let t = self.threads.get_mut(&id)?;
        if !live || !t.loaded || !t.has_more || t.loading_older {
            return None;
        }
        t.loading_older = true;
        Some(ClientMsg::History {
            conversation_id: id,
            before_seq: t.first_seq(),
            limit: Some(DEFAULT_HISTORY_PAGE),
        })
    }

    /// The next page into the open conversation's gap, from its older end (the page
    /// opened around an address's message grows towards the newer ones), unless one is on
    /// its way.
    pub fn load_gap(&mut self) -> Option<ClientMsg> {
        let id = self.active.clone()?;
        let live = self.live;
        let t = self.threads.get_mut(&id)?;
        let (first, last) = t.gap?;
        // Not before the page around the message is in: the newer end in sight until then
        // is not where the reader is going.
        if !live || t.loading_gap || t.reaching_back() {
            return None;
        }
        t.loading_gap = true;
        let before = first
            .saturating_add(u64::from(MAX_HISTORY_PAGE))
            .min(last + 1);
        Some(ClientMsg::History {
            conversation_id: id,
            before_seq: Some(before),
            limit: Some(MAX_HISTORY_PAGE),
        })
    }

    /// Someone else has read `id` up to `seq` (positions only move forward).
    fn read_up_to(&mut self, id: &ConversationId, username: &str, seq: Seq) {
        if username == self.me.username {
            return;
        }
        if let Some(t) = self.threads.get_mut(id) {
            let read = t.read_by.entry(username.to_owned()).or_default();
            *read = (*read).max(seq);
        }
    }

    /// Who has seen the newest message of `id`, when it is the user's own and someone has.
    pub fn seen_by(&self, id: &ConversationId) -> Option<SeenBy> {
        let t = self.threads.get(id)?;
        let (&seq, newest) = t.messages.last_key_value()?;
        if newest.sender != self.me.username || !t.pending.is_empty() {
            return None;
        }
        let names: Vec<String> = t
            .read_by
            .iter()
            .filter(|(_, &read)| read >= seq)
            .map(|(user, _)| self.name_of(user).to_owned())
            .collect();
        let direct = self
            .summary(id)
            .is_some_and(|c| c.kind == ConversationKind::Direct);
        if names.is_empty() {
            return None;
        }
        Some(SeenBy { seq, direct, names })
    }

    /// `username` is typing in `conversation_id`: a `typing` frame arrived at `now_ms`.
    pub fn someone_typing(
        &mut self,
        conversation_id: ConversationId,
        username: String,
        now_ms: i64,
    ) {
        let until_ms = now_ms + TYPING_SHOWN_MS;
        match self
            .typing
            .iter_mut()
            .find(|t| t.conversation_id == conversation_id && t.username == username)
        {
            Some(t) => t.until_ms = until_ms,
            None => self.typing.push(Typist {
                conversation_id,
                username,
                until_ms,
            }),
        }
    }

    /// Forgets whoever stopped typing before `now_ms`.
    pub fn expire_typing(&mut self, now_ms: i64) {
        self.typing.retain(|t| t.until_ms > now_ms);
    }

    /// The display names of the people typing in `id` at `now_ms`, first to start first.
    pub fn typing_in(&self, id: &ConversationId, now_ms: i64) -> Vec<String> {
        self.typing
            .iter()
            .filter(|t| &t.conversation_id == id && t.until_ms > now_ms)
            .map(|t| self.name_of(&t.username).to_owned())
            .collect()
    }

    /// The user typed in the open conversation at `now_ms`: the `typing` frame to send, at
    /// most one every [`TYPING_EVERY_MS`] per conversation, and none while offline.
    pub fn typing_request(&mut self, now_ms: i64) -> Option<ClientMsg> {
        let id = self.active.clone().filter(|_| self.live)?;
        if let Some((sent_in, at)) = &self.typing_sent {
            if *sent_in == id && now_ms - at < TYPING_EVERY_MS {
                return None;
            }
        }
        self.typing_sent = Some((id.clone(), now_ms));
        Some(ClientMsg::Typing {
            conversation_id: id,
        })
    }

    /// Shows the message at once as pending and sends it if the socket is up; otherwise it
    /// goes out on the next reconnect.
    pub fn send(
        &mut self,
        body: Option<MessageBody>,
        attachments: Vec<Attachment>,
        client_msg_id: ClientMsgId,
        reply_to: Option<Seq>,
    ) -> Option<ClientMsg> {
        let id = self.active.clone()?;
        // Typing again after this message is news again at once.
        self.typing_sent = None;
        let pending = Pending {
            client_msg_id: client_msg_id.into_inner(),
            body: body.map(MessageBody::into_inner).unwrap_or_default(),
            reply_to,
            attachments,
            state: PendingState::Sending,
        };
        let frame = self.live.then(|| send_frame(&id, &pending)).flatten();
        self.threads.entry(id).or_default().pending.push(pending);
        frame
    }

    /// Sends a failed message again, with the same `client_msg_id` (so it cannot double).
    pub fn retry(&mut self, client_msg_id: &str) -> Option<ClientMsg> {
        let live = self.live;
        for (id, t) in &mut self.threads {
            if let Some(p) = t
                .pending
                .iter_mut()
                .find(|p| p.client_msg_id == client_msg_id)
            {
                p.state = PendingState::Sending;
                return if live { send_frame(id, p) } else { None };
            }
        }
        None
    }

    /// Adds a stored message (ack or delivery). Returns a `mark_read` if it should be read.
    fn receive(&mut self, message: Message) -> Vec<ClientMsg> {
        let mut out = Vec::new();
        self.receive_known(message, &mut out);
        out
    }

    /// Like [`Self::receive`]; `false` when the conversation is not in the list.
    fn receive_known(&mut self, message: Message, out: &mut Vec<ClientMsg>) -> bool {
        let id = message.conversation_id.clone();
        let mine = message.sender == self.me.username;
        // Their message is what they were typing, and they have read up to it.
        self.typing
            .retain(|t| t.conversation_id != id || t.username != message.sender);
        self.read_up_to(&id, &message.sender, message.seq);
        let mentions_me = self.mentions_me(&message);
        let Some(c) = self.summary_mut(&id) else {
            return false;
        };
        if message.seq > c.last_seq {
            c.last_seq = message.seq;
            if !mine && message.seq > c.last_read_seq {
                c.unread += 1;
                c.mentions += u64::from(mentions_me);
            }
            c.last_message = Some(Preview {
                sender: message.sender.clone(),
                text: message.preview(PREVIEW_CHARS),
                sent_at_ms: message.sent_at_ms,
            });
            c.last_activity_ms = c.last_activity_ms.max(message.sent_at_ms);
        }
        if mine && message.seq > c.last_read_seq {
            // Sending marks the conversation read up to the message, on the server too.
            c.last_read_seq = message.seq;
            c.unread = 0;
            c.mentions = 0;
        }
        if let Some(t) = self.threads.get_mut(&id) {
            // Messages of a conversation never opened are fetched when it is opened.
            if t.loaded {
                // Someone else's copy of this very message (another tab of the same user).
                t.pending
                    .retain(|p| p.client_msg_id != message.client_msg_id || !mine);
                let seq = message.seq;
                t.known.insert(seq);
                t.messages.insert(seq, message);
                if let Some((before, limit)) = t.hole() {
                    out.push(ClientMsg::History {
                        conversation_id: id.clone(),
                        before_seq: Some(before),
                        limit: Some(limit),
                    });
                }
            }
        }
        self.sort();
        out.extend(self.read_request());
        true
    }

    /// A message was edited, deleted or reacted to: the thread shows it, and the
    /// conversation's position moves (its unread count does not: changes are not messages).
    fn changed(&mut self, change: Change) -> Vec<ClientMsg> {
        let mut out = Vec::new();
        let id = change.conversation_id.clone();
        let Some(c) = self.summary_mut(&id) else {
            return out;
        };
        c.last_seq = c.last_seq.max(change.seq);
        if let Some(t) = self.threads.get_mut(&id).filter(|t| t.loaded) {
            t.change(&change);
            if let Some((before, limit)) = t.hole() {
                out.push(ClientMsg::History {
                    conversation_id: id.clone(),
                    before_seq: Some(before),
                    limit: Some(limit),
                });
            }
            // The sidebar shows the newest message as it is now.
            let newest = t
                .newest()
                .filter(|m| m.seq == change.target)
                .map(|m| m.preview(PREVIEW_CHARS));
            if let (Some(text), Some(c)) = (newest, self.summary_mut(&id)) {
                if let Some(p) = c.last_message.as_mut() {
                    p.text = text;
                }
            }
        }
        out.extend(self.read_request());
        out
    }

    /// The user's own message at `seq` of the open conversation, if it can still be changed.
    pub fn own_message(&self, seq: Seq) -> Option<&Message> {
        let id = self.active.as_ref()?;
        self.threads
            .get(id)?
            .messages
            .get(&seq)
            .filter(|m| m.sender == self.me.username && !m.deleted)
    }

    /// The user's newest message in the open conversation that can be edited (ArrowUp in
    /// an empty composer).
    pub fn last_own_message(&self) -> Option<&Message> {
        let id = self.active.as_ref()?;
        self.threads
            .get(id)?
            .messages
            .values()
            .rev()
            .find(|m| m.sender == self.me.username && !m.deleted)
    }

    /// Replaces the text of the user's message at `seq` in the open conversation (while
    /// connected; the change shows when the server sends it back).
    pub fn edit(&mut self, seq: Seq, body: MessageBody) -> Option<ClientMsg> {
        let id = self.active.clone().filter(|_| self.live)?;
        let m = self.own_message(seq)?;
        if m.body == body.as_str() {
            return None;
        }
        Some(ClientMsg::Edit {
            conversation_id: id,
            seq,
            body,
        })
    }

    /// Deletes the message at `seq` in the open conversation (while connected): the user's
    /// own, or anyone's when they moderate the room.
    pub fn delete(&mut self, seq: Seq) -> Option<ClientMsg> {
        let id = self.active.clone().filter(|_| self.live)?;
        // One's own, or anyone's for a moderator of the room.
        if self.own_message(seq).is_none() && !self.may(&id, crate::roles::RoomAction::DeleteAny) {
            return None;
        }
        Some(ClientMsg::Delete {
            conversation_id: id,
            seq,
        })
    }

    /// Adds the user's reaction `emoji` to the message at `seq` of the open conversation,
    /// or takes it off if it is there (while connected).
    pub fn toggle_reaction(&mut self, seq: Seq, emoji: Emoji) -> Option<ClientMsg> {
        let id = self.active.clone().filter(|_| self.live)?;
        let m = self.threads.get(&id)?.messages.get(&seq)?;
        if m.deleted {
            return None;
        }
        let mine = m
            .reactions
            .iter()
            .any(|r| r.emoji == emoji.as_str() && r.users.contains(&self.me.username));
        Some(if mine {
            ClientMsg::Unreact {
                conversation_id: id,
                seq,
                emoji,
            }
        } else {
            ClientMsg::React {
                conversation_id: id,
                seq,
                emoji,
            }
        })
    }

    fn upsert(&mut self, c: ConversationSummary) {
        match self.conversations.iter_mut().find(|x| x.id == c.id) {
            Some(x) => *x = c,
            None => self.conversations.push(c),
        }
        self.sort();
    }

    fn sort(&mut self) {
        // Stable: equal times keep their order, so the list does not flicker.
        self.conversations
            .sort_by_key(|c| std::cmp::Reverse(c.last_activity_ms));
    }

    fn learn(&mut self, c: &ConversationSummary) {
        if let Some(p) = &c.peer {
            self.learn_user(&p.user);
            self.set_online(&p.user.username, p.online);
        }
    }

    /// How a person shows (name, picture, status), from a frame that says it in full.
    pub(super) fn learn_user(&mut self, u: &UserInfo) {
        self.names
            .insert(u.username.clone(), u.display_name.clone());
        match u.avatar_url() {
            Some(url) => self.pictures.insert(u.username.clone(), url),
            None => self.pictures.remove(&u.username),
        };
        match u.status.as_ref().filter(|s| !s.is_empty()) {
            Some(s) => self.statuses.insert(u.username.clone(), s.clone()),
            None => self.statuses.remove(&u.username),
        };
    }

    /// The address of a person's picture, if they have one.
    pub fn picture(&self, username: &str) -> Option<String> {
        self.pictures.get(username).cloned()
    }

    /// A person's status text, if they set one.
    pub fn status_of(&self, username: &str) -> Option<&str> {
        self.statuses.get(username).map(String::as_str)
    }

    /// A user's new display name: wherever it shows (the direct conversation with them,
    /// its title, the names of senders and members, the signed-in user's own).
    fn user_updated(&mut self, user: UserInfo) {
        for c in &mut self.conversations {
            if let Some(peer) = c.peer.as_mut().filter(|p| p.user.username == user.username) {
                peer.user = user.clone();
                c.title = user.display_name.clone();
            }
        }
        if self.me.username == user.username {
            self.me = user.clone();
        }
        self.learn_user(&user);
    }

    fn set_online(&mut self, username: &str, online: bool) {
        if online {
            self.online.insert(username.to_owned());
        } else {
            self.online.remove(username);
        }
    }
}

fn send_frame(id: &ConversationId, p: &Pending) -> Option<ClientMsg> {
    let body = if p.body.is_empty() {
        None
    } else {
        Some(MessageBody::parse(&p.body).ok()?)
    };
    let attachments = p
        .attachments
        .iter()
        .map(|a| FileId::parse(&a.id).ok())
        .collect::<Option<Vec<_>>>()?;
    Some(ClientMsg::Send {
        conversation_id: id.clone(),
        client_msg_id: ClientMsgId::parse(&p.client_msg_id).ok()?,
        body,
        reply_to: p.reply_to,
        attachments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Member;

    fn user(name: &str) -> UserInfo {
        UserInfo::named(name, name.to_uppercase())
    }

    fn id(s: &str) -> ConversationId {
        ConversationId(s.into())
    }

    fn direct(peer: &str, last_seq: Seq, last_read_seq: Seq, at: i64) -> ConversationSummary {
        ConversationSummary {
            id: id(&format!("ann/{peer}")),
            kind: ConversationKind::Direct,
            title: peer.to_uppercase(),
            peer: Some(Member {
                user: user(peer),
                online: false,
                last_read_seq: None,
                role: None,
            }),
            last_seq,
            last_read_seq,
            unread: last_seq - last_read_seq,
            mentions: 0,
            notify: NotifyLevel::All,
            last_message: None,
            last_activity_ms: at,
            topic: None,
            private: false,
            role: None,
        }
    }

    fn msg(conv: &str, seq: Seq, sender: &str) -> Message {
        Message {
            conversation_id: id(conv),
            seq,
            sender: sender.into(),
            body: format!("m{seq}"),
            client_msg_id: format!("c{sender}{seq}"),
            sent_at_ms: 1000 + seq as i64,
            ..Message::default()
        }
    }

    /// Ann, connected, with conversations with bob (older) and cat (newer).
    fn chat() -> Chat {
        let mut c = Chat::new(user("ann"));
        c.resume();
        c.apply(ServerMsg::Resumed);
        c.apply(ServerMsg::Conversations {
            conversations: vec![direct("cat", 0, 0, 20), direct("bob", 3, 1, 10)],
            has_more: false,
        });
        c
    }

    #[test]
    fn the_search_box_reads_its_filters_and_shows_only_the_answer_to_what_it_asked() {
        let mut c = chat();
        assert_eq!(
            c.search_messages("  数据库 from:@Bob in:cat "),
            Some(ClientMsg::SearchMessages {
                query: "数据库".into(),
                conversation_id: Some(id("ann/cat")),
                from: Some(Username::parse("bob").unwrap()),
                limit: None,
            })
        );
        let hit = |body: &str| SearchHit {
            conversation_title: "CAT".into(),
            message: Message {
                body: body.into(),
                ..msg("ann/cat", 1, "bob")
            },
        };
        // An answer to an older question is not shown.
        c.apply(ServerMsg::SearchResults {
            query: "数据".into(),
            hits: vec![hit("old")],
            has_more: false,
        });
        assert_eq!(c.found.as_ref().unwrap().hits, None);
        c.apply(ServerMsg::SearchResults {
            query: "数据库".into(),
            hits: vec![hit("我们的数据库")],
            has_more: true,
        });
        let found = c.found.clone().unwrap();
        assert_eq!(found.hits.unwrap()[0].message.body, "我们的数据库");
        assert!(found.has_more);

        // What cannot be asked is said, and nothing is sent.
        assert_eq!(c.search_messages("in:nowhere 数据库"), None);
        assert_eq!(
            c.found.as_ref().unwrap().error,
            Some(SearchProblem::NoSuchConversation("nowhere".into()))
        );
        assert_eq!(c.search_messages("from:bob"), None);
        assert_eq!(
            c.found.as_ref().unwrap().error,
            Some(SearchProblem::Query(QueryError::Empty))
        );
        assert_eq!(c.search_messages("   "), None);
        assert_eq!(c.found, None);
    }

    #[test]
    fn pages_of_rooms_extend_the_list_and_a_new_listing_starts_over() {
        let room = |key: &str| RoomInfo {
            id: id(key),
            name: key.to_uppercase(),
            member_count: 1,
            joined: false,
            private: false,
        };
        let mut c = chat();
        assert_eq!(c.more_rooms(), None, "nothing to continue yet");
        let first = c.list_rooms();
        assert_eq!(
            first,
            ClientMsg::ListRooms {
                after: None,
                limit: None
            }
        );
        c.apply(ServerMsg::Rooms {
            rooms: vec![room("ra")],
            next: Some(id("ra")),
        });
        assert_eq!(
            c.more_rooms(),
            Some(ClientMsg::ListRooms {
                after: Some(id("ra")),
                limit: None
            })
        );
        c.apply(ServerMsg::Rooms {
            rooms: vec![room("rb")],
            next: None,
        });
        assert_eq!(c.rooms, Some(vec![room("ra"), room("rb")]));
        assert_eq!(c.more_rooms(), None, "the last page");
        c.list_rooms();
        c.apply(ServerMsg::Rooms {
            rooms: vec![room("rc")],
            next: None,
        });
        assert_eq!(c.rooms, Some(vec![room("rc")]));
    }

    fn history(conv: &str, seqs: std::ops::RangeInclusive<Seq>, has_more: bool) -> ServerMsg {
        ServerMsg::History {
            conversation_id: id(conv),
            from_seq: if has_more { *seqs.start() } else { 1 },
            to_seq: *seqs.end(),
            messages: seqs.map(|s| msg(conv, s, "bob")).collect(),
            has_more,
        }
    }

    fn order(c: &Chat) -> Vec<&str> {
        c.conversations.iter().map(|c| c.id.0.as_str()).collect()
    }

    #[test]
    fn a_message_elsewhere_moves_its_conversation_up_and_counts_as_unread() {
        let mut c = chat();
        let (out, alert) = c.apply(ServerMsg::Message {
            message: msg("ann/bob", 4, "bob"),
        });
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(order(&c), ["ann/bob", "ann/cat"]);
        let bob = c.summary(&id("ann/bob")).unwrap();
        assert_eq!((bob.last_seq, bob.unread), (4, 3));
        assert_eq!(bob.last_message.as_ref().unwrap().text, "m4");
        assert_eq!(alert.unwrap().sender, "BOB");
        assert_eq!(c.total_unread(), 3);
    }

    #[test]
    fn opening_loads_the_newest_page_marks_read_and_remembers_the_first_unread() {
        let mut c = chat();
        let out = c.open(id("ann/bob"));
        assert_eq!(
            out,
            [
                ClientMsg::History {
                    conversation_id: id("ann/bob"),
                    before_seq: None,
                    limit: Some(DEFAULT_HISTORY_PAGE)
                },
                // Who is in it and how far they have read ("Seen").
                ClientMsg::ListMembers {
                    conversation_id: id("ann/bob"),
                    after: None,
                    limit: None
                },
                ClientMsg::MarkRead {
                    conversation_id: id("ann/bob"),
                    seq: 3
                }
            ]
        );
        assert_eq!(c.threads[&id("ann/bob")].first_unread, Some(2));
        assert_eq!(c.summary(&id("ann/bob")).unwrap().unread, 0);
        // Opening again while the page is loading asks for nothing more.
        assert!(c.open(id("ann/bob")).is_empty());
    }

    #[test]
    fn a_message_in_the_open_conversation_is_read_at_once_unless_the_tab_is_hidden() {
        let mut c = chat();
        c.open(id("ann/bob"));
        c.apply(history("ann/bob", 1..=3, false));
        let (out, alert) = c.apply(ServerMsg::Message {
            message: msg("ann/bob", 4, "bob"),
        });
        assert_eq!(
            out,
            [ClientMsg::MarkRead {
                conversation_id: id("ann/bob"),
                seq: 4
            }]
        );
        assert!(alert.is_none());
        assert_eq!(c.set_visible(false), None);
        let (out, alert) = c.apply(ServerMsg::Message {
            message: msg("ann/bob", 5, "bob"),
        });
        assert!(out.is_empty());
        assert!(alert.is_some(), "a hidden tab alerts");
        assert_eq!(c.summary(&id("ann/bob")).unwrap().unread, 1);
        assert_eq!(
            c.set_visible(true),
            Some(ClientMsg::MarkRead {
                conversation_id: id("ann/bob"),
                seq: 5
            })
        );
    }

    #[test]
    fn messages_are_kept_once_and_in_order_whatever_the_arrival_order() {
        let mut c = chat();
        c.open(id("ann/bob"));
        c.apply(history("ann/bob", 2..=3, true));
        for seq in [5, 4, 5, 3] {
            c.apply(ServerMsg::Message {
                message: msg("ann/bob", seq, "bob"),
            });
        }
        let seqs: Vec<_> = c.threads[&id("ann/bob")].messages.keys().copied().collect();
        assert_eq!(seqs, [2, 3, 4, 5]);
    }

    #[test]
    fn a_gap_is_filled_from_history() {
        let mut c = chat();
        c.open(id("ann/bob"));
        c.apply(history("ann/bob", 1..=3, false));
        let (out, _) = c.apply(ServerMsg::Message {
            message: msg("ann/bob", 7, "bob"),
        });
        assert_eq!(
            out[0],
            ClientMsg::History {
                conversation_id: id("ann/bob"),
                before_seq: Some(7),
                limit: Some(3)
            }
        );
    }

    #[test]
    fn older_pages_load_once_at_a_time_and_stop_at_the_beginning() {
        let mut c = chat();
        // Nothing unread: opening loads only the newest page (unlike
        // `opening_loads_older_pages_until_the_first_unread_message`).
        c.open(id("ann/cat"));
        c.apply(history("ann/cat", 51..=100, true));
        let older = c.load_older();
        assert_eq!(
            older,
            Some(ClientMsg::History {
                conversation_id: id("ann/cat"),
                before_seq: Some(51),
                limit: Some(DEFAULT_HISTORY_PAGE)
            })
        );
        assert_eq!(c.load_older(), None, "one page at a time");
        c.apply(history("ann/cat", 1..=50, false));
        assert_eq!(c.load_older(), None, "nothing before seq 1");
        assert_eq!(c.threads[&id("ann/cat")].messages.len(), 100);
    }

    #[test]
    fn a_local_echo_becomes_the_stored_message_on_ack_and_fails_visibly_on_error() {
        let mut c = chat();
        c.open(id("ann/bob"));
        c.apply(history("ann/bob", 1..=3, false));
        let body = MessageBody::parse("hello").unwrap();
        let frame = c.send(
            Some(body.clone()),
            vec![],
            ClientMsgId::parse("x1").unwrap(),
            None,
        );
        assert!(matches!(frame, Some(ClientMsg::Send { .. })));
        assert_eq!(c.threads[&id("ann/bob")].pending.len(), 1);
        let mut stored = msg("ann/bob", 4, "ann");
        stored.client_msg_id = "x1".into();
        c.apply(ServerMsg::Ack {
            client_msg_id: "x1".into(),
            message: stored,
        });
        let t = &c.threads[&id("ann/bob")];
        assert!(t.pending.is_empty());
        assert_eq!(t.last_seq(), Some(4));

        c.send(Some(body), vec![], ClientMsgId::parse("x2").unwrap(), None);
        c.apply(ServerMsg::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            client_msg_id: Some("x2".into()),
        });
        assert!(matches!(
            c.threads[&id("ann/bob")].pending[0].state,
            PendingState::Failed(_)
        ));
        assert!(matches!(c.retry("x2"), Some(ClientMsg::Send { .. })));
        assert_eq!(
            c.threads[&id("ann/bob")].pending[0].state,
            PendingState::Sending
        );
    }

    #[test]
    fn offline_sends_wait_and_go_out_after_the_reconnect_with_the_same_id() {
        let mut c = chat();
        c.open(id("ann/bob"));
        c.apply(history("ann/bob", 1..=3, false));
        c.disconnected();
        let sent = c.send(
            Some(MessageBody::parse("later").unwrap()),
            vec![],
            ClientMsgId::parse("x9").unwrap(),
            None,
        );
        assert_eq!(sent, None);
        assert_eq!(
            c.resume(),
            ClientMsg::Resume {
                positions: vec![Position {
                    conversation_id: id("ann/bob"),
                    seq: 3
                }]
            }
        );
        let (out, _) = c.apply(ServerMsg::Resumed);
        assert_eq!(out[0], ClientMsg::ListConversations { limit: None });
        assert!(out.iter().any(|m| matches!(
            m,
            ClientMsg::Send { client_msg_id, .. } if client_msg_id.as_str() == "x9"
        )));
    }

    #[test]
    fn a_message_in_an_unknown_conversation_fetches_the_list_once() {
        let mut c = chat();
        let (out, alert) = c.apply(ServerMsg::Message {
            message: msg("ann/dan", 1, "dan"),
        });
        assert_eq!(out, [ClientMsg::ListConversations { limit: None }]);
        assert!(alert.is_some());
        let (out, _) = c.apply(ServerMsg::Message {
            message: msg("ann/dan", 2, "dan"),
        });
        assert!(out.is_empty(), "already asked");
    }

    #[test]
    fn read_state_from_another_tab_clears_the_badge() {
        let mut c = chat();
        c.apply(ServerMsg::ReadState {
            conversation_id: id("ann/bob"),
            last_read_seq: 3,
            last_seq: 3,
            unread: 0,
            mentions: 0,
        });
        assert_eq!(c.summary(&id("ann/bob")).unwrap().unread, 0);
        assert_eq!(c.total_unread(), 0);
    }

    #[test]
    fn mentions_count_until_read_and_only_they_alert_below_all() {
        let mut c = chat();
        let calling = |seq| Message {
            body: "@ann look".into(),
            mentions: vec!["ann".into()],
            ..msg("ann/bob", seq, "bob")
        };
        c.apply(ServerMsg::Message {
            message: calling(4),
        });
        let bob = c.summary(&id("ann/bob")).unwrap();
        assert_eq!((bob.unread, bob.mentions), (3, 1));

        // Muted: an ordinary message alerts no more, a mention still does.
        assert_eq!(
            c.set_notify(&id("ann/bob"), NotifyLevel::Mute),
            Some(ClientMsg::SetNotify {
                conversation_id: id("ann/bob"),
                level: NotifyLevel::Mute
            })
        );
        assert_eq!(c.set_notify(&id("ann/bob"), NotifyLevel::Mute), None);
        let (_, alert) = c.apply(ServerMsg::Message {
            message: msg("ann/bob", 5, "bob"),
        });
        assert!(alert.is_none(), "muted");
        let (_, alert) = c.apply(ServerMsg::Message {
            message: calling(6),
        });
        assert!(alert.is_some(), "a mention gets through");
        assert_eq!(c.summary(&id("ann/bob")).unwrap().mentions, 2);

        // Another tab chose again; reading clears the mentions with the unread count.
        c.apply(ServerMsg::Notify {
            conversation_id: id("ann/bob"),
            level: NotifyLevel::Mentions,
        });
        assert_eq!(
            c.summary(&id("ann/bob")).unwrap().notify,
            NotifyLevel::Mentions
        );
        c.apply(ServerMsg::ReadState {
            conversation_id: id("ann/bob"),
            last_read_seq: 6,
            last_seq: 6,
            unread: 0,
            mentions: 0,
        });
        assert_eq!(c.summary(&id("ann/bob")).unwrap().mentions, 0);
    }

    #[test]
    fn members_are_offered_for_a_mention_by_name_or_username() {
        let mut c = chat();
        c.open(id("ann/bob"));
        c.apply(ServerMsg::Members {
            conversation_id: id("ann/bob"),
            members: ["ann", "bob", "bea"]
                .into_iter()
                .map(|u| Member {
                    user: user(u),
                    online: true,
                    last_read_seq: Some(0),
                    role: None,
                })
                .collect(),
            next: None,
        });
        let names = |typed: &str| -> Vec<String> {
            c.mention_candidates(&id("ann/bob"), typed, 8)
                .into_iter()
                .map(|u| u.username)
                .collect()
        };
        assert_eq!(names(""), ["bea", "bob"], "never oneself");
        assert_eq!(names("BO"), ["bob"]);
        assert_eq!(names("x"), Vec::<String>::new());
    }

    #[test]
    fn a_new_display_name_shows_wherever_the_name_does() {
        let mut c = chat();
        c.apply(ServerMsg::UserUpdated {
            user: UserInfo::named("bob", "鲍勃 Bob"),
        });
        let bob = c.summary(&id("ann/bob")).unwrap();
        assert_eq!(bob.title, "鲍勃 Bob");
        assert_eq!(bob.peer.as_ref().unwrap().user.display_name, "鲍勃 Bob");
        assert_eq!(c.name_of("bob"), "鲍勃 Bob");
        let me = c.me.username.clone();
        c.apply(ServerMsg::UserUpdated {
            user: UserInfo::named(me.clone(), "Ann N."),
        });
        assert_eq!(c.me.display_name, "Ann N.");
        assert_eq!(c.name_of(&me), "Ann N.");
    }

    #[test]
    fn presence_and_leaving_update_the_list() {
        let mut c = chat();
        c.apply(ServerMsg::Presence {
            username: "bob".into(),
            online: true,
        });
        let bob = c.summary(&id("ann/bob")).unwrap().clone();
        assert_eq!(c.peer_online(&bob), Some(true));
        // A lost connection knows nobody's presence until the list comes again.
        c.disconnected();
        assert_eq!(c.peer_online(&bob), Some(false));
        c.apply(ServerMsg::Presence {
            username: "bob".into(),
            online: true,
        });
        c.open(id("ann/bob"));
        c.apply(ServerMsg::Left {
            conversation_id: id("ann/bob"),
            reason: None,
        });
        assert_eq!(order(&c), ["ann/cat"]);
        assert_eq!(c.active, None);
    }

    #[test]
    fn typing_shows_until_it_lapses_or_the_message_arrives() {
        let mut c = chat();
        let ab = id("ann/bob");
        c.someone_typing(ab.clone(), "bob".into(), 1_000);
        c.someone_typing(id("r1"), "cat".into(), 1_000);
        assert_eq!(c.typing_in(&ab, 1_000), ["BOB"]);
        assert!(
            c.typing_in(&ab, 1_000 + TYPING_SHOWN_MS).is_empty(),
            "lapsed"
        );
        c.someone_typing(ab.clone(), "bob".into(), 5_000);
        assert_eq!(c.typing.len(), 2, "said again, shown longer, listed once");
        assert_eq!(c.typing_in(&ab, 1_000 + TYPING_SHOWN_MS), ["BOB"]);
        c.apply(ServerMsg::Message {
            message: msg("ann/bob", 3, "bob"),
        });
        assert!(c.typing_in(&ab, 5_000).is_empty(), "their message ends it");
        assert_eq!(c.typing_in(&id("r1"), 5_000), ["CAT"]);
        c.expire_typing(1_000 + TYPING_SHOWN_MS);
        assert!(c.typing.is_empty());
    }

    #[test]
    fn typing_is_said_at_most_every_few_seconds_and_again_after_sending() {
        let mut c = chat();
        c.open(id("ann/bob"));
        c.live = false;
        assert_eq!(c.typing_request(0), None, "not while offline");
        c.live = true;
        let said = ClientMsg::Typing {
            conversation_id: id("ann/bob"),
        };
        assert_eq!(c.typing_request(10), Some(said.clone()));
        assert_eq!(c.typing_request(10 + TYPING_EVERY_MS - 1), None);
        assert_eq!(c.typing_request(10 + TYPING_EVERY_MS), Some(said.clone()));
        c.send(
            Some(MessageBody::parse("hi").unwrap()),
            vec![],
            ClientMsgId::parse("c1").unwrap(),
            None,
        );
        assert_eq!(c.typing_request(20 + TYPING_EVERY_MS), Some(said));
        c.close();
        assert_eq!(c.typing_request(30_000), None, "no conversation open");
    }

    fn at(conv: &str, seq: Option<Seq>) -> Place {
        Place {
            conversation: id(conv),
            seq,
        }
    }

    #[test]
    fn an_address_opens_its_conversation_once_the_list_is_known_or_says_not_found() {
        let mut c = Chat::new(user("ann"));
        c.resume();
        c.apply(ServerMsg::Resumed);
        assert!(
            c.go_to(Some(at("ann/bob", None))).is_empty(),
            "waits for the list"
        );
        assert_eq!(c.place(), Some(at("ann/bob", None)));
        assert_eq!(c.active, None);
        let (out, _) = c.apply(ServerMsg::Conversations {
            conversations: vec![direct("bob", 3, 1, 10)],
            has_more: false,
        });
        assert_eq!(c.active, Some(id("ann/bob")));
        assert!(out
            .iter()
            .any(|m| matches!(m, ClientMsg::History { conversation_id, .. } if *conversation_id == id("ann/bob"))));
        assert!(
            c.go_to(Some(at("ann/bob", None))).is_empty(),
            "already there"
        );

        c.go_to(Some(at("ann/zed", None)));
        assert_eq!(
            (c.active.as_ref(), c.missing.as_ref()),
            (None, Some(&at("ann/zed", None)))
        );
        assert_eq!(c.place(), Some(at("ann/zed", None)), "the address stays");
        c.go_to(None);
        assert_eq!((c.place(), c.missing.as_ref()), (None, None));
        c.go_to(Some(at("ann/bob", None)));
        assert_eq!(c.active, Some(id("ann/bob")));
        c.close();
        assert_eq!(c.place(), None);
    }

    #[test]
    fn seen_follows_the_others_read_positions_for_ones_own_newest_message() {
        let mut c = chat();
        c.open(id("ann/bob"));
        c.apply(history("ann/bob", 1..=3, false));
        assert_eq!(c.seen_by(&id("ann/bob")), None, "the newest is Bob's");
        c.apply(ServerMsg::Ack {
            client_msg_id: "cann4".into(),
            message: msg("ann/bob", 4, "ann"),
        });
        assert_eq!(c.seen_by(&id("ann/bob")), None, "not read yet");
        c.apply(ServerMsg::Seen {
            conversation_id: id("ann/bob"),
            username: "bob".into(),
            last_read_seq: 4,
        });
        let seen = c.seen_by(&id("ann/bob")).unwrap();
        assert_eq!((seen.seq, seen.direct), (4, true));
        c.apply(ServerMsg::Seen {
            conversation_id: id("ann/bob"),
            username: "bob".into(),
            last_read_seq: 2,
        });
        assert!(c.seen_by(&id("ann/bob")).is_some(), "never goes back");

        // A room: counted from the member list and the members' own messages.
        c.apply(ServerMsg::Conversation {
            conversation: ConversationSummary {
                id: id("r1"),
                kind: ConversationKind::Room,
                title: "Room".into(),
                peer: None,
                last_seq: 0,
                last_read_seq: 0,
                unread: 0,
                mentions: 0,
                notify: NotifyLevel::All,
                last_message: None,
                last_activity_ms: 1,
                topic: None,
                private: false,
                role: None,
            },
        });
        c.open(id("r1"));
        c.apply(history("r1", 1..=1, false));
        c.apply(ServerMsg::Message {
            message: msg("r1", 2, "ann"),
        });
        let member = |name: &str, read: Seq| Member {
            user: user(name),
            online: true,
            last_read_seq: Some(read),
            role: None,
        };
        c.apply(ServerMsg::Members {
            conversation_id: id("r1"),
            members: vec![member("ann", 2), member("bob", 2), member("cat", 1)],
            next: None,
        });
        let seen = c.seen_by(&id("r1")).unwrap();
        assert!(!seen.direct);
        assert_eq!(seen.names.len(), 1);
        c.apply(ServerMsg::Message {
            message: msg("r1", 3, "cat"),
        });
        assert_eq!(c.seen_by(&id("r1")), None, "the newest is Cat's");
    }

    #[test]
    fn opening_loads_older_pages_until_the_first_unread_message() {
        let mut c = chat();
        c.apply(ServerMsg::Message {
            message: msg("ann/bob", 160, "bob"),
        });
        c.summary_mut(&id("ann/bob")).unwrap().last_read_seq = 10;
        c.summary_mut(&id("ann/bob")).unwrap().unread = 150;
        c.open(id("ann/bob"));
        let t = |c: &Chat| c.threads[&id("ann/bob")].clone();
        assert_eq!(t(&c).first_unread, Some(11));
        let (out, _) = c.apply(history("ann/bob", 111..=160, true));
        assert!(t(&c).reaching_back());
        let older = |before: Seq| ClientMsg::History {
            conversation_id: id("ann/bob"),
            before_seq: Some(before),
            limit: Some(MAX_HISTORY_PAGE),
        };
        assert!(out.contains(&older(111)), "{out:?}");
        assert_eq!(c.load_older(), None, "one request at a time");
        let (out, _) = c.apply(history("ann/bob", 11..=110, true));
        assert!(!t(&c).reaching_back(), "the first unread is in");
        assert!(
            !out.iter().any(|m| matches!(m, ClientMsg::History { .. })),
            "{out:?}"
        );
        assert!(t(&c).has_more, "older ones load on scrolling, as usual");
    }

    #[test]
    fn an_address_far_back_opens_a_page_around_its_message_and_the_gap_loads_as_scrolled_to() {
        let mut c = chat();
        let conv = "ann/cat";
        let page = |before: Seq| ClientMsg::History {
            conversation_id: id(conv),
            before_seq: Some(before),
            limit: Some(MAX_HISTORY_PAGE),
        };
        let histories = |out: &[ClientMsg]| -> Vec<ClientMsg> {
            out.iter()
                .filter(|m| matches!(m, ClientMsg::History { .. }))
                .cloned()
                .collect()
        };
        c.summary_mut(&id(conv)).unwrap().last_seq = 1000;
        c.open(id(conv));
        c.apply(history(conv, 951..=1000, true));
        let out = c.go_to(Some(at(conv, Some(200))));
        assert_eq!(histories(&out), [page(251)], "50 after it, the rest before");
        assert!(c.threads[&id(conv)].reaching_back(), "busy until it is in");
        assert_eq!(c.load_gap(), None, "the gap waits for the page around");
        // The connection drops before it comes: asked again once resumed.
        c.disconnected();
        let (out, _) = c.apply(ServerMsg::Resumed);
        assert_eq!(histories(&out), [page(251)], "{out:?}");
        let (out, _) = c.apply(history(conv, 151..=250, true));
        assert_eq!(histories(&out), [], "the gap is not filled by itself");
        let t = &c.threads[&id(conv)];
        assert!(!t.reaching_back() && t.messages.contains_key(&200));
        assert_eq!(t.gap, Some((251, 950)));
        assert_eq!(
            t.messages.len(),
            150,
            "the page around and the newest page only"
        );
        assert_eq!(
            c.load_older(),
            Some(ClientMsg::History {
                conversation_id: id(conv),
                before_seq: Some(151),
                limit: Some(DEFAULT_HISTORY_PAGE),
            }),
            "older from the page around"
        );
        // Scrolling down to the gap: a page at a time from its older end.
        let mut pages = 0;
        while let Some(req) = c.load_gap() {
            let ClientMsg::History {
                before_seq: Some(before),
                ..
            } = req
            else {
                panic!("{req:?}")
            };
            assert_eq!(c.load_gap(), None, "one page at a time");
            let (out, _) = c.apply(history(conv, before - 100..=before - 1, true));
            assert_eq!(histories(&out), []);
            pages += 1;
            assert!(pages <= 7, "the gap closes");
        }
        let t = &c.threads[&id(conv)];
        assert_eq!((t.gap, pages), (None, 7));
        assert!(t.known.range(151..=1000).count() == 850, "no hole left");
        // A live message after a missed one fills the hole as always.
        let (out, _) = c.apply(ServerMsg::Message {
            message: msg(conv, 1002, "cat"),
        });
        assert_eq!(
            histories(&out),
            [ClientMsg::History {
                conversation_id: id(conv),
                before_seq: Some(1002),
                limit: Some(1),
            }]
        );
    }

    #[test]
    fn an_address_in_the_gap_opens_a_page_around_it_in_place_of_the_last() {
        let mut c = chat();
        let conv = "ann/cat";
        c.summary_mut(&id(conv)).unwrap().last_seq = 1000;
        c.open(id(conv));
        c.apply(history(conv, 951..=1000, true));
        c.go_to(Some(at(conv, Some(200))));
        c.apply(history(conv, 151..=250, true));
        let out = c.go_to(Some(at(conv, Some(600))));
        assert_eq!(
            out,
            [ClientMsg::History {
                conversation_id: id(conv),
                before_seq: Some(651),
                limit: Some(MAX_HISTORY_PAGE),
            }]
        );
        let t = &c.threads[&id(conv)];
        assert_eq!(t.gap, Some((651, 950)));
        assert_eq!(t.first_seq(), Some(951), "the older page around is let go");
        c.apply(history(conv, 551..=650, true));
        let t = &c.threads[&id(conv)];
        assert!(t.messages.contains_key(&600) && !t.reaching_back());
        // Near the newest page: older pages back to it, as before.
        assert!(!t.far_from(540));
        assert!(t.far_from(300));
        assert!(!t.far_from(1000), "held");
        assert!(!t.far_from(5000), "no such message");
    }

    #[test]
    fn a_message_address_loads_back_to_its_message_and_highlights_it() {
        let mut c = chat();
        c.open(id("ann/cat"));
        c.apply(history("ann/cat", 101..=150, true));
        c.open(id("ann/bob"));
        // Another conversation, at message 20: opened, then its pages back to 20.
        c.summary_mut(&id("ann/cat")).unwrap().last_seq = 150;
        let out = c.go_to(Some(at("ann/cat", Some(20))));
        let older = |before: Seq| ClientMsg::History {
            conversation_id: id("ann/cat"),
            before_seq: Some(before),
            limit: Some(MAX_HISTORY_PAGE),
        };
        assert!(out.contains(&older(101)), "{out:?}");
        assert_eq!(c.place(), Some(at("ann/cat", Some(20))));
        let (out, _) = c.apply(history("ann/cat", 1..=100, false));
        assert!(!c.threads[&id("ann/cat")].reaching_back());
        assert!(!out.iter().any(|m| matches!(m, ClientMsg::History { .. })));
        // The same conversation at another message: nothing to load; the list clears it.
        assert!(c.go_to(Some(at("ann/cat", Some(7)))).is_empty());
        assert_eq!(c.threads[&id("ann/cat")].focus, Some(7));
        c.open(id("ann/cat"));
        assert_eq!(
            c.place(),
            Some(at("ann/cat", None)),
            "opened from the list: no message"
        );
    }
}
