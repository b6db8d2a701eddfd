//! What `permessage-deflate` (RFC 7692) would do to the frames a room's members receive:
//! real `message` frames, as the server sent them to a member's socket (everyday Chinese,
//! English and mixed sentences, one in four a reply), compressed after the run in the two
//! ways the extension allows:
//!
//! - **once per post**, without context takeover (`server_no_context_takeover`): each
//!   message compressed on its own, so that the same compressed bytes could go to every
//!   member, as the frame itself does now;
//! - **per socket**, with context takeover: each socket's compressor remembers the
//!   messages before, so a message is compressed again for every member who receives it.
//!
//! Reported: bytes per frame on the wire (payload and WebSocket header) each way, the CPU
//! one compression takes on this machine, and the memory a socket's compressor keeps for
//! context takeover (resident memory of this process across [`STATES`] compressors that
//! have each compressed a message). Every compressed message is inflated again and compared
//! with the original, so the sizes are of streams a browser could read.

use anyhow::{ensure, Context};
use app::domain::{ClientMsgId, MessageBody, RoomName};
use app::protocol::{ClientMsg, ConversationId, ServerMsg};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::client::{Conn, Glance};
use crate::http::sign_up;
use crate::process::{free_port, rss_kib, ServerProcess, Stop};
use crate::storage::body;
use crate::world::ask_conversation;

/// The four bytes a sync flush ends with, which RFC 7692 leaves off the wire.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Least time each way's compressions are timed for (repeating the frames as needed).
const TIMED: Duration = Duration::from_millis(300);
/// Compressors held at once to weigh one socket's.
const STATES: usize = 1_000;

#[derive(Debug, Clone)]
pub struct Options {
    pub server_bin: PathBuf,
    /// Messages posted and captured (bounded by the caller).
    pub messages: usize,
    /// zlib's compression level, 1-9.
    pub level: u32,
    /// The LZ77 window, 9-15 bits (`server_max_window_bits`).
    pub window_bits: u8,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub frames: usize,
    pub level: u32,
    pub window_bits: u8,
    /// Mean bytes per frame on the wire (payload and WebSocket header), uncompressed.
    pub plain_bytes: f64,
    /// The same, compressed once per post (no context takeover).
    pub once_bytes: f64,
    /// The same, compressed per socket (context takeover).
    pub per_socket_bytes: f64,
    /// CPU for one compression once per post (a compressor reset between messages), µs.
    pub once_us: f64,
    /// CPU for one compression per socket and message, µs.
    pub per_socket_us: f64,
    /// Memory one socket's compressor holds for context takeover, bytes.
    pub per_socket_state_bytes: f64,
}

/// Runs the server, captures `messages` frames at a member's socket, stops it, then
/// compresses them.
pub async fn run(opts: Options) -> anyhow::Result<Report> {
    ensure!(opts.messages > 0, "at least one message");
    ensure!((1..=9).contains(&opts.level), "a level from 1 to 9");
    ensure!(
        (9..=15).contains(&opts.window_bits),
        "a window of 9 to 15 bits"
    );
    let dir = tempfile::tempdir()?;
    let mut server = ServerProcess::new(&opts.server_bin, free_port()?, &dir.path().join("data"))?;
    server.start().await?;
    let frames = capture(server.addr, opts.messages).await;
    server.stop(Stop::Term).await?;
    measure(&frames?, opts.level, opts.window_bits)
}

/// One person posts `messages` to a room; the frames another member's socket receives.
async fn capture(addr: std::net::SocketAddr, messages: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let (poster, reader) = (
        sign_up(addr, "deflate0").await?,
        sign_up(addr, "deflate1").await?,
    );
    let room = ask_conversation(
        addr,
        &poster,
        ClientMsg::CreateRoom {
            name: RoomName::parse("deflate")?,
            private: false,
        },
    )
    .await?;
    ask_conversation(
        addr,
        &reader,
        ClientMsg::JoinRoom {
            conversation_id: room.clone(),
        },
    )
    .await?;
    let mut member = Conn::open_live(addr, &reader).await?;
    let mut sender = Conn::open_live(addr, &poster).await?;
    let mut frames = Vec::with_capacity(messages);
    let mut last_seq = None;
    for n in 0..messages {
        // One in four answers the message before, as a reply's frame quotes it.
        let reply_to = last_seq.filter(|_| n % 4 == 3);
        let seq = send(&mut sender, &room, n, reply_to).await?;
        last_seq = Some(seq);
        let text = loop {
            let text = member.next_text(Duration::from_secs(10)).await?;
            if Glance::of(&text)?.kind == "message" {
                break text;
            }
        };
        frames.push(text.as_bytes().to_vec());
    }
    sender.close().await;
    member.close().await;
    Ok(frames)
}

/// Sends the `n`th message and waits for its ack; its `seq`.
async fn send(
    conn: &mut Conn,
    room: &ConversationId,
    n: usize,
    reply_to: Option<u64>,
) -> anyhow::Result<u64> {
    let id = ClientMsgId::parse(&format!("d{n}"))?;
    conn.ask(
        ClientMsg::Send {
            conversation_id: room.clone(),
            client_msg_id: id.clone(),
            body: Some(MessageBody::parse(&body(n as u64))?),
            reply_to,
            attachments: Vec::new(),
        },
        |m| match m {
            ServerMsg::Ack {
                client_msg_id,
                message,
            } if client_msg_id == id.as_str() => Some(message.seq),
            _ => None,
        },
    )
    .await
    .context("a post's ack")
}

