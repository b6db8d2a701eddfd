//! Finding messages by the words in them, in any mix of Chinese and other scripts: the terms
//! a message is indexed under, the terms a query looks up, whether a text really contains a
//! query, and where (for highlighting). Pure; shared by the server (index and check) and the
//! browser (highlighting).
//!
//! Chinese, Japanese and Korean text has no spaces between words, so an index of
//! space-separated words finds nothing inside a sentence. Here a run of such characters is
//! indexed as each of its characters and each pair of neighbours (bigrams, as Lucene's CJK
//! analyser does); any other run of letters and digits is one word. A query is cut the same
//! way: a run of two or more CJK characters looks up all of its bigrams, a single character
//! itself, a word itself. The index so finds every text that may contain the query, and
//! [`Query::matches`] keeps those that contain every part of it as typed: a CJK part as a
//! substring, a word as a whole word (any case, full-width letters as ASCII).

use std::ops::Range;

/// Longest query, in characters; longer ones are refused (`bad_request`).
pub const MAX_QUERY_CHARS: usize = 100;
/// Most parts (words and CJK runs) a query may have.
pub const MAX_QUERY_PARTS: usize = 8;
/// Words are indexed and looked up by their first this many characters (a query word as long
/// is still compared whole by [`Query::matches`]).
const MAX_TERM_CHARS: usize = 32;

/// A character of Chinese, Japanese or Korean writing (Han, kana, Hangul).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3005..=0x3007          // 々 〆 〇
        | 0x3040..=0x30FF        // Hiragana, Katakana
        | 0x3131..=0x318E        // Hangul compatibility jamo
        | 0x3400..=0x4DBF        // CJK extension A
        | 0x4E00..=0x9FFF        // CJK unified ideographs
        | 0xAC00..=0xD7A3        // Hangul syllables
        | 0xF900..=0xFAFF        // CJK compatibility ideographs
        | 0x20000..=0x3134F      // CJK extensions B–G
    )
}

/// The character as compared: lower case, full-width ASCII as ASCII.
fn fold(c: char) -> char {
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    c.to_lowercase().next().unwrap_or(c)
}

/// A run of word characters or of CJK characters in a text: the folded characters and where
/// each starts in the text (bytes), with the run's end.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    cjk: bool,
    chars: Vec<char>,
    starts: Vec<usize>,
    end: usize,
}

impl Run {
    /// The bytes of the text that chars `from..to` of the run came from.
    fn bytes(&self, from: usize, to: usize) -> Range<usize> {
        let end = self.starts.get(to).copied().unwrap_or(self.end);
        self.starts[from]..end
    }
}

fn runs(text: &str) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for (at, c) in text.char_indices() {
        let f = fold(c);
        let kind = if is_cjk(f) {
            Some(true)
        } else if f.is_alphanumeric() {
            Some(false)
        } else {
            None
        };
        let end = at + c.len_utf8();
        match (kind, out.last_mut()) {
            (None, _) => {}
            (Some(cjk), Some(run)) if run.cjk == cjk && run.end == at => {
                run.chars.push(f);
                run.starts.push(at);
                run.end = end;
            }
            (Some(cjk), _) => out.push(Run {
                cjk,
                chars: vec![f],
                starts: vec![at],
                end,
            }),
        }
    }
    out
}

fn term(chars: &[char]) -> String {
    chars.iter().take(MAX_TERM_CHARS).collect()
}

/// The terms `text` is indexed under, each once, sorted.
pub fn index_terms(text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    for run in runs(text) {
        if run.cjk {
            for (i, c) in run.chars.iter().enumerate() {
                terms.push(c.to_string());
                if let Some(next) = run.chars.get(i + 1) {
                    terms.push([*c, *next].iter().collect());
                }
            }
        } else {
            terms.push(term(&run.chars));
        }
    }
    terms.sort_unstable();
    terms.dedup();
    terms
}

/// [`index_terms`] as one string, separated by spaces (what a blank-tokenised full-text
/// index reads).
pub fn index_text(text: &str) -> String {
    index_terms(text).join(" ")
}

/// Why a query cannot be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// No letter, digit or CJK character in it.
    Empty,
    TooLong,
    TooManyParts,
}

/// A parsed search query: its words and CJK runs, folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    parts: Vec<Run>,
}

