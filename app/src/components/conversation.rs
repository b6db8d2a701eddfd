//! The open conversation: its header, the message log (newest at the bottom, older pages
//! loaded on scrolling up without the view jumping, day separators, a "new messages" line,
//! "jump to latest"), and the composer with local echo.
//!
//! Message text is put into the page as DOM nodes built from its parsed Markdown
//! ([`super::formatted`]): no HTML from a message reaches the DOM.

use leptos::{ev, html, prelude::*, wasm_bindgen::JsCast, web_sys};

use crate::chat::address::{path_of, Place};
use crate::chat::{time, Chat, PendingState};
use crate::components::files::{
    AttachButton, DropZone, FilesCtx, ImageViewer, MessageFiles, UploadTray,
};
use crate::components::{copy_to_clipboard, formatted::formatted, Avatar, ChatCtx};
use crate::domain::{ClientMsgId, Emoji, Invalid, MessageBody};
use crate::i18n::{t, t_string, use_i18n, Locale};
use crate::lang::{error_text, invalid_text, seen_label, typing_line};
use crate::markdown::plain_text;
use crate::protocol::{Attachment, ConversationId, ConversationKind, NotifyLevel};

/// Within this many pixels of the bottom, the log counts as "at the latest message" and
/// follows new ones.
const PINNED_SLACK_PX: i32 = 80;
/// Within this many pixels of the top, the next older page is requested.
const LOAD_OLDER_PX: i32 = 300;
/// Consecutive messages by one sender within this time share one header.
const GROUP_MS: i64 = 5 * 60_000;

/// One line of the log.
#[derive(Debug, Clone, PartialEq)]
enum Row {
    Day(String),
    NewMessages,
    /// Messages not loaded yet between a page opened far back and the newer ones.
    Gap,
    Message {
        seq: u64,
        mine: bool,
        /// Same sender as the line above, shortly after: no name or avatar.
        compact: bool,
        sender: String,
        name: String,
        body: String,
        clock: String,
        /// The message an address named.
        highlight: bool,
        /// Its address (`/c/<conversation>/<seq>`).
        link: String,
        edited: bool,
        deleted: bool,
        /// Deleted by a moderator, not by its sender.
        removed: bool,
        /// The user may delete it though it is not theirs (a room admin).
        moderate: bool,
        /// What it answers: who, the start of it (empty once deleted), and its address.
        reply: Option<(String, String, bool, String)>,
        reactions: Vec<Chip>,
        /// Whom it mentions, and whether the user is among them.
        mentions: Vec<String>,
        mentions_me: bool,
        files: Vec<Attachment>,
    },
    Pending {
        client_msg_id: String,
        body: String,
        files: Vec<Attachment>,
        failed: Option<String>,
    },
    /// Under one's own newest message: "Seen" or "Seen by N", with who.
    Seen {
        label: String,
        names: Vec<String>,
    },
}

/// One emoji under a message: how many used it, whether the user did, and who.
#[derive(Debug, Clone, PartialEq)]
struct Chip {
    emoji: String,
    count: usize,
    mine: bool,
    names: String,
}

impl Row {
    fn key(&self) -> String {
        match self {
            Row::Day(label) => format!("d:{label}"),
            Row::NewMessages => "new".into(),
            Row::Gap => "gap".into(),
            Row::Message {
                seq,
                compact,
                highlight,
                body,
                deleted,
                removed,
                moderate,
                reply,
                reactions,
                mentions,
                files,
                ..
            } => {
                // Anything shown changes the key, so the row is drawn again.
                let chips: Vec<String> = reactions
                    .iter()
                    .map(|c| format!("{}{}{}", c.emoji, c.count, c.mine))
                    .collect();
                let quote = reply.as_ref().map(|q| format!("{}{}", q.1, q.2));
                format!(
                    "m:{seq}:{compact}:{highlight}:{deleted}{removed}{moderate}:{}:{}:{quote:?}:{}:{}:{body}",
                    body.len(),
                    chips.join(","),
                    mentions.join(","),
                    files.len()
                )
            }
            Row::Pending {
                client_msg_id,
                failed,
                ..
            } => format!("p:{client_msg_id}:{}", failed.is_some()),
            Row::Seen { label, names } => format!("s:{label}:{}", names.join(",")),
        }
    }
}

/// What the composer does besides writing a new message: answer one, or change one of
/// the user's own (its `seq`).
#[derive(Debug, Clone, PartialEq)]
enum Compose {
    Reply {
        seq: u64,
        name: String,
        text: String,
    },
    Edit {
        seq: u64,
    },
}

/// The open conversation's composer mode, shared by the messages' toolbars and the
/// composer.
#[derive(Clone, Copy)]
struct ComposeCtx(RwSignal<Option<Compose>>);

/// The message whose toolbar had the keyboard's focus when a change to it was asked for
/// (a reaction chosen by key): the message is drawn anew when the change arrives, and the
/// focus goes back into its toolbar then.
#[derive(Clone, Copy)]
struct RefocusCtx(StoredValue<Option<u64>>);

/// Reactions offered at a click (any other emoji can be typed).
const QUICK_EMOJI: [&str; 8] = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