/// Sizes and CPU of both ways over `frames`, each compressed stream checked by inflating it.
pub fn measure(frames: &[Vec<u8>], level: u32, window_bits: u8) -> anyhow::Result<Report> {
    ensure!(!frames.is_empty(), "no frames to compress");
    let compressor = || Compress::new_with_window_bits(Compression::new(level), false, window_bits);
    let decompressor = || Decompress::new_with_window_bits(false, window_bits);
    let wire = |payload: usize| (payload + header_bytes(payload)) as f64;
    let mean = |total: f64| total / frames.len() as f64;

    let mut once = compressor();
    let mut total_once = 0.0;
    for f in frames {
        let out = compress(&mut once, f)?;
        once.reset();
        ensure!(
            inflate(&mut decompressor(), &out)? == *f,
            "a message did not survive compression once per post"
        );
        total_once += wire(out.len());
    }
    let mut per_socket = compressor();
    let mut reader = decompressor();
    let mut total_socket = 0.0;
    for f in frames {
        let out = compress(&mut per_socket, f)?;
        ensure!(
            inflate(&mut reader, &out)? == *f,
            "a message did not survive compression per socket"
        );
        total_socket += wire(out.len());
    }
    let plain: f64 = frames.iter().map(|f| wire(f.len())).sum();

    let once_us = timed(|| {
        for f in frames {
            compress(&mut once, f)?;
            once.reset();
        }
        Ok(frames.len())
    })?;
    let mut timed_socket = compressor();
    let per_socket_us = timed(|| {
        for f in frames {
            compress(&mut timed_socket, f)?;
        }
        Ok(frames.len())
    })?;
    let per_socket_state_bytes = state_bytes(&compressor, &frames[0])?;
    Ok(Report {
        frames: frames.len(),
        level,
        window_bits,
        plain_bytes: mean(plain),
        once_bytes: mean(total_once),
        per_socket_bytes: mean(total_socket),
        once_us,
        per_socket_us,
        per_socket_state_bytes,
    })
}

/// What one socket's compressor holds, in resident memory: [`STATES`] of them made and
/// each used once (so that its tables are touched), divided.
fn state_bytes(make: &dyn Fn() -> Compress, frame: &[u8]) -> anyhow::Result<f64> {
    let me = std::process::id();
    let before = rss_kib(me).context("this process's memory")?;
    let mut held = Vec::with_capacity(STATES);
    for _ in 0..STATES {
        let mut c = make();
        compress(&mut c, frame)?;
        held.push(c);
    }
    let after = rss_kib(me).context("this process's memory")?;
    drop(held);
    Ok(after.saturating_sub(before) as f64 * 1024.0 / STATES as f64)
}

/// A WebSocket header from server to client (unmasked): 2 bytes up to 125 bytes of payload,
/// 4 up to 65,535, 10 beyond.
fn header_bytes(payload: usize) -> usize {
    match payload {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    }
}

/// One message as permessage-deflate sends it: a sync flush, its empty block's tail left
/// off.
fn compress(c: &mut Compress, message: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let start = c.total_in();
    loop {
        let read = (c.total_in() - start) as usize;
        c.compress_vec(&message[read..], &mut out, FlushCompress::Sync)?;
        let done = (c.total_in() - start) as usize == message.len();
        if done && out.ends_with(&SYNC_TAIL) {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    out.truncate(out.len() - SYNC_TAIL.len());
    Ok(out)
}

/// What a receiver reads from one compressed message (the tail put back).
fn inflate(d: &mut Decompress, compressed: &[u8]) -> anyhow::Result<Vec<u8>> {
    let input: Vec<u8> = compressed.iter().chain(&SYNC_TAIL).copied().collect();
    let mut out = Vec::with_capacity(compressed.len() * 8 + 64);
    let start = d.total_in();
    loop {
        let read = (d.total_in() - start) as usize;
        let before = out.len();
        d.decompress_vec(&input[read..], &mut out, FlushDecompress::Sync)?;
        if (d.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
            break;
        }
        ensure!(
            out.len() > before || out.len() == out.capacity(),
            "the stream stopped"
        );
        out.reserve(out.capacity().max(64));
    }
    Ok(out)
}

/// Microseconds per compression: `round` (which returns how many it made) repeated for at
/// least [`TIMED`].
fn timed(mut round: impl FnMut() -> anyhow::Result<usize>) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut made = 0;
    while start.elapsed() < TIMED {
        made += round()?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / made as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<Vec<u8>> {
        (0..50)
            .map(|n| {
                format!(
                    r#"{{"type":"message","message":{{"conversation_id":"room:x","seq":{n},"sender":"ada","body":"{}","client_msg_id":"d{n}","sent_at_ms":1795000000{n:03}}}}}"#,
                    body(n)
                )
                .into_bytes()
            })
            .collect()
    }

    #[test]
    fn both_ways_give_back_every_message_and_context_compresses_better() {
        let r = measure(&frames(), 6, 15).unwrap();
        assert_eq!(r.frames, 50);
        assert!(r.once_bytes < r.plain_bytes, "{r:?}");
        assert!(r.per_socket_bytes < r.once_bytes, "{r:?}");
        assert!(r.once_us > 0.0 && r.per_socket_us > 0.0);
        // zlib's window alone is 2^15 bytes, twice over.
        assert!(r.per_socket_state_bytes > 32_768.0, "{r:?}");
    }

    #[test]
    fn a_frame_header_grows_with_its_payload() {
        assert_eq!(header_bytes(125), 2);
        assert_eq!(header_bytes(126), 4);
        assert_eq!(header_bytes(70_000), 10);
    }

    #[test]
    fn a_compressed_message_leaves_the_sync_tail_off() {
        let mut c = Compress::new(Compression::new(6), false);
        let out = compress(&mut c, b"hello hello hello").unwrap();
        assert!(!out.ends_with(&SYNC_TAIL));
        assert_eq!(
            inflate(&mut Decompress::new(false), &out).unwrap(),
            b"hello hello hello"
        );
    }
}
