//! Profile pictures over HTTP:
//! - `POST /api/account/avatar`, the image as the body (PNG, JPEG, GIF or WebP, at most
//!   [`AVATAR_MAX_BYTES`]): its middle square becomes the user's picture (see
//!   [`crate::files::picture::avatar`]). 200 with `{ "avatar": <version> }`; 415
//!   `not_an_image`, 413 when too large. Everyone who shares a conversation with the user,
//!   and the user's sockets, get `user_updated`.
//! - `DELETE /api/account/avatar`: back to initials. 204.
//! - `GET /api/users/{username}/avatar`: the picture, for anyone signed in (a picture is
//!   no more private than the name beside it); 404 when there is none. Addressed by its
//!   version (`?v=`), so that it may be cached for good.

use axum::{
    extract::{Path, Request, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use sha2::{Digest, Sha256};

use crate::{
    auth::Session,
    chat::ChatService,
    files::{
        http::{fresh, protect},
        FileError, FileStore,
    },
};

/// The largest picture upload, in bytes.
pub const AVATAR_MAX_BYTES: usize = 10 * 1024 * 1024;

/// `POST /api/account/avatar`. A change of picture shares the budget of `send` (checked
/// before a byte of the body is read), so that nobody can keep the decoders busy.
pub async fn upload(
    State(files): State<FileStore>,
    State(chat): State<ChatService>,
    session: Session,
    request: Request,
) -> Result<Json<serde_json::Value>, FileError> {
    let too_large = FileError::TooLarge {
        max: AVATAR_MAX_BYTES as u64,
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > AVATAR_MAX_BYTES) {
        return Err(too_large);
    }
    chat.profile_budget(session.username.as_str())
        .map_err(|_| FileError::RateLimited)?;
    let body = axum::body::to_bytes(request.into_body(), AVATAR_MAX_BYTES)
        .await
        .map_err(|_| too_large)?;
    let (image, content_type) = files.avatar(body.to_vec()).await?;
    let digest = Sha256::digest(&image);
    let version: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let me = session.username.as_str();
    chat.set_avatar(me, Some((&version, image, content_type)))
        .await?;
    Ok(Json(serde_json::json!({ "avatar": version })))
}

/// `DELETE /api/account/avatar`.
pub async fn remove(
    State(chat): State<ChatService>,
    session: Session,
) -> Result<StatusCode, FileError> {
    chat.set_avatar(session.username.as_str(), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/users/{username}/avatar`.
pub async fn get(
    State(chat): State<ChatService>,
    _session: Session,
    Path(username): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FileError> {
    let (version, image, content_type) =
        chat.avatar(&username).await?.ok_or(FileError::NotFound)?;
    let etag = format!("\"{version}\"");
    let mut response = if fresh(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], image).into_response()
    };
    // Each version has its own address (`?v=`): a new picture is never hidden by a cache.
    protect(&mut response, &etag, "private, max-age=31536000, immutable")?;
    Ok(response)
}
