//! Validated domain values. Each newtype can only be built through `parse`, so an invalid
//! username, body or room name cannot exist past the boundary where it arrived. The rules
//! are shared by the server (which enforces them) and the browser (which explains them).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was refused; `field` names the offending input. The server sends it as
/// English text (`Display`); the browser words the [`Rule`] in the reader's language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Invalid {
    pub field: &'static str,
    pub rule: Rule,
}

/// The rule a refused value broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rule {
    #[error("must not be empty")]
    Empty,
    #[error("must be {min}–{max} characters")]
    Length { min: usize, max: usize },
    #[error("must be at most {0} characters")]
    TooLong(usize),
    /// Only the characters listed in `allowed` besides letters and digits.
    #[error("may contain only letters, digits, {allowed}")]
    Charset { allowed: &'static str },
    #[error("must start with a letter or digit")]
    Start,
    #[error("must not contain control characters")]
    Control,
    #[error("must not contain invisible or direction-changing characters")]
    Hidden,
    #[error("must be one emoji")]
    OneEmoji,
}

fn invalid(field: &'static str, rule: Rule) -> Invalid {
    Invalid { field, rule }
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Decoding validates: a frame carrying an invalid value fails to decode.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_newtype!(
    /// A login name: 3–32 characters, lowercase ASCII letters, digits, `_`, `.` and `-`,
    /// starting with a letter or digit. Case-insensitive on input, stored lowercase.
    Username
);

impl Username {
    pub const MIN: usize = 3;
    pub const MAX: usize = 32;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim().to_ascii_lowercase();
        let n = s.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&n) {
            return Err(invalid(
                "username",
                Rule::Length {
                    min: Self::MIN,
                    max: Self::MAX,
                },
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        {
            return Err(invalid(
                "username",
                Rule::Charset {
                    allowed: "'_', '.' and '-'",
                },
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(invalid("username", Rule::Start));
        }
        Ok(Username(s))
    }
}

string_newtype!(
    /// The name shown to others: 1–64 characters after trimming, no control characters.
    DisplayName
);

impl DisplayName {
    pub const MAX: usize = 64;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        single_line("display_name", s, Self::MAX).map(DisplayName)
    }
}

string_newtype!(
    /// A group room's name: 1–64 characters after trimming, no control characters.
    RoomName
);

impl RoomName {
    pub const MAX: usize = 64;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        single_line("room_name", s, Self::MAX).map(RoomName)
    }
}

string_newtype!(
    /// A room's topic: at most 250 characters after trimming, one line, no control
    /// characters; empty clears it.
    RoomTopic
);

impl RoomTopic {
    pub const MAX: usize = 250;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.trim().is_empty() {
            return Ok(RoomTopic(String::new()));
        }
        single_line("topic", s, Self::MAX).map(RoomTopic)
    }
}

string_newtype!(
    /// What someone says they are up to: at most 100 characters after trimming, one line,
    /// no control characters; empty clears it.
    StatusText
);

impl StatusText {
    pub const MAX: usize = 100;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.trim().is_empty() {
            return Ok(StatusText(String::new()));
        }
        single_line("status", s, Self::MAX).map(StatusText)
    }
}

string_newtype!(
    /// An uploaded file's name, as shown and offered for saving: the last part of the path
    /// it came with, one line of 1–200 characters, no hidden or direction-changing
    /// characters (`photo\u{202E}gpj.exe` cannot pass for a picture).
    FileName
);

impl FileName {
    pub const MAX: usize = 200;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let last = s.rsplit(['/', '\\']).next().unwrap_or(s);
        single_line("file_name", last, Self::MAX).map(FileName)
    }
}

fn single_line(field: &'static str, s: &str, max: usize) -> Result<String, Invalid> {
    let s = s.trim();
    if s.is_empty() {
        return Err(invalid(field, Rule::Empty));
    }
    if s.chars().count() > max {
        return Err(invalid(field, Rule::TooLong(max)));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(field, Rule::Control));
    }
    if has_hidden(s) {
        return Err(invalid(field, Rule::Hidden));
    }
    Ok(s.to_owned())
}

/// Whether `s` holds characters that change how the text around them reads without showing
/// themselves — bidirectional overrides and isolates, zero-width spaces and joiners, the
/// byte-order mark — which a name could use to pass for another (`alice` written backwards
/// behind a right-to-left override, an invisible character inside a room's name). A
/// zero-width joiner between two emoji is kept: it is how emoji sequences are written.
fn has_hidden(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| match c {
        '\u{200D}' => {
            let emoji = |c: Option<&char>| {
                c.is_some_and(|&c| matches!(c as u32, 0x2600..=0x27BF | 0x1F000..=0x1FAFF))
            };
            !(emoji(i.checked_sub(1).and_then(|j| chars.get(j))) && emoji(chars.get(i + 1)))
        }
        '\u{061C}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200C}'
        | '\u{200E}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{3164}'
        | '\u{FEFF}'
        | '\u{FFA0}' => true,
        _ => false,
    })
}

