//! Randomised property test: two people send, react, edit, drop their connection, come back
//! and resume, mark read and read, in random interleavings. Whatever the order:
//! - nobody misses a message or a change and nobody gets one twice (live, replayed or
//!   acknowledged), and the positions are gap-free;
//! - on each connection, a conversation's positions arrive in `seq` order;
//! - the server's unread count is the number of messages (not changes) after the read
//!   position, which is the furthest the person marked or sent.
//!
//! Each case is a seed; a failure names it. `INTERLEAVE_CASES` (default 12) and
//! `INTERLEAVE_SEED` change how many and where they start.

use app::{
    domain::{ClientMsgId, MessageBody, Username},
    protocol::{ClientMsg, ConversationId, Position, ServerMsg},
};
use std::collections::BTreeSet;
use std::time::Duration;

use crate::helpers::{spawn_app, Client, TestApp};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// One person's view, kept by the test.
struct Person {
    name: &'static str,
    token: String,
    socket: Option<Client>,
    /// Every `seq` this person has been given, by delivery or by ack.
    seen: BTreeSet<u64>,
    /// Those that are messages (the others are changes).
    messages: BTreeSet<u64>,
    /// Their own acknowledged messages.
    own: Vec<u64>,
    /// On the current connection: the last `message` seq delivered.
    last_on_socket: u64,
    /// The furthest position marked read or sent.
    read_to: u64,
    sent: u64,
}

impl Person {
    fn new(name: &'static str, token: String) -> Self {
        Person {
            name,
            token,
            socket: None,
            seen: BTreeSet::new(),
            messages: BTreeSet::new(),
            own: Vec::new(),
            last_on_socket: 0,
            read_to: 0,
            sent: 0,
        }
    }

    async fn connect(&mut self, app: &TestApp, conv: &ConversationId) {
        let mut socket = app.connect(&self.token).await;
        socket.recv().await; // hello
        let from = self.seen.last().copied().unwrap_or(0);
        socket
            .send(&ClientMsg::Resume {
                positions: vec![Position {
                    conversation_id: conv.clone(),
                    seq: from,
                }],
            })
            .await;
        self.socket = Some(socket);
        self.last_on_socket = from;
        self.drain_until(|m| matches!(m, ServerMsg::Resumed)).await;
    }

    /// Reads frames, checking each delivery, until `stop` accepts one.
    async fn drain_until(&mut self, mut stop: impl FnMut(&ServerMsg) -> bool) -> ServerMsg {
        loop {
            let msg = self.socket.as_mut().expect("connected").recv().await;
            self.observe(&msg);
            if stop(&msg) {
                return msg;
            }
        }
    }

    /// Reads whatever arrives until `wait` passes with nothing new.
    async fn drain_for(&mut self, wait: Duration) {
        loop {
            let socket = self.socket.as_mut().expect("connected");
            match tokio::time::timeout(wait, socket.recv()).await {
                Ok(msg) => self.observe(&msg),
                Err(_) => return,
            }
        }
    }

    fn observe(&mut self, msg: &ServerMsg) {
        eprintln!("  {} <- {}", self.name, brief(msg));
        match msg {
            ServerMsg::Message { message } => {
                assert!(
                    message.seq > self.last_on_socket,
                    "{}: seq {} after {} on one connection",
                    self.name,
                    message.seq,
                    self.last_on_socket
                );
                self.last_on_socket = message.seq;
                assert!(
                    self.seen.insert(message.seq),
                    "{}: seq {} delivered twice",
                    self.name,
                    message.seq
                );
                self.messages.insert(message.seq);
            }
            ServerMsg::Changed { change } => {
                assert!(
                    change.seq > self.last_on_socket,
                    "{}: change {} after {} on one connection",
                    self.name,
                    change.seq,
                    self.last_on_socket
                );
                self.last_on_socket = change.seq;
                assert!(
                    self.seen.insert(change.seq),
                    "{}: change {} delivered twice",
                    self.name,
                    change.seq
                );
            }
            ServerMsg::Ack { message, .. } => {
                assert!(
                    self.seen.insert(message.seq),
                    "{}: own seq {} seen twice",
                    self.name,
                    message.seq
                );
                self.messages.insert(message.seq);
                self.own.push(message.seq);
                self.read_to = self.read_to.max(message.seq);
            }
            ServerMsg::Error { code, message, .. } => {
                panic!("{}: error {code:?}: {message}", self.name)
            }
            _ => {}
        }
    }
}

/// A frame in a few words, for the trace a failing case prints.
fn brief(msg: &ServerMsg) -> String {
    match msg {
        ServerMsg::Message { message } => {
            format!("message {} from {}", message.seq, message.sender)
        }
        ServerMsg::Ack { message, .. } => format!("ack {}", message.seq),
        ServerMsg::Changed { change } => format!("change {} of {}", change.seq, change.target),
        ServerMsg::ReadState { last_read_seq, .. } => format!("read_state {last_read_seq}"),
        other => format!("{other:?}").chars().take(40).collect(),
    }
}

