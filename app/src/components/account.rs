//! The account dialog: one's display name, picture and status (everyone who shares a
//! conversation sees a change at once), one's password (every other device is signed out), and the list of
//! signed-in devices, each of which can be signed out from here, or all the others
//! at once. What the server says goes: the list is read again after every change.

use leptos::{ev, html, prelude::*};

use crate::components::{dialogs::Modal, sidebar::Dialog, Avatar, ChatCtx};
use crate::i18n::{t, t_string, use_i18n, Locale};
use crate::protocol::ClientMsg;

/// A signed-in device as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeviceRow {
    id: String,
    current: bool,
    /// ms since the epoch.
    seen_at: i64,
    agent: Option<String>,
    address: Option<String>,
}

/// "Firefox on Linux" / "Linux 上的 Firefox", or "Unknown browser".
fn device_name(locale: Locale, agent: Option<&str>) -> String {
    use crate::i18n::td_string;
    match agent.and_then(crate::user_agent::describe) {
        Some((browser, Some(os))) => td_string!(locale, account.device, browser, os),
        Some((browser, None)) => browser.to_owned(),
        None => td_string!(locale, account.unknown_device).to_owned(),
    }
}

#[component]
pub fn AccountDialog(dialog: RwSignal<Dialog>) -> impl IntoView {
    let i18n = use_i18n();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let password_note = RwSignal::new(None::<(bool, String)>);
    let devices = RwSignal::new(None::<Vec<DeviceRow>>);
    let devices_note = RwSignal::new(None::<(bool, String)>);
    let first = NodeRef::<html::Input>::new();
    let ctx = ChatCtx::get();
    let my_name = Memo::new(move |_| ctx.chat.with(|c| c.me.display_name.clone()));
    let name = RwSignal::new(my_name.get_untracked());
    let name_note = RwSignal::new(None::<(bool, String)>);
    // Set once a new name is sent: "saved" is said when the server's answer brings it back.
    let renaming = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let now = my_name.get();
        if renaming.get_untracked().as_deref() == Some(now.as_str()) {
            renaming.set(None);
            let text = t_string!(i18n, account.name_saved, name = now);
            name_note.set(Some((true, text)));
        }
    });
    let rename = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        let locale = i18n.get_locale_untracked();
        match crate::domain::DisplayName::parse(name.get_untracked().trim()) {
            Ok(display_name) => {
                name_note.set(None);
                renaming.set(Some(display_name.as_str().to_owned()));
                ctx.send_all([ClientMsg::SetDisplayName { display_name }]);
            }
            Err(e) => name_note.set(Some((false, crate::lang::invalid_text(locale, &e)))),
        }
    };

    #[cfg(feature = "hydrate")]
    let reload = move || {
        leptos::task::spawn_local(async move {
            match crate::auth_client::devices().await {
                Ok(mut list) => {
                    // This device first, then the others newest first (as listed).
                    list.sort_by_key(|d| !d.current);
                    devices.try_set(Some(
                        list.into_iter()
                            .map(|d| DeviceRow {
                                id: d.id,
                                current: d.current,
                                seen_at: d.seen_at.saturating_mul(1000),
                                agent: d.agent,
                                address: d.address,
                            })
                            .collect(),
                    ));
                }
                Err(e) => {
                    let text = crate::lang::auth_problem_text(i18n.get_locale_untracked(), &e);
                    devices_note.try_set(Some((false, text)));
                }
            }
        });
    };
    #[cfg(feature = "hydrate")]
    reload();

    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    let change_password = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            use crate::lang::{auth_problem_text, invalid_text};
            let locale = i18n.get_locale_untracked();
            let next = new.get_untracked();
            if let Err(e) = crate::domain::Password::parse(&next) {
                password_note.set(Some((false, invalid_text(locale, &e))));
                return;
            }
            let result = crate::auth_client::change_password(&current.get_untracked(), &next).await;
            let note = match result {
                Ok(n) => {
                    current.try_set(String::new());
                    new.try_set(String::new());
                    reload();
                    (
                        true,
                        crate::i18n::td_string!(locale, account.password_changed, n),
                    )
                }
                Err(e) => (false, auth_problem_text(locale, &e)),
            };
            password_note.try_set(Some(note));
        });
    };

    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    let sign_out = move |id: Option<String>| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let locale = i18n.get_locale_untracked();
            let result = match &id {
                Some(id) => crate::auth_client::end_device(id).await.map(|()| None),
                None => crate::auth_client::end_other_devices().await.map(Some),
            };
            match result {
                Ok(Some(n)) => {
                    let text = crate::i18n::td_string!(locale, account.others_signed_out, n);
                    devices_note.try_set(Some((true, text)));
                }
                Ok(None) => {
                    devices_note.try_set(None);
                }
                Err(e) => {
                    let text = crate::lang::auth_problem_text(locale, &e);
                    devices_note.try_set(Some((false, text)));
                }
            }
            reload();
        });
    };

    let my_status = Memo::new(move |_| ctx.chat.with(|c| c.me.status.clone().unwrap_or_default()));
    let status = RwSignal::new(my_status.get_untracked());
    let status_note = RwSignal::new(None::<(bool, String)>);
    let set_status = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        let locale = i18n.get_locale_untracked();
        match crate::domain::StatusText::parse(&status.get_untracked()) {
            Ok(text) => {
                status_note.set(Some((
                    true,
                    t_string!(i18n, account.status_saved).to_owned(),
                )));
                ctx.send_all([ClientMsg::SetStatus { status: text }]);
            }
            Err(e) => status_note.set(Some((false, crate::lang::invalid_text(locale, &e)))),
        }
    };
    let picture_note = RwSignal::new(None::<(bool, String)>);
    let picker = NodeRef::<html::Input>::new();
    let has_picture = Memo::new(move |_| ctx.chat.with(|c| c.me.avatar.is_some()));
    let me = ctx.chat.with_untracked(|c| c.me.username.clone());
    let my_display = Signal::derive(move || my_name.get());
    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    let picked = move |ev: ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            let Some(input) = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            else {
                return;
            };
            let Some(file) = input.files().and_then(|f| f.get(0)) else {
                return;
            };
            input.set_value("");
            let file = send_wrapper::SendWrapper::new(file);
            leptos::task::spawn_local(async move {
                let locale = i18n.get_locale_untracked();
                let note = match crate::auth_client::set_avatar(&file).await {
                    Ok(()) => (true, t_string!(i18n, account.picture_saved).to_owned()),
                    Err(e) => (false, crate::lang::auth_problem_text(locale, &e)),
                };
                picture_note.try_set(Some(note));
            });
        }
    };
    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    let remove_picture = move |_| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let locale = i18n.get_locale_untracked();
            let note = match crate::auth_client::remove_avatar().await {
                Ok(()) => None,
                Err(e) => Some((false, crate::lang::auth_problem_text(locale, &e))),
            };
            picture_note.try_set(note);
        });
    };

    let note = |n: Option<(bool, String)>| {
        n.map(|(ok, text)| {
            if ok {
                view! { <p role="status" class="muted">{text}</p> }.into_any()
            } else {
                view! { <p role="alert" class="error">{text}</p> }.into_any()
            }
        })
    };

    view! {
        <Modal
            dialog
            id="account"
            title=Signal::derive(move || t_string!(i18n, account.title))
            focus=first
        >
            <section class="account-section" aria-labelledby="account-name">
                <h3 id="account-name">{t!(i18n, account.display_name)}</h3>
                <form class="inline-form" on:submit=rename>
                    <input
                        node_ref=first
                        aria-labelledby="account-name"
                        autocomplete="name"
                        maxlength="64"
                        bind:value=name
                    />
                    <button type="submit">{t!(i18n, account.save)}</button>
                </form>
                {move || note(name_note.get())}
            </section>
            <section class="account-section" aria-labelledby="account-picture">
                <h3 id="account-picture">{t!(i18n, account.picture)}</h3>
                <div class="picture-row">
                    <Avatar name=my_display key=me person=true />
                    <button
                        type="button"
                        class="secondary"
                        on:click=move |_| {
                            if let Some(i) = picker.get_untracked() {
                                i.click();
                            }
                        }
                    >
                        {t!(i18n, account.choose_picture)}
                    </button>
                    <input
                        type="file"
                        hidden
                        node_ref=picker
                        accept="image/png,image/jpeg,image/gif,image/webp"
                        on:change=picked
                    />
                    <Show when=move || has_picture.get()>
                        <button type="button" class="ghost" on:click=remove_picture>
                            {t!(i18n, account.remove_picture)}
                        </button>
                    </Show>
                </div>
                <p class="muted">{t!(i18n, account.picture_hint)}</p>
                {move || note(picture_note.get())}
            </section>
            <section class="account-section" aria-labelledby="account-status">
                <h3 id="account-status">{t!(i18n, account.status)}</h3>
                <form class="inline-form" on:submit=set_status>
                    <input
                        aria-labelledby="account-status"
                        maxlength="100"
                        placeholder=move || t_string!(i18n, account.status_placeholder)
                        bind:value=status
                    />
                    <button type="submit">{t!(i18n, account.set_status)}</button>
                </form>
                {move || note(status_note.get())}
            </section>
            <section class="account-section" aria-labelledby="account-password">
                <h3 id="account-password">{t!(i18n, account.change_password)}</h3>
                <form class="stacked-form" on:submit=change_password>
                    <label>
                        {t!(i18n, account.current_password)}
                        <input
                            type="password"
                            autocomplete="current-password"
                            required
                            bind:value=current
                        />
                    </label>
                    <label>
                        {t!(i18n, account.new_password)}
                        <input type="password" autocomplete="new-password" required bind:value=new />
                    </label>
                    <button type="submit">{t!(i18n, account.change_password)}</button>
                </form>
                {move || note(password_note.get())}
            </section>
            <section class="account-section" aria-labelledby="account-devices">
                <h3 id="account-devices">{t!(i18n, account.devices)}</h3>
                {move || note(devices_note.get())}
                {move || match devices.get() {
                    None => view! { <p class="muted">{t!(i18n, account.loading)}</p> }.into_any(),
                    Some(list) => {
                        let others = list.iter().any(|d| !d.current);
                        view! {
                            <ul class="device-list" aria-labelledby="account-devices">
                                {list
                                    .into_iter()
                                    .map(|d| view! { <DeviceItem device=d sign_out /> })
                                    .collect_view()}
                            </ul>
                            {others
                                .then(|| {
                                    view! {
                                        <button
                                            type="button"
                                            class="secondary"
                                            on:click=move |_| sign_out(None)
                                        >
                                            {t!(i18n, account.sign_out_others)}
                                        </button>
                                    }
                                })}
                        }
                            .into_any()
                    }
                }}
            </section>
        </Modal>
    }
}

