//! Sign in, or create an account, with a username and a password (and, for a new account,
//! the name others see). A page opened from an invitation link (`/?invite=<token>`) sends
//! the invitation with the new account. Errors (wrong password, taken username, sign-up
//! closed, server unreachable) are shown in words next to the form, in the reader's language.

use leptos::prelude::*;

use crate::i18n::{t, t_string, use_i18n};
use crate::pages::AuthState;

#[component]
pub fn AuthForm(auth: RwSignal<AuthState>) -> impl IntoView {
    let i18n = use_i18n();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let display_name = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    // The invitation in the address, if the page was opened from one.
    let query = leptos_router::hooks::use_query_map();
    let invite = Memo::new(move |_| {
        query
            .with(|q| q.get("invite"))
            .filter(|t| !t.is_empty() && t.len() <= 64)
    });
    let busy = RwSignal::new(false);

    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    let submit = move |create: bool| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            use crate::domain::{DisplayName, Password, Username};
            use crate::lang::{auth_problem_text, invalid_text};
            let locale = i18n.get_locale_untracked();
            let (name, secret) = (username.get_untracked(), password.get_untracked());
            // A new account's rules are explained before anything is sent.
            let shown = display_name.get_untracked();
            if create {
                let checked = Username::parse(&name)
                    .and(Password::parse(&secret))
                    .and(match shown.trim() {
                        "" => Ok(()),
                        d => DisplayName::parse(d).map(|_| ()),
                    });
                if let Err(e) = checked {
                    error.set(Some(invalid_text(locale, &e)));
                    return;
                }
            }
            busy.set(true);
            error.set(None);
            let new_account = create.then(|| crate::auth_client::NewAccount {
                display_name: shown,
                invite: invite.get_untracked(),
            });
            let result = crate::auth_client::submit(new_account.as_ref(), &name, &secret).await;
            busy.try_set(false);
            match result {
                Ok(me) => {
                    auth.try_set(AuthState::SignedIn(me));
                }
                Err(e) => {
                    error.try_set(Some(auth_problem_text(locale, &e)));
                }
            }
        });
    };

    #[cfg(not(feature = "hydrate"))]
    let _ = auth;

    view! {
        <form
            class="panel auth-form"
            aria-labelledby="auth-heading"
            on:submit=move |ev| {
                ev.prevent_default();
                submit(false);
            }
        >
            <h2 id="auth-heading">{t!(i18n, auth.welcome)}</h2>
            <p class="muted">
                {move || {
                    if invite.get().is_some() {
                        t_string!(i18n, auth.invited)
                    } else {
                        t_string!(i18n, auth.intro)
                    }
                }}
            </p>
            <label>
                {t!(i18n, auth.username)}
                <input
                    name="username"
                    autocomplete="username"
                    autocapitalize="none"
                    spellcheck="false"
                    required
                    bind:value=username
                />
            </label>
            <label>
                {t!(i18n, auth.password)}
                <input
                    name="password"
                    type="password"
                    autocomplete="current-password"
                    required
                    bind:value=password
                />
            </label>
            <label>
                {t!(i18n, auth.display_name)}
                <input name="display_name" autocomplete="name" maxlength="64" bind:value=display_name />
            </label>
            {move || error.get().map(|e| view! { <p role="alert" class="error">{e}</p> })}
            <div class="actions">
                <button type="submit" disabled=move || busy.get()>
                    {t!(i18n, auth.sign_in)}
                </button>
                <button
                    type="button"
                    class="secondary"
                    disabled=move || busy.get()
                    on:click=move |_| submit(true)
                >
                    {t!(i18n, auth.create)}
                </button>
            </div>
        </form>
    }
}
