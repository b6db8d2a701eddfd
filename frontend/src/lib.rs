//! The hydrate entry point. Everything visible lives in `app`; this crate only exists so that
//! the WASM build has a `cdylib` whose start function hydrates the server-rendered body.
// The whole page is one statically typed view tree; its hydration future nests deeper than
// rustc's default query depth allows.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
