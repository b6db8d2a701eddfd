//! The room panel: its name, topic and privacy; its members with their roles, and what the
//! user may do to each (make admin, remove, ban); adding someone by username; invite links;
//! bans. Only what [`crate::roles::may`] allows is offered, and the server decides again.

use leptos::{ev, html, prelude::*};

use crate::chat::time::{clock, day_label, now_ms};
use crate::components::{copy_to_clipboard, dialogs::Modal, sidebar::Dialog, Avatar, ChatCtx};
use crate::domain::{RoomName, RoomTopic, Username};
use crate::i18n::{t, t_string, use_i18n};
use crate::lang::{error_text, invalid_text};
use crate::protocol::{ClientMsg, ConversationId, Member, Role, RoomInvite, JOIN_PARAM};
use crate::roles::RoomAction;

#[component]
pub fn RoomDialog(dialog: RwSignal<Dialog>, id: ConversationId) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let chat = ctx.chat;
    {
        let id = id.clone();
        ctx.act(move |c| c.open_panel(&id));
    }
    on_cleanup(move || {
        chat.try_update(|c| c.close_panel());
    });
    // Each a memo: the parts they show are drawn again only when the answer changes.
    let may = {
        let id = id.clone();
        move |action: RoomAction| {
            let id = id.clone();
            Memo::new(move |_| chat.with(|c| c.may(&id, action)))
        }
    };
    let (can_invite, can_links, can_unban) = (
        may(RoomAction::Invite),
        may(RoomAction::ManageLinks),
        may(RoomAction::Unban),
    );
    // Only what the form shows: a new message (an unread count) must not redraw it under
    // the user's typing.
    let about_room = {
        let id = id.clone();
        Memo::new(move |_| {
            chat.with(|c| {
                c.summary(&id)
                    .map(|s| (s.title.clone(), s.topic.clone(), s.private))
            })
        })
    };
    let editor = {
        let id = id.clone();
        Memo::new(move |_| chat.with(|c| c.may(&id, RoomAction::EditRoom)))
    };
    let panel = Memo::new(move |_| chat.with(|c| c.panel.clone()));
    let notice = Memo::new(move |_| chat.with(|c| c.notice));
    let first = NodeRef::<html::Input>::new();

    // The form is drawn once per opening (its fields are the user's until they save; a save,
    // theirs or another admin's, does not redraw it under them); the topic as text follows
    // every change.
    let about = {
        let id = id.clone();
        move || {
            if editor.get() {
                view! { <RoomForm id=id.clone() now=about_room first /> }.into_any()
            } else {
                (move || {
                    about_room
                        .get()
                        .and_then(|(_, topic, _)| topic)
                        .map(|t| view! { <p class="room-topic">{t}</p> })
                })
                .into_any()
            }
        }
    };

    let title = Signal::derive(move || t_string!(i18n, room.settings));
    view! {
        <Modal dialog id="room" title focus=first>
            {about}
            {move || {
                notice
                    .get()
                    .map(|code| {
                        view! {
                            <p role="alert" class="error">
                                {move || error_text(i18n.get_locale(), code)}
                            </p>
                        }
                    })
            }}
            <h3>{t!(i18n, room.members)}</h3>
            {
                let id = id.clone();
                move || can_invite.get().then(|| view! { <AddMember id=id.clone() /> })
            }
            {
                let id = id.clone();
                move || match panel.get() {
                    None => view! { <p class="muted">{t!(i18n, room.loading)}</p> }.into_any(),
                    Some(p) => {
                        view! {
                            <ul class="member-list" aria-label=move || t_string!(i18n, room.members)>
                                {p
                                    .members
                                    .into_iter()
                                    .map(|m| view! { <MemberRow id=id.clone() member=m /> })
                                    .collect_view()}
                            </ul>
                        }
                            .into_any()
                    }
                }
            }
            {
                let id = id.clone();
                move || can_links.get().then(|| view! { <InviteLinks id=id.clone() /> })
            }
            {
                let id = id.clone();
                move || can_unban.get().then(|| view! { <Bans id=id.clone() /> })
            }
        </Modal>
    }
}

