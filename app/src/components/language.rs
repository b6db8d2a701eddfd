//! The language picker: English or 中文. The choice takes effect at once and is remembered
//! (a cookie the server reads when it renders the next page, see [`crate::lang::chosen_language`]).

use leptos::prelude::*;

use crate::i18n::{t_string, use_i18n, I18nLocaleTrait};
use crate::lang::LANGUAGES;

#[component]
pub fn LanguagePicker() -> impl IntoView {
    let i18n = use_i18n();
    let choose = move |ev: leptos::ev::Event| {
        let tag = event_target_value(&ev);
        if let Some((locale, _)) = LANGUAGES.iter().find(|(l, _)| l.as_str() == tag) {
            i18n.set_locale(*locale);
            remember(*locale);
        }
    };
    view! {
        <select
            class="language"
            aria-label=move || t_string!(i18n, language)
            prop:value=move || i18n.get_locale().as_str()
            on:change=choose
        >
            {LANGUAGES
                .iter()
                .map(|(locale, name)| {
                    let tag = locale.as_str();
                    let lang: &'static str = tag;
                    view! {
                        <option value=tag lang=lang selected=move || i18n.get_locale() == *locale>
                            {*name}
                        </option>
                    }
                })
                .collect_view()}
        </select>
    }
}

/// Stores the choice in the cookie the server reads.
#[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
fn remember(locale: crate::i18n::Locale) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::JsCast;
        if let Ok(document) = document().dyn_into::<web_sys::HtmlDocument>() {
            let _ = document.set_cookie(&crate::lang::language_cookie(locale));
        }
    }
}
