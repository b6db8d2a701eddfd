//! The search box at the top of the sidebar and what it finds: the user's conversations
//! by name, people by name or username, and messages by the words in them (Chinese
//! included), each message with its conversation, sender, time and the words marked. Ctrl+K
//! (⌘K) or "/" puts the focus in the box (on a phone, going back to the list first); Esc
//! empties it. A message opens its conversation at that message.

use leptos::{html, prelude::*};

use crate::chat::address::Place;
use crate::chat::state::Found;
use crate::chat::state::SearchProblem;
use crate::chat::{time, Chat};
use crate::components::ChatCtx;
use crate::domain::Username;
use crate::i18n::{t, t_string, td_string, use_i18n, Locale};
use crate::protocol::{ClientMsg, ConversationId, RoomInfo, SearchHit, UserInfo};
use crate::search::{snippet, Query, QueryError};

/// How long typing pauses before the search is asked (the server answers 5 searches a
/// second per user, and each pause asks for messages and people).
#[cfg(feature = "hydrate")]
const SEARCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
/// Characters of a message shown around its first match.
const SNIPPET_CHARS: usize = 120;

/// The search box. `text` is what it holds (the sidebar shows results while it holds
/// anything).
#[component]
pub fn SearchBox(text: RwSignal<String>) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let input = NodeRef::<html::Input>::new();
    let ask = move |now: String| {
        let me = ctx.chat.with_untracked(|c| c.me.username.clone());
        let people = people_query(&now, &me);
        ctx.act(move |c| {
            let mut out: Vec<ClientMsg> = c.search_messages(&now).into_iter().collect();
            if let Some(query) = people {
                out.push(ClientMsg::SearchUsers {
                    query: query.clone(),
                });
                out.push(ClientMsg::SearchRooms { query });
            }
            out
        });
    };
    // Asked once typing pauses; an emptied box ends the search at once.
    let on_input = move |ev: leptos::ev::Event| {
        let now = event_target_value(&ev);
        text.set(now.clone());
        if now.trim().is_empty() {
            ctx.chat.update(Chat::end_search);
            return;
        }
        let later = move || {
            if text.try_get_untracked().is_some_and(|t| t == now) {
                ask(now);
            }
        };
        #[cfg(feature = "hydrate")]
        set_timeout(later, SEARCH_PAUSE);
        #[cfg(not(feature = "hydrate"))]
        later();
    };
    let clear = move || {
        text.set(String::new());
        ctx.chat.update(Chat::end_search);
    };
    #[cfg(feature = "hydrate")]
    {
        // Ctrl+K or ⌘K anywhere, or "/" where it would not be typed, focus the box.
        let keys =
            window_event_listener(leptos::ev::keydown, move |ev: leptos::ev::KeyboardEvent| {
                if ev.is_composing() || ev.default_prevented() {
                    return;
                }
                let shortcut =
                    (ev.ctrl_key() || ev.meta_key()) && ev.key().eq_ignore_ascii_case("k");
                let slash =
                    ev.key() == "/" && !ev.ctrl_key() && !ev.meta_key() && !typing_somewhere();
                if !(shortcut || slash) {
                    return;
                }
                ev.prevent_default();
                let focus = move || {
                    if let Some(el) = input.get_untracked() {
                        let _ = el.focus();
                        el.select();
                    }
                };
                // On a phone the list (and the box) is hidden behind an open conversation:
                // back to the list first, then the focus once it is drawn. Otherwise at
                // once, so that what is typed next lands in the box.
                if input
                    .get_untracked()
                    .is_some_and(|el| el.offset_parent().is_none())
                {
                    ctx.chat.update(Chat::close);
                    request_animation_frame(focus);
                } else {
                    focus();
                }
            });
        on_cleanup(move || keys.remove());
    }

    view! {
        <div class="sidebar-search" role="search">
            <input
                node_ref=input
                type="search"
                aria-label=move || t_string!(i18n, search.label)
                aria-keyshortcuts="Control+K Meta+K /"
                placeholder=move || t_string!(i18n, search.placeholder)
                autocomplete="off"
                spellcheck="false"
                enterkeyhint="search"
                prop:value=move || text.get()
                on:input=on_input
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.is_composing() {
                        return;
                    }
                    match ev.key().as_str() {
                        "Escape" => {
                            ev.prevent_default();
                            clear();
                        }
                        "Enter" => {
                            ev.prevent_default();
                            let now = text.get_untracked();
                            if !now.trim().is_empty() {
                                ask(now);
                            }
                        }
                        "ArrowDown" => step_through_results(&ev, 1),
                        _ => {}
                    }
                }
            />
        </div>
    }
}