/// Name, topic and privacy, for those who may change them: filled with the room as it is
/// (`now`) when drawn; a save sends what differs from the room as it is then.
#[component]
fn RoomForm(
    id: ConversationId,
    now: Memo<Option<(String, Option<String>, bool)>>,
    first: NodeRef<html::Input>,
) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let (was_name, was_topic, was_private) = now.get_untracked().unwrap_or_default();
    let name = RwSignal::new(was_name);
    let topic = RwSignal::new(was_topic.unwrap_or_default());
    let private = RwSignal::new(was_private);
    let error = RwSignal::new(None::<String>);
    let saved = RwSignal::new(false);
    let save = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        let locale = i18n.get_locale_untracked();
        let parsed_name = match RoomName::parse(&name.get_untracked()) {
            Ok(n) => n,
            Err(e) => return error.set(Some(invalid_text(locale, &e))),
        };
        let parsed_topic = match RoomTopic::parse(&topic.get_untracked()) {
            Ok(t) => t,
            Err(e) => return error.set(Some(invalid_text(locale, &e))),
        };
        error.set(None);
        let (was_name, was_topic, was_private) = now.get_untracked().unwrap_or_default();
        let was_topic = was_topic.unwrap_or_default();
        let private_now = private.get_untracked();
        ctx.chat.update(|c| c.notice = None);
        ctx.send_all([ClientMsg::UpdateRoom {
            conversation_id: id.clone(),
            name: (parsed_name.as_str() != was_name).then_some(parsed_name),
            topic: (parsed_topic.as_str() != was_topic).then_some(parsed_topic),
            private: (private_now != was_private).then_some(private_now),
        }]);
        saved.set(true);
    };
    view! {
        <form class="room-form" on:submit=save on:input=move |_| saved.set(false)>
            <label>
                {t!(i18n, room.name)}
                <input node_ref=first maxlength="64" bind:value=name />
            </label>
            <label>
                {t!(i18n, room.topic)}
                <input
                    maxlength="250"
                    placeholder=move || t_string!(i18n, room.topic_placeholder)
                    bind:value=topic
                />
            </label>
            <label class="check">
                <input type="checkbox" bind:checked=private />
                {t!(i18n, room.private)}
            </label>
            {move || error.get().map(|e| view! { <p role="alert" class="error">{e}</p> })}
            <div class="form-actions">
                <button type="submit">{t!(i18n, room.save)}</button>
                <Show when=move || saved.get()>
                    <span class="muted" role="status">{t!(i18n, room.saved)}</span>
                </Show>
            </div>
        </form>
    }
}

#[component]
fn AddMember(id: ConversationId) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let username = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let add = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        match Username::parse(username.get_untracked().trim_start_matches('@')) {
            Ok(u) => {
                error.set(None);
                username.set(String::new());
                ctx.chat.update(|c| c.notice = None);
                ctx.send_all([ClientMsg::AddMember {
                    conversation_id: id.clone(),
                    username: u,
                }]);
            }
            Err(e) => error.set(Some(invalid_text(i18n.get_locale_untracked(), &e))),
        }
    };
    view! {
        <form class="inline-form" on:submit=add>
            <input
                aria-label=move || t_string!(i18n, room.add_label)
                placeholder=move || t_string!(i18n, room.add_placeholder)
                autocomplete="off"
                spellcheck="false"
                maxlength="33"
                bind:value=username
            />
            <button type="submit">{t!(i18n, room.add)}</button>
        </form>
        {move || error.get().map(|e| view! { <p role="alert" class="error">{e}</p> })}
    }
}