fn rows(c: &Chat, id: &ConversationId, now: i64, locale: Locale) -> Vec<Row> {
    let Some(t) = c.threads.get(id) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(t.messages.len() + t.pending.len() + 8);
    let moderate = c.may(id, crate::roles::RoomAction::DeleteAny);
    let mut prev: Option<(&str, i64)> = None;
    let mut marked = false;
    let mut gap = t.gap.map(|(_, last)| last);
    for m in t.messages.values() {
        let at = m.sent_at_ms;
        let after_gap = gap.is_some_and(|last| m.seq > last);
        if after_gap {
            gap = None;
            out.push(Row::Gap);
        }
        let new_day = prev.is_none_or(|(_, p)| !time::same_day(p, at));
        if new_day {
            out.push(Row::Day(time::day_label(locale, now, at)));
        }
        // Before the first message after the read position (the position itself may be a
        // change, not a message).
        let marker = !marked && t.first_unread.is_some_and(|f| m.seq >= f);
        if marker {
            marked = true;
            out.push(Row::NewMessages);
        }
        let compact = !new_day
            && !marker
            && !after_gap
            && prev.is_some_and(|(s, p)| s == m.sender && at - p < GROUP_MS);
        out.push(Row::Message {
            seq: m.seq,
            mine: m.sender == c.me.username,
            compact,
            sender: m.sender.clone(),
            name: c.name_of(&m.sender).to_owned(),
            body: m.body.clone(),
            clock: time::clock(locale, at),
            highlight: t.focus == Some(m.seq),
            link: path_of(Some(&Place {
                conversation: id.clone(),
                seq: Some(m.seq),
            })),
            edited: m.edited_at_ms.is_some() && !m.deleted,
            deleted: m.deleted,
            removed: m.deleted_by.is_some(),
            moderate,
            reply: m.reply_to.as_ref().map(|q| {
                (
                    c.name_of(&q.sender).to_owned(),
                    plain_text(&q.text),
                    q.deleted,
                    path_of(Some(&Place {
                        conversation: id.clone(),
                        seq: Some(q.seq),
                    })),
                )
            }),
            reactions: m
                .reactions
                .iter()
                .map(|r| Chip {
                    emoji: r.emoji.clone(),
                    count: r.users.len(),
                    mine: r.users.contains(&c.me.username),
                    names: r
                        .users
                        .iter()
                        .map(|u| c.name_of(u))
                        .collect::<Vec<_>>()
                        .join(", "),
                })
                .collect(),
            mentions: m.mentions.clone(),
            mentions_me: c.mentions_me(m),
            files: m.attachments.clone(),
        });
        prev = Some((&m.sender, at));
    }
    for p in &t.pending {
        out.push(Row::Pending {
            client_msg_id: p.client_msg_id.clone(),
            body: p.body.clone(),
            files: p.attachments.clone(),
            failed: match &p.state {
                PendingState::Sending => None,
                PendingState::Failed(code) => Some(error_text(locale, *code)),
            },
        });
    }
    if let Some(seen) = c.seen_by(id) {
        out.push(Row::Seen {
            label: seen_label(locale, seen.direct, seen.names.len()),
            names: seen.names,
        });
    }
    out
}

#[component]
pub fn ConversationPane() -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let chat = ctx.chat;
    let active = Memo::new(move |_| chat.with(|c| c.active.clone()));
    let missing = Memo::new(move |_| chat.with(|c| c.missing.is_some()));
    view! {
        <main class="pane">
            {move || match active.get() {
                // An address of a conversation this user does not have: the same answer
                // whether it exists or not.
                None if missing.get() => {
                    view! {
                        <div class="pane-empty">
                            <button
                                type="button"
                                class="ghost back"
                                aria-label=move || t_string!(i18n, conversation.back)
                                on:click=move |_| chat.update(Chat::close)
                            >
                                "‹"
                            </button>
                            <h2>{t!(i18n, conversation.not_found)}</h2>
                            <p class="muted">{t!(i18n, conversation.not_found_why)}</p>
                        </div>
                    }
                        .into_any()
                }
                None => {
                    view! {
                        <div class="pane-empty">
                            <h2>{t!(i18n, conversation.none_open)}</h2>
                            <p class="muted">
                                {t!(i18n, conversation.none_open_hint, <b> = <strong />)}
                            </p>
                        </div>
                    }
                        .into_any()
                }
                Some(id) => view! { <Conversation id /> }.into_any(),
            }}
        </main>
    }
}

#[component]
fn Conversation(id: ConversationId) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let chat = ctx.chat;
    let summary = Memo::new({
        let id = id.clone();
        move |_| chat.with(|c| c.summary(&id).cloned())
    });
    let title = move || summary.get().map(|s| s.title).unwrap_or_default();
    let subtitle = Memo::new(move |_| {
        let s = summary.get()?;
        Some(match s.kind {
            ConversationKind::Direct => {
                let online = chat.with(|c| c.peer_online(&s)) == Some(true);
                let username = s.peer.map(|p| p.user.username).unwrap_or_default();
                let status = chat.with(|c| c.status_of(&username).map(str::to_owned));
                let line = if online {
                    t_string!(i18n, conversation.peer_online, username)
                } else {
                    t_string!(i18n, conversation.peer_offline, username)
                };
                match status {
                    Some(status) => format!("{line} · {status}"),
                    None => line,
                }
            }
            ConversationKind::Room => s
                .topic
                .unwrap_or_else(|| t_string!(i18n, conversation.room).to_owned()),
        })
    });
    let private = move || summary.with(|s| s.as_ref().is_some_and(|s| s.private));
    let dialog = RwSignal::new(crate::components::sidebar::Dialog::None);
    let online = summary.get_untracked().and_then(|s| s.peer).map(|_| {
        Signal::derive(move || {
            summary.with(|s| {
                s.as_ref()
                    .is_some_and(|s| chat.with(|c| c.peer_online(s)) == Some(true))
            })
        })
    });
    let avatar_key = summary
        .get_untracked()
        .and_then(|s| s.peer)
        .map_or_else(|| id.0.clone(), |p| p.user.username);
    let is_room =
        move || summary.with(|s| s.as_ref().is_some_and(|s| s.kind == ConversationKind::Room));
    // Follows the chat: someone starts, says so again, sends, or lapses (the browser
    // expires them when their time is up).
    let typing = {
        let id = id.clone();
        move || {
            let locale = i18n.get_locale();
            chat.with(|c| typing_line(locale, &c.typing_in(&id, crate::chat::time::now_ms())))
        }
    };
    provide_context(ComposeCtx(RwSignal::new(None)));
    provide_context(RefocusCtx(StoredValue::new(None)));
    FilesCtx::provide(id.clone());
    let leave = {
        let id = id.clone();
        move |_| {
            ctx.send_all([crate::protocol::ClientMsg::LeaveRoom {
                conversation_id: id.clone(),
            }])
        }
    };

    view! {
        <header class="pane-header">
            <button
                type="button"
                class="ghost back"
                aria-label=move || t_string!(i18n, conversation.back)
                on:click=move |_| chat.update(Chat::close)
            >
                "‹"
            </button>
            <Avatar name=Signal::derive(title) key=avatar_key online=online />
            <div class="pane-title">
                <h2>
                    <Show when=private>
                        <span
                            class="private-badge"
                            role="img"
                            aria-label=move || t_string!(i18n, room.private_badge)
                            title=move || t_string!(i18n, room.private_badge)
                        >
                            "🔒"
                        </span>
                    </Show>
                    {title}
                </h2>
                <p class="muted room-subtitle">{move || subtitle.get().unwrap_or_default()}</p>
            </div>
            <NotifySelect id=id.clone() />
            <Show when=is_room>
                <button
                    type="button"
                    class="ghost"
                    aria-label=move || t_string!(i18n, room.settings)
                    title=move || t_string!(i18n, room.settings)
                    on:click=move |_| dialog.set(crate::components::sidebar::Dialog::Room)
                >
                    "⚙"
                </button>
                <button type="button" class="ghost" on:click=leave.clone()>
                    {t!(i18n, conversation.leave)}
                </button>
            </Show>
        </header>
        {
            let id = id.clone();
            move || {
                (dialog.get() == crate::components::sidebar::Dialog::Room)
                    .then(|| view! { <crate::components::room::RoomDialog dialog id=id.clone() /> })
            }
        }
        <MessageLog id=id.clone() />
        <p class="typing muted" aria-live="polite">{typing}</p>
        <Show when=move || !ctx.conn.get().is_connected()>
            <p class="pane-banner">{t!(i18n, conversation.not_connected)}</p>
        </Show>
        <Composer title=Signal::derive(title) />
        <DropZone title=Signal::derive(title) />
        <ImageViewer />
    }
}

