//! The left column: who is signed in, the connection status, the buttons to start a direct
//! message or find a room, the search box, and the recent conversations with previews,
//! times, unread badges and presence (or, while the box holds a search, what it found).

use leptos::prelude::*;

use crate::chat::{time, Chat};
use crate::components::search::{SearchBox, SearchResults};
use crate::components::{
    AccountDialog, Avatar, ChatCtx, LanguagePicker, NewMessageDialog, NewRoomDialog, StatusLine,
};
use crate::i18n::{t, t_string, td_string, use_i18n, Locale};
use crate::lang::error_text;
use crate::markdown::plain_text;
use crate::protocol::{
    ConversationId, ConversationKind, ConversationSummary, LeftReason, NotifyLevel,
};

/// Which dialog is open (over the sidebar, or over the conversation: its room panel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialog {
    None,
    NewMessage,
    NewRoom,
    Account,
    Room,
}

#[component]
pub fn Sidebar(on_sign_out: Callback<()>) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let chat = ctx.chat;
    let dialog = RwSignal::new(Dialog::None);
    let me = Memo::new(move |_| chat.with(|c| c.me.clone()));
    // Two sections, as in Slack: rooms, then direct messages; each latest activity first.
    let section = move |kind: ConversationKind| {
        Memo::new(move |_| {
            chat.with(|c| {
                c.conversations
                    .iter()
                    .filter(|c| c.kind == kind)
                    .map(|c| c.id.clone())
                    .collect::<Vec<_>>()
            })
        })
    };
    let rooms = section(ConversationKind::Room);
    let directs = section(ConversationKind::Direct);
    let none = Memo::new(move |_| rooms.with(Vec::is_empty) && directs.with(Vec::is_empty));
    let notice = Memo::new(move |_| chat.with(|c| c.notice));
    let farewell = Memo::new(move |_| chat.with(|c| c.farewell.clone()));
    // What the search box holds: while it holds anything, results replace the list.
    let searched = RwSignal::new(String::new());
    let searching = Memo::new(move |_| !searched.with(|t| t.trim().is_empty()));

    view! {
        <aside class="sidebar">
            <header class="sidebar-header">
                <div class="me">
                    <Avatar
                        name=Signal::derive(move || me.get().display_name)
                        key=me.get_untracked().username
                        person=true
                    />
                    <div class="me-names">
                        <strong class="me-name">{move || me.get().display_name}</strong>
                        <StatusLine state=ctx.conn />
                    </div>
                </div>
                <ProfileMenu on_sign_out dialog />
            </header>
            <div class="sidebar-actions">
                <button type="button" on:click=move |_| dialog.set(Dialog::NewMessage)>
                    {t!(i18n, sidebar.new_message)}
                </button>
                <button
                    type="button"
                    class="secondary"
                    on:click=move |_| dialog.set(Dialog::NewRoom)
                >
                    {t!(i18n, sidebar.new_room)}
                </button>
            </div>
            <SearchBox text=searched />
            <NotificationPrompt />
            {move || {
                notice
                    .get()
                    .map(|code| {
                        view! {
                            <p role="alert" class="error notice">
                                {move || error_text(i18n.get_locale(), code)}
                            </p>
                        }
                    })
            }}
            {move || {
                farewell
                    .get()
                    .map(|f| {
                        let room = f.room.clone();
                        let text = move || match f.reason {
                            LeftReason::Removed => {
                                t_string!(i18n, room.removed_you, room = room.clone())
                            }
                            LeftReason::Banned => {
                                t_string!(i18n, room.banned_you, room = room.clone())
                            }
                        };
                        view! {
                            <p role="alert" class="notice farewell">
                                <span>{text}</span>
                                <button
                                    type="button"
                                    class="ghost"
                                    on:click=move |_| chat.update(Chat::dismiss_farewell)
                                >
                                    {t!(i18n, room.dismiss)}
                                </button>
                            </p>
                        }
                    })
            }}
            <nav class="conversations" aria-label=move || t_string!(i18n, sidebar.conversations)>
                <Show
                    when=move || !searching.get()
                    fallback=move || view! { <SearchResults text=searched /> }
                >
                <Show
                    when=move || !none.get()
                    fallback=move || {
                        view! {
                            <div class="empty start">
                                <p class="start-title">{t!(i18n, sidebar.empty)}</p>
                                <p>{t!(i18n, sidebar.empty_hint)}</p>
                                <div class="start-actions">
                                    <button
                                        type="button"
                                        on:click=move |_| dialog.set(Dialog::NewMessage)
                                    >
                                        {t!(i18n, sidebar.find_person)}
                                    </button>
                                    <button
                                        type="button"
                                        class="secondary"
                                        on:click=move |_| dialog.set(Dialog::NewRoom)
                                    >
                                        {t!(i18n, sidebar.browse_rooms)}
                                    </button>
                                </div>
                            </div>
                        }
                    }
                >
                    <Section
                        id="section-rooms"
                        title=Signal::derive(move || t_string!(i18n, sidebar.rooms))
                        ids=rooms
                    />
                    <Section
                        id="section-direct"
                        title=Signal::derive(move || t_string!(i18n, sidebar.direct))
                        ids=directs
                    />
                </Show>
                </Show>
            </nav>
            {move || match dialog.get() {
                Dialog::None => ().into_any(),
                Dialog::NewMessage => view! { <NewMessageDialog dialog /> }.into_any(),
                Dialog::NewRoom => view! { <NewRoomDialog dialog /> }.into_any(),
                Dialog::Account => view! { <AccountDialog dialog /> }.into_any(),
                // Opened from the conversation's header, which shows it.
                Dialog::Room => ().into_any(),
            }}
        </aside>
    }
}

