//! A message's text as formatted blocks: the Markdown a chat user expects (bold, italic,
//! strikethrough, inline code, fenced code blocks, quotes, lists and links), with bare URLs
//! and e-mail addresses made links. Pure: the UI turns the tree into DOM nodes, so nothing
//! here is ever HTML. Raw HTML in a message stays text, and a link goes only to `http`,
//! `https` or `mailto` (anything else shows its text alone). The stored body is the text as
//! typed; this is only how it is shown.
//!
//! Chat, not documents: a single line break is a line break, headings show as bold lines,
//! and nesting deeper than [`MAX_DEPTH`] is flattened into its parent so that no message can
//! build a tree deep enough to exhaust the renderer's stack.

use linkify::{LinkFinder, LinkKind};
use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag};

/// Blocks and inline spans nested deeper than this show their content in their parent.
pub const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Paragraph(Vec<Inline>),
    /// A heading, shown as a bold line.
    Heading(Vec<Inline>),
    /// A fenced or indented code block: its text exactly (no trailing newline), and the
    /// language named after the fence, if any.
    Code {
        language: Option<String>,
        text: String,
    },
    Quote(Vec<Block>),
    /// Numbered from `start` when ordered; each item its blocks.
    List {
        start: Option<u64>,
        items: Vec<Vec<Block>>,
    },
    Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inline {
    Text(String),
    Code(String),
    Strong(Vec<Inline>),
    Emphasis(Vec<Inline>),
    Strike(Vec<Inline>),
    /// `href` is always `http:`, `https:` or `mailto:` (see [`safe_href`]).
    Link {
        href: String,
        children: Vec<Inline>,
    },
    Break,
}

/// `url` if a link may go there: `http`, `https` or `mailto`, with nothing before the
/// scheme. Whitespace and control characters are refused outright, because browsers strip
/// them when they read a scheme (`java\tscript:`).
pub fn safe_href(url: &str) -> Option<String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (scheme, rest) = url.split_once(':')?;
    let scheme = scheme.to_ascii_lowercase();
    let ok = match scheme.as_str() {
        "http" | "https" => rest.starts_with("//") && rest.len() > 2,
        "mailto" => !rest.is_empty(),
        _ => false,
    };
    ok.then(|| url.to_owned())
}

/// `body` as blocks.
pub fn parse(body: &str) -> Vec<Block> {
    let mut b = Builder {
        stack: vec![Frame::new(Open::Root)],
        links: 0,
    };
    for event in Parser::new_ext(body, Options::ENABLE_STRIKETHROUGH) {
        b.event(event);
    }
    while b.stack.len() > 1 {
        b.close();
    }
    let root = b.stack.pop().unwrap_or_else(|| Frame::new(Open::Root));
    root.into_blocks(true)
}

/// `text` (a message, or the start of one) without its formatting, as one line: what a
/// preview, a quote or a notification shows.
pub fn plain_text(text: &str) -> String {
    plain(&parse(text))
}

/// The text of `blocks` without formatting, as a line (for a quote or a preview).
pub fn plain(blocks: &[Block]) -> String {
    fn inline(out: &mut String, spans: &[Inline]) {
        for s in spans {
            match s {
                Inline::Text(t) | Inline::Code(t) => out.push_str(t),
                Inline::Strong(c)
                | Inline::Emphasis(c)
                | Inline::Strike(c)
                | Inline::Link { children: c, .. } => inline(out, c),
                Inline::Break => out.push(' '),
            }
        }
    }
    fn block(out: &mut String, b: &Block) {
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        match b {
            Block::Paragraph(s) | Block::Heading(s) => inline(out, s),
            Block::Code { text, .. } => out.push_str(text),
            Block::Quote(blocks) => blocks.iter().for_each(|b| block(out, b)),
            Block::List { items, .. } => items.iter().flatten().for_each(|b| block(out, b)),
            Block::Rule => {}
        }
    }
    let mut out = String::new();
    blocks.iter().for_each(|b| block(&mut out, b));
    out.trim().to_owned()
}