/// How this conversation notifies the user: every message, mentions only, or muted.
/// Stored on the server and followed by the user's other tabs.
#[component]
fn NotifySelect(id: ConversationId) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let level = Memo::new({
        let id = id.clone();
        move |_| {
            ctx.chat
                .with(|c| c.summary(&id).map(|s| s.notify).unwrap_or_default())
        }
    });
    let change = move |ev: leptos::ev::Event| {
        let Some(chosen) = NotifyLevel::parse(&event_target_value(&ev)) else {
            return;
        };
        let id = id.clone();
        ctx.act(move |c| c.set_notify(&id, chosen));
    };
    // On a phone the menu shows as its icon alone (see the style sheet).
    let icon = move || match level.get() {
        NotifyLevel::All => "🔔",
        NotifyLevel::Mentions => "@",
        NotifyLevel::Mute => "🔕",
    };
    view! {
        <span class="notify">
            <span class="notify-icon" aria-hidden="true">
                {icon}
            </span>
            <select
                class="notify-level"
                aria-label=move || t_string!(i18n, notify.label)
                title=move || t_string!(i18n, notify.label)
                prop:value=move || level.get().as_str()
                on:change=change
            >
                {NotifyLevel::ALL
                    .into_iter()
                    .map(|l| {
                        let label = move || match l {
                            NotifyLevel::All => t_string!(i18n, notify.all),
                            NotifyLevel::Mentions => t_string!(i18n, notify.mentions),
                            NotifyLevel::Mute => t_string!(i18n, notify.mute),
                        };
                        view! {
                            <option value=l.as_str() selected=move || level.get() == l>
                                {label}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
        </span>
    }
}

/// What the log's scrolling follows: the loaded messages' range, the pending count, whether
/// the log is ready, and the message an address named.
#[derive(Clone, Copy, PartialEq)]
struct LogShape {
    first: Option<u64>,
    last: Option<u64>,
    pending: usize,
    loaded: bool,
    focus: Option<u64>,
}

#[component]
fn MessageLog(id: ConversationId) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let chat = ctx.chat;
    let now = ctx.now;
    let log = NodeRef::<html::Div>::new();
    let rows = Memo::new({
        let id = id.clone();
        move |_| {
            let (now, locale) = (now.get(), i18n.get_locale());
            chat.with(|c| rows(c, &id, now, locale))
        }
    });
    let status = Memo::new({
        let id = id.clone();
        move |_| {
            chat.with(|c| {
                c.threads.get(&id).map(|t| {
                    // Loaded: the newest page is in and, when opening at the first unread
                    // message (or an address's), the pages back to it.
                    let loaded = t.loaded && !t.reaching_back();
                    (loaded, t.has_more, t.loading_older, t.focus)
                })
            })
        }
    });
    // The log follows new messages while the user is at the bottom.
    let pinned = RwSignal::new(true);
    // Messages that arrived while scrolled up ("Jump to latest" shows how many).
    let unseen = RwSignal::new(0_u32);
    // Distance from the bottom to restore once an older page is in (no jump).
    let anchor = StoredValue::new(None::<i32>);

    let scroll_to_bottom = move || {
        if let Some(el) = log.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
        pinned.set(true);
        unseen.set(0);
    };

    let refocus = expect_context::<RefocusCtx>().0;
    // Between rows changing for a first paint and the scroll to where it opens: the
    // browser's own scroll adjustments then say nothing about where the reader is.
    let settling = StoredValue::new(false);
    // The gap after a page opened far back loads a page at a time as it comes near.
    let load_gap_if_near = move |el: &web_sys::HtmlElement| {
        let near = el
            .query_selector("li.gap")
            .ok()
            .flatten()
            .and_then(|g| g.dyn_into::<web_sys::HtmlElement>().ok())
            .is_some_and(|g| {
                let (top, bottom) = (el.scroll_top(), el.scroll_top() + el.client_height());
                g.offset_top() < bottom + LOAD_OLDER_PX
                    && g.offset_top() + g.offset_height() > top - LOAD_OLDER_PX
            });
        if near {
            ctx.act(Chat::load_gap);
        }
    };

    let on_scroll = move |_| {
        let Some(el) = log.get_untracked() else {
            return;
        };
        if !settling.get_value() {
            load_gap_if_near(&el);
        }
        let from_bottom = el.scroll_height() - el.scroll_top() - el.client_height();
        let at_bottom = from_bottom <= PINNED_SLACK_PX;
        pinned.set(at_bottom);
        if at_bottom {
            unseen.set(0);
        }
        if el.scroll_top() < LOAD_OLDER_PX {
            let mut asked = false;
            ctx.act(|c| {
                let req = c.load_older();
                asked = req.is_some();
                req
            });
            if asked {
                anchor.set_value(Some(el.scroll_height() - el.scroll_top()));
            }
        }
    };

    // After the rows change, once the DOM has them: keep the view still when older messages
    // came in above, follow the bottom when pinned, count what arrived below otherwise.
    Effect::new(move |prev: Option<LogShape>| {
        let (first, last, pending) = rows.with(|r| {
            let mut seqs = r.iter().filter_map(|row| match row {
                Row::Message { seq, .. } => Some(*seq),
                _ => None,
            });
            let first = seqs.next();
            let last = seqs.next_back().or(first);
            let pending = r
                .iter()
                .filter(|row| matches!(row, Row::Pending { .. }))
                .count();
            (first, last, pending)
        });
        let (loaded, focus) = status.get().map_or((false, None), |s| (s.0, s.3));
        let key = LogShape {
            first,
            last,
            pending,
            loaded,
            focus,
        };
        // Also when an address names another message of the open conversation.
        let first_paint = prev.is_none_or(|p| !p.loaded || p.focus != focus) && loaded;
        if first_paint {
            settling.set_value(true);
        }
        let grew_above = prev.is_some_and(|p| first < p.first);
        let grew_below = prev.is_some_and(|p| last > p.last);
        let sent = prev.is_some_and(|p| pending > p.pending);
        request_animation_frame(move || {
            // The conversation may have been closed (or another opened) since.
            let Some(el) = log.try_get_untracked().flatten() else {
                return;
            };
            // Only once the older page is in: its request alone changes nothing below.
            if grew_above {
                if let Some(a) = anchor.try_get_value().flatten() {
                    anchor.set_value(None);
                    el.set_scroll_top(el.scroll_height() - a);
                    settling.try_set_value(false);
                    return;
                }
            }
            if first_paint {
                // Open at the address's message, else at the first unread message if
                // there is one, else at the bottom.
                let target = match focus {
                    Some(seq) => format!("li[data-seq=\"{seq}\"]"),
                    None => ".new-messages".to_owned(),
                };
                match el.query_selector(&target).ok().flatten() {
                    Some(marker) => {
                        // The marker's offset parent is the log (`position: relative`).
                        let top = marker
                            .dyn_ref::<web_sys::HtmlElement>()
                            .map_or(0, web_sys::HtmlElement::offset_top);
                        // A message named by an address a third of the way down; the
                        // "New messages" line at the top.
                        let above = if focus.is_some() {
                            el.client_height() / 3
                        } else {
                            8
                        };
                        el.set_scroll_top(top - above);
                    }
                    None => el.set_scroll_top(el.scroll_height()),
                }
                let from_bottom = el.scroll_height() - el.scroll_top() - el.client_height();
                pinned.try_set(from_bottom <= PINNED_SLACK_PX);
                settling.try_set_value(false);
            } else if sent || pinned.get_untracked() {
                el.set_scroll_top(el.scroll_height());
                pinned.try_set(true);
            } else if grew_below {
                unseen.try_update(|n| *n += 1);
            }
            // Also when the gap is in sight without scrolling (a short page around).
            load_gap_if_near(&el);
            refocus_redrawn(&el, refocus);
        });
        key
    });

    view! {
        <div class="log-wrap">
            // In the tab order once; ArrowUp and ArrowDown then move the focus from message to
            // message (the focused one shows its toolbar, which Tab enters).
            <div
                class="log"
                role="log"
                tabindex="0"
                aria-label=move || t_string!(i18n, conversation.messages)
                aria-busy=move || status.get().is_none_or(|s| !s.0).then_some("true")
                node_ref=log
                on:scroll=on_scroll
                on:keydown=step_through_messages
            >
                {move || match status.get() {
                    Some((true, false, ..)) => {
                        view! { <p class="log-start">{t!(i18n, conversation.beginning)}</p> }
                            .into_any()
                    }
                    Some((true, true, true, _)) | None | Some((false, ..)) => {
                        view! { <p class="log-start">{t!(i18n, conversation.loading)}</p> }
                            .into_any()
                    }
                    Some((true, true, false, _)) => {
                        view! { <p class="log-start">{t!(i18n, conversation.scroll_up)}</p> }
                            .into_any()
                    }
                }}
                <ol class="messages">
                    <For each=move || rows.get() key=Row::key let:row>
                        <RowView row />
                    </For>
                </ol>
            </div>
            // Whenever the newest messages are out of sight: scrolled up, opened at the
            // first unread message, or new ones arrived below.
            <Show when=move || !pinned.get()>
                <button type="button" class="jump" on:click=move |_| scroll_to_bottom()>
                    {t!(i18n, conversation.jump)}
                    <span class="jump-count">
                        {move || match unseen.get() {
                            0 => String::new(),
                            1 => t_string!(i18n, conversation.one_new).to_owned(),
                            n => t_string!(i18n, conversation.n_new, n),
                        }}
                    </span>
                </button>
            </Show>
        </div>
    }
}

/// Puts the focus back into the toolbar of the message [`RefocusCtx`] names once that
/// message was drawn anew and the focus was lost with the old drawing.
fn refocus_redrawn(log: &web_sys::HtmlElement, refocus: StoredValue<Option<u64>>) {
    let Some(seq) = refocus.try_get_value().flatten() else {
        return;
    };
    let lost = document()
        .active_element()
        .is_none_or(|a| a.tag_name().eq_ignore_ascii_case("body"));
    if !lost {
        return;
    }
    refocus.try_set_value(None);
    let row = log
        .query_selector(&format!("li.msg[data-seq=\"{seq}\"]"))
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(row) = row {
        focus_toolbar(&row);
    }
}

/// Focuses a message's row first (its toolbar shows while the focus is within it), then
/// the toolbar's first button.
fn focus_toolbar(row: &web_sys::HtmlElement) {
    let _ = row.focus();
    focus_first(row, ".msg-actions button");
}

/// Focuses the first element under `root` that `selector` matches, if there is one.
fn focus_first(root: &web_sys::Element, selector: &str) {
    if let Some(first) = root
        .query_selector(selector)
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = first.focus();
    }
}

/// ArrowUp and ArrowDown on the log or on a message: the focus moves to the message above
/// or below (ArrowUp from the log itself: the newest). Keys typed in the toolbar's controls
/// are theirs.
#[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
fn step_through_messages(ev: ev::KeyboardEvent) {
    #[cfg(feature = "hydrate")]
    {
        let step: i32 = match ev.key().as_str() {
            "ArrowUp" => -1,
            "ArrowDown" => 1,
            _ => return,
        };
        let (Some(log), Some(target)) = (
            ev.current_target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok()),
            ev.target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok()),
        ) else {
            return;
        };
        if target != log && !target.class_list().contains("msg") {
            return;
        }
        let (messages, at) = super::focus_order(log.query_selector_all("li.msg"));
        let next = match at {
            None if step < 0 => messages.last(),
            None => messages.first(),
            Some(i) => usize::try_from(i as i64 + i64::from(step))
                .ok()
                .and_then(|j| messages.get(j)),
        };
        if let Some(next) = next {
            ev.prevent_default();
            let _ = next.focus();
        }
    }
}