/// Whether the focus is where "/" is typed (a text field or an editable element).
#[cfg(feature = "hydrate")]
fn typing_somewhere() -> bool {
    document().active_element().is_some_and(|e| {
        matches!(e.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
            || e.get_attribute("contenteditable").is_some()
    })
}

/// What to ask the people search for, when the box holds a plain name (no `in:` or
/// `from:`, 1–64 characters, not the user's own).
fn people_query(text: &str, me: &str) -> Option<String> {
    let q = text.trim();
    let plain = !q.is_empty()
        && q.chars().count() <= 64
        && !q
            .split_whitespace()
            .any(|w| w.starts_with("in:") || w.starts_with("from:"));
    (plain && q != me).then(|| q.to_owned())
}

/// What the box found, in place of the conversation list.
/// The first few of what the server found by name for the box's `text` (people or rooms),
/// once its answer to that very text has come; `keep` leaves some out.
fn answer_for<T: Clone>(
    text: &str,
    me: &str,
    answer: &Option<(String, Vec<T>)>,
    keep: impl Fn(&T) -> bool,
) -> Option<Vec<T>> {
    let asked = people_query(text, me)?;
    match answer {
        Some((answered, found)) if *answered == asked => {
            Some(found.iter().filter(|f| keep(f)).take(5).cloned().collect())
        }
        _ => None,
    }
}

#[component]
pub fn SearchResults(text: RwSignal<String>) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let chat = ctx.chat;
    let now = ctx.now;
    let conversations = Memo::new(move |_| {
        let q = text.get().trim().to_lowercase();
        chat.with(|c| {
            c.conversations
                .iter()
                .filter(|s| {
                    !q.is_empty()
                        && (s.title.to_lowercase().contains(&q)
                            || s.peer
                                .as_ref()
                                .is_some_and(|p| p.user.username.contains(&q)))
                })
                .map(|s| (s.id.clone(), s.title.clone()))
                .take(5)
                .collect::<Vec<_>>()
        })
    });
    let people = Memo::new(move |_| {
        let q = text.get();
        chat.with(|c| {
            answer_for(&q, &c.me.username, &c.search, |u: &UserInfo| {
                u.username != c.me.username
            })
        })
    });
    // Rooms the user is not in yet (those they are in show under Conversations).
    let rooms = Memo::new(move |_| {
        let q = text.get();
        chat.with(|c| answer_for(&q, &c.me.username, &c.rooms_found, |r: &RoomInfo| !r.joined))
    });
    let found = Memo::new(move |_| chat.with(|c| c.found.clone()));
    let open_conversation = move |id: ConversationId| ctx.act(move |c| c.open(id));
    let open_person = move |username: String| {
        if let Ok(username) = Username::parse(&username) {
            ctx.open_direct(username);
        }
    };

    view! {
        <div
            class="search-results"
            on:keydown=move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
                "ArrowDown" => step_through_results(&ev, 1),
                "ArrowUp" => step_through_results(&ev, -1),
                _ => {}
            }
        >
            <Show when=move || !conversations.with(Vec::is_empty)>
                <h2 class="results-title">{t!(i18n, sidebar.conversations)}</h2>
                <ul role="list" aria-label=move || t_string!(i18n, search.conversations_found)>
                    <For
                        each=move || conversations.get()
                        key=|(id, _)| id.clone()
                        let:((id, title))
                    >
                        <li>
                            <button
                                type="button"
                                class="result-line"
                                on:click=move |_| open_conversation(id.clone())
                            >
                                {title}
                            </button>
                        </li>
                    </For>
                </ul>
            </Show>
            <Show when=move || people.with(|p| p.as_ref().is_some_and(|p| !p.is_empty()))>
                <h2 class="results-title">{t!(i18n, people.list)}</h2>
                <ul role="list" aria-label=move || t_string!(i18n, search.people_found)>
                    <For
                        each=move || people.get().unwrap_or_default()
                        key=|u| u.username.clone()
                        let:user
                    >
                        <li>
                            <button
                                type="button"
                                class="result-line"
                                on:click={
                                    let username = user.username.clone();
                                    move |_| open_person(username.clone())
                                }
                            >
                                {user.display_name.clone()}
                                <span class="muted">" @" {user.username.clone()}</span>
                            </button>
                        </li>
                    </For>
                </ul>
            </Show>
            <Show when=move || rooms.with(|r| r.as_ref().is_some_and(|r| !r.is_empty()))>
                <h2 class="results-title">{t!(i18n, sidebar.rooms)}</h2>
                <ul role="list" aria-label=move || t_string!(i18n, search.rooms_found)>
                    <For
                        each=move || rooms.get().unwrap_or_default()
                        key=|r| r.id.clone()
                        let:room
                    >
                        <li>
                            <button
                                type="button"
                                class="result-line"
                                aria-label={
                                    let name = room.name.clone();
                                    move || t_string!(i18n, rooms.join_named, name = name.clone())
                                }
                                on:click={
                                    let id = room.id.clone();
                                    move |_| ctx.join_room(id.clone())
                                }
                            >
                                {room.name.clone()}
                                <span class="muted">
                                    " · "
                                    {move || match room.member_count {
                                        1 => t_string!(i18n, rooms.one_member).to_owned(),
                                        n => t_string!(i18n, rooms.members, n),
                                    }}
                                </span>
                            </button>
                        </li>
                    </For>
                </ul>
            </Show>
            <h2 class="results-title">{t!(i18n, search.messages)}</h2>
            <div aria-live="polite">
                {move || match found.get() {
                    None => ().into_any(),
                    Some(Found { error: Some(problem), .. }) => {
                        view! {
                            <p class="empty">
                                {move || problem_text(i18n.get_locale(), &problem)}
                            </p>
                        }
                            .into_any()
                    }
                    Some(f) => match f.hits {
                        None => view! { <p class="empty">{t!(i18n, searching)}</p> }.into_any(),
                        Some(hits) if hits.is_empty() => {
                            view! { <p class="empty">{t!(i18n, search.no_match)}</p> }
                                .into_any()
                        }
                        Some(hits) => {
                            let query = Query::parse(&f.query).ok();
                            let shown = hits.len();
                            let more = f
                                .has_more
                                .then(|| {
                                    view! {
                                        <p class="empty">{t!(i18n, search.only_newest, n = shown)}</p>
                                    }
                                });
                            view! {
                                <ul
                                    role="list"
                                    aria-label=move || t_string!(i18n, search.messages_found)
                                    class="hits"
                                >
                                    {hits
                                        .into_iter()
                                        .map(|hit| {
                                            view! { <Hit hit query=query.clone() now /> }
                                        })
                                        .collect_view()}
                                </ul>
                                {more}
                            }
                                .into_any()
                        }
                    },
                }}
            </div>
        </div>
    }
}

