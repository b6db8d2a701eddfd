//! The two dialogs of the sidebar: find a user to message, and create or join a room.

use leptos::{ev, html, prelude::*};

use crate::components::{sidebar::Dialog, Avatar, ChatCtx};
use crate::domain::{RoomName, Username};
use crate::protocol::ClientMsg;

/// A modal panel: closes on Escape, on the backdrop and on its Close button; focuses `focus`
/// when it opens.
#[component]
fn Modal(
    dialog: RwSignal<Dialog>,
    title: &'static str,
    focus: NodeRef<html::Input>,
    children: Children,
) -> impl IntoView {
    let heading_id = format!("dialog-{}", title.to_lowercase().replace(' ', "-"));
    Effect::new(move |_| {
        if let Some(input) = focus.get() {
            let _ = input.focus();
        }
    });
    let close = move || dialog.set(Dialog::None);
    view! {
        <div class="backdrop" on:click=move |_| close()>
            <div
                class="dialog"
                role="dialog"
                aria-modal="true"
                aria-labelledby=heading_id.clone()
                on:click=|ev: ev::MouseEvent| ev.stop_propagation()
                on:keydown=move |ev: ev::KeyboardEvent| {
                    if ev.key() == "Escape" {
                        close();
                    }
                }
            >
                <header class="dialog-header">
                    <h2 id=heading_id.clone()>{title}</h2>
                    <button type="button" class="ghost" on:click=move |_| close()>
                        "Close"
                    </button>
                </header>
                {children()}
            </div>
        </div>
    }
}

#[component]
pub fn NewMessageDialog(dialog: RwSignal<Dialog>) -> impl IntoView {
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
    let on_input = move |ev: ev::Event| {
        let q = event_target_value(&ev);
        query.set(q.clone());
        let q = q.trim().to_owned();
        if !q.is_empty() && q.chars().count() <= 64 {
            ctx.send_all([ClientMsg::SearchUsers { query: q }]);
        }
    };
    let open = move |username: String| {
        let Ok(username) = Username::parse(&username) else {
            return;
        };
        dialog.set(Dialog::None);
        ctx.chat.update(|c| c.expect_open());
        ctx.send_all([ClientMsg::OpenDirect { username }]);
    };

    view! {
        <Modal dialog title="New message" focus=input>
            <input
                node_ref=input
                type="search"
                aria-label="Search users"
                placeholder="Search by name or username"
                autocomplete="off"
                spellcheck="false"
                prop:value=move || query.get()
                on:input=on_input
            />
            {move || match results.get() {
                None if query.with(|q| q.trim().is_empty()) => {
                    view! { <p class="muted">"Type a name to find someone."</p> }.into_any()
                }
                None => view! { <p class="muted">"Searching…"</p> }.into_any(),
                Some(users) if users.is_empty() => {
                    view! { <p class="muted">"Nobody matches."</p> }.into_any()
                }
                Some(users) => {
                    view! {
                        <ul class="pick-list" aria-label="People">
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
    let ctx = ChatCtx::get();
    let chat = ctx.chat;
    let name = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let input = NodeRef::<html::Input>::new();
    let rooms = Memo::new(move |_| chat.with(|c| c.rooms.clone()));
    ctx.act(|c| [c.list_rooms()]);
    let has_more = Memo::new(move |_| chat.with(|c| c.rooms_next.is_some()));

    let create = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        match RoomName::parse(&name.get_untracked()) {
            Ok(room) => {
                dialog.set(Dialog::None);
                chat.update(|c| c.expect_open());
                ctx.send_all([ClientMsg::CreateRoom { name: room }]);
            }
            Err(e) => error.set(Some(crate::chat::state::sentence(&e.to_string()))),
        }
    };

    view! {
        <Modal dialog title="Rooms" focus=input>
            <form class="inline-form" on:submit=create>
                <input
                    node_ref=input
                    aria-label="Room name"
                    placeholder="Name a new room"
                    maxlength="64"
                    bind:value=name
                />
                <button type="submit">"Create room"</button>
            </form>
            {move || error.get().map(|e| view! { <p role="alert" class="error">{e}</p> })}
            <h3>"Public rooms"</h3>
            {move || match rooms.get() {
                None => view! { <p class="muted">"Loading rooms…"</p> }.into_any(),
                Some(rooms) if rooms.is_empty() => {
                    view! { <p class="muted">"No rooms yet: create the first one."</p> }
                        .into_any()
                }
                Some(rooms) => {
                    view! {
                        <ul class="pick-list" aria-label="Public rooms">
                            {rooms
                                .into_iter()
                                .map(|r| {
                                    let id = r.id.clone();
                                    let joined = r.joined;
                                    let act = move |_| {
                                        let id = id.clone();
                                        dialog.set(Dialog::None);
                                        if joined {
                                            ctx.act(move |c| c.open(id));
                                        } else {
                                            chat.update(|c| c.expect_open());
                                            ctx.send_all([
                                                ClientMsg::JoinRoom {
                                                    conversation_id: id,
                                                },
                                            ]);
                                        }
                                    };
                                    let members = match r.member_count {
                                        1 => "1 member".to_owned(),
                                        n => format!("{n} members"),
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
                                                aria-label=format!(
                                                    "{} {}",
                                                    if joined { "Open" } else { "Join" },
                                                    r.name,
                                                )
                                                on:click=act
                                            >
                                                {if joined { "Open" } else { "Join" }}
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
                                "More rooms"
                            </button>
                        }
                    })
            }}
        </Modal>
    }
}