/// The toolbar a message shows on hover, keyboard focus or a tap: react, reply, edit and
/// delete (one's own), copy its link.
#[component]
fn MessageActions(
    seq: u64,
    mine: bool,
    /// The user moderates the room: they may delete others' messages too.
    moderate: bool,
    deleted: bool,
    name: String,
    text: String,
    link: String,
) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let compose = expect_context::<ComposeCtx>().0;
    let copied = RwSignal::new(false);
    let picking = RwSignal::new(false);
    let confirming = RwSignal::new(false);
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        let url = format!("{}{link}", window().location().origin().unwrap_or_default());
        #[cfg(not(feature = "hydrate"))]
        let url = link.clone();
        copy_to_clipboard(&url, copied);
    };
    let reply = move |_| {
        compose.set(Some(Compose::Reply {
            seq,
            name: name.clone(),
            text: text.clone(),
        }))
    };
    let edit = move |_| compose.set(Some(Compose::Edit { seq }));
    let delete = move |_| {
        confirming.set(false);
        ctx.act(move |c| c.delete(seq));
    };
    let bar = NodeRef::<html::Div>::new();
    // The keyboard's way back when the picker or the confirmation closes by a key: the
    // toolbar's first button, focused before what had the focus goes (the toolbar shows
    // only while something in its message has the focus).
    let refocus = move || {
        let Some(row) = bar
            .try_get_untracked()
            .flatten()
            .and_then(|b| b.parent_element())
            .and_then(|p| p.dyn_into::<web_sys::HtmlElement>().ok())
        else {
            return;
        };
        // The message itself until the toolbar is drawn without the picker or the
        // confirmation, then the toolbar's first button.
        let _ = row.focus();
        request_animation_frame(move || focus_toolbar(&row));
    };
    let redrawn = expect_context::<RefocusCtx>().0;
    // Escape closes the picker or the confirmation wherever the focus is in the toolbar.
    let on_keydown = move |ev: ev::KeyboardEvent| {
        if ev.key() == "Escape"
            && !ev.is_composing()
            && (picking.get_untracked() || confirming.get_untracked())
        {
            ev.prevent_default();
            ev.stop_propagation();
            refocus();
            picking.set(false);
            confirming.set(false);
        }
    };
    let cancel = NodeRef::<html::Button>::new();
    Effect::new(move |_| {
        if let Some(c) = cancel.get() {
            let _ = c.focus();
        }
    });
    view! {
        <div
            class="msg-actions"
            class:open=move || picking.get() || confirming.get()
            node_ref=bar
            on:keydown=on_keydown
        >
            {move || {
                if confirming.get() {
                    view! {
                        <span class="confirm">{t!(i18n, actions.confirm_delete)}</span>
                        <button type="button" class="ghost danger" on:click=delete>
                            {t!(i18n, actions.delete)}
                        </button>
                        <button
                            type="button"
                            class="ghost"
                            node_ref=cancel
                            on:click=move |ev: ev::MouseEvent| {
                                // Activated by a key (no pointer): the focus stays in the bar.
                                if ev.detail() == 0 {
                                    refocus();
                                }
                                confirming.set(false);
                            }
                        >
                            {t!(i18n, actions.cancel)}
                        </button>
                    }
                        .into_any()
                } else {
                    ().into_any()
                }
            }}
            <Show when=move || !deleted && !confirming.get()>
                <button
                    type="button"
                    class="ghost"
                    aria-label=move || t_string!(i18n, actions.react)
                    aria-expanded=move || picking.get().to_string()
                    on:click=move |_| picking.update(|p| *p = !*p)
                >
                    "☺+"
                </button>
                <button type="button" class="ghost" on:click=reply.clone()>
                    {t!(i18n, actions.reply)}
                </button>
                <Show when=move || mine>
                    <button type="button" class="ghost" on:click=edit>
                        {t!(i18n, actions.edit)}
                    </button>
                </Show>
                <Show when=move || mine || moderate>
                    <button type="button" class="ghost" on:click=move |_| confirming.set(true)>
                        {t!(i18n, actions.delete)}
                    </button>
                </Show>
            </Show>
            <Show when=move || !confirming.get()>
                <button
                    type="button"
                    class="ghost"
                    aria-label=move || t_string!(i18n, actions.copy_link_label)
                    on:click=copy.clone()
                >
                    {move || {
                        if copied.get() {
                            t_string!(i18n, actions.link_copied)
                        } else {
                            t_string!(i18n, actions.copy_link)
                        }
                    }}
                </button>
            </Show>
            <Show when=move || picking.get()>
                <EmojiPicker
                    seq
                    on_done=Callback::new(move |by_key: bool| {
                        if by_key {
                            refocus();
                            redrawn.set_value(Some(seq));
                        }
                        picking.set(false);
                    })
                />
            </Show>
        </div>
    }
}