/// What a [`Frame`] is building.
#[derive(Debug)]
enum Open {
    Root,
    Paragraph,
    Heading,
    Quote,
    List(Option<u64>),
    Item,
    Code(Option<String>),
    /// Raw HTML, kept as text.
    Html,
    Strong,
    Emphasis,
    Strike,
    /// A link, with where it goes when that is allowed.
    Link(Option<String>),
    /// An image: shown as a link to it (never loaded), its alt text the link's text.
    Image(Option<String>),
    /// Anything else (too deep, or a construct the chat does not show): its content goes
    /// to the parent.
    Flatten,
}

#[derive(Debug)]
struct Frame {
    open: Open,
    blocks: Vec<Block>,
    inlines: Vec<Inline>,
    items: Vec<Vec<Block>>,
    text: String,
}

impl Frame {
    fn new(open: Open) -> Self {
        Frame {
            open,
            blocks: Vec::new(),
            inlines: Vec::new(),
            items: Vec::new(),
            text: String::new(),
        }
    }

    /// Loose inlines become a paragraph before the next block.
    fn settle(&mut self, links: bool) {
        if !self.inlines.is_empty() {
            let spans = finish(std::mem::take(&mut self.inlines), links);
            self.blocks.push(Block::Paragraph(spans));
        }
    }

    fn into_blocks(mut self, links: bool) -> Vec<Block> {
        self.settle(links);
        self.blocks
    }
}

struct Builder {
    stack: Vec<Frame>,
    /// Links (and images) open: text inside one is not searched for URLs.
    links: usize,
}

