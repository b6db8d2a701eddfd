//! Uploaded files: `upload:<file id>`, one per upload, with the blob it names (by hash)
//! in the file store (`crate::files`). An upload belongs to its uploader and to one
//! conversation; it is unsent until a message carries it (`seq`, set in the message's own
//! transaction by the writer), and it is deleted with that message. Blobs that no upload
//! names any more are removed by the file store's sweep.

use std::collections::HashSet;
use surrealdb::types::{RecordId, SurrealValue};

use super::{rows::to_u64, StoreError, SurrealChatStore};
use app::protocol::Attachment;

/// What is kept of one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// The file's id (`app::domain::FileId`).
    pub id: String,
    pub owner: String,
    pub conversation: String,
    pub name: String,
    pub size: u64,
    pub content_type: String,
    /// SHA-256 of the stored bytes, hex: the blob's name.
    pub hash: String,
    /// The thumbnail's blob, for an image.
    pub thumbnail: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub created_at: i64,
    /// The message that carries it, and that message's `client_msg_id` (a retried send
    /// of the same message is recognised by it).
    pub sent: Option<(u64, String)>,
}

impl UploadRecord {
    /// The file as a message carries it.
    pub fn attachment(&self) -> Attachment {
        Attachment {
            id: self.id.clone(),
            name: self.name.clone(),
            size: self.size,
            content_type: self.content_type.clone(),
            width: self.width,
            height: self.height,
        }
    }
}

#[derive(Debug, SurrealValue)]
struct UploadRow {
    id: RecordId,
    owner: String,
    conversation: String,
    name: String,
    size: i64,
    content_type: String,
    hash: String,
    thumbnail: Option<String>,
    width: Option<i64>,
    height: Option<i64>,
    created_at: i64,
    seq: Option<i64>,
    client_msg_id: Option<String>,
}

impl UploadRow {
    fn of(u: &UploadRecord) -> Self {
        UploadRow {
            id: upload_id(&u.id),
            owner: u.owner.clone(),
            conversation: u.conversation.clone(),
            name: u.name.clone(),
            size: u.size as i64,
            content_type: u.content_type.clone(),
            hash: u.hash.clone(),
            thumbnail: u.thumbnail.clone(),
            width: u.width.map(i64::from),
            height: u.height.map(i64::from),
            created_at: u.created_at,
            seq: u.sent.as_ref().map(|(seq, _)| *seq as i64),
            client_msg_id: u.sent.as_ref().map(|(_, id)| id.clone()),
        }
    }

    fn record(self) -> UploadRecord {
        let dim = |d: Option<i64>| d.and_then(|d| u32::try_from(d).ok());
        UploadRecord {
            id: super::rows::key_of(&self.id),
            owner: self.owner,
            conversation: self.conversation,
            name: self.name,
            size: to_u64(self.size),
            content_type: self.content_type,
            hash: self.hash,
            thumbnail: self.thumbnail,
            width: dim(self.width),
            height: dim(self.height),
            created_at: self.created_at,
            sent: self
                .seq
                .map(|s| (to_u64(s), self.client_msg_id.unwrap_or_default())),
        }
    }
}

#[derive(Debug, SurrealValue)]
struct BlobsRow {
    hash: String,
    thumbnail: Option<String>,
}

/// An upload that a message of a batch now carries (written in the batch's transaction).
#[derive(Debug, Clone, SurrealValue)]
pub struct SentUpload {
    pub id: RecordId,
    pub seq: i64,
    pub client_msg_id: String,
}

impl SentUpload {
    pub fn new(file_id: &str, seq: u64, client_msg_id: &str) -> Self {
        SentUpload {
            id: upload_id(file_id),
            seq: seq as i64,
            client_msg_id: client_msg_id.to_owned(),
        }
    }
}

pub fn upload_id(file_id: &str) -> RecordId {
    RecordId::new("upload", file_id)
}

impl SurrealChatStore {
    /// Records a new, unsent upload.
    pub async fn add_upload(&self, upload: &UploadRecord) -> Result<(), StoreError> {
        self.db
            .query("CREATE $id CONTENT $row RETURN NONE")
            .bind(("id", upload_id(&upload.id)))
            .bind(("row", UploadRow::of(upload)))
            .await?
            .check()?;
        Ok(())
    }

    pub async fn upload(&self, file_id: &str) -> Result<Option<UploadRecord>, StoreError> {
        Ok(self
            .uploads(&[file_id.to_owned()])
            .await?
            .into_iter()
            .next())
    }

    /// Those of these uploads that exist.
    pub async fn uploads(&self, file_ids: &[String]) -> Result<Vec<UploadRecord>, StoreError> {
        let ids: Vec<RecordId> = file_ids.iter().map(|id| upload_id(id)).collect();
        let rows: Vec<UploadRow> = self.rows_at(ids).await?;
        Ok(rows.into_iter().map(UploadRow::record).collect())
    }

    /// Bytes of everything `owner` has uploaded and not deleted (sent or not).
    pub async fn uploaded_bytes(&self, owner: &str) -> Result<u64, StoreError> {
        let mut res = self
            .db
            .query("math::sum(SELECT VALUE size FROM upload WHERE owner = $owner)")
            .bind(("owner", owner.to_owned()))
            .await?
            .check()?;
        let total: Option<i64> = res.take(0)?;
        Ok(total.map_or(0, to_u64))
    }

    /// Deletes the uploads never sent that were made before `before` (ms): files picked
    /// and then abandoned. Returns how many.
    pub async fn forget_unsent_uploads(&self, before: i64) -> Result<usize, StoreError> {
        let mut res = self
            .db
            .query("DELETE upload WHERE seq = NONE AND created_at < $before RETURN BEFORE")
            .bind(("before", before))
            .await?
            .check()?;
        let gone: Vec<UploadRow> = res.take(0)?;
        Ok(gone.len())
    }

    /// Every upload `owner` made, sent or not, oldest first.
    pub async fn uploads_of(&self, owner: &str) -> Result<Vec<UploadRecord>, StoreError> {
        let mut res = self
            .db
            .query("SELECT * FROM upload WHERE owner = $owner ORDER BY created_at")
            .bind(("owner", owner.to_owned()))
            .await?
            .check()?;
        let rows: Vec<UploadRow> = res.take(0)?;
        Ok(rows.into_iter().map(UploadRow::record).collect())
    }

    /// Every blob some upload names (its file and its thumbnail).
    pub async fn upload_blobs(&self) -> Result<HashSet<String>, StoreError> {
        let mut res = self
            .db
            .query("SELECT hash, thumbnail FROM upload")
            .await?
            .check()?;
        let rows: Vec<BlobsRow> = res.take(0)?;
        Ok(rows
            .into_iter()
            .flat_map(|r| std::iter::once(r.hash).chain(r.thumbnail))
            .collect())
    }
}
