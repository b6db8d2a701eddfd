//! The signed-in screen: the sidebar of conversations beside the open conversation, on one
//! WebSocket. On phone-width screens the two are shown one at a time.
//!
//! All state lives in one [`Chat`] signal, shared through [`ChatCtx`]; components read it with
//! memos and change it with [`ChatCtx::act`], which sends whatever frames the change calls for.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::chat::Chat;
use crate::components::{ConnectionState, ConversationPane, Sidebar};
use crate::protocol::{ClientMsg, UserInfo};

/// Shared by every component of the signed-in screen.
#[derive(Clone, Copy)]
pub struct ChatCtx {
    pub chat: RwSignal<Chat>,
    pub conn: RwSignal<ConnectionState>,
    /// The browser's clock (UTC ms), ticking every 30 s so relative times stay true.
    pub now: RwSignal<i64>,
    /// Set when the user chose a conversation in a dialog: its message box takes the focus
    /// once it is open.
    pub focus_composer: RwSignal<bool>,
    #[cfg(feature = "hydrate")]
    socket: StoredValue<Option<crate::ws_client::Socket>, LocalStorage>,
}

impl ChatCtx {
    pub fn get() -> Self {
        expect_context::<ChatCtx>()
    }

    /// Changes the chat and sends the frames the change returns.
    pub fn act<R, I>(&self, f: impl FnOnce(&mut Chat) -> R)
    where
        R: IntoIterator<Item = ClientMsg, IntoIter = I>,
        I: Iterator<Item = ClientMsg>,
    {
        if let Some(frames) = self.chat.try_update(f) {
            self.send_all(frames);
        }
    }

    /// Opens (creating on first use) the direct conversation with `username`; its message
    /// box takes the focus once it is open.
    pub fn open_direct(&self, username: crate::domain::Username) {
        self.focus_composer.set(true);
        self.chat.update(Chat::expect_open);
        self.send_all([ClientMsg::OpenDirect { username }]);
    }

    /// Joins the room `id` and opens it; its message box takes the focus once it is open.
    pub fn join_room(&self, id: crate::protocol::ConversationId) {
        self.focus_composer.set(true);
        self.chat.update(Chat::expect_open);
        self.send_all([ClientMsg::JoinRoom {
            conversation_id: id,
        }]);
    }

    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    pub fn send_all(&self, frames: impl IntoIterator<Item = ClientMsg>) {
        #[cfg(feature = "hydrate")]
        self.socket.with_value(|s| {
            if let Some(s) = s {
                for f in frames {
                    s.send(f);
                }
            }
        });
    }
}

#[component]
pub fn ChatView(me: UserInfo, #[prop(into)] on_sign_out: Callback<()>) -> impl IntoView {
    // An invite link (`/?join=<token>`): the room is joined once the socket is live.
    let joining = leptos_router::hooks::use_query_map()
        .with_untracked(|q| q.get(crate::protocol::JOIN_PARAM))
        .filter(|t| !t.is_empty() && t.len() <= 64);
    let mut chat = Chat::new(me);
    chat.joining = joining;
    let ctx = ChatCtx {
        chat: RwSignal::new(chat),
        conn: RwSignal::new(ConnectionState::Loading),
        now: RwSignal::new(crate::chat::time::now_ms()),
        focus_composer: RwSignal::new(false),
        #[cfg(feature = "hydrate")]
        socket: StoredValue::new_local(None),
    };
    provide_context(ctx);

    #[cfg(feature = "hydrate")]
    browser::start(ctx, on_sign_out);

    let chat = ctx.chat;
    let i18n = crate::i18n::use_i18n();
    let title = move || {
        let product = crate::i18n::t_string!(i18n, product);
        match chat.with(Chat::total_unread) {
            0 => product.to_owned(),
            n => format!("({n}) {product}"),
        }
    };
    let view_name = move || {
        if chat.with(|c| c.place().is_some()) {
            "conversation"
        } else {
            "list"
        }
    };

    view! {
        <Title text=title />
        <div class="chat" data-view=view_name>
            // Erased: the two halves' view types are deep enough to strain the compiler.
            {view! { <Sidebar on_sign_out /> }.into_any()}
            {view! { <ConversationPane /> }.into_any()}
        </div>
    }
}

/// The browser's side: socket, clock, page visibility, notifications.
#[cfg(feature = "hydrate")]
mod browser {
    use super::*;
    use crate::chat::Alert;
    use crate::protocol::{ConversationId, ServerMsg};
    use crate::ws_client::Socket;
    use std::time::Duration;

