//! The files picked for the next message: each uploading (with its progress), uploaded,
//! or failed with a reason. No I/O here: the composer starts and cancels the requests and
//! reports what they do; the message goes once every file is up.

use crate::protocol::{Attachment, MAX_ATTACHMENTS};

/// One file picked for the next message.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// Names it while it is picked (for progress, cancel and retry).
    pub key: u64,
    pub name: String,
    pub size: u64,
    /// Bytes the browser has sent so far.
    pub sent: u64,
    pub state: UploadState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UploadState {
    Uploading,
    Done(Attachment),
    Failed(UploadProblem),
}

/// Why an upload failed, as the server's error code said (or the network did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadProblem {
    /// Larger than the server takes.
    TooLarge,
    /// Over the user's storage quota.
    Quota,
    /// An image with too many pixels.
    ImageTooLarge,
    /// The network or the server went away: try again.
    Network,
    /// Any other refusal, by its error code.
    Refused(String),
}

impl UploadProblem {
    /// Whether trying again can help (not for a file too large, nor a full quota).
    pub fn retryable(&self) -> bool {
        matches!(self, UploadProblem::Network | UploadProblem::Refused(_))
    }

    /// From an answer to `POST /api/files` that was not 201: its status and `error.code`.
    pub fn from_answer(status: u16, code: Option<&str>) -> Self {
        match code {
            Some("file_too_large") => UploadProblem::TooLarge,
            Some("quota_exceeded") => UploadProblem::Quota,
            Some("image_too_large") => UploadProblem::ImageTooLarge,
            Some(other) => UploadProblem::Refused(other.to_owned()),
            None if status == 413 => UploadProblem::TooLarge,
            None if status == 0 || status >= 500 => UploadProblem::Network,
            None => UploadProblem::Refused(status.to_string()),
        }
    }
}

/// The files picked for the next message, in the order they were picked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Uploads {
    next: u64,
    pub items: Vec<Upload>,
}

impl Uploads {
    /// Adds a file about to be uploaded; `None` when the message has all the files it may
    /// carry.
    pub fn add(&mut self, name: &str, size: u64) -> Option<u64> {
        if self.items.len() >= MAX_ATTACHMENTS {
            return None;
        }
        self.next += 1;
        self.items.push(Upload {
            key: self.next,
            name: name.to_owned(),
            size,
            sent: 0,
            state: UploadState::Uploading,
        });
        Some(self.next)
    }

    fn get(&mut self, key: u64) -> Option<&mut Upload> {
        self.items.iter_mut().find(|u| u.key == key)
    }

    pub fn progress(&mut self, key: u64, sent: u64) {
        if let Some(u) = self.get(key) {
            u.sent = sent.min(u.size);
        }
    }

    pub fn done(&mut self, key: u64, attachment: Attachment) {
        if let Some(u) = self.get(key) {
            u.sent = u.size;
            u.state = UploadState::Done(attachment);
        }
    }

    pub fn failed(&mut self, key: u64, problem: UploadProblem) {
        if let Some(u) = self.get(key) {
            u.state = UploadState::Failed(problem);
        }
    }

    /// Starts a failed upload again (from its first byte).
    pub fn retry(&mut self, key: u64) {
        if let Some(u) = self.get(key) {
            u.sent = 0;
            u.state = UploadState::Uploading;
        }
    }

    /// Takes a file off the message (cancelled, or removed after it failed).
    pub fn remove(&mut self, key: u64) {
        self.items.retain(|u| u.key != key);
    }

    /// Some file is still on its way.
    pub fn busy(&self) -> bool {
        self.items.iter().any(|u| u.state == UploadState::Uploading)
    }

