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

/// Slack in the read-only data, for the split build (`split`) only; it is in neither module.
///
/// cargo-leptos's splitter (`wasm_split_cli_support` 0.2) lays the main module's and the
/// signed-in view's read-only data out again, one after the other. When that layout comes
/// out even a few bytes longer than the linker's (alignment padding between the two), it
/// gives up and puts *all* the data in the main module: 280 KB more for the first load. No
/// code refers to these bytes, so the splitter places them nowhere, and the room they leave
/// absorbs that padding. (The test command's weight budget for the main module would catch
/// the data falling back into it.)
#[cfg(feature = "split")]
#[used]
static SPLIT_DATA_SLACK: [u8; 4096] = [0x5a; 4096];
