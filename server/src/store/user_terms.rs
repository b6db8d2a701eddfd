//! How people are found by name: the search terms kept for each user (pure, no I/O).
//!
//! A user is found by any query that begins a word of their username or display name,
//! ignoring case: "ada" and "love" find "Ada Lovelace" (`ada_l`); "伟" finds "张伟", since
//! Chinese, Japanese and Korean are written without spaces and each of their characters
//! begins a word here. Every word start is kept as one term (the rest of the name from
//! there), so a search is one range read of the terms that begin with the query: its cost
//! follows the page it returns, never the number of users.

/// Longest query, in characters; terms are cut to it (a longer term is found by its start).
pub const QUERY_MAX: usize = 64;

/// The terms one user is found by: each word start of the lowercased username and display
/// name, with the rest of that name from there, cut to [`QUERY_MAX`] characters; distinct.
pub fn terms(username: &str, display_name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in [username, display_name] {
        let lower: Vec<char> = name.trim().to_lowercase().chars().collect();
        for start in word_starts(&lower) {
            let term: String = lower[start..].iter().take(QUERY_MAX).collect();
            let term = term.trim_end().to_owned();
            if !term.is_empty() && !out.contains(&term) {
                out.push(term);
            }
        }
    }
    out
}

/// A query as the terms are kept: trimmed and lowercased; `None` if empty or too long.
pub fn query(q: &str) -> Option<String> {
    let q = q.trim().to_lowercase();
    (!q.is_empty() && q.chars().count() <= QUERY_MAX).then_some(q)
}

/// The upper end of the terms that begin with `q` (excluded): `q` followed by the highest
/// character, above every term that continues `q` with any other.
pub fn after_all_starting_with(q: &str) -> String {
    format!("{q}{}", char::MAX)
}

/// Where words begin: a letter or digit at the start or after anything that is not one, and
/// every ideograph or syllable of a script written without spaces (and the letter after one).
fn word_starts(chars: &[char]) -> impl Iterator<Item = usize> + '_ {
    (0..chars.len()).filter(move |&i| {
        let c = chars[i];
        if !c.is_alphanumeric() {
            return false;
        }
        match i.checked_sub(1).map(|p| chars[p]) {
            None => true,
            Some(prev) => !prev.is_alphanumeric() || unspaced(c) || unspaced(prev),
        }
    })
}

/// Characters of scripts written without spaces between words (CJK ideographs, kana,
/// Hangul syllables): each begins a word for searching.
fn unspaced(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3400..=0x4DBF   // CJK Extension A
        | 0x4E00..=0x9FFF   // CJK Unified Ideographs
        | 0xAC00..=0xD7AF   // Hangul syllables
        | 0xF900..=0xFAFF   // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F // CJK Extensions B–F and compatibility supplement
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finds(username: &str, display_name: &str, q: &str) -> bool {
        let q = query(q).unwrap();
        terms(username, display_name)
            .iter()
            .any(|t| t.starts_with(&q))
    }

    #[test]
    fn a_word_start_of_either_name_finds_the_user_whatever_the_case() {
        assert!(finds("ada_l", "Ada Lovelace", "ada"));
        assert!(finds("ada_l", "Ada Lovelace", "LOVE"));
        assert!(finds("ada_l", "Ada Lovelace", "ada lov"));
        assert!(
            finds("ada_l", "Ada Lovelace", "l"),
            "after '_' in the username"
        );
        assert!(finds("grace.hopper", "G", "hop"));
        assert!(
            !finds("ada_l", "Ada Lovelace", "velace"),
            "not inside a word"
        );
    }

    #[test]
    fn every_chinese_character_begins_a_word() {
        assert!(finds("zhangwei", "张伟", "伟"));
        assert!(finds("zhangwei", "张伟", "张伟"));
        assert!(finds("li", "李小龙 Bruce", "小龙"));
        assert!(finds("li", "李小龙 Bruce", "bru"));
        assert!(
            finds("li", "李小龙Bruce", "bruce"),
            "a Latin word right after Chinese"
        );
        assert!(finds("tanaka", "たなか", "なか"));
        assert!(!finds("zhangwei", "张伟", "王"));
    }

    #[test]
    fn terms_are_distinct_and_cut_to_the_longest_query() {
        let t = terms("ada", "Ada");
        assert_eq!(t, vec!["ada".to_owned()]);
        let long = "字".repeat(200);
        let t = terms("x", &long);
        assert!(t.iter().all(|t| t.chars().count() <= QUERY_MAX));
        assert_eq!(
            t.len(),
            1 + QUERY_MAX,
            "the tails of 64 characters or fewer are distinct only by length"
        );
    }

    #[test]
    fn queries_are_trimmed_lowercased_and_bounded() {
        assert_eq!(query("  Ada "), Some("ada".into()));
        assert_eq!(query("   "), None);
        assert_eq!(query(&"a".repeat(65)), None);
        let hi = after_all_starting_with("ada");
        let hi = hi.as_str();
        assert!("adaz" < hi);
        assert!("ada\u{FFFF}" < hi);
        assert!("adb" > hi);
    }
}
