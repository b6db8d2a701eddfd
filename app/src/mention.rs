//! `@name` mentions in a message's text: where they are, whom they name, and the name being
//! typed before the caret. Shared by the server (which keeps the names that are members of
//! the conversation as the message's mentions) and the browser (which highlights them and
//! offers members while one is typed).
//!
//! A mention is `@` followed by a username's characters, at the start of the text or after
//! a character that cannot be part of a name (so `ada@example.com` mentions nobody). A name
//! is matched without regard to case, and a `.` or `-` that ends it is punctuation
//! (`thanks @ada.` mentions `ada`).

use std::ops::Range;

/// A character that may appear in a username (see [`crate::domain::Username`]).
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// One `@name` in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// Byte range of the whole token, `@` included.
    pub range: Range<usize>,
    /// The name, lowercase.
    pub name: String,
}

/// Every `@name` in `text`, in order (names that are nobody's included: the caller knows
/// who can be mentioned).
pub fn mentions(text: &str) -> Vec<Mention> {
    let mut found = Vec::new();
    let mut prev: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let starts = c == '@' && !prev.is_some_and(|p| name_char(p) || p == '@');
        prev = Some(c);
        if !starts {
            continue;
        }
        let mut end = at + 1;
        while let Some(&(i, n)) = chars.peek() {
            if !name_char(n) {
                break;
            }
            end = i + n.len_utf8();
            prev = Some(n);
            chars.next();
        }
        let name = text[at + 1..end].trim_end_matches(['.', '-']);
        if name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            found.push(Mention {
                range: at..at + 1 + name.len(),
                name: name.to_ascii_lowercase(),
            });
        }
    }
    found
}

/// The distinct names `text` mentions, in order of first mention.
pub fn mentioned_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in mentions(text) {
        if !names.contains(&m.name) {
            names.push(m.name);
        }
    }
    names
}

/// The `@name` being typed at the end of `before_caret`: the byte offset of its `@` and
/// what follows it so far (possibly nothing). `None` when the caret is not in a mention.
pub fn typing_mention(before_caret: &str) -> Option<(usize, &str)> {
    let at = before_caret.rfind('@')?;
    let typed = &before_caret[at + 1..];
    let starts = !before_caret[..at]
        .chars()
        .next_back()
        .is_some_and(|p| name_char(p) || p == '@');
    (starts && typed.chars().all(name_char)).then_some((at, typed))
}

/// `text` with the mention being typed from byte `at` to byte `caret` completed as
/// `@username` and a space, and where the caret goes after it.
pub fn complete(text: &str, at: usize, caret: usize, username: &str) -> (String, usize) {
    let caret = caret.clamp(at, text.len());
    let mut out = String::with_capacity(text.len() + username.len() + 2);
    out.push_str(&text[..at]);
    out.push('@');
    out.push_str(username);
    out.push(' ');
    let after = out.len();
    out.push_str(text[caret..].trim_start_matches(' '));
    (out, after)
}

/// Whether `typed` starts `username` or a word of `display_name` (any case): a member
/// offered while a mention is typed.
pub fn offers(typed: &str, username: &str, display_name: &str) -> bool {
    let typed = typed.to_lowercase();
    username.starts_with(&typed)
        || display_name
            .split_whitespace()
            .any(|w| w.to_lowercase().starts_with(&typed))
}

/// A text cut into plain runs and mentions of `known` names (lowercase), for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Mention(&'a str, &'a str),
}

/// `text` as [`Piece`]s: each `@name` whose name is in `known` becomes a
/// [`Piece::Mention`] (the token as written, and the name); the rest stays text.
pub fn pieces<'a>(text: &'a str, known: &'a [String]) -> Vec<Piece<'a>> {
    let mut out = Vec::new();
    let mut from = 0;
    for m in mentions(text) {
        let Some(name) = known.iter().find(|k| **k == m.name) else {
            continue;
        };
        if m.range.start > from {
            out.push(Piece::Text(&text[from..m.range.start]));
        }
        out.push(Piece::Mention(&text[m.range.clone()], name));
        from = m.range.end;
    }
    if from < text.len() {
        out.push(Piece::Text(&text[from..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_where_a_name_can_start_and_lowercased() {
        let cases: &[(&str, &[&str])] = &[
            ("@ada hi", &["ada"]),
            ("hi @Ada and @bob_2!", &["ada", "bob_2"]),
            ("thanks @ada.", &["ada"]),
            ("(@ada) @ada again", &["ada"]),
            ("mail ada@example.com", &[]),
            ("@@ada", &[]),
            ("@ alone", &[]),
            ("@_x", &[]),
            ("你好@ada", &["ada"]),
            ("@a.b-c- end", &["a.b-c"]),
        ];
        for (text, want) in cases {
            assert_eq!(mentioned_names(text), *want, "{text:?}");
        }
    }

    #[test]
    fn ranges_cover_the_token_as_written() {
        let text = "hey @Ada.";
        let m = &mentions(text)[0];
        assert_eq!(&text[m.range.clone()], "@Ada");
    }

    #[test]
    fn the_mention_being_typed_is_the_last_at_sign_before_the_caret() {
        assert_eq!(typing_mention("hi @ad"), Some((3, "ad")));
        assert_eq!(typing_mention("@"), Some((0, "")));
        assert_eq!(typing_mention("hi @ada "), None, "a space ends it");
        assert_eq!(typing_mention("ada@ex"), None, "an address, not a mention");
        assert_eq!(typing_mention("no at sign"), None);
    }

    #[test]
    fn completing_replaces_what_was_typed_and_leaves_one_space() {
        assert_eq!(complete("hi @ad", 3, 6, "ada"), ("hi @ada ".to_owned(), 8));
        assert_eq!(
            complete("@b see you", 0, 2, "bob"),
            ("@bob see you".to_owned(), 5)
        );
        assert!(offers("Ad", "ada", "Ada Lovelace"));
        assert!(offers("love", "ada", "Ada Lovelace"));
        assert!(!offers("bob", "ada", "Ada Lovelace"));
        assert!(offers("", "ada", "Ada"), "a bare @ offers everyone");
    }

    #[test]
    fn pieces_mark_known_names_only() {
        let known = vec!["ada".to_owned()];
        assert_eq!(
            pieces("hi @Ada, not @zed.", &known),
            vec![
                Piece::Text("hi "),
                Piece::Mention("@Ada", "ada"),
                Piece::Text(", not @zed."),
            ]
        );
        assert_eq!(pieces("", &known), vec![]);
    }
}