#[component]
fn DeviceItem(
    device: DeviceRow,
    sign_out: impl Fn(Option<String>) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let i18n = use_i18n();
    let agent = device.agent.clone();
    let name = Signal::derive(move || device_name(i18n.get_locale(), agent.as_deref()));
    let seen = device.seen_at;
    let when = move || {
        let locale = i18n.get_locale();
        crate::chat::time::relative(locale, crate::chat::time::now_ms(), seen)
    };
    let address = device.address.clone();
    let id = device.id.clone();
    view! {
        <li class="device-row">
            <div class="device-what">
                <span class="device-name">{name}</span>
                {device.current.then(|| view! { <span class="badge">{t!(i18n, account.this_device)}</span> })}
                <span class="muted">
                    {move || t_string!(i18n, account.active, when = when())}
                    {address.clone().map(|a| format!(" · {}", t_string!(i18n, account.from_address, address = a)))}
                </span>
            </div>
            {(!device.current)
                .then(|| {
                    view! {
                        <button
                            type="button"
                            class="ghost"
                            aria-label=move || t_string!(i18n, account.sign_out_device_named, device = name.get())
                            on:click=move |_| sign_out(Some(id.clone()))
                        >
                            {t!(i18n, account.sign_out_device)}
                        </button>
                    }
                })}
        </li>
    }
}
