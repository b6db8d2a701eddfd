//! Just enough HTTP/1.1 to create accounts: `POST` a JSON body, read the status and the
//! session cookie.

use anyhow::{anyhow, Context};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PASSWORD: &str = "correct horse battery";

/// Creates an account and returns its session token.
pub async fn sign_up(addr: SocketAddr, username: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({ "username": username, "password": PASSWORD }).to_string();
    let request = format!(
        "POST /api/auth/signup HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.context("connect")?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.split(' ').nth(1).unwrap_or("?");
    anyhow::ensure!(
        status == "201",
        "sign-up of {username} answered {status}: {response}"
    );
    const COOKIE: &str = "set-cookie: chat_session=";
    response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(COOKIE))
        .map(|l| l[COOKIE.len()..].split(';').next().unwrap_or("").to_owned())
        .ok_or_else(|| anyhow!("no session cookie in {response}"))
}

/// `GET path`; the body of a 200 answer, or `None`.
pub async fn body_of(addr: SocketAddr, path: &str) -> Option<String> {
    body_with(addr, path, "").await
}

/// `GET path` with `Authorization: Bearer <token>`; the body of a 200 answer, or `None`.
pub async fn body_with_token(addr: SocketAddr, path: &str, token: &str) -> Option<String> {
    body_with(addr, path, &format!("Authorization: Bearer {token}\r\n")).await
}

async fn body_with(addr: SocketAddr, path: &str, headers: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// `GET path`; the status code, or `None` when nothing answers.
pub async fn status_of(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).await.ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