impl Builder {
    fn top(&mut self) -> &mut Frame {
        self.stack
            .last_mut()
            .expect("the root frame is never closed")
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.open(tag),
            Event::End(_) => self.close(),
            // Raw HTML is text like any other.
            Event::Text(t) | Event::Html(t) | Event::InlineHtml(t) => match self.top().open {
                Open::Code(_) | Open::Html => self.top().text.push_str(&t),
                _ => self.inline(Inline::Text(t.into_string())),
            },
            Event::Code(t) => self.inline(Inline::Code(t.into_string())),
            Event::SoftBreak | Event::HardBreak => match self.top().open {
                Open::Code(_) | Open::Html => self.top().text.push('\n'),
                _ => self.inline(Inline::Break),
            },
            Event::Rule => self.block(Block::Rule),
            // Not switched on; shown as the text they came from should they appear.
            Event::InlineMath(t) | Event::DisplayMath(t) | Event::FootnoteReference(t) => {
                self.inline(Inline::Text(t.into_string()))
            }
            Event::TaskListMarker(done) => {
                self.inline(Inline::Text(if done { "[x] " } else { "[ ] " }.to_owned()))
            }
        }
    }

    fn open(&mut self, tag: Tag<'_>) {
        let open = match tag {
            Tag::Paragraph => Open::Paragraph,
            Tag::Heading { .. } => Open::Heading,
            Tag::BlockQuote(_) => Open::Quote,
            Tag::CodeBlock(kind) => Open::Code(match kind {
                CodeBlockKind::Fenced(info) => info
                    .split_whitespace()
                    .next()
                    .map(|l| l.chars().take(32).collect()),
                CodeBlockKind::Indented => None,
            }),
            Tag::HtmlBlock => Open::Html,
            Tag::List(start) => Open::List(start),
            Tag::Item => Open::Item,
            Tag::Emphasis => Open::Emphasis,
            Tag::Strong => Open::Strong,
            Tag::Strikethrough => Open::Strike,
            // `<ada@example.com>` comes without its scheme.
            Tag::Link {
                link_type: LinkType::Email,
                dest_url,
                ..
            } => Open::Link(safe_href(&format!("mailto:{dest_url}"))),
            Tag::Link { dest_url, .. } => Open::Link(safe_href(&dest_url)),
            Tag::Image { dest_url, .. } => Open::Image(safe_href(&dest_url)),
            _ => Open::Flatten,
        };
        if matches!(open, Open::Link(_) | Open::Image(_)) {
            self.links += 1;
        }
        // Frames that nest (not the root, paragraphs or code) count towards the depth.
        let depth = self
            .stack
            .iter()
            .filter(|f| !matches!(f.open, Open::Root | Open::Paragraph | Open::Item))
            .count();
        let open = if depth >= MAX_DEPTH && !matches!(open, Open::Code(_) | Open::Html) {
            match open {
                Open::Link(_) | Open::Image(_) => {
                    // Counted above; a flattened link is text.
                    self.links -= 1;
                    Open::Flatten
                }
                Open::Paragraph | Open::Item => open,
                _ => Open::Flatten,
            }
        } else {
            open
        };
        self.stack.push(Frame::new(open));
    }

    fn close(&mut self) {
        if self.stack.len() <= 1 {
            return;
        }
        let Some(frame) = self.stack.pop() else {
            return;
        };
        if matches!(frame.open, Open::Link(_) | Open::Image(_)) {
            self.links -= 1;
        }
        let links = self.links == 0;
        match frame.open {
            Open::Root => {}
            Open::Paragraph => {
                let spans = finish(frame.inlines, links);
                self.block(Block::Paragraph(spans));
                // Blocks inside a paragraph cannot happen; kept if they ever do.
                frame.blocks.into_iter().for_each(|b| self.block(b));
            }
            Open::Heading => {
                let spans = finish(frame.inlines, links);
                self.block(Block::Heading(spans));
            }
            Open::Quote => {
                let blocks = frame.into_blocks(links);
                self.block(Block::Quote(blocks));
            }
            Open::List(start) => {
                let mut items = frame.items;
                // Content outside any item (never from the parser) becomes an item.
                let rest = Frame {
                    items: Vec::new(),
                    ..frame
                };
                let rest = rest.into_blocks(links);
                if !rest.is_empty() {
                    items.push(rest);
                }
                self.block(Block::List { start, items });
            }
            Open::Item => {
                let blocks = frame.into_blocks(links);
                let parent = self.top();
                if matches!(parent.open, Open::List(_)) {
                    parent.items.push(blocks);
                } else {
                    blocks.into_iter().for_each(|b| self.block(b));
                }
            }
            Open::Code(language) => {
                let mut text = frame.text;
                if text.ends_with('\n') {
                    text.pop();
                }
                self.block(Block::Code { language, text });
            }
            Open::Html => {
                let text = frame.text.trim_end_matches('\n').to_owned();
                self.block(Block::Paragraph(lines(&text)));
            }
            Open::Strong => {
                let spans = finish(frame.inlines, links);
                self.inline(Inline::Strong(spans));
            }
            Open::Emphasis => {
                let spans = finish(frame.inlines, links);
                self.inline(Inline::Emphasis(spans));
            }
            Open::Strike => {
                let spans = finish(frame.inlines, links);
                self.inline(Inline::Strike(spans));
            }
            Open::Link(href) | Open::Image(href) => {
                let children = finish(frame.inlines, false);
                match href {
                    Some(href) => {
                        let children = if children.is_empty() {
                            vec![Inline::Text(href.clone())]
                        } else {
                            children
                        };
                        self.inline(Inline::Link { href, children });
                    }
                    None => children.into_iter().for_each(|s| self.inline(s)),
                }
            }
            Open::Flatten => {
                frame.blocks.into_iter().for_each(|b| self.block(b));
                for items in frame.items {
                    items.into_iter().for_each(|b| self.block(b));
                }
                frame.inlines.into_iter().for_each(|s| self.inline(s));
            }
        }
    }

    fn inline(&mut self, span: Inline) {
        let top = self.top();
        match top.open {
            Open::Code(_) | Open::Html => top.text.push_str(&plain_inline(&span)),
            _ => top.inlines.push(span),
        }
    }

    fn block(&mut self, block: Block) {
        let links = self.links == 0;
        let top = self.top();
        match top.open {
            Open::Root | Open::Quote | Open::Item | Open::List(_) | Open::Flatten => {
                top.settle(links);
                top.blocks.push(block);
            }
            // A block inside inline content (flattened nesting): its text joins the line.
            _ => {
                let text = plain(std::slice::from_ref(&block));
                top.inlines.push(Inline::Text(text));
            }
        }
    }
}

