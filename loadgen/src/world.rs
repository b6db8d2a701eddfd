//! The population a scenario runs on: users in pairs, each pair with a direct conversation
//! (both of them open it at the same moment), and one room everybody joined; and the
//! end-of-run check over all of it.

use anyhow::Context;
use app::domain::{RoomName, Username};
use app::protocol::{ClientMsg, ConversationId, ServerMsg};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use crate::check::{check, check_unread, Acked, Findings};
use crate::client::Conn;
use crate::http::sign_up;

pub struct World {
    /// (username, session token) per user.
    pub users: Vec<(String, String)>,
    /// Each conversation, with the token of one member to read it back.
    pub readers: BTreeMap<ConversationId, String>,
    /// Per user (same order as `users`): the conversations they may write to.
    pub routes: Vec<Vec<ConversationId>>,
}

/// Signs up `count` (at least 2) users named `{prefix}u{i}`, pairs them in direct
/// conversations and puts everyone in one room called `room`.
pub async fn populate(
    addr: SocketAddr,
    prefix: &str,
    count: usize,
    room: &str,
) -> anyhow::Result<World> {
    let count = count.max(2);
    let mut users = Vec::new();
    for i in 0..count {
        let name = format!("{prefix}u{i}");
        users.push((name.clone(), sign_up(addr, &name).await?));
    }
    let mut readers = BTreeMap::new();
    let mut routes: Vec<Vec<ConversationId>> = vec![Vec::new(); count];
    // Both people of a pair open their conversation at the same moment, as two people
    // starting to talk to each other do: the server resolves the race, both get it.
    for pair in (0..count - 1).step_by(2) {
        let open = |from: usize, to: usize| -> anyhow::Result<_> {
            let msg = ClientMsg::OpenDirect {
                username: Username::parse(&users[to].0)?,
            };
            Ok(ask_conversation(addr, &users[from].1, msg))
        };
        let (a, b) = tokio::join!(open(pair, pair + 1)?, open(pair + 1, pair)?);
        let (id, other) = (a?, b?);
        anyhow::ensure!(
            id == other,
            "a pair opened two conversations: {id} and {other}"
        );
        readers.insert(id.clone(), users[pair].1.clone());
        routes[pair].push(id.clone());
        routes[pair + 1].push(id);
    }
    let room = ask_conversation(
        addr,
        &users[0].1,
        ClientMsg::CreateRoom {
            name: RoomName::parse(room)?,
            private: false,
        },
    )
    .await?;
    for (_, token) in &users[1..] {
        ask_conversation(
            addr,
            token,
            ClientMsg::JoinRoom {
                conversation_id: room.clone(),
            },
        )
        .await?;
    }
    readers.insert(room.clone(), users[0].1.clone());
    for r in &mut routes {
        r.push(room.clone());
    }
    Ok(World {
        users,
        readers,
        routes,
    })
}

/// Sends `msg` on a new socket of `token`'s user and returns the conversation it answers.
pub async fn ask_conversation(
    addr: SocketAddr,
    token: &str,
    msg: ClientMsg,
) -> anyhow::Result<ConversationId> {
    let mut conn = Conn::open(addr, token).await?;
    // Set-up is not measured, and dozens of joins at once queue behind each other's
    // commits: on a debug server sharing its cores with a build, several seconds each.
    // An error is the answer too: waiting on would only hide it.
    let answer = conn
        .ask_within(Duration::from_secs(120), msg, |m| match m {
            ServerMsg::Conversation { conversation } => Some(Ok(conversation.id.clone())),
            ServerMsg::Error { .. } => Some(Err(anyhow::anyhow!("refused: {m:?}"))),
            _ => None,
        })
        .await
        .context("set-up request")?;
    conn.close().await;
    answer.context("set-up request")
}

impl World {
    /// Reads everything back: the acknowledged messages (see [`check`]) and every user's
    /// unread counts against the newest acknowledged `seq`s, and their read positions against
    /// where they `marked` them (see [`check_unread`]).
    pub async fn check(
        &self,
        addr: SocketAddr,
        acked: &[Acked],
        marked: &HashMap<(usize, ConversationId), u64>,
    ) -> anyhow::Result<Findings> {
        let mut findings = check(addr, &self.readers, acked).await?;
        findings
            .problems
            .extend(check_unread(addr, &self.users, &findings.ends, marked).await?);
        Ok(findings)
    }
}
