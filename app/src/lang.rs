//! The interface's sentences that code chooses rather than a view: what an error code means,
//! why a value was refused, who is typing, who has seen a message. Each takes the reader's
//! [`Locale`]; the words live in `locales/*.json`, checked at compile time.
//!
//! Errors are worded from their *code* (and, for a refused value, from the broken
//! [`Rule`]), never from the server's English sentence.

use crate::domain::{Invalid, Rule};
use crate::i18n::{td_string, I18nLocaleTrait, Locale};
use crate::protocol::{AuthProblem, ErrorCode};

/// The languages offered, with their names as their readers write them.
pub const LANGUAGES: [(Locale, &str); 2] = [(Locale::en, "English"), (Locale::zh_CN, "中文")];

/// The cookie that remembers the language a reader chose, which the server renders the next
/// page in. (The name `leptos_i18n` gives it, so that a choice made before still counts; the
/// app writes and reads it itself, which keeps a cookie parser and a date library out of
/// the browser's code.)
pub const LANGUAGE_COOKIE: &str = "i18n_pref_locale";

/// A choice is remembered for a year.
const LANGUAGE_COOKIE_MAX_AGE_S: u32 = 365 * 24 * 60 * 60;

/// The language a request's `Cookie` header says the reader chose, if it is one offered.
pub fn chosen_language(cookie_header: &str) -> Option<Locale> {
    cookie_header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if name != LANGUAGE_COOKIE {
            return None;
        }
        let value = value.trim_matches('"');
        LANGUAGES
            .iter()
            .find(|(locale, _)| locale.as_str() == value)
            .map(|(locale, _)| *locale)
    })
}

/// What the browser stores (`document.cookie`) when the reader chooses `locale`: for this
/// site only, a year.
pub fn language_cookie(locale: Locale) -> String {
    format!(
        "{LANGUAGE_COOKIE}={}; Path=/; Max-Age={LANGUAGE_COOKIE_MAX_AGE_S}; SameSite=Lax",
        locale.as_str()
    )
}