/// One message found: where, who, when, and its text around the match with the words marked.
#[component]
fn Hit(hit: SearchHit, query: Option<Query>, now: RwSignal<i64>) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let m = hit.message;
    let sender = ctx.chat.with_untracked(|c| c.name_of(&m.sender).to_owned());
    let at = m.sent_at_ms;
    let when = move || time::relative(i18n.get_locale(), now.get(), at);
    let text = crate::markdown::plain_text(&m.body);
    let pieces = match &query {
        Some(q) => snippet(&text, q, SNIPPET_CHARS),
        None => vec![(text, false)],
    };
    let place = Place {
        conversation: m.conversation_id.clone(),
        seq: Some(m.seq),
    };
    let open = move |_| {
        let place = place.clone();
        ctx.act(move |c| c.go_to(Some(place)));
    };
    view! {
        <li>
            <button type="button" class="hit" on:click=open>
                <span class="hit-top">
                    <span class="hit-where">
                        {t!(
                            i18n,
                            search.hit_where,
                            sender = sender.clone(),
                            conversation = hit.conversation_title.clone(),
                            <b> = <strong />,
                            <m> = <span class="muted" />
                        )}
                    </span>
                    <time class="conv-time">{when}</time>
                </span>
                <span class="hit-text">
                    {pieces
                        .into_iter()
                        .map(|(piece, marked)| {
                            if marked {
                                view! { <mark>{piece}</mark> }.into_any()
                            } else {
                                piece.into_any()
                            }
                        })
                        .collect_view()}
                </span>
            </button>
        </li>
    }
}

/// Why the search box's text was not searched for, in words.
fn problem_text(locale: Locale, problem: &SearchProblem) -> String {
    match problem {
        SearchProblem::NoSuchPerson(name) => {
            td_string!(locale, search.no_such_person, name = name.clone())
        }
        SearchProblem::NoSuchConversation(name) => {
            td_string!(locale, search.no_such_conversation, name = name.clone())
        }
        SearchProblem::Query(QueryError::Empty) => td_string!(locale, search.empty).to_owned(),
        SearchProblem::Query(QueryError::TooLong) => {
            td_string!(
                locale,
                search.too_long,
                max = crate::search::MAX_QUERY_CHARS
            )
        }
        SearchProblem::Query(QueryError::TooManyParts) => {
            td_string!(
                locale,
                search.too_many_words,
                max = crate::search::MAX_QUERY_PARTS
            )
        }
    }
}

/// ArrowDown and ArrowUp move the focus through what the search found, in page order
/// (conversations, people, messages); ArrowUp from the first goes back to the box.
#[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
fn step_through_results(ev: &leptos::ev::KeyboardEvent, step: i32) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::JsCast;
        let (items, at) =
            super::focus_order(document().query_selector_all(".search-results button"));
        let next = match (at, step) {
            (None, 1) => items.first().cloned(),
            (Some(0), -1) => document()
                .query_selector(".sidebar-search input")
                .ok()
                .flatten()
                .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()),
            (Some(i), _) => items.get((i as i32 + step) as usize).cloned(),
            _ => None,
        };
        if let Some(next) = next {
            ev.prevent_default();
            let _ = next.focus();
        }
    }
}