/// The profile menu at the sidebar's top right: who is signed in, the interface's language,
/// and signing out. A disclosure: its button says whether it is open; Esc (wherever the
/// focus is) closes it and gives the focus back to the button, and so does the focus
/// leaving it.
#[component]
fn ProfileMenu(on_sign_out: Callback<()>, dialog: RwSignal<Dialog>) -> impl IntoView {
    let i18n = use_i18n();
    let chat = ChatCtx::get().chat;
    let username = chat.with_untracked(|c| c.me.username.clone());
    let open = RwSignal::new(false);
    let toggle = NodeRef::<leptos::html::Button>::new();
    // Used by the browser's key and focus handlers only.
    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    let close = move |refocus: bool| {
        open.set(false);
        if refocus {
            if let Some(b) = toggle.get_untracked() {
                let _ = b.focus();
            }
        }
    };
    #[cfg(feature = "hydrate")]
    {
        let keys = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.key() == "Escape" && !ev.is_composing() && open.get_untracked() {
                ev.prevent_default();
                close(true);
            }
        });
        on_cleanup(move || keys.remove());
    }
    let focus_left = move |ev: leptos::ev::FocusEvent| {
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            let container = ev
                .current_target()
                .and_then(|t| t.dyn_into::<web_sys::Node>().ok());
            let to = ev
                .related_target()
                .and_then(|t| t.dyn_into::<web_sys::Node>().ok());
            if let (Some(container), Some(to)) = (container, to) {
                if container.contains(Some(&to)) {
                    return;
                }
            }
            close(false);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    view! {
        <div class="profile" on:focusout=focus_left>
            <button
                type="button"
                class="ghost profile-toggle"
                node_ref=toggle
                aria-expanded=move || open.get().to_string()
                aria-controls="profile-panel"
                aria-label=move || t_string!(i18n, sidebar.profile)
                on:click=move |_| open.update(|o| *o = !*o)
            >
                <span aria-hidden="true">"⋯"</span>
            </button>
            <Show when=move || open.get()>
                <div id="profile-panel" class="profile-panel">
                    <p class="muted profile-who">
                        {t!(i18n, sidebar.signed_in_as, username = username.clone())}
                    </p>
                    <LanguagePicker />
                    <button
                        type="button"
                        class="ghost"
                        on:click=move |_| {
                            open.set(false);
                            dialog.set(Dialog::Account);
                        }
                    >
                        {t!(i18n, sidebar.account)}
                    </button>
                    <button type="button" class="ghost" on:click=move |_| on_sign_out.run(())>
                        {t!(i18n, sidebar.sign_out)}
                    </button>
                </div>
            </Show>
        </div>
    }
}

/// A titled part of the conversation list (shown only when it has conversations).
#[component]
fn Section(
    id: &'static str,
    title: Signal<&'static str>,
    ids: Memo<Vec<ConversationId>>,
) -> impl IntoView {
    view! {
        <Show when=move || !ids.with(Vec::is_empty)>
            <h2 class="section-title" id=id>
                {title}
            </h2>
            <ul role="list" aria-labelledby=id>
                <For each=move || ids.get() key=|id| id.clone() let:id>
                    <ConversationItem id />
                </For>
            </ul>
        </Show>
    }
}

/// What one line of the list shows; a memo of it changes only when the line does.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    summary: ConversationSummary,
    online: Option<bool>,
    preview: String,
    active: bool,
}

fn line(c: &Chat, id: &ConversationId, locale: Locale) -> Option<Line> {
    let summary = c.summary(id)?.clone();
    let preview = match &summary.last_message {
        None => td_string!(locale, sidebar.no_messages).to_owned(),
        Some(p) if p.sender == c.me.username => {
            td_string!(locale, sidebar.you_said, text = plain_text(&p.text))
        }
        Some(p) if summary.kind == ConversationKind::Room => {
            format!("{}: {}", c.name_of(&p.sender), plain_text(&p.text))
        }
        Some(p) => plain_text(&p.text),
    };
    Some(Line {
        online: c.peer_online(&summary),
        active: c.active.as_ref() == Some(id),
        preview,
        summary,
    })
}

