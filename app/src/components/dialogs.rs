//! The two dialogs of the sidebar: find a user to message, and create or join a room.

use leptos::{ev, html, prelude::*};

use crate::components::{sidebar::Dialog, Avatar, ChatCtx};
use crate::domain::{RoomName, Username};
use crate::i18n::{t, t_string, use_i18n};
use crate::lang::invalid_text;
use crate::protocol::ClientMsg;

/// What can take the keyboard's focus inside a dialog, in page order.
#[cfg(feature = "hydrate")]
const FOCUSABLE: &str = "button:not([disabled]), input:not([disabled]), select:not([disabled]), \
    textarea:not([disabled]), a[href], [tabindex]:not([tabindex='-1'])";

/// A modal panel: closes on Escape (wherever the focus is), on the backdrop and on its Close
/// button; focuses `focus` when it opens; keeps Tab and Shift+Tab inside itself; and gives
/// the focus back to what had it (the button that opened it) when it closes.
#[component]
pub(super) fn Modal(
    dialog: RwSignal<Dialog>,
    /// Names the heading's element (`dialog-<id>`).
    id: &'static str,
    #[prop(into)] title: Signal<&'static str>,
    focus: NodeRef<html::Input>,
    children: Children,
) -> impl IntoView {
    let i18n = use_i18n();
    let heading_id = format!("dialog-{id}");
    let panel = NodeRef::<html::Div>::new();
    Effect::new(move |_| {
        if let Some(input) = focus.get() {
            let _ = input.focus();
        }
    });
    let close = move || dialog.set(Dialog::None);
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::JsCast;
        let opener = send_wrapper::SendWrapper::new(
            document()
                .active_element()
                .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()),
        );
        let keys = window_event_listener(ev::keydown, move |ev: ev::KeyboardEvent| {
            // Keys that belong to an input method's composition (Esc cancels it) are its own.
            if ev.is_composing() {
                return;
            }
            let Some(panel) = panel.get_untracked() else {
                return;
            };
            match ev.key().as_str() {
                "Escape" => {
                    ev.prevent_default();
                    close();
                }
                "Tab" => keep_focus_in(&panel, &ev),
                _ => {}
            }
        });
        // A choice (a person, a room) sends the focus to the message box instead; one that
        // came to nothing (a refused room name) is forgotten when a dialog opens again.
        let chosen = ChatCtx::get().focus_composer;
        chosen.set(false);
        on_cleanup(move || {
            keys.remove();
            if chosen.try_get_untracked() == Some(true) {
                return;
            }
            if let Some(opener) = opener.take() {
                if opener.is_connected() {
                    let _ = opener.focus();
                }
            }
        });
    }
    view! {
        <div class="backdrop" on:click=move |_| close()>
            <div
                class="dialog"
                role="dialog"
                aria-modal="true"
                aria-labelledby=heading_id.clone()
                node_ref=panel
                on:click=|ev: ev::MouseEvent| ev.stop_propagation()
            >
                <header class="dialog-header">
                    <h2 id=heading_id.clone()>{title}</h2>
                    <button type="button" class="ghost" on:click=move |_| close()>
                        {t!(i18n, dialog.close)}
                    </button>
                </header>
                {children()}
            </div>
        </div>
    }
}

/// Tab past the last control goes to the first, Shift+Tab before the first to the last, and
/// a Tab from outside the dialog comes back into it.
#[cfg(feature = "hydrate")]
fn keep_focus_in(panel: &web_sys::HtmlDivElement, ev: &ev::KeyboardEvent) {
    use leptos::wasm_bindgen::JsCast;
    let (items, at) = super::focus_order(panel.query_selector_all(FOCUSABLE));
    let (Some(first), Some(last)) = (items.first(), items.last()) else {
        ev.prevent_default();
        return;
    };
    let inside = document()
        .active_element()
        .is_some_and(|a| panel.contains(Some(a.unchecked_ref())));
    let target = match (inside, ev.shift_key()) {
        (false, false) => Some(first),
        (false, true) => Some(last),
        (true, false) if at == Some(items.len() - 1) => Some(first),
        (true, true) if at == Some(0) => Some(last),
        _ => None,
    };
    if let Some(target) = target {
        ev.prevent_default();
        let _ = target.focus();
    }
}

/// How long typing in the people search pauses before the search is asked.
#[cfg(feature = "hydrate")]
const SEARCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