/// A password as typed: 8–256 characters. Never serialised back out.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 256;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let n = s.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&n) {
            return Err(invalid(
                "password",
                Rule::Length {
                    min: Self::MIN,
                    max: Self::MAX,
                },
            ));
        }
        Ok(Password(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Password {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Password::parse(&s)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

string_newtype!(
    /// A message's text: plain text (never HTML), 1–4000 characters, not only whitespace,
    /// no control characters other than newline and tab. Kept exactly as typed otherwise.
    MessageBody
);

impl MessageBody {
    pub const MAX: usize = 4000;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.trim().is_empty() {
            return Err(invalid("body", Rule::Empty));
        }
        if s.chars().count() > Self::MAX {
            return Err(invalid("body", Rule::TooLong(Self::MAX)));
        }
        if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(invalid("body", Rule::Control));
        }
        Ok(MessageBody(s.to_owned()))
    }

    /// The first line, shortened to `max` characters, for conversation previews.
    pub fn preview(&self, max: usize) -> String {
        preview(&self.0, max)
    }
}

/// The first line of a message's text, cut to `max` characters with an ellipsis. A code
/// fence (a line of ```` ``` ```` or `~~~`, with its language) is not text: the first line
/// inside it is taken instead.
pub fn preview(text: &str, max: usize) -> String {
    let fence = |l: &str| l.starts_with("```") || l.starts_with("~~~");
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !fence(l))
        .unwrap_or_default();
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        let mut s: String = line.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

string_newtype!(
    /// The sender's own id for a message, for idempotent retries: 1–64 characters of
    /// `[A-Za-z0-9_-]` (a UUID fits).
    ClientMsgId
);

impl ClientMsgId {
    pub const MAX: usize = 64;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() || s.len() > Self::MAX {
            return Err(invalid(
                "client_msg_id",
                Rule::Length {
                    min: 1,
                    max: Self::MAX,
                },
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "client_msg_id",
                Rule::Charset {
                    allowed: "'-' and '_'",
                },
            ));
        }
        Ok(ClientMsgId(s.to_owned()))
    }
}

string_newtype!(
    /// An uploaded file's id, as the server made it: 32 lowercase hex digits (128 random
    /// bits), so that ids cannot be guessed (they are still checked on every download).
    FileId
);

impl FileId {
    pub const LEN: usize = 32;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.len() != Self::LEN {
            return Err(invalid(
                "file_id",
                Rule::Length {
                    min: Self::LEN,
                    max: Self::LEN,
                },
            ));
        }
        if !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid(
                "file_id",
                Rule::Charset {
                    allowed: "and no other characters",
                },
            ));
        }
        Ok(FileId(s.to_owned()))
    }
}

string_newtype!(
    /// A reaction: one emoji from Unicode's list (skin tones included), as typed or picked.
    Emoji
);

impl Emoji {
    /// The longest emoji sequence (a family or a flag of a region) is well under this.
    pub const MAX_BYTES: usize = 64;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        if s.len() > Self::MAX_BYTES || emojis::get(s).is_none() {
            return Err(invalid("emoji", Rule::OneEmoji));
        }
        Ok(Emoji(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(Username::parse("  Alice_1 ").unwrap().as_str(), "alice_1");
        for bad in [
            "",
            "ab",
            &"a".repeat(33),
            "al ice",
            "_alice",
            "ålice",
            "a<b>c",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn message_bodies_keep_their_text_but_refuse_blank_huge_or_control() {
        assert_eq!(
            MessageBody::parse(" hi\nthere ").unwrap().as_str(),
            " hi\nthere "
        );
        assert_eq!(
            MessageBody::parse("<img src=x onerror=alert(1)>")
                .unwrap()
                .as_str(),
            "<img src=x onerror=alert(1)>"
        );
        assert!(MessageBody::parse("").is_err());
        assert!(MessageBody::parse(" \n\t ").is_err());
        assert!(MessageBody::parse(&"x".repeat(MessageBody::MAX + 1)).is_err());
        assert!(MessageBody::parse(&"é".repeat(MessageBody::MAX)).is_ok());
        assert!(MessageBody::parse("bell\u{7}").is_err());
    }

    #[test]
    fn names_refuse_invisible_and_direction_changing_characters() {
        for bad in [
            "\u{202E}ecila",
            "Gen\u{200B}eral",
            "bob\u{2066}",
            "\u{FEFF}Admin",
            "a\u{200D}b",
            "\u{061C}x",
        ] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?}");
            assert!(RoomName::parse(bad).is_err(), "{bad:?}");
        }
        for good in [
            "Zoë 张伟",
            "مرحبا",
            "family \u{1F468}\u{200D}\u{1F469}",
            "🚀 launch",
        ] {
            assert!(DisplayName::parse(good).is_ok(), "{good:?}");
            assert!(RoomName::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn previews_take_the_first_line_and_ellipsise() {
        let body = MessageBody::parse("hello world\nsecond").unwrap();
        assert_eq!(body.preview(80), "hello world");
        assert_eq!(body.preview(6), "hello…");
        let code = MessageBody::parse("```rust\n\n  fn main() {}\n```").unwrap();
        assert_eq!(code.preview(80), "fn main() {}");
        assert_eq!(MessageBody::parse("```").unwrap().preview(80), "");
    }

    #[test]
    fn decoding_validates() {
        assert!(serde_json::from_str::<Username>("\"ok_name\"").is_ok());
        assert!(serde_json::from_str::<Username>("\"no\"").is_err());
        assert!(serde_json::from_str::<Password>("\"short\"").is_err());
        assert!(serde_json::from_str::<ClientMsgId>("\"a b\"").is_err());
    }

    #[test]
    fn a_reaction_is_one_known_emoji() {
        for good in ["👍", "❤️", "👍🏽", "🇨🇳", "👨‍👩‍👧"] {
            assert!(Emoji::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "x", "👍👍", ":+1:", "<b>", &"👍".repeat(1000)] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_never_show_in_debug_output() {
        let p = Password::parse("correct horse").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }
}