#[component]
fn ConversationItem(id: ConversationId) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let chat = ctx.chat;
    let now = ctx.now;
    let line = Memo::new({
        let id = id.clone();
        move |_| {
            let locale = i18n.get_locale();
            chat.with(|c| line(c, &id, locale))
        }
    });
    let get = move || line.get();
    let title = move || get().map(|l| l.summary.title).unwrap_or_default();
    let unread = Memo::new(move |_| line.with(|l| l.as_ref().map_or(0, |l| l.summary.unread)));
    let mentions = Memo::new(move |_| line.with(|l| l.as_ref().map_or(0, |l| l.summary.mentions)));
    let muted = Memo::new(move |_| {
        line.with(|l| {
            l.as_ref()
                .is_some_and(|l| l.summary.notify == NotifyLevel::Mute)
        })
    });
    let active = Memo::new(move |_| line.with(|l| l.as_ref().is_some_and(|l| l.active)));
    let online = line.get_untracked().and_then(|l| l.online).map(|_| {
        Signal::derive(move || line.with(|l| l.as_ref().and_then(|l| l.online) == Some(true)))
    });
    // A person has the same colour everywhere: keyed by username, rooms by id.
    let avatar_key = line
        .with_untracked(|l| {
            l.as_ref()
                .and_then(|l| l.summary.peer.as_ref())
                .map(|p| p.user.username.clone())
        })
        .unwrap_or_else(|| id.0.clone());
    let when = move || {
        let at = get().map_or(0, |l| l.summary.last_activity_ms);
        time::relative(i18n.get_locale(), now.get(), at)
    };
    let open = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            ctx.act(move |c| c.open(id));
        }
    };

    view! {
        <li>
            <button
                type="button"
                class="conv"
                class:active=active
                class:unread=move || unread.get() != 0 && (!muted.get() || mentions.get() != 0)
                class:muted=muted
                aria-current=move || active.get().then_some("true")
                data-id=id.0.clone()
                on:click=open
            >
                <Avatar name=Signal::derive(title) key=avatar_key online=online />
                <span class="conv-main">
                    <span class="conv-top">
                        <span class="conv-title">{title}</span>
                        <time class="conv-time">{when}</time>
                    </span>
                    <span class="conv-bottom">
                        <span class="conv-preview">
                            {move || get().map(|l| l.preview).unwrap_or_default()}
                        </span>
                        {move || {
                            muted
                                .get()
                                .then(|| {
                                    view! {
                                        <span
                                            class="muted-mark"
                                            role="img"
                                            aria-label=move || t_string!(i18n, sidebar.muted)
                                        >
                                            "🔕"
                                        </span>
                                    }
                                })
                        }}
                        {move || {
                            let n = mentions.get();
                            (n > 0)
                                .then(|| {
                                    view! {
                                        <span
                                            class="badge mention-badge"
                                            role="img"
                                            aria-label=move || {
                                                if n == 1 {
                                                    t_string!(i18n, sidebar.one_mention).to_owned()
                                                } else {
                                                    t_string!(i18n, sidebar.mentions, n)
                                                }
                                            }
                                        >
                                            "@ "
                                            {count(n)}
                                        </span>
                                    }
                                })
                        }}
                        {move || {
                            let n = unread.get();
                            (n > 0)
                                .then(|| {
                                    view! {
                                        <span
                                            class="badge"
                                            class:quiet=muted
                                            role="img"
                                            aria-label=move || t_string!(i18n, sidebar.unread, n)
                                        >
                                            {count(n)}
                                        </span>
                                    }
                                })
                        }}
                    </span>
                </span>
                {move || {
                    get()
                        .and_then(|l| l.online)
                        .map(|on| {
                            view! {
                                <span class="sr-only">
                                    {move || {
                                        if on {
                                            t_string!(i18n, sidebar.online)
                                        } else {
                                            t_string!(i18n, sidebar.offline)
                                        }
                                    }}
                                </span>
                            }
                        })
                }}
            </button>
        </li>
    }
}

/// A count as a badge shows it.
fn count(n: u64) -> String {
    if n > 99 {
        "99+".to_owned()
    } else {
        n.to_string()
    }
}

/// Offers browser notifications until the user has answered the browser's question.
#[component]
fn NotificationPrompt() -> impl IntoView {
    let i18n = use_i18n();
    let asked = RwSignal::new(true);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        asked.set(web_sys::Notification::permission() != web_sys::NotificationPermission::Default);
    });
    let enable = move |_| {
        #[cfg(feature = "hydrate")]
        if let Ok(promise) = web_sys::Notification::request_permission() {
            leptos::task::spawn_local(async move {
                let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
                asked.try_set(true);
            });
        }
    };
    view! {
        <Show when=move || !asked.get()>
            <p class="notify-prompt">
                {t!(
                    i18n,
                    sidebar.notifications_prompt,
                    <button> = move |children: ChildrenFn| view! {
                        <button type="button" class="link" on:click=enable>{children()}</button>
                    }
                )}
            </p>
        </Show>
    }
}