#[component]
pub fn NewMessageDialog(dialog: RwSignal<Dialog>) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let chat = ctx.chat;
    let query = RwSignal::new(String::new());
    let input = NodeRef::<html::Input>::new();
    let me = chat.with_untracked(|c| c.me.username.clone());
    let results = Memo::new(move |_| {
        let q = query.get();
        chat.with(|c| match &c.search {
            Some((asked, users)) if asked == q.trim() => Some(
                users
                    .iter()
                    .filter(|u| u.username != me)
                    .cloned()
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
    });
    // Asked once typing pauses, not at every key: the server answers 5 searches a second.
    let on_input = move |ev: ev::Event| {
        let q = event_target_value(&ev);
        query.set(q.clone());
        let q = q.trim().to_owned();
        if q.is_empty() || q.chars().count() > 64 {
            return;
        }
        // The dialog may have closed meanwhile (its signals gone): then nothing is asked.
        let ask = move || {
            if query.try_get_untracked().is_some_and(|now| now.trim() == q) {
                ctx.send_all([ClientMsg::SearchUsers { query: q }]);
            }
        };
        #[cfg(feature = "hydrate")]
        set_timeout(ask, SEARCH_PAUSE);
        #[cfg(not(feature = "hydrate"))]
        ask();
    };
    let open = move |username: String| {
        let Ok(username) = Username::parse(&username) else {
            return;
        };
        ctx.open_direct(username);
        dialog.set(Dialog::None);
    };

    view! {
        <Modal
            dialog
            id="new-message"
            title=Signal::derive(move || t_string!(i18n, sidebar.new_message))
            focus=input
        >
            <input
                node_ref=input
                type="search"
                aria-label=move || t_string!(i18n, people.search_label)
                placeholder=move || t_string!(i18n, people.search_placeholder)
                autocomplete="off"
                spellcheck="false"
                prop:value=move || query.get()
                on:input=on_input
            />
            {move || match results.get() {
                None if query.with(|q| q.trim().is_empty()) => {
                    view! { <p class="muted">{t!(i18n, people.hint)}</p> }.into_any()
                }
                None => view! { <p class="muted">{t!(i18n, searching)}</p> }.into_any(),
                Some(users) if users.is_empty() => {
                    view! { <p class="muted">{t!(i18n, people.nobody)}</p> }.into_any()
                }
                Some(users) => {
                    view! {
                        <ul class="pick-list" aria-label=move || t_string!(i18n, people.list)>
                            {users
                                .into_iter()
                                .map(|u| {
                                    let username = u.username.clone();
                                    view! {
                                        <li>
                                            <button
                                                type="button"
                                                class="pick"
                                                on:click=move |_| open(username.clone())
                                            >
                                                <Avatar
                                                    name=Signal::stored(u.display_name.clone())
                                                    key=u.username.clone()
                                                    small=true
                                                    person=true
                                                />
                                                <span>{u.display_name}</span>
                                                <span class="muted">"@" {u.username}</span>
                                            </button>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                    }
                        .into_any()
                }
            }}
        </Modal>
    }
}

#[component]
pub fn NewRoomDialog(dialog: RwSignal<Dialog>) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let chat = ctx.chat;
    let name = RwSignal::new(String::new());
    let private = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let input = NodeRef::<html::Input>::new();
    let rooms = Memo::new(move |_| chat.with(|c| c.rooms.clone()));
    ctx.act(|c| [c.list_rooms()]);
    let has_more = Memo::new(move |_| chat.with(|c| c.rooms_next.is_some()));

    let create = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        match RoomName::parse(&name.get_untracked()) {
            Ok(room) => {
                ctx.focus_composer.set(true);
                dialog.set(Dialog::None);
                chat.update(|c| c.expect_open());
                ctx.send_all([ClientMsg::CreateRoom {
                    name: room,
                    private: private.get_untracked(),
                }]);
            }
            Err(e) => error.set(Some(invalid_text(i18n.get_locale_untracked(), &e))),
        }
    };

    view! {
        <Modal
            dialog
            id="rooms"
            title=Signal::derive(move || t_string!(i18n, rooms.title))
            focus=input
        >
            <form class="inline-form" on:submit=create>
                <input
                    node_ref=input
                    aria-label=move || t_string!(i18n, rooms.name_label)
                    placeholder=move || t_string!(i18n, rooms.name_placeholder)
                    maxlength="64"
                    bind:value=name
                />
                <button type="submit">{t!(i18n, rooms.create)}</button>
            </form>
            <label class="check">
                <input type="checkbox" bind:checked=private />
                {t!(i18n, room.private)}
            </label>
            {move || error.get().map(|e| view! { <p role="alert" class="error">{e}</p> })}
            <h3>{t!(i18n, rooms.public)}</h3>
            {move || match rooms.get() {
                None => view! { <p class="muted">{t!(i18n, rooms.loading)}</p> }.into_any(),
                Some(rooms) if rooms.is_empty() => {
                    view! { <p class="muted">{t!(i18n, rooms.none)}</p> }.into_any()
                }
                Some(rooms) => {
                    view! {
                        <ul class="pick-list" aria-label=move || t_string!(i18n, rooms.public)>
                            {rooms
                                .into_iter()
                                .map(|r| {
                                    let id = r.id.clone();
                                    let joined = r.joined;
                                    let act = move |_| {
                                        let id = id.clone();
                                        if joined {
                                            ctx.focus_composer.set(true);
                                            ctx.act(move |c| c.open(id));
                                        } else {
                                            ctx.join_room(id);
                                        }
                                        dialog.set(Dialog::None);
                                    };
                                    let n = r.member_count;
                                    let members = move || match n {
                                        1 => t_string!(i18n, rooms.one_member).to_owned(),
                                        n => t_string!(i18n, rooms.members, n),
                                    };
                                    let room_name = r.name.clone();
                                    let action = move || {
                                        if joined {
                                            t_string!(i18n, rooms.open)
                                        } else {
                                            t_string!(i18n, rooms.join)
                                        }
                                    };
                                    view! {
                                        <li class="room-row">
                                            <Avatar
                                                name=Signal::stored(r.name.clone())
                                                key=r.id.0.clone()
                                                small=true
                                            />
                                            <span class="room-name">{r.name.clone()}</span>
                                            <span class="muted">{members}</span>
                                            <button
                                                type="button"
                                                class=if joined { "secondary" } else { "" }
                                                aria-label=move || {
                                                    if joined {
                                                        t_string!(i18n, rooms.open_named, name = room_name.clone())
                                                    } else {
                                                        t_string!(i18n, rooms.join_named, name = room_name.clone())
                                                    }
                                                }
                                                on:click=act
                                            >
                                                {action}
                                            </button>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                    }
                        .into_any()
                }
            }}
            {move || {
                has_more
                    .get()
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                class="secondary"
                                on:click=move |_| ctx.act(|c| c.more_rooms())
                            >
                                {t!(i18n, rooms.more)}
                            </button>
                        }
                    })
            }}
        </Modal>
    }
}