/// One member: name, role, and the actions the user may take on them.
#[component]
fn MemberRow(id: ConversationId, member: Member) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let role = member.role.unwrap_or_default();
    let username = member.user.username.clone();
    let display = member.user.display_name.clone();
    let me = ctx.chat.with_untracked(|c| c.me.username == username);
    let may = |action| !me && ctx.chat.with_untracked(|c| c.may(&id, action));
    let badge = match role {
        Role::Owner => Some(t_string!(i18n, room.owner)),
        Role::Admin => Some(t_string!(i18n, room.admin)),
        Role::Member => None,
    };
    // What may be done to them, each as the frame it sends.
    let target = Username::parse(&username).ok();
    let action = |allowed: bool, make: &dyn Fn(ConversationId, Username) -> ClientMsg| {
        target
            .clone()
            .filter(|_| allowed)
            .map(|u| make(id.clone(), u))
    };
    let to_admin = role == Role::Member;
    let set_role = action(role != Role::Owner && may(RoomAction::SetRole), &|c, u| {
        ClientMsg::SetRole {
            conversation_id: c,
            username: u,
            role: if to_admin { Role::Admin } else { Role::Member },
        }
    });
    let remove = action(may(RoomAction::Remove(role)), &|c, u| {
        ClientMsg::RemoveMember {
            conversation_id: c,
            username: u,
        }
    });
    let ban = action(may(RoomAction::Ban(role)), &|c, u| ClientMsg::Ban {
        conversation_id: c,
        username: u,
    });
    let name = display.clone();
    let role_label = Signal::derive(move || {
        if to_admin {
            (
                t_string!(i18n, room.make_admin).to_owned(),
                t_string!(i18n, room.make_admin_named, name = name.clone()),
            )
        } else {
            (
                t_string!(i18n, room.unmake_admin).to_owned(),
                t_string!(i18n, room.unmake_admin_named, name = name.clone()),
            )
        }
    });
    let name = display.clone();
    let remove_label = Signal::derive(move || {
        (
            t_string!(i18n, room.remove).to_owned(),
            t_string!(i18n, room.remove_named, name = name.clone()),
        )
    });
    let name = display.clone();
    let ban_label = Signal::derive(move || {
        (
            t_string!(i18n, room.ban).to_owned(),
            t_string!(i18n, room.ban_named, name = name.clone()),
        )
    });
    view! {
        <li class="member-row" data-username=username.clone()>
            <Avatar
                name=Signal::stored(display.clone())
                key=username.clone()
                small=true
                person=true
            />
            <span class="member-name">{display.clone()}</span>
            <span class="muted">"@" {username.clone()}</span>
            {badge.map(|b| view! { <span class="role-badge">{b}</span> })}
            {member.user.status.clone().map(|s| view! { <span class="member-status muted">{s}</span> })}
            <span class="member-actions">
                {set_role.map(|frame| view! { <MemberAction frame label=role_label /> })}
                {remove.map(|frame| view! { <MemberAction frame label=remove_label /> })}
                {ban.map(|frame| view! { <MemberAction frame label=ban_label danger=true /> })}
            </span>
        </li>
    }
}

/// A button that sends `frame`: `label` is its text and its accessible name (which says
/// whom it acts on).
#[component]
fn MemberAction(
    frame: ClientMsg,
    label: Signal<(String, String)>,
    #[prop(optional)] danger: bool,
) -> impl IntoView {
    let ctx = ChatCtx::get();
    view! {
        <button
            type="button"
            class="ghost"
            class:danger=danger
            aria-label=move || label.get().1
            on:click=move |_| {
                ctx.chat.update(|c| c.notice = None);
                ctx.send_all([frame.clone()]);
            }
        >
            {move || label.get().0}
        </button>
    }
}

/// The address of an invite link on this site.
fn link_of(invite: &RoomInvite) -> String {
    #[cfg(feature = "hydrate")]
    let origin = window().location().origin().unwrap_or_default();
    #[cfg(not(feature = "hydrate"))]
    let origin = String::new();
    format!("{origin}/?{JOIN_PARAM}={}", invite.token)
}