/// Common emoji at a click, and a field for any other. Opens with the focus on the first
/// emoji; `on_done` is told whether it closed by a key (Escape is the toolbar's).
#[component]
fn EmojiPicker(seq: u64, on_done: Callback<bool>) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let typed = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<Invalid>);
    let react = move |e: &str, by_key: bool| match Emoji::parse(e) {
        Ok(emoji) => {
            ctx.act(move |c| c.toggle_reaction(seq, emoji));
            on_done.run(by_key);
        }
        Err(e) => problem.set(Some(e)),
    };
    let group = NodeRef::<html::Div>::new();
    Effect::new(move |_| {
        if let Some(group) = group.get() {
            focus_first(&group, "button");
        }
    });
    view! {
        <div
            class="emoji-picker"
            role="group"
            aria-label=move || t_string!(i18n, actions.pick_reaction)
            node_ref=group
        >
            {QUICK_EMOJI
                .iter()
                .map(|&e| {
                    view! {
                        <button
                            type="button"
                            class="ghost emoji"
                            aria-label=move || t_string!(i18n, actions.react_with, emoji = e)
                            // A click by a key has no pointer (`detail` 0).
                            on:click=move |ev: ev::MouseEvent| react(e, ev.detail() == 0)
                        >
                            {e}
                        </button>
                    }
                })
                .collect_view()}
            <input
                type="text"
                class="emoji-input"
                aria-label=move || t_string!(i18n, actions.any_emoji)
                placeholder=move || t_string!(i18n, actions.any_emoji)
                maxlength="16"
                prop:value=move || typed.get()
                on:input=move |ev| {
                    typed.set(event_target_value(&ev));
                    problem.set(None);
                }
                on:keydown=move |ev: ev::KeyboardEvent| {
                    if ev.key() == "Enter" && !ev.is_composing() {
                        ev.prevent_default();
                        react(typed.get_untracked().trim(), true);
                    }
                }
            />
            {move || {
                problem
                    .get()
                    .map(|e| {
                        view! {
                            <p role="alert" class="error">
                                {move || invalid_text(i18n.get_locale(), &e)}
                            </p>
                        }
                    })
            }}
        </div>
    }
}