    /// Every file picked is uploaded: what the message carries (empty when none was
    /// picked); `None` while one is uploading or has failed.
    pub fn ready(&self) -> Option<Vec<Attachment>> {
        self.items
            .iter()
            .map(|u| match &u.state {
                UploadState::Done(a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }

    /// How far one upload has got, 0–1.
    pub fn fraction(&self, key: u64) -> f64 {
        self.items.iter().find(|u| u.key == key).map_or(0.0, |u| {
            if u.size == 0 {
                1.0
            } else {
                u.sent as f64 / u.size as f64
            }
        })
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// A file size as people read it: "900 B", "12 KB", "3.4 MB" (units of 1,000, as file
/// managers show them; the same in every language the interface speaks).
pub fn size_label(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// The size an image is shown at in a message: its own, or smaller to fit `max_w` ×
/// `max_h` with its shape kept (at least a pixel a side).
pub fn fit(width: u32, height: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    if width == 0 || height == 0 {
        return (1, 1);
    }
    let scale = (f64::from(max_w) / f64::from(width))
        .min(f64::from(max_h) / f64::from(height))
        .min(1.0);
    let w = (f64::from(width) * scale).round().max(1.0) as u32;
    let h = (f64::from(height) * scale).round().max(1.0) as u32;
    (w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: &str) -> Attachment {
        Attachment {
            id: id.into(),
            name: format!("{id}.txt"),
            size: 10,
            content_type: "text/plain".into(),
            width: None,
            height: None,
        }
    }

    #[test]
    fn a_message_waits_until_every_file_is_up_and_carries_them_in_order() {
        let mut u = Uploads::default();
        assert_eq!(u.ready(), Some(vec![]), "nothing picked");
        let a = u.add("a.txt", 10).unwrap();
        let b = u.add("b.txt", 10).unwrap();
        assert!(u.busy());
        assert_eq!(u.ready(), None);
        u.done(b, file("b"));
        u.progress(a, 5);
        assert_eq!(u.fraction(a), 0.5);
        assert_eq!(u.ready(), None, "a is still uploading");
        u.failed(a, UploadProblem::Network);
        assert!(!u.busy());
        assert_eq!(u.ready(), None, "a failed: retry or remove it");
        u.retry(a);
        assert_eq!(u.fraction(a), 0.0);
        u.done(a, file("a"));
        let ready: Vec<String> = u.ready().unwrap().into_iter().map(|f| f.id).collect();
        assert_eq!(ready, ["a", "b"], "the order they were picked in");
        u.remove(a);
        assert_eq!(u.ready().unwrap().len(), 1);
    }

    #[test]
    fn a_message_takes_only_so_many_files() {
        let mut u = Uploads::default();
        for n in 0..MAX_ATTACHMENTS {
            assert!(u.add(&format!("{n}"), 1).is_some());
        }
        assert_eq!(u.add("one more", 1), None);
    }

    #[test]
    fn refusals_are_told_apart_by_their_code() {
        assert_eq!(
            UploadProblem::from_answer(413, Some("file_too_large")),
            UploadProblem::TooLarge
        );
        assert_eq!(
            UploadProblem::from_answer(413, Some("quota_exceeded")),
            UploadProblem::Quota
        );
        assert_eq!(
            UploadProblem::from_answer(413, None),
            UploadProblem::TooLarge
        );
        assert_eq!(UploadProblem::from_answer(0, None), UploadProblem::Network);
        assert_eq!(
            UploadProblem::from_answer(502, None),
            UploadProblem::Network
        );
        assert_eq!(
            UploadProblem::from_answer(404, Some("not_found")),
            UploadProblem::Refused("not_found".into())
        );
    }

    #[test]
    fn sizes_read_as_a_file_manager_shows_them() {
        assert_eq!(size_label(999), "999 B");
        assert_eq!(size_label(1_000), "1.0 KB");
        assert_eq!(size_label(12_345), "12 KB");
        assert_eq!(size_label(3_400_000), "3.4 MB");
        assert_eq!(size_label(999_999), "1.0 MB");
        assert_eq!(size_label(25 << 20), "26 MB");
    }

    #[test]
    fn images_shrink_to_the_box_and_keep_their_shape() {
        assert_eq!(fit(4000, 3000, 360, 280), (360, 270));
        assert_eq!(fit(600, 900, 360, 280), (187, 280));
        assert_eq!(fit(100, 50, 360, 280), (100, 50), "never enlarged");
        assert_eq!(fit(10_000, 1, 360, 280), (360, 1));
    }
}
