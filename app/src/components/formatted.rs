//! A message's text as it is shown: its Markdown ([`crate::markdown`]) built into DOM
//! nodes, never from an HTML string; mentions marked inside its text; links opening in a new
//! tab without giving it this page (`noopener noreferrer`); code blocks scrolling sideways,
//! with a button under them that copies them.

use leptos::prelude::*;

use crate::i18n::t_string;

use crate::markdown::{parse, Block, Inline};
use crate::mention::{pieces, Piece};

/// `body` formatted, with `mentions` marked (`me`'s stand out) and `trailer` (e.g. an
/// "edited" mark) at the end of its last paragraph.
pub fn formatted(body: &str, mentions: &[String], me: &str, trailer: Option<AnyView>) -> AnyView {
    let ctx = Marks { mentions, me };
    let mut blocks = parse(body);
    // The trailer joins the last line when the message ends with a paragraph.
    let last = match blocks.last() {
        Some(Block::Paragraph(_)) => blocks.pop(),
        _ => None,
    };
    let mut views: Vec<AnyView> = blocks.iter().map(|b| ctx.block(b)).collect();
    match (last, trailer) {
        (Some(Block::Paragraph(spans)), trailer) => {
            let spans = ctx.spans(&spans);
            views.push(view! { <p>{spans}{trailer}</p> }.into_any());
        }
        (_, Some(trailer)) => views.push(trailer),
        (_, None) => {}
    }
    views.into_any()
}

struct Marks<'a> {
    mentions: &'a [String],
    me: &'a str,
}

impl Marks<'_> {
    fn blocks(&self, blocks: &[Block]) -> Vec<AnyView> {
        blocks.iter().map(|b| self.block(b)).collect()
    }

    fn block(&self, block: &Block) -> AnyView {
        match block {
            Block::Paragraph(spans) => view! { <p>{self.spans(spans)}</p> }.into_any(),
            Block::Heading(spans) => {
                view! { <p class="md-heading"><strong>{self.spans(spans)}</strong></p> }.into_any()
            }
            Block::Code { language, text } => code_block(language.clone(), text.clone()),
            Block::Quote(inner) => {
                view! { <blockquote>{self.blocks(inner)}</blockquote> }.into_any()
            }
            Block::List { start, items } => {
                let items: Vec<AnyView> = items
                    .iter()
                    .map(|item| view! { <li>{self.blocks(item)}</li> }.into_any())
                    .collect();
                match start {
                    Some(start) => view! { <ol start=*start>{items}</ol> }.into_any(),
                    None => view! { <ul>{items}</ul> }.into_any(),
                }
            }
            Block::Rule => view! { <hr /> }.into_any(),
        }
    }

    fn spans(&self, spans: &[Inline]) -> Vec<AnyView> {
        spans.iter().map(|s| self.span(s)).collect()
    }

    fn span(&self, span: &Inline) -> AnyView {
        match span {
            Inline::Text(text) => self.text(text),
            Inline::Code(code) => view! { <code>{code.clone()}</code> }.into_any(),
            Inline::Strong(inner) => view! { <strong>{self.spans(inner)}</strong> }.into_any(),
            Inline::Emphasis(inner) => view! { <em>{self.spans(inner)}</em> }.into_any(),
            Inline::Strike(inner) => view! { <del>{self.spans(inner)}</del> }.into_any(),
            Inline::Link { href, children } => view! {
                <a href=href.clone() target="_blank" rel="noopener noreferrer">
                    {self.spans(children)}
                </a>
            }
            .into_any(),
            Inline::Break => view! { <br /> }.into_any(),
        }
    }

    /// Text with its mentions marked.
    fn text(&self, text: &str) -> AnyView {
        pieces(text, self.mentions)
            .into_iter()
            .map(|piece| match piece {
                Piece::Text(t) => t.to_owned().into_any(),
                Piece::Mention(token, name) => {
                    let own = name == self.me;
                    view! { <span class="mention" class:own=own>{token.to_owned()}</span> }
                        .into_any()
                }
            })
            .collect::<Vec<_>>()
            .into_any()
    }
}

/// A code block: monospace, scrolling sideways, with a copy button.
fn code_block(language: Option<String>, text: String) -> AnyView {
    let i18n = crate::i18n::use_i18n();
    let copied = RwSignal::new(false);
    let copy = {
        let text = text.clone();
        move |ev: leptos::ev::MouseEvent| {
            // The copy is not a tap on the message (which shows its toolbar).
            ev.stop_propagation();
            super::copy_to_clipboard(&text, copied);
        }
    };
    // The copy button goes under the code: the message's toolbar shows over its top.
    view! {
        <div class="code-block">
            <pre tabindex="0"><code data-language=language.clone()>{text}</code></pre>
            <div class="code-foot">
                <span class="code-language">{language}</span>
                <button
                    type="button"
                    class="copy-code"
                    aria-label=move || {
                        if copied.get() {
                            t_string!(i18n, actions.copied)
                        } else {
                            t_string!(i18n, actions.copy_code)
                        }
                    }
                    on:click=copy
                >
                    {move || {
                        if copied.get() {
                            t_string!(i18n, actions.copied)
                        } else {
                            t_string!(i18n, actions.copy)
                        }
                    }}
                </button>
            </div>
        </div>
    }
    .into_any()
}