    pub fn start(ctx: ChatCtx, on_sign_out: Callback<()>) {
        let ChatCtx {
            chat, conn, now, ..
        } = ctx;
        let on_click = StoredValue::new_local(click_handler(ctx));
        let i18n = crate::i18n::use_i18n();
        // Effects run only in the browser, after hydration.
        Effect::new(move |started: Option<()>| {
            if started.is_some() {
                return;
            }
            let socket = Socket::connect(
                move |state| {
                    conn.try_set(state);
                    if !state.is_connected() {
                        chat.try_update(Chat::disconnected);
                    }
                    if state == ConnectionState::SignedOut {
                        on_sign_out.run(());
                    }
                },
                move || {
                    chat.try_update(Chat::resume).unwrap_or(ClientMsg::Resume {
                        positions: Vec::new(),
                    })
                },
                move |msg| {
                    if let ServerMsg::Typing {
                        conversation_id,
                        username,
                    } = msg
                    {
                        typing(chat, conversation_id, username);
                        return;
                    }
                    if let Some((frames, alert)) = chat.try_update(|c| c.apply(msg)) {
                        ctx.send_all(frames);
                        if let Some(alert) = alert {
                            let locale = i18n.get_locale_untracked();
                            on_click.try_with_value(|h| notify(h, alert, locale));
                        }
                    }
                },
            );
            ctx.socket.set_value(Some(socket));
            let visible = !document().hidden();
            ctx.act(|c| c.set_visible(visible));
        });

        follow_the_address(ctx);

        let tick = set_interval_with_handle(
            move || {
                now.try_set(crate::chat::time::now_ms());
            },
            Duration::from_secs(30),
        )
        .ok();
        // A file dropped where no conversation takes it (none is open) is ignored, rather
        // than opened by the browser in place of the chat.
        // Dragged text still drops into the message box as usual.
        let ignore_files = |e: leptos::ev::DragEvent| {
            if crate::components::files::carries_files(&e) {
                e.prevent_default();
            }
        };
        let stray_drops = [
            window_event_listener(leptos::ev::dragover, ignore_files),
            window_event_listener(leptos::ev::drop, ignore_files),
        ];
        let visibility = window_event_listener_untyped("visibilitychange", move |_| {
            let visible = !document().hidden();
            ctx.act(|c| c.set_visible(visible));
        });
        on_cleanup(move || {
            if let Some(t) = tick {
                t.clear();
            }
            visibility.remove();
            for listener in stray_drops {
                listener.remove();
            }
            ctx.socket.try_with_value(|s| s.as_ref().map(Socket::close));
        });
    }

    /// Keeps the address bar and the chat in step (see [`crate::chat::address`]): a new
    /// address (a link, a reload, the back button) opens its conversation, and opening or
    /// closing one pushes its address, so that the back button goes back to where one was.
    fn follow_the_address(ctx: ChatCtx) {
        use crate::chat::address::{path_of, place_in};
        use leptos_router::{hooks, NavigateOptions};
        let location = hooks::use_location();
        let navigate = hooks::use_navigate();
        let chat = ctx.chat;
        Effect::new(move |_| {
            if let Some(place) = place_in(&location.pathname.get()) {
                ctx.act(move |c| c.go_to(place));
            }
        });
        let place = Memo::new(move |_| chat.with(Chat::place));
        Effect::new(move |first: Option<()>| {
            let path = path_of(place.get().as_ref());
            // The first run is the page as loaded: the address decides, not the chat.
            if first.is_some() && location.pathname.get_untracked() != path {
                let options = NavigateOptions {
                    scroll: false,
                    ..NavigateOptions::default()
                };
                navigate(&path, options);
            }
        });
    }

    /// Shows that `username` is typing, and hides it again once it lapses (unless they
    /// said so again meanwhile).
    fn typing(chat: RwSignal<Chat>, conversation_id: ConversationId, username: String) {
        use crate::chat::time::now_ms;
        let now = now_ms();
        chat.try_update(|c| c.someone_typing(conversation_id, username, now));
        let lapse = Duration::from_millis(crate::protocol::TYPING_SHOWN_MS as u64 + 50);
        set_timeout(
            move || {
                chat.try_update(|c| c.expire_typing(now_ms()));
            },
            lapse,
        );
    }

    type ClickHandler = wasm_bindgen::closure::Closure<dyn Fn(web_sys::Event)>;

    /// A browser notification for a message the user is not looking at, if they allowed it.
    /// Clicking it brings the tab forward on that conversation (its `tag`).
    fn notify(on_click: &ClickHandler, alert: Alert, locale: crate::i18n::Locale) {
        use web_sys::{Notification, NotificationOptions, NotificationPermission};
        if !document().hidden() || Notification::permission() != NotificationPermission::Granted {
            return;
        }
        let title = match alert.room {
            Some(room) => crate::i18n::td_string!(
                locale,
                notification.in_room,
                sender = alert.sender.clone(),
                room
            ),
            None => alert.sender.clone(),
        };
        let options = NotificationOptions::new();
        options.set_body(&alert.body);
        options.set_tag(&alert.conversation_id.0);
        options.set_lang(leptos_i18n::Locale::as_str(locale));
        if let Ok(n) = Notification::new_with_options(&title, &options) {
            n.set_onclick(Some(wasm_bindgen::JsCast::unchecked_ref(on_click.as_ref())));
        }
    }

    fn click_handler(ctx: ChatCtx) -> ClickHandler {
        ClickHandler::new(move |ev: web_sys::Event| {
            let Some(n) = ev
                .target()
                .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Notification>(t).ok())
            else {
                return;
            };
            let Some(tag) = n.tag() else {
                return;
            };
            let _ = window().focus();
            let id = crate::protocol::ConversationId(tag);
            n.close();
            ctx.act(move |c| c.open(id));
        })
    }
}