/// The reactions under a message; a click adds the user's or takes it off.
#[component]
fn Reactions(seq: u64, chips: Vec<Chip>) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    view! {
        <div class="reactions">
            {chips
                .into_iter()
                .map(|chip| {
                    let emoji = chip.emoji.clone();
                    let toggle = move |_| {
                        if let Ok(e) = Emoji::parse(&emoji) {
                            ctx.act(move |c| c.toggle_reaction(seq, e));
                        }
                    };
                    view! {
                        <button
                            type="button"
                            class="chip"
                            class:mine=chip.mine
                            aria-pressed=chip.mine.to_string()
                            aria-label={
                                let (emoji, count, names) =
                                    (chip.emoji.clone(), chip.count, chip.names.clone());
                                move || {
                                    t_string!(
                                        i18n,
                                        actions.reaction_label,
                                        emoji = emoji.clone(),
                                        count,
                                        names = names.clone()
                                    )
                                }
                            }
                            title=chip.names.clone()
                            on:click=toggle
                        >
                            <span class="chip-emoji">{chip.emoji.clone()}</span>
                            <span class="chip-count">{chip.count}</span>
                        </button>
                    }
                })
                .collect_view()}
        </div>
    }
}

#[component]
fn RowView(row: Row) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    match row {
        Row::Day(label) => view! {
            // The separator inside the item: a list holds only list items.
            <li class="day">
                <span role="separator" aria-label=label.clone()>{label.clone()}</span>
            </li>
        }
        .into_any(),
        Row::Seen { label, names } => view! {
            <li class="seen" title=names.join(", ")>
                {label}
            </li>
        }
        .into_any(),
        // Loaded as it scrolls into sight (see `MessageLog`); the button is for the keyboard.
        Row::Gap => view! {
            <li class="gap">
                <button type="button" class="ghost" on:click=move |_| ctx.act(Chat::load_gap)>
                    {t!(i18n, conversation.load_newer)}
                </button>
            </li>
        }
        .into_any(),
        Row::NewMessages => view! {
            <li class="new-messages">
                <span role="separator" aria-label=move || t_string!(i18n, conversation.new_messages)>
                    {t!(i18n, conversation.new_messages)}
                </span>
            </li>
        }
        .into_any(),
        Row::Message {
            seq,
            mine,
            compact,
            sender,
            name,
            body,
            clock,
            highlight,
            link,
            edited,
            deleted,
            removed,
            moderate,
            reply,
            reactions,
            mentions,
            mentions_me,
            files,
        } => {
            let quote_text = crate::domain::preview(&plain_text(&body), 100);
            let me = ctx.chat.with_untracked(|c| c.me.username.clone());
            let edited_mark =
                edited.then(|| {
                    view! { <span class="edited">" " {t!(i18n, conversation.edited)}</span> }
                        .into_any()
                });
            let text = formatted(&body, &mentions, &me, edited_mark);
            view! {
                <li
                    class="msg"
                    class:mine=mine
                    class:compact=compact
                    class:highlight=highlight
                    class:deleted=deleted
                    class:mentions-me=mentions_me
                    data-seq=seq
                    data-state="sent"
                    // A tap (or a long press) focuses the message and shows its toolbar.
                    tabindex="-1"
                >
                    <MessageActions
                        seq
                        mine
                        moderate
                        deleted
                        name=name.clone()
                        text=quote_text
                        link
                    />
                    <span class="msg-gutter">
                        {(!mine && !compact)
                            .then(|| {
                                view! { <Avatar name=Signal::stored(name.clone()) key=sender small=true person=true /> }
                            })}
                    </span>
                    <div class="msg-main">
                        {(!compact)
                            .then(|| {
                                view! {
                                    <div class="msg-meta">
                                        <span class="msg-author">
                                            {if mine {
                                                t_string!(i18n, conversation.you).to_owned()
                                            } else {
                                                name.clone()
                                            }}
                                        </span>
                                        <time>{clock.clone()}</time>
                                    </div>
                                }
                            })}
                        {reply
                            .map(|(who, text, gone, href)| {
                                let label = t_string!(i18n, conversation.reply_to, who = who.clone());
                                // The chat goes to the original itself (its address follows),
                                // loading older pages back to it.
                                let place = crate::chat::address::place_in(&href);
                                let go = move |ev: ev::MouseEvent| {
                                    if let Some(place) = place.clone() {
                                        ev.prevent_default();
                                        ctx.act(move |c| c.go_to(place));
                                    }
                                };
                                view! {
                                    <a class="quote" href=href aria-label=label on:click=go>
                                        <strong>{who}</strong>
                                        {if gone {
                                            view! { <em>{t!(i18n, conversation.deleted)}</em> }.into_any()
                                        } else {
                                            view! { <span>{text}</span> }.into_any()
                                        }}
                                    </a>
                                }
                            })}
                        {if deleted {
                            view! {
                                <div class="bubble deleted" title=clock>
                                    {if removed {
                                        t!(i18n, conversation.removed_by_admin).into_any()
                                    } else {
                                        t!(i18n, conversation.deleted).into_any()
                                    }}
                                </div>
                            }
                                .into_any()
                        } else if body.is_empty() {
                            ().into_any()
                        } else {
                            view! {
                                <div class="bubble" title=clock>
                                    {text}
                                </div>
                            }
                                .into_any()
                        }}
                        {(!files.is_empty())
                            .then(|| view! { <div class="msg-files"><MessageFiles files /></div> })}
                        {(!reactions.is_empty())
                            .then(|| view! { <Reactions seq chips=reactions /> })}
                    </div>
                </li>
            }
            .into_any()
        }
        Row::Pending {
            client_msg_id,
            body,
            files,
            failed,
        } => {
            let is_failed = failed.is_some();
            let state = if is_failed { "failed" } else { "pending" };
            view! {
                <li class="msg mine" class:failed=is_failed data-state=state>
                    <span class="msg-gutter"></span>
                    <div class="msg-main">
                        {(!body.is_empty())
                            .then(|| view! { <div class="bubble">{formatted(&body, &[], "", None)}</div> })}
                        {(!files.is_empty())
                            .then(|| view! { <div class="msg-files"><MessageFiles files /></div> })}
                        {match failed {
                            None => {
                                view! { <p class="msg-status">{t!(i18n, conversation.sending)}</p> }
                                    .into_any()
                            }
                            Some(reason) => {
                                let retry = move |_| {
                                    let id = client_msg_id.clone();
                                    ctx.act(move |c| c.retry(&id));
                                };
                                view! {
                                    <p class="msg-status error">
                                        {t!(i18n, conversation.not_sent, reason = reason.clone())}
                                        " "
                                        <button type="button" class="link" on:click=retry>
                                            {t!(i18n, conversation.retry)}
                                        </button>
                                    </p>
                                }
                                    .into_any()
                            }
                        }}
                    </div>
                </li>
            }
            .into_any()
        }
    }
}

