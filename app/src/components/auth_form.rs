//! Sign in, or create an account, with a username and a password. Errors (wrong password,
//! taken username, server unreachable) are shown in words next to the form.

use leptos::prelude::*;

use crate::pages::AuthState;

#[component]
pub fn AuthForm(auth: RwSignal<AuthState>) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    let submit = move |create: bool| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            busy.set(true);
            error.set(None);
            let result = crate::auth_client::submit(
                create,
                &username.get_untracked(),
                &password.get_untracked(),
            )
            .await;
            busy.try_set(false);
            match result {
                Ok(me) => {
                    auth.try_set(AuthState::SignedIn(me));
                }
                Err(e) => {
                    error.try_set(Some(e));
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
            <h2 id="auth-heading">"Welcome"</h2>
            <p class="muted">"Sign in, or pick a username and password to create an account."</p>
            <label>
                "Username"
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
                "Password"
                <input
                    name="password"
                    type="password"
                    autocomplete="current-password"
                    required
                    bind:value=password
                />
            </label>
            {move || error.get().map(|e| view! { <p role="alert" class="error">{e}</p> })}
            <div class="actions">
                <button type="submit" disabled=move || busy.get()>
                    "Sign in"
                </button>
                <button
                    type="button"
                    class="secondary"
                    disabled=move || busy.get()
                    on:click=move |_| submit(true)
                >
                    "Create account"
                </button>
            </div>
        </form>
    }
}
