//! One person's data, for them to take away: `profile.json` (with their status), their
//! picture (`picture.jpg` or `.png`, when they have one), `messages.json` (every message
//! they sent and did not delete, with the conversation it is in) and `files/` (every file
//! they uploaded, under `<file id>-<name>`, with `files.json` describing them).

use serde::Serialize;
use std::path::Path;

use super::{Admin, AdminError};

#[derive(Serialize)]
struct Profile<'a> {
    username: &'a str,
    display_name: &'a str,
    status: Option<&'a str>,
    /// The file of their picture, beside this one.
    picture: Option<&'static str>,
    server_admin: bool,
    exported_at: i64,
}

#[derive(Serialize)]
struct ExportedMessage<'a> {
    conversation: &'a str,
    seq: u64,
    sent_at: i64,
    body: &'a str,
    reply_to: Option<u64>,
    edited_at: Option<i64>,
    /// File ids, as in `files.json`.
    attachments: Vec<&'a str>,
}

#[derive(Serialize)]
struct ExportedFile<'a> {
    id: &'a str,
    name: &'a str,
    /// Its name under `files/`.
    path: String,
    size: u64,
    content_type: &'a str,
    conversation: &'a str,
    uploaded_at: i64,
    sent: bool,
}

/// Writes `username`'s data into `to`, which must not exist yet (written under a temporary
/// name and renamed when whole, as a backup is). The summary says what it holds.
pub async fn export_user(admin: &Admin, username: &str, to: &Path) -> Result<String, AdminError> {
    let user = admin
        .store
        .user(username)
        .await?
        .ok_or_else(|| AdminError::NoSuchUser(username.to_owned()))?;
    let partial = super::backup::fresh_partial(to)?;
    let files_dir = partial.join("files");
    std::fs::create_dir_all(&files_dir).map_err(AdminError::io("cannot create", &files_dir))?;
    let write = |name: &str, json: Vec<u8>| -> Result<(), AdminError> {
        let path = partial.join(name);
        std::fs::write(&path, json).map_err(AdminError::io("cannot write", &path))
    };

    let picture = match admin.store.avatar(username).await? {
        Some((_, image, content_type)) => {
            let name = if content_type == "image/png" {
                "picture.png"
            } else {
                "picture.jpg"
            };
            write(name, image)?;
            Some(name)
        }
        None => None,
    };
    write(
        "profile.json",
        json(&Profile {
            username: user.username.as_str(),
            display_name: &user.display_name,
            status: user.status.as_deref(),
            picture,
            server_admin: user.admin,
            exported_at: crate::now_ms(),
        }),
    )?;

    let messages = admin.store.messages_by(username).await?;
    let exported: Vec<ExportedMessage> = messages
        .iter()
        .map(|m| ExportedMessage {
            conversation: &m.conversation,
            seq: m.seq,
            sent_at: m.sent_at,
            body: &m.body,
            reply_to: m.reply_to,
            edited_at: m.edited_at,
            attachments: m.attachments.iter().map(|a| a.id.as_str()).collect(),
        })
        .collect();
    write("messages.json", json(&exported))?;

    let uploads = admin.store.uploads_of(username).await?;
    let mut files = Vec::with_capacity(uploads.len());
    for u in &uploads {
        let Some(blob) = admin.files.existing_blob(&u.hash) else {
            continue;
        };
        let path = format!("{}-{}", u.id, safe_name(&u.name));
        let dest = files_dir.join(&path);
        crate::files::link_or_copy(&blob, &dest).map_err(AdminError::io("cannot copy", &blob))?;
        files.push(ExportedFile {
            id: &u.id,
            name: &u.name,
            path,
            size: u.size,
            content_type: &u.content_type,
            conversation: &u.conversation,
            uploaded_at: u.created_at,
            sent: u.sent.is_some(),
        });
    }
    write("files.json", json(&files))?;
    std::fs::rename(&partial, to).map_err(AdminError::io("cannot rename the export to", to))?;
    Ok(format!(
        "exported {username}: {} message(s), {} file(s)",
        exported.len(),
        files.len()
    ))
}

/// A file name safe to create in a directory: no separators, no leading dots, not empty.
fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches('.');
    if trimmed.is_empty() {
        "file".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Pretty JSON of plain structs (which cannot fail to serialise).
fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn exported_file_names_stay_inside_their_directory() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name(".hidden"), "hidden");
        assert_eq!(safe_name(""), "file");
        assert_eq!(safe_name("报告.pdf"), "报告.pdf");
    }
}
