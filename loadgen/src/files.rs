//! Files: upload throughput, the time an image's inspection and thumbnail add to its
//! upload, and uploads running beside the message benchmark (`bench --upload-mb`).

use anyhow::Context;
use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::bench::Percentiles;
use crate::process::{free_port, ServerProcess, Stop};

/// Environment for a server that takes the large files these runs upload.
pub const LARGE_FILES: [(&str, &str); 2] = [
    ("CHAT_FILE_MAX_MB", "256"),
    ("CHAT_FILE_QUOTA_MB", "10000000"),
];

/// Uploads `bytes` as `name` for a message in `conversation`: the status, the answer's body
/// and how long the exchange took (the last byte sent to the answer read).
pub async fn upload(
    addr: SocketAddr,
    token: &str,
    conversation: &str,
    name: &str,
    bytes: &[u8],
) -> anyhow::Result<(u16, String, Duration)> {
    upload_paced(addr, token, conversation, name, bytes, None).await
}

/// [`upload`], sending at most `mb_per_s` MB a second when given (a client on a link of
/// that speed).
pub async fn upload_paced(
    addr: SocketAddr,
    token: &str,
    conversation: &str,
    name: &str,
    bytes: &[u8],
    mb_per_s: Option<f64>,
) -> anyhow::Result<(u16, String, Duration)> {
    crate::loopback_only(addr)?;
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.context("connect")?;
    let head = format!(
        "POST /api/files?conversation_id={}&name={} HTTP/1.1\r\nHost: {addr}\r\n\
         Cookie: chat_session={token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        encode(conversation),
        encode(name),
        bytes.len()
    );
    stream.write_all(head.as_bytes()).await?;
    let mut sent = 0usize;
    for chunk in bytes.chunks(256 * 1024) {
        stream.write_all(chunk).await?;
        sent += chunk.len();
        if let Some(rate) = mb_per_s {
            let due = started + Duration::from_secs_f64(sent as f64 / (rate * 1e6));
            tokio::time::sleep_until(due.into()).await;
        }
    }
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let took = started.elapsed();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body, took))
}

/// `GET path` with the session; the status and how long it took.
async fn get(addr: SocketAddr, token: &str, path: &str) -> anyhow::Result<(u16, Duration)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.context("connect")?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: chat_session={token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let status = std::str::from_utf8(&response[9..12.min(response.len())])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, started.elapsed()))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Bytes that do not compress and are no image: `n` of a simple generator's output.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A photo-sized JPEG of about `target` bytes: noise over a gradient, at quality 95.
fn jpeg_of_about(target: usize) -> anyhow::Result<(Vec<u8>, u32, u32)> {
    let (mut w, mut h) = (3000u32, 2000u32);
    loop {
        let grain = noise((w * h) as usize, 7);
        let pixels: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                let g = grain[i as usize] / 3;
                [
                    ((x * 160 / w) as u8).saturating_add(g),
                    ((y * 160 / h) as u8).saturating_add(g),
                    120u8.saturating_add(g / 2),
                ]
            })
            .collect();
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95).encode(
            &pixels,
            w,
            h,
            image::ExtendedColorType::Rgb8,
        )?;
        if out.len() <= target * 11 / 10 || w < 500 {
            return Ok((out, w, h));
        }
        let shrink = (target as f64 / out.len() as f64).sqrt();
        w = (f64::from(w) * shrink) as u32;
        h = (f64::from(h) * shrink) as u32;
    }
}

/// The first user of a fresh server and a conversation of theirs.
async fn uploader(addr: SocketAddr) -> anyhow::Result<(String, String)> {
    let world = crate::world::populate(addr, "files", 2, "files room").await?;
    let token = world.users[0].1.clone();
    let conversation = world.routes[0][0].0.clone();
    Ok((token, conversation))
}