/// Members offered while an `@` mention is typed.
const MENTION_CHOICES: usize = 8;

#[component]
fn Composer(title: Signal<String>) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let compose = expect_context::<ComposeCtx>().0;
    let draft = RwSignal::new(String::new());
    let problem = Memo::new(move |_| {
        draft.with(|d| {
            if d.trim().is_empty() {
                return None;
            }
            MessageBody::parse(d).err()
        })
    });
    let files = FilesCtx::get();
    let editing = move || matches!(compose.get(), Some(Compose::Edit { .. }));
    let has_text = move || draft.with(|d| !d.trim().is_empty());
    // A new message needs text or files, and every file picked uploaded (one still on its
    // way: the message goes when it is up, see `queued`).
    let sendable = move || {
        if problem.get().is_some() {
            return false;
        }
        if editing() {
            return has_text();
        }
        files.uploads.with(|u| {
            u.busy()
                || u.ready()
                    .is_some_and(|ready| has_text() || !ready.is_empty())
        })
    };
    let queued = RwSignal::new(false);
    let textarea = NodeRef::<html::Textarea>::new();
    // Chosen in a dialog: this box takes the focus once its conversation is the open one
    // (the box of the conversation open before leaves it to the new one).
    let mine = ctx.chat.with_untracked(|c| c.active.clone());
    Effect::new(move |_| {
        let wanted =
            ctx.focus_composer.get() && ctx.chat.with(|c| !c.is_opening() && c.active == mine);
        if let (true, Some(t)) = (wanted, textarea.get()) {
            let _ = t.focus();
            ctx.focus_composer.set(false);
        }
    });
    let focus = move || {
        if let Some(t) = textarea.get_untracked() {
            let _ = t.focus();
        }
    };
    // Completing an `@` mention: where the caret is (a byte offset into the draft), the
    // mention typed before it, the members offered, which one is picked, and whether Esc
    // put the offer away (until the next keystroke).
    let caret = RwSignal::new(0_usize);
    let picked = RwSignal::new(0_usize);
    let dismissed = RwSignal::new(false);
    let read_caret = move || {
        if let Some(t) = textarea.get_untracked() {
            let units = t.selection_start().ok().flatten().unwrap_or(0) as usize;
            caret.set(draft.with_untracked(|d| byte_at_utf16(d, units)));
        }
    };
    let typed_mention = Memo::new(move |_| {
        let at = caret.get();
        draft.with(|d| {
            let before = d.get(..at.min(d.len()))?;
            crate::mention::typing_mention(before).map(|(start, typed)| (start, typed.to_owned()))
        })
    });
    // Starting a mention asks for the members again: people may have joined since.
    Effect::new(move |was: Option<bool>| {
        let typing = typed_mention.with(Option::is_some);
        if typing && was == Some(false) {
            ctx.act(Chat::refresh_members);
        }
        typing
    });
    let choices = Memo::new(move |_| match (typed_mention.get(), dismissed.get()) {
        (Some((_, typed)), false) => ctx.chat.with(|c| {
            c.active
                .as_ref()
                .map(|id| c.mention_candidates(id, &typed, MENTION_CHOICES))
                .unwrap_or_default()
        }),
        _ => Vec::new(),
    });
    let complete = move |username: &str| {
        let Some((at, _)) = typed_mention.get_untracked() else {
            return;
        };
        let (text, after) = draft
            .with_untracked(|d| crate::mention::complete(d, at, caret.get_untracked(), username));
        if let Some(t) = textarea.get_untracked() {
            t.set_value(&text);
            let units = text[..after].encode_utf16().count() as u32;
            let _ = t.set_selection_range(units, units);
            let _ = t.focus();
        }
        draft.set(text);
        caret.set(after);
        picked.set(0);
    };
    // Editing starts from the message's text; leaving the edit empties the box again.
    Effect::new(move |was_editing: Option<bool>| {
        let mode = compose.get();
        let editing = matches!(mode, Some(Compose::Edit { .. }));
        if let Some(Compose::Edit { seq }) = mode {
            let text = ctx
                .chat
                .with_untracked(|c| c.own_message(seq).map(|m| m.body.clone()));
            draft.set(text.unwrap_or_default());
        } else if was_editing == Some(true) {
            draft.set(String::new());
        }
        if mode.is_some() {
            focus();
        }
        editing
    });

    let send = move || {
        let text = draft.get_untracked();
        let body = if text.trim().is_empty() {
            None
        } else {
            match MessageBody::parse(&text) {
                Ok(body) => Some(body),
                Err(_) => return,
            }
        };
        match (compose.get_untracked(), body) {
            (Some(Compose::Edit { seq }), Some(body)) => ctx.act(move |c| c.edit(seq, body)),
            (Some(Compose::Edit { .. }), None) => return,
            (mode, body) => {
                if files.uploads.with_untracked(|u| u.busy()) {
                    queued.set(true);
                    return;
                }
                let Some(attachments) = files.uploads.with_untracked(|u| u.ready()) else {
                    return;
                };
                if body.is_none() && attachments.is_empty() {
                    return;
                }
                let Ok(id) = ClientMsgId::parse(&new_client_msg_id()) else {
                    return;
                };
                let reply_to = match mode {
                    Some(Compose::Reply { seq, .. }) => Some(seq),
                    _ => None,
                };
                ctx.act(move |c| c.send(body, attachments, id, reply_to));
                files.sent();
            }
        }
        queued.set(false);
        compose.set(None);
        draft.set(String::new());
        if let Some(t) = textarea.get_untracked() {
            t.set_value("");
            let _ = t.focus();
        }
    };

    // Sent while files were uploading: goes once they are up (not if one failed).
    Effect::new(move |_| {
        let (busy, ready) = files.uploads.with(|u| (u.busy(), u.ready().is_some()));
        if queued.get() && !busy {
            if ready {
                send();
            } else {
                queued.set(false);
            }
        }
    });

    view! {
        <form
            class="composer"
            on:submit=move |ev: ev::SubmitEvent| {
                ev.prevent_default();
                send();
            }
        >
            {move || {
                compose
                    .get()
                    .map(|mode| {
                        let label = match mode {
                            Compose::Reply { name, text, .. } => {
                                view! {
                                    <span>{t!(i18n, composer.replying_to, name, <b> = <strong />)}</span>
                                    <span class="compose-quote">{text}</span>
                                }
                                    .into_any()
                            }
                            Compose::Edit { .. } => {
                                view! {
                                    <span>
                                        <strong>{t!(i18n, composer.editing)}</strong>
                                        " · "
                                        {t!(i18n, composer.esc_to_cancel)}
                                    </span>
                                }
                                    .into_any()
                            }
                        };
                        view! {
                            <div class="compose-mode">
                                {label}
                                <button
                                    type="button"
                                    class="ghost"
                                    aria-label=move || t_string!(i18n, actions.cancel)
                                    on:click=move |_| compose.set(None)
                                >
                                    "×"
                                </button>
                            </div>
                        }
                    })
            }}
            {move || {
                let offered = choices.get();
                (!offered.is_empty())
                    .then(|| {
                        view! {
                            <ul
                                class="mention-choices"
                                id="mention-choices"
                                role="listbox"
                                aria-label=move || t_string!(i18n, composer.mention_list)
                            >
                                {offered
                                    .into_iter()
                                    .enumerate()
                                    .map(|(i, u)| {
                                        let username = u.username.clone();
                                        view! {
                                            <li
                                                role="option"
                                                id=format!("mention-choice-{i}")
                                                class:picked=move || picked.get() == i
                                                aria-selected=move || (picked.get() == i).to_string()
                                                // Before the box loses focus.
                                                on:mousedown=move |ev: ev::MouseEvent| {
                                                    ev.prevent_default();
                                                    complete(&username);
                                                }
                                            >
                                                <strong>{u.display_name}</strong>
                                                <span class="muted">"@" {u.username}</span>
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                    })
            }}
            <UploadTray />
            <Show when=move || queued.get()>
                <p class="muted composer-note" role="status">{t!(i18n, files.waiting)}</p>
            </Show>
            <AttachButton />
            <textarea
                node_ref=textarea
                aria-label=move || t_string!(i18n, composer.label)
                rows="1"
                placeholder=move || t_string!(i18n, composer.placeholder, title = title.get())
                prop:value=move || draft.get()
                // A text box that offers completions (ARIA 1.2 allows these on a textbox;
                // `aria-expanded` it does not).
                aria-autocomplete="list"
                aria-controls=move || {
                    (!choices.with(Vec::is_empty)).then_some("mention-choices")
                }
                aria-activedescendant=move || {
                    (!choices.with(Vec::is_empty))
                        .then(|| format!("mention-choice-{}", picked.get()))
                }
                on:input=move |ev| {
                    draft.set(event_target_value(&ev));
                    read_caret();
                    dismissed.set(false);
                    picked.set(0);
                    let now = crate::chat::time::now_ms();
                    ctx.act(move |c| c.typing_request(now));
                }
                on:click=move |_| read_caret()
                on:paste=move |ev: ev::ClipboardEvent| {
                    #[cfg(feature = "hydrate")]
                    if crate::components::files::paste(files, &ev) {
                        ev.prevent_default();
                    }
                    #[cfg(not(feature = "hydrate"))]
                    let _ = ev;
                }
                on:keyup=move |ev: ev::KeyboardEvent| {
                    if matches!(ev.key().as_str(), "ArrowLeft" | "ArrowRight" | "Home" | "End") {
                        read_caret();
                    }
                }
                on:keydown=move |ev: ev::KeyboardEvent| {
                    let offered = choices.get_untracked();
                    if !offered.is_empty() && !ev.is_composing() {
                        let n = offered.len();
                        let handled = match ev.key().as_str() {
                            "ArrowDown" => {
                                picked.update(|p| *p = (*p + 1) % n);
                                true
                            }
                            "ArrowUp" => {
                                picked.update(|p| *p = (*p + n - 1) % n);
                                true
                            }
                            "Enter" | "Tab" => {
                                let i = picked.get_untracked().min(n - 1);
                                complete(&offered[i].username);
                                true
                            }
                            "Escape" => {
                                dismissed.set(true);
                                true
                            }
                            _ => false,
                        };
                        if handled {
                            ev.prevent_default();
                            return;
                        }
                    }
                    // Enter sends; Shift+Enter (and Enter while composing text with an IME)
                    // is a new line.
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        send();
                    } else if ev.key() == "Escape" && compose.get_untracked().is_some() {
                        ev.prevent_default();
                        compose.set(None);
                    } else if ev.key() == "ArrowUp"
                        && draft.with_untracked(String::is_empty)
                        && compose.get_untracked().is_none()
                    {
                        // As in Slack: ArrowUp in an empty box edits one's last message.
                        let last = ctx.chat.with_untracked(|c| c.last_own_message().map(|m| m.seq));
                        if let Some(seq) = last {
                            ev.prevent_default();
                            compose.set(Some(Compose::Edit { seq }));
                        }
                    }
                }
            ></textarea>
            <button type="submit" disabled=move || !sendable()>
                {move || {
                    if editing() {
                        t_string!(i18n, composer.save)
                    } else {
                        t_string!(i18n, composer.send)
                    }
                }}
            </button>
            {move || {
                problem
                    .get()
                    .map(|e| {
                        view! {
                            <p role="alert" class="error composer-error">
                                {move || invalid_text(i18n.get_locale(), &e)}
                            </p>
                        }
                    })
            }}
        </form>
    }
}

/// The byte offset in `text` of the UTF-16 offset `units` (how the browser counts a
/// caret), at a character boundary.
fn byte_at_utf16(text: &str, units: usize) -> usize {
    let mut seen = 0;
    for (i, c) in text.char_indices() {
        if seen >= units {
            return i;
        }
        seen += c.len_utf16();
    }
    text.len()
}

/// A fresh id for a message, unique enough per user (time plus 64 random bits).
fn new_client_msg_id() -> String {
    #[cfg(feature = "hydrate")]
    {
        let r = || (web_sys::js_sys::Math::random() * f64::from(u32::MAX)) as u32;
        format!("{:x}-{:08x}{:08x}", time::now_ms(), r(), r())
    }
    #[cfg(not(feature = "hydrate"))]
    String::new()
}