impl Query {
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(QueryError::TooLong);
        }
        let mut parts = runs(text);
        // The same part twice asks for nothing more.
        let mut seen = Vec::new();
        parts.retain(|p| {
            let fresh = !seen.contains(&(p.cjk, p.chars.clone()));
            seen.push((p.cjk, p.chars.clone()));
            fresh
        });
        match parts.len() {
            0 => Err(QueryError::Empty),
            n if n > MAX_QUERY_PARTS => Err(QueryError::TooManyParts),
            _ => Ok(Query { parts }),
        }
    }

    /// The index terms a text must all have to contain the query, each once, sorted.
    pub fn terms(&self) -> Vec<String> {
        let mut terms = Vec::new();
        for p in &self.parts {
            if p.cjk && p.chars.len() > 1 {
                terms.extend(p.chars.windows(2).map(|w| w.iter().collect::<String>()));
            } else {
                terms.push(term(&p.chars));
            }
        }
        terms.sort_unstable();
        terms.dedup();
        terms
    }

    /// [`Self::terms`] separated by spaces.
    pub fn terms_text(&self) -> String {
        self.terms().join(" ")
    }

    /// Whether `text` contains every part of the query.
    pub fn matches(&self, text: &str) -> bool {
        let runs = runs(text);
        self.parts
            .iter()
            .all(|p| runs.iter().any(|r| !occurrences(p, r).is_empty()))
    }

    /// Where the parts of the query occur in `text` (byte ranges, in order, not overlapping).
    pub fn highlights(&self, text: &str) -> Vec<Range<usize>> {
        let runs = runs(text);
        let mut out: Vec<Range<usize>> = Vec::new();
        for r in &runs {
            for p in &self.parts {
                out.extend(occurrences(p, r));
            }
        }
        out.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
        let mut merged: Vec<Range<usize>> = Vec::new();
        for r in out {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        merged
    }
}

/// Where part `p` of a query occurs in run `r` of a text, as byte ranges of the text.
fn occurrences(p: &Run, r: &Run) -> Vec<Range<usize>> {
    if p.cjk != r.cjk {
        return Vec::new();
    }
    if !p.cjk {
        let whole = r.starts[0]..r.end;
        return if p.chars == r.chars {
            Vec::from([whole])
        } else {
            Vec::new()
        };
    }
    let n = p.chars.len();
    if n > r.chars.len() {
        return Vec::new();
    }
    (0..=r.chars.len() - n)
        .filter(|&i| r.chars[i..i + n] == p.chars[..])
        .map(|i| r.bytes(i, i + n))
        .collect()
}

