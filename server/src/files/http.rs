//! The file endpoints:
//! - `POST /api/files?conversation_id=…&name=…`, the file as the body: uploads it for a
//!   message in that conversation (the uploader must be a member). 201 with the
//!   [`Attachment`] a `send` then names by id.
//! - `GET /api/files/{id}` and `GET /api/files/{id}/thumbnail`: for members of the file's
//!   conversation once a message carries it (before that, for its uploader only). Anyone
//!   else gets the same 404 as for a file that does not exist.
//!
//! What is served can never run as a page of this site: only the image types of
//! `INLINE_IMAGE_TYPES`, whose bytes the server decoded itself, are served as what they
//! are (`inline`); everything else is `application/octet-stream` with
//! `Content-Disposition: attachment`. Every file response also says `nosniff`, carries a
//! CSP that allows nothing (`sandbox`), and may not be embedded by other sites
//! (`Cross-Origin-Resource-Policy`). Range requests and `If-Modified-Since` are answered by
//! tower-http's `ServeFile`; the ETag is the content's hash.

use axum::{
    body::Body,
    extract::{Path, Query, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use tracing::warn;

use super::{picture, FileError, FileStore, NewUpload};
use crate::{auth::Session, store::StoreError};
use app::{
    domain::{FileId, FileName},
    protocol::Attachment,
};

/// What may happen to a file response in a browser: nothing active, not in a frame.
const FILE_CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

impl IntoResponse for FileError {
    fn into_response(self) -> Response {
        let (code, status) = match &self {
            FileError::NotFound => ("not_found", StatusCode::NOT_FOUND),
            FileError::TooLarge { .. } => ("file_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            FileError::QuotaExceeded { .. } => ("quota_exceeded", StatusCode::PAYLOAD_TOO_LARGE),
            FileError::Picture(_) => ("image_too_large", StatusCode::UNPROCESSABLE_ENTITY),
            FileError::NotAnImage => ("not_an_image", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            FileError::RateLimited => ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
            FileError::Invalid(_) => ("invalid_input", StatusCode::BAD_REQUEST),
            FileError::Io(e) => {
                warn!(error = %e, "file request failed");
                ("internal", StatusCode::INTERNAL_SERVER_ERROR)
            }
            FileError::Store(e) => {
                warn!(error = %e, "file request failed");
                ("internal", StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        let body = serde_json::json!({ "error": { "code": code, "message": self.to_string() } });
        (status, Json(body)).into_response()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    conversation_id: String,
    name: String,
}

/// `POST /api/files`: see the module's header.
pub async fn upload(
    State(files): State<FileStore>,
    session: Session,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> Result<Response, FileError> {
    let name = FileName::parse(&query.name)?;
    let me = session.username.as_str();
    match files
        .store()
        .require_member(&query.conversation_id, me)
        .await
    {
        Ok(_) => {}
        Err(StoreError::NoSuchConversation | StoreError::NotMember) => {
            return Err(FileError::NotFound)
        }
        Err(e) => return Err(e.into()),
    }
    // Refused before a byte is read when the sender says how big it is.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared {
        if n > files.max_bytes() {
            return Err(FileError::TooLarge {
                max: files.max_bytes(),
            });
        }
        files.check_quota(me, n).await?;
    }
    let received = files
        .receive(request.into_body().into_data_stream())
        .await?;
    let guessed = guessed_type(name.as_str());
    let new = NewUpload {
        owner: me,
        conversation: &query.conversation_id,
        name: name.as_str(),
        guessed_type: &guessed,
        now_ms: crate::now_ms(),
    };
    let upload = files.keep(received, new).await?;
    Ok((StatusCode::CREATED, Json(upload.attachment())).into_response())
}

/// The type a file's name suggests, for showing only: a file the server did not decode
/// as an image never claims to be one (it is served as a download whatever this says).
fn guessed_type(name: &str) -> String {
    let guess = mime_guess::from_path(name).first_or_octet_stream();
    if guess.type_() == mime::IMAGE {
        "application/octet-stream".to_owned()
    } else {
        guess.essence_str().to_owned()
    }
}

/// `GET /api/files/{id}`.
pub async fn download(
    State(files): State<FileStore>,
    session: Session,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, FileError> {
    serve(&files, &session, &id, false, request).await
}

/// `GET /api/files/{id}/thumbnail`.
pub async fn thumbnail(
    State(files): State<FileStore>,
    session: Session,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, FileError> {
    serve(&files, &session, &id, true, request).await
}

async fn serve(
    files: &FileStore,
    session: &Session,
    id: &str,
    thumbnail: bool,
    request: Request,
) -> Result<Response, FileError> {
    let id = FileId::parse(id).map_err(|_| FileError::NotFound)?;
    let me = session.username.as_str();
    let upload = files
        .store()
        .upload(id.as_str())
        .await?
        .ok_or(FileError::NotFound)?;
    if upload.sent.is_none() && upload.owner != me {
        return Err(FileError::NotFound);
    }
    match files.store().require_member(&upload.conversation, me).await {
        Ok(_) => {}
        Err(StoreError::NoSuchConversation | StoreError::NotMember) => {
            return Err(FileError::NotFound)
        }
        Err(e) => return Err(e.into()),
    }
    let attachment = upload.attachment();
    let image = attachment.is_image();
    let hash = if thumbnail {
        upload.thumbnail.as_deref().ok_or(FileError::NotFound)?
    } else {
        upload.hash.as_str()
    };
    let path = files.existing_blob(hash).ok_or(FileError::NotFound)?;
    let etag = format!("\"{hash}\"");
    // An image the server decoded is served as the type it found (one of
    // INLINE_IMAGE_TYPES, which `is_image` requires); anything else only as bytes.
    let mime = if thumbnail {
        let head = read_head(&path).await?;
        picture::sniff(&head).map_or("application/octet-stream", picture::content_type)
    } else if image {
        attachment.content_type.as_str()
    } else {
        "application/octet-stream"
    };
    let inline = thumbnail || image;
    let mut response = if fresh(request.headers(), &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mime: mime::Mime = mime.parse().unwrap_or(mime::APPLICATION_OCTET_STREAM);
        let Ok(served) = ServeFile::new_with_mime(&path, &mime)
            .oneshot(request)
            .await;
        if served.status() == StatusCode::NOT_FOUND {
            // The record names a blob that is gone: a crash before the sweep's time, or
            // a disk someone cleaned by hand.
            warn!(file = id.as_str(), "a recorded file's blob is missing");
            return Err(FileError::NotFound);
        }
        served.map(Body::new)
    };
    protect(&mut response, &etag, "private, max-age=86400")?;
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition(inline, &attachment))
            .map_err(|_| FileError::NotFound)?,
    );
    Ok(response)
}

/// Whether the request's `If-None-Match` names `etag` (the client has these bytes).
pub(crate) fn fresh(request: &axum::http::HeaderMap, etag: &str) -> bool {
    request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// What every answer carrying uploaded (or uploaded and remade) bytes says: its `etag`, how
/// long it may be cached, that nothing in it may run (`FILE_CSP`) and that no other site
/// may embed it.
pub(crate) fn protect(
    response: &mut Response,
    etag: &str,
    cache: &'static str,
) -> Result<(), FileError> {
    let headers = response.headers_mut();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(etag).map_err(|_| FileError::NotFound)?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FILE_CSP),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    Ok(())
}

async fn read_head(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut head = vec![0u8; 64];
    let mut file = tokio::fs::File::open(path).await?;
    let n = file.read(&mut head).await?;
    head.truncate(n);
    Ok(head)
}

/// `Content-Disposition` with the file's name (RFC 6266): an ASCII stand-in for old
/// clients and the exact name, percent-encoded, in `filename*`.
fn disposition(inline: bool, attachment: &Attachment) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let plain: String = attachment
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact =
        percent_encoding::utf8_percent_encode(&attachment.name, percent_encoding::NON_ALPHANUMERIC);
    format!("{kind}; filename=\"{plain}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_offered_for_saving_exactly_and_can_break_no_header() {
        let a = Attachment {
            id: "0".repeat(32),
            name: "报告 \"final\"\r\n.pdf".into(),
            size: 1,
            content_type: "application/pdf".into(),
            width: None,
            height: None,
        };
        let d = disposition(false, &a);
        assert!(d.starts_with("attachment; filename=\"__ _final_"), "{d}");
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(d.ends_with("filename*=UTF-8''%E6%8A%A5%E5%91%8A%20%22final%22%0D%0A%2Epdf"));
    }

    #[test]
    fn a_name_never_makes_a_file_pass_for_an_image() {
        assert_eq!(guessed_type("cat.jpg"), "application/octet-stream");
        assert_eq!(guessed_type("x.svg"), "application/octet-stream");
        assert_eq!(guessed_type("Report.PDF"), "application/pdf");
        assert_eq!(guessed_type("noext"), "application/octet-stream");
    }
}