pub struct Report {
    pub large_mb: usize,
    /// MB/s of each large upload.
    pub large_mb_s: Vec<f64>,
    pub jpeg_bytes: usize,
    pub jpeg_pixels: (u32, u32),
    /// Upload to answer of the JPEG, and of the same number of bytes that are no image.
    pub jpeg_us: Percentiles,
    pub plain_us: Percentiles,
    /// Reading the thumbnail back.
    pub thumbnail_get_us: Percentiles,
}

/// Uploads `large_mb` MB `rounds` times, then a ~5 MB JPEG and as many plain bytes
/// `samples` times each, alternating.
pub async fn run(
    bin: &Path,
    large_mb: usize,
    rounds: usize,
    samples: usize,
) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let addr = free_port()?;
    let mut server = ServerProcess::new(bin, addr, &dir.path().join("data"))?;
    for (k, v) in LARGE_FILES {
        server.set_env(k, v);
    }
    server.start().await?;
    let (token, conv) = uploader(addr).await?;

    let large = noise(large_mb * 1_000_000, 1);
    let mut large_mb_s = Vec::new();
    for round in 0..rounds {
        // A byte changed each round: a new blob each time, not the stored one found again.
        let mut bytes = large.clone();
        bytes[0] = round as u8;
        let (status, body, took) = upload(addr, &token, &conv, "large.bin", &bytes).await?;
        anyhow::ensure!(status == 201, "large upload answered {status}: {body}");
        large_mb_s.push(large_mb as f64 / took.as_secs_f64());
    }

    let (jpeg, w, h) = jpeg_of_about(5_000_000)?;
    let mut plain = noise(jpeg.len(), 3);
    plain[0] = b'x';
    let (mut jpeg_us, mut plain_us, mut thumb_us) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..samples {
        // A comment segment with a counter after the start marker: still the same valid
        // JPEG, a new blob each time.
        let mut photo = jpeg[..2].to_vec();
        photo.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x04, n as u8, (n >> 8) as u8]);
        photo.extend_from_slice(&jpeg[2..]);
        let (status, body, took) = upload(addr, &token, &conv, "photo.jpg", &photo).await?;
        anyhow::ensure!(status == 201, "JPEG upload answered {status}: {body}");
        anyhow::ensure!(
            body.contains("\"width\""),
            "the JPEG was not taken for an image: {body}"
        );
        jpeg_us.push(took.as_micros() as u64);
        let id = serde_json::from_str::<serde_json::Value>(&body)?["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (status, took) = get(addr, &token, &format!("/api/files/{id}/thumbnail")).await?;
        anyhow::ensure!(status == 200, "thumbnail answered {status}");
        thumb_us.push(took.as_micros() as u64);
        plain[1] = n as u8;
        let (status, body, took) = upload(addr, &token, &conv, "plain.bin", &plain).await?;
        anyhow::ensure!(status == 201, "plain upload answered {status}: {body}");
        plain_us.push(took.as_micros() as u64);
    }
    server.stop(Stop::Term).await?;
    Ok(Report {
        large_mb,
        large_mb_s,
        jpeg_bytes: jpeg.len(),
        jpeg_pixels: (w, h),
        jpeg_us: Percentiles::of(jpeg_us),
        plain_us: Percentiles::of(plain_us),
        thumbnail_get_us: Percentiles::of(thumb_us),
    })
}

/// Uploads `mb` MB again and again until `deadline` (each a new blob): the MB/s of each.
pub async fn upload_until(
    addr: SocketAddr,
    token: String,
    conversation: String,
    mb: u64,
    mb_per_s: Option<f64>,
    deadline: Instant,
) -> anyhow::Result<Vec<f64>> {
    let mut bytes = noise(mb as usize * 1_000_000, 5);
    let mut rates = Vec::new();
    let mut n = 0u8;
    while Instant::now() < deadline {
        n = n.wrapping_add(1);
        bytes[0] = n;
        let (status, body, took) =
            upload_paced(addr, &token, &conversation, "beside.bin", &bytes, mb_per_s).await?;
        anyhow::ensure!(
            status == 201,
            "upload beside the benchmark answered {status}: {body}"
        );
        rates.push(mb as f64 / took.as_secs_f64());
    }
    Ok(rates)
}
