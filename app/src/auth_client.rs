//! The browser's calls to `/api/auth/*` and `/api/account/*`: who am I, sign up, sign in,
//! sign out; one's signed-in devices and password. Failures come back as an [`AuthProblem`]
//! (the server's error *code*), which the page words in the reader's language.

use gloo_net::http::{Request, Response};
use serde::{Deserialize, Serialize};

use crate::protocol::{AuthProblem, UserInfo};

#[derive(Serialize)]
struct Credentials<'a> {
    username: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invite: Option<&'a str>,
}

/// What `/api/auth/*` says of the signed-in user (more than [`UserInfo`]: what is not
/// needed here is ignored).
#[derive(Deserialize)]
struct MeBody {
    username: String,
    display_name: String,
}

impl From<MeBody> for UserInfo {
    fn from(me: MeBody) -> Self {
        UserInfo::named(me.username, me.display_name)
    }
}

/// What a new account is made with besides its username and password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewAccount {
    /// The name others see (empty: the username).
    pub display_name: String,
    /// The invitation's token, from the link that opened the page.
    pub invite: Option<String>,
}

/// One signed-in device of the user (`GET /api/account/sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Device {
    pub id: String,
    /// The device this page runs on.
    pub current: bool,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// When it was last used (to within five minutes).
    pub seen_at: i64,
    pub agent: Option<String>,
    pub address: Option<String>,
}

#[derive(Deserialize)]
struct Ended {
    ended: usize,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
}

/// The signed-in user, `Ok(None)` when not signed in.
pub async fn me() -> Result<Option<UserInfo>, AuthProblem> {
    let res = Request::get("/api/auth/me")
        .send()
        .await
        .map_err(|_| AuthProblem::Unreachable)?;
    match res.status() {
        200 => res
            .json::<MeBody>()
            .await
            .map(|me| Some(me.into()))
            .map_err(|_| AuthProblem::Status(200)),
        401 => Ok(None),
        s => Err(AuthProblem::Status(s)),
    }
}

/// Signs in (`new_account` is `None`) or creates an account and signs in.
pub async fn submit(
    new_account: Option<&NewAccount>,
    username: &str,
    password: &str,
) -> Result<UserInfo, AuthProblem> {
    let (path, credentials) = match new_account {
        Some(new) => (
            "/api/auth/signup",
            Credentials {
                username,
                password,
                display_name: Some(new.display_name.trim()).filter(|d| !d.is_empty()),
                invite: new.invite.as_deref(),
            },
        ),
        None => (
            "/api/auth/signin",
            Credentials {
                username,
                password,
                display_name: None,
                invite: None,
            },
        ),
    };
    let res = Request::post(path)
        .json(&credentials)
        .map_err(|_| AuthProblem::Unreachable)?
        .send()
        .await
        .map_err(|_| AuthProblem::Unreachable)?;
    if res.ok() {
        return res
            .json::<MeBody>()
            .await
            .map(UserInfo::from)
            .map_err(|_| AuthProblem::Status(res.status()));
    }
    Err(refusal(res).await)
}

/// The user's signed-in devices, newest first.
pub async fn devices() -> Result<Vec<Device>, AuthProblem> {
    let res = Request::get("/api/account/sessions")
        .send()
        .await
        .map_err(|_| AuthProblem::Unreachable)?;
    if res.ok() {
        return res
            .json()
            .await
            .map_err(|_| AuthProblem::Status(res.status()));
    }
    Err(refusal(res).await)
}

/// Signs device `id` out.
pub async fn end_device(id: &str) -> Result<(), AuthProblem> {
    let res = Request::delete(&format!("/api/account/sessions/{id}"))
        .send()
        .await
        .map_err(|_| AuthProblem::Unreachable)?;
    if res.ok() {
        return Ok(());
    }
    Err(refusal(res).await)
}

/// Signs every other device out; how many there were.
pub async fn end_other_devices() -> Result<usize, AuthProblem> {
    ended(
        Request::post("/api/account/sessions/end-others")
            .send()
            .await,
    )
    .await
}

/// Changes the password (every other device is signed out); how many were.
pub async fn change_password(current: &str, new: &str) -> Result<usize, AuthProblem> {
    #[derive(Serialize)]
    struct Change<'a> {
        current: &'a str,
        new: &'a str,
    }
    let request = Request::post("/api/account/password")
        .json(&Change { current, new })
        .map_err(|_| AuthProblem::Unreachable)?;
    ended(request.send().await).await
}

async fn ended(res: Result<Response, gloo_net::Error>) -> Result<usize, AuthProblem> {
    let res = res.map_err(|_| AuthProblem::Unreachable)?;
    if res.ok() {
        return res
            .json::<Ended>()
            .await
            .map(|e| e.ended)
            .map_err(|_| AuthProblem::Status(res.status()));
    }
    Err(refusal(res).await)
}

async fn refusal(res: Response) -> AuthProblem {
    let status = res.status();
    let retry_after_s = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.trim().parse().ok());
    match res.json::<ErrorBody>().await {
        Ok(body) => AuthProblem::Refused {
            code: body.error.code,
            retry_after_s,
        },
        Err(_) => AuthProblem::Status(status),
    }
}

/// Makes `picture` (an image file the user chose) their picture; the server crops it.
pub async fn set_avatar(picture: &web_sys::File) -> Result<(), AuthProblem> {
    let request = Request::post(crate::protocol::AVATAR_PATH)
        .header("Content-Type", "application/octet-stream")
        .body(picture)
        .map_err(|_| AuthProblem::Unreachable)?;
    let res = request.send().await.map_err(|_| AuthProblem::Unreachable)?;
    if res.ok() {
        return Ok(());
    }
    // The server's body limit answers before the handler, without the API's body.
    if res.status() == 413 {
        return Err(AuthProblem::Refused {
            code: "file_too_large".into(),
            retry_after_s: None,
        });
    }
    Err(refusal(res).await)
}

/// Goes back to initials.
pub async fn remove_avatar() -> Result<(), AuthProblem> {
    let res = Request::delete(crate::protocol::AVATAR_PATH)
        .send()
        .await
        .map_err(|_| AuthProblem::Unreachable)?;
    if res.ok() {
        Ok(())
    } else {
        Err(refusal(res).await)
    }
}

pub async fn sign_out() {
    // Whatever the answer, the page forgets the user; the cookie is HttpOnly, so only the
    // server can clear it, which it does on success.
    let _ = Request::post("/api/auth/signout").send().await;
}
