//! Reads every conversation back from the server and checks what must always hold:
//! every acknowledged message is there exactly once, with the `seq` it was acknowledged
//! with; `seq`s run 1, 2, 3, … with no gap; and each member's unread count is
//! `last_seq - last_read_seq`.

use anyhow::{bail, Context};
use app::protocol::{ClientMsg, ConversationId, Message, ServerMsg, MAX_HISTORY_PAGE};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use crate::client::Conn;

/// A message the server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub conversation: ConversationId,
    pub seq: u64,
    pub client_msg_id: String,
}

/// Every stored message of `conversation`, oldest first, read as `token`'s user.
pub async fn full_history(
    conn: &mut Conn,
    conversation: &ConversationId,
) -> anyhow::Result<Vec<Message>> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let want = conversation.clone();
        let (page, more) = conn
            .ask(
                ClientMsg::History {
                    conversation_id: conversation.clone(),
                    before_seq: before,
                    limit: Some(MAX_HISTORY_PAGE),
                },
                move |m| match m {
                    ServerMsg::History {
                        conversation_id,
                        messages,
                        has_more,
                        ..
                    } if *conversation_id == want => Some((messages.clone(), *has_more)),
                    _ => None,
                },
            )
            .await?;
        before = page.first().map(|m| m.seq);
        let mut page = page;
        page.extend(all);
        all = page;
        if !more || before.is_none() {
            return Ok(all);
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub stored: usize,
    pub acked: usize,
    /// Acknowledged and found, with the acknowledged `seq`.
    pub recovered: usize,
    pub lost: Vec<Acked>,
    pub problems: Vec<String>,
    /// The last stored `seq` of each conversation read.
    pub ends: HashMap<ConversationId, u64>,
}

impl Findings {
    pub fn ok(&self) -> bool {
        self.lost.is_empty() && self.problems.is_empty()
    }
}

/// Checks `acked` against what the server holds. `readers` maps each conversation to the
/// token of one of its members.
pub async fn check(
    addr: SocketAddr,
    readers: &BTreeMap<ConversationId, String>,
    acked: &[Acked],
) -> anyhow::Result<Findings> {
    let mut f = Findings {
        acked: acked.len(),
        ..Findings::default()
    };
    let mut stored: HashMap<ConversationId, Vec<Message>> = HashMap::new();
    for (conversation, token) in readers {
        let mut conn = Conn::open(addr, token).await.context("reader connects")?;
        let history = full_history(&mut conn, conversation).await?;
        conn.close().await;
        for (i, m) in history.iter().enumerate() {
            if m.seq != i as u64 + 1 {
                f.problems.push(format!(
                    "{conversation}: position {} holds seq {} (gap or reorder)",
                    i + 1,
                    m.seq
                ));
                break;
            }
        }
        let mut ids: HashMap<(&str, &str), u64> = HashMap::new();
        for m in &history {
            if let Some(first) = ids.insert((&m.sender, &m.client_msg_id), m.seq) {
                f.problems.push(format!(
                    "{conversation}: client_msg_id {} stored twice (seq {first} and {})",
                    m.client_msg_id, m.seq
                ));
            }
        }
        f.stored += history.len();
        f.ends
            .insert(conversation.clone(), history.last().map_or(0, |m| m.seq));
        stored.insert(conversation.clone(), history);
    }
    for a in acked {
        let found = stored
            .get(&a.conversation)
            .and_then(|h| h.get(a.seq as usize - 1))
            .is_some_and(|m| m.client_msg_id == a.client_msg_id);
        if found {
            f.recovered += 1;
        } else {
            f.lost.push(a.clone());
        }
    }
    Ok(f)
}

/// Each user's recent-conversations list agrees with the histories: `last_seq` is the newest
/// stored `seq` and `unread = last_seq - last_read_seq`; and each read position is at least
/// where its user marked it (`marked`: by the user's index in `users`, then conversation).
pub async fn check_unread(
    addr: SocketAddr,
    users: &[(String, String)],
    newest: &HashMap<ConversationId, u64>,
    marked: &HashMap<(usize, ConversationId), u64>,
) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for (i, (name, token)) in users.iter().enumerate() {
        let mut conn = Conn::open(addr, token).await?;
        let list = conn
            .ask(ClientMsg::ListConversations { limit: None }, |m| match m {
                ServerMsg::Conversations { conversations, .. } => Some(conversations.clone()),
                _ => None,
            })
            .await?;
        conn.close().await;
        for c in list {
            if c.unread != c.last_seq.saturating_sub(c.last_read_seq) {
                problems.push(format!(
                    "{}: unread {} != {} - {}",
                    c.id, c.unread, c.last_seq, c.last_read_seq
                ));
            }
            if let Some(&n) = newest.get(&c.id) {
                if c.last_seq != n {
                    problems.push(format!(
                        "{}: last_seq {} but history ends at {n}",
                        c.id, c.last_seq
                    ));
                }
            }
            if let Some(&wanted) = marked.get(&(i, c.id.clone())) {
                if c.last_read_seq < wanted {
                    problems.push(format!(
                        "{name}: {} read up to {} after marking {wanted}",
                        c.id, c.last_read_seq
                    ));
                }
            }
        }
    }
    Ok(problems)
}

/// Fails with a readable account of what is wrong.
pub fn require(f: &Findings) -> anyhow::Result<()> {
    if f.ok() {
        return Ok(());
    }
    let mut text = format!("{} acknowledged messages lost", f.lost.len());
    for l in f.lost.iter().take(5) {
        text.push_str(&format!("\n  lost: {l:?}"));
    }
    for p in f.problems.iter().take(10) {
        text.push_str(&format!("\n  {p}"));
    }
    bail!("{text}")
}
