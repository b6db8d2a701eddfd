//! Every conversation's address: `/c/<conversation>`, so that a link, a reload or the back
//! button brings one back to it. A direct conversation's id (`ann/bob`) holds a `/`, which
//! the address writes as `~` (no username or room id contains one).

use crate::protocol::ConversationId;

/// The path of the chat with `place` open (`None`: the list).
pub fn path_of(place: Option<&ConversationId>) -> String {
    match place {
        None => "/".to_owned(),
        Some(id) => format!("/c/{}", id.0.replace('/', "~")),
    }
}

/// What a path of the chat opens: `Some(None)` for the list, `Some(Some(id))` for a
/// conversation; `None` when the path is not the chat's.
pub fn place_in(path: &str) -> Option<Option<ConversationId>> {
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Some(None);
    }
    let key = path.strip_prefix("/c/")?;
    if key.is_empty() || key.contains('/') {
        return None;
    }
    Some(Some(ConversationId(key.replace('~', "/"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_go_both_ways() {
        for id in ["ann/bob", "general", "r0123456789abcdef", "a.b-c/d_e"] {
            let id = ConversationId(id.into());
            let path = path_of(Some(&id));
            assert!(!path[3..].contains('/'), "one segment: {path}");
            assert_eq!(place_in(&path), Some(Some(id)));
        }
        assert_eq!(
            path_of(Some(&ConversationId("ann/bob".into()))),
            "/c/ann~bob"
        );
        assert_eq!(path_of(None), "/");
        assert_eq!(place_in("/"), Some(None));
        assert_eq!(place_in(""), Some(None));
        assert_eq!(
            place_in("/c/general/"),
            Some(Some(ConversationId("general".into())))
        );
        assert_eq!(place_in("/c/"), None);
        assert_eq!(place_in("/c/a/b"), None);
        assert_eq!(place_in("/settings"), None);
    }
}