fn plain_inline(span: &Inline) -> String {
    plain(&[Block::Paragraph(vec![span.clone()])])
}

/// Raw text with its line breaks.
fn lines(text: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push(Inline::Break);
        }
        if !line.is_empty() {
            out.push(Inline::Text(line.to_owned()));
        }
    }
    out
}

/// Joins neighbouring text and, outside links, makes bare URLs and e-mail addresses links.
fn finish(spans: Vec<Inline>, links: bool) -> Vec<Inline> {
    let mut joined: Vec<Inline> = Vec::with_capacity(spans.len());
    for s in spans {
        match (joined.last_mut(), s) {
            (Some(Inline::Text(prev)), Inline::Text(t)) => prev.push_str(&t),
            (_, s) => joined.push(s),
        }
    }
    if !links {
        return joined;
    }
    let finder = LinkFinder::new();
    let mut out = Vec::with_capacity(joined.len());
    for s in joined {
        let Inline::Text(text) = s else {
            out.push(s);
            continue;
        };
        for span in finder.spans(&text) {
            let whole = span.as_str();
            // A URL ends at full-width punctuation: "https://a.example/x，好吗" links only
            // the address (Chinese words inside a path stay in it).
            let (piece, rest) = match span.kind() {
                Some(LinkKind::Url) => whole.split_at(
                    whole
                        .char_indices()
                        .find(|&(_, c)| full_width_punctuation(c))
                        .map_or(whole.len(), |(i, _)| i),
                ),
                _ => (whole, ""),
            };
            let href = match span.kind() {
                Some(LinkKind::Url) => safe_href(piece),
                Some(LinkKind::Email) => safe_href(&format!("mailto:{piece}")),
                _ => None,
            };
            match href {
                Some(href) => out.push(Inline::Link {
                    href,
                    children: vec![Inline::Text(piece.to_owned())],
                }),
                None => push_text(&mut out, piece),
            }
            push_text(&mut out, rest);
        }
    }
    out
}

fn push_text(out: &mut Vec<Inline>, text: &str) {
    if text.is_empty() {
        return;
    }
    match out.last_mut() {
        Some(Inline::Text(prev)) => prev.push_str(text),
        _ => out.push(Inline::Text(text.to_owned())),
    }
}

