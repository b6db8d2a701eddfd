//! Every conversation's address, and every message's: `/c/<conversation>` and
//! `/c/<conversation>/<seq>`, so that a link, a reload or the back button brings one back to
//! it. A direct conversation's id (`ann/bob`) holds a `/`, which the address writes as `~`
//! (no username or room id contains one).

use crate::protocol::{ConversationId, Seq};

/// Where the page is: a conversation, and the message it is opened at (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub conversation: ConversationId,
    pub seq: Option<Seq>,
}

/// The path of the chat at `place` (`None`: the list).
pub fn path_of(place: Option<&Place>) -> String {
    let Some(place) = place else {
        return "/".to_owned();
    };
    let key = place.conversation.0.replace('/', "~");
    match place.seq {
        None => format!("/c/{key}"),
        Some(seq) => format!("/c/{key}/{seq}"),
    }
}

/// What a path of the chat shows: `Some(None)` for the list, `Some(Some(place))` for a
/// conversation or a message; `None` when the path is not the chat's.
pub fn place_in(path: &str) -> Option<Option<Place>> {
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Some(None);
    }
    let mut parts = path.strip_prefix("/c/")?.split('/');
    let key = parts.next().filter(|k| !k.is_empty())?;
    let seq = match parts.next() {
        None => None,
        Some(s) => Some(s.parse::<Seq>().ok().filter(|&n| n > 0)?),
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Some(Place {
        conversation: ConversationId(key.replace('~', "/")),
        seq,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(id: &str, seq: Option<Seq>) -> Place {
        Place {
            conversation: ConversationId(id.into()),
            seq,
        }
    }

    #[test]
    fn addresses_go_both_ways() {
        for id in ["ann/bob", "general", "r0123456789abcdef", "a.b-c/d_e"] {
            for seq in [None, Some(1), Some(12_345)] {
                let p = place(id, seq);
                let path = path_of(Some(&p));
                assert_eq!(
                    path.matches('/').count(),
                    2 + usize::from(seq.is_some()),
                    "{path}"
                );
                assert_eq!(place_in(&path), Some(Some(p)));
            }
        }
        assert_eq!(path_of(Some(&place("ann/bob", None))), "/c/ann~bob");
        assert_eq!(path_of(Some(&place("ann/bob", Some(42)))), "/c/ann~bob/42");
        assert_eq!(path_of(None), "/");
        assert_eq!(place_in("/"), Some(None));
        assert_eq!(place_in(""), Some(None));
        assert_eq!(place_in("/c/general/"), Some(Some(place("general", None))));
    }

    #[test]
    fn other_paths_are_not_the_chats() {
        for path in [
            "/c/",
            "/c/a/b/c",
            "/c/a/0",
            "/c/a/-1",
            "/c/a/x",
            "/settings",
            "/c//1",
        ] {
            assert_eq!(place_in(path), None, "{path}");
        }
    }
}