async fn run_case(seed: u64) {
    eprintln!("case {seed}");
    let mut rng = Rng(seed.max(1));
    let app = spawn_app().await;
    let mut people = [
        Person::new("ann", app.sign_up("ann").await),
        Person::new("bob", app.sign_up("bob").await),
    ];
    let conv = {
        let mut c = app.connect(&people[0].token).await;
        c.recv().await;
        c.ask(
            ClientMsg::OpenDirect {
                username: Username::parse("bob").unwrap(),
            },
            |m| match m {
                ServerMsg::Conversation { conversation } => Some(conversation.id.clone()),
                _ => None,
            },
        )
        .await
    };
    for p in &mut people {
        p.connect(&app, &conv).await;
    }
    let mut total = 0_u64;
    for _ in 0..40 {
        let p = &mut people[rng.below(2) as usize];
        let op = rng.below(13);
        eprintln!("{} op {op}", p.name);
        match op {
            // Send (connecting first if needed), sometimes without waiting for the ack.
            0..=4 => {
                if p.socket.is_none() {
                    p.connect(&app, &conv).await;
                }
                p.sent += 1;
                total += 1;
                let cmid = format!("{}{}", p.name, p.sent);
                p.socket
                    .as_mut()
                    .unwrap()
                    .send(&ClientMsg::Send {
                        conversation_id: conv.clone(),
                        client_msg_id: ClientMsgId::parse(&cmid).unwrap(),
                        body: Some(MessageBody::parse(&format!("{} #{}", p.name, p.sent)).unwrap()),
                        attachments: Vec::new(),
                        reply_to: None,
                    })
                    .await;
                if rng.below(2) == 0 {
                    p.drain_until(
                        |m| matches!(m, ServerMsg::Ack { client_msg_id, .. } if *client_msg_id == cmid),
                    )
                    .await;
                }
            }
            // Drop the connection (an unacknowledged send may or may not have been stored;
            // it is checked for below, after the reconnect).
            5 => {
                if let Some(s) = p.socket.take() {
                    drop(s);
                }
            }
            // Reconnect and resume.
            6 => {
                p.socket = None;
                p.connect(&app, &conv).await;
            }
            // Mark read somewhere up to what was seen.
            7 => {
                if let (Some(&last), true) = (p.seen.last(), p.socket.is_some()) {
                    let seq = rng.below(last + 1);
                    p.socket
                        .as_mut()
                        .unwrap()
                        .send(&ClientMsg::MarkRead {
                            conversation_id: conv.clone(),
                            seq,
                        })
                        .await;
                    p.drain_until(|m| matches!(m, ServerMsg::ReadState { .. }))
                        .await;
                    p.read_to = p.read_to.max(seq);
                }
            }
            // React to a message, or take the reaction back (a repeat changes nothing).
            10 | 11 => {
                let known: Vec<u64> = p.messages.iter().copied().collect();
                if let (Some(s), false) = (p.socket.as_mut(), known.is_empty()) {
                    let seq = known[rng.below(known.len() as u64) as usize];
                    let emoji = app::domain::Emoji::parse("👍").unwrap();
                    let frame = if op == 10 {
                        ClientMsg::React {
                            conversation_id: conv.clone(),
                            seq,
                            emoji,
                        }
                    } else {
                        ClientMsg::Unreact {
                            conversation_id: conv.clone(),
                            seq,
                            emoji,
                        }
                    };
                    s.send(&frame).await;
                    total += 1;
                }
            }
            // Edit one of one's own messages.
            12 => {
                if let (Some(s), false) = (p.socket.as_mut(), p.own.is_empty()) {
                    let seq = p.own[rng.below(p.own.len() as u64) as usize];
                    p.sent += 1;
                    s.send(&ClientMsg::Edit {
                        conversation_id: conv.clone(),
                        seq,
                        body: MessageBody::parse(&format!("{} edit {}", p.name, p.sent)).unwrap(),
                    })
                    .await;
                    total += 1;
                }
            }
            // Read for a moment.
            _ => {
                if p.socket.is_some() {
                    p.drain_for(Duration::from_millis(5)).await;
                }
            }
        }
    }
    // Everyone comes back and reads until nothing more arrives.
    for p in &mut people {
        p.socket = None;
        p.connect(&app, &conv).await;
    }
    for p in &mut people {
        p.drain_for(Duration::from_millis(200)).await;
    }
    // A send or a change on a dropped connection may not have been stored; whatever was
    // stored is numbered 1..=n with no gaps, and everyone has exactly that.
    let stored = people[0].seen.len().max(people[1].seen.len()) as u64;
    assert!(stored <= total, "seed {seed}: more stored than sent");
    for p in &people {
        let want: BTreeSet<u64> = (1..=stored).collect();
        assert_eq!(p.seen, want, "seed {seed}: {} is missing positions", p.name);
    }
    assert_eq!(
        people[0].messages, people[1].messages,
        "seed {seed}: both know the same positions as messages"
    );
    let messages = people[0].messages.clone();
    for p in &mut people {
        let list = p
            .socket
            .as_mut()
            .unwrap()
            .ask(ClientMsg::ListConversations { limit: None }, |m| match m {
                ServerMsg::Conversations { conversations, .. } => Some(conversations.clone()),
                _ => None,
            })
            .await;
        let c = list
            .iter()
            .find(|c| c.id == conv)
            .expect("the conversation");
        assert_eq!(c.last_seq, stored, "seed {seed}: {}", p.name);
        let after = messages.range(c.last_read_seq + 1..).count() as u64;
        assert_eq!(
            c.unread, after,
            "seed {seed}: {} unread counts messages",
            p.name
        );
        assert!(
            c.last_read_seq >= p.read_to.min(stored),
            "seed {seed}: {} read to {} but the server says {}",
            p.name,
            p.read_to,
            c.last_read_seq
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn random_interleavings_of_send_reconnect_resume_and_mark_read_keep_the_invariants() {
    let cases: u64 = std::env::var("INTERLEAVE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let first: u64 = std::env::var("INTERLEAVE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    for seed in first..first + cases {
        run_case(seed).await;
    }
}
