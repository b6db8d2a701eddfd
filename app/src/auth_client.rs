//! The browser's calls to `/api/auth/*`: who am I, sign up, sign in, sign out. Failures come
//! back as an [`AuthProblem`] (the server's error *code*), which the page words in the
//! reader's language.

use gloo_net::http::{Request, Response};
use serde::{Deserialize, Serialize};

use crate::protocol::{AuthProblem, UserInfo};

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
            .json()
            .await
            .map(Some)
            .map_err(|_| AuthProblem::Status(200)),
        401 => Ok(None),
        s => Err(AuthProblem::Status(s)),
    }
}

/// Signs in (`create = false`) or creates an account and signs in.
pub async fn submit(create: bool, username: &str, password: &str) -> Result<UserInfo, AuthProblem> {
    let path = if create {
        "/api/auth/signup"
    } else {
        "/api/auth/signin"
    };
    let res = Request::post(path)
        .json(&Credentials { username, password })
        .map_err(|_| AuthProblem::Unreachable)?
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

pub async fn sign_out() {
    // Whatever the answer, the page forgets the user; the cookie is HttpOnly, so only the
    // server can clear it, which it does on success.
    let _ = Request::post("/api/auth/signout").send().await;
}