#[component]
fn InviteLinks(id: ConversationId) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let invites = Memo::new(move |_| {
        ctx.chat.with(|c| {
            c.panel
                .as_ref()
                .map(|p| p.invites.clone())
                .unwrap_or_default()
        })
    });
    let create = {
        let id = id.clone();
        move |_| {
            ctx.chat.update(|c| c.notice = None);
            ctx.send_all([ClientMsg::CreateInvite {
                conversation_id: id.clone(),
                hours: None,
            }])
        }
    };
    view! {
        <h3>{t!(i18n, room.links)}</h3>
        <p class="muted">{t!(i18n, room.links_hint)}</p>
        <button type="button" class="secondary" on:click=create>
            {t!(i18n, room.create_link)}
        </button>
        {move || {
            let list = invites.get();
            if list.is_empty() {
                return view! { <p class="muted">{t!(i18n, room.no_links)}</p> }.into_any();
            }
            view! {
                <ul class="invite-list" aria-label=move || t_string!(i18n, room.links)>
                    {list
                        .into_iter()
                        .map(|invite| {
                            let url = link_of(&invite);
                            let copied = RwSignal::new(false);
                            let token = invite.token.clone();
                            let id = id.clone();
                            let revoke = move |_| {
                                ctx.send_all([ClientMsg::RevokeInvite {
                                    conversation_id: id.clone(),
                                    token: token.clone(),
                                }])
                            };
                            let at = invite.expires_at_ms;
                            let expires = move || {
                                let locale = i18n.get_locale();
                                let when = format!(
                                    "{} {}",
                                    day_label(locale, now_ms(), at),
                                    clock(locale, at)
                                );
                                t_string!(i18n, room.expires, when)
                            };
                            let copy_url = url.clone();
                            view! {
                                <li class="invite-row">
                                    <input
                                        readonly
                                        class="invite-url"
                                        aria-label=move || t_string!(i18n, room.link_label)
                                        prop:value=url.clone()
                                    />
                                    <button
                                        type="button"
                                        class="ghost"
                                        on:click=move |_| copy_to_clipboard(&copy_url, copied)
                                    >
                                        {move || {
                                            if copied.get() {
                                                t_string!(i18n, room.copied)
                                            } else {
                                                t_string!(i18n, room.copy)
                                            }
                                        }}
                                    </button>
                                    <button type="button" class="ghost danger" on:click=revoke>
                                        {t!(i18n, room.revoke)}
                                    </button>
                                    <span class="muted">{expires}</span>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            }
                .into_any()
        }}
    }
}

#[component]
fn Bans(id: ConversationId) -> impl IntoView {
    let i18n = use_i18n();
    let ctx = ChatCtx::get();
    let bans = Memo::new(move |_| {
        ctx.chat
            .with(|c| c.panel.as_ref().map(|p| p.bans.clone()).unwrap_or_default())
    });
    view! {
        <h3>{t!(i18n, room.banned)}</h3>
        {move || {
            let list = bans.get();
            if list.is_empty() {
                return view! { <p class="muted">{t!(i18n, room.none_banned)}</p> }.into_any();
            }
            view! {
                <ul class="member-list" aria-label=move || t_string!(i18n, room.banned)>
                    {list
                        .into_iter()
                        .map(|u| {
                            let id = id.clone();
                            let username = u.username.clone();
                            let name = u.display_name.clone();
                            let unban = move |_| {
                                if let Ok(user) = Username::parse(&username) {
                                    ctx.send_all([ClientMsg::Unban {
                                        conversation_id: id.clone(),
                                        username: user,
                                    }])
                                }
                            };
                            view! {
                                <li class="member-row">
                                    <span class="member-name">{u.display_name.clone()}</span>
                                    <span class="muted">"@" {u.username.clone()}</span>
                                    <span class="member-actions">
                                        <button
                                            type="button"
                                            class="ghost"
                                            aria-label=move || t_string!(i18n, room.unban_named, name = name.clone())
                                            on:click=unban
                                        >
                                            {t!(i18n, room.unban)}
                                        </button>
                                    </span>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            }
                .into_any()
        }}
    }
}