/// CJK and full-width punctuation (、。「」，！？：；（） and the like).
fn full_width_punctuation(c: char) -> bool {
    matches!(c, '\u{3000}'..='\u{303F}' | '\u{FF01}'..='\u{FF0F}' | '\u{FF1A}'..='\u{FF20}'
        | '\u{FF3B}'..='\u{FF40}' | '\u{FF5B}'..='\u{FF65}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Inline {
        Inline::Text(s.to_owned())
    }

    fn p(spans: Vec<Inline>) -> Block {
        Block::Paragraph(spans)
    }

    fn link(href: &str, text: &str) -> Inline {
        Inline::Link {
            href: href.to_owned(),
            children: vec![t(text)],
        }
    }

    #[test]
    fn plain_text_is_one_paragraph_and_a_line_break_stays_one() {
        assert_eq!(parse("hello"), [p(vec![t("hello")])]);
        assert_eq!(
            parse("one\ntwo"),
            [p(vec![t("one"), Inline::Break, t("two")])]
        );
        assert_eq!(parse("one\n\ntwo"), [p(vec![t("one")]), p(vec![t("two")])]);
    }

    #[test]
    fn emphasis_strong_strike_and_code_are_spans() {
        assert_eq!(
            parse("**bold** *it* ~~gone~~ `x < y`"),
            [p(vec![
                Inline::Strong(vec![t("bold")]),
                t(" "),
                Inline::Emphasis(vec![t("it")]),
                t(" "),
                Inline::Strike(vec![t("gone")]),
                t(" "),
                Inline::Code("x < y".to_owned()),
            ])]
        );
        // Underscores inside a name are not emphasis.
        assert_eq!(
            parse("@bob_2 and snake_case"),
            [p(vec![t("@bob_2 and snake_case")])]
        );
    }

    #[test]
    fn a_fenced_block_keeps_its_text_exactly_and_its_language() {
        let body = "look:\n```rust\nfn main() {\n    let x = 1;   // <b>\n}\n```";
        assert_eq!(
            parse(body),
            [
                p(vec![t("look:")]),
                Block::Code {
                    language: Some("rust".to_owned()),
                    text: "fn main() {\n    let x = 1;   // <b>\n}".to_owned(),
                }
            ]
        );
    }

    #[test]
    fn quotes_and_lists_nest() {
        assert_eq!(
            parse("> quoted\n\n- a\n- **b**\n\n3. three\n4. four"),
            [
                Block::Quote(vec![p(vec![t("quoted")])]),
                Block::List {
                    start: None,
                    items: vec![
                        vec![p(vec![t("a")])],
                        vec![p(vec![Inline::Strong(vec![t("b")])])]
                    ],
                },
                Block::List {
                    start: Some(3),
                    items: vec![vec![p(vec![t("three")])], vec![p(vec![t("four")])]],
                },
            ]
        );
    }

    #[test]
    fn raw_html_stays_text() {
        assert_eq!(
            parse("<img src=x onerror=alert(1)> and <b>bold</b>"),
            [p(vec![t("<img src=x onerror=alert(1)> and <b>bold</b>")])]
        );
        assert_eq!(
            parse("<div>\n<script>alert(1)</script>\n</div>"),
            [p(vec![
                t("<div>"),
                Inline::Break,
                t("<script>alert(1)</script>"),
                Inline::Break,
                t("</div>")
            ])]
        );
    }

    #[test]
    fn links_go_only_to_http_https_and_mailto() {
        assert_eq!(
            parse("[docs](https://example.com/a?b=1)"),
            [p(vec![link("https://example.com/a?b=1", "docs")])]
        );
        assert_eq!(
            parse("[mail](mailto:ada@example.com)"),
            [p(vec![link("mailto:ada@example.com", "mail")])]
        );
        assert_eq!(
            parse("<ada@example.com> <https://example.com>"),
            [p(vec![
                link("mailto:ada@example.com", "ada@example.com"),
                t(" "),
                link("https://example.com", "https://example.com"),
            ])]
        );
        for evil in [
            "[x](javascript:alert(1))",
            "[x](JavaScript:alert(1))",
            "[x](java%0ascript:alert(1))",
            "[x](data:text/html,<script>alert(1)</script>)",
            "[x](vbscript:msgbox)",
            "[x](//evil.example)",
            "[x](/relative)",
            "[x](http:no-slashes)",
        ] {
            assert_eq!(parse(evil), [p(vec![t("x")])], "{evil}");
        }
        assert_eq!(safe_href("java\tscript:alert(1)"), None);
        assert_eq!(safe_href(" https://a.b"), None);
        assert_eq!(safe_href("HTTPS://A.B/c").as_deref(), Some("HTTPS://A.B/c"));
    }

    #[test]
    fn bare_urls_and_addresses_become_links_but_not_inside_links_or_code() {
        assert_eq!(
            parse("see https://example.com/x_(y), or mail ada@example.com."),
            [p(vec![
                t("see "),
                link("https://example.com/x_(y)", "https://example.com/x_(y)"),
                t(", or mail "),
                link("mailto:ada@example.com", "ada@example.com"),
                t("."),
            ])]
        );
        assert_eq!(
            parse("[https://a.example](https://b.example) `https://c.example`"),
            [p(vec![
                link("https://b.example", "https://a.example"),
                t(" "),
                Inline::Code("https://c.example".to_owned()),
            ])]
        );
        assert_eq!(
            parse("**https://a.example**"),
            [p(vec![Inline::Strong(vec![link(
                "https://a.example",
                "https://a.example"
            )])])]
        );
        // Other schemes found in text stay text.
        assert_eq!(
            parse("javascript://%0aalert(1)"),
            [p(vec![t("javascript://%0aalert(1)")])]
        );
        // Chinese around a URL.
        assert_eq!(
            parse("看这个https://example.com/a，好吗"),
            [p(vec![
                t("看这个"),
                link("https://example.com/a", "https://example.com/a"),
                t("，好吗"),
            ])]
        );
        assert_eq!(
            parse("https://zh.wikipedia.org/wiki/数据库。"),
            [p(vec![
                link(
                    "https://zh.wikipedia.org/wiki/数据库",
                    "https://zh.wikipedia.org/wiki/数据库"
                ),
                t("。"),
            ])]
        );
    }

    #[test]
    fn images_are_links_never_loaded() {
        assert_eq!(
            parse("![cat](https://example.com/cat.png)"),
            [p(vec![link("https://example.com/cat.png", "cat")])]
        );
        assert_eq!(parse("![cat](javascript:x)"), [p(vec![t("cat")])]);
    }

    #[test]
    fn headings_and_rules_show() {
        assert_eq!(
            parse("# Title\n---\nafter"),
            [
                Block::Heading(vec![t("Title")]),
                Block::Rule,
                p(vec![t("after")])
            ]
        );
    }

    fn depth(blocks: &[Block]) -> usize {
        fn spans(s: &[Inline]) -> usize {
            s.iter()
                .map(|s| match s {
                    Inline::Strong(c)
                    | Inline::Emphasis(c)
                    | Inline::Strike(c)
                    | Inline::Link { children: c, .. } => 1 + spans(c),
                    _ => 0,
                })
                .max()
                .unwrap_or(0)
        }
        blocks
            .iter()
            .map(|b| match b {
                Block::Paragraph(s) | Block::Heading(s) => spans(s),
                Block::Quote(b) => 1 + depth(b),
                Block::List { items, .. } => 1 + items.iter().map(|i| depth(i)).max().unwrap_or(0),
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn deep_nesting_is_flattened_and_keeps_its_text() {
        let quotes = format!("{} deep", ">".repeat(3_000));
        let blocks = parse(&quotes);
        assert!(depth(&blocks) <= MAX_DEPTH, "{}", depth(&blocks));
        assert_eq!(plain(&blocks), "deep");

        let lists = (0..500)
            .map(|i| format!("{}- item {i}", "  ".repeat(i)))
            .collect::<Vec<_>>()
            .join("\n");
        let blocks = parse(&lists);
        assert!(depth(&blocks) <= MAX_DEPTH + 1, "{}", depth(&blocks));
        assert!(plain(&blocks).contains("item 499"));

        let stars = format!("{}x{}", "*_".repeat(1_000), "_*".repeat(1_000));
        let blocks = parse(&stars);
        assert!(depth(&blocks) <= MAX_DEPTH + 1, "{}", depth(&blocks));
        assert!(plain(&blocks).contains('x'));
    }

    #[test]
    fn plain_text_of_formatted_blocks() {
        assert_eq!(
            plain_text("**Hi** there\n> quoted\n\n- a\n- b"),
            "Hi there quoted a b"
        );
        assert_eq!(plain_text("```\nlet x = 1;\n```"), "let x = 1;");
        assert_eq!(plain_text("2 * 3 * 4 = 24"), "2 * 3 * 4 = 24");
        // A preview cut inside a span shows what is left of it as text.
        assert_eq!(plain_text("**unfinished"), "**unfinished");
    }
}