/// `text` cut into pieces for showing a result: `(piece, highlighted)`, around the first
/// match, at most about `max_chars` characters, with "…" where text was left out.
pub fn snippet(text: &str, query: &Query, max_chars: usize) -> Vec<(String, bool)> {
    let marks = query.highlights(text);
    let total = text.chars().count();
    // Start a little before the first match, so that it shows with some context.
    let first = marks.first().map_or(0, |m| text[..m.start].chars().count());
    let from_char = if total <= max_chars {
        0
    } else {
        first.saturating_sub(max_chars / 4).min(total - max_chars)
    };
    let byte_at = |chars: usize| {
        text.char_indices()
            .nth(chars)
            .map_or(text.len(), |(at, _)| at)
    };
    let (from, to) = (byte_at(from_char), byte_at(from_char + max_chars));
    let mut out = Vec::new();
    if from > 0 {
        out.push(("…".to_owned(), false));
    }
    let mut at = from;
    for m in marks {
        let (start, end) = (m.start.max(from), m.end.min(to));
        if start >= end {
            continue;
        }
        if start > at {
            out.push((text[at..start].to_owned(), false));
        }
        out.push((text[start..end].to_owned(), true));
        at = end;
    }
    if at < to {
        out.push((text[at..to].to_owned(), false));
    }
    if to < text.len() {
        out.push(("…".to_owned(), false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(s).unwrap()
    }

    fn marked<'a>(text: &'a str, query: &str) -> Vec<&'a str> {
        q(query)
            .highlights(text)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn chinese_is_indexed_as_characters_and_bigrams() {
        assert_eq!(
            index_terms("数据库很慢"),
            ["库", "库很", "很", "很慢", "慢", "据", "据库", "数", "数据"]
        );
    }

    #[test]
    fn other_scripts_are_indexed_as_whole_words_in_lower_case() {
        assert_eq!(
            index_terms("WebSocket连接断了, again: the WebSocket!"),
            [
                "again",
                "the",
                "websocket",
                "了",
                "接",
                "接断",
                "断",
                "断了",
                "连",
                "连接"
            ]
        );
        assert_eq!(index_terms("ＷｅｂＳｏｃｋｅｔ"), ["websocket"]);
        assert_eq!(index_terms("Привет, Ünïcode"), ["ünïcode", "привет"]);
        assert!(index_terms(" ,.!? 😀 ").is_empty());
    }

    #[test]
    fn a_query_looks_up_what_the_text_was_indexed_under() {
        let text = "我们的数据库今天很慢";
        let terms = index_terms(text);
        for query in ["数据库", "数据", "慢", "今天很慢", "我们的数据库今天很慢"]
        {
            let q = q(query);
            assert!(q.terms().iter().all(|t| terms.contains(t)), "{query}");
            assert!(q.matches(text), "{query}");
        }
        assert_eq!(q("数据库").terms(), ["据库", "数据"]);
        assert_eq!(q("慢").terms(), ["慢"]);
        assert_eq!(q("WebSocket 连接").terms(), ["websocket", "连接"]);
    }

    #[test]
    fn a_match_needs_every_part_as_typed() {
        // Both bigrams of 数据库 are in the text, but not the word itself.
        assert!(!q("数据库").matches("数据在仓库，据库存"));
        assert!(q("数据库").matches("新的数据库"));
        assert!(q("websocket").matches("WebSocket连接断了"));
        assert!(q("WEBSOCKET 断了").matches("WebSocket连接断了"));
        assert!(!q("web").matches("WebSocket"), "words are whole words");
        assert!(!q("数据库 mysql").matches("数据库"));
        assert!(q("数据库, 数据库!").matches("数据库"));
    }

    #[test]
    fn queries_without_words_or_too_long_are_refused() {
        assert_eq!(Query::parse(""), Err(QueryError::Empty));
        assert_eq!(Query::parse("  !! 😀 "), Err(QueryError::Empty));
        assert_eq!(Query::parse(&"长".repeat(101)), Err(QueryError::TooLong));
        assert!(Query::parse(&"长".repeat(100)).is_ok());
        assert_eq!(
            Query::parse("a b c d e f g h i"),
            Err(QueryError::TooManyParts)
        );
    }

    #[test]
    fn long_words_are_looked_up_by_their_start_and_compared_whole() {
        let long = "a".repeat(40);
        assert_eq!(index_terms(&long), ["a".repeat(32)]);
        assert_eq!(q(&long).terms(), ["a".repeat(32)]);
        assert!(q(&long).matches(&long));
        assert!(!q(&long).matches(&"a".repeat(41)));
    }

    #[test]
    fn highlights_are_the_matching_bytes_of_the_original_text() {
        assert_eq!(
            marked("我们的数据库今天很慢，数据库", "数据库"),
            ["数据库", "数据库"]
        );
        assert_eq!(
            marked("The WebSocket连接断了", "websocket 断"),
            ["WebSocket", "断"]
        );
        assert_eq!(
            marked("ＷｅｂＳｏｃｋｅｔ", "websocket"),
            ["ＷｅｂＳｏｃｋｅｔ"]
        );
        // Overlapping parts merge into one mark.
        assert_eq!(marked("数据库", "数据 据库"), ["数据库"]);
        assert!(marked("nothing here", "数据").is_empty());
    }

    #[test]
    fn a_snippet_shows_the_match_with_context_and_marks_it() {
        let text = format!("{}数据库{}", "前".repeat(100), "后".repeat(100));
        let parts = snippet(&text, &q("数据库"), 40);
        assert_eq!(parts.first().unwrap().0, "…");
        assert_eq!(parts.last().unwrap().0, "…");
        assert!(parts.contains(&("数据库".to_owned(), true)));
        let shown: usize = parts.iter().map(|(t, _)| t.chars().count()).sum();
        assert_eq!(shown, 42);
        assert_eq!(
            snippet("short 数据库", &q("数据库"), 40),
            [("short ".to_owned(), false), ("数据库".to_owned(), true)]
        );
    }
}
