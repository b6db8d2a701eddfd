//! The browser's calls to `/api/auth/*`: who am I, sign up, sign in, sign out.

use gloo_net::http::Request;
use serde::{Deserialize, Serialize};

use crate::chat::state::sentence;
use crate::protocol::UserInfo;

#[derive(Serialize)]
struct Credentials<'a> {
    username: &'a str,
    password: &'a str,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

/// The signed-in user, `Ok(None)` when not signed in, `Err` when the server is unreachable.
pub async fn me() -> Result<Option<UserInfo>, String> {
    let res = Request::get("/api/auth/me")
        .send()
        .await
        .map_err(|_| "The server is unreachable.".to_owned())?;
    match res.status() {
        200 => res.json().await.map(Some).map_err(|e| e.to_string()),
        401 => Ok(None),
        s => Err(format!("The server answered {s}.")),
    }
}

/// Signs in (`create = false`) or creates an account and signs in; the message on failure
/// is written for people ("This username is taken").
pub async fn submit(create: bool, username: &str, password: &str) -> Result<UserInfo, String> {
    let path = if create {
        "/api/auth/signup"
    } else {
        "/api/auth/signin"
    };
    let res = Request::post(path)
        .json(&Credentials { username, password })
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|_| {
            "The server is unreachable. Check your connection and try again.".to_owned()
        })?;
    if res.ok() {
        return res.json().await.map_err(|e| e.to_string());
    }
    match res.json::<ErrorBody>().await {
        Ok(body) => Err(sentence(&body.error.message)),
        Err(_) => Err(format!("The server answered {}.", res.status())),
    }
}

pub async fn sign_out() {
    // Whatever the answer, the page forgets the user; the cookie is HttpOnly, so only the
    // server can clear it, which it does on success.
    let _ = Request::post("/api/auth/signout").send().await;
}