/// An `Accept-Language` header with every Chinese tag read as `zh-CN`, the Chinese this
/// interface is written in: a reader who asks for `zh`, `zh-Hans` or `zh-TW` reads it
/// better than English. (The locale matcher only offers a locale at least as general as the
/// tag asked for, so `zh` alone would get English.)
pub fn prefer_our_chinese(accept_language: &str) -> String {
    accept_language
        .split(',')
        .map(|part| {
            let (tag, weight) = part.split_once(';').unwrap_or((part, ""));
            let tag = tag.trim();
            let chinese = tag.eq_ignore_ascii_case("zh")
                || tag.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("zh-"));
            let tag = if chinese { "zh-CN" } else { tag };
            if weight.is_empty() {
                tag.to_owned()
            } else {
                format!("{tag};{weight}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What a refused frame means to the person who sent it.
pub fn error_text(locale: Locale, code: ErrorCode) -> String {
    match code {
        ErrorCode::BadFrame | ErrorCode::UnsupportedFrame => {
            td_string!(locale, errors.bad_frame)
        }
        ErrorCode::InvalidInput => td_string!(locale, errors.invalid_input),
        ErrorCode::Forbidden => td_string!(locale, errors.forbidden),
        ErrorCode::FrameTooLarge => td_string!(locale, errors.too_large),
        ErrorCode::NotFound => td_string!(locale, errors.not_found),
        ErrorCode::RateLimited => td_string!(locale, errors.rate_limited),
        ErrorCode::LimitReached => td_string!(locale, errors.limit_reached),
        ErrorCode::Banned => td_string!(locale, errors.banned),
        ErrorCode::InviteInvalid => td_string!(locale, errors.room_invite_invalid),
        ErrorCode::Internal => td_string!(locale, errors.internal),
    }
    .to_owned()
}

/// Why signing in, signing up or asking who is signed in failed.
pub fn auth_problem_text(locale: Locale, problem: &AuthProblem) -> String {
    match problem {
        AuthProblem::Unreachable => td_string!(locale, errors.unreachable).to_owned(),
        AuthProblem::Refused {
            code,
            retry_after_s,
        } => auth_error_text(locale, code, retry_after_s.map(|s| s.div_ceil(60).max(1))),
        AuthProblem::Status(status) => td_string!(locale, errors.status, status),
    }
}

/// What an answer of `/api/auth/*` with this `code` means; `minutes` is how long to wait
/// when the server says so (`Retry-After`).
fn auth_error_text(locale: Locale, code: &str, minutes: Option<u64>) -> String {
    match code {
        "wrong_credentials" => td_string!(locale, errors.wrong_credentials).to_owned(),
        "username_taken" => td_string!(locale, errors.username_taken).to_owned(),
        "too_many_attempts" => {
            td_string!(
                locale,
                errors.too_many_attempts,
                minutes = minutes.unwrap_or(1)
            )
        }
        "invalid_input" => td_string!(locale, errors.invalid_input).to_owned(),
        "forbidden_origin" => td_string!(locale, errors.forbidden).to_owned(),
        "account_disabled" => td_string!(locale, errors.account_disabled).to_owned(),
        "sign_up_closed" => td_string!(locale, errors.sign_up_closed).to_owned(),
        "invite_invalid" => td_string!(locale, errors.invite_invalid).to_owned(),
        "wrong_password" => td_string!(locale, errors.wrong_password).to_owned(),
        "not_an_image" => td_string!(locale, errors.not_an_image).to_owned(),
        "rate_limited" => td_string!(locale, errors.rate_limited).to_owned(),
        "image_too_large" | "file_too_large" => {
            td_string!(locale, errors.image_too_large).to_owned()
        }
        _ => td_string!(locale, errors.internal).to_owned(),
    }
}

/// Why a value was refused: "Username must be 3–32 characters." / "用户名须为 3–32 个字符。"
pub fn invalid_text(locale: Locale, e: &Invalid) -> String {
    let field = match e.field {
        "username" => td_string!(locale, fields.username),
        "password" => td_string!(locale, fields.password),
        "display_name" => td_string!(locale, fields.display_name),
        "room_name" => td_string!(locale, fields.room_name),
        "status" => td_string!(locale, fields.status),
        "topic" => td_string!(locale, fields.topic),
        "body" => td_string!(locale, fields.body),
        "emoji" => td_string!(locale, fields.emoji),
        _ => td_string!(locale, fields.value),
    };
    match e.rule {
        Rule::Empty => td_string!(locale, rules.empty, field),
        Rule::Length { min, max } => td_string!(locale, rules.length, field, min, max),
        Rule::TooLong(max) => td_string!(locale, rules.too_long, field, max),
        Rule::Charset { .. } => td_string!(locale, rules.charset, field),
        Rule::Start => td_string!(locale, rules.start, field),
        Rule::Control => td_string!(locale, rules.control, field),
        Rule::Hidden => td_string!(locale, rules.hidden, field),
        Rule::OneEmoji => td_string!(locale, rules.one_emoji).to_owned(),
    }
}

/// The line under a conversation for the people typing in it: "Ada is typing…", "Ada and
/// Bob are typing…", "Ada, Bob and Cy are typing…", then "Several people are typing…".
pub fn typing_line(locale: Locale, names: &[String]) -> Option<String> {
    Some(match names {
        [] => return None,
        [one] => td_string!(locale, typing.one, one),
        [a, b] => td_string!(locale, typing.two, a, b),
        [a, b, c] => td_string!(locale, typing.three, a, b, c),
        _ => td_string!(locale, typing.many).to_owned(),
    })
}

/// Under one's own newest message: "Seen" in a direct conversation, "Seen by N" in a room.
pub fn seen_label(locale: Locale, direct: bool, count: usize) -> String {
    if direct {
        td_string!(locale, conversation.seen).to_owned()
    } else {
        td_string!(locale, conversation.seen_by, n = count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RoomName, Username};

    #[test]
    fn every_chinese_tag_reads_our_chinese() {
        assert_eq!(prefer_our_chinese("zh"), "zh-CN");
        assert_eq!(
            prefer_our_chinese("zh-TW,zh;q=0.9,en-US;q=0.8"),
            "zh-CN,zh-CN;q=0.9,en-US;q=0.8"
        );
        assert_eq!(prefer_our_chinese("en-GB, fr;q=0.5"), "en-GB,fr;q=0.5");
        assert_eq!(prefer_our_chinese("zu,zhx"), "zu,zhx");
    }

    #[test]
    fn refused_values_are_explained_in_both_languages() {
        let e = Username::parse("x").unwrap_err();
        assert_eq!(
            invalid_text(Locale::en, &e),
            "Username must be 3–32 characters."
        );
        assert_eq!(invalid_text(Locale::zh_CN, &e), "用户名须为 3–32 个字符。");
        let e = RoomName::parse(" ").unwrap_err();
        assert_eq!(invalid_text(Locale::en, &e), "Room name must not be empty.");
        assert_eq!(invalid_text(Locale::zh_CN, &e), "房间名不能为空。");
    }

    #[test]
    fn every_error_code_has_words_in_every_language() {
        let codes = [
            ErrorCode::BadFrame,
            ErrorCode::InvalidInput,
            ErrorCode::Forbidden,
            ErrorCode::FrameTooLarge,
            ErrorCode::UnsupportedFrame,
            ErrorCode::NotFound,
            ErrorCode::RateLimited,
            ErrorCode::LimitReached,
            ErrorCode::Internal,
        ];
        for (locale, _) in LANGUAGES {
            for code in codes {
                let text = error_text(locale, code);
                assert!(!text.is_empty() && !text.contains('_'), "{code:?}: {text}");
            }
        }
        let refused = |code: &str, retry_after_s| AuthProblem::Refused {
            code: code.into(),
            retry_after_s,
        };
        assert_eq!(
            auth_problem_text(Locale::en, &refused("wrong_credentials", None)),
            "Wrong username or password."
        );
        assert_eq!(
            auth_problem_text(Locale::zh_CN, &refused("too_many_attempts", Some(150))),
            "尝试次数过多，请 3 分钟后再试。"
        );
        assert!(auth_problem_text(Locale::en, &AuthProblem::Unreachable).contains("unreachable"));
    }

    #[test]
    fn the_typing_line_names_up_to_three() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(typing_line(Locale::en, &[]), None);
        assert_eq!(
            typing_line(Locale::en, &names(&["Ada"])).unwrap(),
            "Ada is typing…"
        );
        assert_eq!(
            typing_line(Locale::en, &names(&["Ada", "Bob"])).unwrap(),
            "Ada and Bob are typing…"
        );
        assert_eq!(
            typing_line(Locale::en, &names(&["Ada", "Bob", "Cy"])).unwrap(),
            "Ada, Bob and Cy are typing…"
        );
        assert_eq!(
            typing_line(Locale::en, &names(&["Ada", "Bob", "Cy", "Di"])).unwrap(),
            "Several people are typing…"
        );
        assert_eq!(
            typing_line(Locale::zh_CN, &names(&["小明", "Bob"])).unwrap(),
            "小明和 Bob 正在输入…"
        );
    }

    #[test]
    fn the_chosen_language_survives_the_cookie_round_trip() {
        for (locale, _) in LANGUAGES {
            let stored = language_cookie(locale);
            assert!(
                stored.contains("Path=/") && stored.contains("Max-Age=31536000"),
                "{stored}"
            );
            // The browser sends back only the pair, among its other cookies.
            let pair = stored.split(';').next().unwrap();
            let header = format!("chat_session=abc; {pair}; theme=dark");
            assert_eq!(chosen_language(&header), Some(locale));
        }
        assert_eq!(
            chosen_language("i18n_pref_locale=\"zh-CN\""),
            Some(Locale::zh_CN)
        );
        for other in [
            "",
            "chat_session=abc",
            "i18n_pref_locale=fr",
            "i18n_pref_locale=",
            "xi18n_pref_locale=en",
            "i18n_pref_locale",
        ] {
            assert_eq!(chosen_language(other), None, "{other:?}");
        }
    }
}
